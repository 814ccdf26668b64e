"""Statistical power from simulated readouts: how many animals a comparison needs.

Pure table functions (a readouts table in, a power table out); simulating the pooled
experiment is :func:`ketasim.experiment.power.power_curve`, drawing the curve is
:func:`ketasim.report.power.plot_power` and ``ketasim power`` writes the files.

:func:`power_table` estimates, for each group size ``n``, the fraction of simulated
experiments (cohorts) in which a comparison's test gives ``p < alpha``, with a 95%
Wilson interval. Cohorts are cut out of one pooled simulation (see
:func:`power_table` for the layout). Each cohort is tested with the same function as
:func:`ketasim.analysis.stats.compare`, so a simulated cohort of size ``n`` is
analysed exactly like a ``ketasim run`` with ``n`` subjects per arm.

:func:`parse_n_range` reads group sizes from text (``"4:20"``, ``"4:20:2"``,
``"6,8,12"``); :func:`check_power_arguments` validates group sizes, cohorts and alpha.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from ketasim.analysis.stats import (  # noqa: F401
    TIME_TOL_H,
    ComparisonResult,
    comparison_groups,
    run_test,
)

__all__ = [
    "MAX_GROUP_SIZE",
    "POWER_COLUMNS",
    "TARGET_POWER",
    "check_power_arguments",
    "parse_n_range",
    "power_table",
    "run_test",
]

#: Columns of the table returned by :func:`power_table` (and of ``power.csv``).
POWER_COLUMNS = ["n", "power", "ci_low", "ci_high", "cohorts", "alpha", "test", "readout",
                 "time_h", "groups"]
#: The conventional target power, drawn as a dashed line by the power figure.
TARGET_POWER = 0.8
#: The largest group size (the scenario schema's limit on an arm's ``n``).
MAX_GROUP_SIZE = 100_000


class PowerError(ValueError):
    """A power analysis asked for something it cannot do (group sizes, cohorts, alpha,
    the comparison): one line naming the argument."""


_N_RANGE_EXPECTED = ("expected 'START:STOP' or 'START:STOP:STEP' (inclusive integers, "
                     "START <= STOP, STEP >= 1) or a comma-separated list such as '6,8,12', "
                     "with every n >= 2")


# --------------------------------------------------------------------------- #
# Group sizes
# --------------------------------------------------------------------------- #


def parse_n_range(text: str) -> list[int]:
    """Read group sizes from text.

    Parameters
    ----------
    text : str
        ``"START:STOP"`` (every integer from START to STOP inclusive),
        ``"START:STOP:STEP"`` (from START in steps of STEP, up to STOP inclusive) or a
        comma-separated list such as ``"6,8,12"`` (a single number is a list of one).

    Returns
    -------
    list of int
        Sorted, without repeats, every value >= 2.

    Raises
    ------
    PowerError
        One line naming ``text`` and the expected form.

    Examples
    --------
    >>> parse_n_range("4:10:3")
    [4, 7, 10]
    >>> parse_n_range("12, 6,8")
    [6, 8, 12]
    """
    if not isinstance(text, str):
        raise PowerError(f"n range {text!r}: {_N_RANGE_EXPECTED}")

    def fail(why: str) -> PowerError:
        return PowerError(f"n range {text!r}: {why}; {_N_RANGE_EXPECTED}")

    def integer(part: str) -> int:
        part = part.strip()
        if not part or not part.lstrip("+-").isdigit() or not part.isascii():
            raise fail(f"{part!r} is not an integer")
        return int(part)

    stripped = text.strip()
    if not stripped:
        raise fail("empty")
    if ":" in stripped:
        if "," in stripped:
            raise fail("mixes ':' and ','")
        parts = stripped.split(":")
        if len(parts) not in (2, 3):
            raise fail(f"has {len(parts)} ':'-separated parts")
        start, stop = integer(parts[0]), integer(parts[1])
        step = integer(parts[2]) if len(parts) == 3 else 1
        if step < 1:
            raise fail(f"STEP {step} < 1")
        if start > stop:
            raise fail(f"START {start} > STOP {stop}")
        if stop > MAX_GROUP_SIZE:  # before the list is built: a huge STOP is no list
            raise fail(f"STOP {stop} > {MAX_GROUP_SIZE}, the most subjects an arm has")
        values = list(range(start, stop + 1, step))
    else:
        values = [integer(part) for part in stripped.split(",")]
    small = [v for v in values if v < 2]
    if small:
        raise fail(f"n = {small[0]} < 2")
    return sorted(set(values))


def check_power_arguments(ns, cohorts, alpha) -> tuple[list[int], int, float]:
    """Validate group sizes, the number of cohorts and the significance level.

    Returns
    -------
    tuple
        ``(ns, cohorts, alpha)``: ``ns`` sorted without repeats, ``cohorts`` an int,
        ``alpha`` a float.

    Raises
    ------
    PowerError
        ``ns`` not a non-empty list of integers >= 2, ``cohorts`` not an integer >= 1,
        or ``alpha`` not a number in (0, 1); one line naming the argument.
    """
    ns = _check_ns(ns)
    try:
        cohorts = operator.index(cohorts)
    except TypeError:
        raise PowerError(f"cohorts {cohorts!r}: expected an integer >= 1") from None
    if cohorts < 1:
        raise PowerError(f"cohorts {cohorts!r}: expected an integer >= 1")
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
            and 0.0 < float(alpha) < 1.0):
        raise PowerError(f"alpha {alpha!r}: expected a number between 0 and 1 (exclusive)")
    return ns, cohorts, float(alpha)


def _check_ns(ns) -> list[int]:
    """Validate group sizes given as integers; return them sorted without repeats."""
    try:
        values = [operator.index(v) for v in ns]
    except TypeError:
        raise PowerError(f"ns {ns!r}: expected a non-empty list of integers >= 2") from None
    if not values or any(isinstance(v, bool) or v < 2 for v in values):
        raise PowerError(f"ns {ns!r}: expected a non-empty list of integers >= 2")
    return sorted(set(values))


# --------------------------------------------------------------------------- #
# Cohorts
# --------------------------------------------------------------------------- #


def _cohort_subjects(k: int, n: int, block: int) -> np.ndarray:
    """Subject indices (in each compared arm) of cohort ``k`` at group size ``n``.

    Cohort ``k`` owns the block ``k*block .. k*block + block - 1``; at size ``n`` it uses
    the first ``n`` subjects of its block. ``block`` is the largest group size.
    """
    if not 0 < n <= block:
        raise PowerError(f"group size {n}: expected 1 <= n <= {block}")
    return np.arange(k * block, k * block + n)


def _cohort_index_sets(ns: list[int], cohorts: int) -> dict[tuple[int, int], np.ndarray]:
    """Subject indices of every (cohort, n) pair, keyed ``(k, n)``."""
    block = max(ns)
    return {(k, n): _cohort_subjects(k, n, block) for k in range(cohorts) for n in ns}


def _arm_values(readouts: pd.DataFrame, readout: str, time_h: float, arms: Sequence[str],
                assay: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per compared arm: (subject indices sorted, values) of the compared readout."""
    sel = (readouts["readout"] == readout) & (
        np.abs(readouts["time_h"] - float(time_h)) < TIME_TOL_H)
    if assay:
        sel &= readouts["assay"] == assay
    out = []
    for arm in arms:
        rows = readouts.loc[sel & (readouts["arm"] == arm)]
        subject = rows["subject"].to_numpy(np.int64)
        value = rows["value"].to_numpy(float)
        order = np.argsort(subject, kind="stable")
        out.append((subject[order], value[order]))
    return out


def _not_measured(readout: str, measured, where: str) -> PowerError:
    """The error for a compared readout that ``where`` does not measure, listing the
    readouts it does (the first 20)."""
    have = sorted({str(r) for r in measured})
    listing = ", ".join(have[:20]) + (f", ... ({len(have)} in all)" if len(have) > 20 else "")
    return PowerError(f"readout {readout!r}: not measured by {where}; it measures "
                      f"{listing or 'no readout'}")


def _p_values(arms: list[tuple[np.ndarray, np.ndarray]], test: str, ns: list[int],
              cohorts: int) -> np.ndarray:
    """p value of every (n, cohort): array of shape ``(len(ns), cohorts)``.

    ``arms`` holds, per compared arm, sorted subject indices and their values (as from
    :func:`_arm_values`). Missing values are dropped as in
    :func:`ketasim.analysis.stats.compare`; an undefined test gives NaN.
    """
    block = max(ns)
    p = np.full((len(ns), cohorts), np.nan)
    for k in range(cohorts):
        for i, n in enumerate(ns):
            idx = _cohort_subjects(k, n, block)
            lo, hi = idx[0], idx[-1] + 1
            groups = []
            for subject, value in arms:
                v = value[np.searchsorted(subject, lo):np.searchsorted(subject, hi)]
                groups.append(v[np.isfinite(v)])
            p[i, k] = run_test(test, groups).p
    return p


def _count_significant(p: np.ndarray, alpha: float) -> np.ndarray:
    """Per row of ``p``, the number of cohorts with ``p < alpha`` (NaN: not significant)."""
    with np.errstate(invalid="ignore"):
        return np.sum(np.nan_to_num(p, nan=np.inf) < alpha, axis=1)




# --------------------------------------------------------------------------- #
# Power
# --------------------------------------------------------------------------- #


def power_table(readouts: pd.DataFrame, *, readout: str, time_h: float,
                arms: Sequence[str], test: str, ns, cohorts: int, alpha: float = 0.05,
                assay: str | None = None, pool_size: int | None = None) -> pd.DataFrame:
    """Power of one comparison as a function of the group size, from pooled readouts.

    Parameters
    ----------
    readouts : pandas.DataFrame
        Simulated readouts (columns ``arm, subject, assay, readout, time_h, value,
        unit``) with at least ``max(ns) * cohorts`` subjects (indices from 0) in every
        compared arm.
    readout : str
        The compared readout.
    time_h : float
        The compared time in hours (matched within
        :data:`ketasim.analysis.stats.TIME_TOL_H`).
    arms : sequence of str
        The compared arms (groups), in order.
    test : str
        The test, as in :func:`ketasim.analysis.stats.run_test`.
    ns : list of int
        Group sizes (subjects per compared arm), each >= 2; rows come out sorted by
        ``n`` without repeats.
    cohorts : int
        Simulated experiments per group size, >= 1.
    alpha : float, default 0.05
        Significance level, in (0, 1).
    assay : str, optional
        Only rows of this assay.
    pool_size : int, optional
        The subjects simulated per compared arm (ids ``0 .. pool_size - 1``): subjects
        without a value (a trial's dropouts, a change without its baseline) are then
        left out of their cohort, as :func:`ketasim.analysis.stats.compare` leaves them
        out. Left out, every subject the cohorts need must have a value.

    Returns
    -------
    pandas.DataFrame
        One row per ``n`` with columns :data:`POWER_COLUMNS`: ``power`` is the fraction
        of cohorts with ``p < alpha`` (cohorts whose test is undefined, NaN ``p``, count
        as not significant), ``ci_low``/``ci_high`` its 95% Wilson interval, ``groups``
        the compared arms joined by ``;``.

    Raises
    ------
    PowerError
        Invalid ``ns``, ``cohorts`` or ``alpha`` (see :func:`check_power_arguments`), a
        ``readout`` that no row (of ``assay``) has, or a compared arm without a value
        for every subject the cohorts need (with ``pool_size``: a pool smaller than
        they need, or an arm with none of them).

    Notes
    -----
    Cohort ``k`` at size ``n`` uses subjects ``k*max(ns) .. k*max(ns) + n - 1`` of every
    compared arm (:func:`_cohort_subjects`). Cohorts therefore never share a subject and
    are independent, while the sizes ``n`` of one cohort share subjects (common random
    numbers: the cohort of size 8 is the cohort of size 6 plus two subjects), which makes
    the curve smoother than independent draws would, without biasing any of its points.
    Missing values are dropped as in :func:`ketasim.analysis.stats.compare`.
    """
    ns, cohorts, alpha = check_power_arguments(ns, cohorts, alpha)
    arms = list(arms)
    present = readouts["readout"] if not assay else readouts.loc[
        readouts["assay"] == assay, "readout"]
    if readout not in set(present):
        raise _not_measured(readout, present.unique(),
                            f"assay {assay!r} of the scenario" if assay else "the scenario "
                            "(no row of the readouts has it)")
    values = _arm_values(readouts, readout, time_h, arms, assay)
    need = max(ns) * cohorts
    if pool_size is not None and pool_size < need:
        raise PowerError(f"pool_size {pool_size}: the {cohorts} cohorts of up to {max(ns)} "
                         f"need {need} subjects per arm")
    for arm, (subject, _) in zip(arms, values, strict=True):
        # cohort k takes subjects k * max(ns) ...: ids elsewhere would leave cohorts
        # empty, and their NaN p would count as not significant. In a simulated pool
        # (pool_size), subjects without a value (a trial's dropouts, no baseline value)
        # are left out of their cohort as compare leaves them out
        have = np.unique(subject[(subject >= 0) & (subject < need)]).size
        if pool_size is None and have < need:
            raise PowerError(f"arm {arm!r}: {readout} at {time_h:g} h has {have} of the "
                             f"{need} subjects 0..{need - 1} that {cohorts} cohorts of up "
                             f"to {max(ns)} need")
        if have == 0 or (pool_size is not None and subject.size and
                         (subject.min() < 0 or subject.max() >= pool_size)):
            raise PowerError(f"arm {arm!r}: {readout} at {time_h:g} h has none of the "
                             f"subjects 0..{need - 1} that {cohorts} cohorts of up "
                             f"to {max(ns)} need, or ids outside the pool")
    p = _p_values(values, test, ns, cohorts)
    hits = _count_significant(p, alpha)
    ci_low, ci_high = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
    return pd.DataFrame({
        "n": np.asarray(ns, dtype=np.int64),
        "power": hits / cohorts,
        "ci_low": np.clip(np.asarray(ci_low, dtype=float), 0.0, 1.0),
        "ci_high": np.clip(np.asarray(ci_high, dtype=float), 0.0, 1.0),
        "cohorts": np.int64(cohorts),
        "alpha": alpha,
        "test": test,
        "readout": readout,
        "time_h": float(time_h),
        "groups": ";".join(arms),
    }, columns=POWER_COLUMNS)


# --------------------------------------------------------------------------- #
# Power from pilot data
# --------------------------------------------------------------------------- #

#: tests whose data are one value per subject (the mixed model's nested rows are not
#: resampled here)
PILOT_TESTS = ("welch_t", "student_t", "mann_whitney", "anova", "kruskal")


def pilot_values(readouts: pd.DataFrame, comparison) -> list[np.ndarray]:
    """Per arm of ``comparison`` (an object with the fields of a scenario's or a design's
    comparison: ``readout, at, arms, test``, optional ``assay, region, baseline``), the
    pilot's values the comparison tests, one per subject (or each subject's change from
    ``baseline``): :func:`ketasim.analysis.stats.comparison_groups`, so the resampled
    values are those behind the pilot's own ``stats.csv`` row. Raises
    :class:`PowerError` for an arm with fewer than 2 values or a comparison it cannot
    select."""
    try:
        _, groups = comparison_groups(readouts, comparison)
    except ValueError as e:
        raise PowerError(str(e).removeprefix("compare[0]: ")) from None
    for arm, v in zip(comparison.arms, groups, strict=True):
        if v.size < 2:
            raise PowerError(f"arm {arm!r}: {v.size} pilot value(s) of {comparison.readout} "
                             f"at {float(comparison.at):g} h; at least 2 are needed to "
                             "resample")
    return groups


def pilot_power(values: Sequence[np.ndarray], *, test: str, ns, cohorts: int,
                alpha: float = 0.05, seed: int = 0, readout: str = "", time_h: float = 0.0,
                arms: Sequence[str] = ()) -> pd.DataFrame:
    """Power of a comparison at each group size ``n`` by resampling pilot data: each
    cohort draws ``n`` subjects per arm with replacement from that arm's pilot values
    (a nonparametric bootstrap) and is tested as :func:`power_table` tests a simulated
    cohort. It takes the pilot's effect and spread as the true ones, so with a small
    pilot it is as uncertain as the pilot's effect size, and tends to overstate power
    when a pilot was followed up because it looked promising (Albers and Lakens 2018 J
    Exp Soc Psychol 74:187). Same columns as :func:`power_table`."""
    if test not in PILOT_TESTS:
        raise PowerError(f"test {test!r}: power from pilot data resamples one value per "
                         f"subject; expected one of {', '.join(PILOT_TESTS)}")
    ns, cohorts, alpha = check_power_arguments(ns, cohorts, alpha)
    block = max(ns)
    rng = np.random.default_rng(seed)
    parts = []
    arms = list(arms) or [f"arm{i}" for i in range(len(values))]
    for arm, v in zip(arms, values, strict=True):
        draw = rng.choice(np.asarray(v, float), size=block * cohorts, replace=True)
        parts.append(pd.DataFrame({"arm": arm, "subject": np.arange(draw.size),
                                   "readout": readout, "time_h": float(time_h),
                                   "value": draw}))
    pooled = pd.concat(parts, ignore_index=True)
    return power_table(pooled, readout=readout, time_h=time_h, arms=arms, test=test,
                       ns=ns, cohorts=cohorts, alpha=alpha)
