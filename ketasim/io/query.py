"""SQL over a run folder's results: DuckDB views over its Parquet and CSV files, read-only.

Every table of a run folder becomes a view, named after its file or folder:

- each ``*.parquet`` and ``*.csv`` file directly in the folder is a view named after the
  file's stem (``readouts.parquet`` -> ``readouts``, ``summary.csv`` -> ``summary``);
- each subfolder holding Parquet files is one view over all of them, at any depth,
  named after the subfolder (chunked outputs: ``readouts/part-*.parquet`` ->
  ``readouts``; columns are matched by name, Hive ``key=value`` folders become columns);
  a subfolder's CSV files likewise; but a subfolder that is itself a results folder,
  with files of that kind of its own beside subfolders holding more (a sensitivity
  analysis's ``sweep/``: ``samples.parquet`` and ``chunks/part-*.parquet``), gives a
  view per file and per subfolder, named ``<subfolder>_<name>`` (``sweep_samples``,
  ``sweep_chunks``), since its tables are not one table;
- names are made SQL identifiers (other characters become ``_``); when two tables would
  share a name (``screen.parquet`` and ``screen.csv``), the later one (in the order
  folder Parquet, folder CSV, subfolder Parquet, subfolder CSV) gets its kind appended
  (``screen_csv``); hidden files and folders (``.name``) and empty files are skipped.

Only queries run: a statement whose parsed type is not SELECT (COPY, INSERT, CREATE,
ATTACH, INSTALL, LOAD, PRAGMA, SET, EXPORT, ...) is refused before it runs, and once the
views exist DuckDB's external access is switched off except for the run folder (and
the configuration locked), so no query reads other files or writes anywhere.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("table", "csv", "json", "parquet")
FILE_FORMATS = ("csv", "json", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
_BATCH_ROWS = 65_536


class QueryError(ValueError):
    """A run folder, a query or an output the ``query`` command cannot use (bad input)."""


@dataclass(frozen=True)
class View:
    """One table of a run folder.

    ``name`` is the view's SQL name, ``kind`` ``parquet`` or ``csv``, ``source`` the
    file or glob relative to the run folder, ``pattern`` the absolute path or glob."""

    name: str
    kind: str
    source: str
    pattern: str

    def sql(self) -> str:
        """The ``CREATE VIEW`` statement that reads the file(s)."""
        many = "*" in self.source
        if many:
            # the files themselves, not the glob: a folder name with [ ] or ? would be
            # read by DuckDB as a pattern
            root = Path(self.pattern[: -len(self.source)])
            folder = root / self.source.split("/**/", 1)[0]  # a literal path, not a glob
            files = sorted(str(f) for f in folder.rglob(f"*.{self.kind}")
                           if f.is_file() and _visible(f, root) and f.stat().st_size > 0)
            path = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        else:
            path = "'" + self.pattern.replace("'", "''") + "'"
        if self.kind == "parquet":
            reader = f"read_parquet({path}{', union_by_name = true' if many else ''})"
        else:
            reader = (f"read_csv({path}, header = true, sample_size = -1"
                      f"{', union_by_name = true' if many else ''})")
        return f'CREATE VIEW "{self.name}" AS SELECT * FROM {reader}'


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_") or "table"
    return f"_{name}" if name[0].isdigit() else name


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def find_views(run_dir: Path) -> list[View]:
    """The tables of a run folder, as views to create (see the module docstring).

    Raises :class:`QueryError` when ``run_dir`` is not a folder or holds no Parquet or
    CSV file."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise QueryError(f"RUN_DIR {run_dir}: no such folder")
    if not run_dir.is_dir():
        raise QueryError(f"RUN_DIR {run_dir}: not a folder (give the run's output folder)")
    root = run_dir.resolve()
    candidates: list[tuple[str, str, str, str]] = []  # (name, kind, source, pattern)
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
        for kind in ("parquet", "csv"):
            for p in entries:
                if (p.is_file() and p.suffix.lower() == f".{kind}" and _visible(p, root)
                        and p.stat().st_size > 0):
                    candidates.append((p.stem, kind, p.name, str(p)))
        for kind in ("parquet", "csv"):
            for d in entries:
                if not (d.is_dir() and _visible(d, root)):
                    continue
                found = [f for f in d.rglob(f"*.{kind}")
                         if f.is_file() and _visible(f, root) and f.stat().st_size > 0]
                if not found:
                    continue
                own = sorted((f for f in found if f.parent == d), key=lambda f: f.name)
                subs = sorted({f.relative_to(d).parts[0] for f in found if f.parent != d})
                if own and subs:  # a results folder of its own: its tables one by one
                    for f in own:
                        candidates.append((f"{d.name}_{f.stem}", kind, f"{d.name}/{f.name}",
                                           str(f)))
                    for sub in subs:
                        glob = f"{d.name}/{sub}/**/*.{kind}"
                        candidates.append((f"{d.name}_{sub}", kind, glob, str(root / glob)))
                else:
                    glob = f"{d.name}/**/*.{kind}"
                    candidates.append((d.name, kind, glob, str(root / glob)))
    except OSError as e:
        raise QueryError(f"RUN_DIR {run_dir}: cannot read it ({e.strerror or e})") from e
    if not candidates:
        raise QueryError(f"RUN_DIR {run_dir}: holds no results (no .parquet or .csv file); "
                         "give the output folder of a ketasim run, validate, power or screen")
    views: list[View] = []
    taken: set[str] = set()
    for stem, kind, source, pattern in candidates:
        base = _identifier(stem)
        name = base
        if name.lower() in taken:
            name = f"{base}_{kind}"
        k = 2
        while name.lower() in taken:
            name = f"{base}_{kind}_{k}"
            k += 1
        taken.add(name.lower())
        views.append(View(name, kind, source, pattern))
    return views


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        name, k = n, 2
        while name in seen:
            name, k = f"{n}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def _message(e: Exception) -> str:
    """DuckDB's error on one line: the caret picture (``LINE 1: ...``) is dropped."""
    lines = []
    for line in str(e).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or type(e).__name__


def read_only_statement(sql: str) -> str:
    """The single query in ``sql``; :class:`QueryError` for anything else.

    Parses with DuckDB and accepts exactly one statement whose type is SELECT (which
    includes WITH, FROM-first, VALUES, DESCRIBE, SHOW and SUMMARIZE)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"SQL: {_message(e)}") from None
    if not statements:
        raise QueryError("SQL: no statement given; expected one query (SELECT ...)")
    if len(statements) > 1:
        raise QueryError(f"SQL: got {len(statements)} statements; expected one query "
                         "(SELECT ...)")
    st = statements[0]
    if st.type != duckdb.StatementType.SELECT:
        words = st.query.split()
        word = words[0].upper() if words else st.type.name
        article = "an" if word[:1] in "AEIOU" else "a"
        raise QueryError(f"SQL: got {article} {word} statement; ketasim query runs only queries "
                         "(SELECT ...) and never changes the run folder")
    return st.query


class RunTables:
    """An in-memory DuckDB connection over a run folder's tables (a context manager).

    ``views`` lists the readable tables and ``unreadable`` the others (name -> why);
    :meth:`reader`, :meth:`arrow` and :meth:`df` run one read-only query. Raises
    :class:`QueryError` for a folder without results or without one readable file, a
    statement that is not a query, a query naming an unreadable table (with its file's
    error), or a query DuckDB rejects."""

    def __init__(self, run_dir: Path, threads: int | None = None):
        import duckdb

        self.run_dir = Path(run_dir)
        self.views = find_views(self.run_dir)
        root = str(self.run_dir.resolve())
        # no temporary folder: DuckDB adds its own (<cwd>/.tmp) to the allowed directories
        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                  "temp_directory": ""}
        if threads:
            config["threads"] = threads
        self._con = duckdb.connect(":memory:", config=config)
        #: tables whose files DuckDB cannot read, name -> the error; a stray broken file
        #: leaves the folder's other tables queryable (a query naming it gets the error)
        self.unreadable: dict[str, str] = {}
        try:
            for v in self.views:
                try:
                    self._con.execute(v.sql())
                except duckdb.Error as e:
                    self.unreadable[v.name] = (f"{self.run_dir / v.source}: cannot read it "
                                               f"as {v.kind.upper()}: {_message(e)}")
            if len(self.unreadable) == len(self.views):
                raise QueryError(next(iter(self.unreadable.values())))
            self.views = [v for v in self.views if v.name not in self.unreadable]
            # the views read the run folder when queried; nothing else is reachable
            self._con.execute("SET allowed_directories = ?", [[root + os.sep]])
            self._con.execute("SET enable_external_access = false")
            self._con.execute("SET lock_configuration = true")
        except BaseException:
            self._con.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def _error(self, e: Exception) -> QueryError:
        text = _message(e)
        names = [v.name for v in self.views]
        if "Catalog Error" in text and "does not exist" in text:
            missing = re.search(r"name (.+?) does not exist", text)
            for name, why in self.unreadable.items():
                if missing and missing.group(1).lower() == name.lower():
                    return QueryError(f"SQL: table {name}: {why}")
            # DuckDB may suggest one of its own catalog tables; suggest the run's instead
            text = re.sub(r'\s*Did you mean "([^"]*)"\?',
                          lambda m: m.group(0) if m.group(1) in names else "", text)
            text += f" (the run's tables: {', '.join(names)})"
        elif "Permission Error" in text:
            text += " (a query reads only the run folder's tables)"
        return QueryError(f"SQL: {text}")

    def reader(self, sql: str) -> pa.RecordBatchReader:
        """Run one query; its result as a stream of Arrow record batches.

        DuckDB errors raised while the stream is read come as :class:`QueryError` only
        through :meth:`batches`."""
        import duckdb

        statement = read_only_statement(sql)
        try:
            rel = self._con.sql(statement)
            for method in ("to_arrow_reader", "fetch_arrow_reader", "record_batch"):
                if hasattr(rel, method):  # duckdb >= 1.4 names it to_arrow_reader
                    return getattr(rel, method)(_BATCH_ROWS)
            raise RuntimeError("this duckdb has no Arrow reader for query results")
        except duckdb.Error as e:
            raise self._error(e) from None

    def batches(self, sql: str) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The result's schema and its record batches (errors as :class:`QueryError`).

        Repeated column names (``SELECT 1, 1``) are made unique (``1``, ``1_2``), so
        that every output format keeps every column."""
        import duckdb

        rd = self.reader(sql)
        names = _unique(rd.schema.names)
        schema = pa.schema([f.with_name(n) for f, n in zip(rd.schema, names, strict=True)])

        def stream() -> Iterator[pa.RecordBatch]:
            try:
                for b in rd:
                    yield pa.RecordBatch.from_arrays(b.columns, schema=schema)
            except (duckdb.Error, pa.ArrowException) as e:
                raise self._error(e) from None

        return schema, stream()

    def arrow(self, sql: str) -> pa.Table:
        """The whole result of one query as an Arrow table."""
        schema, batches = self.batches(sql)
        return pa.Table.from_batches(list(batches), schema=schema)

    def df(self, sql: str) -> pd.DataFrame:
        """The whole result of one query as a pandas DataFrame."""
        return self.arrow(sql).to_pandas()

    def tables(self) -> pd.DataFrame:
        """One row per view: ``table``, ``rows``, ``columns`` (name and SQL type) and
        ``source`` (file or glob relative to the run folder)."""
        import duckdb

        rows = []
        for v in self.views:
            try:
                cols = self._con.execute(f'DESCRIBE "{v.name}"').fetchall()
                count = self._con.execute(f'SELECT count(*) FROM "{v.name}"').fetchone()[0]
            except duckdb.Error as e:
                raise QueryError(f"{self.run_dir / v.source}: cannot read it as "
                                 f"{v.kind.upper()}: {_message(e)}") from None
            rows.append({"table": v.name, "rows": int(count),
                         "columns": ", ".join(f"{c[0]} {c[1]}" for c in cols),
                         "source": v.source})
        return pd.DataFrame(rows, columns=["table", "rows", "columns", "source"])


def query(run_dir: Path, sql: str, arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Answer one read-only SQL query over a run folder's tables.

    ``sql`` names the views (``readouts``, ``summary``, ``stats``, ...; see
    :func:`find_views`). Returns a pandas DataFrame, or an Arrow table with
    ``arrow=True``; raises :class:`QueryError` for a bad folder or query."""
    with RunTables(run_dir) as db:
        return db.arrow(sql) if arrow else db.df(sql)


# ------------------------------------------------------------------ writing results
def head(batches: Iterable[pa.RecordBatch], limit: int | None
         ) -> tuple[list[pa.RecordBatch], int]:
    """The first ``limit`` rows (all with ``None``) and the total number of rows; the
    rest of the stream is counted, not kept."""
    kept: list[pa.RecordBatch] = []
    total = 0
    for b in batches:
        if limit is None or total < limit:
            kept.append(b if limit is None else b.slice(0, limit - total))
        total += b.num_rows
    return kept, total


def _nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t)


def _json_value(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return None
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def _json_text(v) -> str | None:
    return None if v is None else json.dumps(_json_value(v), ensure_ascii=False)


def _frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """A batch as pandas for CSV: Arrow dtypes (integers stay integers beside nulls),
    nested values (lists, structs) as JSON text."""
    cols = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if _nested(col.type):
            col = pa.array([_json_text(v) for v in col.to_pylist()], pa.string())
        cols[name] = col
    table = pa.Table.from_arrays(list(cols.values()), names=list(cols))
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def write_csv(schema: pa.Schema, batches: Iterable[pa.RecordBatch], stream: IO[str]) -> None:
    """CSV with a header row (written as pandas writes the run's own CSV files)."""
    pd.DataFrame(columns=schema.names).to_csv(stream, index=False)
    for b in batches:
        if b.num_rows:
            _frame(b).to_csv(stream, index=False, header=False)


def write_json(schema: pa.Schema, batches: Iterable[pa.RecordBatch], stream: IO[str]) -> None:
    """A JSON array of records, one per line; NaN and infinities become null."""
    stream.write("[")
    first = True
    for b in batches:
        for rec in b.to_pylist():
            stream.write(("\n" if first else ",\n")
                         + json.dumps({k: _json_value(v) for k, v in rec.items()},
                                      ensure_ascii=False, allow_nan=False))
            first = False
    stream.write("\n]\n" if not first else "]\n")


def write_parquet(schema: pa.Schema, batches: Iterable[pa.RecordBatch], path) -> None:
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for b in batches:
            w.write_batch(b)


def output_format(path: Path, fmt: str | None) -> str:
    """The format of ``--output``: ``fmt`` if given, else from the file's suffix."""
    if fmt is not None:
        if fmt not in FILE_FORMATS:
            raise QueryError(f"--format {fmt}: cannot be written to --output; expected one "
                             f"of {', '.join(FILE_FORMATS)}")
        named = SUFFIX_FORMATS.get(Path(path).suffix.lower())
        if named is not None and named != fmt:
            raise QueryError(f"--output {path}: a {named} file's name for --format {fmt}; "
                             f"name it .{fmt} or leave --format out")
        return fmt
    try:
        return SUFFIX_FORMATS[Path(path).suffix.lower()]
    except KeyError:
        raise QueryError(f"--output {path}: cannot tell the format from the suffix "
                         f"{Path(path).suffix or '(none)'!r}; use .csv, .json or .parquet, "
                         "or pass --format") from None


def check_output(path: Path, run_dir: Path) -> None:
    """Refuse an ``--output`` that is a folder or lies in the run folder (it would replace
    one of the run's files, or add a table to the folder the query read)."""
    path = Path(path)
    if path.is_dir():
        raise QueryError(f"--output {path}: is a folder; give a file name")
    try:
        inside = path.resolve().is_relative_to(Path(run_dir).resolve())
    except OSError:
        inside = False
    if inside:
        what = "would replace a file of" if path.exists() else "would add a table to"
        raise QueryError(f"--output {path}: {what} the run folder {run_dir}; choose a file "
                         "outside it")


def write_result(schema: pa.Schema, batches: Iterable[pa.RecordBatch], path: Path,
                 fmt: str) -> None:
    """Write a result to ``path`` atomically: into a temporary file in the same folder,
    renamed into place once complete (an existing file is replaced only then).

    Missing parent folders are created. Raises :class:`QueryError` when the file cannot
    be written; on any error (a failing query too) nothing is left behind."""
    path = Path(path)
    parent = path.absolute().parent
    created = []  # folders made here, removed again if writing fails
    probe = parent
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    tmp = None
    done = False
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=parent)
        os.close(fd)
        if fmt == "parquet":
            write_parquet(schema, batches, tmp)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as t:
                (write_csv if fmt == "csv" else write_json)(schema, batches, t)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
        done = True
    except OSError as e:
        what = f"in {parent}" if tmp is None else "it"
        raise QueryError(f"--output {path}: cannot write {what} ({e.strerror or e})") from None
    finally:
        if not done:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            for d in created:  # deepest first
                try:
                    d.rmdir()
                except OSError:
                    pass
