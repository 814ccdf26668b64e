"""Shared machinery of simulated assays: what an assay needs and what it returns.

An assay is measured the way a lab measures it: at its own sampling times, with the
lab's noise, per subject. Each assay declares the model outputs it needs and the times
at which it needs them; the runner simulates once per arm and hands every assay the
trajectories. Noise comes from the subject's own measurement stream, one per assay.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ketasim.experiment.cohort import PURPOSE_MEASUREMENT, arm_key


def assay_rng(seed: int, arm: str, subject: int, assay: str) -> np.random.Generator:
    """Independent measurement stream of one subject for one assay."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(
        arm_key(arm), int(subject), PURPOSE_MEASUREMENT, zlib.crc32(assay.encode())))
    return np.random.Generator(np.random.PCG64(ss))


def subject_noise(seed: int, arm: str, n: int, assay: str, shape: tuple[int, ...],
                  kind: str = "normal") -> np.ndarray:
    """(n, *shape) standard draws, one independent stream per subject."""
    out = np.empty((n, *shape))
    for i in range(n):  # one draw call per subject, never per time step
        g = assay_rng(seed, arm, i, assay)
        out[i] = g.standard_normal(shape) if kind == "normal" else g.random(shape)
    return out


@dataclass(frozen=True)
class AssayRows:
    """Long-format measurements of one assay for one arm."""

    subject: np.ndarray  # int
    readout: np.ndarray  # str
    time_h: np.ndarray  # float
    value: np.ndarray  # float
    unit: np.ndarray  # str

    @staticmethod
    def from_grid(values: np.ndarray, times: np.ndarray, readouts: list[str],
                  units: list[str]) -> AssayRows:
        """values[subject, time, readout] -> rows ordered subject, readout, time."""
        n, nt, nr = values.shape
        subj = np.repeat(np.arange(n), nr * nt)
        rd = np.tile(np.repeat(np.array(readouts, dtype=object), nt), n)
        un = np.tile(np.repeat(np.array(units, dtype=object), nt), n)
        tt = np.tile(times, n * nr)
        val = values.transpose(0, 2, 1).reshape(-1)
        return AssayRows(subj, rd, tt, val, un)


@dataclass(frozen=True)
class AssayContext:
    """What an assay sees: the arm, its trajectories, the spine recording (when the arm
    has spine assays) and its random streams. ``keep`` stores an extra result (e.g. the
    observed spine tracking table) that the run writes out beside the readouts."""

    seed: int
    arm: str
    n: int
    species: str
    options: dict
    trajectory: Callable[[str, np.ndarray], np.ndarray]  # (output, times) -> (n, len(times))
    spines: object = None
    kept: dict = field(default_factory=dict)
    registry: object = None  # the parameter registry of the run (layers that read it)

    def keep(self, key: str, value) -> None:
        self.kept[key] = value


@dataclass(frozen=True)
class Assay:
    name: str
    description: str
    outputs: tuple[str, ...]  # model outputs needed
    sample_times: Callable[[np.ndarray, dict], np.ndarray]  # assay times -> model times
    measure: Callable[[AssayContext, np.ndarray], AssayRows]
    options: dict = field(default_factory=dict)  # allowed options and defaults
    positive: tuple[str, ...] = ()  # numeric options that must be > 0 (counts, durations)
    fractions: tuple[str, ...] = ()  # numeric options that must lie in [0, 1]


def same_times(at: np.ndarray, options: dict) -> np.ndarray:
    return np.asarray(at, dtype=float)


class AssayOptionError(ValueError):
    """An assay option is unknown or has a wrong value."""


def resolve_options(assay: Assay, given: dict, where: str) -> dict:
    out = dict(assay.options)
    for k, v in (given or {}).items():
        if k not in assay.options:
            raise AssayOptionError(
                f"{where}.options.{k}: got {v!r}; expected one of {sorted(assay.options)} "
                f"for assay {assay.name!r}")
        default = assay.options[k]
        if isinstance(default, str) and not isinstance(v, str):
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a name")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v)
                or v < 0):
            raise AssayOptionError(
                f"{where}.options.{k}: got {v!r}; expected a non-negative number")
        if k in assay.positive and not v > 0:
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a number > 0")
        if k in assay.fractions and not v <= 1:
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a fraction in "
                                   "[0, 1]")
        if isinstance(default, int) and not isinstance(default, bool) and v != int(v):
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a whole number")
        out[k] = v
    return out
