"""The oral antidepressant of esketamine trials (issue 14, item 6): repeated doses in a
scenario (``every`` / ``doses``), escitalopram's PK and SERT occupancy, and its slow
action through the serotonergic adaptation, which lowers the effective stress drive over
weeks and does nothing within a day."""

from __future__ import annotations

import numpy as np
import pytest

from ketasim.experiment.cohort import sample_cohort
from ketasim.params import load_registry
from ketasim.pk.compounds import COMPOUNDS
from ketasim.scenario import ScenarioError, load_scenario_text
from ketasim.signaling.protocol import ProtocolError, compile_arm
from ketasim.signaling.simulate import simulate_signaling

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 150d}"
SSRI10 = "{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 56}"


def _scenario(protocol: str, species: str = "human"):
    return load_scenario_text(f"name: t\nspecies: {species}\nseed: 1\narms:\n"
                              f"  - name: a\n    n: 1\n    protocol: [{protocol}]\n")


def _course(protocol: str, times_h, outputs, reg=REG):
    """A typical patient (no variability): ``outputs`` at ``times_h``."""
    sc = _scenario(protocol)
    c = sample_cohort(reg, "human", "a", 1, 1, variability=False)
    sim = simulate_signaling(c, compile_arm(sc.arms[0], "human", c, reg),
                             np.asarray(times_h, float), outputs)
    return {o: sim.output(o)[0] for o in outputs}


# ------------------------------------------------------------------ repeated doses


def test_a_repeated_dose_is_held_dose_by_dose():
    arm = _scenario(f"{DEP}, {SSRI10}, "
                    "{at: 3d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min, "
                    "every: 1w, doses: 3}").arms[0]
    doses = [e for e in arm.protocol if getattr(e, "drug", None) == "escitalopram"]
    assert [e.at for e in doses] == [24.0 * k for k in range(56)]
    assert all(e.every is None and e.doses is None for e in doses)
    infusions = [e for e in arm.protocol if getattr(e, "drug", None) == "ketamine"]
    assert [(e.at, e.over) for e in infusions] == [(72.0 + 168.0 * k, 40 / 60) for k in range(3)]
    assert [e.at for e in arm.protocol] == sorted(e.at for e in arm.protocol)


@pytest.mark.parametrize(("event", "fragment"), [
    ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d}",
     "'doses' is missing"),
    ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, doses: 5}",
     "'every' is missing"),
    ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 1}",
     "doses"),
    ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 0h, doses: 3}",
     "every"),
    ("{at: 0d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 2h, every: 1h, doses: 3}",
     "longer than the infusion"),
    ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 400}",
     "within 365 days"),
])
def test_bad_repetition_is_one_error_naming_the_field(event, fragment):
    with pytest.raises(ScenarioError) as e:
        _scenario(event)
    assert fragment in str(e.value)
    assert "protocol[0]" in str(e.value) or "protocol.0" in str(e.value)


def test_a_repeated_dose_that_meets_another_names_the_file_events():
    # the third daily dose (day 2) falls on the single dose at 2d: the error names the
    # two events as the file writes them (protocol[1] and protocol[0]), not the doses
    with pytest.raises(ScenarioError) as e:
        _scenario("{at: 2d, drug: escitalopram, dose: 10 mg, route: oral}, "
                  "{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 5}")
    msg = str(e.value)
    assert "protocol[0]" in msg and "protocol[1]" in msg and "protocol[2]" not in msg


# ------------------------------------------------------------------ escitalopram


def test_escitalopram_is_a_sert_inhibitor_with_human_oral_pk():
    c = COMPOUNDS["escitalopram"]
    assert [(t.target, t.action) for t in c.targets] == [("sert", "inhibitor")]
    f = c.pk["human"].fields
    t_half = np.log(2) * f["v1"].value / f["cl"].value
    assert 27.0 <= t_half <= 32.0  # h, the label's terminal half-life
    sc = _scenario("{at: 0d, drug: escitalopram, dose: 10 mg/kg, route: oral}", "mouse")
    c = sample_cohort(REG, "mouse", "a", 1, 1, variability=False)
    with pytest.raises(ProtocolError, match="no PK for species 'mouse'"):  # one clear error
        compile_arm(sc.arms[0], "mouse", c, REG)


def test_one_dose_peaks_within_hours_and_daily_doses_reach_the_pet_occupancy():
    t = np.arange(0.0, 30 * 24.0 + 1, 1.0)
    one = _course("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral}", t, ("drug_plasma",))
    assert 3.0 <= t[np.argmax(one["drug_plasma"])] <= 6.0  # label: Tmax about 5 h
    daily = _course(f"{DEP}, {SSRI10}", t, ("drug_plasma", "occupancy_sert"))
    last_day = (t >= 27 * 24) & (t < 28 * 24)
    occ = daily["occupancy_sert"][last_day]
    # about 80% SERT occupancy at the minimum therapeutic dose (Meyer et al. 2004)
    assert 0.72 <= occ.mean() <= 0.88
    assert occ.max() - occ.min() < 0.1  # a 30-h half-life: small daily swings
    # accumulation: the steady-state trough is about twice the first day's
    assert 1.5 < daily["drug_plasma"][last_day].min() / one["drug_plasma"][23] < 3.0


def test_the_adaptation_lowers_the_stress_load_over_weeks_not_within_a_day():
    t = np.array([0.0, 24.0, 7 * 24.0, 28 * 24.0, 56 * 24.0])
    out = ("stress_load", "serotonergic_adaptation", "formation_drive", "elimination_drive")
    dep = _course(DEP, t, out)
    ssri = _course(f"{DEP}, {SSRI10}", t, out)
    load0 = dep["stress_load"]
    assert np.all(dep["serotonergic_adaptation"] == 0.0)  # no SERT inhibitor, no adaptation
    assert abs(ssri["stress_load"][1] - load0[1]) < 0.002  # one day: nothing yet
    fall = load0 - ssri["stress_load"]
    assert fall[2] < fall[3] < fall[4]  # grows over the weeks
    assert fall[4] > 0.05
    assert ssri["formation_drive"][4] > dep["formation_drive"][4]
    assert ssri["elimination_drive"][4] < dep["elimination_drive"][4]
    # the relief parameter carries the effect: none without it
    none = _course(f"{DEP}, {SSRI10}", t, out,
                   REG.with_values({"sig.serotonergic_stress_relief": 0.0}))
    np.testing.assert_allclose(none["stress_load"], load0, rtol=1e-6)
