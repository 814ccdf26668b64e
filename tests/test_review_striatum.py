"""Review of the striatal twin (issue 15): the rodent scores of ``ketasim.behavior.striatal``
(AIMs, rotation, stepping, cylinder), the patients' UDysRS (``ketasim.clinical.dyskinesia``),
the dyskinesia drive and severity (``ketasim.signaling.dyskinesia``), the lesion
interventions and D1 supersensitivity (``ketasim.signaling.spec``, ``.protocol``), the
region handling (``ketasim.core.regions``, ``ketasim.params.regions``) and the striatal
spine cells (``spine.msn_d1.*``, ``spine.msn_d2.*``), against references computed here:

- scale structure from the documented rules, each assay driven by hand-made signalling
  trajectories: AIMs severity a Hill function on 0-4, scores the rounded latent severity
  without rater noise and, with it, the expectation of the rounded, clipped normal
  (noise SD growing with the latent severity up to one point), session sums, ALO and the
  first-of-ties peak; rotation counts Poisson at ``max_rate`` x Hill of the D1 asymmetry
  (sign: contralateral for a positive asymmetry) over 1-min bins from ``start_min``;
  stepping Poisson around the intact count x the relative Hill of each side's dopamine
  (the contralateral paw also x the indirect-pathway loss); cylinder binomial around
  50% x the relative Hill; UDysRS item by item (item 1 in quartiles of the waking day,
  impact, off-dystonia, body regions and disability) rebuilt exactly without noise;
- the simulated path against the lab path: striatal readouts written to NWB and read
  back give the same table, summary and comparisons;
- region handling: striatal assays read the striatal registry; adding striatal assays
  (and a striatal spine cell) leaves an arm's mPFC readouts and spines bit-identical and
  the reverse; adding the UDysRS leaves a patient's MADRS unchanged; a region an assay
  cannot measure is one clear error;
- causal and monotone behaviour in expectation, seeded, with standard-error bounds:
  no AIMs without L-DOPA or without a lesion, more L-DOPA more AIMs, a partial lesion
  less than a full one, ketamine fewer AIMs and fewer mushroom spines on D1 neurons
  with rapamycin and ANA-12 removing both; the spine cells' sham densities and which
  drive each reads;
- invariances (same seed, arm order, chunks) and bad inputs (unknown lesion, negative
  dose, striatal assays in the wrong species) as one clear error naming the field.

Defects found (once ``xfail(strict=True, reason="BUG: ...")``) are fixed; their reasons stay
as ``# fixed (was BUG)`` comments above the tests that guard the fixes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ketasim.analysis.stats import compare, summarize
from ketasim.behavior.striatal import relative_hill, turning_rates
from ketasim.clinical.dyskinesia import (
    PatientDyskinesia,
    UdysrsParams,
    udysrs_items,
)
from ketasim.core.assay import AssayContext, resolve_options
from ketasim.experiment import runner
from ketasim.experiment.assays import ASSAYS
from ketasim.params import load_registry
from ketasim.params.regions import region_registry
from ketasim.scenario import load_scenario_text
from ketasim.scenario.loader import ScenarioError
from ketasim.signaling.dyskinesia import AIMS_MAX, aims_drive, aims_severity
from ketasim.signaling.protocol import ProtocolError

REG = load_registry()
ST = region_registry(REG, "striatum")
SUBTYPES = ("axial", "limb", "orolingual", "locomotive")
LESION = "{at: -21d, intervention: lesion_6ohda_mfb}"
PARTIAL = "{at: -21d, intervention: lesion_6ohda_intrastriatal}"
SHAM = "{at: -21d, drug: saline, route: sc}"


def _doses(days, mg_kg: float = 6.0) -> str:
    return "".join(f", {{at: {d}d, drug: ldopa, dose: {mg_kg:g} mg/kg, route: sc}}" for d in days)


def _scenario(arms, species: str = "rat", seed: int = 5) -> str:
    """Scenario text from ``(name, n, protocol, assays)`` tuples."""
    text = f"name: review\nspecies: {species}\nseed: {seed}\narms:\n"
    for name, n, protocol, assays in arms:
        text += (
            f"  - name: {name}\n    n: {n}\n    protocol: [{protocol}]\n    assays: [{assays}]\n"
        )
    return text


def _run(text: str, registry=REG, **kw) -> pd.DataFrame:
    return runner.simulate(load_scenario_text(text), registry=registry, **kw).readouts


# ------------------------------------------------------------------ hand-driven assays
def _ctx(
    assay: str,
    n: int,
    traj: dict,
    registry=ST,
    options=None,
    species: str = "rat",
    asked: dict | None = None,
    seed: int = 1,
) -> AssayContext:
    """An assay context whose signalling trajectories are ``traj`` (output -> a number,
    an (n, 1) array, or a function of the times), as the runner would hand them."""

    def trajectory(out, times):
        times = np.asarray(times, dtype=float)
        if asked is not None:
            asked.setdefault(out, []).append(times.copy())
        v = traj[out]
        v = v(times) if callable(v) else v
        return np.array(np.broadcast_to(np.asarray(v, dtype=float), (n, times.size)))

    return AssayContext(
        seed=seed,
        arm="a",
        assay=assay,
        subjects=np.arange(n),
        species=species,
        trajectory=trajectory,
        registry=registry,
        options=resolve_options(ASSAYS[assay], options or {}, "test"),
        region="striatum",
    )


def _measure(assay: str, ctx: AssayContext, at) -> pd.DataFrame:
    r = ASSAYS[assay].measure(ctx, np.asarray(at, dtype=float))
    long = pd.DataFrame(
        {"subject": r.subject, "readout": r.readout, "time_h": r.time_h, "value": r.value}
    )
    return long.pivot_table(
        index=["subject", "time_h"], columns="readout", values="value", dropna=False
    )


def _sev_params(reg, prefix="behavior.aims"):
    return {k: reg.value(f"{prefix}.{k}") for k in ("drive_50", "hill")}


def _rounded_mean(latent: float, sd: float) -> float:
    """E[clip(rint(L + e), 0, 4)], e ~ N(0, (sd min(L, 1))^2): the documented rating."""
    s = sd * min(latent, 1.0)
    k = np.arange(AIMS_MAX + 1)
    lo = norm.cdf((k - 0.5 - latent) / s)
    hi = norm.cdf((k + 0.5 - latent) / s)
    lo[0], hi[-1] = 0.0, 1.0
    return float((k * (hi - lo)).sum())


def test_aims_severity_is_a_hill_function_on_the_0_4_scale():
    p = _sev_params(ST)
    x = np.array([-1.0, 0.0, 0.1, p["drive_50"], 1.0, 3.0, 1e6])
    want = (
        AIMS_MAX
        * np.clip(x, 0, None) ** p["hill"]
        / (np.clip(x, 0, None) ** p["hill"] + p["drive_50"] ** p["hill"])
    )
    got = aims_severity(x, p)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == got[1] == 0.0 and got[3] == pytest.approx(AIMS_MAX / 2)
    assert np.all(np.diff(got[1:]) > 0) and got.max() <= AIMS_MAX
    # the drive: priming x the D1 signal above the threshold, in threshold units
    thr = ST.value("behavior.aims.d1_threshold")
    np.testing.assert_allclose(
        aims_drive(np.array([0.5, 1.0, 1.0]), np.array([3 * thr, thr, 0.5 * thr]), thr),
        [1.0, 0.0, 0.0],
    )


def test_aims_without_rater_noise_score_the_rounded_latent_severity():
    """animal_cv 0 and rater_sd 0: each subtype scores rint(severity(drive x weight)) in
    every period; the session sums the periods, ALO the first three subtypes, and the
    peak is the first of the tied periods."""
    reg = ST.with_values({"behavior.aims.animal_cv": 0.0, "behavior.aims.rater_sd": 0.0})
    thr = reg.value("behavior.aims.d1_threshold")
    periods = [20.0, 40.0, 60.0, 80.0]
    w = _measure(
        "aims",
        _ctx("aims", 3, {"lid_priming": 0.8, "d1_drive": 4.0}, reg, {"periods_min": periods}),
        [0.0, 24.0],
    )
    drive = 0.8 * (4.0 - thr) / thr
    per = {
        s: np.rint(aims_severity(drive * reg.value(f"behavior.aims.weight_{s}"), _sev_params(reg)))
        for s in SUBTYPES
    }
    assert sorted(set(per.values())) == [1.0, 2.0]  # latents 1.24-1.92: not all alike
    for s in SUBTYPES:
        np.testing.assert_array_equal(w[f"aims_{s}"], len(periods) * per[s])
    np.testing.assert_array_equal(w["aims_alo"], len(periods) * sum(per[s] for s in SUBTYPES[:3]))
    np.testing.assert_array_equal(w["aims_alo_peak_min"], periods[0])
    # no priming: nothing to see, nothing scored (even with the rater's noise), no peak
    w0 = _measure("aims", _ctx("aims", 20, {"lid_priming": 0.0, "d1_drive": 9.0}), [0.0])
    assert (w0[[f"aims_{s}" for s in SUBTYPES]] == 0).all().all()
    assert w0["aims_alo_peak_min"].isna().all()


@pytest.mark.parametrize("d1", [2.9, 3.5, 4.5])
def test_aims_rater_noise_gives_the_documented_expected_score(d1):
    """With the rater's noise (SD rater_sd x min(latent, 1)), rounding and clipping to
    0-4, the mean score per observation is the expectation of the rounded normal, within
    4 standard errors (400 animals x 5 periods, animal_cv 0)."""
    reg = ST.with_values({"behavior.aims.animal_cv": 0.0})
    thr = reg.value("behavior.aims.d1_threshold")
    n, periods = 400, [20.0, 40.0, 60.0, 80.0, 100.0]
    w = _measure(
        "aims",
        _ctx(
            "aims", n, {"lid_priming": 1.0, "d1_drive": d1}, reg, {"periods_min": periods}, seed=7
        ),
        [0.0],
    )
    drive = (d1 - thr) / thr
    for s in SUBTYPES:
        latent = float(
            aims_severity(drive * reg.value(f"behavior.aims.weight_{s}"), _sev_params(reg))
        )
        per_obs = w[f"aims_{s}"].to_numpy() / len(periods)
        want = _rounded_mean(latent, reg.value("behavior.aims.rater_sd"))
        se = max(per_obs.std(ddof=1), 0.05) / np.sqrt(n)
        assert abs(per_obs.mean() - want) < 4 * se, (s, latent, per_obs.mean(), want)
    assert ((w.drop(columns="aims_alo_peak_min") % 1) == 0).all().all()


def test_rotation_counts_turns_in_one_minute_bins_with_the_documented_sign():
    """Rates max_rate x Hill(asymmetry) contralateral for a positive D1 asymmetry and
    ipsilateral for a negative one; counts are Poisson over the window's 1-min bins from
    start_min (mid-points asked of the signalling layer); net = (contra - ipsi) / min."""
    reg = ST.with_values({"behavior.rotation.animal_cv": 0.0})
    p = {k: reg.value(f"behavior.rotation.{k}") for k in ("max_rate", "asym_50", "hill")}
    n, start, dur = 200, 5.0, 20.0
    asym = np.where(np.arange(n)[:, None] < n // 2, 1.5, -0.8)
    asked: dict = {}
    w = _measure(
        "rotation",
        _ctx(
            "rotation",
            n,
            {"d1_asymmetry": asym},
            reg,
            {"start_min": start, "duration_min": dur},
            asked=asked,
        ),
        [10.0],
    )
    np.testing.assert_allclose(
        (asked["d1_asymmetry"][0] - 10.0) * 60.0, start + 0.5 + np.arange(dur), atol=1e-9
    )
    contra, ipsi = turning_rates(np.array([1.5, -0.8]), p)
    for rows, c_rate, i_rate in (
        (slice(0, n // 2), contra[0], ipsi[0]),
        (slice(n // 2, n), contra[1], ipsi[1]),
    ):
        g = w.iloc[rows]
        for col, rate in (("contralateral_turns", c_rate), ("ipsilateral_turns", i_rate)):
            mean = rate * dur
            assert abs(g[col].mean() - mean) < 4 * np.sqrt(max(mean, 1e-9) / len(g)), col
        np.testing.assert_allclose(
            g["net_contralateral_turns_per_min"],
            (g["contralateral_turns"] - g["ipsilateral_turns"]) / dur,
        )
    assert contra[0] == pytest.approx(p["max_rate"] / 2)  # at asym_50
    assert (w.iloc[: n // 2]["ipsilateral_turns"] == 0).all()
    assert (w.iloc[n // 2 :]["net_contralateral_turns_per_min"] < 0).all()


def test_stepping_and_cylinder_follow_each_sides_dopamine_and_the_indirect_loss():
    """Stepping: Poisson per trial around steps_intact x relative Hill (contralateral paw:
    lesioned side x (1 - w x D2 spine loss); ipsilateral: intact side), means over the
    trials. Cylinder: binomial share of contacts around 50% x relative Hill x the same
    loss, 50% for an intact animal and never above."""
    reg = ST.with_values({"behavior.stepping.animal_cv": 0.0})
    ps = {k: reg.value(f"behavior.stepping.{k}") for k in ("da_50", "hill", "steps_intact")}
    wgt = reg.value("behavior.motor.d2_spine_weight")
    n, trials = 300, 4
    st = _measure(
        "stepping_test",
        _ctx(
            "stepping_test",
            n,
            {"da_rel": 0.39, "da_intact": 1.0, "spine_loss_d2": 0.5},
            reg,
            {"trials": trials},
        ),
        [0.0],
    )
    for col, lam in (
        (
            "stepping_contralateral_steps",
            ps["steps_intact"] * relative_hill(0.39, ps) * (1 - wgt * 0.5),
        ),
        ("stepping_ipsilateral_steps", ps["steps_intact"]),
    ):
        assert abs(st[col].mean() - lam) < 4 * np.sqrt(lam / trials / n), col
        np.testing.assert_allclose((st[col] * trials) % 1, 0.0, atol=1e-9)
    pc = {k: reg.value(f"behavior.cylinder.{k}") for k in ("da_50", "hill")}
    for da, loss in ((1.0, 0.0), (3.0, 0.0), (0.39, 0.59)):
        cyl = _measure(
            "cylinder_test",
            _ctx("cylinder_test", n, {"da_rel": da, "spine_loss_d2": loss}, reg, {"contacts": 20}),
            [0.0],
        )
        share = 0.5 * float(relative_hill(da, pc)) * (1 - wgt * loss)
        v = cyl["contralateral_use_pct"]
        assert abs(v.mean() - 100 * share) < 4 * 100 * np.sqrt(share * (1 - share) / 20 / n)
        np.testing.assert_allclose((v / 5) % 1, 0.0, atol=1e-9)  # whole contacts of 20
    assert share < 0.15  # a complete lesion at three weeks: 10-15% (REFERENCES-NEXT 3.4)


def _udysrs_registry():
    return ST.with_values(
        {
            "clinical.udysrs.item_noise_sd": 0.0,
            "clinical.rater_sd": 0.0,
            "clinical.rater_bias_sd": 0.0,
            "clinical.rater_drift_sd": 0.0,
        }
    )


def test_udysrs_items_follow_the_documented_rules_without_noise():
    """Constant priming, D1 signal and dopamine, no item or rater noise: item 1 is 4 (all
    waking time above on_severity), items 2-11 rint(impact_gain x severity x profile),
    item 12 like item 1 for off-dystonia (off_gain x (1 - dopamine) x priming x
    propensity against on_severity), items 13-15 rint(that severity x profile), Part 3 each
    region's rounded severity, Part 4 the activities' (x disability_weight), all 0-4."""
    reg = _udysrs_registry()
    v = UdysrsParams.from_registry(reg).values
    sev = _sev_params(reg, "clinical.udysrs")
    thr = reg.value("behavior.aims.d1_threshold")
    n, priming, d1, da = 20, 0.9, 4.0, 0.6
    ctx = _ctx(
        "udysrs", n, {"lid_priming": priming, "d1_drive": d1, "da_rel": da}, reg, species="human"
    )
    items = udysrs_items(ctx, np.array([7 * 24.0]))[:, 0]
    drive = priming * (d1 - thr) / thr
    for i in range(n):
        pt = PatientDyskinesia(ctx.rng(i, "udysrs_patient"), v)
        s = aims_severity(drive * pt.sensitivity, sev)
        want = np.concatenate(
            [
                [4.0 if s >= v["on_severity"] else 0.0],
                np.rint(np.clip(v["impact_gain"] * s * pt.impact, 0, 4)),
                # item 12: the share of waking time with off-dystonia (all or none here)
                [4.0 if v["off_gain"] * (1 - da) * priming * pt.off >= v["on_severity"]
                 else 0.0],
                np.rint(np.clip(v["off_gain"] * (1 - da) * priming * pt.off
                                * pt.off_items[1:], 0, 4)),
                np.rint(aims_severity(drive * pt.sensitivity * pt.regions, sev)),
                np.rint(
                    aims_severity(
                        drive * pt.sensitivity * v["disability_weight"] * pt.activities, sev
                    )
                ),
            ]
        )
        np.testing.assert_array_equal(items[i], want)
    assert items.min() >= 0 and items.max() <= 4 and items.sum(axis=1).max() <= 104


@pytest.mark.parametrize(
    "end_h, category", [(11.0, 1), (11.5, 2), (15.0, 2), (19.0, 3), (19.5, 4), (23.0, 4)]
)
def test_udysrs_item1_is_the_quartile_of_the_waking_day_with_dyskinesia(end_h, category):
    """Dyskinesia from 07:00 to ``end_h`` each day, and all night (not counted): item 1 is
    the quartile of the waking day (07:00-23:00) spent with it, 'up to 25%' inclusive."""
    reg = _udysrs_registry()
    assert (reg.value("clinical.udysrs.wake_h"), reg.value("clinical.udysrs.sleep_h")) == (
        7.0,
        23.0,
    )

    def d1(t):
        clock = np.mod(t, 24.0)
        on = ((clock >= 7.0) & (clock < end_h)) | (clock < 7.0) | (clock >= 23.0)
        return np.where(on, 6.0, 1.0)

    ctx = _ctx(
        "udysrs", 6, {"lid_priming": 1.0, "d1_drive": d1, "da_rel": 1.0}, reg, species="human"
    )
    items = udysrs_items(ctx, np.array([14 * 24.0]))[:, 0]
    np.testing.assert_array_equal(items[:, 0], category)


# -------------------------------------------------------------- the simulated LID course
@pytest.fixture(scope="module")
def lid():
    """Rats three weeks after a lesion (or sham), a week of daily L-DOPA (3, 6 or 12
    mg/kg) or saline; AIMs on the first and the eighth day."""
    aims = "{assay: aims, at: [0d, 7d]}"
    arms = [
        ("full", 16, LESION + _doses(range(8)), aims),
        ("low", 16, LESION + _doses(range(8), 3), aims),
        ("high", 16, LESION + _doses(range(8), 12), aims),
        ("partial", 16, PARTIAL + _doses(range(8)), aims),
        ("lesion_saline", 16, LESION + ", {at: 0d, drug: saline, route: sc}", aims),
        ("sham_ldopa", 16, SHAM + _doses(range(8)), aims),
    ]
    return _run(_scenario(arms, seed=23))


def _alo(r, arm, day=7):
    return r[(r.arm == arm) & (r.readout == "aims_alo") & (r.time_h == day * 24.0)]["value"]


def _below(a: pd.Series, b: pd.Series, k: float = 3.0) -> bool:
    """Mean of ``a`` below that of ``b`` by more than ``k`` standard errors of the
    difference."""
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return b.mean() - a.mean() > k * se


def test_no_dyskinesia_without_ldopa_or_without_a_lesion(lid):
    for arm in ("lesion_saline", "sham_ldopa"):
        a = lid[(lid.arm == arm) & (lid.assay == "aims")]
        assert len(a) == 16 * 2 * 6
        scores = a[a.readout != "aims_alo_peak_min"]["value"]
        assert (scores == 0).all(), arm
        assert a[a.readout == "aims_alo_peak_min"]["value"].isna().all()


def test_more_ldopa_gives_more_aims_in_expectation(lid):
    low, mid, high = _alo(lid, "low"), _alo(lid, "full"), _alo(lid, "high")
    assert _below(low, mid)
    assert _below(mid, high, 2)  # nearer the top of the scale: 2.4-6.6 SE over seeds 23-27
    # and more days of the same dose: the eighth day above the first
    assert _below(_alo(lid, "full", 0), mid)
    assert high.max() <= 12 * 9  # 9 periods, ALO at most 12 each


def test_a_partial_lesion_gives_less_aims_than_a_full_one(lid):
    assert _below(_alo(lid, "partial"), _alo(lid, "full"))


def test_ketamine_lowers_aims_and_mushroom_spines_and_its_blockers_remove_that():
    """F-LID-1/3/4: ketamine 5 x 20 mg/kg on the first L-DOPA day lowers the day-14 ALO
    and the density of mushroom spines on D1 neurons (not the density of all spines);
    rapamycin or ANA-12 given with it restore both (12 rats per arm, 2.5-SE bounds)."""
    ket = "".join(
        f", {{at: {h}h, drug: ketamine, dose: 20 mg/kg, route: ip}}" for h in (0, 2, 4, 6, 8)
    )
    sal = "".join(f", {{at: {h}h, drug: saline, route: ip}}" for h in (0, 2, 4, 6, 8))
    rapa = ", {at: -1h, drug: rapamycin, dose: 6 mg/kg, route: ip}"
    ana = (
        ", {at: -30min, drug: ana12, dose: 0.5 mg/kg, route: ip}, "
        "{at: 270min, drug: ana12, dose: 0.5 mg/kg, route: ip}"
    )
    assays = (
        "{assay: aims, at: [13d]}, "
        "{assay: fixed_tissue_spines, at: [14d], region: striatum, "
        "options: {cell: msn_d1}}"
    )
    ld = _doses(range(14))
    arms = [
        ("vehicle", 12, LESION + sal + ld, assays),
        ("ketamine", 12, LESION + ket + ld, assays),
        ("rapamycin", 12, LESION + rapa + ket + ld, assays),
        ("ana12", 12, LESION + ana + ket + ld, assays),
    ]
    r = _run(_scenario(arms, seed=11))

    def v(arm, readout):
        return r[(r.arm == arm) & (r.readout == readout)]["value"]

    for readout in ("aims_alo", "mushroom_density_per_10um"):
        assert _below(v("ketamine", readout), v("vehicle", readout), 2.5), readout
        for blocked in ("rapamycin", "ana12"):
            assert _below(v("ketamine", readout), v(blocked, readout), 2.5), (readout, blocked)
    dens = {a: v(a, "spine_density_per_10um").mean() for a in ("vehicle", "ketamine")}
    assert abs(dens["ketamine"] / dens["vehicle"] - 1) < 0.1  # fewer mushroom, not fewer


# ------------------------------------------------------------------- region handling
_MPFC = (
    "{assay: fixed_tissue_spines, at: [14d]}, {assay: western_blot, at: [13d]}, "
    "{assay: sucrose_preference, at: [14d]}"
)
_STRIATAL = (
    "{assay: fixed_tissue_spines, at: [14d], region: striatum, "
    "options: {cell: msn_d1}}, {assay: aims, at: [0d, 13d]}, "
    "{assay: rotation, at: [13d]}, {assay: cylinder_test, at: [12d]}, "
    "{assay: stepping_test, at: [12d]}"
)


def test_striatal_and_mpfc_assays_of_one_arm_leave_each_other_bit_identical():
    """The same lesioned rats on L-DOPA: their mPFC readouts (spines of mpfc_l5 included)
    are those of a run without the striatal assays, and their striatal readouts (spines of
    msn_d1 included) those of a run without the mPFC assays."""
    proto = LESION + _doses(range(14))

    def run(assays):
        return _run(_scenario([("a", 4, proto, assays)], seed=7)).reset_index(drop=True)

    mpfc, striatum, both = run(_MPFC), run(_STRIATAL), run(_MPFC + ", " + _STRIATAL)
    assert "region" not in mpfc.columns and set(striatum.region) == {"striatum"}
    pd.testing.assert_frame_equal(
        both[both.region == "mpfc"].drop(columns="region").reset_index(drop=True),
        mpfc,
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        both[both.region == "striatum"].reset_index(drop=True), striatum, check_exact=True
    )
    # the two spine populations differ as their regions do: priming enlarges D1 spines
    frac = both[both.readout == "mushroom_fraction"].groupby("region")["value"].mean()
    assert frac["striatum"] > frac["mpfc"] + 0.15


_OVERRIDE = (
    "\n- {name: region.striatum.behavior.aims.d1_threshold, value: 5.0, unit: '1', "
    "range: [1.5, 5.0], source: 'assumed: test', description: 'test'}\n"
)


def test_aims_read_the_striatal_registry():
    """A striatal value of behavior.aims.d1_threshold (region.striatum.*) is the one the
    AIMs use: a higher threshold, fewer AIMs; the mPFC (base) value is unchanged."""
    from importlib import resources

    from ketasim.params import parse_registry

    reg = parse_registry(
        (resources.files("ketasim.params") / "parameters.yaml").read_text() + _OVERRIDE
    )
    assert reg.value("behavior.aims.d1_threshold") == REG.value("behavior.aims.d1_threshold")
    assert region_registry(reg, "striatum").value("behavior.aims.d1_threshold") == 5.0
    text = _scenario([("a", 10, LESION + _doses(range(8)), "{assay: aims, at: [7d]}")])
    base = _run(text)
    high = _run(text, registry=reg)

    def alo(r):
        return r[r.readout == "aims_alo"]["value"]

    assert _below(alo(high), alo(base))


@pytest.mark.parametrize(
    "species, protocol, assay",
    [
        ("rat", LESION, "aims"),
        ("rat", LESION, "rotation"),
        ("rat", LESION, "stepping_test"),
        ("rat", LESION, "cylinder_test"),
        ("human", "{at: -150d, intervention: parkinson_disease}", "udysrs"),
    ],
)
def test_a_striatal_assay_in_mpfc_is_one_clear_error(species, protocol, assay):
    text = _scenario(
        [("a", 2, protocol, f"{{assay: {assay}, at: [0d], region: mpfc}}")], species=species
    )
    with pytest.raises(
        ScenarioError,
        match=rf"arms\[0\]\.assays\[0\]\.region: got 'mpfc'; "
        rf"expected a region that {assay} measures: "
        r"striatum",
    ):
        load_scenario_text(text)


# ------------------------------------------------------------------ patients (UDysRS)
_PD = "{at: -150d, intervention: parkinson_disease}"
_LD_HUMAN = ", ".join(
    f"{{at: {d * 24 + h}h, drug: ldopa, dose: 150 mg, route: oral}}"
    for d in range(15)
    for h in (7, 11, 15, 19)
)


def test_udysrs_leaves_madrs_alone_and_is_invariant_to_arm_order_and_chunks():
    arms = [
        ("p", 6, f"{_PD}, {_LD_HUMAN}", "{assay: madrs, at: [-1d, 14d]}"),
        ("q", 6, _LD_HUMAN, "{assay: madrs, at: [-1d, 14d]}"),
    ]
    both = [(n, k, p, a + ", {assay: udysrs, at: [-1d, 14d]}") for n, k, p, a in arms]
    alone = _run(_scenario(arms, species="human", seed=3)).reset_index(drop=True)
    with_u = _run(_scenario(both, species="human", seed=3))
    pd.testing.assert_frame_equal(
        with_u[with_u.region == "mpfc"].drop(columns="region").reset_index(drop=True),
        alone,
        check_exact=True,
    )
    swapped = _run(_scenario(both[::-1], species="human", seed=3), chunk_subjects=4)
    key = ["arm", "subject", "assay", "readout", "time_h"]
    pd.testing.assert_frame_equal(
        with_u.sort_values(key).reset_index(drop=True),
        swapped.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )
    u = with_u[(with_u.readout == "udysrs_total") & (with_u.time_h == 14 * 24.0)]
    assert u[u.arm == "p"]["value"].mean() > 5 and (u[u.arm == "q"]["value"] == 0).all()


# --------------------------------------------------------------------- spine cells
def test_striatal_spine_cells_sham_density_and_the_drives_each_reads():
    """Sham msn_d1 and msn_d2 densities are their parameters (Gagnon et al. 2017 sham: 6.4
    and 6.6 per 10 um) within 4 SE; after a lesion and two weeks of L-DOPA the D2
    neurons lose spines without enlarging them (size_drive_exp 0), the D1 neurons'
    spines enlarge (more mushroom spines)."""
    for cell, dens in (("msn_d1", 6.4), ("msn_d2", 6.6)):
        assert REG.value(f"spine.{cell}.density") * 10 == pytest.approx(dens)
    arms = []
    for cell in ("msn_d1", "msn_d2"):
        assays = (
            f"{{assay: fixed_tissue_spines, at: [14d], region: striatum, "
            f"options: {{cell: {cell}}}}}"
        )
        arms += [
            (f"sham_{cell}", 12, SHAM + _doses(range(14)), assays),
            (f"les_{cell}", 12, LESION + _doses(range(14)), assays),
        ]
    r = _run(_scenario(arms, seed=9))

    def v(arm, readout):
        return r[(r.arm == arm) & (r.readout == readout)]["value"]

    for cell in ("msn_d1", "msn_d2"):
        d = v(f"sham_{cell}", "spine_density_per_10um")
        target = REG.value(f"spine.{cell}.density") * 10
        assert abs(d.mean() - target) < 4 * d.std(ddof=1) / np.sqrt(len(d)), cell
    assert _below(
        v("les_msn_d2", "spine_density_per_10um"), v("sham_msn_d2", "spine_density_per_10um")
    )
    a, b = v("les_msn_d2", "mushroom_fraction"), v("sham_msn_d2", "mushroom_fraction")
    assert abs(a.mean() - b.mean()) < 3 * np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert _below(v("sham_msn_d1", "mushroom_fraction"), v("les_msn_d1", "mushroom_fraction"))


# ---------------------------------------------------------------------- lab path (NWB)
@pytest.mark.usefixtures("private_home")
def test_striatal_readouts_round_trip_through_nwb_to_the_same_statistics(tmp_path):
    """The run's striatal readouts (integer scores, NaN peaks of animals without AIMs,
    turns, shares, steps) written as NWB and read back as a lab's files give the same
    table, summary and comparisons."""
    from ketasim.io.nwb import read_nwb, write_nwb

    assays = (
        "{assay: aims, at: [0d, 7d], options: {periods_min: [20, 60, 100]}}, "
        "{assay: rotation, at: [7d], options: {duration_min: 30}}, "
        "{assay: cylinder_test, at: [-1d]}, {assay: stepping_test, at: [-1d]}"
    )
    text = _scenario(
        [
            ("lesion", 3, LESION + _doses(range(8)), assays),
            ("sham", 3, SHAM + _doses(range(8)), assays),
        ],
        seed=21,
    )
    text += (
        "compare:\n  - {readout: aims_alo, at: 7d, arms: [lesion, sham], "
        "test: mann_whitney}\n"
        "  - {readout: net_contralateral_turns_per_min, at: 7d, arms: [lesion, sham]}\n"
    )
    res = runner.simulate(load_scenario_text(text), registry=REG)
    assert res.readouts["value"].isna().any()  # the peaks of animals without AIMs
    back = read_nwb(write_nwb(res, tmp_path / "nwb", REG, scenario_text=text, assays=ASSAYS))
    pd.testing.assert_frame_equal(back, res.readouts)
    pd.testing.assert_frame_equal(summarize(back), summarize(res.readouts))
    pd.testing.assert_frame_equal(
        compare(back, res.scenario.compare), compare(res.readouts, res.scenario.compare)
    )


# ------------------------------------------------------------------------ invariances
def test_striatal_scores_same_seed_arm_order_and_chunks():
    assays = (
        "{assay: aims, at: [0d, 3d], options: {periods_min: [20, 60, 100]}}, "
        "{assay: rotation, at: [3d], options: {duration_min: 20}}, "
        "{assay: cylinder_test, at: [-1d, 3d]}, {assay: stepping_test, at: [-1d, 3d]}"
    )
    arms = [
        ("les", 5, LESION + _doses(range(4)), assays),
        ("sham", 5, SHAM + _doses(range(4)), assays),
    ]
    key = ["arm", "subject", "assay", "readout", "time_h"]

    def run(arm_list, seed=31, **kw):
        return _run(_scenario(arm_list, seed=seed), **kw).sort_values(key).reset_index(drop=True)

    a = run(arms)
    pd.testing.assert_frame_equal(a, run(arms), check_exact=True)
    pd.testing.assert_frame_equal(a, run(arms[::-1], chunk_subjects=2), check_exact=True)
    other = run(arms, seed=32)
    les = a.arm == "les"
    assert not np.allclose(a[les]["value"].fillna(-1), other[les]["value"].fillna(-1))


# ------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "species, protocol, assay, message",
    [
        (
            "rat",
            "{at: -21d, intervention: lesion_6ohda_foo}",
            "aims",
            (
                r"arms\[0\]\.protocol\[0\]\.intervention: got 'lesion_6ohda_foo'; expected one of "
                r"the interventions"
            ),
        ),
        (
            "rat",
            LESION + ", {at: 0d, drug: ldopa, dose: -6 mg/kg, route: sc}",
            "aims",
            r"arms\[0\]\.protocol\[1\]\.dose: got '-6 mg/kg'; expected a positive dose",
        ),
        (
            "rat",
            "{at: -21d, intervention: lesion_6ohda_mfb, duration: 2h}",
            "aims",
            r"arms\[0\]\.protocol\[0\]\.duration: got '2h'; expected no duration",
        ),
        (
            "human",
            _PD,
            "aims",
            (
                r"arms\[0\]\.assays\[0\]\.assay: got 'aims'; expected an assay "
                r"done in human subjects"
            ),
        ),
        ("human", _PD, "rotation", r"arms\[0\]\.assays\[0\]\.assay: got 'rotation'"),
        ("human", _PD, "stepping_test", r"arms\[0\]\.assays\[0\]\.assay: got 'stepping_test'"),
        ("human", _PD, "cylinder_test", r"arms\[0\]\.assays\[0\]\.assay: got 'cylinder_test'"),
        (
            "rat",
            LESION,
            "udysrs",
            (
                r"arms\[0\]\.assays\[0\]\.assay: got 'udysrs'; expected an "
                r"assay done in rat subjects \(udysrs is done in human\)"
            ),
        ),
        ("mouse", LESION, "udysrs", r"arms\[0\]\.assays\[0\]\.assay: got 'udysrs'"),
    ],
)
def test_bad_striatal_inputs_are_one_clear_error_naming_the_field(
    species, protocol, assay, message
):
    text = _scenario([("a", 2, protocol, f"{{assay: {assay}, at: [0d]}}")], species=species)
    with pytest.raises(ScenarioError, match=message):
        load_scenario_text(text)


# fixed (was BUG): a second 6-OHDA lesion after an MFB lesion regrows the destroyed
#   terminals (dopamine_lesion is set, not combined): 3% -> 19% of terminals, silently
def test_a_later_partial_lesion_does_not_regrow_the_terminals_of_an_earlier_full_one():
    """Terminals that one 6-OHDA lesion destroyed stay destroyed: an intrastriatal lesion
    two weeks after an MFB lesion leaves at most the MFB lesion's 3% of terminals (or the
    scenario is refused as one clear error naming the protocol)."""
    two = (
        "{at: -28d, intervention: lesion_6ohda_mfb}, "
        "{at: -14d, intervention: lesion_6ohda_intrastriatal}"
    )
    text = _scenario([("a", 1, two, "{assay: signaling_state, at: [-15d, -1d], region: striatum}")])
    try:
        r = _run(text)
    except (ScenarioError, ProtocolError) as e:
        assert "protocol" in str(e)
        return
    t = r[r.readout == "da_terminals"].set_index("time_h")["value"]
    assert t[-15 * 24.0] == pytest.approx(1 - REG.value("lesion.mfb_6ohda_extent"), abs=2e-3)
    assert t[-1 * 24.0] <= t[-15 * 24.0] + 1e-6


@pytest.mark.parametrize(
    ("species", "intervention"),
    [("rat", "parkinson_disease"), ("human", "lesion_6ohda_mfb"), ("human", "drd1_cko")],
)
def test_an_intervention_in_a_species_it_is_not_done_in_is_one_clear_error(species, intervention):
    """Parkinson's disease is a patients' condition, 6-OHDA lesions and genetic tools are
    done in rodents: each was accepted in the other species without a word."""
    text = (
        f"name: t\nspecies: {species}\nseed: 1\narms:\n  - name: a\n    n: 2\n"
        f"    protocol:\n      - {{at: -30d, intervention: {intervention}}}\n"
    )
    with pytest.raises(ScenarioError, match=rf"arms\[0\]\.protocol.*{intervention}.*done in"):
        load_scenario_text(text)


def test_a_striatal_spine_assay_images_striatal_cells():
    """Left out, ``cell`` is the region's first (msn_d1 in the striatum; it was the mPFC's
    mpfc_l5, cortical cells carrying the striatal priming); a cell of another region is
    one error naming the option."""
    from ketasim.core.assay import AssayOptionError

    lesion = "{at: -21d, intervention: lesion_6ohda_mfb}"
    default = _run(
        _scenario([("a", 2, lesion, "{assay: fixed_tissue_spines, at: [0d], region: striatum}")])
    )
    named = _run(
        _scenario(
            [
                (
                    "a",
                    2,
                    lesion,
                    "{assay: fixed_tissue_spines, at: [0d], region: striatum, options: {cell: msn_d1}}",
                )
            ]
        )
    )
    pd.testing.assert_frame_equal(default, named)
    with pytest.raises(AssayOptionError, match=r"assays\[0\]\.options\.cell.*striatum"):
        _run(
            _scenario(
                [
                    (
                        "a",
                        2,
                        lesion,
                        "{assay: fixed_tissue_spines, at: [0d], region: striatum, options: {cell: mpfc_l5}}",
                    )
                ]
            )
        )
