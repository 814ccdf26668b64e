"""Traits of an animal that its behaviour tests share: a per-animal factor drawn once
from a stream of its own and kept over all its sessions (how hard a mouse struggles when
suspended, how much it moves in an open field)."""

from __future__ import annotations

import numpy as np

from ketasim.core.assay import AssayContext


def lognormal_from_normals(cv: float, z: np.ndarray) -> np.ndarray:
    """Log-normal factors with mean 1 and coefficient of variation ``cv`` from standard
    normals ``z`` (``exp(-sig^2 / 2 + sig z)``, sig^2 = log(1 + cv^2))."""
    sig = float(np.sqrt(np.log1p(cv * cv)))
    return np.exp(-0.5 * sig * sig + sig * np.asarray(z, dtype=float))


def lognormal_traits(ctx: AssayContext, cv: float, part: str) -> np.ndarray:
    """Each subject's trait (mean 1, CV ``cv``) from the first normal of its stream for
    ``part``, drawn for the whole chunk at once; all 1, drawing nothing, when ``cv`` is 0."""
    if cv <= 0.0:
        return np.ones(ctx.n)
    return lognormal_from_normals(cv, ctx.normals([part], 1)[:, 0, 0])
