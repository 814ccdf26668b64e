"""Writing a run's results atomically, in the contract's formats.

Everything is written into a temporary folder beside ``--out`` and renamed into place
only once complete: a failed run leaves nothing behind, and an existing folder is never
modified (it is replaced as a whole only with ``overwrite=True``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class OutputError(OSError):
    """The output folder cannot be created or replaced."""


def check_writable(out: Path, overwrite: bool) -> None:
    """Fail early, before any simulation, if ``out`` cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"--out {out}: folder exists and is not empty; "
                          "choose another folder or pass --force to replace it")
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: cannot write in {probe}")


@contextmanager
def atomic_dir(out: Path, overwrite: bool = False):
    """Yield a temporary folder; on success it becomes ``out``."""
    out = Path(out)
    check_writable(out, overwrite)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise OutputError(f"--out {out}: cannot create a folder there ({e.strerror})") from e
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    try:
        if out.exists():
            backup = parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, backup)
        os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if backup is not None and not out.exists():
            os.rename(backup, out)
        raise OutputError(f"--out {out}: cannot move results into place ({e})") from e
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


READOUT_SCHEMA = pa.schema([
    ("arm", pa.string()), ("subject", pa.int64()), ("assay", pa.string()),
    ("readout", pa.string()), ("time_h", pa.float64()), ("value", pa.float64()),
    ("unit", pa.string()),
])


def write_readouts(df: pd.DataFrame, path: Path) -> None:
    """Parquet with a fixed schema and no pandas index, so equal tables give equal bytes."""
    table = pa.Table.from_pandas(df, schema=READOUT_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")


def read_readouts(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def write_json(obj, path: Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
