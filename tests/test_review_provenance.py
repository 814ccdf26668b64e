"""Review of provenance and the results contract: the manifest.json of every command
(``run``, ``validate``, ``power``, ``screen``, ``sweep``, ``sensitivity``,
``calibrate``), the files ARCHITECTURE.md names, and ``ketasim query`` over each kind of
output folder.

Every command runs once (module fixture ``outs``, tiny scenarios of n = 2) with
``--set pk.mouse.ketamine.cl=5`` and ``--compounds`` (a user compound the scenario
doses), on a scenario file with CRLF line ends (a Windows editor's), so that:

- each manifest holds a timestamp, ketasim's version, the library versions, the seed,
  the digest of the registry actually used (not the packaged one) with the changed
  value listed, the git commit, and the user compound file with its SHA-256;
- the scenario text is recorded as read, byte for byte (CRLF kept);
- re-running from the manifest alone (its scenario text, seed, changed values) gives the
  same readouts / power table / screen readouts / sweep chunk, bit for bit;
- the files match ARCHITECTURE.md (names, columns, dtypes, units);
- ``ketasim query`` sees every table of each kind of folder under its file's name, with
  the same rows as the files; csv/json/parquet outputs give back the same values (floats
  to the last bit); ``--limit`` limits what is printed only; the sandbox (no statement
  other than a query, no file outside the folder read, nothing written anywhere).

Defects found were ``xfail(strict=True, reason="BUG: ...")``; the fixed ones are guarded
under ``# fixed (was BUG): ...`` comments.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim import provenance
from ketasim.cli import app
from ketasim.io.query import RunTables, query
from ketasim.params import load_registry

CL = "pk.mouse.ketamine.cl"
CL_VALUE = 5.0  # packaged 7.0, range [2, 12]
# a scenario written with CRLF line ends (and a non-ASCII description): the manifest must
# keep its text as read
SCENARIO = (
    "name: tiny-prov\r\n"
    "description: \"provenance review \u2014 k\u00e9tamine\"\r\n"
    "species: mouse\r\n"
    "seed: 5\r\n"
    "arms:\r\n"
    "  - name: saline\r\n"
    "    n: 2\r\n"
    "    protocol: [{at: 0h, drug: saline, route: ip}]\r\n"
    "    assays: &a\r\n"
    "      - {assay: western_blot, at: [1h]}\r\n"
    "  - name: ketamine\r\n"
    "    n: 2\r\n"
    "    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]\r\n"
    "    assays: *a\r\n"
    "  - name: memantwo\r\n"
    "    n: 2\r\n"
    "    protocol: [{at: 0h, drug: memantwo, dose: 10 mg/kg, route: ip}]\r\n"
    "    assays: *a\r\n"
    "compare:\r\n"
    "  - {readout: pmtor_rel, assay: western_blot, at: 1h, arms: [ketamine, saline]}\r\n"
)
COMMANDS = ("run", "validate", "power", "screen", "sweep", "sensitivity", "calibrate")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


def ok(res):
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return res


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def used_registry():
    return load_registry().with_values({CL: CL_VALUE})


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    """Every command once, with --set and --compounds, on the CRLF scenario."""
    from ketasim.pk.compounds import reset_compounds

    root = tmp_path_factory.mktemp("prov")
    comp = root / "comp"
    comp.mkdir()
    src = Path(ketasim.__file__).parent / "compounds" / "memantine.yaml"
    (comp / "memantwo.yaml").write_bytes(
        src.read_bytes().replace(b"\nname: memantine\n", b"\nname: memantwo\n"))
    scenario = root / "tiny.yaml"
    scenario.write_bytes(SCENARIO.encode("utf-8"))
    data = root / "cal.csv"
    data.write_text("arm,readout,time_h,mean,sem\nketamine,pmtor_rel,1,1.3,0.05\n"
                    "ketamine,peef2_rel,1,0.6,0.05\n")
    setting = ("--set", f"{CL}={CL_VALUE}")
    cmp = ("--compounds", comp)
    o = {name: root / name for name in COMMANDS}
    try:
        ok(invoke("run", scenario, "--out", o["run"], *setting, *cmp))
        ok(invoke("validate", "--only", "T-PK-06", "--out", o["validate"], "--workers", 1,
                  *setting, *cmp))
        ok(invoke("power", scenario, "--compare", 0, "--n", "2,3", "--cohorts", 3,
                  "--out", o["power"], *setting, *cmp))
        ok(invoke("screen", comp, "--n", 2, "--stress", "none", "--workers", 1,
                  "--out", o["screen"], *setting))
        ok(invoke("sweep", scenario, "--vary", "arms[*].n=2,3", "--workers", 1,
                  "--out", o["sweep"], *setting, *cmp))
        ok(invoke("sensitivity", scenario, "--readout", "pmtor_rel", "--arm", "ketamine",
                  "--at", "1h", "--method", "morris", "--n", 2, "--params",
                  "sig.k_synthesis", "--workers", 1, "--out", o["sensitivity"], *setting,
                  *cmp))
        ok(invoke("calibrate", scenario, "--data", data, "--params", "pk.mouse.ketamine.v1",
                  "--method", "likelihood", "--out", o["calibrate"], *setting, *cmp))
        yield {**o, "root": root, "comp": comp, "scenario": scenario, "data": data}
    finally:
        reset_compounds()


# ------------------------------------------------------------------ every manifest
def _time(m: dict, command: str) -> list[str]:
    return [m["created_utc"]] if command == "sweep" else [m["started_utc"], m["finished_utc"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_manifest_has_time_versions_and_the_registry_used(outs, command):
    m = manifest(outs[command])
    stamps = [datetime.fromisoformat(t) for t in _time(m, command)]
    assert all(t.utcoffset().total_seconds() == 0 for t in stamps)
    assert stamps == sorted(stamps)
    version = m["versions"]["ketasim"] if command == "sweep" else m["ketasim_version"]
    assert version == ketasim.__version__
    libs = m["versions"]["libraries"] if command == "sweep" else m["libraries"]
    assert {k: libs[k] for k in provenance.LIBRARIES} == provenance.libraries()
    assert libs["numpy"] == np.__version__ and libs["pandas"] == pd.__version__
    # the registry actually used: --set changes the digest and lists the value
    reg = load_registry()
    assert m["registry"] == {"sha256": provenance.registry_digest(used_registry()),
                             "changed": [{"name": CL, "default": reg[CL].value,
                                          "value": CL_VALUE}]}
    assert m["registry"]["sha256"] != provenance.registry_digest(reg)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "validate"])
def test_every_manifest_records_its_seed(outs, command):
    m = manifest(outs[command])
    want = {"run": 5, "power": 5, "screen": 7, "sweep": 5, "sensitivity": 0,
            "calibrate": 0}[command]  # the scenario's, screen's default, sampling seeds
    assert m["seed"] == want


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "screen"])
def test_every_manifest_lists_the_compound_files_given(outs, command):
    m = manifest(outs[command])
    f = outs["comp"] / "memantwo.yaml"
    mine = [r for r in m["compounds"] if r["name"] == "memantwo"]
    assert len(mine) == 1 and mine[0]["sha256"] == sha256(f)
    if command != "sweep":  # sweep lists only the --compounds files, by name and digest
        assert mine[0]["builtin"] is False and Path(mine[0]["file"]).resolve() == f.resolve()
        builtin = {r["name"]: r for r in m["compounds"] if r["builtin"]}
        k = builtin["ketamine"]
        assert k["sha256"] == sha256(k["file"])
    else:
        assert m["compound_folders"] == [str(outs["comp"].resolve())]


def test_screen_manifest_lists_the_screened_files(outs):
    m = manifest(outs["screen"])
    f = outs["comp"] / "memantwo.yaml"
    assert m["inputs"] == [{"path": str(f), "sha256": sha256(f)}]
    assert m["candidates"] == ["memantwo"]
    rec = next(r for r in m["compounds"] if r["name"] == "memantwo")
    assert rec["builtin"] is False and rec["sha256"] == sha256(f)


def _is_commit(commit) -> bool:
    if not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit)):
        return False
    return provenance._git(["cat-file", "-t", commit], provenance.SOURCE_ROOT) == "commit\n"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "sweep"])
def test_every_manifest_records_the_git_commit(outs, command):
    if provenance.git_state()["commit"] is None:
        pytest.skip("ketasim does not run from a git checkout here")
    git = manifest(outs[command])["git"]
    assert set(git) == {"commit", "dirty"} and isinstance(git["dirty"], bool)
    assert _is_commit(git["commit"])


# fixed (was BUG): a sweep's manifest.json records no git commit (every other command's
#   manifest does), so its chunks cannot be traced to the source that computed them
def test_sweep_manifest_records_the_git_commit(outs):
    if provenance.git_state()["commit"] is None:
        pytest.skip("ketasim does not run from a git checkout here")
    m = manifest(outs["sweep"])
    git = m.get("git") or m.get("versions", {}).get("git")
    assert isinstance(git, dict) and _is_commit(git.get("commit"))


# fixed (was BUG): manifests record no version of the library that computes the command's
#   numbers: SALib (sensitivity's samples and indices), pyabc (calibrate's ABC) are
#   dependencies missing from provenance.LIBRARIES
@pytest.mark.parametrize("command, library", [("sensitivity", "SALib"),
                                              ("calibrate", "pyabc")])
def test_manifest_records_the_library_that_computes_the_numbers(outs, command, library):
    from importlib import metadata

    declared = {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0] for r in metadata.requires("ketasim")
                if "extra ==" not in r}
    assert library in declared  # a runtime dependency of ketasim (pyproject.toml)
    libs = manifest(outs[command])["libraries"]
    assert libs.get(library) == metadata.version(library)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
# fixed (was BUG): manifest.json is written with allow_nan (json default): a non-finite
#   value (calibrate's interval bound inf) is written as Infinity, which is not JSON (RFC
#   8259) and fails strict parsers
def test_manifest_is_strict_json_even_with_non_finite_values(outs, tmp_path):
    data = tmp_path / "one.csv"  # one row, a parameter it hardly informs: an open interval
    data.write_text("arm,readout,time_h,mean,sem\nketamine,pmtor_rel,1,1.3,0.05\n")
    ok(invoke("calibrate", outs["scenario"], "--data", data, "--params", "sig.k_synthesis",
              "--method", "likelihood", "--out", tmp_path / "c", "--set", f"{CL}={CL_VALUE}",
              "--compounds", outs["comp"]))
    from ketasim.io.results import write_json

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    # (here the fitted interval's upper bound is inf)
    json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"),
               parse_constant=refuse)
    # the writer every manifest but the sweep's and sensitivity's goes through
    write_json({"ci_high": math.inf, "mean": math.nan}, tmp_path / "m.json")
    json.loads((tmp_path / "m.json").read_text(encoding="utf-8"), parse_constant=refuse)


# ------------------------------------------------------------------ scenario text as read
@pytest.mark.parametrize("command", ["run", "power", "sensitivity"])
def test_scenario_text_is_recorded_byte_for_byte(outs, command):
    m = manifest(outs[command])
    assert m["scenario_text"] == SCENARIO  # CRLF and non-ASCII kept
    assert m["scenario_text"].encode("utf-8") == outs["scenario"].read_bytes()
    f = outs["scenario"]
    assert {"path": str(f), "sha256": sha256(f)} in m["inputs"]


# fixed (was BUG): sweep records the scenario text read with Path.read_text (universal
#   newlines: CRLF becomes LF), not as read
def test_sweep_manifest_keeps_the_scenario_text_as_read(outs):
    m = manifest(outs["sweep"])
    assert m["scenario"]["text"].encode("utf-8") == outs["scenario"].read_bytes()


# fixed (was BUG): calibrate records the scenario text read with Path.read_text (universal
#   newlines: CRLF becomes LF), not as read
def test_calibrate_manifest_keeps_the_scenario_text_as_read(outs):
    m = manifest(outs["calibrate"])
    assert m["scenario_text"].encode("utf-8") == outs["scenario"].read_bytes()


# fixed (was BUG): calibrate's manifest inputs hold only the data file; the scenario file
#   and its SHA-256 are missing (provenance: every input file)
def test_calibrate_manifest_lists_the_scenario_file_among_its_inputs(outs):
    m = manifest(outs["calibrate"])
    data = outs["data"]
    assert {"path": str(data), "sha256": sha256(data)} in m["inputs"]
    f = outs["scenario"]
    assert {"path": str(f), "sha256": sha256(f)} in m["inputs"]


def test_validate_manifest_holds_each_replica_as_read(outs):
    from ketasim.validation.targets import replica_paths

    m = manifest(outs["validate"])
    path = replica_paths()["pk_rat_hnk"]
    assert m["replicas"] == [{"name": "pk_rat_hnk", "file": path.name, "sha256": sha256(path),
                              "text": path.read_bytes().decode("utf-8")}]
    assert {"path": str(path), "sha256": sha256(path)} in m["inputs"]
    assert m["command"] == "validate" and m["only"] == ["T-PK-06"]


def test_screen_manifest_text_is_its_scenario_file(outs):
    m = manifest(outs["screen"])
    assert (outs["screen"] / "screen_scenario.yaml").read_text(encoding="utf-8") == \
        m["scenario_text"]


# ------------------------------------------------------------------ re-running from a manifest
def _scenario_from(m: dict, folder: Path, text_key: str = "scenario_text") -> Path:
    f = folder / "again.yaml"
    f.write_bytes(m[text_key].encode("utf-8"))
    return f


def _sets(m: dict) -> list[str]:
    return [a for c in m["registry"]["changed"] for a in ("--set", f"{c['name']}={c['value']!r}")]


def test_run_is_reproduced_from_its_manifest_alone(outs, tmp_path):
    m = manifest(outs["run"])
    f = _scenario_from(m, tmp_path)
    ok(invoke("run", f, "--out", tmp_path / "again", "--seed", m["seed"], *_sets(m),
              "--compounds", outs["comp"]))
    for name in ("readouts.parquet", "summary.csv", "stats.csv"):
        assert (tmp_path / "again" / name).read_bytes() == \
            (outs["run"] / name).read_bytes(), name
    again = manifest(tmp_path / "again")
    for key in ("registry", "scenario_hash", "seed", "scenario_text", "parameter_set"):
        assert again[key] == m[key], key


def test_run_with_a_seed_override_is_reproduced(outs, tmp_path):
    ok(invoke("run", outs["scenario"], "--out", tmp_path / "a", "--seed", 123,
              "--compounds", outs["comp"]))
    m = manifest(tmp_path / "a")
    assert m["seed"] == 123 and m["registry"]["changed"] == []
    assert m["registry"]["sha256"] == provenance.registry_digest(load_registry())
    # ketasim --version prints the digest of a run without --set (for bug reports)
    version = ok(invoke("--version")).stdout
    assert f"parameter registry sha256 {m['registry']['sha256']}" in version
    assert f"ketasim {m['ketasim_version']}" in version
    f = _scenario_from(m, tmp_path)
    ok(invoke("run", f, "--out", tmp_path / "b", "--seed", m["seed"],
              "--compounds", outs["comp"]))
    assert (tmp_path / "a" / "readouts.parquet").read_bytes() == \
        (tmp_path / "b" / "readouts.parquet").read_bytes()
    # and the seed matters: the --set run at seed 5 differs
    assert (tmp_path / "a" / "readouts.parquet").read_bytes() != \
        (outs["run"] / "readouts.parquet").read_bytes()


def test_power_is_reproduced_from_its_manifest_alone(outs, tmp_path):
    m = manifest(outs["power"])
    f = _scenario_from(m, tmp_path)
    ok(invoke("power", f, "--compare", m["analysis"]["compare"],
              "--n", ",".join(map(str, m["n"])), "--cohorts", m["cohorts"],
              "--alpha", m["alpha"], "--seed", m["seed"], "--out", tmp_path / "again",
              *_sets(m), "--compounds", outs["comp"]))
    assert (tmp_path / "again" / "power.csv").read_bytes() == \
        (outs["power"] / "power.csv").read_bytes()


def test_screen_readouts_are_reproduced_from_its_manifest(outs):
    from ketasim.experiment.runner import simulate
    from ketasim.pk.compounds import add_compounds
    from ketasim.scenario import load_scenario_text

    m = manifest(outs["screen"])
    add_compounds(outs["comp"])
    reg = load_registry().with_values({c["name"]: c["value"] for c in m["registry"]["changed"]})
    res = simulate(load_scenario_text(m["scenario_text"], "screen"), seed=m["seed"],
                   registry=reg)
    key = ["arm", "subject", "assay", "readout", "time_h"]
    got = pd.read_parquet(outs["screen"] / "readouts.parquet")
    want = res.readouts[list(got.columns)]
    pd.testing.assert_frame_equal(got.sort_values(key, ignore_index=True),
                                  want.sort_values(key, ignore_index=True), check_exact=True)


def test_a_sweep_chunk_is_reproduced_from_the_manifest_seed_rule(outs):
    """Sample 1 (n = 3 in every arm) at the manifest's seed rule gives its chunk rows."""
    from ketasim.analysis.stats import summarize
    from ketasim.experiment.runner import simulate
    from ketasim.pk.compounds import add_compounds
    from ketasim.scenario import load_scenario_text
    from ketasim.sweep.core import read_sweep, sample_seed

    m = manifest(outs["sweep"])
    assert "SeedSequence(seed, spawn_key=(k,))" in m["seed_rule"]
    add_compounds(outs["comp"])
    text = m["scenario"]["text"].replace("n: 2", "n: 3")
    sc = load_scenario_text(text, "sweep")
    reg = load_registry().with_values({c["name"]: c["value"] for c in m["registry"]["changed"]})
    want = summarize(simulate(sc, seed=sample_seed(m["seed"], 1), registry=reg).readouts)
    got = read_sweep(outs["sweep"])
    got = got[got["sample"] == 1].drop(columns=["sample", "arms[*].n"])
    cols = ["arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem"]
    assert m["columns"] == ["sample", "arms[*].n", *cols]
    key = ["arm", "readout"]
    pd.testing.assert_frame_equal(
        got[cols].sort_values(key, ignore_index=True),
        want[cols].sort_values(key, ignore_index=True), check_dtype=False, check_exact=True)


def test_pilot_power_manifest_hashes_its_inputs_and_is_reproduced(outs, tmp_path):
    run = outs["run"]
    ok(invoke("power", run, "--compare", 0, "--n", "2,3", "--cohorts", 20,
              "--out", tmp_path / "p1"))
    m = manifest(tmp_path / "p1")
    assert m["inputs"] == [{"path": str(run / f), "sha256": sha256(run / f)}
                           for f in ("readouts.parquet", "stats.csv")]
    assert m["seed"] == 0 and m["registry"]["changed"] == []
    ok(invoke("power", run, "--compare", 0, "--n", ",".join(map(str, m["n"])),
              "--cohorts", m["cohorts"], "--seed", m["seed"], "--out", tmp_path / "p2"))
    assert (tmp_path / "p1" / "power.csv").read_bytes() == \
        (tmp_path / "p2" / "power.csv").read_bytes()


def test_registry_digest_tells_apart_registries_that_give_other_numbers():
    """Two registries that simulate different subjects have different digests: values
    and the between-subject variability of a varying parameter."""
    from dataclasses import replace

    from ketasim.params.registry import Registry

    reg = load_registry()
    p = next(q for q in reg if q.bsv_cv > 0)
    bsv = Registry({**reg.parameters, p.name: replace(p, bsv_cv=p.bsv_cv * 1.5)})
    base = provenance.registry_digest(reg)
    assert provenance.registry_digest(bsv) != base
    assert provenance.registry_digest(reg.with_values({p.name: p.value})) == base


# ------------------------------------------------------------------ files of the contract
def test_run_files_match_the_architecture(outs):
    from ketasim.analysis.stats import SUMMARY_COLUMNS
    from ketasim.experiment.assays import ASSAYS

    run = outs["run"]
    names = {p.name for p in run.iterdir()}
    assert {"readouts.parquet", "summary.csv", "stats.csv", "manifest.json",
            "report.html"} <= names
    assert any(n.endswith(".png") for n in names)
    schema = pq.read_schema(run / "readouts.parquet")
    assert schema.names[:7] == ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
    assert [schema.field(c).type for c in schema.names[:7]] == [
        pa.string(), pa.int64(), pa.string(), pa.string(), pa.float64(), pa.float64(),
        pa.string()]
    assert set(schema.names[7:]) <= {"region", "cell", "branch"}
    r = pd.read_parquet(run / "readouts.parquet")
    assert set(r["arm"]) == {"saline", "ketamine", "memantwo"}
    assert set(r["time_h"]) == {1.0}  # hours from the dose
    units = {ro.name: ro.unit for ro in ASSAYS["western_blot"].readouts}
    assert (r["unit"] == r["readout"].map(units)).all()
    s = pd.read_csv(run / "summary.csv")
    assert list(s.columns) == SUMMARY_COLUMNS
    assert {"arm", "assay", "readout", "time_h", "n", "mean", "sem"} <= set(s.columns)
    assert s["n"].dtype == np.int64 and (s["n"] == 2).all()
    stats = pd.read_csv(run / "stats.csv")
    assert {"test", "groups", "statistic", "p"} <= set(stats.columns)
    m = manifest(run)
    for key in ("ketasim_version", "scenario_hash", "seed", "parameter_set", "timings_s"):
        assert key in m, key
    assert m["parameter_set"]["registry_sha256"] == m["registry"]["sha256"]
    assert m["parameter_set"]["values"][CL] == CL_VALUE


def test_validation_csv_matches_the_architecture(outs):
    v = pd.read_csv(outs["validate"] / "validation.csv")
    assert list(v.columns[:8]) == ["target_id", "facts", "source", "quantity", "published",
                                   "simulated", "tolerance", "pass"]
    assert v["target_id"].tolist() == ["T-PK-06"]
    assert v["pass"].dtype == bool and v["simulated"].dtype == np.float64


def test_sweep_parts_have_the_documented_schema(outs):
    samples = pq.read_schema(outs["sweep"] / "samples.parquet")
    assert samples.names == ["sample", "arms[*].n"]
    assert samples.types == [pa.int64(), pa.int64()]
    parts = sorted((outs["sweep"] / "chunks").glob("part-*.parquet"))
    assert parts
    s = pq.read_schema(parts[0])
    assert s.names == manifest(outs["sweep"])["columns"]
    assert [s.field(c).type for c in ("sample", "arms[*].n", "time_h", "n", "mean", "sem")] == [
        pa.int64(), pa.int64(), pa.float64(), pa.int64(), pa.float64(), pa.float64()]


# ------------------------------------------------------------------ query: every folder
def _csv_rows(path: Path) -> int:
    return len(pd.read_csv(path))


@pytest.mark.parametrize("command, tables", [
    ("run", {"readouts": "readouts.parquet", "summary": "summary.csv", "stats": "stats.csv"}),
    ("validate", {"validation": "validation.csv"}),
    ("power", {"power": "power.csv"}),
    ("screen", {"screen": "screen.parquet", "screen_csv": "screen.csv",
                "readouts": "readouts.parquet"}),
    ("sweep", {"samples": "samples.parquet", "chunks": "chunks/**/*.parquet"}),
    ("calibrate", {"estimates": "estimates.csv", "starts": "starts.csv",
                   "predictive": "predictive.csv"}),
])
def test_query_sees_every_table_of_each_kind_of_folder(outs, command, tables):
    folder = outs[command]
    before = snapshot(folder)
    res = ok(invoke("query", folder, "--tables", "--format", "json"))
    listed = {t["table"]: t for t in json.loads(res.stdout)}
    assert {k: v["source"] for k, v in listed.items()} == tables
    for name, source in tables.items():
        if "*" in source:
            from ketasim.sweep.core import read_sweep

            want = len(read_sweep(folder))
        elif source.endswith(".parquet"):
            want = pq.read_metadata(folder / source).num_rows
        else:
            want = _csv_rows(folder / source)
        assert listed[name]["rows"] == want, name
        got = query(folder, f'SELECT count(*) AS n FROM "{name}"')["n"][0]
        assert got == want, name
        columns = list(query(folder, f'SELECT * FROM "{name}" LIMIT 0').columns)
        if "*" in source:
            assert columns == manifest(folder)["columns"], name
        elif source.endswith(".parquet"):
            assert columns == pq.read_schema(folder / source).names, name
        else:  # the same delimiter and header as pandas reads
            assert columns == list(pd.read_csv(folder / source, nrows=0).columns), name
    assert snapshot(folder) == before


def test_query_screen_parquet_and_csv_hold_the_same_table(outs):
    with RunTables(outs["screen"]) as db:
        a = db.df("SELECT * FROM screen ORDER BY arm")
        b = db.df("SELECT * FROM screen_csv ORDER BY arm")
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


# fixed (was BUG): in a sensitivity folder, query's 'sweep' view unions
#   sweep/samples.parquet with the chunk parts (rows with NULL arm, readout, mean), and the
#   sweep's samples table has no view of its own
def test_query_sensitivity_folder_keeps_the_sweep_tables_apart(outs):
    from ketasim.sweep.core import read_sweep

    folder = outs["sensitivity"]
    chunks = read_sweep(folder / "sweep")
    with RunTables(folder) as db:
        assert {"indices", "samples"} <= {v.name for v in db.views}
        # each view over the sweep's Parquet files holds one table: no row of one file
        # padded with NULLs into the other's columns
        for v in db.views:
            if v.kind != "parquet":
                continue
            cols = set(db.df(f'SELECT * FROM "{v.name}" LIMIT 0').columns)
            if "mean" in cols:
                n, nulls = db.df(f'SELECT count(*) AS n, count(*) - count(arm) AS nulls '
                                 f'FROM "{v.name}"').iloc[0]
                assert nulls == 0 and n == len(chunks), v
            else:
                n = db.df(f'SELECT count(*) AS n FROM "{v.name}"')["n"][0]
                assert n == pq.read_metadata(folder / "sweep" / "samples.parquet").num_rows


def test_query_sensitivity_indices_and_samples(outs):
    folder = outs["sensitivity"]
    got = query(folder, "SELECT * FROM samples ORDER BY sample")
    # pandas' default float parser can be an ulp off; the file holds repr's exact text
    want = pd.read_csv(folder / "samples.csv", float_precision="round_trip")
    assert len(got) == len(want) == manifest(folder)["samples"]
    np.testing.assert_array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    assert query(folder, "SELECT count(*) AS n FROM indices")["n"][0] == \
        _csv_rows(folder / "indices.csv")


def test_unknown_table_is_one_error_naming_the_folders_tables(outs):
    res = invoke("query", outs["sweep"], "SELECT * FROM readouts")
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: SQL:")
    assert "readouts" in lines[0] and "chunks" in lines[0] and "samples" in lines[0]
    assert "Traceback" not in res.stdout + res.stderr


# ------------------------------------------------------------------ query: formats, limit
TRICKY = [0.1 + 0.2, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -0.0,
          123456789.12345679, 2.5e-8, math.pi * 1e17, None]


@pytest.fixture
def tricky(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    n = len(TRICKY)
    pq.write_table(pa.table({
        "i": pa.array(range(n), pa.int64()),
        "x": pa.array(TRICKY, pa.float64()),
        "big": pa.array([2**62 + k for k in range(n)], pa.int64()),
        "s": pa.array([f"a,\"b\"\n{k} é" for k in range(n)], pa.string()),
    }), run / "t.parquet")
    return run


def _bits(values) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v))
            else struct.pack("<d", float(v)) for v in values]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_output_files_give_back_the_same_values(tricky, tmp_path, fmt):
    before = snapshot(tricky)
    target = tmp_path / "out" / f"t.{fmt}"
    ok(invoke("query", tricky, "SELECT * FROM t ORDER BY i", "--output", target,
              "--limit", 2))  # --limit limits the printed rows only
    if fmt == "parquet":
        got = pq.read_table(target).to_pandas()
    elif fmt == "csv":
        got = pd.read_csv(target, float_precision="round_trip", keep_default_na=False,
                          na_values=[""])
    else:
        got = pd.DataFrame(json.loads(target.read_text(encoding="utf-8")))
    want = pq.read_table(tricky / "t.parquet").to_pandas()
    assert len(got) == len(want)  # every row
    assert _bits(got["x"].tolist()) == _bits(want["x"].tolist())  # to the last bit
    assert got["big"].tolist() == want["big"].tolist()
    assert got["s"].tolist() == want["s"].tolist()
    assert snapshot(tricky) == before


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_query_stdout_formats_give_back_the_same_values_and_limit(tricky, fmt):
    res = ok(invoke("query", tricky, "SELECT * FROM t ORDER BY i", "--format", fmt,
                    "--limit", 0))
    got = (pd.read_csv(io.StringIO(res.stdout), float_precision="round_trip",
                       keep_default_na=False, na_values=[""])
           if fmt == "csv" else pd.DataFrame(json.loads(res.stdout)))
    want = pq.read_table(tricky / "t.parquet").to_pandas()
    assert _bits(got["x"].tolist()) == _bits(want["x"].tolist())
    assert got["big"].tolist() == want["big"].tolist()
    res = ok(invoke("query", tricky, "SELECT * FROM t ORDER BY i", "--format", fmt,
                    "--limit", 3))
    got = (pd.read_csv(io.StringIO(res.stdout)) if fmt == "csv"
           else pd.DataFrame(json.loads(res.stdout)))
    assert got["i"].tolist() == [0, 1, 2]
    assert f"{len(TRICKY) - 3} more rows omitted" in res.stderr


def test_query_table_limit_and_sql_limit(tricky):
    res = ok(invoke("query", tricky, "SELECT i FROM t ORDER BY i", "--limit", 4))
    assert res.stdout.rstrip().endswith(f"{len(TRICKY)} rows; {len(TRICKY) - 4} more rows "
                                        "omitted (--limit N for more, --limit 0 for all, "
                                        "--output FILE writes every row)")
    res = ok(invoke("query", tricky, "SELECT i FROM t ORDER BY i LIMIT 0"))
    assert res.stdout.rstrip().endswith("0 rows") and "omitted" not in res.stdout
    res = ok(invoke("query", tricky, "SELECT i FROM t ORDER BY i", "--limit", len(TRICKY)))
    assert res.stdout.rstrip().endswith(f"{len(TRICKY)} rows")


def test_query_reads_a_runs_csv_floats_to_the_last_bit(outs):
    want = pd.read_csv(outs["run"] / "summary.csv", float_precision="round_trip")
    got = query(outs["run"], "SELECT * FROM summary")
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    want = pd.read_csv(outs["validate"] / "validation.csv", float_precision="round_trip")
    got = query(outs["validate"], "SELECT target_id, simulated FROM validation")
    assert _bits(got["simulated"]) == _bits(want["simulated"])


def test_query_json_of_a_real_run_equals_its_parquet(outs, tmp_path):
    target = tmp_path / "r.json"
    ok(invoke("query", outs["run"], "SELECT * FROM readouts", "--output", target))
    got = pd.DataFrame(json.loads(target.read_text()))
    want = pd.read_parquet(outs["run"] / "readouts.parquet")
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)


# ------------------------------------------------------------------ query: sandbox
@pytest.mark.parametrize("sql", [
    "COPY readouts TO 'x.csv'",
    "COPY (SELECT 1 AS a) TO '{run}/x.parquet' (FORMAT parquet)",
    "SELECT * FROM query('COPY (SELECT 1 AS a) TO ''{run}/x.csv''')",
    "ATTACH '{run}/x.duckdb' AS x",
    "INSTALL httpfs",
    "LOAD parquet",
    "CREATE TABLE x AS SELECT * FROM readouts",
    "CREATE VIEW x AS SELECT 1",
    "EXPORT DATABASE '{run}/dump'",
    "CHECKPOINT",
    "SET allowed_directories = ['/']",
    "RESET enable_external_access",
    "CALL pragma_version()",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM sniff_csv('{secret}')",
    "SELECT * FROM query('SELECT * FROM read_csv(''{secret}'')')",
    "SELECT * FROM glob('{outside}/*')",
    "SELECT * FROM read_csv('{run}/../secret.csv')",
    "SELECT * FROM read_csv('{run}_sibling/secret.csv')",
    "SELECT * FROM read_csv('/proc/self/environ')",
    "SELECT * FROM 'https://example.invalid/x.csv'",
])
def test_query_sandbox(outs, tmp_path, monkeypatch, sql):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.csv"
    secret.write_text("word\nhunter2\n")
    run = outside / "run"
    shutil.copytree(outs["run"], run)
    sibling = outside / "run_sibling"
    sibling.mkdir()
    (sibling / "secret.csv").write_text("word\nhunter2\n")
    monkeypatch.chdir(run)  # a relative write would land in the run folder
    before = snapshot(outside)
    res = invoke("query", run, sql.format(run=run, secret=secret, outside=outside))
    assert res.exit_code == 2, res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: SQL:"), res.stderr
    assert "hunter2" not in res.stdout + res.stderr
    assert snapshot(outside) == before  # nothing written, in the folder or beside it


def test_query_reads_the_folder_itself_and_writes_nothing(outs, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(outs["run"], run)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    res = ok(invoke("query", run, f"SELECT count(*) AS n FROM read_csv('{run}/summary.csv')",
                    "--format", "json"))
    assert json.loads(res.stdout) == [{"n": _csv_rows(run / "summary.csv")}]
    # a sort big enough to want spilling, and the documented query kinds
    for sql in ("SELECT * FROM range(300000) t(x) ORDER BY random()", "DESCRIBE readouts",
                "SUMMARIZE readouts", "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
                "FROM readouts SELECT arm LIMIT 1", "SHOW TABLES"):
        with RunTables(run) as db:
            assert len(db.df(sql)) > 0, sql
    assert snapshot(tmp_path) == before
    assert list(work.iterdir()) == []
