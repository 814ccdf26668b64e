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
arm) and draws two figures from them (:func:`aims_figures`): the ALO score over sessions
and its time course within the last session.
"""

from __future__ import annotations

from pathlib import Path

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
    out = np.full((ctx.n, len(at), 2 + len(AIMS_SUBTYPES)), np.nan)
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
            alo = scored[:, :3].sum(axis=1)  # per observation
            # the observation with the most ALO (the first of ties; none without AIMs)
            peak = minutes[int(np.argmax(alo))] if alo.max() > 0 else np.nan
            out[i, j] = (per_type[:3].sum(), *per_type, peak)
            if ctx.subjects[i] < KEEP_AIMS_SUBJECTS:
                kept.append((int(ctx.subjects[i]), float(t), scored))
    if kept:
        ctx.keep("aims", _aims_table(ctx.arm, kept, minutes))
    names = ["aims_alo", *(f"aims_{s}" for s in AIMS_SUBTYPES), "aims_alo_peak_min"]
    return ctx.rows(out, at, names, ["score"] * (len(names) - 1) + ["min"])


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


def alo_per_period(table: pd.DataFrame) -> pd.DataFrame:
    """ALO score (axial + limb + orolingual, 0-12) of each observation: columns arm,
    subject, session_h, period_min, alo."""
    alo = table[table["subtype"].isin(ALO_SUBTYPES)]
    return (alo.groupby(["arm", "subject", "session_h", "period_min"], observed=True,
                        sort=True)["score"].sum().rename("alo").astype(int).reset_index())


def alo_per_session(table: pd.DataFrame) -> pd.DataFrame:
    """ALO session score (summed over the session's periods) of each subject and session:
    columns arm, subject, session_h, alo (the ``aims_alo`` readout)."""
    per = alo_per_period(table)
    return per.groupby(["arm", "subject", "session_h"], sort=True)["alo"].sum().reset_index()


def _mean_sem(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), (float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0)


def _figure(n_cols: int, width: float, height: float):
    # matplotlib only when a report is drawn, on a figure of its own (no pyplot: no
    # backend set, no figure registered; rendered by the Agg canvas)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, n_cols, squeeze=False)[0]


def _periods_text(table: pd.DataFrame) -> str:
    per = sorted({float(m) for m in table["period_min"].unique()})
    return ", ".join(f"{m:g}" for m in per)


def aims_sessions_figure(aims: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """ALO session score against the day of L-DOPA (session dose time / 24 h + 1), one
    colour per arm: each animal a thin line, the arm's mean with the SEM across animals."""
    sessions = {arm: alo_per_session(t) for arm, t in aims.items() if len(t)}
    if not sessions:
        return None
    fig, (ax,) = _figure(1, 5.2, 3.4)
    for k, (arm, s) in enumerate(sessions.items()):
        colour = f"C{k % 10}"
        s = s.assign(day=s["session_h"] / 24.0 + 1.0)
        for _, animal in s.groupby("subject", sort=True):
            ax.plot(animal["day"], animal["alo"], color=colour, lw=0.5, alpha=0.35)
        days = np.sort(s["day"].unique())
        stats = np.array([_mean_sem(s.loc[s["day"] == d, "alo"]) for d in days])
        ax.errorbar(days, stats[:, 0], yerr=stats[:, 1], color=colour, lw=1.8, marker="o",
                    ms=4, capsize=3, label=f"{arm} (n={s['subject'].nunique()})")
    days = np.unique(np.concatenate([s["session_h"].to_numpy() / 24.0 + 1.0
                                     for s in sessions.values()]))
    if len(days) <= 12:
        ax.set_xticks(days, [f"{d:g}" for d in days])
    ax.set_xlabel("day of L-DOPA")
    ax.set_ylabel("ALO AIMs score (session sum)")
    top = max(ax.get_ylim()[1], 1.0)
    ax.set_ylim(-0.03 * top, top)  # an arm at 0 stays visible above the axis
    ax.set_title("AIMs over sessions: axial + limb + orolingual, mean \u00b1 SEM",
                 fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def aims_time_course_figure(aims: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """Mean ALO score per observation (0-12) against minutes after L-DOPA in the last
    session of each arm, one line per arm with the SEM across animals."""
    per = {arm: alo_per_period(t) for arm, t in aims.items() if len(t)}
    if not per:
        return None
    fig, (ax,) = _figure(1, 5.2, 3.4)
    for k, (arm, p) in enumerate(per.items()):
        last = float(p["session_h"].max())
        p = p[p["session_h"] == last]
        minutes = np.sort(p["period_min"].unique())
        stats = np.array([_mean_sem(p.loc[p["period_min"] == m, "alo"]) for m in minutes])
        line, = ax.plot(minutes, stats[:, 0], color=f"C{k % 10}", lw=1.5, marker="o", ms=3,
                        label=f"{arm}, day {last / 24.0 + 1.0:g} "
                              f"(n={p['subject'].nunique()})")
        ax.fill_between(minutes, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1],
                        color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("minutes after L-DOPA")
    ax.set_ylabel("ALO AIMs score per observation (0-12)")
    ax.set_ylim(-0.3, 3 * AIMS_MAX + 0.3)
    ax.set_xlim(left=0)
    ax.set_title("AIMs within a session (last session of each arm), mean \u00b1 SEM",
                 fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def aims_figures(kept: dict, out: Path, prefix: str) -> list:
    """The report's AIMs figures (all arms with the ``aims`` assay): the ALO score over
    sessions and within the last session; ``(png, alt, caption)`` triples."""
    aims = {arm: k["aims"] for arm, k in kept.items() if "aims" in k}
    if not aims:
        return []
    out = Path(out)
    periods = "; ".join(f"{arm}: {_periods_text(t)}" for arm, t in aims.items())
    over = ("AIMs over sessions: the axial + limb + orolingual (ALO) score of each session, "
            "summed over its 1-min observations (each 0-12), against the day of L-DOPA "
            "(session time / 24 h + 1: day 1 is the day of the scenario's time 0); thin "
            f"lines: animals (at most the first {KEEP_AIMS_SUBJECTS:,d} of an arm), bold: "
            f"mean \u00b1 SEM across animals. Observations at min after L-DOPA: {periods}")
    within = ("AIMs within a session: the mean ALO score of each 1-min observation (0-12) "
              "against minutes after L-DOPA, in the last session of each arm, with SEM "
              "bands across animals")
    return [(aims_sessions_figure(aims, out / f"{prefix}sessions.png"), "AIMs over sessions",
             over),
            (aims_time_course_figure(aims, out / f"{prefix}time_course.png"),
             "AIMs within a session", within)]


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
    (Readout("aims_alo", "score"), *(Readout(f"aims_{s}", "score") for s in AIMS_SUBTYPES),
     Readout("aims_alo_peak_min", "min")),
    _aims, outputs=("lid_priming", "d1_drive"), sample_times=_aims_times,
    options={"periods_min": [20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0, 160.0, 180.0]},
    regions=("striatum",), figures=("ketasim.behavior.striatal:aims_figures",),
    merge_kept=_merge_aims)
CYLINDER = Assay(
    "cylinder_test", "forelimb use in a cylinder: contralateral share of wall contacts (%)",
    (Readout("contralateral_use_pct", "%"),), _cylinder, outputs=("da_rel",),
    options={"contacts": 20}, positive=("contacts",), regions=("striatum",))
