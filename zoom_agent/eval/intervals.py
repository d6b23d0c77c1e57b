"""95% confidence intervals for the report: Wilson for accuracies, a seeded bootstrap for means.

With 8-24 questions per bar a point estimate alone misleads; each bar of the report carries
its interval. Both come from SciPy: `scipy.stats.binomtest` (Wilson score interval, no
continuity correction) and `scipy.stats.bootstrap` (percentile interval of the mean,
`BOOTSTRAP_RESAMPLES` resamples, seed `BOOTSTRAP_SEED`, so a report is reproducible).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CONFIDENCE", "mean_interval", "wilson_interval"]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000  # ours
BOOTSTRAP_SEED = 0  # ours: the same results give the same interval


def wilson_interval(successes: int, n: int) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion, as fractions in [0, 1] (None when ``n == 0``).

    Example:
        >>> [round(v, 3) for v in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A percentile-bootstrap interval of the mean of ``values`` (None for fewer than 2 values).

    Identical values give the degenerate interval ``(v, v)``.
    """
    if len(values) < 2:
        return None
    if min(values) == max(values):
        return float(values[0]), float(values[0])
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)
