"""The ``aims`` assay's kept observations and report figures (issue 15, item 7): the
kept table holds the integer scores the readouts sum, it is bounded for big arms, and
the two figures (ALO over sessions, ALO within the last session) are drawn into a run's
folder and its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.behavior import striatal
from ketasim.behavior.striatal import AIMS_COLUMNS, AIMS_SUBTYPES, ALO_SUBTYPES
from ketasim.cli import app
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.report.striatal_figures import aims_figures
from ketasim.scenario import load_scenario_text

REG = load_registry()
PNG = b"\x89PNG\r\n\x1a\n"
DOSES = "".join(f", {{at: {d}d, drug: ldopa, dose: 6 mg/kg, route: sc}}" for d in range(8))
SCENARIO = f"""\
name: aims_figures
species: rat
seed: 4
arms:
  - name: lesion
    n: 3
    protocol: [{{at: -21d, intervention: lesion_6ohda_mfb}}{DOSES}]
    assays:
      - {{assay: aims, at: [0d, 7d], options: {{periods_min: [20, 60, 100]}}}}
"""


def _aims_kept(res) -> dict:
    """arm -> kept dict of the aims assay (a non-default region's key is ``aims@region``)."""
    keys = [k for k in res.kept if k.partition("@")[0] == "aims"]
    assert len(keys) == 1, res.kept.keys()
    return res.kept[keys[0]]


@pytest.fixture(scope="module")
def run():
    # chunks of 2 subjects: the kept tables of an arm's chunks are merged
    return simulate(load_scenario_text(SCENARIO), registry=REG, chunk_subjects=2)


def test_the_kept_table_holds_the_scores_the_readouts_sum(run):
    table = _aims_kept(run)["lesion"]["aims"]
    assert list(table.columns) == list(AIMS_COLUMNS)
    assert len(table) == 3 * 2 * 3 * len(AIMS_SUBTYPES)  # subjects, sessions, periods
    assert set(table["arm"]) == {"lesion"}
    assert sorted(table["subject"].unique()) == [0, 1, 2]
    assert sorted(table["session_h"].unique()) == [0.0, 168.0]
    assert sorted(table["period_min"].unique()) == [20.0, 60.0, 100.0]
    assert set(table["subtype"]) == set(AIMS_SUBTYPES)
    assert np.issubdtype(table["score"].dtype, np.integer)
    assert table["score"].between(0, striatal.AIMS_MAX).all()
    r = run.readouts.set_index(["subject", "time_h", "readout"])["value"]
    alo = (table[table["subtype"].isin(ALO_SUBTYPES)]
           .groupby(["subject", "session_h"])["score"].sum())
    assert alo.sum() > 0  # the lesioned, primed rats have AIMs on day 8
    for (subject, session), v in alo.items():
        assert r[(subject, session, "aims_alo")] == v
    per_type = table.groupby(["subject", "session_h", "subtype"], observed=True)["score"].sum()
    for (subject, session, subtype), v in per_type.items():
        assert r[(subject, session, f"aims_{subtype}")] == v


def test_keeping_is_bounded_and_leaves_the_readouts_unchanged(run, monkeypatch):
    monkeypatch.setattr(striatal, "KEEP_AIMS_SUBJECTS", 2)
    few = simulate(load_scenario_text(SCENARIO), registry=REG, chunk_subjects=2)
    assert sorted(_aims_kept(few)["lesion"]["aims"]["subject"].unique()) == [0, 1]
    monkeypatch.setattr(striatal, "KEEP_AIMS_SUBJECTS", 0)
    none = simulate(load_scenario_text(SCENARIO), registry=REG, chunk_subjects=2)
    assert not [k for k in none.kept if k.startswith("aims")]
    pd.testing.assert_frame_equal(few.readouts, run.readouts)
    pd.testing.assert_frame_equal(none.readouts, run.readouts)


def test_the_figures_are_drawn(run, tmp_path):
    figs = aims_figures(_aims_kept(run), tmp_path, "fig_aims_")
    assert [alt for _, alt, _ in figs] == ["AIMs over sessions", "AIMs within a session"]
    assert [Path(png).name for png, _, _ in figs] == ["fig_aims_sessions.png",
                                                      "fig_aims_time_course.png"]
    for png, _, caption in figs:
        data = Path(png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
        assert "ALO" in caption and "L-DOPA" in caption
    assert aims_figures({}, tmp_path, "x_") == []


def test_importing_the_assay_loads_no_matplotlib():
    code = ("import sys, ketasim.behavior.striatal, ketasim.experiment.assays; "
            "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _cli_run(tmp_path: Path) -> Path:
    path = tmp_path / "aims.yaml"
    path.write_text(SCENARIO)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    if res.exception is not None:
        raise res.exception
    assert res.exit_code == 0, res.output
    return out


def _check_run_folder(out: Path) -> None:
    pngs = sorted(p.name for p in out.glob("*.png") if "aims" in p.name)
    assert any(p.endswith("sessions.png") for p in pngs), pngs
    assert any(p.endswith("time_course.png") for p in pngs), pngs
    report = (out / "report.html").read_text()
    assert "AIMs over sessions" in report and "AIMs within a session" in report


def test_ketasim_run_puts_the_figures_into_the_folder_and_report(tmp_path):
    """The runner keeps a non-default region's results under ``aims@striatum``; the run
    folder and the report resolve the assay from it and name the files by region."""
    out = _cli_run(tmp_path)
    _check_run_folder(out)
    assert any("aims_striatum_" in p.name for p in out.glob("*.png"))
