"""What moved between two validations: each target's status and simulated value in an
earlier ``validation.csv`` (``ketasim validate --against DIR``) beside this one's.

Tables in, tables out: the caller reads the files. A target counts as

- ``status`` when its verdict changed (pass, fail, known gap, error);
- ``value`` when only its simulated value moved (by more than ``VALUE_RTOL`` of the
  larger magnitude, or when one of the two is missing and the other is not);
- ``same`` otherwise;
- ``new`` when the earlier validation did not run it.

Targets the earlier validation ran and this one did not (``--only``) are left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: columns of ``comparison.csv`` (``ketasim validate --against``)
COMPARISON_COLUMNS = ["target_id", "role", "quantity", "tolerance", "change", "status_before",
                      "status", "simulated_before", "simulated", "relative_change"]
#: a simulated value moved when it differs by more than this share of the larger magnitude
#: (floating-point noise of the same arithmetic stays far below it)
VALUE_RTOL = 1e-9
#: the columns an earlier validation.csv must have
REQUIRED = ("target_id", "status", "simulated")


class ComparisonError(ValueError):
    """An earlier validation table cannot be compared."""


def check_baseline(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """``table`` (an earlier validation.csv) with the columns a comparison reads; else one
    :class:`ComparisonError` naming ``where`` and what is missing."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ComparisonError(f"{where}: not a validation table (missing columns "
                              f"{', '.join(missing)}); expected the validation.csv that "
                              "ketasim validate writes")
    dup = table["target_id"][table["target_id"].duplicated()]
    if len(dup):
        raise ComparisonError(f"{where}: target {dup.iloc[0]!r} appears twice")
    return table


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def relative_change(before, after) -> float:
    """(after - before) / max(|before|, |after|); 0 when both are equal (or both
    missing), NaN when only one is missing."""
    b, a = _number(before), _number(after)
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.nan
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else (a - b) / scale


def compare_validations(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per target of ``after`` (:data:`COMPARISON_COLUMNS`), in ``after``'s order."""
    check_baseline(before, "the earlier validation")
    prev = before.set_index("target_id")
    rows = []
    for r in after.itertuples(index=False):
        tid = r.target_id
        if tid in prev.index:
            old = prev.loc[tid]
            rel = relative_change(old["simulated"], r.simulated)
            if str(old["status"]) != str(r.status):
                change = "status"
            elif math.isnan(rel) or abs(rel) > VALUE_RTOL:
                change = "value"
            else:
                change = "same"
            sb, stb = old["simulated"], str(old["status"])
        else:
            rel, change, sb, stb = math.nan, "new", math.nan, ""
        rows.append([tid, getattr(r, "role", ""), getattr(r, "quantity", ""),
                     getattr(r, "tolerance", ""), change, stb, r.status, _number(sb),
                     _number(r.simulated), rel])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def comparison_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many targets fall in each kind of change (status, value, same, new)."""
    return {k: int(np.sum(table["change"] == k)) for k in ("status", "value", "same", "new")}
