"""Crossover trials (issue 14 item 5): each patient receives every treatment in
sequence; the analysis compares patients with themselves; bad designs name the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.cli import app
from ketasim.experiment.trial import (
    CROSSOVER_ENDPOINT_COLUMNS,
    analyse_trial,
    crossover_long,
)
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text

KET = "{at: AT, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: AT, drug: saline, route: iv}"
CROSS = """\
name: cx
species: human
seed: 4
arms:
  - name: kp
    n: 18
    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
      - K0
      - S14
    assays: &a
      - {assay: madrs, at: [-1d, 24h, 13d, 15d]}
  - name: pk
    n: 18
    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
      - S0
      - K14
    assays: *a
design:
  control: placebo
  baseline: -1d
  primary: 24h
  crossover:
    periods: [0h, 14d]
    treatments: {kp: [ketamine, placebo], pk: [placebo, ketamine]}
""".replace("K0", KET.replace("AT", "0h")).replace("S14", SAL.replace("AT", "14d")).replace(
    "S0", SAL.replace("AT", "0h")).replace("K14", KET.replace("AT", "14d"))


def test_crossover_compares_patients_with_themselves(tmp_path):
    sc = load_scenario_text(CROSS)
    r = simulate(sc, registry=load_registry())
    tables = analyse_trial(sc, r.readouts, r.disposition)
    con = tables.trial[tables.trial["kind"] == "contrast"]
    assert list(con["arm"]) == ["ketamine"] and con["control"].iloc[0] == "placebo"
    assert con["estimate"].iloc[0] < -3.0 and con["p"].iloc[0] < 0.05
    # the same model fitted directly with statsmodels
    long = crossover_long(sc, r.readouts).dropna(subset=["change"])
    assert len(long) == 72 and set(long["period"]) == {1, 2}
    fit = smf.mixedlm("change ~ C(treatment, Treatment(reference='placebo')) + C(period)",
                      long, groups=long["patient"]).fit(reml=True)
    name = "C(treatment, Treatment(reference='placebo'))[T.ketamine]"
    assert con["estimate"].iloc[0] == pytest.approx(fit.params[name], rel=1e-9)
    assert con["se"].iloc[0] == pytest.approx(fit.bse[name], rel=1e-9)
    # each patient has both treatments, one per period
    per = long.groupby("patient")["treatment"].apply(lambda s: tuple(sorted(s)))
    assert (per == ("ketamine", "placebo")).all()
    # response and remission per treatment and within patients, from the same rows
    ep = tables.endpoints
    assert list(ep.columns) == CROSSOVER_ENDPOINT_COLUMNS
    assert set(ep["endpoint"]) == {"response", "remission"}
    resp = ep[(ep["endpoint"] == "response") & (ep["arm"] == "ketamine")].iloc[0]
    event = (long["baseline"] - long["score"]) >= 0.5 * long["baseline"]
    wide = long.assign(event=event).pivot(index="patient", columns="treatment",
                                          values="event")
    assert resp["events"] == wide["ketamine"].sum() and resp["n_pairs"] == 36
    assert resp["arm_only"] == (wide["ketamine"] & ~wide["placebo"]).sum()
    assert resp["control_only"] == (~wide["ketamine"] & wide["placebo"]).sum()
    # 10 of 36 respond on ketamine (12 before the restoration pool's refit of 2026-12-07,
    # session 37), 2 on placebo
    assert resp["proportion"] > 0.25 and resp["mcnemar_p"] < 0.05
    rem = ep[(ep["endpoint"] == "remission") & (ep["arm"] == "ketamine")].iloc[0]
    assert rem["events"] == (long.loc[long["treatment"] == "ketamine", "score"] <= 12).sum()
    # through the CLI: trial.csv and the report
    (tmp_path / "cx.yaml").write_text(CROSS)
    res = CliRunner().invoke(app, ["run", str(tmp_path / "cx.yaml"), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    trial = pd.read_csv(tmp_path / "o" / "trial.csv")
    assert np.isclose(trial.loc[trial["kind"] == "contrast", "estimate"].iloc[0],
                      con["estimate"].iloc[0])
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Trial" in page and "McNemar" in page and 'alt="response and remission"' in page
    assert (tmp_path / "o" / "fig_trial_endpoints.png").stat().st_size > 1000
    written = pd.read_csv(tmp_path / "o" / "endpoints.csv")
    assert list(written.columns) == CROSSOVER_ENDPOINT_COLUMNS
    assert np.allclose(written["mcnemar_p"].dropna(), ep["mcnemar_p"].dropna())


@pytest.mark.parametrize("edit,where", [
    (("periods: [0h, 14d]", "periods: [0h, 12h]"), r"design\.crossover\.periods\[1\]"),
    (("control: placebo", "control: sham"), r"design\.control"),
    (("{kp: [ketamine, placebo], pk", "{kp: [ketamine], pk"),
     r"design\.crossover\.treatments\.kp"),
    (("  primary: 24h\n", "  primary: 24h\n  dropout: {rate_per_week: 0.1}\n"),
     r"design\.dropout"),
    (("  primary: 24h\n", "  primary: 2d\n"), r"design\.primary"),
    (("periods: [0h, 14d]", "periods: [14d, 0h]"), r"design\.crossover\.periods\[1\]"),
], ids=["negative-washout", "unknown-reference", "sequence-length", "dropout",
        "visit-missing-in-a-period", "periods-out-of-order"])
def test_bad_crossover_is_one_error_naming_the_field(edit, where):
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(CROSS.replace(*edit))
