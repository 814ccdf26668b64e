"""Analysis of depression-trial data (simulated or real), besides the MMRM.

Pure table functions: a per-subject DataFrame in, tidy DataFrames (or a small frozen
dataclass of them) out. The repeated-measures model of the primary endpoint lives in
:mod:`ketasim.analysis.mmrm`; this module holds the rest of a trial's analysis plan.

* **Rating scales as data** (:data:`SCALES`, :func:`scale`): MADRS, HDRS-17, CADSS and
  BPRS, with their items and item ranges, total range, severity bands, response and
  remission rules, subscales and suicide item; and the self-report QIDS-SR16
  (:data:`QIDS_SR16`), whose total is scored over domains (the highest item of each).
* **Binary endpoints**: :func:`response` (a fall of >= 50% from baseline),
  :func:`remission` (a total at or under the scale's cut-off) and
  :func:`binary_endpoint` (per-arm proportions with Wilson intervals; risk difference with
  Newcombe's interval, odds ratio with Woolf's interval, Fisher's exact test, the
  (optionally covariate-adjusted) logistic-regression odds ratio, and the number needed
  to treat, each arm against the control arm).
* **Time to event** (relapse under maintenance): :func:`survival` (Kaplan-Meier curves
  and medians per arm, log-rank tests and Cox hazard ratios against the control arm).
* **Mediation** (does a mediator, such as dissociation, carry the treatment's effect on
  the outcome?): :func:`mediation`, product of coefficients with a percentile bootstrap
  interval and the Sobel test.
* **Subject flow**: :func:`consort`, counts per stage, arm and reason for a CONSORT
  diagram.

Errors are one :class:`ValueError` line naming the bad argument or column (and row).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.discrete.conditional_models import ConditionalLogit
from statsmodels.discrete.discrete_model import Logit
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from ketasim.analysis._tables import FALSE_WORDS as _FALSE_WORDS
from ketasim.analysis._tables import TRUE_WORDS as _TRUE_WORDS
from ketasim.analysis._tables import first_true, is_integral, short

__all__ = [
    "BINARY_COLUMNS",
    "BPRS",
    "CADSS",
    "CONSORT_COLUMNS",
    "CONSORT_STAGES",
    "COX_COLUMNS",
    "HDRS17",
    "KM_COLUMNS",
    "MADRS",
    "MEDIATION_COLUMNS",
    "PAIRED_BINARY_COLUMNS",
    "QIDS_SR16",
    "SCALES",
    "SURVIVAL_SUMMARY_COLUMNS",
    "Band",
    "Item",
    "MediationResult",
    "Scale",
    "SurvivalResult",
    "binary_endpoint",
    "consort",
    "mediation",
    "paired_binary_endpoint",
    "paired_rd_interval",
    "remission",
    "response",
    "scale",
    "survival",
]


# --------------------------------------------------------------------------- #
# Rating scales
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Item:
    """One item of a rating scale: its number (1-based, as printed on the form), a short
    name and its score range ``low..high`` (integers)."""

    number: int
    name: str
    high: int
    low: int = 0


@dataclass(frozen=True)
class Band:
    """A severity band: totals ``low..high`` (inclusive) are ``label``."""

    label: str
    low: int
    high: int


@dataclass(frozen=True)
class Scale:
    """A rating scale as data.

    Attributes
    ----------
    key, name : str
        Registry key (``"madrs"``) and full name.
    items : tuple of Item
        In form order; the total is their sum.
    bands : tuple of Band
        Severity bands covering the whole total range (empty when the scale has none).
    response_fall : float or None
        Fractional fall from baseline that counts as response (0.5), None when the
        scale defines no response.
    remission_max : int or None
        Default remission cut-off (total <= this), None when the scale defines none.
    suicide_item : int or None
        Number of the suicidality item.
    subscales : tuple of (str, tuple of int)
        Named subsets of item numbers.
    reference : str
        Where the items, ranges and cut-offs come from.
    domains : tuple of (str, tuple of int)
        Scored domains (QIDS-SR16): each item in exactly one, and the total is the sum
        over domains of the domain's highest item. Empty (the default): the total is the
        sum of the items.
    """

    key: str
    name: str
    items: tuple[Item, ...]
    bands: tuple[Band, ...] = ()
    response_fall: float | None = None
    remission_max: int | None = None
    suicide_item: int | None = None
    subscales: tuple[tuple[str, tuple[int, ...]], ...] = ()
    reference: str = ""
    domains: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self):
        if self.domains:
            numbers = [k for _, ks in self.domains for k in ks]
            form = [it.number for it in self.items]
            if sorted(numbers) != sorted(form) or len(set(numbers)) != len(numbers):
                raise ValueError(f"{self.key}: the domains must hold every item exactly "
                                 f"once (items {form}, domains {numbers})")

    @property
    def n_items(self) -> int:
        return len(self.items)

    def _groups(self) -> list[list[Item]]:
        """The scored groups: the domains, or each item on its own."""
        if not self.domains:
            return [[it] for it in self.items]
        return [[self.item(k) for k in ks] for _, ks in self.domains]

    @property
    def total_min(self) -> int:
        return sum(max(it.low for it in g) for g in self._groups())

    @property
    def total_max(self) -> int:
        return sum(max(it.high for it in g) for g in self._groups())

    def total(self, items) -> np.ndarray | float:
        """The total of item scores ``items`` (..., n_items, in form order): the sum of
        the items, or, for a scale with domains, the sum of each domain's highest item.
        Each score must be within its item's range."""
        v = _finite(items, "items")
        if v.ndim == 0 or v.shape[-1] != self.n_items:
            raise ValueError(f"items: expected the {self.n_items} {self.name} item scores "
                             f"on the last axis, got shape {v.shape}")
        low = np.array([it.low for it in self.items], dtype=float)
        high = np.array([it.high for it in self.items], dtype=float)
        flat = v.reshape(-1, self.n_items)
        bad = (flat < low) | (flat > high)
        r = first_true(bad.any(axis=1))
        if r is not None:
            k = int(np.argmax(bad[r]))
            it = self.items[k]
            raise ValueError(f"items[{r}]: {self.name} item {it.number} ({it.name}) must be "
                             f"{it.low}-{it.high}, got {short(flat[r, k])}")
        index = {it.number: k for k, it in enumerate(self.items)}
        out = sum(v[..., [index[it.number] for it in g]].max(axis=-1)
                  for g in self._groups())
        return float(out) if np.ndim(out) == 0 else out

    def item(self, number: int) -> Item:
        """The item with this (1-based) number."""
        for it in self.items:
            if it.number == number:
                return it
        raise ValueError(f"{self.key}: no item {number!r} (items 1-{self.n_items})")

    def subscale(self, name: str) -> tuple[int, ...]:
        """Item numbers of a named subscale."""
        known = dict(self.subscales)
        if name not in known:
            names = ", ".join(repr(k) for k in known) or "none"
            raise ValueError(f"{self.key}: unknown subscale {name!r} (known: {names})")
        return known[name]

    def check_totals(self, totals, argument: str = "score") -> np.ndarray:
        """``totals`` as a float array (any shape), each finite and within the total
        range; else a ValueError naming the value (``score``, ``score[3]``, ``score[1,
        2]``) and the range."""
        v = _finite(totals, argument)
        flat = v.reshape(-1)
        i = first_true((flat < self.total_min) | (flat > self.total_max))
        if i is not None:
            where = ("" if v.ndim == 0 else f"[{i}]" if v.ndim == 1 else
                     "[" + ", ".join(str(int(k)) for k in np.unravel_index(i, v.shape))
                     + "]")
            raise ValueError(f"{argument}{where}: expected a {self.name} total in "
                             f"{self.total_min}-{self.total_max}, got {short(flat[i])}")
        return v

    def severity(self, totals) -> np.ndarray:
        """Severity band label of each total (object array; a scalar gives a str).

        Totals between two integer bands (a prorated total such as 19.5) take the
        higher band."""
        if not self.bands:
            raise ValueError(f"{self.key}: the scale defines no severity bands")
        scalar = np.ndim(totals) == 0
        v = np.atleast_1d(self.check_totals(totals, "totals"))
        upper = np.array([b.high for b in self.bands[:-1]], dtype=float)
        labels = np.array([b.label for b in self.bands], dtype=object)
        out = labels[np.searchsorted(upper, v, side="left")]
        return out[0] if scalar else out


def _items(spec: Sequence[tuple[str, int]], low: int = 0) -> tuple[Item, ...]:
    return tuple(Item(k + 1, name, high, low) for k, (name, high) in enumerate(spec))


#: MADRS, Montgomery & Asberg 1979 (Br J Psychiatry 134:382): 10 items 0-6, total 0-60.
#: Bands: Snaith et al. 1986 (Br J Psychiatry 148:599). Remission <= 12 is the phase 3
#: esketamine definition (<= 10 in phase 2: pass ``threshold``). Anhedonia factor: items
#: 1, 2, 6, 7, 8 (apparent and reported sadness, concentration, lassitude, inability to
#: feel), as used in ketamine secondary analyses.
MADRS = Scale(
    key="madrs",
    name="MADRS",
    items=_items([("apparent sadness", 6), ("reported sadness", 6), ("inner tension", 6),
                  ("reduced sleep", 6), ("reduced appetite", 6),
                  ("concentration difficulties", 6), ("lassitude", 6),
                  ("inability to feel", 6), ("pessimistic thoughts", 6),
                  ("suicidal thoughts", 6)]),
    bands=(Band("none", 0, 6), Band("mild", 7, 19), Band("moderate", 20, 34),
           Band("severe", 35, 60)),
    response_fall=0.5,
    remission_max=12,
    suicide_item=10,
    subscales=(("anhedonia", (1, 2, 6, 7, 8)),),
    reference="Montgomery & Asberg 1979; bands Snaith et al. 1986",
)

#: HDRS-17, Hamilton 1960 (J Neurol Neurosurg Psychiatry 23:56): nine items 0-4 (1, 2,
#: 3, 7, 8, 9, 10, 11, 15) and eight items 0-2 (4, 5, 6, 12, 13, 14, 16, 17), total 0-52.
#: Bands and remission <= 7: Zimmerman et al. 2013 (J Affect Disord 150:384).
HDRS17 = Scale(
    key="hdrs17",
    name="HDRS-17",
    items=_items([("depressed mood", 4), ("guilt", 4), ("suicide", 4),
                  ("insomnia early", 2), ("insomnia middle", 2), ("insomnia late", 2),
                  ("work and activities", 4), ("retardation", 4), ("agitation", 4),
                  ("anxiety psychic", 4), ("anxiety somatic", 4),
                  ("somatic gastrointestinal", 2), ("somatic general", 2), ("genital", 2),
                  ("hypochondriasis", 4), ("weight loss", 2), ("insight", 2)]),
    bands=(Band("none", 0, 7), Band("mild", 8, 16), Band("moderate", 17, 23),
           Band("severe", 24, 52)),
    response_fall=0.5,
    remission_max=7,
    suicide_item=3,
    reference="Hamilton 1960; bands Zimmerman et al. 2013",
)

#: CADSS, Bremner et al. 1998 (J Trauma Stress 11:125), the 23-item form (each 0-4,
#: total 0-92) reported by ketamine and esketamine trials. Item wording is not
#: reproduced; items are numbered only.
CADSS = Scale(
    key="cadss",
    name="CADSS",
    items=_items([(f"item {k}", 4) for k in range(1, 24)]),
    reference="Bremner et al. 1998 (23-item form as in esketamine trials)",
)

#: BPRS, Overall & Gorham 1962 (Psychol Rep 10:799): 18 items 1-7, total 18-126. The
#: positive-symptom subscale of ketamine work: conceptual disorganisation (4),
#: suspiciousness (11), hallucinatory behaviour (12), unusual thought content (15).
BPRS = Scale(
    key="bprs",
    name="BPRS",
    items=_items([("somatic concern", 7), ("anxiety", 7), ("emotional withdrawal", 7),
                  ("conceptual disorganisation", 7), ("guilt feelings", 7), ("tension", 7),
                  ("mannerisms and posturing", 7), ("grandiosity", 7),
                  ("depressive mood", 7), ("hostility", 7), ("suspiciousness", 7),
                  ("hallucinatory behaviour", 7), ("motor retardation", 7),
                  ("uncooperativeness", 7), ("unusual thought content", 7),
                  ("blunted affect", 7), ("excitement", 7), ("disorientation", 7)],
                 low=1),
    subscales=(("positive", (4, 11, 12, 15)),),
    reference="Overall & Gorham 1962",
)

#: QIDS-SR16, the self-rated Quick Inventory of Depressive Symptomatology, Rush et al.
#: 2003 (Biol Psychiatry 54:573): 16 items each 0-3, scored over the nine DSM-IV
#: criterion domains, each domain the highest of its items: sleep (items 1-4), sad mood
#: (5), appetite/weight (6-9), concentration (10), self-view (11), suicidal ideation
#: (12), interest (13), energy (14), psychomotor (15-16); total 0-27. Bands: 0-5 none,
#: 6-10 mild, 11-15 moderate, 16-20 severe, 21-27 very severe (Rush et al. 2003).
#: Remission <= 5: the STAR*D definition (Rush et al. 2006 Am J Psychiatry 163:1905).
#: Item names are short labels, not the questionnaire's wording. Not in :data:`SCALES`
#: (the clinician-rated scales); pass the Scale itself to :func:`remission`.
QIDS_SR16 = Scale(
    key="qids_sr16",
    name="QIDS-SR16",
    items=_items([("sleep onset", 3), ("sleep during the night", 3),
                  ("waking too early", 3), ("sleeping too much", 3), ("sad mood", 3),
                  ("appetite decreased", 3), ("appetite increased", 3),
                  ("weight decreased", 3), ("weight increased", 3),
                  ("concentration", 3), ("view of self", 3),
                  ("thoughts of death or suicide", 3), ("interest", 3),
                  ("energy", 3), ("slowed down", 3), ("restless", 3)]),
    bands=(Band("none", 0, 5), Band("mild", 6, 10), Band("moderate", 11, 15),
           Band("severe", 16, 20), Band("very severe", 21, 27)),
    response_fall=0.5,
    remission_max=5,
    suicide_item=12,
    domains=(("sleep", (1, 2, 3, 4)), ("sad mood", (5,)),
             ("appetite/weight", (6, 7, 8, 9)), ("concentration", (10,)),
             ("self-view", (11,)), ("suicidal ideation", (12,)), ("interest", (13,)),
             ("energy", (14,)), ("psychomotor", (15, 16))),
    reference="Rush et al. 2003; remission Rush et al. 2006 (STAR*D)",
)

#: The scales by key.
SCALES: dict[str, Scale] = {s.key: s for s in (MADRS, HDRS17, CADSS, BPRS, QIDS_SR16)}


def scale(name: str | Scale) -> Scale:
    """The :class:`Scale` registered under ``name`` (case-insensitive; ``"hdrs-17"``,
    ``"hamd17"`` and ``"ham-d"`` name HDRS-17, ``"qids"`` the QIDS-SR16); a Scale is
    returned as is."""
    if isinstance(name, Scale):
        return name
    key = str(name).strip().lower()
    key = {"hdrs-17": "hdrs17", "hamd17": "hdrs17", "ham-d": "hdrs17", "hamd": "hdrs17",
           "hdrs": "hdrs17", "qids": "qids_sr16", "qids-sr16": "qids_sr16",
           "qids_sr": "qids_sr16"}.get(key, key)
    if key not in SCALES:
        raise ValueError(f"unknown scale {name!r} (known: {', '.join(SCALES)})")
    return SCALES[key]


_lookup_scale = scale  # for functions whose ``scale`` argument hides the name


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _finite(values, argument: str) -> np.ndarray:
    """Array-like of finite numbers as float64 (any shape)."""
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{argument}: expected numbers, got {short(values)}") from None
    flat = v.reshape(-1)
    i = first_true(~np.isfinite(flat))
    if i is not None:
        raise ValueError(f"{argument}[{i}]: expected a finite number (drop or impute missing "
                         f"values first), got {short(flat[i])}")
    return v


def _row(df: pd.DataFrame, pos: int) -> str:
    """The index label of row ``pos`` as shown in an error message."""
    label = df.index[pos]
    return repr(label.item() if isinstance(label, np.generic) else label)


def _require(df, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame, got {type(df).__name__}")  # noqa: TRY004
    for c in columns:
        if c not in df.columns:
            present = ", ".join(repr(str(k)) for k in df.columns[:12])
            more = ", ..." if len(df.columns) > 12 else ""
            raise ValueError(f"{what}: missing column {c!r} (columns: {present}{more})")


def _column_numbers(df: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as finite float64; the first bad cell is the error."""
    s = df[column]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=float)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    i = first_true(~np.isfinite(v))
    if i is not None:
        raise ValueError(f"column {column!r}, row {_row(df, i)}: expected a finite number "
                         f"(drop or impute missing values first), got {short(s.iloc[i])}")
    return v


def _column_binary(df: pd.DataFrame, column: str) -> np.ndarray:
    """A 0/1 (or bool) column as int64; anything else is the error."""
    s = df[column]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.int64)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~((v == 0) | (v == 1))
    i = first_true(bad)
    if i is not None:
        raise ValueError(f"column {column!r}, row {_row(df, i)}: expected an event "
                         f"indicator 0 or 1 (or bool), got {short(s.iloc[i])}")
    return v.astype(np.int64)


def _column_arms(df: pd.DataFrame, arm_col: str, control) -> tuple[np.ndarray, list]:
    """Arm labels and the arm order: control first, then the others as they appear."""
    arms = df[arm_col].to_numpy(dtype=object)
    missing = pd.isna(df[arm_col]).to_numpy()
    i = first_true(missing)
    if i is not None:
        raise ValueError(f"column {arm_col!r}, row {_row(df, i)}: missing arm label")
    order = list(dict.fromkeys(arms.tolist()))
    if control not in order:
        names = ", ".join(repr(a) for a in order)
        raise ValueError(f"control arm {control!r} not found in column {arm_col!r} "
                         f"(arms: {names})")
    if len(order) < 2:
        raise ValueError(f"column {arm_col!r}: only the control arm {control!r}; need at "
                         "least one arm to compare with it")
    return arms, [control] + [a for a in order if a != control]


def _is_real(v: object) -> bool:
    """A real number (Python or numpy; not a bool)."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))


def _alpha(alpha: float) -> float:
    if not (_is_real(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {short(alpha)}")
    return float(alpha)


def _covariates(covariates, df: pd.DataFrame, reserved: Sequence[str], what: str
                ) -> list[str]:
    if isinstance(covariates, str):
        covariates = (covariates,)
    covs = list(covariates)
    _require(df, covs, what)
    for c in covs:
        if c in reserved:
            raise ValueError(f"{what}: covariate {c!r} is already one of the analysed "
                             f"columns ({', '.join(map(repr, reserved))})")
    if len(set(covs)) != len(covs):
        raise ValueError(f"{what}: covariates repeat a column ({', '.join(covs)})")
    return covs


# --------------------------------------------------------------------------- #
# Binary endpoints
# --------------------------------------------------------------------------- #


def response(baseline, score, fraction: float = 0.5):
    """Response: a fall of at least ``fraction`` (50%) of the baseline total.

    ``baseline - score >= fraction * baseline``, elementwise; a scalar pair gives a bool,
    arrays a bool array. The conventional antidepressant response criterion for MADRS and
    HDRS-17 totals.

    Raises
    ------
    ValueError
        Non-finite values, a baseline <= 0, a negative score, mismatched shapes, or
        ``fraction`` outside (0, 1].
    """
    if not (_is_real(fraction) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {short(fraction)}")
    b = _finite(baseline, "baseline")
    s = _finite(score, "score")
    if b.shape != s.shape:
        raise ValueError(f"baseline and score differ in shape: {b.shape} vs {s.shape}")
    i = first_true(b.reshape(-1) <= 0)
    if i is not None:
        raise ValueError(f"baseline[{i}]: expected a total > 0 (a fall from 0 is undefined), "
                         f"got {short(b.reshape(-1)[i])}")
    i = first_true(s.reshape(-1) < 0)
    if i is not None:
        raise ValueError(f"score[{i}]: expected a total >= 0, got {short(s.reshape(-1)[i])}")
    out = (b - s) >= fraction * b
    return bool(out) if out.ndim == 0 else out


def remission(score, scale: str | Scale, threshold: float | None = None):
    """Remission: a total at or under the cut-off, ``score <= threshold``.

    The default cut-off is the scale's (:attr:`Scale.remission_max`): MADRS <= 12 (phase
    3 esketamine; phase 2 used <= 10, pass ``threshold=10``), HDRS-17 <= 7 (Zimmerman et
    al. 2013). A scalar gives a bool, arrays a bool array.

    Raises
    ------
    ValueError
        Unknown scale, a scale without a remission rule (and no ``threshold``), or a
        total outside the scale's range.
    """
    sc = _lookup_scale(scale)
    if threshold is None:
        if sc.remission_max is None:
            raise ValueError(f"{sc.key}: the scale defines no remission cut-off; pass "
                             "threshold")
        threshold = sc.remission_max
    if not (_is_real(threshold) and sc.total_min <= threshold
            <= sc.total_max):
        raise ValueError(f"threshold must be a number in {sc.total_min}-{sc.total_max} "
                         f"({sc.name}), got {short(threshold)}")
    v = sc.check_totals(score, "score")
    out = v <= threshold
    return bool(out) if out.ndim == 0 else out


#: Columns of :func:`binary_endpoint`'s table (one row per arm, control first; the
#: comparison columns are NaN on the control row).
BINARY_COLUMNS = [
    "arm", "n", "events", "proportion", "ci_lower", "ci_upper",
    "risk_difference", "rd_ci_lower", "rd_ci_upper",
    "odds_ratio", "or_ci_lower", "or_ci_upper", "or_correction", "fisher_p",
    "logit_or", "logit_ci_lower", "logit_ci_upper", "logit_p", "logit_covariates",
    "logit_note", "nnt", "nnt_ci_lower", "nnt_ci_upper",
]


def _wilson(events: int, n: int, alpha: float) -> tuple[float, float]:
    lo, hi = proportion_confint(events, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def binary_endpoint(df: pd.DataFrame, arm_col: str, event_col: str, control,
                    covariates: Sequence[str] = (), alpha: float = 0.05) -> pd.DataFrame:
    """A binary endpoint (response, remission, relapse) per arm and against control.

    Per arm: ``n``, ``events``, ``proportion`` with its Wilson score interval (Wilson
    1927; statsmodels ``proportion_confint(method="wilson")``).

    Each other arm against ``control`` (``p1`` the arm, ``p0`` control):

    * ``risk_difference`` ``p1 - p0`` with Newcombe's hybrid score interval built from
      the two Wilson intervals (Newcombe 1998, Stat Med 17:873, method 10);
    * ``odds_ratio`` of the 2x2 table with Woolf's logit interval
      ``exp(log OR +- z * sqrt(1/a + 1/b + 1/c + 1/d))`` (Woolf 1955). Only when a
      cell is 0, 0.5 is added to every cell (Haldane 1956) and ``or_correction`` says
      ``"haldane"`` (else ``"none"``);
    * ``fisher_p``: two-sided Fisher exact test of the 2x2 table (scipy);
    * ``logit_or``: odds ratio from one logistic regression (statsmodels ``Logit``) of
      the event on an indicator per non-control arm plus ``covariates`` (e.g. the
      baseline total), fitted to all subjects, with its Wald interval and p.
      Unadjusted, it equals the table's odds ratio. NaN with a ``logit_note`` when
      the model cannot be estimated (separation: an arm with no or only events);
    * ``nnt`` = ``1 / risk_difference`` (Laupacis et al. 1988): positive, subjects
      treated for one more event than under control; negative, for one fewer (inf
      when the difference is 0). Its interval inverts the risk-difference interval and
      is given only when that interval excludes 0 (Altman 1998, BMJ 317:1309).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject.
    arm_col, event_col : str
        Arm label (no missing values) and event indicator (0/1 or bool).
    control : object
        The control arm's label in ``arm_col``.
    covariates : sequence of str
        Numeric columns adjusting the logistic model only.
    alpha : float, default 0.05
        Intervals are ``1 - alpha``.

    Returns
    -------
    pandas.DataFrame
        :data:`BINARY_COLUMNS`, one row per arm, control first.

    Raises
    ------
    ValueError
        Missing column, control arm absent, a single arm, an event not 0/1, a
        non-numeric or missing covariate.
    """
    what = "binary_endpoint"
    alpha = _alpha(alpha)
    _require(df, [arm_col, event_col], what)
    covs = _covariates(covariates, df, (arm_col, event_col), what)
    arms, order = _column_arms(df, arm_col, control)
    y = _column_binary(df, event_col)
    x_cov = np.column_stack([_column_numbers(df, c) for c in covs]) if covs else None
    z = float(sps.norm.ppf(1 - alpha / 2))
    counts = {a: (int(y[arms == a].sum()), int((arms == a).sum())) for a in order}
    logit = _logit(y, arms, order, x_cov, alpha)
    e0, n0 = counts[control]
    p0 = e0 / n0
    l0, u0 = _wilson(e0, n0, alpha)
    rows = []
    for a in order:
        e1, n1 = counts[a]
        p1 = e1 / n1
        l1, u1 = _wilson(e1, n1, alpha)
        row = {"arm": a, "n": n1, "events": e1, "proportion": p1, "ci_lower": l1,
               "ci_upper": u1, "logit_covariates": ";".join(covs)}
        if a != control:
            rd = p1 - p0
            rd_lo = rd - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
            rd_hi = rd + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
            cells = np.array([e1, n1 - e1, e0, n0 - e0], dtype=float)
            corrected = bool((cells == 0).any())
            if corrected:
                cells = cells + 0.5
            ca, cb, cc, cd = cells
            log_or = np.log(ca * cd / (cb * cc))
            se = np.sqrt((1.0 / cells).sum())
            fisher = sps.fisher_exact([[e1, n1 - e1], [e0, n0 - e0]])
            nnt_lo = nnt_hi = float("nan")
            if rd_lo > 0 or rd_hi < 0:
                nnt_lo, nnt_hi = 1.0 / rd_hi, 1.0 / rd_lo
            row.update({
                "risk_difference": rd, "rd_ci_lower": rd_lo, "rd_ci_upper": rd_hi,
                "odds_ratio": float(np.exp(log_or)),
                "or_ci_lower": float(np.exp(log_or - z * se)),
                "or_ci_upper": float(np.exp(log_or + z * se)),
                "or_correction": "haldane" if corrected else "none",
                "fisher_p": float(fisher.pvalue),
                "nnt": 1.0 / rd if rd != 0 else float("inf"),
                "nnt_ci_lower": nnt_lo, "nnt_ci_upper": nnt_hi,
                **logit[a]})
        else:
            row["or_correction"] = ""
            row["logit_note"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=BINARY_COLUMNS)


def _logit(y: np.ndarray, arms: np.ndarray, order: list, x_cov: np.ndarray | None,
           alpha: float) -> dict:
    """Per non-control arm: logit_or, logit_ci_lower/upper, logit_p, logit_note."""
    nan = {"logit_or": np.nan, "logit_ci_lower": np.nan, "logit_ci_upper": np.nan,
           "logit_p": np.nan}
    separated = {}
    for a in order:
        e, n = int(y[arms == a].sum()), int((arms == a).sum())
        if e in (0, n):
            separated[a] = (f"not estimable: arm {a!r} has {'no' if e == 0 else 'only'} "
                            "events (separation)")
    if order[0] in separated:  # every odds ratio is against the control
        return {b: {**nan, "logit_note": separated[order[0]]} for b in order[1:]}
    # an arm with no or only events is left out of the model, so it blanks its own odds
    # ratio and not the others'
    blank = {b: {**nan, "logit_note": separated[b]} for b in order[1:] if b in separated}
    order = [a for a in order if a not in separated]
    others = order[1:]
    if not others:
        return blank
    rows = np.isin(arms, order)
    y, arms = y[rows], arms[rows]
    x_cov = None if x_cov is None else x_cov[rows]
    cols = [np.ones(len(y))] + [(arms == a).astype(float) for a in others]
    x = np.column_stack(cols + ([x_cov] if x_cov is not None else []))
    note = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("error", ConvergenceWarning)
            fit = Logit(y, x).fit(disp=0, maxiter=200)
            params, ci, pvals = fit.params, fit.conf_int(alpha=alpha), fit.pvalues
    except (PerfectSeparationWarning, PerfectSeparationError):
        note = "not estimable: perfect separation"
    except ConvergenceWarning:
        note = "not estimable: the fit did not converge"
    except np.linalg.LinAlgError:
        note = "not estimable: singular or overflowing fit (collinear covariates?)"
    if note:
        return {**blank, **{b: {**nan, "logit_note": note} for b in others}}
    out = dict(blank)
    for k, a in enumerate(others, start=1):
        out[a] = {"logit_or": float(np.exp(params[k])),
                  "logit_ci_lower": float(np.exp(ci[k, 0])),
                  "logit_ci_upper": float(np.exp(ci[k, 1])),
                  "logit_p": float(pvals[k]), "logit_note": ""}
    return out


#: Columns of :func:`paired_binary_endpoint`: per treatment the proportion with its Wilson
#: interval; against the control treatment, the paired 2x2 table of the patients who had
#: both (``both``, ``arm_only``, ``control_only``, ``neither``), the paired risk difference
#: with Newcombe's interval, the conditional (matched-pairs) odds ratio with its exact
#: interval, McNemar's exact test, and the period-adjusted conditional logistic
#: regression.
PAIRED_BINARY_COLUMNS = [
    "arm", "n", "events", "proportion", "ci_lower", "ci_upper",
    "n_pairs", "both", "arm_only", "control_only", "neither",
    "risk_difference", "rd_ci_lower", "rd_ci_upper",
    "odds_ratio", "or_ci_lower", "or_ci_upper", "mcnemar_p",
    "clogit_or", "clogit_ci_lower", "clogit_ci_upper", "clogit_p", "clogit_note",
]


def paired_rd_interval(both: int, arm_only: int, control_only: int, neither: int,
                       alpha: float = 0.05) -> tuple[float, float, float]:
    """Difference of two paired proportions, ``p1 - p2`` with ``p1 = (both + arm_only) /
    n`` and ``p2 = (both + control_only) / n``, and its square-and-add interval from the
    two Wilson intervals, corrected for the pairs' correlation ``phi = (both neither -
    arm_only control_only) / sqrt(product of the four margins)`` (0 when a margin is 0):
    Newcombe 1998, Stat Med 17:2635, method 10. Returns (difference, lower,
    upper); NaN for no pairs. With ``phi = 0`` it is the unpaired interval of
    :func:`binary_endpoint` for two groups of ``n``. (Newcombe also gives ``phi`` with a
    continuity correction, which sets it to 0 for small positive ``both neither -
    arm_only control_only`` and so widens the interval; not used here.)

    Raises
    ------
    ValueError
        A count that is not a finite integer >= 0 (an integral float such as 3.0 is
        accepted), or ``alpha`` outside (0, 1).
    """
    alpha = _alpha(alpha)
    counts = []
    for name, v in (("both", both), ("arm_only", arm_only),
                    ("control_only", control_only), ("neither", neither)):
        if not (is_integral(v) and v >= 0):
            raise ValueError(f"paired_rd_interval: {name} must be a count (an integer "
                             f">= 0), got {short(v)}")
        counts.append(int(v))
    a, b, c, d = counts
    n = a + b + c + d
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, alpha)
    l2, u2 = _wilson(a + c, n, alpha)
    margins = float(a + b) * float(c + d) * float(a + c) * float(b + d)
    phi = (a * d - b * c) / np.sqrt(margins) if margins > 0 else 0.0
    diff = p1 - p2
    lo = diff - np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                            + (u2 - p2) ** 2))
    hi = diff + np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                            + (p2 - l2) ** 2))
    return float(diff), float(lo), float(hi)


def paired_binary_endpoint(df: pd.DataFrame, subject_col: str, arm_col: str,
                           period_col: str, event_col: str, control,
                           alpha: float = 0.05) -> pd.DataFrame:
    """A binary endpoint (response, remission) of a crossover trial, where each subject
    has an outcome under several treatments, one per period.

    Per treatment (``arm_col``): ``n`` subject-periods, ``events`` and ``proportion`` with
    its Wilson interval. Each other treatment against ``control``, within subjects:

    * the paired table over the ``n_pairs`` subjects who had both (a subject's first
      period on each treatment, in the sort order of the period labels, whatever the
      order of the rows): ``both``, ``arm_only`` (event on the treatment only),
      ``control_only``, ``neither``;
    * ``risk_difference`` of the paired proportions with Newcombe's interval
      (:func:`paired_rd_interval`);
    * ``odds_ratio``: the conditional odds ratio of matched pairs, ``arm_only /
      control_only``, with the exact interval from the Clopper-Pearson interval of
      ``arm_only / (arm_only + control_only)`` (Breslow and Day 1980, Statistical
      Methods in Cancer Research I, ch. 5); inf when ``control_only`` is 0, NaN without
      discordant pairs;
    * ``mcnemar_p``: McNemar's exact (binomial) test of the discordant pairs (statsmodels
      ``mcnemar(exact=True)``; 1 without discordant pairs);
    * ``clogit_or``: the odds ratio of a conditional logistic regression of the event on
      the treatment and period indicators, stratified by subject (statsmodels
      ``ConditionalLogit``; all subjects and treatments in one model), with its Wald
      interval and p: the analysis that allows for a period effect (for two periods,
      without the period term, it would be the conditional odds ratio above). NaN with a
      ``clogit_note`` when it cannot be estimated (no discordant subject, or separation).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject and period.
    subject_col, arm_col, period_col, event_col : str
        Subject id, treatment label, period (any labels) and event indicator (0/1 or
        bool). Treatment and period labels may not be missing; period labels must
        sort in time order (1, 2, ...).
    control : object
        The reference treatment's label in ``arm_col``.
    alpha : float, default 0.05
        Intervals are ``1 - alpha``.

    Returns
    -------
    pandas.DataFrame
        :data:`PAIRED_BINARY_COLUMNS`, one row per treatment, control first.

    Raises
    ------
    ValueError
        Missing column, control absent, a single treatment, an event not 0/1, a missing
        subject or period label, period labels that cannot be sorted (mixed types), or a
        subject with two rows in one period.
    """
    what = "paired_binary_endpoint"
    alpha = _alpha(alpha)
    _require(df, [subject_col, arm_col, period_col, event_col], what)
    arms, order = _column_arms(df, arm_col, control)
    y = _column_binary(df, event_col)
    for col in (subject_col, period_col):
        i = first_true(pd.isna(df[col]).to_numpy())
        if i is not None:
            raise ValueError(f"column {col!r}, row {_row(df, i)}: missing label")
    subj = df[subject_col].to_numpy(dtype=object)
    period = df[period_col].to_numpy(dtype=object)
    dup = pd.DataFrame({"s": subj, "p": period}).duplicated().to_numpy()
    i = first_true(dup)
    if i is not None:
        raise ValueError(f"column {period_col!r}, row {_row(df, i)}: subject "
                         f"{short(subj[i])} has two rows in period {short(period[i])}")
    table = pd.DataFrame({"s": subj, "a": arms, "y": y, "p": period})
    try:  # a subject's first period on each treatment, whatever the row order
        first = table.sort_values("p", kind="stable").drop_duplicates(["s", "a"])
    except TypeError:
        raise ValueError(f"column {period_col!r}: period labels cannot be sorted (mixed "
                         "types?)") from None
    by = {a: g.set_index("s")["y"] for a, g in first.groupby("a", sort=False)}
    clogit = _clogit(y, arms, period, subj, order, alpha)
    rows = []
    for a in order:
        e, n = int(y[arms == a].sum()), int((arms == a).sum())
        lo, hi = _wilson(e, n, alpha)
        row = {"arm": a, "n": n, "events": e, "proportion": e / n, "ci_lower": lo,
               "ci_upper": hi}
        if a == control:
            row["clogit_note"] = ""
            rows.append(row)
            continue
        t, c = by[a].align(by[control], join="inner")
        both, a_only = int(((t == 1) & (c == 1)).sum()), int(((t == 1) & (c == 0)).sum())
        c_only, neither = int(((t == 0) & (c == 1)).sum()), int(((t == 0) & (c == 0)).sum())
        rd, rd_lo, rd_hi = paired_rd_interval(both, a_only, c_only, neither, alpha)
        disc = a_only + c_only
        if disc == 0:
            odds = or_lo = or_hi = float("nan")
            p_mc = 1.0
        else:
            q_lo, q_hi = proportion_confint(a_only, disc, alpha=alpha, method="beta")
            with np.errstate(divide="ignore"):
                odds = a_only / c_only if c_only else float("inf")
                or_lo = float(q_lo / (1 - q_lo)) if q_lo < 1 else float("inf")
                or_hi = float(q_hi / (1 - q_hi)) if q_hi < 1 else float("inf")
            p_mc = float(mcnemar([[both, a_only], [c_only, neither]], exact=True).pvalue)
        row.update({"n_pairs": len(t), "both": both, "arm_only": a_only,
                    "control_only": c_only, "neither": neither, "risk_difference": rd,
                    "rd_ci_lower": rd_lo, "rd_ci_upper": rd_hi, "odds_ratio": float(odds),
                    "or_ci_lower": or_lo, "or_ci_upper": or_hi, "mcnemar_p": p_mc,
                    **clogit[a]})
        rows.append(row)
    return pd.DataFrame(rows, columns=PAIRED_BINARY_COLUMNS)


def _clogit(y: np.ndarray, arms: np.ndarray, period: np.ndarray, subj: np.ndarray,
            order: list, alpha: float) -> dict:
    """Per non-control treatment: clogit_or, clogit_ci_lower/upper, clogit_p, clogit_note,
    from one conditional logistic regression on treatment and period indicators."""
    others = order[1:]
    nan = {"clogit_or": np.nan, "clogit_ci_lower": np.nan, "clogit_ci_upper": np.nan,
           "clogit_p": np.nan}
    varies = pd.Series(y).groupby(pd.Series(subj, dtype=object).to_numpy()).transform(
        "nunique").to_numpy() > 1
    if not varies.any():
        note = "not estimable: no subject's event differs between periods"
        return {b: {**nan, "clogit_note": note} for b in others}
    keep = varies
    periods = list(dict.fromkeys(period[keep].tolist()))
    cols = [(arms[keep] == a).astype(float) for a in others]
    cols += [(period[keep] == p).astype(float) for p in periods[1:]]
    x = np.column_stack(cols)
    note = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("error", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = ConditionalLogit(y[keep], x, groups=subj[keep]).fit(disp=0, maxiter=200)
            params, ci = np.asarray(fit.params), np.asarray(fit.conf_int(alpha=alpha))
            pvals, bse = np.asarray(fit.pvalues), np.asarray(fit.bse)
        k = len(others)
        # quasi-complete separation (e.g. no subject with the event on control only):
        # the likelihood rises without bound, the fit stops with a huge coefficient
        if not (np.all(np.isfinite(params)) and np.all(np.isfinite(bse))
                and np.all(np.abs(params[:k]) < 10) and np.all(bse[:k] < 10)):
            note = "not estimable: separation (an odds ratio runs off to 0 or infinity)"
    except (PerfectSeparationWarning, PerfectSeparationError):
        note = "not estimable: perfect separation"
    except ConvergenceWarning:
        note = "not estimable: the fit did not converge"
    except (np.linalg.LinAlgError, ValueError):
        note = "not estimable: singular fit (treatment and period confounded?)"
    if note:
        return {b: {**nan, "clogit_note": note} for b in others}
    return {a: {"clogit_or": float(np.exp(params[k])),
                "clogit_ci_lower": float(np.exp(ci[k, 0])),
                "clogit_ci_upper": float(np.exp(ci[k, 1])),
                "clogit_p": float(pvals[k]), "clogit_note": ""}
            for k, a in enumerate(others)}


# --------------------------------------------------------------------------- #
# Time to event
# --------------------------------------------------------------------------- #

#: Columns of :attr:`SurvivalResult.km`: the Kaplan-Meier step function per arm, one row
#: per distinct time (time 0 first), with the pointwise interval and the numbers at risk
#: just before, with an event at, and censored at that time.
KM_COLUMNS = ["arm", "time", "survival", "ci_lower", "ci_upper", "at_risk", "events",
              "censored"]
#: Columns of :attr:`SurvivalResult.summary` (one row per arm, control first; the
#: log-rank columns are NaN on the control row; a median not reached is inf).
SURVIVAL_SUMMARY_COLUMNS = ["arm", "n", "events", "censored", "median", "median_ci_lower",
                            "median_ci_upper", "logrank_statistic", "logrank_p"]
#: Columns of :attr:`SurvivalResult.cox`: one row per non-control arm (``kind`` "arm")
#: then per covariate (``kind`` "covariate"); NaN with a ``note`` when the model cannot
#: be estimated (an arm without events, a monotone likelihood (separation), or no
#: convergence).
COX_COLUMNS = ["term", "kind", "coef", "se", "hazard_ratio", "ci_lower", "ci_upper", "z",
               "p", "note"]


@dataclass(frozen=True)
class SurvivalResult:
    """Tables of :func:`survival`: ``km`` (:data:`KM_COLUMNS`), ``summary``
    (:data:`SURVIVAL_SUMMARY_COLUMNS`), ``cox`` (:data:`COX_COLUMNS`), and the
    interval level ``alpha`` and ``covariates`` used."""

    km: pd.DataFrame
    summary: pd.DataFrame
    cox: pd.DataFrame
    alpha: float
    covariates: tuple[str, ...] = ()


def stable_patients(y: pd.DataFrame, threshold: float, at_least: int | None) -> pd.Index:
    """The patients (rows of ``y``, the scale at the judged visits) in stable remission:
    at or below ``threshold`` at ``at_least`` of the visits (all when None); a missed
    visit does not count as met."""
    if y.shape[1] == 0:
        raise ValueError("stable remission: no visit to judge")
    met = (y.to_numpy(float) <= threshold).sum(axis=1)  # NaN <= x is False
    need = y.shape[1] if at_least is None else at_least
    return y.index[met >= need]


def relapse_rows(y: pd.DataFrame, times: list[float], threshold: float, consecutive: int,
                 start: float) -> list[tuple[int, float, int]]:
    """(subject, duration_h, relapsed) per row of ``y`` (the scale at ``times``, the
    visits from ``start`` on; NaN: visit missed): a relapse is a run of ``consecutive``
    successive *observed* assessments at or above ``threshold``, dated at the first
    visit of the run (duration: that visit's time minus ``start``); otherwise censored
    at the last observed visit (``start`` when none was). A missed visit is skipped, as
    real data have intermittent missing visits: it neither breaks nor extends a run
    (25, missed, 30 is two in a row) and does not end the follow-up. Under monotone
    dropout (every visit after the first missed one missing, as in simulated trials)
    this is the same as ending the follow-up at the first missed visit. Whole arrays at
    once (no loop over patients).

    Raises
    ------
    ValueError
        ``consecutive`` not an integer >= 1; ``times`` not one finite time per column
        of ``y`` in strictly increasing order; ``start`` not finite.
    """
    if not (is_integral(consecutive) and consecutive >= 1):
        raise ValueError(f"relapse_rows: consecutive must be an integer >= 1 (visits in "
                         f"a row), got {short(consecutive)}")
    consecutive = int(consecutive)
    if not (_is_real(start) and np.isfinite(start)):
        raise ValueError(f"relapse_rows: start must be a finite time, got {short(start)}")
    v = y.to_numpy(float)
    n, m = v.shape
    t = _finite(times, "relapse_rows: times")
    if t.ndim != 1 or t.size != m:
        raise ValueError(f"relapse_rows: times must hold one time per column of the "
                         f"scores ({m}), got shape {t.shape}")
    i = first_true(np.diff(t) <= 0)
    if i is not None:
        raise ValueError(f"relapse_rows: times must be strictly increasing, got "
                         f"{short(t[i + 1])} after {short(t[i])} (times[{i + 1}])")
    if n == 0:
        return []
    seen = np.isfinite(v)
    # each patient's observed visits moved to the front in time order (missed visits
    # skipped): position k is the k-th assessment, at time obs_t[:, k]
    order = np.argsort(~seen, axis=1, kind="stable")
    obs_t = t[order]
    hit = np.take_along_axis(seen & (v >= threshold), order, axis=1)
    # a run of `consecutive` hits starting at assessment k (k + consecutive <= m)
    w = max(m - consecutive + 1, 0)
    run = np.ones((n, w), bool)
    for c in range(consecutive):  # over the run's length, not over patients
        run &= hit[:, c:c + w]
    relapsed = run.any(axis=1)
    rows = np.arange(n)
    n_seen = seen.sum(axis=1)
    if m == 0:
        end = np.full(n, float(start))
    else:
        first = np.argmax(run, axis=1) if w > 0 else np.zeros(n, int)
        last = np.where(n_seen > 0, obs_t[rows, np.maximum(n_seen - 1, 0)], start)
        end = np.where(relapsed, obs_t[rows, first], last)
    return [(int(i), float(e - start), int(r))
            for i, e, r in zip(y.index, end, relapsed, strict=True)]


#: an arm's log hazard ratio beyond this (a hazard ratio under 1e-7 or over 1e7) is a fit
#: running off under a monotone likelihood, not an estimate
_COX_MAX_LOG_HR = 16.0


def _cox_separation(t: np.ndarray, e: np.ndarray, arms: np.ndarray, others: list) -> str:
    """The note for a Cox partial likelihood that is monotone in an arm's own coefficient
    (so the hazard ratio is 0 or infinite whatever the other coefficients): every event
    of the arm with no other subject at risk, or every other event with none of the
    arm's subjects at risk; "" when no arm is separated so."""
    for a in others:
        m = arms == a
        if not m.all() and e[m].any() and t[m & (e == 1)].min() > t[~m].max():
            return (f"not estimable: monotone likelihood (separation): every event of arm "
                    f"{a!r} comes after all other subjects' follow-up; the hazard ratio "
                    "runs off to 0")
        if m.any() and e[~m].any() and t[~m & (e == 1)].min() > t[m].max():
            return (f"not estimable: monotone likelihood (separation): every event outside "
                    f"arm {a!r} comes after all of its subjects' follow-up; the hazard "
                    "ratio runs off to infinity")
    return ""


def _cox_fit_note(cph, terms: list[str], n_arms: int, messages: list[str]) -> str:
    """The note for a lifelines Cox fit that is no estimate ("" for one that is): the
    Newton steps stopped while still large, or an arm's coefficient ran off (a monotone
    likelihood along a direction the arm-by-arm check does not see, e.g. a covariate
    that separates), or the fit did not converge."""
    params = cph.params_[terms].to_numpy(dtype=float)
    se = cph.standard_errors_[terms].to_numpy(dtype=float)
    if (any("norm(delta) is still high" in m or "suspiciously close to 0" in m
            for m in messages)
            or not (np.all(np.isfinite(params)) and np.all(np.isfinite(se)))
            or np.any(np.abs(params[:n_arms]) > _COX_MAX_LOG_HR)):
        return ("not estimable: monotone likelihood (separation); the fit runs off to a "
                "hazard ratio of 0 or infinity")
    if any("failed to converge" in m for m in messages):
        return "not estimable: the fit did not converge"
    return ""


def survival(df: pd.DataFrame, duration_col: str, event_col: str, arm_col: str, control,
             covariates: Sequence[str] = (), alpha: float = 0.05) -> SurvivalResult:
    """Time to event per arm (e.g. time to relapse under maintenance treatment).

    * Kaplan-Meier estimate per arm (Kaplan & Meier 1958; lifelines
      ``KaplanMeierFitter``) with lifelines' pointwise exponential-Greenwood
      (log(-log)) interval, and the median survival time with its interval (read off
      the interval's curves; inf when not reached). The median is the first time the
      curve falls to 0.5 or below (lifelines); where it sits at exactly 0.5 over an
      interval, R's ``survfit`` and SAS report the interval's midpoint instead (four
      events at 1, 2, 3, 4: 2 here, 2.5 there);
    * two-sided log-rank test of each arm against ``control`` (Mantel 1966; lifelines
      ``logrank_test``);
    * Cox proportional hazards model (Cox 1972; lifelines ``CoxPHFitter``, Efron ties)
      of all subjects with an indicator per non-control arm plus ``covariates``: the
      hazard ratio of each arm against control (and per unit of each covariate) with its
      Wald interval and p; NaN with a note when the hazard ratio is not estimable
      because the partial likelihood is monotone (Bryson & Johnson 1981, Biometrika
      68:595; the Cox analogue of separation): an arm has no events, every event of an
      arm comes after all other subjects have left follow-up (or every other subject's
      event after all of the arm's), or the fit runs off to an infinite coefficient
      otherwise (e.g. a covariate that separates). The maximum likelihood estimate is
      then 0 or infinite, and a finite number reported by a stopped fit is meaningless
      (the log-rank test is still valid).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject.
    duration_col : str
        Time from randomisation to the event or censoring (finite, >= 0).
    event_col : str
        1 (or True) for an observed event, 0 for censored.
    arm_col : str
        Arm label (no missing values).
    control : object
        The control arm's label.
    covariates : sequence of str
        Numeric columns adjusting the Cox model.
    alpha : float, default 0.05
        Intervals are ``1 - alpha``.

    Returns
    -------
    SurvivalResult

    Raises
    ------
    ValueError
        Missing column, control arm absent, a single arm, a negative or non-finite
        duration, an event not 0/1, a non-numeric or missing covariate.
    """
    # lifelines takes ~2 s to import; load it only when a survival analysis is run
    from lifelines import CoxPHFitter, KaplanMeierFitter
    from lifelines.exceptions import ConvergenceError
    from lifelines.statistics import logrank_test
    from lifelines.utils import median_survival_times

    what = "survival"
    alpha = _alpha(alpha)
    _require(df, [duration_col, event_col, arm_col], what)
    covs = _covariates(covariates, df, (duration_col, event_col, arm_col), what)
    arms, order = _column_arms(df, arm_col, control)
    t = _column_numbers(df, duration_col)
    i = first_true(t < 0)
    if i is not None:
        raise ValueError(f"column {duration_col!r}, row {_row(df, i)}: expected a "
                         f"duration >= 0, got {short(t[i])}")
    e = _column_binary(df, event_col)
    x_cov = {c: _column_numbers(df, c) for c in covs}

    km_parts, summary = [], []
    for a in order:
        m = arms == a
        kmf = KaplanMeierFitter(alpha=alpha).fit(t[m], e[m], label="s")
        sf = kmf.survival_function_["s"]
        ci = kmf.confidence_interval_
        et = kmf.event_table.reindex(sf.index)
        km_parts.append(pd.DataFrame({
            "arm": [a] * len(sf), "time": sf.index.to_numpy(dtype=float),
            "survival": sf.to_numpy(dtype=float),
            "ci_lower": ci.iloc[:, 0].to_numpy(dtype=float),
            "ci_upper": ci.iloc[:, 1].to_numpy(dtype=float),
            "at_risk": et["at_risk"].to_numpy(dtype=np.int64),
            "events": et["observed"].to_numpy(dtype=np.int64),
            "censored": et["censored"].to_numpy(dtype=np.int64)}))
        med_ci = median_survival_times(ci)
        row = {"arm": a, "n": int(m.sum()), "events": int(e[m].sum()),
               "censored": int(m.sum() - e[m].sum()),
               "median": float(kmf.median_survival_time_),
               "median_ci_lower": float(med_ci.iloc[0, 0]),
               "median_ci_upper": float(med_ci.iloc[0, 1]),
               "logrank_statistic": np.nan, "logrank_p": np.nan}
        c = arms == control
        if a != control and (e[m].sum() + e[c].sum()) > 0:  # no event in either: none
            lr = logrank_test(t[m], t[c], event_observed_A=e[m], event_observed_B=e[c])
            row["logrank_statistic"] = float(lr.test_statistic)
            row["logrank_p"] = float(lr.p_value)
        summary.append(row)
    km = pd.concat(km_parts, ignore_index=True)[KM_COLUMNS]

    # internal column names, so that arm labels and covariates cannot collide
    others = order[1:]
    terms = [f"_arm{k}" for k in range(len(others))] + [f"_cov{k}" for k in range(len(covs))]
    data = {"_T": t, "_E": e}
    data.update({f"_arm{k}": (arms == a).astype(float) for k, a in enumerate(others)})
    data.update({f"_cov{k}": x_cov[c] for k, c in enumerate(covs)})
    kinds = ["arm"] * len(others) + ["covariate"] * len(covs)
    no_events = [a for a in order if e[arms == a].sum() == 0]
    note = ("not estimable: no arm has an event" if len(no_events) == len(order) else
            f"not estimable: arm {no_events[0]!r} has no events" if no_events else
            _cox_separation(t, e, arms, others))
    if not note:
        try:
            # lifelines' warnings (and overflows of a running-off fit) are read here,
            # not passed on: they become the note
            with (warnings.catch_warnings(record=True) as caught,
                  np.errstate(over="ignore", divide="ignore", invalid="ignore")):
                warnings.simplefilter("always")
                cph = CoxPHFitter(alpha=alpha).fit(pd.DataFrame(data), duration_col="_T",
                                                   event_col="_E")
            note = _cox_fit_note(cph, terms, len(others), [str(w.message) for w in caught])
        except ConvergenceError:
            note = "not estimable: the fit did not converge (collinear covariates?)"
    if note:
        nan = np.full(len(terms), np.nan)
        cox = pd.DataFrame({"term": list(others) + covs, "kind": kinds, "coef": nan,
                            "se": nan, "hazard_ratio": nan, "ci_lower": nan,
                            "ci_upper": nan, "z": nan, "p": nan, "note": note},
                           columns=COX_COLUMNS)
    else:
        ci = cph.confidence_intervals_.loc[terms].to_numpy(dtype=float)
        with np.errstate(over="ignore"):  # a covariate's interval in odd units: inf
            summary_cox = cph.summary.loc[terms]
            ci_lower, ci_upper = np.exp(ci[:, 0]), np.exp(ci[:, 1])
        cox = pd.DataFrame({
            "term": list(others) + covs, "kind": kinds,
            "coef": cph.params_[terms].to_numpy(dtype=float),
            "se": cph.standard_errors_[terms].to_numpy(dtype=float),
            "hazard_ratio": summary_cox["exp(coef)"].to_numpy(dtype=float),
            "ci_lower": ci_lower, "ci_upper": ci_upper,
            "z": summary_cox["z"].to_numpy(dtype=float),
            "p": summary_cox["p"].to_numpy(dtype=float), "note": ""},
            columns=COX_COLUMNS)
    return SurvivalResult(km=km, summary=pd.DataFrame(summary,
                                                      columns=SURVIVAL_SUMMARY_COLUMNS),
                          cox=cox, alpha=alpha, covariates=tuple(covs))


# --------------------------------------------------------------------------- #
# Mediation
# --------------------------------------------------------------------------- #

#: Columns of :attr:`MediationResult.paths`.
MEDIATION_COLUMNS = ["effect", "estimate", "se", "ci_lower", "ci_upper", "p", "method"]


@dataclass(frozen=True, eq=False)
class MediationResult:
    """Result of :func:`mediation`.

    Attributes
    ----------
    a, b : float
        Paths treatment -> mediator, and mediator -> outcome given treatment.
    direct, total : float
        ``c'`` (treatment -> outcome given the mediator) and ``c`` (treatment ->
        outcome); for OLS on one sample, ``total == direct + indirect`` exactly.
    indirect : float
        ``a * b``.
    indirect_ci : tuple of float
        Percentile bootstrap interval of ``a * b``.
    proportion_mediated : float
        ``indirect / total`` (NaN when total is 0; unstable when total is near 0).
    sobel_z, sobel_p : float
        Sobel's first-order test of ``a * b = 0``.
    n, n_boot, n_boot_used : int
        Subjects, bootstrap resamples asked for, and those in which both models could
        be fitted (full rank).
    paths : pandas.DataFrame
        :data:`MEDIATION_COLUMNS`, rows ``a``, ``b``, ``direct``, ``total`` (OLS
        t-interval and p) and ``indirect`` (bootstrap interval, Sobel se and p).
    boot : numpy.ndarray
        The bootstrap draws of ``a * b`` (NaN where a resample was rank deficient).
    """

    a: float
    b: float
    direct: float
    total: float
    indirect: float
    indirect_ci: tuple[float, float]
    proportion_mediated: float
    sobel_z: float
    sobel_p: float
    n: int
    n_boot: int
    n_boot_used: int
    alpha: float
    paths: pd.DataFrame = field(repr=False)
    boot: np.ndarray = field(repr=False)


def mediation(df: pd.DataFrame, treatment: str, mediator: str, outcome: str,
              covariates: Sequence[str] = (), n_boot: int = 2000, seed: int = 0,
              alpha: float = 0.05) -> MediationResult:
    """Simple mediation by the product of coefficients (Baron & Kenny 1986, J Pers Soc
    Psychol 51:1173) with a percentile bootstrap interval for the indirect effect
    (Preacher & Hayes 2008, Behav Res Methods 40:879).

    Three OLS models (statsmodels), each with an intercept and ``covariates``:

    * ``mediator ~ treatment``: path ``a``;
    * ``outcome ~ treatment + mediator``: path ``b`` (mediator) and the direct effect
      ``c'`` (treatment);
    * ``outcome ~ treatment``: the total effect ``c``.

    The indirect effect is ``a * b``. Its interval resamples subjects with replacement
    ``n_boot`` times (a :class:`numpy.random.Generator` seeded with ``seed``), refits the
    ``a`` and ``b`` models, and takes the ``alpha/2`` and ``1 - alpha/2`` quantiles of
    ``a * b``. Sobel's test (Sobel 1982) uses ``z = a b / sqrt(b^2 se_a^2 +
    a^2 se_b^2)``, two-sided normal p. The proportion mediated is ``a b / c``.

    Dissociation, for example, can track ketamine dose (large ``a``) yet not carry the
    antidepressant effect (``b`` near 0, interval of ``a * b`` including 0).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject.
    treatment, mediator, outcome : str
        Numeric columns (treatment may be 0/1 or a dose).
    covariates : sequence of str
        Numeric columns in all three models.
    n_boot : int, default 2000
        Bootstrap resamples (>= 100).
    seed : int, default 0
        Seed of the bootstrap generator.
    alpha : float, default 0.05
        Intervals are ``1 - alpha``.

    Returns
    -------
    MediationResult

    Raises
    ------
    ValueError
        Missing or repeated column, non-numeric or missing values, a constant
        treatment or mediator, too few subjects, ``n_boot < 100``.
    """
    what = "mediation"
    alpha = _alpha(alpha)
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {short(n_boot)}")
    _require(df, [treatment, mediator, outcome], what)
    if len({treatment, mediator, outcome}) < 3:
        raise ValueError(f"{what}: treatment, mediator and outcome must be three different "
                         f"columns, got {treatment!r}, {mediator!r}, {outcome!r}")
    covs = _covariates(covariates, df, (treatment, mediator, outcome), what)
    x = _column_numbers(df, treatment)
    m = _column_numbers(df, mediator)
    y = _column_numbers(df, outcome)
    c = (np.column_stack([_column_numbers(df, k) for k in covs]) if covs
         else np.empty((len(df), 0)))
    n = len(df)
    if n < 4 + len(covs):
        raise ValueError(f"{what}: {n} subjects, need at least {4 + len(covs)}")
    for col, v in ((treatment, x), (mediator, m)):
        if np.ptp(v) == 0:
            raise ValueError(f"column {col!r}: constant ({short(v[0])}); no effect can be "
                             "estimated")
    one = np.ones(n)
    xa = np.column_stack([one, x, c])           # mediator ~ treatment (+ covariates)
    xb = np.column_stack([one, x, m, c])        # outcome ~ treatment + mediator (+ cov)
    fa, fb, fc = OLS(m, xa).fit(), OLS(y, xb).fit(), OLS(y, xa).fit()
    for name, fit in (("mediator ~ treatment", fa), ("outcome ~ treatment + mediator", fb)):
        if fit.df_model < fit.model.exog.shape[1] - 1:
            raise ValueError(f"{what}: the model {name} is rank deficient (collinear "
                             "treatment, mediator or covariates)")
    a, se_a = float(fa.params[1]), float(fa.bse[1])
    b, se_b = float(fb.params[2]), float(fb.bse[2])
    direct, total = float(fb.params[1]), float(fc.params[1])
    ab = a * b
    sobel_se = float(np.sqrt(b ** 2 * se_a ** 2 + a ** 2 * se_b ** 2))
    sobel_z = ab / sobel_se if sobel_se > 0 else float("nan")
    sobel_p = float(2 * sps.norm.sf(abs(sobel_z))) if sobel_se > 0 else float("nan")

    rng = np.random.default_rng(seed)
    boot = np.full(int(n_boot), np.nan)
    for k in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        ba, ra = _lstsq(xa[idx], m[idx])
        bb, rb = _lstsq(xb[idx], y[idx])
        if ra == xa.shape[1] and rb == xb.shape[1]:
            boot[k] = ba[1] * bb[2]
    used = int(np.isfinite(boot).sum())
    if used < 0.9 * n_boot:
        raise ValueError(f"{what}: only {used} of {n_boot} bootstrap resamples could be "
                         "fitted (too few subjects or a rare treatment level)")
    lo, hi = (float(q) for q in np.quantile(boot[np.isfinite(boot)],
                                            [alpha / 2, 1 - alpha / 2]))

    def ols_row(effect, fit, k):
        ci = fit.conf_int(alpha=alpha)[k]
        return {"effect": effect, "estimate": float(fit.params[k]),
                "se": float(fit.bse[k]), "ci_lower": float(ci[0]), "ci_upper": float(ci[1]),
                "p": float(fit.pvalues[k]), "method": "ols"}

    paths = pd.DataFrame([
        ols_row("a", fa, 1), ols_row("b", fb, 2), ols_row("direct", fb, 1),
        ols_row("total", fc, 1),
        {"effect": "indirect", "estimate": ab, "se": sobel_se, "ci_lower": lo,
         "ci_upper": hi, "p": sobel_p, "method": "bootstrap percentile; sobel se and p"},
    ], columns=MEDIATION_COLUMNS)
    return MediationResult(
        a=a, b=b, direct=direct, total=total, indirect=ab, indirect_ci=(lo, hi),
        proportion_mediated=ab / total if total != 0 else float("nan"),
        sobel_z=sobel_z, sobel_p=sobel_p, n=n, n_boot=int(n_boot), n_boot_used=used,
        alpha=alpha, paths=paths, boot=boot)


def _lstsq(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    return beta, int(rank)


# --------------------------------------------------------------------------- #
# Subject flow (CONSORT)
# --------------------------------------------------------------------------- #

#: Stages of :func:`consort`'s table, in order.
CONSORT_STAGES = ["screened", "excluded", "randomised", "allocated", "discontinued",
                  "completed"]
#: Columns of :func:`consort`'s table.
CONSORT_COLUMNS = ["stage", "arm", "reason", "n"]
_NOT_ELIGIBLE = "not eligible"
_NOT_RANDOMISED = "eligible, not randomised"
_NO_REASON = "reason not given"


def _text(v) -> str:
    """A label cell as text: missing is ``""``, an integral number has no decimal point."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(int(v)) if is_integral(v) else str(v).strip()


def _column_flags(df: pd.DataFrame, column: str) -> np.ndarray:
    """A true/false column: bools, 1/0, or the words true/false, yes/no, t/f, y/n."""
    s = df[column]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=bool)
    out = np.zeros(len(s), dtype=bool)
    for i, v in enumerate(s.to_numpy(dtype=object)):
        if isinstance(v, str):
            key = v.strip().lower()
        elif isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)):
            key = "1" if v == 1 else "0" if v == 0 else None
        else:
            key = None
        if key in _TRUE_WORDS:
            out[i] = True
        elif key not in _FALSE_WORDS:
            raise ValueError(f"column {column!r}, row {_row(df, i)}: expected true/false "
                             f"(or 1/0), got {short(v)}")
    return out


def consort(df: pd.DataFrame, *, arm: str = "arm", completed: str = "completed",
            reason: str | None = "dropout_reason", eligible: str | None = "eligible",
            screened: str | None = None) -> pd.DataFrame:
    """Counts for a CONSORT flow diagram (Schulz et al. 2010, BMJ 340:c332).

    One row per subject. A subject is *screened* (every row, or the rows where
    ``screened`` is true), *randomised* when ``arm`` holds a label (missing or empty
    otherwise) and then either *completed* or *discontinued*. Screened subjects not
    randomised are *excluded*. The ``reason`` column says why a subject left at
    whatever stage: the exclusion reason (default ``"not eligible"`` when ``eligible``
    is false, ``"eligible, not randomised"`` otherwise) or the dropout reason (default
    ``"reason not given"``).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject.
    arm : str
        Randomised arm (missing or empty: not randomised).
    completed : str
        true/false (or 1/0): completed the treatment phase; read for randomised
        subjects (must be false or missing for the others).
    reason : str or None
        Why a subject was excluded or discontinued (missing or empty: not given); must
        be empty for completers. None: no reasons.
    eligible : str or None
        true/false: met the inclusion criteria. None: every screened subject was.
    screened : str or None
        true/false: entered screening (rows with false are not counted, and must not be
        randomised). None: every row was screened.

    Returns
    -------
    pandas.DataFrame
        :data:`CONSORT_COLUMNS` (``n`` int; arm labels as text, an integral number
        without a decimal point): ``screened`` (arm and reason ``""``);
        ``excluded`` total then one row per reason; ``randomised`` total; then per arm
        (in order of appearance): ``allocated``, ``discontinued`` total then per reason,
        ``completed``. ``allocated == discontinued + completed`` per arm.

    Raises
    ------
    ValueError
        Missing column, a flag that is not true/false, a randomised subject not
        eligible or not screened, a non-randomised subject marked completed, a completer
        with a dropout reason.
    """
    what = "consort"
    cols = [arm, completed] + [c for c in (reason, eligible, screened) if c is not None]
    _require(df, cols, what)
    n = len(df)
    scr = _column_flags(df, screened) if screened is not None else np.ones(n, dtype=bool)
    elig = _column_flags(df, eligible) if eligible is not None else np.ones(n, dtype=bool)
    labels = np.array([_text(v) for v in df[arm].to_numpy(dtype=object)], dtype=object)
    rand = labels != ""
    why = (np.array([_text(v) for v in df[reason].to_numpy(dtype=object)], dtype=object)
           if reason is not None else np.full(n, "", dtype=object))
    comp_raw = df[completed]
    comp = np.zeros(n, dtype=bool)
    given = ~pd.isna(comp_raw).to_numpy()
    if given.any():
        comp[given] = _column_flags(df.loc[given], completed)

    checks = [
        (rand & ~scr, screened, "randomised (arm {arm}) but not screened"),
        (rand & ~elig, eligible, "randomised (arm {arm}) but not eligible"),
        (rand & ~given, completed, "randomised (arm {arm}) but completion missing"),
        (~rand & comp, completed, "marked completed but not randomised (no arm)"),
        (rand & comp & (why != ""), reason, "completer with a dropout reason {why!r}"),
        (~scr & elig & (eligible is not None), eligible, "eligible but not screened"),
    ]
    for mask, col, text in checks:
        i = first_true(mask)
        if i is not None:
            raise ValueError(f"column {col!r}, row {_row(df, i)}: subject "
                             + text.format(arm=repr(labels[i]), why=why[i]))

    rows = [("screened", "", "", int(scr.sum()))]
    excl = scr & ~rand
    rows.append(("excluded", "", "", int(excl.sum())))
    default = np.where(elig, _NOT_RANDOMISED, _NOT_ELIGIBLE)
    excl_why = np.where(why != "", why, default)[excl]
    for r in dict.fromkeys(excl_why.tolist()):
        rows.append(("excluded", "", r, int((excl_why == r).sum())))
    rows.append(("randomised", "", "", int(rand.sum())))
    for a in dict.fromkeys(labels[rand].tolist()):
        m = labels == a
        rows.append(("allocated", a, "", int(m.sum())))
        drop = m & ~comp
        rows.append(("discontinued", a, "", int(drop.sum())))
        drop_why = np.where(why != "", why, _NO_REASON)[drop]
        for r in dict.fromkeys(drop_why.tolist()):
            rows.append(("discontinued", a, r, int((drop_why == r).sum())))
        rows.append(("completed", a, "", int((m & comp).sum())))
    out = pd.DataFrame(rows, columns=CONSORT_COLUMNS)
    out["n"] = out["n"].astype(np.int64)
    return out
