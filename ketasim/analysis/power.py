"""Statistical power by simulation: how many animals a comparison needs.

For one ``compare`` entry of a scenario, :func:`power_curve` estimates, for each group
size ``n``, the fraction of simulated experiments (cohorts) in which the comparison's
test gives ``p < alpha``, with a 95% Wilson interval. The scenario is simulated once,
with enough subjects in each compared arm for every cohort; cohorts are then cut out of
that pool (see :func:`power_curve` for the layout). Each cohort is tested with the same
function as :func:`ketasim.analysis.stats.compare`, so a simulated cohort of size ``n``
is analysed exactly like a ``ketasim run`` with ``n`` subjects per arm.

:func:`parse_n_range` reads group sizes from text (``"4:20"``, ``"4:20:2"``,
``"6,8,12"``), :func:`plot_power` draws the curve and :func:`write_power` writes
``power.csv`` and ``power.png`` atomically.
"""

from __future__ import annotations

import operator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from ketasim.analysis.stats import TIME_TOL_H, ComparisonResult, run_test  # noqa: F401
from ketasim.experiment.runner import simulate
from ketasim.io.results import atomic_dir
from ketasim.scenario import vocabulary

__all__ = [
    "POWER_COLUMNS",
    "TARGET_POWER",
    "parse_n_range",
    "plot_power",
    "power_curve",
    "run_test",
    "write_power",
]

#: Columns of the table returned by :func:`power_curve` (and of ``power.csv``).
POWER_COLUMNS = ["n", "power", "ci_low", "ci_high", "cohorts", "alpha", "test", "readout",
                 "time_h", "groups"]
#: The conventional target power, drawn as a dashed line by :func:`plot_power`.
TARGET_POWER = 0.8
#: Largest number of subjects simulated per arm (the scenario schema's limit on ``n``).
MAX_SUBJECTS_PER_ARM = 100_000

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
    ValueError
        One line naming ``text`` and the expected form.

    Examples
    --------
    >>> parse_n_range("4:10:3")
    [4, 7, 10]
    >>> parse_n_range("12, 6,8")
    [6, 8, 12]
    """
    if not isinstance(text, str):
        raise ValueError(f"n range {text!r}: {_N_RANGE_EXPECTED}")  # noqa: TRY004

    def fail(why: str) -> ValueError:
        return ValueError(f"n range {text!r}: {why}; {_N_RANGE_EXPECTED}")

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
        values = list(range(start, stop + 1, step))
    else:
        values = [integer(part) for part in stripped.split(",")]
    small = [v for v in values if v < 2]
    if small:
        raise fail(f"n = {small[0]} < 2")
    return sorted(set(values))


def _check_ns(ns) -> list[int]:
    """Validate group sizes given as integers; return them sorted without repeats."""
    try:
        values = [operator.index(v) for v in ns]
    except TypeError:
        raise ValueError(f"ns {ns!r}: expected a non-empty list of integers >= 2") from None
    if not values or any(isinstance(v, bool) or v < 2 for v in values):
        raise ValueError(f"ns {ns!r}: expected a non-empty list of integers >= 2")
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
        raise ValueError(f"group size {n}: expected 1 <= n <= {block}")
    return np.arange(k * block, k * block + n)


def _cohort_index_sets(ns: list[int], cohorts: int) -> dict[tuple[int, int], np.ndarray]:
    """Subject indices of every (cohort, n) pair, keyed ``(k, n)``."""
    block = max(ns)
    return {(k, n): _cohort_subjects(k, n, block) for k in range(cohorts) for n in ns}


def _comparison(scenario, compare_index: int):
    comparisons = list(scenario.compare)
    if not comparisons:
        raise ValueError(f"scenario {scenario.name!r} has no 'compare' entries; add one to "
                         "compute power")
    last = len(comparisons) - 1
    try:
        index = operator.index(compare_index)
    except TypeError:
        index = None
    if index is None or isinstance(compare_index, bool) or not 0 <= index <= last:
        raise ValueError(f"compare index {compare_index!r} out of range: scenario "
                         f"{scenario.name!r} has {len(comparisons)} comparison"
                         f"{'s' if len(comparisons) != 1 else ''} (valid: 0..{last})")
    return comparisons[index]


def _power_scenario(scenario, comparison, subjects: int):
    """The scenario reduced to what the comparison needs, ``subjects`` per compared arm.

    Only the compared arms, and in them only the assays that report the readout at the
    compared time, are kept; each assay keeps all its times, so every subject's values
    equal those of the same subject in a run of the full scenario.
    """
    arms = []
    for arm in scenario.arms:
        if arm.name not in comparison.arms:
            continue
        assays = [spec for spec in arm.assays
                  if (comparison.assay is None or spec.assay == comparison.assay)
                  and comparison.readout in vocabulary.ASSAYS.get(spec.assay, ())
                  and any(abs(t - comparison.at) < TIME_TOL_H for t in spec.at)]
        arms.append(arm.model_copy(update={"n": subjects, "assays": assays}))
    return scenario.model_copy(update={"arms": arms, "compare": [comparison]})


def _arm_values(readouts: pd.DataFrame, comparison) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per compared arm: (subject indices sorted, values) of the compared readout."""
    sel = (readouts["readout"] == comparison.readout) & (
        np.abs(readouts["time_h"] - float(comparison.at)) < TIME_TOL_H)
    if comparison.assay:
        sel &= readouts["assay"] == comparison.assay
    out = []
    for arm in comparison.arms:
        rows = readouts.loc[sel & (readouts["arm"] == arm)]
        subject = rows["subject"].to_numpy(np.int64)
        value = rows["value"].to_numpy(float)
        order = np.argsort(subject, kind="stable")
        out.append((subject[order], value[order]))
    return out


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


def power_curve(scenario, compare_index: int, ns: list[int], cohorts: int = 200,
                alpha: float = 0.05, seed: int | None = None,
                registry=None) -> pd.DataFrame:
    """Power of one scenario comparison as a function of the group size, by simulation.

    Parameters
    ----------
    scenario : ketasim.scenario.Scenario
        A validated scenario with at least one ``compare`` entry.
    compare_index : int
        Which comparison (0-based index into ``scenario.compare``).
    ns : list of int
        Group sizes (subjects per compared arm), each >= 2; rows come out sorted by
        ``n`` without repeats.
    cohorts : int, default 200
        Simulated experiments per group size.
    alpha : float, default 0.05
        Significance level, in (0, 1).
    seed : int, optional
        Root random seed; the scenario's seed when left out.
    registry : ketasim.params.Registry, optional
        Parameter registry (the default registry when left out).

    Returns
    -------
    pandas.DataFrame
        One row per ``n`` with columns :data:`POWER_COLUMNS`: ``power`` is the fraction
        of cohorts with ``p < alpha`` (cohorts whose test is undefined, NaN ``p``, count
        as not significant), ``ci_low``/``ci_high`` its 95% Wilson interval, ``groups``
        the compared arms joined by ``;``.

    Raises
    ------
    ValueError
        Scenario without comparisons, ``compare_index`` out of range, invalid ``ns``,
        ``cohorts`` or ``alpha``, or more than 100000 subjects per arm needed.

    Notes
    -----
    The scenario is simulated once, keeping only the compared arms and the assays that
    report the readout, with ``max(ns) * cohorts`` subjects per compared arm. Cohort
    ``k`` at size ``n`` uses subjects ``k*max(ns) .. k*max(ns) + n - 1`` of every
    compared arm (:func:`_cohort_subjects`). Cohorts therefore never share a subject and
    are independent, while the sizes ``n`` of one cohort share subjects (common random
    numbers: the cohort of size 8 is the cohort of size 6 plus two subjects), which makes
    the curve smoother than independent draws would, without biasing any of its points.
    Because subject random streams depend on (seed, arm name, subject index) only,
    cohort 0 at size ``n`` is exactly the experiment ``ketasim run`` simulates with ``n``
    subjects per arm and the same seed.
    """
    comparison = _comparison(scenario, compare_index)
    ns = _check_ns(ns)
    try:
        cohorts = operator.index(cohorts)
    except TypeError:
        raise ValueError(f"cohorts {cohorts!r}: expected an integer >= 1") from None
    if cohorts < 1:
        raise ValueError(f"cohorts {cohorts!r}: expected an integer >= 1")
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha {alpha!r}: expected a number between 0 and 1 (exclusive)")
    alpha = float(alpha)
    block = ns[-1]
    subjects = block * cohorts
    if subjects > MAX_SUBJECTS_PER_ARM:
        raise ValueError(f"max(ns) * cohorts = {block} * {cohorts} = {subjects} subjects per "
                         f"arm; expected at most {MAX_SUBJECTS_PER_ARM} (use fewer cohorts "
                         "or a smaller largest n)")

    result = simulate(_power_scenario(scenario, comparison, subjects), seed=seed,
                      registry=registry)
    arms = _arm_values(result.readouts, comparison)

    p = _p_values(arms, comparison.test, ns, cohorts)
    hits = _count_significant(p, alpha)
    ci_low, ci_high = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
    return pd.DataFrame({
        "n": np.asarray(ns, dtype=np.int64),
        "power": hits / cohorts,
        "ci_low": np.clip(np.asarray(ci_low, dtype=float), 0.0, 1.0),
        "ci_high": np.clip(np.asarray(ci_high, dtype=float), 0.0, 1.0),
        "cohorts": np.int64(cohorts),
        "alpha": alpha,
        "test": comparison.test,
        "readout": comparison.readout,
        "time_h": float(comparison.at),
        "groups": ";".join(comparison.arms),
    }, columns=POWER_COLUMNS)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def plot_power(df: pd.DataFrame, path) -> Path:
    """Draw a power curve with its Wilson band and the 0.8 target line.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`power_curve`.
    path : str or pathlib.Path
        PNG file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    d = df.sort_values("n")
    first = d.iloc[0]
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    x = d["n"].to_numpy(float)
    ax.fill_between(x, d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float),
                    color="C0", alpha=0.25, lw=0, label="95% Wilson interval")
    ax.plot(x, d["power"].to_numpy(float), "-o", ms=4, color="C0", label="power")
    ax.axhline(TARGET_POWER, ls="--", color="0.3", lw=1, label=f"power {TARGET_POWER:g}")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("subjects per group (n)")
    ax.set_ylabel(f"power (P[p < {float(first['alpha']):g}])")
    groups = str(first["groups"]).replace(";", " vs ")
    ax.set_title(f"{first['readout']} at {float(first['time_h']):g} h, "
                 f"{first['test']}\n{groups}, {int(first['cohorts'])} cohorts per n",
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_power(df: pd.DataFrame, out_dir, overwrite: bool = False) -> Path:
    """Write ``power.csv`` and ``power.png`` into ``out_dir``, atomically.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`power_curve`.
    out_dir : str or pathlib.Path
        Folder to create; it must not exist or be empty unless ``overwrite``.
    overwrite : bool, default False
        Replace an existing non-empty folder as a whole.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ketasim.io.results.OutputError
        The folder cannot be written; nothing is left behind when writing fails.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite) as tmp:
        df.to_csv(tmp / "power.csv", index=False)
        plot_power(df, tmp / "power.png")
    return out_dir
