"""Rate budget: one tenant's send rate, shared by every instance of the app through one Table Storage row.

Teams allows about 50 sends per second per bot per tenant, counted over a sliding second, whatever
number of instances the app runs on. Each tenant has one row (PartitionKey: the bot, RowKey: the
tenant key) holding the tenant's schedule: `Tat`, the next free send slot (epoch seconds; every slot
before it is taken), and the adaptive state (`Rate`, `RateAt`, `PausedUntil`, `ThrottledAt`).

A process leases a chunk of consecutive slots, `1 / rate` apart, starting at `max(Tat, now)`, with a
read and an ETag-guarded update that moves `Tat` past them; its threads then send at those slot times.
Slots are never handed out twice and never closer than `1 / rate`, so ANY one-second window (not only
calendar seconds: a fixed per-second quota can put two quotas into one sliding second) holds at most
`rate` slots, whether one process or twenty lease them. A chunk is at most half a second of slots and
adapts to what the process uses in time (it doubles while every slot is taken, and shrinks by the
slots that went stale), so a tenant's row sees about four operations a second at full rate, never one
per message, and twenty instances take turns instead of starving each other. A slot not taken within
`LATE` seconds of its time is dropped, never saved up: unused slots expire with their time.

A steady sender holds the chunk in use and one leased ahead. At the first slot of a chunk leased
ahead, the process reads the row: if a 429 was written since the lease, the chunk is dropped and the
pause honoured; otherwise the same read leases the next chunk. So a pause reaches every instance
within one chunk and the check's lead (0.6 s; the instance that saw the 429 stops at once), and costs
no extra operation.

Time: every instance reads its own clock (`time.time`). Instances' clocks (NTP) and thread wake-ups
differ by a few milliseconds; the default rate, 48 where Teams allows 50, is the margin that absorbs
them (4%: about 40 ms of skew and jitter at the edge of a second).

On a 429, `throttled()` drops the process's own slots at once, and writes the pause (`PausedUntil` =
now + Retry-After, `Tat` moved past it) and a rate lowered by a quarter into the row (at most once a
second, however many instances saw the same burst; never below a tenth of the limit). The rate then
grows back by `RECOVERY` × the limit per quiet second after the pause, computed from the row, with no
write at all. A table error is raised to the caller (the send has not happened; the job retries).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared_code.plumbing import tracing
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import on_table

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

    from shared_code.plumbing.settings import Settings

CHUNK_SECONDS = 0.5  # a lease holds at most this much of the tenant's schedule
LATE = 0.02  # a slot not taken by then is dropped (the rate margin covers this much lateness)
CHECK_LEAD = 0.1  # how long before its first slot a lease leased ahead is checked against the row
FRESH = 0.1  # a lease starting later than this after it was read is checked against the row at its first slot
DEFAULT_PAUSE = 1.0  # a 429 without Retry-After pauses the tenant this long
DECREASE = 0.75  # a 429 multiplies the rate by this...
FLOOR = 0.1  # ...but never below this fraction of the limit
RECOVERY = 1 / 12  # after the pause, the rate grows by this fraction of the limit per second (48/s: +4/s)
DECREASE_EVERY = 1.0  # one decrease per this many seconds: one burst of 429s lowers the rate once


@dataclass(frozen=True, slots=True)
class Row:
    """A tenant's row: its schedule and its adaptive rate (epoch seconds throughout)."""

    tat: float = 0.0  # the next free slot: every slot before it is leased
    rate: float = 0.0  # the rate set by the last decrease; 0 = never throttled (the limit)
    rate_at: float = 0.0  # recovery from `rate` starts here (the end of the pause)
    paused_until: float = 0.0  # no slot before this (Retry-After)
    throttled_at: float = 0.0  # when the last 429 was written


@dataclass(frozen=True, slots=True)
class Lease:
    """`count` slots: `start`, `start + spacing`, ... leased at `leased_at`."""

    start: float
    count: int
    spacing: float
    leased_at: float


def effective_rate(row: Row, now: float, limit: float) -> float:
    """The tenant's rate at `now`: the limit, or the lowered rate plus its recovery since the pause."""
    if row.rate <= 0:
        return limit
    return min(limit, row.rate + RECOVERY * limit * max(0.0, now - row.rate_at))


def lease_from(row: Row, now: float, want: int, limit: float) -> tuple[Row, Lease]:
    """Lease up to `want` slots from `row` at `now`: the row to write back and the lease."""
    rate = effective_rate(row, now, limit)
    start = max(row.tat, now, row.paused_until)
    count = max(1, min(want, int(rate * CHUNK_SECONDS)))
    spacing = 1.0 / rate + 1e-6  # a microsecond more: float rounding never fits rate + 1 slots in a second
    return replace(row, tat=start + count * spacing), Lease(start, count, spacing, now)


def throttle(row: Row, now: float, limit: float, retry_after: float | None) -> Row:
    """`row` after a 429 seen at `now`: paused for Retry-After, the rate lowered (once a second)."""
    pause = retry_after if retry_after is not None and retry_after > 0 else DEFAULT_PAUSE
    paused_until = max(row.paused_until, now + pause)
    rate, rate_at = row.rate, row.rate_at
    if now - row.throttled_at >= DECREASE_EVERY:
        rate = max(FLOOR * limit, effective_rate(row, now, limit) * DECREASE)
    if rate > 0:
        rate_at = max(rate_at, paused_until)  # no recovery while paused
    return Row(max(row.tat, paused_until), rate, rate_at, paused_until, now)


@dataclass(slots=True)
class Held:
    """A lease this process holds, and whether it was checked against the row since it was leased."""

    lease: Lease
    checked: bool
    stale: int = 0  # slots dropped because no thread took them in time
    valid: bool = True  # False once a 429 (here or, as the row says, elsewhere) took its slots away


class Allowance:
    """One process's slots for one tenant (the lease in use and at most one leased ahead)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lease_lock = threading.Lock()  # one table round trip per tenant at a time in a process
        self.held: deque[Held] = deque()
        self.next_index = 0  # into held[0]
        self.paused_until = 0.0
        self.throttled_at = -math.inf
        self.waiters = 0
        self.want = 0  # the next chunk's size; adapts to how many slots this process uses in time
        self.taken: deque[float] = deque()  # when slots were taken in the last second

    def take(self, now: float) -> tuple[float, Held] | None:
        """The next slot that is not stale, and its lease; None when every lease is spent or while paused."""
        if now < self.paused_until:
            return None
        while self.held:
            head = self.held[0]
            while self.next_index < head.lease.count:
                slot = head.lease.start + self.next_index * head.lease.spacing
                self.next_index += 1
                if slot >= now - LATE:
                    self.taken.append(now)
                    while self.taken[0] < now - 1.0:
                        self.taken.popleft()
                    return slot, head
                head.stale += 1
            self._spent(head)
        return None

    def _spent(self, head: Held) -> None:
        # A chunk used in time asks for twice as much next time (up to the cap a lease applies);
        # a chunk with slots left to go stale asks for that many fewer.
        count = head.lease.count
        self.want = max(1, count * 2 if head.stale == 0 else count - head.stale)
        self.held.popleft()
        self.next_index = 0

    def remaining(self) -> int:
        return sum(h.lease.count for h in self.held) - self.next_index

    def install(self, lease: Lease, *, checked: bool) -> None:
        if self.throttled_at >= lease.leased_at:
            return  # a 429 here while the lease was on its way: its slots were meant for the old rate
        self.held.append(Held(lease, checked))

    def drop(self) -> None:
        for held in self.held:
            held.valid = False
        self.held.clear()
        self.next_index = 0

    def demand(self) -> int:
        """Slots to ask for: the adapted chunk size, and at least the threads waiting now (twice
        that for a first chunk: a thread pool takes a slot each, and comes back for more)."""
        return max(1, self.want, self.waiters if self.want or self.waiters <= 1 else 2 * self.waiters)

    def sustained(self, now: float) -> bool:
        """Sending steadily (a broadcast), so worth leasing the next chunk before this one is spent."""
        while self.taken and self.taken[0] < now - 1.0:
            self.taken.popleft()
        return self.waiters > 1 or len(self.taken) > 1


class RateBudget:
    """The shared per-tenant budget. `acquire(tenant)` blocks until a send may go; thread-safe.

    `table` holds one row per (bot, tenant); `limit` is sends per second per tenant for all instances.
    """

    def __init__(self, table: TableClient, *, limit: float, bot: str = "", clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.table, self.limit = table, float(limit)
        self._partition = encode_key(bot or "local")
        self.purpose = bot.partition("|")[2] or "send"  # the channel's sends, or a kind of Graph call
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._allowances: dict[str, Allowance] = {}

    # --- what senders call ------------------------------------------------
    def acquire(self, tenant_key: str) -> float:
        """Wait for the tenant's next send slot; returns the seconds waited."""
        allowance = self._allowance(tenant_key)
        started = self._clock()
        with allowance.lock:
            allowance.waiters += 1
        try:
            while True:
                now = self._clock()
                with allowance.lock:
                    taken = allowance.take(now)
                    pause = allowance.paused_until - now
                if taken is not None:
                    slot, held = taken
                    if not held.checked:  # check a little before the slot, so the read never delays a send
                        self._sleep_until(slot - CHECK_LEAD)
                        if not self._check(tenant_key, allowance, held):
                            continue  # a 429 came after this lease: its slots are gone
                    self._sleep_until(slot)
                    with allowance.lock:
                        valid = held.valid  # a 429 in this process meanwhile drops every slot
                    late = self._clock() - slot > LATE
                    if not valid or late:
                        continue  # a thread that woke late does not send late: a bunch could pass the rate
                    return max(0.0, self._clock() - started)
                if pause > 0:
                    self._sleep(pause)
                    continue
                self._refill(tenant_key, allowance)
        finally:
            with allowance.lock:
                allowance.waiters -= 1

    def throttled(self, tenant_key: str, retry_after: float | None) -> None:
        """The channel answered 429 for this tenant: pause and slow down every instance."""
        allowance = self._allowance(tenant_key)
        now = self._clock()
        pause = retry_after if retry_after is not None and retry_after > 0 else DEFAULT_PAUSE
        with allowance.lock:
            allowance.drop()
            # Threads of one process see the same burst of 429s: one write covers them all.
            if now - allowance.throttled_at < DECREASE_EVERY and now + pause <= allowance.paused_until:
                return
            allowance.paused_until = max(allowance.paused_until, now + pause)
            allowance.throttled_at = now
        with allowance.lease_lock:
            self._update(tenant_key, lambda row: throttle(row, now, self.limit, retry_after))

    def rate(self, tenant_key: str) -> float:
        """The tenant's current rate as the table has it (one read)."""
        row, _ = self._read(tenant_key)
        return effective_rate(row, self._clock(), self.limit)

    # --- the process side -------------------------------------------------
    def _sleep_until(self, moment: float) -> None:
        wait = moment - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _allowance(self, tenant_key: str) -> Allowance:
        with self._lock:
            allowance = self._allowances.get(tenant_key)
            if allowance is None:
                allowance = self._allowances[tenant_key] = Allowance()
            return allowance

    def _refill(self, tenant_key: str, allowance: Allowance) -> None:
        """No slot left: lease a chunk (a read and an ETag-guarded write)."""
        with allowance.lease_lock:
            with allowance.lock:
                if allowance.remaining() > 0 or allowance.paused_until > self._clock():
                    return  # another thread leased (or learnt of a pause) meanwhile
                want = allowance.demand()
            lease = self._lease(tenant_key, want)
            with allowance.lock:
                # Slots starting soon were just read from the row; later ones are checked when they come.
                allowance.install(lease, checked=lease.start - lease.leased_at <= FRESH)

    def _check(self, tenant_key: str, allowance: Allowance, held: Held) -> bool:
        """At the first slot of a lease taken a while ago: did a 429 come since? The same read
        leases the next chunk ahead for a steady sender, so a chunk costs a read and a write."""
        with allowance.lock:
            if held.checked or not held.valid:
                return held.valid
        with allowance.lease_lock:
            with allowance.lock:
                if held.checked or not held.valid:
                    return held.valid
            row, etag = self._read(tenant_key)
            with allowance.lock:
                held.checked = True
                if row.throttled_at > held.lease.leased_at:
                    allowance.drop()
                    allowance.paused_until = max(allowance.paused_until, row.paused_until)
                    return False
                ahead = len(allowance.held) < 2 and allowance.sustained(self._clock())
                want = allowance.demand()
            if ahead:
                lease = self._lease(tenant_key, want, read=(row, etag))
                with allowance.lock:
                    allowance.install(lease, checked=lease.start - lease.leased_at <= FRESH)
            return True

    def _lease(self, tenant_key: str, want: int, read: tuple[Row, str | None] | None = None) -> Lease:
        leased: list[Lease] = []

        def take_chunk(row: Row) -> Row:
            new_row, lease = lease_from(row, self._clock(), want, self.limit)
            leased[:] = [lease]
            return new_row

        self._update(tenant_key, take_chunk, read)
        return leased[0]

    # --- the table side ---------------------------------------------------
    def _update(self, tenant_key: str, change: Callable[[Row], Row],
                read: tuple[Row, str | None] | None = None) -> Row:
        """Apply `change` to the tenant's row with an ETag-guarded write, reading again after a lost race."""
        row, etag = read if read is not None else self._read(tenant_key)
        conflicts = 0
        while True:
            new_row = change(row)
            try:
                self._write(tenant_key, new_row, etag)
                tracing.record(tracing.BUDGET_RATE, effective_rate(new_row, self._clock(), self.limit),
                               {tracing.TENANT: tenant_key, tracing.BUDGET: self.purpose})
                return new_row
            except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
                conflicts += 1
                if conflicts > 2:  # many instances racing: spread their retries a little
                    self._sleep(random.uniform(0, 0.005 * min(conflicts, 10)))
                row, etag = self._read(tenant_key)

    def _read(self, tenant_key: str) -> tuple[Row, str | None]:
        try:
            entity = on_table(self.table, lambda: self.table.get_entity(self._partition, encode_key(tenant_key)))
        except ResourceNotFoundError:
            return Row(), None
        return Row(*(float(entity.get(name) or 0.0) for name in _COLUMNS)), entity.metadata["etag"]

    def _write(self, tenant_key: str, row: Row, etag: str | None) -> None:
        entity: dict[str, Any] = {"PartitionKey": self._partition, "RowKey": encode_key(tenant_key), "Tenant": tenant_key}
        entity.update({name: float(getattr(row, attr)) for attr, name in zip(_FIELDS, _COLUMNS, strict=True)})
        if etag is None:
            on_table(self.table, lambda: self.table.create_entity(entity))
        else:
            self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                     match_condition=MatchConditions.IfNotModified)


_COLUMNS = ("Tat", "Rate", "RateAt", "PausedUntil", "ThrottledAt")
_FIELDS = tuple(f.name for f in fields(Row))


# One budget per table and limit for the whole process: every page job an instance runs shares it.
# A cache that is safe to lose: a new budget reads the row again and leases from there.
_budgets: dict[tuple[str, str, float, str], RateBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(table_service: TableServiceClient, settings: Settings, *, purpose: str = "",
                  limit: float | None = None) -> RateBudget:
    """The process's budget for the app's table (`RateBudgetTableName`) and `TenantSendRatePerSecond`; with a
    `purpose` (a kind of Graph call), another schedule in rows of its own at `limit` per second."""
    rate = settings.tenant_send_rate_per_second if limit is None else limit
    bot = f"{settings.microsoft_app_id}|{purpose}" if purpose else settings.microsoft_app_id
    key = (table_service.url, settings.rate_budget_table, rate, bot)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RateBudget(table_service.get_table_client(settings.rate_budget_table),
                                                limit=rate, bot=bot)
        return budget


def tenant_key(tenant_id: str, service_url: str) -> str:
    """The budget's key for an address: its tenant id, else its serviceUrl (one bucket per channel host)."""
    return f"tenant:{tenant_id}" if tenant_id else f"url:{service_url.rstrip('/').lower()}"
