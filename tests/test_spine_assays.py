"""Spine assays through the runner: what a lab would measure, with its sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketasim import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

TEXT = """
name: spine_assays
species: mouse
seed: 8
arms:
  - name: saline
    n: 12
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays:
      - {assay: two_photon_spines, at: [-1d, 0h, 1d, 3d]}
      - {assay: uncaging_spinogenesis, at: [2h, 24h], options: {cells: 4, attempts: 10}}
      - {assay: fixed_tissue_spines, at: [3d]}
  - name: ketamine
    n: 12
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: two_photon_spines, at: [-1d, 0h, 1d, 3d]}
      - {assay: uncaging_spinogenesis, at: [2h, 24h], options: {cells: 4, attempts: 10}}
      - {assay: fixed_tissue_spines, at: [3d]}
      - {assay: signaling_state, at: [2h, 24h]}
"""


@pytest.fixture(scope="module")
def result():
    return simulate(load_scenario_text(TEXT), registry=load_registry())


def mean(r, arm, readout, t):
    sel = (r["arm"] == arm) & (r["readout"] == readout) & np.isclose(r["time_h"], t)
    return r.loc[sel, "value"].mean()


def test_uncaging_is_binomial_on_the_plasticity_potential(result):
    """Each animal's success fraction is k/40 with k ~ Binomial(40, PP) (F-W-5, F-W-6)."""
    r = result.readouts
    v = r[(r["readout"] == "uncaging_success")]["value"].to_numpy()
    assert np.allclose(v * 40, np.round(v * 40))
    pp = mean(r, "ketamine", "plasticity_potential", 2.0)
    assert mean(r, "ketamine", "uncaging_success", 2.0) == pytest.approx(pp, abs=0.08)
    assert 0.15 <= mean(r, "saline", "uncaging_success", 2.0) <= 0.30
    assert mean(r, "ketamine", "uncaging_success", 2.0) > mean(r, "saline",
                                                               "uncaging_success", 2.0)


def test_two_photon_tracking_table_and_readouts(result):
    tr = result.tracking["saline"]
    assert {"subject", "branch", "spine_id", "time_h", "position_um", "present",
            "branch_length_um", "size", "class"} <= set(tr.columns)
    assert tr["branch"].astype(int).max() == 3  # 4 imaged branches by default
    assert (tr["position_um"] >= 0).all() and (tr["position_um"] <= tr["branch_length_um"]).all()
    assert not tr.duplicated(["subject", "branch", "spine_id", "time_h"]).any()
    r = result.readouts
    assert 4.0 <= mean(r, "saline", "spine_density_per_10um", 0.0) <= 6.0
    assert 2.0 <= mean(r, "saline", "formation_pct", 24.0) <= 12.0
    assert np.isnan(r[(r["readout"] == "formation_pct") & (r["time_h"] == -24.0)]["value"]).all()


def test_fixed_tissue_fractions_sum_to_one(result):
    r = result.readouts
    fr = r[(r["assay"] == "fixed_tissue_spines") & r["readout"].str.endswith("_fraction")]
    total = fr.groupby(["arm", "subject"])["value"].sum()
    assert np.allclose(total, 1.0)
    assert mean(r, "saline", "mushroom_fraction", 72.0) > 0.15


def test_spine_readouts_do_not_depend_on_other_arms():
    """Adding an arm leaves another arm's spine measurements unchanged (own streams)."""
    one = simulate(load_scenario_text(TEXT.split("  - name: ketamine")[0]), registry=load_registry()).readouts
    both = simulate(load_scenario_text(TEXT), registry=load_registry()).readouts
    a = one[one["arm"] == "saline"].reset_index(drop=True)
    b = both[both["arm"] == "saline"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_run_writes_the_tracking_table(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    p = tmp_path / "s.yaml"
    p.write_text(TEXT.replace("n: 12", "n: 3"))
    res = CliRunner().invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    tr = pd.read_parquet(tmp_path / "o" / "spines_tracking.parquet")
    assert set(tr["arm"]) == {"saline", "ketamine"}


CELLS = """
name: spine_cells
species: mouse
seed: 9
arms:
  - name: mpfc
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: fixed_tissue_spines, at: [0h]}]
  - name: ca1
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: fixed_tissue_spines, at: [0h], options: {cell: ca1}}]
  - name: msn_d1
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: fixed_tissue_spines, at: [0h], region: striatum, options: {cell: msn_d1}}]
  - name: msn_d2
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: fixed_tissue_spines, at: [0h], region: striatum, options: {cell: msn_d2}}]
"""


def test_cell_type_parameter_sets():
    """The ``cell`` option selects the registry's spine parameter set: each population's
    measured density matches its own baseline (0.5 per um mPFC L5, 1.0 CA1, 0.64 and 0.66 the D1 and D2 medium spiny neurons),
    and most spines carry a synapse."""
    from ketasim.params import load_registry

    reg = load_registry()
    r = simulate(load_scenario_text(CELLS), registry=load_registry()).readouts
    for arm, cell in (("mpfc", "mpfc_l5"), ("ca1", "ca1"), ("msn_d1", "msn_d1"),
                      ("msn_d2", "msn_d2")):
        expected = reg.value(f"spine.{cell}.density") * 10.0
        assert mean(r, arm, "spine_density_per_10um", 0.0) == pytest.approx(expected, rel=0.1)
        syn = mean(r, arm, "synaptic_spine_density_per_10um", 0.0)
        assert 0.6 * expected < syn < expected


@pytest.mark.parametrize("options, message", [
    ("{cell: cerebellum}", ("arms[0].assays[0].options.cell: got 'cerebellum'; expected a "
                           "cell type with spine parameters: ['ca1', 'mpfc_l5', 'msn_d1', 'msn_d2']")),
    ("{cell: 3}", "arms[0].assays[0].options.cell: got 3; expected a name"),
])
def test_unknown_cell_type_is_one_clear_error(options, message):
    from ketasim.core.assay import AssayOptionError

    text = CELLS.replace("assays: [{assay: fixed_tissue_spines, at: [0h]}]",
                         f"assays: [{{assay: fixed_tissue_spines, at: [0h], options: {options}}}]")
    with pytest.raises(AssayOptionError) as e:
        simulate(load_scenario_text(text), registry=load_registry())
    assert str(e.value) == message


def test_an_arm_images_one_population():
    from ketasim.core.assay import AssayOptionError

    text = CELLS.replace(
        "assays: [{assay: fixed_tissue_spines, at: [0h]}]",
        "assays: [{assay: fixed_tissue_spines, at: [0h]}, "
        "{assay: two_photon_spines, at: [0h], options: {cell: ca1}}]")
    with pytest.raises(AssayOptionError, match=r"arms\[0\]\.assays\[1\]\.options\.cell: got "
                                               r"'ca1'; an arm's spine assays in one region measure one"):
        simulate(load_scenario_text(text), registry=load_registry())


def test_a_runs_tracking_table_goes_through_analyze_with_arm_qualified_ids(tmp_path):
    """ketasim numbers subjects from 0 in every arm; a design names them <arm>-<id> and
    analyze reads the run's own tracking table back to the run's per-subject readouts."""
    import yaml
    from typer.testing import CliRunner

    from ketasim.cli import app

    p = tmp_path / "s.yaml"
    p.write_text(TEXT.replace("n: 12", "n: 3"))
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    design = {"name": "back", "groups": {arm: [f"{arm}-{i}" for i in range(3)]
                                         for arm in ("saline", "ketamine")}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    res = runner.invoke(app, ["analyze", "spines", str(tmp_path / "o" /
                                                       "spines_tracking.parquet"),
                              "--design", str(tmp_path / "d.yaml"), "--out",
                              str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    key = ["arm", "subject", "readout", "time_h"]
    run = pd.read_parquet(tmp_path / "o" / "readouts.parquet")
    run = run[run["assay"] == "two_photon_spines"].set_index(key)["value"].sort_index()
    subjects = pd.read_csv(tmp_path / "a" / "subjects.csv")
    assert set(subjects["subject_id"]) == {f"{a}-{i}" for a in ("saline", "ketamine")
                                           for i in range(3)}
    # analyze numbers the design's subjects in one sequence; back to the run's ids
    own = dict(zip(subjects["subject"], subjects["subject_id"].str.rsplit("-", n=1).str[1]
                   .astype(int), strict=True))
    lab = pd.read_parquet(tmp_path / "a" / "readouts.parquet")
    lab = lab[lab["assay"] == "two_photon_spines"].assign(
        subject=lambda d: d["subject"].map(own)).set_index(key)["value"].sort_index()
    pd.testing.assert_series_equal(lab.reindex(run.index), run, check_names=False,
                                   rtol=1e-9)
