"""Cohorts: per-subject parameters and random streams.

Randomness enters only through :func:`subject_rng`: a ``numpy.random.Generator`` per
subject and purpose, from ``SeedSequence(seed, spawn_key=(arm key, subject, purpose))``.
A subject's numbers therefore never depend on how many subjects, arms or workers there
are, or on the order in which they run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ketasim.params import Registry
from ketasim.signaling import spec

# purposes of a subject's independent random streams
PURPOSE_PARAMETERS = 0
PURPOSE_MEASUREMENT = 1
PURPOSE_SPINES = 2
PURPOSE_BEHAVIOR = 3


def arm_key(arm_name: str) -> int:
    """Stable integer key of an arm (its name's CRC32)."""
    return zlib.crc32(arm_name.encode("utf-8"))


def subject_rng(seed: int, arm_name: str, subject: int, purpose: int) -> np.random.Generator:
    """The generator of one subject for one purpose."""
    ss = np.random.SeedSequence(entropy=int(seed),
                                spawn_key=(arm_key(arm_name), int(subject), int(purpose)))
    return np.random.Generator(np.random.PCG64(ss))


@dataclass(frozen=True)
class Cohort:
    """Per-subject values of every registry parameter for one arm."""

    species: str
    arm: str
    n: int
    names: tuple[str, ...]  # registry names, registry order
    values: np.ndarray  # (n, len(names))

    def get(self, registry_name: str) -> np.ndarray:
        return self.values[:, self.names.index(registry_name)]

    def pvec(self) -> np.ndarray:
        """The solver's parameter vector (model parameters, controls at 0)."""
        out = np.zeros((self.n, spec.N_PVEC))
        for j, p in enumerate(spec.PARAMS):
            out[:, j] = self.get(p.registry.format(species=self.species))
        return out


def sample_cohort(registry: Registry, species: str, arm: str, n: int, seed: int,
                  body_weight_kg: float | None = None, variability: bool = True) -> Cohort:
    """Draw ``n`` subjects: log-normal between-subject variability on every parameter
    with a ``bsv_cv`` (median = registry default)."""
    params = list(registry)
    names = tuple(p.name for p in params)
    typical = np.array([p.value for p in params])
    if body_weight_kg is not None:
        typical[names.index(f"species.{species}.body_weight")] = body_weight_kg
    omega = np.array([p.omega for p in params])
    varying = np.flatnonzero(omega > 0)
    values = np.tile(typical, (n, 1))
    if variability and varying.size:
        z = np.empty((n, varying.size))
        for i in range(n):  # one small draw per subject, from the subject's own stream
            z[i] = subject_rng(seed, arm, i, PURPOSE_PARAMETERS).standard_normal(varying.size)
        values[:, varying] = typical[varying] * np.exp(omega[varying] * z)
    return Cohort(species, arm, n, names, values)
