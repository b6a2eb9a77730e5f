"""The rate budget across real processes sharing one Azurite table: the rate holds in every sliding
second, the processes together use nearly all of it, tenants are apart, and a 429 seen by one process
slows and pauses the others. Times are recorded and checked afterwards; nothing is asserted on speed
except counts of grants within recorded windows."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from typing import Any

import pytest

from shared_code.notifications.sending.rate_budget import DECREASE, RECOVERY

LIMIT = 48.0
CHANNEL_LIMIT = 50  # what Teams allows; LIMIT leaves the margin for clock and wake-up jitter
THREADS = 8


def _worker(connection: str, table: str, plan: dict[str, Any], ready: Any, go: Any, start: Any, results: Any) -> None:
    """One app instance: `plan` says which tenants to hammer for how long, and when to call throttled()."""
    from azure.data.tables import TableClient

    from shared_code.notifications.sending.rate_budget import RateBudget

    operations: list[float] = []  # when each table operation was sent, counted at the HTTP layer
    client = TableClient.from_connection_string(
        connection, table, raw_request_hook=lambda request: operations.append(time.time()))
    budget = RateBudget(client, limit=plan.get("limit", LIMIT))
    grants: dict[str, list[float]] = {tenant: [] for tenant in plan.get("tenants", ())}
    ready.put(1)
    go.wait(30)
    t0 = start.value
    time.sleep(max(0.0, t0 + plan.get("throttle_at", 0.0) - time.time()))
    throttled_at = None
    if "throttle" in plan:
        throttled_at = time.time()
        budget.throttled(plan["throttle"], plan.get("retry_after"))
    time.sleep(max(0.0, t0 + plan.get("begin", 0.0) - time.time()))
    end = t0 + plan.get("seconds", 0.0)

    def hammer(tenant: str) -> None:
        while time.time() < end:
            budget.acquire(tenant)
            grants[tenant].append(time.time())

    threads = [threading.Thread(target=hammer, args=(tenant,)) for tenant in grants for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"grants": grants, "operations": operations, "throttled_at": throttled_at})


def run_processes(connection: str, plans: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """Start one process per plan, all on one fresh table; start them together; return (t0, their results)."""
    ctx = mp.get_context("spawn")
    ready, results, go, start = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    table = f"budget{uuid.uuid4().hex[:10]}"
    processes = [ctx.Process(target=_worker, args=(connection, table, plan, ready, go, start, results), daemon=True)
                 for plan in plans]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=60)
        start.value = time.time() + 0.3
        go.set()
        collected = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    return start.value, collected


def max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def all_grants(results: list[dict[str, Any]], tenant: str) -> list[float]:
    return sorted(t for result in results for t in result["grants"].get(tenant, ()))


def count_between(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t < end)


@pytest.mark.slow
def test_four_processes_hammering_one_tenant_stay_within_its_rate_and_use_nearly_all_of_it(storage_connection):
    # Four, the hardest case of both (the most processes racing for the row); two tenants on two processes below
    seconds = 5.0
    t0, results = run_processes(storage_connection, [{"tenants": ["t1"], "seconds": seconds}] * 4)

    grants = all_grants(results, "t1")

    assert max_in_any_second(grants) <= CHANNEL_LIMIT
    steady = count_between(grants, t0 + 1.0, t0 + seconds) / (seconds - 1.0)  # after the first second's ramp
    assert steady >= 0.9 * LIMIT
    assert all(result["grants"]["t1"] for result in results)  # every process got its turn


@pytest.mark.slow
def test_table_operations_are_a_few_per_second_per_tenant_not_one_per_send(storage_connection):
    # GIVEN 4 processes sending to one tenant; once past the first two seconds (creating the table
    # and the row, chunks growing from the threads' first demand), two and a half steady seconds...
    seconds = 4.5
    t0, results = run_processes(storage_connection, [{"tenants": ["t1"], "seconds": seconds}] * 4)
    steady = (t0 + 2.0, t0 + seconds)

    operations = count_between(sorted(t for result in results for t in result["operations"]), *steady)
    sends = count_between(all_grants(results, "t1"), *steady)

    # THEN the table sees a few operations a second: a read and a write per half-second chunk, and lost races
    assert operations / (steady[1] - steady[0]) <= 10
    assert operations / sends <= 0.2


# Each tenant's rate over four seconds, of two processes: on a CPU shared with the rest of the suite it has read
# 42 a second for a limit of 48, so it runs with the other real-time checks, alone.
@pytest.mark.timing
def test_two_tenants_in_one_run_each_get_their_own_full_rate(storage_connection):
    seconds = 5.0
    t0, results = run_processes(storage_connection, [{"tenants": ["t1", "t2"], "seconds": seconds}] * 2)

    for tenant in ("t1", "t2"):
        grants = all_grants(results, tenant)
        assert max_in_any_second(grants) <= CHANNEL_LIMIT, tenant
        assert count_between(grants, t0 + 1.0, t0 + seconds) / (seconds - 1.0) >= 0.9 * LIMIT, tenant


@pytest.mark.slow
def test_throttled_in_one_process_lowers_the_rate_another_process_gets_then_it_recovers(storage_connection):
    # GIVEN process A sees a 429 (Retry-After: 1) for t1 while process B is about to send to t1
    seconds = 8.0
    t0, results = run_processes(storage_connection, [
        {"throttle": "t1", "retry_after": 1.0},
        {"tenants": ["t1"], "begin": 0.3, "seconds": seconds},
    ])
    throttled_at = results[0]["throttled_at"] if results[0]["throttled_at"] else results[1]["throttled_at"]
    grants = all_grants(results, "t1")
    # THEN B sends nothing during the pause, at the lowered rate just after it, and faster later
    first = count_between(grants, throttled_at + 1.0, throttled_at + 2.0)
    last = count_between(grants, throttled_at + 4.0, throttled_at + 5.0)
    assert count_between(grants, t0, throttled_at + 1.0) == 0
    assert 0 < first <= (DECREASE + RECOVERY) * LIMIT + 1  # lowered, and one second of recovery at most
    assert last >= first + 4  # additive increase per quiet second
    assert max_in_any_second(grants) <= CHANNEL_LIMIT


@pytest.mark.slow
def test_retry_after_from_one_process_is_honoured_by_another_already_sending(storage_connection):
    # GIVEN B sends to t1 at full rate; WHEN A sees a 429 with Retry-After: 2 a second and a half in
    seconds = 5.0
    t0, results = run_processes(storage_connection, [
        {"throttle": "t1", "retry_after": 2.0, "throttle_at": 1.5},
        {"tenants": ["t1"], "seconds": seconds},
    ])
    throttled_at = results[0]["throttled_at"]
    grants = all_grants(results, "t1")
    # THEN once B has used the slots it leased and checked before the 429 (a chunk is half a second,
    # checked 0.1 s before it starts), it sends nothing until the Retry-After has passed, then sends again
    assert count_between(grants, throttled_at + 0.7, throttled_at + 2.0) == 0
    assert count_between(grants, throttled_at + 2.0, t0 + seconds) > 0
    assert count_between(grants, t0, throttled_at) > 0
