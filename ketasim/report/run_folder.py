"""The files of ``ketasim run``: readouts.parquet, summary.csv, stats.csv, manifest.json,
report.html and figures (the contract in ARCHITECTURE.md); with a ``design:`` also
trial.csv, endpoints.csv, consort.csv and disposition.csv (and strata.csv for a
stratified design)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numba
import numpy as np

import ketasim
from ketasim.analysis.diff import compare_summaries
from ketasim.analysis.stats import compare, summarize
from ketasim.experiment.assays import ASSAYS
from ketasim.experiment.runner import RunResult
from ketasim.experiment.trial import TrialTables, analyse_trial
from ketasim.io.results import atomic_dir, write_json, write_readouts
from ketasim.params import Registry
from ketasim.provenance import collect as collect_provenance
from ketasim.provenance import input_files, registry_digest
from ketasim.report.html import write_report
from ketasim.scenario import scenario_hash


def registry_hash(registry: Registry) -> str:
    return registry_digest(registry)


def manifest(result: RunResult, registry: Registry, wall_s: float, *,
             started: str | None = None, inputs=(), scenario_text: str | None = None,
             backend: dict | None = None) -> dict:
    """The run's manifest: the keys below, then the provenance entries of
    :func:`ketasim.provenance.collect` (git commit, times, versions, changed parameter
    values, input file hashes, the scenario text). ``backend``: where the subjects were
    simulated (default ``{"kind": "in-process"}``; ``ketasim run --scheduler``: Dask and
    its scheduler), which moves the timings but not the numbers."""
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
        "backend": backend or {"kind": "in-process"},
        "environment": {"python": sys.version.split()[0], "numpy": np.__version__,
                        "numba": numba.__version__, "platform": platform.platform()},
    }


def trial_files(trial: TrialTables) -> dict:
    """The files of a trial's analysis (a scenario with a ``design:``): file name ->
    table."""
    files = {"trial.csv": trial.trial, "endpoints.csv": trial.endpoints,
             "consort.csv": trial.consort, "disposition.csv": trial.disposition}
    if trial.relapse is not None:
        files.update({"relapse.csv": trial.relapse, "relapse_km.csv": trial.relapse_km,
                      "relapse_summary.csv": trial.relapse_summary,
                      "relapse_cox.csv": trial.relapse_cox})
    if trial.strata is not None:
        files["strata.csv"] = trial.strata
    if trial.intercurrent is not None:
        files.update({"intercurrent.csv": trial.intercurrent,
                      "intercurrent_summary.csv": trial.intercurrent_summary})
    return files


def trial_manifest(design, trial: TrialTables) -> dict:
    """The manifest's ``trial`` entry: the files written and the analysis plan."""
    drop = design.dropout
    return {
        "files": list(trial_files(trial)),
        "scale": design.scale, "control": design.control,
        "arms": list(dict.fromkeys(trial.disposition["arm"])),
        "baseline_h": design.baseline, "primary_h": design.primary,
        "post_baseline_visits_h": list(trial.visits),
        "covariance": design.covariance, "df_method": design.df,
        "response_fall": design.response_fall, "remission": design.remission_threshold,
        "randomisation": design.randomisation,
        "stratify": design.stratify, "stratum_cuts": design.stratum_cuts,
        "block_size": design.block_size,
        "dropout": None if drop is None else drop.model_dump(),
        "intercurrent": None if design.intercurrent is None else
        [e.model_dump() for e in design.intercurrent],
        "strategy": None if design.intercurrent is None else design.strategy,
        "notes": list(trial.notes),
    }


def write_run(result: RunResult, out: Path, registry: Registry, overwrite: bool = False,
              wall_s: float = 0.0, *, started: str | None = None, inputs=(),
              scenario_text: str | None = None, nwb: bool = False,
              backend: dict | None = None, against=None, warnings=()) -> Path:
    """Write the run folder; ``registry`` is the one the run used, ``started`` (UTC,
    ISO), ``inputs`` (input file paths) and ``scenario_text`` go into the manifest's
    provenance; with ``nwb``, one NWB file per subject and session under ``nwb/``
    (:func:`ketasim.io.nwb.write_nwb`). ``against``: ``(summary, path)`` of an earlier
    run (``run --against``): comparison.csv (:func:`ketasim.analysis.diff.compare_summaries`),
    a report section and the earlier file's path and hash in the manifest. ``warnings``
    (lines, e.g. :func:`ketasim.experiment.runner.dose_warnings`) go into the manifest
    and the report, so they outlive the terminal."""
    summary = summarize(result.readouts)
    stats = compare(result.readouts, result.scenario.compare)
    man = manifest(result, registry, wall_s, started=started, inputs=inputs,
                   scenario_text=scenario_text, backend=backend)
    if warnings:
        man["warnings"] = list(warnings)
    comparison = None
    if against is not None:
        comparison = compare_summaries(against[0], summary)
        man["against"] = input_files([against[1]])[0]
    design = getattr(result.scenario, "design", None)
    trial = None
    if design is not None:
        trial = analyse_trial(result.scenario, result.readouts, result.disposition,
                              getattr(result, "patients", None),
                              getattr(result, "intercurrent", None))
        man["trial"] = trial_manifest(design, trial)
    patients = getattr(result, "patients", None)
    if patients is not None:
        # a stratified trial's candidates screened out before allocation have no arm
        screened = patients.assign(arm=patients["arm"].replace(
            "", "(before allocation)")).groupby("arm")["eligible"].agg(["size", "sum"])
        man["patients"] = {
            "file": "patients.csv",
            "screened": {a: int(r["size"]) for a, r in screened.iterrows()},
            "eligible": {a: int(r["sum"]) for a, r in screened.iterrows()},
            "screen_failures": patients.loc[~patients["eligible"], "exclusion"]
            .value_counts().to_dict()}
    with atomic_dir(Path(out), overwrite) as tmp:
        write_readouts(result.readouts, tmp / "readouts.parquet")
        for name, by_arm in result.kept.items():  # files the assays declare
            assay, _, region = name.partition("@")  # kept of a non-default region
            for file_name, writer in ASSAYS[assay].artifacts.items():
                if by_arm:
                    target = Path(file_name)
                    if region:
                        target = target.with_name(f"{target.stem}_{region}{target.suffix}")
                    writer(by_arm, tmp / target)
        summary.to_csv(tmp / "summary.csv", index=False)
        stats.to_csv(tmp / "stats.csv", index=False)
        if comparison is not None:
            comparison.to_csv(tmp / "comparison.csv", index=False)
        if trial is not None:
            for name, table in trial_files(trial).items():
                table.to_csv(tmp / name, index=False)
        if patients is not None:
            patients.to_csv(tmp / "patients.csv", index=False)
        if nwb:
            from ketasim.io.nwb import write_nwb  # pynwb takes about a second to import

            files = write_nwb(result, tmp / "nwb", registry, scenario_text=scenario_text,
                              assays=ASSAYS)
            man["nwb"] = {"folder": "nwb", "files": len(files)}
        write_json(man, tmp / "manifest.json")
        write_report(tmp, f"ketasim run: {result.scenario.name}",
                     result.scenario.description, result.readouts, summary, stats, man,
                     result.kept, trial=trial, design=design, comparison=comparison)
    return Path(out)
