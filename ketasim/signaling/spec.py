"""The PK + signalling model written once, as data.

Every equation is a string in a small expression language (Python syntax with
``exp``, ``log``, ``pos(x) = max(x, 0)``, ``pw(x, a) = x ** a`` and
``hillk(x, Kn, n) = x**n / (x**n + Kn)`` with ``Kn = K**n``; powers of model quantities
are written with ``pw``/``hillk`` so their derivatives stay finite at 0). Assignments
that depend on parameters only are evaluated once per subject by the numba kernel. The same strings are compiled
into the batched numba right-hand side (:mod:`ketasim.signaling.codegen`) and written
into SBML (:mod:`ketasim.io.sbml`), so the two solvers integrate literally the same
model.

Units inside the model: time h; drug amounts mg/kg body weight; volumes L/kg;
clearances L/h/kg; plasma and brain concentrations mg/L; receptor constants uM.
Signalling states are dimensionless, 1 at an unstressed, drug-free baseline (the
initial state), so every subject starts at steady state whatever its parameters.

Layer boundary: the PK states feed the signalling states; nothing feeds back.
Outputs (``OUTPUTS``) are what the assays and the next layers read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ketasim.pk.compounds import ANALYTES
from ketasim.pk.targets import ALLO_NODES, ORTHO_NODES


@dataclass(frozen=True)
class State:
    name: str
    initial: float
    unit: str
    description: str


@dataclass(frozen=True)
class Param:
    """A model parameter; ``registry`` is a name template with ``{species}`` (empty for
    the drug-slot parameters that compound files set per arm)."""

    name: str
    registry: str  # "" for a drug-slot parameter, set per arm from compound files
    unit: str
    default: float = 0.0  # value of a slot parameter in an empty slot


@dataclass(frozen=True)
class Control:
    """A piecewise-constant input changed only by dosing and intervention events."""

    name: str
    unit: str
    description: str


# ------------------------------------------------------------------ drug slots
# Compounds are data (ketasim/compounds/*.yaml); the model has N_SLOTS generic drug
# slots, each a two- or three-compartment PK (the deep compartment is unused when its
# clearance q2 is 0) with an extravascular depot, a gut path for swallowed doses (their
# first pass is applied when the dose is given) and a brain effect site.
# An arm's compounds (with their components and metabolites, parents first) are given
# slots when its protocol is compiled, and the slot parameters come from the compound
# files (ketasim.signaling.protocol). A metabolite slot is formed from the slots before
# it (fm{j}_{k}, j < k), so the PK stays feed-forward. Tool compounds with an exposure
# window need no slot: they move the target controls ``{target}_w*`` directly.
N_SLOTS = 6
SLOTS = tuple(range(N_SLOTS))

STATES: tuple[State, ...] = (
    *(
        s
        for k in SLOTS
        for s in (
            State(f"depot{k}", 0.0, "mg/kg", f"drug slot {k} at the extravascular absorption site"),
            State(f"gut{k}", 0.0, "mg/kg",
                  f"drug slot {k} swallowed, in the gut on its way to the portal vein (the "
                  "share that survives gut wall and hepatic first pass)"),
            State(f"central{k}", 0.0, "mg/kg", f"drug slot {k} in the central (plasma) compartment"),
            State(f"peripheral{k}", 0.0, "mg/kg", f"drug slot {k} in the peripheral compartment"),
            State(f"deep{k}", 0.0, "mg/kg", f"drug slot {k} in the second (deep) peripheral compartment"),
            State(f"brain{k}", 0.0, "mg/L", f"drug slot {k} brain (effect-site) concentration"),
        )
    ),
    # signalling (dimensionless, baseline 1 except stress load 0)
    State("stress_load", 0.0, "1", "accumulated stress load (0 none, 1 maximal)"),
    State("dopamine", 1.0, "1", "mPFC extracellular dopamine (x baseline)"),
    State("pka", 1.0, "1", "cAMP/PKA activity in L5 pyramidal neurons (x baseline)"),
    State("priming", 1.0, "1", "PKA-dependent structural priming behind plasticity potential"),
    State("peef2", 1.0, "1", "phosphorylated eEF2 (x baseline)"),
    State("bdnf", 1.0, "1", "BDNF protein (x baseline)"),
    State("ptrkb", 1.0, "1", "phosphorylated TrkB (x baseline)"),
    State("perk", 1.0, "1", "phosphorylated ERK1/2 (x baseline)"),
    State("pmtor", 1.0, "1", "phosphorylated mTOR / mTORC1 activity (x baseline)"),
    State("synthesis", 1.0, "1", "local synaptic protein synthesis rate (x baseline)"),
    State("psd95", 1.0, "1", "PSD95 protein (x baseline)"),
    State("glua1", 1.0, "1", "synaptic GluA1 (x baseline)"),
    State("potentiation", 0.0, "1",
          "PKA-gated, activity-driven potentiation of existing synapses (0 none, 1 maximal)"),
    State("reward_potentiation", 0.0, "1",
          "the same potentiation in reward circuits outside the imaged prefrontal field"),
    State("potentiation_tagged", 0.0, "1",
          "the part of the prefrontal potentiation old enough to hold the AS-PaRAC1 probe"),
    State("structural_1", 0.0, "1", "structural-maturation delay chain, stage 1"),
    State("structural_2", 0.0, "1", "structural-maturation delay chain, stage 2"),
    State("structural_3", 0.0, "1", "structural-maturation delay chain, stage 3"),
    # the dopamine innervation of the region and what follows its loss (a 6-OHDA lesion
    # reaches the striatum; lesion_reach is 0 in mPFC): terminals left, D1 receptor
    # supersensitivity, and the L-DOPA-driven priming of dyskinesia in D1 neurons
    State("da_terminals", 1.0, "1", "dopamine terminals left (fraction of intact)"),
    State("d1_sensitivity", 1.0, "1", "D1 receptor signalling sensitivity (x intact)"),
    State("lid_priming", 0.0, "1",
          "priming of dyskinesia in D1 neurons by pulsatile D1 -> PKA drive (0 none, 1 full)"),
    State("lid_resistance", 0.0, "1",
          "resistance to dyskinesia priming left by TrkB- and mTORC1-dependent plasticity "
          "(0 none; it lowers the ceiling of priming)"),
    # the other hemisphere of a unilateral lesion (the comparison a rotation test makes)
    # and the spine loss of the two striatal projection-neuron types after denervation
    # (appended, so the earlier states keep their places)
    State("dopamine_intact", 1.0, "1",
          "dopamine of the same region with its terminals intact (the unlesioned side)"),
    State("d2_spine_deficit", 0.0, "1",
          "loss of D2 receptor stimulation, as indirect-pathway (D2) neurons' spines sense "
          "it (days)"),
    State("d1_spine_deficit", 0.0, "1",
          "loss of tonic dopamine, as direct-pathway (D1) neurons' spines sense it (weeks)"),
    State("erk_sensitization", 0.0, "1",
          "sensitisation of D1 neurons' PKA -> ERK coupling by pulsatile D1 drive (0-1)"),
    # the reward circuits' PKA: the same Drd1 drive, but not silenced with the mPFC Drd1
    # neurons (appended, so the earlier states keep their places)
    State("pka_reward", 1.0, "1", "cAMP/PKA activity in the reward circuits (x baseline)"),
    # the slow adaptation to serotonin reuptake block (appended, so the earlier states
    # keep their places)
    State("serotonergic_adaptation", 0.0, "1",
          "adaptation to sustained SERT inhibition (autoreceptor desensitisation, "
          "restored glucocorticoid feedback; 0 none, 1 full)"),
    # the reward circuits' dopamine: VTA release as in mPFC, without the manipulations
    # aimed at mPFC (appended, so the earlier states keep their places)
    State("dopamine_reward", 1.0, "1",
          "extracellular dopamine in the reward circuits (x baseline)"),
)

# ------------------------------------------------------------------ parameters
# slot parameters: (suffix, unit, value of an empty slot, description); set per arm
SLOT_PARAMS: tuple[tuple[str, str, float, str], ...] = (
    ("cl", "L/h/kg", 0.0, "clearance from the central compartment"),
    ("v1", "L/kg", 1.0, "central volume"),
    ("q", "L/h/kg", 0.0, "inter-compartmental clearance"),
    ("v2", "L/kg", 1.0, "peripheral volume"),
    ("q2", "L/h/kg", 0.0, "inter-compartmental clearance to the deep compartment"),
    ("v3", "L/kg", 1.0, "deep peripheral volume"),
    ("kp", "1", 0.0, "brain:plasma partition"),
    ("ke0", "1/h", 1.0, "brain equilibration rate"),
    ("mw", "g/mol", 1.0, "molecular weight"),
    ("fu", "1", 0.0, "unbound fraction in brain"),
    # NMDA channel block: 1 / (Ki x relative factors) during activity and at rest
    ("nmda_a", "1/uM", 0.0, "NMDA channel block affinity during activity"),
    ("nmda_r", "1/uM", 0.0, "NMDA channel block affinity at rest (trapping, Mg2+)"),
    *((f"an_{a}", "1", 0.0, f"counts toward the {a} readouts (0/1)") for a in ANALYTES),
)
# per target with an orthosteric site: affinity (1/K), removing and adding efficacy x
# affinity; per target with an allosteric site: affinity and signed efficacy x affinity
# (the nodes are declared once, in ketasim.pk.targets; a test checks that each action a
# node allows reaches an equation below)
TARGET_SLOT_PARAMS: tuple[tuple[str, str], ...] = (
    *((f"{t}_a", "1/uM") for t in ORTHO_NODES),
    *((f"{t}_b", "1/uM") for t in ORTHO_NODES),
    *((f"{t}_g", "1/uM") for t in ORTHO_NODES),
    *((f"{t}_am", "1/uM") for t in ALLO_NODES),
    *((f"{t}_m", "1/uM") for t in ALLO_NODES),
)

PARAMS: tuple[Param, ...] = (
    *(Param(f"{name}{k}", "", unit, default) for k in SLOTS
      for name, unit, default, _d in SLOT_PARAMS),
    *(Param(f"{name}{k}", "", unit, 0.0) for k in SLOTS for name, unit in TARGET_SLOT_PARAMS),
    *(Param(f"fm{j}_{k}", "", "1", 0.0) for k in SLOTS for j in range(k)),
    Param("pot_int", "rec.potency_interneuron", "1"),
    Param("pot_pyr", "rec.potency_pyramidal", "1"),
    Param("pot_rsc", "rec.potency_posteromedial", "1"),
    Param("glun2b_share", "rec.glun2b_rest_share", "1"),
    Param("glun2b_int_share", "rec.glun2b_interneuron_share", "1"),
    Param("shut_o50", "rec.pyramidal_shutdown_occ50", "1"),
    Param("shut_n", "rec.pyramidal_shutdown_hill", "1"),
    Param("basal_pyr", "sig.basal_release_pyramidal_share", "1"),
    Param("m1_share", "sig.m1_interneuron_share", "1"),
    Param("a5_share", "sig.gabaa_a5_dendritic_share", "1"),
    Param("ht2a_gain", "sig.ht2a_glutamate_gain", "1"),
    Param("ht2a_tone", "sig.ht2a_tone", "1"),
    Param("mglu_tone", "sig.mglu23_tone", "1"),
    Param("glu_amp", "sig.glu_amplitude", "1"),
    Param("dis_o50", "sig.disinhibition_o50", "1"),
    Param("dis_n", "sig.disinhibition_hill", "1"),
    Param("da_gain", "sig.da_gain", "1"),
    Param("k_da", "sig.k_da", "1/h"),
    Param("da_term_act", "sig.da_terminal_activation", "1"),
    Param("d1n_stim_glu", "sig.drd1_neuron_stim_glutamate", "1"),
    Param("d1_k", "sig.d1_k", "1"),
    Param("d1_n", "sig.d1_hill", "1"),
    Param("pka_gain", "sig.pka_gain", "1"),
    Param("k_pka", "sig.k_pka", "1/h"),
    Param("k_priming", "sig.k_priming", "1/h"),
    Param("pp_control", "sig.pp_control", "1"),
    Param("pp_slope", "sig.pp_slope", "1"),
    Param("pp_stress", "sig.pp_stress", "1"),
    Param("k_eef2", "sig.k_eef2", "1/h"),
    Param("eef2_block", "sig.eef2_block", "1"),
    Param("k_bdnf", "sig.k_bdnf", "1/h"),
    Param("bdnf_eef2_gain", "sig.bdnf_eef2_gain", "1"),
    Param("bdnf_stress", "sig.bdnf_stress", "1"),
    Param("k_trkb", "sig.k_trkb", "1/h"),
    Param("k_erk", "sig.k_erk", "1/h"),
    Param("erk_trkb_exp", "sig.erk_trkb_exponent", "1"),
    Param("erk_pka_exp", "sig.erk_pka_exponent", "1"),
    Param("k_mtor", "sig.k_mtor", "1/h"),
    Param("mtor_erk_exp", "sig.mtor_erk_exponent", "1"),
    Param("k_synthesis", "sig.k_synthesis", "1/h"),
    Param("syn_mtor_frac", "sig.synthesis_mtor_fraction", "1"),
    Param("k_psd95", "sig.k_psd95", "1/h"),
    Param("psd95_struct_gain", "sig.psd95_structural_gain", "1"),
    Param("psd95_syn_exp", "sig.psd95_synthesis_exponent", "1"),
    Param("psd95_stress", "sig.psd95_stress", "1"),
    Param("k_glua1", "sig.k_glua1", "1/h"),
    Param("glua1_syn_exp", "sig.glua1_synthesis_exponent", "1"),
    Param("glua1_stress", "sig.glua1_stress", "1"),
    Param("k_struct", "sig.k_structural", "1/h"),
    Param("form_gain", "sig.formation_gain", "1"),
    Param("form_stress", "sig.formation_stress", "1"),
    Param("elim_stress", "sig.elimination_stress", "1"),
    Param("act_surge", "sig.activity_surge_gain", "1"),
    Param("k_pot_on", "sig.k_potentiation_on", "1/h"),
    Param("k_pot_off", "sig.k_potentiation_off", "1/h"),
    Param("pot_syn_exp", "sig.potentiation_synthesis_exponent", "1"),
    Param("pot_trkb_exp", "sig.potentiation_trkb_exponent", "1"),
    Param("k_rpot_off", "sig.k_reward_potentiation_off", "1/h"),
    Param("k_parac1_tag", "sig.k_parac1_tag", "1/h"),
    Param("stress_k_on", "stress.k_on", "1/h"),
    Param("stress_k_off", "stress.k_off", "1/h"),
    Param("k_sert_adapt", "sig.k_serotonergic_adaptation", "1/h"),
    Param("sert_relief", "sig.serotonergic_stress_relief", "1"),
    Param("lesion_reach", "sig.lesion_reach", "1"),
    Param("k_lesion", "sig.k_lesion", "1/h"),
    Param("da_comp_k", "sig.da_compensation_k", "1"),
    Param("da_buffer_k", "sig.da_buffer_k", "1"),
    Param("k_d1ss", "sig.k_d1_supersensitivity", "1/h"),
    Param("d1ss_gain", "sig.d1_supersensitivity_gain", "1"),
    Param("d1ss_onset", "sig.d1_supersensitivity_onset", "1"),
    Param("k_lid_on", "sig.k_lid_priming_on", "1/h"),
    Param("k_lid_off", "sig.k_lid_priming_off", "1/h"),
    Param("lid_pka_thr", "sig.lid_pka_threshold", "1"),
    Param("lid_ss_full", "sig.lid_supersensitivity_full", "1"),
    Param("k_res_on", "sig.k_lid_resistance_on", "1/h"),
    Param("k_res_off", "sig.k_lid_resistance_off", "1/h"),
    Param("lid_size_gain", "sig.lid_spine_size_gain", "1"),
    Param("k_d2_spine", "sig.k_d2_spine_deficit", "1/h"),
    Param("lid_erk_gain", "sig.lid_erk_priming_gain", "1"),
    Param("k_d1_spine", "sig.k_d1_spine_deficit", "1/h"),
    Param("d1_spine_thr", "sig.d1_spine_deficit_threshold", "1"),
)

# ------------------------------------------------------------------ controls
CONTROLS: tuple[Control, ...] = (
    *(Control(f"ka{k}", "1/h", f"absorption rate of slot {k}'s current extravascular dose")
      for k in SLOTS),
    *(Control(f"inf{k}", "mg/kg/h", f"slot {k} infusion rate") for k in SLOTS),
    *(Control(f"kag{k}", "1/h", f"absorption rate of slot {k}'s swallowed dose from the gut")
      for k in SLOTS),
    *(Control(f"gutin{k}", "mg/kg/h",
              f"zero-order release of slot {k}'s swallowed dose into the gut") for k in SLOTS),
    # exposure-window compounds (tools): summed dose/ED50, and efficacy x dose/ED50
    *(Control(f"{t}_w{x}", "1", f"window compounds at {t}: {what}")
      for t in ORTHO_NODES for x, what in (
          ("a", "sum of dose / ED50"), ("b", "sum of removing efficacy x dose / ED50"),
          ("g", "sum of adding efficacy x dose / ED50"))),
    *(Control(f"{t}_w{x}", "1", f"window modulators at {t}: {what}")
      for t in ALLO_NODES for x, what in (
          ("am", "sum of dose / ED50"), ("m", "sum of signed efficacy x dose / ED50"))),
    Control("stress_input", "1", "summed intensity of the stressors now on"),
    Control("drd1_ko", "1", "1 after conditional Drd1 knock-out in mPFC"),
    Control("pki_block", "1", "PKA block by PKI-alpha expression"),
    Control("vta_inhibition", "1", "fall of VTA dopamine output (chemogenetic inhibition)"),
    Control("terminal_activation", "1", "1 while mPFC dopamine terminals are activated"),
    Control("terminal_inhibition", "1", "fall of mPFC dopamine release (terminal inhibition)"),
    Control("drd1_neuron_stim", "1", "1 while mPFC Drd1-expressing neurons are photostimulated"),
    Control("drd1_neuron_silencing", "1", "fall of the activity of mPFC Drd1-expressing neurons"),
    Control("dopamine_lesion", "1",
            "share of the dopamine terminals a 6-OHDA lesion destroys (0 none)"),
    Control("parac1_shrink", "1/h",
            "shrinkage rate of probe-holding potentiated synapses while AS-PaRAC1 is lit"),
)


def _sum(terms: list[str]) -> str:
    return "(" + " + ".join(terms) + ")"


# ------------------------------------------------------------------ algebra, in order
_pk_assign: list[tuple[str, str]] = []
for _k in SLOTS:
    _pk_assign += [
        (f"k10_{_k}", f"cl{_k} / v1{_k}"),
        (f"k12_{_k}", f"q{_k} / v1{_k}"),
        (f"k21_{_k}", f"q{_k} / v2{_k}"),
        (f"k13_{_k}", f"q2{_k} / v1{_k}"),
        (f"k31_{_k}", f"q2{_k} / v3{_k}"),
        # parameter-only factors are assignments of their own, so the solver computes
        # them once per subject (derive) instead of at every right-hand side
        (f"kout{_k}", f"k10_{_k} + k12_{_k} + k13_{_k}"),
        (f"iv1{_k}", f"1.0 / v1{_k}"),
        (f"cuf{_k}", f"fu{_k} * 1000.0 / mw{_k}"),
        (f"cp{_k}", f"central{_k} * iv1{_k}"),
        # unbound brain concentration in uM (mg/L -> uM: x 1000 / MW)
        (f"cu{_k}", f"cuf{_k} * brain{_k}"),
    ]
# formation of a metabolite slot k from slot j < k: fraction of j's clearance, in mass
# of k (x MW_k / MW_j), per hour
_pk_assign += [(f"kf{j}_{_k}", f"fm{j}_{_k} * mw{_k} / mw{j} * k10_{j}")
               for _k in SLOTS for j in range(_k)]
_target_assign: list[tuple[str, str]] = []
for _t in ORTHO_NODES:
    _target_assign += [
        (f"{_t}_occ", "1.0 + " + _sum([f"{_t}_a{k} * cu{k}" for k in SLOTS] + [f"{_t}_wa"])),
        # fraction of the node's endogenous signal removed / drug signal added
        (f"{_t}_block", _sum([f"{_t}_b{k} * cu{k}" for k in SLOTS] + [f"{_t}_wb"])
         + f" / {_t}_occ"),
        (f"{_t}_ag", _sum([f"{_t}_g{k} * cu{k}" for k in SLOTS] + [f"{_t}_wg"])
         + f" / {_t}_occ"),
    ]
for _t in ALLO_NODES:
    _target_assign += [
        (f"{_t}_mod", _sum([f"{_t}_m{k} * cu{k}" for k in SLOTS] + [f"{_t}_wm"])
         + " / (1.0 + " + _sum([f"{_t}_am{k} * cu{k}" for k in SLOTS] + [f"{_t}_wam"]) + ")"),
    ]

ASSIGNMENTS: tuple[tuple[str, str], ...] = (
    *_pk_assign,
    *_target_assign,
    # NMDA channel block (F-K-11, F-W-18): interneuron NMDARs (tonically active, GluN2D)
    # are blocked at lower concentrations than pyramidal ones (pot_int < pot_pyr, x Ki).
    # Use-dependent blockers differ at rest: the rest affinity carries the blocker's
    # trapping and its loss of block in physiological Mg2+ (nmda_r = nmda_a x
    # trapping / trapping_ref / mg_rest), which is what interneurons at rest and the
    # pyramidal rest current (eEF2) see; during activity (occupancy readouts, the
    # pyramidal limit on the surge) the plain affinity applies.
    ("nmda_ratio", "pos(" + " + ".join(f"nmda_a{k} * cu{k}" for k in SLOTS) + ")"),
    ("nmda_rest", "pos(" + " + ".join(f"nmda_r{k} * cu{k}" for k in SLOTS) + ")"),
    ("occ_int", "nmda_ratio / (nmda_ratio + pot_int)"),
    ("occ_pyr", "nmda_ratio / (nmda_ratio + pot_pyr)"),
    ("occ_int_rest", "nmda_rest / (nmda_rest + pot_int)"),
    ("occ_pyr_rest", "nmda_rest / (nmda_rest + pot_pyr)"),
    # NMDA block in posteromedial (retrosplenial) cortex, whose layer-5 rhythm carries
    # dissociation (Vesuna et al. 2020 Nature): read by the psychotomimetic scales only
    ("occ_rsc", "nmda_ratio / (nmda_ratio + pot_rsc)"),
    # near-anaesthetic pyramidal block silences the NMDA-dependent recurrent activity of
    # pyramidal neurons: a steep function of the block (ataxia in the open field, F-W-18;
    # and the basal release that this activity carries, below)
    ("shut_kn", "pw(shut_o50, shut_n)"),
    ("pyr_shutdown", "hillk(occ_pyr, shut_kn, shut_n)"),
    # inhibition reaching pyramidal dendrites: interneurons lose NMDA drive (block at
    # rest; GluN2B-selective blockers and modulators act on the GluN2B share of it) and
    # cholinergic M1 drive (antagonists), and alpha5 GABA-A modulators scale dendritic
    # inhibition; disinhibition -> glutamate surge
    ("inhibition", ("(1.0 - occ_int_rest)"
                    " * (1.0 - glun2b_int_share * glun2b_block + glun2b_int_share * glun2b_mod)"
                    " * (1.0 - m1_share * m1_block + m1_share * m1_ag)"
                    " * (1.0 + a5_share * gabaa_a5_mod)")),
    ("dis_kn", "pw(dis_o50, dis_n)"),
    ("disinhibition", "hillk(pos(1.0 - inhibition), dis_kn, dis_n)"),
    # release: a share of basal release rides on pyramidal recurrent activity and fails
    # with it at anaesthetic block (Moghaddam et al. 1997: 200 mg/kg lowers prefrontal
    # glutamate); the surge is limited by pyramidal block, and is itself the disinhibited
    # pyramidal neurons' firing, so it fails with the same shutdown (Li et al. 2010: no
    # mTORC1 rise 1 h after the anaesthetic dose, T-DR-08); 5-HT2A on L5 neurons adds to it
    # (removing the serotonin tone takes from it); mGluR2/3 brake release with a tone
    ("mglu_brake", "mglu_tone * (1.0 - mglu23_block) + (1.0 - mglu_tone) * mglu23_ag"),
    # stimulating the Drd1-expressing pyramidal neurons adds their glutamatergic output
    # (F-W-9)
    # release and the AMPA drive cannot fall below 0: at the ends of the registry's
    # ranges (a full 5-HT2A block with a strong serotonin tone and pyramidal shutdown, a
    # strong negative AMPA modulator) the sums would, and the powers downstream of TrkB
    # and ERK would then be NaN
    ("glutamate", ("pos((1.0 - basal_pyr * pyr_shutdown"
                   " + glu_amp * disinhibition * (1.0 - occ_pyr) * (1.0 - pyr_shutdown)"
                   " + ht2a_gain * (ht2a_ag - ht2a_tone * ht2a_block)"
                   " + d1n_stim_glu * drd1_neuron_stim)"
                   " * (1.0 - mglu_brake) / (1.0 - mglu_tone))")),
    # modulators scale the glutamate-driven signal (1 + ampa_mod at full occupancy, as on
    # every node; it was added, so a modulator's effect did not grow with a surge);
    # antagonists remove the rise above baseline
    ("ampa", "pos(1.0 + (glutamate * (1.0 + ampa_mod) - 1.0) * (1.0 - ampa_block))"),
    # activity of the Drd1-expressing pyramidal neurons, the cells whose PKA the Drd1 path
    # raises: they follow the network's AMPA drive unless silenced (F-W-9)
    ("d1n_activity", "ampa * (1.0 - drd1_neuron_silencing)"),
    # the region's dopamine terminals (a lesion reaches a region by lesion_reach); the
    # remaining terminals compensate, holding the tonic level until most are gone
    # (da_comp_k), and lose their buffering of dopamine made from precursor: with fewer
    # terminals (less reuptake and storage) the same L-DOPA gives larger swings
    ("terminals", "1.0 - lesion_reach * (1.0 - da_terminals)"),
    ("da_tonic", "terminals * (1.0 + da_comp_k) / (terminals + da_comp_k)"),
    ("da_buffer", "(1.0 + da_buffer_k) / (terminals + da_buffer_k)"),
    # VTA -> mPFC dopamine (F-W-8), its manipulations (F-W-11, F-W-16, F-W-17): the VTA's
    # release (which VTA inhibition removes everywhere), then the terminal manipulations
    # aimed at mPFC
    ("da_vta_release", ("(da_tonic * (1.0 + da_gain * (ampa - 1.0)) + da_supply_ag * da_buffer)"
                        " * (1.0 - vta_inhibition)")),
    ("da_target", ("da_vta_release * (1.0 - terminal_inhibition)"
                  " + da_term_act * terminal_activation")),
    # Drd1 -> cAMP/PKA (F-W-10..F-W-14); blockers remove the Drd1-driven rise; D1
    # receptors of a denervated region are supersensitive
    ("d1_signal", ("(dopamine * (1.0 - drd1_block) * (1.0 - drd1_ko) + drd1_ag)"
                   " * d1_sensitivity")),
    # the unlesioned side: intact terminals (tonic level and buffering 1), no
    # supersensitivity; a unilateral lesion turns the animal away from the side whose D1
    # signal is larger (apomorphine and L-DOPA: contralateral)
    ("da_target_intact", ("(1.0 + da_gain * (ampa - 1.0) + da_supply_ag)"
                          " * (1.0 - vta_inhibition) * (1.0 - terminal_inhibition)"
                          " + da_term_act * terminal_activation")),
    ("d1_signal_intact", ("dopamine_intact * (1.0 - drd1_block) * (1.0 - drd1_ko)"
                          " + drd1_ag")),
    ("d1_kn", "pw(d1_k, d1_n)"),
    ("d1_act", "hillk(d1_signal, d1_kn, d1_n)"),
    ("d1_act0", "1.0 / (1.0 + d1_kn)"),
    ("pka_free", "(1.0 - pka_block) * (1.0 - pki_block)"),
    # the Drd1 receptor's cAMP needs the neuron's own activity: cortical neurons make it
    # with Ca2+/calmodulin-stimulated adenylyl cyclases (AC1, AC8), which Gs-coupled
    # receptors and activity drive together (Wayman et al. 1994 J Biol Chem), so
    # silenced Drd1-expressing neurons lose their share of the rise while dopamine
    # itself is unchanged (F-W-9); full at rest and above (no gain from extra activity)
    # (the rise the Drd1 receptor drives, before any silencing)
    ("pka_d1_rise", "pka_gain * pka_free * pos(d1_act - d1_act0)"),
    ("pka_target", ("1.0 + pka_d1_rise * (1.0 - drd1_neuron_silencing)"
                    " + pka_ag * pka_free")),
    # the reward circuits lie outside mPFC: VTA inhibition and systemic drugs reach
    # them, the manipulations aimed at mPFC (its dopamine terminals, its conditional
    # Drd1 knock-out, viral PKI there, the silencing of its Drd1 neurons) do not; with
    # none of those, their D1 drive is mPFC's
    ("da_target_reward", "da_vta_release"),
    ("d1_signal_reward", ("(dopamine_reward * (1.0 - drd1_block) + drd1_ag)"
                          " * d1_sensitivity")),
    ("pka_target_reward", ("1.0 + pka_gain * (1.0 - pka_block)"
                           " * pos(hillk(d1_signal_reward, d1_kn, d1_n) - d1_act0)"
                           " + pka_ag * (1.0 - pka_block)")),
    # plasticity potential: probability scale, logistic in log priming (F-W-5, F-W-6, F-W-15)
    ("pp_odds0", "(1.0 - pp_control) / pp_control"),
    ("priming_eff", "priming * (1.0 - pp_stress * stress_load)"),
    ("plasticity_potential",
     "1.0 / (1.0 + pp_odds0 * pw(priming_eff, -pp_slope))"),
    # eEF2 follows the pyramidal rest current: NMDA block at rest and GluN2B-selective
    # block of its GluN2B share (F-K-11)
    ("rest_block", ("1.0 - (1.0 - occ_pyr_rest) * (1.0 - glun2b_share * glun2b_block"
                    " + glun2b_share * glun2b_mod)")),
    # eEF2 -> BDNF -> TrkB -> ERK -> mTORC1 -> synthesis (F-K-10, F-K-11)
    ("bdnf_release", "bdnf * ampa"),
    # Induction also needs TrkB on the potentiating synapse, activated by the BDNF released
    # there (LTP needs TrkB: Korte et al. 1995 PNAS, Minichiello et al. 1999 Neuron): a
    # TrkB antagonist removes its bound share of that local signal whatever the global
    # BDNF level (ketamine's BDNF rise does not outrun ANA-12 at the synapse; F-K-12),
    # while nothing changes without a blocker
    ("pot_gate", ("pw(1.0 - pos(1.0 - synthesis), pot_syn_exp)"
                  " * pw(1.0 - trkb_block, pot_trkb_exp)")),
    # activity-dependent: a silenced neuron makes no new spines (F-W-9)
    ("structural_input",
     "pos(priming - 1.0) * pos(synthesis - 1.0) * (1.0 - drd1_neuron_silencing)"),
    # drives for the spine and circuit layers
    ("formation_drive", "(1.0 - form_stress * stress_load) + form_gain * structural_3"),
    ("elimination_drive", "1.0 + elim_stress * stress_load"),
    ("activity_drive", "glua1 * (1.0 + act_surge * (ampa - 1.0))"),
    ("synaptic_protein", "psd95"),
    # the pulsatile D1 -> PKA drive that primes dyskinesia (and sensitises ERK): PKA above
    # the threshold in D1 neurons made supersensitive by denervation, at the full rate
    # once the supersensitivity has risen by lid_ss_full (an intact striatum, whose D1
    # sensitivity is 1, is not primed by any drug's dopamine rise: in the intrastriatal
    # lesion model AIMs develop only in severely denervated rats, Winkler et al. 2002
    # Neurobiol Dis, qualitative; REFERENCES-NEXT 3.2 cites it)
    ("lid_denervation", "1.0 - pos(1.0 - pos(d1_sensitivity - 1.0) / lid_ss_full)"),
    ("lid_drive", "pos(pka - lid_pka_thr) * lid_denervation"),
    # mature spines of primed D1 neurons enlarge (mushroom spines in dyskinetic animals;
    # Suarez et al. 2016 Cereb Cortex): 1 wherever there is no priming (mPFC)
    ("spine_size_drive", "exp(lid_size_gain * lid_priming)"),
    # spine loss of the striatal projection neurons after denervation: D2 neurons lose
    # spines within days of losing D2 stimulation (L-DOPA's dopamine relieves it), D1
    # neurons only once the tonic deficit has lasted weeks (past a threshold of the
    # slowly integrated deficit); each spine cell type reads the one it has
    # (spine.<cell>.d1_loss_gain, d2_loss_gain)
    ("spine_loss_d2", "d2_spine_deficit"),
    ("spine_loss_d1", "pos(d1_spine_deficit - d1_spine_thr) / (1.0 - d1_spine_thr)"),
)

# units of the intermediate quantities that are not dimensionless
ASSIGNMENT_UNITS: dict[str, str] = {
    **{f"{x}_{k}": "1/h" for k in SLOTS for x in ("k10", "k12", "k21", "k13", "k31")},
    **{f"kout{k}": "1/h" for k in SLOTS},
    **{f"kf{j}_{k}": "1/h" for k in SLOTS for j in range(k)},
    **{f"iv1{k}": "kg/L" for k in SLOTS},
    **{f"cuf{k}": "umol/mg" for k in SLOTS},  # uM per mg/L
    **{f"cp{k}": "mg/L" for k in SLOTS},
    **{f"cu{k}": "uM" for k in SLOTS},
    "plasticity_potential": "probability",
}

_NODE_ASSIGN_WORDS = {
    "occ": "occupancy denominator, 1 + sum of affinity x unbound concentration",
    "block": "share of the endogenous signal the bound drugs remove",
    "ag": "signal the bound drugs add (agonist)",
    "mod": "net allosteric modulation by the bound drugs (signed)",
}
# what each intermediate quantity is (the SBML export's names); the outputs' own
# descriptions name the quantities that are also outputs
ASSIGNMENT_DESCRIPTIONS: dict[str, str] = {
    **{f"k10_{k}": f"slot {k}: elimination rate from the central compartment"
       for k in SLOTS},
    **{f"k12_{k}": f"slot {k}: transfer rate central -> peripheral" for k in SLOTS},
    **{f"k21_{k}": f"slot {k}: transfer rate peripheral -> central" for k in SLOTS},
    **{f"k13_{k}": f"slot {k}: transfer rate central -> deep" for k in SLOTS},
    **{f"k31_{k}": f"slot {k}: transfer rate deep -> central" for k in SLOTS},
    **{f"kout{k}": f"slot {k}: total loss rate from the central compartment" for k in SLOTS},
    **{f"iv1{k}": f"slot {k}: 1 / central volume" for k in SLOTS},
    **{f"cuf{k}": f"slot {k}: unbound fraction / molar mass (mg/L -> uM unbound)"
       for k in SLOTS},
    **{f"cp{k}": f"slot {k}: plasma concentration" for k in SLOTS},
    **{f"cu{k}": f"slot {k}: unbound brain concentration" for k in SLOTS},
    **{f"kf{j}_{k}": f"slot {k}: formation rate from slot {j}, whose metabolite it is"
       for k in SLOTS for j in range(k)},
    **{f"{t}_{x}": f"{t}: {_NODE_ASSIGN_WORDS[x]}"
       for t in ORTHO_NODES for x in ("occ", "block", "ag")},
    **{f"{t}_mod": f"{t}: {_NODE_ASSIGN_WORDS['mod']}" for t in ALLO_NODES},
    "nmda_ratio": "NMDA channel block: sum of blocker affinity x unbound concentration",
    "nmda_rest": "NMDA block at rest (Mg2+-dependent): sum of affinity x concentration",
    "occ_int_rest": "NMDA block at rest on interneurons",
    "occ_pyr_rest": "NMDA block at rest on pyramidal neurons",
    "shut_kn": "half-shutdown occupancy to the Hill exponent",
    "inhibition": "interneuron drive onto pyramidal dendrites (1 at baseline)",
    "dis_kn": "half-disinhibition level to the Hill exponent",
    "disinhibition": "disinhibition of pyramidal dendrites (0-1)",
    "mglu_brake": "presynaptic mGluR2/3 brake on glutamate release",
    "d1n_activity": "activity of mPFC Drd1-expressing neurons (x baseline)",
    "da_tonic": "tonic dopamine after the terminals' compensation (x baseline)",
    "da_buffer": "dopamine supply buffering by the remaining terminals",
    "da_vta_release": "dopamine the VTA releases, before the manipulations aimed at mPFC",
    "da_target": "dopamine level the mPFC dopamine state relaxes to",
    "da_target_intact": "dopamine level the state of an unlesioned side relaxes to",
    "d1_signal_intact": "Drd1 signal of an intact side",
    "d1_kn": "half-activation Drd1 signal to the Hill exponent",
    "d1_act": "Drd1 receptor activation (0-1)",
    "d1_act0": "Drd1 activation at baseline dopamine",
    "pka_free": "share of PKA not blocked (drugs, PKI-alpha)",
    "pka_d1_rise": "PKA rise driven by Drd1 activation above baseline",
    "pka_target": "PKA level the mPFC Drd1 neurons' state relaxes to",
    "da_target_reward": "dopamine level the reward circuits' dopamine state relaxes to",
    "d1_signal_reward": "Drd1 signal in the reward circuits",
    "pka_target_reward": "PKA level the reward circuits' state relaxes to",
    "priming_eff": "plasticity priming left under the stress load",
    "bdnf_release": "activity-dependent BDNF release (BDNF x AMPA drive)",
    "pot_gate": "protein-synthesis gate on synaptic potentiation",
    "structural_input": "drive to structural (spine) plasticity: priming x synthesis",
    "pp_odds0": "odds against a new spine at baseline (uncaging)",
    "lid_denervation": "share of the full dyskinesia priming rate the D1 supersensitivity allows (0-1)",
    "lid_drive": "pulsatile D1 -> PKA drive that primes dyskinesia in supersensitive neurons",
    "spine_loss_d2": "spine-loss drive of D2 spiny neurons (dopamine deficit)",
    "spine_loss_d1": "spine-loss drive of D1 spiny neurons past the deficit threshold",
}

# ------------------------------------------------------------------ rates
_pk_rates = []
for _k in SLOTS:
    _formed = [f"kf{j}_{_k} * central{j}" for j in range(_k)]
    _pk_rates += [
        (f"depot{_k}", f"-ka{_k} * depot{_k}"),
        (f"gut{_k}", f"gutin{_k} - kag{_k} * gut{_k}"),
        (f"central{_k}", (f"ka{_k} * depot{_k} + kag{_k} * gut{_k} + inf{_k}"
                          f" - kout{_k} * central{_k}"
                          f" + k21_{_k} * peripheral{_k} + k31_{_k} * deep{_k}"
                          + "".join(" + " + f for f in _formed))),
        (f"peripheral{_k}", f"k12_{_k} * central{_k} - k21_{_k} * peripheral{_k}"),
        (f"deep{_k}", f"k13_{_k} * central{_k} - k31_{_k} * deep{_k}"),
        (f"brain{_k}", f"ke0{_k} * (kp{_k} * cp{_k} - brain{_k})"),
    ]

RATES: tuple[tuple[str, str], ...] = (
    *_pk_rates,
    # a monoaminergic antidepressant, once adapted to, lowers the effective drive of the
    # stressors (restored glucocorticoid feedback; sert_relief, fitted)
    ("stress_load", ("stress_k_on * stress_input * (1.0 - sert_relief * serotonergic_adaptation)"
                    " * (1.0 - stress_load)"
                    " - stress_k_off * stress_load")),
    ("dopamine", "k_da * (da_target - dopamine)"),
    ("pka", "k_pka * (pka_target - pka)"),
    ("priming", "k_priming * (pka - priming)"),
    ("peef2", "k_eef2 * (1.0 - eef2_block * rest_block - peef2)"),
    ("bdnf", ("k_bdnf * ((1.0 - bdnf_stress * stress_load)"
             " * (1.0 + bdnf_eef2_gain * (1.0 - peef2)) - bdnf)")),
    ("ptrkb", "k_trkb * (bdnf_release * (1.0 - trkb_block) + trkb_ag - ptrkb)"),
    # pulsatile D1 drive sensitises the PKA -> ERK coupling of D1 neurons (Ras-GRF1;
    # Fasano et al. 2010 PNAS), so L-DOPA's ERK and mTORC1 activation grows over the
    # course (Santini et al. 2007 J Neurosci; Westin et al. 2007 Biol Psychiatry); no
    # effect at rest (pka 1) or without sensitisation
    ("perk", ("k_erk * (pw(ptrkb, erk_trkb_exp)"
              " * pw(pka, erk_pka_exp * (1.0 + lid_erk_gain * erk_sensitization)) - perk)")),
    ("pmtor", "k_mtor * (pw(perk, mtor_erk_exp) * (1.0 - mtorc1_block) + mtorc1_ag - pmtor)"),
    ("synthesis", "k_synthesis * (1.0 + syn_mtor_frac * (pmtor - 1.0) - synthesis)"),
    ("psd95", ("k_psd95 * ((1.0 - psd95_stress * stress_load) * pw(synthesis, psd95_syn_exp)"
              " * (1.0 + psd95_struct_gain * structural_3) - psd95)")),
    ("glua1", ("k_glua1 * ((1.0 - glua1_stress * stress_load) * pw(synthesis, glua1_syn_exp)"
              " - glua1)")),
    # the acute path: existing synapses are potentiated while PKA is raised (D1 -> PKA
    # phosphorylates GluA1 S845 and primes AMPA receptors for synaptic insertion; Esteban
    # et al. 2003, Sun et al. 2005), faster the stronger the glutamatergic drive; so the
    # rescue needs dopamine (F-W-9, F-W-16, F-W-17) and fades over days unless new spines
    # take over (F-M-4, F-N-7)
    # Inserting AMPA receptors needs their local synthesis: a synthesis deficit below
    # baseline (mTORC1 block) slows the induction (pot_gate, 1 at or above baseline;
    # Autry et al. 2011: the rapid effect needs protein synthesis; Li et al. 2010:
    # rapamycin blocks it, F-K-12)
    ("potentiation", ("k_pot_on * pot_gate * pos(pka - 1.0) * d1n_activity"
                      " * (1.0 - potentiation)"
                     " - k_pot_off * potentiation - parac1_shrink * potentiation_tagged")),
    # the same induction in reward circuits (anhedonia, F-M-13), which keep it longer
    ("reward_potentiation", ("k_pot_on * pot_gate * pos(pka_reward - 1.0) * ampa"
                             " * (1.0 - reward_potentiation)"
                            " - k_rpot_off * reward_potentiation")),
    # AS-PaRAC1 (Hayashi-Takagi et al. 2015 Nature): the probe is made from a dendritically
    # targeted mRNA and gathers in recently potentiated spines over hours, so only
    # potentiation some hours old holds it; light then shrinks those synapses (and the
    # spines formed since, in the spine layer), undoing their share of the potentiation
    # (F-M-11, F-M-12). Without light (parac1_shrink 0) this state only keeps account.
    ("potentiation_tagged", ("k_parac1_tag * (potentiation - potentiation_tagged)"
                             " - k_pot_off * potentiation_tagged"
                             " - parac1_shrink * potentiation_tagged")),
    ("structural_1", "k_struct * (structural_input - structural_1)"),
    ("structural_2", "k_struct * (structural_1 - structural_2)"),
    ("structural_3", "k_struct * (structural_2 - structural_3)"),
    ("da_terminals", "k_lesion * (1.0 - dopamine_lesion - da_terminals)"),
    ("d1_sensitivity", "k_d1ss * (1.0 + d1ss_gain * pos(d1ss_onset - da_tonic) - d1_sensitivity)"),
    # each L-DOPA pulse that drives PKA in D1 neurons past a threshold primes dyskinesia
    # further, towards a ceiling that resistance lowers (past it, the pulses renormalise
    # priming); priming lasts weeks (k_lid_on is 0 outside the striatum)
    ("lid_priming", ("k_lid_on * lid_drive * (1.0 - lid_resistance - lid_priming)"
                     " - k_lid_off * lid_priming")),
    # resistance: the plasticity that BDNF -> TrkB signalling opens together with a
    # raised mTORC1-dependent synthesis (ketamine's, F-LID-3; L-DOPA raises synthesis
    # through PKA -> ERK but not TrkB, so it leaves none); it lasts weeks
    ("lid_resistance", ("k_res_on * pos(ptrkb - 1.0) * pos(synthesis - 1.0)"
                        " * (1.0 - lid_resistance) - k_res_off * lid_resistance")),
    ("dopamine_intact", "k_da * (da_target_intact - dopamine_intact)"),
    ("d2_spine_deficit", "k_d2_spine * (pos(1.0 - dopamine) - d2_spine_deficit)"),
    ("d1_spine_deficit", "k_d1_spine * (pos(1.0 - da_tonic) - d1_spine_deficit)"),
    # built by the same pulsatile D1 -> PKA drive as priming, at its rates, but not
    # capped by the resistance that ketamine leaves (which lowers the behavioural
    # ceiling of priming; a cap here would close a loop through ERK -> mTORC1 ->
    # synthesis -> resistance)
    ("erk_sensitization", ("k_lid_on * lid_drive * (1.0 - erk_sensitization)"
                           " - k_lid_off * erk_sensitization")),
    ("pka_reward", "k_pka * (pka_target_reward - pka_reward)"),
    # sustained SERT inhibition is adapted to over weeks: the serotonergic tone rises as
    # the 5-HT1A autoreceptors desensitise (Blier & de Montigny 1994 Trends Pharmacol
    # Sci), and glucocorticoid feedback recovers (Holsboer 2000 Neuropsychopharmacology)
    ("serotonergic_adaptation", "k_sert_adapt * (sert_block - serotonergic_adaptation)"),
    ("dopamine_reward", "k_da * (da_target_reward - dopamine_reward)"),
)


def _analyte(a: str, what: str) -> str:
    return " + ".join(f"an_{a}{k} * {what}{k}" for k in SLOTS)


# ------------------------------------------------------------------ outputs
# name -> (expression, unit, description). Concentrations in ng/mL (plasma) and ng/g (brain,
# density 1 g/mL), as labs report them.
OUTPUTS: tuple[tuple[str, str, str, str], ...] = (
    ("ketamine_plasma", f"({_analyte('ketamine', 'cp')}) * 1000.0", "ng/mL",
     "ketamine (S + R) in plasma"),
    ("esketamine_plasma", f"({_analyte('esketamine', 'cp')}) * 1000.0", "ng/mL",
     "S-ketamine in plasma"),
    ("arketamine_plasma", f"({_analyte('arketamine', 'cp')}) * 1000.0", "ng/mL",
     "R-ketamine in plasma"),
    ("norketamine_plasma", f"({_analyte('norketamine', 'cp')}) * 1000.0", "ng/mL",
     "norketamine in plasma"),
    ("hnk_plasma", f"({_analyte('hnk', 'cp')}) * 1000.0", "ng/mL", "(2R,6R)-HNK in plasma"),
    ("drug_plasma", f"({_analyte('drug', 'cp')}) * 1000.0", "ng/mL",
     "the dosed compounds that report as 'drug' (any compound file), in plasma"),
    ("ketamine_brain", f"({_analyte('ketamine', 'brain')}) * 1000.0", "ng/g", "ketamine in brain"),
    ("norketamine_brain", f"({_analyte('norketamine', 'brain')}) * 1000.0", "ng/g",
     "norketamine in brain"),
    ("hnk_brain", f"({_analyte('hnk', 'brain')}) * 1000.0", "ng/g", "(2R,6R)-HNK in brain"),
    ("drug_brain", f"({_analyte('drug', 'brain')}) * 1000.0", "ng/g",
     "the dosed compounds that report as 'drug', in brain"),
    ("occupancy_interneuron", "occ_int", "1", "NMDA receptor block on interneurons"),
    ("occupancy_pyramidal", "occ_pyr", "1", "NMDA receptor block on pyramidal cells"),
    ("occupancy_posteromedial", "occ_rsc", "1",
     "NMDA receptor block in posteromedial cortex (dissociation)"),
    ("pyramidal_shutdown", "pyr_shutdown", "1",
     "loss of NMDA-dependent pyramidal recurrent activity (0-1; steep near anaesthetic block)"),
    ("rest_block_pyramidal", "rest_block", "1",
     "block of the pyramidal NMDA rest current (NMDA block at rest and GluN2B)"),
    ("glutamate_surge", "glutamate", "1", "glutamate release (x baseline)"),
    ("ampa_drive", "ampa", "1", "AMPA receptor drive (x baseline)"),
    ("da_rel", "dopamine", "1", "extracellular dopamine of the region (x intact baseline)"),
    ("pka_rel", "pka", "1", "PKA activity (x baseline)"),
    ("plasticity_potential", "plasticity_potential", "probability",
     "probability that glutamate uncaging evokes a new spine"),
    ("peef2_rel", "peef2", "1", "p-eEF2 (x baseline)"),
    ("bdnf_rel", "bdnf", "1", "BDNF protein (x baseline)"),
    ("ptrkb_rel", "ptrkb", "1", "p-TrkB (x baseline)"),
    ("perk_rel", "perk", "1", "p-ERK1/2 (x baseline)"),
    ("pmtor_rel", "pmtor", "1", "p-mTOR (x baseline)"),
    ("synthesis_rel", "synthesis", "1", "local protein synthesis (x baseline)"),
    ("psd95_rel", "psd95", "1", "PSD95 (x baseline)"),
    ("glua1_rel", "glua1", "1", "synaptic GluA1 (x baseline)"),
    ("stress_load", "stress_load", "1", "stress load"),
    ("formation_drive", "formation_drive", "1", "spine formation drive (x baseline)"),
    ("elimination_drive", "elimination_drive", "1", "spine elimination drive (x baseline)"),
    ("activity_drive", "activity_drive", "1", "acute excitability / activity drive (x baseline)"),
    ("da_terminals", "terminals", "1", "dopamine terminals left in the region (fraction)"),
    ("d1_sensitivity", "d1_sensitivity", "1", "D1 receptor sensitivity (x intact)"),
    ("d1_drive", "d1_signal", "1",
     ("D1 receptor signal: (dopamine less block and knock-out, plus agonists) x D1 "
      "sensitivity (x intact)")),
    ("lid_priming", "lid_priming", "1", "priming of L-DOPA-induced dyskinesia (0-1)"),
    ("lid_resistance", "lid_resistance", "1",
     "resistance to dyskinesia priming (0-1; lowers its ceiling)"),
    ("spine_size_drive", "spine_size_drive", "1",
     "mature spine size (x baseline), for the spine layer"),

    ("synaptic_protein", "synaptic_protein", "1", "synaptic protein level (x baseline)"),
    ("synaptic_potentiation", "potentiation", "1",
     "PKA-gated potentiation of existing synapses (0-1)"),
    ("reward_potentiation", "reward_potentiation", "1",
     "the potentiation in reward circuits, relieving anhedonia (0-1)"),
    # midazolam, the active placebo of clinical trials (no target: read by plasma_pk and
    # the sedation scale only); appended so the other outputs keep their places
    ("midazolam_plasma", f"({_analyte('midazolam', 'cp')}) * 1000.0", "ng/mL",
     "midazolam in plasma"),
    ("midazolam_brain", f"({_analyte('midazolam', 'brain')}) * 1000.0", "ng/g",
     "midazolam at the effect site (brain compartment, plasma-equivalent: kp_brain 1)"),
    ("da_intact", "dopamine_intact", "1",
     "dopamine of the same region on the unlesioned side (x baseline)"),
    ("d1_asymmetry", "d1_signal - d1_signal_intact", "1",
     ("D1 signal of the region less that of the unlesioned side (rotation drive; > 0 "
      "turns the animal contralateral to the lesion)")),
    ("spine_loss_d2", "spine_loss_d2", "1",
     "spine-loss drive of D2 (indirect-pathway) neurons after denervation, for the spine layer"),
    ("spine_loss_d1", "spine_loss_d1", "1",
     "spine-loss drive of D1 (direct-pathway) neurons after denervation, for the spine layer"),
    # oral antidepressants (SERT inhibitors; appended so the other outputs keep their places)
    ("occupancy_sert", "sert_block", "1", "serotonin transporter inhibition (0-1)"),
    ("serotonergic_adaptation", "serotonergic_adaptation", "1",
     "adaptation to sustained SERT inhibition (0-1), which lowers the effective stress drive"),
    # the structural (drug-made) part of the formation drive, for the patients' synaptic
    # state (appended so the other outputs keep their places)
    ("structural_formation", "form_gain * structural_3", "1",
     "the formation drive's structural part above its stressed level (x baseline)"),
)

STATE_NAMES = tuple(s.name for s in STATES)


def _static_assignments() -> tuple[str, ...]:
    """Assignments that depend on parameters only (no state, no control)."""
    static: list[str] = []
    known = {p.name for p in PARAMS}
    for name, expr in ASSIGNMENTS:
        symbols = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) - {
            "pos", "pw", "hillk", "exp", "log"}
        if symbols <= known | set(static):
            static.append(name)
    return tuple(static)


STATIC_NAMES = _static_assignments()
PARAM_NAMES = tuple(p.name for p in PARAMS)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
OUTPUT_NAMES = tuple(o[0] for o in OUTPUTS)
# the solver's parameter vector: model parameters then controls
PVEC_NAMES = PARAM_NAMES + CONTROL_NAMES
N_STATES = len(STATES)
N_PVEC = len(PVEC_NAMES)
