"""``ketasim analyze``: a lab's files in, the files of ``ketasim run`` out.

The output folder holds ``readouts.parquet`` (the run contract; ``arm`` is the design's
group, ``subject`` the subject's index in the design), ``subjects.csv`` (index -> the
lab's id), ``summary.csv``, ``stats.csv`` (the design's comparisons), ``manifest.json``
(the design text, the kind, and every input file's SHA-256) and ``report.html`` with
figures. It is written atomically: bad input writes nothing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd

import ketasim
from ketasim.analysis.stats import NESTED_SUFFIX, compare, summarize
from ketasim.analyze.design import load_design, read_design_text
from ketasim.analyze.kinds import check_comparisons, read_lab_data
from ketasim.io.results import (
    OutputError,
    atomic_dir,
    check_writable,
    write_json,
    write_readouts,
)
from ketasim.params import load_registry
from ketasim.provenance import collect, utc_now
from ketasim.report.html import write_report

#: what the report says about the tests, so a reader knows which rows are which
TESTS_NOTE = (
    "Tests: welch_t, student_t, mann_whitney, anova and kruskal treat each row of the "
    "readout as independent: per animal (or per session) for the assays without "
    f"'{NESTED_SUFFIX}', which is how most papers test. mixed_lm fits value ~ group with a "
    "random intercept per subject (statsmodels MixedLM, REML) to the nested rows "
    f"(assays ending '{NESTED_SUFFIX}': branches or segments within animals, cells within "
    "sessions), so that units within one animal are not counted as independent animals.")


def _files(paths: list[Path]) -> list[Path]:
    """Every file under the inputs (a folder's files, sorted), for the manifest's hashes."""
    out = []
    for p in paths:
        out += sorted(f for f in Path(p).rglob("*") if f.is_file()) if Path(p).is_dir() else [p]
    return out


def _subjects_without_data(design, data) -> list[str]:
    """A note per group naming the design's subjects that no row of these files is for
    (a missing file or a subject left out of a table shrinks that group's n)."""
    seen = data.readouts[["arm", "subject"]].drop_duplicates()
    have = set(data.subjects.merge(seen, on=["arm", "subject"])["subject_id"].astype(str))
    notes = []
    for group, members in design.design.groups.items():
        missing = [m for m in members if str(m) not in have]
        if missing:
            notes.append(f"group {group!r}: no data for {len(missing)} of its "
                         f"{len(members)} subjects ({', '.join(map(str, missing))}); its n "
                         "counts the others")
    return notes


def _check_not_an_input(out: Path, paths: list[Path]) -> None:
    """``out`` may be neither an input nor a folder holding one: written (with --force,
    replaced) after the inputs are read, it would delete them. (An --out that is a file
    is refused by check_writable: not a folder.)"""
    if out.exists() and not out.is_dir():
        return
    target = out.resolve()
    for p in paths:
        q = Path(p).resolve()
        if q == target or target in q.parents:
            what = "is the input" if q == target else "holds the input"
            raise OutputError(f"--out {out}: {what} {p}; writing the results there would "
                              "delete it: choose another folder")


def analyze(kind: str, paths: list[str | Path], design_path: str | Path, out: str | Path,
            overwrite: bool = False) -> Path:
    """Analyse a lab's files of ``kind`` under the design file; write the run folder."""
    started = utc_now()
    t0 = time.perf_counter()
    out = Path(out)
    paths = [Path(p) for p in paths]
    _check_not_an_input(out, [Path(design_path), *paths])
    check_writable(out, overwrite)
    design = load_design(design_path)
    data = read_lab_data(kind, paths, design)
    readouts = data.readouts
    comparisons, indices, left_out = check_comparisons(readouts, design)
    no_data = _subjects_without_data(design, data)
    data.notes = [*data.notes, *left_out, *no_data]
    summary = summarize(readouts)
    # each row keeps its index in the design (what power RUN_DIR --compare I names)
    stats = compare(readouts, comparisons).assign(comparison=indices)
    text = read_design_text(design_path)  # as loaded (UTF-8)
    registry = load_registry()
    man = collect(registry=registry, started=started,
                  inputs=[Path(design_path), *_files(paths)]) | {
        "ketasim_version": ketasim.__version__, "command": "analyze", "kind": kind,
        "design": design.design.name, "design_text": text,
        "species": design.design.species, "seed": None,
        # the design file's SHA-256 (analyze has no scenario; the header shows it)
        "scenario_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "groups": {g: len(s) for g, s in design.design.groups.items()},
        "timings_s": {"total": time.perf_counter() - t0}, "notes": [*data.notes, TESTS_NOTE],
        "left_out": left_out,  # the design's comparisons these data cannot answer
        "no_data": no_data,  # the design's subjects these files have no value for
        "tables": list(data.tables)}
    with atomic_dir(out, overwrite) as tmp:
        write_readouts(readouts, tmp / "readouts.parquet")
        data.subjects.to_csv(tmp / "subjects.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        stats.to_csv(tmp / "stats.csv", index=False)
        for name, table in data.tables.items():
            table.to_csv(tmp / name, index=False)
        write_json(man, tmp / "manifest.json")
        # one sentence per note (the notes are clauses without a closing full stop)
        description = " ".join(n.strip().rstrip(".") + "." for n in (
            design.design.description or f"{kind} data", *data.notes, TESTS_NOTE))
        write_report(tmp, f"ketasim analyze {kind}: {design.design.name}", description,
                     readouts, summary, stats, man, data.kept)
    return out


def read_subjects(run_dir: str | Path) -> pd.DataFrame:
    """The ``subjects.csv`` of an analyze folder (arm, subject index, the lab's id)."""
    return pd.read_csv(Path(run_dir) / "subjects.csv", dtype={"subject_id": str})
