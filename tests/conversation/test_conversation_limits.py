"""Every path to one conversation keeps Teams' per-conversation limits: respected, not discovered with a 429."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared_code.app import services
from shared_code.notifications import api
from stubs.connector import ConnectorStub
from tests.support.arrivals import max_in_any_window
from tests.support.builders import reference


@pytest.mark.timing
def test_a_burst_of_20_notifications_to_one_conversation_stays_within_7_per_second_and_8_per_2_seconds(app_env):
    with ConnectorStub(conversation_limits=True) as stub, ThreadPoolExecutor(8) as pool:
        services.get().addresses.save_many([reference(stub.url, "burst")], trusted=False)

        def notify(i: int) -> int:
            return api.notify({"to": {"conversation": "burst"}, "text": f"update {i}"}, services.get()).status

        statuses = list(pool.map(notify, range(20)))  # several callers at once, one conversation
        arrivals = stub.arrival_times("burst")
        throttled = stub.attempts("burst") - len(arrivals)

    assert statuses == [200] * 20
    assert throttled == 0  # no 429 was needed to find the limits
    assert max_in_any_window(arrivals, 1.0) <= 7
    assert max_in_any_window(arrivals, 2.0) <= 8
