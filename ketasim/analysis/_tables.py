"""Shared pieces of the lab-data readers (tracking tables, dF/F, behaviour tables): the
accepted file types, boolean spellings, and one-line errors that name the file, the
column and the row (or cell and frame)."""

from __future__ import annotations

import numpy as np

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


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


def read_frame(path, kind: str, error: type[ValueError], csv_dtype=str):
    """Read a CSV or Parquet file into a DataFrame with stripped column names, CSV blank
    lines dropped, and the file row number of each remaining row (1-based data rows, the
    header being line 1). Any failure is one ``error`` line naming the file."""
    import pandas as pd

    name = path.name
    try:
        if kind == "csv":
            # cells as text (csv_dtype) so that bad cells are reported, not coerced
            df = pd.read_csv(path, dtype=csv_dtype, skip_blank_lines=False)
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
