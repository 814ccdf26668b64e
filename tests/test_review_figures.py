"""Review of the numbers the report's figures draw: the assay summary figures (time
courses with SEM bands, bars with subjects, time units, log axes, regions, the taper
stacks), the synthesis figure, the power curve, the screen's dose-response, the trial
figures (change from baseline, response and remission with Wilson intervals, the
Kaplan-Meier curves of relapse, the CONSORT counts of the Trial section), the spine maps,
turnover, survival and class figures, the dF/F raster and the tail-suspension and
open-field figures.

Each figure function is called on small hand-built tables (or a tiny simulated run) and
the matplotlib objects it draws (lines, bands, bars, error bars, scatter offsets, tick
and axis labels, legends) are read back and compared with numbers computed here
independently (numpy means and SEMs, statsmodels' Wilson interval, lifelines' own
Kaplan-Meier fit, hand-labelled spine statuses).

The bugs found (once ``xfail(strict=True)``, reason starting ``BUG:``) are fixed; their
reasons stay as ``# fixed (was BUG)`` comments above the tests that guard them."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

pytestmark = pytest.mark.usefixtures("private_home")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report functions save, in order (the files are still written)."""
    figures: list[Figure] = []
    save = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def _readouts(spec, assay="x", readout="r", unit="1"):
    """Long readouts from ``(arm, times, values per subject)`` triples."""
    rows = []
    for arm, times, values in spec:
        for t in times:
            for s, v in enumerate(values):
                rows.append(
                    {
                        "arm": arm,
                        "subject": s,
                        "assay": assay,
                        "readout": readout,
                        "time_h": float(t),
                        "unit": unit,
                        "value": float(v),
                    }
                )
    return pd.DataFrame(rows)


def _band(coll, x) -> tuple[float, float]:
    """The lowest and highest y of a fill_between band at ``x``."""
    v = np.vstack([p.vertices for p in coll.get_paths()])
    y = v[np.isclose(v[:, 0], x), 1]
    return float(y.min()), float(y.max())


def _bars(ax) -> list[tuple[float, float, float]]:
    """(centre x, bottom, height) of every bar of ``ax``."""
    return [
        (p.get_x() + p.get_width() / 2, p.get_y(), p.get_height())
        for c in ax.containers
        if isinstance(c, BarContainer)
        for p in c.patches
    ]


def _error_segments(ax) -> list[np.ndarray]:
    """The vertical segments of every error bar of ``ax`` (an empty array where one is
    not drawn)."""
    return [
        np.asarray(s, float).reshape(-1, 2)
        for c in ax.containers
        if isinstance(c, ErrorbarContainer)
        for coll in c.lines[2]
        for s in coll.get_segments()
    ]


def _legend(ax_or_fig) -> list[str]:
    lg = ax_or_fig.get_legend() if hasattr(ax_or_fig, "get_legend") else None
    if lg is None and getattr(ax_or_fig, "legends", None):
        lg = ax_or_fig.legends[0]
    return [t.get_text() for t in lg.get_texts()] if lg is not None else []


def _layer_height(coll, x) -> float:
    """The height of a stacked layer (a polygon between 0 and 1) at ``x``."""
    ys = np.linspace(0.0, 1.0, 4001)[1:-1]
    inside = coll.get_paths()[0].contains_points(np.column_stack([np.full_like(ys, x), ys]))
    return float(inside.mean())


def _mean_sem(v) -> tuple[float, float]:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


# ------------------------------------------------------- assay figures (figures.py)


def test_time_course_lines_are_each_arms_mean_with_its_sem_band_in_legend_order(tmp_path, drawn):
    """Three arms, each its own values: the line of each legend entry holds that arm's
    means at its times (in hours for a 0-24 h course), the band mean +- SEM (ddof 1); a
    point with a subject missing carries its n."""
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    times = [0.0, 2.0, 24.0]
    values = {
        "saline": [1.0, 2.0, 4.0],
        "ketamine": [10.0, 13.0, 15.0],
        "esketamine": [5.0, 5.5, 7.5],
    }
    slope = {"saline": 0.1, "ketamine": 0.5, "esketamine": -0.2}
    ro = _readouts([(arm, times, vals) for arm, vals in values.items()])
    ro["value"] = ro["value"] + ro["time_h"] * ro["arm"].map(slope)
    # one ketamine subject missed at 24 h (below quantification)
    ro.loc[(ro["arm"] == "ketamine") & (ro["time_h"] == 24.0) & (ro["subject"] == 2), "value"] = (
        np.nan
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == "time (h)"
    assert ax.get_ylabel() == "dimensionless"
    assert _legend(ax) == list(values)
    lines = {ln.get_label(): ln for ln in ax.lines}
    bands = [c for c in ax.collections if c.get_paths()]
    for k, arm in enumerate(values):
        xy = lines[arm].get_xydata()
        assert xy[:, 0].tolist() == times
        for j, t in enumerate(times):
            v = ro.loc[(ro["arm"] == arm) & (ro["time_h"] == t), "value"]
            m, e = _mean_sem(v)
            assert xy[j, 1] == pytest.approx(m)
            assert _band(bands[k], t) == pytest.approx((m - e, m + e))
    notes = [(t.get_text(), t.xy) for t in ax.texts]
    want = ro.loc[(ro["arm"] == "ketamine") & (ro["time_h"] == 24.0), "value"].mean()
    assert len(notes) == 1 and notes[0][0] == "n=2"
    assert notes[0][1] == pytest.approx((24.0, want))


@pytest.mark.parametrize(
    ("times", "label", "scale"),
    [
        ([0.25, 0.5, 1.0], "time (min)", 60.0),
        ([0.0, 6.0, 24.0], "time (h)", 1.0),
        ([0.0, 24.0, 96.0], "time (days)", 1 / 24),
    ],
)
def test_the_time_axis_unit_matches_the_drawn_x_values(tmp_path, drawn, times, label, scale):
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    ro = _readouts([("a", times, [1.0, 2.0]), ("b", times, [3.0, 5.0])])
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == label
    for line in ax.lines:
        assert line.get_xydata()[:, 0] == pytest.approx(np.array(times) * scale)


# fixed (was BUG): figures.py:129 converts each arm's times with its own span (_time_axis
#   per arm) but labels the panel by the panel's span: an arm measured at fewer times is
#   drawn in minutes on an hours axis (24 h at x=1440)
def test_an_arm_measured_at_other_times_is_drawn_in_the_panels_time_unit(tmp_path, drawn):
    """Arms of one scenario can have their own schedules: every arm's points must be
    at its own times in the unit the axis is labelled with."""
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    ro = _readouts(
        [
            ("vehicle", [0.0, 24.0, 48.0], [1.0, 2.0]),
            ("once", [24.0], [3.0, 4.0]),
            ("early", [0.25, 0.5], [5.0, 6.0]),
        ]
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == "time (h)"
    got = {
        ln.get_label(): ln.get_xydata()[:, 0].tolist()
        for ln in ax.lines
        if not ln.get_label().startswith("_")
    }
    assert got == {"vehicle": [0.0, 24.0, 48.0], "once": [24.0], "early": [0.25, 0.5]}


def test_single_time_bars_show_each_arms_mean_sem_and_every_subject(tmp_path, drawn):
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    vals = {"saline": [1.0, 2.0, 4.0], "ketamine": [5.0, 9.0, 7.0, 8.0]}
    ro = pd.concat(
        [_readouts([(a, [2.0], v)], unit="s") for a, v in vals.items()], ignore_index=True
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(vals)
    assert ax.get_xlabel() == "t = 2 h" and ax.get_ylabel() == "s"
    segs = _error_segments(ax)
    dots = [ln.get_xydata() for ln in ax.lines if ln.get_marker() == "o"]
    for k, (arm, v) in enumerate(vals.items()):
        m, e = _mean_sem(v)
        x, bottom, h = _bars(ax)[k]
        assert (x, bottom) == (k, 0.0) and h == pytest.approx(m)
        assert sorted(segs[k][:, 1]) == pytest.approx([m - e, m + e])
        assert dots[k][:, 1].tolist() == v
        assert np.abs(dots[k][:, 0] - k).max() < 0.3  # the dots sit on their arm's bar


# fixed (was BUG): figures.py:152 fills an undefined SEM (one subject) with 0, so the bar
#   gets a zero-length error bar with caps, as if its SEM were 0, and no n label
def test_a_one_subject_bar_is_not_drawn_with_a_zero_sem(tmp_path, drawn):
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    ro = pd.concat(
        [_readouts([("saline", [2.0], [1.0, 2.0, 4.0])]), _readouts([("ketamine", [2.0], [5.0])])],
        ignore_index=True,
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    one = [s for s in _error_segments(ax) if len(s) and np.isclose(s[0, 0], 1.0)]
    zero_bar = any(np.isfinite(s).all() and np.isclose(s[0, 1], s[1, 1]) for s in one)
    labelled = any("n=1" in t.get_text() for t in ax.texts)
    assert labelled or not zero_bar


def test_regions_are_separate_panels_each_with_its_own_means(tmp_path, drawn):
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    ro = pd.concat(
        [
            _readouts([("sal", [1.0, 2.0], [1.0, 3.0])]).assign(region="mpfc"),
            _readouts([("sal", [1.0, 2.0], [10.0, 30.0])]).assign(region="striatum"),
        ],
        ignore_index=True,
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    axes = {ax.get_title(): ax for ax in drawn[-1].axes if ax.get_title()}
    assert set(axes) == {"r", "r (striatum)"}
    assert axes["r"].lines[0].get_xydata()[:, 1] == pytest.approx([2.0, 2.0])
    assert axes["r (striatum)"].lines[0].get_xydata()[:, 1] == pytest.approx([20.0, 20.0])


def test_a_concentration_over_two_decades_is_drawn_on_a_log_axis_that_says_so(tmp_path, drawn):
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    ro = pd.concat(
        [
            _readouts([("k", [t], [c, c * 1.1])], unit="ng/mL")
            for t, c in ((0.5, 900.0), (2.0, 250.0), (6.0, 30.0), (24.0, 4.0))
        ],
        ignore_index=True,
    )
    assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    ax = drawn[-1].axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "ng/mL (log scale)"
    assert ax.lines[0].get_xydata()[:, 1] == pytest.approx([945.0, 262.5, 31.5, 4.2])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("case", ["one subject", "an all-NaN arm", "one time", "many arms"])
def test_edge_cases_render_without_warnings_or_misleading_marks(tmp_path, drawn, case):
    """One subject per arm, an arm with no value, a single time point and twelve arms:
    drawn without a warning; an arm without a value is left out of the panel and its
    legend; twelve arms differ in colour, marker or line style."""
    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import assay_figure

    spec = {
        "one subject": [("a", [1.0, 2.0], [3.0]), ("b", [1.0, 2.0], [4.0])],
        "an all-NaN arm": [("a", [1.0, 2.0], [3.0, 4.0]), ("b", [1.0, 2.0], [np.nan, np.nan])],
        "one time": [("a", [1.0], [3.0, 4.0]), ("b", [1.0], [5.0, 6.0])],
        "many arms": [(f"arm{k}", [1.0, 2.0, 4.0], [k, k + 1.0]) for k in range(12)],
    }
    ro = _readouts(spec[case])
    png = assay_figure(ro, summarize(ro), "x", tmp_path / "f.png")
    assert png.stat().st_size > 1000
    ax = drawn[-1].axes[0]
    if case == "one subject":
        assert [ln.get_xydata()[:, 1].tolist() for ln in ax.lines] == [[3.0, 3.0], [4.0, 4.0]]
    if case == "an all-NaN arm":
        assert _legend(ax) == ["a"] and len(ax.lines) == 1
    if case == "one time":
        assert [h for _, _, h in _bars(ax)] == pytest.approx([3.5, 5.5])
    if case == "many arms":
        looks = {(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in ax.lines}
        assert len(looks) == 12
        for k, ln in enumerate(ax.lines):  # each line is its own arm's values
            assert ln.get_label() == f"arm{k}"
            assert ln.get_xydata()[:, 1] == pytest.approx([k + 0.5] * 3)


# ------------------------------------------------------------------------ the taper


def _taper_readouts() -> pd.DataFrame:
    """Three patients' intervals to the next dose (days) at days 0, 7, 14 and 21."""
    doses = {
        0: [(0, 7), (7, 14), (21, 21)],
        1: [(0, 7), (7, 7), (14, 14)],
        2: [(0, 7), (7, 7), (14, 7), (21, 14)],
    }
    return pd.DataFrame(
        [
            {
                "arm": "ket",
                "subject": s,
                "assay": "taper",
                "readout": "dose_interval",
                "time_h": d * 24.0,
                "value": float(v),
                "unit": "d",
            }
            for s, ds in doses.items()
            for d, v in ds
        ]
    )


def test_taper_shares_and_stacks_are_the_share_on_each_interval(tmp_path, drawn):
    """By hand: day 0 all on 7 d; day 7 two on 7 d, one on 14 d; day 14 one on 7 d, two
    on 14 d (patient 0 still on the 14 d set at day 7); day 21 two on 14 d, one on
    21 d. The stacks between doses hold those shares."""
    from ketasim.report.figures import taper_figure, taper_shares

    ro = _taper_readouts()
    want = pd.DataFrame(
        {7.0: [1, 2 / 3, 1 / 3, 0], 14.0: [0, 1 / 3, 2 / 3, 2 / 3], 21.0: [0, 0, 0, 1 / 3]},
        index=[0.0, 168.0, 336.0, 504.0],
    )
    got = taper_shares(ro, "ket")
    assert np.allclose(got.to_numpy(), want.to_numpy())
    assert got.index.tolist() == want.index.tolist()
    taper_figure(ro, tmp_path / "t.png")
    ax = drawn[-1].axes[0]
    assert ax.get_title() == "ket (n=3)" and ax.get_xlabel() == "time (days)"
    layers = dict(zip(_legend(ax), ax.collections, strict=True))
    assert list(layers) == ["7 d", "14 d", "21 d"]
    for k, row in enumerate(want.to_numpy()[:3]):  # halfway between two doses
        got = [_layer_height(layers[name], 7.0 * k + 3.5) for name in layers]
        assert got == pytest.approx(row, abs=2e-3)


# fixed (was BUG): figures.py:224-226 draws the taper stack step='post' but ends the x axis
#   at the last dose time, so the shares set at the last dose have zero width (an interval
#   only chosen there, 21 d here, is in the legend but never drawn)
def test_the_intervals_set_at_the_last_dose_are_drawn(tmp_path, drawn):
    from ketasim.report.figures import taper_figure

    taper_figure(_taper_readouts(), tmp_path / "t.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlim()[1] > 21.0  # room for the last dose's intervals to show
    layers = dict(zip(_legend(ax), ax.collections, strict=True))
    got = [_layer_height(layers[name], 21.5) for name in ("7 d", "14 d", "21 d")]
    assert got == pytest.approx([0.0, 2 / 3, 1 / 3], abs=2e-3)


# ------------------------------------------------------------------ synthesis figure


def _arm_rows(readout, values_by_arm, assay="a"):
    return pd.DataFrame(
        [
            {"arm": arm, "subject": s, "assay": assay, "readout": readout, "time_h": t, "value": v}
            for arm, course in values_by_arm.items()
            for t, v in course.items()
            for s in range(2)
        ]
    )


def test_synthesis_draws_each_difference_normalised_to_its_largest(tmp_path, drawn):
    """Ketamine minus vehicle at times after 0 divided by the largest absolute
    difference (signs kept: MADRS improvement negative), plasma on its own, a replica
    without its vehicle arm left out; human lines dashed; every point inside the log
    axis's limits."""
    from ketasim.report.synthesis import difference_courses, synthesis_figure

    drives = _arm_rows(
        "activity_drive",
        {
            "ketamine": {-1.0: 5.0, 0.0: 9.0, 2.0: 3.0, 24.0: 1.5},
            "saline": {-1.0: 1.0, 0.0: 1.0, 2.0: 1.0, 24.0: 1.0},
        },
    )
    human = pd.concat(
        [
            _arm_rows(
                "madrs_total",
                {
                    "ketamine": {-24.0: 30.0, 24.0: 14.0, 336.0: 24.0},
                    "placebo": {-24.0: 30.0, 24.0: 26.0, 336.0: 27.0},
                },
            ),
            _arm_rows("cadss_total", {"ketamine": {0.6667: 20.0}, "placebo": {0.6667: 1.0}}),
        ]
    )
    plasma = _arm_rows(
        "ketamine_plasma_ng_ml", {"ketamine": {1 / 6: 100.0, 1.0: 200.0, 24.0: np.nan}}
    )
    no_vehicle = _arm_rows("plasticity_potential", {"ketamine": {1.0: 0.5, 2.0: 0.4}})
    by = {
        "signaling_drives": drives,
        "trd_single_infusion": human,
        "pk_human_infusion": plasma,
        "plasticity_window_signaling": no_vehicle,
    }
    courses = {s.label: (t.tolist(), d.tolist()) for s, t, d in difference_courses(by)}
    want = {
        "acute activity drive": ([2.0, 24.0], [1.0, 0.25]),
        "plasma ketamine (0.5 mg/kg over 40 min)": ([1 / 6, 1.0], [0.5, 1.0]),
        "MADRS, ketamine - placebo": ([24.0, 336.0], [-1.0, -0.25]),
    }
    assert list(courses) == list(want)  # one CADSS time: no course; plasticity: no saline
    for label, (t, d) in want.items():
        assert courses[label][0] == pytest.approx(t)
        assert courses[label][1] == pytest.approx(d)
    synthesis_figure(by, tmp_path / "s.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    drawn_lines = {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}
    assert len(drawn_lines) == 3
    for label, (t, d) in courses.items():
        line = next(ln for name, ln in drawn_lines.items() if name.startswith(label))
        assert line.get_xydata() == pytest.approx(np.column_stack([t, d]))
        assert (line.get_linestyle() == "--") == ("human" in line.get_label())
        assert lo <= min(t) and max(t) <= hi


# fixed (was BUG): synthesis.py:66-67 averages a readout over every assay of the replica:
#   the 'spine density (two-photon)' point at 4 d mixes in fixed_tissue_spines'
#   spine_density_per_10um (cort_ketamine_spine_imaging runs both at 4 d)
def test_the_two_photon_density_line_reads_the_two_photon_assay_only():
    import ketasim
    from ketasim.report.synthesis import difference_courses
    from ketasim.scenario import load_scenario

    replicas = pathlib.Path(ketasim.__file__).parent / "validation" / "replicas"
    sc = load_scenario(replicas / "cort_ketamine_spine_imaging.yaml")
    arm = next(a for a in sc.arms if a.name == "control_ketamine")
    both = {a.assay for a in arm.assays if 96.0 in a.at}
    assert both == {"two_photon_spines", "fixed_tissue_spines"}  # the same readout name
    two_photon = _arm_rows(
        "spine_density_per_10um",
        {
            "control_ketamine": {-240.0: 10.0, 6.0: 10.5, 24.0: 11.0, 96.0: 12.0},
            "control_saline": {-240.0: 10.0, 6.0: 10.0, 24.0: 10.0, 96.0: 10.0},
        },
        assay="two_photon_spines",
    )
    fixed = _arm_rows(
        "spine_density_per_10um",
        {"control_ketamine": {96.0: 30.0}, "control_saline": {96.0: 20.0}},
        assay="fixed_tissue_spines",
    )
    courses = difference_courses(
        {"cort_ketamine_spine_imaging": pd.concat([two_photon, fixed], ignore_index=True)}
    )
    ((_, t, d),) = [c for c in courses if c[0].label == "spine density (two-photon)"]
    assert t.tolist() == [6.0, 24.0, 96.0]
    assert d.tolist() == pytest.approx([0.25, 0.5, 1.0])  # 0.5, 1, 2 over 2


# ----------------------------------------------------------- power and dose-response


def test_power_curve_draws_each_arms_power_and_band_under_its_own_name():
    from ketasim.report.power import power_figure

    df = pd.DataFrame(
        {
            "n": [8, 4, 8, 4],
            "power": [0.9, 0.5, 0.6, 0.3],
            "ci_low": [0.8, 0.4, 0.5, 0.2],
            "ci_high": [0.95, 0.6, 0.7, 0.4],
            "groups": ["pla;hi", "pla;hi", "pla;lo", "pla;lo"],
            "readout": "madrs_total",
            "time_h": 24.0,
            "test": "mmrm",
            "alpha": 0.01,
            "cohorts": 50,
        }
    )
    ax = power_figure(df).axes[0]
    lines = {ln.get_label(): ln.get_xydata().tolist() for ln in ax.lines}
    assert lines["power hi"] == [[4.0, 0.5], [8.0, 0.9]]
    assert lines["power lo"] == [[4.0, 0.3], [8.0, 0.6]]
    assert lines["power 0.8"][0][1] == 0.8
    bands = {c.get_label(): c for c in ax.collections}
    assert _band(bands["95% Wilson interval hi"], 8.0) == (0.8, 0.95)
    assert _band(bands["95% Wilson interval lo"], 4.0) == (0.2, 0.4)
    assert ax.get_ylabel() == "power (P[p < 0.01])"
    assert ax.get_xlabel() == "subjects per group (n)"
    assert "madrs_total at 24 h" in ax.get_title() and "vs pla" in ax.get_title()


def test_dose_response_points_sit_at_their_doses(tmp_path, drawn):
    """Rows in rank order (not by dose): each compound's line runs through its arms'
    values at their doses, the ketamine line through the reference arm at 10 mg/kg, the
    reference as one star, the vehicle as a level."""
    from ketasim.report.screen import DOSE_RESPONSE_METRICS, dose_response_figure
    from ketasim.screen import METRIC_NAMES, TABLE_COLUMNS, metric_table

    arms = [
        ("esketamine", 30.0, "candidate"),
        ("ketamine", 10.0, "reference"),
        ("saline", 0.0, "vehicle"),
        ("esketamine", 3.0, "candidate"),
        ("ketamine", 30.0, "candidate"),
        ("esketamine", 10.0, "candidate"),
        ("ketamine", 3.0, "candidate"),
    ]

    def value(compound, dose, j):
        return -1.0 if compound == "saline" else dose * (2 if compound == "ketamine" else 1) + j

    rows = [
        {
            "rank": k + 1,
            "compound": c,
            "dose_mg_per_kg": d,
            "route": "ip",
            "role": r,
            "arm": f"{c}_{d:g}",
            "n": 8,
            **{m: value(c, d, j) for j, m in enumerate(METRIC_NAMES)},
        }
        for k, (c, d, r) in enumerate(arms)
    ]
    dose_response_figure(pd.DataFrame(rows)[TABLE_COLUMNS], metric_table(), tmp_path / "d.png")
    for ax, metric in zip(drawn[-1].axes, DOSE_RESPONSE_METRICS, strict=False):
        j = METRIC_NAMES.index(metric)
        assert ax.get_title() == metric and ax.get_xscale() == "log"
        lines = {ln.get_label(): ln.get_xydata().tolist() for ln in ax.lines}
        assert lines["esketamine"] == [[d, d + j] for d in (3.0, 10.0, 30.0)]
        assert lines["ketamine"] == [[d, 2 * d + j] for d in (3.0, 10.0, 30.0)]
        assert lines["reference"] == [[10.0, 20.0 + j]]
        assert any(
            ln.get_xydata()[0, 1] == -1.0 for ln in ax.lines if ln.get_label().startswith("_")
        )
        assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "10", "30"]


# --------------------------------------------------------------------- trial figures

TRIAL = """
name: review_figures_trial
species: human
seed: 2026
arms:
  - name: midazolam
    n: 8
    population: &trd
      female: 0.6
      failed_trials: 2.5
      screening: -7d
      inclusion: {madrs_min: 22, failed_trials_min: 2}
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}
    assays: &visits
      - {assay: madrs, at: [-7d, -1d, 24h, 72h, 7d]}
      - {assay: cadss, at: [40min, 4h]}
  - name: ketamine
    n: 8
    population: *trd
    protocol:
      - {at: -60d, stress: major_depression, duration: 120d}
      - {at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
    assays: *visits
design:
  control: midazolam
  baseline: -1d
  primary: 24h
  dropout: {rate_per_week: 0.3, mechanism: mar}
"""


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A tiny simulated trial (8 candidates per arm, screening, dropout, CADSS)."""
    from ketasim import simulate
    from ketasim.analysis.stats import summarize
    from ketasim.experiment.trial import analyse_trial
    from ketasim.params import load_registry
    from ketasim.scenario import load_scenario

    path = tmp_path_factory.mktemp("trial") / "trial.yaml"
    path.write_text(TRIAL)
    sc = load_scenario(path)
    r = simulate(sc, registry=load_registry())
    tables = analyse_trial(
        sc,
        r.readouts,
        r.disposition,
        getattr(r, "patients", None),
        getattr(r, "intercurrent", None),
    )
    return sc, r, tables, summarize(r.readouts)


def _madrs(r) -> pd.DataFrame:
    m = r.readouts[r.readouts["readout"] == "madrs_total"]
    return m.pivot_table(index=["arm", "subject"], columns="time_h", values="value")


def test_trial_course_is_each_arms_mean_change_and_se_of_the_patients_seen(trial, tmp_path, drawn):
    """Top panel: per arm the mean change from baseline (-1 d) of the patients rated at
    each visit with its SE (ddof 1); beneath it CADSS mean +- SEM at each rating; the
    primary visit marked at 24 h; hours on a symmetric-log axis."""
    from ketasim.report.trial_figures import trial_course_figure

    _, r, tables, summary = trial
    arms = ["midazolam", "ketamine"]
    trial_course_figure(tables.trial, summary, "madrs_total", arms, 24.0, tmp_path / "c.png")
    top, below = drawn[-1].axes
    wide = _madrs(r)
    change = wide.sub(wide[-24.0], axis=0)
    lines = {ln.get_label(): ln for ln in top.lines}
    bands = [c for c in top.collections if c.get_paths()]
    assert _legend(top) == [*arms, "primary visit"]
    for k, arm in enumerate(arms):
        xy = lines[arm].get_xydata()
        assert xy[:, 0].tolist() == [-24.0, 24.0, 72.0, 168.0]
        for x, y in xy:
            m, e = _mean_sem(change.loc[arm, x]) if x > 0 else (0.0, 0.0)
            assert y == pytest.approx(m)
            assert _band(bands[k], x) == pytest.approx((m - e, m + e))
    assert lines["primary visit"].get_xdata()[0] == 24.0
    assert "change from baseline (points)" in top.get_ylabel()
    assert below.get_xscale() == "symlog" and below.get_xlabel() == "time from the first dose"
    assert "cadss_total" in below.get_ylabel()
    cadss = r.readouts[r.readouts["readout"] == "cadss_total"]
    for k, c in enumerate(c for c in below.containers if isinstance(c, ErrorbarContainer)):
        assert c.get_label() == arms[k]
        xy = c.lines[0].get_xydata()
        for (x, y), seg in zip(xy, c.lines[2][0].get_segments(), strict=True):
            m, e = _mean_sem(
                cadss.loc[(cadss["arm"] == arms[k]) & np.isclose(cadss["time_h"], x), "value"]
            )
            assert y == pytest.approx(m)
            assert sorted(seg[:, 1]) == pytest.approx([m - e, m + e])


def test_response_and_remission_bars_are_the_proportions_with_wilson_intervals(
    trial, tmp_path, drawn
):
    """By hand from the ratings: response a fall of 50% or more from baseline at 24 h,
    remission MADRS <= 12 there, patients not rated (left the trial) counted as neither;
    the intervals statsmodels' Wilson interval of events out of the randomised."""
    from statsmodels.stats.proportion import proportion_confint

    from ketasim.report.trial_figures import endpoints_figure

    _, r, tables, _ = trial
    endpoints_figure(tables.endpoints, 24.0, tmp_path / "e.png")
    ax = drawn[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["response", "remission"]
    assert _legend(ax) == ["midazolam", "ketamine"]
    wide = _madrs(r)
    randomised = r.disposition.groupby("arm").size()
    bars, segs = _bars(ax), _error_segments(ax)
    for k, arm in enumerate(["midazolam", "ketamine"]):
        w = wide.loc[arm]
        events = {
            "response": int(((w[-24.0] - w[24.0]) >= 0.5 * w[-24.0]).sum()),
            "remission": int((w[24.0] <= 12).sum()),
        }
        n = int(randomised[arm])
        for j, name in enumerate(["response", "remission"]):
            x, _, h = bars[2 * k + j]
            assert x == pytest.approx(j + (k - 0.5) * 0.4)
            assert h == pytest.approx(events[name] / n)
            lo, hi = proportion_confint(events[name], n, method="wilson")
            assert sorted(segs[2 * k + j][:, 1]) == pytest.approx([lo, hi])


def test_the_trial_sections_consort_counts_are_the_runs(trial, tmp_path):
    """The CONSORT table of the report: screened, excluded, randomised, then per arm
    allocated, discontinued and completed, equal to the run's patients and
    disposition."""
    from ketasim.report.html import trial_html

    sc, r, tables, summary = trial
    html = "\n".join(trial_html(tmp_path, tables, sc.design, summary))
    body = html[html.index('<table id="consort">') :]
    body = body[: body.index("</table>")]
    cells = [
        [c.split(">", 1)[1] for c in row.split("</td>")[:-1]] for row in body.split("<tr>")[2:]
    ]
    got = {(s, a): int(n) for s, a, reason, n in cells if reason == ""}
    p = r.patients
    d = r.disposition
    assert got[("screened", "")] == len(p)
    assert got[("excluded", "")] == int((~p["eligible"]).sum())
    assert got[("randomised", "")] == int(p["eligible"].sum()) == len(d)
    for arm, g in d.groupby("arm"):
        assert got[("allocated", arm)] == len(g)
        assert got[("completed", arm)] == int(g["completed"].sum())
        assert got[("discontinued", arm)] == int((~g["completed"].astype(bool)).sum())
    assert sum(got[("discontinued", a)] for a in d["arm"].unique()) > 0  # dropout drawn
    for png in ("fig_trial.png", "fig_trial_endpoints.png"):
        assert (tmp_path / png).stat().st_size > 10_000


def test_relapse_curves_are_lifelines_kaplan_meier_steps_in_days(tmp_path, drawn):
    """Durations in hours from the start of maintenance: the curves step down at each
    relapse (post steps, in days) exactly as lifelines' own fit, censored patients only
    lowering the numbers at risk; the legend counts relapses of the arm's patients."""
    from lifelines import KaplanMeierFitter

    from ketasim.analysis.trial import survival
    from ketasim.report.trial_figures import relapse_figure

    df = pd.DataFrame(
        {
            "arm": ["placebo"] * 5 + ["esketamine"] * 4,
            "duration_h": [168, 336, 336, 504, 672, 168, 504, 672, 672],
            "relapsed": [1, 1, 0, 1, 0, 0, 1, 0, 0],
        }
    )
    km = survival(df, "duration_h", "relapsed", "arm", "placebo").km
    relapse_figure(km, tmp_path / "r.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == "days from the start of maintenance"
    assert _legend(ax) == ["placebo (3 relapses of 5)", "esketamine (1 relapse of 4)"]
    hand = {
        "placebo": [(0, 1.0), (7, 0.8), (14, 0.6), (21, 0.3), (28, 0.3)],
        "esketamine": [(0, 1.0), (7, 1.0), (21, 2 / 3), (28, 2 / 3)],
    }
    for line, (arm, g) in zip(ax.lines, df.groupby("arm", sort=False), strict=True):
        kmf = KaplanMeierFitter().fit(g["duration_h"], g["relapsed"])
        sf = kmf.survival_function_.iloc[:, 0]
        assert line.get_drawstyle() == "steps-post"
        assert line.get_xydata()[:, 0] == pytest.approx(sf.index.to_numpy() / 24.0)
        assert line.get_xydata()[:, 1] == pytest.approx(sf.to_numpy())
        assert line.get_xydata() == pytest.approx(np.array(hand[arm]))


# ------------------------------------------------------------------------ spine maps

SESSIONS = [-24.0, 0.0, 24.0, 48.0]


def _tracking(rows, arm="ket", length=20.0):
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "subject": subj,
                "branch": br,
                "spine_id": sid,
                "time_h": float(t),
                "position_um": pos,
                "present": present,
                "branch_length_um": length,
            }
            for subj, br, sid, times, pos, present in rows
            for t in times
        ]
    )


MAP_ROWS = [  # subject, branch, spine, sessions seen, position, present
    ("m1", "d1", "s1", SESSIONS, 2.0, True),  # kept throughout
    ("m1", "d1", "s2", [-24, 0], 5.0, True),  # lost: last seen at 0 h
    ("m1", "d1", "s4", [-24], 10.0, True),  # lost between -1 d and 0 h
    ("m1", "d1", "s5", [24, 48], 10.5, True),  # new within 2 um of s4: restored
    ("m1", "d1", "s3", [24, 48], 7.0, True),  # new (de novo)
    ("m1", "d1", "s6", [48], 15.0, True),  # new at the last session
    ("m2", "d1", "x1", SESSIONS, 3.0, True),  # another animal
]


def _statuses(ax) -> dict:
    """(session row, status) -> sorted positions drawn."""
    out: dict = {}
    for c in ax.collections:
        if isinstance(c, PathCollection) and not c.get_label().startswith("_"):
            for x, y in c.get_offsets():
                out.setdefault((int(y), c.get_label()), []).append(float(x))
    return {k: sorted(v) for k, v in out.items()}


def test_spine_map_marks_each_spine_at_its_position_and_sessions(tmp_path, drawn):
    from ketasim.report.spine_maps import spine_map_figure

    spine_map_figure(_tracking(MAP_ROWS), tmp_path / "m.png", arm="ket")
    (ax,) = drawn[-1].axes
    assert ax.get_title(loc="left") == "ket subject m1, branch d1"  # the first animal
    assert [t.get_text() for t in ax.get_yticklabels()] == ["-1 d", "0 h", "1 d", "2 d"]
    assert ax.get_xlim() == (0.0, 20.0)
    assert _statuses(ax) == {
        (0, "kept"): [2.0, 5.0],
        (0, "lost"): [10.0],
        (1, "kept"): [2.0],
        (1, "lost"): [5.0],
        (2, "kept"): [2.0],
        (2, "new"): [7.0],
        (2, "restored"): [10.5],
        (3, "kept"): [2.0, 7.0, 10.5],
        (3, "new"): [15.0],
    }
    spine_map_figure(_tracking(MAP_ROWS), tmp_path / "m2.png", arm="ket", subject="m2")
    (ax,) = drawn[-1].axes
    assert _statuses(ax) == {(i, "kept"): [3.0] for i in range(4)}


# fixed (was BUG): spine_maps.py:45-64 draws every row of the tracking table, also
#   present=False rows: a none_seen placeholder is drawn as a spine at 0 um, and a confirmed
#   absence is drawn as the spine (lost at the absent session instead of where it was last
#   seen)
def test_spine_map_draws_no_absent_rows_or_empty_branch_placeholders(tmp_path, drawn):
    """The written spines_tracking.parquet (and a lab's table) holds ``present`` False
    rows: a placeholder ``none_seen`` for an imaged branch with nothing seen, and
    confirmed absences (docs/spine_tracking_table.md)."""
    from ketasim.report.spine_maps import spine_map_figure

    rows = [
        *MAP_ROWS,
        ("m1", "d1", "s2", [24], 5.0, False),
        ("m1", "d2", "s7", [-24], 4.0, True),
        ("m1", "d2", "none_seen", [0, 24, 48], 0.0, False),
    ]
    spine_map_figure(_tracking(rows), tmp_path / "m.png", arm="ket")
    ax1, ax2 = drawn[-1].axes[:2]
    assert _statuses(ax1).get((1, "lost")) == [5.0]  # s2 last seen at 0 h
    assert all(5.0 not in v for (i, _), v in _statuses(ax1).items() if i == 2)
    assert _statuses(ax2) == {(0, "lost"): [4.0]}  # nothing else on the empty branch


def test_turnover_bars_are_subject_means_with_every_subject_dotted(tmp_path, drawn, rng):
    from ketasim.analysis.spines import turnover
    from ketasim.report.spine_maps import turnover_figure

    tables = {}
    for arm in ("saline", "ketamine"):
        rows = []
        for subj in ("a", "b", "c"):
            for k in range(12):
                seen = [t for t in (0.0, 24.0, 72.0) if rng.random() < 0.7]
                if seen:
                    rows.append((subj, "d1", f"s{k}", seen, float(k), True))
        tables[arm] = _tracking(rows, arm=arm, length=15.0)
    turnover_figure(tables, tmp_path / "t.png")
    top, bottom = drawn[-1].axes
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0 h to 1 d", "1 d to 3 d"]
    assert _legend(top) == ["saline", "ketamine"]
    for ax, col in ((top, "formation_pct"), (bottom, "elimination_pct")):
        bars = _bars(ax)
        dots = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
        k = 0
        for a, arm in enumerate(tables):
            for i, (t0, t1) in enumerate(((0.0, 24.0), (24.0, 72.0))):
                v = turnover(tables[arm], t0, t1).per_subject[col].dropna().to_numpy()
                x, _, h = bars[k]
                assert x == pytest.approx(i - 0.4 + (a + 0.5) * 0.4)
                assert h == pytest.approx(v.mean())
                assert sorted(dots[k][:, 1]) == pytest.approx(sorted(v))
                assert np.abs(dots[k][:, 0] - x).max() <= 0.1 + 1e-9
                k += 1


# fixed (was BUG): spine_maps.py:212-223 (tracking_figures) draws turnover (and survival)
#   from the kept 'tracking' table without its 'empty_branches' placeholders, so a branch
#   with nothing seen at a session drops out and the bars differ from the run's
#   formation_pct/elimination_pct readouts
def test_turnover_bars_equal_the_runs_turnover_readouts(tmp_path, drawn):
    """A run whose imaging misses most spines (miss 0.9), so that some branches show
    nothing at a session: the bars are arm means of the animals' formation and
    elimination %, which the run reports as formation_pct and elimination_pct."""
    from ketasim import simulate
    from ketasim.analysis.stats import summarize
    from ketasim.params import load_registry
    from ketasim.report.spine_maps import tracking_figures
    from ketasim.scenario import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text("""
name: review_turnover
species: mouse
seed: 4
arms:
  - name: saline
    n: 3
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: &a
      - {assay: two_photon_spines, at: [-1d, 1d, 3d, 7d],
         options: {miss: 0.9, false_pos_per_100um: 0.0}}
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: *a
""")
    r = simulate(load_scenario(path), registry=load_registry())
    kept = r.kept["two_photon_spines"]
    assert all(len(k.get("empty_branches", ())) for k in kept.values())
    summary = summarize(r.readouts).set_index(["arm", "readout", "time_h"])["mean"]
    tracking_figures(kept, tmp_path, "fig_")
    fig = next(f for f in drawn if len(f.axes) == 2 and f.axes[0].get_ylabel() == "formation (%)")
    ends = [24.0, 72.0, 168.0]
    for ax, col in zip(fig.axes, ("formation_pct", "elimination_pct"), strict=True):
        bars = _bars(ax)
        for a, arm in enumerate(kept):
            got = [h for _, _, h in bars[3 * a : 3 * a + 3]]
            want = [summary[arm, col, t] for t in ends]
            assert got == pytest.approx(want), (arm, col)


def test_spine_survival_curves_are_the_analysis_kaplan_meier(tmp_path, drawn):
    """Spines new at 1 d followed to 2 d: the restored one (within 2 um of a site lost
    between -1 d and 0 h) survives, one of the two de novo ones is lost."""
    from ketasim.report.spine_maps import survival_figure

    rows = [*MAP_ROWS[:5], ("m1", "d1", "s8", [24], 16.0, True)]
    survival_figure({"ket": _tracking(rows)}, tmp_path / "s.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == "h after 1 d"
    assert _legend(ax) == ["restored: 1.00 (n=1)", "de novo: 0.50 (n=2)"]
    restored, de_novo = [ln for ln in ax.lines if not ln.get_label().startswith("_")]
    assert restored.get_xydata().tolist() == [[0.0, 1.0], [24.0, 1.0]]
    assert de_novo.get_xydata().tolist() == [[0.0, 1.0], [24.0, 0.5]]


def test_spine_class_stacks_are_class_means_with_the_totals_sem(tmp_path, drawn):
    from ketasim.report.spine_maps import spine_class_figure

    dens = {"sal": [(2.0, 1.0, 0.5, 0.5), (4.0, 1.0, 0.5, 0.5)], "ket": [(3.0, 3.0, 1.0, 1.0)]}
    classes = ("mushroom", "thin", "stubby", "filopodium")
    table = pd.DataFrame(
        [
            {
                "arm": arm,
                "cell": "mpfc_l5",
                "subject": s,
                "time_h": 96.0,
                "class": c,
                "fraction": v / sum(d),
                "density_per_10um": v,
            }
            for arm, subs in dens.items()
            for s, d in enumerate(subs)
            for c, v in zip(classes, d, strict=True)
        ]
    )
    spine_class_figure(table, tmp_path / "c.png")
    density, share = drawn[-1].axes[:2]
    assert [t.get_text() for t in density.get_xticklabels()] == [
        "sal\nmpfc_l5, 4 d\n(n=2)",
        "ket\nmpfc_l5, 4 d\n(n=1)",
    ]
    want = {"sal": np.mean(dens["sal"], axis=0), "ket": np.array(dens["ket"][0])}
    heights = {
        c.get_label(): [p.get_height() for p in c.patches]
        for c in density.containers
        if isinstance(c, BarContainer)
    }
    for j, c in enumerate(classes):
        assert heights[c] == pytest.approx([want["sal"][j], want["ket"][j]])
    (seg,) = [s for s in _error_segments(density) if len(s)]  # none for one animal
    m, e = _mean_sem([4.0, 6.0])  # the sal animals' totals per 10 um
    assert sorted(seg[:, 1]) == pytest.approx([m - e, m + e])
    shares = {
        c.get_label(): [p.get_height() for p in c.patches]
        for c in share.containers
        if isinstance(c, BarContainer)
    }
    assert shares["mushroom"] == pytest.approx([(0.5 + 4 / 6) / 2, 3 / 8])


def test_calcium_raster_draws_the_session_and_its_population_mean(tmp_path, drawn, rng):
    from ketasim.report.spine_maps import calcium_raster_figure

    dff = rng.gamma(1.0, 0.1, size=(6, 90))
    calcium_raster_figure({3.0: dff}, tmp_path / "c.png", "ket", frame_rate_hz=30.0)
    raster, mean = drawn[-1].axes
    im = raster.get_images()[0]
    assert im.get_array().shape == dff.shape
    assert list(im.get_extent()) == pytest.approx([0.0, 89 / 30.0, 6.0, 0.0])
    assert raster.get_title(loc="left") == "ket, 3 h"
    xy = mean.lines[0].get_xydata()
    assert xy[:, 0] == pytest.approx(np.arange(90) / 30.0)
    assert xy[:, 1] == pytest.approx(dff.mean(axis=0))


# ---------------------------------------------------------------- behaviour figures


def _tst():
    def etho(arm, subjects, t):
        return pd.DataFrame(
            [
                row
                for k, s in enumerate(subjects)
                for row in (
                    {
                        "arm": arm,
                        "subject": s,
                        "state": "immobile",
                        "start_s": 0.0,
                        "end_s": 10.0 + k,
                        "time_h": t,
                    },
                    {
                        "arm": arm,
                        "subject": s,
                        "state": "struggle",
                        "start_s": 10.0 + k,
                        "end_s": 30.0,
                        "time_h": t,
                    },
                )
            ]
        )

    lags = np.array([-1.0, 0.0, 1.0])
    nan = [np.nan] * 3
    return {
        "sal": {
            "ethogram": pd.concat([etho("sal", ["0", "1"], t) for t in (3.0, 48.0)]),
            "lags_s": lags,
            "peri_dff": {
                3.0: np.array([[0, 1, 2], [2, 3, 4.0], nan]),
                48.0: np.array([[1, 1, 1.0], nan, nan]),
            },
        },
        "ket": {
            "ethogram": pd.concat([etho("ket", ["0", "1", "2"], t) for t in (3.0, 48.0)]),
            "lags_s": lags,
            "peri_dff": {
                3.0: np.array([[5, 5, 5.0], [7, 7, 7], [9, 9, 9]]),
                48.0: np.array([[0, 0, 0.0], [2, 2, 2], [4, 4, 4]]),
            },
        },
    }


def test_ethogram_rows_hold_each_mouses_bouts_under_its_arm(tmp_path, drawn):
    from ketasim.report.behavior_figures import ethogram_figure

    ethogram_figure(_tst(), tmp_path / "e.png")
    ax = drawn[-1].axes[0]
    assert ax.get_title(loc="left").startswith("3 h")
    assert drawn[-1].axes[1].get_title(loc="left").startswith("2 d")
    assert [
        (t.get_text(), y) for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)
    ] == [("sal", 1.0), ("ket", 3.5)]
    boxes = [
        (p.get_extents().x0, p.get_extents().x1, round(p.get_extents().y0))
        for c in ax.collections
        for p in c.get_paths()
    ]
    immobile_ends = [10.0, 11.0, 10.0, 11.0, 12.0]  # sal 0, 1; ket 0, 1, 2
    assert boxes == [
        b for row, end in enumerate(immobile_ends) for b in ((0.0, end, row), (end, 30.0, row))
    ]


def test_peri_struggle_lines_are_means_over_mice_with_sem_and_n(tmp_path, drawn):
    from ketasim.report.behavior_figures import peri_struggle_figure

    peri_struggle_figure(_tst(), tmp_path / "p.png")
    for ax, t in zip(drawn[-1].axes, (3.0, 48.0), strict=True):
        for arm, d in _tst().items():
            per = d["peri_dff"][t]
            per = per[np.isfinite(per).all(axis=1)]
            line = next(ln for ln in ax.lines if ln.get_label() == f"{arm} (n={per.shape[0]})")
            assert line.get_xydata()[:, 1] == pytest.approx(per.mean(axis=0))
            band = ax.collections[
                [ln for ln in ax.lines if not ln.get_label().startswith("_")].index(line)
            ]
            if per.shape[0] > 1:
                for j, x in enumerate(d["lags_s"]):
                    m, e = _mean_sem(per[:, j])
                    assert _band(band, x) == pytest.approx((m - e, m + e))


def test_open_field_paths_are_each_animals_track_per_session(tmp_path, drawn):
    """Six sessions of an arm: the first, the last and two between are drawn; each panel
    is one animal's x, y track."""
    from ketasim.report.behavior_figures import track_figure

    times = [0.25, 1.0, 2.0, 4.0, 24.0, 48.0]
    tracks = pd.DataFrame(
        [
            {
                "subject": str(s),
                "time_h": t,
                "t_s": float(i),
                "x_cm": 10.0 * s + i + t,
                "y_cm": float(i),
            }
            for t in times
            for s in range(2)
            for i in range(5)
        ]
    )
    track_figure({"ket": tracks}, tmp_path / "o.png")
    axes = np.array(drawn[-1].axes).reshape(4, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [
        "ket\n15 min",
        "ket\n2 h",
        "ket\n4 h",
        "ket\n2 d",
    ]
    for row, t in zip(axes, (0.25, 2.0, 4.0, 48.0), strict=True):
        for s, ax in enumerate(row):
            assert ax.get_title() == str(s)
            want = tracks[(tracks["time_h"] == t) & (tracks["subject"] == str(s))]
            assert ax.lines[0].get_xydata().tolist() == want[["x_cm", "y_cm"]].to_numpy().tolist()


# -------------------------------------------------------------- report figure parts


def test_the_trial_caption_names_the_axis_the_figure_draws(trial, tmp_path, drawn):
    """A trial to 7 days: the caption says linear to 1 h and logarithmic beyond, as
    the drawn symlog axis with its linear range of 1 h is; SE for the scale, SEM for
    the psychotomimetic ratings."""
    from ketasim.report.html import trial_html

    sc, _, tables, summary = trial
    html = "\n".join(trial_html(tmp_path, tables, sc.design, summary))
    fig = next(f for f in drawn if len(f.axes) == 2 and "cadss_total" in f.axes[1].get_ylabel())
    ax = fig.axes[-1]
    assert ax.get_xscale() == "symlog"
    assert ax.xaxis.get_transform().linthresh == 1.0
    assert "linear to 1 h and logarithmic beyond" in html
    assert "mean change from baseline \u00b1 SE per arm" in html
    assert "mean \u00b1 SEM at each rating" in html
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "1w" and "1d" in labels


def test_a_runs_tracking_tables_carry_the_empty_branch_placeholders():
    """``SimulationResult.tracking`` (what the validation statistics and the NWB export
    read) holds a ``present=False`` row for each imaged branch and session with no spine
    seen, as a lab's table does and as the readouts count it."""
    from ketasim.spines.assays import tracking_tables

    seen = pd.DataFrame(
        {
            "arm": ["a"],
            "subject": ["0"],
            "branch": ["0"],
            "spine_id": ["s1"],
            "time_h": [0.0],
            "present": [True],
        }
    )
    empty = pd.DataFrame(
        {
            "arm": ["a"],
            "subject": ["0"],
            "branch": ["1"],
            "spine_id": ["none_seen"],
            "time_h": [0.0],
            "present": [False],
        }
    )
    full = tracking_tables(
        {"two_photon_spines": {"a": {"tracking": seen, "empty_branches": empty}}}
    )["a"]
    assert len(full) == 2 and full["present"].tolist() == [True, False]
    only = tracking_tables({"two_photon_spines": {"a": {"tracking": seen}}})["a"]
    assert only is seen


def test_arms_get_distinct_colour_and_marker_pairs_beyond_twenty():
    """Arm k's colour is the k-th of the cycle (10) and its marker moves on each time the
    colours start again, so 100 arms are 100 different pairs (arms 20 apart once looked
    alike); the first ten arms keep their markers."""
    from ketasim.report import figures as F

    pairs = {(F._COLORS[k % len(F._COLORS)], F._arm_marker(k)) for k in range(100)}
    assert len(pairs) == 100
    assert [F._arm_marker(k) for k in range(10)] == list(F._MARKERS[:10])
