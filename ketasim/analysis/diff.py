"""What moved against an earlier run: each target's status and simulated value in an
earlier ``validation.csv`` beside this one's (``ketasim validate --against DIR``), and each
summary row's mean in an earlier run's ``summary.csv`` beside this run's (``ketasim run
--against DIR``).

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

#: the region of a run that has no region column: ketasim.core.regions.DEFAULT_REGION
#: (analysis imports no other layer; tests/test_review_outputs.py checks they agree)
DEFAULT_REGION = "mpfc"

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


def _relative_changes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """:func:`relative_change` element by element, for arrays of floats."""
    scale = np.maximum(np.abs(before), np.abs(after))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(scale == 0, 0.0, (after - before) / scale)
    both = np.isnan(before) & np.isnan(after)
    return np.where(both, 0.0, out)


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


# ------------------------------------------------------------------ runs (run --against)

#: the columns that name a row of a run's summary.csv (``region`` when present)
SUMMARY_KEYS = ("arm", "assay", "readout", "time_h")
#: columns of ``comparison.csv`` (``ketasim run --against``)
RUN_COMPARISON_COLUMNS = [*SUMMARY_KEYS, "unit", "n_before", "mean_before", "sem_before", "n",
                          "mean", "sem", "difference", "relative_change", "z", "change"]
#: the columns an earlier run's summary.csv must have
RUN_REQUIRED = (*SUMMARY_KEYS, "unit", "n", "mean", "sem")


def check_summary(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """``table`` (an earlier run's summary.csv) with the columns a comparison reads; else
    one :class:`ComparisonError` naming ``where``."""
    missing = [c for c in RUN_REQUIRED if c not in table.columns]
    if missing:
        raise ComparisonError(f"{where}: not a run summary (missing columns "
                              f"{', '.join(missing)}); expected the summary.csv that "
                              "ketasim run writes")
    return table


def compare_summaries(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per row of ``after`` (a run's summary, :data:`RUN_COMPARISON_COLUMNS`, in
    ``after``'s order; ``region`` added to the keys when either has it): its mean beside
    the earlier run's, the difference, the relative change and ``z``, the difference over
    the two means' combined SEM (NaN when both SEMs are 0 or missing, unless the means are
    equal: 0). ``change``: ``value`` (moved by more than :data:`VALUE_RTOL`), ``same`` or
    ``new`` (no such row in the earlier run)."""
    check_summary(before, "the earlier run")
    keys = list(SUMMARY_KEYS) + (["region"] if "region" in before.columns
                                 or "region" in after.columns else [])
    b = before.reindex(columns=[*keys, "n", "mean", "sem"]).copy()
    a = after.copy()
    for frame in (a, b):
        if "region" in keys:  # a run without the column measured the default region
            frame["region"] = frame.get(
                "region", pd.Series(DEFAULT_REGION, index=frame.index)).fillna(DEFAULT_REGION)
    # times match to 1e-9 h: a time read back from a CSV may differ in the last bit
    on = [k if k != "time_h" else "_t" for k in keys]
    for frame in (a, b):
        frame["_t"] = frame["time_h"].astype(float).round(9)
    if b.duplicated(on).any():
        raise ComparisonError("the earlier run: a summary row appears twice")
    b = b.drop(columns=["time_h"]).rename(
        columns={"n": "n_before", "mean": "mean_before", "sem": "sem_before"})
    m = a.merge(b, on=on, how="left", indicator=True, validate="one_to_one")
    mean_a, mean_b = m["mean"].astype(float), m["mean_before"].astype(float)
    m["difference"] = mean_a - mean_b
    m["relative_change"] = _relative_changes(mean_b.to_numpy(), mean_a.to_numpy())
    se = np.sqrt(m["sem"].astype(float) ** 2 + m["sem_before"].astype(float) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = m["difference"] / se
    m["z"] = np.where((se == 0) & (m["difference"] == 0), 0.0,
                      np.where(se > 0, z, np.nan))
    moved = m["relative_change"].isna() | (m["relative_change"].abs() > VALUE_RTOL)
    m["change"] = np.where(m["_merge"] == "left_only", "new",
                           np.where(moved, "value", "same"))
    cols = [*keys, *RUN_COMPARISON_COLUMNS[len(SUMMARY_KEYS):]]
    return m[cols]
