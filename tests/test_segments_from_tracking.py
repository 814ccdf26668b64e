"""Per-segment tables from a spine tracking table (``segments.from_tracking``) and the
validation's segment statistics, checked by hand on small tables: simulated imaging goes
through the same segment statistics as the Phoumthipphavong et al. 2016 deposit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis.segments import (
    SegmentDataError,
    density_change_summary,
    from_tracking,
    read_segments,
    read_turnover,
    turnover_change_summary,
)
from ketasim.analysis.tracking import read_tracking_table
from ketasim.validation.statistic import StatisticError, evaluate

DAYS = (-3.0, -1.0, 1.0)


def _branch(arm, subject, branch, length, present_by_day):
    """Rows of one branch: ``present_by_day`` maps a day to the spine ids seen then."""
    rows = []
    for day, ids in present_by_day.items():
        for i in ids:
            rows.append({"arm": arm, "subject": subject, "branch": branch,
                         "spine_id": f"{branch}-{i}", "time_h": 24.0 * day,
                         "position_um": float(i), "present": True,
                         "branch_length_um": length})
    return rows


def _table() -> pd.DataFrame:
    rows = []
    # saline mouse 1: two branches. b1: 4 -> 4 (1 lost, 1 new) -> 5 (1 new)
    rows += _branch("saline", "1", "b1", 10.0, {-3: [1, 2, 3, 4], -1: [1, 2, 3, 5],
                                                 1: [1, 2, 3, 5, 6]})
    # b2: 2 -> 2 (no change) -> 1 (1 lost)
    rows += _branch("saline", "1", "b2", 20.0, {-3: [1, 2], -1: [1, 2], 1: [1]})
    # saline_long mouse 1 (another mouse: arm/subject ids): one branch, 5 -> 4 -> 4
    rows += _branch("saline_long", "1", "c1", 10.0, {-3: [1, 2, 3, 4, 5], -1: [1, 2, 3, 4],
                                                      1: [1, 2, 3, 7]})
    return read_tracking_table(pd.DataFrame(rows))


def test_segment_tables_count_each_branch():
    seg, turn = from_tracking(_table())
    # valid per-segment tables: the strict readers accept them unchanged
    read_segments(seg.drop(columns=["long_term"]))
    read_turnover(turn.drop(columns=["long_term"]), segments=seg)
    b1 = seg[(seg["mouse"] == "saline/1") & (seg["segment"] == "b1")]
    assert b1["day"].tolist() == list(DAYS)
    assert b1["session"].tolist() == [1, 2, 3]
    assert b1["spine_count"].tolist() == [4, 4, 5]
    np.testing.assert_allclose(b1["density_per_um"], [0.4, 0.4, 0.5])
    t1 = turn[(turn["mouse"] == "saline/1") & (turn["segment"] == "b1")]
    assert t1["interval"].tolist() == [1, 2]
    np.testing.assert_allclose(t1["formation_pct"], [25.0, 25.0])  # 1 of 4, 1 of 4
    np.testing.assert_allclose(t1["elimination_pct"], [25.0, 0.0])
    assert set(seg["group"]) == {"saline", "saline_long"}
    assert seg["included"].all() and not seg["long_term"].any()


def test_pooled_group_and_the_authors_normalisation():
    seg, turn = from_tracking(_table(), group="set")
    assert set(seg["group"]) == {"set"} and seg["mouse"].nunique() == 2
    # density change: each segment against its mouse's mean day -3 density
    d = density_change_summary(seg).set_index("day")["mean"]
    base1 = (0.4 + 0.1) / 2  # saline/1: b1 0.4, b2 0.1 spines/um
    by_hand = np.mean([100 * (0.5 / base1 - 1), 100 * (0.05 / base1 - 1),
                       100 * (0.4 / 0.5 - 1)])
    assert d[1.0] == pytest.approx(by_hand, rel=1e-12)
    # formation change: segment's rate over -1 -> 1 minus its mouse's mean over -3 -> -1
    t = turnover_change_summary(turn)
    f = t[(t["measure"] == "formation") & (t["day_end"] == 1.0)]["mean"].iloc[0]
    m1 = (25.0 + 0.0) / 2  # saline/1 interval 1: b1 25 %, b2 0 %
    by_hand = np.mean([25.0 - m1, 0.0 - m1, 25.0 - 0.0])  # c1: 1 of 4 new; interval 1 0 %
    assert f == pytest.approx(by_hand, rel=1e-12)


def test_a_branch_missing_a_session_keeps_the_groups_schedule():
    # b2 not imaged on day -1: its sessions and intervals keep the group's numbering, the
    # day -1 row and both intervals around it are empty (no -3 -> 1 rate filed as
    # interval 1, the group's day -3 -> -1 baseline)
    t = _table()
    t = read_tracking_table(t.loc[~((t["branch"] == "b2") & (t["time_h"] == -24.0))])
    seg, turn = from_tracking(t)
    read_segments(seg.drop(columns=["long_term"]))
    read_turnover(turn.drop(columns=["long_term"]), segments=seg)
    b2 = turn[turn["segment"] == "b2"]
    assert b2[["day_start", "day_end"]].to_numpy().tolist() == [[-3.0, -1.0], [-1.0, 1.0]]
    assert b2["interval"].tolist() == [1, 2]
    assert b2[["formation_pct", "elimination_pct"]].isna().all().all()
    s2 = seg[seg["segment"] == "b2"]
    assert s2["session"].tolist() == [1, 2, 3] and s2["day"].tolist() == list(DAYS)
    np.testing.assert_array_equal(s2["spine_count"], [2.0, np.nan, 1.0])
    assert np.isnan(s2["length_um"].iat[1]) and np.isnan(s2["density_per_um"].iat[1])


def test_statistics_pool_arms_and_check_their_arguments():
    tab = _table()
    tracking = {arm: tab.loc[tab["arm"] == arm] for arm in ("saline", "saline_long")}
    seg, turn = from_tracking(tab, group="x")
    want = density_change_summary(seg).set_index("day")["mean"][1.0]
    got = evaluate("segment_density_change('saline, saline_long', '1d')", pd.DataFrame(),
                   tracking)
    assert got == pytest.approx(want, rel=1e-12)
    tt = turnover_change_summary(turn)
    want = tt[(tt["measure"] == "elimination") & (tt["day_end"] == 1.0)]["mean"].iloc[0]
    got = evaluate("segment_turnover_change('saline,saline_long', 'elimination', '24h')",
                   pd.DataFrame(), tracking)
    assert got == pytest.approx(want, rel=1e-12)
    raw = evaluate("segment_turnover('saline', 'formation', '-1d')", pd.DataFrame(), tracking)
    assert raw == pytest.approx((25.0 + 0.0) / 2)
    with pytest.raises(StatisticError, match="measure must be"):
        evaluate("segment_turnover('saline', 'births', '-1d')", pd.DataFrame(), tracking)
    with pytest.raises(StatisticError, match="no segment value at '5d'"):
        evaluate("segment_density_change('saline', '5d')", pd.DataFrame(), tracking)
    with pytest.raises(StatisticError, match="no spine tracking table for arm 'ketamine'"):
        evaluate("segment_density_change('ketamine', '1d')", pd.DataFrame(), tracking)


def test_empty_or_single_session_tables_are_errors():
    t = _table()
    with pytest.raises(SegmentDataError, match="no rows"):
        from_tracking(t.iloc[:0])
    with pytest.raises(SegmentDataError, match="two sessions"):
        from_tracking(read_tracking_table(t.loc[t["time_h"] == -72.0]))
