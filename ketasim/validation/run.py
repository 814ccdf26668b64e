"""``ketasim validate``: run the replicas, compute each target's statistic, compare.

Replicas run in parallel worker processes (one numba thread each); results do not
depend on the number of workers, since every subject's numbers come from its own
random stream.

A replica is one simulated experiment: with its group sizes, a statistic near its
threshold passes at one seed and fails at the next, as a real replication might. With
``seeds=K`` every chosen replica is also run at seeds ``seed + 1 .. seed + K`` and each
target gets its replication count (``replication``: passes out of K, judged against the
tolerance whether or not the target is a known gap). The verdict still comes from the
replica's own seed.

A replica's group sizes make its statistic a noisy draw of what the model predicts. With
``expect=F`` every chosen replica is also run once at its own seed with every arm's
group size multiplied by F, and each target gets that value (``expected``), whether it
lies inside the tolerance (``expected_status``) and its effect size there
(``expected_effect``, beside the published one): the model's expectation, which tells a
sampling miss (a known gap whose expectation lies inside) from a pass by chance (a pass
whose expectation lies outside). The expectation is itself an estimate: its standard
error (``expected_se``) comes from the same run split by subject into ``min(F, 8)``
parts of equal size, each a replica with its group sizes x F / parts (the parts' SD /
sqrt(parts)); an expectation within t standard errors of a bound, t the two-sided 95%
quantile of Student's t with parts - 1 degrees of freedom (2.36 for 8 parts, 3.18 for 4:
an SD from a few parts is itself uncertain), is not settled (``expected_near_bound``):
it cannot tell a sampling miss or a pass by chance, and a larger F can. With
``settle=M`` the replicas that hold such a target are run again at four times their
factor, round after round, until none of their targets is unsettled or the factor
reaches M (or the largest factor the replica's arms allow, 100,000 subjects an arm);
each target reports the factor its expectation comes from (``expected_factor``). For a
significance target (a p-value) the scaled value asks whether the model's effect is
there (p < ...) or absent (p > ...) with F times the subjects, a stricter reading than
the paper's group sizes allow. The verdict still comes from the replica.

Targets are counted by role (``calibration``: parameters were fitted to the fact;
``validation``: out of sample), and each target's simulated effect size (its ``effect``
expression) is reported beside the published one where the targets file gives them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from statistics import stdev

import pandas as pd
import yaml
from scipy.stats import t as student_t

import ketasim
from ketasim.analysis.stats import compare
from ketasim.analysis.tolerance import is_p_value
from ketasim.experiment.pool import worker_pool
from ketasim.experiment.runner import simulate
from ketasim.params import Registry
from ketasim.provenance import collect
from ketasim.scenario import Arm, ScenarioError, load_scenario, load_scenario_text
from ketasim.spines.assays import tracking_tables
from ketasim.validation.statistic import StatisticError, evaluate
from ketasim.validation.targets import ROLES, Target, load_targets, parse_targets, replica_paths

CSV_COLUMNS = ["target_id", "facts", "source", "quantity", "published", "simulated",
               "tolerance", "pass", "status", "replica", "replication",
               "role", "fitted", "published_effect", "simulated_effect", "expected",
               "expected_se", "expected_factor", "expected_status", "expected_effect",
               "message"]
STATUSES = ("pass", "fail", "known_gap", "error")


class ValidationSetupError(ValueError):
    """Unknown --only IDs, or targets and replicas that do not match."""


@dataclass
class ReplicaRun:
    name: str
    scenario: object
    readouts: pd.DataFrame
    stats: pd.DataFrame
    seconds: float
    kept: dict = field(default_factory=dict)  # assay -> arm -> what the assay kept

    @cached_property
    def tracking(self) -> dict:
        """Arm -> observed two-photon tracking table (built once: every target of the
        replica reads it, twice with an effect expression)."""
        return tracking_tables(self.kept)


@dataclass
class TargetResult:
    target: Target
    replica: str
    simulated: float
    status: str  # pass | fail | known_gap | error
    message: str = ""
    replication: tuple[int, int] | None = None  # (passes, extra seeds run)
    simulated_effect: float = float("nan")  # the target's effect expression, if any
    expected: float | None = None  # the statistic at the scaled group sizes (expect)
    expected_effect: float | None = None  # the effect expression there, if any
    expected_se: float | None = None  # its standard error (split run; none for p-values)
    expected_se_parts: int | None = None  # the parts that standard error comes from
    expected_factor: int | None = None  # the group-size factor of ``expected``

    @property
    def expected_status(self) -> str:
        """"inside" or "outside" the tolerance at the scaled group sizes; "" if not run
        (or the statistic could not be computed there)."""
        if self.expected is None or math.isnan(self.expected):
            return ""
        return "inside" if self.target.tolerance.contains(self.expected) else "outside"

    @property
    def expected_near_bound(self) -> bool:
        """The expectation lies within :func:`near_bound_multiple` standard errors of a
        bound of the tolerance, so its status is not settled at this group-size factor."""
        if self.expected is None or self.expected_se is None:
            return False
        d = self.target.tolerance.distance(self.expected)
        k = near_bound_multiple(self.expected_se_parts)
        return bool(math.isfinite(self.expected_se) and d < k * self.expected_se)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class ValidationResult:
    results: list[TargetResult]
    replicas: dict[str, ReplicaRun] = field(default_factory=dict)
    seconds: float = 0.0
    expect: int = 0  # the group-size factor of the expectation runs (0: none)
    settle: int = 0  # the largest factor the near-bound expectations were rerun at (0: none)

    def settled(self) -> dict[str, int]:
        """``{replica: factor}`` for every replica whose expectation comes from a factor
        above ``expect`` (``validate --settle``; all its targets read that run)."""
        return {r.replica: r.expected_factor for r in self.results
                if r.expected_factor is not None and r.expected_factor > self.expect}

    def by_expectation(self) -> dict[str, list[str]]:
        """Targets whose verdict at the replica's seed and expectation disagree:
        ``by_chance`` (pass, expectation outside the tolerance) and ``sampling_miss``
        (fail or known gap, expectation inside it); and ``near_bound``: every target
        whose expectation lies within t of its standard errors of a bound
        (:func:`near_bound_multiple`), where
        neither reading is settled."""
        return {"by_chance": [r.target.target_id for r in self.results
                              if r.status == "pass" and r.expected_status == "outside"],
                "sampling_miss": [r.target.target_id for r in self.results
                                  if r.status in ("fail", "known_gap")
                                  and r.expected_status == "inside"],
                "near_bound": [r.target.target_id for r in self.results
                               if r.expected_near_bound]}

    def counts(self, role: str | None = None) -> dict[str, int]:
        """Targets by status; of one role (calibration or validation) if given."""
        out = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            if role is None or r.target.role == role:
                out[r.status] += 1
        return out

    def gaps_inside(self) -> list[str]:
        """Known gaps whose value lies inside their tolerance in this run: gaps that may
        have closed (or pass by chance at this seed), to be checked, not hidden."""
        return [r.target.target_id for r in self.results
                if r.status == "known_gap" and r.target.tolerance.contains(r.simulated)]

    def role_counts(self) -> dict[str, dict[str, int]]:
        """``{role: {status: count}}`` for both roles, each with a ``total``."""
        out = {}
        for role in ROLES:
            c = self.counts(role)
            out[role] = {**c, "total": sum(c.values())}
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
            "replica": r.replica,
            "replication": "" if r.replication is None else f"{r.replication[0]}/{r.replication[1]}",
            "role": r.target.role, "fitted": ";".join(r.target.fitted),
            "published_effect": (float("nan") if r.target.published_effect is None
                                 else r.target.published_effect),
            "simulated_effect": r.simulated_effect,
            "expected": float("nan") if r.expected is None else r.expected,
            "expected_se": float("nan") if r.expected_se is None else r.expected_se,
            "expected_factor": pd.NA if r.expected_factor is None else r.expected_factor,
            "expected_status": r.expected_status,
            "expected_effect": (float("nan") if r.expected_effect is None
                                else r.expected_effect),
            "message": r.message if r.status in ("error", "known_gap") else ""}
            for r in self.results]
        table = pd.DataFrame(rows, columns=CSV_COLUMNS)
        table["expected_factor"] = table["expected_factor"].astype("Int64")
        return table


def plan(only: list[str] | None = None, replicas: dict[str, Path] | None = None,
         targets: dict[str, Target] | None = None) -> dict[str, list[str]]:
    """Replica name -> target IDs to check. ``only`` takes target IDs or replica names."""
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


def run_replica(path: str, registry: Registry) -> ReplicaRun:
    """Simulate one replica (in a worker process)."""
    t0 = time.perf_counter()
    sc = load_scenario(path)
    res = simulate(sc, registry=registry)
    stats = compare(res.readouts, sc.compare)
    return ReplicaRun(Path(path).stem, sc, res.readouts, stats, time.perf_counter() - t0,
                      res.kept)


def replicate(path: str, offset: int, statistics: dict[str, str],
              registry: Registry) -> tuple[str, dict[str, float]]:
    """The replica at seed ``seed + offset``: each target's statistic (NaN where it cannot
    be computed). Only the numbers travel back from the worker."""
    sc = load_scenario(path)
    res = simulate(sc, seed=sc.seed + offset, registry=registry)
    return Path(path).stem, _statistics(res.readouts, res.tracking, statistics)


def _statistics(readouts: pd.DataFrame, tracking: dict[str, pd.DataFrame],
                statistics: dict[str, str]) -> dict[str, float]:
    """Each target's statistic on a run's readouts and spine tracking tables (NaN where
    it cannot be computed); the caller builds the tracking tables once."""
    values = {}
    for tid, expr in statistics.items():
        try:
            values[tid] = evaluate(expr, readouts, tracking)
        except StatisticError:
            values[tid] = float("nan")
    return values


#: Largest group-size factor of ``expect`` (the runs grow linearly with it)
MAX_EXPECT = 1000


def check_expect(expect) -> None:
    if isinstance(expect, bool) or not isinstance(expect, int) or not (
            expect == 0 or 2 <= expect <= MAX_EXPECT):
        raise ValidationSetupError(f"--expect: expected 0 (off) or a group-size factor "
                                   f"from 2 to {MAX_EXPECT}, got {expect!r}")


#: how much each ``settle`` round multiplies a replica's group-size factor
SETTLE_STEP = 4


def check_settle(settle, expect) -> None:
    """``settle`` (``validate --settle``): 0 (off), or the largest group-size factor,
    above ``expect`` (which it needs) and at most :data:`MAX_EXPECT`."""
    if isinstance(settle, bool) or not isinstance(settle, int) or settle < 0:
        raise ValidationSetupError(f"--settle: expected 0 (off) or the largest group-size "
                                   f"factor, up to {MAX_EXPECT}; got {settle!r}")
    if settle == 0:
        return
    if not expect:
        raise ValidationSetupError("--settle: needs --expect, the factor to start from "
                                   f"(e.g. --expect 8 --settle {min(512, MAX_EXPECT)})")
    if not expect < settle <= MAX_EXPECT:
        raise ValidationSetupError(f"--settle: expected a factor above --expect ({expect}) "
                                   f"and at most {MAX_EXPECT}; got {settle}")


def _replica_data(path: str | Path) -> dict:
    """The replica file at ``path`` as YAML data (its arms' group sizes as written)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def factor_limit(path: str | Path) -> int:
    """The largest group-size factor the replica at ``path`` allows: its largest arm
    times the factor must stay within a scenario's limit on an arm's subjects."""
    limit = next(m.le for m in Arm.model_fields["n"].metadata if hasattr(m, "le"))
    largest = max([int(arm["n"]) for arm in _replica_data(path).get("arms") or []] or [1])
    return max(1, limit // largest)


def scaled_scenario(path: str | Path, factor: int):
    """The replica at ``path`` with every arm's group size multiplied by ``factor`` (same
    seed, protocol, assays and comparisons); a size past the scenario limit is one
    error naming the arm."""
    path = Path(path)
    data = _replica_data(path)
    for arm in data.get("arms") or []:
        arm["n"] = int(arm["n"]) * factor
    try:
        return load_scenario_text(yaml.safe_dump(data, sort_keys=False),
                                  f"{path.name} (group sizes x {factor})")
    except ScenarioError as e:
        raise ValidationSetupError(f"--expect {factor}: replica {path.stem} cannot be "
                                   f"scaled: {e}") from e


@dataclass
class Expectation:
    """A replica's target statistics and effect sizes at scaled group sizes (one
    worker's result), and the statistics' standard errors."""
    name: str
    values: dict[str, float]
    effects: dict[str, float]
    se: dict[str, float] = field(default_factory=dict)
    se_parts: dict[str, int] = field(default_factory=dict)


#: most parts the expectation run is split into for its standard error
SE_PARTS = 8


def near_bound_multiple(parts: int | None) -> float:
    """How many standard errors from a bound leave an expectation unsettled: the
    two-sided 95% quantile of Student's t with ``parts`` - 1 degrees of freedom (the SE
    is an SD over that many parts; 2.36 for 8, 3.18 for 4, 12.7 for 2), or 2 where the
    number of parts is not known."""
    if parts is None:
        return 2.0
    if parts < 2:
        return math.inf
    return float(student_t.ppf(0.975, parts - 1))


def split_se(readouts: pd.DataFrame, tracking: dict[str, pd.DataFrame] | None,
             statistics: dict[str, str], parts: int) -> dict[str, float]:
    """Each statistic's standard error from ``parts`` disjoint parts of one run
    (:func:`split_values`): the parts' SD over sqrt(parts) (exact for a mean of
    subjects, the usual approximation for smooth statistics of them). NaN where fewer
    than two parts give a finite value."""
    return {tid: _parts_se(v)
            for tid, v in split_values(readouts, tracking, statistics, parts).items()}


def _parts_se(values: list[float]) -> float:
    return stdev(values) / math.sqrt(len(values)) if len(values) >= 2 else float("nan")


def split_values(readouts: pd.DataFrame, tracking: dict[str, pd.DataFrame] | None,
                 statistics: dict[str, str], parts: int) -> dict[str, list[float]]:
    """Each statistic on ``parts`` disjoint parts of one run, its finite values only:
    subject s of every arm goes to part s mod ``parts`` (a replica numbers its subjects
    0..n-1 in each arm, so the parts have equal group sizes). Nothing where ``parts`` < 2."""
    if parts < 2 or not statistics:
        return {tid: [] for tid in statistics}
    part = readouts["subject"].to_numpy().astype(int) % parts
    # tracking tables name their subjects as text ("0", "1", ...)
    tables = {arm: (t, t["subject"].to_numpy().astype(int) % parts if "subject" in t
                    else None)
              for arm, t in (tracking or {}).items()}
    values = {tid: [] for tid in statistics}
    for k in range(parts):
        sub = readouts[part == k]
        sub_tracking = {arm: (t if p is None else t[p == k]) for arm, (t, p) in tables.items()}
        for tid, expr in statistics.items():
            try:
                values[tid].append(evaluate(expr, sub, sub_tracking))
            except StatisticError:
                values[tid].append(float("nan"))
    return {tid: [x for x in v if math.isfinite(x)] for tid, v in values.items()}


def expectation(path: str, factor: int, statistics: dict[str, str],
                effects: dict[str, str], registry: Registry,
                se_statistics: dict[str, str] | None = None) -> Expectation:
    """The replica with its group sizes x ``factor``, at its own seed: each target's
    statistic and (where the target has one) effect expression, NaN where it cannot be
    computed; for ``se_statistics`` (the targets that are not p-values) the standard
    error of the statistic from the run split into ``min(factor, SE_PARTS)`` parts
    (:func:`split_se`)."""
    res = simulate(scaled_scenario(path, factor), registry=registry)
    tracking = res.tracking  # a property that concatenates tables: built once here
    parts = split_values(res.readouts, tracking, se_statistics or {}, min(factor, SE_PARTS))
    return Expectation(Path(path).stem, _statistics(res.readouts, tracking, statistics),
                       _statistics(res.readouts, tracking, effects),
                       {tid: _parts_se(v) for tid, v in parts.items()},
                       {tid: len(v) for tid, v in parts.items()})


#: the message of a known gap whose value lies inside its tolerance in this run
GAP_INSIDE = "inside its tolerance in this run (has the gap closed? check it and close it): "


def judge(target: Target, replica: ReplicaRun) -> TargetResult:
    try:
        v = evaluate(target.statistic, replica.readouts, replica.tracking)
    except StatisticError as err:
        return TargetResult(target, replica.name, float("nan"), "error", str(err))
    try:  # an effect that cannot be computed leaves the verdict to the statistic
        e = (evaluate(target.effect, replica.readouts, replica.tracking) if target.effect
             else float("nan"))
    except StatisticError as err:
        return TargetResult(target, replica.name, v, "error", f"effect: {err}")
    if target.known_gap:
        inside = target.tolerance.contains(v)
        return TargetResult(target, replica.name, v, "known_gap",
                            (GAP_INSIDE if inside else "") + target.known_gap,
                            simulated_effect=e)
    return TargetResult(target, replica.name, v,
                        "pass" if target.tolerance.contains(v) else "fail",
                        simulated_effect=e)


def sources(extra_replicas: Path | None = None, extra_targets: Path | None = None
            ) -> tuple[dict[str, Path], dict[str, Target]]:
    """Built-in replicas and targets, plus a lab's own: every ``*.yaml`` in
    ``extra_replicas`` and the entries of ``extra_targets`` (same formats)."""
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
            text = Path(extra_targets).read_text(encoding="utf-8")
        except OSError as e:
            raise ValidationSetupError(f"--targets {extra_targets}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ValidationSetupError(
                f"--targets {extra_targets}: not a UTF-8 text file (invalid byte "
                f"0x{e.object[e.start]:02x} at byte {e.start})") from None
        for tid, t in parse_targets(text, str(extra_targets)).items():
            if tid in targets:
                raise ValidationSetupError(f"target {tid} in {extra_targets} is already defined")
            targets[tid] = t
    return paths, targets


def check_seeds(seeds) -> None:
    """``seeds`` (``validate --seeds``) must be a whole number >= 0."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 0:
        raise ValidationSetupError(f"--seeds: got {seeds!r}; expected a whole number >= 0")


def validate(only: list[str] | None = None, workers: int | None = None,
             progress: Callable[[str], None] | None = None,
             extra_replicas: Path | None = None,
             extra_targets: Path | None = None, seeds: int = 0, *,
             registry: Registry, compounds: list[Path] | tuple = (),
             expect: int = 0, settle: int = 0, map_tasks=None,
             more_runs: Callable[[int], None] | None = None) -> ValidationResult:
    """Run the chosen replicas (all by default) and judge their targets; with ``seeds``
    > 0 also count each target's passes over that many further seeds, with ``expect`` > 0
    also compute each target at the group sizes x ``expect``, and with ``settle`` > 0
    rerun the replicas whose expectations are not settled at larger factors, up to
    ``settle`` (see the module docstring). ``progress`` is called once per replica run,
    ``(1 + seeds + (expect > 0)) x replicas`` times before any ``settle`` round; each
    round first calls ``more_runs`` (if given) with the number of runs it adds.
    ``registry``: the model parameters every replica runs with; ``compounds``: folders of
    compound files the replicas may use (already registered in this process, loaded
    again by each worker). ``map_tasks(fn, args_list)``, if given,
    runs every replica run elsewhere instead of ``workers`` processes here (a Dask
    cluster, ``ketasim validate --scheduler``; see
    :func:`ketasim.experiment.runner.simulate`): the same numbers, with ``progress``
    called (with the replica file's stem) as each run completes."""
    check_seeds(seeds)
    check_expect(expect)
    check_settle(settle, expect)
    ketasim._ensure_configured()  # numba's cache folder, inherited by the workers
    t0 = time.perf_counter()
    paths, targets = sources(extra_replicas, extra_targets)
    chosen = plan(only, paths, targets)
    jobs = [(run_replica, (str(paths[name]), registry)) for name in chosen]
    jobs += [(replicate, (str(paths[name]), k, {tid: targets[tid].statistic
                                                 for tid in chosen[name]}, registry))
             for k in range(1, seeds + 1) for name in chosen]

    def expectation_job(name: str, factor: int):
        return (expectation, (str(paths[name]), factor,
                              {tid: targets[tid].statistic for tid in chosen[name]},
                              {tid: targets[tid].effect for tid in chosen[name]
                               if targets[tid].effect}, registry,
                              {tid: targets[tid].statistic for tid in chosen[name]
                               if not is_p_value(targets[tid].quantity)}))

    if expect:
        for name in chosen:  # refuse a factor past the scenario limit before any run
            scaled_scenario(paths[name], expect)
        jobs += [expectation_job(name, expect) for name in chosen]
    runs: dict[str, ReplicaRun] = {}
    again: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    expected: dict[str, dict[str, float]] = {}
    expected_effects: dict[str, dict[str, float]] = {}
    expected_se: dict[str, dict[str, float]] = {}
    expected_parts: dict[str, dict[str, int]] = {}

    def collect(out, report: bool = True) -> None:
        if isinstance(out, ReplicaRun):
            runs[out.name] = out
            name = out.name
        elif isinstance(out, Expectation):
            expected[out.name] = out.values
            expected_effects[out.name] = out.effects
            expected_se[out.name] = out.se
            expected_parts[out.name] = out.se_parts
            name = out.name
        else:
            name, values = out
            again[name].append(values)
        if progress and report:
            progress(name)

    def execute(jobs: list) -> None:
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        if map_tasks is not None:
            # the bar moves as each run completes; the results are collected in order after
            names = [Path(args[0]).stem for _, args in jobs]
            done = None if progress is None else (lambda k: progress(names[k]))
            for out in map_tasks(run_job, [(fn.__name__, args) for fn, args in jobs],
                                 done=done):
                collect(out, report=False)
        elif n_workers == 1:
            for fn, args in jobs:
                collect(fn(*args))
        else:
            with worker_pool(n_workers, compounds) as pool:
                for fut in as_completed([pool.submit(fn, *args) for fn, args in jobs]):
                    collect(fut.result())

    execute(jobs)
    results = [judge(targets[tid], runs[name])
               for name in sorted(chosen) for tid in chosen[name]]
    if seeds:
        for r in results:
            tol = r.target.tolerance
            r.replication = (sum(bool(tol.contains(v[r.target.target_id]))
                                 for v in again[r.replica]), seeds)
    factors = dict.fromkeys(expected, expect)

    def take_expectations() -> None:
        for r in results:
            if r.replica in expected:
                r.expected = expected[r.replica][r.target.target_id]
                r.expected_effect = expected_effects[r.replica].get(r.target.target_id)
                r.expected_se = expected_se[r.replica].get(r.target.target_id)
                r.expected_se_parts = expected_parts[r.replica].get(r.target.target_id)
                r.expected_factor = factors[r.replica]

    take_expectations()
    limits = {name: min(settle, factor_limit(paths[name])) for name in chosen} if settle else {}
    while settle:  # rerun the replicas whose expectations are not settled, 4 x larger
        rerun = {}
        for name in sorted({r.replica for r in results if r.expected_near_bound}):
            factor = min(factors[name] * SETTLE_STEP, limits[name])
            if factor > factors[name]:
                rerun[name] = factor
        if not rerun:
            break
        if more_runs:
            more_runs(len(rerun))
        execute([expectation_job(name, factor) for name, factor in rerun.items()])
        factors.update(rerun)
        take_expectations()
    results.sort(key=lambda r: list(targets).index(r.target.target_id))
    ordered = {name: runs[name] for name in sorted(runs)}
    return ValidationResult(results, ordered, time.perf_counter() - t0, expect, settle)


def run_job(name: str, args: tuple):
    """One replica run of :func:`validate` by name (``run_replica``, ``replicate`` or
    ``expectation``): a module-level task for ``map_tasks``."""
    return {"run_replica": run_replica, "replicate": replicate,
            "expectation": expectation}[name](*args)


def manifest(result: ValidationResult, replicas: dict[str, Path], registry: Registry,
             started: str | None = None, extra_targets: Path | None = None,
             only: list[str] | None = None, seeds: int = 0) -> dict:
    """The ``manifest.json`` of ``ketasim validate``: the provenance entries of
    :func:`ketasim.provenance.collect` (each replica file's name, text and hash, the
    target files' hashes, versions, commit, times) and what was run."""
    builtin = Path(str(resources.files("ketasim.validation").joinpath("targets.yaml")))
    inputs = [builtin] + ([Path(extra_targets)] if extra_targets is not None else [])
    return collect(registry=registry, started=started, replicas=replicas,
                   inputs=inputs) | {
        "command": "validate", "only": list(only or []), "seeds": seeds,
        "expect": result.expect, "settle": result.settle,
        "counts": result.counts(), "timings_s": {"total": result.seconds}}
