"""The acute and the sustained path (issue 5, F-M-4, F-N-7): ketamine rescues CORT mice
within hours through the potentiation of existing synapses, before any new spine, and
the new spines carry the rescue once the potentiation has faded."""

from __future__ import annotations

import pytest

from ketasim import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

TEXT = """
name: paths
species: mouse
seed: 21
arms:
  - name: cort_saline
    n: 8
    protocol: [{at: -10d, stress: cort, duration: 10d}, {at: 0h, drug: saline, route: ip}]
    assays: [{assay: tail_suspension, at: [3h, 96h], options: {cells: 30}}]
  - name: cort_ketamine
    n: 8
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: [{assay: tail_suspension, at: [3h, 96h], options: {cells: 30}}]
"""
NO_SUSTAINED = {"sig.formation_gain": 0.0, "spine.mpfc_l5.k_restore": 0.0}  # no new spines
NO_ACUTE = {"circuit.g_potentiation": 0.0}  # no potentiation of existing synapses


def _rescue(overrides: dict) -> dict[float, float]:
    """Immobility (s) saved by ketamine vs saline in CORT mice, at 3 h and 96 h."""
    r = simulate(load_scenario_text(TEXT),
                 registry=load_registry().with_values(overrides)).readouts
    m = r[r["readout"] == "tst_immobility_s"].groupby(["arm", "time_h"])["value"].mean()
    return {t: float(m[("cort_saline", t)] - m[("cort_ketamine", t)]) for t in (3.0, 96.0)}


@pytest.fixture(scope="module")
def rescue():
    return {name: _rescue(o) for name, o in
            (("full", {}), ("no_sustained", NO_SUSTAINED), ("no_acute", NO_ACUTE))}


def test_without_new_spines_the_early_rescue_stays_and_the_late_one_goes(rescue):
    full, cut = rescue["full"], rescue["no_sustained"]
    assert full[3.0] > 40.0
    assert cut[3.0] == pytest.approx(full[3.0])  # no spine has formed by 3 h
    assert full[96.0] > 15.0
    assert cut[96.0] < full[96.0] - 15.0


def test_without_the_acute_path_the_rescue_waits_for_the_spines(rescue):
    """Without potentiation nothing happens at 3 h; part of the late rescue remains,
    carried by the new spines alone (in this calibration the spines restore only about a
    third of the functional synapses CORT removed, so the spine-only rescue is about half
    the full model's at 96 h: a known limitation, see docs/design.md)."""
    full, cut = rescue["full"], rescue["no_acute"]
    assert cut[3.0] < full[3.0] - 30.0
    assert cut[3.0] < 25.0
    assert cut[96.0] > 0.25 * full[96.0]
