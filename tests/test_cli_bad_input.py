"""Bad input found by a user-level audit (2026-12-06), each one clear error with exit
status 2 and nothing written: an empty ``--only``, analyze design options and
comparisons that read nothing, a user target whose statistic cannot be computed, a
compound file with a key given twice or broken YAML, an event named by what it is when
the arm is compiled; and a full disk or SIGTERM leave no partial output."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ketasim.cli import app

pytestmark = pytest.mark.usefixtures("private_home")

DEPOSIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "phoumthipphavong2016"

SMALL = """
name: small
species: mouse
seed: 3
arms:
  - name: saline
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: western_blot, at: [1h, 24h]}]
  - name: ketamine
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: western_blot, at: [1h, 24h]}]
"""


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("args", [
    ["validate", "--only", "", "--out", "{out}"],
    ["validate", "--only", " , ", "--out", "{out}"],
    ["screen", "--only", "", "--n", "2", "--out", "{out}"],
])
def test_an_empty_only_is_an_error_not_everything(tmp_path, args):
    r = _invoke(*[a.format(out=tmp_path / "out") for a in args])
    assert r.exit_code == 2 and "--only: no names given" in r.output, r.output
    assert not (tmp_path / "out").exists()


def _behaviour_design(tmp_path, options):
    pd.DataFrame({"subject": ["m1"] * 3, "time_s": [0.0, 1.0, 2.0], "x_cm": [0.0, 1.0, 2.0],
                  "y_cm": [0.0, 0.0, 0.0]}).to_csv(tmp_path / "of.csv", index=False)
    design = {"name": "of", "groups": {"a": ["m1"]},
              "files": [{"path": str(tmp_path / "of.csv"), "time": "1d"}],
              "options": options}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    return tmp_path / "d.yaml"


@pytest.mark.parametrize("options, fragment", [
    ({"bin_s": 0}, "options.bin_s: got 0; expected a number >= 1e-09"),
    ({"bin_s": "abc"}, "options.bin_s: got 'abc'"),
    ({"bin_sec": 60}, "options.bin_sec: not a design option"),
])
def test_bad_design_options_are_one_error(tmp_path, options, fragment):
    d = _behaviour_design(tmp_path, options)
    r = _invoke("analyze", "behavior", tmp_path / "of.csv", "--design", d, "--out",
                tmp_path / "out")
    assert r.exit_code == 2 and fragment in r.output and str(d) in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "out").exists()


@pytest.mark.skipif(not DEPOSIT.is_dir(), reason=f"the deposited dataset is not at {DEPOSIT}")
@pytest.mark.parametrize("comparison, fragment", [
    ({"readout": "spine_density_per_10um", "at": "2d"},
     "compare[0].at: group 'ketamine' has no spine_density_per_10um at 48 h"),
    ({"readout": "spine_density_per_10um", "at": "1d", "baseline": "-2d"},
     "compare[0].baseline: group 'ketamine' has no spine_density_per_10um at -48 h"),
    # an assay that does not measure the readout (a typo in assay:)
    ({"readout": "spine_density_per_10um", "at": "1d", "assay": "two_photon_spine"},
     ("compare[0].assay: got 'two_photon_spine', which does not measure "
     "spine_density_per_10um; assays that do: two_photon_spines")),
    # a readout no assay measures is a typo, not another kind's readout
    ({"readout": "spine_density", "at": "1d"},
     ("compare[0].readout: got 'spine_density', which no assay measures (did you mean "
     "'spine_density_per_10um'")),
])
def test_analyze_comparisons_that_read_nothing_are_errors(tmp_path, comparison, fragment):
    mice = pd.read_csv(DEPOSIT / "mice.csv")
    groups = {g: [f"{g}-{m}" for m in mice.loc[mice.group == g, "mouse"]]
              for g in ("saline", "ketamine")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "name": "ph", "groups": groups,
        "compare": [{**comparison, "arms": ["ketamine", "saline"]}]}))
    r = _invoke("analyze", "spines", DEPOSIT, "--design", tmp_path / "d.yaml", "--out",
                tmp_path / "out")
    assert r.exit_code == 2 and fragment in r.output, r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not DEPOSIT.is_dir(), reason=f"the deposited dataset is not at {DEPOSIT}")
def test_a_comparison_of_another_kinds_readout_is_left_out_with_a_note(tmp_path):
    mice = pd.read_csv(DEPOSIT / "mice.csv")
    groups = {g: [f"{g}-{m}" for m in mice.loc[mice.group == g, "mouse"]]
              for g in ("saline", "ketamine")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "name": "ph", "groups": groups,
        "compare": [{"readout": "tst_immobility_s", "at": "1d",
                     "arms": ["ketamine", "saline"]},  # one design, several kinds
                    {"readout": "spine_density_per_10um", "at": "1d",
                     "arms": ["ketamine", "saline"]}]}))
    r = _invoke("analyze", "spines", DEPOSIT, "--design", tmp_path / "d.yaml", "--out",
                tmp_path / "out")
    assert r.exit_code == 0, r.output
    note = "compare[0] (tst_immobility_s) left out: not a readout of these data"
    assert f"note: {note}" in r.output  # said on the console, not only in the report
    stats = pd.read_csv(tmp_path / "out" / "stats.csv")
    assert list(stats["comparison"]) == [1]  # the design's own index, no row of NaN
    assert note in (tmp_path / "out" / "manifest.json").read_text()
    assert "wrote" in r.output and "segment_statistics.csv" in r.output


def test_a_target_that_cannot_be_computed_says_why(tmp_path):
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "my_rep.yaml").write_text(
        SMALL.replace("name: small", "name: my_rep") + "targets: [T-MY-01]\n")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump([{
        "target_id": "T-MY-01", "facts": ["F-K-1"], "role": "validation", "source": "me",
        "quantity": "psd95 ratio", "published": "about 1.2",
        "statistic": "mean('ket', 'psd95_rel', '24h')", "tolerance": "[0.5, 3]"}]))
    r = _invoke("validate", "--replicas", tmp_path / "rep", "--targets", tmp_path / "t.yaml",
                "--only", "my_rep", "--out", tmp_path / "v")
    assert r.exit_code == 1, r.output
    # the arm does not exist (the statistics check it first, naming the arms there are)
    why = "no 'psd95_rel' for arm 'ket': the readouts have no arm 'ket' (arms: ketamine, saline)"
    assert f"T-MY-01: error: {why}" in r.output
    v = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert v.loc[v.target_id == "T-MY-01", "message"].iloc[0] == why
    assert why.replace("'", "&#x27;") in (tmp_path / "v" / "report.html").read_text()


def test_compound_files_refuse_repeated_keys_and_say_where_yaml_breaks(tmp_path):
    src = Path(__file__).resolve().parents[1] / "ketasim" / "compounds" / "ana12.yaml"
    (tmp_path / "dk").mkdir()
    text = src.read_text().replace("name: ana12", "name: mycmp")
    (tmp_path / "dk" / "mycmp.yaml").write_text(text + "routes: [oral]\n")
    r = _invoke("compounds", "--compounds", tmp_path / "dk")
    assert r.exit_code == 2 and "the key 'routes' is given twice" in r.output, r.output
    (tmp_path / "br").mkdir()
    (tmp_path / "br" / "mycmp.yaml").write_text("name: mycmp\npk: [\n")
    r = _invoke("compounds", "--compounds", tmp_path / "br")
    assert r.exit_code == 2 and "not valid YAML: line 3, column 1:" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_a_compile_error_names_the_event_not_a_sorted_index(tmp_path):
    text = """
name: t
species: human
seed: 1
arms:
  - name: a
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
      - {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}
    assays: [{assay: plasma_pk, at: [1h]}]
"""
    (tmp_path / "s.yaml").write_text(text)
    r = _invoke("run", tmp_path / "s.yaml", "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert "arms[0].protocol[rapamycin at -1 h]: compound 'rapamycin' has no PK" in r.output
    # as a loading problem would: the scenario's file first, the entry's line last
    assert f"error: {tmp_path / 's.yaml'}: arms[0]" in r.output.replace("\n", "")
    assert r.output.rstrip().endswith("(line 10)")
    # raised while the progress bar runs: one line, no blank one left by the bar
    assert r.output.splitlines()[0].startswith("error: ")
    assert len(r.output.splitlines()) == 1, repr(r.output)


def test_a_compound_without_pk_for_the_species_names_its_dose_and_line(tmp_path):
    # a compartmental compound (memantine: mouse and rat PK only) in a human arm, given
    # second in the second arm: the error names that dose and its line, not only the arm
    text = """
name: t
species: human
seed: 1
arms:
  - name: a
    n: 2
    protocol: [{at: 0h, drug: saline, route: iv}]
    assays: [{assay: signaling_state, at: [1h]}]
  - name: b
    n: 2
    protocol:
      - {at: 0h, drug: saline, route: iv}
      - {at: 2h, drug: memantine, dose: 10 mg/kg, route: iv}
    assays: [{assay: signaling_state, at: [1h]}]
"""
    (tmp_path / "s.yaml").write_text(text)
    r = _invoke("run", tmp_path / "s.yaml", "--out", tmp_path / "out")
    assert r.exit_code == 2
    line = " ".join(r.output.split())
    assert line.startswith(f"error: {tmp_path / 's.yaml'}: arms[1].protocol[memantine at 2 h]")
    assert "compound 'memantine' has no PK for species 'human' (it has: mouse, rat)" in line
    assert line.endswith("(line 14)")
    assert not (tmp_path / "out").exists()


def test_locate_problem_finds_arms_assays_and_protocol_entries(tmp_path):
    from ketasim.scenario import locate_problem

    f = tmp_path / "s.yaml"
    f.write_text("name: t\narms:\n  - name: a\n    protocol:\n      - {at: 0h, drug: saline}\n"
                 "      - {at: 1h, drug: ketamine}\n    assays:\n      - {assay: x}\n"
                 "      - {assay: y}\n")
    assert locate_problem(f, "arms[0]: p") == f"{f}: arms[0]: p (line 3)"
    assert locate_problem(f, "arms[0].assays[1]: p").endswith("(line 9)")
    assert locate_problem(f, "arms[0].protocol[ketamine at 1 h]: p").endswith("(line 6)")
    # a place the file does not have: the nearest enclosing one; other messages unlocated
    assert locate_problem(f, "arms[0].protocol[mk801 at 1 h]: p").endswith("(line 3)")
    assert locate_problem(f, "something else") == f"{f}: something else"


def test_a_write_failure_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    import ketasim.report.run_folder as rf

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rf, "write_readouts", full)
    (tmp_path / "s.yaml").write_text(SMALL)
    r = _invoke("run", tmp_path / "s.yaml", "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert "cannot write the results (No space left on device)" in r.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_sigterm_removes_the_unfinished_output(tmp_path):
    """A run killed by SIGTERM (kill, timeout, a batch system's limit) leaves no
    temporary folder beside --out, as Ctrl-C does."""
    scenario = SMALL.replace("n: 2", "n: 400").replace("[1h, 24h]", "[1h, 24h, 3d, 7d]")
    (tmp_path / "s.yaml").write_text(scenario)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ketasim.cli", "run", "s.yaml", "--out",
                             "out"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not list(tmp_path.glob(".out.tmp-*")) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("species, arm_text, fragment", [
    ("mouse", "assays: [{assay: madrs, at: [1d]}]",
     "an assay done in mouse subjects (madrs is done in human)"),
    ("human", "assays: [{assay: tail_suspension, at: [1d]}]",
     "an assay done in human subjects (tail_suspension is done in mouse, rat)"),
    ("human", "protocol: [{at: -10d, stress: cort, duration: 10d}]",
     "a stressor given to human subjects (cort at -10d is given to mouse, rat)"),
    ("rat", "protocol: [{at: -10d, stress: major_depression, duration: 10d}]",
     "a stressor given to rat subjects (major_depression at -10d is given to human)"),
])
def test_assays_and_stressors_belong_to_their_species(species, arm_text, fragment):
    from ketasim.scenario import ScenarioError, load_scenario_text

    text = (f"name: sp\nspecies: {species}\nseed: 1\narms:\n  - name: a\n    n: 2\n"
            f"    {arm_text}\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario_text(text)
    assert fragment in str(e.value) and "line 7" in str(e.value)


def test_small_messages_name_the_option_and_the_path(tmp_path):
    (tmp_path / "s.yaml").write_text(SMALL)
    r = _invoke("sweep", tmp_path / "s.yaml", "--vary", "sig.k_potentiation_off=0.02,0.04",
                "--chunk", "0", "--out", tmp_path / "sw")
    assert r.exit_code == 2 and "--chunk: got 0" in r.output, r.output
    assert not (tmp_path / "sw").exists()
    r = _invoke("analyze", "spines", tmp_path / "nope", "--design", tmp_path / "d.yaml",
                "--out", tmp_path / "a")
    assert r.exit_code == 2 and f"{tmp_path / 'nope'}: no such file or folder" in r.output
    (tmp_path / "empty").mkdir()
    r = _invoke("analyze", "spines", tmp_path / "empty", "--design", tmp_path / "d.yaml",
                "--out", tmp_path / "a")
    assert r.exit_code == 2 and "the folder is empty" in r.output
    (tmp_path / "afile").write_text("x")
    data = tmp_path / "data.csv"
    pd.DataFrame({"arm": ["ketamine"], "readout": ["pmtor_rel"], "time_h": [1.0],
                  "mean": [1.2], "sem": [0.1]}).to_csv(data, index=False)
    r = _invoke("calibrate", tmp_path / "s.yaml", "--data", data, "--params",
                "sig.k_potentiation_off", "--out", tmp_path / "cal", "--petab",
                tmp_path / "afile")
    assert r.exit_code == 2 and f"--petab {tmp_path / 'afile'}: exists" in r.output, r.output
    assert not (tmp_path / "cal").exists()


DOSE_SCENARIO = """
name: d
species: {species}
seed: 1
arms:
  - name: a
    n: 2
    protocol:
      - {{at: 0h, drug: {drug}, dose: {dose}, route: {route}}}
    assays: [{{assay: plasma_pk, at: [1h]}}]
"""


@pytest.mark.parametrize("species, drug, dose, route, fragments", [
    ("mouse", "ketamine", "10 mg", "ip", ["protocol[ketamine at 0 h].dose: 10 mg",
                                          "(400 mg/kg at 0.025 kg) (arm 'a') is 40x",
                                          "Moda-Sava"]),
    ("mouse", "ketamine", "150 mg/kg", "ip", ["150 mg/kg (arm 'a') is 15x"]),
    ("human", "ketamine", "50 mg/kg", "iv", ["is 100x ketamine's typical effective dose",
                                             "in the human (0.5 mg/kg"]),
    ("mouse", "ketamine", "100 mg/kg", "ip", []),  # 10x: flagged only above it
    ("mouse", "ketamine", "10 mg/kg", "ip", []),
    # no effective dose for the species: another species' scaled by body surface area
    # (Ro 25-6981 10 mg/kg in the rat is 20 mg/kg in the mouse, Km 6 / 3)
    ("mouse", "ro25_6981", "250 mg/kg", "ip", [
        "is 12.5x ro25_6981's typical effective dose in the rat (10 mg/kg;",
        "scaled to the mouse by body surface area (20 mg/kg;"]),
    ("mouse", "ro25_6981", "150 mg/kg", "ip", []),  # 7.5x the scaled 20 mg/kg
    # and from the human to the rat (midazolam 0.045 mg/kg x 37 / 6 = 0.2775 mg/kg)
    ("rat", "midazolam", "3 mg/kg", "iv", [
        "is 10.8x midazolam's typical effective dose in the human"]),
    # a tool compound: its dose for half-maximal action in the model
    ("mouse", "rapamycin", "600 mg/kg", "ip", [
        ("is 300x rapamycin's dose for half-maximal action in the model "
         "(tool.rapamycin.ed50 = 2 mg/kg, assumed)")]),
    # an intracerebral amount against the local one, not per kg of body weight
    ("mouse", "nbqx", "5 mg", "intracerebral", [
        ("dose: 5 mg (arm 'a') is 50x nbqx's amount for half-maximal action in the "
         "model (tool.nbqx.ed50_local = 0.1 mg")]),
    ("mouse", "nbqx", "0.5 mg", "intracerebral", []),  # 5x; per kg it would be 200x
    ("mouse", "norketamine", "600 mg/kg", "ip", []),  # no dose on record to judge by
])
def test_a_dose_far_above_the_effective_dose_is_a_warning(tmp_path, species, drug, dose,
                                                         route, fragments):
    from ketasim.experiment.runner import dose_warnings
    from ketasim.params import load_registry
    from ketasim.scenario import load_scenario_text

    text = DOSE_SCENARIO.format(species=species, drug=drug, dose=dose, route=route)
    lines = dose_warnings(load_scenario_text(text), load_registry())
    assert len(lines) == (1 if fragments else 0), lines
    for frag in fragments:
        assert frag in lines[0] and lines[0].startswith("arms[0].")
    if fragments and species == "mouse":  # the run goes on and says so once
        (tmp_path / "s.yaml").write_text(text)
        r = _invoke("run", tmp_path / "s.yaml", "--out", tmp_path / "out")
        assert r.exit_code == 0, r.output
        assert r.output.count(f"warning: arms[0].protocol[{drug} at 0 h].dose") == 1
        assert (tmp_path / "out" / "readouts.parquet").is_file()
        # kept with the results: the manifest and the report's Warnings section
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["warnings"] == lines
        report = (tmp_path / "out" / "report.html").read_text()
        assert '<ul id="warnings"' in report and html.escape(fragments[-1]) in report


def test_the_anaesthetic_doses_of_the_replicas_are_flagged():
    """The only built-in scenarios or replicas with a dose above 10x the effective dose
    are the anaesthetic arms: the rat dose-response's 200 mg/kg (Li et al. 2010) and the
    maintenance infusion that holds human plasma at anaesthetic levels (5.5 mg/kg over
    55 min, T-SED-01)."""
    from pathlib import Path

    import ketasim
    from ketasim.experiment.runner import dose_warnings
    from ketasim.params import load_registry
    from ketasim.scenario import builtin_scenarios, load_scenario

    reg = load_registry()
    root = Path(ketasim.__file__).parent / "validation" / "replicas"
    flagged = {}
    for p in [*builtin_scenarios(), *sorted(root.glob("*.yaml"))]:
        lines = dose_warnings(load_scenario(p), reg)
        if lines:
            flagged[Path(str(p)).stem] = lines
    assert sorted(flagged) == ["dose_response_rat", "human_anaesthetic_levels"], flagged
    assert len(flagged["human_anaesthetic_levels"]) == 1
    assert "5.5 mg/kg (arm 'anaesthetic')" in flagged["human_anaesthetic_levels"][0]
    assert len(flagged["dose_response_rat"]) == 1
    assert "200 mg/kg (arm " in flagged["dose_response_rat"][0]
    assert ") is 20x" in flagged["dose_response_rat"][0]


def test_a_repeated_dose_is_one_warning():
    from ketasim.experiment.runner import dose_warnings
    from ketasim.params import load_registry
    from ketasim.scenario import load_scenario_text

    text = DOSE_SCENARIO.format(species="mouse", drug="ketamine", dose="200 mg/kg",
                                route="ip").replace(
        "route: ip}", "route: ip, every: 1d, doses: 28}")
    lines = dose_warnings(load_scenario_text(text), load_registry())
    assert len(lines) == 1, lines
    assert "protocol[ketamine at 0 h].dose: 200 mg/kg (arm 'a', 28 doses) is 20x" in lines[0]


@pytest.mark.skipif(not DEPOSIT.is_dir(), reason=f"the deposited dataset is not at {DEPOSIT}")
def test_an_analyze_manifest_carries_its_designs_hash(tmp_path):
    import hashlib

    mice = pd.read_csv(DEPOSIT / "mice.csv")
    groups = {g: [f"{g}-{m}" for m in mice.loc[mice.group == g, "mouse"]]
              for g in ("saline", "ketamine")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "ph", "groups": groups}))
    r = _invoke("analyze", "spines", DEPOSIT, "--design", tmp_path / "d.yaml", "--out",
                tmp_path / "out")
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    digest = hashlib.sha256((tmp_path / "d.yaml").read_bytes()).hexdigest()
    assert man["scenario_hash"] == digest and man["seed"] is None
    report = (tmp_path / "out" / "report.html").read_text()
    assert f"lab data, no simulation; design hash <code>{digest[:12]}</code>" in report


def test_a_tool_potency_given_as_a_product_of_parameters_is_judged():
    """A window potency written {param: A, times: B} (allowed in compound files) is its
    typical value A x B, not a crash."""
    from types import SimpleNamespace

    from ketasim.experiment.runner import _window_ed50
    from ketasim.params import load_registry
    from ketasim.pk.compounds import Value

    reg = load_registry()
    v = Value(param="tool.rapamycin.ed50", times="tool.rapamycin.ed50", unit="mg/kg")
    compound = SimpleNamespace(targets=[SimpleNamespace(window_potency={"per_kg": v})])
    value, what = _window_ed50(compound, "per_kg", "mouse", reg)
    assert value == reg.value("tool.rapamycin.ed50") ** 2
    assert what.startswith("tool.rapamycin.ed50 x tool.rapamycin.ed50 = ")
