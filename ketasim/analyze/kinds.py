"""What ``ketasim analyze`` reads, per kind, and the readouts it makes of it.

Every kind turns a lab's files into the readouts table of ``ketasim run`` (columns
``arm, subject, assay, readout, time_h, value, unit``; ``arm`` is the design's group,
``subject`` the subject's index in the design, with the lab's ids kept apart), computed
by the same :mod:`ketasim.analysis` functions that score simulated measurements, under
the simulated assays' names, so a lab's numbers and a replica's are compared readout
for readout. Nested rows (branches within animals, cells within sessions) go into an
assay of their own, ``<assay>_nested``, with a ``branch`` or ``cell`` column, for mixed
models. A subject is the design's wherever its rows come from: the table's id, or
``<arm>-<id>`` where the table's ``arm`` column makes ids unique only within an arm
(:func:`arm_subject_id`); so tables split by arm may repeat ids, and a file whose
``files`` entry names a subject must hold that subject's rows only. A readout's time
within the tracking table's tolerance (1e-6 h) of a time the design names is set to it
(:func:`snap_to_design_times`).

- ``spines``: spine tracking tables (``docs/spine_tracking_table.md``; times in the
  table): per animal and session density per 10 um, formation and elimination %
  (assay ``two_photon_spines``); per branch the same (nested). An animal's branches
  may be split over several tables (one per branch, say; each branch in one table
  only): its readouts pool all its branches, as one table would. Or one folder of
  per-segment count and turnover tables (``ketasim.analysis.segments``, the deposited
  layout of ``docs/phoumthipphavong2016.md``): the same readouts per mouse and per
  segment, and the authors' normalisations in ``segment_statistics.csv``.
- ``calcium``: dF/F files (``.csv``, ``.parquet``, ``.npy``; cells x frames), NWB files
  (``.nwb``: the ``ophys`` module's DfOverF, or its raw Fluorescence turned into dF/F as
  a suite2p folder is; :func:`ketasim.io.nwb.read_nwb_dff`; option ``series`` names the
  series where the file holds several) or suite2p folders, one
  session each (subject and session from the design's ``files``): the
  ``calcium_imaging`` readouts (transient rate, synchronous events, ...) per session;
  each cell's transient rate (nested).
- ``behavior``: tail suspension bout tables (or per-frame scoring: time_s, immobile),
  sucrose intake sheets (g or mL), learned-helplessness trial tables, fear extinction
  freezing (per trial, or per frame with the tones laid out as the simulated session's
  unless the design's options ``tone_s``, ``iti_s``, ``trials`` say otherwise; option ``last``) and open-field tracks, as a table in cm or as
  a single-animal DeepLabCut pose file (options ``frame_rate_hz`` and ``px_per_cm``;
  ``bodypart``, default the only one or the centroid of all; ``likelihood_min``, default
  DeepLabCut's 0.6) (the kind of table is told by its columns; the session time, and a
  DeepLabCut file's subject, from the design's ``files``): the simulated assays'
  readouts per animal. A sucrose sheet with a ``day`` column gives each animal the mean
  of its days' preferences (one value per animal, so a test's n counts animals, not
  days). The open-field ``distance_cm`` is, as the simulated ``open_field`` readout, the
  distance in one window of the assay's ``bin_min`` (5 min) from the start of each
  animal's track (its first sample); option ``bin_s`` sets the window (s); a track
  shorter than the window gives the distance over what it covers, and an animal never
  tracked in the window gets NaN, left out of the group tests (notes say which). An NWB
  file (``.nwb``) is read as an open-field track: its ``Position`` SpatialSeries
  (``bodypart`` names it where there are several; positions in m, cm, mm, or pixels
  with ``px_per_cm``).
- ``nwb``: NWB files as ``ketasim run --nwb`` writes them (and files laid out by the same
  conventions): their readouts, with each file's subject (``<arm>-<subject>``; a lab
  file's ``Subject.subject_id`` as it is, e.g. ``cageA-1``, a bare number ``all-<n>``) in
  the design's group; a simulated run's NWB gives back the run's statistics. A folder
  counts as its ``.nwb`` files (a file given also through its folder is an error); one
  subject's session (and assay) in two files, one readout in two units, or files
  without any readouts are one error each.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis import behavior as beh
from ketasim.analysis import segments as sg
from ketasim.analysis._tables import file_kind, read_frame
from ketasim.analysis.calcium import (
    FRAME_SPACING_RTOL,
    CalciumDataError,
    read_dff,
    summarize_session,
)
from ketasim.analysis.spines import branch_readouts, subject_readouts
from ketasim.analysis.stats import NESTED_SUFFIX, TIME_TOL_H, comparison_groups
from ketasim.analysis.suite2p import summarize_suite2p
from ketasim.analysis.tracking import TIME_TOL_H as SESSION_TOL_H
from ketasim.analysis.tracking import TrackingTableError, read_tracking_table
from ketasim.analyze.design import DesignError, ResolvedDesign
from ketasim.behavior.assays import (
    EXTINCTION,
    KEEP_TRACK_SESSIONS,
    KEEP_TRACK_SUBJECTS,
    OPEN_FIELD,
)
from ketasim.experiment.assays import ASSAYS
from ketasim.io.nwb import NWBDataError

KINDS = ("spines", "calcium", "behavior", "nwb")
#: the simulated calcium assay's readouts and the session summary's names for them
CALCIUM_READOUTS = (("calcium_transient_rate_per_min", "transient_rate_per_min", "per min"),
                    ("sync_event_rate_per_min", "sync_event_rate_per_min", "per min"),
                    ("sync_fraction_per_event", "sync_fraction_per_event", "fraction"),
                    ("mean_pairwise_r", "mean_pairwise_r", "1"),
                    ("correlated_pair_fraction", "correlated_pair_fraction", "fraction"))
LAB_ERRORS = (DesignError, TrackingTableError, CalciumDataError, beh.BehaviorDataError,
              NWBDataError, sg.SegmentDataError)


@dataclass
class LabData:
    """What a kind made of the files: readouts (contract columns; optional ``branch`` or
    ``cell``), the lab's subject ids, notes for the report, and further tables to write
    (file name -> table)."""

    readouts: pd.DataFrame
    subjects: pd.DataFrame  # arm, subject (index), subject_id (the lab's)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: what the report's assay figures draw, as a run keeps it: assay -> group -> dict
    #: (open-field paths: ``{"open_field": {group: {"tracks": table}}}``)
    kept: dict[str, dict[str, dict]] = field(default_factory=dict)


def _subjects(design: ResolvedDesign) -> pd.DataFrame:
    rows = [(design.group_of[s], i, s) for s, i in design.index_of.items()]
    return pd.DataFrame(rows, columns=["arm", "subject", "subject_id"])


def arm_subject_id(arm: pd.Series, subject: pd.Series) -> pd.Series:
    """``<arm>-<subject>``, the arm's runs of other characters than letters and digits
    written as one '-': how a design names a subject whose id is unique only within its
    arm (ketasim's own tracking tables number subjects from 0 in every arm; NWB files
    from ``ketasim run --nwb`` carry this id)."""
    return (arm.astype(str).str.replace(r"[^A-Za-z0-9]+", "-", regex=True) + "-"
            + subject.astype(str))


def _resolve(df: pd.DataFrame, design: ResolvedDesign, where: str) -> pd.Series:
    """The design's subject id of each row (a subject of its groups): the lab's id, or,
    where a table has an ``arm`` column, ``<arm>-<id>`` (:func:`arm_subject_id`) for a
    subject the design does not name by its id alone (ids unique only within an arm). A
    subject in no group, and a table whose own ``arm`` disagrees with the design, are
    errors naming ``where``."""
    ids = df["subject"].astype(str)
    by_arm = pd.Series(False, index=df.index)  # named <arm>-<id> in the design
    if "arm" in df.columns:
        qualified = arm_subject_id(df["arm"], ids)
        by_arm = ids.map(design.group_of).isna() & qualified.map(design.group_of).notna()
        ids = ids.where(~by_arm, qualified)
    groups = ids.map(design.group_of)
    missing = ids[groups.isna()]
    if len(missing):
        raise DesignError(f"{where}: subject {missing.iloc[0]!r} is in no group of the design "
                          f"{design.where}")
    if "arm" in df.columns:
        own = df["arm"].astype(str)
        bad = (own != groups) & (own != "all") & ~by_arm
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DesignError(f"{where}: subject {ids.iloc[i]!r} is in arm {own.iloc[i]!r} in "
                              f"the table but in group {groups.iloc[i]!r} in the design")
    return ids


def _assign(df: pd.DataFrame, design: ResolvedDesign, where: str) -> pd.DataFrame:
    """Replace the lab's subject ids by the design's groups and indices (the ids resolved
    as :func:`_resolve` does: the lab's id, or ``<arm>-<id>``)."""
    ids = _resolve(df, design, where)
    out = df.copy()
    out["arm"] = ids.map(design.group_of).to_numpy()
    out["subject"] = ids.map(design.index_of).astype(np.int64).to_numpy()
    return out


def _is_segment_folder(path: Path) -> bool:
    return Path(path).is_dir() and any(Path(path).glob("segments.*"))


def _interval_start_counts(turnover: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """``turnover`` with ``n_start``: the segment's spine count at the interval's start,
    the last session before ``day_end`` with a count (where the segment was not imaged on
    the nominal ``day_start``, its rate is of that earlier count; the deposit's README,
    note 4); NaN where the segment has none."""
    counts = (segments.loc[segments["spine_count"].notna(),
                           [*sg.SEGMENT_KEY, "day", "spine_count"]]
              .sort_values("day", kind="stable"))
    t = turnover.reset_index(drop=True)
    t["_row"] = np.arange(len(t))
    m = pd.merge_asof(t.sort_values("day_end", kind="stable"),
                      counts.rename(columns={"day": "day_end", "spine_count": "n_start"}),
                      on="day_end", by=sg.SEGMENT_KEY, allow_exact_matches=False)
    return m.sort_values("_row").drop(columns="_row").set_index(t.index)


def _per_mouse_segments(nested: pd.DataFrame, n_start: pd.Series | None) -> pd.DataFrame:
    """Per-mouse readouts of per-segment rows, defined as the simulator's are
    (:func:`ketasim.analysis.spines.subject_readouts`): density the mean over the mouse's
    segments; formation and elimination % of the spines pooled over its segments (the
    segments' rates weighted by their counts at the interval's start; segments with no
    start count are left out, and a mouse with none keeps the plain mean)."""
    key = ["arm", "subject", "time_h", "readout", "unit"]
    plain = nested.groupby(key, sort=True)["value"].mean()
    if n_start is not None:
        rate = nested["readout"].isin(("formation_pct", "elimination_pct")).to_numpy()
        w = n_start.to_numpy(float)
        ok = rate & np.isfinite(w) & (w > 0)
        part = nested.loc[ok, key].assign(wv=nested.loc[ok, "value"] * w[ok], w=w[ok])
        sums = part.groupby(key, sort=True)[["wv", "w"]].sum()
        pooled = sums["wv"] / sums["w"]
        plain.loc[pooled.index] = pooled
    return plain.reset_index().assign(assay="two_photon_spines")


def _segments(paths: list[Path], design: ResolvedDesign) -> LabData:
    """Folders of per-segment tables (``ketasim.analysis.segments``: segments, and
    optionally turnover, persistence and mice; the deposited Phoumthipphavong et al.
    2016 layout). A mouse is ``<group>-<mouse>`` in the design (a label may recur across
    groups). Readouts per mouse (as the simulator's: density the mean over its included
    segments, formation and elimination pooled over their spines) and per segment
    (nested); ``segment_statistics.csv`` holds the authors' normalisations (density change
    from the mouse's first day, turnover change from its first interval, persistence),
    and a folder with all four tables and the groups saline and ketamine also gets the
    deposited dataset's checks (``checks.csv``)."""
    if len(paths) != 1:
        raise DesignError("spines: give one folder of per-segment tables")
    folder = paths[0]
    ds = sg.read_dataset(folder)
    seg = ds.segments[ds.segments["included"]]
    rows = [seg.assign(time_h=seg["day"] * 24.0, readout="spine_density_per_10um",
                       value=seg["density_per_um"].astype(float) * 10.0, unit="per 10 um")]
    if ds.turnover is not None:
        tt = _interval_start_counts(ds.turnover[ds.turnover["included"]], seg)
        for col in ("formation_pct", "elimination_pct"):
            rows.append(tt.assign(time_h=tt["day_end"] * 24.0, readout=col,
                                  value=tt[col].astype(float), unit="%"))
    long = pd.concat(rows, ignore_index=True)
    long = long[np.isfinite(long["value"])]
    long = long.assign(subject=long["group"].astype(str) + "-" + long["mouse"].astype(str),
                       arm=long["group"].astype(str),
                       branch=long["segment"].astype(str))
    keep = ["arm", "subject", "branch", "time_h", "readout", "value", "unit"]
    nested = _assign(long[keep], design, str(folder))
    n0 = long.loc[nested.index, "n_start"] if "n_start" in long else None
    per_mouse = _per_mouse_segments(nested, n0)
    readouts = pd.concat([per_mouse, nested.assign(assay="two_photon_spines_nested")],
                         ignore_index=True)
    readouts["branch"] = readouts["branch"].astype("string")
    stats = [sg.density_change_summary(ds.segments, segment_set=st).assign(
        statistic="density_change_pct", segment_set=st) for st in ("included", "long_term")]
    if ds.turnover is not None:
        stats += [sg.turnover_change_summary(ds.turnover, segment_set=st).assign(
            statistic="turnover_change_points", segment_set=st)
            for st in ("included", "long_term")]
    if ds.persistence is not None:
        stats.append(sg.persistence_summary(ds.persistence).assign(
            statistic="persistence_pct", segment_set="cohort"))
    tables = {"segment_statistics.csv": pd.concat(stats, ignore_index=True)}
    notes = [("two_photon_spines: per mouse (density the mean of its included segments, "
              "formation and elimination % of its segments' spines pooled); "
             "two_photon_spines_nested: per segment; segment_statistics.csv: the authors' "
             "normalisations over segments")]
    full = all(x is not None for x in (ds.turnover, ds.persistence, ds.mice))
    if full and set(seg["group"].astype(str)) == {"saline", "ketamine"}:
        checks = sg.deposited_checks(folder)
        checks["values"] = checks["values"].map(lambda v: " / ".join(f"{x:.6g}" for x in v))
        tables["checks.csv"] = checks
        notes.append("checks.csv: the deposited Phoumthipphavong et al. 2016 checks (C1-C14)")
    return LabData(readouts, _subjects(design), notes, tables)


def _tables_together(tables: list[pd.DataFrame], paths: list[Path]) -> pd.DataFrame:
    """Several validated tracking tables (subjects already the design's) as one, read as
    one table is: session times of different tables within the format's tolerance are
    one session (an animal's branches in two tables, imaged together, are one session of
    the animal)."""
    try:
        return read_tracking_table(pd.concat(tables, ignore_index=True))
    except TrackingTableError as e:  # each table passed alone: name them all
        names = ", ".join(str(p) for p in paths[:3]) + (
            f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        what = str(e).split(": ", 1)[-1]  # without '<DataFrame>, column ..., row ...'
        raise TrackingTableError(f"the tables {names} read together (rows counted over "
                                 f"them in order): {what}") from None


def _tracking(paths: list[Path], design: ResolvedDesign) -> LabData:
    if any(_is_segment_folder(p) for p in paths):
        return _segments(paths, design)
    for p in paths:
        if Path(p).is_dir():
            raise DesignError(
                f"{p}: a folder without a segments table; spines reads spine tracking "
                "tables (.csv, .csv.gz, .parquet or .pq files; docs/spine_tracking_table.md) "
                "or "
                "one folder of per-segment tables (segments.csv or .parquet, and "
                "optionally turnover, persistence and mice; docs/phoumthipphavong2016.md)")
    tables = []
    seen: dict[tuple[str, str], Path] = {}  # (the design's subject, branch) -> its table
    for path in paths:
        table = read_tracking_table(path)
        # each row under the design's subject and group, so that one animal's branches
        # are one animal whatever table (or arm column) they come from
        ids = _resolve(table, design, str(path))
        table = table.assign(subject=ids.to_numpy(),
                             arm=ids.map(design.group_of).to_numpy())
        for key in table[["subject", "branch"]].drop_duplicates().itertuples(index=False):
            k = (str(key.subject), str(key.branch))
            if k in seen:
                raise DesignError(f"{path}: subject {k[0]!r} branch {k[1]!r} is also in "
                                  f"{seen[k]}; give each branch's sessions in one table")
            seen[k] = path
        tables.append(table)
    table = tables[0] if len(tables) == 1 else _tables_together(tables, paths)
    # per-animal readouts of all the animal's branches, from whichever table they come
    s = _assign(subject_readouts(table), design, design.where)
    b = _assign(branch_readouts(table), design, design.where)
    readouts = pd.concat([s.assign(assay="two_photon_spines"),
                          b.assign(assay="two_photon_spines_nested")], ignore_index=True)
    readouts["branch"] = readouts["branch"].astype("string") if "branch" in readouts else None
    return LabData(readouts, _subjects(design),
                   [("two_photon_spines: per animal (its branches pooled); "
                    "two_photon_spines_nested: per branch (for mixed models)")])


def _calcium(paths: list[Path], design: ResolvedDesign) -> LabData:
    rate = design.design.options.get("frame_rate_hz")
    rows, cells = [], []
    seen: dict[tuple, Path] = {}
    for path in paths:
        subject, t = design.file_entry(path)
        if subject is None:
            raise DesignError(f"{design.where}: files: the entry for {str(path)!r} names no "
                              "subject (a dF/F file or suite2p folder is one subject's session)")
        _once(seen, [(subject, t, "calcium_imaging")], path)
        if Path(path).is_dir():  # a suite2p folder, streamed cell chunk by chunk
            s2p = summarize_suite2p(path, rng=np.random.default_rng(0))
            d = s2p.as_dict()
            per_cell = s2p.cells["transient_rate_per_min"].to_numpy(float)
        else:
            rec = (_nwb_dff(path, rate, design) if Path(path).suffix.lower() == ".nwb"
                   else read_dff(path, rate))
            sm = summarize_session(rec, rng=np.random.default_rng(0))
            d = sm.as_dict()
            tr = sm.transients
            minutes = tr.n_frames / tr.frame_rate_hz / 60.0
            per_cell = np.array([len(o) for o in tr.onset_frames], float) / minutes
        for name, key, unit in CALCIUM_READOUTS:
            rows.append((subject, t, name, float(d[key]), unit))
        cells.append(pd.DataFrame({"subject": subject, "time_h": t,
                                   "readout": "calcium_transient_rate_per_min",
                                   "value": per_cell, "unit": "per min",
                                   "cell": [str(c) for c in range(per_cell.size)]}))
    subj = pd.DataFrame(rows, columns=["subject", "time_h", "readout", "value", "unit"])
    subj = _assign(subj, design, design.where).assign(assay="calcium_imaging")
    nested = _assign(pd.concat(cells, ignore_index=True), design, design.where).assign(
        assay="calcium_imaging_nested")
    readouts = pd.concat([subj, nested], ignore_index=True)
    readouts["cell"] = readouts["cell"].astype("string")
    return LabData(readouts, _subjects(design),
                   [("calcium_imaging: per session; calcium_imaging_nested: each cell's "
                    "transient rate (for mixed models)")])


def _nwb_dff(path: Path, rate: float | None, design: ResolvedDesign):
    """One NWB file's dF/F (the design's option ``series`` names the series where the
    default does not find it); the design's ``frame_rate_hz``, where given, must be the
    file's (within the frame-spacing tolerance)."""
    from ketasim.io.nwb import read_nwb_dff  # pynwb's stack takes about a second to import

    series = design.design.options.get("series")
    if series is not None and not isinstance(series, str):
        raise DesignError(f"{design.where}: options.series: got {series!r}; expected the "
                          "name of a DfOverF or Fluorescence series")
    rec = read_nwb_dff(path, series)
    if rate is not None and abs(rec.frame_rate_hz - rate) > FRAME_SPACING_RTOL * rate:
        raise CalciumDataError(f"{path.name}: the file's frame rate is "
                               f"{rec.frame_rate_hz:.6g} Hz, the design's frame_rate_hz "
                               f"{rate:g}")
    return rec


#: behaviour tables told apart by their columns: name, required columns
_BEHAVIOUR_TABLES = (("tail_suspension", {"start_s", "end_s", "state"}),
                     ("sucrose_preference", {"sucrose_g", "water_g"}),
                     ("sucrose_preference", {"sucrose_ml", "water_ml"}),
                     ("escape_test", {"trial", "latency_s"}),
                     ("fear_extinction", {"trial", "freezing_pct"}),
                     ("fear_extinction", {"time_s", "freezing"}),
                     ("tail_suspension_frames", {"time_s", "immobile"}),
                     ("open_field", {"time_s", "x_cm", "y_cm"}))


def _behaviour_kind(path: Path) -> tuple[str, pd.DataFrame | None]:
    path = Path(path)
    if path.suffix.lower() == ".nwb":
        return "open_field_nwb", None  # a Position SpatialSeries (read_nwb_position)
    kind = file_kind(path, beh.BehaviorDataError)
    if kind == "csv" and beh.is_dlc_csv(path):
        return "open_field_dlc", None  # a DeepLabCut pose file: three header rows
    df, _ = read_frame(path, kind, beh.BehaviorDataError)
    cols = set(df.columns)
    for name, need in _BEHAVIOUR_TABLES:
        if need <= cols:
            return name, df
    raise beh.BehaviorDataError(
        f"{path}: cannot tell the test from the columns {sorted(cols)}; expected a tail "
        "suspension bout table (start_s, end_s, state) or per-frame scoring (time_s, "
        "immobile), a sucrose sheet (sucrose_g and "
        "water_g, or sucrose_ml and water_ml), "
        "a learned-helplessness trial table (trial, latency_s), a fear extinction freezing "
        "table (trial, freezing_pct; or per frame time_s, freezing), an open-field "
        "track (time_s, x_cm, y_cm) or a DeepLabCut pose file (first cell 'scorer')")


def _option(opts: dict, key: str, default, kind: type, low: float, where: str = ""):
    """A numeric design option (``options.<key>``), at least ``low``; one error naming it
    (and the design file ``where``) otherwise."""
    v = opts.get(key, default)
    if v is None:
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and (
        kind is float or float(v).is_integer())
    if not ok or v < low:
        what = "a whole number" if kind is int else "a number"
        raise DesignError(f"{where + ': ' if where else ''}options.{key}: got {v!r}; "
                          f"expected {what} >= {low:g}")
    return kind(v)


def _one_animal(path: Path, subject: str | None, where: str, what: str) -> str:
    if subject is None:
        raise DesignError(f"{where}: files: the entry for {str(path)!r} names no subject (a "
                          f"{what} is one animal's session)")
    return subject


def _nwb_track(path: Path, subject: str | None, opts: dict, where: str) -> pd.DataFrame:
    """An NWB file's Position track in cm (:func:`ketasim.io.nwb.read_nwb_position`; the
    design's ``bodypart`` names the SpatialSeries, ``px_per_cm`` converts pixels)."""
    from ketasim.io.nwb import read_nwb_position  # pynwb's stack takes about a second

    subject = _one_animal(path, subject, where, "NWB position file")
    part = _bodypart(opts, where)
    px = _option(opts, "px_per_cm", None, float, 1e-12, where)
    return read_nwb_position(path, part, px).assign(subject=subject)


def _bodypart(opts: dict, where: str) -> str | None:
    part = opts.get("bodypart")
    if part is not None and not isinstance(part, str):
        raise DesignError(f"{where}: options.bodypart: got {part!r}; expected a body part's "
                          f"(or an NWB SpatialSeries') name, or {beh.DLC_CENTROID!r}")
    return part


@contextmanager
def _named(path: Path):
    """Errors about a table derived from ``path`` (a track, bouts from frames) name the
    file, not ``<DataFrame>``."""
    try:
        yield
    except beh.BehaviorDataError as e:
        text = str(e)
        if text.startswith("<DataFrame>"):
            raise beh.BehaviorDataError(f"{Path(path).name} (as read)"
                                        + text.removeprefix("<DataFrame>")) from None
        raise


def _once(seen: dict[tuple, Path], keys, path: Path) -> None:
    """Each (subject, time, assay) from one file only, the subject as the design names
    it (:func:`_resolve`; ids repeating across arms are different animals): a second
    file with the same subject and session (DeepLabCut's ``..._filtered.csv`` beside its
    raw file, say) would count the animal twice."""
    for key in keys:
        if key in seen and seen[key] != Path(path):
            subject, t, assay = key
            raise DesignError(f"{path}: subject {subject!r} at {t:g} h ({assay}) is also "
                              f"in {seen[key]}; give each subject's session once")
        seen[key] = Path(path)


def _dlc_track(path: Path, subject: str | None, opts: dict, where: str) -> pd.DataFrame:
    """A DeepLabCut file's track in cm, with the design's ``frame_rate_hz`` and
    ``px_per_cm`` (required), ``bodypart`` and ``likelihood_min`` (optional)."""
    subject = _one_animal(path, subject, where, "DeepLabCut file")
    need = {k: _option(opts, k, None, float, 1e-12, where)
            for k in ("frame_rate_hz", "px_per_cm")}
    for k, v in need.items():
        if v is None:
            raise DesignError(f"{where}: options.{k}: required for the DeepLabCut file "
                              f"{str(path)!r} (frames per second; pixels per cm of the arena)")
    part = _bodypart(opts, where)
    pmin = _option(opts, "likelihood_min", beh.DLC_PCUTOFF, float, 0.0, where)
    if pmin > 1.0:
        raise DesignError(f"{where}: options.likelihood_min: got {pmin!r}; expected a "
                          "number in [0, 1]")
    return beh.read_dlc_track(path, frame_rate_hz=need["frame_rate_hz"],
                              px_per_cm=need["px_per_cm"], bodypart=part,
                              likelihood_min=pmin, subject=subject)


#: the open-field window (s) of ``ketasim analyze``: the simulated readout's bin
OPEN_FIELD_WINDOW_S = float(OPEN_FIELD.options["bin_min"]) * 60.0


def _open_field_window(scored: pd.DataFrame, window_s: float, t_h: float,
                       short: list[str], untracked: list[str]) -> pd.DataFrame:
    """Per subject, the distance in the first bin of :func:`open_field_locomotion`
    (scored with ``bin_s=window_s``): the window from its first sample, as the simulated
    ``open_field`` readout's bin. Subjects whose track is shorter than the window, or
    never tracked in it (NaN), are added to ``short`` and ``untracked``."""
    first = scored[scored["bin"] == 0].reset_index(drop=True)
    span = (first["bin_end_s"] - first["bin_start_s"]).to_numpy(float)
    for sj, sp in zip(first["subject"], span, strict=True):
        if sp < window_s - 1e-6:
            short.append(f"{sj} at {t_h:g} h ({sp:g} s)")
    for sj in first.loc[first["distance_cm"].isna(), "subject"]:
        untracked.append(f"{sj} at {t_h:g} h")
    return first[["arm", "subject", "distance_cm"]]


def _sucrose_per_animal(s: pd.DataFrame, days: list[int]) -> pd.DataFrame:
    """One preference per animal: with a ``day`` column, the mean of its days (the days
    of one animal are not independent animals)."""
    if "day" not in s.columns:
        return s
    days.append(int(s.groupby(["arm", "subject"], sort=False)["day"].size().max()))
    return s.groupby(["arm", "subject"], sort=False)["preference"].mean().reset_index()


def _behavior(paths: list[Path], design: ResolvedDesign) -> LabData:
    opts = design.design.options
    window_s = _option(opts, "bin_s", OPEN_FIELD_WINDOW_S, float, 1e-9, design.where)
    short: list[str] = []  # open-field tracks shorter than the window
    untracked: list[str] = []  # open-field animals never tracked in the window
    days: list[int] = []  # sucrose sheets with days: the most days of an animal
    parts = []
    seen: dict[tuple, Path] = {}
    tracks: dict[str, list[pd.DataFrame]] = {}  # group -> open-field paths to draw
    for path in paths:
        lab_subject, t = design.file_entry(path)
        name, table = _behaviour_kind(path)
        if name in ("open_field_dlc", "open_field_nwb"):
            track = (_dlc_track if name == "open_field_dlc" else _nwb_track)(
                path, lab_subject, opts, design.where)
            name = "open_field"
            with _named(path):
                s = beh.open_field_locomotion(track, bin_s=window_s)
            _keep_tracks(tracks, track, t, design, path)
            s = _open_field_window(s, window_s, t, short, untracked)
            vals = {"distance_cm": (s["distance_cm"], "cm")}
        elif name in ("tail_suspension", "tail_suspension_frames"):
            with _named(path):
                s = beh.score_tst(path if name == "tail_suspension"
                                  else beh.tst_bouts_from_frames(path))
            name = "tail_suspension"
            vals = {"tst_immobility_s": (s["immobility_s"], "s"),
                    "tst_immobile_bout_s": (s["mean_immobile_bout_s"], "s"),
                    "tst_struggle_bouts": (s["n_struggle_bouts"], "count")}
        elif name == "sucrose_preference":
            s = _sucrose_per_animal(beh.sucrose_preference(path), days)
            vals = {"sucrose_preference": (s["preference"], "fraction")}
        elif name == "escape_test":
            s = beh.learned_helplessness(
                path, cutoff_s=_option(opts, "cutoff_s", None, float, 1e-9, design.where))
            vals = {"escape_failure_fraction": (s["failure_pct"] / 100.0, "fraction")}
        elif name == "fear_extinction":  # the simulated session's layout by default
            ext = EXTINCTION.options
            s = beh.extinction_freezing(
                path, last=_option(opts, "last", ext["last"], int, 1, design.where),
                tone_s=_option(opts, "tone_s", ext["tone_s"], float, 1e-9,
                               design.where),
                iti_s=_option(opts, "iti_s", ext["iti_s"], float, 0.0, design.where),
                n_trials=_option(opts, "trials", None, int, 1, design.where))
            vals = {"extinction_freezing_fraction": (s["extinction_freezing_fraction"],
                                                     "fraction")}
        else:
            s = beh.open_field_locomotion(path, bin_s=window_s)
            _keep_tracks(tracks, table.assign(**{c: pd.to_numeric(table[c], errors="coerce")
                                                 for c in ("time_s", "x_cm", "y_cm")}),
                         t, design, path)
            s = _open_field_window(s, window_s, t, short, untracked)
            vals = {"distance_cm": (s["distance_cm"], "cm")}
        ids = _resolve(s, design, str(path))  # the design's subjects of the table's rows
        _entry_subject_is_the_tables(lab_subject, ids, path, design)
        _once(seen, [(sj, t, name) for sj in ids], path)
        for readout, (v, unit) in vals.items():
            part = s[["arm", "subject"]].assign(time_h=t, readout=readout,
                                                value=np.asarray(v, float), unit=unit)
            parts.append(_assign(part, design, str(path)).assign(assay=name))
    kept = {"open_field": {g: {"tracks": pd.concat(v, ignore_index=True)}
                           for g, v in tracks.items()}} if tracks else {}
    readouts = pd.concat(parts, ignore_index=True)
    notes = []
    if days:
        notes.append(f"sucrose_preference: each animal's mean over its days (column day, up "
                     f"to {max(days)} days), one value per animal")
    if (readouts["assay"] == "open_field").any():
        notes.append(f"open_field distance_cm: the distance in the first {window_s:g} s of "
                     "each track (from its first sample), the simulated readout's window"
                     + ("" if "bin_s" in opts else
                        f" (bin_min {OPEN_FIELD.options['bin_min']:g} min; options.bin_s "
                        "sets it)"))
    if short:
        notes.append(f"open_field: tracks shorter than the {window_s:g} s window, distance "
                     f"over what they cover: {', '.join(short)}")
    if untracked:
        notes.append("open_field: never tracked in the window, distance_cm NaN and left "
                     f"out of the group tests: {', '.join(untracked)}")
    return LabData(readouts, _subjects(design), notes, kept=kept)


def _entry_subject_is_the_tables(subject: str | None, ids: pd.Series, path: Path,
                                 design: ResolvedDesign) -> None:
    """A file whose ``files`` entry (or pattern) names a subject holds that subject's
    rows only: a table naming other subjects contradicts the design (a copy-paste slip
    in the entry, or the wrong file), which is one error naming the file."""
    if subject is None:
        return
    others = sorted(set(ids.astype(str)) - {subject})
    if others:
        shown = ", ".join(map(repr, others[:3])) + (
            f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise DesignError(f"{path}: the design {design.where} gives this file subject "
                          f"{subject!r} (files), but its subject column names {shown}; "
                          "correct the entry, or leave its subject out for a table that "
                          "names its subjects")


def _keep_tracks(tracks: dict[str, list], track: pd.DataFrame, t_h: float,
                 design: ResolvedDesign, path: Path) -> None:
    """Add a file's open-field paths (columns subject, time_s, x_cm, y_cm, and arm where
    the table has one) to what the report draws: the first animals and sessions of each
    group, as a run keeps them. Subjects are the design's (:func:`_resolve`: the lab's id,
    or ``<arm>-<id>``)."""
    named = track[[c for c in ("arm", "subject") if c in track.columns]]
    ids = _resolve(named.astype(str).apply(lambda c: c.str.strip()), design, str(path))
    for subject, g in track.groupby(ids, sort=False):
        group = design.group_of[subject]
        kept = tracks.get(group, [])
        shown = {str(p["subject"].iloc[0]) for p in kept}
        times = {float(p["time_h"].iloc[0]) for p in kept}
        if (subject not in shown and len(shown) >= KEEP_TRACK_SUBJECTS) or (
                t_h not in times and len(times) >= KEEP_TRACK_SESSIONS):
            continue
        label = next((k for k, h in design.session_h.items() if abs(h - t_h) < 1e-9), None)
        tracks.setdefault(group, []).append(pd.DataFrame({
            "subject": subject, "time_h": t_h, "t_s": g["time_s"].to_numpy(float),
            "x_cm": g["x_cm"].to_numpy(float), "y_cm": g["y_cm"].to_numpy(float),
            "session": label}))


def _nwb(paths: list[Path], design: ResolvedDesign) -> LabData:
    """NWB files laid out as ``ketasim run --nwb`` writes them (a ``ketasim`` processing
    module with a ``readouts`` table): the readouts as stored, each file's subject
    (``<arm>-<subject>``, its ``Subject.subject_id``) put in the design's group. Each
    subject's session (and assay) comes from one file only, each readout in one unit,
    and the files must hold some readouts."""
    from ketasim.io.nwb import read_nwb_by_file  # pynwb's stack takes about a second

    frames, empty = [], []
    seen: dict[tuple, Path] = {}
    units: dict[str, tuple[str, Path]] = {}  # readout -> (unit, the first file with it)
    for path, r in read_nwb_by_file(paths):
        if r is None or r.empty:
            empty.append(path)
            continue
        r = r.assign(subject=arm_subject_id(r["arm"], r["subject"]))
        keys = r[["subject", "time_h", "assay"]].drop_duplicates()
        _once(seen, [(s, float(t), a) for s, t, a in keys.itertuples(index=False)], path)
        for readout, unit in r[["readout", "unit"]].drop_duplicates().itertuples(index=False):
            first = units.setdefault(readout, (unit, path))
            if first[0] != unit:
                raise NWBDataError(
                    f"{path}: readout {readout!r} in unit {unit!r}, but in {first[0]!r} in "
                    f"{first[1]}; give each readout in one unit (values in different units "
                    "would be pooled)")
        frames.append(r.drop(columns=[c for c in ("arm", "run_row") if c in r.columns]))
    if not frames:
        names = ", ".join(p.name for p in empty[:3]) + (
            f" and {len(empty) - 3} more" if len(empty) > 3 else "")
        raise NWBDataError(f"{len(empty)} NWB file(s) ({names}): no readouts (every "
                           "processing/ketasim/readouts table is empty or absent); nothing "
                           "to analyse")
    r = pd.concat(frames, ignore_index=True)
    return LabData(_assign(r, design, "NWB files"), _subjects(design),
                   ["readouts as stored in the NWB files (subject ids <arm>-<subject>)"])


#: the design ``options`` each kind reads (any other is a typo, and an error)
KIND_OPTIONS = {"spines": (), "calcium": ("frame_rate_hz", "series"),
                "behavior": ("cutoff_s", "bin_s", "last", "tone_s", "iti_s", "trials",
                             "frame_rate_hz", "px_per_cm", "bodypart", "likelihood_min"),
                "nwb": ()}


def check_comparisons(readouts: pd.DataFrame, design: ResolvedDesign
                      ) -> tuple[list, list[int], list[str]]:
    """The comparisons of the design that these data can answer, their indices in the
    design, and notes. One design may serve several kinds of data, so a comparison of
    another kind's readout (one some assay measures) is left out (with a note for the
    console, the manifest and the report, not a row of NaN); a readout no assay measures
    (a typo), a group without values at ``at`` or ``baseline``, and a comparison the
    statistics refuse (:func:`~ketasim.analysis.stats.comparison_groups`: cells under a
    ``baseline``, rows in several regions, ...) are one error each naming the design
    file and ``compare[i]``."""
    here = list(dict.fromkeys(readouts["readout"].astype(str)))
    known = set(here).union(*(a.readout_names for a in ASSAYS.values()))
    notes, kept = [], []
    for i, c in enumerate(design.compare):
        if c.readout not in known:
            close = difflib.get_close_matches(c.readout, here, 3) or \
                difflib.get_close_matches(c.readout, sorted(known), 3)
            raise DesignError(
                f"{design.where}: compare[{i}].readout: got {c.readout!r}, which no assay "
                "measures" + (f" (did you mean {', '.join(map(repr, close))}?)" if close
                              else "") + f"; these data have: {', '.join(here)}")
        rows = readouts[readouts["readout"] == c.readout]
        if c.assay:
            base = c.assay.removesuffix(NESTED_SUFFIX)
            here_ = bool((rows["assay"] == c.assay).any())
            known_ = base in ASSAYS and c.readout in ASSAYS[base].readout_names
            if not here_ and not known_:  # a typo, not another kind's assay
                measured = sorted(set(rows["assay"].astype(str))) or sorted(
                    a.name for a in ASSAYS.values() if c.readout in a.readout_names)
                raise DesignError(
                    f"{design.where}: compare[{i}].assay: got {c.assay!r}, which does not "
                    f"measure {c.readout}; assays that do: {', '.join(measured) or 'none'}")
            rows = rows[rows["assay"] == c.assay]
        if rows.empty:
            notes.append(f"compare[{i}] ({c.readout}"
                         + (f" of {c.assay}" if c.assay else "")
                         + ") left out: not a readout of these data")
            continue
        kept.append(i)
        for key in ("at", "baseline"):
            when = getattr(c, key)
            if when is None:
                continue
            for group in c.arms:
                times = np.unique(rows.loc[rows["arm"] == group, "time_h"].to_numpy(float))
                if not np.any(np.abs(times - when) < TIME_TOL_H):
                    listed = ", ".join(f"{_hours(t)} h" for t in times) or "none"
                    raise DesignError(
                        f"{design.where}: compare[{i}].{key}: group {group!r} has no "
                        f"{c.readout} at {_hours(when)} h (its times: {listed})")
        try:  # what the statistics refuse (cells under a baseline, two rows per subject)
            comparison_groups(readouts, c, i)
        except ValueError as e:  # 'compare[i]: ...', i the design's index
            raise DesignError(f"{design.where}: {e}") from None
    return [design.compare[i] for i in kept], kept, notes


def _hours(t: float) -> str:
    """A time in hours as an error shows it: in full (12 significant digits), so that
    times within a tolerance of each other are told apart."""
    return f"{t:.12g}"


def snap_to_design_times(readouts: pd.DataFrame, design: ResolvedDesign) -> pd.DataFrame:
    """``readouts`` with each time within :data:`SESSION_TOL_H` (the tracking table's
    tolerance for one session) of a time the design names (a session, a comparison's
    ``at`` or ``baseline``) set to it, so that a table's ``24.0000001`` h is the design's
    ``1d`` session (the statistics match times within 1e-9 h). Two times of one
    subject's readout that become one is an error."""
    named = np.unique(np.array([*design.session_h.values(),
                                *(c.at for c in design.compare),
                                *(c.baseline for c in design.compare
                                  if c.baseline is not None)], float))
    t = readouts["time_h"].to_numpy(float)
    if named.size == 0 or t.size == 0:
        return readouts
    near = named[np.argmin(np.abs(t[:, None] - named[None, :]), axis=1)]
    move = (np.abs(t - near) <= SESSION_TOL_H) & (t != near)
    if not move.any():
        return readouts
    out = readouts.assign(time_h=np.where(move, near, t))
    key = [c for c in out.columns if c not in ("value", "unit")]
    merged = (out.duplicated(key, keep=False) & ~readouts.duplicated(key, keep=False)
              ).to_numpy()
    if merged.any():  # two sessions of one subject within the tolerance of one time
        first = out.loc[merged].iloc[0]
        same = merged & np.logical_and.reduce(
            [(out[c] == first[c]).to_numpy() for c in ("subject", "assay", "readout",
                                                        "time_h")])
        raw = np.unique(t[same])
        lab_id = {i: s for s, i in design.index_of.items()}[int(first["subject"])]
        raise DesignError(
            f"{design.where}: subject {lab_id!r} has {first['readout']} ({first['assay']}) "
            "at " + " and ".join(f"{_hours(x)} h" for x in raw) + f", each within "
            f"{SESSION_TOL_H:g} h of the design's {_hours(first['time_h'])} h: one session "
            "given two times")
    return out


def read_lab_data(kind: str, paths: list[Path], design: ResolvedDesign) -> LabData:
    """The readouts of ``kind`` from ``paths`` under ``design``, times the design names
    matched within the tracking table's tolerance (:func:`snap_to_design_times`); errors
    are one line naming the file and field (:data:`LAB_ERRORS`)."""
    if kind not in KINDS:
        raise DesignError(f"kind: got {kind!r}; expected one of {', '.join(KINDS)}")
    if not paths:
        raise DesignError("no input files")
    known = sorted({o for opts in KIND_OPTIONS.values() for o in opts})
    unknown = sorted(set(design.design.options) - set(known))
    if unknown:  # a typo; one design may serve several kinds, so any kind's option counts
        raise DesignError(f"{design.where}: options.{unknown[0]}: not a design option "
                          f"(the options: {', '.join(known)})")
    items = [(Path(p), Path(p)) for p in paths]  # (file, the path given for it)
    if kind == "nwb":  # a folder is its .nwb files: compare those, and read those
        from ketasim.io.nwb import nwb_files

        items = [(f, Path(p)) for p in paths for f in nwb_files(p)]
    given: dict[Path, Path] = {}
    for f, src in items:  # overlapping shell globs, or a folder and a file in it
        key = f.resolve()
        if key in given:
            how = " and ".join(f"in the folder {s}" if s.is_dir() else f"as {s}"
                               for s in (given[key], src))
            raise DesignError(f"{f}: given twice ({how}); give each file once")
        given[key] = src
    paths = [f for f, _ in items]
    reader = {"spines": _tracking, "calcium": _calcium, "behavior": _behavior,
              "nwb": _nwb}[kind]
    data = reader([Path(p) for p in paths], design)
    if data.readouts.empty:
        raise DesignError(f"{kind}: these files give no readouts; nothing to analyse")
    cols = ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
    extra = [c for c in ("region", "cell", "branch") if c in data.readouts.columns]
    data.readouts = snap_to_design_times(data.readouts[cols + extra], design).sort_values(
        ["assay", "arm", "subject", "readout", "time_h"], kind="stable").reset_index(drop=True)
    return data
