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


@dataclass(frozen=True)
class State:
    name: str
    initial: float
    unit: str
    description: str


@dataclass(frozen=True)
class Param:
    """A model parameter; ``registry`` is a name template with ``{species}``."""

    name: str
    registry: str
    unit: str


@dataclass(frozen=True)
class Control:
    """A piecewise-constant input changed only by dosing and intervention events."""

    name: str
    unit: str
    description: str


# ------------------------------------------------------------------ states
_PARENTS = ("S", "R")  # S- and R-ketamine are tracked separately (F-K-17)

STATES: tuple[State, ...] = (
    *(
        s
        for p in _PARENTS
        for s in (
            State(f"{p}_depot", 0.0, "mg/kg", f"{p}-ketamine at the extravascular absorption site"),
            State(f"{p}_central", 0.0, "mg/kg", f"{p}-ketamine in the central (plasma) compartment"),
            State(f"{p}_peripheral", 0.0, "mg/kg", f"{p}-ketamine in the peripheral compartment"),
            State(f"{p}_brain", 0.0, "mg/L", f"{p}-ketamine brain (effect-site) concentration"),
        )
    ),
    State("NK_depot", 0.0, "mg/kg", "norketamine dosed at an extravascular site"),
    State("NK_central", 0.0, "mg/kg", "norketamine, central compartment"),
    State("NK_brain", 0.0, "mg/L", "norketamine brain concentration"),
    State("HNK_depot", 0.0, "mg/kg", "(2R,6R)-HNK dosed at an extravascular site"),
    State("HNK_central", 0.0, "mg/kg", "(2R,6R)-HNK, central compartment"),
    State("HNK_brain", 0.0, "mg/L", "(2R,6R)-HNK brain concentration"),
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
)

# ------------------------------------------------------------------ parameters
PARAMS: tuple[Param, ...] = (
    Param("mw_ket", "chem.mw_ketamine", "g/mol"),
    Param("mw_nk", "chem.mw_norketamine", "g/mol"),
    Param("mw_hnk", "chem.mw_hnk", "g/mol"),
    Param("cl_S", "pk.{species}.ketamine.cl", "L/h/kg"),
    Param("r_to_s_cl", "pk.{species}.ketamine.r_to_s_cl", "1"),
    Param("v1", "pk.{species}.ketamine.v1", "L/kg"),
    Param("q", "pk.{species}.ketamine.q", "L/h/kg"),
    Param("v2", "pk.{species}.ketamine.v2", "L/kg"),
    Param("kp_ket", "pk.{species}.ketamine.kp_brain", "1"),
    Param("ke0_ket", "pk.{species}.ketamine.ke0", "1/h"),
    Param("f_nk", "pk.{species}.ketamine.f_nk", "1"),
    Param("f_hnk", "pk.{species}.ketamine.f_hnk", "1"),
    Param("cl_nk", "pk.{species}.norketamine.cl", "L/h/kg"),
    Param("v_nk", "pk.{species}.norketamine.v", "L/kg"),
    Param("cl_hnk", "pk.{species}.hnk.cl", "L/h/kg"),
    Param("v_hnk", "pk.{species}.hnk.v", "L/kg"),
    Param("kp_nk", "pk.{species}.metabolite.kp_brain_nk", "1"),
    Param("kp_hnk", "pk.{species}.metabolite.kp_brain_hnk", "1"),
    Param("ke0_met", "pk.{species}.metabolite.ke0", "1/h"),
    Param("ki_S", "rec.ki_s_ketamine", "uM"),
    Param("ki_R", "rec.ki_r_ketamine", "uM"),
    Param("ki_nk", "rec.ki_norketamine", "uM"),
    Param("ki_hnk", "rec.ki_hnk", "uM"),
    Param("fu_brain", "rec.fu_brain", "1"),
    Param("pot_int", "rec.potency_interneuron", "1"),
    Param("pot_pyr", "rec.potency_pyramidal", "1"),
    Param("glu_amp", "sig.glu_amplitude", "1"),
    Param("dis_o50", "sig.disinhibition_o50", "1"),
    Param("dis_n", "sig.disinhibition_hill", "1"),
    Param("hnk_emax", "sig.hnk_ampa_emax", "1"),
    Param("hnk_ec50", "sig.hnk_ampa_ec50", "uM"),
    Param("da_gain", "sig.da_gain", "1"),
    Param("k_da", "sig.k_da", "1/h"),
    Param("da_term_act", "sig.da_terminal_activation", "1"),
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
    Param("k_rpot_off", "sig.k_reward_potentiation_off", "1/h"),
    Param("k_parac1_tag", "sig.k_parac1_tag", "1/h"),
    Param("stress_k_on", "stress.k_on", "1/h"),
    Param("stress_k_off", "stress.k_off", "1/h"),
    Param("rapa_emax", "tool.rapamycin.emax", "1"),
    Param("nbqx_emax", "tool.nbqx.emax", "1"),
    Param("ana12_emax", "tool.ana12.emax", "1"),
    Param("sch_emax", "tool.sch23390.emax", "1"),
    Param("skf_emax", "tool.skf81297.emax", "1"),
    Param("h89_emax", "tool.h89.emax", "1"),
    Param("ldopa_emax", "tool.ldopa.emax", "1"),
)

# ------------------------------------------------------------------ controls
CONTROLS: tuple[Control, ...] = (
    *(Control(f"ka_{d}", "1/h", f"absorption rate of the current {d} extravascular dose")
      for d in ("S", "R", "NK", "HNK")),
    *(Control(f"inf_{d}", "mg/kg/h", f"{d} infusion rate") for d in ("S", "R", "NK", "HNK")),
    Control("stress_input", "1", "summed intensity of the stressors now on"),
    Control("r_rapamycin", "1", "rapamycin dose / ED50 (while acting)"),
    Control("r_nbqx", "1", "NBQX dose / ED50 (while acting)"),
    Control("r_ana12", "1", "ANA-12 dose / ED50 (while acting)"),
    Control("r_sch23390", "1", "SCH23390 dose / ED50 (while acting)"),
    Control("r_skf81297", "1", "SKF81297 dose / ED50 (while acting)"),
    Control("r_h89", "1", "H-89 dose / ED50 (while acting)"),
    Control("r_ldopa", "1", "L-DOPA dose / ED50 (while acting)"),
    Control("drd1_ko", "1", "1 after conditional Drd1 knock-out in mPFC"),
    Control("pki_block", "1", "PKA block by PKI-alpha expression"),
    Control("vta_inhibition", "1", "fall of VTA dopamine output (chemogenetic inhibition)"),
    Control("terminal_activation", "1", "1 while mPFC dopamine terminals are activated"),
    Control("terminal_inhibition", "1", "fall of mPFC dopamine release (terminal inhibition)"),
    Control("parac1_shrink", "1/h",
            "shrinkage rate of probe-holding potentiated synapses while AS-PaRAC1 is lit"),
)

# ------------------------------------------------------------------ algebra, in order
ASSIGNMENTS: tuple[tuple[str, str], ...] = (
    ("k10_S", "cl_S / v1"),
    ("k10_R", "cl_S * r_to_s_cl / v1"),
    ("k12", "q / v1"),
    ("k21", "q / v2"),
    ("cp_S", "S_central / v1"),
    ("cp_R", "R_central / v1"),
    ("cp_nk", "NK_central / v_nk"),
    ("cp_hnk", "HNK_central / v_hnk"),
    # unbound brain concentrations in uM (mg/L -> uM: x 1000 / MW)
    ("cu_S", "fu_brain * S_brain * 1000.0 / mw_ket"),
    ("cu_R", "fu_brain * R_brain * 1000.0 / mw_ket"),
    ("cu_nk", "fu_brain * NK_brain * 1000.0 / mw_nk"),
    ("cu_hnk", "fu_brain * HNK_brain * 1000.0 / mw_hnk"),
    # NMDA channel block: competitive at one site; interneurons more sensitive (F-K-11, F-W-18)
    ("nmda_ratio", "pos(cu_S / ki_S + cu_R / ki_R + cu_nk / ki_nk + cu_hnk / ki_hnk)"),
    ("occ_int", "nmda_ratio / (nmda_ratio + pot_int)"),
    ("occ_pyr", "nmda_ratio / (nmda_ratio + pot_pyr)"),
    # disinhibition -> glutamate surge; block on pyramidal cells limits it at high doses
    ("dis_kn", "pw(dis_o50, dis_n)"),
    ("disinhibition", "hillk(occ_int, dis_kn, dis_n)"),
    ("glutamate", "1.0 + glu_amp * disinhibition * (1.0 - occ_pyr)"),
    ("hnk_pot", "hnk_emax * cu_hnk / (cu_hnk + hnk_ec50)"),
    ("ampa_block", "nbqx_emax * r_nbqx / (1.0 + r_nbqx)"),
    ("ampa", "1.0 + (glutamate - 1.0 + hnk_pot) * (1.0 - ampa_block)"),
    # VTA -> mPFC dopamine (F-W-8), its manipulations (F-W-11, F-W-16, F-W-17)
    ("da_target", ("(1.0 + da_gain * (ampa - 1.0) + ldopa_emax * r_ldopa / (1.0 + r_ldopa))"
                  " * (1.0 - vta_inhibition) * (1.0 - terminal_inhibition)"
                  " + da_term_act * terminal_activation")),
    # Drd1 -> cAMP/PKA (F-W-10..F-W-14); blockers remove the Drd1-driven rise
    ("d1_signal", ("dopamine * (1.0 - sch_emax * r_sch23390 / (1.0 + r_sch23390))"
                  " * (1.0 - drd1_ko) + skf_emax * r_skf81297 / (1.0 + r_skf81297)")),
    ("d1_kn", "pw(d1_k, d1_n)"),
    ("d1_act", "hillk(d1_signal, d1_kn, d1_n)"),
    ("d1_act0", "1.0 / (1.0 + d1_kn)"),
    ("pka_free", "(1.0 - h89_emax * r_h89 / (1.0 + r_h89)) * (1.0 - pki_block)"),
    ("pka_target", "1.0 + pka_gain * pka_free * pos(d1_act - d1_act0)"),
    # plasticity potential: probability scale, logistic in log priming (F-W-5, F-W-6, F-W-15)
    ("pp_odds0", "(1.0 - pp_control) / pp_control"),
    ("priming_eff", "priming * (1.0 - pp_stress * stress_load)"),
    ("plasticity_potential",
     "1.0 / (1.0 + pp_odds0 * pw(priming_eff, -pp_slope))"),
    # eEF2 -> BDNF -> TrkB -> ERK -> mTORC1 -> synthesis (F-K-10, F-K-11)
    ("bdnf_release", "bdnf * ampa"),
    ("trkb_block", "ana12_emax * r_ana12 / (1.0 + r_ana12)"),
    ("mtor_block", "rapa_emax * r_rapamycin / (1.0 + r_rapamycin)"),
    ("structural_input", "pos(priming - 1.0) * pos(synthesis - 1.0)"),
    # drives for the spine and circuit layers
    ("formation_drive", "(1.0 - form_stress * stress_load) + form_gain * structural_3"),
    ("elimination_drive", "1.0 + elim_stress * stress_load"),
    ("activity_drive", "glua1 * (1.0 + act_surge * (ampa - 1.0))"),
    ("synaptic_protein", "psd95"),
)

# units of the intermediate quantities that are not dimensionless
ASSIGNMENT_UNITS: dict[str, str] = {
    **{k: "1/h" for k in ("k10_S", "k10_R", "k12", "k21")},
    **{k: "mg/L" for k in ("cp_S", "cp_R", "cp_nk", "cp_hnk")},
    **{k: "uM" for k in ("cu_S", "cu_R", "cu_nk", "cu_hnk")},
    "plasticity_potential": "probability",
}

# ------------------------------------------------------------------ rates
_pk_rates = []
for _p, _k10 in (("S", "k10_S"), ("R", "k10_R")):
    _pk_rates += [
        (f"{_p}_depot", f"-ka_{_p} * {_p}_depot"),
        (f"{_p}_central", (f"ka_{_p} * {_p}_depot + inf_{_p} - ({_k10} + k12) * {_p}_central"
                          f" + k21 * {_p}_peripheral")),
        (f"{_p}_peripheral", f"k12 * {_p}_central - k21 * {_p}_peripheral"),
        (f"{_p}_brain", f"ke0_ket * (kp_ket * cp_{_p} - {_p}_brain)"),
    ]

RATES: tuple[tuple[str, str], ...] = (
    *_pk_rates,
    ("NK_depot", "-ka_NK * NK_depot"),
    ("NK_central", ("ka_NK * NK_depot + inf_NK"
                   " + f_nk * mw_nk / mw_ket * (k10_S * S_central + k10_R * R_central)"
                   " - cl_nk / v_nk * NK_central")),
    ("NK_brain", "ke0_met * (kp_nk * cp_nk - NK_brain)"),
    ("HNK_depot", "-ka_HNK * HNK_depot"),
    ("HNK_central", ("ka_HNK * HNK_depot + inf_HNK + f_hnk * mw_hnk / mw_ket * k10_R * R_central"
                    " - cl_hnk / v_hnk * HNK_central")),
    ("HNK_brain", "ke0_met * (kp_hnk * cp_hnk - HNK_brain)"),
    ("stress_load", ("stress_k_on * stress_input * (1.0 - stress_load)"
                    " - stress_k_off * stress_load")),
    ("dopamine", "k_da * (da_target - dopamine)"),
    ("pka", "k_pka * (pka_target - pka)"),
    ("priming", "k_priming * (pka - priming)"),
    ("peef2", "k_eef2 * (1.0 - eef2_block * occ_pyr - peef2)"),
    ("bdnf", ("k_bdnf * ((1.0 - bdnf_stress * stress_load)"
             " * (1.0 + bdnf_eef2_gain * (1.0 - peef2)) - bdnf)")),
    ("ptrkb", "k_trkb * (bdnf_release * (1.0 - trkb_block) - ptrkb)"),
    ("perk", "k_erk * (pw(ptrkb, erk_trkb_exp) * pw(pka, erk_pka_exp) - perk)"),
    ("pmtor", "k_mtor * (pw(perk, mtor_erk_exp) * (1.0 - mtor_block) - pmtor)"),
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
    ("potentiation", ("k_pot_on * pos(pka - 1.0) * ampa * (1.0 - potentiation)"
                     " - k_pot_off * potentiation - parac1_shrink * potentiation_tagged")),
    # the same induction in reward circuits (anhedonia, F-M-13), which keep it longer
    ("reward_potentiation", ("k_pot_on * pos(pka - 1.0) * ampa * (1.0 - reward_potentiation)"
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
)

# ------------------------------------------------------------------ outputs
# name -> (expression, unit, description). Concentrations in ng/mL (plasma) and ng/g (brain,
# density 1 g/mL), as labs report them.
OUTPUTS: tuple[tuple[str, str, str, str], ...] = (
    ("ketamine_plasma", "(cp_S + cp_R) * 1000.0", "ng/mL", "ketamine (S + R) in plasma"),
    ("esketamine_plasma", "cp_S * 1000.0", "ng/mL", "S-ketamine in plasma"),
    ("arketamine_plasma", "cp_R * 1000.0", "ng/mL", "R-ketamine in plasma"),
    ("norketamine_plasma", "cp_nk * 1000.0", "ng/mL", "norketamine in plasma"),
    ("hnk_plasma", "cp_hnk * 1000.0", "ng/mL", "(2R,6R)-HNK in plasma"),
    ("ketamine_brain", "(S_brain + R_brain) * 1000.0", "ng/g", "ketamine in brain"),
    ("norketamine_brain", "NK_brain * 1000.0", "ng/g", "norketamine in brain"),
    ("hnk_brain", "HNK_brain * 1000.0", "ng/g", "(2R,6R)-HNK in brain"),
    ("occupancy_interneuron", "occ_int", "1", "NMDA receptor block on interneurons"),
    ("occupancy_pyramidal", "occ_pyr", "1", "NMDA receptor block on pyramidal cells"),
    ("glutamate_surge", "glutamate", "1", "glutamate release (x baseline)"),
    ("ampa_drive", "ampa", "1", "AMPA receptor drive (x baseline)"),
    ("da_rel", "dopamine", "1", "mPFC dopamine (x baseline)"),
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
    ("synaptic_protein", "synaptic_protein", "1", "synaptic protein level (x baseline)"),
    ("synaptic_potentiation", "potentiation", "1",
     "PKA-gated potentiation of existing synapses (0-1)"),
    ("reward_potentiation", "reward_potentiation", "1",
     "the potentiation in reward circuits, relieving anhedonia (0-1)"),
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
