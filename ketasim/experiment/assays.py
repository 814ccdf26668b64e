"""The assays ketasim can simulate now, by name (later layers add theirs here)."""

from __future__ import annotations

from ketasim.behavior.assays import (
    EXTINCTION,
    HELPLESSNESS,
    OPEN_FIELD,
    SUCROSE,
    TAIL_SUSPENSION,
)
from ketasim.circuit.assay import CALCIUM
from ketasim.experiment.measure import Assay
from ketasim.pk.assays import BRAIN_PK, PLASMA_PK
from ketasim.signaling.assays import MICRODIALYSIS_DA, SIGNALING_STATE, WESTERN_BLOT
from ketasim.spines.assays import FIXED, SPINE_ASSAYS, TWO_PHOTON, UNCAGING

ASSAYS: dict[str, Assay] = {a.name: a for a in (PLASMA_PK, BRAIN_PK, MICRODIALYSIS_DA,
                                                WESTERN_BLOT, SIGNALING_STATE, TWO_PHOTON,
                                                UNCAGING, FIXED, CALCIUM,
                                                TAIL_SUSPENSION, OPEN_FIELD, SUCROSE,
                                                HELPLESSNESS, EXTINCTION)}
# the circuit (and the behaviour it drives) reads the spine layer
SPINE_ASSAYS = (*SPINE_ASSAYS, CALCIUM.name, TAIL_SUSPENSION.name, HELPLESSNESS.name,
                EXTINCTION.name)
__all__ = ["ASSAYS", "SPINE_ASSAYS"]
