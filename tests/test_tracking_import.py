"""Reading and validating the spine tracking table (ketasim.analysis.tracking)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketasim.analysis.tracking import (
    REQUIRED_COLUMNS,
    SPINE_ORIGINS,
    TrackingTableError,
    presence_matrices,
    presence_matrix,
    read_tracking_table,
    session_pair,
    sessions,
)


def good_table() -> pd.DataFrame:
    """Two subjects in two arms, two branches each, spines over three sessions."""
    rows = []
    for arm, subject in (("saline", 1), ("ketamine", 2)):
        for branch, length in (("b1", 50.0), ("b2", 80.0)):
            for k, pos in enumerate((5.0, 12.5, 30.0)):
                for t in (-24.0, 0.0, 24.0):
                    present = not (k == 2 and t == 24.0)
                    rows.append({"arm": arm, "subject": subject, "branch": branch,
                                 "spine_id": k, "time_h": t, "position_um": pos,
                                 "present": present, "branch_length_um": length,
                                 "size": 0.05 + 0.01 * k, "class": "thin",
                                 "origin": "preexisting"})
    return pd.DataFrame(rows)


def test_csv_and_parquet_round_trip(tmp_path):
    df = good_table()
    df.to_csv(tmp_path / "spines.csv", index=False)
    df.to_parquet(tmp_path / "spines.parquet", index=False)
    from_csv = read_tracking_table(tmp_path / "spines.csv")
    from_parquet = read_tracking_table(str(tmp_path / "spines.parquet"))
    from_df = read_tracking_table(df)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    pd.testing.assert_frame_equal(from_csv, from_df)
    assert len(from_csv) == len(df)
    # integer ids become strings; dtypes are normalised
    assert set(from_csv["subject"]) == {"1", "2"}
    assert set(from_csv["spine_id"]) == {"0", "1", "2"}
    assert from_csv["present"].dtype == bool
    for col in ("time_h", "position_um", "branch_length_um", "size"):
        assert from_csv[col].dtype == np.float64
    assert list(from_csv.columns[:8]) == ["arm", "subject", "branch", "spine_id", "time_h",
                                          "position_um", "present", "branch_length_um"]
    np.testing.assert_array_equal(sessions(from_csv), [-24.0, 0.0, 24.0])
    # present=False rows are kept, and mean absent
    assert (~from_csv["present"]).sum() == 4


def test_optional_columns_default_and_extra_columns_kept():
    df = good_table().drop(columns=["arm", "size", "class", "origin"]).assign(note="x")
    t = read_tracking_table(df)
    assert set(t["arm"]) == {"all"}
    assert "size" not in t.columns and "class" not in t.columns
    assert t["note"].eq("x").all()


def test_labels_normalised_and_optional_labels_may_be_missing():
    df = good_table()
    df.loc[0, "class"] = " Mushroom "
    df.loc[1, "class"] = np.nan
    df.loc[2, "origin"] = None
    t = read_tracking_table(df)
    assert "mushroom" in set(t["class"].dropna())
    assert t["class"].isna().sum() == 1 and t["origin"].isna().sum() == 1


def test_presence_helpers():
    t = read_tracking_table(good_table())
    mats = list(presence_matrices(t))
    assert len(mats) == 4
    m = presence_matrix(t, subject="1", branch="b1")
    np.testing.assert_array_equal(m.times_h, [-24.0, 0.0, 24.0])
    np.testing.assert_array_equal(m.spine_ids, ["0", "1", "2"])
    np.testing.assert_array_equal(m.present, [[1, 1, 1], [1, 1, 1], [1, 1, 0]])
    assert np.isnan(m.position_um[2, 2]) and m.position_um[1, 0] == 12.5
    pair = session_pair(t, 0.0, 24.0)
    assert len(pair) == 12
    assert (pair["present_t0"] & ~pair["present_t1"]).sum() == 4
    with pytest.raises(KeyError):
        presence_matrix(t, subject="9", branch="b1")


def test_simulator_table_is_a_valid_tracking_table():
    from ketasim.spines.engine import ORIGINS
    from ketasim.spines.simulate import SpineRecording

    assert SPINE_ORIGINS == ORIGINS
    shape = (1, 2, 2, 3)  # subjects, recordings, branches, slots
    alive = np.zeros(shape, np.uint8)
    alive[0, :, 0, :2] = 1
    alive[0, 1, 1, 0] = 1
    rec = SpineRecording(
        times_h=np.array([0.0, 24.0]), alive=alive, pos=np.full(shape, 3.0),
        logsize=np.full(shape, np.log(0.05)), origin=np.zeros(shape, np.int8),
        synapse=np.ones(shape, np.uint8), stubby=np.zeros(shape, np.uint8),
        sid=np.broadcast_to(np.arange(3), shape).copy(), branch_length_um=20.0,
        counts=np.zeros((1, 4), np.int64))
    t = read_tracking_table(rec.table(arm="ketamine"))
    assert len(t) == 5 and set(t["arm"]) == {"ketamine"}


# ----------------------------------------------------------------------- bad tables


def _csv(tmp_path, df: pd.DataFrame, name: str = "scored.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def _expect(path, *parts: str):
    with pytest.raises(TrackingTableError) as info:
        read_tracking_table(path)
    msg = str(info.value)
    assert "\n" not in msg
    for part in (path.name, *parts):
        assert part in msg, (part, msg)
    return msg


def test_missing_columns_are_listed(tmp_path):
    path = _csv(tmp_path, good_table().drop(columns=["present", "time_h"]))
    _expect(path, "missing", "'present'", "'time_h'")


def test_bad_number_names_column_and_row(tmp_path):
    df = good_table().astype({"position_um": object})
    df.loc[2, "position_um"] = "abc"
    msg = _expect(_csv(tmp_path, df), "column 'position_um'", "row 3", "'abc'")
    assert "line 4" in msg


def test_infinite_number(tmp_path):
    df = good_table()
    df.loc[3, "time_h"] = np.inf
    _expect(_csv(tmp_path, df), "column 'time_h'", "row 4", "finite number", "inf")


def test_dates_are_not_hours():
    df = good_table()
    df["time_h"] = pd.Timestamp("2024-05-01") + pd.to_timedelta(df["time_h"], unit="h")
    with pytest.raises(TrackingTableError, match="column 'time_h', row 1: expected a finite"):
        read_tracking_table(df)


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_missing_value_in_required_column(tmp_path, column):
    df = good_table().astype({column: object})
    df.loc[4, column] = None
    _expect(_csv(tmp_path, df), f"column '{column}'", "row 5", "missing value")


def test_negative_position(tmp_path):
    df = good_table()
    df.loc[6, "position_um"] = -0.5
    _expect(_csv(tmp_path, df), "column 'position_um'", "row 7", ">= 0")


def test_position_beyond_branch_length(tmp_path):
    df = good_table()
    df.loc[7, "position_um"] = 50.5  # branch b1 is 50 um long
    _expect(_csv(tmp_path, df), "column 'position_um'", "row 8", "branch_length_um")


def test_nonpositive_branch_length_and_size(tmp_path):
    df = good_table()
    df["branch_length_um"] = df["branch_length_um"].where(df["branch"] != "b1", 0.0)
    _expect(_csv(tmp_path, df), "column 'branch_length_um'", "row 1", "> 0")
    df = good_table()
    df.loc[3, "size"] = 0.0
    _expect(_csv(tmp_path, df, "size.csv"), "column 'size'", "row 4", "> 0")


def test_duplicate_spine_session(tmp_path):
    df = good_table()
    df = pd.concat([df, df.iloc[[1]]], ignore_index=True)
    _expect(_csv(tmp_path, df), "column 'spine_id'", f"row {len(df)}", "duplicate",
            "already in row 2")


def test_same_spine_id_in_two_arms_is_not_a_duplicate():
    df = good_table()
    df["subject"] = 1  # same subject id in both arms: different animals
    assert len(read_tracking_table(df)) == len(df)


def test_branch_length_not_constant(tmp_path):
    df = good_table()
    df.loc[2, "branch_length_um"] = 60.0
    _expect(_csv(tmp_path, df), "column 'branch_length_um'", "row 3", "same length")


@pytest.mark.parametrize(("column", "value"), [("class", "spiky"), ("origin", "alien")])
def test_unknown_labels(tmp_path, column, value):
    df = good_table()
    df.loc[1, column] = value
    _expect(_csv(tmp_path, df), f"column '{column}'", "row 2", repr(value))


def test_bad_boolean(tmp_path):
    df = good_table().astype({"present": object})
    df.loc[9, "present"] = "maybe"
    _expect(_csv(tmp_path, df), "column 'present'", "row 10", "boolean")


def test_bad_parquet_cell_names_row(tmp_path):
    df = good_table().astype({"time_h": object})
    df["time_h"] = df["time_h"].astype(str)
    df.loc[5, "time_h"] = "yesterday"
    path = tmp_path / "scored.parquet"
    df.to_parquet(path, index=False)
    msg = _expect(path, "column 'time_h'", "row 6", "'yesterday'")
    assert "line" not in msg


def test_dataframe_errors_name_the_source():
    df = good_table()
    df.loc[0, "class"] = "huge"
    with pytest.raises(TrackingTableError, match=r"<DataFrame>.*column 'class'.*row 1"):
        read_tracking_table(df)
    twice = pd.concat([good_table(), good_table()[["present"]]], axis=1)
    with pytest.raises(TrackingTableError, match="repeated column name.*'present'"):
        read_tracking_table(twice)


def test_blank_lines_keep_csv_row_numbers(tmp_path):
    path = _csv(tmp_path, good_table())
    lines = path.read_text().splitlines()
    lines.insert(2, "")
    lines[5] = lines[5].replace("thin", "spiky")  # data row 5 counting the blank line
    path.write_text("\n".join(lines) + "\n")
    _expect(path, "column 'class'", "row 5", "line 6")


def test_unreadable_files(tmp_path):
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"not a parquet file at all")
    _expect(garbage, "cannot read")
    _expect(tmp_path / "absent.csv", "not found")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _expect(empty, "empty")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("subject,branch\n1,2\n1,2,3,4\n")
    _expect(ragged, "cannot parse")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("subject,branch\n\xe9t\xe9,1\n".encode("latin-1"))
    _expect(latin, "UTF-8")
    other = tmp_path / "scores.xlsx"
    other.write_bytes(b"PK")
    _expect(other, "unknown file suffix")
    with pytest.raises(TrackingTableError, match="expected a path"):
        read_tracking_table(42)


# ------------------------------------------------------------- random bad cells

_CELL_VALUES = st.one_of(
    st.text(max_size=8), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2), st.just(np.int64(3)), st.just(np.float32(2.5)),
    st.sampled_from(["", " ", "nan", "inf", "-1", "1e400", "True", "thin", "restored"]),
)
_BASE = good_table()
_CELLS = st.tuples(st.integers(0, len(_BASE) - 1), st.sampled_from(list(_BASE.columns)),
                   _CELL_VALUES)


def _perturb(cells) -> pd.DataFrame:
    df = _BASE.astype(object)
    for row, col, value in cells:
        df.at[row, col] = value
    return df


@settings(max_examples=120, deadline=None)
@given(st.lists(_CELLS, min_size=1, max_size=4))
def test_random_cells_raise_only_tracking_errors(cells):
    try:
        t = read_tracking_table(_perturb(cells))
    except TrackingTableError as err:
        assert "\n" not in str(err) and "<DataFrame>" in str(err)
    else:
        assert t["present"].dtype == bool and t["position_um"].dtype == np.float64


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_CELLS, min_size=1, max_size=4))
def test_random_cells_in_csv_raise_only_tracking_errors(tmp_path, cells):
    path = tmp_path / "random.csv"
    _perturb(cells).to_csv(path, index=False)
    try:
        read_tracking_table(path)
    except TrackingTableError as err:
        assert "\n" not in str(err) and "random.csv" in str(err)
