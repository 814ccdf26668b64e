"""A clinical trial on simulated patients: dropout, and the analysis plan of a ``design:``.

A scenario's ``design:`` block (:class:`ketasim.scenario.model.Design`) names the control
arm, the scale (a clinical readout), the baseline and primary visits, the MMRM's
covariance and df, the response and remission rules, and optionally dropout. Two steps:

* :func:`apply_dropout` runs after the simulation (:func:`ketasim.experiment.runner.simulate`
  calls it): each patient of an analysed arm may leave the trial at each visit of the scale
  after baseline, and every readout of that patient from the first missed visit on is
  removed (the visit did not happen). The probability of leaving by a visit is
  ``1 - (1 - rate_per_week) ** (m * interval / 1 week)``, the interval running from the
  previous visit (from baseline for the first), with ``m = 1`` for ``mar`` and, for
  ``mnar``, ``m = exp(strength * (y / y0 - 1))`` where ``y`` is the patient's score at
  that visit (the one that goes missing: missing not at random) and ``y0`` at baseline
  (at least 1): a patient whose score has not moved leaves at the design's rate, one
  who improved less often, one who worsened more often. The uniform draw of each
  patient and visit comes from its own keyed stream
  (:func:`ketasim.core.streams.assay_rng`, purpose ``dropout@<visit>h``), so dropout is
  reproducible and does not depend on chunking, on other patients or on other arms.
  Reasons: ``lost to follow-up`` (mar; mnar when the score at the missed visit shows a
  response), ``lack of efficacy`` (mnar, no response at the missed visit).
* :func:`analyse_trial` computes the tables ``ketasim run`` writes: the MMRM of change
  from baseline (intent to treat: every patient with a baseline, missing later visits
  left missing) with each arm's contrast against control at each post-baseline visit
  and LS means (``trial``); response and remission per arm and visit with Wilson
  intervals and odds ratios against control, patients who left counting as
  non-responders (``endpoints``); the CONSORT counts (``consort``); and the mean change
  from baseline per arm and visit among the patients seen (``observed``, for the
  report's figure).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ketasim.analysis.mmrm import fit_mmrm
from ketasim.analysis.trial import (
    BINARY_COLUMNS,
    PAIRED_BINARY_COLUMNS,
    binary_endpoint,
    consort,
    paired_binary_endpoint,
    relapse_rows,
    stable_patients,
    survival,
)
from ketasim.clinical.assays import SCALE_READOUTS
from ketasim.core.streams import assay_rng

__all__ = [
    "CROSSOVER_ENDPOINT_COLUMNS",
    "DISPOSITION_COLUMNS",
    "ENDPOINT_COLUMNS",
    "ICE_ASSAY",
    "INTERCURRENT_COLUMNS",
    "INTERCURRENT_SUMMARY_COLUMNS",
    "TRIAL_COLUMNS",
    "IntercurrentPlan",
    "IntercurrentRule",
    "TrialTables",
    "analyse_trial",
    "apply_dropout",
    "dropout_key",
]

HOURS_PER_WEEK = 168.0
LOST = "lost to follow-up"
NO_EFFICACY = "lack of efficacy"
NRI = "non-responder imputation"

#: Columns of the per-patient disposition table.
DISPOSITION_COLUMNS = ["arm", "subject", "completed", "last_visit_h", "dropout_h",
                       "dropout_reason"]
#: Columns of ``trial.csv``: ``kind`` is ``contrast`` (arm minus control), ``lsmean``
#: (model LS mean of change from baseline) or ``observed`` (mean change of the patients
#: seen at the visit, SE of the mean).
TRIAL_COLUMNS = ["kind", "scale", "arm", "control", "visit_h", "primary", "n", "n_control",
                 "estimate", "se", "df", "t", "p", "ci_low", "ci_high", "df_method",
                 "covariance", "model", "note"]
#: Columns of ``endpoints.csv``: which endpoint, visit and rule, then
#: :data:`ketasim.analysis.trial.BINARY_COLUMNS`.
ENDPOINT_COLUMNS = ["endpoint", "visit_h", "primary", "rule", "missing", "n_observed",
                    *BINARY_COLUMNS]
#: Columns of ``endpoints.csv`` for a crossover: the same first six, then
#: :data:`ketasim.analysis.trial.PAIRED_BINARY_COLUMNS` (``arm`` is the treatment;
#: ``visit_h`` the primary visit from each period's start).
CROSSOVER_ENDPOINT_COLUMNS = ["endpoint", "visit_h", "primary", "rule", "missing",
                              "n_observed", *PAIRED_BINARY_COLUMNS]


#: The assay name under which the runner carries intercurrent events among an arm's
#: readouts until :func:`ketasim.experiment.runner.simulate` takes them out
#: (:attr:`~ketasim.experiment.runner.RunResult.intercurrent`).
ICE_ASSAY = "intercurrent"
#: Columns of the per-patient intercurrent events table (``intercurrent.csv``).
INTERCURRENT_COLUMNS = ["arm", "subject", "event", "time_h"]


class IntercurrentRule(NamedTuple):
    """One intercurrent event of a design, for one arm (see :class:`IntercurrentPlan`)."""

    name: str
    assay: str  # the assay that rates the trigger readout
    readout: str
    above: bool  # the threshold is ``>=`` (else ``<=``)
    value: float
    after: float  # the first visit time that counts (h)
    entries: tuple[tuple[int, float], ...]  # withheld protocol entries: (index, time h)
    rescue: tuple  # rescue drug events, times from the event, one dose each
    ref: float  # the visit a fractional change is taken from (h; NaN: the rating itself)


@dataclass(frozen=True)
class IntercurrentPlan:
    """A design's intercurrent events as the runner carries them out in one arm (named
    tuples, so a distributed run can pickle it), in the design's order."""

    rules: tuple[IntercurrentRule, ...]

    @staticmethod
    def of(design, arm, analysed: Iterable[str]) -> IntercurrentPlan | None:
        """The plan for ``arm`` (None without intercurrent events or for an arm not among
        the ``analysed`` arms)."""
        if design is None or not design.intercurrent or arm.name not in set(analysed):
            return None
        rules = []
        for e in design.intercurrent:
            entries = tuple((k, float(ev.at)) for k, ev in enumerate(arm.protocol)
                            if getattr(ev, "drug", None) in e.withhold)
            above = e.at_or_above is not None
            rescue = tuple(d for ev in (e.rescue or []) for d in ev.repeated())
            rules.append(IntercurrentRule(
                e.name, SCALE_READOUTS[e.readout][0], e.readout, above,
                float(e.at_or_above if above else e.at_or_below), float(e.after), entries,
                rescue, np.nan if e.relative_to is None else float(e.relative_to)))
        return IntercurrentPlan(tuple(rules))

    @property
    def assays(self) -> set[str]:
        return {r.assay for r in self.rules}

    def first_events(self, subjects: np.ndarray, rows: dict[str, pd.DataFrame]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Per subject of a chunk (``subjects``, their indices in the arm, increasing):
        the time of its first intercurrent event (inf: none) and the rule's index (-1),
        from the chunk's readouts of the trigger assays (``rows``: assay -> frame). On a
        tie the rule listed first counts."""
        stop = np.full(subjects.size, np.inf)
        which = np.full(subjects.size, -1, dtype=np.int64)
        for r, rule in enumerate(self.rules):
            readout, above, value, ref = rule.readout, rule.above, rule.value, rule.ref
            df = rows[rule.assay]
            v = df["value"].to_numpy(float)
            t = df["time_h"].to_numpy(float)
            this = df["readout"].to_numpy() == readout
            if np.isfinite(ref):  # the fractional change from the rating at ``ref``
                at_ref = this & (t == ref)
                y0 = pd.Series(v[at_ref], index=df["subject"].to_numpy()[at_ref])
                y0 = y0[~y0.index.duplicated()].reindex(df["subject"].to_numpy()).to_numpy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(y0 > 0, (v - y0) / y0, np.nan)  # no rating then: none
            with np.errstate(invalid="ignore"):
                hit = this & (t >= rule.after) & ((v >= value) if above else (v <= value))
            if not hit.any():
                continue
            first = pd.Series(t[hit]).groupby(df["subject"].to_numpy()[hit]).min()
            pos = np.searchsorted(subjects, first.index.to_numpy())
            earlier = first.to_numpy() < stop[pos]
            stop[pos[earlier]] = first.to_numpy()[earlier]
            which[pos[earlier]] = r
        return stop, which

    @staticmethod
    def groups(stop: np.ndarray, which: np.ndarray) -> list[tuple[int, float, np.ndarray]]:
        """The subjects with an event, grouped by rule and time: (rule, time, positions in
        the chunk), in order of rule, then time."""
        hit = np.flatnonzero(np.isfinite(stop))
        keys = np.unique(np.column_stack([which[hit], stop[hit]]), axis=0)  # sorted
        return [(int(r), float(t), hit[(which[hit] == r) & (stop[hit] == t)])
                for r, t in keys]

    def rescued(self, arm, r: int, t: float):
        """``arm`` with rule ``r``'s rescue doses appended to its protocol, started at
        time ``t`` (the arm itself without rescue). Appended, so the protocol's own
        entries keep their indices and drug slots."""
        rescue = self.rules[r].rescue
        if not rescue:
            return arm
        return arm.model_copy(update={"protocol": [
            *arm.protocol, *(ev.model_copy(update={"at": ev.at + t}) for ev in rescue)]})

    def withhold(self, events, r: int, t: float):
        """``events`` (:class:`ketasim.signaling.protocol.EventTable`, the subjects of one
        group) without rule ``r``'s withheld doses after time ``t``."""
        entries = dict(self.rules[r].entries)
        if not entries:
            return events
        return events.withhold(entries, np.full(events.values.shape[0], t))

    def rows(self, arm: str, subjects: np.ndarray, stop: np.ndarray, which: np.ndarray
             ) -> pd.DataFrame:
        """The events as readout rows (assay :data:`ICE_ASSAY`, the event's name as the
        readout, value 1 at its time)."""
        k = np.flatnonzero(np.isfinite(stop))
        return pd.DataFrame({
            "arm": arm, "subject": subjects[k].astype(np.int64), "assay": ICE_ASSAY,
            "readout": np.array([self.rules[r].name for r in which[k]], dtype=object),
            "time_h": stop[k], "value": 1.0, "unit": "1"})


def dropout_key(t: float) -> str:
    """The stream name of the dropout draw at visit ``t`` (hours)."""
    return f"dropout@{t:.6g}h"


def _analysed(scenario) -> list:
    """The analysed arms present in the scenario (control first) that measure the scale
    at the baseline visit. Tolerates a scenario trimmed after validation (power runs)."""
    d = scenario.design
    by_name = {arm.name: arm for arm in scenario.arms}
    names = d.analysed_arms(by_name) if d.control in by_name else [
        a for a in by_name if d.arms is None or a in d.arms]
    first = d.baseline + (d.crossover.periods[0] if d.crossover is not None else 0.0)
    return [by_name[a] for a in names
            if a in by_name and first in by_name[a].times_of(d.scale)]


def _scores(readouts: pd.DataFrame, scale: str, arm: str, n: int,
            visits: list[float]) -> pd.DataFrame:
    """(n, visits) scores of one arm's patients (NaN: not measured)."""
    r = readouts[(readouts["arm"] == arm) & (readouts["readout"] == scale)]
    wide = r.pivot_table(index="subject", columns="time_h", values="value", aggfunc="first",
                         dropna=False)
    return wide.reindex(index=np.arange(n), columns=visits)


def apply_dropout(scenario, readouts: pd.DataFrame, seed: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove the visits of the patients who leave the trial (module docstring) and return
    ``(readouts, disposition)``; without ``dropout`` in the design, readouts are returned
    unchanged and every patient completes. ``disposition`` has
    :data:`DISPOSITION_COLUMNS`, one row per patient of each analysed arm."""
    d = scenario.design
    drop = d.dropout
    rows = []
    cut: dict[tuple[str, int], float] = {}
    for arm in _analysed(scenario):
        visits = [t for t in arm.times_of(d.scale) if t > d.baseline]
        y = _scores(readouts, d.scale, arm.name, arm.n, [d.baseline, *visits]).to_numpy()
        gone = np.full(arm.n, np.inf)
        reason = np.full(arm.n, "", dtype=object)
        if drop is not None and drop.rate_per_week > 0 and visits:
            y0 = np.maximum(np.nan_to_num(y[:, 0], nan=1.0), 1.0)
            steps = np.diff([d.baseline, *visits]) / HOURS_PER_WEEK
            for j, t in enumerate(visits):
                yj = y[:, j + 1]
                m = np.ones(arm.n)
                if drop.mechanism == "mnar":
                    known = np.isfinite(yj)
                    m[known] = np.exp(np.clip(drop.strength * (yj[known] / y0[known] - 1.0),
                                              -50.0, 50.0))
                p = -np.expm1(m * steps[j] * np.log1p(-drop.rate_per_week))
                u = np.array([assay_rng(seed, arm.name, i, dropout_key(t)).random()
                              for i in range(arm.n)])
                new = np.isinf(gone) & (u < p)
                gone[new] = t
                if drop.mechanism == "mnar":
                    responded = (y0 - yj) >= d.response_fall * y0
                    reason[new] = np.where(responded[new], LOST, NO_EFFICACY)
                else:
                    reason[new] = LOST
        for i in range(arm.n):
            seen = [t for t in [d.baseline, *visits] if t < gone[i]]
            rows.append((arm.name, i, bool(np.isinf(gone[i])), seen[-1],
                         float(gone[i]) if np.isfinite(gone[i]) else np.nan, reason[i]))
            if np.isfinite(gone[i]):
                cut[(arm.name, i)] = float(gone[i])
    disposition = pd.DataFrame(rows, columns=DISPOSITION_COLUMNS)
    disposition["subject"] = disposition["subject"].astype(np.int64)
    disposition["completed"] = disposition["completed"].astype(bool)
    if cut:
        keys = pd.MultiIndex.from_arrays([readouts["arm"], readouts["subject"]])
        limit = pd.Series(cut).reindex(keys).to_numpy(dtype=float)
        keep = ~(readouts["time_h"].to_numpy(dtype=float) >= limit)  # NaN limit: kept
        readouts = readouts.loc[keep].reset_index(drop=True)
    return readouts, disposition


@dataclass(frozen=True, eq=False)
class TrialTables:
    """The tables of a trial's analysis (:func:`analyse_trial`)."""

    trial: pd.DataFrame
    endpoints: pd.DataFrame
    consort: pd.DataFrame
    disposition: pd.DataFrame
    visits: tuple[float, ...]
    notes: tuple[str, ...] = field(default=())
    #: with ``design.relapse``: per patient (arm, subject, duration_h, relapsed), and the
    #: Kaplan-Meier, summary and Cox tables of :func:`ketasim.analysis.trial.survival`
    relapse: pd.DataFrame | None = None
    relapse_km: pd.DataFrame | None = None
    relapse_summary: pd.DataFrame | None = None
    relapse_cox: pd.DataFrame | None = None
    #: with ``design.stratify``: per stratum and arm, the candidates allocated and the
    #: patients randomised (those passing screening)
    strata: pd.DataFrame | None = None
    #: with ``design.intercurrent``: the events per patient (arm, subject, event,
    #: time_h) and their counts per arm (:data:`INTERCURRENT_SUMMARY_COLUMNS`)
    intercurrent: pd.DataFrame | None = None
    intercurrent_summary: pd.DataFrame | None = None


def _long(readouts: pd.DataFrame, d, arms: list, visits: list[float]) -> pd.DataFrame:
    """One row per patient and post-baseline visit: subject, arm, visit, baseline, score,
    change (NaN where the visit is missing)."""
    frames = []
    for arm in arms:
        y = _scores(readouts, d.scale, arm.name, arm.n, [d.baseline, *visits])
        # patients with no reading at all were screen failures (ketasim.experiment.
        # population): they were never randomised
        y = y[y.notna().any(axis=1)]
        base = y[d.baseline].to_numpy()
        for t in visits:
            frames.append(pd.DataFrame({
                "subject": [f"{arm.name}#{i}" for i in y.index],
                "patient": y.index.to_numpy(), "arm": arm.name, "visit": float(t),
                "baseline": base, "score": y[t].to_numpy(),
                "change": y[t].to_numpy() - base}))
    out = pd.concat(frames, ignore_index=True)
    out["arm"] = pd.Categorical(out["arm"], categories=[a.name for a in arms])
    return out


def _with_strata(long: pd.DataFrame, patients: pd.DataFrame | None, d) -> pd.DataFrame:
    """With a stratified randomisation, one column ``stratum_<factor>`` per stratification
    factor (the patient's level, e.g. ``sex=female`` or ``failed_trials>=3``), which the
    primary analysis adjusts for (stratification factors enter the model that analyses a
    stratified trial: ICH E9, EMA guideline on adjustment for baseline covariates
    2015)."""
    if d.stratify is None or patients is None or "stratum" not in patients:
        return long
    allocated = patients[patients["arm"] != ""]  # not the candidates screened out before
    label = allocated.set_index(["arm", "subject"])["stratum"]
    key = pd.MultiIndex.from_arrays([long["arm"].astype(str), long["patient"]])
    parts = label.reindex(key).str.split("|", expand=True)
    out = long.copy()
    for k, factor in enumerate(d.stratify):
        out[f"stratum_{factor}"] = parts[k].to_numpy()
    return out


def _ancova(long: pd.DataFrame, control: str, alpha: float = 0.05,
            covariates: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The MMRM with one post-baseline visit: ``change ~ arm + baseline [+ factors]`` by
    least squares (residual df), the ``covariates`` treatment-coded factors. LS means set
    the baseline to its mean and weight each factor's levels equally, as the MMRM does
    (:func:`ketasim.analysis.mmrm.fit_mmrm`; SAS ``LSMEANS``, R emmeans), so one visit
    and several give LS means on the same footing; the contrasts do not depend on the
    weighting. Returns (lsmeans, contrasts) in the MMRM's columns."""
    from scipy import stats as sps

    d = long.dropna(subset=["change", "baseline"])
    arms = list(long["arm"].cat.categories)
    others = [a for a in arms if a != control]
    levels = [sorted(d[c].unique()) for c in covariates]
    dummies = [(d[c] == level).to_numpy(float) for c, lv in zip(covariates, levels)
               for level in lv[1:]]
    # each non-reference level's share in the LS means: one over the factor's levels
    weights = [1.0 / len(lv) for lv in levels for _ in lv[1:]]
    x = np.column_stack([np.ones(len(d))] + [(d["arm"] == a).to_numpy(float) for a in others]
                        + dummies + [d["baseline"].to_numpy(float)])
    y = d["change"].to_numpy(float)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    dfe = len(y) - x.shape[1]
    if dfe < 1:
        raise ValueError("too few patients for the ANCOVA")
    s2 = float(((y - x @ beta) ** 2).sum() / dfe)
    cov = s2 * np.linalg.inv(x.T @ x)
    q = float(sps.t.ppf(1 - alpha / 2, dfe))
    visit = float(long["visit"].iloc[0])
    mean_base = float(d["baseline"].mean())

    def row(c):
        est = float(c @ beta)
        se = float(np.sqrt(c @ cov @ c))
        t = est / se if se > 0 else np.nan
        return {"estimate": est, "se": se, "df": float(dfe), "t": t,
                "p": float(2 * sps.t.sf(abs(t), dfe)), "ci_low": est - q * se,
                "ci_high": est + q * se}

    def grid(a):
        c = np.zeros(x.shape[1])
        c[0], c[-1] = 1.0, mean_base
        for k, w in enumerate(weights):
            c[len(others) + 1 + k] = w
        if a != control:
            c[1 + others.index(a)] = 1.0
        return c

    ls = [{"arm": a, "visit": visit, **{k: v for k, v in row(grid(a)).items()
                                        if k not in ("t", "p")}} for a in arms]
    con = [{"arm": a, "control": control, "visit": visit, **row(grid(a) - grid(control))}
           for a in others]
    return pd.DataFrame(ls), pd.DataFrame(con)


def _model_tables(long: pd.DataFrame, d, visits: list[float]
                  ) -> tuple[pd.DataFrame, pd.DataFrame, str, str, str]:
    """(lsmeans, contrasts, df method, model text, note) of the primary analysis; with a
    stratified randomisation the stratification factors enter as main effects (the
    ``stratum_<factor>`` columns of :func:`_with_strata`)."""
    note = ""
    covariates = tuple(c for c in long.columns if c.startswith("stratum_")
                       and long[c].nunique() > 1)
    extra = "".join(f" + {c.removeprefix('stratum_')}" for c in covariates)
    if len(visits) == 1:
        ls, con = _ancova(long, d.control, covariates=covariates)
        return ls, con, "residual", ("ANCOVA (one post-baseline visit): change ~ arm + "
                                     f"baseline{extra}"), note
    data = long.dropna(subset=["change"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_mmrm(data, response="change", subject="subject", visit="visit", arm="arm",
                       baseline="baseline", covariates=covariates, control=d.control,
                       visits=visits, covariance=d.covariance, df=d.df)
    warned = "; ".join(dict.fromkeys(str(w.message) for w in caught
                                     if issubclass(w.category, RuntimeWarning)))
    note = (f"the MMRM fit gave numerical warnings ({warned}); check the standard errors"
            if warned else "")
    model = (f"MMRM: change ~ arm * visit + baseline * visit{extra}, REML, {d.covariance} "
             "covariance")
    return fit.lsmeans, fit.contrasts, d.df, model, note


def analyse_trial(scenario, readouts: pd.DataFrame,
                  disposition: pd.DataFrame | None = None,
                  patients: pd.DataFrame | None = None,
                  intercurrent: pd.DataFrame | None = None) -> TrialTables:
    """The analysis a scenario's ``design:`` asks for, on its (possibly dropped-out)
    readouts (module docstring). ``disposition`` from :func:`apply_dropout` (default:
    every patient completed); ``patients`` (:mod:`ketasim.experiment.population`, arms
    with a ``population:``) adds the screening stages to the CONSORT counts. A model that
    cannot be fitted (e.g. an arm with no patient
    left at a visit) leaves ``trial`` with the observed rows only and says why in
    ``note`` and :attr:`TrialTables.notes`. ``intercurrent``
    (:attr:`ketasim.experiment.runner.RunResult.intercurrent`, required with
    ``design.intercurrent``): under the ``hypothetical`` strategy each patient's ratings
    of the scale after their event are set missing before the analysis (the rating at
    the event's visit was made on treatment and stays); under ``while_on_treatment``
    they take the patient's last rating at or before the event; under
    ``treatment_policy`` every rating counts. Either way :attr:`TrialTables.intercurrent_summary` counts the
    events per arm."""
    d = scenario.design
    if d.crossover is not None:
        return _analyse_crossover(scenario, readouts, disposition, patients)
    ice_counts = None
    if d.intercurrent:
        if intercurrent is None:
            raise ValueError("analyse_trial: the design has intercurrent events; pass the "
                             "run's intercurrent table (RunResult.intercurrent)")
        readouts, ice_counts, ice_note = _intercurrent(scenario, readouts, intercurrent,
                                                       disposition)
    arms = _analysed(scenario)
    if disposition is None:
        disposition = apply_dropout(scenario.model_copy(update={
            "design": d.model_copy(update={"dropout": None})}), readouts, scenario.seed)[1]
    shared = None
    for arm in arms:
        post = {t for t in arm.times_of(d.scale) if t > d.baseline}
        shared = post if shared is None else shared & post
    visits = sorted(shared or ())
    long = _with_strata(_long(readouts, d, arms, visits), patients, d)
    seen = long.dropna(subset=["change"])
    n_seen = seen.groupby(["arm", "visit"], observed=False).size()
    notes: list[str] = [] if ice_counts is None else [ice_note]

    rows = []
    base_rows = {"scale": d.scale, "covariance": "", "df_method": "", "model": "", "note": ""}
    for arm in arms:
        y = _scores(readouts, d.scale, arm.name, arm.n,
                    [t for t in arm.times_of(d.scale) if t >= d.baseline])
        change = y.sub(y[d.baseline], axis=0)
        for t in change.columns:
            v = change[t].dropna().to_numpy(float)
            se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else np.nan
            rows.append({**base_rows, "kind": "observed", "arm": arm.name, "control": "",
                         "visit_h": float(t), "primary": bool(t == d.primary), "n": v.size,
                         "estimate": float(v.mean()) if v.size else np.nan, "se": se,
                         "model": "mean change from baseline of the patients seen"})
    try:
        ls, con, df_method, model, note = _model_tables(long, d, visits)
    except (ValueError, np.linalg.LinAlgError) as err:
        notes.append(f"the primary analysis could not be fitted: {err}")
        ls = con = None
    else:
        if note:
            notes.append(note)
        fitted = {**base_rows, "covariance": d.covariance if len(visits) > 1 else "",
                  "df_method": df_method, "model": model, "note": note}
        for r in con.to_dict("records"):
            rows.append({**fitted, "kind": "contrast", "arm": r["arm"],
                         "control": r["control"], "visit_h": float(r["visit"]),
                         "primary": bool(r["visit"] == d.primary),
                         "n": int(n_seen.get((r["arm"], r["visit"]), 0)),
                         "n_control": int(n_seen.get((d.control, r["visit"]), 0)),
                         **{k: r[k] for k in ("estimate", "se", "df", "t", "p", "ci_low",
                                              "ci_high")}})
        for r in ls.to_dict("records"):
            rows.append({**fitted, "kind": "lsmean", "arm": r["arm"], "control": "",
                         "visit_h": float(r["visit"]),
                         "primary": bool(r["visit"] == d.primary),
                         "n": int(n_seen.get((r["arm"], r["visit"]), 0)),
                         **{k: r[k] for k in ("estimate", "se", "df", "ci_low", "ci_high")}})
    if ls is None:
        for r in rows:
            r["note"] = notes[-1]
    order = {"contrast": 0, "lsmean": 1, "observed": 2}
    trial = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    trial = trial.sort_values("kind", key=lambda c: c.map(order), kind="stable")
    trial = trial.reset_index(drop=True)
    trial["n"] = trial["n"].astype(np.int64)

    endpoints = _endpoints(long, d, visits, notes)
    rel = km = summ = cox = None
    if d.relapse is not None:
        rel = relapse_times(readouts, d, arms)
        res = survival(rel, "duration_h", "relapsed", "arm", d.control)
        km, summ, cox = res.km, res.summary, res.cox
    flow = _flow(disposition, patients, {a.name for a in arms})
    if d.relapse is not None and d.relapse.stable is not None:
        note, stages = _withdrawal(readouts, d, arms, rel)
        notes.append(note)
        flow = pd.concat([flow, stages], ignore_index=True)
    if ice_counts is not None:  # CONSORT 2010: "discontinued intervention (reasons)"
        stopped = ice_counts[ice_counts["patients"] > 0]
        flow = pd.concat([flow, pd.DataFrame({
            "stage": "discontinued intervention", "arm": stopped["arm"].astype(str),
            "reason": stopped["event"].astype(str),
            "n": stopped["patients"].astype(np.int64)})], ignore_index=True)
    return TrialTables(trial, endpoints, flow, disposition, tuple(visits), tuple(notes),
                       rel, km, summ, cox, strata_table(patients, [a.name for a in arms]),
                       None if ice_counts is None else intercurrent, ice_counts)


def _event_times(readouts: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Per readout row, the time of its patient's (first) intercurrent event (NaN:
    none)."""
    first = events.drop_duplicates(["arm", "subject"])
    at = pd.Series(first["time_h"].to_numpy(float),
                   index=pd.MultiIndex.from_arrays([first["arm"], first["subject"]]))
    keys = pd.MultiIndex.from_arrays([readouts["arm"], readouts["subject"]])
    return at.reindex(keys).to_numpy(float)


def _while_on_treatment(readouts: pd.DataFrame, events: pd.DataFrame, scale: str
                        ) -> tuple[pd.DataFrame, int]:
    """Each event patient's ratings of ``scale`` after the event replaced by their last
    rating at or before it (a patient with none before it keeps theirs)."""
    keys = pd.MultiIndex.from_arrays([readouts["arm"], readouts["subject"]])
    limit = _event_times(readouts, events)
    time = readouts["time_h"].to_numpy(float)
    mine = (readouts["readout"] == scale).to_numpy() & np.isfinite(limit)
    before = readouts[mine & (time <= limit)].sort_values("time_h", kind="stable")
    last = before.groupby(["arm", "subject"])["value"].last()
    after = mine & (time > limit)
    value = last.reindex(keys[after]).to_numpy(float)
    ok = np.isfinite(value)
    out = readouts.copy()
    rows = np.flatnonzero(after)[ok]
    out.iloc[rows, out.columns.get_loc("value")] = value[ok]
    return out, int(ok.sum())


#: Columns of the intercurrent events' counts (``intercurrent_summary.csv``): per analysed
#: arm and event, the patients who met it and their share of the arm's randomised
#: patients.
INTERCURRENT_SUMMARY_COLUMNS = ["arm", "event", "patients", "randomised", "share",
                                "median_time_h", "strategy"]


def _intercurrent(scenario, readouts: pd.DataFrame, events: pd.DataFrame,
                  disposition: pd.DataFrame | None):
    """The readouts the analysis uses under the design's strategy, the events' counts per
    arm and a note saying what was done."""
    d = scenario.design
    missing = [c for c in INTERCURRENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"analyse_trial: the intercurrent table lacks column {missing[0]!r}")
    arms = d.analysed_arms(scenario.arm_names)
    by_arm = {a.name: a for a in scenario.arms}
    rows = []
    for arm in arms:
        if disposition is not None:
            n = int((disposition["arm"] == arm).sum())
        else:  # patients with any rating were randomised
            n = int(readouts.loc[readouts["arm"] == arm, "subject"].nunique()) or by_arm[arm].n
        mine = events[events["arm"] == arm]
        for e in d.intercurrent:
            hit = mine[mine["event"] == e.name]
            rows.append({"arm": arm, "event": e.name, "patients": len(hit), "randomised": n,
                         "share": len(hit) / n if n else np.nan,
                         "median_time_h": float(hit["time_h"].median()) if len(hit)
                         else np.nan, "strategy": d.strategy})
    counts = pd.DataFrame(rows, columns=INTERCURRENT_SUMMARY_COLUMNS)
    total = int(counts["patients"].sum())
    if d.strategy == "hypothetical" and len(events):
        limit = _event_times(readouts, events)
        drop = (readouts["readout"].to_numpy() == d.scale) & (
            readouts["time_h"].to_numpy(float) > limit)  # NaN limit: kept
        readouts = readouts.loc[~drop].reset_index(drop=True)
        note = (f"intercurrent events: {total} patients; hypothetical strategy: their "
                f"{int(drop.sum())} ratings of {d.scale} after the event are set missing "
                "(MMRM under missing at random; non-response for response and remission)")
    elif d.strategy == "while_on_treatment" and len(events):
        readouts, n = _while_on_treatment(readouts, events, d.scale)
        note = (f"intercurrent events: {total} patients; while-on-treatment strategy: their "
                f"{n} ratings of {d.scale} after the event take the value of their last "
                "rating at or before it")
    else:
        note = (f"intercurrent events: {total} patients; "
                f"{d.strategy.replace('_', ' ')} strategy: every rating counts, whatever "
                "happened")
    return readouts, counts, note


def strata_table(patients: pd.DataFrame | None, arms: list[str]) -> pd.DataFrame | None:
    """A stratified trial's allocation: per stratum and arm, the candidates allocated
    from the pool and the patients randomised (eligible at screening); None without
    strata."""
    if patients is None or "stratum" not in patients:
        return None
    p = patients[patients["arm"].isin(arms) & patients["stratum"].notna()]
    keys = pd.MultiIndex.from_product([sorted(p["stratum"].unique()), arms],
                                      names=["stratum", "arm"])
    g = p.groupby(["stratum", "arm"])
    out = pd.DataFrame({"allocated": g.size(), "randomised": g["eligible"].sum()})
    out = out.reindex(keys, fill_value=0).astype(np.int64).reset_index()
    return out


#: CONSORT stages of a randomised withdrawal (per arm): followed, stable but not followed
#: (no visit from the relapse start on), not in stable remission
WITHDRAWAL_STAGES = ("withdrawal followed", "withdrawal stable, not followed",
                     "withdrawal not stable")
_WITHDRAWAL_REASONS = ("", "no visit from the relapse start on",
                       "not in stable remission before the relapse start")


def _withdrawal(readouts: pd.DataFrame, d, arms: list, rel: pd.DataFrame
                ) -> tuple[str, pd.DataFrame]:
    """A randomised withdrawal's note (how many patients each arm follows out of those
    rated at the judged visits) and its CONSORT rows (:data:`WITHDRAWAL_STAGES`, per
    arm; the middle stage only where it is not empty)."""
    st = d.relapse.stable
    counts, rows = [], []
    for arm in arms:
        judged = _scores(readouts, d.scale, arm.name, arm.n, list(st.at))
        judged = judged[judged.notna().any(axis=1)]
        stable = len(stable_patients(judged, st.threshold, st.at_least))
        followed = int((rel["arm"] == arm.name).sum())
        counts.append(f"{arm.name} {followed} of {len(judged)}")
        for stage, reason, k in zip(WITHDRAWAL_STAGES, _WITHDRAWAL_REASONS,
                                    (followed, stable - followed, len(judged) - stable),
                                    strict=True):
            if k or stage != WITHDRAWAL_STAGES[1]:
                rows.append((stage, arm.name, reason, k))
    need = len(st.at) if st.at_least is None else st.at_least
    visits = ", ".join(f"{t / 24:g}d" if t % 24 == 0 else f"{t:g}h" for t in st.at)
    note = (f"randomised withdrawal: the relapse analysis follows the patients in stable "
            f"remission ({d.scale} <= {st.threshold:g} at {need} of {visits}): "
            + "; ".join(counts))
    return note, pd.DataFrame(rows, columns=["stage", "arm", "reason", "n"])


def relapse_times(readouts: pd.DataFrame, d, arms: list) -> pd.DataFrame:
    """Per patient: time from ``relapse.start`` to relapse (the first of ``consecutive``
    successive visits with the scale at or above ``threshold``), or to the last visit seen
    (censored). Screen failures (no reading at all) are left out, and with
    ``relapse.stable`` (a randomised withdrawal) so are the patients not in stable
    remission before the start."""
    r = d.relapse
    rows = []
    for arm in arms:
        times = [t for t in arm.times_of(d.scale) if t >= r.start]
        y = _scores(readouts, d.scale, arm.name, arm.n, times)
        y = y[y.notna().any(axis=1)]
        if r.stable is not None:
            judged = _scores(readouts, d.scale, arm.name, arm.n, list(r.stable.at))
            keep = stable_patients(judged.loc[y.index], r.stable.threshold,
                                   r.stable.at_least)
            y = y.loc[keep]
        rows += [{"arm": arm.name, "subject": i, "duration_h": dur, "relapsed": ev}
                 for i, dur, ev in relapse_rows(y, times, r.threshold, r.consecutive,
                                                r.start)]
    return pd.DataFrame(rows, columns=["arm", "subject", "duration_h", "relapsed"])


def _flow(disposition: pd.DataFrame, patients: pd.DataFrame | None, arms: set[str]
          ) -> pd.DataFrame:
    """The CONSORT counts: from screening when there was one (the screen failures of the
    analysed arms join the randomised patients), else from randomisation."""
    if patients is None:
        flow = consort(disposition, arm="arm", completed="completed",
                       reason="dropout_reason", eligible=None)
        return flow[~flow["stage"].isin(["screened", "excluded"])].reset_index(drop=True)
    # screen failures of the analysed arms, and those a stratified trial screened out of
    # its pool before allocation (no arm)
    out = patients[(~patients["eligible"])
                   & (patients["arm"].isin(sorted(arms)) | (patients["arm"] == ""))]
    rows = pd.concat([
        disposition.assign(eligible=True),
        pd.DataFrame({"arm": "", "subject": out["subject"].to_numpy(), "completed": pd.NA,
                      "dropout_reason": out["exclusion"].to_numpy(), "eligible": False})],
        ignore_index=True)
    return consort(rows, arm="arm", completed="completed", reason="dropout_reason",
                   eligible="eligible")


def crossover_long(scenario, readouts: pd.DataFrame) -> pd.DataFrame:
    """One row per patient and period of a crossover: patient, sequence (arm), period,
    treatment, baseline, score at the primary visit and the change (NaN if missing)."""
    d = scenario.design
    cx = d.crossover
    frames = []
    for arm in scenario.arms:
        if arm.name not in cx.treatments:
            continue
        times = [s + t for s in cx.periods for t in (d.baseline, d.primary)]
        y = _scores(readouts, d.scale, arm.name, arm.n, times)
        y = y[y.notna().any(axis=1)]  # screen failures were never randomised
        for k, start in enumerate(cx.periods):
            b, v = y[start + d.baseline].to_numpy(), y[start + d.primary].to_numpy()
            frames.append(pd.DataFrame({
                "patient": [f"{arm.name}#{i}" for i in y.index], "sequence": arm.name,
                "period": k + 1, "treatment": cx.treatments[arm.name][k],
                "baseline": b, "score": v, "change": v - b}))
    return pd.concat(frames, ignore_index=True)


def _analyse_crossover(scenario, readouts, disposition, patients) -> TrialTables:
    """A crossover's analysis: change from each period's baseline to its primary visit by
    a linear mixed model ``change ~ treatment + period + (1 | patient)`` (REML,
    statsmodels MixedLM; Jones & Kenward 2014, Design and Analysis of Cross-Over Trials),
    each treatment against the reference (``control``) with a Wald z test; the observed
    mean change per treatment and period. Response (a fall from the period's baseline)
    and remission at each period's primary visit per treatment, compared within patients
    (:func:`ketasim.analysis.trial.paired_binary_endpoint`: McNemar's exact test, the
    matched-pairs odds ratio, and a conditional logistic regression with the period)
    (:func:`_crossover_endpoints`)."""
    import statsmodels.formula.api as smf

    d = scenario.design
    long = crossover_long(scenario, readouts)
    notes: list[str] = []
    rows = []
    base = {"scale": d.scale, "covariance": "", "df_method": "", "note": "",
            "model": "mean change from the period's baseline of the patients seen"}
    for (treatment, period), g in long.groupby(["treatment", "period"], sort=True):
        v = g["change"].dropna().to_numpy(float)
        rows.append({**base, "kind": "observed", "arm": treatment, "control": "",
                     "visit_h": float(d.crossover.periods[period - 1] + d.primary),
                     "primary": True, "n": v.size,
                     "estimate": float(v.mean()) if v.size else np.nan,
                     "se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else np.nan})
    data = long.dropna(subset=["change"]).copy()
    model = ("change ~ C(treatment, Treatment(reference)) + C(period) + (1 | patient), "
             "REML (statsmodels MixedLM), Wald z")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = smf.mixedlm(f"change ~ C(treatment, Treatment(reference={d.control!r})) "
                              "+ C(period)", data, groups=data["patient"]).fit(reml=True)
        if any("boundary" in str(w.message) or "singular" in str(w.message).lower()
               for w in caught):
            notes.append("the patient random-intercept variance is at its boundary (0): "
                         "changes from each period's baseline vary little between patients "
                         "beyond the residual, and the model reduces to fixed effects")
    except (ValueError, np.linalg.LinAlgError) as err:
        notes.append(f"the crossover model could not be fitted: {err}")
    else:
        ci = fit.conf_int()
        for name in fit.params.index:
            if not name.startswith("C(treatment"):
                continue
            label = name.split("[T.")[1].rstrip("]")
            per = data[data["treatment"] == label]
            rows.append({**base, "kind": "contrast", "arm": label, "control": d.control,
                         "visit_h": float(d.primary), "primary": True,
                         "n": int(per["patient"].nunique()),
                         "n_control": int(data.loc[data["treatment"] == d.control,
                                                   "patient"].nunique()),
                         "estimate": float(fit.params[name]), "se": float(fit.bse[name]),
                         "df": np.nan, "t": float(fit.tvalues[name]),
                         "p": float(fit.pvalues[name]), "ci_low": float(ci.loc[name, 0]),
                         "ci_high": float(ci.loc[name, 1]), "df_method": "wald-z",
                         "covariance": "random patient intercept", "model": model})
    trial = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    order = {"contrast": 0, "lsmean": 1, "observed": 2}
    trial = trial.sort_values("kind", key=lambda c: c.map(order), kind="stable")
    trial = trial.reset_index(drop=True)
    trial["n"] = trial["n"].astype(np.int64)
    if disposition is None:
        disposition = apply_dropout(scenario, readouts, scenario.seed)[1]
    flow = _flow(disposition, patients, set(d.crossover.treatments))
    endpoints = _crossover_endpoints(long, d, notes)
    return TrialTables(trial, endpoints, flow, disposition, (float(d.primary),), tuple(notes))


def _crossover_endpoints(long: pd.DataFrame, d, notes: list[str]) -> pd.DataFrame:
    """Response and remission of a crossover at each period's primary visit, per treatment
    and within patients against the control (:data:`CROSSOVER_ENDPOINT_COLUMNS`); a
    missing visit counts as no event (non-responder imputation), as in a parallel trial."""
    rules = _binary_rules(d, "the period's baseline")
    y, b = long["score"].to_numpy(float), long["baseline"].to_numpy(float)
    seen = np.isfinite(y) & np.isfinite(b)
    n_obs = long.assign(seen=seen).groupby("treatment")["seen"].sum()
    frames = []
    for name, rule in rules:
        event = _event(name, y, b, seen, d)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = paired_binary_endpoint(long.assign(event=event), "patient", "treatment",
                                         "period", "event", d.control)
        notes.extend(f"{name}: {w.message}" for w in caught)
        frames.append(_lead(res, name, float(d.primary), True, rule, n_obs))
    return pd.concat(frames, ignore_index=True)[CROSSOVER_ENDPOINT_COLUMNS]


def _binary_rules(d, baseline: str) -> list[tuple[str, str]]:
    """The design's binary endpoints and their rules in words: response (a fall from
    ``baseline``) and, with a cut-off, remission."""
    rules = [("response", f"fall >= {100 * d.response_fall:g}% from {baseline}")]
    if d.remission_threshold is not None:
        rules.append(("remission", f"{d.scale} <= {d.remission_threshold:g}"))
    return rules


def _lead(res: pd.DataFrame, name: str, visit_h: float, primary: bool, rule: str,
          n_obs: pd.Series) -> pd.DataFrame:
    """An endpoint table (one row per arm or treatment) with the columns that say which
    endpoint, visit and rule it is, and how many ratings it rests on, in front."""
    res.insert(0, "n_observed", res["arm"].map(n_obs).astype(np.int64))
    res.insert(0, "missing", NRI)
    res.insert(0, "rule", rule)
    res.insert(0, "primary", primary)
    res.insert(0, "visit_h", visit_h)
    res.insert(0, "endpoint", name)
    return res


def _event(name: str, y: np.ndarray, b: np.ndarray, seen: np.ndarray, d) -> np.ndarray:
    """0/1 per rating: ``response`` (a fall from the baseline ``b`` of at least the
    design's fraction) or ``remission`` (at or under its cut-off); a rating not ``seen``
    is 0 (non-responder imputation)."""
    event = np.zeros(len(y), dtype=np.int64)
    if name == "response":
        ok = seen & (b > 0)
        event[ok] = (b[ok] - y[ok]) >= d.response_fall * b[ok]
    else:
        event[seen] = y[seen] <= d.remission_threshold
    return event


def _endpoints(long: pd.DataFrame, d, visits: list[float], notes: list[str]) -> pd.DataFrame:
    """Response and remission per arm at each post-baseline visit (non-responder
    imputation for missing visits) via :func:`ketasim.analysis.trial.binary_endpoint`."""
    rules = _binary_rules(d, "baseline")
    frames = []
    for t in visits:
        at = long[long["visit"] == t]
        y, b = at["score"].to_numpy(float), at["baseline"].to_numpy(float)
        seen = np.isfinite(y) & np.isfinite(b)
        n_obs = at.assign(seen=seen).groupby("arm", observed=False)["seen"].sum()
        present = set(at["arm"].astype(str))
        if d.control not in present or len(present) < 2:
            # screening let no patient of the control (or of any other) arm in
            missing = d.control if d.control not in present else "every other arm"
            notes.append(f"response and remission at {t:g} h: not estimable: no patient "
                         f"of {missing!r} was randomised (screening let none in)"
                         if missing == d.control else
                         f"response and remission at {t:g} h: not estimable: no patient "
                         "of any arm but the control was randomised (screening let none "
                         "in)")
            continue
        for name, rule in rules:
            event = _event(name, y, b, seen, d)
            table = at.assign(event=event, arm=at["arm"].astype(str))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = binary_endpoint(table, "arm", "event", d.control)
            for w in caught:
                notes.append(f"{name} at {t:g} h: {w.message}")
            frames.append(_lead(res, name, float(t), bool(t == d.primary), rule, n_obs))
    if not frames:
        return pd.DataFrame(columns=ENDPOINT_COLUMNS)
    return pd.concat(frames, ignore_index=True)[ENDPOINT_COLUMNS]
