"""Review of the pharmacokinetics and compound files (``ketasim/pk/``,
``ketasim/compounds/*.yaml``, ``--compounds DIR``).

(a) simulated plasma levels of compounds written in temporary files against closed
forms (iv bolus, infusion, first-order absorption, two compartments, metabolites, unit
conversions); (b) the LC-MS/MS assays (LLOQ, residual error, sampling times, venous
lag); (c) compound-file validation; (d) sources of the built-in files' numbers.
Tests marked ``xfail(strict=True)`` expose behaviour judged wrong (reason: BUG ...).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import ketasim
from ketasim.experiment.cohort import sample_cohort
from ketasim.params import load_registry
from ketasim.pk.compounds import (
    COMPOUNDS,
    CompoundError,
    add_compounds,
    compound_schema,
    parse_compound,
    reset_compounds,
    same_unit,
)
from ketasim.scenario import load_scenario_text
from ketasim.signaling.protocol import ProtocolError, compile_arm
from ketasim.signaling.simulate import simulate_signaling

REG = load_registry()


@pytest.fixture(autouse=True)
def _builtin_only():
    reset_compounds()
    yield
    reset_compounds()


def _v(value, unit="1", source="review: test value"):
    return {"value": value, "unit": unit, "source": source}


# a one-compartment compound (mouse): CL 2 L/h/kg, V 1 L/kg, so k = 2 /h
ONE = {
    "name": "rvw_one",
    "description": "review test compound",
    "routes": ["iv", "ip", "sc", "oral"],
    "analytes": ["drug"],
    "mw": _v(250.0, "g/mol"),
    "pk": {"mouse": {
        "model": "compartmental",
        "cl": _v(2.0, "L/h/kg"), "v1": _v(1.0, "L/kg"),
        "kp_brain": _v(1.0), "ke0": _v(3.0, "1/h"), "fu_brain": _v(0.5),
        "routes": {"oral": {"f": _v(0.4), "ka": _v(1.5, "1/h")}},
    }},
}


def _write(folder: Path, *docs: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for d in docs:
        (folder / f"{d['name']}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return folder


def _one(**pk_changes) -> dict:
    d = copy.deepcopy(ONE)
    d["pk"]["mouse"].update(pk_changes)
    return d


T = np.linspace(0.0, 8.0, 8 * 60 + 1)  # every minute


def _run(protocol: str, outputs=("drug_plasma",), times=T, species="mouse"):
    sc = load_scenario_text(
        f"name: pk\nspecies: {species}\nseed: 1\narms:\n  - name: a\n    n: 1\n"
        f"    protocol: [{protocol}]\n")
    cohort = sample_cohort(REG, species, "a", 1, 1, variability=False)
    ev = compile_arm(sc.arms[0], species, cohort, REG)
    r = simulate_signaling(cohort, ev, times, list(outputs), rtol=1e-10, atol=1e-12)
    return {o: r.output(o)[0] for o in outputs}, cohort


def _close(got, want, rtol=1e-6, atol=1e-6):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ======================================================================= (a) closed forms
def test_iv_bolus_is_d_over_v_exp_minus_kt(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}")
    # 10 mg/kg / 1 L/kg = 10 mg/L = 10,000 ng/mL
    _close(out["drug_plasma"], 1e4 * np.exp(-2.0 * T))


def test_absolute_dose_in_mg_uses_body_weight(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, cohort = _run("{at: 0h, drug: rvw_one, dose: 0.5 mg, route: iv}")
    w = float(cohort.get("species.mouse.body_weight")[0])
    assert w == pytest.approx(0.025)
    _close(out["drug_plasma"], 1e3 * 0.5 / w * np.exp(-2.0 * T))


def test_two_iv_doses_superpose(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}, "
                  "{at: 2h, drug: rvw_one, dose: 5 mg/kg, route: iv}")
    want = 1e4 * np.exp(-2 * T) + 5e3 * np.exp(-2 * (T - 2)) * (T >= 2)
    sel = np.abs(T - 2.0) > 1e-9  # at the dose time itself: either side is right
    _close(out["drug_plasma"][sel], want[sel])


def test_iv_infusion_rises_to_rate_over_cl_and_decays(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 12 mg/kg, route: iv, over: 3h}")
    rate, cl, k = 12.0 / 3.0, 2.0, 2.0
    css = rate / cl * 1e3  # ng/mL
    during = css * (1 - np.exp(-k * T))
    after = css * (1 - np.exp(-k * 3.0)) * np.exp(-k * (T - 3.0))
    _close(out["drug_plasma"], np.where(T <= 3.0, during, after))
    assert out["drug_plasma"][T <= 3.0][-1] == pytest.approx(css * (1 - math.exp(-6)),
                                                             rel=1e-6)


def test_two_compartment_bolus_and_long_infusion(tmp_path):
    add_compounds(_write(tmp_path / "c", _one(q=_v(3.0, "L/h/kg"), v2=_v(4.0, "L/kg"))))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}")
    k10, k12, k21 = 2.0, 3.0, 0.75
    s = k10 + k12 + k21
    alpha = (s + math.sqrt(s * s - 4 * k10 * k21)) / 2
    beta = (s - math.sqrt(s * s - 4 * k10 * k21)) / 2
    want = 1e4 * ((alpha - k21) / (alpha - beta) * np.exp(-alpha * T)
                  + (k21 - beta) / (alpha - beta) * np.exp(-beta * T))
    _close(out["drug_plasma"], want)
    # a long infusion: steady state rate / CL, whatever the distribution
    tt = np.array([0.0, 60.0])
    inf, _ = _run("{at: 0h, drug: rvw_one, dose: 240 mg/kg, route: iv, over: 60h}",
                  times=tt)
    assert inf["drug_plasma"][-1] == pytest.approx(4.0 / 2.0 * 1e3, rel=1e-6)


def test_oral_first_order_absorption_is_the_bateman_function(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: oral}")
    f, ka, k, v = 0.4, 1.5, 2.0, 1.0
    want = 1e3 * f * 10 * ka / (v * (ka - k)) * (np.exp(-k * T) - np.exp(-ka * T))
    _close(out["drug_plasma"], want, atol=1e-5)


def test_ip_without_own_values_takes_the_species_route_defaults(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: ip}")
    f, ka = REG.value("route.mouse.ip.f"), REG.value("route.mouse.ip.ka")
    want = 1e3 * f * 10 * ka / (ka - 2.0) * (np.exp(-2.0 * T) - np.exp(-ka * T))
    _close(out["drug_plasma"], want, atol=1e-5)


def test_auc_is_f_dose_over_cl(tmp_path):
    """AUC(0-inf) = F D / CL for an extravascular dose (two compartments, own F)."""
    d = _one(q=_v(1.0, "L/h/kg"), v2=_v(2.0, "L/kg"))
    d["pk"]["mouse"]["routes"]["sc"] = {"f": _v(0.6), "ka": _v(3.0, "1/h")}
    add_compounds(_write(tmp_path / "c", d))
    tt = np.linspace(0, 40, 40 * 240 + 1)
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: sc}", times=tt)
    c = out["drug_plasma"] / 1e3  # mg/L
    auc = np.trapezoid(c, tt) if hasattr(np, "trapezoid") else np.trapz(c, tt)
    assert auc == pytest.approx(0.6 * 10.0 / 2.0, rel=1e-4)


def test_units_convert_to_the_canonical_ones(tmp_path):
    """mL/min/kg, 1/min and min give the same course as L/h/kg, 1/h and h."""
    d = _one(cl=_v(2.0 / 0.06, "mL/min/kg"))
    d["pk"]["mouse"]["routes"]["oral"]["ka"] = _v(1.5 / 60, "1/min")
    add_compounds(_write(tmp_path / "c", d))
    out, _ = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: oral}")
    want = 1e3 * 0.4 * 10 * 1.5 / (1.5 - 2.0) * (np.exp(-2 * T) - np.exp(-1.5 * T))
    _close(out["drug_plasma"], want, atol=1e-5)
    c = COMPOUNDS["rvw_one"]
    assert c.pk["mouse"].fields["cl"].value == pytest.approx(2.0)


def test_brain_effect_site_and_unbound_um_via_molecular_weight(tmp_path):
    """brain' = ke0 (kp Cp - brain); the unbound brain level in uM is
    fu x C(mg/L) x 1000 / MW, read by an NMDA blocker's occupancy with its Ki in nM:
    occ / (1 - occ) x pot_int = C_u / Ki."""
    d = copy.deepcopy(ONE)
    d["targets"] = {"nmda": {"action": "channel_blocker",
                             "potency": _v(500.0, "nM"), "trapping": _v(0.86)}}
    add_compounds(_write(tmp_path / "c", d))
    out, cohort = _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
                       outputs=("drug_brain", "occupancy_interneuron"))
    kp, ke0, k = 1.0, 3.0, 2.0
    want = 1e3 * kp * 10 * ke0 / (ke0 - k) * (np.exp(-k * T) - np.exp(-ke0 * T))
    _close(out["drug_brain"], want, atol=1e-5)
    occ = out["occupancy_interneuron"][1:]
    pot = float(cohort.get("rec.potency_interneuron")[0])
    cu_um = 0.5 * (out["drug_brain"][1:] / 1e3) * 1000.0 / 250.0
    _close(occ / (1 - occ) * pot, cu_um / 0.5, rtol=1e-6, atol=1e-9)


METAB = {
    "name": "rvw_met",
    "description": "review test metabolite",
    "routes": ["iv"],
    "analytes": ["drug"],
    "mw": _v(200.0, "g/mol"),
    "pk": {"mouse": {"cl": _v(1.0, "L/h/kg"), "v1": _v(2.0, "L/kg"),
                     "kp_brain": _v(1.0), "ke0": _v(3.0, "1/h"), "fu_brain": _v(0.5)}},
}


def _parent_with_metabolite(fm=0.6, analytes=()):
    p = copy.deepcopy(ONE)
    p["name"] = "rvw_par"
    p["analytes"] = list(analytes)  # only the metabolite counts toward 'drug'
    p["metabolites"] = [{"compound": "rvw_met", "fraction": _v(fm)}]
    return p


def test_metabolite_forms_from_the_parent_s_clearance_in_moles(tmp_path):
    """A_m' = fm (MW_m / MW_p) k_p A_p - k_m A_m: the closed form, and in moles the
    metabolite formed is fm of the parent eliminated (AUC_m CL_m = fm D MW_m/MW_p)."""
    add_compounds(_write(tmp_path / "c", _parent_with_metabolite(), METAB))
    tt = np.linspace(0, 30, 30 * 120 + 1)
    out, _ = _run("{at: 0h, drug: rvw_par, dose: 10 mg/kg, route: iv}", times=tt)
    fm, r, kp_, km, vm = 0.6, 200.0 / 250.0, 2.0, 0.5, 2.0
    am = fm * r * 10 * kp_ / (km - kp_) * (np.exp(-kp_ * tt) - np.exp(-km * tt))
    _close(out["drug_plasma"], 1e3 * am / vm, atol=1e-5)
    c = out["drug_plasma"] / 1e3
    auc = np.trapezoid(c, tt) if hasattr(np, "trapezoid") else np.trapz(c, tt)
    assert auc * 1.0 / r == pytest.approx(fm * 10.0, rel=1e-3)  # moles: fm of the dose


def test_first_pass_forms_metabolites_and_conserves_mass(tmp_path):
    """An oral dose through the gut path: F = gut_f x F_h (F_h = Qh / (Qh + CLint));
    the liver's extracted share forms the metabolite by the same fraction, so the
    metabolite formed in all is fm x gut_f x dose (moles), whatever F_h."""
    p = _parent_with_metabolite(fm=0.5, analytes=())
    p["pk"]["mouse"].update(qh=_v(6.0, "L/h/kg"), clint_h=_v(2.0, "L/h/kg"))
    p["pk"]["mouse"]["routes"]["oral"] = {"gut_f": _v(0.8), "gut_release": _v(6.0, "min"),
                                          "gut_ka": _v(4.0, "1/h")}
    q = copy.deepcopy(p)
    q["name"] = "rvw_par2"
    q["analytes"] = ["drug"]
    q["metabolites"] = []
    add_compounds(_write(tmp_path / "c", p, METAB))
    add_compounds(_write(tmp_path / "d", q))
    tt = np.linspace(0, 40, 40 * 120 + 1)
    trap = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
    met, _ = _run("{at: 0h, drug: rvw_par, dose: 10 mg/kg, route: oral}", times=tt)
    par, _ = _run("{at: 0h, drug: rvw_par2, dose: 10 mg/kg, route: oral}", times=tt)
    f_h = 6.0 / (6.0 + 2.0)
    assert trap(par["drug_plasma"] / 1e3, tt) * 2.0 == pytest.approx(0.8 * f_h * 10, rel=1e-3)
    assert trap(met["drug_plasma"] / 1e3, tt) * 1.0 / (200 / 250) == pytest.approx(
        0.5 * 0.8 * 10, rel=1e-3)


# ======================================================================= (b) assays
def _sim(protocol: str, assays: str, n: int = 1, seed: int = 1):
    text = (f"name: t\nspecies: mouse\nseed: {seed}\narms:\n  - name: a\n    n: {n}\n"
            f"    protocol: [{protocol}]\n    assays: [{assays}]\n")
    return ketasim.simulate(load_scenario_text(text), registry=REG).readouts


def _drug(r, readout="drug_plasma_ng_ml"):
    return r[r.readout == readout]


def test_plasma_pk_noise_free_equals_the_model_at_the_requested_times(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    r = _sim("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
             "{assay: plasma_pk, at: [1min, 10min, 1h, 3h, 6h], "
             "options: {cv: 0, sd_add: 0}}")
    d = _drug(r).sort_values("time_h")
    t = np.array([1 / 60, 10 / 60, 1, 3, 6])
    np.testing.assert_allclose(d.time_h.to_numpy(), t)
    assert set(d.unit) == {"ng/mL"}
    true = 1e4 * np.exp(-2 * t)
    got = d.value.to_numpy()
    np.testing.assert_allclose(got[:4], true[:4], rtol=1e-5)
    assert true[4] < 1.0 and np.isnan(got[4])  # below the default LLOQ (1 ng/mL): NaN


def test_lloq_reports_missing_never_a_value_below_it(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    r = _sim("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
             "{assay: plasma_pk, at: [1h, 4h, 8h], options: {cv: 0.5, sd_add: 5, "
             "lloq: 3}}", n=60)
    v = _drug(r).value.to_numpy(float)
    assert np.all(v[~np.isnan(v)] >= 3.0)
    assert np.isnan(v).any() and (~np.isnan(v)).any()
    # an LLOQ of 0: noise around a zero level never gives a negative concentration
    r0 = _sim("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
              "{assay: plasma_pk, at: [20h], options: {sd_add: 5, lloq: 0}}", n=60)
    v0 = _drug(r0).value.to_numpy(float)
    assert np.isnan(v0).any() and np.all(v0[~np.isnan(v0)] >= 0)
    b = _sim("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
             "{assay: brain_pk, at: [12h], options: {sd_add: 20}}", n=60)
    vb = _drug(b, "drug_brain_ng_g").value.to_numpy(float)
    assert np.all(vb[~np.isnan(vb)] >= 5.0)  # brain_pk's default LLOQ


def test_residual_error_is_mean_preserving_lognormal_plus_additive(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    dose = "{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}"
    n = 1500
    true = 1e4 * math.exp(-2.0)
    prop = _drug(_sim(dose, "{assay: plasma_pk, at: [1h], options: {cv: 0.3, sd_add: 0, "
                            "lloq: 0}}", n=n)).value.to_numpy(float)
    sigma = math.sqrt(math.log1p(0.3 ** 2))
    lr = np.log(prop / true)
    assert np.std(lr, ddof=1) == pytest.approx(sigma, rel=0.06)
    assert np.mean(prop) == pytest.approx(true, rel=4 * 0.3 / math.sqrt(n))
    add = _drug(_sim(dose, "{assay: plasma_pk, at: [1h], options: {cv: 0, sd_add: 50, "
                           "lloq: 0}}", n=n)).value.to_numpy(float)
    assert np.std(add - true, ddof=1) == pytest.approx(50, rel=0.06)
    assert np.mean(add - true) == pytest.approx(0, abs=4 * 50 / math.sqrt(n))


def test_venous_samples_follow_the_arteriovenous_ode(tmp_path):
    """dCv/dt = k_av (Ca - Cv) after a bolus into one compartment has the closed form
    Cv = C0 k_av / (k_av - k) (e^-kt - e^-k_av t); the kernel approximation holds it to
    a fraction of a percent, also in the first minutes (the hour before a sample
    reaches before the dose)."""
    add_compounds(_write(tmp_path / "c", ONE))
    r = _sim("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}",
             "{assay: plasma_pk, at: [1min, 3min, 10min, 30min, 2h], "
             "options: {sampling: venous, cv: 0, sd_add: 0, lloq: 0}}")
    d = _drug(r).sort_values("time_h")
    t = d.time_h.to_numpy()
    np.testing.assert_allclose(t, [1 / 60, 3 / 60, 10 / 60, 0.5, 2.0])
    kav, k = REG.value("pk.arteriovenous_k"), 2.0
    exact = 1e4 * kav / (kav - k) * (np.exp(-k * t) - np.exp(-kav * t))
    np.testing.assert_allclose(d.value.to_numpy(), exact, rtol=5e-3)
    # and it lags: below arterial early, above it later
    assert d.value.iloc[0] < 0.5 * 1e4 * math.exp(-k * t[0])
    assert d.value.iloc[-1] > 1e4 * math.exp(-k * t[-1])


# ======================================================================= (c) validation
def _parse_error(doc: dict) -> str:
    with pytest.raises(CompoundError) as e:
        parse_compound(doc, "rvw_file.yaml")
    return str(e.value)


@pytest.mark.parametrize("edit,fields", [
    (lambda d: d.__setitem__("targets", {"nmdz": {"action": "antagonist",
                                                  "potency": _v(1, "uM")}}),
     ["targets.nmdz", "unknown target"]),
    (lambda d: d.__setitem__("targets", {"ampa": {"action": "antagonist",
                                                  "potency": _v(-1, "uM")}}),
     ["targets.ampa.potency.value", "positive"]),
    (lambda d: d.__setitem__("targets", {"ampa": {"action": "antagonist",
                                                  "potency": _v(1, "mg/L")}}),
     ["targets.ampa.potency.unit", "mg/L"]),
    (lambda d: d["pk"]["mouse"].__setitem__("v1", _v(1, "L")), ["pk.mouse.v1.unit"]),
    (lambda d: d["pk"]["mouse"].__setitem__("ke0", _v(-3, "1/h")), ["pk.mouse.ke0.value"]),
    (lambda d: d["pk"]["mouse"].__setitem__("cl", {"value": 2.0, "unit": "L/h/kg"}),
     ["pk.mouse.cl.source"]),
    (lambda d: d["pk"]["mouse"].__setitem__("cl", 2.0), ["pk.mouse.cl", "needs a unit"]),
    (lambda d: d["pk"]["mouse"].pop("v1"), ["pk.mouse", "missing 'v1'"]),
    (lambda d: d["pk"].__setitem__("dog", d["pk"]["mouse"]), ["pk", "unknown species"]),
    (lambda d: d.pop("mw"), ["missing 'mw'"]),
    (lambda d: d["pk"]["mouse"]["routes"].__setitem__("iv", {"gut_f": _v(0.5),
     "gut_release": _v(1, "h"), "gut_ka": _v(1, "1/h")}), ["routes.iv"]),
])
def test_malformed_file_names_file_and_field(edit, fields):
    d = copy.deepcopy(ONE)
    edit(d)
    msg = _parse_error(d)
    assert "rvw_file.yaml" in msg
    for f in fields:
        assert f in msg, msg


def test_schema_accepts_every_builtin_file_and_refuses_negative_numbers():
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(compound_schema())
    folder = Path(ketasim.__file__).parent / "compounds"
    for f in sorted(folder.glob("*.yaml")):
        errors = list(v.iter_errors(yaml.safe_load(f.read_text())))
        assert not errors, (f.name, errors[0].message)
    bad = copy.deepcopy(ONE)
    bad["pk"]["mouse"]["cl"] = _v(-2.0, "L/h/kg")
    assert list(v.iter_errors(bad))
    assert list(v.iter_errors({**ONE, "targets": {"nmdz": {}}}))


def test_missing_species_or_route_for_a_scenario(tmp_path):
    add_compounds(_write(tmp_path / "c", ONE))
    with pytest.raises(ProtocolError, match=r"rvw_one\.yaml.*no PK for species 'rat'"):
        _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: iv}", species="rat")
    from ketasim.scenario import ScenarioError
    with pytest.raises(ScenarioError, match=r"route.*'im'.*rvw_one"):
        load_scenario_text("name: t\nspecies: mouse\nseed: 1\narms:\n  - name: a\n    n: 1\n"
                           "    protocol: [{at: 0h, drug: rvw_one, dose: 1 mg/kg, "
                           "route: im}]\n")
    # a metabolite without PK for the species: the error names the metabolite's file
    p = _parent_with_metabolite()
    p["metabolites"][0]["compound"] = "escitalopram"  # human only
    add_compounds(_write(tmp_path / "d", p))
    with pytest.raises(ProtocolError, match=r"escitalopram\.yaml.*no PK for species 'mouse'"):
        _run("{at: 0h, drug: rvw_par, dose: 10 mg/kg, route: iv}")


def test_unknown_metabolite_and_cycles_are_refused_before_registering(tmp_path):
    p = _parent_with_metabolite()
    p["metabolites"][0]["compound"] = "rvw_nothere"
    with pytest.raises(CompoundError, match=r"rvw_par\.yaml.*'rvw_nothere'"):
        add_compounds(_write(tmp_path / "a", p))
    a = _parent_with_metabolite()
    b = copy.deepcopy(METAB)
    b["metabolites"] = [{"compound": "rvw_par", "fraction": _v(0.3)}]
    with pytest.raises(CompoundError, match=r"cycle: rvw_\w+ -> rvw_\w+ -> rvw_\w+"):
        add_compounds(_write(tmp_path / "b", a, b))
    self_loop = copy.deepcopy(ONE)
    self_loop["metabolites"] = [{"compound": "rvw_one", "fraction": _v(0.3)}]
    with pytest.raises(CompoundError, match=r"rvw_one\.yaml.*cycle"):
        add_compounds(_write(tmp_path / "c", self_loop))
    # nothing half-registered; a window (tool) compound cannot be a metabolite
    assert "rvw_par" not in COMPOUNDS and "rvw_met" not in COMPOUNDS
    w = copy.deepcopy(ONE)
    w["metabolites"] = [{"compound": "rapamycin", "fraction": _v(0.3)}]  # window PK
    with pytest.raises(CompoundError, match="compartmental PK"):
        add_compounds(_write(tmp_path / "d", w))


def test_unknown_metabolite_error_names_the_field(tmp_path):
    p = _parent_with_metabolite()
    p["metabolites"][0]["compound"] = "rvw_nothere"
    with pytest.raises(CompoundError, match=r"rvw_par\.yaml.*metabolites\[0\]\.compound.*"
                                            r"'rvw_nothere'"):
        add_compounds(_write(tmp_path / "a", p))


def test_user_compounds_cannot_shadow_builtins_or_each_other(tmp_path):
    ket = copy.deepcopy(ONE)
    ket["name"] = "memantine"
    with pytest.raises(CompoundError, match=r"memantine\.yaml.*shadows a built-in"):
        add_compounds(_write(tmp_path / "a", ket))
    add_compounds(_write(tmp_path / "b", ONE))
    add_compounds(tmp_path / "b")  # the same file again (a worker re-loading): fine
    with pytest.raises(CompoundError, match=r"c/rvw_one\.yaml.*already defined by.*"
                                            r"b/rvw_one\.yaml"):
        add_compounds(_write(tmp_path / "c", ONE))
    # the file name must be the compound's name
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "other.yaml").write_text(yaml.safe_dump(ONE))
    with pytest.raises(CompoundError, match=r"other\.yaml.*must be named rvw_one\.yaml"):
        add_compounds(tmp_path / "e")


def test_cli_compounds_folder_errors_exit_2_naming_the_file(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    ket = copy.deepcopy(ONE)
    ket["name"] = "ketamine"
    res = CliRunner().invoke(app, ["compounds", "--compounds", str(_write(tmp_path / "a",
                                                                          ket))])
    assert res.exit_code == 2, res.output
    assert "ketamine.yaml" in res.output and "built-in" in res.output
    reset_compounds()
    res = CliRunner().invoke(app, ["compounds", "--compounds", str(_write(tmp_path / "b", ONE)),
                                   "--compounds", str(_write(tmp_path / "c", ONE))],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 2, res.output
    assert "already defined" in res.output


def test_duplicate_name_within_one_folder_is_an_error(tmp_path):
    folder = _write(tmp_path / "c", ONE)
    other = _one(cl=_v(9.0, "L/h/kg"))
    (folder / "rvw_one.yml").write_text(yaml.safe_dump(other))
    with pytest.raises(CompoundError, match=r"rvw_one\.yml.*'rvw_one'.*already defined by "
                                            r".*rvw_one\.yaml"):
        add_compounds(folder)
    assert "rvw_one" not in COMPOUNDS


@pytest.mark.parametrize("fractions", [[1.5], [0.7, 0.7]])
def test_metabolite_fractions_cannot_create_mass(fractions):
    d = copy.deepcopy(ONE)
    d["metabolites"] = [{"compound": c, "fraction": _v(f)}
                        for c, f in zip(["norketamine", "hnk"], fractions, strict=False)]
    msg = _parse_error(d)
    assert "metabolites" in msg and "rvw_file.yaml" in msg, msg
    if len(fractions) == 1:
        assert "metabolites[0].fraction" in msg, msg
    # the schema refuses a fraction above 1 (the sum is the loader's check only)
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(compound_schema())
    assert bool(list(v.iter_errors(d))) == (len(fractions) == 1)


def test_a_metabolite_listed_twice_is_refused():
    d = copy.deepcopy(ONE)
    d["metabolites"] = [{"compound": "norketamine", "fraction": _v(0.3)},
                        {"compound": "norketamine", "fraction": _v(0.3)}]
    msg = _parse_error(d)
    assert "metabolites[1]" in msg and "twice" in msg, msg


@pytest.mark.parametrize("where,key", [("route", "f"), ("route", "gut_f"),
                                       ("pk", "fu_brain")])
def test_fractions_above_one_are_refused(where, key):
    d = _one(qh=_v(6.0, "L/h/kg"), clint_h=_v(2.0, "L/h/kg"))
    if where == "route":
        d["pk"]["mouse"]["routes"]["oral"] = {
            "f": _v(0.2), "ka": _v(1.0, "1/h"), "gut_f": _v(0.5),
            "gut_release": _v(0.5, "h"), "gut_ka": _v(1.0, "1/h")}
        d["pk"]["mouse"]["routes"]["oral"][key] = _v(1.5)
    else:
        d["pk"]["mouse"][key] = _v(1.5)
    assert f"{key}.value" in _parse_error(d)
    jsonschema = pytest.importorskip("jsonschema")
    assert list(jsonschema.Draft202012Validator(compound_schema()).iter_errors(d))


def test_oral_without_its_own_ka_is_refused(tmp_path):
    d = copy.deepcopy(ONE)
    d["pk"]["mouse"]["routes"]["oral"] = {"f": _v(1.0)}
    # refused when the file is loaded (a malformed file), naming the route
    with pytest.raises((CompoundError, ProtocolError),
                       match=r"routes\.oral.*give f and ka"):
        add_compounds(_write(tmp_path / "c", d))
        _run("{at: 0h, drug: rvw_one, dose: 10 mg/kg, route: oral}")
    jsonschema = pytest.importorskip("jsonschema")
    assert list(jsonschema.Draft202012Validator(compound_schema()).iter_errors(d))


def test_a_mixture_cannot_be_a_metabolite(tmp_path):
    d = copy.deepcopy(ONE)
    d["metabolites"] = [{"compound": "ketamine", "fraction": _v(0.5)}]
    with pytest.raises(CompoundError, match=r"rvw_one\.yaml.*metabolites\[0\]\.compound.*"
                                            r"'ketamine' is a mixture"):
        add_compounds(_write(tmp_path / "c", d))
    assert "rvw_one" not in COMPOUNDS


# ======================================================================= (d) sources
def _values(c):
    """(species, field path, Value) of every number a compound gives."""
    species = list(c.pk) or ["mouse", "rat", "human"]
    out = [(s, "mw", c.mw) for s in species if c.mw]
    for sp, p in c.pk.items():
        out += [(sp, f"pk.{sp}.{k}", v) for k, v in p.fields.items()]
        out += [(sp, f"pk.{sp}.routes.{r}.{k}", v) for r, d in p.routes.items()
                for k, v in d.items()]
        out += [(sp, f"pk.{sp}.allometry.{k}", v) for k, v in (p.allometry or {}).items()]
        out += [(sp, f"pk.{sp}.hepatic_age.{k}", v)
                for k, v in (p.hepatic_age or {}).items()]
    out += [(s, f"metabolites.{m}", v) for m, v in c.metabolites for s in species]
    for t in c.targets:
        for k in ("potency", "efficacy", "trapping", "mg_rest"):
            if getattr(t, k) is not None:
                out += [(s, f"targets.{t.target}.{k}", getattr(t, k)) for s in species]
        out += [(s, f"targets.{t.target}.potency.{k}", v)
                for k, v in t.window_potency.items() for s in species]
    out += [(sp, f"effective_dose.{sp}", v) for sp, v in c.effective_dose.items()]
    return out


def test_builtin_registry_references_exist_with_source_and_unit():
    for name, c in COMPOUNDS.items():
        for sp, path, v in _values(c):
            if v.param is None:
                continue
            for i, n in enumerate(v.names(sp)):
                assert n in REG, f"{name}: {path} names {n}, not in the registry"
                assert REG[n].source, f"{name}: {path}: {n} has no source"
                if i == 0:
                    assert same_unit(REG[n].unit, v.unit), (name, path, REG[n].unit, v.unit)


def _raw_numbers(x, path=""):
    """Every number written in a compound file, with its source if it has one."""
    if isinstance(x, dict):
        if "value" in x:
            yield path, x.get("source")
            return
        if "param" in x:
            return
        for k, v in x.items():
            if k != "components":  # a racemate's shares are definitions, not data
                yield from _raw_numbers(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _raw_numbers(v, f"{path}[{i}]")
    elif isinstance(x, int | float) and not isinstance(x, bool):
        yield path, None


def test_builtin_numbers_with_a_unit_carry_a_source():
    folder = Path(ketasim.__file__).parent / "compounds"
    for f in sorted(folder.glob("*.yaml")):
        raw = yaml.safe_load(f.read_text())
        for path, source in _raw_numbers(raw):
            if path.endswith("mg_rest"):
                continue  # see the next test
            assert source, f"{f.name}: {path} has no source"


def test_every_builtin_number_carries_a_source():
    folder = Path(ketasim.__file__).parent / "compounds"
    missing = [(f.name, p) for f in sorted(folder.glob("*.yaml"))
               for p, s in _raw_numbers(yaml.safe_load(f.read_text())) if not s]
    assert not missing, missing


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["pk"]["mouse"].__setitem__("kp_brain", {"value": 10, "unit": "1"}),
     "pk.mouse.kp_brain.source"),
    (lambda d: d["pk"]["mouse"].__setitem__("fu_brain", 0.5), "pk.mouse.fu_brain"),
    (lambda d: d.__setitem__("targets", {"nmda": {
        "action": "channel_blocker", "potency": _v(1, "uM"), "mg_rest": 1}}),
     "targets.nmda.mg_rest"),
    (lambda d: d.__setitem__("metabolites", [{"compound": "hnk",
                                              "fraction": {"value": 0.2, "unit": "1"}}]),
     "metabolites[0].fraction.source"),
])
def test_every_number_needs_a_source_dimensionless_too(edit, field):
    """'Every number carries a unit and a source, or names a registry parameter' (README,
    docs/design.md): a dimensionless number too, in the loader and the schema."""
    d = copy.deepcopy(ONE)
    edit(d)
    msg = _parse_error(d)
    assert field in msg and "source" in msg, msg
    jsonschema = pytest.importorskip("jsonschema")
    assert list(jsonschema.Draft202012Validator(compound_schema()).iter_errors(d))
