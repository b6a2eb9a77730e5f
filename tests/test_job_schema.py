"""The published job schema (schemas/job.v1.schema.json) and parse_job agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from shared_code.errors import BadInput
from shared_code.jobs import parse_job

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "job.v1.schema.json").read_text())

GOOD = [
    {"v": 1, "to": "all", "text": "hi"},
    {"v": 1, "to": {"conversation": "c/1?#"}, "text": "hi", "locale": "fr-FR"},
    {"v": 1, "kind": "dialog", "dialog": "survey", "to": {"user": "u"}},
    {"v": 1, "dialog": "survey", "to": {"channel": "msteams"}, "id": "x" * 200},
    {"v": 1, "to": "all", "text": "x" * 28672},
]
BAD = [
    "not an object",
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
]


def schema_accepts(data: object) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(data)


def parser_accepts(data: object) -> bool:
    try:
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
