"""The ledger holds against forged internal jobs: a page job sends only to its frozen page, a scan only continues."""

from __future__ import annotations

import json

import azure.functions.queue as func_queue

import NotifyQueueFunction
from shared_code.app import services
from tests.support.broadcasts import broadcast, driver, is_done, poisoned, seed, status


def run_message(data: dict) -> None:
    NotifyQueueFunction.main(func_queue.QueueMessage(id="forged", body=json.dumps(data).encode(), dequeue_count=1))


def test_a_page_job_naming_recipients_outside_its_page_is_poisoned_and_sends_nothing(app_env, connector):
    app_env.set(BroadcastPageSize="5")
    seed(connector.url, 8)
    nid = broadcast("once", job_id="n-forged-page")
    driver(app_env).run_until(is_done(nid), timeout=30)
    before = connector.total_delivered()

    # Page 000000 holds c-00000..c-00004; the forged job asks for one of page 000001 again.
    run_message({"v": 1, "kind": "page", "notification": nid, "page": "000000",
                 "keys": [["test", "c-00006"]], "attempt": 1})

    assert connector.total_delivered() == before == 8
    [record] = poisoned(app_env)
    assert "not in page" in record["reason"]


def test_a_page_job_for_a_page_never_frozen_is_poisoned(app_env, connector):
    seed(connector.url, 2)
    nid = broadcast("once", job_id="n-forged-new-page")
    driver(app_env).run_until(is_done(nid), timeout=30)

    run_message({"v": 1, "kind": "page", "notification": nid, "page": "000099",
                 "keys": [["test", "c-00000"]], "attempt": 1})

    assert connector.texts("c-00000") == ["once"]
    [record] = poisoned(app_env)
    assert "never frozen" in record["reason"]


def test_a_scan_job_that_skips_ahead_is_poisoned_and_freezes_nothing(app_env, connector):
    app_env.set(BroadcastPageSize="5")
    seed(connector.url, 8)
    nid = broadcast("once", job_id="n-forged-scan")
    driver(app_env).run_until(is_done(nid), timeout=30)

    run_message({"v": 1, "kind": "scan", "notification": nid, "index": 7, "continuation": None})

    assert services.get().notifications.get_page(nid, "000007") is None
    assert connector.total_delivered() == 8
    [record] = poisoned(app_env)
    assert "does not follow" in record["reason"]
    assert status(nid)["sent"] == 8
