"""Review checks of calibration (ketasim.sweep.calibrate and ``ketasim calibrate``) against
independent answers, beyond the synthetic MLE / ABC recovery of test_review_sensitivity:

- the PEtab export lints with petab and, simulated with libRoadRunner from its own tables
  (parameters by id, conditions applied, observables evaluated as written, measurement
  times as given), reproduces ketasim's group means at non-default values; its noise model
  and scales are the fit's: PEtab's log-likelihood of those simulations is minus half the
  likelihood fit's weighted sum of squares (plus the Gaussian constant);
- the objective of the likelihood fit at each start's end point, and each ABC particle's
  distance, equal the weighted sum of squares computed here from ketasim's own simulation
  of the whole scenario (data arms only simulated there) and the data table;
- bounds: ABC's prior draws are uniform on the documented scale and no proposal leaves
  the registry range; a fit at a log-scaled bound stays inside it;
- the fitted values, given back with ``ketasim run --set``, reproduce the fit's predictions;
- bad input is one clear error naming what and where, and nothing is written;
- the same seed gives the same fit, and the global random state is left as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.params.registry import Registry
from ketasim.scenario import load_scenario_text
from ketasim.sweep import calibrate as C

pytestmark = pytest.mark.usefixtures("private_home")

# the data arm 'ket' and an arm 'sal' the data never name (calibration simulates 'ket'
# alone: every arm has its own random streams)
SCENARIO = """
name: review_cal
species: mouse
seed: 4
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h, 2h]}
  - name: sal
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays:
      - {assay: signaling_state, at: [1h]}
"""
# three group means and a percent change of PKA from 15 min to 2 h
DATA = ("arm,readout,time_h,mean,sem,change,baseline_h\n"
        "ket,da_rel,0.25,1.7,0.1,,\n"
        "ket,da_rel,1,2.6,0.2,,\n"
        "ket,pka_rel,2,2.9,0.15,,\n"
        "ket,pka_rel,2,120,15,percent,0.25\n")
GAIN = "sig.da_gain"  # log-scaled: [0.3, 3]
LIN = "pk.mouse.ketamine.cl"  # linear: [2, 12]

# two arms that start at different times (SBML time 0 is the earlier start) and a row
# before either start (the baseline state)
PETAB_SCENARIO = """
name: review_petab
species: mouse
seed: 3
arms:
  - name: early
    n: 2
    protocol: [{at: -2h, drug: ketamine, dose: 3 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h]}
  - name: late
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [-4h, 15min, 1h, 2h]}
"""
PETAB_ROWS = [("late", "da_rel", -4.0), ("late", "da_rel", 0.25), ("late", "pka_rel", 1.0),
              ("late", "da_rel", 2.0), ("early", "da_rel", 0.25), ("early", "pka_rel", 1.0)]
PETAB_PARAMS = ["sig.da_gain", "sig.k_da"]


def _cli(args):
    from typer.testing import CliRunner

    from ketasim.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    return r, " ".join(r.output.split())


def _no_bsv(registry: Registry) -> Registry:
    """The registry without between-subject variability: every subject is the typical
    one, so a noise-free readout's group mean is the typical subject's value."""
    return Registry({k: dataclasses.replace(p, bsv_cv=0.0, bsv_corr=(), bsv_logit_sd=0.0)
                     for k, p in registry.parameters.items()})


def _group_means(readouts: pd.DataFrame) -> dict:
    return readouts.groupby(["arm", "readout", "time_h"])["value"].mean().to_dict()


def _stats_here(readouts: pd.DataFrame, data: pd.DataFrame) -> np.ndarray:
    """Each data row's statistic from simulated readouts, computed here: the group mean,
    or ``100 (m(t) / m(baseline) - 1)``."""
    m = _group_means(readouts)
    out = []
    for r in data.itertuples(index=False):
        v = m[(r.arm, r.readout, float(r.time_h))]
        if isinstance(r.change, str) and r.change == "percent":
            v = 100.0 * (v / m[(r.arm, r.readout, float(r.baseline_h))] - 1.0)
        out.append(v)
    return np.array(out)


def _ss_here(sc, registry, values, seed, data: pd.DataFrame) -> float:
    res = simulate(sc, registry=registry.with_values(values), seed=seed)
    y = _stats_here(res.readouts, data)
    return float(np.sum(((y - data["mean"].to_numpy()) / data["sem"].to_numpy()) ** 2))


def _data_frame() -> pd.DataFrame:
    import io

    return pd.read_csv(io.StringIO(DATA))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("calfiles")
    (d / "sc.yaml").write_text(SCENARIO)
    (d / "data.csv").write_text(DATA)
    return d


@pytest.fixture(scope="module")
def ml_fit(files):
    """One maximum-likelihood fit of da_gain (the defaults and one random start)."""
    return C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], files / "ml",
                       method="likelihood", starts=2, seed=0)


# --------------------------------------------------------------------------- PEtab
def _petab_simulate(yaml_file, values: dict[str, float]) -> pd.DataFrame:
    """The measurement table with a ``simulation`` column, simulated here with
    libRoadRunner from the PEtab files alone: estimated parameters set by their id to
    ``values`` (keyed by parameterName, linear scale), each condition's columns applied,
    the observable formula evaluated as written at the table's times."""
    import petab.v1 as petab
    import roadrunner
    import sympy

    problem = petab.Problem.from_yaml(str(yaml_file))
    rr = roadrunner.RoadRunner(str(yaml_file.parent / "model.xml"))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    meas = problem.measurement_df.copy()
    meas["simulation"] = np.nan
    for cid, rows in meas.groupby("simulationConditionId"):
        rr.resetAll()
        for pid, p in problem.parameter_df.iterrows():
            rr[pid] = float(values[p["parameterName"]])
        for col, v in problem.condition_df.loc[cid].items():
            if col != "conditionName":
                rr[col] = float(v)
        formulas = {o: sympy.sympify(problem.observable_df.loc[o, "observableFormula"])
                    for o in rows["observableId"].unique()}
        symbols = sorted({str(s) for f in formulas.values() for s in f.free_symbols})
        rr.timeCourseSelections = ["time", *symbols]
        times = sorted({0.0, *rows["time"].astype(float)})
        res = np.asarray(rr.simulate(times=times))
        at = {t: dict(zip(symbols, res[k, 1:], strict=True)) for k, t in enumerate(times)}
        for i, r in rows.iterrows():
            f = formulas[r["observableId"]]
            meas.loc[i, "simulation"] = float(f.subs(at[float(r["time"])]))
    return meas


@pytest.fixture(scope="module")
def petab_export(tmp_path_factory):
    import io

    d = tmp_path_factory.mktemp("petab")
    reg = _no_bsv(load_registry())
    sc = load_scenario_text(PETAB_SCENARIO)
    truth = simulate(sc, registry=reg.with_values({"sig.da_gain": 1.6, "sig.k_da": 2.0}))
    m = _group_means(truth.readouts)
    noise = np.array([0.0, 0.05, -0.1, 0.08, -0.03, 0.06])
    data = pd.DataFrame(PETAB_ROWS, columns=["arm", "readout", "time_h"])
    data["mean"] = [m[(a, r, t)] for a, r, t in PETAB_ROWS] + noise
    data["sem"] = [0.05, 0.1, 0.2, 0.15, 0.1, 0.12]
    path = d / "data.csv"
    data.to_csv(path, index=False)
    yaml_file = C.export_petab(sc, path, PETAB_PARAMS, d / "petab", registry=reg)
    return {"yaml": yaml_file, "data": pd.read_csv(io.StringIO(path.read_text())),
            "sc": sc, "reg": reg, "path": path, "dir": d}


def test_petab_lints_and_its_tables_are_the_fits_problem(petab_export):
    import petab.v1 as petab

    problem = petab.Problem.from_yaml(str(petab_export["yaml"]))
    assert petab.lint_problem(problem) is False
    data = petab_export["data"]
    pri = C.priors(petab_export["reg"], PETAB_PARAMS)
    par = problem.parameter_df
    assert list(par["parameterName"]) == PETAB_PARAMS
    assert list(par["parameterScale"]) == [p.scale for p in pri] == ["log10", "log10"]
    np.testing.assert_array_equal(par["lowerBound"], [p.low for p in pri])
    np.testing.assert_array_equal(par["upperBound"], [p.high for p in pri])
    np.testing.assert_array_equal(par["nominalValue"], [p.default for p in pri])
    assert (par["estimate"] == 1).all()
    # a uniform prior on the sampling scale, as the ABC prior
    for (_, r), p in zip(par.iterrows(), pri, strict=True):
        assert r["objectivePriorType"] == "parameterScaleUniform"
        lo, hi = map(float, r["objectivePriorParameters"].split(";"))
        assert (lo, hi) == pytest.approx((math.log10(p.low), math.log10(p.high)), abs=1e-12)
    # Gaussian noise of each row's SEM on the untransformed group mean
    obs = problem.observable_df
    assert set(obs["noiseDistribution"]) == {"normal"}
    assert set(obs["observableTransformation"]) == {"lin"}
    meas = problem.measurement_df
    assert len(meas) == len(data)
    # (to the last digit: both read back from text)
    np.testing.assert_allclose(meas["measurement"], data["mean"], rtol=1e-14)
    np.testing.assert_allclose(meas["noiseParameters"].astype(float), data["sem"], rtol=1e-14)
    assert list(meas["simulationConditionId"]) == list(data["arm"])
    # SBML time 0 is the earlier arm's start; a row before it is the baseline (time 0)
    t0 = -2.0 - 1.0  # the first dose less the hour of lead-in
    np.testing.assert_allclose(meas["time"], np.maximum(data["time_h"] - t0, 0.0))


def test_petab_tables_simulated_with_roadrunner_reproduce_ketasim(petab_export):
    values = {"sig.da_gain": 1.9, "sig.k_da": 1.1}  # not the defaults
    sim = _petab_simulate(petab_export["yaml"], values)
    res = simulate(petab_export["sc"], registry=petab_export["reg"].with_values(values))
    ours = _stats_here(res.readouts, petab_export["data"].assign(change="", baseline_h=np.nan))
    assert np.ptp(ours) > 0.5  # the rows differ: the times and conditions matter
    np.testing.assert_allclose(sim["simulation"], ours, rtol=1e-5, atol=1e-9)


def test_petab_likelihood_is_the_likelihood_fits_objective(petab_export, tmp_path):
    """Fit by maximum likelihood (typical subjects: the PEtab model is the fit's model);
    at the estimate, PEtab's log-likelihood of the roadrunner simulation is minus half
    the fit's weighted sum of squares, less the Gaussian normalising constant."""
    import petab.v1 as petab

    out = C.calibrate(petab_export["sc"], petab_export["path"], PETAB_PARAMS,
                      tmp_path / "ml", method="likelihood", starts=1,
                      registry=petab_export["reg"])
    est = pd.read_csv(out / "estimates.csv").set_index("parameter")["estimate"].to_dict()
    man = json.loads((out / "manifest.json").read_text())
    problem = petab.Problem.from_yaml(str(petab_export["yaml"]))
    sim = _petab_simulate(petab_export["yaml"], est)
    llh = petab.calculate_llh(problem.measurement_df, sim, problem.observable_df,
                              problem.parameter_df)
    sem = petab_export["data"]["sem"].to_numpy()
    const = float(np.sum(np.log(2 * np.pi * sem ** 2)))
    assert -2.0 * llh - const == pytest.approx(man["objective_weighted_ss"], rel=1e-5)
    assert man["objective_weighted_ss"] < 5.0  # a fit, not a far point


# fixed (was BUG): export_petab drops plasma_pk / brain_pk rows (readout
#   ketamine_plasma_ng_ml is not the SBML output name ketamine_plasma) though its docstring
#   exports them
def test_petab_exports_plasma_pk_rows_as_documented(tmp_path):
    sc = load_scenario_text("""
name: review_pk
species: mouse
seed: 3
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h]}
      - {assay: plasma_pk, at: [15min, 1h]}
""")
    data = pd.DataFrame({"arm": "ket", "readout": ["da_rel", "ketamine_plasma_ng_ml"],
                         "time_h": [1.0, 0.25], "mean": [2.4, 1600.0], "sem": [0.1, 50.0]})
    yaml_file = C.export_petab(sc, data, [GAIN], tmp_path / "p")
    meas = pd.read_csv(yaml_file.parent / "measurements.tsv", sep="\t")
    obs = pd.read_csv(yaml_file.parent / "observables.tsv", sep="\t").set_index(
        "observableId")
    assert len(meas) == 2
    pk = meas[meas["measurement"] == 1600.0]
    assert obs.loc[pk["observableId"].iloc[0], "observableFormula"] == "out_ketamine_plasma"


# fixed (was BUG): export_petab builds the typical subject from the mPFC registry, ignoring
#   the assay's region (striatum overrides)
def test_petab_export_of_a_striatal_assay_reproduces_ketasim(tmp_path):
    sc = load_scenario_text("""
name: review_region
species: mouse
seed: 3
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, region: striatum, at: [2h, 24h]}
""")
    reg = _no_bsv(load_registry())
    data = pd.DataFrame({"arm": "ket", "readout": "formation_drive", "time_h": [2.0, 24.0],
                         "mean": [1.0, 1.2], "sem": [0.1, 0.1]})
    # sig.da_gain has a striatal value of its own (region.striatum.sig.da_gain), which
    # export_petab refuses to fit through the mPFC entry: fit a parameter both regions share
    gain = "sig.pka_gain"
    yaml_file = C.export_petab(sc, data, [gain], tmp_path / "p", registry=reg)
    sim = _petab_simulate(yaml_file, {gain: reg[gain].value})
    ours = _stats_here(simulate(sc, registry=reg).readouts,
                       data.assign(change="", baseline_h=np.nan))
    np.testing.assert_allclose(sim["simulation"], ours, rtol=1e-4)


# fixed (was BUG): export_petab's arm slugs collide (arms 'ket-10' and 'ket_10' both become
#   'ket_10'): duplicate ids, lint fails
def test_petab_export_of_arms_whose_names_differ_in_punctuation(tmp_path):
    sc = load_scenario_text("""
name: review_slug
species: mouse
seed: 3
arms:
  - name: ket-10
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: signaling_state, at: [1h]}]
  - name: ket_10
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 3 mg/kg, route: ip}]
    assays: [{assay: signaling_state, at: [1h]}]
""")
    data = pd.DataFrame({"arm": ["ket-10", "ket_10"], "readout": "da_rel",
                         "time_h": [1.0, 1.0], "mean": [2.4, 1.6], "sem": [0.1, 0.1]})
    yaml_file = C.export_petab(sc, data, [GAIN], tmp_path / "p")
    cond = pd.read_csv(yaml_file.parent / "conditions.tsv", sep="\t")
    assert cond["conditionId"].nunique() == 2


def test_petab_bounds_narrowed_change_scale_and_prior(tmp_path):
    """Narrowed bounds (a factor < 10) give a linear prior: the parameter table says the
    same as the priors the fit uses."""
    sc = load_scenario_text(SCENARIO)
    data = _data_frame().iloc[:3]
    yaml_file = C.export_petab(sc, data, [GAIN], tmp_path / "p", bounds={GAIN: (0.8, 2.0)})
    par = pd.read_csv(yaml_file.parent / "parameters.tsv", sep="\t").iloc[0]
    p = C.priors(load_registry(), [GAIN], {GAIN: (0.8, 2.0)})[0]
    assert (par["parameterScale"], par["lowerBound"], par["upperBound"]) == (p.scale, 0.8, 2.0)
    assert p.scale == "lin" and par["objectivePriorParameters"] == "0.8;2.0"
    # the percent-change row is not one model quantity: left out, and said so
    assert len(pd.read_csv(yaml_file.parent / "measurements.tsv", sep="\t")) == 3
    C.export_petab(sc, _data_frame(), [GAIN], tmp_path / "q")
    assert "percent change" in (tmp_path / "q" / "README.md").read_text()


# --------------------------------------------------------------------------- objective
def test_likelihood_objective_is_the_weighted_ss_computed_here(ml_fit, files):
    """At each start's end point (and at the defaults, the predictive table's reference),
    the objective is sum(((sim - mean) / sem)^2) of ketasim's own simulation of the
    whole scenario at the scenario's seed, with the percent change computed here."""
    sc = load_scenario_text(SCENARIO)
    reg = load_registry()
    data = _data_frame()
    starts = pd.read_csv(ml_fit / "starts.csv")
    assert len(starts) == 2 and starts[GAIN].nunique() == 2  # two distinct points
    for _, r in starts.iterrows():
        ss = _ss_here(sc, reg, {GAIN: float(r[GAIN])}, sc.seed, data)
        assert r["weighted_ss"] == pytest.approx(ss, rel=1e-9, abs=1e-12)
    man = json.loads((ml_fit / "manifest.json").read_text())
    assert man["objective_weighted_ss"] == pytest.approx(starts["weighted_ss"].min(),
                                                         rel=1e-12)
    pred = pd.read_csv(ml_fit / "predictive.csv")
    res = simulate(sc, registry=reg, seed=sc.seed)
    np.testing.assert_allclose(pred["sim_default"], _stats_here(res.readouts, data),
                               rtol=1e-10)
    # the far point costs more than the fit
    assert _ss_here(sc, reg, {GAIN: 0.4}, sc.seed, data) > 10 * man["objective_weighted_ss"]


def test_abc_distance_is_each_particles_weighted_ss_computed_here(files, tmp_path):
    """Each posterior particle's distance is the weighted SS of its own simulated
    experiment (model seed: the particle's), simulated here with the whole scenario."""
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN, LIN], tmp_path / "abc",
                      population=4, generations=2, seed=5, predictive_draws=0)
    post = pd.read_parquet(out / "posterior.parquet")
    sc = load_scenario_text(SCENARIO)
    reg = load_registry()
    data = _data_frame()
    assert len(post) == 4
    for _, r in post.iterrows():
        values = {GAIN: float(r[GAIN]), LIN: float(r[LIN])}
        seed = C.particle_seed(5, values)
        assert seed != C.particle_seed(6, values)
        assert r["distance"] == pytest.approx(_ss_here(sc, reg, values, seed, data),
                                              rel=1e-9)
    assert (post["distance"] > 0).all() and post["distance"].nunique() == 4


# --------------------------------------------------------------------------- bounds
def _fake_factory(jac, offset, seen):
    """A fast model of the sampling-scale values (recording every simulated point)."""
    def fake(self, values, seed=None, with_sem=False):
        seen.append(dict(values))
        u = np.array([p.to_scale(values[p.name]) for p in self.priors], float)
        y = offset + jac[: len(self.rows), : len(u)] @ u
        return (y, np.full(len(y), 0.01)) if with_sem else y
    return fake


def test_abc_prior_draws_are_uniform_on_the_documented_scale(files, tmp_path, monkeypatch):
    """One generation (an infinite first threshold): the posterior is the prior sample.
    da_gain ([0.3, 3], a factor 10) is log-uniform, ketamine clearance ([2, 12]) uniform;
    every simulated value lies in the registry range."""
    seen: list[dict] = []
    jac = np.array([[1.0, 0.1], [0.5, 0.2], [0.2, -0.1], [-0.3, 0.05]])
    monkeypatch.setattr(C._Model, "simulate", _fake_factory(jac, 1.0, seen))
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN, LIN], tmp_path / "prior",
                      population=300, generations=1, seed=2, predictive_draws=0)
    post = pd.read_parquet(out / "posterior.parquet")
    reg = load_registry()
    assert len(post) == 300
    g, c = post[GAIN].to_numpy(), post[LIN].to_numpy()
    lo, hi = math.log10(reg[GAIN].low), math.log10(reg[GAIN].high)
    assert stats.kstest(np.log10(g), stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    assert stats.kstest(g, stats.uniform(reg[GAIN].low, reg[GAIN].high
                                         - reg[GAIN].low).cdf).pvalue < 1e-6
    assert stats.kstest(c, stats.uniform(reg[LIN].low, reg[LIN].high - reg[LIN].low).cdf
                        ).pvalue > 1e-3
    for name in (GAIN, LIN):
        v = np.array([s[name] for s in seen])
        assert reg[name].low <= v.min() and v.max() <= reg[name].high, name


def test_abc_perturbations_never_leave_the_range(files, tmp_path, monkeypatch):
    """Data best fitted beyond the upper bound of the clearance and the lower bound of
    da_gain: the posterior crowds the bounds, pyabc's perturbations cross them, and no
    simulation is run there (nor outside narrowed bounds)."""
    seen: list[dict] = []
    jac = np.array([[1.0, 0.1], [0.5, 0.2], [0.2, -0.1], [-0.3, 0.05]])
    data = _data_frame().iloc[:3].copy()
    u_far = np.array([math.log10(0.2), 14.0])  # outside both ranges
    data["mean"] = 1.0 + jac[:3] @ u_far
    data["sem"] = 0.01
    monkeypatch.setattr(C._Model, "simulate", _fake_factory(jac, 1.0, seen))
    out = C.calibrate(files / "sc.yaml", data, [GAIN, LIN], tmp_path / "edge",
                      population=30, generations=4, seed=3, predictive_draws=5,
                      bounds={LIN: (3.0, 11.0)})
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["generations"]) == 4
    post = pd.read_parquet(out / "posterior.parquet")
    assert post[LIN].median() > 10.0  # crowding the (narrowed) upper bound
    reg = load_registry()
    # the first call is the registry defaults (the predictive table's reference)
    assert seen[0] == {GAIN: reg[GAIN].value, LIN: reg[LIN].value}
    v = pd.DataFrame(seen[1:])
    assert len(v) > 4 * 30
    assert v[LIN].min() >= 3.0 and v[LIN].max() <= 11.0
    assert v[GAIN].min() >= reg[GAIN].low and v[GAIN].max() <= reg[GAIN].high


# fixed (was BUG): a log-scaled estimate at its bound is 10**log10(low) =
#   0.29999999999999993 < low: outside the registry range, and 'ketasim run --set' refuses
#   the fitted value
def test_a_fit_at_a_log_scaled_bound_stays_in_the_range(files, tmp_path, monkeypatch):
    seen: list[dict] = []
    orig = C._Model.simulate

    def recording(self, values, seed=None, with_sem=False):
        seen.append(dict(values))
        return orig(self, values, seed, with_sem)

    monkeypatch.setattr(C._Model, "simulate", recording)
    flat = _data_frame().iloc[:2].assign(mean=[1.0, 1.0], sem=[0.05, 0.05])  # no rise
    out = C.calibrate(files / "sc.yaml", flat, [GAIN], tmp_path / "low",
                      method="likelihood", starts=1)
    est = pd.read_csv(out / "estimates.csv").set_index("parameter").loc[GAIN]
    assert bool(est["at_bound"])
    low = load_registry()[GAIN].low
    assert est["estimate"] >= low
    assert min(s[GAIN] for s in seen) >= low
    r, text = _cli(["run", files / "sc.yaml", "--out", tmp_path / "run",
                    "--set", f"{GAIN}={float(est['estimate'])!r}"])
    assert r.exit_code == 0, text


# --------------------------------------------------------------------------- outputs
def test_fitted_values_with_set_reproduce_the_fit_in_ketasim_run(ml_fit, files, tmp_path):
    est = pd.read_csv(ml_fit / "estimates.csv")
    assert list(est["parameter"]) == [GAIN]
    value = float(est["estimate"].iloc[0])
    reg = load_registry()
    assert reg[GAIN].low <= value <= reg[GAIN].high and value != reg[GAIN].value
    r, text = _cli(["run", files / "sc.yaml", "--out", tmp_path / "run",
                    "--set", f"{GAIN}={value!r}"])
    assert r.exit_code == 0, text
    summ = pd.read_csv(tmp_path / "run" / "summary.csv")
    m = summ.groupby(["arm", "readout", "time_h"])["mean"].first().to_dict()
    data = _data_frame()
    ran = []
    for row in data.itertuples(index=False):
        v = m[(row.arm, row.readout, float(row.time_h))]
        if row.change == "percent":
            v = 100.0 * (v / m[(row.arm, row.readout, float(row.baseline_h))] - 1.0)
        ran.append(v)
    pred = pd.read_csv(ml_fit / "predictive.csv")
    np.testing.assert_allclose(pred["sim_estimate"], ran, rtol=1e-9)
    # the run's manifest records the fitted value as a changed registry value
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    changed = {c["name"]: c for c in man["registry"]["changed"]}
    assert changed[GAIN]["value"] == pytest.approx(value, rel=1e-15)
    # the fit's manifest: the prior from the registry, and the data it read
    fit = json.loads((ml_fit / "manifest.json").read_text())
    (p,) = fit["parameters"]
    assert (p["name"], p["low"], p["high"], p["scale"], p["default"]) == (
        GAIN, reg[GAIN].low, reg[GAIN].high, "log10", reg[GAIN].value)
    assert fit["data"]["rows"] == 4 and fit["method"] == "likelihood"


# --------------------------------------------------------------------------- bad input
BAD = [
    ("ket_arm", "arm,readout,time_h,mean,sem\nsham,da_rel,1,2,0.1\n", [],
     ["row 1", "no arm 'sham'"]),
    ("readout", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,0.1\nket,dopamine,1,2,0.1\n",
     [], ["row 2", "readout 'dopamine'"]),
    ("time", "arm,readout,time_h,mean,sem\nket,da_rel,3,2,0.1\n", [],
     ["row 1", "measures 'da_rel' at 0.25, 1, 2 h, not at 3 h"]),
    ("missing_mean", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,0.1\nket,da_rel,2,,0.1\n",
     [], ["column 'mean', row 2 (line 3): expected a finite number, got ''"]),
    ("missing_time", "arm,readout,time_h,mean,sem\nket,da_rel,,2,0.1\n", [],
     ["column 'time_h', row 1 (line 2)"]),
    ("text_sem", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,abc\n", [],
     ["column 'sem', row 1 (line 2): expected a number > 0, got 'abc'"]),
    ("negative_sem", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,-0.1\n", [],
     ["column 'sem', row 1 (line 2): expected a number > 0, got '-0.1'"]),
    ("zero_sem", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,0\n", [],
     ["column 'sem', row 1 (line 2): expected a number > 0, got '0'"]),
    ("duplicate", "arm,readout,time_h,mean,sem\nket,da_rel,1,2,0.1\nket,da_rel,1,2.5,0.1\n",
     [], ["row 2 (line 3): duplicate data row", "already in row 1 (line 2)"]),
    ("unknown_param", DATA, ["--params", "sig.da_gian"],
     ["'sig.da_gian' is not a registry parameter"]),
    ("no_range", DATA, ["--params", "chem.mw_ketamine"],
     ["chem.mw_ketamine has range [237.73, 237.73]", "needs low < high"]),
    ("set_and_fit", DATA, ["--set", f"{GAIN}=1.2"],
     [f"--set {GAIN}: also fitted here"]),
]


@pytest.mark.parametrize(("case", "text", "extra", "messages"), BAD,
                         ids=[b[0] for b in BAD])
def test_cli_bad_input_is_one_clear_error_and_nothing_is_written(files, tmp_path, case,
                                                                  text, extra, messages):
    data = tmp_path / f"{case}.csv"
    data.write_text(text)
    params = [] if "--params" in extra else ["--params", GAIN]
    r, out = _cli(["calibrate", files / "sc.yaml", "--data", data, *params, *extra,
                   "--out", tmp_path / "out", "--petab", tmp_path / "petab",
                   "--method", "likelihood"])
    assert r.exit_code == 2, out
    assert isinstance(r.exception, SystemExit)
    assert "Traceback" not in out and out.count("error:") == 1
    for m in messages:
        assert m in out, out
    if text != DATA:
        assert str(data) in out  # the file named
    assert not (tmp_path / "out").exists() and not (tmp_path / "petab").exists()


# fixed (was BUG): duplicates are checked before each row's assay and time are resolved: the
#   same measurement given twice is fitted twice
@pytest.mark.parametrize("text", [
    # an assay given on one row and not on the other: the same measurement
    ("arm,assay,readout,time_h,mean,sem\nket,,da_rel,1,2.0,0.1\n"
     "ket,signaling_state,da_rel,1,2.5,0.1\n"),
    # two times within the documented 1e-6 h tolerance of the same assay time
    "arm,readout,time_h,mean,sem\nket,da_rel,1,2.0,0.1\nket,da_rel,1.0000007,2.5,0.1\n",
], ids=["assay_given_once", "time_within_tolerance"])
def test_the_same_measurement_twice_is_a_duplicate(files, tmp_path, monkeypatch, text):
    monkeypatch.setattr(C._Model, "simulate",
                        _fake_factory(np.ones((4, 1)), 1.0, []))
    data = tmp_path / "d.csv"
    data.write_text(text)
    with pytest.raises(C.CalibrationError, match="duplicate"):
        C.calibrate(files / "sc.yaml", data, [GAIN], tmp_path / "o", method="likelihood",
                    starts=1)
    assert not (tmp_path / "o").exists()


# fixed (was BUG): a summary.csv error after a dropped row names the wrong row and line (the
#   kept rows are renumbered before parsing)
def test_a_summary_folders_errors_name_its_own_rows(tmp_path):
    head = "arm,assay,readout,time_h,unit,n,mean,sem\n"
    dropped = "ket,signaling_state,pka_rel,0.25,1,2,1.0,0\n"  # no SEM: left out
    (tmp_path / "summary.csv").write_text(
        head + dropped + "ket,signaling_state,da_rel,0.25,1,2,1.6,0.1\n"
        "ket,signaling_state,da_rel,soon,1,2,2.4,0.1\n")
    with pytest.raises(C.CalibrationError, match=r"column 'time_h', row 3 \(line 4\)"):
        C.load_data(tmp_path)


def test_a_summary_folders_dropped_rows_are_listed_and_kept_rows_numbered(tmp_path):
    head = "arm,assay,readout,time_h,unit,n,mean,sem\n"
    (tmp_path / "summary.csv").write_text(
        head + "ket,signaling_state,pka_rel,0.25,1,2,1.0,0\n"
        "ket,signaling_state,da_rel,0.25,1,2,1.6,0.1\n"
        "ket,signaling_state,da_rel,1,1,0,,\n")
    data = C.load_data(tmp_path)
    assert list(data.table["row"]) == [2]
    assert len(data.dropped) == 2
    assert "row 1 (line 2)" in data.dropped[0] and "SEM" in data.dropped[0]
    assert "row 3 (line 4)" in data.dropped[1] and "no observations" in data.dropped[1]


def _fast(monkeypatch):
    monkeypatch.setattr(C._Model, "simulate",
                        _fake_factory(np.array([[1.0, 0.1], [0.5, 0.2], [0.2, -0.1],
                                                [-0.3, 0.05]]), 1.0, []))


# fixed (was BUG): ketasim calibrate --petab writes the PEtab folder before the
#   calibration's settings are checked; a failing command leaves it behind
def test_cli_a_failing_calibration_writes_no_petab_folder(files, tmp_path, monkeypatch):
    _fast(monkeypatch)
    r, out = _cli(["calibrate", files / "sc.yaml", "--data", files / "data.csv",
                   "--params", GAIN, "--out", tmp_path / "out", "--petab",
                   tmp_path / "petab", "--population", "1"])
    assert r.exit_code == 2 and "--population: got 1" in out
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "petab").exists()


# fixed (was BUG): --petab equal to --out is not refused: with --force the calibration
#   replaces the PEtab export it just wrote, and the command still reports both
def test_cli_petab_and_out_in_one_folder(files, tmp_path, monkeypatch):
    _fast(monkeypatch)
    same = tmp_path / "same"
    r, out = _cli(["calibrate", files / "sc.yaml", "--data", files / "data.csv",
                   "--params", GAIN, "--out", same, "--petab", same, "--force",
                   "--population", "2", "--generations", "1"])
    if r.exit_code == 0:
        assert (same / "problem.yaml").is_file() and (same / "posterior.parquet").is_file()
    else:
        assert "--petab" in out and not same.exists()


def test_cli_calibrate_with_petab_writes_both(files, tmp_path, monkeypatch):
    _fast(monkeypatch)
    r, out = _cli(["calibrate", files / "sc.yaml", "--data", files / "data.csv",
                   "--params", GAIN, "--out", tmp_path / "out", "--petab",
                   tmp_path / "petab", "--population", "3", "--generations", "1"])
    assert r.exit_code == 0, out
    assert (tmp_path / "petab" / "problem.yaml").is_file()
    post = pd.read_parquet(tmp_path / "out" / "posterior.parquet")
    assert len(post) == 3 and list(post.columns) == ["generation", "particle", GAIN,
                                                      "weight", "distance"]


# --------------------------------------------------------------------------- determinism
def test_likelihood_fit_is_deterministic_given_the_seed(ml_fit, files, tmp_path):
    again = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], tmp_path / "a",
                        method="likelihood", starts=2, seed=0)
    for name in ("estimates.csv", "starts.csv", "predictive.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(ml_fit / name), pd.read_csv(again / name))
    other = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], tmp_path / "b",
                        method="likelihood", starts=2, seed=1)
    s0, s1 = pd.read_csv(ml_fit / "starts.csv"), pd.read_csv(other / "starts.csv")
    # the registry-default start is the seed's no matter; the random start is the seed's
    assert s0[GAIN].iloc[0] == s1[GAIN].iloc[0]
    assert s0[GAIN].iloc[1] != s1[GAIN].iloc[1]


def test_abc_leaves_the_global_random_state_as_it_was(files, tmp_path, monkeypatch):
    _fast(monkeypatch)
    np.random.seed(123)
    random.seed(123)
    expect_np, expect_py = np.random.random(3), random.random()
    np.random.seed(123)
    random.seed(123)
    kw = {"population": 5, "generations": 2, "seed": 9, "predictive_draws": 3}
    a = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN, LIN], tmp_path / "a", **kw)
    np.testing.assert_array_equal(np.random.random(3), expect_np)
    assert random.random() == expect_py
    np.random.seed(99)  # another global state: the same posterior
    b = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN, LIN], tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(pd.read_parquet(a / "posterior.parquet"),
                                  pd.read_parquet(b / "posterior.parquet"))
    pd.testing.assert_frame_equal(pd.read_csv(a / "predictive.csv"),
                                  pd.read_csv(b / "predictive.csv"))
    c = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN, LIN], tmp_path / "c",
                    **(kw | {"seed": 10}))
    assert not pd.read_parquet(a / "posterior.parquet")[GAIN].equals(
        pd.read_parquet(c / "posterior.parquet")[GAIN])


def test_an_unbounded_log_interval_end_is_inf_without_a_warning():
    """A weakly identified parameter's Wald interval on the log10 scale can reach far
    beyond any float: its end is inf (the manifest writes null), not an overflow warning
    (an error under the suite's warning filters)."""
    import warnings

    p = C.Prior("x", 0.005, 0.2, "log10", 0.05, "1/h")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert p.from_scale(900.0, clip=False) == np.inf
        assert p.from_scale(900.0) == 0.2 and p.from_scale(-900.0) == 0.005


def test_an_indefinite_hessian_gives_no_wald_interval():
    """A saddle (an indefinite Hessian) is no maximum of the likelihood: no standard
    errors, the note, although its inverse's diagonal is positive (+1/3 each here, which
    a check of the inverse's diagonal alone let through); a positive definite one gives
    cov = 2 H^-1."""
    saddle = np.array([[-1.0, 2.0], [2.0, -1.0]])
    assert np.all(np.diag(np.linalg.inv(saddle)) > 0)
    cov, se, note = C.wald_covariance(saddle)
    assert np.isnan(se).all() and np.isnan(cov).all() and "not positive definite" in note
    good = np.array([[4.0, 1.0], [1.0, 2.0]])
    cov, se, note = C.wald_covariance(good)
    assert note == "" and cov == pytest.approx(2.0 * np.linalg.inv(good))
    assert se == pytest.approx(np.sqrt(np.diag(2.0 * np.linalg.inv(good))))
    assert np.isnan(C.wald_covariance(np.zeros((1, 1)))[1]).all()
