"""The sweep, sensitivity and calibrate commands: wiring and one clear error (issue 17)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.cli import app

SCENARIO = """
name: sw
species: mouse
seed: 4
arms:
  - name: ketamine
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: signaling_state, at: [1h, 24h]}]
"""


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.mark.parametrize("args, fragment", [
    (["sweep", "{sc}", "--out", "{out}"], "give --vary or --samples"),
    (["sweep", "{sc}", "--vary", "sig.nope=1:2:2", "--out", "{out}"], "sig.nope"),
    (["sweep", "{sc}", "--vary", "sig.k_potentiation_off=1:2", "--out", "{out}"], "LO:HI:N"),
    (["sensitivity", "{sc}", "--readout", "nope", "--out", "{out}"], "nope"),
    # the time read is checked before anything is simulated
    (["sensitivity", "{sc}", "--readout", "plasticity_potential", "--at", "48h", "--out",
      "{out}"],
     "--at: got '48h'; plasticity_potential is measured at 1h, 1d"),
    (["sensitivity", "{sc}", "--readout", "plasticity_potential", "--at", "24", "--out",
      "{out}"],
     "--at: got '24'"),
    (["sweep", "{sc}", "--vary", "sig.k_potentiation_off=1,2", "--out", "{out}",
      "--scheduler", "garbage"], "--scheduler: got 'garbage'"),
    (["sweep", "{sc}", "--vary", "sig.k_potentiation_off=1,2", "--out", "{out}",
      "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
    (["sensitivity", "{sc}", "--readout", "plasticity_potential", "--out", "{out}",
      "--scheduler", "tcp://nohost"], "--scheduler: got 'tcp://nohost'"),
    (["calibrate", "{sc}", "--data", "{missing}", "--params", "sig.k_potentiation_off",
      "--out", "{out}"], "missing.csv"),
])
def test_bad_input_is_one_error_exit_2(tmp_path, args, fragment):
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    fill = {"sc": str(sc), "out": str(tmp_path / "out"), "missing": str(tmp_path / "missing.csv")}
    r = CliRunner().invoke(app, [a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and fragment in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()  # nothing written


def test_sensitivity_never_writes_into_another_commands_folder(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(sc), "--out", str(run)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = CliRunner().invoke(app, ["sensitivity", str(sc), "--readout", "plasticity_potential",
                                 "--arm", "ketamine", "--at", "24h", "--method", "morris",
                                 "--n", "2", "--out", str(run), "--workers", "1"])
    assert r.exit_code == 2 and "holds another command's files" in r.output, r.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_sweep_command_writes_a_resumable_folder(tmp_path):
    from ketasim.sweep.core import read_sweep

    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    args = ["sweep", str(sc), "--vary", "sig.k_potentiation_off=0.02:0.08:3", "--out",
            str(tmp_path / "sw"), "--workers", "1", "--chunk", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    first = read_sweep(tmp_path / "sw")
    r = CliRunner().invoke(app, args)  # resumes: nothing left to do, same result
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(first, read_sweep(tmp_path / "sw"))
    pot = first[(first.readout == "synaptic_potentiation") & (first.time_h == 24.0)]
    assert pot["mean"].is_monotonic_decreasing  # faster decay, less potentiation left


def test_sweep_with_set_runs_every_sample_with_the_value_and_records_it(tmp_path):
    import json

    from ketasim.params import load_registry
    from ketasim.sweep.core import read_sweep

    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    on = load_registry()["sig.k_potentiation_on"]
    new = min(on.high, 1.5 * on.value)
    base = ["sweep", str(sc), "--vary", "sig.k_potentiation_off=0.02,0.08", "--workers", "1"]
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b"), "--set",
                                 f"sig.k_potentiation_on={new}"])
    assert r.exit_code == 0, r.output
    pot = [read_sweep(tmp_path / x).query("readout == 'synaptic_potentiation' and time_h == 1.0")
           .sort_values("sample")["mean"].to_numpy() for x in "ab"]
    assert (pot[1] > pot[0]).all()  # a faster rise in every sample
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["registry"]["changed"] == [
        {"name": "sig.k_potentiation_on", "default": on.value, "value": new}]
    # resuming that folder with other values is refused, not mixed
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b")])
    assert r.exit_code == 2, r.output
