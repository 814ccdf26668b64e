"""Tail suspension figures: the ethogram (immobility and struggle bouts over the test,
one row per mouse) and the peri-struggle average of the vmPFC population dF/F (F-M-10),
from what the ``tail_suspension`` assay keeps for the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.behavior.assays import (
    KEEP_PERI_SUBJECTS,
    KEEP_TRACK_SESSIONS,
    KEEP_TRACK_SUBJECTS,
)
from ketasim.report._mpl import literal, subplots
from ketasim.report.spine_maps import session_label

ETHOGRAM_ROWS = 8  # mice per arm drawn in the ethogram
_IMMOBILE, _STRUGGLE = "0.3", "tab:orange"


def _times(tst: dict) -> list[float]:
    return sorted({float(t) for d in tst.values() for t in d["peri_dff"]})


def ethogram_figure(tst: dict, path: Path, rows: int = ETHOGRAM_ROWS) -> Path | None:
    """One panel per session time; in each, the first ``rows`` mice of every arm as
    horizontal bars, immobile bouts dark and struggle bouts orange."""
    times = _times(tst)
    if not times:
        return None
    arms = list(tst)
    n_rows = sum(min(rows, d["ethogram"]["subject"].nunique()) for d in tst.values())
    fig, axes = subplots(1, len(times), figsize=(4.4 * len(times), 0.9 + 0.2 * n_rows),
                             squeeze=False, sharey=True)
    for c, t in enumerate(times):
        ax = axes[0, c]
        y, ticks, labels = 0, [], []
        for arm in arms:
            e = tst[arm]["ethogram"]
            e = e[np.isclose(e["time_h"], t)]
            subjects = list(dict.fromkeys(e["subject"]))[:rows]
            for sub in subjects:
                b = e[e["subject"] == sub]
                for state, colour in (("immobile", _IMMOBILE), ("struggle", _STRUGGLE)):
                    part = b[b["state"] == state]
                    ax.broken_barh(list(zip(part["start_s"], part["end_s"] - part["start_s"],
                                            strict=True)), (y + 0.1, 0.8), color=colour,
                                   lw=0)
                y += 1
            if subjects:
                ticks.append(y - len(subjects) / 2)
                labels.append(literal(arm))
                ax.axhline(y, c="w", lw=2)
        ax.set_ylim(y, 0)
        ax.set_yticks(ticks, labels, fontsize=7)
        ax.set_xlabel("time in test (s)")
        ax.set_title(f"{session_label(t)} (dark: immobile, orange: struggle)", fontsize=8,
                     loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def peri_struggle_figure(tst: dict, path: Path) -> Path | None:
    """One panel per session time: the population dF/F around struggle onsets, mean over
    mice (each mouse the mean over its own onsets) with its SEM, one line per arm."""
    times = _times(tst)
    if not times:
        return None
    fig, axes = subplots(1, len(times), figsize=(3.6 * len(times), 2.8), squeeze=False,
                             sharey=True)
    for c, t in enumerate(times):
        ax = axes[0, c]
        for arm, d in tst.items():
            per = np.asarray(d["peri_dff"].get(t, np.empty((0, 0))), float)
            per = per[np.isfinite(per).all(axis=1)] if per.size else per
            if per.shape[0] == 0:
                continue
            m = per.mean(axis=0)
            se = per.std(axis=0, ddof=1) / np.sqrt(per.shape[0]) if per.shape[0] > 1 else 0 * m
            line, = ax.plot(d["lags_s"], m, lw=1.2, label=f"{literal(arm)} (n={per.shape[0]})")
            ax.fill_between(d["lags_s"], m - se, m + se, color=line.get_color(), alpha=0.25,
                            lw=0)
        ax.axvline(0.0, c="k", lw=0.6, ls="--")
        ax.set_xlabel("time from struggle onset (s)")
        ax.set_title(session_label(t), fontsize=8, loc="left")
        if c == 0:
            ax.set_ylabel("population dF/F")
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def tst_figures(kept: dict, out: Path, prefix: str) -> list:
    """The tail suspension ethogram and the peri-struggle calcium average (all arms with
    the ``tail_suspension`` assay)."""
    tst = {arm: k["tst"] for arm, k in kept.items() if "tst" in k}
    if not tst:
        return []
    return [
        (ethogram_figure(tst, out / f"{prefix}ethogram.png"), "TST ethogram",
         ("tail suspension ethogram: immobile (dark) and struggle (orange) bouts over the "
          "test, one row per mouse (the first mice of each arm)")),
        (peri_struggle_figure(tst, out / f"{prefix}peri_struggle.png"),
         "peri-struggle calcium", ("vmPFC population dF/F around struggle onsets: mean over "
                                   "mice (each the mean over its onsets; at most the "
                                   f"first {KEEP_PERI_SUBJECTS:,d} of an arm) with SEM "
                                   "bands; the dashed line is the onset"))]




def track_figure(tracks: dict[str, pd.DataFrame], path: Path,
                 cols: int = KEEP_TRACK_SUBJECTS, sessions: int = KEEP_TRACK_SESSIONS
                 ) -> Path | None:
    """Open-field paths: a row per arm and session (at most ``sessions`` per arm: the
    first, the last and evenly between), a panel per animal (the first ``cols``), x
    against y in cm on equal axes; lost samples break the line, so a tracker's jumps and
    losses show. None when nothing was tracked."""
    rows = []
    for arm, df in tracks.items():
        if not len(df):
            continue
        times = sorted(df["time_h"].unique())
        if len(times) > sessions:  # the first, the last and evenly between
            times = [times[i] for i in np.unique(np.linspace(0, len(times) - 1, sessions
                                                             ).round().astype(int))]
        rows += [(arm, t, df[df["time_h"] == t]) for t in times]
    xy = np.concatenate([g[["x_cm", "y_cm"]].to_numpy(float).ravel() for _, _, g in rows]
                        ) if rows else np.empty(0)
    xy = xy[np.isfinite(xy)]
    if not xy.size:  # nothing tracked at all: no figure
        return None
    lo, hi = float(xy.min()), float(xy.max())
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    cols = min(cols, max(g["subject"].nunique() for _, _, g in rows))
    fig, axes = subplots(len(rows), cols, figsize=(0.6 + 1.7 * cols, 1.8 * len(rows)),
                         squeeze=False)
    for r, (arm, t, g) in enumerate(rows):
        subjects = list(dict.fromkeys(g["subject"]))[:cols]
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            if c >= len(subjects):
                ax.axis("off")
                continue
            s = g[g["subject"] == subjects[c]]
            ax.plot(s["x_cm"].to_numpy(float), s["y_cm"].to_numpy(float), lw=0.5,
                    color="tab:blue")
            ax.set_title(literal(subjects[c]), fontsize=7)
            if c == 0:
                named = g["session"].iloc[0] if "session" in g.columns else None
                when = (str(named) if isinstance(named, str) and named
                        else f"{float(t) * 60:.3g} min" if abs(float(t)) < 1
                        else session_label(float(t)))
                ax.set_ylabel(literal(f"{arm}\n{when}"), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def track_figures(kept: dict, out: Path, prefix: str) -> list:
    """The open-field paths of the first animals of each arm (what ``open_field`` kept,
    simulated or read from a lab's tracks)."""
    tracks = {arm: k["tracks"] for arm, k in kept.items() if "tracks" in k}
    if not tracks:
        return []
    return [(track_figure(tracks, out / f"{prefix}tracks.png"), "open-field paths",
             (f"open-field paths (cm), the first {KEEP_TRACK_SUBJECTS} animals of each arm, "
              f"at most {KEEP_TRACK_SESSIONS} sessions per arm; gaps are lost samples"))]
