"""Midazolam, the active placebo of ketamine trials (issue 14): human PK, a plasma
readout, the MOAA/S sedation scale, and no action on the signalling cascade."""

from __future__ import annotations

import numpy as np
import pytest

from ketasim import simulate
from ketasim.params import load_registry
from ketasim.pk.compounds import COMPOUNDS
from ketasim.scenario import load_scenario_text
from ketasim.signaling import spec

REG = load_registry()
# Murrough et al. 2013 Am J Psychiatry: 0.045 mg/kg iv over 40 min (the trial's placebo)
MDZ = "{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: 0h, drug: saline, route: iv}"
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
PK_AT = "[20min, 40min, 1h, 2h, 4h, 6h, 8h, 10h]"
MOAAS_AT = "[-1h, 10min, 20min, 40min, 1h, 4h, 6h]"


def _run(arms: dict[str, tuple[str, str]], seed: int = 7, **kw):
    body = "".join(f"  - name: {name}\n    n: {n}\n    protocol: [{proto}]\n"
                   f"    assays: [{assays}]\n"
                   for name, (proto, assays, n) in arms.items())
    text = f"name: midazolam\nspecies: human\nseed: {seed}\narms:\n{body}"
    return simulate(load_scenario_text(text), registry=REG, **kw).readouts


def _table(r, arm, readout):
    return r[(r.arm == arm) & (r.readout == readout)].pivot_table(
        index="subject", columns="time_h", values="value", dropna=False)


def test_compound_loads_with_human_pk_and_no_target():
    c = COMPOUNDS["midazolam"]
    assert c.kind == "inert" and c.targets == () and c.analytes == ("midazolam",)
    assert c.mw.value == pytest.approx(325.8)
    f = c.pk["human"].fields
    assert 0.3 <= f["cl"].value <= 0.45  # L/h/kg (6.3 mL/min/kg)
    assert 0.9 <= f["v1"].value + f["v2"].value <= 1.5  # Vss, L/kg
    assert {"iv", "oral"} <= set(c.routes)


def test_adding_the_analyte_adds_no_ode_state():
    # 48 ODE states before midazolam got its PK (issue 14), then the gut path of each
    # drug slot (swallowed doses) and eight striatal states (issue 15: terminals, D1
    # sensitivity, priming, resistance, the unlesioned side's dopamine, the D1 and D2
    # neurons' spine-loss signals, the sensitisation of PKA -> ERK) and the reward
    # circuits' PKA (issue 13, 2026-12-05) and the serotonergic adaptation to SERT
    # inhibitors (issue 14, 2026-12-05) and the reward circuits' own dopamine (without
    # the manipulations aimed at mPFC, 2026-12-07) were added: the analyte adds outputs
    # and slot flags only, so no other simulation result moves
    assert spec.N_STATES == 48 + spec.N_SLOTS + 8 + 1 + 1 + 1
    assert {"midazolam_plasma", "midazolam_brain"} <= set(spec.OUTPUT_NAMES)


@pytest.fixture(scope="module")
def pk():
    exact = "options: {cv: 0, sd_add: 0, lloq: 0.001}"
    return _run({
        "midazolam": (MDZ, f"{{assay: plasma_pk, at: {PK_AT}, {exact}}}", 3),
        "measured": (MDZ, f"{{assay: plasma_pk, at: {PK_AT}}}", 3),
        "saline": (SAL, f"{{assay: plasma_pk, at: {PK_AT}}}", 3),
    })


def test_plasma_peak_and_terminal_half_life(pk):
    c = _table(pk, "midazolam", "midazolam_plasma_ng_ml")
    t = c.columns.to_numpy()
    mean = c.mean().to_numpy()
    # peak at the end of the infusion, a few tens of ng/mL: 3.15 mg in a 70-kg adult over
    # 40 min with CL about 6-8 mL/min/kg and Vss about 1-1.5 L/kg (Greenblatt et al. 1984
    # Anesthesiology; Allonen et al. 1981 Clin Pharmacol Ther); conscious sedation needs
    # about 40-100 ng/mL, which this dose reaches only at its upper end
    assert t[np.argmax(mean)] == pytest.approx(40 / 60)
    assert 25.0 < mean.max() < 100.0
    # terminal half-life 1.7-3.5 h (healthy adults about 2-3 h; Greenblatt et al. 1984,
    # Allonen et al. 1981), from the log-linear fall 6-10 h
    late = t >= 6.0
    slope = np.polyfit(t[late], np.log(mean[late]), 1)[0]
    assert 1.7 < np.log(2) / -slope < 3.5
    measured = _table(pk, "measured", "midazolam_plasma_ng_ml").to_numpy()
    assert np.nanmax(measured) > 25.0
    # no midazolam given: below the limit of quantification (reported missing)
    assert _table(pk, "saline", "midazolam_plasma_ng_ml").isna().all().all()


@pytest.fixture(scope="module")
def sedation():
    a = f"{{assay: sedation, at: {MOAAS_AT}}}"
    return _run({"midazolam": (MDZ, a, 30), "ketamine": (KET, a, 30)})


def test_moaas_falls_during_the_infusion_and_recovers(sedation):
    m = _table(sedation, "midazolam", "moaas")
    v = m.to_numpy()
    assert np.all(v == np.rint(v)) and v.min() >= 0 and v.max() <= 5
    mean = m.mean()
    assert mean[-1.0] == 5.0  # alert before the infusion
    # falls during the infusion, deepest at its end (mild sedation: about 1 point in the
    # median patient at an effect site of about 45 ng/mL), then recovers
    assert mean[40 / 60] < mean[20 / 60] < 5.0 and mean[40 / 60] < 4.5
    assert mean[1.0] > mean[40 / 60]
    assert mean[4.0] > 4.9 and mean[6.0] == 5.0  # recovered within a few hours


def test_ketamine_alone_does_not_change_moaas(sedation):
    # ketamine's sedation follows the pyramidal shutdown, which the antidepressant dose
    # leaves at nil: patients are rated alert throughout (T-SED-02)
    assert (_table(sedation, "ketamine", "moaas").to_numpy() == 5.0).all()


def test_moaas_reads_ketamines_pyramidal_shutdown():
    from ketasim.clinical.assays import MOAAS_MAX, moaas_latent
    from ketasim.clinical.model import ClinicalParams
    p = ClinicalParams.from_registry(REG)
    one = np.ones(1)
    conc = np.array([0.0, 50.0, 100.0, 300.0])
    # no shutdown: the midazolam Emax alone, as before ketamine's term was added
    v = p.values
    mdz = MOAAS_MAX * (1.0 - (conc / v["sedation_ec50"]) ** v["sedation_hill"]
                       / (1.0 + (conc / v["sedation_ec50"]) ** v["sedation_hill"]))
    assert np.allclose(moaas_latent(conc, one, p), mdz)
    assert np.allclose(moaas_latent(conc, one, p, 0.0), mdz)
    # the shutdown lowers the scale monotonically; the shutdown of the model's mice at an
    # anaesthetic dose (0.62-0.74 at 100 mg/kg ip) leaves no response
    s = np.linspace(0.0, 1.0, 11)
    k = moaas_latent(np.zeros(11), np.ones(11), p, s)
    assert k[0] == MOAAS_MAX and np.all(np.diff(k) < 0)
    assert moaas_latent(0.0, 1.0, p, 0.62) < 1.0
    # volunteers at anaesthetic plasma levels with the rodent partition (2) reached 0.05
    assert moaas_latent(0.0, 1.0, p, 0.05) > 4.5
    # the two drugs act independently: the product of their effects
    both = moaas_latent(100.0, 1.0, p, 0.3)
    assert both == pytest.approx(moaas_latent(100.0, 1.0, p) * moaas_latent(0.0, 1.0, p, 0.3)
                                 / MOAAS_MAX)


def test_anaesthetic_replica_holds_plasma_in_the_anaesthetic_range_and_reads_sedation():
    """The premise of T-SED-01: its infusion keeps the mean plasma level within the
    published anaesthetic range (1200-2400 ng/mL) while MOAA/S is rated; and the rating
    does follow the shutdown: at the model's human partition (6) and MOAA/S half-point
    (clinical.sedation_shutdown50, fitted to T-SED-01) the volunteers are unresponsive;
    with the half-point at half the mice's immobilising shutdown (0.3, the assumption
    until 2026-12-07) they are sedated but respond, with that half-point and a partition
    of 16 unresponsive again, and at the rodent partition (2) alert."""
    from ketasim.scenario import load_scenario
    from ketasim.validation.targets import replica_paths
    scenario = load_scenario(replica_paths()["human_anaesthetic_levels"])
    r = simulate(scenario, registry=REG).readouts
    plasma = _table(r, "anaesthetic", "ketamine_plasma_ng_ml").mean()
    assert all(1200.0 <= plasma[t] <= 2400.0 for t in (0.5, 0.75, 1.0))
    assert 100.0 <= _table(r, "antidepressant_dose", "ketamine_plasma_ng_ml").mean()[
        40 / 60] <= 250.0
    anaesthetised = _table(r, "anaesthetic", "moaas").mean()
    mouse_half = {"clinical.sedation_shutdown50": 0.3}
    sedated = _table(simulate(scenario, registry=REG.with_values(mouse_half)).readouts,
                     "anaesthetic", "moaas").mean()
    high = simulate(scenario, registry=REG.with_values(
        {**mouse_half, "pk.human.ketamine.kp_brain": 16.0})).readouts
    deep = _table(high, "anaesthetic", "moaas").mean()
    low = simulate(scenario, registry=REG.with_values(
        {"pk.human.ketamine.kp_brain": 2.0})).readouts
    alert = _table(low, "anaesthetic", "moaas").mean()
    assert anaesthetised[0.75] <= 1.0 and anaesthetised[0.0] == 5.0
    assert 1.5 < sedated[0.75] < 4.0 and sedated[0.0] == 5.0
    assert alert[0.75] > 4.5 and deep[0.75] <= 1.0 and deep[0.0] == 5.0


@pytest.mark.parametrize("background", ["", f"{DEP}, {KET}, "])
def test_midazolam_does_not_move_the_cascade(background):
    """Midazolam's PK states share the solver's error control with the cascade, so at the
    default tolerance the two arms differ by the adaptive step size only (about 1e-7);
    with a tight tolerance (rtol 1e-12) they agree to its order (within 1e-10)."""
    assays = "{assay: signaling_state, at: [0h, 20min, 40min, 2h, 24h]}"  # no blot in humans
    runs = [_run({"arm": (f"{background}{drug}", assays, 3)}, rtol=1e-12, atol=1e-15)
            for drug in (SAL, MDZ)]
    for readout in ("glutamate_surge", "synaptic_potentiation", "plasticity_potential"):
        a, b = (_table(r, "arm", readout).to_numpy() for r in runs)
        assert a.shape == b.shape and a.size
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    if background:
        assert np.ptp(_table(runs[0], "arm", "glutamate_surge").to_numpy()) > 0.1
