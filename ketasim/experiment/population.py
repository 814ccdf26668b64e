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

import itertools
import math

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from ketasim.core.streams import assay_rng
from ketasim.signaling.protocol import ProtocolError

PATIENT_COLUMNS = ["arm", "subject", "sex", "age_y", "weight_kg", "diagnosis",
                   "failed_trials", "screening_madrs", "eligible", "exclusion"]


def _truncated(g: np.random.Generator, dist) -> float:
    """One draw of a (possibly truncated) normal, by rejection; where a narrow window
    rejects 1000 tries, by inverting the truncated normal's distribution function on one
    more uniform (exact either way; it returned the mean there, for most patients of a
    window a few SDs wide)."""
    lo = -np.inf if dist.min is None else dist.min
    hi = np.inf if dist.max is None else dist.max
    for _ in range(1000):
        x = g.normal(dist.mean, dist.sd)
        if lo <= x <= hi:
            return float(x)
    from scipy.stats import truncnorm  # deferred: scipy.stats is slow to import

    a, b = (lo - dist.mean) / dist.sd, (hi - dist.mean) / dist.sd
    return float(np.clip(truncnorm.ppf(g.random(), a, b, loc=dist.mean, scale=dist.sd),
                         lo, hi))


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
    pooled = "pool_id" in out  # a stratified trial's pool was screened before allocation
    if not pooled:
        out["screening_madrs"] = np.nan
    out["eligible"] = True
    out["exclusion"] = ""
    inc = population.inclusion
    if population.screening is not None:
        r = readouts[(readouts["readout"] == "madrs_total")
                     & np.isclose(readouts["time_h"], population.screening)]
        own = out["subject"].map(r.groupby("subject")["value"].first()).astype(float)
        # a pool screened on the MADRS holds each patient's rating already (the arm's own
        # run records the same one there); without a MADRS criterion the pool simulated
        # no screening visit, so the arm's rating is recorded as in a parallel trial
        out["screening_madrs"] = (out["screening_madrs"].astype(float).fillna(own)
                                  if pooled else own)
    if pooled or inc is None:
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


# ---------------------------------------------------------------- stratified randomisation
#: Stream namespace of a stratified trial's shared pool of candidates. Not a valid arm
#: name, so it never collides with an arm's streams.
POOL = "@pool"
#: Covariates a design may stratify on: categorical ones, and numeric ones that need
#: cut points (``design.stratum_cuts``).
CATEGORICAL_FACTORS = ("sex", "diagnosis")
NUMERIC_FACTORS = ("age_y", "weight_kg", "failed_trials")


def stratum_labels(patients: pd.DataFrame, factors, cuts) -> np.ndarray:
    """Each patient's stratum, e.g. ``"sex=female|failed_trials>=3"``: a categorical
    factor by its value, a numeric one by the interval of its cut points it falls in
    (``<c1``, ``c1-c2`` ..., ``>=ck``)."""
    parts = []
    for f in factors:
        if f in CATEGORICAL_FACTORS:
            parts.append([f"{f}={v}" for v in patients[f].astype(str)])
            continue
        edges = sorted(float(c) for c in cuts[f])
        k = np.searchsorted(edges, patients[f].to_numpy(float), side="right")
        names = ([f"{f}<{edges[0]:g}"]
                 + [f"{f}={a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
                 + [f"{f}>={edges[-1]:g}"])
        parts.append([names[i] for i in k])
    return np.array(["|".join(p) for p in zip(*parts, strict=True)], dtype=object)


def _controlled_rounding(target: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                         order: np.ndarray) -> np.ndarray:
    """Integer matrix with the given row and column sums whose entries are the floor or
    the ceiling of ``target`` (whose own sums are those): the floors plus a 0/1 top-up
    found as a maximum flow (it exists because ``target`` itself is a feasible
    fractional flow; integral flows then exist too). ``order`` permutes the rows the
    flow sees, so which strata get the extra patient is random."""
    base = np.floor(target + 1e-9).astype(np.int64)
    need_r = rows - base.sum(axis=1)
    need_c = cols - base.sum(axis=0)
    ns, na = target.shape
    if need_r.sum() == 0:
        return base
    # nodes: 0 source, 1..ns strata (in ``order``), then arms, then the sink
    src, sink = 0, 1 + ns + na
    edges: dict[tuple[int, int], int] = {}
    for pos, s in enumerate(order):
        if need_r[s] > 0:
            edges[(src, 1 + pos)] = int(need_r[s])
        for a in range(na):
            if target[s, a] - base[s, a] > 1e-9:
                edges[(1 + pos, 1 + ns + a)] = 1
    for a in range(na):
        if need_c[a] > 0:
            edges[(1 + ns + a, sink)] = int(need_c[a])
    u, v = zip(*edges, strict=True)
    graph = csr_matrix((list(edges.values()), (u, v)), shape=(sink + 1, sink + 1),
                       dtype=np.int32)
    flow = maximum_flow(graph, src, sink).flow.toarray()
    if flow[src].sum() != need_r.sum():  # cannot happen for consistent sums
        raise ValueError("stratified allocation: no integer allocation meets the arms' n")
    out = base.copy()
    for pos, s in enumerate(order):
        out[s] += flow[1 + pos, 1 + ns:1 + ns + na].astype(np.int64)
    return out


def allocate(strata: np.ndarray, ratio: list[int], sizes: list[int], block: int,
             g: np.random.Generator) -> np.ndarray:
    """Stratified permuted-block randomisation of a pool (candidates in enrolment
    order): the arm index of each candidate.

    Within each stratum, candidates are taken in blocks of ``block`` (a multiple of the
    ratio's sum), each block holding the arms in the ratio in a random order. The
    candidates of each stratum's last, incomplete block are allocated so that every arm
    ends with exactly its ``sizes`` (which must follow the ratio exactly): each arm gets
    the floor or the ceiling of its share of each stratum's remainder (a controlled
    rounding), in a random order. So every stratum is balanced to within one candidate
    per arm of its incomplete block."""
    ratio = np.asarray(ratio, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(ratio.sum())
    if block % total or block <= 0:
        raise ValueError(f"block size {block} is not a positive multiple of the ratio's sum "
                         f"{total}")
    if sizes.sum() != len(strata) or np.any(sizes * total != len(strata) * ratio):
        raise ValueError("arm sizes must follow the ratio exactly and add up to the pool")
    labels = np.repeat(np.arange(len(ratio)), ratio * (block // total))
    arm = np.full(len(strata), -1, dtype=np.int64)
    names = list(dict.fromkeys(strata))  # strata in order of first enrolment
    rest = []
    for name in names:
        members = np.flatnonzero(strata == name)
        full = len(members) // block * block
        for b0 in range(0, full, block):
            arm[members[b0:b0 + block]] = g.permutation(labels)
        rest.append(members[full:])
    left = np.array([len(r) for r in rest], dtype=np.int64)
    cols = sizes - np.bincount(arm[arm >= 0], minlength=len(ratio))
    share = left[:, None] * ratio[None, :] / total
    counts = _controlled_rounding(share, left, cols, g.permutation(len(names)))
    for r, c in zip(rest, counts, strict=True):
        arm[r] = g.permutation(np.repeat(np.arange(len(ratio)), c))
    return arm


def trial_ratio(design, arms) -> list[int]:
    """The allocation ratio of the analysed ``arms`` as integers: the design's
    ``randomisation``, else the arms' n reduced by their greatest common divisor."""
    if design.randomisation is not None:
        return [round(design.randomisation[a.name]) for a in arms]
    g = math.gcd(*(a.n for a in arms))
    return [a.n // g for a in arms]


def covariate_eligible(population, patients: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The inclusion criteria known before any visit (failed trials, diagnosis): (each
    patient's eligibility, the first criterion each ineligible one fails)."""
    ok = np.ones(len(patients), bool)
    why = np.full(len(patients), "", dtype=object)
    inc = population.inclusion
    if inc is None:
        return ok, why
    checks = []
    if inc.failed_trials_min is not None:
        checks.append((patients["failed_trials"].to_numpy() < inc.failed_trials_min,
                       f"fewer than {inc.failed_trials_min} failed antidepressant trials"))
    if inc.diagnoses is not None:
        checks.append((~patients["diagnosis"].isin(inc.diagnoses).to_numpy(),
                       f"diagnosis not in {', '.join(inc.diagnoses)}"))
    for bad, reason in checks:
        new = bad & ok
        why[new] = reason
        ok &= ~bad
    return ok, why


#: The most candidates a stratified trial screens per place to fill (then an error).
MAX_SCREENED_PER_PLACE = 1000
#: The smallest batch of candidates screened at once (a screening visit is one batched
#: simulation; tiny batches would pay its overhead per candidate).
MIN_SCREENING_BATCH = 16


def screening_batch(need: int, found: int, drawn: int) -> int:
    """How many candidates to screen next: all ``need`` places' worth first, then the
    places still open divided by the pass rate so far, with a quarter more (at least
    :data:`MIN_SCREENING_BATCH`, at most four trials' worth), so the last batch does not
    simulate a whole trial's worth of candidates to fill a few places. Screening stops
    at the candidate who fills the last place and every candidate's draws are keyed by
    its place in the pool, so the batch sizes change what is simulated, never who is
    randomised."""
    if drawn == 0:
        return need
    rate = max(found / drawn, 1.0 / MAX_SCREENED_PER_PLACE)
    return min(4 * need, max(MIN_SCREENING_BATCH, math.ceil(1.25 * (need - found) / rate)))


def pooled_patients(design, arms, seed: int, screening=None
                    ) -> tuple[dict[str, tuple[pd.DataFrame, np.ndarray]], pd.DataFrame]:
    """A stratified trial's allocation: candidates are drawn from the analysed arms'
    shared population in pool order (streams keyed by :data:`POOL` and the candidate's
    place in the pool, so a patient's covariates, model parameters and measurements do
    not depend on the arm they are allocated to) and screened on the criteria known
    before any visit (failed trials, diagnosis) and, with ``screening`` (a function of
    the candidates' pool ids and their table giving each one's MADRS at the screening
    visit), on the MADRS criterion, until sum(n) pass; those are stratified
    by ``design.stratify`` and allocated by :func:`allocate`, each arm getting its n.
    Returns, per arm, its patients table (``subject`` the index in the arm, ``pool_id``
    the place in the pool, ``stratum``) with the pool ids of its subjects (ascending),
    and the candidates screened out before allocation (``arm`` empty, ``subject`` -1)."""
    sizes = [a.n for a in arms]
    need = sum(sizes)
    population = arms[0].population
    inc = population.inclusion
    parts, found, drawn = [], 0, 0
    while found < need:
        if drawn >= MAX_SCREENED_PER_PLACE * need:
            raise ProtocolError(
                f"design.stratify: {drawn} candidates screened and only {found} of the "
                f"{need} places filled; the population's inclusion criteria admit almost "
                "no one")
        ids = np.arange(drawn, drawn + screening_batch(need, found, drawn))
        batch = draw_patients(population, seed, POOL, ids)
        drawn += ids.size
        ok, why = covariate_eligible(population, batch)
        batch["screening_madrs"] = np.nan
        if screening is not None and ok.any():  # the screening visit, once per candidate
            batch.loc[ok, "screening_madrs"] = screening(ids[ok], batch[ok])
            low = ok & ~(batch["screening_madrs"].to_numpy() >= inc.madrs_min)
            why[low] = f"MADRS below {inc.madrs_min:g} at screening"
            ok &= ~low
        parts.append(batch.assign(_ok=ok, _why=why))
        found += int(ok.sum())
    table = pd.concat(parts, ignore_index=True)
    ok, why = table.pop("_ok").to_numpy(bool), table.pop("_why").to_numpy(object)
    last = int(np.flatnonzero(ok)[need - 1])  # screening stops with the last place filled
    table, ok, why = table.iloc[:last + 1].reset_index(drop=True), ok[:last + 1], why[:last + 1]
    pool = np.flatnonzero(ok)
    strata = stratum_labels(table.iloc[pool], design.stratify, design.stratum_cuts or {})
    ratio = trial_ratio(design, arms)
    block = design.block_size or 2 * sum(ratio)
    g = assay_rng(seed, POOL, 0, "randomisation")
    which = allocate(strata, ratio, sizes, block, g)
    out = {}
    for k, arm in enumerate(arms):
        mine = np.flatnonzero(which == k)
        ids = pool[mine]
        t = table.iloc[ids].reset_index(drop=True)
        t = t.assign(arm=arm.name, subject=np.arange(len(ids)), pool_id=ids,
                     stratum=strata[mine])
        out[arm.name] = (t, ids)
    gone = np.flatnonzero(~ok)
    failed = table.iloc[gone].reset_index(drop=True).assign(
        arm="", subject=-1, pool_id=gone, stratum=None, eligible=False,
        exclusion=why[gone])
    return out, failed
