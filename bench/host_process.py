"""The dev host (`python -m devhost`) in a subprocess, as a developer runs it, for end-to-end figures.

A subprocess and not `Host(...)` in the bench's own process: the host's request and
queue threads must not share a GIL with the client that times them.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from bench.common import ROOT

START_TIMEOUT = 60.0


class HostProcess:
    """`with HostProcess(settings) as host:` runs the app at `host.url`; the tail of its log is kept for errors."""

    def __init__(self, settings: dict[str, str], module: str = "devhost") -> None:
        """`module`: what `python -m` runs, with `--root` and `--port 0`; it prints `devhost: listening on URL`."""
        # Every setting the app reads has the example's value unless the run says otherwise, as a fresh
        # `make run` would; the timers are off: their work would mix with what the figures measure.
        example = json.loads((Path(ROOT) / "local.settings.example.json").read_text())["Values"]
        timers_off = {f"AzureWebJobs.{name}.Disabled": "true"
                      for name in ("TimerSurveyFunction", "ScheduledNotificationsFunction", "PurgeFunction")}
        self._env = {**example, **os.environ, **settings, "PYTHONUNBUFFERED": "1", **timers_off}
        self._module = module
        self._process: subprocess.Popen[str] | None = None
        self._log: deque[str] = deque(maxlen=40)
        self.url = ""

    def __enter__(self) -> HostProcess:
        self._process = subprocess.Popen([sys.executable, "-m", self._module, "--root", ROOT, "--port", "0"],
                                         cwd=ROOT, env=self._env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, start_new_session=True)
        lines: queue.Queue[str] = queue.Queue()
        # The pipe must be drained for the host's whole life, or a chatty log blocks it.
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self._process.poll() is not None:
                    break
                continue
            if line.startswith("devhost: listening on "):
                self.url = line.split("listening on ", 1)[1].split()[0]
                return self
        self.__exit__()
        raise RuntimeError("the dev host did not start:\n" + self.log_tail())

    def _drain(self, lines: queue.Queue[str]) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._log.append(line.rstrip())
            if not self.url:
                lines.put(line)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL, by this host's own pid: it dies mid-work, as an instance that is lost does."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(10)

    def log_tail(self) -> str:
        return "\n".join(self._log)

    def __exit__(self, *exc: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()  # SIGTERM: the host stops cleanly
        try:
            self._process.wait(20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
