"""Mixed model for repeated measures (MMRM), the primary analysis of depression trials.

:func:`fit_mmrm` fits, to a long table of one row per subject and visit, the model that
trials pre-specify (Mallinckrodt et al. 2008, Drug Inf J 42:303; SAS PROC MIXED with a
``REPEATED`` statement, R ``mmrm``)::

    change ~ arm * visit + baseline * visit (+ covariates)

with fixed effects only and a residual covariance across visits within a subject that is
unstructured (``"us"``, the default), compound symmetric (``"cs"``) or first-order
autoregressive over the visit index (``"ar1"``). Subjects with missing visits keep the
visits they have (intent-to-treat under missing-at-random): each subject's covariance is
the sub-matrix of its observed visits.

Estimation is by REML (default) or ML. For a covariance ``Sigma(theta)`` the fixed effects
are profiled out by generalised least squares, ``beta(theta) = (X'V^-1 X)^-1 X'V^-1 y``,
and ``-2 log L_R = (N - p) log 2 pi + log|V| + log|X'V^-1 X| + r'V^-1 r`` (Harville 1977,
J Am Stat Assoc 72:320; the SAS and R nlme/mmrm value) is minimised over an unconstrained
parameterisation of ``Sigma`` (log-Cholesky for ``us``) by scipy's trust-region Newton
method with the analytic gradient and Hessian, from the covariance of pooled OLS
residuals. Subjects are grouped by their pattern of observed visits, so each step costs one
Cholesky factorisation per pattern.

Inference on the fixed effects uses their model-based covariance ``Phi = (X'V^-1 X)^-1``
and, by ``df``:

- ``"kenward-roger"`` (default, REML only): the bias-corrected covariance
  ``Phi_A = Phi + 2 Lambda`` and the scaled F / df of Kenward & Roger (1997, Biometrics
  53:983), computed from the analytic first (and, for ``ar1``, second) derivatives of
  ``Sigma`` with respect to its natural parameters (the elements of ``Sigma`` for ``us``,
  as SAS ``DDFM=KR``; covariance and residual variance for ``cs``; variance and rho for
  ``ar1``);
- ``"satterthwaite"``: ``Phi`` with Satterthwaite (1946, Biometrics Bull 2:110) df,
  ``2 (c'Phi c)^2 / (g'W g)`` with ``g_i = c' dPhi/dtheta_i c`` (Giesbrecht & Burns 1985),
  and for a multi-row contrast the per-eigen-direction version of R lmerTest;
- ``"residual"``: ``Phi`` with ``N - p`` df (R ``nlme::gls``).

``W``, the covariance of the covariance parameters, is the inverse of the observed
information (the Hessian of the REML criterion; SAS and R mmrm) or, with
``information="expected"``, of the expected information (Kenward & Roger's original, R
pbkrtest). For a 1-row contrast the Kenward-Roger df equal the Satterthwaite df with the
same ``W``; they differ in the standard error (``Phi_A`` against ``Phi``).

Least-squares means per arm and visit set numeric covariates (and the baseline) to their
mean over the analysed rows and weight the levels of categorical covariates equally (SAS
``LSMEANS``, R emmeans); the contrast of each arm against the control arm at each visit is
their difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg as sla
from scipy import optimize
from scipy import stats as sps

__all__ = [
    "CONTRAST_COLUMNS",
    "COVARIANCES",
    "DF_METHODS",
    "LSMEANS_COLUMNS",
    "MMRMResult",
    "fit_mmrm",
]

#: Residual covariance structures across visits.
COVARIANCES = ("us", "cs", "ar1")
#: Denominator degrees-of-freedom methods.
DF_METHODS = ("kenward-roger", "satterthwaite", "residual")
#: Columns of :attr:`MMRMResult.lsmeans`.
LSMEANS_COLUMNS = ["arm", "visit", "estimate", "se", "df", "ci_low", "ci_high"]
#: Columns of :attr:`MMRMResult.contrasts`.
CONTRAST_COLUMNS = ["arm", "control", "visit", "estimate", "se", "df", "t", "p",
                    "ci_low", "ci_high"]
_LOG_2PI = float(np.log(2.0 * np.pi))


# --------------------------------------------------------------------------- structures


class _Structure:
    """A covariance structure over ``K`` visits: ``Sigma(theta)`` in its natural
    parameters ``theta`` (those the df methods differentiate), their first and second
    derivatives, and an unconstrained parameterisation ``phi`` for the optimiser."""

    names: list[str]
    linear = True

    def __init__(self, k: int):
        self.k = k

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def d1(self, theta: np.ndarray) -> np.ndarray:  # (m, K, K)
        raise NotImplementedError

    def d2(self, theta: np.ndarray) -> np.ndarray | None:  # (m, m, K, K); None if linear
        return None

    def theta(self, phi: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jac(self, phi: np.ndarray) -> np.ndarray:  # d theta / d phi, (m, m)
        raise NotImplementedError

    def jac2(self, phi: np.ndarray) -> np.ndarray:
        """Second derivatives of ``theta`` in ``phi`` (m, m, m), by central differences
        of the analytic Jacobian (only the optimiser's Hessian uses them)."""
        m = len(phi)
        out = np.empty((m, m, m))
        for j in range(m):
            h = 1e-5 * max(1.0, abs(phi[j]))
            e = np.zeros(m)
            e[j] = h
            out[:, :, j] = (self.jac(phi + e) - self.jac(phi - e)) / (2 * h)
        return 0.5 * (out + out.transpose(0, 2, 1))

    def phi_start(self, s0: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rescale(self, theta: np.ndarray, s2: float) -> np.ndarray:
        """``theta`` for the response multiplied by ``sqrt(s2)``."""
        return theta * s2


class _Unstructured(_Structure):
    """Unstructured: ``theta`` are the lower-triangle elements of ``Sigma`` (row-major),
    ``phi`` the lower-triangle elements of its Cholesky factor with the diagonal on the log
    scale."""

    def __init__(self, k: int, labels: Sequence[str]):
        super().__init__(k)
        self.rows, self.cols = np.tril_indices(k)
        self.names = [f"cov({labels[a]},{labels[b]})" if a != b else f"var({labels[a]})"
                      for a, b in zip(self.rows, self.cols, strict=True)]
        m = len(self.rows)
        g = np.zeros((m, k, k))
        g[np.arange(m), self.rows, self.cols] = 1.0
        g[np.arange(m), self.cols, self.rows] = 1.0
        self._g = g
        self._diag = self.rows == self.cols

    def sigma(self, theta):
        s = np.zeros((self.k, self.k))
        s[self.rows, self.cols] = theta
        s[self.cols, self.rows] = theta
        return s

    def d1(self, theta):
        return self._g

    def _chol(self, phi):
        lo = np.zeros((self.k, self.k))
        lo[self.rows, self.cols] = np.where(self._diag, np.exp(phi), phi)
        return lo

    def theta(self, phi):
        lo = self._chol(phi)
        return (lo @ lo.T)[self.rows, self.cols]

    def jac(self, phi):
        lo = self._chol(phi)
        m = len(phi)
        out = np.empty((m, m))
        for j, (a, b) in enumerate(zip(self.rows, self.cols, strict=True)):
            ds = np.zeros((self.k, self.k))
            ds[a, :] += lo[:, b]
            ds[:, a] += lo[:, b]
            if a == b:
                ds *= lo[a, a]
            out[:, j] = ds[self.rows, self.cols]
        return out

    def phi_start(self, s0):
        lo = np.linalg.cholesky(s0)
        v = lo[self.rows, self.cols]
        return np.where(self._diag, np.log(v), v)


class _CompoundSymmetry(_Structure):
    """Compound symmetry ``Sigma = c J + s I``: ``theta = (c, s)`` (SAS ``TYPE=CS``),
    ``phi`` the logs of the two eigenvalues ``s`` and ``s + K c``."""

    def __init__(self, k: int):
        super().__init__(k)
        self.names = ["covariance", "residual"]
        self._g = np.stack([np.ones((k, k)), np.eye(k)])

    def sigma(self, theta):
        return theta[0] * np.ones((self.k, self.k)) + theta[1] * np.eye(self.k)

    def d1(self, theta):
        return self._g

    def theta(self, phi):
        e1, e2 = np.exp(phi)
        return np.array([(e2 - e1) / self.k, e1])

    def jac(self, phi):
        e1, e2 = np.exp(phi)
        return np.array([[-e1 / self.k, e2 / self.k], [e1, 0.0]])

    def phi_start(self, s0):
        k = self.k
        var = float(np.mean(np.diag(s0)))
        cov = float((s0.sum() - np.trace(s0)) / (k * (k - 1)))
        cov = float(np.clip(cov, -0.9 * var / (k - 1), 0.9 * var))
        return np.log([var - cov, var - cov + k * cov])


class _AR1(_Structure):
    """First-order autoregressive over the visit index, ``Sigma_ij = s rho^|i - j|``:
    ``theta = (s, rho)`` (SAS ``TYPE=AR(1)``), ``phi = (log s, atanh rho)``."""

    linear = False

    def __init__(self, k: int):
        super().__init__(k)
        self.names = ["variance", "rho"]
        self._lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))

    def _pow(self, rho, shift):
        return rho ** np.maximum(self._lag - shift, 0)

    def sigma(self, theta):
        return theta[0] * self._pow(theta[1], 0)

    def d1(self, theta):
        s, rho = theta
        d = self._lag
        return np.stack([self._pow(rho, 0), s * d * self._pow(rho, 1)])

    def d2(self, theta):
        s, rho = theta
        d = self._lag
        cross = d * self._pow(rho, 1)
        return np.stack([np.stack([np.zeros_like(cross), cross]),
                         np.stack([cross, s * d * (d - 1) * self._pow(rho, 2)])])

    def theta(self, phi):
        return np.array([np.exp(phi[0]), np.tanh(phi[1])])

    def jac(self, phi):
        return np.diag([np.exp(phi[0]), 1.0 - np.tanh(phi[1]) ** 2])

    def phi_start(self, s0):
        var = float(np.mean(np.diag(s0)))
        sd = np.sqrt(np.diag(s0))
        rho = float(np.mean(np.diag(s0, 1) / (sd[:-1] * sd[1:])))
        return np.array([np.log(var), np.arctanh(np.clip(rho, -0.9, 0.9))])

    def rescale(self, theta, s2):
        return np.array([theta[0] * s2, theta[1]])


# ------------------------------------------------------------------------------ problem


@dataclass
class _Pattern:
    visits: np.ndarray  # observed visit indices (k,)
    x: np.ndarray  # (n, k, p)
    y: np.ndarray  # (n, k)


@dataclass
class _Eval:
    obj: float
    beta: np.ndarray
    phi: np.ndarray  # (X'V^-1 X)^-1
    sigma: np.ndarray
    grad: np.ndarray | None = None
    hess: np.ndarray | None = None  # observed, of -2 log L
    expected: np.ndarray | None = None  # expected, of -2 log L (tr(P V_i P V_j))
    pdx: np.ndarray | None = None  # X'V^-1 V_i V^-1 X, (m, p, p)
    kr_sum: np.ndarray | None = None  # sum_ij W_ij (Q_ij - P_i Phi P_j - R_ij / 4)


class _Problem:
    """Data grouped by missing-visit pattern, and the REML/ML criterion with its
    derivatives in the natural covariance parameters."""

    def __init__(self, patterns: list[_Pattern], n_obs: int, p: int, reml: bool):
        self.patterns, self.n_obs, self.p, self.reml = patterns, n_obs, p, reml

    def scaled(self, s: float, beta: np.ndarray) -> _Problem:
        """The problem for ``(y - X beta) / s``: its REML and ML criteria differ from the
        original's by a constant at ``Sigma / s**2`` (beta is profiled out), so its
        optimum is the original's rescaled, free of large fixed effects."""
        return _Problem([_Pattern(q.visits, q.x, (q.y - q.x @ beta) / s)
                         for q in self.patterns], self.n_obs, self.p, self.reml)

    def evaluate(self, struct: _Structure, theta: np.ndarray, order: int = 0,
                 w: np.ndarray | None = None) -> _Eval | None:
        """The criterion ``-2 log L`` at ``theta`` (None where ``Sigma`` is not positive
        definite); with ``order >= 1`` its gradient, ``order >= 2`` its observed and
        expected Hessians and ``dX'V^-1X``; with ``w`` also Kenward-Roger's sum."""
        sig = struct.sigma(theta)
        p, reml = self.p, float(self.reml)
        xvx = np.zeros((p, p))
        xvy = np.zeros(p)
        yvy = logdet = 0.0
        cache = []
        for q in self.patterns:
            o, n, k = q.visits, q.y.shape[0], len(q.visits)
            try:
                c = sla.cho_factor(sig[np.ix_(o, o)], lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            d = np.diag(c[0])
            if not np.all(d > 0):
                return None
            minv = sla.cho_solve(c, np.eye(k), check_finite=False)
            z = np.matmul(minv, q.x)  # V^-1 X per subject, (n, k, p)
            zf = z.reshape(n * k, p)
            xvx += q.x.reshape(n * k, p).T @ zf
            xvy += zf.T @ q.y.reshape(-1)
            yvy += float(np.sum(q.y * (q.y @ minv)))
            logdet += 2.0 * n * float(np.sum(np.log(d)))
            cache.append((minv, z))
        try:
            cx = sla.cho_factor(xvx, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        beta = sla.cho_solve(cx, xvy, check_finite=False)
        phi = sla.cho_solve(cx, np.eye(p), check_finite=False)
        rpr = yvy - float(xvy @ beta)
        ldx = 2.0 * float(np.sum(np.log(np.diag(cx[0]))))
        obj = logdet + rpr + reml * ldx + (self.n_obs - reml * p) * _LOG_2PI
        out = _Eval(obj, beta, phi, sig)
        if order < 1:
            return out

        g = struct.d1(theta)
        g2 = None if struct.linear else struct.d2(theta)
        m = g.shape[0]
        grad = np.zeros(m)
        pdx = np.zeros((m, p, p))
        trmgmg = np.zeros((m, m))
        trphiq = np.zeros((m, m))
        ugmgu = np.zeros((m, m))
        avec = np.zeros((m, p))
        second = np.zeros((m, m))
        kr_q = np.zeros((p, p))
        kr_r = np.zeros((p, p))
        for q, (minv, z) in zip(self.patterns, cache, strict=True):
            o, n, k = q.visits, q.y.shape[0], len(q.visits)
            gp = g[:, o[:, None], o[None, :]]
            u = (q.y - q.x @ beta) @ minv  # V^-1 r per subject, (n, k)
            su = u.T @ u
            zf = z.reshape(n, k * p)
            t = (zf.T @ zf).reshape(k, p, k, p).transpose(0, 2, 1, 3)  # sum_s Z_a' Z_b
            pdx += np.einsum("iab,abpq->ipq", gp, t)
            grad += n * np.einsum("ab,iba->i", minv, gp) - np.einsum("iab,ab->i", gp, su)
            if order < 2:
                continue
            mg = np.matmul(minv, gp)
            trmgmg += n * np.einsum("iab,jba->ij", mg, mg)
            gmg = np.einsum("iab,jbd->ijad", gp, mg)
            tau = np.einsum("qp,abpq->ab", phi, t)
            trphiq += np.einsum("ijab,ab->ij", gmg, tau)
            ugmgu += np.einsum("ijab,ab->ij", gmg, su)
            zu = (zf.T @ u).reshape(k, p, k)
            avec += np.einsum("iab,apb->ip", gp, zu)
            if g2 is not None:
                g2p = g2[:, :, o[:, None], o[None, :]]
                second += (n * np.einsum("ab,ijba->ij", minv, g2p)
                           - np.einsum("ijab,ab->ij", g2p, su)
                           - reml * np.einsum("ijab,ab->ij", g2p, tau))
                if w is not None:
                    kr_r += np.einsum("ab,abpq->pq", np.einsum("ij,ijab->ab", w, g2p), t)
            if w is not None:
                kr_q += np.einsum("ab,abpq->pq", np.einsum("ij,ijab->ab", w, gmg), t)
        grad -= reml * np.einsum("pq,iqp->i", phi, pdx)
        out.grad, out.pdx = grad, pdx
        if order < 2:
            return out
        a = pdx @ phi  # P_i Phi
        traa = np.einsum("ipq,jqp->ij", a, a)
        expected = trmgmg - reml * (2.0 * trphiq - traa)
        hess = -expected + 2.0 * (ugmgu - avec @ phi @ avec.T) + second
        out.hess = 0.5 * (hess + hess.T)
        out.expected = 0.5 * (expected + expected.T)
        if w is not None:
            out.kr_sum = kr_q - np.einsum("ij,ipr,jrs->ps", w, a, pdx) - 0.25 * kr_r
        return out


# ------------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class MMRMResult:
    """A fitted MMRM (see the module docstring for the model and methods).

    ``coef``/``vcov`` are the fixed effects and their model-based covariance
    ``(X'V^-1 X)^-1``; ``vcov_adj`` the Kenward-Roger covariance (None unless
    ``df_method == "kenward-roger"``); ``coef_table`` has per coefficient the estimate, its
    standard error (from ``vcov_adj`` under Kenward-Roger), df, t and two-sided p.
    ``covariance`` is the estimated visit-by-visit residual covariance; ``theta`` its
    natural parameters with covariance ``theta_vcov`` (the inverse information).
    ``loglik`` is the REML (or ML) log-likelihood; ``aic``/``bic`` count the covariance
    parameters under REML and also the fixed effects under ML (SAS, R mmrm), BIC with
    the number of subjects. ``lsmeans`` and ``contrasts`` are tables with columns
    :data:`LSMEANS_COLUMNS` and :data:`CONTRAST_COLUMNS`.
    """

    coef: pd.Series
    vcov: pd.DataFrame
    vcov_adj: pd.DataFrame | None
    coef_table: pd.DataFrame
    covariance: pd.DataFrame
    theta: pd.Series
    theta_vcov: pd.DataFrame
    loglik: float
    aic: float
    bic: float
    lsmeans: pd.DataFrame
    contrasts: pd.DataFrame
    covariance_structure: str
    method: str
    df_method: str
    information: str
    alpha: float
    n_subjects: int
    n_obs: int
    visits: tuple
    arms: tuple
    control: object
    converged: bool
    n_iter: int
    _pdx: np.ndarray = field(repr=False)
    _w: np.ndarray = field(repr=False)

    def contrast(self, L, df: str | None = None) -> dict:
        """Test ``L beta = 0`` with the fit's df method (or ``df``).

        ``L`` is a vector or matrix over :attr:`coef` (array-like, or a Series/mapping
        from coefficient name to weight, absent names 0). One row gives ``estimate``,
        ``se``, ``df``, ``t``, ``p``; several rows give ``F``, ``num_df``, ``den_df``,
        ``p`` (Kenward-Roger: the scaled F of their eq. (3.1)-(3.4); Satterthwaite: the
        eigen-decomposition method of R lmerTest; residual: ``N - p``).
        """
        method = self.df_method if df is None else df
        if method not in DF_METHODS:
            raise ValueError(f"df must be one of {', '.join(DF_METHODS)}, got {method!r}")
        if method == "kenward-roger" and self.vcov_adj is None:
            raise ValueError("df 'kenward-roger' needs a fit with df='kenward-roger' "
                             "(REML)")
        lm = _contrast_matrix(L, list(self.coef.index))
        out = _test(lm, self.coef.to_numpy(), self.vcov.to_numpy(),
                    None if self.vcov_adj is None else self.vcov_adj.to_numpy(),
                    self._pdx, self._w, method, self.n_obs - len(self.coef))
        if not self.converged:  # no inference from a fit short of its optimum
            out.update({k: float("nan") for k in ("df", "t", "F", "den_df", "p")
                        if k in out})
        return out


def _contrast_matrix(L, names: list[str]) -> np.ndarray:
    if isinstance(L, Mapping | pd.Series):
        unknown = [k for k in dict(L) if k not in names]
        if unknown:
            raise ValueError(f"L: unknown coefficient {unknown[0]!r}")
        return np.array([[float(dict(L).get(n, 0.0)) for n in names]])
    lm = np.atleast_2d(np.asarray(L, dtype=float))
    if lm.ndim != 2 or lm.shape[1] != len(names):
        raise ValueError(f"L must have {len(names)} columns (one per coefficient), got "
                         f"shape {np.shape(L)}")
    return lm


def _satterthwaite_1d(c, vphi, pdx, w) -> float:
    v = float(c @ vphi @ c)
    pc = vphi @ c
    gvec = np.einsum("p,ipq,q->i", pc, pdx, pc)
    denom = float(gvec @ w @ gvec)
    return 2.0 * v * v / denom if denom > 0 else float("inf")


def _kr_f(lm, beta, vphi, vadj, pdx, w):
    """Kenward & Roger (1997) scaled F statistic and denominator df for ``L beta = 0``."""
    q = np.linalg.matrix_rank(lm)
    theta_m = lm.T @ np.linalg.solve(lm @ vphi @ lm.T, lm)
    u = np.einsum("ab,ibc,cd->iad", theta_m @ vphi, pdx, vphi)
    tr = np.einsum("iaa->i", u)
    a1 = float(tr @ w @ tr)
    a2 = float(np.einsum("ij,iab,jba->", w, u, u))
    est = lm @ beta
    wald = float(est @ np.linalg.solve(lm @ vadj @ lm.T, est)) / q
    if not a2 > 0:  # L beta does not depend on the covariance parameters
        return wald, q, float("inf")
    b = (a1 + 6.0 * a2) / (2.0 * q)
    g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
    den = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    e_star = 1.0 / (1.0 - a2 / q)
    v_star = (2.0 / q) * (1.0 + c1 * b) / ((1.0 - c2 * b) ** 2 * (1.0 - c3 * b))
    rho = v_star / (2.0 * e_star ** 2)
    m = 4.0 + (q + 2.0) / (q * rho - 1.0)
    lam = 1.0 if abs(m - 4.0) < 1e-10 else m / (e_star * (m - 2.0))
    return lam * wald, q, m


def _test(lm, beta, vphi, vadj, pdx, w, method, resid_df) -> dict:
    if lm.shape[0] == 1:
        c = lm[0]
        est = float(c @ beta)
        cov = vadj if method == "kenward-roger" else vphi
        se = float(np.sqrt(c @ cov @ c))
        if method == "residual":
            dfv = float(resid_df)
        else:
            dfv = _satterthwaite_1d(c, vphi, pdx, w)
        # a vanishing standard error (a degenerate covariance) says nothing: no test
        t = est / se if se > 1e-10 * max(abs(est), float(np.sqrt(np.abs(beta) @ np.abs(beta))),
                                         1e-300) else float("nan")
        return {"estimate": est, "se": se, "df": dfv, "t": t,
                "p": float(2.0 * sps.t.sf(abs(t), dfv))}
    q = np.linalg.matrix_rank(lm)
    if q < lm.shape[0]:
        raise ValueError(f"L has {lm.shape[0]} rows but rank {q}: drop redundant rows")
    if method == "kenward-roger":
        f, q, dfv = _kr_f(lm, beta, vphi, vadj, pdx, w)
    else:
        est = lm @ beta
        f = float(est @ np.linalg.solve(lm @ vphi @ lm.T, est)) / q
        if method == "residual":
            dfv = float(resid_df)
        else:  # lmerTest: Satterthwaite df per eigen direction, combined by moments
            _, vecs = np.linalg.eigh(lm @ vphi @ lm.T)
            nus = np.array([_satterthwaite_1d(vecs[:, i] @ lm, vphi, pdx, w)
                            for i in range(q)])
            big = nus[nus > 2]
            e = float(np.sum(big / (big - 2.0)))
            dfv = 2.0 * e / (e - q) if e > q else float("nan")
    return {"F": f, "num_df": q, "den_df": dfv, "p": float(sps.f.sf(f, q, dfv))}


# ------------------------------------------------------------------------------ fitting


def _levels(col: pd.Series, given, what: str) -> list:
    if given is not None:
        levels = list(given)
        if len(set(levels)) != len(levels):
            raise ValueError(f"{what}: duplicate levels in {levels!r}")
        return levels
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = list(col.cat.categories)
    else:
        levels = sorted(pd.unique(col.dropna()))
    return [v.item() if isinstance(v, np.generic) else v for v in levels]


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


class _Design:
    """Builds model-matrix rows ``arm * visit + baseline * visit + covariates`` in R's
    column order (treatment coding, first level as reference)."""

    def __init__(self, arm, visit, baseline, arms, control, visits, covs):
        self.arm, self.visit, self.baseline = arm, visit, baseline
        self.visits = visits
        self.others = [a for a in arms if a != control]
        self.covs = covs  # [(name, levels or None)]
        names = ["(Intercept)"]
        names += [f"{arm}[{a}]" for a in self.others]
        names += [f"{visit}[{v}]" for v in visits[1:]]
        if baseline is not None:
            names.append(baseline)
        for name, levels in covs:
            names += [name] if levels is None else [f"{name}[{lv}]" for lv in levels[1:]]
        names += [f"{arm}[{a}]:{visit}[{v}]" for v in visits[1:] for a in self.others]
        if baseline is not None:
            names += [f"{baseline}:{visit}[{v}]" for v in visits[1:]]
        self.names = names

    def matrix(self, arm_i, visit_i, base, cov_blocks) -> np.ndarray:
        """Rows for arm and visit indices (into ``others`` + 1, 0 = control; visits),
        baseline values and per-covariate column blocks."""
        n = len(arm_i)
        arm_d = np.stack([arm_i == j + 1 for j in range(len(self.others))], axis=1)
        vis_d = np.stack([visit_i == j for j in range(1, len(self.visits))], axis=1)
        cols = [np.ones((n, 1)), arm_d, vis_d]
        if self.baseline is not None:
            cols.append(base[:, None])
        cols += cov_blocks
        cols.append((vis_d[:, :, None] * arm_d[:, None, :]).reshape(n, -1))
        if self.baseline is not None:
            cols.append(vis_d * base[:, None])
        return np.concatenate([np.asarray(c, dtype=float) for c in cols], axis=1)


def fit_mmrm(
    data: pd.DataFrame,
    *,
    response: str = "change",
    subject: str = "subject",
    visit: str = "visit",
    arm: str = "arm",
    baseline: str | None = "baseline",
    covariates: Sequence[str] = (),
    control=None,
    visits: Sequence | None = None,
    covariance: str = "us",
    method: str = "reml",
    df: str = "kenward-roger",
    information: str = "observed",
    alpha: float = 0.05,
    max_iter: int = 200,
) -> MMRMResult:
    """Fit ``response ~ arm * visit + baseline * visit + covariates`` with a residual
    covariance across visits within subject (module docstring: Mallinckrodt et al. 2008;
    Kenward & Roger 1997; Satterthwaite 1946).

    ``data`` is long: one row per subject and visit; rows whose response (or baseline or
    a covariate) is missing, and absent rows, are missing visits, and the subject keeps
    its other visits. Visit order: ``visits``, else the categories of a categorical
    ``visit`` column, else sorted values; the arm order likewise (categories or sorted),
    and ``control`` (default: the first arm) is the reference arm. ``covariates`` are
    extra main effects (numeric as is, others as treatment-coded factors).
    ``covariance`` is ``"us"``, ``"cs"`` or ``"ar1"``; ``method`` ``"reml"`` or ``"ml"``;
    ``df`` one of :data:`DF_METHODS`; ``information`` ``"observed"`` or ``"expected"``
    (for the covariance of the covariance parameters used by the df methods).

    Returns an :class:`MMRMResult` (estimates, covariances, log-likelihood, LS means and
    the contrasts of each arm against ``control`` at each visit, with ``df``'s df).

    Raises TypeError if ``data`` is not a DataFrame, and ValueError naming the column or
    argument for an unknown option, a missing column, fewer than 2 visits or arms, a
    subject with two rows for one visit or in two arms, an arm or visit with no observed
    response, a non-numeric or infinite response or baseline, a one-level covariate, or a
    rank-deficient design.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got "
                         f"{covariance!r}")
    if method not in ("reml", "ml"):
        raise ValueError(f"method must be 'reml' or 'ml', got {method!r}")
    if df not in DF_METHODS:
        raise ValueError(f"df must be one of {', '.join(DF_METHODS)}, got {df!r}")
    if df == "kenward-roger" and method != "reml":
        raise ValueError("df 'kenward-roger' needs method 'reml'")
    if information not in ("observed", "expected"):
        raise ValueError(f"information must be 'observed' or 'expected', got "
                         f"{information!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    roles = [(response, "response"), (subject, "subject"), (visit, "visit"), (arm, "arm")]
    if baseline is not None:
        roles.append((baseline, "baseline"))
    roles += [(c, "covariate") for c in covariates]
    for col, role in roles:
        if col not in data.columns:
            raise ValueError(f"column {col!r} ({role}) is missing from data; columns are "
                             f"{', '.join(map(str, data.columns))}")
    seen_roles: dict = {}
    for col, role in roles:
        if col in seen_roles:
            raise ValueError(f"column {col!r} is given two roles ({seen_roles[col]} and "
                             f"{role})")
        seen_roles[col] = role
    for col, role in [(response, "response"), (baseline, "baseline")]:
        if col is not None and not _is_number(data[col]):
            raise ValueError(f"column {col!r} ({role}) must be numeric, got dtype "
                             f"{data[col].dtype}")
    for col, role in [(subject, "subject"), (visit, "visit"), (arm, "arm")]:
        if data[col].isna().any():
            raise ValueError(f"column {col!r} ({role}) has missing values (row "
                             f"{data.index[data[col].isna().to_numpy()][0]!r})")

    visit_levels = _levels(data[visit], visits, "visits")
    if len(visit_levels) < 2:
        raise ValueError(f"column {visit!r} (visit): an MMRM needs at least 2 visits, got "
                         f"{len(visit_levels)}")
    vmap = {v: i for i, v in enumerate(visit_levels)}
    vcode = data[visit].map(vmap)
    if vcode.isna().any():
        bad = data[visit][vcode.isna()].iloc[0]
        raise ValueError(f"column {visit!r} (visit): value {bad!r} is not among the visits "
                         f"{visit_levels!r}")
    dup = data.duplicated([subject, visit], keep=False).to_numpy()
    if dup.any():
        row = data[dup].iloc[0]
        n_dup = int(((data[subject] == row[subject]) & (data[visit] == row[visit])).sum())
        raise ValueError(f"column {visit!r} (visit): subject {row[subject]!r} has {n_dup} "
                         f"rows for visit {row[visit]!r}")
    arm_levels = _levels(data[arm], None, "arm")
    if control is None:
        control = arm_levels[0] if arm_levels else None
    if control not in arm_levels:
        raise ValueError(f"control: arm {control!r} is not in column {arm!r} (arms "
                         f"{arm_levels!r})")
    per_subject = data.groupby(subject, sort=False, observed=True)[arm].nunique()
    if (per_subject > 1).any():
        raise ValueError(f"column {arm!r} (arm): subject {per_subject.index[per_subject > 1][0]!r}"
                         " is in more than one arm")

    keep = data[response].notna()
    if baseline is not None:
        keep &= data[baseline].notna()
    for c in covariates:
        keep &= data[c].notna()
    d = data.loc[keep.to_numpy()]
    for a in arm_levels:
        if not (d[arm] == a).any():
            raise ValueError(f"column {arm!r} (arm): arm {a!r} has no subjects with an "
                             f"observed {response!r}")
    if len(arm_levels) < 2:
        raise ValueError(f"column {arm!r} (arm): an MMRM needs at least 2 arms, got "
                         f"{arm_levels!r}")
    dv = vcode[keep].to_numpy(int)
    for i, v in enumerate(visit_levels):
        if not np.any(dv == i):
            raise ValueError(f"column {visit!r} (visit): visit {v!r} has no observed "
                             f"{response!r}")
    for col, role in [(response, "response"), (baseline, "baseline")] + [
            (c, "covariate") for c in covariates if _is_number(d[c])]:
        if col is not None and not np.all(np.isfinite(d[col].to_numpy(float))):
            raise ValueError(f"column {col!r} ({role}) has infinite values")
    y_all = d[response].to_numpy(float)
    cov_specs = []
    for c in covariates:
        if _is_number(d[c]):
            cov_specs.append((c, None))
            continue
        present = set(d[c])
        levels = [lv for lv in _levels(data[c], None, c) if lv in present]
        if len(levels) < 2:
            raise ValueError(f"column {c!r} (covariate) has a single level {levels!r} in the "
                             "analysed rows")
        cov_specs.append((c, levels))

    design = _Design(arm, visit, baseline, arm_levels, control, visit_levels, cov_specs)
    arm_index = {a: 0 for a in [control]} | {a: j + 1 for j, a in enumerate(design.others)}
    ai = d[arm].map(arm_index).to_numpy(int)
    base = None if baseline is None else d[baseline].to_numpy(float)
    blocks, block_means = [], []
    for c, levels in cov_specs:
        if levels is None:
            v = d[c].to_numpy(float)
            blocks.append(v[:, None])
            block_means.append(np.array([v.mean()]))
        else:
            blocks.append(np.stack([(d[c] == lv).to_numpy() for lv in levels[1:]], axis=1))
            block_means.append(np.full(len(levels) - 1, 1.0 / len(levels)))
    x_all = design.matrix(ai, dv, base, blocks)
    p = x_all.shape[1]
    if np.linalg.matrix_rank(x_all) < p:
        raise ValueError(f"design is rank deficient ({p} columns, rank "
                         f"{np.linalg.matrix_rank(x_all)}): an arm missing at a visit or a "
                         f"covariate collinear with {arm!r} / {visit!r}?")
    n_obs = len(y_all)
    if n_obs <= p:
        raise ValueError(f"column {response!r} (response): {n_obs} observed values for "
                         f"{p} fixed effects")

    # group subjects by their pattern of observed visits
    scode, subjects = pd.factorize(d[subject])
    order = np.lexsort((dv, scode))
    scode, dv, x_all, y_all = scode[order], dv[order], x_all[order], y_all[order]
    k = len(visit_levels)
    n_sub = len(subjects)
    seen = np.zeros((n_sub, k), dtype=bool)
    seen[scode, dv] = True
    starts = np.searchsorted(scode, np.arange(n_sub))
    masks, pat = np.unique(seen, axis=0, return_inverse=True)
    patterns = []
    for j, mask in enumerate(masks):
        vis = np.flatnonzero(mask)
        rows = starts[pat.reshape(-1) == j][:, None] + np.arange(len(vis))
        patterns.append(_Pattern(vis, x_all[rows], y_all[rows]))
    reml = method == "reml"
    prob = _Problem(patterns, n_obs, p, reml)

    labels = [str(v) for v in visit_levels]
    struct = {"us": lambda: _Unstructured(k, labels), "cs": lambda: _CompoundSymmetry(k),
              "ar1": lambda: _AR1(k)}[covariance]()

    # optimise on the OLS residuals scaled to unit SD (the criterion is invariant to
    # y -> y + X b), then evaluate on the original scale: the fit is then equivariant
    # to the response's location and scale up to rounding
    beta_ols = np.linalg.lstsq(x_all, y_all, rcond=None)[0]
    r_all = y_all - x_all @ beta_ols
    s = float(np.std(r_all)) or 1.0
    # a visit whose values the fixed effects fit exactly (a constant change, say) has no
    # variance to estimate: the fit would drift towards a singular covariance and report
    # a standard error of 0 and p = 0
    scale = max(float(np.sqrt(np.mean(y_all * y_all))), np.finfo(float).tiny)
    for j, v in enumerate(visit_levels):
        at = dv == j
        if np.sqrt(np.mean(r_all[at] ** 2)) <= 1e-10 * scale:
            raise ValueError(f"column {response!r} (response): at visit {v!r} the fixed "
                             "effects fit every value exactly (no residual variance, e.g. "
                             "a constant), so its variance cannot be estimated")
    sprob = prob.scaled(s, beta_ols)
    resid = np.full((n_sub, k), np.nan)
    resid[scode, dv] = r_all / s
    s0 = pd.DataFrame(resid).cov(min_periods=2).to_numpy()
    s0 = np.where(np.isfinite(s0), s0, 0.0)
    vals, vecs = np.linalg.eigh(0.5 * (s0 + s0.T))
    top = max(float(vals.max()), 1e-8)
    s0 = (vecs * np.clip(vals, 1e-3 * top, None)) @ vecs.T
    phi0 = struct.phi_start(s0)
    theta_hat, converged, n_iter = _optimise(sprob, struct, phi0, max_iter)
    theta_hat = struct.rescale(theta_hat, s * s)

    fin = prob.evaluate(struct, theta_hat, order=2)
    if fin is None:
        raise ValueError("the fitted covariance is not positive definite")
    info_m = fin.hess if information == "observed" else fin.expected
    try:
        w = 2.0 * np.linalg.inv(info_m)
    except np.linalg.LinAlgError:
        w = np.full_like(info_m, np.nan)
        warnings.warn("MMRM: the information matrix of the covariance parameters is "
                      "singular; df are undefined", RuntimeWarning, stacklevel=2)
    vphi = fin.phi
    vadj = None
    if df == "kenward-roger":
        kr = prob.evaluate(struct, theta_hat, order=2, w=w)
        vadj = vphi + 2.0 * vphi @ kr.kr_sum @ vphi
        vadj = 0.5 * (vadj + vadj.T)
    if not converged:
        warnings.warn(f"MMRM: the optimiser stopped after {n_iter} of at most {max_iter} "
                      "iterations without meeting its gradient tolerance; no tests or "
                      "intervals are reported",
                      RuntimeWarning, stacklevel=2)

    names = design.names
    beta = fin.beta
    resid_df = n_obs - p
    rows = []
    for i in range(p):
        c = np.zeros(p)
        c[i] = 1.0
        rows.append(_test(c[None], beta, vphi, vadj, fin.pdx, w, df, resid_df))
    coef_table = pd.DataFrame(rows, index=names)[["estimate", "se", "df", "t", "p"]]

    # least-squares means and contrasts against control
    na = len(arm_levels)
    grid_a = np.repeat(np.arange(na), k)
    grid_v = np.tile(np.arange(k), na)
    gbase = None if baseline is None else np.full(na * k, float(base.mean()))
    gblocks = [np.tile(bm, (na * k, 1)) for bm in block_means]
    lgrid = design.matrix(grid_a, grid_v, gbase, gblocks)
    arm_of = [control] + design.others

    def tcrit(dfv: float) -> float:
        return float(sps.t.ppf(1.0 - alpha / 2.0, dfv))

    ls_rows = []
    for r in range(na * k):
        res = _test(lgrid[r][None], beta, vphi, vadj, fin.pdx, w, df, resid_df)
        h = tcrit(res["df"]) * res["se"]
        ls_rows.append({"arm": arm_of[grid_a[r]], "visit": visit_levels[grid_v[r]],
                        "estimate": res["estimate"], "se": res["se"], "df": res["df"],
                        "ci_low": res["estimate"] - h, "ci_high": res["estimate"] + h})
    order_arms = {a: i for i, a in enumerate(arm_levels)}
    lsmeans = pd.DataFrame(ls_rows, columns=LSMEANS_COLUMNS)
    lsmeans = lsmeans.sort_values("arm", key=lambda c: c.map(order_arms), kind="stable")
    lsmeans = lsmeans.reset_index(drop=True)
    con_rows = []
    for a in arm_levels:
        if a == control:
            continue
        j = arm_of.index(a)
        for v in range(k):
            c = lgrid[j * k + v] - lgrid[v]
            res = _test(c[None], beta, vphi, vadj, fin.pdx, w, df, resid_df)
            h = tcrit(res["df"]) * res["se"]
            con_rows.append({"arm": a, "control": control, "visit": visit_levels[v], **res,
                             "ci_low": res["estimate"] - h, "ci_high": res["estimate"] + h})
    contrasts = pd.DataFrame(con_rows, columns=CONTRAST_COLUMNS)
    if not converged:
        # a fit that did not reach the optimum gives no inference: its standard errors
        # and degrees of freedom are those of an arbitrary point (two patients per arm
        # gave Kenward-Roger df = inf and p 8.8e-8); the estimates are kept
        for table in (coef_table, lsmeans, contrasts):
            for col in ("df", "t", "p", "ci_low", "ci_high"):
                if col in table.columns:
                    table[col] = np.nan

    m = len(theta_hat)
    loglik = -0.5 * fin.obj
    n_par = m if reml else m + p
    vis_index = pd.Index(visit_levels, name=visit)
    return MMRMResult(
        coef=pd.Series(beta, index=names, name="estimate"),
        vcov=pd.DataFrame(vphi, index=names, columns=names),
        vcov_adj=None if vadj is None else pd.DataFrame(vadj, index=names, columns=names),
        coef_table=coef_table,
        covariance=pd.DataFrame(fin.sigma, index=vis_index, columns=vis_index),
        theta=pd.Series(theta_hat, index=struct.names, name="estimate"),
        theta_vcov=pd.DataFrame(w, index=struct.names, columns=struct.names),
        loglik=loglik, aic=-2.0 * loglik + 2.0 * n_par,
        bic=-2.0 * loglik + n_par * np.log(n_sub),
        lsmeans=lsmeans, contrasts=contrasts,
        covariance_structure=covariance, method=method, df_method=df,
        information=information, alpha=alpha, n_subjects=n_sub, n_obs=n_obs,
        visits=tuple(visit_levels), arms=tuple(arm_levels), control=control,
        converged=converged, n_iter=n_iter, _pdx=fin.pdx, _w=w)


def _optimise(prob: _Problem, struct: _Structure, phi0: np.ndarray, max_iter: int):
    """Minimise ``-2 log L`` over ``phi`` with scipy's exact trust-region Newton method
    (analytic gradient and Hessian in ``theta``, chained to ``phi``)."""
    state: dict = {}

    def at(phi, order):
        key = phi.tobytes()
        if state.get("key") != key or state["order"] < order:
            ev = prob.evaluate(struct, struct.theta(phi), order=order)
            state.update(key=key, order=order, ev=ev)
        return state["ev"]

    def fun(phi):
        ev = at(phi, 0)
        return np.inf if ev is None else ev.obj

    def jac(phi):
        ev = at(phi, 2)
        return struct.jac(phi).T @ ev.grad

    def hess(phi):
        ev = at(phi, 2)
        jm = struct.jac(phi)
        return jm.T @ ev.hess @ jm + np.einsum("k,kij->ij", ev.grad, struct.jac2(phi))

    gtol = 1e-9 * max(1.0, prob.n_obs)
    with warnings.catch_warnings():
        # a rejected trial step can leave the positive-definite region (fun is inf there)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        res = optimize.minimize(fun, phi0, jac=jac, hess=hess, method="trust-exact",
                                options={"gtol": gtol, "maxiter": max_iter})
    converged = bool(res.success) or float(np.linalg.norm(jac(res.x))) < 100 * gtol
    x = _polish(res.x, fun, jac, hess) if converged else res.x
    return struct.theta(x), converged, int(res.nit)


def _polish(x, fun, jac, hess, steps: int = 3):
    """A few plain Newton steps from the trust-region optimum, kept while -2 log L does
    not rise: the optimum to near machine precision, so the estimates no longer depend
    on the path the trust region took (the order of the data rows, the start)."""
    f0 = fun(x)
    for _ in range(steps):
        try:
            step = np.linalg.solve(hess(x), jac(x))
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        xn = x - step
        fn = fun(xn)
        if not np.isfinite(fn) or fn > f0 + 1e-12 * abs(f0):
            break
        x, f0 = xn, fn
        if np.linalg.norm(step) <= 1e-14 * (1.0 + np.linalg.norm(x)):
            break
    return x
