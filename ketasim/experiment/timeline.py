"""Compile an arm's protocol (doses, stressors, interventions) into solver events.

Each event moves a state (a dose into a compartment) or a control (an infusion rate, a
stressor's intensity, a tool compound's ``dose / ED50``, an intervention flag) at a
time. Values can differ per subject (absolute doses over body weight, absorption
rates with variability), so values are an (n_subjects, n_events) array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketasim.experiment.cohort import Cohort
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
            k = registry.value(f"stress.intensity_{ev.stress}") * ev.intensity
            b.add(ev.at, EV_ADD_PARAM, "stress_input", k, f"{ev.stress}_on")
            b.add(ev.at + ev.duration, EV_ADD_PARAM, "stress_input", -k, f"{ev.stress}_off")
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


def _compile_intervention(b: _Builder, ev, registry, where) -> None:
    name = ev.intervention
    if name == "drd1_cko":
        b.add(ev.at, EV_SET_PARAM, "drd1_ko", 1.0, name)
    elif name == "pki_alpha":
        b.add(ev.at, EV_SET_PARAM, "pki_block", registry.value("intervention.pki_alpha_block"),
              name)
    elif name in ("vta_da_chemogenetic_inhibition", "mpfc_da_terminal_inhibition",
                  "mpfc_da_terminal_activation"):
        control, value = {
            "vta_da_chemogenetic_inhibition": ("vta_inhibition",
                                               registry.value("intervention.vta_inhibition")),
            "mpfc_da_terminal_inhibition": ("terminal_inhibition",
                                            registry.value("intervention.terminal_inhibition")),
            "mpfc_da_terminal_activation": ("terminal_activation", 1.0),
        }[name]
        b.add(ev.at, EV_SET_PARAM, control, value, f"{name}_on")
        b.add(ev.at + ev.duration, EV_SET_PARAM, control, 0.0, f"{name}_off")
    elif name == "as_parac1_photoactivation":
        # the light shrinks the probe-holding potentiated synapses (signalling layer); the
        # spines formed since are removed in the spine layer (ketasim.spines.engine)
        light = registry.value("intervention.parac1_light_h")
        b.add(ev.at, EV_SET_PARAM, "parac1_shrink",
              registry.value("intervention.parac1_shrink_rate"), f"{name}_on")
        b.add(ev.at + light, EV_SET_PARAM, "parac1_shrink", 0.0, f"{name}_off")
    # other interventions act on later layers only
