"""The parameter registry: every model parameter with unit, default, range and source.

All parameters live in ``parameters.yaml`` beside this module. Each entry has

``name``         dotted name (``pk.mouse.ketamine.cl``)
``value``        default (typical individual) in ``unit``
``unit``         unit string; internal units are h, L/kg, mg/kg, mg/L, uM
``range``        plausible [low, high] used by calibration and sensitivity
``source``       a citation, "fitted to F-..." or "assumed ..."
``description``  what it is
``bsv_cv``       optional between-subject coefficient of variation (log-normal), default 0
``bsv_corr``     optional correlations of this parameter's log-normal deviation with those
                 of others (``{other.name: r}``; both need a ``bsv_cv``), as population PK
                 models publish them (a covariance of etas)
``bsv_logit_sd`` optional between-subject SD on the logit scale, for a fraction in (0, 1)
                 (logit-normal, median = default), instead of ``bsv_cv``

Subjects' deviations are drawn in file order, one standard normal per varying parameter:
a parameter given a between-subject variability later goes to the end of the file, so the
subjects of existing scenarios keep their draws.

The registry is data: code never branches on a scenario's name to change a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import ClassVar

import numpy as np
import yaml

REQUIRED_FIELDS = ("name", "value", "unit", "range", "source", "description")


class RegistryError(ValueError):
    """A parameter entry is malformed."""


@dataclass(frozen=True)
class Parameter:
    """One registry entry."""

    name: str
    value: float
    unit: str
    low: float
    high: float
    source: str
    description: str
    bsv_cv: float = 0.0
    bsv_corr: tuple[tuple[str, float], ...] = ()
    bsv_logit_sd: float = 0.0

    @property
    def omega(self) -> float:
        """Standard deviation of log(parameter) for the between-subject CV."""
        return math.sqrt(math.log1p(self.bsv_cv**2)) if self.bsv_cv > 0 else 0.0

    @property
    def varies(self) -> bool:
        """Whether subjects differ in this parameter (log-normal or logit-normal)."""
        return self.bsv_cv > 0 or self.bsv_logit_sd > 0


@dataclass(frozen=True)
class Registry:
    """All parameters, by name, in file order."""

    parameters: dict[str, Parameter] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self.parameters[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r} (not in the registry)") from None

    def __contains__(self, name: str) -> bool:
        return name in self.parameters

    def __iter__(self):
        return iter(self.parameters.values())

    def __len__(self) -> int:
        return len(self.parameters)

    def value(self, name: str) -> float:
        return self[name].value

    def group(self, prefix: str, names: tuple[str, ...]) -> dict[str, float]:
        """``{name: value of "<prefix>.<name>"}`` for a model component's parameters."""
        return {k: self.value(f"{prefix}.{k}") for k in names}

    def values(self) -> dict[str, float]:
        return {p.name: p.value for p in self}

    def with_values(self, overrides: dict[str, float]) -> Registry:
        """Return a copy with some defaults replaced (calibration, sensitivity)."""
        params = dict(self.parameters)
        for name, v in overrides.items():
            p = self[name]
            params[name] = Parameter(p.name, float(v), p.unit, p.low, p.high, p.source,
                                     p.description, p.bsv_cv, p.bsv_corr, p.bsv_logit_sd)
        return Registry(params)

    def with_settings(self, specs, option: str = "--set") -> Registry:
        """A copy with the values of ``NAME=VALUE`` settings (strings, each one setting or
        several separated by commas), as a command line gives them: every name a
        parameter of this registry, given once, every value a finite number within the
        parameter's range (the bounds calibration and sensitivity analysis use). Anything
        else is one :class:`RegistryError` naming ``option`` and the bad setting."""
        return self.with_values(parse_settings(self, specs, option))


def parse_settings(registry: Registry, specs, option: str = "--set") -> dict[str, float]:
    """``{name: value}`` of ``NAME=VALUE`` settings, checked as
    :meth:`Registry.with_settings` says."""
    import difflib

    out: dict[str, float] = {}
    for spec in specs or ():
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            name, eq, text = (s.strip() for s in item.partition("="))
            if not eq or not name or not text:
                raise RegistryError(f"{option} {item!r}: expected NAME=VALUE, a registry "
                                    "parameter and its value (ketasim params lists them)")
            if name not in registry:
                close = difflib.get_close_matches(name, list(registry.parameters), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RegistryError(f"{option} {item}: {name!r} is not a parameter of the "
                                    f"registry{hint}; ketasim params lists them")
            if name in out:
                raise RegistryError(f"{option} {item}: {name!r} is given twice")
            try:
                value = float(text)
            except ValueError:
                raise RegistryError(f"{option} {item}: got {text!r}; expected a number "
                                    f"(in {registry[name].unit})") from None
            p = registry[name]
            if not math.isfinite(value):
                raise RegistryError(f"{option} {item}: got {value!r}; expected a finite "
                                    "number")
            if not p.low <= value <= p.high:
                raise RegistryError(f"{option} {item}: outside the parameter's range "
                                    f"[{p.low:g}, {p.high:g}] {p.unit}")
            out[name] = value
    return out


def _parse_entry(raw: dict, index: int) -> Parameter:
    if not isinstance(raw, dict):
        raise RegistryError(f"parameters.yaml entry {index}: expected a mapping, got {raw!r}")
    missing = [f for f in REQUIRED_FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise RegistryError(
            f"parameters.yaml entry {index} ({raw.get('name', '?')}): missing {', '.join(missing)}"
        )
    extra = set(raw) - set(REQUIRED_FIELDS) - {"bsv_cv", "bsv_corr", "bsv_logit_sd"}
    if extra:
        raise RegistryError(f"parameter {raw['name']}: unknown fields {sorted(extra)}")
    rng = raw["range"]
    if not (isinstance(rng, list) and len(rng) == 2):
        raise RegistryError(f"parameter {raw['name']}: range must be [low, high], got {rng!r}")
    low, high = float(rng[0]), float(rng[1])
    value = float(raw["value"])
    if not (low <= value <= high):
        raise RegistryError(
            f"parameter {raw['name']}: default {value} outside its range [{low}, {high}]"
        )
    cv = float(raw.get("bsv_cv", 0.0))
    if cv < 0:
        raise RegistryError(f"parameter {raw['name']}: bsv_cv must be >= 0")
    logit_sd = float(raw.get("bsv_logit_sd", 0.0))
    if logit_sd < 0:
        raise RegistryError(f"parameter {raw['name']}: bsv_logit_sd must be >= 0")
    if logit_sd > 0 and (cv > 0 or not 0.0 < value < 1.0):
        raise RegistryError(f"parameter {raw['name']}: bsv_logit_sd is for a fraction "
                            "strictly between 0 and 1, without a bsv_cv")
    corr = raw.get("bsv_corr", {}) or {}
    if not isinstance(corr, dict) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and -1.0 < r < 1.0
            for r in corr.values()):
        raise RegistryError(f"parameter {raw['name']}: bsv_corr must map parameter names to "
                            f"correlations in (-1, 1), got {corr!r}")
    return Parameter(str(raw["name"]), value, str(raw["unit"]), low, high,
                     str(raw["source"]), str(raw["description"]), cv,
                     tuple((str(k), float(r)) for k, r in corr.items()), logit_sd)


def parse_registry(text: str) -> Registry:
    """Parse registry YAML text (a list of entries) into a :class:`Registry`."""
    data = yaml.safe_load(text)
    if not isinstance(data, list):
        raise RegistryError("parameters.yaml must be a list of parameter entries")
    params: dict[str, Parameter] = {}
    for i, raw in enumerate(data):
        p = _parse_entry(raw, i)
        if p.name in params:
            raise RegistryError(f"parameter {p.name} defined twice")
        params[p.name] = p
    _check_correlations(params)
    return Registry(params)


def _check_correlations(params: dict[str, Parameter]) -> None:
    for p in params.values():
        for other, _r in p.bsv_corr:
            if other not in params:
                raise RegistryError(f"parameter {p.name}: bsv_corr names {other!r}, which "
                                    "is not a parameter")
            if other == p.name or p.bsv_cv <= 0 or params[other].bsv_cv <= 0:
                raise RegistryError(f"parameter {p.name}: bsv_corr with {other!r} needs two "
                                    "different parameters, both with a bsv_cv")
    c = correlation_matrix(list(params.values()))
    if c is not None:
        try:
            np.linalg.cholesky(c[1])
        except np.linalg.LinAlgError:
            raise RegistryError("bsv_corr: the correlations of "
                                f"{', '.join(c[0])} do not form a valid (positive "
                                "definite) correlation matrix") from None


def correlation_matrix(params: list[Parameter]):
    """(names, matrix) of the between-subject correlations among the parameters that take
    part in one (a ``bsv_corr`` entry on either side), or None when there are none."""
    pairs = {}
    for p in params:
        for other, r in p.bsv_corr:
            key = tuple(sorted((p.name, other)))
            if key in pairs and pairs[key] != r:
                raise RegistryError(f"bsv_corr: {key[0]} and {key[1]} are given two "
                                    f"correlations ({pairs[key]} and {r})")
            pairs[key] = r
    if not pairs:
        return None
    names = sorted({n for k in pairs for n in k})
    idx = {n: i for i, n in enumerate(names)}
    m = np.eye(len(names))
    for (a, b), r in pairs.items():
        m[idx[a], idx[b]] = m[idx[b], idx[a]] = r
    return names, m


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    """The package's default parameter registry."""
    text = resources.files("ketasim.params").joinpath("parameters.yaml").read_text()
    return parse_registry(text)


@dataclass(frozen=True)
class ParamGroup:
    """The registry values of one model component, all named ``<PREFIX>.<name>`` for the
    names in ``NAMES`` (subclasses set both)."""

    values: dict[str, float]
    PREFIX: ClassVar[str] = ""
    NAMES: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_registry(cls, registry: Registry):
        return cls(registry.group(cls.PREFIX, cls.NAMES))
