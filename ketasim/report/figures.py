"""Figures in the style of the papers: time courses with SEM bands, bars with subjects."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from ketasim.report._mpl import subplots

_COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _time_axis(hours: np.ndarray) -> tuple[np.ndarray, str]:
    span = float(np.nanmax(hours) - np.nanmin(hours)) if len(hours) else 0.0
    if span > 72:
        return hours / 24.0, "time (days)"
    if span < 2:
        return hours * 60.0, "time (min)"
    return hours, "time (h)"


def _regional(df: pd.DataFrame) -> np.ndarray:
    """Readout names qualified by their region (``pmtor_rel (striatum)``)."""
    return np.where(df["region"] == "mpfc", df["readout"],
                    df["readout"] + " (" + df["region"].astype(str) + ")")


def assay_figure(readouts: pd.DataFrame, summary: pd.DataFrame, assay: str,
                 path: Path) -> Path:
    """One panel per readout of ``assay`` (and per region, where several are measured);
    arms in colour."""
    sub = summary[summary["assay"] == assay]
    if "region" in sub.columns and sub["region"].nunique() > 1:
        sub = sub.assign(readout=_regional(sub))
        readouts = readouts.assign(readout=_regional(readouts))
    names = list(dict.fromkeys(sub["readout"]))
    arms = list(dict.fromkeys(summary["arm"]))
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        rs = sub[sub["readout"] == name]
        unit = rs["unit"].iloc[0]
        times = np.sort(rs["time_h"].unique())
        if len(times) > 1:
            _, label = _time_axis(times)
            for k, arm in enumerate(arms):
                a = rs[rs["arm"] == arm].sort_values("time_h")
                if a.empty:
                    continue
                x, _ = _time_axis(a["time_h"].to_numpy())
                m = a["mean"].to_numpy()
                e = a["sem"].fillna(0).to_numpy()
                c = _COLORS[k % len(_COLORS)]
                ax.plot(x, m, "-o", ms=3, color=c, label=arm)
                ax.fill_between(x, m - e, m + e, color=c, alpha=0.25, lw=0)
            ax.set_xlabel(label)
        else:
            raw = readouts[(readouts["assay"] == assay) & (readouts["readout"] == name)]
            for k, arm in enumerate(arms):
                a = rs[rs["arm"] == arm]
                if a.empty:
                    continue
                c = _COLORS[k % len(_COLORS)]
                ax.bar(k, a["mean"].iloc[0], yerr=a["sem"].fillna(0).iloc[0], color=c,
                       alpha=0.5, capsize=3)
                v = raw.loc[raw["arm"] == arm, "value"].to_numpy(float)
                jitter = (np.arange(len(v)) - (len(v) - 1) / 2) * 0.04
                ax.plot(k + jitter, v, "o", ms=3, color="k")
            ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
            ax.set_xlabel(f"t = {times[0]:g} h")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(unit)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles: dict[str, object] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:  # one legend for the figure (some panels may have no data, e.g. all BLQ)
        axes.ravel()[0].legend(list(handles.values()), list(handles), fontsize=7,
                               frameon=False)
    fig.suptitle(assay)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
