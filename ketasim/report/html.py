"""The self-contained HTML report of a run (figures inlined, also saved as PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from ketasim.report.figures import assay_figure

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.sig{background:#e6f4e6} figure{margin:1.5em 0} img{max-width:100%}
"""


def _table(df: pd.DataFrame, sig_col: str | None = None, cls_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="sig"' if sig_col and pd.notna(r[sig_col]) and r[sig_col] < 0.05 else ""
        cells = "".join(
            f"<td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td>"
            for v in r)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<table id="{cls_id}"><tr>{head}</tr>{"".join(body)}</table>'


def write_report(out: Path, title: str, description: str, readouts: pd.DataFrame,
                 summary: pd.DataFrame, stats: pd.DataFrame, manifest: dict) -> Path:
    """Write ``report.html`` and ``fig_<assay>.png`` files into ``out``."""
    figs = []
    for assay in dict.fromkeys(summary["assay"]):
        png = assay_figure(readouts, summary, assay, out / f"fig_{assay}.png")
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        figs.append(f'<figure><img alt="{html.escape(assay)}" src="data:image/png;base64,'
                    f'{data}"><figcaption>{html.escape(assay)}: mean &plusmn; SEM per arm '
                    f'(bars: individual subjects as dots)</figcaption></figure>')
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>",
        f"<p>ketasim {html.escape(str(manifest.get('ketasim_version')))}, species "
        f"{html.escape(str(manifest.get('species')))}, seed {manifest.get('seed')}, "
        f"scenario hash <code>{html.escape(str(manifest.get('scenario_hash'))[:12])}</code></p>",
        "<h2>Statistics</h2>",
        _table(stats, "p", "stats") if not stats.empty else "<p>No comparisons requested.</p>",
        "<h2>Figures</h2>", *figs,
        "<h2>Summary</h2>", _table(summary, None, "summary"),
        "</body></html>",
    ]
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
