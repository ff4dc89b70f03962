"""Profiled (RE)ML fit of a linear mixed model with two crossed grouping factors, lme4's way.

The model is ``y = X beta + Z b + e`` with ``e ~ N(0, sigma^2 I)`` and random
effects ``b = Lambda_theta u``, ``u ~ N(0, sigma^2 I)``. Each grouping factor
``k`` (subjects, stimuli) has ``q_k`` random-effect columns per level (an
intercept, optionally slopes) and a lower-triangular ``q_k x q_k`` block
``T_k`` of the relative covariance factor, so ``var(b_level) = sigma^2 T_k T_k'``.
As in lme4 (Bates et al. 2015, *J. Stat. Softw.* 67(1)), ``beta`` and
``sigma`` are profiled out and the deviance is minimised over ``theta`` alone
(the entries of the ``T_k``; diagonal entries bounded below by 0):

    ML:   d(theta)   = log|M| + n (1 + log(2 pi r2 / n))
    REML: d_R(theta) = log|M| + log|R_X' R_X| + (n - p) (1 + log(2 pi r2 / (n - p)))

with ``M = Lambda' Z' Z Lambda + I`` and ``r2`` the penalised residual sum of
squares at the solution of the penalised least-squares problem.

Two crossed factors make ``M`` a 2 x 2 block matrix whose diagonal blocks are
block-diagonal (a trial belongs to one level of each factor): the factor with
more random-effect columns (``b``, "big") is eliminated level by level (a
``q_b x q_b`` inverse per level) and the Schur complement on the other factor
(``s``, "small": ``S = A - C B^-1 C'``, dense, ``(L_s q_s)^2``) is factored by
Cholesky. ``C`` (the subject-by-stimulus cross products) is sparse with one
block per observed subject-stimulus pair, so memory grows with the number of
trials (and the square of the smaller factor's size), never with subjects x
stimuli, and no design matrix is ever built: everything is accumulated per
level and per pair once, before the optimisation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse

LOG_2PI = math.log(2 * math.pi)
# The Schur complement stays sparse (LU) when larger than this and less dense than this share.
SPARSE_SCHUR_SIZE = 3000
SPARSE_SCHUR_DENSITY = 0.05
# A fit ending with a relative SD below this is checked from other starts (see CrossedModel.fit).
NEAR_BOUNDARY = 0.01


@dataclass
class Factor:
    """A grouping factor: level code per trial and the trial's random-effect covariates."""

    name: str
    codes: np.ndarray  # (n,) int64, 0 .. n_levels - 1
    n_levels: int
    z: np.ndarray  # (n, q): column 0 is the intercept (ones), then slopes
    terms: tuple[str, ...]  # names of the z columns ("Intercept", measures...)

    @property
    def q(self) -> int:
        return self.z.shape[1]


@dataclass
class FitResult:
    """The optimum of a crossed-factor fit (see :class:`CrossedModel`)."""

    theta: np.ndarray
    beta: np.ndarray
    beta_cov: np.ndarray
    sigma2: float
    covariances: dict  # factor name -> (q, q) covariance of its random effects
    deviance: float
    log_likelihood: float
    reml: bool
    converged: bool
    n_evaluations: int
    message: str
    singular: bool
    seconds: float
    messages: list = field(default_factory=list)


def _accumulate(codes, n_levels, left, right):
    """``out[l] = sum over trials i of level l of outer(left[i], right[i])``; (n_levels, a, b)."""
    a, b = left.shape[1], right.shape[1]
    out = np.empty((n_levels, a, b))
    for i in range(a):
        for j in range(b):
            out[:, i, j] = np.bincount(codes, weights=left[:, i] * right[:, j], minlength=n_levels)
    return out


class CrossedModel:
    """Data of ``y ~ X + (z_1 | factor_1) + (z_2 | factor_2)`` reduced to per-level and per-pair sums.

    Parameters
    ----------
    y : (n,) float
    X : (n, p) float, full column rank
    factors : two :class:`Factor`
    """

    def __init__(self, y, X, factors):
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        if len(factors) != 2:
            raise ValueError("CrossedModel needs exactly two grouping factors")
        self.n, self.p = X.shape
        self.factors = list(factors)
        # Eliminate the factor with more random-effect columns level by level; the
        # Schur complement is dense on the other one.
        sizes = [f.n_levels * f.q for f in factors]
        small, big = (0, 1) if sizes[0] <= sizes[1] else (1, 0)
        self.small, self.big = factors[small], factors[big]
        # Centring y moves only the intercept (X holds one) and keeps the sums well scaled.
        self.y_shift = float(y.mean())
        xy = np.column_stack([X, y - self.y_shift])
        self.cross = xy.T @ xy  # (p + 1, p + 1)
        s, b = self.small, self.big
        self.G_s = _accumulate(s.codes, s.n_levels, s.z, s.z)
        self.G_b = _accumulate(b.codes, b.n_levels, b.z, b.z)
        self.H_s = _accumulate(s.codes, s.n_levels, s.z, xy)
        self.H_b = _accumulate(b.codes, b.n_levels, b.z, xy)
        # One block of C per observed (small level, big level) pair.
        key = s.codes.astype(np.int64) * b.n_levels + b.codes
        pairs, inverse = np.unique(key, return_inverse=True)
        self.pair_s = (pairs // b.n_levels).astype(np.int64)
        self.pair_b = (pairs % b.n_levels).astype(np.int64)
        self.C_pairs = _accumulate(inverse.ravel(), pairs.size, s.z, b.z)  # (n_pairs, q_s, q_b)
        qs, qb = s.q, b.q
        rows = (self.pair_s[:, None, None] * qs + np.arange(qs)[None, :, None]) + 0 * np.arange(qb)[None, None, :]
        cols = (self.pair_b[:, None, None] * qb + np.arange(qb)[None, None, :]) + 0 * np.arange(qs)[None, :, None]
        shape = (s.n_levels * qs, b.n_levels * qb)
        # C as a dense array when that is small (a few subjects): one matrix product per
        # evaluation; otherwise sparse, with its layout fixed once.
        self.C_dense = None
        if shape[0] * shape[1] <= max(1 << 20, 4 * self.C_pairs.size):
            self.C_dense = np.zeros((s.n_levels, qs, b.n_levels, qb))
            self.C_dense[self.pair_s, :, self.pair_b, :] = self.C_pairs
        else:
            self._C_layout = _csr_layout(rows.ravel(), cols.ravel(), shape)
            self._CT_layout = _csr_layout(cols.ravel(), rows.ravel(), shape[::-1])
        # theta: each factor's lower triangle, column by column (lme4's order).
        self.theta_index = []
        lower = []
        start = 0
        for factor in self.factors:
            rows_t, cols_t = np.tril_indices(factor.q)
            order = np.lexsort((rows_t, cols_t))
            rows_t, cols_t = rows_t[order], cols_t[order]
            self.theta_index.append((start, rows_t, cols_t))
            lower.extend(0.0 if r == c else -np.inf for r, c in zip(rows_t, cols_t))
            start += rows_t.size
        self.lower = np.array(lower)
        self.n_evaluations = 0
        self._start = self._moment_start(xy[:, :-1], xy[:, -1])

    def _moment_start(self, X, y):
        """A starting theta from moments of the OLS residuals (intercept variances only).

        For crossed random intercepts, the variance of the residuals is about
        ``v_1 + v_2 + v_e`` and the variance of a factor's level means about
        ``v_k + (other variances) / trials per level``; solving these three
        equations gives rough variances whose ratios start the optimiser near
        its optimum (saving evaluations on large data). A slope's relative SD
        starts at a tenth of its factor's intercept's, not at 1 as in lme4:
        slopes of RT on a standardised measure vary little between subjects,
        and from 1 the Newton steps failed and the L-BFGS-B fallback took
        150-190 evaluations where this start takes 60-110. Neither start
        alone always reaches the best optimum (see :meth:`fit`).
        """
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        residual = y - X @ beta
        equations, rhs = [[1.0, 1.0, 1.0]], [float(residual.var())]
        for k, factor in enumerate(self.factors):
            count = np.bincount(factor.codes, minlength=factor.n_levels)
            means = np.bincount(factor.codes, weights=residual, minlength=factor.n_levels)[count > 0] / count[count > 0]
            harmonic = float(np.mean(1.0 / count[count > 0]))
            row = [harmonic, harmonic, harmonic]
            row[k] = 1.0
            equations.append(row)
            rhs.append(float(means.var()))
        try:
            variances = np.linalg.solve(np.array(equations), np.array(rhs))
        except np.linalg.LinAlgError:
            return None
        residual_variance = variances[2] if variances[2] > 0 else float(residual.var())
        if not residual_variance > 0:
            return None
        start = self.theta_start()
        for k, (begin, _, _) in enumerate(self.theta_index):
            start[begin] = math.sqrt(min(max(variances[k], 0.0) / residual_variance, 1e4)) or 0.1
        for begin, rows_t, cols_t in self.theta_index:
            slopes = np.flatnonzero((rows_t == cols_t) & (rows_t > 0))
            start[begin + slopes] = 0.1 * start[begin]
        return start

    # -- theta ------------------------------------------------------------------

    def theta_start(self):
        start = np.zeros(self.lower.size)
        start[self.lower == 0] = 1.0
        return start

    def blocks(self, theta):
        """The ``T_k`` of each factor (lower triangular ``q_k x q_k``)."""
        out = []
        for factor, (start, rows_t, cols_t) in zip(self.factors, self.theta_index):
            T = np.zeros((factor.q, factor.q))
            T[rows_t, cols_t] = theta[start:start + rows_t.size]
            out.append(T)
        return out

    # -- the penalised least-squares solve --------------------------------------

    def solve(self, theta):
        """Everything the deviance and the estimates need at ``theta``."""
        T = dict(zip((id(f) for f in self.factors), self.blocks(theta)))
        s, b = self.small, self.big
        Ts, Tb = T[id(s)], T[id(b)]
        qs, qb = s.q, b.q
        # Big factor: per-level blocks B_l = Tb' G_l Tb + I, inverted level by level.
        if qb == 1:
            t = Tb[0, 0]
            B = t * t * self.G_b[:, 0, 0] + 1.0
            log_det_B = float(np.log(B).sum())
            B_inv = (1.0 / B)[:, None, None]
        else:
            B = np.einsum("ia,lij,jc->lac", Tb, self.G_b, Tb) + np.eye(qb)
            chol_B = np.linalg.cholesky(B)
            log_det_B = float(2 * np.log(np.diagonal(chol_B, axis1=1, axis2=2)).sum())
            B_inv = np.linalg.inv(B)
        if self.C_dense is not None:
            if qs == qb == 1:
                C = (Ts[0, 0] * Tb[0, 0]) * self.C_dense.reshape(s.n_levels, b.n_levels)
                W = C * B_inv[:, 0, 0]
            else:
                C = np.einsum("ia,sibj,jc->sabc", Ts, self.C_dense, Tb).reshape(s.n_levels * qs, -1)
                W = np.einsum("sabc,bcd->sabd", C.reshape(s.n_levels, qs, b.n_levels, qb), B_inv)
                W = W.reshape(s.n_levels * qs, -1)
            CT = C.T
            S = -(W @ CT)
        else:
            C_blocks = np.einsum("ia,pij,jc->pac", Ts, self.C_pairs, Tb)  # Ts' C_p Tb
            W_blocks = np.einsum("pac,pcd->pad", C_blocks, B_inv[self.pair_b])  # C_p B_l^-1
            C = self._C_layout.matrix(C_blocks.ravel())
            W = self._C_layout.matrix(W_blocks.ravel())
            CT = self._CT_layout.matrix(C_blocks.ravel())
            # Schur complement on the small factor: S = A - C B^-1 C'.
            product = W @ CT
            dim = product.shape[0]
            if dim > SPARSE_SCHUR_SIZE and product.nnz < SPARSE_SCHUR_DENSITY * dim * dim:
                # Little overlap between the small factor's levels: keep S sparse (LU with a
                # fill-reducing order and diagonal pivots, as for a symmetric matrix).
                return self._finish(Ts, Tb, B_inv, log_det_B, C, CT, _SparseFactor(self._A(Ts) - product))
            S = -product.toarray()
        self._add_A(S, Ts)
        return self._finish(Ts, Tb, B_inv, log_det_B, C, CT, _DenseFactor(S))

    def _A_blocks(self, Ts):
        return np.einsum("ia,lij,jc->lac", Ts, self.G_s, Ts) + np.eye(self.small.q)

    def _add_A(self, S, Ts):
        """S += A, the small factor's block-diagonal ``Ts' G_l Ts + I``."""
        qs = self.small.q
        A = self._A_blocks(Ts)
        index = np.arange(self.small.n_levels) * qs
        for a in range(qs):
            for c in range(qs):
                S[index + a, index + c] += A[:, a, c]

    def _A(self, Ts):
        """A as a sparse matrix."""
        qs, levels = self.small.q, self.small.n_levels
        A = self._A_blocks(Ts)
        rows = (np.arange(levels)[:, None, None] * qs + np.arange(qs)[None, :, None]) + 0 * np.arange(qs)
        cols = (np.arange(levels)[:, None, None] * qs + np.arange(qs)[None, None, :]) + 0 * rows
        return scipy.sparse.csr_matrix((A.ravel(), (rows.ravel(), cols.ravel())), shape=(levels * qs,) * 2)

    def _finish(self, Ts, Tb, B_inv, log_det_B, C, CT, factor):
        """The solve given the factor of the Schur complement: fixed effects, r2 and log-determinants."""
        s, b = self.small, self.big
        qs, qb = s.q, b.q
        # Right-hand sides Lambda' Z' [X y], and M^-1 of them by blocks.
        r_s = np.einsum("ia,lij->laj", Ts, self.H_s).reshape(s.n_levels * qs, -1)
        r_b = np.einsum("ia,lij->laj", Tb, self.H_b)
        y_b = np.einsum("lac,lcj->laj", B_inv, r_b).reshape(b.n_levels * qb, -1)
        x_s = factor.solve(r_s - C @ y_b)
        correction = (CT @ x_s).reshape(b.n_levels, qb, -1)
        x_b = y_b - np.einsum("lac,lcj->laj", B_inv, correction).reshape(b.n_levels * qb, -1)
        quadratic = r_s.T @ x_s + r_b.reshape(b.n_levels * qb, -1).T @ x_b
        K = self.cross - quadratic
        K = (K + K.T) / 2
        p = self.p
        R_XX = np.linalg.cholesky(K[:p, :p])
        beta = scipy.linalg.cho_solve((R_XX, True), K[:p, p])
        r2 = float(K[p, p] - K[p, :p] @ beta)
        return {"log_det_L": log_det_B + factor.log_det, "R_XX": R_XX, "beta": beta, "r2": r2}

    def deviance(self, theta, reml=True):
        """Profiled deviance (``-2 log L``, REML criterion when ``reml``) at ``theta``."""
        self.n_evaluations += 1
        try:
            parts = self.solve(np.asarray(theta, dtype=float))
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            return np.inf
        return self._deviance(parts, reml)

    def _deviance(self, parts, reml):
        n, p = self.n, self.p
        r2 = parts["r2"]
        if not r2 > 0:
            return np.inf
        if reml:
            log_det_X = float(2 * np.log(np.diag(parts["R_XX"])).sum())
            return parts["log_det_L"] + log_det_X + (n - p) * (1 + LOG_2PI + math.log(r2 / (n - p)))
        return parts["log_det_L"] + n * (1 + LOG_2PI + math.log(r2 / n))

    # -- the optimisation -------------------------------------------------------

    def _optimise(self, objective, theta0, tol):
        """Newton steps from ``theta0``; bounded L-BFGS-B where they fail, then Newton again."""
        theta, value, converged = _newton(objective, np.asarray(theta0, dtype=float), None, self.lower, tol)
        message = "Newton steps converged"
        if not converged:
            bounds = [(0.0 if low == 0 else None, None) for low in self.lower]
            result = scipy.optimize.minimize(objective, theta, method="L-BFGS-B", bounds=bounds,
                                             options={"ftol": 1e-12, "gtol": 1e-9, "maxiter": 1000})
            theta, value, converged = _newton(objective, result.x, float(result.fun), self.lower, tol)
            message = f"L-BFGS-B: {result.message}; Newton steps {'converged' if converged else 'did not converge'}"
            converged = converged or bool(result.success)
        return theta, value, converged, message

    def _slopes_at_one(self, start):
        """``start`` with every slope's relative SD at 1 (lme4's value) instead of a tenth of the intercept's."""
        start = np.array(start, dtype=float)
        for begin, rows_t, cols_t in self.theta_index:
            start[begin + np.flatnonzero((rows_t == cols_t) & (rows_t > 0))] = 1.0
        return start

    def fit(self, reml=True, theta0=None, tol=1e-10) -> FitResult:
        """Minimise the profiled deviance over theta.

        Bounded Newton steps with finite-difference derivatives from a moment
        start (the profiled deviance is smooth and theta has few entries, so a
        handful of steps reach the optimum to the precision lme4's optimiser
        reaches); bounded L-BFGS-B where a step fails, then Newton again. Without
        ``theta0``, an end with a relative SD near zero is checked from two other
        starts and the best end kept.
        """
        started = time.perf_counter()
        self.n_evaluations = 0
        objective = lambda t: self.deviance(t, reml)  # noqa: E731
        if theta0 is not None:
            theta, value, converged, message = self._optimise(objective, theta0, tol)
        else:
            start = self._start if self._start is not None else self.theta_start()
            theta, value, converged, message = self._optimise(objective, start, tol)
            # The deviance can have a local minimum with a variance at zero beside a better one inside (with a
            # random slope at 5 subjects about one fit in ten did): an end near the boundary is checked from
            # lme4's start (every relative SD 1) and from the moment start with slopes at 1; the best end is kept.
            if np.any((self.lower == 0) & (theta < NEAR_BOUNDARY)):
                alternatives = [self.theta_start()]
                if self._start is not None:
                    alternatives.append(self._slopes_at_one(self._start))
                for start in alternatives:
                    candidate = self._optimise(objective, start, tol)
                    if candidate[2] and candidate[1] < value - 1e-9:
                        theta, value, converged, message = candidate
        messages = []
        if not converged:
            messages.append(f"the optimiser stopped before converging ({message})")
        parts = self.solve(theta)
        n, p = self.n, self.p
        sigma2 = parts["r2"] / (n - p if reml else n)
        R_XX = parts["R_XX"]
        R_inv = scipy.linalg.solve_triangular(R_XX, np.eye(p), lower=True)
        beta = parts["beta"].copy()
        beta[0] += self.y_shift  # X's first column is the intercept
        covariances = {}
        for factor, T in zip(self.factors, self.blocks(theta)):
            covariances[factor.name] = sigma2 * T @ T.T
        singular = bool(np.any((self.lower == 0) & (np.abs(theta) < 1e-4)))
        if singular:
            messages.append("boundary (singular) fit: a random-effect variance is (near) zero")
        return FitResult(
            theta=theta, beta=beta, beta_cov=sigma2 * R_inv.T @ R_inv, sigma2=float(sigma2),
            covariances=covariances, deviance=value, log_likelihood=-value / 2, reml=reml, converged=converged,
            n_evaluations=self.n_evaluations, message=message, singular=singular,
            seconds=time.perf_counter() - started, messages=messages,
        )


def finite_difference_steps(x):
    """Step per coordinate: ``2e-4 max(|x|, 0.05)`` (relative, with a floor for coordinates near 0)."""
    return 2e-4 * np.maximum(np.abs(x), 0.05)


def finite_differences(objective, x, value, cross="forward"):
    """Central finite-difference gradient and Hessian of ``objective`` at ``x`` (its value there: ``value``).

    Steps are :func:`finite_difference_steps`. Off the diagonal,
    ``cross="forward"`` spends one evaluation per pair (first order in the
    steps; enough to steer Newton steps) and ``cross="central"`` four (second
    order; Satterthwaite's df must match lmerTest's to 1e-4).
    """
    k = x.size
    h = finite_difference_steps(x)
    steps = np.diag(h)
    gradient, hessian = np.empty(k), np.empty((k, k))
    plus = np.array([objective(x + steps[a]) for a in range(k)])
    minus = np.array([objective(x - steps[a]) for a in range(k)])
    gradient[:] = (plus - minus) / (2 * h)
    hessian[np.diag_indices(k)] = (plus - 2 * value + minus) / h**2
    for a in range(k):
        for c in range(a):
            if cross == "central":
                corners = [objective(x + sa * steps[a] + sc * steps[c])
                           for sa, sc in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
                mixed = (corners[0] - corners[1] - corners[2] + corners[3]) / (4 * h[a] * h[c])
            else:
                mixed = (objective(x + steps[a] + steps[c]) - plus[a] - plus[c] + value) / (h[a] * h[c])
            hessian[a, c] = hessian[c, a] = mixed
    return gradient, hessian


def _newton(objective, theta, value, lower, tol, max_steps=30):
    """Projected Newton steps (finite-difference derivatives) with backtracking.

    Diagonal entries of theta are bounded below by 0: one at the bound whose
    gradient points outward (or, where the deviance is even in it, whose
    curvature is positive) stays there. Returns the point, its value and
    whether the Newton decrement fell below ``tol`` (relative to the value).
    A Hessian that is not positive definite, or a step that does not
    decrease the deviance after backtracking, ends the steps unconverged.
    """
    theta = np.maximum(theta, np.where(lower == 0, 0.0, -np.inf))
    value = objective(theta) if value is None else value
    bounded = lower == 0
    for _ in range(max_steps):
        if not np.isfinite(value):
            return theta, value, False
        gradient, hessian = finite_differences(objective, theta, value)
        if not (np.all(np.isfinite(gradient)) and np.all(np.isfinite(hessian))):
            return theta, value, False
        at_bound = bounded & (theta <= 1e-8) & ((gradient >= 0) | (np.abs(gradient) < 1e-8 * max(1.0, abs(value))))
        at_bound &= np.diag(hessian) > 0
        free = np.flatnonzero(~at_bound)
        if free.size == 0:
            return theta, value, True
        g, H = gradient[free], hessian[np.ix_(free, free)]
        try:
            chol = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            return theta, value, False
        newton = scipy.linalg.cho_solve((chol, True), g)
        decrement = float(g @ newton)
        length = 1.0
        improved = False
        for _ in range(12):
            candidate = theta.copy()
            candidate[free] -= length * newton
            candidate = np.maximum(candidate, np.where(bounded, 0.0, -np.inf))
            new_value = objective(candidate)
            if new_value <= value:
                theta, value, improved = candidate, new_value, True
                break
            length /= 4
        if decrement < tol * max(1.0, abs(value)):
            return theta, value, True
        if not improved:
            return theta, value, False
    return theta, value, False


class _DenseFactor:
    """Cholesky factor of a dense symmetric positive definite matrix (overwritten)."""

    def __init__(self, S):
        self.chol = scipy.linalg.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
        self.log_det = float(2 * np.log(np.diagonal(self.chol)).sum())

    def solve(self, rhs):
        return scipy.linalg.cho_solve((self.chol, True), rhs, check_finite=False)


class _SparseFactor:
    """LU factor (SuperLU, symmetric mode, diagonal pivots) of a sparse symmetric positive definite matrix."""

    def __init__(self, S):
        import scipy.sparse.linalg

        self.lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix(S), permc_spec="MMD_AT_PLUS_A",
                                           diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        diagonal = self.lu.U.diagonal()
        if not np.all(diagonal > 0):
            raise np.linalg.LinAlgError("the Schur complement is not positive definite")
        self.log_det = float(np.log(diagonal).sum())

    def solve(self, rhs):
        return self.lu.solve(np.asarray(rhs, dtype=float))


class _CSRLayout:
    def __init__(self, permutation, indices, indptr, shape):
        self.permutation, self.indices, self.indptr, self.shape = permutation, indices, indptr, shape

    def matrix(self, data):
        """A CSR matrix with this layout holding ``data`` (given in the layout's source order)."""
        return scipy.sparse.csr_matrix((data[self.permutation], self.indices, self.indptr), shape=self.shape)


def _csr_layout(rows, cols, shape):
    permutation = np.lexsort((cols, rows))
    indices = cols[permutation].astype(np.int32 if shape[1] < 2**31 else np.int64)
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return _CSRLayout(permutation, indices, indptr, shape)
