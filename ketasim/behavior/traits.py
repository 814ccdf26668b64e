"""Traits of an animal that its behaviour tests share: a per-animal factor drawn once
from a stream of its own and kept over all its sessions (how hard a mouse struggles when
suspended, how much it moves in an open field)."""

from __future__ import annotations

import numpy as np


def lognormal_trait(cv: float, rng: np.random.Generator) -> float:
    """A log-normal factor with mean 1 and coefficient of variation ``cv``; exactly 1,
    drawing nothing, when ``cv`` is 0 (the stream is left untouched)."""
    if cv <= 0.0:
        return 1.0
    sig = float(np.sqrt(np.log1p(cv * cv)))
    return float(np.exp(rng.normal(-0.5 * sig * sig, sig)))
