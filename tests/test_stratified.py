"""Stratified randomisation (issue 14 item 5): one pool of candidates from the analysed
arms' shared population, allocated by permuted blocks within strata with exact arm
sizes; a patient's numbers follow the patient, not the arm; one clear error per bad
design field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.cli import app
from ketasim.experiment.population import allocate, stratum_labels
from ketasim.experiment.trial import analyse_trial
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
MID = "{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}"
POP = "{female: 0.6, failed_trials: 2.5, screening: -7d, inclusion: {madrs_min: 20}}"
STRAT = "stratify: [sex, failed_trials], stratum_cuts: {failed_trials: [3]}"


def trial(n=(30, 30), design=STRAT, pops=(POP, POP), ratio="{placebo: 1, ketamine: 1}"):
    arms = "".join(
        f"  - name: {name}\n    n: {k}\n    population: {pop}\n"
        f"    protocol: [{DEP}, {drug}]\n"
        "    assays: [{assay: madrs, at: [-7d, -1d, 24h, 7d]}]\n"
        for name, k, pop, drug in zip(("placebo", "ketamine"), n, pops, (MID, KET),
                                      strict=True))
    ratio_line = f", randomisation: {ratio}" if ratio else ""
    return (f"name: strat\nspecies: human\nseed: 11\narms:\n{arms}"
            f"design: {{control: placebo, baseline: -1d, primary: 24h{ratio_line}"
            f"{', ' + design if design else ''}}}\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=120),
       st.sampled_from([(1, 1), (1, 2), (2, 3), (1, 1, 1)]), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_allocation_meets_the_arm_sizes_and_balances_every_stratum(codes, ratio, mult, seed):
    """Exact arm sizes; every complete block of a stratum holds the ratio exactly; each
    stratum's incomplete block gives each arm the floor or the ceiling of its share."""
    total = sum(ratio)
    codes = codes[:len(codes) // total * total] or [0] * total
    strata = np.array([f"s{c}" for c in codes], dtype=object)
    sizes = [len(codes) * r // total for r in ratio]
    block = total * mult
    arm = allocate(strata, list(ratio), sizes, block, np.random.default_rng(seed))
    assert np.bincount(arm, minlength=len(ratio)).tolist() == sizes
    for s in np.unique(strata):
        got = arm[strata == s]
        full = len(got) // block * block
        for b0 in range(0, full, block):
            assert np.bincount(got[b0:b0 + block], minlength=len(ratio)).tolist() == [
                r * mult for r in ratio]
        rest = np.bincount(got[full:], minlength=len(ratio))
        share = (len(got) - full) * np.array(ratio) / total
        assert np.all(rest >= np.floor(share - 1e-9)) and np.all(rest <= np.ceil(share + 1e-9))


def test_allocation_is_random_within_blocks():
    """Over many pools the first candidate of a stratum goes to each arm about half the
    time (1:1), so allocation is not a fixed pattern."""
    strata = np.array(["a"] * 8, dtype=object)
    first = [allocate(strata, [1, 1], [4, 4], 4, np.random.default_rng(s))[0]
             for s in range(400)]
    assert 0.4 < np.mean(first) < 0.6


def test_strata_labels_cut_numeric_factors():
    p = pd.DataFrame({"sex": ["female", "male", "male"], "failed_trials": [0, 3, 7],
                      "age_y": [30.0, 50.0, 70.0]})
    lab = stratum_labels(p, ["sex", "failed_trials", "age_y"],
                         {"failed_trials": [3], "age_y": [40, 60]})
    assert lab.tolist() == ["sex=female|failed_trials<3|age_y<40",
                            "sex=male|failed_trials>=3|age_y=40-60",
                            "sex=male|failed_trials>=3|age_y>=60"]


def test_a_stratified_trial_allocates_one_pool_and_balances_its_strata():
    """Screening (here the MADRS at the screening visit) comes before allocation: every
    allocated patient is randomised, the strata balance within a block among them, and
    the arm's own rating at the screening visit is the one the pool was screened on."""
    r = simulate(load_scenario_text(trial(n=(40, 40))), registry=REG)
    p = r.patients
    assert sorted(p["pool_id"].astype(int)) == list(range(len(p)))  # screened in order
    allocated = p[p["arm"] != ""]
    assert allocated["eligible"].all() and (allocated["screening_madrs"] >= 20).all()
    for arm, g in allocated.groupby("arm"):
        assert sorted(g["subject"]) == list(range(40))  # subjects stay arm indices
    before = p[p["arm"] == ""]
    assert (before["screening_madrs"] < 20).all()  # screened out on the MADRS
    counts = pd.crosstab(allocated["stratum"], allocated["arm"])
    assert (counts["ketamine"] - counts["placebo"]).abs().max() <= 2  # blocks of 4
    seen = r.readouts[(r.readouts["readout"] == "madrs_total")
                      & (r.readouts["time_h"] == -168.0)]
    both = seen.merge(allocated[["arm", "subject", "screening_madrs"]])
    assert len(both) == 80 and (both["value"] == both["screening_madrs"]).all()
    # the readouts hold every allocated patient, by arm-local index
    assert set(zip(r.readouts["arm"], r.readouts["subject"], strict=True)) == set(
        zip(allocated["arm"], allocated["subject"], strict=True))


def test_a_patients_numbers_follow_the_patient_not_the_arm():
    """Another block size allocates the pool differently; each candidate (pool id) keeps
    their covariates, screening MADRS and pre-dose baseline MADRS wherever they land."""
    def run(block):
        r = simulate(load_scenario_text(trial(design=STRAT + f", block_size: {block}")),
                     registry=REG)
        p = r.patients.set_index(["arm", "subject"])
        base = r.readouts[(r.readouts["readout"] == "madrs_total")
                          & (r.readouts["time_h"] == -24.0)]
        base = base.set_index(["arm", "subject"])["value"]
        p["baseline"] = base.reindex(p.index)
        return p.reset_index().set_index("pool_id").sort_index()

    a, b = run(2), run(6)
    assert (a["arm"] != b["arm"]).any()  # the allocations differ
    cols = ["sex", "age_y", "weight_kg", "failed_trials", "screening_madrs", "eligible",
            "baseline"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_run_folder_has_the_strata_table_and_the_plan(tmp_path):
    (tmp_path / "s.yaml").write_text(trial(n=(20, 20)))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "strata.csv" in res.output
    strata = pd.read_csv(tmp_path / "o" / "strata.csv")
    assert list(strata.columns) == ["stratum", "arm", "allocated", "randomised"]
    assert strata["allocated"].sum() == 40
    assert (strata["randomised"] <= strata["allocated"]).all()
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["trial"]["stratify"] == ["sex", "failed_trials"]
    assert "Stratified randomisation" in (tmp_path / "o" / "report.html").read_text()


@pytest.mark.parametrize("text,where", [
    (trial(design="stratify: [age_y]"), r"design\.stratum_cuts"),
    (trial(design="stratify: [height]"), r"design\.stratify\[0\]"),
    (trial(design="stratify: [sex, sex]"), r"design\.stratify\[1\]"),
    (trial(design="stratify: [age_y], stratum_cuts: {age_y: [60, 40]}"),
     r"design\.stratum_cuts\.age_y"),
    (trial(design="stratify: [sex], stratum_cuts: {age_y: [40]}"),
     r"design\.stratum_cuts\.age_y"),
    (trial(design="block_size: 4"), r"design\.block_size"),
    (trial(design="stratify: [sex], block_size: 3"), r"design\.block_size"),
    (trial(design="stratify: [sex]", pops=(POP, "{female: 0.5}")), r"design\.stratify"),
    (trial(design="stratify: [sex]", ratio="{placebo: 1, ketamine: 1.5}", n=(20, 30)),
     r"design\.randomisation\.ketamine"),
    (trial(design="stratify: [sex]", ratio="{placebo: 1, ketamine: 2}", n=(20, 39)),
     r"design\.randomisation"),
], ids=["numeric-without-cuts", "unknown-factor", "repeated-factor", "cuts-not-increasing",
        "cuts-for-unstratified", "block-without-stratify", "block-not-multiple",
        "populations-differ", "fractional-ratio", "n-off-ratio"])
def test_bad_stratification_is_one_error_naming_the_field(text, where):
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


def test_the_primary_analysis_adjusts_for_the_stratification_factors():
    """With one post-baseline visit the analysis is the ANCOVA change ~ arm + baseline +
    sex + failed_trials band, equal to statsmodels' OLS on the same patients (its LS
    means with the factors' levels weighted equally); with several visits the MMRM names
    the factors too."""
    import statsmodels.formula.api as smf

    text = trial(n=(40, 40)).replace("[-7d, -1d, 24h, 7d]", "[-7d, -1d, 24h]")
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    tables = analyse_trial(sc, r.readouts, r.disposition, r.patients)
    row = tables.trial[tables.trial["kind"] == "contrast"].iloc[0]
    assert "sex + failed_trials" in row["model"]
    y = r.readouts[r.readouts["readout"] == "madrs_total"].pivot_table(
        index=["arm", "subject"], columns="time_h", values="value")
    p = r.patients.set_index(["arm", "subject"])
    d = pd.DataFrame({"arm": y.index.get_level_values(0), "baseline": y[-24.0].to_numpy(),
                      "change": (y[24.0] - y[-24.0]).to_numpy(),
                      "sex": p.loc[y.index, "sex"].to_numpy(),
                      "tr": (p.loc[y.index, "failed_trials"] >= 3).to_numpy()})
    fit = smf.ols("change ~ C(arm, Treatment('placebo')) + C(sex) + C(tr) + baseline",
                  d).fit()
    term = "C(arm, Treatment('placebo'))[T.ketamine]"
    assert row["estimate"] == pytest.approx(fit.params[term])
    assert row["se"] == pytest.approx(fit.bse[term]) and row["df"] == fit.df_resid
    # LS means weight each factor's levels equally (as the MMRM and emmeans), not by
    # their observed shares, with the baseline at its mean
    ls = tables.trial[tables.trial["kind"] == "lsmean"].set_index("arm")["estimate"]
    b = fit.params
    factors = 0.5 * b["C(sex)[T.male]"] + 0.5 * b["C(tr)[T.True]"]
    base = b["Intercept"] + factors + b["baseline"] * d["baseline"].mean()
    assert ls["placebo"] == pytest.approx(base)
    assert ls["ketamine"] == pytest.approx(base + b[term])
    several = simulate(load_scenario_text(trial(n=(20, 20))), registry=REG)
    t = analyse_trial(load_scenario_text(trial(n=(20, 20))), several.readouts,
                      several.disposition, several.patients).trial
    assert t.loc[t["kind"] == "contrast", "model"].str.contains("+ sex + failed_trials",
                                                                regex=False).all()


def test_the_worked_example_runs():
    """docs/examples/stratified_trd_trial.yaml loads and runs (at a tenth of its size):
    screened patients, strata balanced within a block, the adjusted MMRM."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "examples" / "stratified_trd_trial.yaml"
    text = path.read_text().replace("n: 60", "n: 12")
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    counts = pd.crosstab(r.patients["stratum"], r.patients["arm"])
    assert (counts["ketamine"] - counts["midazolam"]).abs().max() <= 2
    t = analyse_trial(sc, r.readouts, r.disposition, r.patients).trial
    assert t.loc[t["kind"] == "contrast", "model"].str.contains("+ sex + failed_trials",
                                                                regex=False).all()


def test_candidates_failing_known_criteria_are_screened_out_before_allocation(tmp_path):
    """Criteria known before any visit (failed trials) are applied to the pool before
    allocation: every allocated patient meets them, the candidates that fail are listed
    without an arm and counted as screened and excluded; a population that admits almost
    no one is one error."""
    pop = ("{female: 0.6, failed_trials: 2.5, screening: -7d, "
           "inclusion: {madrs_min: 20, failed_trials_min: 2}}")
    sc = load_scenario_text(trial(n=(30, 30), pops=(pop, pop)))
    r = simulate(sc, registry=REG)
    p = r.patients
    allocated, before = p[p["arm"] != ""], p[p["arm"] == ""]
    assert len(allocated) == 60 and (allocated["failed_trials"] >= 2).all()
    short = before["exclusion"].str.startswith("fewer than 2 failed")
    assert short.sum() > 0 and (before.loc[short, "failed_trials"] < 2).all()
    assert (before.loc[~short, "screening_madrs"] < 20).all()
    assert before.loc[short, "screening_madrs"].isna().all()  # never reached the visit
    assert (before["subject"] == -1).all() and (~before["eligible"]).all()
    # the pool runs in order: screening stopped at the last place filled
    assert sorted(p["pool_id"].astype(int)) == list(range(len(p)))
    flow = analyse_trial(sc, r.readouts, r.disposition, p).consort
    screened = flow.loc[flow["stage"] == "screened", "n"].sum()
    assert screened == len(p)
    none = "{failed_trials: 0.01, inclusion: {failed_trials_min: 6}}"
    from ketasim.signaling.protocol import ProtocolError
    with pytest.raises(ProtocolError, match="design.stratify"):
        simulate(load_scenario_text(trial(n=(2, 2), pops=(none, none),
                                          design="stratify: [sex]")), registry=REG)


def test_screening_batches_change_what_is_simulated_never_who_is_randomised(monkeypatch):
    """Candidates are screened in batches sized by the pass rate so far; with batches of
    7 instead the same candidates are screened, allocated and rated alike."""
    from ketasim.experiment import population

    sc = load_scenario_text(trial(n=(20, 20)))
    a = simulate(sc, registry=REG)
    sizes = []

    def seven(need, found, drawn):
        sizes.append(7)
        return 7

    monkeypatch.setattr(population, "screening_batch", seven)
    b = simulate(sc, registry=REG)
    assert len(sizes) > 5
    pd.testing.assert_frame_equal(a.patients, b.patients)
    pd.testing.assert_frame_equal(a.readouts, b.readouts)


def test_screening_batch_follows_the_pass_rate():
    from ketasim.experiment.population import MIN_SCREENING_BATCH, screening_batch

    assert screening_batch(120, 0, 0) == 120  # a trial's worth first
    assert screening_batch(120, 77, 120) == 84  # 43 places at a pass rate of 0.64, +25%
    assert screening_batch(120, 119, 186) == MIN_SCREENING_BATCH
    assert screening_batch(10, 0, 40) == 40  # nobody passed yet: four trials' worth


@pytest.mark.parametrize("design", [STRAT, None])
def test_subject_model_is_the_runs_patient(design):
    """runner.subject_model (the SBML export's subject) gives a patient the weight and age
    the run drew for them: from the stratified pool, or from the arm's own population
    (drawn for that candidate alone)."""
    from ketasim.experiment.runner import subject_model

    sc = load_scenario_text(trial(n=(6, 6), design=design))
    run = simulate(sc, registry=REG)
    pts = run.patients.set_index(["arm", "subject"])
    for i, arm in enumerate(sc.arms):
        for s in (0, 5):
            cohort = subject_model(sc, i, s, registry=REG).cohort
            got = dict(zip(cohort.names, cohort.values[0], strict=True))
            want = pts.loc[(arm.name, s)]
            assert got["species.human.body_weight"] == pytest.approx(want["weight_kg"])
            assert got["species.human.age"] == pytest.approx(want["age_y"])
