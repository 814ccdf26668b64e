"""Spine turnover statistics on the tracking table, for simulated and real imaging alike.

Every function takes a table validated by
:func:`ketasim.analysis.tracking.read_tracking_table` (one row per spine per session) and
works on the branches imaged at the sessions it compares. The tests follow the analyses of
Moda-Sava et al. 2019 (Science 364:eaat8078): stress-driven elimination is clustered along
dendrites and branch-specific (SEED-FACTS F-M-2), ketamine's new spines are clustered and
branch-specific (F-M-5), nearly half form within 2 um of a site eliminated during stress
(F-M-6), and these restored spines outlast de novo ones over 4 days (F-M-7).

Random procedures take an explicit ``numpy.random.Generator`` and draw all permutations as
arrays (one loop per branch or subject, none per permutation). One-sided permutation
p-values count the observed value as one of the draws: ``(1 + #extreme) / (1 + n_perm)``.

Times given as arguments are session times (h): one that is not a session of the table
(within ``TIME_TOL_H``), or sessions given out of order (``t1`` not after ``t0``), is a
``ValueError`` naming the argument and the table's sessions, not an empty result.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd

from ketasim.analysis.tracking import (
    BRANCH_KEY,
    SPINE_CLASSES,
    SPINE_KEY,
    TIME_TOL_H,
    branches_imaged_at,
    imaged_sessions,
    rows_at,
    session_pair,
    sessions,
)

EventKind = Literal["eliminated", "new"]
KINDS = ("eliminated", "new")
SUBJECT_KEY = ["arm", "subject"]
EVENT_COLUMNS = [*SPINE_KEY, "position_um", "branch_length_um"]
_REL_TOL = 1e-12  # float slack when a permuted statistic equals the observed one
_RADIUS_TOL_UM = 1e-9


def _select(table: pd.DataFrame, arm: str | None) -> pd.DataFrame:
    return table if arm is None else table.loc[table["arm"] == arm]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_rng(rng: object, n_perm: int) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n_perm) < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")


def _times_text(times: np.ndarray) -> str:
    return ", ".join(f"{t:g}" for t in times) if len(times) else "none"


def _check_sessions(table: pd.DataFrame, **times: float) -> None:
    """Each named time (h) is a session of ``table`` (within ``TIME_TOL_H``), and the times
    increase in the order given; else one ValueError naming the argument and the
    sessions."""
    have = sessions(table)
    names = list(times)
    for name in names:
        t = times[name]
        try:
            x = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a session time (h), got {t!r}") from None
        if not np.isfinite(x) or not (have.size and np.abs(have - x).min() <= TIME_TOL_H):
            raise ValueError(f"{name}={x:g} h is not a session of the table (sessions: "
                             f"{_times_text(have)} h)")
    for a, b in pairwise(names):
        if not float(times[b]) > float(times[a]) + TIME_TOL_H:
            raise ValueError(f"{b}={float(times[b]):g} h must be a later session than "
                             f"{a}={float(times[a]):g} h (sessions: {_times_text(have)} h)")


def _check_pair(name: str, pair: object) -> tuple[float, float]:
    try:
        t0, t1 = pair  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of session times (t0, t1), got "
                         f"{pair!r}") from None
    return t0, t1


def _event_mask(pair: pd.DataFrame, kind: str) -> np.ndarray:
    p0, p1 = pair["present_t0"].to_numpy(), pair["present_t1"].to_numpy()
    return (p0 & ~p1) if kind == "eliminated" else (~p0 & p1)


def _event_position_column(kind: str) -> str:
    # an eliminated spine was last seen at t0, a new one is first seen at t1
    return "position_t0_um" if kind == "eliminated" else "position_t1_um"


def _p_greater(null: np.ndarray, observed: float) -> float:
    tol = _REL_TOL * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null >= observed - tol)) / (1 + null.size))


def _p_less(null: np.ndarray, observed: float) -> float:
    tol = _REL_TOL * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null <= observed + tol)) / (1 + null.size))


# --------------------------------------------------------------------------- densities


def density_per_10um(table: pd.DataFrame) -> pd.DataFrame:
    """Spine density per branch and session.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, time_h, n_present, branch_length_um,
        density_per_10um``; one row per branch per session at which it was imaged.
    """
    g = table.groupby([*BRANCH_KEY, "time_h"], sort=True)
    out = g.agg(n_present=("present", "sum"),
                branch_length_um=("branch_length_um", "first")).reset_index()
    out["n_present"] = out["n_present"].astype(np.int64)
    out["density_per_10um"] = out["n_present"] / out["branch_length_um"] * 10.0
    return out


@dataclass(frozen=True, eq=False)
class TurnoverResult:
    """Formation and elimination between two sessions.

    Attributes
    ----------
    t0_h, t1_h : float
        The sessions compared.
    per_subject : pandas.DataFrame
        Columns ``arm, subject, n_branches, n_t0, n_t1, n_formed, n_eliminated,
        formation_pct, elimination_pct`` (counts pooled over the subject's branches).
    per_branch : pandas.DataFrame
        The same per ``arm, subject, branch`` (``branch_length_um`` instead of
        ``n_branches``).
    """

    t0_h: float
    t1_h: float
    per_subject: pd.DataFrame
    per_branch: pd.DataFrame


def turnover(table: pd.DataFrame, t0: float, t1: float) -> TurnoverResult:
    """Formation and elimination (% of the spines present at ``t0``) between two sessions.

    Formation % = spines present at ``t1`` but not at ``t0``, / spines present at ``t0``
    x 100; elimination % = spines present at ``t0`` but not at ``t1``, / spines present at
    ``t0`` x 100 (NaN where no spine was present at ``t0``). Only branches imaged at both
    sessions count.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t0, t1 : float
        Session times (h).

    Returns
    -------
    TurnoverResult

    Raises
    ------
    ValueError
        When ``t0`` or ``t1`` is not a session of the table, or ``t1`` is not after
        ``t0``.
    """
    _check_sessions(table, t0=t0, t1=t1)
    pair = session_pair(table, t0, t1)
    p0, p1 = pair["present_t0"].to_numpy(), pair["present_t1"].to_numpy()
    counts = pair[SPINE_KEY[:-1]].assign(
        n_t0=p0.astype(np.int64), n_t1=p1.astype(np.int64),
        n_formed=(~p0 & p1).astype(np.int64), n_eliminated=(p0 & ~p1).astype(np.int64))
    per_branch = branches_imaged_at(table, t0, t1).merge(
        counts.groupby(BRANCH_KEY, sort=False).sum().reset_index(), on=BRANCH_KEY,
        how="left")
    count_cols = ["n_t0", "n_t1", "n_formed", "n_eliminated"]
    per_branch[count_cols] = per_branch[count_cols].fillna(0).astype(np.int64)
    per_subject = per_branch.groupby(SUBJECT_KEY, sort=True).agg(
        n_branches=("branch", "size"), **{c: (c, "sum") for c in count_cols}).reset_index()
    for df in (per_branch, per_subject):
        base = df["n_t0"].where(df["n_t0"] > 0).astype(float)
        df["formation_pct"] = df["n_formed"] / base * 100.0
        df["elimination_pct"] = df["n_eliminated"] / base * 100.0
    return TurnoverResult(float(t0), float(t1), per_subject, per_branch)


def events(table: pd.DataFrame, t0: float, t1: float, kind: EventKind) -> pd.DataFrame:
    """The spines eliminated or formed between two sessions.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t0, t1 : float
        Session times (h).
    kind : {"eliminated", "new"}
        ``"eliminated"``: present at ``t0``, absent at ``t1`` (position at ``t0``);
        ``"new"``: absent at ``t0``, present at ``t1`` (position at ``t1``).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, spine_id, position_um, branch_length_um``, sorted
        by branch and position.
    """
    _check_kind(kind)
    _check_sessions(table, t0=t0, t1=t1)
    pair = session_pair(table, t0, t1)
    ev = pair.loc[_event_mask(pair, kind)]
    ev = ev.rename(columns={_event_position_column(kind): "position_um"})
    return ev[EVENT_COLUMNS].reset_index(drop=True)


# -------------------------------------------------------------------- clustering


@dataclass(frozen=True)
class ClusteringResult:
    """Nearest-neighbour clustering of events along branches.

    Attributes
    ----------
    observed_um : float
        Median (or mean, see ``summary``) over events of the distance to the nearest
        other event on the same branch.
    null_mean_um : float
        Mean of the same statistic under the null.
    p : float
        One-sided permutation p (clustered = smaller distances than the null).
    n_events, n_branches : int
        Events and branches tested (branches with >= 2 events).
    kind, method : str
        Event kind and null model.
    n_perm : int
        Number of null draws.
    summary : str
        ``"median"`` or ``"mean"``.
    """

    observed_um: float
    null_mean_um: float
    p: float
    n_events: int
    n_branches: int
    kind: str
    method: str
    n_perm: int
    summary: str = "median"


def _nn_distances(x: np.ndarray) -> np.ndarray:
    """Nearest-neighbour distance of every point, per row of ``x`` (n, k >= 2)."""
    s = np.sort(x, axis=1)
    gap = np.diff(s, axis=1)
    edge = np.full((s.shape[0], 1), np.inf)
    left = np.concatenate([edge, gap], axis=1)
    right = np.concatenate([gap, edge], axis=1)
    return np.minimum(left, right)


def _seen_before(table: pd.DataFrame, spines: pd.DataFrame, t: float) -> np.ndarray:
    """For each row of ``spines`` (with the spine key columns): was that spine present at a
    session before ``t``?"""
    before = table.loc[table["present"] & (table["time_h"] < t - TIME_TOL_H),
                       SPINE_KEY].drop_duplicates()
    seen = spines[SPINE_KEY].merge(before.assign(_old=True), on=SPINE_KEY, how="left")
    return seen["_old"].notna().to_numpy()


def clustering_test(table: pd.DataFrame, t0: float, t1: float, kind: EventKind,
                    n_perm: int = 1000, *, rng: np.random.Generator,
                    method: Literal["labels", "uniform"] = "labels",
                    summary: Literal["median", "mean"] = "median",
                    arm: str | None = None, first_appearance: bool = True
                    ) -> ClusteringResult:
    """Are events closer to each other along a branch than chance?

    Statistic: the median (or mean) over events of the nearest-neighbour distance (um) to
    another event on the same branch, over branches with >= 2 events. The median is the
    default: a few isolated events (a false-positive punctum, a spine missed in one
    session) add long distances that dominate a mean on branches with few events. Null,
    per branch, the same number of events:

    - ``method="labels"``: drawn without replacement among the branch's spines at risk
      (eliminated: the spines present at ``t0``, at their ``t0`` positions; new: the
      spines present at ``t1``, at their ``t1`` positions), which keeps the spines'
      own spacing;
    - ``method="uniform"``: placed uniformly along the branch.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t0, t1 : float
        Session times (h).
    kind : {"eliminated", "new"}
        Which events (see :func:`events`).
    n_perm : int, default 1000
        Number of null draws.
    rng : numpy.random.Generator
        Source of the null draws.
    method : {"labels", "uniform"}, default "labels"
        Null model.
    summary : {"median", "mean"}, default "median"
        How the events' nearest-neighbour distances are summarised.
    arm : str, optional
        Restrict to one arm.
    first_appearance : bool, default True
        For new spines: leave out spines present at a session before ``t0`` (scored
        earlier, missed at ``t0`` and found again: old spines, see :func:`survival`).

    Returns
    -------
    ClusteringResult
        ``p = (1 + #(null <= observed)) / (1 + n_perm)``; NaN statistics and p when no
        branch has two events.
    """
    _check_kind(kind)
    _check_rng(rng, n_perm)
    if method not in ("labels", "uniform"):
        raise ValueError(f"method must be 'labels' or 'uniform', got {method!r}")
    if summary not in ("median", "mean"):
        raise ValueError(f"summary must be 'median' or 'mean', got {summary!r}")
    n_perm = int(n_perm)
    _check_sessions(_select(table, arm), t0=t0, t1=t1)
    pair = session_pair(_select(table, arm), t0, t1)
    pair["_event"] = _event_mask(pair, kind)
    if kind == "new" and first_appearance:
        pair["_event"] &= ~_seen_before(table, pair, t0)
    pos_col = _event_position_column(kind)
    at_risk_col = "present_t0" if kind == "eliminated" else "present_t1"
    obs_nn, null_nn, n_branches = [], [], 0
    for _, b in pair.groupby(BRANCH_KEY, sort=True):
        is_event = b["_event"].to_numpy()
        k = int(is_event.sum())
        if k < 2:
            continue
        ev = b[pos_col].to_numpy(dtype=float)[is_event]
        obs_nn.append(_nn_distances(ev[None, :])[0])
        if method == "labels":
            risk = b.loc[b[at_risk_col], pos_col].to_numpy(dtype=float)
            idx = np.broadcast_to(np.arange(risk.size), (n_perm, risk.size))
            draws = risk[rng.permuted(idx, axis=1)[:, :k]]
        else:
            draws = rng.uniform(0.0, float(b["branch_length_um"].iat[0]), size=(n_perm, k))
        null_nn.append(_nn_distances(draws))
        n_branches += 1
    if not obs_nn:
        return ClusteringResult(np.nan, np.nan, np.nan, 0, 0, kind, method, n_perm, summary)
    reduce = np.median if summary == "median" else np.mean
    observed = float(reduce(np.concatenate(obs_nn)))
    null = reduce(np.concatenate(null_nn, axis=1), axis=1)
    n_events = sum(x.size for x in obs_nn)
    return ClusteringResult(observed, float(null.mean()), _p_less(null, observed), n_events,
                            n_branches, kind, method, n_perm, summary)


# --------------------------------------------------------------- branch specificity


@dataclass(frozen=True, eq=False)
class BranchSpecificityResult:
    """Over-dispersion of event counts across the branches of each subject.

    Attributes
    ----------
    statistic : float
        Chi-square of per-branch event counts against the subject's pooled rate, summed
        over subjects.
    null_mean : float
        Mean of the statistic under the null.
    p : float
        One-sided permutation p (branch-specific = larger than the null).
    n_events, n_branches, n_subjects : int
        What was tested.
    kind : str
        Event kind.
    n_perm : int
        Number of null draws.
    per_branch : pandas.DataFrame
        ``arm, subject, branch, n_at_risk, n_events, expected`` for the branches tested.
    """

    statistic: float
    null_mean: float
    p: float
    n_events: int
    n_branches: int
    n_subjects: int
    kind: str
    n_perm: int
    per_branch: pd.DataFrame


def _chi_square(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (((counts - expected) ** 2) / expected).sum(axis=-1)


def branch_specificity_test(table: pd.DataFrame, t0: float, t1: float, kind: EventKind,
                            n_perm: int = 1000, *, rng: np.random.Generator,
                            arm: str | None = None) -> BranchSpecificityResult:
    """Are events concentrated on some branches beyond chance?

    For each subject, the branch's spines at risk are those present at ``t0`` (the
    denominator of the turnover percentages); expected events on a branch = the
    subject's events x its share of the subject's spines at risk. Statistic: the
    chi-square ``sum (O - E)^2 / E`` over branches, summed over subjects with >= 2
    branches and >= 1 event (branches with no spine at ``t0`` are left out). Null: the
    subject's events redistributed at random over its spines at risk, drawn without
    replacement for eliminations (multivariate hypergeometric, exact: an eliminated spine
    is one of them) and with replacement for new spines (multinomial; a branch can gain
    more spines than it had).

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t0, t1 : float
        Session times (h).
    kind : {"eliminated", "new"}
        Which events (see :func:`events`).
    n_perm : int, default 1000
        Number of null draws.
    rng : numpy.random.Generator
        Source of the null draws.
    arm : str, optional
        Restrict to one arm.

    Returns
    -------
    BranchSpecificityResult
        ``p = (1 + #(null >= observed)) / (1 + n_perm)``; NaN when nothing is testable.
    """
    _check_kind(kind)
    _check_rng(rng, n_perm)
    n_perm = int(n_perm)
    _check_sessions(_select(table, arm), t0=t0, t1=t1)
    pair = session_pair(_select(table, arm), t0, t1)
    per_branch = pair[BRANCH_KEY].assign(
        n_at_risk=pair["present_t0"].astype(np.int64),
        n_events=_event_mask(pair, kind).astype(np.int64),
    ).groupby(BRANCH_KEY, sort=True).sum().reset_index()
    per_branch = per_branch.loc[per_branch["n_at_risk"] > 0]
    observed, null = 0.0, np.zeros(n_perm)
    tested = []
    for _, s in per_branch.groupby(SUBJECT_KEY, sort=True):
        w = s["n_at_risk"].to_numpy()
        counts = s["n_events"].to_numpy()
        n = int(counts.sum())
        if len(s) < 2 or n == 0:
            continue
        expected = n * w / w.sum()
        observed += float(_chi_square(counts, expected))
        if kind == "eliminated":
            draws = rng.multivariate_hypergeometric(w, n, size=n_perm)
        else:
            draws = rng.multinomial(n, w / w.sum(), size=n_perm)
        null += _chi_square(draws, expected)
        tested.append(s.assign(expected=expected))
    if not tested:
        empty = per_branch.iloc[:0].assign(expected=np.zeros(0))
        return BranchSpecificityResult(np.nan, np.nan, np.nan, 0, 0, 0, kind, n_perm, empty)
    table_out = pd.concat(tested, ignore_index=True)
    return BranchSpecificityResult(
        observed, float(null.mean()), _p_greater(null, observed),
        int(table_out["n_events"].sum()), len(table_out), len(tested), kind, n_perm,
        table_out)


# --------------------------------------------------------------------- restoration


def _covered_length(sites: np.ndarray, radius_um: float, length_um: float) -> float:
    """Length of the union of ``[s - r, s + r]`` over ``sites``, clipped to the branch."""
    s = np.sort(sites)
    lo = np.clip(s - radius_um, 0.0, length_um)
    hi = np.clip(s + radius_um, 0.0, length_um)
    # hi is non-decreasing, so the part of interval i not already covered starts at
    # max(lo_i, hi_{i-1})
    start = np.maximum(lo, np.concatenate([[-np.inf], hi[:-1]]))
    return float(np.clip(hi - start, 0.0, None).sum())


def _nearest_distance(points: np.ndarray, sites_sorted: np.ndarray) -> np.ndarray:
    """Distance from each of ``points`` (any shape) to the nearest of ``sites_sorted``."""
    if sites_sorted.size == 0:
        return np.full(points.shape, np.inf)
    j = np.searchsorted(sites_sorted, points)
    right = sites_sorted[np.minimum(j, sites_sorted.size - 1)]
    left = sites_sorted[np.maximum(j - 1, 0)]
    return np.minimum(np.abs(points - left), np.abs(points - right))


def _restoration_frames(table: pd.DataFrame, t_elim: tuple[float, float],
                        t_new: tuple[float, float]
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    e0, e1 = _check_pair("t_elim", t_elim)
    n0, n1 = _check_pair("t_new", t_new)
    _check_sessions(table, **{"t_elim[0]": e0, "t_elim[1]": e1})
    _check_sessions(table, **{"t_new[0]": n0, "t_new[1]": n1})
    branches = branches_imaged_at(table, *t_elim, *t_new)
    sites = events(table, *t_elim, "eliminated").merge(branches[BRANCH_KEY], on=BRANCH_KEY)
    new = events(table, *t_new, "new").merge(branches[BRANCH_KEY], on=BRANCH_KEY)
    return branches, sites, new


def restoration_labels(table: pd.DataFrame, t_elim: tuple[float, float],
                       t_new: tuple[float, float], radius_um: float = 2.0) -> pd.DataFrame:
    """Label each new spine restored (within ``radius_um`` of an eliminated site) or de novo.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t_elim : (float, float)
        Sessions ``(t0, t1)`` bracketing the eliminations (e.g. before and after stress).
    t_new : (float, float)
        Sessions ``(t2, t3)`` bracketing the formations (e.g. before and after ketamine).
    radius_um : float, default 2.0
        A new spine at distance <= ``radius_um`` from a site eliminated between ``t0`` and
        ``t1`` on the same branch is restored (F-M-6: < 2 um).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, branch, spine_id, position_um, branch_length_um,
        distance_to_site_um`` (inf where the branch lost no spine) and ``group``
        (``"restored"`` or ``"de_novo"``), for new spines on branches imaged at all four
        sessions.
    """
    _, sites, new = _restoration_frames(table, t_elim, t_new)
    return _label(sites, new, radius_um)


def _label(sites: pd.DataFrame, new: pd.DataFrame, radius_um: float) -> pd.DataFrame:
    site_pos = {k: np.sort(g["position_um"].to_numpy(dtype=float))
                for k, g in sites.groupby(BRANCH_KEY, sort=False)}
    dist = np.full(len(new), np.inf)
    for key, idx in new.groupby(BRANCH_KEY, sort=False).indices.items():
        s = site_pos.get(key, np.zeros(0))
        dist[idx] = _nearest_distance(new["position_um"].to_numpy(dtype=float)[idx], s)
    out = new.assign(distance_to_site_um=dist)
    out["group"] = np.where(dist <= radius_um + _RADIUS_TOL_UM, "restored", "de_novo")
    return out


@dataclass(frozen=True, eq=False)
class RestorationResult:
    """New spines near sites eliminated earlier on the same branch (F-M-6).

    Attributes
    ----------
    fraction_restored : float
        Restored / new spines.
    expected_fraction : float
        Analytic chance: new spines placed uniformly, each branch contributing its new
        spines x (covered length of the union of +-radius intervals / branch length).
    null_mean_fraction : float
        Mean restored fraction over the uniform placements drawn.
    p : float
        One-sided permutation p (more restored than chance).
    n_new, n_restored, n_sites, n_branches : int
        New spines, restored ones, eliminated sites, branches used.
    radius_um : float
        The radius.
    n_perm : int
        Number of null draws.
    new_spines : pandas.DataFrame
        The labelled new spines (see :func:`restoration_labels`).
    """

    fraction_restored: float
    expected_fraction: float
    null_mean_fraction: float
    p: float
    n_new: int
    n_restored: int
    n_sites: int
    n_branches: int
    radius_um: float
    n_perm: int
    new_spines: pd.DataFrame


def restoration(table: pd.DataFrame, t_elim: tuple[float, float],
                t_new: tuple[float, float], radius_um: float = 2.0, n_perm: int = 1000, *,
                rng: np.random.Generator, arm: str | None = None) -> RestorationResult:
    """Fraction of new spines that form within ``radius_um`` of an eliminated site.

    New spines (absent at ``t2``, present at ``t3``) are compared with the sites of the
    spines eliminated between ``t0`` and ``t1`` on the same branch, on branches imaged at
    all four sessions. Chance: the same number of new spines per branch placed uniformly
    along it (analytic expectation and a permutation p).

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t_elim : (float, float)
        Sessions ``(t0, t1)`` bracketing the eliminations.
    t_new : (float, float)
        Sessions ``(t2, t3)`` bracketing the formations.
    radius_um : float, default 2.0
        Restoration radius (F-M-6).
    n_perm : int, default 1000
        Number of uniform placements drawn.
    rng : numpy.random.Generator
        Source of the null draws.
    arm : str, optional
        Restrict to one arm.

    Returns
    -------
    RestorationResult
        ``p = (1 + #(null restored >= observed)) / (1 + n_perm)``; NaN fractions and p
        when there is no new spine.
    """
    _check_rng(rng, n_perm)
    if not radius_um > 0:
        raise ValueError(f"radius_um must be > 0, got {radius_um}")
    n_perm = int(n_perm)
    branches, sites, new = _restoration_frames(_select(table, arm), t_elim, t_new)
    labelled = _label(sites, new, radius_um)
    n_new = len(labelled)
    n_restored = int((labelled["group"] == "restored").sum())
    if n_new == 0:
        return RestorationResult(np.nan, np.nan, np.nan, np.nan, 0, 0, len(sites),
                                 len(branches), float(radius_um), n_perm, labelled)
    site_pos = {k: np.sort(g["position_um"].to_numpy(dtype=float))
                for k, g in sites.groupby(BRANCH_KEY, sort=False)}
    expected_restored = 0.0
    null_restored = np.zeros(n_perm, dtype=np.int64)
    for key, g in labelled.groupby(BRANCH_KEY, sort=True):
        s = site_pos.get(key)
        if s is None:
            continue  # no eliminated site: every new spine there is de novo
        length = float(g["branch_length_um"].iat[0])
        k = len(g)
        expected_restored += k * _covered_length(s, radius_um, length) / length
        draws = rng.uniform(0.0, length, size=(n_perm, k))
        near = _nearest_distance(draws, s) <= radius_um + _RADIUS_TOL_UM
        null_restored += near.sum(axis=1)
    return RestorationResult(
        n_restored / n_new, expected_restored / n_new, float(null_restored.mean()) / n_new,
        _p_greater(null_restored.astype(float), float(n_restored)), n_new, n_restored,
        len(sites), len(branches), float(radius_um), n_perm, labelled)


# ------------------------------------------------------------------------ survival


@dataclass(frozen=True, eq=False)
class SurvivalResult:
    """Survival of new spines from their first session, by group (F-M-7).

    Attributes
    ----------
    t_start_h : float
        Session at which the spines were first seen.
    horizon_h : float
        Follow-up horizon; later losses are censored at it.
    groups : tuple of str
        Groups compared, in order.
    summary : pandas.DataFrame
        Per group: ``n_spines, n_followed, n_surviving, fraction_surviving`` (empirical,
        over spines lost before the horizon or followed up to it) and ``km_surviving``
        (Kaplan-Meier estimate at the horizon).
    logrank_statistic, logrank_p : float
        Log-rank test across the groups (multivariate when more than two; NaN for one).
    km : pandas.DataFrame
        Kaplan-Meier curves for plotting: ``group, time_h, survival, ci_lower, ci_upper,
        at_risk, observed, censored``.
    spines : pandas.DataFrame
        Per spine: ``arm, subject, branch, spine_id, group, duration_h, lost, followed,
        survived``.
    """

    t_start_h: float
    horizon_h: float
    groups: tuple[str, ...]
    summary: pd.DataFrame
    logrank_statistic: float
    logrank_p: float
    km: pd.DataFrame
    spines: pd.DataFrame


def _follow_up(table: pd.DataFrame, new: pd.DataFrame, t_start: float) -> pd.DataFrame:
    """Duration (h) from ``t_start`` to the first session a spine is absent, or to the last
    session its branch was imaged (censored)."""
    later = imaged_sessions(table)
    later = later.loc[later["time_h"] > t_start + TIME_TOL_H, [*BRANCH_KEY, "time_h"]]
    seen = table.loc[table["present"] & (table["time_h"] > t_start + TIME_TOL_H),
                     [*SPINE_KEY, "time_h"]].assign(_seen=True)
    grid = new[SPINE_KEY].merge(later, on=BRANCH_KEY).merge(
        seen, on=[*SPINE_KEY, "time_h"], how="left")
    grid["_seen"] = grid["_seen"].notna()
    g = grid.groupby(SPINE_KEY, sort=False)
    last = g["time_h"].max().rename("_last")
    lost_at = grid.loc[~grid["_seen"]].groupby(SPINE_KEY, sort=False)["time_h"].min()
    out = new.merge(last.reset_index(), on=SPINE_KEY, how="left").merge(
        lost_at.rename("_lost").reset_index(), on=SPINE_KEY, how="left")
    lost = out["_lost"].notna().to_numpy()
    end = np.where(lost, out["_lost"], out["_last"].fillna(t_start))
    return out.drop(columns=["_last", "_lost"]).assign(
        duration_h=end.astype(float) - t_start, lost=lost)


def survival(table: pd.DataFrame, t_start: float,
             groups: Literal["restoration", "origin", "arm"] = "restoration",
             horizon_h: float = 96.0, *, t_prev: float | None = None,
             t_elim: tuple[float, float] | None = None, radius_um: float = 2.0,
             arm: str | None = None, first_appearance: bool = True) -> SurvivalResult:
    """Kaplan-Meier survival of new spines, restored vs de novo (or by origin or arm).

    New spines are those absent at ``t_prev`` and present at ``t_start`` and, with
    ``first_appearance`` (the default), present at no earlier session either: a spine
    scored at an earlier session, missed at ``t_prev`` and found again is an old spine, not
    a new one (new spines as spines seen for the first time, as in longitudinal imaging
    studies, e.g. Holtmaat et al. 2009 Nat Protoc). A spine is lost
    at the first later session of its branch where it is absent; one still present at its
    branch's last session is censored there, and every spine is censored at
    ``horizon_h`` (a loss first seen after the horizon counts as surviving it). Curves
    by ``lifelines.KaplanMeierFitter``, test by ``lifelines.statistics.logrank_test``.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table.
    t_start : float
        Session (h) at which the new spines are first seen.
    groups : {"restoration", "origin", "arm"}, default "restoration"
        ``"restoration"``: restored vs de novo by :func:`restoration_labels` (needs
        ``t_elim``); ``"origin"``: the ``origin`` column at ``t_start`` (simulated
        ground truth); ``"arm"``: by arm.
    horizon_h : float, default 96
        Follow-up horizon (h after ``t_start``; F-M-7: 4 days).
    t_prev : float, optional
        The session before ``t_start`` (default: the latest session time before it).
    t_elim : (float, float), optional
        Sessions bracketing the eliminations, for ``groups="restoration"``.
    radius_um : float, default 2.0
        Restoration radius, for ``groups="restoration"``.
    arm : str, optional
        Restrict to one arm.
    first_appearance : bool, default True
        Keep only new spines not present at any session before ``t_prev`` either
        (False: every spine absent at ``t_prev`` and present at ``t_start``).

    Returns
    -------
    SurvivalResult
    """
    try:  # deferred: lifelines (and pandas' plotting it loads) takes about a second
        from lifelines import KaplanMeierFitter
        from lifelines.statistics import logrank_test, multivariate_logrank_test
    except ImportError as err:
        raise ImportError("survival() needs lifelines>=0.29 (pip install lifelines)") from err

    if not horizon_h > 0:
        raise ValueError(f"horizon_h must be > 0, got {horizon_h}")
    table = _select(table, arm)
    if t_prev is None:
        earlier = sessions(table)
        earlier = earlier[earlier < t_start - TIME_TOL_H]
        if earlier.size == 0:
            raise ValueError(f"no session before t_start={t_start} h to define new spines")
        t_prev = float(earlier[-1])
    _check_sessions(table, t_prev=t_prev, t_start=t_start)
    if groups == "restoration":
        if t_elim is None:
            raise ValueError("groups='restoration' needs t_elim=(t0, t1)")
        new = restoration_labels(table, t_elim, (t_prev, t_start), radius_um)
        order = ["restored", "de_novo"]
    elif groups == "origin":
        if "origin" not in table.columns:
            raise ValueError("groups='origin' needs an 'origin' column")
        new = events(table, t_prev, t_start, "new").merge(
            rows_at(table, t_start)[[*SPINE_KEY, "origin"]], on=SPINE_KEY, how="left")
        new = new.assign(group=np.where(new["origin"].isna(), "unknown",
                                        new["origin"].astype(str)))
        order = [o for o in ("restored", "de_novo", "preexisting", "unknown")
                 if o in set(new["group"])]
    elif groups == "arm":
        new = events(table, t_prev, t_start, "new")
        new = new.assign(group=new["arm"])
        order = list(dict.fromkeys(new["group"]))
    else:
        raise ValueError(f"groups must be 'restoration', 'origin' or 'arm', got {groups!r}")
    if first_appearance:
        new = new.loc[~_seen_before(table, new, t_prev)].reset_index(drop=True)
    spines = _follow_up(table, new[[*SPINE_KEY, "group"]], float(t_start))
    over = spines["duration_h"].to_numpy() > horizon_h + TIME_TOL_H
    lost = spines["lost"].to_numpy() & ~over
    spines["duration_h"] = np.minimum(spines["duration_h"].to_numpy(), horizon_h)
    spines["lost"] = lost
    spines["followed"] = lost | (spines["duration_h"].to_numpy() >= horizon_h - TIME_TOL_H)
    spines["survived"] = spines["followed"] & ~spines["lost"]
    rows, curves, durations, observed = [], [], [], []
    for name in order:
        g = spines.loc[spines["group"] == name]
        d = g["duration_h"].to_numpy(dtype=float)
        e = g["lost"].to_numpy(dtype=bool)
        km_at = np.nan
        if d.size:
            kmf = KaplanMeierFitter().fit(d, event_observed=e, label=name)
            km_at = float(kmf.predict(horizon_h))
            curves.append(_km_table(kmf, name))
            durations.append(d)
            observed.append(e)
        n_followed = int(g["followed"].sum())
        n_surv = int(g["survived"].sum())
        rows.append({"group": name, "n_spines": len(g), "n_followed": n_followed,
                     "n_surviving": n_surv,
                     "fraction_surviving": n_surv / n_followed if n_followed else np.nan,
                     "km_surviving": km_at})
    stat, p = np.nan, np.nan
    if len(durations) == 2:
        r = logrank_test(durations[0], durations[1], observed[0], observed[1])
        stat, p = float(r.test_statistic), float(r.p_value)
    elif len(durations) > 2:
        labels = np.concatenate([np.full(d.size, i) for i, d in enumerate(durations)])
        r = multivariate_logrank_test(np.concatenate(durations), labels,
                                      np.concatenate(observed))
        stat, p = float(r.test_statistic), float(r.p_value)
    km = (pd.concat(curves, ignore_index=True) if curves
          else pd.DataFrame(columns=["group", "time_h", "survival", "ci_lower", "ci_upper",
                                     "at_risk", "observed", "censored"]))
    cols = [*SPINE_KEY, "group", "duration_h", "lost", "followed", "survived"]
    return SurvivalResult(float(t_start), float(horizon_h), tuple(order), pd.DataFrame(rows),
                          stat, p, km, spines[cols])


def _km_table(kmf, name: str) -> pd.DataFrame:
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_survival_function_
    ev = kmf.event_table.reindex(sf.index).fillna(0)
    return pd.DataFrame({
        "group": name, "time_h": sf.index.to_numpy(dtype=float),
        "survival": sf.to_numpy(dtype=float), "ci_lower": ci.iloc[:, 0].to_numpy(dtype=float),
        "ci_upper": ci.iloc[:, 1].to_numpy(dtype=float),
        "at_risk": ev["at_risk"].to_numpy(dtype=np.int64),
        "observed": ev["observed"].to_numpy(dtype=np.int64),
        "censored": ev["censored"].to_numpy(dtype=np.int64)})


# ---------------------------------------------------------------------- morphology


def morphology_fractions(table: pd.DataFrame, time_h: float) -> pd.DataFrame:
    """Fraction of the present, classified spines in each morphology class.

    Parameters
    ----------
    table : pandas.DataFrame
        A validated tracking table with a ``class`` column.
    time_h : float
        Session (h).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, class, n, n_classified, fraction``, every class listed
        (zeros included) for every subject imaged at ``time_h``.
    """
    if "class" not in table.columns:
        raise ValueError("morphology_fractions needs a 'class' column")
    _check_sessions(table, time_h=time_h)
    rows = rows_at(table, time_h)
    subjects = rows[SUBJECT_KEY].drop_duplicates().sort_values(SUBJECT_KEY)
    live = rows.loc[rows["present"] & rows["class"].notna()]
    counts = live.groupby([*SUBJECT_KEY, "class"]).size().rename("n").reset_index()
    grid = subjects.merge(pd.DataFrame({"class": list(SPINE_CLASSES)}), how="cross")
    out = grid.merge(counts, on=[*SUBJECT_KEY, "class"], how="left")
    out["n"] = out["n"].fillna(0).astype(np.int64)
    out["n_classified"] = out.groupby(SUBJECT_KEY)["n"].transform("sum")
    out["fraction"] = out["n"] / out["n_classified"].where(out["n_classified"] > 0)
    return out.reset_index(drop=True)


#: the per-animal readouts of longitudinal spine imaging, with their units
SUBJECT_READOUTS = (("spine_density_per_10um", "per 10 um"), ("formation_pct", "%"),
                    ("elimination_pct", "%"))


def _readouts(table: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Density per 10 um per session (mean over the unit's branches) and formation and
    elimination % between the unit's own consecutive sessions, per ``key`` (animal or
    branch), as a long table."""
    branch_level = key == BRANCH_KEY
    dens = density_per_10um(table).groupby(key + ["time_h"], sort=True)[
        "density_per_10um"].mean().rename("value").reset_index()
    parts = [dens.assign(readout="spine_density_per_10um")]
    # each unit's own consecutive sessions (animals imaged on different days in one
    # table keep all their intervals)
    sessions = table[[*key, "time_h"]].drop_duplicates().sort_values([*key, "time_h"])
    sessions = sessions.assign(t1=sessions.groupby(key, sort=False)["time_h"].shift(-1))
    pairs = sessions.dropna(subset=["t1"])
    for (t0, t1), units in pairs.groupby(["time_h", "t1"], sort=True):
        res = turnover(table, float(t0), float(t1))
        per = res.per_branch if branch_level else res.per_subject
        per = per.merge(units[key], on=key)  # the units for which t1 follows t0
        for col in ("formation_pct", "elimination_pct"):
            parts.append(per[key].assign(time_h=float(t1), readout=col,
                                         value=per[col].to_numpy(float)))
    out = pd.concat(parts, ignore_index=True)
    out["unit"] = out["readout"].map(dict(SUBJECT_READOUTS))
    return out[[*key, "time_h", "readout", "value", "unit"]]


def subject_readouts(table: pd.DataFrame) -> pd.DataFrame:
    """Per animal and session, what a two-photon study reports: density per 10 um
    (mean over the animal's branches imaged that session), and formation and
    elimination % of the spines seen at the animal's previous session (counts pooled
    over the animal's branches imaged at both; :func:`turnover`), so animals imaged on
    different days in one table each keep their own intervals. The same for simulated
    and lab tables.

    Returns
    -------
    pandas.DataFrame
        Long table ``arm, subject, time_h, readout, value, unit`` (subject as in the
        tracking table), sessions in time order; no turnover rows at the first session.
    """
    return _readouts(table, SUBJECT_KEY)


def branch_readouts(table: pd.DataFrame) -> pd.DataFrame:
    """Per branch and session: density per 10 um, and formation and elimination % since
    the branch's previous session, the nested data under
    :func:`subject_readouts`, for mixed models.

    Returns
    -------
    pandas.DataFrame
        Long table ``arm, subject, branch, time_h, readout, value, unit``.
    """
    return _readouts(table, BRANCH_KEY)


def new_spine_persistence(table: pd.DataFrame, t_prev: float, t_new: float,
                          t_end: float) -> pd.DataFrame:
    """Persistence of a cohort of new spines, as longitudinal studies count it: the
    spines present at ``t_new`` and absent at ``t_prev`` (on branches imaged at both),
    and how many of them are present at ``t_end`` (on branches imaged then; a spine
    missed in between and seen again counts as present).

    Returns
    -------
    pandas.DataFrame
        Per branch: ``arm, subject, branch, new_spines, surviving, persistence_pct``
        (branches with no new spine have NaN persistence).

    Raises
    ------
    ValueError
        When ``t_prev``, ``t_new`` or ``t_end`` is not a session of the table, or they
        are not in increasing order.
    """
    _check_sessions(table, t_prev=t_prev, t_new=t_new, t_end=t_end)
    first = session_pair(table, t_prev, t_new)
    new = first.loc[~first["present_t0"].to_numpy() & first["present_t1"].to_numpy(),
                    SPINE_KEY]
    later = session_pair(table, t_new, t_end)
    kept = later.loc[later["present_t1"].to_numpy(), SPINE_KEY].assign(surviving=1)
    imaged = branches_imaged_at(table, t_prev, t_new, t_end)[BRANCH_KEY]
    cohort = new.merge(imaged, on=BRANCH_KEY).merge(kept, on=SPINE_KEY, how="left")
    cohort["surviving"] = cohort["surviving"].fillna(0).astype(np.int64)
    per = cohort.groupby(BRANCH_KEY, sort=True).agg(
        new_spines=("spine_id", "size"), surviving=("surviving", "sum")).reset_index()
    out = imaged.merge(per, on=BRANCH_KEY, how="left")
    out[["new_spines", "surviving"]] = out[["new_spines", "surviving"]].fillna(0).astype(
        np.int64)
    out["persistence_pct"] = 100.0 * out["surviving"] / out["new_spines"].where(
        out["new_spines"] > 0)
    return out
