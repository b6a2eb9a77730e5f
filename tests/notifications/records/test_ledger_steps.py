"""The steps of a person reached through Graph, recorded on their claim: an abandoned claim before the send
resumes where it stopped; one at the send stays at most once."""

from __future__ import annotations

import time

from azure.data.tables import TableClient

from shared_code.app import services
from shared_code.notifications.records.ledger import ClaimOutcome, DeliveryState, Finish, Ledger, RecipientKey, Step

PERSON = RecipientKey("msteams", "0b6f4c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def ledger_with(clock: Clock) -> Ledger:
    settings = services.get().settings
    table = TableClient.from_connection_string(settings.storage_connection, settings.deliveries_table)
    return Ledger(table, lease_seconds=60, clock=clock)


def test_a_fresh_claim_starts_at_the_step_asked_for(app_env):
    ledger = ledger_with(Clock())

    [claim] = ledger.settle("n", "000000", [], [(PERSON, None)], {PERSON: Step.INSTALL})

    assert claim.delivery.step is Step.INSTALL
    assert ledger.get("n", "000000", PERSON).step is Step.INSTALL


def test_each_step_renews_the_lease_and_is_what_the_table_holds(app_env):
    clock = Clock()
    ledger = ledger_with(clock)
    claimed = ledger.claim("n", "000000", PERSON, step=Step.INSTALL).delivery
    clock.now += 50

    advanced = ledger.advance("n", "000000", claimed, Step.CHAT)

    assert advanced.step is Step.CHAT and advanced.claimed_at == clock.now
    assert ledger.get("n", "000000", PERSON).step is Step.CHAT


def test_a_claim_abandoned_before_its_send_is_claimed_again_at_its_step(app_env):
    clock = Clock()
    ledger = ledger_with(clock)
    claimed = ledger.claim("n", "000000", PERSON, step=Step.INSTALL).delivery
    ledger.advance("n", "000000", claimed, Step.CHAT)
    clock.now += 61  # the host died: its lease ran out

    again = ledger.claim("n", "000000", PERSON, ledger.get("n", "000000", PERSON))

    assert again.outcome is ClaimOutcome.CLAIMED and again.delivery.step is Step.CHAT


def test_a_claim_abandoned_at_its_send_becomes_outcome_unknown(app_env):
    clock = Clock()
    ledger = ledger_with(clock)
    claimed = ledger.claim("n", "000000", PERSON, step=Step.INSTALL).delivery
    ledger.advance("n", "000000", claimed, Step.SEND)  # chat saved: the send may have happened
    clock.now += 61

    again = ledger.claim("n", "000000", PERSON, ledger.get("n", "000000", PERSON))

    assert again.outcome is ClaimOutcome.DONE and again.delivery.code == "outcome_unknown"


def test_a_step_after_the_claim_was_lost_to_another_host_says_so(app_env):
    clock = Clock()
    ledger = ledger_with(clock)
    mine = ledger.claim("n", "000000", PERSON, step=Step.INSTALL).delivery
    clock.now += 61
    ledger.claim("n", "000000", PERSON, ledger.get("n", "000000", PERSON))  # another host takes it over

    assert ledger.advance("n", "000000", mine, Step.CHAT) is None


def test_a_retry_resumes_at_its_step_and_a_send_clears_it(app_env):
    ledger = ledger_with(Clock())
    claimed = ledger.advance("n", "000000", ledger.claim("n", "000000", PERSON, step=Step.INSTALL).delivery, Step.CHAT)
    ledger.settle("n", "000000", [Finish(claimed, DeliveryState.RETRY, "graph_throttled", counted=False)])

    [again] = ledger.settle("n", "000000", [], [(PERSON, ledger.get("n", "000000", PERSON))])
    ledger.settle("n", "000000", [Finish(again.delivery, DeliveryState.SENT, sent_to="19:chat@unq.gbl.spaces")])

    assert again.delivery.step is Step.CHAT
    record = ledger.get("n", "000000", PERSON)
    assert (record.state, record.step, record.sent_to) == (DeliveryState.SENT, Step.SEND, "19:chat@unq.gbl.spaces")
