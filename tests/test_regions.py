"""Regions as parameter sets over the same engines (issue 15, F-LID-5): the registry's
``region.<region>.<name>`` entries, the scenario's per-assay ``region:``, and a run that
measures two regions of the same subjects."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from ketasim.core.assay import Assay, Readout
from ketasim.experiment.assays import ASSAYS, register_assay
from ketasim.experiment.runner import simulate
from ketasim.params import RegistryError, load_registry, parse_registry
from ketasim.params.regions import check_regions, region_overrides, region_registry
from ketasim.scenario import load_scenario_text
from ketasim.scenario.loader import ScenarioError
from ketasim.signaling import spec as sig_spec
from ketasim.validation.statistic import StatisticError, evaluate

BASE = (resources.files("ketasim.params") / "parameters.yaml").read_text()
# a striatal value of the PKA gain of Drd1 signalling, for these tests only
OVERRIDE = ("\n- {name: region.striatum.sig.pka_gain, value: 1.5, unit: '1', "
            "range: [0.0, 10.0], source: 'assumed: test', description: 'test'}\n")


def registry_with(extra: str = OVERRIDE):
    return parse_registry(BASE + extra)


def test_the_default_region_is_the_registry_itself():
    reg = load_registry()
    assert region_registry(reg, "mpfc") is reg
    check_regions(reg)


def test_an_override_changes_one_value_and_keeps_the_rest():
    reg = registry_with()
    st = region_registry(reg, "striatum")
    assert st.value("sig.pka_gain") == 1.5
    assert reg.value("sig.pka_gain") != 1.5
    over = region_overrides(reg, "striatum")
    assert over["sig.pka_gain"] == 1.5
    assert all(st[p.name] == p for p in reg if p.name not in over)
    assert all(st.value(n) == v for n, v in over.items())


@pytest.mark.parametrize("entry,message", [
    ("region.striatum.sig.nothing_here, value: 1.0, unit: '1', range: [0, 2]",
     "not a registry parameter"),
    ("region.striatum.pk.mouse.ketamine.cl, value: 1.0, unit: L/h/kg, range: [0, 20]",
     "shared by every region"),
    ("region.striatum.sig.pka_gain, value: 1.0, unit: h, range: [0, 20]",
     "unit 'h' differs"),
    ("region.striatum.sig.pka_gain, value: 1.0, unit: '1', range: [0, 20], bsv_cv: 0.2",
     "no between-subject variability"),
    ("region.cerebellum.sig.pka_gain, value: 1.0, unit: '1', range: [0, 20]",
     "with a region from striatum"),
])
def test_a_bad_override_is_one_clear_error_naming_it(entry, message):
    reg = registry_with(f"\n- {{name: {entry}, source: 'assumed: test', "
                        "description: 'test'}\n")
    with pytest.raises(RegistryError, match=message) as e:
        check_regions(reg)
    assert "region." in str(e.value)


@pytest.fixture
def two_region_assay():
    """A test assay that reads PKA in either region."""
    sig = ASSAYS["signaling_state"]
    a = Assay("test_pka", "PKA activity, either region", (Readout("pka_test", "x baseline"),),
              lambda ctx, at: ctx.rows(ctx.trajectory("pka_rel", at)[:, :, None], at,
                                       ["pka_test"], ["x baseline"]),
              outputs=("pka_rel",), regions=("mpfc", "striatum"))
    assert "pka_rel" in sig_spec.OUTPUT_NAMES and "striatum" in sig.regions
    register_assay(a)
    yield a
    del ASSAYS["test_pka"]


SCENARIO = """\
name: regions
species: mouse
seed: 3
arms:
  - name: ketamine
    n: 4
    protocol: [{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}]
    assays:
{assays}
"""


def run(assays: str, registry):
    sc = load_scenario_text(SCENARIO.format(assays=assays))
    return simulate(sc, registry=registry).readouts


def test_a_subject_carries_both_regions(two_region_assay):
    """The same subjects, measured in both regions: the mPFC values are those of a run
    without the striatal assay, the striatal ones follow the striatal parameter set,
    the PK is the same, and the readouts name their region."""
    reg = registry_with()
    both = run("      - {assay: test_pka, at: [30min, 1h]}\n"
               "      - {assay: test_pka, at: [30min, 1h], region: striatum}\n"
               "      - {assay: plasma_pk, at: [30min]}", reg)
    alone = run("      - {assay: test_pka, at: [30min, 1h]}\n"
                "      - {assay: plasma_pk, at: [30min]}", reg)
    assert "region" in both.columns and "region" not in alone.columns
    m = both[(both["readout"] == "pka_test") & (both["region"] == "mpfc")]
    a = alone[alone["readout"] == "pka_test"]
    np.testing.assert_array_equal(m["value"].to_numpy(), a["value"].to_numpy())
    s = both[(both["readout"] == "pka_test") & (both["region"] == "striatum")]
    assert len(s) == len(m) and not np.allclose(s["value"].to_numpy(), m["value"].to_numpy())
    pk_both = both[both["assay"] == "plasma_pk"]["value"].to_numpy()
    pk_alone = alone[alone["assay"] == "plasma_pk"]["value"].to_numpy()
    np.testing.assert_array_equal(pk_both, pk_alone)
    # without a lesion the striatal parameters that differ (lesion reach, dyskinesia
    # priming) are inert but for the smaller dopamine rise (region.striatum.sig.da_gain):
    # with the mPFC's rise, PKA after ketamine is the same in both regions; with the
    # striatum's own, lower there
    base = load_registry()
    for rise, equal in ((base.value("sig.da_gain"), True),
                        (base.value("region.striatum.sig.da_gain"), False)):
        same = run("      - {assay: test_pka, at: [1h]}\n"
                   "      - {assay: test_pka, at: [1h], region: striatum}",
                   base.with_values({"region.striatum.sig.da_gain": rise}))
        v = same[same["readout"] == "pka_test"].pivot(index="subject", columns="region",
                                                       values="value")
        if equal:
            np.testing.assert_allclose(v["mpfc"], v["striatum"], rtol=1e-12)
        else:
            assert (v["striatum"] < v["mpfc"]).all()


def test_statistics_name_the_region_where_several_measure_a_readout(two_region_assay):
    r = run("      - {assay: test_pka, at: [1h]}\n"
            "      - {assay: test_pka, at: [1h], region: striatum}", registry_with())
    with pytest.raises(StatisticError, match="measured in regions"):
        evaluate("mean('ketamine', 'pka_test', '1h')", r)
    st = evaluate("mean('ketamine', 'striatum:pka_test', '1h')", r)
    mp = evaluate("mean('ketamine', 'mpfc:pka_test', '1h')", r)
    assert st == pytest.approx(r[(r["region"] == "striatum")]["value"].mean())
    assert mp != st


def test_summary_keeps_the_regions_apart(two_region_assay):
    from ketasim.analysis.stats import summarize

    r = run("      - {assay: test_pka, at: [1h]}\n"
            "      - {assay: test_pka, at: [1h], region: striatum}", registry_with())
    s = summarize(r)
    assert list(s.columns[:4]) == ["arm", "assay", "region", "readout"]
    assert sorted(s["region"]) == ["mpfc", "striatum"]
    assert (s["n"] == 4).all()


def test_an_assay_outside_its_regions_is_refused_naming_the_field():
    with pytest.raises(ScenarioError, match=r"assays\[0\]\.region: got 'striatum'; "
                                            r"expected a region that madrs measures"):
        load_scenario_text(SCENARIO.format(
            assays="      - {assay: madrs, at: [1h], region: striatum}"))
    with pytest.raises(ScenarioError, match=r"assays\[0\]\.region"):
        load_scenario_text(SCENARIO.format(
            assays="      - {assay: western_blot, at: [1h], region: cerebellum}"))


def test_assays_declare_known_regions():
    with pytest.raises(ValueError, match="regions"):
        replace(ASSAYS["western_blot"], regions=("hippocampus",))
    assert all(set(a.regions) <= {"mpfc", "striatum"} for a in ASSAYS.values())


def test_a_built_in_assay_draws_its_own_noise_in_each_region():
    """western_blot in mPFC and striatum of the same intact mice: the same cascade (the
    striatal parameters that differ are inert without a lesion) but independent
    measurement noise, so the regions' blots are not copies of each other."""
    r = run("      - {assay: western_blot, at: [1h]}\n"
            "      - {assay: western_blot, at: [1h], region: striatum}", load_registry())
    v = r[r["readout"] == "pmtor_rel"].pivot(index="subject", columns="region",
                                             values="value")
    assert not np.allclose(v["mpfc"], v["striatum"])
    mp = run("      - {assay: western_blot, at: [1h]}", load_registry())
    np.testing.assert_array_equal(mp[mp["readout"] == "pmtor_rel"]["value"].to_numpy(),
                                  v["mpfc"].to_numpy())


def test_report_figure_gives_each_region_its_panels(tmp_path, monkeypatch):
    import pandas as pd

    from ketasim.analysis.stats import summarize
    from ketasim.report.figures import _regional, assay_figure

    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    r = run("      - {assay: western_blot, at: [1h]}\n"
            "      - {assay: western_blot, at: [1h], region: striatum}", load_registry())
    labels = set(_regional(r))
    assert "pmtor_rel" in labels and "pmtor_rel (striatum)" in labels
    png = assay_figure(r, summarize(r), "western_blot", tmp_path / "wb.png")
    assert png.exists() and png.stat().st_size > 1000
    assert isinstance(r, pd.DataFrame)


def test_every_spine_cell_belongs_to_exactly_one_region():
    """REGION_CELLS (which cells a region's spine assays may image) is kept beside the
    registry's spine.<cell>.* sets: a cell added to the registry without a region, or
    listed in two, fails here."""
    from ketasim.core.regions import KNOWN_REGIONS, REGION_CELLS
    from ketasim.params import load_registry
    from ketasim.spines.engine import spine_cells

    assert set(REGION_CELLS) == set(KNOWN_REGIONS)
    listed = [c for cells in REGION_CELLS.values() for c in cells]
    assert sorted(listed) == sorted(spine_cells(load_registry()))
