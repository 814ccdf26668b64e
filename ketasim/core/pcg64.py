"""numpy's ``Generator(PCG64(SeedSequence(seed, spawn_key=key)))`` standard normals, for
many keyed streams at once, in compiled code: the same numbers, without building a
Generator per stream.

A clinical trial rates every patient at every visit from the visit's own stream
(:mod:`ketasim.core.streams`: keyed by the visit, so adding a visit changes no other
rating). Building numpy's seed sequence, bit generator and Generator for each costs some
8 us in Python, about as much as the rest of the rating; here a stream is seeded and
drawn in about 0.2 us (11 normals).

What is reproduced, from numpy's sources (``numpy/random/_pcg64.pyx``, ``src/pcg64``,
``src/distributions/distributions.c``):

- seeding: ``SeedSequence.generate_state(4, uint64)`` (:func:`ketasim.core.streams._seed_state`)
  gives the initial state (words 0, 1: high, low) and the stream selector (words 2, 3);
  PCG's ``srandom_r``: state 0, increment ``2 x selector + 1``, step, add the initial
  state, step;
- PCG64 (XSL-RR 128/64): step ``state = state x M + increment`` (mod 2**128), output the
  xor of the state's halves rotated right by its top 6 bits; 128-bit arithmetic as
  pairs of uint64;
- ``random_standard_normal``: the 256-layer ziggurat on 52-bit mantissas with numpy's
  tables (as numba ships them, ``numba.np.random._constants``), its tail and wedge
  rejections; ``next_double`` = (next uint64 >> 11) / 2**53;
- ``normal(loc, scale)`` = loc + scale x standard normal (:func:`keyed_normals`);
- ``random_standard_gamma`` for shape > 1 (Marsaglia and Tsang's squeeze and log
  tests on a normal and a uniform), which ``dirichlet`` normalises.

``tests/test_streams.py`` checks every draw against numpy bitwise (a million draws, so
the tail and wedge branches are exercised, and hypothesis over seeds and keys).
"""

from __future__ import annotations

import operator

import numba
import numpy as np

from ketasim.core.streams import _M32 as _M32_INT
from ketasim.core.streams import _seed_state, entropy_run, keyed_rng

try:  # numpy's ziggurat tables, as numba ships them for its own Generator support
    from numba.np.random._constants import (
        fi_double,
        ki_double,
        wi_double,
        ziggurat_nor_inv_r,
        ziggurat_nor_r,
    )

    #: False where numba does not ship the tables: the draws then come from numpy's own
    #: generators, one per stream (the same numbers, slower)
    COMPILED = True
except ImportError:  # pragma: no cover - depends on the installed numba
    COMPILED = False
    ki_double = wi_double = fi_double = np.zeros(256)
    ziggurat_nor_r = ziggurat_nor_inv_r = 1.0

_KI = np.asarray(ki_double, dtype=np.uint64)
_WI = np.asarray(wi_double, dtype=np.float64)
_FI = np.asarray(fi_double, dtype=np.float64)
_NOR_R = float(ziggurat_nor_r)
_NOR_INV_R = float(ziggurat_nor_inv_r)

_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG's default 128-bit multiplier
_MULT_HI = np.uint64(_MULT >> 64)
_MULT_LO = np.uint64(_MULT & 0xFFFFFFFFFFFFFFFF)
_U32 = np.uint64(_M32_INT)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


@numba.njit(cache=True, inline="always")
def _mul_64x64(a, b):
    """The 128-bit product of two uint64 as (high, low)."""
    a_lo = a & _U32
    a_hi = a >> _S32
    b_lo = b & _U32
    b_hi = b >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _U32) + (p2 & _U32)
    lo = (p0 & _U32) | (mid << _S32)
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)
    return hi, lo


@numba.njit(cache=True, inline="always")
def _step(st):
    """state = state x M + increment (mod 2**128); st = [state hi, lo, inc hi, lo]."""
    hi, lo = _mul_64x64(st[1], _MULT_LO)
    hi = hi + st[0] * _MULT_LO + st[1] * _MULT_HI
    new_lo = lo + st[3]
    carry = _ONE if new_lo < lo else _ZERO
    st[0] = hi + st[2] + carry
    st[1] = new_lo


@numba.njit(cache=True, inline="always")
def _next_uint64(st):
    _step(st)
    hi = st[0]
    x = hi ^ st[1]
    rot = hi >> np.uint64(58)
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@numba.njit(cache=True, inline="always")
def _next_double(st):
    return np.float64(_next_uint64(st) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def _seed(words, st):
    """PCG64 seeded as numpy seeds it from ``SeedSequence.generate_state(4, uint64)``."""
    init_hi, init_lo, seq_hi, seq_lo = words[0], words[1], words[2], words[3]
    st[0] = _ZERO
    st[1] = _ZERO
    st[2] = (seq_hi << _ONE) | (seq_lo >> np.uint64(63))
    st[3] = (seq_lo << _ONE) | _ONE
    _step(st)
    lo = st[1] + init_lo
    carry = _ONE if lo < st[1] else _ZERO
    st[0] = st[0] + init_hi + carry
    st[1] = lo
    _step(st)


@numba.njit(cache=True)
def standard_normal(st):
    """numpy's ``random_standard_normal`` (ziggurat) on the stream ``st``."""
    while True:
        r = _next_uint64(st)
        idx = np.int64(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        sign = r & _ONE
        rabs = (r >> _ONE) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(rabs) * _WI[idx]
        if sign == _ONE:
            x = -x
        if rabs < _KI[idx]:
            return x
        if idx == 0:
            while True:
                xx = -_NOR_INV_R * np.log1p(-_next_double(st))
                yy = -np.log1p(-_next_double(st))
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & _ONE:
                        return -(_NOR_R + xx)
                    return _NOR_R + xx
        else:
            if ((_FI[idx - 1] - _FI[idx]) * _next_double(st) + _FI[idx]
                    < np.exp(-0.5 * x * x)):
                return x


@numba.njit(cache=True)
def standard_gamma(st, shape):
    """numpy's ``random_standard_gamma`` for shape > 1 (Marsaglia and Tsang 2000)."""
    if not shape > 1.0:  # the squeeze needs shape > 1/3 (below it, it never returns)
        raise ValueError("standard_gamma needs shape > 1")
    b = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * b)
    while True:
        while True:
            x = standard_normal(st)
            v = 1.0 + c * x
            if v > 0.0:
                break
        v = v * v * v
        u = _next_double(st)
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return b * v
        if np.log(u) < 0.5 * x * x + b * (1.0 - v + np.log(v)):
            return b * v


@numba.njit(cache=True)
def _seeded(entropy):
    """(rows, 4) uint64: each row's PCG64 state as numpy seeds it (state high, low,
    increment high, low)."""
    m = entropy.shape[0]
    out = np.empty((m, 4), dtype=np.uint64)
    for i in range(m):
        _seed(_seed_state(entropy[i], 4), out[i])
    return out


def seeded_states(seed: int, spawn_keys: np.ndarray) -> np.ndarray:
    """(rows, 4) uint64 PCG64 states of ``Generator(PCG64(SeedSequence(seed,
    spawn_key=row)))`` before any draw, for compiled draws (``standard_normal``,
    ``standard_gamma``, ``_next_double`` advance a row in place)."""
    return _seeded(entropy_words(seed, spawn_keys))


def set_generator_state(gen: np.random.Generator, state: np.ndarray) -> np.random.Generator:
    """Put numpy's PCG64 generator ``gen`` at the compiled stream state ``state`` (4
    uint64: state high, low, increment high, low), so that it draws on where compiled
    draws left off (they never leave a buffered 32-bit half)."""
    hi, lo, inc_hi, inc_lo = (int(w) for w in state)
    gen.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": hi << 64 | lo, "inc": inc_hi << 64 | inc_lo},
                               "has_uint32": 0, "uinteger": 0}
    return gen


@numba.njit(cache=True)
def _normals(entropy, n, loc, scale, standard):
    """(rows, n): the first n standard normals of each row's stream (``standard``), or
    loc + scale x each; ``entropy`` (rows, words) holds each stream's SeedSequence
    entropy words."""
    m = entropy.shape[0]
    out = np.empty((m, n))
    st = np.empty(4, dtype=np.uint64)
    for i in range(m):
        _seed(_seed_state(entropy[i], 4), st)
        for j in range(n):
            z = standard_normal(st)
            out[i, j] = z if standard else loc + scale * z
    return out


def entropy_words(seed: int, spawn_keys: np.ndarray) -> np.ndarray:
    """(rows, words) int64: the entropy words numpy's ``SeedSequence(seed,
    spawn_key=row)`` hashes, for rows of spawn keys that are each one 32-bit word (the
    seed's words, zero-padded to the pool size, then the keys)."""
    keys = np.asarray(spawn_keys)
    if keys.size and keys.dtype.kind not in "iu":
        raise TypeError(f"spawn keys must be integers, got an array of {keys.dtype}")
    keys = keys.astype(np.int64, copy=False)
    if keys.ndim != 2 or keys.shape[1] == 0:
        raise ValueError("spawn_keys must be a (rows, keys) array with at least one key")
    if keys.size and (keys.min() < 0 or keys.max() > _M32_INT):
        raise ValueError("spawn keys must be 32-bit words (0 .. 2**32 - 1)")
    run = entropy_run(seed, keyed=True)
    words = np.empty((keys.shape[0], len(run) + keys.shape[1]), dtype=np.int64)
    words[:, :len(run)] = np.array(run, dtype=np.int64)
    words[:, len(run):] = keys
    return words


def keyed_normals(seed: int, spawn_keys: np.ndarray, n: int, loc: float | None = None,
                  scale: float = 1.0) -> np.ndarray:
    """(len(spawn_keys), n): row r holds
    ``Generator(PCG64(SeedSequence(seed, spawn_key=spawn_keys[r]))).standard_normal(n)``,
    or with ``loc`` its ``normal(loc, scale, n)``: the same numbers, for spawn keys of
    32-bit words."""
    n = operator.index(n)  # an integer (a float count is refused, as numpy does)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    words = entropy_words(seed, spawn_keys)  # checks the keys
    # standard normals unless a location or a scale is given (numpy's loc defaults to 0)
    standard = loc is None and scale == 1.0
    loc = 0.0 if loc is None else float(loc)
    if not COMPILED:
        keys = np.asarray(spawn_keys, dtype=np.int64)
        out = np.empty((keys.shape[0], n))
        for r, key in enumerate(keys):
            g = keyed_rng(seed, tuple(int(k) for k in key))
            out[r] = g.standard_normal(n) if standard else g.normal(loc, scale, n)
        return out
    return _normals(words, n, loc, float(scale), standard)


_U32_MAX = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True)
def _first_integers(states, pool):
    """(rows,) int64: each row's first ``Generator.integers(pool)`` (0 <= x < pool, pool
    at most 2**32), as numpy draws it: Lemire's multiply-and-reject on 32-bit halves of
    the 64-bit outputs (low half first; ``buffered_bounded_lemire_uint32``)."""
    m = states.shape[0]
    out = np.zeros(m, dtype=np.int64)
    if pool <= 1:
        return out  # numpy draws nothing for a range of one value
    rng_excl = np.uint64(pool)
    rng = rng_excl - _ONE
    threshold = (_U32_MAX - rng) % rng_excl
    st = np.empty(4, dtype=np.uint64)
    for i in range(m):
        st[:] = states[i]
        word = _next_uint64(st)
        if rng == _U32_MAX:
            out[i] = np.int64(word & _U32)
            continue
        mm = (word & _U32) * rng_excl
        half = _ONE  # the low half is used: the high half of ``word`` comes next
        leftover = mm & _U32
        if leftover < rng_excl:
            while leftover < threshold:
                if half == _ONE:
                    x = word >> _S32
                    half = _ZERO
                else:
                    word = _next_uint64(st)
                    x = word & _U32
                    half = _ONE
                mm = x * rng_excl
                leftover = mm & _U32
        out[i] = np.int64(mm >> _S32)
    return out


def first_integers(states: np.ndarray, pool: int) -> np.ndarray:
    """(rows,) int64: ``Generator.integers(pool)`` as the first draw of each stream in
    ``states`` (:func:`seeded_states`), the number numpy gives; ``pool`` from 1 to 2**32."""
    pool = int(pool)
    if not 1 <= pool <= 2**32:
        raise ValueError(f"pool must be between 1 and 2**32, got {pool}")
    states = np.ascontiguousarray(states, dtype=np.uint64)
    if states.ndim != 2 or states.shape[1] != 4:
        raise ValueError("states must be a (rows, 4) array of stream states "
                         f"(seeded_states), got shape {states.shape}")
    return _first_integers(states, pool)
