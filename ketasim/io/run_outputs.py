"""The files of ``ketasim run``: readouts.parquet, summary.csv, stats.csv, manifest.json,
report.html and figures (the contract in ARCHITECTURE.md)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numba
import numpy as np

import ketasim
from ketasim.analysis.stats import compare, summarize
from ketasim.experiment.runner import RunResult
from ketasim.io.results import atomic_dir, write_json, write_readouts
from ketasim.params import Registry, load_registry
from ketasim.provenance import collect as collect_provenance
from ketasim.provenance import registry_digest
from ketasim.report.html import write_report
from ketasim.scenario import scenario_hash


def registry_hash(registry: Registry) -> str:
    return registry_digest(registry)


def manifest(result: RunResult, registry: Registry, wall_s: float, *,
             started: str | None = None, inputs=(), scenario_text: str | None = None) -> dict:
    """The run's manifest: the keys below, then the provenance entries of
    :func:`ketasim.provenance.collect` (git commit, times, versions, changed parameter
    values, input file hashes, the scenario text)."""
    sc = result.scenario
    prov = collect_provenance(registry=registry, started=started, inputs=inputs,
                              scenario_text=scenario_text)
    return prov | {
        "ketasim_version": ketasim.__version__,
        "scenario": sc.name,
        "scenario_hash": scenario_hash(sc),
        "species": sc.species,
        "seed": result.seed,
        "parameter_set": {"registry_sha256": registry_hash(registry),
                          "values": {p.name: p.value for p in registry}},
        "solver": result.solver,
        "mean_solver_steps_per_subject": result.steps,
        "timings_s": {"total": wall_s, "arms": result.timings_s},
        "environment": {"python": sys.version.split()[0], "numpy": np.__version__,
                        "numba": numba.__version__, "platform": platform.platform()},
    }


def write_run(result: RunResult, out: Path, overwrite: bool = False,
              registry: Registry | None = None, wall_s: float = 0.0, *,
              started: str | None = None, inputs=(), scenario_text: str | None = None
              ) -> Path:
    """Write the run's files; ``started`` (UTC, ISO), ``inputs`` (input file paths) and
    ``scenario_text`` go into the manifest's provenance."""
    registry = registry or load_registry()
    summary = summarize(result.readouts)
    stats = compare(result.readouts, result.scenario.compare)
    man = manifest(result, registry, wall_s, started=started, inputs=inputs,
                   scenario_text=scenario_text)
    with atomic_dir(Path(out), overwrite) as tmp:
        write_readouts(result.readouts, tmp / "readouts.parquet")
        if result.tracking:  # the observed spine tracking tables (two-photon assay)
            import pandas as pd

            pd.concat(result.tracking.values(), ignore_index=True).to_parquet(
                tmp / "spines_tracking.parquet", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        stats.to_csv(tmp / "stats.csv", index=False)
        write_json(man, tmp / "manifest.json")
        write_report(tmp, f"ketasim run: {result.scenario.name}",
                     result.scenario.description, result.readouts, summary, stats, man,
                     result.tracking, result.calcium, result.tst)
    return Path(out)
