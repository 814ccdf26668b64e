"""Time to relapse under maintenance (issue 14 items 5 and 8): the relapse rule, the
Kaplan-Meier and Cox tables, the run-folder files and the report figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.analysis.trial import survival
from ketasim.cli import app
from ketasim.experiment.trial import analyse_trial, relapse_times
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text

DOSES = [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56]
VISITS = "[-1d, 27d, 30d, 33d, 37d, 40d, 44d, 47d, 51d, 54d, 58d]"


def _arm(name, drug):
    doses = "".join(
        f"      - {{at: {d}d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}}\n"
        for d in DOSES) if drug else "      - {at: 0d, drug: saline, route: iv}\n"
    return (f"  - name: {name}\n    n: 20\n    protocol:\n"
            "      - {at: -60d, stress: major_depression, duration: 150d}\n" + doses
            + f"    assays: [{{assay: madrs, at: {VISITS}}}]\n")


SCENARIO = ("name: maint\nspecies: human\nseed: 6\narms:\n" + _arm("placebo", False)
            + _arm("ketamine", True)
            + "design:\n  control: placebo\n  baseline: -1d\n  primary: 27d\n"
              "  relapse: {threshold: 22, consecutive: 2, start: 27d}\n")


def test_relapse_rule_on_a_hand_made_table():
    sc = load_scenario_text(SCENARIO)
    d = sc.design
    rows = []
    # subject 0: 25, 25 at 27d, 30d -> relapse at 27d (duration 0); subject 1: 30 once,
    # then 10s -> censored at the last visit; subject 2: 23, 23 at 37d, 40d -> 10 days
    scores = {0: [25, 25] + [25] * 8, 1: [30] + [10] * 9, 2: [10, 10, 10, 23, 23] + [10] * 5}
    times = [27, 30, 33, 37, 40, 44, 47, 51, 54, 58]
    for s, ys in scores.items():
        for t, y in zip(times, ys, strict=True):
            rows.append(("placebo", s, "madrs", "madrs_total", 24.0 * t, float(y), "points"))
    r = pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h", "value",
                                    "unit"])
    arm = sc.arms[0].model_copy(update={"n": 3})
    out = relapse_times(r, d, [arm]).set_index("subject")
    assert list(out["relapsed"]) == [1, 0, 1]
    np.testing.assert_allclose(out["duration_h"], [0.0, 31 * 24.0, 10 * 24.0])


def test_maintenance_relapse_tables_and_files(tmp_path):
    sc = load_scenario_text(SCENARIO)
    res = simulate(sc, registry=load_registry())
    t = analyse_trial(sc, res.readouts, res.disposition)
    assert t.relapse is not None and len(t.relapse) == 40
    direct = survival(t.relapse, "duration_h", "relapsed", "arm", "placebo")
    pd.testing.assert_frame_equal(t.relapse_cox, direct.cox)
    assert set(t.relapse_summary["arm"]) == {"placebo", "ketamine"}
    (tmp_path / "m.yaml").write_text(SCENARIO)
    out = tmp_path / "o"
    run = CliRunner().invoke(app, ["run", str(tmp_path / "m.yaml"), "--out", str(out)])
    assert run.exit_code == 0, run.output
    for f in ("relapse.csv", "relapse_km.csv", "relapse_summary.csv", "relapse_cox.csv",
              "fig_trial_relapse.png"):
        assert (out / f).exists(), f
    assert "Time to relapse" in (out / "report.html").read_text()


def test_relapse_start_must_be_a_visit():
    with pytest.raises(ScenarioError, match=r"design\.relapse\.start"):
        load_scenario_text(SCENARIO.replace("start: 27d", "start: 29d"))


# ------------------------------------------------------------------ randomised withdrawal

STABLE_VISITS = "[-1d, 20d, 23d, 27d, 30d, 33d, 37d, 40d, 44d, 47d, 51d, 54d, 58d]"
WITHDRAWAL = (SCENARIO.replace(VISITS, STABLE_VISITS)
              .replace("relapse: {threshold: 22, consecutive: 2, start: 27d}",
                       "relapse: {threshold: 22, consecutive: 2, start: 30d,\n"
                       "            stable: {threshold: 12, at: [20d, 23d, 27d], at_least: 2}}"))


def _hand_table(scores, times):
    rows = [("placebo", s, "madrs", "madrs_total", 24.0 * t, float(y), "points")
            for s, ys in scores.items() for t, y in zip(times, ys, strict=True)]
    return pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                       "value", "unit"])


def test_withdrawal_follows_only_the_stable_remitters():
    sc = load_scenario_text(WITHDRAWAL)
    times = [20, 23, 27, 30, 33, 37, 40, 44, 47, 51, 54, 58]
    # subject 0: remitted at 2 of 3 judged visits, relapses at 33d (3 days after start);
    # subject 1: remitted at 1 of 3 (not randomised); subject 2: a missed judged visit
    # and one above 12 (1 of 3: not randomised); subject 3: remitted at all, censored
    scores = {0: [10, 14, 11, 15, 25, 25] + [10] * 6,
              1: [10, 20, 20] + [10] * 9,
              2: [np.nan, 13, 10] + [10] * 9,
              3: [5, 5, 5] + [30, 10] * 4 + [10],
              4: [5, 5, 5] + [np.nan] * 9}  # stable, but left before the start
    arms = [sc.arms[0].model_copy(update={"n": 5})]
    table = _hand_table(scores, times)
    rel = relapse_times(table, sc.design, arms)
    out = rel.set_index("subject")
    assert list(out.index) == [0, 3]
    assert list(out["relapsed"]) == [1, 0]
    np.testing.assert_allclose(out["duration_h"], [3 * 24.0, 28 * 24.0])
    # the CONSORT stages: 2 followed, 1 stable who left, 2 not stable
    from ketasim.experiment.trial import _withdrawal

    note, stages = _withdrawal(table, sc.design, arms, rel)
    assert list(stages["n"]) == [2, 1, 2] and "placebo 2 of 5" in note
    assert stages["reason"].iloc[1] == "no visit from the relapse start on"


def _withdrawal_readouts(seed=3, n=40):
    """Two arms of made-up MADRS scores at the WITHDRAWAL visits: most patients remitted
    at the judged visits, placebo patients relapsing more often after the start."""
    rng = np.random.default_rng(seed)
    times = [20, 23, 27, 30, 33, 37, 40, 44, 47, 51, 54, 58]
    rows = []
    for arm, p_relapse in (("placebo", 0.5), ("ketamine", 0.2)):
        for subj in range(n):
            y = list(rng.integers(4, 13, 3) + (rng.random(3) < 0.2) * 10)  # judged
            follow = rng.integers(5, 20, 9).astype(float)
            if rng.random() < p_relapse:
                k = rng.integers(0, 8)
                follow[k:k + 2] = rng.integers(22, 35, 2)[: 9 - k]
            if rng.random() < 0.1:
                follow[rng.integers(1, 9):] = np.nan  # left the trial
            rows += [(arm, subj, "madrs", "madrs_total", 24.0 * t, float(v), "points")
                     for t, v in zip(times, y + list(follow), strict=True)]
    return pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                       "value", "unit"])


def test_relapse_statistics_match_the_trial_analysis():
    from ketasim.validation.statistic import StatisticError, evaluate

    sc = load_scenario_text(WITHDRAWAL)
    readouts = _withdrawal_readouts()
    arms = [a.model_copy(update={"n": 40}) for a in sc.arms]
    rel = relapse_times(readouts, sc.design, arms)
    res = survival(rel, "duration_h", "relapsed", "arm", "placebo")
    args = ("'madrs_total', '30d', 22, consecutive=2, stable_max=12, stable_from='20d', "
            "stable_to='27d', at_least=2")
    hr = evaluate(f"relapse_hr('placebo', 'ketamine', {args})", readouts)
    expected = res.cox.set_index("term").loc["ketamine", "hazard_ratio"]
    assert np.isfinite(expected) and expected < 1  # events in both arms
    assert hr == pytest.approx(expected)
    share = evaluate(f"relapse_share('placebo', {args})", readouts)
    assert share == pytest.approx(rel.loc[rel["arm"] == "placebo", "relapsed"].mean())
    assert 0 < share < 1
    # not everyone is followed: the stable rule removed some
    assert 0 < len(rel) < 80
    # the stable share is those followed over the arm's patients
    stable = evaluate("stable_share('placebo', 'madrs_total', 12, '20d', '27d', at_least=2)",
                      readouts)
    n_arm = readouts.loc[readouts["arm"] == "placebo", "subject"].nunique()
    assert stable == pytest.approx((rel["arm"] == "placebo").sum() / n_arm)
    assert 0 < stable < 1
    assert evaluate("stable_share('placebo', 'madrs_total', 100, '20d', '27d')",
                    readouts) == 1.0
    # a window without visits is one clear error, not "everyone is stable"
    with pytest.raises(StatisticError, match="no visit"):
        evaluate("relapse_share('placebo', 'madrs_total', '30d', 22, stable_max=12, "
                 "stable_from='1d', stable_to='2d')", readouts)


def test_withdrawal_notes_and_consort_count_the_followed():
    sc = load_scenario_text(WITHDRAWAL)
    res = simulate(sc, registry=load_registry())
    t = analyse_trial(sc, res.readouts, res.disposition)
    # fewer patients are followed than were randomised into the arms (40), and the
    # report's note says how many per arm
    assert 0 < len(t.relapse) < 40
    note = [n for n in t.notes if n.startswith("randomised withdrawal")]
    assert len(note) == 1 and "at 2 of 20d, 23d, 27d" in note[0]
    flow = t.consort.set_index(["stage", "arm"])["n"]
    for arm in ("placebo", "ketamine"):
        followed = int((t.relapse["arm"] == arm).sum())
        assert f"{arm} {followed} of 20" in note[0]
        # the CONSORT flow gains the withdrawal's stages
        assert flow[("withdrawal followed", arm)] == followed
        assert flow[("withdrawal not stable", arm)] == 20 - followed


@pytest.mark.parametrize(("edit", "where"), [
    ("at: [20d, 23d, 27d], at_least: 2", None),
    ("at: [20d, 23d, 27d], at_least: 4", "at_least"),
    ("at: [20d, 23d, 30d], at_least: 2", "stable.at.2"),
    ("at: [20d, 21d, 27d], at_least: 2", "stable.at.1"),
    ("at: [20d, 20d, 27d], at_least: 2", "stable.at"),
])
def test_bad_stable_rule_is_one_error_naming_the_field(edit, where):
    text = WITHDRAWAL.replace("at: [20d, 23d, 27d], at_least: 2", edit)
    if where is None:
        load_scenario_text(text)
        return
    with pytest.raises(ScenarioError) as e:
        load_scenario_text(text)
    assert "relapse" in str(e.value) and where.split(".")[-1] in str(e.value)


def test_the_withdrawal_example_runs(tmp_path):
    """docs/examples/esketamine_withdrawal_trial.yaml loads and runs (at a tenth of its
    size): repeated doses, the oral antidepressant, and a relapse table of the stable
    remitters only."""
    from pathlib import Path

    path = (Path(__file__).resolve().parents[1] / "docs" / "examples"
            / "esketamine_withdrawal_trial.yaml")
    sc = load_scenario_text(path.read_text().replace("n: 200", "n: 20"))
    assert sum(getattr(e, "drug", None) == "escitalopram" for e in sc.arms[0].protocol) == 196
    res = simulate(sc, registry=load_registry())
    t = analyse_trial(sc, res.readouts, res.disposition)
    assert t.relapse is not None and len(t.relapse) < 40
    assert any(n.startswith("randomised withdrawal") for n in t.notes)


def _relapse_rows_loop(y, times, threshold, consecutive, start):
    """The rule written visit by visit (the reference for the array version): runs of
    observed assessments, a missed visit skipped."""
    v = y.to_numpy(float)
    out = []
    for row, i in enumerate(y.index):
        event_t, last, run_start, run_len = None, None, None, 0
        for j, t in enumerate(times):
            if not np.isfinite(v[row, j]):
                continue
            last = t
            if v[row, j] < threshold:
                run_len = 0
                continue
            run_start = t if run_len == 0 else run_start
            run_len += 1
            if run_len == consecutive:
                event_t = run_start
                break
        end = event_t if event_t is not None else (last if last is not None else start)
        out.append((int(i), float(end - start), int(event_t is not None)))
    return out


@pytest.mark.parametrize("consecutive", [1, 2, 3, 12])
def test_relapse_rows_match_the_rule_visit_by_visit(consecutive):
    from ketasim.analysis.trial import relapse_rows

    rng = np.random.default_rng(consecutive)
    times = [24.0 * (30 + 7 * k) for k in range(10)]
    v = rng.integers(5, 35, size=(300, 10)).astype(float)
    v[rng.random(v.shape) < 0.05] = np.nan  # intermittent missed visits: skipped
    y = pd.DataFrame(v, index=np.arange(300) * 3, columns=times)
    got = relapse_rows(y, times, 22.0, consecutive, 30 * 24.0)
    assert got == _relapse_rows_loop(y, times, 22.0, consecutive, 30 * 24.0)
    events = sum(r for _, _, r in got)
    if consecutive <= len(times):
        assert 0 < events < 300  # both outcomes occur (not a vacuous check)
    else:
        assert events == 0  # a run longer than the follow-up never completes
