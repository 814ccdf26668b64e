"""The ``ketasim`` command line (typer). Bad input exits with status 2 and one line.

Each command imports what it needs inside its function, on purpose: the simulation
stack loads numba and its compiled kernels (seconds), which ``ketasim --help``,
``ketasim params`` or ``ketasim schema`` must not pay for."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="ketasim: ketamine, synaptic plasticity and behaviour, dose to clinic.")
err = Console(stderr=True)
out = Console()


def _progress(*columns) -> Progress:
    """A progress bar on stderr that vanishes when done; none when stderr is not a
    terminal (a log, a pipe), where a finished bar still leaves a blank line."""
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _warn_doses(scenario, registry) -> list[str]:
    """A warning on stderr for each dose far above its compound's effective dose, and
    for each arm far beyond the validation replicas' stress courses and dose counts
    (the lines returned, for the run's manifest and report)."""
    from ketasim.experiment.runner import dose_warnings
    from ketasim.validation.domain import domain_warnings

    lines = dose_warnings(scenario, registry) + domain_warnings(scenario)
    for line in lines:
        err.print(f"warning: {line}", highlight=False, soft_wrap=True, markup=False)
    return lines


def _terminated(signum, frame) -> None:
    """SIGTERM (kill, timeout, a batch system's time limit) unwinds as SystemExit, so an
    unfinished output folder is removed as on Ctrl-C, not left beside ``--out``."""
    raise SystemExit(128 + signum)


def version_lines() -> list[str]:
    """What ``ketasim --version`` prints: the version and source commit, the Python and
    library versions and the packaged parameter registry's digest (the manifest's
    ``registry.sha256`` of a run with no ``--set``), for a bug report."""
    import ketasim  # deferred, as in the commands: the registry and compound files load
    from ketasim.params import load_registry  # only when --version is asked for
    from ketasim.provenance import git_state, libraries, registry_digest

    git = git_state()
    source = ("" if git["commit"] is None else
              f" (git {git['commit'][:12]}{', modified' if git['dirty'] else ''})")
    libs = ", ".join(f"{name} {v}" for name, v in libraries().items() if v is not None)
    return [f"ketasim {ketasim.__version__}{source}",
            f"python {sys.version.split()[0]}, {libs}",
            f"parameter registry sha256 {registry_digest(load_registry())}"]


def _print_version(value: bool) -> None:
    if value:
        for line in version_lines():
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit()


@app.callback()
def _configure(
    version: bool = typer.Option(False, "--version", callback=_print_version,
                                 is_eager=True, help="Print the version, the source "
                                 "commit, library versions and the registry digest."),
) -> None:
    """Set up numba's kernel cache before any command imports the simulation modules, and
    let SIGTERM clean up as Ctrl-C does."""
    import ketasim

    ketasim.configure()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def _say(message: str) -> None:
    """Print a message on stdout as written: it holds paths, names and notes from the
    user's files (``[/x]`` in an --out path is text, not rich markup)."""
    out.print(message, markup=False, highlight=False, soft_wrap=True)


def _bad_byte(e: UnicodeDecodeError) -> str:
    """Where a file is not UTF-8: the first invalid byte and its position."""
    return f"invalid byte {e.object[e.start]:#04x} at byte {e.start}"


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False,
              soft_wrap=True)
    raise typer.Exit(2)


def _user_errors():
    from ketasim.analysis.diff import ComparisonError
    from ketasim.core.assay import AssayOptionError
    from ketasim.experiment.runner import UnsupportedAssayError
    from ketasim.io.results import OutputError
    from ketasim.pk.compounds import CompoundError
    from ketasim.scenario import ScenarioError
    from ketasim.signaling.protocol import ProtocolError

    return (ScenarioError, UnsupportedAssayError, ProtocolError, OutputError,
            AssayOptionError, CompoundError, ComparisonError)


def _fail_in(scenario: str, e: Exception):
    """:func:`_fail` for a problem found in a loaded scenario: one that names its place
    (``arms[0]...``) gets the scenario's file and line, as loading problems have."""
    from ketasim.scenario import locate_problem

    msg = str(e)
    _fail(locate_problem(scenario, msg) if msg.startswith("arms[") else msg)


def _sweep_error(e: Exception, out_dir: Path) -> Exception:
    """A sweep's folder error naming its option as every command does (``--out X:``;
    ketasim.sweep.core writes ``out X:``)."""
    from ketasim.sweep.core import SweepError

    msg = str(e)
    if isinstance(e, SweepError) and msg.startswith(f"out {out_dir}"):
        return SweepError(f"--{msg}")
    return e


def _analysis_errors():
    """The user errors of power, sweep, sensitivity and calibrate: each command's own
    error class and the parameter and unit errors of what it is given, besides
    :func:`_user_errors`. Any other ValueError is a fault, shown with its traceback."""
    from ketasim.analysis.power import PowerError
    from ketasim.params.registry import RegistryError
    from ketasim.scenario.units import UnitError
    from ketasim.sweep.calibrate import CalibrationError
    from ketasim.sweep.core import SweepError
    from ketasim.sweep.sensitivity import SensitivityError

    return (PowerError, SweepError, SensitivityError, CalibrationError, RegistryError,
            UnitError, *_user_errors())


COMPOUNDS_HELP = ("a folder of your own compound files (compounds/NAME.yaml), added to the "
                  "built-ins; repeat for several")
SET_HELP = ("set a registry parameter for this command: NAME=VALUE (repeat, or "
            "comma-separate), within its range (ketasim params); the manifest and report "
            "list every value changed")


def _names(items: list[str] | None, option: str) -> list[str]:
    """The names of a repeatable, comma-separated option. Given but empty (``--only ""``,
    an empty shell variable) is an error: it would otherwise mean every name."""
    names = [n.strip() for item in (items or []) for n in item.split(",") if n.strip()]
    if items and not names:
        _fail(f"{option}: no names given (leave the option out to mean all)")
    return names


def _check_set_disjoint(settings: list[str] | None, names, what: str) -> None:
    """A parameter is either set (``--set``) or varied / fitted, not both."""
    from ketasim.params import load_registry, parse_settings

    both = sorted(set(parse_settings(load_registry(), settings)) & set(names))
    if both:
        _fail(f"--set {both[0]}: also {what} here; a parameter is either set or {what}")


def _registry(settings: list[str] | None):
    """The parameter registry a command runs with: the packaged one, with the ``--set``
    values (one clear error for an unknown name, a non-number or a value outside the
    parameter's range)."""
    from ketasim.params import RegistryError, load_registry

    registry = load_registry()
    if not settings:
        return registry
    try:
        return registry.with_settings(settings)
    except RegistryError as e:
        _fail(str(e))


def _add_compounds(folders: list[Path] | None) -> list[Path]:
    """Register the compound files of ``--compounds`` folders (before any scenario is
    read: its vocabulary follows them). One clear error for a malformed file."""
    from ketasim.pk.compounds import CompoundError, add_compounds

    folders = list(folders or [])
    try:
        for f in folders:
            add_compounds(f)
    except CompoundError as e:
        _fail(f"--compounds: {e}")
    return folders


def _scenario_file(scenario: str) -> Path:
    """The file a scenario argument names (a path, else a built-in scenario's file)."""
    from ketasim.scenario import builtin_scenarios

    path = Path(scenario)
    return path if path.is_file() else builtin_scenarios()[scenario]


SCHEDULER_HELP = ("run on Dask: tcp://HOST:PORT or a scheduler file (an existing cluster), "
                  "or 'local' (--workers processes here); the same numbers")
WORKERS_HELP = "with --scheduler local: worker processes (default: cores)"


def _backend(scheduler: str | None, workers: int | None) -> dict:
    """The manifest's ``backend``: where the subjects were simulated (it moves the
    timings, not the numbers)."""
    if scheduler is None:
        return {"kind": "in-process"}
    return {"kind": "dask", "scheduler": scheduler,
            **({} if workers is None else {"workers": workers})}


def _check_workers(scheduler: str | None, workers: int | None) -> None:
    if workers is not None and scheduler != "local":
        _fail("--workers: only with --scheduler local (an existing cluster has its own)")
    if workers is not None and workers < 1:
        _fail(f"--workers: got {workers}; expected at least 1")


def _check_scheduler(scheduler: str | None) -> None:
    """A ``--scheduler`` that is neither 'local', a scheduler file nor a reachable
    tcp://HOST:PORT is one clear error, before anything is written."""
    if scheduler is None or scheduler == "local" or Path(scheduler).is_file():
        return
    expected = "expected tcp://HOST:PORT, a scheduler file or 'local'"
    if "://" not in scheduler:
        _fail(f"--scheduler: got {scheduler!r}; {expected}")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(scheduler)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        _fail(f"--scheduler: got {scheduler!r}; {e}; {expected}")
    if parts.scheme in ("tcp", "tls") and (not host or port is None):
        _fail(f"--scheduler: got {scheduler!r}; {expected}")
    if parts.scheme in ("tcp", "tls"):
        try:
            socket.create_connection((host, port), timeout=10).close()
        except OSError as e:
            _fail(f"--scheduler: cannot reach the Dask scheduler {scheduler!r}: {e}")


@contextlib.contextmanager
def _task_map(scheduler: str | None, workers: int | None, folders: list[Path]):
    """``run --scheduler``: the Dask ``map_tasks`` of :func:`ketasim.sweep.core.dask_map`
    (None without --scheduler: the run stays in this process). A scheduler that cannot
    be reached is one clear error."""
    if scheduler is None:
        yield None
        return
    _check_scheduler(scheduler)
    from ketasim.sweep.core import dask_map  # imports Dask: only when asked for

    with contextlib.ExitStack() as stack:
        try:
            map_tasks = stack.enter_context(dask_map(scheduler, workers, folders))
        except OSError as e:
            _fail(f"--scheduler: cannot reach the Dask scheduler {scheduler!r}: {e}")
        yield map_tasks


@app.command()
def run(scenario: str = typer.Argument(..., help="scenario YAML file or built-in name"),
        out_dir: Path = typer.Option(..., "--out", help="output folder (created atomically)"),
        seed: int | None = typer.Option(None, "--seed", help="override the scenario seed"),
        force: bool = typer.Option(False, "--force", help="replace an existing --out folder"),
        compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
        nwb: bool = typer.Option(False, "--nwb", help="also write one NWB file per subject "
                                 "and session under --out/nwb/ (sub-ID/ses-ID layout)"),
        scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
        workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
        settings: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
        against: Path | None = typer.Option(
            None, "--against", help="an earlier run folder (or its summary.csv): how each "
            "summary mean moved (comparison.csv and the report)")):
    """Simulate SCENARIO and write readouts, summary, stats, manifest and report to --out.

    With --scheduler, each arm's subjects go to Dask workers in chunks; the numbers are
    the same as without it. With --against, comparison.csv and a report section show how
    each summary mean moved against an earlier run (e.g. one without --set)."""
    from ketasim.analysis.diff import check_summary
    from ketasim.experiment.runner import check_supported, simulate
    from ketasim.io.results import check_writable
    from ketasim.provenance import peak_rss_mb, utc_now
    from ketasim.report.run_folder import write_run
    from ketasim.scenario import load_scenario

    folders = _add_compounds(compounds)
    registry = _registry(settings)
    earlier = _earlier(against, "summary.csv", "ketasim run", check_summary)
    try:
        if seed is not None and not (0 <= seed < 2**63):
            _fail(f"--seed: got {seed}; expected an integer in [0, 2**63)")
        _check_workers(scheduler, workers)
        sc = load_scenario(scenario)
        check_supported(sc, registry)
        if nwb:  # NWB file names need distinct arm labels: known before simulating
            from ketasim.io.nwb import arm_labels

            try:
                arm_labels([a.name for a in sc.arms])
            except ValueError as e:
                _fail(f"--nwb: {e}".replace("write_nwb: ", ""))
        warnings = _warn_doses(sc, registry)
        check_writable(out_dir, force)
        source = _scenario_file(scenario)
        text = source.read_bytes().decode("utf-8-sig")  # as loaded, before simulating
        started = utc_now()
        t0 = time.perf_counter()
        with _progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                       TimeRemainingColumn()) as prog:
            task = prog.add_task(escape(f"simulating {sc.name}"), total=len(sc.arms))
            # each arm's fraction done (arms run one after another, or all at once on
            # Dask); the bar shows their sum
            fractions: dict[str, float] = {}

            def arm_progress(arm: str, fraction: float) -> None:
                fractions[arm] = fraction
                prog.update(task, completed=sum(fractions.values()))

            def arm_done(arm: str) -> None:
                arm_progress(arm, 1.0)

            with _task_map(scheduler, workers, folders) as map_tasks:
                result = simulate(sc, seed=seed, registry=registry, progress=arm_done,
                                  arm_progress=arm_progress, map_tasks=map_tasks)
        write_run(result, out_dir, registry, overwrite=force,
                  wall_s=time.perf_counter() - t0, started=started, inputs=[source],
                  scenario_text=text, nwb=nwb, backend=_backend(scheduler, workers),
                  against=earlier if against is not None else None, warnings=warnings)
    except _user_errors() as e:
        _fail_in(scenario, e)
    _say(f"wrote {out_dir}/ ({_written(out_dir)})")
    if against is not None:
        import pandas as pd

        kinds = pd.read_csv(out_dir / "comparison.csv")["change"].value_counts()
        gone = len(earlier[0]) - int(kinds.sum() - kinds.get("new", 0))
        _say(f"against {against}: {int(kinds.sum())} summary rows, "
             f"{int(kinds.get('value', 0))} moved, {int(kinds.get('same', 0))} the "
             f"same, {int(kinds.get('new', 0))} new (comparison.csv)"
             + (f"; {gone} rows of the earlier run are not in this one" if gone else ""))
    rss = peak_rss_mb()
    out.print(f"{time.perf_counter() - t0:.1f} s"
              + ("" if rss is None else f", peak RSS {rss:,.0f} MB"))


@app.command()
def validate(
    only: list[str] | None = typer.Option(
        None, "--only", help="target IDs or replica names (repeat, or comma-separate)"),
    out_dir: Path = typer.Option(Path("runs/validate"), "--out", help="output folder"),
    workers: int | None = typer.Option(None, "--workers", help="processes (default: cores)"),
    replicas_dir: Path | None = typer.Option(
        None, "--replicas", help="a folder of your own replica YAML files, added to the built-ins"),
    targets_file: Path | None = typer.Option(
        None, "--targets", help="a YAML file of your own targets, added to the built-ins"),
    seeds: int = typer.Option(
        0, "--seeds", help="also run every replica at this many further seeds and report "
        "each target's passes (replication); the verdict stays the replica's own seed"),
    expect: int = typer.Option(
        0, "--expect", help="also run every replica once with its group sizes multiplied "
        "by this factor (2-1000) and report each target there (expected): the model's "
        "expectation, which tells a sampling miss from a pass by chance"),
    settle: int = typer.Option(
        0, "--settle", help="with --expect: rerun the replicas whose expectations are "
        "not settled (within t standard errors of a bound) at 4 x their factor, round "
        "after round, up to this factor (at most 1000); expected_factor says where each "
        "one settled"),
    compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
    sensitivity: bool = typer.Option(
        False, "--sensitivity", help="also screen, per replica, which parameters each "
        "target depends on most (Morris; writes target_sensitivity.csv and adds the top "
        "three to the report)"),
    scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
    settings: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    against: Path | None = typer.Option(
        None, "--against", help="an earlier validation folder (or its validation.csv): "
        "list the targets whose verdict or simulated value moved (comparison.csv and the "
        "report)"),
):
    """Run the replicas of the published experiments and compare every literature target.

    Writes validation.csv, manifest.json and report.html to --out (and comparison.csv
    with --against); exits 1 if a target fails."""
    from ketasim.analysis.diff import check_baseline, compare_validations, comparison_counts
    from ketasim.io.results import OutputError, atomic_dir, write_json
    from ketasim.provenance import input_files, utc_now
    from ketasim.report.validation_report import write_validation_report
    from ketasim.validation.run import (
        ValidationSetupError,
        check_expect,
        check_seeds,
        check_settle,
        manifest,
        plan,
        sources,
    )
    from ketasim.validation.run import validate as run_validation
    from ketasim.validation.targets import TargetError

    ids = _names(only, "--only")
    if workers is not None and workers < 1:
        _fail(f"--workers: got {workers}; expected at least 1")
    folders = _add_compounds(compounds)
    registry = _registry(settings)
    baseline, baseline_file = _earlier(against, "validation.csv", "ketasim validate",
                                       check_baseline)
    try:
        check_seeds(seeds)
        check_expect(expect)
        check_settle(settle, expect)
        if scheduler is not None:
            _check_workers(scheduler, workers)
        try:
            paths, targets = sources(replicas_dir, targets_file)
        except UnicodeDecodeError as e:  # the loader reads --targets as text unchecked
            if targets_file is None:
                raise
            _fail(f"--targets {targets_file}: not a UTF-8 text file ({_bad_byte(e)}); "
                  "save it as UTF-8")
        chosen = plan(ids or None, paths, targets)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"--out {out_dir}: exists and is not a folder")
        previous = out_dir.exists() and any(out_dir.iterdir())
        if previous and not (out_dir / "validation.csv").exists():
            raise OutputError(f"--out {out_dir}: folder exists, is not empty and holds no "
                              "earlier validation; choose another folder")
        with atomic_dir(out_dir, overwrite=True) as tmp:
            started = utc_now()
            with _progress(TextColumn("{task.description}"), BarColumn(),
                           TextColumn("{task.completed}/{task.total} replicas"),
                           TimeElapsedColumn()) as prog:
                task = prog.add_task("validating",
                                     total=len(chosen) * (1 + seeds + (expect > 0)))
                with _task_map(scheduler, workers, folders) as map_tasks:
                    result = run_validation(
                        ids or None, workers, progress=lambda name: prog.advance(task),
                        extra_replicas=replicas_dir, extra_targets=targets_file,
                        seeds=seeds, registry=registry, compounds=folders, expect=expect,
                        settle=settle, map_tasks=map_tasks,
                        more_runs=lambda k: prog.update(
                            task, total=prog.tasks[task].total + k))
            table = result.table()
            sens_s = None
            if sensitivity:
                t_sens = time.perf_counter()
                table = _target_sensitivity(table, tmp, paths, targets, chosen, registry,
                                            workers, folders)
                sens_s = time.perf_counter() - t_sens
            table.to_csv(tmp / "validation.csv", index=False)
            comparison = None
            if baseline is not None:
                comparison = compare_validations(baseline, table)
                comparison.to_csv(tmp / "comparison.csv", index=False)
            man = manifest(result, {name: paths[name] for name in chosen}, registry, started,
                           targets_file, ids, seeds) | {
                               "backend": _backend(scheduler, workers if scheduler else None)}
            if baseline_file is not None:
                man["against"] = input_files([baseline_file])[0]
            write_json(man, tmp / "manifest.json")
            write_validation_report(tmp, result, table, man, comparison=comparison)
    except (ValidationSetupError, OutputError, TargetError) as e:
        _fail(str(e))
    except _user_errors() as e:
        _fail(str(e))
    shown = Table("target", "role", "published", "simulated", "tolerance", "pass",
                  title="validation")
    colour = {"pass": "green", "fail": "red", "known_gap": "red", "error": "red"}
    for r in result.results:
        label = {"pass": "pass", "fail": "FAIL", "known_gap": "known gap",
                 "error": "ERROR"}[r.status]
        shown.add_row(escape(r.target.target_id), escape(r.target.role),
                      escape(str(r.target.published)), f"{r.simulated:.4g}",
                      escape(r.target.tolerance.text), f"[{colour[r.status]}]{label}[/]")
    out.print(shown)
    for r in result.results:
        if r.status == "error":  # why the statistic could not be computed
            err.print(f"{r.target.target_id}: error: {r.message}", markup=False,
                      highlight=False, soft_wrap=True)
    for role, rc in result.role_counts().items():
        if rc["total"]:
            _say(f"{role}: {rc['total']} targets, {rc['pass']} pass, {rc['fail']} fail, "
                 f"{rc['known_gap']} known gaps, {rc['error']} errors")
    inside = result.gaps_inside()
    if inside:
        _say(f"known gaps inside their tolerance in this run (has a gap closed? check and "
             f"close it): {', '.join(inside)}")
    if expect:
        odd = result.by_expectation()
        scale = f"x {expect}" + (f", up to x {settle} where not settled" if settle else "")
        _say(f"expectation (group sizes {scale}): passing by chance (outside the "
             f"tolerance in expectation): {', '.join(odd['by_chance']) or 'none'}; "
             "sampling misses (failing or known gaps, inside in expectation): "
             f"{', '.join(odd['sampling_miss']) or 'none'}; within t standard errors "
             f"of a bound (t for the SE's parts, 2.36 with 8; not settled at its factor): "
             f"{', '.join(odd['near_bound']) or 'none'}")
    if settle:
        moved = result.settled()
        _say(f"replicas run again with larger group sizes (--settle {settle}): "
             + (", ".join(f"{name} x {f}" for name, f in sorted(moved.items()))
                or "none needed")
             + "; the expectation line above reads each target at its replica's factor "
             "(expected_factor)")
    if comparison is not None:
        k = comparison_counts(comparison)
        moved = comparison[comparison["change"] == "status"]
        _say(f"against {against}: {len(comparison)} targets, {k['status']} changed "
             f"verdict, {k['value']} moved value only, {k['same']} the same, {k['new']} "
             "new" + "".join(f"\n  {r.target_id}: {r.status_before} -> {r.status}"
                             for r in moved.itertuples()))
    c = result.counts()
    _say(f"{c['pass']} pass, {c['fail']} fail, {c['known_gap']} known gaps, "
         f"{c['error']} errors in {result.seconds:.1f} s"
         + (f" (and {sens_s:.1f} s screening sensitivity)" if sens_s is not None else "")
         + f"; wrote {out_dir}/validation.csv, "
         "manifest.json" + (", comparison.csv" if comparison is not None else "")
         + " and report.html")
    if not result.ok:
        raise typer.Exit(1)


def _earlier(against: Path | None, file_name: str, command: str, check):
    """``--against``: the earlier run's table (``file_name``, read from the folder or
    given as the file) and its path, checked by ``check(table, where)`` for the columns
    a comparison reads; (None, None) without it. One clear error for a folder without the file or a file that is
    not such a table."""
    if against is None:
        return None, None
    import pandas as pd

    from ketasim.analysis.diff import ComparisonError

    path = Path(against)
    path = path / file_name if path.is_dir() else path
    if not path.is_file():
        _fail(f"--against {against}: no {file_name} there; expected a folder that "
              f"{command} wrote, or its {file_name}")
    try:
        # arm names such as NA or None are names, not missing values
        return check(pd.read_csv(path, float_precision="round_trip", keep_default_na=False,
                                 na_values=[""]), f"--against {path}"), path
    except (ComparisonError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as e:
        _fail(str(e) if isinstance(e, ComparisonError)
              else f"--against {path}: cannot be read as a table ({e})")


def _target_sensitivity(table, folder: Path, paths, targets, chosen, registry, workers,
                        compounds):
    """Morris screening of each chosen replica's targets (``ketasim.sweep.sensitivity``):
    writes target_sensitivity.csv into ``folder`` and returns the validation table with
    each target's three most influential parameters (``sensitive_to``)."""
    from ketasim.sweep.sensitivity import target_sensitivity, top_parameters
    from ketasim.validation.statistic import evaluate

    tmap = {name: {tid: targets[tid] for tid in tids} for name, tids in chosen.items()}
    err.print(f"screening parameter sensitivity of {sum(map(len, tmap.values()))} targets "
              f"in {len(tmap)} replicas")
    sens = target_sensitivity({n: paths[n] for n in tmap}, tmap, evaluate=evaluate,
                              registry=registry, workers=1 if workers is None else workers,
                              compounds=compounds)
    sens.to_csv(folder / "target_sensitivity.csv", index=False)
    top = top_parameters(sens)
    return table.assign(sensitive_to=table["target_id"].map(top).fillna("not computed"))


def _written(folder: Path) -> str:
    """What a command wrote into ``folder``, read back from the folder itself (so the
    message cannot fall out of step with the writers); PNG figures are counted."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(folder).iterdir())
    figures = sum(n.endswith(".png") for n in names)
    return ", ".join([n for n in names if not n.endswith(".png")]
                     + ([f"{figures} figure{'s' if figures != 1 else ''}"] if figures else []))


def _write_power(df, out_dir: Path, overwrite: bool = False, cohorts=None,
                 manifest: dict | None = None) -> Path:
    """Write ``power.csv`` and ``power.png`` (a power table and its curve), and
    ``manifest.json`` when given, into ``out_dir`` atomically: nothing is left behind
    when writing fails.

    ``out_dir`` must not exist or be empty unless ``overwrite``, which replaces an
    existing folder as a whole; raises :class:`ketasim.io.results.OutputError` when the
    folder cannot be written.
    """
    from ketasim.io.results import atomic_dir, write_json
    from ketasim.report.power import plot_power

    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite) as tmp:
        df.to_csv(tmp / "power.csv", index=False)
        if cohorts is not None:
            cohorts.to_csv(tmp / "power_cohorts.csv", index=False)
        plot_power(df, tmp / "power.png")
        if manifest is not None:
            write_json(manifest, tmp / "manifest.json")
    return out_dir


PILOT_COHORTS = 1000  # resampled cohorts per n from pilot data (cheap: no simulation)


def _run_table(path: Path, reader, need: set[str], error: type[Exception]):
    """A run folder's table read by ``reader`` (``pandas.read_csv``/``read_parquet``)
    with the columns ``need``; anything else is one ``error`` naming the file."""
    try:
        table = reader(path)
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow errors vary; one clear line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise error(f"{path}: cannot read it ({first})") from None
    if not need <= set(table.columns):
        raise error(f"{path}: missing column(s) {', '.join(sorted(need - set(table.columns)))}"
                    " (not a ketasim run's table)")
    return table


def _pilot_power(folder: Path, compare: int | None, design: bool, n: str,
                 cohorts: int | None, alpha: float, seed: int | None, out_dir: Path | None,
                 force: bool, scheduler: str | None) -> None:
    """``ketasim power RUN_DIR --compare I``: the power of comparison I of a run folder
    (``ketasim analyze`` of pilot data, or a ``run``) by resampling its subjects."""
    from types import SimpleNamespace

    import pandas as pd

    from ketasim.analysis.power import (
        PowerError,
        parse_n_range,
        pilot_power,
        pilot_values,
    )
    from ketasim.provenance import collect, utc_now

    started = utc_now()
    try:
        if design or scheduler is not None:
            raise PowerError(f"RUN_DIR {folder}: power from a run folder's data takes "
                             "--compare INDEX (no --design, no --scheduler)")
        if compare is None:
            raise PowerError(f"RUN_DIR {folder}: give --compare INDEX, a row of its "
                             "stats.csv")
        files = [folder / "readouts.parquet", folder / "stats.csv"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise PowerError(f"RUN_DIR {folder}: no {' or '.join(missing)} (give the output "
                             "folder of ketasim analyze or run)")
        stats = _run_table(files[1], pd.read_csv, {"comparison", "readout", "assay",
                                                   "time_h", "test", "groups"}, PowerError)
        row = stats.loc[stats["comparison"] == compare]
        if row.empty:
            raise PowerError(f"--compare: got {compare}; {files[1]} has comparisons "
                             f"{', '.join(str(c) for c in stats['comparison']) or 'none'}")
        r = row.iloc[0]

        def text(key: str) -> str | None:
            v = r.get(key)
            return None if v is None or pd.isna(v) or str(v) == "" else str(v)

        arms = str(r["groups"]).split(";")
        try:
            at = float(r["time_h"])
            base = None if text("baseline_h") is None else float(r["baseline_h"])
        except (TypeError, ValueError):
            raise PowerError(f"{files[1]}: comparison {compare}: time_h and baseline_h must "
                             "be numbers (hours)") from None
        comparison = SimpleNamespace(readout=str(r["readout"]), at=at, arms=arms,
                                     test=str(r["test"]), assay=text("assay"),
                                     region=text("region"), baseline=base)
        cohorts = PILOT_COHORTS if cohorts is None else cohorts
        seed = 0 if seed is None else seed
        ns = parse_n_range(n)
        readouts = _run_table(files[0], pd.read_parquet, {"arm", "subject", "assay",
                                                          "readout", "time_h", "value"},
                              PowerError)
        if "region" not in stats.columns and "region" in readouts.columns and (
                readouts["region"].nunique() > 1):
            raise PowerError(f"{files[1]} has no region column (written by an older "
                             "ketasim) while the readouts span regions; rerun the run or "
                             "analysis to record each comparison's region")
        values = pilot_values(readouts, comparison)
        df = pilot_power(values, test=str(r["test"]), ns=ns, cohorts=cohorts, alpha=alpha,
                         seed=seed, readout=str(r["readout"]), time_h=float(r["time_h"]),
                         arms=arms)
        if out_dir is not None:
            from ketasim.io.results import check_writable

            check_writable(out_dir, force)
            from ketasim.params import load_registry

            man = collect(registry=load_registry(), started=started, inputs=files) | {
                "command": "power", "analysis": {"compare": compare, "pilot": str(folder),
                                                 "baseline_h": base},
                "pilot_n": {a: int(v.size) for a, v in zip(arms, values, strict=True)},
                "n": [int(x) for x in ns], "cohorts": cohorts, "alpha": alpha,
                "seed": seed, "method": "bootstrap of the pilot's subjects"}
            _write_power(df, out_dir, overwrite=force, manifest=man)
    except _analysis_errors() as e:
        _fail(str(e))
    change = f" (change from {base:g} h)" if base is not None else ""
    if comparison.region:
        change += f", {comparison.region}"
    table = Table("n per arm", "power", "95% CI",
                  title=escape(f"{r['readout']} at {float(r['time_h']):g} h{change}, "
                               f"{r['test']}, {r['groups']}, alpha {alpha:g}, {cohorts} "
                               "resampled cohorts"))
    for _, q in df.iterrows():
        table.add_row(str(int(q["n"])), f"{q['power']:.2f}",
                      f"[{q['ci_low']:.2f}, {q['ci_high']:.2f}]")
    out.print(table)
    sizes = ", ".join(f"{a} {v.size}" for a, v in zip(arms, values, strict=True))
    err.print(f"note: resampled from the pilot's subjects ({sizes}): its effect and spread "
              "are taken as the true ones, so the curve is as uncertain as the pilot",
              highlight=False, soft_wrap=True, markup=False)
    if out_dir is not None:
        _say(f"wrote {out_dir}/ ({_written(out_dir)})")


@app.command()
def power(scenario: str = typer.Argument(..., help="scenario YAML file or built-in name, "
                                         "or a run folder (ketasim analyze of pilot data): "
                                         "power by resampling its subjects"),
          compare: int | None = typer.Option(None, "--compare",
                                             help="index of the compare entry"),
          design: bool = typer.Option(False, "--design",
                                      help="the power of the scenario's trial design: its "
                                           "primary analysis, each arm against control "
                                           "(instead of --compare)"),
          n: str = typer.Option("4:20", "--n", help="group sizes: 4:20, 4:20:2 or 6,8,12 "
                                "(with --design: the smallest arm's patients)"),
          cohorts: int | None = typer.Option(None, "--cohorts",
                                             help="simulated cohorts per n (default 200; "
                                                  "100 with --design)"),
          alpha: float = typer.Option(0.05, "--alpha", help="significance level"),
          seed: int | None = typer.Option(None, "--seed", help="override the seed"),
          out_dir: Path | None = typer.Option(None, "--out",
                                                 help="write power.csv and power.png here"),
          force: bool = typer.Option(False, "--force", help="replace an existing --out"),
          compounds: list[Path] | None = typer.Option(None, "--compounds",
                                                      help=COMPOUNDS_HELP),
          scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
          workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
          settings: list[str] | None = typer.Option(None, "--set", help=SET_HELP)):
    """Power of a scenario's comparison by simulation, for planning group sizes.

    Given a run folder instead (``ketasim analyze`` of a lab's pilot data), the power of
    its comparison --compare (a row of its stats.csv) at each n by resampling the pilot's
    subjects with replacement (1,000 cohorts per n by default).

    With --design, the power of the scenario's trial design instead: its primary analysis
    (the MMRM contrast at the primary visit, with its dropout and intercurrent events)
    on simulated trials, each arm against control; power_cohorts.csv holds each
    cohort's estimate and p. With --scheduler, the cohorts' subjects go to Dask workers;
    the table is the same."""
    from ketasim.analysis.power import PowerError, parse_n_range
    from ketasim.experiment.power import power_curve, trial_power_curve
    from ketasim.provenance import collect, utc_now
    from ketasim.scenario import load_scenario

    if seed is not None and not (0 <= seed < 2**63):
        _fail(f"--seed: got {seed}; expected an integer in [0, 2**63)")
    if Path(scenario).is_dir():
        from ketasim.scenario import builtin_scenarios

        if scenario in builtin_scenarios():
            _fail(f"SCENARIO {scenario!r} is both a built-in scenario and a folder here; "
                  f"write ./{scenario} for the folder's pilot data or move the folder")
        given = [o for o, v in (("--set", settings), ("--compounds", compounds),
                                ("--workers", workers)) if v]
        if given:
            _fail(f"{', '.join(given)}: not used by power from a run folder's data "
                  f"({scenario}), which resamples its subjects and simulates nothing")
        _pilot_power(Path(scenario), compare, design, n, cohorts, alpha, seed, out_dir,
                     force, scheduler)
        return
    folders = _add_compounds(compounds)
    registry = _registry(settings)
    started = utc_now()
    try:
        _check_workers(scheduler, workers)
        if (compare is None) == (not design):
            raise PowerError("give either --compare INDEX (a comparison) or --design (the "
                             "trial design's primary analysis)")
        cohorts = cohorts if cohorts is not None else (100 if design else 200)
        ns = parse_n_range(n)
        sc = load_scenario(scenario)
        _warn_doses(sc, registry)
        if out_dir is not None:
            from ketasim.io.results import check_writable

            check_writable(out_dir, force)
        with _progress(TextColumn("{task.description}"), BarColumn(),
                       TimeElapsedColumn()) as prog:
            task = prog.add_task(f"simulating {cohorts} cohorts x n = {ns[0]}..{ns[-1]}",
                                 total=None)

            def analysed(done: int, total: int) -> None:  # trials analysed so far
                prog.update(task, description=f"analysing {total} simulated trials",
                            completed=done, total=total)

            with _task_map(scheduler, workers, folders) as map_tasks:
                per = None
                if design:
                    df, per = trial_power_curve(sc, ns, cohorts=cohorts, alpha=alpha,
                                                seed=seed, registry=registry,
                                                map_tasks=map_tasks, per_cohort=True,
                                                progress=analysed)
                else:
                    df = power_curve(sc, compare, ns, cohorts=cohorts, alpha=alpha,
                                     seed=seed, registry=registry,
                                     map_tasks=map_tasks)
        if out_dir is not None:
            source = _scenario_file(scenario)
            man = collect(registry=registry, started=started, inputs=[source],
                          scenario_text=source.read_bytes().decode("utf-8-sig")) | {
                "command": "power", "scenario": sc.name,
                "analysis": "design" if design else {"compare": compare},
                "n": [int(x) for x in ns], "cohorts": cohorts, "alpha": alpha,
                "seed": sc.seed if seed is None else seed,
                "backend": _backend(scheduler, workers)}
            _write_power(df, out_dir, overwrite=force, cohorts=per, manifest=man)
    except _analysis_errors() as e:
        _fail_in(scenario, e)
    first = df.iloc[0]
    table = Table("n per arm", "power", "95% CI",
                  title=escape(f"{first['readout']} at {first['time_h']:g} h, "
                               f"{first['test']}, {first['groups']}, alpha {alpha:g}, "
                               f"{cohorts} cohorts"))
    if design:
        table = Table("n", "arm", "n arm", "randomised", "power", "95% CI", "mean estimate",
                      "not fitted",
                      title=escape(f"{first['readout']} at {first['time_h']:g} h, "
                                   f"{first['test']}, against {first['control']}, alpha "
                                   f"{alpha:g}, {cohorts} trials"))
    for _, r in df.iterrows():
        ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        if design:
            table.add_row(str(int(r["n"])), escape(str(r["arm"])), str(int(r["n_arm"])),
                          f"{r['randomised_mean']:.3g}", f"{r['power']:.2f}", ci,
                          f"{r['mean_estimate']:.2f}", str(int(r["not_fitted"])))
        else:
            table.add_row(str(int(r["n"])), f"{r['power']:.2f}", ci)
    out.print(table)
    if design and (df["randomised_mean"] < df["n_arm"]).any():
        out.print("note: n and n arm count candidates before the population's screening; "
                  "'randomised' is the mean number of the arm's patients who passed it")
    if design and df["not_fitted"].any():
        out.print(f"note: {int(df['not_fitted'].sum())} simulated trials' primary analysis "
                  "could not be fitted (counted as not significant)")
    if out_dir is not None:
        _say(f"wrote {out_dir}/ ({_written(out_dir)})")


@app.command()
def screen(
    folder: Path | None = typer.Argument(
        None, help="a folder of compound files to screen (default: the built-in drugs)"),
    species: str = typer.Option("mouse", "--species", help="mouse or rat"),
    doses: str | None = typer.Option(None, "--doses",
                                     help="doses per body weight, e.g. '1,3,10 mg/kg' "
                                          "(several doses draw dose-response curves); "
                                          "default: each compound's effective dose from "
                                          "its file (else 10 mg/kg)"),
    route: str = typer.Option("ip", "--route", help="route for every arm"),
    stress: str = typer.Option("cort", "--stress",
                               help="stress model before the dose: none, cort, restraint "
                                    "or inescapable_shock"),
    n: int = typer.Option(8, "--n", help="subjects per arm"),
    seed: int = typer.Option(7, "--seed", help="random seed"),
    only: list[str] | None = typer.Option(
        None, "--only", help="screen only these compounds (repeat, or comma-separate)"),
    rank_by: str = typer.Option("efficacy_vs_reference", "--rank-by",
                                help="the metric that ranks the arms"),
    out_dir: Path = typer.Option(Path("runs/screen"), "--out", help="output folder"),
    workers: int | None = typer.Option(None, "--workers", help="processes (default: cores)"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out folder"),
    compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
    scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
    settings: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
):
    """Screen candidate compounds through one protocol and rank them.

    Every candidate (at every dose) gets the stress model, then one dose at time 0, beside
    a vehicle arm and the reference, ketamine 10 mg/kg. Measured: the plasticity window
    (peak, duration), the formation drive, spine density gain at 24 h and 7 d, NMDA
    occupancy on pyramidal neurons and open-field hyperlocomotion (dissociation-like),
    tail-suspension rescue at 3 h and 48 h. Writes screen.csv, screen.parquet,
    readouts.parquet, screen_scenario.yaml, manifest.json and report.html to --out."""
    from ketasim.io.results import OutputError, atomic_dir
    from ketasim.pk.compounds import CompoundError, add_compounds
    from ketasim.provenance import utc_now
    from ketasim.report.screen import fixed, write_screen
    from ketasim.scenario import load_scenario_text
    from ketasim.screen import (
        ScreenError,
        check_rank_by,
        manifest,
        metric_table,
        plan_screen,
        run_screen,
    )

    folders = _add_compounds(compounds)
    registry = _registry(settings)
    names = _names(only, "--only")
    try:
        if workers is not None and workers < 1:
            raise ScreenError(f"--workers: got {workers}; expected at least 1")
        if scheduler is not None:
            _check_workers(scheduler, workers)
        check_rank_by(rank_by)
        inputs: list[Path] = []
        if folder is not None:
            try:
                screened = add_compounds(folder)
            except CompoundError as e:
                raise ScreenError(f"{folder}: {e}" if str(folder) not in str(e)
                                  else str(e)) from None
            folders = [folder, *folders]
            inputs = sorted(Path(folder).glob("*.y*ml"))
            outside = [c for c in names if c not in screened]
            if outside:  # --only picks among the folder's compounds
                raise ScreenError(f"--only: {', '.join(map(repr, outside))} not in {folder} "
                                  f"(its compounds: {', '.join(screened)})")
            names = names or screened
        plan = plan_screen(species=species, route=route, stress=stress, doses=doses, n=n,
                           seed=seed, candidates=names or None)
        _warn_doses(load_scenario_text(plan.scenario_text, "screen"), registry)
        previous = out_dir.exists() and out_dir.is_dir() and any(out_dir.iterdir())
        if previous and not force and not (out_dir / "screen.csv").exists():
            raise OutputError(f"--out {out_dir}: folder exists, is not empty and holds no "
                              "earlier screen; choose another folder or pass --force")
        with atomic_dir(out_dir, overwrite=True) as tmp:
            started = utc_now()
            with _progress(TextColumn("{task.description}"), BarColumn(),
                           TextColumn("{task.completed}/{task.total} arms"),
                           TimeElapsedColumn()) as prog:
                task = prog.add_task(f"screening {len(plan.compounds)} compounds",
                                     total=len(plan.arms))
                with _task_map(scheduler, workers, folders) as map_tasks:
                    result = run_screen(plan, registry=registry, workers=workers,
                                        compounds=folders, rank_by=rank_by,
                                        progress=lambda arm: prog.advance(task),
                                        map_tasks=map_tasks)
            write_screen(tmp, result, metric_table(),
                         manifest(result, registry, started, inputs) | {
                             "backend": _backend(scheduler, workers if scheduler else None)})
    except (ScreenError, OutputError) as e:
        _fail(str(e))
    except _user_errors() as e:
        _fail(str(e))
    from rich import box

    shown = Table(title=escape(f"screen ({species}, {stress}, {route}; ranked by {rank_by})"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    shown.add_column("#", justify="right")
    shown.add_column("compound", no_wrap=True)  # names are what users type: never cut
    # the headline columns (all metrics, with units: screen.csv and the report)
    cols = {"dose_mg_per_kg": ("mg/kg", "g"), "efficacy_vs_reference": ("effic. x ref", ".2f"),
            "dissociation_vs_reference": ("dissoc. x ref", ".2f"),
            "window_duration_h": ("window h", ".1f"),
            "spine_gain_7d_pct": ("spines 7d %", ".1f"),
            "tst_rescue_48h_s": ("TST 48h s", ".1f")}
    for label, _ in cols.values():
        shown.add_column(label, justify="right")
    for _, r in result.table.iterrows():
        role = {"reference": " (ref.)", "vehicle": " (vehicle)"}.get(r["role"], "")
        shown.add_row(str(r["rank"]), escape(str(r["compound"]) + role),
                      *(fixed(r[c], f) for c, (_, f) in cols.items()))
    out.print(shown)
    for note in plan.notes:
        _say(f"note: {note}")
    _say(f"screened {len(plan.compounds)} compounds ({len(plan.arms)} arms, n={n}) in "
         f"{result.seconds:.1f} s on {result.where}; wrote {out_dir}/ "
         "(screen.csv, screen.parquet, readouts.parquet, manifest.json, report.html)")


@app.command()
def scenarios():
    """List the built-in scenarios."""
    from ketasim.scenario import builtin_scenarios, load_scenario

    table = Table()
    table.add_column("name", no_wrap=True)  # names are what users type: never cut them
    for col in ("species", "arms", "description"):
        table.add_column(col)
    for name, path in builtin_scenarios().items():
        sc = load_scenario(path)
        table.add_row(escape(name), escape(sc.species),
                      escape(", ".join(f"{a.name} (n={a.n})" for a in sc.arms)),
                      escape(sc.description or ""))
    out.print(table)


@app.command("compounds")
def compounds_cmd(
    compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
    schema_out: bool = typer.Option(False, "--schema",
                                    help="print the JSON Schema of a compound file instead"),
):
    """List the compounds (built-in and --compounds): PK species, routes and targets."""
    from ketasim.pk.compounds import BUILTIN, COMPOUNDS, compound_schema, species_with_pk

    if schema_out:
        if compounds:
            # the file format is the same for every compound: a --compounds folder would
            # be neither read nor checked, which the user would not see
            _fail("--schema prints the format of a compound file, the same for all; it "
                  "takes no --compounds (list or check a folder with --compounds alone)")
        out.print_json(json.dumps(compound_schema()))
        return
    _add_compounds(compounds)
    table = Table()
    table.add_column("name", no_wrap=True)
    for col in ("kind", "species", "routes", "targets", "from"):
        table.add_column(col)
    for name in sorted(COMPOUNDS):
        c = COMPOUNDS[name]
        species = sorted(species_with_pk(c))  # a mixture: those all its components have
        tgt = ", ".join(f"{t.target} {t.action}" for t in c.targets)
        if c.components:
            tgt = "mixture of " + ", ".join(f"{k} {f:g}" for k, f in c.components.items())
        if c.metabolites:
            tgt += ("; " if tgt else "") + "-> " + ", ".join(m for m, _ in c.metabolites)
        table.add_row(*(escape("" if v is None else str(v)) for v in (
            name, c.kind + (" (window PK)" if c.is_window else ""), ", ".join(species),
            ", ".join(c.routes), tgt or "-", "built-in" if name in BUILTIN else c.source_file)))
    out.print(table)


@app.command()
def analyze(kind: str = typer.Argument(..., help="spines, calcium, behavior or nwb"),
            paths: list[Path] = typer.Argument(..., help="the lab's files or folders"),
            design: Path = typer.Option(..., "--design", help="design YAML: groups, "
                                        "subjects, sessions, files, comparisons"),
            out_dir: Path = typer.Option(..., "--out", help="output folder"),
            force: bool = typer.Option(False, "--force", help="replace an existing --out")):
    """Analyse a lab's own data (spines, calcium, behaviour) as ketasim analyses its own.

    The same readouts, summaries, tests (and mixed models for nested data) and report as
    ketasim run."""
    from ketasim.analyze.kinds import LAB_ERRORS
    from ketasim.analyze.run import analyze as run_analysis

    for p in paths:
        if not p.exists():
            _fail(f"{p}: no such file or folder")
        if p.is_dir() and not any(p.iterdir()):
            _fail(f"{p}: the folder is empty")
    try:
        folder = run_analysis(kind, paths, design, out_dir, overwrite=force)
    except (*LAB_ERRORS, *_user_errors()) as e:
        _fail(str(e))
    manifest = json.loads((folder / "manifest.json").read_text())
    for note in [*manifest.get("left_out", []), *manifest.get("no_data", [])]:
        _say(f"note: {note}")
    _say(f"wrote {folder}/ ({_written(folder)})")


@app.command()
def sweep(scenario: str = typer.Argument(..., help="scenario YAML file or built-in name"),
          vary: list[str] | None = typer.Option(
              None, "--vary", help="PARAM=LO:HI:N or PARAM=v1,v2 (registry parameter or "
              "scenario field such as 'arms\\[ketamine].protocol[0].dose'); several make a grid"),
          samples_file: Path | None = typer.Option(None, "--samples", help="CSV or Parquet "
                                                   "of samples, one column per name"),
          out_dir: Path = typer.Option(..., "--out", help="output folder (resumed if present)"),
          scheduler: str | None = typer.Option(None, "--scheduler",
                                               help="an existing Dask cluster, tcp://HOST:PORT"),
          workers: int | None = typer.Option(None, "--workers",
                                             help="local worker processes (default: cores)"),
          chunk: int | None = typer.Option(None, "--chunk", help="samples per task"),
          seed: int | None = typer.Option(None, "--seed", help="override the scenario seed"),
          compounds: list[Path] | None = typer.Option(None, "--compounds",
                                                      help=COMPOUNDS_HELP),
          settings: list[str] | None = typer.Option(
              None, "--set", help=SET_HELP + "; the varied names may not be among them")):
    """Run SCENARIO over a grid or a sample of parameters and scenario fields.

    Chunks are written atomically as Parquet (resumable; the same numbers whatever the
    workers)."""
    from ketasim.sweep.core import parse_vary, read_samples, run_sweep

    folders = _add_compounds(compounds)
    registry = _registry(settings)
    _check_scheduler(scheduler)
    if chunk is not None and chunk < 1:
        _fail(f"--chunk: got {chunk}; expected at least 1 sample per task")
    try:
        if (vary is None) == (samples_file is None):
            _fail("give --vary or --samples (one of them)")
        samples = parse_vary(vary) if vary else read_samples(samples_file)
        _check_set_disjoint(settings, samples.columns, "varied")
        run_sweep(scenario, samples, out_dir, seed=seed, scheduler=scheduler,
                  workers=workers, chunk_samples=chunk, compounds=folders,
                  registry=registry)
    except _analysis_errors() as e:
        _fail_in(scenario, _sweep_error(e, out_dir))
    _say(f"wrote {out_dir}/ ({len(samples)} samples: chunks/part-*.parquet, "
         "samples.parquet, manifest.json)")


@app.command()
def sensitivity(
        scenario: str = typer.Argument(..., help="scenario YAML file or built-in name"),
        readout: str = typer.Option(..., "--readout", help="the readout analysed"),
        out_dir: Path = typer.Option(..., "--out", help="output folder"),
        method: str = typer.Option("sobol", "--method", help="sobol or morris"),
        params: str | None = typer.Option(None, "--params", help="comma-separated "
                                          "parameters or patterns (default: those the "
                                          "scenario uses)"),
        n: int | None = typer.Option(None, "--n", help="Sobol base sample (a power of two) "
                                     "or Morris trajectories"),
        arm: str | None = typer.Option(None, "--arm", help="the arm read"),
        at: str | None = typer.Option(None, "--at", help="the time read, e.g. 24h"),
        contrast: str | None = typer.Option(None, "--contrast", help="subtract this arm"),
        seed: int = typer.Option(0, "--seed", help="sampling seed"),
        scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://HOST:PORT"),
        workers: int | None = typer.Option(None, "--workers", help="local worker processes"),
        compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
        settings: list[str] | None = typer.Option(
            None, "--set", help=SET_HELP + "; the analysed parameters may not be among them")):
    """Global sensitivity (SALib) of one readout over the registry's parameter ranges.

    First- and total-order indices with confidence intervals and a bar plot."""
    from ketasim.report.sensitivity_figures import plot_indices
    from ketasim.scenario import load_scenario
    from ketasim.sweep.sensitivity import (
        resolve_parameters,
        run_sensitivity,
        scenario_parameters,
    )

    if not 0 <= seed < 2**63:
        _fail(f"--seed: got {seed}; expected an integer in [0, 2**63)")
    if contrast is not None and arm is not None and contrast == arm:
        _fail(f"--contrast: got {contrast!r}, the --arm itself; the contrast would be 0 "
              "for every sample: name another arm")
    if params is not None and not params.strip(" ,"):
        _fail("--params: empty; name parameters or patterns, or leave it out for those "
              "the scenario uses")
    folders = _add_compounds(compounds)
    registry = _registry(settings)
    _check_scheduler(scheduler)
    names = [x.strip() for x in params.split(",") if x.strip()] if params else None
    try:
        if settings:
            _check_set_disjoint(settings, scenario_parameters(load_scenario(scenario),
                                                              registry)
                                if names is None else resolve_parameters(registry, names),
                                "analysed")
        run_sensitivity(scenario, readout, out_dir, names=names, method=method, n=n,
                        arm=arm, time_h=at, contrast_arm=contrast, seed=seed,
                        registry=registry, figure=plot_indices, workers=workers,
                        scheduler=scheduler, compounds=folders)
    except _analysis_errors() as e:
        _fail_in(scenario, e)
    _say(f"wrote {out_dir}/ (indices.csv, indices.png, samples.csv, manifest.json, sweep/)")


@app.command()
def calibrate(
        scenario: str = typer.Argument(..., help="scenario YAML file or built-in name"),
        data: Path = typer.Option(..., "--data", help="CSV (arm, readout, time_h, mean, sem) "
                                  "or a run / analyze folder"),
        params: str = typer.Option(..., "--params", help="comma-separated registry parameters"),
        out_dir: Path = typer.Option(..., "--out", help="output folder"),
        method: str = typer.Option("abc", "--method", help="abc or likelihood"),
        population: int = typer.Option(100, "--population", help="ABC particles"),
        generations: int = typer.Option(5, "--generations", help="ABC generations at most"),
        seed: int = typer.Option(0, "--seed", help="seed"),
        workers: int | None = typer.Option(None, "--workers", help="local worker processes"),
        scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://HOST:PORT"),
        petab: Path | None = typer.Option(None, "--petab", help="also export the problem as "
                                          "PEtab tables plus SBML into this folder (apart "
                                          "from --out)"),
        force: bool = typer.Option(False, "--force", help="replace an existing --out"),
        compounds: list[Path] | None = typer.Option(None, "--compounds", help=COMPOUNDS_HELP),
        settings: list[str] | None = typer.Option(
            None, "--set", help=SET_HELP + "; the fitted parameters may not be among them")):
    """Fit registry parameters to data by ABC-SMC (pyabc) or maximum likelihood.

    Writes the posterior, a report with prior vs posterior and posterior-predictive
    checks; with --petab, the PEtab export appears only once the calibration is
    complete (a command that fails writes neither folder)."""
    from ketasim.io.results import atomic_dir, check_writable
    from ketasim.sweep.calibrate import calibrate as run_calibration
    from ketasim.sweep.calibrate import check_settings, export_petab

    if not 0 <= seed < 2**63:
        _fail(f"--seed: got {seed}; expected an integer in [0, 2**63)")
    if petab is not None:  # two folders apart: one would replace or hold the other
        p, o = petab.resolve(), out_dir.resolve()
        if p == o or o in p.parents or p in o.parents:
            where = ("the same folder as" if p == o else "inside" if o in p.parents
                     else "a folder holding")
            _fail(f"--petab {petab}: {where} --out {out_dir}; give the PEtab export a "
                  "folder apart from the calibration's")
    folders = _add_compounds(compounds)
    registry = _registry(settings)
    try:
        _check_set_disjoint(settings, [x.strip() for x in params.split(",")], "fitted")
        # every setting and both folders before anything is read, simulated or written
        check_settings(method=method, population=population, generations=generations,
                       workers=workers)
        check_writable(out_dir, force)
        # the PEtab export is written into a temporary folder that becomes --petab only
        # once the calibration is complete: a failing command leaves no folder behind
        with (atomic_dir(petab, False, option="--petab") if petab is not None
              else contextlib.nullcontext()) as petab_tmp:
            if petab_tmp is not None:
                export_petab(scenario, data, params, petab_tmp, registry=registry)
            run_calibration(scenario, data, params, out_dir, method=method,
                            population=population, generations=generations, seed=seed,
                            registry=registry, workers=workers, scheduler=scheduler,
                            compounds=[str(f) for f in folders], overwrite=force,
                            progress=lambda msg: err.print(msg, markup=False))
    except _analysis_errors() as e:
        _fail_in(scenario, e)
    files = ", ".join(sorted(f.name for f in Path(out_dir).iterdir()))
    _say(f"wrote {out_dir}/ ({files})" + (f" and {petab}/" if petab is not None else ""))


@app.command()
def schema(out_file: Path | None = typer.Option(None, "--out", help="write to this file"),
           force: bool = typer.Option(False, "--force", help="replace an existing file")):
    """Write the JSON Schema of the scenario format (for editors)."""
    from ketasim.io.results import OutputError, check_output_file
    from ketasim.scenario import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2)
    if out_file is None:
        sys.stdout.write(text + "\n")
        return
    try:
        check_output_file(out_file, force)
    except OutputError as e:
        _fail(str(e))
    try:
        out_file.write_text(text + "\n")
    except OSError as e:
        _fail(f"--out {out_file}: cannot write ({e.strerror})")


@app.command()
def params(prefix: str = typer.Argument("", help="show only names starting with this")):
    """Print the parameter registry: value, unit, range, variability and source."""
    from ketasim.params import load_registry

    table = Table(show_lines=False)
    table.add_column("name", no_wrap=True)
    for col in ("value", "unit", "range", "bsv", "source"):
        table.add_column(col)
    registry = load_registry()
    chosen = [p for p in registry if p.name.startswith(prefix)]
    if not chosen:
        groups = sorted({p.name.split(".")[0] for p in registry})
        _fail(f"no parameter starts with {prefix!r}; names start with "
              f"{', '.join(g + '.' for g in groups)}")
    for p in chosen:
        bsv = (f"CV {p.bsv_cv:g}" if p.bsv_cv else
               f"logit SD {p.bsv_logit_sd:g}" if p.bsv_logit_sd else "")
        table.add_row(escape(p.name), f"{p.value:g}", escape(p.unit),
                      escape(f"[{p.low:g}, {p.high:g}]"), bsv, escape(p.source))
    out.print(table)


@app.command("export-sbml")
def export_sbml(scenario: str = typer.Argument(..., help="scenario YAML file or built-in"),
                out_file: Path = typer.Option(..., "--out", help="SBML file to write"),
                arm: str | None = typer.Option(None, "--arm", help="arm (default: first)"),
                subject: int | None = typer.Option(
                    None, "--subject",
                    help="export this sampled subject, as the run simulates it (its "
                    "population's weight and age included; default: the typical subject)"),
                region: str | None = typer.Option(
                    None, "--region", help="the brain region whose parameter set the model "
                    "carries (default: the first region the arm's assays measure)"),
                settings: list[str] | None = typer.Option(None, "--set", help=(
                    "set a registry parameter for the exported model: NAME=VALUE (repeat, "
                    "or comma-separate), within its range (ketasim params)")),
                force: bool = typer.Option(False, "--force",
                                           help="replace an existing file")):
    """Write the PK + signalling model of one subject of an arm as SBML L3V2."""
    import numpy as np

    from ketasim.core.regions import KNOWN_REGIONS
    from ketasim.experiment.runner import subject_model
    from ketasim.io.results import OutputError, check_output_file
    from ketasim.io.sbml import build_document, write_sbml
    from ketasim.scenario import load_scenario
    from ketasim.signaling.simulate import parameter_vector, start_time

    reg = _registry(settings)
    try:
        check_output_file(out_file, force)
    except OutputError as e:
        _fail(str(e))
    try:
        sc = load_scenario(scenario)
        names = [a.name for a in sc.arms]
        name = arm or names[0]
        if name not in names:
            _fail(f"--arm: got {name!r}; expected one of {names}")
        a = sc.arms[names.index(name)]
        if a.taper is not None:
            _fail(f"arms[{names.index(name)}].taper: arm {name!r} tapers its doses to each "
                  "patient's ratings, which SBML's fixed events cannot hold; export an arm "
                  "without a taper (or write the patient's doses into its protocol)")
        if subject is not None and not (0 <= subject < a.n):
            _fail(f"--subject: got {subject}; expected 0..{a.n - 1} (arm {name!r} has n={a.n})")
        if region is not None and region not in KNOWN_REGIONS:
            _fail(f"--region: got {region!r}; expected one of {list(KNOWN_REGIONS)}")
        model = subject_model(sc, names.index(name), subject, registry=reg, region=region)
        times = np.array(sorted({t for s in a.assays for t in s.at} | {0.0}))
        doc = build_document(parameter_vector(model.cohort, model.events)[0], model.events,
                             0, start_time(model.events, times), f"{sc.name}_{a.name}")
        try:
            write_sbml(doc, out_file)
        except OSError as e:
            _fail(f"--out {out_file}: cannot write ({e.strerror})")
    except _user_errors() as e:
        _fail_in(scenario, e)
    _say(f"wrote {out_file}")


@app.command()
def query(
    run_dir: Path = typer.Argument(..., help="a run's output folder (run, validate, power, "
                                   "screen)"),
    sql: str | None = typer.Argument(None, help="one SQL query (DuckDB dialect) over the "
                                     "folder's tables: readouts, summary, stats, ..."),
    limit: int = typer.Option(50, "--limit", help="rows to print (0: all); --output "
                              "writes every row"),
    fmt: str | None = typer.Option(None, "--format", help="table, csv, json or parquet "
                                   "(default: table, or from --output's suffix)"),
    output: Path | None = typer.Option(None, "--output", help="write the full result to "
                                       "this file (csv, json or parquet) instead"),
    tables: bool = typer.Option(False, "--tables", help="list the tables with their "
                                "columns and row counts"),
    force: bool = typer.Option(False, "--force", help="replace an existing --output file"),
):
    """Answer SQL over a run folder's results (DuckDB over its Parquet and CSV files).

    Every .parquet and .csv file is a table named after the file (readouts.parquet ->
    readouts, summary.csv -> summary); a subfolder of Parquet parts is one table named
    after the folder. Only queries run: the run folder is never changed."""
    from ketasim.io.query import (
        FORMATS,
        QueryError,
        RunTables,
        check_output,
        head,
        output_format,
        write_csv,
        write_json,
        write_result,
    )
    from ketasim.io.results import OutputError, check_output_file

    try:
        if fmt is not None and fmt not in FORMATS:
            raise QueryError(f"--format: got {fmt!r}; expected one of {', '.join(FORMATS)}")
        if limit < 0:
            raise QueryError(f"--limit: got {limit}; expected 0 (all rows) or more")
        if tables and sql is not None:
            raise QueryError("--tables lists the tables and takes no SQL; give one or the "
                             "other")
        if not tables and sql is None:
            raise QueryError("no SQL given: pass a query, e.g. \"SELECT * FROM readouts "
                             "LIMIT 5\", or --tables to list the tables")
        if output is None and fmt == "parquet":
            raise QueryError("--format parquet needs --output FILE")
        if output is not None:
            fmt = output_format(output, fmt)
        with RunTables(run_dir) as db:
            left_out = list(db.unreadable.values())
            if output is not None:
                check_output(output, run_dir)
                try:
                    check_output_file(output, force, "--output")
                except OutputError as e:
                    raise QueryError(str(e)) from None
            if tables:
                import pyarrow as pa

                t = pa.Table.from_pandas(db.tables(), preserve_index=False)
                schema, batches = t.schema, iter(t.to_batches())
            else:
                schema, batches = db.batches(sql)
            if output is not None:
                write_result(schema, batches, output, fmt)
            else:
                shown, total = head(batches, limit or None)
    except QueryError as e:
        _fail(str(e))
    for why in left_out:  # after the query succeeded: a failing one names its own file
        err.print(f"note: left out {why}", highlight=False, soft_wrap=True, markup=False)
    if output is not None:
        _say(f"wrote {output}")
        return
    omitted = total - sum(b.num_rows for b in shown)
    note = (f"{omitted} more row{'s' * (omitted != 1)} omitted (--limit N for more, --limit 0 "
            "for all, --output FILE writes every row)") if omitted else ""
    if fmt in ("csv", "json"):
        (write_csv if fmt == "csv" else write_json)(schema, shown, sys.stdout)
        sys.stdout.flush()
        if note:
            err.print(note, highlight=False, soft_wrap=True, markup=False)
        return
    import math

    import pyarrow as pa
    from rich.markup import escape

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "[dim]NULL[/]"
        return escape(f"{v:.6g}" if isinstance(v, float) else str(v))

    numeric = {f.name for f in schema if pa.types.is_integer(f.type)
               or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)}
    shown_table = Table(show_lines=False)
    for name in schema.names:
        shown_table.add_column(escape(name),
                               justify="right" if name in numeric else "left",
                               overflow="fold")  # wrap, never cut, a value
    for b in shown:
        for rec in zip(*(c.to_pylist() for c in b.columns), strict=True):
            shown_table.add_row(*(cell(v) for v in rec))
    out.print(shown_table)
    out.print(f"{total} row{'s' * (total != 1)}" + (f"; {note}" if note else ""),
              highlight=False, soft_wrap=True, markup=False)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
