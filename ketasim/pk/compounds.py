"""Drugs as data: what each compound is and which model inputs a dose of it moves.

Ketamine enantiomers and metabolites get full compartmental PK (:mod:`ketasim.signaling.spec`).
Tool compounds get a timed on/off action: from ``at + onset`` to ``at + onset + duration``
their control ``r_<name>`` carries ``dose / ED50`` and the model turns it into a block
``emax * r / (1 + r)``. Vehicle and active placebo have no action on the cascade.

A compound is declared once, here: the scenario vocabulary (drug names, their routes and
notes) and the JSON Schema are derived from :data:`COMPOUNDS`. To add a tool compound,
add a row (or call :func:`register_compound`) and its parameters to the registry
(``tool.<name>.*``); its control ``r_<name>`` must exist in the signalling model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Compound:
    name: str
    kind: str  # "parent" | "metabolite" | "tool" | "inert"
    description: str
    routes: tuple[str, ...]  # routes by which the simulator can give it
    # parent: fraction of the dose that is S- and R-ketamine
    parents: dict[str, float] = field(default_factory=dict)
    # metabolite: the model species prefix (NK or HNK)
    species_prefix: str = ""
    # tool: the control it moves and its registry prefix
    control: str = ""
    registry_prefix: str = ""


# administration routes: ``bath`` is application to an acute slice, ``intracerebral`` a
# local injection or cannula infusion into tissue (the scenario vocabulary's ROUTES)
ALL = ("iv", "ip", "sc", "im", "intranasal", "oral", "bath", "intracerebral")
_KETAMINES = ("iv", "ip", "sc", "im", "intranasal", "oral")
_METABOLITES = ("iv", "ip", "sc", "oral")

COMPOUNDS: dict[str, Compound] = {
    c.name: c
    for c in (
        Compound("saline", "inert", "vehicle (no action)", ALL),
        Compound("midazolam", "inert",
                 "active placebo of clinical trials (no action on the cascade)", ("iv", "im", "oral")),
        Compound("ketamine", "parent", "racemic ketamine", _KETAMINES, parents={"S": 0.5, "R": 0.5}),
        Compound("esketamine", "parent", "S-ketamine", _KETAMINES, parents={"S": 1.0}),
        Compound("arketamine", "parent", "R-ketamine", _KETAMINES, parents={"R": 1.0}),
        Compound("norketamine", "metabolite", "racemic norketamine", _METABOLITES, species_prefix="NK"),
        Compound("hnk", "metabolite", "(2R,6R)-hydroxynorketamine", _METABOLITES, species_prefix="HNK"),
        Compound("rapamycin", "tool", "mTORC1 inhibitor", ("ip", "oral"), control="r_rapamycin",
                 registry_prefix="tool.rapamycin"),
        Compound("nbqx", "tool", "AMPA receptor antagonist", ("ip", "sc", "intracerebral"), control="r_nbqx",
                 registry_prefix="tool.nbqx"),
        Compound("ana12", "tool", "TrkB antagonist", ("ip",), control="r_ana12",
                 registry_prefix="tool.ana12"),
        Compound("sch23390", "tool", "Drd1 antagonist", ("ip", "sc", "intracerebral"), control="r_sch23390",
                 registry_prefix="tool.sch23390"),
        Compound("skf81297", "tool", "Drd1 agonist", ("ip", "bath"), control="r_skf81297",
                 registry_prefix="tool.skf81297"),
        Compound("h89", "tool", "PKA inhibitor", ("bath", "intracerebral"), control="r_h89", registry_prefix="tool.h89"),
        Compound("ldopa", "tool", "dopamine precursor (with a decarboxylase inhibitor)", ("ip", "sc", "oral"),
                 control="r_ldopa", registry_prefix="tool.ldopa"),
    )
}

# registry suffix of a tool's potency, by the dose's kind/route
TOOL_POTENCY_KEY = {"per_kg": "ed50", "concentration": "ec50_bath", "local": "ed50_local"}


def register_compound(c: Compound) -> Compound:
    """Add (or replace) a compound; the scenario vocabulary follows."""
    bad = [r for r in c.routes if r not in ALL]
    if bad or not c.routes:
        raise ValueError(f"compound {c.name!r}: routes must be a non-empty subset of {ALL}, "
                         f"got {c.routes!r}")
    COMPOUNDS[c.name] = c
    return c
