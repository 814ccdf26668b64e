"""vmath.exp: the C library's exp to within one unit in the last place, in arithmetic
that a kernel's loop can vectorise."""

from __future__ import annotations

import numba
import numpy as np

from ketasim.core import vmath


@numba.njit(cache=False)
def _exp(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vmath.exp(x[i])
    return out


def test_exp_agrees_with_the_c_library_to_one_ulp():
    g = np.random.default_rng(3)
    x = np.concatenate([np.linspace(-700.0, 700.0, 400_001), g.uniform(-50, 50, 200_000),
                        g.normal(0, 1e-3, 1000), [0.0, -0.0, 1e-300, -1e-300, 0.5, 1.0]])
    y, ref = _exp(x), np.exp(x)
    ulps = np.abs(y - ref) / np.spacing(ref)
    assert ulps.max() <= 1.0
    assert (ulps == 0).mean() > 0.8  # mostly the very same number (about 89% here)


def test_exp_clamps_beyond_700_and_keeps_nan():
    y = _exp(np.array([-1e4, -745.2, 710.0, 1e4, np.inf, -np.inf, np.nan]))
    assert np.all(y[[0, 1, 5]] == np.exp(-700.0))
    assert np.all(y[[2, 3, 4]] == np.exp(700.0))
    assert np.isnan(y[6])
    # in the circuit's sigmoid the clamp changes nothing measurable
    assert 1.0 + np.exp(-700.0) == 1.0 and 40.0 / (1.0 + np.exp(700.0)) < 1e-300
