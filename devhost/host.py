"""The local Functions host: loads the app's folders and runs their HTTP, queue and timer triggers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devhost.app import App, AppError, load_app
from devhost.http_trigger import HttpFront, Router
from devhost.invocation import Function, InvocationFailed
from devhost.loader import load_entry_point
from devhost.queue_trigger import QueueListener, admin_message, connection_string
from devhost.timer_trigger import ScheduleMonitor, TimerListener, parse_schedule, timer_request

log = logging.getLogger("devhost")

ADMIN_REASON = "This function was programmatically called via the host APIs."
SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")


class Host:
    """`Host(root, port=0).start()` serves the app at `.url` until `.stop()` (or use it as a context manager).

    Start fails with AppError (naming the function and setting) when a binding cannot work:
    an unset %Setting%, a bad schedule, a missing storage connection. A function whose script
    file does not exist yet, or that fails to import, is skipped with a warning instead.
    """

    def __init__(self, root: str | Path = ".", *, port: int = 7071, bind: str = "127.0.0.1",
                 monitor: ScheduleMonitor | None = None, sign_in: Mapping[str, str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.bind = bind
        self.monitor = monitor or ScheduleMonitor()
        # Headers App Service Authentication adds for a signed-in person (None: no platform authentication).
        self.sign_in = sign_in
        self.app: App | None = None
        self.functions: dict[str, Function] = {}
        self.skipped: dict[str, str] = {}
        self._http: HttpFront | None = None
        self._listeners: list[QueueListener | TimerListener] = []
        self._admin_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="admin")
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the host is not started")
        host = "localhost" if self.bind in ("127.0.0.1", "0.0.0.0") else self.bind
        return f"http://{host}:{self._http.port}"

    def start(self) -> Host:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Host:
        app = load_app(self.root)
        self.app = app
        self.skipped = dict(app.skipped)
        for spec in app.functions:
            if spec.trigger_type not in SUPPORTED_TRIGGERS:
                self.skipped[spec.name] = f"{spec.trigger_type} is not supported by devhost"
                log.warning("Function '%s' skipped: %s", spec.name, self.skipped[spec.name])
                continue
            try:
                entry = load_entry_point(spec, app.root)
            except AppError as exc:
                self.skipped[spec.name] = str(exc)
                log.error("Function '%s' skipped: %s", spec.name, exc)
                continue
            except Exception as exc:  # the function's own import failed: show it, host the others
                self.skipped[spec.name] = f"import failed: {type(exc).__name__}: {exc}"
                log.exception("Function '%s' skipped: importing %s failed", spec.name, spec.script_file)
                continue
            self.functions[spec.name] = Function(spec, entry)
        # Everything that can be wrong with a binding is checked before anything starts.
        listeners: list[QueueListener | TimerListener] = []
        for function in self.functions.values():
            if function.spec.trigger_type == "timerTrigger":
                listeners.append(TimerListener(function, parse_schedule(function.spec), self.monitor))
            elif function.spec.trigger_type == "queueTrigger":
                if not function.spec.trigger.get("queueName"):
                    raise AppError(f"Function '{function.name}': queueTrigger binding has no queueName")
                listeners.append(QueueListener(function, app.host.queues, connection_string(function)))
        http_functions = [f for f in self.functions.values() if f.spec.trigger_type == "httpTrigger"]
        try:
            router = Router(http_functions, app.host.route_prefix, self._admin, self.sign_in)
        except ValueError as exc:
            raise AppError(str(exc)) from exc
        self._http = HttpFront(router, self.bind, self.port)
        for listener in listeners:
            listener.start()
            self._listeners.append(listener)
        self._http.start()
        self._log_functions(router)
        return self

    def stop(self) -> None:
        """Stop taking work, then let every in-flight invocation finish; idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._http is not None:
            self._http.stop()  # joins the request threads: in-flight HTTP invocations finish
        for listener in self._listeners:
            listener.stop()
        self._admin_pool.shutdown(wait=True)
        log.info("Host stopped")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _admin(self, name: str, text: str) -> tuple[int, Any]:
        function = next((f for n, f in self.functions.items() if n.lower() == name.lower()), None)
        if function is None:
            return 404, {"error": {"code": "NotFound", "message": f"No function named '{name}'"}}
        trigger = function.spec.trigger_type
        if trigger == "httpTrigger":
            return 400, {"error": {"code": "BadRequest", "message": "Call an HTTP function on its route"}}
        value = admin_message(text) if trigger == "queueTrigger" else timer_request(False, None)
        try:
            self._admin_pool.submit(self._run_quietly, function, value)
        except RuntimeError:  # the pool is shut down: the host is stopping
            return 503, {"error": {"code": "Stopping", "message": "The host is stopping"}}
        return 202, None

    @staticmethod
    def _run_quietly(function: Function, value: Any) -> None:
        try:
            function.invoke(value, reason=ADMIN_REASON)
        except InvocationFailed:
            pass  # logged by the invocation

    def _log_functions(self, router: Router) -> None:
        lines = ["Functions:"]
        for route in router.routes:
            methods = ",".join(route.methods)
            lines.append(f"    {route.function.name}: [{methods}] {self.url}{router.prefix}/{route.template.template}")
        for function in self.functions.values():
            trigger = function.spec.trigger
            if function.spec.trigger_type == "queueTrigger":
                lines.append(f"    {function.name}: queueTrigger on '{trigger['queueName']}'")
            elif function.spec.trigger_type == "timerTrigger":
                lines.append(f"    {function.name}: timerTrigger '{trigger['schedule']}'")
        for name, why in self.skipped.items():
            lines.append(f"    {name}: NOT RUNNING ({why})")
        log.info("\n".join(lines))

