"""Calibration (ketasim.sweep.calibrate): ABC-SMC and maximum likelihood recover known
parameter values from data simulated with them; data errors name file, row and column;
the PEtab export lints clean and its SBML reproduces ketasim's typical subject."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis.stats import summarize
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text
from ketasim.sweep.calibrate import (
    CalibrationData,
    CalibrationError,
    calibrate,
    export_petab,
    load_data,
    priors,
)

SCENARIO = """
name: calib_tiny
species: mouse
seed: 3
arms:
  - name: ket
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 30min, 1h, 2h, 4h]}
"""

TWO_ARMS = """
name: calib_two
species: mouse
seed: 5
arms:
  - name: ket
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h, 2h]}
      - {assay: two_photon_spines, at: [-1d, 1d]}
  - name: sal
    n: 3
    protocol: [{at: -30min, drug: saline, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h]}
      - {assay: western_blot, at: [2h]}
"""

TRUTH = {"sig.da_gain": 1.6, "sig.k_da": 2.0}


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder (summary.csv) simulated at the true values: latent dopamine and PKA
    after ketamine (noise-free readouts; the 3 subjects differ, so the SEMs are > 0)."""
    folder = tmp_path_factory.mktemp("truth")
    res = simulate(load_scenario_text(SCENARIO), registry=load_registry().with_values(TRUTH))
    summarize(res.readouts).to_csv(folder / "summary.csv", index=False)
    return folder


def _weighted_interval(x, w, lo=0.05, hi=0.95):
    order = np.argsort(x)
    x, w = np.asarray(x)[order], np.asarray(w)[order]
    cw = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp([lo, hi], cw, x)


def test_load_run_folder_drops_unfittable_rows(run_folder):
    data = load_data(run_folder)
    # noise-free latent readouts that do not vary between subjects have no SEM
    assert data.dropped and all("SEM" in d or "observations" in d for d in data.dropped)
    assert (data.sems > 0).all()
    sel = data.select(readouts=["da_rel", "pka_rel"])
    assert len(sel) == 10 and set(sel.table["assay"]) == {"signaling_state"}


def test_abc_recovers_true_values(run_folder, tmp_path):
    data = load_data(run_folder).select(readouts=["da_rel", "pka_rel"])
    out = calibrate(load_scenario_text(SCENARIO), data, list(TRUTH), tmp_path / "abc",
                    population=40, generations=4, seed=1, model_seed="fixed",
                    predictive_draws=5)
    post = pd.read_parquet(out / "posterior.parquet")
    assert len(post) == 40 and np.isclose(post["weight"].sum(), 1.0)
    for name, true in TRUTH.items():
        lo, hi = _weighted_interval(post[name], post["weight"])
        assert lo <= true <= hi, (name, lo, hi)
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "calibrate" and man["sampler"] == "SingleCoreSampler"
    assert [p["prior"] for p in man["parameters"]] == ["log-uniform", "log-uniform"]
    assert len(man["generations"]) == 4 and (out / "abc.db").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<script" not in page
    pred = pd.read_csv(out / "predictive.csv")
    assert len(pred) == 10 and pred["sim_median"].notna().all()


def test_abc_single_core_is_deterministic(run_folder, tmp_path):
    data = load_data(run_folder).select(readouts=["da_rel"])
    kw = {"population": 12, "generations": 2, "seed": 7, "predictive_draws": 0}
    scenario = tmp_path / "scenario.yaml"  # a scenario given as a file
    scenario.write_text(SCENARIO)
    a = calibrate(scenario, data, list(TRUTH), tmp_path / "a", **kw)
    b = calibrate(scenario, data, list(TRUTH), tmp_path / "b", **kw)
    pa, pb = pd.read_parquet(a / "posterior.parquet"), pd.read_parquet(b / "posterior.parquet")
    pd.testing.assert_frame_equal(pa, pb)


def test_abc_with_worker_processes(run_folder, tmp_path):
    data = load_data(run_folder).select(readouts=["da_rel"])
    out = calibrate(load_scenario_text(SCENARIO), data, list(TRUTH), tmp_path / "w",
                    population=10, generations=1, workers=2, predictive_draws=0)
    man = json.loads((out / "manifest.json").read_text())
    assert man["sampler"].startswith("ConcurrentFutureSampler")
    assert len(pd.read_parquet(out / "posterior.parquet")) == 10


@pytest.mark.slow  # about 13 s: a Dask cluster for ABC (Dask itself: test_run_distributed, test_sweep)
def test_abc_with_a_dask_cluster(run_folder, tmp_path):
    """pyabc's Dask sampler on an embedded LocalCluster of two worker processes (the
    ``--scheduler local`` path), and on a Client the caller made, which it leaves open."""
    from distributed import Client, LocalCluster

    data = load_data(run_folder).select(readouts=["da_rel"])
    kw = {"population": 8, "generations": 1, "predictive_draws": 0}
    out = calibrate(load_scenario_text(SCENARIO), data, list(TRUTH), tmp_path / "d",
                    workers=2, scheduler="local", **kw)
    man = json.loads((out / "manifest.json").read_text())
    assert man["sampler"].startswith("DaskDistributedSampler (LocalCluster, 2 worker")
    post = pd.read_parquet(out / "posterior.parquet")
    assert len(post) == 8 and np.isclose(post["weight"].sum(), 1.0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        out = calibrate(load_scenario_text(SCENARIO), data, list(TRUTH), tmp_path / "c",
                        scheduler=client, **kw)
        assert client.status == "running"  # the caller's client is not closed
        assert len(pd.read_parquet(out / "posterior.parquet")) == 8


def test_likelihood_recovers_true_values(run_folder, tmp_path):
    data = load_data(run_folder).select(readouts=["da_rel", "pka_rel"])
    out = calibrate(load_scenario_text(SCENARIO), data, list(TRUTH), tmp_path / "ml",
                    method="likelihood", starts=1)
    est = pd.read_csv(out / "estimates.csv").set_index("parameter")
    for name, true in TRUTH.items():
        assert est.loc[name, "ci_low"] <= true <= est.loc[name, "ci_high"]
        assert est.loc[name, "estimate"] == pytest.approx(true, rel=0.02)
    assert (est["ci_high"] > est["ci_low"]).all()
    assert "Wald" in (out / "report.html").read_text()


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("arm,readout,time_h,mean\nket,da_rel,1,2\n", "missing column 'sem'"),
    ("arm,readout,time_h,mean,sem,colour\nket,da_rel,1,2,0.1,red\n",
     "column 'colour': unknown column"),
    ("arm,readout,time_h,mean,sem\nket,da_rel,1,2,0.1\nket,da_rel,2,2,0\n",
     "column 'sem', row 2 (line 3): expected a number > 0, got '0'"),
    ("arm,readout,time_h,mean,sem\nket,da_rel,soon,2,0.1\n",
     "column 'time_h', row 1 (line 2): expected a time in hours"),
    ("arm,readout,time_h,mean,sem\n,da_rel,1,2,0.1\n", "column 'arm', row 1 (line 2)"),
    ("arm,readout,time_h,mean,sem\nket,da_rel,1,nan,0.1\n", "column 'mean', row 1"),
    ("arm,readout,time_h,mean,sem,change\nket,da_rel,1,2,0.1,percent\n",
     "column 'baseline_h', row 1 (line 2): expected the baseline time"),
    ("arm,readout,time_h,mean,sem,change,baseline_h\nket,da_rel,1,2,0.1,ratio,0\n",
     "column 'change', row 1 (line 2): expected percent or difference"),
    ("arm,readout,time_h,mean,sem\nket,da_rel,1,2,0.1\nket,da_rel,1.0,3,0.1\n",
     "row 2 (line 3): duplicate data row"),
    ("arm,readout,time_h,mean,sem\n", "no data rows"),
    ("", "empty file"),
])
def test_strict_data_errors(tmp_path, text, message):
    path = _csv(tmp_path, text)
    with pytest.raises(CalibrationError) as err:
        load_data(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_errors_against_the_scenario(tmp_path):
    sc = load_scenario_text(SCENARIO)
    cases = [("arm,readout,time_h,mean,sem\nsal,da_rel,1,2,0.1\n", "no arm 'sal'"),
             ("arm,readout,time_h,mean,sem\nket,da_rel,3,2,0.1\n",
              "measures 'da_rel' at 0.25, 0.5, 1, 2, 4 h, not at 3 h"),
             ("arm,readout,time_h,mean,sem\nket,psd95_rel,1,2,0.1\n",
              "no assay of arm 'ket' reports the readout 'psd95_rel'")]
    for k, (text, message) in enumerate(cases):
        path = _csv(tmp_path, text, f"d{k}.csv")
        with pytest.raises(CalibrationError, match="row 1") as err:
            calibrate(sc, path, list(TRUTH), tmp_path / f"o{k}")
        assert message in str(err.value)
        assert not (tmp_path / f"o{k}").exists()
    data = CalibrationData.from_frame(pd.DataFrame(
        {"arm": ["ket"], "readout": ["da_rel"], "time_h": [1.0], "mean": [2.0], "sem": [0.1]}))
    with pytest.raises(CalibrationError, match="not a registry parameter"):
        calibrate(sc, data, ["sig.da_gainn"], tmp_path / "x")
    with pytest.raises(CalibrationError, match="method"):
        calibrate(sc, data, list(TRUTH), tmp_path / "x", method="mcmc")


def test_priors_scale():
    reg = load_registry()
    p = {x.name: x for x in priors(reg, ["sig.da_gain", "imaging.two_photon.loss_per_min"])}
    assert p["sig.da_gain"].scale == "log10"  # [0.3, 3]: a factor of 10
    assert p["imaging.two_photon.loss_per_min"].scale == "lin"  # starts at 0
    narrowed = priors(reg, ["sig.da_gain"], {"sig.da_gain": (0.8, 2.0)})[0]
    assert narrowed.scale == "lin" and narrowed.bounds == (0.8, 2.0)


def test_petab_export_lints_and_matches_ketasim(tmp_path):
    import petab.v1 as petab
    import roadrunner

    from ketasim.experiment.cohort import sample_cohort
    from ketasim.signaling.protocol import compile_arm
    from ketasim.signaling.simulate import simulate_signaling

    sc = load_scenario_text(TWO_ARMS)
    reg = load_registry()
    s = summarize(simulate(sc, registry=reg).readouts)
    s = s[s["readout"].isin(["da_rel", "psd95_rel", "spine_density_per_10um"]) & (s["n"] > 0)]
    data = s[["arm", "assay", "readout", "time_h", "mean", "sem"]].copy()
    data["sem"] = data["sem"].where(data["sem"] > 0, 0.01)
    path = tmp_path / "data.csv"
    data.to_csv(path, index=False)
    yaml_file = export_petab(sc, path, list(TRUTH), tmp_path / "petab")
    problem = petab.Problem.from_yaml(str(yaml_file))
    assert not petab.lint_problem(problem)
    assert set(problem.parameter_df.index) == {"da_gain", "k_da"}
    assert set(problem.measurement_df["observableId"]) == {"obs_da_rel", "obs_psd95_rel"}
    readme = (tmp_path / "petab" / "README.md").read_text()
    assert readme.count("not an output of the SBML model") == 2  # the spine rows
    # each condition of the one document reproduces that arm's typical subject
    cond = problem.condition_df
    times = np.array([0.25, 1.0, 2.0, 24.0])
    rr = roadrunner.RoadRunner(str(tmp_path / "petab" / "model.xml"))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    for i, arm in enumerate(sc.arms):
        rr.resetAll()
        for k, v in cond.loc[arm.name].items():
            if k != "conditionName":
                rr[k] = float(v)
        rr.timeCourseSelections = ["time", "out_da_rel", "out_psd95_rel"]
        t0 = rr["time_offset_h"]
        ref = np.asarray(rr.simulate(times=[0.0, *(times - t0)]))[1:, 1:]
        cohort = sample_cohort(reg, sc.species, arm.name, 1, sc.seed, arm.body_weight_kg,
                               variability=False)
        events = compile_arm(arm, sc.species, cohort, reg, f"arms[{i}]")
        ours = simulate_signaling(cohort, events, times, ["da_rel", "psd95_rel"], rtol=1e-10,
                                  atol=1e-14).values[0]
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-9)


def test_petab_refuses_parameters_outside_the_sbml_model(tmp_path):
    sc = load_scenario_text(SCENARIO)
    data = pd.DataFrame({"arm": ["ket"], "readout": ["da_rel"], "time_h": [1.0],
                         "mean": [2.0], "sem": [0.1]})
    with pytest.raises(CalibrationError, match="not a parameter of the exported SBML"):
        export_petab(sc, CalibrationData.from_frame(data), ["spine.mpfc_l5.e0"],
                     tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_an_analyze_folders_nested_rows_are_left_out_with_a_reason(tmp_path):
    """An ``analyze spines`` folder holds per-mouse rows and the same measurements per
    segment (``two_photon_spines_nested``), which no scenario simulates: the nested rows
    are left out with a reason instead of failing the whole calibration."""
    rows = [("saline", "two_photon_spines", "spine_density_per_10um", 24.0, "per 10 um",
             8, 2.8, 0.1),
            ("saline", "two_photon_spines_nested", "spine_density_per_10um", 24.0,
             "per 10 um", 96, 2.7, 0.05)]
    pd.DataFrame(rows, columns=["arm", "assay", "readout", "time_h", "unit", "n", "mean",
                                "sem"]).to_csv(tmp_path / "summary.csv", index=False)
    data = load_data(tmp_path)
    assert list(data.table["assay"]) == ["two_photon_spines"]
    assert len(data.dropped) == 1 and "two_photon_spines_nested row" in data.dropped[0]


def test_statistic_sems_and_the_default_simulations_z():
    """The SEM of each data row's simulated statistic: of a group mean, of a change over
    the subjects measured at both times, of a percent change by the delta method; the
    report's z of the one simulation at the defaults counts its SEM beside the data's."""
    from ketasim.sweep.calibrate import _predictive_table, statistic_sems

    x0, x1 = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.5, 7.0])
    readouts = pd.DataFrame({
        "arm": "a", "assay": "western_blot", "readout": "r",
        "time_h": [0.0] * 3 + [24.0] * 3, "subject": [0, 1, 2] * 2,
        "value": np.r_[x0, x1]})
    rows = pd.DataFrame({"arm": "a", "assay": "western_blot", "readout": "r",
                         "time_h": [24.0, 24.0, 24.0], "baseline_h": [np.nan, 0.0, 0.0],
                         "change": ["", "absolute", "percent"]})
    got = statistic_sems(readouts, rows)
    assert got[0] == pytest.approx(x1.std(ddof=1) / np.sqrt(3))
    assert got[1] == pytest.approx((x1 - x0).std(ddof=1) / np.sqrt(3))
    lin = 100.0 * (x1 - x1.mean() / x0.mean() * x0) / x0.mean()
    assert got[2] == pytest.approx(lin.std(ddof=1) / np.sqrt(3))
    data = SimpleNamespace(labels=lambda: ["a/r@24h"])
    one = pd.DataFrame({"row": [1], "arm": ["a"], "assay": ["western_blot"],
                        "readout": ["r"], "time_h": [24.0], "baseline_h": [np.nan],
                        "change": [""], "mean": [1.0], "sem": [0.3]})
    pred = _predictive_table(data, one, np.empty((0, 1)), np.array([1.5]), np.array([0.4]))
    assert pred["z_default"].iloc[0] == pytest.approx(0.5 / 0.5)  # sqrt(0.3^2 + 0.4^2)


def test_a_posterior_close_to_its_prior_is_reported_as_unconstrained():
    from ketasim.sweep.calibrate import unconstrained

    pri = priors(load_registry(), ["sig.k_synthesis"])
    p = pri[0]
    lo, hi = p.bounds
    wide = {"q05": float(p.from_scale(lo + 0.06 * (hi - lo))),
            "q95": float(p.from_scale(hi - 0.06 * (hi - lo)))}
    narrow = {"q05": float(p.from_scale(lo + 0.4 * (hi - lo))),
              "q95": float(p.from_scale(lo + 0.5 * (hi - lo)))}
    (name, share), = unconstrained([wide], pri)
    assert name == "sig.k_synthesis" and share == pytest.approx(0.88 / 0.9)
    assert unconstrained([narrow], pri) == []


def test_percent_change_needs_a_positive_baseline():
    """A percent change is read only from a positive baseline mean (a fall from -10 to
    -12.6 is not +26%)."""
    import numpy as np
    import pandas as pd

    from ketasim.sweep.calibrate import statistics

    readouts = pd.DataFrame({"arm": "a", "assay": "x", "readout": "r",
                             "time_h": [0.0, 0.0, 24.0, 24.0],
                             "value": [-10.0, -10.0, -12.6, -12.6]})
    rows = pd.DataFrame({"arm": ["a", "a"], "assay": "x", "readout": "r", "time_h": 24.0,
                         "change": ["percent", "difference"], "baseline_h": 0.0})
    got = statistics(readouts, rows)
    assert np.isnan(got[0]) and got[1] == pytest.approx(-2.6)
    pos = readouts.assign(value=-readouts["value"])
    assert statistics(pos, rows)[0] == pytest.approx(26.0)


def test_a_data_unit_other_than_the_models_is_refused_before_simulating(tmp_path):
    """A row's unit, when given, must be the readout's own (% for a percent change): a
    fraction fitted against percentages would fit wrong parameters without a word."""
    from ketasim.sweep.calibrate import _resolve_rows

    sc = load_scenario_text(TWO_ARMS)
    rows = [("ket", "plasticity_potential", 1.0, "", "", 0.5, 0.05, "probability"),
            ("ket", "formation_pct", 24.0, "", "", 12.0, 1.0, "percent"),
            ("ket", "spine_density_per_10um", 24.0, -24.0, "percent", 8.0, 2.0, "%"),
            ("ket", "spine_density_per_10um", 24.0, -24.0, "difference", 0.3, 0.1,
             "per 10 um"),
            ("ket", "formation_drive", 1.0, "", "", 1.2, 0.1, "")]
    cols = ["arm", "readout", "time_h", "baseline_h", "change", "mean", "sem", "unit"]
    ok = CalibrationData.from_frame(pd.DataFrame(rows, columns=cols))
    assert len(_resolve_rows(sc, ok)) == 5  # same units (aliases too), or none given
    for bad, msg in [
            (("ket", "plasticity_potential", 1.0, "", "", 50.0, 5.0, "%"),
             ("unit '%', but signaling_state reports 'plasticity_potential' in "
              "'probability'")),
            (("ket", "spine_density_per_10um", 24.0, -24.0, "percent", 8.0, 2.0,
              "per 10 um"), "a percent change of 'spine_density_per_10um' is in %")]:
        data = CalibrationData.from_frame(pd.DataFrame([bad], columns=cols), "d.csv")
        with pytest.raises(CalibrationError, match=r"d.csv, row \d+ .*" + msg.replace(
                "(", r"\(").replace(")", r"\)")):
            calibrate(sc, data, ["sig.k_pka"], tmp_path / "o", method="likelihood")
        assert not (tmp_path / "o").exists()
