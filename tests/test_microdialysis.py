"""Microdialysis of dopamine and glutamate: each sample is the mean of the signalling
layer's extracellular level over its collection interval, with proportional noise, as %
of the subject's pre-drug samples; the two analytes have noise streams of their own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()

SCENARIO = """
name: dialysis
species: rat
seed: 5
arms:
  - name: ketamine
    n: {n}
    protocol:
      - {{at: 0h, drug: ketamine, dose: 20 mg/kg, route: ip}}
    assays:
{assays}"""


def _run(assays: str, n: int = 4) -> pd.DataFrame:
    return simulate(load_scenario_text(SCENARIO.format(n=n, assays=assays)),
                    registry=REG).readouts


def _values(r: pd.DataFrame, readout: str, t_h: float) -> np.ndarray:
    sel = (r["readout"] == readout) & np.isclose(r["time_h"], t_h)
    return r.loc[sel].sort_values("subject")["value"].to_numpy(float)


def test_glutamate_sample_is_the_fraction_mean_of_the_release_without_noise():
    """With cv 0 the 20-40 min sample is 100 x the trapezoid mean of the glutamate
    release at 20, 25, 30, 35 and 40 min over the pre-drug sample (release 1 at rest):
    not the level at the sample's end, which is higher or lower while it changes."""
    grid = [20, 25, 30, 35, 40]
    r = _run("      - {assay: microdialysis_glu, at: [0h, 40min], options: {cv: 0}}\n"
             "      - {assay: signaling_state, at: [" + ", ".join(f"{m}min" for m in grid)
             + "]}\n")
    levels = np.stack([_values(r, "glutamate_surge", m / 60) for m in grid])
    w = np.array([0.5, 1, 1, 1, 0.5])
    expected = 100 * (w[:, None] * levels).sum(axis=0) / w.sum()
    np.testing.assert_allclose(_values(r, "glu_pct_baseline", 0.0), 100.0)
    np.testing.assert_allclose(_values(r, "glu_pct_baseline", 40 / 60), expected,
                               rtol=1e-9)
    assert np.all(expected > 150)  # 20 mg/kg raises it (T-DR-01)
    assert not np.allclose(expected, 100 * levels[-1], rtol=1e-3)


def test_glutamate_noise_has_its_cv_and_leaves_dopamine_alone():
    """Pre-drug samples vary around their mean with the option's CV (log-normal, mean
    1), and the glutamate samples' noise is a stream of its own: adding them to an arm
    leaves its dopamine samples identical."""
    times = "[-100min, -80min, -60min, -40min, -20min, 0h, 40min]"
    da = f"      - {{assay: microdialysis_da, at: {times}}}\n"
    glu = f"      - {{assay: microdialysis_glu, at: {times}, options: {{cv: 0.2}}}}\n"
    alone = _run(da, n=60)
    both = _run(da + glu, n=60)
    a = alone[alone["assay"] == "microdialysis_da"].reset_index(drop=True)
    b = both[both["assay"] == "microdialysis_da"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pre = np.stack([_values(both, "glu_pct_baseline", t / 60)
                    for t in (-100, -80, -60, -40, -20, 0)])
    ratios = pre / pre.mean(axis=0)  # each rat's samples over its own mean
    assert np.std(ratios, ddof=1) * np.sqrt(6 / 5) == pytest.approx(0.2, rel=0.15)
    dopa = np.stack([_values(both, "da_pct_baseline", t / 60)
                     for t in (-100, -80, -60, -40, -20, 0)])
    # independent draws: the two analytes' scatter around each rat's mean is
    # uncorrelated (one shared stream would give r near 1)
    r = np.corrcoef(np.log(ratios).ravel(), np.log(dopa / dopa.mean(axis=0)).ravel())[0, 1]
    assert abs(r) < 0.2, r
