"""Spine turnover statistics (ketasim.analysis.spines) on tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis.spines import (
    branch_specificity_test,
    clustering_test,
    density_per_10um,
    events,
    morphology_fractions,
    restoration,
    restoration_labels,
    subject_readouts,
    survival,
    turnover,
)
from ketasim.analysis.tracking import read_tracking_table


def build(spines, length_um=100.0, extra=None) -> pd.DataFrame:
    """A validated table from ``(subject, branch, spine_id, position_um, times_present)``
    tuples (optionally with per-spine extra columns as a dict in a sixth slot)."""
    rows = []
    for spec in spines:
        subject, branch, sid, pos, times = spec[:5]
        more = spec[5] if len(spec) > 5 else {}
        length = length_um[branch] if isinstance(length_um, dict) else length_um
        for t in times:
            rows.append({"subject": subject, "branch": branch, "spine_id": sid, "time_h": t,
                         "position_um": pos, "present": True, "branch_length_um": length,
                         **more, **(extra or {})})
    return read_tracking_table(pd.DataFrame(rows))


GRID_UM = np.arange(2.5, 100.0, 5.0)  # 20 spines, 5 um apart


# ------------------------------------------------------------------ density, turnover


def test_density_per_10um():
    spines = [("s1", "a", f"a{i}", 5.0 * i, (0, 24) if i < 3 else (0,)) for i in range(5)]
    spines += [("s1", "b", f"b{i}", 10.0 * i, (0, 24)) for i in range(10)]
    d = density_per_10um(build(spines, length_um={"a": 50.0, "b": 100.0}))
    got = d.set_index(["branch", "time_h"])
    assert got.loc[("a", 0), "n_present"] == 5 and got.loc[("a", 24), "n_present"] == 3
    assert got.loc[("a", 0), "density_per_10um"] == pytest.approx(1.0)
    assert got.loc[("a", 24), "density_per_10um"] == pytest.approx(0.6)
    assert got.loc[("b", 24), "density_per_10um"] == pytest.approx(1.0)
    assert set(d["arm"]) == {"all"}


def _turnover_table():
    # branch a: 10 spines at t0, 2 vanish and 3 appear by t1; branch b: 10 stable spines
    spines = [("s1", "a", f"a{i}", 8.0 * i, (0, 24) if i >= 2 else (0,)) for i in range(10)]
    spines += [("s1", "a", f"n{i}", 85.0 + 4.0 * i, (24,)) for i in range(3)]
    spines += [("s1", "b", f"b{i}", 9.0 * i, (0, 24)) for i in range(10)]
    return build(spines)


def test_turnover_formation_and_elimination_percent():
    r = turnover(_turnover_table(), 0, 24)
    a = r.per_branch.set_index("branch").loc["a"]
    assert (a["n_t0"], a["n_t1"], a["n_formed"], a["n_eliminated"]) == (10, 11, 3, 2)
    assert a["formation_pct"] == pytest.approx(30.0)
    assert a["elimination_pct"] == pytest.approx(20.0)
    b = r.per_branch.set_index("branch").loc["b"]
    assert b["formation_pct"] == 0.0 and b["elimination_pct"] == 0.0
    s = r.per_subject.iloc[0]
    assert s["n_branches"] == 2 and s["n_t0"] == 20
    assert s["formation_pct"] == pytest.approx(15.0)
    assert s["elimination_pct"] == pytest.approx(10.0)


def test_turnover_skips_branches_not_imaged_at_both_sessions():
    spines = [("s1", "a", "x", 1.0, (0, 24)), ("s1", "c", "y", 1.0, (0,))]
    r = turnover(build(spines), 0, 24)
    assert list(r.per_branch["branch"]) == ["a"]


def test_subject_readouts_pair_each_animals_own_sessions():
    """Two animals imaged at 0/24/48 h and 0/25/48 h in one table: each keeps both of its
    intervals (on the table's pooled grid 0/24/25/48 the 0->25 and 24->48 intervals were
    lost and 25->48 read against nothing)."""
    spines = [("s1", "a", f"a{i}", 8.0 * i, (0, 24, 48) if i >= 2 else (0,))
              for i in range(10)]
    spines += [("s1", "a", "n1", 90.0, (24, 48)), ("s1", "a", "n2", 95.0, (48,))]
    spines += [("s2", "b", f"b{i}", 8.0 * i, (0, 25, 48) if i >= 1 else (0,))
               for i in range(10)]
    spines += [("s2", "b", "m1", 90.0, (48,))]
    r = subject_readouts(build(spines))
    got = r[r["readout"] != "spine_density_per_10um"].set_index(
        ["subject", "time_h", "readout"])["value"]
    assert sorted({(s, t) for s, t, _ in got.index}) == [
        ("s1", 24.0), ("s1", 48.0), ("s2", 25.0), ("s2", 48.0)]
    assert got[("s1", 24.0, "elimination_pct")] == pytest.approx(20.0)  # 2 of 10
    assert got[("s1", 24.0, "formation_pct")] == pytest.approx(10.0)  # 1 of 10
    assert got[("s1", 48.0, "formation_pct")] == pytest.approx(100 / 9)  # 1 of 9
    assert got[("s2", 25.0, "elimination_pct")] == pytest.approx(10.0)  # 1 of 10
    assert got[("s2", 48.0, "formation_pct")] == pytest.approx(100 / 9)
    assert got[("s2", 48.0, "elimination_pct")] == 0.0


def test_events_positions_and_kinds():
    spines = [("s1", "a", "gone", 10.0, (0,)), ("s1", "a", "kept", 20.0, (0, 24))]
    t = build(spines)
    # a spine that drifts between sessions: new spines are placed at t1
    t = pd.concat([t, t.iloc[[0]].assign(spine_id="born", time_h=24.0, position_um=30.0)])
    t = read_tracking_table(t)
    elim = events(t, 0, 24, "eliminated")
    new = events(t, 0, 24, "new")
    assert list(elim["spine_id"]) == ["gone"] and list(elim["position_um"]) == [10.0]
    assert list(new["spine_id"]) == ["born"] and list(new["position_um"]) == [30.0]
    assert list(new.columns) == ["arm", "subject", "branch", "spine_id", "position_um",
                                 "branch_length_um"]
    with pytest.raises(ValueError, match="kind"):
        events(t, 0, 24, "lost")


# ------------------------------------------------------------------------ clustering


def _clustering_table(eliminated_um):
    """Grid spines plus the given ones, which all vanish between 0 and 24 h; grid spines
    listed in ``eliminated_um`` vanish too."""
    spines = []
    for i, x in enumerate(GRID_UM):
        spines.append(("s1", "a", f"g{i}", x, (0,) if x in eliminated_um else (0, 24)))
    for i, x in enumerate(e for e in eliminated_um if e not in GRID_UM):
        spines.append(("s1", "a", f"e{i}", x, (0,)))
    return build(spines)


@pytest.mark.parametrize("method", ["labels", "uniform"])
def test_clustered_eliminations_are_detected(method, rng):
    t = _clustering_table([10.0, 10.5, 11.0])
    r = clustering_test(t, 0, 24, "eliminated", n_perm=999, rng=rng, method=method)
    assert r.observed_um == pytest.approx(0.5)
    assert r.n_events == 3 and r.n_branches == 1
    assert r.null_mean_um > 5.0
    assert r.p < 0.05


@pytest.mark.parametrize("method", ["labels", "uniform"])
def test_evenly_spaced_eliminations_are_not_clustered(method, rng):
    t = _clustering_table([12.5, 47.5, 82.5])
    r = clustering_test(t, 0, 24, "eliminated", n_perm=999, rng=rng, method=method)
    assert r.observed_um == pytest.approx(35.0)
    assert r.p > 0.2


def test_clustered_new_spines_use_positions_at_t1(rng):
    spines = [("s1", "a", f"g{i}", x, (0, 24)) for i, x in enumerate(GRID_UM)]
    spines += [("s1", "a", f"n{i}", x, (24,)) for i, x in enumerate((40.0, 40.4, 41.2))]
    t = build(spines)
    r = clustering_test(t, 0, 24, "new", n_perm=500, rng=rng)
    assert r.observed_um == pytest.approx(0.4)  # median of 0.4, 0.4, 0.8
    assert r.p < 0.05
    mean = clustering_test(t, 0, 24, "new", n_perm=500, rng=rng, summary="mean")
    assert mean.observed_um == pytest.approx((0.4 + 0.4 + 0.8) / 3)
    assert mean.summary == "mean" and mean.p < 0.05


def test_median_summary_resists_an_isolated_event(rng):
    """One far-off event (a false-positive punctum) hides a tight cluster of four from
    the mean nearest-neighbour distance on sparse branches, not from the median."""
    spines = [("s1", "a", f"g{i}", x, (0, 24)) for i, x in enumerate(GRID_UM)]
    spines += [("s1", "a", f"n{i}", x, (24,))
               for i, x in enumerate((20.0, 20.5, 21.0, 21.5, 95.0))]
    t = build(spines)
    med = clustering_test(t, 0, 24, "new", n_perm=999, rng=rng)
    mean = clustering_test(t, 0, 24, "new", n_perm=999, rng=rng, summary="mean")
    assert med.observed_um == pytest.approx(0.5)
    assert med.p < 0.05
    assert mean.observed_um == pytest.approx((4 * 0.5 + 73.5) / 5)
    assert mean.p > med.p
    with pytest.raises(ValueError, match="summary"):
        clustering_test(t, 0, 24, "new", n_perm=10, rng=rng, summary="mode")


def test_refound_spines_are_not_new_spines(rng):
    """Three new spines in a tight cluster, and two old spines (seen at -24 h, missed at
    0 h) found again far apart: by default only the first appearances are new."""
    spines = [("s1", "a", f"g{i}", x, (-24, 0, 24)) for i, x in enumerate(GRID_UM)]
    spines += [("s1", "a", f"n{i}", x, (24,)) for i, x in enumerate((40.0, 40.4, 41.2))]
    spines += [("s1", "a", f"m{i}", x, (-24, 24)) for i, x in enumerate((6.0, 91.0))]
    t = build(spines)
    r = clustering_test(t, 0, 24, "new", n_perm=500, rng=rng)
    assert r.n_events == 3 and r.observed_um == pytest.approx(0.4)
    loose = clustering_test(t, 0, 24, "new", n_perm=500, rng=rng, first_appearance=False)
    assert loose.n_events == 5 and loose.p > r.p


def test_new_spine_null_draws_from_spines_present_at_t1(rng):
    # by t1 only a 2-um stretch keeps spines: new spines there are no closer to each
    # other than the spines present at t1, whatever the spacing at t0
    spines = [("s1", "a", f"g{i}", x, (0,)) for i, x in enumerate(GRID_UM)]
    kept_um = (39.8, 40.2, 40.8, 41.6, 42.0)
    spines += [("s1", "a", f"k{i}", x, (0, 24)) for i, x in enumerate(kept_um)]
    spines += [("s1", "a", f"n{i}", x, (24,)) for i, x in enumerate((40.0, 40.4, 41.2))]
    r = clustering_test(build(spines), 0, 24, "new", n_perm=500, rng=rng)
    assert r.null_mean_um < 1.5
    assert r.p > 0.2


def test_clustering_is_reproducible_and_needs_a_generator():
    t = _clustering_table([10.0, 10.5, 11.0, 50.0])
    a = clustering_test(t, 0, 24, "eliminated", n_perm=200, rng=np.random.default_rng(1))
    b = clustering_test(t, 0, 24, "eliminated", n_perm=200, rng=np.random.default_rng(1))
    assert a == b
    with pytest.raises(TypeError, match="Generator"):
        clustering_test(t, 0, 24, "eliminated", n_perm=10, rng=1)
    single = clustering_test(_clustering_table([10.0]), 0, 24, "eliminated", n_perm=10,
                             rng=np.random.default_rng(0))
    assert single.n_events == 0 and np.isnan(single.p)


# ---------------------------------------------------------------- branch specificity


def _five_branches(eliminated_per_branch):
    spines = []
    for b, n_elim in enumerate(eliminated_per_branch):
        for i in range(10):
            times = (0,) if i < n_elim else (0, 24)
            spines.append(("s1", f"b{b}", f"{b}-{i}", 10.0 * i, times))
    return build(spines)


def test_events_on_one_branch_are_branch_specific(rng):
    r = branch_specificity_test(_five_branches([5, 0, 0, 0, 0]), 0, 24, "eliminated",
                                n_perm=999, rng=rng)
    assert r.statistic == pytest.approx(20.0)  # (5-1)^2/1 + 4 x (0-1)^2/1
    assert r.n_events == 5 and r.n_branches == 5 and r.n_subjects == 1
    assert r.p < 0.01


def test_proportional_events_are_not_branch_specific(rng):
    r = branch_specificity_test(_five_branches([1, 1, 1, 1, 1]), 0, 24, "eliminated",
                                n_perm=999, rng=rng)
    assert r.statistic == pytest.approx(0.0)
    assert r.p > 0.5
    assert r.null_mean > 1.0


def test_new_spines_on_one_branch_are_branch_specific(rng):
    spines = [("s1", f"b{b}", f"{b}-{i}", 10.0 * i, (0, 24)) for b in range(5)
              for i in range(10)]
    spines += [("s1", "b0", f"n{i}", 5.0 + 10.0 * i, (24,)) for i in range(6)]
    r = branch_specificity_test(build(spines), 0, 24, "new", n_perm=999, rng=rng)
    assert r.n_events == 6 and r.p < 0.01


# ----------------------------------------------------------------------- restoration


def _restoration_table(new_um, sites_um=(20.0, 50.0, 80.0), branches=("a", "b", "c")):
    """Sessions 0, 24 (eliminations at ``sites_um``), 48 and 72 (new spines at
    ``new_um``), on each of ``branches``."""
    spines = []
    for b in branches:
        for i, x in enumerate(GRID_UM):
            spines.append(("s1", b, f"g{i}", x, (0, 24, 48, 72)))
        for i, x in enumerate(sites_um):
            spines.append(("s1", b, f"e{i}", x, (0,)))
        for i, x in enumerate(new_um):
            spines.append(("s1", b, f"n{i}", x, (72,)))
    return build(spines)


def test_new_spines_at_eliminated_sites_are_restored(rng):
    t = _restoration_table([20.0, 50.0, 80.0])
    r = restoration(t, (0, 24), (48, 72), radius_um=2.0, n_perm=999, rng=rng)
    assert r.fraction_restored == 1.0
    assert r.n_new == 9 and r.n_restored == 9 and r.n_sites == 9 and r.n_branches == 3
    # three non-overlapping 4-um windows on a 100-um branch
    assert r.expected_fraction == pytest.approx(2 * 2.0 * 3 / 100.0)
    assert r.null_mean_fraction == pytest.approx(r.expected_fraction, abs=0.02)
    assert r.p < 0.01
    assert set(r.new_spines["group"]) == {"restored"}


def test_new_spines_away_from_sites_are_de_novo(rng):
    t = _restoration_table([35.0, 65.0])
    r = restoration(t, (0, 24), (48, 72), n_perm=200, rng=rng)
    assert r.fraction_restored == 0.0 and r.p > 0.5
    labels = restoration_labels(t, (0, 24), (48, 72))
    assert set(labels["group"]) == {"de_novo"}
    assert labels["distance_to_site_um"].min() == pytest.approx(15.0)


def test_radius_boundary_and_overlapping_windows(rng):
    # sites at 1 (window clipped at the branch start to 0-3) and 10, 11 (windows overlap:
    # 8-13), so the covered length is 3 + 5 = 8 um
    t = _restoration_table([3.0, 13.5], sites_um=(1.0, 10.0, 11.0), branches=("a",))
    r = restoration(t, (0, 24), (48, 72), radius_um=2.0, n_perm=100, rng=rng)
    assert r.expected_fraction == pytest.approx(8.0 / 100.0)
    # 3.0 is exactly 2 um from the site at 1.0 (restored); 13.5 is 2.5 um away
    assert list(r.new_spines["group"]) == ["restored", "de_novo"]


# -------------------------------------------------------------------------- survival

FOLLOW_UP_H = (72, 96, 120, 144, 168)


def _survival_table(fates):
    """Eliminations at 20, 40, 60, 80 um between 0 and 24 h; new spines first seen at 72 h
    (absent at 48 h). ``fates``: ``(position_um, last_session_h)`` per new spine."""
    spines = []
    for b in ("a", "b"):
        for i, x in enumerate(GRID_UM):
            spines.append(("s1", b, f"g{i}", x, (0, 24, 48, *FOLLOW_UP_H)))
        for i, x in enumerate((20.0, 40.0, 60.0, 80.0)):
            spines.append(("s1", b, f"e{i}", x, (0,)))
        for i, (x, last) in enumerate(fates):
            origin = "restored" if x in (20.0, 40.0, 60.0, 80.0) else "de_novo"
            times = tuple(t for t in FOLLOW_UP_H if t <= last)
            spines.append(("s1", b, f"n{i}", x, times, {"origin": origin}))
    return build(spines, extra=None)


def test_restored_spines_outlive_de_novo_ones():
    fates = [(20.0, 168), (40.0, 168), (60.0, 168), (80.0, 168),
             (30.0, 72), (51.0, 72), (71.0, 72), (90.0, 72)]
    r = survival(_survival_table(fates), 72, t_elim=(0, 24), horizon_h=96)
    assert r.groups == ("restored", "de_novo")
    s = r.summary.set_index("group")
    assert s.loc["restored", "n_spines"] == 8 and s.loc["de_novo", "n_spines"] == 8
    assert s.loc["restored", "fraction_surviving"] == 1.0
    assert s.loc["de_novo", "fraction_surviving"] == 0.0
    assert s.loc["restored", "km_surviving"] == 1.0
    assert s.loc["de_novo", "km_surviving"] == 0.0
    assert r.logrank_p < 0.05
    km = r.km.loc[r.km["group"] == "de_novo"].set_index("time_h")
    assert km.loc[24.0, "survival"] == 0.0 and km.loc[24.0, "observed"] == 8
    # the origin column (ground truth) gives the same split here
    by_origin = survival(_survival_table(fates), 72, groups="origin", horizon_h=96)
    assert by_origin.logrank_p == pytest.approx(r.logrank_p)


def test_identical_groups_do_not_differ():
    fates = [(20.0, 168), (40.0, 96), (60.0, 72), (80.0, 120),
             (30.0, 168), (50.5, 96), (70.5, 72), (90.0, 120)]
    r = survival(_survival_table(fates), 72, t_elim=(0, 24), horizon_h=96)
    assert r.logrank_p > 0.5
    s = r.summary.set_index("group")
    assert s.loc["restored", "fraction_surviving"] == s.loc["de_novo", "fraction_surviving"]
    assert s.loc["restored", "fraction_surviving"] == pytest.approx(0.25)  # 1 of 4 to 168 h


def test_spines_not_followed_to_the_horizon_are_censored():
    fates = [(20.0, 168), (30.0, 72)]
    t = _survival_table(fates)
    # branch b stops being imaged after 96 h: its spines are censored there
    t = read_tracking_table(t.loc[~((t["branch"] == "b") & (t["time_h"] > 96))])
    r = survival(t, 72, t_elim=(0, 24), horizon_h=72)
    s = r.summary.set_index("group")
    assert s.loc["restored", "n_spines"] == 2 and s.loc["restored", "n_followed"] == 1
    assert s.loc["de_novo", "n_followed"] == 2  # losses count whatever the follow-up
    spines = r.spines.set_index(["branch", "spine_id"])
    assert spines.loc[("b", "n0"), "duration_h"] == 24.0
    assert not spines.loc[("b", "n0"), "lost"]
    assert spines.loc[("a", "n0"), "duration_h"] == 72.0  # censored at the horizon


def test_a_spine_missed_once_is_not_new():
    """A spine scored at 0 and 24 h, missed at 48 h and found again at 72 h (an imaging
    miss) is an old spine: by default it is not among the new spines at 72 h."""
    fates = [(20.0, 168), (30.0, 72)]
    t = _survival_table(fates)
    extra = pd.DataFrame({"arm": "all", "subject": "s1", "branch": "a", "spine_id": "m0",
                          "time_h": [0.0, 24.0, 72.0, 96.0], "position_um": 45.0,
                          "present": True, "branch_length_um": 100.0, "size": 1.0})
    t = read_tracking_table(pd.concat([t, extra], ignore_index=True))
    strict = survival(t, 72, t_elim=(0, 24), horizon_h=96)
    loose = survival(t, 72, t_elim=(0, 24), horizon_h=96, first_appearance=False)
    assert "m0" not in set(strict.spines["spine_id"])
    assert "m0" in set(loose.spines["spine_id"])
    n = strict.summary.set_index("group")["n_spines"]
    assert loose.summary.set_index("group")["n_spines"]["de_novo"] == n["de_novo"] + 1


# ------------------------------------------------------------------------ morphology


def test_morphology_fractions():
    classes = ["thin", "thin", "mushroom", "stubby", None]
    spines = [("s1", "a", f"m{i}", 10.0 * i, (0,), {"class": c})
              for i, c in enumerate(classes)]
    f = morphology_fractions(build(spines), 0).set_index("class")
    assert f.loc["thin", "fraction"] == 0.5 and f.loc["filopodium", "fraction"] == 0.0
    assert f.loc["mushroom", "fraction"] == 0.25 and f.loc["stubby", "n"] == 1
    assert (f["n_classified"] == 4).all()
