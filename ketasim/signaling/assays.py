"""Signalling assays: microdialysis dopamine, western blots, and the latent state.

- ``microdialysis_da``: each sample is the mean extracellular dopamine over its
  collection interval (``interval_min``, default 20 min, ending at the sample time),
  with proportional noise (``cv``); values are % of the subject's mean pre-drug
  baseline samples (t <= 0), or of its true baseline when no such sample was taken.
- ``microdialysis_glu``: the same for extracellular glutamate (the signalling layer's
  glutamate release), with its own noise stream; dialysate glutamate varies more from
  sample to sample than dopamine (``cv`` 0.15 by default, assumed).
- ``western_blot``: band density relative to the reference (x baseline), log-normal
  noise (``cv``, 15% by default) on each protein.
- ``signaling_state``: the model's latent drives without noise, for inspection and for
  the next layers' tests (no lab measures these directly).
"""

from __future__ import annotations

import numpy as np

from ketasim.core.assay import RODENTS, Assay, AssayContext, AssayRows, Readout
from ketasim.signaling.spec import OUTPUTS

_N_WINDOW = 5  # points per microdialysis collection interval (trapezoid rule)


def _dialysis_times(at: np.ndarray, options: dict) -> np.ndarray:
    width = float(options["interval_min"]) / 60.0
    offsets = np.linspace(-width, 0.0, _N_WINDOW)
    return np.unique((np.asarray(at)[:, None] + offsets[None, :]).ravel())


def _dialysis(output: str, readout: str, key: str):
    """The measure function of a microdialysis assay of the signalling output ``output``
    (x baseline), reported as ``readout`` (% of the pre-drug samples) with noise from
    the stream ``key``."""

    def measure(ctx: AssayContext, at: np.ndarray) -> AssayRows:
        width = float(ctx.options["interval_min"]) / 60.0
        offsets = np.linspace(-width, 0.0, _N_WINDOW)
        grid = (at[:, None] + offsets[None, :])
        x = ctx.trajectory(output, grid.ravel()).reshape(ctx.n, len(at), _N_WINDOW)
        w = np.full(_N_WINDOW, 1.0)
        w[0] = w[-1] = 0.5
        mean_x = (x * w).sum(axis=2) / w.sum() if width > 0 else x[:, :, -1]
        z = ctx.noise_at(key, at)
        cv = float(ctx.options["cv"])
        sigma = np.sqrt(np.log1p(cv**2))
        sample = mean_x * np.exp(sigma * z - sigma**2 / 2)
        pre = at <= 0.0
        baseline = (sample[:, pre].mean(axis=1, keepdims=True) if pre.any()
                    else np.ones((ctx.n, 1)))
        pct = 100.0 * sample / baseline
        return ctx.rows(pct[:, :, None], at, [readout], ["% baseline"])

    return measure


_WB = {
    "bdnf_rel": "bdnf_rel", "perk_rel": "perk_rel", "pmtor_rel": "pmtor_rel",
    "peef2_rel": "peef2_rel", "psd95_rel": "psd95_rel", "glua1_rel": "glua1_rel",
}


def _measure_wb(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    readouts = list(_WB)
    true = np.stack([ctx.trajectory(_WB[r], at) for r in readouts], axis=2)
    z = ctx.noise_at("western_blot", at, true.shape[2:])
    sigma = np.sqrt(np.log1p(float(ctx.options["cv"]) ** 2))
    return ctx.rows(true * np.exp(sigma * z - sigma**2 / 2), at, readouts,
                               ["x baseline"] * len(readouts))


_STATE = {
    "plasticity_potential": "plasticity_potential", "formation_drive": "formation_drive",
    "elimination_drive": "elimination_drive", "activity_drive": "activity_drive",
    "synaptic_protein": "synaptic_protein", "glutamate_surge": "glutamate_surge",
    "da_rel": "da_rel", "pka_rel": "pka_rel", "stress_load": "stress_load",
    "occupancy_interneuron": "occupancy_interneuron",
    "occupancy_pyramidal": "occupancy_pyramidal", "pyramidal_shutdown": "pyramidal_shutdown",
    "rest_block_pyramidal": "rest_block_pyramidal", "ampa_drive": "ampa_drive",
    "synaptic_potentiation": "synaptic_potentiation",
    "structural_formation": "structural_formation",
    "reward_potentiation": "reward_potentiation",
    # the striatal branch: the lesion's time course, D1 supersensitivity, dyskinesia
    # priming and ketamine's resistance to it (0 or 1 where they do not apply)
    "da_terminals": "da_terminals", "d1_sensitivity": "d1_sensitivity",
    "d1_drive": "d1_drive", "lid_priming": "lid_priming", "lid_resistance": "lid_resistance",
}


def _measure_state(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    units = _UNITS
    readouts = list(_STATE)
    vals = np.stack([ctx.trajectory(_STATE[r], at) for r in readouts], axis=2)
    return ctx.rows(vals, at, readouts, [units[_STATE[r]] for r in readouts])


_UNITS = {o[0]: o[2] for o in OUTPUTS}

MICRODIALYSIS_DA = Assay(
    "microdialysis_da", "extracellular dopamine by microdialysis (% baseline)",
    (Readout("da_pct_baseline", "% baseline"),),
    _dialysis("da_rel", "da_pct_baseline", "microdialysis_da"), outputs=("da_rel",),
    sample_times=_dialysis_times, options={"interval_min": 20.0, "cv": 0.1},
    positive=("interval_min",), regions=("mpfc", "striatum"),
    species=RODENTS)
MICRODIALYSIS_GLU = Assay(
    "microdialysis_glu", "extracellular glutamate by microdialysis (% baseline)",
    (Readout("glu_pct_baseline", "% baseline"),),
    _dialysis("glutamate_surge", "glu_pct_baseline", "microdialysis_glu"),
    outputs=("glutamate_surge",), sample_times=_dialysis_times,
    options={"interval_min": 20.0, "cv": 0.15}, positive=("interval_min",),
    regions=("mpfc", "striatum"), species=RODENTS)
WESTERN_BLOT = Assay(
    "western_blot", "synaptoneurosome western blot of the region (x baseline)",
    tuple(Readout(r, "x baseline") for r in _WB), _measure_wb, outputs=tuple(_WB.values()),
    options={"cv": 0.15}, regions=("mpfc", "striatum"), terminal=True,
    species=RODENTS)
SIGNALING_STATE = Assay(
    "signaling_state", "latent signalling drives (model inspection, no noise)",
    tuple(Readout(r, _UNITS[o]) for r, o in _STATE.items()), _measure_state,
    outputs=tuple(_STATE.values()), regions=("mpfc", "striatum"))
