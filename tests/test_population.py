"""Virtual patients (issue 14 item 3): covariates per patient, weight into the PK,
inclusion by screening with screen failures counted, and one clear error per bad block."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.cli import app
from ketasim.experiment.population import draw_patients
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
MID = "{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}"


def trial(n=40, population="{screening: -7d, inclusion: {madrs_min: 22, "
          "failed_trials_min: 2}, bipolar: 0.2}", design=True, species="human"):
    arms = "".join(
        f"  - name: {name}\n    n: {n}\n    population: {population}\n"
        f"    protocol: [{DEP}, {drug}]\n"
        "    assays: [{assay: madrs, at: [-7d, -1d, 24h, 7d]}, {assay: plasma_pk, at: [1h]}]\n"
        for name, drug in (("placebo", MID), ("ketamine", KET)))
    text = f"name: pop\nspecies: {species}\nseed: 3\narms:\n{arms}"
    if design:
        text += "design: {control: placebo, baseline: -1d, primary: 24h}\n"
    return text


def test_covariates_are_drawn_per_patient_whatever_the_batch():
    sc = load_scenario_text(trial(n=400, design=False))
    pop = sc.arms[0].population
    a = draw_patients(pop, 3, "placebo", np.arange(400))
    b = draw_patients(pop, 3, "placebo", np.arange(200, 300))
    assert a.iloc[200:300].reset_index(drop=True).equals(b)
    assert abs((a["sex"] == "female").mean() - 0.6) < 0.07
    assert abs((a["diagnosis"] == "bipolar").mean() - 0.2) < 0.06
    assert a["age_y"].between(18, 70).all() and a["weight_kg"].between(40, 200).all()
    women, men = a[a["sex"] == "female"], a[a["sex"] == "male"]
    assert men["weight_kg"].mean() > women["weight_kg"].mean() + 5
    assert abs(a["failed_trials"].mean() - 2.5) < 0.3


def test_each_patient_gets_their_own_weight_in_the_pk():
    """The drawn weight is the cohort's body weight; with allometric clearance a heavier
    patient has higher plasma levels per mg/kg (the correlation over patients)."""
    sc = load_scenario_text(trial(n=60, population="{}", design=False))
    r = simulate(sc, registry=REG)
    w = draw_patients(sc.arms[1].population, 3, "ketamine", np.arange(60))["weight_kg"]
    c = r.readouts[(r.readouts.arm == "ketamine")
                   & (r.readouts.readout == "ketamine_plasma_ng_ml")].set_index("subject")["value"]
    assert np.corrcoef(w.to_numpy(), c.loc[np.arange(60)].to_numpy())[0, 1] > 0.1
    assert r.patients is not None and r.patients["eligible"].all()


def test_screening_removes_screen_failures_and_counts_them(tmp_path):
    sc = load_scenario_text(trial())
    r = simulate(sc, registry=REG)
    p = r.patients
    assert len(p) == 80 and 0 < (~p["eligible"]).sum() < 80
    ok = p[p["eligible"]]
    assert (ok["screening_madrs"] >= 22).all() and (ok["failed_trials"] >= 2).all()
    out = p[~p["eligible"]]
    assert out["exclusion"].str.len().gt(0).all()
    seen = set(zip(r.readouts["arm"], r.readouts["subject"], strict=True))
    assert seen == set(zip(ok["arm"], ok["subject"], strict=True))
    # the run folder: patients.csv, the manifest's counts, CONSORT with screening
    (tmp_path / "pop.yaml").write_text(trial())
    res = CliRunner().invoke(app, ["run", str(tmp_path / "pop.yaml"), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert sum(man["patients"]["screened"].values()) == 80
    assert sum(man["patients"]["eligible"].values()) == int(p["eligible"].sum())
    consort = (tmp_path / "o" / "consort.csv").read_text()
    assert "screened,,,80" in consort
    assert f"randomised,,,{int(p['eligible'].sum())}" in consort
    assert "MADRS below 22 at screening" in consort


@pytest.mark.parametrize("text,where", [
    (trial(species="mouse", design=False).replace("{assay: plasma_pk, at: [1h]}",
                                                 "{assay: signaling_state, at: [1h]}")
     .replace("stress: major_depression", "stress: cort"),  # a mouse stressor
     r"arms\[0\]\.population"),
    (trial(population="{screening: -3d, inclusion: {madrs_min: 22}}"),
     r"arms\[0\]\.population\.screening"),
    (trial(population="{inclusion: {madrs_min: 22}}"), r"arms\[0\]\.population\.screening"),
    (trial(population="{age: {mean: 40, sd: 10, min: 60, max: 20}}"),
     r"arms\[0\]\.population\.age\.max"),
    (trial(population="{female: 1.5}"), r"arms\[0\]\.population\.female"),
    (trial(population="{inclusion: {diagnoses: [psychotic]}}"),
     r"arms\[0\]\.population\.inclusion\.diagnoses"),
], ids=["not-human", "screening-not-a-visit", "no-screening", "min-above-max",
        "share-above-one", "unknown-diagnosis"])
def test_bad_population_is_one_error_naming_the_field(text, where):
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


@pytest.mark.parametrize("name,value", [("species.human.body_weight", 80.0),
                                        ("species.human.age", 60.0)])
def test_a_registry_covariate_a_population_replaces_is_refused(tmp_path, name, value):
    """A population draws each patient's weight and age; a registry value set there (a
    --set, a sweep) would be overridden without effect: one clear error, nothing run."""
    from ketasim.signaling.protocol import ProtocolError

    sc = load_scenario_text(trial(n=2, population="{}", design=False))
    with pytest.raises(ProtocolError, match=rf"{name}: set to .*arms\[0\]\.population"):
        simulate(sc, registry=REG.with_values({name: value}))
    (tmp_path / "pop.yaml").write_text(trial(n=2, population="{}", design=False))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "pop.yaml"), "--out",
                                   str(tmp_path / "o"), "--set", f"{name}={value}"])
    assert res.exit_code == 2 and name in res.output
    assert not (tmp_path / "o").exists()
    # the same setting on a scenario without a population is used as it was
    text = trial(n=2, population="{}", design=False).replace("    population: {}\n", "")
    r = simulate(load_scenario_text(text), registry=REG.with_values({name: value}))
    assert len(r.readouts)
