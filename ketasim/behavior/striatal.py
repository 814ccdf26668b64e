"""Striatal behaviour, scored as the LID labs score it (issue 15; REFERENCES-NEXT 3.2, 3.4).

- ``aims``: abnormal involuntary movements after an L-DOPA dose (Cenci & Lundblad 2007).
  Each session time in ``at`` is the time of the dose; the rater watches each animal
  for one minute at each of ``periods_min`` after it (rats: every 20 min to 180 min) and
  scores the severity of axial, limb, orolingual and locomotive AIMs 0-4. The session
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

For the report, ``aims`` keeps the scored observations (``kept["aims"]``: one row per
subject, session, period and subtype; the first :data:`KEEP_AIMS_SUBJECTS` subjects of an
arm), which :mod:`ketasim.report.striatal_figures` draws: the ALO score over sessions and
its time course within the last session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.core.assay import Assay, AssayContext, AssayRows, Readout

AIMS_SUBTYPES = ("axial", "limb", "orolingual", "locomotive")
ALO_SUBTYPES = AIMS_SUBTYPES[:3]  # axial, limb, orolingual
AIMS_MAX = 4  # severity per subtype per observation
# the report draws each animal's scores: a large arm keeps the scored observations of its
# first subjects only, so memory does not grow with n
KEEP_AIMS_SUBJECTS = 200
AIMS_COLUMNS = ("arm", "subject", "session_h", "period_min", "subtype", "score")
_AIMS_PARAMS = ("d1_threshold", "drive_50", "hill", "animal_cv", "rater_sd",
                "weight_axial", "weight_limb", "weight_orolingual", "weight_locomotive")
_CYL_PARAMS = ("da_50", "hill")
#: the readouts of ``aims``, in the order the assay measures them
AIMS_READOUTS = (("aims_alo", "score"), *((f"aims_{s}", "score") for s in AIMS_SUBTYPES),
                 ("aims_alo_peak_min", "min"))


def _params(registry, prefix: str, names) -> dict[str, float]:
    return {k: registry.value(f"{prefix}.{k}") for k in names}


def aims_drive(priming: np.ndarray, d1: np.ndarray, threshold: float) -> np.ndarray:
    """Dyskinesia drive of the striatal D1 neurons: priming x the D1 signal above the
    threshold, in units of the threshold (0 when either is absent)."""
    return np.asarray(priming) * np.clip(np.asarray(d1) - threshold, 0.0, None) / threshold


def aims_severity(drive: np.ndarray, p: dict) -> np.ndarray:
    """Latent severity (0-4) of a subtype at dyskinesia drive ``drive`` (already scaled
    by the animal's sensitivity and the subtype's weight)."""
    x = np.clip(np.asarray(drive, dtype=float), 0.0, None) ** p["hill"]
    return AIMS_MAX * x / (x + p["drive_50"] ** p["hill"])


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


def contralateral_use(da: np.ndarray, p: dict) -> np.ndarray:
    """Chance (0-0.5) that a wall contact is made with the contralateral forelimb, at
    striatal dopamine ``da`` (x intact): 0.5 x h(da) / h(1), h a Hill function, capped
    at 0.5 (both limbs used equally)."""
    n, k = p["hill"], p["da_50"]
    h = np.clip(np.asarray(da, dtype=float), 0.0, None) ** n
    return np.minimum(0.5 * (h / (h + k**n)) / (1.0 / (1.0 + k**n)), 0.5)


def _cylinder(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    p = _params(ctx.registry, "behavior.cylinder", _CYL_PARAMS)
    chance = contralateral_use(ctx.trajectory("da_rel", np.asarray(at, float)), p)
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
    regions=("striatum",), figures=("ketasim.report.striatal_figures:aims_figures",),
    merge_kept=_merge_aims)
CYLINDER = Assay(
    "cylinder_test", "forelimb use in a cylinder: contralateral share of wall contacts (%)",
    (Readout("contralateral_use_pct", "%"),), _cylinder, outputs=("da_rel",),
    options={"contacts": 20}, positive=("contacts",), regions=("striatum",))
