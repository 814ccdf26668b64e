"""The random-stream scheme: every random number ketasim draws comes from a stream keyed
by what it is for, never by the order in which things run.

A stream is ``SeedSequence(seed, spawn_key=(arm, subject, purpose[, sub-key ...]))``:

- ``arm``: the CRC32 of the arm's name (:func:`arm_key`);
- ``subject``: the subject's index in its arm (global, whatever chunk it is run in);
- ``purpose``: parameters, measurement, spines, behaviour (the ``PURPOSE_*`` constants);
- sub-keys: the assay (CRC32 of its name) for measurement streams, the branch for spine
  streams.

So a subject's numbers never depend on how many subjects, arms, branches or assays there
are, on the chunk or worker that runs it, or on the order of the scenario's entries:
adding an assay, a branch or an arm leaves every other assay's numbers unchanged.
"""

from __future__ import annotations

import operator
import zlib

import numba
import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

# purposes of a subject's independent random streams
PURPOSE_PARAMETERS = 0
PURPOSE_MEASUREMENT = 1
PURPOSE_SPINES = 2
PURPOSE_BEHAVIOR = 3


def name_key(name: str) -> int:
    """Stable integer key of a name (its UTF-8 CRC32)."""
    return zlib.crc32(name.encode("utf-8"))


def arm_key(arm_name: str) -> int:
    """Stable integer key of an arm (its name's CRC32)."""
    return name_key(arm_name)


def subject_seed(seed: int, arm: str, subject: int, purpose: int,
                 *keys: int) -> KeyedSeedSequence:
    """The seed sequence of one subject's stream for one purpose (and sub-keys): numpy's
    ``SeedSequence(seed, spawn_key=(arm_key(arm), subject, purpose, *keys))``, its state
    words computed in compiled code (:class:`KeyedSeedSequence`)."""
    return KeyedSeedSequence(seed, (arm_key(arm), subject, purpose, *keys))


def subject_keys(arm: str, subjects, purpose: int, *keys: int) -> np.ndarray:
    """(len(subjects), 3 + len(keys)) int64: each subject's spawn key as
    :func:`subject_seed` builds it, one row per subject, for the chunk-wide compiled
    draws (:func:`ketasim.core.pcg64.keyed_normals`, ``seeded_states``)."""
    subjects = np.asarray(subjects, dtype=np.int64).reshape(-1)
    out = np.empty((subjects.size, 3 + len(keys)), dtype=np.int64)
    out[:, 0] = arm_key(arm)
    out[:, 1] = subjects
    out[:, 2] = purpose
    for j, k in enumerate(keys):
        out[:, 3 + j] = k
    return out


def subject_rng(seed: int, arm_name: str, subject: int, purpose: int,
                *keys: int) -> np.random.Generator:
    """The generator of one subject for one purpose (and sub-keys): the same numbers as
    ``Generator(PCG64(SeedSequence(...)))``, built about 8 times faster."""
    return np.random.Generator(np.random.PCG64(subject_seed(seed, arm_name, subject,
                                                            purpose, *keys)))


# ---------------------------------------------------------------- fast keyed seeding
# numpy's SeedSequence (O'Neill's seed_seq_fe, as in numpy/random/bit_generator.pyx)
# costs about 13 us to build and PCG64 about 8 us more to seed from it, in Python-level
# conversions; a trial builds some ten streams per patient. KeyedSeedSequence computes
# the same state words in compiled code (checked against numpy in tests/test_streams.py).
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = 0xCA01F9DD
_MIX_MULT_R = 0x4973F715
_POOL_SIZE = 4
_M32 = 0xFFFFFFFF


@numba.njit(cache=True)
def _hashmix(value, hash_const):
    """(mixed value, next hash constant), in 32-bit arithmetic held in int64."""
    value = (value ^ hash_const) & _M32
    hash_const = (hash_const * _MULT_A) & _M32
    value = (value * hash_const) & _M32
    return value ^ (value >> 16), hash_const


@numba.njit(cache=True)
def _mix(x, y):
    r = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _M32
    return r ^ (r >> 16)


@numba.njit(cache=True)
def _seed_state(entropy, n_u64):
    """SeedSequence's pool from the assembled entropy words, then
    ``generate_state(n_u64, np.uint64)`` (numbers below 2**32 held in int64, masked
    after every product, so nothing overflows)."""
    hash_a = _INIT_A
    pool = np.zeros(_POOL_SIZE, dtype=np.int64)
    n = entropy.shape[0]
    for i in range(_POOL_SIZE):  # hashmix of the first words (0 beyond the entropy)
        v = entropy[i] if i < n else 0
        pool[i], hash_a = _hashmix(v, hash_a)
    for i_src in range(_POOL_SIZE):
        for i_dst in range(_POOL_SIZE):
            if i_src != i_dst:
                v, hash_a = _hashmix(pool[i_src], hash_a)
                pool[i_dst] = _mix(pool[i_dst], v)
    for i_src in range(_POOL_SIZE, n):
        for i_dst in range(_POOL_SIZE):
            v, hash_a = _hashmix(entropy[i_src], hash_a)
            pool[i_dst] = _mix(pool[i_dst], v)
    hash_b = _INIT_B
    out = np.empty(n_u64, dtype=np.uint64)
    for k in range(n_u64):  # two 32-bit words, little-endian, per uint64
        lo = 0
        hi = 0
        for h in range(2):
            v = (pool[(2 * k + h) % _POOL_SIZE] ^ hash_b) & _M32
            hash_b = (hash_b * _MULT_B) & _M32
            v = (v * hash_b) & _M32
            v ^= v >> 16
            if h == 0:
                lo = v
            else:
                hi = v
        out[k] = np.uint64(lo) | (np.uint64(hi) << np.uint64(32))
    return out


def _uint32_words(n: int, into: list[int]) -> None:
    """numpy's split of a non-negative integer into 32-bit words (0 is one word)."""
    if n < 0:
        raise ValueError(f"seed and stream keys must be non-negative, got {n}")
    if n == 0:
        into.append(0)
    while n > 0:
        into.append(n & 0xFFFFFFFF)
        n >>= 32


def entropy_run(seed: int, keyed: bool) -> list[int]:
    """The seed's 32-bit words as SeedSequence assembles them: zero-padded to the pool
    size when spawn-key words follow (``keyed``)."""
    run: list[int] = []
    _uint32_words(operator.index(seed), run)  # an integer: a float seed is refused
    if keyed and len(run) < _POOL_SIZE:
        run += [0] * (_POOL_SIZE - len(run))
    return run


class KeyedSeedSequence(ISpawnableSeedSequence):
    """``SeedSequence(entropy, spawn_key=spawn_key)`` with the state words computed in
    compiled code; anything else (other word counts, ``spawn``, attributes) is delegated
    to a real SeedSequence built on first use."""

    __slots__ = ("_real", "_words", "entropy", "spawn_key")

    def __init__(self, entropy: int, spawn_key: tuple[int, ...]):
        # integers only, as numpy's SeedSequence (a float would pick another stream)
        self.entropy = operator.index(entropy)
        self.spawn_key = tuple(operator.index(k) for k in spawn_key)
        spawn: list[int] = []
        for k in self.spawn_key:
            if 0 <= k <= _M32:  # one word (most keys): numpy's split, without the loop
                spawn.append(k)
            else:
                _uint32_words(k, spawn)
        self._words = np.array(entropy_run(self.entropy, bool(spawn)) + spawn,
                               dtype=np.int64)
        self._real = None

    def real(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key)
        return self._real

    def generate_state(self, n_words, dtype=np.uint32):
        if np.dtype(dtype) == np.uint64:
            return _seed_state(self._words, int(n_words))
        return self.real().generate_state(n_words, dtype)

    def spawn(self, n_children):
        return self.real().spawn(n_children)

    def __getattr__(self, name):  # pool, n_children_spawned, state, ...
        if name.startswith("_"):  # (unpickling looks up dunders before __init__ ran)
            raise AttributeError(name)
        return getattr(self.real(), name)


def keyed_rng(seed: int, spawn_key: tuple[int, ...]) -> np.random.Generator:
    """``Generator(PCG64(SeedSequence(seed, spawn_key=spawn_key)))``, the same numbers,
    without numpy's Python-level seeding cost."""
    return np.random.Generator(np.random.PCG64(KeyedSeedSequence(seed, spawn_key)))


def assay_rng(seed: int, arm: str, subject: int, assay: str) -> np.random.Generator:
    """Independent measurement stream of one subject for one assay (or one named part of
    an assay, e.g. ``"open_field_0"``)."""
    return subject_rng(seed, arm, subject, PURPOSE_MEASUREMENT, name_key(assay))


def xoroshiro_states(seed: int, arm: str, subjects, purpose: int,
                     n_keys: int | None = None) -> np.ndarray:
    """xoroshiro128+ states (uint64 pairs) for numba kernels: (len(subjects), 2), or with
    ``n_keys`` (len(subjects), n_keys, 2), one per sub-key ``0 .. n_keys - 1`` (e.g. one
    per branch of a subject's dendrite). ``subjects``: global indices (an int n means
    ``range(n)``)."""
    subjects = np.arange(subjects) if np.isscalar(subjects) else np.asarray(subjects)
    keys = [()] if n_keys is None else [(k,) for k in range(n_keys)]
    out = np.empty((len(subjects), len(keys), 2), dtype=np.uint64)
    for i, s in enumerate(subjects):  # once per subject (and sub-key)
        for j, k in enumerate(keys):
            st = subject_seed(seed, arm, int(s), purpose, *k).generate_state(2, np.uint64)
            if st[0] == 0 and st[1] == 0:  # the all-zero state is excluded by the generator
                st[0] = np.uint64(1)
            out[i, j] = st
    return out[:, 0] if n_keys is None else out
