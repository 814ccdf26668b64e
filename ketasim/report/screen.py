"""The files and report of ``ketasim screen``: the ranked table (CSV and Parquet), the
readouts, the scenario, the manifest, and ``report.html`` with the ranked figure, the
metrics heat map, the plasticity-window time courses and, with several doses, the
dose-response curves.

Takes the screen's result by its fields (``plan``, ``table``, ``readouts``, ``rank_by``,
``seconds``, ``workers``; see :class:`ketasim.screen.ScreenResult`) and the metric
dictionary as a table, so the report layer does not import the screen.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from ketasim.io.results import write_json, write_readouts
from ketasim.report._mpl import literal, subplots
from ketasim.report.figures import unit_label
from ketasim.report.html import img_tag, page, provenance_html, table_html

ROLE_COLORS = {"reference": "#d62728", "vehicle": "#7f7f7f", "candidate": "#1f77b4"}
# candidate lines: the default cycle without the reference's red and the vehicle's grey
# (compared as hex: matplotlib may give the cycle as RGB tuples)
_COLORS = [c for c in map(matplotlib.colors.to_hex,
                          matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
           if c not in ROLE_COLORS.values()]
DOSE_RESPONSE_METRICS = ("window_peak", "formation_drive_peak", "spine_gain_24h_pct",
                         "tst_rescue_48h_s", "nmda_occupancy_pyramidal_peak",
                         "efficacy_vs_reference")


_STYLES = ("-", "--", ":", "-.")


def fixed(v: float, spec: str) -> str:
    """``format(v, spec)`` without a negative zero: a value that rounds to 0 is "0.00",
    not "-0.00" (which reads as a small harm)."""
    m = re.fullmatch(r"\.(\d+)f", spec)
    if m and math.isfinite(v):
        v = round(v, int(m.group(1))) + 0.0
    return format(v, spec)


def _label(r) -> str:
    """An arm's name in the figures (the compound drawn literally: see
    :func:`ketasim.report._mpl.literal`)."""
    if r["role"] == "vehicle":
        return "vehicle (saline)"
    tag = " (reference)" if r["role"] == "reference" else ""
    return f"{literal(r['compound'])} {r['dose_mg_per_kg']:g} mg/kg{tag}"


def ranking_figure(table: pd.DataFrame, path: Path, rank_by: str) -> Path:
    """Horizontal bars in rank order: efficacy and dissociation-like effect, each as a
    fraction of the reference (ketamine 10 mg/kg)."""
    t = table.reset_index(drop=True)
    y = np.arange(len(t))[::-1]
    fig, axes = subplots(1, 2, figsize=(10.5, 1.2 + 0.42 * len(t)), sharey=True)
    colors = [ROLE_COLORS.get(r, "C0") for r in t["role"]]
    for ax, col, title in ((axes[0], "efficacy_vs_reference", "efficacy"),
                           (axes[1], "dissociation_vs_reference", "dissociation-like")):
        v = t[col].to_numpy(float)
        ax.barh(y, np.nan_to_num(v), color=colors, alpha=0.85)
        for yi, vi in zip(y, v, strict=True):
            if math.isfinite(vi):
                ax.text(vi, yi, f" {fixed(vi, '.2f')}", va="center",
                        ha="left" if vi >= 0 else "right", fontsize=8)
        ax.axvline(1.0, ls="--", lw=1, color=ROLE_COLORS["reference"])
        ax.axvline(0.0, lw=0.8, color="k")
        ax.set_xlabel(f"{title} (x ketamine 10 mg/kg)")
        ax.grid(axis="x", alpha=0.3)
        lo, hi = np.nanmin(np.append(v, 0.0)), np.nanmax(np.append(v, 1.0))
        ax.set_xlim(lo - 0.1 * (hi - lo) - 0.05, hi + 0.25 * (hi - lo))
    axes[0].set_yticks(y, [f"{int(r['rank'])}. {_label(r)}" if pd.notna(r["rank"])
                           else _label(r) for _, r in t.iterrows()], fontsize=8)
    fig.suptitle(f"ranked by {literal(rank_by)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def metrics_figure(table: pd.DataFrame, metrics: pd.DataFrame, path: Path) -> Path:
    """Every metric of every arm (rank order), coloured as a fraction of the reference's
    value and written with its own value and unit."""
    cols = [m for m in metrics["metric"] if m in table and not m.endswith("_vs_reference")]
    units = dict(zip(metrics["metric"], metrics["unit"], strict=True))
    t = table.reset_index(drop=True)
    ref = t[t["role"] == "reference"].iloc[0]
    rel = np.full((len(t), len(cols)), np.nan)
    for j, c in enumerate(cols):
        r = float(ref[c])
        if r != 0 and math.isfinite(r) and c != "window_peak_time_h":
            rel[:, j] = t[c].to_numpy(float) / r
    fig, ax = subplots(figsize=(1.05 * len(cols) + 3.5, 1.4 + 0.42 * len(t)))
    im = ax.imshow(np.clip(rel, -0.5, 1.5), cmap="RdBu_r", vmin=-1.5, vmax=1.5,
                   aspect="auto")
    for i in range(len(t)):
        for j, c in enumerate(cols):
            v = t.loc[i, c]
            ax.text(j, i, "" if pd.isna(v) else f"{v:.3g}", ha="center", va="center",
                    fontsize=7)
    ax.set_xticks(range(len(cols)), [f"{c}\n({unit_label(units[c])})" for c in cols], rotation=40,
                  ha="right", fontsize=7)
    ax.set_yticks(range(len(t)), [_label(r) for _, r in t.iterrows()], fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, label="x reference (colour clipped)")
    ax.set_title("metrics (values in the cells; colour: fraction of the reference's)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def window_figure(readouts: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    """The plasticity window: plasticity potential above vehicle (each arm relative to
    its own pre-dose level), 0-72 h, for every arm, each candidate in its own colour and
    line style; the time axis is linear to 1 h and logarithmic beyond (and says so), the
    legend beside the axes."""
    d = readouts[(readouts["assay"] == "signaling_state")
                 & (readouts["readout"] == "plasticity_potential")]
    m = d.groupby(["arm", "time_h"])["value"].mean().unstack("time_h")
    m = m.sub(m[0.0], axis=0)
    m = m.sub(m.loc["vehicle"], axis=1)
    m = m.loc[:, (m.columns >= 0) & (m.columns <= 72)]
    fig, ax = subplots(figsize=(10.0, 4.6))
    k = 0
    for _, r in table.iterrows():
        if r["arm"] not in m.index or r["role"] == "vehicle":
            continue
        if r["role"] == "reference":
            style = {"color": ROLE_COLORS["reference"], "lw": 2.2, "ls": "-"}
        else:  # colour and line style together tell 28 candidates apart
            style = {"color": _COLORS[k % len(_COLORS)], "lw": 1.2,
                     "ls": _STYLES[(k // len(_COLORS)) % len(_STYLES)]}
            k += 1
        ax.plot(m.columns, m.loc[r["arm"]], marker="o", ms=2.5, label=_label(r), **style)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, 80)
    ax.set_xticks([0, 1, 2, 4, 8, 12, 24, 48, 72], ["0", "1", "2", "4", "8", "12", "24",
                                                    "48", "72"])
    ax.set_xlabel("time after the dose (h; linear to 1 h, logarithmic beyond)")
    ax.set_ylabel("plasticity potential above vehicle")
    n = table["n"].dropna().astype(int).unique() if "n" in table else []
    ax.set_title("mean of each arm" + (f" ({n[0]} mice per arm)" if len(n) == 1 else ""),
                 fontsize=8, loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def dose_response_figure(table: pd.DataFrame, metrics: pd.DataFrame, path: Path) -> Path:
    """One panel per key metric: value against dose (log axis), a line per compound; the
    reference arm as a red star, the vehicle level as a grey line."""
    units = dict(zip(metrics["metric"], metrics["unit"], strict=True))
    # a compound's line: its candidate arms (with the reference arm when ketamine itself
    # is screened, since ketamine 10 mg/kg is run once)
    screened = list(dict.fromkeys(table.loc[table["role"] == "candidate", "compound"]))
    cand = table[(table["role"] != "vehicle") & table["compound"].isin(screened)]
    doses = sorted(set(cand["dose_mg_per_kg"]))
    veh = table[table["role"] == "vehicle"].iloc[0]
    ref = table[table["role"] == "reference"].iloc[0]
    ncol = 3
    nrow = math.ceil(len(DOSE_RESPONSE_METRICS) / ncol)
    fig, axes = subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    compounds = screened
    for ax, col in zip(axes.ravel(), DOSE_RESPONSE_METRICS, strict=False):
        for k, name in enumerate(compounds):
            c = cand[cand["compound"] == name].sort_values("dose_mg_per_kg")
            ax.plot(c["dose_mg_per_kg"], c[col], "-o", ms=3.5,
                    color=_COLORS[k % len(_COLORS)], label=literal(name))
        ax.plot([ref["dose_mg_per_kg"]], [ref[col]], "*", ms=12,
                color=ROLE_COLORS["reference"], label="reference")
        ax.axhline(veh[col], color=ROLE_COLORS["vehicle"], lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(doses, [f"{d:g}" for d in doses])
        ax.minorticks_off()
        ax.set_xlabel("dose (mg/kg)")
        ax.set_ylabel(units.get(col, ""))
        ax.set_title(col, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(DOSE_RESPONSE_METRICS):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _table_for_html(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t["rank"] = t["rank"].astype(object).where(t["rank"].notna(), "")
    t["rank"] = t["rank"].map(str)
    return t


def write_screen(out: Path, result, metrics: pd.DataFrame, manifest: dict) -> list[Path]:
    """Write the screen's files into ``out`` (an empty folder): ``screen.csv``,
    ``screen.parquet``, ``readouts.parquet``, ``screen_scenario.yaml``,
    ``manifest.json``, the figures (``fig_*.png``) and ``report.html``."""
    out = Path(out)
    table = result.table
    table.to_csv(out / "screen.csv", index=False)
    table.to_parquet(out / "screen.parquet", index=False)
    write_readouts(result.readouts, out / "readouts.parquet")
    (out / "screen_scenario.yaml").write_text(result.plan.scenario_text)
    write_json(manifest, out / "manifest.json")
    plan = result.plan
    figs = [img_tag(ranking_figure(table, out / "fig_ranking.png", result.rank_by),
                    "ranking", "Ranked candidates: efficacy (mean of the efficacy metrics, "
                    "each as a fraction of ketamine 10 mg/kg's) and the dissociation-like "
                    "effect (NMDA occupancy on pyramidal neurons, open-field "
                    "hyperlocomotion) on the same scale; reference red, vehicle grey.")]
    figs.append(img_tag(metrics_figure(table, metrics, out / "fig_metrics.png"), "metrics",
                        "Every metric of every arm: the value in each cell (units under the "
                        "column names), coloured as a fraction of the reference's value."))
    figs.append(img_tag(window_figure(result.readouts, table, out / "fig_window.png"),
                        "plasticity window", "The plasticity window: latent plasticity "
                        "potential above vehicle (each arm from its own pre-dose level), "
                        "mean of the arm's subjects."))
    if len(plan.doses) > 1 and not plan.per_compound:
        figs.append(img_tag(dose_response_figure(table, metrics,
                                                 out / "fig_dose_response.png"),
                            "dose-response", "Dose-response per compound; the reference "
                            "(ketamine 10 mg/kg) as a red star, the vehicle as a dashed "
                            "grey line."))
    e = html.escape
    doses = ("each at its effective dose (" + ", ".join(f"{d:g}" for d in plan.doses) + ")"
             if plan.per_compound else ", ".join(f"{d:g}" for d in plan.doses))
    body = [
        "<h1>ketasim screen</h1>",
        (f"<p>{len(plan.compounds)} candidates ({e(', '.join(plan.compounds))}) at "
         f"{e(doses)} mg/kg {e(plan.route)}, {e(plan.species)}, stress model "
         f"<b>{e(plan.stress)}</b>, n = {plan.n} per arm, seed {plan.seed}; "
         f"{len(plan.arms)} arms in {result.seconds:.1f} s on {e(result.where)}. "
         f"Ranked by <b>{e(result.rank_by)}</b> (rank 1 = best; the vehicle "
         "and the reference are ranked with the candidates).</p>"),
        ("<p>Each metric is a difference from the vehicle arm: time courses are taken from "
        "each arm's own pre-dose level first, so the slow recovery from the stress "
        "cancels. The signalling metrics are latent model states (no measurement noise); "
        "spines, tail suspension and open field are simulated measurements with "
        "between-subject variability and the lab's noise, so with small n they move from "
        "seed to seed. The arms are in <code>screen_scenario.yaml</code>: <code>ketasim "
        "run</code> on it gives the same readouts.</p>"),
    ]
    if plan.notes:
        body.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in plan.notes) + "</ul>")
    body += ["<h2>Ranking</h2>", table_html(_table_for_html(table), None, "screen"),
             "<h2>Figures</h2>", *figs,
             "<h2>Metrics</h2>", table_html(metrics, None, "metrics"),
             *provenance_html(manifest)]
    (out / "report.html").write_text(page("ketasim screen", body))
    return sorted(out.iterdir())
