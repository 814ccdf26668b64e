"""BDNF under stress and ketamine (F-M-8, F-K-10), from the western-blot assay."""

from __future__ import annotations

from ketasim import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

TEXT = """
name: bdnf
species: mouse
seed: 5
arms:
  - {name: control, n: 12, protocol: [{at: 0h, drug: saline, route: ip}],
     assays: [{assay: signaling_state, at: [0h]}, {assay: western_blot, at: [30min, 1h, 2h]}]}
  - {name: cort, n: 12, protocol: [{at: -10d, stress: cort, duration: 10d},
                                   {at: 0h, drug: saline, route: ip}],
     assays: [{assay: western_blot, at: [30min, 1h, 2h]}]}
  - {name: cort_ket, n: 12, protocol: [{at: -10d, stress: cort, duration: 10d},
                                       {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: western_blot, at: [30min, 1h, 2h]}]}
"""


def test_stress_lowers_bdnf_ketamine_reverses_and_peef2_falls():
    """Tolerance: CORT lowers BDNF by >= 15% (cohort mean at 1 h); within 2 h ketamine
    recovers >= half of the loss (F-M-8 direction, BDNF as in F-K-10/F-K-11); p-eEF2
    falls by >= 15% within the first hour after ketamine (F-K-10, Autry et al. 2011)."""
    r = simulate(load_scenario_text(TEXT), registry=load_registry()).readouts
    m = r.groupby(["arm", "readout", "time_h"])["value"].mean()
    ctrl = m.loc[("control", "bdnf_rel")].mean()
    cort = m.loc[("cort", "bdnf_rel")].mean()
    best = m.loc[("cort_ket", "bdnf_rel")].max()
    assert cort <= 0.85 * ctrl
    assert (best - cort) / (ctrl - cort) >= 0.5
    assert m.loc[("cort_ket", "peef2_rel")].min() <= 0.85 * m.loc[("cort", "peef2_rel")].mean()
