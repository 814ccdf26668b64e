"""Parameter sweeps (ketasim.sweep.core; issue 17 items 1, 5, 6): --vary grids and sample
files, names and values, deterministic Parquet parts whatever the backend, the number of
workers or the chunk size, resuming after a deleted part, a killed worker or a killed
client, and a real Dask cluster (a scheduler and two worker processes started from the
command line).

Every sweep here runs a tiny scenario (a western blot on 3 + 2 mice, about 40 ms a
sample); the cluster tests start Dask processes (a few seconds each) and are not marked
slow, so CI's fast subset runs them."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text, scenario_hash
from ketasim.sweep.core import (
    SweepError,
    apply_sample,
    check_names,
    parse_vary,
    read_samples,
    read_sweep,
    run_sweep,
    sample_seed,
)

REPO = Path(__file__).resolve().parent.parent

SCENARIO = """\
name: tiny_sweep
species: mouse
seed: 11
arms:
  - name: ket
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: western_blot, at: [2h, 24h]}
  - name: sal
    n: 2
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: western_blot, at: [2h, 24h]}
"""
DOSE = "arms[ket].protocol[0].dose"
K_OFF = "sig.k_potentiation_off"  # range [0.005, 0.2] 1/h
VARY = [f"{DOSE}=1:12:24"]
CHUNK = 4  # the reference's chunk size: 6 parts


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def scenario():
    return load_scenario_text(SCENARIO)


@pytest.fixture(scope="module")
def samples():
    return parse_vary(VARY)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, scenario, samples):
    """The sweep run in this process on one thread, in chunks of CHUNK samples."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, samples, out, executor=ex, chunk_samples=CHUNK, progress=False)
    return out


def part_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "chunks").iterdir())}


def canonical_bytes(out: Path) -> bytes:
    """Every part concatenated and sorted by sample, written as deterministic Parquet."""
    table = pa.Table.from_pandas(read_sweep(out), preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def assert_same_sweep(out: Path, reference: Path) -> None:
    got, want = read_sweep(out), read_sweep(reference)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert canonical_bytes(out) == canonical_bytes(reference)


def wait_for(predicate, timeout: float, what: str, step: float = 0.005):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --------------------------------------------------------------------------- samples


def test_parse_vary_grid_and_lists():
    df = parse_vary([f"{K_OFF}=0.1:0.3:3", "arms[*].n=2,4", "arms[a].protocol[1].at=2"])
    assert list(df.columns) == [K_OFF, "arms[*].n", "arms[a].protocol[1].at"]
    assert len(df) == 6  # 3 x 2 x 1, the first spec varying slowest
    np.testing.assert_allclose(df[K_OFF], [0.1, 0.1, 0.2, 0.2, 0.3, 0.3])
    assert df["arms[*].n"].tolist() == [2, 4, 2, 4, 2, 4]
    assert df["arms[*].n"].dtype == np.int64 and df[K_OFF].dtype == np.float64
    assert df["arms[a].protocol[1].at"].tolist() == [2.0] * 6
    assert parse_vary("x=5:5:1")["x"].tolist() == [5.0]
    assert parse_vary(["x = 1e-3 , 2"])["x"].tolist() == [0.001, 2.0]


@pytest.mark.parametrize("spec", [
    K_OFF, "=1,2", "x=", "x=1:2", "x=1:2:0", "x=1:2:2.5", "x=a,b", "x=1,,2",
    "x=1:nan:3", "x=inf", "x=1:2:3:4",
])
def test_parse_vary_bad_specs(spec):
    with pytest.raises(SweepError) as err:
        parse_vary([spec])
    assert repr(spec) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SweepError, match=r"column 'arms\[a\].n': got 1.5; expected a whole"):
        parse_vary(["arms[a].n=1.5,2"])


def test_parse_vary_twice_and_empty():
    with pytest.raises(SweepError, match="varied twice"):
        parse_vary(["x=1", "x=2"])
    with pytest.raises(SweepError, match="nothing to vary"):
        parse_vary([])


def test_read_samples(tmp_path):
    good = tmp_path / "s.csv"
    good.write_text(f"{K_OFF},arms[ket].n\n0.1,3\n0.2,4\n\n")
    df = read_samples(good)
    assert df[K_OFF].tolist() == [0.1, 0.2] and df["arms[ket].n"].tolist() == [3, 4]
    assert df["arms[ket].n"].dtype == np.int64
    pq.write_table(pa.table({"sample": [0, 1], "x": [1.0, 2.0]}), tmp_path / "s.parquet")
    assert read_samples(tmp_path / "s.parquet").columns.tolist() == ["x"]  # sample dropped
    cases = {
        "bad.csv": ("x,y\n1,2\n3,abc\n", "line 3, column 'y': got 'abc'"),
        "short.csv": ("x,y\n1,2\n3\n", "line 3: got 1 fields"),
        "dup.csv": ("x,x\n1,2\n", "'x' appears twice"),
        "empty.csv": ("", "empty"),
        "header.csv": ("x\n", "no samples"),
        "n.csv": ("arms[ket].n\n2.5\n", "row 1, column 'arms[ket].n': got 2.5"),
        "s.txt": ("x\n1\n", "expected a .csv or .parquet"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SweepError, match=None) as err:
            read_samples(tmp_path / name)
        assert name in str(err.value) and message in str(err.value), str(err.value)
    pq.write_table(pa.table({"x": [1.0, None]}), tmp_path / "null.parquet")
    with pytest.raises(SweepError, match=r"null.parquet: row 2, column 'x': got a missing"):
        read_samples(tmp_path / "null.parquet")
    pq.write_table(pa.table({"x": ["a"]}), tmp_path / "text.parquet")
    with pytest.raises(SweepError, match=r"text.parquet: column 'x': got type string"):
        read_samples(tmp_path / "text.parquet")
    with pytest.raises(SweepError, match="no such file"):
        read_samples(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, message", [
    (K_OFF[:-1], "not a parameter of the registry"),
    ("arms[nope].n", "has no arm 'nope'"),
    ("arms[ket].protocol[3].dose", "has 1 protocol events"),
    ("arms[sal].protocol[0].dose", "saline event without a dose"),
    ("arms[ket].body_weight", "not a field a sweep can set"),
    ("arms[*].protocol[1].at", "no arm has an event at protocol[1]"),
    ("mean", "an output column"),
])
def test_check_names_bad(scenario, name, message):
    with pytest.raises(SweepError) as err:
        check_names(scenario, None, [K_OFF, name])
    text = str(err.value)
    assert repr(name) in text and message in text and "\n" not in text, text


def test_check_names_overlap_and_duplicates(scenario):
    check_names(scenario, None, [DOSE, "arms[*].n", "arms[*].protocol[0].at", K_OFF])
    with pytest.raises(SweepError, match=r"sets the same field as 'arms\[\*\].n'"):
        check_names(scenario, None, ["arms[*].n", "arms[ket].n"])
    with pytest.raises(SweepError, match="appears twice"):
        check_names(scenario, None, [K_OFF, K_OFF])


def test_apply_sample_is_pure_and_validates(scenario):
    registry = load_registry()
    before = scenario_hash(scenario)
    sc, reg = apply_sample(scenario, registry, {
        DOSE: 3.0, "arms[*].n": 4, "arms[ket].protocol[0].at": 0.5, K_OFF: 0.2})
    assert scenario_hash(scenario) == before  # inputs unchanged
    assert registry.value(K_OFF) != 0.2 and reg.value(K_OFF) == 0.2
    ev = sc.arm("ket").protocol[0]
    assert (ev.dose.value, ev.dose.unit, ev.at) == (3.0, "mg/kg", 0.5)
    assert [a.n for a in sc.arms] == [4, 4] and sc.arm("sal").protocol == scenario.arm(
        "sal").protocol
    same, reg2 = apply_sample(scenario, None, {K_OFF: 0.2})
    assert same is scenario and reg2.value(K_OFF) == 0.2
    p = registry[K_OFF]
    bad = [({DOSE: 0.0}, "expected a dose above zero"),
           ({"arms[ket].protocol[0].at": 9000.0}, "within 365 days"),
           ({"arms[ket].n": 2.5}, "whole number of subjects"),
           ({K_OFF: p.high * 2}, "within the parameter's range"),
           ({DOSE: float("nan")}, "finite number")]
    for row, message in bad:
        with pytest.raises(SweepError, match=message) as err:
            apply_sample(scenario, None, row)
        assert next(iter(row)) in str(err.value)


def test_sample_seed_depends_on_base_and_index_only():
    seeds = [sample_seed(11, k) for k in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(11, 5) == seeds[5] and sample_seed(12, 5) != seeds[5]


# --------------------------------------------------------------------------- sweeps


def test_folder_layout(reference, samples, scenario):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["n_samples"] == len(samples) == 24 and manifest["names"] == [DOSE]
    assert manifest["seed"] == scenario.seed and manifest["chunk_samples"] == CHUNK
    assert manifest["scenario"]["sha256"] == scenario_hash(scenario)
    assert manifest["columns"] == ["sample", DOSE, "arm", "assay", "readout", "time_h",
                                   "unit", "n", "mean", "sem"]
    assert sorted(part_bytes(reference)) == [
        f"part-{a:06d}-{a + CHUNK - 1:06d}.parquet" for a in range(0, 24, CHUNK)]
    stored = pq.read_table(reference / "samples.parquet").to_pandas()
    assert stored["sample"].tolist() == list(range(24))
    assert stored[DOSE].tolist() == samples[DOSE].tolist()
    df = read_sweep(reference)
    assert df.columns.tolist() == manifest["columns"]
    assert df["sample"].is_monotonic_increasing and set(df["sample"]) == set(range(24))
    # 2 arms x 6 readouts x 2 times per sample; the sample's dose on every row
    assert (df.groupby("sample").size() == 24).all()
    assert (df[DOSE] == samples[DOSE].to_numpy()[df["sample"]]).all()
    # the dose is applied: pERK at 2 h rises with the ketamine dose (latent trend)
    perk = df[(df["arm"] == "ket") & (df["readout"] == "perk_rel") & (df["time_h"] == 2.0)]
    assert np.corrcoef(perk[DOSE], perk["mean"])[0, 1] > 0.5
    assert pq.read_schema(next((reference / "chunks").iterdir())).metadata is None


def test_same_bytes_whatever_backend_and_chunks(tmp_path, reference, scenario, samples):
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as ex:
        run_sweep(scenario, samples, tmp_path / "procs", executor=ex, chunk_samples=CHUNK,
                  progress=False)
    assert part_bytes(tmp_path / "procs") == part_bytes(reference)
    with ThreadPoolExecutor(2) as ex:
        run_sweep(scenario, samples, tmp_path / "chunk5", executor=ex, chunk_samples=5,
                  progress=False)
        run_sweep(scenario, samples, tmp_path / "auto", executor=ex, progress=False)
    assert len(part_bytes(tmp_path / "chunk5")) == 5
    assert_same_sweep(tmp_path / "chunk5", reference)
    assert_same_sweep(tmp_path / "auto", reference)


def test_progress_bar_on_stderr(tmp_path, scenario, capsys):
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, parse_vary([f"{DOSE}=5,10"]), tmp_path / "p", executor=ex,
                  chunk_samples=1, progress=True)
    captured = capsys.readouterr()
    assert "sweep" in captured.err and "2/2" in captured.err and captured.out == ""


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self):
        super().__init__(1)
        self.spans: list[tuple[int, int]] = []

    def submit(self, fn, *args, **kwargs):
        self.spans.append((args[3], args[3] + len(args[4]) - 1))  # (first, last)
        return super().submit(fn, *args, **kwargs)


def test_resume_recomputes_only_missing_parts(tmp_path, reference, scenario, samples):
    out = tmp_path / "sweep"
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, samples, out, executor=ex, chunk_samples=CHUNK, progress=False)
    chunks = out / "chunks"
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.iterdir()}
    (chunks / "part-000004-000007.parquet").unlink()
    # a killed run's half-written temporary file, and a part cut short (never renamed
    # into place by ketasim, but a copy may be): both are ignored and cleaned up
    (chunks / ".part-000008-000011.parquet.tmp-999-deadbeef").write_bytes(b"PAR1\x00half")
    data = (chunks / "part-000016-000019.parquet").read_bytes()
    (chunks / "part-000016-000019.parquet").write_bytes(data[: len(data) // 2])
    with CountingExecutor() as ex:
        run_sweep(scenario, samples, out, executor=ex, progress=False)
    assert sorted(ex.spans) == [(4, 7), (16, 19)]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.iterdir()}
    assert set(after) == set(stats)  # the temporary file is gone
    for name in set(stats) - {"part-000004-000007.parquet", "part-000016-000019.parquet"}:
        assert after[name] == stats[name], name  # untouched
    assert part_bytes(out) == part_bytes(reference)
    with CountingExecutor() as ex:  # complete: nothing to do
        run_sweep(scenario, samples, out, executor=ex, progress=False)
    assert ex.spans == []


def test_resume_with_another_chunk_size(tmp_path, reference, scenario, samples):
    out = tmp_path / "sweep"
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, samples, out, executor=ex, chunk_samples=CHUNK, progress=False)
    for name in ("part-000008-000011.parquet", "part-000012-000015.parquet"):
        (out / "chunks" / name).unlink()
    with CountingExecutor() as ex:
        run_sweep(scenario, samples, out, executor=ex, chunk_samples=3, progress=False)
    assert ex.spans == [(8, 10), (11, 13), (14, 15)]
    assert_same_sweep(out, reference)


def test_a_folder_of_another_sweep_is_one_error(tmp_path, reference, scenario, samples):
    out = tmp_path / "sweep"
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, samples.iloc[:4], out, executor=ex, chunk_samples=2,
                  progress=False)
        other = load_scenario_text(SCENARIO.replace("n: 3", "n: 4"))
        cases = [
            ({"scenario": other, "samples": samples.iloc[:4]}, "another scenario"),
            ({"scenario": scenario, "samples": samples.iloc[:4], "seed": 99}, "another seed"),
            ({"scenario": scenario, "samples": samples.iloc[:5]}, "another number of samples"),
            ({"scenario": scenario, "samples": samples.iloc[:4] * 2}, "another samples"),
            ({"scenario": scenario, "samples": samples.iloc[:4], "outputs": "readouts"},
             "another outputs"),
            ({"scenario": scenario, "samples": samples.iloc[:4],
                  "registry": load_registry().with_values({K_OFF: 0.2})},
             "another parameter registry"),
        ]
        for kw, message in cases:
            with pytest.raises(SweepError, match=message) as err:
                run_sweep(out=out, executor=ex, progress=False, **kw)
            assert str(out) in str(err.value) and "\n" not in str(err.value)
        stray = tmp_path / "stray"
        stray.mkdir()
        (stray / "notes.txt").write_text("mine")
        with pytest.raises(SweepError, match="holds no sweep"):
            run_sweep(scenario, samples.iloc[:2], stray, executor=ex, progress=False)
    assert (stray / "notes.txt").read_text() == "mine"
    (out / "chunks" / "part-000000-000001.parquet").unlink()
    with pytest.raises(SweepError, match="have no results yet"):
        read_sweep(out)
    assert sorted(read_sweep(out, allow_partial=True)["sample"].unique()) == [2, 3]


def test_bad_values_fail_before_any_work(tmp_path, scenario):
    with ThreadPoolExecutor(1) as ex:
        with pytest.raises(SweepError, match=r"samples row 2 \(sample 2\): arms\[ket\].n: "):
            run_sweep(scenario, pd.DataFrame({"arms[ket].n": [2, 3, 0]}), tmp_path / "x",
                      executor=ex, progress=False)
        with pytest.raises(SweepError, match="not a parameter of the registry"):
            run_sweep(scenario, pd.DataFrame({"sig.nope": [1.0]}), tmp_path / "x",
                      executor=ex, progress=False)
    assert not (tmp_path / "x").exists()


def test_readouts_output(tmp_path, scenario):
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, parse_vary(["arms[*].n=2,3"]), tmp_path / "r", executor=ex,
                  outputs="readouts", chunk_samples=1, progress=False)
    df = read_sweep(tmp_path / "r")
    assert df.columns.tolist() == ["sample", "arms[*].n", "arm", "subject", "assay",
                                   "readout", "time_h", "value", "unit"]
    subjects = df.groupby(["sample", "arm"])["subject"].nunique()
    assert subjects.tolist() == [2, 2, 3, 3]


# --------------------------------------------------------------------------- Dask


@pytest.mark.slow  # about 9 s: the same bytes on Dask are test_real_cluster_same_bytes's
def test_embedded_local_cluster(tmp_path, reference, scenario, samples):
    """No executor, no scheduler: run_sweep starts a LocalCluster of its own (two worker
    processes) and closes it; the parts are byte for byte the in-process run's."""
    import distributed

    run_sweep(scenario, samples, tmp_path / "sweep", workers=2, chunk_samples=CHUNK,
              progress=False)
    assert part_bytes(tmp_path / "sweep") == part_bytes(reference)
    with pytest.raises(ValueError):
        distributed.get_client()  # the sweep's client is closed (none left behind)


@pytest.mark.slow  # about 9 s: a worker killed mid-sweep
def test_killed_worker_is_rescheduled(tmp_path, reference, scenario, samples):
    """A LocalCluster of two worker processes; one is killed (SIGKILL) while it runs a
    chunk; its nanny restarts it, Dask reruns the chunk, and the sweep is the same."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        out = tmp_path / "sweep"
        errors = []

        def sweep():
            try:
                run_sweep(scenario, samples, out, scheduler=cluster.scheduler_address,
                          chunk_samples=1, progress=False)
            except Exception as e:  # noqa: BLE001 (reported by the assertion below)
                errors.append(e)

        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)  # worker address -> process id
        thread = threading.Thread(target=sweep)
        thread.start()
        try:
            wait_for(lambda: any((out / "chunks").glob("part-*")) if out.exists() else
                     False, 120, "the first part")
            busy = wait_for(lambda: [w for w, keys in client.processing().items()
                                     if any("ketasim-sweep" in str(k) for k in keys)],
                            10, "a worker running a chunk")
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed_at = len(list((out / "chunks").glob("part-*")))
        finally:
            thread.join(120)
        assert not errors, errors
        assert killed_at < len(samples)
        assert pids[busy[0]] not in client.run(os.getpid).values()  # a new process
        assert part_bytes(out).keys() == {f"part-{k:06d}-{k:06d}.parquet" for k in range(24)}
        assert_same_sweep(out, reference)


_CLIENT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import ketasim
ketasim.configure()
from ketasim.scenario import load_scenario_text
from ketasim.sweep.core import parse_vary, run_sweep
with ThreadPoolExecutor(1) as ex:
    run_sweep(load_scenario_text(sys.argv[1]), parse_vary(sys.argv[3:]), sys.argv[2],
              executor=ex, chunk_samples=1, progress=False)
"""


def test_killed_client_resumes(tmp_path, reference, scenario, samples):
    """The sweep runs in a child process, killed (SIGKILL, with everything it started)
    once its first part is written; a rerun completes it with the same result."""
    out = tmp_path / "sweep"
    child = subprocess.Popen([sys.executable, "-c", _CLIENT, SCENARIO, str(out), *VARY],
                             cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        wait_for(lambda: child.poll() is not None or (
            out.exists() and any((out / "chunks").glob("part-*"))), 120, "the first part")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode()
    written = sorted(p.name for p in (out / "chunks").glob("part-*"))
    assert 1 <= len(written) < len(samples)
    with CountingExecutor() as ex:
        run_sweep(scenario, samples, out, executor=ex, progress=False)
    assert len(ex.spans) == len(samples) - len(written)  # none lost, none done twice
    assert_same_sweep(out, reference)


def _stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    t_end = time.monotonic() + 15
    for p in processes:
        try:
            p.wait(max(0.1, t_end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_real_cluster_same_bytes(tmp_path, reference, scenario, samples):
    """A scheduler and two single-threaded workers started with the ``dask`` command line
    (as on a cluster), the sweep sent to the scheduler's address: the parts are byte for
    byte those of the in-process run."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command line is not installed")
    scheduler_file = tmp_path / "scheduler.json"
    log = tmp_path / "dask.log"
    processes = []
    with open(log, "wb") as logf:
        try:
            processes.append(subprocess.Popen(
                [str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                cwd=tmp_path, start_new_session=True, stdout=logf, stderr=logf))
            wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0,
                     30, "the scheduler file", step=0.05)
            for k in range(2):
                processes.append(subprocess.Popen(
                    [str(dask), "worker", "--scheduler-file", str(scheduler_file),
                     "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                     "--host", "127.0.0.1", "--local-directory", str(tmp_path / f"w{k}")],
                    cwd=REPO, start_new_session=True, stdout=logf, stderr=logf))
            address = json.loads(scheduler_file.read_text())["address"]
            assert address.startswith("tcp://127.0.0.1:")
            import distributed

            with distributed.Client(address, timeout=30) as client:
                client.wait_for_workers(2, timeout=60)
                run_sweep(scenario, samples, tmp_path / "address", scheduler=address,
                          chunk_samples=CHUNK, progress=False)
                # the scheduler file, and a client passed as the executor, work alike
                run_sweep(scenario, samples, tmp_path / "file", scheduler=scheduler_file,
                          chunk_samples=CHUNK, progress=False)
                run_sweep(scenario, samples, tmp_path / "client", executor=client,
                          chunk_samples=CHUNK, progress=False)
                assert len(client.scheduler_info()["workers"]) == 2
        finally:
            _stop(processes)
    assert all(p.poll() is not None for p in processes)  # all stopped
    for name in ("address", "file", "client"):
        assert part_bytes(tmp_path / name) == part_bytes(reference), (
            name, log.read_text(errors="replace")[-2000:])
