"""Spine assays, measured as a lab measures them.

- ``two_photon_spines``: repeated in vivo sessions of ``branches`` branches per animal.
  A spine is seen if its head volume is above ``detection_um3`` and it is not missed
  (``miss``); spurious puncta appear at ``false_pos_per_100um`` per session; positions
  carry ``jitter_um`` of registration error. The observed tracking table (kept in the
  run) gives density per 10 um per session and formation/elimination % between
  consecutive sessions (``ketasim.analysis.spines`` statistics on the observed table).
- ``uncaging_spinogenesis``: acute slices at each time; ``cells`` cells per animal,
  ``attempts`` glutamate-uncaging attempts per cell, each a Bernoulli trial with the
  plasticity potential (F-W-5): the readout is each animal's success fraction.
- ``fixed_tissue_spines``: one time per animal, ``branches`` branches: density, the
  fraction of each morphology class among detected spines (NaN for an animal with none
  detected), and the density of spines carrying a synapse (PSD95-positive in a co-stain).

The spine assays take ``cell``: the cell type whose spine parameter set (``spine.<cell>.*``
in the registry) the arm's spines follow, one of the region's (``ketasim.core.regions.
REGION_CELLS``: ``mpfc_l5`` or ``ca1`` in the mPFC, ``msn_d1`` or ``msn_d2`` in the
striatum; left out, the region's first); all spine assays of an arm's region image the
same population.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.analysis.spines import subject_readouts
from ketasim.core.assay import RODENTS, Assay, AssayContext, AssayRows, Readout

CLASSES = ("mushroom", "thin", "stubby", "filopodium")


def observed_tracking(ctx: AssayContext, at: np.ndarray) -> pd.DataFrame:
    """The tracking table a two-photon lab would score (one row per seen spine; a branch
    imaged with nothing seen has no row here, see ``_empty_branches``)."""
    rec = ctx.spines
    o = ctx.options
    nb = int(o["branches"])
    L = rec.branch_length_um
    idx = [int(np.flatnonzero(np.isclose(rec.times_h, t))[0]) for t in at]
    size = np.exp(rec.logsize)
    classes = np.array(["filopodium", "thin", "stubby", "mushroom"])[rec.classes()]
    frames = []
    for s in range(ctx.n):  # one stream per subject; vectorised over its spines
        g = ctx.rng(s)
        subject = str(int(ctx.subjects[s]))
        for j, r in enumerate(idx):
            alive = rec.alive[s, r, :nb].astype(bool)
            seen = alive & (size[s, r, :nb] >= o["detection_um3"]) & (
                g.random(alive.shape) >= o["miss"])
            b, k = np.nonzero(seen)
            pos = np.clip(rec.pos[s, r, b, k] + g.normal(0, o["jitter_um"], b.size), 0, L)
            part = pd.DataFrame({"subject": subject, "branch": b.astype(str),
                                 "spine_id": rec.sid[s, r, b, k].astype(str),
                                 "time_h": float(at[j]), "position_um": pos,
                                 "size": size[s, r, b, k], "class": classes[s, r, b, k]})
            n_fp = g.poisson(o["false_pos_per_100um"] * L / 100.0, nb)
            if n_fp.sum():
                fb = np.repeat(np.arange(nb), n_fp)
                part = pd.concat([part, pd.DataFrame({
                    "subject": subject, "branch": fb.astype(str),
                    "spine_id": [f"fp{j}_{i}" for i in range(fb.size)],
                    "time_h": float(at[j]), "position_um": g.random(fb.size) * L,
                    "size": o["detection_um3"], "class": "filopodium"})])
            frames.append(part)
    table = pd.concat(frames, ignore_index=True)
    table["arm"] = ctx.arm
    table["present"] = True
    table["branch_length_um"] = L
    return table


#: spine id of the placeholder rows that mark a branch imaged with nothing seen
EMPTY_BRANCH_ID = "none_seen"


def _empty_branches(ctx: AssayContext, table: pd.DataFrame, at: np.ndarray
                    ) -> pd.DataFrame:
    """A placeholder row (``present`` False, spine id ``EMPTY_BRANCH_ID``) for each imaged
    (subject, branch, session) without a row in ``table``, as a lab table marks a branch
    imaged with nothing seen: a tracking table counts a branch as imaged at a session
    only where it has a row, so without one an empty branch would drop out of the
    density mean and its lost spines out of the elimination %."""
    nb = int(ctx.options["branches"])
    times = np.asarray(at, float)
    cells = pd.DataFrame({
        "subject": np.repeat([str(int(x)) for x in ctx.subjects], nb * times.size),
        "branch": np.tile(np.repeat(np.arange(nb).astype(str), times.size), ctx.n),
        "time_h": np.tile(times, ctx.n * nb)})
    seen = table[["subject", "branch", "time_h"]].drop_duplicates()
    empty = cells.merge(seen, how="left", indicator=True)
    empty = empty[empty["_merge"] == "left_only"].drop(columns="_merge")
    rows = empty.assign(arm=ctx.arm, spine_id=EMPTY_BRANCH_ID, position_um=0.0,
                        present=False, branch_length_um=ctx.spines.branch_length_um,
                        size=np.nan, **{"class": np.nan})
    return rows[table.columns].reset_index(drop=True)


def _two_photon(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Per animal: density per 10 um at each session (mean over its branches), and
    formation/elimination % of the spines seen at the previous session (pooled over its
    branches), computed by ``ketasim.analysis.spines.subject_readouts`` exactly as for a
    lab's table (``ketasim analyze spines``). Every branch imaged at a session counts,
    also one on which no spine was seen (density 0 there; its spines seen at the
    previous session all count as lost); an animal with no spine seen at a session has
    density 0 there."""
    table = observed_tracking(ctx, at)
    ctx.keep("tracking", table)
    empty = _empty_branches(ctx, table, at)
    if len(empty):
        # kept apart from the seen spines ("tracking", what the spine maps draw) and
        # joined to them wherever a table is read (tracking_tables) or written
        # (spines_tracking.parquet), so that analysing it gives these readouts
        ctx.keep("empty_branches", empty)
        table = pd.concat([table, empty], ignore_index=True)
    long = subject_readouts(table)
    values = np.full((ctx.n, len(at), 3), np.nan)
    values[:, :, 0] = 0.0
    # place each (subject, time, readout) row by index lookups, not a loop per cell
    row = pd.Series(np.arange(ctx.n), index=[str(int(x)) for x in ctx.subjects])
    col = pd.Series(np.arange(len(at)), index=np.asarray(at, float))
    which = pd.Series(np.arange(3), index=list(TWO_PHOTON.readout_names))
    s = row.reindex(long["subject"].astype(str)).to_numpy()
    j = col.reindex(long["time_h"].astype(float)).to_numpy()
    c = which.reindex(long["readout"]).to_numpy()
    ok = ~(np.isnan(s) | np.isnan(j) | np.isnan(c))
    values[s[ok].astype(int), j[ok].astype(int), c[ok].astype(int)] = (
        long["value"].to_numpy(float)[ok])
    return ctx.rows(values, at, TWO_PHOTON.readout_names, TWO_PHOTON.units)


def _uncaging(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    pp = ctx.trajectory("plasticity_potential", at)  # (n, len(at))
    trials = int(ctx.options["cells"]) * int(ctx.options["attempts"])
    out = np.empty((ctx.n, len(at), 1))
    for s in range(ctx.n):
        g = ctx.rng(s)
        out[s, :, 0] = g.binomial(trials, np.clip(pp[s], 0.0, 1.0)) / trials
    return ctx.rows(out, at, UNCAGING.readout_names, UNCAGING.units)


def _fixed(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    rec = ctx.spines
    nb = int(ctx.options["branches"])
    size = np.exp(rec.logsize)
    cls = rec.classes()  # 0 filo, 1 thin, 2 stubby, 3 mushroom
    out = np.full((ctx.n, len(at), 7), np.nan)
    per_10um = 10.0 / (nb * rec.branch_length_um)
    for j, t in enumerate(at):
        r = int(np.flatnonzero(np.isclose(rec.times_h, t))[0])
        seen = rec.alive[:, r, :nb].astype(bool) & (size[:, r, :nb] >= ctx.options[
            "detection_um3"])
        n_seen = seen.sum(axis=(1, 2))
        out[:, j, 0] = n_seen * per_10um
        # each class's fraction of the detected spines: undefined (NaN) without any
        with np.errstate(invalid="ignore", divide="ignore"):
            for c, code in ((1, 3), (2, 1), (3, 2), (4, 0)):
                n_class = ((cls[:, r, :nb] == code) & seen).sum(axis=(1, 2))
                out[:, j, c] = np.where(n_seen > 0, n_class / n_seen, np.nan)
        # spines carrying a synapse (a PSD95 punctum in a co-stain)
        out[:, j, 5] = (seen & (rec.synapse[:, r, :nb] == 1)).sum(axis=(1, 2)) * per_10um
        # mushroom spines per length (the LID studies' measure, F-LID-4)
        out[:, j, 6] = ((cls[:, r, :nb] == 3) & seen).sum(axis=(1, 2)) * per_10um
    ctx.keep("spine_classes", _class_table(ctx, at, out))
    return ctx.rows(out, at, FIXED.readout_names, FIXED.units)


#: the morphology classes as :func:`_fixed` measures them (readout column of the fraction)
_CLASS_COLUMNS = (("mushroom", 1), ("thin", 2), ("stubby", 3), ("filopodium", 4))


def _class_table(ctx: AssayContext, at: np.ndarray, out: np.ndarray) -> pd.DataFrame:
    """Per animal and time, each class's fraction of the detected spines and its density
    per 10 um, with the imaged cell type (the report's spine-class figure)."""
    n, nt = out.shape[:2]
    rows = {"arm": ctx.arm, "cell": str(ctx.options["cell"]),
            "subject": np.repeat(np.asarray(ctx.subjects, np.int64), nt * 4),
            "time_h": np.tile(np.repeat(np.asarray(at, float), 4), n),
            "class": np.tile([c for c, _ in _CLASS_COLUMNS], n * nt)}
    frac = out[:, :, [k for _, k in _CLASS_COLUMNS]]  # (n, nt, 4)
    rows["fraction"] = frac.reshape(-1)
    # no detected spine: every class's density is 0 (its fraction is NaN)
    dens = out[:, :, :1]
    rows["density_per_10um"] = np.where(dens == 0.0, 0.0, frac * dens).reshape(-1)
    return pd.DataFrame(rows)


def _concat_classes(kept: list[dict]) -> dict:
    tables = [k["spine_classes"] for k in kept if "spine_classes" in k]
    return {"spine_classes": pd.concat(tables, ignore_index=True)} if tables else {}


def tracking_tables(kept: dict) -> dict[str, pd.DataFrame]:
    """Arm -> observed tracking table, from a run's kept data (assay -> arm -> dict), with
    a ``present=False`` placeholder row for each imaged branch and session where no spine
    was seen (as a lab's table has; the readouts count such a branch as imaged)."""
    return {arm: (pd.concat([k["tracking"], k["empty_branches"]], ignore_index=True)
                  if len(k.get("empty_branches", ())) else k["tracking"])
            for arm, k in kept.get("two_photon_spines", {}).items() if "tracking" in k}


def _concat_tracking(kept: list[dict]) -> dict:
    out = {}
    for key in ("tracking", "empty_branches"):
        tables = [k[key] for k in kept if key in k]
        if tables:
            out[key] = pd.concat(tables, ignore_index=True)
    return out


def _write_tracking(kept: dict, path) -> None:
    """``spines_tracking.parquet``: the observed tracking tables of every arm, with a
    ``present`` False row for each imaged branch and session with nothing seen (see
    ``_empty_branches``)."""
    tables = [t for k in kept.values() for t in (k["tracking"], k.get("empty_branches"))
              if t is not None]
    pd.concat(tables, ignore_index=True).to_parquet(path, index=False)


# what the turnover readouts mean (report captions)
_INTERVAL = ("spines {} since the previous session, as % of those seen then; drawn at "
             "the interval's end, so intervals of different lengths differ for that alone")

TWO_PHOTON = Assay(
    "two_photon_spines", "in vivo two-photon imaging of spines",
    (Readout("spine_density_per_10um", "per 10 um"),
     Readout("formation_pct", "%", _INTERVAL.format("new")),
     Readout("elimination_pct", "%", _INTERVAL.format("lost"))), _two_photon,
    options={"branches": 4, "detection_um3": 0.01, "miss": 0.02, "false_pos_per_100um": 0.5,
             "jitter_um": 0.2, "cell": "mpfc_l5", "session_min": 0.0},
    positive=("branches", "detection_um3"), fractions=("miss",), reads=("spines",),
    images_in_vivo=True,
    figures=("ketasim.report.spine_maps:tracking_figures",),
    artifacts={"spines_tracking.parquet": _write_tracking}, merge_kept=_concat_tracking,
    species=RODENTS)
UNCAGING = Assay(
    "uncaging_spinogenesis", "glutamate-uncaging spinogenesis in acute slices",
    (Readout("uncaging_success", "fraction"),), _uncaging, outputs=("plasticity_potential",),
    options={"cells": 3, "attempts": 8}, positive=("cells", "attempts"), terminal=True,
    species=RODENTS)
FIXED = Assay(
    "fixed_tissue_spines", "Golgi or dye-filled fixed tissue",
    (Readout("spine_density_per_10um", "per 10 um"), Readout("mushroom_fraction", "fraction"),
     Readout("thin_fraction", "fraction"), Readout("stubby_fraction", "fraction"),
     Readout("filopodium_fraction", "fraction"),
     Readout("synaptic_spine_density_per_10um", "per 10 um"),
     Readout("mushroom_density_per_10um", "per 10 um")), _fixed,
    options={"branches": 10, "detection_um3": 0.01, "cell": "mpfc_l5"},
    positive=("branches", "detection_um3"), reads=("spines",), regions=("mpfc", "striatum"),
    figures=("ketasim.report.spine_maps:spine_class_figures",), merge_kept=_concat_classes,
    terminal=True,
    species=RODENTS)
