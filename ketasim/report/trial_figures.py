"""Figures of a trial (a scenario with a ``design:``): the scale's change from baseline
over time per arm with the psychotomimetic scales beneath on the same time axis, and
response and remission at the primary visit with 95% Wilson intervals."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.scale import SymmetricalLogTransform

from ketasim.report._mpl import literal, subplots
from ketasim.scenario.units import format_time

_COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
#: Psychotomimetic readouts drawn beneath the scale, when measured.
PSYCHOTOMIMETIC = ("cadss_total", "bprs_positive")
_WEEK = 7 * 24
_TICKS_H = (-28 * 24, -14 * 24, -7 * 24, -24, 0, 1, 4, 24, 72, _WEEK, 2 * _WEEK, 4 * _WEEK,
            8 * _WEEK, 12 * _WEEK, 16 * _WEEK, 20 * _WEEK, 28 * _WEEK, 40 * _WEEK,
            52 * _WEEK, 78 * _WEEK, 104 * _WEEK)
# a trial whose visits run past this is drawn on a linear time axis (weekly visits over
# months would crowd into the last tenth of a log axis)
_LINEAR_AFTER_H = 8 * _WEEK
# ticks closer than this share of the axis's span (on its symlog scale) are dropped, so
# that labels do not overlap
_MIN_TICK_GAP = 0.07


def _symlog(t) -> np.ndarray:
    return SymmetricalLogTransform(10, 1.0, 0.5).transform(np.asarray(t, float))


def _time_axis(ax, times: np.ndarray) -> None:
    """A symmetric-log time axis in hours (minutes after a dose and weeks after it both
    readable), ticks labelled as scenario times, as many as fit without overlapping and
    covering the last visit; a linear one for trials longer than
    :data:`_LINEAR_AFTER_H`."""
    lo, hi = float(np.min(times)), float(np.max(times))
    if hi > _LINEAR_AFTER_H:  # weeks of visits: a linear axis, ticks every few weeks
        step = _WEEK * max(1, int(np.ceil(hi / _WEEK / 8)))
        ticks = np.arange(0.0, hi + step, step)
        ticks = ticks[ticks <= hi + 1e-9]
        if hi - ticks[-1] > step / 3:  # the last visit, off the grid
            ticks = np.r_[ticks, hi]
        if lo < -step / 3:  # a baseline far enough before the first dose to label
            ticks = np.r_[lo, ticks]
        ax.set_xticks(ticks, [format_time(float(t)) for t in ticks])
        return
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ticks = [t for t in _TICKS_H if lo - 1e-9 <= t <= hi + 1e-9]
    if ticks and hi > ticks[-1] + 1e-9:
        ticks.append(hi)  # the last visit, beyond the listed ticks
    if len(ticks) < 2:  # a short trial: label its own times
        ticks = sorted(set(np.round(times, 6).tolist()))[:8]
    pos = _symlog(ticks)
    span = float(pos.max() - pos.min()) or 1.0
    kept = [len(ticks) - 1]  # the last tick always, then backwards
    for i in range(len(ticks) - 2, -1, -1):
        if pos[kept[-1]] - pos[i] >= _MIN_TICK_GAP * span:
            kept.append(i)
    ticks = [ticks[i] for i in sorted(kept)]
    ax.set_xticks(ticks, [format_time(float(t)) for t in ticks])
    ax.set_xticks([], minor=True)



def _arm_bands(ax, table, arms, time_col: str, mean_col: str, err_col: str,
               joined: bool = True) -> None:
    """Each arm's mean over time with a band of +- its error, in the arm's colour and
    line style; ``joined`` False: points with error bars only (ratings taken at the end of
    each dose, between which nothing was rated)."""
    for k, arm in enumerate(arms):
        a = table[table["arm"] == arm].sort_values(time_col)
        if a.empty:
            continue
        c = _COLORS[k % len(_COLORS)]
        x, m, e = (a[time_col].to_numpy(float), a[mean_col].to_numpy(float),
                   a[err_col].fillna(0).to_numpy(float))
        if joined:
            ax.plot(x, m, ls=("-", "--", "-.", ":")[k % 4], marker="o", ms=3, color=c,
                    label=literal(arm))
            ax.fill_between(x, m - e, m + e, color=c, alpha=0.25, lw=0)
        else:
            ax.errorbar(x, m, yerr=e, fmt="os^D"[k % 4], ms=4, color=c, capsize=2,
                        lw=1, label=literal(arm))

def psychotomimetic_panels(summary: pd.DataFrame, scale: str, arms: list[str]) -> list[str]:
    """The psychotomimetic scales drawn beneath the trial's scale: those measured in a
    drawn arm, other than the scale itself."""
    return [r for r in PSYCHOTOMIMETIC
            if r != scale and r in set(summary["readout"])
            and set(summary.loc[summary["readout"] == r, "arm"]) & set(arms)]


def trial_course_figure(trial: pd.DataFrame, summary: pd.DataFrame, scale: str,
                        arms: list[str], primary: float, path: Path) -> Path:
    """Top: mean change from baseline of ``scale`` (patients seen, +- SE) per arm; beneath,
    one panel per measured psychotomimetic scale (mean +- SEM per arm), same time axis."""
    obs = trial[trial["kind"] == "observed"]
    below = psychotomimetic_panels(summary, scale, arms)
    fig, axes = subplots(1 + len(below), 1, figsize=(7.5, 3.4 + 2.2 * len(below)),
                         squeeze=False, sharex=True,
                         gridspec_kw={"height_ratios": [1.6] + [1.0] * len(below)})
    axes = axes[:, 0]
    times = [obs["visit_h"].to_numpy(float)]
    ax = axes[0]
    _arm_bands(ax, obs, arms, "visit_h", "estimate", "se")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.axvline(primary, color="0.3", lw=0.8, ls=(0, (1, 2)), label="primary visit")
    ax.set_ylabel(f"{literal(scale)}\nchange from baseline (points)")
    if ax.get_legend_handles_labels()[0]:  # no arm has a change where screening let none in
        ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{literal(scale)}: mean change from baseline (\u00b1 SE)", fontsize=9)
    for ax, readout in zip(axes[1:], below, strict=True):
        s = summary[summary["readout"] == readout]
        times.append(s["time_h"].to_numpy(float))
        _arm_bands(ax, s, arms, "time_h", "mean", "sem", joined=False)
        ax.set_ylabel(f"{literal(readout)}\n(mean \u00b1 SEM)")
    _time_axis(axes[-1], np.concatenate(times))
    axes[-1].set_xlabel("time from the first dose")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def endpoints_figure(endpoints: pd.DataFrame, primary: float, path: Path) -> Path | None:
    """Response and remission proportions per arm at the primary visit, bars with 95%
    Wilson intervals (patients who left count as non-responders)."""
    at = endpoints[np.isclose(endpoints["visit_h"].to_numpy(float), primary)]
    if at.empty:
        return None
    names = list(dict.fromkeys(at["endpoint"]))
    arms = list(dict.fromkeys(at["arm"]))
    fig, ax = subplots(figsize=(2.2 + 1.6 * len(names) * max(1, len(arms)) / 2, 3.4))
    width = 0.8 / len(arms)
    for k, arm in enumerate(arms):
        a = at[at["arm"] == arm].set_index("endpoint").reindex(names)
        x = np.arange(len(names)) + (k - (len(arms) - 1) / 2) * width
        p = a["proportion"].to_numpy(float)
        err = np.vstack([p - a["ci_lower"].to_numpy(float), a["ci_upper"].to_numpy(float) - p])
        ax.bar(x, p, width * 0.9, yerr=err, capsize=3, color=_COLORS[k % len(_COLORS)],
               alpha=0.75, label=literal(arm))
    ax.set_xticks(range(len(names)), [literal(n) for n in names])
    ax.set_ylim(0, 1)
    ax.set_ylabel("proportion of patients")
    ax.set_title(f"at {format_time(float(primary))} (primary visit), 95% Wilson CI",
                 fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def relapse_figure(km: pd.DataFrame, path: Path) -> Path | None:
    """Kaplan-Meier curves of time to relapse per arm with their 95% bands."""
    if km is None or km.empty:
        return None
    fig, ax = subplots(figsize=(6.5, 3.6))
    for k, (arm, g) in enumerate(km.groupby("arm", sort=False)):
        c = _COLORS[k % len(_COLORS)]
        t = g["time"].to_numpy(float) / 24.0
        events = int(g["events"].sum())
        label = (f"{literal(arm)} ({events} relapse{'' if events == 1 else 's'} of "
                 f"{int(g['at_risk'].iloc[0])})")
        ax.step(t, g["survival"], where="post", color=c, ls=("-", "--", ":")[k % 3],
                lw=max(0.8, 2.0 - 0.4 * k), label=label)
        ax.fill_between(t, g["ci_lower"], g["ci_upper"], step="post", color=c, alpha=0.2,
                        lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("days from the start of maintenance")
    ax.set_ylabel("relapse-free")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Time to relapse (Kaplan-Meier, 95% bands; no band before a first "
                 "relapse)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
