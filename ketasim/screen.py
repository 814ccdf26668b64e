"""``ketasim screen``: run candidate compounds through one protocol and rank them.

Every candidate, at every dose, is one arm of a single scenario (written out as
``screen_scenario.yaml``, so ``ketasim run`` reproduces any arm's numbers): the stress
model, then the candidate at time 0 by one route, measured by

- ``signaling_state`` on a time grid to 7 days (the plasticity window and the formation
  drive, latent and noise-free; NMDA occupancy on pyramidal neurons),
- ``two_photon_spines`` at 0 h, 24 h and 7 d (spine density change from the 0 h session),
- ``open_field`` at 15 and 30 min (the dissociation-like hyperlocomotion),
- ``tail_suspension`` at 3 h and 48 h (the acute and the sustained antidepressant-like
  response).

Two arms are always there: the vehicle (saline, same stress and route) and the reference,
racemic ketamine 10 mg/kg. Each metric is a difference from the vehicle arm (time courses
are first taken relative to each arm's own pre-dose level, so the slow recovery from the
stress cancels), and ``efficacy_vs_reference`` is the mean of the efficacy metrics, each
as a fraction of the reference's: 1 is "like ketamine 10 mg/kg", 0 "like vehicle". The
dissociation-like metrics are reported beside it, not folded into it.

Arms run in parallel worker processes (one numba thread each). Every subject's numbers
come from random streams keyed by arm name, subject and assay, so the table depends only
on the seed, never on the number of workers. Each arm is a cohort of its own, as in a
screen on separate groups of animals: its subjects' parameters (between-subject
variability) differ from another arm's, so even the latent metrics of two arms carry
cohort sampling (two copies of one compound file under two names differ by it, most
where the effect is small); raise ``n`` to tell close candidates apart.

The default candidates are the built-in drugs with PK for the species that the route
allows, except the tool compounds whose PK the model does not follow (``window`` PK:
their dose acts as ``dose / ED50`` over a fixed window, so a dose-response or a
comparison of exposure with the compartmental drugs would be meaningless); they are
listed in the notes. Compounds named explicitly (a folder, or ``only``) must fit the
species and route, else :class:`ScreenError` names them.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import as_completed
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import ketasim
from ketasim.experiment.pool import worker_pool
from ketasim.experiment.runner import READOUT_COLUMNS, check_supported, simulate
from ketasim.params import Registry
from ketasim.pk.compounds import (
    BSA_KM,
    BUILTIN,
    COMPOUNDS,
    Compound,
    gives_route,
    species_with_pk,
)
from ketasim.provenance import collect
from ketasim.scenario import load_scenario_text
from ketasim.scenario.units import UnitError, parse_dose

SPECIES = ("mouse", "rat")  # the screen's assays are rodent assays
VEHICLE = "saline"
REFERENCE = ("ketamine", 10.0)  # racemic ketamine 10 mg/kg, the rodent reference dose
DEFAULT_DOSES = "10 mg/kg"
DEFAULT_N = 8
DEFAULT_SEED = 7

#: stress model name -> protocol event before the dose (as the replicas write them:
#: 10 days of CORT in the drinking water or of daily restraint, Moda-Sava et al. 2019;
#: inescapable shock 2 days before, the learned-helplessness induction)
STRESS_PROTOCOLS: dict[str, str | None] = {
    "none": None,
    "cort": "{at: -10d, stress: cort, duration: 10d}",
    "restraint": "{at: -10d, stress: restraint, duration: 10d}",
    "inescapable_shock": "{at: -2d, stress: inescapable_shock, duration: 2h}",
}

SIGNALING_GRID = ("0h, 10min, 20min, 30min, 45min, 1h, 90min, 2h, 150min, 3h, 4h, 5h, 6h, "
                  "8h, 10h, 12h, 16h, 24h, 36h, 48h, 72h, 7d")
SPINE_SESSIONS_H = (0.0, 24.0, 168.0)
OPEN_FIELD_H = (0.25, 0.5)
TST_H = (3.0, 48.0)
WINDOW_END_H = 72.0  # the acute window and formation drive are read up to 3 days
OCCUPANCY_END_H = 2.0  # the dissociation-like period (hyperlocomotion ends by 2 h, F-W-7)
#: the plasticity window lasts while the plasticity potential exceeds the vehicle's by
#: more than this fraction of the vehicle's pre-dose level
WINDOW_THRESHOLD = 0.10
#: each metric's fraction of the reference enters the scores clipped to this range, so
#: that one noisy measured metric on which the reference's effect is small (a spine
#: change of 1-2%, say) cannot dominate the mean
RELATIVE_CLIP = (-1.0, 2.0)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    description: str
    higher_is: str  # "better" (efficacy), "worse" (dissociation-like) or "-" (timing)
    family: str  # "efficacy", "acute" or "score"


#: The screen's columns, in order. Efficacy metrics enter ``efficacy_vs_reference``.
METRICS: tuple[Metric, ...] = (
    Metric("window_peak", "probability", "peak rise of the plasticity potential over "
           "vehicle (0-72 h)", "better", "efficacy"),
    Metric("window_peak_time_h", "h", "time of the window's peak", "-", "timing"),
    Metric("window_duration_h", "h", "hours the plasticity potential exceeds vehicle by "
           f"more than {WINDOW_THRESHOLD:.0%} of the vehicle's pre-dose level",
           "better", "efficacy"),
    Metric("formation_drive_peak", "1", "peak rise of the spine formation drive over "
           "vehicle (0-72 h)", "better", "efficacy"),
    Metric("spine_gain_24h_pct", "%", "spine density change from 0 h to 24 h, minus "
           "vehicle's (two-photon)", "better", "efficacy"),
    Metric("spine_gain_7d_pct", "%", "spine density change from 0 h to 7 d, minus "
           "vehicle's (two-photon)", "better", "efficacy"),
    Metric("tst_rescue_3h_s", "s", "tail-suspension immobility below vehicle at 3 h",
           "better", "efficacy"),
    Metric("tst_rescue_48h_s", "s", "tail-suspension immobility below vehicle at 48 h",
           "better", "efficacy"),
    Metric("nmda_occupancy_pyramidal_peak", "fraction", "peak NMDA receptor occupancy on "
           "pyramidal neurons (0-2 h)", "worse", "acute"),
    Metric("hyperlocomotion_pct", "%", "open-field distance at 15-30 min above vehicle",
           "worse", "acute"),
    Metric("efficacy_vs_reference", "x reference", "mean of the efficacy metrics, each "
           "as a fraction of ketamine 10 mg/kg's (clipped to -1..2)", "better", "score"),
    Metric("dissociation_vs_reference", "x reference", "mean of the two dissociation-like "
           "metrics, each as a fraction of ketamine 10 mg/kg's (clipped to -1..2)", "worse",
           "score"),
)
METRIC_NAMES = tuple(m.name for m in METRICS)
EFFICACY = tuple(m.name for m in METRICS if m.family == "efficacy")
ACUTE = tuple(m.name for m in METRICS if m.family == "acute")
RANKABLE = tuple(m.name for m in METRICS if m.higher_is != "-")
TABLE_COLUMNS = ["rank", "compound", "dose_mg_per_kg", "route", "role", "arm", "n",
                 *METRIC_NAMES]


class ScreenError(ValueError):
    """Options or candidates the screen cannot run (one line naming what and why)."""


@dataclass(frozen=True)
class Candidate:
    compound: str
    dose_mg_per_kg: float
    role: str  # "candidate", "reference" or "vehicle"

    @property
    def arm(self) -> str:
        if self.role == "vehicle":
            return "vehicle"
        return f"{self.compound}_{exact(self.dose_mg_per_kg)}mg_kg"


@dataclass
class ScreenPlan:
    """What the screen will simulate: the options, the arms and the scenario text."""

    species: str
    route: str
    stress: str
    doses: tuple[float, ...]
    n: int
    seed: int
    compounds: tuple[str, ...]  # the candidates, in order
    arms: tuple[Candidate, ...]  # vehicle, reference, then candidates x doses (unique)
    notes: tuple[str, ...]
    scenario_text: str
    per_compound: bool = False  # each candidate at its own effective dose (no --doses)


@dataclass
class ScreenResult:
    plan: ScreenPlan
    table: pd.DataFrame  # one row per arm, ranked (TABLE_COLUMNS)
    readouts: pd.DataFrame
    rank_by: str
    seconds: float
    workers: int  # local processes; 0 when the arms ran on Dask (map_tasks)
    arm_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """Where the arms ran, for the summary line and the report."""
        return f"{self.workers} worker(s)" if self.workers else "a Dask cluster"


# --------------------------------------------------------------------------- options
def exact(x: float) -> str:
    """``x`` in positional notation with the fewest digits that read back as ``x``
    (``0.00005``, not ``5e-05``, which the scenario's dose parser and arm names do not
    take): arm names and the written scenario keep every requested dose apart, and the
    dose simulated is the dose asked for."""
    return np.format_float_positional(float(x), trim="-")


def parse_doses(text: str) -> tuple[float, ...]:
    """``"1,3,10 mg/kg"`` (a number without unit takes the next unit given) or
    ``"300 ug/kg, 1 mg/kg"`` -> doses in mg/kg, sorted and unique."""
    items = [s.strip() for s in str(text).split(",")]
    if not items or any(not s for s in items):
        raise ScreenError(f"--doses: got {text!r}; expected doses per body weight, "
                          "e.g. '1,3,10 mg/kg'")
    unit = None
    out = []
    for item in reversed(items):
        if re.fullmatch(r"[0-9.eE+-]+", item):
            if unit is None:
                raise ScreenError(f"--doses: got {text!r}; the last dose needs a unit, "
                                  "e.g. '1,3,10 mg/kg'")
            item = f"{item} {unit}"
        else:
            m = re.fullmatch(r"[0-9.eE+-]+\s*(\S+)", item)
            unit = m.group(1) if m else None
        try:
            value, canonical = parse_dose(item)
        except UnitError as e:
            raise ScreenError(f"--doses: got {item!r}; expected {e}") from None
        if canonical != "mg/kg":
            raise ScreenError(f"--doses: got {item!r}; the screen doses per body weight "
                              "(mg/kg or ug/kg)")
        if value <= 0:
            raise ScreenError(f"--doses: got {item!r}; expected a dose above zero")
        out.append(value)
    return tuple(sorted(set(out)))


def _unfit(c: Compound, species: str, route: str) -> str | None:
    """Why the compound cannot be a candidate here, or None."""
    if c.kind == "inert":
        return f"{c.name!r} is inert (the screen's vehicle arm already gives saline)"
    if species not in species_with_pk(c):
        have = ", ".join(sorted(species_with_pk(c))) or "none"
        return f"compound {c.name!r} has no PK for species {species!r} (it has: {have})"
    if route not in c.routes:
        return (f"compound {c.name!r} cannot be given by route {route!r} (its routes: "
                f"{', '.join(c.routes)}); choose another --route")
    if not gives_route(c, species, route):
        return (f"compound {c.name!r} gives no {route} absorption for species "
                f"{species!r}; choose another --route")
    return None


def default_candidates(species: str, route: str) -> tuple[list[str], list[str]]:
    """The built-in drugs the screen runs by default, and a note per skipped compound
    (compounds added with ``--compounds`` are screened only when named)."""
    chosen, notes = [], []
    tools = []
    for name in sorted(BUILTIN):
        c = COMPOUNDS[name]
        if c.kind == "inert":
            continue
        if c.is_window:
            tools.append(name)
            continue
        why = _unfit(c, species, route)
        if why:
            notes.append(f"skipped {name}: {why}")
        else:
            chosen.append(name)
    if tools:
        notes.append("skipped the tool compounds " + ", ".join(tools) + " (window PK: the "
                     "model does not follow their concentrations; name them with --only "
                     "to screen them anyway)")
    return chosen, notes


def plan_screen(*, species: str = "mouse", route: str = "ip", stress: str = "cort",
                doses: str | Iterable[float] | None = None, n: int = DEFAULT_N,
                seed: int = DEFAULT_SEED, candidates: Iterable[str] | None = None
                ) -> ScreenPlan:
    """Check the options and build the screen's scenario.

    ``candidates``: compound names (already registered); None for the default set
    (:func:`default_candidates`). Raises :class:`ScreenError` naming the option or the
    compound at fault. ``doses`` None: each candidate at its file's ``effective_dose`` for
    the species, or another species' scaled by body surface area (3 significant digits),
    or 10 mg/kg where the file gives none (either with a note)."""
    if species not in SPECIES:
        raise ScreenError(f"--species: got {species!r}; expected one of {SPECIES} (the "
                          "screen's assays, two-photon spines, tail suspension and open "
                          "field, are rodent assays)")
    if stress not in STRESS_PROTOCOLS:
        raise ScreenError(f"--stress: got {stress!r}; expected one of "
                          f"{list(STRESS_PROTOCOLS)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 1000:
        raise ScreenError(f"--n: got {n!r}; expected a whole number of subjects per arm, "
                          "2..1000")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ScreenError(f"--seed: got {seed!r}; expected an integer in [0, 2**63)")
    per_compound = doses is None
    if per_compound:
        dose_values = ()
    else:
        dose_values = parse_doses(doses) if isinstance(doses, str) else tuple(
            sorted({float(d) for d in doses}))
        if not dose_values or any(not (math.isfinite(d) and d > 0) for d in dose_values):
            raise ScreenError(f"--doses: got {doses!r}; expected doses above zero")
    for name in (VEHICLE, REFERENCE[0]):
        if route not in COMPOUNDS[name].routes:
            raise ScreenError(f"--route: got {route!r}; the vehicle and the reference "
                              f"need a route {name} allows: {', '.join(COMPOUNDS[name].routes)}")
    if candidates is None:
        names, notes = default_candidates(species, route)
    else:
        names, notes = list(dict.fromkeys(candidates)), []
        for name in names:
            if name not in COMPOUNDS:
                raise ScreenError(f"candidate {name!r}: no such compound (known: "
                                  f"{', '.join(sorted(COMPOUNDS))})")
            why = _unfit(COMPOUNDS[name], species, route)
            if why:
                raise ScreenError(f"candidate {why}")
    if not names:
        raise ScreenError(f"no candidate compound fits species {species!r} and route "
                          f"{route!r}")
    arms = {c.arm: c for c in (Candidate(VEHICLE, 0.0, "vehicle"),
                               Candidate(REFERENCE[0], REFERENCE[1], "reference"))}
    own: dict[str, tuple[float, ...]] = {}
    for name in names:
        if not per_compound:
            own[name] = dose_values
            continue
        eff = COMPOUNDS[name].effective_dose_for(species)
        if eff is not None:
            value, other, entry = eff
            own[name] = (float(f"{value:.3g}"),)
            if other != species:
                notes = [*notes, (f"{name}: no effective_dose for {species} in its file; "
                                  f"screened at {own[name][0]:g} mg/kg, its {entry.value:g} "
                                  f"mg/kg in the {other} scaled by body surface area "
                                  f"(Km {BSA_KM[other]:g} / {BSA_KM[species]:g}, FDA 2005)")]
        else:
            own[name] = (float(parse_doses(DEFAULT_DOSES)[0]),)
            notes = [*notes, (f"{name}: no effective_dose for {species} in its file; "
                              f"screened at {DEFAULT_DOSES}")]
    for name in names:
        for d in own[name]:
            c = Candidate(name, d, "candidate")
            if c.arm not in arms:  # ketamine at the reference dose is the reference arm
                arms[c.arm] = c
    text = scenario_text(species, route, stress, n, seed, list(arms.values()))
    used = tuple(sorted({d for ds in own.values() for d in ds}))
    return ScreenPlan(species, route, stress, used, n, seed, tuple(names),
                      tuple(arms.values()), tuple(notes), text, per_compound)


def scenario_text(species: str, route: str, stress: str, n: int, seed: int,
                  arms: list[Candidate]) -> str:
    """The screen as a scenario (YAML): ``ketasim run`` on it gives the same readouts."""
    stress_event = STRESS_PROTOCOLS[stress]
    lines = [
        "# written by ketasim screen: one arm per candidate and dose, the vehicle and the",
        "# reference (ketamine 10 mg/kg), all through the same stress and assays",
        "name: screen",
        f"description: Compound screen, {species}, stress {stress}, route {route}.",
        f"species: {species}",
        f"seed: {seed}",
        "arms:",
    ]
    assays = [
        f"{{assay: signaling_state, at: [{SIGNALING_GRID}]}}",
        "{assay: two_photon_spines, at: [0h, 24h, 7d]}",
        "{assay: open_field, at: [15min, 30min]}",
        "{assay: tail_suspension, at: [3h, 48h]}",
    ]
    for i, c in enumerate(arms):
        drug = (f"{{at: 0h, drug: {VEHICLE}, route: {route}}}" if c.role == "vehicle" else
                f"{{at: 0h, drug: {c.compound}, dose: {exact(c.dose_mg_per_kg)} mg/kg, "
                f"route: {route}}}")
        lines += [f"  - name: {c.arm}", f"    n: {n}", "    protocol:"]
        if stress_event:
            lines.append(f"      - {stress_event}")
        lines.append(f"      - {drug}")
        if i == 0:
            lines.append("    assays: &assays")
            lines += [f"      - {a}" for a in assays]
        else:
            lines.append("    assays: *assays")
    return "\n".join(lines) + "\n"


def check_rank_by(name: str) -> None:
    if name not in RANKABLE:
        raise ScreenError(f"--rank-by: got {name!r}; expected one of {list(RANKABLE)}")


# --------------------------------------------------------------------------- running
def run_arm(text: str, arm: str, registry: Registry) -> tuple[str, pd.DataFrame, float]:
    """Simulate one arm of the screen's scenario (in a worker process)."""
    t0 = time.perf_counter()
    sc = load_scenario_text(text, "screen_scenario.yaml")
    one = sc.model_copy(update={"arms": [a for a in sc.arms if a.name == arm]})
    res = simulate(one, registry=registry)
    return arm, res.readouts, time.perf_counter() - t0


def run_screen(plan: ScreenPlan, *, registry: Registry, workers: int | None = None,
               compounds: Iterable[os.PathLike | str] = (), rank_by: str =
               "efficacy_vs_reference", progress: Callable[[str], None] | None = None,
               map_tasks: Callable | None = None) -> ScreenResult:
    """Simulate every arm of ``plan`` (in parallel) and rank the candidates.

    ``compounds``: folders of compound files already registered in this process, which
    each worker registers again; ``progress`` is called with each arm's name when done.
    ``map_tasks(fn, args_list, done=None)``, if given, runs the arms elsewhere instead of
    ``workers`` processes here (a Dask cluster, ``ketasim screen --scheduler``; see
    :func:`ketasim.experiment.runner.simulate`): the same numbers."""
    check_rank_by(rank_by)
    ketasim._ensure_configured()  # numba's cache folder, inherited by the workers
    t0 = time.perf_counter()
    sc = load_scenario_text(plan.scenario_text, "screen_scenario.yaml")  # checks it first
    check_supported(sc, registry)
    names = [c.arm for c in plan.arms]
    workers = max(1, min(workers or os.cpu_count() or 1, len(names)))
    frames: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}

    def collect(out, report: bool = True) -> None:
        arm, df, s = out
        frames[arm], seconds[arm] = df, s
        if progress and report:
            progress(arm)

    if map_tasks is not None:
        done = None if progress is None else (lambda k: progress(names[k]))
        for out in map_tasks(run_arm, [(plan.scenario_text, arm, registry) for arm in names],
                             done=done):
            collect(out, report=False)
    elif workers == 1:
        for arm in names:
            collect(run_arm(plan.scenario_text, arm, registry))
    else:
        with worker_pool(workers, compounds) as pool:
            futures = [pool.submit(run_arm, plan.scenario_text, arm, registry)
                       for arm in names]
            for fut in as_completed(futures):
                collect(fut.result())
    readouts = pd.concat([frames[a] for a in names], ignore_index=True)[READOUT_COLUMNS]
    table = rank(screen_metrics(readouts, plan), rank_by)
    return ScreenResult(plan, table, readouts, rank_by, time.perf_counter() - t0,
                        0 if map_tasks is not None else workers, seconds)


# --------------------------------------------------------------------------- metrics
def _mean(readouts: pd.DataFrame, assay: str, readout: str) -> pd.DataFrame:
    """Arm x time table of the subjects' mean."""
    d = readouts[(readouts["assay"] == assay) & (readouts["readout"] == readout)]
    return d.groupby(["arm", "time_h"])["value"].mean().unstack("time_h")


def _above(t: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """Hours the piecewise-linear curve ``y(t)`` spends above ``threshold``."""
    total = 0.0
    for t0, t1, y0, y1 in zip(t[:-1], t[1:], y[:-1], y[1:], strict=True):
        a, b = y0 - threshold, y1 - threshold
        if a > 0 and b > 0:
            total += t1 - t0
        elif a > 0 or b > 0:  # crosses once within the interval
            total += (t1 - t0) * max(a, b) / (abs(a) + abs(b))
    return float(total)


def window_metrics(delta: pd.Series, threshold: float) -> dict[str, float]:
    """Peak, its time and the duration above ``threshold`` of a time course relative to
    vehicle (index: hours after the dose), read on 0..WINDOW_END_H."""
    d = delta[(delta.index >= 0) & (delta.index <= WINDOW_END_H)]
    t, y = d.index.to_numpy(float), d.to_numpy(float)
    k = int(np.argmax(y))
    # without a window (peak under the threshold) the peak's time is noise: left out
    return {"window_peak": float(y[k]),
            "window_peak_time_h": float(t[k]) if y[k] > threshold else float("nan"),
            "window_duration_h": _above(t, y, threshold)}


def _change_from_predose(m: pd.DataFrame) -> pd.DataFrame:
    return m.sub(m[0.0], axis=0)


def screen_metrics(readouts: pd.DataFrame, plan: ScreenPlan) -> pd.DataFrame:
    """One row per arm with the metrics of :data:`METRICS` (before ranking)."""
    arms = [c.arm for c in plan.arms]
    veh = "vehicle"
    pp = _mean(readouts, "signaling_state", "plasticity_potential")
    pp_delta = _change_from_predose(pp)
    pp_delta = pp_delta.sub(pp_delta.loc[veh], axis=1)
    threshold = WINDOW_THRESHOLD * float(pp.loc[veh, 0.0])
    fd = _change_from_predose(_mean(readouts, "signaling_state", "formation_drive"))
    fd = fd.sub(fd.loc[veh], axis=1)
    fd = fd.loc[:, (fd.columns >= 0) & (fd.columns <= WINDOW_END_H)]
    occ = _mean(readouts, "signaling_state", "occupancy_pyramidal")
    occ = occ.loc[:, (occ.columns >= 0) & (occ.columns <= OCCUPANCY_END_H)]
    of = _mean(readouts, "open_field", "distance_cm").mean(axis=1)
    tst = _mean(readouts, "tail_suspension", "tst_immobility_s")
    sp = readouts[(readouts["assay"] == "two_photon_spines")
                  & (readouts["readout"] == "spine_density_per_10um")]
    sp = sp.pivot_table(index=["arm", "subject"], columns="time_h", values="value")
    gain = (sp.div(sp[0.0], axis=0) - 1.0).mul(100.0).groupby(level="arm").mean()
    gain = gain.sub(gain.loc[veh], axis=1)
    rows = []
    for c in plan.arms:
        a = c.arm
        row = {"compound": c.compound, "dose_mg_per_kg": c.dose_mg_per_kg,
               "route": plan.route, "role": c.role, "arm": a, "n": plan.n}
        row |= window_metrics(pp_delta.loc[a], threshold)
        row["formation_drive_peak"] = float(fd.loc[a].max())
        row["spine_gain_24h_pct"] = float(gain.loc[a, 24.0])
        row["spine_gain_7d_pct"] = float(gain.loc[a, 168.0])
        row["tst_rescue_3h_s"] = float(tst.loc[veh, 3.0] - tst.loc[a, 3.0])
        row["tst_rescue_48h_s"] = float(tst.loc[veh, 48.0] - tst.loc[a, 48.0])
        row["nmda_occupancy_pyramidal_peak"] = float(occ.loc[a].max())
        row["hyperlocomotion_pct"] = float((of.loc[a] / of.loc[veh] - 1.0) * 100.0)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("arm", drop=False).loc[arms]
    ref = table.loc[Candidate(*REFERENCE, "reference").arm]
    table["efficacy_vs_reference"] = _relative(table, ref, EFFICACY)
    table["dissociation_vs_reference"] = _relative(table, ref, ACUTE)
    return table.reset_index(drop=True)


def _relative(table: pd.DataFrame, ref: pd.Series, names: tuple[str, ...]) -> pd.Series:
    """Mean over ``names`` of each metric as a fraction of the reference's, each fraction
    clipped to ``RELATIVE_CLIP`` (metrics where the reference shows no effect are left
    out)."""
    usable = [m for m in names if ref[m] > 0]
    if not usable:
        return pd.Series(np.nan, index=table.index)
    frac = table[usable].div(ref[usable].astype(float), axis=1)
    return frac.clip(*RELATIVE_CLIP).mean(axis=1)


def rank(table: pd.DataFrame, by: str = "efficacy_vs_reference") -> pd.DataFrame:
    """Sorted best first by ``by`` (its direction from :data:`METRICS`), with ``rank``
    (1 = best; ties share the better rank) over every arm, vehicle and reference
    included, so a candidate below the vehicle is seen as such."""
    metric = next(m for m in METRICS if m.name == by)
    better_high = metric.higher_is == "better"
    out = table.copy()
    out["rank"] = out[by].rank(ascending=not better_high, method="min").astype("Int64")
    out = out.sort_values(["rank", "compound", "dose_mg_per_kg"], na_position="last")
    return out[TABLE_COLUMNS].reset_index(drop=True)


def metric_table() -> pd.DataFrame:
    """The metric dictionary (name, unit, description, direction) for files and reports."""
    return pd.DataFrame([{"metric": m.name, "unit": m.unit, "higher_is": m.higher_is,
                          "family": m.family, "description": m.description}
                         for m in METRICS])


def manifest(result: ScreenResult, registry: Registry, started: str | None = None,
             inputs: Iterable[os.PathLike | str] = ()) -> dict:
    """The screen's ``manifest.json``: the provenance entries of
    :func:`ketasim.provenance.collect` (the scenario text, compound files, versions,
    commit, times) and the screen's options, candidates, notes and timings."""
    p = result.plan
    return collect(registry=registry, started=started, inputs=inputs,
                   scenario_text=p.scenario_text) | {
        "command": "screen", "species": p.species, "route": p.route, "stress": p.stress,
        "doses_mg_per_kg": list(p.doses), "per_compound_doses": p.per_compound,
        "n": p.n, "seed": p.seed,
        "candidates": list(p.compounds), "arms": [c.arm for c in p.arms],
        "reference": {"compound": REFERENCE[0], "dose_mg_per_kg": REFERENCE[1]},
        "rank_by": result.rank_by, "notes": list(p.notes), "workers": result.workers,
        "timings_s": {"total": result.seconds, "arms": result.arm_seconds},
        "metrics": metric_table().to_dict(orient="records")}
