"""ketasim: a multiscale, mechanistic simulator of ketamine's action on synaptic
plasticity, from dose to behaviour, with in-silico replicas of published experiments.

Public API: :func:`simulate` runs a scenario; :func:`load_scenario` reads one;
:func:`configure` sets up numba's compiled-kernel cache (and optionally its threads).
(Imported lazily, so that code generation and light tools do not load the solver.)

Importing ketasim has no side effects: it changes no environment variable and creates
or deletes no folder. The command line, the workers of ``ketasim validate``, the
benchmarks and the tests call :func:`configure`; so does the first look-up through this
module of :func:`simulate`, :class:`RunResult`, :func:`load_scenario` or
:class:`ScenarioError` (they import the jitted modules), and
:func:`ketasim.validation.run.validate`, if nothing has called it yet. Code that imports the simulation modules directly should call
``ketasim.configure()`` first.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "simulate": ("ketasim.experiment.runner", "simulate"),
    "RunResult": ("ketasim.experiment.runner", "RunResult"),
    "load_scenario": ("ketasim.scenario", "load_scenario"),
    "ScenarioError": ("ketasim.scenario", "ScenarioError"),
}
# these import the jitted modules (the scenario vocabulary reads the assay catalogue)
_NEEDS_CACHE = {"simulate", "RunResult", "load_scenario", "ScenarioError"}

__all__ = ["RunResult", "ScenarioError", "__version__", "configure", "load_scenario",
           "simulate"]

_configured = False


def configure(cache_dir=None, threads: int | None = None):
    """Point numba's on-disk cache at a folder keyed by ketasim's jitted sources and,
    with ``threads``, set the number of numba threads; returns the cache folder (None if
    no writable place was found; numba then keeps its default).

    Call it before the simulation modules are imported (numba reads ``NUMBA_CACHE_DIR``
    when it is first imported; if numba is already imported its config is updated).
    ``cache_dir`` is the root of the cache folders (default: ``NUMBA_CACHE_DIR`` when
    set, else the package's ``__pycache__``, else ``~/.cache/ketasim``). The folder is
    exported as ``NUMBA_CACHE_DIR`` for child processes. Folders ketasim created for
    older sources are removed from its own roots; no other folder is ever deleted. See
    :mod:`ketasim._jitcache`.
    """
    global _configured
    from pathlib import Path

    from ketasim import _jitcache

    folder = _jitcache.configure(Path(__file__).parent,
                                 None if cache_dir is None else Path(cache_dir))
    if threads is not None:
        import numba

        numba.set_num_threads(int(threads))
    _configured = True
    return folder


def _ensure_configured() -> None:
    """:func:`configure` with its defaults, unless something has called it already."""
    if not _configured:
        configure()


def __getattr__(name):
    if name in _LAZY:
        import importlib

        if name in _NEEDS_CACHE:
            _ensure_configured()
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ketasim' has no attribute {name!r}")
