"""NWB out and in (issue 16): one file per subject and session, clean under nwbinspector,
and read back to the same readouts, statistics, spine tracking and dF/F."""

from __future__ import annotations

import math
import shutil
import tempfile
from datetime import timedelta

import h5py
import numpy as np
import pandas as pd
import pytest
from hdmf.common import DynamicTable, VectorData
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject

from ketasim import simulate
from ketasim.analysis.stats import compare, summarize
from ketasim.analysis.tracking import read_tracking_table
from ketasim.experiment.assays import ASSAYS
from ketasim.io.nwb import (
    BOLUS_S,
    TIME_ZERO,
    NWBDataError,
    read_nwb,
    read_nwb_dff,
    read_nwb_position,
    read_nwb_tracking,
    session_label,
    write_nwb,
)
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()
TEXT = """
name: nwb-small
species: mouse
seed: 11
arms:
  - name: cort_ket
    n: 2
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: calcium_imaging, at: [-1h, 24h], options: {cells: 12, minutes: 0.5}}
      - {assay: tail_suspension, at: [24h], options: {cells: 12}}
      - {assay: two_photon_spines, at: [-1h, 24h], options: {branches: 2}}
      - {assay: western_blot, at: [2h, 24h]}
      - {assay: fixed_tissue_spines, region: striatum, at: [24h]}
      - {assay: open_field, at: [24h], options: {bin_min: 2}}
  - name: cort_sal
    n: 2
    protocol:
      - {at: -10d, stress: cort, duration: 10d}
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: calcium_imaging, at: [-1h, 24h], options: {cells: 12, minutes: 0.5}}
      - {assay: tail_suspension, at: [24h], options: {cells: 12}}
      - {assay: two_photon_spines, at: [-1h, 24h], options: {branches: 2}}
      - {assay: western_blot, at: [2h, 24h]}
compare:
  - {readout: psd95_rel, assay: western_blot, at: 24h, arms: [cort_ket, cort_sal]}
  - {readout: tst_immobility_s, at: 24h, arms: [cort_ket, cort_sal]}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The simulated run and its NWB files (caches of pynwb/hdmf in a temporary home)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HOME", "MPLCONFIGDIR", "TMPDIR"):
            mp.setenv(var, str(home))
        mp.setattr(tempfile, "tempdir", str(home))
        res = simulate(load_scenario_text(TEXT), registry=REG)
        out = tmp_path_factory.mktemp("nwb") / "nwb"
        paths = write_nwb(res, out, REG, scenario_text=TEXT, assays=ASSAYS)
        yield res, out, paths


pytestmark = pytest.mark.usefixtures("private_home")


def _file(paths, name):
    return next(p for p in paths if p.name == name)


def test_layout_one_file_per_subject_and_session(run):
    _, out, paths = run
    names = [p.relative_to(out).as_posix() for p in paths]
    assert names == [f"sub-{arm}-{s}/sub-{arm}-{s}_ses-{ses}.nwb"
                     for arm in ("cort-ket", "cort-sal") for s in (0, 1)
                     for ses in ("pre1h", "2h", "24h")]
    assert sorted(out.rglob("*.nwb")) == sorted(paths)


@pytest.mark.parametrize(("time_h", "label"), [
    (0.0, "0h"), (-1.0, "pre1h"), (2.0, "2h"), (24.0, "24h"), (48.0, "48h"), (72.0, "3d"),
    (-240.0, "pre10d"), (100.0, "100h"), (1 / 3, "20min"), (-2 / 3, "pre40min"),
    (1.5, "90min"), (12.5 / 3600, "12p5s")])
def test_session_labels(time_h, label):
    assert session_label(time_h) == label


def test_subject_session_and_protocol_metadata(run):
    res, _, paths = run
    with NWBHDF5IO(str(_file(paths, "sub-cort-ket-1_ses-24h.nwb")), "r") as io:
        nwb = io.read()
        assert nwb.session_id == "24h"
        assert nwb.session_start_time.tzinfo is not None
        assert nwb.session_start_time == TIME_ZERO + timedelta(hours=24)
        assert nwb.institution == nwb.lab == "ketasim (simulated)"
        assert {"ketasim", "mouse", "ketamine", "western_blot"} <= set(nwb.keywords[:])
        assert nwb.protocol == TEXT
        s = nwb.subject
        assert (s.subject_id, s.species, s.sex, s.age) == (
            "cort-ket-1", "Mus musculus", "U", "P8W/P12W")
        proto = nwb.intervals["protocol"].to_dataframe().reset_index(drop=True)
        assert proto["kind"].tolist() == ["stress", "drug"]
        assert proto["start_time"].tolist() == [-(240 + 24) * 3600.0, -24 * 3600.0]
        assert proto["stop_time"].tolist() == [-24 * 3600.0, -24 * 3600.0 + BOLUS_S]
        assert proto.loc[1, ["drug", "dose", "dose_unit", "route"]].tolist() == [
            "ketamine", 10.0, "mg/kg", "ip"]
        assert proto.loc[0, "stress"] == "cort" and math.isnan(proto.loc[0, "dose"])
        # the tail suspension test: its scores, the kept ethogram and the struggle onsets
        etho = res.tst["cort_ket"]["ethogram"]
        etho = etho[(etho["subject"] == "1") & (etho["time_h"] == 24.0)]
        bouts = nwb.processing["behavior"]["tail_suspension_bouts"].to_dataframe()
        assert np.array_equal(bouts["start_time"], etho["start_s"])
        assert np.array_equal(bouts["stop_time"], etho["end_s"])
        assert bouts["state"].tolist() == etho["state"].tolist()
        test = nwb.processing["behavior"]["tail_suspension"].to_dataframe()
        r = res.readouts
        imm = r[(r["arm"] == "cort_ket") & (r["subject"] == 1)
                & (r["readout"] == "tst_immobility_s")]["value"]
        assert test["tst_immobility_s"].tolist() == imm.tolist()
        assert test["stop_time"].tolist() == [REG.value("behavior.tst.duration_s")]
        onsets = nwb.events["struggle_onsets"].to_dataframe()
        assert len(onsets) > 0 and set(onsets["timestamp"]) <= set(etho["start_s"])


def test_nwbinspector_finds_no_violation(run):
    from nwbinspector import Importance, inspect_all

    _, out, _ = run
    messages = list(inspect_all(str(out), progress_bar=False))
    for m in messages:  # what remains is BEST_PRACTICE_SUGGESTION (see the report)
        print(m.importance.name, m.check_function_name, m.object_name, m.message[:120])
    bad = [m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]
    assert not bad, [(m.importance.name, m.check_function_name, m.file_path, m.message)
                     for m in bad]


def test_readouts_round_trip_to_the_same_statistics(run):
    res, out, paths = run
    back = read_nwb(paths)
    pd.testing.assert_frame_equal(back, res.readouts)
    pd.testing.assert_frame_equal(read_nwb(out), res.readouts)  # a folder, any file order
    pd.testing.assert_frame_equal(read_nwb(list(reversed(paths))), res.readouts)
    pd.testing.assert_frame_equal(summarize(back), summarize(res.readouts))
    pd.testing.assert_frame_equal(compare(back, res.scenario.compare),
                                  compare(res.readouts, res.scenario.compare))
    one = read_nwb(_file(paths, "sub-cort-sal-0_ses-2h.nwb"))
    assert set(one["assay"]) == {"western_blot"} and set(one["time_h"]) == {2.0}


def test_tracking_round_trips(run):
    res, out, paths = run
    kept = pd.concat(res.tracking.values(), ignore_index=True)
    back = read_nwb_tracking(paths)
    pd.testing.assert_frame_equal(back, read_tracking_table(kept))
    pd.testing.assert_frame_equal(read_nwb_tracking(out), back)
    assert len(back) == len(kept)


def test_open_field_path_round_trips(run):
    """The kept open-field path is a Position beside the tail suspension in the same
    session's behaviour module, and read back it scores the run's distance."""
    from ketasim.analysis.behavior import binned_distance

    res, _, paths = run
    kept = res.kept["open_field"]["cort_ket"]["tracks"]
    readouts = res.readouts[res.readouts["readout"] == "distance_cm"]
    for s in (0, 1):
        path = _file(paths, f"sub-cort-ket-{s}_ses-24h.nwb")
        back = read_nwb_position(path)
        mine = kept[kept["subject"] == str(s)]
        np.testing.assert_allclose(back["time_s"], mine["t_s"])
        np.testing.assert_allclose(back[["x_cm", "y_cm"]], mine[["x_cm", "y_cm"]],
                                   rtol=1e-12, atol=1e-12)
        distance = binned_distance(back["x_cm"].to_numpy(), back["y_cm"].to_numpy(),
                                   back["time_s"].to_numpy(), bin_s=120.0)[1].sum()
        want = readouts[(readouts["arm"] == "cort_ket") & (readouts["subject"] == s)]
        assert distance == pytest.approx(float(want["value"].iloc[0]), rel=1e-12)
        with NWBHDF5IO(str(path), "r") as io:
            behavior = io.read().processing["behavior"]
            assert {"open_field", "tail_suspension"} <= set(behavior.data_interfaces)
            series = behavior["open_field"].spatial_series["open_field_position"]
            assert series.unit == "meters" and series.conversion == 0.01
            assert "arena of side" in series.reference_frame
    with pytest.raises(NWBDataError, match="no SpatialSeries"):
        read_nwb_position(_file(paths, "sub-cort-sal-0_ses-24h.nwb"))


def test_dff_round_trips_as_stored(run):
    res, _, paths = run
    for arm, label in (("cort_ket", "cort-ket"), ("cort_sal", "cort-sal")):
        for t, ses in ((-1.0, "pre1h"), (24.0, "24h")):
            path = _file(paths, f"sub-{label}-0_ses-{ses}.nwb")
            kept = res.calcium[arm][t]
            rec = read_nwb_dff(path)
            assert rec.dff.dtype == np.float64 and kept.dtype == np.float32
            assert np.array_equal(rec.dff, kept.astype(np.float64))
            assert rec.frame_rate_hz == 30.0 and rec.n_cells == 12
            assert rec.source == path.name
            with h5py.File(path, "r") as f:
                stored = f["processing/ophys/DfOverF/dff/data"]
                assert stored.dtype == np.float32
                assert np.array_equal(stored[:], kept.T)
    with pytest.raises(NWBDataError, match=r"sub-cort-ket-1_ses-24h\.nwb: no 'ophys'"):
        read_nwb_dff(_file(paths, "sub-cort-ket-1_ses-24h.nwb"))


def _nwb(path, *, readouts: dict | None = None, subject_id="m-7", session=None):
    nwb = NWBFile(session_description="a lab session", identifier=path.stem,
                  session_start_time=TIME_ZERO,
                  subject=Subject(subject_id=subject_id, species="Mus musculus", sex="U",
                                  age="P10W"))
    if readouts is not None or session is not None:
        mod = nwb.create_processing_module("ketasim", "readouts")
        if readouts is not None:
            mod.add(DynamicTable(name="readouts", description="readouts", columns=[
                VectorData(name=k, description=k, data=v) for k, v in readouts.items()]))
        if session is not None:
            mod.add(DynamicTable(name="session", description="session", columns=[
                VectorData(name=k, description=k, data=v) for k, v in session.items()]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_a_lab_file_in_the_same_layout_is_read(tmp_path):
    path = _nwb(tmp_path / "lab.nwb", readouts={
        "assay": ["western_blot"] * 2, "readout": ["psd95_rel", "glua1_rel"],
        "unit": ["1", "1"], "value": [1.25, 0.5], "time_h": [24.0, 24.0]})
    df = read_nwb(path)
    # Subject.subject_id 'm-7' is <arm>-<subject>: arm 'm', subject 7 (the arm is kept, so
    # that ids such as cageA-1 and cageB-1 stay two animals)
    assert df.to_dict("list") == {
        "arm": ["m", "m"], "subject": [7, 7], "assay": ["western_blot"] * 2,
        "readout": ["psd95_rel", "glua1_rel"], "time_h": [24.0, 24.0], "value": [1.25, 0.5],
        "unit": ["1", "1"]}
    assert df["subject"].dtype == np.int64
    # a bare number is the subject, in the default arm
    bare = _nwb(tmp_path / "bare.nwb", subject_id="7", readouts={
        "assay": ["western_blot"], "readout": ["psd95_rel"], "unit": ["1"], "value": [1.25],
        "time_h": [24.0]})
    assert read_nwb(bare)[["arm", "subject"]].values.tolist() == [["all", 7]]


@pytest.mark.filterwarnings("ignore:RoiResponseSeries 'dff'")  # pynwb, on the bad shapes
def test_malformed_inputs_give_one_clear_error(tmp_path, run):
    _, _, paths = run
    text = tmp_path / "notes.nwb"
    text.write_text("not an NWB file\n")
    with pytest.raises(NWBDataError, match=r"notes\.nwb: not an NWB file"):
        read_nwb(text)
    with pytest.raises(NWBDataError, match=r"missing\.nwb: file not found"):
        read_nwb(tmp_path / "missing.nwb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NWBDataError, match="no .nwb files"):
        read_nwb(tmp_path / "empty")
    bare = _nwb(tmp_path / "bare.nwb")
    with pytest.raises(NWBDataError, match=r"bare\.nwb: no 'ketasim' processing module"):
        read_nwb(bare)
    with pytest.raises(NWBDataError, match=r"bare\.nwb: no 'spines' processing module"):
        read_nwb_tracking(bare)
    with pytest.raises(NWBDataError, match=r"bare\.nwb: no 'ophys' processing module"):
        read_nwb_dff(bare)
    novalue = _nwb(tmp_path / "novalue.nwb", readouts={
        "assay": ["western_blot"], "readout": ["psd95_rel"], "unit": ["1"], "time_h": [2.0]})
    with pytest.raises(NWBDataError, match=r"novalue\.nwb: .*missing column\(s\) 'value'"):
        read_nwb(novalue)
    notime = _nwb(tmp_path / "notime.nwb", readouts={
        "assay": ["western_blot"], "readout": ["psd95_rel"], "unit": ["1"], "value": [1.0]})
    with pytest.raises(NWBDataError, match=r"notime\.nwb: .*no 'time_h' column"):
        read_nwb(notime)
    text_values = _nwb(tmp_path / "text.nwb", readouts={
        "assay": ["western_blot"], "readout": ["psd95_rel"], "unit": ["1"],
        "value": ["high"], "time_h": [2.0]})
    with pytest.raises(NWBDataError, match=r"text\.nwb: .*column 'value': expected numbers"):
        read_nwb(text_values)
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as f:
        f["x"] = 1.0
    with pytest.raises(NWBDataError, match=r"plain\.nwb: not an NWB file \(an HDF5 file "
                                           "without NWB's nwb_version"):
        read_nwb(plain)
    # a readouts column shorter than the table, a dF/F one ROI short, a 1-D dF/F
    good = _file(paths, "sub-cort-ket-0_ses-24h.nwb")
    short = _replace(good, tmp_path / "short.nwb", "processing/ketasim/readouts", "value",
                     lambda old: old[:-1])
    with pytest.raises(NWBDataError, match=r"short\.nwb: processing/ketasim/readouts, "
                                           r"column 'value': shape \(\d+,\), expected"):
        read_nwb(short)
    narrow = _replace(good, tmp_path / "narrow.nwb", "processing/ophys/DfOverF/dff", "data",
                      lambda old: old[:, :-1])
    with pytest.raises(NWBDataError, match=r"narrow\.nwb: DfOverF series 'dff': data has "
                                           r"shape \(900, 11\), expected \(frames, 12\)"):
        read_nwb_dff(narrow)
    flat = _replace(good, tmp_path / "flat.nwb", "processing/ophys/DfOverF/dff", "data",
                    lambda old: old[:, 0])
    with pytest.raises(NWBDataError, match=r"flat\.nwb: DfOverF series 'dff': expected 2-D"):
        read_nwb_dff(flat)


def _replace(src, dst, group, name, change):
    """A copy of ``src`` whose dataset ``group/name`` is ``change(old values)``."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        g = f[group]
        attrs, old = dict(g[name].attrs), g[name][()]
        del g[name]
        g.create_dataset(name, data=change(old))
        g[name].attrs.update(attrs)
    return dst


def test_frame_rate_default_needs_the_catalogue(run, tmp_path):
    res, _, _ = run
    with pytest.raises(ValueError, match="pass assays=ketasim.experiment.assays.ASSAYS"):
        write_nwb(res, tmp_path / "x", REG)


HUMAN = """
name: nwb-human
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


def test_a_virtual_patient_has_its_sex_age_and_weight(tmp_path):
    res = simulate(load_scenario_text(HUMAN), registry=REG)
    paths = write_nwb(res, tmp_path / "nwb", REG)
    assert [p.name for p in paths] == [f"sub-ketamine-{s}_ses-{t}.nwb"
                                       for s in (0, 1) for t in ("pre24h", "24h")]
    pd.testing.assert_frame_equal(read_nwb(paths), res.readouts)
    patients = res.patients.set_index("subject")
    with NWBHDF5IO(str(paths[1]), "r") as io:
        nwb = io.read()
        s = nwb.subject
        p = patients.loc[0]
        assert s.species == "Homo sapiens"
        assert s.sex == {"female": "F", "male": "M"}[p["sex"]]
        assert s.weight == f"{p['weight_kg']:.1f} kg"
        years = int(s.age[1:s.age.index("Y")])
        assert years == int((p["age_y"] * 365.25 + 1) // 365.25)
        proto = nwb.intervals["protocol"].to_dataframe()
        assert proto["stop_time"].iloc[1] - proto["start_time"].iloc[1] == 40 * 60.0


@pytest.mark.parametrize("names", [("a_b", "a-b"), ("Ket", "ket")])
def test_colliding_arm_labels_fail_before_simulating(tmp_path, names):
    """Arms whose NWB labels coincide (case aside: one file on macOS and Windows) are one
    error of run --nwb before anything is simulated (it failed after the simulation)."""
    from typer.testing import CliRunner

    from ketasim.cli import app

    arms = "".join(f"""
  - name: {n}
    n: 1
    protocol: [{{at: 0h, drug: saline, route: ip}}]
    assays: [{{assay: western_blot, at: [2h]}}]""" for n in names)
    path = tmp_path / "s.yaml"
    path.write_text(f"name: c\nspecies: mouse\nseed: 1\narms:{arms}\n")
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--nwb"])
    assert res.exit_code == 2, res.output
    assert "--nwb: arms" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()
