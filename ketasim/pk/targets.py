"""The receptor and enzyme nodes a compound can act on, and where each sits in the
cascade (the equations are in :mod:`ketasim.signaling.spec`; their tones and gains are
registry parameters with sources).

A compound file's ``targets:`` map names these nodes. Each node has binding sites:

- ``orthosteric``: agonists and antagonists (and enzyme inhibitors or activators)
  compete for one site: with ``rho_j = c_j / K_j`` the fractional occupancies are
  ``rho_j / (1 + sum rho)``; an antagonist (inhibitor) removes ``efficacy`` of the
  node's endogenous signal at full occupancy, an agonist (activator) adds ``efficacy``.
- ``allosteric``: positive and negative modulators, on a site of their own; they scale
  the node's signal by ``1 +/- efficacy`` at full occupancy.
- ``channel``: NMDA receptor open-channel blockers, use-dependent and Mg2+-sensitive
  (see ``nmda`` below).

Potency is the Ki, IC50 or EC50 at the node (uM or nM, unbound brain concentration) for
compounds with compartmental PK; tool compounds given as an exposure window use the
dose giving half the maximal action instead (ED50 in mg/kg, a local amount in mg, or a
bath EC50 in uM).
"""

from __future__ import annotations

from dataclasses import dataclass

ORTHOSTERIC = ("antagonist", "agonist", "inhibitor", "activator")
ALLOSTERIC = ("positive_modulator", "negative_modulator")
CHANNEL = ("channel_blocker",)
ACTIONS = ORTHOSTERIC + ALLOSTERIC + CHANNEL
# actions that remove the node's signal (their efficacy is the fraction removed)
REMOVING = ("antagonist", "inhibitor", "channel_blocker")


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    where: str  # where the node sits in the cascade
    actions: tuple[str, ...]


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("nmda", "NMDA receptor channel (GluN1/GluN2), interneurons and pyramidal neurons",
           "block on dendrite-targeting interneurons at rest disinhibits pyramidal dendrites "
           "(glutamate surge); block on pyramidal neurons during activity limits the surge "
           "and, at rest, lifts eEF2 phosphorylation (F-W-18, F-K-11)", CHANNEL),
    Target("glun2b", "GluN2B-containing NMDA receptors on pyramidal neurons",
           "part of the pyramidal rest current that keeps eEF2 phosphorylated (F-K-11)",
           ("antagonist", "negative_modulator")),
    Target("ampa", "AMPA receptors",
           "carry the glutamate surge into BDNF release, dopamine and excitability "
           "(F-K-12)", ("antagonist", "positive_modulator", "negative_modulator")),
    Target("mglu23", "presynaptic mGluR2/3",
           "an endogenous brake on glutamate release; antagonists lift it",
           ("antagonist", "agonist")),
    Target("m1", "muscarinic M1 receptors on interneurons",
           "cholinergic drive of interneurons; antagonists disinhibit pyramidal neurons",
           ("antagonist", "agonist")),
    Target("gabaa_a5", "GABA-A receptors with the alpha5 subunit (dendritic inhibition)",
           "inhibition of pyramidal dendrites; negative modulators disinhibit",
           ("positive_modulator", "negative_modulator")),
    Target("ht2a", "5-HT2A receptors on layer-5 pyramidal neurons",
           "raise glutamate release in prefrontal cortex", ("agonist", "antagonist")),
    Target("trkb", "TrkB (BDNF receptor)", "BDNF -> TrkB -> ERK -> mTORC1 (F-K-10)",
           ("antagonist", "agonist")),
    Target("mtorc1", "mTORC1", "ERK -> mTORC1 -> local synaptic protein synthesis (F-K-10)",
           ("inhibitor", "activator")),
    Target("drd1", "dopamine D1 receptors on pyramidal neurons",
           "dopamine -> Drd1 -> cAMP/PKA (F-W-10..F-W-14)", ("antagonist", "agonist")),
    Target("pka", "protein kinase A", "cAMP -> PKA -> plasticity potential, potentiation",
           ("inhibitor", "activator")),
    Target("sert", "serotonin transporter (SERT)",
           "serotonin reuptake; inhibition raises serotonin tone, which after weeks "
           "(autoreceptor desensitisation) restores glucocorticoid feedback and lowers the "
           "effective drive of chronic stress (monoaminergic antidepressants)",
           ("inhibitor",)),
    Target("da_supply", "dopamine synthesis in mPFC terminals (precursor supply)",
           "adds to mPFC extracellular dopamine (L-DOPA as precursor)", ("agonist",)),
)}

# nodes with an orthosteric site / an allosteric site in the model (``nmda`` is a channel)
ORTHO_NODES = tuple(n for n, t in TARGETS.items() if set(t.actions) & set(ORTHOSTERIC))
ALLO_NODES = tuple(n for n, t in TARGETS.items() if set(t.actions) & set(ALLOSTERIC))
