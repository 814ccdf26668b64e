"""The catalogue of assays a scenario may use.

Each assay is declared once, in its own layer's module (:class:`ketasim.core.assay.Assay`);
this catalogue only lists them. The scenario vocabulary and JSON Schema, the runner, the
run's files and the report are derived from the declarations. :func:`register_assay`
adds one at run time (a lab's own assay module, or a test's) without touching any file.
"""

from __future__ import annotations

from ketasim.behavior.assays import (
    EXTINCTION,
    HELPLESSNESS,
    OPEN_FIELD,
    SUCROSE,
    TAIL_SUSPENSION,
)
from ketasim.behavior.striatal import (
    AIMS,
    CYLINDER,
    ROTATION,
    STEPPING,
)
from ketasim.circuit.assay import CALCIUM
from ketasim.clinical.assays import (
    BPRS_POSITIVE_ASSAY,
    CADSS_ASSAY,
    GBC_ASSAY,
    HDRS17_ASSAY,
    MADRS_ASSAY,
    MRS_ASSAY,
    QIDS_SR_ASSAY,
    SEDATION_ASSAY,
)
from ketasim.clinical.dyskinesia import UDYSRS_ASSAY
from ketasim.core.assay import Assay
from ketasim.pk.assays import BRAIN_PK, PLASMA_PK
from ketasim.signaling.assays import (
    MICRODIALYSIS_DA,
    MICRODIALYSIS_GLU,
    SIGNALING_STATE,
    WESTERN_BLOT,
)
from ketasim.signaling.spec import OUTPUT_NAMES
from ketasim.spines.assays import FIXED, TWO_PHOTON, UNCAGING

ASSAYS: dict[str, Assay] = {}


def register_assay(assay: Assay) -> Assay:
    """Add (or replace) an assay. Its signalling outputs must exist in the model and its
    name and readouts must be lower-case identifiers."""
    for name in (assay.name, *assay.readout_names):
        if not (name.isidentifier() and name == name.lower()):
            raise ValueError(f"assay {assay.name!r}: names are lower-case identifiers, got "
                             f"{name!r}")
    unknown = [o for o in assay.outputs if o not in OUTPUT_NAMES]
    if unknown:
        raise ValueError(f"assay {assay.name!r}: unknown signalling outputs {unknown}")
    ASSAYS[assay.name] = assay
    return assay


for _a in (PLASMA_PK, BRAIN_PK, MICRODIALYSIS_DA, MICRODIALYSIS_GLU, WESTERN_BLOT,
           SIGNALING_STATE, TWO_PHOTON, UNCAGING, FIXED, CALCIUM, TAIL_SUSPENSION,
           OPEN_FIELD, SUCROSE, HELPLESSNESS, EXTINCTION, MADRS_ASSAY, CADSS_ASSAY,
           BPRS_POSITIVE_ASSAY, GBC_ASSAY, MRS_ASSAY, SEDATION_ASSAY, HDRS17_ASSAY,
           QIDS_SR_ASSAY, AIMS, CYLINDER, STEPPING, ROTATION, UDYSRS_ASSAY):
    register_assay(_a)

__all__ = ["ASSAYS", "register_assay"]
