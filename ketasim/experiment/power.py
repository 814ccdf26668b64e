"""Statistical power by simulation: how many animals a comparison needs.

For one ``compare`` entry of a scenario, :func:`power_curve` simulates the compared arms
once, with enough subjects for every cohort, and hands the pooled readouts to
:func:`ketasim.analysis.power.power_table`, which cuts cohorts out of the pool and
counts significant tests. Drawing the curve is :func:`ketasim.report.power.plot_power`;
``ketasim power`` writes ``power.csv`` and ``power.png``.
"""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from ketasim.analysis.power import (
    MAX_GROUP_SIZE,
    POWER_COLUMNS,
    PowerError,
    _not_measured,
    check_power_arguments,
    power_table,
)
from ketasim.analysis.stats import TIME_TOL_H, comparison_groups
from ketasim.experiment.runner import simulate
from ketasim.experiment.trial import analyse_trial
from ketasim.params import Registry

__all__ = ["COHORT_COLUMNS", "MAX_SUBJECTS_PER_ARM", "TRIAL_POWER_COLUMNS", "power_curve",
           "trial_power_curve"]

#: Largest number of subjects simulated per arm (the scenario schema's limit on ``n``).
MAX_SUBJECTS_PER_ARM = MAX_GROUP_SIZE


def _comparison(scenario, compare_index: int):
    comparisons = list(scenario.compare)
    if not comparisons:
        raise PowerError(f"scenario {scenario.name!r} has no 'compare' entries; add one to "
                         "compute power")
    last = len(comparisons) - 1
    try:
        index = operator.index(compare_index)
    except TypeError:
        index = None
    if index is None or isinstance(compare_index, bool) or not 0 <= index <= last:
        raise PowerError(f"compare index {compare_index!r} out of range: scenario "
                         f"{scenario.name!r} has {len(comparisons)} comparison"
                         f"{'s' if len(comparisons) != 1 else ''} (valid: 0..{last})")
    return comparisons[index]


def _reports(spec, readout: str) -> bool:
    """Whether an assay entry of the scenario reports ``readout``.

    Asks the entry itself (``spec.readouts``, the scenario vocabulary), so that this
    layer does not import the scenario package; an unknown assay reports nothing.
    """
    try:
        return readout in spec.readouts
    except KeyError:
        return False


def _check_measured(scenario, comparison) -> None:
    """Before simulating: a PowerError unless an assay of a compared arm (of the
    comparison's ``assay``, if it names one) reports the compared readout."""
    measured = set()
    for arm in scenario.arms:
        if arm.name not in comparison.arms:
            continue
        for spec in arm.assays:
            if comparison.assay is not None and spec.assay != comparison.assay:
                continue
            try:
                measured |= set(spec.readouts)
            except KeyError:  # an unknown assay reports nothing
                pass
    if comparison.readout not in measured:
        where = f"assay {comparison.assay!r} of " if comparison.assay is not None else ""
        raise _not_measured(comparison.readout, measured,
                            f"{where}the compared arms of scenario {scenario.name!r}")


def _power_scenario(scenario, comparison, subjects: int):
    """The scenario reduced to what the comparison needs, ``subjects`` per compared arm.

    Only the compared arms, and in them only the assays that report the readout at the
    compared time, are kept; each assay keeps all its times, so every subject's values
    equal those of the same subject in a run of the full scenario. Built with
    ``model_copy`` on the objects passed in.
    """
    arms = []
    for arm in scenario.arms:
        if arm.name not in comparison.arms:
            continue
        assays = [spec for spec in arm.assays
                  if (comparison.assay is None or spec.assay == comparison.assay)
                  and _reports(spec, comparison.readout)
                  and any(abs(t - comparison.at) < TIME_TOL_H for t in spec.at)]
        arms.append(arm.model_copy(update={"n": subjects, "assays": assays}))
    return scenario.model_copy(update={"arms": arms, "compare": [comparison]})


def power_curve(scenario, compare_index: int, ns: list[int], cohorts: int = 200,
                alpha: float = 0.05, seed: int | None = None, *,
                registry: Registry, map_tasks=None) -> pd.DataFrame:
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
    registry : ketasim.params.Registry
        Parameter registry passed to :func:`ketasim.experiment.runner.simulate`
        (required: a run never falls back to default parameters silently).
    map_tasks : callable, optional
        Runs the simulation's spans of subjects elsewhere (a Dask cluster; see
        :func:`ketasim.experiment.runner.simulate`); the table is the same.

    Returns
    -------
    pandas.DataFrame
        One row per ``n`` with columns
        :data:`ketasim.analysis.power.POWER_COLUMNS` (see
        :func:`ketasim.analysis.power.power_table`).

    Raises
    ------
    PowerError
        Scenario without comparisons, ``compare_index`` out of range, a compared
        readout that no assay of the compared arms reports (checked before simulating),
        invalid ``ns``, ``cohorts`` or ``alpha``, or more than 100000 subjects per arm
        needed.

    Notes
    -----
    The scenario is simulated once, keeping only the compared arms and the assays that
    report the readout (in every region they measure, so that the rows and their region
    column are those of a run of the full scenario), with
    ``max(ns) * cohorts`` subjects per compared arm; each cohort's test reads the rows
    :func:`ketasim.analysis.stats.compare` would (the comparison's assay or nesting,
    region and time, or each subject's change from its ``baseline``; subjects without a
    value, such as a trial's dropouts, left out), and the cohort layout is that of
    :func:`ketasim.analysis.power.power_table`. Because
    subject random streams depend on (seed, arm name, subject index) only, cohort 0 at
    size ``n`` is exactly the experiment ``ketasim run`` simulates with ``n`` subjects
    per arm and the same seed.
    """
    comparison = _comparison(scenario, compare_index)
    _check_measured(scenario, comparison)
    ns, cohorts, alpha = check_power_arguments(ns, cohorts, alpha)
    block = ns[-1]
    subjects = block * cohorts
    if subjects > MAX_SUBJECTS_PER_ARM:
        raise PowerError(f"max(ns) * cohorts = {block} * {cohorts} = {subjects} subjects per "
                         f"arm; expected at most {MAX_SUBJECTS_PER_ARM} (use fewer cohorts "
                         "or a smaller largest n)")

    result = simulate(_power_scenario(scenario, comparison, subjects), seed=seed,
                      registry=registry, map_tasks=map_tasks)
    # the rows the comparison tests, as compare selects them (its assay or nesting, its
    # region, its time, or each subject's change from its baseline)
    try:
        rows, _ = comparison_groups(result.readouts, comparison, int(compare_index))
    except ValueError as err:
        raise PowerError(str(err)) from None
    tested = pd.DataFrame({"arm": rows["arm"].to_numpy(), "subject": rows["subject"].to_numpy(),
                           "readout": comparison.readout, "time_h": float(comparison.at),
                           "value": rows["value"].to_numpy(float)})
    return power_table(tested, readout=comparison.readout, time_h=comparison.at,
                       arms=comparison.arms, test=comparison.test, ns=ns, cohorts=cohorts,
                       alpha=alpha, pool_size=subjects)


#: Columns of :func:`trial_power_curve`: those of a comparison's power table
#: (:data:`ketasim.analysis.power.POWER_COLUMNS`; ``n`` the smallest arm's size, ``test``
#: the primary analysis, ``groups`` control and arm), then the arm and its control, the
#: arm's size (candidates, where a ``population:`` screens them), the mean number of the
#: arm's patients randomised (those passing screening, 0 where none did; the arm's size
#: without screening; in a crossover, all patients randomised, since each takes every
#: treatment), the
#: mean primary estimate over the fitted cohorts and the cohorts whose primary analysis
#: could not be fitted (counted as not significant).
TRIAL_POWER_COLUMNS = [*POWER_COLUMNS, "arm", "control", "n_arm", "randomised_mean",
                       "mean_estimate", "not_fitted"]
#: Columns of the per-cohort table of :func:`trial_power_curve` (``power_cohorts.csv``).
COHORT_COLUMNS = ["n", "cohort", "arm", "control", "estimate", "se", "p"]


def others_of(design) -> list[str]:
    """A crossover's treatments other than the reference (power rows are per
    treatment)."""
    return sorted({t for seq in design.crossover.treatments.values() for t in seq}
                  - {design.control})


def trial_power_curve(scenario, ns: list[int], cohorts: int = 100, alpha: float = 0.05,
                      seed: int | None = None, *, registry: Registry, map_tasks=None,
                      progress=None, per_cohort: bool = False):
    """Power of a trial design's primary analysis as a function of its size, by
    simulation: the scenario's ``design:`` analysis (:func:`ketasim.experiment.trial.
    analyse_trial`: the MMRM contrast of each arm against control at the primary visit,
    or a crossover's within-patient contrast, with the design's dropout, intercurrent
    events and strategy) run on ``cohorts`` simulated trials per size.

    Sizes follow the design's randomisation ratio: at size ``n`` the arms with the
    smallest share have ``n`` patients (candidates, with a ``population:``), the others
    ``round(n * share / smallest share)``. The analysed arms are simulated once with
    ``cohorts`` blocks of their largest size; cohort ``c`` at size ``n`` takes the first
    patients of block ``c``, renumbered from 0. Patients' random streams depend on
    (seed, arm, index) only, so cohort 0 at size ``n`` is the trial ``ketasim run``
    simulates with those sizes and the same seed. ``progress(done, total)`` after each
    analysed cohort. Returns the table (:data:`TRIAL_POWER_COLUMNS`, one row per size and
    arm), and with ``per_cohort`` also each cohort's primary result
    (:data:`COHORT_COLUMNS`).

    A stratified design allocates every arm from one shared pool, which cutting by arm
    would break, so each of its trials is simulated on its own: trial 0 with the
    scenario's seed, trial ``c`` with ``SeedSequence([seed, c])``'s first word (slower:
    one simulation per trial).

    Raises
    ------
    PowerError
        No design, invalid ``ns``, ``cohorts`` or ``alpha``, or more than 100000 patients
        per arm.
    """
    d = getattr(scenario, "design", None)
    if d is None:
        raise PowerError(f"scenario {scenario.name!r} has no 'design' block; trial power "
                         "analyses a design's primary contrast (or use --compare)")
    ns, cohorts, alpha = check_power_arguments(ns, cohorts, alpha)
    strat = d.stratify is not None  # one shared pool: each trial simulated on its own
    names = list(d.analysed_arms(scenario.arm_names)) if d.crossover is None else [
        a.name for a in scenario.arms if d.arms is None or a.name in d.arms]
    ratio = d.randomisation or dict.fromkeys(names, 1.0)
    low = min(ratio[a] for a in names)

    def size(a: str, n: int) -> int:
        return max(2, round(n * ratio[a] / low))

    block = {a: size(a, ns[-1]) for a in names}
    big = max(block.values()) * cohorts
    if big > MAX_SUBJECTS_PER_ARM:
        raise PowerError(f"the largest arm needs {big} patients for {cohorts} cohorts; "
                         f"expected at most {MAX_SUBJECTS_PER_ARM} (use fewer cohorts or a "
                         "smaller largest n)")
    by_name = {a.name: a for a in scenario.arms}

    def shaped(sizes: dict[str, int]):
        return scenario.model_copy(update={
            "arms": [by_name[a].model_copy(update={"n": sizes[a]}) for a in names],
            "design": d if strat else d.model_copy(update={"randomisation": None}),
            "compare": []})

    base = scenario.seed if seed is None else int(seed)
    cut = {}
    if not strat:
        pool = simulate(shaped({a: block[a] * cohorts for a in names}), seed=seed,
                        registry=registry, map_tasks=map_tasks)
        cut = {"readouts": pool.readouts, "disposition": pool.disposition,
               "patients": pool.patients, "intercurrent": pool.intercurrent}
    # each table split once by (arm, cohort block)
    parts = {}
    for key, table in cut.items():
        if table is None:
            continue
        blk = table["subject"].to_numpy() // table["arm"].map(block).to_numpy()
        parts[key] = dict(iter(table.groupby([table["arm"].to_numpy(), blk], sort=False)))

    def cohort(key: str, c: int, sizes: dict[str, int]):
        if key not in parts:
            return None
        frames = []
        for a in names:
            g = parts[key].get((a, c))
            if g is None:
                continue
            local = g["subject"].to_numpy() - c * block[a]
            frames.append(g[local < sizes[a]].assign(subject=local[local < sizes[a]]))
        empty = cut[key].iloc[:0]
        return pd.concat(frames, ignore_index=True) if frames else empty

    test = ("crossover mixed model, Wald z" if d.crossover is not None else
            f"MMRM {d.covariance}, {d.df}")
    rows, each = [], []
    done, total = 0, len(ns) * cohorts
    for n in ns:
        sizes = {a: size(a, n) for a in names}
        sc = shaped(sizes)
        found: dict[str, list[tuple[float, float]]] = {}
        allocated: dict[str, list[int]] = {}
        for c in range(cohorts):
            if strat:  # trial c with its own seed (trial 0: the scenario's)
                own = base if c == 0 else int(
                    np.random.SeedSequence([base, c]).generate_state(1)[0])
                r = simulate(sc, seed=own, registry=registry, map_tasks=map_tasks)
                tables = analyse_trial(sc, r.readouts, r.disposition, r.patients,
                                       r.intercurrent)
            else:
                tables = analyse_trial(sc, cohort("readouts", c, sizes),
                                       cohort("disposition", c, sizes),
                                       cohort("patients", c, sizes),
                                       cohort("intercurrent", c, sizes))
            t = tables.trial
            k = tables.consort
            given = k[k["stage"] == "allocated"]
            if d.crossover is None:  # an arm nobody passed screening into counts 0
                for a in names:
                    allocated.setdefault(a, []).append(
                        int(given.loc[given["arm"].astype(str) == a, "n"].sum()))
            else:  # every patient takes every treatment: all randomised
                for a in others_of(d):
                    allocated.setdefault(a, []).append(int(given["n"].sum()))
            con = t[(t["kind"] == "contrast") & t["primary"]]
            for _, r in con.iterrows():
                found.setdefault(r["arm"], []).append((float(r["p"]), float(r["estimate"])))
                each.append({"n": n, "cohort": c, "arm": r["arm"], "control": d.control,
                             "estimate": float(r["estimate"]), "se": float(r["se"]),
                             "p": float(r["p"])})
            done += 1
            if progress is not None:
                progress(done, total)
        others = others_of(d) if d.crossover is not None else [
            a for a in names if a != d.control]
        for arm in others:
            got = found.get(arm, [])
            p = np.array([x[0] for x in got], dtype=float)
            est = np.array([x[1] for x in got], dtype=float)
            hits = int(np.sum(p < alpha))  # NaN p: not significant
            lo, hi = proportion_confint(hits, cohorts, alpha=0.05, method="wilson")
            rows.append({
                "n": n, "power": hits / cohorts, "ci_low": float(lo), "ci_high": float(hi),
                "cohorts": cohorts, "alpha": alpha, "test": test, "readout": d.scale,
                "time_h": float(d.primary), "groups": f"{d.control};{arm}", "arm": arm,
                "control": d.control, "n_arm": sizes.get(arm, n),
                "randomised_mean": (float(np.mean(allocated[arm])) if allocated.get(arm)
                                    else np.nan),
                "mean_estimate": float(np.nanmean(est)) if np.isfinite(est).any()
                else np.nan,
                "not_fitted": cohorts - int(np.isfinite(p).sum())})
    table = pd.DataFrame(rows, columns=TRIAL_POWER_COLUMNS)
    if per_cohort:
        return table, pd.DataFrame(each, columns=COHORT_COLUMNS)
    return table
