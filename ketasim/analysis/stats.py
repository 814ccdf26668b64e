"""Statistics on readout tables, shared by simulated and real data.

Both functions take the long readouts table (columns ``arm, subject, assay, readout,
time_h, value, unit``), so a lab's own measurements in that shape get the same
summaries and tests as a simulation.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

SUMMARY_COLUMNS = ["arm", "assay", "readout", "time_h", "unit", "n", "mean", "sem"]
STATS_COLUMNS = ["comparison", "readout", "assay", "time_h", "test", "groups", "n",
                 "means", "statistic", "p", "baseline_h", "region", "p_holm"]
TIME_TOL_H = 1e-9


def summarize(readouts: pd.DataFrame) -> pd.DataFrame:
    """Per arm, assay, readout and time (and region, where the readouts carry one): n
    (non-missing), mean and SEM (ddof 1)."""
    regional = "region" in readouts.columns
    columns = SUMMARY_COLUMNS[:2] + (["region"] if regional else []) + SUMMARY_COLUMNS[2:]
    if readouts.empty:
        return pd.DataFrame(columns=columns)
    arm_order = {a: i for i, a in enumerate(dict.fromkeys(readouts["arm"]))}
    keys = ["arm", "assay", *(["region"] if regional else []), "readout", "time_h", "unit"]
    # dropna=False: a readout without a region (or unit) is counted, not dropped
    g = readouts.groupby(keys, sort=False, dropna=False)["value"]
    out = g.agg(n="count", mean="mean", sd=lambda v: v.std(ddof=1)).reset_index()
    out["sem"] = out["sd"] / np.sqrt(out["n"].where(out["n"] > 0))
    out = out.drop(columns="sd")
    out["_arm"] = out["arm"].map(arm_order)
    out = out.sort_values(["_arm", *keys[1:-1]], kind="stable")
    return out.drop(columns="_arm").reset_index(drop=True)[columns]


@dataclass(frozen=True)
class ComparisonResult:
    statistic: float
    p: float


#: the tests of :func:`run_test`, and those that compare exactly two groups
_TESTS = ("welch_t", "student_t", "mann_whitney", "anova", "kruskal")
_TWO_GROUP_TESTS = ("welch_t", "student_t", "mann_whitney")


def run_test(test: str, groups: list[np.ndarray]) -> ComparisonResult:
    """Apply one of the comparison tests (``welch_t``, ``student_t``,
    ``mann_whitney``, ``anova``, ``kruskal``) to finite group values; NaN when a group
    has < 2 values. Used by :func:`compare`, power by simulation and the validation
    targets.

    All p-values are two-sided. ``mann_whitney`` (scipy ``mannwhitneyu``) reports U of
    the first group; its p is scipy's two-sided convention, twice the smaller one-sided
    tail probability (``P(U <= u)`` or ``P(U >= u)``), capped at 1, not the summed
    probability of the outcomes no more likely than the observed one. Without ties in
    small groups the tails are scipy's exact distribution; with ties they are the exact
    permutation distribution of U given the tied values (:func:`_mann_whitney_method`);
    in large groups the normal approximation with the tie and continuity corrections.

    Raises
    ------
    ValueError
        An unknown test, or a two-group test given another number of groups (checked
        before the small-group NaN, so a misspelt test never passes silently).
    """
    if test not in _TESTS:
        raise ValueError(f"unknown test {test!r} (known: {', '.join(_TESTS)})")
    if test in _TWO_GROUP_TESTS and len(groups) != 2:
        raise ValueError(f"{test} compares two groups, got {len(groups)}")
    if any(len(g) < 2 for g in groups):
        return ComparisonResult(float("nan"), float("nan"))
    with warnings.catch_warnings():
        # a noise-free latent readout gives a group of identical values; its variance is
        # exactly 0 and scipy's cancellation warning is then moot
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment")
        return _run(test, groups)


def _run(test: str, groups: list[np.ndarray]) -> ComparisonResult:
    if test == "welch_t":
        r = sps.ttest_ind(groups[0], groups[1], equal_var=False)
    elif test == "student_t":
        r = sps.ttest_ind(groups[0], groups[1], equal_var=True)
    elif test == "mann_whitney":
        r = sps.mannwhitneyu(groups[0], groups[1], alternative="two-sided",
                             method=_mann_whitney_method(groups[0], groups[1]))
    elif test == "anova":
        r = sps.f_oneway(*groups)
    elif test == "kruskal":
        r = sps.kruskal(*groups)
    else:
        raise ValueError(f"unknown test {test!r}")
    return ComparisonResult(float(r.statistic), float(r.pvalue))


#: the most relabellings an exact Mann-Whitney test with ties enumerates (C(20, 10) is
#: 184,756); above it the normal approximation with the tie correction is close enough
MANN_WHITNEY_EXACT_MAX = 200_000


def _mann_whitney_method(a: np.ndarray, b: np.ndarray):
    """scipy's exact distribution where there are no ties (its default for small
    groups); with ties in small groups the exact permutation distribution of U (the
    normal approximation gave p 0.047 for 3 vs 3 with all values tied within groups,
    whose smallest attainable p is 0.1); else the normal approximation. Two-sided p in
    every case as scipy computes it: twice the smaller one-sided tail, capped at 1."""
    both = np.concatenate([a, b])
    if np.unique(both).size == both.size:
        return "auto"
    if math.comb(both.size, len(a)) <= MANN_WHITNEY_EXACT_MAX:
        return sps.PermutationMethod(n_resamples=np.inf)
    return "asymptotic"


#: the suffix of an assay whose rows are nested within subjects (branches, segments, cells
#: of ``<assay>``; ``ketasim analyze``): mixed models read them, the other tests do not
NESTED_SUFFIX = "_nested"
#: optimisers tried in turn for a mixed model's REML fit (a converged fit with a finite
#: log-likelihood is kept; L-BFGS can report convergence at a degenerate point)
MIXED_LM_METHODS = ("bfgs", "powell", "lbfgs", "nm")


def mixed_lm_test(values: np.ndarray, arms: np.ndarray, subjects: np.ndarray,
                  order: list[str]) -> ComparisonResult:
    """Linear mixed model ``value ~ arm`` with a random intercept per subject (REML,
    statsmodels MixedLM): rows nested within subjects (branches, cells) count once per
    subject's share of the variance instead of as independent animals. Subjects are
    nested in arms, so the arm effect is tested against the subjects' variation, on the
    containment degrees of freedom (subjects - arms; SAS's DDFM=CONTAIN, exact for
    balanced designs, where it equals the t test on subject means) rather than as a
    normal z, which is too liberal with few animals. With two arms, the t of the first arm
    against the second (``order``; signed as the t tests) and its two-sided p; with more,
    the F of all arm effects (Wald chi-square / (arms - 1)) on (arms - 1, subjects - arms)
    df. Where no subject has more than one row the subject and residual variances cannot
    be told apart (the fit's standard errors are then arbitrary): the model is ordinary
    least squares, so Student's t (two arms) or the one-way ANOVA is returned. NaN when an
    arm has fewer than 2 subjects or no optimiser of :data:`MIXED_LM_METHODS`
    converges."""
    import statsmodels.formula.api as smf

    df = pd.DataFrame({"value": np.asarray(values, float),
                       "arm": pd.Categorical(np.asarray(arms).astype(str), categories=order),
                       "subject": np.asarray(subjects).astype(str)})
    df = df[np.isfinite(df["value"])]
    per_arm = df.groupby("arm", observed=False)["subject"].nunique()
    if (per_arm < 2).any():
        return ComparisonResult(float("nan"), float("nan"))
    df["subject"] = df["arm"].astype(str) + "/" + df["subject"]  # ids may repeat across arms
    if df["subject"].value_counts().max() < 2:  # one row per subject: no nesting to model
        groups = [df.loc[df["arm"] == a, "value"].to_numpy(float) for a in order]
        return run_test("student_t" if len(order) == 2 else "anova", groups)
    model = smf.mixedlm("value ~ C(arm)", df, groups=df["subject"])
    fit = None
    # one optimiser after another, as analysis.segments.density_mixed_model: BFGS can
    # stop short where the subject variance lies near 0, where Powell converges
    for method in MIXED_LM_METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; checked below
            try:
                attempt = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                continue
        if attempt.converged and np.isfinite(attempt.llf):
            fit = attempt
            break
    if fit is None:
        return ComparisonResult(float("nan"), float("nan"))
    dof = int(per_arm.sum()) - len(order)  # containment: subjects - arms
    names = [n for n in fit.fe_params.index if n.startswith("C(arm)")]
    if len(names) == 1:  # signed as the t tests: first arm minus second
        t = -float(fit.tvalues[names[0]])
        return ComparisonResult(t, float(2.0 * sps.t.sf(abs(t), dof)))
    b = fit.fe_params[names].to_numpy()
    v = fit.cov_params().loc[names, names].to_numpy()
    f = float(b @ np.linalg.solve(v, b)) / len(names)
    return ComparisonResult(f, float(sps.f.sf(f, len(names), dof)))


def _at(readouts: pd.DataFrame, time_h: float) -> pd.Series:
    return pd.Series(np.abs(readouts["time_h"].to_numpy(float) - float(time_h)) < TIME_TOL_H,
                     index=readouts.index)


def _nesting(readouts: pd.DataFrame, sel: pd.Series, test: str, at_h: float) -> pd.Series:
    """Without a named assay, a mixed model reads the nested rows of a readout where
    there are any at ``at_h``, and every other test the rows that are not nested."""
    nested = readouts["assay"].astype(str).str.endswith(NESTED_SUFFIX)
    if test == "mixed_lm" and (sel & _at(readouts, at_h) & nested).any():
        return sel & nested
    return sel & ~nested


def _changes(readouts: pd.DataFrame, sel: pd.Series, c, k: int) -> pd.DataFrame:
    """The rows of ``sel`` at ``c.at`` with ``value`` replaced by the change from the same
    unit's value at ``c.baseline`` (a unit: the subject, or the subject's branch for
    nested rows); units without a baseline value are left out."""
    rows_at = readouts.loc[sel & _at(readouts, c.at)]
    rows_base = readouts.loc[sel & _at(readouts, c.baseline)]
    units = ["arm", "subject"]
    if "branch" in readouts.columns and rows_at["branch"].notna().any():
        units.append("branch")
    if "cell" in readouts.columns and rows_at["cell"].notna().any():
        raise ValueError(f"compare[{k}]: baseline: cells are not matched across sessions; "
                         "compare the per-subject rows (name their assay) instead")
    for part in (rows_at, rows_base):
        if part.duplicated(units).any():
            raise ValueError(f"compare[{k}]: baseline: {c.readout!r} has more than one row "
                             "per subject and time; name its assay (and region)")
    m = rows_at[[*units, "value"]].merge(rows_base[[*units, "value"]], on=units,
                                         suffixes=("", "_base"))
    return m.assign(value=m["value"] - m["value_base"])


def compare(readouts: pd.DataFrame, comparisons) -> pd.DataFrame:
    """Run a scenario's ``compare`` entries on a readouts table.

    Each comparison selects one readout (optionally of one assay) at one time in each
    named arm, drops missing values, and applies its test (Welch t by default; a
    ``mixed_lm`` reads nested rows with a random intercept per subject, see
    :func:`mixed_lm_test`). With a ``baseline`` time, each subject's (for nested rows,
    each branch's) change from its own value at that time is compared instead.
    """
    rows = []
    for k, c in enumerate(comparisons):
        rows_, groups = comparison_groups(readouts, c, k)
        baseline = getattr(c, "baseline", None)
        if c.test == "mixed_lm":
            mixed = rows_.loc[rows_["arm"].isin(c.arms)]
            res = mixed_lm_test(mixed["value"].to_numpy(float), mixed["arm"].to_numpy(),
                                mixed["subject"].to_numpy(), list(c.arms))
        else:
            res = run_test(c.test, groups)
        rows.append({
            "comparison": k, "readout": c.readout, "assay": assays_read(readouts, c, k),
            "time_h": float(c.at), "test": c.test, "groups": ";".join(c.arms),
            "n": ";".join(str(n) for n in _counts(rows_, c, groups)),
            "means": ";".join(f"{g.mean():.6g}" if len(g) else "nan" for g in groups),
            "statistic": res.statistic, "p": res.p,
            "baseline_h": float("nan") if baseline is None else float(baseline),
            "region": getattr(c, "region", None) or ""})
    out = pd.DataFrame(rows, columns=STATS_COLUMNS)
    out["p_holm"] = holm(out["p"].to_numpy(float))
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's (1979, Scand J Stat) step-down adjustment of the p-values of one family of comparisons
    (here: every comparison of a run or an analysis), controlling the family-wise error
    rate (statsmodels ``multipletests``); NaN p-values stay NaN and do not count towards
    the family."""
    from statsmodels.stats.multitest import multipletests  # statsmodels: deferred, heavy

    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def _counts(rows_: pd.DataFrame, c, groups: list[np.ndarray]) -> list[int]:
    """Per arm, what ``n`` reports: the values tested, or for a mixed model the subjects
    whose rows it pools (the animals, not the branches or cells)."""
    if c.test != "mixed_lm":
        return [len(g) for g in groups]
    finite = rows_.loc[np.isfinite(rows_["value"].to_numpy(float))]
    return [int(finite.loc[finite["arm"] == a, "subject"].nunique()) for a in c.arms]


def _selection(readouts: pd.DataFrame, c, k: int) -> pd.Series:
    """The rows of a comparison's readout, of its assay (or nesting) and region, at any
    time."""
    sel = readouts["readout"] == c.readout
    if getattr(c, "assay", None):  # one, or several ';'-joined as stats.csv writes them
        sel &= readouts["assay"].isin(str(c.assay).split(";"))
    else:
        sel = _nesting(readouts, sel, c.test, c.at)
    if getattr(c, "region", None):
        sel &= readouts["region"] == c.region if "region" in readouts else False
    elif "region" in readouts and readouts.loc[sel & _at(readouts, c.at),
                                               "region"].nunique() > 1:
        raise ValueError(
            f"compare[{k}]: {c.readout!r} is measured in regions "
            f"{sorted(readouts.loc[sel, 'region'].unique())}; name one with region:")
    return sel


def assays_read(readouts: pd.DataFrame, c, k: int = 0) -> str:
    """The assay (or assays, ``;``-joined) whose rows a comparison reads in its arms at
    its time: the one it names, or the one found for it (per subject, or nested for a
    mixed model)."""
    if getattr(c, "assay", None):
        return c.assay
    sel = (_selection(readouts, c, k) & _at(readouts, c.at)
           & readouts["arm"].isin(list(c.arms)))
    return ";".join(sorted(readouts.loc[sel, "assay"].astype(str).unique()))


def comparison_groups(readouts: pd.DataFrame, c, k: int = 0
                      ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The rows a comparison ``c`` tests (its readout, assay or nesting, region, time, or
    changes from ``baseline``) and, per arm of ``c.arms``, their finite values: what
    :func:`compare` runs its test on (and what a power analysis from pilot data
    resamples)."""
    sel = _selection(readouts, c, k)
    baseline = getattr(c, "baseline", None)
    rows_ = (readouts.loc[sel & _at(readouts, c.at)] if baseline is None
             else _changes(readouts, sel, c, k))
    groups = []
    for arm in c.arms:
        v = rows_.loc[rows_["arm"] == arm, "value"].to_numpy(float)
        groups.append(v[np.isfinite(v)])
    return rows_, groups
