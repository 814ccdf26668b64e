"""The figure of a global sensitivity analysis (``ketasim sensitivity``): one bar per
parameter and index with its confidence interval, parameters sorted by their total (or
Morris mu_star) effect.

Reads the indices table of :func:`ketasim.sweep.sensitivity.indices` by its columns
(``parameter, method, index, value, ci_low, ci_high, scale``) and imports nothing from
the sweep. Draws on a :class:`matplotlib.figure.Figure` with its own Agg canvas, so
importing this module leaves matplotlib's global backend alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ketasim.report._mpl import literal

__all__ = ["indices_figure", "plot_indices"]

# per method: the indices drawn, in order, and the one that sorts the parameters
_BARS = {"sobol": (("S1", "ST"), "ST"), "morris": (("mu_star", "sigma"), "mu_star")}
_LABELS = {"S1": "first order S1", "ST": "total ST", "mu_star": "mu* (mean |effect|)",
           "sigma": "sigma (spread)"}


def indices_figure(table: pd.DataFrame, title: str | None = None,
                   max_parameters: int = 40) -> Figure:
    """Horizontal bars of the sensitivity indices with their confidence intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        An indices table (one ``method``).
    title : str, optional
        The figure's title (e.g. the readout and its selection).
    max_parameters : int
        Only the most influential parameters are drawn (the title says how many were
        left out).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas attached.
    """
    methods = table["method"].unique()
    if len(methods) != 1 or methods[0] not in _BARS:
        raise ValueError(f"indices table: expected one method of {sorted(_BARS)}, got "
                         f"{list(methods)}")
    method = str(methods[0])
    bars, key = _BARS[method]
    t = table[table["index"].isin(bars)]
    order = (t[t["index"] == key].set_index("parameter")["value"]
             .sort_values(ascending=False, kind="stable", na_position="last"))
    params = list(order.index[:max_parameters])
    left_out = len(order) - len(params)
    scale = t.drop_duplicates("parameter").set_index("parameter")["scale"]
    labels = [literal(f"{p} (log)" if scale.get(p) == "log" else p) for p in params]
    h = 0.8 / len(bars)
    fig = Figure(figsize=(7.5, 1.6 + 0.32 * len(params)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(params))
    for k, name in enumerate(bars):
        rows = t[t["index"] == name].set_index("parameter").reindex(params)
        v = rows["value"].to_numpy(float)
        err = np.vstack([v - rows["ci_low"].to_numpy(float),
                         rows["ci_high"].to_numpy(float) - v])
        ax.barh(y + (k - (len(bars) - 1) / 2) * h, v, height=h, xerr=np.abs(err),
                color=f"C{k}", ecolor="0.25", capsize=2, label=_LABELS.get(name, name))
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel("Sobol' index (share of variance)" if method == "sobol"
                  else "elementary effect: readout change per the parameter's whole "
                       "range (of log10 for (log))")
    conf = "confidence intervals from bootstrap"
    head = literal(title or "sensitivity")
    more = f"; {left_out} more parameters not shown" if left_out > 0 else ""
    ax.set_title("\n".join(textwrap.wrap(head, 80)
                           + [f"{method}, {len(order)} parameters, {conf}{more}"]), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_indices(table: pd.DataFrame, path, title: str | None = None) -> Path:
    """Draw :func:`indices_figure` into a PNG file and return its path."""
    path = Path(path)
    indices_figure(table, title).savefig(path, dpi=110)
    return path
