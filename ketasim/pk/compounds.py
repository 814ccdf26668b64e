"""Drugs as data: what each compound is and which model inputs a dose of it moves.

Ketamine enantiomers and metabolites get full compartmental PK (:mod:`ketasim.signaling.spec`).
Tool compounds get a timed on/off action: from ``at + onset`` to ``at + onset + duration``
their control ``r_<name>`` carries ``dose / ED50`` and the model turns it into a block
``emax * r / (1 + r)``. Vehicle and active placebo have no action on the cascade.

To add a drug that acts through known targets (F-K-18), add a row here and its
parameters to the registry; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Compound:
    name: str
    kind: str  # "parent" | "metabolite" | "tool" | "inert"
    description: str
    # parent: fraction of the dose that is S- and R-ketamine
    parents: dict[str, float] = field(default_factory=dict)
    # metabolite: the model species prefix (NK or HNK)
    species_prefix: str = ""
    # tool: the control it moves and its registry prefix
    control: str = ""
    registry_prefix: str = ""


COMPOUNDS: dict[str, Compound] = {
    c.name: c
    for c in (
        Compound("saline", "inert", "vehicle (no action)"),
        Compound("midazolam", "inert",
                 "active placebo of clinical trials (no action on the cascade)"),
        Compound("ketamine", "parent", "racemic ketamine", parents={"S": 0.5, "R": 0.5}),
        Compound("esketamine", "parent", "S-ketamine", parents={"S": 1.0}),
        Compound("arketamine", "parent", "R-ketamine", parents={"R": 1.0}),
        Compound("norketamine", "metabolite", "racemic norketamine", species_prefix="NK"),
        Compound("hnk", "metabolite", "(2R,6R)-hydroxynorketamine", species_prefix="HNK"),
        Compound("rapamycin", "tool", "mTORC1 inhibitor", control="r_rapamycin",
                 registry_prefix="tool.rapamycin"),
        Compound("nbqx", "tool", "AMPA receptor antagonist", control="r_nbqx",
                 registry_prefix="tool.nbqx"),
        Compound("ana12", "tool", "TrkB antagonist", control="r_ana12",
                 registry_prefix="tool.ana12"),
        Compound("sch23390", "tool", "Drd1 antagonist", control="r_sch23390",
                 registry_prefix="tool.sch23390"),
        Compound("skf81297", "tool", "Drd1 agonist", control="r_skf81297",
                 registry_prefix="tool.skf81297"),
        Compound("h89", "tool", "PKA inhibitor", control="r_h89", registry_prefix="tool.h89"),
        Compound("ldopa", "tool", "dopamine precursor (with a decarboxylase inhibitor)",
                 control="r_ldopa", registry_prefix="tool.ldopa"),
    )
}

# registry suffix of a tool's potency, by the dose's kind/route
TOOL_POTENCY_KEY = {"per_kg": "ed50", "concentration": "ec50_bath", "local": "ed50_local"}
