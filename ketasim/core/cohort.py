"""A cohort: per-subject values of every registry parameter for (a chunk of) one arm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cohort:
    """Per-subject values of every registry parameter. ``subjects`` holds the subjects'
    global indices in the arm (a chunk of a large arm holds a slice of them)."""

    species: str
    arm: str
    n: int
    names: tuple[str, ...]  # registry names, registry order
    values: np.ndarray  # (n, len(names))
    subjects: np.ndarray | None = None

    def __post_init__(self):
        if self.subjects is None:
            object.__setattr__(self, "subjects", np.arange(self.n))
        if len(self.subjects) != self.n or self.values.shape != (self.n, len(self.names)):
            raise ValueError("Cohort: n, subjects and values disagree in shape")

    def get(self, registry_name: str) -> np.ndarray:
        return self.values[:, self.names.index(registry_name)]
