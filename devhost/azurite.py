"""Azurite, the storage emulator: start it on free ports in a folder, stop it for sure.

`python -m devhost.azurite -- CMD ...` runs CMD with AzureWebJobsStorage pointing
at a fresh Azurite and stops Azurite when CMD ends, whatever its exit status.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://127\.0\.0\.1:(\d+)")


@dataclass
class Azurite:
    process: subprocess.Popen
    folder: Path
    ports: dict[str, int]
    owns_folder: bool

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def connection_string(ports: dict[str, int], host: str = "127.0.0.1") -> str:
    parts = ["DefaultEndpointsProtocol=http", f"AccountName={ACCOUNT}", f"AccountKey={ACCOUNT_KEY}"]
    for service in ("Blob", "Queue", "Table"):
        if service.lower() in ports:
            parts.append(f"{service}Endpoint=http://{host}:{ports[service.lower()]}/{ACCOUNT}")
    return ";".join(parts) + ";"


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `npm ci` in the project folder (make does it)")


def start(folder: Path | None = None, *, blob: bool = True, timeout: float = 60.0) -> Azurite:
    """Start Azurite on free loopback ports; returns once every service listens."""
    owns = folder is None
    folder = Path(tempfile.mkdtemp(prefix="azurite-")) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    args = [
        azurite_binary(),
        "--blobHost", "127.0.0.1", "--blobPort", "0",
        "--queueHost", "127.0.0.1", "--queuePort", "0",
        "--tableHost", "127.0.0.1", "--tablePort", "0",
        "--skipApiVersionCheck", "--disableProductStyleUrl",
        # Node closes an idle keep-alive connection after 5 s by default. A client that reuses it at that
        # moment gets no answer (RemoteDisconnected), and a transaction's POST is not retried: a ledger claim
        # may then stand with its outcome unknown. Azure Storage keeps idle connections for minutes.
        "--blobKeepAliveTimeout", "300", "--queueKeepAliveTimeout", "300", "--tableKeepAliveTimeout", "300",
        # Azurite reports every request to Microsoft's telemetry unless told not to: nothing of a developer's
        # leaves the machine, and the CPU it spends batching (and failing to send, offline) is not ours to pay.
        "--disableTelemetry",
    ]
    if owns:
        # A throwaway folder (tests, benchmarks): nothing to keep, so nothing is written. A persisted
        # Azurite re-saves its whole database every few seconds, and once a run has stored tens of
        # thousands of rows those saves stall it for long enough to disturb what is measured.
        args.append("--inMemoryPersistence")
    else:
        args += ["--location", str(folder)]
    log_path = folder / "azurite.out"
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    wanted = {"blob", "queue", "table"} if blob else {"queue", "table"}
    deadline = time.monotonic() + timeout
    ports: dict[str, int] = {}
    while time.monotonic() < deadline:
        for service, port in _LISTENING.findall(log_path.read_text()):
            ports[service.lower()] = int(port)
        if wanted <= ports.keys():
            return Azurite(process=process, folder=folder, ports=ports, owns_folder=owns)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    output = log_path.read_text()
    Azurite(process=process, folder=folder, ports=ports, owns_folder=owns).stop()
    raise RuntimeError(f"Azurite did not start:\n{output}")


@contextmanager
def running(*, blob: bool = False) -> Iterator[str]:
    """A connection string for the block: the Azurite this process runs under (`python -m devhost.azurite --`,
    as `make test` and `make bench` do), or a fresh one stopped when the block ends."""
    if os.environ.get("AZURITE_RUNNING") == "1" and os.environ.get("AzureWebJobsStorage"):
        yield os.environ["AzureWebJobsStorage"]
        return
    emulator = start(blob=blob)
    try:
        yield emulator.connection_string
    finally:
        emulator.stop()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m devhost.azurite -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    azurite = start()
    env = dict(os.environ, AzureWebJobsStorage=azurite.connection_string, AZURITE_RUNNING="1")
    print(f"Azurite: queue :{azurite.ports['queue']}, table :{azurite.ports['table']}, blob :{azurite.ports['blob']}", flush=True)
    child = subprocess.Popen(command, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        return child.wait()
    finally:
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
