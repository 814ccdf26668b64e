"""The command-line contract: outputs of `ketasim run`, determinism, clear errors (exit 2),
atomic writes, and the parameter registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.cli import app
from ketasim.params import RegistryError, load_registry, parse_registry
from ketasim.signaling import spec

KETASIM = str(Path(sys.executable).with_name("ketasim"))
SMALL = """
name: small
species: mouse
seed: 3
arms:
  - name: saline
    n: 4
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: western_blot, at: [1h, 24h]}
      - {assay: plasma_pk, at: [10min, 1h]}
  - name: ketamine
    n: 4
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
compare:
  - {readout: pmtor_rel, assay: western_blot, at: 1h, arms: [ketamine, saline]}
"""


@pytest.fixture
def small(tmp_path) -> Path:
    p = tmp_path / "small.yaml"
    p.write_text(SMALL)
    return p


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_run_writes_the_contract_files(small, tmp_path):
    out = tmp_path / "out"
    res = invoke("run", small, "--out", out)
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"readouts.parquet", "summary.csv", "stats.csv", "manifest.json",
            "report.html"} <= names
    assert any(n.startswith("fig_") and n.endswith(".png") for n in names)
    r = pd.read_parquet(out / "readouts.parquet")
    assert list(r.columns) == ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
    assert set(r["arm"]) == {"saline", "ketamine"}
    s = pd.read_csv(out / "summary.csv")
    assert {"n", "mean", "sem"} <= set(s.columns)
    st = pd.read_csv(out / "stats.csv")
    assert {"test", "groups", "statistic", "p"} <= set(st.columns) and len(st) == 1
    m = json.loads((out / "manifest.json").read_text())
    for key in ("ketasim_version", "scenario_hash", "seed", "parameter_set", "timings_s"):
        assert key in m
    assert m["seed"] == 3
    # `ketasim --version` names the same version and the registry digest this run used
    ver = invoke("--version")
    assert ver.exit_code == 0, ver.output
    lines = ver.output.splitlines()
    assert lines[0].split()[:2] == ["ketasim", m["ketasim_version"]]
    assert lines[-1] == f"parameter registry sha256 {m['registry']['sha256']}"


@pytest.mark.slow  # three runs; test_cli checks the same on its shared runs
def test_same_seed_gives_byte_identical_readouts(small, tmp_path):
    for d in ("a", "b"):
        assert invoke("run", small, "--out", tmp_path / d).exit_code == 0
    assert (tmp_path / "a" / "readouts.parquet").read_bytes() == \
        (tmp_path / "b" / "readouts.parquet").read_bytes()
    assert invoke("run", small, "--out", tmp_path / "c", "--seed", "99").exit_code == 0
    a = pd.read_parquet(tmp_path / "a" / "readouts.parquet")
    c = pd.read_parquet(tmp_path / "c" / "readouts.parquet")
    assert not a["value"].equals(c["value"])
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["seed"] == 99


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([KETASIM, *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("bad", [
    SMALL.replace("seed: 3", "seed: 3\ncolour: red"),
    SMALL.replace("10 mg/kg", "10 mg/kilo"),
    SMALL.replace("10 mg/kg", "-10 mg/kg"),
    SMALL.replace("at: [1h, 24h]", "at: [1 hour]"),
])
def test_bad_scenario_one_line_exit_2(tmp_path, bad):
    p = tmp_path / "bad.yaml"
    p.write_text(bad)
    r = _cli("run", p, "--out", tmp_path / "out")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1
    assert "Traceback" not in r.stderr and "bad.yaml" in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_file_and_unwritable_out_exit_2(tmp_path, small):
    r = _cli("run", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert r.returncode == 2 and "nope.yaml" in r.stderr and "Traceback" not in r.stderr
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = _cli("run", small, "--out", blocker / "out")
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr


def test_existing_folder_needs_force_and_failed_run_leaves_it_untouched(
        tmp_path, small, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    (out / "manifest.json").write_text('{"ketasim_version": "0"}')  # an earlier run's folder
    assert invoke("run", small, "--out", out).exit_code == 2
    assert (out / "mine.txt").read_text() == "keep"

    import ketasim.report.run_folder as ro

    def boom(*a, **k):
        raise RuntimeError("report failed")

    monkeypatch.setattr(ro, "write_report", boom)
    res = invoke("run", small, "--out", out, "--force")
    assert res.exit_code != 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    monkeypatch.undo()
    assert invoke("run", small, "--out", out, "--force").exit_code == 0
    assert not (out / "mine.txt").exists() and (out / "readouts.parquet").exists()


def test_scenarios_schema_params_commands(tmp_path):
    res = invoke("scenarios")
    assert res.exit_code == 0 and "cort_ketamine" in res.output
    res = invoke("schema")
    schema = json.loads(res.output)
    assert schema["type"] == "object" and "arms" in schema["properties"]
    assert invoke("schema", "--out", tmp_path / "s.json").exit_code == 0
    assert json.loads((tmp_path / "s.json").read_text()) == schema
    res = invoke("params", "sig.k_")
    assert res.exit_code == 0 and "sig.k_da" in res.output and "pk.human" not in res.output


def test_export_sbml_bad_arm_and_subject(tmp_path):
    assert invoke("export-sbml", "default", "--out", tmp_path / "m.xml", "--arm",
                  "nope").exit_code == 2
    assert invoke("export-sbml", "default", "--out", tmp_path / "m.xml", "--subject",
                  "99").exit_code == 2
    assert invoke("export-sbml", "default", "--out", tmp_path / "m.xml", "--subject",
                  "1").exit_code == 0


# ------------------------------------------------------------------ registry
def test_every_parameter_has_unit_default_range_source():
    reg = load_registry()
    assert len(reg) > 100
    for p in reg:
        assert p.unit and p.source and p.description, p.name
        assert p.low <= p.value <= p.high, p.name
        src = p.source.lower()
        assert (src.startswith(("assumed", "fitted to"))
                or any(str(y) in p.source for y in range(1950, 2027))
                or "pubchem" in src or "label" in src or "calibration" in src), p.name


def test_every_model_parameter_resolves_for_every_species():
    """Every registry-backed parameter resolves; the rest are drug-slot parameters, set
    from compound files per arm (their default is an empty slot)."""
    reg = load_registry()
    slots = [p for p in spec.PARAMS if not p.registry]
    assert slots and all(p.default >= 0.0 for p in slots)
    for species in ("mouse", "rat", "human"):
        for p in spec.PARAMS:
            if p.registry:
                assert p.registry.format(species=species) in reg, p.name


@pytest.mark.parametrize("entry,message", [
    ("- {name: a, value: 1, unit: h, range: [0, 2], description: d}", "missing source"),
    ("- {name: a, value: 3, unit: h, range: [0, 2], source: assumed, description: d}",
     "outside its range"),
    ("- {name: a, value: 1, unit: h, range: [0, 2], source: assumed, description: d, x: 1}",
     "unknown fields"),
    (("- {name: a, value: 1, unit: h, range: [0, 2], source: assumed, description: d, "
     "bsv_cv: -1}"), "bsv_cv"),
    ("- {name: a, value: 1, range: [0, 2], source: assumed, description: d}", "missing unit"),
])
def test_registry_rejects_bad_entries(entry, message):
    with pytest.raises(RegistryError, match=message):
        parse_registry(entry)


def test_registry_rejects_duplicates():
    e = "- {name: a, value: 1, unit: h, range: [0, 2], source: assumed, description: d}\n"
    with pytest.raises(RegistryError, match="defined twice"):
        parse_registry(e + e)


def test_power_command(tmp_path):
    res = invoke("power", "default", "--compare", "1", "--n", "3:5", "--cohorts", "40",
                 "--out", tmp_path / "pw")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "pw" / "power.csv")
    assert list(df["n"]) == [3, 4, 5] and (tmp_path / "pw" / "power.png").exists()
    assert df["power"].iloc[-1] >= df["power"].iloc[0]
    assert invoke("power", "default", "--compare", "9", "--n", "4:6").exit_code == 2
    assert invoke("power", "default", "--compare", "0", "--n", "1:3").exit_code == 2


def test_architecture_outline_scenario_runs(tmp_path):
    """The scenario outline of ARCHITECTURE.md (the contract), read from that file with a
    second arm added for its comparison and 3 mice an arm: it loads (``tst`` is the tail
    suspension test) and runs, and its comparison is in stats.csv."""
    design = Path(__file__).resolve().parents[2] / "shared" / "design" / "ARCHITECTURE.md"
    if design.is_file():
        text = design.read_text()
        outline = text[text.index("name: cort-ketamine-as-parac1"):]
        outline = outline[:outline.index("```")]
    else:  # a clone without the shared folder: the outline as it stands (2026-12-05)
        outline = OUTLINE
    control = """  - name: cort_ket
    n: 10
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: tst, at: [3h, 2d]}
"""
    outline = outline.replace("compare:", control + "compare:").replace("n: 10", "n: 3")
    p = tmp_path / "outline.yaml"
    p.write_text(outline)
    from ketasim.scenario import load_scenario

    sc = load_scenario(p)
    assert [a.assay for a in sc.arms[0].assays] == ["two_photon_spines", "tail_suspension",
                                                     "sucrose_preference"]
    r = invoke("run", p, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    stats = pd.read_csv(tmp_path / "out" / "stats.csv")
    assert set(stats["readout"]) == {"tst_immobility_s"}
    readouts = pd.read_parquet(tmp_path / "out" / "readouts.parquet")
    assert {"two_photon_spines", "tail_suspension", "sucrose_preference"} <= set(
        readouts["assay"])


OUTLINE = """name: cort-ketamine-as-parac1
species: mouse            # mouse | rat | human
seed: 7
arms:
  - name: cort_ket_photo24h
    n: 10
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
      - {at: 24h, intervention: as_parac1_photoactivation}
    assays:
      - {assay: two_photon_spines, at: [-10d, 0h, 12h, 24h, 2d, 4d]}
      - {assay: tst, at: [3h, 2d]}
      - {assay: sucrose_preference, at: [2d]}
compare:
  - {readout: tst_immobility_s, at: 2d, arms: [cort_ket_photo24h, cort_ket]}
"""


def test_help_pages_keep_every_word_of_the_help_texts():
    """`--help` renders docstrings and option help as Markdown (paragraphs rewrapped to
    the terminal); nothing in them may be swallowed as markup (an ``<id>`` read as an
    HTML tag, a ``*`` pair read as emphasis)."""
    import re

    import typer.main

    words = re.compile(r"[A-Za-z0-9]+")
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        res = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "300"})
        assert res.exit_code == 0, (name, res.output)
        shown = set(words.findall(res.output))
        for text in texts:
            missing = set(words.findall(text)) - shown
            assert not missing, (name, sorted(missing), text)
