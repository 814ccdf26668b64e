"""Signalling-layer targets from the seed papers (SEED-FACTS sections A and B).

Each target names the fact IDs it tests, the source, the published value and a
tolerance stated before the model was tuned. One scenario (the same shared parameter
registry) produces every arm; arms differ only in what the published design sets.
Values are cohort means (n = 20 with between-subject variability) of the noise-free
``signaling_state`` assay, so the tests check the model, not sampling noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

TIMES = "[-1h, 0h, 30min, 1h, 90min, 2h, 3h, 4h, 6h, 8h, 12h, 18h, 24h, 48h, 72h]"
KET = "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}"
SAL = "{at: 0h, drug: saline, route: ip}"
CORT = "{at: -10d, stress: cort, duration: 10d}"
SHOCK = "{at: -2d, stress: inescapable_shock, duration: 2h}"
ARMS = {
    "saline": SAL,
    "ketamine": KET,
    "sch23390_ketamine": "{at: -30min, drug: sch23390, dose: 0.1 mg/kg, route: ip}, " + KET,
    "vta_inhibition_ketamine":
        "{at: -30min, intervention: vta_da_chemogenetic_inhibition, duration: 4h}, " + KET,
    "drd1_cko_ketamine": "{at: -21d, intervention: drd1_cko}, " + KET,
    "skf81297": "{at: 0h, drug: skf81297, dose: 1 mg/kg, route: ip}",
    "h89_skf81297": "{at: -10min, drug: h89, dose: 10 uM, route: bath}, "
                    "{at: 0h, drug: skf81297, dose: 10 uM, route: bath}",
    "pki_skf81297": "{at: -21d, intervention: pki_alpha}, "
                    "{at: 0h, drug: skf81297, dose: 1 mg/kg, route: ip}",
    "nbqx_ketamine": "{at: -10min, drug: nbqx, dose: 10 mg/kg, route: ip}, " + KET,
    "ana12_ketamine": "{at: -30min, drug: ana12, dose: 0.5 mg/kg, route: ip}, " + KET,
    "rapamycin_ketamine": "{at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}, " + KET,
    "cort_saline": CORT + ", " + SAL,
    "cort_ketamine": CORT + ", " + KET,
    "shock_saline": SHOCK + ", " + SAL,
    "shock_ketamine": SHOCK + ", " + KET,
    "parac1_3h_ketamine": KET + ", {at: 3h, intervention: as_parac1_photoactivation}",
    "parac1_24h_ketamine": KET + ", {at: 24h, intervention: as_parac1_photoactivation}",
    "drd1_neuron_stim": "{at: 0h, intervention: mpfc_drd1_neuron_stimulation, duration: 1h}",
    "drd1_neuron_silencing_ketamine":
        "{at: -30min, intervention: mpfc_drd1_neuron_silencing, duration: 4h}, " + KET,
}


@pytest.fixture(scope="module")
def traj() -> dict[tuple[str, str], pd.Series]:
    arms = "".join(
        f"  - name: {name}\n    n: 20\n    protocol: [{proto}]\n"
        f"    assays: [{{assay: signaling_state, at: {TIMES}}}]\n"
        for name, proto in ARMS.items())
    text = f"name: signaling_targets\nspecies: mouse\nseed: 11\narms:\n{arms}"
    r = simulate(load_scenario_text(text), registry=load_registry()).readouts
    means = r.groupby(["arm", "readout", "time_h"])["value"].mean()
    return {(a, ro): means.loc[(a, ro)] for a in ARMS for ro in set(r["readout"])}


def at(traj, arm: str, readout: str, t_h: float) -> float:
    s = traj[(arm, readout)]
    return float(s.loc[np.isclose(s.index, t_h)].iloc[0])


def excess_peak(traj, arm: str, readout: str) -> float:
    """Largest rise above the arm's own pre-drug value (t = -1 h)."""
    s = traj[(arm, readout)]
    return float(s[s.index >= 0].max() - s.loc[-1.0])


# ------------------------------------------------------------------ F-W-8: dopamine
def test_dopamine_raised_for_about_2h(traj):
    """F-W-8 (Wu et al. 2021 via commentary 001; Moghaddam et al. 1997 J Neurosci):
    sub-anaesthetic ketamine raises mPFC dopamine for about 2 h.
    Tolerance: peak 1.5-4x baseline within the first 2 h; still >= 1.3x at 2 h;
    back below 1.25x by 4 h."""
    peak = max(at(traj, "ketamine", "da_rel", t) for t in (0.5, 1.0, 1.5, 2.0))
    assert 1.5 <= peak <= 4.0
    assert at(traj, "ketamine", "da_rel", 2.0) >= 1.3
    assert at(traj, "ketamine", "da_rel", 4.0) < 1.25
    assert abs(at(traj, "saline", "da_rel", 1.0) - 1.0) < 1e-6


# ------------------------------------------------------------------ F-W-5, F-W-6: the window
def test_plasticity_potential_control_20_25_percent(traj):
    """F-W-5 (Wu et al. 2021): uncaging evokes a spine 20-25% of the time in controls."""
    for t in (0.0, 2.0, 24.0):
        assert 0.20 <= at(traj, "saline", "plasticity_potential", t) <= 0.25


def test_plasticity_window_after_ketamine(traj):
    """F-W-6 (Wu et al. 2021): about 50% at 2 h (tolerance 0.42-0.58), still raised at
    4 h (>= 0.30), back to control (0.20-0.25) at 12, 24 and 72 h."""
    pp = lambda t: at(traj, "ketamine", "plasticity_potential", t)
    assert 0.42 <= pp(2.0) <= 0.58
    assert pp(4.0) >= 0.30
    for t in (12.0, 24.0, 72.0):
        assert 0.20 <= pp(t) <= 0.25


def test_window_comes_before_formation(traj):
    """F-W-6: the plasticity window precedes the rise in spine formation drive."""
    s_pp = traj[("ketamine", "plasticity_potential")]
    s_f = traj[("ketamine", "formation_drive")]
    assert s_pp.idxmax() < s_f.idxmax()


# ------------------------------------------------------------------ F-W-10..F-W-14: Drd1/PKA
@pytest.mark.parametrize("arm,fact", [
    ("sch23390_ketamine", "F-W-10"),
    ("vta_inhibition_ketamine", "F-W-11"),
    ("drd1_cko_ketamine", "F-W-12"),
    ("h89_skf81297", "F-W-14"),
    ("pki_skf81297", "F-W-14"),
])
def test_dopamine_pka_dependence(traj, arm, fact):
    """Wu et al. 2021: the manipulation abolishes the rise at 2 h: plasticity potential
    stays within the control band 0.20-0.25 (absolute tolerance as published range)."""
    assert 0.20 <= at(traj, arm, "plasticity_potential", 2.0) <= 0.25, fact


def test_drd1_agonist_mimics_ketamine(traj):
    """F-W-13 (Wu et al. 2021): SKF81297 alone raises evoked spinogenesis like ketamine:
    2 h value 0.40-0.60."""
    assert 0.40 <= at(traj, "skf81297", "plasticity_potential", 2.0) <= 0.60


def test_vta_inhibition_removes_delayed_formation(traj):
    """F-W-11: VTA dopamine inhibition also abolishes the delayed density rise: the
    formation-drive excess is < 25% of ketamine's."""
    assert excess_peak(traj, "vta_inhibition_ketamine", "formation_drive") < \
        0.25 * excess_peak(traj, "ketamine", "formation_drive")


# ------------------------------------------------------------------ F-W-3, F-M-5: timing
def test_formation_drive_delayed_past_6h_high_12_24h(traj):
    """F-W-3 (Kwan commentary 001; Moda-Sava et al. 2019): reversal not before 6 h,
    F-M-5: formation raised 12-24 h. Tolerance: excess at <= 6 h below 25% of the peak
    excess; peak between 10 and 24 h; excess at 12 h and 24 h >= 60% of the peak."""
    s = traj[("ketamine", "formation_drive")] - 1.0
    peak = s.max()
    assert peak > 0.3
    assert s[(s.index >= 0) & (s.index <= 6.0)].max() < 0.25 * peak
    assert 10.0 <= s.idxmax() <= 24.0
    assert s.loc[12.0] >= 0.6 * peak and s.loc[24.0] >= 0.6 * peak


# ------------------------------------------------------------------ F-K-12: AMPA/TrkB/mTORC1
@pytest.mark.parametrize("arm", ["nbqx_ketamine", "ana12_ketamine", "rapamycin_ketamine"])
def test_ampa_trkb_mtorc1_block_removes_downstream_drives(traj, arm):
    """F-K-12 (Krystal et al. 2019; Li et al. 2010 Science; Maeng et al. 2008): blocking
    AMPA receptors, BDNF-TrkB or mTORC1 prevents ketamine's downstream effects.
    Tolerance: the formation-drive excess and the 24 h synaptic-protein rise are each
    cut by at least 75% relative to ketamine alone."""
    assert excess_peak(traj, arm, "formation_drive") <= \
        0.25 * excess_peak(traj, "ketamine", "formation_drive")
    rise = lambda a: at(traj, a, "synaptic_protein", 24.0) - 1.0
    assert rise(arm) <= 0.25 * rise("ketamine")


# ------------------------------------------------------------------ F-M-8, F-N-1: stress
def test_stress_lowers_synaptic_protein_and_ketamine_reverses(traj):
    """F-M-8 (Moda-Sava et al. 2019): CORT lowers PSD95 and ketamine reverses it.
    Tolerance: CORT lowers synaptic protein by >= 15% at 0 h; 24 h after ketamine the
    CORT+ketamine value has recovered at least half of the loss (CORT+saline as
    reference)."""
    ctrl = at(traj, "saline", "synaptic_protein", 24.0)
    cort = at(traj, "cort_saline", "synaptic_protein", 24.0)
    assert at(traj, "cort_saline", "synaptic_protein", 0.0) <= 0.85
    recovered = (at(traj, "cort_ketamine", "synaptic_protein", 24.0) - cort) / (ctrl - cort)
    assert recovered >= 0.5


def test_stress_raises_elimination_lowers_formation(traj):
    """F-N-1, F-M-2: stress raises the elimination drive and lowers the formation drive
    (tolerance: each by >= 15% at the end of 10 days of CORT)."""
    assert at(traj, "cort_saline", "elimination_drive", 0.0) >= 1.15
    assert at(traj, "cort_saline", "formation_drive", 0.0) <= 0.85


def test_learned_helplessness_lowers_window_and_ketamine_protects(traj):
    """F-W-15 (Wu et al. 2021): inescapable shock lowers evoked spinogenesis (below the
    control band) and ketamine protects (2 h value back at or above control)."""
    assert at(traj, "shock_saline", "plasticity_potential", 2.0) < 0.20
    assert at(traj, "shock_ketamine", "plasticity_potential", 2.0) >= 0.22


# ------------------------------------------------------------------ F-M-11, F-M-12: AS-PaRAC1
def test_parac1_light_undoes_tagged_potentiation_only(traj):
    """The probe gathers in potentiated synapses over hours: light at 3 h takes little of
    the young potentiation (the acute effect stays, F-M-11), light at 24 h most of what is
    left (F-M-12); reward circuits, outside the lit field, keep theirs (F-M-13)."""
    pot = "synaptic_potentiation"
    ket_4h = at(traj, "ketamine", pot, 4.0)
    assert ket_4h > 0.1
    assert at(traj, "parac1_3h_ketamine", pot, 4.0) > 0.8 * ket_4h
    ket_48h = at(traj, "ketamine", pot, 48.0)
    assert at(traj, "parac1_24h_ketamine", pot, 48.0) < 0.4 * ket_48h
    # (each arm is its own cohort of 20 mice: equal up to sampling)
    assert at(traj, "parac1_24h_ketamine", pot, 24.0) == pytest.approx(
        at(traj, "ketamine", pot, 24.0), rel=0.1)
    for arm in ("parac1_3h_ketamine", "parac1_24h_ketamine"):
        assert at(traj, arm, "reward_potentiation", 48.0) == pytest.approx(
            at(traj, "ketamine", "reward_potentiation", 48.0), rel=0.1)


# ------------------------------------------------------------------ F-W-9: mPFC Drd1 neurons
def test_drd1_neuron_interventions_act_on_the_neurons_not_on_dopamine(traj):
    """Hare et al. 2019: light on the Drd1-expressing neurons, without a drug, potentiates
    synapses as ketamine does (through their glutamatergic output, which raises dopamine
    and PKA); silencing them leaves ketamine's dopamine rise alone but stops the
    potentiation and the spine formation that need the neurons' own activity, and the
    PKA rise of the silenced neurons (their cAMP needs their activity), so that little
    potentiation forms after the light either."""
    pot = "synaptic_potentiation"
    assert at(traj, "saline", pot, 2.0) < 0.01
    assert at(traj, "drd1_neuron_stim", pot, 2.0) > 0.2
    assert at(traj, "drd1_neuron_stim", "pka_rel", 1.0) > 1.5
    assert at(traj, "drd1_neuron_silencing_ketamine", "da_rel", 1.0) == pytest.approx(
        at(traj, "ketamine", "da_rel", 1.0), rel=0.15)
    assert at(traj, "drd1_neuron_silencing_ketamine", pot, 3.0) < 0.3 * at(
        traj, "ketamine", pot, 3.0)
    assert excess_peak(traj, "drd1_neuron_silencing_ketamine", "formation_drive") < 0.8 * (
        excess_peak(traj, "ketamine", "formation_drive"))
    # the silenced neurons' PKA: about the residual activity's share of ketamine's rise
    # during the light (silencing 0.9), and no large tail after it (light off at 3.5 h)
    assert excess_peak(traj, "drd1_neuron_silencing_ketamine", "pka_rel") < 0.3 * (
        excess_peak(traj, "ketamine", "pka_rel"))
    assert at(traj, "drd1_neuron_silencing_ketamine", pot, 24.0) < 0.25 * at(
        traj, "ketamine", pot, 24.0)
    # the reward circuits are not silenced: their potentiation follows ketamine's (within
    # the arms' different subjects)
    for t in (1.0, 3.0, 24.0):
        assert at(traj, "drd1_neuron_silencing_ketamine", "reward_potentiation", t) == (
            pytest.approx(at(traj, "ketamine", "reward_potentiation", t), rel=0.1))


def _potentiation(drugs: str, registry) -> np.ndarray:
    txt = ("name: g\nspecies: mouse\nseed: 1\narms:\n  - name: a\n    n: 3\n    protocol:\n"
           + drugs + "    assays:\n      - {assay: signaling_state, at: [1h, 2h, 3h, 6h, 12h, "
           "24h]}\n")
    r = simulate(load_scenario_text(txt), registry=registry).readouts
    r = r[r.readout == "synaptic_potentiation"].sort_values(["subject", "time_h"])
    return r["value"].to_numpy()


def test_potentiation_needs_synthesis_only_below_baseline():
    """F-K-12 (Li et al. 2010; Autry et al. 2011): mTORC1 block removes the rapid
    potentiation, while ketamine alone (synthesis above baseline) is untouched by the
    synthesis gate (sig.potentiation_synthesis_exponent)."""
    reg = load_registry()
    off = reg.with_values({"sig.potentiation_synthesis_exponent": 0.0})
    ket = "      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}\n"
    rapa = "      - {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}\n" + ket
    alone_on, alone_off = _potentiation(ket, reg), _potentiation(ket, off)
    assert alone_on.max() > 0.05
    np.testing.assert_allclose(alone_on, alone_off, rtol=0.02, atol=1e-4)
    blocked_on, blocked_off = _potentiation(rapa, reg), _potentiation(rapa, off)
    # the gate slows induction (potentiation still saturates near 1 in unstressed mice
    # given hours, so the mean over the first day is what falls)
    assert blocked_on.mean() < 0.8 * blocked_off.mean()
    assert (blocked_on <= blocked_off + 1e-9).all()


def test_trkb_block_slows_potentiation_and_nothing_else_moves_with_the_gate():
    """F-K-12 (T-BLK-03): a TrkB blocker removes its bound share of the local TrkB signal
    that the potentiation's induction needs, whatever ketamine does to BDNF
    (sig.potentiation_trkb_exponent); without a TrkB blocker the gate is exactly 1, so
    ketamine alone and ketamine after rapamycin do not move with the exponent."""
    reg = load_registry()
    off = reg.with_values({"sig.potentiation_trkb_exponent": 0.0})
    ket = "      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}\n"
    ana = "      - {at: -30min, drug: ana12, dose: 0.5 mg/kg, route: ip}\n" + ket
    rapa = "      - {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}\n" + ket
    for drugs in (ket, rapa):
        np.testing.assert_array_equal(_potentiation(drugs, reg), _potentiation(drugs, off))
    blocked, ungated = _potentiation(ana, reg), _potentiation(ana, off)
    alone = _potentiation(ket, reg)
    # the first 3 h (samples at 1, 2, 3 h per subject): ANA-12 at 0.5 mg/kg occupies
    # about 64% of TrkB, so the induction runs at 0.36^3 of its rate; without the gate
    # ANA-12 left most of it (the model gap T-BLK-03 was, 0.96 of the 3-h effect)
    first = lambda x: x.reshape(3, -1)[:, :3]
    assert first(blocked).mean() < 0.25 * first(alone).mean()
    assert first(ungated).mean() > 0.7 * first(alone).mean()


def test_anaesthetic_block_lowers_basal_release_and_spares_low_doses():
    """F-W-18 (Moghaddam et al. 1997): near anaesthetic pyramidal block the recurrent
    activity that carries part of basal release shuts down, so 200 mg/kg in rats lowers
    glutamate below baseline at 30 min, while at 10 mg/kg the shutdown stays below a few
    per cent (the sub-anaesthetic cascade is untouched); without the basal share the
    anaesthetic dose does not lower release."""
    text = ("name: anaesthetic\nspecies: rat\nseed: 4\narms:\n" + "".join(
        f"  - name: {name}\n    n: 8\n    protocol: [{proto}]\n"
        "    assays: [{assay: signaling_state, at: [10min, 30min, 1h, 2h]}]\n"
        for name, proto in [("saline", SAL),
                            ("k10", "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}"),
                            ("k200", "{at: 0h, drug: ketamine, dose: 200 mg/kg, route: ip}")]))
    sc = load_scenario_text(text)

    def means(registry):
        r = simulate(sc, registry=registry).readouts
        return r.groupby(["arm", "readout", "time_h"])["value"].mean()

    reg = load_registry()
    m = means(reg)
    assert m["k200", "glutamate_surge", 0.5] < 0.95 * m["saline", "glutamate_surge", 0.5]
    assert m["k200", "pyramidal_shutdown", 0.5] > 0.5
    assert m["k10", "pyramidal_shutdown"].max() < 0.05
    assert m["k10", "glutamate_surge", 0.5] > 2.0
    m0 = means(reg.with_values({"sig.basal_release_pyramidal_share": 0.0}))
    assert m0["k200", "glutamate_surge", 0.5] > 1.0
    # the surge is the disinhibited pyramidal neurons' firing and fails with the same
    # shutdown (T-DR-08): with no basal share the rise above baseline at 200 mg/kg stays
    # within the amplitude x (1 - pyramidal block) x (1 - shutdown) it may reach at full
    # disinhibition; without the shutdown factor it is about 4 times that
    amp = reg.value("sig.glu_amplitude")
    ceiling = amp * ((1 - m0["k200", "occupancy_pyramidal", 0.5])
                     * (1 - m0["k200", "pyramidal_shutdown", 0.5]))
    assert m0["k200", "glutamate_surge", 0.5] - 1.0 < 1.5 * ceiling
    # and the surge returns as the block wanes: the anaesthetic dose delays it
    assert m["k200", "glutamate_surge", 2.0] > m["k200", "glutamate_surge", 0.5]


def test_interneuron_glun2b_share_moves_only_glun2b_selective_compounds():
    """rec.glun2b_interneuron_share was fitted to T-CMP-09 on the claim that only
    GluN2B-selective compounds read it: ketamine and MK-801 (channel blockers of every
    NMDA receptor) must not move with it, Ro 25-6981 must (more disinhibition, a larger
    glutamate surge, with a larger share)."""
    arms = {"ketamine": "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}",
            "mk801": "{at: 0h, drug: mk801, dose: 0.1 mg/kg, route: ip}",
            "ro25_6981": "{at: 0h, drug: ro25_6981, dose: 10 mg/kg, route: ip}"}
    text = "name: glun2b_share\nspecies: rat\nseed: 5\narms:\n" + "".join(
        f"  - name: {a}\n    n: 3\n    protocol: [{p}]\n"
        f"    assays: [{{assay: signaling_state, at: [30min, 1h, 24h]}}]\n"
        for a, p in arms.items())
    reg = load_registry()
    out = {}
    for share in (0.3, 0.6):
        r = simulate(load_scenario_text(text),
                     registry=reg.with_values({"rec.glun2b_interneuron_share": share})).readouts
        out[share] = r.set_index(["arm", "subject", "readout", "time_h"])["value"].sort_index()
    lo, hi = out[0.3], out[0.6]
    for arm in ("ketamine", "mk801"):
        assert np.array_equal(lo.loc[arm].to_numpy(), hi.loc[arm].to_numpy()), arm
    surge = (hi.loc["ro25_6981"].xs(("glutamate_surge", 0.5), level=("readout", "time_h"))
             / lo.loc["ro25_6981"].xs(("glutamate_surge", 0.5), level=("readout", "time_h")))
    assert (surge > 1.01).all()
