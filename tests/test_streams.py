"""The compiled keyed seeding of the random-stream scheme (ketasim.core.streams)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ketasim.core.streams import KeyedSeedSequence, keyed_rng

_KEY = st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1), st.integers(0, 2**70))


@settings(max_examples=300, deadline=None)
@given(entropy=_KEY, spawn_key=st.lists(_KEY, max_size=7), n=st.integers(1, 6))
@example(entropy=2**32, spawn_key=[2**32 - 1, 2**32, 0, 2**64], n=4)  # word boundaries
def test_keyed_seed_sequence_equals_numpy(entropy, spawn_key, n):
    """The compiled seeding gives numpy's SeedSequence state words exactly, for any
    entropy and key (one or several 32-bit words each, zeros, no key at all)."""
    ours = KeyedSeedSequence(entropy, tuple(spawn_key)).generate_state(n, np.uint64)
    ref = np.random.SeedSequence(entropy, spawn_key=tuple(spawn_key)).generate_state(
        n, np.uint64)
    np.testing.assert_array_equal(ours, ref)


def test_keyed_rng_draws_and_delegation():
    """A keyed generator draws what numpy's does; uint32 states, spawn and attributes
    come from a real SeedSequence; negative keys are refused as numpy refuses them."""
    key = (3735928559, 17, 1, 2882400001)
    ref = np.random.Generator(np.random.PCG64(np.random.SeedSequence(12345, spawn_key=key)))
    ours = keyed_rng(12345, key)
    np.testing.assert_array_equal(ours.normal(size=50), ref.normal(size=50))
    np.testing.assert_array_equal(ours.integers(0, 7, size=50), ref.integers(0, 7, size=50))
    seq = KeyedSeedSequence(12345, key)
    real = np.random.SeedSequence(12345, spawn_key=key)
    np.testing.assert_array_equal(seq.generate_state(3), real.generate_state(3))
    assert seq.pool.tolist() == real.pool.tolist()
    child, = seq.spawn(1)
    assert child.spawn_key == (*key, 0)
    with pytest.raises(ValueError, match="non-negative"):
        KeyedSeedSequence(1, (-3,))
    import pickle

    again = pickle.loads(pickle.dumps(keyed_rng(12345, key)))
    np.testing.assert_array_equal(again.random(5), keyed_rng(12345, key).random(5))


def test_subject_streams_are_numpys_seed_sequence_of_the_scheme():
    """subject_seed / subject_rng / xoroshiro_states key a stream as numpy's
    SeedSequence(seed, spawn_key=(arm CRC32, subject, purpose, *keys)) would."""
    from ketasim.core.streams import arm_key, subject_rng, subject_seed, xoroshiro_states

    key = (arm_key("ketamine"), 7, 2, 3)
    real = np.random.SeedSequence(11, spawn_key=key)
    np.testing.assert_array_equal(subject_seed(11, "ketamine", 7, 2, 3).generate_state(4, np.uint64),
                                  real.generate_state(4, np.uint64))
    np.testing.assert_array_equal(subject_rng(11, "ketamine", 7, 2, 3).random(4),
                                  np.random.Generator(np.random.PCG64(real)).random(4))
    st = xoroshiro_states(11, "ketamine", [7], 2, n_keys=4)[0, 3]
    np.testing.assert_array_equal(st, real.generate_state(2, np.uint64))


# ---------------------------------------------------------------- compiled PCG64 normals


def _numpy_gen(seed, key):
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**64 - 1),
       keys=st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
                     min_size=1, max_size=4).filter(lambda r: len({len(k) for k in r}) == 1),
       n=st.integers(0, 40))
@example(seed=0, keys=[[0]], n=3)
@example(seed=2**32, keys=[[2**32 - 1, 0, 1, 2**31]], n=5)
def test_keyed_normals_equal_numpys_generator(seed, keys, n):
    """Every draw bitwise equal to Generator(PCG64(SeedSequence(seed, spawn_key)))."""
    from ketasim.core.pcg64 import keyed_normals

    z = keyed_normals(seed, np.array(keys), n)
    assert z.shape == (len(keys), n)
    for row, key in zip(z, keys, strict=True):
        np.testing.assert_array_equal(row, _numpy_gen(seed, key).standard_normal(n))
    loc = keyed_normals(seed, np.array(keys), n, loc=0.0, scale=0.32)
    for row, key in zip(loc, keys, strict=True):
        np.testing.assert_array_equal(row, _numpy_gen(seed, key).normal(0.0, 0.32, n))


def test_keyed_normals_state_and_rare_branches():
    """The seeded PCG64 state is numpy's, and a million draws (which take the
    ziggurat's wedge and tail rejections thousands of times) are all numpy's."""
    from ketasim.core import pcg64

    seed, key = 20261204, (11, 7, 1, 3)
    st_ = np.empty(4, dtype=np.uint64)
    pcg64._seed(pcg64._seed_state(pcg64.entropy_words(seed, np.array([key]))[0], 4), st_)
    state = _numpy_gen(seed, key).bit_generator.state["state"]
    assert (int(st_[0]) << 64 | int(st_[1])) == state["state"]
    assert (int(st_[2]) << 64 | int(st_[3])) == state["inc"]
    z = pcg64.keyed_normals(seed, np.array([key]), 1_000_000)[0]
    ref = _numpy_gen(seed, key).standard_normal(1_000_000)
    np.testing.assert_array_equal(z, ref)
    assert np.sum(np.abs(z) > pcg64._NOR_R) > 50  # the tail branch was taken


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), pool=st.integers(1, 2**32))
@example(seed=5, pool=3 * 2**30)  # a quarter of the first draws are rejected
@example(seed=5, pool=2**32 - 1)
@example(seed=5, pool=2**32)
def test_first_integers_equal_numpys(seed, pool):
    """The first Generator.integers(pool) of each stream, numpy's number, including
    Lemire's rejections (which take the second half of the 64-bit output, then further
    outputs) and the ranges numpy draws without rejection (one value; 2**32 values)."""
    from ketasim.core import pcg64

    keys = np.arange(400 * 3, dtype=np.int64).reshape(400, 3) * 7919 % 2**32
    got = pcg64.first_integers(pcg64.seeded_states(seed, keys), pool)
    want = [_numpy_gen(seed, tuple(int(k) for k in row)).integers(pool) for row in keys]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="pool"):
        pcg64.first_integers(pcg64.seeded_states(seed, keys), 0)


def test_keyed_normals_refuse_bad_keys():
    from ketasim.core.pcg64 import keyed_normals

    with pytest.raises(ValueError, match="32-bit"):
        keyed_normals(1, np.array([[2**32]]), 3)
    with pytest.raises(ValueError, match="32-bit"):
        keyed_normals(1, np.array([[-1]]), 3)
    with pytest.raises(ValueError, match="at least one key"):
        keyed_normals(1, np.zeros((2, 0), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="n must be"):
        keyed_normals(1, np.array([[1]]), -1)


def test_assay_context_normals_are_its_streams():
    """ctx.normals gives each subject's stream's numbers for each part (regions too)."""
    from ketasim.core.assay import AssayContext

    for region in ("mpfc", "striatum"):
        ctx = AssayContext(99, "arm a", "madrs", np.array([0, 5, 123456]), "human", {},
                           lambda o, t: None, registry=object(), region=region)
        parts = ["madrs@24h", "madrs@168h", "mood_fluctuation"]
        z = ctx.normals(parts, 12)
        for i in range(ctx.n):
            for j, part in enumerate(parts):
                np.testing.assert_array_equal(z[i, j], ctx.rng(i, part).standard_normal(12))


@pytest.mark.parametrize("shape", [1.5, 8.0, 50.0])
def test_compiled_gamma_equals_numpys(shape):
    """standard_gamma (shape > 1) draws numpy's Generator.standard_gamma, bitwise."""
    from ketasim.core import pcg64

    states = pcg64.seeded_states(5, np.array([[1, 2, 3, 4]]))
    st_ = states[0].copy()
    draws = np.array([pcg64.standard_gamma(st_, shape) for _ in range(20_000)])
    ref = _numpy_gen(5, (1, 2, 3, 4)).standard_gamma(shape, 20_000)
    np.testing.assert_array_equal(draws, ref)
    # numpy's generator put at the compiled state draws on from there
    gen = pcg64.set_generator_state(_numpy_gen(0, (9,)), st_)
    ref_gen = _numpy_gen(5, (1, 2, 3, 4))
    ref_gen.standard_gamma(shape, 20_000)
    np.testing.assert_array_equal(gen.standard_normal(5), ref_gen.standard_normal(5))


def test_assay_context_noise_is_each_subjects_stream_per_session():
    from ketasim.core.assay import AssayContext, session_key

    ctx = AssayContext(5, "saline", "western_blot", np.array([3, 0, 77]), "mouse", {},
                       lambda o, t: None, registry=object())
    at = np.array([-1.0, 2.0, 1.0 / 60.0])
    for shape in [(), (4,), (2, 3, 5), (2, 3, 0)]:
        z = ctx.noise_at("western_blot", at, shape)
        assert z.shape == (3, len(at), *shape)
        for i in range(ctx.n):
            for j, t in enumerate(at):  # each subject's stream for that session's time
                g = ctx.rng(i, session_key("western_blot", t))
                np.testing.assert_array_equal(z[i, j], g.standard_normal(shape))
    # the key is the time, not the place: a session drawn alone draws the same numbers
    np.testing.assert_array_equal(ctx.noise_at("western_blot", at[1:2], (4,))[:, 0],
                                  ctx.noise_at("western_blot", at, (4,))[:, 1])
