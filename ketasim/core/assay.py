"""The assay protocol: what an assay declares, what it sees, and what it returns.

An assay is measured the way a lab measures it: at its own sampling times, with the
lab's noise, per subject. It is declared once, as an :class:`Assay` value in its own
layer's module, with everything the rest of ketasim derives from it:

- ``name``, ``description``;
- ``readouts``: the :class:`Readout` values (name and unit) it reports; the scenario
  vocabulary, the JSON Schema and the run's checks are derived from them;
- ``options``: defaults (their types give the option's type), with ``positive`` and
  ``fractions`` naming numeric options that must be > 0 or lie in [0, 1], and
  ``choices`` the allowed values of a name option;
- ``outputs``: the signalling outputs it reads, at the model times ``sample_times``
  returns for its assay times;
- ``reads``: the later layers it needs (``"spines"``: the spine recording;
  ``"circuit"``: the prefrontal circuit stage, which implies the spines);
- ``figures``: functions drawing the report's figures from what the assay kept
  (``ctx.keep``), and ``artifacts``: files written beside the readouts from it.

The experiment layer simulates each arm once and hands every assay an
:class:`AssayContext`; noise comes from each subject's own measurement stream
(:mod:`ketasim.core.streams`), keyed by the assay, so an assay's numbers do not depend on
which other assays run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from ketasim.core.pcg64 import keyed_normals, seeded_states
from ketasim.core.regions import DEFAULT_REGION, KNOWN_REGIONS
from ketasim.core.streams import PURPOSE_MEASUREMENT, assay_rng, name_key, subject_keys

LAYERS = ("spines", "circuit")  # later layers an assay may read (signalling: ``outputs``)


def session_key(part: str, time_h: float) -> str:
    """The stream key of one session of ``part`` at ``time_h``: keyed by the time, not
    the session's place among the assay's times, so a time added to a scenario leaves
    the other sessions' draws alone."""
    return f"{part}@{float(time_h):.6g}h"


@dataclass(frozen=True)
class Readout:
    name: str
    unit: str
    description: str = ""


@dataclass(frozen=True)
class AssayRows:
    """Long-format measurements of one assay for one arm (``subject`` holds the
    subjects' global indices in the arm)."""

    subject: np.ndarray  # int
    readout: np.ndarray  # str
    time_h: np.ndarray  # float
    value: np.ndarray  # float
    unit: np.ndarray  # str

    @staticmethod
    def from_grid(values: np.ndarray, times: np.ndarray, readouts: list[str],
                  units: list[str], subjects: np.ndarray | None = None) -> AssayRows:
        """values[subject, time, readout] -> rows ordered subject, readout, time.
        ``subjects``: the global index of each row of ``values`` (default 0..n-1)."""
        n, nt, nr = values.shape
        ids = np.arange(n) if subjects is None else np.asarray(subjects)
        subj = np.repeat(ids, nr * nt)
        rd = np.tile(np.repeat(np.array(readouts, dtype=object), nt), n)
        un = np.tile(np.repeat(np.array(units, dtype=object), nt), n)
        tt = np.tile(times, n * nr)
        val = values.transpose(0, 2, 1).reshape(-1)
        return AssayRows(subj, rd, tt, val, un)


@dataclass(frozen=True)
class AssayContext:
    """What an assay sees for one chunk of an arm's subjects: their global indices, the
    trajectories of the signalling outputs it declared, the spine recording and the
    circuit stage (when it reads them), the run's parameter registry, and its random
    streams. ``keep`` stores an extra result (e.g. the observed spine tracking table)
    that the run writes out beside the readouts."""

    seed: int
    arm: str
    assay: str
    subjects: np.ndarray  # global subject indices of this chunk
    species: str
    options: dict
    trajectory: Callable[[str, np.ndarray], np.ndarray]  # (output, times) -> (n, len(times))
    registry: Any  # the parameter registry of the run (required: no silent defaults)
    spines: object = None
    circuit: object = None
    kept: dict = field(default_factory=dict)
    region: str = DEFAULT_REGION  # the region measured (its parameters: ``registry``)
    # the streams' keys when they are not (arm, subject): a stratified trial's shared pool
    # (namespace, each subject's place in the pool), so noise follows the patient
    stream: tuple[str, np.ndarray] | None = None
    # the time (h) of the arm's first drug event (saline included), None without one:
    # where a patient's placebo response starts (the runner sets it; 0 by default)
    treatment_start_h: float | None = 0.0

    def __post_init__(self):
        if self.registry is None:
            raise ValueError(f"assay {self.assay!r}: the run's parameter registry is "
                             "required")

    @property
    def n(self) -> int:
        return len(self.subjects)

    @property
    def stream_arm(self) -> str:
        """The namespace of the chunk's random streams: the arm, or a shared pool's."""
        return self.arm if self.stream is None else self.stream[0]

    @property
    def stream_ids(self) -> np.ndarray:
        """The chunk's subjects as their random streams know them: their indices in the
        arm, or their places in a shared pool."""
        return self.subjects if self.stream is None else self.stream[1]

    def rng(self, i: int, part: str | None = None) -> np.random.Generator:
        """Measurement stream of the chunk's ``i``-th subject for this assay (or for a
        named ``part`` of it, e.g. one session); a region other than the default has
        streams of its own (the default region's keys are unchanged)."""
        return assay_rng(self.seed, self.stream_arm, int(self.stream_ids[i]), self.key(part))

    def stream_keys(self, parts: list[str]) -> np.ndarray:
        """(subjects, len(parts), 4) int64: the spawn keys of each subject's stream for
        each named part (those of ``self.rng(i, part)``)."""
        keys = [name_key(self.key(p)) for p in parts]
        if len(set(keys)) < len(set(parts)):  # streams are keyed by a name's CRC32
            raise ValueError(f"two of the parts {parts} of {self.key(None)!r} share a "
                             "random-stream key (CRC32), so they would draw the same numbers")
        return np.stack([subject_keys(self.stream_arm, self.stream_ids, PURPOSE_MEASUREMENT,
                                      k) for k in keys], axis=1)

    def normals(self, parts: list[str], n: int) -> np.ndarray:
        """(subjects, len(parts), n): the first ``n`` standard normals of each subject's
        stream for each named part, the numbers ``self.rng(i, part).standard_normal(n)``
        gives, drawn for the whole chunk in compiled code (:mod:`ketasim.core.pcg64`)."""
        keys = self.stream_keys(parts)
        return keyed_normals(self.seed, keys.reshape(-1, 4), n).reshape(
            keys.shape[0], len(parts), n)

    def noise_at(self, part: str, at: np.ndarray, shape: tuple[int, ...] = ()
                 ) -> np.ndarray:
        """(subjects, len(at), *shape) standard normals, each subject's at each time from
        its own stream for that time (:func:`session_key`), so that adding or removing a
        time leaves the other times' draws alone."""
        shape = tuple(int(k) for k in shape)
        parts = [session_key(part, float(t)) for t in at]
        z = self.normals(parts, int(np.prod(shape, dtype=np.int64)))
        return z.reshape(self.n, len(parts), *shape)

    def stream_states(self, part: str) -> np.ndarray:
        """(subjects, 4) uint64: each subject's stream for ``part`` as a PCG64 state
        before any draw, for compiled draws (:func:`ketasim.core.pcg64.seeded_states`)."""
        return seeded_states(self.seed, self.stream_keys([part])[:, 0, :])

    def key(self, part: str | None = None) -> str:
        """The stream key of this assay (or of a named ``part``) in this region: a region
        other than the default has streams of its own."""
        key = part or self.assay
        return key if self.region == DEFAULT_REGION else f"{self.region}/{key}"

    def rows(self, values: np.ndarray, at: np.ndarray, readouts, units) -> AssayRows:
        return AssayRows.from_grid(values, at, list(readouts), list(units), self.subjects)

    def keep(self, key: str, value) -> None:
        self.kept[key] = value


def same_times(at: np.ndarray, options: dict) -> np.ndarray:
    return np.asarray(at, dtype=float)


#: who an assay is done in (``Assay.species``) or a stressor given to
HUMANS = ("human",)
RODENTS = ("mouse", "rat")


@dataclass(frozen=True)
class Assay:
    name: str
    description: str
    readouts: tuple[Readout, ...]
    measure: Callable[[AssayContext, np.ndarray], AssayRows]
    outputs: tuple[str, ...] = ()  # signalling outputs needed
    sample_times: Callable[[np.ndarray, dict], np.ndarray] = same_times
    options: dict = field(default_factory=dict)  # allowed options and defaults
    # defaults of some options that differ by species ({species: {option: default}}; the
    # option itself is one of ``options``, whose default the other species keep)
    species_options: dict = field(default_factory=dict)
    positive: tuple[str, ...] = ()  # numeric options that must be > 0 (counts, durations)
    fractions: tuple[str, ...] = ()  # numeric options that must lie in [0, 1]
    # numeric options with a smallest allowed value (inclusive), where the measurement
    # needs more than > 0 (a bin of at least one second, a trial long enough to escape in)
    minimum: dict = field(default_factory=dict)
    # a check across options (one option against another): f(options) -> None, or
    # (option name, what is expected) naming the option at fault
    check: Callable[[dict], tuple[str, str] | None] | None = None
    choices: dict = field(default_factory=dict)  # name options: their allowed values
    reads: tuple[str, ...] = ()  # later layers: "spines", "circuit"
    # report figures: f(kept: {arm: kept dict}, folder) -> [(title, file name)]
    figures: tuple[Callable, ...] = ()
    # files beside the readouts: {file name: f(kept: {arm: kept dict}, path)}
    artifacts: dict = field(default_factory=dict)
    # combine the kept dicts of one arm's subject chunks (default: concatenate tables)
    merge_kept: Callable[[list[dict]], dict] | None = None
    # the brain regions the assay can measure (ketasim.core.regions)
    regions: tuple[str, ...] = (DEFAULT_REGION,)
    # in vivo imaging that acts on what it images: its sessions are its times, each
    # lasting the option ``session_min`` on the option ``branches`` first branches (the
    # spine layer removes spines with the registry's imaging.two_photon.* loss)
    images_in_vivo: bool = False
    # the measurement ends the animal or its tissue (a brain homogenate, a blot, a slice,
    # fixed tissue): each time point is its own animals in a real study, so a subject's
    # change between two times of such an assay is no comparison a lab could make
    terminal: bool = False
    # the species it is done in (a clinical scale in patients, a forced-choice test or
    # slice physiology in rodents); a scenario of another species is refused
    species: tuple[str, ...] = ("mouse", "rat", "human")

    def __post_init__(self):
        if not self.regions or any(r not in KNOWN_REGIONS for r in self.regions):
            raise ValueError(f"assay {self.name!r}: regions {self.regions}; expected some "
                             f"of {KNOWN_REGIONS}")
        odd = [k for d in self.species_options.values() for k in d if k not in self.options]
        if odd:
            raise ValueError(f"assay {self.name!r}: species_options {odd}; expected options "
                             f"of {sorted(self.options)}")
        bad = [r for r in self.reads if r not in LAYERS]
        if bad:
            raise ValueError(f"assay {self.name!r}: reads {bad}; expected layers from "
                             f"{LAYERS}")
        unknown = [k for k in (*self.positive, *self.fractions, *self.choices,
                               *self.minimum) if k not in self.options]
        if unknown:
            raise ValueError(f"assay {self.name!r}: range given for unknown options "
                             f"{unknown}")
        if not self.readouts:
            raise ValueError(f"assay {self.name!r} declares no readouts")

    @property
    def readout_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.readouts)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(r.unit for r in self.readouts)

    @property
    def needs_spines(self) -> bool:
        return bool(self.reads)  # the circuit reads the spine layer

    def option_schema(self) -> dict:
        """JSON Schema of the ``options`` mapping (types, ranges, defaults)."""
        props = {}
        for k, default in self.options.items():
            if isinstance(default, bool):
                props[k] = {"type": "boolean"}
            elif isinstance(default, str):
                props[k] = {"type": "string"}
                if k in self.choices:
                    props[k]["enum"] = list(self.choices[k])
            else:
                props[k] = {"type": "integer" if isinstance(default, int) else "number",
                            "minimum": 0}
                if k in self.positive:
                    props[k] = {**props[k], "exclusiveMinimum": 0}
                    del props[k]["minimum"]
                if k in self.fractions:
                    props[k]["maximum"] = 1
                if k in self.minimum:
                    props[k].pop("exclusiveMinimum", None)
                    props[k]["minimum"] = self.minimum[k]
            props[k]["default"] = default
        return {"type": "object", "properties": props, "additionalProperties": False}


class AssayOptionError(ValueError):
    """An assay option is unknown or has a wrong value."""


def resolve_options(assay: Assay, given: dict, where: str, species: str | None = None
                    ) -> dict:
    """The assay's options: its defaults (the species' own where it has them,
    :attr:`Assay.species_options`) with the scenario's ``given`` ones, each checked; one
    :class:`AssayOptionError` naming ``where`` and the option for a bad one."""
    out = dict(assay.options) | dict(assay.species_options.get(species, {}))
    for k, v in (given or {}).items():
        if k not in assay.options:
            raise AssayOptionError(
                f"{where}.options.{k}: got {v!r}; expected one of {sorted(assay.options)} "
                f"for assay {assay.name!r}")
        default = assay.options[k]
        if isinstance(default, str) and not isinstance(v, str):
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a name")
        if isinstance(default, list):
            ok = isinstance(v, list) and v and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)
                and x > 0 for x in v) and all(a < b for a, b in pairwise(v))
            if not ok:
                raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a list of "
                                       "increasing numbers > 0")
            out[k] = [float(x) for x in v]
            continue
        if k in assay.choices and v not in assay.choices[k]:
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected one of "
                                   f"{list(assay.choices[k])}")
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
        if k in assay.minimum and not v >= assay.minimum[k]:
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a number >= "
                                   f"{assay.minimum[k]:g}")
        if isinstance(default, int) and not isinstance(default, bool) and v != int(v):
            raise AssayOptionError(f"{where}.options.{k}: got {v!r}; expected a whole number")
        out[k] = v
    if assay.check is not None:
        bad = assay.check(out)
        if bad is not None:
            raise AssayOptionError(f"{where}.options.{bad[0]}: got {out[bad[0]]!r}; "
                                   f"expected {bad[1]}")
    return out
