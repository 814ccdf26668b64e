"""Strict parsing of the unit strings used in scenario files.

Scenario files carry every time, dose and body weight as a string with an
explicit unit (``"40min"``, ``"10 mg/kg"``, ``"25 g"``). This module turns
those strings into floats in the fixed internal units of the engines:

========  ==================  ======================================
quantity  accepted units      internal unit
========  ==================  ======================================
time      s, min, h, d, w     hours (float)
dose      mg/kg, ug/kg        mg/kg
dose      mg, ug, g           mg
dose      uM, nM, mM          uM (slice bath concentration)
mass      g, kg               kg (body weight)
========  ==================  ======================================

Bare numbers are rejected on purpose: a scenario that says ``at: 3`` could
mean hours or days, and the simulator must not guess.

Every parser raises :class:`UnitError` (a :class:`ValueError`) whose
``expected`` attribute is a short phrase describing what would have been
accepted; the scenario loader turns it into a one-line
:class:`~ketasim.scenario.ScenarioError`.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "DOSE_EXPECTED",
    "DOSE_PATTERN",
    "DOSE_UNITS",
    "MASS_EXPECTED",
    "MASS_PATTERN",
    "MAX_ABS_TIME_H",
    "MAX_DURATION_H",
    "TIME_EXPECTED",
    "TIME_PATTERN",
    "TIME_UNITS_H",
    "UnitError",
    "format_time",
    "parse_dose",
    "parse_duration",
    "parse_mass_kg",
    "parse_time",
]

#: Hours per unit of each accepted time unit (exact ratios).
TIME_UNITS_H: dict[str, Fraction] = {
    "s": Fraction(1, 3600),
    "min": Fraction(1, 60),
    "h": Fraction(1),
    "d": Fraction(24),
    "w": Fraction(168),
}

#: Largest accepted ``abs(time)``, in hours (365 days either side of time 0).
MAX_ABS_TIME_H: float = 365.0 * 24.0

# The patterns are written so that Python's ``re`` (with re.ASCII) and the
# ECMA-262 dialect used by JSON Schema editors accept exactly the same strings: the
# space between number and unit is a plain space or a tab (``\s`` would take a
# no-break or thin space in ECMA-262 but not in Python's ASCII mode).
#: Regular expression for a time string (also used in the JSON Schema).
TIME_PATTERN = r"^-?[0-9]+(\.[0-9]+)?[ \t]*(s|min|h|d|w)$"
#: Regular expression for a dose string (also used in the JSON Schema).
DOSE_PATTERN = r"^[0-9]+(\.[0-9]+)?[ \t]*(mg/kg|ug/kg|mg|ug|g|uM|nM|mM)$"
#: Regular expression for a body-weight string (also used in the JSON Schema).
MASS_PATTERN = r"^[0-9]+(\.[0-9]+)?[ \t]*(g|kg)$"

_TIME_RE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)[ \t]*(s|min|h|d|w)", re.ASCII)
_DOSE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*(mg/kg|ug/kg|mg|ug|g|uM|nM|mM)", re.ASCII)
_NEG_DOSE_RE = re.compile(r"[ \t]*-[ \t]*(.*)", re.ASCII | re.DOTALL)
_MASS_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*(g|kg)", re.ASCII)

#: What a time string looks like, phrased as the ``expected`` part of an error.
TIME_EXPECTED = "a time with units, e.g. '40min', '3h', '-10d' (units: s, min, h, d, w)"
#: What a duration string looks like.
DURATION_EXPECTED = "a positive duration with units, e.g. '40min', '3h', '10d'"
#: Longest accepted duration, in hours: the whole span from -365 d to 365 d. Where
#: an event ends (``at`` + duration) is checked against :data:`MAX_ABS_TIME_H` by
#: the event itself.
MAX_DURATION_H: float = 2.0 * MAX_ABS_TIME_H
#: Range of accepted durations.
DURATION_RANGE_EXPECTED = (
    "a duration of at most 730 days (an event runs between '-365d' and '365d')"
)
#: Range of accepted times.
TIME_RANGE_EXPECTED = "a time within 365 days of time 0 (from '-365d' to '365d')"
#: What a dose string looks like.
DOSE_EXPECTED = (
    "a dose with units, e.g. '10 mg/kg', '56 mg', '10 uM' "
    "(units: mg/kg, ug/kg, mg, ug, g, uM, nM, mM)"
)
#: What a body-weight string looks like.
MASS_EXPECTED = "a positive body weight with units, e.g. '25 g', '70 kg'"

#: Accepted dose units -> (canonical unit, exact factor to the canonical unit).
DOSE_UNITS: dict[str, tuple[str, Fraction]] = {
    "mg/kg": ("mg/kg", Fraction(1)),
    "ug/kg": ("mg/kg", Fraction(1, 1000)),
    "mg": ("mg", Fraction(1)),
    "ug": ("mg", Fraction(1, 1000)),
    "g": ("mg", Fraction(1000)),
    "uM": ("uM", Fraction(1)),
    "nM": ("uM", Fraction(1, 1000)),
    "mM": ("uM", Fraction(1000)),
}

# Most digits of a number's integer part (leading zeros aside) accepted in a unit
# string; larger numbers are rejected rather than parsed (they are never meant, and
# huge integers are slow to convert). A number's whole text is bounded too, long
# enough for any float written out in full (format_time).
_MAX_NUMBER_CHARS = 40
_MAX_NUMBER_TEXT = 400


class UnitError(ValueError):
    """A unit string that does not parse.

    Parameters
    ----------
    expected : str
        What would have been accepted, phrased to follow the word "expected".
    """

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _scale(number: str, factor: Fraction) -> float:
    """Return ``number * factor`` rounded once to the nearest float.

    Working with exact ratios means that equal quantities written in
    different units give the same float: ``"0.1d"`` and ``"2.4h"`` are both
    ``2.4``, ``"40min"`` and ``"2400s"`` are both ``40 / 60``. Comparisons
    between times (a comparison ``at`` against an assay's times) rely on it.
    """
    digits = number.lstrip("-").split(".")[0].lstrip("0")
    if len(digits) > _MAX_NUMBER_CHARS:  # the value's size, not its spelling, counts
        return math.inf
    if len(number) > _MAX_NUMBER_TEXT:
        raise UnitError(f"a number of at most {_MAX_NUMBER_TEXT} characters")
    return float(Fraction(number) * factor)


def parse_time(text: object) -> float:
    """Parse a time string into hours.

    Parameters
    ----------
    text : object
        A string such as ``"40min"``, ``"3h"``, ``"-10d"`` or ``"1.5 h"``.
        Numbers without units (including YAML numbers) are rejected.

    Returns
    -------
    float
        The time in hours, within :data:`MAX_ABS_TIME_H` of zero.

    Raises
    ------
    UnitError
        If the value is not a string with a known unit, or lies more than
        365 days from time 0.
    """
    if not isinstance(text, str):
        raise UnitError(TIME_EXPECTED)
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise UnitError(TIME_EXPECTED)
    number, unit = match.groups()
    hours = _scale(number, TIME_UNITS_H[unit])
    if not math.isfinite(hours) or abs(hours) > MAX_ABS_TIME_H:
        raise UnitError(TIME_RANGE_EXPECTED)
    return hours


def parse_duration(text: object) -> float:
    """Parse a strictly positive duration string into hours.

    Parameters
    ----------
    text : object
        A time string as accepted by :func:`parse_time`.

    Returns
    -------
    float
        The duration in hours, ``> 0`` and at most :data:`MAX_DURATION_H` (730 days).

    Raises
    ------
    UnitError
        If the value is not a time string with units, is not positive, or is longer
        than 730 days.
    """
    # Not parse_time: a duration is a length, not a time point, so its limit is the
    # whole -365 d .. 365 d span; where the event ends is checked by the event.
    if not isinstance(text, str):
        raise UnitError(DURATION_EXPECTED)
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise UnitError(DURATION_EXPECTED)
    number, unit = match.groups()
    hours = _scale(number, TIME_UNITS_H[unit])
    if hours <= 0.0:
        raise UnitError(DURATION_EXPECTED)
    if not math.isfinite(hours) or hours > MAX_DURATION_H:
        raise UnitError(DURATION_RANGE_EXPECTED)
    return hours


def parse_dose(text: object) -> tuple[float, str]:
    """Parse a dose string into a value in canonical units.

    Parameters
    ----------
    text : object
        A string such as ``"10 mg/kg"``, ``"500 ug/kg"``, ``"56 mg"`` or
        ``"10 uM"``. Zero is accepted here (a vehicle may carry a zero dose);
        whether zero makes sense is decided by the drug event.

    Returns
    -------
    value : float
        The dose, ``>= 0``, in the canonical unit.
    unit : str
        ``"mg/kg"``, ``"mg"`` or ``"uM"``.

    Raises
    ------
    UnitError
        If the value is not a string with a known unit, or is negative.
    """
    if not isinstance(text, str):
        raise UnitError(DOSE_EXPECTED)
    match = _DOSE_RE.fullmatch(text)
    if match is None:
        negative = _NEG_DOSE_RE.fullmatch(text)
        if negative is not None and _DOSE_RE.fullmatch(negative.group(1)):
            raise UnitError("a positive dose")
        raise UnitError(DOSE_EXPECTED)
    number, unit = match.groups()
    canonical, factor = DOSE_UNITS[unit]
    value = _scale(number, factor)
    if not math.isfinite(value):
        raise UnitError("a finite dose")
    return value, canonical


def parse_mass_kg(text: object) -> float:
    """Parse a body-weight string into kilograms.

    Parameters
    ----------
    text : object
        A string such as ``"25 g"`` or ``"70 kg"``.

    Returns
    -------
    float
        The mass in kg, ``> 0``.

    Raises
    ------
    UnitError
        If the value is not a positive mass with unit ``g`` or ``kg``.
    """
    if not isinstance(text, str):
        raise UnitError(MASS_EXPECTED)
    match = _MASS_RE.fullmatch(text)
    if match is None:
        raise UnitError(MASS_EXPECTED)
    number, unit = match.groups()
    kg = _scale(number, Fraction(1, 1000) if unit == "g" else Fraction(1))
    if not (math.isfinite(kg) and kg > 0.0):
        raise UnitError(MASS_EXPECTED)
    return kg


def format_time(hours: float) -> str:
    """Format hours as a time string that :func:`parse_time` reads back exactly.

    The largest unit that expresses the value as a whole number is used
    (``240.0 -> "10d"``, ``0.5 -> "30min"``, ``40 / 60 -> "40min"``); other
    values are written in hours with as many decimals as needed.

    Parameters
    ----------
    hours : float
        A finite time in hours.

    Returns
    -------
    str
        For example ``"3h"``, ``"-10d"``, ``"40min"`` or ``"1.25h"``.
    """
    if not math.isfinite(hours):
        raise ValueError(f"cannot format non-finite time {hours!r}")
    for unit in ("w", "d", "h", "min", "s"):
        count = round(hours / float(TIME_UNITS_H[unit]))
        if count != 0 and _scale(str(count), TIME_UNITS_H[unit]) == hours:
            return f"{count}{unit}"
    if hours == 0.0:
        return "0h"
    text = format(Decimal(repr(hours)), "f")
    return f"{text}h"
