"""ketasim: a multiscale, mechanistic simulator of ketamine's action on synaptic
plasticity, from dose to behaviour, with in-silico replicas of published experiments.

Public API: :func:`simulate` runs a scenario; :func:`load_scenario` reads one.
(Imported lazily, so that code generation and light tools do not load the solver.)
"""

from pathlib import Path as _Path

from ketasim import _jitcache

__version__ = "0.1.0"

_jitcache.configure(_Path(__file__).parent)

_LAZY = {
    "simulate": ("ketasim.experiment.runner", "simulate"),
    "RunResult": ("ketasim.experiment.runner", "RunResult"),
    "load_scenario": ("ketasim.scenario", "load_scenario"),
    "ScenarioError": ("ketasim.scenario", "ScenarioError"),
}

__all__ = ["RunResult", "ScenarioError", "__version__", "load_scenario", "simulate"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ketasim' has no attribute {name!r}")
