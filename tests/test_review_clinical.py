"""Review of the clinical rating assays (MADRS, HDRS-17, QIDS-SR16, CADSS, BPRS positive,
MOAA/S): item ranges, totals and subscales, floors, reproducibility, chunk-size
independence, rater effects and clipping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ketasim.clinical.assays as ca
from ketasim import simulate
from ketasim.analysis.trial import BPRS, CADSS, HDRS17, MADRS, QIDS_SR16
from ketasim.clinical.model import (
    RATER_DRIFT_PERIOD_H,
    ClinicalParams,
    Rater,
    item_scores,
    rate_domains,
)
from ketasim.core.streams import assay_rng
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()
P = ClinicalParams.from_registry(REG)
DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
MID = "{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}"
VISITS = "[-1d, 40min, 2h, 24h, 7d]"
ASSAYS = ("madrs", "hdrs17", "qids_sr", "cadss", "bprs_positive", "sedation")
SEED = 3


def _scenario(n: int = 6, assays=ASSAYS, visits: str = VISITS, seed: int = SEED) -> str:
    arms = (("dep_ket", f"[{DEP}, {KET}]"), ("healthy", "[]"),
            ("healthy_mid", f"[{MID}]"))
    a = ", ".join(f"{{assay: {x}, at: {visits}}}" for x in assays)
    body = "".join(f"  - name: {name}\n    n: {n}\n    protocol: {p}\n    assays: [{a}]\n"
                   for name, p in arms)
    return f"name: review\nspecies: human\nseed: {seed}\narms:\n{body}"


def _run(text: str, **kw) -> pd.DataFrame:
    r = simulate(load_scenario_text(text), registry=REG, **kw).readouts
    return r.sort_values(["arm", "subject", "assay", "readout", "time_h"]).reset_index(
        drop=True)


@pytest.fixture(scope="module")
def rated():
    return _run(_scenario())


def _wide(r: pd.DataFrame) -> pd.DataFrame:
    return r.pivot_table(index=["arm", "subject", "time_h"], columns="readout",
                         values="value")


RANGES = {"madrs_total": (0, 60), "madrs_suicide_item": (0, 6), "madrs_anhedonia": (0, 30),
          "hdrs17_total": (0, 52), "hdrs17_suicide_item": (0, 4), "qids_sr_total": (0, 27),
          "cadss_total": (0, 92), "bprs_positive": (4, 28), "moaas": (0, 5)}


def test_every_readout_is_an_integer_within_its_scales_range(rated):
    w = _wide(rated)
    assert set(w.columns) == set(RANGES)
    for readout, (lo, hi) in RANGES.items():
        v = w[readout].to_numpy()
        assert np.all(np.isfinite(v)), readout
        assert np.all(v == np.rint(v)), readout
        assert v.min() >= lo and v.max() <= hi, (readout, v.min(), v.max())
    assert np.all(w["madrs_suicide_item"] + w["madrs_anhedonia"] <= w["madrs_total"])
    assert np.all(w["hdrs17_suicide_item"] <= w["hdrs17_total"])


def test_readout_ranges_match_the_scale_definitions():
    assert (MADRS.total_min, MADRS.total_max, MADRS.n_items) == (0, 60, 10)
    assert MADRS.subscale("anhedonia") == (1, 2, 6, 7, 8) and MADRS.suicide_item == 10
    assert (HDRS17.total_min, HDRS17.total_max, HDRS17.suicide_item) == (0, 52, 3)
    assert sorted(it.high for it in HDRS17.items) == [2] * 8 + [4] * 9
    assert (QIDS_SR16.total_min, QIDS_SR16.total_max, QIDS_SR16.n_items) == (0, 27, 16)
    assert (CADSS.total_min, CADSS.total_max, CADSS.n_items) == (0, 92, 23)
    pos = [BPRS.item(k) for k in BPRS.subscale("positive")]
    assert [(it.low, it.high) for it in pos] == [(1, 7)] * 4
    from ketasim.scenario import TRIAL_SCALES
    for readout, (lo, hi) in RANGES.items():
        if readout in TRIAL_SCALES:
            t = TRIAL_SCALES[readout]
            assert (t.low, t.high) == (lo, hi), readout


def test_healthy_untreated_subjects_score_near_the_floor(rated):
    w = _wide(rated).xs("healthy", level="arm")
    assert abs(w["madrs_total"].mean() - P.values["madrs_floor"]) < 1.5
    assert abs(w["hdrs17_total"].mean() - P.values["hdrs17_floor"]) < 1.5
    assert w["qids_sr_total"].mean() < 4
    assert w["cadss_total"].mean() < 3 and w["bprs_positive"].mean() < 5
    assert set(w["moaas"]) == {5.0}


def test_ratings_are_reproducible_and_independent_of_chunk_size(rated):
    pd.testing.assert_frame_equal(rated, _run(_scenario()))
    pd.testing.assert_frame_equal(rated, _run(_scenario(), chunk_subjects=4))
    pd.testing.assert_frame_equal(rated, _run(_scenario(), chunk_subjects=1))
    other = _run(_scenario(seed=SEED + 1))
    assert not np.array_equal(rated["value"], other["value"])


class _Capture:
    """Wraps the assays' ``item_scores``: records each rating (patient, visit) and may
    replace the item scores."""

    def __init__(self, replace=None):
        self.calls: list[dict] = []
        self.replace = replace

    def __call__(self, latent_total, profile, item_max, item_min, noise, rater_effect):
        shift = np.broadcast_to(rater_effect, noise.shape)
        latent = np.broadcast_to(latent_total, noise.shape)
        for ix in np.ndindex(*noise.shape[:-1]):
            self.calls.append({"ix": ix, "hi": item_max.copy(), "lo": item_min.copy(),
                               "shift": float(shift[ix][0]),
                               "latent": float(latent[ix][0])})
        if self.replace is not None:
            return np.broadcast_to(self.replace(item_max.size), noise.shape).copy()
        return item_scores(latent_total, profile, item_max, item_min, noise, rater_effect)


@pytest.mark.parametrize(("assay", "expect"), [
    ("madrs", {"madrs_total": 55.0, "madrs_suicide_item": 10.0,
               "madrs_anhedonia": 1.0 + 2 + 6 + 7 + 8}),
    ("hdrs17", {"hdrs17_total": float(sum(range(1, 18))), "hdrs17_suicide_item": 3.0}),
    ("cadss", {"cadss_total": float(sum(range(1, 24)))}),
    ("bprs_positive", {"bprs_positive": 10.0}),
])
def test_totals_and_subscales_are_the_documented_items(monkeypatch, assay, expect):
    """With each item scored as its own position, every readout is the sum of the
    documented item numbers."""
    monkeypatch.setattr(ca, "item_scores", _Capture(replace=lambda k: np.arange(1.0, k + 1)))
    r = _run(_scenario(2, assays=(assay,), visits="[-1d, 24h]"))
    for readout, value in expect.items():
        assert set(r.loc[r["readout"] == readout, "value"]) == {value}, readout


def test_qids_total_is_the_sum_of_domain_maxima(monkeypatch):
    items = np.array([3, 0, 1, 2, 2, 0, 1, 3, 0, 1, 2, 0, 3, 1, 0, 2], float)
    assert QIDS_SR16.total(items) == 3 + 2 + 3 + 1 + 2 + 0 + 3 + 1 + 2
    monkeypatch.setattr(ca, "qids_items", lambda *a, **k: items.copy())
    r = _run(_scenario(2, assays=("qids_sr",), visits="[-1d, 24h]"))
    assert set(r["value"]) == {17.0}


@pytest.mark.parametrize("assay", ["madrs", "hdrs17", "bprs_positive", "cadss"])
def test_rater_shift_is_bias_plus_drift_plus_visit_shift_scaled_to_the_range(
        monkeypatch, assay):
    """Each rating's shift is span x (bias + drift x t / 4 weeks + rater_sd x z): the
    rater assigned from the patient's stream "clinical_rater", its bias and drift from
    the rater's stream, z the first normal of the visit's stream (of its "/rater"
    stream for the psychotomimetic scales), span the rated range / 60."""
    cap = _Capture()
    monkeypatch.setattr(ca, "item_scores", cap)
    at = [-24.0, 24.0, 168.0]
    n = 3
    _run(_scenario(n, assays=(assay,), visits="[-1d, 24h, 7d]"))
    span = {"madrs": 1.0, "hdrs17": 52 / 60, "bprs_positive": 24 / 60,
            "cadss": 92 / 60}[assay]
    v = P.values
    arms = ["dep_ket", "healthy", "healthy_mid"]
    assert len(cap.calls) == len(arms) * n * len(at)
    for k, c in enumerate(cap.calls):
        arm = arms[k // (n * len(at))]
        i, j = c["ix"]
        assert np.isclose((c["hi"] - c["lo"]).sum() / 60, span)
        r = int(assay_rng(SEED, arm, i, "clinical_rater").integers(ca.RATERS))
        rater = Rater(ca.rater_rng(SEED, arm, r), P)
        key = f"{assay}@{at[j]:.6g}h"
        if assay in ("cadss", "bprs_positive"):
            key += "/rater"
        z = assay_rng(SEED, arm, i, key).standard_normal()
        want = span * (rater.bias + rater.drift * at[j] / RATER_DRIFT_PERIOD_H
                       + v["rater_sd"] * z)
        assert np.isclose(c["shift"], want, rtol=1e-12, atol=1e-12), (arm, i, j)


def test_a_rater_shift_moves_the_total_by_that_many_points_before_rounding():
    """Without noise, the rater's shift adds its points to the unrounded total, spread
    over the items in proportion to their ranges."""
    lo, hi = np.zeros(17), np.array([it.high for it in HDRS17.items], float)
    prof = np.ones(17)
    span = hi - lo
    base = lo + 20.0 * prof * span / span.sum()
    shifted = base + 3.0 * span / span.sum()
    np.testing.assert_allclose(shifted.sum() - base.sum(), 3.0)
    got = item_scores(20.0, prof, hi, lo, np.zeros(17), 3.0)
    np.testing.assert_array_equal(got, np.clip(np.rint(shifted), lo, hi))


@pytest.mark.parametrize("scale", [MADRS, HDRS17, CADSS])
@pytest.mark.parametrize("latent", [-1e6, -100.0, 0.0, 1e3, 1e9, np.inf, -np.inf])
def test_a_latent_total_outside_the_range_is_clipped_not_wrapped(scale, latent):
    lo = np.array([it.low for it in scale.items], float)
    hi = np.array([it.high for it in scale.items], float)
    rng = np.random.default_rng(0)
    prof = rng.dirichlet(np.full(lo.size, 8.0)) * lo.size
    noise = rng.normal(0.0, 0.32, lo.size)
    for shift in (-1e6, 0.0, 1e6):
        got = item_scores(latent, prof, hi, lo, noise, shift)
        assert np.all((got >= lo) & (got <= hi))
        assert np.all(got == np.rint(got))
        total = latent + shift
        if total >= 1e3:
            np.testing.assert_array_equal(got, hi)
        elif total <= -100:
            np.testing.assert_array_equal(got, lo)


def test_bprs_items_are_clipped_at_their_floor_of_one():
    pos = [BPRS.item(k) for k in BPRS.subscale("positive")]
    lo = np.array([it.low for it in pos], float)
    hi = np.array([it.high for it in pos], float)
    np.testing.assert_array_equal(item_scores(-50.0, np.ones(4), hi, lo, np.zeros(4), 0.0),
                                  [1, 1, 1, 1])
    np.testing.assert_array_equal(item_scores(500.0, np.ones(4), hi, lo, np.zeros(4), 0.0),
                                  [7, 7, 7, 7])
    np.testing.assert_array_equal(item_scores(0.0, np.ones(4), hi, lo, np.zeros(4), 0.0),
                                  [1, 1, 1, 1])


def test_qids_domain_items_are_integers_in_0_to_3_for_any_latent():
    rng = np.random.default_rng(1)
    sizes = [len(ks) for _, ks in QIDS_SR16.domains]
    prof = rng.dirichlet(np.full(9, 8.0)) * 9
    pats = [(w := rng.dirichlet(np.ones(k))) / w.max() for k in sizes]
    for latent in (-1e6, -5.0, 0.0, 13.0, 27.0, 1e6):
        doms = rate_domains(latent, prof, pats, 3.0, rng, P)
        items = np.concatenate(doms)
        assert np.all((items >= 0) & (items <= 3) & (items == np.rint(items)))
        if latent >= 1e6:
            assert all(d.max() == 3 for d in doms)
        if latent <= -1e6:
            assert all(d.max() == 0 for d in doms)


def test_moaas_is_within_0_to_5_and_falls_with_concentration():
    conc = np.array([0.0, 1.0, 10.0, 100.0, 1e4, 1e8])
    m = ca.moaas_latent(conc, np.ones(conc.size), P)
    assert m[0] == 5.0 and np.all(np.diff(m) <= 0) and np.all((m >= 0) & (m <= 5))
    assert m[-1] < 0.5
    both = ca.moaas_latent(np.array([0.0]), np.ones(1), P, shutdown=np.array([1.0]))
    assert 0 <= both[0] < 5


def test_hdrs17_unrounded_total_is_the_latent_total_for_any_profile():
    """item_scores shared the latent total as profile x range / sum(range), whose shares
    sum to 1 only for items of equal ranges; an HDRS-17 patient's unrounded total was the
    latent total times sum(p_i s_i) / sum(s_i) (SD about 3% between patients). Fixed
    2026-12-07 by renormalising the shares where the ranges differ."""
    lo, hi = np.zeros(17), np.array([it.high for it in HDRS17.items], float)
    prof = np.where(hi == 4, 0.5, 1.0 + 9 * 0.5 / 8)  # a profile of mean 1 (sums to 17)
    assert np.isclose(prof.sum(), 17.0)
    # noise spread evenly over one rounding step: the mean of the rounded items is the
    # unrounded item where no clipping occurs (it does not here)
    u = ((np.arange(2000) + 0.5) / 2000 - 0.5)[:, None] * np.ones(17)
    items = item_scores(20.0, prof, hi, lo, u, 0.0)
    np.testing.assert_allclose(items.sum(axis=1).mean(), 20.0, atol=0.05)
