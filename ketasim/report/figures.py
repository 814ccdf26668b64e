"""Figures in the style of the papers: time courses with SEM bands, bars with subjects."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from ketasim.experiment.taper import TAPER_ASSAY, TAPER_READOUT
from ketasim.report._mpl import literal, subplots

_COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _time_unit(hours: np.ndarray) -> tuple[float, str]:
    """The factor from hours to the unit that suits the span of ``hours``, and the axis
    label: one unit per panel, whichever times each arm has."""
    span = float(np.nanmax(hours) - np.nanmin(hours)) if len(hours) else 0.0
    if span > 72:
        return 1.0 / 24.0, "time (days)"
    if span < 2:
        return 60.0, "time (min)"
    return 1.0, "time (h)"


def _time_axis(hours: np.ndarray) -> tuple[np.ndarray, str]:
    factor, label = _time_unit(hours)
    return hours * factor, label


def _regional(df: pd.DataFrame) -> np.ndarray:
    """Readout names qualified by their region (``pmtor_rel (striatum)``)."""
    return np.where(df["region"] == "mpfc", df["readout"],
                    df["readout"] + " (" + df["region"].astype(str) + ")")


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
# each arm its own line style beside its colour and marker, so that an arm lying under
# another shows through its dashes (arms are not shifted in time: a shift moved a 40-min
# peak by a quarter of an hour on a day's axis)
_STYLES = ("-", "--", "-.", ":")


def _arm_marker(k: int) -> str:
    """The marker of the ``k``-th arm: with the colour cycle (``k`` modulo its length,
    10) every arm up to 100 gets its own colour and marker pair (the marker moves on by
    one each time the colours start again; arms 20 apart once looked alike)."""
    return _MARKERS[(k + k // len(_COLORS)) % len(_MARKERS)]


# a time course moving less than this share of its largest value is drawn as flat: a
# state the scenario leaves at rest (one whose values all stay below FLAT_ZERO, e.g. the
# pyramidal shutdown of a human infusion, about 1e-7, is 0 moved by rounding)
FLAT_TOL = 1e-6
# a course whose largest value is below this counts as 0 throughout (rounding only)
FLAT_ZERO = 1e-6


def _flat(rs: pd.DataFrame) -> bool:
    """Whether a time course is one value in every arm and at every time (a state the
    scenario leaves at rest, e.g. the striatal priming in an mPFC run), to
    :data:`FLAT_TOL`."""
    m = rs["mean"].to_numpy(float)
    m = m[np.isfinite(m)]
    if not len(m):
        return False
    # relative to the course's own size; absolutely for a course about 0 throughout
    top = float(np.abs(m).max())
    scale = top if top > FLAT_ZERO else 1.0
    return bool(np.ptp(m) <= FLAT_TOL * scale
                and not (rs["sem"].fillna(0).to_numpy(float) > FLAT_TOL * scale).any())


def panels(sub: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """An assay's summary rows sorted into the readouts drawn, those with no value, and
    the flat time courses (``name = value``), each in the order of the table."""
    names, empty, flat = [], [], []
    for name in dict.fromkeys(sub["readout"]):
        rs = sub[sub["readout"] == name]
        if not np.isfinite(rs["mean"].to_numpy(float)).any():
            empty.append(name)
        elif rs["time_h"].nunique() > 1 and _flat(rs):
            v = float(rs["mean"].dropna().iloc[0])
            flat.append(f"{name} = {v if abs(v) > FLAT_TOL else 0.0:.4g}")
        else:
            names.append(name)
    return names, empty, flat


# concentrations spanning more than this factor are drawn on a log axis, as PK curves are
# (the elimination phase is a straight line there, and late levels stay readable)
_LOG_SPAN = 30.0
_CONCENTRATIONS = ("ng/mL", "ug/mL", "mg/L", "ng/g", "nM", "uM")


def log_axis(unit: str, means: np.ndarray) -> bool:
    """Whether a concentration time course is drawn on a log axis: all its means above 0
    and spanning more than :data:`_LOG_SPAN`."""
    m = np.asarray(means, float)
    m = m[np.isfinite(m)]
    return bool(unit in _CONCENTRATIONS and len(m) and (m > 0).all()
                and m.max() / m.min() > _LOG_SPAN)


def unit_label(unit: str) -> str:
    """An axis's unit as a reader wants it: 'dimensionless' for unit 1."""
    return "dimensionless" if unit in ("1", "") else unit


def assay_figure(readouts: pd.DataFrame, summary: pd.DataFrame, assay: str,
                 path: Path) -> Path:
    """One panel per readout of ``assay`` (and per region, where several are measured);
    arms in colour, marker and line style, so none hides another. A point with fewer subjects than its arm has elsewhere in the panel is
    labelled with its n. Readouts with no value (all below a limit of quantification)
    and time courses flat in every arm are not drawn but named under the panels. A
    needs-based taper's doses (assay ``taper``) are drawn as the share of patients on
    each interval over time (:func:`taper_figure`)."""
    if assay == TAPER_ASSAY:
        return taper_figure(readouts, path)
    sub = summary[summary["assay"] == assay]
    if "region" in sub.columns and sub["region"].nunique() > 1:
        sub = sub.assign(readout=_regional(sub))
        readouts = readouts.assign(readout=_regional(readouts))
    arms = list(dict.fromkeys(summary["arm"]))
    names, empty, flat = panels(sub)
    ncol = max(1, min(3, len(names)))
    nrow = max(1, math.ceil(len(names) / ncol))
    height = 3.2 * nrow + 0.5 + 0.25 * bool(empty or flat)
    fig, axes = subplots(nrow, ncol, figsize=(4.2 * ncol, height), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        rs = sub[sub["readout"] == name]
        unit = rs["unit"].iloc[0]
        times = np.sort(rs["time_h"].unique())
        if len(times) > 1:
            factor, label = _time_unit(times)  # the panel's unit, for every arm
            for k, arm in enumerate(arms):
                a = rs[rs["arm"] == arm].sort_values("time_h")
                if not np.isfinite(a["mean"].to_numpy(float)).any():
                    continue  # no data (none measured, or all below quantification)
                x = a["time_h"].to_numpy() * factor
                m = a["mean"].to_numpy()
                e = a["sem"].fillna(0).to_numpy()
                c = _COLORS[k % len(_COLORS)]
                ax.plot(x, m, ls=_STYLES[k % len(_STYLES)], marker=_arm_marker(k),
                        ms=3.5, color=c, label=literal(arm))
                ax.fill_between(x, m - e, m + e, color=c, alpha=0.25, lw=0)
                n = a["n"].to_numpy()
                for xi, mi, ni in zip(x, m, n):
                    if ni < n.max() and np.isfinite(mi):
                        ax.annotate(f"n={ni:g}", (xi, mi), xytext=(2, 3),
                                    textcoords="offset points", fontsize=6, color=c)
            ax.set_xlabel(label)
            if log_axis(unit, rs["mean"].to_numpy(float)):
                ax.set_yscale("log")
                unit = f"{unit} (log scale)"
        else:
            raw = readouts[(readouts["assay"] == assay) & (readouts["readout"] == name)]
            for k, arm in enumerate(arms):
                a = rs[rs["arm"] == arm]
                if a.empty:
                    continue
                c = _COLORS[k % len(_COLORS)]
                # one subject: no SEM, so no error bar (a bar of 0 would claim one)
                ax.bar(k, a["mean"].iloc[0], yerr=a["sem"].iloc[0], color=c,
                       alpha=0.5, capsize=3)
                v = raw.loc[raw["arm"] == arm, "value"].to_numpy(float)
                jitter = (np.arange(len(v)) - (len(v) - 1) / 2) * 0.04
                ax.plot(k + jitter, v, "o", ms=3, color="k")
            ax.set_xticks(range(len(arms)), [literal(a) for a in arms], rotation=30,
                          ha="right")
            ax.set_xlabel(f"t = {times[0]:g} h")
        ax.set_title(literal(name), fontsize=9)
        ax.set_ylabel(literal(unit_label(unit)))
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles: dict[str, object] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:  # one legend for the figure (some panels may have no data, e.g. all BLQ)
        axes.ravel()[0].legend(list(handles.values()), list(handles), fontsize=7,
                               frameon=False)
    notes = []
    if flat:
        notes.append("the same in every arm and at every time (not drawn): "
                     + ", ".join(map(literal, flat)))
    if empty:
        notes.append("no value above the limit of quantification (not drawn): "
                     + ", ".join(map(literal, empty)))
    if not names:
        axes[0, 0].text(0.5, 0.5, "nothing to draw", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=6.5, va="bottom", wrap=True)
    fig.suptitle(literal(assay))
    # room for the title above the panels and the notes below them
    fig.tight_layout(rect=(0, (0.3 if notes else 0) / height, 1, 1 - 0.35 / height))
    fig.savefig(path, dpi=110)
    return path


def taper_shares(readouts: pd.DataFrame, arm: str) -> pd.DataFrame:
    """A needs-based taper's course in one arm: at each time a dose is given (rows) the
    share of the arm's patients on each interval to their next dose (columns, days),
    the interval being the one set at each patient's latest dose. Patients count from
    their first taper dose; one who left the trial counts on the interval of their last
    dose. Each row sums to 1."""
    rows = readouts[(readouts["assay"] == TAPER_ASSAY)
                    & (readouts["readout"] == TAPER_READOUT) & (readouts["arm"] == arm)]
    times = np.sort(rows["time_h"].unique())
    levels = np.sort(rows["value"].unique())
    wide = rows.pivot_table(index="subject", columns="time_h", values="value",
                            aggfunc="first").reindex(columns=times)
    force = wide.ffill(axis=1).to_numpy(float)  # the interval in force at each time
    seen = np.maximum(np.isfinite(force).sum(axis=0), 1)
    return pd.DataFrame({lv: (force == lv).sum(axis=0) / seen for lv in levels},
                        index=pd.Index(times, name="time_h"))


def taper_figure(readouts: pd.DataFrame, path: Path) -> Path:
    """A needs-based taper per arm: the share of the arm's patients on each interval to
    their next dose over time, stacked (:func:`taper_shares`)."""
    rows = readouts[(readouts["assay"] == TAPER_ASSAY)
                    & (readouts["readout"] == TAPER_READOUT)]
    arms = list(dict.fromkeys(rows["arm"]))
    levels = np.sort(rows["value"].unique())
    fig, axes = subplots(1, max(1, len(arms)), figsize=(4.2 * max(1, len(arms)), 3.6),
                         squeeze=False, sharey=True)
    cmap = matplotlib.colormaps["viridis"]
    colors = dict(zip(levels, (cmap(x) for x in np.linspace(0.15, 0.9,
                                                              max(1, levels.size)))))
    for ax, arm in zip(axes[0], arms):
        shares = taper_shares(readouts, arm)
        x = shares.index.to_numpy() / 24.0
        # the shares chosen at the last dose hold until the next one it sets: one more step
        x = np.r_[x, x[-1] + levels.max()]
        shares = pd.concat([shares, shares.iloc[[-1]]])
        ax.stackplot(x, *(shares[lv].to_numpy() for lv in shares.columns),
                     labels=[f"{lv:g} d" for lv in shares.columns],
                     colors=[colors[lv] for lv in shares.columns], step="post")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"{literal(arm)} (n={rows.loc[rows['arm'] == arm, 'subject'].nunique()})",
                     fontsize=9)
        ax.set_xlabel("time (days)")
    axes[0, 0].set_ylabel("share of patients")
    if len(arms):
        axes[0, -1].legend(title="interval to\nthe next dose", fontsize=7,
                           title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           frameon=False)
    else:
        axes[0, 0].text(0.5, 0.5, "nothing to draw", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    fig.suptitle("taper: interval to the next dose")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
