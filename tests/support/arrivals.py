"""Arrival times, as a rate limit sees them."""

from __future__ import annotations


def max_in_any_window(times: list[float], window: float) -> int:
    """The most arrivals in any sliding window of `window` seconds."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        most = max(most, last - first + 1)
    return most
