"""Global sensitivity of a readout to the registry's parameters (issue 17, item 2).

The parameter space is the registry itself: every parameter has a plausible range
``[low, high]`` (``ketasim/params/parameters.yaml``), and a sensitivity problem is a
list of parameter names over those ranges (:func:`problem_from_registry`). A range
spanning a factor of :data:`LOG_RATIO` or more with positive bounds (a rate from 0.03 to
3 per hour, a potency from 20 to 1000 uM) is sampled uniformly in log space (SALib's
``logunif``), so each decade gets the same share of samples; the problem, the indices
table (``scale``) and the manifest say which were.

Two methods, both with SALib's samplers and estimators:

- ``sobol``: Saltelli's scheme (SALib ``sample.sobol``, scrambled Sobol' sequence,
  ``calc_second_order=False``: ``N x (D + 2)`` simulations for ``D`` parameters and a
  base sample ``N``, a power of two) and ``analyze.sobol``: the first-order index
  ``S1`` (the share of the readout's variance explained by the parameter alone) and the
  total index ``ST`` (with all its interactions), each with a bootstrap confidence
  interval.
- ``morris``: elementary-effects screening (SALib ``sample.morris``, ``r``
  trajectories on a 4-level grid, ``r x (D + 1)`` simulations) and ``analyze.morris``:
  ``mu_star`` (the mean absolute elementary effect), ``mu`` (its signed mean) and
  ``sigma`` (spread: interactions or non-linearity), with bootstrap confidence
  intervals over trajectories. An elementary effect is SALib's: the change of the
  readout over one grid step (2/3 of the range) divided by that step, i.e. the change
  per the parameter's whole range on its sampling scale (per the range of log10 of
  the parameter for a log-scaled one), in the readout's unit; a readout linear in the
  parameter, ``y = a x`` over ``[low, high]``, has ``mu_star = |a| (high - low)``.

Samples are deterministic for a seed. :func:`run_sensitivity` evaluates them with the
sweep (:func:`ketasim.sweep.core.run_sweep`, into ``OUT/sweep``), reduces each sample's
summary to one number (:func:`readout_values`: a readout's mean in an arm at a time, or
its difference to a contrast arm) and writes ``indices.csv``, ``samples.csv`` and
``manifest.json``; ``indices.png`` is drawn by the callable passed as ``figure``
(:func:`ketasim.report.sensitivity_figures.plot_indices` from the command line).

:func:`target_sensitivity` asks, for every literature target of the validation, which
parameters its statistic depends on most: per replica one Morris screening (default
``r = 4`` trajectories over at most 12 parameters, about 50 simulations), every target's
statistic evaluated on each sample's full readouts, ranked by ``mu_star``.

This module imports neither the report nor the validation package: figures and the
statistic evaluator come in as arguments, so ``ketasim.sweep`` may sit beside them in
the layer order.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import ketasim
from ketasim.experiment.assays import ASSAYS
from ketasim.experiment.pool import worker_pool
from ketasim.experiment.runner import simulate
from ketasim.io.results import json_text
from ketasim.params import Registry, load_registry
from ketasim.pk.compounds import COMPOUNDS
from ketasim.provenance import collect, utc_now
from ketasim.scenario import (
    Scenario,
    UnitError,
    builtin_scenarios,
    format_time,
    load_scenario,
    parse_time,
)
from ketasim.signaling import spec
from ketasim.signaling.protocol import INTERVENTIONS, STRESSORS
from ketasim.sweep.core import MAX_SAMPLES, read_sweep, run_sweep

__all__ = [
    "DEFAULT_N", "INDEX_COLUMNS", "LOG_RATIO", "METHODS", "TARGET_COLUMNS",
    "SensitivityError",
    "elementary_effects", "indices", "n_simulations", "problem_from_registry",
    "readout_values", "resolve_parameters", "run_sensitivity", "sample",
    "scenario_parameters", "screening_parameters", "target_sensitivity", "top_parameters",
]

METHODS = ("sobol", "morris")


class SensitivityError(ValueError):
    """A sensitivity analysis was asked for something it cannot do (parameters, method,
    sample size, readout, the values handed back): one line naming what is wrong."""


LOG_RATIO = 10.0  # high / low at or above which a positive range is sampled in log space
MORRIS_LEVELS = 4
DEFAULT_N = {"sobol": 64, "morris": 10}  # base sample N (Sobol) or trajectories r (Morris)
NUM_RESAMPLES = 1000  # bootstrap resamples of the confidence intervals
INDEX_COLUMNS = ["parameter", "method", "index", "value", "ci_low", "ci_high", "scale"]
TARGET_COLUMNS = ["replica", "target_id", "parameter", "mu_star", "ci_low", "ci_high",
                  "sigma", "share", "rank", "trajectories", "scale"]
SWEEP_COLUMNS = ("sample", "arm", "assay", "readout", "time_h", "mean")
STATISTICS = ("mean", "sem", "n")
# registry parameters that set how the simulation is run, not the biology
_SETTINGS = ("burn_in_d", "branch_length")
# for a bounded screening of a replica (target_sensitivity), after the parameters fitted
# to its targets and those of its drugs and stressors: the signalling hubs, upstream first
_HUBS = ("rec.potency_interneuron", "rec.potency_pyramidal", "sig.glu_amplitude",
         "sig.disinhibition_o50", "sig.da_gain", "sig.pka_gain", "sig.k_priming",
         "sig.bdnf_eef2_gain", "sig.mtor_erk_exponent", "sig.k_structural",
         "sig.formation_gain", "sig.k_potentiation_on", "sig.k_potentiation_off",
         "stress.k_on", "stress.k_off")
_SPINE_HUBS = ("stress_gain", "k_syn", "e0")


# --------------------------------------------------------------------------- parameters
def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


def _varies(registry: Registry, name: str) -> bool:
    p = registry[name]
    return bool(np.isfinite(p.low) and np.isfinite(p.high) and p.low < p.high)


def resolve_parameters(registry: Registry, patterns: Iterable[str]) -> list[str]:
    """Parameter names from exact names and shell-style patterns (``sig.k_*``,
    ``spine.mpfc_l5.*``), in the order given (a pattern's matches in registry order,
    those with a range of no width left out), each once: a name a pattern also matches,
    or a name given twice, is kept once (:func:`run_sensitivity` and
    :func:`target_sensitivity` refuse an entry given twice before calling this). An
    exact name is kept as given, so :func:`problem_from_registry` reports it if it is
    unknown or cannot vary; a pattern that matches nothing is a SensitivityError."""
    out: list[str] = []
    empty = []
    for pat in patterns:
        pat = str(pat).strip()
        if not pat:
            continue
        if not _is_glob(pat):
            out.append(pat)
            continue
        hits = [p.name for p in registry if fnmatch.fnmatchcase(p.name, pat)
                and _varies(registry, p.name)]
        if not hits:
            empty.append(pat)
        out += hits
    if empty:
        raise SensitivityError(f"--params: {', '.join(map(repr, empty))} match no registry "
                         "parameter with a range to vary")
    return list(dict.fromkeys(out))


def _check_repeats(names: Iterable[str]) -> list[str]:
    """``names`` as a list; a SensitivityError naming every entry given more than once
    (the public entry points refuse a repeat, which :func:`resolve_parameters` would
    merge silently; a name that a pattern also matches is not a repeat)."""
    names = [str(n).strip() for n in names]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise SensitivityError(f"sensitivity parameters: named twice: {', '.join(twice)}")
    return names


def problem_from_registry(registry: Registry, names: list[str], *,
                          log_scale: str | bool | Iterable[str] = "auto") -> dict:
    """A SALib problem over the registry ranges of ``names``.

    Parameters
    ----------
    registry : Registry
        Ranges, units and defaults.
    names : list of str
        Parameter names (see :func:`resolve_parameters` for patterns).
    log_scale : "auto", bool or iterable of str
        ``"auto"``: sample a parameter uniformly in log space when its bounds are positive
        and ``high / low >= LOG_RATIO``; ``True``/``False``: all or none; names: those.

    Returns
    -------
    dict
        SALib's ``num_vars``, ``names``, ``bounds`` (``[low, high]`` in the parameter's
        unit) and ``dists`` (``"logunif"`` or ``"unif"``), plus ``log_scale`` (bools),
        ``units`` and ``defaults``.

    Raises
    ------
    SensitivityError
        One message naming every unknown or repeated name, every range without width
        and every log-scaled range that is not positive.
    """
    names = [str(n) for n in names]
    problems = []
    if not names:
        raise SensitivityError("sensitivity: no parameters to vary")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"named twice: {', '.join(twice)}")
    unknown = [n for n in names if n not in registry]
    if unknown:
        every = [p.name for p in registry]
        hint = []
        for n in unknown:
            close = difflib.get_close_matches(n, every, n=1)
            hint.append(f"{n} (did you mean {close[0]}?)" if close else n)
        problems.append(f"not in the registry: {', '.join(hint)}")
    known = [n for n in names if n in registry]
    flat = [f"{n} [{registry[n].low:g}, {registry[n].high:g}]" for n in known
            if not _varies(registry, n)]
    if flat:
        problems.append(f"ranges without width, nothing to vary: {', '.join(flat)}")
    if isinstance(log_scale, str) and log_scale == "auto":
        logs = {n for n in known if registry[n].low > 0
                and registry[n].high / registry[n].low >= LOG_RATIO}
    elif isinstance(log_scale, bool):
        logs = set(known) if log_scale else set()
    elif isinstance(log_scale, str):
        raise SensitivityError(f"log_scale: got {log_scale!r}; expected 'auto', True, False or "
                         "parameter names")
    else:
        logs = set(map(str, log_scale))
        stray = sorted(logs - set(names))
        if stray:
            problems.append(f"log_scale names parameters not varied: {', '.join(stray)}")
    bad_log = [f"{n} [{registry[n].low:g}, {registry[n].high:g}]" for n in known
               if n in logs and not registry[n].low > 0]
    if bad_log:
        problems.append(f"log scale needs positive bounds: {', '.join(bad_log)}")
    if problems:
        raise SensitivityError("sensitivity parameters: " + "; ".join(problems))
    params = [registry[n] for n in names]
    scale = [n in logs for n in names]
    return {"num_vars": len(names), "names": names,
            "bounds": [[p.low, p.high] for p in params],
            "dists": ["logunif" if s else "unif" for s in scale],
            "log_scale": scale, "units": [p.unit for p in params],
            "defaults": [p.value for p in params]}


def _scenario_drugs(scenario) -> list[str]:
    out = []
    for arm in scenario.arms:
        for ev in arm.protocol:
            drug = getattr(ev, "drug", None)
            if drug:
                out.append(drug)
    return list(dict.fromkeys(out))


def _scenario_routes(scenario) -> list[str]:
    return list(dict.fromkeys(str(ev.route) for arm in scenario.arms for ev in arm.protocol
                              if getattr(ev, "drug", None) and getattr(ev, "route", None)))


def _compound_parameters(drug: str, species: str, routes: Iterable[str] = (),
                         seen: set[str] | None = None) -> list[str]:
    """Registry parameters a compound reads in ``species`` by ``routes`` (its PK, the
    overrides of those routes, its potencies and efficacies), with those of its
    components (a racemate's enantiomers) and of the metabolites it forms."""
    seen = set() if seen is None else seen
    if drug in seen or drug not in COMPOUNDS:
        return []
    seen.add(drug)
    routes = tuple(routes)
    c = COMPOUNDS[drug]
    vals = [c.mw] if c.mw else []
    pk = c.pk.get(species)
    if pk is not None:
        vals += list(pk.fields.values())
        vals += [v for r, d in pk.routes.items() if r in routes for v in d.values()]
        vals += list((pk.allometry or {}).values()) + list((pk.hepatic_age or {}).values())
    vals += [v for _, v in c.metabolites]
    for t in c.targets:
        vals += [v for v in (t.potency, t.efficacy, t.trapping, t.mg_rest) if v]
        vals += list(t.window_potency.values())
    names = [n for v in vals for n in v.names(species)]
    for part in c.components:
        names += _compound_parameters(part, species, routes, seen)
    for met, _ in c.metabolites:
        names += _compound_parameters(met, species, routes, seen)
    return list(dict.fromkeys(names))


def _spine_cells(scenario) -> list[str]:
    cells = []
    for arm in scenario.arms:
        for a in arm.assays:
            assay = ASSAYS.get(a.assay)
            if assay is not None and assay.needs_spines:
                cells.append(str((a.options or {}).get("cell", assay.options.get("cell"))))
    return list(dict.fromkeys(c for c in cells if c and c != "None"))


def scenario_parameters(scenario, registry: Registry | None = None) -> list[str]:
    """The registry parameters a scenario's simulation reads that have a range to vary:
    the signalling ODE's (``sig.*``, ``rec.*``, ``stress.k_*``, for the scenario's
    species), those of the compounds it doses, their components and the metabolites
    they form (PK, potencies), of the routes it doses by, the intensities of its stressors, the parameters its interventions set,
    and, when an assay reads the spine layer, the spine parameters of the imaged cell
    (``spine.<cell>.*``, less the simulation settings ``burn_in_d`` and
    ``branch_length``). Circuit and behaviour parameters are not included (name them
    with ``--params``, e.g. ``'behavior.tst.*'``)."""
    registry = load_registry() if registry is None else registry
    sc = _as_scenario(scenario)
    species = sc.species
    names = [p.registry.replace("{species}", species) for p in spec.PARAMS if p.registry]
    for drug in _scenario_drugs(sc):
        names += _compound_parameters(drug, species, _scenario_routes(sc))
    for route in _scenario_routes(sc):
        names += [p.name for p in registry if p.name.startswith(f"route.{species}.{route}.")]
    for arm in sc.arms:
        for ev in arm.protocol:
            st = getattr(ev, "stress", None)
            if st in STRESSORS:
                names.append(STRESSORS[st].intensity)
            iv = getattr(ev, "intervention", None)
            if iv in INTERVENTIONS:
                for c in INTERVENTIONS[iv].controls:
                    names += [v for v in (c.value, c.lasts) if isinstance(v, str)]
    for cell in _spine_cells(sc):
        prefix = f"spine.{cell}."
        names += [p.name for p in registry if p.name.startswith(prefix)
                  and p.name[len(prefix):] not in _SETTINGS]
    return [n for n in dict.fromkeys(names) if n in registry and _varies(registry, n)]


def _pk_only(scenario) -> bool:
    """Whether every assay of the scenario measures drug concentrations only."""
    specs = [s for arm in scenario.arms for s in arm.assays if s.assay in ASSAYS]
    return bool(specs) and all(
        getattr(ASSAYS[s.assay].measure, "__module__", "").startswith("ketasim.pk.")
        for s in specs)


def screening_parameters(scenario, registry: Registry | None = None,
                         fitted: Iterable[str] = (), limit: int = 12) -> list[str]:
    """At most ``limit`` parameters for a bounded screening of one scenario (a replica):
    the ``fitted`` parameters first (those its targets were calibrated with), then the
    clearance, brain partition and potency of each compound it doses, its stressors'
    intensities, then (a scenario measuring concentrations only) the rest of its PK or
    (any other) a few signalling hubs from NMDA block to potentiation (:data:`_HUBS`)
    and, when it images spines, the cell's elimination and synapse parameters; each only
    if the scenario reads it and its range has width. A heuristic for a cheap screening,
    not a proof that the others do not matter: name parameters to screen others."""
    registry = load_registry() if registry is None else registry
    sc = _as_scenario(scenario)
    used_list = scenario_parameters(sc, registry)
    used = set(used_list)
    pk_only = _pk_only(sc)
    order = [n for n in fitted if n in registry and _varies(registry, n)]
    kinds = [lambda n: n.startswith("pk.") and n.endswith(".cl"),
             lambda n: n.endswith(".kp_brain")]
    if not pk_only:
        kinds.append(lambda n: n.startswith("rec.ki_") or n.endswith((".ed50", ".ec50")))
    for drug in _scenario_drugs(sc):  # its clearance, brain partition and potency
        mine = _compound_parameters(drug, sc.species, _scenario_routes(sc))
        for kind in kinds:
            order += [n for n in mine if kind(n)][:1]
    order += [STRESSORS[ev.stress].intensity for arm in sc.arms for ev in arm.protocol
              if getattr(ev, "stress", None) in STRESSORS]
    if pk_only:  # concentrations only: the rest of the PK, no signalling
        order += [n for n in used_list if n.startswith(("pk.", "route."))]
    else:
        order += [*_HUBS]
    order += [f"spine.{cell}.{k}" for cell in _spine_cells(sc) for k in _SPINE_HUBS]
    fitted = set(fitted)
    chosen = [n for n in dict.fromkeys(order) if n in fitted or n in used]
    return chosen[:max(1, int(limit))]


# --------------------------------------------------------------------------- sampling
def _method(method: str) -> str:
    m = str(method).lower()
    if m not in METHODS:
        raise SensitivityError(f"method: got {method!r}; expected one of {', '.join(METHODS)}")
    return m


def _salib(problem: dict) -> dict:
    return {k: problem[k] for k in ("num_vars", "names", "bounds", "dists") if k in problem}


def n_simulations(problem: dict, method: str, n: int) -> int:
    """Samples a design of ``n`` needs: ``n (D + 2)`` for Sobol, ``n (D + 1)`` for
    Morris."""
    d = int(problem["num_vars"])
    return int(n) * (d + 2 if _method(method) == "sobol" else d + 1)


def sample(problem: dict, method: str, n: int, seed: int) -> pd.DataFrame:
    """Parameter samples, one row per simulation (index ``sample``, 0-based), one column
    per parameter (values in the registry's units), deterministic for ``seed``.

    ``sobol``: Saltelli's scheme over a scrambled Sobol' sequence (``n``, the base
    sample, a power of two; ``n (D + 2)`` rows). ``morris``: ``n`` trajectories on a
    4-level grid (``n >= 2``; ``n (D + 1)`` rows, trajectory after trajectory)."""
    from SALib.sample import morris as morris_sample  # SALib: only the sensitivity needs it
    from SALib.sample import sobol as sobol_sample

    method = _method(method)
    if isinstance(n, bool) or int(n) != n:
        raise SensitivityError(f"n: got {n!r}; expected a whole number")
    n = int(n)
    rows = n * (len(problem["names"]) + (2 if method == "sobol" else 1))
    if rows > MAX_SAMPLES:  # as a sweep's cap, before SALib allocates them
        raise SensitivityError(f"n: got {n}; {method} would draw {rows} samples over "
                               f"{len(problem['names'])} parameters, expected at most "
                               f"{MAX_SAMPLES}")
    if method == "sobol":
        if n < 2 or n & (n - 1):
            raise SensitivityError(f"n: got {n}; Sobol' sampling needs a power of two (e.g. 64 "
                             "or 256) as its base sample")
        x = sobol_sample.sample(_salib(problem), n, calc_second_order=False,
                                scramble=True, seed=int(seed))
    else:
        if n < 2:
            raise SensitivityError(f"n: got {n}; Morris screening needs at least 2 trajectories")
        x = morris_sample.sample(_salib(problem), n, num_levels=MORRIS_LEVELS,
                                 seed=int(seed))
    bounds = np.asarray(problem["bounds"], dtype=float)
    x = np.clip(x, bounds[:, 0], bounds[:, 1])  # log-space round-off at the bounds
    df = pd.DataFrame(x, columns=list(problem["names"]))
    df.index.name = "sample"
    return df


# --------------------------------------------------------------------------- indices
# indices that cannot be negative: a symmetric bootstrap interval is cut at 0
_NON_NEGATIVE = ("mu_star", "sigma")


def _rows(problem: dict, method: str, index: str, value, conf) -> list[dict]:
    value = np.ma.filled(np.ma.asarray(value, dtype=float), np.nan)
    conf = np.ma.filled(np.ma.asarray(conf, dtype=float), np.nan)
    floor = 0.0 if index in _NON_NEGATIVE else -np.inf
    return [{"parameter": name, "method": method, "index": index, "value": float(v),
             "ci_low": float(max(v - c, floor)), "ci_high": float(v + c),
             "scale": "log" if log else "linear"}
            for name, v, c, log in zip(problem["names"], value, conf,
                                       problem.get("log_scale",
                                                   [False] * problem["num_vars"]),
                                       strict=True)]


def elementary_effects(problem: dict, x: np.ndarray, y: np.ndarray,
                       num_levels: int = MORRIS_LEVELS) -> np.ndarray:
    """``(D, r)`` elementary effects of Morris trajectories, as SALib computes them: the
    change of ``y`` over one step of the grid divided by the step
    (``num_levels / (2 (num_levels - 1))`` of the unit range), i.e. the change per the
    parameter's whole range on its sampling scale, signed by the direction of the
    parameter's move."""
    d = int(problem["num_vars"])
    r = len(y) // (d + 1)
    delta = num_levels / (2.0 * (num_levels - 1))
    dx = np.diff(np.asarray(x, float).reshape(r, d + 1, d), axis=1)  # (r, d, d)
    dy = np.diff(np.asarray(y, float).reshape(r, d + 1), axis=1)  # (r, d)
    ee = np.full((d, r), np.nan)
    for t in range(r):
        for k in range(d):
            moved = np.flatnonzero(dx[t, k])
            if moved.size != 1:
                raise SensitivityError(f"trajectory {t}, step {k}: {moved.size} parameters "
                                 "moved; expected one (not a Morris design?)")
            j = int(moved[0])
            ee[j, t] = np.sign(dx[t, k, j]) * dy[t, k] / delta
    return ee


def _bootstrap_conf(ee: np.ndarray, fn, rng: np.random.Generator, num_resamples: int,
                    conf_level: float) -> np.ndarray:
    r = ee.shape[1]
    idx = rng.integers(0, r, size=(num_resamples, r))
    boot = np.stack([fn(ee[:, i]) for i in idx])  # (resamples, d)
    return stats.norm.ppf(0.5 + conf_level / 2.0) * boot.std(axis=0, ddof=1)


def indices(problem: dict, method: str, samples_df: pd.DataFrame, y: np.ndarray, *,
            seed: int, conf_level: float = 0.95, num_resamples: int = NUM_RESAMPLES
            ) -> pd.DataFrame:
    """Sensitivity indices of ``y`` (one value per row of ``samples_df``, in order).

    ``sobol``: ``S1`` and ``ST`` per parameter (SALib ``analyze.sobol``; every value must
    be finite). ``morris``: ``mu_star``, ``mu`` and ``sigma`` (SALib ``analyze.morris``;
    trajectories with a non-finite value are left out, and the table's ``trajectories``
    column says how many were used). Confidence intervals at ``conf_level`` from
    ``num_resamples`` bootstrap resamples (SALib's for ``S1``, ``ST`` and ``mu_star``;
    the same normal approximation, over trajectories, for ``mu`` and ``sigma``),
    deterministic for ``seed``.

    Returns
    -------
    pandas.DataFrame
        ``parameter, method, index, value, ci_low, ci_high, scale`` (``log`` where the
        parameter was sampled in log space), plus ``trajectories`` for Morris.
    """
    from SALib.analyze import morris as morris_analyze  # SALib: only here
    from SALib.analyze import sobol as sobol_analyze

    method = _method(method)
    if not 0 < conf_level < 1:
        raise SensitivityError(f"conf_level: got {conf_level!r}; expected a number in (0, 1)")
    names = list(problem["names"])
    missing = [n for n in names if n not in samples_df.columns]
    if missing:
        raise SensitivityError(f"samples: no column for {', '.join(missing)}")
    x = samples_df[names].to_numpy(float)
    y = np.asarray(y, dtype=float).ravel()
    d = len(names)
    if len(y) != len(x):
        raise SensitivityError(f"y: {len(y)} values for {len(x)} samples")
    finite = np.isfinite(y)
    if method == "sobol":
        if len(y) % (d + 2):
            raise SensitivityError(f"y: {len(y)} values; a Sobol' design over {d} parameters has "
                             f"a multiple of {d + 2}")
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise SensitivityError(f"y: {bad.size} of {len(y)} samples have no finite value "
                             f"(samples {', '.join(map(str, bad[:8]))}"
                             f"{', ...' if bad.size > 8 else ''}); Sobol' indices need "
                             "every sample (use morris, which leaves such trajectories out)")
        if np.ptp(y) == 0:
            raise SensitivityError(f"y: the readout does not vary across the {len(y)} samples "
                             f"(always {y[0]:g}); its variance has nothing to apportion")
        res = sobol_analyze.analyze(_salib(problem), y, calc_second_order=False,
                                    num_resamples=num_resamples, conf_level=conf_level,
                                    seed=seed)
        rows = (_rows(problem, method, "S1", res["S1"], res["S1_conf"])
                + _rows(problem, method, "ST", res["ST"], res["ST_conf"]))
        return pd.DataFrame(rows, columns=INDEX_COLUMNS)
    if len(y) % (d + 1):
        raise SensitivityError(f"y: {len(y)} values; a Morris design over {d} parameters has a "
                         f"multiple of {d + 1}")
    r = len(y) // (d + 1)
    keep = finite.reshape(r, d + 1).all(axis=1)
    if keep.sum() < 2:
        raise SensitivityError(f"y: {int(keep.sum())} of {r} Morris trajectories have finite "
                         "values throughout; at least 2 are needed")
    rows_kept = np.repeat(keep, d + 1)
    xk, yk = x[rows_kept], y[rows_kept]
    res = morris_analyze.analyze(_salib(problem), xk, yk, num_resamples=num_resamples,
                                 conf_level=conf_level, num_levels=MORRIS_LEVELS, seed=seed)
    ee = elementary_effects(problem, xk, yk)
    rng = np.random.default_rng(seed)
    mu_conf = _bootstrap_conf(ee, lambda e: e.mean(axis=1), rng, num_resamples, conf_level)
    sd_conf = _bootstrap_conf(ee, lambda e: e.std(axis=1, ddof=1), rng, num_resamples,
                              conf_level)
    rows = (_rows(problem, method, "mu_star", res["mu_star"], res["mu_star_conf"])
            + _rows(problem, method, "mu", res["mu"], mu_conf)
            + _rows(problem, method, "sigma", res["sigma"], sd_conf))
    out = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    out["trajectories"] = int(keep.sum())
    return out


# --------------------------------------------------------------------------- readouts
def _hours(t) -> float:
    return float(t) if isinstance(t, (int, float, np.number)) else float(parse_time(str(t)))


def _order(v):
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


def _listing(values, limit: int = 12) -> str:
    vals = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    more = f" (and {len(vals) - limit} more)" if len(vals) > limit else ""
    return ", ".join(vals[:limit]) + more


def readout_values(sweep_df: pd.DataFrame, readout: str, *, arm: str | None = None,
                   time_h: float | str | None = None, contrast_arm: str | None = None,
                   assay: str | None = None, statistic: str = "mean",
                   n_samples: int | None = None) -> np.ndarray:
    """One number per sample from a sweep's summary (:func:`ketasim.sweep.core.read_sweep`):
    ``statistic`` (``mean``, ``sem`` or ``n``) of ``readout`` in ``arm`` at ``time_h``
    (hours, or a time with a unit such as ``"24h"``), minus the same in
    ``contrast_arm`` when given (e.g. ketamine minus saline).

    ``arm``, ``time_h`` and ``assay`` may be left out where the readout has one value
    per sample without them (with ``contrast_arm``, ``arm`` defaults to the one other
    arm). Values are ordered by sample index; with ``n_samples``, samples 0 ..
    ``n_samples - 1`` and NaN where one is missing.

    Raises
    ------
    SensitivityError
        One message when the selection is empty (naming what there is) or ambiguous
        (naming what tells the rows apart).
    """
    missing = [c for c in SWEEP_COLUMNS if c not in sweep_df.columns]
    if missing:
        raise SensitivityError(f"sweep table: missing columns {', '.join(missing)}")
    if statistic not in STATISTICS or statistic not in sweep_df.columns:
        raise SensitivityError(f"statistic: got {statistic!r}; expected one of "
                         f"{', '.join(s for s in STATISTICS if s in sweep_df.columns)}")
    rows = sweep_df[sweep_df["readout"] == readout]
    if rows.empty:
        raise SensitivityError(f"readout {readout!r}: not in the sweep; it has "
                         f"{_listing(sorted(sweep_df['readout'].unique()))}")
    if assay is not None:
        sel = rows[rows["assay"] == assay]
        if sel.empty:
            raise SensitivityError(f"readout {readout!r}: no assay {assay!r}; measured by "
                             f"{_listing(sorted(rows['assay'].unique()))}")
        rows = sel
    if time_h is not None:
        t = _hours(time_h)
        sel = rows[np.isclose(rows["time_h"].to_numpy(float), t, rtol=0, atol=1e-6)]
        if sel.empty:
            raise SensitivityError(f"readout {readout!r}: no values at {t:g} h; measured at "
                             f"{_listing(sorted(rows['time_h'].unique()))} h")
        rows = sel
    arms = list(dict.fromkeys(rows["arm"]))
    if contrast_arm is not None and contrast_arm not in arms:
        raise SensitivityError(f"contrast arm {contrast_arm!r}: no {readout!r} values there; "
                         f"arms with them: {_listing(arms)}")
    if arm is None and contrast_arm is not None:
        others = [a for a in arms if a != contrast_arm]
        if len(others) != 1:
            raise SensitivityError(f"readout {readout!r}: arms {_listing(others) or 'none'} "
                             f"besides the contrast {contrast_arm!r}; name one with arm")
        arm = others[0]
    keys = [c for c in ("arm", "assay", "time_h", "region") if c in rows.columns]

    def pick(name: str | None) -> pd.DataFrame:
        sel = rows if name is None else rows[rows["arm"] == name]
        if sel.empty:
            raise SensitivityError(f"arm {name!r}: no {readout!r} values; arms with them: "
                             f"{_listing(arms)}")
        combos = sel[keys].drop_duplicates()
        if len(combos) > 1:
            varying = [k for k in keys if combos[k].nunique() > 1]
            hint = {"arm": "arm", "time_h": "time_h (--at)", "assay": "assay",
                    "region": "a region"}
            parts = [f"{k} {_listing(sorted(combos[k].unique(), key=_order))}"
                     for k in varying]
            raise SensitivityError(f"readout {readout!r} is ambiguous: {len(combos)} series "
                             f"({'; '.join(parts)}); choose with "
                             f"{' and '.join(hint[k] for k in varying)}")
        if sel["sample"].duplicated().any():
            raise SensitivityError(f"readout {readout!r}: several rows per sample in one series")
        return sel

    a = pick(arm)
    values = a.set_index("sample")[statistic].astype(float)
    if contrast_arm is not None:
        b = pick(contrast_arm)
        ta, tb = a["time_h"].iloc[0], b["time_h"].iloc[0]
        if not np.isclose(ta, tb) or a["assay"].iloc[0] != b["assay"].iloc[0]:
            raise SensitivityError(f"readout {readout!r}: arm {arm!r} has it at {ta:g} h "
                             f"({a['assay'].iloc[0]}), the contrast {contrast_arm!r} at "
                             f"{tb:g} h ({b['assay'].iloc[0]}); give time_h")
        other = b.set_index("sample")[statistic].astype(float)
        values = values.sub(other)  # aligned on sample; NaN where either is missing
    values = values.sort_index()
    if n_samples is not None:
        values = values.reindex(range(int(n_samples)))
    return values.to_numpy(float)


def _check_selection(sc, readout: str, arm, contrast_arm, assay, time_h=None) -> None:
    """Fail before simulating when the scenario cannot give the readout (at ``time_h``)."""
    arms = {a.name: a for a in sc.arms}
    for what, name in (("arm", arm), ("contrast arm", contrast_arm)):
        if name is not None and name not in arms:
            raise SensitivityError(f"{what} {name!r}: not an arm of {sc.name} "
                             f"({_listing(list(arms))})")
    measured = {r for a in sc.arms for s in a.assays if s.assay in ASSAYS
                and (assay is None or s.assay == assay)
                for r in ASSAYS[s.assay].readout_names}
    if readout not in measured:
        raise SensitivityError(f"readout {readout!r}: no assay of {sc.name} measures it; its "
                         f"readouts: {_listing(sorted(measured))}")
    if time_h is None:
        return
    try:
        t = _hours(time_h)
    except (UnitError, ValueError) as e:
        raise SensitivityError(f"--at: got {time_h!r}; {e}") from None
    read = [arms[a] for a in (arm, contrast_arm) if a is not None] or list(sc.arms)
    times = sorted({x for a in read for x in a.times_of(readout, assay)})
    if not any(abs(x - t) <= 1e-9 for x in times):
        raise SensitivityError(f"--at: got {time_h!r}; {readout} is measured at "
                               f"{_listing([format_time(x) for x in times])}")


def _check_out(out: Path) -> None:
    """An existing ``out`` must be an earlier sensitivity analysis (resumed or redone)
    or empty: another command's folder is never written into."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SensitivityError(f"--out {out}: exists and is not a folder")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            command = json.loads(manifest.read_text()).get("command")
        except (OSError, ValueError, AttributeError):
            command = None
        if command == "sensitivity":
            return
    elif entries <= {"sweep", "samples.csv"}:
        return  # an interrupted analysis: its sweep resumes
    raise SensitivityError(f"--out {out}: holds another command's files "
                           f"({_listing(sorted(entries))}); give an empty or new folder, or "
                           "an earlier sensitivity analysis to resume")


# --------------------------------------------------------------------------- run
def _as_scenario(scenario):
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def _scenario_file(scenario) -> Path | None:
    if isinstance(scenario, Scenario):
        return None
    p = Path(scenario)
    if p.is_file():
        return p
    return builtin_scenarios().get(str(scenario))


def _write_csv(df: pd.DataFrame, path: Path, **kw) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, **kw)
    os.replace(tmp, path)


def _title(scenario: str, readout: str, arm, time_h, contrast_arm, statistic) -> str:
    what = readout if statistic == "mean" else f"{statistic} of {readout}"
    where = arm or ""
    if contrast_arm is not None:
        where = f"{arm} - {contrast_arm}" if arm else f"minus {contrast_arm}"
    at = f" at {_hours(time_h):g} h" if time_h is not None else ""
    return f"{scenario}: {what}" + (f", {where}" if where else "") + at


def _default_sweep(scenario, samples, out, **kw) -> pd.DataFrame:
    """Every sample at the same simulation seed (common random numbers): the samples
    differ by their parameter values only, so the indices do not take up the
    difference between one sample's subjects and another's."""
    return read_sweep(run_sweep(scenario, samples, out, common_seed=True, **kw))


def run_sensitivity(scenario, readout: str, out, *, names: Iterable[str] | None = None,
                    method: str = "sobol", n: int | None = None, arm: str | None = None,
                    time_h: float | str | None = None, contrast_arm: str | None = None,
                    assay: str | None = None, statistic: str = "mean", seed: int = 0,
                    sim_seed: int | None = None, log_scale="auto",
                    conf_level: float = 0.95, registry: Registry | None = None,
                    figure: Callable[[pd.DataFrame, Path, str], object] | None = None,
                    sweep: Callable | None = None, **sweep_kwargs) -> Path:
    """Global sensitivity of one readout of a scenario; returns ``out``.

    Samples the parameters (``names``: names or patterns, default
    :func:`scenario_parameters`) with ``method`` (``n``: Sobol' base sample, a power of
    two, default 64; Morris trajectories, default 10) at ``seed``, simulates every
    sample with ``sweep`` (default :func:`ketasim.sweep.core.run_sweep` into
    ``out/sweep``, then ``read_sweep``; ``sim_seed`` is its simulation seed, default the
    scenario's, and ``sweep_kwargs`` go to it: ``executor``, ``scheduler``, ``workers``,
    ``chunk_samples``, ``progress``), reduces each to one number
    (:func:`readout_values`) and writes into ``out``:

    - ``indices.csv``: the indices (:func:`indices`);
    - ``samples.csv``: each sample's parameter values and ``value``, the number analysed;
    - ``indices.png`` when ``figure`` is given (called as ``figure(table, path,
      title)``, e.g. :func:`ketasim.report.sensitivity_figures.plot_indices`);
    - ``manifest.json``: the problem (ranges, units, scales), the selection, the
      method, seeds, counts, files, timings and provenance.

    A ``sweep`` callable is called as ``sweep(scenario, samples, out / "sweep",
    seed=sim_seed, registry=registry, **sweep_kwargs)`` and returns the summary table
    (columns of ``read_sweep``) or a folder ``read_sweep`` reads. Running again into the
    same ``out`` with the same arguments resumes the sweep where it stopped.

    The default sweep runs every sample at the same seed (``sim_seed``, default the
    scenario's: common random numbers), so a readout with between-subject or measurement
    noise is drawn from the same subjects and the same measurement noise in every sample,
    and the indices measure what the parameters change, not the difference between one
    cohort and another (with a seed per sample, a parameter that changes nothing showed
    Morris mu* near the readout's SEM). The indices then hold for that cohort; a second
    ``sim_seed`` shows how far they move with it. Latent readouts (``signaling_state``)
    are noise-free either way.
    """
    started = utc_now()
    t0 = time.perf_counter()
    method = _method(method)
    registry = load_registry() if registry is None else registry
    sc = _as_scenario(scenario)
    _check_selection(sc, readout, arm, contrast_arm, assay, time_h)
    _check_out(Path(out))
    if statistic not in STATISTICS:
        raise SensitivityError(f"statistic: got {statistic!r}; expected one of "
                         f"{', '.join(STATISTICS)}")
    chosen = (scenario_parameters(sc, registry) if names is None
              else resolve_parameters(registry, _check_repeats(names)))
    problem = problem_from_registry(registry, chosen, log_scale=log_scale)
    n = DEFAULT_N[method] if n is None else n
    samples = sample(problem, method, n, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_sample = time.perf_counter()
    result = (sweep or _default_sweep)(scenario, samples, out / "sweep", seed=sim_seed,
                                       registry=registry, **sweep_kwargs)
    if not isinstance(result, pd.DataFrame):
        result = read_sweep(result)
    t_sweep = time.perf_counter()
    y = readout_values(result, readout, arm=arm, time_h=time_h, contrast_arm=contrast_arm,
                       assay=assay, statistic=statistic, n_samples=len(samples))
    _write_csv(samples.assign(value=y), out / "samples.csv")  # kept if the indices fail
    table = indices(problem, method, samples, y, seed=seed, conf_level=conf_level)
    _write_csv(table, out / "indices.csv", index=False)
    files = ["indices.csv", "samples.csv"]
    if figure is not None:
        figure(table, out / "indices.png", _title(sc.name, readout, arm, time_h,
                                                  contrast_arm, statistic))
        files.append("indices.png")
    source = _scenario_file(scenario)
    text = source.read_bytes().decode("utf-8-sig") if source is not None else None
    manifest = collect(registry=registry, started=started, scenario_text=text,
                       inputs=[source] if source is not None else []) | {
        "command": "sensitivity", "scenario": sc.name, "method": method, "n": int(n),
        "seed": int(seed), "sim_seed": sim_seed, "conf_level": conf_level,
        "samples": len(samples), "finite_values": int(np.isfinite(y).sum()),
        "selection": {"readout": readout, "arm": arm,
                      "time_h": None if time_h is None else _hours(time_h),
                      "contrast_arm": contrast_arm, "assay": assay,
                      "statistic": statistic},
        "parameters": [{"name": nm, "low": lo, "high": hi, "unit": u, "default": v,
                        "scale": "log" if lg else "linear"}
                       for nm, (lo, hi), u, v, lg in zip(
                           problem["names"], problem["bounds"], problem["units"],
                           problem["defaults"], problem["log_scale"], strict=True)],
        "log_scale_rule": f"positive range with high / low >= {LOG_RATIO:g}",
        "sweep": "sweep", "files": files,
        "timings_s": {"sampling": t_sample - t0, "sweep": t_sweep - t_sample,
                      "total": time.perf_counter() - t0}}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json_text(manifest, sort_keys=False))
    os.replace(tmp, out / "manifest.json")
    return out


# --------------------------------------------------------------------------- targets
@lru_cache(maxsize=8)
def _load(path: str):
    return load_scenario(path)


def _evaluate_sample(path: str, overrides: dict[str, float], statistics: dict[str, str],
                     evaluate: Callable, registry: Registry) -> tuple[dict[str, float], str]:
    """One sample of a replica (in a worker): each target's statistic (NaN where it
    cannot be computed) and the error if the simulation failed. The replica runs at its
    own seed, so every sample shares its random numbers (common random numbers)."""
    sc = _load(str(path))
    try:
        res = simulate(sc, registry=registry.with_values(overrides))
    except (ValueError, ArithmeticError, RuntimeError) as e:  # the solver's SolverError,
        # a protocol or spine check the parameters break: reported, not fatal
        return dict.fromkeys(statistics, math.nan), f"{type(e).__name__}: {e}"
    values = {}
    for tid, expr in statistics.items():
        try:
            with np.errstate(all="ignore"):  # a statistic of perturbed readouts may be NaN
                v = float(evaluate(expr, res.readouts, res.tracking))
        except (ValueError, ArithmeticError):  # the validation's StatisticError included
            v = math.nan
        values[tid] = v if math.isfinite(v) else math.nan
    return values, ""


def _evaluate_samples(path: str, rows: list[dict[str, float]], statistics: dict[str, str],
                      evaluate: Callable, registry: Registry
                      ) -> list[tuple[dict[str, float], str]]:
    """:func:`_evaluate_sample` for several samples of one replica (a worker's job)."""
    return [_evaluate_sample(path, row, statistics, evaluate, registry) for row in rows]


def _statistic(t) -> str:
    return t if isinstance(t, str) else str(t.statistic)


def target_sensitivity(replicas: Mapping[str, str | os.PathLike],
                       targets: Mapping[str, Mapping[str, object]], *,
                       evaluate: Callable[[str, pd.DataFrame, dict], float],
                       registry: Registry | None = None,
                       names: Iterable[str] | None = None, r: int = 4,
                       max_params: int = 12, seed: int = 0, workers: int | None = 1,
                       executor: Executor | None = None,
                       compounds: Iterable[str | os.PathLike] = (),
                       conf_level: float = 0.95,
                       progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Which parameters each target's statistic depends on most: per replica, one Morris
    screening (``r`` trajectories, ``r (D + 1)`` simulations) over ``names`` (names or
    patterns, shared by every replica) or, by default, :func:`screening_parameters`
    (at most ``max_params``, the parameters fitted to the replica's targets first), every
    target statistic evaluated on each sample's full readouts.

    Parameters
    ----------
    replicas : mapping
        Replica name -> scenario file.
    targets : mapping
        Replica name -> ``{target_id: target}``, a target being its statistic expression
        or an object with ``statistic`` (and ``fitted``, the calibrated parameters), as
        :class:`ketasim.validation.targets.Target`.
    evaluate : callable
        ``evaluate(expression, readouts, tracking) -> float``, i.e.
        :func:`ketasim.validation.statistic.evaluate` (a module-level function, so that
        worker processes can receive it).
    workers, executor, compounds
        Samples run in ``executor`` if given, else in a pool of ``workers`` spawned
        processes that know the ``compounds`` folders (``None``: one per core), else
        (``1``) here. Each sample runs at the replica's own seed, so the numbers do not
        depend on the workers or the order.

    Returns
    -------
    pandas.DataFrame
        :data:`TARGET_COLUMNS`: per target and parameter ``mu_star`` (the mean absolute
        elementary effect: the statistic's change per the parameter's whole range on
        its sampling scale, log10 for a log-scaled one, in the statistic's unit; see the
        module docstring) with its confidence interval, ``sigma``, ``share`` (``mu_star``
        over the target's sum) and ``rank`` (1 = most influential), the trajectories with
        finite values and the parameter's sampling ``scale``. A target whose statistic
        never had a finite value gets NaN rows.
    """
    registry = load_registry() if registry is None else registry
    unknown = sorted(set(targets) - set(replicas))
    if unknown:
        raise SensitivityError(f"targets of unknown replicas: {', '.join(unknown)}")
    shared = None if names is None else resolve_parameters(registry, _check_repeats(names))
    plans = []
    for name in targets:
        path = str(replicas[name])
        tmap = targets[name]
        if shared is not None:
            chosen = shared
        else:
            fitted = [f for t in tmap.values() for f in getattr(t, "fitted", ())]
            chosen = screening_parameters(_load(path), registry, fitted, max_params)
        problem = problem_from_registry(registry, chosen)
        plans.append((name, path, tmap, problem, sample(problem, "morris", r, seed)))
    # one job per trajectory (D + 1 samples): few round trips, the registry sent once each
    jobs = []
    for name, path, tmap, problem, s in plans:
        statistics = {tid: _statistic(t) for tid, t in tmap.items()}
        records = s.to_dict("records")
        step = int(problem["num_vars"]) + 1
        for first in range(0, len(records), step):
            jobs.append((name, first, (path, records[first:first + step], statistics,
                                       evaluate, registry)))
    results: dict[tuple[str, int], dict[str, float]] = {}
    errors: dict[str, list[str]] = {}

    def collect(name: str, first: int, out: list) -> None:
        for k, (values, err) in enumerate(out):
            results[name, first + k] = values
            if err:
                errors.setdefault(name, []).append(err)
            if progress:
                progress(name)

    own_pool = None
    if executor is None and (workers is None or workers > 1) and len(jobs) > 1:

        ketasim._ensure_configured()  # the workers inherit numba's cache folder
        own_pool = executor = worker_pool(
            max(1, min(workers or os.cpu_count() or 1, len(jobs))), compounds)
    try:
        if executor is None:
            for name, first, args in jobs:
                collect(name, first, _evaluate_samples(*args))
        else:
            futures = [(name, first, executor.submit(_evaluate_samples, *args))
                       for name, first, args in jobs]
            for name, first, fut in futures:
                collect(name, first, fut.result())
    finally:
        if own_pool is not None:
            own_pool.shutdown()
    rows: list[dict] = []
    for name, _, tmap, problem, s in plans:
        for tid in tmap:
            y = np.array([results[name, i][tid] for i in range(len(s))])
            rows += _target_rows(name, tid, problem, s, y, seed, conf_level)
    table = pd.DataFrame(rows, columns=TARGET_COLUMNS).astype(
        {"mu_star": float, "ci_low": float, "ci_high": float, "sigma": float,
         "share": float, "rank": "Int64", "trajectories": int})
    table.attrs["errors"] = errors  # replica -> messages of samples that failed
    return table


def _target_rows(replica: str, tid: str, problem: dict, s: pd.DataFrame, y: np.ndarray,
                 seed: int, conf_level: float) -> list[dict]:
    """The rows of one target, most influential parameter first (NaN where fewer than two
    trajectories had a finite value)."""
    names = list(problem["names"])
    scale = ["log" if lg else "linear" for lg in problem["log_scale"]]
    try:
        t = indices(problem, "morris", s, y, seed=seed, conf_level=conf_level)
    except SensitivityError:  # fewer than two trajectories with finite values
        return [{"replica": replica, "target_id": tid, "parameter": n, "mu_star": math.nan,
                 "ci_low": math.nan, "ci_high": math.nan, "sigma": math.nan,
                 "share": math.nan, "rank": None, "trajectories": 0, "scale": sc}
                for n, sc in zip(names, scale, strict=True)]
    ms = t[t["index"] == "mu_star"].set_index("parameter").loc[names]
    sd = t[t["index"] == "sigma"].set_index("parameter").loc[names, "value"]
    total = float(ms["value"].sum())
    rank = ms["value"].rank(ascending=False, method="first").astype(int)
    rows = [{"replica": replica, "target_id": tid, "parameter": n,
             "mu_star": float(ms.at[n, "value"]), "ci_low": float(ms.at[n, "ci_low"]),
             "ci_high": float(ms.at[n, "ci_high"]), "sigma": float(sd[n]),
             "share": float(ms.at[n, "value"]) / total if total > 0 else 0.0,
             "rank": int(rank[n]), "trajectories": int(t["trajectories"].iloc[0]),
             "scale": sc}
            for n, sc in zip(names, scale, strict=True)]
    return sorted(rows, key=lambda row: row["rank"])


def top_parameters(table: pd.DataFrame, k: int = 3) -> dict[str, str]:
    """Per target, its ``k`` most influential parameters as text for the validation
    report, e.g. ``"pk.mouse.ketamine.cl 61%, pk.mouse.ketamine.kp_brain 24%,
    sig.da_gain 9%"`` (each parameter's share of the summed ``mu_star``); ``"none of the
    screened parameters"`` when the statistic did not move, ``"not computed"`` when it
    never had a value."""
    out: dict[str, str] = {}
    for tid, g in table.groupby("target_id", sort=False):
        g = g[np.isfinite(g["mu_star"].to_numpy(float))]
        if g.empty:
            out[tid] = "not computed"
            continue
        g = g.sort_values(["mu_star", "parameter"], ascending=[False, True], kind="stable")
        g = g[g["mu_star"] > 0].head(k)
        out[tid] = (", ".join(f"{p} {s:.0%}" for p, s in zip(g["parameter"], g["share"],
                                                                 strict=True))
                    or "none of the screened parameters")
    return out
