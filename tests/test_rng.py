"""The in-kernel random streams: ziggurat normals are exact in law, Poisson by inversion."""

import numba
import numpy as np
from scipy import stats

from ketasim.core.xoroshiro import next_double, next_normal_zig, next_poisson, seed_state


@numba.njit(cache=False)
def _normals(n, seed):
    st = np.zeros(2, np.uint64)
    seed_state(seed, st)
    out = np.empty(n)
    for i in range(n):
        out[i] = next_normal_zig(st)
    return out


@numba.njit(cache=False)
def _poissons(n, lam, seed):
    st = np.zeros(2, np.uint64)
    seed_state(seed, st)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = next_poisson(st, lam)
    return out


def test_ziggurat_normal_matches_the_normal_law_in_body_and_tails():
    x = _normals(2_000_000, 11)
    assert abs(x.mean()) < 4 / np.sqrt(len(x))
    assert abs(x.var() - 1) < 4 * np.sqrt(2 / len(x))
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # the base layer's tail (beyond 3.654) and a far tail, both signs, against binomial sd
    for edge in (3.6541528853610088, 4.5):
        p = stats.norm.sf(edge)
        for count in ((x > edge).sum(), (x < -edge).sum()):
            assert abs(count - p * len(x)) < 5 * np.sqrt(p * len(x)) + 1
    # deciles: each holds a tenth
    cuts = stats.norm.ppf(np.linspace(0.1, 0.9, 9))
    counts = np.bincount(np.searchsorted(cuts, x), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_streams_are_reproducible_and_distinct_per_seed():
    assert np.array_equal(_normals(100, 3), _normals(100, 3))
    a, b = _normals(1000, 3), _normals(1000, 4)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.15


def test_consecutive_normals_are_uncorrelated():
    x = _normals(1_000_000, 5)
    for lag in (1, 2, 3):
        assert abs(np.corrcoef(x[:-lag], x[lag:])[0, 1]) < 5e-3


def test_poisson_inversion_has_poisson_law():
    for lam in (0.05, 0.7, 4.0):
        k = _poissons(400_000, lam, 9)
        assert abs(k.mean() - lam) < 5 * np.sqrt(lam / len(k))
        assert abs(k.var() / lam - 1) < 0.02
        top = int(lam + 6 * np.sqrt(lam) + 3)
        obs = np.bincount(np.minimum(k, top), minlength=top + 1)
        exp = stats.poisson.pmf(np.arange(top + 1), lam) * len(k)
        exp[-1] = stats.poisson.sf(top - 1, lam) * len(k)
        keep = exp > 5
        assert stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()
                               ).pvalue > 1e-3


@numba.njit(cache=False)
def _poissons_by_plain_inversion(n, lam, seed):
    """The inversion without next_poisson's shortcut for zeros: exp(-lam) every time."""
    st = np.zeros(2, np.uint64)
    seed_state(seed, st)
    out = np.empty(n, np.int64)
    for i in range(n):
        u = next_double(st)
        k = 0
        p = np.exp(-lam)
        c = p
        while u > c and k < 1000:
            k += 1
            p *= lam / k
            c += p
        out[i] = k
    return out


def test_poisson_shortcut_for_zeros_gives_the_same_variates():
    """The shortcut (a uniform below 1 - lam is a 0) changes no draw, down to means at
    rounding level and up to means where it never applies."""
    for lam in (0.0, 1e-17, 1e-12, 1e-9, 1e-4, 0.013, 0.3, 0.999, 1.0, 2.5, 15.0):
        assert np.array_equal(_poissons(200_000, lam, 17),
                              _poissons_by_plain_inversion(200_000, lam, 17)), lam


def test_next_poisson_is_exact_for_large_means():
    """Inversion from exp(-lam) underflowed near lam 745 and stopped at 1000, so every
    draw of a mean above it returned 1000; large means are now sums of parts. The sample
    mean and variance of 4,000 draws sit within 4 standard errors of lam, and a mean at
    the split is drawn as before (one inversion, the same variates)."""
    from ketasim.core.xoroshiro import POISSON_SPLIT, _poisson_inversion

    @numba.njit
    def draw(seed, lam, n, split):
        st = np.zeros(2, np.uint64)
        seed_state(seed, st)
        out = np.empty(n)
        for i in range(n):
            out[i] = _poisson_inversion(st, lam) if split else next_poisson(st, lam)
        return out

    n = 4000
    for lam in (3.0, 150.0, 744.0, 1000.0, 5000.0):
        x = draw(7, lam, n, False)
        assert abs(x.mean() - lam) < 4 * np.sqrt(lam / n), (lam, x.mean())
        # the variance of a Poisson sample: SE about lam sqrt(2 / n) for large lam
        assert abs(x.var(ddof=1) - lam) < 4 * lam * np.sqrt(2 / n) + 4 * np.sqrt(lam / n)
    np.testing.assert_array_equal(draw(3, POISSON_SPLIT, 100, False),
                                  draw(3, POISSON_SPLIT, 100, True))
