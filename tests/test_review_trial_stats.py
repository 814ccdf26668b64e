"""Review of the trial endpoint statistics (``ketasim.analysis.trial``) and the comparison
helpers (``ketasim.analysis.stats``): small data with a hand-computed answer, and the same
numbers from independent references (closed formulas, scipy, statsmodels' own survival
and contingency-table code rather than lifelines where the module calls lifelines).

Real bugs are ``xfail(strict=True)`` with the reason starting ``BUG:``; those since fixed
keep the reason as a ``# fixed:`` comment."""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.discrete.discrete_model import Logit
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from ketasim.analysis.stats import compare, holm, mixed_lm_test, run_test, summarize
from ketasim.analysis.trial import (
    HDRS17,
    MADRS,
    QIDS_SR16,
    binary_endpoint,
    paired_binary_endpoint,
    paired_rd_interval,
    relapse_rows,
    remission,
    response,
    stable_patients,
    survival,
)

Z = sps.norm.ppf(0.975)
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def wilson(e: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson (1927) score interval, closed form."""
    centre = (e + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(e * (n - e) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_arm(e0: int, n0: int, e1: int, n1: int) -> pd.DataFrame:
    y = [1] * e0 + [0] * (n0 - e0) + [1] * e1 + [0] * (n1 - e1)
    return pd.DataFrame({"arm": ["pbo"] * n0 + ["ket"] * n1, "y": y})


# --------------------------------------------------------------------------- #
# response / remission
# --------------------------------------------------------------------------- #

def test_response_boundary_is_inclusive():
    assert response(30, 15) is True          # exactly 50%
    assert response(30, 16) is False
    assert response(31, 15.5) is True
    assert response(10, 0, 1.0) is True      # fraction 1: score 0 only
    assert response(10, 1, 1.0) is False
    np.testing.assert_array_equal(response([30., 20.], [15., 11.]), [True, False])


@FAST
@given(b=st.integers(1, 60), s=st.integers(0, 60),
       f=st.sampled_from(["0.25", "0.3", "0.4", "0.5", "0.6", "0.7", "0.75", "1"]))
def test_response_matches_exact_rational_rule(b, s, f):
    assert response(float(b), float(s), float(f)) == ((b - s) >= Fraction(f) * b)


@pytest.mark.parametrize("args, match", [
    ((0, 0), "baseline"), ((10, -1), "score"), (([10, 20], [1]), "shape"),
    ((10, np.nan), "score"), ((10, 5, 0), "fraction"), ((10, 5, 1.5), "fraction"),
    ((10, 5, True), "fraction"), (("a", 5), "baseline"),
])
def test_response_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        response(*args)


def test_remission_default_cutoffs_and_threshold():
    assert remission(12, "madrs") and not remission(13, "madrs")
    assert remission(10, "madrs", threshold=10) and not remission(11, "madrs", 10)
    assert remission(7, "ham-d") and not remission(8, HDRS17)
    assert remission(5, QIDS_SR16) and not remission(6, "qids")
    np.testing.assert_array_equal(remission([12, 12.5, 0], "madrs"), [True, False, True])
    assert MADRS.severity(19.5) == "moderate"  # between bands: the higher one


@pytest.mark.parametrize("kwargs, match", [
    ({"score": 5, "scale": "cadss"}, "no remission cut-off"),
    ({"score": 5, "scale": "nope"}, "unknown scale"),
    ({"score": 5, "scale": "madrs", "threshold": 70}, "threshold"),
    ({"score": 5, "scale": "madrs", "threshold": np.nan}, "threshold"),
    ({"score": [5, 61], "scale": "madrs"}, r"score\[1\]"),
])
def test_remission_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        remission(**kwargs)


# fixed: Scale.check_totals indexed the unflattened array with a flat position, so a
# scalar (0-d) or 2-D out-of-range total raised IndexError instead of its ValueError
@pytest.mark.parametrize("score, where", [
    (61, "score: "), (-1, "score: "), (np.float64(60.5), "score: "),
    (np.array(61), "score: "), (np.array([[10, 70]]), r"score\[0, 1\]: "),
    (np.array([[10, 12], [3, 70]]), r"score\[1, 1\]: "),
    (np.zeros((2, 2, 2)) + np.eye(2)[:, None, :] * 99, r"score\[0, 0, 0\]: "),
])
def test_remission_out_of_range_scalar_or_2d_gives_value_error(score, where):
    with pytest.raises(ValueError, match=where + r"expected a MADRS total in 0-60, got "):
        remission(score, "madrs")
    with pytest.raises(ValueError, match="MADRS total in 0-60"):
        MADRS.severity(score)


def test_remission_and_severity_keep_the_shape():
    np.testing.assert_array_equal(remission(np.array([[10, 13], [12, 0]]), "madrs"),
                                  [[True, False], [True, True]])
    assert remission(np.array(12), "madrs") is True
    assert list(MADRS.severity(np.array([[3.0, 40.0]]))[0]) == ["none", "severe"]


# --------------------------------------------------------------------------- #
# binary_endpoint
# --------------------------------------------------------------------------- #

@FAST
@given(n0=st.integers(1, 40), n1=st.integers(1, 40), data=st.data())
def test_binary_endpoint_matches_references(n0, n1, data):
    e0 = data.draw(st.integers(0, n0))
    e1 = data.draw(st.integers(0, n1))
    out = binary_endpoint(two_arm(e0, n0, e1, n1), "arm", "y", "pbo").set_index("arm")
    c, k = out.loc["pbo"], out.loc["ket"]
    # Wilson, closed form
    for row, (e, n) in ((c, (e0, n0)), (k, (e1, n1))):
        assert (row["n"], row["events"]) == (n, e)
        assert row["proportion"] == pytest.approx(e / n)
        lo, hi = wilson(e, n)
        assert row["ci_lower"] == pytest.approx(lo, abs=1e-12)
        assert row["ci_upper"] == pytest.approx(hi, abs=1e-12)
    # Newcombe hybrid score (method 10), statsmodels
    rd = e1 / n1 - e0 / n0
    lo, hi = confint_proportions_2indep(e1, n1, e0, n0, method="newcomb", compare="diff")
    assert k["risk_difference"] == pytest.approx(rd, abs=1e-12)
    assert k["rd_ci_lower"] == pytest.approx(lo, abs=1e-10)
    assert k["rd_ci_upper"] == pytest.approx(hi, abs=1e-10)
    # Woolf, Haldane only with a zero cell
    cells = np.array([e1, n1 - e1, e0, n0 - e0], float)
    zero = bool((cells == 0).any())
    a, b, cc, d = cells + 0.5 * zero
    log_or, se = math.log(a * d / (b * cc)), math.sqrt(1 / a + 1 / b + 1 / cc + 1 / d)
    assert k["or_correction"] == ("haldane" if zero else "none")
    assert k["odds_ratio"] == pytest.approx(math.exp(log_or), rel=1e-10)
    assert k["or_ci_lower"] == pytest.approx(math.exp(log_or - Z * se), rel=1e-10)
    assert k["or_ci_upper"] == pytest.approx(math.exp(log_or + Z * se), rel=1e-10)
    if not zero:
        t = Table2x2(np.array([[e1, n1 - e1], [e0, n0 - e0]]))
        assert k["odds_ratio"] == pytest.approx(t.oddsratio, rel=1e-10)
        assert (k["or_ci_lower"], k["or_ci_upper"]) == pytest.approx(
            t.oddsratio_confint(), rel=1e-10)
    assert k["fisher_p"] == pytest.approx(
        sps.fisher_exact([[e1, n1 - e1], [e0, n0 - e0]]).pvalue, rel=1e-12)
    # NNT, Altman 1998: interval only when the RD interval excludes 0
    assert k["nnt"] == (math.inf if rd == 0 else pytest.approx(1 / rd))
    if lo > 0 or hi < 0:
        assert k["nnt_ci_lower"] == pytest.approx(1 / hi)
        assert k["nnt_ci_upper"] == pytest.approx(1 / lo)
        assert k["nnt_ci_lower"] <= k["nnt"] <= k["nnt_ci_upper"]
    else:
        assert np.isnan(k["nnt_ci_lower"]) and np.isnan(k["nnt_ci_upper"])
    # unadjusted logistic OR = table OR when estimable
    if 0 < e0 < n0 and 0 < e1 < n1:
        assert k["logit_or"] == pytest.approx(k["odds_ratio"], rel=1e-5)
        assert k["logit_note"] == ""
    else:
        assert np.isnan(k["logit_or"]) and "not estimable" in k["logit_note"]
    assert np.isnan(c["risk_difference"]) and np.isnan(c["odds_ratio"])


def test_binary_endpoint_alpha_and_hand_example():
    df = two_arm(5, 20, 9, 15)
    k = binary_endpoint(df, "arm", "y", "pbo").iloc[1]
    assert k["odds_ratio"] == pytest.approx(9 * 15 / (6 * 5))  # 4.5
    assert k["risk_difference"] == pytest.approx(0.35)
    k90 = binary_endpoint(df, "arm", "y", "pbo", alpha=0.1).iloc[1]
    z90 = sps.norm.ppf(0.95)
    assert (k90["ci_lower"], k90["ci_upper"]) == pytest.approx(wilson(9, 15, z90))
    assert k90["or_ci_lower"] > k["or_ci_lower"] and k90["or_ci_upper"] < k["or_ci_upper"]


def test_binary_endpoint_all_responders_both_arms():
    k = binary_endpoint(two_arm(10, 10, 10, 10), "arm", "y", "pbo").iloc[1]
    assert k["risk_difference"] == 0 and k["nnt"] == math.inf
    assert k["odds_ratio"] == pytest.approx(1.0) and k["or_correction"] == "haldane"
    assert k["fisher_p"] == 1.0
    assert k["ci_upper"] == 1.0 and k["ci_lower"] == pytest.approx(wilson(10, 10)[0])
    assert "separation" in k["logit_note"]


def test_binary_endpoint_adjusted_logit_matches_statsmodels():
    rng = np.random.default_rng(5)
    n = 80
    arm = np.repeat(["pbo", "ket"], n // 2)
    x = rng.normal(30, 4, n)
    p = 1 / (1 + np.exp(-(-0.5 + 1.0 * (arm == "ket") - 0.1 * (x - 30))))
    y = (rng.random(n) < p).astype(int)
    df = pd.DataFrame({"arm": arm, "y": y, "base": x})
    k = binary_endpoint(df, "arm", "y", "pbo", covariates=["base"]).iloc[1]
    fit = Logit(y, np.column_stack([np.ones(n), (arm == "ket").astype(float), x])).fit(
        disp=0)
    assert k["logit_or"] == pytest.approx(np.exp(fit.params[1]), rel=1e-6)
    ci = fit.conf_int()[1]
    assert (k["logit_ci_lower"], k["logit_ci_upper"]) == pytest.approx(np.exp(ci), rel=1e-6)
    assert k["logit_p"] == pytest.approx(fit.pvalues[1], rel=1e-5)
    assert k["logit_covariates"] == "base"


@pytest.mark.parametrize("mutate, kwargs, match", [
    (lambda d: d.assign(y=[1, 0, np.nan] + list(d.y[3:])), {}, r"column 'y', row 2"),
    (lambda d: d.assign(y=[2] + list(d.y[1:])), {}, "0 or 1"),
    (lambda d: d.assign(y=["yes"] * len(d)), {}, "0 or 1"),
    (lambda d: d, {"control": "nope"}, "control arm 'nope' not found"),
    (lambda d: d[d.arm == "pbo"], {}, "only the control arm"),
    (lambda d: d.assign(arm=[None] + list(d.arm[1:])), {}, "missing arm label"),
    (lambda d: d.drop(columns="y"), {}, "missing column 'y'"),
    (lambda d: d, {"alpha": 0}, "alpha"),
    (lambda d: d, {"alpha": True}, "alpha"),
    (lambda d: d.assign(x=np.nan), {"covariates": ["x"]}, "column 'x'"),
    (lambda d: d, {"covariates": ["y"]}, "already one of the analysed"),
])
def test_binary_endpoint_rejects_bad_input(mutate, kwargs, match):
    df = mutate(two_arm(3, 6, 4, 6))
    kw = {"control": "pbo", **kwargs}
    with pytest.raises(ValueError, match=match):
        binary_endpoint(df, "arm", "y", kw.pop("control"), **kw)


# --------------------------------------------------------------------------- #
# paired binary endpoint (crossover)
# --------------------------------------------------------------------------- #

def newcombe_paired(a, b, c, d, z=Z):
    """Newcombe 1998 (Stat Med 17:2635) method 10, written from the paper."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    m = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(m) if m else 0.0
    dl = math.sqrt(max(0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2, p1 - p2 - dl, p1 - p2 + du


@FAST
@given(st.tuples(*[st.integers(0, 15)] * 4).filter(lambda t: sum(t) > 0))
def test_paired_rd_interval_matches_newcombe(cells):
    got = paired_rd_interval(*cells)
    assert got == pytest.approx(newcombe_paired(*cells), abs=1e-12)
    assert got[1] <= got[0] <= got[2]


def test_paired_rd_interval_phi_zero_is_unpaired_newcombe():
    # a d = b c: phi = 0, so the interval is the unpaired one for two groups of n
    a, b, c, d = 4, 2, 6, 3
    n = a + b + c + d
    _, lo, hi = paired_rd_interval(a, b, c, d)
    ref = confint_proportions_2indep(a + b, n, a + c, n, method="newcomb", compare="diff")
    assert (lo, hi) == pytest.approx(ref, abs=1e-12)
    assert all(np.isnan(paired_rd_interval(0, 0, 0, 0)))
    with pytest.raises(ValueError, match=">= 0"):
        paired_rd_interval(-1, 2, 3, 4)


# fixed: paired_rd_interval cast counts with int(): 1.7 pairs were silently truncated to
# 1 (and 'a'/NaN gave a bare int() message naming no argument)
@pytest.mark.parametrize("cells, name", [
    ((1.7, 2, 3, 4), "both"), ((1, "a", 3, 4), "arm_only"), ((1, 2, np.nan, 4),
                                                               "control_only"),
    ((1, 2, 3, math.inf), "neither"), ((1, 2, 3, True), "neither"),
    ((1, 2, 3, None), "neither"), ((-1, 2, 3, 4), "both"),
])
def test_paired_rd_interval_rejects_non_integer_counts(cells, name):
    with pytest.raises(ValueError, match=f"{name} must be a count"):
        paired_rd_interval(*cells)


def test_paired_rd_interval_integral_floats_and_alpha_checked_first():
    assert paired_rd_interval(4.0, np.int64(2), 6, np.float32(3)) == paired_rd_interval(
        4, 2, 6, 3)
    for cells in ((0, 0, 0, 0), (4, 2, 6, 3)):
        for alpha in (0, 1.5, np.nan, True):
            with pytest.raises(ValueError, match="alpha"):
                paired_rd_interval(*cells, alpha=alpha)


def _crossover(a1, b1, a2, b2, conc=(3, 2)) -> pd.DataFrame:
    """AB/BA crossover: a1 (b1) subjects of sequence K->P with the event on K (P) only,
    a2 (b2) of sequence P->K likewise, and ``conc`` concordant (both, neither) each."""
    rows, s = [], 0
    for seq, (ka, pb) in (("KP", (a1, b1)), ("PK", (a2, b2))):
        for yk, yp, k in ((1, 0, ka), (0, 1, pb), (1, 1, conc[0]), (0, 0, conc[1])):
            for _ in range(k):
                first, second = (("K", yk), ("P", yp)) if seq == "KP" else (("P", yp),
                                                                            ("K", yk))
                rows += [(s, first[0], 1, first[1]), (s, second[0], 2, second[1])]
                s += 1
    return pd.DataFrame(rows, columns=["s", "arm", "per", "y"])


def test_paired_binary_endpoint_counts_mcnemar_and_gart_clogit():
    a1, b1, a2, b2 = 6, 2, 5, 3
    df = _crossover(a1, b1, a2, b2)
    k = paired_binary_endpoint(df, "s", "arm", "per", "y", "P").set_index("arm").loc["K"]
    disc_k, disc_p = a1 + a2, b1 + b2
    assert (k["both"], k["arm_only"], k["control_only"], k["neither"]) == (6, disc_k,
                                                                           disc_p, 4)
    assert k["n_pairs"] == 26
    assert k["odds_ratio"] == pytest.approx(disc_k / disc_p)
    # exact interval: Clopper-Pearson of arm_only / discordant, mapped q / (1 - q)
    q_lo = sps.beta.ppf(0.025, disc_k, disc_p + 1)
    q_hi = sps.beta.ppf(0.975, disc_k + 1, disc_p)
    assert k["or_ci_lower"] == pytest.approx(q_lo / (1 - q_lo), rel=1e-8)
    assert k["or_ci_upper"] == pytest.approx(q_hi / (1 - q_hi), rel=1e-8)
    assert k["mcnemar_p"] == pytest.approx(
        sps.binomtest(disc_k, disc_k + disc_p).pvalue, rel=1e-10)
    # period-adjusted conditional logit on an AB/BA design: Gart (1969),
    # log OR = (log(a1/b1) + log(a2/b2)) / 2, se = sqrt(sum 1/cell) / 2
    log_or = 0.5 * (math.log(a1 / b1) + math.log(a2 / b2))
    se = 0.5 * math.sqrt(1 / a1 + 1 / b1 + 1 / a2 + 1 / b2)
    assert k["clogit_or"] == pytest.approx(math.exp(log_or), rel=1e-4)
    assert k["clogit_ci_lower"] == pytest.approx(math.exp(log_or - Z * se), rel=1e-3)
    assert k["clogit_ci_upper"] == pytest.approx(math.exp(log_or + Z * se), rel=1e-3)
    assert k["clogit_p"] == pytest.approx(2 * sps.norm.sf(log_or / se), rel=1e-3)


def test_paired_binary_endpoint_no_discordant_pairs_and_validation():
    df = _crossover(0, 0, 0, 0)
    k = paired_binary_endpoint(df, "s", "arm", "per", "y", "P").iloc[1]
    assert np.isnan(k["odds_ratio"]) and k["mcnemar_p"] == 1.0
    assert "not estimable" in k["clogit_note"]
    bad = df.copy()
    bad.loc[1, "per"] = 1  # subject 0 twice in period 1
    with pytest.raises(ValueError, match="two rows in period"):
        paired_binary_endpoint(bad, "s", "arm", "per", "y", "P")


def test_paired_binary_endpoint_uses_first_period_whatever_the_row_order():
    # three periods K, P, K (or P, K, P) with a different outcome in the repeated one:
    # the pair is the first period on each treatment, not the first row
    rows = []
    for s, (arms, ys) in enumerate([("KPK", (1, 0, 0)), ("KPK", (0, 1, 1)),
                                    ("PKP", (0, 1, 1)), ("PKP", (1, 0, 0)),
                                    ("KPK", (1, 1, 0)), ("PKP", (0, 0, 1)),
                                    ("KPK", (1, 0, 1)), ("PKP", (0, 1, 0))]):
        rows += [(s, a, per, y) for per, (a, y) in enumerate(zip(arms, ys), start=1)]
    df = pd.DataFrame(rows, columns=["s", "arm", "per", "y"])
    ref = paired_binary_endpoint(df, "s", "arm", "per", "y", "P")
    k = ref.set_index("arm").loc["K"]
    # first period per treatment (K, P): (1,0) (0,1) (1,0) (0,1) (1,1) (0,0) (1,0) (1,0)
    assert (k["both"], k["arm_only"], k["control_only"], k["neither"]) == (1, 4, 2, 1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
        got = paired_binary_endpoint(shuffled, "s", "arm", "per", "y", "P")
        pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-6)
    reverse = paired_binary_endpoint(df.iloc[::-1], "s", "arm", "per", "y", "P")
    pd.testing.assert_frame_equal(reverse, ref, check_exact=False, rtol=1e-6)


# --------------------------------------------------------------------------- #
# survival: Kaplan-Meier, log-rank, Cox
# --------------------------------------------------------------------------- #

def km_by_hand(t, e, z=Z):
    """Product-limit with censorings after events at a tied time; log(-log) Greenwood."""
    t, e = np.asarray(t, float), np.asarray(e, int)
    s, g, out = 1.0, 0.0, {}
    for u in np.unique(t):
        n = int((t >= u).sum())
        d = int(((t == u) & (e == 1)).sum())
        if d:
            s *= 1 - d / n
            g += d / (n * (n - d)) if n > d else math.inf
        if 0 < s < 1 and math.isfinite(g):
            v = math.sqrt(g) / abs(math.log(s))
            lo, hi = s ** math.exp(z * v), s ** math.exp(-z * v)
        else:
            lo = hi = s
        out[u] = (s, lo, hi, n, d, int(((t == u) & (e == 0)).sum()))
    return out


SURV = pd.DataFrame({
    # ties among events, an event and a censoring at the same time (2, 3), censoring at
    # the last visit (5, 6)
    "t": [2, 2, 2, 4, 5, 5, 1, 2, 3, 3, 3, 6],
    "e": [1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0],
    "arm": ["pbo"] * 6 + ["ket"] * 6})


def test_kaplan_meier_table_matches_hand_product_limit():
    r = survival(SURV, "t", "e", "arm", "pbo")
    for arm, g in SURV.groupby("arm"):
        ref = km_by_hand(g.t, g.e)
        km = r.km[r.km.arm == arm].set_index("time")
        assert km.index[0] == 0 and km.loc[0.0, "survival"] == 1.0
        for u, (s, lo, hi, n, d, c) in ref.items():
            row = km.loc[float(u)]
            assert row["survival"] == pytest.approx(s)
            assert row["ci_lower"] == pytest.approx(lo, rel=1e-9)
            assert row["ci_upper"] == pytest.approx(hi, rel=1e-9)
            assert (row["at_risk"], row["events"], row["censored"]) == (n, d, c)
    summ = r.summary.set_index("arm")
    # pbo: S = 2/3 after t=2, 4/9 at t=4 -> median 4; upper band never <= 0.5 -> inf
    assert summ.loc["pbo", "median"] == 4.0
    assert summ.loc["pbo", "median_ci_upper"] == math.inf
    assert summ.loc["ket", "median"] == 3.0
    assert (summ.loc["pbo", "events"], summ.loc["pbo", "censored"]) == (3, 3)


def test_median_first_time_at_or_below_half_and_not_reached():
    df = pd.DataFrame({"t": [1, 2, 3, 4, 1, 2, 3, 4], "e": [1, 1, 1, 1, 1, 0, 0, 0],
                       "arm": ["pbo"] * 4 + ["ket"] * 4})
    summ = survival(df, "t", "e", "arm", "pbo").summary.set_index("arm")
    assert summ.loc["pbo", "median"] == 2.0   # documented: lifelines rule, not R's 2.5
    assert summ.loc["ket", "median"] == math.inf


def _random_survival(seed, n=30, cov=False):
    rng = np.random.default_rng(seed)
    arm = np.repeat(["pbo", "ket"], n)
    t = np.round(np.concatenate([rng.exponential(10, n), rng.exponential(20, n)])) + 1
    e = (rng.random(2 * n) < 0.7).astype(int)
    df = pd.DataFrame({"t": t, "e": e, "arm": arm})
    if cov:
        df["x"] = rng.normal(size=2 * n)
    return df


@pytest.mark.parametrize("seed", [1, 2])
def test_logrank_cox_and_median_ci_match_statsmodels(seed):
    df = _random_survival(seed, cov=True)
    r = survival(df, "t", "e", "arm", "pbo", covariates=["x"])
    stat, p = survdiff(df.t.to_numpy(), df.e.to_numpy(), df.arm.to_numpy())
    k = r.summary.set_index("arm").loc["ket"]
    assert k["logrank_statistic"] == pytest.approx(stat, rel=1e-8)
    assert k["logrank_p"] == pytest.approx(p, rel=1e-8)
    x = np.column_stack([(df.arm == "ket").to_numpy(float), df.x.to_numpy()])
    ph = PHReg(df.t.to_numpy(), x, status=df.e.to_numpy(), ties="efron").fit()
    cox = r.cox.set_index("term")
    assert cox.loc[["ket", "x"], "coef"].to_numpy() == pytest.approx(ph.params, rel=1e-4)
    assert cox.loc[["ket", "x"], "se"].to_numpy() == pytest.approx(ph.bse, rel=1e-4)
    assert cox.loc[["ket", "x"], "p"].to_numpy() == pytest.approx(ph.pvalues, rel=1e-3)
    assert cox.loc["ket", "hazard_ratio"] == pytest.approx(math.exp(ph.params[0]), rel=1e-4)
    lo = math.exp(ph.params[0] - Z * ph.bse[0])
    assert cox.loc["ket", "ci_lower"] == pytest.approx(lo, rel=1e-4)
    assert list(cox["kind"]) == ["arm", "covariate"]
    for arm, g in df.groupby("arm"):
        sf = SurvfuncRight(g.t.to_numpy(), g.e.to_numpy())
        row = r.summary.set_index("arm").loc[arm]
        assert row["median"] == sf.quantile(0.5)
        mlo, mhi = sf.quantile_ci(0.5, method="cloglog")
        assert row["median_ci_lower"] == mlo
        assert row["median_ci_upper"] == (mhi if np.isfinite(mhi) else math.inf)


def test_survival_edge_cases():
    none = pd.DataFrame({"t": [1, 2, 3, 4], "e": [0, 0, 0, 0], "arm": list("ccdd")})
    r = survival(none, "t", "e", "arm", "c")
    assert r.summary["median"].tolist() == [math.inf, math.inf]
    assert r.summary["logrank_p"].isna().all()
    assert r.cox["note"].iloc[0] == "not estimable: no arm has an event"
    one = none.assign(e=[1, 1, 0, 0])
    r = survival(one, "t", "e", "arm", "c")
    assert r.cox["note"].iloc[0] == "not estimable: arm 'd' has no events"
    assert np.isfinite(r.summary["logrank_p"].iloc[1])
    # a curve that reaches 0 (last subject has the event) is handled
    r = survival(pd.DataFrame({"t": [1, 4, 2, 3], "e": 1, "arm": list("ccdd")}),
                 "t", "e", "arm", "c")
    assert r.km.groupby("arm")["survival"].min().tolist() == [0.0, 0.0]
    assert np.isfinite(r.cox["hazard_ratio"].iloc[0]) and r.cox["note"].iloc[0] == ""


# fixed: survival flagged a 0/inf hazard ratio only when an arm had no events; under
# complete separation (every control event before any treated time) the Cox MLE does
# not exist either, yet lifelines' non-converged fit was reported as HR ~1e-8, CI [0,
# inf], Wald p 0.99, note '' (and exp overflowed: a RuntimeWarning)
@pytest.mark.parametrize("arm", [["pbo"] * 4 + ["ket"] * 4,   # HR -> 0
                                 ["ket"] * 4 + ["pbo"] * 4])  # HR -> infinity
def test_cox_monotone_likelihood_is_flagged_not_estimable(arm):
    df = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6, 7, 8], "e": 1, "arm": arm})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape (lifelines', numpy's)
        r = survival(df, "t", "e", "arm", "pbo")
    assert r.summary["logrank_p"].iloc[1] < 0.05  # the log-rank test is fine
    row = r.cox.iloc[0]
    assert np.isnan(row["hazard_ratio"]) and np.isnan(row["p"])
    assert "not estimable: monotone likelihood (separation)" in row["note"]
    assert ("runs off to 0" if arm[0] == "pbo" else "infinity") in row["note"]


def test_cox_separation_boundaries():
    # a tie between a control subject's time and the first treated event: that control
    # subject is at risk, so the likelihood is not monotone and the fit is an estimate
    df = pd.DataFrame({"t": [1, 2, 3, 5, 5, 6, 7, 8], "e": [1, 1, 1, 0, 1, 1, 1, 1],
                       "arm": ["pbo"] * 4 + ["ket"] * 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = survival(df, "t", "e", "arm", "pbo")
    ph = PHReg(df.t.to_numpy(), (df.arm == "ket").to_numpy(float)[:, None],
               status=df.e.to_numpy(), ties="efron").fit()
    assert r.cox["note"].iloc[0] == ""
    assert r.cox["coef"].iloc[0] == pytest.approx(ph.params[0], rel=1e-4)
    # three arms: one separated arm blanks the model (one fit for all arms)
    three = pd.DataFrame({"t": [1, 2, 3, 4, 2, 3, 5, 9, 10, 11, 12, 13], "e": 1,
                          "arm": ["pbo"] * 4 + ["a"] * 4 + ["b"] * 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = survival(three, "t", "e", "arm", "pbo")
    assert r.cox["hazard_ratio"].isna().all()
    assert "arm 'b'" in r.cox["note"].iloc[0]


def test_cox_covariate_separation_is_flagged_not_estimable():
    # the arms overlap, but a covariate orders the events exactly (x = -t): monotone
    # likelihood along x, which only the fit itself shows
    t = np.arange(1.0, 11.0)
    df = pd.DataFrame({"t": t, "e": 1, "arm": ["pbo", "ket"] * 5, "x": -t})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = survival(df, "t", "e", "arm", "pbo", covariates=["x"])
    assert r.cox["hazard_ratio"].isna().all()
    assert "monotone likelihood" in r.cox["note"].iloc[0]


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.assign(t=[-1.0] + list(d.t[1:])), "duration >= 0"),
    (lambda d: d.assign(t=[np.nan] + list(d.t[1:])), "finite number"),
    (lambda d: d.assign(e=[2] + list(d.e[1:])), "0 or 1"),
    (lambda d: d.assign(arm="pbo"), "only the control arm"),
])
def test_survival_rejects_bad_input(mutate, match):
    with pytest.raises(ValueError, match=match):
        survival(mutate(SURV), "t", "e", "arm", "pbo")


# --------------------------------------------------------------------------- #
# relapse definition and stable remission
# --------------------------------------------------------------------------- #

Y = pd.DataFrame([[10, 25, 26, 10], [25, 10, 25, 30], [25, np.nan, 30, 30],
                  [10, 10, 10, 25], [np.nan, 30, 30, 30], [22, 22, 5, 5]],
                 index=[11, 12, 13, 14, 15, 16], columns=[100., 200., 300., 400.])


def test_relapse_rows_hand_example():
    got = relapse_rows(Y, list(Y.columns), 22, 2, 50.0)
    assert got == [
        (11, 150.0, 1),   # 25, 26 at 200, 300: relapse dated at the first of the run
        (12, 250.0, 1),   # isolated 25 at 100 is not a relapse; 25, 30 at 300, 400
        (13, 50.0, 1),    # 25, missed, 30: two observed in a row, dated at 100
        (14, 350.0, 0),   # a single 25 at the last visit: censored at the last visit
        (15, 150.0, 1),   # first visit missed, then 30, 30: relapse dated at 200
        (16, 50.0, 1),    # exactly at the threshold counts
    ]
    one = relapse_rows(Y, list(Y.columns), 22, 1, 50.0)
    assert [r for _, _, r in one] == [1, 1, 1, 1, 1, 1]
    assert all(r == 0 for _, _, r in relapse_rows(Y, list(Y.columns), 22, 5, 50.0))


# fixed: relapse_rows did not check consecutive >= 1: consecutive=0 marked every patient
# relapsed at the first visit, even one never seen (row 15); reachable through the
# validation statistics relapse_share / relapse_hr
@pytest.mark.parametrize("consecutive", [0, -1, 1.5, True, "2", None, np.nan])
def test_relapse_rows_rejects_consecutive_below_one(consecutive):
    with pytest.raises(ValueError, match="consecutive must be an integer >= 1"):
        relapse_rows(Y, list(Y.columns), 22, consecutive, 50.0)
    with pytest.raises(ValueError, match="consecutive"):  # even with no patient
        relapse_rows(Y.iloc[:0], list(Y.columns), 22, consecutive, 50.0)


def test_relapse_rows_integral_float_consecutive():
    assert relapse_rows(Y, list(Y.columns), 22, 2.0, 50.0) == relapse_rows(
        Y, list(Y.columns), 22, np.int64(2), 50.0)


@pytest.mark.parametrize("times, match", [
    ([100., 200., 300.], r"one time per column of the scores \(4\), got shape \(3,\)"),
    ([100., 200., 300., 400., 500.], r"one time per column"),
    ([100., 300., 200., 400.], r"strictly increasing, got 200.0 after 300.0 \(times\[2\]\)"),
    ([100., 200., 200., 400.], r"strictly increasing"),
    ([100., np.nan, 300., 400.], r"times\[1\]: expected a finite number"),
    ([100., 200., 300., np.inf], r"times\[3\]: expected a finite number"),
    (["a", "b", "c", "d"], r"times: expected numbers"),
])
def test_relapse_rows_rejects_bad_times(times, match):
    with pytest.raises(ValueError, match=match):
        relapse_rows(Y, times, 22, 2, 50.0)


def test_relapse_statistics_reject_consecutive_below_one():
    from ketasim.validation.statistic import evaluate

    rows = [{"arm": "a", "subject": s, "assay": "madrs", "readout": "madrs_total",
             "time_h": t, "value": v, "unit": "pt"}
            for s, vals in enumerate([(10, 25, 26), (10, 10, 30), (25, 10, 10)])
            for t, v in zip((0.0, 24.0, 48.0), vals)]
    readouts = pd.DataFrame(rows)
    assert evaluate("relapse_share('a', 'madrs_total', 0, 22, consecutive=2)",
                    readouts) == pytest.approx(1 / 3)
    for bad in ("0", "1.5"):  # 1.5 was truncated to 1 by int()
        with pytest.raises(ValueError, match="consecutive must be an integer >= 1"):
            evaluate(f"relapse_share('a', 'madrs_total', 0, 22, consecutive={bad})",
                     readouts)


def test_relapse_rows_intermittent_missing_visits():
    # a missed visit neither breaks nor extends a run, nor ends the follow-up
    y = pd.DataFrame([[10, np.nan, 10, np.nan],      # censored at the last observed visit
                      [25, np.nan, 10, 30],          # run broken by an observed 10
                      [np.nan, 25, np.nan, np.nan],  # one hit only, then lost
                      [np.nan] * 4,                  # never seen: censored at the start
                      [10, 25, np.nan, 26],          # run over a missed visit, from 200
                      [np.nan, np.nan, 30, 31]],     # first two missed
                     index=[1, 2, 3, 4, 5, 6], columns=[100., 200., 300., 400.])
    assert relapse_rows(y, list(y.columns), 22, 2, 50.0) == [
        (1, 250.0, 0), (2, 350.0, 0), (3, 150.0, 0), (4, 0.0, 0), (5, 150.0, 1),
        (6, 250.0, 1)]
    assert relapse_rows(y, list(y.columns), 22, 3, 50.0) == [
        (1, 250.0, 0), (2, 350.0, 0), (3, 150.0, 0), (4, 0.0, 0), (5, 350.0, 0),
        (6, 350.0, 0)]


def _relapse_end_at_first_miss(y, times, threshold, consecutive, start):
    """The rule with follow-up ending at the first missed visit, visit by visit."""
    out = []
    for i, row in zip(y.index, y.to_numpy(float), strict=True):
        observed = row[:int(np.argmin(np.isfinite(np.append(row, np.nan))))]
        hits = observed >= threshold
        k = next((k for k in range(len(hits) - consecutive + 1)
                  if hits[k:k + consecutive].all()), None)
        end = (times[k] if k is not None else times[len(observed) - 1] if len(observed)
               else start)
        out.append((int(i), float(end - start), int(k is not None)))
    return out


@FAST
@given(n=st.integers(0, 12), m=st.integers(0, 8), c=st.integers(1, 4), data=st.data())
def test_relapse_rows_monotone_dropout_ends_follow_up(n, m, c, data):
    # simulated trials lose patients for good (every visit after the first missed one is
    # missing): follow-up ends at the dropout, however missed visits are treated
    v = np.array(data.draw(st.lists(st.lists(st.integers(5, 35), min_size=m, max_size=m),
                                    min_size=n, max_size=n)), float).reshape(n, m)
    for r, d in enumerate(data.draw(st.lists(st.integers(0, m), min_size=n, max_size=n))):
        v[r, d:] = np.nan
    times = [10.0 + 7 * k for k in range(m)]
    y = pd.DataFrame(v, index=np.arange(n) * 2, columns=times)
    assert relapse_rows(y, times, 22.0, c, 3.0) == _relapse_end_at_first_miss(
        y, times, 22.0, c, 3.0)


def test_stable_patients():
    assert list(stable_patients(Y, 12, None)) == []
    assert list(stable_patients(Y, 12, 2)) == [11, 14, 16]
    with pytest.raises(ValueError, match="no visit"):
        stable_patients(Y.iloc[:, :0], 12, 1)


# --------------------------------------------------------------------------- #
# stats: run_test, mixed_lm_test, holm, summarize, compare
# --------------------------------------------------------------------------- #

@FAST
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=12),
       st.lists(st.floats(-50, 50), min_size=2, max_size=12))
def test_welch_and_student_match_closed_form(a, b):
    a, b = np.array(a), np.array(b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb < 1e-6 or a.var(ddof=1) < 1e-6 or b.var(ddof=1) < 1e-6:
        return
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))  # Satterthwaite
    r = run_test("welch_t", [a, b])
    assert r.statistic == pytest.approx(t, rel=1e-7, abs=1e-9)
    assert r.p == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-6, abs=1e-12)
    sp2 = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    ts = (a.mean() - b.mean()) / math.sqrt(sp2 * (1 / a.size + 1 / b.size))
    rs = run_test("student_t", [a, b])
    assert rs.statistic == pytest.approx(ts, rel=1e-7, abs=1e-9)
    assert rs.p == pytest.approx(2 * sps.t.sf(abs(ts), a.size + b.size - 2), rel=1e-6,
                                 abs=1e-12)


def _exact_mw(a, b):
    both, n1 = np.concatenate([a, b]), len(a)

    def u(x, y):
        return sum((xi > yi) + 0.5 * (xi == yi) for xi in x for yi in y)

    us = []
    for idx in itertools.combinations(range(both.size), n1):
        m = np.zeros(both.size, bool)
        m[list(idx)] = True
        us.append(u(both[m], both[~m]))
    us, u0 = np.array(us), u(a, b)
    return u0, min(1.0, 2 * min((us <= u0).mean(), (us >= u0).mean()))


@pytest.mark.parametrize("a, b", [
    ([1., 1, 1], [2., 2, 2]),            # all tied within groups: smallest p is 0.1
    ([1., 2, 2, 3], [2., 3, 3, 4, 5]),   # ties across groups
    ([1., 2, 3], [4., 5, 6]),            # no ties: scipy's exact distribution
])
def test_mann_whitney_exact_with_ties(a, b):
    r = run_test("mann_whitney", [np.array(a), np.array(b)])
    u0, p = _exact_mw(np.array(a), np.array(b))
    assert r.statistic == u0
    assert r.p == pytest.approx(p, rel=1e-12)


def test_anova_kruskal_and_small_groups():
    g = [np.array([1., 2, 3, 4]), np.array([2., 4, 5, 7]), np.array([6., 5, 8, 9])]
    assert run_test("anova", g).p == pytest.approx(sps.f_oneway(*g).pvalue)
    assert run_test("kruskal", g).p == pytest.approx(sps.kruskal(*g).pvalue)
    r = run_test("welch_t", [np.array([1.]), np.array([2., 3])])
    assert np.isnan(r.statistic) and np.isnan(r.p)
    with pytest.raises(ValueError, match="unknown test 'foo'"):
        run_test("foo", [np.array([1., 2]), np.array([2., 3])])
    with pytest.raises(ValueError, match="two groups"):
        run_test("welch_t", g)


# fixed: run_test returned NaN before validating the test name (and the group count): a
# misspelt test with a group of < 2 values gave p = NaN instead of an error
def test_run_test_validates_name_before_small_group_shortcut():
    with pytest.raises(ValueError, match="unknown test 'welch'"):
        run_test("welch", [np.array([1.]), np.array([2., 3])])
    with pytest.raises(ValueError, match="unknown test"):
        run_test("mixed_lm", [np.array([]), np.array([2., 3])])
    with pytest.raises(ValueError, match="mann_whitney compares two groups, got 3"):
        run_test("mann_whitney", [np.array([1.]), np.array([2., 3]), np.array([4., 5])])
    assert np.isnan(run_test("kruskal", [np.array([1.]), np.array([2., 3]),
                                         np.array([4., 5])]).p)


def test_mixed_lm_balanced_equals_t_on_subject_means():
    rng = np.random.default_rng(3)
    vals, arms, subs = [], [], []
    for a, mu in (("A", 0.0), ("B", 1.0)):
        for s in range(5):
            u = rng.normal(0, 1.0)
            for _ in range(4):
                vals.append(mu + u + rng.normal(0, 0.5))
                arms.append(a)
                subs.append(f"s{s}")  # ids repeat across arms on purpose
    res = mixed_lm_test(np.array(vals), np.array(arms), np.array(subs), ["A", "B"])
    m = pd.DataFrame({"v": vals, "a": arms, "s": subs}).groupby(["a", "s"])["v"].mean()
    ref = sps.ttest_ind(m["A"], m["B"])
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-4)
    assert res.p == pytest.approx(ref.pvalue, rel=1e-4)
    one = mixed_lm_test(np.array([1., 2, 3, 5, 6, 8]), np.array(list("AAABBB")),
                        np.arange(6), ["A", "B"])
    assert one.p == pytest.approx(sps.ttest_ind([1, 2, 3], [5, 6, 8]).pvalue)
    few = mixed_lm_test(np.array([1., 2, 5, 6]), np.array(list("AABB")),
                        np.array([1, 1, 2, 3]), ["A", "B"])
    assert np.isnan(few.p)


def test_holm_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    out = holm(p)
    assert np.isnan(out[1])
    ok = np.isfinite(p)
    np.testing.assert_allclose(out[ok], multipletests(p[ok], method="holm")[1])
    np.testing.assert_allclose(out[ok], [0.04, 0.09, 0.09, 0.2])


def _readouts():
    base = {"A": [10, 12, 14, 16], "B": [10, 11, 12, 13]}
    post = {"A": [5, 8, 9, np.nan], "B": [9, 11, 9, 14]}
    rows = []
    for a in "AB":
        for i in range(4):
            for t, v in ((0.0, base[a][i]), (24.0, post[a][i])):
                rows.append({"arm": a, "subject": f"s{i}", "assay": "madrs",
                             "readout": "total", "time_h": t, "value": v, "unit": "pt"})
    return pd.DataFrame(rows)


def test_summarize_n_mean_sem():
    s = summarize(_readouts()).set_index(["arm", "time_h"])
    row = s.loc[("A", 24.0)]
    assert row["n"] == 3 and row["mean"] == pytest.approx(22 / 3)
    assert row["sem"] == pytest.approx(np.std([5, 8, 9], ddof=1) / math.sqrt(3))


def test_compare_change_from_baseline_is_per_subject_welch():
    c = SimpleNamespace(readout="total", arms=["A", "B"], at=24.0, test="welch_t",
                        baseline=0.0, assay=None, region=None)
    out = compare(_readouts(), [c]).iloc[0]
    da = np.array([5 - 10, 8 - 12, 9 - 14.])    # s3 missing at 24 h: dropped
    db = np.array([9 - 10, 11 - 11, 9 - 12, 14 - 13.])
    ref = sps.ttest_ind(da, db, equal_var=False)
    assert out["n"] == "3;4"
    assert out["statistic"] == pytest.approx(ref.statistic)
    assert out["p"] == pytest.approx(ref.pvalue)
    assert out["p_holm"] == pytest.approx(ref.pvalue)
