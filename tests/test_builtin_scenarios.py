"""Every built-in scenario runs, gives finite signalling states and finite statistics, and
its numbers do not depend on the number of numba threads."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

import ketasim
from ketasim.analysis.stats import compare
from ketasim.params import load_registry
from ketasim.scenario import builtin_scenarios, load_scenario

BUILTINS = builtin_scenarios()
READOUT_COLUMNS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]


@pytest.fixture(scope="module")
def results() -> dict:
    """Cache of ``name -> (scenario, RunResult)`` so each built-in is simulated once."""
    return {}


def run_builtin(results: dict, name: str):
    """Load and simulate a built-in scenario once per module.

    Parameters
    ----------
    results : dict
        The module cache.
    name : str
        Built-in scenario name.

    Returns
    -------
    tuple
        ``(scenario, RunResult)``.
    """
    if name not in results:
        sc = load_scenario(BUILTINS[name])
        results[name] = (sc, ketasim.simulate(sc, registry=load_registry()))
    return results[name]


@pytest.fixture
def restore_numba_threads():
    """Put the numba thread count back after a test changes it."""
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def test_there_are_builtins():
    assert {"default", "cort_ketamine"} <= set(BUILTINS)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_runs_and_measures_every_arm(results, name):
    sc, res = run_builtin(results, name)
    r = res.readouts
    assert list(r.columns) == READOUT_COLUMNS
    assert res.seed == sc.seed
    for arm in sc.arms:
        got = r[r["arm"] == arm.name]
        assert sorted(set(got["subject"])) == list(range(arm.n)), arm.name
        assert set(got["assay"]) == {a.assay for a in arm.assays}, arm.name
    assert not r["value"].isin([np.inf, -np.inf]).any()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_signaling_state_has_no_nan(results, name):
    sc, res = run_builtin(results, name)
    wanted = any(a.assay == "signaling_state" for arm in sc.arms for a in arm.assays)
    sig = res.readouts[res.readouts["assay"] == "signaling_state"]
    if not wanted:
        pytest.skip(f"{name} does not measure signaling_state")
    assert len(sig) > 0
    assert np.isfinite(sig["value"].to_numpy(float)).all(), \
        sig[~np.isfinite(sig["value"])].head().to_string()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_comparisons_give_finite_p(results, name):
    sc, res = run_builtin(results, name)
    assert len(sc.compare) > 0, f"{name} asks for no statistics"
    stats = compare(res.readouts, sc.compare)
    assert len(stats) == len(sc.compare)
    for _, row in stats.iterrows():
        assert np.isfinite(row["p"]) and 0.0 <= row["p"] <= 1.0, row.to_dict()
        assert np.isfinite(row["statistic"]), row.to_dict()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_is_independent_of_numba_threads(results, restore_numba_threads, name):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with a single thread")
    sc = load_scenario(BUILTINS[name])
    numba.set_num_threads(1)
    one = ketasim.simulate(sc, registry=load_registry()).readouts
    numba.set_num_threads(2)
    two = ketasim.simulate(sc, registry=load_registry()).readouts
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    if name in results:
        pd.testing.assert_frame_equal(one, results[name][1].readouts, check_exact=True)
