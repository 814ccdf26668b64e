"""The ``ketasim`` command line against the contract in ARCHITECTURE.md.

Covers ``run`` (the files it writes and their columns, seeds and byte-identical
determinism, one-line exit-2 errors, atomic replacement of ``--out``), ``scenarios``,
``schema``, ``params`` and ``export-sbml``. Most calls go through typer's ``CliRunner``;
the exit status and stderr of the installed console script are checked in a real
subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.cli import app
from ketasim.params import load_registry
from ketasim.scenario import builtin_scenarios, load_scenario, scenario_hash

REPO = Path(__file__).resolve().parents[1]
CONTRACT_FILES = {"readouts.parquet", "summary.csv", "stats.csv", "manifest.json", "report.html"}
READOUT_COLUMNS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
SMALL_N = 3
WIDE = {"COLUMNS": "300"}


# ------------------------------------------------------------------ helpers
def _ketasim_exe() -> str | None:
    """Locate the installed ``ketasim`` console script of this environment.

    Returns
    -------
    str or None
        Path of the script, or None when it is not installed.
    """
    for cand in (Path(sys.executable).with_name("ketasim"), REPO / ".venv" / "bin" / "ketasim"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("ketasim")


def default_text(n: int = SMALL_N) -> str:
    """The built-in ``default`` scenario as YAML text, with every arm's ``n`` replaced.

    Parameters
    ----------
    n : int
        Subjects per arm.

    Returns
    -------
    str
        Scenario YAML text.
    """
    text = builtin_scenarios()["default"].read_text()
    small, count = re.subn(r"(?m)^(\s+n:\s*)\d+\s*$", rf"\g<1>{n}", text)
    assert count >= 2, "default.yaml no longer has per-arm 'n:' lines to shrink"
    return small


def invoke(*args, env: dict | None = None):
    """Run the CLI in-process.

    Parameters
    ----------
    *args
        Command-line arguments (converted to str).
    env : dict, optional
        Environment variables set for the call.

    Returns
    -------
    click.testing.Result
        With ``exit_code``, ``stdout``, ``stderr`` and ``exception``.
    """
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def cli(*args) -> subprocess.CompletedProcess:
    """Run the installed ``ketasim`` script in a subprocess (skip if it is not installed).

    Parameters
    ----------
    *args
        Command-line arguments (converted to str).

    Returns
    -------
    subprocess.CompletedProcess
        With text ``stdout`` and ``stderr``.
    """
    exe = _ketasim_exe()
    if exe is None:
        pytest.skip("the ketasim console script is not installed")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)


def assert_one_error_line(stderr: str, *fragments: str) -> str:
    """Check that ``stderr`` is exactly one ``error:`` line and no traceback.

    Parameters
    ----------
    stderr : str
        Captured standard error.
    *fragments : str
        Texts the line must contain (the field, the value, ...).

    Returns
    -------
    str
        The error line.
    """
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()  # a blank line (a finished progress bar's) counts too
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr!r}"
    assert lines[0].startswith("error:"), lines[0]
    for frag in fragments:
        assert frag in lines[0], f"{frag!r} not in {lines[0]!r}"
    return lines[0]


def table_first_column(text: str) -> list[str]:
    """First-column cells of the rows of a rich box table (continuation rows skipped).

    Parameters
    ----------
    text : str
        Printed table.

    Returns
    -------
    list of str
        Non-empty first cells of the body rows (the header uses other box characters).
    """
    cells = []
    for line in text.splitlines():
        if line.startswith("│"):
            cell = line.split("│")[1].strip()
            if cell:
                cells.append(cell)
    return cells


def tmp_leftovers(folder: Path, out_name: str) -> list[str]:
    """Names of temporary or backup folders ``atomic_dir`` may have left beside ``out``.

    Parameters
    ----------
    folder : pathlib.Path
        Parent folder of the output.
    out_name : str
        Name of the output folder.

    Returns
    -------
    list of str
        Names starting with ``.<out_name>.``.
    """
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{out_name}."))


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def small_yaml(tmp_path_factory) -> Path:
    """The default scenario with n reduced, written to a temporary file."""
    p = tmp_path_factory.mktemp("scenario") / "small.yaml"
    p.write_text(default_text())
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_yaml) -> dict[str, Path]:
    """Three runs of the small scenario: twice with its own seed, once with ``--seed 99``."""
    base = tmp_path_factory.mktemp("runs")
    outs = {}
    for key, extra in (("a", ()), ("b", ()), ("seed99", ("--seed", 99))):
        outs[key] = base / key
        res = invoke("run", small_yaml, "--out", outs[key], *extra)
        assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    return outs


# ------------------------------------------------------------------ run: the files
def test_run_writes_exactly_the_contract_files(runs):
    out = runs["a"]
    names = {p.name for p in out.iterdir()}
    figures = {n for n in names if n.startswith("fig_") and n.endswith(".png")}
    assert names - figures == CONTRACT_FILES
    assays = set(pd.read_parquet(out / "readouts.parquet")["assay"])
    assert figures == {f"fig_{a}.png" for a in assays}
    for f in figures:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    html = (out / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    assert html.count("data:image/png;base64,") == len(figures)


def test_readouts_parquet_columns_and_content(runs):
    r = pd.read_parquet(runs["a"] / "readouts.parquet")
    assert list(r.columns) == READOUT_COLUMNS
    assert pd.api.types.is_integer_dtype(r["subject"])
    assert pd.api.types.is_float_dtype(r["time_h"]) and pd.api.types.is_float_dtype(r["value"])
    assert list(dict.fromkeys(r["arm"])) == ["saline", "ketamine"]
    for arm, g in r.groupby("arm"):
        assert sorted(set(g["subject"])) == list(range(SMALL_N)), arm
    assert set(r["assay"]) == {"plasma_pk", "brain_pk", "microdialysis_da", "western_blot",
                               "signaling_state"}
    # time 0 is the dose: the dialysis baseline is sampled before it
    da = r[r["assay"] == "microdialysis_da"]
    assert da["time_h"].min() == pytest.approx(-1.0)
    assert r["unit"].map(lambda u: isinstance(u, str)).all()


def test_summary_csv_matches_the_readouts(runs):
    r = pd.read_parquet(runs["a"] / "readouts.parquet")
    s = pd.read_csv(runs["a"] / "summary.csv", float_precision="round_trip")
    assert {"arm", "assay", "readout", "time_h", "n", "mean", "sem"} <= set(s.columns)
    expect = (r.groupby(["arm", "assay", "readout", "time_h"])["value"]
              .agg(n="count", mean="mean", sd=lambda v: v.std(ddof=1)).reset_index())
    merged = s.merge(expect, on=["arm", "assay", "readout", "time_h"], suffixes=("", "_x"),
                     validate="one_to_one")
    assert len(merged) == len(s) == len(expect)
    assert (merged["n"] == merged["n_x"]).all()
    np.testing.assert_allclose(merged["mean"], merged["mean_x"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(merged["sem"], merged["sd"] / np.sqrt(merged["n_x"]), rtol=1e-9,
                               equal_nan=True)


def test_stats_csv_has_one_row_per_comparison(runs, small_yaml):
    st = pd.read_csv(runs["a"] / "stats.csv")
    assert {"test", "groups", "statistic", "p"} <= set(st.columns)
    sc = load_scenario(small_yaml)
    assert len(st) == len(sc.compare) == 2
    assert list(st["groups"]) == [";".join(c.arms) for c in sc.compare]
    assert list(st["test"]) == [c.test for c in sc.compare]
    assert st["p"].between(0, 1).all() and np.isfinite(st["statistic"]).all()


def test_manifest_json(runs, small_yaml):
    m = json.loads((runs["a"] / "manifest.json").read_text())
    for key in ("ketasim_version", "scenario_hash", "seed", "parameter_set", "timings_s"):
        assert key in m, key
    assert m["ketasim_version"] == ketasim.__version__
    assert m["scenario_hash"] == scenario_hash(load_scenario(small_yaml))
    assert m["seed"] == load_scenario(small_yaml).seed == 1
    assert m["parameter_set"]["values"] == load_registry().values()
    assert m["timings_s"]["total"] > 0


def test_manifest_provenance(runs, small_yaml):
    """Provenance of a run (issue 12): the scenario text and the hash of its file, the
    registry digest and no changed values, versions, times; the report shows them."""
    import hashlib

    m = json.loads((runs["a"] / "manifest.json").read_text())
    assert m["scenario_text"] == small_yaml.read_text()
    assert m["inputs"] == [{"path": str(small_yaml),
                            "sha256": hashlib.sha256(small_yaml.read_bytes()).hexdigest()}]
    assert m["registry"] == {"sha256": m["parameter_set"]["registry_sha256"], "changed": []}
    assert set(m["git"]) == {"commit", "dirty"}
    if m["git"]["commit"] is not None:  # running from the git checkout
        assert re.fullmatch(r"[0-9a-f]{40}", m["git"]["commit"])
        assert isinstance(m["git"]["dirty"], bool)
    assert m["started_utc"] <= m["finished_utc"] and m["started_utc"].endswith("+00:00")
    assert m["libraries"]["numpy"] == np.__version__
    assert m["libraries"]["pandas"] == pd.__version__
    assert m["python"] == sys.version.split()[0] and m["platform"]
    html = (runs["a"] / "report.html").read_text()
    assert "<h2>Provenance</h2>" in html and m["registry"]["sha256"] in html
    assert m["inputs"][0]["sha256"] in html and m["started_utc"] in html


def test_builtin_scenario_manifest_names_its_packaged_file(tmp_path):
    res = invoke("run", "human_ketamine_infusion", "--out", tmp_path / "pk")
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    m = json.loads((tmp_path / "pk" / "manifest.json").read_text())
    path = builtin_scenarios()["human_ketamine_infusion"]
    assert m["inputs"][0]["path"] == str(path) and m["scenario_text"] == path.read_text()
    # the run's time and the process's peak memory, printed after the files
    tail = res.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+\.\d s, peak RSS [\d,]+ MB", tail), tail


# ------------------------------------------------------------------ run: seeds
def test_same_seed_gives_byte_identical_readouts(runs):
    a = (runs["a"] / "readouts.parquet").read_bytes()
    assert a == (runs["b"] / "readouts.parquet").read_bytes()


def test_seed_option_overrides_the_scenario_seed(runs):
    assert json.loads((runs["seed99"] / "manifest.json").read_text())["seed"] == 99
    a = pd.read_parquet(runs["a"] / "readouts.parquet")
    c = pd.read_parquet(runs["seed99"] / "readouts.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="value"), c.drop(columns="value"))
    both = a["value"].notna() & c["value"].notna()
    assert not np.allclose(a.loc[both, "value"], c.loc[both, "value"])


# ------------------------------------------------------------------ run: errors (exit 2)
@pytest.mark.parametrize("old,new,fragments", [
    ("seed: 1", "seed: 1\ncolour: red", ("colour",)),
    ("dose: 10 mg/kg", "dose: 10 mg/kilo", ("dose", "mg/kilo")),
    ("dose: 10 mg/kg", "dose: -10 mg/kg", ("dose", "-10 mg/kg")),
], ids=["unknown-key", "bad-unit", "negative-dose"])
def test_bad_scenario_exits_2_with_one_line(tmp_path, old, new, fragments):
    text = default_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    out = tmp_path / "out"
    r = cli("run", bad, "--out", out)
    assert r.returncode == 2, r.stderr
    assert_one_error_line(r.stderr, "bad.yaml", *fragments)
    assert not out.exists() and tmp_leftovers(tmp_path, "out") == []


def test_missing_scenario_file_exits_2(tmp_path):
    r = cli("run", tmp_path / "nope.yaml", "--out", tmp_path / "out")
    assert r.returncode == 2
    assert_one_error_line(r.stderr, "nope.yaml")
    assert not (tmp_path / "out").exists()


def test_out_under_a_regular_file_exits_2(tmp_path, small_yaml):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = cli("run", small_yaml, "--out", blocker / "out")
    assert r.returncode == 2
    assert_one_error_line(r.stderr, "--out")
    assert blocker.read_text() == "x"


def test_out_that_is_a_regular_file_exits_2(tmp_path, small_yaml):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for extra in ((), ("--force",)):
        res = invoke("run", small_yaml, "--out", blocker, *extra)
        assert res.exit_code == 2
        assert_one_error_line(res.stderr, "--out")
        assert blocker.read_text() == "x"


def test_out_under_a_read_only_folder_exits_2(tmp_path, small_yaml):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("a 0o500 folder is still writable here (running as root)")
        res = invoke("run", small_yaml, "--out", ro / "out")
        assert res.exit_code == 2
        assert_one_error_line(res.stderr, "--out")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_bad_seed_exits_2(tmp_path, small_yaml):
    res = invoke("run", small_yaml, "--out", tmp_path / "out", "--seed", -1)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "--seed", "-1")
    assert not (tmp_path / "out").exists()


def test_existing_folder_needs_force_and_force_replaces_it(tmp_path, small_yaml):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    res = invoke("run", small_yaml, "--out", out)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "--out", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep"

    # --force replaces only an earlier ketasim output: a folder of the user's own files
    # (a lab's data, the scenario itself) is never deleted
    res = invoke("run", small_yaml, "--out", out, "--force")
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "--out", "not an earlier ketasim output")
    assert (out / "mine.txt").read_text() == "keep"

    (out / "manifest.json").write_text('{"ketasim_version": "0"}')  # an earlier run's folder
    res = invoke("run", small_yaml, "--out", out, "--force")
    assert res.exit_code == 0, (res.stderr, res.exception)
    names = {p.name for p in out.iterdir()}
    assert "mine.txt" not in names and CONTRACT_FILES <= names
    assert tmp_leftovers(tmp_path, "out") == []


def test_force_never_replaces_the_current_folder(tmp_path, small_yaml, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifest.json").write_text("{}")
    (work / "data.csv").write_text("keep")
    monkeypatch.chdir(work)
    for out in (".", str(tmp_path)):
        res = invoke("run", small_yaml, "--out", out, "--force")
        assert res.exit_code == 2
        assert_one_error_line(res.stderr, "--out", "current folder")
    assert (work / "data.csv").read_text() == "keep"


@pytest.mark.parametrize("where", ["path-tag", "path-closing-tag", "scenario-value"])
def test_error_line_shows_bracketed_user_text_verbatim(tmp_path, where):
    if where == "scenario-value":
        scenario = tmp_path / "s.yaml"
        scenario.write_text(default_text().replace("name: default", 'name: "[/x]"', 1))
        literal = "[/x]"
    else:
        literal = "runs[v2]" if where == "path-tag" else "[/x]"
        scenario = tmp_path / literal / "s.yaml"
    res = invoke("run", scenario, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.exception
    assert_one_error_line(res.stderr, literal)


# ------------------------------------------------------------------ run: atomicity
@pytest.fixture
def failing_report(monkeypatch) -> list:
    """Make the report writer raise after the simulation; record that it was reached."""
    from ketasim.report import run_folder

    calls = []

    def boom(out, title, description, readouts, *args, **kwargs):
        calls.append(len(readouts))
        (Path(out) / "partial.txt").write_text("half-written")
        raise RuntimeError("report failed on purpose")

    monkeypatch.setattr(run_folder, "write_report", boom)
    return calls


def test_failed_run_leaves_no_folder_behind(tmp_path, small_yaml, failing_report):
    out = tmp_path / "out"
    res = invoke("run", small_yaml, "--out", out)
    assert res.exit_code != 0
    assert isinstance(res.exception, RuntimeError) and "on purpose" in str(res.exception)
    assert failing_report and failing_report[0] > 0, "the failure must come after simulation"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_forced_run_keeps_the_old_folder_untouched(tmp_path, small_yaml, failing_report):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "manifest.json").write_text('{"ketasim_version": "0"}')  # an earlier run's folder
    (out / "mine.txt").write_text("keep")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    res = invoke("run", small_yaml, "--out", out, "--force")
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)
    assert failing_report, "the failure must come after simulation"
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert tmp_leftovers(tmp_path, "out") == []


# ------------------------------------------------------------------ scenarios, schema, params
def test_scenarios_lists_every_builtin():
    res = invoke("scenarios", env=WIDE)
    assert res.exit_code == 0
    assert set(table_first_column(res.stdout)) == set(builtin_scenarios())


def test_scenarios_names_are_whole_at_80_columns():
    res = invoke("scenarios", env={"COLUMNS": "80"})
    assert res.exit_code == 0
    assert set(table_first_column(res.stdout)) == set(builtin_scenarios())


def test_schema_prints_json_and_writes_it(tmp_path):
    res = invoke("schema")
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    assert schema["type"] == "object"
    assert {"name", "species", "seed", "arms", "compare"} <= set(schema["properties"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    import yaml

    jsonschema.validate(yaml.safe_load(builtin_scenarios()["default"].read_text()), schema)

    path = tmp_path / "schema.json"
    res = invoke("schema", "--out", path)
    assert res.exit_code == 0
    assert json.loads(path.read_text()) == schema


def test_schema_to_unwritable_path_exits_2(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = invoke("schema", "--out", blocker / "schema.json")
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "--out")


def test_params_shows_every_parameter_name():
    res = invoke("params", env=WIDE)
    assert res.exit_code == 0
    assert table_first_column(res.stdout) == [p.name for p in load_registry()]


def test_params_prefix_filters():
    res = invoke("params", "sig.", env=WIDE)
    assert res.exit_code == 0
    shown = table_first_column(res.stdout)
    expected = [p.name for p in load_registry() if p.name.startswith("sig.")]
    assert expected and shown == expected
    res = invoke("params", "no.such.prefix", env=WIDE)  # a typo, not an empty listing
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "no parameter starts with 'no.such.prefix'", "sig.")


def test_params_names_are_whole_at_80_columns():
    res = invoke("params", "sig.", env={"COLUMNS": "80"})
    assert res.exit_code == 0
    shown = table_first_column(res.stdout)
    assert shown == [p.name for p in load_registry() if p.name.startswith("sig.")]


# ------------------------------------------------------------------ export-sbml
def test_export_sbml_writes_valid_sbml(tmp_path):
    libsbml = pytest.importorskip("libsbml")
    path = tmp_path / "m.xml"
    res = invoke("export-sbml", "default", "--out", path)
    assert res.exit_code == 0, (res.stderr, res.exception)
    doc = libsbml.readSBMLFromFile(str(path))
    errors = [doc.getError(i).getMessage() for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert errors == []
    model = doc.getModel()
    assert model is not None and model.getNumSpecies() + model.getNumParameters() > 0
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)


@pytest.mark.parametrize("args,fragments", [
    (("--arm", "nope"), ("--arm", "nope")),
    (("--subject", "99"), ("--subject", "99")),
    (("--subject", "-1"), ("--subject", "-1")),
], ids=["arm", "subject-too-big", "subject-negative"])
def test_export_sbml_bad_arm_or_subject_exits_2(tmp_path, args, fragments):
    path = tmp_path / "m.xml"
    res = invoke("export-sbml", "default", "--out", path, *args)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, *fragments)
    assert not path.exists()


def test_single_file_outputs_never_replace_silently(tmp_path, small_yaml):
    """schema, export-sbml and query write one file: an existing one is replaced only
    with --force, and a file of a ketasim output folder never (export-sbml replaced
    the scenario it read; query another run's stats.csv)."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(Path(small_yaml).read_text())
    res = invoke("export-sbml", str(mine), "--out", mine)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "--out", "file exists", "--force")
    assert mine.read_text() == Path(small_yaml).read_text()
    schema_file = tmp_path / "schema.json"
    schema_file.write_text("mine")
    assert invoke("schema", "--out", schema_file).exit_code == 2
    assert schema_file.read_text() == "mine"
    assert invoke("schema", "--out", schema_file, "--force").exit_code == 0
    assert schema_file.read_text().startswith("{")
    run = tmp_path / "run"
    assert invoke("run", small_yaml, "--out", run).exit_code == 0
    other = tmp_path / "other"
    assert invoke("run", small_yaml, "--out", other).exit_code == 0
    stats = (other / "stats.csv").read_bytes()
    for force in ([], ["--force"]):
        res = invoke("query", run, "SELECT 1 AS x", "--output", other / "stats.csv", *force)
        assert res.exit_code == 2, res.stderr
        assert "output folder" in res.stderr
        res = invoke("export-sbml", str(mine), "--out", other / "stats.csv", *force)
        assert res.exit_code == 2
    assert (other / "stats.csv").read_bytes() == stats
