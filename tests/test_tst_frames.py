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
