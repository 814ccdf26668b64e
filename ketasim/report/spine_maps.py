"""Spine maps: each imaged branch as a line, sessions stacked, spines marked as kept,
lost (at their last session), new (at their first) or restored (new within 2 um of a spine
lost between the first two sessions), as imaging papers draw them; plus turnover bars and
survival curves."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis.calcium import detect_transients, synchronous_events
from ketasim.analysis.spines import restoration_labels, survival, turnover
from ketasim.report._mpl import literal, subplots
from ketasim.spines.assays import tracking_tables

_STYLE = {"kept": ("o", "0.55"), "new": ("o", "tab:green"), "lost": ("x", "tab:red"),
          "restored": ("o", "tab:blue")}


def _observed_restored(t: pd.DataFrame, sessions: np.ndarray) -> set:
    """(branch, spine_id, session) of spines new after the second session within 2 um of a site
    lost between the first two sessions, as an imaging lab labels restored spines
    (F-M-6; no ground truth used)."""
    out = set()
    for t2, t3 in pairwise(sessions[1:]):
        try:
            lab = restoration_labels(t, (float(sessions[0]), float(sessions[1])),
                                     (float(t2), float(t3)))
        except ValueError:
            continue
        lab = lab[lab["group"] == "restored"]
        out.update((b, sid, float(t3)) for b, sid in zip(lab["branch"], lab["spine_id"]))
    return out


def spine_map_figure(tracking: pd.DataFrame, path: Path, arm: str | None = None,
                     subject: str | None = None, max_branches: int = 4) -> Path | None:
    """Map of one animal's branches across sessions (first subject of ``arm`` by default)."""
    t = tracking if arm is None else tracking[tracking["arm"] == arm]
    if t.empty:
        return None
    subject = str(t["subject"].iloc[0]) if subject is None else subject
    t = t[t["subject"].astype(str) == subject]
    sessions = np.sort(t["time_h"].unique())
    branches = list(dict.fromkeys(t["branch"]))[:max_branches]
    # sessions and branches from every row; spines from the rows that saw one (an absent
    # row or an empty branch's placeholder is not a spine)
    t = t[t["present"].astype(bool)]
    restored_ids = _observed_restored(t, sessions)
    fig, axes = subplots(len(branches), 1, figsize=(8, 1.2 + 0.45 * len(sessions)
                                                         * len(branches)), squeeze=False)
    for ax, b in zip(axes[:, 0], branches):
        tb = t[t["branch"] == b]
        first = tb.groupby("spine_id")["time_h"].min()
        last = tb.groupby("spine_id")["time_h"].max()
        length = float(tb["branch_length_um"].iloc[0])
        for i, s in enumerate(sessions):
            ax.hlines(i, 0, length, color="0.85", lw=3, zorder=0)
            ts = tb[tb["time_h"] == s]
            status = np.where(first.loc[ts["spine_id"]].to_numpy() == s,
                              "new" if i > 0 else "kept", "kept")
            restored = np.array([(b, sid, float(s)) in restored_ids for sid in ts["spine_id"]],
                                bool)
            status = np.where((status == "new") & restored, "restored", status)
            gone = (last.loc[ts["spine_id"]].to_numpy() == s) & (s != sessions[-1])
            status = np.where(gone, "lost", status)
            for kind, (marker, colour) in _STYLE.items():
                sel = status == kind
                if sel.any():
                    ax.scatter(ts["position_um"].to_numpy()[sel], np.full(sel.sum(), i),
                               marker=marker, c=colour, s=18, label=kind, zorder=2)
        ax.set_yticks(range(len(sessions)), [f"{s / 24:g} d" if abs(s) >= 24 else f"{s:g} h"
                                             for s in sessions])
        ax.set_xlim(0, length)
        ax.invert_yaxis()
        ax.set_title(literal(f"{arm or ''} subject {subject}, branch {b}"), fontsize=8,
                     loc="left")
    axes[-1, 0].set_xlabel("position along branch (um)")
    handles = {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper right", fontsize=7,
                   frameon=False, ncol=len(handles))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def session_label(h: float) -> str:
    return f"{h / 24:g} d" if abs(h) >= 24 else f"{h:g} h"


def turnover_figure(tracking: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """Formation and elimination (% of the earlier session's spines) between consecutive
    sessions, a bar per arm (mean) with each subject as a dot."""
    per: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    intervals: list[tuple[float, float]] = []
    for arm, table in tracking.items():
        sessions = np.sort(table["time_h"].unique())
        rows = []
        for t0, t1 in pairwise(sessions):
            rows.append((f"{session_label(t0)} to {session_label(t1)}",
                         turnover(table, float(t0), float(t1)).per_subject))
            if (t0, t1) not in intervals:
                intervals.append((t0, t1))
        per[arm] = rows
    labels = list(dict.fromkeys(lab for rows in per.values() for lab, _ in rows))
    if not labels:
        return None
    arms = list(per)
    width = 0.8 / len(arms)
    rng = np.random.default_rng(0)  # dot jitter only
    fig, axes = subplots(2, 1, figsize=(max(6.0, 1.3 * len(labels) + 2), 6), sharex=True)
    for ax, col, name in ((axes[0], "formation_pct", "formation"),
                          (axes[1], "elimination_pct", "elimination")):
        for a, arm in enumerate(arms):
            for lab, ps in per[arm]:
                x = labels.index(lab) - 0.4 + (a + 0.5) * width
                v = ps[col].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                ax.bar(x, v.mean(), width * 0.9, color=f"C{a}",
                       label=literal(arm) if lab == per[arm][0][0] else None, alpha=0.7)
                ax.scatter(x + rng.uniform(-0.25, 0.25, v.size) * width, v, s=8, c="k",
                           zorder=3)
        ax.set_ylabel(f"{name} (%)")
    axes[1].set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False, ncol=min(4, len(arms)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def survival_figure(tracking: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """Kaplan-Meier survival of the spines new at the second-to-last session, followed to
    the last, restored (within 2 um of a site lost between the first two sessions) vs de
    novo, one panel per arm with at least four sessions (F-M-7); log-rank p in the title."""
    panels = []
    for arm, table in tracking.items():
        sessions = np.sort(table["time_h"].unique())
        if sessions.size < 4:
            continue
        t_start, t_end = float(sessions[-2]), float(sessions[-1])
        try:
            res = survival(table, t_start, "restoration", t_end - t_start,
                           t_elim=(float(sessions[0]), float(sessions[1])))
        except ValueError:
            continue  # no new spines to follow in this arm
        if res.km.empty:
            continue
        panels.append((arm, res, sessions))
    if not panels:
        return None
    fig, axes = subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False,
                             sharey=True)
    for ax, (arm, res, sessions) in zip(axes[0], panels):
        for g, (group, km) in enumerate(res.km.groupby("group", sort=False)):
            row = res.summary.loc[res.summary["group"] == group].iloc[0]
            ax.step(km["time_h"], km["survival"], where="post", color=f"C{g}",
                    ls=("-", "--", ":")[g % 3], lw=2.0 - 0.5 * g, marker="o", markevery=[-1],
                    label=f"{str(group).replace('_', ' ')}: {row['km_surviving']:.2f} (n={int(row['n_spines'])})")
            ax.fill_between(km["time_h"], km["ci_lower"], km["ci_upper"], step="post",
                            color=f"C{g}", alpha=0.15)
        p = res.logrank_p
        ax.set_title(literal(f"{arm}\nlog-rank p = {p:.3g}" if np.isfinite(p) else arm),
                     fontsize=8)
        ax.set_xlabel(f"h after {session_label(float(sessions[-2]))}")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7, frameon=False, loc="lower left")
    axes[0, 0].set_ylabel("fraction of new spines surviving")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def calcium_raster_figure(sessions: dict, path: Path, arm: str,
                          frame_rate_hz: float = 30.0) -> Path | None:
    """dF/F raster of one animal's field of view per session (cells x time), the
    population mean below it with the synchronous events (against circular-shift
    shuffles, :func:`ketasim.analysis.calcium.synchronous_events`) marked."""
    if not sessions:
        return None
    times = sorted(sessions)
    fig, axes = subplots(2, len(times), figsize=(4.2 * len(times), 4.2), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for c, t in enumerate(times):
        dff = np.asarray(sessions[t], dtype=float)
        secs = np.arange(dff.shape[1]) / frame_rate_hz
        ax = axes[0, c]
        ax.imshow(np.clip(dff, 0, np.percentile(dff, 99.5)), aspect="auto", cmap="magma",
                  extent=(0, secs[-1], dff.shape[0], 0), interpolation="nearest")
        ax.set_title(literal(f"{arm}, {session_label(float(t))}"), fontsize=8, loc="left")
        ax.set_ylabel("cell")
        sync = synchronous_events(detect_transients(dff, frame_rate_hz), frame_rate_hz,
                                  rng=np.random.default_rng(0), n_shuffles=100)
        mean = dff.mean(axis=0)
        axes[1, c].plot(secs, mean, lw=0.6, c="k")
        for e in np.asarray(sync.event_times_s, dtype=float):
            axes[1, c].axvline(e, c="tab:red", lw=0.6, alpha=0.7)
        axes[1, c].set_xlabel("s")
        axes[1, c].set_ylabel("mean dF/F")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def tracking_figures(kept: dict, out: Path, prefix: str) -> list:
    """Figures of the two-photon assay: a spine map per arm, then formation and
    elimination bars and the survival of new spines across arms."""
    tracking = {arm: k["tracking"] for arm, k in kept.items() if "tracking" in k}
    # with the empty imaged branches' placeholder rows, as the assay's readouts count them
    full = tracking_tables({"two_photon_spines": kept})
    figs = [(spine_map_figure(table, out / f"{prefix}{arm}.png", arm=arm),
             f"spines {arm}", (f"{arm}: imaged branches of one animal across sessions "
                               "(grey kept, green new, blue restored: new within 2 um of a "
                               "spine lost between the first two sessions, red lost)"))
            for arm, table in tracking.items()]
    if tracking:
        figs += [
            (turnover_figure(full, out / f"{prefix}turnover.png"), "spine turnover",
             ("formation and elimination between consecutive sessions (% of the earlier "
              "session's spines); bars are arm means, dots subjects")),
            (survival_figure(full, out / f"{prefix}survival.png"), "spine survival",
             ("Kaplan-Meier survival of spines new at the second-to-last session, restored "
              "(within 2 um of a site lost between the first two sessions) vs de novo, with "
              "95% bands"))]
    return figs


def calcium_figures(kept: dict, out: Path, prefix: str) -> list:
    """dF/F rasters of the first animal of each arm with calcium imaging."""
    return [(calcium_raster_figure(k["calcium"], out / f"{prefix}{arm}.png", arm),
             f"calcium {arm}", (f"{arm}: dF/F of one animal's field of view per session, "
                                "population mean below with the synchronous events (red)"))
            for arm, k in kept.items() if "calcium" in k]


_CLASS_COLOURS = {"mushroom": "#6a3d9a", "thin": "#1f78b4", "stubby": "#33a02c",
                  "filopodium": "#bbbbbb"}


def spine_class_figure(classes: pd.DataFrame, path: Path) -> Path | None:
    """Spine morphology by arm and cell type: stacked bars of each class's density per
    10 um (left) and its share of the detected spines (right), arm means, one bar per
    arm and time, labelled with the imaged cell type."""
    if classes.empty:
        return None
    mean = (classes.groupby(["arm", "cell", "time_h", "class"], sort=False)
            [["density_per_10um", "fraction"]].mean())
    bars = list(dict.fromkeys(mean.index.droplevel("class")))
    n_sub = classes.groupby(["arm", "time_h"], sort=False)["subject"].nunique()
    labels = [literal(f"{arm}\n{cell}, {session_label(t)}\n(n={n_sub[arm, t]})")
              for arm, cell, t in bars]
    fig, axes = subplots(1, 2, figsize=(max(6.5, 2.0 * len(bars) + 2.5), 3.8))
    x = np.arange(len(bars))
    for ax, col, ylabel in ((axes[0], "density_per_10um", "spines per 10 um"),
                            (axes[1], "fraction", "share of detected spines")):
        bottom = np.zeros(len(bars))
        for cls, colour in _CLASS_COLOURS.items():
            v = np.array([mean[col].get((*b, cls), 0.0) for b in bars], dtype=float)
            ax.bar(x, v, 0.7, bottom=bottom, color=colour, label=cls)
            bottom += v
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel(ylabel)
    # the total density's SEM over subjects (each subject's classes summed)
    total = (classes.groupby(["arm", "cell", "time_h", "subject"], sort=False)
             ["density_per_10um"].sum().groupby(["arm", "cell", "time_h"], sort=False))
    sem = total.std(ddof=1) / np.sqrt(total.count())
    axes[0].errorbar(x, [total.mean().get(b, np.nan) for b in bars],
                     yerr=[sem.get(b, np.nan) for b in bars], fmt="none", ecolor="k",
                     capsize=3, lw=1)
    axes[0].set_title("density by class (total: mean \u00b1 SEM)", fontsize=8)
    axes[1].set_title("share of each class", fontsize=8)
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def spine_class_figures(kept: dict, out: Path, prefix: str) -> list:
    """Figure of the fixed-tissue assay: spine morphology classes by arm and cell type."""
    tables = [k["spine_classes"] for k in kept.values() if "spine_classes" in k]
    if not tables:
        return []
    return [(spine_class_figure(pd.concat(tables, ignore_index=True),
                                Path(out) / f"{prefix}classes.png"),
             "spine classes", ("spine morphology by arm and imaged cell type (fixed tissue): "
                               "each class's density per 10 um and its share of the "
                               "detected spines, arm means, the total density with its SEM over animals (mushroom: head volume above "
                               "0.12 um^3; filopodia: below 0.02 um^3 without a synapse)"))]
