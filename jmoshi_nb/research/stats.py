"""Intervals the research tools report, computed with scipy.stats."""

from __future__ import annotations


def wilson_interval(k: int, n: int) -> list[float] | None:
    """95 % Wilson interval of a proportion k/n (scipy.stats); None when n is 0."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]
