"""The published job schema (schemas/job.v1.schema.json) and parse_job agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from shared_code.notifications.jobs import EDIT_KIND, TargetKind, parse_edit, parse_job
from shared_code.plumbing.errors import BadInput

CARD = {"contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hi"}]}}
ACTIONS = {"actions": [{"type": "imBack", "title": "Yes", "value": "yes"}]}
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "job.v1.schema.json").read_text())

GOOD = [
    {"v": 1, "to": "all", "text": "hi"},
    {"v": 1, "to": {"conversation": "x" * 1024}, "text": "hi", "locale": "x" * 64},
    {"v": 1, "to": {"conversation": "c/1?#"}, "text": "hi", "locale": "fr-FR"},
    {"v": 1, "kind": "dialog", "dialog": "survey", "to": {"user": "u"}},
    {"v": 1, "dialog": "survey", "to": {"channel": "msteams"}, "id": "x" * 200},
    {"v": 1, "to": "all", "text": "x" * 28672},
    {"v": 1, "to": "all", "attachments": [CARD]},
    {"v": 1, "to": "all", "text": "hi", "attachments": [CARD], "suggestedActions": ACTIONS},
    {"v": 1, "to": "all", "text": {"en": "hi", "fr": "salut"}, "defaultLocale": "en"},
    {"v": 1, "to": "all", "attachments": {"en": [CARD], "fr": [CARD]}},
    {"v": 1, "to": "all", "text": "hi", "suggestedActions": {"en": ACTIONS, "fr": ACTIONS}},
    {"v": 1, "to": "all", "text": "hi", "notBefore": "2026-12-01T09:00:00Z"},
    {"v": 1, "dialog": "survey", "to": "all", "notBefore": "2026-12-01T09:00:00.5+01:00"},
    {"v": 1, "to": "all", "text": "hi", "ack": {"title": "Got it"}},
    {"v": 1, "to": "all", "attachments": [CARD], "ack": {}},
    {"v": 1, "to": {"channelId": "msteams"}, "text": "hi"},
    {"v": 1, "to": {"team": "19:abc@thread.tacv2"}, "text": "hi"},
    {"v": 1, "to": {"teamChannel": "19:abc@thread.tacv2"}, "text": "hi"},
    {"v": 1, "dialog": "survey", "to": {"teamChannel": "19:abc@thread.tacv2"}},
    {"v": 1, "kind": "edit", "id": "release-42", "text": "corrected"},
    {"v": 1, "kind": "edit", "id": "release-42", "text": "corrected", "traceparent": "not one"},  # ignored
    {"v": 1, "to": "all", "text": "hi", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"v": 1, "kind": "edit", "id": "release-42", "attachments": [CARD], "suggestedActions": ACTIONS},
    {"v": 1, "kind": "edit", "id": "release-42", "text": {"en": "fixed", "fr": "corrigé"}, "defaultLocale": "en"},
]
BAD = [
    "not an object",
    {"v": True, "to": "all", "text": "true is not 1"},
    {"v": 1, "kind": None, "to": "all", "text": "a kind must be a kind"},
    {"v": 1, "to": {"user": "x" * 1025}, "text": "hi"},
    {"v": 1, "to": "all", "text": "hi", "locale": "x" * 65},
    {"to": "all", "text": "hi"},  # no version
    {"v": 2, "to": "all", "text": "hi"},
    {"v": 1, "kind": "scan", "to": "all", "text": "hi"},
    {"v": 1, "to": "everyone", "text": "hi"},
    {"v": 1, "to": {"conversation": ""}, "text": "hi"},
    {"v": 1, "to": {"conversation": "a", "user": "b"}, "text": "hi"},
    {"v": 1, "to": "all"},
    {"v": 1, "to": "all", "text": "   "},
    {"v": 1, "to": "all", "text": 5},
    {"v": 1, "to": "all", "text": "x" * 28673},
    {"v": 1, "to": "all", "text": "hi", "locale": 3},
    {"v": 1, "to": "all", "text": "hi", "id": ""},
    {"v": 1, "to": "all", "text": "hi", "id": "x" * 201},
    {"v": 1, "kind": "dialog", "dialog": "quiz", "to": "all"},
    {"v": 1, "kind": "dialog", "to": "all"},
    {"v": 1, "to": "all", "attachments": "a card"},
    {"v": 1, "to": "all", "attachments": [{"content": {}}]},  # no contentType
    {"v": 1, "to": "all", "attachments": [{"contentType": CARD["contentType"], "content": "{not json"}]},
    {"v": 1, "to": "all", "attachments": [{"contentType": CARD["contentType"], "content": {"type": "HeroCard"}}]},
    {"v": 1, "to": "all", "text": "hi", "suggestedActions": {"actions": []}},
    {"v": 1, "to": "all", "text": "hi", "suggestedActions": {"actions": [{"type": "dance", "title": "x"}]}},
    {"v": 1, "to": "all", "text": {"en": 5}},
    {"v": 1, "to": "all", "text": "hi", "notBefore": "2026-12-01T09:00:00"},  # no time zone
    {"v": 1, "to": "all", "text": "hi", "notBefore": "tomorrow"},
    {"v": 1, "to": "all", "text": "hi", "notBefore": 1764579600},
    {"v": 1, "to": "all", "text": "hi", "defaultLocale": 3},
    {"v": 1, "to": "all", "text": "hi", "ack": True},
    {"v": 1, "to": "all", "text": "hi", "ack": {"title": ""}},
    {"v": 1, "to": "all", "text": "hi", "ack": {"title": "ok", "colour": "green"}},
    {"v": 1, "dialog": "survey", "to": "all", "ack": {"title": "ok"}},
    {"v": 1, "to": {"channelId": ""}, "text": "hi"},
    {"v": 1, "to": {"team": ""}, "text": "hi"},
    {"v": 1, "to": {"teamChannel": 5}, "text": "hi"},
    {"v": 1, "to": {"channel": "msteams", "channelId": "msteams"}, "text": "hi"},
    {"v": 1, "to": {"teamchannel": "19:abc@thread.tacv2"}, "text": "hi"},
    {"v": 1, "kind": "edit", "text": "an edit names its notification"},
    {"v": 1, "kind": "edit", "id": "release-42"},  # no new content
    {"v": 1, "kind": "edit", "id": "release-42", "text": "hi", "to": "all"},  # the audience stays
    {"v": 1, "kind": "edit", "id": "release-42", "text": "hi", "ack": {"title": "ok"}},  # so does ack
    {"kind": "edit", "id": "release-42", "text": "no version"},
]


def schema_accepts(data: object) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(data)


def parser_accepts(data: object) -> bool:
    try:
        if isinstance(data, dict) and data.get("kind") == EDIT_KIND:
            parse_edit(data)
            return True
        parse_job(data)
        return True
    except BadInput:
        return False


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("example", SCHEMA["examples"])
def test_the_schemas_examples_validate_and_parse(example):
    assert schema_accepts(example) and parser_accepts(example)


@pytest.mark.parametrize("data", GOOD + BAD, ids=[f"good{i}" for i in range(len(GOOD))] + [f"bad{i}" for i in range(len(BAD))])
def test_parse_job_agrees_with_the_schema(data):
    assert parser_accepts(data) == schema_accepts(data) == (data in GOOD)


def test_channel_and_channel_id_parse_to_the_same_target():
    assert parse_job({"v": 1, "to": {"channel": "msteams"}, "text": "hi", "id": "a"}) == parse_job(
        {"v": 1, "to": {"channelId": "msteams"}, "text": "hi", "id": "a"})


@pytest.mark.parametrize(("to", "kind"), [({"team": "19:t"}, TargetKind.TEAM), ({"teamChannel": "19:t"}, TargetKind.TEAM_CHANNEL)])
def test_team_audiences_parse_and_write_back_unchanged(to, kind):
    job = parse_job({"v": 1, "to": to, "text": "hi"})

    assert (job.target.kind, job.target.value, job.to_json()["to"]) == (kind, "19:t", to)
