"""Striatal figures (issue 15, item 7): the AIMs of a run (over sessions, and within a
session; from what the ``aims`` assay keeps) and, across assays, mushroom spine density
against dyskinesia across animals, as the LID studies plot it (F-LID-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketasim.behavior.striatal import AIMS_MAX, ALO_SUBTYPES, KEEP_AIMS_SUBJECTS
from ketasim.report._mpl import literal, subplots

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _finish(fig, ax, path: Path, title: str) -> Path:
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def alo_per_period(table: pd.DataFrame) -> pd.DataFrame:
    """ALO score (axial + limb + orolingual, 0-12) of each observation: columns arm,
    subject, session_h, period_min, alo."""
    alo = table[table["subtype"].isin(ALO_SUBTYPES)]
    return (alo.groupby(["arm", "subject", "session_h", "period_min"], observed=True,
                        sort=True)["score"].sum().rename("alo").astype(int).reset_index())


def alo_per_session(table: pd.DataFrame) -> pd.DataFrame:
    """ALO session score (summed over the session's periods) of each subject and session:
    columns arm, subject, session_h, alo (the ``aims_alo`` readout)."""
    per = alo_per_period(table)
    return per.groupby(["arm", "subject", "session_h"], sort=True)["alo"].sum().reset_index()


def _mean_sem(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), (float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0)


def _periods_text(table: pd.DataFrame) -> str:
    per = sorted({float(m) for m in table["period_min"].unique()})
    return ", ".join(f"{m:g}" for m in per)


def aims_sessions_figure(aims: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """ALO session score against the day of L-DOPA (session dose time / 24 h + 1), one
    colour per arm: each animal a thin line, the arm's mean with the SEM across animals."""
    sessions = {arm: alo_per_session(t) for arm, t in aims.items() if len(t)}
    if not sessions:
        return None
    fig, ax = subplots(figsize=(5.2, 3.4))
    for k, (arm, s) in enumerate(sessions.items()):
        colour = f"C{k % 10}"
        s = s.assign(day=s["session_h"] / 24.0 + 1.0)
        for _, animal in s.groupby("subject", sort=True):
            ax.plot(animal["day"], animal["alo"], color=colour, lw=0.5, alpha=0.35)
        days = np.sort(s["day"].unique())
        stats = np.array([_mean_sem(s.loc[s["day"] == d, "alo"]) for d in days])
        ax.errorbar(days, stats[:, 0], yerr=stats[:, 1], color=colour, lw=1.8, marker="o",
                    ms=4, capsize=3, label=f"{literal(arm)} (n={s['subject'].nunique()})")
    days = np.unique(np.concatenate([s["session_h"].to_numpy() / 24.0 + 1.0
                                     for s in sessions.values()]))
    if len(days) <= 12:
        ax.set_xticks(days, [f"{d:g}" for d in days])
    ax.set_xlabel("day of L-DOPA")
    ax.set_ylabel("ALO AIMs score (session sum)")
    top = max(ax.get_ylim()[1], 1.0)
    ax.set_ylim(-0.03 * top, top)  # an arm at 0 stays visible above the axis
    return _finish(fig, ax, path, "AIMs over sessions: axial + limb + orolingual, "
                   "mean \u00b1 SEM")


def aims_time_course_figure(aims: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """Mean ALO score per observation (0-12) against minutes after L-DOPA in the last
    session of each arm, one line per arm with the SEM across animals."""
    per = {arm: alo_per_period(t) for arm, t in aims.items() if len(t)}
    if not per:
        return None
    fig, ax = subplots(figsize=(5.2, 3.4))
    for k, (arm, p) in enumerate(per.items()):
        last = float(p["session_h"].max())
        p = p[p["session_h"] == last]
        minutes = np.sort(p["period_min"].unique())
        stats = np.array([_mean_sem(p.loc[p["period_min"] == m, "alo"]) for m in minutes])
        line, = ax.plot(minutes, stats[:, 0], color=f"C{k % 10}", lw=1.5, marker="o", ms=3,
                        label=f"{literal(arm)}, day {last / 24.0 + 1.0:g} "
                              f"(n={p['subject'].nunique()})")
        ax.fill_between(minutes, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1],
                        color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("minutes after L-DOPA")
    ax.set_ylabel("ALO AIMs score per observation (0-12)")
    ax.set_ylim(-0.3, 3 * AIMS_MAX + 0.3)
    ax.set_xlim(left=0)
    return _finish(fig, ax, path, "AIMs within a session (last session of each arm), "
                   "mean \u00b1 SEM")


def aims_figures(kept: dict, out: Path, prefix: str) -> list:
    """The report's AIMs figures (all arms with the ``aims`` assay): the ALO score over
    sessions and within the last session; ``(png, alt, caption)`` triples."""
    aims = {arm: k["aims"] for arm, k in kept.items() if "aims" in k}
    if not aims:
        return []
    out = Path(out)
    periods = "; ".join(f"{arm}: {_periods_text(t)}" for arm, t in aims.items())
    over = ("AIMs over sessions: the axial + limb + orolingual (ALO) score of each session, "
            "summed over its 1-min observations (each 0-12), against the day of L-DOPA "
            "(session time / 24 h + 1: day 1 is the day of the scenario's time 0); thin "
            f"lines: animals (at most the first {KEEP_AIMS_SUBJECTS:,d} of an arm), bold: "
            f"mean \u00b1 SEM across animals. Observations at min after L-DOPA: {periods}")
    within = ("AIMs within a session: the mean ALO score of each 1-min observation (0-12) "
              "against minutes after L-DOPA, in the last session of each arm, with SEM "
              "bands across animals")
    return [(aims_sessions_figure(aims, out / f"{prefix}sessions.png"), "AIMs over sessions",
             over),
            (aims_time_course_figure(aims, out / f"{prefix}time_course.png"),
             "AIMs within a session", within)]


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
                label=f"{literal(arm)} (n={len(g)})")
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
    return _finish(fig, ax, path, "Mushroom spine density against dyskinesia"), caption


#: parkinsonism readouts the lesion figure draws beside the terminals, with their labels
_MOTOR = (("contralateral_use_pct", "cylinder: contralateral forelimb use (%)"),
          ("stepping_contralateral_steps", "stepping: contralateral adjusting steps"),
          ("net_contralateral_turns_per_min", "rotation: net contralateral turns/min"))


def lesion_time_course(readouts: pd.DataFrame, path: Path) -> tuple[Path, str] | None:
    """The lesion's time course: striatal dopamine terminals left (% of intact; the
    ``signaling_state`` readout ``da_terminals``) against days, each arm's mean +- SEM,
    and beside it the parkinsonism tests the run measured (cylinder, stepping,
    rotation) on the same axis; None unless the terminals are measured at two times or
    more."""
    r = readouts
    if "region" in r.columns:
        r = r[r["region"].fillna("striatum") == "striatum"]
    terminals = r[r["readout"] == "da_terminals"]
    if terminals["time_h"].nunique() < 2 or not (terminals["value"] < 0.999).any():
        return None  # no lesion measured over time (mPFC keeps its terminals)
    motor = [(name, label) for name, label in _MOTOR if (r["readout"] == name).any()]
    fig, axes = subplots(1, 1 + len(motor), figsize=(4.2 * (1 + len(motor)), 3.4),
                         squeeze=False)
    panels = [("da_terminals", "dopamine terminals left (%)", 100.0), *(
        (name, label, 1.0) for name, label in motor)]
    for ax, (name, label, scale) in zip(axes[0], panels, strict=True):
        d = r[r["readout"] == name]
        for k, (arm, g) in enumerate(d.groupby("arm", sort=False)):
            stat = g.groupby("time_h")["value"].agg(["mean", "sem", "count"])
            days = stat.index.to_numpy(float) / 24.0
            m = stat["mean"].to_numpy(float) * scale
            e = np.nan_to_num(stat["sem"].to_numpy(float)) * scale
            colour = _COLORS[k % len(_COLORS)]
            ax.plot(days, m, "o-", ms=3, color=colour, label=literal(arm))
            ax.fill_between(days, m - e, m + e, color=colour, alpha=0.2, lw=0)
        ax.set_xlabel("day")
        ax.set_ylabel(label, fontsize=8)
    axes[0][0].set_ylim(0, 105)
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    caption = ("striatal dopamine terminals left after the lesion (model state, "
               "signaling_state) and the parkinsonism tests measured, each arm's mean "
               "\u00b1 SEM against days")
    return Path(path), caption
