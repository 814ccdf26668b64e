"""``ketasim.analysis.trial`` on simulated trials with a known truth, hand-computed small
examples, and the same numbers from statsmodels, scipy and lifelines called directly."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from scipy import stats as sps
from statsmodels.discrete.discrete_model import Logit
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from ketasim.analysis import trial
from ketasim.analysis.trial import (
    BINARY_COLUMNS,
    CONSORT_COLUMNS,
    COX_COLUMNS,
    KM_COLUMNS,
    MEDIATION_COLUMNS,
    SCALES,
    SURVIVAL_SUMMARY_COLUMNS,
    binary_endpoint,
    consort,
    mediation,
    remission,
    response,
    scale,
    survival,
)

Z975 = 1.959963984540054  # standard normal 0.975 quantile


def table(control: tuple[int, int], arm: tuple[int, int], name: str = "ket") -> pd.DataFrame:
    """Subjects of a two-arm trial from (events, n) per arm: control 'pbo', other ``name``."""
    rows = []
    for label, (e, n) in (("pbo", control), (name, arm)):
        rows += [{"arm": label, "event": int(k < e)} for k in range(n)]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- #
# Scales
# --------------------------------------------------------------------------- #


def test_registry_keys_and_ranges():
    assert list(SCALES) == ["madrs", "hdrs17", "cadss", "bprs", "qids_sr16"]
    expected = {"madrs": (10, 0, 60), "hdrs17": (17, 0, 52), "cadss": (23, 0, 92),
                "bprs": (18, 18, 126), "qids_sr16": (16, 0, 27)}
    for key, (n_items, lo, hi) in expected.items():
        s = scale(key)
        assert (s.n_items, s.total_min, s.total_max) == (n_items, lo, hi)
        assert [it.number for it in s.items] == list(range(1, n_items + 1))


def test_item_ranges():
    assert all((it.low, it.high) == (0, 6) for it in scale("madrs").items)
    assert all((it.low, it.high) == (0, 4) for it in scale("cadss").items)
    assert all((it.low, it.high) == (1, 7) for it in scale("bprs").items)
    hdrs = scale("hdrs17")
    four = [it.number for it in hdrs.items if it.high == 4]
    two = [it.number for it in hdrs.items if it.high == 2]
    assert four == [1, 2, 3, 7, 8, 9, 10, 11, 15]
    assert two == [4, 5, 6, 12, 13, 14, 16, 17]
    assert hdrs.item(8).name == "retardation"
    assert hdrs.item(16).name == "weight loss"


def test_suicide_items_and_subscales():
    assert scale("madrs").suicide_item == 10
    assert scale("madrs").item(10).name == "suicidal thoughts"
    assert scale("hdrs17").suicide_item == 3
    assert scale("hdrs17").item(3).name == "suicide"
    assert scale("madrs").subscale("anhedonia") == (1, 2, 6, 7, 8)
    bprs = scale("bprs")
    names = [bprs.item(k).name for k in bprs.subscale("positive")]
    assert names == ["conceptual disorganisation", "suspiciousness",
                     "hallucinatory behaviour", "unusual thought content"]
    with pytest.raises(ValueError, match="unknown subscale 'negative'.*'positive'"):
        bprs.subscale("negative")
    with pytest.raises(ValueError, match="no item 11"):
        scale("madrs").item(11)


def test_rules():
    assert (scale("madrs").response_fall, scale("madrs").remission_max) == (0.5, 12)
    assert (scale("hdrs17").response_fall, scale("hdrs17").remission_max) == (0.5, 7)
    assert scale("cadss").remission_max is None
    assert scale("bprs").response_fall is None


@pytest.mark.parametrize("key", ["madrs", "hdrs17"])
def test_bands_tile_the_total_range(key):
    s = scale(key)
    assert s.bands[0].low == s.total_min and s.bands[-1].high == s.total_max
    for left, right in zip(s.bands[:-1], s.bands[1:]):
        assert right.low == left.high + 1


def test_severity_boundaries():
    madrs = scale("madrs")
    got = madrs.severity([0, 6, 7, 19, 20, 34, 35, 60])
    assert got.tolist() == ["none", "none", "mild", "mild", "moderate", "moderate",
                            "severe", "severe"]
    assert madrs.severity(19.5) == "moderate"  # between bands: the higher one
    hdrs = scale("hdrs17")
    assert hdrs.severity([7, 8, 16, 17, 23, 24, 52]).tolist() == [
        "none", "mild", "mild", "moderate", "moderate", "severe", "severe"]
    with pytest.raises(ValueError, match=r"totals\[0\]: expected a HDRS-17 total in 0-52"):
        hdrs.severity([53])
    with pytest.raises(ValueError, match="no severity bands"):
        scale("cadss").severity(10)


def test_scale_lookup():
    assert scale("MADRS") is SCALES["madrs"]
    assert scale("HAM-D") is SCALES["hdrs17"]
    assert scale(SCALES["bprs"]) is SCALES["bprs"]
    assert scale("QIDS") is SCALES["qids_sr16"]
    with pytest.raises(ValueError, match="unknown scale 'bdi'.*madrs, hdrs17, cadss, bprs"):
        scale("bdi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCALES["madrs"].remission_max = 10


# --------------------------------------------------------------------------- #
# Response and remission
# --------------------------------------------------------------------------- #


def test_response():
    assert response(30, 15) is True
    assert response(30, 16) is False
    assert response(31, 15.5) is True
    got = response([30, 30, 20, 40], [15, 16, 0, 30])
    assert got.dtype == bool and got.tolist() == [True, False, True, False]
    assert response(40, 30, fraction=0.25) is True
    with pytest.raises(ValueError, match=r"baseline\[1\]: expected a total > 0"):
        response([30, 0], [10, 0])
    with pytest.raises(ValueError, match="differ in shape"):
        response([30, 20], [10])
    with pytest.raises(ValueError, match=r"score\[0\]: expected a finite number"):
        response([30], [np.nan])
    with pytest.raises(ValueError, match="fraction must be in"):
        response(30, 10, fraction=1.5)


def test_remission():
    assert remission(12, "madrs") is True
    assert remission(13, "madrs") is False
    assert remission([10, 11], "madrs", threshold=10).tolist() == [True, False]
    assert remission([7, 8], "hdrs17").tolist() == [True, False]
    assert remission(np.array([10.0]), scale="madrs", threshold=np.int64(10)).tolist() == [True]
    with pytest.raises(ValueError, match=r"score\[1\]: expected a MADRS total in 0-60"):
        remission([10, 61], "madrs")
    with pytest.raises(ValueError, match="cadss: the scale defines no remission cut-off"):
        remission(5, "cadss")
    with pytest.raises(ValueError, match="unknown scale 'madrs2'"):
        remission(5, "madrs2")
    with pytest.raises(ValueError, match="threshold must be a number in 0-52"):
        remission(5, "hdrs17", threshold=60)


# --------------------------------------------------------------------------- #
# Binary endpoint
# --------------------------------------------------------------------------- #


def test_binary_endpoint_by_hand():
    """Control 10/40, ketamine 20/40: OR = 20*30 / (20*10) = 3, Woolf SE by hand."""
    out = binary_endpoint(table((10, 40), (20, 40)), "arm", "event", "pbo")
    assert list(out.columns) == BINARY_COLUMNS
    assert out["arm"].tolist() == ["pbo", "ket"]
    ctl, ket = out.iloc[0], out.iloc[1]
    assert (ctl["n"], ctl["events"], ctl["proportion"]) == (40, 10, 0.25)
    assert (ket["n"], ket["events"], ket["proportion"]) == (40, 20, 0.5)
    assert math.isnan(ctl["odds_ratio"]) and math.isnan(ctl["risk_difference"])
    se = math.sqrt(1 / 20 + 1 / 20 + 1 / 10 + 1 / 30)
    assert ket["odds_ratio"] == pytest.approx(3.0, rel=1e-12)
    assert ket["or_ci_lower"] == pytest.approx(math.exp(math.log(3) - Z975 * se), rel=1e-9)
    assert ket["or_ci_upper"] == pytest.approx(math.exp(math.log(3) + Z975 * se), rel=1e-9)
    assert ket["or_correction"] == "none"
    assert ket["risk_difference"] == pytest.approx(0.25, abs=1e-15)
    assert ket["nnt"] == pytest.approx(4.0)
    # Newcombe by hand from the two Wilson intervals
    l1, u1 = proportion_confint(20, 40, method="wilson")
    l0, u0 = proportion_confint(10, 40, method="wilson")
    assert ket["rd_ci_lower"] == pytest.approx(0.25 - math.hypot(0.5 - l1, u0 - 0.25))
    assert ket["rd_ci_upper"] == pytest.approx(0.25 + math.hypot(u1 - 0.5, 0.25 - l0))
    assert ket["rd_ci_lower"] > 0
    assert ket["nnt_ci_lower"] == pytest.approx(1 / ket["rd_ci_upper"])
    assert ket["nnt_ci_upper"] == pytest.approx(1 / ket["rd_ci_lower"])
    # unadjusted logistic regression reproduces the table's odds ratio
    assert ket["logit_or"] == pytest.approx(3.0, rel=1e-6)
    assert ket["logit_note"] == ""


def test_binary_endpoint_matches_statsmodels_and_scipy():
    df = table((7, 23), (15, 25), name="esk")
    out = binary_endpoint(df, "arm", "event", "pbo", alpha=0.1)
    ket = out.iloc[1]
    for (e, n), (_, row) in zip(((7, 23), (15, 25)), out.iterrows()):
        lo, hi = proportion_confint(e, n, alpha=0.1, method="wilson")
        assert (row["ci_lower"], row["ci_upper"]) == pytest.approx((lo, hi), abs=1e-14)
    lo, hi = confint_proportions_2indep(15, 25, 7, 23, method="newcomb", compare="diff",
                                        alpha=0.1)
    assert (ket["rd_ci_lower"], ket["rd_ci_upper"]) == pytest.approx((lo, hi), abs=1e-12)
    fisher = sps.fisher_exact([[15, 10], [7, 16]])
    assert ket["fisher_p"] == fisher.pvalue
    y = df["event"].to_numpy()
    x = np.column_stack([np.ones(len(df)), (df["arm"] == "esk").to_numpy(float)])
    fit = Logit(y, x).fit(disp=0)
    ci = fit.conf_int(alpha=0.1)
    assert ket["logit_or"] == pytest.approx(math.exp(fit.params[1]), rel=1e-10)
    assert ket["logit_ci_lower"] == pytest.approx(math.exp(ci[1, 0]), rel=1e-10)
    assert ket["logit_ci_upper"] == pytest.approx(math.exp(ci[1, 1]), rel=1e-10)
    assert ket["logit_p"] == pytest.approx(fit.pvalues[1], rel=1e-10)


def test_haldane_only_when_a_cell_is_zero():
    out = binary_endpoint(table((5, 20), (0, 20)), "arm", "event", "pbo")
    ket = out.iloc[1]
    assert ket["or_correction"] == "haldane"
    a, b, c, d = 0.5, 20.5, 5.5, 15.5
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert ket["odds_ratio"] == pytest.approx(a * d / (b * c))
    assert ket["or_ci_upper"] == pytest.approx(math.exp(math.log(a * d / (b * c))
                                                        + Z975 * se))
    assert ket["fisher_p"] == sps.fisher_exact([[0, 20], [5, 15]]).pvalue
    assert math.isnan(ket["logit_or"]) and "separation" in ket["logit_note"]
    assert ket["nnt"] == pytest.approx(-4.0)  # one fewer event per 4 treated


def test_a_separated_arm_blanks_only_its_own_logistic_odds_ratio():
    """A third arm with no events is left out of the logistic model: its odds ratio is
    not estimable, the other arm's equals the two-arm fit (it blanked every arm)."""
    df = pd.concat([table((10, 40), (20, 40)),
                    pd.DataFrame({"arm": "zero", "event": [0] * 30})], ignore_index=True)
    out = binary_endpoint(df, "arm", "event", "pbo").set_index("arm")
    two = binary_endpoint(table((10, 40), (20, 40)), "arm", "event", "pbo").set_index("arm")
    assert math.isnan(out.loc["zero", "logit_or"])
    assert "'zero' has no events" in out.loc["zero", "logit_note"]
    assert out.loc["ket", "logit_or"] == pytest.approx(two.loc["ket", "logit_or"], rel=1e-9)
    assert out.loc["ket", "logit_note"] == ""
    # a separated control still blanks every comparison
    ctrl = binary_endpoint(table((0, 40), (20, 40)), "arm", "event", "pbo").set_index("arm")
    assert "'pbo' has no events" in ctrl.loc["ket", "logit_note"]


def test_logistic_true_odds_ratio_recovered(rng):
    """Logistic model with a true treatment OR of 2 and a baseline effect: the adjusted
    OR's interval covers 2, and equals statsmodels fitted directly."""
    n = 3000
    arm = np.repeat(["pbo", "ket"], n)
    base = rng.normal(30, 5, 2 * n)
    lin = -0.3 + math.log(2.0) * (arm == "ket") - 0.08 * (base - 30)
    event = (rng.random(2 * n) < 1 / (1 + np.exp(-lin))).astype(int)
    df = pd.DataFrame({"arm": arm, "remit": event, "base": base})
    ket = binary_endpoint(df, "arm", "remit", "pbo", covariates=["base"]).iloc[1]
    assert ket["logit_ci_lower"] < 2.0 < ket["logit_ci_upper"]
    assert ket["logit_covariates"] == "base"
    x = np.column_stack([np.ones(2 * n), (arm == "ket").astype(float), base])
    fit = Logit(event, x).fit(disp=0)
    assert ket["logit_or"] == pytest.approx(math.exp(fit.params[1]), rel=1e-10)
    assert ket["logit_p"] == pytest.approx(fit.pvalues[1], rel=1e-8)


def test_three_arms_control_first():
    df = pd.concat([table((5, 20), (9, 20), name="ket"),
                    table((5, 20), (12, 20), name="esk").query("arm == 'esk'")])
    out = binary_endpoint(df.iloc[::-1], "arm", "event", "pbo")
    assert out["arm"].tolist() == ["pbo", "esk", "ket"]
    assert out.set_index("arm").loc["esk", "events"] == 12


def test_binary_endpoint_errors():
    df = table((5, 20), (9, 20))
    with pytest.raises(ValueError, match="binary_endpoint: missing column 'resp'"):
        binary_endpoint(df, "arm", "resp", "pbo")
    with pytest.raises(ValueError, match="control arm 'placebo' not found.*'pbo', 'ket'"):
        binary_endpoint(df, "arm", "event", "placebo")
    bad = df.copy()
    bad.loc[3, "event"] = 2
    with pytest.raises(ValueError, match="column 'event', row 3: expected an event "
                                         "indicator 0 or 1"):
        binary_endpoint(bad, "arm", "event", "pbo")
    bad.loc[3, "event"] = np.nan
    with pytest.raises(ValueError, match="column 'event', row 3"):
        binary_endpoint(bad, "arm", "event", "pbo")
    with pytest.raises(ValueError, match="only the control arm"):
        binary_endpoint(df[df["arm"] == "pbo"], "arm", "event", "pbo")
    cov = df.assign(base=30.0)
    cov.loc[5, "base"] = np.nan
    with pytest.raises(ValueError, match="column 'base', row 5: expected a finite number"):
        binary_endpoint(cov, "arm", "event", "pbo", covariates=["base"])
    with pytest.raises(ValueError, match="alpha must be in"):
        binary_endpoint(df, "arm", "event", "pbo", alpha=1.5)


# --------------------------------------------------------------------------- #
# Survival
# --------------------------------------------------------------------------- #


def exponential_trial(rng, n: int = 1500, hr: float = 0.5, rate: float = 0.05,
                      follow_up: float = 40.0) -> pd.DataFrame:
    """Relapse times exponential (control ``rate`` per week, ketamine ``rate * hr``),
    uniform administrative censoring in (0, follow_up), a baseline covariate with no
    effect."""
    arm = np.repeat(["pbo", "ket"], n)
    lam = np.where(arm == "ket", rate * hr, rate)
    t = rng.exponential(1 / lam)
    c = rng.uniform(0, follow_up, 2 * n)
    return pd.DataFrame({"arm": arm, "weeks": np.minimum(t, c),
                         "relapse": (t <= c).astype(int), "base": rng.normal(30, 5, 2 * n)})


def test_survival_true_hazard_ratio(rng):
    df = exponential_trial(rng)
    res = survival(df, "weeks", "relapse", "arm", "pbo")
    assert list(res.km.columns) == KM_COLUMNS
    assert list(res.summary.columns) == SURVIVAL_SUMMARY_COLUMNS
    assert list(res.cox.columns) == COX_COLUMNS
    cox = res.cox.iloc[0]
    assert cox["term"] == "ket" and cox["kind"] == "arm"
    assert cox["ci_lower"] < 0.5 < cox["ci_upper"]
    # control median ln 2 / rate = 13.9 weeks lies in its interval
    ctl = res.summary.iloc[0]
    assert ctl["arm"] == "pbo"
    assert ctl["median_ci_lower"] < math.log(2) / 0.05 < ctl["median_ci_upper"]
    assert res.summary.iloc[1]["logrank_p"] < 1e-6


def test_survival_matches_lifelines(rng):
    df = exponential_trial(rng, n=300)
    res = survival(df, "weeks", "relapse", "arm", "pbo", covariates=["base"])
    direct = pd.DataFrame({"weeks": df["weeks"], "relapse": df["relapse"],
                           "ket": (df["arm"] == "ket").astype(float), "base": df["base"]})
    cph = CoxPHFitter().fit(direct, "weeks", "relapse")
    cox = res.cox.set_index("term")
    assert cox.loc["base", "kind"] == "covariate"
    for term in ("ket", "base"):
        assert cox.loc[term, "hazard_ratio"] == pytest.approx(cph.hazard_ratios_[term],
                                                              rel=1e-8)
        assert cox.loc[term, "p"] == pytest.approx(cph.summary.loc[term, "p"], rel=1e-8)
        assert cox.loc[term, "ci_lower"] == pytest.approx(
            cph.summary.loc[term, "exp(coef) lower 95%"], rel=1e-8)
        assert cox.loc[term, "ci_upper"] == pytest.approx(
            cph.summary.loc[term, "exp(coef) upper 95%"], rel=1e-8)
    ket, pbo = df[df["arm"] == "ket"], df[df["arm"] == "pbo"]
    lr = logrank_test(ket["weeks"], pbo["weeks"], ket["relapse"], pbo["relapse"])
    assert res.summary.iloc[1]["logrank_p"] == pytest.approx(lr.p_value, rel=1e-12)
    assert res.summary.iloc[1]["logrank_statistic"] == pytest.approx(lr.test_statistic)
    kmf = KaplanMeierFitter().fit(ket["weeks"], ket["relapse"])
    km = res.km[res.km["arm"] == "ket"]
    np.testing.assert_allclose(km["survival"], kmf.survival_function_.iloc[:, 0], rtol=0,
                               atol=1e-14)
    np.testing.assert_allclose(km["ci_lower"], kmf.confidence_interval_.iloc[:, 0])
    assert res.summary.iloc[1]["median"] == kmf.median_survival_time_


def test_kaplan_meier_by_hand():
    """Control times 1, 2, 3+, 4: S = 3/4, 1/2, 1/2, 0; at risk 4, 3, 2, 1."""
    df = pd.DataFrame({"arm": ["pbo"] * 4 + ["ket"] * 4,
                       "t": [1, 2, 3, 4, 2, 5, 6, 7], "e": [1, 1, 0, 1, 1, 0, 1, 0]})
    res = survival(df, "t", "e", "arm", "pbo")
    km = res.km[res.km["arm"] == "pbo"]
    assert km["time"].tolist() == [0, 1, 2, 3, 4]
    assert km["survival"].tolist() == pytest.approx([1, 0.75, 0.5, 0.5, 0.0])
    assert km["at_risk"].tolist() == [4, 4, 3, 2, 1]
    assert km["events"].tolist() == [0, 1, 1, 0, 1]
    assert km["censored"].tolist() == [0, 0, 0, 1, 0]
    ctl = res.summary.iloc[0]
    assert (ctl["n"], ctl["events"], ctl["censored"], ctl["median"]) == (4, 3, 1, 2.0)
    assert math.isnan(ctl["logrank_p"])
    assert res.summary.iloc[1]["median"] == 6.0


def test_cox_not_estimable_without_events():
    df = pd.DataFrame({"arm": ["pbo"] * 5 + ["ket"] * 5, "t": [1, 2, 3, 4, 5] * 2,
                       "e": [1, 1, 1, 0, 1] + [0] * 5})
    res = survival(df, "t", "e", "arm", "pbo")
    cox = res.cox.iloc[0]
    assert math.isnan(cox["hazard_ratio"]) and cox["note"] == (
        "not estimable: arm 'ket' has no events")
    ket = res.summary.iloc[1]
    assert ket["median"] == math.inf and ket["events"] == 0
    assert ket["logrank_p"] < 0.05


def test_no_event_in_any_arm_is_not_estimable_not_p_one():
    """With no relapse in either arm the log-rank test has nothing to compare: its
    statistic and p are NaN (lifelines gives 0 and 1), the Cox note says so, and the
    report shows the medians as not reached."""
    from ketasim.report.html import _relapse_shown

    df = pd.DataFrame({"arm": ["pbo"] * 3 + ["ket"] * 3, "t": [5.0] * 6, "e": [0] * 6})
    res = survival(df, "t", "e", "arm", "pbo")
    ket = res.summary.iloc[1]
    assert math.isnan(ket["logrank_statistic"]) and math.isnan(ket["logrank_p"])
    assert res.cox.iloc[0]["note"] == "not estimable: no arm has an event"
    shown = _relapse_shown(res.summary)
    assert (shown["median"] == "not reached").all()


def test_survival_errors():
    df = pd.DataFrame({"arm": ["pbo", "pbo", "ket", "ket"], "t": [1.0, 2, 3, 4],
                       "e": [1, 0, 1, 1]})
    with pytest.raises(ValueError, match="column 't', row 2: expected a duration >= 0"):
        survival(df.assign(t=[1.0, 2, -3, 4]), "t", "e", "arm", "pbo")
    with pytest.raises(ValueError, match="column 't', row 1: expected a finite number"):
        survival(df.assign(t=[1.0, np.nan, 3, 4]), "t", "e", "arm", "pbo")
    with pytest.raises(ValueError, match="column 'e', row 0: expected an event indicator"):
        survival(df.assign(e=[2, 0, 1, 1]), "t", "e", "arm", "pbo")
    with pytest.raises(ValueError, match="control arm 'placebo' not found"):
        survival(df, "t", "e", "arm", "placebo")
    with pytest.raises(ValueError, match="survival: missing column 'weeks'"):
        survival(df, "weeks", "e", "arm", "pbo")
    with pytest.raises(ValueError, match="covariate 't' is already one of the analysed"):
        survival(df, "t", "e", "arm", "pbo", covariates=["t"])


# --------------------------------------------------------------------------- #
# Mediation
# --------------------------------------------------------------------------- #


def mediation_data(rng, n: int, a: float, b: float, direct: float) -> pd.DataFrame:
    """treatment 0/1 -> mediator (slope a) -> outcome (slope b), plus a direct effect."""
    x = rng.integers(0, 2, n).astype(float)
    m = a * x + rng.normal(size=n)
    y = direct * x + b * m + rng.normal(size=n)
    return pd.DataFrame({"ketamine": x, "cadss": m, "madrs_change": y})


def test_mediation_true_indirect_effect(rng):
    df = mediation_data(rng, 1000, a=0.5, b=0.6, direct=0.2)
    res = mediation(df, "ketamine", "cadss", "madrs_change", n_boot=1000, seed=7)
    lo, hi = res.indirect_ci
    assert 0 < lo < 0.3 < hi
    assert res.sobel_p < 1e-6
    assert res.total == pytest.approx(res.direct + res.indirect, abs=1e-10)
    assert res.n == 1000 and res.n_boot_used == 1000
    assert list(res.paths.columns) == MEDIATION_COLUMNS
    assert res.paths["effect"].tolist() == ["a", "b", "direct", "total", "indirect"]
    assert 0 < res.proportion_mediated < 1


def test_mediation_none_dissociation_tracks_dose_only(rng):
    """Dose drives dissociation (a = 1) and the outcome directly (0.5), but dissociation
    does not drive the outcome (b = 0): the indirect interval covers 0."""
    df = mediation_data(rng, 600, a=1.0, b=0.0, direct=0.5)
    res = mediation(df, "ketamine", "cadss", "madrs_change", n_boot=1000, seed=3)
    lo, hi = res.indirect_ci
    assert lo < 0 < hi
    paths = res.paths.set_index("effect")
    assert paths.loc["a", "p"] < 1e-10
    assert paths.loc["direct", "ci_lower"] < 0.5 < paths.loc["direct", "ci_upper"]


def test_mediation_matches_ols_and_sobel(rng):
    df = mediation_data(rng, 200, a=0.4, b=0.3, direct=0.1)
    df["age"] = rng.normal(40, 10, len(df))
    res = mediation(df, "ketamine", "cadss", "madrs_change", covariates=["age"],
                    n_boot=200, seed=1)
    one = np.ones(len(df))
    fa = OLS(df["cadss"].to_numpy(), np.column_stack([one, df["ketamine"], df["age"]])).fit()
    fb = OLS(df["madrs_change"].to_numpy(),
             np.column_stack([one, df["ketamine"], df["cadss"], df["age"]])).fit()
    assert res.a == pytest.approx(fa.params[1], rel=1e-12)
    assert res.b == pytest.approx(fb.params[2], rel=1e-12)
    assert res.direct == pytest.approx(fb.params[1], rel=1e-12)
    se = math.sqrt(fb.params[2] ** 2 * fa.bse[1] ** 2 + fa.params[1] ** 2 * fb.bse[2] ** 2)
    z = fa.params[1] * fb.params[2] / se
    assert res.sobel_z == pytest.approx(z, rel=1e-12)
    assert res.sobel_p == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-12)
    assert res.total == pytest.approx(res.direct + res.indirect, abs=1e-10)


def test_mediation_bootstrap_is_seeded(rng):
    df = mediation_data(rng, 150, a=0.5, b=0.5, direct=0.0)
    r1 = mediation(df, "ketamine", "cadss", "madrs_change", n_boot=300, seed=11)
    r2 = mediation(df, "ketamine", "cadss", "madrs_change", n_boot=300, seed=11)
    r3 = mediation(df, "ketamine", "cadss", "madrs_change", n_boot=300, seed=12)
    np.testing.assert_array_equal(r1.boot, r2.boot)
    assert r1.indirect_ci == r2.indirect_ci
    assert r1.indirect_ci != r3.indirect_ci
    # the percentile interval is the quantiles of the draws
    assert r1.indirect_ci == tuple(np.quantile(r1.boot, [0.025, 0.975]))


def test_mediation_errors(rng):
    df = mediation_data(rng, 50, a=0.5, b=0.5, direct=0.0)
    with pytest.raises(ValueError, match="n_boot must be an integer >= 100"):
        mediation(df, "ketamine", "cadss", "madrs_change", n_boot=10)
    with pytest.raises(ValueError, match="column 'ketamine': constant"):
        mediation(df.assign(ketamine=1.0), "ketamine", "cadss", "madrs_change")
    with pytest.raises(ValueError, match="mediation: missing column 'bprs'"):
        mediation(df, "ketamine", "bprs", "madrs_change")
    bad = df.copy()
    bad.loc[4, "cadss"] = np.nan
    with pytest.raises(ValueError, match="column 'cadss', row 4: expected a finite number"):
        mediation(bad, "ketamine", "cadss", "madrs_change")
    with pytest.raises(ValueError, match="three different columns"):
        mediation(df, "ketamine", "cadss", "cadss")


# --------------------------------------------------------------------------- #
# CONSORT
# --------------------------------------------------------------------------- #


def flow() -> pd.DataFrame:
    rows = (
        # eligible, arm, completed, reason
        [(False, None, None, "MADRS < 20")] * 3
        + [(False, None, None, None)]
        + [(True, None, None, "declined")] * 2
        + [(True, "ketamine", True, None)] * 5
        + [(True, "ketamine", False, "adverse event")] * 2
        + [(True, "placebo", True, "")] * 4
        + [(True, "placebo", False, "lack of efficacy")] * 2
        + [(True, "placebo", False, None)]
    )
    return pd.DataFrame(rows, columns=["eligible", "arm", "completed", "dropout_reason"])


def test_consort_counts():
    out = consort(flow())
    assert list(out.columns) == CONSORT_COLUMNS
    got = {(r.stage, r.arm, r.reason): r.n for r in out.itertuples()}
    assert got == {
        ("screened", "", ""): 20,
        ("excluded", "", ""): 6,
        ("excluded", "", "MADRS < 20"): 3,
        ("excluded", "", "not eligible"): 1,
        ("excluded", "", "declined"): 2,
        ("randomised", "", ""): 14,
        ("allocated", "ketamine", ""): 7,
        ("discontinued", "ketamine", ""): 2,
        ("discontinued", "ketamine", "adverse event"): 2,
        ("completed", "ketamine", ""): 5,
        ("allocated", "placebo", ""): 7,
        ("discontinued", "placebo", ""): 3,
        ("discontinued", "placebo", "lack of efficacy"): 2,
        ("discontinued", "placebo", "reason not given"): 1,
        ("completed", "placebo", ""): 4,
    }
    assert out["stage"].tolist()[:4] == ["screened", "excluded", "excluded", "excluded"]


def test_consort_screened_column_and_no_eligibility():
    df = flow().assign(screened=True)
    df.loc[0, "screened"] = False
    out = consort(df, screened="screened", eligible=None)
    got = {(r.stage, r.arm, r.reason): r.n for r in out.itertuples()}
    assert got[("screened", "", "")] == 19
    assert got[("excluded", "", "eligible, not randomised")] == 1
    assert got[("excluded", "", "MADRS < 20")] == 2


def test_consort_numeric_arm_labels():
    df = pd.DataFrame({"arm": [1, 1, 2, np.nan], "completed": [1, 0, 1, np.nan],
                       "dropout_reason": [None, "ae", None, None],
                       "eligible": ["yes", "y", "true", "no"]})
    out = consort(df)
    assert out.query("stage == 'allocated'")["arm"].tolist() == ["1", "2"]
    assert out.query("stage == 'discontinued' and reason == 'ae'")["n"].tolist() == [1]


def test_consort_errors():
    df = flow()
    bad = df.copy()
    bad.loc[0, "arm"] = "ketamine"
    bad.loc[0, "completed"] = True
    bad.loc[0, "dropout_reason"] = None
    with pytest.raises(ValueError, match="column 'eligible', row 0: subject randomised "
                                         r"\(arm 'ketamine'\) but not eligible"):
        consort(bad)
    bad = df.copy()
    bad.loc[6, "dropout_reason"] = "moved"
    with pytest.raises(ValueError, match="row 6: subject completer with a dropout reason"):
        consort(bad)
    bad = df.copy()
    bad.loc[7, "completed"] = "maybe"
    with pytest.raises(ValueError, match="column 'completed', row 7: expected true/false"):
        consort(bad)
    bad = df.copy()
    bad.loc[8, "completed"] = None
    with pytest.raises(ValueError, match="row 8: subject randomised .* completion missing"):
        consort(bad)
    with pytest.raises(ValueError, match="consort: missing column 'group'"):
        consort(df, arm="group")


def test_public_api_listed():
    for name in trial.__all__:
        assert hasattr(trial, name), name
