"""The Wilson score interval against published values and an independent implementation (SciPy)."""

import pytest
from scipy.stats import binomtest

from hvla_platform.lib.evaluation.wilson import Z_95, wilson_interval


@pytest.mark.parametrize("k, n, lower, upper", [
    # the two cases an eval report meets most: nothing succeeded, half succeeded
    (0, 10, 0.0, 0.2775),
    (5, 10, 0.2366, 0.7634),
    (10, 10, 0.7225, 1.0),
    # Newcombe, "Two-sided confidence intervals for the single proportion", Stat. Med. 17 (1998),
    # Table II, method 3 (score interval without continuity correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_known_values(k, n, lower, upper):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(lower, abs=5e-5) and hi == pytest.approx(upper, abs=5e-5)


def test_agrees_with_scipy_and_brackets_the_rate():
    for n in (1, 2, 3, 7, 12, 40):
        for k in range(n + 1):
            ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            lo, hi = wilson_interval(k, n)
            assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert Z_95 == pytest.approx(1.959963984540054)
    # unlike the Wald interval p ± z·sqrt(p(1-p)/n), 0 of n is not the empty interval [0, 0]
    assert wilson_interval(0, 4)[1] > 0.4


def test_more_trials_narrow_the_interval():
    widths = [hi - lo for lo, hi in (wilson_interval(n // 2, n) for n in (4, 8, 16, 64))]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.25


@pytest.mark.parametrize("k, n, match", [(0, 0, "at least one trial"), (3, 2, "between 0 and"), (-1, 4, "between 0 and"),
                                         (1.5, 4, "integers"), (True, 4, "integers")])
def test_bad_counts_are_refused(k, n, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(k, n)
