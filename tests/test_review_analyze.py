"""Review of ``ketasim analyze``: the design file's semantics (groups, subjects, times,
baselines, tests, Holm), that a lab table exported from a simulated run gives the run's
own summary and statistics, invariance to row order, subject relabelling and file
splitting, and bad input giving one clear error (exit 2) with nothing written.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` assert the correct behaviour of a
defect found in this review."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from typer.testing import CliRunner

from ketasim.analysis.stats import compare, summarize
from ketasim.analyze.design import DesignError, load_design
from ketasim.analyze.run import analyze, read_subjects
from ketasim.cli import app
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

pytestmark = pytest.mark.usefixtures("private_home")

SPINE_SCENARIO = """
name: review_spines
species: mouse
seed: 3
arms:
  - name: cort_saline
    n: 3
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: two_photon_spines, at: [-1d, 1d], options: {branches: 2}}]
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: two_photon_spines, at: [-1d, 1d], options: {branches: 2}}]
compare:
  - {readout: spine_density_per_10um, at: 1d, arms: [ketamine, cort_saline]}
  - {readout: formation_pct, at: 1d, arms: [ketamine, cort_saline], test: mann_whitney}
  - {readout: spine_density_per_10um, at: 1d, baseline: -1d, arms: [ketamine, cort_saline],
     test: student_t}
"""

BEHAVIOUR_SCENARIO = """
name: review_behaviour
species: mouse
seed: 5
arms:
  - name: saline
    n: 3
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: open_field, at: [10min, 1d]}, {assay: tail_suspension, at: [1d]}]
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: open_field, at: [10min, 1d]}, {assay: tail_suspension, at: [1d]}]
compare:
  - {readout: distance_cm, at: 10min, arms: [ketamine, saline]}
  - {readout: tst_immobility_s, at: 1d, arms: [ketamine, saline]}
  - {readout: distance_cm, at: 1d, baseline: 10min, arms: [ketamine, saline],
     test: mann_whitney}
  - {readout: tst_struggle_bouts, at: 1d, arms: [ketamine, saline], test: student_t}
"""

KEY = ["arm", "assay", "readout", "time_h"]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip().startswith("error:")]


def _write_design(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({"name": "review", **fields}))
    return path


@pytest.fixture(scope="module")
def spine_run(tmp_path_factory):
    """``ketasim run`` of a tiny two-photon scenario: its folder (readouts, summary, stats
    and the spines_tracking.parquet a lab's table is written like)."""
    d = tmp_path_factory.mktemp("spine_run")
    (d / "s.yaml").write_text(SPINE_SCENARIO)
    r = _cli("run", d / "s.yaml", "--out", d / "run")
    assert r.exit_code == 0, r.output
    return d / "run"


@pytest.fixture(scope="module")
def lab_table(spine_run):
    """The run's tracking table with lab-style ids unique over the arms (c0.., k0..)."""
    t = pd.read_parquet(spine_run / "spines_tracking.parquet")
    return t.assign(subject=t["arm"].str[0] + t["subject"].astype(str))


def _lab_groups(order=(0, 1, 2)):
    return {"cort_saline": [f"c{i}" for i in order], "ketamine": [f"k{i}" for i in order]}


SPINE_COMPARE = [
    {"readout": "spine_density_per_10um", "at": "1d", "arms": ["ketamine", "cort_saline"]},
    {"readout": "spine_density_per_10um", "at": "1d", "arms": ["ketamine", "cort_saline"],
     "test": "mixed_lm"},
    {"readout": "formation_pct", "at": "1d", "arms": ["ketamine", "cort_saline"],
     "test": "mann_whitney"},
    {"readout": "spine_density_per_10um", "at": "1d", "baseline": "-1d",
     "arms": ["ketamine", "cort_saline"], "test": "mixed_lm"},
]


def _stats(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "stats.csv")


def _by_lab_id(out: Path) -> pd.DataFrame:
    """readouts.parquet keyed by the lab's ids instead of the design's indices."""
    r = pd.read_parquet(out / "readouts.parquet").merge(read_subjects(out),
                                                        on=["arm", "subject"])
    cols = ["arm", "subject_id", "assay", "readout", "time_h", "value", "unit"]
    cols += [c for c in ("branch", "cell") if c in r.columns]
    keys = [c for c in cols if c not in ("value", "unit")]
    return r[cols].sort_values(keys).reset_index(drop=True)


# ------------------------------------------------------------ a run and analyze agree


def test_analyze_of_the_runs_tracking_table_gives_the_runs_summary_and_stats(spine_run,
                                                                             tmp_path):
    """The tracking table ``ketasim run`` writes, analysed with a design naming its
    subjects ``<arm>-<subject>`` (the arm's '_' written '-'), gives the run's per-animal
    readouts, summary rows and stats.csv (tests, n, means, statistic, p, Holm) exactly."""
    scenario = yaml.safe_load(SPINE_SCENARIO)
    groups = {"cort_saline": [f"cort-saline-{i}" for i in range(3)],
              "ketamine": [f"ketamine-{i}" for i in range(3)]}
    design = _write_design(tmp_path / "d.yaml", groups=groups, compare=scenario["compare"])
    out = tmp_path / "an"
    r = _cli("analyze", "spines", spine_run / "spines_tracking.parquet", "--design", design,
             "--out", out)
    assert r.exit_code == 0, r.output
    run_stats, an_stats = _stats(spine_run), _stats(out)
    assert len(an_stats) == 3
    pd.testing.assert_frame_equal(an_stats, run_stats)
    run_sum = pd.read_csv(spine_run / "summary.csv")
    an_sum = pd.read_csv(out / "summary.csv")
    # the run also lists the first session's turnover with n 0 (no interval before it)
    run_sum = run_sum[run_sum["n"] > 0].sort_values(KEY).reset_index(drop=True)
    an_sum = an_sum[an_sum["assay"] == "two_photon_spines"].sort_values(KEY)
    pd.testing.assert_frame_equal(an_sum.reset_index(drop=True), run_sum)
    # per-animal readouts: the run's, subject for subject
    got = _by_lab_id(out)
    got = got[got["assay"] == "two_photon_spines"].copy()
    got["subject"] = got["subject_id"].str.rsplit("-", n=1).str[1].astype(np.int64)
    want = pd.read_parquet(spine_run / "readouts.parquet")
    want = want[np.isfinite(want["value"])]
    m = got.merge(want, on=["arm", "subject", "assay", "readout", "time_h"],
                  suffixes=("", "_run"))
    assert len(m) == len(got) == len(want)
    np.testing.assert_array_equal(m["value"].to_numpy(), m["value_run"].to_numpy())
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "analyze" and man["groups"] == {"cort_saline": 3, "ketamine": 3}


@pytest.fixture(scope="module")
def behaviour_run():
    sc = load_scenario_text(BEHAVIOUR_SCENARIO)
    return sc, simulate(sc, registry=load_registry())


def _export_behaviour(res, folder: Path, ids=lambda arm, s: f"{arm[0]}{s}",
                      with_arm: bool = True):
    """The run's kept open-field tracks and TST ethograms as lab tables, one file per
    arm, assay and session; the design's ``files`` entries with each file's time."""
    folder.mkdir(parents=True, exist_ok=True)
    files, entries = [], []
    for arm in ("saline", "ketamine"):
        tracks = res.kept["open_field"][arm]["tracks"]
        for th, g in tracks.groupby("time_h"):
            f = folder / f"of_{arm}_{round(th * 60)}min.csv"
            table = pd.DataFrame({"arm": arm, "subject": [ids(arm, s) for s in g["subject"]],
                                  "time_s": g["t_s"], "x_cm": g["x_cm"], "y_cm": g["y_cm"]})
            table.drop(columns=[] if with_arm else ["arm"]).to_csv(f, index=False)
            files.append(f)
            entries.append({"path": str(f), "time": f"{round(th * 60)}min"})
        etho = res.kept["tail_suspension"][arm]["tst"]["ethogram"]
        for th, g in etho.groupby("time_h"):
            f = folder / f"tst_{arm}_{th:g}h.csv"
            table = g.assign(subject=[ids(arm, s) for s in g["subject"]])
            table[["arm", "subject", "start_s", "end_s", "state"]].drop(
                columns=[] if with_arm else ["arm"]).to_csv(f, index=False)
            files.append(f)
            entries.append({"path": str(f), "time": f"{th:g}h"})
    return files, entries


def test_analyze_of_the_runs_behaviour_tables_gives_the_runs_stats(behaviour_run, tmp_path):
    """Open-field tracks and TST ethograms of a simulated run, written as a lab's tables,
    give the run's distance_cm and TST readouts, summary rows and statistics (a baseline
    comparison and Holm included)."""
    sc, res = behaviour_run
    files, entries = _export_behaviour(res, tmp_path / "lab")
    groups = {a: [f"{a[0]}{i}" for i in range(3)] for a in ("saline", "ketamine")}
    design = _write_design(tmp_path / "d.yaml", groups=groups, files=entries, compare=[
        {"readout": "distance_cm", "at": "10min", "arms": ["ketamine", "saline"]},
        {"readout": "tst_immobility_s", "at": "24h", "arms": ["ketamine", "saline"]},
        {"readout": "distance_cm", "at": "1d", "baseline": "10min",
         "arms": ["ketamine", "saline"], "test": "mann_whitney"},
        {"readout": "tst_struggle_bouts", "at": "1440min", "arms": ["ketamine", "saline"],
         "test": "student_t"}])
    out = analyze("behavior", files, design, tmp_path / "an")
    want = compare(res.readouts, sc.compare)
    got = _stats(out)
    for col in ("comparison", "readout", "assay", "test", "groups", "n", "means"):
        assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), col
    for col in ("time_h", "statistic", "p", "baseline_h", "p_holm"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=1e-12, equal_nan=True, err_msg=col)
    run_sum = summarize(res.readouts)
    run_sum = run_sum[run_sum["readout"] != "tst_calcium_rise_s"]  # needs the calcium
    run_sum = run_sum.sort_values(KEY).reset_index(drop=True)
    an_sum = pd.read_csv(out / "summary.csv").sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(an_sum, run_sum, check_dtype=False, rtol=1e-12)


# ------------------------------------------------------------ the design's semantics


def _tst_table(immobile_s: dict[str, float], struggle_first: bool = True) -> pd.DataFrame:
    """One struggle bout then one immobile bout per subject, immobility as given."""
    rows = []
    for s, imm in immobile_s.items():
        rows += [(s, 0.0, 360.0 - imm, "struggle"), (s, 360.0 - imm, 360.0, "immobile")]
    return pd.DataFrame(rows, columns=["subject", "start_s", "end_s", "state"])


PRE = {"m1": 100.0, "m2": 130.0, "m4": 90.0, "m5": 95.0, "m6": 120.0}  # m3: no pre
POST = {"m1": 200.0, "m2": 260.0, "m3": 240.0, "m4": 110.0, "m5": 80.0, "m6": 150.0}
GROUPS = {"ket": ["m1", "m2", "m3"], "sal": ["m4", "m5", "m6"]}


@pytest.fixture
def tst_sessions(tmp_path):
    _tst_table(PRE).to_csv(tmp_path / "tst_pre.csv", index=False)
    _tst_table(POST).to_csv(tmp_path / "tst_post.csv", index=False)
    return [tmp_path / "tst_pre.csv", tmp_path / "tst_post.csv"]


def test_baseline_is_each_subjects_own_change_compared_between_groups(tmp_path,
                                                                      tst_sessions):
    """``baseline`` compares each subject's change from its own value (a subject without
    a baseline value is left out of n); the groups are then compared unpaired (Welch by
    default), as scipy does on the changes."""
    design = _write_design(
        tmp_path / "d.yaml", groups=GROUPS, sessions={"pre": "-1d", "post": "1d"},
        files=[{"pattern": "tst_{session}.csv"}],
        compare=[{"readout": "tst_immobility_s", "at": "post", "baseline": "pre",
                  "arms": ["ket", "sal"]},
                 {"readout": "tst_immobility_s", "at": "post", "arms": ["ket", "sal"]}])
    out = analyze("behavior", tst_sessions, design, tmp_path / "o")
    st = _stats(out)
    ket = [POST[s] - PRE[s] for s in ("m1", "m2")]
    sal = [POST[s] - PRE[s] for s in ("m4", "m5", "m6")]
    want = sps.ttest_ind(ket, sal, equal_var=False)
    assert st.loc[0, "n"] == "2;3" and st.loc[0, "baseline_h"] == -24.0
    assert st.loc[0, "statistic"] == pytest.approx(want.statistic, rel=1e-12)
    assert st.loc[0, "p"] == pytest.approx(want.pvalue, rel=1e-12)
    plain = sps.ttest_ind([POST[s] for s in GROUPS["ket"]], [POST[s] for s in GROUPS["sal"]],
                          equal_var=False)
    assert st.loc[1, "n"] == "3;3" and np.isnan(st.loc[1, "baseline_h"])
    assert st.loc[1, "p"] == pytest.approx(plain.pvalue, rel=1e-12)
    # Holm over the two comparisons
    lo, hi = sorted(st["p"])
    assert sorted(st["p_holm"]) == pytest.approx([min(1, 2 * lo), max(min(1, 2 * lo), hi)])


@pytest.mark.parametrize("test, ref", [
    ("welch_t", lambda a, b: sps.ttest_ind(a, b, equal_var=False)),
    ("student_t", lambda a, b: sps.ttest_ind(a, b, equal_var=True)),
    ("mann_whitney", lambda a, b: sps.mannwhitneyu(a, b, alternative="two-sided")),
    ("anova", lambda a, b: sps.f_oneway(a, b)),
    ("kruskal", lambda a, b: sps.kruskal(a, b)),
    # one row per animal: the mixed model is ordinary least squares, Student's t
    ("mixed_lm", lambda a, b: sps.ttest_ind(a, b, equal_var=True)),
])
def test_the_test_the_design_names_is_the_one_run(tmp_path, tst_sessions, test, ref):
    design = _write_design(
        tmp_path / "d.yaml", groups=GROUPS, sessions={"pre": "-1d", "post": "1d"},
        files=[{"pattern": "tst_{session}.csv"}],
        compare=[{"readout": "tst_immobility_s", "at": "post", "arms": ["ket", "sal"],
                  "test": test}])
    out = analyze("behavior", tst_sessions[1:], design, tmp_path / "o")
    st = _stats(out)
    want = ref([POST[s] for s in GROUPS["ket"]], [POST[s] for s in GROUPS["sal"]])
    assert st.loc[0, "test"] == test and st.loc[0, "n"] == "3;3"
    assert st.loc[0, "statistic"] == pytest.approx(float(want.statistic), rel=1e-9)
    assert st.loc[0, "p"] == pytest.approx(float(want.pvalue), rel=1e-9)


def test_times_in_any_unit_or_by_label_are_one_session(tmp_path, tst_sessions):
    """``at`` as a session label, in days, hours or minutes, and files' times in other
    units, name the same session: identical stats."""
    results = []
    for k, (at, pre, post) in enumerate([("post", "-1d", "1d"), ("1d", "-24h", "24h"),
                                         ("24h", "-1440min", "86400s"),
                                         ("1440min", "-1d", "1d")]):
        files = [{"path": str(tst_sessions[0]), "time": pre},
                 {"path": str(tst_sessions[1]), "time": post}]
        design = _write_design(tmp_path / f"d{k}.yaml", groups=GROUPS,
                               sessions={"post": "1d"}, files=files,
                               compare=[{"readout": "tst_immobility_s", "at": at,
                                         "baseline": "-1d", "arms": ["ket", "sal"]}])
        out = analyze("behavior", tst_sessions, design, tmp_path / f"o{k}")
        results.append(_stats(out))
        r = pd.read_parquet(out / "readouts.parquet")
        assert sorted(r["time_h"].unique()) == [-24.0, 24.0]
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0])


def test_holm_family_is_the_comparisons_these_data_answer(tmp_path, tst_sessions):
    """A comparison of another kind's readout is left out with a note (not a NaN row);
    the Holm adjustment covers the comparisons kept, which keep their design index."""
    from statsmodels.stats.multitest import multipletests

    design = _write_design(
        tmp_path / "d.yaml", groups=GROUPS, sessions={"post": "1d"},
        files=[{"path": str(tst_sessions[1]), "session": "post"}],
        compare=[{"readout": "tst_immobility_s", "at": "post", "arms": ["ket", "sal"]},
                 {"readout": "spine_density_per_10um", "at": "post", "arms": ["ket", "sal"]},
                 {"readout": "tst_immobile_bout_s", "at": "post", "arms": ["ket", "sal"],
                  "test": "mann_whitney"}])
    out = analyze("behavior", tst_sessions[1:], design, tmp_path / "o")
    st = _stats(out)
    assert st["comparison"].tolist() == [0, 2]
    np.testing.assert_allclose(st["p_holm"], multipletests(st["p"], method="holm")[1],
                               rtol=1e-12)
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["left_out"]) == 1 and "compare[1]" in man["left_out"][0]


def test_one_subject_is_one_index_across_files_and_assays(tmp_path):
    """A lab id is one subject whatever file or assay it comes from: its index is its
    place in the design, the same in every assay, and subjects.csv maps it back."""
    _tst_table({"b7": 100.0, "a1": 200.0, "10": 150.0, "2": 50.0}).to_csv(
        tmp_path / "tst.csv", index=False)
    pd.DataFrame({"subject": ["2", "10", "a1", "b7"], "sucrose_g": [5, 6, 7, 8],
                  "water_g": [5, 4, 3, 2]}).to_csv(tmp_path / "suc.csv", index=False)
    t = np.arange(0.0, 10.0)
    pd.concat([pd.DataFrame({"subject": s, "time_s": t, "x_cm": v * t, "y_cm": 0.0})
               for s, v in (("10", 1.0), ("a1", 2.0), ("2", 3.0), ("b7", 4.0))]).to_csv(
        tmp_path / "of.csv", index=False)
    # YAML numbers as ids are the table's ids written as text
    (tmp_path / "d.yaml").write_text(
        "name: ids\ngroups:\n  x: [b7, 10]\n  y: [2, a1]\n"
        "files:\n  - {pattern: '*.csv', time: 2d}\n")
    out = analyze("behavior", [tmp_path / f for f in ("tst.csv", "suc.csv", "of.csv")],
                  tmp_path / "d.yaml", tmp_path / "o")
    subj = read_subjects(out)
    assert subj.to_dict("list") == {"arm": ["x", "x", "y", "y"], "subject": [0, 1, 2, 3],
                                    "subject_id": ["b7", "10", "2", "a1"]}
    r = _by_lab_id(out)
    assert set(r["assay"]) == {"tail_suspension", "sucrose_preference", "open_field"}
    assert (r.groupby("subject_id")["assay"].nunique() == 3).all()
    v = r.set_index(["subject_id", "readout"])["value"]
    assert v[("b7", "tst_immobility_s")] == 100.0 and v[("2", "tst_immobility_s")] == 50.0
    assert v[("10", "sucrose_preference")] == pytest.approx(0.6)
    assert v[("b7", "distance_cm")] == pytest.approx(36.0)  # 4 cm/s over 9 s
    assert (r["time_h"] == 48.0).all()


# ------------------------------------------------------------ invariance


def test_row_order_of_a_tracking_table_changes_nothing(lab_table, tmp_path):
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups(), compare=SPINE_COMPARE)
    lab_table.to_csv(tmp_path / "a.csv", index=False)
    lab_table.sample(frac=1.0, random_state=7).to_csv(tmp_path / "b.csv", index=False)
    a = analyze("spines", [tmp_path / "a.csv"], design, tmp_path / "oa")
    b = analyze("spines", [tmp_path / "b.csv"], design, tmp_path / "ob")
    pd.testing.assert_frame_equal(pd.read_parquet(a / "readouts.parquet"),
                                  pd.read_parquet(b / "readouts.parquet"))
    pd.testing.assert_frame_equal(_stats(a), _stats(b))
    pd.testing.assert_frame_equal(pd.read_csv(a / "summary.csv"),
                                  pd.read_csv(b / "summary.csv"))


def test_relabelled_subjects_and_design_order_change_no_number(lab_table, tmp_path):
    """Renaming the animals (and listing them in another order) moves their indices but
    not one readout of any animal, nor a statistic."""
    ren = {"c0": "zeta", "c1": "alpha", "c2": "mu", "k0": "b", "k1": "9", "k2": "c"}
    a_design = _write_design(tmp_path / "a.yaml", groups=_lab_groups(),
                             compare=SPINE_COMPARE)
    b_design = _write_design(tmp_path / "b.yaml", compare=SPINE_COMPARE, groups={
        "ketamine": [ren[s] for s in ("k2", "k0", "k1")],
        "cort_saline": [ren[s] for s in ("c1", "c2", "c0")]})
    lab_table.to_csv(tmp_path / "a.csv", index=False)
    lab_table.assign(subject=lab_table["subject"].map(ren)).to_csv(tmp_path / "b.csv",
                                                                   index=False)
    a = analyze("spines", [tmp_path / "a.csv"], a_design, tmp_path / "oa")
    b = analyze("spines", [tmp_path / "b.csv"], b_design, tmp_path / "ob")
    ra = _by_lab_id(a).assign(subject_id=lambda x: x["subject_id"].map(ren))
    rb = _by_lab_id(b)
    keys = ["arm", "subject_id", "assay", "readout", "time_h", "branch"]
    pd.testing.assert_frame_equal(ra.sort_values(keys).reset_index(drop=True),
                                  rb.sort_values(keys).reset_index(drop=True))
    sa, sb = _stats(a), _stats(b)
    for col in ("test", "n", "means"):
        assert sa[col].tolist() == sb[col].tolist()
    np.testing.assert_allclose(sa[["statistic", "p", "p_holm"]].to_numpy(float),
                               sb[["statistic", "p", "p_holm"]].to_numpy(float), rtol=1e-9)


def test_one_file_per_animal_gives_the_whole_tables_numbers(lab_table, tmp_path):
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups(), compare=SPINE_COMPARE)
    lab_table.to_csv(tmp_path / "all.csv", index=False)
    files = []
    for s, g in lab_table.groupby("subject"):
        g.to_csv(tmp_path / f"{s}.csv", index=False)
        files.append(tmp_path / f"{s}.csv")
    whole = analyze("spines", [tmp_path / "all.csv"], design, tmp_path / "o1")
    split = analyze("spines", files[::-1], design, tmp_path / "o2")
    pd.testing.assert_frame_equal(_by_lab_id(whole), _by_lab_id(split))
    pd.testing.assert_frame_equal(_stats(whole), _stats(split))


def test_behaviour_rows_shuffled_and_split_per_animal_change_nothing(tmp_path):
    """TST bouts in any row order, and one file per animal (files by pattern), give
    the same readouts and stats as one table."""
    lab = tmp_path / "lab"
    lab.mkdir()
    table = _tst_table(POST)
    table.to_csv(lab / "all_tst.csv", index=False)
    groups_ = {"ket": ["m1", "m2", "m3"], "sal": ["m4", "m5", "m6"]}
    cmp_ = [{"readout": r, "at": "1d", "arms": ["ket", "sal"]}
            for r in ("tst_immobility_s", "tst_struggle_bouts")]
    d1 = _write_design(tmp_path / "d1.yaml", groups=groups_, compare=cmp_,
                       files=[{"path": str(lab / "all_tst.csv"), "time": "1d"}])
    split = tmp_path / "split"
    split.mkdir()
    for s, g in table.sample(frac=1.0, random_state=3).groupby("subject", sort=False):
        g.to_csv(split / f"{s}_tst.csv", index=False)
    d2 = _write_design(tmp_path / "d2.yaml", groups=groups_, compare=cmp_,
                       files=[{"pattern": "{subject}_tst.csv", "time": "24h"}])
    a = analyze("behavior", [lab / "all_tst.csv"], d1, tmp_path / "oa")
    b = analyze("behavior", sorted(split.iterdir(), reverse=True), d2, tmp_path / "ob")
    pd.testing.assert_frame_equal(pd.read_parquet(a / "readouts.parquet"),
                                  pd.read_parquet(b / "readouts.parquet"))
    pd.testing.assert_frame_equal(_stats(a), _stats(b))


# ------------------------------------------------------------ CSV dialects


def test_bom_semicolons_and_decimal_commas_read_as_plain_csv(lab_table, tmp_path):
    """A spreadsheet's CSV (BOM, ';' between cells, decimal commas; or tabs) gives the
    numbers of the plain file, for a tracking table and a TST bout table."""
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups(),
                           compare=SPINE_COMPARE[:1])
    lab_table.to_csv(tmp_path / "plain.csv", index=False)
    lab_table.to_csv(tmp_path / "eu.csv", index=False, sep=";", decimal=",",
                     encoding="utf-8-sig")
    a = analyze("spines", [tmp_path / "plain.csv"], design, tmp_path / "oa")
    b = analyze("spines", [tmp_path / "eu.csv"], design, tmp_path / "ob")
    pd.testing.assert_frame_equal(pd.read_parquet(a / "readouts.parquet"),
                                  pd.read_parquet(b / "readouts.parquet"))
    tst = _tst_table({"m1": 100.25, "m2": 130.5, "m4": 90.75, "m5": 95.125})
    tst.to_csv(tmp_path / "t_plain.csv", index=False)
    tst.to_csv(tmp_path / "t_eu.csv", index=False, sep=";", decimal=",",
               encoding="utf-8-sig")
    tst.to_csv(tmp_path / "t_tab.csv", index=False, sep="\t", encoding="utf-8-sig")
    groups_ = {"ket": ["m1", "m2"], "sal": ["m4", "m5"]}
    outs = []
    for name in ("t_plain", "t_eu", "t_tab"):
        d = _write_design(tmp_path / f"{name}.yaml", groups=groups_,
                          files=[{"path": str(tmp_path / f"{name}.csv"), "time": "1d"}])
        outs.append(pd.read_parquet(analyze("behavior", [tmp_path / f"{name}.csv"], d,
                                            tmp_path / f"o_{name}") / "readouts.parquet"))
    imm = outs[0][outs[0]["readout"] == "tst_immobility_s"]["value"].tolist()
    assert imm == [100.25, 130.5, 90.75, 95.125]
    for other in outs[1:]:
        pd.testing.assert_frame_equal(other, outs[0])


# ------------------------------------------------------------ bad input


GOOD_TST = "subject,start_s,end_s,state\n" + "".join(
    f"m{i},0,{100 + 10 * i},struggle\nm{i},{100 + 10 * i},360,immobile\n" for i in range(1, 5))
BASE = {"groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]}, "sessions": {"test": "1d"},
        "files": [{"pattern": "*.csv", "session": "test"}],
        "compare": [{"readout": "tst_immobility_s", "at": "test", "arms": ["ket", "sal"]}]}

BAD_CASES = {
    # name: (file text, file encoding, design changes, fragments of the one error)
    "unknown_subject": (GOOD_TST.replace("m4", "m9"), "utf-8", {},
                        ["unknown_subject.csv", "'m9' is in no group"]),
    "subject_in_two_groups": (GOOD_TST, "utf-8",
                              {"groups": {"ket": ["m1", "m2"], "sal": ["m3", "m1"]}},
                              ["d.yaml", "groups.sal", "'m1' is already in group 'ket'"]),
    "session_without_unit": (GOOD_TST, "utf-8", {"sessions": {"test": "24"}},
                             ["d.yaml", "sessions.test", "a time with units"]),
    "at_without_unit": (GOOD_TST, "utf-8",
                        {"compare": [{"readout": "tst_immobility_s", "at": "24",
                                      "arms": ["ket", "sal"]}]},
                        ["d.yaml", "compare[0].at", "a time with units"]),
    "file_time_without_unit": (GOOD_TST, "utf-8",
                               {"files": [{"pattern": "*.csv", "time": "24"}]},
                               ["d.yaml", "files[0].time"]),
    "unknown_group": (GOOD_TST, "utf-8",
                      {"compare": [{"readout": "tst_immobility_s", "at": "test",
                                    "arms": ["ket", "veh"]}]},
                      ["d.yaml", "compare[0].arms", "'veh'"]),
    "empty_group": (GOOD_TST, "utf-8", {"groups": {"ket": ["m1", "m2"], "sal": []}},
                    ["d.yaml", "groups.sal", "at least one subject"]),
    "group_without_data": (GOOD_TST, "utf-8",
                           {"groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"],
                                       "veh": ["m5"]},
                            "compare": [{"readout": "tst_immobility_s", "at": "test",
                                         "arms": ["ket", "veh"]}]},
                           ["d.yaml", "compare[0].at", "group 'veh' has no tst_immobility_s"]),
    "readout_typo": (GOOD_TST, "utf-8",
                     {"compare": [{"readout": "tst_immobilty_s", "at": "test",
                                   "arms": ["ket", "sal"]}]},
                     ["d.yaml", "compare[0].readout", "'tst_immobility_s'"]),
    "missing_column": (GOOD_TST.replace(",state", "").replace(",struggle", "")
                       .replace(",immobile", ""), "utf-8", {},
                       ["missing_column.csv", "cannot tell the test from the columns"]),
    "nan_value": (GOOD_TST.replace("m2,0,120", "m2,0,NaN"), "utf-8", {},
                  ["nan_value.csv", "column 'end_s'", "row 3 (line 4)", "missing value"]),
    "empty_cell": (GOOD_TST.replace("m2,0,120", "m2,0,"), "utf-8", {},
                   ["empty_cell.csv", "column 'end_s'", "row 3 (line 4)"]),
    "text_cell_european": ("\ufeff" + GOOD_TST.replace(",", ";").replace("m3;0;130",
                                                                         "m3;0;13x,5"),
                           "utf-8", {},
                           ["text_cell_european.csv", "column 'end_s'", "row 5 (line 6)",
                            "'13x,5'"]),
    "overlapping_bouts": (GOOD_TST + "m1,50,60,immobile\n", "utf-8", {},
                          ["overlapping_bouts.csv", "column 'start_s'", "row 9 (line 10)",
                           "overlaps"]),
    "duplicate_subject": ("subject,sucrose_g,water_g\nm1,1,2\nm2,1,1\nm1,2,2\n", "utf-8", {},
                          ["duplicate_subject.csv", "column 'subject'", "row 3 (line 4)",
                           "duplicate"]),
    "mixed_intake_units": ("subject,sucrose_g,water_g,sucrose_ml\nm1,1,2,3\n", "utf-8", {},
                           ["mixed_intake_units.csv", "both g and ml"]),
    "not_utf8": (GOOD_TST.replace("m1", "m\u00e9"), "latin-1",
                 {"groups": {"ket": ["m\u00e9", "m2"], "sal": ["m3", "m4"]}},
                 ["not_utf8.csv", "not UTF-8"]),
    "header_only": ("subject,start_s,end_s,state\n", "utf-8", {},
                    ["header_only.csv", "no rows"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_error_exit_2_and_nothing_written(tmp_path, case):
    text, encoding, changes, fragments = BAD_CASES[case]
    f = tmp_path / f"{case}.csv"
    f.write_bytes(text.encode(encoding))
    design = _write_design(tmp_path / "d.yaml", **{**BASE, **changes})
    out = tmp_path / "new" / "out"
    r = _cli("analyze", "behavior", f, "--design", design, "--out", out)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    assert len(_errors(r.output)) == 1, r.output
    flat = " ".join(r.output.split())
    for frag in fragments:
        assert frag in flat, (frag, r.output)
    assert not out.exists() and not (tmp_path / "new").exists()


def test_bad_input_with_force_keeps_the_earlier_output(tmp_path):
    f = tmp_path / "tst.csv"
    f.write_text(GOOD_TST)
    design = _write_design(tmp_path / "d.yaml", **BASE)
    out = tmp_path / "out"
    assert _cli("analyze", "behavior", f, "--design", design, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    f.write_text(GOOD_TST.replace("m2,0,120", "m2,0,abc"))
    r = _cli("analyze", "behavior", f, "--design", design, "--out", out, "--force")
    assert r.exit_code == 2 and "column 'end_s'" in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # nothing left beside it (private_home's folders start with '_')
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("_")) == [
        "d.yaml", "out", "tst.csv"]


def test_a_tracking_table_missing_a_column_is_one_error(lab_table, tmp_path):
    lab_table.drop(columns="branch_length_um").to_csv(tmp_path / "t.csv", index=False)
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups())
    r = _cli("analyze", "spines", tmp_path / "t.csv", "--design", design, "--out",
             tmp_path / "o")
    assert r.exit_code == 2 and len(_errors(r.output)) == 1, r.output
    assert "t.csv" in r.output and "'branch_length_um'" in r.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------ bugs


# fixed (was BUG): spines tables split by arm are refused when subject ids repeat across
#   arms (named <arm>-<id> in the design): the one-table-per-branch check keys on the bare
#   subject id
def test_spine_tables_split_by_arm_with_ids_repeating_across_arms(spine_run, tmp_path):
    t = pd.read_parquet(spine_run / "spines_tracking.parquet")  # ids 0.. in every arm
    groups = {"cort_saline": [f"cort-saline-{i}" for i in range(3)],
              "ketamine": [f"ketamine-{i}" for i in range(3)]}
    design = _write_design(tmp_path / "d.yaml", groups=groups,
                           compare=yaml.safe_load(SPINE_SCENARIO)["compare"])
    files = []
    for arm, g in t.groupby("arm"):
        g.to_csv(tmp_path / f"{arm}.csv", index=False)
        files.append(tmp_path / f"{arm}.csv")
    out = analyze("spines", files, design, tmp_path / "o")
    pd.testing.assert_frame_equal(_stats(out), _stats(spine_run))


# fixed (was BUG): an animal's branches in two tables count as two animals: per-animal
#   readouts are computed per file, so n doubles
def test_an_animals_branches_in_two_files_are_one_animal(lab_table, tmp_path):
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups(),
                           compare=SPINE_COMPARE[:1])
    lab_table.to_csv(tmp_path / "all.csv", index=False)
    files = []
    for b, g in lab_table.groupby("branch"):  # branch 0 and branch 1 of every animal
        g.to_csv(tmp_path / f"branch{b}.csv", index=False)
        files.append(tmp_path / f"branch{b}.csv")
    whole = analyze("spines", [tmp_path / "all.csv"], design, tmp_path / "o1")
    try:
        split = analyze("spines", files, design, tmp_path / "o2")
    except DesignError:  # refusing the split is as good as pooling it
        return
    assert _stats(split).loc[0, "n"] == "3;3"
    r = pd.read_parquet(split / "readouts.parquet")
    per_animal = r[r["assay"] == "two_photon_spines"]
    assert not per_animal.duplicated(["arm", "subject", "readout", "time_h"]).any()
    pd.testing.assert_frame_equal(_stats(split), _stats(whole))


# fixed (was BUG): an open-field table with an arm column and ids repeating across arms
#   (<arm>-<id> in the design) fails in _keep_tracks, which looks the bare id up in the
#   design
def test_open_field_table_with_ids_unique_within_arms(tmp_path):
    t = np.arange(0.0, 11.0)
    rows = [pd.DataFrame({"arm": arm, "subject": s, "time_s": t, "x_cm": v * t,
                          "y_cm": 0.0})
            for arm, s, v in (("sal", "1", 1.0), ("sal", "2", 2.0), ("ket", "1", 3.0),
                              ("ket", "2", 4.0))]
    pd.concat(rows).to_csv(tmp_path / "of.csv", index=False)
    design = _write_design(tmp_path / "d.yaml",
                           groups={"sal": ["sal-1", "sal-2"], "ket": ["ket-1", "ket-2"]},
                           files=[{"path": str(tmp_path / "of.csv"), "time": "1h"}])
    out = analyze("behavior", [tmp_path / "of.csv"], design, tmp_path / "o")
    r = _by_lab_id(out).set_index("subject_id")["value"]
    assert r.to_dict() == pytest.approx({"sal-1": 10.0, "sal-2": 20.0, "ket-1": 30.0,
                                         "ket-2": 40.0})


# fixed (was BUG): behaviour tables split by arm are refused when ids repeat across arms:
#   the one-file-per-session check (_once) keys on the bare subject id
def test_behaviour_tables_split_by_arm_with_ids_repeating_across_arms(tmp_path):
    tables = {arm: _tst_table(imm).assign(arm=arm) for arm, imm in (
        ("sal", {"1": 100.0, "2": 120.0, "3": 140.0}),
        ("ket", {"1": 200.0, "2": 210.0, "3": 250.0}))}
    pd.concat(tables.values()).to_csv(tmp_path / "all.csv", index=False)
    for arm, t in tables.items():
        t.to_csv(tmp_path / f"{arm}.csv", index=False)
    design = _write_design(tmp_path / "d.yaml",
                           groups={a: [f"{a}-{i}" for i in (1, 2, 3)] for a in ("sal", "ket")},
                           files=[{"pattern": "*.csv", "time": "1d"}],
                           compare=[{"readout": "tst_immobility_s", "at": "1d",
                                     "arms": ["ket", "sal"]}])
    whole = analyze("behavior", [tmp_path / "all.csv"], design, tmp_path / "o1")
    assert _stats(whole).loc[0, "n"] == "3;3"
    split = analyze("behavior", [tmp_path / "sal.csv", tmp_path / "ket.csv"], design,
                    tmp_path / "o2")
    pd.testing.assert_frame_equal(_stats(split), _stats(whole))


# fixed (was BUG): a comparison the statistics refuse (a nested cell comparison with a
#   baseline) escapes the CLI as a ValueError traceback, exit 1, instead of one error naming
#   the design (exit 2)
def test_a_cell_comparison_with_a_baseline_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(2)
    files = []
    for s in ("m1", "m2", "m3", "m4"):
        for ses in ("pre", "post"):
            x = rng.normal(0, 0.05, (4, 600))
            x[:, 100:110] += 1.0
            np.save(tmp_path / f"{s}_{ses}.npy", x)
            files.append(tmp_path / f"{s}_{ses}.npy")
    design = _write_design(
        tmp_path / "d.yaml", groups={"a": ["m1", "m2"], "b": ["m3", "m4"]},
        sessions={"pre": "-1d", "post": "1d"}, options={"frame_rate_hz": 30},
        files=[{"pattern": "{subject}_{session}.npy"}],
        compare=[{"readout": "calcium_transient_rate_per_min", "at": "post",
                  "baseline": "pre", "arms": ["a", "b"], "test": "mixed_lm"}])
    out = tmp_path / "o"
    r = _cli("analyze", "calcium", *files, "--design", design, "--out", out)
    assert not out.exists()
    assert r.exit_code == 2, (r.output, r.exception)
    assert len(_errors(r.output)) == 1
    assert str(design) in r.output and "compare[0]" in r.output


# fixed (was BUG): comparisons match session times within 1e-9 h although a tracking table's
#   sessions are one within 1e-6 h; the error then lists the very time it says is missing
def test_a_session_time_within_the_tables_tolerance(lab_table, tmp_path):
    lab_table.assign(time_h=lab_table["time_h"] + 1e-7).to_csv(tmp_path / "t.csv",
                                                              index=False)
    design = _write_design(tmp_path / "d.yaml", groups=_lab_groups(),
                           compare=SPINE_COMPARE[:1])
    try:
        out = analyze("spines", [tmp_path / "t.csv"], design, tmp_path / "o")
    except DesignError as e:  # refusing is fine if the message tells the times apart
        at = "at 24 h"
        assert at in str(e)
        listed = str(e).split("its times:")[1]
        assert "24 h" not in listed.replace("-24 h", ""), str(e)
        return
    assert _stats(out).loc[0, "n"] == "3;3"


# fixed (was BUG): a design listing one path in two files entries silently keeps the last (a
#   copy-paste slip assigns the file to the wrong subject)
def test_a_path_in_two_file_entries_is_an_error(tmp_path):
    design = _write_design(tmp_path / "d.yaml", groups={"a": ["m1", "m2"]},
                           files=[{"path": "m1.npy", "subject": "m1", "time": "1d"},
                                  {"path": "m1.npy", "subject": "m2", "time": "1d"}])
    with pytest.raises(DesignError, match=r"files\[1\]"):
        load_design(design)


# fixed (was BUG): a files entry's subject that contradicts the table's subject column is
#   silently ignored (the table's id is used)
def test_a_file_entry_subject_contradicting_the_table_is_an_error(tmp_path):
    _tst_table({"m1": 260.0}).to_csv(tmp_path / "tst_m2.csv", index=False)
    design = _write_design(tmp_path / "d.yaml", groups={"g": ["m1", "m2"]},
                           files=[{"path": str(tmp_path / "tst_m2.csv"), "subject": "m2",
                                   "time": "1d"}])
    with pytest.raises(DesignError, match="tst_m2.csv"):
        analyze("behavior", [tmp_path / "tst_m2.csv"], design, tmp_path / "o")
    assert not (tmp_path / "o").exists()


# fixed (was BUG): the design loader (yaml.safe_load) silently keeps the last of duplicate
#   keys (a group or session named twice), which the scenario loader refuses
def test_a_key_given_twice_in_the_design_is_an_error(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("name: x\ngroups:\n  a: [m1, m2]\n  b: [m3]\n  a: [m4]\n"
                 "sessions:\n  post: 1d\n  post: 3d\n")
    with pytest.raises(DesignError, match="duplicate"):
        load_design(p)
