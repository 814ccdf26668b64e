"""suite2p output folders (ketasim.analysis.suite2p): dF/F against a direct computation,
planted transients recovered, chunk-size invariance, the streamed summary against the
in-memory one, and one CalciumDataError naming the file for each malformed folder."""

from __future__ import annotations

import itertools
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ketasim.analysis.calcium import (
    CalciumDataError,
    DffRecording,
    detect_transients,
    functional_connectivity,
    summarize_session,
)
from ketasim.analysis.suite2p import (
    BASELINES,
    Suite2pFolder,
    compute_dff,
    iter_dff_chunks,
    open_suite2p,
    read_suite2p,
    summarize_suite2p,
)

FS = 20.0  # Hz
C = 0.7  # neuropil coefficient
TAU_S = 0.5  # decay of the planted transients


pytestmark = pytest.mark.usefixtures("private_home")


def write_plane(d: Path, f, fneu, iscell, ops) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "F.npy", f)
    np.save(d / "Fneu.npy", fneu)
    np.save(d / "iscell.npy", iscell)
    np.save(d / "ops.npy", ops, allow_pickle=True)
    return d


def planted(rng, n_cells=10, n_frames=4800, per_cell=6, n_noncells=2, noise=0.03):
    """Raw F and Fneu of ROIs with transients at known frames: dF/F truth (noise plus
    exponential transients, some onsets shared by several cells), scaled by a per-ROI F0
    with slow bleaching, plus C x a drifting, noisy neuropil."""
    n_rois = n_cells + n_noncells
    t = np.arange(n_frames) / FS
    k = np.exp(-np.arange(int(6 * TAU_S * FS)) / FS / TAU_S)
    truth = rng.normal(0.0, noise, (n_rois, n_frames))
    slots = np.arange(40, n_frames - k.size, 90)  # 4.5 s apart: no overlap
    shared = rng.choice(slots, 2, replace=False)  # onsets of an ensemble of cells
    onsets = []
    for c in range(n_rois):
        free = np.setdiff1d(slots, shared)
        on = np.sort(np.concatenate([shared[: 2 if c < 5 else 0],
                                     rng.choice(free, per_cell - (2 if c < 5 else 0),
                                                replace=False)]))
        for o in on:
            truth[c, o:o + k.size] += rng.uniform(0.6, 1.5) * k
        onsets.append(on)
    f0 = rng.uniform(200.0, 400.0, (n_rois, 1)) * np.exp(-t / 1200.0)[None, :]  # bleaching
    fneu = 150.0 + 20.0 * np.sin(2 * np.pi * t / 100.0)[None, :] + rng.normal(0, 5,
                                                                               (n_rois, n_frames))
    f = f0 * (1.0 + truth) + C * fneu
    iscell = np.column_stack([np.r_[np.ones(n_cells), np.zeros(n_noncells)],
                              np.r_[rng.uniform(0.6, 1, n_cells), rng.uniform(0, 0.4,
                                                                             n_noncells)]])
    return f.astype(np.float32), fneu.astype(np.float32), iscell, onsets[:n_cells], truth


@pytest.fixture
def planted_folder(tmp_path, rng):
    f, fneu, iscell, onsets, truth = planted(rng)
    root = tmp_path / "session"
    write_plane(root / "suite2p" / "plane0", f, fneu, iscell, {"fs": FS, "nframes": f.shape[1]})
    return root, onsets, truth


# ------------------------------------------------------------------ direct reference


def sliding(x: np.ndarray, w: int) -> np.ndarray:
    """(n, w) windows of frames t - w//2 .. t - w//2 + w - 1, mirrored at the ends."""
    left, right = w // 2, w - 1 - w // 2
    padded = np.pad(x, (left, right), mode="symmetric")  # d c b a | a b c d | d c b a
    return np.lib.stride_tricks.sliding_window_view(padded, w)


def reference_dff(f, fneu, fs, baseline, percentile=8.0, window_s=60.0, sigma=10.0, c=C):
    fc = f.astype(np.float64) - c * fneu.astype(np.float64)
    out = np.empty_like(fc)
    w = max(1, min(int(window_s * fs), fc.shape[1]))
    for i, x in enumerate(fc):
        if baseline == "percentile":
            rank = min(int(w * percentile / 100.0), w - 1)
            f0 = np.sort(sliding(x, w), axis=1)[:, rank]
        elif baseline == "maximin":
            r = int(4.0 * sigma + 0.5)
            kern = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
            g = sliding(x, 2 * r + 1) @ (kern / kern.sum())
            f0 = sliding(sliding(g, w).min(axis=1), w).max(axis=1)
        else:
            f0 = np.full(x.shape, np.percentile(x, percentile))
        out[i] = (x - f0) / f0
    return out


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("window_s", [1.3, 0.6, 100.0])
def test_dff_equals_direct_computation(tmp_path, rng, baseline, window_s):
    n_rois, n_frames, fs = 4, 60, 10.0
    fneu = rng.uniform(50, 80, (n_rois, n_frames)).astype(np.float32)
    f = (rng.uniform(100, 200, (n_rois, n_frames)) + C * fneu).astype(np.float32)
    iscell = np.array([[1, 0.9], [0, 0.2], [1, 0.7], [1, 0.55]])
    d = write_plane(tmp_path / "p", f, fneu, iscell, {"fs": fs})
    rec = read_suite2p(d, baseline=baseline, window_s=window_s, sigma_frames=2.0)
    ref = reference_dff(f, fneu, fs, baseline, window_s=window_s, sigma=2.0)[[0, 2, 3]]
    assert isinstance(rec, DffRecording)
    assert rec.cell_ids == ("0", "2", "3") and rec.frame_rate_hz == fs
    assert rec.dff.dtype == np.float64 and rec.dff.shape == (3, n_frames)
    np.testing.assert_allclose(rec.dff, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rec.time_s, np.arange(n_frames) / fs)
    same = compute_dff(f[[0, 2, 3]], fneu[[0, 2, 3]], fs, baseline=baseline,
                       window_s=window_s, sigma_frames=2.0)
    np.testing.assert_array_equal(same, rec.dff)


def test_planted_transients_are_recovered(planted_folder):
    root, onsets, truth = planted_folder
    rec = read_suite2p(root)
    assert rec.n_cells == 10 and rec.cell_ids == tuple(str(i) for i in range(10))
    # the running baseline follows the bleaching: dF/F is the planted truth, up to the
    # baseline's offset (the 8th percentile of the noise) and its scale
    resid = rec.dff - truth[:10]
    assert np.median(np.abs(resid - np.median(resid, axis=1, keepdims=True))) < 0.03
    tr = detect_transients(rec)
    for c in range(10):
        found = tr.onset_frames[c]
        assert found.size == onsets[c].size, (c, found, onsets[c])
        assert np.all(np.abs(found - onsets[c]) <= 2)
    amps = np.concatenate(tr.amplitudes)
    assert 0.45 < amps.min() and amps.max() < 1.9
    summary = summarize_suite2p(root, rng=1, n_shuffles=200)
    assert summary.cells["n_transients"].tolist() == [o.size for o in onsets]
    assert summary.session.sync_event_rate_per_min > 0  # the shared onsets
    assert summary.cells["roi"].tolist() == list(range(10))


def test_chunk_size_does_not_change_results(planted_folder, rng):
    root, _, _ = planted_folder
    events = np.sort(rng.uniform(10, 230, 6))
    recs, sums = [], []
    for k in (1, 7, 10, None):
        chunks = list(iter_dff_chunks(root, chunk_cells=k))
        assert [c.n_cells for c in chunks] == {1: [1] * 10, 7: [7, 3], 10: [10],
                                               None: [10]}[k]
        recs.append(read_suite2p(root, chunk_cells=k, baseline="maximin"))
        sums.append(summarize_suite2p(root, rng=5, n_shuffles=100, chunk_cells=k,
                                      event_times_s=events))
    for rec in recs[1:]:
        np.testing.assert_array_equal(rec.dff, recs[0].dff)
    for s in sums[1:]:
        a, b = s.as_dict(), sums[0].as_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
        assert s.cells.equals(sums[0].cells)
        np.testing.assert_array_equal(s.session.synchrony.coactive_cells,
                                      sums[0].session.synchrony.coactive_cells)
        np.testing.assert_array_equal(s.session.peri_event.mean, sums[0].session.peri_event.mean)


def test_streamed_summary_matches_in_memory_summary(planted_folder, rng):
    root, _, _ = planted_folder
    events = np.sort(rng.uniform(10, 230, 6))
    streamed = summarize_suite2p(root, rng=11, n_shuffles=200, event_times_s=events,
                                 chunk_cells=3)
    rec = read_suite2p(root)
    whole = summarize_session(rec, rng=11, n_shuffles=200, event_times_s=events)
    a, b = streamed.as_dict(), whole.as_dict()
    for key in a:
        if key in ("mean_pairwise_r", "peri_event_peak_s", "peri_event_rise_s"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
        else:
            assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    assert whole.mean_pairwise_r == pytest.approx(
        functional_connectivity(rec).mean_r, rel=1e-12)
    np.testing.assert_allclose(streamed.session.peri_event.mean, whole.peri_event.mean,
                               rtol=1e-12, atol=1e-12)
    cells = streamed.cells
    np.testing.assert_allclose(cells["transient_rate_per_min"],
                               whole.transients.rate_per_min)
    assert list(cells.columns) == ["cell_id", "plane", "roi", "n_transients",
                                   "transient_rate_per_min", "mean_amplitude_dff",
                                   "median_dff", "noise_sd_dff"]
    assert 0 < a["correlated_pair_fraction"] < 1  # the planted ensembles: exact, as above
    off = summarize_suite2p(root, rng=11, n_shuffles=200, chunk_cells=3, pair_test=False)
    assert math.isnan(off.session.correlated_pair_fraction)


def test_pair_counts_by_blocks_equal_the_whole_matrix_test(tmp_path):
    """The exact shift test two blocks of rows at a time, from a memory map, counts the
    same pairs and significant pairs as functional_connectivity on the whole matrix,
    whatever the block size; a constant trace has no pairs."""
    from ketasim.analysis.calcium import correlated_pair_counts

    g = np.random.default_rng(4)
    shared = np.convolve(g.standard_normal(600), np.ones(15) / 15, mode="same")
    x = g.standard_normal((11, 600)) * 0.5 + g.uniform(0, 1.5, (11, 1)) * shared
    x[6] = 2.0  # constant
    conn = functional_connectivity(x, 30.0)
    z = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt((z * z).sum(axis=1))
    z = np.where(norm[:, None] > 1e-9, z / np.where(norm > 1e-9, norm, 1.0)[:, None], 0.0)
    path = tmp_path / "z.f8"
    z.tofile(path)
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=z.shape)
    for block in (1, 3, 4, 11, 256):
        pairs, sig = correlated_pair_counts(mm, alpha=0.05, block=block)
        assert pairs == conn.n_pairs == 45
        assert sig / pairs == conn.fraction_significant
    assert 0.2 < conn.fraction_significant < 1.0


def test_cell_selection(tmp_path, rng):
    f, fneu, _, _, _ = planted(rng, n_cells=4, n_frames=600, per_cell=2, n_noncells=0)
    iscell = np.array([[1, 0.4], [0, 0.8], [1, 0.9], [0, 0.1]])
    f[3, 10] = np.nan  # not a cell: never read
    d = write_plane(tmp_path / "a", f, fneu, iscell, {"fs": FS})
    assert read_suite2p(d).cell_ids == ("0", "2")  # the flag (manual curation) by default
    assert read_suite2p(d, cell_probability=0.5).cell_ids == ("1", "2")
    np.save(d / "iscell.npy", np.array([0, 1, 1, 0], dtype=bool))  # 1-D flags
    assert read_suite2p(d).cell_ids == ("1", "2")
    np.save(d / "iscell.npy", np.array([0.2, 0.6, 0.95, 0.3]))  # 1-D probabilities
    assert read_suite2p(d, cell_probability=0.6).cell_ids == ("1", "2")
    with pytest.raises(CalciumDataError, match=r"iscell\.npy, ROI 0: .*needs cell_probability"):
        read_suite2p(d)


def test_planes_combined_or_picked(tmp_path, rng):
    f, fneu, iscell, _, _ = planted(rng, n_cells=3, n_frames=601, per_cell=2, n_noncells=1)
    s2p = tmp_path / "rec" / "suite2p"
    write_plane(s2p / "plane0", f, fneu, iscell, {"fs": FS})
    write_plane(s2p / "plane1", f[:, :600], fneu[:, :600], iscell, {"fs": FS})
    write_plane(s2p / "combined", f[:2], fneu[:2], iscell[:2], {"fs": FS})  # not used
    info = open_suite2p(tmp_path / "rec")
    assert isinstance(info, Suite2pFolder)
    assert info.n_frames == 600 and info.n_cells == 6 and info.frame_rate_hz == FS
    assert info.cell_ids == ("plane0/0", "plane0/1", "plane0/2",
                             "plane1/0", "plane1/1", "plane1/2")
    both = read_suite2p(s2p)  # the suite2p folder itself works too
    one = read_suite2p(tmp_path / "rec", plane=1)
    assert one.cell_ids == ("0", "1", "2") and one.n_frames == 600
    np.testing.assert_array_equal(both.dff[3:], one.dff)
    np.testing.assert_array_equal(read_suite2p(s2p / "combined").dff[:2],
                                  read_suite2p(s2p / "plane0").dff[:2, :])
    assert read_suite2p(s2p / "plane0").n_frames == 601
    s = summarize_suite2p(tmp_path / "rec", rng=0, n_shuffles=20)
    assert s.cells["plane"].tolist() == ["plane0"] * 3 + ["plane1"] * 3
    with pytest.raises(CalciumDataError, match=r"suite2p: no folder plane4 \(found plane0, "
                                               r"plane1\)"):
        read_suite2p(tmp_path / "rec", plane=4)
    with pytest.raises(CalciumDataError, match=r"plane0: a single plane's folder"):
        read_suite2p(s2p / "plane0", plane=0)
    np.save(s2p / "plane1" / "F.npy", f[:, :598])
    np.save(s2p / "plane1" / "Fneu.npy", fneu[:, :598])
    with pytest.raises(CalciumDataError, match=r"plane0/F\.npy: 601 frames, but .*plane1/F\.npy "
                                               r"has 598"):
        read_suite2p(s2p)
    write_plane(s2p / "plane1", f, fneu, iscell, {"fs": 2 * FS})
    with pytest.raises(CalciumDataError, match=r"plane1/ops\.npy: frame rate fs = 40 Hz "
                                               r"differs"):
        read_suite2p(s2p)


def test_bad_settings_are_value_errors(planted_folder):
    root, _, _ = planted_folder
    for kwargs in ({"baseline": "median"}, {"neuropil_coefficient": -1},
                   {"percentile": 101}, {"window_s": 0}, {"chunk_cells": 0},
                   {"plane": -1}, {"cell_probability": 1.5}, {"sigma_frames": float("nan")}):
        with pytest.raises(ValueError) as err:
            read_suite2p(root, **kwargs)
        assert not isinstance(err.value, CalciumDataError), kwargs


# -------------------------------------------------------------------- malformed corpus


def good_arrays(n_rois=3, n_frames=40):
    rng = np.random.default_rng(3)
    fneu = rng.uniform(10, 20, (n_rois, n_frames)).astype(np.float32)
    f = (rng.uniform(100, 120, (n_rois, n_frames)) + C * fneu).astype(np.float32)
    iscell = np.column_stack([np.ones(n_rois), np.full(n_rois, 0.9)])
    return {"F.npy": f, "Fneu.npy": fneu, "iscell.npy": iscell, "ops.npy": {"fs": 10.0}}


def _set(name, value):
    return lambda a, d: a.__setitem__(name, value)


def _value(name, roi, frame, value):
    def edit(a, d):
        a[name] = a[name].copy()
        a[name][roi, frame] = value
    return edit


def _bytes(name, data):
    def edit(a, d):
        a[name] = ("raw", data)
    return edit


def _truncate(name):
    def edit(a, d):
        a[name] = ("truncate", a[name])
    return edit


def _drop(name):
    return lambda a, d: a.__setitem__(name, None)


def _empty_rois(a, d):
    a["F.npy"] = np.zeros((0, 40), np.float32)
    a["Fneu.npy"] = np.zeros((0, 40), np.float32)
    a["iscell.npy"] = np.zeros((0, 2))


MALFORMED = [
    # (id, edit, file named, message pattern)
    ("missing F", _drop("F.npy"), "F.npy", "file not found"),
    ("missing Fneu", _drop("Fneu.npy"), "Fneu.npy", "file not found"),
    ("missing iscell", _drop("iscell.npy"), "iscell.npy", "file not found"),
    ("missing ops", _drop("ops.npy"), "ops.npy", "file not found"),
    ("shape mismatch", _set("Fneu.npy", np.ones((3, 39), np.float32)), "Fneu.npy",
     r"shape \(3, 39\) differs from F\.npy's \(3, 40\)"),
    ("iscell length", _set("iscell.npy", np.ones((4, 2))), "iscell.npy",
     "has 4 rows, but F.npy has 3 ROIs"),
    ("iscell shape", _set("iscell.npy", np.ones((3, 3))), "iscell.npy",
     r"expected shape \(n_rois, 2\)"),
    ("iscell flag", _value("iscell.npy", 1, 0, 0.5), "iscell.npy",
     "ROI 1: expected an is-cell flag 0 or 1 .column 0., got 0.5"),
    ("iscell text", _set("iscell.npy", np.array([["a", "b"]] * 3)), "iscell.npy",
     "expected numbers, got dtype <U1"),
    ("ops without fs", _set("ops.npy", {"nframes": 40}), "ops.npy", "no 'fs'"),
    ("ops fs zero", _set("ops.npy", {"fs": 0.0}), "ops.npy", "finite frame rate > 0"),
    ("ops fs text", _set("ops.npy", {"fs": "30"}), "ops.npy", "finite frame rate > 0"),
    ("ops not a dict", _set("ops.npy", np.arange(3.0)), "ops.npy",
     "expected a pickled dict"),
    ("ops garbage", _bytes("ops.npy", b"\x00 not a pickle"), "ops.npy",
     "neither a .npy file nor a pickle"),
    ("NaN in F", _value("F.npy", 2, 7, np.nan), "F.npy",
     "ROI 2, frame 7: expected a finite fluorescence value, got nan"),
    ("inf in Fneu", _value("Fneu.npy", 0, 39, np.inf), "Fneu.npy",
     "ROI 0, frame 39: expected a finite neuropil fluorescence value, got inf"),
    ("no cells", _set("iscell.npy", np.zeros((3, 2))), "iscell.npy",
     r"no ROI selected as a cell \(iscell column 0 == 1; .*0 of 3\)"),
    ("integer F", _set("F.npy", np.ones((3, 40), np.int16)), "F.npy",
     "expected float32 or float64 values, got dtype int16"),
    ("F 1-D", _set("F.npy", np.ones(40, np.float32)), "F.npy", "expected a 2-D array"),
    ("F 3-D", _set("F.npy", np.ones((3, 40, 1), np.float32)), "F.npy", "expected a 2-D array"),
    ("no frames", lambda a, d: [a.__setitem__(k, np.zeros((3, 0), np.float32))
                                for k in ("F.npy", "Fneu.npy")], "F.npy",
     r"empty recording: no frames"),
    ("no ROIs", _empty_rois, "F.npy", "empty recording: no ROIs"),
    ("F garbage", _bytes("F.npy", b"this is not an npy file"), "F.npy", "not a .npy file"),
    ("F empty file", _bytes("F.npy", b""), "F.npy", "not a .npy file"),
    ("iscell garbage", _bytes("iscell.npy", b"\x93NUMPY\x01\x00garbage"), "iscell.npy",
     "cannot read .npy file"),
    ("F truncated", _truncate("F.npy"), "F.npy", "cannot read .npy file"),
    ("F pickled objects", _set("F.npy", np.array([[None] * 40] * 3, dtype=object)), "F.npy",
     "cannot read .npy file"),
    ("baseline <= 0", _set("Fneu.npy", np.full((3, 40), 1000.0, np.float32)), "F.npy",
     r"ROI 0, frame 0: the percentile baseline F0 of F - 0.7 x Fneu must be > 0"),
]


def write_corpus_case(d: Path, arrays: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        path = d / name
        if value is None:
            continue
        if isinstance(value, tuple) and value[0] == "raw":
            path.write_bytes(value[1])
        elif isinstance(value, tuple) and value[0] == "truncate":
            np.save(path, value[1])
            path.write_bytes(path.read_bytes()[:200])
        else:
            np.save(path, value, allow_pickle=True)


@pytest.mark.parametrize(("edit", "name", "pattern"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_folder_is_one_clear_error(tmp_path, edit, name, pattern):
    arrays = good_arrays()
    d = tmp_path / "suite2p" / "plane0"
    edit(arrays, d)
    write_corpus_case(d, arrays)
    for call in (lambda: read_suite2p(tmp_path),
                 lambda: summarize_suite2p(tmp_path, rng=0, n_shuffles=10)):
        with pytest.raises(CalciumDataError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(str(d / name)), msg
        assert len(re.findall(pattern, msg)) == 1, msg


def test_folder_errors(tmp_path):
    with pytest.raises(CalciumDataError, match=r"nowhere: folder not found"):
        read_suite2p(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CalciumDataError, match=r"file\.txt: not a folder"):
        read_suite2p(tmp_path / "file.txt")
    (tmp_path / "empty" / "suite2p").mkdir(parents=True)
    with pytest.raises(CalciumDataError, match=r"empty: no suite2p output"):
        read_suite2p(tmp_path / "empty")
    d = write_plane(tmp_path / "p", *good_arrays().values())
    np.save(d / "iscell.npy", np.array([0.2, 0.6, 1.5]))
    with pytest.raises(CalciumDataError,
                       match=r"iscell\.npy, ROI 2: expected a cell probability in \[0, 1\]"):
        read_suite2p(d, cell_probability=0.5)


def test_tiny_baseline_is_an_error_not_an_overflow(tmp_path):
    arrays = good_arrays(n_rois=1, n_frames=20)
    f = np.full((1, 20), 1e300)
    f[0, :5] = 1e-300  # a baseline of 1e-300: dF/F overflows
    arrays.update({"F.npy": f, "Fneu.npy": np.zeros((1, 20)), "iscell.npy": np.ones((1, 2))})
    d = tmp_path / "p"
    write_corpus_case(d, arrays)
    with pytest.raises(CalciumDataError, match=r"F\.npy, ROI 0, frame 5: dF/F is not finite"):
        read_suite2p(d, window_s=0.5, baseline="percentile")


# ---------------------------------------------------------------- property: any folder

_counter = itertools.count()


@st.composite
def random_folders(draw):
    """A valid small folder, then up to three random corruptions of it."""
    n_rois = draw(st.integers(1, 4))
    n_frames = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    arrays = {
        "F.npy": draw(hnp.arrays(dtype, (n_rois, n_frames),
                                 elements=st.floats(100, 500, width=32))),
        "Fneu.npy": draw(hnp.arrays(dtype, (n_rois, n_frames),
                                    elements=st.floats(0, 50, width=32))),
        "iscell.npy": np.column_stack([
            draw(hnp.arrays(np.float64, n_rois, elements=st.sampled_from([1.0, 1.0, 0.0]))),
            draw(hnp.arrays(np.float64, n_rois,
                            elements=st.one_of(st.just(0.9), st.floats(0, 1))))]),
        "ops.npy": {"fs": draw(st.sampled_from([20.0, 7, np.float32(12.5)]))},
    }
    traces = ["F.npy", "Fneu.npy"]
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["missing", "garbage", "wild values", "shape", "dtype",
                                     "iscell", "ops", "empty"]))
        name = draw(st.sampled_from(list(arrays)))
        if what == "missing":
            arrays[name] = None
        elif what == "garbage":
            arrays[name] = ("raw", draw(st.binary(max_size=40)))
        elif what == "wild values":  # any float32, NaN and infinities included
            t = draw(st.sampled_from(traces))
            arrays[t] = draw(hnp.arrays(np.float32, (n_rois, n_frames),
                                        elements=st.floats(width=32)))
        elif what == "shape":
            arrays[name] = draw(hnp.arrays(np.float32, hnp.array_shapes(
                min_dims=1, max_dims=3, min_side=0, max_side=5)))
        elif what == "dtype":
            arrays[draw(st.sampled_from(traces))] = draw(hnp.arrays(
                draw(st.sampled_from([np.int16, np.bool_, np.complex64, np.float16])),
                (n_rois, n_frames)))
        elif what == "iscell":
            arrays["iscell.npy"] = draw(st.one_of(
                hnp.arrays(np.bool_, n_rois),
                hnp.arrays(np.float32, n_rois, elements=st.floats(0, 1, width=32)),
                hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                           elements=st.sampled_from([0.0, 1.0, 0.5, -1.0, np.nan]))))
        elif what == "ops":
            arrays["ops.npy"] = draw(st.sampled_from([
                {"fs": 0.0}, {"fs": -1.0}, {"fs": float("nan")}, {"fs": float("inf")},
                {"fs": "20"}, {"fs": True}, {"fs": None}, {}, np.arange(3.0),
                ("raw", pickle.dumps([1, 2, 3])), ("raw", pickle.dumps({"fs": 30.0}))]))
        else:
            arrays[draw(st.sampled_from(traces))] = np.zeros(
                draw(st.sampled_from([(0, n_frames), (n_rois, 0)])), np.float32)
    layout = draw(st.sampled_from(["bare", "nested", "two planes"]))
    settings_ = {"cell_probability": draw(st.sampled_from([None, 0.5])),
                 "baseline": draw(st.sampled_from(BASELINES)),
                 "window_s": draw(st.sampled_from([0.1, 1.0, 60.0])),
                 "chunk_cells": draw(st.sampled_from([1, 3, None]))}
    return arrays, layout, settings_


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(random_folders())
def test_random_folders_give_data_or_calcium_data_error(tmp_path, case):
    arrays, layout, kw = case
    root = tmp_path / f"case{next(_counter)}"
    planes = {"bare": [root], "nested": [root / "suite2p" / "plane0"],
              "two planes": [root / "suite2p" / "plane0", root / "suite2p" / "plane1"]}[layout]
    for d in planes:
        write_corpus_case(d, arrays)
    try:
        rec = read_suite2p(root, **kw)
    except CalciumDataError as err:
        assert "\n" not in str(err) and str(err)
        return
    assert np.isfinite(rec.dff).all() and rec.n_cells >= 1 and rec.n_frames >= 1
    summary = summarize_suite2p(root, rng=0, n_shuffles=5, **kw)
    assert summary.session.n_cells == rec.n_cells
    assert len(summary.cells) == rec.n_cells
