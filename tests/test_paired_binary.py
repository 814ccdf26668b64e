"""Paired binary endpoints of crossover trials (issue 14 item 5: response and remission
with intervals and odds ratios, here within patients): each number is checked against an
independent computation (scipy's binomial test and exact interval, the unpaired
square-and-add interval, a statsmodels Logit on the discordant pairs) and the paired
interval's coverage by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.discrete.discrete_model import Logit

from ketasim.analysis.trial import (
    PAIRED_BINARY_COLUMNS,
    binary_endpoint,
    paired_binary_endpoint,
    paired_rd_interval,
)


def _crossover(n_pairs: int, seed: int, beta_t: float = 1.2, beta_p: float = 0.4,
               sd_u: float = 1.0) -> pd.DataFrame:
    """An AB/BA crossover with a subject random effect on the logit scale."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        seq = ("drug", "placebo") if i % 2 == 0 else ("placebo", "drug")
        u = rng.normal(0.0, sd_u)
        for k, trt in enumerate(seq):
            lp = -0.4 + beta_t * (trt == "drug") + beta_p * k + u
            rows.append({"patient": f"p{i}", "period": k + 1, "treatment": trt,
                         "event": int(rng.random() < 1 / (1 + np.exp(-lp)))})
    return pd.DataFrame(rows)


def test_paired_table_mcnemar_and_exact_odds_ratio():
    df = _crossover(80, seed=3)
    res = paired_binary_endpoint(df, "patient", "treatment", "period", "event", "placebo")
    assert list(res.columns) == PAIRED_BINARY_COLUMNS
    assert list(res["arm"]) == ["placebo", "drug"]
    wide = df.pivot(index="patient", columns="treatment", values="event")
    d, p = wide["drug"], wide["placebo"]
    row = res.iloc[1]
    b, c = int(((d == 1) & (p == 0)).sum()), int(((d == 0) & (p == 1)).sum())
    assert (row["both"], row["arm_only"], row["control_only"], row["neither"]) == (
        int(((d == 1) & (p == 1)).sum()), b, c, int(((d == 0) & (p == 0)).sum()))
    assert row["n_pairs"] == 80 and row["events"] == d.sum() and row["n"] == 80
    assert row["proportion"] == pytest.approx(d.mean())
    # McNemar's exact test is the binomial test of the discordant pairs
    assert row["mcnemar_p"] == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    # matched-pairs odds ratio b / c, exact interval from the Clopper-Pearson one of b/(b+c)
    assert row["odds_ratio"] == pytest.approx(b / c)
    ci = sps.binomtest(b, b + c).proportion_ci(method="exact")
    assert row["or_ci_lower"] == pytest.approx(ci.low / (1 - ci.low), rel=1e-6)
    assert row["or_ci_upper"] == pytest.approx(ci.high / (1 - ci.high), rel=1e-6)
    assert row["risk_difference"] == pytest.approx((b - c) / 80)
    assert row["rd_ci_lower"] < row["risk_difference"] < row["rd_ci_upper"]


def test_conditional_logit_is_the_logit_of_the_discordant_pairs():
    # For two periods, the conditional likelihood of a discordant pair is that of "the
    # event fell in period 1" with log odds (x1 - x2) beta: (+1, -1) for drug first,
    # (-1, -1) for placebo first (treatment, period-2 coefficients).
    df = _crossover(120, seed=11)
    res = paired_binary_endpoint(df, "patient", "treatment", "period", "event", "placebo")
    wide = df.pivot(index="patient", columns="period", values="event")
    first = df[df["period"] == 1].set_index("patient")["treatment"]
    disc = wide[wide[1] != wide[2]]
    s = np.where(first.loc[disc.index] == "drug", 1.0, -1.0)
    fit = Logit(disc[1].to_numpy(float), np.column_stack([s, -np.ones_like(s)])).fit(disp=0)
    row = res.iloc[1]
    assert row["clogit_note"] == ""
    assert np.log(row["clogit_or"]) == pytest.approx(fit.params[0], rel=1e-5)
    assert row["clogit_p"] == pytest.approx(fit.pvalues[0], rel=1e-4)
    lo, hi = np.exp(fit.conf_int()[0])
    assert row["clogit_ci_lower"] == pytest.approx(lo, rel=1e-4)
    assert row["clogit_ci_upper"] == pytest.approx(hi, rel=1e-4)


def test_paired_interval_without_correlation_is_the_unpaired_one():
    # both * neither == arm_only * control_only: phi = 0, so the interval is the
    # square-and-add interval of two independent groups of n (binary_endpoint's)
    a, b, c, d = 4, 6, 2, 3
    n = a + b + c + d
    diff, lo, hi = paired_rd_interval(a, b, c, d)
    two = pd.DataFrame({"arm": ["t"] * n + ["c"] * n,
                        "y": [1] * (a + b) + [0] * (c + d) + [1] * (a + c) + [0] * (b + d)})
    ref = binary_endpoint(two, "arm", "y", "c").iloc[1]
    assert diff == pytest.approx(ref["risk_difference"])
    assert lo == pytest.approx(ref["rd_ci_lower"], rel=1e-12)
    assert hi == pytest.approx(ref["rd_ci_upper"], rel=1e-12)
    # positive correlation narrows it
    lo2, hi2 = paired_rd_interval(a + 10, b, c, d + 10)[1:]
    assert hi2 - lo2 < hi - lo


def test_paired_interval_covers_the_true_difference():
    # correlated pairs, true p1 = 0.55, p2 = 0.35; 2,000 trials of 40 pairs
    rng = np.random.default_rng(2024)
    probs = np.array([0.25, 0.30, 0.10, 0.35])  # both, arm only, control only, neither
    true = probs[0] + probs[1] - (probs[0] + probs[2])
    hits = 0
    reps = 2000
    for cells in rng.multinomial(40, probs, size=reps):
        _, lo, hi = paired_rd_interval(*cells)
        hits += lo <= true <= hi
    assert 0.93 <= hits / reps <= 0.975


def test_separation_and_no_discordant_pairs_are_notes_not_numbers():
    # drug responders only on drug: no pair with the event on placebo only
    pairs = [(1, 0), (1, 0), (0, 0), (1, 1), (1, 0)] * 2  # (drug, placebo) per patient
    rows = []
    for i, (on_drug, on_placebo) in enumerate(pairs):
        seq = [("drug", on_drug), ("placebo", on_placebo)][:: 1 if i % 2 == 0 else -1]
        rows += [{"patient": f"p{i}", "period": k + 1, "treatment": t, "event": e}
                 for k, (t, e) in enumerate(seq)]
    df = pd.DataFrame(rows)
    row = paired_binary_endpoint(df, "patient", "treatment", "period", "event",
                                 "placebo").iloc[1]
    assert row["control_only"] == 0 and row["odds_ratio"] == np.inf
    assert np.isnan(row["clogit_or"]) and "separation" in row["clogit_note"]
    same = df.assign(event=0)
    row = paired_binary_endpoint(same, "patient", "treatment", "period", "event",
                                 "placebo").iloc[1]
    assert np.isnan(row["odds_ratio"]) and row["mcnemar_p"] == 1.0
    assert "not estimable" in row["clogit_note"]


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.assign(period=1), r"column 'period', row .*two rows in period 1"),
    (lambda d: d.assign(event=2), r"column 'event', row .*expected an event"),
    (lambda d: d.drop(columns="period"), r"missing column 'period'"),
    (lambda d: d.assign(treatment="drug"), r"control arm 'placebo' not found"),
], ids=["two-rows-one-period", "bad-event", "no-period", "no-control"])
def test_bad_paired_input_is_one_clear_error(edit, match):
    df = edit(_crossover(6, seed=1))
    with pytest.raises(ValueError, match=match):
        paired_binary_endpoint(df, "patient", "treatment", "period", "event", "placebo")
