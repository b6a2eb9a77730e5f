"""The function app on disk: host.json, every */function.json and local.settings.json, settings resolved.

local.settings.json `Values` go into the environment, but a variable already set in the
environment wins (as with `func start`): `AzureWebJobsStorage=... python -m devhost` overrides the file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost")

_SETTING = re.compile(r"%([^%]+)%")
# Binding fields the real host resolves %Setting% in (it resolves every string attribute of a
# binding except a few; resolving all strings but the ones below matches it closely enough).
_NOT_RESOLVED = {"type", "direction", "name", "connection"}


class AppError(Exception):
    """The app cannot be hosted as it is on disk: names the function and setting at fault."""


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues` of host.json, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float = 300.0


@dataclass(frozen=True)
class FunctionSpec:
    """One function folder: its bindings with %Setting% already resolved."""

    name: str
    directory: Path
    script_file: Path
    entry_point: str
    bindings: list[dict[str, Any]]
    disabled: bool = False
    raw_bindings: list[dict[str, Any]] = field(default_factory=list)  # as written, %Setting% unresolved

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).endswith("Trigger"))

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    def written(self, key: str) -> str:
        """A trigger field as function.json writes it (e.g. "%SurveySchedule%"), for error messages."""
        raw = next((b for b in self.raw_bindings if str(b.get("type", "")).endswith("Trigger")), {})
        return str(raw.get(key, self.trigger.get(key, "")))


@dataclass
class App:
    root: Path
    host: HostConfig
    functions: list[FunctionSpec]
    skipped: dict[str, str]  # function name -> why it is not hosted
    local_settings: dict[str, Any]


def parse_timespan(value: str | int | float, *, what: str) -> float:
    """Seconds in a .NET TimeSpan string ("00:00:02", "1.02:00:00") as host.json writes them."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?", str(value).strip())
    if not match:
        raise AppError(f"host.json: {what} = {value!r} is not a TimeSpan like 00:00:10")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def load_host_config(root: Path) -> HostConfig:
    path = root / "host.json"
    if not path.exists():
        raise AppError(f"{root}: no host.json, this is not a function app folder")
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    queues = extensions.get("queues") or {}
    defaults = QueueOptions()
    batch_size = int(queues.get("batchSize", defaults.batch_size))
    options = QueueOptions(
        batch_size=batch_size,
        # The host's default threshold is half the batch size.
        new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
        max_polling_interval=parse_timespan(queues.get("maxPollingInterval", defaults.max_polling_interval),
                                            what="extensions.queues.maxPollingInterval"),
        visibility_timeout=parse_timespan(queues.get("visibilityTimeout", defaults.visibility_timeout),
                                          what="extensions.queues.visibilityTimeout"),
        max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
        message_encoding=str(queues.get("messageEncoding", defaults.message_encoding)).lower(),
    )
    if options.message_encoding not in ("base64", "none"):
        raise AppError(f"host.json: extensions.queues.messageEncoding must be base64 or none, not {options.message_encoding!r}")
    timeout = data.get("functionTimeout")
    return HostConfig(
        route_prefix=str(http.get("routePrefix", "api")).strip("/"),
        queues=options,
        function_timeout=parse_timespan(timeout, what="functionTimeout") if timeout else 300.0,
    )


def apply_local_settings(root: Path, environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, Any]:
    """Put local.settings.json Values into the environment; a variable already set wins, as with `func start`."""
    path = root / "local.settings.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    for key, value in (data.get("Values") or {}).items():
        if key not in environ:
            environ[key] = "" if value is None else str(value)
    return data


def resolve_settings(function: str, binding: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """The binding with every %Setting% replaced by its value; a missing setting is an AppError naming both."""

    def resolve(key: str, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            setting = match.group(1)
            if setting not in environ:
                raise AppError(f"Function '{function}': binding field '{key}' refers to app setting "
                               f"'%{setting}%', which is not set (local.settings.json Values or the environment)")
            return environ[setting]

        return _SETTING.sub(value, text)

    return {key: resolve(key, value) if isinstance(value, str) and key not in _NOT_RESOLVED else value
            for key, value in binding.items()}


def load_function(folder: Path, environ: dict[str, str] | os._Environ[str]) -> FunctionSpec:
    name = folder.name
    data = json.loads((folder / "function.json").read_text(encoding="utf-8-sig"))
    bindings = [resolve_settings(name, b, environ) for b in data.get("bindings") or []]
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise AppError(f"Function '{name}': function.json must have exactly one trigger binding, found {len(triggers)}")
    disabled = data.get("disabled", False)
    # The host also honours AzureWebJobs.<Name>.Disabled, the way the portal disables a function.
    disabled = disabled or environ.get(f"AzureWebJobs.{name}.Disabled", "").lower() == "true"
    return FunctionSpec(
        name=name,
        directory=folder,
        script_file=folder / data.get("scriptFile", "__init__.py"),
        entry_point=data.get("entryPoint", "main"),
        bindings=bindings,
        disabled=bool(disabled),
        raw_bindings=list(data.get("bindings") or []),
    )


def load_app(root: Path, environ: dict[str, str] | os._Environ[str] = os.environ) -> App:
    """Read the app as the host does at start; settings go into `environ` first so %Setting% resolves."""
    root = root.resolve()
    host = load_host_config(root)
    local_settings = apply_local_settings(root, environ)
    functions: list[FunctionSpec] = []
    skipped: dict[str, str] = {}
    for path in sorted(root.glob("*/function.json")):
        spec = load_function(path.parent, environ)
        if spec.disabled:
            skipped[spec.name] = "disabled"
            log.info("Function '%s' is disabled", spec.name)
        elif not spec.script_file.exists():
            skipped[spec.name] = f"script file {spec.script_file.name} is missing"
            log.warning("Function '%s' skipped: %s does not exist yet", spec.name, spec.script_file)
        else:
            functions.append(spec)
    return App(root=root, host=host, functions=functions, skipped=skipped, local_settings=local_settings)
