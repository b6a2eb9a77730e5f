"""The Teams payloads kept in tests/fixtures/teams, pointed at a connector stub, and their ids."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT_ID = "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c"
MEGAN = "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-NJWi7me2kHTL3Bw"
ALEX = "29:1pBMMC85IyjM3tr_MCZi7KW4pw4EULxLN4C7R_xoi3Wva_lOn3VTf7xJlCLK-r-pMumrmoz9agZxsSrCf7__u9R"
TEAM_ID = "19:5b8c8f8a2f0c4a2e9d8e1c7b6a5f4e3d@thread.tacv2"
THREAD_ID = f"{TEAM_ID};messageid=1481567603816"
GROUP_CHAT_ID = "19:c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6@thread.v2"
MEETING_ID = "19:meeting_MjdhNjM4YzUtYzExZi00OTFkLTkzZTAtNTVlNmZmMDhkNGU2@thread.v2"


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def names() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def payload(name: str, service_url: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of the fixture `name`, sent by the stub at `service_url`, with `changes` on top."""
    activity = copy.deepcopy(_load(name))
    activity["serviceUrl"] = service_url
    activity.update(changes)
    return activity
