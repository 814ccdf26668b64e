"""Tail suspension: the struggle process reads prefrontal ensemble events (F-M-10)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ketasim import simulate
from ketasim.analysis.behavior import score_tst
from ketasim.behavior.traits import lognormal_from_normals
from ketasim.behavior.tst import TstParams, event_onsets, immobility_states
from ketasim.params import load_registry
from ketasim.report.html import assay_figures
from ketasim.scenario import load_scenario_text

FR = 30.0


def params(**changes) -> TstParams:
    tp = TstParams.from_registry(load_registry())
    return dataclasses.replace(tp, values={**tp.values, **changes})


def test_event_onsets_known_answer():
    rate = np.zeros(100)
    rate[10:20] = 8.0
    rate[50:52] = 6.0
    rate[70:80] = 3.0  # below the threshold
    assert event_onsets(rate, 5.0).tolist() == [10, 50]
    # a lasting activation counts again every refire_frames while above; a rate above
    # the threshold at the start is an event there, and a run to the end is closed
    rate[0:3] = 9.0
    rate[90:] = 7.0
    assert event_onsets(rate, 5.0, 4).tolist() == [0, 10, 14, 18, 50, 90, 94, 98]
    assert event_onsets(np.full(10, 9.0), 5.0, 0).tolist() == [0]


def test_a_tonically_active_circuit_keeps_starting_struggles():
    """A rate above the threshold throughout (an unstressed mouse's circuit 3 h after
    ketamine) starts struggles as often as an event-rich one, instead of leaving the
    mouse immobile for the whole test as a circuit with no events would."""
    tp = params(spont_rate_hz=0.0)
    n = int(360 * FR)
    tonic = immobility_states(np.full(n, 10.0), FR, tp, np.random.default_rng(3))
    silent = immobility_states(np.zeros(n), FR, tp, np.random.default_rng(3))
    assert tonic.mean() < 0.75 < silent.mean()


def test_struggles_follow_events_by_the_lag():
    """With every event triggering (p_trigger 1) and no spontaneous struggles, each
    struggle starts exactly lag_s after an event that came during immobility."""
    tp = params(p_trigger=1.0, spont_rate_hz=0.0, lag_s=1.0, initial_struggle_s=5.0)
    n = int(360 * FR)
    rate = np.zeros(n)
    events = [int(t * FR) for t in (30, 90, 150, 151, 250)]
    for e in events:
        rate[e:e + 15] = 15.0
    states = immobility_states(rate, FR, tp, np.random.default_rng(1))
    assert not states[:int(5 * FR)].any()
    starts = np.flatnonzero(states[:-1] & ~states[1:]) + 1
    lag = int(FR)
    assert set(starts.tolist()) <= {e + lag for e in events}
    assert events[0] + lag in starts and events[1] + lag in starts


def test_no_events_means_immobile_to_the_end():
    tp = params(spont_rate_hz=0.0, initial_struggle_s=10.0)
    states = immobility_states(np.zeros(int(360 * FR)), FR, tp, np.random.default_rng(0))
    assert states[int(10 * FR):].all() and not states[:int(10 * FR)].any()


TEXT = """
name: tst
species: mouse
seed: 5
arms:
  - name: control
    n: 3
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: tail_suspension, at: [24h], options: {cells: 30}}]
  - name: cort
    n: 3
    protocol: [{at: -10d, stress: cort, duration: 10d}, {at: 0h, drug: saline, route: ip}]
    assays: [{assay: tail_suspension, at: [24h], options: {cells: 30}}]
"""


def test_a_trait_is_lognormal_with_mean_one():
    """A mouse's trait (struggle vigour, locomotor activity) has mean 1 and the given CV,
    and is the numbers numpy's own log-normal draw gives from the same stream."""
    z = np.random.default_rng(5).standard_normal(20000)
    v = lognormal_from_normals(0.3, z)
    assert abs(v.mean() - 1.0) < 0.01 and abs(v.std() / v.mean() - 0.3) < 0.01
    sig = np.sqrt(np.log1p(0.09))
    ref = np.exp(np.random.default_rng(5).normal(-0.5 * sig * sig, sig, 20000))
    np.testing.assert_allclose(v, ref, rtol=1e-12)


def test_vigour_lengthens_the_struggles():
    """The same events and coins: a more vigorous mouse struggles longer each time, so
    it is immobile for less of the test."""
    tp = params(spont_rate_hz=0.02)
    n = int(360 * FR)
    rate = np.zeros(n)
    for t in range(20, 360, 25):
        rate[int(t * FR):int(t * FR) + 10] = 15.0
    weak = immobility_states(rate, FR, tp, np.random.default_rng(4), 0.6)
    strong = immobility_states(rate, FR, tp, np.random.default_rng(4), 1.6)
    assert strong.mean() < weak.mean() - 0.1


def test_vigour_is_a_trait_kept_over_sessions():
    """Mice tested twice at the same state: with the trait their two immobility times
    correlate more (a mouse that struggles hard does so in both tests; its own circuit
    already makes them correlate) and spread more between mice than without it."""
    text = """
name: tst_trait
species: mouse
seed: 11
arms:
  - name: a
    n: 24
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays:
      - {assay: tail_suspension, at: [3h, 27h], options: {cells: 20}}
"""
    reg = load_registry()
    out = {}
    for cv in (0.0, 0.6):
        r = simulate(load_scenario_text(text),
                     registry=reg.with_values({"behavior.tst.struggle_trait_cv": cv})).readouts
        w = r[r.readout == "tst_immobility_s"].pivot(index="subject", columns="time_h",
                                                      values="value")
        out[cv] = (np.corrcoef(w[3.0], w[27.0])[0, 1], w.to_numpy().std())
    assert out[0.6][0] > out[0.0][0] + 0.1
    assert out[0.6][1] > 1.5 * out[0.0][1]


def test_tail_suspension_through_the_runner(tmp_path):
    """F-M-1 / F-M-10 in miniature: CORT mice are immobile longer, in fewer, longer bouts;
    in controls the population calcium rises before struggles."""
    res = simulate(load_scenario_text(TEXT), registry=load_registry())
    r = res.readouts
    m = r.groupby(["arm", "readout"])["value"].mean()
    assert 0 < m[("control", "tst_immobility_s")] < m[("cort", "tst_immobility_s")] <= 360
    assert m[("control", "tst_struggle_bouts")] > m[("cort", "tst_struggle_bouts")]
    assert m[("control", "tst_calcium_rise_s")] < 0
    # what the report draws: every mouse's ethogram (scoring it again gives the readout)
    # and its peri-struggle population dF/F, which rises before the onset in controls
    etho = res.tst["control"]["ethogram"]
    again = score_tst(etho.drop(columns="time_h"), duration_s=360.0)
    imm = r[(r["arm"] == "control") & (r["readout"] == "tst_immobility_s")]
    assert again["immobility_s"].to_numpy() == pytest.approx(imm["value"].to_numpy())
    lags, peri = res.tst["control"]["lags_s"], res.tst["control"]["peri_dff"][24.0]
    assert peri.shape == (3, len(lags)) and lags[0] == pytest.approx(-3.0)
    mean = np.nanmean(peri, axis=0)
    assert mean[np.searchsorted(lags, -0.3)] > mean[np.searchsorted(lags, -2.5)] + 0.2
    tags = assay_figures(tmp_path, res.kept, "t_")
    assert len(tags) == 2
    assert (tmp_path / "t_tail_suspension_ethogram.png").stat().st_size > 5000
    assert (tmp_path / "t_tail_suspension_peri_struggle.png").stat().st_size > 5000
    with pytest.raises(ValueError, match=r"arms\[0\]\.assays\[0\]\.options\.frames"):
        simulate(load_scenario_text(TEXT.replace("{cells: 30}", "{frames: 3}", 1)), registry=load_registry())


def test_open_field_activity_is_a_trait_kept_over_sessions():
    """Saline mice in the open field twice: with the activity trait the distances spread
    between mice as in published groups (CV above 15%, against a few % without it) and a
    mouse that moves much in one session does so in the other."""
    text = """
name: of_trait
species: mouse
seed: 12
arms:
  - name: a
    n: 24
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays:
      - {assay: open_field, at: [1h, 25h]}
"""
    reg = load_registry()
    out = {}
    for cv in (0.0, 0.25):
        r = simulate(load_scenario_text(text),
                     registry=reg.with_values({"behavior.open_field.activity_trait_cv": cv})
                     ).readouts
        w = r[r.readout == "distance_cm"].pivot(index="subject", columns="time_h",
                                                 values="value")
        out[cv] = (np.corrcoef(w[1.0], w[25.0])[0, 1], (w.std() / w.mean()).mean())
    assert out[0.0][1] < 0.08 and out[0.25][1] > 0.15
    assert out[0.25][0] > 0.8 and out[0.25][0] > out[0.0][0] + 0.5


def test_open_field_track_and_speed():
    """The simulated track stays in the arena and its scored distance equals the walked
    path (up to tracking jitter); speed rises with NMDA occupancy (F-W-7)."""
    from ketasim.analysis.behavior import binned_distance
    from ketasim.behavior.open_field import OpenFieldParams, track

    op = OpenFieldParams.from_registry(load_registry())
    op = dataclasses.replace(op, values={**op.values, "jitter_cm": 0.0})
    x, y, t = track(np.full(600, 3.0), op, np.random.default_rng(2))
    assert x.min() >= 0 and x.max() <= op.values["arena_cm"]
    assert y.min() >= 0 and y.max() <= op.values["arena_cm"]
    dist = binned_distance(x, y, t, bin_s=600.0)[1].sum()
    assert dist == pytest.approx(3.0 * 600, rel=0.1)
    v = op.speed(np.array([0.0, 0.3, op.values["occ50"], 0.95]))  # half effect at occ50
    assert v[0] == pytest.approx(op.values["speed_cm_s"]) and np.all(np.diff(v) > 0)
    assert v[2] == pytest.approx(op.values["speed_cm_s"] * (1 + op.values["hyper_gain"] / 2))


def test_open_field_track_starts_at_its_start_point():
    """The first recorded position is where the walk starts: every step between recorded
    positions is one drawn step (no jump from the start point to the walk), and the
    distance of a bin is the sum of its steps. In an arena too big to reach a wall the
    chords are the drawn steps exactly; in the real arena a reflection can only shorten
    a chord."""
    from ketasim.analysis.behavior import binned_distance
    from ketasim.behavior.open_field import OpenFieldParams, track

    op = OpenFieldParams.from_registry(load_registry())
    speed = np.full(600, 3.0)
    shape = 1.0 / op.values["speed_cv"] ** 2
    for seed in range(5):
        steps = np.random.default_rng(seed).gamma(shape, speed / shape)  # its first draws
        for arena in (1e6, op.values["arena_cm"]):
            p = dataclasses.replace(op, values={**op.values, "jitter_cm": 0.0,
                                                "arena_cm": arena})
            x, y, t = track(speed, p, np.random.default_rng(seed))
            assert x.size == y.size == t.size == speed.size + 1 and t[0] == 0.0
            chords = np.hypot(np.diff(x), np.diff(y))
            _, dist, _ = binned_distance(x, y, t, bin_s=60.0)
            per_bin = steps.reshape(10, 60).sum(axis=1)
            if arena > 1e5:
                np.testing.assert_allclose(chords, steps, rtol=1e-7)
                np.testing.assert_allclose(dist, per_bin, rtol=1e-7)
            else:
                assert np.all(chords <= steps + 1e-9)
                assert np.all(dist <= per_bin + 1e-9) and dist.sum() > 0.9 * steps.sum()


def test_sucrose_preference_rule_known_answer():
    """Preference = pref_max - pref_drop x stress load x (1 - relief x potentiation),
    relief capped at full; it reads no spine state (F-M-13)."""
    from ketasim.behavior.sucrose import SucroseParams

    sp = SucroseParams.from_registry(load_registry())
    v = sp.values
    got = sp.preference(np.array([0.0, 0.6, 0.6, 0.6]), np.array([0.0, 0.0, 0.2, 5.0]))
    assert got[0] == pytest.approx(v["pref_max"])
    assert got[1] == pytest.approx(v["pref_max"] - v["pref_drop"] * 0.6)
    assert got[2] == pytest.approx(v["pref_max"] - v["pref_drop"] * 0.6 * (1 - v["relief"] * 0.2))
    assert got[3] == pytest.approx(v["pref_max"])


def test_escape_test_through_the_runner():
    """F-W-15 in miniature: inescapable shock two days before raises escape failures;
    ketamine the day before the test protects."""
    text = """
name: lh
species: mouse
seed: 6
arms:
  - name: no_shock
    n: 8
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: escape_test, at: [24h]}]
  - name: shock
    n: 8
    protocol: [{at: -2d, stress: inescapable_shock, duration: 2h}, {at: 0h, drug: saline, route: ip}]
    assays: [{assay: escape_test, at: [24h]}]
  - name: shock_ketamine
    n: 8
    protocol:
      - {at: -2d, stress: inescapable_shock, duration: 2h}
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: [{assay: escape_test, at: [24h]}]
"""
    r = simulate(load_scenario_text(text), registry=load_registry()).readouts
    m = r.groupby("arm")["value"].mean()
    assert m["shock"] > 0.4 > m["no_shock"]
    assert m["shock_ketamine"] < m["shock"] - 0.3
    assert r["value"].between(0, 1).all()
    # escape reads the circuit's activity relative to the mouse's own baseline, not its
    # inputs: with the activity drive's gain inside the network at 0 (a circuit parameter;
    # same synapses and drives) the shocked circuits' rate falls less and fewer trials
    # fail, while unshocked mice, at their baseline, are unchanged
    flat = simulate(load_scenario_text(text),
                    registry=load_registry().with_values({"circuit.g_act": 0.0})).readouts
    f = flat.groupby("arm")["value"].mean()
    assert f["shock"] < m["shock"] - 0.2
    assert f["no_shock"] == pytest.approx(m["no_shock"], abs=0.02)


def test_fear_extinction_faster_with_more_prefrontal_coupling():
    """F-K-15 in miniature: 24 h after ketamine (potentiated prefrontal synapses) less
    freezing remains at the end of an extinction session."""
    text = """
name: fe
species: mouse
seed: 7
arms:
  - name: saline
    n: 6
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: fear_extinction, at: [24h]}]
  - name: ketamine
    n: 6
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: fear_extinction, at: [24h]}]
"""
    r = simulate(load_scenario_text(text), registry=load_registry()).readouts
    m = r.groupby("arm")["value"].mean()
    assert 0.0 < m["ketamine"] < m["saline"] - 0.1 < 1.0


@pytest.mark.parametrize("assay, option, value, expected", [
    ("escape_test", "minutes", 0, "a number > 0"),
    ("fear_extinction", "trials", 0, "a number > 0"),
    ("calcium_imaging", "cells", 0, "a number > 0"),
    ("tail_suspension", "frame_rate_hz", 0, "a number > 0"),
    ("escape_test", "trials", 2.5, "a whole number"),
    ("sucrose_preference", "hours", -1, "a non-negative number"),
    ("two_photon_spines", "miss", 1.5, r"a fraction in \[0, 1\]"),
])
def test_bad_assay_options_are_refused_before_anything_runs(assay, option, value, expected):
    """Zero-length sessions and fractional counts used to run into NaNs or index errors
    deep inside the models; now one error names the option."""
    text = f"""
name: bad
species: mouse
seed: 1
arms:
  - name: a
    n: 2
    protocol: [{{at: 0h, drug: saline, route: ip}}]
    assays: [{{assay: {assay}, at: [24h], options: {{{option}: {value}}}}}]
"""
    with pytest.raises(ValueError, match=rf"arms\[0\]\.assays\[0\]\.options\.{option}: got "
                                         rf"{value}; expected {expected}"):
        simulate(load_scenario_text(text), registry=load_registry())
