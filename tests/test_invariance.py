"""Results invariant to unrelated changes, and components added without touching a file.

- Random streams are keyed by subject, purpose, branch and assay: adding an assay (and
  with it spine branches, recordings, signalling output times) leaves another assay's
  numbers byte-identical.
- Arms run in subject chunks end to end: any chunk size gives the same numbers.
- A toy assay and a toy intervention, declared in a temporary module, run end to end
  (scenario validation, simulation, run folder) with no other file touched.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()

BASE = """
name: invariance
species: mouse
seed: 11
arms:
  - name: cort_ket
    n: 4
    protocol:
      - {at: -3d, stress: cort, duration: 3d}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: two_photon_spines, at: [-5d, 0h, 1d, 3d]}
      - {assay: western_blot, at: [1h, 24h]}
"""
EXTRA = """      - {assay: calcium_imaging, at: [2h, 4d], options: {cells: 20, minutes: 1}}
      - {assay: fixed_tissue_spines, at: [5d], options: {branches: 12}}
      - {assay: open_field, at: [-6d]}
"""


def _assay(result, name):
    r = result.readouts
    return r[r["assay"] == name].reset_index(drop=True)


@pytest.fixture(scope="module")
def base():
    return simulate(load_scenario_text(BASE), registry=REG)


def test_adding_assays_leaves_two_photon_byte_identical(base):
    """calcium_imaging (more branches, the circuit's baseline recording, later signalling
    output times), a fixed-tissue assay with 12 branches and an earlier open field do
    not move a single two-photon number or tracked spine."""
    more = simulate(load_scenario_text(BASE + EXTRA), registry=REG)
    for assay in ("two_photon_spines", "western_blot"):
        pd.testing.assert_frame_equal(_assay(base, assay), _assay(more, assay),
                                      check_exact=True)
    pd.testing.assert_frame_equal(base.tracking["cort_ket"], more.tracking["cort_ket"],
                                  check_exact=True)
    assert {"calcium_imaging", "fixed_tissue_spines", "open_field"} <= set(
        more.readouts["assay"])


SESSIONS = """
name: sessions
species: mouse
seed: 3
arms:
  - name: cort_ket
    n: 3
    protocol:
      - {{at: -10d, stress: cort, duration: 10d}}
      - {{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}
    assays:
      - {{assay: open_field, at: [{t}], options: {{bin_min: 1}}}}
      - {{assay: sucrose_preference, at: [{t}]}}
      - {{assay: western_blot, at: [{t}]}}
      - {{assay: microdialysis_da, at: [{t}]}}
      - {{assay: plasma_pk, at: [{t}]}}
"""


def test_adding_a_session_leaves_the_others_measurements_alone():
    """Each session's measurement noise (and behavioural draws) comes from a stream keyed
    by its time, not by its place among the assay's times: a session added between two
    others leaves theirs identical. (Not for the assays that read the prefrontal
    circuit: one network runs through each subject's sessions in turn, carrying its
    state, so its activity at a session depends on the sessions before it.)"""
    two = simulate(load_scenario_text(SESSIONS.format(t="1h, 24h")), registry=REG).readouts
    three = simulate(load_scenario_text(SESSIONS.format(t="1h, 6h, 24h")),
                     registry=REG).readouts
    three = three[three["time_h"] != 6.0].reset_index(drop=True)
    for assay in ("open_field", "sucrose_preference", "western_blot", "microdialysis_da",
                  "plasma_pk"):
        a = two[two["assay"] == assay].reset_index(drop=True)
        b = three[three["assay"] == assay].reset_index(drop=True)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, obj=assay)


def test_adding_an_arm_leaves_the_first_unchanged(base):
    text = BASE + """  - name: saline
    n: 3
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: two_photon_spines, at: [-8d, 0h, 1d]}
"""
    more = simulate(load_scenario_text(text), registry=REG)
    r = more.readouts
    pd.testing.assert_frame_equal(base.readouts, r[r["arm"] == "cort_ket"].reset_index(
        drop=True), check_exact=True)


CHUNKED = (BASE + """      - {assay: tail_suspension, at: [3h], options: {cells: 10}}
      - {assay: sucrose_preference, at: [2d]}
      - {assay: escape_test, at: [1d]}
""").replace("n: 4", "n: 5")


def test_chunked_equals_unchunked():
    """Subjects processed 2 at a time give exactly the readouts and kept tables of all
    5 at once (each subject's streams are keyed by its global index)."""
    sc = load_scenario_text(CHUNKED)
    whole = simulate(sc, registry=REG)
    parts = simulate(sc, registry=REG, chunk_subjects=2)
    pd.testing.assert_frame_equal(whole.readouts, parts.readouts, check_exact=True)
    pd.testing.assert_frame_equal(whole.tracking["cort_ket"], parts.tracking["cort_ket"],
                                  check_exact=True)
    a, b = whole.tst["cort_ket"], parts.tst["cort_ket"]
    pd.testing.assert_frame_equal(a["ethogram"], b["ethogram"], check_exact=True)
    for t in a["peri_dff"]:
        np.testing.assert_array_equal(a["peri_dff"][t], b["peri_dff"][t])
    assert set(whole.readouts["subject"]) == set(range(5))


def test_one_subject_chunks_equal_the_whole_arm():
    """Chunks of a single subject give the same numbers to the last bit (the sucrose
    test's mean over its times was numpy's pairwise sum, which for a one-row chunk
    differed by an ulp)."""
    sc = load_scenario_text("""
name: suc
species: mouse
seed: 11
arms:
  - name: ck
    n: 6
    protocol: [{at: -10d, stress: cort, duration: 10d},
               {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: sucrose_preference, at: [3h, 24h, 72h]}]
""")
    whole = simulate(sc, registry=REG).readouts
    ones = simulate(sc, registry=REG, chunk_subjects=1).readouts
    pd.testing.assert_frame_equal(whole, ones, check_exact=True)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk_subjects"):
        simulate(load_scenario_text(BASE), registry=REG, chunk_subjects=0)


def test_registry_is_required():
    with pytest.raises(TypeError, match="registry is required"):
        simulate(load_scenario_text(BASE), registry=None)


TOY_MODULE = '''
"""A lab's own assay and intervention, declared in one module."""
import numpy as np

from ketasim.core.assay import Assay, Readout
from ketasim.experiment.assays import register_assay
from ketasim.signaling.protocol import Control, Intervention, register_intervention


def _measure(ctx, at):
    da = ctx.trajectory("da_rel", at)
    counts = np.stack([ctx.rng(s).poisson(100.0 * da[s]) for s in range(ctx.n)])
    spines = ctx.spines.alive[:, :, :2].sum(axis=(2, 3))
    idx = [int(np.flatnonzero(np.isclose(ctx.spines.times_h, t))[0]) for t in at]
    values = np.stack([counts, spines[:, idx]], axis=2).astype(float)
    ctx.keep("toy", {"table": __import__("pandas").DataFrame({"n": [ctx.n]})})
    return ctx.rows(values, at, TOY.readout_names, TOY.units)


TOY = register_assay(Assay(
    "toy_da_counter", "counts proportional to dopamine, and the spines of two branches",
    (Readout("toy_counts", "count"), Readout("toy_spines", "count")), _measure,
    outputs=("da_rel",), options={"branches": 2, "cell": "mpfc_l5"}, positive=("branches",),
    reads=("spines",)))

register_intervention(Intervention(
    "toy_vta_silencing", "timed", "a lab's own VTA silencing",
    (Control("vta_inhibition", "intervention.vta_inhibition"),)))
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    from ketasim.experiment import assays
    from ketasim.signaling import protocol

    (tmp_path / "toy_components.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    before_a, before_i = dict(assays.ASSAYS), dict(protocol.INTERVENTIONS)
    yield importlib.import_module("toy_components")
    sys.modules.pop("toy_components", None)
    for table, before in ((assays.ASSAYS, before_a), (protocol.INTERVENTIONS, before_i)):
        # the catalogues as they were: the toy components leave no trace
        table.clear()
        table.update(before)


TOY_SCENARIO = """
name: toy
species: mouse
seed: 3
arms:
  - name: silenced
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
      - {at: -1h, intervention: toy_vta_silencing, duration: 4h}
    assays:
      - {assay: toy_da_counter, at: [0h, 1h]}
  - name: ketamine
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: toy_da_counter, at: [0h, 1h]}
compare:
  - {readout: toy_counts, at: 1h, arms: [silenced, ketamine]}
"""


def test_toy_assay_and_intervention_run_end_to_end(toy_module, tmp_path):
    from ketasim.report.run_folder import write_run
    from ketasim.scenario import scenario_json_schema

    assert "toy_da_counter" in scenario_json_schema()["$defs"]["AssaySpec"]["properties"][
        "assay"]["enum"]
    sc = load_scenario_text(TOY_SCENARIO)
    res = simulate(sc, registry=REG)
    r = res.readouts
    assert set(r["readout"]) == {"toy_counts", "toy_spines"}
    counts = r[(r["readout"] == "toy_counts") & (r["time_h"] == 1.0)].groupby("arm")["value"]
    # the silencing removes most of ketamine's dopamine rise
    assert counts.mean()["silenced"] < counts.mean()["ketamine"]
    assert (r.loc[r["readout"] == "toy_spines", "value"] > 0).all()
    out = write_run(res, tmp_path / "run", REG)
    written = pd.read_parquet(out / "readouts.parquet")
    assert set(written["assay"]) == {"toy_da_counter"}
    assert (out / "report.html").exists()


def test_unknown_intervention_is_one_clear_error():
    from ketasim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="toy_vta_silencing"):
        load_scenario_text(TOY_SCENARIO)


def test_a_spine_session_before_the_burn_in_is_one_clear_error(tmp_path):
    """Two-photon sessions before the protocol fall in the spine engine's baseline
    burn-in (10 days); one earlier than that is refused before anything runs, naming the
    assay and the time, and the CLI writes nothing."""
    from typer.testing import CliRunner

    from ketasim.cli import app
    from ketasim.signaling.protocol import ProtocolError

    # CORT at -3d: start -3d - 6 h; the burn-in lasts 10 days (burn_in_d, and the memory
    # of elimination sites, mem_horizon_d)
    ok = BASE.replace("[-5d, 0h, 1d, 3d]", "[-13d, 0h]")
    simulate(load_scenario_text(ok), registry=REG)
    bad = BASE.replace("[-5d, 0h, 1d, 3d]", "[-14d, 0h]")
    with pytest.raises(ProtocolError, match=r"arms\[0\]\.assays\[0\]\.at: got -336 h"):
        simulate(load_scenario_text(bad), registry=REG)
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "burn_in_d" in res.output
    assert not (tmp_path / "out").exists()


def test_arm_progress_reports_each_chunk():
    """``arm_progress(arm, fraction)`` after every chunk of every region: rising to 1 for
    each arm, in steps of the chunk over the arm's subjects times regions; ``progress``
    once per arm, after its chunks. The readouts do not depend on it."""
    sc = load_scenario_text("""
name: progress
species: mouse
seed: 3
arms:
  - name: saline
    n: 5
    protocol:
      - {at: 0h, drug: saline, route: ip}
    assays:
      - {assay: signaling_state, at: [1h]}
      - {assay: signaling_state, at: [1h], region: striatum}
  - name: ketamine
    n: 3
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays:
      - {assay: signaling_state, at: [1h]}
""")
    calls = []
    r = simulate(sc, registry=REG, chunk_subjects=2, progress=lambda a: calls.append(a),
                 arm_progress=lambda a, f: calls.append((a, f)))
    assert calls == [("saline", 0.2), ("saline", 0.4), ("saline", 0.5),
                     ("saline", 0.7), ("saline", 0.9), ("saline", 1.0), "saline",
                     ("ketamine", 2 / 3), ("ketamine", 1.0), "ketamine"]
    pd.testing.assert_frame_equal(r.readouts, simulate(sc, registry=REG).readouts,
                                  check_exact=True)



def _restored_at_one_day(t_start_h: float, registry) -> int:
    """Spines alive 24 h after a day of raised formation drive (2 from 0 h to 24 h,
    baseline otherwise) that regrew at remembered sites, over 60 unstressed subjects."""
    from ketasim.spines.engine import ORIGINS, SpineParams
    from ketasim.spines.simulate import DT_H, simulate_spines

    params = SpineParams.from_registry(registry)
    n_sub, n_steps = 60, round((24.0 - t_start_h) / DT_H)
    t_mid = t_start_h + (np.arange(n_steps) + 0.5) * DT_H
    form = np.where((t_mid > 0) & (t_mid < 24.0), 2.0, 1.0)
    drives = {"formation_drive": np.tile(form, (n_sub, 1)),
              "elimination_drive": np.ones((n_sub, n_steps)),
              "synaptic_protein": np.ones((n_sub, n_steps))}
    rec = simulate_spines(params, 11, "pool", n_sub, 6, drives, t_start_h, [24.0])
    restored = ORIGINS.index("restored")
    return int(((rec.origin == restored) & (rec.alive == 1)).sum())


def test_the_regrowth_pool_does_not_depend_on_when_a_run_starts():
    """The remembered elimination sites start empty and fill over the memory horizon, so
    the burn-in lasts at least that long (not just burn_in_d): with a 14-day memory and a
    10-day burn-in a run starting 6 days before the dose would regrow a third more lost
    sites after it than one starting 6 h before (unstressed subjects, whose sites come
    from ordinary turnover)."""
    reg = REG.with_settings(["spine.mpfc_l5.mem_horizon_d=14", "spine.mpfc_l5.burn_in_d=10"])
    late, early = _restored_at_one_day(-6.0, reg), _restored_at_one_day(-144.0, reg)
    assert late > 300  # enough regrowths for the comparison
    assert abs(early / late - 1.0) < 0.1
    # a memory shorter than the burn-in was already at its steady state
    short = REG.with_settings(["spine.mpfc_l5.mem_horizon_d=7"])
    assert _restored_at_one_day(-6.0, short) < 0.75 * late
