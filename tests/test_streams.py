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
