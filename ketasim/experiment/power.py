"""Statistical power by simulation: how many animals a comparison needs.

For one ``compare`` entry of a scenario, :func:`power_curve` simulates the compared arms
once, with enough subjects for every cohort, and hands the pooled readouts to
:func:`ketasim.analysis.power.power_table`, which cuts cohorts out of the pool and
counts significant tests. Drawing the curve is :func:`ketasim.report.power.plot_power`;
``ketasim power`` writes ``power.csv`` and ``power.png``.
"""

from __future__ import annotations

import operator

import pandas as pd

from ketasim.analysis.power import PowerError, check_power_arguments, power_table
from ketasim.analysis.stats import TIME_TOL_H
from ketasim.experiment.runner import simulate
from ketasim.params import Registry

__all__ = ["MAX_SUBJECTS_PER_ARM", "power_curve"]

#: Largest number of subjects simulated per arm (the scenario schema's limit on ``n``).
MAX_SUBJECTS_PER_ARM = 100_000


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
        Scenario without comparisons, ``compare_index`` out of range, invalid ``ns``,
        ``cohorts`` or ``alpha``, or more than 100000 subjects per arm needed.

    Notes
    -----
    The scenario is simulated once, keeping only the compared arms and the assays that
    report the readout, with ``max(ns) * cohorts`` subjects per compared arm; the
    cohort layout is that of :func:`ketasim.analysis.power.power_table`. Because
    subject random streams depend on (seed, arm name, subject index) only, cohort 0 at
    size ``n`` is exactly the experiment ``ketasim run`` simulates with ``n`` subjects
    per arm and the same seed.
    """
    comparison = _comparison(scenario, compare_index)
    ns, cohorts, alpha = check_power_arguments(ns, cohorts, alpha)
    block = ns[-1]
    subjects = block * cohorts
    if subjects > MAX_SUBJECTS_PER_ARM:
        raise PowerError(f"max(ns) * cohorts = {block} * {cohorts} = {subjects} subjects per "
                         f"arm; expected at most {MAX_SUBJECTS_PER_ARM} (use fewer cohorts "
                         "or a smaller largest n)")

    result = simulate(_power_scenario(scenario, comparison, subjects), seed=seed,
                      registry=registry, map_tasks=map_tasks)
    return power_table(result.readouts, readout=comparison.readout, time_h=comparison.at,
                       arms=comparison.arms, test=comparison.test, ns=ns, cohorts=cohorts,
                       alpha=alpha, assay=comparison.assay)
