"""Review of the receptor-target layer: the target nodes and actions
(``ketasim/pk/targets.py``), how a compound's targets become drug-slot parameters and
window controls (``ketasim/signaling/protocol.py``: ``_set_target``, ``_site``,
``_compile_window``) and the receptor equations of ``ketasim/signaling/spec.py``
(orthosteric occupancies ``rho / (1 + sum rho)``, allosteric modulation, NMDA channel
block during activity and at rest, the endogenous 5-HT2A and mGluR2/3 tones).

(a) equilibrium occupancy of compounds written in temporary files at a (nearly) constant
brain level against closed forms computed here: unbound uM = fu x ng/g / MW, inhibitor and
antagonist ``eff x C / (C + K)``, agonist efficacy, two ligands at one site, modulators,
potency units (nM, uM, mM); (b) window tool compounds (``dose / ED50`` from onset to
onset + duration); (c) NMDA channel block: interneuron, pyramidal and posteromedial
potency factors, the rest affinity (trapping, Mg2+), the approach to steady state at the
effect-site rate, memantine against ketamine, racemic ketamine as the sum of its
enantiomers and metabolites, the two (2R,6R)-HNK hypotheses; (d) compounds without
targets (saline, midazolam) and determinism; (e) malformed target entries.
PK itself and compound-file validation in general are in ``test_review_pk.py``.
Tests once marked ``xfail(strict=True)`` (reason: BUG ...) exposed behaviour judged wrong; fixed,
they keep the reason as a ``# fixed (was BUG)`` comment.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from ketasim.experiment.cohort import sample_cohort
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.pk.compounds import CompoundError, add_compounds, parse_compound, reset_compounds
from ketasim.scenario import load_scenario_text
from ketasim.signaling import spec
from ketasim.signaling.protocol import ProtocolError, compile_arm
from ketasim.signaling.simulate import simulate_signaling

REG = load_registry()
POT_INT = REG.value("rec.potency_interneuron")
POT_PYR = REG.value("rec.potency_pyramidal")
POT_RSC = REG.value("rec.potency_posteromedial")
TRAP_REF = REG.value("rec.trapping_reference")
FU = REG.value("rec.fu_brain")


@pytest.fixture(autouse=True)
def _builtin_only():
    reset_compounds()
    yield
    reset_compounds()


def _v(value, unit="1", source="review: test value"):
    return {"value": value, "unit": unit, "source": source}


MW = 250.0


def _comp(name: str, targets: dict, ke0: float = 30.0, cl: float = 1e-6) -> dict:
    """A mouse compound with MW 250, V1 1 L/kg, kp 1, fu 0.5 and (by default) almost no
    clearance: 1 mg/kg iv gives 1 mg/L in plasma and, once the effect site has caught up
    (ke0 30/h), an unbound brain level of 0.5 x 1000 / 250 = 2 uM that stays."""
    return {
        "name": name,
        "description": "review test compound",
        "routes": ["iv"],
        "analytes": ["drug"],
        "mw": _v(MW, "g/mol"),
        "pk": {
            "mouse": {
                "model": "compartmental",
                "cl": _v(cl, "L/h/kg"),
                "v1": _v(1.0, "L/kg"),
                "kp_brain": _v(1.0),
                "ke0": _v(ke0, "1/h"),
                "fu_brain": _v(0.5),
            }
        },
        "targets": targets,
    }


def _window(name: str, targets: dict, routes=("ip",)) -> dict:
    return {
        "name": name,
        "description": "review window compound",
        "routes": list(routes),
        "pk": {"mouse": {"model": "window", "onset": _v(0.25, "h"), "duration": _v(1.0, "h")}},
        "targets": targets,
    }


def _add(tmp_path: Path, *docs: dict) -> None:
    folder = tmp_path / "c"
    folder.mkdir(parents=True, exist_ok=True)
    for d in docs:
        (folder / f"{d['name']}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    add_compounds(folder)


T = np.array([0.0, 0.05, 0.25, 0.5, 1.0, 2.0])


def _run(protocol: str, outputs, species="mouse", times=T, registry=REG) -> dict:
    sc = load_scenario_text(
        f"name: tg\nspecies: {species}\nseed: 1\narms:\n  - name: a\n    n: 1\n"
        f"    protocol: [{protocol}]\n"
    )
    cohort = sample_cohort(registry, species, "a", 1, 1, variability=False)
    ev = compile_arm(sc.arms[0], species, cohort, registry)
    r = simulate_signaling(cohort, ev, times, list(outputs), rtol=1e-10, atol=1e-12)
    return {o: r.output(o)[0] for o in outputs}


def _iv(drug: str, dose: float = 1.0) -> str:
    return f"{{at: 0h, drug: {drug}, dose: {dose} mg/kg, route: iv}}"


def _cu(brain_ng_g, mw=MW, fu=0.5):
    """Unbound brain concentration in uM from a total brain level in ng/g (= ng/mL)."""
    return fu * np.asarray(brain_ng_g) / mw


def _close(got, want, rtol=1e-6, atol=1e-9):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _ratio(occ, pot):
    """Sum of affinity x unbound concentration from an NMDA occupancy occ = x / (x + pot)."""
    occ = np.asarray(occ)
    return occ / (1.0 - occ) * pot


# ======================================================================= (a) occupancy
@pytest.mark.parametrize("potency", [_v(1500.0, "nM"), _v(1.5, "uM"), _v(0.0015, "mM")])
def test_inhibitor_occupancy_is_eff_c_over_c_plus_ki_in_any_molar_unit(tmp_path, potency):
    """SERT inhibitor (Ki 1.5 uM written in nM, uM or mM; efficacy 0.9): at the brain
    level's unbound uM (fu x ng/g / MW) the inhibition is 0.9 C / (C + 1.5); 1 mg/kg iv
    holds C at 2 uM, 0.9 x 2 / 3.5 = 0.514."""
    _add(
        tmp_path,
        _comp(
            "rvw_sert", {"sert": {"action": "inhibitor", "potency": potency, "efficacy": _v(0.9)}}
        ),
    )
    out = _run(_iv("rvw_sert"), ["drug_brain", "occupancy_sert"])
    c = _cu(out["drug_brain"])
    _close(out["occupancy_sert"], 0.9 * c / (c + 1.5))
    assert out["occupancy_sert"][-1] == pytest.approx(0.9 * 2.0 / 3.5, rel=1e-5)
    assert out["occupancy_sert"][0] == 0.0


@pytest.mark.parametrize("unit", ["M", "ng/mL", "mg/kg", "1"])
def test_a_potency_outside_the_molar_units_is_refused_naming_the_unit(unit):
    """Only nM, uM and mM are taken (molar M and mass or dimensionless units are one
    error naming targets.<node>.potency.unit)."""
    d = _comp("rvw_u", {"sert": {"action": "inhibitor", "potency": _v(1.0, unit)}})
    with pytest.raises(CompoundError) as e:
        parse_compound(d, "rvw_u.yaml")
    msg = str(e.value)
    assert "rvw_u.yaml" in msg and "targets.sert.potency.unit" in msg
    assert "nM" in msg and "uM" in msg


def test_antagonist_and_agonist_compete_for_one_orthosteric_site(tmp_path):
    """Drd1 (``d1_drive = dopamine x (1 - block) + agonism``, dopamine unchanged by Drd1
    ligands): antagonist (Ki 1 uM, efficacy 0.8) alone removes 0.8 rho / (1 + rho);
    agonist (Ki 4 uM, efficacy 2 baselines) alone adds 2 rho / (1 + rho); together both
    share the denominator 1 + rho_ant + rho_ag."""
    _add(
        tmp_path,
        _comp(
            "rvw_d1ant",
            {"drd1": {"action": "antagonist", "potency": _v(1.0, "uM"), "efficacy": _v(0.8)}},
        ),
        _comp(
            "rvw_d1ag",
            {
                "drd1": {
                    "action": "agonist",
                    "potency": _v(4.0, "uM"),
                    "efficacy": _v(2.0, "x baseline"),
                }
            },
        ),
    )
    outs = ["drug_brain", "d1_drive", "da_rel", "d1_sensitivity"]
    ant = _run(_iv("rvw_d1ant"), outs)
    ag = _run(_iv("rvw_d1ag"), outs)
    both = _run(_iv("rvw_d1ant") + ", " + _iv("rvw_d1ag"), outs)
    for o in (ant, ag, both):
        _close(o["da_rel"], 1.0, atol=1e-9)
        _close(o["d1_sensitivity"], 1.0, atol=1e-9)
    c = _cu(ant["drug_brain"])
    _close(ant["d1_drive"], 1.0 - 0.8 * (c / 1.0) / (1.0 + c / 1.0))
    _close(ag["d1_drive"], 1.0 + 2.0 * (c / 4.0) / (1.0 + c / 4.0))
    # both arms give each compound the same level c (independent, identical PK)
    _close(_cu(both["drug_brain"]) / 2, c)
    den = 1.0 + c / 1.0 + c / 4.0
    _close(both["d1_drive"], 1.0 - 0.8 * (c / 1.0) / den + 2.0 * (c / 4.0) / den)
    assert both["d1_drive"][-1] == pytest.approx(1 - 0.8 * 2 / 3.5 + 2 * 0.5 / 3.5, rel=1e-5)


def _ampa_modulators():
    return (
        _comp(
            "rvw_pam",
            {
                "ampa": {
                    "action": "positive_modulator",
                    "potency": _v(2.0, "uM"),
                    "efficacy": _v(0.6),
                }
            },
        ),
        _comp(
            "rvw_nam",
            {
                "ampa": {
                    "action": "negative_modulator",
                    "potency": _v(1.0, "uM"),
                    "efficacy": _v(1.0),
                }
            },
        ),
        _comp(
            "rvw_ant",
            {"ampa": {"action": "antagonist", "potency": _v(2.0, "uM"), "efficacy": _v(0.9)}},
        ),
    )


def test_modulators_scale_their_node_at_baseline_and_share_the_allosteric_site(tmp_path):
    """With no glutamate surge (no NMDA blocker) the AMPA drive is 1 +/- eff x
    rho / (1 + rho); a PAM and a NAM share the allosteric site (one denominator); an
    orthosteric antagonist does not compete with them (its own site) and removes its
    share of the modulated signal above baseline. GluN2B NAM (efficacy 0.8): block of the
    pyramidal rest current rec.glun2b_rest_share x 0.8 rho / (1 + rho)."""
    _add(
        tmp_path,
        *_ampa_modulators(),
        _comp(
            "rvw_2b",
            {
                "glun2b": {
                    "action": "negative_modulator",
                    "potency": _v(2.0, "uM"),
                    "efficacy": _v(0.8),
                }
            },
        ),
    )
    outs = ["drug_brain", "ampa_drive", "glutamate_surge", "rest_block_pyramidal"]
    pam, nam = _run(_iv("rvw_pam"), outs), _run(_iv("rvw_nam"), outs)
    c = _cu(pam["drug_brain"])
    for o in (pam, nam):
        _close(o["glutamate_surge"], 1.0, atol=1e-12)
    _close(pam["ampa_drive"], 1.0 + 0.6 * (c / 2) / (1 + c / 2))
    _close(nam["ampa_drive"], 1.0 - 1.0 * c / (1 + c))
    both = _run(_iv("rvw_pam") + ", " + _iv("rvw_nam"), outs)
    _close(both["ampa_drive"], 1.0 + (0.6 * c / 2 - c) / (1 + c / 2 + c))
    with_ant = _run(_iv("rvw_pam") + ", " + _iv("rvw_ant"), outs)
    block = 0.9 * (c / 2) / (1 + c / 2)
    _close(with_ant["ampa_drive"], 1.0 + 0.6 * (c / 2) / (1 + c / 2) * (1 - block))
    g2b = _run(_iv("rvw_2b"), outs)
    share = REG.value("rec.glun2b_rest_share")
    _close(g2b["rest_block_pyramidal"], share * 0.8 * (c / 2) / (1 + c / 2))


# fixed (was BUG): the AMPA node adds its allosteric modulation to the glutamate drive
#   (spec.py 'ampa': glutamate - 1 + ampa_mod) instead of scaling the drive by 1 +/-
#   efficacy x occupancy as targets.py and design.md document, so during a surge a full NAM
#   leaves most of the AMPA drive
def test_an_ampa_modulator_scales_the_drive_during_a_glutamate_surge(tmp_path):
    """Documented (targets.py; design.md 'Node semantics'): modulators scale the node's
    signal by 1 +/- efficacy at full occupancy. A trapping NMDA blocker with no AMPA
    action (Ki 0.5 uM at 2 uM) raises glutamate about 2.5-fold; a full AMPA NAM
    (efficacy 1, Ki 1 uM at 2 uM: 2/3 of the signal removed) should leave a third of the
    AMPA drive, as it does at baseline (ampa / glutamate the same with and without the
    surge). The model leaves glutamate - 2/3."""
    _add(
        tmp_path,
        *_ampa_modulators(),
        _comp(
            "rvw_blk",
            {
                "nmda": {
                    "action": "channel_blocker",
                    "potency": _v(0.5, "uM"),
                    "trapping": {"param": "rec.trapping_reference"},
                }
            },
        ),
    )
    outs = ["ampa_drive", "glutamate_surge"]
    base = _run(_iv("rvw_nam"), outs)
    surge = _run(_iv("rvw_nam") + ", " + _iv("rvw_blk"), outs)
    g = surge["glutamate_surge"][-1]
    assert g > 2.0  # the surge is there
    assert base["ampa_drive"][-1] == pytest.approx(1 / 3, rel=1e-4)
    assert surge["ampa_drive"][-1] / g == pytest.approx(1 / 3, rel=1e-3)


def test_endogenous_tones_of_mglu23_and_ht2a(tmp_path):
    """mGluR2/3 hold back sig.mglu23_tone of release: an antagonist lifts its bound share
    (release (1 - tone (1 - b)) / (1 - tone)), an agonist adds its own brake (release
    1 - ag). 5-HT2A: an agonist adds gain x ag, an antagonist removes gain x tone x b
    (sig.ht2a_glutamate_gain, sig.ht2a_tone)."""
    docs = {
        "rvw_mgant": {"mglu23": {"action": "antagonist", "potency": _v(2.0, "uM")}},
        "rvw_mgag": {
            "mglu23": {
                "action": "agonist",
                "potency": _v(2.0, "uM"),
                "efficacy": _v(0.5, "x baseline"),
            }
        },
        "rvw_htag": {
            "ht2a": {
                "action": "agonist",
                "potency": _v(50.0, "nM"),
                "efficacy": _v(0.8, "x baseline"),
            }
        },
        "rvw_htant": {"ht2a": {"action": "antagonist", "potency": _v(0.5, "uM")}},
    }
    _add(tmp_path, *(_comp(n, t) for n, t in docs.items()))
    tone, gain = REG.value("sig.mglu23_tone"), REG.value("sig.ht2a_glutamate_gain")
    ht_tone = REG.value("sig.ht2a_tone")
    out = {n: _run(_iv(n), ["drug_brain", "glutamate_surge"]) for n in docs}
    c = _cu(out["rvw_mgant"]["drug_brain"])

    def occ(k):
        return (c / k) / (1 + c / k)

    _close(out["rvw_mgant"]["glutamate_surge"], (1 - tone * (1 - occ(2.0))) / (1 - tone))
    _close(out["rvw_mgag"]["glutamate_surge"], 1 - 0.5 * occ(2.0))
    _close(out["rvw_htag"]["glutamate_surge"], 1 + gain * 0.8 * occ(0.05))
    _close(out["rvw_htant"]["glutamate_surge"], 1 - gain * ht_tone * occ(0.5))


# ======================================================================= (b) windows
def test_window_tool_compounds_act_as_dose_over_ed50_from_onset_to_offset():
    """Built-in windows (parameters.yaml: block = emax r / (1 + r), r = dose / ED50):
    SCH 23390 0.1 mg/kg removes emax r / (1 + r) of the D1 signal; scopolamine at its
    ED50 (0.01 mg/kg) halves the M1 share of interneuron drive and MRK-016 at its ED50
    (0.39 mg/kg) removes 0.55 / 2 of the alpha5 share of dendritic inhibition, each seen
    through the disinhibition Hill function (glutamate = 1 + amp x hill(1 - inhibition));
    nothing before onset or after onset + duration."""
    t = np.array([0.0, 0.5, 1.0, 1.5, 1.9, 2.5, 3.0])
    n, k = REG.value("sig.disinhibition_hill"), REG.value("sig.disinhibition_o50")
    amp = REG.value("sig.glu_amplitude")

    def glu(x):
        return 1 + amp * x**n / (x**n + k**n)

    def on(drug):  # inside the window, given at 0 h
        on_at = (
            REG.value(f"tool.{drug}.onset")
            if drug == "sch23390"
            else {"scopolamine": 0.05, "mrk016": 0.1}[drug]
        )
        dur = REG.value(f"tool.{drug}.duration") if drug == "sch23390" else 2.0
        return (t > on_at) & (t < on_at + dur)

    sch = _run("{at: 0h, drug: sch23390, dose: 0.1 mg/kg, route: ip}", ["d1_drive"], times=t)[
        "d1_drive"
    ]
    r = 0.1 / REG.value("tool.sch23390.ed50")
    want = np.where(on("sch23390"), 1 - REG.value("tool.sch23390.emax") * r / (1 + r), 1.0)
    _close(sch, want)
    scop = _run(
        "{at: 0h, drug: scopolamine, dose: 0.01 mg/kg, route: ip}", ["glutamate_surge"], times=t
    )["glutamate_surge"]
    _close(scop, np.where(on("scopolamine"), glu(REG.value("sig.m1_interneuron_share") * 0.5), 1.0))
    mrk = _run("{at: 0h, drug: mrk016, dose: 0.39 mg/kg, route: ip}", ["glutamate_surge"], times=t)[
        "glutamate_surge"
    ]
    _close(
        mrk, np.where(on("mrk016"), glu(REG.value("sig.gabaa_a5_dendritic_share") * 0.55 / 2), 1.0)
    )


def test_a_window_ligand_shares_the_orthosteric_site_with_a_compartmental_one(tmp_path):
    """A window Drd1 antagonist at its ED50 (r = 1, efficacy 0.6) and a compartmental
    agonist (rho = 0.5, efficacy 2) share one denominator 1 + r + rho while the window
    is on (0.25-1.25 h)."""
    _add(
        tmp_path,
        _window(
            "rvw_wd1",
            {
                "drd1": {
                    "action": "antagonist",
                    "potency": {"per_kg": _v(2.0, "mg/kg")},
                    "efficacy": _v(0.6),
                }
            },
        ),
        _comp(
            "rvw_d1ag",
            {
                "drd1": {
                    "action": "agonist",
                    "potency": _v(4.0, "uM"),
                    "efficacy": _v(2.0, "x baseline"),
                }
            },
        ),
    )
    t = np.array([0.2, 0.5, 1.0, 1.5])
    out = _run(
        "{at: 0h, drug: rvw_wd1, dose: 2 mg/kg, route: ip}, " + _iv("rvw_d1ag"),
        ["drug_brain", "d1_drive"],
        times=t,
    )
    rho = _cu(out["drug_brain"]) / 4.0
    r = np.array([0.0, 1.0, 1.0, 0.0])
    _close(out["d1_drive"], 1 - 0.6 * r / (1 + r + rho) + 2 * rho / (1 + r + rho))


def test_a_window_route_without_its_dose_kind_potency_is_a_protocol_error(tmp_path):
    """A window compound listing the bath route but giving only a per-kg potency: one
    error naming the compound, the route and the target."""
    _add(
        tmp_path,
        _window(
            "rvw_wbath",
            {"drd1": {"action": "antagonist", "potency": {"per_kg": _v(1.0, "mg/kg")}}},
            routes=("ip", "bath"),
        ),
    )
    with pytest.raises(ProtocolError) as e:
        _run("{at: 0h, drug: rvw_wbath, dose: 10 uM, route: bath}", ["d1_drive"])
    msg = str(e.value)
    assert "rvw_wbath" in msg and "'bath'" in msg and "drd1" in msg


@pytest.mark.parametrize("dose,ec50", [("500 nM", _v(2.0, "uM")), ("0.5 uM", _v(2000.0, "nM"))])
def test_a_bath_window_reads_dose_over_ec50_whatever_the_molar_units(tmp_path, dose, ec50):
    """A slice (bath) Drd1 agonist with EC50 2 uM (written in uM or nM) at 0.5 uM (written
    in nM or uM): r = 0.25, so D1 drive 1 + 2 x 0.25 / 1.25 = 1.4 while on."""
    _add(
        tmp_path,
        _window(
            "rvw_wbag",
            {
                "drd1": {
                    "action": "agonist",
                    "potency": {"concentration": ec50},
                    "efficacy": _v(2.0, "x baseline"),
                }
            },
            routes=("bath",),
        ),
    )
    out = _run(
        f"{{at: 0h, drug: rvw_wbag, dose: {dose}, route: bath}}",
        ["d1_drive"],
        times=np.array([0.1, 0.5, 1.0, 1.5]),
    )["d1_drive"]
    _close(out, [1.0, 1.4, 1.4, 1.0])


# ======================================================================= (c) NMDA block
def _blocker(name, ki=0.5, trapping=0.5, mg=4.0, ke0=30.0):
    return _comp(
        name,
        {
            "nmda": {
                "action": "channel_blocker",
                "potency": _v(ki, "uM"),
                "trapping": _v(trapping),
                "mg_rest": _v(mg),
            }
        },
        ke0=ke0,
    )


NMDA_OUT = [
    "drug_brain",
    "occupancy_interneuron",
    "occupancy_pyramidal",
    "occupancy_posteromedial",
    "rest_block_pyramidal",
]


def test_nmda_occupancies_follow_their_own_potency_factors_and_the_rest_affinity(tmp_path):
    """Activity: occ = C / (C + pot x Ki) with rec.potency_interneuron (2.5),
    rec.potency_pyramidal (20), rec.potency_posteromedial (2.5); at rest the affinity is
    1/Ki x trapping / trapping_ref / mg_rest (what the pyramidal rest current sees).
    Ki 0.5 uM at 2 uM: interneurons 4 / 6.5, pyramidal 4 / 24."""
    _add(tmp_path, _blocker("rvw_blk"))
    out = _run(_iv("rvw_blk"), NMDA_OUT)
    c = _cu(out["drug_brain"])
    _close(out["occupancy_interneuron"], c / (c + POT_INT * 0.5))
    _close(out["occupancy_pyramidal"], c / (c + POT_PYR * 0.5))
    _close(out["occupancy_posteromedial"], c / (c + POT_RSC * 0.5))
    rest = c / 0.5 * 0.5 / TRAP_REF / 4.0
    _close(out["rest_block_pyramidal"], rest / (rest + POT_PYR))
    assert out["occupancy_interneuron"][-1] == pytest.approx(4 / (4 + POT_INT), rel=1e-5)
    assert out["occupancy_pyramidal"][-1] == pytest.approx(4 / (4 + POT_PYR), rel=1e-5)


def test_mg_rest_and_trapping_move_only_the_rest_affinity(tmp_path):
    """Two blockers differing only in mg_rest (1 vs 4) or trapping (0.86 vs 0.43): the same
    block during activity; the rest affinity in proportion (x 1/4, x 1/2)."""
    _add(
        tmp_path,
        _blocker("rvw_ref", trapping=0.86, mg=1.0),
        _blocker("rvw_mg4", trapping=0.86, mg=4.0),
        _blocker("rvw_half", trapping=0.43, mg=1.0),
    )
    o = {n: _run(_iv(n), NMDA_OUT) for n in ("rvw_ref", "rvw_mg4", "rvw_half")}
    for n in ("rvw_mg4", "rvw_half"):
        _close(o[n]["occupancy_interneuron"], o["rvw_ref"]["occupancy_interneuron"])
        _close(o[n]["occupancy_pyramidal"], o["rvw_ref"]["occupancy_pyramidal"])
    x_ref = _ratio(o["rvw_ref"]["rest_block_pyramidal"][1:], POT_PYR)
    _close(_ratio(o["rvw_mg4"]["rest_block_pyramidal"][1:], POT_PYR), x_ref / 4, rtol=1e-6)
    _close(
        _ratio(o["rvw_half"]["rest_block_pyramidal"][1:], POT_PYR),
        x_ref * 0.43 / 0.86 / (0.86 / TRAP_REF),
        rtol=1e-6,
    )


def test_block_approaches_steady_state_at_the_effect_site_rate(tmp_path):
    """No channel kinetics of its own: at a constant plasma level the block follows the
    effect site, C(t) = C_ss (1 - exp(-ke0 t)) with ke0 3/h (C_ss 2 uM), so the
    interneuron block is C(t) / (C(t) + pot_int Ki), within a percent of its steady
    state 4 / 6.5 after 1.5 h."""
    _add(tmp_path, _blocker("rvw_slow", ke0=3.0))
    t = np.array([0.0, 0.1, 0.3, 0.5, 1.0, 1.5, 3.0, 5.0])
    out = _run(_iv("rvw_slow"), ["occupancy_interneuron"], times=t)["occupancy_interneuron"]
    c = 2.0 * (1.0 - np.exp(-3.0 * t))
    _close(out, c / (c + POT_INT * 0.5), rtol=1e-4, atol=1e-7)
    ss = 4 / (4 + POT_INT)
    assert abs(out[t >= 1.5] - ss).max() < 0.01 * ss
    assert out[2] < 0.8 * ss  # still approaching at 0.3 h


def test_memantine_blocks_during_activity_like_ketamine_but_spares_the_rest_current():
    """design.md: memantine (Ki 1 uM, trapping 0.7, mg_rest 10) blocks interneurons during
    activity about as much as ketamine at 30 vs 10 mg/kg but leaves the rest current
    alone. Its rest affinity is 0.7 / 0.86 / 10 of its activity affinity (ketamine's the
    same as its activity affinity)."""
    t = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0])
    outs = ["occupancy_interneuron", "rest_block_pyramidal", "occupancy_pyramidal"]
    mem = _run("{at: 0h, drug: memantine, dose: 30 mg/kg, route: ip}", outs, times=t)
    ket = _run("{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}", outs, times=t)
    x_mem = _ratio(mem["occupancy_interneuron"][1:], POT_INT)
    _close(_ratio(mem["rest_block_pyramidal"][1:], POT_PYR), x_mem * 0.7 / TRAP_REF / 10)
    _close(ket["rest_block_pyramidal"], ket["occupancy_pyramidal"])
    peak_m, peak_k = mem["occupancy_interneuron"].max(), ket["occupancy_interneuron"].max()
    assert 0.7 < peak_m / peak_k < 1.4
    assert mem["rest_block_pyramidal"].max() < 0.2 * ket["rest_block_pyramidal"].max()


def test_racemic_ketamine_block_is_the_sum_of_its_enantiomers_and_metabolites():
    """Racemic ketamine is half S and half R (F-K-17): its NMDA affinity sum equals
    S-ketamine 5 mg/kg's plus R-ketamine 5 mg/kg's (linear PK), each being
    C_u / Ki over S- or R-ketamine (0.3, 1.4 uM), norketamine (0.97 uM) and (2R,6R)-HNK
    (100 uM), unbound C_u = rec.fu_brain x ng/g / MW; only R-ketamine forms HNK."""
    t = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0])
    outs = ["occupancy_interneuron", "ketamine_brain", "norketamine_brain", "hnk_brain"]
    ket = _run("{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}", outs, times=t)
    s = _run("{at: 0h, drug: esketamine, dose: 5 mg/kg, route: ip}", outs, times=t)
    r = _run("{at: 0h, drug: arketamine, dose: 5 mg/kg, route: ip}", outs, times=t)
    x = {
        k: _ratio(v["occupancy_interneuron"], POT_INT)
        for k, v in (("ket", ket), ("s", s), ("r", r))
    }
    _close(x["ket"], x["s"] + x["r"], rtol=1e-6)
    mw = {a: REG.value(f"chem.mw_{a}") for a in ("ketamine", "norketamine", "hnk")}
    ki = {k: REG.value(f"rec.ki_{k}") for k in ("s_ketamine", "r_ketamine", "norketamine", "hnk")}
    assert ki == {"s_ketamine": 0.3, "r_ketamine": 1.4, "norketamine": 0.97, "hnk": 100.0}

    def met(o):
        return (
            _cu(o["norketamine_brain"], mw["norketamine"], FU) / ki["norketamine"]
            + _cu(o["hnk_brain"], mw["hnk"], FU) / ki["hnk"]
        )

    _close(x["s"], _cu(s["ketamine_brain"], mw["ketamine"], FU) / ki["s_ketamine"] + met(s))
    _close(x["r"], _cu(r["ketamine_brain"], mw["ketamine"], FU) / ki["r_ketamine"] + met(r))
    assert (s["hnk_brain"] == 0).all() and r["hnk_brain"].max() > 0
    # Ebert et al. 1997 measured racemic ketamine at Ki 0.53 uM: the 1:1 mixture of the
    # enantiomers' affinities gives 1 / (0.5 / 0.3 + 0.5 / 1.4) = 0.49 uM
    racemic = 1.0 / (0.5 / ki["s_ketamine"] + 0.5 / ki["r_ketamine"])
    assert racemic == pytest.approx(0.53, rel=0.1)


def test_the_two_hnk_hypotheses_differ_only_at_ampa():
    """(2R,6R)-HNK (sig.hnk_ampa_ec50 2 uM, sig.hnk_ampa_emax 1.5) and hnk_inactive: the
    same weak NMDA block (Ki 100 uM) and glutamate; the active one scales the glutamate
    drive by 1 + 1.5 C / (C + 2) (adding glutamate x 1.5 C / (C + 2) of AMPA drive), the
    inactive one not at all."""
    t = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 3.0])
    outs = ["occupancy_interneuron", "hnk_brain", "ampa_drive", "glutamate_surge"]
    act = _run("{at: 0h, drug: hnk, dose: 10 mg/kg, route: ip}", outs, times=t)
    ina = _run("{at: 0h, drug: hnk_inactive, dose: 10 mg/kg, route: ip}", outs, times=t)
    for o in ("occupancy_interneuron", "hnk_brain", "glutamate_surge"):
        _close(act[o], ina[o], rtol=1e-9, atol=1e-12)
    c = _cu(act["hnk_brain"], REG.value("chem.mw_hnk"), FU)
    _close(act["occupancy_interneuron"], c / (c + POT_INT * 100.0))
    _close(act["ampa_drive"] - ina["ampa_drive"], ina["glutamate_surge"] * 1.5 * c / (c + 2.0))
    _close(ina["ampa_drive"], ina["glutamate_surge"], atol=1e-12)
    assert (act["ampa_drive"] - 1).max() > 0.5


# ======================================================================= (d) no targets
def test_compounds_without_targets_leave_the_cascade_untouched(tmp_path):
    """Saline, midazolam (inert, with PK: the active placebo) and a compound file with
    PK and no targets move no signalling output; only their own concentration readouts."""
    cascade = [o for o in spec.OUTPUT_NAMES if not o.endswith(("_plasma", "_brain"))]
    t = np.array([0.0, 0.25, 1.0, 6.0, 24.0])
    sal = _run("{at: 0h, drug: saline, route: iv}", cascade, "human", t)
    mid = _run(
        "{at: 0h, drug: midazolam, dose: 0.05 mg/kg, route: iv}",
        cascade + ["midazolam_brain"],
        "human",
        t,
    )
    assert mid["midazolam_brain"].max() > 0
    for o in cascade:
        _close(mid[o], sal[o], rtol=1e-9, atol=1e-12)
    _add(tmp_path, {**_comp("rvw_none", {}), "targets": {}})
    msal = _run("{at: 0h, drug: saline, route: iv}", cascade, "mouse", t)
    none = _run(_iv("rvw_none", 10.0), cascade + ["drug_brain"], "mouse", t)
    assert none["drug_brain"].max() > 0
    for o in cascade:
        _close(none[o], msal[o], rtol=1e-9, atol=1e-12)


def test_the_signaling_state_assay_is_deterministic():
    """The same scenario twice (signaling_state, racemic ketamine and a window tool):
    identical occupancies and nodes, bit for bit."""
    text = (
        "name: det\nspecies: mouse\nseed: 3\narms:\n  - name: a\n    n: 2\n"
        "    protocol: [{at: -10min, drug: nbqx, dose: 10 mg/kg, route: ip}, "
        "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]\n"
        "    assays: [{assay: signaling_state, at: [15min, 1h]}]\n"
    )
    a = simulate(load_scenario_text(text), registry=REG).readouts
    b = simulate(load_scenario_text(text), registry=REG).readouts
    assert {"occupancy_interneuron", "ampa_drive"} <= set(a["readout"])
    assert a["value"].to_numpy().tobytes() == b["value"].to_numpy().tobytes()
    assert a.equals(b)


# ======================================================================= (e) bad input
@pytest.mark.parametrize(
    "target,entry,fields",
    [
        (
            "nmdz",
            {"action": "antagonist", "potency": _v(1, "uM")},
            ["targets.nmdz", "unknown target", "known"],
        ),
        (
            "sert",
            {"action": "antagonist", "potency": _v(1, "uM")},
            ["targets.sert.action", "not modelled at sert", "inhibitor"],
        ),
        ("drd1", {"action": "blocker", "potency": _v(1, "uM")}, ["targets.drd1.action"]),
        (
            "drd1",
            {"action": "antagonist", "potency": _v(-2, "nM")},
            ["targets.drd1.potency.value", "positive"],
        ),
        ("drd1", {"action": "antagonist"}, ["targets.drd1", "missing 'potency'"]),
        (
            "drd1",
            {"action": "antagonist", "potency": _v(1, "uM"), "efficacy": _v(1.5)},
            ["targets.drd1.efficacy", "at most all"],
        ),
        (
            "sert",
            {"action": "inhibitor", "potency": _v(1, "uM"), "efficacy": _v(1.2)},
            ["targets.sert.efficacy"],
        ),
        (
            "ampa",
            {"action": "negative_modulator", "potency": _v(1, "uM"), "efficacy": _v(2.0)},
            ["targets.ampa.efficacy"],
        ),
        (
            "ampa",
            {"action": "positive_modulator", "potency": _v(1, "uM"), "efficacy": _v(-0.5)},
            ["targets.ampa.efficacy.value"],
        ),
        (
            "drd1",
            {"action": "antagonist", "potency": _v(1, "uM"), "efficacy": _v(0.5, "x baseline")},
            ["targets.drd1.efficacy.unit"],
        ),
        (
            "drd1",
            {"action": "antagonist", "potency": _v(1, "uM"), "mg_rest": _v(2.0)},
            ["targets.drd1", "channel blockers only"],
        ),
        (
            "nmda",
            {"action": "channel_blocker", "potency": _v(1, "uM"), "mg_rest": _v(0.5)},
            ["targets.nmda.mg_rest"],
        ),
        (
            "nmda",
            {"action": "channel_blocker", "potency": _v(1, "uM"), "trapping": _v(0.0)},
            ["targets.nmda.trapping"],
        ),
        (
            "drd1",
            {"action": "antagonist", "potency": _v(1, "uM"), "kinetics": _v(1.0)},
            ["targets.drd1", "unknown keys"],
        ),
    ],
)
def test_a_bad_target_entry_is_one_error_naming_the_field(target, entry, fields):
    d = _comp("rvw_bad", {target: copy.deepcopy(entry)})
    with pytest.raises(CompoundError) as e:
        parse_compound(d, "rvw_bad.yaml")
    msg = str(e.value)
    assert "rvw_bad.yaml" in msg
    for f in fields:
        assert f in msg, msg


@pytest.mark.parametrize(
    "doc,fragment",
    [
        # a channel blocker's block needs its concentration (compartmental PK)
        (
            _window(
                "rvw_wnmda",
                {"nmda": {"action": "channel_blocker", "potency": {"per_kg": _v(1.0, "mg/kg")}}},
            ),
            "channel blocker needs compartmental PK",
        ),
        # a window potency is given by dose kind, each in its own unit
        (
            _window(
                "rvw_wu", {"drd1": {"action": "antagonist", "potency": {"per_kg": _v(1.0, "uM")}}}
            ),
            "potency.per_kg.unit",
        ),
        (
            _window("rvw_wk", {"drd1": {"action": "antagonist", "potency": _v(1.0, "mg/kg")}}),
            "by dose kind",
        ),
        # inert compounds act on no target
        (
            {
                **_comp("rvw_inert", {"sert": {"action": "inhibitor", "potency": _v(1.0, "uM")}}),
                "kind": "inert",
            },
            "an inert compound acts on no target",
        ),
    ],
)
def test_targets_that_cannot_act_as_written_are_refused(doc, fragment):
    with pytest.raises(CompoundError) as e:
        parse_compound(copy.deepcopy(doc), "rvw_w.yaml")
    assert fragment in str(e.value) and "rvw_w.yaml" in str(e.value)


def test_a_removing_efficacy_read_from_the_registry_is_checked_too(tmp_path):
    """A compound file's antagonist efficacy above 1 is refused when it is a number; one
    read from a registry parameter (here behavior.sucrose.relief, 1.5) was used as it
    came, removing more than all of the node's signal. It is now a protocol error."""
    _add(
        tmp_path,
        _comp(
            "rv_over",
            {
                "trkb": {
                    "action": "antagonist",
                    "potency": _v(1.0, "uM"),
                    "efficacy": {"param": "behavior.sucrose.relief"},
                }
            },
        ),
    )
    with pytest.raises(ProtocolError, match=r"targets\.trkb\.efficacy.*efficacy <= 1"):
        _run(_iv("rv_over"), ["glutamate_surge"])
