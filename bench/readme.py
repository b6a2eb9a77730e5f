"""`python -m bench.readme`: the README's benchmark table, copied from bench/RESULTS.md (the last `make bench`).

`make bench` calls it after writing RESULTS.md, so the README never quotes a figure from memory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- bench table: written by `make bench` from bench/RESULTS.md; do not edit by hand -->"
END = "<!-- end of bench table -->"


def results_table(results: str) -> str:
    """The figures table of a RESULTS.md, and the line that says when and where it was measured."""
    measured = next((line for line in results.splitlines() if line.startswith("Measured ")), "")
    rows = [line for line in results.splitlines() if line.startswith("|")]
    if not rows:
        raise ValueError("bench/RESULTS.md has no table")
    when = re.match(r"Measured (.+?) UTC at commit `([^`]*)`", measured)
    cores = re.search(r"(\d+) cores", measured)
    where = f", {cores.group(1)} shared cores" if cores else ""
    said = f"The last run ({when.group(1)} UTC, commit `{when.group(2)}`{where}):" if when else "The last run:"
    return said + "\n\n" + "\n".join(rows)


def update(readme: str, results: str) -> str:
    """`readme` with the text between the markers replaced by the results' table."""
    if START not in readme or END not in readme:
        raise ValueError(f"README.md has no {START!r} ... {END!r} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{results_table(results)}\n{END}{tail}"


def main() -> int:
    readme, results = ROOT / "README.md", ROOT / "bench" / "RESULTS.md"
    readme.write_text(update(readme.read_text(), results.read_text()))
    print("README.md: benchmark table copied from bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
