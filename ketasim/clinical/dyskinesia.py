"""L-DOPA-induced dyskinesia in patients: the Unified Dyskinesia Rating Scale (issue 15
item 8).

``udysrs`` rates the UDysRS (Goetz, Nutt & Stebbins 2008 Mov Disord 23:2398) item by item
in virtual Parkinson's patients (the ``parkinson_disease`` intervention, then oral
L-DOPA), from the striatal signalling layer (region ``striatum``):

- Part 1, historical disability from on-dyskinesia (items 1-11, 0-4 each, 0-44): item 1,
  the share of the waking day spent with dyskinesia (0 none, 1 up to 25%, 2 up to 50%,
  3 up to 75%, 4 more), and items 2-11, its impact on ten daily activities;
- Part 2, historical off-dystonia (items 12-15, 0-4 each, 0-16);
- Part 3, objective impairment (items 16-22): dyskinesia in seven body regions (face,
  neck, both arms/shoulders, trunk, both legs/hips), each rated 0-4 while the patient
  does four activities and scored as the highest of the four (0-28);
- Part 4, objective disability (items 23-26): how much dyskinesia hinders the four
  activities (communication, drinking from a cup, dressing, walking), 0-4 each (0-16).

The total is 0-104. The readouts are the total and the four parts (unit "score").

The patient's dyskinesia follows the same drive as the rats' AIMs
(:func:`ketasim.signaling.dyskinesia.aims_drive`: priming of dyskinesia times the
striatal D1 signal above ``behavior.aims.d1_threshold``), scaled by the patient's
sensitivity (log-normal, ``clinical.udysrs.patient_cv``), into a severity 0-4
(:func:`ketasim.signaling.dyskinesia.aims_severity` with the scale's own ``drive_50`` and
``hill``). Each visit time in ``at`` is the start of the visit day:

- the objective exam (Parts 3 and 4) is made ``exam_h`` hours later, at the patient's
  peak-dose ON (default 14 h: with time 0 at midnight, 3 h after an 11:00 dose; in the
  model brain L-DOPA peaks about 3 h after an oral dose, and the first dose of the day,
  after the overnight washout, reaches less than the later ones); each body region's
  severity is the patient's severity at the drive times the patient's share of it in
  that region (a Dirichlet profile), Part 4 the same with ``disability_weight``;
- the historical parts (1 and 2) look back over the ``history_d`` days (default 7)
  before the visit, on a grid of ``step_h`` hours (anchored at multiples of the step),
  in waking hours only (``clinical.udysrs.wake_h`` to ``sleep_h``, clock hours with time 0
  at midnight): item 1 is the share of waking time with a severity of at least
  ``on_severity``; items 2-11 follow the mean waking severity times ``impact_gain`` and
  the patient's profile over the activities. Part 2 follows the waking dopamine deficit
  of the striatum (``pos(1 - dopamine)``: OFF periods, before the morning dose works and
  as doses wear off) times the priming of dyskinesia, ``off_gain`` and the patient's
  propensity to off-dystonia (log-normal, ``off_cv``): item 12 the share of waking time
  with an off-dystonia severity of at least ``on_severity`` (rated as item 1), items
  13-15 the mean waking severity through the patient's profile over them. The priming factor is an
  assumption: off-period dystonia is taken as a motor complication of chronic L-DOPA in
  the same sensitised circuit, so neither a patient never treated with L-DOPA (whose
  dopamine is low all day) nor a person without the disease scores on it.

Ratings: item noise (``item_noise_sd``) and the patient's rater (raters are people, as
for the depression scales: the same pool, assignment and persistent bias, drift and
per-visit shift of :class:`ketasim.clinical.model.Rater`, in proportion to each part's
range) both grow with the latent severity up to one point, so a patient without
dyskinesia scores 0, as in the AIMs; scores are rounded and clipped to 0-4. The
patient's traits come from the stream "udysrs_patient", each visit's draws from
"udysrs@<time>h" (region-keyed); the patient's rater is the one of the depression scales
(the stream "clinical_rater" of the default region), so a patient rated on both scales
keeps one rater.
"""

from __future__ import annotations

import numpy as np

from ketasim.analysis.trial import Item, Scale
from ketasim.clinical.assays import RATERS, rater_rng
from ketasim.clinical.model import ClinicalParams, Rater
from ketasim.core.assay import HUMANS, Assay, AssayContext, AssayRows, Readout
from ketasim.core.streams import assay_rng
from ketasim.params.registry import ParamGroup
from ketasim.signaling.dyskinesia import aims_drive, aims_severity

ITEM_MAX = 4  # every UDysRS item is rated 0-4


def _items(first: int, names) -> tuple[Item, ...]:
    return tuple(Item(first + k, name, ITEM_MAX) for k, name in enumerate(names))


_PART1 = ("time with on-dyskinesia", "speech", "chewing and swallowing", "eating tasks",
          "dressing", "hygiene", "handwriting", "hobbies and other activities",
          "walking and balance", "public and social settings",
          "exciting or emotional settings")
_PART2 = ("time with off-dystonia", "impact of off-dystonia on activities",
          "impact of off-dystonia pain", "off-dystonia pain severity")
_PART3 = ("face", "neck", "right arm and shoulder", "left arm and shoulder", "trunk",
          "right leg and hip", "left leg and hip")
_PART4 = ("communication", "drinking from a cup", "dressing", "ambulation")

#: UDysRS, Goetz, Nutt & Stebbins 2008 (Mov Disord 23:2398): 26 items 0-4 in four parts,
#: total 0-104. Item names are short labels, not the form's wording.
UDYSRS = Scale(
    key="udysrs",
    name="UDysRS",
    items=(_items(1, _PART1) + _items(12, _PART2) + _items(16, _PART3)
           + _items(23, _PART4)),
    subscales=(("part1", tuple(range(1, 12))), ("part2", tuple(range(12, 16))),
               ("part3", tuple(range(16, 23))), ("part4", tuple(range(23, 27)))),
    reference="Goetz, Nutt & Stebbins 2008 Mov Disord 23:2398",
)
PARTS = ("part1", "part2", "part3", "part4")
_PART_ITEMS = {k: np.array(UDYSRS.subscale(k)) - 1 for k in PARTS}
#: the activities of the objective exam, each rated in every body region (Part 3 scores
#: a region's highest rating over them)
N_EXAM_ACTIVITIES = len(_PART4)
#: the readouts of ``udysrs``, in the order the assay measures them
UDYSRS_READOUTS = ("udysrs_total", *(f"udysrs_{k}" for k in PARTS))

PARAM_NAMES = ("drive_50", "hill", "patient_cv", "profile_conc", "item_noise_sd",
               "on_severity", "impact_gain", "disability_weight", "off_gain", "off_cv",
               "wake_h", "sleep_h")


class UdysrsParams(ParamGroup):
    PREFIX, NAMES = "clinical.udysrs", PARAM_NAMES


def history_grid(t: float, history_d: float, step_h: float) -> np.ndarray:
    """The look-back grid of a visit at ``t`` (h): multiples of ``step_h`` from
    ``history_d`` days before the visit up to (not including) it."""
    k0 = np.ceil((t - 24.0 * history_d) / step_h - 1e-9)
    k1 = np.ceil(t / step_h - 1e-9)
    return np.arange(k0, k1) * step_h


def waking(times: np.ndarray, v: dict) -> np.ndarray:
    """Whether each time (h, time 0 at midnight) falls in waking hours."""
    clock = np.mod(np.asarray(times, dtype=float), 24.0)
    return (clock >= v["wake_h"]) & (clock < v["sleep_h"])


def _sample_times(at: np.ndarray, options: dict) -> np.ndarray:
    at = np.asarray(at, dtype=float)
    parts = [history_grid(float(t), float(options["history_d"]), float(options["step_h"]))
             for t in at]
    return np.unique(np.concatenate([*parts, at + float(options["exam_h"])]))


class PatientDyskinesia:
    """A patient's dyskinesia traits, drawn once in a fixed order from the patient's own
    stream: sensitivity to the dyskinesia drive (log-normal), propensity to off-dystonia
    (log-normal), and the patient's profile (Dirichlet, mean 1 per item) over the impact
    items of Part 1, the items of Part 2, the body regions of Part 3 and the activities of
    Part 4."""

    def __init__(self, rng: np.random.Generator, v: dict):
        self.sensitivity = _lognormal(rng, v["patient_cv"])
        self.off = _lognormal(rng, v["off_cv"])
        c = v["profile_conc"]
        self.impact = rng.dirichlet(np.full(len(_PART1) - 1, c)) * (len(_PART1) - 1)
        self.off_items = rng.dirichlet(np.full(len(_PART2), c)) * len(_PART2)
        self.regions = rng.dirichlet(np.full(len(_PART3), c)) * len(_PART3)
        self.activities = rng.dirichlet(np.full(len(_PART4), c)) * len(_PART4)


def _lognormal(rng: np.random.Generator, cv: float) -> float:
    sig = np.sqrt(np.log1p(cv**2))
    return float(np.exp(rng.normal(-0.5 * sig**2, sig)))


def _rate(latent: np.ndarray, shift: float, rng: np.random.Generator, noise_sd: float
          ) -> np.ndarray:
    """Integer scores (0-4) of items with latent severities ``latent``: the rater's shift
    (shared over the items) and item noise, both growing with the latent severity up to
    one point (nothing to see, nothing scored), rounded and clipped."""
    gate = np.minimum(np.clip(latent, 0.0, None), 1.0)
    noisy = latent + gate * (shift / latent.size + rng.normal(0.0, noise_sd, latent.shape))
    return np.clip(np.rint(noisy), 0, ITEM_MAX)


def time_category(share: float) -> float:
    """UDysRS item 1 from the share of waking time with dyskinesia: 0 none, 1 up to 25%,
    2 up to 50%, 3 up to 75%, 4 more."""
    return 0.0 if share <= 0.0 else float(np.clip(np.ceil(4.0 * min(share, 1.0) - 1e-9),
                                                  1, ITEM_MAX))


def _rate_time(share: float, shift: float, rng: np.random.Generator, noise_sd: float
               ) -> float:
    """Item 1: the share of waking time as the patient recalls it (the same noise and
    rater's shift as :func:`_rate`, on the 0-4 axis of the share), in its category."""
    x = 4.0 * share
    gate = min(x, 1.0)
    return time_category((x + gate * (shift + rng.normal(0.0, noise_sd))) / 4.0)


def udysrs_items(ctx: AssayContext, at: np.ndarray) -> np.ndarray:
    """(n, len(at), 26) item scores of the chunk's patients at visits ``at``."""
    v = UdysrsParams.from_registry(ctx.registry).values
    clinical = ClinicalParams.from_registry(ctx.registry)
    sev = {"drive_50": v["drive_50"], "hill": v["hill"]}
    thr = ctx.registry.value("behavior.aims.d1_threshold")
    opts = ctx.options
    history_d, step_h = float(opts["history_d"]), float(opts["step_h"])
    exam = np.asarray(at, dtype=float) + float(opts["exam_h"])
    exam_drive = aims_drive(ctx.trajectory("lid_priming", exam),
                            ctx.trajectory("d1_drive", exam), thr)  # (n, visits)
    grids = [history_grid(float(t), history_d, step_h) for t in at]
    history = []
    for g in grids:
        awake = g[waking(g, v)]
        priming = ctx.trajectory("lid_priming", awake)
        history.append((
            aims_drive(priming, ctx.trajectory("d1_drive", awake), thr),
            np.clip(1.0 - ctx.trajectory("da_rel", awake), 0.0, None) * priming))
    pool = int(opts["raters"])
    spans = {k: ITEM_MAX * len(_PART_ITEMS[k]) / 60.0 for k in PARTS}  # in MADRS ranges
    out = np.zeros((ctx.n, len(at), UDYSRS.n_items))
    raters: dict[int, Rater] = {}
    for i in range(ctx.n):
        pt = PatientDyskinesia(ctx.rng(i, "udysrs_patient"), v)
        # the patient's rater: the same person as on the depression scales
        r = int(assay_rng(ctx.seed, ctx.stream_arm, int(ctx.stream_ids[i]), "clinical_rater")
                .integers(pool))
        rater = raters.setdefault(r, Rater(rater_rng(ctx.seed, ctx.stream_arm, r), clinical))
        for j, t in enumerate(at):
            g = ctx.rng(i, f"udysrs@{float(t):.6g}h")
            shift = rater.shift(float(t), g.standard_normal(), clinical)
            drive, deficit = history[j]
            s = aims_severity(drive[i] * pt.sensitivity, sev)  # waking severity, 0-4
            on_share = float(np.mean(s >= v["on_severity"])) if s.size else 0.0
            mean_sev = float(s.mean()) if s.size else 0.0
            off = float(deficit[i].mean()) if s.size else 0.0
            # Part 1: item 1 from the share of waking time, the impact items from the
            # mean waking severity
            n1 = len(_PART1)
            item1 = _rate_time(on_share, spans["part1"] * shift / n1, g, v["item_noise_sd"])
            impact = np.clip(v["impact_gain"] * mean_sev * pt.impact, 0.0, ITEM_MAX)
            p1 = np.concatenate([[item1], _rate(impact, spans["part1"] * shift * (n1 - 1)
                                                / n1, g, v["item_noise_sd"])])
            # Part 2: off-dystonia from the waking dopamine deficit of a primed patient:
            # item 12 the share of waking time with it (as item 1 for dyskinesia), items
            # 13-15 its impact and pain from the mean waking severity
            n2 = len(_PART2)
            off_now = v["off_gain"] * deficit[i] * pt.off if s.size else np.zeros(0)
            off_share = float(np.mean(off_now >= v["on_severity"])) if s.size else 0.0
            item12 = _rate_time(off_share, spans["part2"] * shift / n2, g,
                                v["item_noise_sd"])
            off_latent = np.clip(v["off_gain"] * off * pt.off * pt.off_items[1:], 0.0,
                                 ITEM_MAX)
            p2 = np.concatenate([[item12], _rate(off_latent, spans["part2"] * shift
                                                 * (n2 - 1) / n2, g, v["item_noise_sd"])])
            # Part 3: each region rated during each activity, scored as the highest
            x = exam_drive[i, j] * pt.sensitivity
            regions = aims_severity(x * pt.regions, sev)
            p3 = np.max([_rate(regions, spans["part3"] * shift, g, v["item_noise_sd"])
                         for _ in range(N_EXAM_ACTIVITIES)], axis=0)
            # Part 4: disability in the four activities
            disab = aims_severity(x * v["disability_weight"] * pt.activities, sev)
            p4 = _rate(disab, spans["part4"] * shift, g, v["item_noise_sd"])
            out[i, j] = np.concatenate([p1, p2, p3, p4])
    return out


def _udysrs(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    items = udysrs_items(ctx, np.asarray(at, dtype=float))
    cols = [items.sum(axis=2)] + [items[:, :, _PART_ITEMS[k]].sum(axis=2) for k in PARTS]
    return ctx.rows(np.stack(cols, axis=2), at, list(UDYSRS_READOUTS),
                    ["score"] * len(UDYSRS_READOUTS))


UDYSRS_ASSAY = Assay(
    "udysrs", "Unified Dyskinesia Rating Scale (UDysRS, 26 items in four parts, "
    "0-104), rated item by item in Parkinson's patients on L-DOPA",
    tuple(Readout(r, "score") for r in UDYSRS_READOUTS), _udysrs,
    outputs=("lid_priming", "d1_drive", "da_rel"), sample_times=_sample_times,
    options={"exam_h": 14.0, "history_d": 7.0, "step_h": 0.5, "raters": RATERS},
    positive=("history_d", "step_h", "raters"), regions=("striatum",),
    species=HUMANS)
