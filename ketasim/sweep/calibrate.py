"""Calibration of registry parameters to group-level data: ABC-SMC (pyabc), maximum
likelihood (scipy), and a PEtab export of the same problem.

Data
----
A :class:`CalibrationData` is a table of group means, one row per measured quantity:

``arm``          an arm of the scenario
``readout``      a readout one of the arm's assays reports (``ketasim run``'s readouts)
``time_h``       the time (hours) the arm's assay measures it (one of its ``at`` times)
``mean, sem``    the data: the group mean and its standard error (> 0)

and optionally

``assay``        the assay, where two assays of the arm report the readout at that time
``baseline_h``,  a derived quantity: the change of the group mean from its value at
``change``       ``baseline_h``, as ``percent`` (``100 (m(t) / m(baseline) - 1)``) or
                 ``difference`` (``m(t) - m(baseline)``); as the validation targets
                 compute a normalised density or a rate change (``T-PH-*``)
``unit``         when given, the readout's own unit (``%`` for a percent change; a
                 mismatch is an error before anything runs); empty: not checked
``n, note``      kept for the record

:func:`load_data` reads such a CSV, or the ``summary.csv`` of a ``ketasim run`` or
``ketasim analyze`` folder (``arm, assay, readout, time_h, unit, n, mean, sem``; rows
without observations or without a positive SEM are left out and listed in
``CalibrationData.dropped``). Bad input is one :class:`CalibrationError` naming the file,
the column and the row (1-based data row and, for a file, its line).

Model and distance
------------------
A particle's values replace the registry's defaults (:meth:`Registry.with_values`), the
scenario is simulated (only the arms the data name: every arm has its own random
streams, so leaving arms out changes nothing) and each data row's statistic is computed
from the simulated group means (the mean over subjects of the readout at that time, as
``summary.csv`` has it). The distance is ``sum(((sim - mean) / sem) ** 2)``: minus twice
the log-likelihood (plus a constant) of independent Gaussian errors with the data's
SEMs, which the ``likelihood`` method minimises. A simulation that fails (a parameter
combination the model refuses, e.g. spine turnover too fast for a stationary density)
gives an infinite distance and is never accepted.

Priors
------
Uniform over the registry's range of each parameter (``bounds`` may narrow it, never
widen it: bounds outside the registry range are refused), on the log10 scale
(log-uniform) for a positive range spanning at least a factor of ``LOG_RATIO`` (10).
pyabc samples and perturbs the parameters on that scale; a value converted back to the
parameter's unit is clipped to its range (``10 ** log10(low)`` may round below ``low``),
so every simulated, reported and estimated value lies in it.

Samplers and reproducibility
----------------------------
``workers`` None or 1 (and no ``scheduler``): pyabc's ``SingleCoreSampler``; numpy's
and Python's global random generators are seeded with ``seed`` for the run (and restored
afterwards), so the same call gives the same posterior, particle for particle.
``workers`` > 1: pyabc's ``ConcurrentFutureSampler`` over ketasim's pool of *spawned*
worker processes (one numba thread each). pyabc's ``MulticoreEvalParallelSampler``
forks, and a process that has run a simulation uses GNU OpenMP (numba's threading
layer), which aborts a forked child ("fork() called from a process already using GNU
OpenMP"); so the fork-based samplers are not used. ``scheduler``: pyabc's
``DaskDistributedSampler`` on a ``distributed.Client`` of that address (``"local"``: a
``LocalCluster`` of ``workers`` processes with one thread each; a ``Client`` object is
used as it is). A worker calls :func:`ketasim.configure` with one numba thread and
registers the ``compounds`` folders before its first simulation.

Model seeds: with ``model_seed="particle"`` (the ABC default) each simulation's seed is
a hash of ``seed`` and the particle's parameter values, so a particle's simulated data
do not depend on the worker, the order of work or the sampler: the same values always
give the same numbers, and different values give independent replicates of the
experiment (the posterior accounts for the simulated experiment's sampling noise).
``model_seed="fixed"`` runs every simulation at the scenario's seed (common random
numbers: the model is a deterministic function of the parameters, which the likelihood
method needs and which makes the recovery of noise-free readouts exact).
What is not reproducible: with ``workers`` > 1 or a ``scheduler``, which particles are
accepted depends on which simulations finish first (pyabc keeps the first
``population`` accepted), so the posterior sample differs from run to run within Monte
Carlo error; the database's time stamps always differ.

Outputs (``out``, written atomically: the folder appears only when complete)
----------------------------------------------------------------------------
``method="abc"``: ``abc.db`` (pyabc's History, SQLite), ``posterior.parquet`` (the last
generation: ``generation, particle``, one column per parameter in its own unit,
``weight``, ``distance``), ``predictive.csv`` (each data row with the median and 5-95 %
range of the simulations from ``predictive_draws`` posterior draws, and the simulation
at the registry defaults), ``report.html`` (self-contained: prior against posterior
histograms, pairwise posterior scatter, posterior-predictive check; images inlined),
the figures as PNG and ``manifest.json`` (provenance, priors, data, sampler,
generations, posterior summary, timings).
``method="likelihood"``: ``estimates.csv`` (estimate, standard error on the parameter's
scale, the ``level`` Wald interval from the Hessian of the weighted sum of squares,
bounds, ``at_bound``), ``starts.csv``, ``predictive.csv``, ``report.html`` and
``manifest.json``. The Hessian's finite-difference steps stay inside the prior's range
(one-sided differences for an estimate at a bound). An estimate at a bound
(``at_bound``; the manifest's and the report's ``hessian_note`` name it) is not an
interior maximum: its standard error and interval are not valid Wald ones (the
likelihood is cut off by the bound), only a rough indication of the curvature there.

PEtab
-----
:func:`export_petab` writes the problem as PEtab v1 (conditions, measurements,
observables and parameters TSVs, ``problem.yaml`` and the model's SBML from
:mod:`ketasim.io.sbml`), restricted to the data rows whose readout the SBML model
computes (the PK + signalling layers: signalling readouts, and ``plasma_pk`` /
``brain_pk`` levels read from the analytes' plasma / brain outputs), with each arm's
typical subject in the region its rows measure; see its docstring. The folder is linted
with petab before it is moved into place.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import ketasim
from ketasim.analysis.stats import NESTED_SUFFIX
from ketasim.io.results import atomic_dir, check_writable, write_json
from ketasim.params import Registry, load_registry
from ketasim.pk.compounds import add_compounds
from ketasim.provenance import collect, utc_now
from ketasim.sweep.core import _resolve_scenario

__all__ = ["CalibrationData", "CalibrationError", "Prior", "calibrate", "check_settings",
           "export_petab", "load_data", "particle_seed", "priors", "statistics",
           "wald_covariance"]

DATA_COLUMNS = ("arm", "readout", "time_h", "mean", "sem")
OPTIONAL_COLUMNS = ("assay", "baseline_h", "change", "unit", "n", "note")
SUMMARY_COLUMNS = ("arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem")
SUMMARY_FILE = "summary.csv"
CHANGES = ("percent", "difference")
METHODS = ("abc", "likelihood")
MODEL_SEEDS = ("particle", "fixed")
#: a positive range spanning at least this factor gets a log-uniform prior
LOG_RATIO = 10.0
#: data times match the scenario's assay times within this (hours)
TIME_TOL_H = 1e-6
LEVEL = 0.90


class CalibrationError(ValueError):
    """Bad calibration data, parameters or settings (one line naming what and where)."""


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class CalibrationData:
    """Group-level data to fit (see the module docstring).

    ``table`` columns: ``row`` (the source's 1-based data row), ``arm``, ``assay`` (""
    where not given), ``readout``, ``time_h``, ``baseline_h`` (NaN unless a change),
    ``change`` ("", ``percent`` or ``difference``), ``mean``, ``sem``, ``unit``, ``n``
    (NaN where not given), ``note``."""

    table: pd.DataFrame
    source: str = "<DataFrame>"
    dropped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.table)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<DataFrame>") -> CalibrationData:
        """Check and normalise a DataFrame with the data columns (strict, as a CSV)."""
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"data: got {type(frame).__name__}; expected a DataFrame")
        return cls(_parse(frame.reset_index(drop=True), source, csv=False), source)

    @property
    def means(self) -> np.ndarray:
        return self.table["mean"].to_numpy(float)

    @property
    def sems(self) -> np.ndarray:
        return self.table["sem"].to_numpy(float)

    def labels(self) -> list[str]:
        """One short label per row: ``arm/readout@t h`` (with the change and baseline)."""
        return [_label(r) for r in self.table.itertuples(index=False)]

    def select(self, *, arms: Iterable[str] | None = None,
               readouts: Iterable[str] | None = None,
               assays: Iterable[str] | None = None) -> CalibrationData:
        """The rows of some arms, readouts and assays (None: all)."""
        t = self.table
        keep = np.ones(len(t), bool)
        for col, chosen in (("arm", arms), ("readout", readouts), ("assay", assays)):
            if chosen is not None:
                keep &= t[col].isin(list(chosen)).to_numpy()
        if not keep.any():
            raise CalibrationError(f"{self.source}: no data rows left after the selection")
        return CalibrationData(t[keep].reset_index(drop=True), self.source, self.dropped)


def _label(r) -> str:
    base = f"{r.arm}/{r.readout}@{r.time_h:g}h"
    if r.change:
        base += f" ({r.change} vs {r.baseline_h:g}h)"
    return base


def _where(source: str, col: str | None, i: int | None, csv: bool) -> str:
    text = source
    if col is not None:
        text += f", column {col!r}"
    if i is not None:
        text += f", row {i + 1}" + (f" (line {i + 2})" if csv else "")
    return text


def _text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _number(v) -> float | None:
    """A finite float from a number or its text; None if empty or not a finite number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    s = _text(v)
    if not s:
        return None
    try:
        f = float(s)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _parse(raw: pd.DataFrame, source: str, csv: bool,
           numbers: Sequence[int] | None = None) -> pd.DataFrame:
    """The normalised data table; strict about columns and values. ``numbers``: each
    row's 0-based place in its source (default: its place in ``raw``), which the ``row``
    column and the errors give (a summary's rows kept after some were left out)."""
    cols = [str(c) for c in raw.columns]
    allowed = DATA_COLUMNS + OPTIONAL_COLUMNS
    expected = (f"expected columns {', '.join(DATA_COLUMNS)} (optional: "
                f"{', '.join(OPTIONAL_COLUMNS)})")
    for c in cols:
        if c not in allowed:
            raise CalibrationError(f"{_where(source, c, None, csv)}: unknown column; {expected}")
    if len(set(cols)) != len(cols):
        dup = next(c for c in cols if cols.count(c) > 1)
        raise CalibrationError(f"{_where(source, dup, None, csv)}: column given twice")
    missing = [c for c in DATA_COLUMNS if c not in cols]
    if missing:
        raise CalibrationError(f"{source}: missing column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(repr, missing))}; {expected}")
    if raw.empty:
        raise CalibrationError(f"{source}: no data rows")
    rows = []
    seen: dict[tuple, int] = {}
    numbers = range(len(raw)) if numbers is None else [int(i) for i in numbers]
    for i, rec in zip(numbers, raw.to_dict("records"), strict=True):
        def bad(col: str, what: str, value, _i=i) -> CalibrationError:
            return CalibrationError(f"{_where(source, col, _i, csv)}: expected {what}, got "
                                    f"{_text(value)!r}")

        arm, readout = _text(rec["arm"]), _text(rec["readout"])
        if not arm:
            raise bad("arm", "an arm name", rec["arm"])
        if not readout:
            raise bad("readout", "a readout name", rec["readout"])
        t = _number(rec["time_h"])
        if t is None:
            raise bad("time_h", "a time in hours (a finite number)", rec["time_h"])
        mean = _number(rec["mean"])
        if mean is None:
            raise bad("mean", "a finite number", rec["mean"])
        sem = _number(rec["sem"])
        if sem is None or sem <= 0:
            raise bad("sem", "a number > 0", rec["sem"])
        change = _text(rec.get("change", "")).lower()
        if change not in ("", *CHANGES):
            raise bad("change", f"{' or '.join(CHANGES)} (or empty)", rec.get("change"))
        braw = rec.get("baseline_h", "")
        base = _number(braw) if _text(braw) else float("nan")
        if _text(braw) and base is None:
            raise bad("baseline_h", "a time in hours (a finite number)", braw)
        if change and math.isnan(base):
            raise bad("baseline_h", f"the baseline time of the {change} change", braw)
        if not change and not math.isnan(base):
            raise bad("change", f"{' or '.join(CHANGES)} with a baseline_h", rec.get("change"))
        if change and abs(base - t) <= TIME_TOL_H:
            raise bad("baseline_h", "a time other than time_h", braw)
        n_raw = rec.get("n", "")
        n = _number(n_raw) if _text(n_raw) else float("nan")
        if _text(n_raw) and (n is None or n < 0 or n != int(n)):
            raise bad("n", "a whole number >= 0 (or empty)", n_raw)
        assay = _text(rec.get("assay", ""))
        key = (arm, assay, readout, round(t, 6), round(base, 6) if change else None, change)
        if key in seen:
            j = seen[key]
            raise CalibrationError(
                f"{_where(source, 'time_h', i, csv)}: duplicate data row (arm {arm!r}, "
                f"readout {readout!r}, time_h {t:g}{', ' + change if change else ''}), "
                f"already in row {j + 1}" + (f" (line {j + 2})" if csv else ""))
        seen[key] = i
        rows.append({"row": i + 1, "arm": arm, "assay": assay, "readout": readout,
                     "time_h": t, "baseline_h": base, "change": change, "mean": mean,
                     "sem": sem, "unit": _text(rec.get("unit", "")), "n": n,
                     "note": _text(rec.get("note", ""))})
    return pd.DataFrame(rows)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise CalibrationError(f"{path}: empty file; expected a header line with the "
                               f"columns {', '.join(DATA_COLUMNS)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: not a readable CSV file ({_one_line(e)})") from None
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read ({e.strerror})") from None


def _one_line(e) -> str:
    return " ".join(str(e).split())


def _load_summary(folder: Path) -> CalibrationData:
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise CalibrationError(f"{folder}: a folder without {SUMMARY_FILE}; expected a "
                               "'ketasim run' or 'ketasim analyze' folder, or a CSV file")
    raw = _read_csv(path)
    cols = list(raw.columns)
    missing = [c for c in SUMMARY_COLUMNS if c not in cols]
    if missing:
        raise CalibrationError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(repr, missing))}; expected the summary "
                               f"columns {', '.join(SUMMARY_COLUMNS)}")
    extra = [c for c in cols if c not in SUMMARY_COLUMNS and c != "region"]
    if extra:
        raise CalibrationError(f"{path}, column {extra[0]!r}: unknown column; expected the "
                               f"summary columns {', '.join(SUMMARY_COLUMNS)} (and region)")
    if "region" in cols and raw["region"].nunique() > 1:
        raise CalibrationError(f"{path}, column 'region': several regions "
                               f"({', '.join(sorted(raw['region'].unique()))}); calibration "
                               "data name no region: give a CSV of one region's rows")
    keep, dropped = [], []
    for i, rec in enumerate(raw.to_dict("records")):
        n = _number(rec["n"])
        label = f"row {i + 1} (line {i + 2}) {rec['arm']}/{rec['readout']}@{rec['time_h']}h"
        if str(rec["assay"]).endswith(NESTED_SUFFIX):
            dropped.append(f"{label}: a {rec['assay']} row (per segment, branch or cell: "
                           "the per-subject rows hold the same measurements, fitted once)")
        elif _number(rec["mean"]) is None or n == 0:
            dropped.append(f"{label}: no observations")
        elif (_number(rec["sem"]) or 0.0) <= 0.0:
            dropped.append(f"{label}: no positive SEM (n {rec['n']}; a noise-free readout "
                           "or a single value)")
        else:
            keep.append(i)
    if not keep:
        raise CalibrationError(f"{path}: no row with a mean and a positive SEM to fit")
    sub = raw.iloc[keep][["arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem"]]
    # numbered as the summary's own rows (and lines), in the table and in the errors
    table = _parse(sub.reset_index(drop=True), str(path), csv=True, numbers=keep)
    return CalibrationData(table, str(path), tuple(dropped))


def load_data(path: str | os.PathLike | CalibrationData | pd.DataFrame) -> CalibrationData:
    """Calibration data from a CSV file (``arm, readout, time_h, mean, sem`` and the
    optional columns), from a ``ketasim run`` / ``ketasim analyze`` folder (its
    ``summary.csv``), or from a DataFrame (checked the same way)."""
    if isinstance(path, CalibrationData):
        return path
    if isinstance(path, pd.DataFrame):
        return CalibrationData.from_frame(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"data: got {type(path).__name__}; expected a CSV file, a run "
                        "folder, a DataFrame or CalibrationData")
    p = Path(path)
    if p.is_dir():
        return _load_summary(p)
    if not p.exists():
        raise CalibrationError(f"{p}: no such file or folder")
    return CalibrationData(_parse(_read_csv(p), str(p), csv=True), str(p))


# --------------------------------------------------------------------------- #
# Scenario, parameters, priors
# --------------------------------------------------------------------------- #



def _restrict(scenario, arms: set[str]):
    """The scenario with only the arms the data name (unless a trial design ties the
    arms together)."""
    if getattr(scenario, "design", None) is not None:
        return scenario
    return scenario.model_copy(update={
        "arms": tuple(a for a in scenario.arms if a.name in arms), "compare": ()})


_UNIT_ALIASES = {"percent": "%", "pct": "%", "sec": "s", "second": "s", "seconds": "s",
                 "hz": "Hz", "1/s": "Hz"}


def _norm_unit(u: str) -> str:
    u = " ".join(str(u).split())
    return _UNIT_ALIASES.get(u.lower(), u)


def _check_unit(where: str, r, assay: str, spec) -> None:
    """A data row that gives a unit must give the unit the model reports its readout in
    (``%`` for a percent change): a fraction fitted against percentages, or seconds
    against minutes, would fit wrong parameters without a word. No unit: not checked."""
    given = _norm_unit(getattr(r, "unit", "") or "")
    if not given:
        return
    unit = next(x.unit for x in spec.readouts if x.name == r.readout)
    want = "%" if r.change == "percent" else _norm_unit(unit)
    if given != want:
        what = (f"a percent change of {r.readout!r} is in %" if r.change == "percent"
                else f"{assay} reports {r.readout!r} in {unit!r}")
        raise CalibrationError(f"{where}: unit {r.unit!r}, but {what}; give the mean and "
                               f"SEM in {want!r} (or leave the unit empty)")


def _resolve_rows(scenario, data: CalibrationData) -> pd.DataFrame:
    """The data table with each row's assay, the region it measures (``region``) and the
    scenario's exact times; one clear error for a row the scenario does not measure, and
    for a measurement given twice (the same arm, assay, readout and resolved times, e.g.
    once with its assay named and once without, or at two times within ``TIME_TOL_H``
    of one assay time)."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.experiment.assays import ASSAYS

    arms = {a.name: a for a in scenario.arms}
    t = data.table.copy()
    assays, times, bases, regions = [], [], [], []
    for r in t.itertuples(index=False):
        where = f"{data.source}, row {r.row} ({_label(r)})"
        if r.arm not in arms:
            raise CalibrationError(f"{where}: the scenario has no arm {r.arm!r}; its arms: "
                                   f"{', '.join(arms)}")
        found: dict[str, tuple[float, float, str]] = {}
        measured = set()
        for spec_ in arms[r.arm].assays:
            if r.assay and spec_.assay != r.assay:
                continue
            if r.readout not in ASSAYS[spec_.assay].readout_names:
                continue
            measured.add(spec_.assay)
            at = np.asarray(spec_.at, float)
            hit = np.flatnonzero(np.abs(at - r.time_h) <= TIME_TOL_H)
            if not hit.size:
                continue
            base = float("nan")
            if r.change:
                hb = np.flatnonzero(np.abs(at - r.baseline_h) <= TIME_TOL_H)
                if not hb.size:
                    continue
                base = float(at[hb[0]])
            if spec_.assay in found:
                raise CalibrationError(f"{where}: arm {r.arm!r} runs {spec_.assay} twice at "
                                       "that time (in two regions); calibration data name "
                                       "no region")
            found[spec_.assay] = (float(at[hit[0]]), base, str(spec_.region))
        if not found:
            what = f"assay {r.assay!r} " if r.assay else ""
            if measured:
                times_ = sorted({float(x) for s in arms[r.arm].assays if s.assay in measured
                                 for x in s.at})
                raise CalibrationError(
                    f"{where}: arm {r.arm!r} {what}measures {r.readout!r} at "
                    f"{', '.join(f'{x:g}' for x in times_)} h, not at {r.time_h:g} h"
                    + (f" and {r.baseline_h:g} h" if r.change else ""))
            raise CalibrationError(f"{where}: no {what}assay of arm {r.arm!r} reports the "
                                   f"readout {r.readout!r}")
        if len(found) > 1:
            raise CalibrationError(f"{where}: assays {', '.join(sorted(found))} of arm "
                                   f"{r.arm!r} all report {r.readout!r} then; name one in "
                                   "an 'assay' column")
        (a, (tt, bb, region)), = found.items()
        _check_unit(where, r, a, ASSAYS[a])
        assays.append(a)
        times.append(tt)
        bases.append(bb)
        regions.append(region)
    t["assay"], t["time_h"], t["baseline_h"] = assays, times, bases
    t["region"] = regions
    _check_duplicates(t, data.source)
    return t


def _check_duplicates(rows: pd.DataFrame, source: str) -> None:
    """One error for a measurement given twice once the rows are resolved: ``_parse``
    sees the rows as written, where an empty assay and the assay's name, or two times
    within the tolerance of one assay time, differ."""
    seen: dict[tuple, int] = {}
    for r in rows.itertuples(index=False):
        key = (r.arm, r.assay, r.readout, r.time_h, r.change,
               r.baseline_h if r.change else None)
        if key in seen:
            raise CalibrationError(
                f"{source}, row {r.row} ({_label(r)}): duplicate data row (arm {r.arm!r}, "
                f"{r.assay} readout {r.readout!r} at {r.time_h:g} h"
                f"{', ' + r.change + ' change' if r.change else ''}), already in row "
                f"{seen[key]}; give each measurement once")
        seen[key] = r.row


@dataclass(frozen=True)
class Prior:
    """A uniform prior on ``scale`` (``lin`` or ``log10``) between ``low`` and ``high``
    (in the parameter's own unit)."""

    name: str
    low: float
    high: float
    scale: str
    default: float
    unit: str

    @property
    def bounds(self) -> tuple[float, float]:
        """The bounds on the sampling scale."""
        return (float(self.to_scale(self.low)), float(self.to_scale(self.high)))

    def to_scale(self, v):
        return np.log10(v) if self.scale == "log10" else v

    def from_scale(self, u, clip: bool = True):
        """The value(s) in the parameter's own unit of ``u`` on the sampling scale,
        clipped to ``[low, high]`` (``10 ** log10(low)`` may round a step below ``low``,
        and ``low + 1.0 * (high - low)`` a step above ``high``: a value outside the
        registry range that ``ketasim run --set`` refuses). ``clip`` False: as computed,
        for an interval that may reach beyond the range."""
        if self.scale == "log10":
            with np.errstate(over="ignore"):  # a wide interval's end: inf, not a warning
                v = 10.0 ** np.asarray(u, float)
        else:
            v = np.asarray(u, float)
        return np.clip(v, self.low, self.high) if clip else v

    def record(self) -> dict:
        return {"name": self.name, "unit": self.unit, "default": self.default,
                "low": self.low, "high": self.high,
                "prior": "log-uniform" if self.scale == "log10" else "uniform"}


def priors(registry, params: Sequence[str],
           bounds: Mapping[str, tuple[float, float]] | None = None) -> list[Prior]:
    """The priors of ``params``: uniform over the registry range (or ``bounds``, which
    may only narrow it: bounds reaching outside the registry range are a
    CalibrationError), on the log10 scale for a positive range spanning a factor >=
    ``LOG_RATIO``."""
    if isinstance(params, str):
        params = [p.strip() for p in params.split(",") if p.strip()]
    params = list(params)
    if not params:
        raise CalibrationError("params: no parameter to calibrate")
    dup = [p for p in params if params.count(p) > 1]
    if dup:
        raise CalibrationError(f"params: {dup[0]!r} given twice")
    bounds = dict(bounds or {})
    for b in bounds:
        if b not in params:
            raise CalibrationError(f"bounds: {b!r} is not one of the calibrated parameters")
    out = []
    for name in params:
        if name not in registry:
            import difflib

            close = difflib.get_close_matches(name, [p.name for p in registry], 3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise CalibrationError(f"params: {name!r} is not a registry parameter{hint}")
        p = registry[name]
        low, high = (float(x) for x in bounds.get(name, (p.low, p.high)))
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise CalibrationError(f"params: {name} has range [{low:g}, {high:g}]; a "
                                   "calibrated parameter needs low < high")
        if name in bounds and (low < p.low or high > p.high):
            raise CalibrationError(f"bounds: {name}: got [{low:g}, {high:g}], outside the "
                                   f"registry range [{p.low:g}, {p.high:g}]; bounds may "
                                   "only narrow it")
        scale = "log10" if low > 0 and high / low >= LOG_RATIO else "lin"
        out.append(Prior(name, low, high, scale, p.value, p.unit))
    return out


# --------------------------------------------------------------------------- #
# The model
# --------------------------------------------------------------------------- #

_READY: dict[str, bool] = {}


def _worker_setup(parent_pid: int, threads: int | None, compounds: tuple[str, ...]) -> None:
    """In a worker process (not the caller's): numba's cache and threads, the user's
    compound files; once per process."""
    if os.getpid() == parent_pid or _READY.get("done"):
        ketasim._ensure_configured()
        return
    ketasim.configure(threads=threads)

    for folder in compounds:
        add_compounds(folder)
    _READY["done"] = True


def statistic_sems(readouts: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The SEM of each row's :func:`statistics` over the simulated subjects: of the group
    mean, or of the change from the baseline time over the subjects with both values
    (the per-subject change; a percent change by the delta method). NaN where fewer than
    two subjects have a value."""
    key = ["arm", "assay", "readout", "time_h"]
    by = {k: g.set_index("subject")["value"].dropna()
          for k, g in readouts.groupby(key, sort=False)}
    out = np.full(len(rows), np.nan)
    for k, r in enumerate(rows.itertuples(index=False)):
        x = by.get((r.arm, r.assay, r.readout, r.time_h))
        if x is None:
            continue
        if r.change:
            b = by.get((r.arm, r.assay, r.readout, r.baseline_h))
            if b is None:
                continue
            x, b = x.align(b, join="inner")
            if r.change == "percent":  # 100 (mx / mb - 1): its linearisation per subject
                mx, mb = x.mean(), b.mean()
                x = 100.0 * (x - mx / mb * b) / mb if mb else x * np.nan
            else:
                x = x - b
        if len(x) >= 2:
            out[k] = float(x.std(ddof=1) / np.sqrt(len(x)))
    return out


def statistics(readouts: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Each data row's statistic from simulated readouts: the group mean (over subjects
    with a value) of the row's arm, assay, readout and time, or its change from the
    baseline time. NaN where the simulation has no value, and for a percent change from
    a baseline mean that is not positive."""
    g = readouts.groupby(["arm", "assay", "readout", "time_h"], sort=False)["value"].mean()
    means = g.to_dict()
    out = np.full(len(rows), np.nan)
    for k, r in enumerate(rows.itertuples(index=False)):
        m = means.get((r.arm, r.assay, r.readout, r.time_h), np.nan)
        if r.change:
            b = means.get((r.arm, r.assay, r.readout, r.baseline_h), np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                # a percent change of a non-positive baseline mean has no meaning (a
                # fall from -10 to -12.6 read as +26%): NaN, as where no value exists
                m = ((100.0 * (m / b - 1.0) if b > 0 else np.nan)
                     if r.change == "percent" else m - b)
        out[k] = m
    return out


@dataclass
class _Model:
    """pyabc's model: parameters on their sampling scale (``p0, p1, ...``) -> ``{"y":
    simulated statistics}``. Picklable (workers receive it)."""

    scenario: object
    registry: object
    priors: tuple[Prior, ...]
    rows: pd.DataFrame
    seed: int
    fixed_seed: bool
    parent_pid: int = field(default_factory=os.getpid)
    threads: int | None = None
    compounds: tuple[str, ...] = ()

    def values(self, par: Mapping) -> dict[str, float]:
        return {p.name: float(p.from_scale(par[f"p{i}"])) for i, p in enumerate(self.priors)}

    def model_seed(self, values: Mapping[str, float]) -> int:
        if self.fixed_seed:
            return int(self.scenario.seed)
        return particle_seed(self.seed, values)

    def simulate(self, values: Mapping[str, float], seed: int | None = None,
                 with_sem: bool = False):
        """The rows' statistics (and, ``with_sem``, their SEMs over the simulated
        subjects: :func:`statistic_sems`)."""
        # deferred: these load the jitted simulation modules (or matplotlib), after
        # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
        from ketasim.experiment.runner import simulate
        _worker_setup(self.parent_pid, self.threads, self.compounds)

        seed = self.model_seed(values) if seed is None else seed
        try:
            res = simulate(self.scenario, seed=seed, registry=self.registry.with_values(values))
        except (ValueError, ArithmeticError, RuntimeError):
            nan = np.full(len(self.rows), np.nan)
            return (nan, nan.copy()) if with_sem else nan
        y = statistics(res.readouts, self.rows)
        return (y, statistic_sems(res.readouts, self.rows)) if with_sem else y

    def __call__(self, par: Mapping) -> dict:
        return {"y": self.simulate(self.values(par))}


def particle_seed(seed: int, values: Mapping[str, float]) -> int:
    """The model seed of a particle: a hash of the run's seed and the values (repr, so
    equal floats give equal seeds in any process)."""
    text = "|".join(f"{k}={float(v)!r}" for k, v in sorted(values.items()))
    digest = hashlib.blake2b(f"{int(seed)}|{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31 - 1)


class _Distance:
    """``sum(((x - x0) / sem) ** 2)``; infinite where a simulation failed."""

    def __init__(self, sem: np.ndarray):
        self.w = 1.0 / np.asarray(sem, float)

    def __call__(self, x: dict, x0: dict, t=None, par=None) -> float:
        d = float(np.sum(((np.asarray(x["y"]) - np.asarray(x0["y"])) * self.w) ** 2))
        return d if math.isfinite(d) else math.inf


def _accept_finite(distance_function, eps, x, x_0, t, par):
    """pyabc acceptor: the uniform acceptor, never accepting a failed simulation (so an
    infinite first threshold accepts every valid prior draw)."""
    from pyabc.acceptor import AcceptorResult

    d = distance_function(x, x_0, t, par)
    return AcceptorResult(distance=d, accept=bool(math.isfinite(d) and d <= eps(t)))


# --------------------------------------------------------------------------- #
# Samplers
# --------------------------------------------------------------------------- #


def _sampler(workers: int | None, scheduler):
    """(pyabc sampler, description, cleanup callable, numba threads for workers)."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    import pyabc

    from ketasim.experiment.pool import worker_pool

    if scheduler is not None:
        from distributed import Client, LocalCluster

        cluster = None
        if isinstance(scheduler, Client):
            client = scheduler
            closers = []
        elif isinstance(scheduler, str) and scheduler == "local":
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
            closers = [client.close, cluster.close]
        elif isinstance(scheduler, str):
            try:
                client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError, ValueError) as e:
                raise CalibrationError(f"--scheduler {scheduler}: cannot connect "
                                       f"({_one_line(e)})") from None
            closers = [client.close]
        else:
            raise TypeError(f"scheduler: got {type(scheduler).__name__}; expected an address, "
                            "'local' or a distributed.Client")
        cores = max(1, sum(client.ncores().values()))
        sampler = pyabc.sampler.DaskDistributedSampler(dask_client=client,
                                                       client_max_jobs=cores)
        what = (f"DaskDistributedSampler ({'LocalCluster' if cluster else scheduler}, "
                f"{cores} worker threads)")
        return sampler, what, lambda: [c() for c in closers], 1
    if workers is None or int(workers) <= 1:
        return pyabc.sampler.SingleCoreSampler(), "SingleCoreSampler", lambda: None, None

    ketasim._ensure_configured()
    pool = worker_pool(int(workers))
    sampler = pyabc.sampler.ConcurrentFutureSampler(cfuture_executor=pool,
                                                    client_max_jobs=int(workers))
    return (sampler, f"ConcurrentFutureSampler ({int(workers)} spawned processes)",
            lambda: pool.shutdown(cancel_futures=True), 1)


# --------------------------------------------------------------------------- #
# Calibration
# --------------------------------------------------------------------------- #


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    order = np.argsort(x)
    x, w = np.asarray(x, float)[order], np.asarray(w, float)[order]
    cw = np.cumsum(w) - 0.5 * w
    cw /= w.sum()
    return np.interp(qs, cw, x)


def check_settings(*, method: str = "abc", population: int = 100, generations: int = 5,
                   predictive_draws: int = 20, starts: int = 3, workers: int | None = None,
                   level: float = LEVEL, model_seed: str | None = None) -> str:
    """Check :func:`calibrate`'s settings (its defaults where not given), before anything
    is read, simulated or written: one :class:`CalibrationError` for the first bad one.
    Returns the model seed mode (``model_seed``, or the method's default)."""
    if method not in METHODS:
        raise CalibrationError(f"method: got {method!r}; expected {' or '.join(METHODS)}")
    model_seed = model_seed or ("particle" if method == "abc" else "fixed")
    if model_seed not in MODEL_SEEDS:
        raise CalibrationError(f"model_seed: got {model_seed!r}; expected "
                               f"{' or '.join(MODEL_SEEDS)}")
    if method == "likelihood" and model_seed != "fixed":
        raise CalibrationError("model_seed: the likelihood method needs 'fixed' (a smooth "
                               "objective)")
    for name, v, lo in (("population", population, 2), ("generations", generations, 1),
                        ("predictive_draws", predictive_draws, 0), ("starts", starts, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise CalibrationError(f"--{name}: got {v!r}; expected a whole number >= {lo}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise CalibrationError(f"--workers: got {workers!r}; expected a whole number >= 1")
    if not 0.5 <= level < 1:
        raise CalibrationError(f"level: got {level!r}; expected a probability in [0.5, 1)")
    return model_seed


def calibrate(scenario, data, params: Sequence[str] | str, out: str | os.PathLike, *,
              method: str = "abc", population: int = 100, generations: int = 5,
              seed: int = 0, registry=None, workers: int | None = None, scheduler=None,
              bounds: Mapping[str, tuple[float, float]] | None = None,
              model_seed: str | None = None, predictive_draws: int = 20,
              max_simulations: int | None = None, min_acceptance_rate: float = 0.002,
              starts: int = 3, level: float = LEVEL, compounds: Sequence[str] = (),
              overwrite: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Calibrate registry parameters ``params`` of ``scenario`` to ``data``; write the
    results to the folder ``out`` and return it (see the module docstring).

    ``scenario``: a Scenario, a YAML file or a built-in name. ``data``: a
    :class:`CalibrationData`, a CSV file, a run/analyze folder or a DataFrame.
    ``method``: ``abc`` (ABC-SMC, ``population`` particles, at most ``generations``
    generations, stopping early below ``min_acceptance_rate`` or after
    ``max_simulations``) or ``likelihood`` (maximum likelihood from the registry defaults
    and ``starts - 1`` random starts, with the ``level`` Wald interval from the Hessian).
    ``registry``: the base parameter values (default: the packaged registry).
    ``model_seed``: ``particle`` (ABC default) or ``fixed`` (likelihood: always).
    ``compounds``: folders of compound files the workers register.
    """
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.experiment.runner import check_supported
    t_start = time.perf_counter()
    ketasim._ensure_configured()  # numba's kernel cache, before the simulation modules load

    started = utc_now()
    model_seed = check_settings(method=method, population=population,
                                generations=generations, predictive_draws=predictive_draws,
                                starts=starts, workers=workers, level=level,
                                model_seed=model_seed)
    registry = load_registry() if registry is None else registry
    if not isinstance(registry, Registry):
        raise TypeError(f"registry: got {type(registry).__name__}; expected a Registry")
    check_writable(Path(out), overwrite)  # before any simulation
    sc, text = _resolve_scenario(scenario)
    data = load_data(data)
    pri = priors(registry, params, bounds)

    rows = _resolve_rows(sc, data)
    sim_sc = _restrict(sc, set(data.table["arm"]))
    check_supported(sim_sc, registry)
    model = _Model(sim_sc, registry, tuple(pri), rows, int(seed), model_seed == "fixed",
                   compounds=tuple(map(str, compounds)))
    defaults = {p.name: p.default for p in pri}
    # the registry defaults (also checks every row is simulated), with the SEMs of that one
    # simulated experiment for the report's z
    ref, ref_sem = model.simulate(defaults, with_sem=True)
    missing = [k for k in range(len(rows)) if not np.isfinite(ref[k])]
    if missing and not np.isfinite(ref).any():
        # the defaults may lie where the model refuses; try the prior's centre
        centre = {p.name: float(p.from_scale(np.mean(p.bounds))) for p in pri}
        ref, ref_sem = model.simulate(centre, with_sem=True)
        missing = [k for k in range(len(rows)) if not np.isfinite(ref[k])]
    if missing:
        k = missing[0]
        raise CalibrationError(f"{data.source}, row {rows['row'].iloc[k]} "
                               f"({data.labels()[k]}): the simulation gives no value there "
                               "(no subject measured, or a zero baseline)")
    if progress:
        progress(f"data: {len(rows)} rows; parameters: {', '.join(p.name for p in pri)}")
    with atomic_dir(Path(out), overwrite) as tmp:
        if method == "abc":
            info = _run_abc(model, data, rows, pri, tmp, population=int(population),
                            generations=int(generations), seed=int(seed), workers=workers,
                            scheduler=scheduler, draws=int(predictive_draws), ref=ref,
                            ref_sem=ref_sem,
                            max_simulations=max_simulations,
                            min_acceptance_rate=float(min_acceptance_rate),
                            progress=progress)
        else:
            info = _run_likelihood(model, data, rows, pri, tmp, seed=int(seed),
                                   starts=int(starts), level=float(level), ref=ref,
                                   ref_sem=ref_sem,
                                   progress=progress)
        info["timings_s"] = {"total": round(time.perf_counter() - t_start, 3),
                             **info.get("timings_s", {})}
        _write_manifest(tmp, info, registry=registry, started=started, text=text, data=data,
                        rows=rows, pri=pri, method=method, seed=seed, model_seed=model_seed,
                        scenario_file=_scenario_file(scenario))
        _write_report(tmp, info, data=data, rows=rows, pri=pri, method=method,
                      scenario=sc)
    return Path(out)


class _Forward(logging.Handler):
    """pyabc's generation messages (logger ``ABC``, INFO) to a progress callable."""

    def __init__(self, progress: Callable[[str], None]):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record) -> None:
        msg = record.getMessage()
        if msg.startswith(("t: ", "Accepted:", "Stop:")):
            self.progress(msg)


def _run_abc(model, data, rows, pri, out: Path, *, population, generations, seed, workers,
             scheduler, draws, ref, ref_sem, max_simulations, min_acceptance_rate,
             progress) -> dict:
    import pyabc

    # pyabc prints its INFO messages on stderr (its own handler): quiet it; with a
    # progress callable, forward the generation lines there instead
    abc_log = logging.getLogger("ABC")
    level, own = abc_log.level, [(h, h.level) for h in abc_log.handlers]
    for h, _lvl in own:
        h.setLevel(logging.WARNING)
    handler = _Forward(progress) if progress else None
    abc_log.setLevel(logging.INFO if progress else logging.WARNING)
    if handler:
        abc_log.addHandler(handler)
    prior = pyabc.Distribution(**{f"p{i}": pyabc.RV("uniform", p.bounds[0],
                                                     p.bounds[1] - p.bounds[0])
                                  for i, p in enumerate(pri)})
    sampler, what, cleanup, threads = _sampler(workers, scheduler)
    model.threads = threads
    db = out / "abc.db"
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    t0 = time.perf_counter()
    try:
        abc = pyabc.ABCSMC(model, prior, pyabc.distance.FunctionDistance(_Distance(data.sems)),
                           population_size=population, sampler=sampler,
                           eps=pyabc.epsilon.QuantileEpsilon(initial_epsilon=math.inf,
                                                             alpha=0.5),
                           acceptor=pyabc.acceptor.FunctionAcceptor(_accept_finite))
        abc.new(f"sqlite:///{db.resolve()}", {"y": data.means})
        cap = max_simulations if max_simulations is not None else population * generations * 50
        with np.errstate(invalid="ignore"):  # pyabc's threshold difference from inf
            history = abc.run(max_nr_populations=generations,
                              min_acceptance_rate=min_acceptance_rate,
                              max_total_nr_simulations=cap)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        cleanup()
        abc_log.setLevel(level)
        for h, lvl in own:
            h.setLevel(lvl)
        if handler:
            abc_log.removeHandler(handler)
    abc_s = time.perf_counter() - t0
    model.threads = None
    t_last = history.max_t
    df, w = history.get_distribution(m=0, t=t_last)
    dist = history.get_weighted_distances(t=t_last)
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0]
    generations_run = [{"generation": int(r.t), "epsilon": float(r.epsilon),
                        "simulations": int(r.samples), "particles": int(r.particles),
                        "acceptance": float(r.particles / r.samples) if r.samples else None}
                       for r in pops.itertuples()]
    w = np.asarray(w, float)
    w = w / w.sum()
    post = pd.DataFrame({"generation": t_last, "particle": np.arange(len(df))})
    scaled = {}
    for i, p in enumerate(pri):
        u = df[f"p{i}"].to_numpy(float)
        scaled[p.name] = u
        post[p.name] = p.from_scale(u)
    post["weight"] = w
    post["distance"] = dist["distance"].to_numpy(float) if len(dist) == len(df) else np.nan
    post.to_parquet(out / "posterior.parquet", index=False)
    summary = []
    for i, p in enumerate(pri):
        q = p.from_scale(_weighted_quantiles(scaled[p.name], w, [0.05, 0.5, 0.95]))
        summary.append({"parameter": p.name, "unit": p.unit, "default": p.default,
                        "prior": "log-uniform" if p.scale == "log10" else "uniform",
                        "prior_low": p.low, "prior_high": p.high, "median": float(q[1]),
                        "q05": float(q[0]), "q95": float(q[2]),
                        "mean": float(np.sum(post[p.name].to_numpy() * w))})
    # posterior-predictive check: simulations from posterior draws
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(post), size=draws, replace=True, p=w) if draws else np.array([], int)
    sims = []
    for k, j in enumerate(idx):
        vals = {p.name: float(post[p.name].iloc[j]) for p in pri}
        sims.append(model.simulate(vals))
        if progress:
            progress(f"predictive draw {k + 1}/{draws}")
    sims = np.array(sims).reshape(len(idx), len(rows))
    pred = _predictive_table(data, rows, sims, ref, ref_sem)
    pred.to_csv(out / "predictive.csv", index=False)
    return {"summary": summary, "generations": generations_run, "sampler": what,
            "simulations": int(history.total_nr_simulations),
            "posterior": post, "scaled": scaled, "weights": w, "draws": sims, "ref": ref,
            "predictive": pred, "population": population, "generations_max": generations,
            "timings_s": {"abc": round(abc_s, 3),
                          "predictive": round(time.perf_counter() - t1, 3)}}


def _predictive_table(data, rows, sims: np.ndarray, ref: np.ndarray,
                      ref_sem: np.ndarray) -> pd.DataFrame:
    """Data against the simulations: ``z`` of the posterior draws' median (their
    expectation: the data's SEM only) and ``z_default`` of the one simulated experiment at
    the registry defaults, whose own sampling error counts too (sqrt of the data's and
    its squared SEMs; the data's alone where it has none)."""
    pred = rows[["row", "arm", "assay", "readout", "time_h", "baseline_h", "change", "mean",
                 "sem"]].copy()
    pred.insert(0, "label", data.labels())
    if sims.size:
        finite = np.where(np.isfinite(sims), sims, np.nan)
        pred["sim_median"] = np.nanmedian(finite, axis=0)
        pred["sim_q05"] = np.nanquantile(finite, 0.05, axis=0)
        pred["sim_q95"] = np.nanquantile(finite, 0.95, axis=0)
        pred["z"] = (pred["sim_median"] - pred["mean"]) / pred["sem"]
    pred["sim_default"] = ref
    pred["sim_default_sem"] = ref_sem
    both = np.sqrt(pred["sem"] ** 2 + np.nan_to_num(np.asarray(ref_sem, float)) ** 2)
    pred["z_default"] = (pred["sim_default"] - pred["mean"]) / both
    return pred


def _run_likelihood(model, data, rows, pri, out: Path, *, seed, starts, level, ref, ref_sem,
                    progress) -> dict:
    from scipy import optimize, stats

    lo = np.array([p.bounds[0] for p in pri])
    hi = np.array([p.bounds[1] for p in pri])
    sem, mean = data.sems, data.means
    n_eval = [0]

    def values(u_scaled):
        return {p.name: float(p.from_scale(u)) for p, u in zip(pri, u_scaled, strict=True)}

    def ss(u_scaled) -> float:
        n_eval[0] += 1
        y = model.simulate(values(u_scaled))
        d = float(np.sum(((y - mean) / sem) ** 2))
        return d if math.isfinite(d) else 1e300

    def f_unit(x):
        return ss(lo + np.clip(x, 0.0, 1.0) * (hi - lo))

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    x_default = np.clip((np.array([p.to_scale(p.default) if p.default > 0 or p.scale == "lin"
                                   else p.bounds[0] for p in pri]) - lo) / (hi - lo), 0, 1)
    inits = [x_default] + [rng.uniform(0.05, 0.95, len(pri)) for _ in range(starts - 1)]
    results = []
    for k, x0 in enumerate(inits):
        r = optimize.minimize(f_unit, x0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(pri),
                              options={"eps": 1e-4, "maxiter": 200, "ftol": 1e-10})
        results.append(r)
        if progress:
            progress(f"start {k + 1}/{starts}: weighted SS {r.fun:.4g}")
    best = min(results, key=lambda r: r.fun)
    u_hat = lo + np.clip(best.x, 0, 1) * (hi - lo)
    # Hessian of the weighted sum of squares on the parameters' scales: central
    # differences about a centre moved inward to one step from a bound, so that no step
    # leaves the prior's range (within the registry's): one-sided differences for an
    # estimate at (or within a step of) a bound
    h = 1e-3 * (hi - lo)
    k = len(pri)
    centre = np.clip(u_hat, lo + h, hi - h)

    def ss_in(u):
        return ss(np.clip(u, lo, hi))  # rounding in centre +- h stays inside too

    f0 = ss_in(centre)
    hess = np.zeros((k, k))
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        hess[i, i] = (ss_in(centre + ei) - 2 * f0 + ss_in(centre - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(k)
            ej[j] = h[j]
            hess[i, j] = hess[j, i] = (ss_in(centre + ei + ej) - ss_in(centre + ei - ej)
                                       - ss_in(centre - ei + ej) + ss_in(centre - ei - ej)
                                       ) / (4 * h[i] * h[j])
    cov, se, note = wald_covariance(hess)
    z = float(stats.norm.ppf(0.5 + level / 2))
    at_bound = (best.x <= 1e-6) | (best.x >= 1 - 1e-6)
    if at_bound.any():
        names = ", ".join(p.name for p, b in zip(pri, at_bound, strict=True) if b)
        note = " ".join(filter(None, [note, (
            f"At a bound of its prior: {names}; the maximum lies on the boundary, so its "
            "standard error (from one-sided differences) and interval are not valid Wald "
            "ones.")]))
    est = pd.DataFrame({
        "parameter": [p.name for p in pri], "unit": [p.unit for p in pri],
        "estimate": [float(p.from_scale(u)) for p, u in zip(pri, u_hat, strict=True)],
        "scale": [p.scale for p in pri], "se_on_scale": se,
        "ci_low": [float(p.from_scale(u - z * s, clip=False))
                   for p, u, s in zip(pri, u_hat, se, strict=True)],
        "ci_high": [float(p.from_scale(u + z * s, clip=False))
                    for p, u, s in zip(pri, u_hat, se, strict=True)],
        "level": level, "default": [p.default for p in pri],
        "low": [p.low for p in pri], "high": [p.high for p in pri], "at_bound": at_bound})
    est.to_csv(out / "estimates.csv", index=False)
    start_rows = pd.DataFrame([{"start": i + 1, "weighted_ss": float(r.fun),
                                "iterations": int(r.nit), "converged": bool(r.success),
                                "message": _one_line(r.message),
                                **{p.name: float(p.from_scale(lo[j] + np.clip(r.x[j], 0, 1)
                                                              * (hi[j] - lo[j])))
                                   for j, p in enumerate(pri)}}
                               for i, r in enumerate(results)])
    start_rows.to_csv(out / "starts.csv", index=False)
    fit = model.simulate(values(u_hat))
    pred = _predictive_table(data, rows, fit[None, :], ref, ref_sem)
    pred = pred.rename(columns={"sim_median": "sim_estimate"}).drop(
        columns=["sim_q05", "sim_q95"])
    pred.to_csv(out / "predictive.csv", index=False)
    summary = [{"parameter": r.parameter, "unit": r.unit, "default": r.default,
                "estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "se_on_scale": r.se_on_scale, "scale": r.scale, "at_bound": bool(r.at_bound)}
               for r in est.itertuples()]
    return {"summary": summary, "estimates": est, "starts": start_rows,
            "objective": float(best.fun), "dof": int(len(rows) - k),
            "covariance_on_scale": cov.tolist(), "hessian_note": note, "level": level,
            "simulations": n_eval[0], "predictive": pred, "fit": fit, "ref": ref,
            "sampler": "scipy.optimize.minimize (L-BFGS-B, finite differences)",
            "timings_s": {"optimise": round(time.perf_counter() - t0, 3)}}


NOT_POSITIVE_DEFINITE = ("the Hessian is not positive definite: no interval (a flat or "
                         "unidentified direction)")


def wald_covariance(hess: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(covariance, standard errors, note) on the sampling scale from the Hessian of the
    weighted sum of squares (-2 log L = SS + const, so the Fisher information is H / 2).
    A Hessian that is not positive definite (a flat, unidentified or saddle direction:
    its smallest eigenvalue not above zero; an indefinite one can have an inverse with a
    positive diagonal) gives NaN and the note."""
    k = hess.shape[0]
    hess = 0.5 * (hess + hess.T)
    ok = bool(np.all(np.isfinite(hess)))
    if ok:
        eig = np.linalg.eigvalsh(hess)
        ok = bool(eig.min() > 1e-12 * max(1.0, float(np.abs(eig).max())))
    if ok:
        cov = 2.0 * np.linalg.inv(hess)
        var = np.diag(cov)
        ok = bool(np.all(np.isfinite(var)) and np.all(var > 0))
    if not ok:
        return np.full((k, k), np.nan), np.full(k, np.nan), NOT_POSITIVE_DEFINITE
    return cov, np.sqrt(var), ""


REPRODUCIBILITY = (
    "Single-core ABC (workers None or 1) and the likelihood method are deterministic given "
    "the seed, the scenario, the data and the registry. Every simulation's model seed is a "
    "function of the seed and the particle's values (model_seed 'particle') or the "
    "scenario's seed (model_seed 'fixed'), never of the worker or the order of work. With "
    "several workers or a Dask scheduler the accepted particles depend on which "
    "simulations finish first, so the posterior sample varies within Monte Carlo error; "
    "the database's time stamps always differ.")


def _scenario_file(scenario) -> Path | None:
    """The file a scenario argument was read from (a path, or a built-in's file), None
    for a scenario model."""
    # deferred: the scenario package imports the assays' jitted modules (see above)
    from ketasim.scenario import builtin_scenarios

    if not isinstance(scenario, (str, os.PathLike)):
        return None
    path = Path(scenario)
    if path.is_file():
        return path
    path = builtin_scenarios().get(str(scenario))
    return path if path is not None and Path(path).is_file() else None


def _write_manifest(out: Path, info: dict, *, registry, started, text, data, rows, pri,
                    method, seed, model_seed, scenario_file: Path | None = None) -> None:

    # every input file with its SHA-256: the scenario's and the data's
    inputs = [f for f in (scenario_file, data.source) if f is not None and Path(f).is_file()]
    man = collect(registry=registry, started=started, scenario_text=text, inputs=inputs)
    man.update({
        "command": "calibrate", "method": method, "seed": int(seed), "model_seed": model_seed,
        "parameters": [p.record() | {"scale": p.scale} for p in pri],
        "data": {"source": data.source, "rows": len(rows), "dropped": list(data.dropped),
                 "labels": data.labels()},
        "sampler": info.get("sampler"), "simulations": info.get("simulations"),
        "summary": info["summary"], "timings_s": info["timings_s"],
        "reproducibility": REPRODUCIBILITY})
    if method == "abc":
        man.update({"population": info["population"],
                    "generations_max": info["generations_max"],
                    "generations": info["generations"]})
    else:
        man.update({"objective_weighted_ss": info["objective"], "dof": info["dof"],
                    "level": info["level"], "covariance_on_scale": info["covariance_on_scale"],
                    "hessian_note": info["hessian_note"]})
    write_json(man, out / "manifest.json")
    info["manifest"] = man


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def _png(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _figure_tag(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _axis_label(p: Prior) -> str:
    return f"log10 {p.name} ({p.unit})" if p.scale == "log10" else f"{p.name} ({p.unit})"


def _posterior_figures(out: Path, info: dict, pri: list[Prior]) -> list[str]:

    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.report._mpl import subplots
    k = len(pri)
    w = info["weights"]
    spans = []
    for p in pri:
        u = info["scaled"][p.name]
        lo, hi = p.bounds
        pad = 0.15 * (u.max() - u.min()) or 0.01 * (hi - lo)
        spans.append((max(lo, u.min() - pad), min(hi, u.max() + pad)))
    # the zoomed row only where it shows something the full range does not
    zoomed = any((b - a) < 0.8 * (p.bounds[1] - p.bounds[0])
                 for p, (a, b) in zip(pri, spans, strict=True))
    fig, axes = subplots(2 if zoomed else 1, k, figsize=(4.2 * k, 6.0 if zoomed else 3.4),
                         squeeze=False)
    for i, p in enumerate(pri):
        u = info["scaled"][p.name]
        lo, hi = p.bounds
        zoom = spans[i]
        for row, (a, b) in enumerate(((lo, hi), zoom)[:2 if zoomed else 1]):
            ax = axes[row][i]
            ax.hist(u, bins=40 if row == 0 else 20, range=(a, b) if row else (lo, hi),
                    weights=w, density=True, color="#4c72b0", alpha=0.75, label="posterior")
            ax.plot([a, b], [1 / (hi - lo)] * 2, color="#888", lw=2, label="prior")
            d = p.to_scale(p.default)
            if a <= d <= b:
                ax.axvline(d, color="#c44e52", ls="--", label="registry default")
            ax.set_xlim(a, b)
            ax.set_xlabel(_axis_label(p) + (" (zoom)" if row else ""))
            ax.set_ylabel("density")
            ax.tick_params(labelsize=8)
            if i == 0 and row == 0:  # above the axes: it covered the tallest bars
                ax.legend(fontsize=7, ncol=3, loc="lower left", bbox_to_anchor=(0.0, 1.0),
                          frameon=False)
    fig.tight_layout()
    tags = [_figure_tag(_png(fig, out / "prior_posterior.png"), "prior and posterior",
                        "Prior (grey) and weighted posterior (blue) of each parameter on its "
                        "sampling scale, over the prior range"
                        + (" (top) and the posterior's span (bottom)" if zoomed else "")
                        + "; dashed: the registry default")]
    if k >= 2:
        fig, axes = subplots(k, k, figsize=(3.0 * k, 3.0 * k), squeeze=False)
        lims = []
        for p in pri:  # the posterior's span, padded (the prior ranges are in the figure above)
            u = info["scaled"][p.name]
            pad = 0.1 * (u.max() - u.min()) or 0.01 * (p.bounds[1] - p.bounds[0])
            lims.append((u.min() - pad, u.max() + pad))
        for i in range(k):
            for j in range(k):
                ax = axes[i][j]
                ax.tick_params(labelsize=7)
                ax.tick_params(axis="x", labelrotation=30)
                if i == j:
                    ax.hist(info["scaled"][pri[i].name], bins=15, range=lims[i],
                            weights=w, color="#4c72b0")
                elif i > j:
                    ax.scatter(info["scaled"][pri[j].name], info["scaled"][pri[i].name],
                               s=8 + 400 * w, alpha=0.6, color="#4c72b0")
                    ax.set_xlim(*lims[j])
                    ax.set_ylim(*lims[i])
                else:
                    ax.axis("off")
                if i == k - 1:
                    ax.set_xlabel(_axis_label(pri[j]), fontsize=8)
                if j == 0 and i > 0:
                    ax.set_ylabel(_axis_label(pri[i]), fontsize=8)
        tags.append(_figure_tag(_png(fig, out / "pairs.png"), "pairwise posterior",
                                "Pairwise posterior scatter (marker size: weight) over the "
                                "posterior's span; diagonal: marginal histograms"))
    return tags


def _predictive_figure(out: Path, data, rows: pd.DataFrame, sims: np.ndarray,
                       ref: np.ndarray, what: str) -> str:

    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.report._mpl import literal, subplots
    keys = list(dict.fromkeys(zip(rows["arm"], rows["assay"], rows["readout"], rows["change"],
                                  strict=True)))
    n = len(keys)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = subplots(nrow, ncol, figsize=(4.3 * ncol, 3.3 * nrow), squeeze=False)
    days = rows["time_h"].abs().max() > 72
    scale = 24.0 if days else 1.0
    for a, key in enumerate(keys):
        ax = axes[a // ncol][a % ncol]
        sel = np.flatnonzero([(r.arm, r.assay, r.readout, r.change) == key
                              for r in rows.itertuples(index=False)])
        order = sel[np.argsort(rows["time_h"].to_numpy()[sel])]
        x = rows["time_h"].to_numpy()[order] / scale
        for s in sims:
            ax.plot(x, s[order], color="#4c72b0", alpha=0.25, lw=1, marker=".")
        # a marker too: a panel with one time has no line to dash
        ax.plot(x, ref[order], color="#c44e52", ls="--", lw=1.2, marker="x", ms=6,
                label="registry defaults")
        ax.errorbar(x, rows["mean"].to_numpy()[order], yerr=rows["sem"].to_numpy()[order],
                    fmt="o", color="k", capsize=3, label="data mean ± SEM", zorder=5)
        arm, _assay, readout, change = key
        base = rows["baseline_h"].to_numpy()[order[0]]
        title = f"{arm}: {readout}" + (f"\n{change} change from {'day' if days else 't ='} "
                                       f"{base / scale:g}{'' if days else ' h'}"
                                       if change else "")
        ax.set_title(literal(title), fontsize=9)
        ax.set_xlabel("day" if days else "time (h)")
        if len(set(x.tolist())) == 1:  # one time: a tick there, not a stretched axis
            ax.set_xticks([x[0]])
            ax.set_xlim(x[0] - 1.0, x[0] + 1.0)
        unit = rows["unit"].to_numpy()[order[0]] if "unit" in rows else ""
        ax.set_ylabel(("% change" if change == "percent" else
                       f"change ({unit})" if change else str(unit or "value")), fontsize=8)
        if a == 0:
            ax.plot([], [], color="#4c72b0", label=what)
            ax.legend(fontsize=7)
    for a in range(n, nrow * ncol):
        axes[a // ncol][a % ncol].axis("off")
    fig.tight_layout()
    caption = (f"Posterior-predictive check: data (black, mean ± SEM), {what} (blue) and "
               "one simulated experiment at the registry defaults (red, dashed, x), with "
               "its own sampling noise")
    return _figure_tag(_png(fig, out / "predictive.png"), "predictive check", caption)


#: a posterior whose 5-95% interval spans more than this share of the prior's own 5-95%
#: interval (on the sampling scale) is reported as barely constrained by the data
UNCONSTRAINED_SHARE = 0.8


def unconstrained(summary: list[dict], pri) -> list[tuple[str, float]]:
    """The parameters whose posterior 5-95% interval spans more than
    :data:`UNCONSTRAINED_SHARE` of the uniform prior's 5-95% interval (0.9 of its range,
    on the sampling scale), with that share."""
    out = []
    for row, p in zip(summary, pri, strict=True):
        lo, hi = p.bounds
        share = float((p.to_scale(row["q95"]) - p.to_scale(row["q05"])) / (0.9 * (hi - lo)))
        if share > UNCONSTRAINED_SHARE:
            out.append((p.name, share))
    return out


def _write_report(out: Path, info: dict, *, data, rows, pri, method, scenario) -> None:

    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.report.html import page, provenance_html, table_html
    e = html.escape
    body = [f"<h1>Calibration: {e(scenario.name)}</h1>",
            (f"<p>Method: <b>{e(method)}</b>; sampler: {e(str(info.get('sampler')))}; "
             f"{info.get('simulations')} simulations; data: {e(data.source)} "
             f"({len(rows)} rows); wall time {info['timings_s']['total']:.1f} s.</p>")]
    body += ["<h2>Parameters</h2>",
             table_html(pd.DataFrame([p.record() for p in pri]), None, "priors"),
             table_html(pd.DataFrame(info["summary"]), None, "summary")]
    if method == "abc":
        loose = unconstrained(info["summary"], pri)
        if loose:
            body.append('<p id="unconstrained"><b>The data barely constrain</b> '
                        + e(", ".join(f"{n} (posterior 5-95% over {s:.0%} of the prior's)"
                                      for n, s in loose))
                        + ": the posterior is close to the prior, so its median says little "
                        "(more data, or more generations).</p>")
        body += ["<h2>Generations</h2>",
                 table_html(pd.DataFrame(info["generations"]), None, "generations"),
                 "<h2>Posterior</h2>", *_posterior_figures(out, info, pri),
                 "<h2>Posterior-predictive check</h2>",
                 _predictive_figure(out, data, rows, info["draws"], info["ref"],
                                    f"{len(info['draws'])} posterior draws")]
    else:
        body += [(f"<p>Weighted sum of squares at the estimate {info['objective']:.4g} "
                  f"({info['dof']} degrees of freedom). Intervals: {info['level']:.0%} Wald "
                  "intervals on each parameter's scale from the Hessian of the weighted sum "
                  "of squares (minus twice the Gaussian log-likelihood). "
                  f"{e(info['hessian_note'])}</p>"),
                 "<h2>Starts</h2>", table_html(info["starts"], None, "starts"),
                 "<h2>Fit</h2>",
                 _predictive_figure(out, data, rows, info["fit"][None, :], info["ref"],
                                    "the maximum-likelihood fit")]
    pred = info["predictive"].drop(columns=["row"])
    body += ["<h2>Data and simulations</h2>", table_html(pred, None, "predictive")]
    if data.dropped:
        body += ["<p>Rows of the data left out:</p><ul>"
                 + "".join(f"<li>{e(d)}</li>" for d in data.dropped) + "</ul>"]
    body += [f"<h2>Reproducibility</h2><p>{e(REPRODUCIBILITY)}</p>",
             *provenance_html(info["manifest"])]
    (out / "report.html").write_text(page(f"ketasim calibrate: {scenario.name}", body))


# --------------------------------------------------------------------------- #
# PEtab
# --------------------------------------------------------------------------- #


def _slug(name: str) -> str:
    s = re.sub(r"\W", "_", name, flags=re.ASCII)
    return s if re.match(r"[A-Za-z_]", s) else f"c_{s}"


def _condition_ids(names: Sequence[str]) -> dict[str, str]:
    """A PEtab condition id (an SBML id too) per arm name, unique and deterministic: the
    name with each character other than an ASCII letter, digit or ``_`` made ``_`` (and
    ``c_`` before a leading digit); where names give the same id (``ket-10``, ``ket_10``),
    the first in the scenario's order keeps it and the others get ``_2``, ``_3``, ...,
    skipping an id that another name gives as it is."""
    plain = [_slug(n) for n in names]
    given = set(plain)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name, s in zip(names, plain, strict=True):
        cid, k = s, 1
        while cid in taken:
            k += 1
            cid = f"{s}_{k}"
            if cid in given:
                cid = s  # another name's own id: try the next number
        out[name] = cid
        taken.add(cid)
    return out


def _typical(scenario, i: int, registry, region: str | None):
    """(parameter vector, events, start time, region) of arm ``i``'s typical subject
    exactly as the runner builds it, with the parameter set of ``region`` (None: the
    first region the arm's assays measure)."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.experiment.runner import subject_model
    from ketasim.signaling.simulate import parameter_vector, start_time

    arm = scenario.arms[i]
    if getattr(arm, "taper", None) is not None:
        raise CalibrationError(f"arms[{i}].taper: arm {arm.name!r} tapers its doses to "
                               "each patient's ratings, which SBML's fixed events cannot "
                               "hold; export an arm without a taper")
    model = subject_model(scenario, i, None, registry=registry, region=region)
    return (parameter_vector(model.cohort, model.events)[0], model.events,
            start_time(model.events), model.region)


def _sbml_parameter(scenario, arms, registry, prior: Prior, base) -> str:
    """The SBML parameter id a registry parameter becomes in every arm's typical subject
    (found by changing it: exactly one model parameter must follow it, unchanged events).
    ``arms``: (index, arm, the region its rows measure or None) of each exported arm;
    ``base``: their :func:`_typical`."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.signaling import spec

    p = registry[prior.name]
    for _i, arm, region in arms:
        if region is not None and f"region.{region}.{prior.name}" in registry:
            raise CalibrationError(f"params: {prior.name} has its own value in region "
                                   f"{region!r} (region.{region}.{prior.name}), where arm "
                                   f"{arm.name!r} is measured: fitting {prior.name} does "
                                   "not move it there; fit the region's entry instead")
    new = p.value + 0.37 * (p.high - p.low) if p.value + 0.37 * (p.high - p.low) <= p.high \
        else p.value - 0.37 * (p.high - p.low)
    reg2 = registry.with_values({prior.name: new})
    where = set()
    for (i, arm, _r), (pvec, events, _t, region) in zip(arms, base, strict=True):
        pvec2, events2, _, _ = _typical(scenario, i, reg2, region)
        changed = np.flatnonzero(~np.isclose(pvec, pvec2, rtol=1e-12, atol=0))
        if not np.allclose(events.values, events2.values, rtol=1e-12, atol=0):
            raise CalibrationError(f"params: {prior.name} changes arm {arm.name!r}'s dosing "
                                   "events in the SBML model; PEtab export needs a plain "
                                   "model parameter")
        if changed.size == 0:
            continue
        if changed.size > 1 or not np.isclose(pvec2[changed[0]], new):
            raise CalibrationError(f"params: {prior.name} is not one parameter of the SBML "
                                   "model (it enters through a derived value); PEtab export "
                                   "covers parameters the model takes as they are")
        where.add(int(changed[0]))
    if not where:
        raise CalibrationError(f"params: {prior.name} is not a parameter of the exported "
                               "SBML model (PK + signalling of the typical subject); the "
                               "spine, circuit, behaviour and measurement layers are not "
                               "exported")
    if len(where) > 1:
        raise CalibrationError(f"params: {prior.name} is a different model parameter in "
                               "different arms; export the arms separately")
    j = where.pop()
    for (_i, arm, _r), (pvec, _e, _t, _g) in zip(arms, base, strict=True):
        if not np.isclose(pvec[j], p.value):
            raise CalibrationError(f"params: {prior.name} (SBML {spec.PVEC_NAMES[j]}) does "
                                   f"not apply in arm {arm.name!r}; export the arms that "
                                   "use it")
    return spec.PVEC_NAMES[j]


#: a PEtab observable's factor from a model output's unit to its readout's (readout unit,
#: output unit); brain tissue is read as 1 g = 1 mL, as the PK assays read it
_UNIT_FACTORS = {("ng/mL", "mg/L"): 1000.0, ("ng/g", "mg/L"): 1000.0, ("ng/g", "ng/mL"): 1.0,
                 ("ng/mL", "ng/g"): 1.0}


def _observable(assay, readout: str, options: Mapping) -> tuple[str, float] | str:
    """How a readout of ``assay`` (an :class:`~ketasim.core.assay.Assay`, run with
    ``options``) reads the SBML model: ``(output, factor)``, the typical subject's
    readout being ``factor * out_<output>`` (its measurement noise has mean zero), or
    why it is no model quantity (a reason). A signalling readout is the output of its
    name; a plasma_pk / brain_pk level is the analyte's plasma / brain output
    (``ketamine_plasma_ng_ml``: ``out_ketamine_plasma``) in the readout's unit;
    venous plasma sampling lags the model's arterial level."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.pk.assays import _BRAIN, _PLASMA, BRAIN_PK, PLASMA_PK
    from ketasim.signaling import spec
    # (the PK assays' own maps of readout to output)

    if readout in spec.OUTPUT_NAMES and readout in assay.outputs:
        return readout, 1.0
    levels = {PLASMA_PK.name: _PLASMA, BRAIN_PK.name: _BRAIN}.get(assay.name, {})
    output = levels.get(readout)
    if output is None or output not in spec.OUTPUT_NAMES:
        return f"{assay.name} readout {readout!r} is not an output of the SBML model " \
            "(PK + signalling)"
    sampling = options.get("sampling", assay.options.get("sampling", "arterial"))
    if sampling != "arterial":
        return (f"{assay.name} readout {readout!r} by {sampling} sampling lags the SBML "
                f"model's arterial output {output!r}")
    have = next(x.unit for x in assay.readouts if x.name == readout)
    unit = next(o[2] for o in spec.OUTPUTS if o[0] == output)
    factor = 1.0 if have == unit else _UNIT_FACTORS.get((have, unit))
    if factor is None:
        return (f"{assay.name} readout {readout!r} is in {have!r}, the SBML output "
                f"{output!r} in {unit!r}")
    return output, factor


def _assay_options(scenario, r) -> Mapping:
    """The options of the assay entry a resolved data row measures."""
    arm = next(a for a in scenario.arms if a.name == r.arm)
    return next(s.options for s in arm.assays
                if s.assay == r.assay and str(s.region) == r.region
                and np.any(np.abs(np.asarray(s.at, float) - r.time_h) <= TIME_TOL_H))


def _merge_events(base_model, doc, slug: str, flag: str | None) -> None:
    """Copy ``doc``'s events into ``base_model``, renamed for the arm and, with a flag,
    gated by the arm's indicator parameter."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    import libsbml

    from ketasim.io.sbml import SBMLExportError


    src = doc.getModel()
    for k in range(src.getNumEvents()):
        ev = src.getEvent(k)
        new = base_model.createEvent()
        new.setId(f"{ev.getId()}_{slug}")
        new.setName(f"{slug}: {ev.getName()}")
        new.setUseValuesFromTriggerTime(True)
        trig = new.createTrigger()
        trig.setInitialValue(True)
        trig.setPersistent(True)
        cond = libsbml.formulaToL3String(ev.getTrigger().getMath())
        if flag:
            cond = f"({cond}) && ({flag} > 0.5)"
        math_ = libsbml.parseL3Formula(cond)
        if math_ is None:
            raise SBMLExportError(f"cannot parse trigger {cond!r}")
        trig.setMath(math_)
        for a in range(ev.getNumEventAssignments()):
            ea = ev.getEventAssignment(a)
            formula = libsbml.formulaToL3String(ea.getMath())
            for pid in sorted(set(re.findall(r"\bev\d+_\w+", formula)), key=len, reverse=True):
                nid = f"{pid.split('_', 1)[0]}_{slug}_{pid.split('_', 1)[1]}"
                if base_model.getParameter(nid) is None:
                    sp = src.getParameter(pid)
                    p = base_model.createParameter()
                    p.setId(nid)
                    p.setName(f"{slug}: {sp.getName()}")
                    p.setValue(sp.getValue())
                    p.setConstant(True)
                    p.setUnits(sp.getUnits())
                formula = re.sub(rf"\b{pid}\b", nid, formula)
            na = new.createEventAssignment()
            na.setVariable(ea.getVariable())
            na.setMath(libsbml.parseL3Formula(formula))


def _arm_regions(rows: pd.DataFrame, source: str) -> dict[str, str]:
    """The region each arm's exported rows measure (the PK levels, the same in every
    region, name none); one error for an arm whose rows measure several."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.pk.assays import BRAIN_PK, PLASMA_PK

    by: dict[str, dict[str, list[int]]] = {}
    for r in rows.itertuples(index=False):
        if r.assay not in (PLASMA_PK.name, BRAIN_PK.name):
            by.setdefault(r.arm, {}).setdefault(r.region, []).append(int(r.row))
    for arm, found in by.items():
        if len(found) > 1:
            where = "; ".join(f"{g}: row{'s' if len(n) > 1 else ''} "
                              f"{', '.join(map(str, n))}" for g, n in found.items())
            raise CalibrationError(
                f"{source}: the exported rows of arm {arm!r} measure {len(found)} "
                f"regions ({where}); the SBML model of an arm's typical subject carries one "
                "region's parameter set: export one region's rows")
    return {arm: next(iter(found)) for arm, found in by.items()}


def export_petab(scenario, data, params: Sequence[str] | str, out: str | os.PathLike, *,
                 registry=None, bounds: Mapping[str, tuple[float, float]] | None = None,
                 overwrite: bool = False) -> Path:
    """Write the calibration problem as PEtab v1 into the folder ``out`` and return the
    path of its ``problem.yaml``.

    The model is the SBML export (:mod:`ketasim.io.sbml`) of the typical subject (no
    between-subject variability) of the data's arms, built as the runner builds it
    (:func:`ketasim.experiment.runner.subject_model`), with the parameter set of the
    region the arm's exported rows measure (the PK levels of ``plasma_pk`` and
    ``brain_pk`` are the same in every region and name none; an arm whose other exported
    rows measure two regions is a :class:`CalibrationError`: export one region's rows).
    One document whose events are every arm's dosing, each gated by a constant indicator
    ``arm_<id>`` that the arm's condition sets to 1 (with one arm, its events as they
    are). Condition ids are the arm names made SBML ids, unique (see
    :func:`_condition_ids`: ``ket-10`` and ``ket_10`` are ``ket_10`` and ``ket_10_2``).
    Model parameters whose typical values differ between arms (the drug slots each arm's
    compounds fill, a region's parameter set) are columns of the condition table. SBML
    time 0 is the earliest arm's start (``time_offset_h`` hours of scenario time);
    measurement times are shifted by it.

    Observables: a data row whose readout the model computes is a measurement of it with
    Gaussian noise of the row's SEM (``noiseParameter1``): the signalling readouts of
    ``signaling_state`` and ``western_blot`` are the outputs of their names
    (``out_<readout>``), and the levels of ``plasma_pk`` and ``brain_pk`` the analytes'
    plasma and brain outputs in the readout's unit (``ketamine_plasma_ng_ml``:
    ``out_ketamine_plasma``, in ng/mL as the readout; a unit factor where they differ).
    Other rows (spines, circuit, behaviour, microdialysis in % of baseline, venous plasma
    sampling, derived changes) are not SBML quantities and are left out; ``README.md``
    lists them. Each parameter in ``params`` must be one SBML model parameter (found by
    changing it in the registry; not one a measured region sets itself); its bounds and
    scale are the ABC prior's. The folder is linted with ``petab.v1.lint_problem``; an
    error there is a :class:`CalibrationError`."""
    # deferred: these load the jitted simulation modules (or matplotlib), after
    # ketasim.configure() has set numba's cache (see ketasim.sweep.core)
    from ketasim.experiment.assays import ASSAYS
    from ketasim.io.sbml import build_document, write_sbml
    from ketasim.signaling import spec
    from ketasim.signaling.protocol import EventTable
    ketasim._ensure_configured()  # numba's kernel cache, before the simulation modules load

    registry = load_registry() if registry is None else registry
    sc = _resolve_scenario(scenario)[0]
    data = load_data(data)
    pri = priors(registry, params, bounds)
    rows = _resolve_rows(sc, data)
    keep, notes, formulas = [], [], []
    labels = data.labels()
    for k, r in enumerate(rows.itertuples(index=False)):
        read = (f"a {r.change} change from another time, not one model quantity" if r.change
                else _observable(ASSAYS[r.assay], r.readout, _assay_options(sc, r)))
        if isinstance(read, str):
            notes.append(f"row {r.row} ({labels[k]}): {read}")
            continue
        output, factor = read
        keep.append(k)
        formulas.append(f"out_{output}" if factor == 1.0 else f"{factor!r} * out_{output}")
    if not keep:
        raise CalibrationError(f"{data.source}: no data row is an SBML model output "
                               "(PK + signalling readouts); nothing to export")
    rows = rows.iloc[keep].reset_index(drop=True)
    rows["formula"] = formulas
    regions = _arm_regions(rows, data.source)
    arm_names = list(dict.fromkeys(rows["arm"]))
    arms = [(i, a, regions.get(a.name)) for i, a in enumerate(sc.arms) if a.name in arm_names]
    base = [_typical(sc, i, registry, region) for i, _a, region in arms]
    t0 = min(b[2] for b in base)
    ids = {p.name: _sbml_parameter(sc, arms, registry, p, base) for p in pri}
    all_ids = _condition_ids([a.name for a in sc.arms])
    slugs = {a.name: all_ids[a.name] for _i, a, _r in arms}
    multi = len(arms) > 1
    n_par = len(spec.PARAMS)
    pmat = np.array([b[0][:n_par] for b in base])
    differ = [j for j in range(n_par) if not np.allclose(pmat[:, j], pmat[0, j], rtol=1e-12,
                                                         atol=0)]
    clash = [n for n, pid in ids.items() if pid in {spec.PARAMS[j].name for j in differ}]
    if clash:
        raise CalibrationError(f"params: {clash[0]} differs between the arms' typical "
                               "subjects; export the arms separately")
    name = f"{sc.name}_{'_'.join(slugs.values())}"
    if multi:
        empty = EventTable(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                           np.zeros((1, 0)), ())
        doc = build_document(base[0][0], empty, 0, t0, name)
        model = doc.getModel()
        for _i, a, _r in arms:
            flag = f"arm_{slugs[a.name]}"
            p = model.createParameter()
            p.setId(flag)
            p.setName(f"1 in arm {a.name}, else 0")
            p.setValue(0.0)
            p.setConstant(True)
            p.setUnits("dimensionless")
        for (_i, a, _r), (pvec, events, _t, _g) in zip(arms, base, strict=True):
            _merge_events(model, build_document(pvec, events, 0, t0, name), slugs[a.name],
                          f"arm_{slugs[a.name]}")
    else:
        doc = build_document(base[0][0], base[0][1], 0, t0, name)
    cond = pd.DataFrame({"conditionId": [slugs[a.name] for _i, a, _r in arms],
                         "conditionName": [a.name for _i, a, _r in arms]})
    if multi:
        for _i, a, _r in arms:
            cond[f"arm_{slugs[a.name]}"] = [1.0 if b.name == a.name else 0.0
                                            for _j, b, _g in arms]
    for j in differ:
        cond[spec.PARAMS[j].name] = pmat[:, j]
    # one observable per readout (a readout reads one output, in one unit)
    obs_formula = dict(zip(rows["readout"], rows["formula"], strict=True))
    obs_ids = {r: f"obs_{r}" for r in obs_formula}
    observables = pd.DataFrame({
        "observableId": list(obs_ids.values()),
        "observableName": list(obs_ids),
        "observableFormula": [obs_formula[r] for r in obs_ids],
        "observableTransformation": "lin",
        "noiseFormula": [f"noiseParameter1_{o}" for o in obs_ids.values()],
        "noiseDistribution": "normal"})
    times = rows["time_h"].to_numpy(float) - t0
    for k in np.flatnonzero(times < 0):
        notes.append(f"row {rows['row'].iloc[k]}: at {rows['time_h'].iloc[k]:g} h, before the "
                     "model's start; measured at SBML time 0 (the baseline state)")
    measurements = pd.DataFrame({
        "observableId": [obs_ids[r] for r in rows["readout"]],
        "simulationConditionId": [slugs[a] for a in rows["arm"]],
        "time": np.maximum(times, 0.0),
        "measurement": rows["mean"].to_numpy(float),
        "noiseParameters": rows["sem"].to_numpy(float)})
    parameters = pd.DataFrame({
        "parameterId": [ids[p.name] for p in pri],
        "parameterName": [p.name for p in pri],
        "parameterScale": [p.scale for p in pri],
        "lowerBound": [p.low for p in pri], "upperBound": [p.high for p in pri],
        "nominalValue": [p.default for p in pri], "estimate": 1,
        "objectivePriorType": "parameterScaleUniform",
        "objectivePriorParameters": [f"{p.bounds[0]!r};{p.bounds[1]!r}" for p in pri]})
    with atomic_dir(Path(out), overwrite, option="--petab") as tmp:
        write_sbml(doc, tmp / "model.xml")
        for df, fname in ((cond, "conditions.tsv"), (measurements, "measurements.tsv"),
                          (observables, "observables.tsv"), (parameters, "parameters.tsv")):
            df.to_csv(tmp / fname, sep="\t", index=False)
        _petab_yaml(tmp)
        _readme(tmp, sc, data, pri, ids, notes, t0, arms, base, slugs, observables)
        _lint(tmp / "problem.yaml")
    return Path(out) / "problem.yaml"


def _petab_yaml(folder: Path) -> None:
    import yaml

    doc = {"format_version": 1, "parameter_file": "parameters.tsv",
           "problems": [{"sbml_files": ["model.xml"], "condition_files": ["conditions.tsv"],
                         "measurement_files": ["measurements.tsv"],
                         "observable_files": ["observables.tsv"]}]}
    (folder / "problem.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _lint(yaml_file: Path) -> None:
    import petab.v1 as petab

    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                records.append(record.getMessage())

    handler = _Collect()
    logger = logging.getLogger("petab")
    logger.addHandler(handler)
    try:
        problem = petab.Problem.from_yaml(str(yaml_file))  # files relative to the YAML
        failed = petab.lint_problem(problem)
    finally:
        logger.removeHandler(handler)
    if failed:
        raise CalibrationError("PEtab lint failed: " + ("; ".join(records) or "see the log"))


def _readme(folder: Path, sc, data, pri, ids, notes, t0, arms, base, slugs,
            observables: pd.DataFrame) -> None:
    conds = ", ".join(f"{a.name} ({slugs[a.name]}, region {b[3]})"
                      for (_i, a, _r), b in zip(arms, base, strict=True))
    lines = [f"# PEtab export: {sc.name}", "",
             f"Data: {data.source}. Arms (conditions): {conds}.",
             f"SBML time 0 is scenario time {t0:g} h (parameter time_offset_h).", "",
             "| registry parameter | SBML parameter | scale | bounds |", "|---|---|---|---|"]
    lines += [f"| {p.name} | {ids[p.name]} | {p.scale} | [{p.low:g}, {p.high:g}] |" for p in pri]
    lines += ["", "| readout | observable | formula |", "|---|---|---|"]
    lines += [f"| {o.observableName} | {o.observableId} | {o.observableFormula} |"
              for o in observables.itertuples(index=False)]
    lines += ["", ("The model is the typical subject (no between-subject variability): group "
                   "means of a varying cohort are compared with the typical subject's values."),
              ""]
    if notes:
        lines += ["Data rows left out or changed:", ""] + [f"- {n}" for n in notes]
    (folder / "README.md").write_text("\n".join(lines) + "\n")
