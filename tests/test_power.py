"""Power by simulation: group-size parsing, power of strong and null effects, seeds,
cohort layout, agreement with ``stats.compare``, pinned values, layering, and atomic
output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis import power
from ketasim.analysis.power import POWER_COLUMNS, PowerError, parse_n_range, power_table
from ketasim.analysis.stats import compare
from ketasim.cli import _write_power as write_power
from ketasim.experiment import power as experiment_power
from ketasim.experiment.power import power_curve
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.report import power as report_power
from ketasim.report.power import plot_power
from ketasim.scenario import load_scenario, load_scenario_text

NULL_YAML = """
name: null_psd95
description: two identical saline arms
species: mouse
seed: 7
arms:
  - name: saline_a
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: western_blot, at: [2h, 24h]}]
  - name: saline_b
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: western_blot, at: [2h, 24h]}]
compare:
  - {readout: psd95_rel, assay: western_blot, at: 24h, arms: [saline_a, saline_b]}
"""

REG = load_registry()


@pytest.fixture(scope="module")
def default_scenario():
    return load_scenario("default")


@pytest.fixture(scope="module")
def null_scenario():
    return load_scenario_text(NULL_YAML)


@pytest.fixture(scope="module")
def strong_curve(default_scenario):
    return power_curve(default_scenario, 1, [2, 3, 4, 6, 8], cohorts=200, registry=REG)


# --------------------------------------------------------------------------- #
# parse_n_range
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("text, expected", [
    ("4:20", list(range(4, 21))),
    ("4:20:2", list(range(4, 21, 2))),
    ("4:10:3", [4, 7, 10]),
    ("5:5", [5]),
    ("6,8,12", [6, 8, 12]),
    (" 12, 6 ,8,8 ", [6, 8, 12]),
    ("2", [2]),
])
def test_parse_n_range_good(text, expected):
    assert parse_n_range(text) == expected


@pytest.mark.parametrize("text", [
    "", "  ", "a:b", "4:", ":20", "4:20:0", "4:20:-1", "20:4", "1:5", "0,4", "4,,8",
    "4:8:2:1", "4;8", "4.5:8", "4:8,10", "-3:4",
])
def test_parse_n_range_bad(text):
    with pytest.raises(PowerError) as err:
        parse_n_range(text)
    msg = str(err.value)
    assert repr(text) in msg and "START:STOP" in msg and "6,8,12" in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- #
# Power of a strong and of a null effect
# --------------------------------------------------------------------------- #


def test_strong_effect_power_rises_with_n(strong_curve):
    df = strong_curve
    assert list(df.columns) == POWER_COLUMNS
    assert df["n"].tolist() == [2, 3, 4, 6, 8]
    pw = df["power"].to_numpy()
    assert pw[0] < 0.7  # two mice per arm are not enough
    assert np.all(np.diff(pw) >= -0.02) and pw[-1] > pw[0] + 0.3
    assert pw[-1] >= 0.9
    assert np.all((df["ci_low"] <= df["power"]) & (df["power"] <= df["ci_high"]))
    assert np.all((df["ci_low"] >= 0) & (df["ci_high"] <= 1))
    row = df.iloc[0]
    assert (row["readout"], row["time_h"], row["test"], row["groups"], row["cohorts"],
            row["alpha"]) == ("da_pct_baseline", 1.0, "welch_t", "saline;ketamine", 200, 0.05)


def test_null_effect_power_is_alpha(null_scenario):
    df = power_curve(null_scenario, 0, [4, 6, 10], cohorts=400, alpha=0.05, registry=REG)
    pw = df["power"].to_numpy()
    assert np.all(pw <= 0.12), pw
    assert pw.max() >= 0.02, pw  # the test does reject sometimes
    last = df.iloc[-1]  # at n = 10 Welch's t holds its level
    assert last["ci_low"] <= 0.05 <= last["ci_high"], last
    # pinned (values of ketasim.analysis.power.power_curve before the layer split; [24,
    # 27, 19] -> these when each western blot session got its own noise stream keyed by
    # its time, 2026-12-06)
    assert (df["power"] * 400).round().astype(int).tolist() == [15, 21, 27]
    np.testing.assert_allclose(df["ci_low"], [0.022855, 0.034592, 0.046801], atol=1e-6)
    np.testing.assert_allclose(df["ci_high"], [0.060944, 0.078922, 0.096427], atol=1e-6)


def test_strong_curve_pinned(strong_curve):
    """Regression pin: the values of ``ketasim.analysis.power.power_curve`` before the
    split into analysis (tables), experiment (simulation) and report (figure); 83 -> 84
    hits at n = 2 when the pyramidal shutdown (a basal-release term of at most 2% at 10
    mg/kg) entered the glutamate equation; [84, 154, 197] -> [85, 153, 198] at n = 2-4 when
    HNK's AMPA potency was fitted to T-CMP-23 (ketamine's own HNK adds AMPA drive); -> [71,
    154, 197] when each microdialysis sample got its own noise stream keyed by its time
    (2026-12-06; the readout's distribution is unchanged: 400 mice per arm give the same
    means and SDs within sampling error); -> 70 at n = 2 when the surge term came to fail
    with the pyramidal shutdown (2026-12-06; at most 4% of it at 10 mg/kg); -> [73, 156] at
    n = 2-3 when AMPA modulators came to scale the glutamate drive (2026-12-07: ketamine's
    own HNK potentiates its surge)."""
    hits = (strong_curve["power"] * 200).round().astype(int).tolist()
    assert hits == [73, 156, 197, 200, 200]
    np.testing.assert_allclose(strong_curve["ci_low"],
                               [0.301405, 0.717612, 0.956834, 0.981155, 0.981155], atol=1e-6)
    np.testing.assert_allclose(strong_curve["ci_high"],
                               [0.433683, 0.831835, 0.994886, 1.0, 1.0], atol=1e-6)


def test_power_table_is_power_curve_on_the_pool(default_scenario):
    """The analysis function alone, on the pooled readouts the experiment layer
    simulates, gives the same table as ``power_curve``."""
    ns, cohorts, seed = [2, 4], 30, 5
    c = default_scenario.compare[1]
    pool = experiment_power._power_scenario(default_scenario, c, max(ns) * cohorts)
    readouts = simulate(pool, seed=seed, registry=REG).readouts
    table = power_table(readouts, readout=c.readout, time_h=c.at, arms=c.arms, test=c.test,
                        ns=ns, cohorts=cohorts, alpha=0.05, assay=c.assay)
    curve = power_curve(default_scenario, 1, ns, cohorts=cohorts, seed=seed, registry=REG)
    pd.testing.assert_frame_equal(table, curve, check_exact=True)
    with pytest.raises(PowerError, match="cohorts"):
        power_table(readouts, readout=c.readout, time_h=c.at, arms=c.arms, test=c.test,
                    ns=ns, cohorts=0)
    # subject ids that do not start at 0 left the first cohorts empty (NaN p, counted
    # as not significant): now one error naming the arm
    shifted = readouts.assign(subject=readouts["subject"] + 1000)
    with pytest.raises(PowerError, match=r"arm 'saline': .* has 0 of the 120 subjects"):
        power_table(shifted, readout=c.readout, time_h=c.at, arms=c.arms, test=c.test,
                    ns=ns, cohorts=cohorts)


def test_power_curve_passes_registry_to_simulate(null_scenario, monkeypatch):
    from ketasim.params import load_registry

    seen = {}
    real = experiment_power.simulate

    def spy(scenario, seed=None, *, registry, **kwargs):
        seen["registry"] = registry
        return real(scenario, seed=seed, registry=registry, **kwargs)

    monkeypatch.setattr(experiment_power, "simulate", spy)
    registry = load_registry()
    a = power_curve(null_scenario, 0, [3], cohorts=5, seed=2, registry=registry)
    assert seen["registry"] is registry
    with pytest.raises(TypeError, match="registry"):
        power_curve(null_scenario, 0, [3], cohorts=5, seed=2)  # no silent defaults
    assert not a.empty


def test_wilson_interval_is_statsmodels(strong_curve):
    from statsmodels.stats.proportion import proportion_confint

    hits = np.rint(strong_curve["power"] * 200).astype(int)
    lo, hi = proportion_confint(hits, 200, alpha=0.05, method="wilson")
    np.testing.assert_allclose(strong_curve["ci_low"], np.clip(lo, 0, 1))
    np.testing.assert_allclose(strong_curve["ci_high"], np.clip(hi, 0, 1))


# --------------------------------------------------------------------------- #
# Seeds
# --------------------------------------------------------------------------- #


def test_same_seed_same_table_different_seed_different(default_scenario):
    args = (default_scenario, 0, [2, 3, 4, 5])
    a = power_curve(*args, cohorts=100, seed=11, registry=REG)
    b = power_curve(*args, cohorts=100, seed=11, registry=REG)
    c = power_curve(*args, cohorts=100, seed=12, registry=REG)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not a["power"].equals(c["power"])
    # pinned (values of ketasim.analysis.power.power_curve before the layer split, then
    # [0.15, 0.26, 0.45, 0.65] -> [0.13, 0.3, 0.49, 0.68] with the fitted HNK AMPA
    # potency, T-CMP-23; -> [0.13, 0.31, 0.49, 0.7] with sig.k_synthesis 1/h and the
    # structural refit; -> [0.06, 0.19, 0.42, 0.66] with the microdialysis samples' streams
    # keyed by time; -> these when AMPA modulators came to scale the glutamate drive)
    assert a["power"].tolist() == [0.06, 0.21, 0.47, 0.69]
    np.testing.assert_allclose(a["ci_low"], [0.027786, 0.141657, 0.375108, 0.593739],
                               atol=1e-6)


# --------------------------------------------------------------------------- #
# Cohort layout and agreement with stats.compare
# --------------------------------------------------------------------------- #


def test_cohorts_are_disjoint_and_sizes_nested():
    ns, cohorts = [3, 5, 8], 25
    sets = power._cohort_index_sets(ns, cohorts)
    assert set(sets) == {(k, n) for k in range(cohorts) for n in ns}
    used = [set(np.concatenate([sets[k, n] for n in ns]).tolist()) for k in range(cohorts)]
    for k in range(cohorts):
        for j in range(k + 1, cohorts):
            assert used[k].isdisjoint(used[j]), (k, j)
    for k in range(cohorts):
        for n in ns:
            assert len(sets[k, n]) == n == len(set(sets[k, n].tolist()))
            assert set(sets[k, 3].tolist()) <= set(sets[k, n].tolist())  # common numbers
    assert max(max(v) for v in sets.values()) == max(ns) * cohorts - 1  # pool fully used


def test_cohort_zero_is_a_run_with_n_subjects(null_scenario, default_scenario):
    """Cohort 0 at size n gives the p value ``compare`` gives for a run with n per arm."""
    for scenario, index, n in ((null_scenario, 0, 5), (default_scenario, 0, 6)):
        c = scenario.compare[index]
        reduced = experiment_power._power_scenario(scenario, c, 3 * n)
        assert [a.name for a in reduced.arms] == c.arms
        assert all(s.assay == c.assay for a in reduced.arms for s in a.assays)
        arms = power._arm_values(simulate(reduced, seed=3, registry=REG).readouts, c.readout, c.at,
                                 c.arms, c.assay)
        p = power._p_values(arms, c.test, [2, n], 3)
        assert p.shape == (2, 3) and np.all(np.isfinite(p))
        assert len(set(p[1].tolist())) == 3  # cohorts differ
        small = scenario.model_copy(update={
            "arms": [a.model_copy(update={"n": n}) for a in scenario.arms]})
        expected = compare(simulate(small, seed=3, registry=REG).readouts, [c])["p"].iloc[0]
        assert p[1, 0] == pytest.approx(expected, rel=1e-6)


def test_undefined_test_counts_as_not_significant():
    subject = np.arange(8)
    good = np.array([1.0, 1.1, 0.9, 1.2, 5.0, 5.1, 4.9, 5.2])
    holes = good.copy()
    holes[[0, 1, 2]] = np.nan  # cohort 0 (subjects 0-3) keeps one finite value in this arm
    p = power._p_values([(subject, good), (subject, holes + 10)], "welch_t", [4], 2)
    assert np.isnan(p[0, 0]) and p[0, 1] < 0.05
    assert power._count_significant(p, 0.05).tolist() == [1]
    assert power._count_significant(np.array([[np.nan, 0.01, 0.05, 0.2]]), 0.05).tolist() == [1]


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


def test_compare_index_out_of_range(default_scenario):
    for bad in (2, -1, 7):
        with pytest.raises(PowerError, match=r"out of range.*valid: 0\.\.1"):
            power_curve(default_scenario, bad, [4], registry=REG)


def test_scenario_without_compare(null_scenario):
    bare = null_scenario.model_copy(update={"compare": []})
    with pytest.raises(PowerError, match="no 'compare' entries"):
        power_curve(bare, 0, [4], registry=REG)


@pytest.mark.parametrize("kwargs, match", [
    ({"ns": []}, "ns"), ({"ns": [1, 4]}, "ns"), ({"ns": [4], "cohorts": 0}, "cohorts"),
    ({"ns": [4], "alpha": 1.5}, "alpha"), ({"ns": [1000], "cohorts": 1000}, "at most"),
])
def test_bad_arguments(null_scenario, kwargs, match):
    with pytest.raises(PowerError, match=match):
        power_curve(null_scenario, 0, **kwargs, registry=REG)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def test_write_power_writes_both_files(strong_curve, tmp_path):
    out = write_power(strong_curve, tmp_path / "power_out")
    assert sorted(p.name for p in out.iterdir()) == ["power.csv", "power.png"]
    back = pd.read_csv(out / "power.csv")
    assert list(back.columns) == POWER_COLUMNS
    np.testing.assert_allclose(back["power"], strong_curve["power"])
    assert (out / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = plot_power(strong_curve, tmp_path / "again.png")
    assert png.stat().st_size > 5000


def test_write_power_failure_leaves_nothing(strong_curve, tmp_path, monkeypatch):
    def broken(df, path):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_power, "plot_power", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_power(strong_curve, tmp_path / "power_out")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- #
# Layering
# --------------------------------------------------------------------------- #


def _ketasim_imports(module) -> set[str]:
    """Every ``ketasim...`` module a source file imports (at any depth of the file)."""
    import ast
    import inspect

    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_layering_of_the_power_modules():
    analysis = _ketasim_imports(power)
    assert all(not m.startswith("ketasim") or m.startswith("ketasim.analysis")
               for m in analysis), analysis
    assert not any(m.startswith("matplotlib") for m in analysis), analysis
    experiment = _ketasim_imports(experiment_power)
    banned = ("ketasim.scenario", "ketasim.io", "ketasim.report", "matplotlib")
    assert not any(m.startswith(banned) for m in experiment), experiment


def test_report_power_leaves_the_backend_alone(tmp_path):
    """Importing the figure module sets no global backend, and it draws a PNG whatever
    backend is in use (here svg)."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib, pandas as pd\n"
        "matplotlib.use('svg')\n"
        "from ketasim.report.power import plot_power\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "df = pd.read_csv(sys.argv[1])\n"
        "plot_power(df, sys.argv[2])\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    pd.DataFrame({"n": [2, 4], "power": [0.3, 0.9], "ci_low": [0.2, 0.8],
                  "ci_high": [0.4, 0.95], "cohorts": 20, "alpha": 0.05, "test": "welch_t",
                  "readout": "psd95_rel", "time_h": 24.0, "groups": "a;b"},
                 columns=POWER_COLUMNS).to_csv(tmp_path / "t.csv", index=False)
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.csv"),
                          str(tmp_path / "t.png")], capture_output=True, text=True, check=False,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analysis_power_does_not_load_matplotlib():
    import subprocess
    import sys

    code = ("import sys, ketasim.analysis.power; "
            "bad = sorted(m for m in sys.modules if m.startswith('matplotlib') or ("
            "m.startswith('ketasim.') and not m.startswith(('ketasim.analysis', "
            "'ketasim._jitcache')))); assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         timeout=120)
    assert res.returncode == 0, res.stderr
