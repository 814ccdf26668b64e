"""Virtual patients: covariates drawn per patient, and inclusion by screening.

An arm's ``population:`` (:class:`ketasim.scenario.model.Population`) gives each of its
``n`` candidates, from the candidate's own keyed stream (``assay_rng(seed, arm,
subject, "population")``, so a patient's covariates never depend on the chunk, the other
patients or the other arms):

- sex (female with the population's share), age (normal, truncated), body weight
  (normal by sex, truncated; the cohort's ``species.human.body_weight``, which the PK
  reads through allometric scaling), diagnosis (bipolar with its share, else unipolar)
  and the number of failed adequate antidepressant trials (Poisson);
- with ``inclusion``, eligibility at screening: the MADRS total at the ``screening``
  visit at least ``madrs_min``, failed trials at least ``failed_trials_min``, a
  diagnosis among ``diagnoses``. Screen failures are removed from the readouts and kept,
  with the first criterion they fail, in the patients table.

The model's cascade is the same for unipolar and bipolar depression (F-K-4: ketamine
acts in both); the diagnosis and the failed trials are covariates for inclusion and
reporting, not model inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.core.streams import assay_rng

PATIENT_COLUMNS = ["arm", "subject", "sex", "age_y", "weight_kg", "diagnosis",
                   "failed_trials", "screening_madrs", "eligible", "exclusion"]


def _truncated(g: np.random.Generator, dist) -> float:
    """One draw of a (possibly truncated) normal, by rejection (bounded tries, then the
    nearest bound)."""
    lo = -np.inf if dist.min is None else dist.min
    hi = np.inf if dist.max is None else dist.max
    for _ in range(1000):
        x = g.normal(dist.mean, dist.sd)
        if lo <= x <= hi:
            return float(x)
    return float(np.clip(dist.mean, lo, hi))


def draw_patients(population, seed: int, arm: str, subjects: np.ndarray) -> pd.DataFrame:
    """Covariates of the given candidates (global subject indices in the arm)."""
    rows = []
    for s in np.asarray(subjects, dtype=np.int64):
        g = assay_rng(seed, arm, int(s), "population")
        female = bool(g.random() < population.female)
        age = _truncated(g, population.age)
        weight = _truncated(g, population.weight_female if female else population.weight_male)
        bipolar = bool(g.random() < population.bipolar)
        failed = int(g.poisson(population.failed_trials))
        rows.append({"arm": arm, "subject": int(s), "sex": "female" if female else "male",
                     "age_y": age, "weight_kg": weight,
                     "diagnosis": "bipolar" if bipolar else "unipolar",
                     "failed_trials": failed})
    return pd.DataFrame(rows, columns=PATIENT_COLUMNS[:7])


def screen(population, patients: pd.DataFrame, readouts: pd.DataFrame
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the inclusion criteria: (the arm's readouts of the eligible patients, the
    patients table with ``screening_madrs``, ``eligible`` and ``exclusion``)."""
    out = patients.copy()
    out["screening_madrs"] = np.nan
    out["eligible"] = True
    out["exclusion"] = ""
    inc = population.inclusion
    if population.screening is not None:
        r = readouts[(readouts["readout"] == "madrs_total")
                     & np.isclose(readouts["time_h"], population.screening)]
        out["screening_madrs"] = out["subject"].map(
            r.groupby("subject")["value"].first()).astype(float)
    if inc is None:
        return readouts, out

    def exclude(mask, reason):
        new = mask & out["eligible"]
        out.loc[new, "exclusion"] = reason
        out.loc[new, "eligible"] = False

    if inc.madrs_min is not None:
        exclude(~(out["screening_madrs"] >= inc.madrs_min),
                f"MADRS below {inc.madrs_min:g} at screening")
    if inc.failed_trials_min is not None:
        exclude(out["failed_trials"] < inc.failed_trials_min,
                f"fewer than {inc.failed_trials_min} failed antidepressant trials")
    if inc.diagnoses is not None:
        exclude(~out["diagnosis"].isin(inc.diagnoses),
                f"diagnosis not in {', '.join(inc.diagnoses)}")
    keep = set(out.loc[out["eligible"], "subject"])
    return readouts[readouts["subject"].isin(keep)], out
