"""TeamsFunction: GET /api/teams lists the teams the bot is (or was) installed in."""

from __future__ import annotations

import json

import MessagesFunction
import TeamsFunction
from tests.support.builders import http_request
from tests.support.teams import TEAM_ID, TENANT, payload


def teams(method: str = "GET"):
    return TeamsFunction.main(http_request(method, "http://localhost/api/teams"))


def post(name: str, connector) -> None:
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", payload(name, connector.url)))


def test_teams_lists_each_team_with_its_id_name_tenant_and_whether_installed(app_env, connector):
    post("bot_added_to_team", connector)

    response = teams()

    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"teams": [{
        "id": TEAM_ID, "name": "Sales", "aadGroupId": "02ce3874-dd86-41ba-bddc-013f34019978", "tenantId": TENANT,
        "channelId": "msteams", "installed": True}]}


def test_teams_shows_an_uninstalled_team_as_not_installed(app_env, connector):
    post("bot_added_to_team", connector)
    post("installation_remove", connector)

    [team] = json.loads(teams().get_body())["teams"]

    assert (team["id"], team["installed"]) == (TEAM_ID, False)


def test_teams_is_empty_before_any_install(app_env, connector):
    assert json.loads(teams().get_body()) == {"teams": []}


def test_teams_answers_another_method_with_a_json_400(app_env, connector):
    response = teams("POST")

    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["code"] == "bad_request"


def test_teams_function_json_is_a_get_route_at_api_teams():
    from pathlib import Path

    spec = json.loads((Path(TeamsFunction.__file__).parent / "function.json").read_text())
    [trigger] = [b for b in spec["bindings"] if b["type"] == "httpTrigger"]
    assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == ("teams", ["get"], "function")


def test_teams_function_logs_one_outcome_line_with_the_count(app_env, connector, caplog):
    import logging

    post("bot_added_to_team", connector)
    caplog.set_level(logging.INFO)

    teams()

    [line] = [r.getMessage() for r in caplog.records if "function=TeamsFunction" in r.getMessage()]
    assert "outcome=" in line and "teams=1" in line and "status=200" in line
