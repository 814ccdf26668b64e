"""``--set NAME=VALUE``: a registry parameter changed for one command (run, validate,
power, screen, sweep, sensitivity, calibrate), checked like a sweep's values and recorded in the
manifest and the report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.cli import app
from ketasim.params import RegistryError, load_registry, parse_settings

REG = load_registry()
CL = "pk.mouse.ketamine.cl"
KP = "pk.mouse.ketamine.kp_brain"

SMALL = """
name: small
species: mouse
seed: 3
arms:
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: plasma_pk, at: [10min, 1h]}
"""


@pytest.fixture
def small(tmp_path) -> Path:
    """The small scenario, written to a file."""
    (path := tmp_path / "small.yaml").write_text(SMALL)
    return path


def invoke(*args):
    """``ketasim ARGS`` in this process; the arguments as strings."""
    return CliRunner().invoke(app, list(map(str, args)))


def test_settings_parse_repeated_and_comma_separated():
    p = REG[CL]
    v1, v2 = (p.low + p.high) / 2, REG[KP].low
    got = parse_settings(REG, [f"{CL}={v1}", f" {KP} = {v2} ,"])
    assert got == {CL: v1, KP: v2}
    new = REG.with_settings([f"{CL}={v1},{KP}={v2}"])
    assert new[CL].value == v1 and new[KP].value == v2
    assert new[CL].source == p.source and (new[CL].low, new[CL].high) == (p.low, p.high)
    # every other parameter keeps its value; the packaged registry is not touched
    assert all(new[q.name].value == q.value for q in REG if q.name not in (CL, KP))
    assert load_registry()[CL].value == p.value
    assert REG.with_settings([]).values() == REG.values()


@pytest.mark.parametrize("spec, message", [
    ("pk.mouse.ketamine.cl", "expected NAME=VALUE"),
    ("=3", "expected NAME=VALUE"),
    ("pk.mouse.ketamine.cl=", "expected NAME=VALUE"),
    ("pk.mouse.ketamine.clx=3", (r"not a parameter of the registry \(did you mean "
                                 r"'pk.mouse.ketamine.cl'\?\)")),
    ("pk.mouse.ketamine.cl=fast", "got 'fast'; expected a number"),
    ("pk.mouse.ketamine.cl=nan", "expected a finite number"),
    ("pk.mouse.ketamine.cl=1e9", r"outside the parameter's range \["),
    ("pk.mouse.ketamine.cl=3,pk.mouse.ketamine.cl=4", "given twice"),
])
def test_settings_errors_name_the_setting(spec, message):
    with pytest.raises(RegistryError, match=message) as e:
        parse_settings(REG, [spec], option="--set")
    assert str(e.value).startswith("--set ")


def test_run_with_set_changes_the_numbers_and_records_them(small, tmp_path):
    p = REG[CL]
    fast = min(p.high, 2 * p.value)
    assert invoke("run", small, "--out", tmp_path / "a").exit_code == 0
    res = invoke("run", small, "--out", tmp_path / "b", "--set", f"{CL}={fast}")
    assert res.exit_code == 0, res.output
    a = pd.read_parquet(tmp_path / "a" / "readouts.parquet")
    b = pd.read_parquet(tmp_path / "b" / "readouts.parquet")
    key = ["arm", "subject", "readout", "time_h"]
    ab = a.merge(b, on=key, suffixes=("_a", "_b"))
    late = ab[(ab["readout"] == "ketamine_plasma_ng_ml") & (ab["time_h"] == 1.0)]
    assert len(late) == 3 and np.all(late["value_b"] < late["value_a"])  # cleared faster
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["registry"]["changed"] == [{"name": CL, "default": p.value, "value": fast}]
    base = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert base["registry"]["changed"] == []
    assert base["registry"]["sha256"] != man["registry"]["sha256"]
    html = (tmp_path / "b" / "report.html").read_text()
    assert 'id="changed-parameters"' in html and CL in html


def test_bad_set_is_one_clear_error_and_writes_nothing(small, tmp_path):
    for cmd in (["run", small, "--out", tmp_path / "r"],
                ["validate", "--only", "T-PK-05", "--out", tmp_path / "v"],
                ["power", small, "--design", "--out", tmp_path / "p"],
                ["screen", "--out", tmp_path / "s"]):
        res = invoke(*cmd, "--set", "pk.mouse.ketamine.cl=-1")
        assert res.exit_code == 2, (cmd, res.output)
        assert "error: --set pk.mouse.ketamine.cl=-1: outside the parameter's range" in \
            " ".join(res.output.split())
    assert not any(tmp_path.joinpath(n).exists() for n in "rvps")


def test_validate_with_set(tmp_path):
    kp = REG[KP]
    new = min(kp.high, kp.value + 1.0)
    res = invoke("validate", "--only", "T-PK-05", "--out", tmp_path / "v", "--workers", "1",
                 "--set", f"{KP}={new}")
    assert res.exit_code in (0, 1), res.output
    t = pd.read_csv(tmp_path / "v" / "validation.csv")
    base = invoke("validate", "--only", "T-PK-05", "--out", tmp_path / "w", "--workers", "1")
    assert base.exit_code in (0, 1), base.output
    t0 = pd.read_csv(tmp_path / "w" / "validation.csv")
    # the brain:plasma ratio the target reads follows the partition set
    assert t["simulated"].iloc[0] / t0["simulated"].iloc[0] == pytest.approx(
        new / kp.value, rel=0.05)
    man = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert man["registry"]["changed"] == [{"name": KP, "default": kp.value, "value": new}]
    html = (tmp_path / "v" / "report.html").read_text()
    assert 'id="changed-parameters"' in html and 'id="changed-note"' in html
    assert f"{KP} = {new:g} (default {kp.value:g})" in html
    assert 'id="changed-note"' not in (tmp_path / "w" / "report.html").read_text()


def test_power_writes_a_manifest_with_the_settings(tmp_path):
    res = invoke("power", "default", "--compare", "1", "--n", "3:4", "--cohorts", "20",
                 "--out", tmp_path / "pw", "--set", f"{KP}={REG[KP].low}")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "pw").iterdir())
    assert names == ["manifest.json", "power.csv", "power.png"]
    man = json.loads((tmp_path / "pw" / "manifest.json").read_text())
    assert man["command"] == "power" and man["analysis"] == {"compare": 1}
    assert man["n"] == [3, 4] and man["cohorts"] == 20 and man["scenario_text"]
    assert man["registry"]["changed"][0]["name"] == KP
    assert "manifest.json" in res.output


def test_a_parameter_is_set_or_varied_not_both(tmp_path):
    res = invoke("sweep", "default", "--vary", f"{CL}=2,3", "--out", tmp_path / "sw",
                 "--set", f"{CL}=3")
    assert res.exit_code == 2
    assert "also varied here" in " ".join(res.output.split())
    assert not (tmp_path / "sw").exists()
    res = invoke("calibrate", "default", "--data", tmp_path / "none.csv", "--params", CL,
                 "--out", tmp_path / "cal", "--set", f"{CL}=3")
    assert res.exit_code == 2
    assert "also fitted here" in " ".join(res.output.split())
    assert not (tmp_path / "cal").exists()
    res = invoke("sensitivity", "default", "--readout", "pmtor_rel", "--params", "pk.mouse.*",
                 "--out", tmp_path / "sens", "--set", f"{CL}=3")
    assert res.exit_code == 2
    assert "also analysed here" in " ".join(res.output.split())
    assert not (tmp_path / "sens").exists()


def test_export_sbml_with_set(tmp_path):
    import libsbml

    kp = REG[KP]
    new = min(kp.high, kp.value + 1.0)
    for args, name in (((), "a.xml"), (("--set", f"{KP}={new}"), "b.xml")):
        res = invoke("export-sbml", "default", "--arm", "ketamine", "--out", tmp_path / name,
                     *args)
        assert res.exit_code == 0, res.output
    values = []
    for name in ("a.xml", "b.xml"):
        model = libsbml.readSBMLFromFile(str(tmp_path / name)).getModel()
        values.append({p.getId(): p.getValue() for p in model.getListOfParameters()})
    differ = {k for k in values[0] if values[0][k] != values[1].get(k)}
    assert differ  # the partition reaches the exported model's parameters
    assert invoke("export-sbml", "default", "--out", tmp_path / "c.xml", "--set",
                  f"{KP}=1e9").exit_code == 2
    assert not (tmp_path / "c.xml").exists()


def test_run_against_an_earlier_run(small, tmp_path):
    sc = small
    cl = load_registry()["pk.mouse.ketamine.cl"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("run", sc, "--out", a).exit_code == 0
    res = invoke("run", sc, "--out", b, "--set", f"pk.mouse.ketamine.cl={cl.high}",
                 "--against", a)
    assert res.exit_code == 0, res.output
    assert "comparison.csv" in res.output and "moved" in res.output
    c = pd.read_csv(b / "comparison.csv")
    late = c[(c["readout"] == "ketamine_plasma_ng_ml") & (c["time_h"] == 1.0)]
    assert list(late["change"]) == ["value"] and (late["difference"] < 0).all()
    summary = pd.read_csv(a / "summary.csv")
    assert len(c) == len(summary)
    man = json.loads((b / "manifest.json").read_text())
    digest = hashlib.sha256((a / "summary.csv").read_bytes()).hexdigest()
    assert man["against"] == {"path": str(a / "summary.csv"), "sha256": digest}
    html = (b / "report.html").read_text()
    assert 'id="against"' in html and 'id="against-rows"' in html
    # a run against itself: nothing moved
    assert invoke("run", sc, "--out", tmp_path / "c", "--against", a).exit_code == 0
    assert set(pd.read_csv(tmp_path / "c" / "comparison.csv")["change"]) == {"same"}
    # a validation folder is not a run folder
    res = invoke("run", sc, "--out", tmp_path / "d", "--against", tmp_path / "nowhere")
    assert res.exit_code == 2 and "no summary.csv there" in " ".join(res.output.split())
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--seed", "-1"], "--seed: got -1"),
    (["--arm", "ketamine", "--contrast", "ketamine"], "--contrast: got 'ketamine', the --arm"),
    (["--params", " , "], "--params: empty"),
])
def test_sensitivity_arguments_checked_before_anything_runs(tmp_path, extra, fragment):
    """A negative seed (a SALib traceback), an arm against itself (every index 0) and an
    empty parameter list (silently all of them) are one error each, nothing written."""
    args = ["sensitivity", "default", "--readout", "pmtor_rel", "--out", tmp_path / "s"]
    if "--params" not in extra:
        args += ["--params", "sig.k_synthesis"]
    res = invoke(*args, *extra)
    assert res.exit_code == 2, res.output
    assert fragment in " ".join(res.output.split())
    assert not (tmp_path / "s").exists()
    res = invoke("calibrate", "default", "--data", tmp_path / "none.csv", "--params",
                 "sig.k_synthesis", "--out", tmp_path / "c", "--seed", "-1")
    assert res.exit_code == 2 and "--seed: got -1" in res.output


def test_sweep_scheduler_local_is_the_embedded_cluster(monkeypatch, tmp_path):
    """--scheduler local (which the CLI accepts) reaches the sweep as the embedded local
    cluster, not as an address ('missing port number in address local')."""
    from ketasim.sweep import core

    seen = {}

    class Stop(Exception):
        pass

    def fake(executor, scheduler, workers):
        seen["args"] = (executor, scheduler, workers)
        raise Stop

    monkeypatch.setattr(core, "_Backend", fake)
    from ketasim.scenario import load_scenario

    samples = pd.DataFrame({"sig.k_synthesis": [1.0]})
    with pytest.raises(Stop):
        core.run_sweep(load_scenario("default"), samples, tmp_path / "sw",
                       scheduler="local", workers=1, progress=False)
    assert seen["args"] == (None, None, 1)


def test_a_compound_folder_named_relative_and_absolute_is_one_folder(tmp_path, monkeypatch):
    from ketasim.pk.compounds import add_compounds, reset_compounds

    src = Path(__file__).resolve().parents[1] / "ketasim" / "compounds" / "memantine.yaml"
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "mydrug.yaml").write_text(src.read_text().replace("name: memantine",
                                                                 "name: mydrug"))
    monkeypatch.chdir(tmp_path)
    try:
        assert add_compounds("c") == ["mydrug"]
        assert add_compounds(folder.resolve()) == ["mydrug"]  # a sweep worker's reload
    finally:
        reset_compounds()


def test_params_with_an_unknown_prefix_is_an_error():
    res = invoke("params", "nope")
    assert res.exit_code == 2
    assert "no parameter starts with 'nope'" in " ".join(res.output.split())
    assert invoke("params", "sig.k_syn").exit_code == 0


def test_validate_workers_must_be_positive(tmp_path):
    res = invoke("validate", "--only", "T-PK-04", "--workers", "0", "--out", tmp_path / "v")
    assert res.exit_code == 2 and "--workers: got 0" in " ".join(res.output.split())
    assert not (tmp_path / "v").exists()
