"""SBML Level 3 Version 2 export of the PK + signalling model of one subject.

The exported document carries the same equations as the numba solver (both are built
from :mod:`ketasim.signaling.spec`), the subject's parameter values with units, and the
arm's dosing, stressor and intervention events. SBML time 0 is the simulation start
(``t_start`` hours before ketasim's time 0, stored as parameter ``time_offset_h``), so
events at negative scenario times are representable.
"""

from __future__ import annotations

import re
from pathlib import Path

import libsbml
import numpy as np

from ketasim.io.results import write_text
from ketasim.signaling import spec
from ketasim.signaling.protocol import EventTable
from ketasim.signaling.solver import EV_ADD_STATE, EV_SET_PARAM


class SBMLExportError(RuntimeError):
    """libSBML refused the document we built."""


# unit string -> (id, [(kind, exponent, scale, multiplier), ...])
_UNITS: dict[str, tuple[str, list[tuple[int, float, int, float]]]] = {
    "1": ("dimensionless", []),
    "probability": ("dimensionless", []),
    "h": ("hour", [(libsbml.UNIT_KIND_SECOND, 1, 0, 3600.0)]),
    "1/h": ("per_hour", [(libsbml.UNIT_KIND_SECOND, -1, 0, 3600.0)]),
    "mg/kg": ("mg_per_kg", [(libsbml.UNIT_KIND_DIMENSIONLESS, 1, -6, 1.0)]),
    "mg/kg/h": ("mg_per_kg_per_hour", [(libsbml.UNIT_KIND_DIMENSIONLESS, 1, -6, 1.0),
                                       (libsbml.UNIT_KIND_SECOND, -1, 0, 3600.0)]),
    "mg/L": ("mg_per_L", [(libsbml.UNIT_KIND_GRAM, 1, -3, 1.0),
                          (libsbml.UNIT_KIND_LITRE, -1, 0, 1.0)]),
    "L/kg": ("L_per_kg", [(libsbml.UNIT_KIND_LITRE, 1, 0, 1.0),
                          (libsbml.UNIT_KIND_GRAM, -1, 3, 1.0)]),
    "L/h/kg": ("L_per_h_per_kg", [(libsbml.UNIT_KIND_LITRE, 1, 0, 1.0),
                                  (libsbml.UNIT_KIND_SECOND, -1, 0, 3600.0),
                                  (libsbml.UNIT_KIND_GRAM, -1, 3, 1.0)]),
    "uM": ("uM", [(libsbml.UNIT_KIND_MOLE, 1, -6, 1.0), (libsbml.UNIT_KIND_LITRE, -1, 0, 1.0)]),
    "1/uM": ("per_uM", [(libsbml.UNIT_KIND_MOLE, -1, -6, 1.0),
                        (libsbml.UNIT_KIND_LITRE, 1, 0, 1.0)]),
    "g/mol": ("g_per_mol", [(libsbml.UNIT_KIND_GRAM, 1, 0, 1.0),
                            (libsbml.UNIT_KIND_MOLE, -1, 0, 1.0)]),
    "ng/mL": ("ng_per_mL", [(libsbml.UNIT_KIND_GRAM, 1, -9, 1.0),
                            (libsbml.UNIT_KIND_LITRE, -1, -3, 1.0)]),
    "ng/g": ("ng_per_g", [(libsbml.UNIT_KIND_DIMENSIONLESS, 1, -9, 1.0)]),
    "kg/L": ("kg_per_L", [(libsbml.UNIT_KIND_GRAM, 1, 3, 1.0),
                          (libsbml.UNIT_KIND_LITRE, -1, 0, 1.0)]),
    "umol/mg": ("umol_per_mg", [(libsbml.UNIT_KIND_MOLE, 1, -6, 1.0),
                                (libsbml.UNIT_KIND_GRAM, -1, -3, 1.0)]),
    # unit conversions written as the literal 1000 in the model's expressions
    "(ng/mL)/(mg/L)": ("ng_per_mL_per_mg_per_L",
                       [(libsbml.UNIT_KIND_DIMENSIONLESS, 1, -3, 1.0)]),
    "(ng/g)/(mg/L)": ("ng_per_g_per_mg_per_L",  # brain tissue at 1 g/mL
                      [(libsbml.UNIT_KIND_LITRE, 1, -6, 1.0),
                       (libsbml.UNIT_KIND_GRAM, -1, 0, 1.0)]),
    "(umol/mg)/(mol/g)": ("umol_per_mg_per_mol_per_g",
                          [(libsbml.UNIT_KIND_DIMENSIONLESS, 1, -3, 1.0)]),
}

#: The unit of the literal 1000 where an expression converts units with it (a variable's
#: unit -> the literal's); every other literal number is dimensionless.
_CONVERSIONS = {"ng/mL": "(ng/mL)/(mg/L)", "ng/g": "(ng/g)/(mg/L)",
                "umol/mg": "(umol/mg)/(mol/g)"}


def _check(rc: int, what: str) -> None:
    if rc != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SBMLExportError(f"libSBML failed to {what}: {libsbml.OperationReturnValue_toString(rc)}")


def _math(expr: str, model: libsbml.Model | None = None, unit: str = "1") -> libsbml.ASTNode:
    """``expr`` as MathML. With ``model``, every literal number carries its unit (the
    conversion factor of :data:`_CONVERSIONS` where the result is in ``unit``, else
    dimensionless) and the model's helper functions are written out with SBML's own
    operators (``pos(x)`` as ``max(x, 0)``, ``pw(x, a)`` as ``x^a``, ``hillk(x, kn, n)``
    as ``x^n / (x^n + kn)``), so that a units check can follow every expression."""
    text = expr.replace("**", "^")
    text = re.sub(r"\blog\(", "ln(", text)
    ast = libsbml.parseL3Formula(text)
    if ast is None:
        raise SBMLExportError(f"cannot parse {expr!r}: {libsbml.getLastParseL3Error()}")
    if model is not None:
        ast = _inline(ast)
        literal = _unit_id(model, _CONVERSIONS.get(unit, "1"))
        _literal_units(ast, literal)
    return ast


def _number(value: float) -> libsbml.ASTNode:
    node = libsbml.ASTNode(libsbml.AST_REAL)
    node.setValue(float(value))
    return node


def _apply(kind: int, *children: libsbml.ASTNode) -> libsbml.ASTNode:
    node = libsbml.ASTNode(kind)
    for c in children:
        node.addChild(c)
    return node


def _inline(ast: libsbml.ASTNode) -> libsbml.ASTNode:
    """A copy of ``ast`` with the helper functions pos, pw and hillk written out."""
    kids = [_inline(ast.getChild(i)) for i in range(ast.getNumChildren())]
    name = ast.getName() if ast.getType() == libsbml.AST_FUNCTION else None
    if name == "pos":  # max(x, 0): the positive part
        return _apply(libsbml.AST_FUNCTION_MAX, kids[0], _number(0.0))
    if name == "pw":
        return _apply(libsbml.AST_POWER, kids[0], kids[1])
    if name == "hillk":  # x^n / (x^n + kn)
        x, kn, n = kids
        top = _apply(libsbml.AST_POWER, x, n)
        return _apply(libsbml.AST_DIVIDE, top.deepCopy(),
                      _apply(libsbml.AST_PLUS, top, kn))
    node = ast.deepCopy()
    for i, kid in enumerate(kids):
        node.replaceChild(i, kid, True)
    return node


def _literal_units(ast: libsbml.ASTNode, conversion: str) -> None:
    """Give every literal number a unit: 1000 the conversion's, the rest dimensionless."""
    if ast.isNumber():
        is_factor = conversion != "dimensionless" and ast.getValue() == 1000.0
        ast.setUnits(conversion if is_factor else "dimensionless")
    for i in range(ast.getNumChildren()):
        _literal_units(ast.getChild(i), conversion)


def _unit_id(model: libsbml.Model, unit: str) -> str:
    uid, parts = _UNITS[unit]
    if uid != "dimensionless" and model.getUnitDefinition(uid) is None:
        ud = model.createUnitDefinition()
        _check(ud.setId(uid), f"set unit id {uid}")
        for kind, exp, scale, mult in parts:
            u = ud.createUnit()
            u.setKind(kind)
            u.setExponent(exp)
            u.setScale(scale)
            u.setMultiplier(mult)
    return uid


def _parameter(model, pid: str, value: float, unit: str, constant: bool, name: str = ""):
    p = model.createParameter()
    _check(p.setId(pid), f"set id {pid}")
    p.setValue(float(value))
    p.setConstant(constant)
    p.setUnits(_unit_id(model, unit))
    if name:
        p.setName(name)
    return p


def _state_or_control_unit(var: str) -> str:
    for s in spec.STATES:
        if s.name == var:
            return s.unit
    for c in spec.CONTROLS:
        if c.name == var:
            return c.unit
    raise KeyError(var)


def event_parameter_values(events: EventTable, subject: int) -> dict[str, float]:
    """Values of the ``ev<k>_<var>`` parameters of :func:`build_document` for a subject
    (to reuse one loaded document for every subject of an arm)."""
    out: dict[str, float] = {}
    for n_ev, (_t, g) in enumerate(sorted(_event_groups(events, subject)[0].items())):
        for var, (_mode, v) in g.items():
            out[f"ev{n_ev}_{var}"] = v
    return out


def _event_groups(events: EventTable, subject: int):
    targets = dict(enumerate(spec.STATE_NAMES))
    ptargets = dict(enumerate(spec.PVEC_NAMES))
    groups: dict[float, dict[str, tuple[str, float]]] = {}
    labels: dict[float, list[str]] = {}
    for k in range(events.n):
        t = float(events.times[k])
        var = (targets if events.kind[k] == EV_ADD_STATE else ptargets)[int(events.index[k])]
        v = float(events.values[subject, k])
        g = groups.setdefault(t, {})
        labels.setdefault(t, []).append(events.labels[k])
        if events.kind[k] == EV_SET_PARAM:
            g[var] = ("set", v)
        else:
            mode, acc = g.get(var, ("add", 0.0))
            g[var] = (mode, acc + v)
    return groups, labels


_TARGET_SLOT_WORDS = {"a": "affinity of its orthosteric binding (1/K)",
                      "b": "removing efficacy x affinity", "g": "adding efficacy x affinity",
                      "am": "affinity of its allosteric binding (1/K)",
                      "m": "signed allosteric efficacy x affinity"}


def slot_parameter_names(slots: tuple[str, ...]) -> dict[str, str]:
    """Readable names for the drug-slot parameters (those without a registry name): what
    each is and which compound of the arm fills the slot ("empty" where none does)."""
    out: dict[str, str] = {}
    for k in spec.SLOTS:
        who = f"drug slot {k} ({slots[k] if k < len(slots) else 'empty'})"
        for suffix, _unit, _empty, what in spec.SLOT_PARAMS:
            out[f"{suffix}{k}"] = f"{who}: {what}"
        for suffix, _unit in spec.TARGET_SLOT_PARAMS:
            node, _, kind = suffix.rpartition("_")
            out[f"{suffix}{k}"] = f"{who}: {node} {_TARGET_SLOT_WORDS.get(kind, kind)}"
        for j in range(k):
            out[f"fm{j}_{k}"] = (f"{who}: share of drug slot {j}'s clearance that forms "
                                 "it (a metabolite)")
    return out


def assignment_names(slots: tuple[str, ...]) -> dict[str, str]:
    """What each intermediate quantity (assignment rule) is: its description in the model
    spec, a drug slot named with the compound filling it, or the description of the output
    that reports it."""
    reported = {expr: desc for _out, expr, _unit, desc in spec.OUTPUTS}

    def slot(m: re.Match) -> str:
        k = int(m.group(1))
        return f"drug slot {k} ({slots[k] if k < len(slots) else 'empty'})"

    return {var: re.sub(r"\bslot (\d)", slot,
                        spec.ASSIGNMENT_DESCRIPTIONS.get(var) or reported[var])
            for var, _ in spec.ASSIGNMENTS}


def build_document(pvec: np.ndarray, events: EventTable, subject: int, t_start: float,
                   name: str = "ketasim") -> libsbml.SBMLDocument:
    """SBML document of one subject (``pvec`` row, ``events.values`` column ``subject``)."""
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    mid = re.sub(r"[^A-Za-z0-9_]", "_", name) or "ketasim"
    if not re.match(r"[A-Za-z_]", mid):  # an SBML id starts with a letter or '_'
        mid = "m_" + mid
    _check(model.setId(mid), f"set model id {mid}")
    model.setName(f"ketasim PK + signalling: {name}")
    model.setTimeUnits(_unit_id(model, "h"))

    _parameter(model, "time_offset_h", t_start, "h", True,
               "ketasim time of SBML time 0 (scenario time = SBML time + offset)")
    slot_names = slot_parameter_names(tuple(getattr(events, "slots", ()) or ()))
    for j, p in enumerate(spec.PARAMS):
        _parameter(model, p.name, pvec[j], p.unit, True,
                   p.registry or slot_names.get(p.name, ""))
    for j, c in enumerate(spec.CONTROLS):
        _parameter(model, c.name, pvec[len(spec.PARAMS) + j], c.unit, False, c.description)
    for s in spec.STATES:
        _parameter(model, s.name, s.initial, s.unit, False, s.description)
    assign_units = {var: spec.ASSIGNMENT_UNITS.get(var, "1") for var, _ in spec.ASSIGNMENTS}
    assign_names = assignment_names(tuple(getattr(events, "slots", ()) or ()))
    for var, expr in spec.ASSIGNMENTS:
        _parameter(model, var, 0.0, assign_units[var], False, assign_names[var])
        rule = model.createAssignmentRule()
        rule.setVariable(var)
        _check(rule.setMath(_math(expr, model, assign_units[var])), f"set math of {var}")
    for var, expr in spec.RATES:
        rule = model.createRateRule()
        rule.setVariable(var)
        _check(rule.setMath(_math(expr, model)), f"set rate of {var}")
    for out, expr, unit, desc in spec.OUTPUTS:
        oid = f"out_{out}"
        _parameter(model, oid, 0.0, unit, False, desc)
        rule = model.createAssignmentRule()
        rule.setVariable(oid)
        _check(rule.setMath(_math(expr, model, unit)), f"set output {out}")

    # events: one SBML event per distinct time, with the net effect per target
    groups, labels = _event_groups(events, subject)
    for n_ev, (t, g) in enumerate(sorted(groups.items())):
        ev = model.createEvent()
        ev.setId(f"ev{n_ev}")
        ev.setName(f"t = {t:g} h: {', '.join(labels[t])}")
        ev.setUseValuesFromTriggerTime(True)
        trig = ev.createTrigger()
        # false before SBML time 0: an event at (or before) t_start fires at time 0, as
        # ketasim's solver applies it at its start (a trigger true from the start never
        # fires)
        trig.setInitialValue(False)
        trig.setPersistent(True)
        math = libsbml.parseL3Formula(f"time >= {t - t_start!r}")
        math.getChild(1).setUnits(_unit_id(model, "h"))  # the literal is a time (h)
        _check(trig.setMath(math), f"set trigger of event ev{n_ev}")
        for var, (mode, v) in g.items():
            # the amount is a parameter, so one document serves every subject of an arm
            vid = f"ev{n_ev}_{var}"
            _parameter(model, vid, v, _state_or_control_unit(var), True,
                       f"{'value set' if mode == 'set' else 'amount added'} at t = {t:g} h")
            ea = ev.createEventAssignment()
            ea.setVariable(var)
            ea.setMath(libsbml.parseL3Formula(vid if mode == "set" else f"{var} + {vid}"))
    return doc


def write_sbml(doc: libsbml.SBMLDocument, path: str | Path) -> None:
    n_err = doc.checkInternalConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if n_err and errors:
        raise SBMLExportError(f"invalid SBML: {errors[0].getMessage().strip()}")
    text = libsbml.writeSBMLToString(doc)
    write_text(text, Path(path))  # atomically: a failure keeps any previous file
