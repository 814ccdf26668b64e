"""Review of the user-facing outputs: the HTML reports (escaping, self-contained, every
figure present) and the command line (the ARCHITECTURE contract, ``--help``, bad input as
one error line with exit 2 and nothing written, no overwriting of a foreign folder).

Tiny scenarios (n of 2 to 8) keep the file short. The tests under "bugs" exposed bugs
found in the review (once marked ``xfail``); they now guard the fixes."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from ketasim.cli import app

pytestmark = pytest.mark.usefixtures("private_home")

ROOT = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"

SMALL = """
name: review_small
species: mouse
seed: 3
description: "<script>alert(1)</script> & \\"quoted\\" 'single' </p><b>bold"
arms:
  - name: saline
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: western_blot, at: [1h]}
  - name: ketamine
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
compare:
  - {readout: pmtor_rel, assay: western_blot, at: 1h, arms: [ketamine, saline]}
"""

MULTI = """
name: review_multi
species: mouse
seed: 1
description: "spines & <i>tail</i> suspension"
arms:
  - name: saline
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: two_photon_spines, at: [-1d, 1d]}
      - {assay: tst, at: [3h]}
      - {assay: calcium_imaging, at: [3h]}
  - name: ketamine
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
compare:
  - {readout: tst_immobility_s, at: 3h, arms: [ketamine, saline]}
"""

REPLICA = """
name: review_rep
species: mouse
seed: 5
description: "<script>alert('rep')</script> & co"
arms:
  - {name: low, n: 2, protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h]}]}
  - {name: high, n: 2, protocol: [{at: 0h, drug: ketamine, dose: 30 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h]}]}
targets: [T-RV-1, T-RV-2]
"""

TARGETS = """
- target_id: T-RV-1
  facts: [F-W-8]
  role: validation
  source: "<script>alert('src')</script> Lab & Co"
  quantity: "<b onmouseover=alert(1)>ratio</b> \\"q\\""
  published: "<img src=x onerror=alert(2)>"
  statistic: mean('high', 'occupancy_interneuron', '1h') / mean('low', 'occupancy_interneuron', '1h')
  tolerance: "> 1"
- target_id: T-RV-2
  facts: [F-W-6]
  role: validation
  source: Lab
  quantity: q2
  published: PUBLISHED2
  statistic: mean('high', 'plasticity_potential', '1h')
  tolerance: "> 0.99"
  known_gap: "<script>alert('gap')</script>"
  tried: ["<script>alert('tried')</script>"]
"""

SUCROSE = "subject,sucrose_g,water_g\nm1,8,2\nm2,9,1\nm3,5,5\nm4,4,6\n"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- helpers


class _Page(HTMLParser):
    """Everything in a report that could run or fetch something."""

    def __init__(self):
        super().__init__()
        self.active: list = []  # script-like tags, event handlers, external links
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "link", "base", "form", "svg"):
            self.active.append(tag)
        for k, v in attrs:
            if k.startswith("on"):
                self.active.append(f"{tag}[{k}]")
            if k in ("href", "src", "action", "srcset") and v and not (
                    v.startswith(("data:image/png;base64,", "#"))):
                self.active.append(f"{tag}[{k}={v[:40]}]")
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))


def check_report(folder: Path, *, raw: tuple[str, ...] = ()) -> str:
    """report.html in ``folder`` is self-contained, holds no live markup, and its figures
    are exactly the PNG files written beside it (byte for byte); none of ``raw`` appears
    unescaped."""
    text = (folder / "report.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.active == [], page.active
    assert not re.search(r"https?://|url\(|@import", text), "an external reference"
    inlined = [base64.b64decode(s.split(",", 1)[1]) for s in page.images]
    files = {p.read_bytes(): p.relative_to(folder) for p in folder.rglob("*.png")}
    assert inlined, "no figure in the report"
    assert all(b in files for b in inlined), "an inlined figure that is not a file here"
    assert sorted(map(str, files.values())) == sorted(
        str(files[b]) for b in inlined), "a PNG written but not in the report"
    for s in raw:
        assert s not in text, f"unescaped in report.html: {s!r}"
    return text


def one_error(res, *, code: int = 2) -> str:
    """One clear error line on stderr, the exit code, no traceback."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# --------------------------------------------------------------------------- reports


def test_run_report_escapes_description_and_file_name_and_keeps_the_contract(tmp_path):
    scen = tmp_path / 'x<img src=x onerror=alert(1)>&"q.yaml'
    scen.write_text(SMALL)
    out = tmp_path / "out"
    res = invoke("run", scen, "--out", out, "--seed", "4")
    assert res.exit_code == 0, res.output
    text = check_report(out, raw=(XSS, "<img src=x", "</p><b>bold"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    assert "x&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q.yaml" in text
    # the contract (ARCHITECTURE.md): the files, their columns and the manifest
    names = {p.name for p in out.iterdir()}
    assert {"readouts.parquet", "summary.csv", "stats.csv", "manifest.json",
            "report.html"} <= names
    assert any(n.startswith("fig_") and n.endswith(".png") for n in names)
    r = pd.read_parquet(out / "readouts.parquet")
    assert list(r.columns)[:7] == ["arm", "subject", "assay", "readout", "time_h", "value",
                                   "unit"]
    s = pd.read_csv(out / "summary.csv")
    assert {"arm", "assay", "readout", "time_h", "n", "mean", "sem"} <= set(s.columns)
    st = pd.read_csv(out / "stats.csv")
    assert {"test", "groups", "statistic", "p"} <= set(st.columns) and len(st) == 1
    m = json.loads((out / "manifest.json").read_text())
    assert {"ketasim_version", "scenario_hash", "seed", "parameter_set",
            "timings_s"} <= set(m)
    assert m["seed"] == 4
    # nothing left beside --out (the temporary folder was renamed)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("_")) == sorted(
        [scen.name, "out"])


def test_run_report_with_assay_figures_is_self_contained(tmp_path):
    """Spine maps, the tail-suspension ethogram and dF/F rasters (figures the assays
    declare) are written beside the report and inlined in it, each exactly once."""
    scen = tmp_path / "multi.yaml"
    scen.write_text(MULTI)
    res = invoke("run", scen, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    text = check_report(tmp_path / "o", raw=("<i>tail</i>",))
    assert len(list((tmp_path / "o").glob("fig_*.png"))) >= 5
    assert "spines &amp; &lt;i&gt;tail&lt;/i&gt; suspension" in text


def test_trial_report_is_self_contained_and_escaped(tmp_path):
    text = (ROOT / "docs/examples/stratified_trd_trial.yaml").read_text()
    text = text.replace("n: 60", "n: 8").replace("  TRD, ketamine", f"  {XSS} TRD & ketamine")
    scen = tmp_path / "trial.yaml"
    scen.write_text(text)
    res = invoke("run", scen, "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output
    html = check_report(tmp_path / "t", raw=(XSS,))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; TRD &amp; ketamine" in html
    for f in ("fig_trial.png", "fig_trial_endpoints.png", "trial.csv", "consort.csv",
              "endpoints.csv", "disposition.csv", "strata.csv"):
        assert (tmp_path / "t" / f).is_file(), f


def _lab(tmp_path: Path, groups: dict, name: str = "design", description: str = "") -> tuple:
    data = tmp_path / "suc<b>&.csv"
    data.write_text(SUCROSE)
    design = {"name": name, "description": description, "groups": groups,
              "files": [{"path": str(data), "time": "2d"}]}
    g = list(groups)
    if len(g) == 2:
        design["compare"] = [{"readout": "sucrose_preference", "at": "2d", "arms": g}]
    path = tmp_path / "d.yaml"
    path.write_text(json.dumps(design))  # JSON is YAML
    return data, path


def test_analyze_report_escapes_design_groups_and_lab_file_names(tmp_path):
    data, design = _lab(tmp_path, {XSS: ["m1", "m2"], "sal&<i>\"": ["m3", "m4"]},
                        name="<script>alert('design')</script>",
                        description="<img src=x onerror=alert(3)> & \"q\"")
    res = invoke("analyze", "behavior", data, "--design", design, "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    text = check_report(tmp_path / "a", raw=(XSS, "<script>alert('design')",
                                             "<img src=x", "sal&<i>", "suc<b>"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the group, in the tables
    assert "sal&amp;&lt;i&gt;&quot;" in text
    assert "suc&lt;b&gt;&amp;.csv" in text  # the lab file, in the provenance


def _replica(tmp_path: Path, targets: str = TARGETS) -> tuple[Path, Path]:
    (tmp_path / "reps").mkdir(exist_ok=True)
    (tmp_path / "reps" / "review_rep.yaml").write_text(REPLICA)
    (tmp_path / "t.yaml").write_text(targets)
    return tmp_path / "reps", tmp_path / "t.yaml"


def test_validate_report_escapes_target_texts_and_writes_its_figures(tmp_path):
    reps, targets = _replica(tmp_path)
    out = tmp_path / "v"
    res = invoke("validate", "--only", "review_rep", "--replicas", reps, "--targets",
                 targets, "--out", out, "--workers", "1")
    assert res.exit_code == 0, res.output  # a known gap does not fail
    text = check_report(out, raw=("<script>", "<img src=x", "<b onmouseover"))
    for s in ("&lt;script&gt;alert(&#x27;src&#x27;)", "&lt;b onmouseover=alert(1)&gt;",
              "&lt;img src=x onerror=alert(2)&gt;", "&lt;script&gt;alert(&#x27;gap&#x27;)",
              "&lt;script&gt;alert(&#x27;tried&#x27;)", "&lt;script&gt;alert(&#x27;rep&#x27;)"):
        assert s in text, s
    assert (out / "figures").is_dir() and list((out / "figures").glob("*.png"))
    table = pd.read_csv(out / "validation.csv")
    assert list(table.columns)[:8] == ["target_id", "facts", "source", "quantity",
                                       "published", "simulated", "tolerance", "pass"]
    # the contract: validate exits non-zero when a target fails
    _replica(tmp_path, TARGETS.replace("  known_gap: \"<script>alert('gap')</script>\"\n"
                                       "  tried: [\"<script>alert('tried')</script>\"]\n", ""))
    res = invoke("validate", "--only", "T-RV-2", "--replicas", reps, "--targets", targets,
                 "--out", tmp_path / "v2", "--workers", "1")
    assert res.exit_code == 1, res.output
    assert pd.read_csv(tmp_path / "v2" / "validation.csv")["status"].tolist() == ["fail"]


# --------------------------------------------------------------------------- contract


def _commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_the_documented_commands_exist():
    assert {"run", "validate"} <= set(_commands())
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:.*\n\t.*ketasim validate --out runs/validate", make, re.MULTILINE)
    assert re.search(r"^test:", make, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", [[]] + [[c] for c in _commands()])
def test_help_works_for_every_command(command):
    res = invoke(*command, "--help")
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("command, options", [
    ("run", ["--out", "--seed", "--scheduler", "--force"]),
    ("validate", ["--only", "--out"]),
])
def test_documented_options_are_in_the_help(command, options):
    res = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert res.exit_code == 0
    for o in options:
        assert o in res.output, o


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sm.yaml").write_text(SMALL)
    (tmp_path / "neg.yaml").write_text(SMALL.replace("n: 2", "n: -2", 1))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage\x80")
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "suc.csv").write_text(SUCROSE)
    (tmp_path / "d.yaml").write_text("name: d\ngroups: {a: [m1, m2], b: [m3, m4]}\n"
                                     "files: [{path: suc.csv, time: 2d}]\n")
    return tmp_path


BAD = [
    ("run", "nope_scenario", "--out", "{o}"),
    ("run", "{t}/bin.yaml", "--out", "{o}"),
    ("run", "{t}/dir.yaml", "--out", "{o}"),
    ("run", "{t}/missing.yaml", "--out", "{o}"),
    ("run", "{t}/neg.yaml", "--out", "{o}"),
    ("run", "{t}/sm.yaml", "--out", "{o}", "--seed", "-1"),
    ("run", "{t}/sm.yaml", "--out", "{o}", "--scheduler", "bogus"),
    ("run", "{t}/sm.yaml", "--out", "{o}", "--set", "nope=1"),
    ("run", "{t}/sm.yaml", "--out", "{o}", "--compounds", "{t}/missing"),
    ("run", "{t}/sm.yaml", "--out", "{o}", "--against", "{t}/missing"),
    ("power", "nope_scenario", "--compare", "0", "--out", "{o}"),
    ("power", "{t}/sm.yaml", "--compare", "0", "--n", "-3:5", "--out", "{o}"),
    ("power", "{t}/sm.yaml", "--compare", "0", "--n", "3", "--cohorts", "-1", "--out", "{o}"),
    ("power", "{t}/sm.yaml", "--compare", "0", "--n", "3", "--alpha", "2", "--out", "{o}"),
    ("power", "{t}/sm.yaml", "--compare", "7", "--n", "3", "--cohorts", "2", "--out", "{o}"),
    ("screen", "--n", "-1", "--out", "{o}"),
    ("screen", "--species", "dog", "--out", "{o}"),
    ("screen", "--stress", "foo", "--out", "{o}"),
    ("screen", "--rank-by", "foo", "--out", "{o}"),
    ("screen", "--doses", "-1 mg/kg", "--out", "{o}"),
    ("screen", "{t}/missing", "--out", "{o}"),
    ("sensitivity", "nope_scenario", "--readout", "x", "--out", "{o}"),
    ("sensitivity", "{t}/sm.yaml", "--readout", "pmtor_rel", "--method", "foo", "--out", "{o}"),
    ("sensitivity", "{t}/sm.yaml", "--readout", "pmtor_rel", "--n", "-4", "--out", "{o}"),
    ("calibrate", "{t}/sm.yaml", "--data", "{t}/missing.csv", "--params", "sig.pka_gain",
     "--out", "{o}"),
    ("calibrate", "{t}/sm.yaml", "--data", "{t}/bin.yaml", "--params", "sig.pka_gain",
     "--out", "{o}"),
    ("export-sbml", "nope_scenario", "--out", "{o}.xml"),
    ("export-sbml", "{t}/sm.yaml", "--out", "{o}.xml", "--subject", "-1"),
    ("export-sbml", "{t}/sm.yaml", "--out", "{o}.xml", "--arm", "nope"),
    ("analyze", "foo", "{t}/suc.csv", "--design", "{t}/d.yaml", "--out", "{o}"),
    ("analyze", "behavior", "{t}/missing.csv", "--design", "{t}/d.yaml", "--out", "{o}"),
    ("analyze", "behavior", "{t}/suc.csv", "--design", "{t}/missing.yaml", "--out", "{o}"),
    ("validate", "--only", "nope", "--out", "{o}"),
    ("validate", "--only", "T-PK-06", "--seeds", "-1", "--out", "{o}"),
    ("validate", "--only", "T-PK-06", "--workers", "0", "--out", "{o}"),
    ("validate", "--only", "T-PK-06", "--targets", "{t}/missing.yaml", "--out", "{o}"),
    ("sweep", "nope_scenario", "--vary", "sig.pka_gain=1:2:2", "--out", "{o}"),
    ("sweep", "{t}/sm.yaml", "--vary", "nope=1:2:2", "--out", "{o}"),
    ("sweep", "{t}/sm.yaml", "--vary", "sig.pka_gain=1:2:2", "--chunk", "0", "--out", "{o}"),
    ("query", "{t}/missing", "SELECT 1"),
    ("query", "{t}", "SELECT 1", "--format", "foo"),
    ("query", "{t}", "SELECT 1", "--limit", "-1"),
    ("params", "nope"),
    ("schema", "--out", "{t}/dir.yaml"),
    ("compounds", "--compounds", "{t}/missing"),
]


@pytest.mark.parametrize("args", BAD, ids=lambda a: " ".join(a)[:60])
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(files, args):
    before = sorted(p.name for p in files.iterdir())
    res = invoke(*(a.format(t=files, o=files / "out") for a in args))
    one_error(res)
    assert sorted(p.name for p in files.iterdir()) == before, "something was written"


@pytest.mark.parametrize("args", [("run", "--bogus"), ("run",), ("nosuchcommand",),
                                  ("run", "x.yaml", "--out", "o", "--seed", "abc")])
def test_usage_errors_exit_2_without_traceback(args):
    res = invoke(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Error" in res.stderr


def test_run_refuses_a_foreign_folder_with_and_without_force(files):
    folder = files / "lab"
    folder.mkdir()
    (folder / "data.csv").write_text("precious")
    for extra in ([], ["--force"]):
        line = one_error(invoke("run", files / "sm.yaml", "--out", folder, *extra))
        assert "--out" in line
        assert [p.name for p in folder.iterdir()] == ["data.csv"]
        assert (folder / "data.csv").read_text() == "precious"
    afile = files / "afile"
    afile.write_text("x")
    one_error(invoke("run", files / "sm.yaml", "--out", afile, "--force"))
    assert afile.read_text() == "x"


# --------------------------------------------------------------------------- bugs (fixed)


def test_force_does_not_delete_a_folder_with_a_foreign_manifest(files):
    folder = files / "webapp"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "my-web-app", "version": "1.0"}')
    (folder / "data.csv").write_text("precious")
    invoke("run", files / "sm.yaml", "--out", folder, "--force")
    assert (folder / "data.csv").is_file()


def test_analyze_design_not_utf8_is_one_error(files):
    (files / "latin1.yaml").write_bytes("name: d\ndescription: 5 \xb5m\n".encode("latin-1")
                                        + b"groups: {a: [m1, m2], b: [m3, m4]}\n")
    res = invoke("analyze", "behavior", files / "suc.csv", "--design", files / "latin1.yaml",
                 "--out", files / "out")
    one_error(res)
    assert not (files / "out").exists()


def test_validate_targets_not_utf8_is_one_error(files):
    res = invoke("validate", "--only", "T-PK-06", "--targets", files / "bin.yaml", "--out",
                 files / "out")
    one_error(res)


def test_validate_terminal_table_prints_published_text_verbatim(tmp_path):
    reps, targets = _replica(tmp_path, TARGETS.replace("PUBLISHED2", '"50% of [/baseline]"'))
    res = invoke("validate", "--only", "review_rep", "--replicas", reps, "--targets",
                 targets, "--out", tmp_path / "v", "--workers", "1")
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "[/baseline]" in res.stdout


def test_analyze_notes_with_brackets_do_not_crash(tmp_path):
    data, design = _lab(tmp_path, {"ket [/veh]": ["m1", "m2", "m9"], "sal": ["m3", "m4"]})
    res = invoke("analyze", "behavior", data, "--design", design, "--out", tmp_path / "a")
    assert res.exit_code == 0 and res.exception is None, res.output


def test_run_success_message_survives_brackets_in_out(files):
    out = files / "a[" / "x]" / "o"
    res = invoke("run", files / "sm.yaml", "--out", out)
    assert res.exit_code == 0 and res.exception is None, res.output


def test_analyze_group_names_with_dollars_are_drawn_literally(tmp_path):
    data, design = _lab(tmp_path, {"ket": ["m1", "m2"], "sal$^$": ["m3", "m4"]})
    res = invoke("analyze", "behavior", data, "--design", design, "--out", tmp_path / "a")
    assert res.exit_code == 0 and res.exception is None, res.output


# --------------------------------------------------------------------------- fixes: more


def test_force_refuses_unreadable_or_foreign_markers_and_replaces_ketasim_output(files):
    """--force replaces a folder only when its manifest is ketasim's (it records the
    ketasim version) or it is ketasim's PEtab export; anything else is one error naming
    the folder, and nothing in it is touched."""
    folder = files / "lab"
    folder.mkdir()
    (folder / "data.csv").write_text("precious")
    for marker, data in (("manifest.json", b"\xff\xfe not JSON \x80"),
                         ("manifest.json", b"[1, 2]"), ("manifest.json", b"{}"),
                         ("problem.yaml", b"format_version: 1\nproblems: []\n")):
        (folder / marker).write_bytes(data)
        line = one_error(invoke("run", files / "sm.yaml", "--out", folder, "--force"))
        assert f"--out {folder}" in line and "not an earlier ketasim output" in line, line
        assert (folder / "data.csv").read_text() == "precious"
        (folder / marker).unlink()
    # an earlier ketasim run is replaced
    res = invoke("run", files / "sm.yaml", "--out", files / "r")
    assert res.exit_code == 0, res.output
    res = invoke("run", files / "sm.yaml", "--out", files / "r", "--force", "--seed", "9")
    assert res.exit_code == 0, res.output
    assert json.loads((files / "r" / "manifest.json").read_text())["seed"] == 9


def test_analyze_lab_csv_not_utf8_is_one_error(files):
    (files / "latin1.csv").write_bytes(SUCROSE.replace("m4,4,6", "m4,4,6\nm\xb5,1,1")
                                       .encode("latin-1"))
    (files / "d1.yaml").write_text(f"name: d\ngroups: {{a: [m1, m2], b: [m3, m4]}}\n"
                                   f"files: [{{path: {files / 'latin1.csv'}, time: 2d}}]\n")
    res = invoke("analyze", "behavior", files / "latin1.csv", "--design", files / "d1.yaml",
                 "--out", files / "out")
    line = one_error(res)
    assert "latin1.csv" in line and "UTF-8" in line, line
    assert not (files / "out").exists()


def test_analyze_design_not_utf8_names_the_file_and_byte(files):
    (files / "latin1.yaml").write_bytes(b"name: d\ndescription: 5 \xb5m\n")
    line = one_error(invoke("analyze", "behavior", files / "suc.csv", "--design",
                            files / "latin1.yaml", "--out", files / "out"))
    assert "latin1.yaml" in line and "0xb5" in line and "byte 23" in line, line


def test_validate_targets_not_utf8_names_the_file(files):
    line = one_error(invoke("validate", "--only", "T-PK-06", "--targets", files / "bin.yaml",
                            "--out", files / "out"))
    assert f"--targets {files / 'bin.yaml'}" in line and "UTF-8" in line, line
    assert not (files / "out").exists()


def test_validate_prints_bracketed_target_texts_verbatim(tmp_path):
    reps, targets = _replica(tmp_path, TARGETS.replace("PUBLISHED2", '"[glutamate] up"'))
    res = invoke("validate", "--only", "review_rep", "--replicas", reps, "--targets",
                 targets, "--out", tmp_path / "v[/x]", "--workers", "1")
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "[glutamate] up" in res.stdout
    assert f"{tmp_path / 'v[/x]'}/validation.csv" in res.stdout


def test_run_success_message_keeps_brackets_in_out(files):
    out = files / "runs[tag]" / "o"
    res = invoke("run", files / "sm.yaml", "--out", out)
    assert res.exit_code == 0 and res.exception is None, res.output
    assert f"wrote {out}/" in res.stdout


def test_analyze_prints_notes_and_out_with_brackets_verbatim(tmp_path):
    data, design = _lab(tmp_path, {"ket [/veh]": ["m1", "m2", "m9"], "sal [b]": ["m3", "m4"]})
    out = tmp_path / "a[/x]"
    res = invoke("analyze", "behavior", data, "--design", design, "--out", out)
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "group 'ket [/veh]': no data for 1 of its 3 subjects (m9)" in res.stdout
    assert f"wrote {out}/" in res.stdout


def test_power_from_a_pilot_prints_group_names_and_out_verbatim(tmp_path):
    data, design = _lab(tmp_path, {"ket [/veh]": ["m1", "m2"], "sal [b]": ["m3", "m4"]})
    res = invoke("analyze", "behavior", data, "--design", design, "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    out = tmp_path / "p[/x]"
    res = CliRunner().invoke(app, ["power", str(tmp_path / "a"), "--compare", "0", "--n",
                                   "3:4", "--cohorts", "20", "--out", str(out)],
                             env={"COLUMNS": "250"})
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "ket [/veh];sal [b]" in res.stdout  # the table's title
    assert "(ket [/veh] 2, sal [b] 2)" in res.stderr  # the note
    assert f"wrote {out}/" in res.stdout


def test_screen_prints_out_with_brackets_verbatim(tmp_path):
    out = tmp_path / "s[/x]"
    res = invoke("screen", "--only", "hnk", "--n", 2, "--workers", 1, "--stress", "none",
                 "--out", out)
    assert res.exit_code == 0 and res.exception is None, res.output
    assert f"wrote {out}/" in res.stdout


def test_sweep_names_the_out_option_as_every_command_does(files):
    afile = files / "afile"
    afile.write_text("x")
    line = one_error(invoke("sweep", files / "sm.yaml", "--vary", "sig.pka_gain=1:2:2",
                            "--out", afile))
    assert line.startswith(f"error: --out {afile}:"), line
    assert afile.read_text() == "x"


def test_figures_draw_dollar_names_literally(tmp_path):
    """Names with ``$`` (mathtext) in the power curve, the sensitivity bars and an assay's
    time course (legend labels, titles, tick labels) are drawn, not parsed."""
    from ketasim.report.figures import assay_figure
    from ketasim.report.power import plot_power
    from ketasim.report.sensitivity_figures import plot_indices

    odd = ["sal$^$", "$x$", "a$"]
    power = pd.DataFrame({"n": [3, 4] * 2, "power": 0.5, "ci_low": 0.4, "ci_high": 0.6,
                          "groups": ["c$^$;" + odd[0]] * 2 + ["c$^$;" + odd[1]] * 2,
                          "readout": "r$_$", "time_h": 1.0, "test": "welch_t",
                          "alpha": 0.05, "cohorts": 10})
    plot_power(power, tmp_path / "p.png")
    plot_power(power.iloc[:2], tmp_path / "p1.png")
    idx = pd.DataFrame({"parameter": [f"arms[{o}].dose" for o in odd] * 2, "method": "sobol",
                        "index": ["S1"] * 3 + ["ST"] * 3, "value": 0.2, "ci_low": 0.1,
                        "ci_high": 0.3, "scale": "linear"})
    plot_indices(idx, tmp_path / "i.png", title="pmtor_rel of arm $^$")
    rows = [{"arm": a, "subject": 0, "assay": "western_blot", "readout": "pmtor_rel",
             "time_h": t, "value": 1.0 + k, "unit": "1"}
            for k, a in enumerate(odd) for t in (1.0, 2.0)]
    readouts = pd.DataFrame(rows)
    summary = readouts.assign(n=1, mean=readouts["value"], sem=0.0)
    assay_figure(readouts, summary, "western_blot", tmp_path / "a.png")
    assay_figure(readouts[readouts["time_h"] == 1.0], summary[summary["time_h"] == 1.0],
                 "western_blot", tmp_path / "b.png")
    for f in ("p.png", "p1.png", "i.png", "a.png", "b.png"):
        assert (tmp_path / f).stat().st_size > 0, f
