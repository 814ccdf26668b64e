"""Parameter sweeps: one scenario, many samples, each sample one full run, in chunks on
Dask (a local cluster, a running scheduler) or any ``concurrent.futures`` executor.

Names
-----
A sample sets values by name (the columns of the samples table):

``sig.k_potentiation_off``         a parameter of the registry (``ketasim params``); the
                                   value must be finite and lie within the parameter's
                                   range ``[low, high]`` (the plausible range calibration
                                   and sensitivity analyses use)
``arms[NAME].n``                   an arm's number of subjects (a whole number, 1 to 100000)
``arms[NAME].protocol[i].dose``    the dose of the arm's ``i``-th protocol event (a drug
                                   event with a dose), as a number in the dose's canonical
                                   unit as validated: mg/kg for per-weight doses (a file's
                                   ``500 ug/kg`` is 0.5), mg for absolute doses, uM for bath
                                   concentrations; the unit itself never changes
``arms[NAME].protocol[i].at``      the time of that event, in hours

``i`` counts the events in time order (the order a validated scenario stores them, which
is the file's order when the file lists them by time). ``arms[*]`` sets the field in
every arm that has it: every arm for ``n``; every arm with a ``protocol[i]`` for ``at``;
every arm whose ``protocol[i]`` is a drug event with a dose for ``dose`` (a saline event
without a dose is left as it is). A changed scenario is validated again (doses above zero
except saline, protocol overlaps, times within 365 days, a design's randomisation ratio),
and a bad value is one :class:`SweepError` naming the sample, the name and the value. Every
sample is checked so (each value on its own, then each distinct combination of a sample's
scenario fields by validating the changed scenario) before anything is written or
computed.

Seeds
-----
Sample ``k`` runs with seed :func:`sample_seed` ``(base, k)`` (``SeedSequence(base,
spawn_key=(k,))``), ``base`` being the ``seed`` argument or else the scenario's seed: a
function of the base seed and the sample's index only, never of the worker, the chunk or
the order of work. Two samples with equal values are two independent replicates. With
``common_seed`` every sample runs at ``base`` itself (common random numbers, as a
sensitivity analysis needs): samples then differ by their values only, and two samples
with equal values give the same numbers. The manifest's ``seed_rule`` says which.

Folder
------
``run_sweep(..., out)`` writes ``samples.parquet`` (``sample`` and the names) and
``manifest.json`` (scenario text, model and hash, names, number of samples, their hash,
seed, registry digest and changed values, compound files: ``compounds``, the name and
sha256 of every file of the ``compounds`` folders, and ``compound_folders``, outputs,
columns, chunk size, versions) first,
then one Parquet file per chunk of samples, ``chunks/part-<first>-<last>.parquet``
(zero-padded sample indices), each written to a temporary name in ``chunks/`` and renamed
into place (``os.replace``) once complete. A part holds, for each of its samples in
order, ``sample``, the sample's values (int64 for ``.n``, else float64), then either the
summary of that run's readouts (``outputs="summary"``, :func:`ketasim.analysis.stats.
summarize`: ``arm, assay, [region,] readout, time_h, unit, n, mean, sem``) or its
readouts themselves (``outputs="readouts"``: ``arm, subject, assay, readout, time_h,
value, unit[, region]``); ``region`` only when the scenario measures a region other than
the default. Parts (and ``samples.parquet``) are written with a fixed schema, no pandas
metadata and Parquet's page checksums (a CRC-32 of every page, verified whenever a part is
read back), so the same samples give the same bytes whatever the backend and the number of
workers; different chunk sizes give other part files but the same table
(:func:`read_sweep`, which checks every part as a resume does: a part that fails, or
holds samples another part holds too, is a :class:`SweepError`).

Resume
------
Running again with the same folder, scenario, samples, seed, seed rule, registry,
compound files (their contents, wherever the folders are) and outputs skips every sample
a complete part already holds (a part is complete when it reads back with its page
checksums verified, the expected schema, exactly its samples, in order, with their
values) and computes the others (in chunks of the size given now, else the manifest's);
left-over temporary files and incomplete parts are removed. A folder holding another
sweep (a different scenario, samples, seed, seed rule, registry, compound files or
outputs) is one :class:`SweepError`. One run at a time per folder.

Backends
--------
``executor`` (a ``concurrent.futures.Executor``, e.g. a ``ProcessPoolExecutor`` with the
``spawn`` context, or a ``distributed.Client``), else ``scheduler`` (``tcp://host:port``,
or a Dask scheduler file), else an embedded ``distributed.LocalCluster`` of ``workers``
processes (default: the number of cores) with one thread each and Dask's statistical
profiler off (:data:`LOCAL_CLUSTER_CONFIG`; about 5% of the compute time otherwise; set
``distributed.worker.profile.enabled: false`` on a cluster of your own), closed at the
end. Each task evaluates one chunk: it calls :func:`ketasim.configure` (numba's kernel
cache; one numba thread), registers the ``compounds`` folders and then unpickles the
scenario and the registry, so a fresh worker uses the compiled kernels on disk. A task
carries the digest of each folder's files as the sweep read them: a worker registers a
folder again whenever that digest changes (a worker reused by a later sweep after a
compound file was edited), and files that differ from the digest are a
:class:`SweepError`. Results come back to this process, which writes the parts: workers
need no access to ``out``. Dask reschedules a chunk whose worker died.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import importlib
import itertools
import json
import logging
import math
import os
import pickle
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import ketasim
from ketasim.analysis.stats import summarize
from ketasim.core.regions import DEFAULT_REGION
from ketasim.io.results import json_text
from ketasim.params import Registry, load_registry
from ketasim.pk.compounds import add_compounds
from ketasim.provenance import (
    LIBRARIES,
    changed_values,
    git_state,
    libraries,
    registry_digest,
    sha256_file,
    utc_now,
)

__all__ = ["SweepError", "apply_sample", "check_names", "parse_vary", "read_samples",
           "read_sweep", "run_sweep", "sample_seed"]

FORMAT = "ketasim-sweep/1"
#: a default chunk holds about this much work (one sample is timed first)
CHUNK_TARGET_S = 1.0
#: the largest number of samples a sweep may have
MAX_SAMPLES = 10_000_000
MAX_SUBJECTS = 100_000  # an arm's n (the scenario's own limit)
OUTPUTS = ("summary", "readouts")
RANGE_RTOL = 1e-9  # registry ranges are checked with this relative tolerance
#: Dask settings of the embedded local cluster: no statistical profiler in the workers
#: (sampling the task thread every 10 ms costs about 5% of a sweep's compute time)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}

_TYPES = {"arm": pa.string(), "subject": pa.int64(), "assay": pa.string(),
          "region": pa.string(), "readout": pa.string(), "time_h": pa.float64(),
          "value": pa.float64(), "unit": pa.string(), "n": pa.int64(), "mean": pa.float64(),
          "sem": pa.float64()}
_RESERVED = frozenset(["sample", *_TYPES])
_FIELD_RE = re.compile(
    r"arms\[(?P<arm>[^\[\]]+)\]\.(?:(?P<n>n)|protocol\[(?P<index>\d+)\]\.(?P<field>dose|at))")
_FIELDS_EXPECTED = ("arms[NAME].n, arms[NAME].protocol[i].dose or arms[NAME].protocol[i].at "
                    "(NAME an arm's name or *)")
_PART_RE = re.compile(r"part-(\d+)-(\d+)\.parquet")
_TMP_MARK = ".tmp-"


class SweepError(ValueError):
    """A sweep that cannot run: bad names, values, samples files or output folder; one
    line naming the culprit."""


# --------------------------------------------------------------------------- #
# Samples: --vary grids and sample files
# --------------------------------------------------------------------------- #


def _is_n(name: str) -> bool:
    return name.startswith("arms[") and name.endswith("].n")


def _number(text: str) -> float | None:
    """A finite number written as text, else None."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _plain(value: object) -> object:
    """A numpy scalar as the Python number it holds (``1.0``, not ``np.float64(1.0)``, in
    messages); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def _whole_n(col: np.ndarray) -> np.ndarray:
    """Which values are an arm's number of subjects: whole numbers from 1 to
    ``MAX_SUBJECTS`` (so that casting them to int64 is exact)."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(col) & (col == np.round(col)) & (col >= 1)
                & (col <= MAX_SUBJECTS))


def _typed(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Float64 columns, int64 for an arm's ``n`` (whole numbers from 1 to
    ``MAX_SUBJECTS``, checked before the cast: a bad one is named with its row, counted
    from 1, and its value)."""
    out = {}
    for name in frame.columns:
        col = frame[name].to_numpy(dtype=float, na_value=np.nan)
        if _is_n(name):
            bad = np.flatnonzero(~_whole_n(col))
            if bad.size:
                r = int(bad[0])
                raise SweepError(f"{where}: row {r + 1}, column {name!r}: got "
                                 f"{float(col[r])!r}; expected a whole number of subjects "
                                 f"from 1 to {MAX_SUBJECTS}")
            col = col.astype(np.int64)
        out[name] = col
    return pd.DataFrame(out, columns=list(frame.columns))


def parse_vary(specs: Sequence[str] | str) -> pd.DataFrame:
    """The full grid of ``--vary`` specs, one row per sample, one column per name.

    Each spec is ``NAME=LO:HI:N`` (``N >= 1`` evenly spaced values from ``LO`` to ``HI``,
    as ``numpy.linspace``) or ``NAME=v1,v2,...`` (one value is a list of one). Several
    specs give their cartesian product, the first spec varying slowest. Names are checked
    against a scenario and a registry later (:func:`check_names`); values are float64,
    int64 for an arm's ``n`` (a whole number from 1 to ``MAX_SUBJECTS``). A bad spec is
    one :class:`SweepError` naming it (a bad ``n``: its row of the grid and its value)."""
    if isinstance(specs, str):
        specs = [specs]
    specs = list(specs)
    if not specs:
        raise SweepError("--vary: nothing to vary; expected NAME=LO:HI:N or NAME=v1,v2,...")
    axes: dict[str, list[float]] = {}
    for spec in specs:
        axes_name, values = _parse_spec(spec)
        if axes_name in axes:
            raise SweepError(f"--vary {spec!r}: {axes_name} is varied twice; give its values "
                             "in one --vary")
        axes[axes_name] = values
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_SAMPLES:
        raise SweepError(f"--vary: the grid has {size} samples; expected at most {MAX_SAMPLES}")
    grid = list(itertools.product(*axes.values()))
    frame = pd.DataFrame(grid, columns=list(axes), dtype=float)
    return _typed(frame, "--vary")


def _parse_spec(spec: object) -> tuple[str, list[float]]:
    expected = ("expected NAME=LO:HI:N (N >= 1 evenly spaced values from LO to HI) or "
                "NAME=v1,v2,... (numbers)")
    if not isinstance(spec, str):
        raise SweepError(f"--vary {spec!r}: {expected}")
    name, sep, rhs = spec.partition("=")
    name, rhs = name.strip(), rhs.strip()
    if not sep or not name or not rhs:
        raise SweepError(f"--vary {spec!r}: {expected}")
    if ":" in rhs:
        parts = rhs.split(":")
        if len(parts) != 3:
            raise SweepError(f"--vary {spec!r}: got {len(parts)} fields after '='; {expected}")
        lo, hi = _number(parts[0]), _number(parts[1])
        count = parts[2].strip()
        if lo is None or hi is None or not count.isdigit() or int(count) < 1:
            raise SweepError(f"--vary {spec!r}: {expected}")
        n = int(count)
        if n > MAX_SAMPLES:
            raise SweepError(f"--vary {spec!r}: got N = {n}; expected at most {MAX_SAMPLES}")
        return name, np.linspace(lo, hi, n).tolist()
    values = [_number(p) for p in rhs.split(",")]
    if any(v is None for v in values):
        bad = rhs.split(",")[[v is None for v in values].index(True)]
        raise SweepError(f"--vary {spec!r}: got {bad.strip()!r}; {expected}")
    return name, values


def read_samples(path: str | os.PathLike) -> pd.DataFrame:
    """The samples of a ``.csv`` (header row of names) or ``.parquet`` file: one row per
    sample, one numeric column per name (float64; int64 for an arm's ``n``, a whole number
    from 1 to ``MAX_SUBJECTS``). Every cell must be a finite number; a CSV file is UTF-8
    (a byte order mark, as Excel writes one, is skipped); a ``sample`` column (as in a
    sweep's ``samples.parquet``) must be 0, 1, 2, ... and is dropped. Problems are one
    :class:`SweepError` naming the file, the row (CSV: the line) and the column."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such file; expected a .csv or .parquet samples file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = _read_csv(path)
    elif suffix in (".parquet", ".pq"):
        frame = _read_parquet(path)
    else:
        raise SweepError(f"{path}: got a {suffix or 'extensionless'} file; expected a .csv "
                         "or .parquet samples file")
    if "sample" in frame.columns:
        s = frame.pop("sample").to_numpy(float)
        bad = np.flatnonzero(s != np.arange(len(s)))
        if bad.size:
            raise SweepError(f"{path}: row {bad[0] + 1}, column 'sample': got "
                             f"{float(s[bad[0]])!r}; expected {bad[0]} (samples numbered "
                             "0, 1, 2, ... in order)")
    if frame.shape[1] == 0:
        raise SweepError(f"{path}: no columns to vary; expected one column per name")
    return _typed(frame, str(path))


def _check_header(path: Path, names: list[str]) -> None:
    if not names:
        raise SweepError(f"{path}: no columns; expected a header of names")
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise SweepError(f"{path}: column {k + 1}: got {name!r}; expected a name without "
                             "surrounding spaces")
        if name in names[:k]:
            raise SweepError(f"{path}: column {k + 1}: {name!r} appears twice")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the first name
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SweepError(f"{path}: cannot read it as CSV ({e})") from None
    if not rows:
        raise SweepError(f"{path}: empty; expected a header of names and one row per sample")
    header = rows[0]
    _check_header(path, header)
    data = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue  # a blank line
        if len(row) != len(header):
            raise SweepError(f"{path}: line {line}: got {len(row)} fields; expected "
                             f"{len(header)} (one per column)")
        values = []
        for name, cell in zip(header, row, strict=True):
            v = _number(cell)
            if v is None:
                raise SweepError(f"{path}: line {line}, column {name!r}: got {cell!r}; "
                                 "expected a finite number")
            values.append(v)
        data.append(values)
    if not data:
        raise SweepError(f"{path}: no samples; expected one row per sample after the header")
    return pd.DataFrame(data, columns=header, dtype=float)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = _read_parquet_checked(path)
    except (OSError, pa.ArrowException) as e:
        raise SweepError(f"{path}: cannot read it as Parquet ({e})") from None
    _check_header(path, table.column_names)
    if table.num_rows == 0:
        raise SweepError(f"{path}: no samples; expected one row per sample")
    out = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            raise SweepError(f"{path}: column {name!r}: got type {t}; expected numbers")
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise SweepError(f"{path}: row {row + 1}, column {name!r}: got a missing value; "
                             "expected a finite number")
        values = col.to_numpy().astype(float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise SweepError(f"{path}: row {bad[0] + 1}, column {name!r}: got "
                             f"{float(values[bad[0]])!r}; expected a finite number")
        out[name] = values
    return pd.DataFrame(out, columns=table.column_names)


# --------------------------------------------------------------------------- #
# Names and values
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Target:
    """What a name sets: a registry parameter, or a field of some arms."""

    name: str
    kind: str  # "param", "n", "dose" or "at"
    arms: tuple[int, ...] = ()
    index: int = -1


def _event_text(event) -> str:
    if event.kind == "drug":
        return f"a {event.drug} event without a dose"
    if event.kind == "stress":
        return f"a {event.stress!r} stress event"
    return f"a {event.intervention!r} intervention event"


def _resolve(scenario, registry: Registry, name: object) -> _Target:
    if not isinstance(name, str) or not name:
        raise SweepError(f"name {name!r}: expected a registry parameter or a scenario field: "
                         f"{_FIELDS_EXPECTED}")
    if name in _RESERVED:
        raise SweepError(f"name {name!r}: an output column of the sweep; expected a registry "
                         f"parameter or a scenario field: {_FIELDS_EXPECTED}")
    if name.startswith("arms["):
        return _resolve_field(scenario, name)
    if name in registry:
        return _Target(name, "param")
    close = difflib.get_close_matches(name, list(registry.parameters), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SweepError(f"name {name!r}: not a parameter of the registry{hint}; expected a "
                     f"registry parameter (ketasim params) or a scenario field: "
                     f"{_FIELDS_EXPECTED}")


def _resolve_field(scenario, name: str) -> _Target:
    m = _FIELD_RE.fullmatch(name)
    if m is None:
        raise SweepError(f"name {name!r}: not a field a sweep can set; expected "
                         f"{_FIELDS_EXPECTED}")
    arm = m["arm"]
    arm_names = list(scenario.arm_names)
    if arm == "*":
        candidates = range(len(arm_names))
    elif arm in arm_names:
        candidates = [arm_names.index(arm)]
    else:
        raise SweepError(f"name {name!r}: scenario {scenario.name!r} has no arm {arm!r}; "
                         f"its arms: {', '.join(arm_names)}")
    if m["n"]:
        return _Target(name, "n", tuple(candidates))
    i, field = int(m["index"]), m["field"]
    chosen = []
    for a in candidates:
        protocol = scenario.arms[a].protocol
        if i >= len(protocol):
            if arm != "*":
                raise SweepError(f"name {name!r}: arm {arm!r} has {len(protocol)} protocol "
                                 f"events; expected an index from 0 to {len(protocol) - 1} "
                                 "(events in time order)")
            continue
        event = protocol[i]
        if field == "dose" and (event.kind != "drug" or event.dose is None):
            if arm != "*":
                raise SweepError(f"name {name!r}: protocol[{i}] of arm {arm!r} is "
                                 f"{_event_text(event)}; expected a drug event with a dose")
            continue
        chosen.append(a)
    if not chosen:
        what = "a drug event with a dose" if field == "dose" else "an event"
        raise SweepError(f"name {name!r}: no arm has {what} at protocol[{i}]")
    return _Target(name, field, tuple(chosen), i)


def _targets(scenario, registry: Registry, names: Iterable[str]) -> list[_Target]:
    names = list(names)
    if not names:
        raise SweepError("no names to vary; expected registry parameters or scenario fields")
    targets = []
    claimed: dict[tuple, str] = {}
    for name in names:
        if name in (t.name for t in targets):
            raise SweepError(f"name {name!r} appears twice")
        t = _resolve(scenario, registry, name)
        keys = [("param", name)] if t.kind == "param" else [(t.kind, a, t.index) for a in t.arms]
        for key in keys:
            if key in claimed:
                raise SweepError(f"name {name!r}: sets the same field as {claimed[key]!r}; "
                                 "expected each field set by one name")
            claimed[key] = name
        targets.append(t)
    return targets


def check_names(scenario, registry: Registry | None, names: Iterable[str]) -> None:
    """Every name is a registry parameter or a field of the scenario a sweep can set (see
    the module's docstring), given once and setting distinct fields; else one
    :class:`SweepError` naming the first bad name."""
    _targets(scenario, load_registry() if registry is None else registry, names)


def _in_range(v, p):
    """Within the parameter's range, give or take rounding (a value sampled on a log scale
    and exponentiated back may land an ulp outside)."""
    return (v >= p.low - RANGE_RTOL * abs(p.low)) & (v <= p.high + RANGE_RTOL * abs(p.high))


def _value(registry: Registry, t: _Target, value: object):
    """The value a target takes (float; int for n), checked on its own."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise SweepError(f"{t.name}: got {_plain(value)!r}; expected a number")
    v = float(value)
    if not math.isfinite(v):
        raise SweepError(f"{t.name}: got {v!r}; expected a finite number")
    if t.kind == "param":
        p = registry[t.name]
        if not _in_range(v, p):
            raise SweepError(f"{t.name}: got {v!r}; expected a value within the parameter's "
                             f"range [{p.low:g}, {p.high:g}] {p.unit}")
        return v
    if t.kind == "n":
        if v != round(v) or not 1 <= v <= MAX_SUBJECTS:
            raise SweepError(f"{t.name}: got {v!r}; expected a whole number of subjects from "
                             f"1 to {MAX_SUBJECTS}")
        return int(v)
    if t.kind == "dose" and v < 0:
        raise SweepError(f"{t.name}: got {v!r}; expected a dose >= 0")
    return v


def _validation_text(err, where: str = "") -> str:
    """The first problem of a pydantic ValidationError, in one line, at ``where``."""
    e = err.errors()[0]
    ctx = e.get("ctx") or {}
    loc = [*e.get("loc", ()), *ctx.get("subloc", ())]
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    what = ctx.get("expected") or e.get("msg", "a valid value")
    return f"{where}: expected {what}" if where else f"expected {what}"


def apply_sample(scenario, registry: Registry | None, row: dict) -> tuple:
    """``(scenario, registry)`` with the sample ``row`` (name -> value) applied; the inputs
    are not changed (both are immutable; the result shares what did not change). The
    changed scenario is validated again; a bad name or value is one :class:`SweepError`."""
    registry = load_registry() if registry is None else registry
    targets = _targets(scenario, registry, list(row))
    return _apply(scenario, registry, targets, [row[t.name] for t in targets])


def _apply(scenario, registry: Registry, targets: list[_Target], values: Sequence):
    values = [_value(registry, t, v) for t, v in zip(targets, values, strict=True)]
    params = {t.name: v for t, v in zip(targets, values, strict=True) if t.kind == "param"}
    new_registry = registry.with_values(params) if params else registry
    changes: dict[int, dict] = {}
    for t, v in zip(targets, values, strict=True):
        for a in t.arms:
            ch = changes.setdefault(a, {"events": {}})
            if t.kind == "n":
                ch["n"] = v
            else:
                ch["events"].setdefault(t.index, {})[t.kind] = v
    if not changes:
        return scenario, new_registry
    # the scenario models import the assay catalogue (jitted modules): imported here, after
    # ketasim.configure() (numba reads its cache folder when they are first imported)
    from pydantic import ValidationError

    from ketasim.scenario import Arm, Dose, Scenario, format_time

    shown = ", ".join(f"{t.name}={v!r}" for t, v in zip(targets, values, strict=True)
                      if t.kind != "param")
    arms = list(scenario.arms)
    where = ""
    try:
        for a, ch in changes.items():
            arm = arms[a]
            protocol = list(arm.protocol)
            for i, fields in ch["events"].items():
                where = f"arms[{arm.name}].protocol[{i}]"
                protocol[i] = _rebuild_event(protocol[i], fields, Dose, format_time)
            where = f"arms[{arm.name}]"
            data = {k: getattr(arm, k) for k in arm.model_fields_set if k != "body_weight"}
            data["protocol"] = protocol
            if "n" in ch:
                data["n"] = ch["n"]
            new = Arm.model_validate(data)
            if "body_weight" in arm.model_fields_set:  # kg, already validated
                new = new.model_copy(update={"body_weight": arm.body_weight})
            arms[a] = new
        where = ""
        data = {k: getattr(scenario, k) for k in scenario.model_fields_set}
        data["arms"] = arms
        return Scenario.model_validate(data), new_registry
    except ValidationError as e:
        raise SweepError(f"{shown}: {_validation_text(e, where)}") from None


def _rebuild_event(event, fields: dict, dose_type, format_time):
    """The event with a new ``at`` (hours) and/or dose value, validated again."""
    data = {k: getattr(event, k) for k in event.model_fields_set}
    for key in ("at", "duration", "over"):  # hours -> exact time strings for the validator
        if data.get(key) is not None:
            data[key] = format_time(data[key])
    if "at" in fields:
        data["at"] = format_time(fields["at"])
    if "dose" in fields:
        data["dose"] = dose_type(value=fields["dose"], unit=event.dose.unit)
    return type(event).model_validate(data)


def sample_seed(seed: int, sample: int) -> int:
    """The seed of sample ``sample`` of a sweep with base seed ``seed``: from
    ``SeedSequence(seed, spawn_key=(sample,))``, in ``[0, 2**63)``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(sample),)).generate_state(
        1, np.uint64)
    return int(state[0] >> np.uint64(1))


# --------------------------------------------------------------------------- #
# Evaluating chunks (in the workers)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Job:
    """What a worker needs, pickled once: the scenario, the registry (None: the packaged
    default; a dict: values changed from it), the names, the base seed, the outputs."""

    scenario: object
    registry: object
    names: tuple[str, ...]
    seed: int
    outputs: str
    columns: tuple[str, ...]  # the output columns after ``sample`` and the names
    regional: bool
    # every sample at the base seed (common random numbers: a sensitivity analysis's
    # samples then differ by their parameters only), else sample_seed(seed, k)
    common_seed: bool = False


def _pack_registry(registry: Registry):
    default = load_registry()
    if registry is default:
        return None
    if list(registry.parameters) == list(default.parameters) and all(
            replace(p, value=default[p.name].value) == default[p.name] for p in registry):
        return {p.name: p.value for p in registry if p.value != default[p.name].value}
    return registry


def _unpack_registry(packed) -> Registry:
    if packed is None:
        return load_registry()
    if isinstance(packed, dict):
        return load_registry().with_values(packed) if packed else load_registry()
    return packed


def _output_columns(outputs: str, regional: bool) -> tuple[str, ...]:
    if outputs == "summary":
        return ("arm", "assay", *(["region"] if regional else []), "readout", "time_h", "unit",
                "n", "mean", "sem")
    return ("arm", "subject", "assay", "readout", "time_h", "value", "unit",
            *(["region"] if regional else []))


def _evaluate(job: _Job, first: int, rows: Sequence[Sequence]) -> pd.DataFrame:
    """The output rows of samples ``first, first + 1, ...`` (values ``rows``)."""
    # the runner imports the jitted modules: after ketasim.configure() (see _run_chunk)
    from ketasim.experiment.runner import simulate

    registry = _unpack_registry(job.registry)
    targets = _targets(job.scenario, registry, job.names)
    frames = []
    for k, row in enumerate(rows):
        sample = first + k
        try:
            scenario, reg = _apply(job.scenario, registry, targets, row)
        except SweepError as e:
            raise SweepError(f"sample {sample}: {e}") from None
        readouts = simulate(scenario, seed=(job.seed if job.common_seed
                                            else sample_seed(job.seed, sample)),
                            registry=reg).readouts
        if job.regional and "region" not in readouts.columns:
            readouts = readouts.assign(region=DEFAULT_REGION)
        elif not job.regional and "region" in readouts.columns:
            readouts = readouts.drop(columns="region")
        table = summarize(readouts) if job.outputs == "summary" else readouts
        m = len(table)
        cols = {"sample": np.full(m, sample, dtype=np.int64)}
        for name, v in zip(job.names, row, strict=True):
            cols[name] = np.full(m, v, dtype=np.int64 if _is_n(name) else np.float64)
        for c in job.columns:
            cols[c] = table[c].to_numpy()
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


_PROCESS_JOB: dict[str, _Job] = {}
#: compounds folder -> the digest of the files this process registered from it
_PROCESS_COMPOUNDS: dict[str, str] = {}
_PROCESS_LOCK = threading.Lock()  # a thread pool's workers share this process's registry


def _compound_records(folder: str) -> list[dict]:
    """``[{"name", "sha256"}]`` of the compound files :func:`ketasim.pk.compounds.
    add_compounds` reads in ``folder`` (its ``*.yaml`` then ``*.yml`` files, sorted, as
    ``load_compound_dir`` lists them; a compound file is named after its compound)."""
    p = Path(folder)
    files = (sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))) if p.is_dir() else []
    return [{"name": f.stem, "sha256": sha256_file(f)} for f in files]


def _records_digest(records: list[dict]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def _register_compounds(folder: str, expected: str | None = None) -> list[dict]:
    """Register the compound files of ``folder`` (again: a file's new definition replaces
    the old one) and return their records (:func:`_compound_records`); one
    :class:`SweepError` when the files change while they are read or differ from those
    of digest ``expected``."""
    records = _compound_records(folder)
    if expected is not None and _records_digest(records) != expected:
        raise SweepError(f"compounds {folder}: the compound files here differ from those "
                         "the sweep started with (edited since, or another folder by that "
                         "name on this worker's machine); expected the same files")
    add_compounds(folder)
    if _compound_records(folder) != records:
        raise SweepError(f"compounds {folder}: the compound files changed while they were "
                         "read; run the sweep again")
    return records


def _run_chunk(compounds: tuple[tuple[str, str], ...], digest: str, blob: bytes,
               first: int, rows: list[tuple]) -> pd.DataFrame:
    """One task: prepare this worker (:func:`_prepare_worker`), unpickle the job (once
    per process), evaluate the chunk."""
    _prepare_worker(compounds)
    job = _PROCESS_JOB.get(digest)
    if job is None:
        job = pickle.loads(blob)
        _PROCESS_JOB.clear()
        _PROCESS_JOB[digest] = job
    return _evaluate(job, first, rows)


def _prepare_worker(compounds: tuple[tuple[str, str], ...]) -> None:
    """Configure ketasim in this process (numba's kernel cache, one numba thread for this
    thread) and register the user's compounds: ``(folder, digest)`` pairs, the digest of
    the folder's files (:func:`_compound_records`) as the sweep read them. A folder is
    registered again whenever its digest differs from the one this process registered
    (a worker reused by a later sweep after a compound file was edited), and its files
    must have that digest."""
    if not ketasim._configured:
        ketasim.configure()
    # after configure(): numba reads NUMBA_CACHE_DIR when first imported. (Not an import
    # statement: ketasim._jitcache keys the kernel cache by every module that imports
    # numba, and this one holds no jitted code.)
    numba = importlib.import_module("numba")
    numba.set_num_threads(1)  # parallelism comes from the workers (per thread in numba)
    with _PROCESS_LOCK:
        for folder, digest in compounds:
            if _PROCESS_COMPOUNDS.get(folder) != digest:
                _register_compounds(folder, digest)
                _PROCESS_COMPOUNDS[folder] = digest


def _remote_call(compounds: tuple[tuple[str, str], ...], fn: str, blob: bytes):
    """One task of :func:`dask_map`: ``fn(*args)`` on a prepared worker. ``fn`` comes as
    ``module:name`` and the arguments as a pickle, both resolved after ketasim is
    configured here (a module with jitted code must not be imported before: numba reads
    its cache folder then)."""
    _prepare_worker(compounds)
    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)(*pickle.loads(blob))


@contextlib.contextmanager
def dask_map(scheduler=None, workers: int | None = None, compounds: Sequence[str] = ()):
    """A ``map_tasks`` for :func:`ketasim.experiment.runner.simulate` (``ketasim run
    --scheduler``): ``map_tasks(fn, args_list, done=None)`` sends ``fn(*args)`` for every
    ``args`` to Dask and returns the results in order, calling ``done(k)`` as task k
    completes. ``scheduler``: a ``distributed.Client``,
    an address (``tcp://host:port``), a scheduler file, or ``"local"`` (or None) for an
    embedded ``LocalCluster`` of ``workers`` single-threaded processes (default: cores),
    closed on leaving. Workers configure ketasim and register ``compounds`` (folders)
    before their first task, and again when the folders' files changed, as a sweep's
    do."""
    if _is_dask_client(scheduler):
        backend = _Backend(scheduler, None, workers)
    else:
        backend = _Backend(None, None if scheduler in (None, "local") else scheduler,
                           workers)
    folders = tuple((f, _records_digest(_compound_records(f)))
                    for f in (str(Path(c).resolve()) for c in compounds))
    try:
        yield lambda fn, args_list, done=None: backend.map(fn, args_list, folders, done)
    finally:
        backend.close()


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _parquet_bytes(table: pa.Table) -> bytes:
    """The table as Parquet: zstd, no schema metadata, a CRC-32 checksum in every page's
    header (a function of the page's bytes: the same table gives the same bytes)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink, compression="zstd",
                   write_page_checksum=True)
    return sink.getvalue().to_pybytes()


def _read_parquet_checked(path: Path) -> pa.Table:
    """A Parquet file whose page checksums (where written) are verified."""
    return pq.read_table(path, page_checksum_verification=True)


def _schema(names: Sequence[str], columns: Sequence[str]) -> pa.Schema:
    return pa.schema([("sample", pa.int64())]
                     + [(n, pa.int64() if _is_n(n) else pa.float64()) for n in names]
                     + [(c, _TYPES[c]) for c in columns])


def _to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema,
                                preserve_index=False).replace_schema_metadata(None)


def _part_name(first: int, last: int, width: int) -> str:
    return f"part-{first:0{width}d}-{last:0{width}d}.parquet"


def _width(n: int) -> int:
    return max(6, len(str(max(n - 1, 0))))


def _samples_digest(samples: pd.DataFrame) -> str:
    h = hashlib.sha256(json.dumps(list(samples.columns)).encode())
    for name in samples.columns:
        col = samples[name].to_numpy()
        h.update(col.astype("<i8" if _is_n(name) else "<f8").tobytes())
    return h.hexdigest()


def _read_part(path: Path, first: int, last: int, schema: pa.Schema,
               samples: pd.DataFrame) -> tuple[pa.Table | None, str]:
    """``(table, "")`` when a part file is complete: readable with its page checksums
    verified, the schema, exactly samples ``first`` to ``last`` in order, with their
    values; else ``(None, what is wrong)``."""
    try:
        table = _read_parquet_checked(path)
    except (OSError, pa.ArrowException) as e:
        return None, f"cannot read it ({e})"
    if not table.schema.equals(schema):
        return None, "its columns or their types are not the sweep's"
    s = table.column("sample").to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(s) != 0]) if s.size else s
    if (s.size == 0 or s[0] != first or s[-1] != last or np.any(np.diff(s) < 0)
            or not np.array_equal(s[starts], np.arange(first, last + 1))):
        return None, f"expected samples {first} to {last} in order"
    for name in samples.columns:
        got = table.column(name).to_numpy()[starts]
        if not np.array_equal(got, samples[name].to_numpy()[first:last + 1]):
            return None, f"its values of {name} are not those of its samples"
    return table, ""


def _parts(chunks: Path) -> list[tuple[int, int, Path]]:
    """``(first, last, path)`` of the files named as parts, in that order."""
    out = []
    for path in (chunks.iterdir() if chunks.is_dir() else ()):
        m = _PART_RE.fullmatch(path.name)
        if m is not None:
            out.append((int(m[1]), int(m[2]), path))
    return sorted(out)


class _Cover:
    """Which samples the parts accepted so far hold, and which part holds each."""

    def __init__(self, n: int):
        self.done = np.zeros(n, dtype=bool)
        self._owner = np.full(n, -1, dtype=np.int32)  # at most MAX_SAMPLES parts
        self._names: list[str] = []

    def add(self, path: Path, first: int, last: int) -> None:
        """Samples ``first`` to ``last`` held by ``path``; one :class:`SweepError` when a
        part accepted before holds one of them too."""
        held = np.flatnonzero(self.done[first:last + 1])
        if held.size:
            other = self._names[self._owner[first + held[0]]]
            raise SweepError(f"{path}: holds samples that {other} holds too; remove one "
                             "of them")
        self.done[first:last + 1] = True
        self._owner[first:last + 1] = len(self._names)
        self._names.append(path.name)


def _scan(chunks: Path, schema: pa.Schema, samples: pd.DataFrame) -> np.ndarray:
    """Which samples complete parts already hold; incomplete parts and left-over temporary
    files are removed."""
    for path in chunks.iterdir():
        if path.name.startswith(".part-") and _TMP_MARK in path.name:
            path.unlink(missing_ok=True)  # a killed run's half-written part
    n = len(samples)
    cover = _Cover(n)
    for first, last, path in _parts(chunks):
        if not (0 <= first <= last < n) or _read_part(path, first, last, schema,
                                                        samples)[0] is None:
            path.unlink(missing_ok=True)
            continue
        cover.add(path, first, last)
    return cover.done


def _chunks(todo: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(first, last) of chunks of at most ``size`` consecutive samples to compute."""
    out = []
    idx = np.flatnonzero(todo)
    if idx.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    for run in np.split(idx, breaks):
        for k in range(0, run.size, size):
            piece = run[k:k + size]
            out.append((int(piece[0]), int(piece[-1])))
    return out


# --------------------------------------------------------------------------- #
# Backends
# --------------------------------------------------------------------------- #


class _Backend:
    """Submit chunk tasks and yield them as they complete."""

    def __init__(self, executor, scheduler, workers):
        self._close = []
        self._dask = None
        if executor is not None:
            if _is_dask_client(executor):
                self._dask = executor
            elif isinstance(executor, Executor):
                self._executor = executor
            else:
                raise TypeError(f"executor: got {type(executor).__name__}; expected a "
                                "concurrent.futures.Executor or a distributed.Client")
            return
        # Dask is needed only for these backends: imported when one is asked for
        import dask
        import distributed

        if scheduler is not None:
            s = str(scheduler)
            if "://" not in s and Path(s).is_file():
                self._dask = distributed.Client(scheduler_file=s)
            else:
                self._dask = distributed.Client(s)
            self._close.append(self._dask.close)
            return
        n = (os.cpu_count() or 1) if workers is None else int(workers)
        if n < 1:
            raise SweepError(f"workers: got {_plain(workers)!r}; expected at least 1")
        with dask.config.set(LOCAL_CLUSTER_CONFIG):  # passed on to the worker processes
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=":0", silence_logs=logging.ERROR)
        self._close.append(cluster.close)
        self._dask = distributed.Client(cluster)
        self._close.append(self._dask.close)

    def run(self, tasks: list[tuple[tuple, tuple[int, int]]]) -> Iterator:
        """Yield ``(result, (first, last))`` as tasks complete; pending tasks are cancelled
        if the caller stops early or a task fails."""
        if self._dask is not None:
            import distributed

            token = uuid.uuid4().hex[:12]
            futures = {self._dask.submit(_run_chunk, *args, pure=False,
                                         key=f"ketasim-sweep-{token}-{span[0]}-{span[1]}"): span
                       for args, span in tasks}
            done = distributed.as_completed(list(futures))
        else:
            from concurrent.futures import as_completed

            futures = {self._executor.submit(_run_chunk, *args): span for args, span in tasks}
            done = as_completed(list(futures))
        try:
            for fut in done:
                result = fut.result()
                span = futures.pop(fut)
                yield result, span
        finally:
            for fut in futures:
                fut.cancel()

    def map(self, fn, args_list: list[tuple], compounds: tuple[tuple[str, str], ...],
            done=None) -> list:
        """``[fn(*args) for args in args_list]`` computed by the backend's workers, in
        order; ``done(k)``, if given, as task k completes (in any order); pending tasks
        are cancelled if one fails."""
        name = f"{fn.__module__}:{fn.__qualname__}"
        blobs = [pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL) for args in args_list]
        if self._dask is not None:
            token = uuid.uuid4().hex[:12]
            futures = [self._dask.submit(_remote_call, compounds, name, blob, pure=False,
                                         key=f"ketasim-run-{token}-{k}")
                       for k, blob in enumerate(blobs)]
            import distributed

            completed = distributed.as_completed(futures)
        else:
            from concurrent.futures import as_completed

            futures = [self._executor.submit(_remote_call, compounds, name, blob)
                       for blob in blobs]
            completed = as_completed(futures)
        index = {id(f): k for k, f in enumerate(futures)}
        results: list = [None] * len(futures)
        try:
            for f in completed:
                k = index[id(f)]
                results[k] = f.result()
                if done is not None:
                    done(k)
            return results
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        for close in reversed(self._close):
            try:
                close()
            except (OSError, RuntimeError, TimeoutError) as e:
                # closing a cluster after a failure must not hide that failure
                logging.getLogger(__name__).warning("sweep: closing Dask failed: %s", e)


def _is_dask_client(obj) -> bool:
    mod = sys.modules.get("distributed")
    return mod is not None and isinstance(obj, mod.Client)


# --------------------------------------------------------------------------- #
# The sweep
# --------------------------------------------------------------------------- #


def _resolve_scenario(scenario):
    """(scenario model, its text or None): a model, or a file / built-in name."""
    from ketasim.scenario import Scenario, builtin_scenarios, load_scenario

    if isinstance(scenario, Scenario):
        return scenario, None
    if isinstance(scenario, (str, os.PathLike)):
        model = load_scenario(scenario)
        path = Path(scenario)
        if not path.is_file():
            path = builtin_scenarios().get(str(scenario), path)
        try:  # as read (line endings kept), as run records it; a BOM is not the text
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            text = None
        return model, text
    raise TypeError(f"scenario: got {type(scenario).__name__}; expected a Scenario, a "
                    "scenario file or a built-in scenario name")


def _prepare_samples(samples, scenario, registry) -> tuple[pd.DataFrame, list[_Target]]:
    """The samples typed (:func:`_typed`) and their targets, every value checked: each on
    its own (the first bad sample of a column named), then each sample's scenario fields
    together, by validating the changed scenario (once per distinct combination of their
    values; the first sample of a bad one named), so that a sample the sweep cannot run
    fails before anything is written or computed."""
    if not isinstance(samples, pd.DataFrame):
        raise TypeError(f"samples: got {type(samples).__name__}; expected a DataFrame")
    if samples.empty or samples.shape[1] == 0:
        raise SweepError("samples: no samples; expected one row per sample and one column "
                         "per name")
    if len(samples) > MAX_SAMPLES:
        raise SweepError(f"samples: got {len(samples)}; expected at most {MAX_SAMPLES}")
    names = [str(c) for c in samples.columns]
    if names != list(samples.columns):
        raise SweepError(f"samples: column names must be text; got {list(samples.columns)}")
    targets = _targets(scenario, registry, names)
    for name in names:
        col = samples[name]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise SweepError(f"samples: column {name!r}: got dtype {col.dtype}; expected "
                             "numbers")
    samples = samples.reset_index(drop=True)
    for t in targets:  # each value on its own, column by column (fast, first bad row named)
        # as float64, before any cast: an n of inf or 1e19 is named, not cast to int64
        col = samples[t.name].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if t.kind == "param":
                bad = ~np.isfinite(col) | ~_in_range(col, registry[t.name])
            elif t.kind == "n":
                bad = ~_whole_n(col)
            elif t.kind == "dose":
                bad = ~np.isfinite(col) | (col < 0)
            else:
                bad = ~np.isfinite(col)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            try:
                _value(registry, t, float(col[r]))
            except SweepError as e:
                raise SweepError(f"samples row {r} (sample {r}): {e}") from None
    typed = _typed(samples, "samples")  # every n checked above
    fields = [t for t in targets if t.kind != "param"]
    if fields:  # each distinct combination of scenario fields validated, as a worker would
        distinct = typed[[t.name for t in fields]].drop_duplicates()
        for k, row in zip(distinct.index.tolist(),
                          distinct.itertuples(index=False, name=None), strict=True):
            try:
                _apply(scenario, registry, fields, row)
            except SweepError as e:
                raise SweepError(f"sample {k}: {e}") from None
    return typed, targets


def _manifest(scenario, text, samples, names, seed, registry, outputs, columns, chunk,
              timing, common_seed: bool = False, compounds: Sequence[str] = (),
              compound_files: Sequence[dict] = ()) -> dict:
    from ketasim.scenario import scenario_hash

    return {
        "format": FORMAT,
        "created_utc": utc_now(),
        "scenario": {"name": scenario.name, "sha256": scenario_hash(scenario), "text": text,
                     "model": scenario.model_dump(mode="json")},
        "names": list(names),
        "n_samples": len(samples),
        "samples_sha256": _samples_digest(samples),
        "seed": int(seed),
        "seed_rule": ("every sample runs with seed (common random numbers)" if common_seed
                      else "sample k runs with seed SeedSequence(seed, spawn_key=(k,))"
                      ".generate_state(1, uint64)[0] >> 1 (ketasim.sweep.core.sample_seed)"),
        "registry": {"sha256": registry_digest(registry),
                     "changed": changed_values(registry)},
        "compound_folders": list(compounds),
        "compounds": sorted(compound_files, key=lambda r: (r["name"], r["sha256"])),
        "outputs": outputs,
        "columns": ["sample", *names, *columns],
        "chunk_samples": int(chunk) if chunk is not None else None,
        "chunk_timing_s": timing,
        # the source the chunks come from (not compared on resume: a resume by a newer
        # checkout keeps its parts, as it did; the manifest records the first run's)
        "git": git_state(),
        "versions": {"ketasim": ketasim.__version__, "python": sys.version.split()[0],
                     "libraries": libraries(LIBRARIES)},
    }


#: (field, what it is, its value in a manifest without it): what makes a sweep this one
_IDENTITY = (("format", "format", None), ("scenario.sha256", "scenario", None),
             ("names", "names", None), ("n_samples", "number of samples", None),
             ("samples_sha256", "samples", None), ("seed", "seed", None),
             ("seed_rule", "seed rule", None), ("registry.sha256", "parameter registry", None),
             # a manifest written before compound files were recorded: a sweep without
             ("compounds", "set of compound files (--compounds)", []),
             ("outputs", "outputs", None))


def _shown(v):
    """An identity field's value in one short line: digests cut to 12 characters, compound
    files as ``name sha256[:12]``."""
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    if isinstance(v, list) and all(isinstance(r, dict) for r in v):
        return ", ".join(f"{r.get('name')} {str(r.get('sha256'))[:12]}" for r in v) or "none"
    return v


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _open_folder(out: Path, manifest: dict) -> dict | None:
    """The existing manifest when ``out`` holds this sweep already, None for a new folder;
    a folder holding something else is a :class:`SweepError`."""
    if out.exists() and not out.is_dir():
        raise SweepError(f"out {out}: exists and is not a folder")
    path = out / "manifest.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SweepError(f"{path}: cannot read it ({e}); expected a sweep's "
                             "manifest") from None
        for key, what, default in _IDENTITY:
            a, b = _get(old, key), _get(manifest, key)
            if a is None:
                a = default
            if a != b:
                raise SweepError(
                    f"out {out}: holds a sweep with another {what} (manifest.json: "
                    f"{_shown(a)!r}; this run: {_shown(b)!r}); expected the same scenario, "
                    "samples, seed, registry, compound files and outputs to resume it; "
                    "choose another folder or delete this one to start again")
        return old
    if out.is_dir():  # no manifest: only a new sweep's first files may be there
        for entry in out.iterdir():
            ours = (entry.name == "samples.parquet" or _TMP_MARK in entry.name
                    or (entry.name == "chunks" and entry.is_dir()
                        and all(_TMP_MARK in e.name for e in entry.iterdir())))
            if not ours:
                raise SweepError(f"out {out}: the folder exists, is not empty and holds no "
                                 "sweep (no manifest.json); choose another folder")
    return None


def _warm_up(job: _Job, row: tuple) -> None:
    """Run sample 0 once with one subject per arm, here, before any worker starts: numba
    compiles (or loads) the kernels once into the cache folder the local workers share,
    and a sample that cannot run fails before a cluster is started."""
    small = job.scenario.model_copy(update={
        "arms": [a.model_copy(update={"n": 1}) for a in job.scenario.arms]})
    try:
        _evaluate(replace(job, scenario=small), 0, [row])
    except SweepError:  # one subject breaks the scenario (a design's ratio): the full one
        _evaluate(job, 0, [row])


def _time_one(job: _Job, row: tuple) -> float:
    """Seconds sample 0 takes (after :func:`_warm_up`)."""
    t0 = time.perf_counter()
    _evaluate(job, 0, [row])
    return time.perf_counter() - t0


def run_sweep(scenario, samples: pd.DataFrame, out: str | os.PathLike, *,
              seed: int | None = None, registry: Registry | None = None,
              executor=None, scheduler: str | None = None, workers: int | None = None,
              chunk_samples: int | None = None, progress: bool = True,
              outputs: str = "summary", compounds: Iterable[str | os.PathLike] = (),
              common_seed: bool = False) -> Path:
    """Run ``scenario`` once per row of ``samples`` and write the results to ``out``.

    ``scenario``: a validated Scenario, a scenario file or a built-in name. ``samples``:
    one column per name (:func:`parse_vary`, :func:`read_samples`), one row per sample.
    ``seed``: the base seed (default: the scenario's); sample ``k`` runs with
    :func:`sample_seed` ``(seed, k)``. ``registry``: the parameters (default: the packaged
    registry). Backend: ``executor``, else ``scheduler``, else a local cluster of
    ``workers`` processes. ``chunk_samples``: samples per task (default: the manifest's
    when resuming, else as many as take about ``CHUNK_TARGET_S``, from one sample timed
    here first). ``outputs``: ``"summary"`` or ``"readouts"``. ``compounds``: folders of
    compound files every worker registers (as ``--compounds``; their files' digests are
    part of the sweep's identity). ``common_seed``: every sample runs at the base seed
    itself (common random numbers, as a sensitivity analysis needs: samples then differ by
    their values only, not by their subjects' draws).
    Returns ``out``. See the module's docstring for the folder, resuming and
    determinism."""
    ketasim._ensure_configured()  # before the scenario and the runner import numba
    out = Path(out)
    if outputs not in OUTPUTS:
        raise SweepError(f"outputs: got {outputs!r}; expected one of {', '.join(OUTPUTS)}")
    if chunk_samples is not None and (isinstance(chunk_samples, bool)
                                      or int(chunk_samples) != chunk_samples
                                      or chunk_samples < 1):
        raise SweepError(f"chunk_samples: got {_plain(chunk_samples)!r}; expected a whole "
                         "number >= 1")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers
                                or workers < 1):
        raise SweepError(f"workers: got {_plain(workers)!r}; expected a whole number >= 1")
    compounds = tuple(str(Path(c).resolve()) for c in compounds)
    compound_files = []
    digests = []  # sent with every task: a worker registers a folder again when it changes
    for folder in compounds:
        records = _register_compounds(folder)
        compound_files += records
        digests.append((folder, _records_digest(records)))
    scenario, text = _resolve_scenario(scenario)
    registry = load_registry() if registry is None else registry
    if not isinstance(registry, Registry):
        raise TypeError(f"registry: got {type(registry).__name__}; expected a Registry")
    base = scenario.seed if seed is None else seed
    if isinstance(base, bool) or int(base) != base or not 0 <= base < 2**63:
        raise SweepError(f"seed: got {_plain(seed)!r}; expected an integer from 0 to "
                         "2**63 - 1")
    base = int(base)
    if not any(arm.assays for arm in scenario.arms):
        raise SweepError(f"scenario {scenario.name!r}: no arm runs an assay; a sweep needs "
                         "something measured")
    samples, _ = _prepare_samples(samples, scenario, registry)
    names = tuple(samples.columns)
    regional = any(spec.region != DEFAULT_REGION for arm in scenario.arms
                   for spec in arm.assays)
    columns = _output_columns(outputs, regional)
    schema = _schema(names, columns)
    job = _Job(scenario, _pack_registry(registry), names, base, outputs, columns, regional,
               bool(common_seed))
    blob = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(blob).hexdigest()
    rows = list(zip(*(samples[c].tolist() for c in names), strict=True))

    manifest = _manifest(scenario, text, samples, names, base, registry, outputs, columns,
                         chunk_samples, None, bool(common_seed), compounds, compound_files)
    old = _open_folder(out, manifest)
    chunks_dir = out / "chunks"
    if old is None:
        _warm_up(job, rows[0])
        warm = True
        if chunk_samples is None:
            t = _time_one(job, rows[0])
            chunk_samples = max(1, math.ceil(CHUNK_TARGET_S / max(t, 1e-9)))
            manifest.update(chunk_samples=chunk_samples, chunk_timing_s=round(t, 6))
        else:
            manifest["chunk_samples"] = int(chunk_samples)
        chunks_dir.mkdir(parents=True, exist_ok=True)
        for entry in out.iterdir():
            if _TMP_MARK in entry.name:
                entry.unlink(missing_ok=True)
        sample_table = pa.Table.from_pandas(
            samples.assign(sample=np.arange(len(samples), dtype=np.int64))[
                ["sample", *names]], schema=_schema(names, ()), preserve_index=False)
        _atomic_write(out / "samples.parquet", _parquet_bytes(sample_table))
        _atomic_write(out / "manifest.json", json_text(manifest).encode())
    else:
        warm = False
        chunks_dir.mkdir(exist_ok=True)
        if chunk_samples is None:
            chunk_samples = int(old.get("chunk_samples") or 1)
    done = _scan(chunks_dir, schema, samples)
    todo = _chunks(~done, int(chunk_samples))
    if not todo:
        return out
    if not warm:
        _warm_up(job, rows[todo[0][0]])
    width = _width(len(samples))
    # 'local' (as the CLI accepts it) is the embedded cluster, as when none is named
    backend = _Backend(executor, None if scheduler == "local" else scheduler, workers)
    tasks = [((tuple(digests), digest, blob, first, rows[first:last + 1]), (first, last))
             for first, last in todo]
    try:
        with _ProgressBar(progress, len(samples), int(done.sum())) as advance:
            for frame, (first, last) in backend.run(tasks):
                table = _to_table(frame, schema)
                _atomic_write(chunks_dir / _part_name(first, last, width),
                              _parquet_bytes(table))
                advance(last - first + 1)
    finally:
        backend.close()
    return out


class _ProgressBar:
    """A rich progress bar on stderr (samples done), or nothing."""

    def __init__(self, show: bool, total: int, done: int):
        self._bar = None
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True))
            self._task = self._bar.add_task("samples", total=total, completed=done)

    def __enter__(self):
        if self._bar is None:
            return lambda k: None
        self._bar.start()
        return lambda k: self._bar.advance(self._task, k)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False


def read_sweep(out: str | os.PathLike, *, allow_partial: bool = False) -> pd.DataFrame:
    """Every part of the sweep in ``out``, concatenated, sorted by sample (each sample's
    rows in their order). A sweep with samples still missing is a :class:`SweepError`
    unless ``allow_partial`` (with no part yet: an empty table with the parts' columns
    and types). Each part is checked as a resume checks it (its page checksums, the
    sweep's schema, exactly the samples its name says, with their values): a part that
    fails, or one holding samples another part holds too, is a :class:`SweepError`; a
    part named for samples beyond the sweep's is not the sweep's and is left out (a
    resume deletes it)."""
    out = Path(out)
    path = out / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SweepError(f"{path}: cannot read it ({e}); expected a sweep folder") from None
    n, names, schema = _manifest_layout(path, manifest)
    samples = _stored_samples(out / "samples.parquet", names, n)
    cover = _Cover(n)
    tables = []
    for first, last, p in _parts(out / "chunks"):
        if not 0 <= first <= last < n:
            continue  # not this sweep's part (a resume deletes it)
        table, problem = _read_part(p, first, last, schema, samples)
        if table is None:
            raise SweepError(f"{p}: {problem}; expected a complete part of this sweep "
                             "(run the sweep again to recompute it)")
        cover.add(p, first, last)
        tables.append(table)
    if not cover.done.all() and not allow_partial:
        missing = np.flatnonzero(~cover.done)
        raise SweepError(f"{out}: {missing.size} of {n} samples have no results yet (first: "
                         f"sample {missing[0]}); run the sweep again to complete it")
    if not tables:
        return schema.empty_table().to_pandas()
    table = pa.concat_tables(tables)
    order = np.argsort(table.column("sample").to_numpy(), kind="stable")
    return table.take(pa.array(order)).to_pandas()


def _manifest_layout(path: Path, manifest) -> tuple[int, tuple[str, ...], pa.Schema]:
    """The number of samples, the names and the parts' schema a sweep's manifest gives;
    one :class:`SweepError` when it is not a sweep's manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise SweepError(f"{path}: got format {_shown(got)!r}; expected a sweep's manifest "
                         f"({FORMAT!r})")
    n, names, columns = (manifest.get(k) for k in ("n_samples", "names", "columns"))
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise SweepError(f"{path}: n_samples: got {n!r}; expected a number of samples from 1 "
                         f"to {MAX_SAMPLES}")
    if not (isinstance(names, list) and names and all(isinstance(x, str) for x in names)
            and isinstance(columns, list)
            and columns[:len(names) + 1] == ["sample", *names]
            and all(c in _TYPES for c in columns[len(names) + 1:])):
        raise SweepError(f"{path}: names and columns: got {names!r} and {columns!r}; "
                         "expected the names and 'sample', the names, then output columns")
    names = tuple(names)
    return n, names, _schema(names, columns[len(names) + 1:])


def _stored_samples(path: Path, names: tuple[str, ...], n: int) -> pd.DataFrame:
    """The samples of a sweep's ``samples.parquet`` (as :func:`run_sweep` wrote it)."""
    try:
        table = _read_parquet_checked(path)
    except (OSError, pa.ArrowException) as e:
        raise SweepError(f"{path}: cannot read it ({e}); expected the sweep's "
                         "samples") from None
    if (not table.schema.equals(_schema(names, ())) or table.num_rows != n
            or not np.array_equal(table.column("sample").to_numpy(), np.arange(n))):
        raise SweepError(f"{path}: expected the sweep's {n} samples of "
                         f"{', '.join(names)} (as manifest.json says)")
    return table.drop(["sample"]).to_pandas()
