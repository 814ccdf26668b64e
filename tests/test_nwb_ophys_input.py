"""NWB ophys files as other pipelines write them (suite2p or CaImAn through their NWB
conversions: raw Fluorescence with a Neuropil series, frame timestamps instead of a
rate) read as dF/F, and ``ketasim analyze calcium`` takes them as it takes a suite2p
folder or a dF/F table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from pynwb import NWBHDF5IO, NWBFile
from pynwb.ophys import (
    DfOverF,
    Fluorescence,
    ImageSegmentation,
    OpticalChannel,
    RoiResponseSeries,
)

from ketasim.analysis.calcium import read_dff
from ketasim.analysis.suite2p import compute_dff
from ketasim.analyze.run import analyze
from ketasim.io.nwb import TIME_ZERO, NWBDataError, read_nwb_dff

RATE = 30.0
# hdmf, on a series whose ROI region is built before the series joins the file
pytestmark = pytest.mark.filterwarnings("ignore:The linked table for DynamicTableRegion")


def plane_file(path, n: int, first_id: int = 0):
    """An NWB file (not yet written) with one imaging plane of ``n`` ROIs (ids from
    ``first_id``) in an ``ophys`` module: (nwbfile, ophys module, plane segmentation)."""
    nwb = NWBFile(session_description="lab two-photon session", identifier=path.stem,
                  session_start_time=TIME_ZERO)
    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane0", optical_channel=OpticalChannel(name="green", description="GCaMP",
                                                      emission_lambda=510.0),
        description="L5 mPFC", device=device, excitation_lambda=920.0,
        imaging_rate=RATE, indicator="GCaMP6f", location="mPFC")
    seg = ImageSegmentation()
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="ROIs",
                                       imaging_plane=plane)
    for i in range(n):
        ps.add_roi(id=first_id + i, pixel_mask=[(i, i, 1.0)])
    ophys = nwb.create_processing_module("ophys", "optical physiology")
    ophys.add(seg)
    return nwb, ophys, ps


def lab_nwb(path, traces: dict[str, np.ndarray], *, interface=Fluorescence,
            timestamps: np.ndarray | None = None, start: float = 0.0):
    """An NWB file with ``traces`` (name -> ROIs x frames) in one ``interface`` of the
    ophys module, over a plane segmentation of as many ROIs (ids 10, 11, ...)."""
    n = next(iter(traces.values())).shape[0]
    nwb, ophys, ps = plane_file(path, n, first_id=10)
    rois = ps.create_roi_table_region(region=list(range(n)), description="all ROIs")
    iface = interface()
    for name, x in traces.items():
        clock = ({"timestamps": timestamps} if timestamps is not None
                 else {"rate": RATE, "starting_time": start})
        iface.add_roi_response_series(RoiResponseSeries(
            name=name, data=x.T.astype(np.float32), rois=rois, unit="a.u.", **clock))
    ophys.add(iface)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def raw_traces(seed: int, n: int = 6, frames: int = 1800):
    rng = np.random.default_rng(seed)
    f = 100 + rng.normal(0, 2, (n, frames))
    f[:, 300:315] += 60
    f[: n // 2, 900:912] += 50
    fneu = 20 + rng.normal(0, 1, (n, frames))
    return f.astype(np.float32).astype(float), fneu.astype(np.float32).astype(float)


def test_raw_fluorescence_with_neuropil_and_timestamps(tmp_path):
    f, fneu = raw_traces(1)
    ts = 12.0 + np.arange(f.shape[1]) / RATE
    path = lab_nwb(tmp_path / "s2p.nwb", {"RoiResponseSeries": f, "Neuropil": fneu},
                   timestamps=ts)
    rec = read_nwb_dff(path)
    np.testing.assert_allclose(rec.dff, compute_dff(f, fneu, RATE), rtol=0, atol=1e-12)
    assert rec.frame_rate_hz == pytest.approx(RATE)
    assert rec.time_s[0] == pytest.approx(12.0) and rec.cell_ids[:2] == ("10", "11")
    # no neuropil series: no correction
    lone = lab_nwb(tmp_path / "lone.nwb", {"RoiResponseSeries": f})
    np.testing.assert_allclose(read_nwb_dff(lone).dff, compute_dff(f, 0 * f, RATE),
                               atol=1e-12)


def test_a_dff_series_with_timestamps_and_the_errors(tmp_path):
    rng = np.random.default_rng(2)
    dff = rng.normal(0, 0.05, (4, 600))
    ts = np.arange(600) / RATE
    rec = read_nwb_dff(lab_nwb(tmp_path / "d.nwb", {"dff": dff}, interface=DfOverF,
                               timestamps=ts))
    np.testing.assert_allclose(rec.dff, dff.astype(np.float32), atol=0)
    dropped = np.delete(np.arange(601) / RATE, 300)  # frame 300 never came
    bad = lab_nwb(tmp_path / "gap.nwb", {"dff": dff}, interface=DfOverF, timestamps=dropped)
    with pytest.raises(NWBDataError, match=r"gap\.nwb: DfOverF series 'dff': timestamps: "
                                           r"frame 300 comes .*a dropped frame"):
        read_nwb_dff(bad)
    two = lab_nwb(tmp_path / "two.nwb", {"F_a": dff + 1, "F_b": dff + 1})
    with pytest.raises(NWBDataError, match=r"two\.nwb: no Fluorescence series "
                                           r"'RoiResponseSeries' \(series: F_a, F_b\)"):
        read_nwb_dff(two)
    assert read_nwb_dff(two, "F_b").dff.shape == (4, 600)


def test_analyze_calcium_takes_nwb_files(tmp_path):
    files, csvs = [], []
    for i in (1, 2, 3, 4):
        f, fneu = raw_traces(10 + i)
        files.append(lab_nwb(tmp_path / f"m{i}.nwb", {"RoiResponseSeries": f,
                                                      "Neuropil": fneu}))
        # the same session as a dF/F table (cells as columns), the reference
        wide = pd.DataFrame(compute_dff(f, fneu, RATE).T,
                            columns=[f"c{k}" for k in range(f.shape[0])])
        wide.insert(0, "time_s", np.arange(f.shape[1]) / RATE)
        csvs.append(tmp_path / f"m{i}.csv")
        wide.to_csv(csvs[-1], index=False, float_format="%.17g")
    design = {"name": "lab", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
              "files": [{"path": str(p), "subject": f"m{i}", "time": "1d"}
                        for i, p in enumerate(files + csvs, start=1)]}
    for e in design["files"][4:]:
        e["subject"] = f"m{int(e['subject'][1:]) - 4}"
    design["compare"] = [{"readout": "calcium_transient_rate_per_min", "at": "1d",
                          "arms": ["ket", "sal"]}]
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    a = analyze("calcium", files, tmp_path / "d.yaml", tmp_path / "nwb_out")
    b = analyze("calcium", csvs, tmp_path / "d.yaml", tmp_path / "csv_out")
    ra, rb = (pd.read_parquet(o / "readouts.parquet") for o in (a, b))
    pd.testing.assert_frame_equal(ra.drop(columns="cell"), rb.drop(columns="cell"),
                                  check_exact=False, rtol=1e-9)
    assert (ra.loc[ra.assay == "calcium_imaging", "value"].notna()).all()
    # a design frame rate that the file contradicts is an error naming both
    design["options"] = {"frame_rate_hz": 15.0}
    (tmp_path / "d15.yaml").write_text(yaml.safe_dump(design))
    with pytest.raises(ValueError, match=r"m1\.nwb: the file's frame rate is 30 Hz, the "
                                         r"design's frame_rate_hz 15"):
        analyze("calcium", files, tmp_path / "d15.yaml", tmp_path / "bad")


def test_the_csv_reference_reads_the_same_dff(tmp_path):
    """The reference of the test above is exact: the CSV holds every digit."""
    f, fneu = raw_traces(11)
    d = compute_dff(f, fneu, RATE)
    wide = pd.DataFrame(d.T)
    wide.columns = [f"c{k}" for k in range(d.shape[0])]
    wide.to_csv(tmp_path / "x.csv", index=False, float_format="%.17g")
    np.testing.assert_array_equal(read_dff(tmp_path / "x.csv", RATE).dff, d)


def suite2p_nwb(path, f, fneu, spks, *, extra_dff: dict | None = None):
    """The layout of suite2p's own NWB export: three Fluorescence interfaces, each with
    one series named as the interface (Fluorescence, Neuropil, Deconvolved)."""
    nwb, ophys, ps = plane_file(path, f.shape[0])
    for name, x in (("Fluorescence", f), ("Neuropil", fneu), ("Deconvolved", spks)):
        rois = ps.create_roi_table_region(region=list(range(f.shape[0])), description="all")
        ophys.add(Fluorescence(name=name, roi_response_series=RoiResponseSeries(
            name=name, data=x.T, rois=rois, unit="lumens", rate=RATE)))
    if extra_dff:
        rois = ps.create_roi_table_region(region=list(range(f.shape[0])), description="all")
        ophys.add(DfOverF(roi_response_series=[RoiResponseSeries(
            name=k, data=v.T, rois=rois, unit="1", rate=RATE) for k, v in extra_dff.items()]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_suite2p_layout_scaled_data_jitter_and_one_roi(tmp_path):
    f, fneu = raw_traces(5)
    spks = np.abs(np.random.default_rng(0).normal(0, 1, f.shape))
    rec = read_nwb_dff(suite2p_nwb(tmp_path / "s2p.nwb", f, fneu, spks))
    np.testing.assert_allclose(rec.dff, compute_dff(f, fneu, RATE), atol=1e-12)
    # an integer series with a conversion factor is read in its unit
    dff = np.random.default_rng(1).normal(0, 0.05, (3, 600))
    raw = np.round(dff / 1e-4).astype(np.int16)
    path = tmp_path / "int.nwb"
    lab_nwb(path, {"dff": raw.astype(float)}, interface=DfOverF)
    import h5py

    key = "processing/ophys/DfOverF/dff/data"
    with h5py.File(path, "a") as h:  # as an acquisition system stores it: int16 x 1e-4
        attrs = dict(h[key].attrs)
        del h[key]
        h.create_dataset(key, data=raw.T)
        h[key].attrs.update({**attrs, "conversion": 1e-4})
    np.testing.assert_allclose(read_nwb_dff(path).dff, raw * 1e-4, atol=1e-12)
    # frame times that jitter by a few % of an interval are not dropped frames
    ts = np.arange(600) / RATE + np.random.default_rng(2).uniform(-0.03, 0.03, 600) / RATE
    rec = read_nwb_dff(lab_nwb(tmp_path / "jit.nwb", {"dff": dff}, interface=DfOverF,
                               timestamps=ts))
    assert rec.frame_rate_hz == pytest.approx(RATE, rel=0.01)
    # one ROI written as 1-D data
    one = lab_nwb(tmp_path / "one.nwb", {"dff": dff[:1]}, interface=DfOverF)
    with h5py.File(one, "a") as h:
        data = h["processing/ophys/DfOverF/dff/data"][:, 0]
        attrs = dict(h["processing/ophys/DfOverF/dff/data"].attrs)
        del h["processing/ophys/DfOverF/dff/data"]
        h.create_dataset("processing/ophys/DfOverF/dff/data", data=data)
        h["processing/ophys/DfOverF/dff/data"].attrs.update(attrs)
    assert read_nwb_dff(one).dff.shape == (1, 600)


def test_analyze_calcium_series_option(tmp_path):
    f, fneu = raw_traces(6)
    spks = np.abs(f - 100)
    d = {"dff_plane0": compute_dff(f, fneu, RATE), "dff_plane1": compute_dff(f, fneu, RATE)}
    path = suite2p_nwb(tmp_path / "m1.nwb", f, fneu, spks, extra_dff=d)
    design = {"name": "ca", "groups": {"a": ["m1"]},
              "files": [{"path": str(path), "subject": "m1", "time": "1d"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    with pytest.raises(NWBDataError, match=r"no DfOverF series 'dff' \(series: dff_plane0, "
                                           r"dff_plane1\)"):
        analyze("calcium", [path], tmp_path / "d.yaml", tmp_path / "x")
    (tmp_path / "d1.yaml").write_text(yaml.safe_dump({**design,
                                                      "options": {"series": "dff_plane1"}}))
    out = analyze("calcium", [path], tmp_path / "d1.yaml", tmp_path / "ok")
    assert (pd.read_parquet(out / "readouts.parquet")["value"].notna()).any()
