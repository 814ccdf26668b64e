"""Per-segment spine tables: a strict reader and the statistics labs compute on them.

Many two-photon studies publish spines per dendritic segment rather than per spine: the
spine count, segment length and density of each segment at each imaging session; the
formation and elimination rates of each segment over each interval between sessions; how
many spines of a cohort of new spines survive to later sessions; and one row per mouse.
This module reads that layout (four tables, documented in ``docs/phoumthipphavong2016.md``
and, for the deposited dataset of Phoumthipphavong et al. 2016, eNeuro 3:ENEURO.0133-15.2016,
in its README) and computes the statistics such studies report:

- readers :func:`read_segments`, :func:`read_turnover`, :func:`read_persistence`,
  :func:`read_mice` and :func:`read_dataset` (a folder of the four), each raising one
  :class:`SegmentDataError` line naming the file, the column and the row;
- the segment masks (:func:`add_masks`: damage mask, long-term set);
- change from the mouse's baseline in density (:func:`density_change`,
  :func:`density_change_summary`), formation and elimination
  (:func:`turnover_change`, :func:`turnover_change_summary`), raw rates
  (:func:`turnover_rates`), length (:func:`length_change`), the up/down chi-square
  (:func:`up_down_test`), persistence of a new-spine cohort
  (:func:`persistence_summary`, :func:`new_spine_summary`), set sizes and baselines
  (:func:`segment_set_sizes`, :func:`baseline_summary`);
- a linear mixed model with segments nested in mice (:func:`density_mixed_model`) beside
  the segment-level analysis that treats every segment as independent;
- :func:`deposited_checks`, every number of the dataset README's checks table.

Identifiers: a mouse is ``(group, mouse)`` (one label may occur in two groups), a segment
``(group, mouse, segment)``; ids are strings (integers written without a decimal point).

Summaries follow the convention of the authors' MATLAB script: mean over the segments with
a value, ``SEM = SD (ddof 1, over those segments) / sqrt(n_set)`` where ``n_set`` is the
number of segments in the analysed set, counting segments without a value that day
(``sem="standard"`` divides by the number with a value instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erfc, sqrt
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ketasim.analysis import spines as _spines
from ketasim.analysis import tracking as _tracking
from ketasim.analysis._tables import (
    SUFFIXES,
    Source,
    first_true,
    is_integral,
    load_table,
    parse_bools,
    parse_ids,
    short,
)

__all__ = [
    "ELIMINATION_MAX_PCT",
    "MICE_COLUMNS",
    "MICE_OPTIONAL",
    "PERSISTENCE_COLUMNS",
    "PERSISTENCE_OPTIONAL",
    "RATE_MAX_PCT",
    "SEGMENT_COLUMNS",
    "SEGMENT_KEY",
    "SEGMENT_OPTIONAL",
    "TURNOVER_COLUMNS",
    "TURNOVER_OPTIONAL",
    "DensityMixedModel",
    "SegmentDataError",
    "SegmentDataset",
    "add_masks",
    "baseline_summary",
    "density_change",
    "density_change_summary",
    "density_mixed_model",
    "deposited_checks",
    "from_tracking",
    "length_change",
    "new_spine_summary",
    "persistence_summary",
    "read_dataset",
    "read_mice",
    "read_persistence",
    "read_segments",
    "read_turnover",
    "segment_set_sizes",
    "turnover_change",
    "turnover_change_summary",
    "turnover_rates",
    "up_down_test",
]

MOUSE_KEY = ["group", "mouse"]
SEGMENT_KEY = ["group", "mouse", "segment"]

SEGMENT_COLUMNS = ("group", "mouse", "segment", "session", "day", "spine_count", "length_um",
                   "density_per_um")
SEGMENT_OPTIONAL = ("damaged", "included", "long_term")
TURNOVER_COLUMNS = ("group", "mouse", "segment", "interval", "day_start", "day_end",
                    "formation_pct", "elimination_pct")
TURNOVER_OPTIONAL = ("included", "long_term")
PERSISTENCE_COLUMNS = ("group", "block", "row", "cohort_day", "followup_day", "new_spines",
                       "surviving")
PERSISTENCE_OPTIONAL = ("mouse", "segment")
MICE_COLUMNS = ("group", "mouse")
MICE_OPTIONAL = ("mouse_index", "label", "sex", "age_at_surgery_pnd",
                 "age_at_first_imaging_pnd", "imaging_duration_min")

# A rate is new (or lost) spines as % of the count at the interval's start; 100 % is not
# a ceiling (a segment can gain more spines than it had) but 1000 % (10x) is a typo.
RATE_MAX_PCT = 1000.0
# An elimination rate is lost spines as % of those present at the start: at most 100 %.
ELIMINATION_MAX_PCT = 100.0
# The authors' damage mask: a segment is dropped when damaged on any of sessions 1-5
# (spine_summary.m, Phoumthipphavong et al. 2016).
DAMAGE_SESSIONS = 5
# The authors' long-term set: a formation rate in an interval starting on day >= 3
# (intervals 3->5, 5->10, 10->15 of that study).
LONG_TERM_FROM_DAY = 3.0

_MAX_WHOLE = 2.0 ** 53  # whole numbers above this are not exact in float64

SegmentSet = Literal["included", "long_term", "all"]
SemConvention = Literal["script", "standard"]


class SegmentDataError(ValueError):
    """A per-segment table that cannot be read or breaks the format (one-line message)."""


class _Source(Source):
    """Where a per-segment table came from (file, column, row) for error messages."""

    error = SegmentDataError

    def fail(self, column: str | None, pos: int | None, what: str,
             value: object = None) -> SegmentDataError:
        return self.locate(column, pos, what=what, value=value)


# --------------------------------------------------------------------------- parsing


def _load(obj, required: tuple[str, ...], optional: tuple[str, ...], fmt: str
          ) -> tuple[pd.DataFrame, _Source]:
    """Read a table; check its columns (required present, nothing undocumented) and rows."""
    df, src = load_table(obj, _Source)
    cols = list(df.columns)
    repeated = sorted({c for c in cols if cols.count(c) > 1})
    if repeated:
        raise src.fail(None, None, "repeated column name(s) "
                       + ", ".join(f"'{c}'" for c in repeated))
    missing = [c for c in required if c not in cols]
    if missing:
        raise src.fail(None, None, "missing required column(s) "
                       + ", ".join(f"'{c}'" for c in missing)
                       + f" ({fmt} needs " + ", ".join(required) + ")")
    extra = [c for c in cols if c not in required and c not in optional]
    if extra:
        allowed = ", ".join(optional) if optional else "none"
        raise src.fail(None, None, "unexpected column(s) "
                       + ", ".join(f"'{c}'" for c in extra)
                       + f" (optional columns of {fmt}: {allowed})")
    if len(df) == 0:
        raise src.fail(None, None, "no data rows")
    return df, src


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return isinstance(v, str) and not v.strip()


def _as_float(v: object) -> float | None:
    """A plain number or numeric text as float; None for anything else."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        try:
            return float(v)
        except OverflowError:
            return None
    if isinstance(v, str):
        text = v.strip()
        if "_" in text:  # float() accepts 1_000; a table cell should not
            return None
        try:
            return float(text)
        except (ValueError, OverflowError):
            return None
    return None


def _numbers(df: pd.DataFrame, col: str, src: _Source, *, missing_ok: bool = False,
             integer: bool = False, lo: float | None = None, lo_open: bool = False,
             hi: float | None = None) -> np.ndarray:
    """A number column as float64 (NaN where missing and allowed), range-checked."""
    values = df[col].to_numpy(dtype=object)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if _is_missing(v):
            if not missing_ok:
                raise src.fail(col, i, "missing value (required)")
            continue
        x = _as_float(v)
        if x is None or not np.isfinite(x):
            raise src.fail(col, i, "expected a finite number", v)
        if integer and not x.is_integer():
            raise src.fail(col, i, "expected a whole number", v)
        if integer and abs(x) > _MAX_WHOLE:
            raise src.fail(col, i, "expected a whole number of at most 2**53", v)
        if lo is not None and (x < lo or (lo_open and x == lo)):
            raise src.fail(col, i, f"expected a number {'>' if lo_open else '>='} {lo:g}", v)
        if hi is not None and x > hi:
            raise src.fail(col, i, f"expected a number <= {hi:g}", v)
        out[i] = x
    return out


def _required_ids(df: pd.DataFrame, col: str, src: _Source) -> np.ndarray:
    values = df[col].to_numpy(dtype=object)
    for i, v in enumerate(values):
        if _is_missing(v):
            raise src.fail(col, i, "missing value (required)")
    return parse_ids(values, col, src)


def _required_bools(df: pd.DataFrame, col: str, src: _Source) -> np.ndarray:
    values = df[col].to_numpy(dtype=object)
    for i, v in enumerate(values):
        if _is_missing(v):
            raise src.fail(col, i, "missing value (expected true/false)")
    return parse_bools(pd.Series(values, dtype=object), col, src)


def _text(df: pd.DataFrame, col: str, src: _Source) -> np.ndarray:
    """A free-text column: strings (stripped) or integers; NaN where empty."""
    values = df[col].to_numpy(dtype=object)
    out = np.full(len(values), np.nan, dtype=object)
    for i, v in enumerate(values):
        if _is_missing(v):
            continue
        if isinstance(v, str):
            out[i] = v.strip()
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out[i] = str(int(v))
        else:
            raise src.fail(col, i, "expected text", v)
    return out


def _row_of(src: _Source, pos: int) -> str:
    """How an error names another row of the same table."""
    row = int(src.rows[pos]) if src.rows is not None else pos + 1
    return f"row {row} (line {row + 1})" if src.csv else f"row {row}"


def _describe(t: pd.DataFrame, pos: int, cols: list[str]) -> str:
    return ", ".join(f"{c} {short(t[c].iat[pos])}" for c in cols)


def _no_duplicates(t: pd.DataFrame, key: list[str], src: _Source, column: str, what: str,
                   also: str | None = None) -> None:
    dup = t.duplicated(key, keep="first").to_numpy()
    i = first_true(dup)
    if i is None:
        return
    same = (t[key] == t[key].iloc[i]).all(axis=1).to_numpy()
    j = first_true(same)
    extra = ""
    if also is not None:
        a, b = t[also].iat[j], t[also].iat[i]
        if not (pd.isna(a) and pd.isna(b)) and a != b:
            extra = f", with a different {also} ({a:g} there, {b:g} here)"
    raise src.fail(column, i, f"duplicate {what} ({_describe(t, i, key)}), already in "
                   f"{_row_of(src, j)}{extra}")


def _constant_within(t: pd.DataFrame, key: list[str], col: str, src: _Source,
                     what: str) -> None:
    """The first row whose ``col`` differs from the first row of its ``key`` group."""
    first = t.groupby(key, sort=False)[col].transform("first")
    differ = (t[col] != first) & ~(t[col].isna() & first.isna())
    i = first_true(differ.to_numpy())
    if i is not None:
        same = (t[key] == t[key].iloc[i]).all(axis=1).to_numpy()
        raise src.fail(col, i, f"expected the same {col} in every row of {what} "
                       f"({_describe(t, i, key)}; {short(first.iat[i])} in "
                       f"{_row_of(src, first_true(same))})", t[col].iat[i])


def _check_order(t: pd.DataFrame, key: list[str], order_col: str, start: str, end: str,
                 src: _Source, what: str) -> None:
    """Within each ``key`` group, ordered by ``order_col``, ``start`` of each row is not
    before ``end`` of the previous row and ``end`` increases (days run forward)."""
    pos = np.arange(len(t))
    codes = t.groupby(key, sort=False).ngroup().to_numpy()
    order = np.lexsort((t[order_col].to_numpy(), codes))
    c, s, e, p = codes[order], t[start].to_numpy()[order], t[end].to_numpy()[order], pos[order]
    same = c[1:] == c[:-1]
    bad = same & ((s[1:] < e[:-1]) | (e[1:] <= e[:-1]))
    k = first_true(bad)
    if k is None:
        return
    i, j = int(p[k + 1]), int(p[k])
    if start == end:
        verb = "repeats" if s[k + 1] == e[k] else "comes before"
        msg = (f"{what}: {order_col} {short(t[order_col].iat[i])} is on day {s[k + 1]:g}, "
               f"which {verb} day {e[k]:g} of {order_col} {short(t[order_col].iat[j])} "
               f"in {_row_of(src, j)}; days must increase with {order_col}")
    else:
        msg = (f"{what}: {order_col} {short(t[order_col].iat[i])} ({start} {s[k + 1]:g}, "
               f"{end} {e[k + 1]:g}) overlaps or precedes {order_col} "
               f"{short(t[order_col].iat[j])} ({start} {s[k]:g}, {end} {e[k]:g}) in "
               f"{_row_of(src, j)}; intervals must follow one another")
    raise src.fail(start, i, msg)


def _check_known_mice(t: pd.DataFrame, mice: pd.DataFrame | None, src: _Source,
                      with_mouse: bool = True) -> None:
    """Every group (and (group, mouse)) of ``t`` is in the mouse table."""
    if mice is None:
        return
    name = mice.attrs.get("source", "the mouse table")
    mg, mm = _id_text(mice["group"]), _id_text(mice["mouse"])  # also an unread table
    groups = set(mg)
    known = set(zip(mg, mm, strict=True))
    g = t["group"].to_numpy(dtype=object)
    i = first_true(~np.isin(g, list(groups)))
    if i is not None:
        raise src.fail("group", i, f"group {g[i]!r} is not a group of {name} (groups: "
                       + ", ".join(sorted(groups)) + ")")
    if with_mouse:
        m = t["mouse"].to_numpy(dtype=object)
        bad = np.array([(a, b) not in known for a, b in zip(g, m, strict=True)])
        i = first_true(bad)
        if i is not None:
            raise src.fail("mouse", i, f"mouse {m[i]!r} of group {g[i]!r} is not in {name}")


def _id_text(values) -> list[str]:
    return [str(int(v)) if is_integral(v) else str(v).strip() for v in values]


def _finish(t: pd.DataFrame, src: _Source, key: list[str], order_col: str) -> pd.DataFrame:
    """Rows grouped by ``key`` in order of first appearance, sorted by ``order_col``."""
    codes = t.groupby(key, sort=False).ngroup().to_numpy()
    order = np.lexsort((t[order_col].to_numpy(), codes))
    out = t.iloc[order].reset_index(drop=True)
    out.attrs["source"] = src.name
    return out


# --------------------------------------------------------------------------- readers


def read_segments(path_or_df: str | Path | pd.DataFrame, *,
                  mice: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read and validate a per-segment table: one row per segment per imaging session.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        A ``.csv`` (``.csv.gz``) or ``.parquet`` (``.pq``) file, or a DataFrame. Columns
        ``group, mouse, segment`` (ids), ``session`` (whole number >= 1), ``day`` (days
        from the treatment), ``spine_count`` (whole number >= 0), ``length_um`` (> 0),
        ``density_per_um`` (>= 0); optional ``damaged`` (0/1, default 0), ``included``
        and ``long_term`` (booleans, the same in every row of a segment). No other
        column is accepted.
    mice : pandas.DataFrame, optional
        A table from :func:`read_mice`; every (group, mouse) must be in it.

    Returns
    -------
    pandas.DataFrame
        The columns above (ids as str, ``session`` and ``damaged`` int64, the rest
        float64, masks bool; ``damaged`` = 0 and ``included`` from the damage rule of
        :func:`add_masks` when not given), rows of one segment together, by session.

    Raises
    ------
    SegmentDataError
        One line naming the file, column and first offending row (1-based data row; for
        CSV also the file line). Empty cells mean the segment was not imaged or not
        scored: ``spine_count`` and ``density_per_um`` are empty together, and
        ``length_um`` may be empty on its own (dendrite lost or damaged). Errors:
        missing or unexpected columns; missing ids, sessions or days; non-numeric,
        non-finite, negative or fractional counts, non-positive lengths, negative
        densities; a count without a density or the reverse; two rows for one
        (group, mouse, segment, session); days that do not increase with the session
        within a segment; one session on two different days within a group; masks that
        change within a segment; a (group, mouse) not in ``mice``.
    """
    df, src = _load(path_or_df, SEGMENT_COLUMNS, SEGMENT_OPTIONAL, "a segment table")
    t = pd.DataFrame(index=df.index)
    for col in ("group", "mouse", "segment"):
        t[col] = _required_ids(df, col, src)
    t["session"] = _numbers(df, "session", src, integer=True, lo=1).astype(np.int64)
    t["day"] = _numbers(df, "day", src)
    t["spine_count"] = _numbers(df, "spine_count", src, missing_ok=True, integer=True, lo=0)
    t["length_um"] = _numbers(df, "length_um", src, missing_ok=True, lo=0, lo_open=True)
    t["density_per_um"] = _numbers(df, "density_per_um", src, missing_ok=True, lo=0)
    if "damaged" in df.columns:
        t["damaged"] = _numbers(df, "damaged", src, integer=True, lo=0, hi=1).astype(np.int64)
    else:
        t["damaged"] = np.zeros(len(df), dtype=np.int64)
    for col in ("included", "long_term"):
        if col in df.columns:
            t[col] = _required_bools(df, col, src)

    count_na, dens_na = t["spine_count"].isna(), t["density_per_um"].isna()
    i = first_true((count_na != dens_na).to_numpy())
    if i is not None:
        have, lack = (("density_per_um", "spine_count") if count_na.iat[i]
                      else ("spine_count", "density_per_um"))
        raise src.fail(lack, i, f"empty, but {have} is given (a segment not scored on a "
                       "session has both empty)")
    _no_duplicates(t, [*SEGMENT_KEY, "session"], src, "session", "session of a segment",
                   also="length_um")
    _check_order(t, SEGMENT_KEY, "session", "day", "day", src, "within a segment")
    _constant_within(t, ["group", "session"], "day", src, "a session within a group")
    for col in ("included", "long_term"):
        if col in t.columns:
            _constant_within(t, SEGMENT_KEY, col, src, "a segment")
    _check_known_mice(t, mice, src)
    if "included" not in t.columns:
        t["included"] = _damage_mask(t, DAMAGE_SESSIONS)
    return _finish(t, src, SEGMENT_KEY, "session")


def read_turnover(path_or_df: str | Path | pd.DataFrame, *,
                  segments: pd.DataFrame | None = None,
                  mice: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read and validate a turnover table: one row per segment per interval.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        Columns ``group, mouse, segment`` (ids), ``interval`` (whole number >= 1),
        ``day_start < day_end`` (days), ``formation_pct`` and ``elimination_pct`` (new
        and lost spines as % of the count at the interval's start; formation 0-1000,
        elimination 0-100 (no more spines can be lost than were there), empty where not
        scored; either may be empty alone); optional ``included`` and ``long_term``.
    segments : pandas.DataFrame, optional
        A table from :func:`read_segments`: every segment must be in it, with
        ``day_start`` and ``day_end`` among its days, and the masks must agree; masks
        missing here are copied from it.
    mice : pandas.DataFrame, optional
        A table from :func:`read_mice`.

    Returns
    -------
    pandas.DataFrame
        The columns above (ids str, ``interval`` int64, days and rates float64, masks
        bool where known), rows of one segment together, by interval.

    Raises
    ------
    SegmentDataError
        As :func:`read_segments`, plus: a formation rate outside [0, 1000] % or an
        elimination rate outside [0, 100] %, ``day_start >=
        day_end``, two rows for one (group, mouse, segment, interval), intervals of a
        segment that overlap or run backwards, one interval number with two different
        day spans within a group, a segment or day not in ``segments``.
    """
    df, src = _load(path_or_df, TURNOVER_COLUMNS, TURNOVER_OPTIONAL, "a turnover table")
    t = pd.DataFrame(index=df.index)
    for col in ("group", "mouse", "segment"):
        t[col] = _required_ids(df, col, src)
    t["interval"] = _numbers(df, "interval", src, integer=True, lo=1).astype(np.int64)
    t["day_start"] = _numbers(df, "day_start", src)
    t["day_end"] = _numbers(df, "day_end", src)
    t["formation_pct"] = _numbers(df, "formation_pct", src, missing_ok=True, lo=0,
                                  hi=RATE_MAX_PCT)
    t["elimination_pct"] = _numbers(df, "elimination_pct", src, missing_ok=True, lo=0,
                                    hi=RATE_MAX_PCT)
    i = first_true((t["elimination_pct"] > ELIMINATION_MAX_PCT).to_numpy())
    if i is not None:
        raise src.fail("elimination_pct", i, f"expected a number <= "
                       f"{ELIMINATION_MAX_PCT:g} (lost spines as % of those present at the "
                       "interval's start)", df["elimination_pct"].iat[i])
    for col in ("included", "long_term"):
        if col in df.columns:
            t[col] = _required_bools(df, col, src)

    i = first_true((t["day_start"] >= t["day_end"]).to_numpy())
    if i is not None:
        raise src.fail("day_end", i, f"expected day_end after day_start "
                       f"({t['day_start'].iat[i]:g})", t["day_end"].iat[i])
    _no_duplicates(t, [*SEGMENT_KEY, "interval"], src, "interval", "interval of a segment")
    _check_order(t, SEGMENT_KEY, "interval", "day_start", "day_end", src, "within a segment")
    for col in ("day_start", "day_end"):
        _constant_within(t, ["group", "interval"], col, src, "an interval within a group")
    for col in ("included", "long_term"):
        if col in t.columns:
            _constant_within(t, SEGMENT_KEY, col, src, "a segment")
    _check_known_mice(t, mice, src)
    if segments is not None:
        t = _against_segments(t, segments, src)
    return _finish(t, src, SEGMENT_KEY, "interval")


def _against_segments(t: pd.DataFrame, segments: pd.DataFrame, src: _Source) -> pd.DataFrame:
    name = segments.attrs.get("source", "the segment table")
    seg_keys = segments[SEGMENT_KEY].drop_duplicates()
    known = pd.MultiIndex.from_frame(seg_keys)
    here = pd.MultiIndex.from_frame(t[SEGMENT_KEY])
    i = first_true(~here.isin(known))
    if i is not None:
        raise src.fail("segment", i, f"segment ({_describe(t, i, SEGMENT_KEY)}) is not in "
                       f"{name}")
    days = pd.MultiIndex.from_frame(segments[[*SEGMENT_KEY, "day"]])
    for col in ("day_start", "day_end"):
        probe = pd.MultiIndex.from_arrays([t[c] for c in SEGMENT_KEY] + [t[col]])
        i = first_true(~probe.isin(days))
        if i is not None:
            raise src.fail(col, i, f"day {t[col].iat[i]:g} is not an imaging day of segment "
                           f"({_describe(t, i, SEGMENT_KEY)}) in {name}")
    masks = segments.drop_duplicates(SEGMENT_KEY).set_index(SEGMENT_KEY)
    for col in ("included", "long_term"):
        if col not in masks.columns:
            continue
        theirs = masks[col].reindex(here).to_numpy()
        if col in t.columns:
            i = first_true(t[col].to_numpy() != theirs)
            if i is not None:
                raise src.fail(col, i, f"{col} of segment ({_describe(t, i, SEGMENT_KEY)}) "
                               f"disagrees with {name} ({bool(theirs[i])})", t[col].iat[i])
        else:
            t[col] = theirs.astype(bool)
    return t


def read_persistence(path_or_df: str | Path | pd.DataFrame, *,
                     mice: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read and validate a persistence table: how many spines of a cohort of new spines
    on a segment are still present on later days.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        Columns ``group``, ``block`` and ``row`` (ids; one (group, block, row) is one
        cohort segment), ``cohort_day`` (the day the spines were new),
        ``followup_day`` (> cohort_day), ``new_spines`` (whole number >= 0, the same in
        every row of a cohort segment), ``surviving`` (whole number, 0 to
        ``new_spines``, empty if not scored); optional ``mouse`` and ``segment`` where
        the lab knows which segment a cohort is.
    mice : pandas.DataFrame, optional
        A table from :func:`read_mice` (checks the group, and the mouse if given).

    Returns
    -------
    pandas.DataFrame
        The columns above (ids str, numbers float64), rows of one cohort segment
        together, by follow-up day.

    Raises
    ------
    SegmentDataError
        Missing or unexpected columns, bad numbers, ``surviving > new_spines``, a
        follow-up not after the cohort day, two rows for one cohort segment and
        follow-up day, ``new_spines`` or ``cohort_day`` changing within a cohort segment,
        an unknown group or mouse.
    """
    df, src = _load(path_or_df, PERSISTENCE_COLUMNS, PERSISTENCE_OPTIONAL,
                    "a persistence table")
    t = pd.DataFrame(index=df.index)
    for col in ("group", "block", "row"):
        t[col] = _required_ids(df, col, src)
    for col in PERSISTENCE_OPTIONAL:
        if col in df.columns:
            t[col] = _required_ids(df, col, src)
    t["cohort_day"] = _numbers(df, "cohort_day", src)
    t["followup_day"] = _numbers(df, "followup_day", src)
    t["new_spines"] = _numbers(df, "new_spines", src, integer=True, lo=0)
    t["surviving"] = _numbers(df, "surviving", src, missing_ok=True, integer=True, lo=0)

    i = first_true((t["surviving"] > t["new_spines"]).to_numpy())
    if i is not None:
        raise src.fail("surviving", i, "more surviving spines than new ones "
                       f"(new_spines {t['new_spines'].iat[i]:g})", t["surviving"].iat[i])
    i = first_true((t["followup_day"] <= t["cohort_day"]).to_numpy())
    if i is not None:
        raise src.fail("followup_day", i, "expected a follow-up day after cohort_day "
                       f"({t['cohort_day'].iat[i]:g})", t["followup_day"].iat[i])
    cohort = ["group", "block", "row"]
    _no_duplicates(t, [*cohort, "followup_day"], src, "followup_day",
                   "follow-up of a cohort segment")
    for col in ("new_spines", "cohort_day", *[c for c in PERSISTENCE_OPTIONAL
                                              if c in t.columns]):
        _constant_within(t, cohort, col, src, "a cohort segment")
    _check_known_mice(t, mice, src, with_mouse="mouse" in t.columns)
    return _finish(t, src, cohort, "followup_day")


def read_mice(path_or_df: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read and validate a mouse table: one row per mouse.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        Columns ``group`` and ``mouse`` (ids; a mouse is (group, mouse)); optional
        ``mouse_index`` (whole number >= 1, unique within a group), ``label`` (text),
        ``sex`` (``F``/``M`` or ``female``/``male``, any case), ``age_at_surgery_pnd``,
        ``age_at_first_imaging_pnd`` (postnatal days, the first imaging not before the
        surgery) and ``imaging_duration_min`` (>= 0). Optional cells may be empty.

    Returns
    -------
    pandas.DataFrame
        The columns given (``sex`` as ``F``/``M``), in file order.

    Raises
    ------
    SegmentDataError
        Missing or unexpected columns, missing ids, bad numbers, an unknown sex, a
        repeated (group, mouse) or (group, mouse_index), imaging before surgery.
    """
    df, src = _load(path_or_df, MICE_COLUMNS, MICE_OPTIONAL, "a mouse table")
    t = pd.DataFrame(index=df.index)
    for col in MICE_COLUMNS:
        t[col] = _required_ids(df, col, src)
    if "mouse_index" in df.columns:
        t["mouse_index"] = _numbers(df, "mouse_index", src, missing_ok=True, integer=True,
                                    lo=1)
    if "label" in df.columns:
        t["label"] = _text(df, "label", src)
    if "sex" in df.columns:
        sex = _text(df, "sex", src)
        words = {"f": "F", "female": "F", "m": "M", "male": "M"}
        for i, v in enumerate(sex):
            if isinstance(v, str):
                if v.lower() not in words:
                    raise src.fail("sex", i, "expected F or M", df["sex"].iat[i])
                sex[i] = words[v.lower()]
        t["sex"] = sex
    for col in ("age_at_surgery_pnd", "age_at_first_imaging_pnd", "imaging_duration_min"):
        if col in df.columns:
            t[col] = _numbers(df, col, src, missing_ok=True, lo=0)
    _no_duplicates(t, MOUSE_KEY, src, "mouse", "mouse")
    if "mouse_index" in t.columns:
        has = t["mouse_index"].notna().to_numpy()
        sub = t.loc[has, ["group", "mouse_index"]]
        dup = np.zeros(len(t), dtype=bool)
        dup[np.flatnonzero(has)] = sub.duplicated(keep="first").to_numpy()
        i = first_true(dup)
        if i is not None:
            raise src.fail("mouse_index", i, "repeated mouse_index within group "
                           f"{t['group'].iat[i]!r}", t["mouse_index"].iat[i])
    if {"age_at_surgery_pnd", "age_at_first_imaging_pnd"} <= set(t.columns):
        i = first_true((t["age_at_first_imaging_pnd"] < t["age_at_surgery_pnd"]).to_numpy())
        if i is not None:
            raise src.fail("age_at_first_imaging_pnd", i, "first imaging before the surgery "
                           f"(age_at_surgery_pnd {t['age_at_surgery_pnd'].iat[i]:g})",
                           t["age_at_first_imaging_pnd"].iat[i])
    t = t.reset_index(drop=True)
    t.attrs["source"] = src.name
    return t


@dataclass(frozen=True)
class SegmentDataset:
    """The four tables of a per-segment dataset, read and cross-checked.

    Attributes
    ----------
    segments : pandas.DataFrame
        From :func:`read_segments`, with both masks.
    turnover : pandas.DataFrame or None
        From :func:`read_turnover`, with both masks.
    persistence : pandas.DataFrame or None
        From :func:`read_persistence`.
    mice : pandas.DataFrame or None
        From :func:`read_mice`.
    folder : pathlib.Path
        Where the files were read from.
    """

    segments: pd.DataFrame
    turnover: pd.DataFrame | None
    persistence: pd.DataFrame | None
    mice: pd.DataFrame | None
    folder: Path


def _find(folder: Path, stem: str, required: bool) -> Path | None:
    found = [folder / f"{stem}{sfx}" for sfx in (*SUFFIXES, ".csv.gz")
             if (folder / f"{stem}{sfx}").is_file()]
    if len(found) > 1:
        raise SegmentDataError(f"{folder}: several files for the {stem} table ("
                               + ", ".join(p.name for p in found) + "); keep one")
    if not found:
        if required:
            raise SegmentDataError(f"{folder}: no {stem}.csv or {stem}.parquet")
        return None
    return found[0]


def read_dataset(folder: str | Path) -> SegmentDataset:
    """Read a folder holding ``segments``, and optionally ``turnover``, ``persistence``
    and ``mice`` tables (``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``), check them
    against each other, and add the masks a file leaves out (:func:`add_masks`).

    Raises
    ------
    SegmentDataError
        From any reader, or when the folder lacks a segment table.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SegmentDataError(f"{folder}: not a folder")
    mice_path = _find(folder, "mice", False)
    mice = read_mice(mice_path) if mice_path else None
    segments = read_segments(_find(folder, "segments", True), mice=mice)
    t_path = _find(folder, "turnover", False)
    turnover = read_turnover(t_path, segments=segments, mice=mice) if t_path else None
    if turnover is not None:
        segments, turnover = add_masks(segments, turnover)
    p_path = _find(folder, "persistence", False)
    persistence = read_persistence(p_path, mice=mice) if p_path else None
    return SegmentDataset(segments, turnover, persistence, mice, folder)


# --------------------------------------------------------------------------- masks


def _damage_mask(seg: pd.DataFrame, damage_sessions: int) -> np.ndarray:
    early = (seg["damaged"].to_numpy() != 0) & (seg["session"].to_numpy() <= damage_sessions)
    bad = pd.Series(early, index=seg.index).groupby(
        [seg[c] for c in SEGMENT_KEY], sort=False).transform("any")
    return ~bad.to_numpy(dtype=bool)


def add_masks(segments: pd.DataFrame, turnover: pd.DataFrame | None = None, *,
              damage_sessions: int = DAMAGE_SESSIONS,
              long_term_from_day: float = LONG_TERM_FROM_DAY, overwrite: bool = False
              ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The segment masks of Phoumthipphavong et al. 2016's script, for any dataset.

    ``included``: the segment has no damage flag on sessions ``1..damage_sessions``.
    ``long_term``: the segment has a formation rate in an interval starting on day
    ``>= long_term_from_day`` (needs ``turnover``). Columns already present are kept
    unless ``overwrite``; the turnover table gets the segment masks it lacks.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame or None)
        Copies of ``segments`` and ``turnover`` with the masks.
    """
    seg = segments.copy()
    if overwrite or "included" not in seg.columns:
        seg["included"] = _damage_mask(seg, damage_sessions)
    if turnover is None:
        return seg, None
    tt = turnover.copy()
    if overwrite or "long_term" not in seg.columns:
        has = (tt["formation_pct"].notna() & (tt["day_start"] >= long_term_from_day))
        lt = has.groupby([tt[c] for c in SEGMENT_KEY]).any()
        idx = pd.MultiIndex.from_frame(seg[SEGMENT_KEY])
        seg["long_term"] = lt.reindex(idx).fillna(False).to_numpy(dtype=bool)
    masks = seg.drop_duplicates(SEGMENT_KEY).set_index(SEGMENT_KEY)
    idx = pd.MultiIndex.from_frame(tt[SEGMENT_KEY])
    for col in ("included", "long_term"):
        if overwrite or col not in tt.columns:
            tt[col] = masks[col].reindex(idx).fillna(False).to_numpy(dtype=bool)
    return seg, tt


def from_tracking(table: pd.DataFrame, *, group: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-segment tables of a spine tracking table, so that simulated (or lab-tracked)
    imaging goes through the same segment statistics as a per-segment deposit.

    Each imaged branch becomes a segment and each subject a mouse (ids ``"arm/subject"``
    and the branch number, so subjects of several arms stay apart); the group is the arm,
    or ``group`` for every row (to pool arms into one analysed set, as a deposit's
    3-session set pools the mice imaged for 3 sessions with those imaged longer).

    Sessions follow the group's common imaging schedule, as in a deposit: the sessions of
    a group are every time (``TIME_TOL_H`` apart) at which any of its branches was imaged,
    numbered from 1 in time order (``day`` = ``time_h`` / 24), and interval ``i`` runs from
    session ``i`` to ``i + 1``. Every segment has a row for every session and every
    interval of its group; where its branch was not imaged, ``spine_count``,
    ``length_um`` and ``density_per_um`` are empty, and an interval's rates are empty
    unless the branch was imaged at both of its sessions (a rate over a missed session is
    not filed under a neighbouring interval). ``spine_count`` counts the spines seen
    present, ``length_um`` is the branch length. Formation and elimination are % of the
    spines present at the interval's start (:func:`ketasim.analysis.spines.turnover`'s
    per-branch counts; NaN with no spine at the start). Nothing is damaged
    (``included`` everywhere) and ``long_term`` follows :func:`add_masks`.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table (:func:`ketasim.analysis.tracking.read_tracking_table`).
    group : str, optional
        One group label for every row instead of the arm.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``segments`` (the columns of :func:`read_segments`, with the masks) and
        ``turnover`` (those of :func:`read_turnover`, with the masks); both pass those
        readers.

    Raises
    ------
    SegmentDataError
        An empty table, or no branch imaged at two sessions in a row of its group.
    """
    if table.empty:
        raise SegmentDataError("from_tracking: the tracking table has no rows")
    key = _tracking.BRANCH_KEY
    dens = _spines.density_per_10um(table)
    dens["group"] = dens["arm"].astype(str) if group is None else str(group)
    # the group's schedule: every session at which any branch of the group was imaged
    sched = (dens[["group", "time_h"]].drop_duplicates()
             .sort_values(["group", "time_h"]).reset_index(drop=True))
    sched["session"] = sched.groupby("group", sort=False).cumcount() + 1
    branches = dens[[*key, "group", "branch_length_um"]].drop_duplicates(key)
    grid = (branches.merge(sched, on="group")
            .merge(dens[[*key, "time_h", "n_present"]], on=[*key, "time_h"], how="left")
            .sort_values([*key, "session"], kind="stable").reset_index(drop=True))
    imaged = grid["n_present"].notna().to_numpy()

    def ids(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "group": df["group"].astype(str),
            "mouse": df["arm"].astype(str) + "/" + df["subject"].astype(str),
            "segment": df["branch"].astype(str)}, index=df.index)

    count = grid["n_present"].to_numpy(float)
    length = np.where(imaged, grid["branch_length_um"].to_numpy(float), np.nan)
    seg = ids(grid).assign(
        session=grid["session"].to_numpy(np.int64),
        day=grid["time_h"].to_numpy(float) / 24.0,
        spine_count=count, length_um=length, density_per_um=count / length,
        damaged=np.zeros(len(grid), dtype=np.int64))

    iv = sched.assign(t1=sched.groupby("group", sort=False)["time_h"].shift(-1))
    iv = iv.dropna(subset=["t1"]).rename(columns={"time_h": "t0", "session": "interval"})
    none = "from_tracking: no branch was imaged at two sessions in a row of its group"
    if iv.empty:
        raise SegmentDataError(none)
    rates = []
    for (t0, t1), _ in iv.groupby(["t0", "t1"], sort=True):
        # the branches imaged at both sessions (per_branch lists no other)
        pb = _spines.turnover(table, float(t0), float(t1)).per_branch
        rates.append(pb[[*key, "formation_pct", "elimination_pct"]].assign(
            t0=t0, t1=t1, _imaged=True))
    pb = (branches.merge(iv, on="group")
          .merge(pd.concat(rates, ignore_index=True), on=[*key, "t0", "t1"], how="left")
          .sort_values([*key, "interval"], kind="stable").reset_index(drop=True))
    if not pb["_imaged"].notna().any():
        raise SegmentDataError(none)
    turn = ids(pb).assign(
        interval=pb["interval"].to_numpy(np.int64),
        day_start=pb["t0"].to_numpy(float) / 24.0, day_end=pb["t1"].to_numpy(float) / 24.0,
        formation_pct=pb["formation_pct"].to_numpy(float),
        elimination_pct=pb["elimination_pct"].to_numpy(float))
    seg, turn = add_masks(seg.assign(included=True), turn, overwrite=False)
    return seg, turn


# --------------------------------------------------------------------------- statistics


def _need(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        hint = (" (add it with add_masks(segments, turnover))" if "long_term" in missing
                else "")
        raise SegmentDataError(f"{what}: the table has no column(s) "
                               + ", ".join(f"'{c}'" for c in missing) + hint)


def _in_set(df: pd.DataFrame, segment_set: SegmentSet) -> pd.Series:
    if segment_set == "all":
        return pd.Series(True, index=df.index)
    if segment_set == "included":
        _need(df, ("included",), "segment_set='included'")
        return df["included"].astype(bool)
    if segment_set == "long_term":
        _need(df, ("included", "long_term"), "segment_set='long_term'")
        return df["included"].astype(bool) & df["long_term"].astype(bool)
    raise ValueError(f"segment_set must be 'included', 'long_term' or 'all', got "
                     f"{segment_set!r}")


def _n_segments(df: pd.DataFrame, key: list[str] | None = None) -> pd.Series:
    key = SEGMENT_KEY if key is None else key
    return df.drop_duplicates(key).groupby("group").size()


def _summarise(df: pd.DataFrame, value: str, by: list[str], n_set: pd.Series,
               sem: SemConvention = "script") -> pd.DataFrame:
    """Mean, SD (ddof 1), SEM, n (with a value) and n_set per group and ``by``."""
    if sem not in ("script", "standard"):
        raise ValueError(f"sem must be 'script' or 'standard', got {sem!r}")
    g = df.groupby(["group", *by], sort=True)[value]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["n_set"] = out["group"].map(n_set).fillna(0).astype(np.int64)
    out["n"] = out["n"].astype(np.int64)
    div = out["n_set"] if sem == "script" else out["n"]
    out["sem"] = out["sd"] / np.sqrt(div.where(div > 0).astype(float))
    return out[["group", *by, "mean", "sem", "sd", "n", "n_set"]]


_DAY_TOL = 1e-9  # float slack when a day argument is matched to the table's days


def _table_day(df: pd.DataFrame, day: float, name: str) -> float:
    """``day`` as one of the table's days; else a ValueError naming ``name`` and the days."""
    days = np.unique(df["day"].to_numpy(dtype=float))
    days = days[np.isfinite(days)]
    try:
        x = float(day)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a day of the table, got {day!r}") from None
    hit = np.flatnonzero(np.abs(days - x) <= _DAY_TOL) if np.isfinite(x) else []
    if len(hit) == 0:
        have = ", ".join(f"{d:g}" for d in days) if days.size else "none"
        raise ValueError(f"{name}={x:g} is not a day of the table (days: {have})")
    return float(days[hit[0]])


def _baseline_day(df: pd.DataFrame, baseline_day: float | None) -> float:
    if baseline_day is None:
        return float(df["day"].min())
    return _table_day(df, baseline_day, "baseline_day")


def _mask_pool(df: pd.DataFrame, segment_set: SegmentSet, what: str) -> pd.DataFrame:
    """The rows a baseline is taken over: the included ones, or every row for ``"all"``."""
    _in_set(df.iloc[:0], segment_set)  # a bad segment_set is one error
    if segment_set == "all":
        return df.copy()
    _need(df, ("included",), what)
    return df.loc[df["included"].astype(bool)].copy()


def density_change(segments: pd.DataFrame, *, baseline_day: float | None = None,
                   segment_set: SegmentSet = "included") -> pd.DataFrame:
    """Each segment's density as % change from its mouse's baseline.

    The baseline is the mean ``density_per_um`` over the mouse's included segments on
    ``baseline_day`` (default: the first day in the table), as in the authors' script;
    segments without a value of their own that day are still normalised by it. With
    ``segment_set="all"`` no mask is applied: the baseline is the mean over all the
    mouse's segments and every row is returned.

    Parameters
    ----------
    segment_set : {"included", "long_term", "all"}
        The rows returned (the baseline is over the included segments for the first two).

    Returns
    -------
    pandas.DataFrame
        The rows of the set with ``baseline_per_um`` and ``change_pct`` (NaN where the
        density or the baseline is missing, or the baseline is 0).

    Raises
    ------
    ValueError
        When ``baseline_day`` is not a day of the table.
    """
    pool = _mask_pool(segments, segment_set, "density_change")
    day0 = _baseline_day(segments, baseline_day)
    base = (pool.loc[pool["day"] == day0].groupby(MOUSE_KEY)["density_per_um"].mean()
            .rename("baseline_per_um"))
    out = pool.join(base, on=MOUSE_KEY)
    b = out["baseline_per_um"].where(out["baseline_per_um"] > 0)
    out["change_pct"] = 100.0 * (out["density_per_um"] / b - 1.0)
    if segment_set == "long_term":
        out = out.loc[_in_set(out, segment_set).to_numpy()]
    return out.reset_index(drop=True)


def density_change_summary(segments: pd.DataFrame, *, segment_set: SegmentSet = "included",
                           last_day: float | None = None, baseline_day: float | None = None,
                           mice: pd.DataFrame | None = None, sex: str | None = None,
                           sem: SemConvention = "script") -> pd.DataFrame:
    """Density change from the mouse's baseline (%), mean and SEM per group and day.

    Parameters
    ----------
    segments : pandas.DataFrame
        From :func:`read_segments` (with ``long_term`` for that set).
    segment_set : {"included", "long_term", "all"}
        The 3-session set (all included segments; use ``last_day``) or the 7-session set
        (included and long-term); the baseline comes from all included segments. ``"all"``:
        every segment, the damage mask not applied (the baseline from all segments too).
    last_day : float, optional
        Keep days up to this one (1 for the 3-session figure).
    mice, sex : optional
        Keep the mice of one sex (``"F"``/``"M"``; needs ``mice``). As in the authors'
        script, ``n_set`` (the SEM divisor) stays the whole set's segment count.
    sem : {"script", "standard"}
        SEM divisor: segments in the set, or segments with a value that day.

    Returns
    -------
    pandas.DataFrame
        ``group, day, mean, sem, sd, n, n_set``.

    Raises
    ------
    ValueError
        When ``baseline_day`` is not a day of the table.
    """
    dens = density_change(segments, baseline_day=baseline_day, segment_set=segment_set)
    n_set = _n_segments(dens)
    if last_day is not None:
        dens = dens.loc[dens["day"] <= last_day]
    if sex is not None:
        if mice is None or "sex" not in mice.columns:
            raise ValueError("sex= needs a mouse table with a 'sex' column (mice=)")
        words = {"f": "F", "female": "F", "m": "M", "male": "M"}  # as read_mice reads
        code = words.get(str(sex).strip().lower())
        if code is None:
            raise ValueError(f"sex must be F or M (or female or male), got {sex!r}")
        keep = mice.loc[mice["sex"] == code, MOUSE_KEY]
        dens = dens.merge(keep, on=MOUSE_KEY)
    return _summarise(dens, "change_pct", ["day"], n_set, sem)


def turnover_change(turnover: pd.DataFrame, *, baseline_interval: int = 1,
                    segment_set: SegmentSet = "included") -> pd.DataFrame:
    """Each included segment's formation and elimination as change (percentage points)
    from its mouse's mean rate in ``baseline_interval``, pro-rated to that interval's
    length: an interval of L days is scaled by (baseline length) / L (2/5 for the 5-day
    intervals of Phoumthipphavong et al. 2016), using the nominal days.

    ``segment_set="all"``: every segment, the baseline from all of the mouse's segments
    (no damage mask); ``"long_term"``: the included baseline, long-term rows returned.

    Returns
    -------
    pandas.DataFrame
        The rows of the set with ``formation_pct_base``, ``elimination_pct_base``,
        ``formation_pct_change`` and ``elimination_pct_change``.

    Raises
    ------
    ValueError
        When ``baseline_interval`` is not an interval of the table.
    """
    ti = _mask_pool(turnover, segment_set, "turnover_change")
    have = np.unique(turnover["interval"].to_numpy())
    if baseline_interval not in set(have.tolist()):
        raise ValueError(f"baseline_interval={baseline_interval!r} is not an interval of "
                         "the table (intervals: " + ", ".join(str(int(i)) for i in have) + ")")
    rates = ["formation_pct", "elimination_pct"]
    b = ti.loc[ti["interval"] == baseline_interval].groupby(MOUSE_KEY)[rates].mean()
    ti = ti.join(b, on=MOUSE_KEY, rsuffix="_base")
    ref = (ti.loc[ti["interval"] == baseline_interval]
           .assign(length=lambda d: d["day_end"] - d["day_start"])
           .groupby("group")["length"].first())
    length = (ti["day_end"] - ti["day_start"]).to_numpy(float)
    r = ti["group"].map(ref).to_numpy(float)
    scale = np.ones(len(ti))
    other = ~np.isnan(r) & (length != r)  # e.g. 5-day intervals against a 2-day baseline
    scale[other] = r[other] / length[other]
    for c in rates:
        ti[c + "_change"] = (ti[c] - ti[c + "_base"]) * scale
    if segment_set == "long_term":
        ti = ti.loc[_in_set(ti, segment_set).to_numpy()]
    return ti.reset_index(drop=True)


def _long_rates(df: pd.DataFrame, cols: dict[str, str]) -> pd.DataFrame:
    keep = [*SEGMENT_KEY, "interval", "day_start", "day_end"]
    parts = [df[keep].assign(measure=m, value=df[c].to_numpy()) for m, c in cols.items()]
    return pd.concat(parts, ignore_index=True)


def turnover_change_summary(turnover: pd.DataFrame, *,
                            segment_set: SegmentSet = "included",
                            last_day: float | None = None, baseline_interval: int = 1,
                            sem: SemConvention = "script") -> pd.DataFrame:
    """Formation and elimination change from the mouse's baseline interval (points,
    pro-rated as in :func:`turnover_change`), mean and SEM per group and interval.

    ``last_day`` keeps intervals ending on or before it (1 for the 3-session figure).

    Returns
    -------
    pandas.DataFrame
        ``group, measure`` (``formation``/``elimination``), ``interval, day_start,
        day_end, mean, sem, sd, n, n_set``.
    """
    ti = turnover_change(turnover, baseline_interval=baseline_interval,
                         segment_set=segment_set)
    n_set = _n_segments(ti)
    if last_day is not None:
        ti = ti.loc[ti["day_end"] <= last_day]
    long = _long_rates(ti, {"formation": "formation_pct_change",
                            "elimination": "elimination_pct_change"})
    return _summarise(long, "value", ["measure", "interval", "day_start", "day_end"], n_set,
                      sem)


def turnover_rates(turnover: pd.DataFrame, *, segment_set: SegmentSet = "included",
                   sem: SemConvention = "standard") -> pd.DataFrame:
    """Raw formation and elimination rates (% of the spines at the interval's start, not
    normalised, not pro-rated) per group and interval. The SEM here is by default the
    usual one over the segments with a value (``sem="script"`` for the script's).

    Returns
    -------
    pandas.DataFrame
        ``group, measure, interval, day_start, day_end, mean, sem, sd, n, n_set``.
    """
    tt = turnover.loc[_in_set(turnover, segment_set).to_numpy()]
    long = _long_rates(tt, {"formation": "formation_pct", "elimination": "elimination_pct"})
    return _summarise(long, "value", ["measure", "interval", "day_start", "day_end"],
                      _n_segments(tt), sem)


def length_change(segments: pd.DataFrame, *, day: float = 1.0,
                  baseline_day: float | None = None, loss_threshold_pct: float = 1.0,
                  segment_set: SegmentSet = "included",
                  sem: SemConvention = "script") -> pd.DataFrame:
    """Dendritic length change (%) from each segment's own baseline length to ``day``.

    Returns
    -------
    pandas.DataFrame
        ``group, mean, sem, sd, n, n_set, n_lost`` (segments that lost more than
        ``loss_threshold_pct`` %), ``n_not_lost``; segments missing either length are
        left out of ``n``, ``n_lost`` and ``n_not_lost``.
    """
    seg = segments.loc[_in_set(segments, segment_set).to_numpy()]
    day0 = _baseline_day(segments, baseline_day)
    day = _table_day(segments, day, "day")  # within the table's day tolerance
    wide = seg.set_index([*SEGMENT_KEY, "day"])["length_um"].unstack("day")
    if day0 not in wide.columns or day not in wide.columns:
        have = ", ".join(f"{d:g}" for d in wide.columns)
        raise ValueError(f"no lengths on day {day0:g} or day {day:g} (day={day:g}; days of "
                         f"the set: {have})")
    dl = (100.0 * (wide[day] / wide[day0] - 1.0)).rename("change_pct").reset_index()
    out = _summarise(dl.assign(_=0), "change_pct", ["_"], _n_segments(seg), sem)
    lost = dl.assign(lost=dl["change_pct"] < -loss_threshold_pct,
                     kept=dl["change_pct"] >= -loss_threshold_pct)
    counts = lost.groupby("group")[["lost", "kept"]].sum()
    out["n_lost"] = out["group"].map(counts["lost"]).astype(np.int64)
    out["n_not_lost"] = out["group"].map(counts["kept"]).astype(np.int64)
    return out.drop(columns="_")


def _chi2_sf(x: float, dof: int) -> float:
    if dof == 1:
        return erfc(sqrt(x / 2.0))
    from scipy.stats import chi2

    return float(chi2.sf(x, dof))


def up_down_test(segments: pd.DataFrame, *, day: float = 1.0,
                 baseline_day: float | None = None,
                 segment_set: SegmentSet = "included") -> pd.DataFrame:
    """Segments whose density on ``day`` is below / at-or-above their mouse's baseline,
    and the authors' Pearson chi-square (no continuity correction) on ``at_or_above``
    against ``n_set - at_or_above`` per group, so a segment missing that day counts as
    below in the test (``k - 1`` degrees of freedom for ``k`` groups).

    Returns
    -------
    pandas.DataFrame
        ``group, below, at_or_above, missing, n_set, chi2, dof, p`` (the test repeated
        on each group's row).

    Raises
    ------
    ValueError
        When ``day`` or ``baseline_day`` is not a day of the table.
    """
    day = _table_day(segments, day, "day")
    dens = density_change(segments, baseline_day=baseline_day, segment_set=segment_set)
    n_set = _n_segments(dens)
    d = dens.loc[dens["day"] == day]
    up = (d["change_pct"] >= 0).groupby(d["group"]).sum().reindex(n_set.index, fill_value=0)
    down = (d["change_pct"] < 0).groupby(d["group"]).sum().reindex(n_set.index, fill_value=0)
    obs = np.c_[up.to_numpy(float), (n_set - up).to_numpy(float)]
    p0 = obs[:, 0].sum() / obs.sum()
    exp = np.outer(n_set.to_numpy(float), [p0, 1.0 - p0])
    dof = len(n_set) - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # a column with no segments
        chi2 = float(((obs - exp) ** 2 / exp).sum()) if (exp > 0).all() else np.nan
    p = _chi2_sf(chi2, dof) if np.isfinite(chi2) and dof >= 1 else np.nan
    return pd.DataFrame({"group": n_set.index, "below": down.to_numpy(np.int64),
                         "at_or_above": up.to_numpy(np.int64),
                         "missing": (n_set - up - down).to_numpy(np.int64),
                         "n_set": n_set.to_numpy(np.int64), "chi2": chi2, "dof": dof,
                         "p": p})


def _cohorts(persistence: pd.DataFrame) -> pd.DataFrame:
    """Rows with a cohort (new_spines > 0) and ``pct`` = 100 surviving / new."""
    p = persistence.loc[persistence["new_spines"] > 0].copy()
    p["pct"] = 100.0 * p["surviving"] / p["new_spines"]
    return p


def persistence_summary(persistence: pd.DataFrame, *, sem: SemConvention = "script"
                        ) -> pd.DataFrame:
    """% of a cohort of new spines still present on each follow-up day, mean over
    cohort segments, SEM over the number of cohort segments in the group (counting
    segments not scored that day, as the script does). Segments with no new spine have
    no cohort and are left out.

    Returns
    -------
    pandas.DataFrame
        ``group, followup_day, mean, sem, sd, n, n_set``.
    """
    p = _cohorts(persistence)
    return _summarise(p, "pct", ["followup_day"], _n_segments(p, ["group", "block", "row"]),
                      sem)


def new_spine_summary(persistence: pd.DataFrame) -> pd.DataFrame:
    """New spines per cohort segment (all cohort segments, also those with none).

    Returns
    -------
    pandas.DataFrame
        ``group, mean, sd, sum, n_segments``.
    """
    one = persistence.drop_duplicates(["group", "block", "row"])
    g = one.groupby("group")["new_spines"]
    out = g.agg(mean="mean", sd="std", sum="sum", n_segments="size").reset_index()
    out["n_segments"] = out["n_segments"].astype(np.int64)
    return out


def segment_set_sizes(segments: pd.DataFrame) -> pd.DataFrame:
    """Mice and segments per group: in the table, in the included (3-session) set and
    in the included long-term (7-session) set.

    Returns
    -------
    pandas.DataFrame
        ``group, mice, segments, included_mice, included_segments, long_term_mice,
        long_term_segments`` (the last two only with a ``long_term`` column).
    """
    one = segments.drop_duplicates(SEGMENT_KEY)
    rows = []
    for g, d in one.groupby("group", sort=True):
        row = {"group": g, "mice": d["mouse"].nunique(), "segments": len(d)}
        inc = d.loc[_in_set(d, "included")]
        row |= {"included_mice": inc["mouse"].nunique(), "included_segments": len(inc)}
        if "long_term" in d.columns:
            lt = d.loc[_in_set(d, "long_term")]
            row |= {"long_term_mice": lt["mouse"].nunique(), "long_term_segments": len(lt)}
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_summary(segments: pd.DataFrame, *, baseline_day: float | None = None,
                     segment_set: SegmentSet = "included", by_group: bool = True
                     ) -> pd.DataFrame:
    """Spines counted, dendrite length and density on the baseline day.

    Returns
    -------
    pandas.DataFrame
        ``group`` (``all`` when not ``by_group``), ``segments`` (with a count),
        ``spines`` (sum), ``length_mm`` (sum), ``spines_mean, spines_sd``,
        ``density_mean, density_sd`` (per um, SD with ddof 1).
    """
    day0 = _baseline_day(segments, baseline_day)
    d = segments.loc[_in_set(segments, segment_set).to_numpy()
                     & (segments["day"] == day0).to_numpy()]
    if not by_group:
        d = d.assign(group="all")
    g = d.groupby("group", sort=True)
    out = pd.DataFrame({
        "segments": g["spine_count"].count().astype(np.int64),
        "spines": g["spine_count"].sum(),
        "length_mm": g["length_um"].sum() / 1000.0,
        "spines_mean": g["spine_count"].mean(), "spines_sd": g["spine_count"].std(),
        "density_mean": g["density_per_um"].mean(),
        "density_sd": g["density_per_um"].std()})
    return out.reset_index()


# --------------------------------------------------------------------------- mixed model


@dataclass(frozen=True)
class DensityMixedModel:
    """A linear mixed model of density with segments nested in mice, and the
    segment-level analyses of the same contrast.

    Attributes
    ----------
    formula : str
        The fixed effects (statsmodels formula) and the random part, in words.
    outcome : str
        ``change_pct`` or ``log_density``.
    fixed_effects : pandas.DataFrame
        ``term, estimate, se, ci_low, ci_high, z, p`` (REML, Wald z, 95 % normal CI).
    contrast : pandas.DataFrame
        The ``treatment`` minus ``reference`` group contrast on ``contrast_day``, one row
        per analysis: ``analysis, unit, estimate, se, ci_low, ci_high, statistic, df, p,
        n_mice, n_segments, n_obs``.
    variance : dict
        ``mouse`` (random intercept), ``segment`` (nested, when fitted) and
        ``residual`` variances.
    n_mice, n_segments, n_obs : int
        Mice, segments and rows in the model.
    converged : bool
        statsmodels' convergence flag.
    warnings : tuple of str
        Warnings raised while fitting (e.g. a variance on its boundary).
    """

    formula: str
    outcome: str
    fixed_effects: pd.DataFrame
    contrast: pd.DataFrame
    variance: dict
    n_mice: int
    n_segments: int
    n_obs: int
    converged: bool
    warnings: tuple[str, ...]


def _model_data(segments: pd.DataFrame, outcome: str, days: tuple[float, ...] | None,
                segment_set: SegmentSet, baseline_day: float | None) -> pd.DataFrame:
    dens = density_change(segments, baseline_day=baseline_day, segment_set=segment_set)
    day0 = _baseline_day(segments, baseline_day)
    if outcome == "change_pct":
        dens["y"] = dens["change_pct"]
        days = tuple(d for d in sorted(dens["day"].unique()) if d != day0) if days is None \
            else days
    elif outcome == "log_density":
        pos = dens["density_per_um"].where(dens["density_per_um"] > 0)
        dens["y"] = np.log(pos)
        days = tuple(sorted(dens["day"].unique())) if days is None else days
        if day0 not in days:
            days = (day0, *days)
    else:
        raise ValueError(f"outcome must be 'change_pct' or 'log_density', got {outcome!r}")
    d = dens.loc[dens["day"].isin(days) & dens["y"].notna()].copy()
    d["mouse_id"] = d["group"] + ":" + d["mouse"]
    d["segment_id"] = d["mouse_id"] + ":" + d["segment"]
    d["day_label"] = d["day"].map(lambda x: f"{x:g}")
    return d.reset_index(drop=True)


def density_mixed_model(segments: pd.DataFrame, *, outcome: str = "change_pct",
                        days: tuple[float, ...] | None = (-1.0, 1.0),
                        contrast_day: float = 1.0, reference: str = "saline",
                        treatment: str = "ketamine", segment_set: SegmentSet = "included",
                        baseline_day: float | None = None, segment_effect: bool = True
                        ) -> DensityMixedModel:
    """Density ~ group * day with a random intercept per mouse (and per segment within
    mouse), fitted by REML (statsmodels MixedLM), beside the segment-level analyses.

    A paper-style analysis treats every segment as an independent unit, although the
    segments of one mouse share its surgery, window, imaging and baseline; when mice
    differ, that pseudo-replication makes the standard error of a group contrast too
    small. The mixed model estimates the between-mouse variance and so tests the group
    contrast against the variation between mice (here with only a handful of mice per
    group, and a Wald z test that is itself somewhat liberal with so few clusters).

    Parameters
    ----------
    segments : pandas.DataFrame
        From :func:`read_segments`.
    outcome : {"change_pct", "log_density"}
        % change from the mouse's baseline (:func:`density_change`), on the days after
        the baseline; or log density including the baseline day, where the contrast is
        the group-by-day interaction (the difference in log change from baseline).
    days : tuple of float, optional
        Days in the model (default days -1 and 1; None: every day with data).
    contrast_day : float
        The day of the ``treatment`` minus ``reference`` contrast.
    segment_set : {"included", "long_term", "all"}
        The segment set (the 3-session or 7-session set, or every segment unmasked).
    segment_effect : bool
        Add a variance component for segments within mice (repeated days per segment).

    Returns
    -------
    DensityMixedModel
        Fixed effects, the contrast by the mixed model, by OLS on all rows with segments
        as independent units, by a two-sample t test on segments (the segment-level
        test; on each segment's log change from the baseline day for ``log_density``)
        and by a t test on mouse means, and the sizes.
    """
    import warnings

    import statsmodels.formula.api as smf
    from scipy import stats

    d = _model_data(segments, outcome, days, segment_set, baseline_day)
    d = d.loc[d["group"].isin([reference, treatment])]
    if d.empty or set(d["group"]) != {reference, treatment}:
        raise ValueError(f"need rows of both groups {reference!r} and {treatment!r}")
    cday = f"{contrast_day:g}"
    if cday not in set(d["day_label"]):
        raise ValueError(f"no data on contrast_day {contrast_day:g}")
    day0 = _baseline_day(segments, baseline_day)
    ref_day = cday if outcome == "change_pct" else f"{day0:g}"
    rhs = (f"C(group, Treatment({reference!r})) * C(day_label, Treatment({ref_day!r}))"
           if d["day_label"].nunique() > 1 else f"C(group, Treatment({reference!r}))")
    formula = f"y ~ {rhs}"
    gterm = f"C(group, Treatment({reference!r}))[T.{treatment}]"
    term = (gterm if outcome == "change_pct"
            else f"{gterm}:C(day_label, Treatment({ref_day!r}))[T.{cday}]")
    vc = {"segment": "0 + C(segment_id)"} if segment_effect else None
    model = smf.mixedlm(formula, d, groups=d["mouse_id"], re_formula="1", vc_formula=vc)
    fit, failures, caught_msgs = None, [], []
    # one optimiser after another: a gradient method can step onto a singular covariance
    # (LinAlgError) where another converges; the warnings kept are the last fit's
    for method in ("bfgs", "powell", "lbfgs", "nm"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                attempt = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as err:
                failures.append(f"{method}: {str(err).splitlines()[0] if str(err) else err}")
                continue
        fit = attempt
        caught_msgs = sorted({str(w.message).splitlines()[0] for w in caught})
        if fit.converged:
            break
    if fit is None:
        raise ValueError("the mixed model could not be fitted (" + "; ".join(failures) + ")")
    names = list(model.exog_names)
    fe = pd.DataFrame({"term": names,
                       "estimate": fit.fe_params.to_numpy(),
                       "se": fit.bse_fe.to_numpy()})
    fe["z"] = fe["estimate"] / fe["se"]
    fe["p"] = 2.0 * stats.norm.sf(np.abs(fe["z"]))
    fe["ci_low"] = fe["estimate"] - 1.959963984540054 * fe["se"]
    fe["ci_high"] = fe["estimate"] + 1.959963984540054 * fe["se"]
    fe = fe[["term", "estimate", "se", "ci_low", "ci_high", "z", "p"]]
    variance = {"mouse": float(np.asarray(fit.cov_re)[0, 0]),
                "residual": float(fit.scale)}
    if segment_effect:
        variance["segment"] = float(np.asarray(fit.vcomp)[0])

    n_mice, n_seg, n_obs = d["mouse_id"].nunique(), d["segment_id"].nunique(), len(d)
    rows = []
    k = names.index(term)
    rows.append({"analysis": "mixed model (REML, random mouse"
                 + (" and segment" if segment_effect else "") + " intercept, Wald z)",
                 "unit": "segment in mouse", "estimate": fe["estimate"].iat[k],
                 "se": fe["se"].iat[k],
                 "ci_low": fe["ci_low"].iat[k], "ci_high": fe["ci_high"].iat[k],
                 "statistic": fe["z"].iat[k], "df": np.inf, "p": fe["p"].iat[k],
                 "n_mice": n_mice, "n_segments": n_seg, "n_obs": n_obs})
    ols = smf.ols(formula, d).fit()
    ci = ols.conf_int().loc[term]
    rows.append({"analysis": "OLS, same fixed effects, rows independent", "unit": "row",
                 "estimate": ols.params[term], "se": ols.bse[term], "ci_low": ci[0],
                 "ci_high": ci[1], "statistic": ols.tvalues[term], "df": ols.df_resid,
                 "p": ols.pvalues[term], "n_mice": n_mice, "n_segments": n_seg,
                 "n_obs": n_obs})
    per_seg = _contrast_values(d, cday, f"{day0:g}", outcome)
    per_mouse = per_seg.groupby(["group", "mouse_id"], as_index=False)["v"].mean()
    for unit, vals in (("segment", per_seg), ("mouse", per_mouse)):
        a = vals.loc[vals["group"] == treatment, "v"].to_numpy(float)
        b = vals.loc[vals["group"] == reference, "v"].to_numpy(float)
        rows.append(_two_sample(a, b, unit) | {
            "n_mice": int(per_seg["mouse_id"].nunique()),
            "n_segments": int(per_seg["segment_id"].nunique()), "n_obs": int(a.size + b.size)})
    contrast = pd.DataFrame(rows)
    return DensityMixedModel(
        formula=formula + " + (1 | mouse)" + (" + (1 | mouse:segment)" if segment_effect
                                              else ""),
        outcome=outcome, fixed_effects=fe, contrast=contrast, variance=variance,
        n_mice=int(n_mice), n_segments=int(n_seg), n_obs=int(n_obs),
        converged=bool(fit.converged), warnings=tuple(caught_msgs))


def _contrast_values(d: pd.DataFrame, cday: str, day0: str, outcome: str) -> pd.DataFrame:
    """One value per segment for the segment-level test on the contrast day."""
    if outcome == "change_pct":
        v = d.loc[d["day_label"] == cday, ["group", "mouse_id", "segment_id", "y"]]
        return v.rename(columns={"y": "v"})
    wide = d.set_index(["group", "mouse_id", "segment_id", "day_label"])["y"].unstack()
    v = (wide[cday] - wide[day0]).rename("v").dropna().reset_index()
    return v


def _two_sample(a: np.ndarray, b: np.ndarray, unit: str) -> dict:
    """Student's two-sample t test (pooled variance; = one-way ANOVA with two groups)."""
    from scipy import stats

    na, nb = a.size, b.size
    est = float(a.mean() - b.mean())
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    se = float(np.sqrt(sp2 * (1.0 / na + 1.0 / nb)))
    df = na + nb - 2
    t = est / se
    q = float(stats.t.ppf(0.975, df))
    return {"analysis": f"two-sample t test on {unit} values (Student)", "unit": unit,
            "estimate": est, "se": se, "ci_low": est - q * se, "ci_high": est + q * se,
            "statistic": t, "df": float(df), "p": float(2.0 * stats.t.sf(abs(t), df))}


# --------------------------------------------------------------------------- checks


def _fmt(x: float, nd: int, sign: bool = False) -> str:
    v = round(float(x), nd) + 0.0  # no "-0.0"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def _pm(m: float, s: float, nd: int) -> str:
    return f"{_fmt(m, nd)} ± {_fmt(s, nd)}"


def deposited_checks(folder: str | Path) -> pd.DataFrame:
    """Every row C1..C14 of the checks table of the deposited Phoumthipphavong et al.
    2016 dataset (its README), computed with this module from the files in ``folder``.

    Returns
    -------
    pandas.DataFrame
        ``check`` (e.g. ``C5-saline``), ``quantity``, ``values`` (tuple of floats, full
        precision, in the order of the README's row) and ``text`` (the values formatted
        at the README's precision, e.g. ``-9.49 ± 1.91 / -14.66 ± 1.71``).
    """
    ds = read_dataset(folder)
    seg, tt, per, mice = ds.segments, ds.turnover, ds.persistence, ds.mice
    if tt is None or per is None or mice is None:
        raise SegmentDataError(f"{folder}: the checks need the turnover, persistence and "
                               "mice tables")
    groups = ("saline", "ketamine")
    rows: list[tuple[str, str, tuple, str]] = []

    def add(check: str, quantity: str, values, text: str) -> None:
        rows.append((check, quantity, tuple(float(v) for v in values), text))

    sizes = segment_set_sizes(seg).set_index("group")
    for g in groups:
        r = sizes.loc[g]
        v = (r["mice"], r["included_segments"], r["long_term_segments"], r["long_term_mice"])
        add(f"C1-{g}", f"{g}: mice / segments after damage mask (3-session set) / segments "
            "in 7-session set / mice in 7-session set", v, " / ".join(f"{int(x)}" for x in v))
    base = baseline_summary(seg).set_index("group")
    for g in groups:
        r = base.loc[g]
        add(f"C2-{g}", f"{g}, baseline day, included segments: spines counted / dendrite "
            "length (mm) / mean density ± SD (per um)",
            (r["spines"], r["length_mm"], r["density_mean"], r["density_sd"]),
            f"{int(r['spines'])} / {_fmt(r['length_mm'], 4)} / "
            f"{_pm(r['density_mean'], r['density_sd'], 3)}")
    allb = baseline_summary(seg, segment_set="all", by_group=False).iloc[0]
    add("C3", "all segments, baseline day, no mask: spines per segment mean ± SD / density "
        "mean ± SD", (allb["spines_mean"], allb["spines_sd"], allb["density_mean"],
                      allb["density_sd"]),
        f"{_pm(allb['spines_mean'], allb['spines_sd'], 3)} / "
        f"{_pm(allb['density_mean'], allb['density_sd'], 4)}")

    d3 = density_change_summary(seg, last_day=1).set_index(["group", "day"])
    for g in groups:
        v = [d3.loc[(g, -1.0), "mean"], d3.loc[(g, -1.0), "sem"],
             d3.loc[(g, 1.0), "mean"], d3.loc[(g, 1.0), "sem"]]
        add(f"C4-{g}", f"{g}: density change from baseline (%), included segments, days "
            "-1 / 1 (mean ± SEM)", v, f"{_pm(v[0], v[1], 2)} / {_pm(v[2], v[3], 2)}")
    d7 = density_change_summary(seg, segment_set="long_term").set_index(["group", "day"])
    later = (-1.0, 1.0, 3.0, 5.0, 10.0, 15.0)
    for g in groups:
        v = [d7.loc[(g, x), "mean"] for x in later]
        add(f"C5-{g}", f"{g}: density change (%), 7-session segments, days -1 / 1 / 3 / 5 / "
            "10 / 15 (mean)", v, " / ".join(_fmt(x, 1) for x in v))
    diff = [d7.loc[("ketamine", x), "mean"] - d7.loc[("saline", x), "mean"] for x in later[1:]]
    add("C6", "ketamine minus saline density change (points), 7-session set, days 1 / 3 / 5 "
        "/ 10 / 15", diff, " / ".join(_fmt(x, 1, sign=True) for x in diff))

    t3 = turnover_change_summary(tt, last_day=1).set_index(["group", "measure", "day_end"])
    for g in groups:
        f, e = t3.loc[(g, "formation", 1.0)], t3.loc[(g, "elimination", 1.0)]
        v = (f["mean"], f["sem"], e["mean"], e["sem"])
        add(f"C7-{g}", f"{g}: change from the interval-1 baseline (points), interval day "
            "-1 to 1: formation / elimination (mean ± SEM)", v,
            f"{_pm(v[0], v[1], 2)} / {_pm(v[2], v[3], 2)}")
    t7 = turnover_change_summary(tt, segment_set="long_term").set_index(
        ["group", "measure", "day_end"])
    for g in ("ketamine", "saline"):
        for m, short_m in (("formation", "form"), ("elimination", "elim")):
            v = [t7.loc[(g, m, x), "mean"] for x in (-1.0, *later[1:])]
            add(f"C8-{g}-{short_m}", f"{g}: {m} change (points, 5-day intervals x 2/5), "
                "7-session set, intervals ending day -1 / 1 / 3 / 5 / 10 / 15", v,
                " / ".join(_fmt(x, 1) for x in v))

    ln = length_change(seg).set_index("group")
    for g in groups:
        add(f"C9-{g}", f"{g}: dendritic length change baseline to day 1 (%, mean ± SEM)",
            (ln.loc[g, "mean"], ln.loc[g, "sem"]), _pm(ln.loc[g, "mean"], ln.loc[g, "sem"], 2))
    k = ln.loc["ketamine"]
    add("C10", "ketamine segments that lost > 1% length by day 1 / did not",
        (k["n_lost"], k["n_not_lost"]), f"{int(k['n_lost'])} / {int(k['n_not_lost'])}")

    ud = up_down_test(seg).set_index("group")
    s_, k_ = ud.loc["saline"], ud.loc["ketamine"]
    chi2, p = float(ud["chi2"].iat[0]), float(ud["p"].iat[0])
    add("C11", "segments with day-1 density below / at-or-above baseline: saline; ketamine; "
        "chi-square (1 df), p",
        (s_["below"], s_["at_or_above"], k_["below"], k_["at_or_above"], chi2, p),
        f"{int(s_['below'])}/{int(s_['at_or_above'])}; {int(k_['below'])}/"
        f"{int(k_['at_or_above'])}; χ² = {chi2:.2f}, p = {p:.4f}")

    ps = persistence_summary(per).set_index(["group", "followup_day"])
    for g in groups:
        v = []
        for x in (5.0, 10.0, 15.0):
            v += [ps.loc[(g, x), "mean"], ps.loc[(g, x), "sem"]]
        add(f"C12-{g}", f"{g}: % of day-1 new spines still present on day 5 / 10 / 15 "
            "(mean ± SEM over segments)", v,
            " / ".join(_pm(v[i], v[i + 1], 2) for i in (0, 2, 4)))
    ns = new_spine_summary(per).set_index("group")
    v = (ns.loc["saline", "mean"], ns.loc["saline", "n_segments"],
         ns.loc["ketamine", "mean"], ns.loc["ketamine", "n_segments"])
    add("C13", "new spines on day 1 per segment in the persistence set: saline / ketamine "
        "(mean; segments)", v,
        f"{_fmt(v[0], 2)} (n = {int(v[1])}) / {_fmt(v[2], 2)} (n = {int(v[3])})")

    male = density_change_summary(seg, last_day=1, mice=mice, sex="M").set_index(
        ["group", "day"])
    for g in groups:
        v = [male.loc[(g, -1.0), "mean"], male.loc[(g, -1.0), "sem"],
             male.loc[(g, 1.0), "mean"], male.loc[(g, 1.0), "sem"]]
        add(f"C14-{g}", f"{g}, males only: density change (%), days -1 / 1 (mean ± SEM over "
            "all segments of the set)", v, f"{_pm(v[0], v[1], 2)} / {_pm(v[2], v[3], 2)}")
    return pd.DataFrame(rows, columns=["check", "quantity", "values", "text"])
