"""Unit tests of scenario parsing, validation and the built-in scenario library."""

import json
import pickle
import re
import textwrap
from pathlib import Path

import pytest

from ketasim.scenario import (
    ALL_READOUTS,
    ASSAYS,
    MISSING,
    Dose,
    DrugEvent,
    InterventionEvent,
    Scenario,
    ScenarioError,
    StressEvent,
    UnitError,
    builtin_scenarios,
    format_time,
    load_scenario,
    load_scenario_text,
    parse_dose,
    parse_duration,
    parse_mass_kg,
    parse_time,
    readouts_of,
    scenario_hash,
    scenario_json_schema,
    vocabulary,
)
from ketasim.scenario.units import DOSE_PATTERN, MASS_PATTERN, TIME_PATTERN

# --------------------------------------------------------------------------- #
# Units
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("0h", 0.0),
        ("3h", 3.0),
        ("1.5h", 1.5),
        ("40min", 40 / 60),
        ("2400s", 40 / 60),
        ("-10d", -240.0),
        ("2w", 336.0),
        ("1 h", 1.0),
        ("0.1d", 2.4),
        ("365d", 8760.0),
        ("-365d", -8760.0),
    ],
)
def test_parse_time_good(text, hours):
    assert parse_time(text) == hours


@pytest.mark.parametrize(
    "value",
    [
        3,
        3.0,
        "3",
        "3 hours",
        "h3",
        "nan",
        "inf",
        "NaNh",
        "infh",
        "3H",
        "",
        " 3h",
        "3h ",
        "1e3h",
        "+3h",
        "3.h",
        ".5h",
        "--3h",
        "3hh",
        None,
        True,
        [],
        "3h\n",
        "\u0663h",
        "400d",
        "-53w",
    ],
)
def test_parse_time_bad(value):
    with pytest.raises(UnitError):
        parse_time(value)


def test_time_unit_error_mentions_examples():
    with pytest.raises(UnitError, match=r"'40min', '3h', '-10d'"):
        parse_time("3 hours")
    with pytest.raises(UnitError, match="365 days"):
        parse_time("9999d")


@pytest.mark.parametrize("value", ["0h", "-1h", "5", 5])
def test_parse_duration_rejects_non_positive_or_bare(value):
    with pytest.raises(UnitError, match="positive duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "value", "unit", "kind"),
    [
        ("10 mg/kg", 10.0, "mg/kg", "per_kg"),
        ("10mg/kg", 10.0, "mg/kg", "per_kg"),
        ("500 ug/kg", 0.5, "mg/kg", "per_kg"),
        ("56 mg", 56.0, "mg", "absolute"),
        ("250 ug", 0.25, "mg", "absolute"),
        ("1.5 g", 1500.0, "mg", "absolute"),
        ("10 uM", 10.0, "uM", "concentration"),
        ("300 nM", 0.3, "uM", "concentration"),
        ("2 mM", 2000.0, "uM", "concentration"),
        ("0 mg/kg", 0.0, "mg/kg", "per_kg"),
    ],
)
def test_parse_dose_good(text, value, unit, kind):
    assert parse_dose(text) == (value, unit)
    dose = Dose.parse(text)
    assert (dose.value, dose.unit, dose.kind) == (value, unit, kind)


@pytest.mark.parametrize(
    "value", ["10", 10, "10 mg/g", "10 MG/KG", "mg/kg", "1e3 mg", "nan mg", "10 µM", None, "10 ml"]
)
def test_parse_dose_bad(value):
    with pytest.raises(UnitError, match="a dose with units"):
        parse_dose(value)


@pytest.mark.parametrize("value", ["-10 mg/kg", "-0.5 uM", " -1 mg"])
def test_parse_dose_negative(value):
    with pytest.raises(UnitError, match="^a positive dose$"):
        parse_dose(value)


@pytest.mark.parametrize(("text", "kg"), [("25 g", 0.025), ("70 kg", 70.0), ("0.3kg", 0.3)])
def test_parse_mass_good(text, kg):
    assert parse_mass_kg(text) == kg


@pytest.mark.parametrize("value", ["0 g", "-1 kg", "25", 25, "25 mg", "70 lb", None])
def test_parse_mass_bad(value):
    with pytest.raises(UnitError):
        parse_mass_kg(value)


@pytest.mark.parametrize("hours", [0.0, 3.0, 40 / 60, -240.0, 1.25, 1e-5, 7 / 3600, 8760.0, 1 / 3])
def test_format_time_round_trips(hours):
    assert parse_time(format_time(hours)) == hours


def test_format_time_prefers_whole_units():
    assert format_time(240.0) == "10d"
    assert format_time(0.5) == "30min"
    assert format_time(40 / 60) == "40min"
    assert format_time(3.0) == "3h"


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (TIME_PATTERN, ["3h", "-10d", "40 min"], ["3", "3 hours"]),
        (DOSE_PATTERN, ["10 mg/kg", "2uM"], ["-1 mg", "10"]),
        (MASS_PATTERN, ["25 g", "70kg"], ["70", "70 lb"]),
    ],
)
def test_schema_patterns_agree_with_parsers(pattern, good, bad):
    for text in good:
        assert re.search(pattern, text)
    for text in bad:
        assert not re.search(pattern, text)


# --------------------------------------------------------------------------- #
# Vocabulary
# --------------------------------------------------------------------------- #


def test_vocabulary_tables_are_consistent():
    assert set(vocabulary.DRUGS["saline"]) == set(vocabulary.ROUTES)
    for routes in vocabulary.DRUGS.values():
        assert set(routes) <= set(vocabulary.ROUTES)
    assert set(vocabulary.ROUTE_DOSE_KINDS) == set(vocabulary.ROUTES)
    assert set(vocabulary.INTERVENTION_KINDS) == set(vocabulary.INTERVENTIONS)
    for name, rule in vocabulary.INTERVENTIONS.items():
        assert (rule == "required") == (vocabulary.intervention_kind(name) == "timed")
    assert readouts_of("western_blot")[4] == "psd95_rel"
    assert "psd95_rel" in ALL_READOUTS
    # a readout may be measured by several assays (e.g. density by imaging and in fixed tissue)
    assert set(ALL_READOUTS) == {r for rs in ASSAYS.values() for r in rs}
    with pytest.raises(KeyError, match="unknown assay"):
        readouts_of("nope")


def test_vocabulary_follows_the_assay_catalogue(monkeypatch):
    """The vocabulary is derived from the assays' declarations: registering one extends
    the readouts, the scenario validation and the JSON Schema (enum and options)."""
    from ketasim.core.assay import Assay, Readout
    from ketasim.experiment import assays as catalogue

    toy = Assay("toy_assay", "a test assay", (Readout("toy_readout", "1"),),
                lambda ctx, at: None, options={"reps": 2}, positive=("reps",))
    monkeypatch.setitem(catalogue.ASSAYS, "toy_assay", toy)
    assert vocabulary.ASSAYS["toy_assay"] == ("toy_readout",)
    assert "toy_readout" in ALL_READOUTS
    text = _minimal(assays="[{assay: toy_assay, at: 3h}]")
    text += "compare:\n  - {readout: toy_readout, at: 3h, arms: [a, b]}\n"
    scenario = load_scenario_text(text)
    assert scenario.arms[0].assays[0].readouts == ("toy_readout",)
    schema = scenario_json_schema()["$defs"]["AssaySpec"]
    assert "toy_assay" in schema["properties"]["assay"]["enum"]
    toy_options = next(c["then"]["properties"]["options"] for c in schema["allOf"]
                       if c["if"]["properties"]["assay"]["const"] == "toy_assay")
    assert toy_options["properties"]["reps"] == {"type": "integer", "exclusiveMinimum": 0,
                                                 "default": 2}
    monkeypatch.undo()
    assert "toy_assay" not in vocabulary.ASSAYS


# --------------------------------------------------------------------------- #
# Built-in scenarios
# --------------------------------------------------------------------------- #

BUILTINS = [
    "default",
    "mouse_ketamine_10mgkg_ip",
    "human_ketamine_infusion",
    "cort_ketamine",
    "ketamine_rapamycin",
]


def test_builtin_names():
    names = builtin_scenarios()
    assert set(BUILTINS) <= set(names)
    assert list(names) == sorted(names)
    assert all(isinstance(path, Path) and path.is_file() for path in names.values())


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_every_builtin_loads(name):
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    path = builtin_scenarios()[name]
    assert load_scenario(path) == scenario
    assert path.read_text().startswith("#"), "built-ins open with a comment saying what they model"
    for arm in scenario.arms:
        times = [event.at for event in arm.protocol]
        assert times == sorted(times)


def test_default_builtin_design():
    scenario = load_scenario("default")
    assert scenario.species == "mouse"
    assert scenario.seed == 1
    assert scenario.arm_names == ("saline", "ketamine")
    ketamine = scenario.arm("ketamine")
    assert ketamine.n == 8
    (event,) = ketamine.protocol
    assert isinstance(event, DrugEvent)
    assert (event.at, event.drug, event.route) == (0.0, "ketamine", "ip")
    assert event.dose == Dose(value=10.0, unit="mg/kg")
    dialysis = next(a for a in ketamine.assays if a.assay == "microdialysis_da")
    assert dialysis.at[0] == -1.0 and dialysis.at[-1] == 4.0 and len(dialysis.at) == 16
    readouts = {(c.readout, c.at) for c in scenario.compare}
    assert readouts == {("psd95_rel", 24.0), ("da_pct_baseline", 1.0)}


def test_human_infusion_builtin():
    scenario = load_scenario("human_ketamine_infusion")
    (event,) = scenario.arm("ketamine").protocol
    assert event.route == "iv"
    assert event.over == pytest.approx(40 / 60)
    assert event.dose.value == 0.5
    assert scenario.arm("ketamine").n == 20
    signaling = next(a for a in scenario.arm("saline").assays if a.assay == "signaling_state")
    assert signaling.at[-1] == 168.0


def test_cort_and_rapamycin_builtins():
    cort = load_scenario("cort_ketamine")
    stress = cort.arm("cort_ketamine").protocol[0]
    assert isinstance(stress, StressEvent)
    assert (stress.at, stress.duration, stress.end) == (-240.0, 240.0, 0.0)
    assert cort.arm("control").protocol[0].drug == "saline"
    rapa = load_scenario("ketamine_rapamycin")
    first, second = rapa.arm("rapamycin_ketamine").protocol
    assert (first.drug, first.at, second.drug, second.at) == ("rapamycin", -1.0, "ketamine", 0.0)
    assert first.dose == Dose(value=6.0, unit="mg/kg")


# --------------------------------------------------------------------------- #
# Semantic checks
# --------------------------------------------------------------------------- #


def _minimal(protocol="[]", assays="[{assay: western_blot, at: [1h, 24h]}]", extra=""):
    return textwrap.dedent(
        f"""\
        name: t
        species: mouse
        seed: 1
        arms:
          - name: a
            n: 3
            protocol: {protocol}
            assays: {assays}{extra}
          - name: b
            n: 3
            assays: {assays}
        """
    )


def _error(text: str, source: str = "t.yaml") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, source)
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert "internal validator error" not in message
    return err


def test_minimal_loads():
    scenario = load_scenario_text(_minimal())
    assert scenario.arms[0].assays[0].at == (1.0, 24.0)


@pytest.mark.parametrize(
    ("protocol", "path", "phrase"),
    [
        (
            "[{at: 0h, drug: ketamine, dose: -10 mg/kg, route: ip}]",
            "protocol[0].dose",
            "a positive dose",
        ),
        (
            "[{at: 0h, drug: ketamine, dose: 10 mg/kg, route: bath}]",
            "protocol[0].route",
            "a route for ketamine",
        ),
        ("[{at: 0h, drug: h89, dose: 10 mg/kg, route: bath}]", "protocol[0].dose", "concentration"),
        ("[{at: 0h, drug: skf81297, dose: 10 uM, route: ip}]", "protocol[0].dose", "mg/kg"),
        (
            "[{at: 0h, drug: nbqx, dose: 1 mg/kg, route: intracerebral}]",
            "protocol[0].dose",
            "a mass",
        ),
        ("[{at: 0h, drug: ketamine, route: ip}]", "protocol[0].dose", "a dose for ketamine"),
        ("[{at: 0h, drug: ketamine, dose: 0 mg/kg, route: ip}]", "protocol[0].dose", "above zero"),
        (
            "[{at: 0h, drug: ketamine, dose: 1 mg/kg, route: ip, over: 40min}]",
            "protocol[0].over",
            "'iv'",
        ),
        (
            "[{at: 0h, drug: ketamine, dose: 1 mg/kg, route: iv, over: 0min}]",
            "protocol[0].over",
            "positive duration",
        ),
        (
            "[{at: 0h, drug: ketamin, dose: 1 mg/kg, route: ip}]",
            "protocol[0].drug",
            "did you mean 'ketamine'",
        ),
        (
            "[{at: 0, drug: ketamine, dose: 1 mg/kg, route: ip}]",
            "protocol[0].at",
            "a time with units",
        ),
        ("[{at: 400d, drug: ketamine, dose: 1 mg/kg, route: ip}]", "protocol[0].at", "365 days"),
        ("[{at: 0h, intervention: drd1_cko, duration: 3d}]", "protocol[0].duration", "no duration"),
        (
            "[{at: 0h, intervention: mpfc_da_terminal_inhibition}]",
            "protocol[0].duration",
            "a duration",
        ),
        ("[{at: 0h, stress: cort, duration: 0h}]", "protocol[0].duration", "positive duration"),
        ("[{at: 0h, stress: cort, duration: -2d}]", "protocol[0].duration", "positive duration"),
        (
            "[{at: 0h, stress: cort, duration: 2d, intensity: 0}]",
            "protocol[0].intensity",
            "intensity",
        ),
        ("[{at: 0h, stress: heat, duration: 2d}]", "protocol[0].stress", "stressors"),
        (
            "[{at: 0h, drug: ketamine, stress: cort, duration: 1d}]",
            "protocol[0]",
            "exactly one of the keys 'stress', 'drug', 'intervention'",
        ),
        ("[{at: 0h, drugs: ketamine}]", "protocol[0]", "exactly one of the keys"),
        ("[5]", "protocol[0]", "an event"),
        # overlapping or impossible combinations; the path is the file index
        (
            "[{at: 0h, stress: cort, duration: 2d}, {at: 1d, stress: cort, duration: 2d}]",
            "protocol[1].at",
            "no overlap with the 'cort' stress of protocol[0]",
        ),
        (
            (
                "[{at: 1d, stress: restraint, duration: 2h}, {at: 0h, stress: restraint, "
                "duration: 25h}]"
            ),
            "protocol[0].at",
            "protocol[1]",
        ),
        (
            (
                "[{at: 2h, drug: ketamine, dose: 1 mg/kg, route: ip}, "
                "{at: 2h, drug: ketamine, dose: 1 mg/kg, route: sc}]"
            ),
            "protocol[1].at",
            "the ketamine dose of protocol[0]",
        ),
        (
            (
                "[{at: 0h, drug: ketamine, dose: 1 mg/kg, route: iv, over: 1h}, "
                "{at: 30min, drug: ketamine, dose: 1 mg/kg, route: iv, over: 1h}]"
            ),
            "protocol[1].at",
            "the ketamine infusion of protocol[0]",
        ),
        (
            "[{at: 5d, intervention: drd1_cko}, {at: -20d, intervention: drd1_cko}]",
            "protocol[0].at",
            "no second 'drd1_cko'",
        ),
        (
            "[{at: 0h, intervention: pki_alpha}, {at: 0h, intervention: pki_alpha}]",
            "protocol[1].at",
            "no second 'pki_alpha'",
        ),
        (
            (
                "[{at: 0h, intervention: vta_da_chemogenetic_inhibition, duration: 2h}, "
                "{at: 1h, intervention: vta_da_chemogenetic_inhibition, duration: 2h}]"
            ),
            "protocol[1].at",
            "no overlap",
        ),
        (
            (
                "[{at: 2h, intervention: as_parac1_photoactivation}, "
                "{at: 2h, intervention: as_parac1_photoactivation}]"
            ),
            "protocol[1].at",
            "a time other than",
        ),
    ],
)
def test_event_checks(protocol, path, phrase):
    err = _error(_minimal(protocol=protocol))
    assert err.path == f"arms[0].{path}"
    message = str(err)
    assert message.startswith(f"t.yaml: arms[0].{path}: got ")
    assert phrase in err.expected
    assert "; expected " in message
    assert "(line 7)" in message


@pytest.mark.parametrize(
    "protocol",
    [
        "[{at: 0h, stress: cort, duration: 1d}, {at: 1d, stress: cort, duration: 1d}]",
        "[{at: 0h, stress: cort, duration: 2d}, {at: 1d, stress: restraint, duration: 1h}]",
        (
            "[{at: 0h, drug: ketamine, dose: 1 mg/kg, route: iv, over: 1h}, "
            "{at: 30min, drug: ketamine, dose: 1 mg/kg, route: ip}]"
        ),
        (
            "[{at: 0h, drug: ketamine, dose: 1 mg/kg, route: ip}, "
            "{at: 0h, drug: rapamycin, dose: 6 mg/kg, route: ip}]"
        ),
        (
            "[{at: 2h, intervention: as_parac1_photoactivation}, "
            "{at: 3h, intervention: as_parac1_photoactivation}]"
        ),
        (
            "[{at: 0h, drug: h89, dose: 1 uM, route: bath}, "
            "{at: 1h, drug: h89, dose: 50 ug, route: intracerebral}]"
        ),
        "[{at: 0h, drug: saline, route: bath}, {at: 1h, drug: saline, dose: 0 mg/kg, route: ip}]",
        "[{at: 0h, drug: esketamine, dose: 56 mg, route: intranasal}]",
    ],
)
def test_possible_protocols_load(protocol):
    load_scenario_text(_minimal(protocol=protocol))


def test_events_sorted_but_errors_use_file_index():
    protocol = (
        "[{at: 24h, intervention: as_parac1_photoactivation}, "
        "{at: -10d, stress: cort, duration: 10d}, "
        "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]"
    )
    scenario = load_scenario_text(_minimal(protocol=protocol))
    events = scenario.arms[0].protocol
    assert [event.at for event in events] == [-240.0, 0.0, 24.0]
    assert [event.kind for event in events] == ["stress", "drug", "intervention"]
    assert isinstance(events[2], InterventionEvent)
    # stable: same-time events keep file order
    protocol = (
        "[{at: 0h, drug: rapamycin, dose: 6 mg/kg, route: ip}, "
        "{at: -1h, stress: restraint, duration: 30min}, "
        "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]"
    )
    events = load_scenario_text(_minimal(protocol=protocol)).arms[0].protocol
    assert [getattr(event, "drug", None) for event in events] == [None, "rapamycin", "ketamine"]


def _with_compare(line: str, **kwargs) -> str:
    return _minimal(**kwargs) + f"compare:\n  - {line}\n"


@pytest.mark.parametrize(
    ("compare", "path", "phrase"),
    [
        (
            "{readout: psd95_rel, at: 24h, arms: [a, c]}",
            "compare[0].arms[1]",
            "the name of an arm: a, b",
        ),
        ("{readout: psd95_rel, at: 2h, arms: [a, b]}", "compare[0].at", "measures psd95_rel"),
        (
            "{readout: da_pct_baseline, at: 1h, arms: [a, b]}",
            "compare[0].readout",
            "measured in every compared arm",
        ),
        ("{readout: psd95, at: 24h, arms: [a, b]}", "compare[0].readout", "psd95_rel"),
        ("{readout: psd95_rel, at: 24h, arms: [a, a]}", "compare[0].arms[1]", "distinct"),
        ("{readout: psd95_rel, at: 24h, arms: [a]}", "compare[0].arms", "at least two"),
        ("{readout: psd95_rel, at: 24h, arms: [a, b], test: t}", "compare[0].test", "welch_t"),
        (
            "{readout: psd95_rel, at: 24h, arms: [a, b], assay: plasma_pk}",
            "compare[0].readout",
            "a readout of assay 'plasma_pk'",
        ),
        (
            "{readout: psd95_rel, at: 24h, arms: [a, b], assay: brain_pk}",
            "compare[0].readout",
            "a readout of assay 'brain_pk'",
        ),
        (
            "{readout: psd95_rel, at: 24h, arms: [a, b], tst: 1}",
            "compare[0].tst",
            "one of the keys of a comparison",
        ),
    ],
)
def test_comparison_checks(compare, path, phrase):
    err = _error(_with_compare(compare))
    assert err.path == path
    assert phrase in err.expected
    assert str(err).startswith(f"t.yaml: {path}: got ")


def test_comparison_time_in_other_units_matches():
    load_scenario_text(_with_compare("{readout: psd95_rel, at: 1d, arms: [a, b]}"))
    load_scenario_text(_with_compare("{readout: psd95_rel, at: 1440min, arms: [a, b]}"))


def test_comparison_needs_time_in_every_arm():
    text = _minimal(assays="[{assay: western_blot, at: [1h, 24h]}]").replace(
        "assays: [{assay: western_blot, at: [1h, 24h]}]\n",
        "assays: [{assay: western_blot, at: 1h}]\n",
    )
    text = text.replace(
        "assays: [{assay: western_blot, at: 1h}]", "assays: [{assay: western_blot, at: 24h}]", 1
    )
    text += "compare:\n  - {readout: psd95_rel, at: 24h, arms: [a, b]}\n"
    err = _error(text)
    assert err.path == "compare[0].at"
    assert "arm 'b'" in err.expected


def test_two_group_test_needs_two_arms():
    text = _minimal() + "  - {name: c, n: 2, assays: [{assay: western_blot, at: 24h}]}\n"
    ok = text + "compare:\n  - {readout: psd95_rel, at: 24h, arms: [a, b, c], test: anova}\n"
    load_scenario_text(ok)
    bad = text + "compare:\n  - {readout: psd95_rel, at: 24h, arms: [a, b, c]}\n"
    err = _error(bad)
    assert err.path == "compare[0].arms"
    assert "exactly two arms" in err.expected


@pytest.mark.parametrize(
    ("edit", "path", "phrase"),
    [
        (("name: b", "name: a"), "arms[1].name", "unique arm name"),
        (("name: t", "name: 'bad name'"), "name", "a name of letters"),
        (("name: a", "name: _a"), "arms[0].name", "a name of letters"),
        (("species: mouse", "species: dog"), "species", "'mouse', 'rat' or 'human'"),
        (("seed: 1", "seed: -1"), "seed", "0 to 2**63 - 1"),
        (("seed: 1", f"seed: {2**63}"), "seed", "0 to 2**63 - 1"),
        (("seed: 1", "seed: 1.5"), "seed", "random seed"),
        (("seed: 1", "seed: true"), "seed", "random seed"),
        (("seed: 1", "seed: '1'"), "seed", "random seed"),
        (("    n: 3\n", "    n: 0\n"), "arms[0].n", "1 to 100000"),
        (("    n: 3\n", "    n: 100001\n"), "arms[0].n", "1 to 100000"),
        (("    n: 3\n", ""), "arms[0].n", "the required key 'n'"),
        (("at: [1h, 24h]", "at: []"), "arms[0].assays[0].at", "non-empty list"),
        (("at: [1h, 24h]", "at: [1h, 24]"), "arms[0].assays[0].at[1]", "a time with units"),
        (("at: [1h, 24h]", "at: 24"), "arms[0].assays[0].at", "a time or a non-empty list"),
        (
            ("assay: western_blot", "assay: westernblot"),
            "arms[0].assays[0].assay",
            "did you mean 'western_blot'",
        ),
        (("seed: 1\n", "seed: 1\nsead: 2\n"), "sead", "one of the keys of a scenario"),
        (("    n: 3\n", "    n: 3\n    body_weight: 25\n"), "arms[0].body_weight", "'25 g'"),
        (
            ("    n: 3\n", "    n: 3\n    weight: 25 g\n"),
            "arms[0].weight",
            "one of the keys of an arm: name, n, protocol, assays, body_weight",
        ),
        (("arms:\n", "arms: 5\nx:\n"), "arms", "a non-empty list"),
    ],
)
def test_scenario_checks(edit, path, phrase):
    old, new = edit
    text = _minimal()
    assert old in text
    err = _error(text.replace(old, new, 1))
    assert err.path == path
    assert phrase in err.expected, err.expected
    assert str(err).startswith(f"t.yaml: {path}: got ")


def test_unknown_key_names_key_and_allowed_keys():
    text = _minimal(protocol="[{at: 0h, drug: ketamine, dose: 1 mg/kg, rout: ip}]")
    err = _error(text)
    assert err.path == "arms[0].protocol[0].rout"
    assert err.value == "rout"
    assert "at, drug, dose, route, over" in err.expected
    assert "did you mean 'route'" in err.expected
    # the missing 'route' is a second problem, counted but not reported
    assert err.more == 1
    assert str(err).endswith("(and 1 more problem)")


def test_first_problem_in_document_order_is_reported():
    text = _minimal().replace("seed: 1", "seed: -1").replace("n: 3", "n: 0")
    err = _error(text)
    assert err.path == "seed"
    assert err.more == 2
    assert str(err).endswith("(and 2 more problems)")


def test_body_weight_parsed_to_kg():
    text = _minimal().replace("    n: 3\n", "    n: 3\n    body_weight: 25 g\n", 1)
    arm = load_scenario_text(text).arms[0]
    assert arm.body_weight == arm.body_weight_kg == 0.025
    assert load_scenario_text(_minimal()).arms[0].body_weight is None


def test_assay_times_normalised():
    text = _minimal(assays="[{assay: western_blot, at: [24h, 1h, 60min, 1d]}]")
    assert load_scenario_text(text).arms[0].assays[0].at == (1.0, 24.0)
    text = _minimal(assays="[{assay: western_blot, at: 2h, options: {region: mPFC}}]")
    spec = load_scenario_text(text).arms[0].assays[0]
    assert spec.at == (2.0,)
    assert spec.options == {"region": "mPFC"}


def test_empty_optional_sections_allowed():
    text = (
        _minimal()
        .replace("protocol: []", "protocol:")
        .replace("assays: [{assay: western_blot, at: [1h, 24h]}]", "assays:")
    )
    scenario = load_scenario_text(text + "compare:\ndescription:\n")
    assert scenario.arms[0].protocol == [] and scenario.compare == []
    assert scenario.description == ""


# --------------------------------------------------------------------------- #
# File-level problems
# --------------------------------------------------------------------------- #


def test_yaml_syntax_error_reports_line():
    text = "name: t\nspecies: mouse\narms: [\n  {name: a, n: 2\n  x: : :\n"
    err = _error(text)
    assert err.path == ""
    assert re.search(r"^t\.yaml: line \d+, column \d+: invalid YAML", str(err))


def test_yaml_tab_error_reports_line():
    err = _error("name: t\nspecies: mouse\n\tseed: 1\n")
    assert "line 3" in str(err)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "the document is empty"),
        ("- 1\n- 2\n", "got [1, 2]"),
        ("just text", "got 'just text'"),
        ("name: t\nname: u\n", "line 2: duplicate key 'name'"),
        ("a: &a [*a]\n", "recursive YAML alias"),
        ("a: 1\n---\nb: 2\n", "invalid YAML"),
        ("x: 2021-02-30\n", "invalid YAML value"),
        ("x: " + "9" * 5000 + "\n", "invalid YAML value"),
        ("x: " + "[" * 100 + "]" * 100 + "\n", "nested too deeply"),
        ("{? [1]: 2}", "invalid YAML"),
    ],
)
def test_file_level_problems(text, phrase):
    err = _error(text)
    assert phrase in str(err)
    assert str(err).startswith("t.yaml: ")


def test_alias_bomb_rejected_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    err = _error("\n".join(lines) + "\n")
    assert "document too large" in str(err)


def test_missing_file_lists_builtins(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "no such file" in message
    for name in BUILTINS:
        assert name in message
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


def test_file_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: t\n\xff\xfe\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: line 2: invalid UTF-8"):
        load_scenario(path)
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(path)
    path.write_text(_minimal(), encoding="utf-8-sig")
    assert load_scenario(str(path)).name == "t"
    with pytest.raises(ScenarioError):
        load_scenario(None)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError):
        load_scenario("a\x00b")


def test_file_wins_over_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("default").write_text(_minimal())
    assert load_scenario("default").name == "t"


def test_error_attributes_and_pickle():
    err = _error(_minimal(protocol="[{at: 0h, drug: ketamine, route: ip}]"), "my.yaml")
    assert err.source == "my.yaml"
    assert err.value is MISSING
    assert err.line == 7
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)
    assert copy.path == err.path and copy.value is MISSING
    assert str(err) == (
        "my.yaml: arms[0].protocol[0].dose: got <missing>; expected a dose for ketamine, "
        "e.g. '10 mg/kg' (only saline may leave it out) (line 7)"
    )


def test_long_values_are_shortened():
    err = _error(_minimal().replace("name: t", "name: '" + "x y" * 1000 + "'"))
    assert len(str(err)) < 400
    nested = "{" + ", ".join(f"k{i}: [[[{i}, {i}, {i}], 'long text here {i}']]" for i in range(9))
    err = _error(_minimal().replace("name: t", "name: " + nested + "}"))
    assert "..." in str(err)
    assert len(str(err)) < 400


# --------------------------------------------------------------------------- #
# Programmatic use
# --------------------------------------------------------------------------- #


def test_models_are_frozen_and_strict():
    scenario = load_scenario("default")
    with pytest.raises(Exception, match="frozen"):
        scenario.seed = 2  # type: ignore[misc]
    event = DrugEvent(at="30min", drug="ketamine", dose="10 mg/kg", route="ip")
    assert event.at == 0.5 and event.dose.kind == "per_kg" and event.end == 0.5
    assert str(event.dose) == "10 mg/kg"
    with pytest.raises(ValueError, match="a dose for ketamine"):
        DrugEvent(at="0h", drug="ketamine", route="ip")
    assert InterventionEvent(at="0h", intervention="drd1_cko").end == float("inf")


# --------------------------------------------------------------------------- #
# JSON Schema and hash
# --------------------------------------------------------------------------- #


def test_json_schema():
    schema = scenario_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["$schema"].endswith("2020-12/schema")
    defs = schema["$defs"]
    assert schema["additionalProperties"] is False
    for name in ("Arm", "AssaySpec", "Comparison", "StressEvent", "DrugEvent", "InterventionEvent"):
        assert defs[name]["additionalProperties"] is False, name
    drug = defs["DrugEvent"]["properties"]
    assert drug["at"]["type"] == "string" and drug["at"]["pattern"] == TIME_PATTERN
    assert drug["drug"]["enum"] == list(vocabulary.DRUGS)
    assert drug["route"]["enum"] == list(vocabulary.ROUTES)
    assert drug["dose"]["anyOf"][0]["pattern"] == DOSE_PATTERN
    weight = defs["Arm"]["properties"]["body_weight"]["anyOf"][0]
    assert weight == {**weight, "type": "string", "pattern": MASS_PATTERN}
    at = defs["AssaySpec"]["properties"]["at"]["anyOf"]
    assert at[0]["pattern"] == at[1]["items"]["pattern"] == TIME_PATTERN
    stress = defs["StressEvent"]["properties"]
    assert stress["stress"]["enum"] == list(vocabulary.STRESSORS)
    assert stress["duration"]["pattern"] == TIME_PATTERN
    assert set(defs["InterventionEvent"]["properties"]["intervention"]["enum"]) == set(
        vocabulary.INTERVENTIONS
    )
    assert schema["properties"]["species"]["enum"] == ["mouse", "rat", "human"]
    assert "psd95_rel" in defs["Comparison"]["properties"]["readout"]["enum"]
    items = defs["Arm"]["properties"]["protocol"]["items"]
    assert len(items["oneOf"]) == 3


def test_json_schema_accepts_builtins_and_rejects_bad_files():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in builtin_scenarios().values():
        data = yaml.safe_load(path.read_text())
        assert not list(validator.iter_errors(data)), path.name
    data = yaml.safe_load(builtin_scenarios()["default"].read_text())
    data["arms"][1]["protocol"][0]["dose"] = "10"
    data["arms"][0]["weight"] = "25 g"
    assert len(list(validator.iter_errors(data))) == 2


def test_hash_stable_and_sensitive():
    first = scenario_hash(load_scenario("default"))
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert scenario_hash(load_scenario("default")) == first
    text = builtin_scenarios()["default"].read_text()
    # equivalent spelling and comments do not change the hash
    same = text.replace("at: 24h, arms", "at: 1d, arms").replace("# Default", "# Changed")
    assert scenario_hash(load_scenario_text(same)) == first
    changed = text.replace("dose: 10 mg/kg", "dose: 11 mg/kg")
    assert changed != text
    assert scenario_hash(load_scenario_text(changed)) != first
    unit_changed = text.replace("dose: 10 mg/kg", "dose: 10 mg")
    assert scenario_hash(load_scenario_text(unit_changed)) != first
    hashes = {scenario_hash(load_scenario(name)) for name in builtin_scenarios()}
    assert len(hashes) == len(builtin_scenarios())
    with pytest.raises(TypeError):
        scenario_hash({"name": "x"})  # type: ignore[arg-type]
