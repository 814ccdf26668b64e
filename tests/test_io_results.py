"""``ketasim.io.results``: atomic output folders and the readouts parquet format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketasim.io.results import (
    OutputError,
    atomic_dir,
    check_writable,
    read_readouts,
    write_json,
    write_readouts,
)

#: the smallest manifests ketasim writes (every one records its version): a run's, a sweep's
KETASIM_MANIFEST = '{"ketasim_version": "0.1.0", "seed": 1}'
SWEEP_MANIFEST = '{"format": "ketasim-sweep/1", "versions": {"ketasim": "0.1.0"}}'
READOUT_COLUMNS = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, keyed by relative path.

    Parameters
    ----------
    folder : pathlib.Path
        Folder to read.

    Returns
    -------
    dict of str to bytes
        Relative path -> content.
    """
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def everything(folder: Path) -> list[str]:
    """All paths (files and folders, hidden ones included) under ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        Folder to list.

    Returns
    -------
    list of str
        Sorted relative paths.
    """
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def readouts_table(rng: np.random.Generator, n: int = 12) -> pd.DataFrame:
    """A small readouts table in the contract's columns, with a NaN and a negative time.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the values.
    n : int
        Rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, assay, readout, time_h, value, unit``.
    """
    df = pd.DataFrame({
        "arm": np.where(np.arange(n) % 2 == 0, "saline", "ketamine"),
        "subject": np.arange(n, dtype=np.int64) // 2,
        "assay": "plasma_pk",
        "readout": "ketamine_plasma_ng_ml",
        "time_h": np.linspace(-1.0, 4.0, n),
        "value": rng.lognormal(3.0, 0.5, n),
        "unit": "ng/mL",
    })
    df.loc[3, "value"] = np.nan
    return df


class Boom(Exception):
    """Raised inside ``atomic_dir`` by the tests."""


# ------------------------------------------------------------------ atomic_dir
def test_atomic_dir_success_moves_the_folder_into_place(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path and tmp != out
        assert not out.exists(), "nothing may appear at --out before success"
        (tmp / "a.txt").write_text("a")
    assert snapshot(out) == {"a.txt": b"a"}
    assert everything(tmp_path) == ["out", "out/a.txt"]


def test_atomic_dir_leaves_nothing_on_exception(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Boom), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("x")
        (tmp / "sub").mkdir()
        raise Boom()
    assert everything(tmp_path) == []


def test_atomic_dir_keeps_existing_folder_on_exception(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "manifest.json").write_text(KETASIM_MANIFEST)  # an earlier output, so replaceable
    (out / "mine.txt").write_text("keep")
    (out / "sub" / "b.bin").write_bytes(b"\x00\x01")
    before = snapshot(out)
    with pytest.raises(Boom), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "mine.txt").write_text("new")
        raise Boom()
    assert snapshot(out) == before
    assert everything(tmp_path) == ["out", "out/manifest.json", "out/mine.txt", "out/sub",
                                    "out/sub/b.bin"]


def test_atomic_dir_keeps_existing_folder_on_keyboard_interrupt(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(KETASIM_MANIFEST)
    with pytest.raises(KeyboardInterrupt), atomic_dir(out, overwrite=True):
        raise KeyboardInterrupt
    assert everything(tmp_path) == ["out", "out/manifest.json"]


def test_atomic_dir_overwrite_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(KETASIM_MANIFEST)  # an earlier output
    (out / "old.txt").write_text("old")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert snapshot(out) == {"new.txt": b"new"}
    assert everything(tmp_path) == ["out", "out/new.txt"], "no temporary or backup left"


def test_atomic_dir_refuses_non_empty_folder_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    entered = False
    with pytest.raises(OutputError, match="not empty"), atomic_dir(out):
        entered = True
    assert not entered
    assert everything(tmp_path) == ["out", "out/mine.txt"]


def test_atomic_dir_accepts_an_existing_empty_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert everything(tmp_path) == ["out", "out/a.txt"]


def test_atomic_dir_refuses_a_file(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not a folder"), atomic_dir(f, overwrite=overwrite):
            pass
    assert f.read_text() == "x" and everything(tmp_path) == ["out"]


def test_atomic_dir_under_a_file_is_an_output_error(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(OutputError, match="--out"), atomic_dir(f / "out"):
        pass
    assert everything(tmp_path) == ["afile"]


def test_atomic_dir_creates_missing_parents_on_success(tmp_path):
    out = tmp_path / "p" / "q" / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert snapshot(out) == {"a.txt": b"a"}


def test_atomic_dir_leaves_no_parents_on_exception(tmp_path):
    with pytest.raises(Boom), atomic_dir(tmp_path / "p" / "q" / "out"):
        raise Boom()
    assert everything(tmp_path) == []


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new", overwrite=False)
    check_writable(tmp_path / "a" / "b" / "new", overwrite=False)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(OutputError, match="--force"):
        check_writable(full, overwrite=False)
    # --force replaces only an earlier ketasim output (a run's manifest, a PEtab problem)
    with pytest.raises(OutputError, match="not an earlier ketasim output"):
        check_writable(full, overwrite=True)
    # a file of the marker's name is not enough: its content must be ketasim's
    for text in ("", "{}", "[1]", '{"name": "web-app", "version": "1.0"}',
                 '{"versions": {"ketasim": "1"}}', "\xff\xfe not JSON"):
        (full / "manifest.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(OutputError, match="not an earlier ketasim output") as e:
            check_writable(full, overwrite=True)
        assert "manifest.json" in str(e.value) and str(full) in str(e.value)
    (full / "manifest.json").unlink()
    (full / "problem.yaml").write_text("")
    with pytest.raises(OutputError, match="not an earlier ketasim output"):
        check_writable(full, overwrite=True)
    (full / "problem.yaml").write_text("format_version: 1\nproblems: []\n")
    with pytest.raises(OutputError, match="not an earlier ketasim output"):
        check_writable(full, overwrite=True)  # a PEtab problem, but not ketasim's export
    (full / "README.md").write_text("# PEtab export: sc\n")
    check_writable(full, overwrite=True)
    (full / "problem.yaml").unlink()
    (full / "README.md").unlink()
    for text in (KETASIM_MANIFEST, SWEEP_MANIFEST):
        (full / "manifest.json").write_text(text)
        check_writable(full, overwrite=True)
    assert issubclass(OutputError, OSError)
    assert everything(tmp_path) == ["full", "full/manifest.json", "full/x"], \
        "check_writable must not create anything"


# ------------------------------------------------------------------ readouts parquet
def test_write_read_readouts_round_trip(tmp_path, rng):
    df = readouts_table(rng)
    path = tmp_path / "readouts.parquet"
    write_readouts(df, path)
    back = read_readouts(path)
    assert list(back.columns) == READOUT_COLUMNS
    assert back["subject"].dtype == np.int64
    assert back["time_h"].dtype == np.float64 and back["value"].dtype == np.float64
    pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)
    assert np.isnan(back.loc[3, "value"])


def test_write_readouts_round_trip_of_an_empty_table(tmp_path):
    empty = pd.DataFrame({c: [] for c in READOUT_COLUMNS})
    write_readouts(empty, tmp_path / "r.parquet")
    back = read_readouts(tmp_path / "r.parquet")
    assert list(back.columns) == READOUT_COLUMNS and len(back) == 0


def test_equal_tables_give_equal_bytes(tmp_path, rng):
    df = readouts_table(rng)
    shuffled_index = df.set_axis(np.arange(len(df))[::-1] + 100)
    write_readouts(df, tmp_path / "a.parquet")
    write_readouts(df.copy(), tmp_path / "b.parquet")
    write_readouts(shuffled_index, tmp_path / "c.parquet")
    a = (tmp_path / "a.parquet").read_bytes()
    assert a == (tmp_path / "b.parquet").read_bytes()
    assert a == (tmp_path / "c.parquet").read_bytes(), "the pandas index must not be stored"
    changed = df.copy()
    changed.loc[0, "value"] += 1e-9
    write_readouts(changed, tmp_path / "d.parquet")
    assert a != (tmp_path / "d.parquet").read_bytes()


def test_readouts_written_a_row_group_at_a_time_are_one_write_tables_bytes(
        tmp_path, rng, monkeypatch):
    """The readouts go to Parquet one row group at a time (no whole second copy in
    Arrow); the file is byte for byte the one write_table makes of the whole table, with
    the row groups where they were, columns reordered to the contract."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ketasim.io import results

    df = pd.concat([readouts_table(rng)] * 7, ignore_index=True)
    df["region"] = "mPFC"
    df = df[["region"] + READOUT_COLUMNS[::-1]]  # any column order in the frame
    monkeypatch.setattr(results, "ROW_GROUP_ROWS", 10)
    write_readouts(df, tmp_path / "groups.parquet")
    file = pq.ParquetFile(tmp_path / "groups.parquet")
    assert file.metadata.num_row_groups == -(-len(df) // 10) > 2
    table = pa.Table.from_pandas(df[READOUT_COLUMNS + ["region"]], preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None).cast(file.schema_arrow),
                   tmp_path / "whole.parquet", compression="zstd", row_group_size=10)
    assert (tmp_path / "groups.parquet").read_bytes() == (
        tmp_path / "whole.parquet").read_bytes()
    pd.testing.assert_frame_equal(read_readouts(tmp_path / "groups.parquet"),
                                  df[READOUT_COLUMNS + ["region"]], check_dtype=False)


def test_optional_contract_columns_survive_the_round_trip(tmp_path, rng):
    df = readouts_table(rng)
    df["region"] = "mPFC"
    df["cell"] = np.arange(len(df), dtype=np.int64)
    write_readouts(df, tmp_path / "r.parquet")
    back = read_readouts(tmp_path / "r.parquet")
    assert {"region", "cell"} <= set(back.columns)
    pd.testing.assert_frame_equal(back[df.columns], df, check_dtype=False)


def test_write_json(tmp_path):
    path = tmp_path / "m.json"
    write_json({"b": 1, "a": {"p": Path("/x")}, "c": [1.5]}, path)
    text = path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"a": {"p": "/x"}, "b": 1, "c": [1.5]}
    assert text.index('"a"') < text.index('"b"') < text.index('"c"'), "keys are sorted"
