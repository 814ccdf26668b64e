"""Review of the numbers the remaining reports draw and tabulate: sensitivity index bars
(and their intervals), the AIMs figures, the validation report (role tables, effect
sizes, known gaps, header counts) and the calibrate report's figures. Each figure is
drawn from a small hand-built table and read back (bars, error bars, lines, ticks,
legends, HTML) against numbers computed here independently."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure


@pytest.fixture
def drawn(monkeypatch):
    figures: list[Figure] = []
    save = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def _hbars(ax):
    """Per BarContainer: list of (y centre, width) of its bars."""
    return [[(p.get_y() + p.get_height() / 2, p.get_width()) for p in c.patches]
            for c in ax.containers if isinstance(c, BarContainer)]


def _errbar_segments(ax):
    """Per ErrorbarContainer: its error segments (n, 2, 2)."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            segs = [np.asarray(s, float) for coll in c.lines[2] for s in coll.get_segments()]
            out.append(segs)
    return out


def _legend(ax):
    lg = ax.get_legend()
    return [t.get_text() for t in lg.get_texts()] if lg is not None else []


# ------------------------------------------------------------ sensitivity_figures.py

def _sobol_table():
    rows = []
    spec = {  # parameter: (S1, S1 lo, S1 hi, ST, ST lo, ST hi, scale)
        "alpha": (0.10, 0.05, 0.20, 0.30, 0.25, 0.40, "lin"),
        "beta": (0.50, 0.40, 0.55, 0.60, 0.50, 0.75, "log"),
        "gamma": (0.02, -0.03, 0.04, 0.05, 0.01, 0.06, "lin"),
        "delta": (0.20, 0.10, 0.22, 0.45, 0.44, 0.50, "lin"),
    }
    for p, (s1, s1l, s1h, st, stl, sth, sc) in spec.items():
        rows.append((p, "sobol", "S1", s1, s1l, s1h, sc))
        rows.append((p, "sobol", "ST", st, stl, sth, sc))
    cols = ["parameter", "method", "index", "value", "ci_low", "ci_high", "scale"]
    return pd.DataFrame(rows, columns=cols), spec


def test_sobol_bars_are_sorted_by_total_and_each_interval_is_its_ci():
    from ketasim.report.sensitivity_figures import indices_figure

    table, spec = _sobol_table()
    fig = indices_figure(table, title="readout x")
    ax = fig.axes[0]
    order = sorted(spec, key=lambda p: -spec[p][3])  # by ST, descending
    assert order == ["beta", "delta", "alpha", "gamma"]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["beta (log)", "delta", "alpha", "gamma"]
    ticks = ax.get_yticks()
    bars = _hbars(ax)
    assert len(bars) == 2
    for k, (name, vi) in enumerate((("S1", 0), ("ST", 3))):
        got = sorted(bars[k])  # by y
        for (y, width), p, tick in zip(got, order, ticks, strict=True):
            assert width == pytest.approx(spec[p][vi])
            assert abs(y - tick) < 0.4  # the bar sits on its parameter's row
    segs = _errbar_segments(ax)
    assert len(segs) == 2
    for k, (lo_i, hi_i) in enumerate(((1, 2), (4, 5))):
        ends = sorted((float(s[:, 1].mean()), float(s[:, 0].min()), float(s[:, 0].max()))
                      for s in segs[k])
        for (y, lo, hi), p in zip(ends, order, strict=True):
            assert lo == pytest.approx(spec[p][lo_i])
            assert hi == pytest.approx(spec[p][hi_i])
    assert _legend(ax) == ["first order S1", "total ST"]
    title = ax.get_title()
    assert "readout x" in title and "sobol, 4 parameters" in title
    assert "not shown" not in title


def test_sobol_figure_leaves_out_the_least_influential_and_says_how_many():
    from ketasim.report.sensitivity_figures import indices_figure

    table, _ = _sobol_table()
    ax = indices_figure(table, max_parameters=2).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["beta (log)", "delta"]
    assert "2 more parameters not shown" in ax.get_title()
    assert sorted(w for _, w in _hbars(ax)[1]) == pytest.approx([0.45, 0.60])


def test_morris_bars_are_mu_star_and_sigma_sorted_by_mu_star_with_salib_values():
    from SALib.sample import morris as morris_sample

    from ketasim.report.sensitivity_figures import indices_figure
    from ketasim.sweep.sensitivity import indices

    problem = {"num_vars": 3, "names": ["a", "b", "c"], "bounds": [[0, 1]] * 3}
    from ketasim.sweep.sensitivity import MORRIS_LEVELS

    x = morris_sample.sample(problem, 12, num_levels=MORRIS_LEVELS, seed=3)
    y = 3.0 * x[:, 0] + 0.5 * x[:, 1] ** 2 + 1.5 * x[:, 2] * x[:, 0]
    prob = dict(problem, scales=["lin"] * 3)
    table = indices(prob, "morris", pd.DataFrame(x, columns=problem["names"]), y, seed=1,
                    num_resamples=50)
    ax = indices_figure(table).axes[0]
    mu = table[table["index"] == "mu_star"].set_index("parameter")
    sd = table[table["index"] == "sigma"].set_index("parameter")
    order = list(mu["value"].sort_values(ascending=False).index)
    labels = [t.get_text().replace(" (log)", "") for t in ax.get_yticklabels()]
    assert labels == order
    bars = _hbars(ax)
    assert [w for _, w in sorted(bars[0])] == pytest.approx(mu.loc[order, "value"].tolist())
    assert [w for _, w in sorted(bars[1])] == pytest.approx(sd.loc[order, "value"].tolist())
    segs = _errbar_segments(ax)
    ends = sorted((float(s[:, 1].mean()), float(s[:, 0].min()), float(s[:, 0].max()))
                  for s in segs[0])
    assert [e[1] for e in ends] == pytest.approx(mu.loc[order, "ci_low"].tolist())
    assert [e[2] for e in ends] == pytest.approx(mu.loc[order, "ci_high"].tolist())
    assert _legend(ax) == ["mu* (mean |effect|)", "sigma (spread)"]


def test_a_table_of_two_methods_is_refused():
    from ketasim.report.sensitivity_figures import indices_figure

    table, _ = _sobol_table()
    bad = table.copy()
    bad.loc[0, "method"] = "morris"
    with pytest.raises(ValueError):
        indices_figure(bad)


# ------------------------------------------------------------- striatal_figures.py

def _aims_table(arm, subjects, sessions, periods, seed):
    from ketasim.behavior.striatal import AIMS_SUBTYPES

    rng = np.random.default_rng(seed)
    rows = []
    for s in subjects:
        for h in sessions:
            for m in periods:
                for st in AIMS_SUBTYPES:
                    rows.append({"arm": arm, "subject": s, "session_h": float(h),
                                 "period_min": float(m), "subtype": st,
                                 "score": int(rng.integers(0, 5))})
    t = pd.DataFrame(rows)
    t["subtype"] = pd.Categorical(t["subtype"], categories=AIMS_SUBTYPES)
    return t


def _alo_sessions_np(t):
    from ketasim.behavior.striatal import ALO_SUBTYPES

    a = t[t["subtype"].astype(str).isin(ALO_SUBTYPES)]
    return a.groupby(["subject", "session_h"])["score"].sum()


def _mean_sem(v):
    v = np.asarray(v, float)
    return v.mean(), (v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0)


@pytest.fixture
def aims():
    return {"lesion": _aims_table("lesion", [0, 1, 2], [0, 24, 48], [20, 60, 100], 1),
            "sham": _aims_table("sham", [5, 7], [0, 48], [20, 60], 2)}


def test_aims_over_sessions_draws_each_arms_mean_sem_and_every_animal(tmp_path, drawn, aims):
    from ketasim.report.striatal_figures import aims_sessions_figure

    assert aims_sessions_figure(aims, tmp_path / "s.png") is not None
    ax = drawn[-1].axes[0]
    ebs = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(ebs) == 2
    thin = [ln for ln in ax.lines if ln.get_linewidth() < 1.0]
    assert len(thin) == 3 + 2
    for eb, (arm, t) in zip(ebs, aims.items(), strict=True):
        alo = _alo_sessions_np(t)
        days = np.sort(t["session_h"].unique()) / 24 + 1
        xy = eb.lines[0].get_xydata()
        assert xy[:, 0] == pytest.approx(days)
        for (d, ym), h in zip(xy, np.sort(t["session_h"].unique()), strict=True):
            m, sem = _mean_sem(alo.xs(h, level="session_h"))
            assert ym == pytest.approx(m)
            seg = [s for coll in eb.lines[2] for s in coll.get_segments()
                   if np.isclose(s[0][0], d)]
            assert len(seg) == 1
            assert sorted(np.asarray(seg[0])[:, 1]) == pytest.approx([m - sem, m + sem])
        colour = eb.lines[0].get_color()
        animals = [ln for ln in thin if ln.get_color() == colour]
        assert len(animals) == t["subject"].nunique()
        for ln, s in zip(animals, sorted(t["subject"].unique()), strict=True):
            a = alo.xs(s, level="subject")
            assert ln.get_xdata() == pytest.approx(a.index.to_numpy() / 24 + 1)
            assert ln.get_ydata() == pytest.approx(a.to_numpy(float))
    assert _legend(ax) == ["lesion (n=3)", "sham (n=2)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]


def test_aims_within_session_is_the_last_sessions_mean_per_observation(tmp_path, drawn, aims):
    from ketasim.behavior.striatal import ALO_SUBTYPES
    from ketasim.report.striatal_figures import aims_time_course_figure

    assert aims_time_course_figure(aims, tmp_path / "t.png") is not None
    ax = drawn[-1].axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(ax.lines) == 2 and len(bands) == 2
    for line, band, (arm, t) in zip(ax.lines, bands, aims.items(), strict=True):
        last = t["session_h"].max()
        a = t[(t["session_h"] == last) & t["subtype"].astype(str).isin(ALO_SUBTYPES)]
        per = a.groupby(["period_min", "subject"])["score"].sum()
        minutes = np.sort(a["period_min"].unique())
        assert line.get_xdata() == pytest.approx(minutes)
        v = np.vstack([p.vertices for p in band.get_paths()])
        for m, y in zip(minutes, line.get_ydata(), strict=True):
            mean, sem = _mean_sem(per.xs(m, level="period_min"))
            assert y == pytest.approx(mean)
            ys = v[np.isclose(v[:, 0], m), 1]
            assert (ys.min(), ys.max()) == pytest.approx((mean - sem, mean + sem))
    assert _legend(ax) == ["lesion, day 3 (n=3)", "sham, day 3 (n=2)"]
    assert ax.get_ylim()[1] >= 12


def test_mushroom_against_aims_uses_each_animals_last_values_and_pearson(tmp_path, drawn):
    from scipy import stats

    from ketasim.report.striatal_figures import mushroom_vs_aims

    rows = []
    rng = np.random.default_rng(5)
    last = {}
    for arm in ("a", "b"):
        for s in range(3):
            for h in (0.0, 48.0, 24.0):  # not in time order
                al, mu = float(rng.integers(0, 30)), float(rng.normal(5, 1))
                rows.append((arm, s, "aims_alo", h, al))
                rows.append((arm, s, "mushroom_density_per_10um", h, mu))
                if h == 48.0:
                    last[(arm, s)] = (al, mu)
    r = pd.DataFrame(rows, columns=["arm", "subject", "readout", "time_h", "value"])
    out = mushroom_vs_aims(r, tmp_path / "m.png")
    assert out is not None
    ax = drawn[-1].axes[0]
    pts = np.vstack([ln.get_xydata() for ln in ax.lines if ln.get_linestyle() == "None"])
    want = np.array(sorted(last.values()))
    assert np.array(sorted(map(tuple, pts))) == pytest.approx(want)
    x, y = want[:, 0], want[:, 1]
    r_ = stats.pearsonr(x, y).statistic
    assert f"Pearson r = {r_:.2f}" in out[1] and "n = 6" in out[1]
    fit = next(ln for ln in ax.lines if ln.get_linestyle() == "-")
    slope, icpt = np.polyfit(x, y, 1)
    assert fit.get_ydata() == pytest.approx(icpt + slope * fit.get_xdata())


# ------------------------------------------------------------- validation_report.py

def _vresult():
    from ketasim.analysis.tolerance import Tolerance
    from ketasim.validation.run import TargetResult, ValidationResult
    from ketasim.validation.targets import Target

    def tgt(tid, role, tol, pub, peff=None, gap="", fitted=()):
        return Target(tid, ("F-1",), "Paper 2020", "effect (units)", pub, "stat",
                      Tolerance.parse(tol), known_gap=gap, role=role, fitted=fitted,
                      published_effect=peff)

    res = [
        TargetResult(tgt("C1", "calibration", "[1, 3]", "2.0 +- 0.5", 1.2,
                         fitted=("pk.ka",)), "r", 2.2, "pass", simulated_effect=0.9),
        TargetResult(tgt("C2", "calibration", "[0, 1]", "0.5"), "r", 1.7, "fail"),
        TargetResult(tgt("V1", "validation", "[10, 20]", "15", 0.8), "r", 12.0, "pass",
                     simulated_effect=0.7),
        TargetResult(tgt("V2", "validation", "[10, 20]", "15", gap="too slow"), "r", 25.0,
                     "known_gap", message="too slow"),
        TargetResult(tgt("V3", "validation", "[10, 20]", "15", gap="gap"), "r", 13.0,
                     "known_gap", message="gap"),
        TargetResult(tgt("V4", "validation", "[0, 1]", "0.5"), "r", float("nan"), "error",
                     message="no data"),
    ]
    return ValidationResult(res, replicas={}, seconds=1.0)


def _section(text, start_id):
    i = text.index(f'id="{start_id}"')
    j = text.find("<h2", i)
    return text[i:j if j > 0 else None]


def test_validation_report_counts_roles_effects_and_gaps(tmp_path):
    from ketasim.report.validation_report import write_validation_report

    result = _vresult()
    table = result.table()
    text = write_validation_report(tmp_path, result, table).read_text()
    vc = table["status"].value_counts()
    head = re.search(r"(\d+) literature targets.*?<b>(\d+) pass</b>, <b>(\d+) fail</b>, "
                     r"(\d+) known gaps, (\d+) errors", text)
    assert head is not None
    assert int(head[1]) == len(table)
    assert [int(head[k]) for k in (2, 3, 4, 5)] == [vc.get(s, 0) for s in
                                                     ("pass", "fail", "known_gap", "error")]
    for role, ids in (("calibration", ["C1", "C2"]), ("validation", ["V1", "V2", "V3", "V4"])):
        sec = _section(text, f"role-{role}")
        sub = table[table["role"] == role]
        m = re.search(rf"(\d+) {role} targets: <b>(\d+) pass</b>, <b>(\d+) fail</b>, "
                      r"(\d+) known gaps, (\d+) errors", sec)
        svc = sub["status"].value_counts()
        assert [int(m[k]) for k in range(1, 6)] == [len(sub)] + [
            svc.get(s, 0) for s in ("pass", "fail", "known_gap", "error")]
        rows = re.findall(r'<tr class="(\w+)"><td class="l">(\w+)</td>', sec)
        assert [r[1] for r in rows] == ids
        assert [r[0] for r in rows] == sub["status"].tolist()
        head_cells = re.findall(r"<th>(\w+)</th>", sec)
        assert "published_effect" in head_cells and "simulated_effect" in head_cells
        assert head_cells.index("simulated_effect") == head_cells.index("published_effect") + 1
    cal = _section(text, "role-calibration")
    c1 = re.search(r'<tr class="pass">(.*?)</tr>', cal)[1]
    cells = re.findall(r'<td class="l">(.*?)</td>', c1)
    heads = re.findall(r"<th>(\w+)</th>", cal)
    row = dict(zip(heads, cells, strict=True))
    assert row["published_effect"] == "1.2" and row["simulated_effect"] == "0.9"
    assert row["simulated"] == "2.2" and row["fitted"] == "pk.ka"
    gaps = _section(text, "known-gaps")
    assert re.findall(r"<li><b>(\w+)</b>", gaps) == ["V2", "V3"]
    assert "V3" in re.search(r'id="gaps-inside"[^<]*', text)[0]
    assert "V2" not in re.search(r'id="gaps-inside"[^<]*', text)[0]
    css = re.search(r"tr\.known_gap td\{background:(#\w+)\}", text)
    assert css is not None and css[1].lower() in ("#fbe3e3", "#f8d7da", "#ffcccc", "#fdd")


def test_targets_figure_draws_band_published_and_simulated_per_target(tmp_path, drawn):
    from ketasim.report.validation_report import targets_figure

    sub = _vresult().table()
    assert targets_figure(sub, tmp_path / "t.png") is not None
    fig = drawn[-1]
    finite = sub[np.isfinite(sub["simulated"].astype(float))]
    assert len(fig.axes) == len(finite)
    colours = {"pass": "#2ca02c", "fail": "#d62728", "known_gap": "#ff7f0e"}
    for ax, r in zip(fig.axes, finite.itertuples(), strict=True):
        assert [t.get_text() for t in ax.get_yticklabels()] == [r.target_id]
        dots = [ln for ln in ax.lines if ln.get_marker() == "o"]
        assert len(dots) == 1
        assert dots[0].get_xdata()[0] == pytest.approx(r.simulated)
        assert dots[0].get_color() == colours[r.status]
        lo, hi = (float(x) for x in re.findall(r"[-\d.]+", r.tolerance))
        assert len(ax.patches) == 1
        span = ax.patches[0]
        xs = (span.get_x(), span.get_x() + span.get_width()) if hasattr(span, "get_width") \
            else tuple(span.get_path().vertices[:, 0][[0, 2]])
        xs = np.asarray(xs)
        x0, x1 = ax.get_xlim()
        assert xs.min() == pytest.approx(max(lo, x0))
        assert xs.max() == pytest.approx(min(hi, x1))
        pub = [ln for ln in ax.lines if ln.get_marker() == "|" and ln.get_markersize() > 10]
        assert len(pub) == 1
        assert pub[0].get_xdata()[0] == pytest.approx(float(r.published.split()[0]))
        if "+-" in r.published:
            segs = [np.asarray(s) for c in ax.containers if isinstance(c, ErrorbarContainer)
                    for coll in c.lines[2] for s in coll.get_segments()]
            assert len(segs) == 1
            assert sorted(segs[0][:, 0]) == pytest.approx([1.5, 2.5])


@pytest.mark.parametrize("text,lo,hi,want", [
    ("2.0 +- 0.5 units", 1, 3, (2.0, 0.5)),
    ("50-75%", 0, 100, None),
    ("0.74 - 0.02", 0, 1, None),
    ("3 h after dosing", 0, 10, None),
    ("-0.4 (SD 0.1)", -1, 0, (-0.4, np.nan)),
    ("60% of baseline", 0.4, 0.8, None),
])
def test_published_point_reads_one_number_on_the_bands_scale(text, lo, hi, want):
    from ketasim.report.validation_report import _published_point

    got = _published_point(text, lo, hi)
    if want is None:
        assert got is None
    else:
        assert got[0] == pytest.approx(want[0])
        assert (np.isnan(got[1]) and np.isnan(want[1])) or got[1] == pytest.approx(want[1])


# ------------------------------------------------------- calibrate report figures

def test_prior_posterior_histogram_is_the_weighted_density_over_the_prior_range(tmp_path, drawn):
    from ketasim.sweep.calibrate import Prior, _posterior_figures

    pri = [Prior("a", 0.0, 10.0, "lin", 5.0, "1"), Prior("b", 0.01, 100.0, "log10", 1.0, "h")]
    rng = np.random.default_rng(0)
    ua, ub = rng.uniform(4, 6, 200), rng.uniform(-2, 2, 200)
    w = rng.uniform(0.5, 1.5, 200)
    w /= w.sum()
    info = {"weights": w, "scaled": {"a": ua, "b": ub}}
    tags = _posterior_figures(tmp_path, info, pri)
    assert len(tags) == 2 and len(drawn) == 2
    axes = drawn[0].axes
    for i, (p, u) in enumerate(((pri[0], ua), (pri[1], ub))):
        ax = axes[i]  # top row: the prior range
        lo, hi = p.bounds
        heights = np.array([r.get_height() for r in ax.patches])
        want, _ = np.histogram(u, bins=40, range=(lo, hi), weights=w, density=True)
        assert heights == pytest.approx(want)
        prior = next(ln for ln in ax.lines if ln.get_label() == "prior")
        assert prior.get_ydata() == pytest.approx([1 / (hi - lo)] * 2)
        default = [ln for ln in ax.lines if ln.get_label() == "registry default"]
        assert default[0].get_xdata()[0] == pytest.approx(p.to_scale(p.default))
    pairs = drawn[1].axes
    sc = pairs[2].collections[0]  # row 1, column 0: x = a, y = b
    assert np.asarray(sc.get_offsets()) == pytest.approx(np.column_stack([ua, ub]))


def test_predictive_figure_draws_data_reference_and_draws_in_time_order(tmp_path, drawn):
    from ketasim.sweep.calibrate import _predictive_figure

    rows = pd.DataFrame({"arm": ["k"] * 3, "assay": ["x"] * 3, "readout": ["r"] * 3,
                         "change": [""] * 3, "time_h": [48.0, 2.0, 24.0],
                         "baseline_h": [0.0] * 3, "mean": [3.0, 1.0, 2.0],
                         "sem": [0.3, 0.1, 0.2], "unit": ["u"] * 3})
    sims = np.array([[3.1, 1.1, 2.1], [2.9, 0.9, 1.9]])
    ref = np.array([30.0, 10.0, 20.0])
    _predictive_figure(tmp_path, None, rows, sims, ref, "2 posterior draws")
    ax = drawn[-1].axes[0]
    order = np.argsort(rows["time_h"].to_numpy())
    eb = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    xy = eb.lines[0].get_xydata()
    assert xy[:, 0] == pytest.approx(rows["time_h"].to_numpy()[order])
    assert xy[:, 1] == pytest.approx(rows["mean"].to_numpy()[order])
    segs = sorted(np.asarray(s)[:, 1].tolist() for coll in eb.lines[2]
                  for s in coll.get_segments())
    want = sorted([m - s, m + s] for m, s in zip(rows["mean"], rows["sem"], strict=True))
    assert np.array(segs) == pytest.approx(np.array(want))
    refl = next(ln for ln in ax.lines if ln.get_label() == "registry defaults")
    assert refl.get_ydata() == pytest.approx(ref[order])
    draws = [ln for ln in ax.lines if ln.get_marker() == "." and ln.get_alpha() == 0.25]
    assert len(draws) == 2
    for ln, s in zip(draws, sims, strict=True):
        assert ln.get_ydata() == pytest.approx(s[order])
