"""Review checks: global sensitivity (Sobol / Morris against SALib and analytic indices),
registry ranges and log scaling, calibration (MLE and ABC-SMC on a synthetic problem with
a known answer), sweeps (grid, order, values, chunking) and power by simulation (the
fraction of significant cohorts and its Wilson interval against scipy); bad inputs.

The model evaluation is replaced by known functions wherever the code allows it
(``run_sensitivity(sweep=...)``, ``_Model.simulate``), so the statistics are checked
against exact answers; the sweep runs the real simulator on a 2-3 subject scenario."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from SALib.analyze import morris as salib_morris_analyze
from SALib.analyze import sobol as salib_sobol_analyze
from SALib.sample import morris as salib_morris_sample
from SALib.sample import sobol as salib_sobol_sample
from scipy import stats

from ketasim.analysis.power import PowerError, check_power_arguments, power_table
from ketasim.analysis.stats import summarize
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text
from ketasim.sweep import calibrate as C
from ketasim.sweep import sensitivity as S
from ketasim.sweep.core import (
    SweepError,
    apply_sample,
    parse_vary,
    read_sweep,
    run_sweep,
    sample_seed,
)

pytestmark = pytest.mark.usefixtures("private_home")

TINY = """
name: review_tiny
species: mouse
seed: 11
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

CALIB = """
name: review_calib
species: mouse
seed: 3
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 30min, 1h, 2h, 4h]}
"""

# two log-scaled parameters (high / low >= 10) and one linear one (ratio 6)
LOG_A, LOG_B, LIN = "sig.da_gain", "sig.pka_gain", "pk.mouse.ketamine.cl"
NAMES = [LOG_A, LOG_B, LIN]
COEF = np.array([1.0, 2.0, 0.1])


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _scale_width(registry, name, log):
    p = registry[name]
    return (math.log10(p.high) - math.log10(p.low)) if log else (p.high - p.low)


def _linear_y(samples: pd.DataFrame, logs) -> np.ndarray:
    """y = sum a_i g_i(x_i), g = log10 on a log-scaled parameter: additive, so its
    first-order and total indices are a_i^2 w_i^2 / 12 over their sum (w_i the width
    of the range on the sampling scale) and its Morris elementary effects a_i w_i."""
    cols = [np.log10(samples[n].to_numpy()) if lg else samples[n].to_numpy()
            for n, lg in zip(NAMES, logs, strict=True)]
    return np.column_stack(cols) @ COEF


def _fake_sweep(logs, calls):
    """A sweep that evaluates the known function instead of simulating: one summary
    row per sample (ketamine arm, readout da_rel at 2 h), in shuffled row order."""

    def sweep(scenario, samples, out, *, seed=None, registry=None, **kw):
        calls.append(len(samples))
        y = _linear_y(samples, logs)
        df = pd.DataFrame({"sample": np.arange(len(samples)), "arm": "ketamine",
                           "assay": "signaling_state", "readout": "da_rel", "time_h": 2.0,
                           "unit": "1", "n": 2, "mean": y, "sem": 0.1})
        # a saline row per sample, which the selection must leave out
        other = df.assign(arm="saline", mean=-1.0)
        return pd.concat([df, other]).sample(frac=1.0, random_state=0)

    return sweep


# ------------------------------------------------------------------ sensitivity
def test_problem_takes_registry_ranges_and_log_scales_wide_positive_ones(registry):
    prob = S.problem_from_registry(registry, NAMES)
    assert prob["bounds"] == [[registry[n].low, registry[n].high] for n in NAMES]
    assert prob["log_scale"] == [True, True, False]
    assert prob["dists"] == ["logunif", "logunif", "unif"]
    # forced choices
    assert S.problem_from_registry(registry, NAMES, log_scale=False)["dists"] == ["unif"] * 3
    assert S.problem_from_registry(registry, NAMES, log_scale=[LIN])["log_scale"] == [
        False, False, True]


def test_samples_are_salibs_and_log_scaled_where_documented(registry):
    prob = S.problem_from_registry(registry, NAMES)
    salib = {k: prob[k] for k in ("num_vars", "names", "bounds", "dists")}
    got = S.sample(prob, "sobol", 256, seed=4)
    ref = salib_sobol_sample.sample(dict(salib), 256, calc_second_order=False,
                                    scramble=True, seed=4)
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-12)
    assert len(got) == 256 * (3 + 2) == S.n_simulations(prob, "sobol", 256)
    # log-uniform: log10 of the values uniform between log10(low) and log10(high)
    for name, log in zip(NAMES, prob["log_scale"], strict=True):
        p = registry[name]
        x = got[name].to_numpy()
        assert x.min() >= p.low and x.max() <= p.high
        u = ((np.log10(x) - math.log10(p.low)) / (math.log10(p.high) - math.log10(p.low))
             if log else (x - p.low) / (p.high - p.low))
        assert stats.kstest(u, "uniform").pvalue > 0.01, name
    m = S.sample(prob, "morris", 6, seed=2)
    mref = salib_morris_sample.sample(dict(salib), 6, num_levels=4, seed=2)
    np.testing.assert_allclose(m.to_numpy(), mref, rtol=1e-12)
    # Morris levels of a log-scaled parameter are evenly spaced in log10
    lv = np.unique(np.round(np.log10(m[LOG_A].to_numpy()), 9))
    np.testing.assert_allclose(np.diff(lv), np.diff(lv)[0], atol=1e-9)


def test_sobol_indices_equal_salibs_and_the_analytic_ones(tmp_path, registry):
    prob = S.problem_from_registry(registry, NAMES)
    calls = []
    out = S.run_sensitivity(load_scenario_text(TINY), "da_rel", tmp_path / "sob",
                            names=NAMES, method="sobol", n=1024, arm="ketamine",
                            time_h="2h", seed=3, registry=registry,
                            sweep=_fake_sweep(prob["log_scale"], calls))
    assert calls == [1024 * 5]
    table = pd.read_csv(out / "indices.csv")
    samples = pd.read_csv(out / "samples.csv", index_col="sample")
    y = _linear_y(samples, prob["log_scale"])
    np.testing.assert_allclose(samples["value"], y, rtol=1e-12)  # the readout per sample
    ref = salib_sobol_analyze.analyze({k: prob[k] for k in ("num_vars", "names", "bounds",
                                                            "dists")},
                                      samples["value"].to_numpy(), calc_second_order=False,
                                      num_resamples=1000, conf_level=0.95, seed=3)
    var = np.array([(a * _scale_width(registry, n, lg)) ** 2 / 12
                    for a, n, lg in zip(COEF, NAMES, prob["log_scale"], strict=True)])
    analytic = var / var.sum()
    np.testing.assert_allclose(analytic, [1 / 6, 2 / 3, 1 / 6], rtol=1e-9)
    for idx in ("S1", "ST"):
        t = table[table["index"] == idx].set_index("parameter").loc[NAMES]
        np.testing.assert_allclose(t["value"], ref[idx], rtol=1e-6)
        np.testing.assert_allclose(t["value"] - t["ci_low"], ref[f"{idx}_conf"], rtol=1e-6)
        np.testing.assert_allclose(t["value"], analytic, atol=0.03)
    assert list(table.drop_duplicates("parameter")["scale"]) == ["log", "log", "linear"]
    man = json.loads((out / "manifest.json").read_text())
    assert [(p["name"], p["low"], p["high"], p["scale"]) for p in man["parameters"]] == [
        (n, registry[n].low, registry[n].high, s)
        for n, s in zip(NAMES, ["log", "log", "linear"], strict=True)]


def test_morris_indices_equal_salibs_and_the_exact_elementary_effects(tmp_path, registry):
    prob = S.problem_from_registry(registry, NAMES)
    calls = []
    out = S.run_sensitivity(load_scenario_text(TINY), "da_rel", tmp_path / "mor",
                            names=NAMES, method="morris", n=5, arm="ketamine",
                            time_h=2, seed=1, registry=registry,
                            sweep=_fake_sweep(prob["log_scale"], calls))
    assert calls == [5 * 4]
    t = pd.read_csv(out / "indices.csv")
    samples = pd.read_csv(out / "samples.csv", index_col="sample")
    x, y = samples[NAMES].to_numpy(), samples["value"].to_numpy()
    ref = salib_morris_analyze.analyze({k: prob[k] for k in ("num_vars", "names", "bounds",
                                                             "dists")},
                                       x, y, num_levels=4, seed=1)
    ms = t[t["index"] == "mu_star"].set_index("parameter").loc[NAMES, "value"]
    mu = t[t["index"] == "mu"].set_index("parameter").loc[NAMES, "value"]
    sd = t[t["index"] == "sigma"].set_index("parameter").loc[NAMES, "value"]
    np.testing.assert_allclose(ms, ref["mu_star"], rtol=1e-9)
    np.testing.assert_allclose(mu, ref["mu"], rtol=1e-9)
    np.testing.assert_allclose(sd, ref["sigma"], rtol=1e-9, atol=1e-9)
    # a linear function on the sampling scale: every elementary effect is a_i * w_i
    # (the change over the whole range; SALib divides the step's change by 2/3)
    exact = [a * _scale_width(registry, n, lg)
             for a, n, lg in zip(COEF, NAMES, prob["log_scale"], strict=True)]
    np.testing.assert_allclose(ms, np.abs(exact), rtol=1e-7)
    np.testing.assert_allclose(mu, exact, rtol=1e-7)
    np.testing.assert_allclose(sd, 0.0, atol=1e-6)
    assert (t["trajectories"] == 5).all()


def test_morris_mu_star_is_the_change_per_whole_range_as_documented(registry):
    """Documented (module docstring, target_sensitivity, the figure's axis): mu_star is
    the readout's change per the parameter's whole range on its sampling scale (SALib
    divides the change over a 2/3-of-the-range step by 2/3)."""
    from ketasim.report.sensitivity_figures import indices_figure

    prob = S.problem_from_registry(registry, [LIN])
    s = S.sample(prob, "morris", 4, seed=0)
    p = registry[LIN]
    assert (p.low, p.high) == (2.0, 12.0)
    y = 3.0 * s[LIN].to_numpy()  # over the whole range [2, 12], y changes by 3 * 10
    t = S.indices(prob, "morris", s, y, seed=0)
    mu_star = t.loc[t["index"] == "mu_star", "value"].item()
    assert mu_star == pytest.approx(3.0 * (p.high - p.low)) == pytest.approx(30.0)
    module, target = (" ".join(d.split()) for d in (S.__doc__, S.target_sensitivity.__doc__))
    assert "per the parameter's whole range" in module and "2/3 of its range" not in module
    assert "per the parameter's whole range" in target
    label = indices_figure(t).axes[0].get_xlabel()
    assert "whole range" in label and "per 2/3" not in label


def test_sensitivity_bad_inputs_fail_before_the_sweep(tmp_path, registry):
    sc = load_scenario_text(TINY)

    def never(*a, **k):
        raise AssertionError("the sweep ran")

    def run(**kw):
        args = {"names": NAMES, "method": "sobol", "n": 8, "arm": "ketamine", "time_h": "2h",
                    "registry": registry, "sweep": never}
        args.update(kw)
        readout = args.pop("readout", "da_rel")
        return S.run_sensitivity(sc, readout, tmp_path / "bad", **args)

    with pytest.raises(S.SensitivityError, match=r"sig\.da_gian \(did you mean sig\.da_gain"):
        run(names=["sig.da_gian", LIN])
    for n in (0, -8, 6):
        with pytest.raises(S.SensitivityError, match=rf"^n: got {n};"):
            run(n=n)
    for n in (0, 1, -3):
        with pytest.raises(S.SensitivityError, match=rf"^n: got {n};"):
            run(method="morris", n=n)
    with pytest.raises(S.SensitivityError, match=r"^n: got 2\.5; expected a whole number"):
        run(n=2.5)
    with pytest.raises(S.SensitivityError, match=r"readout 'nope'"):
        run(readout="nope")
    with pytest.raises(S.SensitivityError, match=r"arm 'ket'"):
        run(arm="ket")
    with pytest.raises(S.SensitivityError, match=r"--at: got '3h'"):
        run(time_h="3h")
    with pytest.raises(S.SensitivityError, match=r"method: got 'fast'"):
        run(method="fast")
    with pytest.raises(S.SensitivityError, match=r"match no registry parameter"):
        run(names=["nothing.*"])
    with pytest.raises(S.SensitivityError, match="named twice: " + LIN):
        S.problem_from_registry(registry, [LIN, LIN])
    with pytest.raises(S.SensitivityError, match="named twice: " + LIN):
        run(names=[LIN, LIN])  # refused, not merged into one parameter
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ sweeps
@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory):
    sc = load_scenario_text(TINY)
    reg = load_registry()
    grid = parse_vary(["arms[*].n=2,3", "sig.da_gain=0.5:1.5:3"])
    root = tmp_path_factory.mktemp("sweeps")
    tables = {}
    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(2) as two:
        for key, ex, chunk in (("c1", one, 1), ("c4", one, 4), ("t2c2", two, 2)):
            out = run_sweep(sc, grid, root / key, executor=ex, chunk_samples=chunk,
                            progress=False, registry=reg)
            tables[key] = read_sweep(out)
    # the default backend: an embedded Dask cluster (one worker process)
    tables["dask"] = read_sweep(run_sweep(sc, grid, root / "dask", workers=1,
                                          chunk_samples=3, progress=False, registry=reg))
    return sc, reg, grid, tables


def test_vary_grid_is_the_full_product_first_spec_slowest():
    g = parse_vary(["arms[*].n=2,3", "sig.da_gain=0.5:1.5:3"])
    assert list(g.columns) == ["arms[*].n", "sig.da_gain"]
    assert g["arms[*].n"].dtype == np.int64
    assert g.values.tolist() == [[2, 0.5], [2, 1.0], [2, 1.5], [3, 0.5], [3, 1.0], [3, 1.5]]


def test_sweep_every_point_once_with_its_values_whatever_the_chunks(sweep_runs):
    sc, reg, grid, tables = sweep_runs
    ref = tables["c1"]
    for key in ("c4", "t2c2", "dask"):
        pd.testing.assert_frame_equal(tables[key], ref)
    assert sorted(ref["sample"].unique()) == list(range(len(grid)))
    assert ref["sample"].is_monotonic_increasing
    for k, row in grid.iterrows():
        part = ref[ref["sample"] == k]
        assert (part["arms[*].n"] == row["arms[*].n"]).all()
        assert (part["sig.da_gain"] == row["sig.da_gain"]).all()
        assert set(part["n"]) == {row["arms[*].n"]}  # each arm ran with that n
        # the very run that sample k documents: its values, seed sample_seed(seed, k)
        sc_k, reg_k = apply_sample(sc, reg, row.to_dict())
        direct = summarize(simulate(sc_k, seed=sample_seed(sc.seed, k),
                                    registry=reg_k).readouts)
        got = part.drop(columns=["sample", "arms[*].n", "sig.da_gain"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, direct[list(got.columns)].reset_index(drop=True),
                                      check_dtype=False)


def test_sweep_bad_values_name_row_column_and_range(tmp_path):
    sc = load_scenario_text(TINY)
    reg = load_registry()
    p = reg["sig.da_gain"]
    with pytest.raises(SweepError, match=rf"samples row 2 \(sample 2\): sig\.da_gain: got "
                       rf"4\.0; expected a value within the parameter's range \[{p.low:g}, "
                       rf"{p.high:g}\]"):
        run_sweep(sc, parse_vary("sig.da_gain=1,2,4"), tmp_path / "a", progress=False,
                  executor=ThreadPoolExecutor(1))
    with pytest.raises(SweepError, match=r"name 'sig\.da_gian': not a parameter of the "
                       r"registry \(did you mean 'sig\.da_gain'\?\)"):
        run_sweep(sc, parse_vary("sig.da_gian=1"), tmp_path / "b", progress=False,
                  executor=ThreadPoolExecutor(1))
    with pytest.raises(SweepError, match=r"chunk_samples: got 0"):
        run_sweep(sc, parse_vary("sig.da_gain=1"), tmp_path / "c", progress=False,
                  chunk_samples=0, executor=ThreadPoolExecutor(1))
    with pytest.raises(SweepError, match=r"--vary 'sig\.da_gain=1:2:0'"):
        parse_vary("sig.da_gain=1:2:0")
    assert not any((tmp_path / d).exists() and any((tmp_path / d).iterdir())
                   for d in "abc")


# ------------------------------------------------------------------ calibration
def test_priors_scale_and_names(registry):
    pri = C.priors(registry, [LOG_A, LIN])
    assert [(p.scale, p.low, p.high) for p in pri] == [
        ("log10", registry[LOG_A].low, registry[LOG_A].high),
        ("lin", registry[LIN].low, registry[LIN].high)]
    assert pri[0].bounds == pytest.approx((math.log10(registry[LOG_A].low),
                                           math.log10(registry[LOG_A].high)))
    narrowed = C.priors(registry, [LIN], bounds={LIN: (3.0, 9.0)})[0]
    assert (narrowed.low, narrowed.high) == (3.0, 9.0)
    with pytest.raises(C.CalibrationError, match=r"'sig\.da_gian' is not a registry"):
        C.priors(registry, ["sig.da_gian"])
    with pytest.raises(C.CalibrationError, match="given twice"):
        C.priors(registry, [LIN, LIN])
    with pytest.raises(C.CalibrationError, match="needs low < high"):
        C.priors(registry, [LIN], bounds={LIN: (5.0, 5.0)})


def test_bounds_outside_the_registry_range_are_refused(registry):
    p = registry[LIN]
    for wide in ((p.low / 10, p.high * 10), (p.low, p.high * 2), (p.low - 1, p.high)):
        with pytest.raises(C.CalibrationError, match=rf"^bounds: {LIN}: got \[.*\], outside "
                           rf"the registry range \[{p.low:g}, {p.high:g}\]; bounds may "
                           "only narrow it"):
            C.priors(registry, [LIN], bounds={LIN: wide})
    # the registry range itself and narrower ones stay allowed
    assert C.priors(registry, [LIN], bounds={LIN: (p.low, p.high)})[0].high == p.high


# truth and a linear model in the sampling-scale parameters (log10 da_gain, cl)
TRUTH = {LOG_A: 1.6, LIN: 5.0}
TIMES = [0.25, 0.5, 1.0, 2.0, 4.0]
JAC = np.array([[2.0, 0.10], [1.0, 0.30], [0.5, -0.20], [-1.0, 0.05], [0.3, 0.40]])
SEM = np.array([0.05, 0.08, 0.04, 0.10, 0.06])
NOISE = np.array([0.03, -0.05, 0.02, 0.07, -0.04])


def _u(values):
    return np.array([math.log10(values[LOG_A]), values[LIN]])


def _fake_simulate(self, values, seed=None, with_sem=False):
    y = JAC @ _u(values) + 1.0
    return (y, np.full(len(y), 0.01)) if with_sem else y


def _data():
    mean = JAC @ _u(TRUTH) + 1.0 + NOISE
    return pd.DataFrame({"arm": "ket", "readout": "da_rel", "time_h": TIMES,
                         "mean": mean, "sem": SEM})


def _wls():
    """The weighted least-squares fit and its covariance: the exact MLE of a linear
    model with Gaussian errors of known SD."""
    w = 1.0 / SEM ** 2
    y = _data()["mean"].to_numpy() - 1.0
    info = JAC.T @ (w[:, None] * JAC)
    u_hat = np.linalg.solve(info, JAC.T @ (w * y))
    return u_hat, np.linalg.inv(info)


def test_mle_recovers_the_wls_fit_and_its_hessian_standard_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(C._Model, "simulate", _fake_simulate)
    out = C.calibrate(load_scenario_text(CALIB), _data(), [LOG_A, LIN], tmp_path / "ml",
                      method="likelihood", starts=2, seed=0)
    u_hat, cov = _wls()
    se = np.sqrt(np.diag(cov))
    est = pd.read_csv(out / "estimates.csv").set_index("parameter").loc[[LOG_A, LIN]]
    np.testing.assert_allclose(np.log10(est.loc[LOG_A, "estimate"]), u_hat[0], atol=2e-4)
    np.testing.assert_allclose(est.loc[LIN, "estimate"], u_hat[1], atol=2e-3)
    assert abs(np.log10(est.loc[LOG_A, "estimate"]) - math.log10(TRUTH[LOG_A])) < 3 * se[0]
    assert abs(est.loc[LIN, "estimate"] - TRUTH[LIN]) < 3 * se[1]
    np.testing.assert_allclose(est["se_on_scale"], se, rtol=1e-3)
    z = stats.norm.ppf(0.95)  # the default level 0.90
    np.testing.assert_allclose(est.loc[LOG_A, ["ci_low", "ci_high"]].astype(float),
                               10 ** (u_hat[0] + np.array([-z, z]) * se[0]), rtol=1e-3)
    np.testing.assert_allclose(est.loc[LIN, ["ci_low", "ci_high"]].astype(float),
                               u_hat[1] + np.array([-z, z]) * se[1], rtol=1e-3)
    assert list(est["scale"]) == ["log10", "lin"] and not est["at_bound"].any()
    man = json.loads((out / "manifest.json").read_text())
    np.testing.assert_allclose(man["covariance_on_scale"], cov, rtol=2e-3, atol=1e-9)
    w = 1 / SEM ** 2
    resid = _data()["mean"].to_numpy() - 1.0 - JAC @ u_hat
    assert man["objective_weighted_ss"] == pytest.approx(np.sum(w * resid ** 2), rel=1e-4)
    assert man["dof"] == len(TIMES) - 2


def test_mle_at_a_bound_keeps_the_hessian_steps_inside_the_range(tmp_path, monkeypatch,
                                                                 registry):
    """Data whose best fit lies beyond the registry's upper bound of the linear
    parameter: the estimate sits at that bound (flagged), no simulation leaves the
    range, and the one-sided Hessian of the (quadratic) objective is still the exact
    one; the report says the standard error there is not a valid Wald one."""
    seen = []

    def recording(self, values, seed=None, with_sem=False):
        seen.append(dict(values))
        return _fake_simulate(self, values, seed, with_sem)

    monkeypatch.setattr(C._Model, "simulate", recording)
    # at the registry's upper bound plus a push in LIN that is W-orthogonal to the
    # da_gain column: the constrained fit has LIN at its bound and da_gain at 1.6
    w = 1 / SEM ** 2
    c = (JAC[:, 0] * w) @ JAC[:, 1] / ((JAC[:, 0] * w) @ JAC[:, 0])
    push = 20.0 * (JAC[:, 1] - c * JAC[:, 0])
    far = _data().assign(mean=JAC @ _u({LOG_A: 1.6, LIN: registry[LIN].high}) + 1.0 + push)
    out = C.calibrate(load_scenario_text(CALIB), far, [LOG_A, LIN], tmp_path / "edge",
                      method="likelihood", starts=1, seed=0)
    est = pd.read_csv(out / "estimates.csv").set_index("parameter")
    assert est.loc[LIN, "estimate"] == pytest.approx(registry[LIN].high)
    assert est.loc[LOG_A, "estimate"] == pytest.approx(1.6, rel=1e-3)
    assert bool(est.loc[LIN, "at_bound"]) and not bool(est.loc[LOG_A, "at_bound"])
    for name in (LOG_A, LIN):
        p = registry[name]
        v = np.array([s[name] for s in seen])
        assert (v >= p.low * (1 - 1e-12)).all() and (v <= p.high * (1 + 1e-12)).all(), name
    _, cov = _wls()
    np.testing.assert_allclose(est.loc[[LOG_A, LIN], "se_on_scale"], np.sqrt(np.diag(cov)),
                               rtol=1e-3)
    man = json.loads((out / "manifest.json").read_text())
    assert LIN in man["hessian_note"] and "not valid Wald" in man["hessian_note"]
    assert "not valid Wald" in (out / "report.html").read_text()
    assert "not valid Wald" in C.__doc__


def test_mle_recovers_a_parameter_of_the_real_simulator(tmp_path, registry):
    """Data simulated at a known value (the same seed: noise-free recovery)."""
    sc = load_scenario_text(CALIB)
    truth = {LOG_A: 1.6}
    res = simulate(sc, registry=registry.with_values(truth))
    summ = summarize(res.readouts)
    data = summ[summ["readout"] == "da_rel"][["arm", "readout", "time_h", "mean", "sem"]]
    assert (data["sem"] > 0).all() and len(data) == 5
    out = C.calibrate(sc, data, [LOG_A], tmp_path / "real", method="likelihood", starts=1)
    est = pd.read_csv(out / "estimates.csv").set_index("parameter").loc[LOG_A]
    assert est["estimate"] == pytest.approx(truth[LOG_A], rel=0.01)
    assert est["ci_low"] < truth[LOG_A] < est["ci_high"]
    pred = pd.read_csv(out / "predictive.csv")
    np.testing.assert_allclose(pred["sim_estimate"], data["mean"], rtol=0.02)


def test_abc_posterior_recovers_the_fit_and_is_reported_as_stored(tmp_path, monkeypatch):
    import pyabc

    monkeypatch.setattr(C._Model, "simulate", _fake_simulate)
    out = C.calibrate(load_scenario_text(CALIB), _data(), [LOG_A, LIN], tmp_path / "abc",
                      method="abc", population=60, generations=6, seed=1,
                      predictive_draws=4)
    post = pd.read_parquet(out / "posterior.parquet")
    u_hat, cov = _wls()
    se = np.sqrt(np.diag(cov))
    assert post["weight"].sum() == pytest.approx(1.0)
    # every particle's distance is its own weighted SS (rows aligned with the values)
    u = np.column_stack([np.log10(post[LOG_A]), post[LIN]])
    ss = np.sum(((u @ JAC.T + 1.0 - _data()["mean"].to_numpy()) / SEM) ** 2, axis=1)
    np.testing.assert_allclose(post["distance"], ss, rtol=1e-9)
    # the same particles and weights as pyabc's database
    h = pyabc.History(f"sqlite:///{out / 'abc.db'}")
    df, w = h.get_distribution(m=0, t=h.max_t)
    np.testing.assert_allclose(post[LOG_A], 10 ** df["p0"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(post[LIN], df["p1"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(post["weight"], w / w.sum(), rtol=1e-12)
    # the posterior concentrates on the fit: its 90% interval holds it, and it is
    # within 3 standard errors of the truth
    man = json.loads((out / "manifest.json").read_text())
    summ = {r["parameter"]: r for r in man["summary"]}
    assert summ[LOG_A]["q05"] <= 10 ** u_hat[0] <= summ[LOG_A]["q95"]
    assert summ[LIN]["q05"] <= u_hat[1] <= summ[LIN]["q95"]
    assert abs(math.log10(summ[LOG_A]["median"]) - math.log10(TRUTH[LOG_A])) < 3 * se[0]
    assert abs(summ[LIN]["median"] - TRUTH[LIN]) < 3 * se[1]
    assert summ[LIN]["mean"] == pytest.approx(float(np.sum(post[LIN] * post["weight"])))
    assert summ[LOG_A]["prior"] == "log-uniform" and summ[LIN]["prior"] == "uniform"
    assert man["generations"][-1]["epsilon"] < man["generations"][1]["epsilon"]


def test_calibration_bad_inputs_name_the_argument(tmp_path, monkeypatch):
    monkeypatch.setattr(C._Model, "simulate", _fake_simulate)
    sc = load_scenario_text(CALIB)
    with pytest.raises(C.CalibrationError, match=r"params: 'sig\.nope' is not a registry"):
        C.calibrate(sc, _data(), ["sig.nope"], tmp_path / "a")
    with pytest.raises(C.CalibrationError, match=r"--population: got 0"):
        C.calibrate(sc, _data(), [LIN], tmp_path / "b", population=0)
    with pytest.raises(C.CalibrationError, match=r"method: got 'mcmc'"):
        C.calibrate(sc, _data(), [LIN], tmp_path / "c", method="mcmc")
    bad = _data().assign(readout="nope")
    with pytest.raises(C.CalibrationError, match=r"readout 'nope'"):
        C.calibrate(sc, bad, [LIN], tmp_path / "d")
    bad = _data().assign(time_h=[0.25, 0.5, 1.0, 2.0, 3.0])
    with pytest.raises(C.CalibrationError, match=r"not at 3 h"):
        C.calibrate(sc, bad, [LIN], tmp_path / "e")
    assert not any((tmp_path / d).exists() for d in "abcde")


# ------------------------------------------------------------------ power
def _pool(rng, effect, ns, cohorts, arms=("ctl", "drug")):
    need = max(ns) * cohorts
    parts = []
    for k, arm in enumerate(arms):
        parts.append(pd.DataFrame({"arm": arm, "subject": np.arange(need),
                                   "assay": "x", "readout": "score", "time_h": 24.0,
                                   "value": rng.normal(k * effect, 1.0, need),
                                   "unit": "1"}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("effect", [0.0, 1.2, 50.0])
def test_power_is_the_fraction_significant_with_scipys_wilson_interval(rng, effect):
    ns, cohorts, alpha = [3, 5], 40, 0.05
    pool = _pool(rng, effect, ns, cohorts)
    t = power_table(pool, readout="score", time_h=24.0, arms=["ctl", "drug"],
                    test="welch_t", ns=[5, 3, 5], cohorts=cohorts, alpha=alpha)
    assert list(t["n"]) == ns
    for n, row in zip(ns, t.itertuples(), strict=True):
        hits = 0
        for k in range(cohorts):  # cohort k: subjects k*max(ns) .. k*max(ns)+n-1
            sel = pool[(pool["subject"] >= k * 5) & (pool["subject"] < k * 5 + n)]
            a = sel.loc[sel["arm"] == "ctl", "value"].to_numpy()
            b = sel.loc[sel["arm"] == "drug", "value"].to_numpy()
            hits += stats.ttest_ind(a, b, equal_var=False).pvalue < alpha
        assert row.power == hits / cohorts
        ci = stats.binomtest(int(hits), cohorts).proportion_ci(0.95, method="wilson")
        assert row.ci_low == pytest.approx(ci.low, abs=1e-12)
        assert row.ci_high == pytest.approx(ci.high, abs=1e-12)
        assert row.cohorts == cohorts and row.alpha == alpha
    if effect == 50.0:
        assert (t["power"] == 1.0).all() and (t["ci_high"] == 1.0).all()


def test_power_bad_inputs_name_the_argument(rng):
    pool = _pool(rng, 1.0, [4], 3)
    kw = {"readout": "score", "time_h": 24.0, "arms": ["ctl", "drug"], "test": "welch_t"}
    with pytest.raises(PowerError, match=r"^ns \[1, 4\]"):
        power_table(pool, ns=[1, 4], cohorts=3, **kw)
    with pytest.raises(PowerError, match=r"^ns \[\]"):
        power_table(pool, ns=[], cohorts=3, **kw)
    for cohorts in (0, -2, 2.5):
        with pytest.raises(PowerError, match=rf"^cohorts {cohorts!r}"):
            power_table(pool, ns=[4], cohorts=cohorts, **kw)
    for alpha in (0.0, 1.0, -0.1):
        with pytest.raises(PowerError, match=rf"^alpha {alpha!r}"):
            check_power_arguments([4], 3, alpha)
    with pytest.raises(PowerError, match=r"^readout 'nope': not measured by the scenario "
                       r".*; it measures score$"):
        power_table(pool, ns=[4], cohorts=3, **(kw | {"readout": "nope"}))
    with pytest.raises(PowerError, match=r"^readout 'score': not measured by assay 'y' .*"
                       r"it measures no readout$"):
        power_table(pool, ns=[4], cohorts=3, **(kw | {"assay": "y"}))
    with pytest.raises(PowerError, match=r"has 12 of the 15 subjects"):
        power_table(pool, ns=[5], cohorts=3, **kw)


def test_power_curve_refuses_an_unmeasured_readout_before_simulating(monkeypatch,
                                                                   registry):
    from ketasim.experiment import power as P

    sc = load_scenario_text(TINY + """compare:
  - {readout: da_rel, at: 2h, arms: [saline, ketamine], test: welch_t}
""")
    bad = sc.model_copy(update={"compare": [sc.compare[0].model_copy(
        update={"readout": "nope"})]})

    def never(*a, **k):
        raise AssertionError("simulated")

    monkeypatch.setattr(P, "simulate", never)
    with pytest.raises(PowerError, match=r"^readout 'nope': not measured by the compared "
                       r"arms of scenario 'review_tiny'; it measures .*da_rel"):
        P.power_curve(bad, 0, [2], cohorts=2, registry=registry)


def test_contrast_arm_subtracts_per_sample(tmp_path, registry):
    prob = S.problem_from_registry(registry, NAMES)
    out = S.run_sensitivity(load_scenario_text(TINY), "da_rel", tmp_path / "con",
                            names=NAMES, method="morris", n=2, time_h="2h",
                            contrast_arm="saline", seed=0, registry=registry,
                            sweep=_fake_sweep(prob["log_scale"], []))
    s = pd.read_csv(out / "samples.csv", index_col="sample")
    # arm defaults to the one other arm (ketamine); saline is -1 in every sample
    np.testing.assert_allclose(s["value"], _linear_y(s, prob["log_scale"]) + 1.0)


# ------------------------------------------------------------------ command line
@pytest.mark.parametrize(("args", "message"), [
    (["sensitivity", "{sc}", "--readout", "nope", "--params", LIN, "--out", "{out}"],
     "readout 'nope'"),
    (["sensitivity", "{sc}", "--readout", "da_rel", "--arm", "ketamine", "--at", "2h",
      "--params", LIN, "--n", "0", "--out", "{out}"], "n: got 0"),
    (["sensitivity", "{sc}", "--readout", "da_rel", "--arm", "ketamine", "--at", "2h",
      "--params", "sig.nope", "--out", "{out}"], "not in the registry: sig.nope"),
    (["sensitivity", "{sc}", "--readout", "da_rel", "--arm", "ketamine", "--at", "2h",
      "--params", f"{LIN},{LIN}", "--out", "{out}"], f"named twice: {LIN}"),
    (["sweep", "{sc}", "--vary", "sig.da_gain=0.1:1:2", "--out", "{out}"],
     "expected a value within the parameter's range"),
])
def test_cli_bad_inputs_are_one_clear_error(tmp_path, args, message):
    from typer.testing import CliRunner

    from ketasim.cli import app

    sc = tmp_path / "tiny.yaml"
    sc.write_text(TINY)
    r = CliRunner().invoke(app, [a.format(sc=sc, out=tmp_path / "out") for a in args])
    assert r.exit_code != 0
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
