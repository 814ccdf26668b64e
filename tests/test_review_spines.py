"""Review of the dendritic-spine analysis (ketasim.analysis.tracking / spines / segments):
hand-computed tiny tracking and per-segment tables, edge cases, input validation,
invariances (hypothesis), and an independent recomputation of the deposited
Phoumthipphavong et al. 2016 tables by the README's own pandas snippets.

The bugs the review found (once marked ``xfail(strict=True)``) are fixed; their tests
pass, next to tests of the fixes' edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketasim.analysis import segments as G
from ketasim.analysis import spines as S
from ketasim.analysis.tracking import (
    TrackingTableError,
    presence_matrix,
    read_tracking_table,
    sessions,
)

COLS = ["arm", "subject", "branch", "spine_id", "time_h", "position_um", "present",
        "branch_length_um"]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "phoumthipphavong2016"
HYP = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def track(rows) -> pd.DataFrame:
    return read_tracking_table(pd.DataFrame(rows, columns=COLS))


def spine(arm, sub, br, sid, times, pos, length, absent=()):
    """Rows of one spine present at ``times`` (and explicitly absent at ``absent``)."""
    out = [(arm, sub, br, sid, float(t), float(pos), True, float(length)) for t in times]
    out += [(arm, sub, br, sid, float(t), float(pos), False, float(length)) for t in absent]
    return out


def by_branch(df: pd.DataFrame, branch: str) -> pd.Series:
    return df.loc[df["branch"] == branch].iloc[0]


# ------------------------------------------------------------------- a tiny table
# branch d1 (50 um) imaged at 0, 24, 48, 72 h:
#   A present always; B present 0, 24 (eliminated 24->48); C new at 48, stays;
#   D present 0, gone at 24, back at 48 (reappears), gone at 72; E new at 72.
# branch d2 (20 um) imaged at 0 and 48 only (missed at 24): P at 0 and 48, Q new at 48.
def tiny_rows():
    r = []
    r += spine("a", "m1", "d1", "A", (0, 24, 48, 72), 5, 50)
    r += spine("a", "m1", "d1", "B", (0, 24), 10, 50)
    r += spine("a", "m1", "d1", "C", (48, 72), 20, 50)
    r += spine("a", "m1", "d1", "D", (0, 48), 30, 50, absent=(24,))
    r += spine("a", "m1", "d1", "E", (72,), 40, 50)
    r += spine("a", "m1", "d2", "P", (0, 48), 1, 20)
    r += spine("a", "m1", "d2", "Q", (48,), 2, 20)
    return r


@pytest.fixture(scope="module")
def tiny():
    return track(tiny_rows())


def test_density_per_10um_by_hand(tiny):
    d = S.density_per_10um(tiny)
    d1 = d[d["branch"] == "d1"]
    assert d1["time_h"].tolist() == [0, 24, 48, 72]
    assert d1["n_present"].tolist() == [3, 2, 3, 3]  # {A,B,D} {A,B} {A,C,D} {A,C,E}
    np.testing.assert_allclose(d1["density_per_10um"], [0.6, 0.4, 0.6, 0.6])
    d2 = d[d["branch"] == "d2"]
    assert d2["time_h"].tolist() == [0, 48]  # not imaged at 24: no row, not a zero
    np.testing.assert_allclose(d2["density_per_10um"], [0.5, 1.0])


@pytest.mark.parametrize("t0,t1,want", [
    # (n_t0, n_t1, formed, eliminated)
    (0, 24, (3, 2, 0, 1)),
    (24, 48, (2, 3, 2, 1)),   # C new, D reappears (= formed by the lab's definition)
    (48, 72, (3, 3, 1, 1)),
    (0, 72, (3, 3, 2, 2)),
])
def test_turnover_by_hand(tiny, t0, t1, want):
    r = S.turnover(tiny, t0, t1)
    b = by_branch(r.per_branch, "d1")
    assert (b["n_t0"], b["n_t1"], b["n_formed"], b["n_eliminated"]) == want
    assert b["formation_pct"] == pytest.approx(100 * want[2] / want[0])
    assert b["elimination_pct"] == pytest.approx(100 * want[3] / want[0])


def test_turnover_only_branches_imaged_at_both_and_pooled_per_subject(tiny):
    r = S.turnover(tiny, 0, 24)
    assert r.per_branch["branch"].tolist() == ["d1"]  # d2 not imaged at 24
    r = S.turnover(tiny, 0, 48)
    d2 = by_branch(r.per_branch, "d2")
    assert (d2["n_t0"], d2["n_formed"], d2["n_eliminated"]) == (1, 1, 0)
    assert d2["branch_length_um"] == 20.0
    # subject pools the counts: d1 {A,B,D}->{A,C,D}: 1 formed, 1 lost; d2 1 formed
    s = r.per_subject.iloc[0]
    assert (s["n_branches"], s["n_t0"], s["n_t1"], s["n_formed"], s["n_eliminated"]) == \
        (2, 4, 5, 2, 1)
    assert s["formation_pct"] == pytest.approx(50.0)
    assert s["elimination_pct"] == pytest.approx(25.0)


def test_turnover_empty_branch_is_nan_not_dropped():
    rows = spine("a", "m", "b", "x", (0, 24), 1, 10)
    rows += [("a", "m", "c", "z", 0.0, 1.0, False, 20.0), ("a", "m", "c", "z", 24.0, 1.0,
                                                             False, 20.0)]
    t = track(rows)
    d = S.density_per_10um(t)
    assert d.loc[d["branch"] == "c", "n_present"].tolist() == [0, 0]
    pb = S.turnover(t, 0, 24).per_branch
    c = by_branch(pb, "c")
    assert c["n_t0"] == 0 and np.isnan(c["formation_pct"]) and np.isnan(c["elimination_pct"])


def test_events_use_last_and_first_positions():
    # re-registration: the same spine is at slightly different positions
    rows = [("a", "m", "b", "old", 0.0, 3.0, True, 10.0),
            ("a", "m", "b", "keep", 0.0, 5.0, True, 10.0),
            ("a", "m", "b", "keep", 24.0, 5.2, True, 10.0),
            ("a", "m", "b", "new", 24.0, 7.5, True, 10.0)]
    t = track(rows)
    el = S.events(t, 0, 24, "eliminated")
    nw = S.events(t, 0, 24, "new")
    assert el[["spine_id", "position_um"]].values.tolist() == [["old", 3.0]]
    assert nw[["spine_id", "position_um"]].values.tolist() == [["new", 7.5]]
    with pytest.raises(ValueError, match="kind"):
        S.events(t, 0, 24, "formed")


def test_new_spine_persistence_by_hand(tiny):
    # cohort new at 48 (absent at 24) on d1: C and D (D reappears: new by this
    # definition); at 72 C present, D gone -> 1/2. d2 not imaged at 24 -> excluded.
    p = S.new_spine_persistence(tiny, 24, 48, 72)
    assert p["branch"].tolist() == ["d1"]
    r = p.iloc[0]
    assert (r["new_spines"], r["surviving"], r["persistence_pct"]) == (2, 1, 50.0)
    # a cohort of zero -> NaN, not 0 %
    p0 = S.new_spine_persistence(tiny, 0, 24, 72)
    assert p0.iloc[0]["new_spines"] == 0 and np.isnan(p0.iloc[0]["persistence_pct"])


def test_new_spine_persistence_missed_in_between_counts_as_present():
    rows = spine("a", "m", "b", "n", (24, 72), 1, 10) + spine("a", "m", "b", "o", (0, 24, 48,
                                                                                   72), 2, 10)
    t = track(rows)
    p = S.new_spine_persistence(t, 0, 24, 72)
    assert p.iloc[0][["new_spines", "surviving"]].tolist() == [1, 1]


def test_subject_readouts_by_hand():
    # two branches of one mouse imaged at 0 and 24; densities per 10 um averaged over
    # branches (not pooled), turnover pooled over branches
    rows = spine("a", "m", "b1", "s1", (0, 24), 1, 10) + spine("a", "m", "b1", "s2", (0,), 2, 10)
    rows += spine("a", "m", "b2", "t1", (0, 24), 1, 40) + spine("a", "m", "b2", "t2", (24,), 2, 40)
    rows += spine("a", "m", "b2", "t3", (24,), 3, 40)
    t = track(rows)
    r = S.subject_readouts(t).set_index(["time_h", "readout"])["value"]
    assert r[(0.0, "spine_density_per_10um")] == pytest.approx((2 / 10 * 10 + 1 / 40 * 10) / 2)
    assert r[(24.0, "spine_density_per_10um")] == pytest.approx((1.0 + 3 / 40 * 10) / 2)
    assert r[(24.0, "formation_pct")] == pytest.approx(100 * 2 / 3)
    assert r[(24.0, "elimination_pct")] == pytest.approx(100 * 1 / 3)
    assert (0.0, "formation_pct") not in r.index
    b = S.branch_readouts(t).set_index(["branch", "time_h", "readout"])["value"]
    assert b[("b1", 24.0, "elimination_pct")] == pytest.approx(50.0)
    assert b[("b2", 24.0, "formation_pct")] == pytest.approx(200.0)  # 100 % is no ceiling


def test_presence_matrix_by_hand(tiny):
    pm = presence_matrix(tiny, "m1", "d1")
    assert pm.times_h.tolist() == [0, 24, 48, 72]
    assert pm.spine_ids.tolist() == ["A", "B", "C", "D", "E"]  # by first position seen
    assert pm.present.astype(int).tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1],
                                               [1, 0, 1, 0], [0, 0, 0, 1]]
    with pytest.raises(KeyError):
        presence_matrix(tiny, "m1", "nope")


# -------------------------------------------------------------- restoration / survival
def restoration_rows():
    r = []
    r += spine("a", "m", "d", "O1", (0,), 10, 50)               # eliminated 0->24 at 10
    r += spine("a", "m", "d", "O2", (0, 24, 48, 72, 96, 168), 30, 50)
    r += spine("a", "m", "d", "N1", (72,), 11, 50)              # restored (1 um), lost at 96
    r += spine("a", "m", "d", "N2", (72, 96, 168), 40, 50)      # de novo, survives
    r += spine("a", "m", "d", "N3", (72, 96), 10.5, 50)         # restored, lost at 168
    r += spine("a", "m", "d", "R", (0, 72, 96), 20, 50)         # seen at 0: old, reappears
    return r


def test_restoration_labels_and_survival_by_hand():
    t = track(restoration_rows())
    lab = S.restoration_labels(t, (0, 24), (48, 72)).set_index("spine_id")
    assert lab.loc["N1", "distance_to_site_um"] == pytest.approx(1.0)
    assert lab.loc["N3", "group"] == "restored" and lab.loc["N2", "group"] == "de_novo"
    sv = S.survival(t, 72, t_elim=(0, 24), horizon_h=96)
    assert "R" not in set(sv.spines["spine_id"])  # first appearance: R is an old spine
    sm = sv.summary.set_index("group")
    assert sm.loc["restored", ["n_spines", "n_followed", "n_surviving"]].tolist() == [2, 2, 0]
    assert sm.loc["de_novo", "fraction_surviving"] == 1.0
    assert sm.loc["restored", "km_surviving"] == pytest.approx(0.0)
    d = sv.spines.set_index("spine_id")
    assert d.loc["N1", "duration_h"] == 24 and d.loc["N1", "lost"]
    assert d.loc["N3", "duration_h"] == 96 and d.loc["N3", "lost"]  # lost when seen at 168
    # a shorter horizon: N3's loss at 96 h after start is after a 24 h horizon
    s24 = S.survival(t, 72, t_elim=(0, 24), horizon_h=24).summary.set_index("group")
    assert s24.loc["restored", "n_surviving"] == 1
    allnew = S.survival(t, 72, t_elim=(0, 24), first_appearance=False).summary
    assert allnew.set_index("group").loc["restored", "n_spines"] == 3


def test_restoration_expected_fraction_and_clustering_by_hand():
    pos = [2 + 4 * i for i in range(10)]
    rows = []
    for p in pos:
        rows += spine("a", "m", "b", f"s{p}", (0,) if p in (10, 14, 34) else (0, 24, 48), p, 40)
        rows += spine("a", "m", "c", f"s{p}", (0, 24, 48), p, 40)
    rows += spine("a", "m", "b", "n1", (48,), 11, 40) + spine("a", "m", "b", "n2", (48,), 25, 40)
    rows += spine("a", "m", "c", "n3", (48,), 1, 40)
    t = track(rows)
    rng = np.random.default_rng(1)
    r = S.restoration(t, (0, 24), (24, 48), 2.0, 200, rng=rng)
    # sites 10, 14, 34 on b: union of +-2 um = [8,16] u [32,36] = 12 um of 40
    assert (r.n_new, r.n_restored, r.n_sites, r.n_branches) == (3, 1, 3, 2)
    assert r.expected_fraction == pytest.approx((2 * 12 / 40) / 3)
    assert 0 < r.p <= 1
    c = S.clustering_test(t, 0, 24, "eliminated", 50, rng=rng)
    assert c.observed_um == pytest.approx(4.0)  # nn distances 4, 4, 20 -> median 4
    c = S.clustering_test(t, 0, 24, "eliminated", 50, rng=rng, summary="mean")
    assert c.observed_um == pytest.approx(28 / 3)
    bs = S.branch_specificity_test(t, 0, 24, "eliminated", 50, rng=rng)
    assert bs.statistic == pytest.approx(3.0)  # O=(3,0), E=(1.5,1.5)


# ------------------------------------------------------------------- reader validation
def test_tracking_reader_errors_name_column_and_row():
    good = spine("a", "m", "b", "x", (0, 24), 1, 10)
    dup = good + [("a", "m", "b", "x", 24.0, 2.0, True, 10.0)]
    with pytest.raises(TrackingTableError, match=r"column 'spine_id', row 3.*duplicate.*row 2"):
        track(dup)
    with pytest.raises(TrackingTableError, match=r"column 'branch_length_um', row 2"):
        track([good[0], ("a", "m", "b", "x", 24.0, 1.0, True, 11.0)])
    with pytest.raises(TrackingTableError, match=r"column 'position_um', row 1"):
        track([("a", "m", "b", "x", 0.0, 12.0, True, 10.0)])
    with pytest.raises(TrackingTableError, match=r"column 'present', row 2"):
        track([good[0], ("a", "m", "b", "x", 24.0, 1.0, "maybe", 10.0)])
    with pytest.raises(TrackingTableError, match="missing required column.*'present'"):
        read_tracking_table(pd.DataFrame(good, columns=COLS).drop(columns="present"))


def test_duplicate_within_session_tolerance_is_rejected():
    rows = spine("a", "m", "b", "A", (0, 24), 1, 10)
    rows += [("a", "m", "b", "A", 24.0 + 1e-8, 1.5, True, 10.0)]
    try:
        t = track(rows)
    except TrackingTableError:
        return
    b = S.turnover(t, 0, 24).per_branch.iloc[0]
    assert (b["n_t0"], b["n_t1"]) == (1, 1)


# ------------------------------------------------------------------ hypothesis: tracking
@st.composite
def random_tables(draw):
    n_sess = draw(st.integers(2, 4))
    times = [24.0 * i for i in range(n_sess)]
    rows = []
    for sub in ("m1", "m2")[: draw(st.integers(1, 2))]:
        for br in ("b1", "b2")[: draw(st.integers(1, 2))]:
            length = draw(st.sampled_from([10.0, 25.0, 40.0]))
            imaged = [t for t in times if draw(st.booleans()) or t == times[0]]
            n_sp = draw(st.integers(0, 5))
            for k in range(n_sp):
                pres = [t for t in imaged if draw(st.booleans())]
                for t in pres:
                    rows.append(("a", sub, br, f"s{k}", t, float(k + 1), True, length))
            # every imaged session has a row (an explicit absence) so it counts as imaged
            for t in imaged:
                rows.append(("a", sub, br, "ghost", t, 0.5, False, length))
    return rows, times


def ref_sets(rows):
    """branch -> {time: set of present spine ids}, for imaged times only."""
    out = {}
    for arm, sub, br, sid, t, _pos, pres, _L in rows:
        d = out.setdefault((arm, sub, br), {}).setdefault(t, set())
        if pres:
            d.add(sid)
    return out


@HYP
@given(random_tables(), st.randoms(use_true_random=False))
def test_turnover_and_persistence_match_a_set_reference_and_are_label_invariant(data, rnd):
    rows, times = data
    t = track(rows)
    ref = ref_sets(rows)
    # relabelled spine ids and shuffled rows must give the same numbers
    perm = {f"s{k}": f"z{9 - k}" for k in range(6)} | {"ghost": "ghost"}
    rows2 = [r[:3] + (perm[r[3]],) + r[4:] for r in rows]
    rnd.shuffle(rows2)
    t2 = track(rows2)
    dens = S.density_per_10um(t)
    pd.testing.assert_frame_equal(dens, S.density_per_10um(t2))
    # a scheduled time at which no branch was imaged is not a session: an error, not an
    # empty result
    imaged = sessions(t).tolist()
    for gone in sorted(set(times) - set(imaged)):
        with pytest.raises(ValueError, match="not a session"):
            S.turnover(t, imaged[0], gone)  # times[0] is imaged on every branch
    times = imaged
    for i, t0 in enumerate(times):
        for t1 in times[i + 1:]:
            pb = S.turnover(t, t0, t1).per_branch
            pb2 = S.turnover(t2, t0, t1).per_branch
            pd.testing.assert_frame_equal(pb, pb2)
            want = {k: v for k, v in ref.items() if t0 in v and t1 in v}
            assert len(pb) == len(want)
            for _, b in pb.iterrows():
                p0, p1 = want[(b["arm"], b["subject"], b["branch"])][t0], \
                    want[(b["arm"], b["subject"], b["branch"])][t1]
                assert (b["n_t0"], b["n_t1"], b["n_formed"], b["n_eliminated"]) == \
                    (len(p0), len(p1), len(p1 - p0), len(p0 - p1))
                # formation - elimination = relative density change (same length)
                if p0:
                    assert b["formation_pct"] - b["elimination_pct"] == pytest.approx(
                        100 * (len(p1) - len(p0)) / len(p0))
            for t2_ in times[times.index(t1) + 1:]:
                per = S.new_spine_persistence(t, t0, t1, t2_)
                pd.testing.assert_frame_equal(per, S.new_spine_persistence(t2, t0, t1, t2_))
                for _, b in per.iterrows():
                    d = ref[(b["arm"], b["subject"], b["branch"])]
                    new = d[t1] - d[t0]
                    assert (b["new_spines"], b["surviving"]) == (len(new), len(new & d[t2_]))


# ------------------------------------------------------------------ per-segment tables
SEG_DAYS = (-1.0, 1.0, 3.0)


def seg_table(extra=None):
    data = {("a", "1", "s1"): ([20, 24, 18], [100, 100, 90]),
            ("a", "1", "s2"): ([10, 9, 12], [50, 50, 50]),
            ("a", "2", "s1"): ([16, None, 20], [80, 80, 80]),
            ("b", "1", "s1"): ([8, 12, 10], [40, 40, 40])}
    rows = []
    for (g, m, s), (c, L) in data.items():
        for i, d in enumerate(SEG_DAYS):
            rows.append((g, m, s, i + 1, d, c[i], L[i], None if c[i] is None else c[i] / L[i]))
    return pd.DataFrame(rows, columns=list(G.SEGMENT_COLUMNS))


def test_density_change_and_summary_by_hand():
    seg = G.read_segments(seg_table())
    dc = G.density_change(seg).set_index(["group", "mouse", "segment", "day"])["change_pct"]
    # every mouse's day -1 mean density is 0.2 / um
    assert dc[("a", "1", "s1", 1.0)] == pytest.approx(20.0)
    assert dc[("a", "1", "s2", 1.0)] == pytest.approx(-10.0)
    assert np.isnan(dc[("a", "2", "s1", 1.0)])
    assert dc[("b", "1", "s1", 3.0)] == pytest.approx(25.0)
    sm = G.density_change_summary(seg).set_index(["group", "day"])
    r = sm.loc[("a", 1.0)]
    sd = np.std([20.0, -10.0], ddof=1)
    assert (r["mean"], r["n"], r["n_set"]) == (pytest.approx(5.0), 2, 3)
    assert r["sem"] == pytest.approx(sd / np.sqrt(3))  # the script divides by the set
    std = G.density_change_summary(seg, sem="standard").set_index(["group", "day"])
    assert std.loc[("a", 1.0), "sem"] == pytest.approx(sd / np.sqrt(2))


def test_length_updown_baseline_by_hand():
    seg = G.read_segments(seg_table())
    ln = G.length_change(seg, day=3).set_index("group")
    assert ln.loc["a", "mean"] == pytest.approx(-10 / 3)
    assert (ln.loc["a", "n_lost"], ln.loc["a", "n_not_lost"]) == (1, 2)
    ud = G.up_down_test(seg, day=1).set_index("group")
    assert ud.loc["a", ["below", "at_or_above", "missing", "n_set"]].tolist() == [1, 1, 1, 3]
    # obs [[1,2],[1,0]], p0 = 2/4: chi2 = 2*(.25/1.5) + 2*(.25/.5)
    assert ud["chi2"].iat[0] == pytest.approx(4 / 3)
    bs = G.baseline_summary(seg).set_index("group")
    assert bs.loc["a", ["segments", "spines", "length_mm"]].tolist() == [3, 46.0, 0.23]
    with pytest.raises(ValueError, match="day=7 is not a day of the table"):
        G.length_change(seg, day=7)


def turnover_table():
    iv = [(1, -3.0, -1.0), (2, -1.0, 1.0), (3, 1.0, 6.0)]
    data = {("a", "1", "s1"): [(10, 20), (30, 10), (15, 5)],
            ("a", "1", "s2"): [(20, 40), (10, 20), (None, None)],
            ("a", "2", "s1"): [(5, 5), (5, 5), (10, 10)]}
    rows = [(g, m, s, i, d0, d1, f, e) for (g, m, s), rates in data.items()
            for (i, d0, d1), (f, e) in zip(iv, rates, strict=True)]
    t = G.read_turnover(pd.DataFrame(rows, columns=list(G.TURNOVER_COLUMNS)))
    t["included"] = True
    return t


def test_turnover_change_by_hand_with_pro_rating():
    tc = G.turnover_change(turnover_table()).set_index(["mouse", "segment", "interval"])
    # mouse 1 baseline (interval 1): formation (10+20)/2 = 15, elimination (20+40)/2 = 30
    assert tc.loc[("1", "s1", 2), "formation_pct_change"] == pytest.approx(15.0)
    assert tc.loc[("1", "s1", 2), "elimination_pct_change"] == pytest.approx(-20.0)
    # 5-day interval against a 2-day baseline: x 2/5
    assert tc.loc[("1", "s1", 3), "elimination_pct_change"] == pytest.approx((5 - 30) * 0.4)
    assert tc.loc[("2", "s1", 3), "formation_pct_change"] == pytest.approx((10 - 5) * 0.4)
    assert np.isnan(tc.loc[("1", "s2", 3), "formation_pct_change"])
    sm = G.turnover_change_summary(turnover_table()).set_index(["measure", "interval"])
    r = sm.loc[("formation", 3)]
    assert (r["mean"], r["n"], r["n_set"]) == (pytest.approx(1.0), 2, 3)
    raw = G.turnover_rates(turnover_table()).set_index(["measure", "interval"])
    assert raw.loc[("elimination", 1), "mean"] == pytest.approx(65 / 3)


def test_persistence_summary_by_hand():
    rows = [("s", "b", "1", 1, 5, 4, 2), ("s", "b", "1", 1, 10, 4, 1),
            ("s", "b", "2", 1, 5, 2, 2), ("s", "b", "2", 1, 10, 2, None),
            ("s", "b", "3", 1, 5, 0, 0), ("s", "b", "3", 1, 10, 0, 0)]
    p = G.read_persistence(pd.DataFrame(rows, columns=list(G.PERSISTENCE_COLUMNS)))
    ps = G.persistence_summary(p).set_index("followup_day")
    assert ps.loc[5.0, "mean"] == pytest.approx(75.0)  # 50 %, 100 %; no cohort on row 3
    assert ps.loc[10.0, ["n", "n_set"]].tolist() == [1, 2]
    assert ps.loc[5.0, "sem"] == pytest.approx(np.std([50, 100], ddof=1) / np.sqrt(2))
    ns = G.new_spine_summary(p).iloc[0]
    assert (ns["mean"], ns["sum"], ns["n_segments"]) == (2.0, 6.0, 3)


def test_add_masks_damage_sessions_and_long_term():
    rows = []
    for s, dmg_session in (("ok", None), ("late", 6), ("early", 5)):
        for i, d in enumerate((-3, -1, 1, 3, 5, 10), start=1):
            rows.append(("k", "1", s, i, d, 10, 50, 0.2, int(dmg_session == i)))
    seg = G.read_segments(pd.DataFrame(rows, columns=[*G.SEGMENT_COLUMNS, "damaged"]))
    inc = seg.drop_duplicates("segment").set_index("segment")["included"]
    assert inc.to_dict() == {"ok": True, "late": True, "early": False}
    trows = [("k", "1", "ok", 4, 3, 5, 10, 10), ("k", "1", "late", 4, 3, 5, None, 10),
             ("k", "1", "early", 3, 1, 3, 10, 10)]
    tt = G.read_turnover(pd.DataFrame(trows, columns=list(G.TURNOVER_COLUMNS)))
    seg2, tt2 = G.add_masks(seg, tt)
    lt = seg2.drop_duplicates("segment").set_index("segment")["long_term"]
    # long-term: a formation rate in an interval starting on day >= 3
    assert lt.to_dict() == {"ok": True, "late": False, "early": False}
    assert tt2.set_index("segment")["included"].to_dict() == inc.to_dict()


def _bad(rows, i, new):
    rows = [list(r) for r in rows]
    rows[i] = list(new)
    return rows


SEG_ROWS = seg_table().astype(object).where(seg_table().notna(), None).values.tolist()


@pytest.mark.parametrize("rows,pattern", [
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 1, 1, 24, 100, .24)),
     r"column 'session', row 2: duplicate session"),
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 2, -1, 24, 100, .24)), r"column 'day', row 2"),
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 2, 1, 24.5, 100, .24)),
     r"column 'spine_count', row 2: expected a whole number"),
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 2, 1, "x", 100, .24)),
     r"column 'spine_count', row 2: expected a finite number"),
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 2, 1, 24, 0, .24)), r"column 'length_um', row 2"),
    (_bad(SEG_ROWS, 1, ("a", "1", "s1", 2, 1, 24, 100, None)),
     r"column 'density_per_um', row 2: empty"),
    (_bad(SEG_ROWS, 1, ("a", "1", None, 2, 1, 24, 100, .24)), r"column 'segment', row 2"),
    (_bad(SEG_ROWS, 4, ("a", "1", "s2", 2, 2, 9, 50, .18)),
     r"column 'day', row 5: expected the same day"),
])
def test_segment_reader_errors_name_column_and_row(rows, pattern):
    with pytest.raises(G.SegmentDataError, match=pattern):
        G.read_segments(pd.DataFrame(rows, columns=list(G.SEGMENT_COLUMNS)))


def test_segment_reader_columns_and_csv_rows(tmp_path):
    df = seg_table()
    with pytest.raises(G.SegmentDataError, match="unexpected column.*'foo'"):
        G.read_segments(df.assign(foo=1))
    with pytest.raises(G.SegmentDataError, match="missing required column.*'length_um'"):
        G.read_segments(df.drop(columns="length_um"))
    bad = df.astype(object)
    bad.loc[5, "spine_count"] = -3
    path = tmp_path / "segments.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(G.SegmentDataError,
                       match=r"segments\.csv, column 'spine_count', row 6 \(line 7\)"):
        G.read_segments(path)
    prow = [("a", "b", "1", 1, 5, 3, 4)]
    with pytest.raises(G.SegmentDataError, match="column 'surviving', row 1"):
        G.read_persistence(pd.DataFrame(prow, columns=list(G.PERSISTENCE_COLUMNS)))


def test_elimination_above_100_pct_is_rejected():
    rows = [("a", "1", "s1", 1, -1, 1, 10, 150)]
    with pytest.raises(G.SegmentDataError, match="elimination_pct"):
        G.read_turnover(pd.DataFrame(rows, columns=list(G.TURNOVER_COLUMNS)))


def test_segment_set_all_means_all_or_is_refused():
    df = seg_table().assign(damaged=0)
    df.loc[(df["mouse"] == "2") & (df["session"] == 1), "damaged"] = 1
    seg = G.read_segments(df)
    assert not seg.loc[seg["mouse"] == "2", "included"].any()
    try:
        out = G.density_change_summary(seg, segment_set="all")
    except ValueError:
        return
    assert out.set_index(["group", "day"]).loc[("a", 1.0), "n_set"] == 3


# ---------------------------------------------------------- hypothesis: segment summaries
@HYP
@given(st.lists(st.integers(0, 30), min_size=12, max_size=12), st.randoms(use_true_random=False))
def test_segment_summaries_invariant_to_row_order_and_mouse_labels(counts, rnd):
    df = seg_table()
    df["spine_count"] = [float(c) for c in counts]
    df["density_per_um"] = df["spine_count"] / df["length_um"]
    relabel = df.assign(mouse=df["mouse"].map({"1": "z9", "2": "q0"}),
                        segment=df["segment"].map({"s1": "x", "s2": "w"}))
    relabel = relabel.sample(frac=1.0, random_state=rnd.randint(0, 10**6))
    a, b = G.read_segments(df), G.read_segments(relabel)
    for f in (G.density_change_summary, G.up_down_test, G.baseline_summary,
              lambda s: G.length_change(s, day=3)):
        pd.testing.assert_frame_equal(f(a), f(b))


# -------------------------------------------------------------------- from_tracking
def test_from_tracking_counts_and_rates_equal_turnover(tiny):
    seg, turn = G.from_tracking(tiny)
    d1 = seg[seg["segment"] == "d1"]
    assert d1["spine_count"].tolist() == [3, 2, 3, 3]
    np.testing.assert_allclose(d1["density_per_um"], [0.06, 0.04, 0.06, 0.06])
    t1 = turn[turn["segment"] == "d1"]
    np.testing.assert_allclose(t1["formation_pct"], [0, 100, 100 / 3])
    np.testing.assert_allclose(t1["elimination_pct"], [100 / 3, 50, 100 / 3])


def test_from_tracking_branch_missing_first_session_keeps_the_calendar():
    def br(b, length, by_day):
        return [r for day, ids in by_day.items() for i in ids
                for r in spine("sal", "1", b, f"{b}{i}", (24.0 * day,), i, length)]
    rows = br("b1", 10.0, {-3: [1, 2, 3, 4], -1: [1, 2, 3, 5], 1: [1, 2, 3, 5, 6]})
    rows += br("b2", 20.0, {-1: [1, 2], 1: [1, 3, 4, 5]})  # b2 first imaged day -1
    seg, turn = G.from_tracking(track(rows))
    tc = G.turnover_change(turn)
    # the mouse's baseline is its day -3 -> -1 formation: only b1 has one (1 of 4)
    assert tc["formation_pct_base"].unique().tolist() == [25.0]
    s = G.turnover_change_summary(turn)
    f = s[(s["measure"] == "formation") & (s["day_end"] == 1.0)]
    assert len(f) == 1 and f["mean"].iat[0] == pytest.approx((0 + 125) / 2)
    G.read_segments(seg.drop(columns=["long_term"]))


# ----------------------------------------------- the deposit, by the README's own snippets
@pytest.fixture(scope="module")
def deposit():
    if not (DATA / "segments.csv").is_file():
        pytest.skip(f"deposited dataset not found at {DATA}")
    ds = G.read_dataset(DATA)
    s = pd.read_csv(DATA / "segments.csv")
    t = pd.read_csv(DATA / "turnover.csv")
    p = pd.read_csv(DATA / "persistence.csv")
    return ds, s, t, p


def test_deposit_matches_readme_snippets_independently(deposit):
    ds, s, t, p = deposit
    assert len(ds.segments) == len(s) == 1127 and len(ds.turnover) == len(t) == 966
    inc = s[s.included]
    key = ["group", "mouse", "segment"]
    n_all = inc.drop_duplicates(key).groupby("group").size()
    base = inc[inc.day == -3].groupby(["group", "mouse"]).density_per_um.mean().rename("base")
    dens = inc.join(base, on=["group", "mouse"])
    dens["chg"] = 100 * (dens.density_per_um / dens.base - 1)
    d3 = dens[dens.day <= 1].groupby(["group", "day"]).chg.agg(["mean", "std"])
    got = G.density_change_summary(ds.segments, last_day=1).set_index(["group", "day"])
    for (g, day), r in d3.iterrows():
        assert got.loc[(g, float(day)), "mean"] == pytest.approx(r["mean"], rel=1e-9)
        assert got.loc[(g, float(day)), "sem"] == pytest.approx(
            r["std"] / np.sqrt(n_all[g]), rel=1e-9)
    ti = t[t.included].copy()
    b = ti[ti.interval == 1].groupby(["group", "mouse"])[["formation_pct",
                                                          "elimination_pct"]].mean()
    ti = ti.join(b, on=["group", "mouse"], rsuffix="_base")
    ti["fc"] = ti.formation_pct - ti.formation_pct_base
    ti.loc[ti.interval >= 5, "fc"] *= 2 / 5
    lt = ti[ti.long_term].groupby(["group", "day_end"]).fc.mean()
    got = G.turnover_change_summary(ds.turnover, segment_set="long_term")
    got = got[got.measure == "formation"].set_index(["group", "day_end"])["mean"]
    for k, v in lt.items():
        assert got[(k[0], float(k[1]))] == pytest.approx(v, rel=1e-9, abs=1e-12)
    p["pct"] = 100 * p.surviving / p.new_spines
    pm = p.groupby(["group", "followup_day"]).pct.mean()
    got = G.persistence_summary(ds.persistence).set_index(["group", "followup_day"])["mean"]
    for k, v in pm.items():
        assert got[(k[0], float(k[1]))] == pytest.approx(v, rel=1e-12)


# ------------------------------------------------------- the fixes' edge cases (B-F, A)
def test_session_times_within_tolerance_are_one_session():
    rows = spine("a", "m", "b", "A", (0, 24), 1, 10)
    rows += spine("a", "m", "b", "B", (24 + 1e-8,), 2, 10)  # another spine, same session
    t = track(rows)
    assert sessions(t).tolist() == [0.0, 24.0]
    assert t["time_h"].tolist() == [0.0, 24.0, 24.0]
    d = S.density_per_10um(t)
    assert d["time_h"].tolist() == [0.0, 24.0] and d["n_present"].tolist() == [1, 2]
    r = S.subject_readouts(t)
    assert sorted(set(r["time_h"])) == [0.0, 24.0]
    assert r.loc[r["readout"] == "formation_pct", "value"].tolist() == [100.0]
    # the time with the most rows is kept (here the later one)
    rows = spine("a", "m", "b", "A", (0, 24 + 1e-8), 1, 10)
    rows += spine("a", "m", "b", "B", (24 + 1e-8,), 2, 10) + spine("a", "m", "b", "C", (24,), 3,
                                                                   10)
    assert sessions(track(rows)).tolist() == [0.0, 24 + 1e-8]


def test_duplicate_within_tolerance_names_both_rows_and_a_long_chain_is_refused():
    rows = spine("a", "m", "b", "A", (0, 24), 1, 10)
    rows += [("a", "m", "b", "A", 24.0 + 1e-8, 1.5, True, 10.0)]
    with pytest.raises(TrackingTableError,
                       match=r"column 'spine_id', row 3: duplicate .*already in row 2 .*"
                             r"one session"):
        track(rows)
    chain = [("a", "m", "b", f"s{i}", 24.0 + i * 0.9e-6, 1.0, True, 10.0) for i in range(3)]
    with pytest.raises(TrackingTableError, match=r"column 'time_h', row 3: session times"):
        track(chain)


def test_times_that_are_not_sessions_or_out_of_order_are_errors(tiny):
    sess = r"\(sessions: 0, 24, 48, 72 h\)"
    with pytest.raises(ValueError, match=r"t1=12 h is not a session of the table " + sess):
        S.turnover(tiny, 0, 12)
    with pytest.raises(ValueError, match=r"t1=0 h must be a later session than t0=24 h"):
        S.turnover(tiny, 24, 0)
    with pytest.raises(ValueError, match=r"t1=24 h must be a later session than t0=24 h"):
        S.turnover(tiny, 24, 24)
    with pytest.raises(ValueError, match=r"t0=-24 h is not a session"):
        S.events(tiny, -24, 24, "new")
    with pytest.raises(ValueError, match=r"t_end=24 h must be a later session than "
                                         r"t_new=48 h"):
        S.new_spine_persistence(tiny, 24, 48, 24)
    with pytest.raises(ValueError, match=r"t_end=100 h is not a session of the table " + sess):
        S.new_spine_persistence(tiny, 24, 48, 100)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="t1=30 h is not a session"):
        S.clustering_test(tiny, 0, 30, "eliminated", 10, rng=rng)
    with pytest.raises(ValueError, match="t0=48 h"):
        S.branch_specificity_test(tiny, 48, 24, "eliminated", 10, rng=rng)
    with pytest.raises(ValueError, match=r"t_new\[1\]=50 h is not a session"):
        S.restoration_labels(tiny, (0, 24), (48, 50))
    # a time within TIME_TOL_H of a session is that session
    assert S.turnover(tiny, 1e-8, 24).per_branch["n_t0"].tolist() == [3]


def test_segment_days_that_do_not_exist_are_errors():
    seg = G.read_segments(seg_table())
    with pytest.raises(ValueError, match=r"baseline_day=-7 is not a day of the table "
                                         r"\(days: -1, 1, 3\)"):
        G.density_change_summary(seg, baseline_day=-7)
    with pytest.raises(ValueError, match=r"day=5 is not a day of the table \(days: -1, 1, "
                                         r"3\)"):
        G.up_down_test(seg, day=5)
    with pytest.raises(ValueError, match=r"baseline_day=2"):
        G.up_down_test(seg, baseline_day=2)
    with pytest.raises(ValueError, match=r"baseline_interval=4 is not an interval of the "
                                         r"table \(intervals: 1, 2, 3\)"):
        G.turnover_change_summary(turnover_table(), baseline_interval=4)
    # an existing day other than the first is a valid baseline
    dc = G.density_change_summary(seg, baseline_day=1).set_index(["group", "day"])
    assert dc.loc[("b", 1.0), "mean"] == pytest.approx(0.0)


def test_segment_set_all_is_all_segments_in_every_summary():
    df = seg_table().assign(damaged=0)
    df.loc[(df["mouse"] == "2") & (df["session"] == 1), "damaged"] = 1
    seg = G.read_segments(df)
    # "all": no mask; mouse 2's own day -1 density (0.2) is its baseline
    dc = G.density_change(seg, segment_set="all")
    m2 = dc.loc[(dc["mouse"] == "2") & (dc["day"] == 3.0)]
    assert m2[["baseline_per_um", "change_pct"]].values.tolist() == [[0.2, pytest.approx(25.0)]]
    assert "2" not in set(G.density_change(seg)["mouse"])
    ud = G.up_down_test(seg, segment_set="all").set_index("group")
    assert ud.loc["a", ["below", "at_or_above", "missing", "n_set"]].tolist() == [1, 1, 1, 3]
    inc = G.up_down_test(seg).set_index("group")
    assert inc.loc["a", "n_set"] == 2
    assert G.baseline_summary(seg, segment_set="all").set_index("group").loc[
        "a", "segments"] == 3
    tt = turnover_table()
    tt.loc[tt["mouse"] == "2", "included"] = False
    s_all = G.turnover_change_summary(tt, segment_set="all")
    s_inc = G.turnover_change_summary(tt)
    assert set(s_all["n_set"]) == {3} and set(s_inc["n_set"]) == {2}
    tc = G.turnover_change(tt, segment_set="all").set_index(["mouse", "segment", "interval"])
    assert tc.loc[("2", "s1", 2), "formation_pct_change"] == pytest.approx(0.0)


def test_elimination_up_to_100_and_formation_above_100_are_accepted():
    ok = [("a", "1", "s1", 1, -1, 1, 250, 100), ("a", "1", "s1", 2, 1, 3, 0, 0)]
    t = G.read_turnover(pd.DataFrame(ok, columns=list(G.TURNOVER_COLUMNS)))
    assert t["formation_pct"].tolist() == [250.0, 0.0]
    bad = [ok[0], ("a", "1", "s1", 2, 1, 3, 0, 100.5)]
    with pytest.raises(G.SegmentDataError,
                       match=r"column 'elimination_pct', row 2: expected a number <= 100"):
        G.read_turnover(pd.DataFrame(bad, columns=list(G.TURNOVER_COLUMNS)))


def test_from_tracking_numbers_sessions_by_each_groups_schedule():
    # arm "x" imaged at days 0, 1, 2; arm "y" at days 0 and 2 only
    rows = spine("x", "m", "b", "A", (0, 24, 48), 1, 10) + spine("x", "m", "b", "B", (0,), 2, 10)
    rows += spine("y", "m", "b", "A", (0, 48), 1, 10)
    t = track(rows)
    seg, turn = G.from_tracking(t)  # group = arm: each arm its own schedule
    y = turn[turn["group"] == "y"]
    assert (y["interval"].tolist(), y["elimination_pct"].tolist()) == ([1], [0.0])
    assert seg.loc[seg["group"] == "y", "session"].tolist() == [1, 2]
    seg, turn = G.from_tracking(t, group="pooled")  # one group: the union of the sessions
    G.read_segments(seg.drop(columns=["long_term"]))
    G.read_turnover(turn.drop(columns=["long_term"]), segments=seg)
    y = turn[turn["mouse"] == "y/m"]
    assert y["interval"].tolist() == [1, 2] and y["elimination_pct"].isna().all()
    x = turn[turn["mouse"] == "x/m"]
    np.testing.assert_allclose(x["elimination_pct"], [50.0, 0.0])
