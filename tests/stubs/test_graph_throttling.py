"""The Graph stub's throttling at Graph's documented limits, and the faults a test injects for retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from stubs.graph import CallKind, Delivery, GraphFault, GraphLimits, GraphStub
from tests.support.clocks import FakeClock

MANIFEST_ID = "b7e2c4d1-9a3f-4e68-8c15-3d0f6a2b9e74"
CATALOG_ID = "2f8a6c3e-1b7d-4e95-a0c4-6d9e2b5f1a83"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def graph(clock: FakeClock) -> Iterator[GraphStub]:
    with GraphStub(limits=GraphLimits(clock=clock), delivery=Delivery.OFF) as stub:
        stub.register_app(MANIFEST_ID, catalog_id=CATALOG_ID)
        yield stub


def install(graph: GraphStub, user: str) -> requests.Response:
    return requests.post(f"{graph.base_url}/users/{user}/teamwork/installedApps", timeout=10,
                         json={"teamsApp@odata.bind": f"{graph.base_url}/appCatalogs/teamsApps/{CATALOG_ID}"})


def installed_apps(graph: GraphStub, user: str) -> requests.Response:
    return requests.get(f"{graph.base_url}/users/{user}/teamwork/installedApps", timeout=10)


def catalog(graph: GraphStub) -> requests.Response:
    return requests.get(f"{graph.base_url}/appCatalogs/teamsApps", timeout=10,
                        params={"$filter": f"externalId eq '{MANIFEST_ID}'"})


def test_the_31st_install_in_a_second_is_429_with_retry_after(graph: GraphStub) -> None:
    users = graph.add_users(31)

    answers = [install(graph, u.id) for u in users]

    assert [a.status_code for a in answers] == [201] * 30 + [429]
    assert answers[-1].headers["Retry-After"] == "1"
    assert answers[-1].json()["error"]["code"] == "TooManyRequests"
    assert graph.installs == 30 and graph.counters().throttled[CallKind.INSTALL] == 1


@pytest.mark.parametrize("kind", [CallKind.INSTALLED_APPS, CallKind.TEAMS_GET])
def test_other_teams_calls_are_limited_to_30_a_second(graph: GraphStub, kind: CallKind) -> None:
    user = graph.add_user().id
    call = (lambda: installed_apps(graph, user)) if kind is CallKind.INSTALLED_APPS else (lambda: catalog(graph))

    codes = [call().status_code for _ in range(31)]

    assert codes == [200] * 30 + [429]


def test_each_kind_of_call_has_its_own_window(graph: GraphStub) -> None:
    users = graph.add_users(30)

    codes = [install(graph, u.id).status_code for u in users] + [installed_apps(graph, u.id).status_code for u in users]

    assert codes == [201] * 30 + [200] * 30


def test_the_window_slides_a_call_is_accepted_once_the_oldest_is_a_second_old(graph: GraphStub, clock) -> None:
    users = graph.add_users(32)
    for user in users[:15]:
        install(graph, user.id)
    clock.sleep(0.5)
    for user in users[15:30]:
        install(graph, user.id)

    throttled = install(graph, users[30].id)
    clock.sleep(0.5)  # the first 15 are now a second old
    accepted = install(graph, users[30].id)

    assert (throttled.status_code, accepted.status_code) == (429, 201)


def test_limits_are_per_tenant(clock: FakeClock) -> None:
    limits = GraphLimits(clock=clock)

    answers = [limits.admit(tenant, CallKind.INSTALL) for tenant in ("t1", "t2") for _ in range(30)]

    assert answers == [None] * 60
    assert limits.admit("t1", CallKind.INSTALL).status == 429
    assert (limits.throttled(CallKind.INSTALL, "t1"), limits.throttled(CallKind.INSTALL, "t2")) == (1, 0)


def test_the_apps_limit_across_tenants_applies_too(clock: FakeClock) -> None:
    limits = GraphLimits(clock=clock)

    answers = [limits.admit(f"tenant-{i}", CallKind.INSTALL) for i in range(301)]

    assert answers[:300] == [None] * 300 and answers[300].status == 429


def test_limits_off_never_throttle(clock: FakeClock) -> None:
    limits = GraphLimits.off(clock=clock)

    assert all(limits.admit("t", CallKind.INSTALL) is None for _ in range(1000))


def test_a_queued_503_with_retry_after_comes_once_then_the_call_succeeds(graph: GraphStub) -> None:
    user = graph.add_user().id
    graph.fail_next(CallKind.INSTALL, GraphFault(503, retry_after=2))

    first, second = install(graph, user), install(graph, user)

    assert (first.status_code, first.headers["Retry-After"], first.json()["error"]["code"]) == (
        503, "2", "ServiceNotAvailable")
    assert second.status_code == 201 and graph.counters().faults_injected == 1


def test_a_fault_policy_sees_the_kind_the_target_and_the_attempt(clock: FakeClock) -> None:
    seen: list[tuple[CallKind, str, int]] = []

    def policy(kind: CallKind, target: str, attempt: int) -> GraphFault | None:
        seen.append((kind, target, attempt))
        return GraphFault(504, retry_after=1) if attempt == 1 else None

    with GraphStub(limits=GraphLimits(clock=clock), faults=policy) as graph:
        user = graph.add_user().id
        codes = [installed_apps(graph, user).status_code for _ in range(2)]

    assert codes == [504, 200]
    assert seen == [(CallKind.INSTALLED_APPS, user, 1), (CallKind.INSTALLED_APPS, user, 2)]


def test_counters_count_calls_of_each_kind_refused_ones_included(graph: GraphStub) -> None:
    user = graph.add_user().id
    install(graph, user)
    install(graph, user)  # 409
    installed_apps(graph, user)
    requests.get(f"{graph.base_url}/users", timeout=10)

    counters = graph.counters()

    assert counters.calls == {CallKind.INSTALL: 2, CallKind.INSTALLED_APPS: 1, CallKind.DIRECTORY: 1}
    assert counters.installs == 1
