"""Multiple-comparison corrections over a family of tests (Holm, Benjamini-Hochberg).

Thin wrappers over ``statsmodels.stats.multitest.multipletests`` that accept
p-values or :class:`~brainres.stats.result.StatResult` objects and keep the
family visible in the output.
"""

from __future__ import annotations

import numpy as np

from brainres.errors import BrainresError
from brainres.stats.result import StatResult

METHODS = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh", "benjamini-hochberg": "fdr_bh"}


class MultipleComparisonError(BrainresError, ValueError):
    """A family of p-values that cannot be corrected."""


def adjust_p_values(p_values, *, method: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted p-values and rejections for a family of tests.

    Parameters
    ----------
    p_values : array_like of float
        The family; NaN entries (tests not run) are kept NaN and left out of
        the family size.
    method : {"holm", "bh"}
        Holm's step-down family-wise error control, or Benjamini-Hochberg
        false-discovery-rate control ("fdr_bh" and "benjamini-hochberg" also work).
    alpha : float, default 0.05

    Returns
    -------
    (adjusted, reject) : two numpy arrays shaped like ``p_values``
    """
    from statsmodels.stats.multitest import multipletests

    if method not in METHODS:
        raise MultipleComparisonError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    p_values = np.asarray(p_values, dtype=float)
    valid = ~np.isnan(p_values)
    if ((p_values[valid] < 0) | (p_values[valid] > 1)).any():
        raise MultipleComparisonError("p-values must lie in [0, 1]")
    adjusted = np.full(p_values.shape, np.nan)
    reject = np.zeros(p_values.shape, bool)
    if valid.any():
        rejected, corrected, _, _ = multipletests(p_values[valid], alpha=alpha, method=METHODS[method])
        adjusted[valid] = corrected
        reject[valid] = rejected
    return adjusted, reject


def adjust_results(results, *, method: str = "holm", alpha: float = 0.05) -> list[StatResult]:
    """Copies of ``results`` with ``p_adjusted``, ``reject`` and the family in ``extra``."""
    results = list(results)
    adjusted, reject = adjust_p_values([r.p_value for r in results], method=method, alpha=alpha)
    family = int(np.sum(~np.isnan([r.p_value for r in results])))
    return [
        r.replace(extra={**r.extra, "p_adjusted": float(a), "reject": bool(j), "adjustment": METHODS[method],
                         "family_size": family, "alpha": alpha})
        for r, a, j in zip(results, adjusted, reject)
    ]
