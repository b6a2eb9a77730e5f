"""One function invocation: the context object, the host's Executing/Executed log lines, timing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import _abc

from devhost.app import FunctionSpec
from devhost.loader import EntryPoint

log = logging.getLogger("devhost")

_thread_local = threading.local()


class _TraceContext(_abc.TraceContext):
    trace_state = property(lambda self: "")
    trace_parent = property(lambda self: "")
    attributes = property(lambda self: {})


class _RetryContext(_abc.RetryContext):
    retry_count = property(lambda self: 0)
    max_retry_count = property(lambda self: 0)
    exception = property(lambda self: None)


class Context(func.Context):
    """azure.functions.Context is abstract; this is the small concrete one the worker would pass."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: self._function_directory)
    thread_local_storage = property(lambda self: _thread_local)
    trace_context = property(lambda self: _TraceContext())
    retry_context = property(lambda self: _RetryContext())


class InvocationFailed(Exception):
    """The function raised; carries the invocation id the caller may show (never the traceback)."""

    def __init__(self, invocation_id: str, cause: BaseException) -> None:
        super().__init__(f"invocation {invocation_id} failed: {type(cause).__name__}")
        self.invocation_id = invocation_id
        self.cause = cause


@dataclass(frozen=True)
class Function:
    """A loaded function: what function.json says and the Python callable behind it."""

    spec: FunctionSpec
    entry: EntryPoint

    @property
    def name(self) -> str:
        return self.spec.name

    def invoke(self, trigger_value: Any, *, reason: str, invocation_id: str | None = None) -> Any:
        """Run the function once; logs like the host and raises InvocationFailed when it raises."""
        invocation_id = invocation_id or str(uuid.uuid4())
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", self.name, reason, invocation_id)
        kwargs: dict[str, Any] = {self.entry.trigger_param: trigger_value}
        if self.entry.wants_context:
            kwargs["context"] = Context(invocation_id, self.name, str(self.spec.directory))
        started = time.monotonic()
        _thread_local.invocation_id = invocation_id
        try:
            result = self.entry.func(**kwargs)
            if self.entry.is_async:
                result = asyncio.run(result)
        except Exception as exc:
            duration = round((time.monotonic() - started) * 1000)
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", self.name, invocation_id, duration,
                      exc_info=exc)
            raise InvocationFailed(invocation_id, exc) from exc
        finally:
            _thread_local.invocation_id = None
        duration = round((time.monotonic() - started) * 1000)
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", self.name, invocation_id, duration)
        return result
