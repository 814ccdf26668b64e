"""Scenarios: the YAML description of an in-silico experiment.

A scenario names the species, the arms (groups of subjects), what happens to
each arm (stress, drugs, interventions, at times relative to the first
ketamine or vehicle dose), what is measured and when, and which statistics to
compute. This package validates it completely before anything runs.

Public API
----------
load_scenario, load_scenario_text
    Read and validate a scenario (file, built-in name, or text).
ScenarioError
    The only exception they raise; one line naming field, value, expectation.
builtin_scenarios
    Name -> path of the scenarios shipped with ketasim.
scenario_json_schema, scenario_hash
    JSON Schema for editors; content hash for manifests.
Scenario, Arm, StressEvent, DrugEvent, InterventionEvent, Event, AssaySpec,
Comparison, Dose, Design, Dropout
    The validated models (times in hours, doses in mg/kg, mg or uM).
TRIAL_SCALES
    The clinical readouts a ``design:`` block may analyse.
vocabulary
    The names a scenario may use; later layers extend these tables.
"""

from . import units, vocabulary
from .loader import (
    MISSING,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    load_scenario_text,
    locate_problem,
    scenario_hash,
    scenario_json_schema,
    yaml_line,
)
from .model import (
    STATISTICAL_TESTS,
    TRIAL_SCALES,
    Arm,
    AssaySpec,
    Comparison,
    Crossover,
    Design,
    Dose,
    Dropout,
    DrugEvent,
    Event,
    InterventionEvent,
    Scenario,
    StressEvent,
)
from .units import UnitError, format_time, parse_dose, parse_duration, parse_mass_kg, parse_time
from .vocabulary import (
    ALL_READOUTS,
    ASSAYS,
    DRUGS,
    INTERVENTIONS,
    ROUTES,
    STRESSORS,
    readouts_of,
)

__all__ = [
    "ALL_READOUTS",
    "ASSAYS",
    "DRUGS",
    "INTERVENTIONS",
    "MISSING",
    "ROUTES",
    "STATISTICAL_TESTS",
    "STRESSORS",
    "TRIAL_SCALES",
    "Arm",
    "AssaySpec",
    "Comparison",
    "Crossover",
    "Design",
    "Dose",
    "Dropout",
    "DrugEvent",
    "Event",
    "InterventionEvent",
    "Scenario",
    "ScenarioError",
    "StressEvent",
    "UnitError",
    "builtin_scenarios",
    "format_time",
    "load_scenario",
    "load_scenario_text",
    "locate_problem",
    "parse_dose",
    "parse_duration",
    "parse_mass_kg",
    "parse_time",
    "readouts_of",
    "scenario_hash",
    "scenario_json_schema",
    "units",
    "vocabulary",
    "yaml_line",
]
