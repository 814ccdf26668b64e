"""A validation target's tolerance: ``[lo, hi]``, ``< x``, ``<= x``, ``> x`` or ``>= x``.

Parsed once here, below the layers that read it: the validation reads a target's
tolerance from the targets file and the reports draw it from the validation table."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_TOL = re.compile(r"^\s*(?:\[\s*(?P<lo>[-+0-9.eE]+)\s*,\s*(?P<hi>[-+0-9.eE]+)\s*\]|"
                  r"(?P<op><=|>=|<|>)\s*(?P<x>[-+0-9.eE]+))\s*$")


#: a target's quantity that is a p-value ("(one-sided Welch t, p)", "(permutation p, ...)")
_P_VALUE = re.compile(r"[ (]p[),]|\bp-value")


def is_p_value(quantity: str) -> bool:
    """Whether a target's quantity text names a p-value: the reports draw it on a log
    axis, and its expectation has no standard error (a p-value at many times the group
    sizes asks only whether the effect is there)."""
    return bool(_P_VALUE.search(str(quantity)))


class ToleranceError(ValueError):
    """A tolerance that is not one of the five forms."""


@dataclass(frozen=True)
class Tolerance:
    """Bounds (infinite on an open side) and whether each excludes its value."""

    text: str
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    @staticmethod
    def parse(text: str) -> Tolerance:
        m = _TOL.match(str(text))
        if not m:
            raise ToleranceError(f"tolerance {text!r}: expected '[lo, hi]', '< x', '<= x', "
                                 "'> x' or '>= x'")
        try:
            if m.group("lo") is not None:
                lo, hi = float(m.group("lo")), float(m.group("hi"))
            else:
                x, op = float(m.group("x")), m.group("op")
        except ValueError:  # the pattern admits '1.2.3'
            raise ToleranceError(f"tolerance {text!r}: a bound is not a number") from None
        bounds = (lo, hi) if m.group("lo") is not None else (x,)
        if not all(math.isfinite(b) for b in bounds):  # '1e999' reads as inf
            raise ToleranceError(f"tolerance {text!r}: a bound is not a finite number")
        if m.group("lo") is not None:
            if not lo <= hi:
                raise ToleranceError(f"tolerance {text!r}: lower bound above upper bound")
            return Tolerance(str(text), lo, hi)
        if op in ("<", "<="):
            return Tolerance(str(text), -math.inf, x, high_open=(op == "<"))
        return Tolerance(str(text), x, math.inf, low_open=(op == ">"))

    def distance(self, v: float) -> float:
        """How far ``v`` lies from the nearest finite bound (0 on it; NaN for NaN)."""
        if math.isnan(v):
            return math.nan
        return min(abs(v - b) for b in (self.low, self.high) if math.isfinite(b))

    def contains(self, v: float) -> bool:
        # an infinite value lies beyond any finite bound, on either side alike ('> x'
        # holds +inf, '< x' holds -inf, '[lo, hi]' neither); NaN nowhere
        if math.isnan(v):
            return False
        lo_ok = v > self.low if self.low_open else v >= self.low
        hi_ok = v < self.high if self.high_open else v <= self.high
        return lo_ok and hi_ok
