"""Shared pieces of the lab-data readers (tracking tables, dF/F, behaviour tables): the
accepted file types, boolean spellings, and one-line errors that name the file, the
column and the row (or cell and frame)."""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# with the words spreadsheets write for TRUE and FALSE in German, French, Spanish,
# Italian, Portuguese and Dutch when they save a CSV file
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0", "wahr", "vrai", "verdadero",
                        "vero", "verdadeiro", "waar"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0", "falsch", "faux", "falso",
                         "onwaar"})


def short(value: object) -> str:
    """A value as shown in an error message (repr, cut at 40 characters)."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Source:
    """Where data came from; ``fail`` builds the reader's own one-line error.

    ``rows`` maps a position in the loaded frame to the row number in the file (None
    for arrays); CSV errors also give the file line (the header is line 1)."""

    error: type[ValueError] = ValueError

    def __init__(self, name: str, rows: np.ndarray | None = None, csv: bool = False):
        self.name, self.rows, self.csv = name, rows, csv

    def locate(self, column: str | None = None, pos: int | None = None,
               extra: tuple[str, ...] = (), what: str = "", value: object = None
               ) -> ValueError:
        where = [self.name]
        if column is not None:
            where.append(f"column '{column}'")
        if pos is not None and self.rows is not None:
            row = int(self.rows[pos])
            where.append(f"row {row} (line {row + 1})" if self.csv else f"row {row}")
        where.extend(extra)
        got = "" if value is None else f", got {short(value)}"
        return self.error(f"{', '.join(where)}: {what}{got}")


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# a number written with a decimal comma (``3,5``, ``-0,25``, ``1,5e-3``), as spreadsheets
# in many European locales save their CSV files (with ``;`` between the cells)
_DECIMAL_COMMA = r"^\s*[+-]?(?:\d+,\d*|,\d+)(?:[eE][+-]?\d+)?\s*$"


# a number with a point and no comma (``1.5``, ``-0.25``, ``1e-3`` has none: not counted)
_DECIMAL_POINT = r"^\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*$"
# a number grouped in thousands by points, with or without a decimal comma: ``1.000``,
# ``12.345,5`` (in a file whose decimal mark is the comma)
_THOUSANDS = r"^\s*[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?\s*$"
_SNIFF_LINES = 200
#: columns that hold identifiers, never numbers: their cells are kept as written
ID_COLUMNS = frozenset({"subject", "arm", "group", "branch", "spine_id", "cell", "segment",
                        "mouse", "state", "class", "origin", "id", "animal", "session"})


def csv_dialect(path: Path) -> tuple[str, str]:
    """The cell separator and decimal mark of a CSV file, from its first lines.

    The separator: the most frequent of ``,``, ``;`` and tab in the header line (a tie
    is ``,``); a quoted header (``"subject";"sucrose, g"``) is read with Python's CSV
    sniffer, which sees the quotes. The decimal mark of a ``;`` or tab file: the comma
    where the first 200 lines write a number with a decimal comma (``12,5``); else the
    point where they write one with a point (``1.500`` is 1.5: a file written with
    ``sep=";"`` by a program that keeps the point). Only beside decimal commas do points
    group thousands (``1.000`` is then one thousand), and never in identifier columns
    (:data:`ID_COLUMNS`)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
            lines = [f.readline() for _ in range(_SNIFF_LINES)]
    except OSError:
        return ",", "."  # the reader reports what is wrong with the file
    lines = [ln for ln in lines if ln]
    if not lines:
        return ",", "."
    header = lines[0]
    if '"' in header:
        try:
            sep = csv.Sniffer().sniff("".join(lines[:5]), delimiters=",;\t").delimiter
        except csv.Error:
            sep = ","
    else:  # the most frequent of the three in the header; a tie is comma-separated
        counts = {d: header.count(d) for d in (",", ";", "\t")}
        sep = max(counts, key=lambda d: (counts[d], d == ","))
        if counts[sep] == 0:
            sep = ","
    if sep == ",":
        return ",", "."
    cells = [c for row in csv.reader(lines[1:], delimiter=sep) for c in row]
    if any(re.match(_DECIMAL_COMMA, c) for c in cells):
        return sep, ","
    # no decimal comma: a number with a point is a decimal point (1.500 is 1.5: a
    # thousands group is only read as one beside decimal commas)
    point = any(re.match(_DECIMAL_POINT, c) for c in cells)
    return sep, ("." if point or sep == "\t" else ",")


def _check_header(path: Path, sep: str, error: type[ValueError]) -> None:
    """A CSV header naming a column twice is one error (pandas would rename the second
    'x.1' and a reader would silently use the first)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        first = f.readline()
    names = [c.strip() for c in next(csv.reader([first], delimiter=sep), [])]
    twice = sorted({c for c in names if c and names.count(c) > 1})
    if twice:
        raise error(f"{path.name}: header names column {twice[0]!r} more than once "
                    f"({names.count(twice[0])} times); each column once")


def read_frame(path, kind: str, error: type[ValueError], csv_dtype=str):
    """Read a CSV or Parquet file into a DataFrame with stripped column names, CSV blank
    lines dropped, and the file row number of each remaining row (1-based data rows, the
    header being line 1). A CSV file saved with ``;`` between cells and decimal commas
    (:func:`csv_dialect`) reads as one saved with ``,`` and decimal points. Any failure
    is one ``error`` line naming the file."""
    name = path.name
    try:
        if kind == "csv":
            sep, decimal = csv_dialect(Path(path))
            _check_header(Path(path), sep, error)
            # cells as text (csv_dtype) so that bad cells are reported, not coerced
            # round_trip: a number written with all its digits reads back bit for bit
            df = pd.read_csv(path, dtype=csv_dtype, skip_blank_lines=False, sep=sep,
                             decimal=decimal, float_precision="round_trip",
                             thousands="." if decimal == "," else None)
            if decimal == ",":  # text cells that are numbers: no grouping, decimal points
                for c in df.columns:
                    if df[c].dtype == object and str(c).strip().lower() not in ID_COLUMNS:
                        cells = df[c]
                        grouped = cells.str.match(_THOUSANDS, na=False)
                        if grouped.any():
                            cells = cells.where(~grouped,
                                                cells.str.replace(".", "", regex=False))
                        is_num = cells.str.match(_DECIMAL_COMMA, na=False)
                        if is_num.any() or grouped.any():
                            df[c] = cells.where(~is_num,
                                                cells.str.replace(",", ".", regex=False))
        else:
            df = pd.read_parquet(path)
    except FileNotFoundError:
        raise error(f"{name}: file not found ({path})") from None
    except pd.errors.EmptyDataError:
        raise error(f"{name}: file is empty (expected a header row)") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else "parse error"
        raise error(f"{name}: cannot parse CSV: {detail}") from None
    except UnicodeDecodeError:
        raise error(f"{name}: cannot read, not UTF-8 text") from None
    except Exception as err:  # noqa: BLE001 - pyarrow/OS errors vary; one clear line
        raise error(f"{name}: cannot read {kind} file: {first_line(err)}") from None
    df.columns = [str(c).strip() for c in df.columns]
    rows = np.arange(1, len(df) + 1)
    if kind == "csv":
        blank = df.isna().all(axis=1).to_numpy()
        df, rows = df.loc[~blank].reset_index(drop=True), rows[~blank]
    return df, rows


def file_kind(path: Path, error: type[ValueError], suffixes: dict | None = None) -> str:
    """``"csv"`` (also for ``.csv.gz``), ``"parquet"`` or another kind in ``suffixes`` (by
    default :data:`SUFFIXES`) from a file's suffix; an unknown suffix is one ``error``."""
    suffixes = SUFFIXES if suffixes is None else suffixes
    kind = suffixes.get(path.suffix.lower())
    if "".join(path.suffixes[-2:]).lower().endswith(".csv.gz"):
        kind = "csv"
    if kind is None:
        expected = ", ".join(sorted({*suffixes, ".csv.gz"}))
        raise error(f"{path.name}: unknown file suffix '{path.suffix}' (expected one of "
                    f"{expected})")
    return kind


def load_table(obj, source: type[Source]):
    """A DataFrame (column names stripped) or a ``.csv``/``.csv.gz``/``.parquet``/``.pq``
    file read by :func:`read_frame`, with a ``source`` (a :class:`Source` subclass whose
    ``error`` is the reader's error type) for the messages."""
    error = source.error
    if isinstance(obj, pd.DataFrame):
        df = obj.reset_index(drop=True)
        df.columns = [str(c).strip() for c in df.columns]
        return df, source("<DataFrame>", np.arange(1, len(df) + 1), csv=False)
    if not isinstance(obj, (str, Path)):
        raise error(f"expected a path to a .csv/.parquet file or a DataFrame, got "
                    f"{type(obj).__name__}")
    path = Path(obj)
    kind = file_kind(path, error)
    df, rows = read_frame(path, kind, error, str)
    return df, source(path.name, rows, csv=(kind == "csv"))


def first_true(mask: np.ndarray) -> int | None:
    """Position of the first True, or None."""
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def is_integral(v: object) -> bool:
    """An integer, or a finite float with no fractional part (not a bool)."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and bool(np.isfinite(v)) and v.is_integer()


def parse_ids(values, column: str, src: Source) -> np.ndarray:
    """An id column as stripped strings (integers written without a decimal point)."""
    values = np.asarray(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, str):
            text = v.strip()
        elif is_integral(v):
            text = str(int(v))
        else:
            text = ""
        if not text:
            raise src.locate(column, i, what="expected a non-empty string or an integer",
                             value=v)
        out[i] = text
    return out


def parse_bools(series, column: str, src: Source) -> np.ndarray:
    """A boolean column: bools, 1/0, or the words in TRUE_WORDS / FALSE_WORDS."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=bool)
    out = np.zeros(len(series), dtype=bool)
    for i, v in enumerate(series.to_numpy(dtype=object)):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            key = "1" if v == 1 else "0" if v == 0 else None
        else:
            key = v.strip().lower() if isinstance(v, str) else None
        if key in TRUE_WORDS:
            out[i] = True
        elif key not in FALSE_WORDS:
            raise src.locate(column, i, what="expected a boolean (true/false, 1/0)", value=v)
    return out
