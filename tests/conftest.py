"""Test-wide settings: caches go to a temporary home; float warnings are errors."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

_TMP_HOME = tempfile.mkdtemp(prefix="ketasim-test-home-")
for var in ("HOME", "MPLCONFIGDIR"):
    os.environ[var] = os.path.join(_TMP_HOME, var.lower())
    os.makedirs(os.environ[var], exist_ok=True)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng() -> np.random.Generator:
    """An explicit generator per test (no global random state)."""
    return np.random.default_rng(20261122)
