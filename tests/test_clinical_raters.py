"""The clinical rating layer (issue 14, item 4): HDRS-17 and the self-rated QIDS-SR16 from
the same symptom load as MADRS, and raters as people (a pool per arm, one rater per
patient, a persistent bias and a drift on top of the per-visit shift)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import ketasim.clinical.assays as clinical_assays
from ketasim import simulate
from ketasim.analysis.trial import HDRS17, MADRS, QIDS_SR16, Item, Scale, remission
from ketasim.clinical.assays import SCALE_READOUTS, assigned_rater, rater_rng
from ketasim.clinical.model import ClinicalParams, Rater, item_scores, rate_items
from ketasim.core.assay import AssayOptionError
from ketasim.experiment.trial import analyse_trial
from ketasim.params import load_registry
from ketasim.scenario import TRIAL_SCALES, load_scenario_text

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: 0h, drug: saline, route: iv}"
VISITS = "[-1d, 24h, 72h, 7d, 14d]"


def _scenario(n: int, assays: str, arms=(("ketamine", KET),), seed: int = 7,
              design: str = "") -> str:
    body = "".join(f"  - name: {name}\n    n: {n}\n    protocol: [{DEP}, {drug}]\n"
                   f"    assays: [{assays}]\n" for name, drug in arms)
    return f"name: raters\nspecies: human\nseed: {seed}\narms:\n{body}{design}"


def _run(text: str, registry=REG) -> pd.DataFrame:
    return simulate(load_scenario_text(text), registry=registry).readouts


def _wide(r: pd.DataFrame) -> pd.DataFrame:
    return r.pivot_table(index=["arm", "subject", "time_h"], columns="readout",
                         values="value")


@pytest.fixture(scope="module")
def scored():
    """Depressed patients given ketamine, rated on all three depression scales."""
    return _run(_scenario(30, f"{{assay: madrs, at: {VISITS}}}, "
                              f"{{assay: hdrs17, at: {VISITS}}}, "
                              f"{{assay: qids_sr, at: {VISITS}}}"))


class _Capture:
    """Wraps ``item_scores`` in the assays module (the clinician-rated scales rate all
    of a chunk's visits in one call): records each rating's arguments, patient by
    patient and visit by visit (and may replace its result), so a test sees the latent
    totals and item ranges of a run."""

    def __init__(self, replace=None):
        self.calls: list[dict] = []
        self.replace = replace

    def __call__(self, latent_total, profile, item_max, item_min, noise, rater_effect):
        lead = noise.shape[:-1]
        latent = np.broadcast_to(latent_total, noise.shape)
        prof = np.broadcast_to(profile, noise.shape)
        shift = np.broadcast_to(rater_effect, noise.shape)
        for ix in np.ndindex(*lead):
            self.calls.append({"latent": float(latent[ix][0]), "profile": prof[ix].copy(),
                               "hi": item_max.copy(), "lo": item_min.copy(),
                               "shift": float(shift[ix][0])})
        if self.replace is not None:
            return np.broadcast_to(self.replace(item_max.size), noise.shape).copy()
        return item_scores(latent_total, profile, item_max, item_min, noise, rater_effect)


# ------------------------------------------------------------------ HDRS-17
def test_hdrs17_is_rated_item_by_item_within_each_items_range(monkeypatch):
    """The assay rates the 17 items with their own ranges (nine 0-4, eight 0-2) and
    reports item 3 as the suicide item: with items scored as their own numbers, the
    suicide readout is 3 and the total the sum 1..17."""
    cap = _Capture(replace=lambda k: np.arange(1.0, k + 1))
    monkeypatch.setattr(clinical_assays, "item_scores", cap)
    r = _run(_scenario(2, "{assay: hdrs17, at: [-1d, 24h]}"))
    hi = np.array([it.high for it in HDRS17.items], float)
    assert len(cap.calls) == 4
    for c in cap.calls:
        np.testing.assert_array_equal(c["hi"], hi)
        np.testing.assert_array_equal(c["lo"], np.zeros(17))
    assert sorted(np.flatnonzero(hi == 4) + 1) == [1, 2, 3, 7, 8, 9, 10, 11, 15]
    v = r.set_index("readout")["value"]
    assert set(v["hdrs17_suicide_item"]) == {3.0}
    assert set(v["hdrs17_total"]) == {float(sum(range(1, 18)))}


def test_hdrs17_scores_are_integers_in_range(scored):
    w = _wide(scored)
    tot, sui = w["hdrs17_total"].to_numpy(), w["hdrs17_suicide_item"].to_numpy()
    assert np.all(tot == np.rint(tot)) and np.all(sui == np.rint(sui))
    assert tot.min() >= 0 and tot.max() <= 52 and sui.min() >= 0 and sui.max() <= 4
    assert np.all(sui <= tot) and sui.max() > sui.min()


def test_madrs_and_hdrs17_follow_the_same_symptom_load(scored):
    """Across patients and visits the two totals correlate highly, and at baseline their
    ratio is that of the published equivalence (MADRS <= 10 with HDRS-17 <= 7: 1.43);
    the QIDS-SR16 sits at about 0.75 of HDRS-17 (QIDS <= 5 with HDRS-17 <= 7)."""
    w = _wide(scored)
    r = np.corrcoef(w["madrs_total"], w["hdrs17_total"])[0, 1]
    assert r > 0.8, r
    base = w.xs(-24.0, level="time_h")
    ratio = base["madrs_total"].mean() / base["hdrs17_total"].mean()
    assert 1.25 < ratio < 1.65, ratio
    q = base["qids_sr_total"].mean() / base["hdrs17_total"].mean()
    assert 0.6 < q < 0.9, q
    assert np.corrcoef(w["madrs_total"], w["qids_sr_total"])[0, 1] > 0.7
    # and they change together: ketamine lowers all three at 24 h
    day1 = w.xs(24.0, level="time_h")
    for k in ("madrs_total", "hdrs17_total", "qids_sr_total"):
        assert day1[k].mean() < 0.75 * base[k].mean(), k


# ------------------------------------------------------------------ QIDS-SR16
def test_qids_domain_max_scoring_on_hand_made_items():
    items = np.zeros(16)
    items[[0, 1, 2, 3]] = [1, 3, 0, 2]      # sleep: max 3
    items[4] = 2                            # sad mood
    items[[5, 6, 7, 8]] = [0, 2, 1, 0]      # appetite/weight: max 2
    items[9:14] = [1, 0, 3, 2, 1]           # concentration .. energy
    items[[14, 15]] = [1, 2]                # psychomotor: max 2
    assert QIDS_SR16.total(items) == 3 + 2 + 2 + (1 + 0 + 3 + 2 + 1) + 2 == 16
    assert items.sum() == 21  # a plain sum would differ
    both = np.stack([items, np.full(16, 3.0)])
    np.testing.assert_array_equal(QIDS_SR16.total(both), [16.0, 27.0])
    assert (QIDS_SR16.total_min, QIDS_SR16.total_max, QIDS_SR16.n_items) == (0, 27, 16)
    assert QIDS_SR16.suicide_item == 12 and QIDS_SR16.item(12).high == 3
    assert remission(5, QIDS_SR16) and not remission(6, QIDS_SR16)
    assert QIDS_SR16.severity(21) == "very severe" and QIDS_SR16.severity(5) == "none"
    # scales without domains still sum their items
    assert MADRS.total(np.full(10, 2.0)) == 20
    bad = items.copy()
    bad[6] = 4
    with pytest.raises(ValueError, match=r"item 7 \(appetite increased\) must be 0-3"):
        QIDS_SR16.total(bad)
    with pytest.raises(ValueError, match="16 QIDS-SR16 item scores"):
        QIDS_SR16.total(np.zeros(9))
    with pytest.raises(ValueError, match="every item exactly once"):
        Scale("x", "X", (Item(1, "a", 3), Item(2, "b", 3)), domains=(("d", (1,)),))


def test_qids_sr_totals_are_domain_scored_and_in_range(scored):
    v = scored.loc[scored.readout == "qids_sr_total", "value"].to_numpy()
    assert v.size == 150 and np.all(v == np.rint(v)) and v.min() >= 0 and v.max() <= 27
    items = clinical_assays.qids_items(
        12.0, clinical_assays._traits(_Ctx(), 0, ClinicalParams.from_registry(REG)),
        np.random.default_rng(0), ClinicalParams.from_registry(REG))
    assert items.shape == (16,) and items.min() >= 0 and items.max() <= 3


class _Ctx:
    """The least of an AssayContext that the traits need."""

    def rng(self, i, key):
        return np.random.default_rng([i, len(key)])


def test_qids_self_report_has_no_rater():
    """The self-report is not rated: its numbers do not depend on the rater pool of the
    clinician scales, and QIDS takes no ``raters`` option."""
    a = _run(_scenario(4, "{assay: qids_sr, at: [-1d, 24h]}, "
                          "{assay: madrs, at: [-1d, 24h], options: {raters: 1}}"))
    b = _run(_scenario(4, "{assay: qids_sr, at: [-1d, 24h]}, "
                          "{assay: madrs, at: [-1d, 24h], options: {raters: 7}}"))
    qa, qb = (x[x.readout == "qids_sr_total"]["value"].to_numpy() for x in (a, b))
    np.testing.assert_array_equal(qa, qb)
    with pytest.raises(AssayOptionError, match="options.raters"):
        _run(_scenario(2, "{assay: qids_sr, at: [-1d], options: {raters: 2}}"))


# ------------------------------------------------------------------ trials on the new scales
@pytest.mark.parametrize("readout, cutoff", [("hdrs17_total", 7), ("qids_sr_total", 5)])
def test_a_trial_can_analyse_the_new_scales(readout, cutoff):
    assay = SCALE_READOUTS[readout][0]
    assert TRIAL_SCALES[readout].remission_max == cutoff
    design = (f"design:\n  control: placebo\n  scale: {readout}\n  baseline: -1d\n"
              "  primary: 24h\n")
    text = _scenario(12, f"{{assay: {assay}, at: [-1d, 24h, 72h]}}",
                     arms=(("placebo", SAL), ("ketamine", KET)), design=design)
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    t = analyse_trial(sc, r.readouts, r.disposition)
    rem = t.endpoints[(t.endpoints.endpoint == "remission") & (t.endpoints.visit_h == 24.0)]
    assert set(rem["rule"]) == {f"{readout} <= {cutoff}"}
    day1 = r.readouts[(r.readouts.readout == readout) & (r.readouts.time_h == 24.0)]
    expected = (day1["value"] <= cutoff).groupby(day1["arm"]).sum()
    for _, row in rem.iterrows():
        assert row["events"] == expected[row["arm"]]
    assert set(t.trial["scale"]) == {readout}


# ------------------------------------------------------------------ raters
def test_two_raters_of_the_same_interview_differ_by_the_published_amount(monkeypatch):
    """Two different raters (each with their own bias, drift and visit shift, and their
    own item noise) score the same simulated MADRS interviews: their totals differ by
    1.78 points on average (site vs blinded independent raters, 95% CI 1.50-2.06;
    REFERENCES-NEXT 2.2). A per-visit SD of 0 with no bias, or twice the rater SDs and
    item noise, would leave this range (about 1.45 and above 2.3)."""
    cap = _Capture()
    monkeypatch.setattr(clinical_assays, "item_scores", cap)
    _run(_scenario(30, f"{{assay: madrs, at: {VISITS}}}",
                   arms=(("ketamine", KET), ("placebo", SAL))))
    p = ClinicalParams.from_registry(REG)
    times = np.tile([-24.0, 24.0, 72.0, 168.0, 336.0], 60)  # the visits, in call order
    hi, lo = np.full(10, 6.0), np.zeros(10)
    g = np.random.default_rng(2024)
    diffs = []
    for c, t in zip(cap.calls, times):
        for _ in range(10):
            a, b = Rater(g, p), Rater(g, p)
            ra = rate_items(c["latent"], c["profile"], hi, lo, g, p,
                            a.shift(t, g.standard_normal(), p)).sum()
            rb = rate_items(c["latent"], c["profile"], hi, lo, g, p,
                            b.shift(t, g.standard_normal(), p)).sum()
            diffs.append(abs(ra - rb))
    assert len(cap.calls) == 300
    mad = float(np.mean(diffs))
    assert 1.55 < mad < 2.0, mad


def test_patients_of_one_rater_share_its_bias(monkeypatch):
    """With one rater for two patients' visits the residual (rated total minus latent
    total) of patients of the same rater is shared: the rater explains most of the
    spread of the patients' mean residuals, and each rater's mean residual is its own
    bias, drawn from the rater's stream. Without a rater bias the raters explain
    nothing."""
    reg = REG.with_values({"clinical.rater_bias_sd": 3.0})

    def residuals(registry):
        cap = _Capture()
        monkeypatch.setattr(clinical_assays, "item_scores", cap)
        r = _run(_scenario(24, f"{{assay: madrs, at: {VISITS}, options: {{raters: 3}}}}"),
                 registry)
        m = r[r.readout == "madrs_total"].sort_values(["subject", "time_h"])
        res = m["value"].to_numpy() - np.array([c["latent"] for c in cap.calls])
        per_patient = res.reshape(24, 5).mean(axis=1)
        ctx = _SubjectCtx(7, "ketamine")
        raters = np.array([assigned_rater(ctx, i, 3) for i in range(24)])
        return [per_patient[raters == k] for k in range(3)]

    groups = residuals(reg)
    assert all(len(gr) >= 3 for gr in groups)
    assert sps.f_oneway(*groups).pvalue < 1e-4
    p = ClinicalParams.from_registry(reg)
    for k, gr in enumerate(groups):
        bias = Rater(rater_rng(7, "ketamine", k), p).bias
        assert abs(gr.mean() - bias) < 0.6, (k, gr.mean(), bias)
    # the control: no rater bias, no shared residual
    groups0 = residuals(REG.with_values({"clinical.rater_bias_sd": 0.0,
                                               "clinical.rater_drift_sd": 0.0}))
    assert sps.f_oneway(*groups0).pvalue > 1e-3


class _SubjectCtx:
    """Per-subject streams as an arm's AssayContext has them."""

    def __init__(self, seed, arm):
        self.seed, self.arm = seed, arm

    def rng(self, i, part):
        from ketasim.core.streams import assay_rng
        return assay_rng(self.seed, self.arm, i, part)


def test_adding_a_patient_changes_no_other_rating():
    assays = (f"{{assay: madrs, at: {VISITS}}}, {{assay: hdrs17, at: {VISITS}}}, "
              "{assay: qids_sr, at: [-1d, 24h]}, {assay: cadss, at: [0h, 40min]}, "
              "{assay: bprs_positive, at: [0h, 40min]}")
    a = _run(_scenario(5, assays))
    b = _run(_scenario(6, assays))
    key = ["subject", "readout", "time_h"]
    va = a.set_index(key)["value"].sort_index()
    vb = b[b.subject < 5].set_index(key)["value"].sort_index()
    pd.testing.assert_series_equal(va, vb)
    # and the rater pool: rater 0's bias is the same whatever the pool size or arm size
    p = ClinicalParams.from_registry(REG)
    assert Rater(rater_rng(7, "ketamine", 0), p).bias == \
        Rater(rater_rng(7, "ketamine", 0), p).bias != Rater(rater_rng(7, "ketamine", 1), p).bias


@pytest.mark.parametrize("assay", ["madrs", "hdrs17", "cadss", "bprs_positive"])
@pytest.mark.parametrize("bad, says", [(0, "> 0"), (-1, "non-negative"),
                                       ('"x"', "non-negative"), (2.5, "whole number")])
def test_a_bad_raters_option_is_one_clear_error(assay, bad, says):
    text = _scenario(2, f"{{assay: {assay}, at: [-1d, 24h], options: {{raters: {bad}}}}}")
    with pytest.raises(AssayOptionError) as err:
        _run(text)
    msg = str(err.value)
    assert "arms[0].assays[0].options.raters" in msg and says in msg
    assert "\n" not in msg
