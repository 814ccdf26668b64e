"""Review of the SBML export (ketasim/io/sbml.py, ``ketasim export-sbml``) against
independent answers.

The exported document is simulated by libRoadRunner (CVODE, rtol 1e-10, atol 1e-14) and
compared with ketasim's own solver at the same tolerances, on every output, for: a
mouse ip bolus of ketamine (a sampled subject, and another subject's values set on the
same loaded document), a human 40-min iv infusion repeated, an intranasal esketamine
dose in devices and an oral ketamine dose (gut path, first pass), a mouse arm with a
stressor before time 0, a repeated ip dose, a second compound and its metabolite chain
(S- and R-ketamine -> norketamine and HNK, and HNK dosed itself) and a bath-applied tool compound, and a saline-only
arm. The runner's own readouts of a subject are compared with the CLI's export of that
subject.

Tolerance of the solver comparisons: |ketasim - roadrunner| <= 1e-6 |roadrunner| +
1e-9 (in each output's unit). Measured (2 shared cores, libRoadRunner 2.10): the
largest relative difference on values above 1e-3 was 1e-7 (hnk_plasma,
norketamine_plasma), the largest absolute 1.9e-6 ng/g on brain ketamine of 2361 ng/g,
and the worst point used 6 % of the bound (hnk_plasma at 3e-4 ng/mL, off by 8e-11). A
dose off by 0.1 %, an event a minute late or a wrong parameter moves outputs by far
more.

Expected values of parameters and events are computed here from the registry, not
through ketasim's protocol compiler.
"""

from __future__ import annotations

import re
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[1]
REL, ABS = 1e-6, 1e-9

MOUSE_MULTI = """
name: review_mouse_multi
species: mouse
seed: 5
arms:
  - name: multi
    n: 2
    protocol:
      - {at: -2d, stress: restraint, duration: 2d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1d, doses: 3}
      - {at: 0h, drug: hnk, dose: 10 mg/kg, route: ip}
      - {at: 30min, drug: h89, dose: 10 uM, route: bath}
    assays: [{assay: signaling_state, at: [1h]}]
"""

HUMAN_MULTI = """
name: review_human_multi
species: human
seed: 7
arms:
  - name: multi
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min, every: 3d, doses: 2}
      - {at: 7d, drug: esketamine, dose: 56 mg, route: intranasal}
      - {at: 9d, drug: ketamine, dose: 0.5 mg/kg, route: oral}
    assays: [{assay: signaling_state, at: [1h]}]
"""

MOUSE_IP = """
name: review_mouse_ip
species: mouse
seed: 3
arms:
  - name: ketamine
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: signaling_state, at: [5min, 20min, 1h, 2h, 6h, 24h, 48h]}
"""

HUMAN_POPULATION = """
name: review_population
species: human
seed: 11
arms:
  - name: ketamine
    n: 2
    population: {female: 0.5}
    protocol:
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: [{assay: signaling_state, at: [10min, 30min, 40min, 1h, 2h, 24h]}]
"""

STRIATAL_LESION = """
name: review_lesion
species: rat
seed: 7
arms:
  - name: mfb
    n: 1
    protocol: [{at: 0d, intervention: lesion_6ohda_mfb}]
    assays:
      - {assay: signaling_state, at: [1d, 3d, 7d], region: striatum}
"""


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def _arm(text_or_name: str):
    sc = load_scenario_text(text_or_name) if "\n" in text_or_name else load_scenario(
        text_or_name)
    return sc


def _compile(reg, sc, arm_index=0, n=None, variability=True):
    arm = sc.arms[arm_index]
    cohort = sample_cohort(reg, sc.species, arm.name, arm.n if n is None else n, sc.seed,
                           arm.body_weight_kg, variability=variability)
    return cohort, compile_arm(arm, sc.species, cohort, reg)


def _rr(sbml, rtol=1e-10, atol=1e-14) -> roadrunner.RoadRunner:
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.setValue("maximum_num_steps", 500000)
    rr.timeCourseSelections = ["time"] + [f"out_{o}" for o in spec.OUTPUT_NAMES]
    return rr


def _rr_outputs(rr, times, offset):
    """Outputs at scenario ``times`` (SBML time = scenario time - time_offset_h)."""
    return np.asarray(rr.simulate(times=[0.0, *(np.asarray(times) - offset)]))[1:, 1:]


def _assert_close(ours, ref, what=""):
    bad = np.abs(ours - ref) > REL * np.abs(ref) + ABS
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssertionError(f"{what}{spec.OUTPUT_NAMES[j]} at row {i}: ketasim {ours[i, j]!r}, "
                             f"roadrunner {ref[i, j]!r} ({bad.sum()} mismatches)")


def _out(name):
    return spec.OUTPUT_NAMES.index(name)


def _export(tmp_path, scenario, *args, name="m.xml"):
    from typer.testing import CliRunner

    from ketasim.cli import app

    out = tmp_path / name
    res = CliRunner().invoke(app, ["export-sbml", str(scenario), "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    return out


def _run(sc, reg):
    from ketasim.experiment.runner import simulate

    return simulate(sc, registry=reg, rtol=1e-10, atol=1e-14).readouts


def _runner_values(df, readouts, subject):
    """The runner's noise-free signaling_state readouts of one subject (a run at tight
    tolerances): (times, {readout: values})."""
    df = df[(df.assay == "signaling_state") & (df.subject == subject)]
    out = {}
    for r in readouts:
        rows = df[df.readout == r].sort_values("time_h")
        out[r] = rows.value.to_numpy(float)
    return rows.time_h.to_numpy(float), out


# ----------------------------------------------------------------------- solver agreement
def test_human_infusion_repeated_nasal_devices_and_oral_match_roadrunner(reg):
    """A sampled patient (subject 2 of 3, its own body weight: absolute doses vary):
    ketamine 0.5 mg/kg iv over 40 min on days 0 and 3, esketamine 56 mg intranasal (two
    28-mg devices 5 min apart, the swallowed part through gut and liver) on day 7, oral
    ketamine on day 9; every output every 10 min over 12 days."""
    sc = _arm(HUMAN_MULTI)
    cohort, events = _compile(reg, sc)
    times = np.arange(-1.0, 12 * 24.0, 1 / 6) + 1 / 120
    t0 = start_time(events)
    doc = build_document(parameter_vector(cohort, events)[2], events, 2, t0, sc.name)
    rr = _rr(libsbml.writeSBMLToString(doc))
    ref = _rr_outputs(rr, times, t0)
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[2]
    plasma = ref[:, _out("ketamine_plasma")]
    during = (times > 0.0) & (times < 2 / 3)
    assert plasma[during].max() > 50.0 and plasma[times < 0].max() == 0.0
    # the infusion ends at 40 min: plasma peaks at the first sample after it (30 s
    # later) and falls from then on
    first_after = np.flatnonzero(times > 2 / 3)[0]
    assert np.argmax(plasma[times < 24.0]) == first_after
    assert np.all(np.diff(plasma[first_after:np.flatnonzero(times < 24.0)[-1]]) < 0)
    assert ref[times > 7 * 24, _out("esketamine_plasma")].max() > 10.0
    assert ref[times > 9 * 24, _out("norketamine_plasma")].max() > 10.0
    _assert_close(ours, ref)


def test_mouse_stress_repeated_doses_metabolites_and_bath_match_roadrunner(reg):
    """Restraint from -2 d (an event before time 0) to 0 h, ketamine 10 mg/kg ip daily x3
    (racemate -> S and R -> norketamine), HNK ip at 0 h and bath-applied H-89 (a window
    tool compound) at 30 min; subject 1, every output every 10 min."""
    sc = _arm(MOUSE_MULTI)
    cohort, events = _compile(reg, sc)
    assert set(events.slots) >= {"esketamine", "arketamine", "norketamine", "hnk"}
    times = np.arange(-49.0, 4 * 24.0, 1 / 6) + 1 / 60
    t0 = start_time(events)
    assert t0 == -49.0
    doc = build_document(parameter_vector(cohort, events)[1], events, 1, t0, sc.name)
    ref = _rr_outputs(_rr(libsbml.writeSBMLToString(doc)), times, t0)
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[1]
    stress = ref[:, _out("stress_load")]
    on = (times > -48) & (times < 0)
    assert stress[0] < 0.01 and np.all(np.diff(stress[on]) > 0) and stress[on][-1] > 0.2
    for name in ("ketamine_plasma", "norketamine_plasma", "hnk_plasma"):
        assert ref[:, _out(name)].max() > 100.0, name
    # the third daily dose is there (plasma ketamine rises again after 48 h)
    k = ref[:, _out("ketamine_plasma")]
    assert k[(times > 48) & (times < 49)].max() > 100 * k[(times > 47) & (times < 48)].min()
    _assert_close(ours, ref)


def test_mouse_interventions_of_every_kind_match_roadrunner(reg):
    """The same arm with a timed intervention (VTA inhibition, 30 min for 2 h), an
    instantaneous one (an AS-PaRAC1 light pulse at 12 h: a control set, then set back to
    0) and a permanent one (PKI-alpha from 36 h), overlapping the window compound and
    the doses. libRoadRunner at rtol 1e-9, atol 1e-13: at 1e-10 / 1e-14 CVODE stops
    with CV_TOO_MUCH_ACC near t = 97 h (the pos() corners docs/design.md describes);
    measured worst point 11 % of the bound."""
    text = MOUSE_MULTI.replace(
        "      - {at: 30min, drug: h89",
        "      - {at: 12h, intervention: as_parac1_photoactivation}\n"
        "      - {at: 36h, intervention: pki_alpha}\n"
        "      - {at: 30min, intervention: vta_da_chemogenetic_inhibition, duration: 2h}\n"
        "      - {at: 30min, drug: h89")
    sc = _arm(text)
    cohort, events = _compile(reg, sc)
    assert {"as_parac1_photoactivation_on", "as_parac1_photoactivation_off", "pki_alpha",
            "vta_da_chemogenetic_inhibition_on"} <= set(events.labels)
    times = np.arange(-49.0, 4 * 24.0, 1 / 6) + 1 / 60
    t0 = start_time(events)
    doc = build_document(parameter_vector(cohort, events)[1], events, 1, t0, sc.name)
    ref = _rr_outputs(_rr(libsbml.writeSBMLToString(doc), 1e-9, 1e-13), times, t0)
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[1]
    pka = ref[:, _out("pka_rel")]
    rise = {t: pka[(times > t) & (times < t + 12)].max() - 1.0 for t in (24.0, 48.0)}
    assert rise[24.0] > 0.2 and rise[48.0] < 0.5 * rise[24.0], rise  # PKI from 36 h
    _assert_close(ours, ref)


def test_saline_only_arm_stays_at_baseline_in_both_solvers(reg):
    """The saline arm of the default scenario: no slot, no event; both solvers keep
    every output at its resting value."""
    sc = _arm("default")
    cohort, events = _compile(reg, sc, 0)
    assert events.n == 0 and events.slots == ()
    times = np.arange(-1.0, 72.0, 0.5) + 1 / 60
    t0 = start_time(events)
    doc = build_document(parameter_vector(cohort, events)[1], events, 1, t0, sc.name)
    assert doc.getModel().getNumEvents() == 0
    ref = _rr_outputs(_rr(libsbml.writeSBMLToString(doc)), times, t0)
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[1]
    assert np.ptp(ref, axis=0).max() < 1e-9
    assert ref[0, _out("pka_rel")] == pytest.approx(1.0) and ref[0, _out("ketamine_plasma")] == 0
    _assert_close(ours, ref)


def test_cli_subject_matches_runner_and_own_simulation(reg, tmp_path):
    """`export-sbml --subject 1` of a mouse ip bolus arm: the document simulated by
    libRoadRunner gives the runner's own signaling_state readouts of subject 1 (and
    ketasim's solver on every output), not subject 0's; subject 2's values set on the
    same loaded document reproduce that subject (event amounts are parameters)."""
    yaml_file = tmp_path / "ip.yaml"
    yaml_file.write_text(MOUSE_IP.replace("n: 2", "n: 3"))
    sc = load_scenario(str(yaml_file))
    xml = _export(tmp_path, yaml_file, "--subject", "1")
    xml0 = _export(tmp_path, yaml_file, "--subject", "0", name="m0.xml")
    rr = _rr(str(xml))
    offset = rr["time_offset_h"]
    assert offset == -1.0
    # every output on a dense grid against ketasim's solver
    cohort, events = _compile(reg, sc)
    dense = np.arange(-1.0, 48.0, 1 / 6) + 1 / 60
    ours = simulate_signaling(cohort, events, dense, rtol=1e-10, atol=1e-14).values
    ref = _rr_outputs(rr, dense, offset)
    _assert_close(ours[1], ref, "subject 1: ")
    assert np.abs(ours[0] - ref)[:, _out("ketamine_plasma")].max() > 1.0  # others differ
    # the runner's readouts of subject 1 (it samples the subjects itself)
    names = ["occupancy_interneuron", "pka_rel", "synaptic_potentiation", "plasticity_potential"]
    run = _run(sc, reg)
    t, runner = _runner_values(run, names, 1)
    _, runner0 = _runner_values(run, names, 0)
    rr.resetAll()
    at = _rr_outputs(rr, t, offset)
    for r in names:
        got = at[:, _out(r)]
        np.testing.assert_allclose(got, runner[r], rtol=REL, atol=ABS, err_msg=r)
    assert np.abs(at[:, _out("occupancy_interneuron")]
                  - runner0["occupancy_interneuron"]).max() > 1e-3
    # subject 0's document differs in its sampled values, which event_parameter_values gives
    m0 = libsbml.readSBMLFromFile(str(xml0)).getModel()
    m1 = libsbml.readSBMLFromFile(str(xml)).getModel()
    # (libSBML writes 15 significant digits: the file's values differ from the
    # double by up to 5e-16 relative)
    for subject, m in ((0, m0), (1, m1)):
        for pid, v in event_parameter_values(events, subject).items():
            assert m.getParameter(pid).getValue() == pytest.approx(v, rel=1e-14, abs=0), (
                subject, pid)
    assert m0.getParameter("ev0_ka0").getValue() != m1.getParameter("ev0_ka0").getValue()
    # one loaded document serves subject 2 once its values are set
    vals = event_parameter_values(events, 2)
    rr.resetAll()
    rr.setValues(list(spec.PVEC_NAMES) + list(vals),
                 list(parameter_vector(cohort, events)[2]) + list(vals.values()))
    _assert_close(ours[2], _rr_outputs(rr, dense, offset), "subject 2: ")


# fixed (was BUG): export-sbml --subject ignores the arm's population (drawn body weight and
#   age), so the exported patient is not the runner's
def test_cli_subject_of_population_arm_matches_runner(reg, tmp_path):
    """An arm with a virtual patient population: the runner gives each patient the
    population's body weight and age (they enter the PK through allometry and the
    liver's age effect); `export-sbml --subject 1` must export that patient.
    Measured: the export equals the arm without a population, 0.6 % (10 min) to 22 %
    (24 h) away from the runner's patient 1 on occupancy_interneuron."""
    yaml_file = tmp_path / "pop.yaml"
    yaml_file.write_text(HUMAN_POPULATION)
    sc = load_scenario(str(yaml_file))
    names = ["occupancy_interneuron", "ampa_drive"]
    t, runner = _runner_values(_run(sc, reg), names, 1)
    rr = _rr(str(_export(tmp_path, yaml_file, "--subject", "1")))
    at = _rr_outputs(rr, t, rr["time_offset_h"])
    for r in names:
        np.testing.assert_allclose(at[:, _out(r)], runner[r], rtol=REL, atol=ABS,
                                   err_msg=r)


# fixed (was BUG): export-sbml always writes the mPFC parameter set; an arm measured in the
#   striatum (region: striatum) exports a model in which a 6-OHDA lesion does nothing
def test_export_of_striatal_arm_matches_runner(reg, tmp_path):
    """The arm's only signalling readouts are striatal: the runner's dopamine terminals
    fall to about 4 % by day 7 (the striatum's sig.lesion_reach is 1); the exported
    model carries mPFC's lesion_reach 0 and its terminals stay at 1."""
    yaml_file = tmp_path / "lesion.yaml"
    yaml_file.write_text(STRIATAL_LESION)
    sc = load_scenario(str(yaml_file))
    t, runner = _runner_values(_run(sc, reg), ["da_terminals"], 0)
    assert runner["da_terminals"][-1] < 0.1  # the lesion acts in the runner
    rr = _rr(str(_export(tmp_path, yaml_file)))
    at = _rr_outputs(rr, t, rr["time_offset_h"])
    np.testing.assert_allclose(at[:, _out("da_terminals")], runner["da_terminals"],
                               rtol=1e-5, atol=1e-8)


# fixed (was BUG): build_document silently drops every event at or before t_start (trigger
#   initialValue=true), while ketasim's solver applies such events at the start
def test_event_at_the_start_time_is_applied(reg):
    """A document whose t_start is the time of the ketamine dose (the module docstring:
    SBML time 0 is the simulation start): ketasim's solver applies events at or before
    its start time at the start; the SBML event's trigger is already true at time 0
    with initialValue=true, so it never fires. Measured: plasma ketamine 0 in
    libRoadRunner against 1520 ng/mL at 15 min in ketasim. (The CLI always starts 1 h
    before the first event, so only callers of build_document meet it.) Before the dose
    the subject is at its resting steady state, so starting at the dose changes nothing
    in ketasim."""
    sc = _arm("default")
    cohort, events = _compile(reg, sc, 1, n=1, variability=False)
    times = np.array([0.25, 0.5, 1.0, 2.0, 6.0])
    ours = simulate_signaling(cohort, events, times, rtol=1e-10, atol=1e-14).values[0]
    assert ours[0, _out("ketamine_plasma")] > 1000.0
    doc = build_document(parameter_vector(cohort, events)[0], events, 0, 0.0, "at_start")
    ref = _rr_outputs(_rr(libsbml.writeSBMLToString(doc)), times, 0.0)
    _assert_close(ours, ref)


# ------------------------------------------------------------------- validation, units
def _full_check(doc: libsbml.SBMLDocument) -> list[str]:
    doc = libsbml.readSBMLFromString(libsbml.writeSBMLToString(doc))
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    n = doc.checkConsistency()
    return [f"{doc.getError(i).getErrorId()}: {doc.getError(i).getMessage().strip()[-160:]}"
            for i in range(n)]


def test_documents_with_events_have_no_consistency_errors(reg):
    """libSBML's full consistency check finds no error (severity >= error) in documents
    with every kind of event."""
    for text in (MOUSE_MULTI, HUMAN_MULTI):
        sc = _arm(text)
        cohort, events = _compile(reg, sc)
        doc = build_document(parameter_vector(cohort, events)[1], events, 1,
                             start_time(events), sc.name)
        d = libsbml.readSBMLFromString(libsbml.writeSBMLToString(doc))
        d.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
        d.checkConsistency()
        assert d.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
        assert d.getNumErrors(libsbml.LIBSBML_SEV_FATAL) == 0


# fixed (was BUG): the event triggers' literal time (time >= 49) carries no sbml:units, so
#   the units check reports 99505 once per event
def test_units_check_reports_nothing_for_a_dosed_arm(tmp_path):
    """The README's own example (`export-sbml default --arm ketamine`): docs/design.md
    says libSBML's units check reports nothing, no 99505; tests/test_sbml.py checks it
    only on first arms, which are saline arms without events. With events every
    trigger's number is undeclared (one 99505 warning per event)."""
    doc = libsbml.readSBMLFromFile(str(_export(tmp_path, "default", "--arm", "ketamine")))
    assert doc.getModel().getNumEvents() == 1
    assert _full_check(doc) == []


def _si(unit_def: libsbml.UnitDefinition) -> tuple[float, dict[str, float]]:
    u = libsbml.UnitDefinition.convertToSI(unit_def)
    mult, kinds = 1.0, {}
    for i in range(u.getNumUnits()):
        x = u.getUnit(i)
        mult *= (x.getMultiplier() * 10.0 ** x.getScale()) ** x.getExponentAsDouble()
        if x.getKind() != libsbml.UNIT_KIND_DIMENSIONLESS:
            kinds[libsbml.UnitKind_toString(x.getKind())] = x.getExponentAsDouble()
    return mult, kinds


# each unit written by hand in SI: (multiplier, {base unit: exponent})
_SI = {
    "hour": (3600.0, {"second": 1}), "per_hour": (1 / 3600, {"second": -1}),
    "mg_per_kg": (1e-6, {}), "mg_per_kg_per_hour": (1e-6 / 3600, {"second": -1}),
    "mg_per_L": (1e-3, {"kilogram": 1, "metre": -3}),
    "L_per_kg": (1e-3, {"metre": 3, "kilogram": -1}),
    "L_per_h_per_kg": (1e-3 / 3600, {"metre": 3, "second": -1, "kilogram": -1}),
    "uM": (1e-3, {"mole": 1, "metre": -3}), "per_uM": (1e3, {"mole": -1, "metre": 3}),
    "g_per_mol": (1e-3, {"kilogram": 1, "mole": -1}),
    "ng_per_mL": (1e-6, {"kilogram": 1, "metre": -3}), "ng_per_g": (1e-9, {}),
    "kg_per_L": (1e3, {"kilogram": 1, "metre": -3}),
    "umol_per_mg": (1.0, {"mole": 1, "kilogram": -1}),
}
_SPEC_UNIT = {"1": "dimensionless", "probability": "dimensionless", "h": "hour",
              "1/h": "per_hour", "mg/kg": "mg_per_kg", "mg/kg/h": "mg_per_kg_per_hour",
              "mg/L": "mg_per_L", "L/kg": "L_per_kg", "L/h/kg": "L_per_h_per_kg",
              "uM": "uM", "1/uM": "per_uM", "g/mol": "g_per_mol", "ng/mL": "ng_per_mL",
              "ng/g": "ng_per_g", "umol/mg": "umol_per_mg", "kg/L": "kg_per_L"}


def test_every_quantity_declares_the_right_unit(reg):
    """Each parameter, control, state, output and event amount has a unit; the unit
    is the spec's, and each unit definition is, in SI, what its name says."""
    sc = _arm(HUMAN_MULTI)
    cohort, events = _compile(reg, sc, n=1, variability=False)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, start_time(events),
                       sc.name).getModel()
    assert all(m.getParameter(i).isSetUnits() for i in range(m.getNumParameters()))
    want = {p.name: p.unit for p in spec.PARAMS}
    want |= {c.name: c.unit for c in spec.CONTROLS} | {s.name: s.unit for s in spec.STATES}
    want |= {f"out_{o}": u for o, _e, u, _d in spec.OUTPUTS}
    for pid, unit in want.items():
        assert m.getParameter(pid).getUnits() == _SPEC_UNIT[unit], pid
    for pid in event_parameter_values(events, 0):
        var = pid.split("_", 1)[1]
        assert m.getParameter(pid).getUnits() == m.getParameter(var).getUnits(), pid
    assert m.getParameter("time_offset_h").getUnits() == "hour"
    assert m.getTimeUnits() == "hour"
    used = {m.getParameter(i).getUnits() for i in range(m.getNumParameters())}
    for uid in sorted(used - {"dimensionless"}):
        mult, kinds = _si(m.getUnitDefinition(uid))
        w_mult, w_kinds = _SI[uid]
        assert kinds == w_kinds and mult == pytest.approx(w_mult, rel=1e-12), uid


# ------------------------------------------------------------- parameter and event values
def test_parameter_values_are_the_registry_values(reg):
    """The typical mouse of the ketamine arm: every registry-backed parameter is the
    registry's value, the drug slots hold the compound files' registry values
    (S- and R-ketamine and their metabolites), unused slots their empty defaults, controls
    0 and states their resting values."""
    sc = _arm("default")
    cohort, events = _compile(reg, sc, 1, n=1, variability=False)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, start_time(events),
                       sc.name).getModel()
    v = {m.getParameter(i).getId(): m.getParameter(i).getValue()
         for i in range(m.getNumParameters())}
    for p in spec.PARAMS:
        if p.registry:
            assert v[p.name] == reg.value(p.registry.format(species="mouse")), p.name
            assert m.getParameter(p.name).getName() == p.registry.format(species="mouse")
    slot = {n: k for k, n in enumerate(events.slots)}
    assert set(slot) == {"esketamine", "arketamine", "norketamine", "hnk"}
    cl = reg.value("pk.mouse.ketamine.cl")
    for name, clearance, ki in (
            ("esketamine", cl, "rec.ki_s_ketamine"),
            ("arketamine", cl * reg.value("pk.mouse.ketamine.r_to_s_cl"), "rec.ki_r_ketamine")):
        k = slot[name]
        assert v[f"cl{k}"] == pytest.approx(clearance, rel=1e-14)
        assert v[f"v1{k}"] == reg.value("pk.mouse.ketamine.v1")
        assert v[f"kp{k}"] == reg.value("pk.mouse.ketamine.kp_brain")
        assert v[f"fu{k}"] == reg.value("rec.fu_brain")
        assert v[f"mw{k}"] == reg.value("chem.mw_ketamine")
        assert v[f"fm{k}_{slot['norketamine']}"] == reg.value("pk.mouse.ketamine.f_nk")
        assert v[f"nmda_a{k}"] == pytest.approx(1.0 / reg.value(ki), rel=1e-14)
    assert v[f"fm{slot['arketamine']}_{slot['hnk']}"] == reg.value("pk.mouse.ketamine.f_hnk")
    assert v[f"fm{slot['esketamine']}_{slot['hnk']}"] == 0.0
    for k in range(len(events.slots), spec.N_SLOTS):  # empty slots
        for suffix, _u, empty, _d in spec.SLOT_PARAMS:
            assert v[f"{suffix}{k}"] == empty, f"{suffix}{k}"
    for c in spec.CONTROLS:
        assert v[c.name] == 0.0 and not m.getParameter(c.name).getConstant()
    for s in spec.STATES:
        assert v[s.name] == s.initial


def test_set_option_reaches_the_document(reg, tmp_path):
    """`--set` changes the exported value (and only that one)."""
    base = libsbml.readSBMLFromFile(str(_export(tmp_path, "default", "--arm", "ketamine")))
    new = reg["sig.k_pka"].value * 1.5
    assert reg["sig.k_pka"].low <= new <= reg["sig.k_pka"].high
    doc = libsbml.readSBMLFromFile(str(_export(
        tmp_path, "default", "--arm", "ketamine", "--set", f"sig.k_pka={new!r}",
        name="set.xml")))
    a, b = base.getModel(), doc.getModel()
    assert b.getParameter("k_pka").getValue() == new
    changed = [a.getParameter(i).getId() for i in range(a.getNumParameters())
               if a.getParameter(i).getValue() != b.getParameter(a.getParameter(i).getId())
               .getValue()]
    assert changed == ["k_pka"]


def _events_by_time(m):
    """{scenario time: {target: (assignment formula, amount)}} of a model's events."""
    offset = m.getParameter("time_offset_h").getValue()
    out = {}
    for i in range(m.getNumEvents()):
        e = m.getEvent(i)
        trig = e.getTrigger().getMath()
        assert trig.getType() == libsbml.AST_RELATIONAL_GEQ
        assert trig.getLeftChild().getType() == libsbml.AST_NAME_TIME
        t = trig.getRightChild().getValue() + offset
        assert e.getTrigger().getPersistent() and e.getUseValuesFromTriggerTime()
        assert not e.isSetDelay() and not e.isSetPriority()
        g = {}
        for a in e.getListOfEventAssignments():
            f = libsbml.formulaToL3String(a.getMath())
            amount = m.getParameter(f.split(" + ")[-1]).getValue()
            g[a.getVariable()] = ("add" if " + " in f else "set", amount)
        out[round(t, 9)] = g
    return out


def test_event_times_and_amounts_follow_the_protocol(reg):
    """Typical mouse of the multi-protocol arm: times (SBML time + time_offset_h) and
    amounts computed here from the registry: restraint on at -2 d and off at 0 h, ip
    doses (f x 5 mg/kg per enantiomer, ka) at 0, 24 and 48 h, HNK ip at 0 h, bath
    H-89 (10 uM / EC50, x Emax) from 30 min + onset for its duration."""
    sc = _arm(MOUSE_MULTI)
    cohort, events = _compile(reg, sc, n=1, variability=False)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, start_time(events),
                       sc.name).getModel()
    assert m.getParameter("time_offset_h").getValue() == -49.0
    ev = _events_by_time(m)
    on = 0.5 + reg.value("tool.h89.onset")
    off = on + reg.value("tool.h89.duration")
    assert sorted(ev) == sorted({-48.0, 0.0, on, off, 24.0, 48.0})
    f, ka = reg.value("route.mouse.ip.f"), reg.value("route.mouse.ip.ka")
    s = {n: k for k, n in enumerate(events.slots)}
    k_s, k_r, k_h = s["esketamine"], s["arketamine"], s["hnk"]
    stress = reg.value("stress.intensity_restraint")
    assert ev[-48.0] == {"stress_input": ("add", stress)}
    dose = {f"depot{k_s}": ("add", pytest.approx(f * 5.0, rel=1e-15)),
            f"depot{k_r}": ("add", pytest.approx(f * 5.0, rel=1e-15)),
            f"ka{k_s}": ("set", ka), f"ka{k_r}": ("set", ka)}
    assert ev[0.0] == {"stress_input": ("add", -stress), **dose,
                       f"depot{k_h}": ("add", pytest.approx(f * 10.0, rel=1e-15)),
                       f"ka{k_h}": ("set", ka)}
    assert ev[24.0] == dose and ev[48.0] == dose
    r = 10.0 / reg.value("tool.h89.ec50_bath")
    emax = reg.value("tool.h89.emax")
    assert ev[on] == {"pka_wa": ("add", pytest.approx(r)),
                      "pka_wb": ("add", pytest.approx(emax * r))}
    assert ev[off] == {"pka_wa": ("add", pytest.approx(-r)),
                       "pka_wb": ("add", pytest.approx(-emax * r))}


def test_infusion_and_device_events_follow_the_protocol(reg):
    """Typical patient: 0.25 mg/kg of each enantiomer over 40 min (0.375 mg/kg/h on at
    0 h and 72 h, off at 40 min after each); esketamine 56 mg intranasal as two 28-mg
    devices 5 min apart (the nasal share, the later device's reduced)."""
    sc = _arm(HUMAN_MULTI)
    cohort, events = _compile(reg, sc, n=1, variability=False)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, start_time(events),
                       sc.name).getModel()
    assert m.getParameter("time_offset_h").getValue() == -1.0
    ev = _events_by_time(m)
    s = {n: k for k, n in enumerate(events.slots)}
    rate = 0.25 / (40 / 60)
    infusion = {f"inf{s['esketamine']}": ("add", pytest.approx(rate, rel=1e-14)),
                f"inf{s['arketamine']}": ("add", pytest.approx(rate, rel=1e-14))}
    stop = {k: ("add", pytest.approx(-rate, rel=1e-14)) for k in infusion}
    for t in (0.0, 72.0):
        assert ev[t] == infusion
        assert ev[round(t + 40 / 60, 9)] == stop
    bw = reg.value("species.human.body_weight")
    f = reg.value("pk.human.ketamine.nasal_f")
    k = s["esketamine"]
    first, second = ev[168.0], ev[round(168.0 + 5 / 60, 9)]
    assert first[f"depot{k}"] == ("add", pytest.approx(f * 28.0 / bw, rel=1e-14))
    assert second[f"depot{k}"] == ("add", pytest.approx(
        f * reg.value("pk.human.ketamine.later_device_f") * 28.0 / bw, rel=1e-14))
    assert first[f"ka{k}"] == ("set", reg.value("pk.human.ketamine.nasal_ka"))


# ------------------------------------------------------------------ names, stability
def test_state_and_output_ids_are_stable_and_named(reg):
    """Every state is a parameter with a rate rule under its spec name, every output
    `out_<output>` with an assignment rule; each carries a description; the ids are
    the same in documents of different protocols and subjects (only the events and
    their ev<k>_<target> amounts differ)."""
    docs = []
    for text, subject in ((MOUSE_MULTI, 1), (HUMAN_MULTI, 0)):
        sc = _arm(text)
        cohort, events = _compile(reg, sc)
        docs.append(build_document(parameter_vector(cohort, events)[subject], events,
                                   subject, start_time(events), sc.name).getModel())
    ids = []
    for m in docs:
        rates = {r.getVariable() for r in m.getListOfRules() if r.isRate()}
        assigned = {r.getVariable() for r in m.getListOfRules() if r.isAssignment()}
        assert rates == set(spec.STATE_NAMES)
        assert {f"out_{o}" for o in spec.OUTPUT_NAMES} <= assigned
        for s in spec.STATES:
            assert m.getParameter(s.name).getName() == s.description
        for o, _e, _u, desc in spec.OUTPUTS:
            assert m.getParameter(f"out_{o}").getName() == desc
        assert all(m.getParameter(i).getName() for i in range(m.getNumParameters()))
        ids.append([m.getParameter(i).getId() for i in range(m.getNumParameters())
                    if not re.fullmatch(r"ev\d+_\w+", m.getParameter(i).getId())])
        assert all(re.fullmatch(r"ev\d+", m.getEvent(i).getId())
                   for i in range(m.getNumEvents()))
    assert ids[0] == ids[1]


# fixed (was BUG): a scenario name starting with a digit (which the scenario format allows)
#   gives an invalid SBML id; setId's failure is not checked and the model is written
#   without an id
def test_model_id_is_set_for_every_valid_scenario_name(reg):
    sc = load_scenario_text(MOUSE_IP.replace("review_mouse_ip", "2024_ketamine"))
    cohort, events = _compile(reg, sc, n=1, variability=False)
    m = build_document(parameter_vector(cohort, events)[0], events, 0, start_time(events),
                       f"{sc.name}_{sc.arms[0].name}").getModel()
    assert m.isSetId() and libsbml.SyntaxChecker.isValidSBMLSId(m.getId())


# fixed (was BUG): README gives the exported time axis with the wrong sign (SBML t =
#   scenario t + time_offset_h; it is minus)
def test_documented_time_axis_matches_the_export(tmp_path):
    """The ketamine dose at scenario 0 h of the default scenario is at SBML time 1 and
    time_offset_h is -1, so SBML t = scenario t - time_offset_h (sbml.py's own name for
    the parameter says scenario time = SBML time + offset, as does docs/design.md).
    README.md's export-sbml example says `SBML t = scenario t + time_offset_h`, which
    puts the dose at SBML time -1."""
    m = libsbml.readSBMLFromFile(str(_export(tmp_path, "default", "--arm", "ketamine"))
                                 ).getModel()
    offset = m.getParameter("time_offset_h").getValue()
    trigger = m.getEvent(0).getTrigger().getMath().getRightChild().getValue()
    assert (offset, trigger) == (-1.0, 1.0)  # SBML t = 0 h - offset
    readme = (REPO / "README.md").read_text()
    assert "export-sbml" in readme and "time_offset_h" in readme
    assert "SBML t = scenario t + time_offset_h" not in readme


# ------------------------------------------------------------------- bad CLI input
def _invoke(args):
    from typer.testing import CliRunner

    from ketasim.cli import app

    return CliRunner().invoke(app, ["export-sbml", *args])


@pytest.mark.parametrize("case", ["unknown_arm", "subject_too_large", "subject_negative",
                                  "missing_folder", "parent_is_a_file", "existing_file",
                                  "out_is_a_folder", "unknown_scenario", "unknown_set"])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, case):
    work = tmp_path / "w"
    work.mkdir()
    (work / "old.xml").write_text("keep me")
    (work / "plain").write_text("a file")
    (work / "sub").mkdir()
    out = work / "new.xml"
    args = {"unknown_arm": ["default", "--arm", "nope"],
            "subject_too_large": ["default", "--arm", "ketamine", "--subject", "8"],
            "subject_negative": ["default", "--arm", "ketamine", "--subject", "-1"],
            "missing_folder": ["default", "--out", str(work / "no" / "m.xml")],
            "parent_is_a_file": ["default", "--out", str(work / "plain" / "m.xml")],
            "existing_file": ["default", "--out", str(work / "old.xml")],
            "out_is_a_folder": ["default", "--out", str(work / "sub")],
            "unknown_scenario": ["no_such_scenario"],
            "unknown_set": ["default", "--set", "no.such=1"]}[case]
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = _invoke(args)
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    expect = {"unknown_arm": "--arm", "subject_too_large": "--subject",
              "subject_negative": "--subject", "missing_folder": "--out",
              "parent_is_a_file": "--out", "existing_file": "--force",
              "out_is_a_folder": "folder", "unknown_scenario": "no_such_scenario",
              "unknown_set": "no.such"}[case]
    assert expect in lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (work / "old.xml").read_text() == "keep me"


def test_force_replaces_an_existing_file(tmp_path):
    out = tmp_path / "old.xml"
    out.write_text("old")
    res = _invoke(["default", "--arm", "ketamine", "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert libsbml.readSBMLFromFile(str(out)).getModel().getNumEvents() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.xml"]  # no temp left


def test_typical_subject_differs_from_sampled_subject_zero(tmp_path):
    """Without --subject the typical subject (registry values) is written; --subject 0
    is the first sampled subject."""
    typ = libsbml.readSBMLFromFile(str(_export(tmp_path, "default", "--arm", "ketamine")))
    s0 = libsbml.readSBMLFromFile(str(_export(tmp_path, "default", "--arm", "ketamine",
                                              "--subject", "0", name="s0.xml")))
    reg = load_registry()
    assert typ.getModel().getParameter("ev0_ka0").getValue() == reg.value("route.mouse.ip.ka")
    assert s0.getModel().getParameter("ev0_ka0").getValue() != reg.value("route.mouse.ip.ka")
