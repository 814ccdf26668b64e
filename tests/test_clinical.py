"""The clinical layer (issue 14): synaptic state, rated symptoms, psychotomimetic scales."""

from __future__ import annotations

import numpy as np
import pytest

from ketasim import simulate
from ketasim.analysis.trial import CADSS, MADRS
from ketasim.clinical.model import (
    ClinicalParams,
    history_grid,
    mood_days,
    mood_fluctuation,
    mood_paths,
    symptom_course,
)
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: 0h, drug: saline, route: iv}"
MADRS_AT = "[-1d, 4h, 24h, 72h, 14d]"


def _scenario(arms: dict[str, str], n: int = 40, madrs_at: str = MADRS_AT) -> str:
    body = "".join(
        f"  - name: {name}\n    n: {n}\n    protocol: [{proto}]\n"
        f"    assays: [{{assay: madrs, at: {madrs_at}}}, "
        "{assay: cadss, at: [0h, 40min, 4h]}, {assay: bprs_positive, at: [0h, 40min]}]\n"
        for name, proto in arms.items())
    return f"name: clinical\nspecies: human\nseed: 31\narms:\n{body}"


def _means(text: str, registry=REG):
    r = simulate(load_scenario_text(text), registry=registry).readouts
    return r, r.groupby(["arm", "readout", "time_h"])["value"].mean()


def _change(r, arm, t):
    m = r[(r.arm == arm) & (r.readout == "madrs_total")].pivot_table(
        index="subject", columns="time_h", values="value")
    return float((m[t] - m[-24.0]).mean())


@pytest.fixture(scope="module")
def trial():
    return _means(_scenario({"placebo": f"{DEP}, {SAL}", "ketamine": f"{DEP}, {KET}",
                             "healthy": KET}))


def test_scales_are_integer_and_within_range(trial):
    r, _ = trial
    for readout, lo, hi in [("madrs_total", MADRS.total_min, MADRS.total_max),
                            ("cadss_total", CADSS.total_min, CADSS.total_max),
                            ("madrs_suicide_item", 0, 6), ("bprs_positive", 4, 28)]:
        v = r.loc[r.readout == readout, "value"].to_numpy()
        assert v.size and np.all(v == np.rint(v)) and v.min() >= lo and v.max() <= hi


def test_depressed_patients_score_as_trial_populations_and_healthy_do_not(trial):
    _, m = trial
    base = m["placebo", "madrs_total", -24.0]
    assert 25.0 < base < 40.0  # treatment-resistant trial baselines, about 30-35
    assert m["healthy", "madrs_total", -24.0] < 6.0


def test_antidepressant_effect_in_patients_only_and_psychotomimetic_in_both(trial):
    """F-K-2, F-K-3: the rated improvement is in patients (not healthy subjects), large at
    24 h and mostly gone by 14 days; dissociation peaks at the end of the infusion in
    both groups and is nearly over by 4 h."""
    r, m = trial
    effect_24 = _change(r, "ketamine", 24.0) - _change(r, "placebo", 24.0)
    assert effect_24 < -3.0
    assert abs(_change(r, "healthy", 24.0)) < 2.0
    assert abs(_change(r, "ketamine", 336.0) - _change(r, "placebo", 336.0)) < \
        0.5 * abs(effect_24)
    for arm in ("ketamine", "healthy"):
        rise = m[arm, "cadss_total", 40 / 60] - m[arm, "cadss_total", 0.0]
        assert rise > 5.0
        assert m[arm, "cadss_total", 4.0] - m[arm, "cadss_total", 0.0] < 0.35 * rise
    assert m["placebo", "cadss_total", 40 / 60] - m["placebo", "cadss_total", 0.0] < 1.0


def test_removing_the_plasticity_path_removes_the_effect_not_the_dissociation(trial):
    """Issue 14: without potentiation and spine formation the 24-72 h effect goes while
    the acute dissociation stays (dissociation is not an input to the synaptic state).
    The same patients (same arm name and seed) are given saline, ketamine, or ketamine
    with the plasticity path removed."""
    reg = REG.with_values({"sig.k_potentiation_on": 0.0, "sig.formation_gain": 0.0})
    r_sal, m_sal = _means(_scenario({"patients": f"{DEP}, {SAL}"}))
    r_ket, m_ket = _means(_scenario({"patients": f"{DEP}, {KET}"}))
    r_cut, m_cut = _means(_scenario({"patients": f"{DEP}, {KET}"}), reg)
    effect = _change(r_ket, "patients", 24.0) - _change(r_sal, "patients", 24.0)
    assert effect < -5.0
    for t in (4.0, 24.0, 72.0):
        left = _change(r_cut, "patients", t) - _change(r_sal, "patients", t)
        assert abs(left) < 0.1 * abs(effect)
    rise = m_ket["patients", "cadss_total", 40 / 60] - m_sal["patients", "cadss_total", 40 / 60]
    assert rise > 5.0
    np.testing.assert_allclose(m_cut["patients", "cadss_total", 40 / 60],
                               m_ket["patients", "cadss_total", 40 / 60])


def test_a_visit_added_leaves_the_other_visits_alone():
    a, _ = _means(_scenario({"ketamine": f"{DEP}, {KET}"}, n=6))
    b, _ = _means(_scenario({"ketamine": f"{DEP}, {KET}"}, n=6,
                            madrs_at="[-1d, 4h, 10h, 24h, 72h, 14d]"))
    key = ["subject", "readout", "time_h"]
    ma = a[a.assay == "madrs"].set_index(key)["value"]
    mb = b[b.assay == "madrs"].set_index(key)["value"]
    np.testing.assert_array_equal(ma.to_numpy(), mb.loc[ma.index].to_numpy())


POOL = {"clinical.restore_direct_share": 0.1, "clinical.restore_pool_share": 0.15,
        "clinical.restore_pool_memory_d": 7.0, "clinical.k_restore": 3.0,
        "clinical.k_stabilise": 0.2, "clinical.k_turnover_stable": 0.01}
NO_POOL = {"clinical.restore_direct_share": 1.0, "clinical.restore_pool_share": 0.0,
           "clinical.k_stabilise": 0.0}


@pytest.mark.parametrize("pool", [POOL, NO_POOL], ids=["pool", "no_pool"])
def test_symptom_course_is_the_exact_solution(pool):
    """D relaxes to F' / E at rate k E, the pool M, restored L and stable Q follow their
    equations (module docstring), S low-passes the deficit with tau: compared with a fine
    Euler integration of the same equations, with and without restoration."""
    p = ClinicalParams.from_registry(REG.with_values(pool))
    v = p.values
    grid = np.arange(0.0, 400.0, 1.0)
    x_s = np.where((grid >= 100) & (grid < 130), 0.7, 0.0)[None, :]  # the drug-made part
    f = 0.7 + x_s
    e = np.full_like(f, 1.7)
    pot = np.where((grid > 100) & (grid < 150), 0.3, 0.0)[None, :]
    drives = {"formation_drive": f, "elimination_drive": e, "synaptic_potentiation": pot,
              "structural_formation": x_s}
    at = np.array([50.0, 120.5, 200.0, 399.0])
    at_drives = {k: x[:, np.searchsorted(grid, np.floor(at))] for k, x in drives.items()}
    z, s = symptom_course(grid, drives, at, at_drives, p)
    # Euler reference on a 0.01-h grid with the same piecewise-constant drives
    k, w, tau = v["k_turnover"] / 24.0, v["potentiation_weight"], v["tau_symptom_h"]
    share, phi = v["restore_direct_share"], v["restore_pool_share"]
    mem, k_r = 24.0 * v["restore_pool_memory_d"], v["k_restore"]
    sig, k_s = v["k_stabilise"] / 24.0, v["k_turnover_stable"] / 24.0
    fine = np.arange(0.0, 399.0 + 1e-9, 0.01)
    j = np.clip(np.floor(fine).astype(int), 0, grid.size - 1)
    d = 0.7 / 1.7
    m, lab, q = phi * k * 1.7 * d * mem, 0.0, 0.0
    sl = 1.0 - d
    out = {}
    for t, jj in zip(fine, j):
        fe, ee, xx, pp = f[0, jj], e[0, jj], x_s[0, jj], pot[0, jj]
        zz = (d + lab + q) * (1.0 + w * pp)
        x = max(0.0, 1.0 - zz)
        for a_t in at:
            if abs(t - a_t) < 0.005:
                out[a_t] = (zz, sl)
        grow = k_r * xx * m
        dd = k * (max(0.0, fe - xx) + share * xx - ee * d)
        dm = phi * (k * ee * (d + lab) + k_s * ee * q) - m / mem - grow
        dl = grow - k * ee * lab - sig * lab
        dq = sig * lab - k_s * ee * q
        d, m, lab, q = d + 0.01 * dd, m + 0.01 * dm, lab + 0.01 * dl, q + 0.01 * dq
        sl += 0.01 * (x - sl) / tau
    ref_z = np.array([out[a][0] for a in at])
    ref_s = np.array([out[a][1] for a in at])
    np.testing.assert_allclose(z[0], ref_z, rtol=0.02)
    np.testing.assert_allclose(s[0], ref_s, rtol=0.05, atol=0.01)
    assert np.isclose(z[0, 0], 0.7 / 1.7)  # steady state before the change
    if pool is POOL:  # what was restored outlasts D's own gain (the stable part)
        assert z[0, 3] > 0.7 / 1.7 + 0.005


def test_restoration_is_bounded_by_the_pool_and_repeated_doses_consolidate():
    """One dose restores what the depression took lately and no more: with fast regrowth
    a formation pulse twice as large restores about as much; the direct (de novo) path
    instead keeps growing with the pulse. Stable restored synapses make a course of doses
    outlast the interval between them."""
    grid = np.arange(0.0, 2000.0, 1.0)

    def gain(values, amp, starts, read):
        p = ClinicalParams.from_registry(REG.with_values(values))
        x_s = np.zeros((1, grid.size))
        for t0 in starts:
            x_s[0, (grid >= t0) & (grid < t0 + 24)] = amp
        drives = {"formation_drive": 0.7 + x_s, "elimination_drive": np.full_like(x_s, 1.7),
                  "synaptic_potentiation": np.zeros_like(x_s), "structural_formation": x_s}
        at = np.array([read])
        z, _ = symptom_course(grid, drives, at,
                              {k: v[:, [int(read)]] for k, v in drives.items()}, p)
        return float(z[0, 0]) - 0.7 / 1.7

    pool_only = {**POOL, "clinical.restore_direct_share": 0.0, "clinical.k_restore": 30.0}
    one, two = gain(pool_only, 0.5, [100], 148), gain(pool_only, 1.0, [100], 148)
    assert 0 < one and two < 1.15 * one
    direct = {**NO_POOL}
    one_d, two_d = gain(direct, 0.5, [100], 148), gain(direct, 1.0, [100], 148)
    assert two_d > 1.8 * one_d
    # a course of eight doses twice weekly against one dose, read 15 days after the last
    course = [100 + 84 * i for i in range(8)]
    after_one = gain(pool_only, 0.5, [course[-1]], course[-1] + 360)
    after_course = gain(pool_only, 0.5, course, course[-1] + 360)
    assert after_course > 2.0 * after_one > 0
    no_stable = {**pool_only, "clinical.k_stabilise": 0.0}
    assert gain(no_stable, 0.5, course, course[-1] + 360) < 0.5 * after_course


def test_mood_fluctuation_is_stationary_and_visit_independent():
    p = ClinicalParams.from_registry(REG)
    sd = p.values["fluctuation_sd"]
    paths = np.array([mood_fluctuation(np.random.default_rng(i), np.array([0.0, 240.0]), p)
                      for i in range(3000)])
    assert abs(paths[:, 0].std() - sd) < 0.1 * sd
    one = mood_fluctuation(np.random.default_rng(5), np.array([24.0]), p)
    two = mood_fluctuation(np.random.default_rng(5), np.array([24.0, 100.0]), p)
    assert one[0] == two[0]


def test_mood_paths_of_a_chunk_equal_each_patients_path():
    """The batched mood paths (one filter and one interpolation over the chunk) are
    bitwise each patient's own: the day-by-day recursion filtered alone and np.interp
    at visits on and off the day grid; mood_fluctuation reads one patient's stream."""
    from scipy.signal import lfilter

    p = ClinicalParams.from_registry(REG)
    v = p.values
    at = np.array([-24.0, 4.0, 24.0, 72.5, 1000.0])
    days = mood_days(at)
    z = np.random.default_rng(3).standard_normal((40, days.size))
    batch = mood_paths(z, at, p)
    a = np.exp(-1.0 / v["fluctuation_tau_d"])
    for i in range(40):
        drive = v["fluctuation_sd"] * np.sqrt(1.0 - a * a) * z[i]
        drive[0] = v["fluctuation_sd"] * z[i, 0]
        ref = np.interp(at / 24.0, days, lfilter([1.0], [1.0, -a], drive))
        np.testing.assert_array_equal(batch[i], ref)
    np.testing.assert_array_equal(
        mood_fluctuation(np.random.default_rng(8), at, p),
        mood_paths(np.random.default_rng(8).standard_normal((1, days.size)), at, p)[0])


def test_interp_rows_is_np_interp_row_by_row():
    from ketasim.clinical.model import interp_rows

    xp = np.array([-3.0, -1.0, 0.0, 2.5, 7.0])
    fp = np.random.default_rng(1).standard_normal((25, xp.size))
    x = np.array([-5.0, -3.0, -2.2, 0.0, 1.1, 2.5, 6.999, 7.0, 9.0])
    got = interp_rows(x, xp, fp)
    for i in range(fp.shape[0]):
        np.testing.assert_array_equal(got[i], np.interp(x, xp, fp[i]))


def test_history_grid_is_anchored_at_the_step():
    g = history_grid(np.array([-24.0, 10.3, 48.0]), 21.0, 1.0)
    assert g[0] == -24.0 - 21 * 24.0 and np.all(np.diff(g) == 1.0) and g[-1] == 48.0
    assert history_grid(np.array([-24.0, 10.3, 96.0]), 21.0, 1.0)[0] == g[0]


def _table(arm, base, later, t_later=24.0, readout="madrs_total"):
    import pandas as pd
    n = len(base)
    return pd.DataFrame({
        "arm": arm, "subject": np.r_[np.arange(n), np.arange(n)], "assay": "madrs",
        "readout": readout, "time_h": np.r_[np.full(n, -24.0), np.full(n, t_later)],
        "value": np.r_[base, later], "unit": "points"})


def test_clinical_statistics_on_a_hand_made_table():
    import pandas as pd

    from ketasim.validation.statistic import evaluate
    r = pd.concat([_table("k", [30, 20, 40, 10], [15, 12, 10, 6]),
                   _table("p", [30, 30, 30, 30], [28, 26, 30, 20])])
    assert evaluate("response_rate('k', 'madrs_total', '-1d', '24h')", r) == 0.5
    assert evaluate("remission_rate('k', 'madrs_total', '24h', 12)", r) == 0.75
    assert evaluate("mean_change('k', 'madrs_total', '-1d', '24h')", r) == -14.25
    assert evaluate("mean_change('p', 'madrs_total', '-1d', '24h')", r) == -4.0
    assert evaluate("p_change_lower('k', 'p', 'madrs_total', '-1d', '24h')", r) < 0.1
    assert evaluate("p_change_lower('p', 'k', 'madrs_total', '-1d', '24h')", r) > 0.9
    assert evaluate("d_change('k', 'p', 'madrs_total', '-1d', '24h')", r) < -1.0


def test_mediated_share_finds_a_mediator_and_no_mediation():
    """With the benefit carried entirely by the mediator the share is near 1; with a
    mediator that only tracks treatment, near 0."""
    import pandas as pd

    from ketasim.validation.statistic import evaluate
    g = np.random.default_rng(3)
    n = 300
    for carried, lo, hi in ((True, 0.8, 1.2), (False, -0.15, 0.15)):
        frames = []
        for arm, x in (("p", 0.0), ("k", 1.0)):
            m = 10 * x + g.normal(0, 3, n)
            gain = -0.5 * m if carried else -5.0 * x
            base = g.normal(30, 3, n)
            frames.append(_table(arm, base, base + gain + g.normal(0, 2, n)))
            frames.append(_table(arm, np.zeros(n), m, t_later=40 / 60,
                                 readout="cadss_total"))
        r = pd.concat(frames)
        share = evaluate("mediated_share('p', 'k', 'cadss_total', '40min', 'madrs_total', "
                         "'-1d', '24h')", r)
        assert lo < share < hi, (carried, share)


def test_imaging_assays_follow_synaptic_state_and_release():
    """F-K-14: prefrontal GBC is lower in patients and rises 24 h after ketamine; F-K-13:
    13C cycling during the infusion follows glutamate release."""
    text = ("name: imaging\nspecies: human\nseed: 8\narms:\n"
            "  - {name: healthy, n: 40, protocol: [], assays: [{assay: fmri_gbc, at: [-1d]}]}\n"
            f"  - {{name: pk, n: 40, protocol: [{DEP}, {KET}], assays: [{{assay: fmri_gbc, "
            "at: [-1d, 24h]}, {assay: mrs_glutamate_cycling, at: [-1d, 40min]}]}\n"
            f"  - {{name: ps, n: 40, protocol: [{DEP}, {SAL}], assays: ["
            "{assay: mrs_glutamate_cycling, at: [40min]}]}\n")
    _, m = _means(text)
    assert m["pk", "pfc_gbc_z", -24.0] < m["healthy", "pfc_gbc_z", -24.0] - 0.5
    assert m["pk", "pfc_gbc_z", 24.0] > m["pk", "pfc_gbc_z", -24.0] + 0.2
    assert abs(m["ps", "vcycle_rel", 40 / 60] - 1.0) < 0.05
    assert abs(m["pk", "vcycle_rel", -24.0] - 1.0) < 0.05
    assert m["pk", "vcycle_rel", 40 / 60] > 1.2


def test_scale_readouts_are_readouts_of_their_assays():
    """The trial vocabulary is derived from one declaration beside the assays: each
    analysable readout is reported by the assay it names, and its range is the scale's."""
    from ketasim.clinical.assays import SCALE_READOUTS
    from ketasim.experiment.assays import ASSAYS
    from ketasim.scenario.model import TRIAL_SCALES

    assert set(TRIAL_SCALES) == set(SCALE_READOUTS)
    for readout, (assay, scale, items) in SCALE_READOUTS.items():
        assert readout in ASSAYS[assay].readout_names, (readout, assay)
        ts = TRIAL_SCALES[readout]
        assert ts.assay == assay
        if items is None:
            assert (ts.low, ts.high) == (scale.total_min, scale.total_max)
    assert TRIAL_SCALES["bprs_positive"].high == 28 and TRIAL_SCALES["madrs_total"].high == 60


def test_batched_item_scores_equal_one_rating_at_a_time():
    """The MADRS assay draws each visit's numbers from the visit's own stream and rates
    all visits at once (item_scores, rater_shift): the same scores as rating each visit
    with rate_items and Rater.shift."""
    from ketasim.clinical.model import Rater, item_scores, rate_items, rater_shift

    p = ClinicalParams.from_registry(REG)
    lo = np.array([it.low for it in MADRS.items], float)
    hi = np.array([it.high for it in MADRS.items], float)
    rng = np.random.default_rng(7)
    n, at = 40, np.array([-24.0, 4.0, 24.0, 72.0, 168.0])
    latent = rng.uniform(0.0, 60.0, (n, at.size))
    profiles = rng.dirichlet(np.full(hi.size, 5.0), n) * hi.size
    raters = [Rater(np.random.default_rng(100 + i), p) for i in range(n)]
    one = np.empty((n, at.size, hi.size))
    z = np.empty((n, at.size))
    noise = np.empty((n, at.size, hi.size))
    for i in range(n):
        for j, t in enumerate(at):
            g = np.random.default_rng([i, j])
            shift = 1.5 * raters[i].shift(t, g.standard_normal(), p)
            one[i, j] = rate_items(latent[i, j] - lo.sum(), profiles[i], hi, lo, g, p, shift)
            g = np.random.default_rng([i, j])
            z[i, j] = g.standard_normal()
            noise[i, j] = g.normal(0.0, p.values["item_noise_sd"], hi.size)
    bias = np.array([r.bias for r in raters])[:, None]
    drift = np.array([r.drift for r in raters])[:, None]
    shift = 1.5 * rater_shift(bias, drift, at[None, :], z, p)
    batch = item_scores((latent - lo.sum())[:, :, None], profiles[:, None, :], hi, lo, noise,
                        shift[:, :, None])
    np.testing.assert_array_equal(batch, one)
    assert np.unique(one).size > 5  # the scores spread over the scale


def test_compiled_grid_chains_equal_the_step_functions():
    """symptom_course's compiled recurrences give bitwise the values of stepping the
    grid with _advance_density and _advance_load (numpy, one step at a time), on an
    irregular grid with the deficit clipped at 0 in places."""
    from ketasim.clinical.model import _advance_density, _advance_load

    p = ClinicalParams.from_registry(REG.with_values(NO_POOL))  # the pool: exact-solution test
    v = p.values
    rng = np.random.default_rng(3)
    grid = np.sort(rng.uniform(-300.0, 400.0, 300))
    n = 25
    drives = {"formation_drive": rng.uniform(0.5, 1.6, (n, grid.size)),
              "elimination_drive": rng.uniform(1.0, 1.8, (n, grid.size)),
              "synaptic_potentiation": rng.uniform(0.0, 0.9, (n, grid.size)),
              "structural_formation": np.zeros((n, grid.size))}
    at = grid[[10, 150, 299]]
    # drives below their floors in places: symptom_course clips them (F, P at 0, E at 1e-9)
    drives["formation_drive"][3, 40:60] = -0.2
    drives["synaptic_potentiation"][4, 70:90] = -0.05
    drives["elimination_drive"][5, 100:105] = 0.0
    at_drives = {k: x[:, [10, 150, 299]] for k, x in drives.items()}
    _, s = symptom_course(grid, drives, at, at_drives, p)
    k_h, w = v["k_turnover"] / 24.0, v["potentiation_weight"]
    f, e, pot = (np.clip(drives[k], lo, None) for k, lo in (
        ("formation_drive", 0.0), ("elimination_drive", 1e-9), ("synaptic_potentiation", 0.0)))
    d = f[:, 0] / e[:, 0]
    x = np.clip(1.0 - d * (1.0 + w * pot[:, 0]), 0.0, None)
    fast, out, clipped = x.copy(), {}, False
    for j in range(1, grid.size):
        h = grid[j] - grid[j - 1]
        d = _advance_density(d, f[:, j - 1], e[:, j - 1], k_h, h)
        x1 = np.clip(1.0 - d * (1.0 + w * pot[:, j]), 0.0, None)
        fast = _advance_load(fast, x, x1, v["tau_symptom_h"], h)
        x = x1
        out[j] = fast.copy()
        clipped |= bool(np.any(x1 == 0.0))
    assert clipped
    np.testing.assert_array_equal(s[:, 1], out[150])
    np.testing.assert_array_equal(s[:, 2], out[299])


def test_patient_traits_are_the_same_whichever_is_read_first():
    """Traits are drawn on first use, each with the draws before it: reading the last
    trait first, or only the first ones, gives the values of drawing them all in the
    documented order (gain, placebo, profiles, psychotomimetic, later profiles, domain
    patterns, self-report bias)."""
    from ketasim.clinical.model import PatientTraits

    p = ClinicalParams.from_registry(REG)
    v = p.values
    n_items, later, domains = {"madrs": 10, "cadss": 23}, {"hdrs17": 17}, (4, 3)

    def eager(seed):
        g = np.random.default_rng(seed)
        sig = np.sqrt(np.log1p(v["madrs_gain_cv"] ** 2))
        out = {"gain": float(np.exp(g.normal(-0.5 * sig**2, sig))),
               "placebo": float(np.clip(g.normal(v["placebo_mean"], v["placebo_sd"]),
                                        0.0, 0.9))}
        for name, k in n_items.items():
            out[name] = g.dirichlet(np.full(k, v["item_profile_conc"])) * k
        sig = np.sqrt(np.log1p(v["psychotomimetic_cv"] ** 2))
        out["psychotomimetic"] = float(np.exp(g.normal(-0.5 * sig**2, sig)))
        out["hdrs17"] = g.dirichlet(np.full(17, v["item_profile_conc"])) * 17
        out["domains"] = [w / w.max() for w in (g.dirichlet(np.ones(k)) for k in domains)]
        out["bias"] = float(v["self_report_bias_sd"] * g.standard_normal())
        return out

    ref = eager(11)
    last_first = PatientTraits(np.random.default_rng(11), p, n_items, later, domains)
    assert last_first.self_report_bias == ref["bias"]
    assert last_first.gain == ref["gain"]
    np.testing.assert_array_equal(last_first.profiles["hdrs17"], ref["hdrs17"])
    for a, b in zip(last_first.domain_patterns, ref["domains"]):
        np.testing.assert_array_equal(a, b)
    early = PatientTraits(np.random.default_rng(11), p, n_items, later, domains)
    np.testing.assert_array_equal(early.profiles["madrs"], ref["madrs"])
    assert (early.placebo, early.psychotomimetic) == (ref["placebo"],
                                                      ref["psychotomimetic"])
    np.testing.assert_array_equal(early.profiles["cadss"], ref["cadss"])
    assert sorted(early.profiles) == ["cadss", "hdrs17", "madrs"]
    with pytest.raises(KeyError):
        early.profiles["qids_sr"]


@pytest.mark.parametrize("conc", [8.0, 1.0])
def test_chunk_traits_equal_each_patients_traits(conc):
    """The chunk's traits with the first three drawn in compiled code (early_traits) are
    each patient's own traits (PatientTraits on the patient's stream), bitwise, for the
    early traits and for every later one (drawn by numpy where the compiled draws left
    off), whichever is read first; an item-profile concentration of 1 (numpy's gamma(1)
    is drawn another way) takes the per-patient path."""
    from ketasim.clinical import assays as ca
    from ketasim.core.assay import AssayContext

    reg = REG if conc == 8.0 else REG.with_values({"clinical.item_profile_conc": conc})
    p = ClinicalParams.from_registry(reg)
    ctx = AssayContext(21, "ketamine", "madrs", np.arange(200, 260), "human", {},
                       lambda o, t: None, registry=reg)
    chunk = ca._chunk_traits(ctx, p)
    assert len(chunk) == ctx.n
    for i, tr in enumerate(chunk):
        ref = ca._traits(ctx, i, p)
        if i % 2:  # a later trait first: the stream is placed after the compiled draws
            assert tr.self_report_bias == ref.self_report_bias
        assert tr.gain == ref.gain and tr.placebo == ref.placebo
        for name in ("madrs", "cadss", "bprs_positive", "hdrs17", "qids_sr"):
            np.testing.assert_array_equal(tr.profiles[name], ref.profiles[name])
        assert tr.psychotomimetic == ref.psychotomimetic
        for a, b in zip(tr.domain_patterns, ref.domain_patterns, strict=True):
            np.testing.assert_array_equal(a, b)
        assert tr.self_report_bias == ref.self_report_bias


def test_patient_traits_refuse_drawn_traits_out_of_order():
    from ketasim.clinical.model import PatientTraits

    p = ClinicalParams.from_registry(REG)
    with pytest.raises(ValueError, match="out of order"):
        PatientTraits(np.random.default_rng(1), p, {"madrs": 10}, drawn={"placebo": 0.3})


def test_chunk_traits_do_not_keep_the_context_alive():
    """The traits keep how to build each patient's stream, not the assay context (which
    holds the chunk's trajectories): a 100,000-patient trial grew by some 50 MB a piece
    until the cyclic collector ran when they did."""
    import weakref

    from ketasim.clinical import assays as ca
    from ketasim.core.assay import AssayContext

    p = ClinicalParams.from_registry(REG)
    ctx = AssayContext(21, "ketamine", "madrs", np.arange(5), "human", {},
                       lambda o, t: None, registry=REG)
    traits = ca._chunk_traits(ctx, p)
    alive = weakref.ref(ctx)
    del ctx
    assert alive() is None  # freed by reference counting, no collector needed
    assert traits[0].self_report_bias == traits[0].self_report_bias  # later traits still draw


def test_chunk_traits_without_compiled_streams(monkeypatch):
    from ketasim.clinical import assays as ca
    from ketasim.core import pcg64
    from ketasim.core.assay import AssayContext

    p = ClinicalParams.from_registry(REG)
    ctx = AssayContext(4, "placebo", "madrs", np.arange(7), "human", {},
                       lambda o, t: None, registry=REG)
    fast = ca._chunk_traits(ctx, p)
    monkeypatch.setattr(pcg64, "COMPILED", False)
    slow = ca._chunk_traits(ctx, p)
    for a, b in zip(fast, slow, strict=True):
        assert (a.gain, a.placebo, a.self_report_bias) == (b.gain, b.placebo,
                                                           b.self_report_bias)
        np.testing.assert_array_equal(a.profiles["madrs"], b.profiles["madrs"])


def test_chunk_raters_are_each_patients_assignment(monkeypatch):
    """The chunk's rater assignments drawn at once (compiled) are each patient's own
    (assigned_rater), and the numpy fallback gives the same."""
    from ketasim.clinical import assays as ca
    from ketasim.core import pcg64
    from ketasim.core.assay import AssayContext

    p = ClinicalParams.from_registry(REG)
    ctx = AssayContext(13, "ketamine", "madrs", np.arange(40), "human", {"raters": 5},
                       lambda o, t: None, registry=REG)
    fast = [r.bias for r in ca._raters(ctx, p)]
    want = [ca.assigned_rater(ctx, i, 5) for i in range(40)]
    assert len(set(want)) > 1
    biases = {k: ca.Rater(ca.rater_rng(13, "ketamine", k), p).bias for k in set(want)}
    assert fast == [biases[k] for k in want]
    monkeypatch.setattr(pcg64, "COMPILED", False)
    assert [r.bias for r in ca._raters(ctx, p)] == fast


def test_placebo_response_starts_with_the_first_treatment():
    """The placebo response begins at the arm's first drug event (saline included), not
    at scenario time 0: an untreated arm has none, and saline given on day 30 lifts
    the ratings from day 30 on (an untreated arm improved by 10 points within a day)."""
    from ketasim.scenario import load_scenario_text

    text = """
name: plac
species: human
seed: 4
arms:
  - name: none
    n: 40
    protocol: [{at: -60d, stress: major_depression, duration: 200d}]
    assays: [{assay: madrs, at: [-1d, 1d, 29d, 31d]}]
  - name: saline30
    n: 40
    protocol: [{at: -60d, stress: major_depression, duration: 200d},
               {at: 30d, drug: saline, route: iv}]
    assays: [{assay: madrs, at: [-1d, 1d, 29d, 31d]}]
"""
    r = simulate(load_scenario_text(text), registry=load_registry()).readouts
    m = r[r.readout == "madrs_total"].groupby(["arm", "time_h"]).value.mean()
    assert abs(m[("none", 24.0)] - m[("none", -24.0)]) < 3
    assert abs(m[("none", 744.0)] - m[("none", 696.0)]) < 3
    assert abs(m[("saline30", 24.0)] - m[("saline30", -24.0)]) < 3
    assert m[("saline30", 744.0)] < m[("saline30", 696.0)] - 5
