"""A needs-based taper (an arm's ``taper:``, :class:`ketasim.scenario.model.Taper`): each
patient's maintenance doses follow their own ratings.

Clinics taper maintenance infusions to each patient's needs (Krystal et al. 2019 Neuron:
twice-weekly infusions to start, then less often, some patients on monthly or rarer
infusions, F-K-9). The taper here is a ladder of intervals: the first taper dose is given
to every patient; at each later dose the patient's latest rating before it decides the
interval to the next (well: one rung up; not well: one rung down). Every rung is a whole
multiple of the first, so every possible dose lies on one grid of times (``times``); a
patient's schedule is which of them they get.

A schedule depends on ratings that depend on the schedule, but only on earlier doses:
the rating before a dose does not see that dose or any later one. So the runner solves
it forward (:func:`ketasim.experiment.runner`): it compiles the arm with a dose at every
grid time, gives each patient the schedule of a patient well at every decision, runs the
chunk, reads each patient's decisions from their ratings (:meth:`TaperPlan.schedule`) and
runs again the patients whose schedule changed. A patient's schedule is right up to the
first decision its ratings changed, and that decision is right too, so each pass fixes at
least one more dose; it ends when no schedule changes (at most one pass per grid time).
The doses not given stay in the event table as zero doses at the same times
(:meth:`ketasim.signaling.protocol.EventTable.select`), so the solver takes the same
steps up to a patient's first changed dose and its earlier ratings are bit for bit those
of the pass before (their noise streams are keyed by patient and visit).

Each dose given becomes a readout row: assay :data:`TAPER_ASSAY`, readout
:data:`TAPER_READOUT`, the dose's time, and the interval to the next dose in days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketasim.clinical.assays import SCALE_READOUTS

__all__ = ["TAPER_ASSAY", "TAPER_READOUT", "TaperPlan"]

#: The assay name of the rows that record a taper's doses.
TAPER_ASSAY = "taper"
#: Their readout: the interval from the dose to the next (days).
TAPER_READOUT = "dose_interval"


@dataclass(frozen=True)
class TaperPlan:
    """An arm's taper as the runner carries it out (plain values, so it pickles)."""

    times: np.ndarray  # (K,) h: every time a taper dose can fall at
    rungs: tuple[int, ...]  # the ladder, in grid steps (the first is 1)
    step_h: float  # the grid step: the first rung (h)
    assay: str  # the assay that rates the readout
    readout: str
    threshold: float  # well: rating (or fractional change) <= this
    ref: float  # the visit a fractional change is taken from (h; NaN: the rating itself)
    first_entry: int  # protocol index of the first grid dose in :meth:`arm`'s protocol
    review_h: float = 0.0  # decisions only this long after the last one (0: every dose)

    @staticmethod
    def of(arm) -> TaperPlan | None:
        """The plan of ``arm`` (None without a taper)."""
        taper = getattr(arm, "taper", None)
        if taper is None:
            return None
        step = float(taper.intervals[0])
        return TaperPlan(
            times=np.asarray(taper.times(), dtype=float),
            rungs=tuple(round(float(r) / step) for r in taper.intervals),
            step_h=step, assay=SCALE_READOUTS[taper.readout][0], readout=taper.readout,
            threshold=float(taper.well_at_or_below),
            ref=np.nan if taper.relative_to is None else float(taper.relative_to),
            first_entry=len(arm.protocol),
            review_h=0.0 if taper.review is None else float(taper.review))

    @property
    def n(self) -> int:
        return int(self.times.size)

    def arm(self, arm):
        """``arm`` with a taper dose at every grid time appended to its protocol (so the
        protocol's own entries keep their indices and drug slots)."""
        return arm.model_copy(update={"protocol": [*arm.protocol, *arm.taper.doses()]})

    def entries(self) -> dict[int, int]:
        """Protocol index of each grid dose in :meth:`arm`'s protocol -> its column."""
        return {self.first_entry + k: k for k in range(self.n)}

    def well(self, subjects: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """(subjects, K) bool: whether each patient counts as well at each grid time, from
        their latest rating of the readout strictly before it (``frame``: the rating
        assay's rows of the chunk). No rating before a time, or none at the reference
        visit, or a reference rating of 0 with a fractional threshold: not well."""
        r = frame[frame["readout"].to_numpy() == self.readout]
        wide = r.pivot_table(index="subject", columns="time_h", values="value",
                             aggfunc="first").reindex(index=subjects)
        visits = wide.columns.to_numpy(float)
        y = wide.to_numpy(float)
        if np.isfinite(self.ref):
            at = np.flatnonzero(np.isclose(visits, self.ref, rtol=0.0, atol=1e-9))
            y0 = y[:, at[0]] if at.size else np.full(subjects.size, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where((y0 > 0)[:, None], (y - y0[:, None]) / y0[:, None], np.nan)
        # the latest visit strictly before each grid time (-1: none)
        last = np.searchsorted(visits, self.times - 1e-9, side="left") - 1
        out = np.zeros((subjects.size, self.n), dtype=bool)
        ok = last >= 0
        with np.errstate(invalid="ignore"):
            out[:, ok] = y[:, last[ok]] <= self.threshold
        return out

    def schedule(self, well: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's schedule from their judgements ``well`` ((n, K) bool): the doses
        given ((n, K) bool) and, at each, the interval to the next in grid steps ((n, K)
        int, 0 where no dose)."""
        n = well.shape[0]
        given = np.zeros((n, self.n), dtype=bool)
        interval = np.zeros((n, self.n), dtype=np.int64)
        if self.n == 0:
            return given, interval
        rungs = np.asarray(self.rungs, dtype=np.int64)
        pos = np.zeros(n, dtype=np.int64)
        rung = np.zeros(n, dtype=np.int64)
        last = np.zeros(n, dtype=np.int64)  # each patient's last review (the first dose)
        rows = np.arange(n)
        given[:, 0] = True
        interval[:, 0] = rungs[0]
        active = np.ones(n, dtype=bool)
        while True:
            nxt = pos + rungs[rung]
            active &= nxt < self.n
            if not active.any():
                return given, interval
            i = rows[active]
            pos[i] = nxt[i]
            due = self.times[pos[i]] - self.times[last[i]] >= self.review_h - 1e-9
            up = well[i, pos[i]]
            step = np.where(due, np.where(up, 1, -1), 0)
            rung[i] = np.clip(rung[i] + step, 0, rungs.size - 1)
            last[i] = np.where(due, pos[i], last[i])
            given[i, pos[i]] = True
            interval[i, pos[i]] = rungs[rung[i]]

    def rows(self, arm: str, subjects: np.ndarray, given: np.ndarray,
             interval: np.ndarray) -> pd.DataFrame:
        """The doses given as readout rows (:data:`TAPER_ASSAY`, :data:`TAPER_READOUT`,
        the interval to the next dose in days), patient by patient."""
        i, k = np.nonzero(given)
        return pd.DataFrame({
            "arm": arm, "subject": subjects[i].astype(np.int64), "assay": TAPER_ASSAY,
            "readout": TAPER_READOUT, "time_h": self.times[k],
            "value": interval[i, k] * self.step_h / 24.0, "unit": "d"})
