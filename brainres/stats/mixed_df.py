"""Small-sample inference for the fixed effects of a crossed mixed model: Satterthwaite's degrees of
freedom (:func:`satterthwaite_df`, the default) and Kenward-Roger's adjusted covariance and df
(:func:`kenward_roger`).

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
import scipy.linalg
import scipy.sparse

from brainres.stats.mixed_fit import (
    LOG_2PI,
    CrossedModel,
    FitResult,
    finite_difference_steps,
    finite_differences,
)

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

    h = finite_difference_steps(varpar)
    _, hessian = finite_differences(deviance, varpar, deviance(varpar), cross="central")
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


# Kenward-Roger needs dense matrices over all random-effect columns (their cross products under V^-1): above
# this many columns (a CIFAR-10H-size design has about 15,000) they take gigabytes and the solve minutes.
KENWARD_ROGER_MAX_COLUMNS = 6000


def kenward_roger(X, factors, fit: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """Kenward-Roger's adjusted covariance of the fixed effects and each effect's degrees of freedom.

    The Wald covariance ``Phi = (X' V^-1 X)^-1`` treats the variance components
    as known, so it is too small when few subjects estimate them; Kenward &
    Roger (1997, Biometrics 53:983) add the first-order bias of ``Phi`` and the
    variance the estimated components add to the estimate:

        Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi,

    with ``V = sigma^2 I + sum_i s_i G_i`` linear in the variance components
    ``s`` (each factor's variances and covariances, then the residual
    variance), ``P_i = -X' V^-1 G_i V^-1 X``, ``Q_ij = X' V^-1 G_i V^-1 G_j
    V^-1 X`` and ``W`` the inverse of the expected information of ``s``,
    ``W = 2 [tr(P~ G_i P~ G_j)]^-1`` with ``P~ = V^-1 - V^-1 X Phi X' V^-1``.
    For one fixed effect ``k`` the df are ``2 / A``, ``A = sum_ij W_ij a_i a_j``,
    ``a_i = (Phi P_i Phi)_kk / Phi_kk`` (Kenward & Roger's F test with one
    numerator df; its scale factor is 1 there). This is pbkrtest's
    ``vcovAdj`` and ``Lb_ddf`` (which scale ``a_i`` by ``Phi`` rather than
    ``Phi_A``), so the SEs and df equal lmerTest's ``summary(fit, ddf =
    "Kenward-Roger")`` (tests).

    Every trace and product is taken through ``V^-1 = sigma^-2 (I - U M^-1 U')``,
    ``U = Z Lambda`` and ``M = I + U'U`` (dense over the ``q`` random-effect
    columns), so no ``n x n`` matrix is formed: the cost is ``q^3``, not
    ``n^3``.

    Parameters
    ----------
    X : (n, p) array
        The fixed-effects design the model was fitted with.
    factors : sequence of Factor
        Its grouping factors.
    fit : FitResult
        A REML fit of that model (Kenward-Roger is defined for REML).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``Phi_A`` (p x p) and the df per fixed effect.

    Raises
    ------
    ValueError
        More than ``KENWARD_ROGER_MAX_COLUMNS`` random-effect columns.
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    groups, products = _products_under_v_inverse(X, factors, fit)
    S1, S2, K1, K2 = products["S1"], products["S2"], products["K1"], products["K2"]
    phi, X_V3_X, trace_P2 = products["phi"], products["X_V3_X"], products["trace_P2"]
    x, zs = slice(0, p), slice(p, None)
    edges = np.cumsum([0] + [factor.n_levels for factor, _ in groups])
    block = [slice(edges[g], edges[g + 1]) for g in range(len(groups))]
    components = _variance_components(factors)
    E = [S1[x, zs][:, block[g]] for g in range(len(groups))]  # X' V^-1 Z_g
    E2 = [S2[x, zs][:, block[g]] for g in range(len(groups))]  # X' V^-2 Z_g
    S1_zz = S1[zs, zs]

    def P(i):
        if components[i] is None:
            return -S2[x, x]
        return -sum(E[a] @ E[b].T for a, b in components[i])

    def Q(i, j):
        gi, gj = components[i], components[j]
        if gi is None and gj is None:
            return X_V3_X
        if gi is None:
            return sum(E2[c] @ E[d].T for c, d in gj)
        if gj is None:
            return sum(E[a] @ E2[b].T for a, b in gi)
        return sum(E[a] @ S1_zz[block[b], block[c]] @ E[d].T for a, b in gi for c, d in gj)

    def information(i, j):  # tr(P~ G_i P~ G_j)
        gi, gj = components[i], components[j]
        if gi is None and gj is None:
            return trace_P2
        if gi is None or gj is None:
            return sum(np.trace(K2[block[d], block[c]]) for c, d in (gj if gi is None else gi))
        return sum(np.sum(K1[block[d], block[a]] * K1[block[b], block[c]].T) for a, b in gi for c, d in gj)

    r = len(components)
    info = np.array([[information(i, j) for j in range(r)] for i in range(r)])
    info = (info + info.T) / 2
    # As pbkrtest: a generalised inverse where the information is singular.
    W = 2 * (np.linalg.inv(info) if np.abs(np.linalg.eigvalsh(info)).min() > 1e-10 else np.linalg.pinv(info))
    Ps = [P(i) for i in range(r)]
    adjustment = sum(W[i, j] * (Q(i, j) - Ps[i] @ phi @ Ps[j]) for i in range(r) for j in range(r))
    phi_adjusted = phi + 2 * phi @ adjustment @ phi
    phi_adjusted = (phi_adjusted + phi_adjusted.T) / 2
    a = np.array([np.diag(phi @ P_i @ phi) for P_i in Ps]) / np.diag(phi)  # (r, p)
    spread = np.einsum("ik,ij,jk->k", a, W, a)
    with np.errstate(divide="ignore"):
        df = np.where(spread > 0, 2 / spread, np.inf)
    return phi_adjusted, df


def _products_under_v_inverse(X, factors, fit):
    """The cross products Kenward-Roger needs, through ``V^-1 = sigma^-2 (I - U M^-1 U')``, never ``n x n``.

    Returns the (factor, term) groups of random-effect columns, in the order of ``Z``'s columns, and a dict:
    ``S1 = Y' V^-1 Y`` and ``S2 = Y' V^-2 Y`` over ``Y = [X, Z]``, ``phi = (X' V^-1 X)^-1``, ``X_V3_X = X' V^-3 X``,
    ``K1 = Z' P~ Z``, ``K2 = Z' P~^2 Z`` and ``trace_P2 = tr(P~^2)``.
    """
    n, p = X.shape
    sigma2 = fit.sigma2
    groups, weights = [], []  # per (factor, term): its Z block's values; and U's
    for factor in factors:
        relative = fit.covariances[factor.name] / sigma2
        values, vectors = np.linalg.eigh(relative)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))  # root @ root.T == relative, singular or not
        u_values = factor.z @ root
        for a in range(factor.q):
            groups.append((factor, factor.z[:, a]))
            weights.append((factor, u_values[:, a]))
    q = sum(factor.n_levels for factor, _ in groups)
    if q > KENWARD_ROGER_MAX_COLUMNS:
        raise ValueError(f"Kenward-Roger needs dense {q} x {q} matrices (one column per random effect); "
                         f"it is computed up to {KENWARD_ROGER_MAX_COLUMNS} columns")
    Z, U = (_indicator_columns(n, blocks) for blocks in (groups, weights))
    Y = scipy.sparse.hstack([scipy.sparse.csr_matrix(X), Z]).tocsr()
    cross = (Y.T @ Y).toarray()
    YU = (Y.T @ U).toarray()
    UU = (U.T @ U).toarray()
    factor_M = scipy.linalg.cho_factor(np.eye(UU.shape[0]) + UU)
    H = scipy.linalg.cho_solve(factor_M, YU.T)  # M^-1 U' Y
    S1 = (cross - YU @ H) / sigma2  # Y' V^-1 Y
    S2 = (cross - YU @ H - H.T @ YU.T + H.T @ UU @ H) / sigma2**2  # Y' V^-2 Y
    S1, S2 = (S1 + S1.T) / 2, (S2 + S2.T) / 2
    x, zs = slice(0, p), slice(p, None)
    phi = np.linalg.inv(S1[x, x])
    VX = (X - U @ H[:, x]) / sigma2  # V^-1 X
    UVX = U.T @ VX
    X_V3_X = (VX.T @ VX - UVX.T @ scipy.linalg.cho_solve(factor_M, UVX)) / sigma2
    M_inv_UU = scipy.linalg.cho_solve(factor_M, UU)
    trace_V2 = (n - 2 * np.trace(M_inv_UU) + np.sum(M_inv_UU * M_inv_UU.T)) / sigma2**2
    # P~ = V^-1 - V^-1 X phi X' V^-1
    S1_xz, S2_xz = S1[x, zs], S2[x, zs]
    K1 = S1[zs, zs] - S1_xz.T @ phi @ S1_xz
    K2 = (S2[zs, zs] - S2_xz.T @ phi @ S1_xz - S1_xz.T @ phi @ S2_xz
          + S1_xz.T @ phi @ S2[x, x] @ phi @ S1_xz)
    trace_P2 = trace_V2 - 2 * np.trace(phi @ X_V3_X) + np.sum((phi @ S2[x, x]) * (phi @ S2[x, x]).T)
    return groups, {"S1": S1, "S2": S2, "phi": phi, "X_V3_X": X_V3_X, "K1": K1, "K2": K2, "trace_P2": trace_P2}


def _variance_components(factors):
    """Per variance component, the pairs of (factor, term) groups whose ``Z_a Z_b'`` make up its ``G``.

    Each factor's variances and covariances (``b <= a``; a covariance is ``Z_a Z_b' + Z_b Z_a'``), then
    ``None`` for the residual variance (``G = I``).
    """
    components, first = [], 0
    for factor in factors:
        for a in range(factor.q):
            for b in range(a + 1):
                components.append([(first + a, first + b)] + ([(first + b, first + a)] if a != b else []))
        first += factor.q
    components.append(None)
    return components


def _indicator_columns(n, blocks):
    """Sparse ``(n, sum of levels)``: per (factor, values), the trial's value in its level's column."""
    parts = [scipy.sparse.csr_matrix((values, (np.arange(n), factor.codes)), shape=(n, factor.n_levels))
             for factor, values in blocks]
    return scipy.sparse.hstack(parts).tocsr()
