"""suite2p output folders: dF/F per cell, read and summarised in chunks of ROIs.

suite2p (Pachitariu et al. 2017, bioRxiv 061507) writes, per imaging plane,
``suite2p/plane0/``:

- ``F.npy``: (n_rois, n_frames) float32 raw fluorescence of each ROI;
- ``Fneu.npy``: the same shape, the fluorescence of the neuropil around each ROI;
- ``iscell.npy``: (n_rois, 2), column 0 the cell classification (1 = cell, 0 = not; what
  the suite2p GUI edits when a curator flips an ROI), column 1 the classifier's
  probability;
- ``ops.npy``: the run's settings, a pickled dict; ``ops["fs"]`` is the frame rate (Hz,
  per plane: the volume rate for multi-plane imaging).

:func:`read_suite2p` and :func:`iter_dff_chunks` turn such a folder into dF/F
(:class:`ketasim.analysis.calcium.DffRecording`, which every function of
:mod:`ketasim.analysis.calcium` accepts); :func:`summarize_suite2p` computes the session
readouts of :func:`ketasim.analysis.calcium.summarize_session` without ever holding the
whole dF/F matrix.

Pipeline, per selected ROI:

1. Neuropil correction, ``Fc = F - c * Fneu`` with ``c = neuropil_coefficient`` (0.7,
   suite2p's default ``ops["neucoeff"]``, also the factor of ketasim's simulated
   imaging assay).
2. Baseline ``F0`` of ``Fc`` (``baseline=``):

   - ``"percentile"`` (default): a running percentile, ``F0[t]`` = the
     ``percentile``-th percentile (8) of ``Fc`` in a centred window of ``window_s`` (60 s)
     around frame ``t``, as CaImAn's ``detrend_df_f`` (running 8th percentile;
     Giovannucci et al. 2019, eLife 8:e38173) and many two-photon pipelines compute F0;
     it follows slow drift (bleaching, focus) that a session-wide F0 would turn into
     dF/F. Exactly: ``scipy.ndimage.percentile_filter(Fc, percentile, size=w,
     mode="reflect")``, i.e. the ``floor(w * percentile / 100)``-th smallest (0-based) of
     the ``w`` values from frame ``t - w // 2`` to ``t - w // 2 + w - 1``, the trace
     mirrored at its ends (``d c b a | a b c d | d c b a``);
   - ``"maximin"``: suite2p's own baseline (``ops["baseline"] = "maximin"``,
     ``suite2p.extraction.dcnv.preprocess``): a Gaussian filter of SD ``sigma_frames``
     (10 frames, suite2p's ``sig_baseline``), then a running minimum and a running
     maximum over ``w`` frames (all ``mode="reflect"``);
   - ``"constant_percentile"``: one F0 per ROI, the ``percentile``-th percentile of the
     whole session (``numpy.percentile``, linear interpolation; suite2p's
     ``"constant_prctile"``, and the baseline of ketasim's simulated imaging assay).

   ``w = int(window_s * fs)`` frames (as suite2p computes ``win_baseline``), at least 1
   and at most the recording's length.
3. ``dF/F = (Fc - F0) / F0``, float64.

``F0`` must be > 0 at every frame: a neuropil-corrected trace whose baseline is 0 or
negative (a dim ROI under bright neuropil) has no dF/F, and is an error naming the ROI
and the frame (lower ``neuropil_coefficient``, or mark the ROI as not a cell).

Cells: by default the ROIs with ``iscell[:, 0] == 1`` (suite2p's classification including
any manual curation); with ``cell_probability=p`` instead those whose classifier
probability ``iscell[:, 1] >= p``. A 1-D ``iscell.npy`` of 0/1 flags is read as column
0; a 1-D one of probabilities needs ``cell_probability``. Only the selected ROIs are
read, so values of ROIs that are not cells (suite2p leaves NaN in some) are not checked.

Folder layout: ``folder`` may be a plane folder (holding ``F.npy`` etc.), a ``suite2p``
folder holding ``plane0``, ``plane1``, ..., or the folder above it (holding
``suite2p/``). ``plane=None`` (default) uses every ``planeK`` folder, in order of ``K``,
and concatenates their cells (cell ids ``"plane1/12"``: plane folder, ROI index in its
``F.npy``; with one plane just ``"12"``); ``plane=K`` picks one. suite2p's
``combined`` folder (all planes' ROIs again) is not used unless given as the folder
itself. Planes must share the frame rate; the planes of a volume are acquired in turn,
so their frame counts may differ by one, and then every plane is cut to the shortest
(a larger difference is an error).

Memory: ``F.npy`` and ``Fneu.npy`` are opened with ``numpy.load(mmap_mode="r")`` anew for
each chunk of ``chunk_cells`` ROIs (default: about 32 MiB of float64 per array), the
chunk's rows are copied out and the map is closed, so the pages read do not stay mapped
and peak memory does not grow with the file (``benchmarks/bench_suite2p.py``). suite2p
writes C-ordered arrays, whose rows are contiguous; a Fortran-ordered file is read
correctly but each chunk then touches the whole file.

``ops.npy`` is a pickle: it is the only file loaded with ``allow_pickle=True``, which can
run code stored in the file. Read only folders you trust. The other files are loaded
with ``allow_pickle=False``.

Every problem with the data is one :class:`ketasim.analysis.calcium.CalciumDataError`
line naming the file (its path as given) and, for values, the ROI (0-based index in
``F.npy``) and the frame (0-based): a missing folder or file, unreadable ``.npy``, the
wrong dtype (F and Fneu must be float32 or float64) or dimensionality, no ROIs or no
frames, F and Fneu of different shapes, ``iscell.npy`` of the wrong shape or length or
with values that are not flags or probabilities, ``ops.npy`` that is not a dict or has no
valid ``fs``, NaN or infinite F or Fneu, a baseline F0 <= 0, no cell selected, planes
that disagree. Bad settings (``neuropil_coefficient``, ``baseline``, ...) are
``ValueError``.
"""

from __future__ import annotations

import math
import numbers
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ketasim.analysis._tables import first_line, short
from ketasim.analysis.calcium import (
    CORRELATION_ALPHA,
    N_SHUFFLES,
    PERI_EVENT_WINDOW_S,
    SYNC_MIN_CELLS,
    SYNC_PERCENTILE,
    SYNC_WINDOW_S,
    TRANSIENT_MIN_DURATION_S,
    TRANSIENT_MIN_SEPARATION_S,
    TRANSIENT_OFFSET_SD,
    TRANSIENT_ONSET_SD,
    CalciumDataError,
    DffRecording,
    SessionSummary,
    Transients,
    _alpha,
    _event_times,
    _generator,
    _interval,
    _real,
    _sync_settings,
    _transient_settings,
    correlated_pair_counts,
    detect_transients,
    peri_event_average,
    session_summary,
    synchronous_events,
)

__all__ = [
    "BASELINES",
    "Suite2pFolder",
    "Suite2pPlane",
    "Suite2pSummary",
    "compute_dff",
    "iter_dff_chunks",
    "open_suite2p",
    "read_suite2p",
    "summarize_chunks",
    "summarize_suite2p",
]

# suite2p's defaults (ops): neucoeff 0.7, prctile_baseline 8, win_baseline 60 s,
# sig_baseline 10 frames
NEUROPIL_COEFFICIENT = 0.7
BASELINE_PERCENTILE = 8.0
BASELINE_WINDOW_S = 60.0
BASELINE_SIGMA_FRAMES = 10.0
BASELINES = ("percentile", "maximin", "constant_percentile")
# float64 bytes per array per chunk when chunk_cells is not given (assumed: small next to
# the 2 GB target, large enough that per-chunk overhead is negligible)
CHUNK_BYTES = 32 * 2**20
# planes of a volume may differ by this many frames (acquired in turn)
PLANE_FRAME_SLACK = 1
PLANE_RATE_RTOL = 1e-6
# as calcium.functional_connectivity: a trace whose centred norm is below this (relative)
# is constant and has no correlation
_REL_TOL = 1e-12
_FILES = ("F.npy", "Fneu.npy", "iscell.npy", "ops.npy")
_PLANE = re.compile(r"plane(\d+)")
_MAGIC = b"\x93NUMPY"


def _fail(path: Path | str, what: str, *, roi: int | None = None, frame: int | None = None,
          value: object = None) -> CalciumDataError:
    where = [str(path)]
    if roi is not None:
        where.append(f"ROI {roi}")
    if frame is not None:
        where.append(f"frame {frame}")
    got = "" if value is None else f", got {short(value)}"
    return CalciumDataError(f"{', '.join(where)}: {what}{got}")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class _Dff:
    coefficient: float
    baseline: str
    percentile: float
    window_s: float
    sigma_frames: float


def _settings(neuropil_coefficient: float, baseline: str, percentile: float,
              window_s: float, sigma_frames: float) -> _Dff:
    c = _real(neuropil_coefficient, "neuropil_coefficient", low=0.0)
    if not isinstance(baseline, str) or baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    p = _real(percentile, "percentile", low=0.0, high=100.0)
    w = _real(window_s, "window_s", low=0.0, open_low=True)
    s = _real(sigma_frames, "sigma_frames", low=0.0)
    return _Dff(c, baseline, p, w, s)


def _window_frames(s: _Dff, rate: float, n_frames: int) -> int:
    return max(1, int(min(s.window_s * rate, float(n_frames))))


def _baseline(fc: np.ndarray, s: _Dff, w: int) -> np.ndarray:
    if s.baseline == "percentile":
        # a 1-D input takes scipy's fast sliding-window path (a 2-D one with size (1, w)
        # gives the same numbers ~400x slower)
        return ndimage.percentile_filter(fc, s.percentile, size=w, mode="reflect")
    if s.baseline == "maximin":
        g = (ndimage.gaussian_filter1d(fc, s.sigma_frames, mode="reflect")
             if s.sigma_frames > 0 else fc)
        low = ndimage.minimum_filter1d(g, w, mode="reflect")
        return ndimage.maximum_filter1d(low, w, mode="reflect")
    return np.full(fc.shape, np.percentile(fc, s.percentile))


def _dff_rows(f: np.ndarray, fneu: np.ndarray, rate: float, s: _Dff
              ) -> tuple[np.ndarray, tuple[str, int, int, float] | None]:
    """dF/F of each row, and the first problem (kind, row, frame, value) or None.

    Rows are done one at a time, in order, and the first row with a problem stops the
    work, so which problem is reported does not depend on how rows are chunked."""
    k, n = f.shape
    out = np.empty((k, n), dtype=np.float64)
    w = _window_frames(s, rate, n)
    for i in range(k):
        fi = np.asarray(f[i], dtype=np.float64)
        ni = np.asarray(fneu[i], dtype=np.float64)
        for kind, x in (("F", fi), ("Fneu", ni)):
            bad = ~np.isfinite(x)
            if bad.any():
                t = int(np.argmax(bad))
                return out, (kind, i, t, float(x[t]))
        # extreme (finite) inputs can overflow here; every result is checked below
        with np.errstate(over="ignore", invalid="ignore"):
            fc = fi - s.coefficient * ni
            bad = ~np.isfinite(fc)
            if bad.any():
                t = int(np.argmax(bad))
                return out, ("corrected", i, t, float(fc[t]))
            f0 = _baseline(fc, s, w)
            bad = ~(np.isfinite(f0) & (f0 > 0))
            if bad.any():
                t = int(np.argmax(bad))
                return out, ("baseline", i, t, float(f0[t]))
            d = (fc - f0) / f0
            bad = ~np.isfinite(d)
            if bad.any():
                t = int(np.argmax(bad))
                return out, ("dff", i, t, float(f0[t]))
        out[i] = d
    return out, None


def _problem(prob: tuple[str, int, int, float], s: _Dff, f_name: str, fneu_name: str,
             roi: int) -> CalciumDataError:
    kind, _, t, v = prob
    if kind == "F":
        return _fail(f_name, "expected a finite fluorescence value", roi=roi, frame=t, value=v)
    if kind == "Fneu":
        return _fail(fneu_name, "expected a finite neuropil fluorescence value", roi=roi,
                     frame=t, value=v)
    if kind == "corrected":
        return _fail(f_name, f"F - {s.coefficient:g} x Fneu overflows (values out of "
                     "range)", roi=roi, frame=t, value=v)
    if kind == "baseline":
        return _fail(f_name, f"the {s.baseline} baseline F0 of F - {s.coefficient:g} x Fneu "
                     "must be > 0 for dF/F (lower neuropil_coefficient, or mark the ROI as "
                     "not a cell in iscell.npy)", roi=roi, frame=t, value=v)
    return _fail(f_name, f"dF/F is not finite: the baseline F0 ({v:g}) is too close to 0",
                 roi=roi, frame=t)


def compute_dff(f: np.ndarray, fneu: np.ndarray, frame_rate_hz: float, *,
                neuropil_coefficient: float = NEUROPIL_COEFFICIENT,
                baseline: str = "percentile", percentile: float = BASELINE_PERCENTILE,
                window_s: float = BASELINE_WINDOW_S,
                sigma_frames: float = BASELINE_SIGMA_FRAMES) -> np.ndarray:
    """dF/F of in-memory (n_rois, n_frames) ``F`` and ``Fneu`` arrays, by the pipeline of
    the module docstring (the same numbers as :func:`read_suite2p` gives for those rows).

    Raises
    ------
    CalciumDataError
        ``<array>, ROI i, frame t: ...`` for non-finite values or a baseline <= 0.
    ValueError
        Bad settings or shapes.
    """
    s = _settings(neuropil_coefficient, baseline, percentile, window_s, sigma_frames)
    f, fneu = np.asarray(f), np.asarray(fneu)
    if f.ndim != 2 or f.shape != fneu.shape:
        raise ValueError(f"F and Fneu must be 2-D arrays of one shape, got {f.shape} and "
                         f"{fneu.shape}")
    rate = _real(frame_rate_hz, "frame_rate_hz", low=0.0, open_low=True)
    dff, prob = _dff_rows(f, fneu, rate, s)
    if prob is not None:
        raise _problem(prob, s, "<array>", "<array>", prob[1])
    return dff


# ------------------------------------------------------------------------ the folder


@dataclass(frozen=True, eq=False)
class Suite2pPlane:
    """One plane folder, checked.

    Attributes
    ----------
    path : pathlib.Path
        The folder holding ``F.npy``, ``Fneu.npy``, ``iscell.npy`` and ``ops.npy``.
    label : str
        ``"plane0"`` etc.; the folder's name for a folder given directly.
    n_rois, n_frames : int
        Shape of its ``F.npy``.
    frame_rate_hz : float
        ``ops["fs"]``.
    rois : numpy.ndarray
        The ROIs selected as cells (0-based rows of ``F.npy``, ascending).
    """

    path: Path
    label: str
    n_rois: int
    n_frames: int
    frame_rate_hz: float
    rois: np.ndarray


@dataclass(frozen=True, eq=False)
class Suite2pFolder:
    """A suite2p output folder, checked (headers, ``iscell.npy``, ``ops.npy``; the traces
    themselves are checked as they are read).

    Attributes
    ----------
    folder : pathlib.Path
        The folder as given.
    planes : tuple of Suite2pPlane
        The planes used, in order.
    frame_rate_hz : float
    n_frames : int
        Frames used (the shortest plane's).
    cell_ids : tuple of str
        One per selected cell, in order: the ROI index (``"12"``) for one plane,
        ``"plane1/12"`` for several.
    """

    folder: Path
    planes: tuple[Suite2pPlane, ...]
    frame_rate_hz: float
    n_frames: int
    cell_ids: tuple[str, ...]

    @property
    def n_cells(self) -> int:
        return len(self.cell_ids)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.frame_rate_hz


def _plane_dirs(path: Path, plane: int | None) -> list[tuple[Path, str]]:
    if any((path / f).exists() for f in _FILES):
        if plane is not None:
            raise _fail(path, f"a single plane's folder (it holds suite2p's files); plane="
                        f"{plane} needs a folder holding plane0, plane1, ...")
        return [(path, path.name)]
    root = path / "suite2p" if (path / "suite2p").is_dir() else path
    found: dict[int, Path] = {}
    for d in root.iterdir():
        m = _PLANE.fullmatch(d.name)
        if m and d.is_dir():
            found[int(m.group(1))] = d
    if not found:
        raise _fail(path, "no suite2p output: expected F.npy, Fneu.npy, iscell.npy and "
                    "ops.npy here, or plane0, plane1, ... folders (here or in suite2p/)")
    if plane is None:
        return [(found[k], f"plane{k}") for k in sorted(found)]
    if plane not in found:
        have = ", ".join(f"plane{k}" for k in sorted(found))
        raise _fail(root, f"no folder plane{plane} (found {have})")
    return [(found[plane], f"plane{plane}")]


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_MAGIC)) == _MAGIC
    except OSError as err:
        raise _fail(path, f"cannot read: {first_line(err)}") from None


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file, from a map that is closed again at once."""
    if not _is_npy(path):
        raise _fail(path, "not a .npy file (no NumPy header; expected numpy.save output)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy's errors vary; one clear line
        raise _fail(path, f"cannot read .npy file: {first_line(err)}") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        close = getattr(arr, "close", None)
        if close is not None:
            close()
        raise _fail(path, "expected one array saved by numpy.save (.npy), got an archive")
    shape, dtype = tuple(int(n) for n in arr.shape), arr.dtype
    del arr
    return shape, dtype


def _trace_header(path: Path) -> tuple[int, int]:
    shape, dtype = _npy_header(path)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _fail(path, f"expected float32 or float64 values, got dtype {dtype}")
    if len(shape) != 2:
        raise _fail(path, f"expected a 2-D array (n_rois, n_frames), got {len(shape)}-D with "
                    f"shape {shape}")
    if shape[0] == 0:
        raise _fail(path, f"empty recording: no ROIs (shape {shape})")
    if shape[1] == 0:
        raise _fail(path, f"empty recording: no frames (shape {shape})")
    return shape[0], shape[1]


def _select(path: Path, n_rois: int, cell_probability: float | None) -> np.ndarray:
    if not _is_npy(path):
        raise _fail(path, "not a .npy file (no NumPy header; expected numpy.save output)")
    try:
        iscell = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy's errors vary; one clear line
        raise _fail(path, f"cannot read .npy file: {first_line(err)}") from None
    if not isinstance(iscell, np.ndarray):
        raise _fail(path, "expected one array saved by numpy.save (.npy), got an archive")
    if iscell.dtype.kind not in "biuf":
        raise _fail(path, f"expected numbers, got dtype {iscell.dtype}")
    if not (iscell.ndim == 1 or (iscell.ndim == 2 and iscell.shape[1] == 2)):
        raise _fail(path, f"expected shape (n_rois, 2) (is-cell flag, probability) or "
                    f"(n_rois,), got {iscell.shape}")
    if iscell.shape[0] != n_rois:
        raise _fail(path, f"has {iscell.shape[0]} rows, but F.npy has {n_rois} ROIs")
    values = iscell.astype(np.float64)
    if cell_probability is None:
        col = values[:, 0] if values.ndim == 2 else values
        bad = ~((col == 0) | (col == 1))
        if bad.any():
            i = int(np.argmax(bad))
            hint = (" (column 0)" if values.ndim == 2 else
                    " (a 1-D iscell.npy of probabilities needs cell_probability=)")
            raise _fail(path, f"expected an is-cell flag 0 or 1{hint}", roi=i, value=col[i])
        return np.flatnonzero(col == 1)
    col = values[:, 1] if values.ndim == 2 else values
    bad = ~((col >= 0) & (col <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        where = " (column 1)" if values.ndim == 2 else ""
        raise _fail(path, f"expected a cell probability in [0, 1]{where}", roi=i, value=col[i])
    return np.flatnonzero(col >= cell_probability)


def _frame_rate(path: Path) -> float:
    try:
        # ops.npy is a pickled dict: the one file loaded with allow_pickle=True
        obj = np.load(path, allow_pickle=True)
    except Exception as err:  # noqa: BLE001 - numpy's and pickle's errors vary
        what = (f"cannot read .npy file: {first_line(err)}" if _is_npy(path) else
                "neither a .npy file nor a pickle (expected numpy.save of the ops dict)")
        raise _fail(path, what) from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        what = (f"an array of dtype {obj.dtype} and shape {obj.shape}"
                if isinstance(obj, np.ndarray) else type(obj).__name__)
        raise _fail(path, f"expected a pickled dict of suite2p settings (numpy.save of ops), "
                    f"got {what}")
    if "fs" not in obj:
        raise _fail(path, "no 'fs' (frame rate, Hz) in ops")
    fs = obj["fs"]
    ok = isinstance(fs, numbers.Real) and not isinstance(fs, (bool, np.bool_))
    if not (ok and math.isfinite(float(fs)) and float(fs) > 0):
        raise _fail(path, "ops['fs'] must be a finite frame rate > 0 (Hz)", value=fs)
    return float(fs)


def _open_plane(path: Path, label: str, cell_probability: float | None) -> Suite2pPlane:
    for name in _FILES:
        if not (path / name).is_file():
            raise _fail(path / name, "file not found (a suite2p plane folder holds F.npy, "
                        "Fneu.npy, iscell.npy and ops.npy)")
    n_rois, n_frames = _trace_header(path / "F.npy")
    shape = _trace_header(path / "Fneu.npy")
    if shape != (n_rois, n_frames):
        raise _fail(path / "Fneu.npy", f"shape {shape} differs from F.npy's "
                    f"{(n_rois, n_frames)}")
    rois = _select(path / "iscell.npy", n_rois, cell_probability)
    rate = _frame_rate(path / "ops.npy")
    return Suite2pPlane(path, label, n_rois, n_frames, rate, rois)


def open_suite2p(folder: str | Path, *, plane: int | None = None,
                 cell_probability: float | None = None) -> Suite2pFolder:
    """Find and check a suite2p output folder without reading the traces.

    Parameters
    ----------
    folder : str or pathlib.Path
        A plane folder, a ``suite2p`` folder of ``planeK`` folders, or the folder above
        it (see the module docstring).
    plane : int, optional
        Use only ``planeK``; default every plane, concatenated.
    cell_probability : float, optional
        Select ROIs with classifier probability (``iscell[:, 1]``) ``>=`` this; default
        the cell flag ``iscell[:, 0] == 1``.

    Returns
    -------
    Suite2pFolder

    Raises
    ------
    CalciumDataError
        A problem with the folder or a file (named in the message).
    """
    if plane is not None and (isinstance(plane, bool) or not isinstance(plane, numbers.Integral)
                              or plane < 0):
        raise ValueError(f"plane must be an integer >= 0 or None, got {plane!r}")
    if cell_probability is not None:
        cell_probability = _real(cell_probability, "cell_probability", low=0.0, high=1.0)
    path = Path(folder)
    if not path.exists():
        raise _fail(path, "folder not found")
    if not path.is_dir():
        raise _fail(path, "not a folder (expected a suite2p output folder)")
    planes = [_open_plane(d, label, cell_probability)
              for d, label in _plane_dirs(path, None if plane is None else int(plane))]
    first = planes[0]
    for p in planes[1:]:
        if abs(p.frame_rate_hz / first.frame_rate_hz - 1) > PLANE_RATE_RTOL:
            raise _fail(p.path / "ops.npy", f"frame rate fs = {p.frame_rate_hz:g} Hz differs "
                        f"from {first.path / 'ops.npy'}'s {first.frame_rate_hz:g} Hz (pick "
                        "one plane with plane=)")
    frames = [p.n_frames for p in planes]
    n_frames = min(frames)
    if max(frames) - n_frames > PLANE_FRAME_SLACK:
        longest = planes[int(np.argmax(frames))]
        shortest = planes[int(np.argmin(frames))]
        raise _fail(longest.path / "F.npy", f"{longest.n_frames} frames, but "
                    f"{shortest.path / 'F.npy'} has {shortest.n_frames} (planes of one "
                    f"recording differ by at most {PLANE_FRAME_SLACK}; pick one plane with "
                    "plane=)")
    if sum(p.rois.size for p in planes) == 0:
        what = "; ".join(f"{p.path / 'iscell.npy'}: 0 of {p.n_rois}" for p in planes)
        rule = ("iscell column 0 == 1" if cell_probability is None
                else f"probability >= {cell_probability:g}")
        raise _fail(planes[0].path / "iscell.npy" if len(planes) == 1 else path,
                    f"no ROI selected as a cell ({rule}; {what})")
    if len(planes) == 1:
        ids = tuple(str(int(r)) for r in first.rois)
    else:
        ids = tuple(f"{p.label}/{int(r)}" for p in planes for r in p.rois)
    return Suite2pFolder(path, tuple(planes), first.frame_rate_hz, n_frames, ids)


# --------------------------------------------------------------------------- reading


def _read_rows(path: Path, rows: np.ndarray, n_frames: int) -> np.ndarray:
    """The rows ``rows`` (first ``n_frames`` frames) of an .npy file as float64, from a map
    opened for this read only: closing it drops the pages read from this process."""
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        block = np.array(mm[rows, :n_frames], dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - the file changed since it was checked
        raise _fail(path, f"cannot read .npy file: {first_line(err)}") from None
    del mm
    return block


def _chunk_size(chunk_cells: int | None, n_frames: int) -> int:
    if chunk_cells is None:
        return max(1, CHUNK_BYTES // (8 * n_frames))
    if isinstance(chunk_cells, bool) or not isinstance(chunk_cells, numbers.Integral) \
            or chunk_cells < 1:
        raise ValueError(f"chunk_cells must be an integer >= 1 or None, got {chunk_cells!r}")
    return int(chunk_cells)


def iter_dff_chunks(folder: str | Path | Suite2pFolder, *, plane: int | None = None,
                    cell_probability: float | None = None,
                    neuropil_coefficient: float = NEUROPIL_COEFFICIENT,
                    baseline: str = "percentile", percentile: float = BASELINE_PERCENTILE,
                    window_s: float = BASELINE_WINDOW_S,
                    sigma_frames: float = BASELINE_SIGMA_FRAMES,
                    chunk_cells: int | None = None) -> Iterator[DffRecording]:
    """dF/F of a suite2p folder's cells, a chunk of cells at a time.

    The folder is checked (:func:`open_suite2p`) when this is called; each chunk's traces
    are checked as it is read, so an error about a value (NaN, a baseline <= 0) comes
    from the iteration.

    Parameters
    ----------
    folder : str, pathlib.Path or Suite2pFolder
        The folder, or one already opened (then ``plane`` and ``cell_probability`` are
        not used).
    plane, cell_probability
        See :func:`open_suite2p`.
    neuropil_coefficient : float, default 0.7
    baseline : {"percentile", "maximin", "constant_percentile"}, default "percentile"
    percentile : float, default 8
        Percentile of the baseline (%), for ``"percentile"`` and ``"constant_percentile"``.
    window_s : float, default 60
        Window of the running baseline (s).
    sigma_frames : float, default 10
        Gaussian SD (frames) of ``"maximin"``.
    chunk_cells : int, optional
        Cells per chunk (a chunk never spans two planes); default about 32 MiB of float64
        per chunk. The dF/F does not depend on it.

    Yields
    ------
    DffRecording
        (cells of the chunk, n_frames) dF/F, the frame rate, ``time_s`` from 0, the
        chunk's cell ids, ``source`` the folder.
    """
    s = _settings(neuropil_coefficient, baseline, percentile, window_s, sigma_frames)
    info = (folder if isinstance(folder, Suite2pFolder)
            else open_suite2p(folder, plane=plane, cell_probability=cell_probability))
    k = _chunk_size(chunk_cells, info.n_frames)
    return _chunks(info, s, k)


def _chunks(info: Suite2pFolder, s: _Dff, k: int) -> Iterator[DffRecording]:
    n, rate = info.n_frames, info.frame_rate_hz
    time_s = np.arange(n) / rate
    first = 0
    for p in info.planes:
        f_path, n_path = p.path / "F.npy", p.path / "Fneu.npy"
        for a in range(0, p.rois.size, k):
            rows = p.rois[a:a + k]
            f = _read_rows(f_path, rows, n)
            fneu = _read_rows(n_path, rows, n)
            dff, prob = _dff_rows(f, fneu, rate, s)
            del f, fneu
            if prob is not None:
                raise _problem(prob, s, str(f_path), str(n_path), int(rows[prob[1]]))
            ids = info.cell_ids[first:first + rows.size]
            first += rows.size
            yield DffRecording(dff, rate, time_s, ids, str(info.folder))


def read_suite2p(folder: str | Path, *, plane: int | None = None,
                 cell_probability: float | None = None,
                 neuropil_coefficient: float = NEUROPIL_COEFFICIENT,
                 baseline: str = "percentile", percentile: float = BASELINE_PERCENTILE,
                 window_s: float = BASELINE_WINDOW_S,
                 sigma_frames: float = BASELINE_SIGMA_FRAMES,
                 chunk_cells: int | None = None) -> DffRecording:
    """The dF/F of a suite2p folder's cells, as one recording.

    The input files are streamed in chunks of ROIs (see :func:`iter_dff_chunks` for the
    parameters), so memory is the result itself (n_cells x n_frames float64) plus one
    chunk; for sessions whose dF/F is too large to hold use :func:`iter_dff_chunks` or
    :func:`summarize_suite2p`.

    Returns
    -------
    DffRecording
        ``dff`` (n_cells, n_frames) float64; ``frame_rate_hz`` from ``ops["fs"]``;
        ``time_s`` from 0; ``cell_ids`` the ROI indices (``"plane1/12"`` for several
        planes); ``source`` the folder.

    Raises
    ------
    CalciumDataError
        One line naming the file, and the ROI and frame for bad values (module
        docstring).
    """
    info = open_suite2p(folder, plane=plane, cell_probability=cell_probability)
    out = np.empty((info.n_cells, info.n_frames), dtype=np.float64)
    a = 0
    for chunk in iter_dff_chunks(info, neuropil_coefficient=neuropil_coefficient,
                                 baseline=baseline, percentile=percentile, window_s=window_s,
                                 sigma_frames=sigma_frames, chunk_cells=chunk_cells):
        out[a:a + chunk.n_cells] = chunk.dff
        a += chunk.n_cells
    return DffRecording(out, info.frame_rate_hz, np.arange(info.n_frames) / info.frame_rate_hz,
                        info.cell_ids, str(info.folder))


# ------------------------------------------------------------------------ summaries


def summarize_chunks(chunks: Iterable[DffRecording], *, rng: np.random.Generator | int,
                     event_times_s: np.ndarray | list[float] | None = None,
                     threshold_sd: float = TRANSIENT_ONSET_SD,
                     offset_sd: float = TRANSIENT_OFFSET_SD,
                     min_duration_s: float = TRANSIENT_MIN_DURATION_S,
                     min_separation_s: float = TRANSIENT_MIN_SEPARATION_S,
                     sync_window_s: float = SYNC_WINDOW_S, n_shuffles: int = N_SHUFFLES,
                     sync_percentile: float = SYNC_PERCENTILE,
                     min_cells: int = SYNC_MIN_CELLS,
                     peri_event_window_s: tuple[float, float] = PERI_EVENT_WINDOW_S,
                     pair_test: bool = True, alpha: float = CORRELATION_ALPHA
                     ) -> SessionSummary:
    """The session readouts of :func:`ketasim.analysis.calcium.summarize_session` from
    dF/F given a chunk of cells at a time (chunks of one recording: same frames, frame
    rate and clock), holding only one chunk's traces. Times (transient and synchronous
    event onsets, ``event_times_s``) are on the chunks' clock, frame 0 at ``time_s[0]``,
    as ``summarize_session`` has them.

    Per chunk: :func:`~ketasim.analysis.calcium.detect_transients` (per cell, so chunking
    changes nothing); the transients' onsets are kept and
    :func:`~ketasim.analysis.calcium.synchronous_events` runs on all of them at the end
    (the generators are spawned from ``rng`` as ``summarize_session`` does, so the same
    ``rng`` gives the same synchrony as ``summarize_session`` on the whole matrix). The
    population mean trace (for :func:`~ketasim.analysis.calcium.peri_event_average` with
    ``event_times_s``) and ``mean_pairwise_r`` are accumulated cell by cell:
    ``mean_pairwise_r`` is the mean Pearson r over pairs of non-constant traces, from
    ``sum_{i != j} z_i . z_j = |sum_i z_i|^2 - n`` for unit-norm centred traces ``z``,
    which equals ``functional_connectivity``'s ``mean_r`` up to rounding.
    ``correlated_pair_fraction`` (with ``pair_test``, the default) is the exact
    circular-shift test of every pair
    (:func:`~ketasim.analysis.calcium.correlated_pair_counts`, ``alpha``): the centred
    unit-norm traces go, as they are read, to a temporary file (8 bytes per cell and
    frame, in ``TMPDIR``, removed at the end), which is then read back two blocks of
    cells at a time, so memory stays bounded; its time grows with the square of the
    cells (``pair_test=False`` leaves it NaN). ``connectivity`` is None (no full
    matrices). ``sync_window_s`` and ``sync_percentile`` are ``summarize_session``'s
    ``window_s`` and ``percentile``.

    Returns
    -------
    SessionSummary

    Raises
    ------
    ValueError
        Bad settings (checked before any chunk is read), no chunks, or chunks that
        disagree on frames, frame rate or the time of frame 0.
    """
    gen = _generator(rng)
    threshold_sd, offset_sd, min_duration_s, min_separation_s = _transient_settings(
        threshold_sd, offset_sd, min_duration_s, min_separation_s)
    sync_window_s, n_shuffles, sync_percentile, min_cells = _sync_settings(
        sync_window_s, n_shuffles, sync_percentile, min_cells,
        ("sync_window_s", "n_shuffles", "sync_percentile", "min_cells"))
    alpha = _alpha(alpha)
    if event_times_s is not None:
        event_times_s = _event_times(event_times_s)
        peri_event_window_s = _interval(peri_event_window_s, "peri_event_window_s")
    sync_rng, _ = gen.spawn(2)  # as summarize_session: (synchrony, correlation)
    parts: list[Transients] = []
    rate = n_frames = t0 = None
    pop = zsum = None
    n_valid = 0
    with tempfile.TemporaryDirectory(prefix="ketasim-pairs-") as scratch:
        traces = Path(scratch) / "z.f8"
        with open(traces, "wb") as store:
            for chunk in chunks:
                if rate is None:
                    rate, n_frames = chunk.frame_rate_hz, chunk.n_frames
                    t0 = float(chunk.time_s[0])  # the recording's clock, as summarize_session
                    pop, zsum = np.zeros(n_frames), np.zeros(n_frames)
                elif chunk.n_frames != n_frames or chunk.frame_rate_hz != rate:
                    raise ValueError(
                        f"chunks of one recording must share frames and frame rate: "
                        f"{chunk.n_frames} frames at {chunk.frame_rate_hz:g} Hz after "
                        f"{n_frames} at {rate:g} Hz")
                elif not math.isclose(float(chunk.time_s[0]), t0, rel_tol=1e-12,
                                      abs_tol=1e-9):
                    raise ValueError(
                        f"chunks of one recording must share the clock: time_s starts at "
                        f"{float(chunk.time_s[0]):g} s after {t0:g} s")
                parts.append(detect_transients(
                    chunk, threshold_sd=threshold_sd, offset_sd=offset_sd,
                    min_duration_s=min_duration_s, min_separation_s=min_separation_s))
                # one row at a time, in order: the sums do not depend on chunking
                for x in chunk.dff:
                    pop += x
                    z = x - x.mean()
                    norm = math.sqrt(float(z @ z))
                    if norm > _REL_TOL * max(1.0, float(np.abs(x).max())) * math.sqrt(n_frames):
                        z = z / norm
                        zsum += z
                        n_valid += 1
                    else:
                        z = np.zeros(n_frames)  # a constant trace: no pairs
                    if pair_test:
                        store.write(np.asarray(z, dtype=np.float64).tobytes())
        if rate is None or pop is None or zsum is None or n_frames is None or t0 is None:
            raise ValueError("no chunks: nothing to summarize")
        n_cells = sum(p.n_cells for p in parts)
        pair_fraction = float("nan")
        if pair_test and n_cells >= 2:
            z_all = np.memmap(traces, dtype=np.float64, mode="r", shape=(n_cells, n_frames))
            pairs, significant = correlated_pair_counts(z_all, alpha=alpha)
            del z_all
            if pairs:
                pair_fraction = significant / pairs
    tr = Transients(rate, n_frames, np.concatenate([p.baseline for p in parts]),
                    np.concatenate([p.noise_sd for p in parts]),
                    tuple(o for p in parts for o in p.onset_frames),
                    tuple(o for p in parts for o in p.peak_frames),
                    tuple(o for p in parts for o in p.end_frames),
                    tuple(a for p in parts for a in p.amplitudes),
                    threshold_sd, offset_sd, min_duration_s, min_separation_s, t0)
    sync = synchronous_events(tr, rng=sync_rng, window_s=sync_window_s, n_shuffles=n_shuffles,
                              percentile=sync_percentile, min_cells=min_cells)
    nan = float("nan")
    mean_r = nan
    if n_valid >= 2:
        mean_r = (float(zsum @ zsum) - n_valid) / (n_valid * (n_valid - 1))
    peri = None
    if event_times_s is not None:
        peri = peri_event_average(pop / tr.n_cells, rate, event_times_s=event_times_s,
                                  window_s=peri_event_window_s, time_s0=t0)
    return session_summary(tr, sync, None, peri, n_frames, rate, mean_r, pair_fraction)


@dataclass(frozen=True, eq=False)
class Suite2pSummary:
    """The readouts of a suite2p folder.

    Attributes
    ----------
    session : SessionSummary
        As :func:`ketasim.analysis.calcium.summarize_session`, with ``connectivity``
        None (see :func:`summarize_chunks`).
    cells : pandas.DataFrame
        One row per cell: ``cell_id, plane, roi, n_transients, transient_rate_per_min,
        mean_amplitude_dff`` (NaN without transients), ``median_dff``, ``noise_sd_dff``.
    folder : Suite2pFolder
    """

    session: SessionSummary
    cells: pd.DataFrame = field(repr=False)
    folder: Suite2pFolder = field(repr=False)

    def as_dict(self) -> dict[str, float | int]:
        """The session's scalar readouts by name (``SessionSummary.as_dict``)."""
        return self.session.as_dict()


def summarize_suite2p(folder: str | Path, *, rng: np.random.Generator | int,
                      event_times_s: np.ndarray | list[float] | None = None,
                      plane: int | None = None, cell_probability: float | None = None,
                      neuropil_coefficient: float = NEUROPIL_COEFFICIENT,
                      baseline: str = "percentile", percentile: float = BASELINE_PERCENTILE,
                      window_s: float = BASELINE_WINDOW_S,
                      sigma_frames: float = BASELINE_SIGMA_FRAMES,
                      chunk_cells: int | None = None,
                      threshold_sd: float = TRANSIENT_ONSET_SD,
                      offset_sd: float = TRANSIENT_OFFSET_SD,
                      min_duration_s: float = TRANSIENT_MIN_DURATION_S,
                      min_separation_s: float = TRANSIENT_MIN_SEPARATION_S,
                      sync_window_s: float = SYNC_WINDOW_S, n_shuffles: int = N_SHUFFLES,
                      sync_percentile: float = SYNC_PERCENTILE,
                      min_cells: int = SYNC_MIN_CELLS,
                      peri_event_window_s: tuple[float, float] = PERI_EVENT_WINDOW_S,
                      pair_test: bool = True, alpha: float = CORRELATION_ALPHA
                      ) -> Suite2pSummary:
    """Per-cell transient rates and the session readouts of a suite2p folder, streamed.

    The dF/F comes from :func:`iter_dff_chunks` (folder and dF/F parameters there;
    ``percentile`` and ``window_s`` are the baseline's) and goes through
    :func:`summarize_chunks` (detection, synchrony and pair-test parameters there), so
    at no time are more than two blocks of traces in memory. The numbers do not depend on
    ``chunk_cells``.

    Returns
    -------
    Suite2pSummary

    Raises
    ------
    CalciumDataError
        A problem with the folder or its data (module docstring).
    """
    info = open_suite2p(folder, plane=plane, cell_probability=cell_probability)
    chunks = iter_dff_chunks(info, neuropil_coefficient=neuropil_coefficient,
                             baseline=baseline, percentile=percentile, window_s=window_s,
                             sigma_frames=sigma_frames, chunk_cells=chunk_cells)
    session = summarize_chunks(chunks, rng=rng, event_times_s=event_times_s,
                               threshold_sd=threshold_sd, offset_sd=offset_sd,
                               min_duration_s=min_duration_s,
                               min_separation_s=min_separation_s, sync_window_s=sync_window_s,
                               n_shuffles=n_shuffles, sync_percentile=sync_percentile,
                               min_cells=min_cells, peri_event_window_s=peri_event_window_s,
                               pair_test=pair_test, alpha=alpha)
    tr = session.transients
    amps = [float(a.mean()) if a.size else float("nan") for a in tr.amplitudes]
    cells = pd.DataFrame({
        "cell_id": list(info.cell_ids),
        "plane": [p.label for p in info.planes for _ in p.rois],
        "roi": np.concatenate([p.rois for p in info.planes]).astype(np.int64),
        "n_transients": tr.counts,
        "transient_rate_per_min": tr.rate_per_min,
        "mean_amplitude_dff": np.array(amps, dtype=float),
        "median_dff": tr.baseline,
        "noise_sd_dff": tr.noise_sd,
    })
    return Suite2pSummary(session, cells, info)
