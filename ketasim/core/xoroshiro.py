"""A per-subject random stream usable inside numba kernels.

Each stream is xoroshiro128+ (Blackman & Vigna 2018) seeded from a ``SeedSequence`` of
the scheme in :mod:`ketasim.core.streams` (:func:`~ketasim.core.streams.xoroshiro_states`),
so the dynamics of a subject (or of one of its branches) never depend on how subjects
are split across threads or chunks.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit
def next_u64(state):
    """The next raw 64-bit output; advances ``state`` (a length-2 uint64 array) in place."""
    s0 = state[0]
    s1 = state[1]
    result = s0 + s1
    s1 ^= s0
    state[0] = _rotl(s0, 24) ^ s1 ^ (s1 << np.uint64(16))
    state[1] = _rotl(s1, 37)
    return result


@numba.njit
def next_double(state):
    """Uniform double in [0, 1) with 53 random bits."""
    return (next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(inline="always")
def high_uniform(r):
    """Uniform in [0, 1) from the upper 32 bits of a raw output ``r`` (resolution 2^-32,
    ample for Bernoulli trials with p >= 1e-7)."""
    return (r >> np.uint64(32)) * (1.0 / 4294967296.0)


@numba.njit(inline="always")
def triangular_normal(r):
    """Approximately standard normal from the lower 32 bits of ``r``: the sum of two
    16-bit uniforms (triangular), centred and scaled to unit variance (bounded at +-2.45).
    For per-step increments of a process summed over many steps, where only the mean and
    variance of an increment matter (central limit theorem)."""
    m = np.uint64(0xFFFF)
    total = ((r >> np.uint64(16)) & m) + (r & m)
    return ((total + 1.0) * (1.0 / 65536.0) - 1.0) * 2.449489742783178


@numba.njit
def next_normal(state):
    """Standard normal by Box-Muller (one of the pair; simple and exact in law)."""
    u1 = next_double(state)
    u2 = next_double(state)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


POISSON_SPLIT = 200.0  # largest mean drawn by one inversion (its walk stays far below 1000)


@numba.njit
def next_poisson(state, lam):
    """Poisson variate by inversion (means here are small, below ~20). A mean above
    ``POISSON_SPLIT`` is drawn as a sum of Poisson parts of at most that mean (exact by
    additivity): inversion from exp(-lam) underflows near 745 and stops at 1000."""
    if lam <= POISSON_SPLIT:
        return _poisson_inversion(state, lam)
    k = 0
    while lam > POISSON_SPLIT:
        k += _poisson_inversion(state, POISSON_SPLIT)
        lam -= POISSON_SPLIT
    return k + _poisson_inversion(state, lam)


@numba.njit
def _poisson_inversion(state, lam):
    u = next_double(state)
    # exp(-lam) > 1 - lam, so a uniform below 1 - lam (less a margin far above rounding)
    # is a 0 without evaluating the exponential: the same variate from the same draw,
    # about twice as fast for the small means of per-step spike and formation counts
    if u < 1.0 - lam - 1e-12:
        return 0
    k = 0
    p = np.exp(-lam)
    c = p
    while u > c and k < 1000:
        k += 1
        p *= lam / k
        c += p
    return k


@numba.njit
def next_normal_fast(state):
    """Approximately standard normal: the Irwin-Hall sum of four uniforms, scaled to unit
    variance (bounded at +-3.46). Used for per-step size fluctuations, where the exact
    tail does not matter and a Box-Muller pair per spine-step would dominate the cost."""
    return (next_double(state) + next_double(state) + next_double(state)
            + next_double(state) - 2.0) * 1.7320508075688772


# ---- exact standard normals by the ziggurat method -----------------------------------
# Marsaglia & Tsang (2000), J Stat Softw 5(8), with 256 layers and independent bits for
# the layer, the sign and the abscissa (Doornik 2005's fix, as in numpy's
# Generator.standard_normal; here the layer and sign come from the top bits). Exact in
# law; about 7 ns a variate against 33 ns for numba's np.random.standard_normal (polar
# method on the Mersenne twister) inside a kernel.
_ZIG_R = 3.6541528853610088  # right edge of the base layer for 256 layers
_ZIG_V = 0.00492867323399  # area of each layer


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m1 = 2.0**52
    dn = tn = _ZIG_R
    q = _ZIG_V / np.exp(-0.5 * dn * dn)
    ki = np.zeros(256, np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    ki[0] = np.uint64(int(dn / q * m1))
    ki[1] = np.uint64(0)
    wi[0] = q / m1
    wi[255] = dn / m1
    fi[0] = 1.0
    fi[255] = np.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = np.sqrt(-2.0 * np.log(_ZIG_V / dn + np.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64(int(dn / tn * m1))
        tn = dn
        fi[i] = np.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi


_ZIG_KI, _ZIG_WI, _ZIG_FI = _ziggurat_tables()


@numba.njit
def next_normal_zig(state):
    """Standard normal by the ziggurat (exact; about 1.01 raw outputs per variate)."""
    ki, wi, fi = _ZIG_KI, _ZIG_WI, _ZIG_FI
    while True:
        r = next_u64(state)
        # layer and sign from the top bits (xoroshiro128+'s lowest bits are its weakest)
        idx = r >> np.uint64(56)
        sign = (r >> np.uint64(55)) & np.uint64(1)
        rabs = (r >> np.uint64(3)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = rabs * wi[idx]
        if sign:
            x = -x
        if rabs < ki[idx]:
            return x  # inside the layer's rectangle: ~99% of draws
        if idx == 0:  # the base layer's tail beyond _ZIG_R (Marsaglia 1964)
            while True:
                xx = -np.log1p(-next_double(state)) / _ZIG_R
                yy = -np.log1p(-next_double(state))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if sign else _ZIG_R + xx
        elif (fi[idx - 1] - fi[idx]) * next_double(state) + fi[idx] < np.exp(-0.5 * x * x):
            return x


@numba.njit
def seed_state(seed, state):
    """Fill a length-2 uint64 xoroshiro128+ ``state`` from an integer seed by splitmix64
    (Steele et al. 2014; the seeding Blackman & Vigna recommend)."""
    z = np.uint64(seed)
    for j in range(2):
        z += np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state[j] = x ^ (x >> np.uint64(31))
    if state[0] == 0 and state[1] == 0:
        state[0] = np.uint64(1)


@numba.njit(inline="always")
def splitmix64(x):
    """The SplitMix64 output function (Steele, Lea & Flood 2014): a well-mixed 64-bit
    hash of the uint64 ``x`` (any integer is taken as its uint64 bits: numba would turn
    int64 + uint64 into a float)."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit
def hashed_normal(key, counter):
    """A standard normal that is a fixed function of (``key``, ``counter``) (uint64 key,
    integer counter): a counter-based draw (Box-Muller on two SplitMix64 hashes), for a
    property of an item (e.g. of a spine, by its id) that must not consume a stream, so
    adding it leaves every stream's other draws unchanged."""
    h1 = splitmix64(np.uint64(key) ^ splitmix64(np.uint64(counter)))
    h2 = splitmix64(h1)
    u1 = ((h1 >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)  # in (0, 1)
    u2 = (h2 >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
