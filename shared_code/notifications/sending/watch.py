"""The watch over a running page job: a heartbeat in the page's row, and a watchdog on the queue that
re-issues the page when the heartbeat stops because its host died.

The Functions host keeps a queue message invisible while its function runs and renews that lease, so a
host that dies (killed, out of memory, its instance lost) hides its page job for the whole lease, ten
minutes, with nothing sent meanwhile. A page job therefore does not wait for its message to come back;
it says that it is alive, and any instance can see when it stops saying so.

- **Heartbeat.** While `delivery.run_page` sends, a thread of the page job writes to the page's row every
  `heartbeat_seconds` (a quarter of `PageWatchSeconds`, at most `HEARTBEAT_SECONDS`): the time, under this
  run's id in the row's `Runs` ({run id: epoch seconds}), and the page's counts so far, from its ledger
  partition, with `save_counts`' ETag rule (counts never go back). So `GET /api/notify/{id}` moves while a
  page runs. When the page job ends (also when it re-queued some recipients for a retry, or failed for the
  host to retry its message) its run leaves `Runs`; a process going down (a BaseException) writes nothing
  and leaves its run to the watchdog.
- **Watchdog.** When a page job starts it queues a watch job, delayed `PageWatchSeconds`:

      {"v": 1, "kind": "watch", "notification": "<id>", "page": "000003", "run": "<run id>", "attempt": 1}

  Any instance runs it (no timer, whatever the scale): the run gone from `Runs`: it ended, and so does
  the watch; its beat fresh (younger than `BEATS_MISSED` heartbeats): the watch queues itself again,
  delayed; stale: the host died. The run is taken out of `Runs` by an ETag-guarded write, so of two
  watchdogs that race only one goes on, and the page's recipients that are not finished are queued as new
  page jobs (`fanout.split_keys`, attempt + 1), which start their own heartbeat and watchdog. A watch job
  for a page that was never frozen is refused (poison), as a forged page job is.

Bound: the last beat is at most a heartbeat before the death, and a watch comes every `PageWatchSeconds`,
so the page is re-issued at most `PageWatchSeconds` + `BEATS_MISSED` heartbeats after it (20 + 15 s by
default), plus the queue's polling (host.json maxPollingInterval) for the watch and for the new page job.

Exactly once is still the ledger's: the new job skips what is finished, and the recipients the dead host
had claimed and not recorded (at most `SendConcurrency` per tenant) stay claimed until `DeliveryLeaseSeconds`
and then become `outcome_unknown`; every other recipient is sent at once. A false alarm (a live host whose
beats were held up for three heartbeats) costs a second job on the page and nothing more.

`Runs` holds one entry per running job, not one "running" flag per page: a page whose keys overflow one
queue message is sent by several page jobs at once (Teams' long ids make that usual at 500 a page), and
each must be watched. The sweep (upkeep/sweep.py) leaves a page with a fresh beat alone; it re-issues the
pages whose job never started. A page re-issued `MAX_RESUMES` times in a row with nothing finished (a job
that kills its host every time) is not re-issued by the watchdog again: the sweep fails it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.notifications import jobs
from shared_code.notifications.audience.fanout import PageJob, split_keys
from shared_code.notifications.records.ledger import TERMINAL
from shared_code.notifications.records.store import MAX_RESUMES, PageCounts, PageRecord, counts_of
from shared_code.plumbing.errors import BadInput

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices
    from shared_code.plumbing.settings import Settings

log = logging.getLogger(__name__)

KIND = "watch"
HEARTBEAT_SECONDS = 5.0  # at most; a quarter of PageWatchSeconds when that is shorter
BEATS_MISSED = 3  # a run whose latest beat is older than this many heartbeats is dead
_RUN_ID = re.compile(r"[0-9a-f]{1,64}")
_PAGE_ID = re.compile(r"[0-9]{1,12}")


def heartbeat_seconds(settings: Settings) -> float:
    return min(HEARTBEAT_SECONDS, settings.page_watch_seconds / 4)


def stale_after(settings: Settings) -> float:
    """Seconds without a beat after which a run is taken for dead."""
    return BEATS_MISSED * heartbeat_seconds(settings)


def is_running(page: PageRecord, settings: Settings, now: float) -> bool:
    """A page job beat for this page lately: its host is alive (the sweep leaves the page alone)."""
    return any(now - beat < stale_after(settings) for beat in page.runs.values())


@dataclass(frozen=True, slots=True)
class WatchJob:
    notification: str
    page: str
    run: str
    attempt: int = 1  # the watched page job's

    def to_json(self) -> dict[str, Any]:
        return {"v": jobs.VERSION, "kind": KIND, "notification": self.notification, "page": self.page,
                "run": self.run, "attempt": self.attempt}


def is_watch(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == KIND


def parse_watch(data: dict[str, Any]) -> WatchJob:
    """Validate a watch job; BadInput says what is wrong (the message goes to poison)."""
    if not jobs.is_version(data.get("v")):
        raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {jobs.VERSION}")
    notification, page, run, attempt = data.get("notification"), data.get("page"), data.get("run"), data.get("attempt", 1)
    if not isinstance(notification, str) or not notification:
        raise BadInput("notification is required")
    if not isinstance(page, str) or not _PAGE_ID.fullmatch(page):
        raise BadInput("page must be a page's number, such as 000003")
    if not isinstance(run, str) or not _RUN_ID.fullmatch(run):
        raise BadInput("run must be the id of a page job's run (hexadecimal)")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise BadInput("attempt must be a positive integer")
    return WatchJob(notification, page, run, attempt)


# --- the heartbeat -------------------------------------------------------------------------------------------


class Heartbeat:
    """A page job's pulse (see the module's note): `start` before it sends, `stop` or `halt` when it ends."""

    def __init__(self, job: PageJob, page: PageRecord, services: NotificationServices) -> None:
        self.job, self.services = job, services
        self.run = uuid.uuid4().hex
        self.interval = heartbeat_seconds(services.settings)
        # The row as this run last read or wrote it: its ETag chains the writes, and a write by anyone else
        # in between makes the next one read again (save_counts' rule).
        self.record: PageRecord | None = page
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job.page}", daemon=True)

    def start(self, counts: PageCounts) -> None:
        """Enter `Runs` (with the counts of a ledger read made after `page` was read), queue the watchdog, beat."""
        first = [counts]
        self._write(lambda: first.pop() if first else self._counts(), lambda runs: {**runs, self.run: time.time()})
        watch = WatchJob(self.job.notification, self.job.page, self.run, self.job.attempt)
        jobs.enqueue(watch.to_json(), self.services, delay_seconds=self.services.settings.page_watch_seconds)
        self._thread.start()

    def stop(self) -> None:
        """The page job ended: no more beats, its counts written, its run out of `Runs`."""
        self.halt()
        self._write(self._counts, lambda runs: {run: at for run, at in runs.items() if run != self.run})

    def halt(self) -> None:
        """No more beats, nothing written: the watchdog will find the run stale."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._write(self._counts, self._beat)
            except Exception:  # the next beat tries again; three missed ones and a watchdog steps in
                log.warning("page %s of %s: heartbeat not written", self.job.page, self.job.notification, exc_info=True)

    def _beat(self, runs: dict[str, float]) -> dict[str, float]:
        # A watchdog that took this run for dead has re-issued the page: the run does not come back.
        return {**runs, self.run: time.time()} if self.run in runs else runs

    def _counts(self) -> PageCounts:
        return counts_of(self.services.ledger.page(self.job.notification, self.job.page).values())

    def _write(self, counts: Callable[[], PageCounts], runs: Callable[[dict[str, float]], dict[str, float]]) -> None:
        written = self.services.notifications.save_counts(self.job.notification, self.job.page, counts,
                                                          read=self.record, runs=runs)
        self.record = written  # None: read the row again next time


@contextmanager
def watched(job: PageJob, page: PageRecord, counts: PageCounts, services: NotificationServices) -> Iterator[Heartbeat]:
    """Run the block as a watched page job: `page` as read before the ledger read that gave `counts`."""
    beat = Heartbeat(job, page, services)
    beat.start(counts)
    try:
        yield beat
    except Exception:  # the host retries the message: no watchdog needed
        try:
            beat.stop()
        except Exception:
            log.warning("page %s of %s: its run not ended", job.page, job.notification, exc_info=True)
        raise
    except BaseException:  # the process is going down: the watchdog takes the page over
        beat.halt()
        raise
    beat.stop()


# --- the watchdog --------------------------------------------------------------------------------------------


class Watched(StrEnum):
    ENDED = "ended"  # the run is no longer in `Runs`: nothing to watch
    ALIVE = "alive"  # its beat is fresh: watched again later
    REISSUED = "reissued"  # stale: its unfinished recipients were queued again
    GIVEN_UP = "given_up"  # stale, but re-issued MAX_RESUMES times without progress: left to the sweep


def run_watch(watch: WatchJob, services: NotificationServices, *, now: float | None = None) -> Watched:
    """Look at the watched run's heartbeat once (see the module's note)."""
    store, settings = services.notifications, services.settings
    for _ in range(10):
        record = store.get_page(watch.notification, watch.page)
        if record is None:
            raise BadInput(f"page {watch.page!r} of {watch.notification!r} was never frozen")
        beat = record.runs.get(watch.run)
        if beat is None:
            return Watched.ENDED
        if (time.time() if now is None else now) - beat < stale_after(settings):
            jobs.enqueue(watch.to_json(), services, delay_seconds=settings.page_watch_seconds)
            return Watched.ALIVE
        known = services.ledger.page(watch.notification, watch.page)  # read after the row: its counts may be saved
        counts = counts_of(known.values())
        resumed = record.resumed if counts.finished == record.resumed_at else 0  # progress starts the count over
        given_up = resumed >= MAX_RESUMES
        runs = {run: at for run, at in record.runs.items() if run != watch.run}
        if not store.replace_runs(record, watch.notification, runs, counts,
                                  resumed=resumed if given_up else resumed + 1, resumed_at=counts.finished):
            continue  # someone wrote the row meanwhile (a beat, another watchdog): look again
        if given_up:
            log.error("notification %s page %s: its host died again with nothing finished since; left to the sweep",
                      watch.notification, watch.page)
            return Watched.GIVEN_UP
        unfinished = [key for key in record.keys
                      if key.well_formed and (key not in known or known[key].state not in TERMINAL)]
        for chunk in split_keys(unfinished):
            jobs.enqueue(PageJob(watch.notification, watch.page, chunk, watch.attempt + 1).to_json(), services)
        log.warning("notification %s page %s: no heartbeat for %.0f s, its host is taken for dead; re-issued for "
                    "%d recipients", watch.notification, watch.page, (now or time.time()) - beat, len(unfinished))
        return Watched.REISSUED
    jobs.enqueue(watch.to_json(), services, delay_seconds=settings.page_watch_seconds)  # a busy row: later
    return Watched.ALIVE
