"""`python -m devhost`: run the function app in a folder on the local host until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from devhost import telemetry
from devhost.app import AppError
from devhost.host import Host


def configure_logging(level: int = logging.INFO) -> None:
    """Host lines and the functions' own log lines, timestamped like `func start` prints them."""
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def wait_for_stop_signal() -> None:
    """Block until Ctrl-C or SIGTERM (both mean: stop cleanly)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--root", default=".", help="the function app folder (with host.json)")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port; 0 = a free one (default: local.settings.json Host.LocalHttpPort or 7071)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    telemetry_on = telemetry.configure()  # OTEL_TRACES_EXPORTER=console and the like (devhost/telemetry.py)
    if telemetry_on:
        print(f"devhost: OpenTelemetry {', '.join(telemetry_on)}", flush=True)
    port = args.port if args.port is not None else local_http_port(Path(args.root))
    host = Host(args.root, port=port, bind=args.bind)
    try:
        host.start()
    except AppError as exc:
        print(f"devhost: cannot start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"devhost: cannot listen on {args.bind}:{port}: {exc} (try --port 0)", file=sys.stderr)
        return 2
    print(f"devhost: listening on {host.url} (Ctrl-C to stop)", flush=True)
    try:
        wait_for_stop_signal()
    finally:
        print("devhost: stopping, letting running invocations finish...", flush=True)
        host.stop()
    return 0


def local_http_port(root: Path) -> int:
    path = root / "local.settings.json"
    if path.exists():
        port = (json.loads(path.read_text(encoding="utf-8-sig")).get("Host") or {}).get("LocalHttpPort")
        if port:
            return int(port)
    return 7071


if __name__ == "__main__":
    sys.exit(main())
