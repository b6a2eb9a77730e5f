"""HTTP trigger route templates (ASP.NET style: `notify/{id?}`, `{id:int}`, `{*rest}`) and matching."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from urllib.parse import unquote

_PARAM = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<constraints>(?::[^:?=}]+(?:\([^)]*\))?)*)"
                    r"(?P<optional>\?)?(?:=(?P<default>[^}]*))?\}$")
_CONSTRAINT = re.compile(r":([a-zA-Z]+)(?:\(([^)]*)\))?")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
        return True
    except ValueError:
        return False


def _constraint(name: str, arg: str | None) -> Callable[[str], bool]:
    """One route constraint as a predicate; unknown ones are an error at host start, not a silent match."""
    args = [a.strip() for a in (arg or "").split(",")] if arg is not None else []
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**31 <= int(v) < 2**31,
        "long": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**63 <= int(v) < 2**63,
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _is_guid,
        "double": _is_float, "float": _is_float, "decimal": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple:
        return simple[name]
    if name == "minlength":
        return lambda v: len(v) >= int(args[0])
    if name == "maxlength":
        return lambda v: len(v) <= int(args[0])
    if name == "length":
        return (lambda v: len(v) == int(args[0])) if len(args) == 1 else (lambda v: int(args[0]) <= len(v) <= int(args[1]))
    if name == "min":
        return lambda v: re.fullmatch(r"-?\d+", v) is not None and int(v) >= int(args[0])
    if name == "max":
        return lambda v: re.fullmatch(r"-?\d+", v) is not None and int(v) <= int(args[0])
    if name == "range":
        return lambda v: re.fullmatch(r"-?\d+", v) is not None and int(args[0]) <= int(v) <= int(args[1])
    if name == "regex":
        pattern = re.compile(arg or "")
        return lambda v: pattern.search(v) is not None
    raise ValueError(f"unknown route constraint '{name}'")


@dataclass(frozen=True)
class Segment:
    literal: str | None = None  # a literal segment, or a parameter:
    name: str = ""
    optional: bool = False
    default: str | None = None
    catch_all: bool = False
    checks: tuple[Callable[[str], bool], ...] = ()

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


class Match(Enum):
    NONE = "none"
    PATH = "path"  # the path fits but the method does not
    FULL = "full"


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        segments: list[Segment] = []
        for part in [p for p in template.strip("/").split("/") if p]:
            if not (part.startswith("{") and part.endswith("}")):
                segments.append(Segment(literal=part))
                continue
            found = _PARAM.match(part)
            if not found:
                raise ValueError(f"route '{template}': cannot read parameter segment '{part}'")
            checks = tuple(_constraint(c.group(1).lower(), c.group(2))
                           for c in _CONSTRAINT.finditer(found.group("constraints") or ""))
            segments.append(Segment(name=found.group("name"), optional=bool(found.group("optional")),
                                    default=found.group("default"), catch_all=bool(found.group("star")),
                                    checks=checks))
        return cls(template, tuple(segments))

    @property
    def precedence(self) -> tuple[int, ...]:
        # ASP.NET tries literal segments before constrained parameters before catch-alls.
        return tuple(0 if s.literal is not None else 3 if s.catch_all else 1 if s.checks else 2 for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when `path` (already without the prefix) fits the template, else None."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                # ASP.NET Core routing: "catch-all parameters can also match the empty string".
                rest = "/".join(parts[index:])
                values[segment.name] = rest or (segment.default or "")
                return values
            if index >= len(parts):
                if segment.literal is None and (segment.optional or segment.default is not None):
                    if segment.default is not None:
                        values[segment.name] = segment.default
                    continue
                return None
            value = parts[index]
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
            elif not segment.accepts(value):
                return None
            else:
                values[segment.name] = value
        if len(parts) > len(self.segments):
            return None
        return values
