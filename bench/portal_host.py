"""`python -m bench.portal_host --root ROOT --port 0`: the dev host as `make run` starts it for the authors' page,
App Service Authentication played for the local author (an Admin); a subprocess of the page-load figure."""

from __future__ import annotations

import argparse
import sys

from devhost.__main__ import configure_logging, wait_for_stop_signal
from devhost.host import Host
from devhost.run import local_sign_in


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=".")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    configure_logging()
    host = Host(args.root, port=args.port, sign_in=local_sign_in()).start()
    print(f"devhost: listening on {host.url} (signed in as the local author)", flush=True)
    try:
        wait_for_stop_signal()
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
