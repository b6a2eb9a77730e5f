"""The claim window: rolling ledger transactions that never hold more than the window in doubt,
and never leave the senders waiting for the ledger. On the real ledger, in Azurite."""

from __future__ import annotations

import threading
import time

import pytest

from shared_code.app import services
from shared_code.notifications.records.ledger import ClaimOutcome, Delivery, DeliveryState, Finish, RecipientKey
from shared_code.notifications.sending.claim_window import Recipient, permits_for, run_window, window_size


def recipients(count: int, *, tenant: str = "t", prefix: str = "c") -> list[Recipient]:
    return [Recipient(RecipientKey("test", f"{prefix}-{i:04d}"), None, None, tenant) for i in range(count)]


class Watch:
    """Counts what the window holds: claimed and not yet recorded (across windows), and sends in flight."""

    def __init__(self, ledger) -> None:
        self.lock = threading.Lock()
        self.unrecorded = self.most_unrecorded = self.in_flight = self.most_in_flight = 0
        self.settles: list[int] = []  # sends in flight when each transaction started
        self._settle = ledger.settle
        ledger.settle = self.settle

    def settle(self, notification_id, page, finishes, wanted=(), steps=None):  # noqa: ARG002
        with self.lock:
            self.settles.append(self.in_flight)
        claims = self._settle(notification_id, page, finishes, wanted)
        with self.lock:
            self.unrecorded += sum(c.outcome is ClaimOutcome.CLAIMED for c in claims) - len(finishes)
            self.most_unrecorded = max(self.most_unrecorded, self.unrecorded)
        return claims

    def send(self, recipient: Recipient, claimed: Delivery, *, seconds: float = 0.01) -> Finish:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(seconds)
        with self.lock:
            self.in_flight -= 1
        return Finish(claimed, DeliveryState.SENT)


def run(ledger, people, send, *, page="000000", concurrency=8, stop=None):
    return run_window(people, send, ledger=ledger, notification_id="n", page=page, concurrency=concurrency,
                      stop=stop or threading.Event())


def test_every_recipient_is_claimed_sent_and_recorded_once(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)

    result = run(ledger, recipients(60), watch.send)

    assert sorted(f.claimed.key.conversation_id for f in result.recorded) == [f"c-{i:04d}" for i in range(60)]
    assert {d.state for d in ledger.page("n", "000000").values()} == {DeliveryState.SENT}
    assert watch.unrecorded == 0


def test_no_more_than_the_send_concurrency_is_ever_claimed_and_unrecorded(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)

    run(ledger, recipients(100), watch.send, concurrency=8)

    assert watch.most_unrecorded == 8


def test_two_pages_of_one_tenant_share_the_window(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)
    pages = [threading.Thread(target=run, args=(ledger, recipients(60, prefix=p), watch.send),
                              kwargs={"page": p, "concurrency": 6}) for p in ("000001", "000002")]
    for page in pages:
        page.start()
    for page in pages:
        page.join(60)

    assert watch.most_unrecorded <= 6
    assert sum(d.state is DeliveryState.SENT for p in ("000001", "000002") for d in ledger.page("n", p).values()) == 120


def test_a_page_of_several_tenants_never_sends_more_at_once_than_its_concurrency(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)
    people = [r for group in range(6) for r in recipients(10, tenant=f"t{group % 3}", prefix=f"g{group}")]

    result = run(ledger, people, lambda r, d: watch.send(r, d, seconds=0.03), concurrency=8)

    assert len(result.recorded) == 60
    assert watch.most_in_flight <= 8


@pytest.mark.slow
def test_outcomes_are_recorded_while_other_sends_are_still_in_flight(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)

    slots = iter(time.monotonic() + 0.01 * i for i in range(10_000))  # a send every 10 ms, as a budget paces
    slot_lock = threading.Lock()

    def paced(recipient: Recipient, claimed: Delivery) -> Finish:
        with watch.lock:
            watch.in_flight += 1  # waiting for its slot counts: it is a sender at work
        with slot_lock:
            slot = next(slots)
        time.sleep(max(0.0, slot - time.monotonic()))
        finish = watch.send(recipient, claimed, seconds=0.02)
        with watch.lock:
            watch.in_flight -= 1
        return finish

    run(ledger, recipients(80), paced, concurrency=8)

    # Between the first claim and the last record, the senders never stood idle for the ledger.
    assert all(in_flight > 0 for in_flight in watch.settles[1:-1]), watch.settles


def test_a_transaction_carries_about_half_a_window(app_env):
    ledger = services.get().ledger
    watch = Watch(ledger)

    run(ledger, recipients(160), watch.send, concurrency=16)

    assert len(watch.settles) <= 2 * 160 / 16 + 2


def test_recipients_already_done_or_held_elsewhere_are_not_sent(app_env):
    ledger = services.get().ledger
    people = recipients(4)
    done = ledger.claim("n", "000000", people[0].key)
    ledger.finish("n", "000000", done.delivery, DeliveryState.SENT)
    ledger.claim("n", "000000", people[1].key)  # another host's live claim
    sent: list[RecipientKey] = []

    result = run(ledger, people, lambda r, d: (sent.append(r.key), Finish(d, DeliveryState.SENT))[1])

    assert sent == [p.key for p in people[2:]]
    assert {claim.outcome for _, claim in result.unclaimed} == {ClaimOutcome.DONE, ClaimOutcome.BUSY}


def test_once_stopped_nobody_more_is_claimed(app_env):
    ledger = services.get().ledger
    stop = threading.Event()

    def send(recipient: Recipient, claimed: Delivery) -> Finish:
        stop.set()
        return Finish(claimed, DeliveryState.RETRY, "stopped")

    result = run(ledger, recipients(40), send, concurrency=4, stop=stop)

    assert len(result.recorded) <= 4
    assert len(result.stopped) == 40 - len(result.recorded)
    assert len(ledger.page("n", "000000")) == len(result.recorded)


def test_a_send_that_raises_ends_the_page_and_what_came_back_is_recorded(app_env):
    ledger = services.get().ledger

    def send(recipient: Recipient, claimed: Delivery) -> Finish:
        if recipient.key.conversation_id == "c-0005":
            raise RuntimeError("a bug")
        time.sleep(0.01)
        return Finish(claimed, DeliveryState.SENT)

    with pytest.raises(RuntimeError, match="a bug"):
        run(ledger, recipients(40), send, concurrency=4)

    states = [d.state for d in ledger.page("n", "000000").values()]
    assert states.count(DeliveryState.IN_PROGRESS) == 1  # only the one whose send raised is in doubt
    assert len(states) <= 5 + window_size(4)


def test_the_window_gives_every_permit_back_after_a_failed_page(app_env):
    ledger = services.get().ledger

    def explode(recipient: Recipient, claimed: Delivery) -> Finish:
        time.sleep(0.01)
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run(ledger, recipients(10, tenant="failing"), explode, concurrency=4)

    assert permits_for(window_size(4), "failing").free == window_size(4)
