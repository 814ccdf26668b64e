"""Calcium imaging readouts, the same for simulated and recorded dF/F.

A session is a matrix of dF/F traces, cells x frames, sampled at a constant frame rate
(format in ``docs/calcium_and_behavior_data.md``). :func:`read_dff` reads and checks one
from an array, an ``.npy`` file or a CSV/Parquet table; the functions below compute what
Moda-Sava et al. 2019 (Science 364:eaat8078) report from prefrontal imaging:

- transients per cell, with a robust baseline and noise level (:func:`detect_transients`);
- synchronous (ensemble) events, the windows in which more cells start a transient
  together than under independent circular shifts of each cell (:func:`synchronous_events`;
  SEED-FACTS F-M-9: rarer and smaller under CORT, restored by ketamine);
- pairwise correlation and the fraction of significantly correlated pairs
  (:func:`functional_connectivity`; F-N-2, F-N-3);
- the mean trace around behavioural events such as struggle onsets in the tail
  suspension test, with the lead of its rise (:func:`peri_event_average`; F-M-10, a rise
  about 1 s before a struggle bout);
- all of these for one session (:func:`summarize_session`).

Shuffle controls take an explicit ``numpy.random.Generator`` (or an integer seed for one)
and draw every shuffle from it, so the same generator state gives the same numbers.
Shuffle p-values count the observed value as one of the draws:
``(1 + #(shuffle as extreme)) / (1 + n_shuffles)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ketasim.analysis._tables import (
    Source,
    file_kind,
    first_line,
    is_integral,
    read_frame,
    short,
)

__all__ = [
    "CalciumDataError",
    "ConnectivityResult",
    "DffRecording",
    "PeriEventResult",
    "SessionSummary",
    "SynchronyResult",
    "Transients",
    "detect_transients",
    "functional_connectivity",
    "peri_event_average",
    "read_dff",
    "summarize_session",
    "synchronous_events",
]

# 1 / Phi^-1(3/4): the SD of a Gaussian over its median absolute deviation (Hampel 1974,
# J Am Stat Assoc 69:383), so that 1.4826 * MAD estimates the noise SD while transients,
# which occupy a minority of frames, barely move it.
MAD_TO_SD = 1.4826
# Hysteresis detection: a transient starts when dF/F crosses an onset threshold and ends
# when it falls back below a lower one, as in Dombeck et al. 2007 (Neuron 56:43; onset
# 2 SD, offset 0.5 SD, with a minimum duration). The onset default here is 3 SD (assumed:
# without a lab's false-positive fit of the duration criterion, a stricter onset keeps
# noise crossings rare); the offset is Dombeck's 0.5 SD.
TRANSIENT_ONSET_SD = 3.0
TRANSIENT_OFFSET_SD = 0.5
# A transient must stay above the onset threshold this long (s). Assumed: shorter than the
# decay of a single-spike GCaMP6f transient (~0.1-0.2 s half-decay, Chen et al. 2013,
# Nature 499:295), longer than one or two frames of shot noise at 10-30 Hz.
TRANSIENT_MIN_DURATION_S = 0.2
# Onsets closer than this (s) in one cell are one transient (assumed).
TRANSIENT_MIN_SEPARATION_S = 0.5
# Synchrony: cells starting a transient within this window (s) count as co-active
# (assumed: covers the onset jitter between cells at 10-30 Hz imaging).
SYNC_WINDOW_S = 0.5
# A window is synchronous when more cells are co-active than in this percentile of
# circularly shifted windows (%). Shuffle-derived co-activity thresholds are the usual
# control in ensemble studies (e.g. Miller et al. 2014, PNAS 111:E4053); the 99th
# percentile is assumed here.
SYNC_PERCENTILE = 99.0
# ... and when at least this many cells take part (a synchronous event needs two cells).
SYNC_MIN_CELLS = 2
N_SHUFFLES = 1000
N_CORRELATION_SHUFFLES = None  # None: every circular shift (an exact test)
CORRELATION_ALPHA = 0.05  # per-pair significance level for the shuffle test
# Peri-event window around struggle onsets (s): -3..+2 s brackets the ~1 s lead of the
# vmPFC rise before struggling reported by Moda-Sava et al. 2019 (F-M-10).
PERI_EVENT_WINDOW_S = (-3.0, 2.0)
PERI_EVENT_BASELINE_S = 1.0  # default baseline: the first second of the window
# Relative tolerance on frame spacing: a dropped frame (an interval of ~2x) is an error,
# scan-clock jitter of a few percent is not (assumed).
FRAME_SPACING_RTOL = 0.05

_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}
_TIME_COLUMNS = ("time_s", "frame")
_LONG_COLUMNS = ("cell", "dff")
_REL_TOL = 1e-12


class CalciumDataError(ValueError):
    """dF/F data that cannot be read or breaks the format (one-line message)."""


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True, eq=False)
class DffRecording:
    """One imaging session.

    Attributes
    ----------
    dff : numpy.ndarray
        (n_cells, n_frames) float64 dF/F, all finite.
    frame_rate_hz : float
        Frames per second.
    time_s : numpy.ndarray
        (n_frames,) time of each frame (s); the file's ``time_s`` where given, else
        ``frame / frame_rate_hz``.
    cell_ids : tuple of str
        One id per row of ``dff``: the column names of a wide table, the ``cell`` labels
        of a long one (in order of first appearance), ``"0", "1", ...`` for an array.
    source : str
        File name, ``<array>`` or ``<DataFrame>``.
    """

    dff: np.ndarray
    frame_rate_hz: float
    time_s: np.ndarray
    cell_ids: tuple[str, ...]
    source: str = "<array>"

    @property
    def n_cells(self) -> int:
        return int(self.dff.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.dff.shape[1])

    @property
    def duration_s(self) -> float:
        """Recording length (s): ``n_frames / frame_rate_hz``."""
        return self.n_frames / self.frame_rate_hz


class _Where(Source):
    """Where data came from, to name the file, column and row (or cell and frame)."""

    error = CalciumDataError

    def fail(self, what: str, *, column: str | None = None, pos: int | None = None,
             cell: int | None = None, frame: int | None = None,
             value: object = None) -> CalciumDataError:
        extra = tuple(x for x in (None if cell is None else f"cell index {cell}",
                                  None if frame is None else f"frame index {frame}") if x)
        return self.locate(column, pos, extra, what=what, value=value)


def _check_rate(frame_rate_hz: object, where: _Where) -> float | None:
    if frame_rate_hz is None:
        return None
    try:
        # a bool is no frame rate (float(True) would read as 1 Hz)
        rate = (float("nan") if isinstance(frame_rate_hz, (bool, np.bool_))
                else float(frame_rate_hz))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0):
        raise where.fail("frame_rate_hz must be a finite number > 0", value=frame_rate_hz)
    return rate


def read_dff(source: np.ndarray | str | Path | pd.DataFrame,
             frame_rate_hz: float | None = None, *,
             spacing_rtol: float = FRAME_SPACING_RTOL) -> DffRecording:
    """Read and check a dF/F session.

    Parameters
    ----------
    source : numpy.ndarray, str, pathlib.Path or pandas.DataFrame
        - an array, cells x frames (2-D);
        - an ``.npy`` file holding such an array;
        - a ``.csv`` or ``.parquet`` (``.pq``) table, or a DataFrame, either *wide* (one
          column per cell, one row per frame, optional ``time_s`` (s) and/or ``frame``
          columns) or *long* (columns ``cell``, ``dff`` and ``time_s`` and/or ``frame``,
          one row per cell per frame, in any order). A table with a ``cell`` column is
          long.
    frame_rate_hz : float, optional
        Frames per second. Required when the data carry no ``time_s``; checked against
        the ``time_s`` spacing when both are given.
    spacing_rtol : float, default 0.05
        Largest relative deviation of a frame interval from the median interval.

    Returns
    -------
    DffRecording

    Raises
    ------
    CalciumDataError
        With one line naming the file (``<array>``, ``<DataFrame>``), the column and the
        first offending row (1-based data row; for CSV also the file line) or the cell and
        frame index (0-based) of an array, and what was expected: wrong dimensionality,
        no cells or frames, NaN or infinite values, text in number columns, missing
        columns, non-increasing time, uneven frame spacing (a dropped frame), missing or
        inconsistent frame rate, duplicate or missing rows in a long table, unreadable files.
    ValueError
        ``spacing_rtol`` that is not a finite number >= 0.
    """
    spacing_rtol = _real(spacing_rtol, "spacing_rtol", low=0.0)
    if isinstance(source, np.ndarray):
        return _from_array(source, frame_rate_hz, _Where("<array>"))
    if isinstance(source, pd.DataFrame):
        df = source.reset_index(drop=True)
        df.columns = [str(c).strip() for c in df.columns]
        where = _Where("<DataFrame>", np.arange(1, len(df) + 1))
        return _from_table(df, frame_rate_hz, where, spacing_rtol)
    if not isinstance(source, (str, Path)):
        raise CalciumDataError("expected a cells x frames array, a path to a .npy/.csv/"
                               f".parquet file or a DataFrame, got {type(source).__name__}")
    path = Path(source)
    name = path.name
    kind = file_kind(path, CalciumDataError, _SUFFIXES)
    if not path.is_file():
        raise CalciumDataError(f"{name}: file not found ({path})")
    if kind == "npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001 - numpy's errors vary; one clear line
            raise CalciumDataError(f"{name}: cannot read .npy file: {first_line(err)}") from None
        return _from_array(arr, frame_rate_hz, _Where(name))
    df, where = _read_table(path, kind)
    return _from_table(df, frame_rate_hz, where, spacing_rtol)


def _read_table(path: Path, kind: str) -> tuple[pd.DataFrame, _Where]:
    name = path.name
    df, rows = read_frame(path, kind, CalciumDataError, {"cell": str})
    return df, _Where(name, rows, csv=(kind == "csv"))


def _from_array(arr: np.ndarray, frame_rate_hz: float | None, where: _Where) -> DffRecording:
    rate = _check_rate(frame_rate_hz, where)
    if arr.dtype.kind not in "biuf":
        raise where.fail(f"expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise where.fail(f"expected a 2-D array (cells x frames), got {arr.ndim}-D with shape "
                         f"{arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise where.fail(f"no data: {arr.shape[0]} cells x {arr.shape[1]} frames")
    dff = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(dff)
    if bad.any():
        cell, frame = np.argwhere(bad)[0]
        raise where.fail("expected a finite dF/F value", cell=int(cell), frame=int(frame),
                         value=dff[cell, frame])
    if rate is None:
        raise where.fail("no frame rate: an array carries no time, pass frame_rate_hz")
    ids = tuple(str(i) for i in range(dff.shape[0]))
    return DffRecording(dff, rate, np.arange(dff.shape[1]) / rate, ids, where.name)


def _numeric(s: pd.Series, col: str, where: _Where, what: str = "expected a finite number"
             ) -> np.ndarray:
    """A column as float64; the first missing, non-numeric or infinite cell is an error."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise where.fail(what, column=col, pos=0, value=s.iloc[0])
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(values)
    else:
        obj = s.astype(object)
        plain = obj.map(lambda v: isinstance(v, (str, int, float, np.integer, np.floating))
                        and not isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        text = obj.map(lambda v: v.strip() if isinstance(v, str) else v)
        values = np.asarray(pd.to_numeric(text, errors="coerce"), dtype=float)
        bad = ~plain | ~np.isfinite(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raw = s.iloc[pos]
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            raise where.fail(f"{what}, got a missing value (empty or NaN)", column=col,
                             pos=pos)
        raise where.fail(what, column=col, pos=pos, value=raw)
    return values


def _from_table(df: pd.DataFrame, frame_rate_hz: float | None, where: _Where,
                spacing_rtol: float) -> DffRecording:
    rate = _check_rate(frame_rate_hz, where)
    repeated = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if repeated:
        raise where.fail("repeated column name(s) " + ", ".join(f"'{c}'" for c in repeated))
    if "cell" in df.columns:
        return _from_long(df, rate, where, spacing_rtol)
    cells = [c for c in df.columns if c not in _TIME_COLUMNS]
    if not cells:
        raise where.fail("no cell columns (a wide table has one column per cell besides "
                         "time_s/frame; a long table has columns cell, time_s or frame, dff)")
    if len(df) == 0:
        raise where.fail(f"no data: {len(cells)} cell columns but no rows")
    rows = np.arange(len(df))
    time_s = _time_axis(df, where, rate, spacing_rtol, rows)
    dff = np.empty((len(cells), len(df)))
    for i, c in enumerate(cells):
        dff[i] = _numeric(df[c], c, where, "expected a finite dF/F value")
    rate, time_s = _clock(df, rows, rate, time_s)
    return DffRecording(dff, rate, time_s, tuple(cells), where.name)


def _clock(df: pd.DataFrame, rows: np.ndarray, rate: float | None,
           time_s: np.ndarray | None) -> tuple[float, np.ndarray]:
    """Frame rate and frame times: from ``time_s`` where given, else ``frame / rate``
    (or ``index / rate`` without a frame column)."""
    if time_s is not None:
        if rate is None:
            rate = 1.0 / float(np.median(np.diff(time_s)))
        return rate, time_s
    assert rate is not None  # _time_axis raised otherwise
    if "frame" in df.columns:
        return rate, df["frame"].to_numpy(dtype=float)[rows] / rate
    return rate, np.arange(rows.size) / rate


def _time_axis(df: pd.DataFrame, where: _Where, rate: float | None, rtol: float,
               rows: np.ndarray) -> np.ndarray | None:
    """Check ``time_s`` and ``frame`` (in row order ``rows``); the time axis or None."""
    time_s = None
    if "frame" in df.columns:
        frame = _numeric(df["frame"], "frame", where)[rows]
        bad = frame != np.round(frame)
        if bad.any():
            pos = rows[int(np.flatnonzero(bad)[0])]
            raise where.fail("expected an integer frame number", column="frame", pos=pos,
                             value=df["frame"].iloc[pos])
        step = np.diff(frame)
        if (step != 1).any():
            k = int(np.flatnonzero(step != 1)[0]) + 1
            what = ("expected frame numbers to increase" if step[k - 1] <= 0 else
                    "inconsistent frame spacing: frames must be consecutive (a dropped frame?)")
            raise where.fail(f"{what}, frame {frame[k]:g} after {frame[k - 1]:g}",
                             column="frame", pos=rows[k])
    if "time_s" in df.columns:
        time_s = _numeric(df["time_s"], "time_s", where)[rows]
        if time_s.size >= 2:
            step = np.diff(time_s)
            if (step <= 0).any():
                k = int(np.flatnonzero(step <= 0)[0]) + 1
                raise where.fail(f"expected time_s to increase, got {time_s[k]:g} after "
                                 f"{time_s[k - 1]:g}", column="time_s", pos=rows[k])
            dt = float(np.median(step))
            off = np.abs(step - dt) > rtol * dt
            if off.any():
                k = int(np.flatnonzero(off)[0]) + 1
                raise where.fail(
                    f"inconsistent frame spacing: {step[k - 1]:g} s after time_s "
                    f"{time_s[k - 1]:g}, median {dt:g} s (tolerance {rtol:.0%}; a dropped "
                    "frame?)", column="time_s", pos=rows[k])
            if rate is not None and abs(dt * rate - 1.0) > rtol:
                raise where.fail(f"frame spacing {dt:g} s ({1 / dt:g} Hz) disagrees with "
                                 f"frame_rate_hz={rate:g}", column="time_s")
        elif rate is None:
            raise where.fail("a single frame carries no frame rate, pass frame_rate_hz",
                             column="time_s")
    if time_s is None and rate is None:
        raise where.fail("no frame rate: no time_s column and no frame_rate_hz given")
    return time_s


def _from_long(df: pd.DataFrame, rate: float | None, where: _Where,
               spacing_rtol: float) -> DffRecording:
    keys = [c for c in _TIME_COLUMNS if c in df.columns]
    missing = [c for c in _LONG_COLUMNS if c not in df.columns]
    if not keys:
        missing.append("time_s or frame")
    if missing:
        raise where.fail("missing required column(s) " + ", ".join(f"'{c}'" for c in missing)
                         + " (long format: cell, time_s and/or frame, dff)")
    if len(df) == 0:
        raise where.fail("no data: the table has no rows")
    cell = df["cell"].to_numpy(dtype=object)
    ids = np.empty(len(cell), dtype=object)
    for i, v in enumerate(cell):
        if isinstance(v, str) and v.strip():
            ids[i] = v.strip()
        elif is_integral(v):
            ids[i] = str(int(v))
        else:
            raise where.fail("expected a non-empty cell id", column="cell", pos=i, value=v)
    key = keys[0]
    key_values = _numeric(df[key], key, where)
    dff = _numeric(df["dff"], "dff", where, "expected a finite dF/F value")
    dup = pd.DataFrame({"c": ids, "k": key_values}).duplicated().to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise where.fail(f"duplicate row for cell {ids[pos]!r} at {key} {key_values[pos]:g}",
                         column=key, pos=pos)
    cell_ids, cell_code = _codes_in_order(ids)
    grid, key_code = np.unique(key_values, return_inverse=True)
    n_per_cell = np.bincount(cell_code, minlength=len(cell_ids))
    short = np.flatnonzero(n_per_cell != grid.size)
    if short.size:
        c = int(short[0])
        have = np.zeros(grid.size, dtype=bool)
        have[key_code[cell_code == c]] = True
        first_missing = grid[int(np.flatnonzero(~have)[0])]
        raise where.fail(f"cell {cell_ids[c]!r} has {n_per_cell[c]} rows, expected one per "
                         f"{key} ({grid.size}); no row at {key} {first_missing:g}",
                         column="cell")
    # check the time axis along one cell's rows, sorted by time (row numbers stay exact)
    first_cell = np.flatnonzero(cell_code == 0)
    order = first_cell[np.argsort(key_values[first_cell], kind="stable")]
    time_s = _time_axis(df, where, rate, spacing_rtol, order)
    if key != "frame" and "frame" in df.columns:
        # both columns: every cell's frame numbers must match the first cell's at each time
        frame = _numeric(df["frame"], "frame", where)
        ref = np.empty(grid.size)
        ref[key_code[first_cell]] = frame[first_cell]
        bad = frame != ref[key_code]
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise where.fail(
                f"frame {frame[pos]:g} of cell {ids[pos]!r} at {key} {key_values[pos]:g} "
                f"disagrees with frame {ref[key_code[pos]]:g} of cell {cell_ids[0]!r} at that "
                f"{key}", column="frame", pos=pos)
    matrix = np.empty((len(cell_ids), grid.size))
    matrix[cell_code, key_code] = dff
    rate, time_s = _clock(df, order, rate, time_s)
    return DffRecording(matrix, rate, time_s, tuple(cell_ids), where.name)


def _codes_in_order(ids: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct ids in order of first appearance, and each row's code."""
    codes: dict[str, int] = {}
    out = np.empty(len(ids), dtype=np.int64)
    for i, v in enumerate(ids):
        out[i] = codes.setdefault(v, len(codes))
    return list(codes), out


def _as_matrix(dff: np.ndarray | DffRecording, frame_rate_hz: float | None
               ) -> tuple[np.ndarray, float, float]:
    """(cells x frames float64 array, frame rate, time of frame 0) from either input."""
    if isinstance(dff, DffRecording):
        if frame_rate_hz is not None:
            frame_rate_hz = _check_rate(frame_rate_hz, _Where(dff.source))
        if frame_rate_hz is not None and abs(frame_rate_hz / dff.frame_rate_hz - 1) > 1e-9:
            raise ValueError(f"frame_rate_hz={frame_rate_hz:g} disagrees with the recording's "
                             f"{dff.frame_rate_hz:g} Hz")
        return dff.dff, dff.frame_rate_hz, float(dff.time_s[0])
    arr = np.asarray(dff)
    if arr.ndim == 1:
        arr = arr[None, :]
    rec = _from_array(arr, frame_rate_hz, _Where("<array>"))
    return rec.dff, rec.frame_rate_hz, 0.0


def _real(value: object, name: str, *, low: float | None = None, high: float | None = None,
          open_low: bool = False, open_high: bool = False) -> float:
    """A numeric setting as a float: a finite real number (not a bool) within the bounds
    given (``open_*``: the bound itself excluded), else a ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    ok = ok and math.isfinite(x) and (
        low is None or (x > low if open_low else x >= low)) and (
        high is None or (x < high if open_high else x <= high))
    if not ok:
        if low is not None and high is not None:
            bounds = (f" in {'(' if open_low else '['}{low:g}, {high:g}"
                      f"{')' if open_high else ']'}")
        elif low is not None:
            bounds = f" {'>' if open_low else '>='} {low:g}"
        elif high is not None:
            bounds = f" {'<' if open_high else '<='} {high:g}"
        else:
            bounds = ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return x


def _integer(value: object, name: str, minimum: int) -> int:
    """A count setting as an int >= ``minimum`` (an integral float is accepted, a bool
    is not), else a ValueError naming it."""
    if not (is_integral(value) and int(value) >= minimum):  # type: ignore[call-overload]
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an integer seed, got "
                    f"{type(rng).__name__}")


def _frames(seconds: float, rate: float) -> int:
    return max(1, round(seconds * rate))


# ---------------------------------------------------------------------- transients


@dataclass(frozen=True, eq=False)
class Transients:
    """Calcium transients detected per cell.

    Attributes
    ----------
    frame_rate_hz : float
        Frames per second.
    n_frames : int
        Recording length in frames.
    baseline : numpy.ndarray
        (n_cells,) median dF/F.
    noise_sd : numpy.ndarray
        (n_cells,) noise SD (1.4826 x MAD unless given); NaN where it is 0 (no noise, no
        detection).
    onset_frames, peak_frames, end_frames : tuple of numpy.ndarray
        Per cell, per transient: the first frame of the qualifying run above the onset
        threshold, the frame of the maximum, and one past the last frame above the offset
        threshold.
    amplitudes : tuple of numpy.ndarray
        Per cell, per transient: peak dF/F minus the baseline (dF/F units).
    threshold_sd, offset_sd, min_duration_s, min_separation_s : float
        The detection settings.
    time_s0 : float
        Time of frame 0 (s).
    """

    frame_rate_hz: float
    n_frames: int
    baseline: np.ndarray
    noise_sd: np.ndarray
    onset_frames: tuple[np.ndarray, ...]
    peak_frames: tuple[np.ndarray, ...]
    end_frames: tuple[np.ndarray, ...]
    amplitudes: tuple[np.ndarray, ...]
    threshold_sd: float
    offset_sd: float
    min_duration_s: float
    min_separation_s: float
    time_s0: float = 0.0

    @property
    def n_cells(self) -> int:
        return len(self.onset_frames)

    @property
    def duration_min(self) -> float:
        return self.n_frames / self.frame_rate_hz / 60.0

    @property
    def counts(self) -> np.ndarray:
        """(n_cells,) number of transients per cell."""
        return np.array([o.size for o in self.onset_frames], dtype=np.int64)

    @property
    def rate_per_min(self) -> np.ndarray:
        """(n_cells,) transients per minute of recording."""
        return self.counts / self.duration_min

    def onset_raster(self) -> np.ndarray:
        """(n_cells, n_frames) bool, True at each transient onset."""
        raster = np.zeros((self.n_cells, self.n_frames), dtype=bool)
        for i, o in enumerate(self.onset_frames):
            raster[i, o] = True
        return raster

    def table(self) -> pd.DataFrame:
        """One row per transient: ``cell, onset_frame, onset_s, peak_frame, end_frame,
        amplitude_dff, amplitude_sd`` (``onset_s`` counts from ``time_s0``)."""
        cell = np.repeat(np.arange(self.n_cells), self.counts)
        onset = np.concatenate([*self.onset_frames, np.zeros(0, np.int64)])
        amp = np.concatenate([*self.amplitudes, np.zeros(0)])
        sd = np.repeat(self.noise_sd, self.counts)
        return pd.DataFrame({
            "cell": cell, "onset_frame": onset,
            "onset_s": self.time_s0 + onset / self.frame_rate_hz,
            "peak_frame": np.concatenate([*self.peak_frames, np.zeros(0, np.int64)]),
            "end_frame": np.concatenate([*self.end_frames, np.zeros(0, np.int64)]),
            "amplitude_dff": amp, "amplitude_sd": amp / sd})


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def detect_transients(dff: np.ndarray | DffRecording, frame_rate_hz: float | None = None, *,
                      threshold_sd: float = TRANSIENT_ONSET_SD,
                      offset_sd: float = TRANSIENT_OFFSET_SD,
                      min_duration_s: float = TRANSIENT_MIN_DURATION_S,
                      min_separation_s: float = TRANSIENT_MIN_SEPARATION_S,
                      noise_sd: float | np.ndarray | None = None) -> Transients:
    """Detect calcium transients in each cell's dF/F.

    Per cell, the baseline is the median dF/F and the noise SD is ``1.4826 x MAD`` (median
    absolute deviation from the median), both robust to the transients themselves. With
    ``z = (dF/F - baseline) / noise_sd``, a transient is a stretch where ``z >=
    offset_sd`` that contains a run of at least ``min_duration_s`` with ``z >=
    threshold_sd`` (hysteresis, Dombeck et al. 2007). Its onset is the first frame of the
    first such run; it ends when ``z`` falls below ``offset_sd``. An onset less than
    ``min_separation_s`` after the previous onset of the same cell joins that transient.
    Amplitude = the maximum dF/F within the transient minus the baseline.

    Parameters
    ----------
    dff : numpy.ndarray or DffRecording
        (n_cells, n_frames) dF/F, or one trace (n_frames,).
    frame_rate_hz : float, optional
        Required for an array.
    threshold_sd, offset_sd : float
        Onset and offset thresholds, in noise SDs (``threshold_sd > 0``,
        ``0 <= offset_sd <= threshold_sd``).
    min_duration_s, min_separation_s : float
        Minimum time above the onset threshold, and minimum time between onsets (s;
        finite, >= 0).
    noise_sd : float or array, optional
        Known noise SD (dF/F units; a scalar or one value per cell, finite, > 0) instead
        of the MAD estimate, e.g. for simulated traces with a set noise level.

    Returns
    -------
    Transients
        A cell whose noise estimate is 0 (a noiseless trace) gets no transients and a
        NaN ``noise_sd``: give ``noise_sd`` for such data.
    """
    x, rate, t0 = _as_matrix(dff, frame_rate_hz)
    threshold_sd, offset_sd, min_duration_s, min_separation_s = _transient_settings(
        threshold_sd, offset_sd, min_duration_s, min_separation_s)
    n_cells, n_frames = x.shape
    baseline = np.median(x, axis=1)
    if noise_sd is None:
        sd = MAD_TO_SD * np.median(np.abs(x - baseline[:, None]), axis=1)
    else:
        sd = _noise_sd(noise_sd, n_cells)
    sd = np.where(sd > 0, sd, np.nan)
    min_dur = max(1, int(np.ceil(min_duration_s * rate - 1e-9)))
    min_sep = int(np.ceil(min_separation_s * rate - 1e-9))
    onsets, peaks, ends, amps = [], [], [], []
    for i in range(n_cells):
        o, p, e, a = _cell_transients(x[i], baseline[i], sd[i], threshold_sd, offset_sd,
                                      min_dur, min_sep)
        onsets.append(o)
        peaks.append(p)
        ends.append(e)
        amps.append(a)
    return Transients(rate, n_frames, baseline, sd, tuple(onsets), tuple(peaks), tuple(ends),
                      tuple(amps), float(threshold_sd), float(offset_sd),
                      float(min_duration_s), float(min_separation_s), t0)


def _transient_settings(threshold_sd: object, offset_sd: object, min_duration_s: object,
                        min_separation_s: object) -> tuple[float, float, float, float]:
    """The detection settings of :func:`detect_transients`, checked."""
    thr = _real(threshold_sd, "threshold_sd", low=0.0, open_low=True)
    off = _real(offset_sd, "offset_sd", low=0.0)
    if not off <= thr:
        raise ValueError(f"offset_sd ({off:g}) must not exceed threshold_sd ({thr:g})")
    return (thr, off, _real(min_duration_s, "min_duration_s", low=0.0),
            _real(min_separation_s, "min_separation_s", low=0.0))


def _noise_sd(noise_sd: object, n_cells: int) -> np.ndarray:
    """A given noise SD as one value per cell: a scalar or one per cell, finite, > 0."""
    try:
        arr = np.asarray(noise_sd)
        ok = arr.dtype.kind in "iuf" and (arr.ndim == 0 or arr.shape == (n_cells,))
        sd = np.broadcast_to(arr.astype(float), (n_cells,)).copy() if ok else None
    except (TypeError, ValueError):
        sd = None
    if sd is None:
        raise ValueError(f"noise_sd must be a number or one number per cell ({n_cells}), "
                         f"got {short(noise_sd)}")
    if not (np.isfinite(sd).all() and (sd > 0).all()):
        raise ValueError(f"noise_sd must be finite and > 0, got {short(noise_sd)}")
    return sd


def _cell_transients(x: np.ndarray, base: float, sd: float, thr: float, off: float,
                     min_dur: int, min_sep: int) -> tuple[np.ndarray, ...]:
    empty = np.zeros(0, dtype=np.int64)
    if not np.isfinite(sd):
        return empty, empty, empty, np.zeros(0)
    z = (x - base) / sd
    seg_start, seg_stop = _runs(z >= off)
    on_start, on_stop = _runs(z >= thr)
    on_start = on_start[(on_stop - on_start) >= min_dur]
    if on_start.size == 0:
        return empty, empty, empty, np.zeros(0)
    # every run above the onset threshold lies inside one run above the offset threshold
    seg = np.searchsorted(seg_start, on_start, side="right") - 1
    first = np.concatenate(([True], seg[1:] != seg[:-1]))
    onset, end = on_start[first], seg_stop[seg[first]]
    keep_on, keep_end = [int(onset[0])], [int(end[0])]
    for o, e in zip(onset[1:], end[1:], strict=True):
        if o - keep_on[-1] < min_sep:
            keep_end[-1] = int(e)
        else:
            keep_on.append(int(o))
            keep_end.append(int(e))
    onset = np.array(keep_on, dtype=np.int64)
    end = np.array(keep_end, dtype=np.int64)
    peak = np.array([o + int(np.argmax(x[o:e])) for o, e in zip(onset, end, strict=True)],
                    dtype=np.int64)
    return onset, peak, end, x[peak] - base


# ----------------------------------------------------------------- synchronous events


@dataclass(frozen=True, eq=False)
class SynchronyResult:
    """Synchronous (ensemble) events against a circular-shift shuffle.

    Attributes
    ----------
    coactive_cells : numpy.ndarray
        (n_frames,) number of cells with a transient onset in ``[t, t + window)`` for each
        window start ``t`` (windows at the end of the recording are shorter).
    threshold_cells : float
        The ``percentile`` of ``coactive_cells`` over all shuffled recordings; a window is
        synchronous when ``coactive_cells > threshold_cells`` and ``>= min_cells``.
    event_frames : numpy.ndarray
        Per event (a run of consecutive synchronous windows), the window start with the
        most co-active cells.
    cells_per_event : numpy.ndarray
        Co-active cells in that window.
    event_rate_per_min : float
        Events per minute of recording.
    shuffle_event_rate_per_min : numpy.ndarray
        (n_shuffles,) the same rate in each shuffled recording.
    p : float
        ``(1 + #(shuffle event count >= observed)) / (1 + n_shuffles)``.
    n_cells, n_frames : int
    frame_rate_hz, window_s, percentile : float
    min_cells, n_shuffles : int
    time_s0 : float
        Time of frame 0 (s).
    """

    coactive_cells: np.ndarray
    threshold_cells: float
    event_frames: np.ndarray
    cells_per_event: np.ndarray
    event_rate_per_min: float
    shuffle_event_rate_per_min: np.ndarray
    p: float
    n_cells: int
    n_frames: int
    frame_rate_hz: float
    window_s: float
    percentile: float
    min_cells: int
    n_shuffles: int
    time_s0: float = 0.0

    @property
    def n_events(self) -> int:
        return int(self.event_frames.size)

    @property
    def event_times_s(self) -> np.ndarray:
        return self.time_s0 + self.event_frames / self.frame_rate_hz

    @property
    def threshold_fraction(self) -> float:
        """``threshold_cells`` as a fraction of the recorded cells."""
        return self.threshold_cells / self.n_cells

    @property
    def mean_cells_per_event(self) -> float:
        return float(self.cells_per_event.mean()) if self.n_events else float("nan")

    @property
    def mean_fraction_per_event(self) -> float:
        """Mean fraction of the recorded cells taking part in an event."""
        return self.mean_cells_per_event / self.n_cells

    @property
    def shuffle_rate_mean_per_min(self) -> float:
        return float(self.shuffle_event_rate_per_min.mean())


def _onsets_of(onsets: Transients | np.ndarray, frame_rate_hz: float | None
               ) -> tuple[np.ndarray, np.ndarray, int, int, float, float]:
    """(cell of each onset, frame of each onset, n_cells, n_frames, rate, time_s0)."""
    if frame_rate_hz is not None:
        frame_rate_hz = _real(frame_rate_hz, "frame_rate_hz", low=0.0, open_low=True)
    if isinstance(onsets, Transients):
        if frame_rate_hz is not None and abs(frame_rate_hz / onsets.frame_rate_hz - 1) > 1e-9:
            raise ValueError(f"frame_rate_hz={frame_rate_hz:g} disagrees with the transients' "
                             f"{onsets.frame_rate_hz:g} Hz")
        cells = np.repeat(np.arange(onsets.n_cells), onsets.counts)
        frames = np.concatenate([*onsets.onset_frames, np.zeros(0, np.int64)])
        return (cells, frames.astype(np.int64), onsets.n_cells, onsets.n_frames,
                onsets.frame_rate_hz, onsets.time_s0)
    raster = np.asarray(onsets)
    if raster.ndim != 2 or raster.dtype != bool:
        raise ValueError(f"expected Transients or a (cells, frames) bool onset raster, got "
                         f"{raster.dtype} array of shape {raster.shape}")
    if frame_rate_hz is None:
        raise ValueError("an onset raster needs frame_rate_hz > 0")
    cells, frames = np.nonzero(raster)
    return (cells.astype(np.int64), frames.astype(np.int64), raster.shape[0], raster.shape[1],
            float(frame_rate_hz), 0.0)


def _coactive(cells: np.ndarray, frames: np.ndarray, shifts: np.ndarray, n_frames: int,
              window: int) -> np.ndarray:
    """Co-active cell counts per window start, one row per row of ``shifts``.

    ``shifts`` (n_rows, n_cells) shifts each cell's onsets circularly. A cell counts in the
    window starting at ``t`` when its next onset at or after ``t`` lies before
    ``t + window``, i.e. for ``t`` in ``[max(previous onset + 1, onset - window + 1),
    onset]``: one interval per onset, disjoint within a cell, added with a difference array.
    """
    n_rows = shifts.shape[0]
    out = np.zeros((n_rows, n_frames), dtype=np.int32)
    if frames.size == 0:
        return out
    shifted = (frames[None, :] + shifts[:, cells]) % n_frames
    key = np.sort(cells[None, :] * n_frames + shifted, axis=1)
    cell_s, frame_s = np.divmod(key, n_frames)
    prev = np.concatenate([np.full((n_rows, 1), -1), frame_s[:, :-1]], axis=1)
    new_cell = np.concatenate([np.ones((n_rows, 1), bool), cell_s[:, 1:] != cell_s[:, :-1]],
                              axis=1)
    prev[new_cell] = -1
    start = np.maximum(prev + 1, frame_s - window + 1)
    offset = (np.arange(n_rows) * (n_frames + 1))[:, None]
    diff = np.bincount((start + offset).ravel(), minlength=n_rows * (n_frames + 1))
    diff -= np.bincount((frame_s + 1 + offset).ravel(), minlength=n_rows * (n_frames + 1))
    out[:] = np.cumsum(diff.reshape(n_rows, n_frames + 1), axis=1)[:, :n_frames]
    return out


def _sync_settings(window_s: object, n_shuffles: object, percentile: object,
                   min_cells: object, names: tuple[str, str, str, str] = (
                       "window_s", "n_shuffles", "percentile", "min_cells")
                   ) -> tuple[float, int, float, int]:
    """The settings of :func:`synchronous_events` (named ``names`` in errors), checked."""
    return (_real(window_s, names[0], low=0.0, open_low=True),
            _integer(n_shuffles, names[1], 1),
            _real(percentile, names[2], low=0.0, high=100.0, open_low=True,
                  open_high=True),
            _integer(min_cells, names[3], 1))


def _count_runs(above: np.ndarray) -> np.ndarray:
    """Number of runs of True per row."""
    starts = above[:, 1:] & ~above[:, :-1]
    return starts.sum(axis=1) + above[:, 0]


def synchronous_events(onsets: Transients | np.ndarray, frame_rate_hz: float | None = None,
                       *, rng: np.random.Generator | int,
                       window_s: float = SYNC_WINDOW_S, n_shuffles: int = N_SHUFFLES,
                       percentile: float = SYNC_PERCENTILE,
                       min_cells: int = SYNC_MIN_CELLS) -> SynchronyResult:
    """Synchronous transient events and their rate against a shuffle control.

    For each window start ``t``, count the cells with a transient onset in
    ``[t, t + window_s)``. The null keeps each cell's own onset train but breaks the
    timing between cells: every shuffle shifts each cell's onsets circularly by its own
    random offset (uniform over the recording). The threshold is the ``percentile`` of
    the co-active counts over all windows of all shuffles; windows with more co-active
    cells than the threshold (and at least ``min_cells``) are synchronous, and each run of
    consecutive synchronous windows is one event. The same threshold applied to each
    shuffle gives the null distribution of the event count, hence the p-value.

    Parameters
    ----------
    onsets : Transients or numpy.ndarray
        Detected transients, or a (n_cells, n_frames) bool raster of onsets (e.g. from
        deconvolved or simulated spikes).
    frame_rate_hz : float, optional
        Required for a raster.
    rng : numpy.random.Generator or int
        Source (or seed) of the shifts.
    window_s : float, default 0.5
        Co-activity window (s, > 0), rounded to frames, at least one frame.
    n_shuffles : int, default 1000
    percentile : float, default 99
        Shuffle percentile for the threshold (%, in (0, 100)).
    min_cells : int, default 2
        At least 1.

    Returns
    -------
    SynchronyResult
    """
    gen = _generator(rng)
    window_s, n_shuffles, percentile, min_cells = _sync_settings(window_s, n_shuffles,
                                                                 percentile, min_cells)
    cells, frames, n_cells, n_frames, rate, t0 = _onsets_of(onsets, frame_rate_hz)
    window = _frames(window_s, rate)
    shifts = gen.integers(0, n_frames, size=(n_shuffles, n_cells))
    # two passes over the shuffles, in chunks of bounded memory: the threshold first, then
    # each shuffle's event count under it
    chunk = max(1, min(n_shuffles, 4_000_000 // max(n_frames, frames.size, 1)))
    hist = np.zeros(n_cells + 1, dtype=np.int64)
    for a in range(0, n_shuffles, chunk):
        counts = _coactive(cells, frames, shifts[a:a + chunk], n_frames, window)
        hist += np.bincount(counts.ravel(), minlength=n_cells + 1)
    cdf = np.cumsum(hist) / hist.sum()
    # inverse CDF: the smallest count with at least `percentile`% of windows at or below it
    threshold = float(np.searchsorted(cdf, percentile / 100.0 - 1e-12))
    floor = max(threshold + 1, float(min_cells))
    null_events = np.empty(n_shuffles, dtype=np.int64)
    for a in range(0, n_shuffles, chunk):
        counts = _coactive(cells, frames, shifts[a:a + chunk], n_frames, window)
        null_events[a:a + chunk] = _count_runs(counts >= floor)
    observed = _coactive(cells, frames, np.zeros((1, n_cells), np.int64), n_frames, window)[0]
    start, stop = _runs(observed >= floor)
    peak = np.array([s + int(np.argmax(observed[s:e])) for s, e in zip(start, stop,
                                                                        strict=True)],
                    dtype=np.int64)
    duration_min = n_frames / rate / 60.0
    p = (1 + np.count_nonzero(null_events >= start.size)) / (1 + n_shuffles)
    return SynchronyResult(observed, threshold, peak, observed[peak].astype(np.int64),
                           start.size / duration_min, null_events / duration_min, float(p),
                           n_cells, n_frames, rate, window / rate, float(percentile),
                           int(min_cells), n_shuffles, t0)


# ------------------------------------------------------------ functional connectivity


@dataclass(frozen=True, eq=False)
class ConnectivityResult:
    """Pairwise Pearson correlation and its shuffle test.

    Attributes
    ----------
    r : numpy.ndarray
        (n_cells, n_cells) Pearson correlation of the dF/F traces (NaN rows for a
        constant trace).
    p : numpy.ndarray
        (n_cells, n_cells) per-pair shuffle p-value (NaN on the diagonal).
    significant : numpy.ndarray
        (n_cells, n_cells) bool, ``p < alpha``.
    mean_r : float
        Mean of ``r`` over distinct pairs.
    fraction_significant : float
        Fraction of distinct pairs with ``p < alpha``.
    null_mean_r : float
        Mean pairwise ``r`` over the shifts (0 over all shifts of centred traces: the
        chance level).
    n_pairs : int
        Pairs tested (both traces non-constant).
    n_shuffles : int
        Shifts per pair (``n_frames`` for the exact test).
    alpha : float
    alternative : str
        ``"greater"`` (positive correlation) or ``"two-sided"`` (``|r|``).
    """

    r: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    mean_r: float
    fraction_significant: float
    null_mean_r: float
    n_pairs: int
    n_shuffles: int
    alpha: float
    alternative: str


def _shift_test(spectrum_i: np.ndarray, spectra: np.ndarray, observed: np.ndarray,
                n_frames: int, alternative: str, gen: np.random.Generator | None = None,
                n_shuffles: int | None = None) -> tuple[np.ndarray, float]:
    """Cell i's pairs with cells js from their traces' spectra (rfft of unit-norm centred
    traces): per pair, how many circular shifts (all ``n_frames``, or ``n_shuffles``
    drawn from ``gen``) reach the observed ``r``, and the sum over pairs of the mean
    ``r`` over those shifts."""
    # xcorr[k, d] = sum_t z_i(t + d) z_j(t): r of the pair at relative shift d
    xcorr = np.fft.irfft(spectrum_i[None, :] * np.conj(spectra), n=n_frames, axis=1)
    if gen is not None:
        xcorr = np.take_along_axis(
            xcorr, gen.integers(0, n_frames, size=(spectra.shape[0], n_shuffles)), axis=1)
    null = float(xcorr.mean(axis=1).sum())
    if alternative == "two-sided":
        xcorr, observed = np.abs(xcorr), np.abs(observed)
    # float slack: the zero shift reproduces the observed value up to rounding
    return (xcorr >= observed[:, None] - 1e-9).sum(axis=1), null


def _alpha(alpha: object) -> float:
    return _real(alpha, "alpha", low=0.0, high=1.0, open_low=True, open_high=True)


def _correlation_shuffles(n_shuffles: object, name: str = "n_shuffles") -> int | None:
    return None if n_shuffles is None else _integer(n_shuffles, name, 1)


def correlated_pair_counts(z, alpha: float = CORRELATION_ALPHA, block: int = 256
                           ) -> tuple[int, int]:
    """The exact circular-shift test of :func:`functional_connectivity` (``n_shuffles``
    None, one-sided) over every pair of rows of ``z``, a block of rows at a time.

    ``z``: (n_cells, n_frames), any array that slices by rows (a ``numpy.memmap`` of a
    recording too large to hold), each row a centred trace of unit norm or all zeros (a
    constant trace, left out). Holds two blocks of ``block`` rows and their spectra, so
    memory does not grow with the cells. Returns (pairs tested, pairs with
    ``p < alpha``): the same counts as :func:`functional_connectivity` on the traces
    (the test draws nothing, so the order of the pairs does not matter)."""
    alpha = _alpha(alpha)
    block = _integer(block, "block", 1)
    n_cells, n_frames = z.shape
    valid = np.zeros(n_cells, bool)
    for k in range(0, n_cells, block):
        valid[k:k + block] = np.any(np.asarray(z[k:k + block]), axis=1)
    pairs = significant = 0
    for a0 in range(0, n_cells, block):
        za = np.array(z[a0:a0 + block], dtype=np.float64)
        sa = np.fft.rfft(za, axis=1)
        for b0 in range(a0, n_cells, block):
            zb, sb = (za, sa) if b0 == a0 else (
                np.array(z[b0:b0 + block], dtype=np.float64), None)
            if sb is None:
                sb = np.fft.rfft(zb, axis=1)
            for i in range(za.shape[0]):
                if not valid[a0 + i]:
                    continue
                js = np.arange(max(b0, a0 + i + 1), b0 + zb.shape[0])
                js = js[valid[js]] - b0
                if js.size == 0:
                    continue
                observed = np.clip(zb[js] @ za[i], -1.0, 1.0)
                extreme, _ = _shift_test(sa[i], sb[js], observed, n_frames, "greater")
                pairs += js.size
                significant += int((extreme / n_frames < alpha).sum())
    return pairs, significant


def functional_connectivity(dff: np.ndarray | DffRecording,
                            frame_rate_hz: float | None = None, *,
                            rng: np.random.Generator | int | None = None,
                            n_shuffles: int | None = N_CORRELATION_SHUFFLES,
                            alpha: float = CORRELATION_ALPHA,
                            alternative: Literal["greater", "two-sided"] = "greater"
                            ) -> ConnectivityResult:
    """Pairwise correlation of dF/F traces and the fraction of significant pairs.

    ``r`` is the Pearson correlation of each pair over all frames. The null shifts one
    trace of the pair circularly against the other (only the relative shift matters when
    each cell is shifted independently), which keeps each trace's autocorrelation (slow
    calcium decay) and breaks the alignment between cells. The correlation at every
    relative shift is the pair's circular cross-correlation, computed at once by FFT:

    - ``n_shuffles=None`` (default): the exact test over all ``n_frames`` circular
      shifts, ``p = #(shifts with r_shift >= r) / n_frames`` (the zero shift is the
      observed value itself);
    - ``n_shuffles=k``: ``k`` shifts drawn per pair from ``rng``,
      ``p = (1 + #(r_shift >= r)) / (1 + k)``.

    ``|r|`` replaces ``r`` for a two-sided test. Under independence about ``alpha`` of
    the pairs come out significant.

    Parameters
    ----------
    dff : numpy.ndarray or DffRecording
        (n_cells, n_frames) dF/F, n_cells >= 2.
    frame_rate_hz : float, optional
        Required for an array (used only to check the input).
    rng : numpy.random.Generator or int, optional
        Source (or seed) of the drawn shifts; required when ``n_shuffles`` is given.
    n_shuffles : int, optional
        Number of random shifts per pair (>= 1); None for all shifts.
    alpha : float, default 0.05
        Per-pair significance level, in (0, 1).
    alternative : {"greater", "two-sided"}, default "greater"

    Returns
    -------
    ConnectivityResult
    """
    x, _, _ = _as_matrix(dff, frame_rate_hz)
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    alpha = _alpha(alpha)
    n_shuffles = _correlation_shuffles(n_shuffles)
    gen = None if n_shuffles is None else _generator(rng)
    n_cells, n_frames = x.shape
    if n_cells < 2:
        raise ValueError("functional connectivity needs at least 2 cells")
    z = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt((z * z).sum(axis=1))
    const = norm <= _REL_TOL * np.maximum(1.0, np.abs(x).max(axis=1)) * np.sqrt(n_frames)
    z = np.where(const[:, None], 0.0, z / np.where(const, 1.0, norm)[:, None])
    r = z @ z.T
    np.clip(r, -1.0, 1.0, out=r)
    r[const, :] = np.nan
    r[:, const] = np.nan
    spectrum = np.fft.rfft(z, axis=1)
    p = np.full((n_cells, n_cells), np.nan)
    null_sum, n_valid = 0.0, 0
    for i in range(n_cells - 1):
        js = np.arange(i + 1, n_cells)
        js = js[~const[js]] if not const[i] else js[:0]
        if js.size == 0:
            continue
        extreme, null = _shift_test(spectrum[i], spectrum[js], r[i, js], n_frames,
                                    alternative, gen, n_shuffles)
        null_sum += null
        n_valid += js.size
        p[i, js] = (extreme / n_frames if n_shuffles is None
                    else (1 + extreme) / (1 + n_shuffles))
    iu = np.triu_indices(n_cells, 1)
    p.T[iu] = p[iu]
    significant = np.nan_to_num(p, nan=1.0) < alpha
    valid = ~np.isnan(p[iu])
    pairs = int(valid.sum())
    mean_r = float(r[iu][valid].mean()) if pairs else float("nan")
    frac = float(significant[iu][valid].mean()) if pairs else float("nan")
    null_mean = null_sum / n_valid if n_valid else float("nan")
    return ConnectivityResult(r, p, significant, mean_r, frac, null_mean, pairs,
                              n_frames if n_shuffles is None else n_shuffles, alpha,
                              alternative)


# ------------------------------------------------------------------- peri-event average


@dataclass(frozen=True, eq=False)
class PeriEventResult:
    """The trace around behavioural events.

    Attributes
    ----------
    lags_s : numpy.ndarray
        (n_lags,) time from the event (s), on the frame grid.
    per_event : numpy.ndarray
        (n_events, n_lags) the trace (population mean dF/F for a matrix) around each kept
        event, baseline-subtracted when ``subtract_baseline``.
    mean, sem : numpy.ndarray
        (n_lags,) mean over events and its SEM (SD ddof 1 / sqrt(n); NaN for < 2 events).
    event_times_s : numpy.ndarray
        The events used.
    dropped_times_s : numpy.ndarray
        Events whose window runs past the recording.
    baseline, baseline_sd : float
        Mean and SD of ``mean`` over the baseline window.
    peak_s : float
        Lag of the maximum of ``mean`` (negative: before the event).
    rise_s : float
        Lag at which ``mean``, going back from its peak, last crosses half-way between the
        baseline and the peak (linear interpolation between frames); NaN if it never
        drops to half within the window. The lead of the rise before the event is
        ``-rise_s``.
    """

    lags_s: np.ndarray
    per_event: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    event_times_s: np.ndarray
    dropped_times_s: np.ndarray
    baseline: float
    baseline_sd: float
    peak_s: float
    rise_s: float

    @property
    def n_events(self) -> int:
        return int(self.per_event.shape[0])


def _event_times(event_times_s: object) -> np.ndarray:
    """Event times (s) as a 1-D float array, all finite."""
    try:
        raw = np.asarray(event_times_s)
        # bools and text are no times (float(True) would read as 1 s)
        times = None if raw.dtype.kind in "bUSV" else np.atleast_1d(raw.astype(float))
    except (TypeError, ValueError):
        times = None
    if times is None or times.ndim != 1 or not np.isfinite(times).all():
        raise ValueError("event_times_s must be a 1-D sequence of finite times (s)")
    return times


def _interval(value: object, name: str) -> tuple[float, float]:
    """A (start, end) pair of finite times (s) with start < end."""
    try:
        start, end = value  # type: ignore[misc]
        start, end = _real(start, name), _real(end, name)
    except (TypeError, ValueError):
        start = end = math.nan
    if not start < end:
        raise ValueError(f"{name} must be (start, end), finite times (s) with start < end, "
                         f"got {short(value)}")
    return start, end


def peri_event_average(dff: np.ndarray | DffRecording, frame_rate_hz: float | None = None,
                       *, event_times_s: np.ndarray | list[float],
                       window_s: tuple[float, float] = PERI_EVENT_WINDOW_S,
                       baseline_s: tuple[float, float] | None = None,
                       subtract_baseline: bool = False,
                       time_s0: float | None = None) -> PeriEventResult:
    """Event-triggered average of a trace, and the latency of its peak and rise.

    Parameters
    ----------
    dff : numpy.ndarray or DffRecording
        One trace (n_frames,) or (n_cells, n_frames); a matrix is averaged over cells
        first (the population trace).
    frame_rate_hz : float, optional
        Required for an array.
    event_times_s : array-like
        Event times (s) on the recording's clock, e.g. struggle onsets from
        :func:`ketasim.analysis.behavior.struggle_onsets`.
    window_s : (float, float), default (-3, 2)
        Window around each event (s; finite, start < end).
    baseline_s : (float, float), optional
        Baseline window (s, relative to the event; finite, start < end); default the first
        second of the window.
    subtract_baseline : bool, default False
        Subtract each event's own baseline mean from its row.
    time_s0 : float, optional
        Time of frame 0 (s); default the recording's first ``time_s`` (0 for an array).

    Returns
    -------
    PeriEventResult
        Events are aligned to the nearest frame; those whose window runs past either end
        of the recording are dropped.
    """
    x, rate, t_first = _as_matrix(dff, frame_rate_hz)
    trace = x.mean(axis=0)
    t0 = t_first if time_s0 is None else _real(time_s0, "time_s0")
    times = _event_times(event_times_s)
    pre, post = _interval(window_s, "window_s")
    lag_frames = np.arange(round(pre * rate), round(post * rate) + 1)
    lags = lag_frames / rate
    if baseline_s is None:
        baseline_s = (pre, min(pre + PERI_EVENT_BASELINE_S, post))
    else:
        baseline_s = _interval(baseline_s, "baseline_s")
    in_base = (lags >= baseline_s[0] - 1e-9) & (lags < baseline_s[1] - 1e-9)
    if not in_base.any():
        raise ValueError(f"baseline_s {baseline_s} holds no frame of the window")
    centre = np.round((times - t0) * rate).astype(np.int64)
    ok = (centre + lag_frames[0] >= 0) & (centre + lag_frames[-1] < trace.size)
    per_event = trace[centre[ok, None] + lag_frames[None, :]]
    if subtract_baseline and per_event.size:
        per_event = per_event - per_event[:, in_base].mean(axis=1, keepdims=True)
    n = per_event.shape[0]
    nan = np.full(lags.size, np.nan)
    mean = per_event.mean(axis=0) if n else nan
    sem = per_event.std(axis=0, ddof=1) / np.sqrt(n) if n >= 2 else nan
    if n == 0:
        return PeriEventResult(lags, per_event, mean, sem, times[ok], times[~ok], np.nan,
                               np.nan, np.nan, np.nan)
    base = float(mean[in_base].mean())
    base_sd = float(mean[in_base].std(ddof=1)) if in_base.sum() >= 2 else float("nan")
    k = int(np.argmax(mean))
    half = base + 0.5 * (mean[k] - base)
    below = np.flatnonzero(mean[:k + 1] < half)
    rise = float("nan")
    if below.size and mean[k] > base:
        j = int(below[-1])  # last frame below half before the peak; j + 1 is at or above
        frac = (half - mean[j]) / (mean[j + 1] - mean[j])
        rise = float(lags[j] + frac * (lags[j + 1] - lags[j]))
    return PeriEventResult(lags, per_event, mean, sem, times[ok], times[~ok], base, base_sd,
                           float(lags[k]), rise)


# --------------------------------------------------------------------- session summary


@dataclass(frozen=True, eq=False)
class SessionSummary:
    """The calcium readouts of one session (see :meth:`as_dict`), and the detailed results.

    Scalar attributes carry their unit in the name; ``transients``, ``synchrony``,
    ``connectivity`` and ``peri_event`` hold the full results (``connectivity`` is None
    for a single cell, ``peri_event`` None without event times).
    """

    n_cells: int
    n_frames: int
    frame_rate_hz: float
    duration_min: float
    transient_rate_per_min: float
    active_cell_fraction: float
    transient_amplitude_dff: float
    sync_event_rate_per_min: float
    sync_shuffle_rate_per_min: float
    sync_threshold_fraction: float
    sync_cells_per_event: float
    sync_fraction_per_event: float
    sync_p: float
    mean_pairwise_r: float
    correlated_pair_fraction: float
    peri_event_n: int
    peri_event_peak_s: float
    peri_event_rise_s: float
    transients: Transients = field(repr=False)
    synchrony: SynchronyResult = field(repr=False)
    connectivity: ConnectivityResult | None = field(repr=False)
    peri_event: PeriEventResult | None = field(repr=False)

    def as_dict(self) -> dict[str, float | int]:
        """The scalar readouts by name."""
        skip = {"transients", "synchrony", "connectivity", "peri_event"}
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}


def summarize_session(dff: np.ndarray | DffRecording, frame_rate_hz: float | None = None, *,
                      rng: np.random.Generator | int,
                      event_times_s: np.ndarray | list[float] | None = None,
                      threshold_sd: float = TRANSIENT_ONSET_SD,
                      offset_sd: float = TRANSIENT_OFFSET_SD,
                      min_duration_s: float = TRANSIENT_MIN_DURATION_S,
                      min_separation_s: float = TRANSIENT_MIN_SEPARATION_S,
                      noise_sd: float | np.ndarray | None = None,
                      window_s: float = SYNC_WINDOW_S, n_shuffles: int = N_SHUFFLES,
                      percentile: float = SYNC_PERCENTILE,
                      n_correlation_shuffles: int | None = N_CORRELATION_SHUFFLES,
                      alpha: float = CORRELATION_ALPHA,
                      peri_event_window_s: tuple[float, float] = PERI_EVENT_WINDOW_S
                      ) -> SessionSummary:
    """All calcium readouts of one session.

    Runs :func:`detect_transients`, :func:`synchronous_events`,
    :func:`functional_connectivity` and, with ``event_times_s``, :func:`peri_event_average`
    with the settings given (see those functions). The synchrony and correlation shuffles
    draw from two generators spawned from ``rng``, so each result does not depend on
    whether the other is computed; the correlation test is exact over all circular
    shifts (draws nothing) unless ``n_correlation_shuffles`` is given.

    Returns
    -------
    SessionSummary
        ``transient_rate_per_min``: mean over cells; ``active_cell_fraction``: cells with
        at least one transient; ``transient_amplitude_dff``: mean over all transients;
        ``sync_*``: from :class:`SynchronyResult` (rates per minute, the threshold and the
        cells per event as fractions of the recorded cells); ``mean_pairwise_r`` and
        ``correlated_pair_fraction`` from :class:`ConnectivityResult`; ``peri_event_*``:
        number of events used, peak and rise lags (s, negative before the event).
    """
    gen = _generator(rng)
    sync_rng, corr_rng = gen.spawn(2)
    x, rate, t0 = _as_matrix(dff, frame_rate_hz)
    # checked here too: a single cell skips the correlation, which checks them
    alpha = _alpha(alpha)
    n_correlation_shuffles = _correlation_shuffles(n_correlation_shuffles,
                                                   "n_correlation_shuffles")
    rec = DffRecording(x, rate, t0 + np.arange(x.shape[1]) / rate,
                       tuple(str(i) for i in range(x.shape[0])))
    tr = detect_transients(rec, threshold_sd=threshold_sd, offset_sd=offset_sd,
                           min_duration_s=min_duration_s, min_separation_s=min_separation_s,
                           noise_sd=noise_sd)
    sync = synchronous_events(tr, rng=sync_rng, window_s=window_s, n_shuffles=n_shuffles,
                              percentile=percentile)
    conn = None
    if x.shape[0] >= 2:
        conn = functional_connectivity(rec, rng=corr_rng, n_shuffles=n_correlation_shuffles,
                                       alpha=alpha)
    peri = None
    if event_times_s is not None:
        peri = peri_event_average(rec, event_times_s=event_times_s,
                                  window_s=peri_event_window_s)
    nan = float("nan")
    return session_summary(tr, sync, conn, peri, tr.n_frames, rate,
                           conn.mean_r if conn else nan,
                           conn.fraction_significant if conn else nan)


def session_summary(tr: Transients, sync: SynchronyResult, conn: ConnectivityResult | None,
                    peri: PeriEventResult | None, n_frames: int, rate: float, mean_r: float,
                    correlated_pair_fraction: float) -> SessionSummary:
    """A :class:`SessionSummary` from its detailed results (the pairwise correlation
    given apart, so a streamed summary can supply its own)."""
    amps = np.concatenate([*tr.amplitudes, np.zeros(0)])
    nan = float("nan")
    return SessionSummary(
        n_cells=tr.n_cells, n_frames=n_frames, frame_rate_hz=rate,
        duration_min=tr.duration_min,
        transient_rate_per_min=float(tr.rate_per_min.mean()),
        active_cell_fraction=float((tr.counts > 0).mean()),
        transient_amplitude_dff=float(amps.mean()) if amps.size else nan,
        sync_event_rate_per_min=sync.event_rate_per_min,
        sync_shuffle_rate_per_min=sync.shuffle_rate_mean_per_min,
        sync_threshold_fraction=sync.threshold_fraction,
        sync_cells_per_event=sync.mean_cells_per_event,
        sync_fraction_per_event=sync.mean_fraction_per_event,
        sync_p=sync.p, mean_pairwise_r=mean_r,
        correlated_pair_fraction=correlated_pair_fraction,
        peri_event_n=peri.n_events if peri else 0,
        peri_event_peak_s=peri.peak_s if peri else nan,
        peri_event_rise_s=peri.rise_s if peri else nan,
        transients=tr, synchrony=sync, connectivity=conn, peri_event=peri)
