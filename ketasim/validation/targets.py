"""Literature targets: the published quantities ketasim must reproduce.

``targets.yaml`` holds one entry per published quantity: ``target_id``, the SEED-FACTS
IDs it tests (``facts``), ``source`` (authors, year, journal), ``quantity`` (in words),
``published`` (value or direction, with its spread), the ``statistic`` computed from
the replica's simulated readouts (:mod:`ketasim.validation.statistic`), and a
``tolerance`` stated up front: ``[lo, hi]``, ``< x``, ``<= x``, ``> x`` or ``>= x``. A
target the model cannot reproduce yet carries ``known_gap: <reason>``: validate shows
it in red and counts it, without failing. The reason says why, in a few sentences; the
fixes tried and not adopted, each with what it did to the numbers, go in ``tried`` (a
list of strings), which the report shows folded under the reason, so the history stays
with the target without burying the reason.

Every target has a ``role``: ``calibration`` when parameters were set so that its fact
comes out right (``fitted`` then lists those parameters by their registry names, each
of which must exist in ``ketasim/params/parameters.yaml``), or ``validation`` when no
parameter was fitted to it (an out-of-sample test; no ``fitted``). A target may also
carry the published size of its effect, ``published_effect`` (a number: difference,
ratio or standardised effect), with ``effect``, the statistic expression that computes
the same quantity from the simulation, so the report can show both side by side. An
``effect`` may stand alone (the simulated size is shown where no size was published).

Which replica checks a target is declared by the replica (its scenario's ``targets``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from ketasim.analysis.tolerance import Tolerance, ToleranceError
from ketasim.params.registry import load_registry
from ketasim.validation.statistic import StatisticError, check_expression

REQUIRED = ("target_id", "facts", "source", "quantity", "published", "statistic",
            "tolerance", "role")
OPTIONAL = ("known_gap", "note", "fitted", "published_effect", "effect", "tried")
ROLES = ("calibration", "validation")
_FACT = re.compile(r"^F-[A-Z]+-\d+$")
class TargetError(ValueError):
    """The targets file is malformed."""


@dataclass(frozen=True)
class Target:
    target_id: str
    facts: tuple[str, ...]
    source: str
    quantity: str
    published: str
    statistic: str
    tolerance: Tolerance
    known_gap: str = ""
    note: str = ""
    role: str = "validation"
    fitted: tuple[str, ...] = ()
    published_effect: float | None = None
    effect: str = ""
    tried: tuple[str, ...] = ()


def _parameter_names() -> frozenset[str]:
    return frozenset(load_registry().parameters)


def _role(raw: dict, tid, where: str, names: frozenset[str] | None
          ) -> tuple[str, tuple[str, ...]]:
    role = raw["role"]
    if role not in ROLES:
        raise TargetError(f"{where}: target {tid}: role {role!r}: expected calibration or "
                          "validation")
    fitted = raw.get("fitted")
    if role == "validation":
        if fitted not in (None, []):
            raise TargetError(f"{where}: target {tid}: a validation target has no fitted "
                              "parameters (make it a calibration target or drop fitted)")
        return role, ()
    if not isinstance(fitted, list) or not fitted:
        raise TargetError(f"{where}: target {tid}: a calibration target needs fitted: "
                          "[parameter names]")
    names = _parameter_names() if names is None else names
    seen: set[str] = set()
    for f in map(str, fitted):
        if f in seen:
            raise TargetError(f"{where}: target {tid}: fitted parameter {f!r} given twice")
        seen.add(f)
    bad = [str(f) for f in fitted if str(f) not in names]
    if bad:
        raise TargetError(f"{where}: target {tid}: fitted parameter {bad[0]!r} is not in "
                          "parameters.yaml" + (f" (nor {bad[1:]})" if bad[1:] else ""))
    return role, tuple(str(f) for f in fitted)


def _effect(raw: dict, tid, where: str) -> tuple[float | None, str]:
    pub, expr = raw.get("published_effect"), raw.get("effect")
    if pub is not None:
        if isinstance(pub, bool) or not isinstance(pub, (int, float)):
            raise TargetError(f"{where}: target {tid}: published_effect {pub!r} must be a "
                              "number")
        if not expr:
            raise TargetError(f"{where}: target {tid}: published_effect needs an effect "
                              "expression")
    if expr:
        try:
            check_expression(str(expr))
        except StatisticError as e:
            raise TargetError(f"{where}: target {tid}: effect: {e}") from None
    return (None if pub is None else float(pub)), str(expr or "")


def _tried(raw: dict, tid, where: str) -> tuple[str, ...]:
    tried = raw.get("tried")
    if tried is None:
        return ()
    if not isinstance(tried, list) or not tried:
        raise TargetError(f"{where}: target {tid}: tried must be a non-empty list of "
                          "strings (one per fix tried)")
    for k, item in enumerate(tried):
        if not isinstance(item, str) or not item.strip():
            raise TargetError(f"{where}: target {tid}: tried[{k}] must be a non-empty "
                              f"string, not {item!r}")
    return tuple(item.strip() for item in tried)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (plain
    ``safe_load`` keeps the last silently: two ``tolerance:`` lines would pass unseen)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) \
                else None
            if key is not None and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} given twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_targets(text: str, where: str = "targets.yaml",
                  parameters: frozenset[str] | None = None) -> dict[str, Target]:
    """Parse a targets file. ``parameters`` (the registry's names by default) is what a
    calibration target's ``fitted`` may name."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except yaml.YAMLError as e:
        raise TargetError(f"{where}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, list):
        raise TargetError(f"{where}: expected a list of targets")
    out: dict[str, Target] = {}
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise TargetError(f"{where}[{i}]: expected a mapping")
        tid = raw.get("target_id", f"#{i}")
        missing = [k for k in REQUIRED if raw.get(k) in (None, "", [])]
        if missing:
            raise TargetError(f"{where}: target {tid}: missing {', '.join(missing)}")
        unknown = set(raw) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise TargetError(f"{where}: target {tid}: unknown fields {sorted(unknown)}")
        if not isinstance(tid, str):  # 12 would key the target by int, its id "12"
            raise TargetError(f"{where}: target {tid!r}: target_id must be text, e.g. "
                              "T-LAB-01 (quote it)")
        for key in ("known_gap", "note"):
            if key in raw and raw[key] is not None and not isinstance(raw[key], str):
                raise TargetError(f"{where}: target {tid}: {key} must be text (the reason), "
                                  f"not {raw[key]!r}")
        facts = raw["facts"] if isinstance(raw["facts"], list) else [raw["facts"]]
        bad = [f for f in facts if not _FACT.match(str(f))]
        if bad:
            raise TargetError(f"{where}: target {tid}: facts {bad} are not SEED-FACTS IDs")
        if tid in out:
            raise TargetError(f"{where}: target {tid} defined twice")
        try:
            check_expression(str(raw["statistic"]))
        except StatisticError as e:
            raise TargetError(f"{where}: target {tid}: {e}") from None
        try:
            tolerance = Tolerance.parse(raw["tolerance"])
        except ToleranceError as e:
            raise TargetError(f"{where}: target {tid}: {e}") from None
        role, fitted = _role(raw, tid, where, parameters)
        published_effect, effect = _effect(raw, tid, where)
        out[tid] = Target(str(tid), tuple(str(f) for f in facts), str(raw["source"]),
                          str(raw["quantity"]), str(raw["published"]),
                          str(raw["statistic"]), tolerance,
                          str(raw.get("known_gap") or ""), str(raw.get("note") or ""),
                          role, fitted, published_effect, effect,
                          _tried(raw, tid, where))
    return out


@lru_cache(maxsize=1)
def load_targets() -> dict[str, Target]:
    text = resources.files("ketasim.validation").joinpath("targets.yaml").read_text()
    return parse_targets(text)


def replica_paths() -> dict[str, Path]:
    """Built-in replicas: every YAML file in ``ketasim/validation/replicas``."""
    folder = resources.files("ketasim.validation").joinpath("replicas")
    return {Path(str(p)).stem: Path(str(p)) for p in sorted(folder.iterdir(),
                                                             key=lambda p: p.name)
            if str(p).endswith(".yaml")}
