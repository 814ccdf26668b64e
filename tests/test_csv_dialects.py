"""Lab files saved by a spreadsheet in a European locale (``;`` between cells, decimal
commas) read as the same files saved with ``,`` and decimal points; a comma-separated
file is never reinterpreted."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from ketasim.analysis._tables import csv_dialect
from ketasim.analysis.behavior import read_tst_table
from ketasim.analysis.calcium import read_dff
from ketasim.analysis.tracking import read_tracking_table


def european(df: pd.DataFrame) -> str:
    """``df`` as a spreadsheet saves it in a German or French locale."""
    return df.to_csv(index=False, sep=";", decimal=",")


@pytest.fixture
def tracking() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for subject in ("m1", "m2"):
        for t in (0.0, 24.0, 48.5):
            for k in range(6):
                rows.append({"arm": "ketamine", "subject": subject, "branch": "b1",
                             "spine_id": f"s{k}", "time_h": t,
                             "position_um": round(float(rng.uniform(0, 40)), 3),
                             "present": bool(rng.random() < 0.8),
                             "branch_length_um": 40.25, "size": float(rng.uniform(0.01, 0.2))})
    return pd.DataFrame(rows)


def test_a_tracking_table_saved_with_semicolons_and_decimal_commas(tmp_path, tracking):
    (tmp_path / "us.csv").write_text(tracking.to_csv(index=False))
    (tmp_path / "eu.csv").write_text(european(tracking))
    assert ",5" in (tmp_path / "eu.csv").read_text()  # 48,5 and 40,25
    pd.testing.assert_frame_equal(read_tracking_table(tmp_path / "eu.csv"),
                                  read_tracking_table(tmp_path / "us.csv"))
    with gzip.open(tmp_path / "eu.csv.gz", "wt") as f:
        f.write(european(tracking))
    pd.testing.assert_frame_equal(read_tracking_table(tmp_path / "eu.csv.gz"),
                                  read_tracking_table(tmp_path / "us.csv"))


def test_a_tst_bout_table_and_a_dff_table(tmp_path):
    bouts = pd.DataFrame({"subject": ["m1"] * 3, "start_s": [0.0, 12.5, 40.25],
                          "end_s": [12.5, 40.25, 360.0],
                          "state": ["struggle", "immobile", "struggle"]})
    (tmp_path / "tst_us.csv").write_text(bouts.to_csv(index=False))
    (tmp_path / "tst_eu.csv").write_text(european(bouts))
    pd.testing.assert_frame_equal(read_tst_table(tmp_path / "tst_eu.csv"),
                                  read_tst_table(tmp_path / "tst_us.csv"))
    rng = np.random.default_rng(4)
    wide = pd.DataFrame(rng.normal(0, 0.1, (50, 3)), columns=["c1", "c2", "c3"])
    wide.insert(0, "time_s", np.arange(50) / 30.0)
    (tmp_path / "dff_us.csv").write_text(wide.to_csv(index=False))
    (tmp_path / "dff_eu.csv").write_text(european(wide))
    a, b = read_dff(tmp_path / "dff_eu.csv"), read_dff(tmp_path / "dff_us.csv")
    np.testing.assert_array_equal(a.dff, b.dff)
    assert a.cell_ids == b.cell_ids and a.frame_rate_hz == pytest.approx(b.frame_rate_hz)
    # a tab-separated export with decimal commas, and one with decimal points
    (tmp_path / "dff_tab.csv").write_text(wide.to_csv(index=False, sep="\t", decimal=","))
    np.testing.assert_array_equal(read_dff(tmp_path / "dff_tab.csv").dff, b.dff)
    (tmp_path / "dff_tab2.csv").write_text(wide.to_csv(index=False, sep="\t"))
    np.testing.assert_array_equal(read_dff(tmp_path / "dff_tab2.csv").dff, b.dff)


@pytest.mark.parametrize("text, dialect", [
    ("a,b\n1,2\n", (",", ".")),
    ("a;b\n1;2\n", (";", ",")),
    ("a;b,c\n1;2,5\n", (",", ".")),  # a comma in the header: comma-separated, as written
    ("a\tb\n1\t2.5\n", ("\t", ".")),
    ("a\tb\n1\t2,5\n", ("\t", ",")),
    ("\ufeffa;b\n1;2\n", (";", ",")),  # Excel's byte-order mark
    ("single\n1.5\n", (",", ".")),
    ("a;b\n1.5;2\n", (";", ".")),  # written with sep=";" by a program keeping points
    ("a;b\n1.000;2,5\n", (";", ",")),  # points group thousands beside decimal commas
    ('"subject";"sucrose, g"\n"m1";"8,5"\n', (";", ",")),  # a comma inside quotes
    ("a\tb\n" + "1\t2\n" * 20 + "1\t2,5\n", ("\t", ",")),  # decimal commas on line 22
])
def test_the_dialect_is_told_from_the_first_lines(tmp_path, text, dialect):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    assert csv_dialect(path) == dialect


def test_a_bad_cell_in_a_european_file_is_still_named(tmp_path, tracking):
    bad = tracking.astype({"position_um": object})
    bad.loc[4, "position_um"] = "12,x"
    (tmp_path / "eu.csv").write_text(european(bad))
    with pytest.raises(ValueError, match=r"eu.csv.*position_um.*row 5 \(line 6\)"):
        read_tracking_table(tmp_path / "eu.csv")


def test_thousands_grouped_by_points_in_a_decimal_comma_file(tmp_path):
    """A German sheet writes one thousand as 1.000 and 1234,5 as 1.234,5."""
    (tmp_path / "t.csv").write_text("time_s;c1\n1.000;0,01\n1.001;0,02\n1.002;0,03\n")
    rec = read_dff(tmp_path / "t.csv")
    np.testing.assert_array_equal(rec.time_s, [1000.0, 1001.0, 1002.0])
    assert rec.frame_rate_hz == pytest.approx(1.0)
    (tmp_path / "s.csv").write_text('"subject";"sucrose, g";"water_g"\n'
                                    '"m1";"1.234,5";"2"\n')
    from ketasim.analysis._tables import read_frame

    df, _ = read_frame(tmp_path / "s.csv", "csv", ValueError)
    assert list(df.columns) == ["subject", "sucrose, g", "water_g"]
    assert df.loc[0, "sucrose, g"] == "1234.5"


def test_points_are_decimals_unless_beside_decimal_commas(tmp_path):
    """A ';' file written with points (1.500 is one and a half, not 1500), identifier
    columns never reinterpreted, and a tab header with a comma inside a name."""
    from ketasim.analysis._tables import read_frame
    from ketasim.analysis.behavior import sucrose_preference

    (tmp_path / "pt.csv").write_text("subject;sucrose_g;water_g\nm1;1.500;2.250\n")
    r = sucrose_preference(tmp_path / "pt.csv")
    assert (r.loc[0, "sucrose"], r.loc[0, "water"]) == (1.5, 2.25)
    (tmp_path / "id.csv").write_text("subject;sucrose_g;water_g\n1.001;1,5;2\n")
    r = sucrose_preference(tmp_path / "id.csv")
    assert r.loc[0, "subject"] == "1.001" and r.loc[0, "sucrose"] == 1.5
    (tmp_path / "tab.csv").write_text("subject\tsucrose, g\twater_g\nm1\t1\t2\n")
    df, _ = read_frame(tmp_path / "tab.csv", "csv", ValueError)
    assert list(df.columns) == ["subject", "sucrose, g", "water_g"]


@pytest.mark.parametrize("header", [
    "subject,branch,spine_id,time_h,position_um,present,branch_length_um,present",
    "subject;branch;spine_id;time_h;position_um;present;branch_length_um;present"])
def test_a_column_named_twice_is_one_error(tmp_path, header):
    """pandas renames a repeated column 'present.1', and the reader then used the first
    silently; the header is checked first, whatever the separator."""
    from ketasim.analysis.tracking import TrackingTableError

    sep = ";" if ";" in header else ","
    row = sep.join(["m1", "b1", "s1", "0", "1" + ("," if sep == ";" else ".") + "5",
                    "true", "50", "false"])
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + row + "\n")
    with pytest.raises(TrackingTableError, match="column 'present' more than once"):
        read_tracking_table(path)
