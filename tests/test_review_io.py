"""Review of ketasim's data interchange: NWB out and in (``ketasim.io.nwb``), ``ketasim
analyze`` on good and malformed inputs, and atomic writing of results
(``ketasim.io.results``).

The tests after "bugs found in analyze" (and the write_readouts one) exposed defects found
in the review (once marked ``xfail(strict=True)``); they now hold.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from hdmf.common import DynamicTable, VectorData
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.analysis.stats import compare, summarize
from ketasim.analysis.tracking import read_tracking_table
from ketasim.cli import app
from ketasim.experiment.assays import ASSAYS
from ketasim.io import results as res_io
from ketasim.io.nwb import (
    TIME_ZERO,
    read_nwb,
    read_nwb_dff,
    read_nwb_position,
    read_nwb_tracking,
    write_nwb,
)
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()

MOUSE = """
name: review-io
species: mouse
seed: 5
arms:
  - name: ket
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: calcium_imaging, at: [24h], options: {cells: 6, minutes: 0.5}}
      - {assay: tail_suspension, at: [24h]}
      - {assay: open_field, at: [24h], options: {bin_min: 2}}
      - {assay: two_photon_spines, at: [-1h, 24h], options: {branches: 1}}
      - {assay: western_blot, at: [2h]}
  - name: sal
    n: 2
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: two_photon_spines, at: [-1h, 24h], options: {branches: 1}}
      - {assay: western_blot, at: [2h]}
compare:
  - {readout: psd95_rel, assay: western_blot, at: 2h, arms: [ket, sal]}
  - {readout: spine_density_per_10um, at: 24h, arms: [ket, sal]}
"""

HUMAN = """
name: review-io-human
species: human
seed: 4
arms:
  - name: ketamine
    n: 2
    population: {}
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: [{assay: madrs, at: [-1d, 24h]}]
"""

GROUPS = {"ket": ["ket-0", "ket-1"], "sal": ["sal-0", "sal-1"]}
COMPARE = [{"readout": "psd95_rel", "assay": "western_blot", "at": "2h",
            "arms": ["ket", "sal"]},
           {"readout": "spine_density_per_10um", "at": "24h", "arms": ["ket", "sal"]}]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """HOME, MPLCONFIGDIR and TMPDIR in a private folder for the module's fixtures."""
    h = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HOME", "MPLCONFIGDIR", "TMPDIR"):
            mp.setenv(var, str(h))
        mp.setattr(tempfile, "tempdir", str(h))
        yield h


@pytest.fixture(scope="module")
def mouse(home, tmp_path_factory):
    res = simulate(load_scenario_text(MOUSE), registry=REG)
    out = tmp_path_factory.mktemp("mouse") / "nwb"
    paths = write_nwb(res, out, REG, scenario_text=MOUSE, assays=ASSAYS)
    return res, out, paths


@pytest.fixture(scope="module")
def human(home, tmp_path_factory):
    res = simulate(load_scenario_text(HUMAN), registry=REG)
    out = tmp_path_factory.mktemp("human") / "nwb"
    return res, out, write_nwb(res, out, REG, scenario_text=HUMAN)


pytestmark = pytest.mark.usefixtures("private_home")


def _file(paths, name):
    return next(p for p in paths if p.name == name)


def _cli(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip().startswith("error:")]


def _leftovers(parent: Path, name: str) -> list[str]:
    """Temporary or backup folders of an output folder ``name`` left in ``parent``."""
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def _lab_nwb(path: Path, readouts: dict, subject_id: str) -> Path:
    """An NWB file from elsewhere in ketasim's layout (a ``ketasim`` module's
    ``readouts`` table, the subject from ``Subject.subject_id``)."""
    nwb = NWBFile(session_description="a lab session", identifier=path.stem,
                  session_start_time=TIME_ZERO,
                  subject=Subject(subject_id=subject_id, species="Mus musculus", sex="U",
                                  age="P10W"))
    mod = nwb.create_processing_module("ketasim", "readouts")
    mod.add(DynamicTable(name="readouts", description="readouts", columns=[
        VectorData(name=k, description=k, data=v) for k, v in readouts.items()]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _blot(value: float, unit: str = "1") -> dict:
    return {"assay": ["western_blot"], "readout": ["psd95_rel"], "unit": [unit],
            "value": [value], "time_h": [24.0]}


def _lab_folder(folder: Path) -> Path:
    """Four lab NWB files, subjects a-0, a-1, b-0, b-1, one psd95_rel each."""
    for g, base in (("a", 2.0), ("b", 1.0)):
        for i in range(2):
            _lab_nwb(folder / f"{g}-{i}.nwb", {**_blot(base + i), "arm": [g],
                                               "subject": [i]}, f"{g}-{i}")
    return folder


def _lab_design(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "lab", "groups": {"a": ["a-0", "a-1"], "b": ["b-0", "b-1"]},
        "compare": [{"readout": "psd95_rel", "at": "24h", "arms": ["a", "b"]}]}))
    return path


# ------------------------------------------------------------------ (a) round trips


def test_readouts_round_trip_with_units_and_order(mouse):
    res, out, _paths = mouse
    back = read_nwb(out)
    pd.testing.assert_frame_equal(back, res.readouts)
    assert back["unit"].tolist() == res.readouts["unit"].tolist()
    pd.testing.assert_frame_equal(summarize(back), summarize(res.readouts))
    pd.testing.assert_frame_equal(compare(back, res.scenario.compare),
                                  compare(res.readouts, res.scenario.compare))


def test_clinical_scores_round_trip(human):
    res, _out, paths = human
    assert set(res.readouts["assay"]) == {"madrs"}
    pd.testing.assert_frame_equal(read_nwb(paths), res.readouts)


def test_kept_data_round_trip_with_units_and_times(mouse):
    res, _, paths = mouse
    # spine tracking table
    kept = pd.concat(res.tracking.values(), ignore_index=True)
    pd.testing.assert_frame_equal(read_nwb_tracking(paths), read_tracking_table(kept))
    path = _file(paths, "sub-ket-0_ses-24h.nwb")
    # dF/F: values as kept, the frame rate, times from the session's start
    dff = res.calcium["ket"][24.0]
    rec = read_nwb_dff(path)
    assert np.array_equal(rec.dff, dff.astype(np.float64))
    assert rec.frame_rate_hz == ASSAYS["calcium_imaging"].options["frame_rate_hz"]
    np.testing.assert_allclose(rec.time_s, np.arange(dff.shape[1]) / rec.frame_rate_hz)
    # open field: cm stored as meters with conversion 0.01, times as kept
    track = res.kept["open_field"]["ket"]["tracks"]
    track = track[(track["subject"] == "0") & (track["time_h"] == 24.0)]
    pos = read_nwb_position(path)
    np.testing.assert_allclose(pos["time_s"], track["t_s"])
    np.testing.assert_allclose(pos[["x_cm", "y_cm"]], track[["x_cm", "y_cm"]], rtol=1e-12)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        rrs = nwb.processing["ophys"]["DfOverF"].roi_response_series["dff"]
        assert rrs.starting_time == 0.0 and rrs.timestamps is None
        ss = nwb.processing["behavior"]["open_field"].spatial_series["open_field_position"]
        assert ss.unit == "meters" and ss.conversion == 0.01
        np.testing.assert_allclose(np.asarray(ss.data[:])[:, :2] * ss.conversion,
                                   track[["x_cm", "y_cm"]].to_numpy() / 100.0, rtol=1e-12)
        # the tail suspension ethogram and scores
        etho = res.tst["ket"]["ethogram"]
        etho = etho[(etho["subject"] == "0") & (etho["time_h"] == 24.0)]
        bouts = nwb.processing["behavior"]["tail_suspension_bouts"].to_dataframe()
        assert np.array_equal(bouts["start_time"], etho["start_s"])
        assert np.array_equal(bouts["stop_time"], etho["end_s"])
        test = nwb.processing["behavior"]["tail_suspension"].to_dataframe()
        r = res.readouts
        want = r[(r["arm"] == "ket") & (r["subject"] == 0)
                 & (r["readout"] == "tst_immobility_s")]["value"]
        assert test["tst_immobility_s"].tolist() == want.tolist()


# ------------------------------------------------------------------ (b) conventions


def test_session_times_subject_and_protocol(mouse):
    _res, _, paths = mouse
    for name, t_h in (("sub-sal-1_ses-pre1h.nwb", -1.0), ("sub-ket-0_ses-24h.nwb", 24.0),
                      ("sub-ket-1_ses-2h.nwb", 2.0)):
        path = _file(paths, name)
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            start = nwb.session_start_time
            assert start.tzinfo is not None and start.utcoffset() == timedelta(0)
            assert start == TIME_ZERO + timedelta(hours=t_h)
            assert nwb.timestamps_reference_time == start
            session = nwb.processing["ketasim"]["session"].to_dataframe()
            assert session["time_h"].tolist() == [t_h]
            s = nwb.subject
            assert s.species == "Mus musculus" and s.sex in {"F", "M", "U", "O"}
            assert s.age == "P8W/P12W" and s.subject_id == name.split("_")[0][4:]
            proto = nwb.intervals["protocol"].to_dataframe()
            assert proto["start_time"].tolist() == [(0.0 - t_h) * 3600.0]
            assert (proto["stop_time"] > proto["start_time"]).all()


def test_a_patient_subject_fields(human):
    res, _, paths = human
    p = res.patients.set_index("subject").loc[1]
    with NWBHDF5IO(str(_file(paths, "sub-ketamine-1_ses-24h.nwb")), "r") as io:
        s = io.read().subject
        assert s.species == "Homo sapiens"
        assert s.sex == {"female": "F", "male": "M"}[p["sex"]]
        assert s.weight == f"{p['weight_kg']:.1f} kg"
        assert s.age.startswith("P") and "Y" in s.age


def test_nwbinspector_finds_nothing_critical_or_violating(mouse, human):
    """One file of each kind of content (dF/F, tail suspension, open field; spine
    tracking; blots only; a patient's clinical scores), to keep the test short."""
    from nwbinspector import Importance, inspect_nwbfile

    files = [_file(mouse[2], n) for n in ("sub-ket-0_ses-24h.nwb", "sub-ket-1_ses-pre1h.nwb",
                                          "sub-sal-0_ses-2h.nwb")]
    files.append(_file(human[2], "sub-ketamine-0_ses-24h.nwb"))
    bad = []
    for f in files:
        for m in inspect_nwbfile(nwbfile_path=str(f)):
            if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value:
                bad.append((m.importance.name, m.check_function_name, m.file_path,
                            m.message))
    assert not bad


# ------------------------------------------------------------------ analyze round trips


def test_analyze_nwb_gives_the_runs_numbers(mouse, tmp_path):
    res, out, paths = mouse
    design = tmp_path / "d.yaml"
    design.write_text(yaml.safe_dump({"name": "back", "groups": GROUPS, "compare": COMPARE}))
    r = _cli("analyze", "nwb", out, "--design", design, "--out", tmp_path / "an")
    assert r.exit_code == 0, r.output
    an = tmp_path / "an"
    got = pd.read_parquet(an / "readouts.parquet")
    subjects = pd.read_csv(an / "subjects.csv", dtype={"subject_id": str})
    got = got.merge(subjects, on=["arm", "subject"])
    got["subject"] = got["subject_id"].str.rsplit("-", n=1).str[1].astype(np.int64)
    key = ["arm", "subject", "assay", "readout", "time_h"]
    want = res.readouts.sort_values(key).reset_index(drop=True)
    got = got[list(want.columns)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    s_key = ["arm", "assay", "readout", "time_h"]
    s_run = summarize(res.readouts).sort_values(s_key).reset_index(drop=True)
    s_an = pd.read_csv(an / "summary.csv").sort_values(s_key).reset_index(drop=True)
    pd.testing.assert_frame_equal(s_an, s_run, check_dtype=False)
    st_run = compare(res.readouts, res.scenario.compare)
    st_an = pd.read_csv(an / "stats.csv")
    np.testing.assert_allclose(st_an["p"], st_run["p"], rtol=1e-12)
    np.testing.assert_allclose(st_an["statistic"], st_run["statistic"], rtol=1e-12)
    # the manifest's input hashes are those of the files read
    man = json.loads((an / "manifest.json").read_text())
    text = json.dumps(man)
    for p in paths[:3]:
        assert hashlib.sha256(p.read_bytes()).hexdigest() in text


def test_analyze_calcium_of_a_written_nwb_gives_the_runs_calcium_readouts(mouse, tmp_path):
    res, _, paths = mouse
    f = _file(paths, "sub-ket-0_ses-24h.nwb")
    design = tmp_path / "d.yaml"
    design.write_text(yaml.safe_dump({"name": "c", "groups": {"ket": ["ket-0"]},
                                      "files": [{"path": str(f), "subject": "ket-0",
                                                 "time": "24h"}]}))
    r = _cli("analyze", "calcium", f, "--design", design, "--out", tmp_path / "an")
    assert r.exit_code == 0, r.output
    got = pd.read_parquet(tmp_path / "an" / "readouts.parquet")
    got = got[got["assay"] == "calcium_imaging"].set_index("readout")["value"]
    rr = res.readouts
    want = rr[(rr["arm"] == "ket") & (rr["subject"] == 0) & (rr["assay"] == "calcium_imaging")
              ].set_index("readout")["value"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)


# ------------------------------------------------------------------ (c) malformed inputs


def _case(kind, tmp_path, mouse):
    """(kind, inputs, design, fragments the one error must contain) per malformed case."""
    lab = _lab_folder(tmp_path / "lab")
    design = _lab_design(tmp_path / "d.yaml")
    if kind == "missing_file":
        return "nwb", [tmp_path / "nope.nwb"], design, ["nope.nwb"]
    if kind == "wrong_columns":
        _lab_nwb(lab / "a-0.nwb", {"assay": ["western_blot"], "readout": ["psd95_rel"],
                                   "units": ["1"], "val": [1.0], "time_h": [24.0]}, "a-0")
        return "nwb", [lab], design, ["a-0.nwb", "readouts", "'value'", "'unit'"]
    if kind == "text_values":
        _lab_nwb(lab / "a-1.nwb", {**_blot(0.0), "value": ["high"]}, "a-1")
        return "nwb", [lab], design, ["a-1.nwb", "column 'value'", "expected numbers"]
    if kind == "not_nwb":
        (lab / "b-1.nwb").write_text("not an NWB file\n")
        return "nwb", [lab], design, ["b-1.nwb", "not an NWB file"]
    if kind == "folder_without_nwb":
        odd = tmp_path / "odd"
        odd.mkdir()
        (odd / "table.csv").write_text("a,b\n1,2\n")
        return "nwb", [odd], design, ["odd", "no .nwb files"]
    if kind == "spines_folder_of_other_tables":
        odd = tmp_path / "odd"
        odd.mkdir()
        (odd / "table.csv").write_text("a,b\n1,2\n")
        return "spines", [odd], design, ["odd"]
    if kind == "unknown_subject":
        _lab_nwb(lab / "c-0.nwb", {**_blot(1.0), "arm": ["c"], "subject": [0]}, "c-0")
        return "nwb", [lab], design, ["'c-0' is in no group"]
    if kind == "frame_rate_mismatch":
        _, _, paths = mouse
        f = _file(paths, "sub-ket-0_ses-24h.nwb")
        design.write_text(yaml.safe_dump({
            "name": "c", "groups": {"ket": ["ket-0"]}, "options": {"frame_rate_hz": 15},
            "files": [{"path": str(f), "subject": "ket-0", "time": "24h"}]}))
        return "calcium", [f], design, [f.name, "frame_rate_hz", "30"]
    if kind == "position_not_a_length":
        _, _, paths = mouse
        f = tmp_path / "track.nwb"
        shutil.copy(_file(paths, "sub-ket-0_ses-24h.nwb"), f)
        with h5py.File(f, "r+") as h:
            h["processing/behavior/open_field/open_field_position/data"].attrs["unit"] = \
                "inches"
        design.write_text(yaml.safe_dump({
            "name": "b", "groups": {"ket": ["ket-0"]},
            "files": [{"path": str(f), "subject": "ket-0", "time": "24h"}]}))
        return "behavior", [f], design, ["track.nwb", "open_field_position", "inches"]
    raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", [
    "missing_file", "wrong_columns", "text_values", "not_nwb", "folder_without_nwb",
    "spines_folder_of_other_tables", "unknown_subject", "frame_rate_mismatch",
    "position_not_a_length"])
def test_bad_input_is_one_error_exit_2_and_writes_nothing(kind, tmp_path, mouse):
    what, inputs, design, fragments = _case(kind, tmp_path, mouse)
    parent = tmp_path / "new" / "deeper"
    out = parent / "out"
    r = _cli("analyze", what, *inputs, "--design", design, "--out", out)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errs = _errors(r.output)
    assert len(errs) == 1, r.output
    text = " ".join(r.output.split())
    for frag in fragments:
        assert frag in text, (frag, r.output)
    assert not out.exists() and not (tmp_path / "new").exists()


def test_existing_output_is_never_overwritten_silently(tmp_path):
    lab = _lab_folder(tmp_path / "lab")
    design = _lab_design(tmp_path / "d.yaml")
    out = tmp_path / "an"
    assert _cli("analyze", "nwb", lab, "--design", design, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # without --force: refused, untouched
    r = _cli("analyze", "nwb", lab, "--design", design, "--out", out)
    assert r.exit_code == 2 and "--force" in r.output and len(_errors(r.output)) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # with --force but bad input: refused, untouched, nothing left beside it
    _lab_nwb(lab / "a-0.nwb", {"assay": ["western_blot"], "readout": ["psd95_rel"],
                               "unit": ["1"], "time_h": [24.0]}, "a-0")
    r = _cli("analyze", "nwb", lab, "--design", design, "--out", out, "--force")
    assert r.exit_code == 2 and "a-0.nwb" in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path, "an") == []
    # --force never replaces a folder that is not ketasim's output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = _cli("analyze", "nwb", tmp_path / "lab" / "b-0.nwb", "--design", design, "--out",
             mine, "--force")
    assert r.exit_code == 2 and (mine / "notes.txt").read_text() == "keep me"
    # an --out that is a file
    r = _cli("analyze", "nwb", lab, "--design", design, "--out", tmp_path / "d.yaml")
    assert r.exit_code == 2 and "not a folder" in r.output


# ------------------------------------------------------------------ (d) atomic writing


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), OSError(28, "No space left"),
                                 KeyboardInterrupt()])
def test_a_failure_while_writing_leaves_no_partial_folder(tmp_path, monkeypatch, exc):
    import ketasim.analyze.run as run_mod

    lab = _lab_folder(tmp_path / "lab")
    design = _lab_design(tmp_path / "d.yaml")

    def fail(tmp, *a, **k):
        (tmp / "report.html").write_text("<html><body>half")  # a half-written file
        raise exc

    monkeypatch.setattr(run_mod, "write_report", fail)
    out = tmp_path / "an"
    with pytest.raises(type(exc) if not isinstance(exc, OSError) else res_io.OutputError):
        run_mod.analyze("nwb", [lab], design, out)
    assert not out.exists() and _leftovers(tmp_path, "an") == []
    # over an earlier output with overwrite: the earlier folder survives byte for byte
    monkeypatch.undo()
    run_mod.analyze("nwb", [lab], design, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(run_mod, "write_report", fail)
    with pytest.raises(type(exc) if not isinstance(exc, OSError) else res_io.OutputError):
        run_mod.analyze("nwb", [lab], design, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path, "an") == []


def test_write_json_failure_keeps_the_previous_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"old": 1}\n')

    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text")

    with pytest.raises(RuntimeError):
        res_io.write_json({"a": 1, "b": Unprintable()}, path)
    assert path.read_text() == '{"old": 1}\n'


def test_write_readouts_failure_leaves_no_truncated_file(tmp_path, monkeypatch):
    monkeypatch.setattr(res_io, "ROW_GROUP_ROWS", 2)
    df = pd.DataFrame({"arm": ["a"] * 4, "subject": [0, 1, 2, 3], "assay": ["x"] * 4,
                       "readout": ["r"] * 4, "time_h": [1.0] * 4,
                       "value": [1.0, 2.0, "bad", 4.0], "unit": ["1"] * 4})
    path = tmp_path / "readouts.parquet"
    with pytest.raises(Exception, match="bad"):
        res_io.write_readouts(df, path)
    assert not path.exists()


# ------------------------------------------------------------------ bugs found in analyze


def test_mixed_units_of_one_readout_are_an_error(tmp_path):
    lab = _lab_folder(tmp_path / "lab")
    _lab_nwb(lab / "a-0.nwb", {**_blot(1000.0, unit="%"), "arm": ["a"], "subject": [0]},
             "a-0")
    design = _lab_design(tmp_path / "d.yaml")
    out = tmp_path / "an"
    r = _cli("analyze", "nwb", lab, "--design", design, "--out", out)
    assert r.exit_code == 2, r.output
    assert "unit" in r.output and "a-0.nwb" in r.output
    assert not out.exists()


def test_empty_readouts_tables_are_an_error(tmp_path):
    lab = _lab_folder(tmp_path / "lab")
    for f in lab.glob("*.nwb"):
        with h5py.File(f, "r+") as h:
            g = h["processing/ketasim/readouts"]
            for name in list(g.keys()):
                attrs, old = dict(g[name].attrs), g[name][()]
                del g[name]
                g.create_dataset(name, data=old[:0], maxshape=(None,))
                g[name].attrs.update(attrs)
    assert len(read_nwb(lab)) == 0
    out = tmp_path / "an"
    r = _cli("analyze", "nwb", lab, "--design", _lab_design(tmp_path / "d.yaml"),
             "--out", out)
    assert r.exit_code == 2, r.output
    assert not out.exists()


def test_a_file_given_directly_and_through_its_folder_is_refused(tmp_path):
    lab = _lab_folder(tmp_path / "lab")
    out = tmp_path / "an"
    r = _cli("analyze", "nwb", lab, lab / "a-0.nwb", "--design",
             _lab_design(tmp_path / "d.yaml"), "--out", out)
    assert r.exit_code == 2, r.output
    assert "twice" in r.output and not out.exists()


def test_two_files_for_one_subject_session_are_refused(tmp_path):
    lab = _lab_folder(tmp_path / "lab")
    shutil.copy(lab / "a-0.nwb", lab / "a-0 copy.nwb")
    out = tmp_path / "an"
    r = _cli("analyze", "nwb", lab, "--design", _lab_design(tmp_path / "d.yaml"),
             "--out", out)
    assert r.exit_code == 2, r.output
    assert "a-0" in r.output and not out.exists()


def test_distinct_lab_subject_ids_are_not_merged(tmp_path):
    lab = tmp_path / "lab"
    _lab_nwb(lab / "x.nwb", _blot(1.0), "cageA-1")
    _lab_nwb(lab / "y.nwb", _blot(5.0), "cageB-1")
    back = read_nwb(lab)
    assert back[["arm", "subject"]].drop_duplicates().shape[0] == 2


def test_force_never_deletes_the_inputs(tmp_path):
    run = tmp_path / "run"
    lab = _lab_folder(run / "nwb")
    (run / "manifest.json").write_text("{}\n")
    r = _cli("analyze", "nwb", lab, "--design", _lab_design(tmp_path / "d.yaml"),
             "--out", run, "--force")
    assert sorted(p.name for p in lab.glob("*.nwb")) == ["a-0.nwb", "a-1.nwb", "b-0.nwb",
                                                         "b-1.nwb"], r.output
    assert r.exit_code == 2
