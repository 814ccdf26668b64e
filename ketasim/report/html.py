"""The self-contained HTML report of a run (figures inlined, also saved as PNG)."""

from __future__ import annotations

import base64
import html
import importlib
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis.stats import NESTED_SUFFIX
from ketasim.experiment.assays import ASSAYS
from ketasim.report.figures import assay_figure, panels
from ketasim.report.striatal_figures import lesion_time_course, mushroom_vs_aims

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.sig{background:#e6f4e6} figure{margin:1.5em 0} img{max-width:100%}
tr.pass td{background:#e6f4e6} tr.fail td{background:#fbe3e3} tr.known_gap td{background:#fbe3e3}
tr.error td{background:#f6d2d2} .badge{font-weight:bold;padding:2px 6px;border-radius:3px}
ul.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:.5em 2em}
"""


FIGURE_NOTE = ("mean \u00b1 SEM per arm; time courses as lines with SEM bands (each arm its "
               "own colour, marker and line style; a point with fewer subjects than its "
               "arm has elsewhere labelled with its n), single time points as bars with "
               "individual subjects as dots; values below a limit of quantification are "
               "missing")


def figure_caption(assay: str) -> str:
    """The caption of an assay's summary figure: what is drawn (:data:`FIGURE_NOTE`) and
    what its readouts mean where the assay declares it; a ``_nested`` table's SEM is over
    its units (segments, branches, cells), which are not independent animals."""
    base = assay.removesuffix(NESTED_SUFFIX)
    note = FIGURE_NOTE
    if assay != base:
        note = note.replace("mean \u00b1 SEM per arm", "mean \u00b1 SEM over the units of "
                            "each arm (segments, branches or cells, nested in animals: the "
                            "SEM is narrower than over animals)")
    spec = ASSAYS.get(base)
    meant = [f"{r.name}: {r.description}" for r in (spec.readouts if spec else ())
             if r.description]
    return f"{assay}: {note}" + (f". {'; '.join(meant)}" if meant else "")


def _tags(*figures: tuple[Path | None, str, str]) -> list[str]:
    """Figure tags for the (png, alt, caption) triples whose figure was drawn."""
    return [img_tag(png, alt, caption) for png, alt, caption in figures if png is not None]


def assay_figures(out: Path, kept: dict[str, dict[str, dict]], prefix: str) -> list[str]:
    """The figures each assay declares (``Assay.figures``, ``"module:function"``) drawn
    from what it kept in the run (``kept``: assay -> arm -> kept dict). A figure function
    takes ``(kept by arm, folder, file prefix)`` and returns ``(png, alt, caption)``
    triples."""
    tags: list[str] = []
    for name, by_arm in kept.items():
        assay = ASSAYS.get(name.partition("@")[0])  # "assay@region": another region's
        if assay is None or not by_arm:
            continue
        for ref in assay.figures:
            tags += _tags(*resolve(ref)(by_arm, out, f"{prefix}{name.replace('@', '_')}_"))
    return tags


def resolve(ref: str):
    """The function a ``"package.module:function"`` reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def img_tag(png: Path, alt: str, caption: str) -> str:
    """A figure with the PNG inlined (the page must open offline)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title: str, body: list[str]) -> str:
    return "\n".join(["<!doctype html><html><head><meta charset='utf-8'>",
                      f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
                      *body, "</body></html>"])


def table_html(df: pd.DataFrame, sig_col: str | None = None, cls_id: str = "",
               sig_rows: pd.Series | None = None) -> str:
    """A table; rows with ``sig_col`` below 0.05 shaded (only those ``sig_rows`` marks,
    where given: e.g. a trial's primary contrast, not its unadjusted secondary visits)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for i, r in df.iterrows():
        sig = (sig_col and pd.notna(r[sig_col]) and r[sig_col] < 0.05
               and (sig_rows is None or bool(sig_rows.loc[i])))
        cls = ' class="sig"' if sig else ""
        cells = "".join(  # a missing number (no baseline, no SEM) is an empty cell
            ("<td></td>" if math.isnan(v) else f"<td>{html.escape(f'{v:.4g}')}</td>")
            if isinstance(v, float)
            else f'<td class="l">{html.escape(str(v))}</td>' for v in r)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<table id="{cls_id}"><tr>{head}</tr>{"".join(body)}</table>'


def provenance_html(manifest: dict) -> list[str]:
    """The "Provenance" section of a report from a manifest's provenance entries
    (:mod:`ketasim.provenance`): version, commit and dirty flag, times, registry digest,
    the parameter values changed from the packaged defaults and the input file hashes."""
    e = html.escape
    git = manifest.get("git") or {}
    commit = git.get("commit")
    dirty = git.get("dirty")
    state = ("not a git checkout" if commit is None else
             f"<code>{e(commit)}</code>" + (" (uncommitted changes)" if dirty else ""))
    reg = manifest.get("registry") or {}
    changed = reg.get("changed") or []
    libs = ", ".join(f"{e(k)} {e(str(v))}" for k, v in (manifest.get("libraries") or {}).items()
                     if v is not None)
    items = [
        ("ketasim", e(str(manifest.get("ketasim_version")))),
        ("source commit", state),
        ("dirty tree", "unknown" if dirty is None else "yes" if dirty else "no"),
        ("started (UTC)", e(str(manifest.get("started_utc")))),
        ("finished (UTC)", e(str(manifest.get("finished_utc")))),
        ("platform", e(f"{manifest.get('platform')}, Python {manifest.get('python')}")),
        ("libraries", libs),
        ("parameter registry", f"<code>{e(str(reg.get('sha256')))}</code>"),
    ]
    if manifest.get("peak_rss_mb") is not None:
        items.append(("peak memory (RSS)", f"{float(manifest['peak_rss_mb']):,.0f} MB"))
    rows = "".join(f'<tr><th class="l">{k}</th><td class="l">{v}</td></tr>' for k, v in items)
    out = ["<h2>Provenance</h2>", f'<table id="provenance">{rows}</table>']
    if changed:
        out.append(table_html(pd.DataFrame(changed, columns=["name", "default", "value"]),
                              None, "changed-parameters"))
    else:
        out.append("<p>Parameter values: the packaged defaults.</p>")
    inputs = manifest.get("inputs") or []
    if inputs:
        out.append(table_html(pd.DataFrame(inputs, columns=["path", "sha256"]), None,
                              "input-files"))
    return out


def trial_html(out: Path, tables, design, summary: pd.DataFrame) -> list[str]:
    """The "Trial" section of a run with a ``design:``: the design in words, the scale
    over time per arm with the psychotomimetic scales beneath (``fig_trial.png``), the
    MMRM contrasts against control, response and remission at the primary visit
    (``fig_trial_endpoints.png``) and the CONSORT counts. ``tables``:
    :class:`ketasim.experiment.trial.TrialTables`."""
    from ketasim.report.trial_figures import (
        endpoints_figure,
        psychotomimetic_panels,
        relapse_figure,
        trial_course_figure,
    )
    from ketasim.scenario.units import format_time

    e = html.escape
    trial = tables.trial
    arms = list(dict.fromkeys(tables.disposition["arm"]))
    if design.crossover is not None:  # the course is drawn per treatment
        arms = list(dict.fromkeys(trial.loc[trial["kind"] == "observed", "arm"]))
    drop = design.dropout
    words = (f"Scale {e(design.scale)}, control arm {e(design.control)}, baseline "
             f"{e(format_time(design.baseline))}, primary visit "
             f"{e(format_time(design.primary))}. Primary analysis: "
             + (e(str(trial.loc[trial["kind"] == "contrast", "model"].iloc[0]))
                + f", {e(design.df)} df"
                if (trial["kind"] == "contrast").any() else "not fitted")
             + "; change from baseline, intent to treat (missing visits left missing). "
             + ("No dropout simulated." if drop is None else
                f"Dropout {drop.rate_per_week:g} per week ({e(drop.mechanism.upper())}).")
             + " Response and remission: patients who left count as non-responders.")
    body = ["<h2>Trial</h2>", f"<p>{words}</p>"]
    body += [f"<p><b>Note:</b> {e(n)}</p>" for n in tables.notes]
    body += _tags((trial_course_figure(trial, summary, design.scale, arms, design.primary,
                                       out / "fig_trial.png"), "trial time course",
                   (f"{design.scale}: mean change from baseline \u00b1 SE per arm (patients "
                    "seen at each visit), on a time axis "
                    + ("in weeks" if trial["visit_h"].max() > 8 * 7 * 24 else
                       "linear to 1 h and logarithmic beyond") + ("; the psychotomimetic scales beneath, mean \u00b1 SEM at "
                                "each rating (not joined: nothing is rated between them)"
                                if psychotomimetic_panels(summary, design.scale, arms)
                                else ""))))
    con = trial[trial["kind"] == "contrast"]
    if not con.empty:
        shown = con[["arm", "control", "visit_h", "primary", "n", "n_control", "estimate",
                     "se", "df", "t", "p", "ci_low", "ci_high", "df_method"]]
        title = ("Crossover: each treatment against the reference (within patients)"
                 if design.crossover is not None else "MMRM: each arm against control")
        body += [f"<h3>{title}</h3>",
                 table_html(shown, "p", "trial", sig_rows=shown["primary"].astype(bool)),
                 ("<p>95% confidence intervals (ci_low, ci_high); visits in hours from the "
                 "first dose. The contrast at the primary visit is the trial's test (shaded "
                 "where p &lt; 0.05); the other visits' p-values are not adjusted for "
                 "multiplicity.</p>")]
    if tables.relapse is not None:
        body += ["<h3>Time to relapse</h3>"]
        body += _tags((relapse_figure(tables.relapse_km, out / "fig_trial_relapse.png"),
                       "time to relapse", "Kaplan-Meier per arm; log-rank and Cox below"))
        body.append(table_html(_relapse_shown(tables.relapse_summary), "logrank_p",
                               "relapse"))
        if int(tables.relapse_summary["events"].sum()) == 0:
            body.append("<p><b>No relapse in any arm</b>: the medians are not reached and "
                        "neither the log-rank test nor the hazard ratio can be "
                        "estimated.</p>")
        body.append(table_html(tables.relapse_cox, "p", "relapse_cox"))
    body += _tags((endpoints_figure(tables.endpoints, design.primary,
                                    out / "fig_trial_endpoints.png"), "response and remission",
                   "response and remission at the primary visit, 95% Wilson intervals"))
    at = tables.endpoints[tables.endpoints["primary"]]
    if not at.empty and design.crossover is not None:
        body.append("<p>Within patients against the reference: the discordant pairs "
                    "(event on this treatment only, on the reference only), the "
                    "matched-pairs odds ratio with its exact interval, McNemar's exact "
                    "test, and the conditional logistic regression with the period.</p>")
        body.append(table_html(at[["endpoint", "arm", "n", "events", "proportion",
                                   "ci_lower", "ci_upper", "n_pairs", "arm_only",
                                   "control_only", "odds_ratio", "or_ci_lower",
                                   "or_ci_upper", "mcnemar_p", "clogit_or", "clogit_p",
                                   "clogit_note"]], "mcnemar_p", "endpoints"))
    elif not at.empty:
        body.append(table_html(at[["endpoint", "arm", "n", "events", "proportion",
                                   "ci_lower", "ci_upper", "odds_ratio", "or_ci_lower",
                                   "or_ci_upper", "fisher_p"]], "fisher_p", "endpoints"))
    if tables.intercurrent_summary is not None:
        strategy = design.strategy.replace("_", " ")
        body += ["<h3>Intercurrent events</h3>",
                 (f"<p>Estimand strategy: {e(strategy)} ("
                  + {"hypothetical": "ratings after a patient's event are set missing",
                     "while_on_treatment": "ratings after a patient's event take their "
                     "last rating at or before it"}.get(design.strategy,
                                                        "every rating counts")
                  + "). An event stops the withheld drugs' later doses; the patient "
                  "stays in the trial.</p>"),
                 table_html(tables.intercurrent_summary, None, "intercurrent")]
    body += ["<h3>CONSORT</h3>", table_html(tables.consort, None, "consort")]
    if tables.strata is not None:
        block = design.block_size or "twice the ratio's sum"
        body += ["<h3>Stratified randomisation</h3>",
                 (f"<p>One pool, permuted blocks ({block}) within strata of "
                  f"{', '.join(design.stratify)}; candidates allocated and patients "
                  "randomised after screening, per stratum and arm.</p>"),
                 table_html(tables.strata, None, "strata")]
    return body


#: summary rows listed in a run's comparison section (all are in comparison.csv)
MOST_MOVED_ROWS = 20


def against_html(comparison: pd.DataFrame, against: dict | None) -> list[str]:
    """``run --against``: how many summary means moved against the earlier run, and the
    rows that moved most, by ``|z|`` (the difference over the two means' combined SEM)
    and then by the relative change."""
    where = html.escape(str((against or {}).get("path", "an earlier run")))
    kinds = comparison["change"].value_counts()
    moved = comparison[comparison["change"] == "value"]
    out = ['<h2 id="against">Against an earlier run</h2>',
           (f"<p>Against <code>{where}</code>: {len(comparison)} summary rows, "
            f"<b>{int(kinds.get('value', 0))} moved</b>, {int(kinds.get('same', 0))} the "
            f"same, {int(kinds.get('new', 0))} not in the earlier run. z: the difference "
            "over the two means' combined SEM.</p>")]
    if not moved.empty:
        order = moved.assign(_z=moved["z"].abs().fillna(float("inf")),
                             _r=moved["relative_change"].abs().fillna(float("inf")))
        top = order.sort_values(["_z", "_r"], ascending=False).head(MOST_MOVED_ROWS)
        out.append(table_html(top.drop(columns=["_z", "_r", "change"]), None,
                              "against-rows"))
    return out


def warnings_html(lines: list[str]) -> list[str]:
    """A "Warnings" section (the manifest's ``warnings``: doses far above a compound's
    effective dose, ...), or nothing."""
    if not lines:
        return []
    items = "".join(f"<li>{html.escape(str(line))}</li>" for line in lines)
    return ["<h2>Warnings</h2>", f'<ul id="warnings" class="warn">{items}</ul>']


def _relapse_shown(summary: pd.DataFrame) -> pd.DataFrame:
    """The relapse summary as a reader wants it: a median (or a bound of its interval)
    the curve never reaches reads "not reached", not "inf"."""
    out = summary.copy()
    for c in ("median", "median_ci_lower", "median_ci_upper"):
        if c in out:
            out[c] = [("not reached" if v == np.inf else v) for v in out[c]]
    return out


def _stats_html(stats: pd.DataFrame) -> list[str]:
    """The comparisons, shaded where significant after Holm's adjustment over all of
    them (the family-wise error rate; ``p`` is each test's own)."""
    col = "p_holm" if "p_holm" in stats.columns else "p"
    n = int(np.isfinite(stats["p"].to_numpy(float)).sum())
    note = (f"<p class='note'>p: each comparison's own test; p_holm: Holm-adjusted over "
            f"the {n} comparisons with a p (family-wise error rate). Shaded: p_holm &lt; "
            "0.05.</p>" if col == "p_holm" and n > 1 else "")
    untested = stats[~np.isfinite(stats["p"].to_numpy(float))]
    missing = "; ".join(
        f"{r.readout} at {r.time_h:g} h ({r.groups}; n {r.n})" for r in untested.itertuples())
    gaps = (f"<p class='note'>No test (an arm with fewer than 2 values, or a model that "
            f"could not be fitted): {html.escape(missing)}.</p>" if missing else "")
    return [table_html(stats, col, "stats"), note, gaps]


def _summary_html(summary: pd.DataFrame) -> list[str]:
    """The summary table without rows that hold no measurement (n 0: a readout below its
    limit of quantification in every subject, e.g. a drug's plasma level in the saline
    arm) and without the readouts the figures leave out as flat (a state the scenario
    leaves at rest); they stay in summary.csv, and the page says how many were left
    out."""
    empty = summary["n"] == 0 if "n" in summary else pd.Series(False, summary.index)
    flat = pd.Series(False, summary.index)
    if {"assay", "readout", "time_h", "mean", "sem"} <= set(summary.columns):
        for _, sub in summary.groupby("assay", sort=False):
            names = {f.split(" = ")[0] for f in panels(sub)[2]}
            flat |= summary.index.isin(sub.index[sub["readout"].isin(names)])
    out = [table_html(summary[~empty & ~flat], None, "summary")]
    for k, what in ((int(empty.sum()), ("with no measured value (n 0, e.g. below the limit "
                     "of quantification in every subject)")),
                    (int((flat & ~empty).sum()), ("of readouts the same in every arm and at "
                     "every time (named under their figure)"))):
        if k:
            out.append(f"<p>{k} {'row' if k == 1 else 'rows'} {what} left out here; "
                       "summary.csv has them all.</p>")
    return out


def _header_html(manifest: dict) -> str:
    """Version and species, then the seed and scenario hash of a simulation, or, for
    lab data (``ketasim analyze``, no seed), the design's hash."""
    e = html.escape
    head = (f"ketasim {e(str(manifest.get('ketasim_version')))}, species "
            f"{e(str(manifest.get('species')))}")
    digest = e(str(manifest.get("scenario_hash") or "")[:12])
    if manifest.get("seed") is None:
        return (f"<p>{head}; lab data, no simulation" + (f"; design hash <code>{digest}"
                                                         "</code>" if digest else "")
                + "</p>")
    return f"<p>{head}, seed {manifest.get('seed')}, scenario hash <code>{digest}</code></p>"


def write_report(out: Path, title: str, description: str, readouts: pd.DataFrame,
                 summary: pd.DataFrame, stats: pd.DataFrame, manifest: dict,
                 kept: dict[str, dict[str, dict]] | None = None, *, trial=None,
                 design=None, comparison: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` and ``fig_<assay>.png`` files into ``out``, and the figures
    the assays declare from what they kept (e.g. spine maps, dF/F rasters, the tail
    suspension ethogram). With ``trial`` (:class:`ketasim.experiment.trial.TrialTables`)
    and the scenario's ``design``, a "Trial" section (:func:`trial_html`); with
    ``comparison`` (``run --against``), a section on what moved (:func:`against_html`)."""
    figs = [img_tag(assay_figure(readouts, summary, assay, out / f"fig_{assay}.png"), assay,
                    figure_caption(assay)) for assay in dict.fromkeys(summary["assay"])]
    scatter = mushroom_vs_aims(readouts, out / "fig_mushroom_vs_aims.png")
    if scatter is not None:
        figs.append(img_tag(scatter[0], "mushroom spine density against AIMs",
                            f"Mushroom spine density against dyskinesia: {scatter[1]}"))
    lesion = lesion_time_course(readouts, out / "fig_lesion_time_course.png")
    if lesion is not None:
        figs.append(img_tag(lesion[0], "lesion time course", f"Lesion time course: {lesion[1]}"))
    body = [
        f"<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>",
        _header_html(manifest),
        *warnings_html(manifest.get("warnings") or []),
        *(against_html(comparison, manifest.get("against")) if comparison is not None
          else []),
        "<h2>Statistics</h2>",
        *(_stats_html(stats) if not stats.empty else ["<p>No comparisons requested.</p>"]),
        *(trial_html(out, trial, design, summary) if trial is not None else []),
        "<h2>Figures</h2>", *figs, *assay_figures(out, kept or {}, "fig_"),
        "<h2>Summary</h2>", *_summary_html(summary),
        *provenance_html(manifest),
    ]
    path = out / "report.html"
    path.write_text(page(title, body))
    return path
