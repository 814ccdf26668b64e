"""Open-field locomotion from DeepLabCut pose files: the track in cm, the likelihood
cutoff, the centroid, ``ketasim analyze behavior`` on such files, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ketasim.analysis.behavior import (
    BehaviorDataError,
    is_dlc_csv,
    open_field_locomotion,
    read_dlc_track,
)
from ketasim.analyze.design import DesignError
from ketasim.analyze.run import analyze

FPS, PX_PER_CM = 30.0, 5.0
SCORER = "DLC_resnet50_openfieldJan1shuffle1_200000"


def dlc_csv(path, parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
            individuals: list[str] | None = None) -> None:
    """A DeepLabCut CSV: body part -> (x px, y px, likelihood) per frame."""
    names = list(parts)
    header = [["scorer"] + [SCORER] * 3 * len(names)]
    if individuals:
        header.append(["individuals"] + [i for i in individuals for _ in range(3)])
    header += [["bodyparts"] + [n for n in names for _ in range(3)],
               ["coords"] + ["x", "y", "likelihood"] * len(names)]
    n = len(next(iter(parts.values()))[0])
    rows = [[str(k)] + [repr(float(v[c][k])) for v in parts.values() for c in range(3)]
            for k in range(n)]
    path.write_text("\n".join(",".join(r) for r in header + rows) + "\n")


def circle(n: int, r_px: float = 100.0, turns: float = 2.0, phase: float = 0.0):
    a = phase + np.linspace(0.0, 2 * np.pi * turns, n)
    return 250 + r_px * np.cos(a), 250 + r_px * np.sin(a)


def test_the_track_in_cm_and_the_likelihood_cutoff(tmp_path):
    n = 3000
    x, y = circle(n)
    p = np.full(n, 0.99)
    p[1000:1100] = 0.2  # the tracker lost the animal for 100 frames
    dlc_csv(tmp_path / "m1DLC.csv", {"tailbase": (x, y, p)})
    assert is_dlc_csv(tmp_path / "m1DLC.csv")
    track = read_dlc_track(tmp_path / "m1DLC.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM,
                           subject="m1")
    assert list(track.columns) == ["arm", "subject", "time_s", "x_cm", "y_cm"]
    np.testing.assert_allclose(track["time_s"], np.arange(n) / FPS)
    lost = track["x_cm"].isna().to_numpy()
    assert lost.sum() == 100 and lost[1000:1100].all()
    np.testing.assert_allclose(track["x_cm"][~lost], x[~lost] / PX_PER_CM)
    # the same track written in cm gives the same locomotion
    cm = pd.DataFrame({"subject": "m1", "time_s": np.arange(n) / FPS,
                       "x_cm": np.where(lost, np.nan, x / PX_PER_CM),
                       "y_cm": np.where(lost, np.nan, y / PX_PER_CM)})
    pd.testing.assert_frame_equal(open_field_locomotion(track, bin_s=20.0),
                                  open_field_locomotion(cm, bin_s=20.0))
    # two turns of a 20-cm circle, less what the lost frames leave out
    total = open_field_locomotion(track, bin_s=100.0)["distance_cm"].sum()
    assert total == pytest.approx(2 * 2 * np.pi * 20.0 * (n - 101) / (n - 1), rel=2e-3)
    # a lower cutoff keeps those frames
    kept = read_dlc_track(tmp_path / "m1DLC.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM,
                          likelihood_min=0.1)
    assert kept["x_cm"].notna().all()


def test_several_body_parts_the_centroid_or_one(tmp_path):
    n = 600
    x1, y1 = circle(n)
    x2, y2 = x1 + 10.0, y1 - 4.0
    p1, p2 = np.full(n, 0.95), np.full(n, 0.95)
    p2[50] = 0.1
    dlc_csv(tmp_path / "m.csv", {"nose": (x2, y2, p2), "tailbase": (x1, y1, p1)})
    c = read_dlc_track(tmp_path / "m.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    np.testing.assert_allclose(c["x_cm"].drop(index=50), ((x1 + x2) / 2 / PX_PER_CM)[
        np.arange(n) != 50])
    assert np.isnan(c.loc[50, "x_cm"])  # the centroid needs every body part
    t = read_dlc_track(tmp_path / "m.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM,
                       bodypart="tailbase")
    assert t["x_cm"].notna().all()
    with pytest.raises(BehaviorDataError, match=r"m\.csv: bodypart: got 'tail'; the file's "
                                                 r"body parts: nose, tailbase"):
        read_dlc_track(tmp_path / "m.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM,
                       bodypart="tail")


def test_bad_pose_files_are_one_error(tmp_path):
    n = 10
    x, y = circle(n)
    p = np.ones(n)
    dlc_csv(tmp_path / "ma.csv", {"nose": (x, y, p)}, individuals=["mouse1"])
    with pytest.raises(BehaviorDataError, match=r"ma\.csv: a multi-animal DeepLabCut file "
                                                r"\(individuals: mouse1\)"):
        read_dlc_track(tmp_path / "ma.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    dlc_csv(tmp_path / "ok.csv", {"nose": (x, y, p)})
    text = (tmp_path / "ok.csv").read_text().splitlines()
    bad = text[:5] + [text[5].replace(repr(float(x[2])), "abc")] + text[6:]
    (tmp_path / "cell.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(BehaviorDataError, match=r"cell\.csv, column 'nose x', frame row 3 "
                                                r"\(line 6\): expected a number, got 'abc'"):
        read_dlc_track(tmp_path / "cell.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    back = text[:4] + [text[5], text[4]] + text[6:]  # frames 0, 2, 1
    (tmp_path / "order.csv").write_text("\n".join(back) + "\n")
    with pytest.raises(BehaviorDataError, match=r"order\.csv, frame row 3 \(line 6\): "
                                                "expected the frame index to increase, "
                                                "got '1'"):
        read_dlc_track(tmp_path / "order.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    nolik = [",".join(r.split(",")[:3]) for r in text]
    (tmp_path / "nolik.csv").write_text("\n".join(nolik) + "\n")
    with pytest.raises(BehaviorDataError, match=r"nolik\.csv: body part 'nose' has no "
                                                "likelihood column"):
        read_dlc_track(tmp_path / "nolik.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    with pytest.raises(BehaviorDataError, match=r"ok\.csv: px_per_cm: got 0"):
        read_dlc_track(tmp_path / "ok.csv", frame_rate_hz=FPS, px_per_cm=0)
    (tmp_path / "plain.csv").write_text("subject,time_s,x_cm,y_cm\nm1,0,1,1\n")
    assert not is_dlc_csv(tmp_path / "plain.csv")


def test_analyze_behavior_on_pose_files(tmp_path):
    n = int(FPS * 600)  # a 10-min session
    paths = []
    for i, turns in enumerate((8, 9, 3, 4), start=1):  # ketamine mice run more here
        x, y = circle(n, turns=turns)
        paths.append(tmp_path / f"m{i}DLC_resnet50.csv")
        dlc_csv(paths[-1], {"tailbase": (x, y, np.full(n, 0.99))})
    design = {"name": "of", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
              "files": [{"path": str(p), "subject": f"m{i}", "time": "1d"}
                        for i, p in enumerate(paths, start=1)],
              "compare": [{"readout": "distance_cm", "at": "1d", "arms": ["ket", "sal"]}],
              "options": {"frame_rate_hz": FPS, "px_per_cm": PX_PER_CM}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    out = analyze("behavior", paths, tmp_path / "d.yaml", tmp_path / "out")
    r = pd.read_parquet(out / "readouts.parquet")
    dist = r[r.readout == "distance_cm"].sort_values("subject")["value"].to_numpy()
    # the distance in the first 5 min of the 10-min session, the simulated open_field
    # readout's window (bin_min 5): half of each animal's turns
    np.testing.assert_allclose(dist, [np.pi * 20.0 * t for t in (8, 9, 3, 4)], rtol=1e-3)
    assert set(r["assay"]) == {"open_field"}
    for change, msg in (({"px_per_cm": None}, "options.px_per_cm: required"),
                        ({"bodypart": 3}, "options.bodypart: got 3"),
                        ({"likelihood_min": 2}, "options.likelihood_min: got 2.0")):
        d = {**design, "options": {k: v for k, v in {**design["options"], **change}.items()
                                   if v is not None}}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(d))
        with pytest.raises(DesignError, match=msg):
            analyze("behavior", paths, tmp_path / "bad.yaml", tmp_path / "bad")
    d = {**design, "files": [{"path": str(p), "time": "1d"} for p in paths]}
    (tmp_path / "nosub.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(DesignError, match="names no subject .*DeepLabCut file"):
        analyze("behavior", paths, tmp_path / "nosub.yaml", tmp_path / "bad")


# ------------------------------------------------------------- NWB Position files
def nwb_position(path, series: dict[str, np.ndarray], *, unit="meters", conversion=1.0,
                 timestamps=None, where="behavior"):
    """An NWB file with a Position of SpatialSeries (name -> samples x 2)."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries

    from ketasim.io.nwb import TIME_ZERO

    nwb = NWBFile(session_description="open field", identifier=path.stem,
                  session_start_time=TIME_ZERO)
    pos = Position(name="Position")
    for name, xy in series.items():
        clock = {"timestamps": timestamps} if timestamps is not None else {"rate": FPS}
        pos.add_spatial_series(SpatialSeries(name=name, data=xy, unit=unit,
                                             conversion=conversion,
                                             reference_frame="arena corner", **clock))
    if where == "behavior":
        nwb.create_processing_module("behavior", "tracking").add(pos)
    else:
        nwb.add_acquisition(pos)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_position_tracks(tmp_path):
    from ketasim.io.nwb import NWBDataError, read_nwb_position

    n = 1800
    x, y = circle(n)  # pixels of the DLC tests: 20-cm circle at 5 px/cm
    xy_m = np.c_[x, y] / PX_PER_CM / 100.0
    xy_m[100:130] = np.nan  # lost
    path = nwb_position(tmp_path / "m.nwb", {"body": xy_m})
    track = read_nwb_position(path)
    np.testing.assert_allclose(track["x_cm"].to_numpy()[:100], x[:100] / PX_PER_CM)
    assert track["x_cm"].isna().sum() == 30
    np.testing.assert_allclose(track["time_s"], np.arange(n) / FPS)
    # millimetres via conversion, in acquisition, with timestamps; pixels need a scale
    ts = 5.0 + np.arange(n) / FPS
    mm = nwb_position(tmp_path / "mm.nwb", {"body": xy_m * 1000.0}, unit="m",
                      conversion=1e-3, timestamps=ts, where="acquisition")
    t2 = read_nwb_position(mm)
    np.testing.assert_allclose(t2[["x_cm", "y_cm"]], track[["x_cm", "y_cm"]], rtol=1e-12)
    assert t2["time_s"].iloc[0] == 5.0
    px = nwb_position(tmp_path / "px.nwb", {"nose": np.c_[x, y], "tail": np.c_[x, y]},
                      unit="pixels")
    with pytest.raises(NWBDataError, match=r"px\.nwb: several SpatialSeries \(nose, tail\)"):
        read_nwb_position(px)
    with pytest.raises(NWBDataError, match=r"px\.nwb: SpatialSeries 'tail': positions in "
                                           "pixels; give px_per_cm"):
        read_nwb_position(px, "tail")
    np.testing.assert_allclose(read_nwb_position(px, "tail", PX_PER_CM)["x_cm"],
                               x / PX_PER_CM)
    deg = nwb_position(tmp_path / "deg.nwb", {"body": np.c_[x, y]}, unit="degrees")
    with pytest.raises(NWBDataError, match="unit 'degrees' is not a length"):
        read_nwb_position(deg)

    # analyze behavior: the same distances as the DeepLabCut files of the same tracks
    paths = []
    for i, turns in enumerate((8, 9, 3, 4), start=1):
        cx, cy = circle(int(FPS * 600), turns=turns)
        paths.append(nwb_position(tmp_path / f"of{i}.nwb",
                                  {"body": np.c_[cx, cy] / PX_PER_CM / 100.0}))
    design = {"name": "of", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
              "files": [{"path": str(p), "subject": f"m{i}", "time": "1d"}
                        for i, p in enumerate(paths, start=1)],
              "compare": [{"readout": "distance_cm", "at": "1d", "arms": ["ket", "sal"]}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    out = analyze("behavior", paths, tmp_path / "d.yaml", tmp_path / "out")
    r = pd.read_parquet(out / "readouts.parquet")
    dist = r[r.readout == "distance_cm"].sort_values("subject")["value"].to_numpy()
    # the distance in the first 5 min of the 10-min session, the simulated open_field
    # readout's window (bin_min 5): half of each animal's turns
    np.testing.assert_allclose(dist, [np.pi * 20.0 * t for t in (8, 9, 3, 4)], rtol=1e-3)


def test_file_entries_by_pattern(tmp_path):
    """Forty files need not be forty entries: subject and session from the file names."""
    from ketasim.analyze.design import load_design

    n = int(FPS * 60)
    paths = []
    for i, turns in enumerate((4, 5, 1, 2), start=1):
        for session, extra in (("pre", 0), ("post", 1)):
            x, y = circle(n, turns=turns + extra)
            paths.append(tmp_path / "videos" / f"m{i}_{session}DLC_resnet50_of.csv")
            paths[-1].parent.mkdir(exist_ok=True)
            dlc_csv(paths[-1], {"tailbase": (x, y, np.full(n, 0.99))})
    design = {"name": "of", "groups": {"ket": ["m1", "m2"], "sal": ["m3", "m4"]},
              "sessions": {"pre": "-1d", "post": "1d"},
              "files": [{"pattern": "{subject}_{session}DLC*.csv"}],
              "compare": [{"readout": "distance_cm", "at": "post", "baseline": "pre",
                           "arms": ["ket", "sal"]}],
              "options": {"frame_rate_hz": FPS, "px_per_cm": PX_PER_CM}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    d = load_design(tmp_path / "d.yaml")
    assert d.file_entry(paths[3]) == ("m2", 24.0)
    assert d.file_entry(Path("elsewhere/m3_preDLC_x.csv")) == ("m3", -24.0)
    out = analyze("behavior", paths, tmp_path / "d.yaml", tmp_path / "out")
    r = pd.read_parquet(out / "readouts.parquet")
    assert len(r) == 8 and sorted(r["time_h"].unique()) == [-24.0, 24.0]
    # one extra turn per mouse between the sessions
    stats = pd.read_csv(out / "stats.csv")
    assert stats.loc[0, "baseline_h"] == -24.0
    # an exact path entry wins over a pattern; a fixed session with a subject pattern
    both = {**design, "files": [{"path": str(paths[0]), "subject": "m2", "session": "post"},
                                {"pattern": "videos/{subject}_*.csv", "session": "pre"}]}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(both))
    d = load_design(tmp_path / "b.yaml")
    assert d.file_entry(paths[0]) == ("m2", 24.0)
    assert d.file_entry(paths[1]) == ("m1", -24.0)
    with pytest.raises(DesignError, match=r"files\[1\].pattern: .*x9_pre.csv' fits the "
                                          r"pattern, but no reading .* subject 'x9'"):
        d.file_entry(tmp_path / "videos" / "x9_pre.csv")
    for files, msg in (
            ([{"pattern": "{subject}_{day}.csv"}], r"files\[0\].pattern: unknown field"),
            ([{"pattern": "{subject}.csv"}], r"files\[0\]: give exactly one of session"),
            ([{"pattern": "{subject}_{session}.csv", "subject": "m1"}],
             "the subject is both in the pattern and given"),
            ([{"pattern": "a.csv", "path": "a.csv", "time": "1d"}],
             "give exactly one of path and pattern"),
            ([{"pattern": "{subject}_{session}_{session}.csv"}], "appears twice")):
        (tmp_path / "e.yaml").write_text(yaml.safe_dump({**design, "files": files}))
        with pytest.raises(DesignError, match=msg):
            load_design(tmp_path / "e.yaml")
    bad_session = {**design, "files": [{"pattern": "{subject}_{session}DLC*.csv"}],
                   "sessions": {"pre": "-1d"}, "compare": []}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(bad_session))
    with pytest.raises(DesignError, match=r"files\[0\].pattern: .*m1_postDLC.* reads, for "
                                          "one, as session 'post', subject 'm1'"):
        load_design(tmp_path / "s.yaml").file_entry(paths[1])


def test_patterns_try_every_reading_of_a_name():
    """A field followed by a wildcard, subject ids with underscores, and a later entry
    when an earlier one reads the name only as unknown subjects or sessions."""
    from ketasim.analyze.design import Design, ResolvedDesign

    def resolved(files, groups=None):
        return ResolvedDesign(Design.model_validate({
            "name": "x", "groups": groups or {"sal": [1, 2], "ket": [12, 21]},
            "sessions": {"pre": "-1d", "post": "1d"}, "files": files}), "d.yaml")

    d = resolved([{"pattern": "{subject}*_{session}.csv"}])
    with pytest.raises(DesignError, match="reads two ways"):  # subject 1 or 12: both exist
        d.file_entry(Path("12_cam3_pre.csv"))
    d = resolved([{"pattern": "{subject}_*_{session}.csv"}])
    assert d.file_entry(Path("12_cam3_pre.csv")) == ("12", -24.0)
    d = resolved([{"pattern": "{subject}_{session}*.csv"}],
                 {"a": ["m1", "m_1"], "b": ["m2"]})
    assert d.file_entry(Path("m1_post.csv")) == ("m1", 24.0)
    assert d.file_entry(Path("m_1_pre_cam.csv")) == ("m_1", -24.0)
    d = resolved([{"pattern": "{subject}_{time}*.csv"}], {"a": ["m1"], "b": ["m2"]})
    assert d.file_entry(Path("m1_1d_x.csv")) == ("m1", 24.0)
    # the first entry reads 'm1_pos.nwb' only with an unknown session: the second is used
    d = resolved([{"pattern": "{subject}_{session}.nwb"},
                  {"pattern": "{subject}_pos.nwb", "session": "post"}],
                 {"a": ["m1"], "b": ["m2"]})
    assert d.file_entry(Path("m1_pos.nwb")) == ("m1", 24.0)
    # two readings that both make sense are an error, not a guess
    d = resolved([{"pattern": "{subject}*.csv", "session": "pre"}],
                 {"a": ["m1", "m12"], "b": ["m2"]})
    with pytest.raises(DesignError, match="reads two ways .*make the pattern more specific"):
        d.file_entry(Path("m12.csv"))
    d = resolved([{"pattern": "{subject}_{session}.csv"}], {"a": ["m1"], "b": ["m2"]})
    with pytest.raises(DesignError, match=r"reads, for one, as session 'day3', subject"):
        d.file_entry(Path("m1_day3.csv"))


def test_a_subject_session_in_two_files_is_an_error(tmp_path):
    """DeepLabCut writes m1_...csv and m1_..._filtered.csv: both fit one pattern, and
    counting both would double n."""
    n = 300
    x, y = circle(n)
    paths = []
    for name in ("m1_preDLC_res.csv", "m1_preDLC_res_filtered.csv", "m2_preDLC_res.csv"):
        paths.append(tmp_path / name)
        dlc_csv(paths[-1], {"tailbase": (x, y, np.full(n, 0.99))})
    design = {"name": "of", "groups": {"a": ["m1"], "b": ["m2"]}, "sessions": {"pre": "-1d"},
              "files": [{"pattern": "{subject}_{session}DLC*.csv"}],
              "options": {"frame_rate_hz": FPS, "px_per_cm": PX_PER_CM}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    with pytest.raises(DesignError, match=r"m1_preDLC_res_filtered.csv: subject 'm1' at -24 h "
                                          r"\(open_field\) is also in .*m1_preDLC_res.csv"):
        analyze("behavior", paths, tmp_path / "d.yaml", tmp_path / "out")
    out = analyze("behavior", [paths[0], paths[2]], tmp_path / "d.yaml", tmp_path / "ok")
    assert len(pd.read_parquet(out / "readouts.parquet")) == 2


def test_a_pose_file_written_by_pandas_with_a_named_index(tmp_path):
    n = 200
    x, y = circle(n)
    cols = pd.MultiIndex.from_product([[SCORER], ["nose"], ["x", "y", "likelihood"]],
                                      names=["scorer", "bodyparts", "coords"])
    df = pd.DataFrame(np.c_[x, y, np.full(n, 0.9)], columns=cols)
    df.index.name = "frame"  # pandas then writes a fourth header row: frame,,,
    df.to_csv(tmp_path / "named.csv")
    assert (tmp_path / "named.csv").read_text().splitlines()[3].startswith("frame,")
    track = read_dlc_track(tmp_path / "named.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)
    np.testing.assert_allclose(track["x_cm"], x / PX_PER_CM)
    text = (tmp_path / "named.csv").read_text().splitlines()
    text[6] = text[6].replace(text[6].split(",")[1], "oops")
    (tmp_path / "bad.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(BehaviorDataError, match=r"frame row 3 \(line 7\)"):
        read_dlc_track(tmp_path / "bad.csv", frame_rate_hz=FPS, px_per_cm=PX_PER_CM)


def test_a_spatial_series_without_a_position_and_errors_naming_the_file(tmp_path):
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import SpatialSeries

    from ketasim.io.nwb import TIME_ZERO, read_nwb_position

    x, y = circle(300)
    nwb = NWBFile(session_description="of", identifier="a", session_start_time=TIME_ZERO)
    nwb.add_acquisition(SpatialSeries(name="head", data=np.c_[x, y] / 500.0, unit="m",
                                      reference_frame="corner", rate=FPS))
    with NWBHDF5IO(str(tmp_path / "alone.nwb"), "w") as io:
        io.write(nwb)
    np.testing.assert_allclose(read_nwb_position(tmp_path / "alone.nwb")["x_cm"], x / 5.0)
    ts = np.arange(300) / FPS
    ts[10] = ts[9]  # a repeated time
    path = nwb_position(tmp_path / "m3_pos.nwb", {"body": np.c_[x, y] / 500.0},
                        timestamps=ts)
    design = {"name": "of", "groups": {"a": ["m3"]},
              "files": [{"path": str(path), "subject": "m3", "time": "1d"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    with pytest.raises(BehaviorDataError, match=r"^m3_pos.nwb \(as read\), column 'time_s'"):
        analyze("behavior", [path], tmp_path / "d.yaml", tmp_path / "x")


def test_the_report_draws_the_open_field_paths(tmp_path):
    """Lab tracks (DeepLabCut here) and simulated ones both end up in the report's path
    figure, a panel per animal (the first six of a group)."""
    n = 600
    paths = []
    for i in range(1, 9):
        x, y = circle(n, turns=1 + i % 3)
        paths.append(tmp_path / f"m{i}_preDLC.csv")
        dlc_csv(paths[-1], {"tailbase": (x, y, np.full(n, 0.99))})
    design = {"name": "of", "groups": {"a": [f"m{i}" for i in range(1, 8)], "b": ["m8"]},
              "sessions": {"pre": "-1d"}, "files": [{"pattern": "{subject}_{session}DLC.csv"}],
              "options": {"frame_rate_hz": FPS, "px_per_cm": PX_PER_CM}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    out = analyze("behavior", paths, tmp_path / "d.yaml", tmp_path / "out")
    assert (out / "fig_open_field_tracks.png").is_file()
    assert "open-field paths" in (out / "report.html").read_text()
    from ketasim.analyze.design import load_design
    from ketasim.analyze.kinds import read_lab_data

    kept = read_lab_data("behavior", paths, load_design(tmp_path / "d.yaml")).kept
    shown = kept["open_field"]["a"]["tracks"]["subject"].unique()
    assert list(shown) == [f"m{i}" for i in range(1, 7)]  # six of group a's seven
    assert set(kept["open_field"]["a"]["tracks"]["session"]) == {"pre"}  # row labels
    np.testing.assert_allclose(kept["open_field"]["b"]["tracks"]["x_cm"].iloc[:3],
                               circle(n, turns=3)[0][:3] / PX_PER_CM)


def test_a_run_draws_simulated_paths(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    (tmp_path / "s.yaml").write_text("""
name: of
species: mouse
seed: 3
arms:
  - name: saline
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: open_field, at: [10min]}]
  - name: ketamine
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 30 mg/kg, route: ip}]
    assays: [{assay: open_field, at: [10min]}]
""")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out",
                                   str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "fig_open_field_tracks.png").is_file()


def test_untracked_animals_many_sessions_and_a_file_given_twice(tmp_path):
    """All-NaN tracks give no path figure but the analysis runs; the figure keeps four
    sessions per group; a file named twice (overlapping globs) is an error."""
    from ketasim.report.behavior_figures import track_figure

    n = 300
    x, y = circle(n)
    lost = tmp_path / "m1_preDLC.csv"
    dlc_csv(lost, {"tailbase": (x, y, np.zeros(n))})  # never above the cutoff
    design = {"name": "of", "groups": {"a": ["m1"]}, "sessions": {"pre": "-1d"},
              "files": [{"pattern": "{subject}_{session}DLC.csv"}],
              "options": {"frame_rate_hz": FPS, "px_per_cm": PX_PER_CM}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    out = analyze("behavior", [lost], tmp_path / "d.yaml", tmp_path / "out")
    # never tracked: no known distance (NaN, not 0 cm), left out of the tests with a note
    assert np.isnan(pd.read_parquet(out / "readouts.parquet")["value"].iloc[0])
    assert any("never tracked in the window" in n and "m1 at -24 h" in n
               for n in json.loads((out / "manifest.json").read_text())["notes"])
    assert not (out / "fig_open_field_tracks.png").exists()
    with pytest.raises(DesignError, match="given twice"):
        analyze("behavior", [lost, tmp_path / "." / "m1_preDLC.csv"], tmp_path / "d.yaml",
                tmp_path / "o2")
    days = pd.concat([pd.DataFrame({"subject": "m1", "time_h": 24.0 * d, "x_cm": x,
                                    "y_cm": y}) for d in range(40)])
    from matplotlib.image import imread

    png = track_figure({"a": days}, tmp_path / "t.png")
    assert imread(png).shape[0] <= 4 * 1.8 * 100 + 10  # four rows of 1.8 in at 100 dpi
