"""Review of the compiled random-number and stream code in ``ketasim.core``.

Reviewed: ``pcg64.py`` (numba PCG64 said to give numpy's ``SeedSequence`` / ``PCG64`` /
``Generator`` numbers bit for bit), ``streams.py`` (keyed seeding: ``KeyedSeedSequence``,
``subject_keys``, ``xoroshiro_states``, ``name_key``), ``xoroshiro.py`` (xoroshiro128+,
splitmix64, the in-kernel normals, uniforms and Poisson draws), ``vmath.py`` (``vexp``) and
``cohort.py`` (``Cohort``).

Checked against independent references computed here: numpy's own
``SeedSequence`` / ``PCG64`` (``random_raw``, ``state``) / ``Generator`` methods, Python
big-integer implementations of the 128-bit PCG step, xoroshiro128+ and SplitMix64 (from
the published C reference code), ``math.exp`` for ``vexp``, and scipy.stats goodness of fit
(fixed seeds, p > 1e-4) for the laws of the draws. Edge cases: key and seed 0, 2**32 - 1,
2**63, 2**64 - 1, seeds of more than four 32-bit words, zero-length requests,
out-of-range and non-integer inputs, uint64 wrap-around in the 128-bit arithmetic.

The defects the review found (once marked ``xfail(strict=True, reason="BUG: ...")``) are
fixed; their tests, marked ``# fixed (was BUG): ...``, now hold.
"""

from __future__ import annotations

import math
import pickle
import zlib

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from ketasim.core import pcg64
from ketasim.core import xoroshiro as xo
from ketasim.core.cohort import Cohort
from ketasim.core.streams import (
    PURPOSE_MEASUREMENT,
    PURPOSE_SPINES,
    KeyedSeedSequence,
    arm_key,
    assay_rng,
    keyed_rng,
    name_key,
    subject_keys,
    subject_seed,
    xoroshiro_states,
)
from ketasim.core.vmath import vexp

M64 = 2**64 - 1
M128 = 2**128 - 1
PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_BIG = [0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]


# ------------------------------------------------------------------ references

def _numpy_gen(seed, key):
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))))


def _pcg_state(hi_lo_inc):
    """The 4-uint64 compiled state as (state, inc) Python ints."""
    w = [int(x) for x in hi_lo_inc]
    return w[0] << 64 | w[1], w[2] << 64 | w[3]


def _as_words(state, inc):
    return np.array([state >> 64, state & M64, inc >> 64, inc & M64], dtype=np.uint64)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def _xoroshiro_ref(s0, s1, n):
    """xoroshiro128+ (Blackman & Vigna 2018, a=24, b=16, c=37), Python ints."""
    out = []
    for _ in range(n):
        out.append((s0 + s1) & M64)
        s1 ^= s0
        s0, s1 = _rotl(s0, 24) ^ s1 ^ ((s1 << 16) & M64), _rotl(s1, 37)
    return out


def _splitmix_out(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _splitmix64_ref(x):
    return _splitmix_out((x + 0x9E3779B97F4A7C15) & M64)


# one compiled driver for the in-kernel draws (a single numba compilation)
@numba.njit(cache=False)
def _xo_draws(kind, s0, s1, n, lam):
    st = np.empty(2, np.uint64)
    st[0] = s0
    st[1] = s1
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = xo.next_double(st)
        elif kind == 1:
            out[i] = xo.next_normal(st)
        elif kind == 2:
            out[i] = xo.next_normal_fast(st)
        elif kind == 3:
            out[i] = xo.next_normal_zig(st)
        elif kind == 4:
            out[i] = xo.next_poisson(st, lam)
        elif kind == 5:
            out[i] = xo.triangular_normal(xo.next_u64(st))
        elif kind == 6:
            out[i] = xo.high_uniform(xo.next_u64(st))
        else:
            out[i] = xo.hashed_normal(s0, np.uint64(i))
    return out


@numba.njit(cache=False)
def _xo_raw(s0, s1, n):
    st = np.empty(2, np.uint64)
    st[0] = s0
    st[1] = s1
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = xo.next_u64(st)
    return out


@numba.njit(cache=False)
def _vexp_all(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vexp(x[i])
    return out


def _pair(seed):
    st_ = np.zeros(2, np.uint64)
    xo.seed_state(np.uint64(seed), st_)
    return st_[0], st_[1]


# ========================================================================= PCG64

@settings(max_examples=50, deadline=None)
@given(a=st.integers(0, M64), b=st.integers(0, M64))
@example(a=M64, b=M64)
@example(a=M64, b=0)
@example(a=2**32, b=2**32 - 1)
def test_mul_64x64_is_the_full_128_bit_product(a, b):
    hi, lo = pcg64._mul_64x64(np.uint64(a), np.uint64(b))
    assert (int(hi) << 64 | int(lo)) == a * b


@settings(max_examples=40, deadline=None)
@given(state=st.integers(0, M128), inc=st.integers(0, M128))
@example(state=M128, inc=M128)
@example(state=0, inc=1)
@example(state=2**64 - 1, inc=2**64 + 1)  # carry from the low word into the high one
def test_step_and_output_are_numpys_pcg64_for_any_128_bit_state(state, inc):
    """The compiled 128-bit step (as uint64 pairs, wrap-around everywhere) and XSL-RR
    output give numpy's raw outputs from the same state, and the step is
    state x M + inc mod 2**128 (Python big integers)."""
    words = _as_words(state, inc)
    gen = pcg64.set_generator_state(np.random.Generator(np.random.PCG64(0)), words)
    ref = gen.bit_generator.random_raw(4)
    st_ = words.copy()
    got = [pcg64._next_uint64(st_) for _ in range(4)]
    np.testing.assert_array_equal(np.array(got, dtype=np.uint64), ref)
    one = words.copy()
    pcg64._step(one)
    assert _pcg_state(one) == ((state * PCG_MULT + (inc & M128)) & M128, inc)


_SEED = st.one_of(st.sampled_from(_BIG + [2**128, 2**200 + 5]), st.integers(0, 2**70))
_KEYROWS = st.integers(1, 5).flatmap(lambda w: st.lists(
    st.lists(st.one_of(st.sampled_from([0, 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)),
             min_size=w, max_size=w), min_size=1, max_size=4))


@settings(max_examples=40, deadline=None)
@given(seed=_SEED, keys=_KEYROWS)
@example(seed=0, keys=[[0]])
@example(seed=2**64 - 1, keys=[[2**32 - 1, 0, 0, 0]])
@example(seed=2**200 + 5, keys=[[7, 8]])  # seed words beyond the pool: no zero padding
def test_seeded_states_and_raw_draws_are_numpys(seed, keys):
    """seeded_states gives numpy's PCG64 (state, inc) for SeedSequence(seed, spawn_key),
    and the compiled raw outputs and doubles continue numpy's."""
    states = pcg64.seeded_states(seed, np.array(keys))
    assert states.shape == (len(keys), 4) and states.dtype == np.uint64
    for row, key in zip(states, keys, strict=True):
        gen = _numpy_gen(seed, key)
        s = gen.bit_generator.state["state"]
        assert _pcg_state(row) == (s["state"], s["inc"])
        st_ = row.copy()
        raw = [pcg64._next_uint64(st_) for _ in range(3)]
        np.testing.assert_array_equal(np.array(raw, dtype=np.uint64),
                                      gen.bit_generator.random_raw(3))
        dbl = [pcg64._next_double(st_) for _ in range(3)]
        np.testing.assert_array_equal(dbl, gen.random(3))
        # numpy's generator placed at the compiled state draws on from there
        again = pcg64.set_generator_state(_numpy_gen(1, (2,)), st_)
        np.testing.assert_array_equal(again.standard_normal(4), gen.standard_normal(4))


@settings(max_examples=30, deadline=None)
@given(seed=_SEED, keys=_KEYROWS, n=st.integers(0, 25),
       loc=st.floats(-1e3, 1e3), scale=st.floats(0.0, 1e3))
@example(seed=0, keys=[[0]], n=0, loc=0.0, scale=0.0)
def test_keyed_normals_bitwise_equal_numpy(seed, keys, n, loc, scale):
    z = pcg64.keyed_normals(seed, np.array(keys), n)
    w = pcg64.keyed_normals(seed, np.array(keys), n, loc=loc, scale=scale)
    assert z.shape == w.shape == (len(keys), n)
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(z[i], _numpy_gen(seed, key).standard_normal(n))
        np.testing.assert_array_equal(w[i], _numpy_gen(seed, key).normal(loc, scale, n))


def test_keyed_normals_do_not_depend_on_chunking_or_count():
    """A row's numbers are those of its own key: the same in any chunk, any row order,
    and the first k of n draws are the k draws (a prefix)."""
    keys = subject_keys("arm a", np.arange(40), 0)
    full = pcg64.keyed_normals(77, keys, 9)
    for lo, hi in ((0, 1), (5, 8), (39, 40), (0, 40)):
        np.testing.assert_array_equal(pcg64.keyed_normals(77, keys[lo:hi], 9), full[lo:hi])
    perm = np.random.default_rng(0).permutation(40)
    np.testing.assert_array_equal(pcg64.keyed_normals(77, keys[perm], 9), full[perm])
    np.testing.assert_array_equal(pcg64.keyed_normals(77, keys, 4), full[:, :4])
    assert pcg64.keyed_normals(77, keys[:0], 9).shape == (0, 9)
    assert pcg64.keyed_normals(77, keys, 0).shape == (40, 0)


def test_keyed_streams_are_independent_standard_normals():
    """Across 4000 subjects (adjacent keys), the first draws are N(0, 1) and uncorrelated
    between neighbouring subjects, between purposes and between arms."""
    subj = np.arange(4000)
    a = pcg64.keyed_normals(2024, subject_keys("arm a", subj, 0), 2)
    b = pcg64.keyed_normals(2024, subject_keys("arm a", subj, 1), 1)[:, 0]
    c = pcg64.keyed_normals(2024, subject_keys("arm b", subj, 0), 1)[:, 0]
    assert stats.kstest(a.ravel(), "norm").pvalue > 1e-4
    bound = 5 / np.sqrt(len(subj))
    for x, y in ((a[:-1, 0], a[1:, 0]), (a[:, 0], a[:, 1]), (a[:, 0], b), (a[:, 0], c)):
        assert abs(np.corrcoef(x, y)[0, 1]) < bound


@pytest.mark.parametrize("shape", [1.0000001, 3.3, 1e6])
def test_standard_gamma_equals_numpy_for_shapes_above_one(shape):
    states = pcg64.seeded_states(9, np.array([[4, 0, 2**32 - 1]]))
    st_ = states[0].copy()
    got = [pcg64.standard_gamma(st_, shape) for _ in range(400)]
    np.testing.assert_array_equal(got, _numpy_gen(9, (4, 0, 2**32 - 1)).standard_gamma(shape, 400))


@pytest.mark.parametrize("pool", [1, 2, 3, 10, 2**31 + 1, 3 * 2**30, 2**32 - 1, 2**32])
def test_first_integers_equal_numpy_and_leave_states_alone(pool):
    keys = (np.arange(300 * 2, dtype=np.int64).reshape(300, 2) * 104729) % 2**32
    states = pcg64.seeded_states(2**64 - 1, keys)
    before = states.copy()
    got = pcg64.first_integers(states, pool)
    np.testing.assert_array_equal(states, before)
    want = [_numpy_gen(2**64 - 1, k).integers(pool) for k in keys]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64 and got.min() >= 0 and got.max() < pool


def test_first_integers_refuse_pools_out_of_range():
    states = pcg64.seeded_states(1, np.array([[1]]))
    for pool in (0, -1, 2**32 + 1, 2**64):
        with pytest.raises(ValueError, match="pool"):
            pcg64.first_integers(states, pool)
    assert pcg64.first_integers(states[:0], 5).shape == (0,)


def test_keyed_normals_refuse_out_of_range_keys_and_seeds():
    """Keys must be 32-bit words: larger or negative ones are refused, never wrapped."""
    for keys in ([[2**32]], [[-1]], np.array([[2**63]], dtype=np.uint64),
                 np.array([[2**64 - 1]], dtype=np.uint64)):
        with pytest.raises(ValueError, match="32-bit"):
            pcg64.keyed_normals(1, keys, 3)
    with pytest.raises((ValueError, OverflowError)):
        pcg64.keyed_normals(1, [[2**63]], 3)
    with pytest.raises(ValueError, match="non-negative"):
        pcg64.keyed_normals(-1, [[1]], 3)
    with pytest.raises(ValueError, match=r"\(rows, keys\)"):
        pcg64.keyed_normals(1, np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="n must be"):
        pcg64.keyed_normals(1, [[1]], -2)
    with pytest.raises(ValueError, match="at least one key"):
        pcg64.seeded_states(1, np.zeros((1, 0), np.int64))


# fixed (was BUG): keyed_normals ignores scale when loc is not given
def test_keyed_normals_apply_scale_without_loc():
    """numpy's normal(loc=0.0, scale); a scale passed alone must not be dropped."""
    keys = np.array([[3, 1, 4]])
    got = pcg64.keyed_normals(5, keys, 6, scale=2.5)
    np.testing.assert_array_equal(got[0], _numpy_gen(5, (3, 1, 4)).normal(0.0, 2.5, 6))


# fixed (was BUG): keyed_normals accepts a negative scale numpy refuses
def test_keyed_normals_refuse_a_negative_scale():
    """numpy's Generator.normal raises for scale < 0 (so does keyed_normals' own
    uncompiled fallback); the compiled path returns loc - |scale| z silently."""
    with pytest.raises(ValueError, match="scale"):
        pcg64.keyed_normals(5, np.array([[3, 1, 4]]), 6, loc=0.0, scale=-2.0)


# fixed (was BUG): keyed_normals truncates non-integer seeds/keys
def test_keyed_normals_refuse_non_integer_seed_and_keys():
    """numpy's SeedSequence raises TypeError for a float seed or key; keyed_normals
    truncates (seed 7.9 draws seed 7's numbers, key 1.7 key 1's)."""
    with pytest.raises(TypeError):
        pcg64.keyed_normals(7.9, np.array([[1, 2, 3]]), 2)
    with pytest.raises((TypeError, ValueError)):
        pcg64.keyed_normals(7, np.array([[1.7, 2.0, 3.0]]), 2)


# fixed (was BUG): first_integers takes a 1-D state as 4 bogus rows
def test_first_integers_refuse_a_single_state_row():
    """A (4,) state (one stream) is not a (rows, 4) array: it must be refused, not read
    as four streams each filled with one word."""
    states = pcg64.seeded_states(7, np.array([[1, 2, 3]]))
    with pytest.raises(ValueError):
        pcg64.first_integers(states[0], 10)


# ========================================================================= streams

@settings(max_examples=40, deadline=None)
@given(entropy=st.one_of(st.sampled_from(_BIG + [2**128, 2**200]), st.integers(0, 2**80)),
       key=st.lists(st.one_of(st.sampled_from(_BIG), st.integers(0, 2**80)), max_size=6),
       n=st.sampled_from([0, 1, 2, 4, 9]))
@example(entropy=0, key=[0], n=4)
@example(entropy=2**64 - 1, key=[2**63, 2**64 - 1], n=4)
def test_keyed_seed_sequence_is_numpys(entropy, key, n):
    ours = KeyedSeedSequence(entropy, tuple(key))
    real = np.random.SeedSequence(entropy, spawn_key=tuple(key))
    a = ours.generate_state(n, np.uint64)
    b = real.generate_state(n, np.uint64)
    assert a.dtype == b.dtype == np.uint64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours.generate_state(n, np.uint32), real.generate_state(n))
    np.testing.assert_array_equal(ours.pool, real.pool)
    assert ours.spawn_key == real.spawn_key and ours.entropy == real.entropy


def test_keyed_seed_sequence_refuses_negative_inputs_like_numpy():
    for entropy, key in ((-1, (1,)), (1, (-1,)), (1, (2, -2**63)), (-(2**64), ())):
        with pytest.raises(ValueError):
            KeyedSeedSequence(entropy, key).generate_state(2, np.uint64)
        with pytest.raises(ValueError):
            np.random.SeedSequence(entropy, spawn_key=key)
    with pytest.raises(ValueError):
        KeyedSeedSequence(1, (2,)).generate_state(-1, np.uint64)
    with pytest.raises(ValueError):
        KeyedSeedSequence(1, (2,)).generate_state(2, np.int64)


def test_keyed_rng_spawn_pickle_and_generator_draws():
    key = (0, 2**64 - 1, 2**63, 5)
    ours, ref = keyed_rng(2**63, key), _numpy_gen(2**63, key)
    np.testing.assert_array_equal(ours.random(7), ref.random(7))
    np.testing.assert_array_equal(ours.integers(-5, 5, 9), ref.integers(-5, 5, 9))
    kid_ours, = ours.spawn(1)
    kid_ref, = ref.spawn(1)
    np.testing.assert_array_equal(kid_ours.standard_normal(5), kid_ref.standard_normal(5))
    back = pickle.loads(pickle.dumps(KeyedSeedSequence(3, (1, 2))))
    np.testing.assert_array_equal(back.generate_state(4, np.uint64),
                                  np.random.SeedSequence(3, spawn_key=(1, 2)).generate_state(
                                      4, np.uint64))


# fixed (was BUG): KeyedSeedSequence truncates float seeds and keys
def test_keyed_seed_sequence_refuses_non_integer_entropy_and_keys():
    """numpy's SeedSequence(1.5) and spawn_key=(1.5,) raise TypeError; KeyedSeedSequence
    int()s them, so seed 1.5 silently draws seed 1's stream."""
    with pytest.raises(TypeError):
        KeyedSeedSequence(1.5, (0,))
    with pytest.raises(TypeError):
        KeyedSeedSequence(1, (0.5,))


def test_scheme_keys_and_xoroshiro_states_are_the_seed_sequences_of_the_scheme():
    assert name_key("madrs") == zlib.crc32(b"madrs") == arm_key("madrs")
    keys = subject_keys("ketamine", [0, 5, 2**32 - 1], PURPOSE_SPINES, 9, 0)
    assert keys.dtype == np.int64 and keys.shape == (3, 5)
    assert keys.tolist() == [[arm_key("ketamine"), s, PURPOSE_SPINES, 9, 0]
                             for s in (0, 5, 2**32 - 1)]
    assert subject_keys("x", [], 0).shape == (0, 3)
    for seed in (0, 2**64 - 1):
        xs = xoroshiro_states(seed, "ketamine", 6, PURPOSE_SPINES, n_keys=3)
        assert xs.shape == (6, 3, 2) and xs.dtype == np.uint64
        for s in range(6):
            for k in range(3):
                ref = np.random.SeedSequence(
                    seed, spawn_key=(arm_key("ketamine"), s, PURPOSE_SPINES, k)
                ).generate_state(2, np.uint64)
                np.testing.assert_array_equal(xs[s, k], ref)
        # chunks and sub-key counts change nothing: a subject's streams are its own
        np.testing.assert_array_equal(
            xoroshiro_states(seed, "ketamine", [4, 2], PURPOSE_SPINES, n_keys=5)[:, :3],
            xs[[4, 2]])
        one = xoroshiro_states(seed, "ketamine", np.int64(3), PURPOSE_SPINES)
        assert one.shape == (3, 2)
        np.testing.assert_array_equal(one, xoroshiro_states(seed, "ketamine", 6, PURPOSE_SPINES)[:3])
    assert xoroshiro_states(1, "a", 0, 0).shape == (0, 2)
    # assay_rng is the subject's measurement stream keyed by the assay name's CRC32
    np.testing.assert_array_equal(
        assay_rng(8, "arm", 3, "open_field_0").random(4),
        _numpy_gen(8, (arm_key("arm"), 3, PURPOSE_MEASUREMENT, name_key("open_field_0"))).random(4))
    np.testing.assert_array_equal(subject_seed(8, "arm", 2**40, 0).generate_state(4, np.uint64),
                                  np.random.SeedSequence(8, spawn_key=(arm_key("arm"), 2**40, 0))
                                  .generate_state(4, np.uint64))


def test_colliding_names_are_refused_where_they_would_share_a_stream():
    """Names are keyed by their CRC32 (the stream scheme: changing it would redraw every
    number), and 'plumless' and 'buckeroo' share one (0x4ddb0c25), so two such names
    draw the same numbers (checked here). Where that would make two streams one, it is
    refused: two arms at scenario load (tests of the scenario model), two sessions or
    parts of one assay (here: one clear error), and no two built-in assay names
    collide. (The review found the collision; the guards are the fix.)"""
    from ketasim.core.assay import AssayContext
    from ketasim.params import load_registry
    from ketasim.scenario.vocabulary import ASSAYS

    assert name_key("plumless") == name_key("buckeroo")
    a = assay_rng(1, "arm", 0, "plumless").standard_normal(8)
    b = assay_rng(1, "arm", 0, "buckeroo").standard_normal(8)
    assert np.array_equal(a, b)  # the scheme's limit, which the guards keep out of runs
    ctx = AssayContext(3, "arm", "tail_suspension", np.arange(4), "mouse", {},
                       lambda o, t: np.zeros((4, len(t))), load_registry())
    assert ctx.stream_keys(["plumless", "plumless", "x"]).shape == (4, 3, 4)
    with pytest.raises(ValueError, match="share a random-stream key"):
        ctx.stream_keys(["plumless", "buckeroo"])
    with pytest.raises(ValueError, match="share a random-stream key"):
        ctx.normals(["plumless", "buckeroo"], 3)
    seen: dict[int, str] = {}
    for name in ASSAYS:
        assert name_key(name) not in seen, (name, seen.get(name_key(name)))
        seen[name_key(name)] = name


# ========================================================================= xoroshiro

@pytest.mark.parametrize("s0,s1", [(1, 0), (0, 1), (M64, M64), (2**63, 2**63 - 1),
                                   (0x0123456789ABCDEF, 0xFEDCBA9876543210)])
def test_next_u64_is_xoroshiro128plus(s0, s1):
    got = _xo_raw(np.uint64(s0), np.uint64(s1), 50)
    np.testing.assert_array_equal(got, np.array(_xoroshiro_ref(s0, s1, 50), dtype=np.uint64))


@pytest.mark.parametrize("seed", [0, 1, 2**62, 2**63, 2**64 - 1])
def test_seed_state_is_splitmix64_and_splitmix64_is_the_reference(seed):
    s0, s1 = _pair(seed)
    z1 = (seed + 0x9E3779B97F4A7C15) & M64
    z2 = (z1 + 0x9E3779B97F4A7C15) & M64
    assert (int(s0), int(s1)) == (_splitmix_out(z1), _splitmix_out(z2))
    assert int(xo.splitmix64(np.uint64(seed))) == _splitmix64_ref(seed)


def test_hashed_normal_is_a_fixed_function_with_the_normal_law():
    key = np.uint64(0xDEADBEEF12345678)
    z = _xo_draws(7, key, np.uint64(0), 20_000, 0.0)
    np.testing.assert_array_equal(z, _xo_draws(7, key, np.uint64(0), 20_000, 0.0))
    h1 = _splitmix64_ref(int(key) ^ _splitmix64_ref(3))
    h2 = _splitmix64_ref(h1)
    ref = math.sqrt(-2 * math.log(((h1 >> 11) + 0.5) / 2**53)) * math.cos(
        2 * math.pi * (h2 >> 11) / 2**53)
    assert abs(z[3] - ref) < 1e-12
    assert stats.kstest(z, "norm").pvalue > 1e-4
    across = [xo.hashed_normal(np.uint64(k), 17) for k in range(3000)]
    assert stats.kstest(across, "norm").pvalue > 1e-4


# fixed (was BUG): splitmix64/hashed_normal hash an int64 key in float64
def test_hashed_normal_does_not_depend_on_the_key_integer_type():
    """The same key value must give the same hash: with an int64 key (a Python int, an
    int64 id array) numba's int64 + uint64 promotion to float64 gives other numbers."""
    assert int(xo.splitmix64(5)) == _splitmix64_ref(5)
    assert xo.hashed_normal(5, 3) == xo.hashed_normal(np.uint64(5), 3)


def test_uniforms_and_approximate_normals_have_their_stated_laws():
    s0, s1 = _pair(12345)
    n = 200_000
    u = _xo_draws(0, s0, s1, n, 0.0)
    assert u.min() >= 0.0 and u.max() < 1.0 and stats.kstest(u, "uniform").pvalue > 1e-4
    h = _xo_draws(6, s0, s1, n, 0.0)
    assert h.min() >= 0.0 and h.max() < 1.0 and stats.kstest(h, "uniform").pvalue > 1e-4
    assert xo.high_uniform(np.uint64(M64)) < 1.0 and xo.high_uniform(np.uint64(2**32 - 1)) == 0.0
    z = _xo_draws(1, s0, s1, n, 0.0)  # Box-Muller: exact normal law
    assert stats.kstest(z, "norm").pvalue > 1e-4
    se = 5 / np.sqrt(n)
    for kind, bound in ((5, 2.449489742783178), (2, 3.4641016151377544)):
        x = _xo_draws(kind, s0, s1, n, 0.0)  # triangular, Irwin-Hall: mean 0, variance 1
        assert abs(x.mean()) < se and abs(x.var() - 1.0) < 5 * np.sqrt(2 / n)
        assert np.abs(x).max() <= bound
    assert abs(xo.triangular_normal(np.uint64(M64))) <= 2.449489742783178


def test_ziggurat_tables_and_normals():
    """xoroshiro's own ziggurat tables agree with numpy's (numba ships them) to rounding
    of the published constants, and its normals (seeded as the spines seed them) follow
    the normal law, tails included."""
    from numba.np.random._constants import fi_double, ki_double, wi_double

    np.testing.assert_allclose(xo._ZIG_WI, np.asarray(wi_double), rtol=1e-9)
    np.testing.assert_allclose(xo._ZIG_FI, np.asarray(fi_double), rtol=1e-9)
    np.testing.assert_allclose(xo._ZIG_KI.astype(float), np.asarray(ki_double, float),
                               rtol=1e-9, atol=2.0)
    s0, s1 = xoroshiro_states(3, "arm", [7], PURPOSE_SPINES)[0]
    z = _xo_draws(3, s0, s1, 400_000, 0.0)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    p = stats.norm.sf(3.0)
    for count in ((z > 3.0).sum(), (z < -3.0).sum()):
        assert abs(count - p * len(z)) < 5 * np.sqrt(p * len(z))


@pytest.mark.parametrize("lam", [0.3, 6.0, 230.0])
def test_next_poisson_has_the_poisson_law(lam):
    """Including a mean above POISSON_SPLIT (drawn as a sum of two inversions)."""
    s0, s1 = _pair(99)
    k = _xo_draws(4, s0, s1, 60_000, lam).astype(np.int64)
    lo, hi = int(stats.poisson.ppf(1e-4, lam)), int(stats.poisson.isf(1e-4, lam))
    edges = np.arange(lo, hi + 2)
    obs = np.array([(k < lo).sum()] + [(k == e).sum() for e in edges[:-1]] + [(k > hi).sum()])
    pmf = stats.poisson.pmf(edges[:-1], lam)
    exp = np.concatenate([[stats.poisson.cdf(lo - 1, lam)], pmf, [stats.poisson.sf(hi, lam)]])
    keep = exp * len(k) > 5
    o = np.concatenate([obs[keep], [obs[~keep].sum()]])
    e = np.concatenate([exp[keep], [exp[~keep].sum()]]) * len(k)
    assert stats.chisquare(o, e * o.sum() / e.sum()).pvalue > 1e-4


@pytest.mark.parametrize("lam", [1e-12, 0.5, 3.0, 20.0, 199.9, 200.0, 250.0])
def test_poisson_inversion_at_the_largest_uniform_stays_in_the_tail(lam):
    """A uniform of 1 - 2**-53 (the largest next_double gives) must end the inversion in
    the far tail, not at the 1000 cap (the summed pmf reaches it in floating point)."""
    st_ = np.array([(M64 - 12345) & M64, 12345], dtype=np.uint64)  # next output 2**64 - 1
    assert xo.next_double(st_.copy()) == 1.0 - 2.0**-53
    k = xo.next_poisson(st_.copy(), lam)
    assert lam <= k < lam + 12 * math.sqrt(lam) + 25


# ========================================================================= vmath

@settings(max_examples=50, deadline=None)
@given(x=st.floats(-700.0, 700.0, allow_nan=False))
@example(x=0.0)
@example(x=-0.0)
@example(x=5e-324)
@example(x=700.0)
@example(x=-700.0)
@example(x=0.5 * math.log(2.0))
def test_vexp_within_one_ulp_of_libm(x):
    y = vexp(x)
    ref = math.exp(x)
    assert abs(y - ref) <= np.spacing(ref)


def test_vexp_bulk_accuracy_clamp_and_nan():
    x = np.concatenate([np.random.default_rng(4).uniform(-700, 700, 200_000),
                        np.linspace(-1e-6, 1e-6, 2001)])
    y, ref = _vexp_all(x), np.exp(x)
    assert (np.abs(y - ref) / np.spacing(ref)).max() <= 1.0
    sp = _vexp_all(np.array([np.nan, np.inf, -np.inf, 1e300, -1e300]))
    assert np.isnan(sp[0])
    assert sp[1] == sp[3] == vexp(700.0) and sp[2] == sp[4] == vexp(-700.0)  # documented clamp
    assert vexp(0.0) == 1.0 and vexp(1) == vexp(1.0)


# ========================================================================= cohort

def test_cohort_shapes_defaults_and_columns():
    values = np.arange(6.0).reshape(3, 2)
    c = Cohort("mouse", "arm", 3, ("a", "b"), values)
    np.testing.assert_array_equal(c.subjects, np.arange(3))
    np.testing.assert_array_equal(c.get("b"), [1.0, 3.0, 5.0])
    c2 = Cohort("mouse", "arm", 3, ("a", "b"), values, np.array([10, 11, 12]))
    np.testing.assert_array_equal(c2.subjects, [10, 11, 12])
    assert Cohort("mouse", "arm", 0, ("a",), np.zeros((0, 1))).get("a").shape == (0,)
    with pytest.raises(ValueError, match="disagree"):
        Cohort("mouse", "arm", 3, ("a", "b"), values, np.array([1, 2]))
    with pytest.raises(ValueError, match="disagree"):
        Cohort("mouse", "arm", 3, ("a",), values)
    with pytest.raises(ValueError, match="disagree"):
        Cohort("mouse", "arm", 2, ("a", "b"), values)
    with pytest.raises(ValueError):
        c.get("missing")
