"""Review of the generated documentation tables, numba's cache-folder handling and the
registry of lab-data kinds.

- ``ketasim/validation/fitted_table.py`` (the parameter-to-target table in
  ``docs/design.md``) and ``ketasim/validation/domain.py`` (the validated domain,
  ``extent.json``): checked against an independent recomputation from the raw YAML
  files (``ketasim/validation/targets.yaml``, ``ketasim/params/parameters.yaml``) read
  with plain ``yaml.safe_load``, and against the committed outputs (a stale file is a
  defect) and README's statements about the extents. Malformed inputs go through
  ``parse_targets`` with a hand-built parameter set; the generators' command lines are
  run only without ``--write`` (nothing in the repository is written).
- ``ketasim/_jitcache.py`` and ``ketasim.configure``: issue 12 (importing ketasim has
  no side effects) and each promise of the docstrings, in subprocesses with a private
  ``HOME``/``TMPDIR`` and no inherited ``NUMBA_CACHE_DIR`` (the test session's conftest
  sets one).
- ``ketasim/analyze/kinds.py``: the kinds against the CLI help and README, the design
  options each kind reads against the documentation, and each behaviour table the
  reader recognises by its columns against the simulated assay's registered readouts and
  units (``tests/test_review_analyze.py`` covers the design semantics and run/analyze
  agreement and is not repeated here).

Tests marked ``xfail(strict=True, reason="BUG: ...")`` assert the correct behaviour of a
defect found in this review.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ketasim import _jitcache
from ketasim.validation import fitted_table as ft
from ketasim.validation.targets import TargetError, parse_targets

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ketasim"
TARGETS_YAML = PKG / "validation" / "targets.yaml"
PARAMS_YAML = PKG / "params" / "parameters.yaml"
SCRATCH = Path("/tmp/kt/tables")


def _raw_targets() -> list[dict]:
    return yaml.safe_load(TARGETS_YAML.read_text())


def _raw_param_names() -> list[str]:
    return [p["name"] for p in yaml.safe_load(PARAMS_YAML.read_text())]


def _facts(raw: dict) -> list[str]:
    f = raw["facts"]
    return [str(x) for x in (f if isinstance(f, list) else [f])]


def _committed_rows() -> tuple[list[list[str]], str]:
    """The committed table of docs/design.md: its rows (cells) and its count line."""
    block = ft.current(ft.DESIGN.read_text())
    assert block is not None, "docs/design.md has no fitted-table markers"
    lines = block.split("\n")[1:-1]  # between the markers
    assert lines[:2] == ["| parameter | fitted to targets | facts of those targets |",
                         "| --- | --- | --- |"]
    rows, rest = [], []
    for ln in lines[2:]:
        (rows if ln.startswith("| ") else rest).append(ln)
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in rows]
    count = [ln for ln in rest if ln.strip()]
    assert len(count) == 1, count
    return cells, count[0]


def _split(cell: str) -> list[str]:
    return [x.strip() for x in cell.split(",") if x.strip()]


# ------------------------------------------------------------------ fitted table


def test_committed_fitted_table_is_what_the_generator_gives_now():
    text = ft.DESIGN.read_text()
    assert text.count(ft.START) == 1 and text.count(ft.END) == 1
    assert ft.current(text) == ft.block()


def test_every_fitted_name_is_a_registry_parameter_and_nothing_is_listed_twice():
    names = _raw_param_names()
    assert len(names) == len(set(names)), "a parameter defined twice in parameters.yaml"
    raw = _raw_targets()
    ids = [t["target_id"] for t in raw]
    assert len(ids) == len(set(ids)), "a target_id given twice"
    for t in raw:
        fitted = t.get("fitted") or []
        assert t["role"] in ("calibration", "validation"), t["target_id"]
        if t["role"] == "calibration":
            assert fitted, f"{t['target_id']}: calibration without fitted"
        else:
            assert not fitted, f"{t['target_id']}: validation with fitted"
        assert len(fitted) == len(set(fitted)), f"{t['target_id']}: a name twice in fitted"
        assert set(fitted) <= set(names), (t["target_id"], set(fitted) - set(names))


def test_committed_table_equals_an_independent_recomputation_from_the_yaml():
    """Per parameter (in order of first appearance in targets.yaml): exactly the
    calibration targets naming it in ``fitted``, in file order, and their facts (each
    once); every calibration target in some row; the count line lists every validation
    target once."""
    raw = _raw_targets()
    expected: dict[str, list[dict]] = {}
    for t in raw:
        for name in t.get("fitted") or []:
            expected.setdefault(name, []).append(t)
    cells, count = _committed_rows()
    params = [c[0].strip("`") for c in cells]
    assert len(params) == len(set(params)), "a parameter row given twice"
    assert params == list(expected)
    listed_targets = set()
    for (_, tcell, fcell), name in zip(cells, params):
        targets = _split(tcell)
        assert targets == [t["target_id"] for t in expected[name]], name
        assert len(targets) == len(set(targets)), f"{name}: a target listed twice"
        facts = _split(fcell)
        assert facts == list(dict.fromkeys(f for t in expected[name] for f in _facts(t)))
        listed_targets.update(targets)
    cal = [t["target_id"] for t in raw if t["role"] == "calibration"]
    val = [t["target_id"] for t in raw if t["role"] == "validation"]
    assert listed_targets == set(cal)
    m = re.fullmatch(r"(\d+) calibration targets, (\d+) validation targets "
                     r"\(no parameter fitted\): (.*)\.", count)
    assert m, count
    assert (int(m.group(1)), int(m.group(2))) == (len(cal), len(val))
    assert _split(m.group(3)) == val


TARGET = """- target_id: {tid}
  facts: [F-W-5]
  role: calibration
  source: Review et al. 2026
  quantity: q
  published: p
  statistic: "mean('ket', 'occupancy_interneuron', '1h')"
  tolerance: "[0, 1]"
  fitted: {fitted}
"""


def test_a_fitted_name_not_in_the_registry_is_one_error_naming_target_and_name():
    text = TARGET.format(tid="T-RT-01", fitted="[x.p, x.nope, x.nada]")
    with pytest.raises(TargetError) as e:
        parse_targets(text, "lab.yaml", parameters=frozenset({"x.p"}))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("lab.yaml: target T-RT-01")
    assert "'x.nope'" in msg and "x.nada" in msg and "parameters.yaml" in msg
    # against the packaged registry as well (the default parameter set)
    with pytest.raises(TargetError, match=r"fitted parameter 'sig\.no_such_param'"):
        parse_targets(TARGET.format(tid="T-RT-02", fitted="[sig.no_such_param]"))
    # a calibration target without a list of names, and a validation one with names
    with pytest.raises(TargetError, match="needs fitted"):
        parse_targets(TARGET.format(tid="T-RT-03", fitted="x.p"),
                      parameters=frozenset({"x.p"}))
    with pytest.raises(TargetError, match="validation target has no fitted"):
        parse_targets(TARGET.format(tid="T-RT-04", fitted="[x.p]").replace(
            "role: calibration", "role: validation"), parameters=frozenset({"x.p"}))


# fixed (was BUG): a name given twice in one target's fitted list is accepted and the table
#   lists that target twice for it
def test_a_name_twice_in_one_fitted_list_is_refused_or_listed_once():
    text = TARGET.format(tid="T-RT-05", fitted="[x.p, x.p]")
    try:
        targets = parse_targets(text, parameters=frozenset({"x.p"}))
    except TargetError as e:  # refusing it, naming the target, is correct too
        assert "T-RT-05" in str(e)
        return
    row = [ln for ln in ft.fitted_table(targets).split("\n") if ln.startswith("| `x.p`")]
    assert row == ["| `x.p` | T-RT-05 | F-W-5 |"]


def _run_module(module: str, *args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(tmp), TMPDIR=str(tmp), MPLCONFIGDIR=str(tmp))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          check=False, text=True, env=env, cwd=ROOT, timeout=120)


def test_fitted_table_command_prints_the_block_body():
    tmp = SCRATCH / "ft_cmd"
    tmp.mkdir(parents=True, exist_ok=True)
    before = ft.DESIGN.read_text()
    r = _run_module("ketasim.validation.fitted_table", tmp=tmp)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ft.fitted_table() + "\n"
    assert ft.DESIGN.read_text() == before


@pytest.mark.parametrize("module", ["ketasim.validation.fitted_table",
                                    "ketasim.validation.domain"])
# fixed (was BUG): the generators ignore an unknown argument (a typo of --write, or --help)
#   and exit 0 without writing
def test_an_unknown_argument_to_a_generator_is_an_error(module):
    tmp = SCRATCH / "gen_args"
    tmp.mkdir(parents=True, exist_ok=True)
    r = _run_module(module, "--wirte", tmp=tmp)
    assert r.returncode != 0
    assert "--wirte" in r.stderr


# ------------------------------------------------------------------ validated domain


def test_committed_extent_matches_the_replicas_and_the_readme():
    from ketasim.pk.compounds import COMPOUNDS
    from ketasim.validation import domain

    stored = domain.EXTENT_FILE.read_text()
    ext = domain.replica_extent()
    assert stored == ext.to_json(), "extent.json is stale"
    assert domain.Extent.from_json(stored) == ext
    # only compounds that act count (saline and inert compounds left out)
    for (_, drug) in ext.doses:
        assert getattr(COMPOUNDS.get(drug), "kind", "inert") != "inert", drug
    assert all(v >= 1 for v in ext.doses.values())
    assert all(v > 0 for v in ext.stress_h.values())
    # README: "30 days of CORT in a mouse (the replicas stop at 10), or ketamine every
    # day for a week (they give mice one dose)"
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "the replicas stop at 10" in readme and "they give mice one dose" in readme
    assert ext.stress_h[("mouse", "cort")] == 240.0
    assert ext.doses[("mouse", "ketamine")] == 1
    assert 30 * 24 > domain.BEYOND_FACTOR * ext.stress_h[("mouse", "cort")]
    assert 7 > domain.BEYOND_FACTOR * ext.doses[("mouse", "ketamine")]


# ------------------------------------------------------------------ numba cache folder

DIGEST = _jitcache.source_digest(PKG)


def _child(code: str, home: Path, env_extra: dict | None = None,
           cwd: Path | None = None) -> dict:
    """Run ``code`` (which prints one JSON line) with a private HOME/TMPDIR and no
    inherited NUMBA_CACHE_DIR; returns the parsed line."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home / "mpl"))
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       check=False, text=True, env=env, cwd=cwd or home, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _pkg_tree() -> set[str]:
    """What a cache setup can leave in the package: the numba-* folders of its
    __pycache__ folders, and numba index/data files outside them (numba's default place,
    next to the sources). Only these, so that edits elsewhere in a shared checkout
    cannot disturb the comparison."""
    out = {str(p) for p in PKG.rglob("__pycache__/numba-*")
           if not re.search(r"__pycache__/numba-[^/]+/", str(p))}
    out |= {str(p) for ext in ("*.nbi", "*.nbc") for p in PKG.rglob(ext)
            if not re.search(r"__pycache__/numba-[^/]+/", str(p))}
    return out


@pytest.fixture
def fresh_home(request):
    home = SCRATCH / "homes" / request.node.name.replace("[", "_").replace("]", "")
    if home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True)
    return home


def test_importing_ketasim_and_light_modules_changes_no_env_and_no_folder(fresh_home):
    before = _pkg_tree()
    out = _child("""
        import json, os, sys
        before = dict(os.environ)
        import ketasim, ketasim.params, ketasim.validation.fitted_table
        import ketasim.validation.domain
        ketasim.__version__
        print(json.dumps({"env": sorted(set(os.environ.items()) ^ set(before.items())),
                          "numba_dir": sys.modules["numba"].config.CACHE_DIR
                          if "numba" in sys.modules else None}))
    """, fresh_home)
    assert out["env"] == []
    assert out["numba_dir"] in (None, "")  # numba untouched: its own default
    assert _pkg_tree() == before
    assert sorted(p.name for p in fresh_home.iterdir()) == []


def test_configure_with_a_cache_dir_uses_it_as_root_and_deletes_nothing_there(fresh_home):
    """``ketasim.configure(cache_dir=X)``: folder X/numba-<digest>, marked, exported as
    NUMBA_CACHE_DIR, numba's config follows; X is the user's root, so even a marked
    folder of another digest stays; the package's __pycache__ gains no folder."""
    root = fresh_home / "mine"
    (root / "numba-0000000000000000").mkdir(parents=True)
    (root / "numba-0000000000000000" / _jitcache.MARKER).write_text("")
    (root / "other").mkdir()
    (root / "other" / "keep.txt").write_text("x")
    before = _pkg_tree()
    out = _child(f"""
        import json, os
        import ketasim
        folder = ketasim.configure(cache_dir={str(root)!r})
        import numba
        print(json.dumps({{"folder": str(folder), "env": os.environ["NUMBA_CACHE_DIR"],
                          "numba": numba.config.CACHE_DIR}}))
    """, fresh_home)
    want = str(root / f"numba-{DIGEST}")
    assert out == {"folder": want, "env": want, "numba": want}
    assert (root / f"numba-{DIGEST}" / _jitcache.MARKER).is_file()
    assert (root / "numba-0000000000000000").is_dir()
    assert (root / "other" / "keep.txt").read_text() == "x"
    assert _pkg_tree() == before


def test_a_child_inherits_the_folder_and_threads_are_set(fresh_home):
    folder = fresh_home / "c" / f"numba-{DIGEST}"
    out = _child("""
        import json, os
        import ketasim
        f = ketasim.configure(threads=1)
        import numba
        print(json.dumps({"folder": str(f), "threads": numba.get_num_threads()}))
    """, fresh_home, env_extra={"NUMBA_CACHE_DIR": str(folder)})
    # set by a parent process: used as it is, not as a root of a nested folder
    assert out == {"folder": str(folder), "threads": 1}
    assert not (folder / f"numba-{DIGEST}").exists()


def test_home_fallback_root_prunes_only_marked_folders_of_other_digests(fresh_home):
    """Where the package's __pycache__ is not usable, the root is ~/.cache/ketasim, one
    of ketasim's own: a marked folder of another digest goes, an unmarked one stays."""
    pkg = fresh_home / "pkg"
    pkg.mkdir()
    (pkg / "k.py").write_text("import numba\n")
    (pkg / "__pycache__").write_text("a file, not a folder")  # not writable as a root
    cache = fresh_home / ".cache" / "ketasim"
    (cache / "numba-aaaaaaaaaaaaaaaa").mkdir(parents=True)
    (cache / "numba-aaaaaaaaaaaaaaaa" / _jitcache.MARKER).write_text("")
    (cache / "numba-bbbbbbbbbbbbbbbb").mkdir()
    (cache / "numba-bbbbbbbbbbbbbbbb" / "x.nbi").write_text("someone else's")
    out = _child(f"""
        import json, os
        from pathlib import Path
        from ketasim import _jitcache
        f = _jitcache.configure(Path({str(pkg)!r}))
        print(json.dumps({{"folder": str(f), "env": os.environ["NUMBA_CACHE_DIR"]}}))
    """, fresh_home)
    want = str(cache / f"numba-{_jitcache.source_digest(pkg)}")
    assert out == {"folder": want, "env": want}
    assert not (cache / "numba-aaaaaaaaaaaaaaaa").exists()
    assert (cache / "numba-bbbbbbbbbbbbbbbb" / "x.nbi").read_text() == "someone else's"


def test_no_writable_root_returns_none_and_changes_nothing(fresh_home):
    blocker = fresh_home / "blocker"
    blocker.write_text("a file")
    out = _child(f"""
        import json, os
        import ketasim
        before = dict(os.environ)
        f = ketasim.configure(cache_dir={str(blocker / "sub")!r})
        print(json.dumps({{"folder": f, "same_env": dict(os.environ) == before}}))
    """, fresh_home)
    assert out == {"folder": None, "same_env": True}


# fixed (was BUG): a relative cache_dir (or NUMBA_CACHE_DIR) is exported relative, so a
#   child started in another folder compiles elsewhere
def test_the_exported_cache_folder_is_absolute(fresh_home):
    out = _child("""
        import json, os
        import ketasim
        f = ketasim.configure(cache_dir="relcache")
        print(json.dumps({"folder": str(f), "env": os.environ["NUMBA_CACHE_DIR"]}))
    """, fresh_home)
    want = str((fresh_home / "relcache" / f"numba-{DIGEST}").resolve())
    assert out == {"folder": want, "env": want}


# ------------------------------------------------------------------ analyze kinds


def test_kinds_agree_with_cli_help_readme_and_options():
    from typer.testing import CliRunner

    from ketasim.analyze import kinds
    from ketasim.cli import app

    assert kinds.KINDS == ("spines", "calcium", "behavior", "nwb")
    assert set(kinds.KIND_OPTIONS) == set(kinds.KINDS)
    res = CliRunner().invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0
    help_text = " ".join(res.output.replace("│", " ").split())
    assert "spines, calcium, behavior or nwb" in help_text
    readme = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"KIND is (.*?) The design file", readme)
    assert m, "README no longer describes KIND"
    for k in kinds.KINDS:
        assert f"`{k}`" in m.group(1), k
    # every option a kind reads is documented (module docstring or the data docs)
    docs = kinds.__doc__ + (ROOT / "docs" / "calcium_and_behavior_data.md").read_text()
    for kind, opts in kinds.KIND_OPTIONS.items():
        for o in opts:
            assert f"``{o}``" in docs or f"`{o}`" in docs, (kind, o)


def test_an_unknown_kind_and_an_unknown_option_are_one_error_each(tmp_path):
    from ketasim.analyze.design import DesignError, load_design
    from ketasim.analyze.kinds import read_lab_data

    (tmp_path / "t.csv").write_text("subject,start_s,end_s,state\nm1,0,360,immobile\n")
    d = tmp_path / "d.yaml"
    d.write_text(yaml.safe_dump({"name": "r", "groups": {"a": ["m1"]},
                                 "files": [{"path": str(tmp_path / "t.csv"),
                                            "time": "1d"}],
                                 "options": {"bin_sec": 60}}))
    design = load_design(d)
    with pytest.raises(DesignError, match="kind: got 'behaviour'; expected one of spines"):
        read_lab_data("behaviour", [tmp_path / "t.csv"], design)
    with pytest.raises(DesignError, match=r"options\.bin_sec: not a design option"):
        read_lab_data("behavior", [tmp_path / "t.csv"], design)


def _behaviour_tables() -> dict[str, pd.DataFrame]:
    """One small table per layout the behaviour reader tells by its columns."""
    subj = ["m1", "m2", "m3", "m4"]
    frames = [(s, t, t >= 180) for s in subj for t in range(0, 360, 30)]
    fear_frames = [(s, float(t), int(t % 60 < 30)) for s in subj for t in range(0, 3600, 1)]
    track = [(s, float(t), 0.1 * t * (1 + i), 0.0) for i, s in enumerate(subj)
             for t in range(0, 400, 10)]
    return {
        "tst_bouts": pd.DataFrame([(s, 0.0, 200.0, "struggle") for s in subj]
                                  + [(s, 200.0, 360.0, "immobile") for s in subj],
                                  columns=["subject", "start_s", "end_s", "state"]),
        "tst_frames": pd.DataFrame(frames, columns=["subject", "time_s", "immobile"]),
        "sucrose_g": pd.DataFrame({"subject": subj, "sucrose_g": [3.0, 2.5, 1.0, 2.0],
                                   "water_g": [1.0, 1.0, 1.5, 1.0]}),
        "sucrose_ml": pd.DataFrame({"subject": subj, "sucrose_ml": [3.0, 2.5, 1.0, 2.0],
                                    "water_ml": [1.0, 1.0, 1.5, 1.0]}),
        "escape": pd.DataFrame([(s, k, 30.0 if k % 2 else 5.0, 30.0) for s in subj
                                for k in range(1, 16)],
                               columns=["subject", "trial", "latency_s", "cutoff_s"]),
        "fear_trials": pd.DataFrame([(s, k, 50.0 - k) for s in subj for k in range(1, 21)],
                                    columns=["subject", "trial", "freezing_pct"]),
        "fear_frames": pd.DataFrame(fear_frames, columns=["subject", "time_s", "freezing"]),
        "open_field": pd.DataFrame(track, columns=["subject", "time_s", "x_cm", "y_cm"]),
    }


EXPECTED_ASSAY = {"tst_bouts": "tail_suspension", "tst_frames": "tail_suspension",
                  "sucrose_g": "sucrose_preference", "sucrose_ml": "sucrose_preference",
                  "escape": "escape_test", "fear_trials": "fear_extinction",
                  "fear_frames": "fear_extinction", "open_field": "open_field"}


def test_each_behaviour_layout_gives_its_assays_registered_readouts_and_units(tmp_path):
    """Every layout of ``_BEHAVIOUR_TABLES`` is read, scored by its analysis function,
    and gives readouts under the simulated assay's name with the registry's units."""
    from ketasim.analyze.design import load_design
    from ketasim.analyze.kinds import _BEHAVIOUR_TABLES, read_lab_data
    from ketasim.experiment.assays import ASSAYS

    assert {n for n, _ in _BEHAVIOUR_TABLES} == set(EXPECTED_ASSAY.values()) | {
        "tail_suspension_frames"}
    tables = _behaviour_tables()
    files = []
    for name, df in tables.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
        files.append({"path": str(tmp_path / f"{name}.csv"), "time": "1d"})
    d = tmp_path / "d.yaml"
    d.write_text(yaml.safe_dump({"name": "r", "groups": {"a": ["m1", "m2"],
                                                         "b": ["m3", "m4"]},
                                 "files": files}))
    design = load_design(d)
    for name in tables:
        data = read_lab_data("behavior", [tmp_path / f"{name}.csv"], design)
        r = data.readouts
        assert set(r["assay"]) == {EXPECTED_ASSAY[name]}, name
        registered = {(x.name, x.unit) for x in ASSAYS[EXPECTED_ASSAY[name]].readouts}
        got = set(zip(r["readout"], r["unit"]))
        assert got <= registered, (name, got - registered)
        assert len(r) == 4 * len(got), name  # one row per animal and readout
        assert r["value"].notna().all(), name
