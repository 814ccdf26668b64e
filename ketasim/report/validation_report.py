"""The validation report: every target (published vs simulated, pass/fail colours), in
two tables with their own pass counts (calibration targets, whose facts parameters were
fitted to, and validation targets, out of sample), with published and simulated effect
sizes side by side; the synthesis figure; per replica its figures and statistics."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis.diff import comparison_counts
from ketasim.analysis.stats import summarize
from ketasim.analysis.tolerance import Tolerance, ToleranceError, is_p_value
from ketasim.report._mpl import literal, subplots
from ketasim.report.figures import assay_figure
from ketasim.report.html import (
    assay_figures,
    figure_caption,
    img_tag,
    page,
    provenance_html,
    table_html,
)
from ketasim.report.synthesis import synthesis_figure

#: value moves listed in the report's comparison section (all are in comparison.csv)
MOST_MOVED = 15
ROLE_TITLES = {
    "calibration": ("Calibration targets", ("parameters were fitted to these facts "
                                            "(listed under fitted), so passing them shows "
                                            "the fit, not a prediction")),
    "validation": ("Validation targets", ("no parameter was fitted to these facts: "
                                          "out-of-sample tests")),
}


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"  # NaN: nothing to show
    return str(v)


def _targets_table(df: pd.DataFrame, table_id: str, settled: bool = False) -> str:
    cols = ["target_id", "facts", "quantity", "published", "simulated", "tolerance", "status",
            "published_effect", "simulated_effect", "source"]
    if "role" in df and table_id.startswith("targets-"):
        cols.insert(1, "role")
    if "fitted" in df and (df["fitted"].astype(str) != "").any():
        cols.insert(cols.index("source"), "fitted")
    if "replication" in df and (df["replication"].astype(str) != "").any():
        cols.insert(cols.index("status") + 1, "replication")  # passes over further seeds
    if "expected_status" in df and (df["expected_status"].astype(str) != "").any():
        # validate --expect: the statistic at scaled group sizes, inside the tolerance?
        cols[cols.index("simulated") + 1:cols.index("simulated") + 1] = [
            "expected", "expected_status"]
        if "expected_se" in df:  # its standard error (split run), beside it
            cols.insert(cols.index("expected") + 1, "expected_se")
        if settled and "expected_factor" in df:
            # validate --settle: the factor each expectation comes from (as in the CSV)
            after = "expected_se" if "expected_se" in cols else "expected"
            cols.insert(cols.index(after) + 1, "expected_factor")
        if "expected_effect" in df:
            cols.insert(cols.index("simulated_effect") + 1, "expected_effect")
    if "sensitive_to" in df:  # validate --sensitivity: the most influential parameters
        cols.insert(cols.index("source"), "sensitive_to")
    # effect-size columns no row of this table fills take no room (all in validation.csv)
    cols = [c for c in cols if not (c.endswith("_effect") and c in df and df[c].map(
        lambda v: _fmt(v) == "").all())]
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for _, r in df.iterrows():
        # lists (facts, fitted parameters) break after each item so the table fits
        # (spaces added before escaping: the entities' own semicolons stay whole)
        cells = "".join(f'<td class="l">{html.escape(_fmt(r[c]).replace(";", "; "))}</td>'
                        for c in cols)
        rows.append(f'<tr class="{html.escape(r["status"])}">{cells}</tr>')
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(rows)}</table>'


# a published point value: a number, optionally +- its SEM, then a unit or words, but not
# a range (``50-75%``) or arithmetic (``0.74 - 0.02``)
_NUMBER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)(?:\s*\+-\s*(\d+(?:\.\d+)?))?"
                     r"(?!\s*-\s*\d|\.?\d|\s*(?:mg|ug|ng|g/|h\b|min\b|d\b|days?\b|weeks?\b))")
_STATUS_COLOURS = {"pass": "#2ca02c", "fail": "#d62728", "known_gap": "#ff7f0e",
                   "error": "#7f7f7f"}


def _tried_block(tried: tuple[str, ...]) -> str:
    """A known gap's fixes tried and not adopted (or a closed gap's), folded
    (``<details>``), one per item."""
    if not tried:
        return ""
    return (f"<details><summary>Tried and not adopted ({len(tried)})</summary><ol>"
            + "".join(f"<li>{html.escape(t)}</li>" for t in tried) + "</ol></details>")


def _published_point(published, lo: float, hi: float) -> tuple[float, float] | None:
    """The published value and its SEM (NaN if none) where the ``published`` text opens
    with one number on the tolerance band's scale: within a band's width of the band.
    A range, a percentage beside a band of fractions, or a difference written by its
    size ("7.95 points lower" beside a band of negative changes) is not drawn: the text
    says it in words, and a mark on another scale would mislead."""
    m = _NUMBER.match(str(published))
    if not m:
        return None
    value = float(m.group(1))
    width = hi - lo
    if not lo - width <= value <= hi + width:
        return None
    return value, float(m.group(2)) if m.group(2) else np.nan


def targets_figure(sub: pd.DataFrame, path: Path) -> Path | None:
    """Every target of a replica on its own axis (its own unit and scale; a p-value on a
    log axis): the tolerance in grey (a one-sided one shaded to the axis's end), the
    published value (and its SEM) in black where the published text gives one number on
    the band's scale (:func:`_published_point`), the simulated value coloured by status.
    None when no target has a finite simulated value."""
    rows = []
    for r in sub.itertuples(index=False):
        sim = pd.to_numeric(pd.Series([r.simulated]), errors="coerce").iloc[0]
        try:
            tol = Tolerance.parse(str(r.tolerance))
        except ToleranceError:
            continue
        if not np.isfinite(sim):
            continue
        band = np.isfinite(tol.low) and np.isfinite(tol.high)
        pub = (_published_point(r.published, tol.low, tol.high) if band else None)
        rows.append((r.target_id, float(sim), tol, pub, r.status, is_p_value(r.quantity)))
    if not rows:
        return None
    fig, axes = subplots(len(rows), 1, figsize=(6.4, 0.62 * len(rows) + 0.9),
                         squeeze=False)
    for ax, (tid, sim, tol, pub, status, is_p) in zip(axes[:, 0], rows, strict=True):
        finite = [v for v in (tol.low, tol.high, sim, *(pub[:1] if pub else ()))
                  if np.isfinite(v)]
        if is_p:  # a p that underflowed to 0 is drawn at the axis's floor
            ax.set_xscale("log")
            lo_x = min([v for v in finite if v > 0] + [1e-3]) / 3.0
            hi_x = 1.0
            sim = max(sim, lo_x)
        else:
            lo_x, hi_x = min(finite), max(finite)
            pad = 0.15 * (hi_x - lo_x) or 0.15 * max(abs(hi_x), 1e-9)
            lo_x, hi_x = lo_x - pad, hi_x + pad
        a = max(tol.low, lo_x)
        b = min(tol.high, hi_x)
        ax.axvspan(a, b, color="#dddddd", lw=0)
        if pub is not None:
            value, se = pub
            if np.isfinite(se):
                ax.errorbar(value, 0, xerr=se, fmt="none", ecolor="k", capsize=3, lw=1)
            ax.plot(value, 0, "k|", ms=14, mew=2)
        ax.plot(sim, 0, "o", color=_STATUS_COLOURS.get(status, "k"), ms=7)
        ax.set_xlim(lo_x, hi_x)
        ax.set_yticks([0], [literal(tid)], fontsize=8)
        ax.set_ylim(-1, 1)
        ax.tick_params(axis="x", labelsize=7)
        ax.text(1.01, 0.5, literal(tol.text), transform=ax.transAxes, fontsize=7, va="center")
    axes[0, 0].set_title("each target on its own axis (p-values: log axis); grey: tolerance;"
                         "\nblack: published (+- SEM) where one number; dot: simulated "
                         "(green pass, orange known gap, red fail)", fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _comparison_html(comparison: pd.DataFrame, against: dict | None) -> list[str]:
    """``validate --against``: the targets whose verdict changed, and the largest moves of
    the simulated values (:mod:`ketasim.analysis.diff`)."""
    k = comparison_counts(comparison)
    where = html.escape(str((against or {}).get("path", "an earlier validation")))
    out = ['<h2 id="against">Against an earlier validation</h2>',
           (f"<p>Against <code>{where}</code>: {len(comparison)} targets, "
            f"<b>{k['status']} changed verdict</b>, {k['value']} moved value only, "
            f"{k['same']} the same, {k['new']} not run there.</p>")]
    cols = ["target_id", "role", "quantity", "status_before", "status", "simulated_before",
            "simulated", "relative_change", "tolerance"]
    changed = comparison[comparison["change"] == "status"]
    if not changed.empty:
        out.append(table_html(changed[cols], None, "against-status"))
    moved = comparison[comparison["change"] == "value"]
    if not moved.empty:
        top = moved.reindex(moved["relative_change"].abs().sort_values(
            ascending=False, na_position="first").index).head(MOST_MOVED)
        out.append(f"<p>The {len(top)} largest moves of the simulated value (relative to "
                   "the larger of the two; all in comparison.csv):</p>")
        out.append(table_html(top[cols], None, "against-values"))
    return out


def write_validation_report(out: Path, result, table: pd.DataFrame,
                            manifest: dict | None = None,
                            comparison: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` and ``figures/*.png`` into ``out`` (with a Provenance section
    from ``manifest`` when given, and a section on what moved against an earlier
    validation when ``comparison`` is given)."""
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    c = result.counts()
    body = [
        "<h1>ketasim validation</h1>",
        (f"<p>{len(result.results)} literature targets from {len(result.replicas)} "
         f"replica{'' if len(result.replicas) == 1 else 's'}: "
        f"<b>{c['pass']} pass</b>, <b>{c['fail']} fail</b>, {c['known_gap']} known gaps, "
        f"{c['error']} errors ({result.seconds:.1f} s).</p>"),
    ]
    changed = ((manifest or {}).get("registry") or {}).get("changed") or []
    if changed:
        # validate --set: say at the top that these are not the packaged model's verdicts
        body.append(
            '<p id="changed-note"><b>Run with parameter values changed from the packaged '
            "registry</b> (a what-if, not the model's validation): " + html.escape(", ".join(
                f"{c['name']} = {c['value']:g} (default {c['default']:g})"
                if c.get("default") is not None else f"{c['name']} = {c['value']:g}"
                for c in changed)) + ".</p>")
    if comparison is not None:
        body.extend(_comparison_html(comparison, (manifest or {}).get("against")))
    if result.expect:
        # validate --expect: the verdicts that the model's expectation contradicts
        odd = result.by_expectation()
        scale = f"every group size x {result.expect}"
        if result.settle:  # validate --settle: the targets read at a larger factor
            rerun = ", ".join(f"{name} x {f}" for name, f in sorted(result.settled().items()))
            scale += (f", up to x {result.settle} for the replicas whose expectations "
                      f"were not settled (expected_factor): {rerun or 'none needed'}")
        body.append(
            f'<p id="expectation">Expectation ({html.escape(scale)}): '
            "passing by chance (outside the tolerance in expectation): "
            f"{html.escape(', '.join(odd['by_chance']) or 'none')}; sampling misses "
            "(failing or known gaps, inside the tolerance in expectation): "
            f"{html.escape(', '.join(odd['sampling_miss']) or 'none')}; within t "
            "standard errors of a bound (expected_se, an SD over parts of the run; t is "
            "Student's 95% quantile for the parts, 2.36 with 8; not settled at its "
            "factor): "
            f"{html.escape(', '.join(odd['near_bound']) or 'none')}.</p>")
    for role, rc in result.role_counts().items():
        title, what = ROLE_TITLES[role]
        body.append(f'<h2 id="role-{role}">{title}</h2>')
        body.append(f"<p>{rc['total']} {role} targets: <b>{rc['pass']} pass</b>, "
                    f"<b>{rc['fail']} fail</b>, {rc['known_gap']} known gaps, "
                    f"{rc['error']} errors. {what[0].upper()}{what[1:]}. Published and "
                    "simulated effect sizes stand side by side where the targets file "
                    "gives them.</p>")
        sub = table[table["role"] == role]
        if not sub.empty:
            body.append(_targets_table(sub, role, result.settle > 0))
    errors = [r for r in result.results if r.status == "error"]
    if errors:
        body.append('<h2 id="errors">Errors</h2><p>Targets whose statistic could not be '
                    "computed on the replica's data:</p><ul>" + "".join(
                        f"<li><b>{html.escape(r.target.target_id)}</b> "
                        f"({html.escape(r.target.statistic)}): {html.escape(r.message)}</li>"
                        for r in errors) + "</ul>")
    gaps = [r for r in result.results if r.status == "known_gap"]
    if gaps:
        body.append('<h2 id="known-gaps">Known gaps</h2><p>Targets the model does not '
                    "reproduce yet, with the reason (shown in red, counted, not failing) "
                    "and, folded beneath it, the fixes tried and not adopted:"
                    "</p><ul>" + "".join(
                        f"<li><b>{html.escape(r.target.target_id)}</b> "
                        f"({html.escape(r.target.quantity)}): {html.escape(r.message)}"
                        f"{_tried_block(r.target.tried)}</li>"
                        for r in gaps) + "</ul>")
    inside = result.gaps_inside()
    if inside:
        body.append('<p id="gaps-inside">Known gaps inside their tolerance in this run (has a '
                    "gap closed? check it, at further seeds and in expectation, and close "
                    f"it): {html.escape(', '.join(inside))}.</p>")
    history = [r for r in result.results if r.status != "known_gap" and r.target.tried]
    if history:
        body.append('<h2 id="tried-history">What was tried on targets now reproduced</h2>'
                    "<p>Targets that were known gaps, with the fixes tried and not adopted "
                    "before the one that closed them:</p><ul>" + "".join(
                        f"<li><b>{html.escape(r.target.target_id)}</b> "
                        f"({html.escape(r.target.quantity)}){_tried_block(r.target.tried)}"
                        "</li>" for r in history) + "</ul>")
    syn = synthesis_figure({k: v.readouts for k, v in result.replicas.items()},
                           figdir / "synthesis.png")
    if syn is not None:
        body += ["<h2>Synthesis (F-W-20)</h2>",
                 img_tag(syn, "synthesis", "Ketamine minus vehicle, each readout normalised "
                         "to its largest difference; logarithmic time from minutes to weeks.")]
    for name, run in result.replicas.items():
        sc = run.scenario
        body.append(f'<h2 id="replica-{html.escape(name)}">Replica: {html.escape(name)}</h2>')
        body.append(f"<p>{html.escape(sc.description)} Species {sc.species}; arms: "
                    + ", ".join(f"{html.escape(a.name)} (n={a.n})" for a in sc.arms) + ".</p>")
        sub = table[table["replica"] == name]
        if not sub.empty:
            body.append(_targets_table(sub, f"targets-{name}", result.settle > 0))
            png = targets_figure(sub, figdir / f"{name}_targets.png")
            if png is not None:
                body.append(img_tag(png, f"{name} targets", (
                    f"{name}: each target's published value (with its SEM where the "
                    "targets file gives one) against the simulated one, on the tolerance "
                    "band")))
        summary = summarize(run.readouts)
        for assay in dict.fromkeys(summary["assay"]):
            png = assay_figure(run.readouts, summary, assay, figdir / f"{name}_{assay}.png")
            body.append(img_tag(png, f"{name} {assay}",
                                f"{name}: {figure_caption(assay)}"))
        body.extend(assay_figures(figdir, run.kept, f"{name}_"))
        if not run.stats.empty:
            body.append(table_html(run.stats, "p", f"stats-{name}"))
    if manifest is not None:
        body.extend(provenance_html(manifest))
    path = out / "report.html"
    path.write_text(page("ketasim validation", body))
    return path
