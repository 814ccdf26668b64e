"""A small, safe expression language for the quantity a target compares.

A target's ``statistic`` is an expression over its replica's readouts table, e.g.::

    mean('ketamine', 'plasticity_potential', '2h')
    mean('ketamine', 'pmtor_rel', '1h') / mean('vehicle', 'pmtor_rel', '1h')
    p('cort_ketamine', 'cort_saline', 'psd95_rel', '24h')
    p_lower('shock_saline', 'saline', 'uncaging_success', '2h')   # one-sided Welch t
    cohen_d('ketamine', 'saline', 'uncaging_success', '2h')       # (a - b) / pooled SD
    half_life('ketamine', 'ketamine_plasma_ng_ml', '1h', '8h')

Descriptive statistics of an arm at one time: ``mean``, ``sd`` (ddof 1), ``sem`` and
``n`` (finite values); ``peak`` and ``time_of_peak`` are the maximum of the arm's mean
course (mean over subjects at each sampled time) and the time (h) at which it lies, from
``after`` on. Two-arm tests at one time: ``p`` (two-sided; Welch t by default, any test of
:func:`ketasim.analysis.stats.run_test`), ``p_lower`` and ``p_higher`` (one-sided Welch t
p that arm a's mean is lower / higher than arm b's) and ``cohen_d``. PK statistics over a
window, per subject: ``half_life``, ``tmax`` and ``auc``; ``pearson_r`` and ``pearson_p``
correlate two readouts across animals.

A readout that several assays measure (e.g. ``spine_density_per_10um`` by
``two_photon_spines`` and ``fixed_tissue_spines``) needs the ``assay`` argument wherever
more than one assay measures it for the rows a statistic selects: values of different
techniques are never pooled (the same holds for regions, ``'REGION:readout'``). Times
match the readouts' ``time_h`` within an absolute :data:`TIME_ATOL_H`. A statistic whose
selected values are all missing (NaN) raises :class:`StatisticError` ("no finite values
for ..."), as does a misspelt arm, readout, assay or time; a statistic that exists but has
no value (a test on one value per arm, a hazard ratio with no events) is NaN.

Only the functions below, numbers, strings and + - * / are allowed; anything else is
rejected when the targets file is loaded. Spine functions (``clustering_p``,
``branch_specificity_p``, ``restored_fraction``, ``restored_chance``,
``survival_fraction``) run :mod:`ketasim.analysis.spines` on the replica's observed
two-photon tracking table of an arm. Clinical functions compare each patient with their
own baseline: ``mean_change``, ``response_rate`` (>= 50% fall), ``remission_rate``
(score <= a threshold), ``p_change_lower`` (one-sided Welch t on the changes) and
``d_change`` (standardised difference of the changes), ``p_paired_higher`` (one-sided
paired t within an arm) and ``mediated_share`` (the
share of a treatment effect carried by a mediator such as dissociation), e.g.
``response_rate('ketamine', 'madrs_total', '-1d', '24h')``; ``taper_share`` reads the
doses of a needs-based taper (the share of patients on long intervals by a time). Times are strings with units ('90min', '2h').
Each function reads cohort statistics, as the paper's figure or table would.
Numeric constants are floats (arithmetic never overflows), and every time string of an
expression is parsed when the expression is checked (:func:`check_expression`, when the
targets file loads).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ketasim.analysis.segments import (
    density_change_summary,
    from_tracking,
    turnover_change_summary,
    turnover_rates,
)
from ketasim.analysis.spines import (
    branch_specificity_test,
    clustering_test,
    new_spine_persistence,
    restoration,
    survival,
)
from ketasim.analysis.stats import run_test
from ketasim.analysis.trial import mediation, relapse_rows, response, stable_patients
from ketasim.analysis.trial import survival as time_to_event
from ketasim.experiment.taper import TAPER_ASSAY, TAPER_READOUT
from ketasim.scenario import parse_time


class StatisticError(ValueError):
    """A statistic expression is malformed or refers to data the replica lacks."""


#: Absolute tolerance (h) within which a readout's ``time_h`` matches a requested time
#: (every statistic: one time, windows, visits, ``after``)
TIME_ATOL_H = 1e-9


def _hours(t) -> float:
    """A time argument in hours: a number (h) or a string with units ('90min', '2h')."""
    if isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(
            t, (bool, np.bool_)):
        if not np.isfinite(t):
            raise StatisticError(f"time {t!r} is not finite")
        return float(t)
    try:
        return float(parse_time(t))
    except ValueError as e:
        raise StatisticError(f"time {t!r}: expected {e}") from None


def _at(series: pd.Series, hours: float) -> pd.Series:
    """Rows whose time is ``hours`` (within :data:`TIME_ATOL_H`)."""
    return (series - hours).abs() <= TIME_ATOL_H


class _Data:
    def __init__(self, readouts: pd.DataFrame, tracking: dict | None = None):
        self.r = readouts
        self.tracking = tracking or {}
        self._segment_tables: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self._arms: frozenset | None = None

    def check_arm(self, arm: str, readout: str) -> None:
        """A StatisticError naming ``arm`` if no readout row is of it."""
        if self._arms is None:
            self._arms = frozenset(self.r["arm"].unique()) if "arm" in self.r else frozenset()
        if arm not in self._arms:
            raise StatisticError(f"no {readout!r} for arm {arm!r}: the readouts have no arm "
                                 f"{arm!r} (arms: "
                                 f"{', '.join(sorted(map(str, self._arms))) or 'none'})")

    def one_assay(self, sel: pd.Series, arm: str, readout: str, assay: str | None,
                  where: str = "") -> pd.Series:
        """``sel`` restricted to ``assay``; without one, a StatisticError if more than
        one assay measures the selected rows (their values are never pooled)."""
        r = self.r
        if assay:
            return sel & (r["assay"] == assay)
        if "assay" in r.columns:
            assays = sorted(map(str, r.loc[sel, "assay"].unique()))
            if len(assays) > 1:
                raise StatisticError(
                    f"{readout!r} of arm {arm!r}{where} is measured by assays {assays}: "
                    f"name one with the assay argument (e.g. assay={assays[0]!r})")
        return sel

    def sel(self, arm: str, readout: str) -> pd.Series:
        """Rows of ``readout`` in ``arm``; ``"region:readout"`` (e.g.
        ``"striatum:pmtor_rel"``) names the region where several measure the readout."""
        self.check_arm(arm, readout)
        r = self.r
        region = None
        if ":" in readout:
            region, readout = readout.split(":", 1)
        sel = (r["arm"] == arm) & (r["readout"] == readout)
        if "region" in r.columns:
            if region is not None:
                sel &= r["region"] == region
            elif r.loc[sel, "region"].nunique() > 1:
                raise StatisticError(
                    f"{readout!r} of arm {arm!r} is measured in regions "
                    f"{sorted(r.loc[sel, 'region'].unique())}: write 'REGION:{readout}'")
        elif region is not None and region != "mpfc":
            sel &= False
        return sel

    def window(self, arm: str, readout: str, t_from, t_to, assay: str | None = None
               ) -> pd.DataFrame:
        """Rows of ``readout`` in ``arm`` between two times (inclusive, within
        :data:`TIME_ATOL_H`), of one assay."""
        r = self.r
        a, b = _hours(t_from), _hours(t_to)
        sel = self.sel(arm, readout) & (r["time_h"] >= a - TIME_ATOL_H) & (
            r["time_h"] <= b + TIME_ATOL_H)
        sel = self.one_assay(sel, arm, readout, assay, f" from {t_from!r} to {t_to!r}")
        if sel.any() and not np.isfinite(r.loc[sel, "value"].to_numpy(float)).any():
            raise StatisticError(f"no finite values for {readout!r} for arm {arm!r} from "
                                 f"{t_from!r} to {t_to!r}"
                                 + (f" in assay {assay!r}" if assay else ""))
        return r.loc[sel]

    def segment_tables(self, arms: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The per-segment tables (:func:`ketasim.analysis.segments.from_tracking`) of
        the arms' tracking tables pooled into one group (``arms`` comma-separated)."""
        names = [a.strip() for a in str(arms).split(",") if a.strip()]
        key = ",".join(names)
        if key not in self._segment_tables:
            table = pd.concat([self.table(a) for a in names], ignore_index=True)
            self._segment_tables[key] = from_tracking(table, group=key)
        return self._segment_tables[key]

    def table(self, arm: str) -> pd.DataFrame:
        if arm not in self.tracking:
            raise StatisticError(f"no spine tracking table for arm {arm!r} (needs the "
                                 "two_photon_spines assay)")
        return self.tracking[arm]

    def _at(self, arm: str, readout: str, at, assay: str | None) -> pd.Series:
        """Rows of ``readout`` in ``arm`` at ``at`` (within :data:`TIME_ATOL_H`), of one
        assay, at least one of them finite."""
        r = self.r
        sel = self.sel(arm, readout) & _at(r["time_h"], _hours(at))
        sel = self.one_assay(sel, arm, readout, assay, f" at {at!r}")
        what = f"{readout!r} for arm {arm!r} at {at!r}" + (
            f" in assay {assay!r}" if assay else "")
        if not sel.any():
            raise StatisticError(f"no {what}")
        if not np.isfinite(r.loc[sel, "value"].to_numpy(float)).any():
            raise StatisticError(f"no finite values for {what}")
        return sel

    def values(self, arm: str, readout: str, at, assay: str | None = None) -> np.ndarray:
        """The finite values of ``readout`` in ``arm`` at a time (of one assay)."""
        v = self.r.loc[self._at(arm, readout, at, assay), "value"].to_numpy(float)
        return v[np.isfinite(v)]

    def by_subject(self, arm: str, readout: str, at, assay: str | None = None
                   ) -> pd.Series:
        """One value per subject (indexed by subject) at a time, of one assay; NaN values
        dropped."""
        v = self.r.loc[self._at(arm, readout, at, assay)].groupby("subject")["value"].mean()
        return v[np.isfinite(v)]

    def change(self, arm: str, readout: str, baseline, at, assay: str | None = None
               ) -> tuple[pd.Series, pd.Series]:
        """Baseline and later values of the subjects measured at both times."""
        b = self.by_subject(arm, readout, baseline, assay)
        v = self.by_subject(arm, readout, at, assay)
        both = b.index.intersection(v.index)
        if both.empty:
            raise StatisticError(f"no subject of arm {arm!r} has {readout!r} at both "
                                 f"{baseline!r} and {at!r}")
        return b[both], v[both]

    def course(self, arm: str, readout: str, assay: str | None = None) -> pd.Series:
        """The arm's mean course of ``readout`` (of one assay): the mean over subjects of
        the finite values at each sampled time, indexed by time (h)."""
        r = self.r
        sel = self.one_assay(self.sel(arm, readout), arm, readout, assay)
        what = f"{readout!r} for arm {arm!r}" + (f" in assay {assay!r}" if assay else "")
        if not sel.any():
            raise StatisticError(f"no {what}")
        s = r.loc[sel].groupby("time_h")["value"].mean()  # NaN skipped
        s = s[np.isfinite(s)]
        if s.empty:
            raise StatisticError(f"no finite values for {what}")
        return s

    def wide(self, arm: str, readout: str, assay: str | None = None) -> pd.DataFrame:
        """The arm's values of ``readout`` (of one assay), one row per subject, one column
        per time."""
        r = self.r
        sel = self.one_assay(self.sel(arm, readout), arm, readout, assay)
        what = f"{readout!r} for arm {arm!r}" + (f" in assay {assay!r}" if assay else "")
        if not sel.any():
            raise StatisticError(f"no {what}")
        if not np.isfinite(r.loc[sel, "value"].to_numpy(float)).any():
            raise StatisticError(f"no finite values for {what}")
        return r[sel].pivot_table(index="subject", columns="time_h", values="value",
                                  aggfunc="first")


def _standardised(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled SD (ddof 1): NaN with fewer than 3 values in all (no
    pooled SD), 0 for equal means and +-inf for different ones when both arms have no
    spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0 or a.size + b.size < 3:
        return float("nan")
    ss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    pooled = float(np.sqrt(ss / (a.size + b.size - 2)))
    diff = float(a.mean() - b.mean())
    if pooled == 0:
        return 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    return diff / pooled


def _functions(d: _Data) -> dict[str, Callable]:
    def mean(arm, readout, at, assay=None):
        """Mean of the arm's finite values of ``readout`` at ``at``."""
        return float(np.mean(d.values(arm, readout, at, assay)))

    def sem(arm, readout, at, assay=None):
        """Standard error of the mean (SD with ddof 1 over sqrt(n)); NaN for one value."""
        v = d.values(arm, readout, at, assay)
        if v.size < 2:
            return float("nan")
        return float(np.std(v, ddof=1) / np.sqrt(v.size))

    def n(arm, readout, at, assay=None):
        """Number of the arm's finite values of ``readout`` at ``at``."""
        return float(d.values(arm, readout, at, assay).size)

    def sd(arm, readout, at, assay=None):
        """Sample standard deviation (ddof 1) of the arm's finite values of ``readout``
        at ``at`` (NaN for one value)."""
        v = d.values(arm, readout, at, assay)
        if v.size < 2:
            return float("nan")
        return float(np.std(v, ddof=1))

    def cohen_d(arm_a, arm_b, readout, at, assay=None):
        """Standardised difference (mean a - mean b) / pooled SD (ddof 1)."""
        return _standardised(d.values(arm_a, readout, at, assay),
                             d.values(arm_b, readout, at, assay))

    def _course_after(arm, readout, assay, after):
        s = d.course(arm, readout, assay)
        s = s[s.index >= _hours(after) - TIME_ATOL_H]
        if s.empty:
            raise StatisticError(f"no {readout!r} for arm {arm!r} at or after {after!r}"
                                 + (f" in assay {assay!r}" if assay else ""))
        return s

    def peak(arm, readout, assay=None, after="0h"):
        """Maximum of the arm's mean course (the mean over subjects at each sampled time)
        at or after ``after``: the peak of the group's curve, as a figure of means shows
        it (not the mean of each subject's own peak)."""
        return float(_course_after(arm, readout, assay, after).max())

    def time_of_peak(arm, readout, assay=None, after="0h"):
        """Time (h) of :func:`peak`, the maximum of the arm's mean course at or after
        ``after`` (the earliest such time on a tie); see :func:`tmax` for the median of
        the subjects' own peak times."""
        return float(_course_after(arm, readout, assay, after).idxmax())

    def p(arm_a, arm_b, readout, at, test="welch_t", assay=None):
        """Two-sided p of ``test`` (:func:`ketasim.analysis.stats.run_test`: welch_t,
        student_t, mann_whitney, ...) between the arms at ``at``; NaN with < 2 values in
        an arm."""
        groups = [d.values(arm_a, readout, at, assay), d.values(arm_b, readout, at, assay)]
        try:
            return run_test(test, groups).p
        except ValueError as e:
            raise StatisticError(f"p: {e}") from None

    def _one_sided(arm_a, arm_b, readout, at, assay, lower):
        """One-sided Welch t p that arm_a's mean is lower (or higher) than arm_b's."""
        r = run_test("welch_t", [d.values(arm_a, readout, at, assay),
                                 d.values(arm_b, readout, at, assay)])
        if not np.isfinite(r.p):
            return r.p
        return r.p / 2 if (r.statistic < 0) == lower else 1.0 - r.p / 2

    def p_lower(arm_a, arm_b, readout, at, assay=None):
        """One-sided Welch t p that arm_a's mean at ``at`` is lower than arm_b's (NaN
        with < 2 values in an arm)."""
        return _one_sided(arm_a, arm_b, readout, at, assay, True)

    def p_higher(arm_a, arm_b, readout, at, assay=None):
        """One-sided Welch t p that arm_a's mean at ``at`` is higher than arm_b's (NaN
        with < 2 values in an arm; ``p_lower + p_higher = 1``)."""
        return _one_sided(arm_a, arm_b, readout, at, assay, False)

    def half_life(arm, readout, t_from, t_to, assay=None):
        """Median over subjects of the terminal half-life (h), each from a log-linear fit
        of that subject's values in the window (as PK papers report individual
        non-compartmental estimates)."""
        halves = []
        for _, g in d.window(arm, readout, t_from, t_to, assay).groupby("subject"):
            g = g[np.isfinite(g["value"]) & (g["value"] > 0)]
            if len(g) < 3:
                continue
            slope = np.polyfit(g["time_h"].to_numpy(float), np.log(g["value"].to_numpy(float)),
                               1)[0]
            halves.append(np.log(2) / -slope if slope < 0 else np.inf)
        if not halves:
            raise StatisticError(f"no subject of arm {arm!r} has 3 positive {readout!r} "
                                 f"values from {t_from!r} to {t_to!r}")
        return float(np.median(halves))

    def _paired_across(arms, readout_a, at_a, readout_b, at_b, assay_a, assay_b):
        """Per animal of the arms (a comma-separated list), readout_a at at_a and
        readout_b at at_b, for the animals measured in both."""
        xs, ys = [], []
        for arm in [a.strip() for a in str(arms).split(",") if a.strip()]:
            x = d.by_subject(arm, readout_a, at_a, assay_a)
            y = d.by_subject(arm, readout_b, at_b, assay_b)
            both = x.index.intersection(y.index)
            xs.append(x[both].to_numpy(float))
            ys.append(y[both].to_numpy(float))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if x.size < 3:
            raise StatisticError(f"fewer than 3 animals of {arms!r} have both {readout_a!r} "
                                 f"and {readout_b!r}")
        return x, y

    def pearson_r(arms, readout_a, at_a, readout_b, at_b, assay_a=None, assay_b=None):
        """Pearson correlation across the animals of ``arms`` (comma-separated) between
        two readouts (as the LID studies correlate spine density with AIMs)."""
        return float(stats.pearsonr(*_paired_across(arms, readout_a, at_a, readout_b,
                                                  at_b, assay_a, assay_b)).statistic)

    def pearson_p(arms, readout_a, at_a, readout_b, at_b, assay_a=None, assay_b=None):
        """Two-sided p of :func:`pearson_r`."""
        return float(stats.pearsonr(*_paired_across(arms, readout_a, at_a, readout_b,
                                                  at_b, assay_a, assay_b)).pvalue)

    def tmax(arm, readout, t_from, t_to, assay=None):
        """Median over subjects of the time (h, from ``t_from``) of each subject's highest
        value in the window, as non-compartmental analysis reports Tmax (the peak of the
        mean curve, :func:`time_of_peak`, lies later when absorption varies a lot between
        subjects)."""
        times = []
        for _, g in d.window(arm, readout, t_from, t_to, assay).groupby("subject"):
            g = g[np.isfinite(g["value"])]
            if len(g):
                times.append(float(g["time_h"].to_numpy(float)[np.argmax(g["value"])]))
        if not times:
            raise StatisticError(f"no subject of arm {arm!r} has a finite {readout!r} value "
                                 f"from {t_from!r} to {t_to!r}")
        return float(np.median(times)) - _hours(t_from)

    def auc(arm, readout, t_from, t_to, assay=None):
        """Mean over subjects of the area under each subject's concentration-time curve
        between ``t_from`` and ``t_to`` (linear trapezoids over the sampled times; units
        of the readout times h), as non-compartmental analysis computes it."""
        areas = []
        for _, g in d.window(arm, readout, t_from, t_to, assay).groupby("subject"):
            g = g[np.isfinite(g["value"])].sort_values("time_h")
            if len(g) < 2:
                continue
            areas.append(float(np.trapezoid(g["value"].to_numpy(float),
                                            g["time_h"].to_numpy(float))))
        if not areas:
            raise StatisticError(f"no subject of arm {arm!r} has 2 finite {readout!r} "
                                 f"values from {t_from!r} to {t_to!r}")
        return float(np.mean(areas))

    # clinical endpoints (ketasim.analysis.trial): per patient against their own baseline
    def mean_change(arm, readout, baseline, at, assay=None):
        """Mean over patients of the change from their own baseline."""
        b, v = d.change(arm, readout, baseline, at, assay)
        return float(np.mean(v.to_numpy() - b.to_numpy()))

    def _responding(arm, readout, baseline, at, fraction, assay, what):
        """(subjects, responded?) at ``at``: a fall of >= ``fraction`` of the baseline."""
        b, v = d.change(arm, readout, baseline, at, assay)
        bad = b[b <= 0]
        if len(bad):
            raise StatisticError(
                f"{what}: {readout!r} of arm {arm!r} at baseline {baseline!r} is "
                f"{bad.iloc[0]:g} for subject {bad.index[0]} ({len(bad)} patient(s) "
                "<= 0): a fall relative to a baseline <= 0 is undefined")
        try:
            return b.index, response(b.to_numpy(), v.to_numpy(), fraction)
        except ValueError as e:
            raise StatisticError(f"{what}: {readout!r} of arm {arm!r}: {e}") from None

    def response_rate(arm, readout, baseline, at, fraction=0.5, assay=None):
        """Share of patients whose score fell by >= ``fraction`` of their baseline."""
        return float(np.mean(_responding(arm, readout, baseline, at, fraction, assay,
                                         "response_rate")[1]))

    def remission_rate(arm, readout, at, threshold, assay=None):
        """Share of patients scoring <= ``threshold`` (MADRS <= 12, HDRS-17 <= 7)."""
        return float(np.mean(d.by_subject(arm, readout, at, assay).to_numpy()
                             <= float(threshold)))

    def p_change_lower(arm_a, arm_b, readout, baseline, at, assay=None):
        """One-sided Welch t p that arm_a's change from baseline is lower than arm_b's."""
        ca = np.subtract(*d.change(arm_a, readout, baseline, at, assay)[::-1])
        cb = np.subtract(*d.change(arm_b, readout, baseline, at, assay)[::-1])
        r = run_test("welch_t", [np.asarray(ca), np.asarray(cb)])
        if not np.isfinite(r.p):
            return r.p
        return r.p / 2 if r.statistic < 0 else 1.0 - r.p / 2

    def d_change(arm_a, arm_b, readout, baseline, at, assay=None):
        """Standardised difference of the changes from baseline (pooled SD, ddof 1)."""
        ca = np.asarray(np.subtract(*d.change(arm_a, readout, baseline, at, assay)[::-1]))
        cb = np.asarray(np.subtract(*d.change(arm_b, readout, baseline, at, assay)[::-1]))
        return _standardised(ca, cb)

    def p_paired_higher(arm, readout, baseline, at, assay=None):
        """One-sided paired t p that the arm's values at ``at`` exceed their own values
        at ``baseline`` (subjects measured at both)."""
        b, v = d.change(arm, readout, baseline, at, assay)
        diff = (v - b).to_numpy()
        if diff.size < 2 or np.all(diff == diff[0]):
            return float("nan")
        return float(stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)

    def mediated_share(control, treated, mediator, mediator_at, outcome, baseline, at,
                       mediator_assay=None, outcome_assay=None):
        """Share of the treatment effect on the outcome's change from baseline that runs
        through the mediator measured at ``mediator_at`` (product of coefficients,
        :func:`ketasim.analysis.trial.mediation`; treatment 0 for ``control``, 1 for
        ``treated``; patients measured at all three times)."""
        rows = []
        for arm, x in ((control, 0.0), (treated, 1.0)):
            b, v = d.change(arm, outcome, baseline, at, outcome_assay)
            m = d.by_subject(arm, mediator, mediator_at, mediator_assay)
            both = b.index.intersection(m.index)
            rows.append(pd.DataFrame({"treatment": x, "mediator": m[both].to_numpy(),
                                      "outcome": (v[both] - b[both]).to_numpy()}))
        df = pd.concat(rows, ignore_index=True)
        what = f"mediated_share({control!r}, {treated!r})"
        if df["mediator"].nunique() < 2:
            raise StatisticError(
                f"{what}: the mediator {mediator!r} at {mediator_at!r} is constant "
                f"({df['mediator'].iloc[0]:g}) over the {len(df)} patients measured at all "
                "three times: no mediation path" if len(df) else
                f"{what}: no patient has {mediator!r} at {mediator_at!r} and {outcome!r} "
                f"at {baseline!r} and {at!r}")
        if df["treatment"].nunique() < 2:
            raise StatisticError(f"{what}: only one arm has patients measured at all three "
                                 "times")
        try:
            res = mediation(df, "treatment", "mediator", "outcome", n_boot=200,
                            seed=20190412)
        except ValueError as e:
            raise StatisticError(f"{what}: {e}") from None
        return float(res.proportion_mediated)

    def _wide(arm, readout, assay=None):
        """The arm's ratings of ``readout``, one row per patient, one column per time."""
        wide = d.wide(arm, readout, assay)
        if wide.empty:
            raise StatisticError(f"no {readout!r} for arm {arm!r}")
        return wide

    def _judged(wide, arm, readout, stable_from, stable_to):
        """The visits from ``stable_from`` to ``stable_to`` that judge stable remission."""
        a, b = _hours(stable_from), _hours(stable_to)
        judged = wide[[t for t in wide.columns if a - TIME_ATOL_H <= t <= b + TIME_ATOL_H]]
        if judged.shape[1] == 0:
            raise StatisticError(f"no visit of {readout!r} in arm {arm!r} from "
                                 f"{stable_from} to {stable_to} to judge remission")
        return judged

    def _relapses(arms, readout, start, threshold, consecutive, stable_max, stable_from,
                  stable_to, at_least, assay=None):
        """(arm, subject, duration_h, relapsed) of the arms' patients from ``start`` (as
        ``design.relapse`` defines it, :func:`ketasim.analysis.trial.relapse_rows`); with
        ``stable_max``, only the patients at or below it at ``at_least`` (None: all) of
        their visits from ``stable_from`` to ``stable_to``."""
        t0 = _hours(start)
        rows = []
        for arm in arms:
            wide = _wide(arm, readout, assay)
            times = [t for t in wide.columns if t >= t0 - TIME_ATOL_H]
            y = wide[times]
            y = y[y.notna().any(axis=1)]  # as the trial analysis: rated from the start on
            if stable_max is not None:
                if stable_from is None or stable_to is None:
                    raise StatisticError("stable_max needs stable_from and stable_to")
                judged = _judged(wide, arm, readout, stable_from, stable_to)
                y = y.loc[stable_patients(judged.loc[y.index], float(stable_max),
                                          at_least)]
            try:
                rows += [(arm, i, dur, ev) for i, dur, ev in
                         relapse_rows(y, times, float(threshold), consecutive, t0)]
            except ValueError as e:
                raise StatisticError(f"relapse of arm {arm!r}: {e}") from None
        return pd.DataFrame(rows, columns=["arm", "subject", "duration_h", "relapsed"])

    def relapse_share(arm, readout, start, threshold, consecutive=2, stable_max=None,
                      stable_from=None, stable_to=None, at_least=None, assay=None):
        """Share of the arm's (stable) patients who relapse from ``start`` on (NaN when
        no patient is followed)."""
        rel = _relapses([arm], readout, start, threshold, consecutive, stable_max,
                        stable_from, stable_to, at_least, assay)
        return float(rel["relapsed"].mean()) if len(rel) else float("nan")

    def stable_share(arm, readout, stable_max, stable_from, stable_to, at_least=None,
                     assay=None):
        """Share of the arm's patients in stable remission: at or below ``stable_max`` at
        ``at_least`` (None: all) of their visits from ``stable_from`` to ``stable_to`` (the
        rule that selects whom a randomised withdrawal follows); a patient with no rating
        in the window counts as not stable."""
        wide = _wide(arm, readout, assay)
        judged = _judged(wide, arm, readout, stable_from, stable_to)
        return len(stable_patients(judged, float(stable_max), at_least)) / len(wide)

    def taper_share(arm, at, at_least, readout=None, baseline=None, visit=None,
                    fraction=0.5, assay=None):
        """Share of the arm's patients on a needs-based taper (an arm's ``taper:``) whose
        interval to the next dose, as set at their last dose at or before ``at``, is at
        least ``at_least`` (e.g. '28d': on monthly or rarer doses). With ``readout``,
        ``baseline`` and ``visit``, only the patients responding at ``visit`` (a fall of
        at least ``fraction`` of their baseline) count, e.g. those who go on from
        induction to maintenance."""
        d.check_arm(arm, TAPER_READOUT)
        r = d.r
        sel = ((r["arm"] == arm) & (r["assay"] == TAPER_ASSAY)
               & (r["readout"] == TAPER_READOUT) & (r["time_h"] <= _hours(at) + TIME_ATOL_H))
        if not sel.any():
            raise StatisticError(f"no taper doses for arm {arm!r} at or before {at!r}")
        last = r.loc[sel].sort_values("time_h", kind="stable").groupby("subject")[
            "value"].last()
        if readout is not None:
            if baseline is None or visit is None:
                raise StatisticError("taper_share: a readout needs baseline and visit")
            subjects, responded = _responding(arm, readout, baseline, visit, fraction, assay,
                                              "taper_share")
            responding = subjects[responded]
            last = last[last.index.isin(responding)]
            if last.empty:
                return float("nan")
        return float(np.mean(last.to_numpy() * 24.0 >= _hours(at_least) - TIME_ATOL_H))

    def relapse_hr(control, treated, readout, start, threshold, consecutive=2,
                   stable_max=None, stable_from=None, stable_to=None, at_least=None,
                   assay=None):
        """Cox hazard ratio of relapse, treated against control (lifelines, as the trial
        analysis computes it: :func:`ketasim.analysis.trial.survival`); NaN where it
        cannot be estimated (no relapse, or complete separation)."""
        rel = _relapses([control, treated], readout, start, threshold, consecutive,
                        stable_max, stable_from, stable_to, at_least, assay)
        cox = time_to_event(rel, "duration_h", "relapsed", "arm", control).cox
        return float(cox.loc[cox["term"] == treated, "hazard_ratio"].iloc[0])

    # spine statistics on the observed tracking tables (ketasim.analysis.spines); the
    # permutation nulls use a fixed stream so a target's value is reproducible
    def _rng():
        return np.random.default_rng(20190412)

    def clustering_p(arm, t0, t1, kind="eliminated"):

        return clustering_test(d.table(arm), _hours(t0), _hours(t1), kind, 1000, rng=_rng()).p

    def branch_specificity_p(arm, t0, t1, kind="eliminated"):

        return branch_specificity_test(d.table(arm), _hours(t0), _hours(t1), kind, 1000,
                                       rng=_rng()).p

    def _restoration(arm, t0, t1, t2, t3):

        return restoration(d.table(arm), (_hours(t0), _hours(t1)), (_hours(t2), _hours(t3)),
                           2.0, 1000, rng=_rng())

    def restored_fraction(arm, t0, t1, t2, t3):
        return _restoration(arm, t0, t1, t2, t3).fraction_restored

    def restored_chance(arm, t0, t1, t2, t3):
        return _restoration(arm, t0, t1, t2, t3).expected_fraction

    def survival_fraction(arm, t_start, group, horizon="96h", t_elim0=None, t_elim1=None):

        t_elim = None if t_elim0 is None else (_hours(t_elim0), _hours(t_elim1))
        res = survival(d.table(arm), _hours(t_start), "restoration", _hours(horizon),
                       t_elim=t_elim)
        row = res.summary[res.summary["group"] == group]
        if row.empty:
            raise StatisticError(f"no {group!r} spines born at {t_start!r} in arm {arm!r}")
        return float(row["fraction_surviving"].iloc[0])

    def persistence(arm, t_prev, t_new, t_end):
        """Mean over branches (segments) of the % of the spines new at ``t_new`` (absent
        at ``t_prev``) still present at ``t_end``, as longitudinal studies report it."""
        per = new_spine_persistence(d.table(arm), _hours(t_prev), _hours(t_new), _hours(t_end))
        v = per["persistence_pct"].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise StatisticError(f"no new spines at {t_new!r} in arm {arm!r}")
        return float(v.mean())

    # the segment statistics of per-segment studies (ketasim.analysis.segments, as the
    # authors' script computes them on the Phoumthipphavong et al. 2016 deposit): every
    # imaged branch of the arms (comma-separated, pooled into one analysed set) is a
    # segment, its change taken from its own mouse's baseline, the mean over segments
    def _segment_value(summary: pd.DataFrame, day_col: str, at, what: str,
                       measure: str | None = None) -> float:
        hours = _hours(at)
        sel = np.abs(summary[day_col].to_numpy(float) * 24.0 - hours) <= TIME_ATOL_H
        if measure is not None:
            if measure not in ("formation", "elimination"):
                raise StatisticError(f"{what}: measure must be 'formation' or "
                                     f"'elimination', got {measure!r}")
            sel &= (summary["measure"] == measure).to_numpy()
        row = summary.loc[sel]
        if row.empty or not np.isfinite(row["mean"].iloc[0]):
            raise StatisticError(f"{what}: no segment value at {at!r}")
        return float(row["mean"].iloc[0])

    def segment_density_change(arms, at, segment_set="included"):
        """Mean over segments of the density at ``at`` as % change from the segment's
        mouse's mean density at the first session."""
        seg, _ = d.segment_tables(arms)
        return _segment_value(density_change_summary(seg, segment_set=segment_set), "day",
                              at, f"segment_density_change({arms!r})")

    def segment_turnover_change(arms, measure, at, segment_set="included"):
        """Mean over segments of the formation or elimination % over the interval ending
        at ``at``, as the change (points) from the mouse's mean rate over the first
        interval (pro-rated to its length)."""
        _, turn = d.segment_tables(arms)
        return _segment_value(turnover_change_summary(turn, segment_set=segment_set),
                              "day_end", at, f"segment_turnover_change({arms!r})", measure)

    def segment_turnover(arms, measure, at, segment_set="included"):
        """Mean over segments of the raw formation or elimination % over the interval
        ending at ``at`` (% of the segment's spines at the interval's start)."""
        _, turn = d.segment_tables(arms)
        return _segment_value(turnover_rates(turn, segment_set=segment_set), "day_end", at,
                              f"segment_turnover({arms!r})", measure)

    return {"mean": mean, "sem": sem, "persistence": persistence,
            "segment_density_change": segment_density_change,
            "segment_turnover_change": segment_turnover_change,
            "segment_turnover": segment_turnover, "n": n, "sd": sd, "cohen_d": cohen_d,
            "peak": peak, "time_of_peak": time_of_peak, "tmax": tmax,
            "p": p, "p_lower": p_lower, "p_higher": p_higher, "half_life": half_life,
            "auc": auc, "pearson_r": pearson_r, "pearson_p": pearson_p,
            "clustering_p": clustering_p,
            "branch_specificity_p": branch_specificity_p,
            "restored_fraction": restored_fraction, "restored_chance": restored_chance,
            "survival_fraction": survival_fraction, "mean_change": mean_change,
            "response_rate": response_rate, "remission_rate": remission_rate,
            "p_change_lower": p_change_lower, "d_change": d_change,
            "mediated_share": mediated_share, "p_paired_higher": p_paired_higher,
            "relapse_share": relapse_share, "stable_share": stable_share,
            "relapse_hr": relapse_hr, "taper_share": taper_share}


_SIGNATURES = {name: inspect.signature(fn)
               for name, fn in _functions(_Data(pd.DataFrame())).items()}
FUNCTIONS = tuple(_SIGNATURES)
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
           ast.Div: np.divide}
#: The arguments that are times (checked when an expression is checked); ``at_least``
#: is a time only in taper_share (a count of visits elsewhere)
_TIME_ARGS = frozenset({"at", "at_a", "at_b", "baseline", "t_from", "t_to", "after",
                        "mediator_at", "start", "stable_from", "stable_to", "t0", "t1",
                        "t2", "t3", "t_prev", "t_new", "t_end", "t_start", "horizon",
                        "t_elim0", "t_elim1", "visit"})
_TIME_ARGS_OF = {"taper_share": _TIME_ARGS | {"at_least"}}


def _check_call(expr: str, node: ast.Call) -> None:
    """The call's arguments fit the function, and its time strings parse."""
    name = node.func.id
    try:
        bound = _SIGNATURES[name].bind(*node.args, **{k.arg: k.value for k in node.keywords})
    except TypeError as e:
        raise StatisticError(f"statistic {expr!r}: {name}(): {e}") from None
    for param, value in bound.arguments.items():
        if (param in _TIME_ARGS_OF.get(name, _TIME_ARGS) and isinstance(value, ast.Constant)
                and value.value is not None):
            try:
                _hours(value.value)
            except StatisticError as e:
                raise StatisticError(f"statistic {expr!r}: {name}() argument {param}: "
                                     f"{e}") from None


def check_expression(expr: str) -> ast.Expression:
    """Parse and whitelist an expression (raises StatisticError)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise StatisticError(f"statistic {expr!r}: not an expression ({e.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise StatisticError(f"statistic {expr!r}: unknown function; expected one of "
                                     f"{', '.join(FUNCTIONS)}")
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                    k.arg is None for k in node.keywords):
                raise StatisticError(f"statistic {expr!r}: * and ** are not allowed")
            _check_call(expr, node)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise StatisticError(f"statistic {expr!r}: only + - * / are allowed")
        elif not isinstance(node, (ast.Expression, ast.Constant, ast.Name, ast.keyword,
                                   ast.UnaryOp, ast.USub, ast.Load, *_BINOPS)):
            raise StatisticError(f"statistic {expr!r}: {type(node).__name__} not allowed")
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            raise StatisticError(f"statistic {expr!r}: unknown name {node.id!r}")
    return tree


def _number(expr: str, node: ast.AST, v) -> float:
    """An operand of + - * / (or the expression's value) as a float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
        raise StatisticError(f"statistic {expr!r}: {ast.unparse(node)} is not a number")
    return float(v)


def evaluate(expr: str, readouts: pd.DataFrame, tracking: dict | None = None) -> float:
    """Value of ``expr`` on a replica's readouts (and its spine tracking tables).

    Raises StatisticError for a malformed expression and for data a statistic cannot be
    computed on (errors of the analysis functions it calls included), so that a caller
    such as ``ketasim validate`` reports the target as an error."""
    tree = check_expression(expr)
    fns = _functions(_Data(readouts, tracking))

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            v = node.value  # numbers are floats: int64 arithmetic would overflow
            return float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        if isinstance(node, ast.UnaryOp):
            return -_number(expr, node.operand, ev(node.operand))
        if isinstance(node, ast.BinOp):
            left = _number(expr, node.left, ev(node.left))
            right = _number(expr, node.right, ev(node.right))
            if isinstance(node.op, ast.Div) and right == 0:
                # an infinite ratio would pass a one-sided tolerance (">= 1.3"): a ratio
                # whose denominator is 0 has no value, and the target is an error
                raise StatisticError(f"statistic {expr!r}: division by zero: "
                                     f"{ast.unparse(node.right)} is 0")
            with np.errstate(invalid="ignore"):
                return float(_BINOPS[type(node.op)](left, right))
        if isinstance(node, ast.Call):
            args = [ev(a) for a in node.args]
            kwargs = {k.arg: ev(k.value) for k in node.keywords}
            try:
                return fns[node.func.id](*args, **kwargs)
            except StatisticError:
                raise
            except TypeError as e:
                raise StatisticError(f"statistic {expr!r}: {e}") from None
            except (ValueError, ArithmeticError, LookupError) as e:
                # an analysis function's own check (e.g. lifelines, statsmodels, numpy on
                # unexpected data): an error of this target, not of the whole run
                raise StatisticError(f"statistic {expr!r}: {node.func.id}(): "
                                     f"{type(e).__name__}: {e}") from None
        raise StatisticError(f"statistic {expr!r}: cannot evaluate {ast.dump(node)}")

    return _number(expr, tree.body, ev(tree))
