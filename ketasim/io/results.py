"""Writing a run's results atomically, in the contract's formats.

Everything is written into a temporary folder beside ``--out`` and renamed into place
only once complete: a failed run leaves nothing behind, and an existing folder is never
modified (it is replaced as a whole only with ``overwrite=True``).
"""

from __future__ import annotations

import json
import math
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


def check_writable(out: Path, overwrite: bool, option: str = "--out") -> None:
    """Fail early, before any simulation, if ``out`` cannot be written (errors name
    ``option``, the command-line option that gave the folder)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{option} {out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"{option} {out}: folder exists and is not empty; "
                              "choose another folder or pass --force to replace it")
        _check_replaceable(out, option)
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {out}: cannot write in {probe}")


#: files by which a folder is known as ketasim's own output (a run, analysis, validation,
#: screen, sweep, sensitivity or calibration writes a manifest; a PEtab export its
#: problem file): only such a folder is replaced, and only when the file is ketasim's
#: (:func:`_ketasim_marker`), not merely a file of that name
OUTPUT_MARKERS = ("manifest.json", "problem.yaml")
#: the first line of the README.md that ketasim's PEtab export writes beside problem.yaml
PETAB_README = "# PEtab export: "
#: largest marker file read to recognise it (a ketasim manifest is well under this)
MARKER_MAX_BYTES = 64 * 1024 * 1024


def _is_ketasim_manifest(doc) -> bool:
    """A manifest that ketasim wrote: every one records ketasim's version, as
    ``ketasim_version`` (:func:`ketasim.provenance.collect`: run, analyze, validate,
    power, screen, sensitivity, calibrate) or, for a sweep (``format``
    ``ketasim-sweep/N``), as ``versions.ketasim``."""
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("ketasim_version"), str):
        return True
    versions = doc.get("versions")
    return (isinstance(doc.get("format"), str) and doc["format"].startswith("ketasim-")
            and isinstance(versions, dict) and isinstance(versions.get("ketasim"), str))


def _read_marker(path: Path) -> str:
    if path.stat().st_size > MARKER_MAX_BYTES:
        raise ValueError(f"larger than {MARKER_MAX_BYTES // (1024 * 1024)} MiB")
    return path.read_bytes().decode("utf-8-sig")


def _ketasim_marker(out: Path) -> str | None:
    """None when ``out`` holds a marker file that ketasim wrote (a manifest it recognises,
    or its PEtab export's problem.yaml with the README.md it writes beside it); else why
    not, for the error."""
    manifest, problem = out / OUTPUT_MARKERS[0], out / OUTPUT_MARKERS[1]
    if manifest.is_file():
        try:
            doc = json.loads(_read_marker(manifest))
        except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError too
            return f"its manifest.json cannot be read as JSON ({type(e).__name__})"
        if _is_ketasim_manifest(doc):
            return None
        return "its manifest.json was not written by ketasim (no ketasim version in it)"
    if problem.is_file():
        import yaml

        try:
            doc = yaml.safe_load(_read_marker(problem))
            readme = (out / "README.md").read_bytes()[:256].decode("utf-8", "replace")
        except (OSError, ValueError, yaml.YAMLError) as e:
            return f"its problem.yaml or README.md cannot be read ({type(e).__name__})"
        if (isinstance(doc, dict) and "format_version" in doc and "problems" in doc
                and readme.startswith(PETAB_README)):
            return None
        return "its problem.yaml is not a PEtab export of ketasim's"
    return f"no {' or '.join(OUTPUT_MARKERS)}"


def _check_replaceable(out: Path, option: str) -> None:
    """Refuse to replace (delete) a folder that is not an earlier ketasim output, or that
    holds the current folder: --force must never delete a lab's data, a scenario or
    the folder the user works in. A marker file of the right name is not enough: its
    content must be ketasim's (:func:`_ketasim_marker`)."""
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents:
        raise OutputError(f"{option} {out}: is the current folder or holds it; replacing "
                          "it would delete it: choose a new folder")
    why = _ketasim_marker(out)
    if why is not None:
        raise OutputError(f"{option} {out}: folder exists and is not an earlier ketasim "
                          f"output ({why}); --force replaces only those: choose another "
                          "folder")


def check_output_file(path: Path, force: bool, option: str = "--out") -> None:
    """Fail before anything is written if ``path``, a single output file, is a folder,
    already exists (unless ``force``), or is a file of an earlier ketasim output folder
    (a run's stats.csv, say: never replaced by another command's output)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give a file name")
    if not path.exists():
        return
    if any((path.parent / m).is_file() for m in OUTPUT_MARKERS):
        raise OutputError(f"{option} {path}: is a file of the ketasim output folder "
                          f"{path.parent}; write it elsewhere")
    if not force:
        raise OutputError(f"{option} {path}: file exists; choose another name or pass "
                          "--force to replace it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first
        try:
            f.rmdir()
        except OSError:
            pass


@contextmanager
def atomic_dir(out: Path, overwrite: bool = False, option: str = "--out"):
    """Yield a temporary folder; on success it becomes ``out`` (errors name ``option``)."""
    out = Path(out)
    check_writable(out, overwrite, option)
    parent = out.resolve().parent
    created = []  # parents made for this run, removed again if it fails
    probe = parent
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        _remove_empty(created)
        raise OutputError(f"{option} {out}: cannot create a folder there ({e.strerror})") from e
    try:
        yield tmp
    except OSError as e:  # a full disk, a quota, a file system gone read-only
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise OutputError(f"{option} {out}: cannot write the results "
                          f"({e.strerror or e}); nothing was written") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
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
        raise OutputError(f"{option} {out}: cannot move results into place ({e})") from e
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


@contextmanager
def atomic_file(path: Path):
    """Yield a temporary file's path in ``path``'s folder; on success it is renamed to
    ``path`` (replacing an existing file only then), on any failure it is removed: a
    reader never finds a truncated or half-written file under the final name."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.absolute().parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


READOUT_SCHEMA = pa.schema([
    ("arm", pa.string()), ("subject", pa.int64()), ("assay", pa.string()),
    ("readout", pa.string()), ("time_h", pa.float64()), ("value", pa.float64()),
    ("unit", pa.string()),
])
# optional columns of the contract, kept (with their own types) when a layer provides them
OPTIONAL_COLUMNS = ("region", "cell", "branch")


#: rows per Parquet row group of readouts.parquet (Arrow's default for write_table)
ROW_GROUP_ROWS = 1024 * 1024


def write_readouts(df: pd.DataFrame, path: Path) -> None:
    """Parquet with a fixed schema and no pandas index, so equal tables give equal bytes.

    The required contract columns come first; optional ones (region, cell, branch) are
    kept when present; any other column is an error (it would silently vanish)."""
    extra = [c for c in df.columns if c not in READOUT_SCHEMA.names]
    unknown = [c for c in extra if c not in OPTIONAL_COLUMNS]
    if unknown:
        raise ValueError(f"readouts: unexpected columns {unknown}; the contract allows "
                         f"{READOUT_SCHEMA.names} plus {list(OPTIONAL_COLUMNS)}")
    present = [c for c in OPTIONAL_COLUMNS if c in extra]
    inferred = pa.Schema.from_pandas(df[present], preserve_index=False) if present else []
    schema = pa.schema(list(READOUT_SCHEMA) + list(inferred))
    with atomic_file(path) as tmp:  # a failing row group leaves no truncated file
        if len(df) == 0:
            table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
            pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd")
            return
        # converted and written one row group at a time (Arrow's default size, so the
        # bytes are those of one write_table call): a 100,000-patient trial's readouts
        # need no second whole copy in Arrow (about 200 MB at 2.1 million rows)
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for start in range(0, len(df), ROW_GROUP_ROWS):
                part = df.iloc[start:start + ROW_GROUP_ROWS]
                table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
                writer.write_table(table.replace_schema_metadata(None),
                                   row_group_size=ROW_GROUP_ROWS)


def read_readouts(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _finite(obj):
    """``obj`` with every non-finite float (NaN, infinities) as None, recursively: JSON has
    no such numbers (``json.dumps`` writes ``NaN`` and ``Infinity``, which strict parsers
    refuse)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj, *, sort_keys: bool = True) -> str:
    """Strict JSON text of a manifest (indented; NaN and infinities as null; anything
    else not JSON as its string)."""
    return json.dumps(_finite(obj), indent=2, sort_keys=sort_keys, default=str,
                      allow_nan=False) + "\n"


def write_json(obj, path: Path) -> None:
    """Strict JSON (:func:`json_text`: indented, keys sorted, non-finite numbers as null),
    written atomically (:func:`write_text`)."""
    write_text(json_text(obj), path)


def write_text(text: str, path: Path) -> None:
    """``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`): unlike
    ``Path.write_text``, which truncates the file first, a failure keeps the previous
    file."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
