"""Behavioural scoring as labs score it, for simulated and recorded sessions alike.

Each test has a documented input table (``docs/calcium_and_behavior_data.md``) read from
a CSV/Parquet file or a DataFrame and checked with one-line errors naming the file, the
column and the row, and a scoring function returning one row per subject (or per bin,
trial or day):

- tail suspension test (Steru et al. 1985, Psychopharmacology 85:367): immobility over
  the 6 min test or its last 4 min, bouts per state, struggle onsets for peri-event
  calcium analysis (:func:`read_tst_table`, :func:`score_tst`, :func:`tst_bouts_from_states`,
  :func:`struggle_onsets`; SEED-FACTS F-M-1, F-M-4, F-M-10, F-M-12);
- sucrose preference, sucrose / (sucrose + water) intake (:func:`sucrose_preference`;
  F-M-1, F-M-13);
- learned helplessness, escape failures in an avoidable-shock test after inescapable
  shock (Seligman & Maier 1967, J Exp Psychol 74:1) (:func:`learned_helplessness`;
  F-W-15..17);
- open field, distance travelled per time bin (:func:`open_field_locomotion`,
  :func:`binned_distance`; F-W-7, acute hyperlocomotion);
- fear extinction, freezing % per trial and block (:func:`freezing_per_trial`; F-K-15).

Subject ids need only be unique within an arm (column ``arm``, default ``"all"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis._tables import (
    Source,
    csv_dialect,
    first_true,
    load_table,
    parse_bools,
    parse_ids,
)

__all__ = [
    "TST_DURATION_S",
    "TST_LAST_4_MIN_S",
    "TST_STATES",
    "BehaviorDataError",
    "FreezingResult",
    "binned_distance",
    "extinction_freezing",
    "freezing_per_trial",
    "learned_helplessness",
    "open_field_locomotion",
    "read_tst_table",
    "score_tst",
    "struggle_onsets",
    "sucrose_preference",
    "tst_bouts_from_states",
]

# Tail suspension: a 6 min test (Steru et al. 1985, Psychopharmacology 85:367). Many labs
# score only the last 4 min, the first 2 min being mostly struggling (e.g. Can et al.
# 2012, J Vis Exp 59:e3769); pass window_s=TST_LAST_4_MIN_S for that.
TST_DURATION_S = 360.0
TST_LAST_4_MIN_S = (120.0, 360.0)
TST_STATES = ("immobile", "struggle")
# Sucrose preference below 65% marks an anhedonic mouse in the chronic stress model of
# Strekalova et al. 2004 (Neuropsychopharmacology 29:2007); a lab criterion, not a law.
ANHEDONIA_PREFERENCE = 0.65
# Learned helplessness: a mouse failing to escape in >= 5 of 15 trials is classed
# helpless. A lab convention (criteria in use range over roughly 5-10 failures out of
# 15-30 trials; the paradigm is Seligman & Maier 1967, reviewed by Maier & Seligman 2016,
# Psychol Rev 123:349); set it to your lab's.
HELPLESS_MIN_FAILURES = 5
LH_TRIALS = 15
# Open field: distance in 5 min bins (assumed; the common bin for ketamine locomotion
# time courses).
OPEN_FIELD_BIN_S = 300.0
TIME_TOL_S = 1e-6  # bout edges closer than this (s) touch

DEFAULT_ARM = "all"


class BehaviorDataError(ValueError):
    """A behaviour table that cannot be read or breaks the format (one-line message)."""


# ---------------------------------------------------------------------- table reading


class _Source(Source):
    """Where a behaviour table came from (file, column, row) for error messages."""

    error = BehaviorDataError

    def fail(self, column: str | None, pos: int | None, what: str,
             value: object = None) -> BehaviorDataError:
        return self.locate(column, pos, what=what, value=value)


def _load(obj: str | Path | pd.DataFrame, required: tuple[str, ...], fmt: str
          ) -> tuple[pd.DataFrame, _Source]:
    """Read a table (every CSV cell as text, so bad cells are reported, not coerced)."""
    df, src = load_table(obj, _Source)
    return _require(df, src, required, fmt)


def _require(df: pd.DataFrame, src: _Source, required: tuple[str, ...], fmt: str
             ) -> tuple[pd.DataFrame, _Source]:
    """A loaded table with distinct column names, the ``required`` ones and a row."""
    repeated = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if repeated:
        raise src.fail(None, None, "repeated column name(s) "
                       + ", ".join(f"'{c}'" for c in repeated))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise src.fail(None, None, "missing required column(s) "
                       + ", ".join(f"'{c}'" for c in missing) + f" ({fmt})")
    if len(df) == 0:
        raise src.fail(None, None, "no rows")
    return df, src


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _ids(df: pd.DataFrame, col: str, src: _Source, default: str | None = None) -> np.ndarray:
    """An id column as stripped strings (integers written without a decimal point)."""
    if col not in df.columns:
        return np.full(len(df), default, dtype=object)
    return parse_ids(df[col].to_numpy(dtype=object), col, src)


def _floats(df: pd.DataFrame, col: str, src: _Source, allow_missing: bool = False
            ) -> np.ndarray:
    """A number column as float64: text, booleans, NaN (unless allowed) and inf fail."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s.dtype):
        raise src.fail(col, 0, "expected a finite number", s.iloc[0])
    out = np.empty(len(s))
    for i, v in enumerate(s.to_numpy(dtype=object)):
        if _missing(v):
            if not allow_missing:
                raise src.fail(col, i, "missing value (required column)")
            out[i] = np.nan
            continue
        x = np.nan
        if isinstance(v, str):
            try:
                x = float(v.strip())
            except ValueError:
                x = np.nan
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                v, (bool, np.bool_)):
            x = float(v)
        if not np.isfinite(x):
            raise src.fail(col, i, "expected a finite number", v)
        out[i] = x
    return out


def _bools(df: pd.DataFrame, col: str, src: _Source) -> np.ndarray:
    return parse_bools(df[col], col, src)


def _no_duplicates(keys: pd.DataFrame, src: _Source, column: str, what: str) -> None:
    dup = keys.duplicated(keep="first").to_numpy()
    i = first_true(dup)
    if i is not None:
        same = (keys == keys.iloc[i]).all(axis=1).to_numpy()
        desc = ", ".join(f"{c} {keys[c].iat[i]!r}" for c in keys.columns)
        raise src.fail(column, i, f"duplicate {what} ({desc}), already in row "
                       f"{src.rows[first_true(same)]}")


def _extras(df: pd.DataFrame, out: pd.DataFrame, used: tuple[str, ...]) -> pd.DataFrame:
    for c in df.columns:
        if c not in used and c not in out.columns:
            out[c] = df[c].to_numpy()
    return out


# ------------------------------------------------------------------ tail suspension


TST_COLUMNS = ("subject", "start_s", "end_s", "state")


def read_tst_table(path_or_df: str | Path | pd.DataFrame, *,
                   duration_s: float = TST_DURATION_S) -> pd.DataFrame:
    """Read and check a tail suspension ethogram: one row per scored bout.

    Parameters
    ----------
    path_or_df : str, pathlib.Path or pandas.DataFrame
        A ``.csv`` or ``.parquet`` (``.pq``) file, or a DataFrame, with columns
        ``subject``, ``start_s``, ``end_s`` (s from the start of suspension) and
        ``state`` (``immobile`` or ``struggle``, case-insensitive); optional ``arm``.
        Other columns are kept. Time not covered by a bout is unscored.
    duration_s : float, default 360
        Test length (s; Steru et al. 1985: 6 min).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject`` (str), ``start_s, end_s`` (float64), ``state`` (str),
        then the extra columns; sorted by arm, subject, start_s.

    Raises
    ------
    BehaviorDataError
        One line naming the file, column and row: missing columns, missing or
        non-numeric values, negative start, a bout that does not end after it starts,
        a bout past ``duration_s``, an unknown state, or two bouts of one subject that
        overlap.
    """
    df, src = _load(path_or_df, TST_COLUMNS, "an ethogram: subject, start_s, end_s, state")
    arm = _ids(df, "arm", src, DEFAULT_ARM)
    subject = _ids(df, "subject", src)
    start = _floats(df, "start_s", src)
    end = _floats(df, "end_s", src)
    state = np.empty(len(df), dtype=object)
    for i, v in enumerate(df["state"].to_numpy(dtype=object)):
        key = v.strip().lower() if isinstance(v, str) else None
        if key not in TST_STATES:
            raise src.fail("state", i, "expected one of " + ", ".join(TST_STATES), v)
        state[i] = key
    i = first_true(start < 0)
    if i is not None:
        raise src.fail("start_s", i, "expected a start >= 0 s (time from suspension)",
                       start[i])
    i = first_true(end <= start)
    if i is not None:
        raise src.fail("end_s", i, f"expected end_s > start_s ({start[i]:g} s): a bout of "
                       "negative or zero length", end[i])
    i = first_true(end > duration_s + TIME_TOL_S)
    if i is not None:
        raise src.fail("end_s", i, f"bout ends beyond the test duration ({duration_s:g} s)",
                       end[i])
    table = pd.DataFrame({"arm": arm, "subject": subject, "start_s": start, "end_s": end,
                          "state": state})
    order = np.lexsort((start, subject, arm))
    t = table.iloc[order]
    same = (t["arm"].to_numpy()[1:] == t["arm"].to_numpy()[:-1]) & (
        t["subject"].to_numpy()[1:] == t["subject"].to_numpy()[:-1])
    overlap = same & (t["start_s"].to_numpy()[1:] < t["end_s"].to_numpy()[:-1] - TIME_TOL_S)
    k = first_true(overlap)
    if k is not None:
        pos, prev = int(order[k + 1]), int(order[k])
        raise src.fail("start_s", pos, f"bout overlaps the bout of subject "
                       f"{subject[pos]!r} in row {src.rows[prev]} ({start[prev]:g}-"
                       f"{end[prev]:g} s)", start[pos])
    table = _extras(df, table, ("arm", *TST_COLUMNS))
    return table.iloc[order].reset_index(drop=True)


def tst_bouts_from_states(states: np.ndarray | list, frame_rate_hz: float, *,
                          subject: str = "1", arm: str = DEFAULT_ARM,
                          min_immobile_s: float = 0.0) -> pd.DataFrame:
    """Turn a per-frame (or per-bin) state series into an ethogram.

    Parameters
    ----------
    states : array-like
        One state per frame: bool (True = immobile) or ``"immobile"``/``"struggle"``.
    frame_rate_hz : float
        Frames (or bins) per second; frame ``k`` covers ``[k, k + 1) / frame_rate_hz``.
    subject, arm : str
        Labels for the rows.
    min_immobile_s : float, default 0
        Immobile runs shorter than this (s) count as struggling, as automated scoring
        often requires a minimum immobility duration (lab-specific; 0 keeps every run).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, start_s, end_s, state``: one row per run of equal states.
    """
    s = np.asarray(states)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"states must be a non-empty 1-D series, got shape {s.shape}")
    if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    if s.dtype == bool:
        immobile = s
    else:
        labels = np.char.lower(np.char.strip(s.astype(str)))
        bad = ~np.isin(labels, TST_STATES)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"states[{k}]: expected one of {', '.join(TST_STATES)} or a bool,"
                             f" got {s[k]!r}")
        immobile = labels == "immobile"
    immobile = immobile.copy()
    min_frames = int(np.ceil(min_immobile_s * frame_rate_hz - 1e-9))
    if min_frames > 1:
        d = np.diff(np.concatenate(([0], immobile.view(np.int8), [0])))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            if b - a < min_frames:
                immobile[a:b] = False
    change = np.flatnonzero(immobile[1:] != immobile[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [immobile.size]))
    return pd.DataFrame({"arm": arm, "subject": str(subject),
                         "start_s": starts / frame_rate_hz, "end_s": ends / frame_rate_hz,
                         "state": np.where(immobile[starts], "immobile", "struggle")})


TST_SCORE_COLUMNS = ["arm", "subject", "window_start_s", "window_end_s", "immobility_s",
                     "immobility_pct", "struggle_s", "unscored_s", "n_immobile_bouts",
                     "n_struggle_bouts", "mean_immobile_bout_s", "mean_struggle_bout_s",
                     "latency_to_immobility_s"]


def _time_series(arm: np.ndarray, subject: np.ndarray, t: np.ndarray, src: _Source,
                 what: str):
    """Per (arm, subject), in order: its row positions and their time steps, checked to
    hold two or more rows with ``time_s`` increasing (one error naming the row)."""
    key = pd.DataFrame({"arm": arm, "subject": subject})
    for (a, sj), idx in key.groupby(["arm", "subject"], sort=True).indices.items():
        if idx.size < 2:
            raise src.fail("time_s", int(idx[0]), f"subject {sj!r} has a single {what}; at "
                           "least two are needed")
        step = np.diff(t[idx])
        k = first_true(step <= 0)
        if k is not None:
            raise src.fail("time_s", int(idx[k + 1]), f"expected time_s to increase within "
                           f"subject {sj!r}, got {t[idx[k + 1]]:g} after {t[idx[k]]:g}")
        yield a, sj, idx, step


def tst_bouts_from_frames(frames: str | Path | pd.DataFrame, *,
                          duration_s: float = TST_DURATION_S) -> pd.DataFrame:
    """Tail suspension bouts from a per-frame scoring (what automated systems export): one
    row per video frame with ``subject``, ``time_s`` (the frame's start, increasing within
    a subject) and ``immobile`` (true/false, 1/0), optional ``arm``. Frame ``k`` lasts
    until frame ``k + 1``; a subject's last frame lasts its median interval. Runs of one
    state become one bout (``immobile`` or ``struggle``), in :func:`read_tst_table`'s
    format, for :func:`score_tst`. Only the test is kept: frames before 0 s (a recording
    started early) or from ``duration_s`` on (one that runs past the test) are left out,
    and bouts are clipped to the test. A minimum bout length, where the scoring system
    applies one, is the system's setting: the frames are taken as scored."""
    df, src = _load(frames, ("subject", "time_s", "immobile"),
                    "per-frame scoring: subject, time_s, immobile, optional arm")
    arm, subject = _ids(df, "arm", src, DEFAULT_ARM), _ids(df, "subject", src)
    t = _floats(df, "time_s", src)
    imm = _bools(df, "immobile", src)
    bouts = []
    for a, sj, idx, step in _time_series(arm, subject, t, src, "frame"):
        ends = np.minimum(np.append(t[idx][1:], t[idx][-1] + float(np.median(step))),
                          duration_s)
        keep = (t[idx] < duration_s) & (ends > 0.0)  # within the test (0 to duration_s)
        if not keep.any():
            raise src.fail("time_s", int(idx[0]), f"subject {sj!r}: no frame falls within "
                           f"the test (0 to {duration_s:g} s)")
        idx, ends = idx[keep], ends[keep]
        starts = np.maximum(t[idx], 0.0)
        state = imm[idx]
        change = np.flatnonzero(np.diff(state.astype(np.int8))) + 1
        first = np.r_[0, change]
        last = np.r_[change, state.size] - 1
        bouts.append(pd.DataFrame({
            "arm": a, "subject": sj, "start_s": starts[first], "end_s": ends[last],
            "state": np.where(state[first], "immobile", "struggle")}))
    return pd.concat(bouts, ignore_index=True)


def _merged_bouts(t: pd.DataFrame) -> pd.DataFrame:
    """A checked ethogram (:func:`read_tst_table`: sorted by arm, subject, start) with
    each run of touching bouts of one state (a bout starting within 1e-6 s of the end of
    the subject's previous bout, in the same state) merged into one bout: how
    :func:`tst_bouts_from_states` and :func:`tst_bouts_from_frames` cut a state series
    (one bout per run of equal states), so a lab's ethogram that splits a bout (0-50 and
    50-100 s immobile) scores as the simulated path scores the same behaviour."""
    arm, subject = t["arm"].to_numpy(), t["subject"].to_numpy()
    state = t["state"].to_numpy()
    start, end = t["start_s"].to_numpy(), t["end_s"].to_numpy()
    cont = np.zeros(len(t), bool)
    cont[1:] = ((arm[1:] == arm[:-1]) & (subject[1:] == subject[:-1])
                & (state[1:] == state[:-1])
                & (np.abs(start[1:] - end[:-1]) <= TIME_TOL_S))
    if not cont.any():
        return t[["arm", "subject", "start_s", "end_s", "state"]].reset_index(drop=True)
    first = np.flatnonzero(~cont)
    last = np.r_[first[1:], len(t)] - 1
    return pd.DataFrame({"arm": arm[first], "subject": subject[first],
                         "start_s": start[first], "end_s": end[last],
                         "state": state[first]})


def score_tst(ethogram: str | Path | pd.DataFrame, *,
              window_s: tuple[float, float] = (0.0, TST_DURATION_S),
              duration_s: float = TST_DURATION_S) -> pd.DataFrame:
    """Score the tail suspension test per subject.

    Touching bouts of one state (the end of one within 1e-6 s of the start of the next:
    0-50 and 50-100 s immobile) are one bout, as in :func:`tst_bouts_from_states` (one
    bout per run of equal states), so a lab's ethogram and a simulated state series of
    the same behaviour give the same bout counts and durations. Bouts are clipped to
    the scoring window. Immobility % = immobile time / window
    length x 100 (unscored time counts as not immobile). Bout counts and mean durations
    use the clipped bouts; latency to immobility is the start of the first immobile bout
    in the window, from the window start (NaN if none).

    Parameters
    ----------
    ethogram : path or pandas.DataFrame
        A table in the :func:`read_tst_table` format (it is checked again).
    window_s : (float, float), default (0, 360)
        Scored part of the test (s); :data:`TST_LAST_4_MIN_S` for the last 4 min.
    duration_s : float, default 360
        Test length (s).

    Returns
    -------
    pandas.DataFrame
        One row per subject, columns :data:`TST_SCORE_COLUMNS` (times in s).
    """
    w0, w1 = (float(w) for w in window_s)
    if not 0 <= w0 < w1 <= duration_s + TIME_TOL_S:
        raise ValueError(f"window_s must satisfy 0 <= start < end <= duration_s "
                         f"({duration_s:g}), got {window_s}")
    t = _merged_bouts(read_tst_table(ethogram, duration_s=duration_s))
    start = np.clip(t["start_s"].to_numpy(), w0, w1)
    end = np.clip(t["end_s"].to_numpy(), w0, w1)
    t = t.assign(_len=end - start, _start=start)
    # a subject whose bouts all fall outside the window still gets a row (all zeros)
    inside = t["_len"].to_numpy() > TIME_TOL_S
    rows = []
    for (arm, subject), b in t.groupby(["arm", "subject"], sort=True):
        b = b.loc[inside[b.index]]
        imm = b.loc[b["state"] == "immobile", "_len"].to_numpy()
        stru = b.loc[b["state"] == "struggle", "_len"].to_numpy()
        first_imm = b.loc[b["state"] == "immobile", "_start"].to_numpy()
        rows.append({
            "arm": arm, "subject": subject, "window_start_s": w0, "window_end_s": w1,
            "immobility_s": imm.sum(), "immobility_pct": imm.sum() / (w1 - w0) * 100.0,
            "struggle_s": stru.sum(), "unscored_s": (w1 - w0) - imm.sum() - stru.sum(),
            "n_immobile_bouts": imm.size, "n_struggle_bouts": stru.size,
            "mean_immobile_bout_s": imm.mean() if imm.size else np.nan,
            "mean_struggle_bout_s": stru.mean() if stru.size else np.nan,
            "latency_to_immobility_s": first_imm.min() - w0 if first_imm.size else np.nan})
    out = pd.DataFrame(rows, columns=TST_SCORE_COLUMNS)
    out[["n_immobile_bouts", "n_struggle_bouts"]] = out[
        ["n_immobile_bouts", "n_struggle_bouts"]].astype(np.int64)
    return out


def struggle_onsets(ethogram: str | Path | pd.DataFrame, *, min_immobile_s: float = 0.0,
                    duration_s: float = TST_DURATION_S) -> pd.DataFrame:
    """The moments a mouse switches from immobility to struggling.

    An onset is the start of a struggle bout that begins where an immobile bout of at
    least ``min_immobile_s`` ends (within 1e-6 s). Touching bouts of one state count as
    one bout (as in :func:`score_tst`), so immobility written as 0-50 and 50-100 s is one
    immobile bout of 100 s. These are the events around which
    Moda-Sava et al. 2019 averaged vmPFC calcium (F-M-10); pass ``onset_s`` to
    :func:`ketasim.analysis.calcium.peri_event_average`, on the imaging clock.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, onset_s, preceding_immobile_s``, sorted.
    """
    t = _merged_bouts(read_tst_table(ethogram, duration_s=duration_s))
    same = ((t["arm"].to_numpy()[1:] == t["arm"].to_numpy()[:-1])
            & (t["subject"].to_numpy()[1:] == t["subject"].to_numpy()[:-1]))
    state = t["state"].to_numpy()
    touch = np.abs(t["start_s"].to_numpy()[1:] - t["end_s"].to_numpy()[:-1]) <= TIME_TOL_S
    prev_len = (t["end_s"] - t["start_s"]).to_numpy()[:-1]
    hit = (same & touch & (state[:-1] == "immobile") & (state[1:] == "struggle")
           & (prev_len >= min_immobile_s - TIME_TOL_S))
    nxt = t.iloc[1:].loc[hit]
    return pd.DataFrame({"arm": nxt["arm"].to_numpy(), "subject": nxt["subject"].to_numpy(),
                         "onset_s": nxt["start_s"].to_numpy(),
                         "preceding_immobile_s": prev_len[hit]})


# ------------------------------------------------------------------ sucrose preference


def sucrose_preference(intake: str | Path | pd.DataFrame, *,
                       anhedonia_threshold: float = ANHEDONIA_PREFERENCE) -> pd.DataFrame:
    """Sucrose preference = sucrose / (sucrose + water) intake, per subject and day.

    Parameters
    ----------
    intake : path or pandas.DataFrame
        Columns ``subject`` and either ``sucrose_g, water_g`` (bottle weight lost) or
        ``sucrose_ml, water_ml``; optional ``arm`` and ``day`` (one row per subject, or per
        subject and day). Other columns are kept.
    anhedonia_threshold : float, default 0.65
        ``anhedonic`` is ``preference < anhedonia_threshold`` (Strekalova et al. 2004).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, [day], sucrose, water, total, preference,
        preference_pct, anhedonic``, then the extra columns; intakes in the input unit.

    Raises
    ------
    BehaviorDataError
        Missing columns (or both or neither unit pair), missing or non-numeric values,
        negative intake, zero total intake, repeated subject-day rows, a column named
        like a computed one.
    ValueError
        An ``anhedonia_threshold`` that is not a number from 0 to 1.
    """
    df, src = _load(intake, ("subject",), "intake: subject, sucrose_g and water_g (or "
                    "sucrose_ml and water_ml), optional arm, day")
    units = [u for u in ("g", "ml") if f"sucrose_{u}" in df.columns or f"water_{u}" in df.columns]
    if len(units) != 1:
        what = "both g and ml columns" if units else "no intake columns"
        raise src.fail(None, None, f"{what}: expected sucrose_g and water_g, or sucrose_ml "
                       "and water_ml")
    sucrose_col, water_col = f"sucrose_{units[0]}", f"water_{units[0]}"
    for c in (sucrose_col, water_col):
        if c not in df.columns:
            raise src.fail(None, None, f"missing required column '{c}' (intake: subject, "
                           f"{sucrose_col}, {water_col})")
    if not (isinstance(anhedonia_threshold, (int, float, np.integer, np.floating))
            and not isinstance(anhedonia_threshold, bool)
            and 0.0 <= float(anhedonia_threshold) <= 1.0):
        raise ValueError("anhedonia_threshold must be a preference between 0 and 1, got "
                         f"{anhedonia_threshold!r}")
    # other columns are kept, so one named like a computed column would be lost
    for c in ("sucrose", "water", "total", "preference", "preference_pct", "anhedonic"):
        if c in df.columns:
            raise src.fail(c, None, "a column the analysis computes (sucrose, water, "
                           "total, preference, preference_pct, anhedonic): rename it to "
                           "keep it")
    out = pd.DataFrame({"arm": _ids(df, "arm", src, DEFAULT_ARM),
                        "subject": _ids(df, "subject", src)})
    key = ["arm", "subject"]
    if "day" in df.columns:
        out["day"] = _ids(df, "day", src)
        key.append("day")
    sucrose, water = _floats(df, sucrose_col, src), _floats(df, water_col, src)
    for col, v in ((sucrose_col, sucrose), (water_col, water)):
        i = first_true(v < 0)
        if i is not None:
            raise src.fail(col, i, "expected an intake >= 0", v[i])
    total = sucrose + water
    i = first_true(total <= 0)
    if i is not None:
        raise src.fail(water_col, i, f"zero total intake ({sucrose_col} + {water_col}): "
                       "preference undefined")
    _no_duplicates(out[key], src, "subject", "intake row")
    out["sucrose"], out["water"], out["total"] = sucrose, water, total
    out["preference"] = sucrose / total
    out["preference_pct"] = out["preference"] * 100.0
    out["anhedonic"] = out["preference"] < anhedonia_threshold
    out = _extras(df, out, ("arm", "subject", "day", sucrose_col, water_col))
    return out.sort_values(key, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- learned helplessness


LH_COLUMNS = ["arm", "subject", "n_trials", "n_failures", "failure_pct", "mean_latency_s",
              "helpless"]


def learned_helplessness(trials: str | Path | pd.DataFrame, *, cutoff_s: float | None = None,
                         helpless_min_failures: int = HELPLESS_MIN_FAILURES,
                         n_trials: int | None = None) -> pd.DataFrame:
    """Escape failures in the avoidable-shock test, and the helpless classification.

    A trial is a failure when the mouse did not escape before the cutoff: ``escaped`` is
    false where that column is given, else ``latency_s >= cutoff_s``. Mean latency counts a
    failure at the cutoff (a failed trial's written ``latency_s`` is not used, even where
    it is below the cutoff). A subject is helpless with at least ``helpless_min_failures``
    failures (default 5, for 15 trials; a lab convention, see
    ``HELPLESS_MIN_FAILURES``).

    Parameters
    ----------
    trials : path or pandas.DataFrame
        Columns ``subject, trial, latency_s``; optional ``arm``, ``escaped`` (bool) and
        ``cutoff_s`` (per trial, instead of the argument).
    cutoff_s : float, optional
        Trial length (s) without escape; required unless the table has ``cutoff_s``, and
        refused when it has (the cutoff is given one way only).
    helpless_min_failures : int, default 5
    n_trials : int, optional
        Expected trials per subject (checked when given; 15 is common).

    Returns
    -------
    pandas.DataFrame
        One row per subject, columns :data:`LH_COLUMNS`.

    Raises
    ------
    BehaviorDataError
        Missing columns or cutoff, both a ``cutoff_s`` column and argument, non-numeric
        or negative latency, latency beyond the cutoff, ``escaped`` true at or after the cutoff, repeated trials, wrong number of
        trials.
    """
    df, src = _load(trials, ("subject", "trial", "latency_s"),
                    "trials: subject, trial, latency_s, optional arm, escaped, cutoff_s")
    arm, subject = _ids(df, "arm", src, DEFAULT_ARM), _ids(df, "subject", src)
    trial = _ids(df, "trial", src)
    latency = _floats(df, "latency_s", src)
    if "cutoff_s" in df.columns:
        if cutoff_s is not None:
            raise src.fail("cutoff_s", None, f"a cutoff_s column and the argument cutoff_s="
                           f"{cutoff_s!r} both given: give the cutoff one way only")
        cutoff = _floats(df, "cutoff_s", src)
        i = first_true(cutoff <= 0)
        if i is not None:
            raise src.fail("cutoff_s", i, "expected a cutoff > 0 s", cutoff[i])
    elif cutoff_s is None:
        raise src.fail(None, None, "no cutoff: pass cutoff_s= or give a cutoff_s column")
    else:
        if not (np.isfinite(cutoff_s) and cutoff_s > 0):
            raise ValueError(f"cutoff_s must be > 0, got {cutoff_s}")
        cutoff = np.full(len(df), float(cutoff_s))
    i = first_true(latency < 0)
    if i is not None:
        raise src.fail("latency_s", i, "expected a latency >= 0 s", latency[i])
    i = first_true(latency > cutoff + TIME_TOL_S)
    if i is not None:
        raise src.fail("latency_s", i, f"latency beyond the cutoff ({cutoff[i]:g} s)",
                       latency[i])
    if "escaped" in df.columns:
        escaped = _bools(df, "escaped", src)
        i = first_true(escaped & (latency >= cutoff - TIME_TOL_S))
        if i is not None:
            raise src.fail("escaped", i, f"escaped is true but latency_s {latency[i]:g} "
                           f"reaches the cutoff ({cutoff[i]:g} s)")
    else:
        escaped = latency < cutoff - TIME_TOL_S
    # a failure enters the mean latency at the cutoff, whatever latency_s was written
    t = pd.DataFrame({"arm": arm, "subject": subject, "trial": trial, "failure": ~escaped,
                      "latency": np.where(escaped, np.minimum(latency, cutoff), cutoff)})
    _no_duplicates(t[["arm", "subject", "trial"]], src, "trial", "trial")
    g = t.groupby(["arm", "subject"], sort=True)
    out = g.agg(n_trials=("trial", "size"), n_failures=("failure", "sum"),
                mean_latency_s=("latency", "mean")).reset_index()
    if n_trials is not None:
        bad = out["n_trials"].to_numpy() != n_trials
        k = first_true(bad)
        if k is not None:
            raise src.fail("trial", None, f"subject {out['subject'].iat[k]!r} has "
                           f"{out['n_trials'].iat[k]} trials, expected {n_trials}")
    out["n_failures"] = out["n_failures"].astype(np.int64)
    out["failure_pct"] = out["n_failures"] / out["n_trials"] * 100.0
    out["helpless"] = out["n_failures"] >= helpless_min_failures
    return out[LH_COLUMNS]


# --------------------------------------------------------------------- fear extinction

EXTINCTION_COLUMNS = ["arm", "subject", "n_trials", "last_trials", "freezing_last_pct",
                      "extinction_freezing_fraction"]


def extinction_freezing(table: str | Path | pd.DataFrame, *, last: int = 5,
                        tone_s: float = 30.0, iti_s: float = 30.0,
                        n_trials: int | None = None) -> pd.DataFrame:
    """Freezing at the end of a cued fear extinction session, per subject: the mean
    freezing % over the last ``last`` tone presentations (the ``fear_extinction``
    assay's ``extinction_freezing_fraction``, as a fraction).

    Two layouts, told apart by their columns:

    - scored per trial (what FreezeFrame or ANY-maze export): ``subject, trial,
      freezing_pct`` (every trial numbered from 1 with none missing, freezing 0-100 %);
    - scored per frame: ``subject, time_s, freezing`` (freezing 0/1 or true/false, on a
      regular clock per subject); the tones are ``n_trials`` presentations of ``tone_s``
      every ``tone_s + iti_s`` from ``iti_s`` on (the simulated session's layout), scored
      by :func:`freezing_per_trial`. The clock is regular when every time lies within
      max(1 ms, 2 % of the frame interval), and never more than a quarter of the
      interval, of the straight line through the subject's first and last frame times:
      a clock written to the millisecond (each time within half a millisecond of a
      regular clock, 30 Hz as 0.033, 0.067, 0.100, ...) passes; a dropped frame or a
      jittering clock does not. The recording must cover every tone.

    An optional ``arm`` column is kept.

    Raises
    ------
    BehaviorDataError
        Missing columns, freezing outside 0-100 % (or not 0/1), trial numbers that are
        not whole numbers from 1, repeat or skip a trial, an irregular frame clock, a
        recording that starts after a tone's start or ends before the tones do, fewer
        trials than ``last``, a trial count other than ``n_trials`` (when given).
    """
    if int(last) < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    last = int(last)
    df, src = load_table(table, _Source)  # read once; the layout is told by the columns
    if "freezing_pct" in df.columns or "freezing" not in df.columns:  # per trial
        per_trial = _freezing_table(df, src)
    else:
        per_trial = _freezing_frames(df, src, tone_s, iti_s, n_trials)
    rows = []
    for (arm, subject), t in per_trial.groupby(["arm", "subject"], sort=True):
        t = t.sort_values("trial")
        numbers = t["trial"].to_numpy(np.int64)
        gap = np.setdiff1d(np.arange(1, numbers.max() + 1), numbers)
        if gap.size:  # the last tones would not be the session's last tones
            raise src.fail("trial", None, f"subject {subject!r}: trial {int(gap[0])} "
                           f"missing (trials up to {int(numbers.max())} given; expected "
                           "every trial from 1)")
        if n_trials is not None and len(t) != int(n_trials):
            raise src.fail("trial", None, f"subject {subject!r} has {len(t)} trials, "
                           f"expected {int(n_trials)}")
        if len(t) < last:
            raise src.fail("trial", None, f"subject {subject!r} has {len(t)} trials, "
                           f"fewer than the {last} the readout averages (option last)")
        pct = float(t["freezing_pct"].to_numpy(float)[-last:].mean())
        rows.append({"arm": arm, "subject": subject, "n_trials": len(t), "last_trials": last,
                     "freezing_last_pct": pct, "extinction_freezing_fraction": pct / 100.0})
    return pd.DataFrame(rows, columns=EXTINCTION_COLUMNS)


def _freezing_table(df: pd.DataFrame, src: _Source) -> pd.DataFrame:
    df, src = _require(df, src, ("subject", "trial", "freezing_pct"),
                    "a freezing table: subject, trial, freezing_pct (0-100), optional arm; "
                    "or per frame: subject, time_s, freezing (0/1)")
    arm, subject = _ids(df, "arm", src, DEFAULT_ARM), _ids(df, "subject", src)
    trial = _floats(df, "trial", src)
    i = first_true((trial < 1) | (trial != np.round(trial)))
    if i is not None:
        raise src.fail("trial", i, "expected a trial number 1, 2, ...", trial[i])
    pct = _floats(df, "freezing_pct", src)
    i = first_true((pct < 0) | (pct > 100))
    if i is not None:
        raise src.fail("freezing_pct", i, "expected a freezing % from 0 to 100", pct[i])
    t = pd.DataFrame({"arm": arm, "subject": subject,
                      "trial": pd.Series(trial.astype(np.int64).tolist(), dtype=object),
                      "freezing_pct": pct})
    _no_duplicates(t[["arm", "subject", "trial"]], src, "trial", "trial")
    return t


#: a per-frame clock is regular when each time is within this (s) of the line through
#: the first and last frame times (a clock written to the ms is within 0.5 ms of a
#: regular one, so within 1 ms of that line) ...
CLOCK_TOL_S = 1e-3
#: ... or this fraction of the frame interval where larger ...
CLOCK_TOL_FRACTION = 0.02
#: ... but never more than this fraction of the interval (a dropped frame is refused)
CLOCK_TOL_MAX_FRACTION = 0.25


def _clock_tolerance(dt: float) -> float:
    """How far (s) a frame time may lie off a regular clock of interval ``dt``."""
    return min(max(CLOCK_TOL_S, CLOCK_TOL_FRACTION * dt), CLOCK_TOL_MAX_FRACTION * dt)


def _freezing_frames(df: pd.DataFrame, src: _Source, tone_s: float, iti_s: float,
                     n_trials: int | None) -> pd.DataFrame:
    df, src = _require(df, src, ("subject", "time_s", "freezing"),
                    "per frame: subject, time_s, freezing (0/1), optional arm")
    if not (tone_s > 0 and iti_s >= 0):
        raise ValueError(f"tone_s must be > 0 and iti_s >= 0, got {tone_s}, {iti_s}")
    arm, subject = _ids(df, "arm", src, DEFAULT_ARM), _ids(df, "subject", src)
    time_s = _floats(df, "time_s", src)
    freeze = _bools(df, "freezing", src)
    out = []
    for key in dict.fromkeys(zip(arm, subject, strict=True)):
        rows = np.flatnonzero((arm == key[0]) & (subject == key[1]))
        t = time_s[rows]
        step = np.diff(t)
        if t.size < 2 or np.any(step <= 0):
            k = rows[1 + int(np.argmax(step <= 0))] if t.size >= 2 else rows[0]
            raise src.fail("time_s", k, f"subject {key[1]!r}: expected increasing times on "
                           "a regular clock")
        dt = float(t[-1] - t[0]) / (t.size - 1)
        off = np.abs(t - (t[0] + dt * np.arange(t.size)))
        tol = _clock_tolerance(dt)
        if off.max() > tol:
            k = int(np.argmax(off > tol))
            raise src.fail("time_s", rows[k], f"subject {key[1]!r}: expected increasing "
                           f"times on a regular clock ({1.0 / dt:.6g} Hz from the first and "
                           f"last frame), got a time {off[k] * 1e3:.3g} ms off it (allowed "
                           f"{tol * 1e3:.3g} ms)", t[k])
        rate = 1.0 / dt
        t_end = t[0] + t.size / rate  # the end of the last frame
        period = tone_s + iti_s
        fit = int(np.floor((t_end - iti_s - tone_s) / period + 1e-9)) + 1
        n = int(n_trials) if n_trials is not None else fit
        if n < 1 or n > fit:
            raise src.fail("time_s", rows[-1], f"subject {key[1]!r}: the recording (to "
                           f"{t_end:g} s) does not hold {max(n, 1)} tones of {tone_s:g} s "
                           f"every {period:g} s from {iti_s:g} s (options tone_s, iti_s, "
                           "trials)")
        starts = np.arange(n) * period + iti_s
        trials = np.stack([starts, starts + tone_s], axis=1)
        late = first_true(starts < t[0] - TIME_TOL_S)
        if late is not None:
            raise src.fail("time_s", rows[0], f"subject {key[1]!r}: the recording starts at "
                           f"{t[0]:g} s, after the start of trial {late + 1} (tone at "
                           f"{starts[late]:g}-{starts[late] + tone_s:g} s; options tone_s, "
                           "iti_s)", t[0])
        try:
            res = freezing_per_trial(freeze[rows], rate, trials, time_s0=float(t[0]))
        except ValueError as err:  # a layout the checks above missed: still one named line
            raise src.fail("time_s", None, f"subject {key[1]!r}: {err}") from None
        out.append(res.per_trial[["trial", "freezing_pct"]].assign(arm=key[0],
                                                                    subject=key[1]))
    return pd.concat(out, ignore_index=True)


# -------------------------------------------------------------------------- open field


def binned_distance(x_cm: np.ndarray, y_cm: np.ndarray, time_s: np.ndarray, *,
                    bin_s: float = OPEN_FIELD_BIN_S, start_s: float | None = None,
                    end_s: float | None = None, min_step_cm: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance travelled per time bin from an x/y track.

    The path between two samples is taken as straight and run at constant speed, so a
    step that spans a bin edge is split between the bins in proportion to time. Steps
    with a missing (NaN) end point, and steps shorter than ``min_step_cm`` (tracking
    jitter), add no distance.

    Parameters
    ----------
    x_cm, y_cm, time_s : numpy.ndarray
        Positions (cm) and strictly increasing sample times (s).
    bin_s : float, default 300
    start_s, end_s : float, optional
        Binned span (default: first to last sample); the last bin may be shorter.
    min_step_cm : float, default 0

    Returns
    -------
    edges_s : numpy.ndarray
        (n_bins + 1,) bin edges.
    distance_cm : numpy.ndarray
        (n_bins,) distance per bin.
    tracked_s : numpy.ndarray
        (n_bins,) time covered by steps with both ends tracked.
    """
    x, y, t = (np.asarray(a, dtype=float) for a in (x_cm, y_cm, time_s))
    if not (x.shape == y.shape == t.shape and t.ndim == 1 and t.size >= 2):
        raise ValueError("x_cm, y_cm and time_s must be 1-D of the same length >= 2")
    if not np.isfinite(t).all() or (np.diff(t) <= 0).any():
        raise ValueError("time_s must be finite and strictly increasing")
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")
    step = np.hypot(np.diff(x), np.diff(y))
    valid = np.isfinite(step)
    step = np.where(valid & (step >= min_step_cm), step, 0.0)
    cum_dist = np.concatenate(([0.0], np.cumsum(step)))
    cum_tracked = np.concatenate(([0.0], np.cumsum(np.where(valid, np.diff(t), 0.0))))
    a = t[0] if start_s is None else float(start_s)
    b = t[-1] if end_s is None else float(end_s)
    if not a < b:
        raise ValueError(f"empty span: start_s {a:g} >= end_s {b:g}")
    n = int(np.ceil((b - a) / bin_s - 1e-9))
    edges = np.minimum(a + bin_s * np.arange(n + 1), b)
    dist = np.diff(np.interp(edges, t, cum_dist))
    tracked = np.diff(np.interp(edges, t, cum_tracked))
    return edges, dist, tracked


OPEN_FIELD_COLUMNS = ["arm", "subject", "bin", "bin_start_s", "bin_end_s", "distance_cm",
                      "speed_cm_per_s", "tracked_fraction"]


def open_field_locomotion(tracks: str | Path | pd.DataFrame, *,
                          bin_s: float = OPEN_FIELD_BIN_S, min_step_cm: float = 0.0,
                          start_s: float | None = None, end_s: float | None = None
                          ) -> pd.DataFrame:
    """Binned locomotion per subject from open-field tracking.

    Parameters
    ----------
    tracks : path or pandas.DataFrame
        Columns ``subject, time_s, x_cm, y_cm`` (one row per video frame; empty ``x_cm``/
        ``y_cm`` where tracking was lost), optional ``arm``.
    bin_s, min_step_cm, start_s, end_s
        As in :func:`binned_distance`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`OPEN_FIELD_COLUMNS`; ``speed_cm_per_s`` = distance / bin length,
        ``tracked_fraction`` = tracked time / bin length. A bin with no tracked step
        (``tracked_fraction`` 0: a subject never tracked, or lost for the whole bin) has
        ``distance_cm`` and ``speed_cm_per_s`` NaN, not 0: its distance is unknown.

    Raises
    ------
    BehaviorDataError
        Missing columns, non-numeric values, missing time, time not increasing within a
        subject, fewer than two samples for a subject.
    """
    df, src = _load(tracks, ("subject", "time_s", "x_cm", "y_cm"),
                    "tracks: subject, time_s, x_cm, y_cm, optional arm")
    arm, subject = _ids(df, "arm", src, DEFAULT_ARM), _ids(df, "subject", src)
    t = _floats(df, "time_s", src)
    x = _floats(df, "x_cm", src, allow_missing=True)
    y = _floats(df, "y_cm", src, allow_missing=True)
    frames = []
    for a, s, idx, _ in _time_series(arm, subject, t, src, "sample"):
        edges, dist, tracked = binned_distance(x[idx], y[idx], t[idx], bin_s=bin_s,
                                               start_s=start_s, end_s=end_s,
                                               min_step_cm=min_step_cm)
        length = np.diff(edges)
        # a bin without a tracked step has no known distance (not 0 cm: a mouse never
        # tracked did not stand still)
        dist = np.where(tracked > 0.0, dist, np.nan)
        frames.append(pd.DataFrame({
            "arm": a, "subject": s, "bin": np.arange(dist.size), "bin_start_s": edges[:-1],
            "bin_end_s": edges[1:], "distance_cm": dist, "speed_cm_per_s": dist / length,
            "tracked_fraction": tracked / length}))
    return pd.concat(frames, ignore_index=True)[OPEN_FIELD_COLUMNS]


# ----------------------------------------------------------- DeepLabCut pose tracks
#: DeepLabCut's default likelihood cutoff (``pcutoff`` in a project's config.yaml; Nath et
#: al. 2019 Nat Protoc 14:2152): a body part below it is taken as not tracked
DLC_PCUTOFF = 0.6
DLC_CENTROID = "centroid"


def is_dlc_csv(path: str | Path) -> bool:
    """Whether a CSV file is a DeepLabCut pose file (its first cell is ``scorer``)."""
    path = Path(path)
    sep, _ = csv_dialect(path)
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str, sep=sep,
                           encoding="utf-8-sig")
    except Exception:  # noqa: BLE001 - not readable here: the table reader says why
        return False
    return head.size > 0 and str(head.iloc[0, 0]).strip().lower() == "scorer"


def read_dlc_track(path: str | Path, *, frame_rate_hz: float, px_per_cm: float,
                   bodypart: str | None = None, likelihood_min: float = DLC_PCUTOFF,
                   subject: str = "1", arm: str = DEFAULT_ARM) -> pd.DataFrame:
    """An open-field track from a single-animal DeepLabCut CSV file (Mathis et al. 2018
    Nat Neurosci 21:1281): header rows ``scorer``, ``bodyparts`` and ``coords`` (``x``,
    ``y``, ``likelihood`` per body part, in pixels), then one row per video frame with
    its frame index.

    Parameters
    ----------
    frame_rate_hz : float
        Video frames per second: frame ``k`` is at ``k / frame_rate_hz`` s.
    px_per_cm : float
        Pixels per cm of the arena in the video (measure the arena's side in a frame).
    bodypart : str, optional
        The body part followed; default the only one, or with several
        ``"centroid"``: their mean position, tracked where all of them are.
    likelihood_min : float, default 0.6
        A body part whose likelihood is below this is not tracked in that frame (its
        position left empty, as a tracker's lost frames; DeepLabCut's ``pcutoff``).
    subject, arm : str
        The animal (one file is one animal's session) and its group.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, time_s, x_cm, y_cm``, one row per frame, for
        :func:`open_field_locomotion`.

    Raises
    ------
    BehaviorDataError
        One line naming the file and what is wrong: not a DeepLabCut file, a multi-animal
        file, a body part without x, y and likelihood, an unknown ``bodypart``, a frame
        index that does not increase, a non-numeric cell (with its row and line), or a bad
        ``frame_rate_hz``, ``px_per_cm`` or ``likelihood_min``.
    """
    path = Path(path)
    name = path.name
    for label, v, low in (("frame_rate_hz", frame_rate_hz, 0.0), ("px_per_cm", px_per_cm,
                                                                   0.0)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > low):
            raise BehaviorDataError(f"{name}: {label}: got {v!r}; expected a number > 0")
    if not (isinstance(likelihood_min, (int, float)) and 0.0 <= likelihood_min <= 1.0):
        raise BehaviorDataError(f"{name}: likelihood_min: got {likelihood_min!r}; expected "
                                "a number in [0, 1]")
    sep, decimal = csv_dialect(path)
    try:
        raw = pd.read_csv(path, header=None, dtype=str, sep=sep, encoding="utf-8-sig",
                          skip_blank_lines=True)
    except FileNotFoundError:
        raise BehaviorDataError(f"{name}: file not found ({path})") from None
    except Exception as err:  # noqa: BLE001 - pandas/OS errors vary; one clear line
        raise BehaviorDataError(f"{name}: cannot read as CSV: {str(err).strip()[:200]}"
                                ) from None
    labels = [str(v).strip().lower() for v in raw.iloc[:4, 0]]
    if labels[:1] != ["scorer"]:
        raise BehaviorDataError(f"{name}: not a DeepLabCut file (expected 'scorer' as the "
                                f"first cell, got {raw.iloc[0, 0]!r})")
    if len(labels) > 1 and labels[1] == "individuals":
        who = sorted(set(raw.iloc[1, 1:].astype(str)))
        raise BehaviorDataError(f"{name}: a multi-animal DeepLabCut file (individuals: "
                                f"{', '.join(who)}); export one animal per file")
    if labels[1:3] != ["bodyparts", "coords"]:
        raise BehaviorDataError(f"{name}: expected the header rows scorer, bodyparts, "
                                f"coords; got {', '.join(labels[:3])}")
    parts = raw.iloc[1, 1:].astype(str).str.strip().to_numpy()
    coords = raw.iloc[2, 1:].astype(str).str.strip().str.lower().to_numpy()
    body = list(dict.fromkeys(parts))
    col = {}
    for j, (bp, c) in enumerate(zip(parts, coords, strict=True), start=1):
        col[(bp, c)] = j
    for bp in body:
        missing = [c for c in ("x", "y", "likelihood") if (bp, c) not in col]
        if missing:
            raise BehaviorDataError(f"{name}: body part {bp!r} has no {', '.join(missing)} "
                                    "column")
    if bodypart is None:
        bodypart = body[0] if len(body) == 1 else DLC_CENTROID
    use = body if bodypart == DLC_CENTROID else [bodypart]
    if bodypart != DLC_CENTROID and bodypart not in body:
        raise BehaviorDataError(f"{name}: bodypart: got {bodypart!r}; the file's body parts: "
                                f"{', '.join(body)} (or {DLC_CENTROID!r})")
    data = raw.iloc[3:].reset_index(drop=True)
    line0 = 4  # the file line of the first frame
    if len(data) and data.iloc[0, 1:].isna().all() and not str(data.iloc[0, 0]).strip(
            ).lstrip("-").replace(".", "", 1).isdigit():
        data = data.iloc[1:].reset_index(drop=True)  # pandas' index-name row ("frame,,,")
        line0 = 5
    if data.empty:
        raise BehaviorDataError(f"{name}: no frames after the three header rows")

    def numbers(j: int, what: str) -> np.ndarray:
        cells = data.iloc[:, j].astype(str).str.strip()
        if decimal == ",":
            cells = cells.str.replace(",", ".", regex=False)
        vals = pd.to_numeric(cells.replace({"nan": np.nan, "": np.nan}), errors="coerce")
        bad = np.flatnonzero(vals.isna().to_numpy() & data.iloc[:, j].notna().to_numpy()
                             & (cells.str.lower() != "nan").to_numpy())
        if bad.size:
            i = int(bad[0])
            raise BehaviorDataError(f"{name}, column {what}, frame row {i + 1} (line "
                                    f"{i + line0}): expected a number, got "
                                    f"{data.iloc[i, j]!r}")
        return vals.to_numpy(float)

    frame = numbers(0, "'frame'")
    step = np.diff(frame)
    k = first_true(~(step > 0)) if frame.size > 1 else None
    if np.isnan(frame).any() or k is not None:
        i = int(np.flatnonzero(np.isnan(frame))[0]) if np.isnan(frame).any() else k + 1
        raise BehaviorDataError(f"{name}, frame row {i + 1} (line {i + line0}): expected the "
                                f"frame index to increase, got {data.iloc[i, 0]!r}")
    xs, ys, ok = [], [], np.ones(frame.size, bool)
    for bp in use:
        x = numbers(col[(bp, "x")], f"'{bp} x'")
        y = numbers(col[(bp, "y")], f"'{bp} y'")
        p = numbers(col[(bp, "likelihood")], f"'{bp} likelihood'")
        ok &= (p >= likelihood_min) & np.isfinite(x) & np.isfinite(y)
        xs.append(x)
        ys.append(y)
    x_cm = np.where(ok, np.mean(xs, axis=0), np.nan) / px_per_cm
    y_cm = np.where(ok, np.mean(ys, axis=0), np.nan) / px_per_cm
    return pd.DataFrame({"arm": arm, "subject": str(subject),
                         "time_s": frame / float(frame_rate_hz), "x_cm": x_cm,
                         "y_cm": y_cm})


# ---------------------------------------------------------------------- fear extinction


@dataclass(frozen=True, eq=False)
class FreezingResult:
    """Freezing per trial and per block of trials.

    Attributes
    ----------
    per_trial : pandas.DataFrame
        Columns ``trial, block, start_s, end_s, n_frames, freezing_pct``.
    per_block : pandas.DataFrame
        Columns ``block, first_trial, last_trial, freezing_pct`` (mean of its trials).
    """

    per_trial: pd.DataFrame
    per_block: pd.DataFrame


def freezing_per_trial(freezing: np.ndarray | list, frame_rate_hz: float,
                       trials_s: np.ndarray | list, *, block_size: int = 1,
                       min_freeze_s: float = 0.0, time_s0: float = 0.0) -> FreezingResult:
    """Freezing % in each trial (e.g. each CS presentation) of an extinction session.

    Parameters
    ----------
    freezing : array-like of bool
        Per frame (or per bin), True while the animal freezes.
    frame_rate_hz : float
        Frames per second; frame ``k`` is at ``time_s0 + k / frame_rate_hz``.
    trials_s : array-like
        (n_trials, 2) start and end (s) of each trial; a frame belongs to a trial when its
        time is in ``[start, end)``.
    block_size : int, default 1
        Consecutive trials per block (the last block may be shorter).
    min_freeze_s : float, default 0
        Freezing runs shorter than this (s) are not counted. Automated scoring commonly
        requires about 1 s of immobility (e.g. Anagnostaras et al. 2010, Front Behav
        Neurosci 4:158); 0 keeps every run.
    time_s0 : float, default 0

    Returns
    -------
    FreezingResult
    """
    f = np.asarray(freezing)
    if f.ndim != 1 or f.size == 0 or f.dtype != bool:
        raise ValueError(f"freezing must be a non-empty 1-D bool series, got {f.dtype} "
                         f"shape {f.shape}")
    if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    tr = np.asarray(trials_s, dtype=float)
    if tr.ndim != 2 or tr.shape[1] != 2 or tr.shape[0] == 0 or not np.isfinite(tr).all():
        raise ValueError(f"trials_s must be (n_trials, 2) finite start/end times, got shape "
                         f"{tr.shape}")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    f = f.copy()
    min_frames = int(np.ceil(min_freeze_s * frame_rate_hz - 1e-9))
    if min_frames > 1:
        d = np.diff(np.concatenate(([0], f.view(np.int8), [0])))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            if b - a < min_frames:
                f[a:b] = False
    t_end = time_s0 + f.size / frame_rate_hz
    first = np.ceil((tr[:, 0] - time_s0) * frame_rate_hz - 1e-9).astype(np.int64)
    stop = np.ceil((tr[:, 1] - time_s0) * frame_rate_hz - 1e-9).astype(np.int64)
    for k in range(tr.shape[0]):
        if not tr[k, 1] > tr[k, 0]:
            raise ValueError(f"trial {k + 1}: end {tr[k, 1]:g} s must be after start "
                             f"{tr[k, 0]:g} s")
        if tr[k, 0] < time_s0 - TIME_TOL_S or tr[k, 1] > t_end + TIME_TOL_S:
            raise ValueError(f"trial {k + 1} ({tr[k, 0]:g}-{tr[k, 1]:g} s) lies outside the "
                             f"recording ({time_s0:g}-{t_end:g} s)")
    cum = np.concatenate(([0], np.cumsum(f)))
    n = stop - first
    pct = (cum[stop] - cum[first]) / np.where(n > 0, n, 1) * 100.0
    pct = np.where(n > 0, pct, np.nan)
    block = np.arange(tr.shape[0]) // int(block_size)
    per_trial = pd.DataFrame({"trial": np.arange(1, tr.shape[0] + 1), "block": block + 1,
                              "start_s": tr[:, 0], "end_s": tr[:, 1], "n_frames": n,
                              "freezing_pct": pct})
    per_block = per_trial.groupby("block", sort=True).agg(
        first_trial=("trial", "min"), last_trial=("trial", "max"),
        freezing_pct=("freezing_pct", "mean")).reset_index()
    return FreezingResult(per_trial, per_block)
