"""infra/workbook.json, the saved Application Insights workbook: valid, and querying the names the code emits."""

from __future__ import annotations

import json
from pathlib import Path

from shared_code.plumbing import tracing

WORKBOOK = Path(__file__).resolve().parents[2] / "infra" / "workbook.json"


def queries() -> str:
    book = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    assert book["version"] == "Notebook/1.0"
    return "\n".join(item["content"]["query"] for item in book["items"] if item["type"] == 3)


def test_workbook_queries_every_metric_the_code_emits_by_its_name():
    text = queries()

    assert [name for name in tracing.INSTRUMENTS if f'"{name}"' not in text] == []


def test_workbook_timeline_names_the_spans_and_attributes_the_code_writes():
    text = queries()
    spans = [tracing.NOTIFY, tracing.SEND, tracing.EDIT, tracing.RECALL, tracing.RESUME, tracing.DUE,
             *(tracing.JOB.format(kind=kind) for kind in ("scan", "page", "watch"))]
    attributes = [tracing.NOTIFICATION_ID, tracing.PAGE, tracing.ATTEMPT, tracing.RECIPIENTS, tracing.OUTCOME,
                  tracing.CODE, tracing.TENANT, tracing.SOURCE]

    assert [name for name in spans + attributes if f'"{name}"' not in text] == []


def test_workbook_draws_the_sends_per_second_against_the_channels_limit():
    assert "limit_per_second = 50.0" in queries()
