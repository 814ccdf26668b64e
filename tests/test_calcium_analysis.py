"""Calcium imaging analysis (ketasim.analysis.calcium) on data with known answers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ketasim.analysis.calcium import (
    CalciumDataError,
    DffRecording,
    Transients,
    detect_transients,
    functional_connectivity,
    peri_event_average,
    read_dff,
    summarize_session,
    synchronous_events,
)

FR = 20.0  # Hz
TAU_S = 0.5  # decay of the planted transients


def kernel(n_frames: int = 60) -> np.ndarray:
    return np.exp(-np.arange(n_frames) / FR / TAU_S)


def planted_session(rng, n_cells=12, n_frames=4800, per_cell=8, noise=0.05):
    """Gaussian noise plus transients at known frames with known amplitudes."""
    x = rng.normal(0.0, noise, (n_cells, n_frames))
    k = kernel()
    slots = np.arange(20, n_frames - 80, 70)  # >= 3.5 s apart: no overlap
    truth = []
    for c in range(n_cells):
        on = np.sort(rng.choice(slots, per_cell, replace=False))
        amp = rng.uniform(0.5, 1.5, per_cell)
        for o, a in zip(on, amp, strict=True):
            x[c, o:o + k.size] += a * k
        truth.append((on, amp))
    return x, truth


# --------------------------------------------------------------------------- reading


def small_matrix() -> np.ndarray:
    return np.array([[0.0, 0.1, 0.2, 0.3],
                     [1.0, 1.1, 1.2, 1.3],
                     [-0.5, 0.5, -0.5, 0.5]])


def wide_table(x: np.ndarray, fr: float = 10.0, t0: float = 2.0) -> pd.DataFrame:
    df = pd.DataFrame({f"c{i}": row for i, row in enumerate(x)})
    df.insert(0, "time_s", t0 + np.arange(x.shape[1]) / fr)
    return df


def long_table(x: np.ndarray, fr: float = 10.0, t0: float = 2.0) -> pd.DataFrame:
    cells, frames = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    return pd.DataFrame({"cell": [f"c{i}" for i in cells.ravel()],
                         "time_s": t0 + frames.ravel() / fr, "dff": x.ravel()})


def test_all_formats_read_alike(tmp_path):
    x = small_matrix()
    np.save(tmp_path / "dff.npy", x)
    wide_table(x).to_csv(tmp_path / "wide.csv", index=False)
    wide_table(x).to_parquet(tmp_path / "wide.parquet", index=False)
    long = long_table(x).sample(frac=1.0, random_state=3)  # any row order
    long.to_csv(tmp_path / "long.csv", index=False)
    long.drop(columns="time_s").assign(frame=np.tile(np.arange(4), 3)[long.index]).to_parquet(
        tmp_path / "long.parquet", index=False)
    recs = [read_dff(x, 10.0), read_dff(tmp_path / "dff.npy", frame_rate_hz=10.0),
            read_dff(tmp_path / "wide.csv"), read_dff(str(tmp_path / "wide.parquet")),
            read_dff(tmp_path / "long.csv"), read_dff(tmp_path / "long.parquet", 10.0),
            read_dff(long_table(x))]
    for rec in recs:
        assert isinstance(rec, DffRecording)
        order = [rec.cell_ids.index(c) for c in sorted(rec.cell_ids)]
        np.testing.assert_allclose(rec.dff[order], x)
        assert rec.dff.dtype == np.float64
        assert rec.frame_rate_hz == pytest.approx(10.0)
        assert rec.n_cells == 3 and rec.n_frames == 4
        assert rec.duration_s == pytest.approx(0.4)
    assert recs[2].cell_ids == ("c0", "c1", "c2") and recs[0].cell_ids == ("0", "1", "2")
    assert recs[4].cell_ids == tuple(dict.fromkeys(long["cell"]))  # first appearance
    np.testing.assert_allclose(recs[2].time_s, [2.0, 2.1, 2.2, 2.3])  # the file's clock
    np.testing.assert_allclose(recs[0].time_s, [0.0, 0.1, 0.2, 0.3])
    assert recs[2].source == "wide.csv"


def test_long_table_rows_follow_the_cells():
    x = small_matrix()
    rec = read_dff(long_table(x).iloc[::-1])
    order = [rec.cell_ids.index(f"c{i}") for i in range(3)]
    np.testing.assert_allclose(rec.dff[order], x)


def write(df: pd.DataFrame, path) -> None:
    if str(path).endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def bad_value(col, row, value):
    def edit(df):
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    return edit


TABLE_ERRORS = [
    # (name, table maker, frame_rate_hz, message pattern)
    ("nan", lambda: bad_value("c1", 2, np.nan)(wide_table(small_matrix())), None,
     r"column 'c1', row 3.*expected a finite dF/F value, got a missing value"),
    ("text", lambda: bad_value("c2", 1, "abc")(wide_table(small_matrix()).astype(
        {"c2": str})), None,
     r"column 'c2', row 2.*expected a finite dF/F value, got 'abc'"),
    ("inf", lambda: bad_value("c0", 3, np.inf)(wide_table(small_matrix())), None,
     r"column 'c0', row 4.*expected a finite dF/F value, got inf"),
    ("time back", lambda: bad_value("time_s", 2, 2.05)(wide_table(small_matrix())), None,
     r"column 'time_s', row 3.*expected time_s to increase, got 2.05 after 2.1"),
    ("dropped frame", lambda: wide_table(np.zeros((2, 10))).drop(index=2), None,
     (r"column 'time_s', row 3.*inconsistent frame spacing: 0.2 s after time_s 2.1, median "
     r"0.1 s")),
    ("no rate", lambda: wide_table(small_matrix()).drop(columns="time_s"), None,
     r"no frame rate: no time_s column and no frame_rate_hz given"),
    ("rate disagrees", lambda: wide_table(small_matrix()), 20.0,
     r"column 'time_s'.*frame spacing 0.1 s \(10 Hz\) disagrees with frame_rate_hz=20"),
    ("bad rate", lambda: wide_table(small_matrix()), -1.0,
     r"frame_rate_hz must be a finite number > 0, got -1.0"),
    ("no cells", lambda: wide_table(small_matrix())[["time_s"]], None, r"no cell columns"),
    ("no rows", lambda: wide_table(small_matrix()).iloc[:0], None,
     r"no data: 3 cell columns but no rows"),
    ("frame gap", lambda: wide_table(small_matrix()).drop(columns="time_s").assign(
        frame=[0, 1, 3, 4]), 10.0,
     r"column 'frame', row 3.*frames must be consecutive.*frame 3 after 1"),
    ("long no dff", lambda: long_table(small_matrix()).drop(columns="dff"), None,
     r"missing required column\(s\) 'dff' \(long format"),
    ("long no time", lambda: long_table(small_matrix()).drop(columns="time_s"), 10.0,
     r"missing required column\(s\) 'time_s or frame'"),
    ("long duplicate", lambda: pd.concat([long_table(small_matrix()),
                                          long_table(small_matrix()).iloc[[4]]]), None,
     r"column 'time_s', row 13.*duplicate row for cell 'c1' at time_s 2"),
    ("long missing row", lambda: long_table(small_matrix()).drop(index=5), None,
     (r"column 'cell'.*cell 'c1' has 3 rows, expected one per time_s \(4\); no row at "
     r"time_s 2.1")),
    ("long nan", lambda: bad_value("dff", 6, np.nan)(long_table(small_matrix())), None,
     r"column 'dff', row 7.*expected a finite dF/F value, got a missing value"),
    ("long empty cell id", lambda: bad_value("cell", 0, " ")(long_table(small_matrix())),
     None, r"column 'cell', row 1.*expected a non-empty cell id"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("name,make,rate,pattern", TABLE_ERRORS,
                         ids=[e[0] for e in TABLE_ERRORS])
def test_table_errors_name_file_column_row(tmp_path, suffix, name, make, rate, pattern):
    path = tmp_path / f"session{suffix}"
    write(make(), path)
    with pytest.raises(CalciumDataError, match=f"^session{suffix}.*{pattern}") as err:
        read_dff(path, frame_rate_hz=rate)
    msg = str(err.value)
    assert "\n" not in msg
    row = re.search(r"row (\d+)", msg)
    if suffix == ".csv" and row:  # CSV messages give the file line too
        assert f"row {row[1]} (line {int(row[1]) + 1})" in msg


def test_csv_blank_line_keeps_row_numbers(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("time_s,a\n0.0,0.1\n\n0.1,x\n")
    with pytest.raises(CalciumDataError, match=r"column 'a', row 3 \(line 4\)"):
        read_dff(path)


ARRAY_ERRORS = [
    (np.zeros(5), 10.0, r"expected a 2-D array \(cells x frames\), got 1-D with shape \(5,\)"),
    (np.zeros((2, 3, 4)), 10.0, r"expected a 2-D array.*got 3-D"),
    (np.zeros((0, 10)), 10.0, r"no data: 0 cells x 10 frames"),
    (np.zeros((3, 0)), 10.0, r"no data: 3 cells x 0 frames"),
    (np.array([["a", "b"]]), 10.0, r"expected a numeric array, got dtype <U1"),
    (np.zeros((2, 5)), None, r"no frame rate: an array carries no time, pass frame_rate_hz"),
]


@pytest.mark.parametrize("arr,rate,pattern", ARRAY_ERRORS)
def test_array_and_npy_errors(tmp_path, arr, rate, pattern):
    with pytest.raises(CalciumDataError, match=f"^<array>: {pattern}"):
        read_dff(arr, rate)
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(CalciumDataError, match=f"^x.npy: {pattern}"):
        read_dff(tmp_path / "x.npy", rate)


@pytest.mark.parametrize("value,shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nonfinite_array_value_names_cell_and_frame(tmp_path, value, shown):
    x = small_matrix()
    x[2, 1] = value
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(CalciumDataError, match=rf"^x.npy, cell index 2, frame index 1: expected "
                                               rf"a finite dF/F value, got {shown}$"):
        read_dff(tmp_path / "x.npy", 10.0)


def test_unreadable_sources(tmp_path):
    with pytest.raises(CalciumDataError, match=r"^nope.csv: file not found"):
        read_dff(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(CalciumDataError, match=r"unknown file suffix '.txt'"):
        read_dff(tmp_path / "x.txt")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CalciumDataError, match=r"^empty.csv: file is empty"):
        read_dff(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CalciumDataError, match=r"^bad.parquet: cannot read parquet file"):
        read_dff(tmp_path / "bad.parquet")
    (tmp_path / "bad.npy").write_bytes(b"not npy")
    with pytest.raises(CalciumDataError, match=r"^bad.npy: cannot read .npy file"):
        read_dff(tmp_path / "bad.npy")
    with pytest.raises(CalciumDataError, match=r"expected a cells x frames array"):
        read_dff([[1.0, 2.0]])
    df = wide_table(small_matrix())
    df.columns = ["time_s", "a", "a", "b"]
    with pytest.raises(CalciumDataError, match=r"^<DataFrame>: repeated column name\(s\) 'a'"):
        read_dff(df)


# ------------------------------------------------------------------------ transients


def test_planted_transients_recovered(rng):
    x, truth = planted_session(rng)
    tr = detect_transients(x, FR)
    assert isinstance(tr, Transients)
    np.testing.assert_allclose(tr.noise_sd, 0.05, rtol=0.15)
    for c, (on, amp) in enumerate(truth):
        np.testing.assert_array_equal(tr.onset_frames[c], on)
        # the peak of a noisy trace sits within a few noise SDs of the planted amplitude
        np.testing.assert_allclose(tr.amplitudes[c], amp, atol=4 * 0.05)
        assert np.all(tr.peak_frames[c] - on <= 3)
        assert np.all(tr.end_frames[c] > tr.peak_frames[c])
    duration_min = x.shape[1] / FR / 60
    np.testing.assert_allclose(tr.rate_per_min, 8 / duration_min)
    table = tr.table()
    assert len(table) == 8 * x.shape[0]
    np.testing.assert_allclose(table["onset_s"], table["onset_frame"] / FR)
    raster = tr.onset_raster()
    assert raster.sum() == len(table) and raster[0, truth[0][0]].all()


def test_no_transients_in_noise(rng):
    tr = detect_transients(rng.normal(0.0, 1.0, (40, 6000)), FR)
    assert tr.counts.sum() <= 2


def test_duration_and_separation_rules():
    x = np.zeros((1, 400)) + np.tile([0.01, -0.01], 200)  # noise SD from MAD: 0.0148
    x[0, 50:52] += 1.0  # 2 frames: shorter than 0.2 s at 20 Hz (4 frames)
    x[0, 100:160] += kernel()  # a transient
    x[0, 170:230] += kernel()  # 3.5 s later, after the first ended
    x[0, 300:360] += kernel()
    tr = detect_transients(x, FR, min_separation_s=0.0)
    np.testing.assert_array_equal(tr.onset_frames[0], [100, 170, 300])
    tr = detect_transients(x, FR, min_separation_s=4.0)
    np.testing.assert_array_equal(tr.onset_frames[0], [100, 300])
    assert tr.end_frames[0][0] > 200  # the merged transient spans both
    tr = detect_transients(x, FR, min_duration_s=0.05, min_separation_s=0.0)
    np.testing.assert_array_equal(tr.onset_frames[0], [50, 100, 170, 300])


def test_noiseless_trace_needs_a_noise_level():
    x = np.zeros((2, 200))
    x[:, 40:100] += kernel()
    tr = detect_transients(x, FR)
    assert tr.counts.sum() == 0 and np.isnan(tr.noise_sd).all()
    tr = detect_transients(x, FR, noise_sd=0.01)
    np.testing.assert_array_equal(tr.counts, [1, 1])
    assert tr.onset_frames[0][0] == 40 and tr.amplitudes[0][0] == pytest.approx(1.0)


# ----------------------------------------------------------------- synchronous events


def poisson_raster(rng, n_cells=30, n_frames=6000, rate_per_min=6.0) -> np.ndarray:
    return rng.random((n_cells, n_frames)) < rate_per_min / 60.0 / FR


def test_planted_synchronous_events_found(rng):
    raster = poisson_raster(rng, rate_per_min=3.0)
    planted = np.arange(100, 5900, 300)
    for e in planted:
        cells = rng.choice(30, 10, replace=False)
        raster[cells, e + rng.integers(0, 5, 10)] = True  # jitter within 0.25 s
    res = synchronous_events(raster, FR, rng=rng, n_shuffles=199)
    assert res.p <= 0.05
    assert res.event_rate_per_min > 2 * res.shuffle_rate_mean_per_min
    # every planted event is found, within the co-activity window
    lag = res.event_frames[:, None] - planted[None, :]
    hit = (lag >= -res.window_s * FR) & (lag <= 5)
    assert hit.any(axis=0).all()
    # about ten cells each (planted subset plus the odd background onset)
    assert np.median(res.cells_per_event[hit.any(axis=1)]) == pytest.approx(10, abs=1.5)
    assert res.threshold_cells < 8
    assert res.mean_fraction_per_event == pytest.approx(res.mean_cells_per_event / 30)
    np.testing.assert_allclose(res.event_times_s, res.event_frames / FR)


def test_independent_cells_give_events_at_the_nominal_rate(rng):
    """Shuffle p-values for independent Poisson cells: at most ~5% below 0.05."""
    p, observed, shuffled = [], [], []
    for _ in range(40):
        res = synchronous_events(poisson_raster(rng), FR, rng=rng, n_shuffles=99)
        p.append(res.p)
        observed.append(res.event_rate_per_min)
        shuffled.append(res.shuffle_rate_mean_per_min)
    p = np.array(p)
    # binomial(40, 0.05): P(>= 6) ~ 0.014
    assert (p <= 0.05).sum() <= 5
    assert 0.3 < p.mean() < 0.75
    assert np.mean(observed) == pytest.approx(np.mean(shuffled), rel=0.25)


def test_synchrony_is_deterministic_and_takes_transients(rng):
    x, _ = planted_session(rng)
    tr = detect_transients(x, FR)
    a = synchronous_events(tr, rng=np.random.default_rng(5), n_shuffles=50)
    b = synchronous_events(tr.onset_raster(), FR, rng=5, n_shuffles=50)
    c = synchronous_events(tr, rng=6, n_shuffles=50)
    np.testing.assert_array_equal(a.shuffle_event_rate_per_min, b.shuffle_event_rate_per_min)
    assert a.p == b.p and a.threshold_cells == b.threshold_cells
    assert not np.array_equal(a.shuffle_event_rate_per_min, c.shuffle_event_rate_per_min)
    with pytest.raises(TypeError, match="rng must be"):
        synchronous_events(tr, rng=None, n_shuffles=5)
    with pytest.raises(ValueError, match="bool onset raster"):
        synchronous_events(np.zeros((2, 5)), FR, rng=0)


def test_coactive_counts_match_a_direct_count(rng):
    raster = poisson_raster(rng, n_cells=7, n_frames=300, rate_per_min=60.0)
    res = synchronous_events(raster, FR, rng=0, n_shuffles=3, window_s=0.25)
    w = 5
    direct = [sum(raster[c, t:t + w].any() for c in range(7)) for t in range(300)]
    np.testing.assert_array_equal(res.coactive_cells, direct)


def test_no_onsets_no_events():
    res = synchronous_events(np.zeros((5, 100), dtype=bool), FR, rng=0, n_shuffles=10)
    assert res.n_events == 0 and res.p == 1.0 and np.isnan(res.mean_cells_per_event)


# ------------------------------------------------------------ functional connectivity


def ar1(rng, shape, phi=0.9):
    return lfilter([1.0], [1.0, -phi], rng.normal(0.0, 1.0, shape), axis=-1)


def test_planted_correlation(rng):
    n = 4000
    x = ar1(rng, (14, n))
    x[:6] += ar1(rng, n)  # equal variance shared: r = 0.5 within the subset
    res = functional_connectivity(x, FR, rng=rng, n_shuffles=100)
    iu6 = np.triu_indices(6, 1)
    assert res.r[:6, :6][iu6].mean() == pytest.approx(0.5, abs=0.08)
    assert res.significant[:6, :6][iu6].all()
    assert res.n_pairs == 14 * 13 // 2
    np.testing.assert_allclose(np.diag(res.r), 1.0)
    assert np.isnan(np.diag(res.p)).all()
    expected_mean = (15 * 0.5) / res.n_pairs
    assert res.mean_r == pytest.approx(expected_mean, abs=0.05)


def test_independent_traces_fraction_significant_near_alpha(rng):
    """Autocorrelated but independent traces: ~alpha of the pairs come out significant."""
    res = functional_connectivity(ar1(rng, (30, 3000)), FR, rng=rng, n_shuffles=100)
    # 435 pairs, P(p < 0.05) = 5/101: expected 0.0495, SD about 0.01
    assert 0.015 <= res.fraction_significant <= 0.09
    assert abs(res.mean_r) < 0.03 and abs(res.null_mean_r) < 0.01
    two = functional_connectivity(ar1(rng, (30, 3000)), FR, rng=1, n_shuffles=100,
                                  alternative="two-sided")
    assert two.fraction_significant <= 0.09


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_exact_shift_test_matches_brute_force(rng, alternative):
    x = ar1(rng, (4, 200), phi=0.7)
    x[1] += 0.8 * x[0]
    x[3] -= 0.5 * x[2]
    res = functional_connectivity(x, FR, alternative=alternative)
    assert res.n_shuffles == 200
    z = (x - x.mean(1, keepdims=True)) / np.linalg.norm(x - x.mean(1, keepdims=True), axis=1,
                                                         keepdims=True)
    for i in range(4):
        for j in range(i + 1, 4):
            null = np.array([z[i] @ np.roll(z[j], d) for d in range(200)])
            obs = z[i] @ z[j]
            if alternative == "two-sided":
                null, obs = np.abs(null), abs(obs)
            assert res.p[i, j] == res.p[j, i] == pytest.approx(np.mean(null >= obs - 1e-9))
            assert res.r[i, j] == pytest.approx(np.corrcoef(x[i], x[j])[0, 1])
    assert res.significant[0, 1] and res.significant[2, 3] == (alternative == "two-sided")
    assert res.null_mean_r == pytest.approx(0.0, abs=1e-12)


def test_exact_and_sampled_shift_tests_agree(rng):
    x = ar1(rng, (30, 3000))
    exact = functional_connectivity(x, FR)
    assert 0.015 <= exact.fraction_significant <= 0.09
    sampled = functional_connectivity(x, FR, rng=4, n_shuffles=400)
    assert np.nanmax(np.abs(sampled.p - exact.p)) < 0.1  # Monte Carlo error of 400 draws
    again = functional_connectivity(x, FR, rng=np.random.default_rng(4), n_shuffles=400)
    np.testing.assert_array_equal(again.p, sampled.p)
    with pytest.raises(TypeError, match="rng must be"):
        functional_connectivity(x, FR, n_shuffles=10)


def test_constant_trace_is_left_out(rng):
    x = rng.normal(size=(4, 500))
    x[2] = 0.3
    for res in (functional_connectivity(x, FR, rng=0, n_shuffles=20),
                functional_connectivity(x, FR)):
        assert np.isnan(res.r[2]).all() and np.isnan(res.p[:, 2]).all()
        assert res.n_pairs == 3 and not res.significant[2].any()
    with pytest.raises(ValueError, match="at least 2 cells"):
        functional_connectivity(x[:1], FR, rng=0)


# ------------------------------------------------------------------ peri-event average


def test_rise_one_second_before_events_is_recovered(rng):
    n = 12000
    x = rng.normal(0.0, 0.05, (10, n))
    events = np.arange(10.0, 590.0, 12.0) + rng.uniform(0.0, 2.0, 49)
    k = kernel(40)
    for e in events:
        f = round((e - 1.0) * FR)
        x[:, f:f + k.size] += 0.8 * k
    res = peri_event_average(x, FR, event_times_s=events)
    assert res.n_events == 49 and res.dropped_times_s.size == 0
    assert res.rise_s == pytest.approx(-1.0, abs=0.1)
    assert res.peak_s == pytest.approx(-1.0, abs=0.1)
    assert res.lags_s[0] == pytest.approx(-3.0) and res.lags_s[-1] == pytest.approx(2.0)
    assert res.per_event.shape == (49, res.lags_s.size)
    assert res.baseline == pytest.approx(0.0, abs=0.01)
    assert np.all(res.sem > 0) and np.all(res.sem < 0.05)
    # shifting the events by 0.5 s shifts the lead by 0.5 s: the test can fail
    later = peri_event_average(x, FR, event_times_s=events + 0.5)
    assert later.rise_s == pytest.approx(-1.5, abs=0.1)


def test_peri_event_edges_clock_and_baseline():
    x = np.zeros(200)
    x[100:] = 1.0  # a step at frame 100
    rec = DffRecording(x[None, :], 10.0, 50.0 + np.arange(200) / 10.0, ("a",))
    res = peri_event_average(rec, event_times_s=[60.0, 50.1, 69.5], window_s=(-1.0, 1.0))
    np.testing.assert_allclose(res.event_times_s, [60.0])
    np.testing.assert_allclose(res.dropped_times_s, [50.1, 69.5])
    assert res.rise_s == pytest.approx(-0.05)  # half-way between frames 99 and 100
    assert np.isnan(res.sem).all()
    sub = peri_event_average(rec, event_times_s=[60.0], window_s=(-1.0, 1.0),
                             baseline_s=(0.0, 1.0), subtract_baseline=True)
    np.testing.assert_allclose(sub.per_event[0], np.r_[np.full(10, -1.0), np.zeros(11)])
    with pytest.raises(ValueError, match="finite"):
        peri_event_average(rec, event_times_s=[np.nan])


# ------------------------------------------------------------------- session summary


def test_summarize_session(rng):
    x, truth = planted_session(rng, n_cells=10, n_frames=2400)
    events = np.array([20.0, 50.0, 80.0])
    s = summarize_session(x, FR, rng=3, event_times_s=events, n_shuffles=50,
                          n_correlation_shuffles=20)
    d = s.as_dict()
    assert d["n_cells"] == 10 and d["duration_min"] == pytest.approx(2.0)
    assert d["transient_rate_per_min"] == pytest.approx(4.0)
    assert d["active_cell_fraction"] == 1.0
    amps = np.concatenate([a for _, a in truth])
    assert d["transient_amplitude_dff"] == pytest.approx(amps.mean(), abs=0.1)
    assert d["peri_event_n"] == 3
    assert set(d) >= {"sync_event_rate_per_min", "sync_p", "mean_pairwise_r",
                      "correlated_pair_fraction", "sync_threshold_fraction"}
    assert all(np.isscalar(v) for v in d.values())
    again = summarize_session(x, FR, rng=3, event_times_s=events, n_shuffles=50,
                              n_correlation_shuffles=20)
    assert again.as_dict() == pytest.approx(d, nan_ok=True)
    rec = read_dff(x, FR)
    assert summarize_session(rec, rng=3, n_shuffles=50, n_correlation_shuffles=20
                             ).sync_p == d["sync_p"]


ODD_CELLS = ["", " ", "nan", "1e400", "-inf", "True", "0x10", "1,5", "--", "\u00b5"]


@pytest.mark.parametrize("value", ODD_CELLS)
@pytest.mark.parametrize("column", ["time_s", "c1"])
def test_odd_csv_cells_raise_only_calcium_errors(tmp_path, value, column):
    path = tmp_path / "odd.csv"
    lines = wide_table(small_matrix()).to_csv(index=False).splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = f'"{value}"' if "," in value else value
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CalciumDataError, match=rf"^odd.csv, column '{column}', row 2 \(line 3\)"):
        read_dff(path)


def test_summary_default_correlation_test_is_exact(rng):
    x, _ = planted_session(rng, n_cells=6, n_frames=1200)
    s = summarize_session(x, FR, rng=0, n_shuffles=20)
    assert s.connectivity.n_shuffles == 1200
    assert 0.0 <= s.correlated_pair_fraction <= 1.0
    assert s.peri_event is None and s.peri_event_n == 0 and np.isnan(s.peri_event_rise_s)
