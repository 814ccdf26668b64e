"""Review of parameter sweeps (ketasim.sweep.core and ``ketasim sweep``) against the module
docstring's contract, with independent expectations: sample parsing and checking, the
names' semantics (``arms[*]``), seeds (per-sample and common), the same table whatever the
chunk size, the number of workers or the backend (threads, spawned processes, an
in-process Dask cluster), resuming after deleted / truncated / corrupted / foreign parts,
folders of other sweeps refused with nothing overwritten, the manifest's fields,
``read_sweep`` and the command line.

The defects this review found (once ``xfail(strict=True)`` tests) are fixed; the tests
under ``# fixed (was BUG): ...`` comments guard the fixes. Every sweep runs a tiny scenario (a western blot at 2 h on
3 + 2 mice: 12 summary rows a sample)."""

from __future__ import annotations

import json
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ketasim.analysis.stats import summarize
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.provenance import registry_digest
from ketasim.scenario import load_scenario_text, scenario_hash
from ketasim.sweep.core import (
    SweepError,
    apply_sample,
    dask_map,
    parse_vary,
    read_samples,
    read_sweep,
    run_sweep,
    sample_seed,
)

SCENARIO = """\
name: review_sweep
species: mouse
seed: 23
arms:
  - name: ket
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 500 ug/kg, route: ip}
    assays:
      - {assay: western_blot, at: [2h]}
  - name: sal
    n: 2
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: western_blot, at: [2h]}
"""
K_OFF = "sig.k_potentiation_off"  # range [0.005, 0.2] 1/h
DOSE = "arms[ket].protocol[0].dose"
ROWS = 12  # summary rows a sample: 2 arms x 6 western-blot readouts x 1 time

pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def scenario():
    return load_scenario_text(SCENARIO)


@pytest.fixture(scope="module")
def samples():
    # 6 samples: K_OFF slowest, the dose fastest; sample 4 repeats sample 3's K_OFF
    return parse_vary([f"{K_OFF}=0.02,0.1", f"{DOSE}=0.25:0.75:3"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, scenario, samples):
    """The sweep on one thread, one sample a part."""
    out = tmp_path_factory.mktemp("review_ref") / "sweep"
    with ThreadPoolExecutor(1) as ex:
        run_sweep(scenario, samples, out, executor=ex, chunk_samples=1, progress=False)
    return out


@pytest.fixture(scope="module")
def ref_table(reference):
    return read_sweep(reference)


def part_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "chunks").iterdir())}


def folder_state(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


class CountingExecutor(ThreadPoolExecutor):
    """One thread; records the (first, last) of every chunk submitted."""

    def __init__(self):
        super().__init__(1)
        self.spans: list[tuple[int, int]] = []

    def submit(self, fn, *args, **kwargs):
        self.spans.append((args[3], args[3] + len(args[4]) - 1))
        return super().submit(fn, *args, **kwargs)


def one_sweep(scenario, samples, out, chunk=1, **kw):
    with ThreadPoolExecutor(1) as ex:
        return run_sweep(scenario, samples, out, executor=ex, chunk_samples=chunk,
                         progress=False, **kw)


# --------------------------------------------------------------------------- samples


def test_parse_vary_is_the_linspace_grid_first_spec_slowest():
    g = parse_vary([f"{K_OFF}=0.01:0.19:4", "arms[*].n=3,1", "arms[a].protocol[0].at=-2.5"])
    assert g.columns.tolist() == [K_OFF, "arms[*].n", "arms[a].protocol[0].at"]
    want = [(a, b, -2.5) for a in np.linspace(0.01, 0.19, 4) for b in (3, 1)]
    assert [tuple(r) for r in g.itertuples(index=False)] == want  # exact values
    assert g.dtypes.tolist() == [np.float64, np.int64, np.float64]


@pytest.mark.parametrize("spec, fragment", [
    ("arms[a].n=1:2:3", "got 1.5"),  # 1, 1.5, 2: not whole numbers of subjects
    (f"{K_OFF}=0.1,nan", "'nan'"),
    (f"{K_OFF}=0.1:-inf:2", "LO:HI:N"),
    (f"{K_OFF}=0.1:0.2:-1", "LO:HI:N"),
    (f"{K_OFF}", "LO:HI:N"),
])
def test_parse_vary_bad_spec_is_one_error(spec, fragment):
    with pytest.raises(SweepError) as err:
        parse_vary([spec])
    assert fragment in str(err.value) and "\n" not in str(err.value)


# fixed (was BUG): an arm's n beyond int64 (1e19) is cast to -9223372036854775808 (numpy
#   'invalid value' warning) instead of one SweepError naming the value
def test_parse_vary_huge_n_is_one_error_naming_the_value():
    with pytest.raises(SweepError, match=r"1e\+19"):
        parse_vary(["arms[ket].n=1e19"])


def test_read_samples_of_a_sweeps_own_samples_file_resumes_it(tmp_path, scenario, samples,
                                                              reference, ref_table):
    stored = read_samples(reference / "samples.parquet")  # 'sample' dropped
    pd.testing.assert_frame_equal(stored, samples)
    # same samples, same identity: the complete folder resumes with nothing to do
    with CountingExecutor() as ex:
        run_sweep(scenario, stored, reference, executor=ex, progress=False)
    assert ex.spans == []
    pd.testing.assert_frame_equal(read_sweep(reference), ref_table)
    # and a CSV written from it gives the same samples (n stays int64)
    csv = tmp_path / "s.csv"
    frame = pd.DataFrame({K_OFF: [0.05, 0.1], "arms[ket].n": [2, 4]})
    frame.to_csv(csv, index=False)
    got = read_samples(csv)
    pd.testing.assert_frame_equal(got, frame.astype({K_OFF: float, "arms[ket].n": np.int64}))


@pytest.mark.parametrize("text, fragment", [
    (f"{K_OFF},{DOSE}\n0.05,1\n0.06,1,7\n", "line 3: got 3 fields; expected 2"),
    (f"{K_OFF},{DOSE}\n0.05,1\n0.06\n", "line 3: got 1 fields; expected 2"),
    (f"{K_OFF},{DOSE}\n0.05,1\n0.06,nan\n", f"line 3, column '{DOSE}': got 'nan'"),
    (f"{K_OFF},{DOSE}\n0.05,1\n0.06,\n", f"line 3, column '{DOSE}': got ''"),
    (f"{K_OFF},{K_OFF}\n0.05,0.06\n", "appears twice"),
    (f"{K_OFF},\n0.05,0.06\n", "column 2: got ''"),
    (f"sample,{K_OFF}\n1,0.05\n", "row 1, column 'sample': got"),
])
def test_read_samples_bad_csv_is_one_error_naming_file_line_column(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SweepError) as err:
        read_samples(path)
    msg = str(err.value)
    assert str(path) in msg and fragment in msg and "\n" not in msg, msg


# fixed (was BUG): read_samples' errors show numpy reprs of the bad value ('got
#   np.float64(1.0)', 'got np.float64(inf)') instead of the number
def test_read_samples_errors_show_plain_numbers(tmp_path):
    (tmp_path / "s.csv").write_text(f"sample,{K_OFF}\n1,0.05\n")
    with pytest.raises(SweepError, match=r"column 'sample': got 1\.0; expected 0"):
        read_samples(tmp_path / "s.csv")
    pq.write_table(pa.table({K_OFF: [0.1, float("inf")]}), tmp_path / "inf.parquet")
    with pytest.raises(SweepError, match=rf"row 2, column '{K_OFF}': got inf; expected"):
        read_samples(tmp_path / "inf.parquet")


# fixed (was BUG): read_samples reads CSV as plain utf-8: a UTF-8 BOM (Excel's 'CSV UTF-8')
#   becomes part of the first name, which every other CSV reader of ketasim strips
#   (utf-8-sig)
def test_read_samples_accepts_a_utf8_bom(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeff{K_OFF},arms[ket].n\n0.05,2\n".encode())
    assert read_samples(path).columns.tolist() == [K_OFF, "arms[ket].n"]


def test_read_samples_parquet_types_and_nulls(tmp_path):
    pq.write_table(pa.table({"arms[ket].n": pa.array([2, 3], pa.int32()),
                             K_OFF: pa.array([0.1, 0.2], pa.float32())}), tmp_path / "a.pq")
    got = read_samples(tmp_path / "a.pq")
    assert got.dtypes.tolist() == [np.int64, np.float64] and got["arms[ket].n"].tolist() == [2, 3]
    pq.write_table(pa.table({K_OFF: [0.1, float("inf")]}), tmp_path / "inf.parquet")
    with pytest.raises(SweepError, match=rf"inf.parquet: row 2, column '{K_OFF}': got "):
        read_samples(tmp_path / "inf.parquet")
    pq.write_table(pa.table({K_OFF: [True]}), tmp_path / "b.parquet")
    with pytest.raises(SweepError, match="got type bool; expected numbers"):
        read_samples(tmp_path / "b.parquet")


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("frame, fragment", [
    (pd.DataFrame({K_OFF: [0.05, np.nan]}), f"samples row 1 (sample 1): {K_OFF}: got nan"),
    (pd.DataFrame({K_OFF: [0.05, 0.1, 0.5]}),
     (f"samples row 2 (sample 2): {K_OFF}: got 0.5; expected a value within the "
      "parameter's range [0.005, 0.2]")),
    (pd.DataFrame({"arms[*].n": [2, 0]}), "samples row 1 (sample 1): arms[*].n: got 0.0"),
    (pd.DataFrame({"arms[ket].n": [100001]}),
     ("arms[ket].n: got 100001.0; expected a whole number of subjects from 1 to 100000")),
    (pd.DataFrame({DOSE: [1.0, -0.5]}), f"samples row 1 (sample 1): {DOSE}: got -0.5"),
    (pd.DataFrame({"arms[ket].protocol[0].at": [0.0, np.inf]}),
     "samples row 1 (sample 1): arms[ket].protocol[0].at: got inf"),
    (pd.DataFrame({"arms[ket].protocol[1].dose": [1.0]}),
     "arm 'ket' has 1 protocol events; expected an index from 0 to 0"),
    (pd.DataFrame({"arms[sal].protocol[0].dose": [1.0]}),
     "protocol[0] of arm 'sal' is a saline event without a dose"),
    (pd.DataFrame({"arms[*].protocol[1].at": [1.0]}), "no arm has an event at protocol[1]"),
    (pd.DataFrame([[0.05, 0.06]], columns=[K_OFF, K_OFF]), f"name '{K_OFF}' appears twice"),
    (pd.DataFrame({"arms[*].n": [2], "arms[sal].n": [3]}), "sets the same field"),
    (pd.DataFrame({K_OFF: [True, False]}), "got dtype bool"),
    (pd.DataFrame({K_OFF: ["0.1"]}), "got dtype object"),
    (pd.DataFrame({"n": [1.0]}), "an output column"),
])
def test_bad_samples_are_one_error_before_anything_is_written(tmp_path, scenario, frame,
                                                              fragment):
    out = tmp_path / "out"
    with pytest.raises(SweepError) as err:
        one_sweep(scenario, frame, out)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg, msg
    assert not out.exists()


# fixed (was BUG): a non-whole n in a samples DataFrame is reported as 'samples: row 3'
#   (1-based) for sample 2, never naming the sample, unlike every other value error
#   ('samples row 2 (sample 2)')
def test_non_whole_n_names_the_sample(tmp_path, scenario):
    with pytest.raises(SweepError, match=r"sample 2\b.*arms\[ket\]\.n.*2\.5"):
        one_sweep(scenario, pd.DataFrame({"arms[ket].n": [2.0, 3.0, 2.5]}), tmp_path / "o")


# fixed (was BUG): an infinite n in a samples DataFrame is cast to int64 (numpy 'invalid
#   value' warning, then 'got -9.2e18'): not one SweepError naming sample 1 and inf
def test_infinite_n_is_one_error_naming_sample_and_value(tmp_path, scenario):
    with pytest.raises(SweepError, match=r"sample 1\b.*arms\[ket\]\.n: got inf"):
        one_sweep(scenario, pd.DataFrame({"arms[ket].n": [2.0, np.inf]}), tmp_path / "o")


def test_a_sample_the_scenario_rejects_names_sample_name_and_value(tmp_path, scenario):
    """A dose of 0 for ketamine passes the column checks and is refused by the scenario's
    validation; the error names the sample, the name and the value, and no part holds a
    half chunk or its samples."""
    out = tmp_path / "out"
    frame = pd.DataFrame({DOSE: [0.25, 0.5, 0.75, 1.0, 0.0, 1.25]})
    with pytest.raises(SweepError) as err:
        one_sweep(scenario, frame, out, chunk=2)
    msg = str(err.value)
    assert msg.startswith("sample 4: ") and f"{DOSE}=0.0" in msg and "above zero" in msg, msg
    # (nothing may have been written at all: the samples are checked before any work)
    chunks = out / "chunks"
    names = sorted(p.name for p in chunks.iterdir()) if chunks.is_dir() else []
    assert all(not n.startswith(".") for n in names)  # no temporary file left
    assert "part-000004-000005.parquet" not in names
    for n in names:  # whatever was written is complete and readable
        t = pq.read_table(out / "chunks" / n)
        first, last = (int(x) for x in n[5:-8].split("-"))
        assert sorted(set(t.column("sample").to_pylist())) == list(range(first, last + 1))


# fixed (was BUG): a sample whose changed scenario fails validation (here a zero ketamine
#   dose) is found only when its chunk runs: the manifest and earlier parts are already
#   written, and the folder can never be completed or reused for corrected samples
def test_a_sample_the_scenario_rejects_fails_before_any_work(tmp_path, scenario):
    out = tmp_path / "out"
    with pytest.raises(SweepError, match=r"sample 2\b.*dose.*0\.0"):
        one_sweep(scenario, pd.DataFrame({DOSE: [0.25, 0.5, 0.0, 1.0]}), out)
    assert not out.exists()


# --------------------------------------------------------------------------- names


def test_arms_star_semantics_and_canonical_units(scenario):
    sc, reg = apply_sample(scenario, None, {"arms[*].n": 4, "arms[*].protocol[0].dose": 0.125,
                                            "arms[*].protocol[0].at": 1.5})
    assert [a.n for a in sc.arms] == [4, 4]
    ket, sal = sc.arm("ket").protocol[0], sc.arm("sal").protocol[0]
    # the file's 500 ug/kg is 0.5 mg/kg: the sample's 0.125 is mg/kg, the unit unchanged
    assert scenario.arm("ket").protocol[0].dose.value == 0.5
    assert (ket.dose.value, ket.dose.unit) == (0.125, "mg/kg")
    assert sal.dose is None and sal.drug == "saline"  # saline without a dose: left as is
    assert ket.at == sal.at == 1.5  # every arm with a protocol[0]
    assert reg is load_registry()


def test_protocol_index_counts_events_in_time_order():
    text = SCENARIO.replace(
        "      - {at: 0h, drug: ketamine, dose: 500 ug/kg, route: ip}\n",
        "      - {at: 24h, drug: ketamine, dose: 500 ug/kg, route: ip}\n"
        "      - {at: -10d, stress: cort, duration: 10d}\n")
    sc = load_scenario_text(text)
    assert [e.kind for e in sc.arm("ket").protocol] == ["stress", "drug"]
    new, _ = apply_sample(sc, None, {"arms[ket].protocol[1].dose": 2.0,
                                     "arms[ket].protocol[1].at": 30.0})
    ev = new.arm("ket").protocol[1]
    assert (ev.drug, ev.at, ev.dose.value) == ("ketamine", 30.0, 2.0)
    # arms[*] skips the arm whose protocol[1] does not exist (sal has one event)
    new, _ = apply_sample(sc, None, {"arms[*].protocol[1].at": 48.0})
    assert new.arm("ket").protocol[1].at == 48.0 and new.arm("sal").protocol == sc.arm(
        "sal").protocol
    with pytest.raises(SweepError, match=r"protocol\[0\] of arm 'ket' is a 'cort' stress"):
        apply_sample(sc, None, {"arms[ket].protocol[0].dose": 1.0})
    # a moved event must stay within 365 days of time 0
    with pytest.raises(SweepError, match=r"arms\[ket\]\.protocol\[1\]\.at=9000\.0: .*365 days"):
        apply_sample(sc, None, {"arms[ket].protocol[1].at": 9000.0})


def test_design_ratio_is_checked_for_a_changed_n():
    sc = load_scenario_text("""\
name: trial
species: human
seed: 32
design: {control: placebo, baseline: -1d, primary: 24h, randomisation: {placebo: 1, ketamine: 2}}
arms:
  - name: placebo
    n: 2
    protocol: [{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}]
    assays: [{assay: madrs, at: [-1d, 24h]}]
  - name: ketamine
    n: 4
    protocol: [{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}]
    assays: [{assay: madrs, at: [-1d, 24h]}]
""")
    ok, _ = apply_sample(sc, None, {"arms[placebo].n": 3, "arms[ketamine].n": 6})
    assert [a.n for a in ok.arms] == [3, 6]
    with pytest.raises(SweepError) as err:
        apply_sample(sc, None, {"arms[*].n": 4})
    assert "arms[*].n=4" in str(err.value) and "ratio 1:2" in str(err.value)
    # an infusion's 'over' survives a moved start (40 min, not re-read as hours)
    moved, _ = apply_sample(sc, None, {"arms[ketamine].protocol[0].at": 0.5})
    assert moved.arm("ketamine").protocol[0].over == pytest.approx(40 / 60, abs=0)


def test_sample_seed_is_the_documented_seed_sequence():
    for base, k in ((0, 0), (23, 5), (2**63 - 1, 123456)):
        state = np.random.SeedSequence(base, spawn_key=(k,)).generate_state(1, np.uint64)[0]
        assert sample_seed(base, k) == int(state) >> 1


# --------------------------------------------------------------------------- numbers


def test_each_sample_is_its_own_run_with_its_seed(scenario, samples, reference, ref_table):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["seed"] == scenario.seed == 23
    for k in (0, 4):
        row = samples.iloc[k].to_dict()
        sc_k, reg_k = apply_sample(scenario, None, row)
        direct = summarize(simulate(sc_k, seed=sample_seed(23, k), registry=reg_k).readouts)
        got = ref_table[ref_table["sample"] == k]
        assert len(got) == ROWS and (got[K_OFF] == row[K_OFF]).all()
        assert (got[DOSE] == row[DOSE]).all()
        cols = ["arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem"]
        pd.testing.assert_frame_equal(got[cols].reset_index(drop=True),
                                      direct[cols].reset_index(drop=True), check_dtype=False)


def test_seed_argument_overrides_the_scenarios(tmp_path, scenario, samples, ref_table):
    out = one_sweep(scenario, samples.iloc[:2], tmp_path / "s", seed=7, outputs="readouts")
    assert json.loads((out / "manifest.json").read_text())["seed"] == 7
    df = read_sweep(out)
    sc1, reg1 = apply_sample(scenario, None, samples.iloc[1].to_dict())
    direct = simulate(sc1, seed=sample_seed(7, 1), registry=reg1).readouts
    got = df[df["sample"] == 1][direct.columns.tolist()].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, direct.reset_index(drop=True), check_dtype=False)
    assert df["subject"].dtype == np.int64
    # not the numbers of the scenario's seed
    mean7 = summarize(df[df["sample"] == 1].drop(columns=["sample", K_OFF, DOSE]))["mean"]
    assert not np.array_equal(mean7.to_numpy(), ref_table[ref_table["sample"] == 1]["mean"])


def test_common_seed(tmp_path, scenario):
    frame = pd.DataFrame({K_OFF: [0.05, 0.05, 0.1], "arms[*].n": [2, 2, 3]})
    common = read_sweep(one_sweep(scenario, frame, tmp_path / "c", chunk=2, common_seed=True))
    own = read_sweep(one_sweep(scenario, frame, tmp_path / "o", chunk=2))
    def by(df, k):
        return df[df["sample"] == k][["mean", "sem"]].to_numpy()

    assert np.array_equal(by(common, 0), by(common, 1))  # equal values, same numbers
    assert not np.array_equal(by(own, 0), by(own, 1))  # independent replicates
    sc0, reg0 = apply_sample(scenario, None, {K_OFF: 0.05, "arms[*].n": 2})
    direct = summarize(simulate(sc0, seed=scenario.seed, registry=reg0).readouts)
    assert np.array_equal(by(common, 0), direct[["mean", "sem"]].to_numpy())  # the base seed
    rules = [json.loads((tmp_path / x / "manifest.json").read_text())["seed_rule"]
             for x in "co"]
    assert rules[0] != rules[1] and "common" in rules[0]
    # the same folder with the other seed rule is another sweep
    before = folder_state(tmp_path / "c")
    with pytest.raises(SweepError, match="another seed rule"):
        one_sweep(scenario, frame, tmp_path / "c", chunk=2)
    assert folder_state(tmp_path / "c") == before


# --------------------------------------------------------------------------- backends


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"temporary-directory": str(tmp_path_factory.mktemp("dask"))}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                     dashboard_address=":0", silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_same_table_whatever_chunks_workers_and_backend(tmp_path, scenario, samples,
                                                        reference, ref_table, dask_client):
    # one sample a part: the same bytes on two threads and on a Dask cluster
    with ThreadPoolExecutor(2) as ex:
        run_sweep(scenario, samples, tmp_path / "t2", executor=ex, chunk_samples=1,
                  progress=False)
    run_sweep(scenario, samples, tmp_path / "dask", executor=dask_client, chunk_samples=1,
              progress=False)
    assert part_bytes(tmp_path / "t2") == part_bytes(reference)
    assert part_bytes(tmp_path / "dask") == part_bytes(reference)
    # other chunk sizes: other parts, the same table
    for chunk in (4, 6):
        with ThreadPoolExecutor(2) as ex:
            run_sweep(scenario, samples, tmp_path / f"c{chunk}", executor=ex,
                      chunk_samples=chunk, progress=False)
        assert len(part_bytes(tmp_path / f"c{chunk}")) == math.ceil(6 / chunk)
        pd.testing.assert_frame_equal(read_sweep(tmp_path / f"c{chunk}"), ref_table,
                                      check_exact=True)


def test_spawned_worker_processes_give_the_same_bytes(tmp_path, scenario, samples,
                                                      reference):
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        run_sweep(scenario, samples, tmp_path / "p", executor=ex, chunk_samples=1,
                  progress=False)
    assert part_bytes(tmp_path / "p") == part_bytes(reference)


def test_dask_map_returns_results_in_order(dask_client):
    seen = []
    with dask_map(dask_client) as map_tasks:
        got = map_tasks(divmod, [(7, 2), (9, 4), (1, 1), (10, 3)], done=seen.append)
    assert got == [(3, 1), (2, 1), (1, 0), (3, 1)]
    assert sorted(seen) == [0, 1, 2, 3]


def test_bad_executor_is_refused(tmp_path, scenario, samples):
    with pytest.raises(TypeError, match="expected a concurrent.futures.Executor"):
        run_sweep(scenario, samples.iloc[:1], tmp_path / "x", executor=object(),
                  chunk_samples=1, progress=False)
    for kw in ({"workers": 0}, {"chunk": 0}, {"seed": -1}, {"seed": 2**63},
               {"outputs": "all"}, {"chunk": 1.5}, {"seed": True}):
        with pytest.raises(SweepError):
            one_sweep(scenario, samples.iloc[:1], tmp_path / "y", **kw)
    assert not (tmp_path / "y").exists()


# --------------------------------------------------------------------------- compounds

# a user's NMDA channel blocker (as tests/test_compounds.py writes one); V2 clears 10x faster
BLOCKER = """\
name: reviewblocker
description: a user's NMDA channel blocker
routes: [ip, iv]
analytes: [drug]
mw: {value: 250.0, unit: g/mol, source: "assumed"}
pk:
  mouse:
    model: compartmental
    cl: {value: 6.0, unit: L/h/kg, source: "assumed"}
    v1: {value: 3.0, unit: L/kg, source: "assumed"}
    kp_brain: {value: 4.0, unit: "1", source: "assumed"}
    ke0: {value: 6.0, unit: 1/h, source: "assumed"}
    fu_brain: {value: 0.5, unit: "1", source: "assumed"}
targets:
  nmda:
    action: channel_blocker
    potency: {value: 300, unit: nM, source: "assumed"}
    trapping: {value: 0.86, unit: "1", source: "assumed"}
"""
BLOCKER_V2 = BLOCKER.replace("cl: {value: 6.0", "cl: {value: 60.0")


@pytest.fixture
def compounds_folder(tmp_path):
    """A folder holding BLOCKER, registered; the built-ins only again afterwards."""
    from ketasim.pk.compounds import add_compounds, reset_compounds

    folder = tmp_path / "compounds"
    folder.mkdir()
    (folder / "reviewblocker.yaml").write_text(BLOCKER)
    reset_compounds()
    add_compounds(folder)
    yield folder
    reset_compounds()


def _blocker_scenario():
    return load_scenario_text(SCENARIO.replace("drug: ketamine, dose: 500 ug/kg",
                                               "drug: reviewblocker, dose: 10 mg/kg"))


# fixed (was BUG): a worker process registers a compounds folder once (_PROCESS_COMPOUNDS
#   keyed by the folder's path): a later sweep on the same workers after the compound file
#   changed computes with the old compound, unlike an in-process run
def test_reused_worker_processes_see_an_edited_compound(tmp_path, compounds_folder):
    sc = _blocker_scenario()
    frame = pd.DataFrame({K_OFF: [0.02, 0.1]})
    kw = {"chunk_samples": 1, "progress": False, "compounds": [compounds_folder]}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        run_sweep(sc, frame, tmp_path / "v1", executor=pool, **kw)
        (compounds_folder / "reviewblocker.yaml").write_text(BLOCKER_V2)
        run_sweep(sc, frame, tmp_path / "v2_pool", executor=pool, **kw)
    with ThreadPoolExecutor(1) as ex:
        run_sweep(sc, frame, tmp_path / "v2_here", executor=ex, **kw)
    v1, here = read_sweep(tmp_path / "v1"), read_sweep(tmp_path / "v2_here")
    assert not v1["mean"].equals(here["mean"])  # the edit changes the numbers
    pd.testing.assert_frame_equal(read_sweep(tmp_path / "v2_pool"), here)


# fixed (was BUG): the manifest records no compound files and a resume does not compare
#   them: after a compound file changed, a resume recomputes the missing samples with the
#   new compound beside parts computed with the old one
def test_resume_after_a_compound_changed_is_refused_or_consistent(tmp_path,
                                                                  compounds_folder):
    sc = _blocker_scenario()
    frame = pd.DataFrame({K_OFF: [0.02, 0.1]})
    kw = {"compounds": [compounds_folder]}
    out = one_sweep(sc, frame, tmp_path / "sweep", **kw)
    (compounds_folder / "reviewblocker.yaml").write_text(BLOCKER_V2)
    fresh = read_sweep(one_sweep(sc, frame, tmp_path / "fresh", **kw))
    assert not fresh["mean"].equals(read_sweep(out)["mean"])  # the edit matters
    (out / "chunks" / "part-000001-000001.parquet").unlink()
    try:
        one_sweep(sc, frame, out, **kw)
    except SweepError:
        return  # refused: another sweep
    pd.testing.assert_frame_equal(read_sweep(out), fresh)  # else: every sample the new one


# --------------------------------------------------------------------------- folder


def test_folder_layout_and_manifest(tmp_path, scenario, samples, reference, ref_table):
    man = json.loads((reference / "manifest.json").read_text())
    assert man["format"] == "ketasim-sweep/1"
    assert man["names"] == [K_OFF, DOSE] and man["n_samples"] == 6
    assert man["outputs"] == "summary" and man["chunk_samples"] == 1
    assert man["columns"] == ref_table.columns.tolist() == [
        "sample", K_OFF, DOSE, "arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem"]
    assert man["scenario"]["sha256"] == scenario_hash(scenario)
    assert man["scenario"]["model"] == scenario.model_dump(mode="json")
    assert man["scenario"]["name"] == "review_sweep"
    reg = load_registry()
    assert man["registry"] == {"sha256": registry_digest(reg), "changed": []}
    assert {"ketasim", "python", "libraries"} <= set(man["versions"])
    assert man["seed_rule"].startswith("sample k runs with seed SeedSequence(seed")
    assert sorted(part_bytes(reference)) == [f"part-{k:06d}-{k:06d}.parquet" for k in range(6)]
    for data in part_bytes(reference).values():
        schema = pq.read_schema(pa.BufferReader(data))
        assert schema.metadata is None
        assert schema.field("sample").type == pa.int64()
        assert schema.field(K_OFF).type == schema.field(DOSE).type == pa.float64()
    assert ref_table["sample"].tolist() == [k for k in range(6) for _ in range(ROWS)]
    # the samples' hash depends on their values; the file's text is recorded
    sc_file = tmp_path / "sc.yaml"
    sc_file.write_text(SCENARIO)
    other = samples.copy()
    other.loc[5, DOSE] = 0.7
    n_frame = pd.DataFrame({"arms[*].n": [2]})
    out = one_sweep(str(sc_file), n_frame, tmp_path / "f",
                    registry=reg.with_values({K_OFF: 0.03}))
    m2 = json.loads((out / "manifest.json").read_text())
    assert m2["scenario"]["text"] == SCENARIO
    assert m2["scenario"]["sha256"] == man["scenario"]["sha256"]
    assert m2["registry"]["changed"] == [
        {"name": K_OFF, "default": reg.value(K_OFF), "value": 0.03}]
    assert pq.read_schema(next((out / "chunks").iterdir())).field("arms[*].n").type == pa.int64()
    assert read_sweep(out)["arms[*].n"].dtype == np.int64
    assert m2["samples_sha256"] != man["samples_sha256"]
    with pytest.raises(SweepError, match="another samples"):
        one_sweep(scenario, other, reference)


def test_another_sweep_in_the_folder_is_refused_and_nothing_is_overwritten(
        tmp_path, scenario, samples, reference):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples.iloc[:3], out)
    before = folder_state(out)
    reg = load_registry()
    cases = [
        ({"scenario": load_scenario_text(SCENARIO.replace("seed: 23", "seed: 24"))},
         "another scenario"),
        ({"seed": 24}, "another seed"),
        ({"registry": reg.with_values({"sig.k_potentiation_on": reg.value(
            "sig.k_potentiation_on") * 1.01})}, "another parameter registry"),
        ({"common_seed": True}, "another seed rule"),
        ({"outputs": "readouts"}, "another outputs"),
        ({"samples": samples.iloc[:3][[DOSE, K_OFF]]}, "another names"),
        ({"samples": samples.iloc[1:4]}, "another samples"),
    ]
    for kw, fragment in cases:
        kw = {"scenario": scenario, "samples": samples.iloc[:3]} | kw
        with pytest.raises(SweepError) as err, CountingExecutor() as ex:
            run_sweep(out=out, executor=ex, progress=False, **kw)
        assert ex.spans == []
        msg = str(err.value)
        assert msg.startswith(f"out {out}: holds a sweep with {fragment}"), msg
        assert "\n" not in msg
        assert folder_state(out) == before, fragment


def test_unreadable_or_foreign_manifest_and_file_out_are_refused(tmp_path, scenario,
                                                                  samples):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples.iloc[:2], out)
    (out / "manifest.json").write_text("{not json")
    before = folder_state(out)
    with pytest.raises(SweepError, match="manifest.json: cannot read it"):
        one_sweep(scenario, samples.iloc[:2], out)
    assert folder_state(out) == before
    foreign = tmp_path / "run"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"format": "ketasim-run/1"}))
    with pytest.raises(SweepError, match="another format"):
        one_sweep(scenario, samples.iloc[:2], foreign)
    assert [p.name for p in foreign.iterdir()] == ["manifest.json"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(SweepError, match="exists and is not a folder"):
        one_sweep(scenario, samples.iloc[:2], afile)
    assert afile.read_text() == "x"


def test_a_run_killed_before_its_manifest_is_started_again_and_cleaned(tmp_path, scenario,
                                                                      samples, reference):
    out = tmp_path / "sweep"
    (out / "chunks").mkdir(parents=True)
    (out / "samples.parquet").write_bytes(b"PAR1 half")
    (out / ".manifest.json.tmp-1-0123abcd").write_text("{")
    (out / "chunks" / ".part-000000-000000.parquet.tmp-1-0123abcd").write_bytes(b"PAR1")
    one_sweep(scenario, samples, out)
    assert sorted(p.name for p in out.iterdir()) == ["chunks", "manifest.json",
                                                     "samples.parquet"]
    assert part_bytes(out) == part_bytes(reference)
    assert (out / "samples.parquet").read_bytes() == (reference / "samples.parquet").read_bytes()
    # a folder with a part but no manifest is not a sweep's first files: refused
    other = tmp_path / "other"
    (other / "chunks").mkdir(parents=True)
    (other / "chunks" / "part-000000-000000.parquet").write_bytes(b"x")
    with pytest.raises(SweepError, match="holds no sweep"):
        one_sweep(scenario, samples, other)
    assert (other / "chunks" / "part-000000-000000.parquet").read_bytes() == b"x"


# --------------------------------------------------------------------------- resume


def test_resume_recomputes_exactly_the_damaged_parts(tmp_path, scenario, samples,
                                                     reference, dask_client):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples, out)
    chunks = out / "chunks"
    keep = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.iterdir()}
    (chunks / "part-000000-000000.parquet").unlink()  # deleted
    data = (chunks / "part-000002-000002.parquet").read_bytes()
    (chunks / "part-000002-000002.parquet").write_bytes(data[:-20])  # truncated
    bad = bytearray((chunks / "part-000003-000003.parquet").read_bytes())
    bad[-6] ^= 0xFF  # footer length corrupted: unreadable
    (chunks / "part-000003-000003.parquet").write_bytes(bytes(bad))
    # another sample's part under this one's name: the values do not match
    (chunks / "part-000005-000005.parquet").write_bytes(
        (chunks / "part-000004-000004.parquet").read_bytes())
    (chunks / ".part-000001-000001.parquet.tmp-1-abcdef12").write_bytes(b"PAR1")
    (chunks / "notes.txt").write_text("mine")
    with CountingExecutor() as ex:
        run_sweep(scenario, samples, out, executor=ex, progress=False)
    assert sorted(ex.spans) == [(0, 0), (2, 2), (3, 3), (5, 5)]
    assert (chunks / "notes.txt").read_text() == "mine"  # not ours: left alone
    (chunks / "notes.txt").unlink()
    assert part_bytes(out) == part_bytes(reference)
    for name in ("part-000001-000001.parquet", "part-000004-000004.parquet"):
        p = chunks / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == keep[name]  # untouched
    # resumed on another backend with another chunk size: the same table
    for name in ("part-000001-000001.parquet", "part-000002-000002.parquet",
                 "part-000003-000003.parquet"):
        (chunks / name).unlink()
    run_sweep(scenario, samples, out, executor=dask_client, chunk_samples=2, progress=False)
    names = sorted(p.name for p in chunks.iterdir())
    assert "part-000001-000002.parquet" in names and "part-000003-000003.parquet" in names
    pd.testing.assert_frame_equal(read_sweep(out), read_sweep(reference), check_exact=True)


def _flip_a_mean_byte(path: Path) -> bytes:
    """The part's bytes with one byte of its 'mean' column chunk flipped such that the
    file still reads, with the same samples and values, but other means."""
    data = path.read_bytes()
    original = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    col = next(meta.column(i) for i in range(meta.num_columns)
               if meta.column(i).path_in_schema == "mean")
    start = col.dictionary_page_offset or col.data_page_offset
    for off in range(start, start + col.total_compressed_size):
        b = bytearray(data)
        b[off] ^= 0x01
        try:
            t = pq.read_table(pa.BufferReader(bytes(b)))
        except (OSError, pa.ArrowException):
            continue
        if (t.schema.equals(original.schema) and t.drop(["mean"]).equals(original.drop(
                ["mean"])) and not t.column("mean").equals(original.column("mean"))):
            return bytes(b)
    raise AssertionError("no byte of the mean column flips silently")


# fixed (was BUG): a part corrupted on disk in its output columns (one flipped byte of
#   'mean') passes _check_part (only schema, sample and name columns are checked; parts
#   carry no checksum), so a resume keeps it and read_sweep returns the corrupted numbers
def test_resume_recomputes_a_part_corrupted_in_its_numbers(tmp_path, scenario, samples,
                                                           reference):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples, out)
    part = out / "chunks" / "part-000004-000004.parquet"
    part.write_bytes(_flip_a_mean_byte(part))
    one_sweep(scenario, samples, out)
    assert part_bytes(out) == part_bytes(reference)


def test_read_sweep_partial(tmp_path, scenario, samples, ref_table):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples, out, chunk=2)
    (out / "chunks" / "part-000000-000001.parquet").unlink()
    (out / "chunks" / "part-000004-000005.parquet").unlink()
    with pytest.raises(SweepError, match=r"4 of 6 samples have no results yet \(first: "
                       r"sample 0\)"):
        read_sweep(out)
    part = read_sweep(out, allow_partial=True)
    want = ref_table[ref_table["sample"].isin([2, 3])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, want, check_exact=True)
    with pytest.raises(SweepError, match="cannot read it"):
        read_sweep(tmp_path)  # no manifest


# fixed (was BUG): read_sweep(allow_partial=True) of a sweep with no part yet returns every
#   column as float64 (sample, arm, unit...) instead of the parts' schema
def test_read_sweep_partial_with_no_part_keeps_the_schema(tmp_path, scenario, samples,
                                                          ref_table):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples.iloc[:1], out)
    for p in (out / "chunks").iterdir():
        p.unlink()
    empty = read_sweep(out, allow_partial=True)
    assert empty.columns.tolist() == ref_table.columns.tolist()
    assert empty.dtypes.to_dict() == ref_table.dtypes.to_dict()


# fixed (was BUG): read_sweep concatenates parts whose samples overlap (duplicating those
#   samples' rows) where run_sweep refuses the same folder ('holds samples that ... holds
#   too')
def test_read_sweep_refuses_overlapping_parts(tmp_path, scenario, samples, reference):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples, out, chunk=2)
    (out / "chunks" / "part-000001-000001.parquet").write_bytes(
        (reference / "chunks" / "part-000001-000001.parquet").read_bytes())
    with pytest.raises(SweepError, match="holds samples that"):
        one_sweep(scenario, samples, out)  # the resume refuses it ...
    with pytest.raises(SweepError):
        read_sweep(out)  # ... and so should reading (sample 1 would be there twice)


# fixed (was BUG): read_sweep includes a part named for samples beyond the sweep's n_samples
#   (which a resume deletes as not the sweep's), adding its rows to the table
def test_read_sweep_ignores_or_refuses_a_part_out_of_range(tmp_path, scenario, samples,
                                                           ref_table):
    out = tmp_path / "sweep"
    one_sweep(scenario, samples, out, chunk=3)
    (out / "chunks" / "part-000009-000009.parquet").write_bytes(
        (out / "chunks" / "part-000000-000002.parquet").read_bytes())
    try:
        got = read_sweep(out)
    except SweepError:
        return
    pd.testing.assert_frame_equal(got, ref_table)


# --------------------------------------------------------------------------- CLI


def _cli(args):
    from ketasim.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_bad_samples_are_one_error_and_nothing_is_written(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    out = tmp_path / "out"
    cases = [
        (f"{K_OFF},{DOSE}\n0.05,0.5\n0.06,-1\n", f"samples row 1 (sample 1): {DOSE}: got -1.0"),
        (f"{K_OFF},arms[nope].n\n0.05,2\n", "has no arm 'nope'"),
        (f"{K_OFF}\n0.05\n0.9\n", "within the parameter's range"),
    ]
    for text, fragment in cases:
        (tmp_path / "s.csv").write_text(text)
        r = _cli(["sweep", sc, "--samples", tmp_path / "s.csv", "--out", out, "--workers", "1"])
        assert r.exit_code == 2, r.output
        assert "error:" in r.output and fragment in r.output and "Traceback" not in r.output
        assert not out.exists()
    r = _cli(["sweep", sc, "--vary", f"{K_OFF}=0.05,0.1", "--set", f"{K_OFF}=0.07",
              "--out", out])
    assert r.exit_code == 2 and "also varied here" in r.output, r.output
    r = _cli(["sweep", sc, "--vary", f"{K_OFF}=0.05", "--samples", tmp_path / "s.csv",
              "--out", out])
    assert r.exit_code == 2 and "give --vary or --samples" in r.output, r.output
    assert not out.exists()


def test_cli_refuses_another_sweeps_folder_naming_out(tmp_path, scenario):
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    out = tmp_path / "out"
    one_sweep(str(sc), parse_vary([f"{K_OFF}=0.05,0.1"]), out)
    before = folder_state(out)
    r = _cli(["sweep", sc, "--vary", f"{K_OFF}=0.05,0.1", "--out", out, "--seed", "99"])
    assert r.exit_code == 2, r.output
    assert f"error: --out {out}: holds a sweep with another seed" in " ".join(r.output.split())
    assert folder_state(out) == before
    r = _cli(["sweep", sc, "--vary", f"{K_OFF}=0.05,0.1", "--out", sc])
    assert r.exit_code == 2 and "is not a folder" in r.output, r.output
    assert sc.read_text() == SCENARIO
