"""Compounds as data: a compound file describes a molecule by its pharmacokinetics per
species and its actions on the model's targets (:mod:`ketasim.pk.targets`).

Every built-in drug is a file in ``ketasim/compounds/``; a user adds theirs from a folder
(``--compounds DIR`` on the CLI, :func:`load_compound_dir` in Python). Nothing else
changes: the scenario vocabulary, the JSON Schema of scenarios, the signalling model's
drug slots and the screen read :data:`COMPOUNDS`.

A file (YAML)::

    name: memantine
    description: low-affinity NMDA channel blocker
    routes: [ip, oral]
    analytes: [drug]                 # plasma/brain readouts it counts toward
    mw: {value: 179.3, unit: g/mol, source: "PubChem CID 4054"}
    pk:
      mouse:
        model: compartmental         # or: window (tool compounds)
        cl: {value: 1.4, unit: L/h/kg, source: "..."}
        v1: ...; q: ...; v2: ...; kp_brain: ...; ke0: ...; fu_brain: ...
        q2: ...; v3: ...             # optional deep compartment (three-compartment PK)
        allometry: {reference_kg: 70, cl: 0.75, v: 1}   # optional: values per kg at 70 kg
        qh: ...; clint_h: ...        # optional liver (first pass of swallowed doses)
        hepatic_age: {from_y: 60, slope: ...}  # optional: hepatic flow falls with age
        routes: {oral: {f: ..., ka: ...}}   # ip, sc, im: optional, else the species'
        # route defaults; oral and intranasal: required for a species that takes them
        # (the registry's route.<species>.oral/intranasal.* are ketamine's; a file may
        # name them with {param: ...}); a route giving f gives its ka too
        # f, gut_f and fu_brain are fractions (at most 1)
        # a route may add a gut path (gut_f, gut_release, gut_ka) and devices
        # (device_mg, device_interval, later_device_f); see ROUTE_FIELDS
    metabolites:                     # each single compound once (not a racemate);
      # fractions (moles formed per mole eliminated) at most 1, and together at most 1
      - {compound: norketamine, fraction: {param: "pk.{species}.ketamine.f_nk"}}
    targets:
      nmda: {action: channel_blocker, potency: {value: 1.0, unit: uM, source: "..."},
             trapping: {...}, mg_rest: {...}}

A value is a number with its unit and source (``{value, unit, source}``; a
dimensionless one too, ``unit: "1"``; no bare numbers) or a registry
parameter (``{param: NAME}``, ``{species}`` standing for the scenario's species,
optionally ``times: OTHER``), so it keeps the registry's between-subject variability and
ranges. A racemate lists ``components`` (compound: fraction of the dose) instead of PK.
A ``window`` PK (tool compounds whose PK the model does not follow) acts from ``onset``
to ``onset + duration`` after the dose with an exposure of ``dose / ED50`` per target,
its potency given by dose kind (``per_kg``: mg/kg, ``local``: mg, ``concentration``: uM).
``effective_dose`` (per species, mg/kg, with its source) is a typical effective dose in
the literature, the dose ``ketasim screen`` gives when ``--doses`` is not set, and what
the dose warnings judge a dose by (``ketasim.experiment.runner.reference_dose``).
``kind: inert`` (saline; midazolam, the active placebo of ketamine trials) acts on no
target of the cascade and is never a screen candidate; it may still have compartmental
PK, which the model then follows for its ``analytes`` readouts only (a drug slot with no
target parameters, so the cascade is untouched).
Malformed files raise :class:`CompoundError` naming the file and field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ketasim.pk.targets import ACTIONS, CHANNEL, TARGETS

# administration routes: ``bath`` is application to an acute slice, ``intracerebral`` a
# local injection or cannula infusion into tissue (the scenario vocabulary's ROUTES)
ALL = ("iv", "ip", "sc", "im", "intranasal", "oral", "bath", "intracerebral")
SPECIES = ("mouse", "rat", "human")
KINDS = ("drug", "inert")
PK_MODELS = ("compartmental", "window")
ANALYTES = ("ketamine", "esketamine", "arketamine", "norketamine", "hnk", "drug", "midazolam")
DOSE_KINDS = ("per_kg", "local", "concentration")

# canonical unit of each field, and the units accepted with their factor to it
_UNITS: dict[str, dict[str, float]] = {
    "L/h/kg": {"L/h/kg": 1.0, "mL/min/kg": 0.06},
    "L/kg": {"L/kg": 1.0},
    "1/h": {"1/h": 1.0, "1/min": 60.0},
    "h": {"h": 1.0, "min": 1.0 / 60.0},
    "1": {"1": 1.0},
    "g/mol": {"g/mol": 1.0},
    "uM": {"uM": 1.0, "nM": 1e-3, "mM": 1e3},
    "mg/kg": {"mg/kg": 1.0},
    "mg": {"mg": 1.0, "ug": 1e-3},
    "kg": {"kg": 1.0},
    "y": {"y": 1.0},
    "1/y": {"1/y": 1.0},
    # agonist efficacy: the node's signal added, in baselines of it (dopamine for Drd1)
    "x baseline": {"x baseline": 1.0, "1": 1.0, "x baseline dopamine": 1.0},
}
COMPARTMENTAL_FIELDS = {"cl": "L/h/kg", "v1": "L/kg", "q": "L/h/kg", "v2": "L/kg",
                        "q2": "L/h/kg", "v3": "L/kg",
                        "kp_brain": "1", "ke0": "1/h", "fu_brain": "1",
                        # the first pass of a swallowed dose through a well-stirred liver
                        # (optional): hepatic blood flow and intrinsic clearance
                        "qh": "L/h/kg", "clint_h": "L/h/kg"}
# allometric scaling of a species' PK (values given per kg at the reference weight)
ALLOMETRY_FIELDS = {"reference_kg": "kg", "cl": "1", "v": "1"}
HEPATIC_AGE_FIELDS = {"from_y": "y", "slope": "1/y"}
WINDOW_FIELDS = {"onset": "h", "duration": "h"}
# a route's absorption: ``f`` absorbed directly (first order, ``ka``) into the central
# compartment; with ``gut_f``, the rest (1 - f) is swallowed: released into the gut over
# ``gut_release`` (zero order), absorbed at ``gut_ka``, surviving the gut wall (``gut_f``)
# and the liver (well-stirred, F_h = qh / (qh + clint_h) from the compound's PK). A product sold in
# devices (``device_mg``) is given as whole devices ``device_interval`` apart, each one
# after the first absorbing ``later_device_f`` times as much directly.
ROUTE_FIELDS = {"f": "1", "ka": "1/h", "gut_f": "1", "gut_release": "h", "gut_ka": "1/h",
                "device_mg": "mg", "device_interval": "h", "later_device_f": "1"}
GUT_FIELDS = ("gut_f", "gut_release", "gut_ka")
# fractions, at most 1: a route's directly absorbed share and gut-wall survival; the
# unbound fraction in brain
ROUTE_FRACTIONS = ("f", "gut_f")
FRACTION_FIELDS = ("fu_brain",)
# routes absorbed from a depot (f and ka): a file giving its own f gives its ka too
EXTRAVASCULAR = ("ip", "sc", "im", "intranasal", "oral")
DEVICE_FIELDS = ("device_mg", "device_interval", "later_device_f")
WINDOW_POTENCY_UNITS = {"per_kg": "mg/kg", "local": "mg", "concentration": "uM"}


def same_unit(registry_unit: str, canonical: str) -> bool:
    """Whether a registry parameter in ``registry_unit`` can stand for a field whose
    canonical unit is ``canonical`` as it is (no conversion is applied to registry
    values)."""
    return registry_unit == canonical or _UNITS.get(canonical, {}).get(registry_unit) == 1.0


# Km = body weight / body surface area (kg/m^2), to carry a dose in mg/kg from one species
# to another by body surface area: dose_B = dose_A x Km_A / Km_B (FDA 2005 Guidance for
# Industry, Estimating the maximum safe starting dose in initial clinical trials for
# therapeutics in adult healthy volunteers, Table 1: 20-g mouse 3, 150-g rat 6, 60-kg adult
# 37; Reagan-Shaw et al. 2008 FASEB J 22:659). A dosing convention, not a model
# parameter: only the dose warnings and the screen's default doses read it.
BSA_KM = {"mouse": 3.0, "rat": 6.0, "human": 37.0}


class CompoundError(ValueError):
    """A malformed compound file, or a compound the protocol cannot use."""


@dataclass(frozen=True)
class Value:
    """A number (``value``, in the field's canonical unit after conversion) or a registry
    parameter reference (``param``, optionally multiplied by ``times``)."""

    value: float | None = None
    param: str | None = None
    times: str | None = None
    unit: str = "1"
    source: str = ""

    def names(self, species: str) -> tuple[str, ...]:
        return tuple(n.replace("{species}", species) for n in (self.param, self.times) if n)

    def resolve(self, get, species: str):
        """The value per subject: ``get(registry_name)`` returns an array (or a float)."""
        if self.param is None:
            return self.value
        out = get(self.param.replace("{species}", species))
        if self.times:
            out = out * get(self.times.replace("{species}", species))
        return out


@dataclass(frozen=True)
class SpeciesPK:
    model: str
    fields: dict[str, Value]
    routes: dict[str, dict[str, Value]] = field(default_factory=dict)
    # allometry: reference weight (kg) and exponents of clearances and volumes; None:
    # values per kg apply at any weight (exponent 1)
    allometry: dict[str, Value] | None = None
    # age: the hepatic blood flow qh falls by ``slope`` (fraction per year) above
    # ``from_y``; clearance follows the well-stirred liver (needs qh and clint_h)
    hepatic_age: dict[str, Value] | None = None

    def gives_absorption(self, route: str) -> bool:
        """Whether the file gives ``route``'s absorption itself (a directly absorbed
        fraction ``f`` or a gut path), as oral and intranasal doses need
        (:data:`OWN_ABSORPTION`)."""
        return bool({"f", "gut_f"} & set(self.routes.get(route, {})))


# routes whose absorption a compound file must give itself for each species that takes
# them (or name the registry's ketamine values, route.<species>.<route>.*, explicitly):
# first pass and mucosal uptake differ between molecules (5-100%)
OWN_ABSORPTION = ("intranasal", "oral")


@dataclass(frozen=True)
class TargetAction:
    target: str
    action: str
    potency: Value | None  # compartmental compounds
    window_potency: dict[str, Value]  # window compounds, by dose kind
    efficacy: Value
    trapping: Value | None = None  # channel blockers
    mg_rest: Value | None = None


@dataclass(frozen=True)
class Compound:
    name: str
    kind: str
    description: str
    routes: tuple[str, ...]
    analytes: tuple[str, ...] = ()
    mw: Value | None = None
    components: dict[str, float] = field(default_factory=dict)
    pk: dict[str, SpeciesPK] = field(default_factory=dict)
    metabolites: tuple[tuple[str, Value], ...] = ()
    targets: tuple[TargetAction, ...] = ()
    notes: str = ""
    source_file: str = ""
    # a typical effective dose per species (mg/kg), the screen's default dose
    effective_dose: dict[str, Value] = field(default_factory=dict)

    def effective_dose_for(self, species: str) -> tuple[float, str, Value] | None:
        """A typical effective dose in ``species`` (mg/kg) with the species it is from and
        its file entry: the file's own for the species, else the nearest species' (by
        :data:`BSA_KM`) carried over by body surface area; None if the file gives none."""
        own = [(sp, v) for sp, v in self.effective_dose.items()
               if v.value is not None and v.value > 0]
        if not own:
            return None
        sp, v = min(own, key=lambda e: abs(math.log(BSA_KM[e[0]] / BSA_KM[species])))
        return v.value * BSA_KM[sp] / BSA_KM[species], sp, v

    @property
    def is_window(self) -> bool:
        return any(p.model == "window" for p in self.pk.values())

    def species_pk(self, species: str, where: str) -> SpeciesPK:
        if species not in self.pk:
            raise CompoundError(f"{where}: compound {self.name!r} has no PK for species "
                                f"{species!r} (it has: {', '.join(sorted(self.pk)) or 'none'})")
        return self.pk[species]

    def parameters(self) -> set[str]:
        """Registry parameters the compound reads (``{species}`` expanded)."""
        return set(self._parameter_names)

    @cached_property
    def _parameter_names(self) -> frozenset[str]:  # a frozen compound's are fixed
        vals: list[Value] = [v for v in (self.mw,) if v]
        for p in self.pk.values():
            vals += list(p.fields.values())
            vals += [v for r in p.routes.values() for v in r.values()]
            vals += list((p.allometry or {}).values()) + list((p.hepatic_age or {}).values())
        vals += [v for _, v in self.metabolites]
        for t in self.targets:
            vals += [v for v in (t.potency, t.efficacy, t.trapping, t.mg_rest) if v]
            vals += list(t.window_potency.values())
        return frozenset(n for v in vals for s in SPECIES for n in v.names(s))


# --------------------------------------------------------------------------- parsing
def _fail(where: str, msg: str):
    raise CompoundError(f"{where}: {msg}")


def _value(raw: Any, unit: str, where: str, *, positive: bool = True) -> Value:
    if isinstance(raw, bool) or raw is None:
        _fail(where, f"expected {{value, unit, source}} or {{param}}, got {raw!r}")
    if isinstance(raw, int | float):
        # every number carries a unit and a source, or names a registry parameter
        shown = '"1"' if unit == "1" else unit
        _fail(where, f"a bare number needs a unit and a source: write {{value: {raw}, "
                     f"unit: {shown}, source: ...}} (or name a registry parameter: "
                     "{param: ...})")
    if not isinstance(raw, dict):
        _fail(where, f"expected {{value, unit, source}} or {{param}}, got {raw!r}")
    unknown = set(raw) - {"value", "unit", "source", "param", "times"}
    if unknown:
        _fail(where, f"unknown keys {sorted(unknown)}")
    if "param" in raw:
        if "value" in raw:
            _fail(where, "give either 'value' or 'param', not both")
        for k in ("param", "times"):
            if k in raw and not (isinstance(raw[k], str) and re.fullmatch(
                    r"[a-z0-9_{}]+(\.[a-z0-9_{}]+)+", raw[k])):
                _fail(f"{where}.{k}", f"expected a registry parameter name, got {raw[k]!r}")
        return Value(param=raw["param"], times=raw.get("times"), unit=unit)
    if "value" not in raw:
        _fail(where, "missing 'value' (or 'param')")
    v = raw["value"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        _fail(f"{where}.value", f"expected a number, got {v!r}")
    given = raw.get("unit", "1" if unit == "1" else None)
    if given is None:
        _fail(f"{where}.unit", f"missing unit (expected {unit})")
    factors = _UNITS[unit]
    if not isinstance(given, str) or given not in factors:
        _fail(f"{where}.unit", f"unit {given!r} does not fit; expected one of "
                               f"{sorted(factors)}")
    if v < 0 or (positive and v == 0):
        _fail(f"{where}.value", f"must be {'positive' if positive else '>= 0'}, got {v}")
    if not raw.get("source"):
        _fail(f"{where}.source", "a number needs its source (every number carries a unit "
                                 "and a source, or names a registry parameter)")
    return Value(value=float(v) * factors[given], unit=unit, source=str(raw.get("source", "")))


def _at_most_one(v: Value, where: str) -> None:
    """A fraction (of a dose, of the drug unbound): at most 1 (a registry parameter is
    checked by the registry's range)."""
    if v.value is not None and v.value > 1:
        _fail(f"{where}.value", f"a fraction of at most 1, got {v.value:g}")


def _mapping(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        _fail(where, f"expected a mapping, got {type(raw).__name__}")
    return raw


def _species_pk(raw: Any, where: str) -> SpeciesPK:
    raw = _mapping(raw, where)
    model = raw.get("model", "compartmental")
    if model not in PK_MODELS:
        _fail(f"{where}.model", f"expected one of {PK_MODELS}, got {model!r}")
    spec_fields = COMPARTMENTAL_FIELDS if model == "compartmental" else WINDOW_FIELDS
    unknown = set(raw) - set(spec_fields) - {"model", "routes", "source", "allometry",
                                             "hepatic_age"}
    if unknown:
        _fail(where, f"unknown keys {sorted(unknown)} for a {model} PK "
                     f"(expected {sorted(spec_fields)})")
    optional = {"q": Value(value=0.0), "v2": Value(value=1.0), "q2": Value(value=0.0),
                "v3": Value(value=1.0), "qh": None, "clint_h": None}
    fields = {}
    for k, unit in spec_fields.items():
        if k not in raw:
            if k in optional:
                if optional[k] is not None:
                    fields[k] = optional[k]
                continue
            _fail(where, f"missing {k!r} ({unit})")
        fields[k] = _value(raw[k], unit, f"{where}.{k}",
                           positive=k not in ("q", "q2", "onset"))
        if k in FRACTION_FIELDS:
            _at_most_one(fields[k], f"{where}.{k}")
    allometry = None
    if "allometry" in raw:
        if model != "compartmental":
            _fail(f"{where}.allometry", "allometric scaling needs compartmental PK")
        al = _mapping(raw["allometry"], f"{where}.allometry")
        bad = set(al) - set(ALLOMETRY_FIELDS) - {"source"}
        missing = set(ALLOMETRY_FIELDS) - set(al)
        if bad or missing:
            _fail(f"{where}.allometry", f"expected keys {sorted(ALLOMETRY_FIELDS)} (and "
                                        f"source), got {sorted(al)}")
        allometry = {k: _value(al[k], u, f"{where}.allometry.{k}", positive=True)
                     for k, u in ALLOMETRY_FIELDS.items()}
    hepatic_age = None
    if "hepatic_age" in raw:
        hw = f"{where}.hepatic_age"
        ha = _mapping(raw["hepatic_age"], hw)
        if set(ha) - {"source"} != set(HEPATIC_AGE_FIELDS):
            _fail(hw, f"expected keys {sorted(HEPATIC_AGE_FIELDS)} (and source), got "
                      f"{sorted(ha)}")
        if not {"qh", "clint_h"} <= set(raw):
            _fail(hw, "an age effect on hepatic blood flow needs the liver's 'qh' and "
                      "'clint_h'")
        hepatic_age = {k: _value(ha[k], u, f"{hw}.{k}", positive=k == "slope")
                       for k, u in HEPATIC_AGE_FIELDS.items()}
    routes = {}
    for r, rv in _mapping(raw.get("routes", {}), f"{where}.routes").items():
        if r not in ALL:
            _fail(f"{where}.routes", f"unknown route {r!r}; known: {ALL}")
        rv = _mapping(rv, f"{where}.routes.{r}")
        rw = f"{where}.routes.{r}"
        bad = set(rv) - set(ROUTE_FIELDS)
        if bad:
            _fail(rw, f"unknown keys {sorted(bad)} (expected {sorted(ROUTE_FIELDS)})")
        gut = [k for k in GUT_FIELDS if k in rv]
        if gut and len(gut) < len(GUT_FIELDS):
            _fail(rw, f"a gut path needs all of {list(GUT_FIELDS)}, got {gut}")
        if gut and r in ("iv", "bath", "intracerebral"):
            _fail(rw, f"route {r!r} has no swallowed share (a gut path needs an "
                      "extravascular route)")
        if gut and not {"qh", "clint_h"} <= set(raw):
            _fail(rw, "a gut path needs this species' hepatic blood flow 'qh' and hepatic "
                      "intrinsic clearance 'clint_h' (L/h/kg) for the first pass")
        dev = [k for k in DEVICE_FIELDS if k in rv]
        if dev and len(dev) < len(DEVICE_FIELDS):
            _fail(rw, f"devices need all of {list(DEVICE_FIELDS)}, got {dev}")
        if "f" in rv and "ka" not in rv and r in EXTRAVASCULAR:
            _fail(rw, f"gives 'f' but no 'ka': give f and ka (the directly absorbed "
                      f"fraction and its absorption rate); the registry's "
                      f"route.<species>.{r}.ka is not taken for a compound's own f")
        routes[r] = {k: _value(v, ROUTE_FIELDS[k], f"{rw}.{k}", positive=k != "f")
                     for k, v in rv.items()}
        for k in ROUTE_FRACTIONS:
            if k in routes[r]:
                _at_most_one(routes[r][k], f"{rw}.{k}")
    return SpeciesPK(model, fields, routes, allometry, hepatic_age)


def _target(name: str, raw: Any, window: bool, where: str) -> TargetAction:
    if name not in TARGETS:
        _fail(where, f"unknown target {name!r}; known: {sorted(TARGETS)}")
    raw = _mapping(raw, where)
    unknown = set(raw) - {"action", "potency", "efficacy", "trapping", "mg_rest", "source"}
    if unknown:
        _fail(where, f"unknown keys {sorted(unknown)}")
    action = raw.get("action")
    if action not in ACTIONS:
        _fail(f"{where}.action", f"expected one of {ACTIONS}, got {action!r}")
    if action not in TARGETS[name].actions:
        _fail(f"{where}.action", f"{action!r} is not modelled at {name} (there: "
                                 f"{', '.join(TARGETS[name].actions)})")
    if "potency" not in raw:
        _fail(where, "missing 'potency'")
    potency, window_potency = None, {}
    if window:
        pot = _mapping(raw["potency"], f"{where}.potency")
        bad = set(pot) - set(DOSE_KINDS)
        if bad or not pot:
            _fail(f"{where}.potency", f"a window compound gives its potency by dose kind "
                                      f"({', '.join(DOSE_KINDS)}), got {sorted(pot)}")
        window_potency = {k: _value(v, WINDOW_POTENCY_UNITS[k], f"{where}.potency.{k}")
                          for k, v in pot.items()}
    else:
        potency = _value(raw["potency"], "uM", f"{where}.potency")
    if action in CHANNEL and "efficacy" in raw:
        _fail(f"{where}.efficacy", f"none for a {action}: its block follows from its "
                                   "affinity, trapping and Mg2+ at rest (leave it out)")
    eff_unit = "x baseline" if action in ("agonist", "activator") else "1"
    efficacy = (_value(raw["efficacy"], eff_unit, f"{where}.efficacy") if "efficacy" in raw
                else Value(value=1.0, unit=eff_unit))  # the default: full efficacy
    if efficacy.value is not None and action in ("antagonist", "inhibitor",
                                                 "negative_modulator") and efficacy.value > 1:
        _fail(f"{where}.efficacy", f"a {action} removes at most all of the signal "
                                   f"(efficacy <= 1), got {efficacy.value}")
    trapping = mg_rest = None
    if action in CHANNEL:
        trapping = _value(raw.get("trapping", {"param": "rec.trapping_reference"}), "1",
                          f"{where}.trapping")
        mg_rest = (_value(raw["mg_rest"], "1", f"{where}.mg_rest") if "mg_rest" in raw
                   else Value(value=1.0))  # the default: ketamine's (the reference)
        if trapping.value is not None and trapping.value > 1:
            _fail(f"{where}.trapping", f"a fraction of at most 1, got {trapping.value}")
        if mg_rest.value is not None and mg_rest.value < 1:
            _fail(f"{where}.mg_rest", f"a fold loss of block at rest (>= 1), got "
                                      f"{mg_rest.value}")
    elif "trapping" in raw or "mg_rest" in raw:
        _fail(where, "'trapping' and 'mg_rest' apply to channel blockers only")
    return TargetAction(name, action, potency, window_potency, efficacy, trapping, mg_rest)


_NAME = re.compile(r"[a-z][a-z0-9_]*")


def parse_compound(raw: Any, source: str) -> Compound:
    """One compound from a parsed YAML document; ``source`` names the file in errors."""
    raw = _mapping(raw, source)
    known = {"name", "description", "kind", "routes", "analytes", "mw", "components", "pk",
             "metabolites", "targets", "notes", "source", "effective_dose"}
    unknown = set(raw) - known
    if unknown:
        _fail(source, f"unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        _fail(f"{source}: name", f"expected a lower-case identifier, got {name!r}")
    where = f"{source} ({name})"
    kind = raw.get("kind", "drug")
    if kind not in KINDS:
        _fail(f"{where}.kind", f"expected one of {KINDS}, got {kind!r}")
    routes = raw.get("routes")
    if not isinstance(routes, list) or not routes or any(r not in ALL for r in routes):
        _fail(f"{where}.routes", f"a non-empty list from {ALL}, got {routes!r}")
    analytes = raw.get("analytes", [])
    if not isinstance(analytes, list) or any(a not in ANALYTES for a in analytes):
        _fail(f"{where}.analytes", f"a list from {ANALYTES}, got {analytes!r}")
    comps = raw.get("components", {})
    comps = _mapping(comps, f"{where}.components")
    for c, f in comps.items():
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1:
            _fail(f"{where}.components.{c}", f"a fraction of the dose in (0, 1], got {f!r}")
    if comps and abs(sum(comps.values()) - 1.0) > 1e-9:
        _fail(f"{where}.components", f"fractions must add up to 1, got {sum(comps.values())}")
    pk = {}
    for sp, p in _mapping(raw.get("pk", {}), f"{where}.pk").items():
        if sp not in SPECIES:
            _fail(f"{where}.pk", f"unknown species {sp!r}; known: {SPECIES}")
        pk[sp] = _species_pk(p, f"{where}.pk.{sp}")
    if kind == "drug" and not comps and not pk:
        _fail(where, "a drug needs 'pk' (per species) or 'components' (a racemate)")
    if comps and (pk or raw.get("targets")):
        _fail(where, "a mixture ('components') takes its PK and targets from its components")
    models = {p.model for p in pk.values()}
    if len(models) > 1:
        _fail(f"{where}.pk", "use one PK model (compartmental or window) for all species")
    window = models == {"window"}
    mw = None
    if "compartmental" in models:
        if "mw" not in raw:
            _fail(where, "missing 'mw' (g/mol): brain concentrations are turned into uM")
        mw = _value(raw["mw"], "g/mol", f"{where}.mw")
    metabolites = []
    raw_metabolites = raw.get("metabolites", []) or []
    if not isinstance(raw_metabolites, list):
        _fail(f"{where}.metabolites", f"expected a list, got {type(raw_metabolites).__name__}")
    for i, m in enumerate(raw_metabolites):
        m = _mapping(m, f"{where}.metabolites[{i}]")
        if set(m) - {"compound", "fraction"} or "compound" not in m or "fraction" not in m:
            _fail(f"{where}.metabolites[{i}]", "expected {compound, fraction}")
        if window:
            _fail(f"{where}.metabolites[{i}]", "a window compound has no metabolites")
        name_i = str(m["compound"])
        first = next((j for j, (n, _) in enumerate(metabolites) if n == name_i), None)
        if first is not None:
            _fail(f"{where}.metabolites[{i}]", f"{name_i!r} is listed twice (also "
                                               f"metabolites[{first}]); give it once, "
                                               "with its whole fraction")
        frac = _value(m["fraction"], "1", f"{where}.metabolites[{i}].fraction")
        _at_most_one(frac, f"{where}.metabolites[{i}].fraction")
        metabolites.append((name_i, frac))
    given = [v.value for _, v in metabolites if v.value is not None]
    if sum(given) > 1 + 1e-12:
        _fail(f"{where}.metabolites", f"the fractions add up to {sum(given):g}: at most 1 "
                                      "of the parent eliminated (in moles) forms "
                                      "metabolites")
    targets = tuple(_target(t, v, window, f"{where}.targets.{t}")
                    for t, v in _mapping(raw.get("targets", {}) or {},
                                         f"{where}.targets").items())
    if window and any(t.action in CHANNEL for t in targets):
        _fail(f"{where}.targets", "a channel blocker needs compartmental PK")
    if kind == "inert" and targets:
        _fail(where, "an inert compound acts on no target")
    if kind == "inert" and (window or comps or metabolites):
        _fail(where, "an inert compound has no window PK, components or metabolites (its "
                     "PK, if any, is compartmental)")
    eff_dose = {}
    for sp, v in _mapping(raw.get("effective_dose", {}) or {},
                          f"{where}.effective_dose").items():
        if sp not in SPECIES:
            _fail(f"{where}.effective_dose", f"unknown species {sp!r}; known: {SPECIES}")
        eff_dose[sp] = _value(v, "mg/kg", f"{where}.effective_dose.{sp}")
    return Compound(name, kind, str(raw.get("description", "")), tuple(routes),
                    tuple(analytes), mw, dict(comps), pk, tuple(metabolites), targets,
                    str(raw.get("notes", "")), source, eff_dose)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (which PyYAML
    would let the last one win), as the scenario loader does."""

    def construct_mapping(self, node, deep=False):
        seen: set[str] = set()
        for key_node, _ in node.value:
            if (isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is given twice",
                        key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: where in the file and what PyYAML found."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{at}{what}"


def read_compound_file(path: Path) -> Compound:
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError as e:
        raise CompoundError(f"{path}: not a UTF-8 text file ({e.reason} at byte "
                            f"{e.start})") from e
    except OSError as e:
        raise CompoundError(f"{path}: cannot read: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise CompoundError(f"{path}: not valid YAML: {_yaml_problem(e)}") from e
    c = parse_compound(raw, str(path))
    if Path(path).stem != c.name:
        _fail(str(path), f"the file of compound {c.name!r} must be named {c.name}.yaml")
    return c


def check_links(compounds: dict[str, Compound]) -> None:
    """Components and metabolites must name known compounds, without cycles."""
    for c in compounds.values():
        links = [(f"components.{o}", o) for o in c.components]
        links += [(f"metabolites[{i}].compound", m) for i, (m, _) in enumerate(c.metabolites)]
        for fld, other in links:
            where = f"{c.source_file} ({c.name}).{fld}"
            if other not in compounds:
                _fail(where, f"compound {c.name!r} refers to unknown compound {other!r}")
            if compounds[other].is_window or compounds[other].kind == "inert":
                _fail(where, f"{c.name!r}: {other!r} must have compartmental PK")
            if fld.startswith("metabolites") and compounds[other].components:
                _fail(where, f"{other!r} is a mixture of "
                             f"{', '.join(sorted(compounds[other].components))} "
                             f"({compounds[other].source_file}), not a metabolite: name "
                             "the single compound formed")
    seen: dict[str, int] = {}

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if n in stack:
            _fail(compounds[n].source_file, f"metabolite cycle: {' -> '.join(stack + (n,))}")
        if seen.get(n):
            return
        for m, _ in compounds[n].metabolites:
            visit(m, stack + (n,))
        seen[n] = 1

    for n in compounds:
        visit(n, ())


def load_compound_dir(path: Path | str) -> dict[str, Compound]:
    p = Path(path)
    if not p.is_dir():
        raise CompoundError(f"{p}: not a folder of compound files")
    files = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
    if not files:
        raise CompoundError(f"{p}: no compound files (*.yaml)")
    out: dict[str, Compound] = {}
    for c in map(read_compound_file, files):
        if c.name in out:
            raise CompoundError(f"{c.source_file}: compound {c.name!r} is already defined "
                                f"by {out[c.name].source_file} in the same folder; keep "
                                "one file per compound")
        out[c.name] = c
    return out


def _builtin() -> dict[str, Compound]:
    folder = resources.files("ketasim") / "compounds"
    out = {}
    for f in sorted(folder.iterdir(), key=lambda x: x.name):
        if f.name.endswith(".yaml"):
            with resources.as_file(f) as path:
                c = read_compound_file(path)
            out[c.name] = c
    check_links(out)
    return out


COMPOUNDS: dict[str, Compound] = _builtin()
BUILTIN = frozenset(COMPOUNDS)


def species_with_pk(c: Compound) -> set[str]:
    """Species the compound has PK for (a mixture: those all its components have)."""
    if c.components:
        return set.intersection(*(species_with_pk(COMPOUNDS[k]) for k in c.components))
    return set(c.pk)


def gives_route(c: Compound, species: str, route: str) -> bool:
    """Whether the compound can be given by ``route`` to ``species``: a route it lists,
    and for routes whose absorption a file gives itself (:data:`OWN_ABSORPTION`) that
    absorption in the species' PK (a mixture: in every component's)."""
    if route not in c.routes:
        return False
    if c.components:
        return all(gives_route(COMPOUNDS[k], species, route) for k in c.components)
    return route not in OWN_ABSORPTION or (
        species in c.pk and c.pk[species].gives_absorption(route))


def register_compound(c: Compound) -> Compound:
    """Add (or replace) a compound; the scenario vocabulary follows."""
    merged = {**COMPOUNDS, c.name: c}
    check_links(merged)
    COMPOUNDS[c.name] = c
    return c


def _same_file(a, b) -> bool:
    """The same compound file, whether named relative to the working folder or not (a
    sweep's workers load ``--compounds`` again by its resolved path)."""
    try:
        return a == b or Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError):
        return False


def add_compounds(folder: Path | str) -> list[str]:
    """Load a folder of compound files and register them (``--compounds DIR``). All are
    checked before any is registered; returns their names."""
    new = load_compound_dir(folder)
    for name, c in new.items():
        if name in BUILTIN:
            raise CompoundError(f"{c.source_file}: compound {name!r} shadows a built-in "
                                "compound; give yours another name")
        if name in COMPOUNDS and not _same_file(COMPOUNDS[name].source_file, c.source_file):
            raise CompoundError(f"{c.source_file}: compound {name!r} is already defined by "
                                f"{COMPOUNDS[name].source_file}")
    check_links({**COMPOUNDS, **new})
    COMPOUNDS.update(new)
    return sorted(new)


def reset_compounds() -> None:
    """Back to the built-in compounds only."""
    for n in [n for n in COMPOUNDS if n not in BUILTIN]:
        del COMPOUNDS[n]
    COMPOUNDS.update(_builtin())


def compound_schema() -> dict:
    """JSON Schema (draft 2020-12) of a compound file."""
    # every number carries a unit and a source, or names a registry parameter
    def number(maximum=None):
        v = {"type": "number", "minimum": 0}
        if maximum is not None:
            v["maximum"] = maximum
        return {"type": "object", "required": ["value", "source"],
                "additionalProperties": False,
                "properties": {"value": v, "unit": {"type": "string"},
                               "source": {"type": "string", "minLength": 1}}}
    param = {"type": "object", "required": ["param"], "additionalProperties": False,
             "properties": {"param": {"type": "string"}, "times": {"type": "string"}}}
    value = {"oneOf": [number(), param]}
    # a fraction: at most 1 (the sum of a parent's metabolite fractions, also at most 1,
    # and a metabolite named once are checked by the loader: JSON Schema cannot say it)
    fraction = {"oneOf": [number(1), param]}
    fractions = {*FRACTION_FIELDS, *ROUTE_FRACTIONS}

    def route(extravascular: bool) -> dict:
        r = {"type": "object", "additionalProperties": False,
             "properties": {k: {"$ref": "#/$defs/fraction" if k in fractions
                                else "#/$defs/value"} for k in ROUTE_FIELDS}}
        if extravascular:
            r["dependentRequired"] = {"f": ["ka"]}  # give f and ka
        return r
    species_pk = {"type": "object", "properties": {
        "model": {"enum": list(PK_MODELS)},
        **{k: {"$ref": "#/$defs/fraction" if k in fractions else "#/$defs/value"}
           for k in (*COMPARTMENTAL_FIELDS, *WINDOW_FIELDS)},
        "routes": {"type": "object", "propertyNames": {"enum": list(ALL)},
                   "properties": {r: route(r in EXTRAVASCULAR) for r in ALL}},
        "allometry": {"type": "object", "additionalProperties": False,
                      "required": list(ALLOMETRY_FIELDS),
                      "properties": {**{k: {"$ref": "#/$defs/value"} for k in ALLOMETRY_FIELDS},
                                     "source": {"type": "string"}}},
        "hepatic_age": {"type": "object", "additionalProperties": False,
                        "required": list(HEPATIC_AGE_FIELDS),
                        "properties": {**{k: {"$ref": "#/$defs/value"}
                                          for k in HEPATIC_AGE_FIELDS},
                                       "source": {"type": "string"}}},
        "source": {"type": "string"}}, "additionalProperties": False}
    target = {"type": "object", "required": ["action", "potency"],
              "additionalProperties": False, "properties": {
                  "action": {"enum": list(ACTIONS)},
                  "potency": {"oneOf": [{"$ref": "#/$defs/value"}, {
                      "type": "object", "additionalProperties": False,
                      "properties": {k: {"$ref": "#/$defs/value"} for k in DOSE_KINDS}}]},
                  "efficacy": {"$ref": "#/$defs/value"},
                  "trapping": {"$ref": "#/$defs/fraction"},
                  "mg_rest": {"$ref": "#/$defs/value"}, "source": {"type": "string"}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ketasim compound file", "type": "object", "required": ["name", "routes"],
        "additionalProperties": False,
        "$defs": {"value": value, "fraction": fraction},
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "description": {"type": "string"}, "notes": {"type": "string"},
            "source": {"type": "string"}, "kind": {"enum": list(KINDS)},
            "routes": {"type": "array", "minItems": 1, "items": {"enum": list(ALL)}},
            "analytes": {"type": "array", "items": {"enum": list(ANALYTES)}},
            "mw": {"$ref": "#/$defs/value"},
            "components": {"type": "object", "additionalProperties": {
                "type": "number", "exclusiveMinimum": 0, "maximum": 1}},
            "pk": {"type": "object", "propertyNames": {"enum": list(SPECIES)},
                   "additionalProperties": species_pk},
            "metabolites": {"type": "array", "items": {
                "type": "object", "required": ["compound", "fraction"],
                "additionalProperties": False,
                "properties": {"compound": {"type": "string"},
                               "fraction": {"$ref": "#/$defs/fraction"}}}},
            "targets": {"type": "object", "propertyNames": {"enum": sorted(TARGETS)},
                        "additionalProperties": target},
            "effective_dose": {"type": "object", "propertyNames": {"enum": list(SPECIES)},
                               "additionalProperties": {"$ref": "#/$defs/value"}}}}
