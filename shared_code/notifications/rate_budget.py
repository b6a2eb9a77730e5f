"""Rate budget: one tenant's send rate, shared by every instance of the app through one Table Storage row.

Teams allows about 50 sends per second per bot per tenant, counted over a sliding second, whatever
number of instances the app runs on. Each tenant has one row (PartitionKey: the bot, RowKey: the
tenant key) holding the tenant's schedule: `Tat`, the next free send slot (epoch seconds; every slot
before it is taken), and the adaptive state (`Rate`, `RateAt`, `PausedUntil`, `ThrottledAt`).

A process leases a chunk of consecutive slots, `1 / rate` apart, starting at `max(Tat, now)`, with one
ETag-guarded update that moves `Tat` past them; its threads then send at those slot times. Slots are
never handed out twice and never closer than `1 / rate`, so ANY one-second window (not only the
calendar seconds: a fixed per-second quota could put two quotas in one sliding second) holds at most
`rate` slots, whether one process or twenty lease them. A chunk is at most a quarter of a second of
slots and no more than the process's demand, so the row sees a few updates a second per active
tenant, never one per message, and twenty instances take turns instead of starving each other.
A slot not used within `LATE` seconds of its time is dropped, never saved up: unused slots expire.

Time: every instance reads its own clock (`time.time`). Instances' clocks (NTP) and thread wake-ups
differ by a few milliseconds; the default rate, 48 where Teams allows 50, is the margin that absorbs
them (4%: about 40 ms of skew and jitter at the edge of a second).

On a 429, `throttled()` writes the pause (`PausedUntil` = now + Retry-After) and halves the rate in
the row (at most once a second, however many instances saw the same burst; never below a tenth of the
limit); every instance reads it at its next lease, and a process holding slots leased before the 429
checks the row again before using slots more than `REVALIDATE_AFTER` seconds after their lease. The
rate then grows back by `RECOVERY` × the limit per quiet second after the pause, with no write at all.
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

from shared_code.storage.keys import encode_key
from shared_code.storage.tables import on_table

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

    from shared_code.plumbing.settings import Settings

CHUNK_SECONDS = 0.25  # a lease holds at most this much of the tenant's schedule
LATE = 0.02  # a slot not taken by then is dropped (the rate margin covers this much lateness)
REVALIDATE_AFTER = 0.5  # slots further than this from their lease are checked against the row first
DEFAULT_PAUSE = 1.0  # a 429 without Retry-After pauses the tenant this long
DECREASE = 0.5  # a 429 multiplies the rate by this...
FLOOR = 0.1  # ...but never below this fraction of the limit
RECOVERY = 1 / 24  # after the pause, the rate grows by this fraction of the limit per second (48/s: +2/s)
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
    """`row` after a 429 seen at `now`: paused for Retry-After, the rate halved (once a second)."""
    pause = retry_after if retry_after is not None and retry_after > 0 else DEFAULT_PAUSE
    paused_until = max(row.paused_until, now + pause)
    rate, rate_at = row.rate, row.rate_at
    if now - row.throttled_at >= DECREASE_EVERY:
        rate = max(FLOOR * limit, effective_rate(row, now, limit) * DECREASE)
    if rate > 0:
        rate_at = max(rate_at, paused_until)  # no recovery while paused
    return Row(max(row.tat, paused_until), rate, rate_at, paused_until, now)


class Allowance:
    """One process's slots for one tenant (the current lease), and what its threads are doing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lease_lock = threading.Lock()  # one table round trip per tenant at a time in a process
        self.lease: Lease | None = None
        self.lease_id = 0
        self.next_index = 0
        self.checked_lease, self.checked_ok = 0, True  # the last lease checked against the row, and the answer
        self.paused_until = 0.0
        self.throttled_at = -math.inf
        self.waiters = 0
        self.taken: deque[float] = deque()  # when slots were taken in the last second (demand)

    def take(self, now: float) -> tuple[float, int] | None:
        """The next slot that is not stale, and its lease id; None when the lease is spent."""
        lease = self.lease
        if lease is None or now < self.paused_until:
            return None
        while self.next_index < lease.count:
            slot = lease.start + self.next_index * lease.spacing
            self.next_index += 1
            if slot >= now - LATE:
                self.taken.append(now)
                return slot, self.lease_id
        return None

    def remaining(self) -> int:
        return 0 if self.lease is None else lease_left(self.lease, self.next_index)

    def install(self, lease: Lease) -> None:
        self.lease, self.next_index = lease, 0
        self.lease_id += 1

    def drop(self) -> None:
        self.lease, self.next_index = None, 0

    def demand(self, now: float) -> int:
        """Slots to ask for: the threads waiting now, or a quarter second of the last second's use."""
        while self.taken and self.taken[0] < now - 1.0:
            self.taken.popleft()
        return max(1, self.waiters, math.ceil(len(self.taken) * CHUNK_SECONDS))


def lease_left(lease: Lease, next_index: int) -> int:
    return max(0, lease.count - next_index)


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
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._allowances: dict[str, Allowance] = {}
        # The row as this process last wrote or read it, with its ETag: a lease tries that first
        # (one operation when nobody else leased since), and reads only when the ETag is stale.
        self._rows: dict[str, tuple[Row, str | None]] = {}

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
                    lease = allowance.lease
                if taken is not None and lease is not None:
                    slot, lease_id = taken
                    if slot > now:
                        self._sleep(slot - now)
                    if (slot - lease.leased_at > REVALIDATE_AFTER
                            and not self._still_valid(tenant_key, allowance, lease, lease_id)):
                        continue
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
    def _allowance(self, tenant_key: str) -> Allowance:
        with self._lock:
            allowance = self._allowances.get(tenant_key)
            if allowance is None:
                allowance = self._allowances[tenant_key] = Allowance()
            return allowance

    def _refill(self, tenant_key: str, allowance: Allowance) -> None:
        with allowance.lease_lock:
            now = self._clock()
            with allowance.lock:
                if allowance.remaining() > 0 or allowance.paused_until > now:
                    return  # another thread leased (or learnt of a pause) meanwhile
                want = allowance.demand(now)
            leased: list[Lease] = []

            def take_chunk(row: Row) -> Row:
                new_row, lease = lease_from(row, self._clock(), want, self.limit)
                leased[:] = [lease]
                return new_row

            self._update(tenant_key, take_chunk)  # a pause in the row is already in the lease's start
            with allowance.lock:
                allowance.install(leased[0])

    def _still_valid(self, tenant_key: str, allowance: Allowance, lease: Lease, lease_id: int) -> bool:
        """Before using slots leased long ago: did a 429 come since? (One read per such lease.)"""
        with allowance.lease_lock:
            with allowance.lock:
                if allowance.checked_lease == lease_id:
                    return allowance.checked_ok
            row, _ = self._read(tenant_key)
            ok = row.throttled_at <= lease.leased_at
            with allowance.lock:
                allowance.checked_lease, allowance.checked_ok = lease_id, ok
                if not ok:
                    if allowance.lease_id == lease_id:
                        allowance.drop()
                    allowance.paused_until = max(allowance.paused_until, row.paused_until)
            return ok

    # --- the table side ---------------------------------------------------
    def _update(self, tenant_key: str, change: Callable[[Row], Row]) -> Row:
        """Apply `change` to the tenant's row with an ETag-guarded write, re-reading on a lost race."""
        conflicts = 0
        while True:
            with self._lock:
                cached = self._rows.get(tenant_key)
            row, etag = cached if cached is not None else self._read(tenant_key)
            new_row = change(row)
            try:
                etag = self._write(tenant_key, new_row, etag)
            except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
                with self._lock:
                    self._rows.pop(tenant_key, None)
                conflicts += 1
                if conflicts > 2:  # many instances racing: spread their retries a little
                    self._sleep(random.uniform(0, 0.005 * min(conflicts, 10)))
                continue
            with self._lock:
                self._rows[tenant_key] = (new_row, etag)
            return new_row

    def _read(self, tenant_key: str) -> tuple[Row, str | None]:
        try:
            entity = on_table(self.table, lambda: self.table.get_entity(self._partition, encode_key(tenant_key)))
        except ResourceNotFoundError:
            return Row(), None
        row = Row(*(float(entity.get(name) or 0.0) for name in _COLUMNS))
        with self._lock:
            self._rows[tenant_key] = (row, entity.metadata["etag"])
        return row, entity.metadata["etag"]

    def _write(self, tenant_key: str, row: Row, etag: str | None) -> str | None:
        entity: dict[str, Any] = {"PartitionKey": self._partition, "RowKey": encode_key(tenant_key), "Tenant": tenant_key}
        entity.update({name: float(getattr(row, attr)) for attr, name in zip(_FIELDS, _COLUMNS, strict=True)})
        if etag is None:
            meta = on_table(self.table, lambda: self.table.create_entity(entity))
        else:
            meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                            match_condition=MatchConditions.IfNotModified)
        return meta.get("etag")


_COLUMNS = ("Tat", "Rate", "RateAt", "PausedUntil", "ThrottledAt")
_FIELDS = tuple(f.name for f in fields(Row))


# One budget per table and limit for the whole process: every page job an instance runs shares it.
# A cache that is safe to lose: a new budget reads the row again and leases from there.
_budgets: dict[tuple[str, str, float, str], RateBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(table_service: TableServiceClient, settings: Settings) -> RateBudget:
    """The process's budget for the app's table (`RateBudgetTableName`) and `TenantSendRatePerSecond`."""
    key = (table_service.url, settings.rate_budget_table, settings.tenant_send_rate_per_second, settings.microsoft_app_id)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RateBudget(table_service.get_table_client(settings.rate_budget_table),
                                                limit=settings.tenant_send_rate_per_second,
                                                bot=settings.microsoft_app_id)
        return budget


def tenant_key(tenant_id: str, service_url: str) -> str:
    """The budget's key for an address: its tenant id, else its serviceUrl (one bucket per channel host)."""
    return f"tenant:{tenant_id}" if tenant_id else f"url:{service_url.rstrip('/').lower()}"
