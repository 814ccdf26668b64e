"""Review of the sucrose preference test and its neighbours, against answers computed
here (hand-made tables, numpy/scipy recomputation, many-draw statistics at fixed seeds):

- ketasim.behavior.sucrose (the preference rule) and the ``sucrose_preference`` assay in
  ketasim.behavior.assays: preference mean and SD against ``pref_max - pref_drop A`` and
  ``pref_sd``, the [0.01, 0.99] clip, total intake gamma with mean ``intake_ml`` per day x
  ``hours`` / 24 and CV ``intake_cv``, independence of intake and preference, the
  per-subject stream (also a stratified trial's shared pool: noise follows the pool
  place, not the arm), and whether the documented per-animal deviation is kept over an
  animal's sessions;
- ketasim.analysis.behavior.sucrose_preference (the lab table): known answers, output
  columns and units, and one-line errors for empty tables, missing columns, NaN/inf,
  negative volumes, duplicate subjects; extra columns and the threshold argument;
- ketasim.behavior.traits: log-normal factors of mean 1 and CV ``cv``, drawn once per
  subject from the part's own stream (independent between parts) and kept over sessions
  (open-field distance at two sessions);
- ketasim.experiment.pool.worker_pool: spawned workers with one numba thread and the
  parent's kernel cache;
- ketasim.analysis.segments, where tests/test_review_spines.py and tests/test_segments.py
  do not reach: the up/down chi-square against scipy, the mixed model on a balanced
  design against its closed form, the t tests against scipy, raw turnover rates, set
  sizes, the sex filter, masks checked against the segment table, read_mice's
  mouse_index rule, read_dataset's folder errors, and the day-argument matching.

Defects are tests of the correct behaviour marked ``xfail(strict=True, reason="BUG: ...")``.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ketasim
import ketasim.behavior.assays as BA
from ketasim.analysis import segments as G
from ketasim.analysis.behavior import BehaviorDataError, sucrose_preference
from ketasim.behavior.sucrose import SucroseParams
from ketasim.behavior.traits import lognormal_from_normals, lognormal_traits
from ketasim.core.assay import AssayContext
from ketasim.experiment.pool import worker_pool
from ketasim.experiment.population import POOL
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()
SP = SucroseParams.from_registry(REG).values


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def context(n: int, *, load: float = 0.0, pot: float = 0.0, arm: str = "a",
            subjects=None, stream=None, seed: int = 3, hours: float = 12.0,
            registry=REG, assay: str = "sucrose_preference") -> AssayContext:
    """A chunk of ``n`` subjects whose stress load and reward potentiation are constant."""
    subjects = np.arange(n) if subjects is None else np.asarray(subjects)

    def trajectory(name: str, times: np.ndarray) -> np.ndarray:
        value = {"stress_load": load, "reward_potentiation": pot}[name]
        return np.full((len(subjects), len(times)), float(value))

    return AssayContext(seed=seed, arm=arm, assay=assay, subjects=subjects, species="mouse",
                        options={"hours": hours}, trajectory=trajectory, registry=registry,
                        stream=stream)


@pytest.fixture
def bottles(monkeypatch):
    """The bottle tables the sucrose assay hands to the lab scoring function."""
    seen: list[pd.DataFrame] = []
    score = BA.sucrose_preference

    def spy(df, **kw):
        seen.append(df.copy())
        return score(df, **kw)

    monkeypatch.setattr(BA, "sucrose_preference", spy)
    return seen


def simulate(text: str, registry=REG) -> pd.DataFrame:
    return ketasim.simulate(load_scenario_text(text), registry=registry).readouts


def scenario(assay: str, n: int, seed: int) -> str:
    return (f"name: review\nspecies: mouse\nseed: {seed}\narms:\n  - name: ctrl\n"
            f"    n: {n}\n    protocol: [{{at: 0h, drug: saline, route: ip}}]\n"
            f"    assays: [{assay}]\n")


# ------------------------------------------------------------ the simulated assay


def test_preference_mean_and_sd_follow_the_rule_under_stress_and_relief():
    """2000 mice at stress load 0.8 and reward potentiation 0.2: mean within 4 SE of
    pref_max - pref_drop 0.8 (1 - relief 0.2); SD within 10% of pref_sd (no clipping
    this far from the bounds); two sessions' deviations uncorrelated."""
    n = 2000
    rows = BA.SUCROSE.measure(context(n, load=0.8, pot=0.2), np.array([24.0, 48.0]))
    assert list(np.unique(rows.unit)) == ["fraction"]
    v = rows.value.reshape(n, 2)
    want = SP["pref_max"] - SP["pref_drop"] * 0.8 * (1.0 - SP["relief"] * 0.2)
    se = SP["pref_sd"] / np.sqrt(n)
    assert np.all(np.abs(v.mean(axis=0) - want) < 4 * se)
    np.testing.assert_allclose(v.std(axis=0, ddof=1), SP["pref_sd"], rtol=0.1)


def test_total_intake_is_gamma_with_mean_per_test_hours_and_independent_of_preference(
        bottles):
    """Total intake (the two bottles) over a 6-h test: mean intake_ml x 6 / 24 mL (4 SE),
    CV intake_cv (10%), positive, skewed like a gamma (skewness 2 CV, loose bound), not
    correlated with the preference; the scored preference is sucrose / total."""
    n = 2000  # three tests each (6,000 totals: the skewness's SE about 0.04)
    rows = BA.SUCROSE.measure(context(n, hours=6.0), np.array([24.0, 48.0, 72.0]))
    df = pd.concat(bottles, ignore_index=True)
    total = (df["sucrose_ml"] + df["water_ml"]).to_numpy()
    n = total.size
    mean = SP["intake_ml"] * 6.0 / 24.0
    cv = SP["intake_cv"]
    assert (total > 0).all()
    assert abs(total.mean() - mean) < 4 * cv * mean / np.sqrt(n)
    assert total.std(ddof=1) / total.mean() == pytest.approx(cv, rel=0.1)
    assert stats.skew(total) == pytest.approx(2 * cv, abs=0.25)
    pref = df["sucrose_ml"].to_numpy() / total
    np.testing.assert_allclose(rows.value.reshape(-1, 3).T.ravel(), pref, rtol=1e-12)
    assert abs(np.corrcoef(total, pref)[0, 1]) < 4 / np.sqrt(n)


def test_preference_is_clipped_to_0_01_0_99_at_the_expected_rate():
    """pref_max 0.6, pref_drop 0.6 at full stress: the rule gives 0; with pref_sd 0.2 a
    share Phi(0.05) of the mice sits at the clip 0.01, none above 0.99."""
    reg = REG.with_settings(["behavior.sucrose.pref_max=0.6", "behavior.sucrose.pref_drop=0.6",
                             "behavior.sucrose.pref_sd=0.2"])
    n = 2000
    v = BA.SUCROSE.measure(context(n, load=1.0, registry=reg), np.array([24.0])).value
    # the bottles round-trip the clipped fraction (total p / (total p + total (1 - p)))
    assert v.min() >= 0.01 - 1e-12 and v.max() <= 0.99 + 1e-12
    p = stats.norm.cdf(0.05)
    frac = np.mean(np.isclose(v, 0.01, rtol=0, atol=1e-12))
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_sucrose_noise_follows_the_pool_place_not_the_arm():
    """A stratified trial's shared pool: the same pool places give the same draws in any
    arm and under any subject index; the arm's own streams give others."""
    at = np.array([24.0])
    pooled = (POOL, np.array([7, 3]))
    a = BA.SUCROSE.measure(context(2, arm="x", subjects=[0, 1], stream=pooled), at)
    b = BA.SUCROSE.measure(context(2, arm="y", subjects=[5, 9], stream=pooled), at)
    own = BA.SUCROSE.measure(context(2, arm="x", subjects=[0, 1]), at)
    np.testing.assert_array_equal(a.value, b.value)
    assert b.subject.tolist() == [5, 9]
    assert not np.allclose(a.value, own.value)


# fixed (was BUG): the documented per-animal deviation (pref_sd, 'between-animal SD') is
#   redrawn every session, so it is not kept over an animal's sessions
def test_per_animal_preference_deviation_is_kept_over_sessions():
    """behavior/sucrose.py: preference = pref_max - pref_drop A 'plus a per-animal
    deviation (SD pref_sd)'; registry: 'between-animal SD of preference'. Unstressed
    saline mice (A = 0) tested on days 1, 2 and 3 should keep their own deviation (as the
    TST and open-field traits are kept); the sessions' values then correlate across
    mice (they would be equal). The assay draws it from the session's stream."""
    r = simulate(scenario("{assay: sucrose_preference, at: [1d, 2d, 3d]}", 40, 5))
    w = r.pivot_table(index="subject", columns="time_h", values="value")
    c = np.corrcoef(w.to_numpy().T)
    assert c[0, 1] > 0.8 and c[0, 2] > 0.8 and c[1, 2] > 0.8, c


# ------------------------------------------------------------ the lab table


def test_lab_table_known_values_columns_and_units():
    df = pd.DataFrame({"subject": [2, 10, 1], "day": [1, 1, 1],
                       "sucrose_ml": [4.0, 0.5, 1.0], "water_ml": [1.0, 1.5, 0.0],
                       "cage": ["c1", "c2", "c3"]})
    out = sucrose_preference(df)
    assert list(out.columns) == ["arm", "subject", "day", "sucrose", "water", "total",
                                 "preference", "preference_pct", "anhedonic", "cage"]
    by = out.set_index("subject")
    assert by.loc["2", ["sucrose", "water", "total"]].tolist() == [4.0, 1.0, 5.0]
    assert by.loc["2", "preference"] == pytest.approx(0.8)
    assert by.loc["10", "preference"] == pytest.approx(0.25)
    assert by.loc["1", "preference"] == 1.0 and by.loc["1", "preference_pct"] == 100.0
    assert by["anhedonic"].to_dict() == {"2": False, "10": True, "1": False}
    assert by.loc["10", "cage"] == "c2" and set(out["arm"]) == {"all"}
    assert ((out["preference"] >= 0) & (out["preference"] <= 1)).all()


def test_lab_table_same_subject_in_two_arms_or_on_two_days_is_allowed():
    two_arms = pd.DataFrame({"arm": ["a", "b"], "subject": ["m", "m"],
                             "sucrose_g": [3.0, 1.0], "water_g": [1.0, 1.0]})
    assert sucrose_preference(two_arms)["preference"].tolist() == [0.75, 0.5]
    two_days = two_arms.assign(arm="a", day=[1, 2])
    assert sucrose_preference(two_days)["preference"].tolist() == [0.75, 0.5]


BASE = {"subject": ["m1", "m2"], "sucrose_g": [3.0, 1.0], "water_g": [1.0, 1.0]}


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d.iloc[:0], r"no rows"),
    (lambda d: d.drop(columns="subject"), r"missing required column\(s\) 'subject'"),
    (lambda d: d.drop(columns=["sucrose_g", "water_g"]), r"no intake columns"),
    (lambda d: d.assign(sucrose_g=[np.inf, 1.0]),
     r"column 'sucrose_g', row 1: expected a finite number, got inf"),
    (lambda d: d.assign(sucrose_g=[1.0, np.nan]),
     r"column 'sucrose_g', row 2: missing value"),
    (lambda d: d.assign(water_g=[1.0, -2.0]), r"column 'water_g', row 2: expected an intake >= 0"),
    (lambda d: d.assign(subject=["m1", None]), r"column 'subject', row 2"),
    (lambda d: d.assign(subject=[1, "1"]),
     r"column 'subject', row 2: duplicate intake row .*subject '1'.*already in row 1"),
    (lambda d: d.assign(subject=["m", "m"], day=[1, 1.0]),
     r"column 'subject', row 2: duplicate intake row .*day '1'"),
    (lambda d: d.assign(water_g=[1.0, True]), r"column 'water_g', row 2: expected a finite"),
])
def test_lab_table_bad_input_is_one_clear_error(edit, pattern):
    with pytest.raises(BehaviorDataError, match=r"^<DataFrame>.*" + pattern) as err:
        sucrose_preference(edit(pd.DataFrame(BASE)))
    one_line(err)


def test_lab_table_csv_errors_give_file_column_row_and_line(tmp_path):
    path = tmp_path / "spt.csv"
    path.write_text("subject,sucrose_ml,water_ml\nm1,3,1\nm2,,1\n")
    with pytest.raises(BehaviorDataError,
                       match=r"^spt\.csv, column 'sucrose_ml', row 2 \(line 3\): missing"):
        sucrose_preference(path)
    path.write_text("subject,sucrose_ml,water_ml\n")
    with pytest.raises(BehaviorDataError, match=r"^spt\.csv: no rows"):
        sucrose_preference(path)


# fixed (was BUG): an input column named like an output column (total, preference, sucrose,
#   ...) is silently dropped, although other columns are documented as kept
def test_lab_table_extra_column_named_like_an_output_is_not_silently_lost():
    """'Other columns are kept': a sheet with its own 'total' (here a typo, 9 mL) must
    either keep it or refuse the table naming the column; it is replaced without a word."""
    df = pd.DataFrame(BASE).assign(total=[9.0, 9.0])
    try:
        out = sucrose_preference(df)
    except BehaviorDataError as err:
        assert "'total'" in str(err)
        return
    assert any(np.array_equal(out[c].to_numpy(), [9.0, 9.0]) for c in out.columns)


# fixed (was BUG): anhedonia_threshold=NaN is accepted and silently classes every animal as
#   not anhedonic
def test_lab_table_nan_threshold_is_refused():
    with pytest.raises(ValueError, match="anhedonia_threshold"):
        sucrose_preference(pd.DataFrame(BASE), anhedonia_threshold=float("nan"))


# ------------------------------------------------------------ traits


def test_lognormal_factors_have_mean_one_and_the_stated_cv():
    z = np.random.default_rng(11).standard_normal(400_000)
    for cv in (0.1, 0.25, 0.6):
        f = lognormal_from_normals(cv, z)
        sig2 = np.log1p(cv * cv)
        np.testing.assert_allclose(f, np.exp(-sig2 / 2 + np.sqrt(sig2) * z), rtol=1e-12)
        assert abs(f.mean() - 1.0) < 5 * cv / np.sqrt(z.size)
        assert f.std() / f.mean() == pytest.approx(cv, rel=0.03)
        assert np.median(f) == pytest.approx(np.exp(-sig2 / 2), rel=0.01)


def test_traits_come_from_each_parts_first_normal_and_parts_are_independent():
    n = 3000
    ctx = context(n, assay="tail_suspension", seed=17)
    a = lognormal_traits(ctx, 0.3, "struggle_vigour")
    b = lognormal_traits(ctx, 0.3, "locomotor_activity")
    for i in (0, 1, n - 1):
        z = ctx.rng(i, "struggle_vigour").standard_normal()
        assert a[i] == pytest.approx(float(lognormal_from_normals(0.3, z)), rel=1e-12)
    assert abs(np.corrcoef(np.log(a), np.log(b))[0, 1]) < 4 / np.sqrt(n)
    assert lognormal_traits(ctx, 0.0, "struggle_vigour").tolist() == [1.0] * n
    # the same subject in another chunk (another position) keeps its trait
    one = context(1, subjects=[n - 1], assay="tail_suspension", seed=17)
    assert lognormal_traits(one, 0.3, "struggle_vigour")[0] == a[n - 1]


def test_activity_trait_is_kept_over_open_field_sessions():
    """30 saline mice, 1-min open field on days 1 and 2: with a large activity trait the
    two sessions' distances correlate across mice; without it they do not."""
    text = scenario("{assay: open_field, at: [1d, 2d], options: {bin_min: 1}}", 30, 8)
    corr = {}
    for cv in ("0.6", "0"):
        r = simulate(text, REG.with_settings([f"behavior.open_field.activity_trait_cv={cv}"]))
        w = r.pivot_table(index="subject", columns="time_h", values="value").to_numpy()
        corr[cv] = np.corrcoef(w.T)[0, 1]
    assert corr["0.6"] > 0.9 and abs(corr["0"]) < 0.5, corr


# ------------------------------------------------------------ worker pool


def test_worker_pool_spawns_one_thread_workers_with_the_parents_cache():
    ketasim.configure()
    with worker_pool(1) as pool:
        threads = pool.submit(numba.get_num_threads).result(timeout=120)
        cache = pool.submit(os.getenv, "NUMBA_CACHE_DIR").result(timeout=120)
    assert threads == 1
    assert cache == os.environ["NUMBA_CACHE_DIR"]


# ------------------------------------------------------------ per-segment tables


def three_group_segments() -> pd.DataFrame:
    """Groups a, b, c; each segment (50 um) has counts (day -1, day 1); None: not scored."""
    spec = {"a": {"1": [(10, 12), (10, 8), (10, 11)], "2": [(10, 10), (10, None)]},
            "b": {"1": [(20, 10), (20, 15)], "2": [(20, 30)]},
            "c": {"1": [(5, 6), (5, 7), (5, 4), (5, 5)]}}
    rows = []
    for g, mice in spec.items():
        for m, segs in mice.items():
            for k, (c0, c1) in enumerate(segs):
                rows.append((g, m, f"s{k}", 1, -1.0, c0, 50.0, c0 / 50))
                rows.append((g, m, f"s{k}", 2, 1.0, c1, None if c1 is None else 50.0,
                             None if c1 is None else c1 / 50))
    return G.read_segments(pd.DataFrame(rows, columns=list(G.SEGMENT_COLUMNS)))


def test_up_down_counts_and_chi_square_match_scipy():
    seg = three_group_segments()
    ud = G.up_down_test(seg).set_index("group")
    # each mouse's baseline is its segments' mean (10, 10 / 20, 20 / 5): by hand
    assert ud[["below", "at_or_above", "missing", "n_set"]].values.tolist() == [
        [1, 3, 1, 5], [2, 1, 0, 3], [1, 3, 0, 4]]
    obs = np.c_[ud["at_or_above"], ud["n_set"] - ud["at_or_above"]]
    chi2, p, dof, _ = stats.chi2_contingency(obs, correction=False)
    assert ud["chi2"].iat[0] == pytest.approx(chi2, rel=1e-12)
    assert ud["p"].iat[0] == pytest.approx(p, rel=1e-10) and ud["dof"].iat[0] == dof == 2
    two = G.up_down_test(seg.loc[seg["group"] != "c"]).iloc[0]  # dof 1: the erfc branch
    chi2, p, dof, _ = stats.chi2_contingency(obs[:2], correction=False)
    assert (two["chi2"], two["p"], two["dof"]) == (pytest.approx(chi2), pytest.approx(p), 1)


def test_set_sizes_and_raw_turnover_rates_by_hand():
    seg = three_group_segments()
    sizes = G.segment_set_sizes(seg).set_index("group")
    assert sizes[["mice", "segments", "included_mice", "included_segments"]].values.tolist() \
        == [[2, 5, 2, 5], [2, 3, 2, 3], [1, 4, 1, 4]]
    rows = [("a", "1", "s0", 1, -1.0, 1.0, 10.0, 20.0), ("a", "1", "s1", 1, -1.0, 1.0, 30.0, None),
            ("a", "2", "s0", 1, -1.0, 1.0, None, 40.0)]
    t = G.read_turnover(pd.DataFrame(rows, columns=list(G.TURNOVER_COLUMNS))).assign(
        included=True)
    r = G.turnover_rates(t).set_index("measure")
    assert r.loc["formation", ["mean", "n", "n_set"]].tolist() == [20.0, 2, 3]
    assert r.loc["formation", "sem"] == pytest.approx(np.std([10, 30], ddof=1) / np.sqrt(2))
    s = G.turnover_rates(t, sem="script").set_index("measure")
    assert s.loc["elimination", "sem"] == pytest.approx(np.std([20, 40], ddof=1) / np.sqrt(3))


def balanced_two_groups() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for g, shift in (("saline", 0.0), ("ketamine", 0.02)):
        for m in range(4):
            mu = rng.normal(0, 0.03)
            for s in range(3):
                c0 = int(rng.integers(8, 14))
                c1 = max(0, round((0.2 + shift + mu + rng.normal(0, 0.01)) * 50))
                rows.append((g, str(m), f"s{s}", 1, -1.0, c0, 50.0, c0 / 50))
                rows.append((g, str(m), f"s{s}", 2, 1.0, c1, 50.0, c1 / 50))
    return G.read_segments(pd.DataFrame(rows, columns=list(G.SEGMENT_COLUMNS)))


def test_mixed_model_on_a_balanced_design_matches_its_closed_form_and_scipy():
    """One day, 4 mice x 3 segments per group, random mouse intercept: REML's contrast is
    the difference of group means and its SE that of the t test on mouse means (balanced
    nested design, positive mouse variance); OLS and the segment test are Student's t
    on segments; the mouse test Student's t on mouse means."""
    seg = balanced_two_groups()
    m = G.density_mixed_model(seg, days=(1.0,), segment_effect=False)
    d1 = G.density_change(seg).query("day == 1.0")
    a = d1.loc[d1["group"] == "ketamine", "change_pct"].to_numpy()
    b = d1.loc[d1["group"] == "saline", "change_pct"].to_numpy()
    mm = d1.groupby(["group", "mouse"])["change_pct"].mean()
    ma, mb = mm["ketamine"].to_numpy(), mm["saline"].to_numpy()
    c = m.contrast.set_index("unit")
    assert m.converged and m.variance["mouse"] > 0
    assert (m.n_mice, m.n_segments, m.n_obs) == (8, 24, 24)
    assert c.loc["segment in mouse", "estimate"] == pytest.approx(a.mean() - b.mean(), rel=1e-6)
    se_mouse = np.sqrt(ma.var(ddof=1) / 4 + mb.var(ddof=1) / 4)
    assert c.loc["segment in mouse", "se"] == pytest.approx(se_mouse, rel=1e-3)
    seg_t = stats.ttest_ind(a, b)
    for unit in ("row", "segment"):
        assert c.loc[unit, "statistic"] == pytest.approx(seg_t.statistic, rel=1e-9)
        assert c.loc[unit, "p"] == pytest.approx(seg_t.pvalue, rel=1e-9)
        assert c.loc[unit, "df"] == 22
    mouse_t = stats.ttest_ind(ma, mb)
    assert c.loc["mouse", "statistic"] == pytest.approx(mouse_t.statistic, rel=1e-9)
    assert c.loc["mouse", "p"] == pytest.approx(mouse_t.pvalue, rel=1e-9)
    lo, hi = stats.ttest_ind(ma, mb).confidence_interval()
    assert (c.loc["mouse", "ci_low"], c.loc["mouse", "ci_high"]) == (
        pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))


def test_sex_filter_keeps_the_whole_sets_n_set():
    seg = three_group_segments()
    mice = G.read_mice(pd.DataFrame({"group": ["a", "a", "b", "b", "c"],
                                     "mouse": [1, 2, 1, 2, 1],
                                     "sex": ["female", "M", "f", "male", "F"]}))
    assert mice["sex"].tolist() == ["F", "M", "F", "M", "F"]
    s = G.density_change_summary(seg, mice=mice, sex="F").set_index(["group", "day"])
    # group a, day 1: mouse 1's segments 12, 8, 11 against its baseline 10
    assert s.loc[("a", 1.0), "mean"] == pytest.approx(np.mean([20.0, -20.0, 10.0]))
    assert s.loc[("a", 1.0), ["n", "n_set"]].tolist() == [3, 5]
    assert s.loc[("a", 1.0), "sem"] == pytest.approx(np.std([20, -20, 10], ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError, match="sex= needs a mouse table"):
        G.density_change_summary(seg, sex="F")


# fixed (was BUG): an unknown sex (e.g. 'X') in density_change_summary silently gives an
#   empty summary
def test_unknown_sex_is_refused():
    seg = three_group_segments()
    mice = G.read_mice(pd.DataFrame({"group": ["a", "a", "b", "b", "c"],
                                     "mouse": [1, 2, 1, 2, 1], "sex": list("FMFMF")}))
    with pytest.raises(ValueError, match="sex"):
        G.density_change_summary(seg, mice=mice, sex="X")


def test_turnover_masks_are_checked_against_and_copied_from_the_segments():
    seg = three_group_segments()
    turn = pd.DataFrame([("a", "1", "s0", 1, -1.0, 1.0, 10.0, 20.0, False)],
                        columns=[*G.TURNOVER_COLUMNS, "included"])
    with pytest.raises(G.SegmentDataError,
                       match=r"column 'included', row 1: included of segment .*disagrees"):
        G.read_turnover(turn, segments=seg)
    got = G.read_turnover(turn.drop(columns="included"), segments=seg)
    assert got["included"].tolist() == [True]


def test_mouse_index_is_unique_within_a_group_only():
    with pytest.raises(G.SegmentDataError,
                       match=r"column 'mouse_index', row 2: repeated mouse_index within "
                             r"group 'a'"):
        G.read_mice(pd.DataFrame({"group": ["a", "a"], "mouse": [1, 2], "mouse_index": [3, 3]}))
    ok = G.read_mice(pd.DataFrame({"group": ["a", "b"], "mouse": [1, 2], "mouse_index": [3, 3]}))
    assert ok["mouse_index"].tolist() == [3.0, 3.0]


def test_read_dataset_folder_errors(tmp_path):
    with pytest.raises(G.SegmentDataError, match="not a folder"):
        G.read_dataset(tmp_path / "nope")
    with pytest.raises(G.SegmentDataError, match=r"no segments\.csv or segments\.parquet"):
        G.read_dataset(tmp_path)
    seg = three_group_segments().drop(columns="included")
    seg.to_csv(tmp_path / "segments.csv", index=False)
    assert len(G.read_dataset(tmp_path).segments) == len(seg)
    seg.to_parquet(tmp_path / "segments.parquet", index=False)
    with pytest.raises(G.SegmentDataError,
                       match=r"several files for the segments table \(segments\.csv, "
                             r"segments\.parquet\); keep one"):
        G.read_dataset(tmp_path)


# fixed (was BUG): length_change matches day exactly, not within _DAY_TOL like the other
#   summaries, and then reports the day as missing
def test_length_change_matches_its_day_like_the_other_summaries():
    """up_down_test and baseline_day accept a day within 1e-9 of a table day; length_change
    refuses day=1 + 1e-12 with 'no lengths on day -1 or day 1'."""
    seg = three_group_segments()
    G.up_down_test(seg, day=1.0 + 1e-12)  # accepted
    pd.testing.assert_frame_equal(G.length_change(seg, day=1.0 + 1e-12),
                                  G.length_change(seg, day=1.0))
