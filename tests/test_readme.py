"""The README quotes the last benchmark run, not figures from memory."""

from __future__ import annotations

import pytest

from bench import readme

RESULTS = """# Benchmark results

Measured 2026-12-01 10:00 UTC at commit `abc1234` on Linux x86_64, 2 cores (CPU), 24 GiB, in 400 s with `make bench`.

| figure | ours | baseline | ratio | target | met |
|---|---|---|---|---|---|
| 1. throughput | 900 msg/s | 30 msg/s | 30× | ≥ 15× | yes |

Notes:
- not a row
"""


def test_the_readme_table_is_the_one_in_bench_results():
    text = (readme.ROOT / "README.md").read_text()
    assert readme.update(text, (readme.ROOT / "bench" / "RESULTS.md").read_text()) == text


def test_update_replaces_the_block_with_the_results_rows_and_when_they_were_measured():
    before = f"intro\n{readme.START}\nold table\n{readme.END}\nafter\n"

    after = readme.update(before, RESULTS)

    assert after == (f"intro\n{readme.START}\nThe last run (2026-12-01 10:00 UTC, commit `abc1234`, 2 shared cores):\n\n"
                     "| figure | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n"
                     f"| 1. throughput | 900 msg/s | 30 msg/s | 30× | ≥ 15× | yes |\n{readme.END}\nafter\n")


def test_update_refuses_a_readme_without_the_block():
    with pytest.raises(ValueError, match="no"):
        readme.update("no markers here", RESULTS)
