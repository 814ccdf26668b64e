"""A trial at scale (issue 14, items 9 and 10): readouts do not depend on the chunk size,
and the trial benchmark (``benchmarks/bench_trial.py``) runs end to end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ketasim
from ketasim.params import load_registry

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_trial.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark module (for its scenario: one source for the trial's protocol)."""
    spec = importlib.util.spec_from_file_location("bench_trial", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a benchmark run as a subprocess: HOME, TMPDIR and MPLCONFIGDIR
    in ``tmp_path`` (numba, matplotlib and the report write caches there)."""
    env = dict(os.environ)
    for var in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        env[var] = str(tmp_path / var.lower())
        os.makedirs(env[var], exist_ok=True)
    return env


def test_trial_readouts_do_not_depend_on_chunk_size(bench):
    """A 30-patient two-arm version of the benchmark's trial gives bitwise identical
    readouts in chunks of 7 patients (7, 7, 1 per arm) and in one chunk."""
    registry = load_registry()
    sc = bench.trial_scenario({"placebo": 15, "ketamine": 15}, 2026)
    a = ketasim.simulate(sc, registry=registry, chunk_subjects=7).readouts
    b = ketasim.simulate(sc, registry=registry, chunk_subjects=30).readouts
    assert len(a) == 30 * len(bench.VISIT_DAYS) * 3
    assert set(a.arm) == {"placebo", "ketamine"} and set(a.assay) == {"madrs"}
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert np.array_equal(a.value.to_numpy().view(np.int64), b.value.to_numpy().view(np.int64))
    tot = a[a.readout == "madrs_total"].value
    assert tot.between(0, 60).all() and tot.nunique() > 5  # rated scores, not a constant
    # a readout's name and unit are one string object over all its rows (a new string
    # per row was most of a large trial's memory)
    for col in ("arm", "assay", "readout", "unit"):
        assert a[col].dtype == object
        assert len({id(v) for v in a[col]}) == a[col].nunique()
        assert all(type(v) is str for v in a[col])


def test_shared_strings():
    from ketasim.experiment.runner import shared_strings

    values = np.array(["a", "bb", "a", "c", "bb"])  # numpy strings, not str
    out = shared_strings(values)
    assert out.dtype == object and list(out) == ["a", "bb", "a", "c", "bb"]
    assert all(type(v) is str for v in out)
    assert out[0] is out[2] and out[1] is out[4]
    assert shared_strings(np.array([], dtype=object)).shape == (0,)


@pytest.mark.slow  # benchmark-like (about 11 s): runs with pytest -m slow, not in CI's subset
def test_bench_trial_smoke(tmp_path):
    """The benchmark with tiny arguments, in its own process: progress lines, the
    Parquet file it keeps with --out, and ``speedup: <ratio>`` as the last line."""
    env = bench_env(tmp_path)
    out = tmp_path / "readouts.parquet"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--patients", "6", "--piece", "2", "--ref-patients", "2",
         "--ref-method", "LSODA", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+(\.\d+)?", lines[-1]), lines[-1]
    assert float(lines[-1].split()[1]) > 0
    assert sum("patient-weeks/s" in line and "piece" in line for line in lines) == 4
    assert any(line.startswith("accuracy") for line in lines)
    assert re.search(r"peak RSS \d+ MB", proc.stdout)
    table = pd.read_parquet(out)
    assert len(table) == 6 * 7 * 3
    assert sorted(table.groupby("arm").subject.nunique()) == [2, 2]  # pieces of 2 and 1
    assert set(table.piece) == {0, 1}
    # identities are (arm, seed, subject): no patient appears twice
    assert table.groupby(["arm", "seed", "subject"]).ngroups == 6


@pytest.mark.slow  # benchmark-like (about 11 s): runs with pytest -m slow, not in CI's subset
def test_bench_run_memory_smoke(tmp_path):
    """The run-memory benchmark with tiny trials, in its own process: one line per n
    with its peak RSS, and ``peak RSS at n=<largest>: <MB> MB`` last."""
    env = bench_env(tmp_path)
    script = BENCH.with_name("bench_run_memory.py")
    proc = subprocess.run([sys.executable, str(script), "--ns", "3,6"], capture_output=True,
                          text=True, env=env, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"peak RSS at n=6: \d+ MB", lines[-1]), lines[-1]
    rows = [line for line in lines if line.startswith("n=")]
    assert len(rows) == 2 and "(63 readout rows)" in rows[0] and "(126 readout rows)" in rows[1]
    assert "kB/patient beyond n=3" in rows[1]
    for ns in ("1", "10,x"):
        bad = subprocess.run([sys.executable, str(script), "--ns", ns], capture_output=True,
                             text=True, env=env, timeout=60, check=False)
        assert bad.returncode == 2 and "--ns: got" in bad.stderr, bad.stderr
