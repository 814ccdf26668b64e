"""Tail suspension from per-frame scoring (time_s, immobile), as automated systems
export it: the same bouts and scores as the bout table it came from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ketasim.analysis.behavior import BehaviorDataError, score_tst, tst_bouts_from_frames
from ketasim.analyze.run import analyze

FPS = 25.0


def frames_of(bouts: pd.DataFrame) -> pd.DataFrame:
    """Per-frame immobility of a bout table that tiles 0-360 s on the frame grid."""
    rows = []
    for subject, b in bouts.groupby("subject", sort=False):
        t = np.arange(0, 360.0, 1 / FPS)
        imm = np.zeros(t.size, bool)
        for _, r in b[b.state == "immobile"].iterrows():
            imm[(t >= r.start_s - 1e-9) & (t < r.end_s - 1e-9)] = True
        rows.append(pd.DataFrame({"subject": subject, "time_s": t,
                                  "immobile": np.where(imm, "1", "0")}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture
def bouts() -> pd.DataFrame:
    return pd.DataFrame({
        "subject": ["m1"] * 4 + ["m2"] * 3,
        "start_s": [0.0, 40.0, 100.0, 200.0, 0.0, 12.0, 300.0],
        "end_s": [40.0, 100.0, 200.0, 360.0, 12.0, 300.0, 360.0],
        "state": ["struggle", "immobile", "struggle", "immobile", "immobile", "struggle",
                  "immobile"]})


def test_frames_give_the_bouts_and_the_scores(tmp_path, bouts):
    frames = frames_of(bouts)
    got = tst_bouts_from_frames(frames)
    pd.testing.assert_frame_equal(
        got[["subject", "start_s", "end_s", "state"]],
        bouts.sort_values(["subject", "start_s"], ignore_index=True), atol=1e-9)
    pd.testing.assert_frame_equal(score_tst(got), score_tst(bouts.assign(arm="all")))
    assert score_tst(got).set_index("subject")["immobility_s"].to_dict() == pytest.approx(
        {"m1": 220.0, "m2": 72.0})


def test_bad_frames_are_one_error(bouts):
    frames = frames_of(bouts)
    frames.loc[5, "immobile"] = "maybe"
    with pytest.raises(BehaviorDataError, match=r"column 'immobile', row 6.*maybe"):
        tst_bouts_from_frames(frames)
    back = frames_of(bouts)
    back.loc[3, "time_s"] = 0.0
    with pytest.raises(BehaviorDataError, match="expected time_s to increase within "
                                                "subject 'm1'"):
        tst_bouts_from_frames(back)


def test_analyze_behavior_on_per_frame_files(tmp_path, bouts):
    frames = frames_of(bouts)
    frames.to_csv(tmp_path / "frames.csv", index=False)
    bouts.to_csv(tmp_path / "bouts.csv", index=False)
    design = {"name": "tst", "groups": {"a": ["m1"], "b": ["m2"]},
              "files": [{"path": str(tmp_path / "frames.csv"), "time": "1d"},
                        {"path": str(tmp_path / "bouts.csv"), "time": "1d"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    a = analyze("behavior", [tmp_path / "frames.csv"], tmp_path / "d.yaml", tmp_path / "f")
    b = analyze("behavior", [tmp_path / "bouts.csv"], tmp_path / "d.yaml", tmp_path / "b")
    ra, rb = (pd.read_parquet(o / "readouts.parquet") for o in (a, b))
    pd.testing.assert_frame_equal(ra, rb, check_exact=False, atol=1e-9)
    assert set(ra["assay"]) == {"tail_suspension"}


def test_a_recording_past_the_test_and_errors_naming_the_file(tmp_path):
    """A 30 fps recording of 10,801 frames (to 360.0 s) or 29.97 fps is scored over the
    test's 6 min; German spreadsheet booleans read; a file's errors name the file."""
    for fps, frames in ((30.0, 10801), (29.97, 10790)):
        t = np.arange(frames) / fps
        got = score_tst(tst_bouts_from_frames(pd.DataFrame(
            {"subject": "m1", "time_s": t, "immobile": (t > 100) & (t < 200)})))
        assert got["immobility_s"].iloc[0] == pytest.approx(100.0, abs=0.1)
    t = np.arange(0, 400, 0.5)
    df = pd.DataFrame({"subject": "m1", "time_s": t,
                       "immobile": np.where(t > 380, "WAHR", "FALSCH")})
    df.to_csv(tmp_path / "late.csv", index=False, sep=";", decimal=",")
    design = {"name": "t", "groups": {"a": ["m1"]},
              "files": [{"path": str(tmp_path / "late.csv"), "time": "1d"}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    out = analyze("behavior", [tmp_path / "late.csv"], tmp_path / "d.yaml", tmp_path / "o")
    r = pd.read_parquet(out / "readouts.parquet")
    assert r.loc[r.readout == "tst_immobility_s", "value"].iloc[0] == 0.0  # after 360 s
    # bouts that break read_tst_table's rules are reported against the file
    bad = pd.DataFrame({"subject": "m1", "time_s": [400.0, 401.0], "immobile": [1, 0]})
    bad.to_csv(tmp_path / "after.csv", index=False)
    design["files"] = [{"path": str(tmp_path / "after.csv"), "time": "1d"}]
    (tmp_path / "d2.yaml").write_text(yaml.safe_dump(design))
    with pytest.raises(BehaviorDataError, match=r"^after.csv, column 'time_s', row 1 .*"
                                                "no frame falls within the test"):
        analyze("behavior", [tmp_path / "after.csv"], tmp_path / "d2.yaml", tmp_path / "x")


def test_frames_before_the_test_are_left_out():
    t = np.arange(-10.0, 370.0, 0.5)
    got = score_tst(tst_bouts_from_frames(pd.DataFrame(
        {"subject": "m1", "time_s": t, "immobile": (t < 5) | ((t >= 100) & (t < 200))})))
    assert got["immobility_s"].iloc[0] == pytest.approx(105.0)
