"""The power curve figure: power against group size, its Wilson band, the 0.8 target.

Draws on a :class:`matplotlib.figure.Figure` with its own Agg canvas, so importing this
module leaves matplotlib's global backend alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ketasim.analysis.power import TARGET_POWER
from ketasim.report._mpl import literal

__all__ = ["plot_power", "power_figure"]


def power_figure(df: pd.DataFrame) -> Figure:
    """A power curve with its Wilson band and the :data:`TARGET_POWER` line.

    Parameters
    ----------
    df : pandas.DataFrame
        A power table (:func:`ketasim.analysis.power.power_table` or
        :func:`ketasim.experiment.power.power_curve`).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas attached.
    """
    d = df.sort_values("n")
    first = d.iloc[0]
    fig = Figure(figsize=(5.6, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lines = list(dict.fromkeys(d["groups"]))  # a trial design: one line per arm
    # a trial whose population is screened: n counts candidates, not patients
    screened = bool("randomised_mean" in d and (d["randomised_mean"] < d["n_arm"]).any())
    for k, groups in enumerate(lines):
        g = d[d["groups"] == groups]
        x = g["n"].to_numpy(float)
        name = "" if len(lines) == 1 else f" {literal(groups.split(';')[-1])}"
        ax.fill_between(x, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float),
                        color=f"C{k}", alpha=0.25, lw=0, label=f"95% Wilson interval{name}")
        ax.plot(x, g["power"].to_numpy(float), "-o", ms=4, color=f"C{k}",
                label=f"power{name}")
        if screened:  # what screening leaves: the patients actually randomised
            for xi, yi, r in zip(x, g["power"].to_numpy(float),
                                 g["randomised_mean"].to_numpy(float), strict=True):
                ax.annotate(f"{r:.3g}", (xi, yi), xytext=(3, -10),
                            textcoords="offset points", fontsize=6.5, color=f"C{k}")
    ax.axhline(TARGET_POWER, ls="--", color="0.3", lw=1, label=f"power {TARGET_POWER:g}")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("candidates per arm before screening (n; beside each point the mean "
                  "randomised)" if screened else "subjects per group (n)",
                  fontsize=9 if screened else None)
    ax.set_ylabel(f"power (P[p < {float(first['alpha']):g}])")
    groups = (str(first["groups"]).replace(";", " vs ") if len(lines) == 1 else
              f"each arm vs {str(first['groups']).split(';')[0]}")
    failed = int(d["not_fitted"].sum()) if "not_fitted" in d else 0
    ax.set_title(f"{literal(first['readout'])} at {float(first['time_h']):g} h, "
                 f"{first['test']}\n{literal(groups)}, {int(first['cohorts'])} cohorts per n"
                 + (f"; {failed} fits failed (not significant)" if failed else ""),
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_power(df: pd.DataFrame, path) -> Path:
    """Draw a power curve (:func:`power_figure`) into a PNG file.

    Parameters
    ----------
    df : pandas.DataFrame
        A power table.
    path : str or pathlib.Path
        PNG file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    power_figure(df).savefig(path, dpi=110)
    return path
