"""Review of the lab behaviour tables (ketasim.analysis.behavior, ketasim.analysis._tables):
hand-made tables with known answers, edge cases, input validation, invariance to row order
and subject relabelling, and the lab path against the simulated path (ketasim.behavior).

The defects found in review (once marked ``xfail(strict=True, reason="BUG: ...")``) are
fixed; their tests, and tests of the fixes, now pass."""

from __future__ import annotations

import gzip
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketasim.analysis.behavior import (
    TST_LAST_4_MIN_S,
    BehaviorDataError,
    binned_distance,
    extinction_freezing,
    freezing_per_trial,
    learned_helplessness,
    open_field_locomotion,
    read_tst_table,
    score_tst,
    struggle_onsets,
    sucrose_preference,
    tst_bouts_from_frames,
    tst_bouts_from_states,
)

HYP = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.too_slow,
                                      HealthCheck.function_scoped_fixture])


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------ tail suspension


def test_tst_known_answers_window_and_latency():
    # m1: struggle 0-30, immobile 30-150, unscored 150-160, struggle 160-200,
    #     immobile 200-360.  Last 4 min (120-360): immobile 30 + 160 = 190 s.
    df = pd.DataFrame({"subject": ["m1"] * 4,
                       "start_s": [0, 30, 160, 200], "end_s": [30, 150, 200, 360],
                       "state": ["struggle", "immobile", "struggle", "immobile"]})
    full = score_tst(df).iloc[0]
    assert full["immobility_s"] == pytest.approx(280.0)
    assert full["immobility_pct"] == pytest.approx(280.0 / 360.0 * 100)
    assert full["struggle_s"] == pytest.approx(70.0)
    assert full["unscored_s"] == pytest.approx(10.0)
    assert full["latency_to_immobility_s"] == pytest.approx(30.0)
    assert (full["n_immobile_bouts"], full["n_struggle_bouts"]) == (2, 2)
    last = score_tst(df, window_s=TST_LAST_4_MIN_S).iloc[0]
    assert last["immobility_s"] == pytest.approx(190.0)
    assert last["immobility_pct"] == pytest.approx(190.0 / 240.0 * 100)
    assert last["struggle_s"] == pytest.approx(40.0)
    assert last["unscored_s"] == pytest.approx(10.0)
    # the immobile bout running into the window counts from the window start
    assert last["latency_to_immobility_s"] == pytest.approx(0.0)
    assert last["mean_immobile_bout_s"] == pytest.approx(95.0)  # clipped 30 and 160


def test_tst_subject_without_immobility_and_outside_window():
    df = pd.DataFrame({"subject": ["a", "b"], "start_s": [0, 0], "end_s": [360, 100],
                       "state": ["struggle", "immobile"]})
    s = score_tst(df, window_s=(120, 360)).set_index("subject")
    assert s.loc["a", "immobility_s"] == 0.0
    assert np.isnan(s.loc["a", "latency_to_immobility_s"])
    assert np.isnan(s.loc["a", "mean_immobile_bout_s"])
    # b's only bout is before the window: a row of zeros, all unscored, not dropped
    assert s.loc["b", "immobility_s"] == 0.0 and s.loc["b", "unscored_s"] == 240.0
    assert s.loc["b", "n_immobile_bouts"] == 0


def test_tst_subject_ids_only_unique_within_arm():
    df = pd.DataFrame({"arm": ["k", "s"], "subject": ["1", "1"], "start_s": [0, 0],
                       "end_s": [100, 200], "state": ["immobile", "immobile"]})
    s = score_tst(df)
    assert list(zip(s["arm"], s["immobility_s"], strict=True)) == [("k", 100.0), ("s", 200.0)]


@pytest.mark.parametrize("rows, column, pattern", [
    ([("m", 0, 60, "immobile"), ("m", 50, 100, "struggle")], "start_s", "overlaps"),
    ([("m", 0, 60, "immobile"), ("m", 0, 60, "immobile")], "start_s", "overlaps"),
    ([("m", 0, 60, "sleeping")], "state", "expected one of immobile, struggle"),
    ([("m", -1, 60, "immobile")], "start_s", "start >= 0"),
    ([("m", 60, 60, "immobile")], "end_s", "negative or zero length"),
    ([("m", 300, 361, "immobile")], "end_s", "beyond the test duration"),
])
def test_tst_errors_name_file_column_row(tmp_path, rows, column, pattern):
    path = tmp_path / "etho.csv"
    # a blank line after the header: rows keep their file numbers
    lines = ["subject,start_s,end_s,state", ""] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BehaviorDataError) as err:
        read_tst_table(path)
    msg = one_line(err)
    assert msg.startswith(f"etho.csv, column '{column}', row ")
    assert pattern in msg
    row = int(re.search(r"row (\d+) \(line (\d+)\)", msg)[1])
    # the blank line is file row 1: the offending (last) row is row len(rows) + 1
    assert f"(line {row + 1})" in msg and row == len(rows) + 1


def test_struggle_onsets_known():
    df = pd.DataFrame({"subject": "m", "start_s": [0, 10, 15, 40, 50],
                       "end_s": [10, 15, 40, 50, 60],
                       "state": ["struggle", "immobile", "struggle", "immobile", "struggle"]})
    on = struggle_onsets(df.iloc[::-1])
    np.testing.assert_allclose(on["onset_s"], [15, 50])
    np.testing.assert_allclose(on["preceding_immobile_s"], [5, 10])
    np.testing.assert_allclose(struggle_onsets(df, min_immobile_s=8)["onset_s"], [50])
    # an unscored gap between immobility and struggle is no onset
    gap = df.assign(start_s=[0, 10, 16, 40, 50])
    np.testing.assert_allclose(struggle_onsets(gap)["onset_s"], [50])


def test_states_min_immobile_threshold():
    # 10 Hz: immobile runs of 2 frames (0.2 s) and 3 frames (0.3 s)
    s = np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)
    e = tst_bouts_from_states(s, 10.0, min_immobile_s=0.25)
    assert list(e["state"]) == ["struggle", "immobile", "struggle"]
    np.testing.assert_allclose(e["start_s"], [0, 0.4, 0.7])
    # a run of exactly min_immobile_s is kept
    e = tst_bouts_from_states(s, 10.0, min_immobile_s=0.3)
    assert (e["state"] == "immobile").sum() == 1


def test_frames_path_equals_states_path_and_trims_to_test():
    fr = 5.0
    rng = np.random.default_rng(3)
    states = np.repeat(rng.random(90) < 0.5, 20)  # 1800 frames = 360 s
    etho = tst_bouts_from_states(states, fr, subject="m")
    # per-frame export with 4 s recorded before and 6 s after the test
    t = np.arange(-20, 1830) / fr
    imm = np.concatenate([np.zeros(20, bool), states, np.ones(30, bool)])
    frames = pd.DataFrame({"subject": "m", "time_s": t, "immobile": imm.astype(int)})
    a = score_tst(etho).drop(columns=["arm"])
    b = score_tst(tst_bouts_from_frames(frames.sample(frac=1.0, random_state=0)
                                        .sort_values("time_s"))).drop(columns=["arm"])
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-9)
    assert a["immobility_s"].iloc[0] == pytest.approx(states.sum() / fr)


def test_frames_out_of_order_and_repeated_times_raise(tmp_path):
    frames = pd.DataFrame({"subject": "m", "time_s": [0.0, 0.2, 0.1, 0.3],
                           "immobile": [1, 0, 1, 1]})
    path = tmp_path / "fr.csv"
    frames.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^fr.csv, column 'time_s', row 3 \(line 4\)"
                       r".*increase"):
        tst_bouts_from_frames(path)
    with pytest.raises(BehaviorDataError, match="row 2.*increase"):
        tst_bouts_from_frames(frames.assign(time_s=[0.0, 0.0, 0.1, 0.2]))
    with pytest.raises(BehaviorDataError, match="immobile.*row 2.*boolean"):
        tst_bouts_from_frames(frames.assign(time_s=[0, 1, 2, 3.0], immobile=[1, 2, 0, 0]))


@st.composite
def ethograms(draw):
    n_sub = draw(st.integers(1, 4))
    rows = []
    for k in range(n_sub):
        cuts = sorted(set(draw(st.lists(st.integers(1, 359), min_size=0, max_size=8))))
        edges = [0, *cuts, 360]
        for a, b in itertools.pairwise(edges):
            state = draw(st.sampled_from(["immobile", "struggle", None]))
            if state is not None:
                rows.append((f"s{k}", float(a), float(b), state))
    if not rows:
        rows.append(("s0", 0.0, 1.0, "immobile"))
    return pd.DataFrame(rows, columns=["subject", "start_s", "end_s", "state"])


@HYP
@given(df=ethograms(), seed=st.integers(0, 2**31 - 1),
       w=st.sampled_from([(0.0, 360.0), (120.0, 360.0), (30.0, 200.0)]))
def test_tst_invariant_to_row_order_and_relabelling(df, seed, w):
    rng = np.random.default_rng(seed)
    base = score_tst(df, window_s=w).set_index("subject")
    labels = sorted(df["subject"].unique())
    new = dict(zip(labels, rng.permutation([f"Z{i * 7}" for i in range(len(labels))]),
                   strict=True))
    shuffled = df.iloc[rng.permutation(len(df))].assign(
        subject=lambda d: d["subject"].map(new))
    other = score_tst(shuffled, window_s=w).set_index("subject")
    other.index = other.index.map({v: k for k, v in new.items()})
    pd.testing.assert_frame_equal(base.sort_index(), other.loc[base.index].sort_index(),
                                  check_exact=False, atol=1e-9)
    # immobility from the definition: immobile time clipped to the window
    for sj, g in df.groupby("subject"):
        g = g[g["state"] == "immobile"]
        imm = (np.clip(g["end_s"], *w) - np.clip(g["start_s"], *w)).sum()
        assert base.loc[sj, "immobility_s"] == pytest.approx(imm)
        assert base.loc[sj, "immobility_pct"] == pytest.approx(imm / (w[1] - w[0]) * 100)


def test_abutting_same_state_bouts_score_as_one_bout():
    split = pd.DataFrame({"subject": "m", "start_s": [0, 50, 100], "end_s": [50, 100, 120],
                          "state": ["immobile", "immobile", "struggle"]})
    states = np.r_[np.ones(100, bool), np.zeros(20, bool)]
    merged = tst_bouts_from_states(states, 1.0, subject="m")
    a, b = score_tst(split).iloc[0], score_tst(merged).iloc[0]
    assert a["n_immobile_bouts"] == b["n_immobile_bouts"] == 1
    assert a["mean_immobile_bout_s"] == b["mean_immobile_bout_s"] == 100.0
    assert len(struggle_onsets(split, min_immobile_s=60)) == 1
    # touching struggle bouts likewise (one run of equal states is one bout); a gap
    # between two immobile bouts keeps them apart
    both = pd.DataFrame({"subject": "m", "start_s": [0, 50, 100, 110, 130],
                         "end_s": [50, 100, 110, 120, 140],
                         "state": ["immobile", "immobile", "struggle", "struggle",
                                   "immobile"]})
    c = score_tst(both).iloc[0]
    assert (c["n_immobile_bouts"], c["n_struggle_bouts"]) == (2, 1)
    assert c["mean_struggle_bout_s"] == 20.0 and c["immobility_s"] == 110.0
    np.testing.assert_allclose(struggle_onsets(both)["preceding_immobile_s"], [100.0])


# ------------------------------------------------------------------ sucrose preference


def test_sucrose_known_values_and_units():
    df = pd.DataFrame({"arm": ["a", "a", "b"], "subject": ["1", "2", "1"],
                       "sucrose_g": [3.0, 0.0, 6.5], "water_g": [1.0, 2.0, 0.0],
                       "note": ["x", "y", "z"]})
    out = sucrose_preference(df)
    np.testing.assert_allclose(out["preference"], [0.75, 0.0, 1.0])
    np.testing.assert_allclose(out["preference_pct"], [75.0, 0.0, 100.0])
    np.testing.assert_allclose(out["total"], [4.0, 2.0, 6.5])
    assert list(out["anhedonic"]) == [False, True, False]
    assert list(out["note"]) == ["x", "y", "z"]  # extras stay with their rows
    ml = df.rename(columns={"sucrose_g": "sucrose_ml", "water_g": "water_ml"})
    np.testing.assert_allclose(sucrose_preference(ml)["preference"], out["preference"])
    # exactly at the threshold is not anhedonic (preference < threshold)
    at = pd.DataFrame({"subject": ["1"], "sucrose_g": [0.65], "water_g": [0.35]})
    assert not sucrose_preference(at, anhedonia_threshold=0.65)["anhedonic"].iloc[0]


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d.assign(sucrose_g=[0.0, 1.0], water_g=[0.0, 1.0]),
     r"column 'water_g', row 1.*zero total intake"),
    (lambda d: d.assign(water_g=[np.nan, 1.0]), r"column 'water_g', row 1.*missing value"),
    (lambda d: d.assign(sucrose_g=[1.0, -0.1]), r"column 'sucrose_g', row 2.*>= 0"),
    (lambda d: d.assign(subject=["m", "m"]), r"column 'subject', row 2.*duplicate.*row 1"),
    (lambda d: d.assign(water_ml=[1.0, 1.0]), r"both g and ml"),
    (lambda d: d.drop(columns=["water_g"]), r"missing required column 'water_g'"),
    (lambda d: d.assign(sucrose_g=["1", "lots"]), r"column 'sucrose_g', row 2.*'lots'"),
])
def test_sucrose_errors(tmp_path, edit, pattern):
    df = edit(pd.DataFrame({"subject": ["m", "n"], "sucrose_g": [2.0, 1.0],
                            "water_g": [1.0, 1.0]}))
    path = tmp_path / "spt.csv"
    df.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^spt.csv.*" + pattern) as err:
        sucrose_preference(path)
    one_line(err)


@pytest.mark.parametrize("text, expected", [
    ("subject;sucrose_g;water_g\nm1;3,5;1,5\nm2;1;1\n", [0.7, 0.5]),  # decimal comma
    ("subject;sucrose_g;water_g\nm1;1.500;0.500\nm2;1;1\n", [0.75, 0.5]),  # ';' + point
    ("subject\tsucrose_g\twater_g\nm1\t3\t1\nm2\t1\t1\n", [0.75, 0.5]),
])
def test_sucrose_csv_dialects(tmp_path, text, expected):
    path = tmp_path / "spt.csv"
    path.write_text(text)
    np.testing.assert_allclose(sucrose_preference(path)["preference"], expected)
    gz = tmp_path / "spt.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    np.testing.assert_allclose(sucrose_preference(gz)["preference"], expected)


@HYP
@given(n=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_sucrose_invariant_to_row_order_and_relabelling(n, seed):
    rng = np.random.default_rng(seed)
    s, w = rng.uniform(0, 10, n), rng.uniform(0.01, 10, n)
    df = pd.DataFrame({"subject": [f"m{i}" for i in range(n)], "sucrose_ml": s,
                       "water_ml": w})
    base = sucrose_preference(df).set_index("subject")["preference"]
    np.testing.assert_allclose(base.loc[df["subject"]], s / (s + w), rtol=1e-12)
    perm = rng.permutation(n)
    relabel = {f"m{i}": f"q{p}" for i, p in enumerate(rng.permutation(n))}
    other = sucrose_preference(df.iloc[perm].assign(
        subject=lambda d: d["subject"].map(relabel))).set_index("subject")["preference"]
    back = {v: k for k, v in relabel.items()}
    other.index = other.index.map(back)
    pd.testing.assert_series_equal(base.sort_index(), other.sort_index(), rtol=0, atol=0)


# ---------------------------------------------------------------- learned helplessness


def test_learned_helplessness_known_counts():
    # m1: 6 failures in 15 (latency == cutoff), m2: 2 failures flagged by escaped=False
    lat1 = [20.0] * 6 + [5.0] * 9
    lat2 = [20.0, 20.0] + [2.0] * 13
    df = pd.DataFrame({"subject": ["m1"] * 15 + ["m2"] * 15, "trial": list(range(1, 16)) * 2,
                       "latency_s": lat1 + lat2})
    out = learned_helplessness(df, cutoff_s=20.0, n_trials=15).set_index("subject")
    assert out.loc["m1", "n_failures"] == 6 and out.loc["m1", "helpless"]
    assert out.loc["m1", "failure_pct"] == pytest.approx(40.0)
    assert out.loc["m1", "mean_latency_s"] == pytest.approx((6 * 20 + 9 * 5) / 15)
    assert out.loc["m2", "n_failures"] == 2 and not out.loc["m2", "helpless"]
    # the same with an escaped column and a per-trial cutoff column
    df2 = df.assign(escaped=df["latency_s"] < 20, cutoff_s=20.0)
    pd.testing.assert_frame_equal(learned_helplessness(df2).set_index("subject"), out)
    # a latency a hair under the cutoff is an escape, one a hair over a failure at cutoff
    edge = pd.DataFrame({"subject": "m", "trial": [1, 2],
                         "latency_s": [20.0 - 1e-3, 20.0 + 1e-7]})
    e = learned_helplessness(edge, cutoff_s=20.0).iloc[0]
    assert e["n_failures"] == 1 and e["mean_latency_s"] == pytest.approx((20 - 1e-3 + 20) / 2)


@pytest.mark.parametrize("edit, kwargs, pattern", [
    (lambda d: d.assign(latency_s=[1.0, 25.0]), {"cutoff_s": 20}, r"'latency_s', row 2.*beyond"),
    (lambda d: d.assign(latency_s=[-1.0, 2.0]), {"cutoff_s": 20}, r"'latency_s', row 1.*>= 0"),
    (lambda d: d.assign(trial=[1, 1]), {"cutoff_s": 20}, r"'trial', row 2.*duplicate"),
    (lambda d: d, {}, r"no cutoff"),
    (lambda d: d.assign(escaped=["yes", "maybe"]), {"cutoff_s": 20}, r"'escaped', row 2"),
    (lambda d: d.assign(escaped=[True, True], latency_s=[1.0, 20.0]), {"cutoff_s": 20},
     r"'escaped', row 2.*reaches the cutoff"),
    (lambda d: d, {"cutoff_s": 20, "n_trials": 15}, r"'trial'.*2 trials, expected 15"),
])
def test_learned_helplessness_errors(tmp_path, edit, kwargs, pattern):
    df = edit(pd.DataFrame({"subject": ["m", "m"], "trial": [1, 2], "latency_s": [1.0, 2.0]}))
    path = tmp_path / "lh.csv"
    df.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^lh.csv.*" + pattern) as err:
        learned_helplessness(path, **kwargs)
    one_line(err)


@HYP
@given(seed=st.integers(0, 2**31 - 1), n_sub=st.integers(1, 5))
def test_learned_helplessness_invariant_to_row_order(seed, n_sub):
    rng = np.random.default_rng(seed)
    rows = [(f"m{s}", k, float(rng.choice([20.0, rng.uniform(0, 19)])))
            for s in range(n_sub) for k in range(1, 16)]
    df = pd.DataFrame(rows, columns=["subject", "trial", "latency_s"])
    a = learned_helplessness(df, cutoff_s=20.0)
    b = learned_helplessness(df.iloc[rng.permutation(len(df))], cutoff_s=20.0)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    fails = df.assign(f=df["latency_s"] >= 20).groupby("subject")["f"].sum()
    assert list(a["n_failures"]) == list(fails.loc[a["subject"]])


def test_failure_counted_at_cutoff_in_mean_latency():
    df = pd.DataFrame({"subject": "m", "trial": [1, 2], "latency_s": [10.0, 4.0],
                       "escaped": [False, True]})
    out = learned_helplessness(df, cutoff_s=20.0).iloc[0]
    assert out["n_failures"] == 1
    assert out["mean_latency_s"] == pytest.approx((20.0 + 4.0) / 2)
    # the same with the cutoff as a column
    col = learned_helplessness(df.assign(cutoff_s=20.0)).iloc[0]
    assert col["mean_latency_s"] == pytest.approx(12.0)


def test_cutoff_argument_and_column_both_given_is_an_error(tmp_path):
    path = tmp_path / "lh.csv"
    pd.DataFrame({"subject": "m", "trial": [1, 2], "latency_s": [3.0, 20.0],
                  "cutoff_s": [20.0, 20.0]}).to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^lh.csv, column 'cutoff_s': a cutoff_s "
                       r"column and the argument cutoff_s=30.0 both given") as err:
        learned_helplessness(path, cutoff_s=30.0)
    one_line(err)
    assert learned_helplessness(path)["n_failures"].iloc[0] == 1  # the column alone


# --------------------------------------------------------------------- open field


def test_binned_distance_known_track():
    # 3-4-5 steps at 1 s: each step is 5 cm; a missing sample kills the two steps around it
    x = np.array([0.0, 3.0, 6.0, 9.0, 12.0, 15.0])
    y = np.array([0.0, 4.0, 8.0, 12.0, 16.0, 20.0])
    t = np.arange(6.0)
    edges, dist, tracked = binned_distance(x, y, t, bin_s=2.0)
    np.testing.assert_allclose(edges, [0, 2, 4, 5])
    np.testing.assert_allclose(dist, [10, 10, 5])
    np.testing.assert_allclose(tracked, [2, 2, 1])
    xn = x.copy()
    xn[2] = np.nan
    _, dist, tracked = binned_distance(xn, y, t, bin_s=2.0)
    np.testing.assert_allclose(dist, [5, 5, 5])
    np.testing.assert_allclose(tracked, [1, 1, 1])
    # a half-bin step split in proportion to time; a span past the samples adds nothing
    edges, dist, tracked = binned_distance([0.0, 10.0], [0.0, 0.0], [0.0, 4.0], bin_s=3.0,
                                           start_s=-2.0, end_s=7.0)
    np.testing.assert_allclose(edges, [-2, 1, 4, 7])
    np.testing.assert_allclose(dist, [2.5, 7.5, 0.0])
    np.testing.assert_allclose(tracked, [1, 3, 0])
    # jitter filter: steps shorter than min_step_cm add nothing
    _, dist, _ = binned_distance([0, 0.1, 0.2, 5.2], [0, 0, 0, 0], [0, 1, 2, 3.0],
                                 bin_s=10.0, min_step_cm=0.5)
    np.testing.assert_allclose(dist, [5.0])


@pytest.mark.parametrize("t, pattern", [
    ([0.0, 1.0, 1.0], "strictly increasing"), ([0.0, 2.0, 1.0], "strictly increasing"),
    ([0.0, np.nan, 2.0], "finite")])
def test_binned_distance_bad_times(t, pattern):
    with pytest.raises(ValueError, match=pattern):
        binned_distance([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], t)


def test_open_field_table_known_answer_and_errors(tmp_path):
    a = pd.DataFrame({"subject": "a", "time_s": np.arange(7.0),
                      "x_cm": [0, 3, 6, 9, 12, 15, 18.0], "y_cm": [0, 4, 8, 12, 16, 20, 24.0]})
    b = pd.DataFrame({"subject": "b", "time_s": np.arange(7.0) * 0.5, "x_cm": 0.0,
                      "y_cm": np.arange(7.0)})
    both = pd.concat([a, b]).sort_values("time_s", kind="stable")  # rows interleaved
    path = tmp_path / "of.csv"
    both.to_csv(path, index=False)
    out = open_field_locomotion(path, bin_s=3.0)
    ra = out[out["subject"] == "a"]
    np.testing.assert_allclose(ra["distance_cm"], [15, 15])
    np.testing.assert_allclose(ra["speed_cm_per_s"], [5, 5])
    rb = out[out["subject"] == "b"]
    np.testing.assert_allclose(rb["distance_cm"], [6.0])
    np.testing.assert_allclose(rb["bin_end_s"], [3.0])
    # repeated timestamp within a subject: one error naming file, column and row
    rep = pd.concat([a, a.iloc[[3]]]).sort_values("time_s", kind="stable")
    rep.to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^of.csv, column 'time_s', row 5 \(line 6\)"
                       r".*increase within subject 'a'") as err:
        open_field_locomotion(path)
    one_line(err)


def test_open_field_untracked_subject_is_nan_not_zero():
    """A never-tracked subject (or bin) has no known distance: NaN, not 0 cm."""
    tr = pd.DataFrame({"subject": "m", "time_s": np.arange(5.0), "x_cm": np.nan,
                       "y_cm": np.nan})
    out = open_field_locomotion(tr, bin_s=10.0)
    assert len(out) == 1 and out["tracked_fraction"].iloc[0] == 0.0
    assert np.isnan(out["distance_cm"].iloc[0]) and np.isnan(out["speed_cm_per_s"].iloc[0])
    # lost for a whole bin only: that bin NaN, the others measured
    part = pd.DataFrame({"subject": "m", "time_s": np.arange(9.0), "y_cm": 0.0,
                         "x_cm": [0, 1, 2, 3, np.nan, np.nan, np.nan, 7, 8]})
    out = open_field_locomotion(part, bin_s=2.0)
    np.testing.assert_allclose(out["distance_cm"], [2.0, 1.0, np.nan, 1.0])


@HYP
@given(seed=st.integers(0, 2**31 - 1), bin_s=st.floats(0.3, 20.0), n=st.integers(2, 40))
def test_open_field_bins_add_up_to_path_length(seed, bin_s, n):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.05, 1.0, n))
    x, y = rng.normal(0, 10, n), rng.normal(0, 10, n)
    length = np.hypot(np.diff(x), np.diff(y)).sum()
    df = pd.DataFrame({"subject": "s", "time_s": t, "x_cm": x, "y_cm": y})
    other = df.assign(subject="r", x_cm=x + 100.0)  # translation: same path length
    both = pd.concat([df, other]).iloc[rng.permutation(2 * n)]
    both = both.sort_values("time_s", kind="stable")  # within-subject order kept
    out = open_field_locomotion(both, bin_s=bin_s)
    for sj in ("s", "r"):
        d = out[out["subject"] == sj]
        assert d["distance_cm"].sum() == pytest.approx(length, rel=1e-9)
        np.testing.assert_allclose(d["tracked_fraction"], 1.0, atol=1e-9)
        assert d["bin_start_s"].iloc[0] == pytest.approx(t[0])
        assert d["bin_end_s"].iloc[-1] == pytest.approx(t[-1])


# --------------------------------------------------------------------- fear extinction


def test_extinction_per_trial_known_and_errors(tmp_path):
    df = pd.DataFrame({"subject": ["a"] * 6 + ["b"] * 6, "trial": list(range(1, 7)) * 2,
                       "freezing_pct": [90, 80, 70, 60, 50, 40, 10, 10, 10, 10, 10, 10.0]})
    out = extinction_freezing(df.iloc[::-1], last=3).set_index("subject")
    assert out.loc["a", "freezing_last_pct"] == pytest.approx(50.0)
    assert out.loc["a", "extinction_freezing_fraction"] == pytest.approx(0.5)
    assert out.loc["b", "freezing_last_pct"] == pytest.approx(10.0)
    path = tmp_path / "fz.csv"
    for edit, pattern in [
            (lambda d: d.assign(freezing_pct=[120.0] + [1.0] * 11), r"'freezing_pct', row 1"),
            (lambda d: d.assign(trial=[0] + list(range(2, 7)) + list(range(1, 7))),
             r"'trial', row 1"),
            (lambda d: d.assign(trial=[1, 1, 3, 4, 5, 6] * 2), r"'trial', row 2.*duplicate"),
            (lambda d: d, r"'trial'.*6 trials, fewer than the 7")]:
        edit(df).to_csv(path, index=False)
        with pytest.raises(BehaviorDataError, match=r"^fz.csv.*" + pattern):
            extinction_freezing(path, last=7 if "fewer" in pattern else 3)


def test_extinction_per_frame_matches_simulated_layout():
    # 1 Hz, as the simulated session: tone k at 30 + 60 k for 30 s, 20 tones
    starts = np.arange(20) * 60 + 30
    n = int(starts[-1] + 30 + 1)
    f = np.zeros(n, bool)
    for k, a in enumerate(starts):
        f[a:a + 30 - k] = True  # 30 - k frozen seconds in tone k
    direct = freezing_per_trial(f, 1.0, np.stack([starts, starts + 30], 1))
    expected = direct.per_trial["freezing_pct"].to_numpy()[-5:].mean()
    frames = pd.DataFrame({"subject": "m", "time_s": np.arange(n, dtype=float),
                           "freezing": f.astype(int)})
    got = extinction_freezing(frames).iloc[0]
    assert got["n_trials"] == 20
    assert got["freezing_last_pct"] == pytest.approx(expected)
    assert expected == pytest.approx(np.mean([30 - k for k in range(15, 20)]) / 30 * 100)


def test_extinction_late_clock_is_a_named_behavior_error(tmp_path):
    path = tmp_path / "late.csv"
    pd.DataFrame({"subject": "m", "time_s": 100.0 + np.arange(2000.0),
                  "freezing": 0}).to_csv(path, index=False)
    with pytest.raises(BehaviorDataError, match=r"^late.csv, column 'time_s', row 1 "
                       r"\(line 2\): subject 'm': the recording starts at 100 s, after the "
                       r"start of trial 1") as err:
        extinction_freezing(path)
    one_line(err)


def test_extinction_accepts_ms_rounded_30hz_clock():
    n = 30 * 20 * 60 + 30 * 60
    k = np.arange(n)
    f = (k // 15) % 2 == 0
    exact = pd.DataFrame({"subject": "m", "time_s": k / 30.0, "freezing": f.astype(int)})
    rounded = exact.assign(time_s=np.round(k / 30.0, 3))
    a = extinction_freezing(exact).iloc[0]["freezing_last_pct"]
    b = extinction_freezing(rounded).iloc[0]["freezing_last_pct"]
    assert b == pytest.approx(a, abs=1.0)


@pytest.mark.parametrize("edit", [
    lambda t: t + np.random.default_rng(0).uniform(-0.004, 0.004, t.size),  # 4 ms jitter
    lambda t: np.where(np.arange(t.size) >= 5000, t + 1 / 30.0, t),  # a dropped frame
    lambda t: np.where(np.arange(t.size) == 700, t + 0.002, t),  # one frame 2 ms off
])
def test_extinction_still_refuses_irregular_clocks(edit):
    k = np.arange(30 * 20 * 60 + 30 * 60)
    frames = pd.DataFrame({"subject": "m", "time_s": edit(np.round(k / 30.0, 3)),
                           "freezing": 0})
    with pytest.raises(BehaviorDataError, match="regular clock"):
        extinction_freezing(frames)


def test_extinction_gap_in_trials_not_silent():
    df = pd.DataFrame({"subject": "m", "trial": [1, 2, 3, 4, 5, 7],
                       "freezing_pct": [10, 20, 30, 40, 50, 60.0]})
    with pytest.raises(BehaviorDataError, match=r"subject 'm': trial 6 missing") as err:
        extinction_freezing(df, last=5)
    one_line(err)
    # a table not starting at trial 1 is a gap too
    with pytest.raises(BehaviorDataError, match=r"trial 1 missing"):
        extinction_freezing(df.assign(trial=[2, 3, 4, 5, 6, 7]), last=5)


@HYP
@given(seed=st.integers(0, 2**31 - 1))
def test_extinction_invariant_to_row_order_and_relabelling(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"subject": np.repeat(["a", "b", "c"], 8),
                       "trial": np.tile(np.arange(1, 9), 3),
                       "freezing_pct": rng.uniform(0, 100, 24)})
    base = extinction_freezing(df).set_index("subject")
    m = dict(zip("abc", rng.permutation(["x", "y", "z"]), strict=True))
    other = extinction_freezing(df.iloc[rng.permutation(24)].assign(
        subject=lambda d: d["subject"].map(m))).set_index("subject")
    other.index = other.index.map({v: k for k, v in m.items()})
    pd.testing.assert_frame_equal(base, other.sort_index(), check_exact=False, rtol=1e-12)


# ------------------------------------------------- lab path against simulated path


def _ctx(n, options, registry, trajectory=None, assay="a"):
    from ketasim.core.assay import AssayContext
    return AssayContext(seed=1, arm="arm", assay=assay, subjects=np.arange(n),
                        species="mouse", options=options, trajectory=trajectory,
                        registry=registry)


def test_simulated_sucrose_keeps_each_subjects_value():
    from ketasim.behavior.assays import _sucrose
    from ketasim.behavior.sucrose import SucroseParams
    from ketasim.params.registry import load_registry

    reg = load_registry().with_values({"behavior.sucrose.pref_sd": 0.0})
    n = 12
    stress = np.linspace(0.0, 1.0, n)

    def traj(name, times):
        if name == "stress_load":
            return np.repeat(stress[:, None], len(times), axis=1)
        return np.zeros((n, len(times)))

    rows = _sucrose(_ctx(n, {"hours": 12.0}, reg, traj), np.array([24.0]))
    want = SucroseParams.from_registry(reg).preference(stress, np.zeros(n))
    np.testing.assert_allclose(rows.value, np.clip(want, 0.01, 0.99), rtol=1e-9)


def test_simulated_escape_keeps_each_subjects_value(monkeypatch):
    from ketasim.behavior import assays
    from ketasim.params.registry import load_registry

    n = 12
    activity = np.full((n, 1), 2.0)  # far above c50: never fails
    activity[10] = 0.0  # far below: always fails
    monkeypatch.setattr(assays, "prefrontal_activity", lambda ctx, at, purpose: activity)
    reg = load_registry().with_values({"behavior.helplessness.p_fail_min": 0.0,
                                       "behavior.helplessness.p_fail_max": 1.0})
    rows = assays._helplessness(_ctx(n, {"trials": 10, "cutoff_s": 20.0}, reg),
                                np.array([24.0]))
    want = np.zeros(n)
    want[10] = 1.0
    np.testing.assert_allclose(rows.value, want)


def test_simulated_sucrose_independent_of_chunking():
    from ketasim.experiment.runner import simulate
    from ketasim.params.registry import load_registry
    from ketasim.scenario import load_scenario_text

    text = """
name: sp
species: mouse
seed: 3
arms:
  - name: a
    n: 16
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: sucrose_preference, at: [24h]}]
"""
    reg = load_registry()
    a = simulate(load_scenario_text(text), registry=reg, chunk_subjects=16).readouts
    b = simulate(load_scenario_text(text), registry=reg, chunk_subjects=8).readouts
    key = ["arm", "subject", "time_h", "readout"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                  b.sort_values(key).reset_index(drop=True))


def test_simulated_and_lab_definitions_agree():
    """Same formulas on both paths: preference = sucrose / total; escape failure fraction =
    failures / trials with failures at the cutoff; immobility from per-frame states with
    no minimum bout (both tst_bouts_from_states and tst_bouts_from_frames keep every run);
    TST window = the whole 360 s test in both (score_tst's default and the assay's)."""
    from ketasim.params.registry import load_registry

    reg = load_registry()
    assert reg.group("behavior.tst", ("duration_s",))["duration_s"] == 360.0
    # escape: the simulated rows (escaped flag, latency at cutoff) score as the lab's
    sim_rows = pd.DataFrame({"subject": "1", "trial": [1, 2, 3, 4],
                             "latency_s": [20.0, 3.0, 20.0, 7.0],
                             "escaped": [False, True, False, True]})
    lab_rows = sim_rows.drop(columns=["escaped"])
    a = learned_helplessness(sim_rows, cutoff_s=20.0)
    b = learned_helplessness(lab_rows, cutoff_s=20.0)
    pd.testing.assert_frame_equal(a, b)
    assert a["failure_pct"].iloc[0] / 100 == 0.5


def test_analyze_sucrose_days_are_not_pseudo_replicates(tmp_path):
    import yaml

    from ketasim.analyze.run import analyze

    suc = pd.DataFrame({"subject": np.repeat(["m1", "m2", "m3", "m4"], 2), "day": [1, 2] * 4,
                        "sucrose_g": [8, 2, 9, 9, 5, 5, 4, 4],
                        "water_g": [2, 8, 1, 1, 5, 5, 6, 6]})
    suc.to_csv(tmp_path / "sucrose.csv", index=False)
    d = {"name": "beh", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
         "sessions": {"test": "1d"},
         "files": [{"path": str(tmp_path / "sucrose.csv"), "session": "test"}],
         "compare": [{"readout": "sucrose_preference", "at": "test", "arms": ["ket", "sal"]}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(d))
    out = analyze("behavior", [tmp_path / "sucrose.csv"], tmp_path / "d.yaml",
                  tmp_path / "out")
    stats = pd.read_csv(out / "stats.csv")
    assert stats["n"].iloc[0] == "2;2"
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("sucrose_preference: each animal's mean over its days" in n for n in notes)
    r = pd.read_parquet(out / "readouts.parquet")
    assert len(r) == 4  # one value per animal
    assert sorted(r["value"]) == pytest.approx([0.4, 0.5, 0.5, 0.9])


def test_simulated_per_subject_values_independent_of_chunking():
    """Each mouse of a 16-mouse arm keeps its own sucrose preference and escape failure
    fraction whatever chunk_subjects is (scores merged back on the subject id: with
    chunks of 16, ids 10-15 sort as text before 2-9)."""
    from ketasim.experiment.runner import simulate
    from ketasim.params.registry import load_registry
    from ketasim.scenario import load_scenario_text

    text = """
name: chunks
species: mouse
seed: 5
arms:
  - name: a
    n: 16
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays:
      - {assay: sucrose_preference, at: [24h]}
      - {assay: escape_test, at: [24h], options: {minutes: 0.2, trials: 15}}
"""
    reg = load_registry()
    key = ["arm", "subject", "assay", "readout", "time_h"]
    runs = {c: simulate(load_scenario_text(text), registry=reg, chunk_subjects=c)
            .readouts.sort_values(key).reset_index(drop=True) for c in (4, 8, 16)}
    assert set(runs[16]["assay"]) == {"sucrose_preference", "escape_test"}
    assert runs[16]["subject"].nunique() == 16
    for c in (4, 8):
        pd.testing.assert_frame_equal(runs[c], runs[16])
    # and the values differ between mice (a shuffle would not be invisible)
    assert runs[16].loc[runs[16]["assay"] == "sucrose_preference", "value"].nunique() == 16


def _open_field_design(tmp_path, tracks: pd.DataFrame, options=None):
    import yaml

    tracks.to_csv(tmp_path / "of.csv", index=False)
    d = {"name": "of", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
         "files": [{"path": str(tmp_path / "of.csv"), "time": "1d"}],
         "compare": [{"readout": "distance_cm", "at": "1d", "arms": ["ket", "sal"]}]}
    if options:
        d["options"] = options
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(d))
    return tmp_path / "d.yaml"


def _straight_tracks(speeds, duration_s=600.0):
    """1 Hz tracks of mice running straight at ``speeds`` (cm/s), from time 10 s."""
    t = 10.0 + np.arange(duration_s + 1)
    return pd.concat([pd.DataFrame({"subject": f"m{i}", "time_s": t,
                                    "x_cm": v * (t - t[0]), "y_cm": 0.0})
                      for i, v in enumerate(speeds, start=1)], ignore_index=True)


def test_analyze_open_field_uses_the_simulated_window(tmp_path):
    """The lab distance_cm is the distance in the simulated readout's window (bin_min,
    5 min) from each track's first sample, not the whole file; options.bin_s sets it, and
    the notes say which window was used."""
    from ketasim.analyze.run import analyze
    from ketasim.behavior.assays import OPEN_FIELD

    assert OPEN_FIELD.options["bin_min"] * 60.0 == 300.0
    tracks = _straight_tracks([2.0, 3.0, 1.0, 1.5])  # 10-min files
    out = analyze("behavior", [tmp_path / "of.csv"], _open_field_design(tmp_path, tracks),
                  tmp_path / "o1")
    r = pd.read_parquet(out / "readouts.parquet").sort_values("subject")
    np.testing.assert_allclose(r["value"], [600.0, 900.0, 300.0, 450.0])  # 300 s each
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("the distance in the first 300 s of each track" in n for n in notes)
    out = analyze("behavior", [tmp_path / "of.csv"],
                  _open_field_design(tmp_path, tracks, {"bin_s": 600}), tmp_path / "o2")
    r = pd.read_parquet(out / "readouts.parquet").sort_values("subject")
    np.testing.assert_allclose(r["value"], [1200.0, 1800.0, 600.0, 900.0])
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("the first 600 s" in n for n in notes)
    # a track shorter than the window: the distance over what it covers, with a note
    short = _straight_tracks([2.0, 3.0, 1.0, 1.5], duration_s=120.0)
    out = analyze("behavior", [tmp_path / "of.csv"], _open_field_design(tmp_path, short),
                  tmp_path / "o3")
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("shorter than the 300 s window" in n and "m1 at 24 h (120 s)" in n
               for n in notes)


def test_analyze_open_field_untracked_animal_left_out_with_a_note(tmp_path):
    from ketasim.analyze.run import analyze

    tracks = _straight_tracks([2.0, 3.0, 1.0, 1.5, 1.0])
    tracks = tracks[tracks["subject"] != "m5"]
    lost = tracks["subject"] == "m2"
    tracks.loc[lost, ["x_cm", "y_cm"]] = np.nan
    out = analyze("behavior", [tmp_path / "of.csv"], _open_field_design(tmp_path, tracks),
                  tmp_path / "o")
    r = pd.read_parquet(out / "readouts.parquet").sort_values("subject")
    assert np.isnan(r["value"].iloc[1]) and np.isfinite(r["value"]).sum() == 3
    assert pd.read_csv(out / "stats.csv")["n"].iloc[0] == "1;2"
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("never tracked in the window" in n and "m2 at 24 h" in n for n in notes)
