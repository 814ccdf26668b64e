"""Behavioural scoring (ketasim.analysis.behavior) on tables with known answers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis.behavior import (
    TST_LAST_4_MIN_S,
    BehaviorDataError,
    binned_distance,
    freezing_per_trial,
    learned_helplessness,
    open_field_locomotion,
    read_tst_table,
    score_tst,
    struggle_onsets,
    sucrose_preference,
    tst_bouts_from_states,
)


def write(df: pd.DataFrame, path) -> None:
    if str(path).endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def check_error(tmp_path, suffix, df, reader, pattern, **kwargs):
    """The error names the file, is one line, and for CSV gives the file line."""
    path = tmp_path / f"table{suffix}"
    write(df, path)
    with pytest.raises(BehaviorDataError, match=f"^table{suffix}.*{pattern}") as err:
        reader(path, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg
    row = re.search(r", row (\d+)", msg)
    if suffix == ".csv" and row:
        assert f"row {row[1]} (line {int(row[1]) + 1})" in msg


# ------------------------------------------------------------------- tail suspension


def ethogram() -> pd.DataFrame:
    """m1: 260 s immobile (180 s in the last 4 min); m2: 60 s immobile, 10 s unscored."""
    rows = [("cort", "m1", 0, 60, "immobile"), ("cort", "m1", 60, 100, "struggle"),
            ("cort", "m1", 100, 300, "Immobile"), ("cort", "m1", 300, 360, "struggle"),
            ("ket", "m2", 0, 30, "struggle"), ("ket", "m2", 30, 90, "immobile"),
            ("ket", "m2", 100, 360, "STRUGGLE")]
    df = pd.DataFrame(rows, columns=["arm", "subject", "start_s", "end_s", "state"])
    df["scorer"] = "jb"
    return df.iloc[[6, 2, 0, 4, 1, 5, 3]]  # any row order


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tst_scores_known_ethogram(tmp_path, suffix):
    path = tmp_path / f"tst{suffix}"
    write(ethogram(), path)
    table = read_tst_table(path)
    assert list(table.columns) == ["arm", "subject", "start_s", "end_s", "state", "scorer"]
    # sorted by arm, subject, start; states lower-cased; extra columns kept
    assert list(table["subject"]) == ["m1"] * 4 + ["m2"] * 3
    np.testing.assert_allclose(table["start_s"], [0, 60, 100, 300, 0, 30, 100])
    assert list(table["state"]) == ["immobile", "struggle"] * 2 + ["struggle", "immobile",
                                                                   "struggle"]
    s = score_tst(path).set_index("subject")
    assert s.loc["m1", "immobility_s"] == pytest.approx(260.0)
    assert s.loc["m1", "immobility_pct"] == pytest.approx(260.0 / 360.0 * 100.0)
    assert s.loc["m1", "struggle_s"] == pytest.approx(100.0)
    assert (s.loc["m1", "n_immobile_bouts"], s.loc["m1", "n_struggle_bouts"]) == (2, 2)
    assert s.loc["m1", "mean_immobile_bout_s"] == pytest.approx(130.0)
    assert s.loc["m1", "mean_struggle_bout_s"] == pytest.approx(50.0)
    assert s.loc["m1", "latency_to_immobility_s"] == 0.0
    assert s.loc["m2", "immobility_s"] == pytest.approx(60.0)
    assert s.loc["m2", "unscored_s"] == pytest.approx(10.0)
    assert s.loc["m2", "latency_to_immobility_s"] == pytest.approx(30.0)
    assert s.loc["m2", "arm"] == "ket"
    last = score_tst(path, window_s=TST_LAST_4_MIN_S).set_index("subject")
    assert last.loc["m1", "immobility_s"] == pytest.approx(180.0)
    assert last.loc["m1", "immobility_pct"] == pytest.approx(75.0)
    assert (last.loc["m1", "n_immobile_bouts"], last.loc["m1", "n_struggle_bouts"]) == (1, 1)
    assert last.loc["m2", "immobility_s"] == 0.0 and last.loc["m2", "n_immobile_bouts"] == 0
    assert np.isnan(last.loc["m2", "mean_immobile_bout_s"])
    assert np.isnan(last.loc["m2", "latency_to_immobility_s"])


def test_struggle_onsets():
    on = struggle_onsets(ethogram())
    assert list(on["subject"]) == ["m1", "m1"]  # m2's immobility ends in an unscored gap
    np.testing.assert_allclose(on["onset_s"], [60.0, 300.0])
    np.testing.assert_allclose(on["preceding_immobile_s"], [60.0, 200.0])
    np.testing.assert_allclose(struggle_onsets(ethogram(), min_immobile_s=100)["onset_s"],
                               [300.0])


def test_per_frame_states_give_the_same_scores():
    fr = 10.0
    states = np.r_[np.ones(600, bool), np.zeros(400, bool), np.ones(2000, bool),
                   np.zeros(600, bool)]
    bouts = tst_bouts_from_states(states, fr, subject="m1", arm="cort")
    np.testing.assert_allclose(bouts["start_s"], [0, 60, 100, 300])
    assert list(bouts["state"]) == ["immobile", "struggle", "immobile", "struggle"]
    s = score_tst(bouts).iloc[0]
    assert s["immobility_s"] == pytest.approx(260.0) and s["n_immobile_bouts"] == 2
    labels = np.where(states, "immobile", "struggle")
    pd.testing.assert_frame_equal(tst_bouts_from_states(labels, fr, subject="m1", arm="cort"),
                                  bouts)
    # immobility shorter than 2 s counts as struggling when a minimum is set
    flicker = states.copy()
    flicker[700:715] = True  # 1.5 s still within a struggle bout
    assert score_tst(tst_bouts_from_states(flicker, fr)).iloc[0]["n_immobile_bouts"] == 3
    kept = score_tst(tst_bouts_from_states(flicker, fr, min_immobile_s=2.0)).iloc[0]
    assert kept["n_immobile_bouts"] == 2 and kept["immobility_s"] == pytest.approx(260.0)
    with pytest.raises(ValueError, match=r"states\[2\]: expected one of immobile, struggle"):
        tst_bouts_from_states(["immobile", "struggle", "grooming"], fr)


def tst(col: str, pos: int, value) -> pd.DataFrame:
    """The ethogram with one cell changed; data rows 1-7 are m2 100-360, m1 100-300,
    m1 0-60, m2 0-30, m1 60-100, m2 30-90, m1 300-360."""
    return edit(ethogram().reset_index(drop=True), col, pos, value)


def edit(df: pd.DataFrame, col: str, pos: int, value) -> pd.DataFrame:
    df[col] = df[col].astype(object)
    df.loc[pos, col] = value
    return df


TST_ERRORS = [
    ("missing", lambda: ethogram().drop(columns=["state", "end_s"]),
     r"missing required column\(s\) 'end_s', 'state'"),
    ("state", lambda: tst("state", 3, "grooming"),
     r"column 'state', row 4.*expected one of immobile, struggle, got 'grooming'"),
    ("negative start", lambda: tst("start_s", 2, -5.0),
     r"column 'start_s', row 3.*expected a start >= 0 s"),
    ("negative bout", lambda: tst("end_s", 1, 90.0),
     r"column 'end_s', row 2.*expected end_s > start_s \(100 s\).*got 90.0"),
    ("beyond test", lambda: tst("end_s", 0, 400.0),
     r"column 'end_s', row 1.*bout ends beyond the test duration \(360 s\), got 400.0"),
    ("overlap", lambda: tst("start_s", 4, 50.0),
     r"column 'start_s', row 5.*bout overlaps the bout of subject 'm1' in row 3 \(0-60 s\)"),
    ("text", lambda: tst("start_s", 1, "1:00").astype({"start_s": str}),
     r"column 'start_s', row 2.*expected a finite number, got '1:00'"),
    ("missing subject", lambda: tst("subject", 4, None),
     r"column 'subject', row 5.*expected a non-empty string or an integer"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("name,make,pattern", TST_ERRORS, ids=[e[0] for e in TST_ERRORS])
def test_tst_table_errors(tmp_path, suffix, name, make, pattern):
    check_error(tmp_path, suffix, make(), read_tst_table, pattern)


def test_tst_window_must_fit_the_test():
    with pytest.raises(ValueError, match="window_s"):
        score_tst(ethogram(), window_s=(0.0, 400.0))


# ------------------------------------------------------------------ sucrose preference


def intake() -> pd.DataFrame:
    return pd.DataFrame({"arm": ["cort", "cort", "ket", "ket"], "subject": [1, 1, 2, 2],
                         "day": [1, 2, 1, 2], "sucrose_g": [3.0, 2.0, 4.5, 0.0],
                         "water_g": [1.0, 2.0, 0.5, 2.0], "cage": ["A", "A", "B", "B"]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_sucrose_preference_known_values(tmp_path, suffix):
    path = tmp_path / f"spt{suffix}"
    write(intake(), path)
    out = sucrose_preference(path)
    np.testing.assert_allclose(out["preference"], [0.75, 0.5, 0.9, 0.0])
    np.testing.assert_allclose(out["preference_pct"], [75.0, 50.0, 90.0, 0.0])
    np.testing.assert_allclose(out["total"], [4.0, 4.0, 5.0, 2.0])
    assert list(out["anhedonic"]) == [False, True, False, True]
    assert list(out["subject"]) == ["1", "1", "2", "2"] and list(out["day"]) == ["1", "2"] * 2
    assert "cage" in out.columns
    ml = intake().rename(columns={"sucrose_g": "sucrose_ml", "water_g": "water_ml"})
    np.testing.assert_allclose(sucrose_preference(ml, anhedonia_threshold=0.8)["preference"],
                               out["preference"])
    assert list(sucrose_preference(ml, anhedonia_threshold=0.8)["anhedonic"]) == [
        True, True, False, True]


SPT_ERRORS = [
    ("negative", lambda: edit(intake(), "water_g", 2, -0.5),
     r"column 'water_g', row 3.*expected an intake >= 0, got -0.5"),
    ("zero total", lambda: edit(edit(intake(), "water_g", 3, 0.0), "sucrose_g", 3, 0.0),
     r"column 'water_g', row 4.*zero total intake"),
    ("no intake", lambda: intake().drop(columns=["sucrose_g", "water_g"]),
     r"no intake columns: expected sucrose_g and water_g"),
    ("half pair", lambda: intake().drop(columns=["water_g"]),
     r"missing required column 'water_g'"),
    ("both units", lambda: intake().assign(water_ml=1.0), r"both g and ml columns"),
    ("no subject", lambda: intake().drop(columns=["subject"]),
     r"missing required column\(s\) 'subject'"),
    ("duplicate", lambda: edit(intake(), "day", 1, 1),
     (r"column 'subject', row 2.*duplicate intake row \(arm 'cort', subject '1', day '1'\), "
     r"already in row 1")),
    ("missing value", lambda: edit(intake(), "sucrose_g", 0, None),
     r"column 'sucrose_g', row 1.*missing value"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("name,make,pattern", SPT_ERRORS, ids=[e[0] for e in SPT_ERRORS])
def test_sucrose_errors(tmp_path, suffix, name, make, pattern):
    check_error(tmp_path, suffix, make(), sucrose_preference, pattern)


# ---------------------------------------------------------------- learned helplessness


def lh_trials(cutoff=30.0) -> pd.DataFrame:
    """15 trials each: A fails 7, B fails 4, C fails 5 (the default criterion's edge)."""
    rows = []
    for subject, n_fail in (("A", 7), ("B", 4), ("C", 5)):
        for trial in range(1, 16):
            latency = cutoff if trial <= n_fail else 2.0 + trial * 0.5
            rows.append({"subject": subject, "trial": trial, "latency_s": latency})
    return pd.DataFrame(rows)


def test_learned_helplessness_known_counts(tmp_path):
    df = lh_trials()
    write(df, tmp_path / "lh.parquet")
    out = learned_helplessness(tmp_path / "lh.parquet", cutoff_s=30.0, n_trials=15)
    out = out.set_index("subject")
    assert list(out["n_failures"]) == [7, 4, 5]
    assert list(out["helpless"]) == [True, False, True]
    np.testing.assert_allclose(out["failure_pct"], [700 / 15, 400 / 15, 500 / 15])
    for s, n in (("A", 7), ("B", 4), ("C", 5)):
        esc = [2.0 + t * 0.5 for t in range(n + 1, 16)]
        assert out.loc[s, "mean_latency_s"] == pytest.approx((30.0 * n + sum(esc)) / 15)
    strict = learned_helplessness(df, cutoff_s=30.0, helpless_min_failures=6)
    assert list(strict["helpless"]) == [True, False, False]
    # an explicit escaped column decides; a per-trial cutoff column replaces the argument
    marked = df.assign(escaped=df["latency_s"] < 30.0, cutoff_s=30.0)
    pd.testing.assert_frame_equal(learned_helplessness(marked), out.reset_index()[
        ["arm", "subject", "n_trials", "n_failures", "failure_pct", "mean_latency_s",
         "helpless"]])


LH_ERRORS = [
    ("beyond cutoff", lambda: edit(lh_trials(), "latency_s", 20, 31.0), {"cutoff_s": 30.0},
     r"column 'latency_s', row 21.*latency beyond the cutoff \(30 s\), got 31.0"),
    ("negative", lambda: edit(lh_trials(), "latency_s", 3, -1.0), {"cutoff_s": 30.0},
     r"column 'latency_s', row 4.*expected a latency >= 0 s"),
    ("no cutoff", lh_trials, {}, r"no cutoff: pass cutoff_s= or give a cutoff_s column"),
    ("duplicate", lambda: edit(lh_trials(), "trial", 1, 1), {"cutoff_s": 30.0},
     r"column 'trial', row 2.*duplicate trial \(arm 'all', subject 'A', trial '1'\)"),
    ("n trials", lambda: lh_trials().drop(index=40), {"cutoff_s": 30.0, "n_trials": 15},
     r"column 'trial'.*subject 'C' has 14 trials, expected 15"),
    ("escaped at cutoff", lambda: lh_trials().assign(escaped=True), {"cutoff_s": 30.0},
     r"column 'escaped', row 1.*escaped is true but latency_s 30 reaches the cutoff"),
    ("missing column", lambda: lh_trials().drop(columns="latency_s"), {"cutoff_s": 30.0},
     r"missing required column\(s\) 'latency_s'"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("name,make,kwargs,pattern", LH_ERRORS, ids=[e[0] for e in LH_ERRORS])
def test_learned_helplessness_errors(tmp_path, suffix, name, make, kwargs, pattern):
    check_error(tmp_path, suffix, make(), learned_helplessness, pattern, **kwargs)


# ------------------------------------------------------------------------ open field


def square_walk(speed_cm_s=5.0, fr=10.0, duration_s=600.0, side_cm=10.0):
    """A walk around a square at constant speed: distance = speed x time exactly."""
    t = np.arange(int(duration_s * fr) + 1) / fr
    s = (speed_cm_s * t) % (4 * side_cm)
    leg, pos = np.divmod(s, side_cm)
    x = np.select([leg == 0, leg == 1, leg == 2, leg == 3], [pos, side_cm, side_cm - pos, 0])
    y = np.select([leg == 0, leg == 1, leg == 2, leg == 3], [0, pos, side_cm, side_cm - pos])
    return t, x, y


def test_binned_distance_of_a_known_path():
    t, x, y = square_walk()
    edges, dist, tracked = binned_distance(x, y, t, bin_s=60.0)
    np.testing.assert_allclose(edges, np.arange(0, 601, 60))
    np.testing.assert_allclose(dist, 300.0, rtol=1e-9)  # 5 cm/s x 60 s (corners on samples)
    np.testing.assert_allclose(tracked, 60.0)
    # a single straight step across bin edges is split in proportion to time
    edges, dist, _ = binned_distance([0.0, 100.0], [0.0, 0.0], [0.0, 10.0], bin_s=4.0)
    np.testing.assert_allclose(edges, [0, 4, 8, 10])
    np.testing.assert_allclose(dist, [40.0, 40.0, 20.0])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_open_field_locomotion(tmp_path, suffix, rng):
    t, x, y = square_walk(duration_s=300.0)
    moving = pd.DataFrame({"arm": "ket", "subject": "m1", "time_s": t, "x_cm": x, "y_cm": y})
    still = pd.DataFrame({"arm": "sal", "subject": "m2", "time_s": t,
                          "x_cm": 20 + rng.normal(0, 0.01, t.size),
                          "y_cm": 20 + rng.normal(0, 0.01, t.size)})
    lost = moving.assign(subject="m3")
    lost.loc[100:199, ["x_cm", "y_cm"]] = np.nan  # 10 s of lost tracking in the first bin
    path = tmp_path / f"of{suffix}"
    write(pd.concat([moving, still, lost]), path)
    out = open_field_locomotion(path, bin_s=60.0)
    m1 = out.loc[out["subject"] == "m1"]
    np.testing.assert_allclose(m1["distance_cm"], 300.0, rtol=1e-9)
    np.testing.assert_allclose(m1["speed_cm_per_s"], 5.0, rtol=1e-9)
    assert list(m1["bin"]) == [0, 1, 2, 3, 4]
    m2 = out.loc[out["subject"] == "m2", "distance_cm"]
    assert (m2 > 0).all() and (m2 < 100).all()  # jitter only
    filtered = open_field_locomotion(path, bin_s=60.0, min_step_cm=0.2)
    np.testing.assert_allclose(filtered.loc[filtered["subject"] == "m2", "distance_cm"], 0.0)
    m3 = out.loc[out["subject"] == "m3"]
    # 101 steps touch a missing sample: 10.1 s untracked, 50.5 cm uncounted
    assert m3["tracked_fraction"].iloc[0] == pytest.approx((60.0 - 10.1) / 60.0)
    assert m3["distance_cm"].iloc[0] == pytest.approx(300.0 - 50.5)
    np.testing.assert_allclose(m3["distance_cm"].iloc[1:], 300.0, rtol=1e-9)


OF_ERRORS = [
    ("time back", lambda df: edit(df, "time_s", 5, 0.2),
     (r"column 'time_s', row 6.*expected time_s to increase within subject 'm1', got 0.2 "
     r"after 0.4")),
    ("missing", lambda df: df.drop(columns=["y_cm"]), r"missing required column\(s\) 'y_cm'"),
    ("text", lambda df: edit(df, "x_cm", 2, "left").astype({"x_cm": str}),
     r"column 'x_cm', row 3.*expected a finite number, got 'left'"),
    ("missing time", lambda df: edit(df, "time_s", 4, None),
     r"column 'time_s', row 5.*missing value"),
    ("single sample", lambda df: pd.concat([df, df.iloc[[0]].assign(subject="m9")]),
     r"column 'time_s', row 11.*subject 'm9' has a single sample"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("name,make,pattern", OF_ERRORS, ids=[e[0] for e in OF_ERRORS])
def test_open_field_errors(tmp_path, suffix, name, make, pattern):
    df = pd.DataFrame({"subject": "m1", "time_s": np.arange(10) / 10.0,
                       "x_cm": np.arange(10.0), "y_cm": 0.0})
    check_error(tmp_path, suffix, make(df), open_field_locomotion, pattern)


# ---------------------------------------------------------------------- fear extinction


def test_freezing_per_trial_and_block():
    fr = 10.0
    freezing = np.zeros(2000, dtype=bool)
    trials = np.array([[10.0, 40.0], [50.0, 80.0], [90.0, 120.0], [130.0, 160.0],
                       [170.0, 200.0]])
    for (a, _), pct in zip(trials, (80, 60, 40, 20, 0), strict=True):
        first = int(a * fr)
        freezing[first:first + int(300 * pct / 100)] = True  # one run of pct% of 30 s
    res = freezing_per_trial(freezing, fr, trials, block_size=2)
    np.testing.assert_allclose(res.per_trial["freezing_pct"], [80, 60, 40, 20, 0])
    assert list(res.per_trial["n_frames"]) == [300] * 5
    np.testing.assert_allclose(res.per_block["freezing_pct"], [70, 30, 0])
    assert list(res.per_block["last_trial"]) == [2, 4, 5]
    # short runs are not freezing when a minimum duration is set
    flicker = freezing.copy()
    flicker[int(170 * fr):int(200 * fr):20] = True  # single frames in trial 5
    assert freezing_per_trial(flicker, fr, trials).per_trial["freezing_pct"].iloc[4] > 0
    kept = freezing_per_trial(flicker, fr, trials, min_freeze_s=1.0).per_trial
    np.testing.assert_allclose(kept["freezing_pct"], [80, 60, 40, 20, 0])
    # a recording clock that does not start at 0
    shifted = freezing_per_trial(freezing, fr, trials + 100.0, time_s0=100.0)
    np.testing.assert_allclose(shifted.per_trial["freezing_pct"], [80, 60, 40, 20, 0])


def test_freezing_errors():
    f = np.zeros(100, dtype=bool)
    with pytest.raises(ValueError, match=r"trial 2 \(5-12 s\) lies outside the recording"):
        freezing_per_trial(f, 10.0, [[0, 5], [5, 12]])
    with pytest.raises(ValueError, match="trial 1: end 2 s must be after start 3 s"):
        freezing_per_trial(f, 10.0, [[3, 2]])
    with pytest.raises(ValueError, match="bool series"):
        freezing_per_trial(f.astype(float), 10.0, [[0, 5]])
    with pytest.raises(ValueError, match=r"\(n_trials, 2\)"):
        freezing_per_trial(f, 10.0, [0, 5])


# ------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("reader", [read_tst_table, sucrose_preference, open_field_locomotion])
def test_unreadable_files(tmp_path, reader):
    with pytest.raises(BehaviorDataError, match=r"^nope.csv: file not found"):
        reader(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BehaviorDataError, match=r"^empty.csv: file is empty"):
        reader(tmp_path / "empty.csv")
    (tmp_path / "head.csv").write_text("subject,start_s,end_s,state,sucrose_g,water_g,"
                                       "time_s,x_cm,y_cm\n")
    with pytest.raises(BehaviorDataError, match=r"^head.csv: no rows"):
        reader(tmp_path / "head.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(BehaviorDataError, match=r"unknown file suffix '.xlsx'"):
        reader(tmp_path / "x.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(BehaviorDataError, match=r"^bad.parquet: cannot read parquet file"):
        reader(tmp_path / "bad.parquet")
    with pytest.raises(BehaviorDataError, match="expected a path"):
        reader(42)


@pytest.mark.parametrize("value", ["", " ", "nan", "1e400", "True", "0x10", "1,5", "\u00b5"])
def test_odd_csv_cells_raise_only_behavior_errors(tmp_path, value):
    path = tmp_path / "odd.csv"
    cell = f'"{value}"' if "," in value else value
    path.write_text(f"subject,start_s,end_s,state\nm1,0,{cell},immobile\n", encoding="utf-8")
    with pytest.raises(BehaviorDataError, match=r"^odd.csv, column 'end_s', row 1 \(line 2\)"):
        read_tst_table(path)


def test_open_field_ataxia_follows_pyramidal_shutdown():
    """F-W-18: hyperlocomotion follows interneuron block, ataxia the pyramidal shutdown
    (a steep function of pyramidal block, from the signalling layer); without it the
    speed is the hyperlocomotion rule alone."""
    from ketasim.behavior.open_field import OpenFieldParams
    from ketasim.params import load_registry

    reg = load_registry()
    op = OpenFieldParams.from_registry(reg)
    o50, n = reg.value("rec.pyramidal_shutdown_occ50"), reg.value("rec.pyramidal_shutdown_hill")
    occ = np.array([0.0, 0.9, 0.9, 0.9])
    pyr = np.array([0.0, 0.0, 0.4, 0.9])
    shut = pyr**n / (pyr**n + o50**n)
    v = op.speed(occ, shut)
    np.testing.assert_allclose(op.speed(occ[:2]), v[:2])
    assert v[1] > 2.0 * v[0]  # hyperlocomotion
    assert v[2] > 0.9 * v[1]  # a sub-anaesthetic pyramidal block barely slows
    assert v[3] < 0.5 * v[1]  # anaesthetic block: ataxia
    np.testing.assert_allclose(v[3], v[1] * (1.0 - shut[3]))
