"""Provenance (issue 12): ketasim.provenance, the manifest of ``validate`` and of a run
written from Python with changed parameter values, and their report sections."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ketasim
from ketasim import provenance
from ketasim.cli import app
from ketasim.params import load_registry
from ketasim.validation.targets import replica_paths


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_provenance_imports_no_simulation_layer():
    code = ("import json, sys, ketasim.provenance; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('ketasim', "
            "'numba')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(json.loads(out))
    assert loaded <= {"ketasim", "ketasim.provenance", "ketasim.params",
                      "ketasim.params.registry", "ketasim.pk", "ketasim.pk.compounds",
                      "ketasim.pk.targets"}, loaded


def test_changed_values_lists_name_default_and_value():
    reg = load_registry()
    name = next(iter(reg)).name
    p = reg[name]
    changed = reg.with_values({name: p.value * 2 if p.value else 1.0})
    assert provenance.changed_values(reg) == []
    assert provenance.changed_values(changed) == [
        {"name": name, "default": p.value, "value": changed[name].value}]
    assert provenance.registry_digest(changed) != provenance.registry_digest(reg)


def test_git_state_of_a_checkout_and_of_a_plain_folder(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    assert provenance.git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.txt").write_text("2")
    assert provenance.git_state(repo) == {"commit": head, "dirty": True}
    # a folder inside a repository is not itself a checkout (a venv inside a project)
    (repo / "sub").mkdir()
    assert provenance.git_state(repo / "sub") == {"commit": None, "dirty": None}


def test_collect_records_inputs_and_replicas(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("name: x\n")
    prov = provenance.collect(registry=load_registry(), started="2020-01-01T00:00:00+00:00", inputs=[f, f],
                              replicas={"r": f})
    assert prov["inputs"] == [{"path": str(f), "sha256": _sha(f)}]  # each file once
    assert prov["replicas"] == [{"name": "r", "file": "x.yaml", "sha256": _sha(f),
                                 "text": "name: x\n"}]
    assert prov["ketasim_version"] == ketasim.__version__
    assert prov["started_utc"] < prov["finished_utc"]
    assert "scenario_text" not in prov


def test_validate_writes_a_manifest(tmp_path):
    """``validate --only T-PK-06`` (one PK replica): manifest.json holds each replica's
    name, text and hash, the target file's hash, versions, times and the registry; the
    report has the Provenance section."""
    out = tmp_path / "v"
    res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--out", str(out),
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    name = "pk_rat_hnk"
    path = replica_paths()[name]
    assert m["replicas"] == [{"name": name, "file": path.name, "sha256": _sha(path),
                              "text": path.read_text()}]
    targets = path.parent.parent / "targets.yaml"
    assert m["inputs"] == [{"path": str(path), "sha256": _sha(path)},
                           {"path": str(targets), "sha256": _sha(targets)}]
    assert m["only"] == ["T-PK-06"] and m["counts"]["pass"] + m["counts"]["fail"] == 1
    reg = load_registry()
    assert m["registry"] == {"sha256": provenance.registry_digest(reg), "changed": []}
    assert m["ketasim_version"] == ketasim.__version__ and m["libraries"]["numba"]
    assert m["started_utc"] <= m["finished_utc"]
    assert set(m["git"]) == {"commit", "dirty"}
    html = (out / "report.html").read_text()
    assert '<h2>Provenance</h2>' in html and _sha(path) in html
    assert not list(tmp_path.glob(".v.tmp-*"))  # written atomically with the rest


def test_run_manifest_lists_changed_parameter_values(tmp_path):
    """A run written from Python with a changed registry: the manifest and the report's
    Provenance section list the changed value with its default."""
    from ketasim.experiment.runner import simulate
    from ketasim.report.run_folder import write_run
    from ketasim.scenario import load_scenario_text

    sc = load_scenario_text("""
name: tiny
species: mouse
seed: 1
arms:
  - name: ketamine
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: plasma_pk, at: [10min, 1h]}
""")
    reg = load_registry()
    name = "pk.mouse.ketamine.cl" if "pk.mouse.ketamine.cl" in reg else next(
        p.name for p in reg if p.name.startswith("pk.mouse"))
    changed = reg.with_values({name: (reg[name].value + reg[name].high) / 2})
    write_run(simulate(sc, registry=changed), tmp_path / "r", registry=changed)
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["registry"]["changed"] == [{"name": name, "default": reg[name].value,
                                         "value": changed[name].value}]
    assert m["scenario_text"] is None and m["inputs"] == [] and m["started_utc"] is None
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'id="changed-parameters"' in html and name in html
    # the process's peak memory so far, in MB, in the manifest and the report
    import resource

    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    assert 50.0 < m["peak_rss_mb"] <= now + 0.1
    assert "peak memory (RSS)" in html and f"{m['peak_rss_mb']:,.0f} MB" in html


def test_peak_rss_is_none_without_the_resource_module(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_resource(name, *args, **kwargs):
        if name == "resource":
            raise ImportError("no resource module here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_resource)
    assert provenance.peak_rss_mb() is None
