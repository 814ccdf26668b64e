"""Spine maps: each imaged branch as a line, sessions stacked, spines marked as kept,
lost (at their last session) or new (at their first), as imaging papers draw them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_STYLE = {"kept": ("o", "0.55"), "new": ("o", "tab:green"), "lost": ("x", "tab:red"),
          "restored": ("o", "tab:blue")}


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
    fig, axes = plt.subplots(len(branches), 1, figsize=(8, 1.2 + 0.45 * len(sessions)
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
            if "origin" in ts.columns:
                status = np.where((status == "new") & (ts["origin"].to_numpy() == "restored"),
                                  "restored", status)
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
        ax.set_title(f"{arm or ''} subject {subject}, branch {b}", fontsize=8, loc="left")
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
    plt.close(fig)
    return path
