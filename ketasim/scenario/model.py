"""Pydantic models of a scenario: arms, protocol events, assays, comparisons.

The models describe the YAML format one to one, and validate it completely:
units, names from :mod:`ketasim.scenario.vocabulary`, and the semantic rules
that make an experiment possible (a drug given by a route it has, no stressor
overlapping itself, comparisons only between arms that measure the readout at
that time). Downstream layers read the validated values in internal units:

* every time (``at``, ``duration``, ``over``, assay times) is a float in hours;
* doses are :class:`Dose` objects in mg/kg, mg or uM;
* body weights are floats in kg.

All models are frozen and reject unknown keys. A protocol is stored sorted by
time (stable, so same-time events keep their file order).

Validation problems are raised as pydantic errors of type ``"ketasim"`` whose
context holds the ``expected`` phrase and, where the problem is deeper than
the validator that found it, a ``subloc`` to append to the error location.
:mod:`ketasim.scenario.loader` turns them into one-line
:class:`~ketasim.scenario.ScenarioError` messages.
"""

import difflib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ketasim.clinical.assays import SCALE_READOUTS
from ketasim.core.assay import session_key
from ketasim.core.regions import DEFAULT_REGION, KNOWN_REGIONS
from ketasim.core.streams import arm_key

from . import vocabulary
from .units import (
    DOSE_EXPECTED,
    DOSE_PATTERN,
    DURATION_EXPECTED,
    MASS_EXPECTED,
    MASS_PATTERN,
    MAX_ABS_TIME_H,
    TIME_EXPECTED,
    TIME_PATTERN,
    UnitError,
    format_time,
    parse_dose,
    parse_duration,
    parse_mass_kg,
    parse_time,
)

__all__ = [
    "EVENT_KEYS",
    "NAME_PATTERN",
    "STATISTICAL_TESTS",
    "TRIAL_SCALES",
    "TWO_GROUP_TESTS",
    "Arm",
    "AssaySpec",
    "Comparison",
    "Design",
    "Dose",
    "Dropout",
    "DrugEvent",
    "Event",
    "InterventionEvent",
    "Scenario",
    "StressEvent",
    "TrialScale",
]

#: Error type of every problem raised by the validators in this module.
ERROR_TYPE = "ketasim"

#: Scenario and arm names: identifier-like, usable in file names and tables.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_NAME_MAX_LENGTH = 100
_NAME_EXPECTED = (
    "a name of letters, digits, '_', '.' and '-', starting with a letter or digit "
    f"(at most {_NAME_MAX_LENGTH} characters), e.g. 'ketamine_10mgkg'"
)

#: Statistical tests a comparison may ask for.
STATISTICAL_TESTS: tuple[str, ...] = ("welch_t", "student_t", "mann_whitney", "anova", "kruskal")
#: Tests that compare exactly two groups.
TWO_GROUP_TESTS: frozenset[str] = frozenset({"welch_t", "student_t", "mann_whitney"})

#: The key that decides an event's type -> the tag of its model in the union.
EVENT_KEYS: dict[str, str] = {
    "stress": "StressEvent",
    "drug": "DrugEvent",
    "intervention": "InterventionEvent",
}
_EVENT_EXPECTED = (
    "an event: a mapping with 'at' and exactly one of the keys 'stress', 'drug', 'intervention'"
)

_CONFIG = ConfigDict(extra="forbid", frozen=True)

# the species of the scenario being validated, so that an event given to the wrong
# species is reported at its own field and line (set by Scenario's wrap validator)
_SPECIES: ContextVar[str | None] = ContextVar("ketasim_scenario_species", default=None)


#: the event fields whose names exist for some species only: (field, species table,
#: noun, verb) for the error
_SPECIES_FIELDS = (("stress", "STRESSOR_SPECIES", "a stressor", "given to"),
                   ("intervention", "INTERVENTION_SPECIES", "an intervention", "done in"))


def _species_problem(event, loc: tuple[str | int, ...] | None = None,
                     species: str | None = None):
    """The error for an event's stressor or intervention given to a species it does not
    exist for, at ``loc`` (default: the field itself), or None; ``species`` defaults to
    the scenario being validated (``_SPECIES``; None when unknown)."""
    species = _SPECIES.get() if species is None else species
    if species is None or species not in vocabulary.SPECIES:
        return None
    for field, table, noun, verb in _SPECIES_FIELDS:
        name = getattr(event, field, None)
        allowed = getattr(vocabulary, table).get(name, vocabulary.SPECIES)
        if name is not None and species not in allowed:
            return problem(f"{noun} {verb} {species} subjects ({name} at "
                           f"{format_time(event.at)} is {verb} {', '.join(allowed)})",
                           (field,) if loc is None else loc)
    return None


# --------------------------------------------------------------------------- #
# Error helpers and reusable field types
# --------------------------------------------------------------------------- #


def problem(expected: str, subloc: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """Build the pydantic error used for every scenario problem.

    Parameters
    ----------
    expected : str
        What would have been accepted, phrased to follow "expected".
    subloc : tuple of str or int, optional
        Path below the validated value where the problem lies (for example
        ``("dose",)`` from an event-level check).

    Returns
    -------
    pydantic_core.PydanticCustomError
        To be raised by a validator.
    """
    ctx: dict[str, Any] = {"expected": expected}
    template = "{expected}"
    if subloc:
        ctx["subloc"] = tuple(subloc)
        ctx["where"] = ".".join(str(part) for part in subloc)
        template = "{expected} (at {where})"
    return PydanticCustomError(ERROR_TYPE, template, ctx)


@dataclass(frozen=True)
class _JsonSchema:
    """Annotation giving a field type a JSON Schema computed when it is emitted.

    The schema is built at generation time, so names added to the vocabulary
    after import appear in ``enum`` lists.
    """

    make: Callable[[], dict[str, Any]]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return self.make()


def _unit_validator(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    def validate(value: object) -> Any:
        try:
            return parse(value)
        except UnitError as err:
            raise problem(err.expected) from None

    return validate


def _time_schema(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": TIME_PATTERN,
        "description": description,
        "examples": ["0h", "40min", "-10d"],
    }


#: A time point: YAML string with units -> float hours (within 365 days of 0).
TimeH = Annotated[
    float,
    BeforeValidator(_unit_validator(parse_time)),
    _JsonSchema(lambda: _time_schema(TIME_EXPECTED)),
]
#: A duration: YAML string with units -> float hours, > 0.
DurationH = Annotated[
    float,
    BeforeValidator(_unit_validator(parse_duration)),
    _JsonSchema(lambda: _time_schema(DURATION_EXPECTED)),
]
#: A body weight: YAML string with units -> float kg, > 0.
MassKg = Annotated[
    float,
    BeforeValidator(_unit_validator(parse_mass_kg)),
    _JsonSchema(
        lambda: {
            "type": "string",
            "pattern": MASS_PATTERN,
            "description": MASS_EXPECTED,
            "examples": ["25 g", "70 kg"],
        }
    ),
]


def _check_name(value: object) -> str:
    if (
        isinstance(value, str)
        and len(value) <= _NAME_MAX_LENGTH
        and value.isascii()
        and value[:1].isalnum()
        and all(ch.isalnum() or ch in "_.-" for ch in value)
    ):
        return value
    raise problem(_NAME_EXPECTED)


#: A scenario or arm name.
Name = Annotated[
    str,
    BeforeValidator(_check_name),
    _JsonSchema(lambda: {"type": "string", "pattern": NAME_PATTERN, "maxLength": _NAME_MAX_LENGTH}),
]


def _vocabulary_type(what: str, names: Callable[[], Iterable[str]],
                     aliases: Mapping[str, str] | None = None) -> Any:
    """A string field restricted to a vocabulary table read at validation time; a name in
    ``aliases`` is read as the vocabulary name it maps to."""
    aliases = aliases or {}

    def validate(value: object) -> str:
        known = list(names())
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        if isinstance(value, str) and value in known:
            return value
        hint = ""
        if isinstance(value, str) and len(value) <= 100:
            close = difflib.get_close_matches(value, known, n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        also = (" (or " + ", ".join(f"{a} for {n}" for a, n in aliases.items()) + ")"
                if aliases else "")
        raise problem(f"one of the {what}: {', '.join(known)}{also}{hint}")

    return Annotated[
        str,
        BeforeValidator(validate),
        _JsonSchema(lambda: {"type": "string", "enum": [*names(), *aliases]}),
    ]


DrugName = _vocabulary_type("drugs", lambda: vocabulary.DRUGS)
RouteName = _vocabulary_type("routes", lambda: vocabulary.ROUTES)
StressorName = _vocabulary_type("stressors", lambda: vocabulary.STRESSORS)
InterventionName = _vocabulary_type("interventions", lambda: vocabulary.INTERVENTIONS)
AssayName = _vocabulary_type("assays", lambda: vocabulary.ASSAYS,
                             vocabulary.ASSAY_ALIASES)
ReadoutName = _vocabulary_type("readouts", vocabulary.all_readouts)


def _none_as_empty_list(value: object) -> object:
    # ``protocol:`` with nothing after it is YAML null; read it as "no events".
    return [] if value is None else value


def _none_as_empty_text(value: object) -> object:
    return "" if value is None else value


# --------------------------------------------------------------------------- #
# Doses
# --------------------------------------------------------------------------- #

_KIND_OF_UNIT = {"mg/kg": "per_kg", "mg": "absolute", "uM": "concentration"}
_UNITS_OF_KIND = {
    "per_kg": "mg/kg or ug/kg",
    "absolute": "a mass (mg, ug or g)",
    "concentration": "a concentration (uM, nM or mM)",
}


class Dose(BaseModel):
    """A dose in canonical units.

    Parameters
    ----------
    value : float
        Dose in ``unit``, ``>= 0``.
    unit : {"mg/kg", "mg", "uM"}
        Per body weight, absolute mass, or bath concentration.

    Notes
    -----
    Scenario files write doses as strings (``"10 mg/kg"``, ``"500 ug/kg"``,
    ``"56 mg"``, ``"10 uM"``); they are converted on validation, so
    ``500 ug/kg`` becomes ``Dose(value=0.5, unit="mg/kg")``.
    """

    model_config = _CONFIG

    value: float = Field(ge=0.0, allow_inf_nan=False)
    unit: Literal["mg/kg", "mg", "uM"]

    @property
    def kind(self) -> Literal["per_kg", "absolute", "concentration"]:
        """``"per_kg"``, ``"absolute"`` or ``"concentration"``."""
        return _KIND_OF_UNIT[self.unit]  # type: ignore[return-value]

    @classmethod
    def parse(cls, text: str) -> "Dose":
        """Parse a dose string such as ``"10 mg/kg"``.

        Parameters
        ----------
        text : str
            Dose with units.

        Returns
        -------
        Dose
            In canonical units.

        Raises
        ------
        ketasim.scenario.units.UnitError
            If the string is not a valid dose.
        """
        value, unit = parse_dose(text)
        return cls(value=value, unit=unit)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def _dose_input(value: object) -> object:
    if isinstance(value, Dose):
        return value
    try:
        return Dose.parse(value)  # type: ignore[arg-type]
    except UnitError as err:
        raise problem(err.expected) from None


DoseField = Annotated[
    Dose,
    BeforeValidator(_dose_input),
    _JsonSchema(
        lambda: {
            "type": "string",
            "pattern": DOSE_PATTERN,
            "description": DOSE_EXPECTED,
            "examples": ["10 mg/kg", "0.5 mg/kg", "56 mg", "10 uM"],
        }
    ),
]


# --------------------------------------------------------------------------- #
# Protocol events
# --------------------------------------------------------------------------- #


def _check_end(event: "_EventBase", length: float | None, field: str, what: str) -> None:
    """Raise unless an event that lasts ``length`` hours from ``at`` ends within 365 days
    of time 0 (a duration is a length, checked by where the event ends)."""
    if length is not None and event.at + length > MAX_ABS_TIME_H:
        raise problem(
            f"{what} that ends within 365 days of time 0 (from {format_time(event.at)}, "
            f"{format_time(length)} would end at {format_time(event.at + length)})",
            (field,))


class _EventBase(BaseModel):
    model_config = _CONFIG
    what: ClassVar[str] = "an event"

    at: TimeH = Field(description="when the event starts, e.g. '0h', '-10d'")

    @property
    def kind(self) -> str:
        """``"stress"``, ``"drug"`` or ``"intervention"``."""
        raise NotImplementedError

    @property
    def end(self) -> float:
        """When the event stops acting, in hours (``math.inf`` if never)."""
        raise NotImplementedError


class StressEvent(_EventBase):
    """A stressor applied for a time.

    Parameters
    ----------
    at : float
        Start, hours.
    stress : str
        One of :data:`~ketasim.scenario.vocabulary.STRESSORS`.
    duration : float
        Hours, > 0 (for ``cort``, the days of corticosterone in the water).
    intensity : float, default 1.0
        Relative to the standard protocol, in (0, 10].
    """

    what: ClassVar[str] = "a stress event"

    stress: StressorName = Field(description="the stressor")
    duration: DurationH = Field(description="how long the stressor is applied")
    intensity: float = Field(
        default=1.0,
        strict=True,
        gt=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="intensity relative to the standard protocol: a number > 0 and <= 10",
    )

    @property
    def kind(self) -> str:
        return "stress"

    @property
    def end(self) -> float:
        return self.at + self.duration

    @model_validator(mode="after")
    def _check_stress(self) -> "StressEvent":
        found = _species_problem(self)
        if found is not None:
            raise found
        _check_end(self, self.duration, "duration", "a duration")
        return self


class DrugEvent(_EventBase):
    """A drug dose (bolus, or an intravenous infusion when ``over`` is given).

    Parameters
    ----------
    at : float
        Start, hours.
    drug : str
        One of :data:`~ketasim.scenario.vocabulary.DRUGS`.
    dose : Dose or None
        Required except for ``saline``; zero only for ``saline``.
    route : str
        A route the drug allows; the dose kind must suit it (``bath`` takes a
        concentration, ``intracerebral`` a mass, the others mg/kg or a mass).
    over : float or None
        Infusion duration in hours (> 0), only with route ``iv``.
    every : float or None
        Repeat the dose at this interval (hours, > 0; longer than ``over``), with
        ``doses``: a daily tablet is ``every: 1d, doses: 28`` (NONMEM's and mrgsolve's
        ``ii`` / ``addl``, with ``doses`` = ``addl`` + 1).
    doses : int or None
        How many doses in all (>= 2), only with ``every``. The arm's protocol holds
        the doses one by one (:meth:`repeated`).
    """

    what: ClassVar[str] = "a drug event"

    drug: DrugName = Field(description="the drug")
    dose: DoseField | None = Field(
        default=None, description="the dose with units; may be left out only for saline"
    )
    route: RouteName = Field(description="the route of administration")
    over: DurationH | None = Field(
        default=None, description="infusion duration, only with route 'iv'"
    )
    every: DurationH | None = Field(
        default=None,
        description="repeat the dose at this interval, e.g. '1d' (with 'doses'; longer "
        "than 'over')",
    )
    doses: int | None = Field(
        default=None, strict=True, ge=2, le=10_000,
        description="the number of doses in all when the dose is repeated (with 'every'): "
        "an integer from 2 to 10000",
    )

    @property
    def kind(self) -> str:
        return "drug"

    def repeated(self) -> list["DrugEvent"]:
        """The doses of this event one by one (itself when it is not repeated)."""
        if self.every is None or self.doses is None:
            return [self]
        return [self.model_copy(update={"at": self.at + k * self.every, "every": None,
                                        "doses": None})
                for k in range(self.doses)]

    @property
    def end(self) -> float:
        return self.at + (self.over or 0.0)

    @model_validator(mode="after")
    def _check_drug(self) -> "DrugEvent":
        routes = vocabulary.DRUGS.get(self.drug, ())
        if self.route not in routes:
            raise problem(f"a route for {self.drug}: {', '.join(routes)}", ("route",))
        if self.dose is None:
            if self.drug != "saline":
                raise problem(
                    f"a dose for {self.drug}, e.g. '10 mg/kg' (only saline may leave it out)",
                    ("dose",),
                )
        else:
            kinds = vocabulary.ROUTE_DOSE_KINDS.get(self.route, vocabulary.DOSE_KINDS)
            if self.dose.kind not in kinds:
                allowed = " or ".join(_UNITS_OF_KIND[kind] for kind in kinds)
                raise problem(f"a dose in {allowed} for route {self.route!r}", ("dose",))
            if self.dose.value == 0.0 and self.drug != "saline":
                raise problem("a dose above zero (only saline may have a zero dose)", ("dose",))
        if self.over is not None and self.route != "iv":
            raise problem(
                "no 'over' unless the route is 'iv' (only intravenous doses are infused)",
                ("over",),
            )
        if (self.every is None) != (self.doses is None):
            missing = "doses" if self.doses is None else "every"
            raise problem(
                f"'every' and 'doses' together (a repeated dose needs its interval and "
                f"its number of doses; '{missing}' is missing)", (missing,))
        if self.every is not None and self.over is not None and self.every <= self.over:
            raise problem(
                f"an interval longer than the infusion ('over' {format_time(self.over)}), "
                "so that the infusions do not overlap", ("every",))
        if self.every is not None and self.at + (self.doses - 1) * self.every > MAX_ABS_TIME_H:
            raise problem(
                f"a last dose within 365 days of time 0 (dose {self.doses} would fall at "
                f"{format_time(self.at + (self.doses - 1) * self.every)})", ("doses",))
        if self.over is not None and self.every is not None:
            last = self.at + (self.doses - 1) * self.every
            if last + self.over > MAX_ABS_TIME_H:
                raise problem(
                    f"a last infusion that ends within 365 days of time 0 (dose {self.doses} "
                    f"at {format_time(last)} over {format_time(self.over)} would end at "
                    f"{format_time(last + self.over)})", ("doses",))
        _check_end(self, self.over, "over", "an infusion ('over')")
        return self


class InterventionEvent(_EventBase):
    """A genetic, chemogenetic or optogenetic intervention.

    Parameters
    ----------
    at : float
        Start (or the moment of an instantaneous intervention), hours.
    intervention : str
        One of :data:`~ketasim.scenario.vocabulary.INTERVENTIONS`.
    duration : float or None
        Hours, > 0: required for timed interventions, forbidden for
        permanent and instantaneous ones.
    """

    what: ClassVar[str] = "an intervention event"

    intervention: InterventionName = Field(description="the intervention")
    duration: DurationH | None = Field(
        default=None,
        description="how long it acts; required or forbidden depending on the intervention",
    )

    @property
    def kind(self) -> str:
        return "intervention"

    @property
    def end(self) -> float:
        acts = vocabulary.intervention_kind(self.intervention)
        if acts == "permanent":
            return math.inf
        return self.at + (self.duration or 0.0)

    @model_validator(mode="after")
    def _check_duration(self) -> "InterventionEvent":
        found = _species_problem(self)
        if found is not None:
            raise found
        rule = vocabulary.INTERVENTIONS.get(self.intervention, "forbidden")
        if rule == "required" and self.duration is None:
            raise problem(
                f"a duration: {self.intervention} acts for a set time, e.g. '2h'", ("duration",)
            )
        if rule == "forbidden" and self.duration is not None:
            acts = vocabulary.intervention_kind(self.intervention)
            how = "instantaneous" if acts == "instantaneous" else "permanent from 'at'"
            raise problem(f"no duration: {self.intervention} is {how}", ("duration",))
        _check_end(self, self.duration, "duration", "a duration")
        return self


_TAGGED_MODELS: dict[str, type[_EventBase]] = {
    "StressEvent": StressEvent,
    "DrugEvent": DrugEvent,
    "InterventionEvent": InterventionEvent,
}


def _event_tag(value: object) -> str | None:
    if isinstance(value, _EventBase):
        return type(value).__name__
    if isinstance(value, dict):
        present = [key for key in EVENT_KEYS if key in value]
        if len(present) == 1:
            return EVENT_KEYS[present[0]]
    return None


def _check_event_keys(value: object) -> object:
    if isinstance(value, _EventBase):
        return value
    if not isinstance(value, dict):
        raise problem(_EVENT_EXPECTED)
    present = [key for key in EVENT_KEYS if key in value]
    if len(present) != 1:
        found = ", ".join(repr(key) for key in present) or "none of them"
        raise problem(
            f"exactly one of the keys 'stress', 'drug', 'intervention' in an event (found {found})"
        )
    return value


#: One protocol event; which model is decided by the key present.
Event = Annotated[
    Annotated[StressEvent, Tag("StressEvent")]
    | Annotated[DrugEvent, Tag("DrugEvent")]
    | Annotated[InterventionEvent, Tag("InterventionEvent")],
    Discriminator(
        _event_tag,
        custom_error_type=ERROR_TYPE,
        custom_error_message=_EVENT_EXPECTED,
        custom_error_context={"expected": _EVENT_EXPECTED},
    ),
    BeforeValidator(_check_event_keys),
]


def _describe(event: _EventBase) -> str:
    if isinstance(event, StressEvent):
        return f"the {event.stress!r} stress"
    if isinstance(event, DrugEvent):
        return f"the {event.drug} infusion" if event.over is not None else f"the {event.drug} dose"
    assert isinstance(event, InterventionEvent)
    return f"the {event.intervention!r} intervention"


def _span(event: _EventBase) -> str:
    if isinstance(event, DrugEvent) and event.over is not None:
        return f"from {format_time(event.at)} over {format_time(event.over)}"
    if isinstance(event, (StressEvent, InterventionEvent)) and event.duration is not None:
        return f"from {format_time(event.at)} for {format_time(event.duration)}"
    return f"at {format_time(event.at)}"


def _protocol_conflict(events: list[_EventBase], origin: list[int] | None = None
                       ) -> tuple[int, str] | None:
    """Find the earliest impossible combination of events in one arm.

    Parameters
    ----------
    events : list
        Validated events, in file order (a repeated dose as its doses, one by one).
    origin : list of int, optional
        The file index of each event (a repeated dose's doses share theirs); default:
        the events' own positions.

    Returns
    -------
    (int, str) or None
        File index of the offending event and the expectation it breaks, or
        None when the protocol is possible.
    """
    origin = list(range(len(events))) if origin is None else origin
    order = sorted(range(len(events)), key=lambda i: events[i].at)
    # Each rule groups events by a key and checks them in time order.
    overlapping: dict[tuple[str, str], list[int]] = {}  # must not overlap in [at, end)
    same_time: dict[tuple[str, str], list[int]] = {}  # must not share an ``at``
    once: dict[str, list[int]] = {}  # may appear at most once
    for i in order:
        event = events[i]
        if isinstance(event, StressEvent):
            overlapping.setdefault(("stress", event.stress), []).append(i)
        elif isinstance(event, DrugEvent):
            same_time.setdefault(("drug", event.drug), []).append(i)
            if event.over is not None:
                overlapping.setdefault(("infusion", event.drug), []).append(i)
        elif isinstance(event, InterventionEvent):
            acts = vocabulary.intervention_kind(event.intervention)
            if acts == "permanent":
                once.setdefault(event.intervention, []).append(i)
            elif acts == "timed":
                overlapping.setdefault(("intervention", event.intervention), []).append(i)
            else:
                same_time.setdefault(("intervention", event.intervention), []).append(i)

    found: list[tuple[int, int, str]] = []  # (position in time order, file index, expected)
    position = {i: p for p, i in enumerate(order)}
    for members in overlapping.values():
        holder: int | None = None  # earlier event that reaches furthest in time
        for i in members:
            if holder is not None and events[i].at < events[holder].end:
                other = events[holder]
                expected = (
                    f"no overlap with {_describe(other)} of protocol[{origin[holder]}] "
                    f"({_span(other)})"
                )
                found.append((position[i], i, expected))
                break
            if holder is None or events[i].end > events[holder].end:
                holder = i
    for members in same_time.values():
        for previous, i in itertools.pairwise(members):
            if events[i].at == events[previous].at:
                other = events[previous]
                expected = (
                    f"a time other than that of {_describe(other)} of protocol[{origin[previous]}] "
                    f"(also at {format_time(other.at)}); give one combined event"
                )
                found.append((position[i], i, expected))
                break
    for name, members in once.items():
        if len(members) > 1:
            first, i = members[0], members[1]
            expected = (
                f"no second {name!r}: it is permanent from protocol[{origin[first]}] "
                f"(at {format_time(events[first].at)})"
            )
            found.append((position[i], i, expected))
    if not found:
        return None
    _, index, expected = min(found)
    return origin[index], expected


# --------------------------------------------------------------------------- #
# Assays, arms, comparisons, scenario
# --------------------------------------------------------------------------- #

_TIMES_EXPECTED = "a time or a non-empty list of times, e.g. '24h' or ['1h', '2h', '24h']"


def _one_or_many_times(value: object) -> object:
    if isinstance(value, str):
        try:
            parse_time(value)
        except UnitError as err:
            raise problem(err.expected) from None
        return [value]
    if isinstance(value, (list, tuple)):
        if not value:
            raise problem(_TIMES_EXPECTED)
        return value
    raise problem(_TIMES_EXPECTED)


def _sorted_unique(times: tuple[float, ...]) -> tuple[float, ...]:
    out = tuple(sorted(set(times)))
    # a session's random stream is keyed by its time (ketasim.core.assay.session_key, to
    # six significant digits): two times one key apart would draw the same numbers
    for a, b in itertools.pairwise(out):
        if session_key("", a) == session_key("", b):
            raise problem(f"times a random-stream key apart: {format_time(a)} and "
                          f"{format_time(b)} are the same to six significant digits "
                          "(sessions are keyed by their time)")
    return out


def _json_like(value: object) -> object:
    """Check that assay options hold only plain YAML data (for hashing and JSON)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise problem("options with text keys", where)
                stack.append((sub, (*where, key)))
        elif isinstance(item, list):
            stack.extend((sub, (*where, k)) for k, sub in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise problem("a finite number", where)
        elif item is not None and not isinstance(item, (str, int, bool)):
            raise problem(
                "plain option values: text, numbers, booleans, null, lists and mappings",
                where,
            )
    return value


class AssaySpec(BaseModel):
    """An assay and the times it is run.

    Parameters
    ----------
    assay : str
        One of :data:`~ketasim.scenario.vocabulary.ASSAYS`.
    at : tuple of float
        Times in hours, sorted and without repeats. The YAML may give one
        time or a list.
    options : dict
        Free-form settings passed to the assay (plain YAML data only).
    region : str or None
        The brain region measured (a parameter set over the same engines; every
        subject carries all regions at once); left out, the first region the assay
        measures (``mpfc`` for all but the striatal behaviour).
    """

    model_config = _CONFIG
    what: ClassVar[str] = "an assay"

    assay: AssayName = Field(description="the assay")
    region: Literal[KNOWN_REGIONS] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="the brain region measured: " + " or ".join(map(repr, KNOWN_REGIONS))
        + " (left out: the first the assay measures, mpfc for most)",
    )
    at: Annotated[
        tuple[TimeH, ...],
        BeforeValidator(_one_or_many_times),
        AfterValidator(_sorted_unique),
        _JsonSchema(
            lambda: {
                "anyOf": [
                    _time_schema(TIME_EXPECTED),
                    {"type": "array", "items": _time_schema(TIME_EXPECTED), "minItems": 1},
                ],
                "description": "when the assay is run: one time or a list of times",
            }
        ),
    ] = Field(description=_TIMES_EXPECTED)
    options: Annotated[
        dict[str, Any],
        BeforeValidator(lambda value: {} if value is None else value),
        AfterValidator(_json_like),
    ] = Field(default_factory=dict, description="free-form settings passed to the assay")

    @property
    def readouts(self) -> tuple[str, ...]:
        """The readouts this assay reports."""
        return vocabulary.readouts_of(self.assay)

    @model_validator(mode="after")
    def _check_region(self) -> "AssaySpec":
        regions = vocabulary.ASSAY_REGIONS.get(self.assay, (DEFAULT_REGION,))
        if self.region is None:
            object.__setattr__(self, "region", regions[0])
        if self.region not in regions:
            raise problem(f"a region that {self.assay} measures: {', '.join(regions)}",
                          ("region",))
        return self


class Normal(BaseModel):
    """A normal distribution, optionally truncated to [min, max]."""

    model_config = _CONFIG
    what: ClassVar[str] = "a normal distribution"

    mean: float = Field(strict=False, allow_inf_nan=False, description="the mean")
    sd: float = Field(strict=False, ge=0.0, allow_inf_nan=False,
                      description="the standard deviation: a number >= 0")
    min: float | None = Field(default=None, allow_inf_nan=False,
                              description="lower truncation (left out: none)")
    max: float | None = Field(default=None, allow_inf_nan=False,
                              description="upper truncation (left out: none)")

    @model_validator(mode="after")
    def _check_normal(self) -> "Normal":
        lo = -math.inf if self.min is None else self.min
        hi = math.inf if self.max is None else self.max
        if not lo < hi:
            raise problem("min below max", ("max",))
        if not lo <= self.mean <= hi:
            raise problem(f"a mean within [{self.min}, {self.max}]", ("mean",))
        return self


class Inclusion(BaseModel):
    """Inclusion criteria applied at screening, as trials write them."""

    model_config = _CONFIG
    what: ClassVar[str] = "inclusion criteria"

    madrs_min: float | None = Field(
        default=None, ge=0.0, le=60.0,
        description="the smallest MADRS total at the screening visit (e.g. 22)")
    failed_trials_min: int | None = Field(
        default=None, ge=0, le=20,
        description="the fewest failed adequate antidepressant trials (e.g. 2)")
    diagnoses: list[Literal["unipolar", "bipolar"]] | None = Field(
        default=None, min_length=1, description="the diagnoses admitted (left out: any)")


class Population(BaseModel):
    """Virtual patients of an arm (``species: human``): covariates drawn per patient and
    inclusion by screening.

    Each patient (each of the arm's ``n`` screened candidates) gets a sex, an age, a
    body weight (normal by sex; the PK reads it through allometric scaling), a diagnosis
    and a number of failed adequate antidepressant trials from its own keyed stream.
    With ``inclusion``, the candidates who fail a criterion at the ``screening`` visit
    are screen failures: their readouts are removed and they are counted with the
    reason (``patients.csv``); the arm's remaining patients are the randomised ones."""

    model_config = _CONFIG
    what: ClassVar[str] = "a patient population"

    female: float = Field(default=0.6, ge=0.0, le=1.0,
                          description="the share of women: a fraction")
    age: Normal = Field(default_factory=lambda: Normal(mean=45.0, sd=12.0, min=18.0,
                                                         max=70.0),
                        description="age in years")
    weight_female: Normal = Field(
        default_factory=lambda: Normal(mean=75.0, sd=17.0, min=40.0, max=180.0),
        description="body weight of women in kg")
    weight_male: Normal = Field(
        default_factory=lambda: Normal(mean=88.0, sd=17.0, min=45.0, max=200.0),
        description="body weight of men in kg")
    bipolar: float = Field(default=0.0, ge=0.0, le=1.0,
                           description="the share with bipolar (vs unipolar) depression")
    failed_trials: float = Field(
        default=2.5, ge=0.0, le=20.0,
        description="the mean number of failed adequate antidepressant trials (Poisson)")
    screening: TimeH | None = Field(
        default=None, description="the screening visit, a visit of the arm's madrs assay "
        "(needed with inclusion.madrs_min)")
    inclusion: Inclusion | None = Field(default=None, description="the inclusion criteria")

    @model_validator(mode="after")
    def _check_population(self) -> "Population":
        # the PK reads age and weight through allometry and age covariates: a draw at or
        # below 0 would fail mid-run (it did, as a solver error), so the bounds say so
        for field, what in (("age", "a lower bound min >= 0 years"),
                            ("weight_female", "a lower bound min above 0 kg"),
                            ("weight_male", "a lower bound min above 0 kg")):
            dist = getattr(self, field)
            lowest = dist.min if dist.min is not None else (
                dist.mean if dist.sd == 0 else -math.inf)
            if lowest < 0 or (field != "age" and lowest <= 0):
                raise problem(what, (field, "min"))
        if self.inclusion is not None and self.inclusion.madrs_min is not None \
                and self.screening is None:
            raise problem("a screening visit (a time of the arm's madrs assay) when "
                          "inclusion.madrs_min is set", ("screening",))
        return self


#: A rated clinical readout (a scale a ``design:`` block may analyse), read lazily so
#: that :data:`TRIAL_SCALES` below defines it.
_RatedScale = _vocabulary_type("clinical readouts a trial can analyse",
                               lambda: TRIAL_SCALES)


def _check_threshold(readout: str, value: float, relative: bool, key: str) -> None:
    """A rating threshold (an intercurrent event's, a taper's): a fractional change from
    -1 to 10 with ``relative_to``, else a score within the scale's range."""
    if relative:
        if not -1.0 <= value <= 10.0:
            raise problem("a fractional change from -1 to 10 (with relative_to)", (key,))
        return
    spec = TRIAL_SCALES[readout]
    if not spec.low <= value <= spec.high:
        raise problem(f"a {readout} score from {spec.low} to {spec.high}", (key,))


class Taper(BaseModel):
    """A needs-based taper of one drug (as clinics give maintenance infusions: the
    interval to the next dose lengthens while the patient stays well and shortens when
    they do not; Krystal et al. 2019 Neuron, F-K-9).

    The taper's first dose (``dose``) is given to every patient. At each later dose the
    patient's latest rating of ``readout`` before the dose decides the interval to the
    next one: well (rating <= ``well_at_or_below``; with ``relative_to``, the fractional
    change from the rating at that visit) moves one rung up ``intervals``, not well one
    rung down (the first interval is the first rung); with ``review``, only doses at
    least that long after the last review decide, and the interval stays between
    reviews (clinics and trials that reassess every few weeks). Doses continue to
    ``until``. Every
    rung is a whole multiple of the first, so the possible dose times lie on one grid.
    The runner gives each patient the schedule their own ratings call for (it runs the
    patients again from the first dose their ratings change, until no schedule changes),
    and records each dose given as a readout row (assay ``taper``, readout
    ``dose_interval``: the interval to the next dose, days)."""

    model_config = _CONFIG
    what: ClassVar[str] = "a taper"

    dose: DrugEvent = Field(description="the taper's first dose, e.g. {at: 24d, drug: "
                            "ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}; every "
                            "later dose is the same at its own time")
    intervals: Annotated[list[DurationH], Field(min_length=1)] = Field(
        description="the ladder of intervals between doses, shortest first, each a whole "
        "multiple of the first, e.g. [7d, 14d, 21d, 28d]")
    until: TimeH = Field(description="no taper dose after this time, e.g. '180d'")
    readout: _RatedScale = Field(description="the rated readout that judges a patient "
                                 "well, e.g. 'madrs_total'")
    well_at_or_below: float = Field(
        strict=False, allow_inf_nan=False,
        description="well: the latest rating before a dose is <= this (a score, or with "
        "relative_to a fractional change: -0.5 is a fall of at least 50%, a response)")
    relative_to: TimeH | None = Field(
        default=None, description="a visit of the readout before the taper (the "
        "baseline): the threshold applies to the fractional change from it")
    review: DurationH | None = Field(
        default=None, description="review the interval only at doses at least this long "
        "after the last review, e.g. '28d' (the first dose counts as one); between "
        "reviews the interval stays (default: at every dose)")

    @model_validator(mode="after")
    def _check_taper(self) -> "Taper":
        if self.dose.every is not None:
            raise problem("a single dose (no 'every' or 'doses': the taper repeats it)",
                          ("dose", "every"))
        rungs = self.intervals
        for j, (a, b) in enumerate(itertools.pairwise(rungs)):
            if b <= a:
                raise problem("intervals in increasing order, shortest first",
                              ("intervals", j + 1))
        for j, r in enumerate(rungs):
            if abs(r / rungs[0] - round(r / rungs[0])) > 1e-9:
                raise problem(f"a whole multiple of the first interval "
                              f"({format_time(rungs[0])})", ("intervals", j))
            if self.dose.over is not None and r <= self.dose.over:
                raise problem(f"an interval longer than the infusion ('over' "
                              f"{format_time(self.dose.over)})", ("intervals", j))
        if self.until < self.dose.at:
            raise problem(f"a time at or after the first dose ({format_time(self.dose.at)})",
                          ("until",))
        if self.until > MAX_ABS_TIME_H:
            raise problem("a time within 365 days of time 0", ("until",))
        if self.relative_to is not None and self.relative_to >= self.dose.at:
            raise problem(f"a visit before the taper's first dose "
                          f"({format_time(self.dose.at)})", ("relative_to",))
        _check_threshold(self.readout, self.well_at_or_below, self.relative_to is not None,
                         "well_at_or_below")
        return self

    def times(self) -> list[float]:
        """Every time (h) a taper dose can fall at: the first dose's, then every first
        interval up to ``until``."""
        step = self.intervals[0]
        k = math.floor((self.until - self.dose.at) / step + 1e-9)
        return [self.dose.at + step * j for j in range(k + 1)]

    def doses(self) -> list[DrugEvent]:
        """The taper's possible doses, one per time of :meth:`times`."""
        return [self.dose.model_copy(update={"at": float(t)}) for t in self.times()]


class Arm(BaseModel):
    """One group of subjects and what is done to them.

    Parameters
    ----------
    name : str
        Identifier-like, unique within the scenario.
    n : int
        Number of subjects, 1..100000.
    protocol : list of Event
        Events, stored sorted by time (stable).
    assays : list of AssaySpec
        Measurements.
    body_weight : float or None
        kg; None means the species default.
    """

    model_config = _CONFIG
    what: ClassVar[str] = "an arm"

    name: Name = Field(description="the arm's name, unique in the scenario")
    n: int = Field(
        strict=True,
        ge=1,
        le=100_000,
        description="the number of subjects in the arm: an integer from 1 to 100000",
    )
    protocol: Annotated[list[Event], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list,
        description="the arm's events: a list of stress, drug and intervention events",
    )
    assays: Annotated[list[AssaySpec], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list, description="the assays run on the arm: a list of mappings"
    )
    body_weight: MassKg | None = Field(
        default=None,
        description="body weight, e.g. '25 g' or '70 kg' (left out: the species default)",
    )
    population: Population | None = Field(
        default=None,
        description="virtual patients: covariates per patient and inclusion by screening "
        "(species human)",
    )
    taper: Taper | None = Field(
        default=None,
        description="a needs-based taper of one drug after the protocol's doses: each "
        "patient's interval to the next dose follows their own ratings",
    )

    @property
    def body_weight_kg(self) -> float | None:
        """Body weight in kg, or None for the species default."""
        return self.body_weight

    @property
    def first_dose_h(self) -> float | None:
        """The time (h) of the arm's first drug event (saline or a placebo included, a
        taper's first dose too), None where it has none: the start of treatment."""
        times = [float(e.at) for e in self.protocol if e.kind == "drug"]
        if self.taper is not None:
            times.append(float(self.taper.dose.at))
        return min(times) if times else None

    @field_validator("protocol")
    @classmethod
    def _check_protocol(cls, events: list[_EventBase]) -> list[_EventBase]:
        # repeated doses one by one; a conflict names the file's event
        origin, expanded = [], []
        for i, event in enumerate(events):
            doses = event.repeated() if isinstance(event, DrugEvent) else [event]
            origin += [i] * len(doses)
            expanded += doses
        conflict = _protocol_conflict(expanded, origin)
        if conflict is not None:
            index, expected = conflict
            raise problem(expected, (index, "at"))
        return sorted(expanded, key=lambda event: event.at)

    @field_validator("assays")
    @classmethod
    def _check_assay_times(cls, assays: list[AssaySpec]) -> list[AssaySpec]:
        # one assay measures one region once at a time: a second entry at the same time
        # would give rows nobody could tell apart (same readout, subject and time)
        seen: dict[tuple[str, str, float], int] = {}
        for i, spec in enumerate(assays):
            for t in spec.at:
                key = (spec.assay, str(spec.region), float(t))
                if key in seen:
                    raise problem(
                        f"a time that assays[{seen[key]}] does not measure already: "
                        f"{spec.assay} ({spec.region}) at {format_time(t)} would give two "
                        "rows per subject that no one could tell apart",
                        (i, "at"),
                    )
                seen[key] = i
        return assays

    @model_validator(mode="after")
    def _check_taper(self) -> "Arm":
        taper = self.taper
        if taper is None:
            return self
        visits = self.times_of(taper.readout)
        first = taper.dose.at + taper.intervals[0]
        if not any(t < first for t in visits):
            raise problem(f"a visit of {taper.readout} before {format_time(first)} (the "
                          "taper's first decision: an assay in this arm rating it)",
                          ("taper", "readout"))
        if taper.relative_to is not None and taper.relative_to not in visits:
            raise problem(f"a visit of {taper.readout} (one of this arm's assays' times)",
                          ("taper", "relative_to"))
        events = [*self.protocol, *taper.doses()]
        conflict = _protocol_conflict(events)
        if conflict is not None and conflict[0] >= len(self.protocol):
            raise problem(conflict[1] + " (a taper dose against the protocol's doses)",
                          ("taper", "dose", "at"))
        if conflict is not None:
            raise problem(conflict[1] + " (against a taper dose)",
                          ("protocol", conflict[0], "at"))
        return self

    def times_of(self, readout: str, assay: str | None = None) -> tuple[float, ...]:
        """Return the times (hours) at which this arm measures a readout.

        Parameters
        ----------
        readout : str
            Readout name.
        assay : str, optional
            Only count this assay.

        Returns
        -------
        tuple of float
            Sorted, without repeats; empty if the readout is not measured.
        """
        times: set[float] = set()
        for spec in self.assays:
            if assay is not None and spec.assay != assay:
                continue
            if readout in vocabulary.ASSAYS.get(spec.assay, ()):
                times.update(spec.at)
        return tuple(sorted(times))


class Comparison(BaseModel):
    """A statistical comparison of one readout between arms at one time.

    Parameters
    ----------
    readout : str
        A readout of an assay run in every compared arm.
    at : float
        Hours; a time at which every compared arm measures the readout.
    arms : list of str
        At least two distinct arm names (exactly two for two-group tests).
    test : str, default "welch_t"
        One of :data:`STATISTICAL_TESTS`.
    assay : str or None
        Restrict the readout to this assay.
    region : str or None
        Restrict the readout to this region (needed when it is measured in several).
    baseline : float or None
        Hours; compare each subject's change from its own value at this time (for
        nested rows, each unit's: a branch, a cell) instead of the value at ``at``.
    """

    model_config = _CONFIG
    what: ClassVar[str] = "a comparison"

    readout: ReadoutName = Field(description="the readout compared")
    at: TimeH = Field(description="the time compared")
    arms: list[Name] = Field(
        min_length=2, description="the compared arms: a list of at least two arm names"
    )
    test: Literal["welch_t", "student_t", "mann_whitney", "anova", "kruskal"] = Field(
        default="welch_t",
        description="the statistical test: welch_t, student_t, mann_whitney, anova or kruskal",
    )
    assay: AssayName | None = Field(
        default=None, description="the assay the readout comes from (when ambiguous)"
    )
    region: Literal[KNOWN_REGIONS] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="the region the readout is measured in (when the arms measure it in "
        "more than one)",
    )
    baseline: TimeH | None = Field(
        default=None,
        description="compare each subject's change from its own value at this time "
        "(a time at which every compared arm measures the readout, other than at)",
    )

    @model_validator(mode="after")
    def _check_comparison(self) -> "Comparison":
        seen: dict[str, int] = {}
        for k, arm in enumerate(self.arms):
            if arm in seen:
                raise problem(f"distinct arms ({arm!r} is already arms[{seen[arm]}])", ("arms", k))
            seen[arm] = k
        if self.baseline is not None and self.baseline == self.at:
            raise problem("a time other than at (the change from at to itself is 0)",
                          ("baseline",))
        if self.test in TWO_GROUP_TESTS and len(self.arms) != 2:
            raise problem(
                f"exactly two arms for the two-group test {self.test!r} "
                "(use 'anova' or 'kruskal' for more)",
                ("arms",),
            )
        if self.assay is not None and self.readout not in vocabulary.ASSAYS.get(self.assay, ()):
            readouts = ", ".join(vocabulary.ASSAYS.get(self.assay, ()))
            raise problem(f"a readout of assay {self.assay!r}: {readouts}", ("readout",))
        return self


# --------------------------------------------------------------------------- #
# Trial design
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TrialScale:
    """A clinical readout a trial design may analyse: its assay, the range of its total
    and its default remission cut-off (None: the scale defines none)."""

    readout: str
    assay: str
    low: int
    high: int
    remission_max: int | None = None


def _sub_range(scale: Any, numbers: Iterable[int]) -> tuple[int, int]:
    items = [scale.item(k) for k in numbers]
    return sum(it.low for it in items), sum(it.high for it in items)


def _trial_scale(readout: str, assay: str, scale: Any, items) -> TrialScale:
    if items is None:
        return TrialScale(readout, assay, scale.total_min, scale.total_max,
                          scale.remission_max)
    return TrialScale(readout, assay, *_sub_range(scale, items))


#: Readout -> the scale a ``design:`` block may analyse, derived from the clinical
#: assays' declaration (:data:`ketasim.clinical.assays.SCALE_READOUTS`; ranges from
#: :mod:`ketasim.analysis.trial`, the definitions the assays rate with).
TRIAL_SCALES: dict[str, TrialScale] = {
    r: _trial_scale(r, *spec) for r, spec in SCALE_READOUTS.items()}

ScaleName = _vocabulary_type("clinical readouts a trial can analyse", lambda: TRIAL_SCALES)

_RATIO_EXPECTED = "a positive number, e.g. 1 or 2"


def _check_ratio(value: object) -> float:
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        return float(value)
    raise problem(_RATIO_EXPECTED)


#: One arm's share in a randomisation ratio.
Ratio = Annotated[
    float,
    BeforeValidator(_check_ratio),
    _JsonSchema(lambda: {"type": "number", "exclusiveMinimum": 0,
                         "description": _RATIO_EXPECTED}),
]


class Dropout(BaseModel):
    """Patients leaving a trial: a per-week probability, missing at random (``mar``) or
    not (``mnar``: the worse a patient's score at a visit, the likelier that visit is
    missed), applied to the simulated patients' visits after baseline."""

    model_config = _CONFIG
    what: ClassVar[str] = "a dropout model"

    rate_per_week: float = Field(
        strict=True, ge=0.0, lt=1.0, allow_inf_nan=False,
        description="the probability that a patient drops out in a week (converted to each "
        "visit's interval): a number >= 0 and < 1",
    )
    mechanism: Literal["mar", "mnar"] = Field(
        default="mar",
        description="'mar' (missing at random: the same hazard for every patient) or 'mnar' "
        "(missing not at random: the hazard grows with the score at the missed visit)",
    )
    strength: float = Field(
        default=2.0, strict=True, ge=0.0, le=10.0, allow_inf_nan=False,
        description="mnar only: log hazard ratio per unit of the score's fractional change "
        "from baseline (2: a patient whose score halved drops out e^-1 as often): a number "
        "from 0 to 10",
    )

    @model_validator(mode="after")
    def _check_dropout(self) -> "Dropout":
        if self.mechanism == "mar" and "strength" in self.model_fields_set:
            raise problem("no 'strength' unless the mechanism is 'mnar'", ("strength",))
        return self


class Crossover(BaseModel):
    """A crossover: each arm is a sequence of treatments, one per period; every patient
    is compared with themselves across periods."""

    model_config = _CONFIG
    what: ClassVar[str] = "a crossover"

    periods: list[TimeH] = Field(
        min_length=2, description="the start of each period (the time of its dose), e.g. "
        "[0h, 14d]")
    treatments: dict[Name, list[Name]] = Field(
        description="per arm, the treatment label of each period, e.g. {kp: [ketamine, "
        "placebo], pk: [placebo, ketamine]} (free names for the analysis, not matched "
        "against the drugs the arm's protocol gives)")

    @model_validator(mode="after")
    def _check_crossover(self) -> "Crossover":
        for k in range(1, len(self.periods)):
            if not self.periods[k] > self.periods[k - 1]:
                raise problem("period starts in increasing order", ("periods", k))
        for arm, labels in self.treatments.items():
            if len(labels) != len(self.periods):
                raise problem(f"one treatment per period ({len(self.periods)})",
                              ("treatments", arm))
        return self


class Stable(BaseModel):
    """Who enters a randomised withdrawal: the patients whose scale is at or below
    ``threshold`` at ``at_least`` of the visits ``at`` (all of them when left out), e.g.
    stable remission as MADRS <= 12 in at least 3 of the last 4 weeks before
    randomisation (Daly et al. 2019 JAMA Psychiatry, SUSTAIN-1). A missed visit does not
    count as met."""

    model_config = _CONFIG
    what: ClassVar[str] = "a stable-remission rule"

    threshold: float = Field(ge=0.0, allow_inf_nan=False,
                             description="the score at or below which a visit counts as "
                             "remitted, e.g. 12")
    at: Annotated[list[TimeH], Field(min_length=1, description="the visits judged, before "
                                                            "the relapse start")]
    at_least: int | None = Field(default=None, ge=1, description="how many of the visits "
                                 "must be remitted (left out: all)")

    @model_validator(mode="after")
    def _check(self) -> "Stable":
        if len(set(self.at)) != len(self.at):
            raise problem("distinct visits", ("at",))
        if self.at_least is not None and self.at_least > len(self.at):
            raise problem(f"at most the number of visits ({len(self.at)})", ("at_least",))
        return self


class Intercurrent(BaseModel):
    """An intercurrent event (ICH E9(R1) addendum on estimands, 2019): a patient stops the
    study treatment when a rated readout crosses a threshold at a visit (intolerable
    dissociation, emergent suicidality, worsening). The doses of the ``withhold`` drugs
    that the protocol gives after that visit are not given to that patient, who stays in
    the trial and is rated as planned."""

    model_config = _CONFIG
    what: ClassVar[str] = "an intercurrent event"

    name: Name = Field(description="the event's name, e.g. 'discontinued_for_dissociation'")
    readout: ScaleName = Field(description="the rated readout that triggers it, e.g. "
                               "'cadss_total' or 'madrs_suicide_item'")
    at_or_above: float | None = Field(
        default=None, strict=True, allow_inf_nan=False,
        description="the event occurs at the first visit whose rating is >= this")
    at_or_below: float | None = Field(
        default=None, strict=True, allow_inf_nan=False,
        description="the event occurs at the first visit whose rating is <= this")
    after: TimeH = Field(
        default=0.0, description="only visits at or after this time count (default: from "
        "time 0, the first dose)")
    relative_to: TimeH | None = Field(
        default=None, description="a visit of the readout before 'after': the threshold "
        "then applies to the fractional change from the patient's rating there, (rating - "
        "rating then) / rating then, e.g. at_or_above: -0.25 with relative_to: -1d is a "
        "fall of less than 25% (lack of efficacy)")
    withhold: list[DrugName] = Field(
        min_length=1, description="the drugs stopped: their doses after the event's visit "
        "are not given (a dose at the visit's own time was given with it; e.g. [ketamine]; "
        "a background antidepressant not listed goes on)")
    rescue: list[DrugEvent] | None = Field(
        default=None, min_length=1,
        description="rescue medication started at the event: drug doses whose 'at' counts "
        "from the event's visit (>= 0), e.g. {at: 0h, drug: escitalopram, dose: 10 mg, "
        "route: oral, every: 1d, doses: 28}")

    @model_validator(mode="after")
    def _check_intercurrent(self) -> "Intercurrent":
        if (self.at_or_above is None) == (self.at_or_below is None):
            raise problem("exactly one of at_or_above and at_or_below (the threshold)", ())
        key = "at_or_above" if self.at_or_above is not None else "at_or_below"
        value = getattr(self, key)
        _check_threshold(self.readout, value, self.relative_to is not None, key)
        if self.relative_to is not None and self.relative_to >= self.after:
            raise problem(f"a visit before 'after' ({format_time(self.after)})",
                          ("relative_to",))
        _distinct(self.withhold, "withhold", "drugs")
        for j, ev in enumerate(self.rescue or []):
            if ev.at < 0:
                raise problem("a time from the event, >= 0 (rescue starts at or after the "
                              "visit that triggers it)", ("rescue", j, "at"))
        return self


class Relapse(BaseModel):
    """Time to relapse under maintenance: a relapse is the scale at or above
    ``threshold`` at ``consecutive`` successive visits from ``start`` on (the first of
    them is the event time); patients without one are censored at their last visit.
    With ``stable`` (a randomised withdrawal), only the patients in stable remission
    before ``start`` are followed; the others are counted and left out."""

    model_config = _CONFIG
    what: ClassVar[str] = "a relapse definition"

    threshold: float = Field(ge=0.0, allow_inf_nan=False,
                             description="the score at or above which a visit counts, e.g. 22")
    consecutive: int = Field(default=2, ge=1, le=10,
                             description="successive visits at or above the threshold")
    start: TimeH = Field(description="the first visit that can count, e.g. '28d'")
    stable: Stable | None = Field(default=None, description="a randomised withdrawal: only "
                                  "patients in stable remission before 'start' are followed")

    @model_validator(mode="after")
    def _check_stable(self) -> "Relapse":
        if self.stable is not None:
            for k, t in enumerate(self.stable.at):
                if t >= self.start:
                    raise problem(f"a visit before the relapse start ({format_time(self.start)})",
                                  ("stable", "at", k))
        return self


#: Covariates of a virtual patient a trial can stratify on (numeric ones by cut points).
STRATIFY_FACTORS = ("sex", "diagnosis", "age_y", "weight_kg", "failed_trials")
NUMERIC_STRATIFY = ("age_y", "weight_kg", "failed_trials")
_EXAMPLE_CUT = {"age_y": "45", "weight_kg": "80", "failed_trials": "3"}


def _distinct(items, key: str, what: str) -> dict[str, int]:
    """Each item's first position; a repeated item is one error naming its place."""
    seen: dict[str, int] = {}
    for k, x in enumerate(items):
        if x in seen:
            raise problem(f"distinct {what} ({x!r} is already {key}[{seen[x]}])", (key, k))
        seen[x] = k
    return seen


class Design(BaseModel):
    """A clinical trial's design and analysis plan.

    Parameters
    ----------
    control : str
        The control arm.
    arms : list of str or None
        The analysed arms (left out: all), the control among them.
    scale : str, default "madrs_total"
        A clinical readout (:data:`TRIAL_SCALES`) measured in every analysed arm.
    baseline, primary : float
        The baseline and primary visits (hours), visits of the scale in every analysed
        arm; primary after baseline.
    remission : float or None
        Remission cut-off (total <= this); default the scale's (MADRS <= 12).
    response_fall : float, default 0.5
        Fractional fall from baseline that counts as response.
    covariance : {"us", "cs", "ar1"}
        The MMRM's residual covariance across visits.
    df : {"kenward-roger", "satterthwaite"}
        The MMRM's degrees-of-freedom method.
    randomisation : dict of str to float or None
        Allocation ratio per analysed arm; the arms' n must agree with it.
    stratify, stratum_cuts, block_size
        Stratified randomisation (see the fields).
    dropout : Dropout or None
        Patients leaving after baseline.
    """

    model_config = _CONFIG
    what: ClassVar[str] = "a trial design"

    control: Name = Field(description="the control arm's name")
    arms: list[Name] | None = Field(
        default=None, min_length=2,
        description="the analysed arms: a list of at least two arm names, the control among "
        "them (left out: every arm)",
    )
    scale: ScaleName = Field(default="madrs_total", description="the clinical readout analysed")
    baseline: TimeH = Field(description="the baseline visit, a visit of the scale, e.g. '-1d'")
    primary: TimeH = Field(description="the primary visit, a visit after baseline, e.g. '24h'")
    remission: float | None = Field(
        default=None, strict=True, allow_inf_nan=False,
        description="the remission cut-off, a total (remission: total <= cut-off); left "
        "out: the scale's own (MADRS 12)",
    )
    response_fall: float = Field(
        default=0.5, strict=True, gt=0.0, le=1.0, allow_inf_nan=False,
        description="the fractional fall from baseline that counts as response: a number > 0 "
        "and <= 1",
    )
    covariance: Literal["us", "cs", "ar1"] = Field(
        default="us",
        description="the MMRM residual covariance: 'us' (unstructured), 'cs' (compound "
        "symmetry) or 'ar1'",
    )
    df: Literal["kenward-roger", "satterthwaite"] = Field(
        default="kenward-roger",
        description="the MMRM degrees of freedom: 'kenward-roger' or 'satterthwaite'",
    )
    randomisation: dict[Name, Ratio] | None = Field(
        default=None,
        description="the allocation ratio per analysed arm, e.g. {placebo: 1, ketamine: 2}; "
        "the arms' n must agree with it",
    )
    stratify: list[Literal[STRATIFY_FACTORS]] | None = Field(  # type: ignore[valid-type]
        default=None, min_length=1,
        description="stratified randomisation: the covariates whose strata are balanced "
        "(sex, diagnosis, age_y, weight_kg, failed_trials; numeric ones need "
        "stratum_cuts). The analysed arms then share one pool of candidates from their "
        "common population, allocated by permuted blocks within strata",
    )
    stratum_cuts: dict[Literal[NUMERIC_STRATIFY], list[float]] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="cut points of each numeric stratification factor, increasing, e.g. "
        "{failed_trials: [3], age_y: [40, 60]}",
    )
    block_size: int | None = Field(
        default=None, strict=True, ge=1,
        description="the permuted block size within each stratum, a multiple of the "
        "ratio's sum (left out: twice the ratio's sum); only with stratify",
    )
    dropout: Dropout | None = Field(
        default=None, description="patients dropping out after baseline: rate_per_week, "
        "mechanism (mar or mnar)"
    )
    relapse: Relapse | None = Field(
        default=None, description="time to relapse (maintenance): threshold, consecutive "
        "visits and the first visit that counts; writes relapse.csv with Kaplan-Meier and "
        "Cox estimates against control")
    crossover: Crossover | None = Field(
        default=None, description="a crossover: period starts and each arm's sequence of "
        "treatments; control then names the reference treatment, and baseline and primary "
        "are times relative to each period's start")
    intercurrent: list[Intercurrent] | None = Field(
        default=None, min_length=1,
        description="intercurrent events: rated readouts whose threshold stops the study "
        "treatment (later doses of the withheld drugs are not given; the patient stays in "
        "the trial); the first to occur counts")
    strategy: Literal["treatment_policy", "hypothetical", "while_on_treatment"] = Field(
        default="treatment_policy",
        description="the estimand's strategy for the intercurrent events: "
        "'treatment_policy' (every rating counts, whatever happened), 'hypothetical' "
        "(ratings after the event are set missing: the MMRM estimates the effect had the "
        "treatment gone on, under missing at random; response and remission count them as "
        "non-response) or 'while_on_treatment' (ratings after the event are replaced by "
        "the patient's last rating at or before it: the effect while on treatment)")

    @property
    def remission_threshold(self) -> float | None:
        """The remission cut-off: the design's, else the scale's (None if neither)."""
        if self.remission is not None:
            return self.remission
        limit = TRIAL_SCALES[self.scale].remission_max
        return None if limit is None else float(limit)

    @property
    def assay(self) -> str:
        """The assay that reports the scale."""
        return TRIAL_SCALES[self.scale].assay

    @model_validator(mode="after")
    def _check_design(self) -> "Design":
        if self.arms is not None:
            seen = _distinct(self.arms, "arms", "arms")
            if self.control not in seen and self.crossover is None:
                raise problem(f"one of the analysed arms: {', '.join(self.arms)}", ("control",))
        if self.primary <= self.baseline:
            raise problem(f"a visit after the baseline ({format_time(self.baseline)})",
                          ("primary",))
        spec = TRIAL_SCALES[self.scale]
        if self.remission is not None and not spec.low <= self.remission <= spec.high:
            raise problem(f"a {self.scale} score from {spec.low} to {spec.high}",
                          ("remission",))
        self._check_strata()
        if self.intercurrent is None and "strategy" in self.model_fields_set:
            raise problem("no strategy without intercurrent events (it says how they are "
                          "handled)", ("strategy",))
        if self.intercurrent is not None:
            _distinct([e.name for e in self.intercurrent], "intercurrent", "event names")
        if self.randomisation is not None and self.arms is not None:
            for name in self.randomisation:
                if name not in self.arms:
                    raise problem(f"an analysed arm: {', '.join(self.arms)}",
                                  ("randomisation", name))
        return self

    def _check_strata(self) -> None:
        if self.stratify is None:
            for key in ("stratum_cuts", "block_size"):
                if getattr(self, key) is not None:
                    raise problem("no " + key + " without stratify (it sets the strata's "
                                  "blocks)", (key,))
            return
        if self.crossover is not None:
            raise problem("no stratify with a crossover (not supported yet)", ("stratify",))
        seen = _distinct(self.stratify, "stratify", "factors")
        cuts = self.stratum_cuts or {}
        for f in self.stratify:
            if f in NUMERIC_STRATIFY and f not in cuts:
                raise problem(f"cut points for {f}, a numeric factor, e.g. {{{f}: "
                              f"[{_EXAMPLE_CUT[f]}]}}", ("stratum_cuts",))
        for f, c in cuts.items():
            if f not in seen:
                raise problem(f"cut points of a factor in stratify ({', '.join(self.stratify)})",
                              ("stratum_cuts", f))
            if not c or any(not math.isfinite(x) for x in c) or any(
                    b <= a for a, b in itertools.pairwise(c)):
                raise problem("one or more finite cut points in increasing order",
                              ("stratum_cuts", f))

    def analysed_arms(self, arm_names: Iterable[str]) -> tuple[str, ...]:
        """The analysed arms, control first, then in scenario order."""
        chosen = [a for a in arm_names if self.arms is None or a in self.arms]
        return (self.control, *(a for a in chosen if a != self.control))


def _design_problem(design: Design, arms: list["Arm"]) -> tuple[str, tuple[str | int, ...]] | None:
    """The first problem of a design with the scenario's arms: (expected, path)."""
    if design.crossover is not None:
        return _crossover_problem(design, arms)
    by_name = {arm.name: arm for arm in arms}
    names = ", ".join(by_name)
    if design.arms is not None:
        for k, name in enumerate(design.arms):
            if name not in by_name:
                return f"the name of an arm: {names}", ("design", "arms", k)
    if design.control not in by_name:
        return f"the name of an arm: {names}", ("design", "control")
    analysed = design.analysed_arms(by_name)
    if len(analysed) < 2:
        return ("a control arm beside at least one other arm (the scenario has one arm)",
                ("design", "control"))
    for name in analysed:
        times, listed, found = _scale_times(design, by_name[name])
        if found is not None:
            return found
        for key in ("baseline", "primary"):
            if getattr(design, key) not in times:
                return (f"a time at which arm {name!r} measures {design.scale}: {listed}",
                        ("design", key))
    if design.relapse is not None:
        for name in analysed:
            times = by_name[name].times_of(design.scale)
            listed = ", ".join(format_time(t) for t in times)
            if design.relapse.start not in times:
                return (f"a time at which arm {name!r} measures {design.scale}: {listed}",
                        ("design", "relapse", "start"))
            stable = design.relapse.stable
            for k, t in enumerate(stable.at if stable is not None else []):
                if t not in times:
                    return (f"a time at which arm {name!r} measures {design.scale}: {listed}",
                            ("design", "relapse", "stable", "at", k))
    found = _intercurrent_problem(design, [by_name[a] for a in analysed])
    if found is not None:
        return found
    found = _strata_problem(design, [by_name[a] for a in analysed])
    if found is not None:
        return found
    return _randomisation_problem(design, by_name, analysed)


def _randomisation_problem(design: Design, by_name: dict[str, "Arm"], analysed):
    """The first problem of a design's ``randomisation`` with its analysed arms (names):
    a ratio for each analysed arm and no other, and arms whose n follow it within
    rounding. Parallel and crossover designs alike."""
    if design.randomisation is None:
        return None
    ratio = design.randomisation
    for name in ratio:
        if name not in analysed:
            return f"an analysed arm: {', '.join(analysed)}", ("design", "randomisation", name)
    missing = [a for a in analysed if a not in ratio]
    if missing:
        return (f"a ratio for every analysed arm (missing {', '.join(map(repr, missing))})",
                ("design", "randomisation"))
    total_n = sum(by_name[a].n for a in analysed)
    total_ratio = sum(ratio.values())
    for name in analysed:
        expected = total_n * ratio[name] / total_ratio
        if abs(by_name[name].n - expected) >= 1.0:
            shares = ":".join(f"{ratio[a]:g}" for a in analysed)
            return ((f"arms whose n follow the ratio {shares} of {', '.join(analysed)} "
                    f"within rounding (arm {name!r} has n = {by_name[name].n}, "
                    f"expected {expected:.4g} of {total_n})"),
                    ("design", "randomisation", name))
    return None


def _intercurrent_problem(design: Design, arms: list["Arm"]):
    """The first problem of a design's intercurrent events with its analysed arms: each
    trigger readout measured in every analysed arm (in its default region), each withheld
    drug given in at least one of them."""
    given = {ev.drug for arm in arms for ev in arm.protocol if getattr(ev, "drug", None)}
    for k, e in enumerate(design.intercurrent or []):
        for arm in arms:
            if e.relative_to is not None and e.relative_to not in arm.times_of(e.readout):
                listed = ", ".join(format_time(t) for t in arm.times_of(e.readout))
                return ((f"a time at which arm {arm.name!r} rates {e.readout}: {listed}"),
                        ("design", "intercurrent", k, "relative_to"))
            if not any(t >= e.after for t in arm.times_of(e.readout)):
                return ((f"a readout that every analysed arm rates at or after "
                         f"{format_time(e.after)} (arm {arm.name!r} does not rate "
                         f"{e.readout} then)"), ("design", "intercurrent", k, "readout"))
            regions = {getattr(a, "region", None) for a in arm.assays}
            if regions - {None, DEFAULT_REGION}:
                return ((f"arms measured in the default region only (arm {arm.name!r} "
                         "measures another region)"), ("design", "intercurrent", k))
        for j, drug in enumerate(e.withhold):
            if drug not in given:
                return ((f"a drug given in an analysed arm: {', '.join(sorted(given))}"),
                        ("design", "intercurrent", k, "withhold", j))
    return None


def _strata_problem(design: Design, arms: list["Arm"]):
    """The first problem of a stratified design with its analysed arms: they share one
    population, whole-number ratios that their n follow exactly, and a block size that
    is a multiple of the ratio's sum."""
    if design.stratify is None:
        return None
    for arm in arms:
        if arm.population is None:
            return ((f"analysed arms with a population: block to stratify (arm {arm.name!r} "
                     "has none)"), ("design", "stratify"))
    for arm in arms[1:]:
        if arm.population != arms[0].population:
            return ((f"analysed arms sharing one population (one pool is stratified and "
                     f"allocated; arm {arm.name!r} has another than arm {arms[0].name!r})"),
                    ("design", "stratify"))
    if design.randomisation is not None:
        ratio = [design.randomisation.get(a.name) for a in arms]
        for arm, r in zip(arms, ratio, strict=True):
            if r is not None and r != round(r):
                return ("a whole number with stratify (blocks hold whole patients)",
                        ("design", "randomisation", arm.name))
        if None in ratio:
            return None  # reported below: a ratio for every analysed arm
        ratio = [round(r) for r in ratio]
        total, n = sum(ratio), sum(a.n for a in arms)
        for arm, r in zip(arms, ratio, strict=True):
            if arm.n * total != n * r:
                return ((f"arms whose n follow the ratio exactly with stratify (arm "
                         f"{arm.name!r} has n = {arm.n}, expected {n * r / total:.4g} of "
                         f"{n})"), ("design", "randomisation", arm.name))
    else:
        g = math.gcd(*(a.n for a in arms))
        ratio = [a.n // g for a in arms]
    if design.block_size is not None and design.block_size % sum(ratio):
        return f"a multiple of the ratio's sum ({sum(ratio)})", ("design", "block_size")
    return None


def _scale_times(design: Design, arm: "Arm"):
    """The arm's visits of the design's scale, listed, and a problem if it has none."""
    times = arm.times_of(design.scale)
    if not times:
        return times, "", ((f"a readout measured in every analysed arm (arm {arm.name!r} "
                            "runs no assay that reports it)"), ("design", "scale"))
    return times, ", ".join(format_time(t) for t in times), None


def _crossover_problem(design: Design, arms: list["Arm"]):
    """The first problem of a crossover design with the scenario's arms."""
    by_name = {arm.name: arm for arm in arms}
    cx = design.crossover
    analysed = [a for a in by_name if design.arms is None or a in design.arms]
    for name in cx.treatments:
        if name not in by_name:
            return (f"the name of an arm: {', '.join(by_name)}",
                    ("design", "crossover", "treatments", name))
    missing = [a for a in analysed if a not in cx.treatments]
    if missing:
        return ((f"a treatment sequence for every analysed arm (missing "
                f"{', '.join(map(repr, missing))})"), ("design", "crossover", "treatments"))
    labels = {t for seq in cx.treatments.values() for t in seq}
    if design.control not in labels:
        return (f"the reference treatment, one of {', '.join(sorted(labels))}",
                ("design", "control"))
    if len(labels) < 2:
        return ("at least two treatments", ("design", "crossover", "treatments"))
    if design.dropout is not None:
        return ("no dropout with a crossover (not supported yet)", ("design", "dropout"))
    if design.relapse is not None:
        return ("no relapse analysis with a crossover", ("design", "relapse"))
    if design.intercurrent is not None:
        return ("no intercurrent events with a crossover (not supported yet)",
                ("design", "intercurrent"))
    for k in range(1, len(cx.periods)):
        washout = (cx.periods[k] + design.baseline) - (cx.periods[k - 1] + design.primary)
        if washout < 0:
            return ((f"a period start that leaves a washout >= 0 after the previous "
                     f"period's primary visit (got {format_time(washout)})"),
                    ("design", "crossover", "periods", k))
    for name in analysed:
        times, listed, found = _scale_times(design, by_name[name])
        if found is not None:
            return found
        for start in cx.periods:
            for key in ("baseline", "primary"):
                if start + getattr(design, key) not in times:
                    return ((f"a time relative to each period start at which arm {name!r} "
                             f"measures {design.scale} (period at {format_time(start)}; "
                             f"visits: {listed})"), ("design", key))
    return _randomisation_problem(design, by_name, analysed)


def _population_problem(arm: "Arm", species: str):
    """(expected, path below the arm's population) or None."""
    pop = arm.population
    if pop is None:
        return None
    if species != "human":
        return ("no population block unless the species is human", ())
    if arm.body_weight is not None:
        return (("no population block together with the arm's body_weight (the population "
                 "draws each patient's weight)"), ())
    if pop.screening is not None:
        times = arm.times_of("madrs_total", "madrs")
        if pop.screening not in times:
            listed = ", ".join(format_time(t) for t in times) or "none"
            return (f"a visit of the arm's madrs assay (its visits: {listed})",
                    ("screening",))
        # every arm with a population: its screening visit before its own first dose. A
        # stratified trial's pool is screened once for all its analysed arms, which must
        # share this population, so the arm dosed first fails here: the visit comes
        # before the first dose of every arm of the design
        first = arm.first_dose_h
        if first is not None and pop.screening >= first:
            return ((f"a visit before the arm's first dose at {format_time(first)} (the "
                     "screening visit comes before any treatment)"), ("screening",))
    return None


class Scenario(BaseModel):
    """A complete in-silico experiment.

    Parameters
    ----------
    name : str
        Identifier-like.
    description : str
        Free text.
    species : {"mouse", "rat", "human"}
        Species simulated.
    seed : int
        Root random seed, ``0 <= seed < 2**63``.
    arms : list of Arm
        At least one, with distinct names.
    compare : list of Comparison
        Statistics to compute.
    targets : list of str
        Literature target IDs checked when the scenario is a validation replica.
    design : Design or None
        A clinical trial's design and analysis plan.
    """

    model_config = _CONFIG
    what: ClassVar[str] = "a scenario"

    name: Name = Field(description="the scenario's name")
    description: Annotated[str, BeforeValidator(_none_as_empty_text)] = Field(
        default="", strict=True, description="free text describing the scenario"
    )
    species: Literal["mouse", "rat", "human"] = Field(
        description="the species: 'mouse', 'rat' or 'human'"
    )
    seed: int = Field(
        strict=True,
        ge=0,
        lt=2**63,
        description="the random seed: an integer from 0 to 2**63 - 1",
    )
    arms: list[Arm] = Field(
        min_length=1, description="the arms of the experiment: a non-empty list of mappings"
    )
    compare: Annotated[list[Comparison], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list, description="the statistical comparisons: a list of mappings"
    )
    targets: Annotated[list[Name], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list,
        description="IDs of the literature targets this scenario checks when `ketasim "
        "validate` runs it as a replica of a published experiment",
    )
    design: Design | None = Field(
        default=None,
        description="a clinical trial's design and analysis plan (control arm, scale, "
        "baseline and primary visits, MMRM covariance and df, response and remission, "
        "randomisation, dropout); `ketasim run` then writes trial.csv, endpoints.csv and "
        "consort.csv",
    )

    @property
    def arm_names(self) -> tuple[str, ...]:
        """Names of the arms, in file order."""
        return tuple(arm.name for arm in self.arms)

    def arm(self, name: str) -> Arm:
        """Return the arm called ``name``.

        Raises
        ------
        KeyError
            If there is no such arm.
        """
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r}; arms: {', '.join(self.arm_names)}")

    @model_validator(mode="wrap")
    @classmethod
    def _with_species(cls, data: Any, handler):
        """Validate with the scenario's species known to its events (``_SPECIES``)."""
        species = data.get("species") if isinstance(data, dict) else None
        token = _SPECIES.set(species if isinstance(species, str) else None)
        try:
            return handler(data)
        finally:
            _SPECIES.reset(token)

    @model_validator(mode="after")
    def _check_scenario(self) -> "Scenario":
        index: dict[str, int] = {}
        for i, arm in enumerate(self.arms):
            if arm.name in index:
                raise problem(
                    f"a unique arm name ({arm.name!r} is already arms[{index[arm.name]}])",
                    ("arms", i, "name"),
                )
            index[arm.name] = i
        # an arm's random streams are keyed by its name's CRC32 (ketasim.core.streams):
        # two names with one key would draw the same numbers
        keys: dict[int, int] = {}
        for i, arm in enumerate(self.arms):
            k = arm_key(arm.name)
            if k in keys:
                raise problem(
                    f"another arm name: {arm.name!r} has the random-stream key (CRC32) of "
                    f"arms[{keys[k]}] {self.arms[keys[k]].name!r}, so both would draw the "
                    "same numbers",
                    ("arms", i, "name"),
                )
            keys[k] = i
        for c, comparison in enumerate(self.compare):
            for k, name in enumerate(comparison.arms):
                if name not in index:
                    raise problem(
                        f"the name of an arm: {', '.join(self.arm_names)}",
                        ("compare", c, "arms", k),
                    )
            for name in comparison.arms:
                arm = self.arms[index[name]]
                times = arm.times_of(comparison.readout, comparison.assay)
                if not times:
                    source = "no assay" if comparison.assay is None else f"no {comparison.assay}"
                    raise problem(
                        f"a readout measured in every compared arm (arm {name!r} runs "
                        f"{source} that reports it)",
                        ("compare", c, "readout"),
                    )
                if comparison.baseline is not None:
                    ends = sorted({
                        spec.assay for spec in arm.assays
                        if comparison.readout in vocabulary.ASSAYS.get(spec.assay, ())
                        and comparison.assay in (None, spec.assay)
                        and vocabulary.ASSAY_TERMINAL.get(spec.assay, False)})
                    if ends:
                        raise problem(
                            f"a readout of an assay that measures a subject repeatedly "
                            f"({', '.join(ends)} ends the animal or its tissue: each of its "
                            "times is other animals in a real study; name an in vivo assay "
                            "with assay: or leave baseline out)",
                            ("compare", c, "baseline"),
                        )
                for field in ("at", "baseline"):
                    when = getattr(comparison, field)
                    if when is not None and when not in times:
                        listed = ", ".join(format_time(t) for t in times)
                        raise problem(
                            f"a time at which arm {name!r} measures {comparison.readout}: "
                            f"{listed}",
                            ("compare", c, field),
                        )
        for i, arm in enumerate(self.arms):
            found = _population_problem(arm, self.species)
            if found is not None:
                raise problem(found[0], ("arms", i, "population", *found[1]))
        if self.design is not None:
            found = _design_problem(self.design, self.arms)
            if found is not None:
                raise problem(*found)
        for i, arm in enumerate(self.arms):
            for j, spec in enumerate(arm.assays):
                done_in = vocabulary.ASSAY_SPECIES.get(spec.assay, vocabulary.SPECIES)
                if self.species not in done_in:
                    raise problem(
                        f"an assay done in {self.species} subjects ({spec.assay} is done in "
                        f"{', '.join(done_in)})", ("arms", i, "assays", j, "assay"))
            # stressors and interventions exist for the species they are given to (the
            # events check it with the species known; events built in code, here)
            for ev in arm.protocol:
                found = _species_problem(ev, ("arms", i, "protocol"), self.species)
                if found is not None:
                    raise found
        return self
