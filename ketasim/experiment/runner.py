"""Run a scenario: cohorts, protocol, model layers, assays -> a long readouts table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketasim.experiment.assays import ASSAYS, SPINE_ASSAYS
from ketasim.experiment.cohort import sample_cohort
from ketasim.experiment.measure import AssayContext, AssayOptionError, resolve_options
from ketasim.experiment.timeline import compile_arm
from ketasim.params import Registry, load_registry
from ketasim.signaling.simulate import DEFAULT_ATOL, DEFAULT_RTOL, simulate_signaling

READOUT_COLUMNS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]


class UnsupportedAssayError(ValueError):
    """The scenario asks for an assay no layer implements yet."""


@dataclass
class RunResult:
    """Everything a run produced (the files of ``ketasim run`` are written from this)."""

    scenario: object
    seed: int
    readouts: pd.DataFrame
    timings_s: dict[str, float] = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    tracking: dict[str, pd.DataFrame] = field(default_factory=dict)  # arm -> observed spines
    calcium: dict[str, dict] = field(default_factory=dict)  # arm -> {time_h: first dF/F}
    tst: dict[str, dict] = field(default_factory=dict)  # arm -> ethograms, peri-struggle dF/F


def check_supported(scenario, registry: Registry | None = None) -> None:
    """Every assay is simulated, its options are valid, and an arm's spine assays image
    one cell type that has a spine parameter set in the registry."""
    from ketasim.spines.engine import spine_cells

    cells = None
    for i, arm in enumerate(scenario.arms):
        arm_cell = None
        for j, a in enumerate(arm.assays):
            where = f"arms[{i}].assays[{j}]"
            if a.assay not in ASSAYS:
                raise UnsupportedAssayError(
                    f"{where}.assay: got {a.assay!r}; expected an assay this version "
                    f"simulates: {sorted(ASSAYS)}")
            opts = resolve_options(ASSAYS[a.assay], a.options, where)
            if a.assay not in SPINE_ASSAYS:
                continue
            cells = cells or spine_cells(registry or load_registry())
            if opts["cell"] not in cells:
                raise AssayOptionError(f"{where}.options.cell: got {opts['cell']!r}; "
                                       f"expected a cell type with spine parameters: {cells}")
            if arm_cell is not None and opts["cell"] != arm_cell:
                raise AssayOptionError(
                    f"{where}.options.cell: got {opts['cell']!r}; an arm's spine assays "
                    f"measure one population, and an earlier assay of this arm uses "
                    f"{arm_cell!r}")
            arm_cell = opts["cell"]


def simulate(scenario, seed: int | None = None, registry: Registry | None = None,
             progress: Callable[[str], None] | None = None, rtol: float = DEFAULT_RTOL,
             atol: float = DEFAULT_ATOL) -> RunResult:
    """Simulate every arm of ``scenario`` and measure its assays.

    ``seed`` overrides the scenario's seed. Numbers depend only on the scenario, the
    seed and the parameter registry (not on the number of cores).
    """
    registry = registry or load_registry()
    seed = scenario.seed if seed is None else int(seed)
    check_supported(scenario, registry)
    species = scenario.species
    frames: list[pd.DataFrame] = []
    tracking: dict[str, pd.DataFrame] = {}
    calcium: dict[str, dict] = {}
    tst: dict[str, dict] = {}
    timings: dict[str, float] = {}
    steps: dict[str, float] = {}
    for i, arm in enumerate(scenario.arms):
        t0 = time.perf_counter()
        cohort = sample_cohort(registry, species, arm.name, arm.n, seed,
                               body_weight_kg=arm.body_weight_kg)
        events = compile_arm(arm, species, cohort, registry, arm_path=f"arms[{i}]")
        plans = []
        outputs: set[str] = set()
        times: set[float] = set()
        for j, spec_ in enumerate(arm.assays):
            assay = ASSAYS[spec_.assay]
            opts = resolve_options(assay, spec_.options, f"arms[{i}].assays[{j}]")
            at = np.asarray(spec_.at, dtype=float)
            times.update(assay.sample_times(at, opts).tolist())
            outputs.update(assay.outputs)
            plans.append((assay, opts, at))
        if not plans:
            continue
        spine_plan = _spine_plan(arm, plans, events)
        if spine_plan is not None:
            times.update(spine_plan["grid"].tolist())
            outputs.update(SPINE_DRIVES)
        grid = np.array(sorted(times))
        names = tuple(sorted(outputs))
        sim = simulate_signaling(cohort, events, grid, names, rtol=rtol, atol=atol)
        steps[arm.name] = float(sim.steps.mean())
        recording = None
        if spine_plan is not None:
            recording = _run_spines(registry, seed, arm, sim, grid, spine_plan)

        def trajectory(output: str, at: np.ndarray, _sim=sim, _grid=grid) -> np.ndarray:
            idx = np.searchsorted(_grid, at)
            idx = np.clip(idx, 0, len(_grid) - 1)
            if not np.all(_grid[idx] == at):
                raise RuntimeError("assay asked for a time it did not declare")
            return _sim.output(output)[:, idx]

        for assay, opts, at in plans:
            ctx = AssayContext(seed, arm.name, arm.n, species, opts, trajectory, recording,
                               registry=registry)
            rows = assay.measure(ctx, at)
            if "tracking" in ctx.kept:
                tracking[arm.name] = ctx.kept["tracking"]
            if "calcium" in ctx.kept:
                calcium[arm.name] = ctx.kept["calcium"]
            if "tst" in ctx.kept:
                tst[arm.name] = ctx.kept["tst"]
            frames.append(pd.DataFrame({
                "arm": arm.name, "subject": rows.subject.astype(np.int64),
                "assay": assay.name, "readout": rows.readout.astype(str),
                "time_h": rows.time_h.astype(float), "value": rows.value.astype(float),
                "unit": rows.unit.astype(str)}))
        timings[arm.name] = time.perf_counter() - t0
        if progress:
            progress(arm.name)
    readouts = (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame({c: [] for c in READOUT_COLUMNS}))
    return RunResult(scenario, seed, readouts[READOUT_COLUMNS], timings,
                     {"method": "auto", "rtol": rtol, "atol": atol}, steps, tracking, calcium,
                     tst)


SPINE_DRIVES = ("formation_drive", "elimination_drive", "synaptic_protein")


def _spine_plan(arm, plans, events) -> dict | None:
    """Engine grid, recording times, branches and photoactivation times of an arm whose
    assays need the spine layer (None if none do)."""
    from ketasim.signaling.simulate import LEAD_IN_H
    from ketasim.spines.simulate import DT_H

    spine = [(a, o, at) for a, o, at in plans if a.name in SPINE_ASSAYS]
    if not spine:
        return None
    rec = sorted({float(t) for _, _, at in spine for t in at})
    first = min([0.0, rec[0]] + ([float(events.times[0])] if events.n else []))
    t0 = np.floor((first - LEAD_IN_H) / DT_H) * DT_H
    if any(a.name in ("calcium_imaging", "tail_suspension", "escape_test", "fear_extinction")
           for a, _, _ in spine):
        rec = sorted({float(t0), *rec})  # the pre-protocol baseline the circuit scales by
    n_steps = int(np.ceil((rec[-1] - t0) / DT_H)) + 1
    photo = sorted(ev.at for ev in arm.protocol
                   if getattr(ev, "intervention", None) == "as_parac1_photoactivation")
    return {"grid": t0 + DT_H * np.arange(n_steps), "t0": float(t0), "record": rec,
            "branches": max(int(o.get("branches", 4)) for _, o, _ in spine),
            "cell": spine[0][1]["cell"],
            "photo": np.array(photo, dtype=float)}


def _run_spines(registry, seed, arm, sim, grid, plan):
    from ketasim.spines.engine import SpineParams
    from ketasim.spines.simulate import simulate_spines

    idx = np.searchsorted(grid, plan["grid"])
    drives = {d: sim.output(d)[:, idx] for d in SPINE_DRIVES}
    photo = np.tile(plan["photo"], (arm.n, 1))
    return simulate_spines(SpineParams.from_registry(registry, plan["cell"]), seed, arm.name,
                           arm.n,
                           plan["branches"], drives, plan["t0"], plan["record"], photo)
