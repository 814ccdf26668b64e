"""A needs-based taper (an arm's ``taper:``; F-K-9, issue 14 item 6): each patient's
maintenance doses follow their own ratings, solved forward by the runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim import simulate
from ketasim.experiment.cohort import sample_cohort
from ketasim.experiment.runner import _measure_chunk, _plans
from ketasim.experiment.runner import simulate as run_sim
from ketasim.experiment.taper import TAPER_ASSAY, TAPER_READOUT, TaperPlan
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text
from ketasim.signaling.protocol import EV_SET_PARAM, EventTable, ProtocolError, compile_arm
from ketasim.signaling.simulate import simulate_signaling
from ketasim.validation.statistic import evaluate

VISITS = "[-1d, 13.5d, 16.5d, 23.5d, 30.5d, 37.5d, 44.5d, 51.5d, 58.5d]"
SCENARIO = f"""\
name: taper
species: human
seed: 11
arms:
  - name: ketamine
    n: 16
    protocol:
      - {{at: -60d, stress: major_depression, duration: 150d}}
      - {{at: 0d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min, every: 3.5d, doses: 4}}
    assays:
      - {{assay: madrs, at: {VISITS}}}
    taper:
      dose: {{at: 17.5d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}}
      intervals: [7d, 14d, 21d]
      until: 60d
      readout: madrs_total
      well_at_or_below: -0.5
      relative_to: -1d
"""


@pytest.fixture(scope="module")
def run():
    reg = load_registry()
    sc = load_scenario_text(SCENARIO)
    return sc, reg, simulate(sc, registry=reg)


def _plan(**kw) -> TaperPlan:
    base = {"times": np.arange(10) * 24.0, "rungs": (1, 2, 3, 4), "step_h": 24.0,
                "assay": "madrs", "readout": "madrs_total", "threshold": 12.0, "ref": np.nan,
                "first_entry": 0}
    base.update(kw)
    return TaperPlan(**base)


def test_the_ladder_moves_one_rung_up_when_well_and_one_down_when_not():
    plan = _plan()
    given, interval = plan.schedule(np.ones((1, 10), dtype=bool))
    # always well: doses at 0, 1, 3, 6 (then 10 is past the grid), intervals 1, 2, 3, 4
    assert np.flatnonzero(given[0]).tolist() == [0, 1, 3, 6]
    assert interval[0, [0, 1, 3, 6]].tolist() == [1, 2, 3, 4]
    given, interval = plan.schedule(np.zeros((1, 10), dtype=bool))
    assert given[0].all() and (interval[0] == 1).all()  # never well: every step
    well = np.ones((1, 10), dtype=bool)
    well[0, 3] = False  # not well at the third dose: back from 3 to 1 step
    given, interval = plan.schedule(well)
    assert np.flatnonzero(given[0]).tolist() == [0, 1, 3, 4, 6, 9]
    assert interval[0, [0, 1, 3, 4, 6, 9]].tolist() == [1, 2, 1, 2, 3, 4]
    # the judgement at a time the patient gets no dose is never read
    well[0, 2] = False
    assert np.array_equal(plan.schedule(well)[0], given)


def test_a_patient_is_judged_on_the_latest_rating_strictly_before_the_dose():
    plan = _plan(times=np.array([0.0, 24.0, 48.0, 72.0]), rungs=(1,), threshold=-0.5,
                 ref=-24.0)
    frame = pd.DataFrame({
        "subject": [0] * 4 + [1] * 4, "readout": "madrs_total",
        "time_h": [-24.0, 24.0, 47.0, 72.0] * 2,
        "value": [30.0, 10.0, 12.0, 30.0, 0.0, 0.0, 0.0, 0.0]})
    well = plan.well(np.array([0, 1]), frame)
    # subject 0: 0 h reads baseline (change 0); the 24-h rating is not before the 24-h
    # dose, so 24 h reads baseline too; 48 h and 72 h read 47 h (-0.6), never the 72-h
    # rating of 30; subject 1's baseline of 0 makes no fractional change
    assert well[0].tolist() == [False, False, True, True]
    assert not well[1].any()
    absolute = _plan(times=np.array([-48.0, 30.0]), rungs=(1,), threshold=12.0)
    assert absolute.well(np.array([0]), frame).tolist() == [[False, True]]


def test_select_gives_each_subject_its_own_doses_and_keeps_the_settings():
    ev = EventTable(times=np.array([0.0, 1.0, 1.0, 2.0]), kind=np.array([0, EV_SET_PARAM,
                                                                         0, 1]),
                    index=np.array([3, 4, 3, 5]), values=np.ones((2, 4)),
                    labels=("a", "b", "c", "d"), sources=(0, 1, 1, 2))
    out = ev.select({1: 0, 2: 1}, np.array([[False, True], [True, False]]))
    assert out.values.tolist() == [[1, 1, 0, 1], [1, 1, 1, 0]]
    assert ev.values.sum() == 8  # unchanged
    with pytest.raises(ValueError, match="one row per subject"):
        ev.select({1: 0}, np.ones((3, 1), dtype=bool))


def test_each_patient_gets_the_schedule_their_own_ratings_call_for(run):
    sc, reg, r = run
    arm = sc.arms[0]
    plan = TaperPlan.of(arm)
    ro = r.readouts
    doses = ro[ro["assay"] == TAPER_ASSAY]
    assert set(doses["readout"]) == {TAPER_READOUT} and set(doses["unit"]) == {"d"}
    subjects = np.arange(arm.n)
    given = np.zeros((arm.n, plan.n), dtype=bool)
    k = np.searchsorted(plan.times, doses["time_h"].to_numpy())
    given[doses["subject"].to_numpy(), k] = True
    # consistent: the schedule the final ratings call for is the one given
    again, interval = plan.schedule(plan.well(subjects, ro[ro["assay"] == "madrs"]))
    assert np.array_equal(again, given)
    assert np.allclose(interval[given] * 7.0, doses["value"].to_numpy())
    # the taper did something: patients differ in their schedules
    assert len({tuple(g) for g in given}) >= 2
    # the ratings are those of one pass with every patient's final schedule fixed
    plans = _plans(arm, 0, "human")
    cohort = sample_cohort(reg, "human", arm.name, arm.n, sc.seed, subjects=subjects)
    events = compile_arm(plan.arm(arm), "human", cohort, reg).select(plan.entries(), given)
    grid = np.array(sorted({float(t) for p in plans
                            for t in p.assay.sample_times(p.at, p.options)}))
    names = tuple(sorted({o for p in plans for o in p.assay.outputs}))
    frames, _, _ = _measure_chunk("human", arm, plans, sc.seed, reg, 1e-6, 1e-9,
                                  "mpfc", None, arm.name, grid, names, None, subjects,
                                  subjects, cohort, events)
    key = ["subject", "readout", "time_h"]
    mine = ro[ro["assay"] == "madrs"].set_index(key)["value"].sort_index()
    fixed = frames[0].set_index(key)["value"].sort_index()
    assert mine.index.equals(fixed.index)
    assert np.array_equal(mine.to_numpy(), fixed.to_numpy())


def test_a_fixed_protocol_with_the_same_doses_rates_the_patient_alike(run):
    """A patient's final schedule written out as plain protocol doses (no zero doses at
    the other grid times) gives the same ratings: the taper's bookkeeping adds nothing."""
    _sc, reg, r = run
    ro = r.readouts
    doses = ro[ro["assay"] == TAPER_ASSAY]
    text = SCENARIO.split("    taper:")[0]
    same = 0
    total = 0
    for s in (0, 5):
        times = doses.loc[doses["subject"] == s, "time_h"].to_numpy()
        lines = "".join(f"      - {{at: {t:g}h, drug: ketamine, dose: 0.5 mg/kg, route: "
                        f"iv, over: 40min}}\n" for t in times)
        fixed = text.replace("    assays:", lines + "    assays:")
        out = run_sim(load_scenario_text(fixed), registry=reg).readouts
        a = out[(out["subject"] == s) & (out["readout"] == "madrs_total")]
        b = ro[(ro["subject"] == s) & (ro["readout"] == "madrs_total")]
        assert a["time_h"].tolist() == b["time_h"].tolist()
        same += int((a["value"].to_numpy() == b["value"].to_numpy()).sum())
        total += len(a)
    # the solver's steps differ (no zero doses), by about its tolerance, so a rating
    # at the edge of a rounding step could differ; none did at this seed
    assert same == total


def test_taper_share_reads_the_interval_in_force(run):
    _, _, r = run
    ro = r.readouts
    doses = ro[ro["assay"] == TAPER_ASSAY]
    last = doses[doses["time_h"] <= 50 * 24].sort_values("time_h").groupby(
        "subject")["value"].last()
    want = float(np.mean(last >= 14))
    assert evaluate("taper_share('ketamine', '50d', '14d')", ro) == pytest.approx(want)
    b = ro[(ro["readout"] == "madrs_total") & (ro["time_h"] == -24)].set_index(
        "subject")["value"]
    v = ro[(ro["readout"] == "madrs_total") & (ro["time_h"] == 13.5 * 24)].set_index(
        "subject")["value"]
    resp = b.index[(v <= 0.5 * b).to_numpy()]
    if len(resp):
        want = float(np.mean(last.loc[resp] >= 14))
        got = evaluate("taper_share('ketamine', '50d', '14d', 'madrs_total', '-1d', "
                       "'13.5d')", ro)
        assert got == pytest.approx(want)
    assert evaluate("taper_share('ketamine', '50d', '7d')", ro) == 1.0


@pytest.mark.parametrize("edit, where", [
    (("intervals: [7d, 14d, 21d]", "intervals: [7d, 10d]"),
     r"arms\[0\]\.taper\.intervals\[1\].*whole multiple"),
    (("intervals: [7d, 14d, 21d]", "intervals: [14d, 7d]"),
     r"arms\[0\]\.taper\.intervals\[1\].*increasing"),
    (("until: 60d", "until: 10d"), r"arms\[0\]\.taper\.until"),
    (("relative_to: -1d", "relative_to: -2d"), r"arms\[0\]\.taper\.relative_to"),
    (("well_at_or_below: -0.5", "well_at_or_below: -2"),
     r"arms\[0\]\.taper\.well_at_or_below"),
    (("readout: madrs_total", "readout: hdrs17_total"), r"arms\[0\]\.taper\.readout"),
    (("dose: {at: 17.5d", "dose: {at: 10.5d"), r"arms\[0\]\.taper\.dose\.at"),
    (("route: iv, over: 40min}\n      intervals", ("route: oral, over: 40min}\n"
      "      intervals")), r"arms\[0\]\.taper\.dose\.over"),
    (("relative_to: -1d", "relative_to: -1d\n      review: 0d"),
     r"arms\[0\]\.taper\.review"),
], ids=["not-a-multiple", "decreasing", "until-before-dose", "baseline-not-a-visit",
        "threshold-out-of-range", "readout-not-rated", "dose-clashes", "infused-orally",
        "review-not-positive"])
def test_bad_tapers_are_one_error_naming_the_field(edit, where):
    text = SCENARIO.replace(*edit)
    assert text != SCENARIO
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


def test_a_taper_needs_human_patients_and_no_intercurrent_events():
    reg = load_registry()
    rat = load_scenario_text(SCENARIO)
    rat = rat.model_copy(update={"species": "rat"})
    with pytest.raises(ProtocolError, match=r"arms\[0\]\.taper.*'human'"):
        run_sim(rat, registry=reg)
    placebo = ("  - name: placebo\n    n: 16\n    protocol:\n      - {at: -60d, stress: "
               "major_depression, duration: 150d}\n    assays:\n      - {assay: madrs, "
               f"at: {VISITS}}}\n")
    design = ("design:\n  control: placebo\n  baseline: -1d\n  primary: 13.5d\n"
              "  intercurrent:\n    - {name: stop, readout: madrs_total, at_or_above: 50,"
              " withhold: [ketamine]}\n")
    both = load_scenario_text(SCENARIO + placebo + design)
    with pytest.raises(ProtocolError, match=r"arms\[0\]\.taper.*intercurrent"):
        run_sim(both, registry=reg)


def test_a_zero_dose_after_a_washout_integrates():
    """A long first step after a zero dose in a quiescent stretch can take a stage out of
    the domain of a non-integer power; the solver now rejects and shortens that step
    (found with the taper's zero doses; before, 'auto' stopped these subjects with a
    non-finite state) and agrees with RODAS."""
    reg = load_registry()
    sc = load_scenario_text(SCENARIO)
    arm = sc.arms[0]
    plan = TaperPlan.of(arm)
    cohort = sample_cohort(reg, "human", arm.name, 16, 5, subjects=np.arange(16))
    events = compile_arm(plan.arm(arm), "human", cohort, reg).select(
        plan.entries(), np.zeros((16, plan.n), dtype=bool))
    grid = np.arange(0.0, 60 * 24.0, 24.0)
    auto = simulate_signaling(cohort, events, grid, ("formation_drive",), method="auto")
    rodas = simulate_signaling(cohort, events, grid, ("formation_drive",), method="rodas")
    assert np.all(np.isfinite(auto.values))
    assert np.allclose(auto.values, rodas.values, rtol=1e-3, atol=1e-6)


def test_the_report_draws_the_share_of_patients_on_each_interval(run, tmp_path):
    from ketasim.report.figures import assay_figure, taper_shares

    _, _, r = run
    shares = taper_shares(r.readouts, "ketamine")
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert shares.iloc[0].tolist() == [1.0, 0.0, 0.0]  # everyone starts on the first rung
    # the share on 14 days or more at the last dose time is what taper_share reads
    t = shares.index[-1]
    want = evaluate(f"taper_share('ketamine', '{t:g}h', '14d')", r.readouts)
    assert shares.loc[t, [14.0, 21.0]].sum() == pytest.approx(want)
    png = assay_figure(r.readouts, pd.DataFrame(columns=["assay"]), TAPER_ASSAY,
                       tmp_path / "taper.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_sbml_and_petab_exports_refuse_a_taper_arm(tmp_path):
    """SBML's fixed events cannot hold doses that follow each patient's ratings: one clear
    error naming the arm's taper instead of an export without them."""
    from typer.testing import CliRunner

    from ketasim.cli import app
    from ketasim.sweep.calibrate import CalibrationError, _typical

    path = tmp_path / "taper.yaml"
    path.write_text(SCENARIO)
    res = CliRunner().invoke(app, ["export-sbml", str(path), "--out", str(tmp_path / "m.xml")])
    assert res.exit_code != 0 and "arms[0].taper" in res.output
    assert not (tmp_path / "m.xml").exists()
    sc = load_scenario_text(SCENARIO)
    with pytest.raises(CalibrationError, match=r"arms\[0\]\.taper"):
        _typical(sc, 0, load_registry(), None)


def test_a_patient_who_leaves_the_trial_has_no_doses_recorded_after_leaving():
    placebo = ("  - name: placebo\n    n: 16\n    protocol:\n      - {at: -60d, stress: "
               "major_depression, duration: 150d}\n    assays:\n      - {assay: madrs, "
               f"at: {VISITS}}}\n")
    design = ("design:\n  control: placebo\n  baseline: -1d\n  primary: 13.5d\n"
              "  dropout: {rate_per_week: 0.15, mechanism: mar}\n")
    r = simulate(load_scenario_text(SCENARIO + placebo + design), registry=load_registry())
    gone = r.disposition[(r.disposition["arm"] == "ketamine")
                         & ~r.disposition["completed"]]
    assert len(gone) >= 2
    doses = r.readouts[r.readouts["assay"] == TAPER_ASSAY]
    for s, t in zip(gone["subject"], gone["dropout_h"], strict=True):
        mine = doses.loc[doses["subject"] == s, "time_h"]
        assert (mine < t).all()
    kept = set(r.disposition.loc[r.disposition["completed"]
                                 & (r.disposition["arm"] == "ketamine"), "subject"])
    assert kept <= set(doses["subject"])


def test_any_split_of_the_arm_gives_the_same_doses_and_ratings(run):
    """Each patient's schedule rests on their own streams only: chunks of 3 and spans run
    elsewhere (a serial stand-in for a cluster) give the rows of one whole pass."""
    sc, reg, r = run

    def serial(fn, args_list, done=None):
        out = []
        for k, args in enumerate(args_list):
            out.append(fn(*args))
            if done is not None:
                done(k)
        return out

    key = ["arm", "subject", "assay", "readout", "time_h"]
    whole = r.readouts.set_index(key)["value"].sort_index()
    for kw in ({"chunk_subjects": 3}, {"chunk_subjects": 5, "map_tasks": serial}):
        other = run_sim(sc, registry=reg, **kw).readouts.set_index(key)["value"].sort_index()
        assert other.index.equals(whole.index)
        assert np.array_equal(other.to_numpy(), whole.to_numpy())


def test_the_clinic_example_runs():
    """docs/examples/esketamine_clinic_taper.yaml loads and runs (at a fifth of its size):
    weekly or every-other-week esketamine by each patient's MADRS, both rungs used."""
    from pathlib import Path

    path = (Path(__file__).resolve().parents[1] / "docs" / "examples"
            / "esketamine_clinic_taper.yaml")
    sc = load_scenario_text(path.read_text().replace("n: 100", "n: 20"))
    r = simulate(sc, registry=load_registry())
    doses = r.readouts[r.readouts["assay"] == TAPER_ASSAY]
    assert set(doses["arm"]) == {"placebo", "esketamine"}
    assert set(doses["value"]) == {7.0, 14.0}
    assert (doses["time_h"] <= 180 * 24).all() and (doses["time_h"] >= 28 * 24).all()


def test_with_a_review_period_only_doses_that_long_after_the_last_review_decide():
    plan = _plan(rungs=(1, 2), review_h=72.0)  # grid of 1 day, review every 3 days
    well = np.ones((1, 10), dtype=bool)
    given, interval = plan.schedule(well)
    # 0 (1), 1 (not due: 1 day), 2 (not due), 3 (due: up to 2), 5 (not due), 7 (due: at
    # the top), 9 (not due)
    assert np.flatnonzero(given[0]).tolist() == [0, 1, 2, 3, 5, 7, 9]
    assert interval[0, [0, 1, 2, 3, 5, 7, 9]].tolist() == [1, 1, 1, 2, 2, 2, 2]
    well[0, 7] = False  # out at the review of day 7: back to every day
    given, interval = plan.schedule(well)
    assert np.flatnonzero(given[0]).tolist() == [0, 1, 2, 3, 5, 7, 8, 9]
    assert interval[0, [7, 8, 9]].tolist() == [1, 1, 1]
    # no review period: every dose decides
    every = _plan(rungs=(1, 2)).schedule(np.ones((1, 10), dtype=bool))[0]
    assert np.flatnonzero(every[0]).tolist() == [0, 1, 3, 5, 7, 9]


def test_a_reviewed_taper_runs_and_follows_its_own_rule():
    reg = load_registry()
    sc = load_scenario_text(SCENARIO.replace("relative_to: -1d",
                                             "relative_to: -1d\n      review: 14d"))
    arm = sc.arms[0]
    plan = TaperPlan.of(arm)
    assert plan.review_h == 14 * 24.0
    ro = simulate(sc, registry=reg).readouts
    doses = ro[ro["assay"] == TAPER_ASSAY]
    given = np.zeros((arm.n, plan.n), dtype=bool)
    given[doses["subject"].to_numpy(), np.searchsorted(plan.times, doses["time_h"])] = True
    again, _ = plan.schedule(plan.well(np.arange(arm.n), ro[ro["assay"] == "madrs"]))
    assert np.array_equal(again, given)
    # a patient's interval changes only at a dose 14 days or more after the last change
    for _, d in doses.groupby("subject"):
        t, v = d["time_h"].to_numpy(), d["value"].to_numpy()
        changed = t[1:][np.diff(v) != 0]
        assert np.all(np.diff(np.concatenate([[t[0]], changed])) >= 14 * 24 - 1e-9)
