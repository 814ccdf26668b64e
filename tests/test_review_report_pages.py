"""Review of two HTML report pages end to end: the calibrate report (both methods) and the
``ketasim analyze`` report. Every table on the page equals the files written beside it,
the notes appear under their documented conditions, the predictive figure's axes and
titles follow the data's times, and the pages are self-contained and escaped.

Calibration runs use a fast stand-in for the model's simulation (a linear map of the
sampling-scale value, as in test_review_calibrate) so that the report, not the model, is
under test."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.cli import app
from ketasim.sweep import calibrate as C

pytestmark = pytest.mark.usefixtures("private_home")

SCENARIO = """
name: rp_cal
species: mouse
seed: 4
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [15min, 1h, 2h]}
"""
DATA = ("arm,readout,time_h,mean,sem,change,baseline_h\n"
        "ket,da_rel,0.25,1.7,0.1,,\n"
        "ket,da_rel,1,2.6,0.2,,\n"
        "ket,pka_rel,2,2.9,0.15,,\n"
        "ket,pka_rel,2,120,15,percent,0.25\n")
DAYS_SCENARIO = """
name: rp_days
species: mouse
seed: 4
arms:
  - name: ket
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: signaling_state, at: [1d, 4d]}
"""
DAYS_DATA = ("arm,readout,time_h,mean,sem,change,baseline_h\n"
             "ket,da_rel,96,1.1,0.1,,\n"
             "ket,pka_rel,96,20,5,percent,24\n")
GAIN = "sig.da_gain"  # log-scaled: [0.3, 3]


# --------------------------------------------------------------------------- helpers
class _Tables(HTMLParser):
    """Every table of a page by id: header and rows of cell texts (unescaped)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.hrefs: list[str] = []
        self._cur = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._cur = self.tables.setdefault(a.get("id") or f"_{len(self.tables)}", [])
        elif tag == "tr" and self._cur is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(a.get("src", ""))
        for k, v in attrs:
            if k in ("href", "src", "action", "srcset") and v:
                self.hrefs.append(v)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._cur.append(self._row)
            self._row = None
        elif tag == "table":
            self._cur = None


def parse(path: Path) -> _Tables:
    p = _Tables()
    p.feed(path.read_text())
    return p


def same(shown: str, v) -> bool:
    """A shown cell equals a file's value (numbers to the 4 significant digits shown)."""
    if isinstance(v, (bool, np.bool_)):
        return shown == str(bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        if isinstance(v, float) and math.isnan(v) or (isinstance(v, np.floating)
                                                       and np.isnan(v)):
            return shown == ""
        try:
            s = float(shown)
        except ValueError:
            return False
        return s == float(f"{float(v):.4g}") or math.isclose(s, float(v), rel_tol=5e-4)
    if v is None:
        return shown == ""
    return shown == str(v)


def assert_table_equals(table: list[list[str]], frame: pd.DataFrame, what: str) -> None:
    head, *rows = table
    assert head == [str(c) for c in frame.columns], (what, head, list(frame.columns))
    assert len(rows) == len(frame), (what, len(rows), len(frame))
    for i, (shown, (_, r)) in enumerate(zip(rows, frame.iterrows(), strict=True)):
        bad = [(c, s, v) for c, s, v in zip(frame.columns, shown, r, strict=True)
               if not same(s, v)]
        assert not bad, (what, i, bad)


def assert_self_contained(folder: Path, page: _Tables, text: str) -> None:
    assert not re.search(r"https?://|url\(|@import|<script|<link", text)
    assert all(h.startswith(("data:image/png;base64,", "#"))
               for h in page.hrefs), page.hrefs
    inlined = [base64.b64decode(s.split(",", 1)[1]) for s in page.images]
    files = {p.read_bytes(): p.name for p in folder.rglob("*.png")}
    assert inlined and all(b in files for b in inlined)
    assert sorted(files.values()) == sorted(files[b] for b in inlined)


def _fake(jac, offset):
    def fake(self, values, seed=None, with_sem=False):
        u = np.array([p.to_scale(values[p.name]) for p in self.priors], float)
        y = offset + jac[: len(self.rows), : len(u)] @ u
        return (y, np.full(len(y), 0.01)) if with_sem else y
    return fake


def _capture_figures(monkeypatch) -> dict:
    figs: dict[str, object] = {}
    real = C._png

    def png(fig, path):
        figs[Path(path).name] = fig
        return real(fig, path)
    monkeypatch.setattr(C, "_png", png)
    return figs


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sc.yaml").write_text(SCENARIO)
    (tmp_path / "data.csv").write_text(DATA)
    (tmp_path / "days.yaml").write_text(DAYS_SCENARIO)
    (tmp_path / "days.csv").write_text(DAYS_DATA)
    return tmp_path


# 4 rows: y = offset + J u (u = log10 da_gain in [-0.52, 0.48])
JAC = np.array([[1.0], [1.5], [0.8], [60.0]])
INTERIOR = np.array([1.7, 2.6, 2.9, 120.0]) - JAC[:, 0] * 0.1  # best fit near u = 0.1


# --------------------------------------------------------------------------- likelihood
def test_likelihood_report_tables_equal_the_files(files, monkeypatch):
    monkeypatch.setattr(C._Model, "simulate", _fake(JAC, INTERIOR))
    figs = _capture_figures(monkeypatch)
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], files / "ml",
                      method="likelihood", starts=1, seed=0)
    text = (out / "report.html").read_text()
    page = parse(out / "report.html")
    assert_self_contained(out, page, text)
    est = pd.read_csv(out / "estimates.csv")
    man = json.loads((out / "manifest.json").read_text())
    summary = est[["parameter", "unit", "default", "estimate", "ci_low", "ci_high",
                   "se_on_scale", "scale", "at_bound"]]
    assert_table_equals(page.tables["summary"], summary, "summary")
    assert abs(est["estimate"].iloc[0] - 10 ** 0.1) < 1e-3  # the fit itself
    assert not est["at_bound"].iloc[0] and est["se_on_scale"].iloc[0] > 0
    assert_table_equals(page.tables["starts"], pd.read_csv(out / "starts.csv"), "starts")
    pred = pd.read_csv(out / "predictive.csv", keep_default_na=False,
                       na_values=[""]).drop(columns=["row"])
    pred["change"] = pred["change"].fillna("")
    assert_table_equals(page.tables["predictive"], pred, "predictive")
    assert man["hessian_note"] == ""
    assert f"{man['objective_weighted_ss']:.4g} ({man['dof']} degrees of freedom)" in text
    assert man["dof"] == 3
    # the predictive figure: hours, change panel titled with its baseline in hours
    fig = figs["predictive.png"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("percent change from t = 0.25 h" in t for t in titles), titles
    assert {ax.get_xlabel() for ax in fig.axes if ax.get_title()} == {"time (h)"}


def test_likelihood_at_a_bound_notes_it_in_report_and_manifest(files, monkeypatch):
    # data far above what any value in the range gives: the fit runs to the upper bound
    monkeypatch.setattr(C._Model, "simulate", _fake(JAC, INTERIOR + 100 * JAC[:, 0]))
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], files / "mlb",
                      method="likelihood", starts=1, seed=0)
    est = pd.read_csv(out / "estimates.csv")
    man = json.loads((out / "manifest.json").read_text())
    assert bool(est["at_bound"].iloc[0]) and est["estimate"].iloc[0] == pytest.approx(0.3)
    text = (out / "report.html").read_text()
    assert f"At a bound of its prior: {GAIN}" in man["hessian_note"]
    assert "not positive definite" not in man["hessian_note"]
    assert man["hessian_note"] in text
    page = parse(out / "report.html")
    assert page.tables["summary"][1][-1] == "True"


def test_likelihood_flat_objective_notes_the_hessian(files, monkeypatch):
    # the simulation does not depend on the parameter: a flat objective, no interval
    monkeypatch.setattr(C._Model, "simulate", _fake(0 * JAC, INTERIOR))
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], files / "mlf",
                      method="likelihood", starts=1, seed=0)
    man = json.loads((out / "manifest.json").read_text())
    est = pd.read_csv(out / "estimates.csv")
    assert man["hessian_note"].startswith("the Hessian is not positive definite")
    assert est[["se_on_scale", "ci_low", "ci_high"]].isna().all(axis=None)
    assert man["hessian_note"] in (out / "report.html").read_text()
    row = parse(out / "report.html").tables["summary"][1]
    assert row[4:7] == ["", "", ""]  # ci_low, ci_high, se_on_scale: empty cells


def test_predictive_figure_in_days_with_change_from_day(files, monkeypatch):
    jac = np.array([[0.5], [30.0]])
    monkeypatch.setattr(C._Model, "simulate", _fake(jac, np.array([1.1, 20.0])))
    figs = _capture_figures(monkeypatch)
    C.calibrate(files / "days.yaml", files / "days.csv", [GAIN], files / "d",
                method="likelihood", starts=1, seed=0)
    fig = figs["predictive.png"]
    axes = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in axes]
    assert any(t.endswith("percent change from day 1") for t in titles), titles
    assert {ax.get_xlabel() for ax in axes} == {"day"}
    for ax in axes:  # the data point at day 4, not at 96
        xs = np.concatenate([line.get_xdata() for line in ax.get_lines()
                             if len(line.get_xdata())])
        assert set(np.round(xs, 6)) == {4.0}, xs


# --------------------------------------------------------------------------- ABC
@pytest.fixture
def abc_run(files, monkeypatch):
    monkeypatch.setattr(C._Model, "simulate", _fake(JAC, INTERIOR))
    figs = _capture_figures(monkeypatch)
    out = C.calibrate(files / "sc.yaml", files / "data.csv", [GAIN], files / "abc",
                      method="abc", population=6, generations=1, predictive_draws=2,
                      seed=1, workers=1)
    return out, figs


def test_abc_report_tables_equal_the_files(abc_run):
    out, figs = abc_run
    text = (out / "report.html").read_text()
    page = parse(out / "report.html")
    assert_self_contained(out, page, text)
    man = json.loads((out / "manifest.json").read_text())
    post = pd.read_parquet(out / "posterior.parquet")
    w = post["weight"].to_numpy(float)
    u = np.log10(post[GAIN].to_numpy(float))
    order = np.argsort(u)
    cw = np.cumsum(w[order]) - 0.5 * w[order]
    q = 10 ** np.interp([0.05, 0.5, 0.95], cw / w.sum(), u[order])
    summary = pd.DataFrame(man["summary"])[["parameter", "unit", "default", "prior",
                                            "prior_low", "prior_high", "median", "q05",
                                            "q95", "mean"]]  # the manifest sorts keys
    assert summary[["q05", "median", "q95"]].iloc[0].to_numpy() == pytest.approx(q)
    assert summary["mean"].iloc[0] == pytest.approx(np.sum(post[GAIN] * w) / w.sum())
    assert summary["prior_low"].iloc[0] == 0.3 and summary["prior_high"].iloc[0] == 3.0
    assert_table_equals(page.tables["summary"], summary, "summary")
    gens = pd.DataFrame(man["generations"])  # JSON has no inf: the first epsilon is null
    gens["epsilon"] = gens["epsilon"].astype(float).fillna(np.inf)
    assert_table_equals(page.tables["generations"],
                        gens[[c for c in page.tables["generations"][0]]], "generations")
    assert set(page.tables["generations"][0]) == set(gens.columns)
    pred = pd.read_csv(out / "predictive.csv").drop(columns=["row"])
    pred["change"] = pred["change"].fillna("")
    assert_table_equals(page.tables["predictive"], pred, "predictive")
    assert {"prior_posterior.png", "predictive.png"} <= set(figs)


def test_abc_barely_constrained_note_follows_its_documented_condition(abc_run):
    out, _ = abc_run
    man = json.loads((out / "manifest.json").read_text())
    s = man["summary"][0]
    # the posterior 5-95% over the prior's 5-95% (0.9 of the log range)
    share = (np.log10(s["q95"]) - np.log10(s["q05"])) / (0.9 * (np.log10(3) - np.log10(0.3)))
    text = (out / "report.html").read_text()
    assert ('id="unconstrained"' in text) == (share > 0.8), share
    if share > 0.8:
        assert f"{GAIN} (posterior 5-95% over {share:.0%} of the prior" in text


def test_unconstrained_condition_directly():
    p = C.Prior(GAIN, 0.3, 3.0, "log10", 1.0, "1")
    span = 0.9 * 1.0  # the prior's own 5-95% on log10 (range 1 decade)

    def row(width):
        return {"q05": 10 ** (-0.5 + 0.01), "q95": 10 ** (-0.5 + 0.01 + width)}
    assert C.unconstrained([row(0.79 * span)], [p]) == []
    (name, share), = C.unconstrained([row(0.81 * span)], [p])
    assert name == GAIN and share == pytest.approx(0.81)
    lin = C.Prior("x", 2.0, 12.0, "lin", 5.0, "1")
    assert C.unconstrained([{"q05": 3.0, "q95": 3.0 + 0.85 * 9.0}], [lin])[0][1] == \
        pytest.approx(0.85)


# --------------------------------------------------------------------------- analyze
SUCROSE = ("subject,sucrose_g,water_g\nm1,8,2\nm2,9,1\nm3,5,5\nm4,4,6\n"
           "<m&5>,7,3\nm6,6,4\n")


def test_analyze_report_tables_equal_the_csvs_and_page_is_self_contained(tmp_path):
    data = tmp_path / "suc.csv"
    data.write_text(SUCROSE)
    groups = {"ket<&>\"'": ["m1", "m2", "<m&5>"], "sal": ["m3", "m4", "m6", "<x&\"y>"]}
    design = {"name": "d<&>", "description": "lab & <b>co</b>", "groups": groups,
              "files": [{"path": str(data), "time": "2d"}],
              "compare": [{"readout": "sucrose_preference", "at": "2d",
                           "arms": list(groups)}]}
    (tmp_path / "d.yaml").write_text(json.dumps(design))
    res = CliRunner().invoke(app, ["analyze", "behavior", str(data), "--design",
                                   str(tmp_path / "d.yaml"), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "a"
    text = (out / "report.html").read_text()
    page = parse(out / "report.html")
    assert_self_contained(out, page, text)
    for raw in ("ket<&>", "<m&5>", "<x&\"y>", "d<&>", "<b>co</b>"):
        assert raw not in text, raw
    assert "&lt;x&amp;&quot;y&gt;" in text  # the subject without data, in the notes
    stats = pd.read_csv(out / "stats.csv")
    assert_table_equals(page.tables["stats"], stats, "stats")
    summary = pd.read_csv(out / "summary.csv")
    shown = summary[summary["n"] > 0]
    assert_table_equals(page.tables["summary"], shown.reset_index(drop=True), "summary")
    assert "ket<&>\"'" in {r[list(summary.columns).index("arm")]
                           for r in page.tables["summary"][1:]}
