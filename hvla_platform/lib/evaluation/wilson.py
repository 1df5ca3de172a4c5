"""Confidence interval of a success rate: the Wilson score interval.

For ``k`` successes in ``n`` independent trials, ``p̂ = k / n`` and ``z`` the standard normal
quantile (1.959964 for 95 %), the interval is

    centre = (p̂ + z² / 2n) / (1 + z² / n)
    half   = z / (1 + z² / n) · sqrt(p̂ (1 − p̂) / n + z² / 4n²)
    [centre − half, centre + half]

(E. B. Wilson, "Probable inference, the law of succession, and statistical inference", JASA 22,
1927; recommended over the Wald interval ``p̂ ± z·sqrt(p̂(1−p̂)/n)`` for small ``n`` and rates near
0 or 1 by L. D. Brown, T. T. Cai & A. DasGupta, "Interval estimation for a binomial proportion",
Statistical Science 16(2), 2001, section 4.1.1). Unlike the Wald interval it never leaves [0, 1]
and is not empty when ``k`` is 0 or ``n``: 0 of 10 gives [0, 0.278], not [0, 0].
"""

from __future__ import annotations

import math

#: standard normal quantile of 0.975 (two-sided 95 %): Φ⁻¹(0.975).
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval ``(lower, upper)`` of a binomial proportion (formula: module doc).

    Args:
        successes: k, number of successful trials (0 ≤ k ≤ n).
        trials: n, number of trials (≥ 1).
        z: normal quantile of the two-sided level (:data:`Z_95` for 95 %).

    Returns:
        ``(lower, upper)`` floats in [0, 1]; the bounds are exactly 0 for k = 0 and 1 for k = n.

    Raises:
        ValueError: ``trials`` < 1, ``successes`` outside [0, trials], or ``z`` ≤ 0.
    """
    if isinstance(trials, bool) or isinstance(successes, bool) or int(trials) != trials or int(successes) != successes:
        raise ValueError(f"successes and trials must be integers, got {successes!r} and {trials!r}")
    n, k = int(trials), int(successes)
    if n < 1:
        raise ValueError(f"a success rate needs at least one trial, got trials={n}")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be between 0 and trials={n}, got {k}")
    if not z > 0:
        raise ValueError(f"z must be > 0, got {z}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    lower = 0.0 if k == 0 else max(0.0, centre - half)
    upper = 1.0 if k == n else min(1.0, centre + half)
    return lower, upper
