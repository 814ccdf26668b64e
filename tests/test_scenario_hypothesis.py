"""Property tests: whatever the input, loading returns a Scenario or raises ScenarioError.

The loader promises one-line :class:`ScenarioError` messages and no other
exception. These tests feed it random text, random bytes, random YAML data,
and random mutations of the built-in scenarios.
"""

import copy
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketasim.scenario import (
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    load_scenario_text,
    scenario_hash,
    vocabulary,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "name", "description", "species", "seed", "arms", "compare", "n", "protocol", "assays",
    "body_weight", "at", "stress", "drug", "dose", "route", "over", "intervention",
    "duration", "intensity", "assay", "options", "readout", "arms", "test",
]  # fmt: skip
UNIT_STRINGS = [
    "0h", "3h", "-10d", "40min", "1.5h", "2w", "30s", "400d", "3 hours", "h3", "10 mg/kg",
    "-10 mg/kg", "0 mg/kg", "500 ug/kg", "56 mg", "10 uM", "25 g", "70 kg", "1e3h", "nan",
]  # fmt: skip
NAMES = sorted(
    set(vocabulary.DRUGS)
    | set(vocabulary.ROUTES)
    | set(vocabulary.STRESSORS)
    | set(vocabulary.INTERVENTIONS)
    | set(vocabulary.ASSAYS)
    | set(vocabulary.all_readouts())
    | {"mouse", "rat", "human", "welch_t", "anova", "saline", "ketamine", "a", "b"}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(UNIT_STRINGS),
    st.sampled_from(NAMES),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
data_trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=40,
)


def check_outcome(text: str, source: str = "<string>") -> Scenario | None:
    """Load text and check the loader's promise; return the scenario if valid."""
    try:
        scenario = load_scenario_text(text, source)
    except ScenarioError as err:
        message = str(err)
        assert "\n" not in message and "\r" not in message
        assert message.startswith(f"{source}: ")
        assert "; expected " in message
        assert "internal validator error" not in message, message
        assert isinstance(err.path, str) and isinstance(err.expected, str)
        return None
    assert isinstance(scenario, Scenario)
    assert scenario_hash(scenario) == scenario_hash(load_scenario_text(text))
    return scenario


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text):
    check_outcome(text)


@SETTINGS
@given(
    st.lists(
        st.sampled_from(
            ["name: ", "arms:", "\n", "  - ", "{", "}", "[", "]", ": ", "&a ", "*a", "!!", "'",
             '"', "#", "---", "\t", "? ", "<<: ", "protocol: ", "at: ", "3h", "10 mg/kg",
             "drug: ketamine", "\\", "%YAML 1.1\n", "|\n", ">\n", "\x00", "\ufeff", "\u2028"]
        ),
        max_size=40,
    ).map("".join)
)  # fmt: skip
def test_random_yaml_tokens(text):
    check_outcome(text)


@SETTINGS
@given(data_trees)
def test_random_yaml_data(tree):
    check_outcome(yaml.safe_dump(tree, allow_unicode=True))


@pytest.mark.slow  # 300 random documents, about 8 s; the other fuzz tests stay fast
@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), data_trees, max_size=8))
def test_random_top_level_mappings(tree):
    check_outcome(yaml.safe_dump(tree, allow_unicode=True))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_file_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yaml"
        path.write_bytes(data)
        try:
            load_scenario(path)
        except ScenarioError as err:
            assert "\n" not in str(err)
            assert "internal validator error" not in str(err), str(err)


# --------------------------------------------------------------------------- #
# Mutations of valid scenarios
# --------------------------------------------------------------------------- #

BUILTIN_DATA = {
    name: yaml.safe_load(path.read_text()) for name, path in builtin_scenarios().items()
}
DOSE_UNITS = ["mg/kg", "ug/kg", "mg", "ug", "g", "uM", "nM", "mM", "ml", ""]
TIME_UNITS = ["s", "min", "h", "d", "w", "hours", "", "H"]


def _paths(node, prefix=()):
    """Every (container path, key) in a tree, containers first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _get(node, path):
    for part in path:
        node = node[part]
    return node


def _mutate(tree, data):
    paths = [path for path in _paths(tree) if path]
    if not paths:
        return tree
    path = data.draw(st.sampled_from(paths), label="path")
    parent, last = _get(tree, path[:-1]), path[-1]
    value = parent[last]
    operation = data.draw(
        st.sampled_from(
            ["delete", "replace", "unknown_key", "unit", "negate", "duplicate_event", "swap"]
        ),
        label="operation",
    )
    if operation == "delete":
        del parent[last]
    elif operation == "replace":
        parent[last] = data.draw(data_trees, label="new value")
    elif operation == "unknown_key":
        target = value if isinstance(value, dict) else parent
        if isinstance(target, dict):
            target[data.draw(keys, label="key")] = data.draw(scalars, label="value")
    elif operation == "unit" and isinstance(value, str):
        number = value.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/ ")
        unit = data.draw(st.sampled_from(DOSE_UNITS + TIME_UNITS), label="unit")
        parent[last] = number + data.draw(st.sampled_from(["", " "])) + unit
    elif operation == "negate" and isinstance(value, str):
        parent[last] = value[1:] if value.startswith("-") else "-" + value
    elif operation == "duplicate_event":
        arms = tree.get("arms") if isinstance(tree, dict) else None
        if isinstance(arms, list) and arms:
            arm = data.draw(st.sampled_from(arms), label="arm")
            protocol = arm.get("protocol") if isinstance(arm, dict) else None
            if isinstance(protocol, list) and protocol:
                event = copy.deepcopy(data.draw(st.sampled_from(protocol), label="event"))
                if isinstance(event, dict) and data.draw(st.booleans(), label="shift"):
                    event["at"] = data.draw(st.sampled_from(UNIT_STRINGS), label="at")
                protocol.insert(data.draw(st.integers(0, len(protocol)), label="i"), event)
    elif operation == "swap" and isinstance(parent, list) and len(parent) > 1:
        other = data.draw(st.integers(0, len(parent) - 1), label="other")
        parent[last], parent[other] = parent[other], parent[last]
    return tree


@pytest.mark.slow  # 300 mutated built-ins, about 5 s
@SETTINGS
@given(st.sampled_from(sorted(BUILTIN_DATA)), st.integers(1, 3), st.data())
def test_mutated_builtins(name, count, data):
    tree = copy.deepcopy(BUILTIN_DATA[name])
    for _ in range(count):
        tree = _mutate(tree, data)
    check_outcome(yaml.safe_dump(tree, allow_unicode=True, sort_keys=False), "mutant.yaml")


def test_unmutated_builtins_pass_the_same_route():
    for name, tree in BUILTIN_DATA.items():
        scenario = check_outcome(yaml.safe_dump(tree, sort_keys=False))
        assert scenario is not None and scenario.name == name
