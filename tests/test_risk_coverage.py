"""Risk-coverage of the digit fields (simulate.evaluate): the figures the thresholds are picked from."""

from __future__ import annotations

from simulate.evaluate import pick_threshold, risk_coverage


def test_curve_counts_accepted_and_wrong_at_every_threshold() -> None:
    scores = [(0.99, True), (0.99, False), (0.95, True), (0.80, True), (0.50, False)]
    assert risk_coverage(scores) == [(0.99, 0.4, 0.5), (0.95, 0.6, 1 / 3), (0.80, 0.8, 0.25), (0.50, 1.0, 0.4)]
    assert risk_coverage([]) == []


def test_threshold_is_the_lowest_whose_accepted_fields_stay_under_the_target() -> None:
    right = [(1.0 - i / 1000, True) for i in range(400)]  # 400 fields read right from 1.0 down to 0.601
    assert pick_threshold(right, 0.005) == right[-1][0]
    # one wrong field at 0.9 among 100 above it: 1 % wrong from there on, so the threshold stays above it
    mixed = right + [(0.9, False)]
    t = pick_threshold(mixed, 0.005)
    assert t > 0.9 and all(c >= t for c, _ in right[:99])
    # a sure misread at the top: no threshold is safe
    assert pick_threshold([(1.0, False), *right], 0.005) == 1.0
