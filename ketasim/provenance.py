"""Provenance of a run or a validation: what ran, on what, from which inputs.

:func:`collect` returns the entries that ``ketasim run`` and ``ketasim validate`` add to
their ``manifest.json``:

``git``               ``{"commit", "dirty"}`` of the source tree when ketasim runs from a
                      git checkout (``git rev-parse HEAD``, ``git status --porcelain``);
                      both null otherwise (an installed package, no git)
``started_utc``,      ISO 8601 times in UTC
``finished_utc``
``platform``,         ``platform.platform()``, the Python version and the versions of
``python``,           the libraries ketasim depends on (null for one not installed)
``libraries``
``registry``          ``{"sha256", "changed"}``: the digest of the parameter set used and
                      every value that differs from the packaged default, as
                      ``{"name", "default", "value"}`` (``default`` null for a name the
                      packaged registry lacks)
``inputs``            ``[{"path", "sha256"}]`` for every input file (scenario, replica
                      and target files, parameter or data files)
``scenario_text``     (run) the scenario file's text, or null when it came from Python
``replicas``          (validate) ``[{"name", "file", "sha256", "text"}]`` per replica run
``compounds``         ``[{"name", "builtin", "file", "sha256"}]`` for every compound
                      registered in the process (built-in files and ``--compounds``)
``peak_rss_mb``       the process's peak resident set size when the manifest was made
                      (MB; null where the platform does not report it): for a run, its
                      simulation and analysis; validate's replicas run in worker
                      processes of their own

This module imports nothing from the simulation layers (only the parameter registry and
the compound files), so it can be used wherever outputs are written.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import ketasim
from ketasim.params import Registry, load_registry
from ketasim.pk.compounds import BUILTIN, COMPOUNDS

#: distributions whose versions are recorded (ketasim's dependencies)
LIBRARIES = ("numpy", "scipy", "numba", "llvmlite", "pandas", "pyarrow", "pydantic",
             "statsmodels", "matplotlib", "PyYAML", "duckdb", "lifelines", "typer",
             "rich", "python-libsbml", "libroadrunner", "pynwb", "hdmf", "h5py", "dask",
             "distributed", "SALib", "pyabc", "petab")

GIT_TIMEOUT_S = 3.0
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding ketasim/


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def registry_digest(registry: Registry) -> str:
    """SHA-256 of every parameter's name and value, and of the between-subject
    variability of those that vary (``bsv_cv``, ``bsv_logit_sd``, ``bsv_corr``: they
    change the numbers too) (the run manifest's ``parameter_set.registry_sha256``)."""
    def line(p) -> str:
        text = f"{p.name}={p.value!r}"
        if p.varies:
            text += (f";bsv_cv={p.bsv_cv!r};bsv_logit_sd={p.bsv_logit_sd!r};"
                     f"bsv_corr={sorted(p.bsv_corr)!r}")
        return text

    return hashlib.sha256("\n".join(line(p) for p in registry).encode()).hexdigest()


def changed_values(registry: Registry, default: Registry | None = None) -> list[dict]:
    """Every parameter whose value differs from the packaged default (or that the
    default lacks), as ``{"name", "default", "value"}``, in registry order."""
    default = load_registry() if default is None else default
    out = []
    for p in registry:
        base = default.parameters.get(p.name)
        if base is None or base.value != p.value:
            out.append({"name": p.name, "default": None if base is None else base.value,
                        "value": p.value})
    return out


def _git(args: list[str], root: Path) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # status must not take the index lock
    try:
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                             text=True, timeout=GIT_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def git_state(root: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the source tree at ``root``
    (default: the folder holding the ketasim package). A package installed inside some
    other repository (a virtual environment in a project) is not a checkout: the
    repository's top level must be ``root`` itself."""
    root = SOURCE_ROOT if root is None else Path(root)
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top.strip()).resolve() != root.resolve():
        return {"commit": None, "dirty": None}
    commit = _git(["rev-parse", "HEAD"], root)
    status = _git(["status", "--porcelain"], root)
    return {"commit": commit.strip() if commit else None,
            "dirty": None if status is None else bool(status.strip())}


def libraries(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def input_files(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """``[{"path", "sha256"}]`` of the files, each once, in order."""
    seen: dict[str, dict] = {}
    for p in paths:
        key = str(p)
        if key not in seen:
            seen[key] = {"path": key, "sha256": sha256_file(p)}
    return list(seen.values())


def replica_records(paths: Mapping[str, str | os.PathLike]) -> list[dict]:
    """``[{"name", "file", "sha256", "text"}]`` per replica file (name -> path)."""
    out = []
    for name, path in paths.items():
        data = Path(path).read_bytes()
        out.append({"name": name, "file": Path(path).name, "sha256": sha256_bytes(data),
                    "text": data.decode("utf-8-sig", errors="replace")})
    return out


def compound_records() -> list[dict]:
    """``[{"name", "builtin", "file", "sha256"}]`` of every registered compound."""
    out = []
    for name in sorted(COMPOUNDS):
        f = COMPOUNDS[name].source_file
        out.append({"name": name, "builtin": name in BUILTIN, "file": f,
                    "sha256": sha256_file(f) if f and Path(f).is_file() else None})
    return out


def peak_rss_mb() -> float | None:
    """The process's peak resident set size so far, in MB (None where unknown)."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; bytes on macOS
    return round(peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0), 1)


def collect(*, registry: Registry, started: str | None = None,
            finished: str | None = None, inputs: Iterable[str | os.PathLike] = (),
            scenario_text: str | None = None,
            replicas: Mapping[str, str | os.PathLike] | None = None) -> dict:
    """The provenance entries of a manifest (see the module docstring). ``finished``
    defaults to now; ``replicas`` (validate) adds the replica records and their files to
    the inputs; ``scenario_text`` (run) is recorded when given."""
    inputs = list(inputs)
    out: dict = {
        "ketasim_version": ketasim.__version__,
        "git": git_state(),
        "started_utc": started,
        "finished_utc": finished or utc_now(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": libraries(),
        "registry": {"sha256": registry_digest(registry),
                     "changed": changed_values(registry)},
    }
    if replicas is not None:
        out["replicas"] = replica_records(replicas)
        inputs = [*map(str, replicas.values()), *inputs]
    else:
        out["scenario_text"] = scenario_text
    out["compounds"] = compound_records()
    out["inputs"] = input_files(inputs)
    out["peak_rss_mb"] = peak_rss_mb()
    return out
