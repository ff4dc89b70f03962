"""Satterthwaite's degrees of freedom for the fixed effects of a crossed mixed model.

The Wald standard error of a fixed effect is itself an estimate: it depends on
the variance components, which few subjects estimate poorly (a slope that
varies between 10 subjects is known from 10 subjects). Satterthwaite's
approximation gives the t distribution whose variance matches that
uncertainty, as lmerTest computes it for ``lmer`` fits (Kuznetsova,
Brockhoff & Christensen 2017, J Stat Softw 82(13)):

    df = 2 V(c)^2 / (g' A g),   V(c) = c' Cov(beta) c,

with ``g`` the gradient of ``V(c)`` in the variance parameters ``(theta,
sigma)`` and ``A`` their asymptotic covariance, twice the inverse Hessian of
the (RE)ML deviance in the same parameters (not profiled over sigma). Both
derivatives are central finite differences at the optimum (second order in the
step for the mixed second derivatives too, as the df must match lmerTest's
Richardson-extrapolated ones to 1e-4).
"""

from __future__ import annotations

import math

import numpy as np

from brainres.stats.mixed_fit import LOG_2PI, CrossedModel

# Eigenvalues of the deviance's Hessian below this share of the largest are treated as flat directions
# (a variance at its boundary, where the deviance is even in theta): their parameters are not estimated
# with any precision the approximation could use, and V does not change along them to first order.
FLAT_EIGENVALUE = 1e-8


def satterthwaite_df(model: CrossedModel, theta, reml: bool = True) -> np.ndarray:
    """Degrees of freedom of each fixed effect's t statistic (one per column of ``X``).

    Parameters
    ----------
    model : CrossedModel
        The model the fit came from.
    theta : array_like
        Its optimum (``FitResult.theta``).
    reml : bool
        Whether the fit was REML (the deviance differentiated must be the one minimised).

    Returns
    -------
    numpy.ndarray
        Satterthwaite's df per fixed effect, capped at the residual df ``n - p``.
    """
    theta = np.asarray(theta, dtype=float)
    n, p = model.n, model.p
    parts = model.solve(theta)
    sigma = math.sqrt(parts["r2"] / (n - p if reml else n))
    varpar = np.append(theta, sigma)

    def deviance(values):
        try:
            solved = model.solve(values[:-1])
        except np.linalg.LinAlgError:
            return np.inf
        variance = values[-1] ** 2
        count = n - p if reml else n
        value = solved["log_det_L"] + count * (LOG_2PI + math.log(variance)) + solved["r2"] / variance
        if reml:
            value += float(2 * np.log(np.diag(solved["R_XX"])).sum())
        return value

    def variances(values):
        R_XX = model.solve(values[:-1])["R_XX"]
        R_inv = np.linalg.inv(R_XX)
        return values[-1] ** 2 * np.sum(R_inv**2, axis=0)  # diag of sigma^2 (R R')^-1

    h = 2e-4 * np.maximum(np.abs(varpar), 0.05)
    hessian = _central_hessian(deviance, varpar, h)
    eigenvalues, eigenvectors = np.linalg.eigh((hessian + hessian.T) / 2)
    kept = eigenvalues > FLAT_EIGENVALUE * max(eigenvalues.max(), 0.0)
    covariance = 2 * (eigenvectors[:, kept] / eigenvalues[kept]) @ eigenvectors[:, kept].T
    gradient = np.empty((varpar.size, p))
    for a in range(varpar.size):
        step = np.zeros_like(varpar)
        step[a] = h[a]
        gradient[a] = (variances(varpar + step) - variances(varpar - step)) / (2 * h[a])
    variance = variances(varpar)
    spread = np.einsum("ak,ab,bk->k", gradient, covariance, gradient)
    with np.errstate(divide="ignore"):
        df = np.where(spread > 0, 2 * variance**2 / spread, np.inf)
    return np.minimum(df, n - p)


def _central_hessian(function, x, h):
    """Hessian by central differences: ``(f(+a+c) - f(+a-c) - f(-a+c) + f(-a-c)) / (4 h_a h_c)`` off the diagonal."""
    k = x.size
    value = function(x)
    hessian = np.empty((k, k))
    steps = np.diag(h)
    for a in range(k):
        hessian[a, a] = (function(x + steps[a]) - 2 * value + function(x - steps[a])) / h[a] ** 2
        for c in range(a):
            corners = [function(x + sa * steps[a] + sc * steps[c]) for sa, sc in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
            hessian[a, c] = hessian[c, a] = (corners[0] - corners[1] - corners[2] + corners[3]) / (4 * h[a] * h[c])
    return hessian
