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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ketasim.core.assay import HUMANS, RODENTS
from ketasim.core.cohort import Cohort
from ketasim.core.regions import KNOWN_REGIONS
from ketasim.params import Registry
from ketasim.pk.compounds import (
    COMPOUNDS,
    OWN_ABSORPTION,
    Compound,
    CompoundError,
    TargetAction,
    Value,
    same_unit,
)
from ketasim.pk.targets import ALLOSTERIC, REMOVING
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
    # drug-slot parameters set by the arm's compounds: (pvec index, (n_sub,) values)
    params: tuple[tuple[int, np.ndarray], ...] = ()
    slots: tuple[str, ...] = ()  # compound in each used drug slot
    # the protocol entry (its index in the arm's protocol) each event comes from
    sources: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return self.times.shape[0]

    def withhold(self, entries: Mapping[int, float], stop: np.ndarray) -> EventTable:
        """The same events with the doses of some protocol entries withheld from some
        subjects: every event of entry ``k`` (``entries``: entry index -> the entry's
        time, h) is removed for the subjects whose ``stop`` time (h; inf: none) lies
        before that time, including the entry's later events (an infusion's end, a
        later nasal device). Removed means zero for the events that add to a state or a
        parameter (an amount, an infusion rate); an event that sets a parameter (an
        absorption rate) stays, since it changes nothing without the amount. The event
        times stay, so a subject's integration up to its stop time is unchanged."""
        stop = np.asarray(stop, dtype=float)
        if stop.shape != (self.values.shape[0],):
            raise ValueError(f"withhold: one stop time per subject ({self.values.shape[0]}), "
                             f"got shape {stop.shape}")
        keys = list(entries)
        given = ~(stop[:, None] < np.array([entries[k] for k in keys], dtype=float))
        return self.select({k: c for c, k in enumerate(keys)}, given)

    def select(self, entries: Mapping[int, int], given: np.ndarray) -> EventTable:
        """The same events with each subject's doses of some protocol entries given or
        not: entry ``k`` (``entries``: entry index -> column of ``given``) is given to
        the subjects where ``given[:, column]`` is true (a needs-based taper,
        :mod:`ketasim.experiment.taper`). Not given is zero, as in :meth:`withhold`; the
        event times stay, so the solver steps alike up to a subject's first change."""
        given = np.asarray(given, dtype=bool)
        if given.ndim != 2 or given.shape[0] != self.values.shape[0]:
            raise ValueError(f"select: one row per subject ({self.values.shape[0]}), got "
                             f"shape {given.shape}")
        if len(self.sources) != self.n:
            raise ValueError("this event table does not record its events' protocol "
                             "entries")
        values = self.values.copy()
        for j, (src, kind) in enumerate(zip(self.sources, self.kind, strict=True)):
            if src in entries and kind != EV_SET_PARAM:
                values[~given[:, entries[src]], j] = 0.0
        return replace(self, values=values)

    def subset(self, subjects) -> EventTable:
        """The same events for some subjects (an index or slice into the cohort)."""
        return replace(self, values=self.values[subjects],
                       params=tuple((j, v[subjects]) for j, v in self.params))


class _Builder:
    def __init__(self, n_sub: int):
        self.n_sub = n_sub
        self.rows: list[tuple[float, int, int, np.ndarray, str, int]] = []
        self.source = -1  # the protocol entry being compiled
        self.params: dict[int, np.ndarray] = {}
        self.slots: tuple[str, ...] = ()
        # hepatic availability F_h per compound whose PK gives a liver (first pass)
        self.hepatic_f: dict[str, np.ndarray] = {}
        # the end (h) and label of the last pulse that set each control: a pulse that
        # starts before it ends would be switched off by it (its off event sets 0)
        self.pulse_end: dict[str, tuple[float, str]] = {}
        self.permanent: dict[str, str] = {}  # control -> the permanent change that set it

    def param(self, name: str) -> np.ndarray:
        """The value per subject of a slot parameter set so far."""
        return self.params[_PIDX[name]]

    def set_param(self, name: str, value) -> None:
        v = np.broadcast_to(np.asarray(value, dtype=float), (self.n_sub,)).copy()
        self.params[_PIDX[name]] = v

    def add(self, t: float, kind: int, target: str, value, label: str) -> None:
        index = _SIDX[target] if kind == EV_ADD_STATE else _PIDX[target]
        v = np.broadcast_to(np.asarray(value, dtype=float), (self.n_sub,)).copy()
        self.rows.append((float(t), kind, index, v, label, self.source))

    def table(self) -> EventTable:
        order = sorted(range(len(self.rows)), key=lambda i: (self.rows[i][0], i))
        rows = [self.rows[i] for i in order]
        params = tuple(sorted(self.params.items()))
        if not rows:
            return EventTable(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros((self.n_sub, 0)), (), params, self.slots)
        return EventTable(
            np.array([r[0] for r in rows]),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64),
            np.stack([r[3] for r in rows], axis=1),
            tuple(r[4] for r in rows),
            params,
            self.slots,
            tuple(r[5] for r in rows),
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


def event_where(arm_path: str, ev) -> str:
    """An event named for an error message by what it is and when: the arm's protocol is
    stored sorted by time with repeated doses expanded, so its indices are not the
    file's."""
    name = (getattr(ev, "drug", None) or getattr(ev, "stress", None)
            or getattr(ev, "intervention", None))
    return f"{arm_path}.protocol[{name} at {ev.at:g} h]"


def compile_arm(arm, species: str, cohort: Cohort, registry: Registry,
                arm_path: str = "arm") -> EventTable:
    """Events of one arm for every subject of its cohort, and the drug-slot parameters of
    the arm's compounds."""
    b = _Builder(cohort.n)
    slots = _assign_slots(arm, species, cohort, registry, b, arm_path)
    for i, ev in enumerate(arm.protocol):
        where = event_where(arm_path, ev)
        b.source = i
        if getattr(ev, "stress", None):
            _compile_stress(b, ev, registry, where)
        elif getattr(ev, "drug", None):
            _compile_drug(b, ev, species, cohort, registry, slots, where)
        elif getattr(ev, "intervention", None):
            _compile_intervention(b, ev, registry, where)
    return b.table()


def _compound(name: str, where: str) -> Compound:
    if name not in COMPOUNDS:
        raise ProtocolError(f"{where}: unknown compound {name!r}; known: {sorted(COMPOUNDS)}")
    return COMPOUNDS[name]


def _pk_compounds(name: str, where: str) -> list[str]:
    """The compounds with compartmental PK that a dose of ``name`` puts in the body: its
    components (a racemate) or itself, then their metabolites; parents first."""
    c = _compound(name, where)
    if (c.kind == "inert" and not c.pk) or c.is_window:
        return []
    out: list[str] = []
    for part in (list(c.components) or [name]):
        for m in [part, *_metabolites(part, where)]:
            if m not in out:
                out.append(m)
    return out


def _metabolites(name: str, where: str) -> list[str]:
    out: list[str] = []
    for m, _ in _compound(name, where).metabolites:
        out += [m, *_metabolites(m, where)]
    return out


def _resolver(cohort: Cohort, registry: Registry, where: str, what: str):
    def get(name: str) -> np.ndarray:
        if name not in registry:
            raise ProtocolError(f"{where}: {what} refers to registry parameter {name!r}, "
                                "which does not exist")
        return cohort.get(name)
    return get


def _resolve(v: Value, cohort, registry, species, where, what) -> np.ndarray:
    for name in v.names(species):
        if name in registry and v.param and name == v.param.replace("{species}", species):
            unit = registry[name].unit
            if not same_unit(unit, v.unit):
                raise ProtocolError(f"{where}: {what} must be in {v.unit}, but registry "
                                    f"parameter {name!r} is in {unit}")
    out = v.resolve(_resolver(cohort, registry, where, what), species)
    return np.broadcast_to(np.asarray(out, dtype=float), (cohort.n,))


def _assign_slots(arm, species, cohort, registry, b: _Builder, arm_path) -> dict[str, int]:
    """Give each compound with compartmental PK in the arm a drug slot (parents before
    their metabolites) and set the slot's parameters from its compound file."""
    names: list[str] = []
    first: dict[str, str] = {}  # each compound's first dose (or its parent's), for errors
    for i, ev in enumerate(arm.protocol):
        if getattr(ev, "drug", None):
            for n in _pk_compounds(ev.drug, event_where(arm_path, ev)):
                if n not in names:
                    names.append(n)
                    first[n] = event_where(arm_path, ev)
    # parents first: a metabolite's slot comes after every slot it is formed from
    order: list[str] = []

    def place(n: str) -> None:
        for p in names:
            if p not in order and any(m == n for m, _ in COMPOUNDS[p].metabolites):
                place(p)
        if n not in order:
            order.append(n)

    for n in names:
        place(n)
    if len(order) > spec.N_SLOTS:
        raise ProtocolError(f"{arm_path}: the arm's compounds need {len(order)} drug slots "
                            f"({', '.join(order)}); the model has {spec.N_SLOTS}")
    slots = {n: k for k, n in enumerate(order)}
    b.slots = tuple(order)
    for n, k in slots.items():
        c = COMPOUNDS[n]
        where = f"{first[n]} ({c.source_file})"
        try:
            pk = c.species_pk(species, where)
        except CompoundError as e:
            raise ProtocolError(str(e)) from None

        def val(v: Value, what: str, where: str = where) -> np.ndarray:
            return _resolve(v, cohort, registry, species, where, what)

        f = pk.fields
        scale = _allometry(pk, cohort, species, val)
        if "qh" in f and "clint_h" in f:  # first pass: the well-stirred liver
            f_h, cl_age = _liver(pk, cohort, species, registry, val)
            b.hepatic_f[n] = f_h
            scale["cl"] = scale.get("cl", 1.0) * cl_age
        for field, key in (("cl", "cl"), ("v1", "v1"), ("q", "q"), ("v2", "v2"),
                           ("q2", "q2"), ("v3", "v3"),
                           ("kp", "kp_brain"), ("ke0", "ke0"), ("fu", "fu_brain")):
            b.set_param(f"{field}{k}", val(f[key], f"pk.{species}.{key}")
                        * scale.get(field, 1.0))
        b.set_param(f"mw{k}", val(c.mw, "mw"))
        for a in c.analytes:
            b.set_param(f"an_{a}{k}", 1.0)
        for m, frac in c.metabolites:
            if m in slots:
                b.set_param(f"fm{k}_{slots[m]}", val(frac, f"metabolites.{m}.fraction"))
        for t in c.targets:
            _set_target(b, t, k, val)
    return slots


def _allometry(pk, cohort: Cohort, species: str, val) -> dict[str, np.ndarray]:
    """Per-kg factors of a PK with allometric scaling: a clearance CL = CL_ref (W /
    W_ref)^e_cl is, per kg, cl_ref (W / W_ref)^(e_cl - 1) (likewise volumes with e_v);
    the values in the compound file are per kg at the reference weight."""
    if pk.allometry is None:
        return {}
    w = cohort.get(f"species.{species}.body_weight")
    rel = w / val(pk.allometry["reference_kg"], "allometry.reference_kg")
    f_cl = rel ** (val(pk.allometry["cl"], "allometry.cl") - 1.0)
    f_v = rel ** (val(pk.allometry["v"], "allometry.v") - 1.0)
    return {"cl": f_cl, "q": f_cl, "q2": f_cl, "v1": f_v, "v2": f_v, "v3": f_v}


def _liver(pk, cohort: Cohort, species: str, registry: Registry, val
           ) -> tuple[np.ndarray, np.ndarray]:
    """(hepatic availability F_h = Q_h / (Q_h + CL_int,h) of a swallowed dose, factor on
    the clearance) of each subject. With an age effect (``hepatic_age``), the hepatic
    blood flow falls by ``slope`` per year above ``from_y`` (at most to a fifth), and the
    clearance follows the well-stirred liver: CL scales as Q_h CL_int / (Q_h + CL_int)."""
    qh = val(pk.fields["qh"], f"pk.{species}.qh")
    clint = val(pk.fields["clint_h"], f"pk.{species}.clint_h")
    qh_subject = qh
    age_name = f"species.{species}.age"
    if pk.hepatic_age is not None and age_name in registry:
        years = np.maximum(cohort.get(age_name)
                           - val(pk.hepatic_age["from_y"], "hepatic_age.from_y"), 0.0)
        slope = val(pk.hepatic_age["slope"], "hepatic_age.slope")
        qh_subject = qh * np.maximum(1.0 - slope * years, 0.2)

    def well_stirred(q):
        return q * clint / (q + clint)

    return qh_subject / (qh_subject + clint), well_stirred(qh_subject) / well_stirred(qh)


def _check_efficacy(t: TargetAction, eff: np.ndarray, where: str) -> np.ndarray:
    """An action that removes the node's signal removes at most all of it: the compound
    file checks a number, this a value read from the registry (per subject)."""
    if t.action in (*REMOVING, "negative_modulator") and np.any(np.asarray(eff) > 1.0):
        raise ProtocolError(f"{where}: targets.{t.target}.efficacy: a {t.action} removes at "
                            f"most all of the signal (efficacy <= 1), got up to "
                            f"{float(np.max(eff)):g} from the registry")
    return eff


def _set_target(b: _Builder, t: TargetAction, k: int, val) -> None:
    inv_k = 1.0 / val(t.potency, f"targets.{t.target}.potency")
    eff = _check_efficacy(t, val(t.efficacy, f"targets.{t.target}.efficacy"),
                          f"targets.{t.target}")
    if t.target == "nmda":
        trap = val(t.trapping, "targets.nmda.trapping")
        ref = val(Value(param="rec.trapping_reference"), "rec.trapping_reference")
        mg = val(t.mg_rest, "targets.nmda.mg_rest")
        b.set_param(f"nmda_a{k}", inv_k)
        b.set_param(f"nmda_r{k}", inv_k * trap / ref / mg)
    else:
        (occ, act), sign = _site(t)
        b.set_param(f"{t.target}_{occ}{k}", inv_k)
        b.set_param(f"{t.target}_{act}{k}", sign * eff * inv_k)


def _site(t: TargetAction) -> tuple[tuple[str, str], float]:
    """The suffixes of a target action's occupancy and effect quantities (``a``/``b``/
    ``g`` at an orthosteric site, ``am``/``m`` at an allosteric one; windows add ``w``)
    and the sign of its effect."""
    if t.action in ALLOSTERIC:
        return ("am", "m"), (1.0 if t.action == "positive_modulator" else -1.0)
    return ("a", "b" if t.action in REMOVING else "g"), 1.0


def _compile_drug(b: _Builder, ev, species, cohort, registry, slots, where) -> None:
    comp = _compound(ev.drug, where)
    if comp.kind == "inert" and not comp.pk:
        return
    if comp.is_window:
        _compile_window(b, ev, comp, species, cohort, registry, where)
        return
    route = ev.route
    dose = _dose_mg_per_kg(ev.dose, cohort, species, where)
    parts = comp.components.items() if comp.components else [(comp.name, 1.0)]
    devices = _devices(ev, comp, species, cohort, registry, where)
    for name, frac in parts:
        k = slots[name]
        amount = frac * dose
        if route == "iv" and ev.over:
            rate = amount / ev.over
            b.add(ev.at, EV_ADD_PARAM, f"inf{k}", rate, f"{ev.drug}_infusion_on")
            b.add(ev.at + ev.over, EV_ADD_PARAM, f"inf{k}", -rate, f"{ev.drug}_infusion_off")
        elif route == "iv":
            b.add(ev.at, EV_ADD_STATE, f"central{k}", amount, f"{ev.drug}_iv")
        elif route in EXTRAVASCULAR:
            for at, share, f_scale in devices:
                _absorb(b, ev, name, k, at, share * amount, f_scale, species, cohort,
                        registry, slots, where)
        else:
            raise ProtocolError(f"{where}: route {route!r} is not available for {ev.drug}")


def _devices(ev, comp: Compound, species, cohort, registry, where
             ) -> list[tuple[float, float, np.ndarray | float]]:
    """(time, share of the dose, factor on the directly absorbed fraction) of each part
    of an extravascular dose: the whole dose at once, or, for a product sold in devices
    (its route's ``device_mg``), one device after another ``device_interval`` apart, each
    after the first absorbing ``later_device_f`` times as much directly."""
    own = comp.pk.get(species).routes.get(ev.route, {}) if comp.pk.get(species) else {}
    if "device_mg" not in own:
        return [(ev.at, 1.0, 1.0)]
    pw = f"{where}: compound {comp.name!r}"

    def val(key):
        return _resolve(own[key], cohort, registry, species, pw, f"routes.{ev.route}.{key}")

    per_device = float(np.unique(val("device_mg"))[0])
    if ev.dose.kind != "absolute":
        raise ProtocolError(f"{where}.dose: {comp.name} {ev.route} comes in devices of "
                            f"{per_device:g} mg; give the dose in mg (a whole number of "
                            "devices)")
    n = ev.dose.value / per_device
    if n < 0.5 or abs(n - round(n)) > 1e-6:
        raise ProtocolError(f"{where}.dose: {ev.dose.value:g} mg is not a whole number of "
                            f"{per_device:g}-mg devices of {comp.name} ({ev.route})")
    n = round(n)
    gap = _one_time(val("device_interval"), f"{pw}: routes.{ev.route}.device_interval")
    later = val("later_device_f")
    return [(ev.at + j * gap, 1.0 / n, 1.0 if j == 0 else later) for j in range(n)]


def _one_time(x, what: str) -> float:
    """A duration that sets event times: the same for every subject (no between-subject
    variability on it)."""
    u = np.unique(np.atleast_1d(np.asarray(x, dtype=float)))
    if u.size != 1:
        raise ProtocolError(f"{what}: an event time cannot vary between subjects (remove "
                            "the between-subject variability of its parameter)")
    return float(u[0])


def _absorb(b: _Builder, ev, name: str, k: int, at, amount, f_scale, species, cohort,
            registry, slots, where) -> None:
    """One extravascular dose of compound ``name`` (slot ``k``): the directly absorbed
    fraction ``f`` (times ``f_scale``) into the depot, absorbed at ``ka``; with a gut path,
    the rest swallowed: released into the gut over ``gut_release``, absorbed at
    ``gut_ka``, the share surviving the gut wall (``gut_f``) and the liver (well-stirred:
    ``F_h = Q_h / (Q_h + CL_int,h)``) reaching the central compartment, the share extracted by the
    liver forming the compound's metabolites (with their fractions) by the same path."""
    part = COMPOUNDS[name]
    route = ev.route
    own = part.pk[species].routes.get(route, {})
    pw = f"{where}: compound {name!r}"
    if route in OWN_ABSORPTION and not part.pk[species].gives_absorption(route):
        raise ProtocolError(
            f"{pw} ({part.source_file}) gives no {route} absorption for {species} "
            f"(pk.{species}.routes.{route}: f and ka, or a gut path); the registry's "
            f"route.{species}.{route}.* describe ketamine and are not used for another "
            "molecule unless its file names them")

    def val(key, default=None):
        if key in own:
            return _resolve(own[key], cohort, registry, species, pw, f"routes.{route}.{key}")
        if default is not None:
            return default
        return _route_param(registry, cohort, species, route, key, where)

    gut = "gut_f" in own
    f = np.minimum(val("f", 0.0 if gut else None) * f_scale, 1.0)
    if np.any(f > 0):
        b.add(at, EV_SET_PARAM, f"ka{k}", val("ka"), f"{ev.drug}_{route}_ka")
        b.add(at, EV_ADD_STATE, f"depot{k}", f * amount, f"{ev.drug}_{route}")
    if not gut:
        return
    swallowed = (1.0 - f) * amount * val("gut_f")
    f_h = b.hepatic_f[name]
    release = _one_time(val("gut_release"), f"{pw}: routes.{route}.gut_release")
    ka_gut = val("gut_ka")
    portal = [(k, swallowed * f_h)]
    for m, frac in part.metabolites:
        if m in slots:
            mf = _resolve(frac, cohort, registry, species, pw, f"metabolites.{m}.fraction")
            mw = b.param(f"mw{slots[m]}") / b.param(f"mw{k}")
            portal.append((slots[m], swallowed * (1.0 - f_h) * mf * mw))
    for j, amt in portal:
        rate = amt / release
        b.add(at, EV_SET_PARAM, f"kag{j}", ka_gut, f"{ev.drug}_{route}_gut_ka")
        b.add(at, EV_ADD_PARAM, f"gutin{j}", rate, f"{ev.drug}_{route}_swallowed_on")
        b.add(at + release, EV_ADD_PARAM, f"gutin{j}", -rate,
              f"{ev.drug}_{route}_swallowed_off")


def _compile_window(b: _Builder, ev, comp: Compound, species, cohort, registry, where):
    """A tool compound: from ``at + onset`` to ``at + onset + duration`` each target's
    window controls carry ``dose / ED50`` (and efficacy times it)."""
    try:
        pk = comp.species_pk(species, where)
    except CompoundError as e:
        raise ProtocolError(str(e)) from None
    cw = f"{where}: compound {comp.name!r} ({comp.source_file})"
    route = ev.route
    if route == "bath":
        kind, dose = "concentration", np.full(cohort.n, ev.dose.value)
    elif route == "intracerebral":
        kind, dose = "local", np.full(cohort.n, ev.dose.value)
    else:
        kind, dose = "per_kg", _dose_mg_per_kg(ev.dose, cohort, species, where)
    onset = _resolve(pk.fields["onset"], cohort, registry, species, cw, "onset")
    duration = _resolve(pk.fields["duration"], cohort, registry, species, cw, "duration")
    if np.ptp(onset) > 0 or np.ptp(duration) > 0:
        raise ProtocolError(f"{cw}: a window's onset and duration cannot vary between "
                            "subjects (no between-subject variability on them)")
    on = ev.at + float(onset[0])
    off = on + float(duration[0])
    for t in comp.targets:
        if kind not in t.window_potency:
            raise ProtocolError(f"{where}: no potency for {ev.drug} given by route {route!r} "
                                f"(dose kind {kind!r}; {comp.source_file} gives "
                                f"{', '.join(t.window_potency)} at {t.target})")
        r = dose / _resolve(t.window_potency[kind], cohort, registry, species, cw,
                            f"targets.{t.target}.potency.{kind}")
        eff = _check_efficacy(t, _resolve(t.efficacy, cohort, registry, species, cw,
                                          f"targets.{t.target}.efficacy"), cw)
        (occ, act), sign = _site(t)
        for ctl, v in ((f"{t.target}_w{occ}", r), (f"{t.target}_w{act}", sign * eff * r)):
            b.add(on, EV_ADD_PARAM, ctl, v, f"{ev.drug}_on")
            b.add(off, EV_ADD_PARAM, ctl, -v, f"{ev.drug}_off")


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
            # a permanent change is made once: a second would overwrite the first (a
            # partial lesion after a full one would regrow the terminals it destroyed)
            if c.control in b.permanent:
                raise ProtocolError(
                    f"{where}: {iv.name} at {ev.at:g} h sets {c.control}, which "
                    f"{b.permanent[c.control]} set for good already; an arm takes one "
                    "permanent change of a control")
            b.permanent[c.control] = f"{iv.name} at {ev.at:g} h"
            b.add(ev.at, EV_SET_PARAM, c.control, value, iv.name)
            continue
        lasts = ev.duration if iv.kind == "timed" else _value(c.lasts, registry)
        end, other = b.pulse_end.get(c.control, (-np.inf, ""))
        if ev.at < end:
            raise ProtocolError(
                f"{where}: {iv.name} at {ev.at:g} h sets {c.control} while {other} still "
                f"holds it (until {end:g} h; {c.control} lasts {lasts:g} h a pulse): the "
                "earlier pulse's end would cut this one short; space them by at least "
                f"{lasts:g} h")
        b.pulse_end[c.control] = (ev.at + lasts, f"{iv.name} at {ev.at:g} h")
        b.add(ev.at, EV_SET_PARAM, c.control, value, f"{iv.name}_on")
        b.add(ev.at + lasts, EV_SET_PARAM, c.control, 0.0, f"{iv.name}_off")


def _lookup(table: dict, name: str, what: str, where: str):
    if name not in table:
        raise ProtocolError(f"{where}: unknown {what} {name!r}; known: {sorted(table)}")
    return table[name]


def per_subject_parameter(name: str) -> bool:
    """Whether the registry parameter ``name`` is read per subject (so between-subject
    variability can apply to it): an ODE parameter (:mod:`ketasim.signaling.spec`, any
    species), a parameter a compound file reads, a route's bioavailability or absorption
    rate, or a body weight (doses given as a total mass)."""
    return (bool(_ODE_NAMES.match(name)) or name.startswith(("route.", "species."))
            or any(name in c.parameters() for c in COMPOUNDS.values()))


# the spec's registry names, with ``{species}`` standing for any species
_ODE_NAMES = re.compile("|".join(
    re.escape(p.registry).replace(re.escape("{species}"), r"[a-z]+")
    for p in spec.PARAMS if p.registry)
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
    species: tuple[str, ...] = ("mouse", "rat", "human")  # who it is done in
    # the brain regions it acts in (a manipulation aimed at mPFC: ("mpfc",)); a run
    # leaves it out of the other regions' protocols (:func:`arm_in_region`)
    regions: tuple[str, ...] = KNOWN_REGIONS

    def __post_init__(self):
        if self.kind not in ("permanent", "timed", "instantaneous"):
            raise ValueError(f"intervention {self.name!r}: kind must be permanent, timed "
                             f"or instantaneous, got {self.kind!r}")
        # a control, not any parameter: the kernel derives some values from parameters
        # once per subject, so an event that set such a parameter would do nothing
        bad = [c.control for c in self.controls if c.control not in spec.CONTROL_NAMES]
        if bad:
            raise ValueError(f"intervention {self.name!r}: unknown signalling controls "
                             f"{bad}; expected some of {sorted(spec.CONTROL_NAMES)}")
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
    species: tuple[str, ...] = ("mouse", "rat", "human")  # who it is given to

    def __post_init__(self):
        if self.control not in spec.CONTROL_NAMES:
            raise ValueError(f"stressor {self.name!r}: unknown signalling control "
                             f"{self.control!r}; expected one of {sorted(spec.CONTROL_NAMES)}")


SPINE_ACTIONS = ("", "remove_new_spines")

INTERVENTIONS: dict[str, Intervention] = {}
MPFC = ("mpfc",)  # the regions of a manipulation aimed at the medial prefrontal cortex
STRESSORS: dict[str, Stressor] = {}


def _acts_in(ev, region: str) -> bool:
    name = getattr(ev, "intervention", None)
    return name is None or region in INTERVENTIONS[name].regions


def arm_in_region(arm, region: str):
    """``arm`` as one region sees it: without the interventions that do not act there
    (an mPFC-only knock-out or light leaves the striatum's run alone). The arm itself
    when nothing is left out."""
    kept = [ev for ev in arm.protocol if _acts_in(ev, region)]
    if len(kept) == len(arm.protocol):
        return arm
    return arm.model_copy(update={"protocol": kept})


def register_intervention(iv: Intervention) -> Intervention:
    """Add (or replace) an intervention; the scenario vocabulary follows."""
    INTERVENTIONS[iv.name] = iv
    return iv


def register_stressor(st: Stressor) -> Stressor:
    """Add (or replace) a stressor; the scenario vocabulary follows."""
    STRESSORS[st.name] = st
    return st


for _st in (
    Stressor("cort", "chronic corticosterone in the drinking water", "stress.intensity_cort",
             species=RODENTS),
    Stressor("restraint", "repeated restraint stress", "stress.intensity_restraint",
             species=RODENTS),
    Stressor("inescapable_shock", "inescapable foot shock (learned helplessness)",
             "stress.intensity_inescapable_shock", species=RODENTS),
    # a depressive episode as the chronic stress load it carries (patients; the clinical
    # layer reads its synaptic consequences)
    Stressor("major_depression", "a major depressive episode (chronic stress load)",
             "stress.intensity_major_depression", species=HUMANS),
):
    register_stressor(_st)

for _iv in (
    Intervention("drd1_cko", "permanent", "conditional Drd1 knock-out in mPFC",
                 (Control("drd1_ko", 1.0),), species=RODENTS, regions=MPFC),
    Intervention("pki_alpha", "permanent", "viral PKI-alpha expression (PKA block)",
                 (Control("pki_block", "intervention.pki_alpha_block"),), species=RODENTS),
    Intervention("vta_da_chemogenetic_inhibition", "timed",
                 "chemogenetic inhibition of VTA dopamine neurons",
                 (Control("vta_inhibition", "intervention.vta_inhibition"),), species=RODENTS),
    Intervention("mpfc_da_terminal_inhibition", "timed",
                 "optogenetic inhibition of VTA dopamine terminals in mPFC",
                 (Control("terminal_inhibition", "intervention.terminal_inhibition"),),
                 species=RODENTS, regions=MPFC),
    Intervention("mpfc_da_terminal_activation", "timed",
                 "optogenetic activation of VTA dopamine terminals in mPFC",
                 (Control("terminal_activation", 1.0),), species=RODENTS, regions=MPFC),
    # Hare et al. 2019 Nat Commun (F-W-9): an intervention on the mPFC neurons that express
    # Drd1, not on dopamine; light adds their glutamatergic output, silencing removes their
    # activity, which the PKA-gated potentiation and spine formation need
    Intervention("mpfc_drd1_neuron_stimulation", "timed",
                 "optogenetic stimulation of mPFC Drd1-expressing neurons",
                 (Control("drd1_neuron_stim", 1.0),), species=RODENTS, regions=MPFC),
    Intervention("mpfc_drd1_neuron_silencing", "timed",
                 "opto- or chemogenetic silencing of mPFC Drd1-expressing neurons",
                 (Control("drd1_neuron_silencing", "intervention.drd1_neuron_silencing"),),
                 species=RODENTS, regions=MPFC),
    # the light shrinks the probe-holding potentiated synapses (signalling layer); the
    # spines formed since are removed in the spine layer (ketasim.spines.engine)
    Intervention("as_parac1_photoactivation", "instantaneous",
                 "light pulse activating AS-PaRAC1 in recently potentiated spines",
                 (Control("parac1_shrink", "intervention.parac1_shrink_rate",
                          "intervention.parac1_light_h"),),
                 spines="remove_new_spines", species=RODENTS, regions=MPFC),
    # unilateral 6-OHDA lesions of the nigrostriatal dopamine pathway (the Parkinson's
    # model of the LID studies, issue 15): the terminals degenerate over days
    # (sig.k_lesion) in the regions the lesion reaches (sig.lesion_reach)
    Intervention("lesion_6ohda_mfb", "permanent",
                 "6-OHDA into the medial forebrain bundle (near-complete nigrostriatal lesion)",
                 (Control("dopamine_lesion", "lesion.mfb_6ohda_extent"),), species=RODENTS),
    Intervention("lesion_6ohda_intrastriatal", "permanent",
                 "6-OHDA into the striatum (partial terminal lesion)",
                 (Control("dopamine_lesion", "lesion.intrastriatal_6ohda_extent"),),
                 species=RODENTS),
    # Parkinson's disease in virtual patients (issue 15 item 8): the striatal dopamine
    # terminals lost by the stage at which L-DOPA-induced dyskinesia appears, set as a
    # lesion; give it well before the L-DOPA course (the terminals follow it at
    # sig.k_lesion, over days, and D1 supersensitivity over weeks), e.g. 120 days
    Intervention("parkinson_disease", "permanent",
                 "Parkinson's disease with motor complications: loss of striatal dopamine "
                 "terminals (patients)",
                 (Control("dopamine_lesion", "lesion.pd_lid_extent"),), species=HUMANS),
):
    register_intervention(_iv)
