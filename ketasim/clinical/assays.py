"""Clinical rating scales as assays: a rater scores each item at each visit.

- ``madrs``: Montgomery-Asberg Depression Rating Scale (10 items, 0-6), from the
  patient's rated symptom load (:mod:`ketasim.clinical.model`); readouts the total, the
  suicidal-thoughts item (item 10, F-K-6) and the anhedonia items (1, 2, 6, 7, 8);
- ``hdrs17``: Hamilton Depression Rating Scale, 17 items (nine 0-4, eight 0-2), from the
  same symptom load with its own points per unit deficit and floor; readouts the total
  and the suicide item (item 3);
- ``qids_sr``: the self-rated QIDS-SR16 (16 items 0-3 over nine domains, each domain
  its highest item), from the same symptom load; no rater, but the patient's persistent
  self-report bias; readout the total;
- ``fmri_gbc``: prefrontal global brain connectivity from the synaptic state (F-K-14);
  ``mrs_glutamate_cycling``: 13C MRS glutamate-glutamine cycling from glutamate release
  over the acquisition (F-K-13);
- ``cadss``: Clinician-Administered Dissociative States Scale (23 items, 0-4) and
  ``bprs_positive``: the BPRS positive subscale (4 items, 1-7), from NMDA receptor block
  in posteromedial cortex at the effect site (F-K-2; Vesuna et al. 2020 Nature).
- ``sedation``: the Modified Observer's Assessment of Alertness/Sedation (MOAA/S, 5 alert
  ... 0 no response) from the midazolam effect-site concentration (the active placebo).

Scale definitions (items, ranges, domain scoring) come from :mod:`ketasim.analysis.trial`,
the same ones that score real trial data.

Raters are people. The clinician-rated scales (madrs, hdrs17, cadss, bprs_positive) take
an option ``raters`` (default 4): each arm has that many raters (the analysed arms of a
stratified trial share one pool, keyed as the trial's patients are), each patient is
assigned one of them for the whole study (a draw from the patient's stream
"clinical_rater", so a patient keeps the same rater on every clinician scale that has
the same pool size), and a rater shifts the total by a persistent bias plus a linear
drift plus a shift per visit (:class:`ketasim.clinical.model.Rater`; MADRS points, other
scales in proportion to their total range). With item noise and rounding two raters of
the same MADRS interview differ by about 1.8 points on average (site vs blinded
independent raters; REFERENCES-NEXT section 2.2).

A rater's bias and drift come from a stream of the rater, not of a patient: the seed
sequence (seed, spawn key (arm, ARM_LEVEL, measurement, "clinical_rater", rater)), where
ARM_LEVEL (2^32 - 1) stands where subject streams have the subject index, which never
reaches it. So a rater's numbers depend only on the seed, the arm and the rater's
number: adding a patient, a visit or an assay changes no rater.
"""

from __future__ import annotations

import numpy as np

from ketasim.analysis.trial import BPRS, CADSS, HDRS17, MADRS, QIDS_SR16, Scale
from ketasim.clinical.model import (
    HISTORY_ANCHOR,
    ClinicalParams,
    PatientTraits,
    Rater,
    early_traits,
    hill,
    history_grid,
    item_scores,
    mood_days,
    mood_paths,
    placebo_fraction,
    rate_domains,
    rater_shift,
    sample_times,
    symptom_course,
)
from ketasim.core import pcg64
from ketasim.core.assay import HUMANS, Assay, AssayContext, AssayRows, Readout
from ketasim.core.streams import (
    PURPOSE_MEASUREMENT,
    arm_key,
    assay_rng,
    keyed_rng,
    name_key,
)


def _range(scale) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([it.low for it in scale.items], float),
            np.array([it.high for it in scale.items], float))


_BPRS_POS = [BPRS.item(k) for k in BPRS.subscale("positive")]
_N_ITEMS = {"madrs": MADRS.n_items, "cadss": CADSS.n_items, "bprs_positive": len(_BPRS_POS)}
# traits of the scales added later, drawn after the earlier ones (see PatientTraits)
_LATER_ITEMS = {"hdrs17": HDRS17.n_items, "qids_sr": len(QIDS_SR16.domains)}
_QIDS_DOMAINS = tuple(tuple(ks) for _, ks in QIDS_SR16.domains)

#: The rated readouts a trial may analyse: readout -> (assay, scale, the item numbers it
#: sums, None for the whole scale). The scenario's ``design:`` vocabulary and the
#: readouts' ranges derive from it.
SCALE_READOUTS = {
    "madrs_total": ("madrs", MADRS, None),
    "madrs_suicide_item": ("madrs", MADRS, (MADRS.suicide_item,)),
    "madrs_anhedonia": ("madrs", MADRS, MADRS.subscale("anhedonia")),
    "cadss_total": ("cadss", CADSS, None),
    "bprs_positive": ("bprs_positive", BPRS, BPRS.subscale("positive")),
    "hdrs17_total": ("hdrs17", HDRS17, None),
    "hdrs17_suicide_item": ("hdrs17", HDRS17, (HDRS17.suicide_item,)),
    "qids_sr_total": ("qids_sr", QIDS_SR16, None),
}


_TRAITS_KEY = "patient_traits"


def _traits(ctx: AssayContext, i: int, p: ClinicalParams) -> PatientTraits:
    """The patient's traits: one stream per patient, shared by all clinical assays."""
    return PatientTraits(ctx.rng(i, _TRAITS_KEY), p, _N_ITEMS, _LATER_ITEMS,
                         tuple(len(ks) for ks in _QIDS_DOMAINS))


def _chunk_traits(ctx: AssayContext, p: ClinicalParams) -> list[PatientTraits]:
    """The traits of the chunk's patients (as :func:`_traits`), the first three (gain,
    placebo share, MADRS profile) drawn for the whole chunk in compiled code."""
    if not pcg64.COMPILED:
        return [_traits(ctx, i, p) for i in range(ctx.n)]
    # the traits keep how to build a patient's stream (ctx.rng's keys), not the context:
    # it holds the chunk's trajectories, which traits kept alive would keep in memory
    seed, arm, key = ctx.seed, ctx.stream_arm, ctx.key(_TRAITS_KEY)
    ids = np.asarray(ctx.stream_ids, dtype=np.int64).copy()

    def stream(i: int) -> np.random.Generator:
        return assay_rng(seed, arm, int(ids[i]), key)

    return early_traits(ctx.stream_states(_TRAITS_KEY), stream, p, _N_ITEMS, _LATER_ITEMS,
                        tuple(len(ks) for ks in _QIDS_DOMAINS))


#: Where subject streams hold the subject index, rater streams hold this (never a subject).
ARM_LEVEL = 2**32 - 1
_RATER_KEY = "clinical_rater"


def rater_rng(seed: int, arm: str, rater: int) -> np.random.Generator:
    """The stream of rater number ``rater`` of an arm's pool (see the module docstring):
    keyed by the seed, the arm and the rater only."""
    return keyed_rng(seed, (arm_key(arm), ARM_LEVEL, PURPOSE_MEASUREMENT,
                            name_key(_RATER_KEY), int(rater)))


def assigned_rater(ctx: AssayContext, i: int, pool: int) -> int:
    """The rater (0 .. pool - 1) of the chunk's ``i``-th patient for the whole study."""
    return int(ctx.rng(i, _RATER_KEY).integers(pool))


def _raters(ctx: AssayContext, p: ClinicalParams) -> list[Rater]:
    """The rater of each patient of the chunk (option ``raters``: the arm's pool)."""
    pool = int(ctx.options["raters"])
    if pcg64.COMPILED:  # assigned_rater for the whole chunk at once: the same numbers
        ids = pcg64.first_integers(ctx.stream_states(_RATER_KEY), pool).tolist()
    else:
        ids = [assigned_rater(ctx, i, pool) for i in range(ctx.n)]
    people = {r: Rater(rater_rng(ctx.seed, ctx.stream_arm, r), p) for r in sorted(set(ids))}
    return [people[r] for r in ids]


def _span(scale: Scale) -> float:
    """The scale's total range in MADRS ranges: rater shifts are given in MADRS points."""
    return (scale.total_max - scale.total_min) / (MADRS.total_max - MADRS.total_min)


def _visit_key(ctx: AssayContext, t: float) -> str:
    # keyed by the visit time, so adding a visit leaves the other visits' ratings alone
    return f"{ctx.assay}@{t:.6g}h"


def _visit_rng(ctx: AssayContext, i: int, t: float) -> np.random.Generator:
    return ctx.rng(i, _visit_key(ctx, t))


_STATE_OUTPUTS = ("formation_drive", "elimination_drive", "synaptic_potentiation",
                  "structural_formation")


def _course(ctx: AssayContext, at: np.ndarray, p: ClinicalParams):
    """Synaptic state and rated symptom load at the visits (see ``symptom_course``)."""
    grid = history_grid(at, ctx.options["lookback_d"], ctx.options["step_h"],
                        ctx.options.get(HISTORY_ANCHOR))
    return symptom_course(grid, {o: ctx.trajectory(o, grid) for o in _STATE_OUTPUTS}, at,
                          {o: ctx.trajectory(o, np.asarray(at, float))
                           for o in _STATE_OUTPUTS}, p)


#: Per scale: the registry names of its points per unit deficit and its floor.
_LOAD_TO_SCALE = {"madrs": ("madrs_per_deficit", "madrs_floor"),
                  "hdrs17": ("hdrs17_per_deficit", "hdrs17_floor"),
                  "qids_sr": ("qids_per_deficit", "qids_floor")}


def symptom_latent(ctx: AssayContext, at: np.ndarray, p: ClinicalParams,
                   scale: str = "madrs") -> tuple[np.ndarray, list[PatientTraits]]:
    """(n, len(at)) latent totals of ``scale`` ("madrs", "hdrs17" or "qids_sr"; before
    rating) and the patients' traits: ``floor + per_deficit x gain x mood x load x (1 -
    placebo)``, one symptom load, gain, mood path and placebo response per patient for
    every scale, each scale with its own points per unit deficit and floor."""
    _, load = _course(ctx, at, p)
    traits = _chunk_traits(ctx, p)
    share = np.array([t.placebo for t in traits])
    gain = np.array([t.gain for t in traits])
    lifted = 1.0 - placebo_fraction(np.asarray(at, float), share, p, ctx.treatment_start_h)
    # each patient's mood stream (mood_fluctuation), drawn for the whole chunk at once
    z = ctx.normals(["mood_fluctuation"], mood_days(at).size)[:, 0, :]
    mood = np.exp(mood_paths(z, at, p))
    v = p.values
    slope, floor = _LOAD_TO_SCALE[scale]
    latent = v[floor] + v[slope] * gain[:, None] * mood * load * lifted
    return latent, traits


def madrs_latent(ctx: AssayContext, at: np.ndarray, p: ClinicalParams
                 ) -> tuple[np.ndarray, list[PatientTraits]]:
    """(n, len(at)) latent MADRS totals (before rating) and the patients' traits."""
    return symptom_latent(ctx, at, p, "madrs")


def _rate_visits(ctx: AssayContext, at: np.ndarray, latent: np.ndarray,
                 profiles: np.ndarray, hi: np.ndarray, lo: np.ndarray, span: float,
                 raters: list[Rater], p: ClinicalParams, rater_stream: bool = False
                 ) -> np.ndarray:
    """(n, len(at), items) item scores of every visit of the chunk, from the latent
    totals ``latent`` (n, len(at)) and the patients' ``profiles`` (n, items). Each
    visit's numbers come from the visit's own stream, in the order of one rating (the
    rater's visit shift, then the item noise); with ``rater_stream`` the visit shift
    comes from a stream of its own (the psychotomimetic scales, whose item noise was
    drawn before they had raters). The arithmetic runs on all ratings at once."""
    sd = p.values["item_noise_sd"]
    # each visit's stream (_visit_rng) drawn for the whole chunk at once: its standard
    # normals, and normal(0, sd) as numpy makes it (0 + sd x z)
    visits = [_visit_key(ctx, float(t)) for t in at]
    if rater_stream:
        visit_z = ctx.normals([f"{v}/rater" for v in visits], 1)[:, :, 0]
        noise = 0.0 + sd * ctx.normals(visits, hi.size)
    else:
        z = ctx.normals(visits, 1 + hi.size)
        visit_z = z[:, :, 0]
        noise = 0.0 + sd * z[:, :, 1:]
    bias = np.array([r.bias for r in raters])[:, None]
    drift = np.array([r.drift for r in raters])[:, None]
    shift = span * rater_shift(bias, drift, at[None, :], visit_z, p)
    return item_scores(latent[:, :, None], profiles[:, None, :], hi, lo, noise,
                       shift[:, :, None])


def _clinician_rated(ctx: AssayContext, at: np.ndarray, scale: Scale, key: str,
                     parts: dict[str, tuple[int, ...] | None]) -> AssayRows:
    """A clinician-rated depression scale item by item from the latent total: the
    patient's rater shifts it (bias, drift, this visit's shift, in proportion to the
    scale's range), item noise and rounding. ``parts``: readout -> the item numbers it
    sums (None: the total)."""
    p = ClinicalParams.from_registry(ctx.registry)
    latent, traits = symptom_latent(ctx, at, p, key)
    raters = _raters(ctx, p)
    lo, hi = _range(scale)
    span = _span(scale)
    at = np.asarray(at, dtype=float)
    items = _rate_visits(ctx, at, latent - lo.sum(),
                         np.array([tr.profiles[key] for tr in traits]), hi, lo, span,
                         raters, p)
    # item scores are whole numbers: their sums are exact in any order
    out = np.stack([items.sum(axis=2) if ks is None
                    else items[:, :, np.array(ks) - 1].sum(axis=2)
                    for ks in parts.values()], axis=2)
    return ctx.rows(out, at, list(parts), ["points"] * len(parts))


def _madrs(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    return _clinician_rated(ctx, at, MADRS, "madrs", {
        "madrs_total": None, "madrs_suicide_item": (MADRS.suicide_item,),
        "madrs_anhedonia": MADRS.subscale("anhedonia")})


def _hdrs17(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    return _clinician_rated(ctx, at, HDRS17, "hdrs17", {
        "hdrs17_total": None, "hdrs17_suicide_item": (HDRS17.suicide_item,)})


def qids_items(latent_total: float, traits: PatientTraits, rng: np.random.Generator,
               p: ClinicalParams) -> np.ndarray:
    """The 16 QIDS-SR16 item scores (form order) of one self-report: the latent total
    plus the patient's self-report bias, shared over the nine domains by the patient's
    domain profile and within each domain by the patient's pattern (:func:`rate_domains`)."""
    by_domain = rate_domains(latent_total + traits.self_report_bias,
                             traits.profiles["qids_sr"], traits.domain_patterns,
                             float(QIDS_SR16.items[0].high), rng, p)
    items = np.empty(QIDS_SR16.n_items)
    for ks, scores in zip(_QIDS_DOMAINS, by_domain):
        items[np.array(ks) - 1] = scores
    return items


def _qids_sr(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """QIDS-SR16 per visit: self-rated, so no rater; the total is scored over domains."""
    p = ClinicalParams.from_registry(ctx.registry)
    latent, traits = symptom_latent(ctx, at, p, "qids_sr")
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        for j, t in enumerate(at):
            items = qids_items(latent[i, j], traits[i], _visit_rng(ctx, i, float(t)), p)
            out[i, j, 0] = QIDS_SR16.total(items)
    return ctx.rows(out, at, ["qids_sr_total"], ["points"])


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
    # rater shifts in proportion to the rated range (the BPRS positive items' 4-28)
    span = (hi - lo).sum() / (MADRS.total_max - MADRS.total_min)
    raters = _raters(ctx, p)
    at = np.asarray(at, dtype=float)
    traits = _chunk_traits(ctx, p)
    sens = np.array([tr.psychotomimetic for tr in traits])[:, None]
    items = _rate_visits(ctx, at, effect * sens,
                         np.array([tr.profiles[kind] for tr in traits]), hi, lo, span,
                         raters, p, rater_stream=True)
    return ctx.rows(items.sum(axis=2)[:, :, None], at, [readout], ["points"])


MOAAS_MAX = 5  # MOAA/S: 5 responds readily to name spoken in normal tone ... 0 no response


def moaas_latent(conc: np.ndarray, sensitivity: np.ndarray, p: ClinicalParams,
                 shutdown: np.ndarray | float = 0.0) -> np.ndarray:
    """Unrounded MOAA/S at midazolam effect-site concentrations ``conc`` (ng/mL,
    plasma-equivalent) and ketamine's pyramidal ``shutdown`` (0-1), for sensitivities
    ``sensitivity`` (x the median patient, scaling both): sigmoid Emax effects of the two,
    independent, taking the scale from 5 down to 0."""
    v = p.values
    midazolam = hill(conc * sensitivity, v["sedation_ec50"], v["sedation_hill"])
    ketamine = hill(np.asarray(shutdown, dtype=float) * sensitivity,
                    v["sedation_shutdown50"], v["sedation_shutdown_hill"])
    return MOAAS_MAX * (1.0 - midazolam) * (1.0 - ketamine)


def _sedation(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """MOAA/S per visit from the midazolam effect-site concentration and ketamine's
    pyramidal shutdown (:func:`moaas_latent`): the patient's sensitivity (log-normal, CV
    ``sedation_cv``, from a stream of its own) times a per-visit fluctuation (log-normal,
    SD ``sedation_visit_sd`` on the log scale: the patient's arousal at the visit and the
    rater's judgement), rounded to the scale."""
    p = ClinicalParams.from_registry(ctx.registry)
    v = p.values
    conc = np.clip(ctx.trajectory("midazolam_brain", np.asarray(at, float)), 0.0, None)
    shutdown = np.clip(ctx.trajectory("pyramidal_shutdown", np.asarray(at, float)), 0.0,
                       None)
    cv = v["sedation_cv"]
    sig = np.sqrt(np.log1p(cv**2))
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        s = np.exp(ctx.rng(i, "sedation_sensitivity").normal(-0.5 * sig**2, sig))
        for j, t in enumerate(at):
            visit = np.exp(_visit_rng(ctx, i, float(t)).normal(0.0, v["sedation_visit_sd"]))
            out[i, j, 0] = np.clip(np.rint(moaas_latent(conc[i, j], s * visit, p,
                                                        shutdown[i, j])), 0, MOAAS_MAX)
    return ctx.rows(out, at, ["moaas"], ["points"])


def _madrs_times(at: np.ndarray, options: dict) -> np.ndarray:
    return sample_times(at, float(options["lookback_d"]), float(options["step_h"]),
                        options.get(HISTORY_ANCHOR))


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


RATERS = 4  # default size of an arm's pool of raters (option ``raters``)

MADRS_ASSAY = Assay(
    "madrs", "Montgomery-Asberg Depression Rating Scale, rated item by item",
    (Readout("madrs_total", "points"), Readout("madrs_suicide_item", "points"),
     Readout("madrs_anhedonia", "points")),
    _madrs, outputs=_STATE_OUTPUTS,
    sample_times=_madrs_times,
    options={"lookback_d": 21.0, "step_h": 1.0, "raters": RATERS},
    positive=("lookback_d", "step_h", "raters"),
    species=HUMANS)
HDRS17_ASSAY = Assay(
    "hdrs17", "Hamilton Depression Rating Scale, 17 items, rated item by item",
    (Readout("hdrs17_total", "points"), Readout("hdrs17_suicide_item", "points")),
    _hdrs17, outputs=_STATE_OUTPUTS, sample_times=_madrs_times,
    options={"lookback_d": 21.0, "step_h": 1.0, "raters": RATERS},
    positive=("lookback_d", "step_h", "raters"),
    species=HUMANS)
QIDS_SR_ASSAY = Assay(
    "qids_sr", "Quick Inventory of Depressive Symptomatology, self-report (QIDS-SR16)",
    (Readout("qids_sr_total", "points"),),
    _qids_sr, outputs=_STATE_OUTPUTS, sample_times=_madrs_times,
    options={"lookback_d": 21.0, "step_h": 1.0}, positive=("lookback_d", "step_h"),
    species=HUMANS)
CADSS_ASSAY = Assay(
    "cadss", "Clinician-Administered Dissociative States Scale (23 items)",
    (Readout("cadss_total", "points"),), lambda ctx, at: _psychotomimetic(ctx, at, "cadss"),
    outputs=("occupancy_posteromedial",), options={"raters": RATERS}, positive=("raters",),
    species=HUMANS)
BPRS_POSITIVE_ASSAY = Assay(
    "bprs_positive", "Brief Psychiatric Rating Scale, positive-symptom subscale (4 items)",
    (Readout("bprs_positive", "points"),),
    lambda ctx, at: _psychotomimetic(ctx, at, "bprs_positive"),
    outputs=("occupancy_posteromedial",), options={"raters": RATERS}, positive=("raters",),
    species=HUMANS)
GBC_ASSAY = Assay(
    "fmri_gbc", "prefrontal global brain connectivity, resting-state fMRI (z vs healthy)",
    (Readout("pfc_gbc_z", "z"),), _gbc, outputs=_STATE_OUTPUTS, sample_times=_madrs_times,
    options={"lookback_d": 21.0, "step_h": 1.0}, positive=("lookback_d", "step_h"),
    species=HUMANS)
SEDATION_ASSAY = Assay(
    "sedation", "Modified Observer's Assessment of Alertness/Sedation (MOAA/S, 0-5)",
    (Readout("moaas", "points"),), _sedation,
    outputs=("midazolam_brain", "pyramidal_shutdown"),
    species=HUMANS)
MRS_ASSAY = Assay(
    "mrs_glutamate_cycling",
    "13C MRS of prefrontal glutamate-glutamine cycling (Vcycle, x baseline)",
    (Readout("vcycle_rel", "x baseline"),), _mrs, outputs=("glutamate_surge",),
    sample_times=_mrs_times, options={"window_min": 40.0}, positive=("window_min",),
    species=HUMANS)
