"""The run and validation reports' summary figures and captions: what is drawn, what is
named instead, and what the captions say."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _summary(rows):
    return pd.DataFrame(rows, columns=["arm", "assay", "readout", "time_h", "unit", "n",
                                       "mean", "sem"])


def test_flat_and_empty_readouts_are_named_not_drawn():
    from ketasim.report.figures import panels

    rows = []
    for arm in ("saline", "ketamine"):
        for t in (0.0, 1.0, 24.0):
            rows += [(arm, "a", "moves", t, "1", 4, 1.0 + (arm == "ketamine") * t, 0.1),
                     (arm, "a", "rest", t, "1", 4, 1.0, 0.0),       # the same everywhere
                     (arm, "a", "blq", t, "ng/mL", 0, np.nan, np.nan)]  # nothing measured
    rows += [("saline", "a", "once", 2.0, "s", 4, 3.0, 0.0),  # one time: a bar, kept
             ("ketamine", "a", "once", 2.0, "s", 4, 3.0, 0.0)]
    names, empty, flat = panels(_summary(rows))
    assert names == ["moves", "once"]
    assert empty == ["blq"]
    assert flat == ["rest = 1"]
    # small but not zero (a 4-fold change between 2e-5 and 8e-5) is drawn
    rows = [(arm, "a", "small", t, "1", 4, 2e-5 * (1 + 3 * t), 0.0) for arm in ("x", "y")
            for t in (0, 1)]
    assert panels(_summary(rows))[0] == ["small"]
    # a flat mean with spread between subjects is drawn
    rows = [(arm, "a", "noisy", t, "1", 4, 1.0, 0.2) for arm in ("x", "y") for t in (0, 1)]
    assert panels(_summary(rows))[0] == ["noisy"]


def test_a_figure_with_nothing_to_draw_is_still_written(tmp_path):
    from ketasim.report.figures import assay_figure

    summary = _summary([("saline", "a", "blq", t, "ng/mL", 0, np.nan, np.nan)
                        for t in (0.0, 1.0)])
    readouts = pd.DataFrame(columns=["arm", "assay", "readout", "time_h", "value"])
    png = assay_figure(readouts, summary, "a", tmp_path / "f.png")
    assert png.is_file() and png.stat().st_size > 1000


def test_captions_say_what_the_readouts_and_the_nested_sem_mean():
    from ketasim.report.html import FIGURE_NOTE, figure_caption

    assert figure_caption("plasma_pk") == f"plasma_pk: {FIGURE_NOTE}"
    spines = figure_caption("two_photon_spines")
    assert "formation_pct: spines new since the previous session" in spines
    assert "intervals of different lengths" in spines
    nested = figure_caption("two_photon_spines_nested")
    assert "SEM over the units of each arm" in nested and "per arm;" not in nested
    assert "formation_pct:" in nested


def test_the_summary_table_leaves_out_rows_with_nothing_measured():
    from ketasim.report.html import _summary_html

    summary = _summary([("saline", "plasma_pk", "ketamine_plasma_ng_ml", 1.0, "ng/mL", 0,
                         np.nan, np.nan),
                        ("ketamine", "plasma_pk", "ketamine_plasma_ng_ml", 1.0, "ng/mL", 8,
                         210.0, 12.0)])
    out = "".join(_summary_html(summary))
    assert out.count("<tr") == 2  # the header and the ketamine row
    assert "1 row with no measured value" in out
    assert "no measured value" not in "".join(_summary_html(summary[summary["n"] > 0]))


def test_report_header_and_tables_for_lab_data():
    from ketasim.report.html import _header_html, table_html

    lab = _header_html({"ketasim_version": "0.1", "species": "mouse", "seed": None,
                        "scenario_hash": "abcdef0123456789"})
    assert "lab data, no simulation" in lab and "seed" not in lab
    assert "<code>abcdef012345</code>" in lab
    sim = _header_html({"ketasim_version": "0.1", "species": "rat", "seed": 7,
                        "scenario_hash": "ff"})
    assert "seed 7, scenario hash <code>ff</code>" in sim
    table = table_html(pd.DataFrame({"p": [0.01], "baseline_h": [np.nan]}), "p")
    assert "nan" not in table and "<td></td>" in table


def test_the_summary_table_leaves_out_flat_readouts_and_tiny_moves_are_flat():
    from ketasim.report.figures import panels
    from ketasim.report.html import _summary_html

    rows = []
    for arm in ("a", "b"):
        for t in (0.0, 2.0):
            rows += [(arm, "s", "moves", t, "1", 4, 1.0 + (arm == "b") * t, 0.1),
                     (arm, "s", "rest", t, "1", 4, 0.0, 0.0),
                     (arm, "s", "tiny", t, "1", 4, 1e-7 * t * (arm == "b"), 1e-8)]
    summary = _summary(rows)
    assert panels(summary)[2] == ["rest = 0", "tiny = 0"]
    out = "".join(_summary_html(summary))
    assert out.count("<tr") == 1 + 4  # the header and the 'moves' rows
    assert "8 rows of readouts the same in every arm" in out


def test_trial_time_axes_fit_their_visits():
    """A single-dose trial keeps the log axis (minutes to weeks), with ticks that do not
    crowd and one at the last visit; a trial of months gets a linear axis in weeks."""
    from ketasim.report._mpl import subplots
    from ketasim.report.trial_figures import _WEEK, _symlog, _time_axis

    _fig, ax = subplots()
    short = np.array([-24.0, 0.67, 4.0, 24.0, 72.0, 7 * 24.0, 14 * 24.0])
    _time_axis(ax, short)
    assert ax.get_xscale() == "symlog"
    ticks = ax.get_xticks()
    assert ticks[-1] == 14 * 24.0 and ticks[0] == -24.0
    pos = _symlog(ticks)
    assert np.diff(pos).min() >= 0.07 * (pos.max() - pos.min()) - 1e-12
    _fig, ax = subplots()
    _time_axis(ax, np.array([-24.0, 27 * 24.0, *np.arange(13, 29) * _WEEK]))
    assert ax.get_xscale() == "linear"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0h" and labels[-1] == "28w"
    _fig, ax = subplots()  # the last visit off the tick grid is labelled too
    _time_axis(ax, np.array([-24.0, 27 * 24.0, *np.arange(13, 27) * _WEEK]))
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "26w"


def test_only_the_primary_contrast_is_shaded():
    from ketasim.report.html import table_html

    df = pd.DataFrame({"visit_h": [24.0, 72.0], "primary": [True, False],
                       "p": [0.2, 0.01]})
    out = table_html(df, "p", "trial", sig_rows=df["primary"])
    assert 'class="sig"' not in out  # the secondary visit's p < 0.05 is not shaded
    assert table_html(df, "p", "trial").count('class="sig"') == 1


def test_concentrations_over_two_decades_get_a_log_axis():
    from ketasim.report.figures import log_axis

    assert log_axis("ng/mL", np.array([900.0, 250.0, 30.0, 4.0]))
    assert not log_axis("ng/mL", np.array([900.0, 250.0, 30.0]))  # 30-fold
    assert not log_axis("ng/mL", np.array([900.0, 0.0, 4.0]))  # a zero mean
    assert not log_axis("s", np.array([300.0, 1.0]))  # not a concentration
