"""Striatal behaviour, scored as the LID labs score it (issue 15; REFERENCES-NEXT 3.2, 3.4).

- ``aims``: abnormal involuntary movements after an L-DOPA dose (Cenci & Lundblad 2007).
  Each session time in ``at`` is the time of the dose; the rater watches each animal
  for one minute at each of ``periods_min`` after it (default: every 20 min to 180 min in
  rats, to 120 min in mice) and scores the severity of axial, limb, orolingual and
  locomotive AIMs 0-4. The session
  score sums the periods: ``aims_alo`` (axial + limb + orolingual, at most 12 per
  period) and each subtype. Severity follows the dyskinesia drive of the striatal D1
  neurons: the priming of dyskinesia times the D1 signal above a threshold
  (``behavior.aims.*``), through a per-animal sensitivity and a per-subtype weight, with
  the rater's noise (growing with the latent severity up to one point, so an animal
  without abnormal movements scores 0), rounded to the scale.
- ``cylinder_test``: forelimb use against the wall of a cylinder (Schallert), ``contacts``
  weight-bearing contacts, the share made with the forelimb contralateral to the
  lesion (%); an intact animal uses both about equally. The chance of a contralateral
  contact follows striatal dopamine (the lesioned side's), a Hill function scaled so an
  intact animal is at 50%.
- ``stepping_test``: adjusting steps (Olsson et al. 1995; Chang et al. 1999): the rat is
  held with one forepaw on the table and moved sideways over about 0.9 m, ``trials``
  times per paw; the readouts are the mean adjusting steps per trial of the paw
  contralateral and ipsilateral to the lesion. Each paw's expected count is the intact
  count (``behavior.stepping.steps_intact``, per animal log-normal ``animal_cv``) times
  the relative Hill function of its side's striatal dopamine (the lesioned side's for
  the contralateral paw; the intact side's, ``dopamine_intact``, for the other), capped
  at the intact count; counts are Poisson. The contralateral paw's count, like the
  cylinder's contralateral chance, is also scaled by :func:`indirect_loss` (the loss of
  indirect-pathway spines after denervation, which dopamine does not restore acutely).
- ``rotation``: drug-induced turning in a rotometer (apomorphine or L-DOPA; a lesion
  check, REFERENCES-NEXT 3.4): full turns counted over ``duration_min`` from
  ``start_min`` after each time in ``at`` (the dose). The turning rate follows the
  asymmetry of the D1 signal between the lesioned and the intact side
  (``d1_asymmetry``, on a 1-min grid): contralateral at ``max_rate`` x a Hill function of
  a positive asymmetry, ipsilateral likewise of a negative one; counts are Poisson.
  Readouts: net contralateral turns per minute, and the contralateral and ipsilateral
  turns of the session.

For the report, ``aims`` keeps the scored observations (``kept["aims"]``: one row per
subject, session, period and subtype; the first :data:`KEEP_AIMS_SUBJECTS` subjects of an
arm), which :mod:`ketasim.report.striatal_figures` draws: the ALO score over sessions and
its time course within the last session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.core.assay import RODENTS, Assay, AssayContext, AssayRows, Readout
from ketasim.signaling.dyskinesia import AIMS_MAX, aims_drive, aims_severity

AIMS_SUBTYPES = ("axial", "limb", "orolingual", "locomotive")
ALO_SUBTYPES = AIMS_SUBTYPES[:3]  # axial, limb, orolingual
# the report draws each animal's scores: a large arm keeps the scored observations of its
# first subjects only, so memory does not grow with n
KEEP_AIMS_SUBJECTS = 200
AIMS_COLUMNS = ("arm", "subject", "session_h", "period_min", "subtype", "score")
_AIMS_PARAMS = ("d1_threshold", "drive_50", "hill", "animal_cv", "rater_sd",
                "weight_axial", "weight_limb", "weight_orolingual", "weight_locomotive")
_CYL_PARAMS = ("da_50", "hill")
_STEP_PARAMS = ("da_50", "hill", "steps_intact", "animal_cv")
_ROT_PARAMS = ("max_rate", "asym_50", "hill", "animal_cv")
#: the readouts of ``aims``, in the order the assay measures them
AIMS_READOUTS = (("aims_alo", "score"), *((f"aims_{s}", "score") for s in AIMS_SUBTYPES),
                 ("aims_alo_peak_min", "min"))


def _params(registry, prefix: str, names) -> dict[str, float]:
    return {k: registry.value(f"{prefix}.{k}") for k in names}


def _aims_times(at: np.ndarray, options: dict) -> np.ndarray:
    periods = np.asarray(options["periods_min"], dtype=float) / 60.0
    return np.unique((np.asarray(at, float)[:, None] + periods[None, :]).ravel())


def _aims(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = _params(ctx.registry, "behavior.aims", _AIMS_PARAMS)
    periods = np.asarray(ctx.options["periods_min"], dtype=float) / 60.0
    times = (np.asarray(at, float)[:, None] + periods[None, :])  # (sessions, periods)
    flat = times.ravel()
    drive = aims_drive(ctx.trajectory("lid_priming", flat), ctx.trajectory("d1_drive", flat),
                       p["d1_threshold"]).reshape(ctx.n, *times.shape)
    weights = np.array([p[f"weight_{s}"] for s in AIMS_SUBTYPES])
    sig = np.sqrt(np.log1p(p["animal_cv"] ** 2))
    out = np.full((ctx.n, len(at), len(AIMS_READOUTS)), np.nan)
    n_alo = len(ALO_SUBTYPES)
    minutes = np.asarray(ctx.options["periods_min"], dtype=float)
    kept = []  # (subject, session, periods x subtypes scores) of the kept subjects
    for i in range(ctx.n):
        animal = np.exp(ctx.rng(i, "aims_animal").normal(-0.5 * sig**2, sig))
        for j, t in enumerate(at):
            g = ctx.rng(i, f"aims@{float(t):.6g}h")
            latent = aims_severity(drive[i, j][:, None] * animal * weights[None, :], p)
            # the rater's noise grows with what there is to see: an animal without
            # abnormal movements scores 0
            noise = g.normal(0.0, p["rater_sd"], latent.shape) * np.minimum(latent, 1.0)
            scored = np.clip(np.rint(latent + noise), 0, AIMS_MAX)  # (periods, subtypes)
            per_type = scored.sum(axis=0)
            alo = scored[:, :n_alo].sum(axis=1)  # per observation
            # the observation with the most ALO (the first of ties; none without AIMs)
            peak = minutes[int(np.argmax(alo))] if alo.max() > 0 else np.nan
            out[i, j] = (per_type[:n_alo].sum(), *per_type, peak)
            if ctx.subjects[i] < KEEP_AIMS_SUBJECTS:
                kept.append((int(ctx.subjects[i]), float(t), scored))
    if kept:
        ctx.keep("aims", _aims_table(ctx.arm, kept, minutes))
    return ctx.rows(out, at, [r for r, _ in AIMS_READOUTS], [u for _, u in AIMS_READOUTS])


def _aims_table(arm: str, kept: list, minutes: np.ndarray) -> pd.DataFrame:
    """The scored observations as a long table (:data:`AIMS_COLUMNS`): per subject and
    session (the dose time, h), per period (min after the dose) and subtype, the integer
    score (0-4) that the readouts sum."""
    n_p, n_s = len(minutes), len(AIMS_SUBTYPES)
    scores = np.stack([k[2] for k in kept]).astype(np.int8)  # (rows, periods, subtypes)
    reps = n_p * n_s
    return pd.DataFrame({
        "arm": arm,
        "subject": np.repeat(np.array([k[0] for k in kept], np.int64), reps),
        "session_h": np.repeat(np.array([k[1] for k in kept], float), reps),
        "period_min": np.tile(np.repeat(minutes, n_s), len(kept)),
        "subtype": pd.Categorical(np.tile(AIMS_SUBTYPES, n_p * len(kept)),
                                  categories=AIMS_SUBTYPES),
        "score": scores.reshape(-1)})


def _merge_aims(parts: list[dict]) -> dict:
    """An arm's kept observations, chunk after chunk (subjects in order)."""
    tables = [p["aims"] for p in parts if "aims" in p]
    return {"aims": pd.concat(tables, ignore_index=True)} if tables else {}


def relative_hill(da: np.ndarray, p: dict) -> np.ndarray:
    """h(da) / h(1), capped at 1: a Hill function (``da_50``, ``hill``) of striatal
    dopamine ``da`` (x intact) relative to the intact level."""
    n, k = p["hill"], p["da_50"]
    h = np.clip(np.asarray(da, dtype=float), 0.0, None) ** n
    return np.minimum((h / (h + k**n)) / (1.0 / (1.0 + k**n)), 1.0)


def contralateral_use(da: np.ndarray, p: dict) -> np.ndarray:
    """Chance (0-0.5) that a wall contact is made with the contralateral forelimb, at
    striatal dopamine ``da`` (x intact): 0.5 x h(da) / h(1), h a Hill function, capped
    at 0.5 (both limbs used equally)."""
    return 0.5 * relative_hill(da, p)


def _animal_factor(ctx: AssayContext, i: int, cv: float, key: str) -> float:
    """An animal's persistent log-normal factor (mean 1, CV ``cv``)."""
    sig = np.sqrt(np.log1p(cv**2))
    return float(np.exp(ctx.rng(i, key).normal(-0.5 * sig**2, sig)))


def indirect_loss(ctx: AssayContext, at: np.ndarray) -> np.ndarray:
    """(n, len(at)) share of the lesioned side's motor output kept after the loss of
    indirect-pathway spines and their corticostriatal input: 1 - w x the D2 neurons'
    spine-loss drive (``spine_loss_d2``; w ``behavior.motor.d2_spine_weight``). Dopamine
    does not restore it acutely, so L-DOPA reverses a lesion's motor deficit in part."""
    w = ctx.registry.value("behavior.motor.d2_spine_weight")
    return 1.0 - w * np.clip(ctx.trajectory("spine_loss_d2", at), 0.0, 1.0)


def _stepping(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = _params(ctx.registry, "behavior.stepping", _STEP_PARAMS)
    at = np.asarray(at, float)
    rel = {"contra": relative_hill(ctx.trajectory("da_rel", at), p) * indirect_loss(ctx, at),
           "ipsi": relative_hill(ctx.trajectory("da_intact", at), p)}
    trials = int(ctx.options["trials"])
    out = np.full((ctx.n, len(at), 2), np.nan)
    for i in range(ctx.n):
        animal = _animal_factor(ctx, i, p["animal_cv"], "stepping_animal")
        for j, t in enumerate(at):
            g = ctx.rng(i, f"stepping@{float(t):.6g}h")
            for c, side in enumerate(("contra", "ipsi")):
                lam = p["steps_intact"] * animal * rel[side][i, j]
                out[i, j, c] = g.poisson(lam, trials).mean()
    return ctx.rows(out, at, ["stepping_contralateral_steps", "stepping_ipsilateral_steps"],
                    ["steps", "steps"])


def _rotation_minutes(options: dict) -> np.ndarray:
    """Mid-points (min after the dose) of the counting window's 1-min bins (the window
    rounded to whole minutes, at least one)."""
    return float(options["start_min"]) + 0.5 + np.arange(max(1, round(options["duration_min"])))


def _rotation_times(at: np.ndarray, options: dict) -> np.ndarray:
    minutes = _rotation_minutes(options)
    return np.unique((np.asarray(at, float)[:, None] + minutes[None, :] / 60.0).ravel())


def turning_rates(asym: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Contralateral and ipsilateral turning rates (turns/min) at D1 asymmetry ``asym``."""
    a = np.asarray(asym, dtype=float)
    n, k = p["hill"], p["asym_50"]

    def h(x):
        x = np.clip(x, 0.0, None) ** n
        return p["max_rate"] * x / (x + k**n)
    return h(a), h(-a)


def _rotation(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = _params(ctx.registry, "behavior.rotation", _ROT_PARAMS)
    at = np.asarray(at, float)
    minutes = _rotation_minutes(ctx.options)
    dur = float(minutes.size)
    times = at[:, None] + minutes[None, :] / 60.0
    asym = ctx.trajectory("d1_asymmetry", times.ravel()).reshape(ctx.n, *times.shape)
    contra, ipsi = turning_rates(asym, p)
    out = np.full((ctx.n, len(at), 3), np.nan)
    for i in range(ctx.n):
        animal = _animal_factor(ctx, i, p["animal_cv"], "rotation_animal")
        for j, t in enumerate(at):
            g = ctx.rng(i, f"rotation@{float(t):.6g}h")
            nc = g.poisson(animal * contra[i, j].sum())  # 1-min bins: rate x 1 min
            ni = g.poisson(animal * ipsi[i, j].sum())
            out[i, j] = ((nc - ni) / dur, nc, ni)
    return ctx.rows(out, at, ["net_contralateral_turns_per_min", "contralateral_turns",
                              "ipsilateral_turns"], ["turns/min", "turns", "turns"])


def _cylinder(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = _params(ctx.registry, "behavior.cylinder", _CYL_PARAMS)
    at = np.asarray(at, float)
    chance = contralateral_use(ctx.trajectory("da_rel", at), p) * indirect_loss(ctx, at)
    n_contacts = int(ctx.options["contacts"])
    out = np.full((ctx.n, len(at), 1), np.nan)
    for i in range(ctx.n):
        for j, t in enumerate(at):
            g = ctx.rng(i, f"cylinder@{float(t):.6g}h")
            out[i, j, 0] = 100.0 * g.binomial(n_contacts, chance[i, j]) / n_contacts
    return ctx.rows(out, at, ["contralateral_use_pct"], ["%"])


AIMS = Assay(
    "aims", "abnormal involuntary movements after L-DOPA, summed over a session's "
    "1-min observations (axial, limb, orolingual: ALO; locomotive apart)",
    tuple(Readout(r, u) for r, u in AIMS_READOUTS),
    _aims, outputs=("lid_priming", "d1_drive"), sample_times=_aims_times,
    options={"periods_min": [20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0, 160.0, 180.0]},
    # mice are watched to 120 min (REFERENCES-NEXT 3.2: the Surmeier lab's protocol, six
    # periods), rats to 180 min (Cenci & Lundblad 2007)
    species_options={"mouse": {"periods_min": [20.0, 40.0, 60.0, 80.0, 100.0, 120.0]}},
    regions=("striatum",), figures=("ketasim.report.striatal_figures:aims_figures",),
    merge_kept=_merge_aims,
    species=RODENTS)
CYLINDER = Assay(
    "cylinder_test", "forelimb use in a cylinder: contralateral share of wall contacts (%)",
    (Readout("contralateral_use_pct", "%"),), _cylinder, outputs=("da_rel", "spine_loss_d2"),
    options={"contacts": 20}, positive=("contacts",), regions=("striatum",),
    species=RODENTS)
STEPPING = Assay(
    "stepping_test", "forepaw adjusting steps while moved sideways (contralateral and "
    "ipsilateral paw, mean per trial)",
    (Readout("stepping_contralateral_steps", "steps"),
     Readout("stepping_ipsilateral_steps", "steps")), _stepping,
    outputs=("da_rel", "da_intact", "spine_loss_d2"), options={"trials": 3},
    positive=("trials",),
    regions=("striatum",),
    species=RODENTS)
ROTATION = Assay(
    "rotation", "drug-induced rotation in a rotometer: net contralateral turns per "
    "minute over the counting window",
    (Readout("net_contralateral_turns_per_min", "turns/min"),
     Readout("contralateral_turns", "turns"), Readout("ipsilateral_turns", "turns")),
    _rotation, outputs=("d1_asymmetry",), sample_times=_rotation_times,
    options={"start_min": 0.0, "duration_min": 45.0}, positive=("duration_min",),
    regions=("striatum",),
    species=RODENTS)
