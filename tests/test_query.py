"""``ketasim query RUN_DIR SQL``: DuckDB over a run folder's Parquet and CSV files.

A synthetic run folder (readouts.parquet with the contract's columns, summary.csv,
stats.csv) is written here with pandas; one real tiny ``ketasim run`` checks the same on
the files the simulator writes. Results are compared with the same computation in
pandas; the command is read-only (statements that are not queries are refused and the
folder is left byte-for-byte unchanged; files outside the folder cannot be read), and
bad input gives one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import assert_one_error_line
from typer.testing import CliRunner

from ketasim.cli import app
from ketasim.io.query import QueryError, RunTables, find_views, query, write_result
from ketasim.io.results import write_readouts

WIDE = {"COLUMNS": "300"}
ARMS = ("saline", "ketamine", "esketamine")
READOUTS = (("tail_suspension", "tst_immobility_s", "s"),
            ("western_blot", "psd95_rel", "x baseline"))
TST_BY_ARM = ("SELECT arm, avg(value) AS mean_s, count(*) AS n FROM readouts "
              "WHERE readout = 'tst_immobility_s' GROUP BY arm ORDER BY arm")


def invoke(*args, env: dict | None = None):
    """Run the CLI in-process (``exit_code``, ``stdout``, ``stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args], env={**WIDE, **(env or {})})


one_error_line = assert_one_error_line  # the CLI tests' check of one error line


def readouts_frame(rng: np.random.Generator, n: int = 5) -> pd.DataFrame:
    """Readouts like a run's: every arm x subject x readout x time, plus a few NaNs."""
    rows = []
    for arm in ARMS:
        for subject in range(n):
            for assay, readout, unit in READOUTS:
                for t in (3.0, 48.0):
                    rows.append((arm, subject, assay, readout, t,
                                 float(rng.normal(120 if unit == "s" else 1.0, 10)), unit))
    df = pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                     "value", "unit"])
    df.loc[[3, 17], "value"] = np.nan  # a lost measurement, as an assay may report
    return df


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (hidden ones too): its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_dir(tmp_path, rng) -> Path:
    """A synthetic run folder: readouts.parquet, summary.csv, stats.csv, manifest.json."""
    out = tmp_path / "run"
    out.mkdir()
    r = readouts_frame(rng)
    write_readouts(r, out / "readouts.parquet")
    summary = (r.groupby(["arm", "assay", "readout", "time_h", "unit"])["value"]
               .agg(n="count", mean="mean", sem="sem").reset_index())
    summary.to_csv(out / "summary.csv", index=False)
    pd.DataFrame({"comparison": [0], "readout": ["tst_immobility_s"],
                  "assay": ["tail_suspension"], "time_h": [48.0], "test": ["welch_t"],
                  "groups": ["ketamine;saline"], "n": ["5;5"], "statistic": [-2.5],
                  "p": [0.03]}).to_csv(out / "stats.csv", index=False)
    (out / "manifest.json").write_text("{}\n")
    return out


def expected_tst(run: Path) -> pd.DataFrame:
    r = pd.read_parquet(run / "readouts.parquet")
    tst = r[r["readout"] == "tst_immobility_s"]
    return (tst.groupby("arm")["value"].agg(mean_s="mean", n="size").reset_index()
            .sort_values("arm", ignore_index=True))


# ------------------------------------------------------------------ answers
def test_query_api_equals_pandas(run_dir):
    got = query(run_dir, TST_BY_ARM)
    want = expected_tst(run_dir)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    table = query(run_dir, TST_BY_ARM, arrow=True)
    assert isinstance(table, pa.Table) and table.column_names == ["arm", "mean_s", "n"]


def test_csv_views_and_joins(run_dir):
    summary = pd.read_csv(run_dir / "summary.csv")
    got = query(run_dir, "SELECT * FROM summary")
    pd.testing.assert_frame_equal(got, summary, check_dtype=False)
    # the summary's means are the readouts' means (a join across the two files)
    joined = query(run_dir, """
        SELECT s.arm, s.readout, s.time_h, s.mean, avg(r.value) AS recomputed
        FROM summary s JOIN readouts r USING (arm, assay, readout, time_h)
        GROUP BY ALL""")
    assert len(joined) == len(summary)
    np.testing.assert_allclose(joined["mean"], joined["recomputed"], rtol=1e-12)
    assert query(run_dir, "SELECT p FROM stats")["p"].tolist() == [0.03]


def test_cli_prints_a_table(run_dir):
    res = invoke("query", run_dir, TST_BY_ARM)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    for _, row in expected_tst(run_dir).iterrows():
        line = next(ln for ln in res.stdout.splitlines() if f" {row['arm']} " in ln)
        assert f"{row['mean_s']:.6g}" in line and f" {row['n']} " in line
    assert res.stdout.rstrip().endswith("3 rows")
    assert "omitted" not in res.stdout


def test_cli_limit_says_how_many_rows_were_omitted(run_dir):
    total = len(pd.read_parquet(run_dir / "readouts.parquet"))
    res = invoke("query", run_dir, "SELECT * FROM readouts")
    assert res.exit_code == 0, res.stderr
    assert f"{total} rows; {total - 50} more rows omitted" in res.stdout
    res = invoke("query", run_dir, "SELECT * FROM readouts", "--limit", 7, "--format", "csv")
    assert len(pd.read_csv(io.StringIO(res.stdout))) == 7
    assert f"{total - 7} more rows omitted" in res.stderr  # stdout stays plain CSV
    res = invoke("query", run_dir, "SELECT * FROM readouts", "--limit", 0, "--format", "csv")
    assert len(pd.read_csv(io.StringIO(res.stdout))) == total and not res.stderr


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_csv_and_json_equal_pandas(run_dir, fmt):
    res = invoke("query", run_dir, TST_BY_ARM, "--format", fmt)
    assert res.exit_code == 0, res.stderr
    got = (pd.read_csv(io.StringIO(res.stdout)) if fmt == "csv"
           else pd.DataFrame(json.loads(res.stdout)))
    pd.testing.assert_frame_equal(got, expected_tst(run_dir), check_dtype=False)


def test_json_has_nulls_and_every_column(run_dir):
    res = invoke("query", run_dir, "SELECT value, 'nan'::DOUBLE AS nan, 1 AS a, 1 AS a, "
                 "sum(subject) AS s FROM readouts WHERE value IS NULL GROUP BY value",
                 "--format", "json")
    assert res.exit_code == 0, res.stderr
    r = pd.read_parquet(run_dir / "readouts.parquet")
    lost = int(r.loc[r["value"].isna(), "subject"].sum())
    assert json.loads(res.stdout) == [{"value": None, "nan": None, "a": 1, "a_2": 1,
                                       "s": lost}]


@pytest.mark.parametrize("name", ["all.parquet", "all.csv", "all.json"])
def test_output_writes_the_full_result(run_dir, tmp_path, name):
    target = tmp_path / "results" / name  # the folder is created
    before = snapshot(run_dir)
    res = invoke("query", run_dir, "SELECT * FROM readouts", "--output", target)
    assert res.exit_code == 0, res.stderr
    # the console may wrap a long temporary path: compare without line breaks
    assert f"wrote {target}" in res.stdout.replace("\n", "")
    want = pd.read_parquet(run_dir / "readouts.parquet")
    got = {"parquet": pd.read_parquet, "csv": pd.read_csv,
           "json": lambda p: pd.DataFrame(json.loads(p.read_text()))}[name.split(".")[1]](target)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)  # every row, not --limit's
    assert sorted(p.name for p in target.parent.iterdir()) == [name]  # no temporary file
    assert snapshot(run_dir) == before


def test_output_format_option_and_replacing_a_file(run_dir, tmp_path):
    target = tmp_path / "tst.txt"
    target.write_text("old\n")
    res = invoke("query", run_dir, TST_BY_ARM, "--output", target, "--format", "csv")
    assert res.exit_code == 2 and "--force" in res.stderr  # replaced only when asked
    assert target.read_text() == "old\n"
    res = invoke("query", run_dir, TST_BY_ARM, "--output", target, "--format", "csv",
                 "--force")
    assert res.exit_code == 0, res.stderr
    pd.testing.assert_frame_equal(pd.read_csv(target), expected_tst(run_dir),
                                  check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tst.txt"]


def test_failed_output_leaves_nothing_behind(tmp_path):
    schema = pa.schema([("x", pa.int64())])

    def failing():
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        raise QueryError("SQL: failed half way")

    target = tmp_path / "new" / "deeper" / "x.csv"
    for fmt in ("csv", "json", "parquet"):
        with pytest.raises(QueryError, match="half way"):
            write_result(schema, failing(), target, fmt)
    assert list(tmp_path.iterdir()) == []  # neither the file, a temporary, nor the folders
    target = tmp_path / "x.csv"
    target.write_text("old\n")
    with pytest.raises(QueryError):
        write_result(schema, failing(), target, "csv")
    assert target.read_text() == "old\n" and list(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------ the tables
def test_tables_lists_views_columns_and_row_counts(run_dir):
    res = invoke("query", run_dir, "--tables", "--format", "json")
    assert res.exit_code == 0, res.stderr
    listed = {t["table"]: t for t in json.loads(res.stdout)}
    assert set(listed) == {"readouts", "summary", "stats"}  # manifest.json is no table
    r = listed["readouts"]
    assert r["rows"] == len(pd.read_parquet(run_dir / "readouts.parquet"))
    assert r["source"] == "readouts.parquet"
    assert r["columns"].startswith("arm VARCHAR, subject BIGINT, assay VARCHAR, "
                                   "readout VARCHAR, time_h DOUBLE, value DOUBLE, unit VARCHAR")
    assert listed["summary"]["rows"] == len(pd.read_csv(run_dir / "summary.csv"))
    assert listed["stats"]["rows"] == 1 and "p DOUBLE" in listed["stats"]["columns"]
    table = invoke("query", run_dir, "--tables")
    assert table.exit_code == 0 and "readouts.parquet" in table.stdout
    assert "summary.csv" in table.stdout and "3 rows" in table.stdout


def test_chunked_parts_are_one_view(tmp_path, rng):
    run = tmp_path / "chunked"
    (run / "readouts").mkdir(parents=True)
    r = readouts_frame(rng)
    parts = np.array_split(np.arange(len(r)), 3)
    for i, idx in enumerate(parts):
        write_readouts(r.iloc[idx], run / "readouts" / f"part-{i:05d}.parquet")
    spines = run / "spines" / "arm=ketamine"  # deeper folders (Hive style) join in too
    spines.mkdir(parents=True)
    pq.write_table(pa.table({"spine": [1, 2, 3], "alive": [True, False, True]}),
                   spines / "part-0.parquet")
    (run / "readouts" / ".part-00009.parquet.tmp").write_text("half-written")  # hidden
    views = {v.name: v for v in find_views(run)}
    assert set(views) == {"readouts", "spines"}
    assert views["readouts"].source == "readouts/**/*.parquet"
    got = query(run, "SELECT * FROM readouts ORDER BY arm, subject, readout, time_h")
    want = r.sort_values(["arm", "subject", "readout", "time_h"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert query(run, "SELECT count(*) AS n, any_value(arm) AS arm FROM spines").to_dict(
        "records") == [{"n": 3, "arm": "ketamine"}]


def test_names_that_collide_or_are_no_identifiers(tmp_path):
    run = tmp_path / "screen"
    run.mkdir()
    pq.write_table(pa.table({"rank": [1]}), run / "screen.parquet")
    pd.DataFrame({"rank": [2]}).to_csv(run / "screen.csv", index=False)
    pd.DataFrame({"x": [3]}).to_csv(run / "2nd power-curve.csv", index=False)
    (run / "empty.csv").write_text("")  # an empty file is no table
    with RunTables(run) as db:
        assert [v.name for v in db.views] == ["screen", "_2nd_power_curve", "screen_csv"]
        assert db.df("SELECT rank FROM screen UNION ALL SELECT rank FROM screen_csv "
                      "UNION ALL SELECT x FROM _2nd_power_curve")["rank"].tolist() == [1, 2, 3]


# ------------------------------------------------------------------ read-only
@pytest.mark.parametrize("sql", [
    "COPY readouts TO 'copy.csv'",
    "COPY (SELECT 1) TO 'out.parquet' (FORMAT parquet)",
    "INSERT INTO readouts VALUES ('x', 0, 'a', 'r', 0, 0, 'u')",
    "CREATE TABLE t AS SELECT * FROM readouts",
    "DROP VIEW readouts",
    "ATTACH 'other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "EXPORT DATABASE 'dump'",
    "UPDATE readouts SET value = 0",
    "DELETE FROM readouts",
    "SELECT 1; COPY readouts TO 'copy.csv'",
])
def test_statements_that_are_not_queries_are_refused(run_dir, sql, monkeypatch):
    monkeypatch.chdir(run_dir)  # a relative COPY would land in the run folder
    before = snapshot(run_dir)
    res = invoke("query", run_dir, sql)
    assert res.exit_code == 2
    line = one_error_line(res.stderr, "SQL:")
    assert "statement" in line
    assert snapshot(run_dir) == before


def test_queries_cannot_read_outside_the_run_folder(run_dir, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"SELECT * FROM '{secret}'",
                f"SELECT * FROM read_text('{secret}')",
                f"SELECT * FROM read_csv('{run_dir}/../secret.csv')"):
        res = invoke("query", run_dir, sql)
        assert res.exit_code == 2, res.stdout
        one_error_line(res.stderr, "SQL:", "Permission")
        assert "hunter2" not in res.stdout
    # the views still read the folder, and so may a query naming one of its files
    res = invoke("query", run_dir, f"SELECT count(*) AS n FROM '{run_dir}/summary.csv'",
                 "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == [{"n": len(pd.read_csv(run_dir / "summary.csv"))}]


def test_output_may_not_replace_a_file_of_the_run(run_dir):
    before = snapshot(run_dir)
    res = invoke("query", run_dir, "SELECT 1 AS x", "--output", run_dir / "summary.csv")
    assert res.exit_code == 2
    one_error_line(res.stderr, "--output", "run folder")
    assert snapshot(run_dir) == before


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("sql, fragments", [
    ("SELEC arm FROM readouts", ("SQL:", "syntax error", "SELEC")),
    ("SELECT nope FROM readouts", ("SQL:", "nope", "not found")),
    ("SELECT * FROM readout", ("SQL:", "readout", "readouts, stats, summary")),
    ("SELECT * FROM manifest", ("SQL:", "manifest", "the run's tables")),
    ("SELECT CAST(arm AS INTEGER) FROM readouts", ("SQL:", "Conversion Error")),
    ("SELECT 1; SELECT 2", ("SQL:", "2 statements")),
    ("  ", ("SQL:", "no statement")),
])
def test_bad_sql_exits_2_with_one_line(run_dir, sql, fragments):
    res = invoke("query", run_dir, sql)
    assert res.exit_code == 2, res.stdout
    one_error_line(res.stderr, *fragments)


def test_bad_run_folders_exit_2(tmp_path):
    res = invoke("query", tmp_path / "missing", "SELECT 1")
    assert res.exit_code == 2
    one_error_line(res.stderr, "RUN_DIR", "missing", "no such folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text("{}")
    res = invoke("query", tmp_path / "empty", "--tables")
    assert res.exit_code == 2
    one_error_line(res.stderr, "RUN_DIR", "no results")
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    res = invoke("query", tmp_path / "file.parquet", "SELECT 1")
    assert res.exit_code == 2
    one_error_line(res.stderr, "RUN_DIR", "not a folder")
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "readouts.parquet").write_bytes(b"not parquet at all")
    res = invoke("query", bad, "SELECT 1")
    assert res.exit_code == 2
    one_error_line(res.stderr, "readouts.parquet", "cannot read it as PARQUET")


def test_a_stray_broken_file_leaves_the_other_tables_queryable(run_dir):
    """One file DuckDB cannot read (a half-copied Parquet file, a broken part in a
    folder) is left out with a note; a query naming it gets its file's error."""
    (run_dir / "junk.parquet").write_bytes(b"not parquet at all")
    (run_dir / "parts").mkdir()
    (run_dir / "parts" / "part-0.parquet").write_bytes(b"PAR1")
    with RunTables(run_dir) as db:
        assert set(db.unreadable) == {"junk", "parts"}
        assert "junk" not in {v.name for v in db.views}
        assert db.df("SELECT count(*) AS n FROM summary")["n"][0] > 0
        with pytest.raises(QueryError, match=r"table junk: .*junk.parquet: cannot read"):
            db.df("SELECT * FROM junk")
        with pytest.raises(QueryError, match="nothing does not exist"):
            db.df("SELECT * FROM nothing")
    res = invoke("query", run_dir, "SELECT count(*) AS n FROM readouts", "--format", "csv")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0] == "n"
    notes = res.stderr.splitlines()
    assert len(notes) == 2 and all(n.startswith("note: left out ") for n in notes)
    assert "junk.parquet" in res.stderr and "parts/**/*.parquet" in res.stderr
    res = invoke("query", run_dir, "SELECT * FROM junk")
    assert res.exit_code == 2
    one_error_line(res.stderr, "table junk", "junk.parquet", "cannot read it as PARQUET")
    res = invoke("query", run_dir, "--tables", "--format", "csv")
    assert res.exit_code == 0 and "junk" not in res.stdout and "summary" in res.stdout


@pytest.mark.parametrize("args, fragments", [
    (("SELECT 1", "--format", "xml"), ("--format", "xml")),
    (("SELECT 1", "--limit", "-1"), ("--limit", "-1")),
    ((), ("no SQL", "--tables")),
    (("SELECT 1", "--tables"), ("--tables",)),
    (("SELECT 1", "--format", "parquet"), ("--format parquet", "--output")),
    (("SELECT 1", "--output", "x.txt"), ("--output", ".txt")),
    (("SELECT 1", "--output", "x.csv", "--format", "table"), ("--format", "table")),
])
def test_bad_options_exit_2(run_dir, tmp_path, args, fragments, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("query", run_dir, *args)
    assert res.exit_code == 2, res.stdout
    one_error_line(res.stderr, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_console_script_exit_status_and_stderr(run_dir):
    exe = Path(sys.executable).with_name("ketasim")
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        exe = shutil.which("ketasim")
        if exe is None:
            pytest.skip("the ketasim console script is not installed")
    proc = subprocess.run([str(exe), "query", str(run_dir), "SELECT * FROM nowhere"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    one_error_line(proc.stderr, "SQL:", "nowhere")
    proc = subprocess.run([str(exe), "query", str(run_dir), TST_BY_ARM, "--format", "csv"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(proc.stdout)),
                                  expected_tst(run_dir), check_dtype=False)


# ------------------------------------------------------------------ a real run
SMALL = """
name: small
species: mouse
seed: 3
arms:
  - name: saline
    n: 3
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: western_blot, at: [1h, 24h]}
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
compare:
  - {readout: pmtor_rel, assay: western_blot, at: 1h, arms: [ketamine, saline]}
"""


def test_a_real_run_folder(tmp_path):
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    out = tmp_path / "out"
    res = invoke("run", scenario, "--out", out)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    before = snapshot(out)
    res = invoke("query", out, "--tables", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert {t["table"] for t in json.loads(res.stdout)} == {"readouts", "summary", "stats"}
    # the summary's n and mean, recomputed from the readouts in SQL and in pandas
    sql = ("SELECT arm, readout, time_h, count(value) AS n, avg(value) AS mean "
           "FROM readouts GROUP BY ALL ORDER BY ALL")
    got = query(out, sql)
    r = pd.read_parquet(out / "readouts.parquet")
    want = (r.groupby(["arm", "readout", "time_h"])["value"].agg(n="count", mean="mean")
            .reset_index())
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    summary = query(out, "SELECT arm, readout, time_h, n, mean FROM summary ORDER BY ALL")
    pd.testing.assert_frame_equal(summary, want, check_dtype=False)
    res = invoke("query", out, "SELECT test, p FROM stats", "--format", "json")
    assert res.exit_code == 0, res.stderr
    stats = pd.read_csv(out / "stats.csv", float_precision="round_trip")
    assert json.loads(res.stdout) == [{"test": stats["test"][0], "p": stats["p"][0]}]
    assert snapshot(out) == before


def test_format_and_suffix_must_agree(run_dir, tmp_path):
    res = invoke("query", run_dir, TST_BY_ARM, "--output", tmp_path / "q.parquet",
                 "--format", "json")
    assert res.exit_code == 2 and "a parquet file's name for --format json" in res.stderr
    assert not (tmp_path / "q.parquet").exists()
