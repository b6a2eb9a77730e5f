"""EnvironmentOnceSession prepares and routes a request exactly as requests.Session does."""

from __future__ import annotations

import pytest
import requests

from shared_code.plumbing.http_session import EnvironmentOnceSession

URL = "http://127.0.0.1:1234/v3/conversations/a%3Ab/activities"


def prepared(session: requests.Session, request: requests.Request) -> tuple[object, ...]:
    p = session.prepare_request(request)
    return p.method, p.url, dict(p.headers), p.body, p.hooks


@pytest.mark.parametrize("request_", [
    requests.Request("POST", URL, headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
                     json={"type": "message", "text": "hé"}, data={}, params={}),
    requests.Request("post", URL, headers={"Accept": None}, json={"text": "x"}),
    requests.Request("GET", URL, params={"pageSize": "50", "continuationToken": "a b"}),
    requests.Request("PUT", URL, data=b"raw", cookies={"c": "1"}),
    requests.Request("DELETE", URL, auth=("user", "secret")),
])
def test_requests_are_prepared_as_requests_prepares_them(request_: requests.Request) -> None:
    assert prepared(EnvironmentOnceSession(), request_) == prepared(requests.Session(), request_)


def test_a_session_holding_cookies_merges_them_as_requests_does() -> None:
    ours, theirs = EnvironmentOnceSession(), requests.Session()
    for session in (ours, theirs):
        session.cookies.set("affinity", "1", domain="127.0.0.1", path="/")
    request = requests.Request("POST", URL, json={"text": "x"})
    assert prepared(ours, request) == prepared(theirs, request)


def test_the_environment_is_read_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = EnvironmentOnceSession()
    expected = requests.Session().merge_environment_settings("http://channel.example/v3", {}, None, None, None)
    assert session.merge_environment_settings("http://channel.example/v3", {}, None, None, None) == expected
    assert session.merge_environment_settings("http://127.0.0.1:9/v3", {}, None, None, None)["proxies"] == {}
    monkeypatch.setenv("HTTP_PROXY", "http://other.example:3128")  # read once: the process's configuration
    assert session.merge_environment_settings("http://channel.example/x", {}, None, None, None) == expected
    mine = {"http": "http://mine.example:1"}  # a call's own proxies are merged as requests merges them
    assert session.merge_environment_settings("http://channel.example/x", dict(mine), None, None, None)["proxies"]["http"] \
        == mine["http"]
