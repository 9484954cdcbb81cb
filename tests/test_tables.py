"""Tables: one rounding everywhere, coverage shown where answers are invalid."""

from __future__ import annotations

import pytest

from mhsafety.metrics import aggregate_runs, compute_metrics
from mhsafety.tables import format_table, percent, rows_from_systems


@pytest.mark.parametrize(("value", "decimals", "expected"), [
    (0.47525, 2, "47.53"),
    (0.4752499999999999, 2, "47.53"),  # float noise of another summation order
    (0.47525000000000006, 2, "47.53"),
    (0.475249, 2, "47.52"),
    (0.7025, 1, "70.3"),
    (-0.2734, 1, "-27.3"),
    (1.0, 0, "100"),
    (None, 2, "–"),
    (float("nan"), 2, "–"),
])
def test_one_rounding(value, decimals, expected):
    assert percent(value, decimals) == expected


def test_mean_of_runs_in_any_order_prints_the_same():
    gold = [0] * 40
    runs = [[0] * k + [1] * (40 - k) for k in (19, 20, 18, 19, 19)]
    a = aggregate_runs("s", {str(i): compute_metrics(gold, r) for i, r in enumerate(runs)})
    b = aggregate_runs("s", {str(i): compute_metrics(gold, r) for i, r in enumerate(runs[::-1])})
    assert format_table(rows_from_systems([a])) == format_table(rows_from_systems([b]))


def test_coverage_column_only_where_some_answers_are_invalid():
    gold = [7, 7, 2, 2]
    valid = aggregate_runs("valid", {"0": compute_metrics(gold, [7, 2, 2, 2])})
    partial = aggregate_runs("partial", {"0": compute_metrics(gold, [7, None, 2, 2])})
    assert "Coverage" not in format_table(rows_from_systems([valid]))
    table = format_table(rows_from_systems([valid, partial]))
    assert "Coverage" in table.splitlines()[0]
    partial_row = next(line for line in table.splitlines() if line.startswith("| partial"))
    assert "75.00" in partial_row
    assert "coverage_mean" in format_table(rows_from_systems([partial]), "csv")
