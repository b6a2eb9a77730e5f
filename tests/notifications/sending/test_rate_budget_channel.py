"""The connector stub's Teams throttling, and the budget and conversation limiter against it over HTTP:
sends paced by them get no 429. Times are the stub's arrival times, checked afterwards."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.data.tables import TableClient

from shared_code.notifications.sending.rate_budget import RateBudget
from shared_code.protocol.conversation_limits import ConversationLimiter
from stubs.connector import ChannelLimits, ConnectorStub
from tests.support.arrivals import max_in_any_window


def post(stub: ConnectorStub, conversation_id: str, tenant: str = "", *, in_channel_data: bool = False,
         session: requests.Session | None = None) -> requests.Response:
    activity: dict = {"type": "message", "text": "hi", "conversation": {"id": conversation_id}}
    if tenant and in_channel_data:
        activity["channelData"] = {"tenant": {"id": tenant}}
    elif tenant:
        activity["conversation"]["tenantId"] = tenant
    return (session or requests).post(f"{stub.url}/v3/conversations/{conversation_id}/activities", json=activity, timeout=10)


def test_stub_answers_429_with_retry_after_and_the_teams_error_above_the_tenant_limit():
    with ConnectorStub(tenant_limit=5) as stub:
        answers = [post(stub, f"c{i}", "t1") for i in range(6)]

        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[-1].headers["Retry-After"] == "1"
        assert answers[-1].json()["error"]["code"] == "Throttled"
        assert (stub.limits.throttled("t1"), stub.limits.sent("t1"), stub.total_delivered()) == (1, 5, 5)


def test_stub_keeps_each_tenant_to_its_own_limit():
    with ConnectorStub(tenant_limit=5) as stub:
        answers = [post(stub, f"c{i}", tenant) for i in range(5) for tenant in ("t1", "t2")]

        assert [a.status_code for a in answers] == [200] * 10
        assert (stub.limits.sent("t1"), stub.limits.sent("t2")) == (5, 5)


def test_stub_reads_the_tenant_from_channel_data_too():
    with ConnectorStub(tenant_limit=2) as stub:
        answers = [post(stub, f"c{i}", "t9", in_channel_data=True) for i in range(3)]

        assert [a.status_code for a in answers] == [200, 200, 429]
        assert stub.limits.throttled("t9") == 1


def test_stub_without_a_tenant_counts_the_whole_bot_as_one():
    with ConnectorStub(tenant_limit=3) as stub:
        answers = [post(stub, f"c{i}") for i in range(4)]

        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert stub.limits.throttled("") == 1


def test_stub_limits_one_conversation_to_7_in_a_second():
    with ConnectorStub(conversation_limits=True) as stub:
        answers = [post(stub, "busy") for _ in range(8)]
        other = post(stub, "quiet")

        assert [a.status_code for a in answers] == [200] * 7 + [429]
        assert other.status_code == 200


def test_stub_limits_one_conversation_to_8_in_two_seconds():
    clock = [1000.0]
    limits = ChannelLimits(per_conversation=True, clock=lambda: clock[0])
    admitted = []
    for step in range(12):
        clock[0] = 1000.0 + step * 0.2  # 5 a second: within 7/1 s, over 8/2 s
        admitted.append(limits.admit("c", {"conversation": {"id": "c"}}) is None)

    assert admitted == [True] * 8 + [False, False, True, True]  # the first sends leave the window at 1002.0 and 1002.2


def test_stub_counts_sends_per_second_and_the_most_in_any_sliding_second():
    clock = [1000.6]
    limits = ChannelLimits(clock=lambda: clock[0])
    for step in range(10):
        clock[0] = 1000.6 + step * 0.1  # ten sends from 1000.6 to 1001.5
        limits.admit(f"c{step}", {"conversation": {"id": f"c{step}", "tenantId": "t1"}})

    assert limits.per_second("t1") == {1000: 4, 1001: 6}
    assert limits.max_in_any_second("t1") == 10


@pytest.mark.timing
def test_a_burst_of_20_to_one_conversation_through_the_limiter_gets_no_429():
    # GIVEN a channel enforcing 7/1 s and 8/2 s per conversation, and a page's thread pool
    limiter = ConversationLimiter()
    with ConnectorStub(conversation_limits=True) as stub, ThreadPoolExecutor(8) as pool:

        def send(_: int) -> int:
            limiter.acquire("conv-burst")
            return post(stub, "conv-burst").status_code

        # WHEN 20 messages go to one conversation at once
        statuses = list(pool.map(send, range(20)))
        arrivals = stub.arrival_times("conv-burst")

    # THEN every one is accepted, and the arrivals keep both windows
    assert statuses == [200] * 20
    assert max_in_any_window(arrivals, 1.0) <= 7
    assert max_in_any_window(arrivals, 2.0) <= 8


@pytest.mark.timing
def test_sends_paced_by_the_budget_get_no_429_from_a_channel_allowing_50(storage_connection):
    # GIVEN the default budget (48/s) on Azurite and a channel allowing 50/s per tenant
    table = TableClient.from_connection_string(storage_connection, f"budget{uuid.uuid4().hex[:10]}")
    budget = RateBudget(table, limit=48)
    end = time.time() + 4.0
    with ConnectorStub(tenant_limit=50) as stub:

        def sender(worker: int) -> None:
            session = requests.Session()
            sent = 0
            while time.time() < end:
                budget.acquire("t1")
                post(stub, f"c{worker}-{sent}", "t1", session=session)
                sent += 1

        # WHEN 8 threads send to one tenant as fast as the budget lets them
        threads = [threading.Thread(target=sender, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # THEN the channel never throttled, and never saw more than its limit in a sliding second
        assert stub.limits.throttled("t1") == 0
        assert stub.limits.max_in_any_second("t1") <= 50
        assert stub.limits.sent("t1") >= 0.9 * 48 * 3  # most of the rate was used
