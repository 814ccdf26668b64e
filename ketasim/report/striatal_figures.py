"""Striatal figures that combine assays (issue 15, item 7): mushroom spine density
against dyskinesia across animals, as the LID studies plot it (F-LID-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketasim.report._mpl import subplots

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def mushroom_vs_aims(readouts: pd.DataFrame, path: Path) -> tuple[Path, str] | None:
    """Scatter of each animal's mushroom spine density (its last measurement) against
    its ALO AIMs in its last session, coloured by arm, with the least-squares line and
    Pearson's r across all animals; None when no animal has both."""
    r = readouts
    aims = r[r["readout"] == "aims_alo"]
    spines = r[r["readout"] == "mushroom_density_per_10um"]
    if aims.empty or spines.empty:
        return None

    def last(df: pd.DataFrame) -> pd.Series:
        df = df[np.isfinite(df["value"])].sort_values("time_h")
        return df.groupby(["arm", "subject"])["value"].last()

    both = pd.concat({"aims": last(aims), "mushroom": last(spines)}, axis=1).dropna()
    if len(both) < 3:
        return None
    fig, ax = subplots(figsize=(4.8, 3.6))
    for k, (arm, g) in enumerate(both.groupby(level="arm", sort=False)):
        ax.plot(g["aims"], g["mushroom"], "o", ms=4, color=_COLORS[k % len(_COLORS)],
                label=f"{arm} (n={len(g)})")
    x, y = both["aims"].to_numpy(float), both["mushroom"].to_numpy(float)
    caption = "every animal with both measurements"
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        fit = stats.pearsonr(x, y)
        slope, icpt = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, icpt + slope * xs, "k-", lw=1)
        caption = (f"Pearson r = {fit.statistic:.2f}, p = {fit.pvalue:.2g}, n = {len(x)} "
                   "animals; least-squares line")
    ax.set_xlabel("ALO AIMs, last session (score)")
    ax.set_ylabel("mushroom spines per 10 um")
    ax.set_title("Mushroom spine density against dyskinesia", fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path), caption
