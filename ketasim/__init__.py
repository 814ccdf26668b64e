"""ketasim: a multiscale, mechanistic simulator of ketamine's action on synaptic
plasticity, from dose to behaviour, with in-silico replicas of published experiments.

Public API: :func:`simulate` runs a scenario; :func:`load_scenario` reads one.
"""

__version__ = "0.1.0"

from ketasim.experiment.runner import RunResult, simulate  # noqa: E402
from ketasim.scenario import ScenarioError, load_scenario  # noqa: E402

__all__ = ["RunResult", "ScenarioError", "load_scenario", "simulate", "__version__"]
