"""Pharmacokinetic assays: plasma and brain drug levels by LC-MS/MS.

Noise model: log-normal proportional error (``cv``) plus additive error (``sd_add``);
values below the lower limit of quantification (``lloq``) are reported as missing
(NaN), as bioanalytical labs report BLQ samples. Brain levels assume 1 g tissue = 1 mL.
"""

from __future__ import annotations

import numpy as np

from ketasim.core.assay import Assay, AssayContext, AssayRows, Readout
from ketasim.core.streams import subject_noise

_PLASMA = {
    "ketamine_plasma_ng_ml": "ketamine_plasma",
    "esketamine_plasma_ng_ml": "esketamine_plasma",
    "arketamine_plasma_ng_ml": "arketamine_plasma",
    "norketamine_plasma_ng_ml": "norketamine_plasma",
    "hnk_plasma_ng_ml": "hnk_plasma",
}
_BRAIN = {
    "ketamine_brain_ng_g": "ketamine_brain",
    "norketamine_brain_ng_g": "norketamine_brain",
    "hnk_brain_ng_g": "hnk_brain",
}


def _lcms(name: str, mapping: dict[str, str], unit: str):
    def measure(ctx: AssayContext, at: np.ndarray) -> AssayRows:
        readouts = list(mapping)
        true = np.stack([ctx.trajectory(mapping[r], at) for r in readouts], axis=2)
        z = subject_noise(ctx.seed, ctx.arm, ctx.subjects, name, (2, *true.shape[1:]))
        cv = float(ctx.options["cv"])
        sigma = np.sqrt(np.log1p(cv**2))
        measured = np.clip(true, 0.0, None) * np.exp(sigma * z[:, 0] - sigma**2 / 2) \
            + float(ctx.options["sd_add"]) * z[:, 1]
        measured = np.where(measured < float(ctx.options["lloq"]), np.nan, measured)
        return ctx.rows(measured, at, readouts, [unit] * len(readouts))
    return measure


PLASMA_PK = Assay(
    "plasma_pk", "plasma ketamine, enantiomers and metabolites by LC-MS/MS",
    tuple(Readout(r, "ng/mL") for r in _PLASMA), _lcms("plasma_pk", _PLASMA, "ng/mL"),
    outputs=tuple(_PLASMA.values()), options={"cv": 0.1, "sd_add": 0.2, "lloq": 1.0})
BRAIN_PK = Assay(
    "brain_pk", "brain ketamine and metabolites by LC-MS/MS of homogenate",
    tuple(Readout(r, "ng/g") for r in _BRAIN), _lcms("brain_pk", _BRAIN, "ng/g"),
    outputs=tuple(_BRAIN.values()), options={"cv": 0.15, "sd_add": 1.0, "lloq": 5.0})
