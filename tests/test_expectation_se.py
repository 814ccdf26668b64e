"""The standard error of ``validate --expect``'s expectation (ketasim.validation.run:
split_se, TargetResult.expected_near_bound) and the tolerance helpers it rests on."""

from __future__ import annotations

import math
from statistics import stdev

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis.tolerance import Tolerance, is_p_value
from ketasim.params import load_registry
from ketasim.validation.run import (
    SE_PARTS,
    TargetResult,
    near_bound_multiple,
    split_se,
    split_values,
    validate,
)
from ketasim.validation.targets import load_targets

MEAN = {"T": "mean('a', 'x', '1h')"}


def _readouts(values: np.ndarray, arm: str = "a") -> pd.DataFrame:
    n = values.size
    return pd.DataFrame({"arm": arm, "subject": np.arange(n), "assay": "probe",
                         "readout": "x", "time_h": 1.0, "value": values, "unit": "1"})


def test_split_se_is_the_sd_of_the_parts_over_the_root_of_their_number():
    rng = np.random.default_rng(3)
    v = rng.normal(10.0, 2.0, 40)
    se = split_se(_readouts(v), None, MEAN, 4)["T"]
    parts = [v[k::4].mean() for k in range(4)]  # subject s goes to part s mod 4
    assert se == pytest.approx(stdev(parts) / 2.0, rel=1e-12)
    # one part (or none) gives no spread, and an empty statistic set nothing
    assert math.isnan(split_se(_readouts(v), None, MEAN, 1)["T"])
    assert split_se(_readouts(v), None, {}, 4) == {}


def test_split_se_estimates_the_standard_error_of_a_mean():
    # 800 subjects of SD 1: the mean's standard error is 1 / sqrt(800); the estimate has
    # 7 degrees of freedom, so with this seed it lies within a factor of 1.6 of it
    v = np.random.default_rng(11).normal(0.0, 1.0, 800)
    se = split_se(_readouts(v), None, MEAN, SE_PARTS)["T"]
    assert 1 / 1.6 < se * math.sqrt(800) < 1.6


def test_split_se_leaves_out_parts_where_the_statistic_cannot_be_computed():
    # a statistic naming an arm the run lacks fails in every part: NaN, not an error
    v = np.arange(16.0)
    out = split_se(_readouts(v), None, {"U": "mean('b', 'x', '1h')", **MEAN}, 4)
    assert math.isnan(out["U"]) and out["T"] > 0
    # a readout present in only one part: one finite value, no spread to estimate
    one = _readouts(v)
    one = one[(one.subject % 4 == 0) | (one.subject == 1)]
    one.loc[one.subject == 1, "readout"] = "y"
    assert math.isnan(split_se(one, None, {"Y": "mean('a', 'y', '1h')"}, 4)["Y"])


def test_split_se_splits_tracking_tables_whose_subjects_are_text():
    v = np.arange(8.0)
    tracking = {"a": pd.DataFrame({"subject": [str(s) for s in range(8)], "x": v})}
    out = split_se(_readouts(v), tracking, MEAN, 2)
    assert out["T"] == pytest.approx(stdev([v[0::2].mean(), v[1::2].mean()])
                                     / math.sqrt(2), rel=1e-12)


def test_an_expectation_within_two_standard_errors_of_a_bound_is_not_settled():
    # no part count given (a result built by hand): the screen falls back to 2 SE
    t = load_targets()["T-DA-04"]  # '<= 125'
    near = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=2.1)
    far = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=0.2)
    outside = TargetResult(t, "r", 120.0, "pass", expected=126.0, expected_se=0.4)
    none = TargetResult(t, "r", 120.0, "pass", expected=124.5)
    nan = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=float("nan"))
    assert near.expected_near_bound and not far.expected_near_bound
    assert not outside.expected_near_bound and outside.expected_status == "outside"
    assert not none.expected_near_bound and not nan.expected_near_bound


def test_the_near_bound_screen_allows_for_the_standard_errors_own_error():
    """An SE from K parts is an SD with K - 1 degrees of freedom: the screen widens to
    Student's two-sided 95% quantile (2 where the parts are not known)."""
    assert near_bound_multiple(None) == 2.0
    assert near_bound_multiple(8) == pytest.approx(2.3646, abs=1e-4)
    assert near_bound_multiple(4) == pytest.approx(3.1824, abs=1e-4)
    assert near_bound_multiple(2) == pytest.approx(12.706, abs=1e-3)
    assert near_bound_multiple(1) == math.inf
    t = load_targets()["T-DA-04"]  # '<= 125'; 124.5 is 2.5 SE of 0.2 from the bound
    unknown = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=0.2)
    eight = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=0.2,
                         expected_se_parts=8)
    four = TargetResult(t, "r", 120.0, "pass", expected=124.5, expected_se=0.2,
                        expected_se_parts=4)
    assert not unknown.expected_near_bound and not eight.expected_near_bound
    assert four.expected_near_bound
    # split_values: the finite part values whose SD the SE is
    v = np.arange(16.0)
    parts = split_values(_readouts(v), None, MEAN, 4)["T"]
    assert parts == [v[k::4].mean() for k in range(4)]
    assert split_se(_readouts(v), None, MEAN, 4)["T"] == pytest.approx(
        stdev(parts) / 2.0, rel=1e-15)
    assert split_values(_readouts(v), None, MEAN, 1) == {"T": []}


def test_tolerance_distance_is_to_the_nearest_finite_bound():
    assert Tolerance.parse("[0.25, 0.5]").distance(0.45) == pytest.approx(0.05)
    assert Tolerance.parse("[0.25, 0.5]").distance(0.2) == pytest.approx(0.05)
    assert Tolerance.parse("<= 125").distance(130.0) == 5.0
    assert Tolerance.parse("> 1").distance(1.0) == 0.0
    assert math.isnan(Tolerance.parse("> 1").distance(float("nan")))


def test_p_value_quantities_are_recognised_and_get_no_standard_error():
    assert is_p_value("TST immobility, ketamine vs saline (one-sided Welch t, p)")
    assert is_p_value("clustering of new spines (permutation p, median distance)")
    assert not is_p_value("plasma ketamine at the end of the infusion (ng/mL)")
    targets = load_targets()
    assert is_p_value(targets["T-DA-02"].quantity)
    assert not is_p_value(targets["T-DA-04"].quantity)


def test_validate_gives_every_target_but_the_p_values_a_standard_error():
    # the microdialysis replica (8 mice an arm): T-DA-02 is a p-value, T-DA-04 a mean
    res = validate(only=["T-DA-02", "T-DA-04"], workers=1, registry=load_registry(),
                   expect=2)
    by_id = {r.target.target_id: r for r in res.results}
    assert by_id["T-DA-02"].expected_se is None or math.isnan(by_id["T-DA-02"].expected_se)
    se = by_id["T-DA-04"].expected_se
    assert se is not None and 0.0 < se < 20.0  # % of baseline, 16 mice an arm in 2 parts
    assert by_id["T-DA-04"].expected_se_parts == 2  # so the screen is t(1): 12.7 SE
    table = res.table().set_index("target_id")
    assert math.isnan(table.loc["T-DA-02", "expected_se"])
    assert table.loc["T-DA-04", "expected_se"] == se
    # the replica's tracking tables are built once, whichever target reads them
    run = res.replicas["mpfc_dopamine_microdialysis"]
    assert run.tracking is run.tracking
