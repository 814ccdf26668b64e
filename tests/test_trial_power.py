"""Power of a trial design by simulation (``ketasim power --design``): the design's own
primary analysis on simulated trials cut from one pool, each cohort a trial ``ketasim
run`` would simulate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.analysis.power import PowerError
from ketasim.cli import app
from ketasim.experiment.power import COHORT_COLUMNS, TRIAL_POWER_COLUMNS, trial_power_curve
from ketasim.experiment.trial import analyse_trial
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()
TRIAL = """\
name: tp
species: human
seed: 11
arms:
  - name: midazolam
    n: NM
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}
    assays: &a
      - {assay: madrs, at: [-1d, 24h, 7d]}
      - {assay: cadss, at: [40min]}
  - name: ketamine
    n: NK
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: *a
design:
  control: midazolam
  baseline: -1d
  primary: 24h
  dropout: {rate_per_week: 0.1, mechanism: mnar}
EXTRA"""


def _trial(nm: int, nk: int, extra: str = "") -> str:
    return TRIAL.replace("NM", str(nm)).replace("NK", str(nk)).replace("EXTRA", extra)


def _primary(text: str) -> tuple[float, float]:
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    t = analyse_trial(sc, r.readouts, r.disposition, r.patients, r.intercurrent).trial
    row = t[(t["kind"] == "contrast") & t["primary"]].iloc[0]
    return float(row["estimate"]), float(row["p"])


@pytest.mark.parametrize("ratio,extra", [
    (1, ""),
    (2, "  randomisation: {midazolam: 1, ketamine: 2}\n"),
    (1, ("  intercurrent:\n    - {name: dissociation, readout: cadss_total, at_or_above: 20, "
        "withhold: [ketamine, midazolam]}\n  strategy: hypothetical\n")),
], ids=["1:1", "1:2", "intercurrent"])
def test_cohort_zero_is_the_trial_run_simulates(ratio, extra):
    sc = load_scenario_text(_trial(8, 8 * ratio, extra))
    table, each = trial_power_curve(sc, [6, 8], cohorts=3, registry=REG, per_cohort=True)
    assert list(table.columns) == TRIAL_POWER_COLUMNS
    assert list(each.columns) == COHORT_COLUMNS
    assert list(table["n"]) == [6, 8] and list(table["n_arm"]) == [6 * ratio, 8 * ratio]
    assert (table["cohorts"] == 3).all() and (table["groups"] == "midazolam;ketamine").all()
    for n in (6, 8):
        estimate, p = _primary(_trial(n, n * ratio, extra))
        first = each[(each["n"] == n) & (each["cohort"] == 0)].iloc[0]
        assert first["estimate"] == pytest.approx(estimate, rel=1e-12)
        assert first["p"] == pytest.approx(p, rel=1e-12)
    # the cohorts are different trials, and the power is their share with p < alpha
    at8 = each[each["n"] == 8]
    assert at8["estimate"].nunique() == 3
    row = table[table["n"] == 8].iloc[0]
    assert row["power"] == pytest.approx((at8["p"] < 0.05).mean())
    assert row["mean_estimate"] == pytest.approx(at8["estimate"].mean())


def test_power_grows_with_the_trial_size():
    sc = load_scenario_text(_trial(4, 4))
    table = trial_power_curve(sc, [4, 24], cohorts=40, registry=REG)
    small, large = table["power"].to_numpy()
    assert large > small and large >= 0.7
    assert (table["mean_estimate"] < 0).all()  # ketamine lowers MADRS against midazolam


def test_cli_design_power_writes_the_tables_and_the_figure(tmp_path):
    (tmp_path / "t.yaml").write_text(_trial(6, 6))
    res = CliRunner().invoke(app, ["power", str(tmp_path / "t.yaml"), "--design", "--n",
                                   "6,10", "--cohorts", "4", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "o" / "power.csv")
    assert list(table.columns) == TRIAL_POWER_COLUMNS and list(table["n"]) == [6, 10]
    each = pd.read_csv(tmp_path / "o" / "power_cohorts.csv")
    assert len(each) == 8 and np.isfinite(each["p"]).all()
    assert (tmp_path / "o" / "power.png").stat().st_size > 1000
    for args, message in ((["--design", "--compare", "0"], "either --compare"),
                          ([], "either --compare")):
        res = CliRunner().invoke(app, ["power", str(tmp_path / "t.yaml"), *args])
        assert res.exit_code != 0 and message in res.output


def test_designs_power_cannot_analyse_are_one_error():
    plain = load_scenario_text(_trial(6, 6).split("design:")[0])
    with pytest.raises(PowerError, match="no 'design' block"):
        trial_power_curve(plain, [6], cohorts=2, registry=REG)
    with pytest.raises(PowerError, match="expected at most 100000"):
        trial_power_curve(load_scenario_text(_trial(6, 6)), [2000], cohorts=60,
                          registry=REG)


def test_crossover_power_compares_patients_with_themselves():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_crossover import CROSS

    text = CROSS.replace("n: 18", "n: 6")
    table, each = trial_power_curve(load_scenario_text(text), [4, 6], cohorts=2,
                                    registry=REG, per_cohort=True)
    assert list(table["arm"]) == ["ketamine", "ketamine"]
    assert (table["test"] == "crossover mixed model, Wald z").all()
    # every patient takes every treatment: all randomised count (it was NaN)
    assert np.isfinite(table["randomised_mean"]).all() and (table["randomised_mean"] > 0).all()
    estimate, p = _primary(text)
    first = each[(each["n"] == 6) & (each["cohort"] == 0)].iloc[0]
    assert first["estimate"] == pytest.approx(estimate, rel=1e-9)
    assert first["p"] == pytest.approx(p, rel=1e-9)


def test_a_stratified_design_runs_each_trial_on_its_own():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "examples" / "stratified_trd_trial.yaml"
    text = path.read_text().replace("n: 60", "n: 8")
    table, each = trial_power_curve(load_scenario_text(text), [8], cohorts=2, registry=REG,
                                    per_cohort=True)
    estimate, p = _primary(text)
    first = each[each["cohort"] == 0].iloc[0]
    assert first["estimate"] == pytest.approx(estimate, rel=1e-12)
    assert first["p"] == pytest.approx(p, rel=1e-12)
    assert each["estimate"].nunique() == 2 and table["n_arm"].iloc[0] == 8


def test_a_screened_population_reports_the_patients_randomised(tmp_path):
    """With a population that screens its candidates, n counts candidates: the table
    gives the mean number randomised (those passing), which the CLI and figure show."""
    pop = ("    population: {failed_trials: 2.5, screening: -7d, inclusion: {madrs_min: 22, "
           "failed_trials_min: 2}}\n")
    text = _trial(10, 10).replace("    protocol:\n", pop + "    protocol:\n").replace(
        "{assay: madrs, at: [-1d, 24h, 7d]}", "{assay: madrs, at: [-7d, -1d, 24h, 7d]}")
    sc = load_scenario_text(text)
    table = trial_power_curve(sc, [10], cohorts=3, registry=REG)
    row = table.iloc[0]
    assert row["n_arm"] == 10 and 0 < row["randomised_mean"] < 10
    sc1 = sc.model_copy(update={"arms": [a.model_copy(update={"n": 10}) for a in sc.arms]})
    r = simulate(sc1, registry=REG)
    k = analyse_trial(sc1, r.readouts, r.disposition, r.patients, r.intercurrent).consort
    first = int(k.loc[(k["stage"] == "allocated") & (k["arm"] == "ketamine"), "n"].iloc[0])
    assert first < 10  # cohort 0 is this trial: some candidates fail screening
    (tmp_path / "t.yaml").write_text(text)
    res = CliRunner().invoke(app, ["power", str(tmp_path / "t.yaml"), "--design", "--n",
                                   "10", "--cohorts", "3"])
    assert res.exit_code == 0, res.output
    assert "count candidates before the population's screening" in res.output
