"""The spine tracking table: read, validate and index longitudinal spine imaging.

One row per spine per imaging session (format in ``docs/spine_tracking_table.md``). The
same table comes from ketasim's simulated imaging (``SpineRecording.table``) and from a
lab's two-photon scoring, so both go through the statistics in
:mod:`ketasim.analysis.spines`.

A spine is identified by ``(arm, subject, branch, spine_id)``: subject ids need only be
unique within an arm. A branch counts as imaged at a session when it has at least one row
at that time; a spine is absent in an imaged session where it has no row with
``present=True``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis._tables import Source, first_true, load_table, parse_bools, parse_ids

REQUIRED_COLUMNS = ("subject", "branch", "spine_id", "time_h", "position_um", "present",
                    "branch_length_um")
OPTIONAL_COLUMNS = ("arm", "size", "class", "origin")
SPINE_CLASSES = ("filopodium", "thin", "stubby", "mushroom")
# ground-truth origin labels written by the simulator (ketasim.spines.engine.ORIGINS)
SPINE_ORIGINS = ("preexisting", "de_novo", "restored")
DEFAULT_ARM = "all"
BRANCH_KEY = ["arm", "subject", "branch"]
SPINE_KEY = [*BRANCH_KEY, "spine_id"]
TIME_TOL_H = 1e-6  # session times closer than this are the same session
POSITION_TOL_UM = 1e-9  # rounding slack for a spine sitting at the distal end

_ID_COLUMNS = ("arm", "subject", "branch", "spine_id")
_FLOAT_COLUMNS = ("time_h", "position_um", "branch_length_um", "size")
_LABEL_COLUMNS = {"class": SPINE_CLASSES, "origin": SPINE_ORIGINS}


class TrackingTableError(ValueError):
    """A tracking table that cannot be read or breaks the format (one-line message)."""


class _Source(Source):
    """Where a tracking table came from (file, column, row) for error messages."""

    error = TrackingTableError

    def fail(self, column: str | None, pos: int | None, what: str,
             value: object = None) -> TrackingTableError:
        return self.locate(column, pos, what=what, value=value)


def read_tracking_table(path_or_df: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read and validate a spine tracking table.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        A ``.csv`` or ``.parquet`` (``.pq``) file, or a DataFrame with the same columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, spine_id`` (str), ``time_h, position_um``
        (float64), ``present`` (bool), ``branch_length_um`` (float64), then ``size``
        (float64), ``class`` and ``origin`` (str or NaN) where given, then any extra
        columns unchanged; sorted by arm, subject, branch, time_h, position_um. Session
        times closer than ``TIME_TOL_H`` are one session: they are all set to one time
        (the one with the most rows; the earliest on a tie), so every function sees one
        session and a spine with two rows there is a duplicate.

    Raises
    ------
    TrackingTableError
        With one line naming the file, the column, the first offending row (1-based data
        row; for CSV also the file line) and what was expected; also for session times
        that chain within ``TIME_TOL_H`` of each other but span more than it (no one
        session time for them).
    """
    df, src = _load(path_or_df)
    repeated = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if repeated:
        raise src.fail(None, None, "repeated column name(s) "
                       + ", ".join(f"'{c}'" for c in repeated))
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise src.fail(None, None, "missing required column(s) "
                       + ", ".join(f"'{c}'" for c in missing)
                       + " (required: " + ", ".join(REQUIRED_COLUMNS) + ")")
    out: dict[str, object] = {}
    if "arm" not in df.columns:
        out["arm"] = np.full(len(df), DEFAULT_ARM, dtype=object)
    for col in [*_ID_COLUMNS, *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]:
        if col in out or col not in df.columns:
            continue
        s = df[col]
        required = col != "size" and col not in _LABEL_COLUMNS
        if required:
            _no_missing(s, col, src)
        if col in _ID_COLUMNS:
            out[col] = _to_id(s, col, src)
        elif col in _FLOAT_COLUMNS:
            out[col] = _to_float(s, col, src)
        elif col == "present":
            out[col] = _to_bool(s, col, src)
        else:
            out[col] = _to_label(s, col, src)
    extras = [c for c in df.columns if c not in out]
    table = pd.DataFrame(out, index=df.index)
    for c in extras:
        table[c] = df[c].to_numpy()
    raw_times = table["time_h"].to_numpy(copy=True)
    table["time_h"] = _snap_times(raw_times, src)
    _check_values(table, src, raw_times)
    order = [*BRANCH_KEY, "spine_id", "time_h", "position_um", "present", "branch_length_um",
             *[c for c in ("size", "class", "origin") if c in table.columns], *extras]
    table = table[order].sort_values([*BRANCH_KEY, "time_h", "position_um"], kind="stable")
    return table.reset_index(drop=True)


def _load(obj: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, _Source]:
    return load_table(obj, _Source)


def _no_missing(s: pd.Series, col: str, src: _Source) -> None:
    pos = first_true(s.isna().to_numpy())
    if pos is not None:
        raise src.fail(col, pos, "missing value (required column)")


def _to_id(s: pd.Series, col: str, src: _Source) -> np.ndarray:
    return parse_ids(s.to_numpy(dtype=object), col, src)


def _to_float(s: pd.Series, col: str, src: _Source) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        bad = s.notna().to_numpy()
        values = np.full(len(s), np.nan)
    elif pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        bad = np.zeros(len(s), dtype=bool)
    else:
        obj = s.astype(object)
        # only text and plain numbers: bools, dates and durations are not silently cast
        plain = obj.map(_is_plain_scalar).to_numpy(dtype=bool)
        text = obj.map(lambda v: v.strip() if isinstance(v, str) else v)
        try:
            values = np.asarray(pd.to_numeric(text, errors="coerce"), dtype=float)
        except (TypeError, ValueError, OverflowError):
            values = np.array([_float_or_nan(v) for v in text], dtype=float)
        present = obj.notna().to_numpy()
        bad = present & (~plain | np.isnan(values))
    bad |= np.isinf(values)
    pos = first_true(bad)
    if pos is not None:
        raise src.fail(col, pos, "expected a finite number", s.iloc[pos])
    return values


def _is_plain_scalar(v: object) -> bool:
    return (isinstance(v, (str, int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))


def _float_or_nan(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return np.nan


def _to_bool(s: pd.Series, col: str, src: _Source) -> np.ndarray:
    return parse_bools(s, col, src)


def _to_label(s: pd.Series, col: str, src: _Source) -> np.ndarray:
    allowed = _LABEL_COLUMNS[col]
    values = s.to_numpy(dtype=object)
    out = np.full(len(values), np.nan, dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue  # optional column: not scored for this row
        key = v.strip().lower() if isinstance(v, str) else None
        if key not in allowed:
            raise src.fail(col, i, "expected one of " + ", ".join(allowed), v)
        out[i] = key
    return out


def _snap_times(times: np.ndarray, src: _Source) -> np.ndarray:
    """Session times closer than ``TIME_TOL_H`` (chained) set to one time: the one with the
    most rows (the earliest on a tie)."""
    u, inv, counts = np.unique(times, return_inverse=True, return_counts=True)
    if u.size < 2:
        return times
    close = np.diff(u) <= TIME_TOL_H
    if not close.any():
        return times
    cluster = np.concatenate([[0], np.cumsum(~close)])
    rep = u.copy()
    for c in np.unique(cluster[1:][close]):
        members = np.flatnonzero(cluster == c)
        lo, hi = u[members[0]], u[members[-1]]
        if hi - lo > TIME_TOL_H:
            i = first_true(times == hi)
            j = first_true(times == lo)
            raise src.fail("time_h", i,
                           f"session times from {lo!r} h (row {src.rows[j]}) to {hi!r} h "
                           f"are each within {TIME_TOL_H:g} h of the next (one session) but "
                           f"span more than {TIME_TOL_H:g} h; write one time per session",
                           hi)
        rep[members] = u[members[np.argmax(counts[members])]]
    return rep[inv.reshape(-1)]


def _check_values(t: pd.DataFrame, src: _Source, raw_times: np.ndarray | None = None
                  ) -> None:
    pos = t["position_um"].to_numpy()
    length = t["branch_length_um"].to_numpy()
    i = first_true(length <= 0)
    if i is not None:
        raise src.fail("branch_length_um", i, "expected a length > 0", length[i])
    i = first_true(pos < 0)
    if i is not None:
        raise src.fail("position_um", i, "expected a position >= 0", pos[i])
    if "size" in t.columns:
        size = t["size"].to_numpy()
        i = first_true(size <= 0)
        if i is not None:
            raise src.fail("size", i, "expected a size > 0", size[i])
    first_len = t.groupby(BRANCH_KEY, sort=False)["branch_length_um"].transform("first")
    i = first_true(first_len.to_numpy() != length)
    if i is not None:
        raise src.fail("branch_length_um", i,
                       f"expected the same length within subject {t['subject'].iat[i]!r} "
                       f"branch {t['branch'].iat[i]!r} ({first_len.iat[i]:g} um in its first "
                       "row)", length[i])
    i = first_true(pos > length + POSITION_TOL_UM)
    if i is not None:
        raise src.fail("position_um", i,
                       f"expected a position <= branch_length_um ({length[i]:g} um)", pos[i])
    key = [*SPINE_KEY, "time_h"]
    dup = t.duplicated(key, keep="first").to_numpy()
    i = first_true(dup)
    if i is not None:
        same = (t[key] == t[key].iloc[i]).all(axis=1).to_numpy()
        j = first_true(same)
        snapped = ""
        if raw_times is not None and raw_times[i] != raw_times[j]:
            snapped = (f" (time_h {raw_times[j]!r} there and {raw_times[i]!r} here are "
                       f"within {TIME_TOL_H:g} h: one session)")
        raise src.fail("spine_id", i,
                       f"duplicate row for spine {t['spine_id'].iat[i]!r} of subject "
                       f"{t['subject'].iat[i]!r} branch {t['branch'].iat[i]!r} at time_h "
                       f"{t['time_h'].iat[i]:g}, already in row {src.rows[j]}{snapped} "
                       "(one row per spine per session expected)")


def sessions(table: pd.DataFrame) -> np.ndarray:
    """Sorted distinct session times (h) in the table, over all branches."""
    return np.unique(table["time_h"].to_numpy(dtype=float))


def imaged_sessions(table: pd.DataFrame) -> pd.DataFrame:
    """The sessions at which each branch was imaged (has at least one row).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, branch_length_um, time_h``, one row per branch and
        session, sorted.
    """
    cols = [*BRANCH_KEY, "branch_length_um", "time_h"]
    return (table[cols].drop_duplicates([*BRANCH_KEY, "time_h"])
            .sort_values([*BRANCH_KEY, "time_h"]).reset_index(drop=True))


def rows_at(table: pd.DataFrame, time_h: float) -> pd.DataFrame:
    """The rows of the session at ``time_h`` (within ``TIME_TOL_H``)."""
    return table.loc[np.abs(table["time_h"].to_numpy(dtype=float) - time_h) <= TIME_TOL_H]


def branches_imaged_at(table: pd.DataFrame, *times_h: float) -> pd.DataFrame:
    """The branches imaged at every one of ``times_h``.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, branch_length_um``, sorted.
    """
    out = table[[*BRANCH_KEY, "branch_length_um"]].drop_duplicates(BRANCH_KEY)
    for t in times_h:
        out = out.merge(rows_at(table, t)[BRANCH_KEY].drop_duplicates(), on=BRANCH_KEY)
    return out.sort_values(BRANCH_KEY).reset_index(drop=True)


def session_pair(table: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    """Each spine seen at ``t0`` or ``t1``, on branches imaged at both sessions.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t0, t1 : float
        Session times (h).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, spine_id, branch_length_um, present_t0,
        present_t1, position_t0_um, position_t1_um`` (positions NaN where absent), one
        row per spine present in either session, sorted by branch and position.
    """
    a0, a1 = rows_at(table, t0), rows_at(table, t1)
    both = branches_imaged_at(table, t0, t1)
    cols = [*SPINE_KEY, "position_um"]
    p0 = a0.loc[a0["present"], cols].rename(columns={"position_um": "position_t0_um"})
    p1 = a1.loc[a1["present"], cols].rename(columns={"position_um": "position_t1_um"})
    m = p0.merge(p1, on=SPINE_KEY, how="outer").merge(both, on=BRANCH_KEY)
    m["present_t0"] = m["position_t0_um"].notna()
    m["present_t1"] = m["position_t1_um"].notna()
    m["_pos"] = m["position_t0_um"].fillna(m["position_t1_um"])
    m = m.sort_values([*BRANCH_KEY, "_pos", "spine_id"], kind="stable")
    return m[[*SPINE_KEY, "branch_length_um", "present_t0", "present_t1", "position_t0_um",
              "position_t1_um"]].reset_index(drop=True)


@dataclass(frozen=True)
class BranchPresence:
    """Presence of every spine of one branch across the sessions it was imaged at.

    Attributes
    ----------
    arm, subject, branch : str
        The branch.
    branch_length_um : float
        Branch length.
    spine_ids : numpy.ndarray
        (n_spines,) spine ids, ordered by first position seen.
    times_h : numpy.ndarray
        (n_sessions,) sorted session times.
    present : numpy.ndarray
        (n_spines, n_sessions) bool.
    position_um : numpy.ndarray
        (n_spines, n_sessions) float, NaN where absent.
    """

    arm: str
    subject: str
    branch: str
    branch_length_um: float
    spine_ids: np.ndarray
    times_h: np.ndarray
    present: np.ndarray
    position_um: np.ndarray


def presence_matrices(table: pd.DataFrame) -> Iterator[BranchPresence]:
    """Yield the presence matrix of each branch of a validated table, in table order."""
    imaged = imaged_sessions(table)
    live = table.loc[table["present"]]
    live_groups = dict(iter(live.groupby(BRANCH_KEY, sort=False)))
    for key, sess in imaged.groupby(BRANCH_KEY, sort=True):
        times = sess["time_h"].to_numpy(dtype=float)
        rows = live_groups.get(key)
        if rows is None:
            ids = np.array([], dtype=object)
            present = np.zeros((0, times.size), dtype=bool)
            pos = np.zeros((0, times.size))
        else:
            pos_wide = rows.pivot(index="spine_id", columns="time_h", values="position_um")
            pos_wide = pos_wide.reindex(columns=times)
            first = pos_wide.bfill(axis=1).iloc[:, 0].to_numpy()
            order = np.lexsort((pos_wide.index.to_numpy(dtype=str), first))
            pos = pos_wide.to_numpy(dtype=float)[order]
            ids = pos_wide.index.to_numpy(dtype=object)[order]
            present = ~np.isnan(pos)
        yield BranchPresence(key[0], key[1], key[2], float(sess["branch_length_um"].iat[0]),
                             ids, times, present, pos)


def presence_matrix(table: pd.DataFrame, subject: str, branch: str,
                    arm: str | None = None) -> BranchPresence:
    """The presence matrix of one branch (``arm`` may be left out when it is unambiguous)."""
    sel = (table["subject"] == str(subject)) & (table["branch"] == str(branch))
    if arm is not None:
        sel &= table["arm"] == str(arm)
    sub = table.loc[sel]
    arms = sub["arm"].unique()
    if len(arms) != 1:
        what = "not in the table" if len(arms) == 0 else f"in several arms {list(arms)}"
        raise KeyError(f"subject {subject!r} branch {branch!r} {what}")
    return next(presence_matrices(sub))
