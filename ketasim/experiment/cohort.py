"""Cohorts: sampling per-subject parameters from the registry.

Randomness enters only through the stream scheme of :mod:`ketasim.core.streams`: a
subject's parameters come from its own ``PURPOSE_PARAMETERS`` stream, so they never
depend on how many subjects, arms or workers there are, or on the chunk it is run in.
"""

from __future__ import annotations

import numpy as np

from ketasim.core.cohort import Cohort
from ketasim.core.pcg64 import keyed_normals
from ketasim.core.streams import PURPOSE_PARAMETERS, subject_keys
from ketasim.params import Registry, RegistryError
from ketasim.params.registry import correlation_matrix
from ketasim.signaling.protocol import per_subject_parameter

__all__ = ["Cohort", "sample_cohort"]


def sample_cohort(registry: Registry, species: str, arm: str, n: int, seed: int,
                  body_weight_kg: float | None = None, variability: bool = True,
                  subjects=None, body_weights: np.ndarray | None = None,
                  covariates: dict[str, np.ndarray] | None = None) -> Cohort:
    """Draw ``n`` subjects (or the subjects with the given global indices):
    log-normal between-subject variability on every parameter with a ``bsv_cv`` (median
    = registry default), logit-normal on a fraction with a ``bsv_logit_sd``, correlated where the registry gives ``bsv_corr`` (the standard
    normal draws of the correlated parameters are multiplied by the Cholesky factor of
    their correlation matrix; parameters without correlations keep their own draws).
    ``body_weights`` (kg, one per subject) sets each subject's body weight exactly (a
    virtual patient population draws them); ``covariates`` likewise sets any registry
    parameter per subject (a population's ages: ``species.human.age``). A ``bsv_cv`` on a
    parameter that no layer reads per subject is an error (it would be drawn and never
    used)."""
    unused = [p.name for p in registry if p.varies and not per_subject_parameter(p.name)]
    if unused:
        raise RegistryError(f"bsv_cv on {', '.join(unused)}: between-subject variability "
                            "applies only to parameters read per subject (ODE parameters, "
                            "route.*, species.*.body_weight)")
    subjects = np.arange(n) if subjects is None else np.asarray(subjects, dtype=np.int64)
    n = len(subjects)
    params = list(registry)
    names = tuple(p.name for p in params)
    typical = np.array([p.value for p in params])
    if body_weight_kg is not None:
        typical[names.index(f"species.{species}.body_weight")] = body_weight_kg
    omega = np.array([p.omega for p in params])
    logit_sd = np.array([p.bsv_logit_sd for p in params])
    varying = np.flatnonzero((omega > 0) | (logit_sd > 0))
    values = np.tile(typical, (n, 1))
    if variability and varying.size:
        # one small draw per subject, its own stream (subject_rng's numbers: keyed by the
        # seed, the arm, the subject and the purpose), for all subjects at once
        z = keyed_normals(seed, subject_keys(arm, subjects, PURPOSE_PARAMETERS),
                          varying.size)
        corr = correlation_matrix(params)
        if corr is not None:
            cols = [int(np.flatnonzero(varying == names.index(nm))[0]) for nm in corr[0]]
            z[:, cols] = z[:, cols] @ np.linalg.cholesky(corr[1]).T
        log_n = omega[varying] > 0
        cols = varying[log_n]
        values[:, cols] = typical[cols] * np.exp(omega[cols] * z[:, log_n])
        cols = varying[~log_n]  # logit-normal fractions
        if cols.size:
            logit = np.log(typical[cols] / (1.0 - typical[cols])) + logit_sd[cols] * z[:, ~log_n]
            values[:, cols] = 1.0 / (1.0 + np.exp(-logit))
    if body_weights is not None:
        w = np.asarray(body_weights, dtype=float)
        if w.shape != (n,) or not np.all(w > 0):
            raise ValueError(f"body_weights: expected {n} positive weights (kg), got {w!r}")
        values[:, names.index(f"species.{species}.body_weight")] = w
    for name, v in (covariates or {}).items():
        v = np.asarray(v, dtype=float)
        if name not in names or v.shape != (n,) or not np.all(np.isfinite(v)):
            raise ValueError(f"covariates[{name!r}]: expected {n} finite values of a "
                             "registry parameter")
        values[:, names.index(name)] = v
    return Cohort(species, arm, n, names, values, subjects)
