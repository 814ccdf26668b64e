"""SBML export checked against an independent solver (libRoadRunner's CVODE).

The exported document of one subject is simulated by libRoadRunner and compared with
ketasim's own solver on every output: |ketasim - roadrunner| <= max(1e-4 |roadrunner|,
1e-9) (relative error 1e-4 with an absolute floor of 1e-9, in each output's unit).
"""

from __future__ import annotations

import libsbml
import numpy as np
import pytest
import roadrunner

from ketasim.experiment.cohort import sample_cohort
from ketasim.io.sbml import build_document, event_parameter_values
from ketasim.params import load_registry
from ketasim.scenario import load_scenario, load_scenario_text
from ketasim.signaling import spec
from ketasim.signaling.protocol import compile_arm
from ketasim.signaling.simulate import parameter_vector, simulate_signaling, start_time

MOUSE = """
name: sbml_mouse
species: mouse
seed: 4
arms:
  - name: cort_rapa_ket
    n: 3
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
      - {at: 30min, intervention: vta_da_chemogenetic_inhibition, duration: 2h}
      - {at: 3d, drug: hnk, dose: 10 mg/kg, route: oral}
    assays: [{assay: signaling_state, at: [1h]}]
"""


def _compare(scenario, arm_index: int, subject: int, times: np.ndarray):
    reg = load_registry()
    arm = scenario.arms[arm_index]
    cohort = sample_cohort(reg, scenario.species, arm.name, arm.n, scenario.seed,
                           arm.body_weight_kg)
    events = compile_arm(arm, scenario.species, cohort, reg)
    t0 = start_time(events, times)
    doc = build_document(parameter_vector(cohort, events)[subject], events, subject, t0, scenario.name)
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    rr = roadrunner.RoadRunner(libsbml.writeSBMLToString(doc))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.setValue("maximum_num_steps", 500000)
    rr.timeCourseSelections = ["time"] + [f"out_{o}" for o in spec.OUTPUT_NAMES]
    ref = np.asarray(rr.simulate(times=[0.0, *(times - t0)]))[1:, 1:]
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[subject]
    return ours, ref, rr, events


def _assert_close(ours, ref):
    bad = np.abs(ours - ref) > np.maximum(1e-4 * np.abs(ref), 1e-9)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssertionError(f"{spec.OUTPUT_NAMES[j]} at row {i}: ketasim {ours[i, j]!r}, "
                             f"roadrunner {ref[i, j]!r} ({bad.sum()} mismatches)")


def test_mouse_scenario_matches_roadrunner():
    """Stress, tool compound, ketamine ip, a timed intervention and oral HNK, subject 1,
    outputs every 10 min (offset from the event times) over 14 days."""
    sc = load_scenario_text(MOUSE)
    times = np.arange(-240.0, 14 * 24.0, 1 / 6) + 1 / 60
    ours, ref, _, _ = _compare(sc, 0, 1, times)
    assert np.ptp(ref[:, spec.OUTPUT_NAMES.index("plasticity_potential")]) > 0.05
    _assert_close(ours, ref)


def test_human_infusion_matches_roadrunner():
    """0.5 mg/kg racemic ketamine over 40 min (F-K-1), a sampled patient."""
    sc = load_scenario("human_ketamine_infusion")
    k = [a.name for a in sc.arms].index("ketamine")
    times = np.arange(0.0, 7 * 24.0, 1 / 6) + 1 / 120
    ours, ref, _, _ = _compare(sc, k, 2, times)
    assert ref[:, spec.OUTPUT_NAMES.index("ketamine_plasma")].max() > 50.0
    _assert_close(ours, ref)


def test_one_document_serves_every_subject():
    """Event amounts are parameters: setting another subject's values on a loaded
    document reproduces that subject."""
    sc = load_scenario_text(MOUSE)
    times = np.arange(-1.0, 48.0, 0.5) + 1 / 60
    _, _, rr, events = _compare(sc, 0, 0, times)
    reg = load_registry()
    cohort = sample_cohort(reg, "mouse", sc.arms[0].name, 3, sc.seed)
    vals = event_parameter_values(events, 2)
    rr.resetAll()
    rr.setValues(list(spec.PVEC_NAMES) + list(vals), list(parameter_vector(cohort, events)[2]) + list(vals.values()))
    t0 = start_time(events, times)
    ref = np.asarray(rr.simulate(times=[0.0, *(times - t0)]))[1:, 1:]
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[2]
    _assert_close(ours, ref)


def test_document_has_units_and_events(tmp_path):
    sc = load_scenario_text(MOUSE)
    reg = load_registry()
    arm = sc.arms[0]
    cohort = sample_cohort(reg, "mouse", arm.name, 1, 0, variability=False)
    events = compile_arm(arm, "mouse", cohort, reg)
    doc = build_document(parameter_vector(cohort, events)[0], events, 0, -241.0, "x")
    m = doc.getModel()
    assert m.getTimeUnits() == "hour"
    assert m.getNumEvents() == len(set(events.times.tolist()))
    assert m.getParameter("cl0").getUnits() == "L_per_h_per_kg"
    # a drug-slot parameter is named by what it is and the compound in its slot
    first = events.slots[0]
    assert m.getParameter("cl0").getName() == (
        f"drug slot 0 ({first}): clearance from the central compartment")
    assert m.getParameter("k_synthesis").getName() == "sig.k_synthesis"
    assert all(m.getParameter(p.name).getName() for p in spec.PARAMS)  # every one named
    assert m.getParameter("out_ketamine_plasma").getUnits() == "ng_per_mL"
    assert m.getNumRules() == len(spec.ASSIGNMENTS) + len(spec.RATES) + len(spec.OUTPUTS)


@pytest.mark.parametrize("name", ["default", "cort_ketamine"])
def test_export_cli_roundtrip(tmp_path, name):
    from typer.testing import CliRunner

    from ketasim.cli import app

    out = tmp_path / "m.xml"
    res = CliRunner().invoke(app, ["export-sbml", name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = libsbml.readSBMLFromFile(str(out))
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    rr = roadrunner.RoadRunner(str(out))
    rr.simulate(0, 24, 10)


def test_drd1_silencing_matches_roadrunner():
    """Silencing the mPFC Drd1 neurons around ketamine (F-W-9): the gate on their PKA
    rise and on their activity, exported as events, agrees with ketasim's solver."""
    sc = load_scenario_text(MOUSE.replace(
        "      - {at: 30min, intervention: vta_da_chemogenetic_inhibition, duration: 2h}\n"
        "      - {at: 3d, drug: hnk, dose: 10 mg/kg, route: oral}\n",
        "      - {at: -30min, intervention: mpfc_drd1_neuron_silencing, duration: 4h}\n")
        .replace("      - {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}\n", ""))
    steps = [getattr(e, "intervention", None) or getattr(e, "drug", None)
             for e in sc.arms[0].protocol]
    assert steps == [None, "mpfc_drd1_neuron_silencing", "ketamine"]
    times = np.arange(-24.0, 3 * 24.0, 1 / 6) + 1 / 60
    ours, ref, _, _ = _compare(sc, 0, 1, times)
    pka = ref[:, spec.OUTPUT_NAMES.index("pka_rel")]
    dopamine = ref[:, spec.OUTPUT_NAMES.index("da_rel")]
    silenced = (times > 0.0) & (times < 3.5)
    assert dopamine[silenced].max() > 1.5  # ketamine's dopamine rise is untouched
    assert pka[silenced].max() < 1.4  # about a tenth of ketamine's PKA rise is left
    _assert_close(ours, ref)


def _si(ud: libsbml.UnitDefinition) -> tuple[float, dict[str, float]]:
    """(multiplier, {kind: exponent}) of a unit definition in SI base units."""
    u = libsbml.UnitDefinition.convertToSI(ud)
    mult, kinds = 1.0, {}
    for i in range(u.getNumUnits()):
        x = u.getUnit(i)
        mult *= (x.getMultiplier() * 10.0 ** x.getScale()) ** x.getExponentAsDouble()
        if x.getKind() != libsbml.UNIT_KIND_DIMENSIONLESS:
            kinds[libsbml.UnitKind_toString(x.getKind())] = x.getExponentAsDouble()
    return mult, kinds


@pytest.mark.parametrize("name", ["cort_ketamine", "human_ketamine_infusion"])
def test_units_check_follows_every_expression(tmp_path, name):
    """libSBML's units check reports nothing, not even that an expression could not be
    checked (every literal carries a unit, no function definitions hide one), and every
    rule's derived unit equals its variable's (per hour for a rate) in SI base units,
    multiplier included, which libSBML's own check does not compare: the literal 1000
    that turns mg/L into ng/mL or ng/g is a unit conversion, not a bare number."""
    from typer.testing import CliRunner

    from ketasim.cli import app

    out = tmp_path / "m.xml"
    res = CliRunner().invoke(app, ["export-sbml", name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = libsbml.readSBMLFromFile(str(out))
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    assert doc.checkConsistency() == 0, [doc.getError(i).getMessage()
                                         for i in range(doc.getNumErrors())][:3]
    m = doc.getModel()
    assert m.getNumFunctionDefinitions() == 0
    hour = m.getUnitDefinition("hour")
    for rule in m.getListOfRules():
        assert not rule.containsUndeclaredUnits(), rule.getVariable()
        want = m.getParameter(rule.getVariable()).getDerivedUnitDefinition()
        if rule.isRate():
            want = libsbml.UnitDefinition.divide(want, hour)
        (mw, kw), (mg, kg) = _si(want), _si(rule.getDerivedUnitDefinition())
        assert kw == kg and mg == pytest.approx(mw, rel=1e-12), (rule.getVariable(), kw, kg,
                                                                  mw, mg)
    brain = m.getRule("out_ketamine_brain").getMath()
    assert brain.getRightChild().getUnits() == "ng_per_g_per_mg_per_L"


def test_every_intermediate_quantity_is_named():
    """Each assignment rule's variable carries a name saying what it is (the slots' with
    the compound in them)."""
    sc = load_scenario_text(MOUSE)
    reg = load_registry()
    arm = sc.arms[0]
    cohort = sample_cohort(reg, "mouse", arm.name, 1, 0, variability=False)
    events = compile_arm(arm, "mouse", cohort, reg)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, -241.0, "x").getModel()
    names = {var: m.getParameter(var).getName() for var, _ in spec.ASSIGNMENTS}
    assert all(names.values()), [v for v, n in names.items() if not n]
    assert names["cp0"] == f"drug slot 0 ({events.slots[0]}): plasma concentration"
    assert names["glutamate"] == "glutamate release (x baseline)"  # an output's
