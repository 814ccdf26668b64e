"""``ketasim analyze``: a lab's files through the run's statistics (issue 16, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from typer.testing import CliRunner

from ketasim.analysis.stats import mixed_lm_test
from ketasim.analyze.design import DesignError, load_design
from ketasim.analyze.run import analyze, read_subjects
from ketasim.cli import app
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

SCENARIO = """
name: lab_like
species: mouse
seed: 3
arms:
  - name: saline
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: two_photon_spines, at: [-1d, 1d, 3d]}]
  - name: ketamine
    n: 4
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: two_photon_spines, at: [-1d, 1d, 3d]}]
"""


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def simulated():
    """A simulated run and its observed tracking table with lab-style subject ids."""
    res = simulate(load_scenario_text(SCENARIO), registry=load_registry())
    table = res.kept["two_photon_spines"]
    t = pd.concat([k["tracking"] for k in table.values()], ignore_index=True)
    t["subject"] = t["arm"] + "_m" + t["subject"].astype(str)
    return res, t


def _design(path, t, **extra):
    groups = {a: sorted(t.loc[t.arm == a, "subject"].unique().tolist())
              for a in ("saline", "ketamine")}
    path.write_text(yaml.safe_dump({"name": "lab", "species": "mouse", "groups": groups,
                                    **extra}))
    return path


def test_analyze_spines_reproduces_the_simulated_readouts(simulated, tmp_path):
    """The same tracking table scored by the simulated assay and by analyze gives the same
    numbers: one set of statistics for simulated and real data."""
    res, t = simulated
    t.to_csv(tmp_path / "tracking.csv", index=False)
    compare = [{"readout": "spine_density_per_10um", "at": "1d", "arms": ["ketamine", "saline"]},
               {"readout": "spine_density_per_10um", "at": "1d",
                "arms": ["ketamine", "saline"], "test": "mixed_lm"},
               {"readout": "formation_pct", "at": "post", "arms": ["ketamine", "saline"]}]
    design = _design(tmp_path / "design.yaml", t, compare=compare, sessions={"post": "1d"})
    out = analyze("spines", [tmp_path / "tracking.csv"], design, tmp_path / "out")
    for f in ("readouts.parquet", "subjects.csv", "summary.csv", "stats.csv", "manifest.json",
              "report.html"):
        assert (out / f).exists(), f
    a = pd.read_parquet(out / "readouts.parquet")
    subj = read_subjects(out)
    lab = a[a.assay == "two_photon_spines"].merge(subj, on=["arm", "subject"])
    lab["sim"] = lab["subject_id"].str.split("_m").str[1].astype(int)
    sim = res.readouts[np.isfinite(res.readouts["value"])]  # no turnover at the first session
    m = lab.merge(sim, left_on=["arm", "sim", "readout", "time_h"],
                  right_on=["arm", "subject", "readout", "time_h"], suffixes=("", "_sim"))
    assert len(m) == len(lab) == len(sim)
    np.testing.assert_array_equal(m["value"].to_numpy(), m["value_sim"].to_numpy())
    # nested rows: one per branch and session, with the branch column
    nested = a[a.assay == "two_photon_spines_nested"]
    assert nested["branch"].notna().all() and len(nested) > len(lab)
    stats = pd.read_csv(out / "stats.csv")
    assert list(stats["test"]) == ["welch_t", "mixed_lm", "welch_t"]
    # the mixed model read the branches and counts the mice they belong to
    assert stats.loc[1, "assay"] == "two_photon_spines_nested"
    assert stats.loc[0, "n"] == "4;4" and stats.loc[1, "n"] == "4;4"
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "analyze" and man["kind"] == "spines"
    hashed = {e["path"] for e in man["inputs"]}
    assert str(tmp_path / "tracking.csv") in hashed and str(design) in hashed
    assert "mixed_lm" in (out / "report.html").read_text()


def test_mixed_model_counts_animals_not_branches():
    """Branches of one animal share its offset: a model with a random intercept per
    animal is far less confident than a t test on branches as if they were animals, and
    matches statsmodels' own fit."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    rows = []
    for arm, shift in (("a", 0.0), ("b", 0.5)):
        for s in range(5):
            animal = rng.normal(0, 1.0)
            for _ in range(8):
                rows.append((arm, f"{arm}{s}", shift + animal + rng.normal(0, 0.2)))
    df = pd.DataFrame(rows, columns=["arm", "subject", "value"])
    r = mixed_lm_test(df.value.to_numpy(), df.arm.to_numpy(), df.subject.to_numpy(), ["a", "b"])
    fit = smf.mixedlm("value ~ C(arm)", df, groups=df["subject"]).fit(reml=True)
    from scipy import stats

    # statsmodels' own fit, its t read on the containment df (10 animals - 2 arms)
    assert r.statistic == pytest.approx(-float(fit.tvalues.iloc[1]), rel=1e-6)
    assert r.p == pytest.approx(2 * stats.t.sf(abs(r.statistic), 8), rel=1e-9)
    # balanced: the t test on the animals' means, exactly (to the optimiser's tolerance);
    # statsmodels' normal z is too liberal
    means = df.groupby(["arm", "subject"]).value.mean().reset_index()
    on_means = stats.ttest_ind(means[means.arm == "a"].value, means[means.arm == "b"].value)
    assert r.statistic == pytest.approx(on_means.statistic, rel=1e-4)
    assert r.p == pytest.approx(on_means.pvalue, rel=1e-4)
    assert r.p > float(fit.pvalues.iloc[1])
    naive = stats.ttest_ind(df[df.arm == "b"].value, df[df.arm == "a"].value).pvalue
    assert r.p > 5 * naive
    # one subject per arm: not estimable
    one = df[df.subject.isin(["a0", "b0"])]
    assert np.isnan(mixed_lm_test(one.value.to_numpy(), one.arm.to_numpy(),
                                  one.subject.to_numpy(), ["a", "b"]).p)


def test_mixed_model_of_one_row_per_animal_is_the_t_test():
    """With one row per animal the subject and residual variances cannot be told apart
    (statsmodels still reports convergence, with a standard error 3 times too small and
    a false-positive rate near 30%): the model is ordinary least squares, Student's t or
    the one-way ANOVA; and under the null such data give about 5% false positives."""
    from scipy import stats

    rng = np.random.default_rng(8)
    a, b, c = rng.normal(1, 1, 6), rng.normal(0, 1, 6), rng.normal(0, 1, 5)
    r = mixed_lm_test(np.r_[a, b], np.repeat(["A", "B"], 6), np.r_[0:6, 0:6], ["A", "B"])
    ref = stats.ttest_ind(a, b)
    assert (r.statistic, r.p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    r3 = mixed_lm_test(np.r_[a, b, c], np.repeat(["A", "B", "C"], [6, 6, 5]),
                       np.r_[0:6, 0:6, 0:5], ["A", "B", "C"])
    assert r3.p == pytest.approx(stats.f_oneway(a, b, c).pvalue, rel=1e-12)


def test_mixed_model_false_positives_are_nominal_with_few_animals():
    """3 animals per arm, 4 rows each, no arm effect: the containment-df t keeps the
    false-positive rate near 5% (the normal z gave 12%)."""
    rng = np.random.default_rng(21)
    hits, runs = 0, 120
    for _ in range(runs):
        values = (np.repeat(rng.normal(0, 1, 6), 4) + rng.normal(0, 0.5, 24))
        arms = np.repeat(["a", "b"], 12)
        subjects = np.repeat(np.arange(6), 4)
        hits += mixed_lm_test(values, arms, subjects, ["a", "b"]).p < 0.05
    assert hits / runs < 0.1


def test_analyze_behaviour_and_calcium_tables(tmp_path):
    tst = pd.DataFrame({"subject": ["m1", "m1", "m2", "m2", "m3", "m3", "m4", "m4"],
                        "start_s": [0, 100, 0, 200, 0, 50, 0, 300],
                        "end_s": [100, 360, 200, 360, 50, 360, 300, 360],
                        "state": ["struggle", "immobile"] * 4})
    tst.to_csv(tmp_path / "tst.csv", index=False)
    suc = pd.DataFrame({"subject": ["m1", "m2", "m3", "m4"], "sucrose_g": [8, 9, 5, 4],
                        "water_g": [2, 1, 5, 6]})
    suc.to_csv(tmp_path / "sucrose.csv", index=False)
    rng = np.random.default_rng(2)
    for name in ("c1", "c2", "c3", "c4"):
        x = rng.normal(0, 0.05, (6, 900))
        x[:, 100:110] += 1.0
        np.save(tmp_path / f"{name}.npy", x)
    d = {"name": "beh", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
         "sessions": {"test": "1d"},
         "files": [{"path": str(tmp_path / "tst.csv"), "session": "test"},
                   {"path": str(tmp_path / "sucrose.csv"), "time": "2d"},
                   *({"path": str(tmp_path / f"c{i}.npy"), "subject": f"m{i}",
                      "session": "test"} for i in range(1, 5))],
         "compare": [{"readout": "tst_immobility_s", "at": "test", "arms": ["ket", "sal"]}],
         "options": {"frame_rate_hz": 30.0}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(d))
    out = analyze("behavior", [tmp_path / "tst.csv", tmp_path / "sucrose.csv"],
                  tmp_path / "d.yaml", tmp_path / "beh")
    r = pd.read_parquet(out / "readouts.parquet").merge(read_subjects(out))
    imm = r[r.readout == "tst_immobility_s"].set_index("subject_id")["value"]
    assert imm.to_dict() == {"m1": 260.0, "m2": 160.0, "m3": 310.0, "m4": 60.0}
    pref = r[r.readout == "sucrose_preference"].set_index("subject_id")
    assert pref.loc["m1", "value"] == pytest.approx(0.8) and pref.loc["m1", "time_h"] == 48.0
    calcium = analyze("calcium", [tmp_path / f"c{i}.npy" for i in range(1, 5)],
                      tmp_path / "d.yaml", tmp_path / "ca")
    c = pd.read_parquet(calcium / "readouts.parquet")
    rate = c[(c.assay == "calcium_imaging") & (c.readout == "calcium_transient_rate_per_min")]
    assert len(rate) == 4 and (rate["value"] > 0).all()
    cells = c[c.assay == "calcium_imaging_nested"]
    assert len(cells) == 24 and cells["cell"].notna().all()


def _session_freezing(g, n_trials=20, tone=30.0, iti=30.0, p=(0.8, 0.1)):
    """A 1-Hz freezing series laid out as the simulated fear_extinction session: tone k
    from k x (tone + iti) + iti, freezing probability falling from p[0] to p[1]."""
    starts = np.arange(n_trials) * (tone + iti) + iti
    trials = np.stack([starts, starts + tone], axis=1)
    freeze = np.zeros(int(starts[-1] + tone + 1), bool)
    for k, (a, b) in enumerate(trials.astype(int)):
        freeze[a:b] = g.random(b - a) < p[0] + (p[1] - p[0]) * k / (n_trials - 1)
    return freeze, trials


def test_analyze_fear_extinction_freezing_per_frame_and_per_trial(tmp_path):
    """Per-frame freezing scored on the simulated session's tone layout gives the
    assay's own readout (the mean freezing of the last 5 tones); a per-trial table gives
    the mean of its last 5 trials; options change the layout and a bad one is named."""
    from ketasim.analysis.behavior import freezing_per_trial

    g = np.random.default_rng(4)
    frames, expected = [], {}
    for i, subject in enumerate(["m1", "m2", "m3", "m4"]):
        freeze, trials = _session_freezing(g, p=(0.8, 0.1 + 0.2 * i))
        frames.append(pd.DataFrame({"subject": subject, "time_s": np.arange(freeze.size),
                                    "freezing": freeze.astype(int)}))
        pct = freezing_per_trial(freeze, 1.0, trials).per_trial["freezing_pct"]
        expected[subject] = pct.to_numpy()[-5:].mean() / 100  # the assay's readout
    pd.concat(frames).to_csv(tmp_path / "frames.csv", index=False)
    scored = pd.DataFrame({"subject": np.repeat(["m1", "m2", "m3", "m4"], 8),
                           "trial": np.tile(np.arange(1, 9), 4),
                           "freezing_pct": np.tile([90, 80, 70, 60, 50, 40, 30, 20], 4)})
    scored.to_csv(tmp_path / "scored.csv", index=False)
    d = {"name": "ext", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
         "files": [{"path": str(tmp_path / "frames.csv"), "time": "1d"},
                   {"path": str(tmp_path / "scored.csv"), "time": "2d"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(d))
    out = analyze("behavior", [tmp_path / "frames.csv", tmp_path / "scored.csv"],
                  tmp_path / "d.yaml", tmp_path / "o")
    r = pd.read_parquet(out / "readouts.parquet").merge(read_subjects(out))
    assert set(r["assay"]) == {"fear_extinction"}
    day1 = r[r.time_h == 24.0].set_index("subject_id")["value"]
    assert day1.to_dict() == pytest.approx(expected)
    day2 = r[r.time_h == 48.0]["value"]
    assert day2.tolist() == pytest.approx([0.40] * 4)  # trials 4-8: 60 50 40 30 20
    d["options"] = {"last": 2}
    (tmp_path / "d2.yaml").write_text(yaml.safe_dump(d))
    out = analyze("behavior", [tmp_path / "scored.csv"], tmp_path / "d2.yaml", tmp_path / "o2")
    assert pd.read_parquet(out / "readouts.parquet")["value"].tolist() == pytest.approx(
        [0.25] * 4)
    d["options"] = {"last": "five"}
    (tmp_path / "d3.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(DesignError, match=r"options\.last"):
        analyze("behavior", [tmp_path / "scored.csv"], tmp_path / "d3.yaml", tmp_path / "o3")
    assert not (tmp_path / "o3").exists()


@pytest.mark.parametrize("rows, fragment", [
    ({"subject": ["a", "a"], "trial": [1, 1], "freezing_pct": [10, 20]}, "trial"),
    ({"subject": ["a"], "trial": [1], "freezing_pct": [120]}, "freezing_pct"),
    ({"subject": ["a"], "trial": [1.5], "freezing_pct": [20]}, "trial"),
    ({"subject": ["a"] * 3, "trial": [1, 2, 3], "freezing_pct": [20, 30, 40]},
     "fewer than the 5"),
    ({"subject": ["a"] * 4, "time_s": [0, 1, 3, 4], "freezing": [0, 1, 1, 0]},
     "regular clock"),
    ({"subject": ["a"] * 4, "time_s": [0, 1, 2, 3], "freezing": [0, 1, 1, 0]},
     "does not hold"),
    ({"subject": ["a"] * 2, "time_s": [0, 1], "freezing": [0, 2]}, "freezing"),
])
def test_bad_freezing_tables_are_one_clear_error(tmp_path, rows, fragment):
    from ketasim.analysis.behavior import BehaviorDataError, extinction_freezing

    path = tmp_path / "f.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(BehaviorDataError) as e:
        extinction_freezing(path)
    assert fragment in str(e.value) and path.name in str(e.value)


@pytest.mark.parametrize("design, fragment", [
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m1"]}}, "already in group 'a'"),
    ({"name": "x", "groups": {"a": []}}, "groups.a: expected at least one subject"),
    ({"name": "x", "groups": {"a": ["m1"]}, "sessions": {"pre": "3"}}, "sessions.pre"),
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m2"]},
      "compare": [{"readout": "r", "at": "1d", "arms": ["a", "c"]}]}, "compare[0].arms"),
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m2"]},
      "compare": [{"readout": "r", "at": "1d", "arms": ["a", "b"], "test": "z"}]}, "test"),
    ({"name": "x", "groups": {"a": ["m1"]}, "files": [{"path": "f", "subject": "m9",
                                                        "time": "1d"}]}, "files[0].subject"),
    ({"name": "x", "groups": {"a": ["m1"]}, "files": [{"path": "f", "subject": "m1"}]},
     "exactly one of session and time"),
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m2"]},
      "compare": [{"readout": "r", "at": "1d", "baseline": "yesterday", "arms": ["a", "b"]}]},
     "compare[0].baseline"),
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m2"]}, "sessions": {"post": "1d"},
      "compare": [{"readout": "r", "at": "1d", "baseline": "post", "arms": ["a", "b"]}]},
     "compare[0].baseline: the same time as at"),
    ({"name": "x", "groups": {"a": ["m1"]}, "colour": "red"}, "colour"),
    ({"groups": {"a": ["m1"]}}, "name"),
    ({"name": "x", "groups": {"a": ["m1"], "b": ["m2"], "c": ["m3"]},
      "compare": [{"readout": "r", "at": "1d", "arms": ["a", "b", "c"]}]},
     "compare[0]: test 'welch_t' compares exactly two groups, got 3"),
])
def test_bad_designs_are_one_clear_error(tmp_path, design, fragment):
    p = tmp_path / "design.yaml"
    p.write_text(yaml.safe_dump(design))
    with pytest.raises(DesignError, match=None) as e:
        load_design(p)
    assert fragment in str(e.value) and str(p) in str(e.value)


def test_cli_bad_input_exits_2_and_writes_nothing(simulated, tmp_path):
    _, t = simulated
    bad = t.copy()
    bad.loc[3, "position_um"] = np.nan
    bad.to_csv(tmp_path / "bad.csv", index=False)
    design = _design(tmp_path / "design.yaml", t)
    cli = CliRunner()
    cases = [
        ["analyze", "spines", str(tmp_path / "bad.csv"), "--design", str(design)],
        ["analyze", "fmri", str(tmp_path / "bad.csv"), "--design", str(design)],
        ["analyze", "spines", str(tmp_path / "missing.csv"), "--design", str(design)],
        ["analyze", "spines", str(tmp_path / "bad.csv"), "--design", str(tmp_path / "no.yaml")],
    ]
    for k, args in enumerate(cases):
        out = tmp_path / f"out{k}"
        r = cli.invoke(app, [*args, "--out", str(out)])
        assert r.exit_code == 2, (args, r.output)
        assert "error:" in r.output and "Traceback" not in r.output
        assert not out.exists()
    # a subject the design does not know
    t2 = t.copy()
    t2.loc[t2.subject == t2.subject.iloc[0], "subject"] = "stranger"
    t2.to_csv(tmp_path / "stranger.csv", index=False)
    r = cli.invoke(app, ["analyze", "spines", str(tmp_path / "stranger.csv"), "--design",
                         str(design), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'stranger' is in no group" in r.output
    # the table's own arm disagrees with the design
    t3 = t.copy()
    t3.loc[t3.subject == t3.subject.iloc[0], "arm"] = "ketamine" if t3.arm.iloc[0] == "saline" \
        else "saline"
    t3.to_csv(tmp_path / "arm.csv", index=False)
    r = cli.invoke(app, ["analyze", "spines", str(tmp_path / "arm.csv"), "--design",
                         str(design), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "in the table but in group" in r.output


def test_simulated_nwb_round_trips_to_the_runs_statistics(tmp_path):
    """ketasim run --nwb, then ketasim analyze nwb on those files with the arms as groups:
    the same readouts, summary and comparison as the run's Parquet files."""
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO.replace("n: 4", "n: 3") + "compare:\n  - {readout: "
                  "spine_density_per_10um, at: 1d, arms: [ketamine, saline]}\n")
    cli = CliRunner()
    r = cli.invoke(app, ["run", str(sc), "--out", str(tmp_path / "run"), "--nwb"])
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "run" / "nwb").rglob("*.nwb"))
    assert len(files) == 2 * 3 * 3  # arms x subjects x sessions
    groups = {a: [f"{a}-{i}" for i in range(3)] for a in ("saline", "ketamine")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "name": "nwb", "groups": groups,
        "compare": [{"readout": "spine_density_per_10um", "at": "1d",
                     "arms": ["ketamine", "saline"]}]}))
    r = cli.invoke(app, ["analyze", "nwb", str(tmp_path / "run" / "nwb"), "--design",
                         str(tmp_path / "d.yaml"), "--out", str(tmp_path / "an")])
    assert r.exit_code == 0, r.output
    run_summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    an_summary = pd.read_csv(tmp_path / "an" / "summary.csv")
    key = ["arm", "assay", "readout", "time_h"]
    pd.testing.assert_frame_equal(run_summary.sort_values(key).reset_index(drop=True),
                                  an_summary.sort_values(key).reset_index(drop=True))
    s1, s2 = (pd.read_csv(tmp_path / d / "stats.csv") for d in ("run", "an"))
    assert s1.loc[0, "p"] == s2.loc[0, "p"] and s1.loc[0, "means"] == s2.loc[0, "means"]


def test_analyze_calcium_streams_a_suite2p_folder(tmp_path):
    rng = np.random.default_rng(3)
    n, frames = 8, 1800
    f = 100 + rng.normal(0, 2, (n, frames)).astype(np.float32)
    f[:, 300:315] += 60
    plane = tmp_path / "m1" / "suite2p" / "plane0"
    plane.mkdir(parents=True)
    np.save(plane / "F.npy", f)
    np.save(plane / "Fneu.npy", np.full_like(f, 20.0))
    np.save(plane / "iscell.npy", np.c_[np.ones(n), np.full(n, 0.9)])
    np.save(plane / "ops.npy", {"fs": 30.0}, allow_pickle=True)
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "name": "s2p", "groups": {"a": ["m1"]},
        "files": [{"path": str(tmp_path / "m1"), "subject": "m1", "time": "1d"}]}))
    out = analyze("calcium", [tmp_path / "m1"], tmp_path / "d.yaml", tmp_path / "out")
    r = pd.read_parquet(out / "readouts.parquet")
    cells = r[r.assay == "calcium_imaging_nested"]
    assert len(cells) == n and (cells["value"] > 0).all()
    man = json.loads((out / "manifest.json").read_text())
    assert any(e["path"].endswith("F.npy") for e in man["inputs"])  # folder files hashed


DEPOSIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "phoumthipphavong2016"


@pytest.mark.skipif(not DEPOSIT.is_dir(), reason=f"the deposited dataset is not at {DEPOSIT}")
def test_analyze_spines_on_the_deposited_dataset_reproduces_its_checks(tmp_path):
    """ketasim analyze spines on the deposited Phoumthipphavong 2016 folder: every row
    of its README's checks table, per-mouse and per-segment readouts, and a mixed model
    that counts mice."""
    from test_segments import README_CHECKS

    mice = pd.read_csv(DEPOSIT / "mice.csv")
    groups = {g: [f"{g}-{m}" for m in mice.loc[mice.group == g, "mouse"]]
              for g in ("saline", "ketamine")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "name": "phoumthipphavong2016", "species": "mouse", "groups": groups,
        "compare": [{"readout": "spine_density_per_10um", "at": "1d",
                     "arms": ["ketamine", "saline"], "test": t, **base}
                    for base in ({}, {"baseline": "-3d"}) for t in ("welch_t", "mixed_lm")]}))
    out = analyze("spines", [DEPOSIT], tmp_path / "d.yaml", tmp_path / "out")
    checks = pd.read_csv(out / "checks.csv").set_index("check")["text"].to_dict()
    assert checks == README_CHECKS
    r = pd.read_parquet(out / "readouts.parquet")
    per_mouse = r[(r.assay == "two_photon_spines") & (r.readout == "spine_density_per_10um")
                  & (r.time_h == -72.0)]
    assert len(per_mouse) == 16
    nested = r[(r.assay == "two_photon_spines_nested") & (r.time_h == -72.0)
               & (r.readout == "spine_density_per_10um")]
    raw = pd.read_csv(DEPOSIT / "segments.csv")
    scored = raw[raw.included & (raw.day == -3) & raw.density_per_um.notna()]
    assert len(nested) == len(scored)  # some segments are first scored after day -3
    stats = pd.read_csv(out / "stats.csv")
    assert stats.loc[1, "assay"] == "two_photon_spines_nested"  # segments, per mouse
    assert stats.loc[0, "n"] == "8;8" and stats.loc[1, "n"] == "8;8"
    assert np.sign(stats.loc[0, "statistic"]) == np.sign(stats.loc[1, "statistic"])
    # the change from each mouse's (and segment's) own day -3 value: ketamine mice were
    # sparser before the injection, and lose less; the mixed model converges (Powell,
    # after BFGS stops short with the mouse variance near 0)
    assert stats["baseline_h"].isna().tolist() == [True, True, False, False]
    pm = r[(r.assay == "two_photon_spines") & (r.readout == "spine_density_per_10um")]
    wide = pm.pivot_table(index=["arm", "subject"], columns="time_h", values="value")
    change = (wide[24.0] - wide[-72.0]).dropna()
    want = sps.ttest_ind(change["ketamine"], change["saline"], equal_var=False)
    assert stats.loc[2, "statistic"] == pytest.approx(want.statistic, rel=1e-12)
    assert stats.loc[2, "p"] == pytest.approx(want.pvalue, rel=1e-12)
    assert stats.loc[2, "statistic"] > 0 and stats.loc[0, "statistic"] < 0
    assert np.isfinite(stats.loc[3, "p"]) and stats.loc[3, "statistic"] > 0
    seg = pd.read_csv(out / "segment_statistics.csv")
    d1 = seg[(seg.statistic == "density_change_pct") & (seg.segment_set == "included")
             & (seg.group == "saline") & (seg.day == 1.0)]
    assert round(float(d1["mean"].iloc[0]), 2) == -14.66
    # per-mouse turnover is pooled over the mouse's spines, as the simulator's: each
    # segment's rate weighted by its count at the interval's start (the last session
    # with a count before the interval's end: mouse 28 has no day-5 session)
    subjects = pd.read_csv(out / "subjects.csv")
    turn = pd.read_csv(DEPOSIT / "turnover.csv")
    turn = turn[turn.included & turn.formation_pct.notna()]
    counts = raw[raw.included & raw.spine_count.notna()]
    for group, mouse, day_end in (("ketamine", 28, 1.0), ("ketamine", 28, 10.0),
                                  ("saline", 180, 3.0)):
        num = den = 0.0
        for _, row in turn[(turn.group == group) & (turn.mouse == mouse)
                           & (turn.day_end == day_end)].iterrows():
            c = counts[(counts.group == group) & (counts.mouse == mouse)
                       & (counts.segment == row.segment) & (counts.day < day_end)]
            if len(c):
                n0 = float(c.sort_values("day").spine_count.iloc[-1])
                num, den = num + row.formation_pct * n0, den + n0
        index = subjects.set_index("subject_id").loc[f"{group}-{mouse}", "subject"]
        got = r[(r.assay == "two_photon_spines") & (r.readout == "formation_pct")
                & (r.time_h == 24.0 * day_end) & (r.subject == index)]["value"]
        assert den > 0 and len(got) == 1
        assert float(got.iloc[0]) == pytest.approx(num / den, rel=1e-12)


def test_design_subjects_without_data_are_named(tmp_path):
    """A design subject no file has a value for shrinks its group's n: the manifest and
    the console say which (it was dropped silently)."""
    import json

    tst = pd.DataFrame({"subject": ["m1", "m1", "m2", "m2", "m3", "m3"],
                        "start_s": [0, 100, 0, 200, 0, 50],
                        "end_s": [100, 360, 200, 360, 50, 360],
                        "state": ["struggle", "immobile"] * 3})
    tst.to_csv(tmp_path / "tst.csv", index=False)
    d = {"name": "beh", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
         "sessions": {"test": "1d"},
         "files": [{"path": str(tmp_path / "tst.csv"), "session": "test"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(d))
    out = analyze("behavior", [tmp_path / "tst.csv"], tmp_path / "d.yaml", tmp_path / "o")
    man = json.loads((out / "manifest.json").read_text())
    assert man["no_data"] == [("group 'sal': no data for 1 of its 2 subjects (m4); its n "
                               "counts the others")]


def test_a_design_field_error_gives_its_line(tmp_path):
    p = tmp_path / "design.yaml"
    p.write_text("name: x\ngroups:\n  a: [m1]\n  b: [m2]\ncompare:\n"
                 "  - {readout: r, at: 1d, arms: [a, b]}\n"
                 "  - {readout: r, at: 1d, arms: [a, b], test: wilcoxon}\n")
    with pytest.raises(DesignError) as e:
        load_design(p)
    assert str(e.value).startswith(f"{p}: compare.1.test: ")
    assert str(e.value).endswith("(line 7)")
    # a missing field: the line of the mapping that lacks it
    p.write_text("name: x\ngroups:\n  a: [m1]\n  b: [m2]\ncompare:\n  - {at: 1d, arms: [a, b]}\n")
    with pytest.raises(DesignError, match=r"compare\.0\.readout: Field required \(line 6\)"):
        load_design(p)
