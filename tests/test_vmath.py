"""vexp, the kernels' vectorisable exp: the C library's exp to within one unit in the
last place, clamped beyond +-700, NaN kept."""

from __future__ import annotations

import numba
import numpy as np

from ketasim.core.vmath import vexp


@numba.njit(cache=False)
def _vexp(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vexp(x[i])
    return out


def test_vexp_agrees_with_the_c_library_to_one_ulp():
    g = np.random.default_rng(3)
    x = np.concatenate([np.linspace(-700.0, 700.0, 400_001), g.uniform(-40, 40, 200_000),
                        g.normal(0, 1e-3, 1000),
                        [0.0, -0.0, 1e-300, -1e-300, 0.5 * np.log(2.0), 1.0, -1.0]])
    y, ref = _vexp(x), np.exp(x)
    assert y[-7] == 1.0 and y[-6] == 1.0
    ulps = np.abs(y - ref) / np.spacing(ref)
    assert ulps.max() <= 1.0
    assert (ulps == 0).mean() > 0.8  # mostly the very same number (about 89% here)


def test_vexp_clamps_beyond_700_and_keeps_nan():
    y = _vexp(np.array([-1e4, -745.2, 710.0, 1e4, np.inf, -np.inf, np.nan]))
    assert np.all(y[[0, 1, 5]] == y[0]) and abs(y[0] / np.exp(-700.0) - 1.0) < 1e-15
    assert np.all(y[[2, 3, 4]] == y[2]) and abs(y[2] / np.exp(700.0) - 1.0) < 1e-15
    assert np.isnan(y[6])
    # in the circuit's sigmoid the clamp changes nothing measurable
    assert 1.0 + np.exp(-700.0) == 1.0 and 40.0 / (1.0 + np.exp(700.0)) < 1e-300
