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

import zlib

import numpy as np

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
                 *keys: int) -> np.random.SeedSequence:
    """The seed sequence of one subject's stream for one purpose (and sub-keys)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(
        arm_key(arm), int(subject), int(purpose), *(int(k) for k in keys)))


def subject_rng(seed: int, arm_name: str, subject: int, purpose: int,
                *keys: int) -> np.random.Generator:
    """The generator of one subject for one purpose (and sub-keys)."""
    return np.random.Generator(np.random.PCG64(subject_seed(seed, arm_name, subject,
                                                            purpose, *keys)))


def assay_rng(seed: int, arm: str, subject: int, assay: str) -> np.random.Generator:
    """Independent measurement stream of one subject for one assay (or one named part of
    an assay, e.g. ``"open_field_0"``)."""
    return subject_rng(seed, arm, subject, PURPOSE_MEASUREMENT, name_key(assay))


def subject_noise(seed: int, arm: str, subjects, assay: str, shape: tuple[int, ...],
                  kind: str = "normal") -> np.ndarray:
    """(len(subjects), *shape) standard draws, one independent stream per subject.
    ``subjects``: the subjects' global indices (an int n means ``range(n)``)."""
    subjects = np.arange(subjects) if np.isscalar(subjects) else np.asarray(subjects)
    out = np.empty((len(subjects), *shape))
    for i, s in enumerate(subjects):  # one draw call per subject, never per time step
        g = assay_rng(seed, arm, int(s), assay)
        out[i] = g.standard_normal(shape) if kind == "normal" else g.random(shape)
    return out


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
