"""Hostile JSON for property-based tests of the edges: lone surrogates, controls, very long strings, deep
nesting, extreme dates and wrong types, put into otherwise valid documents and serialised as an attacker
would send them (json.dumps writes a lone surrogate as the escape "\\ud800")."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
EXTREME_DATES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z",
                 "9999-12-31T23:59:59Z", "1600-12-31T23:59:59Z", "2026-02-30T09:00:00Z", "2026-12-01T09:00:00")
CONTROLS = tuple(chr(c) for c in range(0x20)) + ("\x7f", "\x85", "\u2028", "\ufeff", "\ufffe", "\uffff")


@dataclass(frozen=True)
class Deep:
    """JSON nested `depth` levels: written out by `dumps`, since json.dumps itself would recurse."""

    depth: int
    kind: str = "["

    def text(self) -> str:
        if self.kind == "[":
            return "[" * self.depth + "]" * self.depth
        return '{"a":' * self.depth + "1" + "}" * self.depth


with_surrogate = st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), st.sampled_from(LONE_SURROGATES),
                           st.text(max_size=8))
controls = st.text(alphabet=st.sampled_from(CONTROLS), min_size=1, max_size=20)
long_strings = st.builds(lambda n, c: c * n, st.sampled_from([65, 101, 201, 257, 1001, 1025, 2049, 6000, 8193, 40_000,
                                                              100_000]),
                         st.sampled_from(["x", "é", "😀", '"', "\x01"]))
hostile_strings = st.one_of(st.text(max_size=30), with_surrogate, controls, long_strings, st.sampled_from(EXTREME_DATES))
deep = st.builds(Deep, st.sampled_from([65, 100, 1000, 10_000]), st.sampled_from(["[", "{"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20),
                    st.floats(allow_nan=False, allow_infinity=False))
hostile_values = st.one_of(
    hostile_strings, scalars, deep,
    st.lists(st.one_of(hostile_strings, scalars), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=10), with_surrogate), st.one_of(hostile_strings, scalars, deep),
                    max_size=3),
)


def changes(paths: list[tuple[str, ...]]) -> st.SearchStrategy[list[tuple[tuple[str, ...], Any]]]:
    """One to three (path, hostile value) pairs to put into a valid document."""
    return st.lists(st.tuples(st.sampled_from(paths), hostile_values), min_size=1, max_size=3)


def mutated(document: dict[str, Any], edits: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for path, value in edits:
        target = out
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    return out


def dumps(document: Any) -> bytes:
    raws: list[str] = []

    def placeholder(value: Any) -> str:
        if not isinstance(value, Deep):
            raise TypeError(type(value).__name__)
        raws.append(value.text())
        return f"@@deep{len(raws) - 1}@@"

    text = json.dumps(document, default=placeholder)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@deep{index}@@"', raw)
    return text.encode()


def tracebacks(records: list[Any]) -> list[str]:
    """The log records that carry a traceback (what an operator must never see for bad input)."""
    return [record.getMessage()[:200] for record in records
            if record.exc_info or "Traceback" in record.getMessage()]
