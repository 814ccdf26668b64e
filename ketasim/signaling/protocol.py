"""The signalling layer's inputs: stressors and interventions declared as data, and the
compilation of an arm's protocol (doses, stressors, interventions) into solver events.

Each event moves a state (a dose into a compartment) or a control (an infusion rate, a
stressor's intensity, a tool compound's ``dose / ED50``, an intervention flag) at a
time. Values can differ per subject (absolute doses over body weight, absorption
rates with variability), so values are an (n_subjects, n_events) array.

Stressors and interventions are declarations (:class:`Stressor`, :class:`Intervention`):
what they act on (a signalling control, with a value that is a number or a registry
parameter; a spine-layer action) and how they act in time. The scenario vocabulary and
the compiler read the same declarations; :func:`register_intervention` and
:func:`register_stressor` add one without touching any other file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ketasim.core.cohort import Cohort
from ketasim.params import Registry
from ketasim.pk.compounds import COMPOUNDS, TOOL_POTENCY_KEY
from ketasim.signaling import spec
from ketasim.signaling.solver import EV_ADD_PARAM, EV_ADD_STATE, EV_SET_PARAM

_SIDX = {n: i for i, n in enumerate(spec.STATE_NAMES)}
_PIDX = {n: i for i, n in enumerate(spec.PVEC_NAMES)}

EXTRAVASCULAR = ("ip", "sc", "im", "intranasal", "oral")


class ProtocolError(ValueError):
    """A protocol the model cannot carry out (e.g. a route not defined for a species)."""


@dataclass(frozen=True)
class EventTable:
    times: np.ndarray  # (n_ev,) h, sorted
    kind: np.ndarray  # (n_ev,) int
    index: np.ndarray  # (n_ev,) int: state or pvec index
    values: np.ndarray  # (n_sub, n_ev)
    labels: tuple[str, ...]  # human-readable, for SBML ids and debugging

    @property
    def n(self) -> int:
        return self.times.shape[0]


class _Builder:
    def __init__(self, n_sub: int):
        self.n_sub = n_sub
        self.rows: list[tuple[float, int, int, np.ndarray, str]] = []

    def add(self, t: float, kind: int, target: str, value, label: str) -> None:
        index = _SIDX[target] if kind == EV_ADD_STATE else _PIDX[target]
        v = np.broadcast_to(np.asarray(value, dtype=float), (self.n_sub,)).copy()
        self.rows.append((float(t), kind, index, v, label))

    def table(self) -> EventTable:
        order = sorted(range(len(self.rows)), key=lambda i: (self.rows[i][0], i))
        rows = [self.rows[i] for i in order]
        if not rows:
            return EventTable(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros((self.n_sub, 0)), ())
        return EventTable(
            np.array([r[0] for r in rows]),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64),
            np.stack([r[3] for r in rows], axis=1),
            tuple(r[4] for r in rows),
        )


def _route_param(registry: Registry, cohort: Cohort, species: str, route: str, what: str,
                 where: str) -> np.ndarray:
    name = f"route.{species}.{route}.{what}"
    if name not in registry:
        raise ProtocolError(f"{where}: route {route!r} is not defined for species {species!r}")
    return cohort.get(name)


def _dose_mg_per_kg(dose, cohort: Cohort, species: str, where: str) -> np.ndarray:
    if dose.kind == "per_kg":
        return np.full(cohort.n, dose.value)
    if dose.kind == "absolute":
        return dose.value / cohort.get(f"species.{species}.body_weight")
    raise ProtocolError(f"{where}: a concentration dose is only valid for bath application")


def compile_arm(arm, species: str, cohort: Cohort, registry: Registry,
                arm_path: str = "arm") -> EventTable:
    """Events of one arm for every subject of its cohort."""
    b = _Builder(cohort.n)
    for i, ev in enumerate(arm.protocol):
        where = f"{arm_path}.protocol[{i}]"
        if getattr(ev, "stress", None):
            _compile_stress(b, ev, registry, where)
        elif getattr(ev, "drug", None):
            _compile_drug(b, ev, species, cohort, registry, where)
        elif getattr(ev, "intervention", None):
            _compile_intervention(b, ev, registry, where)
    return b.table()


def _compile_drug(b: _Builder, ev, species, cohort, registry, where) -> None:
    comp = COMPOUNDS[ev.drug]
    if comp.kind == "inert":
        return
    route = ev.route
    if comp.kind in ("parent", "metabolite"):
        dose = _dose_mg_per_kg(ev.dose, cohort, species, where)
        targets = (comp.parents.items() if comp.kind == "parent"
                   else [(comp.species_prefix, 1.0)])
        for prefix, frac in targets:
            amount = frac * dose
            if route == "iv" and ev.over:
                rate = amount / ev.over
                b.add(ev.at, EV_ADD_PARAM, f"inf_{prefix}", rate, f"{ev.drug}_infusion_on")
                b.add(ev.at + ev.over, EV_ADD_PARAM, f"inf_{prefix}", -rate,
                      f"{ev.drug}_infusion_off")
            elif route == "iv":
                b.add(ev.at, EV_ADD_STATE, f"{prefix}_central", amount, f"{ev.drug}_iv")
            elif route in EXTRAVASCULAR:
                f = _route_param(registry, cohort, species, route, "f", where)
                if prefix == "HNK" and route == "oral":
                    f = cohort.get(f"route.hnk_oral_f.{species}")
                ka = _route_param(registry, cohort, species, route, "ka", where)
                b.add(ev.at, EV_SET_PARAM, f"ka_{prefix}", ka, f"{ev.drug}_{route}_ka")
                b.add(ev.at, EV_ADD_STATE, f"{prefix}_depot", f * amount, f"{ev.drug}_{route}")
            else:
                raise ProtocolError(f"{where}: route {route!r} is not available for {ev.drug}")
        return
    # tool compound: timed on/off action
    pre = comp.registry_prefix
    if route == "bath":
        kind = "concentration"
        dose = np.full(cohort.n, ev.dose.value)
    elif route == "intracerebral":
        kind = "local"
        dose = np.full(cohort.n, ev.dose.value)
    else:
        kind = "per_kg"
        dose = _dose_mg_per_kg(ev.dose, cohort, species, where)
    key = f"{pre}.{TOOL_POTENCY_KEY[kind]}"
    if key not in registry:
        raise ProtocolError(f"{where}: no potency for {ev.drug} given by route {route!r}")
    r = dose / registry.value(key)
    on = ev.at + registry.value(f"{pre}.onset")
    off = on + registry.value(f"{pre}.duration")
    b.add(on, EV_ADD_PARAM, comp.control, r, f"{ev.drug}_on")
    b.add(off, EV_ADD_PARAM, comp.control, -r, f"{ev.drug}_off")


def _value(v: float | str, registry: Registry) -> float:
    return registry.value(v) if isinstance(v, str) else float(v)


def _compile_stress(b: _Builder, ev, registry, where) -> None:
    st = _lookup(STRESSORS, ev.stress, "stressor", where)
    k = registry.value(st.intensity) * ev.intensity
    b.add(ev.at, EV_ADD_PARAM, st.control, k, f"{ev.stress}_on")
    b.add(ev.at + ev.duration, EV_ADD_PARAM, st.control, -k, f"{ev.stress}_off")


def _compile_intervention(b: _Builder, ev, registry, where) -> None:
    iv = _lookup(INTERVENTIONS, ev.intervention, "intervention", where)
    for c in iv.controls:
        value = _value(c.value, registry)
        if iv.kind == "permanent":
            b.add(ev.at, EV_SET_PARAM, c.control, value, iv.name)
            continue
        lasts = ev.duration if iv.kind == "timed" else _value(c.lasts, registry)
        b.add(ev.at, EV_SET_PARAM, c.control, value, f"{iv.name}_on")
        b.add(ev.at + lasts, EV_SET_PARAM, c.control, 0.0, f"{iv.name}_off")


def _lookup(table: dict, name: str, what: str, where: str):
    if name not in table:
        raise ProtocolError(f"{where}: unknown {what} {name!r}; known: {sorted(table)}")
    return table[name]


def per_subject_parameter(name: str) -> bool:
    """Whether the registry parameter ``name`` is read per subject (so between-subject
    variability can apply to it): an ODE parameter (:mod:`ketasim.signaling.spec`, any
    species), a route's bioavailability or absorption rate, or a body weight (doses
    given as a total mass)."""
    return bool(_ODE_NAMES.match(name)) or name.startswith(("route.", "species."))


# the spec's registry names, with ``{species}`` standing for any species
_ODE_NAMES = re.compile("|".join(
    re.escape(p.registry).replace(re.escape("{species}"), r"[a-z]+") for p in spec.PARAMS)
    .join(("^(?:", ")$")))


def intervention_times(arm, action: str) -> list[float]:
    """Times of an arm's interventions whose spine-layer action is ``action``."""
    return sorted(float(ev.at) for ev in arm.protocol
                  if getattr(ev, "intervention", None) in INTERVENTIONS
                  and INTERVENTIONS[ev.intervention].spines == action)


# --------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Control:
    """A signalling control an intervention sets: ``value`` is a number or the name of a
    registry parameter; ``lasts`` (instantaneous interventions only) is how long the
    control stays set, in hours, as a number or a registry parameter name."""

    control: str
    value: float | str
    lasts: float | str = 0.0


@dataclass(frozen=True)
class Intervention:
    """An experimental manipulation. ``kind``: ``"permanent"`` (from ``at`` on; a genetic
    manipulation, given at most once per arm), ``"timed"`` (for the event's ``duration``)
    or ``"instantaneous"`` (a pulse at ``at``). ``controls``: the signalling controls it
    sets; ``spines``: the spine-layer action it triggers (``"remove_new_spines"``: the
    engine removes spines born in the preceding window, see ketasim.spines.engine)."""

    name: str
    kind: Literal["permanent", "timed", "instantaneous"]
    description: str
    controls: tuple[Control, ...] = ()
    spines: str = ""

    def __post_init__(self):
        if self.kind not in ("permanent", "timed", "instantaneous"):
            raise ValueError(f"intervention {self.name!r}: kind must be permanent, timed "
                             f"or instantaneous, got {self.kind!r}")
        bad = [c.control for c in self.controls if c.control not in _PIDX]
        if bad:
            raise ValueError(f"intervention {self.name!r}: unknown signalling controls "
                             f"{bad}")
        if self.spines not in SPINE_ACTIONS:
            raise ValueError(f"intervention {self.name!r}: spine action {self.spines!r}; "
                             f"expected one of {SPINE_ACTIONS}")


@dataclass(frozen=True)
class Stressor:
    """A stress protocol: while it lasts it adds ``registry[intensity] x the event's
    intensity`` to the signalling control ``control``."""

    name: str
    description: str
    intensity: str  # registry parameter (relative intensity)
    control: str = "stress_input"


SPINE_ACTIONS = ("", "remove_new_spines")

INTERVENTIONS: dict[str, Intervention] = {}
STRESSORS: dict[str, Stressor] = {}


def register_intervention(iv: Intervention) -> Intervention:
    """Add (or replace) an intervention; the scenario vocabulary follows."""
    INTERVENTIONS[iv.name] = iv
    return iv


def register_stressor(st: Stressor) -> Stressor:
    """Add (or replace) a stressor; the scenario vocabulary follows."""
    STRESSORS[st.name] = st
    return st


for _st in (
    Stressor("cort", "chronic corticosterone in the drinking water", "stress.intensity_cort"),
    Stressor("restraint", "repeated restraint stress", "stress.intensity_restraint"),
    Stressor("inescapable_shock", "inescapable foot shock (learned helplessness)",
             "stress.intensity_inescapable_shock"),
):
    register_stressor(_st)

for _iv in (
    Intervention("drd1_cko", "permanent", "conditional Drd1 knock-out in mPFC",
                 (Control("drd1_ko", 1.0),)),
    Intervention("pki_alpha", "permanent", "viral PKI-alpha expression (PKA block)",
                 (Control("pki_block", "intervention.pki_alpha_block"),)),
    Intervention("vta_da_chemogenetic_inhibition", "timed",
                 "chemogenetic inhibition of VTA dopamine neurons",
                 (Control("vta_inhibition", "intervention.vta_inhibition"),)),
    Intervention("mpfc_da_terminal_inhibition", "timed",
                 "optogenetic inhibition of VTA dopamine terminals in mPFC",
                 (Control("terminal_inhibition", "intervention.terminal_inhibition"),)),
    Intervention("mpfc_da_terminal_activation", "timed",
                 "optogenetic activation of VTA dopamine terminals in mPFC",
                 (Control("terminal_activation", 1.0),)),
    # the light shrinks the probe-holding potentiated synapses (signalling layer); the
    # spines formed since are removed in the spine layer (ketasim.spines.engine)
    Intervention("as_parac1_photoactivation", "instantaneous",
                 "light pulse activating AS-PaRAC1 in recently potentiated spines",
                 (Control("parac1_shrink", "intervention.parac1_shrink_rate",
                          "intervention.parac1_light_h"),),
                 spines="remove_new_spines"),
):
    register_intervention(_iv)
