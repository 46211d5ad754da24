"""Arrival-time arithmetic shared by the fake servers and the pacing tests."""

from __future__ import annotations

from collections.abc import Iterable


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most events within any `window` seconds (a sliding window over the arrival times)."""
    stamps = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(stamps):
        while t - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
