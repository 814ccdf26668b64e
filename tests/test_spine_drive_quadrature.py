"""The spine engine's drives are each step's mean of the signalling outputs.

The engine steps every ``DT_H`` hours, and its rates (formation, elimination hazard,
stabilisation) are linear in the drives, so what a step needs is the drive's mean over
the step. The runner takes it by Simpson's rule from the outputs at the step's start,
middle and end; a drive sampled at the step's start instead lagged by half a step, so a
dose given at a step's start acted on nothing for the whole step.
"""

from __future__ import annotations

import numpy as np
import pytest

from ketasim.experiment import runner
from ketasim.experiment.runner import (
    QUAD_NODES,
    QUAD_WEIGHTS,
    SPINE_DRIVES,
    _run_spines,
    _spine_plan,
    quad_times,
    simulate,
)
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text
from ketasim.spines.simulate import DT_H

REG = load_registry()


class _FakeSim:
    """Signalling outputs given as functions of time, on ``grid``."""

    def __init__(self, grid, funcs, n):
        self.grid, self.funcs, self.n = grid, funcs, n

    def output(self, name):
        f = self.funcs.get(name, lambda t: np.ones_like(t))
        return np.tile(f(self.grid), (self.n, 1))


def _plan(start, end):
    """A spine plan of one mpfc_l5 branch whose engine steps start from ``start`` to
    before ``end`` (h), recording at 0 h, without photoactivation or imaging."""
    return {"grid": np.arange(start, end, DT_H), "t0": start, "record": [0.0],
            "branches": 1, "cell": "mpfc_l5", "photo": np.zeros(0), "imaging": []}


def test_simpson_weights_integrate_cubics_exactly():
    assert np.isclose(QUAD_WEIGHTS.sum(), 1.0)
    for k in range(4):  # the mean of x^k over [0, 1] is 1 / (k + 1)
        assert np.isclose(QUAD_WEIGHTS @ QUAD_NODES ** k, 1.0 / (k + 1))


def test_engine_receives_each_steps_mean(monkeypatch):
    plan = _plan(-12.0, 30.0)
    grid = np.unique(quad_times(plan["grid"]))
    # a drive rising as a cubic from the dose at 0 h: its step means are exact
    formation = lambda t: 1.0 + 1e-4 * np.clip(t, 0.0, None) ** 3
    seen = {}

    def capture(params, seed, key, n, branches, drives, *args, **kwargs):
        seen.update(drives)

    monkeypatch.setattr(runner, "simulate_spines", capture)
    _run_spines(REG, 1, "arm", _FakeSim(grid, {"formation_drive": formation}, 2),
                grid, plan, np.arange(2))
    assert set(seen) == set(SPINE_DRIVES)
    t = plan["grid"]
    # exact means of 1 + 1e-4 max(t, 0)^3 over [t, t + 6] (no step straddles 0 h)
    exact = 1.0 + 1e-4 * (np.clip(t + DT_H, 0, None) ** 4 - np.clip(t, 0, None) ** 4) / (4 * DT_H)
    np.testing.assert_allclose(seen["formation_drive"][0], exact, rtol=1e-12)
    np.testing.assert_allclose(seen["formation_drive"][1], exact, rtol=1e-12)
    # the step that starts at the dose carries the rise within it (at its start the
    # drive is still 1)
    first = int(np.flatnonzero(t == 0.0)[0])
    assert seen["formation_drive"][0, first] > 1.0 + 1e-3
    np.testing.assert_allclose(seen["elimination_drive"], 1.0)


def test_a_missing_node_is_an_error_not_a_neighbouring_time(monkeypatch):
    plan = _plan(0.0, 18.0)
    grid = np.setdiff1d(np.unique(quad_times(plan["grid"])), [9.0])  # one midpoint left out
    monkeypatch.setattr(runner, "simulate_spines", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="lacks a node"):
        _run_spines(REG, 1, "arm", _FakeSim(grid, {}, 1), grid, plan, np.arange(1))


SCENARIO = """
name: quadrature
species: mouse
seed: 5
arms:
  - name: cort_ket
    n: 3
    protocol:
      - {at: -3d, stress: cort, duration: 3d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: two_photon_spines, at: [-1d, 0h, 1d]}
"""


def test_signalling_grid_holds_every_quadrature_node():
    sc = load_scenario_text(SCENARIO)
    arm = sc.arms[0]
    plans = runner._plans(arm, 0, "mouse")
    spine = _spine_plan(arm, plans, runner._probe_events(sc.species, arm, 0, sc.seed, REG))
    grid, names, *_ = runner._arm_layout(sc.species, arm, 0, plans, sc.seed, REG, None)
    nodes = quad_times(spine["grid"])
    assert nodes.shape == (spine["grid"].size, QUAD_NODES.size)
    np.testing.assert_allclose(nodes[:, 1] - nodes[:, 0], DT_H / 2)
    assert np.isin(nodes.ravel(), grid).all()
    assert set(SPINE_DRIVES) <= set(names)
    # and the run goes through
    assert len(simulate(sc, registry=REG).readouts) > 0
