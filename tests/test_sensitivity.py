"""Global sensitivity (ketasim.sweep.sensitivity): SALib's samplers and estimators on
known functions, the registry problem, the readout selection, a small real run and the
per-target screening of the validation."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from SALib.analyze import morris as salib_morris
from SALib.test_functions import Ishigami

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry, parse_registry
from ketasim.report.sensitivity_figures import plot_indices
from ketasim.scenario import load_scenario
from ketasim.sweep import sensitivity as S
from ketasim.validation.run import plan, sources
from ketasim.validation.statistic import evaluate

# Ishigami (a = 7, b = 0.1): analytic first-order and total indices
ISHIGAMI_S1 = np.array([0.3139, 0.4424, 0.0])
ISHIGAMI_ST = np.array([0.5576, 0.4424, 0.2437])

TINY = """
name: tiny_sensitivity
species: mouse
seed: 5
arms:
  - name: saline
    n: 2
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays: &a
      - {assay: signaling_state, at: [0h, 2h]}
  - name: ketamine
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: *a
"""
TINY_NAMES = ["sig.da_gain", "sig.pka_gain", "rec.potency_interneuron"]

SMALL_REGISTRY = """
- {name: a.rate, value: 1.0, unit: 1/h, range: [0.1, 10.0], source: s, description: d}
- {name: a.share, value: 0.5, unit: "1", range: [0.0, 1.0], source: s, description: d}
- {name: a.fixed, value: 2.0, unit: g/mol, range: [2.0, 2.0], source: s, description: d}
- {name: a.offset, value: 0.0, unit: "1", range: [-1.0, 5.0], source: s, description: d}
- {name: a.narrow, value: 2.0, unit: "1", range: [1.0, 9.0], source: s, description: d}
"""


pytestmark = pytest.mark.usefixtures("private_home")


def _unit_problem(names, bounds):
    return {"num_vars": len(names), "names": list(names), "bounds": bounds}


# --------------------------------------------------------------------------- estimators
def test_ishigami_sobol_indices_match_the_analytic_values():
    problem = _unit_problem(["x1", "x2", "x3"], [[-math.pi, math.pi]] * 3)
    samples = S.sample(problem, "sobol", 2048, seed=3)
    assert len(samples) == 2048 * 5 and list(samples.columns) == ["x1", "x2", "x3"]
    pd.testing.assert_frame_equal(samples, S.sample(problem, "sobol", 2048, seed=3))
    assert not samples.equals(S.sample(problem, "sobol", 2048, seed=4))
    y = Ishigami.evaluate(samples.to_numpy())
    t = S.indices(problem, "sobol", samples, y, seed=1)
    assert list(t.columns) == S.INDEX_COLUMNS
    s1 = t[t["index"] == "S1"].set_index("parameter").loc[["x1", "x2", "x3"]]
    st = t[t["index"] == "ST"].set_index("parameter").loc[["x1", "x2", "x3"]]
    # SALib's own tests: 0.05 absolute at this sample size
    assert np.all(np.abs(s1["value"].to_numpy() - ISHIGAMI_S1) < 0.05), s1
    assert np.all(np.abs(st["value"].to_numpy() - ISHIGAMI_ST) < 0.05), st
    assert (s1["ci_low"] <= s1["value"]).all() and (s1["value"] <= s1["ci_high"]).all()
    assert set(t["scale"]) == {"linear"}
    pd.testing.assert_frame_equal(t, S.indices(problem, "sobol", samples, y, seed=1))


def test_morris_ranks_a_linear_function_by_its_coefficients():
    coef = np.array([5.0, -2.0, 0.5, 0.0])
    problem = _unit_problem(["a", "b", "c", "d"], [[0.0, 1.0]] * 4)
    samples = S.sample(problem, "morris", 12, seed=7)
    assert len(samples) == 12 * 5
    pd.testing.assert_frame_equal(samples, S.sample(problem, "morris", 12, seed=7))
    y = samples.to_numpy() @ coef
    t = S.indices(problem, "morris", samples, y, seed=2)
    mu_star = t[t["index"] == "mu_star"].set_index("parameter")["value"]
    mu = t[t["index"] == "mu"].set_index("parameter")["value"]
    sigma = t[t["index"] == "sigma"].set_index("parameter")["value"]
    np.testing.assert_allclose(mu_star.loc[list("abcd")], np.abs(coef), atol=1e-9)
    np.testing.assert_allclose(mu.loc[list("abcd")], coef, atol=1e-9)
    np.testing.assert_allclose(sigma.to_numpy(), 0.0, atol=1e-9)
    assert list(mu_star.sort_values(ascending=False).index) == ["a", "b", "c", "d"]
    assert (t["trajectories"] == 12).all()
    # the elementary effects are SALib's
    y2 = y + 3.0 * samples["a"].to_numpy() * samples["b"].to_numpy()
    ee = S.elementary_effects(problem, samples.to_numpy(), y2)
    ref = salib_morris.analyze(problem, samples.to_numpy(), y2, num_levels=4, seed=1)
    np.testing.assert_allclose(np.abs(ee).mean(axis=1), ref["mu_star"], rtol=1e-12)
    np.testing.assert_allclose(ee.std(axis=1, ddof=1), ref["sigma"], rtol=1e-12)


def test_morris_leaves_out_trajectories_without_a_value_and_sobol_refuses_them():
    problem = _unit_problem(["a", "b"], [[0.0, 1.0]] * 2)
    samples = S.sample(problem, "morris", 5, seed=1)
    y = samples.to_numpy() @ np.array([1.0, 3.0])
    y[4] = np.nan  # in the second trajectory (rows 3-5)
    t = S.indices(problem, "morris", samples, y, seed=0)
    assert (t["trajectories"] == 4).all()
    assert np.isclose(t.query("index == 'mu_star' and parameter == 'b'")["value"].item(), 3)
    y[[1, 7, 10, 13]] = np.nan
    with pytest.raises(S.SensitivityError, match="at least 2 are needed"):
        S.indices(problem, "morris", samples, y, seed=0)
    sob = S.sample(problem, "sobol", 8, seed=1)
    ys = sob.sum(axis=1).to_numpy()
    ys[3] = np.inf
    with pytest.raises(S.SensitivityError, match="1 of 32 samples have no finite value"):
        S.indices(problem, "sobol", sob, ys, seed=0)
    with pytest.raises(S.SensitivityError, match="does not vary"):
        S.indices(problem, "sobol", sob, np.ones(32), seed=0)
    with pytest.raises(S.SensitivityError, match="31 values for 32 samples"):
        S.indices(problem, "sobol", sob, np.ones(31), seed=0)


def test_sample_errors():
    problem = _unit_problem(["a"], [[0.0, 1.0]])
    with pytest.raises(S.SensitivityError, match="power of two"):
        S.sample(problem, "sobol", 100, seed=0)
    with pytest.raises(S.SensitivityError, match="at least 2 trajectories"):
        S.sample(problem, "morris", 1, seed=0)
    with pytest.raises(S.SensitivityError, match="expected one of sobol, morris"):
        S.sample(problem, "fast", 8, seed=0)
    # the sweep's cap, before SALib tries to allocate 32 GiB (a MemoryError traceback)
    with pytest.raises(S.SensitivityError, match="would draw 3221225472 samples"):
        S.sample(problem, "sobol", 2**30, seed=0)
    with pytest.raises(S.SensitivityError, match="expected at most 10000000"):
        S.sample(problem, "morris", 10_000_000, seed=0)


# --------------------------------------------------------------------------- problem
def test_problem_from_registry_bounds_and_log_scale():
    reg = parse_registry(SMALL_REGISTRY)
    p = S.problem_from_registry(reg, ["a.rate", "a.share", "a.offset", "a.narrow"])
    assert p["num_vars"] == 4
    assert p["bounds"] == [[0.1, 10.0], [0.0, 1.0], [-1.0, 5.0], [1.0, 9.0]]
    assert p["log_scale"] == [True, False, False, False]  # 100-fold; 0 or < 0; 9-fold
    assert p["dists"] == ["logunif", "unif", "unif", "unif"]
    assert p["units"] == ["1/h", "1", "1", "1"] and p["defaults"] == [1.0, 0.5, 0.0, 2.0]
    assert S.problem_from_registry(reg, ["a.rate"], log_scale=False)["log_scale"] == [False]
    assert S.problem_from_registry(reg, ["a.narrow"], log_scale=True)["log_scale"] == [True]
    assert S.problem_from_registry(reg, ["a.rate", "a.narrow"],
                                   log_scale=["a.narrow"])["log_scale"] == [False, True]
    # log space: a decade each side of the geometric middle gets half the samples
    x = S.sample(p, "sobol", 1024, seed=0)
    assert x["a.rate"].between(0.1, 10.0).all() and x["a.offset"].between(-1, 5).all()
    assert abs((x["a.rate"] < 1.0).mean() - 0.5) < 0.02
    assert abs((x["a.share"] < 0.5).mean() - 0.5) < 0.02
    m = S.sample(p, "morris", 6, seed=0)  # the grid reaches the bounds exactly
    assert m["a.rate"].min() == 0.1 and m["a.rate"].max() == 10.0


def test_problem_from_registry_errors_in_one_message():
    reg = parse_registry(SMALL_REGISTRY)
    with pytest.raises(S.SensitivityError) as err:
        S.problem_from_registry(reg, ["a.rate", "a.rat", "b.none", "a.fixed", "a.rate"])
    msg = str(err.value)
    assert msg.count("\n") == 0
    assert "named twice: a.rate" in msg
    assert "not in the registry: a.rat (did you mean a.rate?), b.none" in msg
    assert "ranges without width, nothing to vary: a.fixed [2, 2]" in msg
    with pytest.raises(S.SensitivityError, match=r"log scale needs positive bounds: a.share \[0, 1\]"):
        S.problem_from_registry(reg, ["a.share"], log_scale=True)
    with pytest.raises(S.SensitivityError, match="log_scale names parameters not varied: a.narrow"):
        S.problem_from_registry(reg, ["a.rate"], log_scale=["a.narrow"])
    with pytest.raises(S.SensitivityError, match="no parameters"):
        S.problem_from_registry(reg, [])


def test_resolve_parameters_patterns():
    reg = parse_registry(SMALL_REGISTRY)
    assert S.resolve_parameters(reg, ["a.*"]) == ["a.rate", "a.share", "a.offset",
                                                  "a.narrow"]  # a.fixed cannot vary
    assert S.resolve_parameters(reg, ["a.share", "a.*", "a.fixed"]) == [
        "a.share", "a.rate", "a.offset", "a.narrow", "a.fixed"]
    with pytest.raises(S.SensitivityError, match="'z.*' match no registry parameter"):
        S.resolve_parameters(reg, ["z.*"])


def test_scenario_parameters_are_the_ones_the_model_reads():
    reg = load_registry()
    names = S.scenario_parameters("cort_ketamine", reg)
    for n in ("sig.glu_amplitude", "rec.potency_interneuron", "stress.k_on",
              "stress.intensity_cort", "pk.mouse.ketamine.cl", "pk.mouse.norketamine.cl",
              "route.mouse.ip.ka"):
        assert n in names
    assert not [n for n in names if "rat" in n.split(".") or "human" in n.split(".")]
    assert "stress.intensity_restraint" not in names and "chem.mw_ketamine" not in names
    assert all(reg[n].low < reg[n].high for n in names)
    assert len(names) == len(set(names))
    S.problem_from_registry(reg, names)  # every default is a valid problem
    sc = load_scenario(sources()[0]["cort_ketamine_spine_imaging"])
    spines = S.scenario_parameters(sc, reg)
    assert "spine.mpfc_l5.e0" in spines and "spine.mpfc_l5.burn_in_d" not in spines
    chosen = S.screening_parameters(sc, reg, fitted=["behavior.tst.p_trigger"], limit=5)
    assert chosen[0] == "behavior.tst.p_trigger" and len(chosen) == 5


# --------------------------------------------------------------------------- readouts
def _sweep_table(n: int = 4) -> pd.DataFrame:
    rows = []
    for s in range(n):
        for arm, base in (("saline", 1.0), ("ketamine", 3.0)):
            for t in (2.0, 24.0):
                rows.append({"sample": s, "sig.da_gain": 1.0 + s, "arm": arm,
                             "assay": "western_blot", "readout": "psd95_rel", "time_h": t,
                             "unit": "1", "n": 4, "mean": base + s + t / 100, "sem": 0.1})
                rows.append({"sample": s, "sig.da_gain": 1.0 + s, "arm": arm,
                             "assay": "signaling_state", "readout": "pmtor", "time_h": t,
                             "unit": "1", "n": 4, "mean": 10 * base, "sem": 0.0})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # any row order


def test_readout_values_selects_one_number_per_sample():
    df = _sweep_table()
    v = S.readout_values(df, "psd95_rel", arm="ketamine", time_h=24.0)
    np.testing.assert_allclose(v, [3.24, 4.24, 5.24, 6.24])
    np.testing.assert_allclose(S.readout_values(df, "psd95_rel", arm="ketamine",
                                                time_h="2h"), [3.02, 4.02, 5.02, 6.02])
    np.testing.assert_allclose(
        S.readout_values(df, "psd95_rel", arm="ketamine", time_h=24, contrast_arm="saline"),
        [2.0] * 4)
    # the one arm besides the contrast
    np.testing.assert_allclose(
        S.readout_values(df, "psd95_rel", time_h=24, contrast_arm="saline"), [2.0] * 4)
    np.testing.assert_allclose(S.readout_values(df, "psd95_rel", arm="saline", time_h=2,
                                                statistic="sem"), [0.1] * 4)
    v = S.readout_values(df[df["sample"] != 2], "psd95_rel", arm="ketamine", time_h=2,
                         n_samples=5)
    assert np.isnan(v[[2, 4]]).all() and np.isfinite(v[[0, 1, 3]]).all()


def test_readout_values_errors():
    df = _sweep_table()
    with pytest.raises(S.SensitivityError, match="readout 'nope': not in the sweep; it has pmtor, "
                                         "psd95_rel"):
        S.readout_values(df, "nope")
    with pytest.raises(S.SensitivityError, match=r"ambiguous: 2 series \(time_h 2, 24\); choose "
                                         r"with time_h \(--at\)"):
        S.readout_values(df, "psd95_rel", arm="ketamine")
    with pytest.raises(S.SensitivityError, match=r"ambiguous: 4 series \(arm ketamine, saline; "
                                         r"time_h 2, 24\)"):
        S.readout_values(df, "psd95_rel")
    with pytest.raises(S.SensitivityError, match="no values at 12 h; measured at 2, 24 h"):
        S.readout_values(df, "psd95_rel", arm="ketamine", time_h="12h")
    with pytest.raises(S.SensitivityError, match="arm 'vehicle': no 'psd95_rel' values; arms with "
                                         "them: saline, ketamine|ketamine, saline"):
        S.readout_values(df, "psd95_rel", arm="vehicle", time_h=2)
    with pytest.raises(S.SensitivityError, match="contrast arm 'vehicle'"):
        S.readout_values(df, "psd95_rel", arm="ketamine", time_h=2, contrast_arm="vehicle")
    with pytest.raises(S.SensitivityError, match="no assay 'two_photon_spines'"):
        S.readout_values(df, "psd95_rel", assay="two_photon_spines")
    with pytest.raises(S.SensitivityError, match="statistic"):
        S.readout_values(df, "psd95_rel", arm="ketamine", time_h=2, statistic="median")
    with pytest.raises(S.SensitivityError, match="missing columns mean"):
        S.readout_values(df.drop(columns="mean"), "psd95_rel")


# --------------------------------------------------------------------------- run
def _serial_sweep(scenario, samples, out, *, seed=None, registry=None, **_):
    """A stand-in for run_sweep: each sample simulated here at the scenario's seed,
    summarised as read_sweep would."""
    sc = load_scenario(scenario)
    frames = []
    for k, row in samples.reset_index(drop=True).iterrows():
        res = simulate(sc, registry=registry.with_values(row.to_dict()))
        g = res.readouts.groupby(["arm", "assay", "readout", "time_h", "unit"], sort=False)
        s = g["value"].agg(n="count", mean="mean", sem="sem").reset_index()
        frames.append(s.assign(sample=k, **row.to_dict()))
    return pd.concat(frames, ignore_index=True)


def test_run_sensitivity_on_a_small_scenario(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    out = S.run_sensitivity(path, "plasticity_potential", tmp_path / "sens", names=TINY_NAMES,
                            method="sobol", n=4, arm="ketamine", time_h="2h",
                            contrast_arm="saline", seed=3, figure=plot_indices,
                            sweep=_serial_sweep)
    t = pd.read_csv(out / "indices.csv")
    assert list(t.columns) == S.INDEX_COLUMNS
    assert len(t) == 6 and set(t["index"]) == {"S1", "ST"}
    assert set(t["parameter"]) == set(TINY_NAMES) and np.isfinite(t["value"]).all()
    assert (out / "indices.png").stat().st_size > 5000
    samples = pd.read_csv(out / "samples.csv")
    assert len(samples) == 4 * (3 + 2) and samples["value"].notna().all()
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"] == "sensitivity" and m["samples"] == 20 and m["method"] == "sobol"
    assert [p["scale"] for p in m["parameters"]] == ["log", "log", "log"]
    assert m["selection"] == {"readout": "plasticity_potential", "arm": "ketamine",
                              "time_h": 2.0, "contrast_arm": "saline", "assay": None,
                              "statistic": "mean"}
    assert m["files"] == ["indices.csv", "samples.csv", "indices.png"]
    assert m["registry"]["sha256"] and m["scenario_text"] == TINY
    # Morris, the same selection
    out2 = S.run_sensitivity(path, "plasticity_potential", tmp_path / "morris",
                             names=TINY_NAMES, method="morris", n=2, arm="ketamine",
                             time_h=2, contrast_arm="saline", figure=plot_indices,
                             sweep=_serial_sweep)
    t2 = pd.read_csv(out2 / "indices.csv")
    assert set(t2["index"]) == {"mu_star", "mu", "sigma"} and (out2 / "indices.png").exists()


def test_run_sensitivity_with_the_sweep(tmp_path):
    """The real run_sweep (in this process), into OUT/sweep."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    with ThreadPoolExecutor(1) as ex:
        out = S.run_sensitivity(path, "plasticity_potential", tmp_path / "sens",
                                names=TINY_NAMES, method="morris", n=2, arm="ketamine",
                                time_h="2h", contrast_arm="saline", executor=ex,
                                progress=False)
    assert (out / "sweep" / "manifest.json").exists()
    t = pd.read_csv(out / "indices.csv")
    assert len(t) == 9 and (t["trajectories"] == 2).all()
    assert not (out / "indices.png").exists()  # no figure asked for


def test_run_sensitivity_fails_before_simulating(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)

    def never(*a, **k):
        raise AssertionError("simulated")

    for kw, msg in (({"readout": "psd95_rel"}, "no assay of tiny_sensitivity measures"),
                    ({"readout": "plasticity_potential", "arm": "vehicle"},
                     "arm 'vehicle': not an arm"),
                    ({"readout": "plasticity_potential", "names": ["sig.nope"]},
                     "not in the registry: sig.nope"),
                    ({"readout": "plasticity_potential", "n": 10}, "power of two")):
        with pytest.raises(S.SensitivityError, match=msg):
            S.run_sensitivity(path, out=tmp_path / "x", sweep=never, **kw)


# --------------------------------------------------------------------------- targets
def fake_statistic(expr: str, readouts: pd.DataFrame, tracking) -> float:
    """A stand-in for the validation's evaluator: the mean of the readout named."""
    return float(readouts.loc[readouts["readout"] == expr, "value"].mean())


def test_target_sensitivity_with_a_fake_statistic():
    paths = {"pk_mouse_ip": sources()[0]["pk_mouse_ip"]}
    targets = {"pk_mouse_ip": {"T-PLASMA": "ketamine_plasma_ng_ml",
                               "T-BRAIN": "ketamine_brain_ng_g", "T-NONE": "no_such"}}
    names = ["pk.mouse.ketamine.cl", "pk.mouse.ketamine.kp_brain"]
    t = S.target_sensitivity(paths, targets, evaluate=fake_statistic, names=names, r=2)
    assert list(t.columns) == S.TARGET_COLUMNS
    assert len(t) == 3 * 2 and set(t["target_id"]) == {"T-PLASMA", "T-BRAIN", "T-NONE"}
    plasma = t[t["target_id"] == "T-PLASMA"].set_index("parameter")
    # the brain partition does not reach the plasma (but for the solver's tolerance)
    cl = plasma.loc["pk.mouse.ketamine.cl"]
    assert plasma.loc["pk.mouse.ketamine.kp_brain", "mu_star"] < 1e-4 * cl["mu_star"]
    assert cl["rank"] == 1 and cl["share"] > 0.9999
    brain = t[t["target_id"] == "T-BRAIN"].set_index("parameter")
    assert (brain["mu_star"] > 0).all()
    assert t[t["target_id"] == "T-NONE"]["mu_star"].isna().all()
    text = S.top_parameters(t)
    assert text["T-PLASMA"].startswith("pk.mouse.ketamine.cl 100%")
    assert text["T-NONE"] == "not computed"
    assert text["T-BRAIN"].count("%") == 2
    with ThreadPoolExecutor(2) as ex:
        again = S.target_sensitivity(paths, targets, evaluate=fake_statistic, names=names,
                                     r=2, executor=ex)
    pd.testing.assert_frame_equal(t, again)  # whatever runs the samples


def test_target_sensitivity_on_a_replica():
    paths, targets = sources()
    chosen = plan(["pk_mouse_ip"], paths, targets)
    tmap = {name: {tid: targets[tid] for tid in tids} for name, tids in chosen.items()}
    t = S.target_sensitivity(paths, tmap, evaluate=evaluate, r=2, max_params=6)
    assert set(t["target_id"]) == set(chosen["pk_mouse_ip"])
    assert t.groupby("target_id").size().eq(6).all()
    assert np.isfinite(t["mu_star"]).all() and (t["trajectories"] == 2).all()
    assert all(sorted(g) == [1, 2, 3, 4, 5, 6] for _, g in t.groupby("target_id")["rank"])
    # the parameters fitted to the targets come first in the screening
    fitted = {f for tid in chosen["pk_mouse_ip"] for f in targets[tid].fitted}
    assert fitted <= set(t["parameter"])
    text = S.top_parameters(t, k=3)
    assert set(text) == set(chosen["pk_mouse_ip"])
    assert all(1 <= v.count("%") <= 3 for v in text.values())


def test_top_parameters_text():
    t = pd.DataFrame({"target_id": ["A"] * 3 + ["B"] * 2,
                      "parameter": ["p", "q", "r", "p", "q"],
                      "mu_star": [1.0, 3.0, 0.0, 0.0, 0.0],
                      "share": [0.25, 0.75, 0.0, 0.0, 0.0]})
    assert S.top_parameters(t) == {"A": "q 75%, p 25%", "B": "none of the screened parameters"}
    assert S.top_parameters(t, k=1)["A"] == "q 75%"


def test_sensitivity_samples_share_their_random_numbers(tmp_path):
    """A noisy readout (western blot, 15% measurement noise) and a parameter the
    prefrontal blot does not read (the Parkinson model's PKA threshold): with every
    sample at one seed its elementary effects are exactly 0, where a seed per sample
    gave it a mu* of the order of the readout's SEM."""
    path = tmp_path / "blot.yaml"
    path.write_text(TINY.replace("{assay: signaling_state, at: [0h, 2h]}",
                                 "{assay: western_blot, at: [24h]}"))
    with ThreadPoolExecutor(1) as ex:
        out = S.run_sensitivity(path, "pmtor_rel", tmp_path / "sens",
                                names=["sig.lid_pka_threshold", "sig.k_synthesis"],
                                method="morris", n=3, arm="ketamine", time_h="24h",
                                executor=ex, progress=False)
    table = pd.read_csv(out / "indices.csv")
    # mu* and sigma cannot be negative, and neither can their intervals
    assert (table.loc[table["index"].isin(["mu_star", "sigma"]), "ci_low"] >= 0).all()
    t = table.set_index(["parameter", "index"])["value"]
    assert t["sig.lid_pka_threshold", "mu_star"] == 0.0
    assert t["sig.k_synthesis", "mu_star"] > 0.0
    rule = json.loads((out / "sweep" / "manifest.json").read_text())["seed_rule"]
    assert rule.startswith("every sample runs with seed")
