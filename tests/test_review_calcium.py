"""Review checks of ketasim.analysis.calcium and ketasim.analysis.suite2p against known
answers and independent numpy computations, and the fixes of what the review found
(the recording clock of summarize_chunks, unchecked settings and frame numbers)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketasim.analysis.calcium import (
    CalciumDataError,
    DffRecording,
    correlated_pair_counts,
    detect_transients,
    functional_connectivity,
    peri_event_average,
    read_dff,
    summarize_session,
    synchronous_events,
)
from ketasim.analysis.suite2p import (
    compute_dff,
    iter_dff_chunks,
    open_suite2p,
    read_suite2p,
    summarize_chunks,
    summarize_suite2p,
)

pytestmark = pytest.mark.usefixtures("private_home")
HSET = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ independent helpers


def ref_coactive(raster: np.ndarray, w: int) -> np.ndarray:
    """Cells with an onset in [t, t + w) for each t (windows cut at the end)."""
    n = raster.shape[1]
    return np.array([int(raster[:, t:t + w].any(axis=1).sum()) for t in range(n)])


def n_runs(mask: np.ndarray) -> int:
    return int(np.sum(np.diff(np.r_[0, mask.astype(int)]) == 1))


def ref_running(fc: np.ndarray, w: int, fn) -> np.ndarray:
    """fn over the w values from t - w//2 (trace mirrored at its ends, d c b a | a b c d)."""
    pad = np.pad(fc, (w, w), mode="symmetric")
    return np.array([fn(pad[w + t - w // 2: w + t - w // 2 + w]) for t in range(fc.size)])


def pulses(n_frames, starts, lengths, amps):
    x = np.zeros(n_frames)
    for s, ln, a in zip(starts, lengths, amps, strict=True):
        x[s:s + ln] = a
    return x


# ---------------------------------------------------------------------------- read_dff


def test_wide_and_shuffled_long_tables_read_alike(rng):
    x = rng.normal(size=(3, 8))
    wide = pd.DataFrame({f"c{i}": row for i, row in enumerate(x)})
    wide.insert(0, "time_s", 5.0 + np.arange(8) / 4.0)
    rw = read_dff(wide)
    np.testing.assert_array_equal(rw.dff, x)
    np.testing.assert_allclose(rw.time_s, 5.0 + np.arange(8) / 4.0)
    assert rw.frame_rate_hz == pytest.approx(4.0) and rw.cell_ids == ("c0", "c1", "c2")
    assert rw.duration_s == pytest.approx(2.0)
    long = wide.melt(id_vars="time_s", var_name="cell", value_name="dff")
    long = long.iloc[rng.permutation(len(long))]
    rl = read_dff(long, 4.0)
    order = [rl.cell_ids.index(c) for c in ("c0", "c1", "c2")]
    np.testing.assert_array_equal(rl.dff[order], x)
    np.testing.assert_allclose(rl.time_s, rw.time_s)


def test_files_round_trip(tmp_path, rng):
    x = rng.normal(size=(2, 6))
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_array_equal(read_dff(tmp_path / "a.npy", 10.0).dff, x)
    df = pd.DataFrame({"frame": np.arange(6), "a": x[0], "b": x[1]})
    df.to_csv(tmp_path / "a.csv", index=False)
    r = read_dff(tmp_path / "a.csv", 10.0)
    np.testing.assert_array_equal(r.dff, x)  # round-trip float precision
    np.testing.assert_allclose(r.time_s, np.arange(6) / 10.0)
    df.to_parquet(tmp_path / "a.parquet")
    np.testing.assert_array_equal(read_dff(tmp_path / "a.parquet", 10.0).dff, x)


@pytest.mark.parametrize("source, rate, pattern", [
    (np.ones((2, 3, 1)), 10.0, r"<array>: expected a 2-D array"),
    (np.ones((0, 3)), 10.0, r"<array>: no data: 0 cells"),
    (np.array([[1.0, np.nan]]), 10.0, r"<array>, cell index 0, frame index 1: expected a finite"),
    (np.array([["a"]]), 10.0, r"numeric array"),
    (np.ones((2, 3)), None, r"no frame rate"),
    (np.ones((2, 3)), 0.0, r"frame_rate_hz must be a finite number > 0"),
    (np.ones((2, 3)), float("nan"), r"frame_rate_hz must be a finite number > 0"),
    (pd.DataFrame({"a": [1.0, np.nan]}), 10.0, r"column 'a', row 2: .*missing value"),
    (pd.DataFrame({"a": [1.0, "x"]}), 10.0, r"column 'a', row 2: expected a finite"),
    (pd.DataFrame({"time_s": [0, 0.1, 0.3, 0.4], "a": 1.0}), None,
     r"column 'time_s', row 3: inconsistent frame spacing"),
    (pd.DataFrame({"time_s": [0, 0.1, 0.1], "a": 1.0}), None, r"time_s to increase"),
    (pd.DataFrame({"time_s": [0, 0.1, 0.2], "a": 1.0}), 20.0, r"disagrees with frame_rate_hz"),
    (pd.DataFrame({"time_s": [0.0], "a": 1.0}), None, r"single frame"),
    (pd.DataFrame({"frame": [0, 1, 3], "a": 1.0}), 10.0, r"row 3: inconsistent frame spacing"),
    (pd.DataFrame({"time_s": [0, 0.1]}), None, r"no cell columns"),
    (pd.DataFrame({"cell": ["x", "x"], "frame": [0, 0], "dff": [1.0, 2.0]}), 10.0,
     r"row 2: duplicate row for cell 'x'"),
    (pd.DataFrame({"cell": ["x", "y", "x"], "frame": [0, 0, 1], "dff": 1.0}), 10.0,
     r"cell 'y' has 1 rows.*no row at frame 1"),
    (pd.DataFrame({"cell": ["x"], "dff": [1.0]}), 10.0, r"missing required column"),
    ([[1.0]], 10.0, r"got list"),
])
def test_read_dff_errors(source, rate, pattern):
    with pytest.raises(CalciumDataError, match=pattern):
        read_dff(source, rate)


def test_read_dff_file_errors(tmp_path):
    with pytest.raises(CalciumDataError, match=r"x\.txt: unknown file suffix"):
        read_dff(tmp_path / "x.txt", 10.0)
    with pytest.raises(CalciumDataError, match=r"no\.csv: file not found"):
        read_dff(tmp_path / "no.csv", 10.0)
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(CalciumDataError, match=r"bad\.npy: cannot read"):
        read_dff(tmp_path / "bad.npy", 10.0)
    (tmp_path / "b.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(CalciumDataError, match=r"b\.csv, column 'b', row 2 \(line 3\)"):
        read_dff(tmp_path / "b.csv", 10.0)


@pytest.mark.parametrize("rate", [True, False, np.bool_(True), -1.0, float("inf"), "x"])
def test_bool_and_bad_frame_rates_rejected(rate):
    with pytest.raises(CalciumDataError, match=r"^<array>: frame_rate_hz must be a finite"):
        read_dff(np.ones((1, 3)), rate)
    df = pd.DataFrame({"time_s": [0.0, 1.0, 2.0], "a": 1.0})
    with pytest.raises(CalciumDataError, match=r"^<DataFrame>: frame_rate_hz must be"):
        read_dff(df, rate)


@pytest.mark.parametrize("rtol", [float("nan"), -0.1, True, "0.05"])
def test_bad_spacing_rtol_rejected(rtol):
    with pytest.raises(ValueError, match="spacing_rtol"):
        read_dff(np.ones((1, 3)), 10.0, spacing_rtol=rtol)


def test_long_table_contradicting_frames_rejected(tmp_path):
    df = pd.DataFrame({"cell": ["x", "x", "y", "y"], "time_s": [0, 0.1, 0, 0.1],
                       "frame": [0, 1, 0, 5], "dff": [1.0, 2, 3, 4]})
    with pytest.raises(CalciumDataError, match=r"^<DataFrame>, column 'frame', row 4: "
                       r"frame 5 of cell 'y' at time_s 0\.1 disagrees with frame 1 of cell 'x'"):
        read_dff(df, 10.0)
    # shuffled rows, the second cell off by one everywhere: the first offending row
    df = pd.DataFrame({"cell": ["z", "x", "z", "x"], "time_s": [0.1, 0.1, 0.0, 0.0],
                       "frame": [2, 1, 1, 0], "dff": [1.0, 2, 3, 4]})
    df.to_csv(tmp_path / "long.csv", index=False)
    with pytest.raises(CalciumDataError, match=r"^long\.csv, column 'frame', row 2 \(line 3\): "
                       r"frame 1 of cell 'x' at time_s 0\.1 disagrees with frame 2 of cell 'z'"):
        read_dff(tmp_path / "long.csv")
    # agreeing frames (any row order) read as before, and frames may start anywhere
    ok = pd.DataFrame({"cell": ["y", "x", "y", "x"], "time_s": [0.1, 0, 0, 0.1],
                       "frame": [8, 7, 7, 8], "dff": [1.0, 2, 3, 4]})
    rec = read_dff(ok, 10.0)
    assert rec.cell_ids == ("y", "x")
    np.testing.assert_array_equal(rec.dff, [[3.0, 1.0], [2.0, 4.0]])


# -------------------------------------------------------------------- detect_transients


@HSET
@given(st.data())
def test_planted_pulses_recovered_exactly(data):
    rate = data.draw(st.sampled_from([5.0, 10.0, 15.0, 30.0]))
    min_dur = max(1, int(np.ceil(0.2 * rate - 1e-9)))
    gap = int(np.ceil(0.5 * rate)) + 2  # start-to-start beyond the separation rule
    k = data.draw(st.integers(0, 5))
    lengths = data.draw(st.lists(st.integers(min_dur, min_dur + 4), min_size=k, max_size=k))
    amps = data.draw(st.lists(st.floats(0.5, 5.0), min_size=k, max_size=k))
    starts, t = [], 3
    for ln in lengths:
        starts.append(t)
        t += max(ln + 1, gap) + data.draw(st.integers(0, 5))
    n = max(t + 5, 4 * (sum(lengths) + 1))  # pulses < half the frames: baseline 0
    x = pulses(n, starts, lengths, amps)
    tr = detect_transients(x, rate, noise_sd=0.1)
    np.testing.assert_array_equal(tr.onset_frames[0], starts)
    np.testing.assert_array_equal(tr.end_frames[0], np.add(starts, lengths))
    np.testing.assert_array_equal(tr.peak_frames[0], starts)
    np.testing.assert_allclose(tr.amplitudes[0], amps)
    assert tr.baseline[0] == 0.0
    np.testing.assert_allclose(tr.rate_per_min, k / (n / rate / 60.0))


def test_baseline_and_mad_noise_are_median_and_scaled_mad(rng):
    x = rng.normal(0.3, 0.2, (3, 500))
    tr = detect_transients(x, 10.0)
    med = np.median(x, axis=1)
    np.testing.assert_allclose(tr.baseline, med)
    np.testing.assert_allclose(tr.noise_sd, 1.4826 * np.median(np.abs(x - med[:, None]), axis=1))


@pytest.mark.parametrize("rate, short, ok", [(10.0, 1, 2), (30.0, 5, 6), (15.0, 2, 3),
                                             (4.0, None, 1)])
def test_minimum_duration_in_frames(rate, short, ok):
    # 0.2 s at `rate` is ceil(0.2 * rate) frames
    n = 200
    if short is not None:
        x = pulses(n, [50], [short], [2.0])
        assert detect_transients(x, rate, noise_sd=0.1).counts[0] == 0
    x = pulses(n, [50], [ok], [2.0])
    assert detect_transients(x, rate, noise_sd=0.1).counts[0] == 1


def test_hysteresis_onset_end_and_peak():
    # rise through offset, above onset threshold, a peak, then a tail above offset
    x = np.zeros(100)
    x[20:40] = [0.06, 0.1, 0.4, 0.5, 0.9, 0.5, 0.35, 0.2, 0.1, 0.06] + [0.0] * 10
    tr = detect_transients(x, 10.0, noise_sd=0.1)  # onset z >= 3, offset z >= 0.5
    assert list(tr.onset_frames[0]) == [22]  # first frame of the run >= 0.3
    assert list(tr.peak_frames[0]) == [24]
    assert list(tr.end_frames[0]) == [30]  # one past the last frame >= 0.05
    assert tr.amplitudes[0][0] == pytest.approx(0.9)


def test_separation_rule_merges_close_onsets():
    rate = 10.0
    # onsets 4 frames (0.4 s) apart: one transient, end and peak of the pair
    x = pulses(200, [50, 54], [2, 3], [1.0, 2.0])
    tr = detect_transients(x, rate, noise_sd=0.1)
    assert list(tr.onset_frames[0]) == [50] and list(tr.end_frames[0]) == [57]
    assert list(tr.peak_frames[0]) == [54] and tr.amplitudes[0][0] == pytest.approx(2.0)
    # 5 frames = 0.5 s: not less than min_separation_s, two transients
    x = pulses(200, [50, 55], [2, 3], [1.0, 2.0])
    assert list(detect_transients(x, rate, noise_sd=0.1).onset_frames[0]) == [50, 55]


def test_silent_constant_and_tiny_cells():
    x = np.vstack([np.zeros(50), np.full(50, 3.0), pulses(50, [10], [5], [1.0])])
    tr = detect_transients(x, 10.0)
    assert list(tr.counts) == [0, 0, 0]  # MAD 0 everywhere: no detection
    assert np.isnan(tr.noise_sd).all()
    assert tr.table().empty
    tr = detect_transients(x, 10.0, noise_sd=[0.1, 0.1, 0.1])
    assert list(tr.counts) == [0, 0, 1]
    one = detect_transients(np.array([1.0]), 10.0)
    assert one.counts[0] == 0 and one.n_frames == 1


def test_transient_table_and_clock():
    x = pulses(100, [30], [3], [1.5])
    rec = DffRecording(x[None], 10.0, 7.0 + np.arange(100) / 10.0, ("a",))
    tab = detect_transients(rec, noise_sd=0.1).table()
    assert tab.onset_s.tolist() == [pytest.approx(10.0)]
    assert tab.amplitude_sd.tolist() == [pytest.approx(15.0)]
    assert detect_transients(rec, noise_sd=0.1).onset_raster()[0].nonzero()[0].tolist() == [30]


@pytest.mark.parametrize("kw, pattern", [
    ({"threshold_sd": 1.0, "offset_sd": 2.0}, "offset_sd"),
    ({"min_duration_s": -1.0}, "min_duration_s"),
    ({"noise_sd": 0.0}, "noise_sd"),
    ({"noise_sd": np.nan}, "noise_sd"),
])
def test_detect_transients_bad_settings(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        detect_transients(np.zeros((2, 20)), 10.0, **kw)
    with pytest.raises(ValueError, match="disagrees"):
        detect_transients(read_dff(np.zeros((1, 5)), 10.0), 20.0)


@pytest.mark.parametrize("noise_sd", [[0.1, 0.2], [[0.1, 0.2, 0.3]], np.full((3, 1), 0.1),
                                      [0.1, -0.2, 0.3], [0.1, np.inf, 0.3], True, "x",
                                      [0.1, "a", 0.3], None])
def test_noise_sd_wrong_length_named(noise_sd):
    if noise_sd is None:  # the MAD estimate: no error
        detect_transients(np.zeros((3, 20)), 10.0, noise_sd=noise_sd)
        return
    with pytest.raises(ValueError, match="noise_sd"):
        detect_transients(np.zeros((3, 20)), 10.0, noise_sd=noise_sd)


def test_noise_sd_per_cell_and_scalar_forms_agree():
    x = pulses(100, [30], [4], [1.0])
    x = np.vstack([x, 2 * x, 3 * x])
    a = detect_transients(x, 10.0, noise_sd=np.array([0.1, 0.2, 0.3]))
    b = detect_transients(x, 10.0, noise_sd=(0.1, 0.2, 0.3))
    np.testing.assert_array_equal(a.noise_sd, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(detect_transients(x, 10.0, noise_sd=np.float32(0.1)).noise_sd,
                                  np.float32(0.1))


@pytest.mark.parametrize("kw, name", [
    ({"min_duration_s": float("nan")}, "min_duration_s"),
    ({"min_duration_s": float("inf")}, "min_duration_s"),
    ({"min_duration_s": True}, "min_duration_s"),
    ({"min_separation_s": float("nan")}, "min_separation_s"),
    ({"min_separation_s": -0.5}, "min_separation_s"),
    ({"threshold_sd": float("nan")}, "threshold_sd"),
    ({"threshold_sd": 0.0, "offset_sd": 0.0}, "threshold_sd"),
    ({"threshold_sd": True}, "threshold_sd"),
    ({"offset_sd": float("nan")}, "offset_sd"),
    ({"offset_sd": -1.0}, "offset_sd"),
])
def test_nan_min_duration_named(kw, name):
    with pytest.raises(ValueError, match=name):
        detect_transients(np.zeros((1, 20)), 10.0, **kw)
    with pytest.raises(ValueError, match=name):
        summarize_session(np.zeros((2, 20)), 10.0, rng=1, n_shuffles=5, **kw)


def test_zero_durations_still_allowed():
    x = pulses(100, [30, 33], [1, 1], [1.0, 1.0])
    tr = detect_transients(x, 10.0, noise_sd=0.1, min_duration_s=0, min_separation_s=0)
    assert tr.onset_frames[0].tolist() == [30, 33]


# ------------------------------------------------------------------- synchronous_events


@HSET
@given(st.data())
def test_synchrony_matches_brute_force(data):
    nc = data.draw(st.integers(1, 5))
    nf = data.draw(st.integers(5, 60))
    seed = data.draw(st.integers(0, 1000))
    p_on = data.draw(st.sampled_from([0.0, 0.05, 0.2]))
    raster = np.random.default_rng(seed).random((nc, nf)) < p_on
    window_s = data.draw(st.sampled_from([0.1, 0.3, 0.5, 10.0]))
    pct = data.draw(st.sampled_from([50.0, 90.0, 99.0]))
    k = 15
    res = synchronous_events(raster, 10.0, rng=seed, n_shuffles=k, window_s=window_s,
                             percentile=pct)
    w = max(1, round(window_s * 10.0))
    obs = ref_coactive(raster, w)
    np.testing.assert_array_equal(res.coactive_cells, obs)
    shifts = np.random.default_rng(seed).integers(0, nf, size=(k, nc))
    null = np.array([ref_coactive(np.array([np.roll(raster[c], s[c]) for c in range(nc)]), w)
                     for s in shifts])
    thr = float(np.percentile(null.ravel(), pct, method="inverted_cdf"))
    assert res.threshold_cells == thr
    floor = max(thr + 1, 2)
    sync = obs >= floor
    assert res.n_events == n_runs(sync)
    null_events = np.array([n_runs(c >= floor) for c in null])
    dur_min = nf / 10.0 / 60.0
    np.testing.assert_allclose(res.shuffle_event_rate_per_min, null_events / dur_min)
    assert res.p == pytest.approx((1 + np.sum(null_events >= res.n_events)) / (1 + k))
    assert res.event_rate_per_min == pytest.approx(res.n_events / dur_min)
    for f, c in zip(res.event_frames, res.cells_per_event, strict=True):
        assert sync[f] and c == obs[f]


def test_planted_ensemble_events_found(rng):
    nc, nf, rate = 8, 3000, 10.0
    raster = rng.random((nc, nf)) < 0.002
    planted = [400, 1200, 2000, 2700]
    for f in planted:
        raster[:, f - 8:f + 8] = False
        raster[:, f] = True
    res = synchronous_events(raster, rate, rng=rng, n_shuffles=100)
    # the planted ensembles are events with every cell; chance pairs may add small ones
    full = res.event_frames[res.cells_per_event == nc]
    assert len(full) == 4
    assert all(f - 5 < e <= f for e, f in zip(full, planted, strict=True))
    assert (res.cells_per_event[res.cells_per_event < nc] <= 3).all()
    # at least 5 cells per event: only the ensembles, and no shuffle reaches them
    res = synchronous_events(raster, rate, rng=rng, n_shuffles=100, min_cells=5)
    assert res.n_events == 4 and res.p == pytest.approx(1 / 101)
    np.testing.assert_array_equal(res.cells_per_event, nc)
    assert res.mean_fraction_per_event == 1.0


def test_synchrony_transients_input_equals_raster_and_is_reproducible(rng):
    x = rng.normal(0, 0.1, (4, 600))
    for c in range(4):
        x[c, 100 * (c + 1):100 * (c + 1) + 5] += 2.0
    x[:, 550:555] += 2.0
    tr = detect_transients(x, 10.0)
    a = synchronous_events(tr, rng=3, n_shuffles=40)
    b = synchronous_events(tr.onset_raster(), 10.0, rng=3, n_shuffles=40)
    c = synchronous_events(tr, rng=np.random.default_rng(3), n_shuffles=40)
    for r in (b, c):
        np.testing.assert_array_equal(a.coactive_cells, r.coactive_cells)
        np.testing.assert_array_equal(a.shuffle_event_rate_per_min, r.shuffle_event_rate_per_min)
        assert a.p == r.p and a.threshold_cells == r.threshold_cells


def test_no_onsets_and_single_cell():
    res = synchronous_events(np.zeros((3, 50), bool), 10.0, rng=1, n_shuffles=10)
    assert res.n_events == 0 and res.p == 1.0 and np.isnan(res.mean_cells_per_event)
    res = synchronous_events(np.ones((1, 50), bool), 10.0, rng=1, n_shuffles=10)
    assert res.n_events == 0  # one cell is never a synchronous event


@pytest.mark.parametrize("kw, exc, pattern", [
    ({"n_shuffles": 0}, ValueError, "n_shuffles"),
    ({"percentile": 100.0}, ValueError, "percentile"),
    ({"rng": 1.5}, TypeError, "rng"),
    ({"rng": True}, TypeError, "rng"),
])
def test_synchrony_bad_settings(kw, exc, pattern):
    args = {"rng": 1, "n_shuffles": 5}
    args.update(kw)
    with pytest.raises(exc, match=pattern):
        synchronous_events(np.zeros((2, 10), bool), 10.0, **args)
    with pytest.raises(ValueError, match="bool onset raster"):
        synchronous_events(np.zeros((2, 10)), 10.0, rng=1)
    with pytest.raises(ValueError, match="frame_rate_hz"):
        synchronous_events(np.zeros((2, 10), bool), None, rng=1)


@pytest.mark.parametrize("kw, name", [
    ({"window_s": -1.0}, "window_s"),
    ({"window_s": 0.0}, "window_s"),
    ({"window_s": float("nan")}, "window_s"),
    ({"window_s": float("inf")}, "window_s"),
    ({"window_s": True}, "window_s"),
    ({"n_shuffles": float("nan")}, "n_shuffles"),
    ({"n_shuffles": 2.5}, "n_shuffles"),
    ({"n_shuffles": True}, "n_shuffles"),
    ({"percentile": float("nan")}, "percentile"),
    ({"percentile": True}, "percentile"),
    ({"min_cells": 0}, "min_cells"),
    ({"min_cells": float("nan")}, "min_cells"),
    ({"min_cells": True}, "min_cells"),
])
def test_negative_sync_window_rejected(kw, name):
    args = {"rng": 1, "n_shuffles": 5}
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        synchronous_events(np.zeros((2, 10), bool), 10.0, **args)


@pytest.mark.parametrize("rate", [True, float("nan"), -10.0, 0.0, "10"])
def test_sync_raster_frame_rate_checked(rate):
    with pytest.raises(ValueError, match="frame_rate_hz"):
        synchronous_events(np.zeros((2, 10), bool), rate, rng=1, n_shuffles=5)


def test_sync_frame_rate_must_match_transients():
    tr = detect_transients(np.zeros((2, 20)), 10.0)
    with pytest.raises(ValueError, match="disagrees"):
        synchronous_events(tr, 20.0, rng=1, n_shuffles=5)
    assert synchronous_events(tr, 10.0, rng=1, n_shuffles=5).frame_rate_hz == 10.0
    assert synchronous_events(np.zeros((2, 10), bool), 10, rng=1, n_shuffles=5.0).n_shuffles == 5


# -------------------------------------------------------------- functional_connectivity


@HSET
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(3, 40))
def test_r_and_exact_p_match_corrcoef_and_brute_force(seed, nc, nf):
    g = np.random.default_rng(seed)
    x = g.normal(size=(nc, nf))
    x[1] = 0.6 * x[0] + 0.4 * x[1]
    res = functional_connectivity(x, 10.0)
    np.testing.assert_allclose(res.r, np.corrcoef(x), atol=1e-10)
    z = x - x.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    for i in range(nc):
        for j in range(i + 1, nc):
            xc = np.array([np.roll(z[i], -d) @ z[j] for d in range(nf)])
            assert res.p[i, j] == pytest.approx(np.mean(xc >= z[i] @ z[j] - 1e-9))
            assert res.p[j, i] == res.p[i, j]
    iu = np.triu_indices(nc, 1)
    assert res.n_pairs == len(iu[0])
    assert res.mean_r == pytest.approx(np.corrcoef(x)[iu].mean())
    assert res.fraction_significant == pytest.approx(np.mean(res.p[iu] < 0.05))
    assert abs(res.null_mean_r) < 1e-9


def test_correlated_anticorrelated_and_constant_cells(rng):
    n = 200
    a = rng.normal(size=n)
    x = np.vstack([a, 2 * a + 3, -a, np.full(n, 5.0)])
    res = functional_connectivity(x, 10.0)
    assert res.r[0, 1] == pytest.approx(1.0) and res.r[0, 2] == pytest.approx(-1.0)
    assert res.p[0, 1] == pytest.approx(1 / n)  # only the zero shift reaches r = 1
    assert res.p[0, 2] == 1.0  # one-sided: every shift is >= -1
    assert res.significant[0, 1] and not res.significant[0, 2]
    assert np.isnan(res.r[3]).all() and np.isnan(res.p[3]).all()
    assert res.n_pairs == 3 and not res.significant[3].any()
    two = functional_connectivity(x, 10.0, alternative="two-sided")
    assert two.p[0, 2] == pytest.approx(1 / n)
    sampled = functional_connectivity(x, 10.0, rng=5, n_shuffles=99)
    assert sampled.n_shuffles == 99
    assert 1 / 100 <= sampled.p[0, 1] <= 5 / 100  # a few draws may hit the zero shift
    assert sampled.p[0, 2] == 1.0


def test_all_constant_and_tiny_inputs():
    res = functional_connectivity(np.ones((3, 10)), 10.0)
    assert res.n_pairs == 0 and np.isnan(res.mean_r) and np.isnan(res.fraction_significant)
    res = functional_connectivity(np.array([[0.0, 1.0], [0.0, 2.0]]), 10.0)
    assert res.r[0, 1] == pytest.approx(1.0) and res.p[0, 1] == 0.5


def test_pair_counts_by_blocks_equal_full_test(rng):
    x = rng.normal(size=(7, 50))
    x[2] = x[0] + 0.1 * x[2]
    x[5] = 4.0  # constant: left out
    res = functional_connectivity(x, 10.0)
    z = x - x.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.where(nrm > 0, z / np.where(nrm > 0, nrm, 1), 0.0)
    for block in (1, 2, 3, 256):
        pairs, sig = correlated_pair_counts(z, block=block)
        assert pairs == res.n_pairs
        assert sig / pairs == pytest.approx(res.fraction_significant)


def test_connectivity_bad_settings():
    x = np.random.default_rng(0).normal(size=(3, 20))
    with pytest.raises(ValueError, match="at least 2 cells"):
        functional_connectivity(x[:1], 10.0)
    with pytest.raises(ValueError, match="alternative"):
        functional_connectivity(x, 10.0, alternative="less")
    with pytest.raises(ValueError, match="n_shuffles"):
        functional_connectivity(x, 10.0, rng=1, n_shuffles=0)
    with pytest.raises(TypeError, match="rng"):
        functional_connectivity(x, 10.0, n_shuffles=10)


@pytest.mark.parametrize("alpha", [5, 0.0, 1.0, -0.1, float("nan"), True, "0.05"])
def test_alpha_out_of_range_rejected(alpha):
    x = np.random.default_rng(0).normal(size=(3, 20))
    with pytest.raises(ValueError, match="alpha"):
        functional_connectivity(x, 10.0, alpha=alpha)
    z = x - x.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    with pytest.raises(ValueError, match="alpha"):
        correlated_pair_counts(z, alpha=alpha)
    # a single cell runs no correlation, but its setting is checked all the same
    with pytest.raises(ValueError, match="alpha"):
        summarize_session(x[:1], 10.0, rng=1, n_shuffles=5, alpha=alpha)


@pytest.mark.parametrize("kw, name", [
    ({"n_shuffles": float("nan")}, "n_shuffles"), ({"n_shuffles": 2.5}, "n_shuffles"),
    ({"n_shuffles": True}, "n_shuffles"), ({"n_shuffles": -3}, "n_shuffles"),
])
def test_connectivity_shuffle_count_checked(kw, name):
    x = np.random.default_rng(0).normal(size=(3, 20))
    with pytest.raises(ValueError, match=name):
        functional_connectivity(x, 10.0, rng=1, **kw)
    with pytest.raises(ValueError, match="n_correlation_shuffles"):
        summarize_session(x[:1], 10.0, rng=1, n_shuffles=5, n_correlation_shuffles=kw[name])


@pytest.mark.parametrize("block", [0, -1, 2.5, True, float("nan")])
def test_pair_count_block_checked(block):
    with pytest.raises(ValueError, match="block"):
        correlated_pair_counts(np.eye(3), block=block)


@pytest.mark.parametrize("rate", [float("nan"), True, -1.0])
def test_recording_with_bad_frame_rate_argument(rate):
    rec = read_dff(np.random.default_rng(0).normal(size=(3, 20)), 10.0)
    with pytest.raises(ValueError, match="frame_rate_hz"):
        functional_connectivity(rec, rate)
    with pytest.raises(ValueError, match="frame_rate_hz"):
        detect_transients(rec, rate)


# ------------------------------------------------------------------- peri_event_average


def ramp_trace(n=600, rate=10.0, events=(10.0, 20.0, 30.0, 40.0)):
    x = np.zeros(n)
    for e in events:
        k = round(e * rate)
        x[k - 10:k + 1] = np.linspace(0, 1, 11)  # rises over the 1 s before the event
        x[k + 1:k + 11] = np.linspace(1, 0, 10)
    return x


def test_peri_event_known_rise_and_peak():
    x = ramp_trace()
    res = peri_event_average(x, 10.0, event_times_s=[10.0, 20.0, 30.0, 40.0, 0.5, 59.9])
    assert res.n_events == 4 and list(res.dropped_times_s) == [0.5, 59.9]
    assert res.lags_s.size == 51 and res.lags_s[0] == pytest.approx(-3.0)
    assert res.peak_s == pytest.approx(0.0) and res.rise_s == pytest.approx(-0.5)
    assert res.baseline == 0.0 and res.baseline_sd == 0.0
    np.testing.assert_array_equal(res.sem, 0.0)
    # a clock starting at 100 s, and a matrix averaged over cells
    rec = DffRecording(np.vstack([x, 3 * x]), 10.0, 100 + np.arange(x.size) / 10.0, ("a", "b"))
    r2 = peri_event_average(rec, event_times_s=[110.0, 120.0])
    assert r2.n_events == 2 and r2.peak_s == pytest.approx(0.0)
    assert r2.mean.max() == pytest.approx(2.0)


def test_peri_event_mean_sem_match_direct_loop(rng):
    rate = 7.0
    x = rng.normal(size=500)
    ev = np.array([10.0, 23.3, 40.1, 60.0])
    res = peri_event_average(x, rate, event_times_s=ev, window_s=(-2.0, 1.5),
                             subtract_baseline=True, baseline_s=(-2.0, -1.0))
    lag = np.arange(-14, 11)
    rows = []
    for e in ev:
        c = int(np.round(e * rate))
        seg = x[c + lag]
        rows.append(seg - seg[(lag / rate >= -2.0) & (lag / rate < -1.0)].mean())
    rows = np.array(rows)
    np.testing.assert_allclose(res.per_event, rows)
    np.testing.assert_allclose(res.mean, rows.mean(axis=0))
    np.testing.assert_allclose(res.sem, rows.std(axis=0, ddof=1) / 2.0)
    assert res.peak_s == pytest.approx(lag[np.argmax(rows.mean(axis=0))] / rate)


def test_peri_event_edges_and_errors():
    x = ramp_trace()
    r = peri_event_average(x, 10.0, event_times_s=[3.0, 57.9, 58.0])
    assert list(r.event_times_s) == [3.0, 57.9] and list(r.dropped_times_s) == [58.0]
    none = peri_event_average(x, 10.0, event_times_s=[])
    assert none.n_events == 0 and np.isnan(none.mean).all() and np.isnan(none.rise_s)
    one = peri_event_average(x, 10.0, event_times_s=[10.0])
    assert np.isnan(one.sem).all() and one.rise_s == pytest.approx(-0.5)
    for kw, pat in [({"window_s": (2, -3)}, "window_s"), ({"baseline_s": (5, 6)}, "baseline"),
                    ({"event_times_s": [np.nan]}, "event_times_s"),
                    ({"window_s": (-np.inf, 2.0)}, "window_s"),
                    ({"window_s": (np.nan, 2.0)}, "window_s"),
                    ({"window_s": (-3.0, 2.0, 4.0)}, "window_s"),
                    ({"window_s": (False, True)}, "window_s"),
                    ({"window_s": 3.0}, "window_s"),
                    ({"baseline_s": (np.nan, 0.0)}, "baseline_s"),
                    ({"baseline_s": (-np.inf, 0.0)}, "baseline_s"),
                    ({"baseline_s": (0.0, -1.0)}, "baseline_s"),
                    ({"event_times_s": [True]}, "event_times_s"),
                    ({"event_times_s": ["10"]}, "event_times_s"),
                    ({"event_times_s": [[10.0]]}, "event_times_s"),
                    ({"time_s0": np.nan}, "time_s0"),
                    ({"time_s0": True}, "time_s0")]:
        args = {"event_times_s": [10.0]}
        args.update(kw)
        with pytest.raises(ValueError, match=pat):
            peri_event_average(x, 10.0, **args)


# ----------------------------------------------------------------- summarize_session


def test_summarize_session_consistent_with_parts(rng):
    x = rng.normal(0, 0.1, (5, 1200))
    for c in range(5):
        for o in rng.choice(np.arange(20, 1150, 40), 4, replace=False):
            x[c, o:o + 6] += rng.uniform(0.8, 1.5)
    x[3] = 0.0  # a silent cell
    s = summarize_session(x, 10.0, rng=11, n_shuffles=50, event_times_s=[30.0, 60.0])
    tr = detect_transients(x, 10.0)
    np.testing.assert_array_equal(s.transients.counts, tr.counts)
    assert s.transient_rate_per_min == pytest.approx((tr.counts / 2.0).mean())
    assert s.active_cell_fraction == pytest.approx(0.8)
    assert s.transient_amplitude_dff == pytest.approx(np.concatenate(tr.amplitudes).mean())
    conn = functional_connectivity(x, 10.0)
    assert s.mean_pairwise_r == pytest.approx(conn.mean_r)
    assert s.correlated_pair_fraction == pytest.approx(conn.fraction_significant)
    assert s.sync_threshold_fraction == pytest.approx(s.synchrony.threshold_cells / 5)
    assert s.peri_event_n == 2
    one = summarize_session(x[:1], 10.0, rng=1, n_shuffles=10)
    assert one.connectivity is None and np.isnan(one.mean_pairwise_r)


# ------------------------------------------------------------------------------ suite2p


def write_plane(d: Path, f, fneu, iscell, ops) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "F.npy", f)
    np.save(d / "Fneu.npy", fneu)
    np.save(d / "iscell.npy", iscell)
    np.save(d / "ops.npy", ops, allow_pickle=True)
    return d


def raw(rng, n_rois=4, n_frames=300):
    f = (200 + 20 * rng.random((n_rois, 1)) + rng.normal(0, 2, (n_rois, n_frames)))
    fneu = 50 + rng.normal(0, 2, (n_rois, n_frames))
    return f, fneu


@HSET
@given(st.integers(0, 10_000), st.integers(3, 80), st.sampled_from([3.0, 7.0, 10.0]),
       st.floats(0.1, 12.0), st.sampled_from([0.0, 8.0, 37.5, 100.0]))
def test_compute_dff_matches_independent_baselines(seed, nf, fs, window_s, pct):
    g = np.random.default_rng(seed)
    f, fneu = raw(g, 2, nf)
    fc = f - 0.7 * fneu
    w = max(1, min(int(window_s * fs), nf))
    refs = {
        "percentile": np.array([ref_running(r, w, lambda v: np.sort(v)[
            min(int(np.floor(w * pct / 100)), w - 1)]) for r in fc]),
        "constant_percentile": np.percentile(fc, pct, axis=1, keepdims=True) + 0 * fc,
    }
    lo = np.array([ref_running(r, w, np.min) for r in fc])
    refs["maximin"] = np.array([ref_running(r, w, np.max) for r in lo])
    for baseline, f0 in refs.items():
        d = compute_dff(f, fneu, fs, baseline=baseline, percentile=pct, window_s=window_s,
                        sigma_frames=0.0)
        np.testing.assert_allclose(d, (fc - f0) / f0, rtol=1e-12, atol=1e-12)


def test_neuropil_corrected_dff_known_answer(rng):
    truth = np.zeros((2, 101))
    truth[:, 40:45] = [0.5, 1.0, 0.8, 0.4, 0.2]
    fneu = 80 + rng.normal(0, 5, (2, 101))
    f = np.array([[150.0], [300.0]]) * (1 + truth) + 0.7 * fneu
    d = compute_dff(f, fneu, 10.0, baseline="constant_percentile", percentile=50)
    np.testing.assert_allclose(d, truth, atol=1e-12)
    d = compute_dff(f - 0.3 * fneu, fneu, 10.0, neuropil_coefficient=0.4,
                    baseline="constant_percentile", percentile=50)
    np.testing.assert_allclose(d, truth, atol=1e-12)


def test_compute_dff_errors(rng):
    f, fneu = raw(rng, 2, 50)
    with pytest.raises(ValueError, match="one shape"):
        compute_dff(f, fneu[:1], 10.0)
    f2 = f.copy()
    f2[1, 7] = np.nan
    with pytest.raises(CalciumDataError, match=r"<array>, ROI 1, frame 7: expected a finite"):
        compute_dff(f2, fneu, 10.0)
    with pytest.raises(CalciumDataError, match=r"ROI 0, frame 0: the percentile baseline F0"):
        compute_dff(fneu * 0.5, fneu, 10.0)  # F - 0.7 Fneu < 0
    with pytest.raises(CalciumDataError, match="too close to 0"):
        compute_dff(np.array([[1e-310, 10, 10, 10, 10]]), np.zeros((1, 5)), 10.0)
    for kw in ({"neuropil_coefficient": -1}, {"baseline": "x"}, {"percentile": 101},
               {"window_s": 0}, {"sigma_frames": -1}, {"frame_rate_hz": 0}):
        args = {"frame_rate_hz": 10.0}
        args.update(kw)
        with pytest.raises(ValueError):
            compute_dff(f, fneu, **args)


@pytest.fixture
def folder(tmp_path):
    g = np.random.default_rng(4)
    nf, fs = 600, 10.0
    f, fneu = raw(g, 5, nf)
    truth = np.zeros((5, nf))
    for c in range(5):
        for o in (100 + 20 * c, 400):
            truth[c, o:o + 8] = np.linspace(1.5, 0.3, 8)
    f = (f - 0.7 * fneu) * (1 + truth) + 0.7 * fneu
    f[1, 9] = np.nan  # ROI 1 is not a cell: never read
    iscell = np.array([[1, 0.9], [0, 0.2], [1, 0.7], [1, 0.95], [1, 0.6]])
    write_plane(tmp_path / "suite2p" / "plane0", f.astype(np.float32),
                fneu.astype(np.float32), iscell, {"fs": fs, "neucoeff": 0.7})
    return tmp_path, f.astype(np.float32), fneu.astype(np.float32)


def test_read_suite2p_selects_cells_and_equals_compute_dff(folder):
    root, f, fneu = folder
    rec = read_suite2p(root, window_s=20.0)
    assert rec.cell_ids == ("0", "2", "3", "4") and rec.frame_rate_hz == 10.0
    np.testing.assert_allclose(rec.time_s, np.arange(600) / 10.0)
    np.testing.assert_array_equal(
        rec.dff, compute_dff(f[[0, 2, 3, 4]], fneu[[0, 2, 3, 4]], 10.0, window_s=20.0))
    for k in (1, 3):
        np.testing.assert_array_equal(read_suite2p(root, window_s=20.0, chunk_cells=k).dff,
                                      rec.dff)
    chunks = list(iter_dff_chunks(root / "suite2p", window_s=20.0, chunk_cells=3))
    assert [c.cell_ids for c in chunks] == [("0", "2", "3"), ("4",)]
    assert open_suite2p(root, cell_probability=0.7).cell_ids == ("0", "2", "3")
    assert open_suite2p(root / "suite2p" / "plane0").planes[0].label == "plane0"


def test_streamed_summary_equals_in_memory_summary(folder):
    root, _, _ = folder
    rec = read_suite2p(root)
    ev = [20.0, 40.0]
    s_mem = summarize_session(rec, rng=9, n_shuffles=60, event_times_s=ev)
    s2p = summarize_suite2p(root, rng=9, n_shuffles=60, event_times_s=ev, chunk_cells=2)
    a, b = s_mem.as_dict(), s2p.as_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12, nan_ok=True), k
    cells = s2p.cells
    assert cells.roi.tolist() == [0, 2, 3, 4] and cells.plane.tolist() == ["plane0"] * 4
    np.testing.assert_array_equal(cells.n_transients, s_mem.transients.counts)
    np.testing.assert_allclose(cells.median_dff, np.median(rec.dff, axis=1))


def test_multiplane_ids_and_frame_cut(tmp_path, rng):
    f, fneu = raw(rng, 2, 100)
    s2p = tmp_path / "suite2p"
    write_plane(s2p / "plane0", f, fneu, np.array([[1, .9], [1, .9]]), {"fs": 10.0})
    write_plane(s2p / "plane1", f[:, :-1], fneu[:, :-1], np.array([[0, .9], [1, .9]]),
                {"fs": 10.0})
    info = open_suite2p(tmp_path)
    assert info.cell_ids == ("plane0/0", "plane0/1", "plane1/1") and info.n_frames == 99
    rec = read_suite2p(tmp_path)
    np.testing.assert_array_equal(rec.dff[2], compute_dff(f[1:2, :-1], fneu[1:2, :-1], 10.0)[0])
    assert read_suite2p(s2p, plane=1).cell_ids == ("1",)
    cells = summarize_suite2p(tmp_path, rng=1, n_shuffles=5).cells
    assert cells.plane.tolist() == ["plane0", "plane0", "plane1"]
    write_plane(s2p / "plane1", f[:, :-2], fneu[:, :-2], np.array([[1, .9], [1, .9]]),
                {"fs": 10.0})
    with pytest.raises(CalciumDataError, match=r"plane0/F\.npy: 100 frames.*has 98"):
        open_suite2p(tmp_path)
    write_plane(s2p / "plane1", f, fneu, np.array([[1, .9], [1, .9]]), {"fs": 20.0})
    with pytest.raises(CalciumDataError, match=r"plane1/ops\.npy: frame rate fs = 20"):
        open_suite2p(tmp_path)
    with pytest.raises(CalciumDataError, match="no folder plane3"):
        open_suite2p(tmp_path, plane=3)


_F, _FN = raw(np.random.default_rng(1), 3, 40)
_ISC = np.array([[1, .9], [0, .1], [1, .8]])


@pytest.mark.parametrize("edit, file, pattern", [
    ({"f": _F.astype(np.int32)}, "F.npy", "float32 or float64"),
    ({"f": _F[0]}, "F.npy", "2-D array"),
    ({"f": _F[:, :0], "fneu": _FN[:, :0]}, "F.npy", "no frames"),
    ({"fneu": _FN[:2]}, "Fneu.npy", r"shape \(2, 40\) differs"),
    ({"iscell": _ISC[:2]}, "iscell.npy", "has 2 rows, but F.npy has 3"),
    ({"iscell": np.array([[1, .9], [2, .1], [1, .8]])}, "iscell.npy", "ROI 1: expected an is-cell"),
    ({"iscell": np.array([.9, .2, .6])}, "iscell.npy", "needs cell_probability"),
    ({"iscell": np.zeros((3, 2))}, "iscell.npy", "no ROI selected"),
    ({"iscell": np.zeros((3, 3))}, "iscell.npy", "expected shape"),
    ({"ops": {"fs": 0}}, "ops.npy", r"ops\['fs'\] must be"),
    ({"ops": {"fs": "30"}}, "ops.npy", r"ops\['fs'\] must be"),
    ({"ops": {"fs": True}}, "ops.npy", r"ops\['fs'\] must be"),
    ({"ops": {"x": 1}}, "ops.npy", "no 'fs'"),
    ({"ops": np.array([30.0])}, "ops.npy", "pickled dict"),
])
def test_malformed_plane_is_one_error_naming_the_file(tmp_path, edit, file, pattern):
    args = {"f": _F, "fneu": _FN, "iscell": _ISC, "ops": {"fs": 10.0}}
    args.update(edit)
    d = write_plane(tmp_path / "p", args["f"], args["fneu"], args["iscell"], args["ops"])
    with pytest.raises(CalciumDataError, match=re.escape(str(d / file)) + ".*" + pattern):
        read_suite2p(d)


def test_folder_and_value_errors(tmp_path, rng):
    with pytest.raises(CalciumDataError, match="folder not found"):
        open_suite2p(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalciumDataError, match="no suite2p output"):
        open_suite2p(tmp_path / "empty")
    d = write_plane(tmp_path / "p", _F, _FN, _ISC, {"fs": 10.0})
    with pytest.raises(CalciumDataError, match="not a folder"):
        open_suite2p(d / "F.npy")
    with pytest.raises(CalciumDataError, match="single plane"):
        open_suite2p(d, plane=0)
    (d / "iscell.npy").unlink()
    with pytest.raises(CalciumDataError, match=r"iscell\.npy: file not found"):
        open_suite2p(d)
    (d / "F.npy").write_text("text")
    np.save(d / "iscell.npy", _ISC)
    with pytest.raises(CalciumDataError, match=r"F\.npy: not a \.npy file"):
        open_suite2p(d)
    f = _F.copy()
    f[2, 7] = np.inf
    d = write_plane(tmp_path / "q", f, _FN, _ISC, {"fs": 10.0})
    with pytest.raises(CalciumDataError, match=r"q/F\.npy, ROI 2, frame 7"):
        read_suite2p(d)
    fneu = _FN.copy()
    fneu[0, 3] = np.nan
    d = write_plane(tmp_path / "r", _F, fneu, _ISC, {"fs": 10.0})
    with pytest.raises(CalciumDataError, match=r"r/Fneu\.npy, ROI 0, frame 3"):
        read_suite2p(d)
    d = write_plane(tmp_path / "s", _FN * 0.5, _FN, _ISC, {"fs": 10.0})
    with pytest.raises(CalciumDataError, match=r"s/F\.npy, ROI 0, frame 0: .*baseline F0"):
        read_suite2p(d)
    for kw in ({"plane": -1}, {"cell_probability": 2.0}):
        with pytest.raises(ValueError):
            open_suite2p(d, **kw)
    with pytest.raises(ValueError, match="chunk_cells"):
        read_suite2p(tmp_path / "q", chunk_cells=0)


def test_failed_streamed_summary_leaves_no_temp_files(tmp_path, monkeypatch):
    import tempfile
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    f = _F.copy()
    f[2, 7] = np.nan
    d = write_plane(tmp_path / "p", f, _FN, _ISC, {"fs": 10.0})
    with pytest.raises(CalciumDataError, match="ROI 2, frame 7"):
        summarize_suite2p(d, rng=1, n_shuffles=5, chunk_cells=1)
    assert list(scratch.iterdir()) == []
    with pytest.raises(ValueError, match="no chunks"):
        summarize_chunks([], rng=1)


def test_summarize_chunks_keeps_the_recording_clock():
    g = np.random.default_rng(2)
    rate, n = 10.0, 3000
    x = g.normal(0, 0.05, (3, n))
    for c in range(3):
        for o in range(100 + 30 * c, n - 40, 300):
            x[c, o:o + 20] += 1.0
    rec = DffRecording(x, rate, 100.0 + np.arange(n) / rate, ("a", "b", "c"))
    ev = [110.0, 140.0, 170.0]
    s1 = summarize_session(rec, rng=1, n_shuffles=20, event_times_s=ev)
    s2 = summarize_chunks([rec], rng=1, n_shuffles=20, event_times_s=ev)
    np.testing.assert_allclose(s2.peri_event.mean, s1.peri_event.mean)
    assert s2.transients.time_s0 == s1.transients.time_s0
    # in chunks of cells too: the same events, onsets and synchronous-event times
    chunks = [DffRecording(x[a:b], rate, rec.time_s, rec.cell_ids[a:b])
              for a, b in ((0, 2), (2, 3))]
    s3 = summarize_chunks(chunks, rng=1, n_shuffles=20, event_times_s=ev)
    assert s3.peri_event.n_events == s1.peri_event.n_events == 3
    np.testing.assert_allclose(s3.peri_event.mean, s1.peri_event.mean)
    pd.testing.assert_frame_equal(s3.transients.table(), s1.transients.table())
    assert s3.transients.table().onset_s.min() > 100.0
    np.testing.assert_allclose(s3.synchrony.event_times_s, s1.synchrony.event_times_s)
    a, b = s1.as_dict(), s3.as_dict()
    for k in a:
        if k not in ("mean_pairwise_r", "correlated_pair_fraction"):
            assert a[k] == pytest.approx(b[k], nan_ok=True), k
    # chunks on different clocks are not one recording
    shifted = DffRecording(x[2:], rate, rec.time_s + 1.0, rec.cell_ids[2:])
    with pytest.raises(ValueError, match="clock"):
        summarize_chunks([chunks[0], shifted], rng=1, n_shuffles=5)


@pytest.mark.parametrize("kw, name", [
    ({"min_duration_s": float("nan")}, "min_duration_s"),
    ({"threshold_sd": -1.0}, "threshold_sd"),
    ({"sync_window_s": -1.0}, "sync_window_s"),
    ({"sync_window_s": float("nan")}, "sync_window_s"),
    ({"n_shuffles": 0}, "n_shuffles"),
    ({"sync_percentile": float("nan")}, "sync_percentile"),
    ({"min_cells": True}, "min_cells"),
    ({"alpha": 5.0}, "alpha"),
    ({"event_times_s": [np.nan]}, "event_times_s"),
    ({"event_times_s": [1.0], "peri_event_window_s": (1.0, -1.0)}, "peri_event_window_s"),
])
def test_summarize_chunks_checks_settings_before_reading(kw, name):
    def chunks():
        raise AssertionError("a chunk was read before the settings were checked")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match=name):
        summarize_chunks(chunks(), rng=1, **kw)


def test_suite2p_settings_reject_bools_and_nan(tmp_path, rng):
    f, fneu = raw(rng, 2, 50)
    for kw, name in [({"frame_rate_hz": True}, "frame_rate_hz"),
                     ({"frame_rate_hz": float("nan")}, "frame_rate_hz"),
                     ({"neuropil_coefficient": True}, "neuropil_coefficient"),
                     ({"neuropil_coefficient": float("nan")}, "neuropil_coefficient"),
                     ({"percentile": float("nan")}, "percentile"),
                     ({"percentile": True}, "percentile"),
                     ({"window_s": float("inf")}, "window_s"),
                     ({"sigma_frames": True}, "sigma_frames"),
                     ({"baseline": ["percentile"]}, "baseline")]:
        args = {"frame_rate_hz": 10.0}
        args.update(kw)
        with pytest.raises(ValueError, match=name) as err:
            compute_dff(f, fneu, **args)
        assert not isinstance(err.value, CalciumDataError)
    d = write_plane(tmp_path / "p", _F, _FN, _ISC, {"fs": 10.0})
    for p in (True, float("nan"), -0.1):
        with pytest.raises(ValueError, match="cell_probability"):
            open_suite2p(d, cell_probability=p)
    assert open_suite2p(d, cell_probability=np.float32(0.85)).cell_ids == ("0",)


def ref_transients(x, rate, thr=3.0, off=0.5, min_dur_s=0.2, min_sep_s=0.5):
    """The docstring's rule, frame by frame (one cell)."""
    med = np.median(x)
    sd = 1.4826 * np.median(np.abs(x - med))
    if sd == 0:
        return [], [], [], []
    z = (x - med) / sd
    min_dur = max(1, int(np.ceil(min_dur_s * rate - 1e-9)))
    min_sep_frames = min_sep_s * rate
    found, t, n = [], 0, x.size
    while t < n:
        if z[t] < off:
            t += 1
            continue
        s = t
        while t < n and z[t] >= off:
            t += 1
        run, onset = 0, None
        for u in range(s, t):  # first run >= thr of min_dur frames in the stretch
            run = run + 1 if z[u] >= thr else 0
            if run == min_dur:
                onset = u - min_dur + 1
                break
        if onset is not None:
            found.append([onset, t])
    kept = []
    for o, e in found:
        if kept and (o - kept[-1][0]) < min_sep_frames - 1e-9:
            kept[-1][1] = e
        else:
            kept.append([o, e])
    ons = [o for o, _ in kept]
    ends = [e for _, e in kept]
    peaks = [o + int(np.argmax(x[o:e])) for o, e in kept]
    return ons, peaks, ends, [x[p] - med for p in peaks]


@HSET
@given(st.integers(0, 10_000), st.sampled_from([3.0, 7.5, 10.0, 20.0]),
       st.integers(10, 400))
def test_detect_transients_matches_frame_by_frame_rule(seed, rate, n):
    g = np.random.default_rng(seed)
    x = g.normal(0, 0.1, n)
    for o in g.integers(0, n, g.integers(0, 10)):
        seg = x[o:o + int(g.integers(1, 15))]
        seg += g.uniform(0.1, 2.0) * np.exp(-np.arange(seg.size) / 4.0)
    tr = detect_transients(x, rate)
    ons, peaks, ends, amps = ref_transients(x, rate)
    assert tr.onset_frames[0].tolist() == ons
    assert tr.peak_frames[0].tolist() == peaks
    assert tr.end_frames[0].tolist() == ends
    np.testing.assert_allclose(tr.amplitudes[0], amps)
