"""Review tests of scenario parsing: units, repeated doses, and where events end."""

import pytest

from ketasim.scenario import ScenarioError, UnitError, load_scenario_text, parse_duration

HEAD = "name: t\nspecies: {species}\nseed: 1\narms:\n  - name: a\n    n: 3\n    protocol:\n"


def _load(event: str, species: str = "mouse", extra: str = ""):
    return load_scenario_text(HEAD.format(species=species) + f"      - {event}\n" + extra)


def _error(event: str, species: str = "mouse") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        _load(event, species)
    return info.value


# --------------------------------------------------------------------------- #
# A duration is a length: checked by where the event ends, not as a time point
# --------------------------------------------------------------------------- #


def test_duration_longer_than_365d_that_ends_inside_the_horizon_is_accepted():
    sc = _load("{at: -60d, stress: major_depression, duration: 420d}", species="human")
    (event,) = sc.arms[0].protocol
    assert (event.at, event.duration, event.end) == (-60 * 24.0, 420 * 24.0, 360 * 24.0)


def test_whole_horizon_duration_is_accepted():
    sc = _load("{at: -365d, stress: cort, duration: 730d}")
    assert sc.arms[0].protocol[0].end == 365 * 24.0


@pytest.mark.parametrize(
    ("event", "field", "ends"),
    [
        ("{at: -60d, stress: cort, duration: 500d}", "duration", "440d"),
        ("{at: 300d, stress: cort, duration: 300d}", "duration", "600d"),
        ("{at: 360d, intervention: vta_da_chemogenetic_inhibition, duration: 10d}",
         "duration", "370d"),
        ("{at: 365d, drug: ketamine, dose: 1 mg/kg, route: iv, over: 2h}", "over", "8762h"),
        ("{at: 351d, drug: ketamine, dose: 1 mg/kg, route: iv, over: 2h, every: 7d, doses: 3}",
         "doses", "8762h"),
    ],
)
def test_event_ending_past_the_horizon_is_one_clear_error(event, field, ends):
    err = _error(event)
    assert err.path == f"arms[0].protocol[0].{field}"
    assert err.line == 8
    assert "365 days" in err.expected and ends in err.expected


def test_duration_beyond_the_whole_span_is_rejected_as_a_duration():
    err = _error("{at: -365d, stress: cort, duration: 800d}")
    assert err.path == "arms[0].protocol[0].duration"
    assert "730 days" in err.expected
    assert parse_duration("420d") == 420 * 24.0
    with pytest.raises(UnitError, match="730 days"):
        parse_duration("731d")
    for bad in ("-1d", "0h", "24hr", "24", 24):
        with pytest.raises(UnitError, match="positive duration"):
            parse_duration(bad)


@pytest.mark.parametrize("event", [
    "{at: 0h, stress: cort, duration: -2d}",
    "{at: 0h, intervention: vta_da_chemogenetic_inhibition, duration: -2h}",
])
def test_negative_duration_names_the_field(event):
    err = _error(event)
    assert err.path == "arms[0].protocol[0].duration" and "positive duration" in err.expected


# --------------------------------------------------------------------------- #
# Units and repetition (regressions)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("at", "hours"), [
    ("24h", 24.0), ("1.5d", 36.0), ("90min", 1.5), ("1w", 168.0), ("-2d", -48.0),
    ("24 h", 24.0),
])
def test_times(at, hours):
    sc = _load(f"{{at: {at}, drug: ketamine, dose: 10 mg/kg, route: ip}}")
    assert sc.arms[0].protocol[0].at == hours


@pytest.mark.parametrize(("dose", "value", "unit"), [
    ("0.5 mg/kg", 0.5, "mg/kg"), ("35 mg", 35.0, "mg"), ("500 ug/kg", 0.5, "mg/kg"),
])
def test_doses(dose, value, unit):
    sc = _load(f"{{at: 0h, drug: ketamine, dose: {dose}, route: ip}}")
    d = sc.arms[0].protocol[0].dose
    assert (d.value, d.unit) == (value, unit)


@pytest.mark.parametrize(("field", "text"), [
    ("at", "24hr"), ("at", "24"), ("at", "1e-3h"),
    ("dose", "5 mg/kgg"), ("dose", "1e-3 mg/kg"), ("dose", "2 mg/kg/h"), ("dose", "10"),
])
def test_bad_units_name_field_and_line(field, text):
    values = {"at": "0h", "dose": "10 mg/kg"}
    values[field] = text
    err = _error(f"{{at: {values['at']}, drug: ketamine, dose: {values['dose']}, route: ip}}")
    assert err.path == f"arms[0].protocol[0].{field}" and err.line == 8


def test_weekly_doses_expand_exactly():
    sc = _load("{at: -1w, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1w, doses: 53}")
    times = [e.at for e in sc.arms[0].protocol]
    assert times == [168.0 * k for k in range(-1, 52)]
    err = _error("{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1w, doses: 54}")
    assert err.path == "arms[0].protocol[0].doses"


# --------------------------------------------------------------------------- #
# One assay measures one region once at a time
# --------------------------------------------------------------------------- #

ASSAY_HEAD = "name: t\nspecies: mouse\nseed: 1\narms:\n  - name: a\n    n: 2\n    assays:\n"


def test_the_same_assay_twice_at_one_time_is_refused():
    """Two entries of one assay at one time gave identical rows (same readout, subject,
    time and stream) that no one could tell apart."""
    text = ASSAY_HEAD + (
        "      - {assay: sucrose_preference, at: [1d]}\n"
        "      - {assay: sucrose_preference, at: [2d, 1d], options: {hours: 6}}\n"
    )
    with pytest.raises(ScenarioError, match=r"arms\[0\]\.assays\[1\]\.at.*assays\[0\].*1d"):
        load_scenario_text(text)


def test_the_same_assay_at_other_times_or_in_another_region_is_accepted():
    sc = load_scenario_text(ASSAY_HEAD + (
        "      - {assay: sucrose_preference, at: [1d]}\n"
        "      - {assay: sucrose_preference, at: [2d], options: {hours: 6}}\n"
        "      - {assay: western_blot, at: [1d]}\n"
        "      - {assay: western_blot, region: striatum, at: [1d]}\n"
    ))
    assert [a.at for a in sc.arms[0].assays][:2] == [(24.0,), (48.0,)]
