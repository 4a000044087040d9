"""Confidence intervals: every quality figure of the course comes with one.

* :func:`binomial_ci` for a proportion (a judge's accuracy, a habit's hit rate): Wilson's
  interval, or Clopper–Pearson's exact one.
* :func:`mean_ci` for a mean of per-item values (a per-reply chrF, a log-prob gap): a
  percentile bootstrap, or the t interval when asked.
* :func:`paired_diff_ci` for "is model A better than model B?" on the same held-out items: the
  bootstrap of the mean per-item difference, resampling items (so the pairing is kept).
* :func:`bootstrap_ci` for any statistic of one or more aligned arrays (a corpus chrF, a
  style distance): items are resampled together.

Bootstraps are seeded, so a re-run prints the same interval.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_ci(k: int, n: int, confidence: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Confidence interval of a proportion ``k / n``.

    ``method`` is ``"wilson"`` (the default: good coverage even for small ``n`` or proportions
    near 0 or 1) or ``"exact"`` (Clopper–Pearson, conservative; needs scipy). With ``n == 0``
    the interval is ``(0, 1)``: nothing is known.
    """
    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"binomial_ci needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    if method == "wilson":
        lo, hi = _wilson(k, n, confidence)
        return (0.0 if k == 0 else lo), (1.0 if k == n else hi)
    if method in ("exact", "clopper-pearson"):
        from scipy.stats import binomtest

        ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
        return float(ci.low), float(ci.high)
    raise ValueError(f"unknown method {method!r}: use 'wilson' or 'exact'")


def bootstrap_ci(statistic: Callable[..., float], *arrays: Sequence, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(value, low, high)``: ``statistic(*arrays)`` and its percentile-bootstrap interval.

    The arrays are aligned (one entry per held-out item) and resampled together, with
    replacement, ``n_boot`` times. ``statistic`` takes as many arrays as given.
    """
    arrs = [np.asarray(a, dtype=object if not _numeric(a) else float) for a in arrays]
    n = len(arrs[0]) if arrs else 0
    if n == 0 or any(len(a) != n for a in arrs):
        raise ValueError(f"bootstrap_ci needs aligned, non-empty arrays, got lengths {[len(a) for a in arrs]}")
    value = float(statistic(*arrs))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        stats[b] = statistic(*(a[idx] for a in arrs))
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return value, float(lo), float(hi)


def _numeric(a) -> bool:
    try:
        np.asarray(a, dtype=float)
        return True
    except (TypeError, ValueError):
        return False


def mean_ci(values: Sequence[float], confidence: float = 0.95, method: str = "bootstrap", n_boot: int = 2000,
            seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` of per-item ``values`` (NaNs dropped).

    ``method="bootstrap"`` (percentile bootstrap, the default: no assumption on the shape) or
    ``"t"`` (Student's t interval). Fewer than two values give an interval of ``(nan, nan)``.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    if method == "t":
        from scipy.stats import t

        half = t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        return m, m - half, m + half
    if method != "bootstrap":
        raise ValueError(f"unknown method {method!r}: use 'bootstrap' or 't'")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return m, float(lo), float(hi)


def paired_diff_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, n_boot: int = 2000,
                   seed: int = 0) -> tuple[float, float, float]:
    """``(mean(a - b), low, high)`` for per-item values of two models on the same items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same items, got {a.shape} and {b.shape}")
    return mean_ci(a - b, confidence=confidence, n_boot=n_boot, seed=seed)


def fmt_ci(value: float | None, low: float | None, high: float | None, digits: int = 2) -> str:
    """``"0.81 [0.74, 0.88]"``; ``"–"`` for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
