"""Review of power by simulation against independent answers.

The simulate step is replaced (monkeypatched) by draws from known normal distributions,
so the simulated power of each test must agree with analytic power (statsmodels
``TTestIndPower`` / ``FTestAnovaPower``, a noncentral t computed here, or an independent
vectorised Monte Carlo) within the Monte-Carlo error the number of cohorts implies; the
reported interval must be statsmodels' Wilson interval; the cohort layout, seeds, error
handling, the CLI's table and files and the trial-design variant are checked against
their docstrings. Real scenarios are used (tiny) where the comparison's selection
(region, baseline, missing subjects) matters.
"""

from __future__ import annotations

import json
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import FTestAnovaPower, TTestIndPower
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

import ketasim.analysis.power as AP
from ketasim.analysis.power import (
    POWER_COLUMNS,
    PowerError,
    check_power_arguments,
    parse_n_range,
    pilot_power,
)
from ketasim.analysis.stats import comparison_groups
from ketasim.cli import app
from ketasim.experiment import power as EP
from ketasim.experiment.power import (
    MAX_SUBJECTS_PER_ARM,
    TRIAL_POWER_COLUMNS,
    power_curve,
    trial_power_curve,
)
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.report.power import plot_power, power_figure
from ketasim.scenario import load_scenario_text

REG = load_registry()

# --------------------------------------------------------------------------- #
# Scenarios
# --------------------------------------------------------------------------- #

#: three arms measuring one per-subject readout; the readouts come from a fake simulate
OF_YAML = """
name: rp_of
species: mouse
seed: 5
arms:
  - name: a
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: open_field, at: [24h]}]
  - name: b
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: open_field, at: [24h]}]
  - name: c
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: open_field, at: [24h]}]
compare:
  - {readout: distance_cm, at: 24h, arms: [a, b]}
  - {readout: distance_cm, at: 24h, arms: [a, b], test: student_t}
  - {readout: distance_cm, at: 24h, arms: [a, b, c], test: anova}
  - {readout: distance_cm, at: 24h, arms: [b, a]}
"""

#: a real (tiny) scenario: saline vs ketamine western blots
WB_YAML = """
name: rp_wb
species: mouse
seed: 7
arms:
  - name: sal
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: western_blot, at: [24h]}]
  - name: ket
    n: 4
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: western_blot, at: [24h]}]
compare:
  - {readout: psd95_rel, assay: western_blot, at: 24h, arms: [sal, ket]}
"""

#: two regions of one assay, and an in vivo readout measured twice (baseline)
REGION_YAML = """
name: rp_regions
species: mouse
seed: 7
arms:
  - name: sal
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: western_blot, at: [24h]}
      - {assay: western_blot, at: [24h], region: striatum}
      - {assay: open_field, at: [1h, 24h]}
  - name: ket
    n: 6
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
compare:
  - {readout: psd95_rel, assay: western_blot, at: 24h, arms: [sal, ket], region: striatum}
  - {readout: distance_cm, at: 24h, baseline: 1h, arms: [sal, ket]}
"""

#: a trial design (human MADRS) with dropout, and a plain comparison of a post-dropout
#: visit
TRIAL_YAML = """\
name: rp_trial
species: human
seed: 11
arms:
  - name: midazolam
    n: 6
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}
    assays: &a
      - {assay: madrs, at: [-1d, 24h, 7d]}
  - name: ketamine
    n: 6
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: *a
design:
  control: midazolam
  baseline: -1d
  primary: 24h
  dropout: {rate_per_week: 0.1, mechanism: mnar}
RANDcompare:
  - {readout: madrs_total, at: 24h, arms: [midazolam, ketamine]}
"""


@pytest.fixture(scope="module")
def of_scenario():
    return load_scenario_text(OF_YAML)


@pytest.fixture(scope="module")
def wb_scenario():
    return load_scenario_text(WB_YAML)


def _seed_of(seed, scenario) -> int:
    return scenario.seed if seed is None else int(seed)


def fake_simulate(means: dict, sds: dict, calls: list | None = None, value=None):
    """A stand-in for ``simulate``: per arm, ``arm.n`` subjects whose ``distance_cm`` at
    24 h is normal(means[arm], sds[arm]), from a stream keyed by (seed, arm name), so a
    subject's value does not depend on the other arms; ``value(arm, subject)`` instead
    gives deterministic values."""

    def sim(scenario, seed=None, *, registry, map_tasks=None):
        assert registry is REG
        if calls is not None:
            calls.append(scenario)
        parts = []
        for arm in scenario.arms:
            n = arm.n
            if value is None:
                rng = np.random.default_rng([_seed_of(seed, scenario),
                                             zlib.crc32(arm.name.encode())])
                v = rng.normal(means[arm.name], sds[arm.name], n)
            else:
                v = np.array([value(arm.name, s) for s in range(n)], float)
            parts.append(pd.DataFrame({"arm": arm.name, "subject": np.arange(n),
                                       "assay": "open_field", "readout": "distance_cm",
                                       "time_h": 24.0, "value": v, "unit": "cm",
                                       "region": "mpfc"}))
        return SimpleNamespace(readouts=pd.concat(parts, ignore_index=True),
                               disposition=None, patients=None, intercurrent=None)

    return sim


def _mc_tol(p: float, cohorts: int) -> float:
    """Four binomial standard errors (at least that of p = 0.02) plus 0.005."""
    q = min(max(p, 0.02), 0.98)
    return 4.0 * np.sqrt(q * (1 - q) / cohorts) + 0.005


def _nct_power(d: float, n1: int, n2: int, alpha: float) -> float:
    """Two-sided Student t power from the noncentral t (own computation)."""
    df = n1 + n2 - 2
    nc = d / np.sqrt(1 / n1 + 1 / n2)
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def _never(*a, **k):
    raise AssertionError("simulated although the request is invalid")


# --------------------------------------------------------------------------- #
# Simulated power against analytic power
# --------------------------------------------------------------------------- #


def test_student_t_power_matches_the_noncentral_t(of_scenario, monkeypatch):
    cohorts = 1500
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 1.0},
                                                      {"a": 1.0, "b": 1.0}))
    df = power_curve(of_scenario, 1, [4, 8, 16], cohorts=cohorts, seed=3, registry=REG)
    assert list(df.columns) == POWER_COLUMNS and df["n"].tolist() == [4, 8, 16]
    assert (df["test"] == "student_t").all() and (df["groups"] == "a;b").all()
    for _, r in df.iterrows():
        n = int(r["n"])
        want = TTestIndPower().power(effect_size=1.0, nobs1=n, alpha=0.05, ratio=1.0)
        assert want == pytest.approx(_nct_power(1.0, n, n, 0.05), abs=1e-6)
        assert abs(r["power"] - want) < _mc_tol(want, cohorts), (n, r["power"], want)


def test_welch_t_power_with_unequal_spread_matches_an_independent_computation(
        of_scenario, monkeypatch):
    """Welch's test with SDs 1 and 3: the code's power against a vectorised Monte Carlo
    of scipy's Welch test (200000 experiments) and the Satterthwaite noncentral t."""
    cohorts, ns, mu, sd = 1500, [5, 12], 2.0, (1.0, 3.0)
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": mu},
                                                      {"a": sd[0], "b": sd[1]}))
    df = power_curve(of_scenario, 0, ns, cohorts=cohorts, seed=11, registry=REG)
    assert (df["test"] == "welch_t").all()
    rng = np.random.default_rng(99)
    for n, got in zip(ns, df["power"], strict=True):
        a = rng.normal(0.0, sd[0], (200_000, n))
        b = rng.normal(mu, sd[1], (200_000, n))
        want = float(np.mean(sps.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05))
        se2 = (sd[0] ** 2 + sd[1] ** 2) / n
        dfw = se2 ** 2 / ((sd[0] ** 2 / n) ** 2 / (n - 1) + (sd[1] ** 2 / n) ** 2 / (n - 1))
        crit = sps.t.ppf(0.975, dfw)
        approx = sps.nct.sf(crit, dfw, mu / np.sqrt(se2)) + sps.nct.cdf(
            -crit, dfw, mu / np.sqrt(se2))
        assert abs(approx - want) < 0.02  # the two independent answers agree
        assert abs(got - want) < _mc_tol(want, cohorts), (n, got, want)


def test_anova_power_matches_statsmodels(of_scenario, monkeypatch):
    cohorts, means = 1200, {"a": 0.0, "b": 0.5, "c": 1.0}
    monkeypatch.setattr(EP, "simulate", fake_simulate(means, dict.fromkeys(means, 1.0)))
    df = power_curve(of_scenario, 2, [6, 12], cohorts=cohorts, seed=2, registry=REG)
    assert (df["groups"] == "a;b;c").all() and (df["test"] == "anova").all()
    mu = np.array(list(means.values()))
    f = float(np.sqrt(np.mean((mu - mu.mean()) ** 2)))
    for _, r in df.iterrows():
        want = FTestAnovaPower().power(effect_size=f, nobs=3 * int(r["n"]), alpha=0.05,
                                       k_groups=3)
        assert abs(r["power"] - want) < _mc_tol(want, cohorts), (r["n"], r["power"], want)


@pytest.mark.parametrize("index, shift", [(0, -1.2), (3, 1.2)],
                         ids=["negative effect", "arms reversed"])
def test_tests_are_two_sided(of_scenario, monkeypatch, index, shift):
    """An effect in either direction (or the arms in either order) has the two-sided
    power: a one-sided test would give about 0 here."""
    cohorts = 1000
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": shift},
                                                      {"a": 1.0, "b": 1.0}))
    df = power_curve(of_scenario, index, [10], cohorts=cohorts, seed=4, registry=REG)
    want = TTestIndPower().power(effect_size=1.2, nobs1=10, alpha=0.05)
    assert abs(df["power"].iloc[0] - want) < _mc_tol(want, cohorts)


@pytest.mark.parametrize("alpha", [0.01, 0.2])
def test_null_power_is_alpha_and_the_interval_stays_95(of_scenario, monkeypatch, alpha):
    cohorts = 1500
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 0.0},
                                                      {"a": 1.0, "b": 1.0}))
    df = power_curve(of_scenario, 1, [6], cohorts=cohorts, alpha=alpha, seed=8,
                     registry=REG)
    r = df.iloc[0]
    assert r["alpha"] == alpha
    assert abs(r["power"] - alpha) < _mc_tol(alpha, cohorts), r["power"]
    hits = round(r["power"] * cohorts)
    lo, hi = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)


def test_alpha_only_moves_the_threshold(of_scenario, monkeypatch):
    """Same seed, same p-values: the hits at a larger alpha are never fewer."""
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 0.6},
                                                      {"a": 1.0, "b": 1.0}))
    got = [power_curve(of_scenario, 0, [3, 6, 9], cohorts=150, alpha=a, seed=1,
                       registry=REG)["power"].to_numpy() for a in (0.01, 0.05, 0.2)]
    assert np.all(got[0] <= got[1]) and np.all(got[1] <= got[2])
    assert np.any(got[0] < got[2])


def test_wilson_interval_including_zero_and_all_hits(of_scenario, monkeypatch):
    cohorts = 40
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 30.0},
                                                      {"a": 1.0, "b": 1.0}))
    big = power_curve(of_scenario, 0, [2, 5], cohorts=cohorts, seed=1, registry=REG)
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 0.0},
                                                      {"a": 1.0, "b": 1.0}))
    null = power_curve(of_scenario, 0, [4, 8], cohorts=cohorts, alpha=1e-6, seed=1,
                       registry=REG)
    assert big["power"].iloc[-1] == 1.0 and (null["power"] == 0.0).all()
    for df in (big, null):
        hits = np.rint(df["power"] * cohorts).astype(int).to_numpy()
        lo, hi = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
        np.testing.assert_allclose(df["ci_low"], lo, atol=1e-12)
        np.testing.assert_allclose(df["ci_high"], hi, atol=1e-12)
        assert (df["ci_low"] <= df["power"]).all() and (df["power"] <= df["ci_high"]).all()
    assert null["ci_low"].iloc[0] == 0.0 and 0.05 < null["ci_high"].iloc[0] < 0.1


def test_power_rises_with_n(of_scenario, monkeypatch):
    cohorts = 400
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 0.8},
                                                      {"a": 1.0, "b": 1.0}))
    df = power_curve(of_scenario, 0, [3, 6, 12, 24], cohorts=cohorts, seed=6, registry=REG)
    pw = df["power"].to_numpy()
    assert np.all(np.diff(pw) > 0), pw
    want = [TTestIndPower().power(effect_size=0.8, nobs1=n, alpha=0.05) for n in
            (3, 6, 12, 24)]
    assert np.all(np.abs(pw - want) < [_mc_tol(w, cohorts) for w in want])


# --------------------------------------------------------------------------- #
# Cohort layout, the reduced scenario, seeds
# --------------------------------------------------------------------------- #


def test_cohort_layout_is_the_documented_one(of_scenario, monkeypatch):
    """One simulation of the compared arms only, ``max(ns) * cohorts`` subjects each;
    cohort k at size n is subjects k*max(ns) .. k*max(ns)+n-1 of every arm: cohorts are
    disjoint, the sizes of one cohort nested."""
    calls, tested = [], []
    sim = fake_simulate({}, {}, calls,
                        value=lambda arm, s: s + (0.25 if arm == "b" else 0.0))
    monkeypatch.setattr(EP, "simulate", sim)
    real = AP.run_test
    monkeypatch.setattr(AP, "run_test",
                        lambda test, groups: (tested.append([g.copy() for g in groups]),
                                              real(test, groups))[1])
    ns, cohorts = [5, 2, 3, 5], 4
    df = power_curve(of_scenario, 0, ns, cohorts=cohorts, seed=1, registry=REG)
    assert df["n"].tolist() == [2, 3, 5]
    (sc,) = calls
    assert [a.name for a in sc.arms] == ["a", "b"] and {a.n for a in sc.arms} == {20}
    assert len(sc.compare) == 1 and sc.compare[0] == of_scenario.compare[0]
    assert len(tested) == cohorts * 3
    seen = {}
    for i, (k, n) in enumerate((k, n) for k in range(cohorts) for n in (2, 3, 5)):
        a, b = tested[i]
        want = np.arange(k * 5, k * 5 + n, dtype=float)
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want + 0.25)
        seen.setdefault(k, set()).update(a.tolist())
    for k in range(cohorts):
        for j in range(k):
            assert not seen[k] & seen[j]


def test_unsorted_duplicate_ns_give_the_sorted_curve(of_scenario, monkeypatch):
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 0.9},
                                                      {"a": 1.0, "b": 1.0}))
    one = power_curve(of_scenario, 0, [8, 4, 8, 6, 4], cohorts=60, seed=5, registry=REG)
    two = power_curve(of_scenario, 0, [4, 6, 8], cohorts=60, seed=5, registry=REG)
    pd.testing.assert_frame_equal(one, two)
    assert one["n"].tolist() == [4, 6, 8]
    assert parse_n_range("8,4,8,6") == [4, 6, 8] and parse_n_range("6:10:2") == [6, 8, 10]


def test_same_seed_same_curve_on_a_real_scenario(wb_scenario, monkeypatch):
    ps = []
    real = AP._count_significant
    monkeypatch.setattr(AP, "_count_significant",
                        lambda p, alpha: (ps.append(p.copy()), real(p, alpha))[1])
    one = power_curve(wb_scenario, 0, [3, 4], cohorts=10, seed=3, registry=REG)
    two = power_curve(wb_scenario, 0, [4, 3], cohorts=10, seed=3, registry=REG)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    default = power_curve(wb_scenario, 0, [3, 4], cohorts=10, registry=REG)
    again = power_curve(wb_scenario, 0, [3, 4], cohorts=10, seed=wb_scenario.seed,
                        registry=REG)
    pd.testing.assert_frame_equal(default, again, check_exact=True)
    np.testing.assert_array_equal(ps[0], ps[1])
    np.testing.assert_array_equal(ps[2], ps[3])
    assert not np.array_equal(ps[0], ps[2])  # seed 3 and the scenario's seed 7 differ
    assert np.isfinite(ps[0]).all()


def test_cohort_zero_is_the_run_with_n_subjects(wb_scenario, monkeypatch):
    """Docstring: cohort 0 at size n is exactly what ``ketasim run`` simulates with n
    subjects per arm and the same seed (the test's groups are ``compare``'s)."""
    tested = []
    real = AP.run_test
    monkeypatch.setattr(AP, "run_test",
                        lambda test, groups: (tested.append([g.copy() for g in groups]),
                                              real(test, groups))[1])
    power_curve(wb_scenario, 0, [3], cohorts=3, seed=4, registry=REG)
    run = simulate(wb_scenario.model_copy(update={"arms": [
        a.model_copy(update={"n": 3}) for a in wb_scenario.arms]}), seed=4, registry=REG)
    _, want = comparison_groups(run.readouts, wb_scenario.compare[0])
    for got, exp in zip(tested[0], want, strict=True):
        np.testing.assert_array_equal(got, exp)


# --------------------------------------------------------------------------- #
# Invalid requests: one clear error, before simulating
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kw, match", [
    ({"ns": []}, r"^ns \[\]"),
    ({"ns": [1, 4]}, r"^ns "),
    ({"ns": [0]}, r"^ns "),
    ({"ns": [-3, 4]}, r"^ns "),
    ({"ns": [2.5]}, r"^ns "),
    ({"ns": ["4"]}, r"^ns "),
    ({"ns": [True, 4]}, r"^ns "),
    ({"ns": None}, r"^ns "),
    ({"ns": "4:6"}, r"^ns "),
    ({"ns": [MAX_SUBJECTS_PER_ARM + 1], "cohorts": 1}, "expected at most 100000"),
    ({"ns": [50_001], "cohorts": 2}, "expected at most 100000"),
    ({"ns": [10 ** 12], "cohorts": 200}, "expected at most 100000"),
    ({"cohorts": 0}, r"^cohorts 0"),
    ({"cohorts": -1}, r"^cohorts -1"),
    ({"cohorts": 2.5}, r"^cohorts 2.5"),
    ({"cohorts": "3"}, r"^cohorts '3'"),
    ({"cohorts": None}, r"^cohorts None"),
    ({"alpha": 0.0}, r"^alpha 0.0"),
    ({"alpha": 1.0}, r"^alpha 1.0"),
    ({"alpha": -0.1}, r"^alpha "),
    ({"alpha": 1.5}, r"^alpha "),
    ({"alpha": float("nan")}, r"^alpha "),
    ({"alpha": float("inf")}, r"^alpha "),
    ({"alpha": "0.05"}, r"^alpha "),
    ({"alpha": None}, r"^alpha "),
    ({"alpha": True}, r"^alpha "),
    ({"compare_index": 4}, r"compare index 4 out of range.*valid: 0\.\.3"),
    ({"compare_index": -1}, r"compare index -1 out of range"),
    ({"compare_index": True}, r"compare index True out of range"),
    ({"compare_index": 1.0}, r"compare index 1.0 out of range"),
    ({"compare_index": "0"}, r"compare index '0' out of range"),
    ({"compare_index": None}, r"compare index None out of range"),
])
def test_invalid_requests_are_one_error_before_simulating(of_scenario, monkeypatch, kw,
                                                          match):
    monkeypatch.setattr(EP, "simulate", _never)
    args = {"compare_index": 0, "ns": [4], "cohorts": 3, "alpha": 0.05} | kw
    with pytest.raises(PowerError, match=match) as err:
        power_curve(of_scenario, args["compare_index"], args["ns"],
                    cohorts=args["cohorts"], alpha=args["alpha"], registry=REG)
    assert "\n" not in str(err.value)


def test_unmeasured_readout_and_no_comparisons_fail_before_simulating(of_scenario,
                                                                      monkeypatch):
    monkeypatch.setattr(EP, "simulate", _never)
    c = of_scenario.compare[0]
    for bad in (c.model_copy(update={"readout": "psd95_rel"}),
                c.model_copy(update={"assay": "tail_suspension"})):
        sc = of_scenario.model_copy(update={"compare": [bad]})
        with pytest.raises(PowerError, match=r"not measured by .*compared arms") as err:
            power_curve(sc, 0, [4], cohorts=2, registry=REG)
        assert "\n" not in str(err.value)
    none = of_scenario.model_copy(update={"compare": []})
    with pytest.raises(PowerError, match="has no 'compare' entries"):
        power_curve(none, 0, [4], cohorts=2, registry=REG)


def test_one_cohort_and_the_largest_allowed_pool(of_scenario, monkeypatch):
    monkeypatch.setattr(EP, "simulate", fake_simulate({"a": 0.0, "b": 50.0},
                                                      {"a": 1.0, "b": 1.0}))
    one = power_curve(of_scenario, 0, [3], cohorts=1, seed=1, registry=REG)
    lo, hi = proportion_confint(1, 1, alpha=0.05, method="wilson")
    assert one[["power", "ci_low", "ci_high", "cohorts"]].iloc[0].tolist() == \
        pytest.approx([1.0, lo, hi, 1])
    edge = power_curve(of_scenario, 0, [2, MAX_SUBJECTS_PER_ARM // 2], cohorts=2,
                       seed=1, registry=REG)
    assert edge["n"].tolist() == [2, 50_000] and edge["power"].iloc[-1] == 1.0


@pytest.mark.parametrize("text", ["", "1", "0,4", "4:2", "4:8:0", "a", "4:6,8", "2.5"])
def test_parse_n_range_rejects(text):
    with pytest.raises(PowerError) as err:
        parse_n_range(text)
    assert repr(text) in str(err.value) and "\n" not in str(err.value)


# fixed (was BUG): parse_n_range expands a huge START:STOP range into a list before any
#   limit: MemoryError instead of a PowerError
def test_parse_n_range_huge_range_is_one_error():
    with pytest.raises(PowerError, match=r"STOP 1000000000000000 > 100000"):
        parse_n_range("2:1000000000000000")
    assert parse_n_range("99999:100000") == [99999, 100000]


# fixed (was BUG): check_power_arguments rejects a numpy float32 alpha in (0, 1) (isinstance
#   float check), against its contract
def test_numpy_alpha_is_a_number():
    _ns, cohorts, alpha = check_power_arguments([4], np.int64(3), np.float32(0.05))
    assert alpha == pytest.approx(0.05) and cohorts == 3


# --------------------------------------------------------------------------- #
# What the comparison declares: region, baseline, missing subjects (real scenarios)
# --------------------------------------------------------------------------- #


def _cohort0_vs_run(scenario, index, n, monkeypatch, seed=4):
    tested = []
    real = AP.run_test
    monkeypatch.setattr(AP, "run_test",
                        lambda test, groups: (tested.append([g.copy() for g in groups]),
                                              real(test, groups))[1])
    power_curve(scenario, index, [n], cohorts=2, seed=seed, registry=REG)
    run = simulate(scenario.model_copy(update={"arms": [
        a.model_copy(update={"n": n}) for a in scenario.arms]}), seed=seed, registry=REG)
    _, want = comparison_groups(run.readouts, scenario.compare[index])
    return tested[0], want


# fixed (was BUG): power_table ignores the comparison's region: both regions' rows are
#   pooled (2n values per arm at size n)
def test_power_tests_only_the_compared_region(monkeypatch):
    sc = load_scenario_text(REGION_YAML)
    got, want = _cohort0_vs_run(sc, 0, 4, monkeypatch)
    assert [len(g) for g in want] == [4, 4]
    assert [len(g) for g in got] == [4, 4]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.sort(g), np.sort(w))


# fixed (was BUG): power_table ignores the comparison's baseline: raw values at 'at' are
#   tested instead of changes from baseline
def test_power_tests_the_change_from_baseline(monkeypatch):
    sc = load_scenario_text(REGION_YAML)
    got, want = _cohort0_vs_run(sc, 1, 4, monkeypatch)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.sort(g), np.sort(w))


# fixed (was BUG): power_table refuses a pool in which a subject dropped out (design
#   dropout), instead of dropping it as compare does
def test_power_of_a_comparison_with_dropout_drops_missing_subjects(monkeypatch):
    sc = load_scenario_text(TRIAL_YAML.replace("RAND", ""))
    got, want = _cohort0_vs_run(sc, 0, 6, monkeypatch, seed=None)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.sort(g), np.sort(w))


# --------------------------------------------------------------------------- #
# Trial power (analyse_trial replaced by a Welch test on fake readouts)
# --------------------------------------------------------------------------- #


def _fake_trial(monkeypatch, means, sds, nan_every=0, seen=None):
    monkeypatch.setattr(EP, "simulate", fake_simulate(means, sds))

    def analyse(sc, readouts, disposition, patients, intercurrent):
        d = sc.design
        rows, consort = [], []
        for arm in sc.arms:
            v = readouts.loc[readouts["arm"] == arm.name]
            # cut and renumbered: subjects 0 .. size-1, as many as the arm's n
            assert v["subject"].tolist() == list(range(arm.n))
            consort.append({"stage": "allocated", "arm": arm.name, "n": len(v)})
            if seen is not None:
                seen.append((arm.name, tuple(v["value"])))
        ctl = readouts.loc[readouts["arm"] == d.control, "value"].to_numpy()
        for arm in sc.arms:
            if arm.name == d.control:
                continue
            x = readouts.loc[readouts["arm"] == arm.name, "value"].to_numpy()
            r = sps.ttest_ind(x, ctl, equal_var=False)
            p = float(r.pvalue)
            if nan_every and round(x[0] * 1e6) % nan_every == 0:
                p = float("nan")
            rows.append({"kind": "contrast", "primary": True, "arm": arm.name,
                         "estimate": float(x.mean() - ctl.mean()), "se": 1.0, "p": p})
        return SimpleNamespace(trial=pd.DataFrame(rows), consort=pd.DataFrame(consort))

    monkeypatch.setattr(EP, "analyse_trial", analyse)


def test_trial_power_matches_analytic_with_a_1_to_2_ratio(monkeypatch):
    text = TRIAL_YAML.replace("RANDcompare:\n  - {readout: madrs_total, at: 24h, arms: "
                              "[midazolam, ketamine]}\n",
                              "  randomisation: {midazolam: 1, ketamine: 2}\n").replace(
        "  - name: ketamine\n    n: 6", "  - name: ketamine\n    n: 12")
    sc = load_scenario_text(text)
    _fake_trial(monkeypatch, {"midazolam": 0.0, "ketamine": -1.0},
                {"midazolam": 1.0, "ketamine": 1.0})
    cohorts = 800
    table, each = trial_power_curve(sc, [6, 4, 6], cohorts=cohorts, seed=2,
                                    registry=REG, per_cohort=True)
    assert list(table.columns) == TRIAL_POWER_COLUMNS
    assert table["n"].tolist() == [4, 6] and table["n_arm"].tolist() == [8, 12]
    assert table["randomised_mean"].tolist() == [8.0, 12.0]
    assert (table["groups"] == "midazolam;ketamine").all() and (table["not_fitted"] == 0).all()
    for _, r in table.iterrows():
        n = int(r["n"])
        want = TTestIndPower().power(effect_size=1.0, nobs1=n, ratio=2.0, alpha=0.05)
        assert abs(r["power"] - want) < _mc_tol(want, cohorts) + 0.01, (n, r["power"], want)
        hits = round(r["power"] * cohorts)
        assert hits == int((each.loc[each["n"] == n, "p"] < 0.05).sum())
        lo, hi = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
        assert r["mean_estimate"] == pytest.approx(each.loc[each["n"] == n,
                                                            "estimate"].mean())


def test_trial_cohorts_are_disjoint_and_seeded(monkeypatch):
    sc = load_scenario_text(TRIAL_YAML.replace("RAND", ""))
    seen = []
    _fake_trial(monkeypatch, {"midazolam": 0.0, "ketamine": -1.0},
                {"midazolam": 1.0, "ketamine": 1.0}, seen=seen)
    one = trial_power_curve(sc, [3, 5], cohorts=6, seed=9, registry=REG)
    values = {}
    for arm, v in seen:  # size 5 of each cohort: values never shared between cohorts
        if len(v) == 5:
            values.setdefault(arm, []).append(set(v))
    for arm, sets in values.items():
        assert len(sets) == 6
        assert sum(len(s) for s in sets) == len(set().union(*sets)), arm
    two = trial_power_curve(sc, [5, 3], cohorts=6, seed=9, registry=REG)
    pd.testing.assert_frame_equal(one, two)
    dflt = trial_power_curve(sc, [3, 5], cohorts=6, registry=REG)
    same = trial_power_curve(sc, [3, 5], cohorts=6, seed=sc.seed, registry=REG)
    pd.testing.assert_frame_equal(dflt, same)


def test_trial_unfitted_cohorts_count_as_not_significant(monkeypatch):
    sc = load_scenario_text(TRIAL_YAML.replace("RAND", ""))
    _fake_trial(monkeypatch, {"midazolam": 0.0, "ketamine": -5.0},
                {"midazolam": 1.0, "ketamine": 1.0}, nan_every=3)
    table, each = trial_power_curve(sc, [6], cohorts=60, seed=1, registry=REG,
                                    per_cohort=True)
    r = table.iloc[0]
    bad = int(each["p"].isna().sum())
    assert 0 < bad < 60 and r["not_fitted"] == bad
    assert r["power"] == pytest.approx((60 - bad) / 60)  # all fitted ones significant


@pytest.mark.parametrize("kw, match", [
    ({"ns": [1]}, r"^ns "), ({"ns": []}, r"^ns "), ({"cohorts": 0}, r"^cohorts 0"),
    ({"alpha": 1.0}, r"^alpha 1.0"), ({"ns": [60_000], "cohorts": 2}, "at most 100000"),
])
def test_trial_power_invalid_requests(monkeypatch, kw, match):
    monkeypatch.setattr(EP, "simulate", _never)
    sc = load_scenario_text(TRIAL_YAML.replace("RAND", ""))
    args = {"ns": [4], "cohorts": 3, "alpha": 0.05} | kw
    with pytest.raises(PowerError, match=match):
        trial_power_curve(sc, args["ns"], cohorts=args["cohorts"], alpha=args["alpha"],
                          registry=REG)
    plain = sc.model_copy(update={"design": None})
    with pytest.raises(PowerError, match="no 'design' block"):
        trial_power_curve(plain, [4], cohorts=3, registry=REG)


# --------------------------------------------------------------------------- #
# Pilot data
# --------------------------------------------------------------------------- #


def test_pilot_power_welch_and_alpha_against_analytic():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.0, 1.0, 5000), rng.normal(0.9, 1.0, 5000)
    a, b = (a - a.mean()) / a.std(ddof=1), (b - b.mean()) / b.std(ddof=1) + 0.9
    cohorts = 1500
    df = pilot_power([a, b], test="welch_t", ns=[10], cohorts=cohorts, alpha=0.01,
                     seed=3, readout="r", time_h=1.0, arms=["a", "b"])
    want = TTestIndPower().power(effect_size=0.9, nobs1=10, alpha=0.01)
    assert df["alpha"].iloc[0] == 0.01
    assert abs(df["power"].iloc[0] - want) < _mc_tol(want, cohorts)
    with pytest.raises(PowerError, match=r"^alpha "):
        pilot_power([a, b], test="welch_t", ns=[10], cohorts=10, alpha=0.0)


# --------------------------------------------------------------------------- #
# Report and CLI
# --------------------------------------------------------------------------- #


def test_power_figure_states_alpha_and_cohorts(tmp_path):
    df = pd.DataFrame({"n": [6, 4], "power": [0.7, 0.4], "ci_low": [0.6, 0.3],
                       "ci_high": [0.8, 0.5], "cohorts": 50, "alpha": 0.01,
                       "test": "welch_t", "readout": "x", "time_h": 2.0, "groups": "a;b"})
    fig = power_figure(df)
    ax = fig.axes[0]
    assert "0.01" in ax.get_ylabel() and "50 cohorts" in ax.get_title()
    x, y = ax.lines[0].get_data()
    assert list(x) == [4.0, 6.0] and list(y) == [0.4, 0.7]  # sorted by n
    path = plot_power(df, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_and_files_match_the_api(tmp_path, wb_scenario):
    (tmp_path / "s.yaml").write_text(WB_YAML)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["power", str(tmp_path / "s.yaml"), "--compare", "0",
                                   "--n", "4,3,4", "--cohorts", "12", "--seed", "3",
                                   "--alpha", "0.1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    api = power_curve(wb_scenario, 0, [3, 4], cohorts=12, alpha=0.1, seed=3, registry=REG)
    csv = pd.read_csv(out / "power.csv")
    pd.testing.assert_frame_equal(csv, api, check_dtype=False, atol=1e-12)
    man = json.loads((out / "manifest.json").read_text())
    assert man["n"] == [3, 4] and man["cohorts"] == 12 and man["alpha"] == 0.1
    assert man["seed"] == 3 and man["analysis"] == {"compare": 0}
    assert (out / "power.png").stat().st_size > 1000
    lines = res.output.splitlines()
    for _, r in api.iterrows():
        cells = [f"{int(r['n'])}", f"{r['power']:.2f}",
                 f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"]
        assert any(all(c in ln for c in cells) and ln.split()[1] == cells[0]
                   for ln in lines if len(ln.split()) > 2), (cells, res.output)


@pytest.mark.parametrize("args, message", [
    (["--alpha", "0"], "alpha"),
    (["--alpha", "1.5"], "alpha"),
    (["--cohorts", "0"], "cohorts"),
    (["--n", "1:4"], "n range"),
    (["--n", "4,x"], "n range"),
    (["--compare", "9"], "compare index 9"),
    (["--n", "2,60000", "--cohorts", "2"], "at most 100000"),
])
def test_cli_errors_write_nothing(tmp_path, args, message):
    (tmp_path / "s.yaml").write_text(WB_YAML)
    out = tmp_path / "sub" / "o"
    base = ["power", str(tmp_path / "s.yaml"), "--compare", "0", "--n", "3",
            "--cohorts", "2", "--out", str(out)]
    res = CliRunner().invoke(app, base + args)
    assert res.exit_code not in (0, None) and message in res.output, res.output
    assert "Traceback" not in res.output
    assert not out.exists() and not (tmp_path / "sub").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
