"""Test-wide settings: caches go to a temporary home; numba's kernel cache is set up
(``ketasim.configure``, since importing ketasim does nothing); numpy's float warnings are
errors (``filterwarnings`` in pyproject.toml's pytest options, and ``PYTHONWARNINGS`` for
child processes)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

import ketasim

_TMP_HOME = tempfile.mkdtemp(prefix="ketasim-test-home-")
for var in ("HOME", "MPLCONFIGDIR"):
    os.environ[var] = os.path.join(_TMP_HOME, var.lower())
    os.makedirs(os.environ[var], exist_ok=True)
os.environ.setdefault("MPLBACKEND", "Agg")
# the same float warnings are errors in child processes (validate's workers, the CLI)
_FLOAT_ERRORS = [f"error:{m}:RuntimeWarning" for m in (
    "invalid value encountered", "divide by zero encountered", "overflow encountered")]
os.environ["PYTHONWARNINGS"] = ",".join(
    [w for w in [os.environ.get("PYTHONWARNINGS", "")] if w] + _FLOAT_ERRORS)
ketasim.configure()  # before any test imports the jitted modules


@pytest.fixture
def rng() -> np.random.Generator:
    """An explicit generator per test (no global random state)."""
    return np.random.default_rng(20261122)


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """HOME, MPLCONFIGDIR and TMPDIR (and :mod:`tempfile`'s folder) in folders of the
    test's own ``tmp_path``: pynwb, hdmf, dask, matplotlib and chromium write caches
    there. A module uses it with ``pytestmark = pytest.mark.usefixtures("private_home")``."""
    for var in ("HOME", "MPLCONFIGDIR", "TMPDIR"):
        d = tmp_path / f"_{var.lower()}"
        d.mkdir(exist_ok=True)
        monkeypatch.setenv(var, str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "_tmpdir"))
    return tmp_path

