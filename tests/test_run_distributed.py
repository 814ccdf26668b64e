"""``ketasim run --scheduler`` (the contract of ARCHITECTURE.md): each arm's subjects go to
Dask workers in spans of one chunk (:func:`ketasim.experiment.runner.run_span`,
:func:`ketasim.sweep.core.dask_map`), and the run is the same as in this process, row
for row, whatever the split: spine imaging with its tracking tables, the circuit's
calcium imaging and TST, a second region, and virtual patients with covariates and a
trial design. The clusters here are in-process (threads; a Dask scheduler and two
single-threaded workers), started in a second or so; the sweep's tests cover worker
processes and clusters started from the command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

MOUSE = """\
name: distributed_mouse
species: mouse
seed: 31
arms:
  - name: cort_saline
    n: 5
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: saline, route: ip}
    assays: &a
      - {assay: two_photon_spines, at: [0h, 24h]}
      - {assay: tail_suspension, at: [3h], options: {cells: 20}}
      - {assay: western_blot, at: [2h]}
      - {assay: western_blot, at: [2h], region: striatum}
  - name: cort_ketamine
    n: 4
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: *a
"""

HUMAN = """\
name: distributed_trial
species: human
seed: 32
design:
  control: placebo
  baseline: -1d
  primary: 24h
  dropout: {rate_per_week: 0.5, mechanism: mar}
arms:
  - name: placebo
    n: 5
    population: &p
      screening: -7d
      inclusion: {madrs_min: 20}
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}
    assays: &m
      - {assay: madrs, at: [-7d, -1d, 24h, 72h]}
      - {assay: cadss, at: [40min]}
  - name: ketamine
    n: 6
    population: *p
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: *m
"""


#: a stratified trial: its arms share one pool, whose ids key the patients' streams
STRATIFIED = """\
name: distributed_stratified
species: human
seed: 33
arms:
""" + "".join(
    f"  - name: {name}\n    n: 6\n"
    "    population: {female: 0.6, failed_trials: 2.5, screening: -7d, "
    "inclusion: {madrs_min: 20}}\n"
    "    protocol: [{at: -60d, stress: major_depression, duration: 120d}, "
    f"{{at: 0h, drug: {drug}, route: iv, over: 40min}}]\n"
    "    assays: [{assay: madrs, at: [-7d, -1d, 24h]}]\n"
    for name, drug in (("placebo", "midazolam, dose: 0.045 mg/kg"),
                       ("ketamine", "ketamine, dose: 0.5 mg/kg"))) + (
    "design: {control: placebo, baseline: -1d, primary: 24h, stratify: [sex]}\n")


@pytest.fixture
def client(private_home):
    """An in-process cluster whose workers' folders are under the test's own TMPDIR."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0", silence_logs=50) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.readouts, b.readouts)
    assert a.kept.keys() == b.kept.keys()
    for assay in a.kept:
        for arm, got in b.kept[assay].items():
            want = a.kept[assay][arm]
            assert got.keys() == want.keys()
            for k, v in want.items():
                if isinstance(v, pd.DataFrame):
                    pd.testing.assert_frame_equal(got[k], v)
    for x, y in ((a.disposition, b.disposition), (a.patients, b.patients)):
        if x is None:
            assert y is None
        else:
            pd.testing.assert_frame_equal(x, y)
    assert a.steps == pytest.approx(b.steps)


@pytest.mark.parametrize("text", [MOUSE, HUMAN, STRATIFIED],
                         ids=["mouse", "trial", "stratified"])
def test_dask_run_equals_local_run(client, text):
    from ketasim.sweep.core import dask_map

    sc = load_scenario_text(text)
    registry = load_registry()
    local = simulate(sc, registry=registry)
    calls = []
    with dask_map(client) as map_tasks:
        def counting(fn, args_list, done=None):
            calls.append(len(args_list))
            return map_tasks(fn, args_list, done=done)

        # two subjects a span: every arm is split, so the spans' rows are joined
        seen: dict[str, list[float]] = {}
        remote = simulate(sc, registry=registry, chunk_subjects=2, map_tasks=counting,
                          arm_progress=lambda arm, f: seen.setdefault(arm, []).append(f))
    assert calls and calls[0] >= 6  # one call: every arm split into spans
    # each arm's progress climbs span by span to 1 (regions count as spans of the arm)
    assert set(seen) == {a.name for a in sc.arms}
    for fractions in seen.values():
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert len(fractions) >= 2
    _same(local, remote)


def _local_and_dask(tmp_path, args, dask, local=()):
    """Run the CLI command ``args`` into tmp_path/local (with ``local`` options) and
    tmp_path/dask (with the ``dask`` options); both must succeed. The two folders."""
    from typer.testing import CliRunner

    from ketasim.cli import app

    runner = CliRunner()
    out = []
    for name, extra in (("local", list(local)), ("dask", list(dask))):
        r = runner.invoke(app, [*map(str, args), "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
        out.append(tmp_path / name)
    return out


def _backends(*folders):
    return [json.loads((f / "manifest.json").read_text())["backend"] for f in folders]


def test_cli_run_with_scheduler(client, tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(MOUSE)
    a, b = _local_and_dask(tmp_path, ["run", scen],
                           ["--scheduler", client.scheduler.address])
    pd.testing.assert_frame_equal(pd.read_parquet(a / "readouts.parquet"),
                                  pd.read_parquet(b / "readouts.parquet"))
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    assert _backends(a, b) == [{"kind": "in-process"},
                               {"kind": "dask", "scheduler": client.scheduler.address}]


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "no-such-cluster"], "--scheduler: got 'no-such-cluster'"),
    (["--workers", "2"], "--workers: only with --scheduler local"),
    (["--scheduler", "local", "--workers", "0"], "--workers: got 0"),
])
def test_cli_run_scheduler_errors(tmp_path, private_home, args, message):
    from typer.testing import CliRunner

    from ketasim.cli import app

    scen = tmp_path / "s.yaml"
    scen.write_text(MOUSE)
    r = CliRunner().invoke(app, ["run", str(scen), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code != 0
    assert message in " ".join(r.output.split())
    assert not (tmp_path / "o").exists()


def test_power_on_dask_equals_local(client, tmp_path):
    """``ketasim power --scheduler``: the power table from a cluster is the local one."""
    scen = tmp_path / "s.yaml"
    scen.write_text(MOUSE.replace("      - {assay: two_photon_spines, at: [0h, 24h]}\n", "")
                    + "compare:\n  - {readout: pmtor_rel, assay: western_blot, at: 2h, "
                      "region: mpfc, arms: [cort_ketamine, cort_saline]}\n")
    a, b = _local_and_dask(tmp_path, ["power", scen, "--compare", "0", "--n", "3,5",
                                      "--cohorts", "20"],
                           ["--scheduler", client.scheduler.address])
    power = pd.read_csv(a / "power.csv")
    pd.testing.assert_frame_equal(power, pd.read_csv(b / "power.csv"))
    assert power["power"].iloc[-1] > 0.5


def test_validate_on_dask_equals_local(client, tmp_path):
    """``ketasim validate --scheduler``: replica runs, further seeds and the expectation
    from a cluster give the local validation.csv, byte for byte."""
    a, b = _local_and_dask(
        tmp_path, ["validate", "--only", "pk_mouse_ip,western_ketamine_rapamycin",
                   "--seeds", "1", "--expect", "2"],
        ["--scheduler", client.scheduler.address], ["--workers", "1"])
    assert (a / "validation.csv").read_bytes() == (b / "validation.csv").read_bytes()
    assert len(pd.read_csv(a / "validation.csv")) >= 3
    assert _backends(a, b) == [{"kind": "in-process"},
                               {"kind": "dask", "scheduler": client.scheduler.address}]


def test_validate_map_tasks_reports_each_run(client):
    """``validate(map_tasks=...)`` reports every replica run as it completes: replicas x
    (1 + seeds + 1 for the expectation) calls."""
    from ketasim.sweep.core import dask_map
    from ketasim.validation.run import validate

    seen = []
    with dask_map(client) as map_tasks:
        result = validate(["pk_mouse_ip", "western_ketamine_rapamycin"], seeds=1, expect=2,
                          registry=load_registry(), progress=seen.append,
                          map_tasks=map_tasks)
    assert sorted(seen) == sorted(["pk_mouse_ip", "western_ketamine_rapamycin"] * 3)
    assert result.results and result.expect == 2


def test_cli_run_on_local_worker_processes(tmp_path, private_home):
    """``--scheduler local --workers 2``: an embedded cluster of two worker processes
    (spawned: the arms, registry and covariates cross a process boundary as pickles, and
    each worker configures ketasim before it imports the runner); the same readouts."""
    scen = tmp_path / "s.yaml"
    scen.write_text(HUMAN)
    a, b = _local_and_dask(tmp_path, ["run", scen],
                           ["--scheduler", "local", "--workers", "2"])
    pd.testing.assert_frame_equal(pd.read_parquet(a / "readouts.parquet"),
                                  pd.read_parquet(b / "readouts.parquet"))
    assert _backends(b) == [{"kind": "dask", "scheduler": "local", "workers": 2}]


def test_screen_on_dask_equals_local(client, tmp_path):
    """``ketasim screen --scheduler``: the arms from a cluster give the local screen.csv;
    the manifest says where they ran."""
    a, b = _local_and_dask(tmp_path, ["screen", "--only", "memantine", "--n", "2",
                                      "--stress", "none"],
                           ["--scheduler", client.scheduler.address], ["--workers", "1"])
    assert (a / "screen.csv").read_bytes() == (b / "screen.csv").read_bytes()
    man = [json.loads((f / "manifest.json").read_text()) for f in (a, b)]
    assert [m["backend"]["kind"] for m in man] == ["in-process", "dask"]
    assert [m["workers"] for m in man] == [1, 0]
