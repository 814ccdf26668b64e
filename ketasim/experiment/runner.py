"""Run a scenario: cohorts, protocol, model layers, assays -> a long readouts table.

Each arm is processed in chunks of subjects, end to end (cohort, signalling, spines, the
circuit stage, every assay), so memory is bounded whatever the arm's size. Every random
number comes from a stream keyed by subject (global index), purpose, branch and assay
(:mod:`ketasim.core.streams`), so results do not depend on the chunk size, and adding an
assay, a branch or an arm leaves the other assays' numbers unchanged.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketasim.circuit.assay import CircuitStage
from ketasim.clinical.model import HISTORY_ANCHOR
from ketasim.core.assay import Assay, AssayContext, AssayOptionError, resolve_options
from ketasim.core.regions import DEFAULT_REGION, REGION_CELLS
from ketasim.experiment.assays import ASSAYS
from ketasim.experiment.cohort import sample_cohort
from ketasim.experiment.population import POOL, draw_patients, pooled_patients, screen
from ketasim.experiment.taper import TaperPlan
from ketasim.experiment.trial import (
    ICE_ASSAY,
    INTERCURRENT_COLUMNS,
    IntercurrentPlan,
    apply_dropout,
)
from ketasim.params import Registry, load_registry
from ketasim.params.regions import check_regions, region_registry
from ketasim.pk.compounds import BSA_KM, COMPOUNDS
from ketasim.signaling.protocol import (
    ProtocolError,
    arm_in_region,
    compile_arm,
    event_where,
    intervention_times,
)
from ketasim.signaling.simulate import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    LEAD_IN_H,
    simulate_signaling,
)
from ketasim.spines.assays import tracking_tables
from ketasim.spines.engine import SpineParams, spine_cells
from ketasim.spines.simulate import DT_H, recording_bytes, simulate_spines

READOUT_COLUMNS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
SPINE_DRIVES = ("formation_drive", "elimination_drive", "synaptic_protein", "spine_size_drive",
                "spine_loss_d1", "spine_loss_d2")
# a chunk holds at most CHUNK_SUBJECTS subjects and CHUNK_BYTES of spine recording and
# signalling outputs: enough subjects to keep every core busy in the compiled kernels,
# few enough that peak memory stops growing with n beyond a few hundred subjects
CHUNK_SUBJECTS = 500
CHUNK_BYTES = 128 * 2**20
# the spine engine's drives over each of its steps [t, t + DT_H]: the step's mean of the
# signalling outputs by Simpson's rule (nodes at the step's start, middle and end, as
# fractions of the step). The engine's rates are linear in the drives (formation,
# elimination hazard, stabilisation), so the mean gives the step's expected events; the
# value at the step's start alone lagged the drives by half a step (3 h), so a dose at a
# step's start acted on nothing until the next step. The drives are functions of the
# signalling states, continuous across events, so an event on a node needs no care
QUAD_NODES = np.array([0.0, 0.5, 1.0])
QUAD_WEIGHTS = np.array([1.0, 4.0, 1.0]) / 6.0


def quad_times(grid: np.ndarray) -> np.ndarray:
    """(steps, nodes) times at which the spine engine's steps starting at ``grid`` read
    the signalling outputs (``QUAD_NODES`` of each ``DT_H`` step)."""
    return np.asarray(grid, float)[:, None] + DT_H * QUAD_NODES[None, :]


class UnsupportedAssayError(ValueError):
    """The scenario asks for an assay no layer implements yet."""


@dataclass
class RunResult:
    """Everything a run produced (the files of ``ketasim run`` are written from this).
    ``kept``: assay name -> arm -> what the assay kept for the run's files and report."""

    scenario: object
    seed: int
    readouts: pd.DataFrame
    timings_s: dict[str, float] = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    kept: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: with a ``design:``, one row per patient of the analysed arms: completed or when
    #: and why they dropped out (:func:`ketasim.experiment.trial.apply_dropout`)
    disposition: pd.DataFrame | None = None
    #: with arms that have a ``population:``, one row per candidate patient: covariates,
    #: the screening MADRS, eligibility and the reason for a screen failure
    patients: pd.DataFrame | None = None
    #: with ``design.intercurrent``: one row per patient of the analysed arms who met an
    #: intercurrent event (arm, subject, event, time_h: the visit at which it occurred),
    #: screen failures and events after a patient's dropout left out
    intercurrent: pd.DataFrame | None = None

    def _kept(self, assay: str, key: str) -> dict:
        return {arm: k[key] for arm, k in self.kept.get(assay, {}).items() if key in k}

    @property
    def tracking(self) -> dict[str, pd.DataFrame]:
        """Arm -> observed two-photon spine tracking table."""
        return tracking_tables(self.kept)

    @property
    def calcium(self) -> dict[str, dict]:
        """Arm -> {session time: first subject's dF/F}."""
        return self._kept("calcium_imaging", "calcium")

    @property
    def tst(self) -> dict[str, dict]:
        """Arm -> tail suspension ethograms and peri-struggle dF/F."""
        return self._kept("tail_suspension", "tst")


@dataclass(frozen=True)
class _Plan:
    assay: Assay
    options: dict
    at: np.ndarray
    region: str = DEFAULT_REGION


def _plans(arm, i: int, species: str) -> list[_Plan]:
    out = []
    for j, spec_ in enumerate(arm.assays):
        where = f"arms[{i}].assays[{j}]"
        if spec_.assay not in ASSAYS:
            raise UnsupportedAssayError(
                f"{where}.assay: got {spec_.assay!r}; expected an assay this version "
                f"simulates: {sorted(ASSAYS)}")
        assay = ASSAYS[spec_.assay]
        options = resolve_options(assay, spec_.options, where, species)
        region = getattr(spec_, "region", None) or DEFAULT_REGION
        if "cell" in options and assay.needs_spines:
            cells = REGION_CELLS.get(region, ())
            if "cell" not in (spec_.options or {}):
                options["cell"] = cells[0] if cells else options["cell"]  # the region's
            elif (cells and options["cell"] not in cells
                  and any(options["cell"] in c for c in REGION_CELLS.values())):
                raise AssayOptionError(
                    f"{where}.options.cell: got {options['cell']!r}; expected a cell type "
                    f"of the region {region} ({', '.join(cells)})")
        if "lookback_d" in options:  # a clinical history: from before the arm's first dose
            options[HISTORY_ANCHOR] = arm.first_dose_h
        out.append(_Plan(assay, options, np.asarray(spec_.at, dtype=float), region))
    return out


def check_supported(scenario, registry: Registry) -> None:
    """Every assay is simulated, its options are valid, and an arm's spine assays image
    one cell type that has a spine parameter set in the registry."""
    _require(registry)
    check_regions(registry)
    cells = spine_cells(registry)
    for i, arm in enumerate(scenario.arms):
        arm_cell: dict[str, str] = {}  # per region
        for j, plan in enumerate(_plans(arm, i, scenario.species)):
            if not plan.assay.needs_spines:
                continue
            where = f"arms[{i}].assays[{j}]"
            if "circuit" in plan.assay.reads and "cells" in plan.options:
                # the imaged cells are circuit units: more than it has were cut silently
                n_exc = int(region_registry(registry, plan.region).value("circuit.n_exc"))
                if plan.options["cells"] > n_exc:
                    raise AssayOptionError(
                        f"{where}.options.cells: got {plan.options['cells']}; expected at "
                        f"most the circuit's {n_exc} excitatory units (circuit.n_exc)")
            cell = plan.options["cell"]
            if cell not in cells:
                raise AssayOptionError(f"{where}.options.cell: got {cell!r}; "
                                       f"expected a cell type with spine parameters: {cells}")
            first = arm_cell.setdefault(plan.region, cell)
            if cell != first:
                raise AssayOptionError(
                    f"{where}.options.cell: got {cell!r}; an arm's spine assays in one "
                    f"region measure one population, and an earlier assay of this arm "
                    f"uses {first!r}")
        for region, cell in arm_cell.items():
            _check_spine_times(scenario.species, arm, i, region_registry(registry, region),
                               cell)
    _check_rescue(scenario, registry)
    _check_taper(scenario, registry)
    _check_population_covariates(scenario, registry)
    _check_body_weights(scenario, registry)


#: How far outside the species' plausible body-weight range an arm's ``body_weight``
#: may lie before it is refused: a unit slip (g for kg) is a factor of 1,000, a small
#: or large strain or a juvenile animal a factor of 2-3.
BODY_WEIGHT_SLACK = 10.0


def _check_body_weights(scenario, registry: Registry) -> None:
    """An arm's ``body_weight`` within a factor :data:`BODY_WEIGHT_SLACK` of the species'
    plausible range (``species.<species>.body_weight``): a 25-kg mouse or a 70-g human
    is a unit slip, which would change every weight-scaled dose and clearance silently."""
    name = f"species.{scenario.species}.body_weight"
    if name not in registry:
        return
    p = registry[name]
    low, high = p.low / BODY_WEIGHT_SLACK, p.high * BODY_WEIGHT_SLACK
    for i, arm in enumerate(scenario.arms):
        kg = arm.body_weight_kg
        if kg is not None and not low <= kg <= high:
            raise ProtocolError(
                f"arms[{i}].body_weight: got {kg:g} kg; expected a {scenario.species}'s "
                f"weight, within {BODY_WEIGHT_SLACK:g} x of {name}'s range "
                f"[{p.low:g}, {p.high:g}] kg (a unit slip, g for kg?)")


def _check_population_covariates(scenario, registry: Registry) -> None:
    """A population draws each patient's body weight and age, which replace the
    registry's typical values (``species.<species>.body_weight``, ``.age``): a registry
    whose values there differ from the packaged ones (a ``--set``, a sweep, a
    calibration) would be overridden without effect, so that is one clear error."""
    arms = [(i, a) for i, a in enumerate(scenario.arms)
            if getattr(a, "population", None) is not None]
    if not arms:
        return
    packaged = load_registry()
    i, arm = arms[0]
    sp = scenario.species
    for name, field_ in ((f"species.{sp}.body_weight", "weight_female and weight_male"),
                         (f"species.{sp}.age", "age")):
        if name in registry and name in packaged and \
                registry.value(name) != packaged.value(name):
            raise ProtocolError(
                f"{name}: set to {registry.value(name):g} (packaged "
                f"{packaged.value(name):g}), but arms[{i}].population draws each patient's "
                f"value (arm {arm.name!r}), which replaces it; change the population's "
                f"{field_} instead")


def _check_taper(scenario, registry: Registry) -> None:
    """A taper runs on a human arm whose assays keep no per-subject results, without the
    design's intercurrent events, and its dose must be one the model can give; anything
    else is one clear error naming the arm's field."""
    design = getattr(scenario, "design", None)
    analysed = () if design is None or not design.intercurrent else \
        design.analysed_arms(scenario.arm_names)
    for i, arm in enumerate(scenario.arms):
        if getattr(arm, "taper", None) is None:
            continue
        if scenario.species != "human":
            raise ProtocolError(f"arms[{i}].taper: a taper follows clinical ratings; "
                                f"got species {scenario.species!r}, expected 'human'")
        if arm.name in analysed:
            raise ProtocolError(f"arms[{i}].taper: not supported together with the "
                                "design's intercurrent events (arm "
                                f"{arm.name!r} is analysed with them)")
        regions = arm_regions(arm, i, scenario.species)
        if len(regions) > 1:  # each region runs on its own; the ratings are in one
            raise ProtocolError(f"arms[{i}].taper: a taper follows the ratings of one "
                                f"region, and arm {arm.name!r} measures {regions}; "
                                "measure the other regions in an arm without a taper")
        try:
            _probe_events(scenario.species, TaperPlan.of(arm).arm(arm), i, scenario.seed,
                          registry)
        except ProtocolError as err:
            detail = str(err).split(": ", 1)[-1]
            raise ProtocolError(f"arms[{i}].taper.dose: {detail}") from None


# A dose this many times a compound's typical effective dose for the species (its file's
# ``effective_dose``) is flagged: the model's parameters were fitted and validated around
# effective, sub-anaesthetic doses (ketamine 10 mg/kg in rodents, where surgical
# anaesthesia in mice takes 100 mg/kg ip with xylazine: Arras et al. 2001 Comp Med 51:443),
# and a tenfold slip (an extra zero, mg written for mg/kg) is the common input error.
IMPLAUSIBLE_DOSE_FACTOR = 10.0


@dataclass(frozen=True)
class ReferenceDose:
    """The dose a given dose is judged against: ``value`` in ``unit`` (mg/kg for a
    systemic dose, mg for an intracerebral one), and what it is, for the warning."""

    value: float
    unit: str
    what: str


def reference_dose(compound, species: str, route: str,
                   registry: Registry) -> ReferenceDose | None:
    """What a dose of ``compound`` by ``route`` in ``species`` is compared with, in order:
    the compound file's ``effective_dose`` for the species; another species' effective
    dose scaled by body surface area (:data:`~ketasim.pk.compounds.BSA_KM`, FDA 2005); for a
    tool compound (``window`` PK), its smallest dose for half-maximal action in the model
    (the target's ``per_kg`` potency, or ``local`` for an intracerebral amount). None
    where nothing applies (a slice bath, a compound with no dose on record)."""
    if route == "bath":
        return None
    if route == "intracerebral":
        local = _window_ed50(compound, "local", species, registry)
        return (ReferenceDose(local[0], "mg", f"{compound.name}'s amount for half-maximal "
                              f"action in the model ({local[1]})") if local else None)
    eff = compound.effective_dose_for(species)
    if eff is not None:
        value, other, entry = eff
        what = (f"{compound.name}'s typical effective dose in the {other} "
                f"({entry.value:g} mg/kg; {entry.source})")
        if other != species:
            what += (f" scaled to the {species} by body surface area ({value:.3g} mg/kg; "
                     f"Km {BSA_KM[other]:g} / {BSA_KM[species]:g}, FDA 2005)")
        return ReferenceDose(value, "mg/kg", what)
    per_kg = _window_ed50(compound, "per_kg", species, registry)
    if per_kg:
        return ReferenceDose(per_kg[0], "mg/kg", f"{compound.name}'s dose for half-maximal "
                             f"action in the model ({per_kg[1]})")
    return None


def _window_ed50(compound, kind: str, species: str, registry: Registry):
    """A window compound's smallest potency of dose kind ``kind`` over its targets, with
    a description naming the registry parameter and its source; None if it has none."""
    found = []
    for t in compound.targets:
        v = t.window_potency.get(kind)
        if v is None:
            continue
        if v.param is None:
            found.append((float(v.value), f"{v.value:g} {v.unit}; {v.source}"))
        else:  # a registry parameter (times another): its typical value
            value = float(v.resolve(registry.value, species))
            names = v.names(species)
            what = " x ".join(names)
            found.append((value, (f"{what} = {value:g} {registry[names[0]].unit}, "
                                 f"{registry[names[0]].source}")))
    found = [f for f in found if f[0] > 0]
    return min(found, key=lambda f: f[0]) if found else None


def dose_warnings(scenario, registry: Registry) -> list[str]:
    """One line per drug event whose dose exceeds :data:`IMPLAUSIBLE_DOSE_FACTOR` times
    its :func:`reference_dose` (a warning, not an error: an anaesthetic dose is a
    legitimate question, a slipped unit is not). An absolute systemic dose (mg) is
    compared per kg of the arm's body weight, or the species' typical weight
    (``species.<species>.body_weight``). A repeated dose is one line (naming its first
    event and the number of doses). A compound with no reference dose is not checked."""
    species = scenario.species
    typical_kg = registry.value(f"species.{species}.body_weight")
    lines = []
    for i, arm in enumerate(scenario.arms):
        kg = arm.body_weight_kg or typical_kg
        flagged: dict[tuple[str, str], list] = {}  # (drug, dose) -> its events, in order
        for ev in arm.protocol:
            dose = getattr(ev, "dose", None)
            compound = COMPOUNDS.get(getattr(ev, "drug", None) or "")
            if dose is None or compound is None or dose.unit == "uM":
                continue
            ref = reference_dose(compound, species, ev.route, registry)
            if ref is None:
                continue
            given = (dose.value if dose.unit == "mg/kg" or ref.unit == "mg"
                     else dose.value / kg)
            if given > IMPLAUSIBLE_DOSE_FACTOR * ref.value:
                flagged.setdefault((compound.name, str(dose)), []).append((ev, given, ref))
        for (_name, dose_text), events in flagged.items():
            ev, given, ref = events[0]
            shown = dose_text + (f" ({given:.3g} mg/kg at {kg:g} kg)"
                                 if ev.dose.unit == "mg" and ref.unit == "mg/kg" else "")
            more = f", {len(events)} doses" if len(events) > 1 else ""
            lines.append(f"{event_where(f'arms[{i}]', ev)}.dose: {shown} (arm "
                         f"{arm.name!r}{more}) is {given / ref.value:.3g}x {ref.what}; "
                         "check the dose and its unit (the model's parameters were "
                         "fitted mostly at effective doses)")
    return lines


def _check_rescue(scenario, registry: Registry) -> None:
    """Rescue medication the model cannot give (a route not defined for the species) is
    one clear error naming the design's field, before anything runs."""
    design = getattr(scenario, "design", None)
    if design is None or not design.intercurrent:
        return
    analysed = design.analysed_arms(scenario.arm_names)
    for i, arm in enumerate(scenario.arms):
        if arm.name not in analysed:
            continue
        for k, e in enumerate(design.intercurrent):
            for j, ev in enumerate(e.rescue or []):
                probe = arm.model_copy(update={"protocol": [*arm.protocol, *ev.repeated()]})
                try:
                    _probe_events(scenario.species, probe, i, scenario.seed, registry)
                except ProtocolError as err:
                    detail = str(err).split(": ", 1)[-1]
                    raise ProtocolError(f"design.intercurrent[{k}].rescue[{j}]: {detail} "
                                        f"(in arm {arm.name!r})") from None


def _probe_events(species, arm, i, seed, registry):
    """The arm's events for one typical subject (their times are every subject's)."""
    probe = sample_cohort(registry, species, arm.name, 1, seed,
                          body_weight_kg=arm.body_weight_kg, variability=False)
    return compile_arm(arm, species, probe, registry, arm_path=f"arms[{i}]")


def _check_spine_times(species, arm, i, registry, cell) -> None:
    """Spine sessions before the engine's start fall in its baseline burn-in; one earlier
    than the burn-in reaches is one clear error naming the assay and the time."""
    if cell is None:
        return
    t0 = spine_start(_probe_events(species, arm, i, 0, registry))
    burn_h = SpineParams.from_registry(registry, cell).burn_in_days * 24.0
    for j, plan in enumerate(_plans(arm, i, species)):
        early = [t for t in plan.at if plan.assay.needs_spines and t < t0 - burn_h]
        if early:
            raise ProtocolError(
                f"arms[{i}].assays[{j}].at: got {early[0]:g} h; a spine session can be at "
                f"most {burn_h / 24.0:g} days (the spine burn-in: spine.{cell}.burn_in_d, at "
                f"least spine.{cell}.mem_horizon_d) before the spine "
                f"engine's start at {t0:g} h (just before the protocol's first event)")


def _require(registry) -> None:
    if not isinstance(registry, Registry):
        raise TypeError("simulate: the parameter registry is required (pass "
                        "registry=ketasim.params.load_registry() for the defaults); got "
                        f"{type(registry).__name__}")


def simulate(scenario, seed: int | None = None, *, registry: Registry,
             progress: Callable[[str], None] | None = None, rtol: float = DEFAULT_RTOL,
             atol: float = DEFAULT_ATOL, chunk_subjects: int | None = None,
             arm_progress: Callable[[str, float], None] | None = None,
             map_tasks: Callable[..., Iterable] | None = None
             ) -> RunResult:
    """Simulate every arm of ``scenario`` with the parameters of ``registry`` and measure
    its assays.

    ``seed`` overrides the scenario's seed. Numbers depend only on the scenario, the seed
    and the registry (not on the number of cores or on ``chunk_subjects``, the largest
    number of subjects processed at once; default: ``CHUNK_SUBJECTS``, fewer if their
    spine recording and signalling outputs would exceed ``CHUNK_BYTES``).

    ``progress(arm)`` is called when an arm is done, ``arm_progress(arm, fraction)``
    after each chunk of its subjects (the fraction of the arm's work done, 0 to 1).

    ``map_tasks(fn, args_list, done=None)``, if given, runs the arms elsewhere: each arm
    (and region) is split into spans of subjects (a quarter of the arm, at least 25
    subjects, at most a chunk), all arms' spans go to one ``map_tasks`` call, which must
    return ``[fn(*args) for args in args_list]`` in that order, wherever it computes
    them, and call ``done(k)`` (when given) as task k completes (a Dask cluster:
    :func:`ketasim.sweep.core.dask_map`; ``fn`` is the module-level
    :func:`run_span` and the arguments pickle). The readouts are the same as in this
    process, row for row; ``arm_progress`` is called as each arm's spans complete (arms
    run at once), ``progress`` per arm at the end, and each arm's timing is the run's
    wall time shared equally.
    """
    _require(registry)
    seed = scenario.seed if seed is None else int(seed)
    check_supported(scenario, registry)
    frames: list[pd.DataFrame] = []
    kept: dict[str, dict[str, dict]] = {}
    timings: dict[str, float] = {}
    steps: dict[str, float] = {}
    design = getattr(scenario, "design", None)
    drawn, stream, pool_failures = _draw_subjects(scenario, seed, registry, rtol, atol,
                                                  chunk_subjects)
    jobs = [(i, arm, _plans(arm, i, scenario.species)) for i, arm in enumerate(scenario.arms)]
    analysed = () if design is None else design.analysed_arms(scenario.arm_names)
    jobs = [(i, arm, plans, _covariates(drawn.get(arm.name), scenario.species, registry),
             stream.get(arm.name), IntercurrentPlan.of(design, arm, analysed))
            for i, arm, plans in jobs if plans]
    remote = None
    if map_tasks is not None:  # every arm's spans at once; timings are the whole run's
        t0 = time.perf_counter()
        remote = _run_remote(scenario.species, jobs, seed, registry, rtol, atol,
                             chunk_subjects, map_tasks, arm_progress)
        wall = time.perf_counter() - t0
    for a, (i, arm, plans, covs, pool_ids, ice) in enumerate(jobs):
        t0 = time.perf_counter()
        if remote is None:
            arm_frames, arm_kept, arm_steps = _run_regions(
                scenario.species, arm, i, plans, seed, registry, rtol, atol, chunk_subjects,
                covs, pool_ids,
                None if arm_progress is None else functools.partial(arm_progress, arm.name),
                ice)
        else:
            arm_frames, arm_kept, arm_steps = remote[a]
        frames.extend(arm_frames)
        for name, k in arm_kept.items():
            if k:
                kept.setdefault(name, {})[arm.name] = k
        steps[arm.name] = arm_steps
        timings[arm.name] = (time.perf_counter() - t0 if remote is None
                             else wall / len(jobs))
        if progress:
            progress(arm.name)
    readouts = (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame({c: [] for c in READOUT_COLUMNS}))
    if "region" in readouts:  # arms that measure the default region only do not name it
        readouts["region"] = readouts["region"].fillna(DEFAULT_REGION)
    patients = None
    if drawn:  # virtual patients: screen failures leave the readouts
        tables = []
        for arm in scenario.arms:
            if arm.name not in drawn:
                continue
            table = drawn[arm.name]
            mine = readouts["arm"] == arm.name
            kept_rows, table = screen(arm.population, table, readouts[mine])
            readouts = pd.concat([readouts[~mine], kept_rows]).sort_index(kind="stable")
            tables.append(table)
        if pool_failures is not None and len(pool_failures):
            tables.append(pool_failures)
        patients = pd.concat(tables, ignore_index=True)
    disposition = None
    if getattr(scenario, "design", None) is not None:  # a trial: patients may drop out
        readouts, disposition = apply_dropout(scenario, readouts, seed)
        if patients is not None:  # screen failures were never randomised
            out = patients.loc[~patients["eligible"], ["arm", "subject"]]
            gone = set(zip(out["arm"], out["subject"], strict=True))
            keep = [(a, s) not in gone for a, s in zip(disposition["arm"],
                                                       disposition["subject"], strict=True)]
            disposition = disposition[keep].reset_index(drop=True)
    intercurrent = None
    if design is not None and design.intercurrent:  # the events leave the readouts
        ice = (readouts["assay"] == ICE_ASSAY).to_numpy()
        intercurrent = pd.DataFrame({
            "arm": readouts["arm"].to_numpy()[ice].astype(str),
            "subject": readouts["subject"].to_numpy()[ice].astype(np.int64),
            "event": readouts["readout"].to_numpy()[ice].astype(str),
            "time_h": readouts["time_h"].to_numpy()[ice].astype(float)},
            columns=INTERCURRENT_COLUMNS).sort_values(["arm", "subject"], kind="stable")
        intercurrent = intercurrent.reset_index(drop=True)
        readouts = readouts.loc[~ice]
    # the region column only where a region other than the default is measured
    columns = READOUT_COLUMNS + (
        ["region"] if "region" in readouts and (readouts["region"] != DEFAULT_REGION).any()
        else [])
    if list(readouts.columns) != columns:
        readouts = readouts[columns]
    if not readouts.index.equals(pd.RangeIndex(len(readouts))):
        readouts = readouts.reset_index(drop=True)  # both copy: only when needed
    return RunResult(scenario, seed, readouts,
                     timings, {"method": "auto", "stiff": "rodas", "nonstiff": "dp5",
                              "rtol": rtol, "atol": atol}, steps, kept,
                     disposition, patients, intercurrent)


def _pool_screening(species, arm, i, seed, registry, rtol, atol, chunk_subjects):
    """For a stratified trial whose population screens on the MADRS: a function giving
    pool candidates' MADRS total at the screening visit, simulated once for the pool on
    the first analysed arm's protocol (the visit comes before any treatment) with the
    arm's own ``madrs`` options and the candidates' pool streams, so the rating is the
    one the arm's run then records at that visit. None without a MADRS criterion."""
    pop = arm.population
    inc = pop.inclusion
    if pop.screening is None or inc is None or inc.madrs_min is None:
        return None
    plan = next(p for p in _plans(arm, i, species) if p.assay.name == "madrs"
                and np.any(np.isclose(p.at, pop.screening)))
    plan = _Plan(plan.assay, plan.options, np.array([pop.screening]), plan.region)

    def scores(ids: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        sub = arm.model_copy(update={"n": len(ids)})
        frames, _, _ = _run_regions(species, sub, i, [plan], seed, registry, rtol, atol,
                                    chunk_subjects, _covariates(table, species, registry),
                                    np.asarray(ids))
        r = frames[0]
        r = r[r["readout"] == "madrs_total"].set_index("subject")["value"]
        return r.reindex(np.arange(len(ids))).to_numpy(float)

    return scores


def _draw_subjects(scenario, seed: int, registry: Registry, rtol: float, atol: float,
                   chunk_subjects: int | None):
    """Virtual patients, each arm's candidates drawn once (weight and age enter the PK,
    their covariates the screening): ``(drawn, stream, pool_failures)``, ``drawn`` arm ->
    patients table. A stratified trial's analysed arms share one pool, allocated within
    strata; a subject's streams are keyed by its place in the pool (``stream``: arm ->
    pool ids), and ``pool_failures`` are the candidates it screened out before
    allocation (None without a pool)."""
    drawn: dict[str, pd.DataFrame] = {}
    stream: dict[str, np.ndarray] = {}
    pool_failures = None
    design = getattr(scenario, "design", None)
    if design is not None and design.stratify is not None:
        names = design.analysed_arms(scenario.arm_names)
        analysed = [a for a in scenario.arms if a.name in names]
        first = scenario.arms.index(analysed[0])
        pooled, pool_failures = pooled_patients(
            design, analysed, seed, _pool_screening(scenario.species, analysed[0], first,
                                                    seed, registry, rtol, atol,
                                                    chunk_subjects))
        for name, (table, ids) in pooled.items():
            drawn[name], stream[name] = table, ids
    drawn.update({arm.name: draw_patients(arm.population, seed, arm.name, np.arange(arm.n))
                  for arm in scenario.arms
                  if getattr(arm, "population", None) is not None and arm.name not in drawn})
    return drawn, stream, pool_failures


@dataclass(frozen=True)
class SubjectModel:
    """One subject of an arm as the runner simulates it: its cohort of one (parameters,
    covariates), its event table and the region's parameter set."""

    cohort: object  # ketasim.experiment.cohort.Cohort of one subject
    events: object  # ketasim.signaling.protocol.EventTable
    registry: Registry  # the region's parameter set
    region: str


def arm_regions(arm, i: int, species: str) -> list[str]:
    """The regions an arm's assays measure, in the order the runner simulates them."""
    return [region for region, _ in _region_plans(_plans(arm, i, species))]


def subject_model(scenario, arm_index: int, subject: int | None, *, registry: Registry,
                  region: str | None = None, seed: int | None = None,
                  rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> SubjectModel:
    """The cohort and events of one subject of ``scenario.arms[arm_index]`` exactly as
    :func:`simulate` builds them (its population's body weight and age, a stratified
    pool's stream keys, the region's parameter set: ``region`` or the first region the
    arm's assays measure), for an export of that subject (SBML). ``subject`` None: the
    typical subject (the registry's values, no between-subject variability)."""
    _require(registry)
    seed = scenario.seed if seed is None else int(seed)
    arm = scenario.arms[arm_index]
    if region is None:
        regions = arm_regions(arm, arm_index, scenario.species)
        region = regions[0] if regions else DEFAULT_REGION
    reg = region_registry(registry, region)
    species = scenario.species
    path = f"arms[{arm_index}]"
    if subject is None:
        cohort = sample_cohort(reg, species, arm.name, 1, seed, arm.body_weight_kg,
                               variability=False)
    else:
        if not 0 <= subject < arm.n:
            raise ValueError(f"subject {subject}: expected 0..{arm.n - 1} (arm "
                             f"{arm.name!r} has n={arm.n})")
        _check_population_covariates(scenario, registry)
        design = getattr(scenario, "design", None)
        pool_ids, patients = None, None
        if design is not None and design.stratify is not None:  # the shared pool's
            drawn, stream, _ = _draw_subjects(scenario, seed, registry, rtol, atol, None)
            pool_ids = stream.get(arm.name)
            if arm.name in drawn:
                patients = drawn[arm.name].iloc[[subject]]
        if patients is None and getattr(arm, "population", None) is not None:
            # this candidate's covariates only (keyed by arm and subject, as simulate's)
            patients = draw_patients(arm.population, seed, arm.name, np.array([subject]))
        key = arm.name if pool_ids is None else POOL
        ids = np.array([subject if pool_ids is None else pool_ids[subject]], np.int64)
        cohort = sample_cohort(reg, species, key, arm.n, seed,
                               body_weight_kg=arm.body_weight_kg, subjects=ids,
                               covariates=_covariates(patients, species, registry))
    events = compile_arm(arm_in_region(arm, region), species, cohort, reg, arm_path=path)
    return SubjectModel(cohort, events, reg, region)


def _covariates(patients: pd.DataFrame | None, species: str, registry: Registry
                ) -> dict[str, np.ndarray] | None:
    """The registry parameters a virtual patient population sets per subject: body weight
    (the PK's per-kg doses and allometry) and age (the PK's age effects)."""
    if patients is None:
        return None
    out = {f"species.{species}.body_weight": patients["weight_kg"].to_numpy(float)}
    if f"species.{species}.age" in registry:
        out[f"species.{species}.age"] = patients["age_y"].to_numpy(float)
    return out


def _run_regions(species, arm, i, plans, seed, registry, rtol, atol, chunk_subjects,
                 covs=None, pool_ids=None, done=None, ice=None):
    """One arm, region by region: the same engines with each region's parameter set
    (:func:`ketasim.params.regions.region_registry`) and the same subjects (their PK
    draws are shared: a region overrides no PK parameter). Frames in the assays' order;
    the kept results of a region other than the default under ``assay@region``.
    ``pool_ids``: in a stratified trial, each subject's place in the shared pool, which
    keys its random streams (under :data:`POOL`) instead of the arm and its index.
    ``done(fraction)``, if given, after each chunk: the fraction of the arm's subjects
    times regions done."""
    parts = []
    regions = _region_plans(plans)
    for r, (region, idx) in enumerate(regions):
        chunk_done = None if done is None else (
            lambda n_done, r=r: done((r + n_done / max(arm.n, 1)) / len(regions)))
        parts.append((region, idx, _run_arm(
            species, arm_in_region(arm, region), i, [plans[j] for j in idx], seed,
            region_registry(registry, region),
            rtol, atol, chunk_subjects, covs, region, pool_ids, chunk_done, ice)))
    return _combine_regions(len(plans), parts)


def _region_plans(plans) -> list[tuple[str, list[int]]]:
    """The regions an arm's assays measure, in order, each with its assays' indices."""
    regions = list(dict.fromkeys(p.region for p in plans))
    return [(region, [j for j, p in enumerate(plans) if p.region == region])
            for region in regions]


def _combine_regions(n_plans, parts):
    """An arm's frames (assay order), kept results and steps from its regions' results
    ``(region, assay indices, (frames, kept, steps))``: frames name their region where
    it is not the default, kept results go under ``assay@region``."""
    frames: list[pd.DataFrame | None] = [None] * n_plans
    kept: dict = {}
    steps = 0.0
    single = [region for region, _, _ in parts] == [DEFAULT_REGION]
    for region, idx, (f, k, s) in parts:
        for j, fr in zip(idx, f, strict=True):
            frames[j] = fr if single else fr.assign(region=region)
        for name, v in k.items():
            kept[name if region == DEFAULT_REGION else f"{name}@{region}"] = v
        steps += s
    return frames, kept, steps


#: a distributed run splits an arm into at least this many spans of subjects (where each
#: keeps at least SPAN_MIN_SUBJECTS), so that a few arms keep several workers busy
SPAN_SPLIT = 4
SPAN_MIN_SUBJECTS = 25


def _run_remote(species, jobs, seed, registry, rtol, atol, chunk_subjects, map_tasks,
                arm_progress=None):
    """Every arm of ``jobs`` (``(i, arm, plans, covs, pool_ids, ice)``) through ``map_tasks``
    in one call: each arm and region split into spans of subjects (:func:`run_span`),
    joined back per arm as :func:`_run_regions` returns them. ``arm_progress(arm,
    fraction)`` as each span completes (the arms' spans complete in any order)."""
    tasks, layout, owner = [], [], []
    for i, arm, plans, covs, pool_ids, ice in jobs:
        regions = []
        for region, idx in _region_plans(plans):
            mine = [plans[j] for j in idx]
            chunk = _arm_layout(species, arm, i, mine, seed, region_registry(registry, region),
                                chunk_subjects)[3]
            span = max(1, min(chunk, max(SPAN_MIN_SUBJECTS, -(-arm.n // SPAN_SPLIT))))
            first = len(tasks)
            tasks += [(species, arm, i, region, seed, registry, rtol, atol, chunk_subjects,
                       None if covs is None else {k: v[a:a + span] for k, v in covs.items()},
                       None if pool_ids is None else pool_ids[a:a + span],
                       a, min(arm.n, a + span), ice) for a in range(0, arm.n, span)]
            regions.append((region, idx, mine, first, len(tasks)))
            owner += [len(layout)] * (len(tasks) - first)
        layout.append((arm, plans, regions))
    done = None
    if arm_progress is not None:
        count = [0] * len(layout)
        total = [owner.count(j) for j in range(len(layout))]

        def done(k: int) -> None:
            j = owner[k]
            count[j] += 1
            arm_progress(layout[j][0].name, count[j] / total[j])
    pieces = list(map_tasks(run_span, tasks, done=done))
    if len(pieces) != len(tasks):
        raise RuntimeError(f"map_tasks returned {len(pieces)} results for {len(tasks)} tasks")
    return [_combine_regions(len(plans), [
        (region, idx, _join_spans(mine, pieces[a:b], arm.n))
        for region, idx, mine, a, b in regions]) for arm, plans, regions in layout]


def _arm_layout(species, arm, i, plans, seed, registry, chunk_subjects):
    """What every chunk of an arm (one region's assays) shares: the output grid, the
    signalling outputs, the spine plan and the chunk size."""
    times: set[float] = set()
    outputs: set[str] = set()
    for p in plans:
        times.update(p.assay.sample_times(p.at, p.options).tolist())
        outputs.update(p.assay.outputs)
    # compile once for the protocol's shape (times, kinds); values are per chunk
    spine_plan = _spine_plan(arm, plans, _probe_events(species, arm, i, seed, registry))
    if spine_plan is not None:
        times.update(quad_times(spine_plan["grid"]).ravel().tolist())
        outputs.update(SPINE_DRIVES)
    grid = np.array(sorted(times))
    names = tuple(sorted(outputs))
    chunk = _chunk_size(arm.n, grid.size, len(names), spine_plan, registry, chunk_subjects)
    return grid, names, spine_plan, chunk


def _run_arm(species, arm, i, plans, seed, registry, rtol, atol, chunk_subjects,
             covs=None, region=DEFAULT_REGION, pool_ids=None, chunk_done=None, ice=None):
    piece = _arm_span(species, arm, i, plans, seed, registry, rtol, atol, chunk_subjects,
                      covs, region, pool_ids, chunk_done, 0, arm.n, ice=ice)
    return _join_spans(plans, [piece], arm.n)


def _arm_span(species, arm, i, plans, seed, registry, rtol, atol, chunk_subjects, covs,
              region, pool_ids, chunk_done, first, last, offset=0, ice=None):
    """Subjects ``first`` to ``last - 1`` of one arm (one region's assays), chunk by chunk:
    per assay the chunks' frames, per assay name the chunks' kept results, and the sum of
    the subjects' solver steps. A subject's numbers depend on its own streams only, so
    any split of an arm into spans gives the same rows (:func:`_join_spans`). The arrays
    of ``covs`` and ``pool_ids`` start at subject ``offset`` (a span's own slice).
    ``ice`` (:class:`ketasim.experiment.trial.IntercurrentPlan`): a chunk's patients who
    meet an intercurrent event at a visit run again from their own protocol with the
    event's consequences (:func:`_intercurrent`)."""
    key = arm.name if pool_ids is None else POOL  # the streams' namespace
    grid, names, spine_plan, chunk = _arm_layout(species, arm, i, plans, seed, registry,
                                                 chunk_subjects)
    frames: list[list[pd.DataFrame]] = [[] for _ in plans]  # per assay, chunk by chunk
    parts, step_sum = {p.assay.name: [] for p in plans}, 0.0
    taper = TaperPlan.of(arm)
    for s0 in range(first, last, chunk):
        subjects = np.arange(s0, min(last, s0 + chunk))
        ids = subjects if pool_ids is None else pool_ids[subjects - offset]  # streams
        cohort = sample_cohort(registry, species, key, arm.n, seed,
                               body_weight_kg=arm.body_weight_kg, subjects=ids,
                               covariates=None if covs is None else
                               {k: v[subjects - offset] for k, v in covs.items()})
        if taper is None:
            events = compile_arm(arm, species, cohort, registry, arm_path=f"arms[{i}]")
            chunk_frames, kept, steps = _measure_chunk(
                species, arm, plans, seed, registry, rtol, atol, region, pool_ids, key,
                grid, names, spine_plan, subjects, ids, cohort, events)
        else:
            chunk_frames, kept, steps = _tapered(
                taper, species, arm, i, plans, seed, registry, rtol, atol, region,
                pool_ids, key, grid, names, spine_plan, subjects, ids, covs, offset, cohort)
        if ice is not None:
            chunk_frames, steps = _intercurrent(
                ice, species, arm, i, plans, seed, registry, rtol, atol, region, pool_ids,
                key, grid, names, spine_plan, subjects, ids, covs, offset, chunk_frames,
                steps)
        step_sum += float(steps.sum())
        for j, p in enumerate(plans):
            parts[p.assay.name].append(kept[j])
            frames[j].append(chunk_frames[j])
        if chunk_done is not None:
            chunk_done(int(subjects[-1]) + 1)
    return frames, parts, step_sum


def _intercurrent(ice, species, arm, i, plans, seed, registry, rtol, atol, region,
                  pool_ids, key, grid, names, spine_plan, subjects, ids, covs, offset,
                  frames, steps):
    """A chunk's intercurrent events: each patient's first event from the trigger assays'
    rows; the patients with one, grouped by rule and time, run again with their withheld
    doses after the event removed and the rule's rescue doses added from it (protocol
    entries appended at the event's time, so nothing changes before it), their rows
    replacing the first pass's (the first pass's kept results stay: the clinical assays
    that trigger events keep none). The events join the first trigger assay's frame as
    rows of assay ``ICE_ASSAY``. Returns the frames and each subject's solver steps (of
    its last pass)."""
    # every entry of a trigger assay (an arm may list one assay twice, at other times)
    stop, which = ice.first_events(subjects, {
        name: pd.concat([f for p, f in zip(plans, frames, strict=True)
                         if p.assay.name == name], ignore_index=True)
        for name in dict.fromkeys(p.assay.name for p in plans) if name in ice.assays})
    groups = ice.groups(stop, which)
    if not groups:
        return frames, steps
    redo = np.zeros(subjects.size, bool)
    parts: list[list[pd.DataFrame]] = [[] for _ in plans]
    for r, t, pos in groups:
        sub, sub_ids = subjects[pos], ids[pos]
        cohort = sample_cohort(registry, species, key, arm.n, seed,
                               body_weight_kg=arm.body_weight_kg, subjects=sub_ids,
                               covariates=None if covs is None else
                               {k: v[sub - offset] for k, v in covs.items()})
        events = compile_arm(ice.rescued(arm, r, t), species, cohort, registry,
                             arm_path=f"arms[{i}]")
        group_frames, _, group_steps = _measure_chunk(
            species, arm, plans, seed, registry, rtol, atol, region, pool_ids, key, grid,
            names, spine_plan, sub, sub_ids, cohort, ice.withhold(events, r, t))
        steps[pos] = group_steps
        for j, f in enumerate(group_frames):
            parts[j].append(f)
        redo[pos] = True
    done = subjects[redo]
    out = [_replace_subjects(f, done, pd.concat(parts[j], ignore_index=True))
           for j, f in enumerate(frames)]
    j = next(j for j, p in enumerate(plans) if p.assay.name in ice.assays)
    out[j] = pd.concat([out[j], ice.rows(arm.name, subjects, stop, which)],
                       ignore_index=True)
    return out, steps


def _tapered(taper, species, arm, i, plans, seed, registry, rtol, atol, region, pool_ids,
             key, grid, names, spine_plan, subjects, ids, covs, offset, cohort):
    """A chunk of an arm with a needs-based taper (:mod:`ketasim.experiment.taper`): the
    arm compiled with a dose at every time the taper can give one, each patient's
    schedule solved forward from their ratings (the patients whose schedule changed run
    again until none changes), and the doses given added to the rating assay's frame.
    Returns the frames, the kept results and each subject's solver steps (of its last
    pass)."""
    events = compile_arm(taper.arm(arm), species, cohort, registry, arm_path=f"arms[{i}]")
    entries = taper.entries()
    given, interval = taper.schedule(np.ones((subjects.size, taper.n), dtype=bool))
    frames, kept, steps = _measure_chunk(
        species, arm, plans, seed, registry, rtol, atol, region, pool_ids, key, grid,
        names, spine_plan, subjects, ids, cohort, events.select(entries, given))
    if any(k for k in kept):
        which = next(p.assay.name for p, k in zip(plans, kept, strict=True) if k)
        raise ProtocolError(f"arms[{i}].taper: assay {which!r} keeps per-subject results, "
                            "which a taper's second passes would not follow")
    rating = [j for j, p in enumerate(plans) if p.assay.name == taper.assay]
    for _ in range(taper.n + 1):
        rated = pd.concat([frames[j] for j in rating], ignore_index=True)
        new_given, new_interval = taper.schedule(taper.well(subjects, rated))
        pos = np.flatnonzero((new_given != given).any(axis=1))
        given, interval = new_given, new_interval
        if pos.size == 0:
            break
        sub, sub_ids = subjects[pos], ids[pos]
        sub_cohort = sample_cohort(registry, species, key, arm.n, seed,
                                   body_weight_kg=arm.body_weight_kg, subjects=sub_ids,
                                   covariates=None if covs is None else
                                   {k: v[sub - offset] for k, v in covs.items()})
        sub_events = compile_arm(taper.arm(arm), species, sub_cohort, registry,
                                 arm_path=f"arms[{i}]").select(entries, given[pos])
        sub_frames, _, sub_steps = _measure_chunk(
            species, arm, plans, seed, registry, rtol, atol, region, pool_ids, key, grid,
            names, spine_plan, sub, sub_ids, sub_cohort, sub_events)
        steps[pos] = sub_steps
        frames = [_replace_subjects(f, sub, g) for f, g in zip(frames, sub_frames,
                                                                strict=True)]
    else:  # cannot happen: each pass fixes at least one more dose of every changed patient
        raise RuntimeError(f"arms[{i}].taper: the schedules did not settle in "
                           f"{taper.n + 1} passes")
    j = rating[0]
    frames[j] = pd.concat([frames[j], taper.rows(arm.name, subjects, given, interval)],
                          ignore_index=True)
    return frames, kept, steps


def _replace_subjects(frame: pd.DataFrame, subjects: np.ndarray, rows: pd.DataFrame
                      ) -> pd.DataFrame:
    """``frame`` with the rows of ``subjects`` replaced by ``rows``, subject by subject in
    order (each subject's rows in the assay's own order)."""
    kept_rows = frame[~np.isin(frame["subject"].to_numpy(), subjects)]
    merged = pd.concat([kept_rows, rows], ignore_index=True)
    return (merged.iloc[np.argsort(merged["subject"].to_numpy(), kind="stable")]
            .reset_index(drop=True))


def _measure_chunk(species, arm, plans, seed, registry, rtol, atol, region, pool_ids, key,
                   grid, names, spine_plan, subjects, ids, cohort, events):
    """One chunk of subjects through every layer and assay: per assay its frame and kept
    results, and each subject's solver steps."""
    sim = simulate_signaling(cohort, events, grid, names, rtol=rtol, atol=atol)
    steps = np.asarray(sim.steps, dtype=float).copy()
    trajectory = _trajectory(sim, grid)
    recording = stage = None
    if spine_plan is not None:
        recording = _run_spines(registry, seed, key, sim, grid, spine_plan, ids)
        if any("circuit" in p.assay.reads for p in plans):
            stage = CircuitStage.build(recording, trajectory, registry, spine_plan["t0"])
    frames, kept = [], []
    for p in plans:
        ctx = AssayContext(seed, arm.name, p.assay.name, subjects, species, p.options,
                           trajectory, registry, recording, stage, region=region,
                           stream=None if pool_ids is None else (POOL, ids),
                           # the start of treatment contact, where the placebo response
                           # begins: the first drug event, a taper's first dose included
                           treatment_start_h=arm.first_dose_h)
        rows = p.assay.measure(ctx, p.at)
        kept.append(ctx.kept)
        frames.append(pd.DataFrame({
            "arm": arm.name, "subject": rows.subject.astype(np.int64),
            "assay": p.assay.name, "readout": shared_strings(rows.readout),
            "time_h": rows.time_h.astype(float), "value": rows.value.astype(float),
            "unit": shared_strings(rows.unit)}))
    return frames, kept, steps


def _join_spans(plans, pieces, n):
    """One arm's frames (per assay, rows ordered subject, readout, time), kept results and
    mean solver steps per subject from its spans' pieces, in subject order. Rows another
    record appended to an assay's chunk (a taper's doses after the rating assay's rows,
    intercurrent events after the trigger assay's) follow the assay's own rows of every
    chunk, in subject order too, so the rows do not depend on the chunks or spans."""
    frames = [_own_rows_first(
        [f for piece in pieces for f in piece[0][j]], plans[j].assay.name)
        for j in range(len(plans))]
    parts: dict[str, list] = {p.assay.name: [] for p in plans}
    for piece in pieces:
        for name, ks in piece[1].items():
            parts[name].extend(ks)
    kept = {name: _merge(next(p.assay for p in plans if p.assay.name == name), ks)
            for name, ks in parts.items()}
    return frames, kept, sum(piece[2] for piece in pieces) / max(n, 1)


def _own_rows_first(chunks: list[pd.DataFrame], assay: str) -> pd.DataFrame:
    """The chunks' frames of one assay joined: its own rows, then the rows of other
    records appended to it (other ``assay``), each in chunk order."""
    frame = pd.concat(chunks, ignore_index=True)
    if len(chunks) <= 1 or frame.empty:
        return frame  # one chunk: the appended rows are already last
    other = frame["assay"].to_numpy() != assay
    if not other.any():
        return frame
    return pd.concat([frame[~other], frame[other]], ignore_index=True)


def run_span(species, arm, i, region, seed, registry, rtol, atol, chunk_subjects, covs,
             pool_ids, first, last, ice=None):
    """One task of a distributed run (``simulate(..., map_tasks=...)``): subjects
    ``first`` to ``last - 1`` of arm ``i``'s assays in ``region``, from picklable
    arguments (the arm's plans and region parameters are rebuilt here; ``covs`` and
    ``pool_ids`` hold the span's subjects only)."""
    plans = [p for p in _plans(arm, i, species) if p.region == region]
    return _arm_span(species, arm, i, plans, seed, region_registry(registry, region), rtol,
                     atol, chunk_subjects, covs, region, pool_ids, None, first, last, first,
                     ice=ice)


def shared_strings(values: np.ndarray) -> np.ndarray:
    """``values`` as an object array of ``str`` in which equal strings are one object.

    A readout column repeats a few names over every row; ``astype(str)`` made a new
    string object per row (about 60 bytes each, against the 8-byte reference), which was
    most of a run's memory (a 100,000-patient trial with weekly MADRS: 1.3 GB). The
    values are the same strings, so the readouts and their files are unchanged."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    names = np.empty(len(uniques), dtype=object)
    names[:] = [str(u) for u in uniques]
    return names[codes]


def _merge(assay: Assay, kept: list[dict]) -> dict:
    kept = [k for k in kept if k]
    if assay.merge_kept is not None:
        return assay.merge_kept(kept) if kept else {}
    if len(kept) <= 1:
        return kept[0] if kept else {}
    out = {}
    for key in kept[0]:
        vals = [k[key] for k in kept if key in k]
        out[key] = (pd.concat(vals, ignore_index=True)
                    if all(isinstance(v, pd.DataFrame) for v in vals) else vals[0])
    return out


def _trajectory(sim, grid):
    def trajectory(output: str, at: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(grid, at)
        idx = np.clip(idx, 0, len(grid) - 1)
        if not np.all(grid[idx] == at):
            raise RuntimeError("assay asked for a time it did not declare")
        return sim.output(output)[:, idx]
    return trajectory


def _chunk_size(n, n_times, n_outputs, spine_plan, registry, chunk_subjects) -> int:
    if chunk_subjects is not None:
        if int(chunk_subjects) < 1:
            raise ValueError(f"chunk_subjects: got {chunk_subjects!r}; expected >= 1")
        return int(chunk_subjects)
    per = n_times * n_outputs * 8
    if spine_plan is not None:
        per += recording_bytes(SpineParams.from_registry(registry, spine_plan["cell"]),
                               len(spine_plan["record"]), spine_plan["branches"])
    return max(1, min(n, CHUNK_SUBJECTS, CHUNK_BYTES // max(per, 1)))


def spine_start(events) -> float:
    """Start of the spine engine's grid: ``LEAD_IN_H`` before the protocol's first event
    (or time 0), on the ``DT_H`` grid. It depends on the protocol only; imaging sessions
    before it fall in the engine's baseline burn-in."""
    first = min([0.0] + ([float(events.times[0])] if events.n else []))
    return float(np.floor((first - LEAD_IN_H) / DT_H) * DT_H)


def _spine_plan(arm, plans, events) -> dict | None:
    """Engine grid, recording times, branches and photoactivation times of an arm whose
    assays need the spine layer (None if none do)."""
    spine = [p for p in plans if p.assay.needs_spines]
    if not spine:
        return None
    t0 = spine_start(events)
    rec = sorted({float(t) for p in spine for t in p.at})
    if any("circuit" in p.assay.reads for p in spine):
        rec = sorted({t0, *rec})  # the pre-protocol baseline the circuit scales by
    n_steps = int(np.ceil((max(rec[-1], t0) - t0) / DT_H)) + 1
    grid = t0 + DT_H * np.arange(n_steps)
    return {"grid": grid, "t0": t0, "record": rec,
            "branches": max(int(p.options.get("branches", 4)) for p in spine),
            "cell": spine[0].options["cell"],
            "photo": np.array(intervention_times(arm, "remove_new_spines"), dtype=float),
            "imaging": _imaging_sessions(spine)}


def _imaging_sessions(spine_plans) -> list[tuple[float, float, int]]:
    """(time h, minutes, imaged branches) of every in vivo imaging session of the arm's
    spine assays (an assay imaging at a time images there once)."""
    out = []
    for p in spine_plans:
        if p.assay.images_in_vivo:
            out += [(float(t), float(p.options["session_min"]), int(p.options["branches"]))
                    for t in p.at]
    return sorted(out)


def _run_spines(registry, seed, key, sim, grid, plan, subjects):
    """The spine engine for a chunk: streams keyed by ``key`` (the arm's name, or the
    shared pool's) and the subjects' identities under it."""
    nodes = quad_times(plan["grid"])
    idx = np.searchsorted(grid, nodes)  # (steps, nodes)
    if not np.array_equal(grid[np.minimum(idx, grid.size - 1)], nodes):
        # searchsorted would otherwise read a neighbouring time without a word
        raise RuntimeError("the signalling grid lacks a node of the spine engine's steps")
    drives = {d: sim.output(d)[:, idx] @ QUAD_WEIGHTS for d in SPINE_DRIVES}
    photo = np.tile(plan["photo"], (len(subjects), 1))
    return simulate_spines(SpineParams.from_registry(registry, plan["cell"]), seed, key,
                           len(subjects), plan["branches"], drives, plan["t0"],
                           plan["record"], photo, subjects=subjects,
                           imaging=imaging_damage(registry, plan["imaging"]))


def imaging_damage(registry: Registry, sessions
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Session times, loss probability per spine (before its size factor and
    susceptibility) of each in vivo imaging session: 1 - exp(-rate x minutes)
    (``imaging.two_photon.loss_per_min``), each session's own imaged-branch count (it
    damages branches 0 .. count - 1 only), and the log-SD of the spines' susceptibility
    (``imaging.two_photon.susceptibility_sd``); None without sessions or without loss."""
    rate = registry.value("imaging.two_photon.loss_per_min")
    if not sessions or rate == 0.0:
        return None
    times = np.array([t for t, _, _ in sessions], float)
    p = -np.expm1(-rate * np.array([m for _, m, _ in sessions], float))
    return (times, p, np.array([b for _, _, b in sessions], np.int64),
            registry.value("imaging.two_photon.susceptibility_sd"))
