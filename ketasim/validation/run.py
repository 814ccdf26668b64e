"""``ketasim validate``: run the replicas, compute each target's statistic, compare.

Replicas run in parallel worker processes (one numba thread each); results do not
depend on the number of workers, since every subject's numbers come from its own
random stream.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ketasim.validation.statistic import StatisticError, evaluate
from ketasim.validation.targets import Target, load_targets, replica_paths

CSV_COLUMNS = ["target_id", "facts", "source", "quantity", "published", "simulated",
               "tolerance", "pass", "status", "replica"]


class ValidationSetupError(ValueError):
    """Unknown --only IDs, or targets and replicas that do not match."""


@dataclass
class ReplicaRun:
    name: str
    scenario: object
    readouts: pd.DataFrame
    stats: pd.DataFrame
    seconds: float
    tracking: dict = field(default_factory=dict)
    calcium: dict = field(default_factory=dict)
    tst: dict = field(default_factory=dict)


@dataclass
class TargetResult:
    target: Target
    replica: str
    simulated: float
    status: str  # pass | fail | known_gap | error
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class ValidationResult:
    results: list[TargetResult]
    replicas: dict[str, ReplicaRun] = field(default_factory=dict)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "known_gap": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    @property
    def ok(self) -> bool:
        c = self.counts()
        return c["fail"] == 0 and c["error"] == 0

    def table(self) -> pd.DataFrame:
        rows = [{
            "target_id": r.target.target_id, "facts": ";".join(r.target.facts),
            "source": r.target.source, "quantity": r.target.quantity,
            "published": r.target.published, "simulated": r.simulated,
            "tolerance": r.target.tolerance.text, "pass": r.passed, "status": r.status,
            "replica": r.replica} for r in self.results]
        return pd.DataFrame(rows, columns=CSV_COLUMNS)


def plan(only: list[str] | None = None, replicas: dict[str, Path] | None = None,
         targets: dict[str, Target] | None = None) -> dict[str, list[str]]:
    """Replica name -> target IDs to check. ``only`` takes target IDs or replica names."""
    from ketasim.scenario import load_scenario

    targets = load_targets() if targets is None else targets
    replicas = replica_paths() if replicas is None else replicas
    declared: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name, path in replicas.items():
        sc = load_scenario(path)
        for tid in sc.targets:
            if tid not in targets:
                raise ValidationSetupError(f"replica {name}: target {tid} is not in targets.yaml")
            if tid in owner:
                raise ValidationSetupError(f"target {tid} is declared by replicas {owner[tid]} "
                                           f"and {name}")
            owner[tid] = name
        declared[name] = list(sc.targets)
    orphans = sorted(set(targets) - set(owner))
    if orphans:
        raise ValidationSetupError(f"targets with no replica: {', '.join(orphans)}")
    if not only:
        return declared
    chosen: dict[str, list[str]] = {}
    for item in only:
        if item in declared:
            chosen.setdefault(item, [])
            chosen[item] = list(dict.fromkeys(chosen[item] + declared[item]))
        elif item in owner:
            chosen.setdefault(owner[item], [])
            if item not in chosen[owner[item]]:
                chosen[owner[item]].append(item)
        else:
            raise ValidationSetupError(
                f"--only {item}: not a target ID or replica name (e.g. "
                f"{next(iter(owner))} or {next(iter(declared))})")
    return chosen


def _worker_init() -> None:
    import numba

    numba.set_num_threads(1)


def run_replica(path: str) -> ReplicaRun:
    """Simulate one replica (in a worker process)."""
    from ketasim.analysis.stats import compare
    from ketasim.experiment.runner import simulate
    from ketasim.scenario import load_scenario

    t0 = time.perf_counter()
    sc = load_scenario(path)
    res = simulate(sc)
    stats = compare(res.readouts, sc.compare)
    return ReplicaRun(Path(path).stem, sc, res.readouts, stats, time.perf_counter() - t0,
                      res.tracking, res.calcium, res.tst)


def judge(target: Target, replica: ReplicaRun) -> TargetResult:
    try:
        v = evaluate(target.statistic, replica.readouts, replica.tracking)
    except StatisticError as e:
        return TargetResult(target, replica.name, float("nan"), "error", str(e))
    if target.known_gap:
        return TargetResult(target, replica.name, v, "known_gap", target.known_gap)
    return TargetResult(target, replica.name, v,
                        "pass" if target.tolerance.contains(v) else "fail")


def sources(extra_replicas: Path | None = None, extra_targets: Path | None = None
            ) -> tuple[dict[str, Path], dict[str, Target]]:
    """Built-in replicas and targets, plus a lab's own: every ``*.yaml`` in
    ``extra_replicas`` and the entries of ``extra_targets`` (same formats)."""
    from ketasim.validation.targets import parse_targets

    paths = dict(replica_paths())
    targets = dict(load_targets())
    if extra_replicas is not None:
        folder = Path(extra_replicas)
        if not folder.is_dir():
            raise ValidationSetupError(f"--replicas {folder}: not a folder")
        for p in sorted(folder.glob("*.yaml")):
            if p.stem in paths:
                raise ValidationSetupError(f"replica {p.stem} ({p}) shadows a built-in one")
            paths[p.stem] = p
    if extra_targets is not None:
        try:
            text = Path(extra_targets).read_text()
        except OSError as e:
            raise ValidationSetupError(f"--targets {extra_targets}: {e.strerror}") from None
        for tid, t in parse_targets(text, str(extra_targets)).items():
            if tid in targets:
                raise ValidationSetupError(f"target {tid} in {extra_targets} is already defined")
            targets[tid] = t
    return paths, targets


def validate(only: list[str] | None = None, workers: int | None = None,
             progress: Callable[[str], None] | None = None,
             extra_replicas: Path | None = None,
             extra_targets: Path | None = None) -> ValidationResult:
    """Run the chosen replicas (all by default) and judge their targets."""
    t0 = time.perf_counter()
    paths, targets = sources(extra_replicas, extra_targets)
    chosen = plan(only, paths, targets)
    workers = max(1, min(workers or os.cpu_count() or 1, len(chosen)))
    runs: dict[str, ReplicaRun] = {}
    if workers == 1:
        for name in chosen:
            runs[name] = run_replica(str(paths[name]))
            if progress:
                progress(name)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {pool.submit(run_replica, str(paths[name])): name for name in chosen}
            for fut in as_completed(futures):
                run = fut.result()
                runs[run.name] = run
                if progress:
                    progress(run.name)
    results = [judge(targets[tid], runs[name])
               for name in sorted(chosen) for tid in chosen[name]]
    results.sort(key=lambda r: list(targets).index(r.target.target_id))
    ordered = {name: runs[name] for name in sorted(runs)}
    return ValidationResult(results, ordered, time.perf_counter() - t0)
