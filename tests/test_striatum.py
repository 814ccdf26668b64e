"""The striatal branch (issue 15): 6-OHDA lesion, L-DOPA, D1 supersensitivity, priming
of dyskinesia, AIMs and the cylinder test, on the same engines as mPFC."""

from __future__ import annotations

import numpy as np
import pytest

from ketasim.behavior.striatal import AIMS_MAX, aims_drive, contralateral_use
from ketasim.core.assay import AssayOptionError
from ketasim.experiment import runner
from ketasim.experiment.cohort import sample_cohort
from ketasim.params import load_registry
from ketasim.params.regions import region_registry
from ketasim.scenario import load_scenario_text
from ketasim.signaling.protocol import compile_arm
from ketasim.signaling.simulate import simulate_signaling

REG = load_registry()
LESION = "{at: -21d, intervention: lesion_6ohda_mfb}"
SHAM = "{at: -21d, drug: saline, route: sc}"


def _doses(days) -> str:
    return "".join(f", {{at: {d}d, drug: ldopa, dose: 6 mg/kg, route: sc}}" for d in days)


def course(first: str, doses, times, outputs, region="striatum", n=1):
    sc = load_scenario_text(f"name: t\nspecies: rat\nseed: 1\narms:\n  - name: a\n    n: {n}\n"
                            f"    protocol: [{first}{_doses(doses)}]\n")
    reg = region_registry(REG, region)
    c = sample_cohort(reg, "rat", "a", n, 1, variability=False)
    sim = simulate_signaling(c, compile_arm(sc.arms[0], "rat", c, reg), np.asarray(times),
                             outputs)
    return {o: sim.output(o)[0] for o in outputs}


def test_the_lesion_removes_striatal_terminals_within_days_and_spares_mpfc():
    t = np.array([-21, -20, -18, -14, -1]) * 24.0
    st = course(LESION, [], t, ["da_terminals", "da_rel", "d1_sensitivity"])
    assert st["da_terminals"][0] == 1.0
    assert st["da_terminals"][2] < 0.2  # > 80% lost by day 3 (stepping deficit, Chang 1999)
    assert st["da_terminals"][-1] == pytest.approx(1 - REG.value("lesion.mfb_6ohda_extent"),
                                                   abs=1e-3)
    # compensation holds tonic dopamine above the terminals left; D1 supersensitivity
    assert st["da_rel"][-1] > 5 * st["da_terminals"][-1]
    assert st["d1_sensitivity"][-1] > 1.5
    mp = course(LESION, [], t, ["da_terminals", "da_rel", "d1_sensitivity"], region="mpfc")
    np.testing.assert_allclose(mp["da_terminals"], 1.0)
    np.testing.assert_allclose(mp["da_rel"], 1.0, atol=1e-9)
    np.testing.assert_allclose(mp["d1_sensitivity"], 1.0, atol=1e-9)


PARTIAL = "{at: -21d, intervention: lesion_6ohda_intrastriatal}"


def test_no_lesion_raises_the_drug_free_d1_signal_above_an_intact_striatum():
    """D1 supersensitivity starts where the remaining terminals no longer hold tonic
    dopamine (sig.d1_supersensitivity_onset): a compensated partial lesion leaves D1
    sensitivity at 1, a complete one raises it to about 2.2 while its D1 signal (tonic
    dopamine x sensitivity) stays below an intact striatum's, and without a drug neither
    drives PKA or the potentiation of existing synapses (before 2026-12-07 a partial
    lesion gave a D1 signal of 1.11x and a potentiation of 0.46 with no drug at all)."""
    t = np.array([-1, 0, 10, 20]) * 24.0
    outs = ["d1_sensitivity", "d1_drive", "pka_rel", "synaptic_potentiation", "da_rel"]
    part = course(PARTIAL, [], t, outs)
    full = course(LESION, [], t, outs)
    assert part["da_rel"][-1] > REG.value("sig.d1_supersensitivity_onset")
    np.testing.assert_allclose(part["d1_sensitivity"], 1.0, atol=1e-9)
    assert full["d1_sensitivity"][-1] == pytest.approx(2.2, abs=0.05)
    for st in (part, full):
        assert np.all(st["d1_drive"] < 1.0)
        assert np.all(st["pka_rel"] <= 1.0 + 1e-9)
        np.testing.assert_allclose(st["synaptic_potentiation"], 0.0, atol=1e-9)
    # the largest drug-free D1 signal over every level of tonic dopamine below the onset
    x = np.linspace(0.0, 1.0, 1001)
    sens = 1.0 + REG.value("sig.d1_supersensitivity_gain") * np.clip(
        REG.value("sig.d1_supersensitivity_onset") - x, 0.0, None)
    assert (x * sens)[x < 1.0].max() < 1.0


def test_ldopa_swings_dopamine_in_a_denervated_striatum_and_primes_dyskinesia():
    t = np.array([-1 * 24.0, 1.5, 20 * 24 + 1.5])
    les = course(LESION, range(21), t, ["da_rel", "pka_rel", "lid_priming", "d1_drive"])
    sham = course(SHAM, range(21), t, ["da_rel", "pka_rel", "lid_priming", "d1_drive"])
    rise_les = les["da_rel"][1] / les["da_rel"][0]
    rise_sham = sham["da_rel"][1] / sham["da_rel"][0]
    assert rise_les > 4 * rise_sham  # buffering lost with the terminals
    assert les["d1_drive"][1] > REG.value("behavior.aims.d1_threshold") > sham["d1_drive"][1]
    assert sham["lid_priming"][-1] == 0.0
    assert 0.5 < les["lid_priming"][-1] < 1.0
    # no priming without L-DOPA: the lesion alone does not prime
    alone = course(LESION, [], t, ["lid_priming"])
    assert alone["lid_priming"][-1] == 0.0


def test_priming_needs_the_pka_drive():
    """Removing PKA from D1 neurons (PKI-alpha) removes the priming of dyskinesia."""
    t = np.array([20 * 24 + 1.5])
    pki = course(LESION + ", {at: -22d, intervention: pki_alpha}", range(21), t,
                 ["lid_priming"])
    full = course(LESION, range(21), t, ["lid_priming"])
    assert pki["lid_priming"][0] < 0.2 * full["lid_priming"][0]


def test_the_same_kernels_serve_both_regions(monkeypatch):
    """One engine, two parameter sets (F-LID-5): a run measuring both regions calls the
    one signalling simulator twice, with the mPFC registry and the striatal one."""
    calls = []
    real = runner.simulate_signaling

    def spy(cohort, events, grid, names, **kw):
        calls.append(cohort.get("sig.lesion_reach")[0])
        return real(cohort, events, grid, names, **kw)

    monkeypatch.setattr(runner, "simulate_signaling", spy)
    sc = load_scenario_text("""\
name: two
species: rat
seed: 2
arms:
  - name: a
    n: 2
    protocol: [{at: -21d, intervention: lesion_6ohda_mfb}, {at: 0h, drug: ldopa, dose: 6 mg/kg, route: sc}]
    assays:
      - {assay: signaling_state, at: [1h]}
      - {assay: signaling_state, at: [1h], region: striatum}
      - {assay: aims, at: [0h]}
""")
    res = runner.simulate(sc, registry=REG)
    assert calls == [0.0, 1.0]  # mPFC, then the striatum, through the same function
    r = res.readouts
    assert set(r["region"]) == {"mpfc", "striatum"}
    assert set(r.loc[r["assay"] == "aims", "region"]) == {"striatum"}
    # L-DOPA's D1 -> PKA drive shows in the lesioned striatum, not in mPFC
    pka = r[r["readout"] == "pka_rel"].groupby("region")["value"].mean()
    assert pka["striatum"] > 2.0 * pka["mpfc"]


def test_aims_scores_are_on_the_scale():
    sc = load_scenario_text(f"""\
name: aims
species: rat
seed: 4
arms:
  - name: a
    n: 6
    protocol: [{LESION}{_doses(range(8))}]
    assays:
      - {{assay: aims, at: [0d, 7d], options: {{periods_min: [20, 60, 100]}}}}
      - {{assay: cylinder_test, at: [-1d], options: {{contacts: 25}}}}
""")
    r = runner.simulate(sc, registry=REG).readouts
    alo = r[r["readout"] == "aims_alo"]
    assert (alo["value"] == np.rint(alo["value"])).all()
    assert alo["value"].between(0, 3 * 3 * AIMS_MAX).all()
    day7 = alo[alo["time_h"] == 168.0]["value"]
    day0 = alo[alo["time_h"] == 0.0]["value"]
    assert day7.mean() > day0.mean()
    sub = r[r["readout"].isin(["aims_axial", "aims_limb", "aims_orolingual"])]
    total = sub.groupby(["subject", "time_h"])["value"].sum()
    np.testing.assert_array_equal(total.to_numpy(), alo.set_index(["subject", "time_h"])
                                  .loc[total.index, "value"].to_numpy())
    cyl = r[r["readout"] == "contralateral_use_pct"]["value"]
    np.testing.assert_allclose((cyl * 25 / 100) % 1, 0.0, atol=1e-9)  # whole contacts


@pytest.mark.parametrize("options,fragment", [
    ("{periods_min: []}", "periods_min"),
    ("{periods_min: [60, 20]}", "increasing"),
    ("{periods_min: [-20]}", "numbers > 0"),
    ("{periods_min: 20}", "a list"),
])
def test_bad_aims_options_are_one_clear_error(options, fragment):
    sc = load_scenario_text(f"""\
name: aims
species: rat
seed: 4
arms:
  - name: a
    n: 1
    protocol: [{LESION}]
    assays: [{{assay: aims, at: [0d], options: {options}}}]
""")
    with pytest.raises(AssayOptionError, match=r"arms\[0\]\.assays\[0\]\.options\.periods_min") \
            as e:
        runner.simulate(sc, registry=REG)
    assert fragment in str(e.value)


def test_behaviour_functions():
    assert aims_drive(np.array([0.0, 1.0]), np.array([10.0, 1.0]), 2.5).tolist() == [0.0, 0.0]
    assert aims_drive(1.0, 5.0, 2.5) == pytest.approx(1.0)
    p = {"da_50": REG.value("behavior.cylinder.da_50"), "hill": REG.value("behavior.cylinder.hill")}
    assert contralateral_use(1.0, p) == pytest.approx(0.5)
    assert contralateral_use(5.0, p) == 0.5  # never more than equal use
    assert contralateral_use(0.39, p) < 0.15


KETAMINE = "".join(f", {{at: {h}h, drug: ketamine, dose: 20 mg/kg, route: ip}}"
                   for h in (0, 2, 4, 6, 8))


def test_ketamine_during_priming_leaves_lasting_resistance_through_trkb_and_mtor():
    """One 10-h ketamine exposure on the first day of L-DOPA (F-LID-1) lowers dyskinesia
    priming for weeks; blocking mTORC1 (rapamycin) or TrkB (ANA-12) removes it (F-LID-3);
    L-DOPA alone leaves no resistance, ketamine alone primes no dyskinesia."""
    t = np.array([13 * 24 + 1.5, 20 * 24 + 1.5])
    out = ["lid_priming", "lid_resistance"]
    base = course(LESION, range(21), t, out)
    ket = course(LESION + KETAMINE, range(21), t, out)
    rapa = course(LESION + ", {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}" + KETAMINE,
                  range(21), t, out)
    ana = course(LESION + ", {at: -30min, drug: ana12, dose: 0.5 mg/kg, route: ip}, "
                 "{at: 270min, drug: ana12, dose: 0.5 mg/kg, route: ip}" + KETAMINE,
                 range(21), t, out)
    assert base["lid_resistance"].max() == 0.0
    assert ket["lid_resistance"][0] > 0.3
    assert ket["lid_priming"][1] < 0.75 * base["lid_priming"][1]  # still lower at day 21
    assert rapa["lid_priming"][0] > 0.9 * base["lid_priming"][0]
    # ANA-12 (two doses, to about 9 h) removes most of ketamine's effect on priming
    # (T-LID-08 asks the AIMs under ANA-12 to stay >= 0.85 of vehicle's; 1.19 at the
    # replica's seed). Not all of it: ketamine's own (2R,6R)-HNK outlasts the antagonist
    # and, with its AMPA potency fitted to T-CMP-23, still drives some BDNF release
    # afterwards: about 18% of the effect was left, about 25% since AMPA modulators scale
    # the glutamate drive (2026-12-07; priming under ANA-12 0.83 of L-DOPA's alone, 0.87
    # before), so these bounds went from 0.8 and 0.85 to 0.7 and 0.8 with that change
    removed = ((ana["lid_priming"][0] - ket["lid_priming"][0])
               / (base["lid_priming"][0] - ket["lid_priming"][0]))
    assert removed > 0.7
    assert ana["lid_priming"][0] > 0.8 * base["lid_priming"][0]
    alone = course(LESION + KETAMINE, [], t, out)
    # ketamine alone: no priming to speak of (below 2% of L-DOPA's; since ketamine's HNK
    # has its fitted AMPA potency, T-CMP-23, its dopamine lifts PKA a hair past the
    # priming threshold for an hour or so: about 3e-4 of L-DOPA's, 1.2% since AMPA
    # modulators scale the glutamate drive, 2026-12-07, when this bound went from 1%)
    assert alone["lid_priming"].max() < 0.02 * base["lid_priming"][0]
    assert alone["lid_resistance"][0] > 0.3


def test_without_the_trkb_link_the_long_term_effect_goes():
    """The broken link (F-LID-3 done-when): with no resistance from coincident TrkB and
    synthesis in the striatum, ketamine leaves priming as it was."""
    reg = REG.with_values({"region.striatum.sig.k_lid_resistance_on": 0.0})
    sc = load_scenario_text(f"name: t\nspecies: rat\nseed: 1\narms:\n  - name: a\n    n: 1\n"
                            f"    protocol: [{LESION}{KETAMINE}{_doses(range(14))}]\n")
    st = region_registry(reg, "striatum")
    c = sample_cohort(st, "rat", "a", 1, 1, variability=False)
    sim = simulate_signaling(c, compile_arm(sc.arms[0], "rat", c, st),
                             np.array([13 * 24 + 1.5]), ["lid_priming"])
    base = course(LESION, range(14), np.array([13 * 24 + 1.5]), ["lid_priming"])
    assert sim.output("lid_priming")[0, 0] == pytest.approx(base["lid_priming"][0], rel=0.02)


def test_priming_enlarges_d1_neuron_spines_and_ketamine_keeps_them_smaller():
    """Dyskinesia priming shifts the mature spines' size (more mushroom spines, F-LID-4);
    the size drive is exactly 1 without priming, so mPFC spines are untouched."""
    t = np.array([-1 * 24.0, 20 * 24 + 1.5])
    sham = course(SHAM, range(21), t, ["spine_size_drive"])
    les = course(LESION, range(21), t, ["spine_size_drive", "lid_priming"])
    ket = course(LESION + KETAMINE, range(21), t, ["spine_size_drive"])
    assert np.all(sham["spine_size_drive"] == 1.0)
    assert les["spine_size_drive"][1] == pytest.approx(
        np.exp(REG.value("sig.lid_spine_size_gain") * les["lid_priming"][1]))
    assert 1.0 < ket["spine_size_drive"][1] < les["spine_size_drive"][1]
    sc = load_scenario_text(f"""\
name: spines
species: rat
seed: 6
arms:
  - name: sham
    n: 4
    protocol: [{SHAM}{_doses(range(14))}]
    assays: &a [{{assay: fixed_tissue_spines, at: [14d], region: striatum, options: {{cell: msn_d1}}}}]
  - name: lesion
    n: 4
    protocol: [{LESION}{_doses(range(14))}]
    assays: *a
""")
    r = runner.simulate(sc, registry=REG).readouts
    m = r[r["readout"] == "mushroom_fraction"].groupby("arm")["value"].mean()
    d = r[r["readout"] == "spine_density_per_10um"].groupby("arm")["value"].mean()
    assert m["lesion"] > m["sham"] + 0.1
    assert abs(d["lesion"] - d["sham"]) < 0.15 * d["sham"]  # no new spines on D1 neurons


def test_pearson_statistic_pools_the_named_arms():
    import pandas as pd
    from scipy import stats

    from ketasim.validation.statistic import evaluate

    rng = np.random.default_rng(0)
    rows = []
    for arm in ("a", "b"):
        x = rng.normal(size=8)
        for s in range(8):
            rows += [{"arm": arm, "subject": s, "assay": "x", "readout": "u", "time_h": 1.0,
                      "value": x[s], "unit": "1"},
                     {"arm": arm, "subject": s, "assay": "x", "readout": "v", "time_h": 2.0,
                      "value": 2 * x[s] + rng.normal(), "unit": "1"}]
    r = pd.DataFrame(rows)
    want = stats.pearsonr(r[r.readout == "u"]["value"], r[r.readout == "v"]["value"])
    assert evaluate("pearson_r('a,b', 'u', '1h', 'v', '2h')", r) == pytest.approx(
        want.statistic)
    assert evaluate("pearson_p('a, b', 'u', '1h', 'v', '2h')", r) == pytest.approx(want.pvalue)


def test_mushroom_vs_aims_figure(tmp_path, monkeypatch):
    """The report's scatter pairs each animal's last AIMs session with its last mushroom
    density and prints Pearson's r; nothing without both readouts."""
    import pandas as pd
    from scipy import stats

    from ketasim.report.striatal_figures import mushroom_vs_aims

    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    rng = np.random.default_rng(1)
    rows = []
    for arm in ("vehicle", "ketamine"):
        for s in range(6):
            a = rng.uniform(10, 80)
            rows += [{"arm": arm, "subject": s, "readout": "aims_alo", "time_h": 0.0,
                      "value": 0.0},
                     {"arm": arm, "subject": s, "readout": "aims_alo", "time_h": 480.0,
                      "value": a},
                     {"arm": arm, "subject": s, "readout": "mushroom_density_per_10um",
                      "time_h": 504.0, "value": 4 + a / 20 + rng.normal(0, 0.3)}]
    r = pd.DataFrame(rows)
    png, caption = mushroom_vs_aims(r, tmp_path / "m.png")
    assert png.exists() and png.stat().st_size > 1000
    last = r[r["time_h"] > 0]
    want = stats.pearsonr(last[last.readout == "aims_alo"]["value"],
                          last[last.readout == "mushroom_density_per_10um"]["value"])
    assert f"r = {want.statistic:.2f}" in caption and "n = 12" in caption
    assert mushroom_vs_aims(r[r["readout"] == "aims_alo"], tmp_path / "x.png") is None


def test_denervation_spine_loss_signals_d2_fast_d1_late_and_not_in_mpfc():
    """D2 neurons' spine-loss signal follows the dopamine deficit within days; D1
    neurons' stays 0 for a month and rises by two; mPFC (no lesion reach) has neither;
    daily L-DOPA relieves part of the D2 signal (its dopamine pulses)."""
    t = np.array([-21, -14, 7, 14, 35]) * 24.0  # days after the lesion: 0, 7, 28, 35, 56
    out = ["spine_loss_d1", "spine_loss_d2"]
    st = course(LESION, [], t, out)
    assert st["spine_loss_d2"][0] == 0.0 and st["spine_loss_d2"][1] > 0.2
    np.testing.assert_allclose(st["spine_loss_d1"][:3], 0.0, atol=1e-9)
    assert st["spine_loss_d1"][-1] > 0.1
    mp = course(LESION, [], t, out, region="mpfc")
    np.testing.assert_allclose(mp["spine_loss_d1"], 0.0, atol=1e-9)
    np.testing.assert_allclose(mp["spine_loss_d2"], 0.0, atol=1e-6)
    dosed = course(LESION, range(14), t[:4], out)
    assert dosed["spine_loss_d2"][3] < 0.9 * st["spine_loss_d2"][3]


def test_cell_drives_read_their_own_loss_signal():
    from ketasim.spines.engine import SpineParams
    from ketasim.spines.simulate import cell_drives

    ones = np.ones((2, 3))
    drives = {"elimination_drive": ones, "spine_size_drive": 2.0 * ones,
              "spine_loss_d1": 0.2 * ones, "spine_loss_d2": 0.5 * ones}
    d1 = SpineParams.from_registry(REG, "msn_d1")
    d2 = SpineParams.from_registry(REG, "msn_d2")
    l5 = SpineParams.from_registry(REG, "mpfc_l5")
    e1, s1 = cell_drives(d1, drives)
    e2, s2 = cell_drives(d2, drives)
    e5, s5 = cell_drives(l5, drives)
    np.testing.assert_allclose(e1, 1.0 + 0.2 * d1.values["d1_loss_gain"])
    np.testing.assert_allclose(e2, 1.0 + 0.5 * d2.values["d2_loss_gain"])
    np.testing.assert_allclose(e5, 1.0)
    np.testing.assert_allclose(s1, 2.0)  # D1 neurons carry the priming size drive
    np.testing.assert_allclose(s2, 1.0)  # D2 neurons do not
    np.testing.assert_allclose(s5, 2.0)


def test_a_lesion_thins_d2_neurons_first():
    """Fixed-tissue spines 4 weeks after 6-OHDA: D2 neurons have lost spines, D1
    neurons not yet (the run, not the latent drives)."""
    from ketasim.experiment.runner import simulate

    arms = "".join(
        f"  - name: {name}\n    n: 12\n    protocol: [{{at: 0d, {ev}}}]\n"
        f"    assays: [{{assay: fixed_tissue_spines, at: [28d], region: striatum, "
        f"options: {{cell: {cell}}}}}]\n"
        for name, ev, cell in (("sham_d2", "drug: saline, route: ip", "msn_d2"),
                               ("les_d2", "intervention: lesion_6ohda_mfb", "msn_d2"),
                               ("sham_d1", "drug: saline, route: ip", "msn_d1"),
                               ("les_d1", "intervention: lesion_6ohda_mfb", "msn_d1")))
    sc = load_scenario_text(f"name: t\nspecies: mouse\nseed: 3\narms:\n{arms}")
    r = simulate(sc, registry=REG).readouts
    d = r[r.readout == "spine_density_per_10um"].groupby("arm")["value"].mean()
    assert d["les_d2"] / d["sham_d2"] < 0.88
    assert d["les_d1"] / d["sham_d1"] > 0.93


def test_rotation_follows_the_d1_asymmetry_between_sides():
    """Apomorphine turns a lesioned rat contralaterally (supersensitive D1 receptors on
    the lesioned side); an intact rat has no asymmetry and does not turn."""
    from ketasim.behavior.striatal import turning_rates

    t = np.array([-7 * 24.0, -7 * 24.0 + 0.5])
    apo = ", {at: -7d, drug: apomorphine, dose: 0.5 mg/kg, route: sc}"
    les = course(LESION + apo, [], t, ["d1_asymmetry", "da_intact", "da_rel"])
    sham = course(SHAM + apo, [], t, ["d1_asymmetry", "da_intact", "da_rel"])
    assert les["d1_asymmetry"][1] > 0.5
    np.testing.assert_allclose(sham["d1_asymmetry"], 0.0, atol=1e-9)
    np.testing.assert_allclose(sham["da_intact"], sham["da_rel"], rtol=1e-9)
    np.testing.assert_allclose(les["da_intact"], 1.0, atol=1e-6)  # the other side
    p = {"max_rate": 10.0, "asym_50": 1.0, "hill": 2.0}
    c, i = turning_rates(np.array([-1.0, 0.0, 1.0, 100.0]), p)
    np.testing.assert_allclose(c, [0.0, 0.0, 5.0, 10.0 * 1e4 / (1e4 + 1)])
    np.testing.assert_allclose(i, [5.0, 0.0, 0.0, 0.0])


def test_stepping_and_rotation_assays_measure_the_lesion():
    from ketasim.experiment.runner import simulate

    arms = "".join(
        f"  - name: {name}\n    n: 8\n    protocol: [{first}, "
        "{at: -7d, drug: apomorphine, dose: 0.5 mg/kg, route: sc}]\n"
        "    assays: [{assay: rotation, at: [-7d], options: {duration_min: 30}}, "
        "{assay: stepping_test, at: [-1d], options: {trials: 2}}]\n"
        for name, first in (("les", LESION), ("sham", SHAM)))
    sc = load_scenario_text(f"name: t\nspecies: rat\nseed: 4\narms:\n{arms}")
    r = simulate(sc, registry=REG).readouts
    m = r.groupby(["arm", "readout"])["value"].mean()
    assert m["les", "net_contralateral_turns_per_min"] > 1.0
    assert m["sham", "net_contralateral_turns_per_min"] == 0.0
    assert m["les", "stepping_contralateral_steps"] < 0.4 * m["les", "stepping_ipsilateral_steps"]
    assert m["sham", "stepping_contralateral_steps"] > 0.7 * m["sham", "stepping_ipsilateral_steps"]
    # turns are whole counts over the window
    turns = r[(r.readout == "contralateral_turns")]["value"]
    np.testing.assert_allclose(turns, np.round(turns))


@pytest.mark.parametrize("options, fragment", [
    ("{duration_min: 0}", "duration_min"), ("{trials: 0}", "trials")])
def test_bad_rotation_and_stepping_options(options, fragment):
    assay = "rotation" if "duration" in options else "stepping_test"
    sc = load_scenario_text(
        "name: t\nspecies: rat\nseed: 1\narms:\n  - name: a\n    n: 2\n"
        f"    protocol: [{LESION}]\n"
        f"    assays: [{{assay: {assay}, at: [0h], options: {options}}}]\n")
    with pytest.raises(AssayOptionError, match=fragment):
        runner.check_supported(sc, REG)


def test_lesion_and_spine_class_figures_in_the_run_report(tmp_path, monkeypatch):
    """A run that measures the striatal terminals over time and fixed-tissue spines of
    both projection-neuron types writes the lesion time course and the spine-class
    figure; the kept class table carries each arm's cell type and adds up."""
    from ketasim.experiment.runner import simulate
    from ketasim.report.run_folder import write_run

    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    arms = "".join(
        f"  - name: {name}\n    n: 4\n    protocol: [{{at: 0d, {ev}}}]\n"
        "    assays: [{assay: signaling_state, at: [0d, 2d, 7d], region: striatum}, "
        "{assay: cylinder_test, at: [0d, 7d]}, "
        f"{{assay: fixed_tissue_spines, at: [7d], region: striatum, options: {{cell: {cell}}}}}]\n"
        for name, ev, cell in (("les", "intervention: lesion_6ohda_mfb", "msn_d2"),
                               ("sham", "drug: saline, route: ip", "msn_d1")))
    sc = load_scenario_text(f"name: t\nspecies: rat\nseed: 2\narms:\n{arms}")
    res = simulate(sc, registry=REG)
    classes = res.kept["fixed_tissue_spines@striatum"]
    les = classes["les"]["spine_classes"]
    assert set(les["cell"]) == {"msn_d2"} and set(classes["sham"]["spine_classes"]["cell"]) == {
        "msn_d1"}
    per = les.groupby("subject")["fraction"].sum()
    np.testing.assert_allclose(per, 1.0, atol=1e-9)
    dens = les.groupby("subject")["density_per_10um"].sum().to_numpy()
    r = res.readouts
    want = r[(r.arm == "les") & (r.readout == "spine_density_per_10um")]["value"].to_numpy()
    np.testing.assert_allclose(np.sort(dens), np.sort(want), rtol=1e-9)
    write_run(res, tmp_path / "run", REG)
    assert (tmp_path / "run" / "fig_lesion_time_course.png").stat().st_size > 1000
    assert (tmp_path / "run" / "fig_fixed_tissue_spines_striatum_classes.png").exists()
    assert "Lesion time course" in (tmp_path / "run" / "report.html").read_text()


def test_ldopa_erk_activation_grows_over_the_course_in_the_striatum_only():
    t = np.array([1.0, 20 * 24 + 1.0])
    st = course(LESION, range(21), t, ["perk_rel", "pmtor_rel", "pka_rel"])
    assert st["perk_rel"][1] - 1 > 1.4 * (st["perk_rel"][0] - 1)
    assert st["pmtor_rel"][1] > st["pmtor_rel"][0]
    assert st["pka_rel"][1] == pytest.approx(st["pka_rel"][0], rel=0.02)  # PKA does not grow
    mp = course(LESION, range(21), t, ["perk_rel"], region="mpfc")
    assert mp["perk_rel"][1] == pytest.approx(mp["perk_rel"][0], rel=1e-3)


def test_ldopa_reverses_the_stepping_deficit_in_part_through_the_indirect_pathway():
    """Three weeks after a lesion, L-DOPA lifts the lesioned side's dopamine past the
    intact level, yet the contralateral paw keeps 1 - w x (D2 spine-loss drive) of the
    intact count (F-LID-2, T-LID-24); with w = 0 the reversal is full."""
    from ketasim.experiment.runner import simulate

    def run(reg):
        sc = load_scenario_text(
            "name: t\nspecies: rat\nseed: 6\narms:\n  - name: les\n    n: 40\n"
            f"    protocol: [{LESION}, "
            "{at: 0h, drug: ldopa, dose: 6 mg/kg, route: sc}]\n"
            "    assays: [{assay: stepping_test, at: [1h], options: {trials: 5}}]\n")
        m = simulate(sc, registry=reg).readouts.groupby("readout")["value"].mean()
        return m["stepping_contralateral_steps"] / m["stepping_ipsilateral_steps"]

    w = REG.value("behavior.motor.d2_spine_weight")
    assert 0.0 < w < 1.0
    partial = run(REG)
    full = run(REG.with_values({"behavior.motor.d2_spine_weight": 0.0}))
    assert 0.9 < full < 1.1
    assert partial < 0.9 and abs(partial / full - (1.0 - w * 0.59)) < 0.08


def test_aims_watches_mice_to_120_min_and_rats_to_180_min_by_default():
    """The AIMs' default periods follow the species' protocol (REFERENCES-NEXT 3.2: mice
    every 20 min to 120 min; rats to 180 min); a scenario's periods_min still wins."""
    from ketasim.core.assay import resolve_options
    from ketasim.experiment.assays import ASSAYS

    aims = ASSAYS["aims"]
    assert resolve_options(aims, {}, "t", "mouse")["periods_min"] == [
        20.0, 40.0, 60.0, 80.0, 100.0, 120.0]
    assert resolve_options(aims, {}, "t", "rat")["periods_min"][-1] == 180.0
    assert resolve_options(aims, {"periods_min": [30, 60]}, "t", "mouse")["periods_min"] == [
        30.0, 60.0]
