"""Review of ketasim.validation.statistic: every statistic against an independent
computation (numpy / scipy / statsmodels / lifelines) on small hand-built readouts and
tracking tables, error handling for missing data, and the expression sandbox."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketasim.validation import statistic as S
from ketasim.validation.statistic import (
    FUNCTIONS,
    StatisticError,
    check_expression,
    evaluate,
)

COLS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]


def table(rows, region=None):
    df = pd.DataFrame(rows, columns=COLS)
    if region is not None:
        df["region"] = region
    return df


def ev(expr, r, tracking=None):
    """evaluate, with numpy's warnings for empty/NaN data silenced (pytest makes them
    errors in this project)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(expr, r, tracking)


RNG = np.random.default_rng(7)
A_VALS = RNG.normal(10.0, 1.0, 7)
B_VALS = RNG.normal(12.0, 3.0, 5)


def two_arms(a=A_VALS, b=B_VALS, t=24.0, readout="r", assay="x"):
    rows = [("a", i, assay, readout, t, float(v), "u") for i, v in enumerate(a)]
    rows += [("b", i, assay, readout, t, float(v), "u") for i, v in enumerate(b)]
    return table(rows)


# ------------------------------------------------------------------ descriptive
def test_mean_sd_sem_n_drop_nan_and_match_numpy():
    a = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    r = two_arms(a=a)
    f = a[np.isfinite(a)]
    assert ev("mean('a', 'r', '24h')", r) == pytest.approx(f.mean())
    assert ev("sd('a', 'r', '24h')", r) == pytest.approx(np.std(f, ddof=1))
    assert ev("sem('a', 'r', '24h')", r) == pytest.approx(stats.sem(f))
    assert ev("n('a', 'r', '24h')", r) == 4.0


def test_peak_and_time_of_peak_are_of_the_arm_mean_course():
    rows = []
    for s, vals in enumerate([[1, 5, 2, 9], [1, 3, 8, 0]]):
        for t, v in zip([0.0, 1.0, 2.0, 3.0], vals):
            rows.append(("a", s, "x", "r", t, float(v), "u"))
    r = table(rows)
    # arm mean course: 1, 4, 5, 4.5
    assert ev("peak('a', 'r')", r) == 5.0
    assert ev("time_of_peak('a', 'r')", r) == 2.0
    assert ev("peak('a', 'r', after='2.5h')", r) == 4.5
    assert ev("time_of_peak('a', 'r', after='2.5h')", r) == 3.0


# ------------------------------------------------------------------ two-arm tests
def test_p_is_two_sided_welch_by_default_and_student_on_request():
    r = two_arms()
    welch = stats.ttest_ind(A_VALS, B_VALS, equal_var=False).pvalue
    student = stats.ttest_ind(A_VALS, B_VALS, equal_var=True).pvalue
    assert welch != pytest.approx(student)  # the data tell the two apart
    assert ev("p('a', 'b', 'r', '24h')", r) == pytest.approx(welch, rel=1e-12)
    assert ev("p('b', 'a', 'r', '24h')", r) == pytest.approx(welch, rel=1e-12)
    assert ev("p('a', 'b', 'r', '24h', 'student_t')", r) == pytest.approx(student, rel=1e-12)
    assert ev("p('a', 'b', 'r', '24h', test='mann_whitney')", r) == pytest.approx(
        stats.mannwhitneyu(A_VALS, B_VALS, alternative="two-sided").pvalue)


def test_p_lower_and_p_higher_are_one_sided_welch_with_the_right_direction():
    r = two_arms()  # a (mean ~10) is lower than b (~12)
    less = stats.ttest_ind(A_VALS, B_VALS, equal_var=False, alternative="less").pvalue
    greater = stats.ttest_ind(A_VALS, B_VALS, equal_var=False,
                              alternative="greater").pvalue
    assert less < 0.05 < greater
    assert ev("p_lower('a', 'b', 'r', '24h')", r) == pytest.approx(less, rel=1e-10)
    assert ev("p_higher('a', 'b', 'r', '24h')", r) == pytest.approx(greater, rel=1e-10)
    assert ev("p_higher('b', 'a', 'r', '24h')", r) == pytest.approx(less, rel=1e-10)
    assert ev("p_lower('b', 'a', 'r', '24h')", r) == pytest.approx(greater, rel=1e-10)
    assert (ev("p_lower('a', 'b', 'r', '24h')", r) + ev("p_higher('a', 'b', 'r', '24h')", r)
            == pytest.approx(1.0))
    # equal means: 0.5 either way
    same = two_arms(a=[1.0, 2.0, 3.0], b=[0.0, 2.0, 4.0])
    assert ev("p_lower('a', 'b', 'r', '24h')", same) == pytest.approx(0.5)
    assert ev("p_higher('a', 'b', 'r', '24h')", same) == pytest.approx(0.5)
    # one value in an arm: no test (NaN), not a number
    assert np.isnan(ev("p_lower('a', 'b', 'r', '24h')", two_arms(a=[1.0])))


def test_cohen_d_pooled_sd_and_sign():
    r = two_arms()
    na, nb = len(A_VALS), len(B_VALS)
    pooled = np.sqrt(((na - 1) * np.var(A_VALS, ddof=1) + (nb - 1) * np.var(B_VALS, ddof=1))
                     / (na + nb - 2))
    d = (A_VALS.mean() - B_VALS.mean()) / pooled
    assert d < 0
    assert ev("cohen_d('a', 'b', 'r', '24h')", r) == pytest.approx(d, rel=1e-12)
    assert ev("cohen_d('b', 'a', 'r', '24h')", r) == pytest.approx(-d, rel=1e-12)


# ------------------------------------------------------------------ time parsing
@pytest.mark.parametrize("at,hours", [("24h", 24.0), ("-1d", -24.0), ("20.5d", 492.0),
                                      ("90min", 1.5), ("1w", 168.0), ("24", 24.0)])
def test_time_strings_and_numbers(at, hours):
    rows = [("a", 0, "x", "r", t, t * 10 + 1, "u") for t in (-24.0, 1.5, 24.0, 168.0, 492.0)]
    r = table(rows)
    expr = (f"mean('a', 'r', {at})" if at == "24" else f"mean('a', 'r', '{at}')")
    assert ev(expr, r) == pytest.approx(hours * 10 + 1)


# ------------------------------------------------------------------ clinical
def _clinical(arm_scores, readout="madrs_total", times=(-24.0, 24.0)):
    """arm -> {subject: (baseline, visit)}; None leaves the row out, NaN writes NaN."""
    rows = []
    for arm, subjects in arm_scores.items():
        for s, pair in subjects.items():
            for t, v in zip(times, pair):
                if v is not None:
                    rows.append((arm, s, "madrs", readout, t, v, "points"))
    rows = rows[::-1]  # order must not matter
    return table(rows)


def test_mean_change_pairs_each_patient_with_their_own_baseline():
    k = {3: (30.0, 10.0), 11: (40.0, 35.0), 5: (None, 5.0), 7: (28.0, None),
         8: (np.nan, 12.0), 9: (33.0, np.nan), 2: (25.0, 20.0)}
    r = _clinical({"ket": k})
    want = np.mean([10 - 30, 35 - 40, 20 - 25])  # only 3, 11, 2 have both
    assert ev("mean_change('ket', 'madrs_total', '-1d', '24h')", r) == pytest.approx(want)
    # not a difference of arm means (which would use unpaired patients)
    naive = (np.nanmean([10, 35, 5, 12, 20]) - np.nanmean([30, 40, 28, 33, 25]))
    assert want != pytest.approx(naive)


def test_response_rate_inclusive_half_and_remission_inclusive_threshold():
    k = {0: (30.0, 15.0),   # exactly 50%: responds
         1: (30.0, 15.5),   # just under
         2: (33.0, 16.5),   # exactly 50% of an odd total
         3: (20.0, 12.0),   # 40%
         4: (26.0, None)}   # no visit: not counted
    r = _clinical({"ket": k})
    assert ev("response_rate('ket', 'madrs_total', '-1d', '24h')", r) == pytest.approx(2 / 4)
    assert ev("response_rate('ket', 'madrs_total', '-1d', '24h', 0.45)", r) == pytest.approx(
        3 / 4)
    assert ev("response_rate('ket', 'madrs_total', '-1d', '24h', 0.4)", r) == 1.0
    # remission at the visit: <= 12 inclusive (12.0 and below)
    assert ev("remission_rate('ket', 'madrs_total', '24h', 12)", r) == pytest.approx(1 / 4)
    assert ev("remission_rate('ket', 'madrs_total', '24h', 15)", r) == pytest.approx(2 / 4)
    assert ev("remission_rate('ket', 'madrs_total', '24h', 11.9)", r) == 0.0


def test_change_tests_match_scipy():
    ka = {i: (30.0 + i, 30.0 + i - d) for i, d in enumerate([14, 18, 9, 20, 16, 12])}
    kb = {i: (31.0 + i, 31.0 + i - d) for i, d in enumerate([3, 7, 1, 9, 4])}
    kb[9] = (None, 10.0)  # unpaired: ignored
    r = _clinical({"ket": ka, "pbo": kb})
    ca = np.array([-14, -18, -9, -20, -16, -12], float)
    cb = np.array([-3, -7, -1, -9, -4], float)
    p = stats.ttest_ind(ca, cb, equal_var=False, alternative="less").pvalue
    assert ev("p_change_lower('ket', 'pbo', 'madrs_total', '-1d', '24h')", r) == pytest.approx(
        p, rel=1e-10)
    assert ev("p_change_lower('pbo', 'ket', 'madrs_total', '-1d', '24h')", r) == pytest.approx(
        1 - p, rel=1e-10)
    pooled = np.sqrt((5 * np.var(ca, ddof=1) + 4 * np.var(cb, ddof=1)) / 9)
    assert ev("d_change('ket', 'pbo', 'madrs_total', '-1d', '24h')", r) == pytest.approx(
        (ca.mean() - cb.mean()) / pooled, rel=1e-12)
    # paired, one-sided: values at 24h higher than baseline?  (they fell: p near 1)
    b = np.array([30.0 + i for i in range(6)])
    p_up = stats.ttest_rel(b + ca, b, alternative="greater").pvalue
    assert ev("p_paired_higher('ket', 'madrs_total', '-1d', '24h')", r) == pytest.approx(
        p_up, rel=1e-10)
    assert ev("p_paired_higher('ket', 'madrs_total', '24h', '-1d')", r) == pytest.approx(
        stats.ttest_rel(b, b + ca, alternative="greater").pvalue, rel=1e-10)


def test_mediated_share_is_product_of_coefficients_over_total():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    rows, data = [], []
    for arm, x in (("pbo", 0.0), ("ket", 1.0)):
        for s in range(12):
            m = 2.0 * x + rng.normal()
            y = -3.0 * x - 1.5 * m + rng.normal()
            b0 = 30.0 + s
            rows += [(arm, s, "madrs", "madrs_total", -24.0, b0, "p"),
                     (arm, s, "madrs", "madrs_total", 24.0, b0 + y, "p"),
                     (arm, s, "cadss", "cadss", 1.0, m, "p")]
            data.append((x, m, y))
    r = table(rows)
    x, m, y = np.array(data).T
    a = sm.OLS(m, sm.add_constant(x)).fit().params[1]
    b = sm.OLS(y, sm.add_constant(np.column_stack([x, m]))).fit().params[2]
    c = sm.OLS(y, sm.add_constant(x)).fit().params[1]
    got = ev("mediated_share('pbo', 'ket', 'cadss', '1h', 'madrs_total', '-1d', '24h')", r)
    assert got == pytest.approx(a * b / c, rel=1e-8)


# ------------------------------------------------------------------ relapse / taper
VISITS = [0.0, 168.0, 336.0, 504.0, 672.0]


def _trial(arms):
    rows = []
    for arm, patients in arms.items():
        for s, scores in enumerate(patients):
            for t, v in zip(VISITS, scores):
                if v is not None:
                    rows.append((arm, s, "madrs", "madrs_total", t, float(v), "p"))
    return table(rows)


def _relapse(scores, threshold=22.0, consecutive=2, start=0.0):
    """Independent: first run of `consecutive` observed visits >= threshold."""
    obs = [(t, v) for t, v in zip(VISITS, scores) if v is not None and t >= start]
    run = 0
    for k, (t, v) in enumerate(obs):
        run = run + 1 if v >= threshold else 0
        if run == consecutive:
            return obs[k - consecutive + 1][0] - start, 1
    return (obs[-1][0] - start if obs else 0.0), 0


CONTROL = [[8, 25, 26, 10, 10], [8, 25, 10, 25, 9], [9, None, 24, 30, 30],
           [10, 10, 10, 10, 10], [7, 23, 24, 5, 5], [11, 12, 30, 31, None],
           [6, 9, None, None, None]]
TREATED = [[8, 10, 10, 10, 10], [8, 25, 10, 25, 30], [9, 8, 8, 8, 8],
           [10, 10, 10, 25, 24], [7, 9, 9, 9, None], [11, 12, 30, 10, 10]]


def test_relapse_share_and_hr_match_an_independent_count_and_lifelines():
    from lifelines import CoxPHFitter

    r = _trial({"ctl": CONTROL, "trt": TREATED})
    ctl = [_relapse(p) for p in CONTROL]
    trt = [_relapse(p) for p in TREATED]
    assert ev("relapse_share('ctl', 'madrs_total', '0h', 22)", r) == pytest.approx(
        np.mean([e for _, e in ctl]))
    assert ev("relapse_share('trt', 'madrs_total', '0h', 22)", r) == pytest.approx(
        np.mean([e for _, e in trt]))
    assert ev("relapse_share('ctl', 'madrs_total', '0h', 22, 1)", r) == pytest.approx(
        np.mean([_relapse(p, consecutive=1)[1] for p in CONTROL]))
    df = pd.DataFrame([(d, e, 0) for d, e in ctl] + [(d, e, 1) for d, e in trt],
                      columns=["T", "E", "trt"])
    hr = float(np.exp(CoxPHFitter().fit(df, "T", "E").params_["trt"]))
    assert ev("relapse_hr('ctl', 'trt', 'madrs_total', '0h', 22)", r) == pytest.approx(
        hr, rel=1e-4)


def test_stable_share_and_stable_relapse_share():
    r = _trial({"ctl": CONTROL})
    # stable: <= 12 at both visits 0h and 1w
    win = [p[:2] for p in CONTROL]
    stable = [all(v is not None and v <= 12 for v in w) for w in win]
    assert ev("stable_share('ctl', 'madrs_total', 12, '0h', '1w')", r) == pytest.approx(
        np.mean(stable))
    # relapse from 2w among the stable ones rated from 2w on (patient 6 is stable but
    # never rated again: left out, as the trial analysis does)
    want = np.mean([_relapse(p, start=336.0)[1] for p, s in zip(CONTROL, stable)
                    if s and any(v is not None for v in p[2:])])
    assert want == 0.5
    got = ev("relapse_share('ctl', 'madrs_total', '2w', 22, 2, 12, '0h', '1w')", r)
    assert got == pytest.approx(want)


def test_taper_share():
    rows = []
    # subject: [(dose time h, interval to next in days)]
    doses = {0: [(0.0, 7.0), (168.0, 14.0), (504.0, 28.0)],
             1: [(0.0, 7.0), (168.0, 14.0)],
             2: [(0.0, 28.0), (672.0, 7.0)],
             3: [(0.0, 7.0), (168.0, 28.0), (840.0, 28.0)]}
    for s, ds in doses.items():
        for t, v in ds:
            rows.append(("ket", s, "taper", "dose_interval", t, v, "d"))
    # MADRS: 0, 2, 3 respond at 24h
    for s, (b, v) in {0: (30, 10), 1: (30, 20), 2: (30, 15), 3: (30, 12)}.items():
        rows += [("ket", s, "madrs", "madrs_total", -24.0, float(b), "p"),
                 ("ket", s, "madrs", "madrs_total", 24.0, float(v), "p")]
    r = table(rows)
    # at 4w (672h): last intervals 28, 14, 7, 28
    assert ev("taper_share('ket', '4w', '28d')", r) == pytest.approx(2 / 4)
    assert ev("taper_share('ket', '4w', '14d')", r) == pytest.approx(3 / 4)
    assert ev("taper_share('ket', '4w', '28d', 'madrs_total', '-1d', '24h')", r) == (
        pytest.approx(2 / 3))


# ------------------------------------------------------------------ PK
def test_half_life_auc_tmax_match_manual():
    t = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    rows, halves, areas, tmaxes = [], [], [], []
    for s, (k, c0) in enumerate([(0.3, 100.0), (0.2, 80.0), (0.5, 120.0)]):
        c = c0 * np.exp(-k * t) * (1 - np.exp(-3 * t))
        rows += [("a", s, "pk", "c", ti, ci, "ng/mL") for ti, ci in zip(t, c)]
        w = t >= 2.0
        halves.append(np.log(2) / -np.polyfit(t[w], np.log(c[w]), 1)[0])
        areas.append(np.sum(np.diff(t) * (c[1:] + c[:-1]) / 2))
        tmaxes.append(t[np.argmax(c)] - 0.5)
    rows.append(("a", 0, "pk", "c", 16.0, np.nan, "ng/mL"))  # NaN ignored
    r = table(rows)
    assert ev("half_life('a', 'c', '2h', '8h')", r) == pytest.approx(np.median(halves))
    assert ev("auc('a', 'c', '30min', '8h')", r) == pytest.approx(np.mean(areas))
    assert ev("tmax('a', 'c', '30min', '8h')", r) == pytest.approx(np.median(tmaxes))


# ------------------------------------------------------------------ correlation
def test_pearson_pools_arms_and_pairs_by_subject_within_arm():
    rows, xs, ys = [], [], []
    rng = np.random.default_rng(11)
    for arm in ("a", "b"):
        for s in range(5):
            x, y = rng.normal(), rng.normal()
            rows.append((arm, s, "x", "dens", 96.0, x, "u"))
            if s != 4:  # subject 4 has no AIMs: left out
                rows.append((arm, s, "x", "aims", 72.0, y, "u"))
                xs.append(x)
                ys.append(y)
    r = table(rows[::-1])
    res = stats.pearsonr(xs, ys)
    assert ev("pearson_r('a, b', 'dens', '4d', 'aims', '3d')", r) == pytest.approx(
        res.statistic, rel=1e-12)
    assert ev("pearson_p('a,b', 'dens', '4d', 'aims', '3d')", r) == pytest.approx(
        res.pvalue, rel=1e-10)


# ------------------------------------------------------------------ regions and assays
def test_region_qualified_readouts():
    rows = [("a", s, "x", "pmtor_rel", 1.0, 1.0 + s, "u") for s in range(3)]
    rows += [("a", s, "x", "pmtor_rel", 1.0, 10.0 + s, "u") for s in range(3)]
    r = table(rows, region=["mpfc"] * 3 + ["striatum"] * 3)
    assert ev("mean('a', 'striatum:pmtor_rel', '1h')", r) == pytest.approx(11.0)
    assert ev("mean('a', 'mpfc:pmtor_rel', '1h')", r) == pytest.approx(2.0)
    with pytest.raises(StatisticError, match="REGION:pmtor_rel"):
        ev("mean('a', 'pmtor_rel', '1h')", r)
    with pytest.raises(StatisticError, match="hippocampus:pmtor_rel"):
        ev("mean('a', 'hippocampus:pmtor_rel', '1h')", r)
    # one region measures it: no qualifier needed
    only = table(rows[3:], region="striatum")
    assert ev("mean('a', 'pmtor_rel', '1h')", only) == pytest.approx(11.0)
    # no region column: the default region (mpfc) only
    plain = table(rows[:3])
    assert ev("mean('a', 'mpfc:pmtor_rel', '1h')", plain) == pytest.approx(2.0)
    with pytest.raises(StatisticError, match="striatum:pmtor_rel"):
        ev("mean('a', 'striatum:pmtor_rel', '1h')", plain)


def _two_assays():
    rows = [("a", s, "two_photon_spines", "spine_density_per_10um", 96.0, 5.0 + s, "u")
            for s in range(3)]
    rows += [("a", s, "fixed_tissue_spines", "spine_density_per_10um", 96.0, 9.0 + s, "u")
             for s in range(3)]
    rows += [("b", s, "fixed_tissue_spines", "spine_density_per_10um", 96.0, 7.0 + s, "u")
             for s in range(3)]
    return table(rows)


def test_assay_argument_picks_one_of_two_assays():
    r = _two_assays()
    assert ev("mean('a', 'spine_density_per_10um', '4d', 'two_photon_spines')", r) == 6.0
    assert ev("mean('a', 'spine_density_per_10um', '4d', assay='fixed_tissue_spines')",
              r) == 10.0
    assert ev("cohen_d('a', 'b', 'spine_density_per_10um', '4d', 'fixed_tissue_spines')",
              r) == pytest.approx(2.0)
    with pytest.raises(StatisticError, match="in assay 'confocal'"):
        ev("mean('a', 'spine_density_per_10um', '4d', 'confocal')", r)


def test_two_assays_without_assay_argument_is_an_error():
    with pytest.raises(StatisticError, match="assay"):
        ev("mean('a', 'spine_density_per_10um', '4d')", _two_assays())


# ------------------------------------------------------------------ missing data
MISSING = [
    ("mean('zz', 'r', '24h')", "zz"),
    ("mean('a', 'nope', '24h')", "nope"),
    ("mean('a', 'r', '25h')", "25h"),
    ("sd('zz', 'r', '24h')", "zz"),
    ("p('a', 'zz', 'r', '24h')", "zz"),
    ("p_lower('zz', 'b', 'r', '24h')", "zz"),
    ("p_higher('a', 'b', 'r', '2h')", "2h"),
    ("cohen_d('a', 'zz', 'r', '24h')", "zz"),
    ("peak('zz', 'r')", "zz"),
    ("mean_change('a', 'r', '-1d', '24h')", "-1d"),
    ("response_rate('zz', 'r', '24h', '24h')", "zz"),
    ("remission_rate('a', 'nope', '24h', 12)", "nope"),
    ("p_change_lower('a', 'zz', 'r', '24h', '24h')", "zz"),
    ("pearson_r('a', 'r', '24h', 'nope', '24h')", "nope"),
    ("relapse_share('zz', 'r', '0h', 22)", "zz"),
    ("stable_share('a', 'nope', 12, '0h', '1d')", "nope"),
    ("taper_share('a', '1w', '28d')", "taper"),
    ("persistence('a', '0h', '1d', '2d')", "tracking"),
    ("segment_density_change('a', '1d')", "tracking"),
    ("clustering_p('a', '0h', '1d')", "tracking"),
]


@pytest.mark.parametrize("expr,name", MISSING)
def test_missing_arm_time_or_readout_is_a_statistic_error_naming_it(expr, name):
    with pytest.raises(StatisticError, match=re.escape(name)):
        ev(expr, two_arms())


@pytest.mark.parametrize("expr", ["mean('a', 'r', '24h')", "remission_rate('a', 'r', '24h', 1)",
                                  "p_lower('a', 'b', 'r', '24h')", "peak('a', 'r')",
                                  "cohen_d('a', 'b', 'r', '24h')",
                                  "mean_change('a', 'r', '24h', '24h')"])
def test_all_nan_values_never_give_a_finite_number(expr):
    r = two_arms(a=[np.nan] * 4)
    try:
        v = ev(expr, r)
    except StatisticError:
        return
    assert not np.isfinite(v)


# ------------------------------------------------------------------ spine tracking
def _tracking():
    """Subject 0: branch 0 (10 um), branch 1 (20 um); subject 1: branch 0 (10 um);
    sessions 0, 24, 48 h; the spines present at each."""
    present = {(0, 0): {0.0: {1, 2, 3, 4}, 24.0: {1, 2, 3, 5, 6}, 48.0: {1, 5, 7}},
               (0, 1): {0.0: {1, 2}, 24.0: {1, 2}, 48.0: {1, 2, 3}},
               (1, 0): {0.0: {1, 2, 3}, 24.0: {2, 3, 4}, 48.0: {2, 3, 4}}}
    length = {(0, 0): 10.0, (0, 1): 20.0, (1, 0): 10.0}
    rows = []
    for (s, b), sessions in present.items():
        for t, ids in sessions.items():
            for i in sorted(ids):
                rows.append({"subject": str(s), "branch": str(b), "spine_id": str(i),
                             "time_h": t, "position_um": float(i), "size": 1.0,
                             "class": "mushroom", "arm": "a", "present": True,
                             "branch_length_um": length[(s, b)]})
    return {"a": pd.DataFrame(rows)}


def test_persistence_mean_over_branches_of_new_spines_surviving():
    # new at 24h (absent at 0h): (0,0) {5,6} -> {5} 50%; (0,1) none; (1,0) {4} -> 100%
    assert ev("persistence('a', '0h', '24h', '48h')", two_arms(), _tracking()) == (
        pytest.approx(75.0))


def test_segment_statistics_match_hand_counts():
    tr, r = _tracking(), two_arms()
    # densities/um: (0,0) .4 .5 .3; (0,1) .1 .1 .15; (1,0) .3 .3 .3
    # mouse baseline (mean density at the first session): mouse 0 .25, mouse 1 .3
    d1 = np.mean([(0.5 - 0.25) / 0.25, (0.1 - 0.25) / 0.25, 0.0]) * 100
    d2 = np.mean([(0.3 - 0.25) / 0.25, (0.15 - 0.25) / 0.25, 0.0]) * 100
    assert ev("segment_density_change('a', '24h')", r, tr) == pytest.approx(d1)
    assert ev("segment_density_change('a', '2d')", r, tr) == pytest.approx(d2)
    # formation (% of spines at the interval start): 0-24 h: 50, 0, 33.3; 24-48 h: 20, 50, 0
    f1, f2 = [50.0, 0.0, 100 / 3], [20.0, 50.0, 0.0]
    e1, e2 = [25.0, 0.0, 100 / 3], [60.0, 0.0, 0.0]
    assert ev("segment_turnover('a', 'formation', '24h')", r, tr) == pytest.approx(np.mean(f1))
    assert ev("segment_turnover('a', 'formation', '48h')", r, tr) == pytest.approx(np.mean(f2))
    assert ev("segment_turnover('a', 'elimination', '24h')", r, tr) == pytest.approx(
        np.mean(e1))
    assert ev("segment_turnover('a', 'elimination', '2d')", r, tr) == pytest.approx(
        np.mean(e2))
    # change from the mouse's mean rate in the first interval: mouse 0 formation 25,
    # mouse 1 33.3
    base = [25.0, 25.0, 100 / 3]
    assert ev("segment_turnover_change('a', 'formation', '48h')", r, tr) == pytest.approx(
        np.mean(np.subtract(f2, base)))
    assert ev("segment_turnover_change('a', 'formation', '24h')", r, tr) == pytest.approx(
        np.mean(np.subtract(f1, base)))
    with pytest.raises(StatisticError, match="measure"):
        ev("segment_turnover('a', 'birth', '24h')", r, tr)
    with pytest.raises(StatisticError, match="no segment value"):
        ev("segment_turnover('a', 'formation', '12h')", r, tr)


# ------------------------------------------------------------------ the sandbox
@pytest.mark.parametrize("expr", [
    "__import__('os')", "__import__('os').system('true')", "mean.__globals__",
    "mean('a', 'r', '24h').__class__", "eval('1')", "exec('x=1')", "open('/etc/passwd')",
    "(lambda: 1)()", "[x for x in (1,)]", "mean(*['a', 'r', '24h'])",
    "mean(**{'arm': 'a'})", "np.mean", "getattr(mean, 'x')", "2 ** 3", "1 if 1 else 2",
    "mean('a', 'r', '24h')[0]", "not 1", "~1", "+1", "1 < 2", "f'{1}'",
    "globals()", "S", "mean == mean"])
def test_evaluate_rejects_code(expr):
    with pytest.raises(StatisticError):
        check_expression(expr)
    with pytest.raises(StatisticError):
        ev(expr, two_arms())


def test_arithmetic_and_division_by_zero():
    r = two_arms()
    m = A_VALS.mean()
    assert ev("-mean('a', 'r', '24h') * 2 + 1 - 3 / 4", r) == pytest.approx(-m * 2 + 1 - 0.75)
    with pytest.raises(StatisticError, match="division by zero"):
        ev("1 / (mean('a', 'r', '24h') - mean('a', 'r', '24h'))", r)


# ------------------------------------------------------------------ targets.yaml
def _used_functions():
    from ketasim.validation.targets import load_targets

    used = set()
    for t in load_targets().values():
        for e in (t.statistic, t.effect):
            if e:
                check_expression(e)
                used |= {n.id for n in __import__("ast").walk(check_expression(e))
                         if isinstance(n, __import__("ast").Name)}
    return used


def test_every_statistic_in_targets_exists():
    used = _used_functions()
    assert used and used <= set(FUNCTIONS)


def test_every_statistic_in_targets_is_documented():
    fns = S._functions(S._Data(pd.DataFrame(columns=COLS)))
    undocumented = sorted(u for u in _used_functions()
                          if not fns[u].__doc__ and not re.search(rf"\b{u}\b", S.__doc__))
    assert undocumented == []


# ------------------------------------------------------------------ bugs / doubtful
def test_bad_time_string_is_a_statistic_error():
    with pytest.raises(StatisticError, match="24hr"):
        evaluate("mean('a', 'r', '24hr')", two_arms())


def test_time_of_peak_after_the_last_time_is_a_statistic_error():
    with pytest.raises(StatisticError):
        ev("time_of_peak('a', 'r', after='3d')", two_arms())


def test_time_match_is_exact():
    rows = [("a", 0, "x", "r", 492.0, 1.0, "u"), ("a", 1, "x", "r", 492.004, 100.0, "u")]
    assert ev("mean('a', 'r', '20.5d')", table(rows)) == 1.0


def test_integer_constant_arithmetic_does_not_overflow():
    assert ev("10000000000 * 10000000000", two_arms()) == pytest.approx(1e20)


def test_window_statistics_name_a_missing_arm():
    r = table([("ketamine", 0, "pk", "c", t, 10.0 / (1 + t), "u") for t in (1.0, 2.0, 4.0)])
    with pytest.raises(StatisticError, match="ketamin'"):
        ev("half_life('ketamin', 'c', '1h', '4h')", r)


# ------------------------------------------------------------------ fixes of the review
def test_assay_ambiguity_is_judged_on_the_rows_selected():
    r = _two_assays()
    # 0h: only two-photon imaging measures the density: no assay needed
    extra = [("a", s, "two_photon_spines", "spine_density_per_10um", 0.0, 4.0 + s, "u")
             for s in range(3)]
    r = pd.concat([r, table(extra)], ignore_index=True)
    assert ev("mean('a', 'spine_density_per_10um', '0h')", r) == 5.0
    for expr in ["sd('a', 'spine_density_per_10um', '4d')",
                 "p('a', 'b', 'spine_density_per_10um', '4d')",
                 "peak('a', 'spine_density_per_10um')",
                 "half_life('a', 'spine_density_per_10um', '0h', '4d')",
                 "mean_change('a', 'spine_density_per_10um', '0h', '4d')",
                 "remission_rate('a', 'spine_density_per_10um', '4d', 6)",
                 ("pearson_r('a', 'spine_density_per_10um', '0h', "
                  "'spine_density_per_10um', '4d')"),
                 "stable_share('a', 'spine_density_per_10um', 6, '0h', '4d')"]:
        with pytest.raises(StatisticError, match="assays .*fixed_tissue_spines.*"
                                                 "two_photon_spines.*assay"):
            ev(expr, r)
    # by_subject, course and window honour the assay argument
    tp = "'two_photon_spines'"
    assert ev(f"peak('a', 'spine_density_per_10um', {tp})", r) == 6.0
    assert ev(f"time_of_peak('a', 'spine_density_per_10um', assay={tp})", r) == 96.0
    assert ev(f"mean_change('a', 'spine_density_per_10um', '0h', '4d', {tp})", r) == 1.0
    assert ev(f"remission_rate('a', 'spine_density_per_10um', '4d', 6, {tp})", r) == (
        pytest.approx(2 / 3))
    assert ev(f"pearson_r('a', 'spine_density_per_10um', '0h', 'spine_density_per_10um', "
              f"'4d', assay_b={tp})", r) == pytest.approx(1.0)
    assert ev(f"auc('a', 'spine_density_per_10um', '0h', '4d', {tp})", r) == pytest.approx(
        96.0 * 5.5)


def test_errors_of_analysis_functions_are_statistic_errors_naming_the_problem():
    r = two_arms()
    with pytest.raises(StatisticError, match="unknown test 'bogus'"):
        ev("p('a', 'b', 'r', '24h', test='bogus')", r)
    with pytest.raises(StatisticError, match="after '3d'"):
        ev("time_of_peak('a', 'r', after='3d')", r)
    with pytest.raises(StatisticError, match="after '3d'"):
        ev("peak('a', 'r', after='3d')", r)
    zero = _clinical({"ket": {0: (0.0, 3.0), 1: (30.0, 10.0)}})
    with pytest.raises(StatisticError, match=r"baseline '-1d' is 0 for subject 0"):
        ev("response_rate('ket', 'madrs_total', '-1d', '24h')", zero)
    with pytest.raises(StatisticError, match="fraction"):
        ev("response_rate('ket', 'madrs_total', '-1d', '24h', 2)",
           _clinical({"ket": {1: (30.0, 10.0)}}))
    rows = []
    for arm in ("pbo", "ket"):
        for s in range(6):
            rows += [(arm, s, "madrs", "madrs_total", -24.0, 30.0 + s, "p"),
                     (arm, s, "madrs", "madrs_total", 24.0, 20.0 - s, "p"),
                     (arm, s, "cadss", "cadss", 1.0, 4.0, "p")]
    with pytest.raises(StatisticError, match="mediator 'cadss' at '1h' is constant"):
        ev("mediated_share('pbo', 'ket', 'cadss', '1h', 'madrs_total', '-1d', '24h')",
           table(rows))
    # a check inside an analysis function (relapse_rows: consecutive >= 1)
    trial = _trial({"ctl": CONTROL})
    with pytest.raises(StatisticError, match="consecutive"):
        ev("relapse_share('ctl', 'madrs_total', '0h', 22, 0)", trial)
    with pytest.raises(StatisticError, match="not a number"):
        ev("mean('a', 'r', '24h') + 'x'", r)


def test_a_bad_time_is_found_when_the_expression_is_checked():
    with pytest.raises(StatisticError, match=r"mean\(\) argument at: time '24hr'"):
        check_expression("mean('a', 'r', '24hr')")
    with pytest.raises(StatisticError, match="argument after: time '2 days'"):
        check_expression("peak('a', 'r', after='2 days')")
    with pytest.raises(StatisticError, match="argument at_least: time '28'"):
        check_expression("taper_share('ket', '4w', '28')")
    check_expression("relapse_share('a', 'r', '0h', 22, 2, 12, '0h', '1w', at_least=3)")
    with pytest.raises(StatisticError, match=r"mean\(\): missing"):
        check_expression("mean('a', 'r')")


def _one_target(statistic: str, tolerance: str) -> str:
    """A targets file of one validation target T-X-01 with this statistic."""
    return (f"- target_id: T-X-01\n  facts: [F-W-1]\n  source: s\n  quantity: q\n"
            f"  published: p\n  statistic: {statistic}\n  tolerance: \"{tolerance}\"\n"
            f"  role: validation\n")


def test_a_bad_time_in_the_targets_file_names_the_target():
    from ketasim.validation.targets import TargetError, parse_targets

    text = _one_target("mean('a', 'r', '1h') / mean('a', 'r', '24hr')", "> 0")
    with pytest.raises(TargetError, match="T-X-01.*'24hr'"):
        parse_targets(text, parameters=frozenset())
    with pytest.raises(TargetError, match="T-X-01.*effect.*'1 hour'"):
        parse_targets(text.replace("'24hr'", "'24h'") + "  effect: mean('a', 'r', '1 hour')\n",
                      parameters=frozenset())


def test_validate_judges_a_target_whose_statistic_fails_as_an_error():
    from ketasim.validation.run import ReplicaRun, judge
    from ketasim.validation.targets import parse_targets

    text = _one_target("p('a', 'b', 'r', '24h', test='bogus')", "< 0.05")
    target = parse_targets(text, parameters=frozenset())["T-X-01"]
    res = judge(target, ReplicaRun("rep", None, two_arms(), pd.DataFrame(), 0.0))
    assert res.status == "error" and "bogus" in res.message


@pytest.mark.parametrize("expr", ["mean('a', 'r', '24h')", "sd('a', 'r', '24h')",
                                  "n('a', 'r', '24h')",
                                  "remission_rate('a', 'r', '24h', 1)",
                                  "p_lower('a', 'b', 'r', '24h')", "peak('a', 'r')",
                                  "time_of_peak('a', 'r')", "cohen_d('a', 'b', 'r', '24h')",
                                  "mean_change('a', 'r', '24h', '24h')",
                                  "stable_share('a', 'r', 12, '0h', '2d')",
                                  "auc('a', 'r', '0h', '2d')",
                                  "relapse_share('a', 'r', '0h', 22)"])
def test_all_nan_values_are_a_statistic_error(expr):
    with pytest.raises(StatisticError, match="no finite values for 'r' for arm 'a'"):
        ev(expr, two_arms(a=[np.nan] * 4))


def test_relapse_hr_without_events_stays_nan():
    calm = [[8, 10, 10, 10, 10], [9, 9, 9, 9, 9], [7, 8, 8, 8, 8]]
    r = _trial({"ctl": calm, "trt": calm})
    assert np.isnan(ev("relapse_hr('ctl', 'trt', 'madrs_total', '0h', 22)", r))


def test_by_subject_time_match_is_absolute_too():
    rows = [("a", s, "madrs", "m", t, v, "p") for s, t, v in
            [(0, -24.0, 30.0), (1, -24.0, 20.0), (0, 492.0, 10.0), (1, 492.004, 0.0)]]
    r = table(rows)
    assert ev("mean_change('a', 'm', '-1d', '20.5d')", r) == -20.0  # subject 0 only
    assert ev("mean('a', 'm', '492.004h')", r) == 0.0


def test_numeric_constants_are_floats():
    assert ev("9007199254740993 - 9007199254740992", two_arms()) in (0.0, 2.0)
    assert ev("-10000000000 * 10000000000 / 4", two_arms()) == pytest.approx(-2.5e19)
    assert ev("mean('a', 'r', 24)", two_arms()) == pytest.approx(A_VALS.mean())


def test_a_targets_file_that_is_not_utf8_is_a_setup_error(tmp_path):
    """The loader itself refuses a targets file that is not UTF-8, naming the file and
    the byte (the CLI's own catch is only a second line of defence)."""
    from ketasim.validation.run import ValidationSetupError, sources

    bad = tmp_path / "t.yaml"
    bad.write_bytes("- target_id: T-X-01\n  source: \u00b5".encode("latin-1"))
    with pytest.raises(ValidationSetupError, match=r"t\.yaml: not a UTF-8 text file .*0xb5"):
        sources(None, bad)
