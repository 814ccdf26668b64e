"""Intercurrent events (issue 14 item 5; ICH E9(R1)): a rating past a threshold stops the
study treatment, the simulation withholds that patient's later doses (and nothing before),
and the analysis follows the design's estimand strategy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.cli import app
from ketasim.experiment.trial import (
    INTERCURRENT_COLUMNS,
    INTERCURRENT_SUMMARY_COLUMNS,
    analyse_trial,
)
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text
from ketasim.signaling.protocol import EV_SET_PARAM, EventTable, ProtocolError

DOSES = [0, 3, 7, 10]  # days
CADSS_AT = ", ".join(f"{24 * 60 * d + 40}min" for d in DOSES)  # end of each infusion
ARM = """\
  - name: NAME
    n: 24
    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
DOSES    assays:
      - {assay: madrs, at: [-1d, 24h, 4d, 8d, 11d, 14d]}
      - {assay: cadss, at: [CADSS]}
"""
KET = "      - {at: Dd, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}\n"
SAL = "      - {at: Dd, drug: saline, route: iv}\n"
ICE = """\
design:
  control: placebo
  baseline: -1d
  primary: 14d
  intercurrent:
    - {name: stopped_for_dissociation, readout: cadss_total, at_or_above: 25,
       withhold: [ketamine, saline]}
"""


def _scenario(design: str = ICE) -> str:
    arms = "".join(ARM.replace("NAME", name).replace("CADSS", CADSS_AT).replace(
        "DOSES", "".join(line.replace("D", str(d), 1) for d in DOSES))
        for name, line in (("placebo", SAL), ("ketamine", KET)))
    return f"name: ice\nspecies: human\nseed: 3\narms:\n{arms}{design}"


@pytest.fixture(scope="module")
def runs():
    reg = load_registry()
    with_ice = load_scenario_text(_scenario())
    without = load_scenario_text(_scenario(ICE.split("  intercurrent:")[0]))
    return (with_ice, simulate(with_ice, registry=reg),
            simulate(without, registry=reg), reg)


def test_an_event_withholds_the_later_doses_and_changes_nothing_before(runs):
    _, r, plain, _ = runs
    ice = r.intercurrent
    assert list(ice.columns) == INTERCURRENT_COLUMNS
    assert len(ice) >= 2 and set(ice["arm"]) == {"ketamine"}
    assert set(r.readouts["assay"]) == {"madrs", "cadss"}  # the events left the readouts
    key = ["arm", "subject", "assay", "readout", "time_h"]
    a = r.readouts.set_index(key)["value"].sort_index()
    b = plain.readouts.set_index(key)["value"].sort_index()
    assert a.index.equals(b.index)
    at = dict(zip(ice["subject"], ice["time_h"], strict=True))
    cadss = plain.readouts[plain.readouts["readout"] == "cadss_total"]
    for s, t in at.items():
        mine = cadss[(cadss["arm"] == "ketamine") & (cadss["subject"] == s)]
        # the event is the first rating at or above the threshold
        assert mine.loc[mine["time_h"] == t, "value"].iloc[0] >= 25
        assert (mine.loc[mine["time_h"] < t, "value"] < 25).all()
    sub = a.index.get_level_values("subject")
    arm = a.index.get_level_values("arm")
    time = a.index.get_level_values("time_h")
    hit = (arm == "ketamine") & sub.isin(list(at))
    later = hit & (time > np.array([at.get(s, np.inf) for s in sub]))
    # everything up to each event, and every other patient, is the same number
    assert np.array_equal(a.to_numpy()[~later], b.to_numpy()[~later])
    # after it, no ketamine: the later infusions' dissociation is gone
    dis = a.index.get_level_values("readout") == "cadss_total"
    assert (a.to_numpy()[later & dis] < 10).all()
    assert (b.to_numpy()[later & dis] >= 5).mean() > 0.8
    assert not np.array_equal(a.to_numpy()[later], b.to_numpy()[later])


def test_events_do_not_depend_on_chunks_or_where_spans_run(runs):
    sc, r, _, reg = runs
    small = simulate(sc, registry=reg, chunk_subjects=5)
    pd.testing.assert_frame_equal(small.readouts, r.readouts)
    pd.testing.assert_frame_equal(small.intercurrent, r.intercurrent)

    def here(fn, tasks, done=None):  # a distributed run's spans, computed in turn
        return [fn(*t) for t in tasks]

    spans = simulate(sc, registry=reg, chunk_subjects=5, map_tasks=here)
    pd.testing.assert_frame_equal(spans.readouts, r.readouts)
    pd.testing.assert_frame_equal(spans.intercurrent, r.intercurrent)


def test_strategies_treatment_policy_and_hypothetical(runs):
    sc, r, _, _ = runs
    n_ice = len(r.intercurrent)
    policy = analyse_trial(sc, r.readouts, r.disposition, intercurrent=r.intercurrent)
    summary = policy.intercurrent_summary
    assert list(summary.columns) == INTERCURRENT_SUMMARY_COLUMNS
    ket = summary[summary["arm"] == "ketamine"].iloc[0]
    assert ket["patients"] == n_ice and ket["randomised"] == 24
    assert ket["share"] == pytest.approx(n_ice / 24)
    assert "treatment policy" in policy.notes[0]
    stopped = policy.consort[policy.consort["stage"] == "discontinued intervention"]
    assert list(stopped["arm"]) == ["ketamine"] and stopped["n"].iloc[0] == n_ice
    assert stopped["reason"].iloc[0] == "stopped_for_dissociation"
    obs = policy.trial[(policy.trial["kind"] == "observed")
                       & (policy.trial["arm"] == "ketamine")]
    assert (obs["n"] == 24).all()  # every rating counts

    hyp_sc = sc.model_copy(update={"design": sc.design.model_copy(
        update={"strategy": "hypothetical"})})
    hyp = analyse_trial(hyp_sc, r.readouts, r.disposition, intercurrent=r.intercurrent)
    obs = hyp.trial[(hyp.trial["kind"] == "observed") & (hyp.trial["arm"] == "ketamine")]
    at = obs.set_index("visit_h")["n"]
    # the events happen at the end of an infusion (CADSS is rated there): each patient's
    # ratings after their own event are missing
    events = r.intercurrent["time_h"].to_numpy()
    assert (events > 0).all() and at[-24.0] == 24
    missing = {v: int((events < v).sum()) for v in at.index}
    assert all(at[v] == 24 - k for v, k in missing.items())
    assert missing[at.index.max()] == n_ice  # all before the last visit
    assert f"their {sum(missing.values())} ratings" in hyp.notes[0]
    con = hyp.trial[(hyp.trial["kind"] == "contrast") & hyp.trial["primary"]].iloc[0]
    assert np.isfinite(con["estimate"]) and con["n"] == 24 - n_ice
    # while on treatment: later ratings take the last one at or before the event
    wot_sc = sc.model_copy(update={"design": sc.design.model_copy(
        update={"strategy": "while_on_treatment"})})
    wot = analyse_trial(wot_sc, r.readouts, r.disposition, intercurrent=r.intercurrent)
    assert f"their {sum(missing.values())} ratings" in wot.notes[0]
    assert "while-on-treatment" in wot.notes[0]
    obs = wot.trial[(wot.trial["kind"] == "observed") & (wot.trial["arm"] == "ketamine")]
    assert (obs["n"] == 24).all()
    m = r.readouts[(r.readouts["readout"] == "madrs_total") & (r.readouts["arm"] == "ketamine")]
    y = m.pivot(index="subject", columns="time_h", values="value")
    ice = r.intercurrent.set_index("subject")["time_h"]
    for subject, t_event in ice.items():
        y.loc[subject, [c for c in y.columns if c > t_event]] = y.loc[
            subject, max(c for c in y.columns if c <= t_event)]
    change = (y[336.0] - y[-24.0]).mean()
    assert obs.loc[obs["visit_h"] == 336.0, "estimate"].iloc[0] == pytest.approx(change)
    with pytest.raises(ValueError, match="intercurrent table"):
        analyse_trial(sc, r.readouts, r.disposition)


def test_run_writes_the_events_and_reports_them(tmp_path):
    (tmp_path / "s.yaml").write_text(_scenario().replace("n: 24", "n: 8"))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    events = pd.read_csv(tmp_path / "o" / "intercurrent.csv")
    assert list(events.columns) == INTERCURRENT_COLUMNS
    summary = pd.read_csv(tmp_path / "o" / "intercurrent_summary.csv")
    assert summary["patients"].sum() == len(events)
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Intercurrent events" in page and "treatment policy" in page
    # the 'wrote' line is read back from the folder: every file it holds, figures counted
    said = " ".join(res.output.split())
    for f in (tmp_path / "o").iterdir():
        if f.suffix != ".png":
            assert f.name in said, f.name
    assert f"{len(list((tmp_path / 'o').glob('*.png')))} figures" in said


def test_rescue_medication_starts_at_the_event_and_only_then(runs):
    _, withheld, _, reg = runs
    text = _scenario().replace(
        "withhold: [ketamine, saline]}",
        "withhold: [ketamine, saline],\n       rescue: [{at: 1d, drug: escitalopram, "
        "dose: 20 mg, route: oral, every: 1d, doses: 14}]}")
    rescued_sc = load_scenario_text(text)
    r = simulate(rescued_sc, registry=reg)
    pd.testing.assert_frame_equal(r.intercurrent, withheld.intercurrent)
    key = ["arm", "subject", "assay", "readout", "time_h"]
    a = r.readouts.set_index(key)["value"].sort_index()
    b = withheld.readouts.set_index(key)["value"].sort_index()
    at = dict(zip(r.intercurrent["subject"], r.intercurrent["time_h"], strict=True))
    sub, arm = a.index.get_level_values("subject"), a.index.get_level_values("arm")
    start = np.array([at.get(s, np.inf) for s in sub]) + 24.0  # the first rescue dose
    after = (arm == "ketamine") & (a.index.get_level_values("time_h").to_numpy() > start)
    # the same numbers until the first rescue dose, and for every other patient
    assert np.array_equal(a.to_numpy()[~after], b.to_numpy()[~after])
    madrs = after & (a.index.get_level_values("readout") == "madrs_total")
    assert madrs.sum() >= 2 * len(at)
    assert not np.array_equal(a.to_numpy()[madrs], b.to_numpy()[madrs])
    small = simulate(rescued_sc, registry=reg, chunk_subjects=4)
    pd.testing.assert_frame_equal(small.readouts, r.readouts)
    with pytest.raises(ScenarioError, match=r"design\.intercurrent\[0\]\.rescue\[0\]\.at"):
        load_scenario_text(text.replace("rescue: [{at: 1d", "rescue: [{at: -1d"))
    with pytest.raises(ScenarioError,
                       match=r"design\.intercurrent\[0\]\.rescue\[0\]\.route"):
        load_scenario_text(text.replace("route: oral, every", "route: bath, every"))
    # a route the species has no parameters for: caught before anything runs
    ip = load_scenario_text(text.replace(
        "drug: escitalopram, dose: 20 mg, route: oral", "drug: ketamine, dose: 0.5 mg/kg, "
        "route: ip"))
    with pytest.raises(ProtocolError, match=r"design\.intercurrent\[0\]\.rescue\[0\]: "
                       r"route 'ip' is not defined for species 'human'"):
        simulate(ip, registry=reg)


def test_lack_of_efficacy_is_a_change_from_baseline(runs):
    _, _, plain, reg = runs
    rule = ("  intercurrent:\n    - {name: lack_of_efficacy, readout: madrs_total, "
            "at_or_above: -0.25,\n       relative_to: -1d, after: 4d, withhold: [ketamine, "
            "saline],\n       rescue: [{at: 0h, drug: escitalopram, dose: 10 mg, route: oral, "
            "every: 1d, doses: 10}]}\n")
    sc = load_scenario_text(_scenario(ICE.split("  intercurrent:")[0] + rule))
    r = simulate(sc, registry=reg)
    m = plain.readouts[plain.readouts["readout"] == "madrs_total"]
    y = m.pivot_table(index=["arm", "subject"], columns="time_h", values="value")
    change = y[[c for c in y.columns if c >= 96.0]].sub(y[-24.0], axis=0).div(y[-24.0],
                                                                                axis=0)
    failed = change >= -0.25
    first = failed.idxmax(axis=1).where(failed.any(axis=1))
    expected = first.dropna()
    got = r.intercurrent.set_index(["arm", "subject"])["time_h"]
    assert len(got) > 5 and set(r.intercurrent["event"]) == {"lack_of_efficacy"}
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                   check_names=False)
    for edit, where in ((("relative_to: -1d", "relative_to: 4d"), "relative_to"),
                        (("relative_to: -1d", "relative_to: -2d"), "relative_to"),
                        (("at_or_above: -0.25", "at_or_above: -2"), "at_or_above")):
        text = _scenario(ICE.split("  intercurrent:")[0] + rule.replace(*edit))
        with pytest.raises(ScenarioError, match=rf"design\.intercurrent\[0\]\.{where}"):
            load_scenario_text(text)


def test_withholding_zeroes_amounts_and_rates_but_not_set_parameters():
    ev = EventTable(times=np.array([0.0, 0.0, 0.5, 72.0, 72.5]),
                    kind=np.array([EV_SET_PARAM, 0, 1, 0, 1]),
                    index=np.zeros(5, np.int64),
                    values=np.ones((3, 5)), labels=("ka", "d0", "inf0", "d1", "inf1"),
                    sources=(1, 1, 1, 2, 2))
    out = ev.withhold({1: 0.0, 2: 72.0}, np.array([np.inf, 10.0, -1.0]))
    assert np.array_equal(out.values[0], np.ones(5))  # no event
    assert np.array_equal(out.values[1], [1, 1, 1, 0, 0])  # stops after the first dose
    assert np.array_equal(out.values[2], [1, 0, 0, 0, 0])  # before any: ka stays
    with pytest.raises(ValueError, match="one stop time per subject"):
        ev.withhold({1: 0.0}, np.zeros(2))


@pytest.mark.parametrize("edit,where", [
    (("at_or_above: 25,", "at_or_above: 25, at_or_below: 3,"),
     r"design\.intercurrent\[0\].*exactly one of at_or_above and at_or_below"),
    (("at_or_above: 25,", ""), r"design\.intercurrent\[0\].*exactly one of"),
    (("at_or_above: 25,", "at_or_above: 200,"),
     r"design\.intercurrent\[0\]\.at_or_above.*from 0 to 92"),
    (("withhold: [ketamine, saline]", "withhold: [ketamin]"),
     r"design\.intercurrent\[0\]\.withhold\[0\]"),
    (("withhold: [ketamine, saline]", "withhold: [esketamine]"),
     r"design\.intercurrent\[0\]\.withhold\[0\].*a drug given in an analysed arm"),
    (("readout: cadss_total", "readout: bprs_positive"),
     r"design\.intercurrent\[0\]\.readout.*does not rate bprs_positive"),
    (("readout: cadss_total", "readout: cadss"), r"design\.intercurrent\[0\]\.readout"),
    (("  primary: 14d\n", "  primary: 14d\n  strategy: hypothetical\n  intercurrent: null\n"),
     None),
    (("withhold: [ketamine, saline]}", ("withhold: [ketamine]}\n    - {name: "
      "stopped_for_dissociation, readout: madrs_total, at_or_above: 40, withhold: "
      "[ketamine]}")), r"design\.intercurrent"),
], ids=["two-thresholds", "no-threshold", "threshold-out-of-range", "unknown-drug",
        "drug-not-given", "readout-not-rated", "not-a-readout", "strategy-alone",
        "duplicate-name"])
def test_bad_intercurrent_events_are_one_error_naming_the_field(edit, where):
    text = _scenario().replace(*edit)
    if where is None:  # the strategy without events
        text = text.split("  intercurrent:")[0].replace("  strategy: hypothetical\n",
                                                        "") + "  strategy: hypothetical\n"
        where = r"design\.strategy.*no strategy without intercurrent events"
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


def test_the_worked_example_runs():
    """docs/examples/repeated_infusions_intercurrent.yaml loads and runs (at a quarter of
    its size): screening, two events (one with rescue), the hypothetical strategy."""
    from pathlib import Path

    path = (Path(__file__).resolve().parents[1] / "docs" / "examples"
            / "repeated_infusions_intercurrent.yaml")
    sc = load_scenario_text(path.read_text().replace("n: 60", "n: 15"))
    r = simulate(sc, registry=load_registry())
    assert len(r.intercurrent) > 0
    eligible = r.patients.loc[r.patients["eligible"], ["arm", "subject"]]
    seen = set(zip(eligible["arm"], eligible["subject"], strict=True))
    assert all((a, s) in seen for a, s in zip(r.intercurrent["arm"],
                                              r.intercurrent["subject"], strict=True))
    t = analyse_trial(sc, r.readouts, r.disposition, r.patients, r.intercurrent)
    assert set(t.intercurrent_summary["event"]) == {"stopped_for_dissociation",
                                                    "stopped_for_suicidality"}
    assert "hypothetical strategy" in t.notes[0]
    assert (t.trial["kind"] == "contrast").any()
