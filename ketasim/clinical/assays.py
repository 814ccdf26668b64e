"""Clinical rating scales as assays: a rater scores each item at each visit.

- ``madrs``: Montgomery-Asberg Depression Rating Scale (10 items, 0-6), from the
  patient's rated symptom load (:mod:`ketasim.clinical.model`); readouts the total, the
  suicidal-thoughts item (item 10, F-K-6) and the anhedonia items (1, 2, 6, 7, 8);
- ``fmri_gbc``: prefrontal global brain connectivity from the synaptic state (F-K-14);
  ``mrs_glutamate_cycling``: 13C MRS glutamate-glutamine cycling from glutamate release
  over the acquisition (F-K-13);
- ``cadss``: Clinician-Administered Dissociative States Scale (23 items, 0-4) and
  ``bprs_positive``: the BPRS positive subscale (4 items, 1-7), from NMDA receptor block
  in posteromedial cortex at the effect site (F-K-2; Vesuna et al. 2020 Nature).
- ``sedation``: the Modified Observer's Assessment of Alertness/Sedation (MOAA/S, 5 alert
  ... 0 no response) from the midazolam effect-site concentration (the active placebo).

Scale definitions (items, ranges) come from :mod:`ketasim.analysis.trial`, the same ones
that score real trial data. Rater noise: an item-level noise and a rater shift per visit,
sized so that two raters of the same interview differ by about 1.8 MADRS points on
average (site vs blinded independent raters; REFERENCES-NEXT section 2.2).
"""

from __future__ import annotations

import numpy as np

from ketasim.analysis.trial import BPRS, CADSS, MADRS
from ketasim.clinical.model import (
    ClinicalParams,
    PatientTraits,
    hill,
    history_grid,
    mood_fluctuation,
    placebo_fraction,
    rate_items,
    sample_times,
    symptom_course,
)
from ketasim.core.assay import Assay, AssayContext, AssayRows, Readout


def _range(scale) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([it.low for it in scale.items], float),
            np.array([it.high for it in scale.items], float))


_BPRS_POS = [BPRS.item(k) for k in BPRS.subscale("positive")]
_N_ITEMS = {"madrs": MADRS.n_items, "cadss": CADSS.n_items, "bprs_positive": len(_BPRS_POS)}

#: The rated readouts a trial may analyse: readout -> (assay, scale, the item numbers it
#: sums, None for the whole scale). The scenario's ``design:`` vocabulary and the
#: readouts' ranges derive from it.
SCALE_READOUTS = {
    "madrs_total": ("madrs", MADRS, None),
    "madrs_suicide_item": ("madrs", MADRS, (MADRS.suicide_item,)),
    "madrs_anhedonia": ("madrs", MADRS, MADRS.subscale("anhedonia")),
    "cadss_total": ("cadss", CADSS, None),
    "bprs_positive": ("bprs_positive", BPRS, BPRS.subscale("positive")),
}


def _traits(ctx: AssayContext, i: int, p: ClinicalParams) -> PatientTraits:
    """The patient's traits: one stream per patient, shared by all clinical assays."""
    return PatientTraits(ctx.rng(i, "patient_traits"), p, _N_ITEMS)


def _visit_rng(ctx: AssayContext, i: int, t: float) -> np.random.Generator:
    # keyed by the visit time, so adding a visit leaves the other visits' ratings alone
    return ctx.rng(i, f"{ctx.assay}@{t:.6g}h")


_STATE_OUTPUTS = ("formation_drive", "elimination_drive", "synaptic_potentiation")


def _course(ctx: AssayContext, at: np.ndarray, p: ClinicalParams):
    """Synaptic state and rated symptom load at the visits (see ``symptom_course``)."""
    grid = history_grid(at, ctx.options["lookback_d"], ctx.options["step_h"])
    return symptom_course(grid, {o: ctx.trajectory(o, grid) for o in _STATE_OUTPUTS}, at,
                          {o: ctx.trajectory(o, np.asarray(at, float))
                           for o in _STATE_OUTPUTS}, p)


def madrs_latent(ctx: AssayContext, at: np.ndarray, p: ClinicalParams
                 ) -> tuple[np.ndarray, list[PatientTraits]]:
    """(n, len(at)) latent MADRS totals (before rating) and the patients' traits."""
    _, load = _course(ctx, at, p)
    traits = [_traits(ctx, i, p) for i in range(ctx.n)]
    share = np.array([t.placebo for t in traits])
    gain = np.array([t.gain for t in traits])
    lifted = 1.0 - placebo_fraction(np.asarray(at, float), share, p)
    mood = np.exp(np.array([mood_fluctuation(ctx.rng(i, "mood_fluctuation"), at, p)
                            for i in range(ctx.n)]))
    v = p.values
    latent = (v["madrs_floor"]
              + v["madrs_per_deficit"] * gain[:, None] * mood * load * lifted)
    return latent, traits


def _madrs(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = ClinicalParams.from_registry(ctx.registry)
    latent, traits = madrs_latent(ctx, at, p)
    lo, hi = _range(MADRS)
    anh = np.array(MADRS.subscale("anhedonia")) - 1
    out = np.full((ctx.n, len(at), 3), np.nan)
    for i in range(ctx.n):
        for j, t in enumerate(at):
            g = _visit_rng(ctx, i, float(t))
            items = rate_items(latent[i, j] - lo.sum(), traits[i].profiles["madrs"], hi, lo,
                               g, p, g.normal(0.0, p.values["rater_sd"]))
            out[i, j] = (items.sum(), items[MADRS.suicide_item - 1], items[anh].sum())
    return ctx.rows(out, at, ["madrs_total", "madrs_suicide_item", "madrs_anhedonia"],
                    ["points"] * 3)


def _psychotomimetic(ctx: AssayContext, at: np.ndarray, kind: str) -> AssayRows:
    p = ClinicalParams.from_registry(ctx.registry)
    v = p.values
    occ = ctx.trajectory("occupancy_posteromedial", np.asarray(at, float))
    if kind == "cadss":
        lo, hi = _range(CADSS)
        effect = v["cadss_max"] * hill(occ, v["cadss_o50"], v["cadss_hill"])
        readout = "cadss_total"
    else:
        lo = np.array([it.low for it in _BPRS_POS], float)
        hi = np.array([it.high for it in _BPRS_POS], float)
        effect = v["bprs_pos_max"] * hill(occ, v["bprs_o50"], v["bprs_hill"])
        readout = "bprs_positive"
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        tr = _traits(ctx, i, p)
        for j, t in enumerate(at):
            g = _visit_rng(ctx, i, float(t))
            items = rate_items(effect[i, j] * tr.psychotomimetic, tr.profiles[kind], hi, lo,
                               g, p, 0.0)
            out[i, j, 0] = items.sum()
    return ctx.rows(out, at, [readout], ["points"])


MOAAS_MAX = 5  # MOAA/S: 5 responds readily to name spoken in normal tone ... 0 no response


def moaas_latent(conc: np.ndarray, sensitivity: np.ndarray, p: ClinicalParams
                 ) -> np.ndarray:
    """Unrounded MOAA/S at effect-site concentrations ``conc`` (ng/mL, plasma-equivalent)
    for sensitivities ``sensitivity`` (x the median patient): a sigmoid Emax from 5 down
    to 0."""
    v = p.values
    return MOAAS_MAX * (1.0 - hill(conc * sensitivity, v["sedation_ec50"],
                                   v["sedation_hill"]))


def _sedation(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """MOAA/S per visit from the midazolam effect-site concentration: the patient's
    sensitivity (log-normal, CV ``sedation_cv``, from a stream of its own) times a
    per-visit fluctuation (log-normal, SD ``sedation_visit_sd`` on the log scale: the
    patient's arousal at the visit and the rater's judgement), rounded to the scale."""
    p = ClinicalParams.from_registry(ctx.registry)
    v = p.values
    conc = np.clip(ctx.trajectory("midazolam_brain", np.asarray(at, float)), 0.0, None)
    cv = v["sedation_cv"]
    sig = np.sqrt(np.log1p(cv**2))
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        s = np.exp(ctx.rng(i, "sedation_sensitivity").normal(-0.5 * sig**2, sig))
        for j, t in enumerate(at):
            visit = np.exp(_visit_rng(ctx, i, float(t)).normal(0.0, v["sedation_visit_sd"]))
            out[i, j, 0] = np.clip(np.rint(moaas_latent(conc[i, j], s * visit, p)),
                                   0, MOAAS_MAX)
    return ctx.rows(out, at, ["moaas"], ["points"])


def _madrs_times(at: np.ndarray, options: dict) -> np.ndarray:
    return sample_times(at, float(options["lookback_d"]), float(options["step_h"]))


def _gbc(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Prefrontal global brain connectivity (resting-state fMRI, GBC with global signal
    regression, as a z-score against healthy subjects): linear in the synaptic state,
    plus a subject offset and scan noise."""
    p = ClinicalParams.from_registry(ctx.registry)
    v = p.values
    z, _ = _course(ctx, at, p)
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        offset = ctx.rng(i, "gbc_subject").normal(0.0, v["gbc_subject_sd"])
        for j, t in enumerate(at):
            noise = _visit_rng(ctx, i, float(t)).normal(0.0, v["gbc_scan_sd"])
            out[i, j, 0] = v["gbc_per_state"] * (z[i, j] - 1.0) + offset + noise
    return ctx.rows(out, at, ["pfc_gbc_z"], ["z"])


def _mrs(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """13C magnetic resonance spectroscopy of prefrontal glutamate-glutamine cycling
    (Vcycle) during an acquisition of ``window_min`` minutes ending at each time: the mean
    glutamate release over the window relative to baseline, times a log-normal
    measurement error."""
    p = ClinicalParams.from_registry(ctx.registry)
    cv = p.values["mrs_cv"]
    sig = np.sqrt(np.log1p(cv**2))
    w = float(ctx.options["window_min"]) / 60.0
    out = np.full((ctx.n, len(at), 1), np.nan)
    for j, t in enumerate(at):
        glu = ctx.trajectory("glutamate_surge", _mrs_window(float(t), w)).mean(axis=1)
        for i in range(ctx.n):
            err = _visit_rng(ctx, i, float(t)).normal(-0.5 * sig**2, sig)
            out[i, j, 0] = glu[i] * np.exp(err)
    return ctx.rows(out, at, ["vcycle_rel"], ["x baseline"])


def _mrs_window(t: float, w: float) -> np.ndarray:
    return t - w + (np.arange(12) + 0.5) * w / 12.0


def _mrs_times(at: np.ndarray, options: dict) -> np.ndarray:
    w = float(options["window_min"]) / 60.0
    return np.unique(np.concatenate([_mrs_window(float(t), w) for t in at]))


MADRS_ASSAY = Assay(
    "madrs", "Montgomery-Asberg Depression Rating Scale, rated item by item",
    (Readout("madrs_total", "points"), Readout("madrs_suicide_item", "points"),
     Readout("madrs_anhedonia", "points")),
    _madrs, outputs=("formation_drive", "elimination_drive", "synaptic_potentiation"),
    sample_times=_madrs_times, options={"lookback_d": 21.0, "step_h": 1.0},
    positive=("lookback_d", "step_h"))
CADSS_ASSAY = Assay(
    "cadss", "Clinician-Administered Dissociative States Scale (23 items)",
    (Readout("cadss_total", "points"),), lambda ctx, at: _psychotomimetic(ctx, at, "cadss"),
    outputs=("occupancy_posteromedial",))
BPRS_POSITIVE_ASSAY = Assay(
    "bprs_positive", "Brief Psychiatric Rating Scale, positive-symptom subscale (4 items)",
    (Readout("bprs_positive", "points"),),
    lambda ctx, at: _psychotomimetic(ctx, at, "bprs_positive"),
    outputs=("occupancy_posteromedial",))
GBC_ASSAY = Assay(
    "fmri_gbc", "prefrontal global brain connectivity, resting-state fMRI (z vs healthy)",
    (Readout("pfc_gbc_z", "z"),), _gbc, outputs=_STATE_OUTPUTS, sample_times=_madrs_times,
    options={"lookback_d": 21.0, "step_h": 1.0}, positive=("lookback_d", "step_h"))
SEDATION_ASSAY = Assay(
    "sedation", "Modified Observer's Assessment of Alertness/Sedation (MOAA/S, 0-5)",
    (Readout("moaas", "points"),), _sedation, outputs=("midazolam_brain",))
MRS_ASSAY = Assay(
    "mrs_glutamate_cycling",
    "13C MRS of prefrontal glutamate-glutamine cycling (Vcycle, x baseline)",
    (Readout("vcycle_rel", "x baseline"),), _mrs, outputs=("glutamate_surge",),
    sample_times=_mrs_times, options={"window_min": 40.0}, positive=("window_min",))
