"""Review of how trials are simulated (ketasim/experiment/trial.py, population.py,
taper.py): randomisation and strata, screening and the CONSORT counts, dropout (MAR and
MNAR hazards, reasons, nothing after a dropout), crossover periods, intercurrent events,
the taper ladder, determinism, and one clear error per bad design field.

Expected values are computed by hand (or scipy.stats) from the documented rules; random
quantities are held to 4 binomial standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from ketasim import simulate
from ketasim.core.streams import assay_rng
from ketasim.experiment.population import draw_patients
from ketasim.experiment.trial import (
    analyse_trial,
    apply_dropout,
    crossover_long,
    dropout_key,
)
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text

REG = load_registry()
DEP = "{at: -60d, stress: major_depression, duration: 150d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
MID = "{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}"
SAL = "{at: 0h, drug: saline, route: iv}"
HOURS_PER_WEEK = 168.0


# --------------------------------------------------------------------------- helpers
def parallel(n=(60, 120), ratio="{placebo: 1, ketamine: 2}",
             dropout="{rate_per_week: 0.15, mechanism: mnar}", seed=7,
             population="{female: 0.6, bipolar: 0.2, failed_trials: 2.5, screening: -7d, "
                        "inclusion: {madrs_min: 22, failed_trials_min: 1, "
                        "diagnoses: [unipolar]}}",
             extra_arm=False):
    """A parallel trial: placebo (midazolam) vs ketamine, MADRS at screening, baseline
    and three visits, CADSS around the infusion."""
    arms = [("placebo", n[0], MID), ("ketamine", n[1], KET)]
    if extra_arm:
        arms.append(("open_label", 15, KET))
    text = f"name: par\nspecies: human\nseed: {seed}\narms:\n"
    for name, k, drug in arms:
        pop = f"    population: {population}\n" if population else ""
        text += (f"  - name: {name}\n    n: {k}\n{pop}    protocol: [{DEP}, {drug}]\n"
                 "    assays:\n      - {assay: madrs, at: [-7d, -1d, 24h, 7d, 21d]}\n"
                 "      - {assay: cadss, at: [40min, 7d]}\n")
    design = "design:\n  control: placebo\n  baseline: -1d\n  primary: 7d\n"
    if extra_arm:
        design += "  arms: [placebo, ketamine]\n"
    if ratio:
        design += f"  randomisation: {ratio}\n"
    if dropout:
        design += f"  dropout: {dropout}\n"
    return text + design


def consort_dict(flow: pd.DataFrame) -> dict:
    return {(s, a, r): int(n) for s, a, r, n in
            flow[["stage", "arm", "reason", "n"]].itertuples(index=False)}


def check_consort_adds_up(flow: pd.DataFrame):
    """screened = randomised + excluded; excluded = sum of its reasons; randomised = sum
    of the arms' allocated; per arm allocated = completed + discontinued and discontinued
    = sum of its reasons."""
    c = flow

    def get(stage, arm="", reason=""):
        return int(c.loc[(c["stage"] == stage) & (c["arm"] == arm)
                         & (c["reason"] == reason), "n"].sum())

    exc = c[c["stage"] == "excluded"]
    if "screened" in set(c["stage"]):
        assert get("screened") == get("randomised") + get("excluded")
        assert get("excluded") == int(exc.loc[exc["reason"] != "", "n"].sum())
    arms = list(dict.fromkeys(c.loc[c["stage"] == "allocated", "arm"]))
    assert get("randomised") == sum(get("allocated", a) for a in arms)
    for a in arms:
        dis = c[(c["stage"] == "discontinued") & (c["arm"] == a)]
        assert get("allocated", a) == get("completed", a) + get("discontinued", a)
        assert get("discontinued", a) == int(dis.loc[dis["reason"] != "", "n"].sum())
    return get


@pytest.fixture(scope="module")
def par():
    sc = load_scenario_text(parallel())
    r = simulate(sc, registry=REG)
    return sc, r


@pytest.fixture(scope="module")
def par_full():
    """The same trial without dropout: the complete ratings dropout is applied to."""
    sc = load_scenario_text(parallel(dropout=None))
    return sc, simulate(sc, registry=REG)


# ----------------------------------------------------------- screening and CONSORT
def test_screening_applies_the_criteria_in_the_documented_order(par):
    sc, r = par
    p = r.patients
    assert len(p) == 180 and p.groupby("arm").size().to_dict() == {"placebo": 60,
                                                                   "ketamine": 120}
    inc = sc.arms[0].population.inclusion
    low = ~(p["screening_madrs"] >= inc.madrs_min)
    few = p["failed_trials"] < inc.failed_trials_min
    dx = ~p["diagnosis"].isin(inc.diagnoses)
    assert (p["eligible"] == ~(low | few | dx)).all()
    expect = np.where(low, "MADRS below 22 at screening",
                      np.where(few, "fewer than 1 failed antidepressant trials",
                               np.where(dx, "diagnosis not in unipolar", "")))
    assert (p["exclusion"].to_numpy() == expect).all()
    assert 0 < (~p["eligible"]).sum() < len(p)
    # the readouts hold exactly the eligible patients, whose own rating at the screening
    # visit is the one they were screened on
    ok = p[p["eligible"]]
    seen = set(zip(r.readouts["arm"], r.readouts["subject"], strict=True))
    assert seen == set(zip(ok["arm"], ok["subject"], strict=True))
    at = r.readouts[(r.readouts["readout"] == "madrs_total")
                    & (r.readouts["time_h"] == -168.0)]
    both = at.merge(ok[["arm", "subject", "screening_madrs"]], on=["arm", "subject"])
    assert len(both) == len(ok) and (both["value"] == both["screening_madrs"]).all()


def test_consort_counts_add_up_and_match_patients_and_disposition(par):
    sc, r = par
    tab = analyse_trial(sc, r.readouts, r.disposition, r.patients)
    get = check_consort_adds_up(tab.consort)
    p, d = r.patients, r.disposition
    assert get("screened") == len(p) == 180
    assert get("randomised") == int(p["eligible"].sum()) == len(d)
    for reason, k in p.loc[~p["eligible"], "exclusion"].value_counts().items():
        assert get("excluded", "", reason) == k
    for arm in ("placebo", "ketamine"):
        mine = d[d["arm"] == arm]
        assert get("allocated", arm) == int(p.loc[p["arm"] == arm, "eligible"].sum())
        assert get("completed", arm) == int(mine["completed"].sum())
        for reason, k in mine.loc[~mine["completed"], "dropout_reason"].value_counts().items():
            assert get("discontinued", arm, reason) == k
    # the disposition holds the randomised patients only, one row each
    ok = p[p["eligible"]]
    assert sorted(zip(d["arm"], d["subject"], strict=True)) == sorted(
        zip(ok["arm"], ok["subject"], strict=True))
    assert (d["completed"] == d["dropout_h"].isna()).all()
    assert (d["completed"] == (d["dropout_reason"] == "")).all()


def test_randomised_shares_follow_the_ratio_within_binomial_error(par):
    """Without strata each arm's n are its candidates; screening passes each with the
    same probability, so the randomised share of ketamine is 2/3 within binomial error."""
    _, r = par
    p = r.patients
    ok = p[p["eligible"]]
    k = int((ok["arm"] == "ketamine").sum())
    share, se = k / len(ok), np.sqrt(2 / 3 * 1 / 3 / len(ok))
    assert abs(share - 2 / 3) < 4 * se
    # the pass rate does not differ between the arms (2 x 2 test)
    tab = pd.crosstab(p["arm"], p["eligible"])
    assert stats.fisher_exact(tab.to_numpy())[1] > 1e-4


def test_population_covariates_follow_their_distributions():
    sc = load_scenario_text(parallel(population="{female: 0.3, bipolar: 0.25, "
                                                "failed_trials: 3.2}"))
    pop = sc.arms[0].population
    n = 3000
    p = draw_patients(pop, 99, "placebo", np.arange(n))
    for share, col, level in ((0.3, "sex", "female"), (0.25, "diagnosis", "bipolar")):
        x = (p[col] == level).mean()
        assert abs(x - share) < 4 * np.sqrt(share * (1 - share) / n)
    ft = p["failed_trials"].to_numpy()
    assert abs(ft.mean() - 3.2) < 4 * np.sqrt(3.2 / n)
    assert stats.chisquare(np.bincount(ft, minlength=12)[:8],
                           n * stats.poisson.pmf(np.arange(8), 3.2)
                           * np.bincount(ft, minlength=12)[:8].sum()
                           / (n * stats.poisson.cdf(7, 3.2)))[1] > 1e-4

    def truncated(dist, x):
        a, b = (dist.min - dist.mean) / dist.sd, (dist.max - dist.mean) / dist.sd
        law = stats.truncnorm(a, b, loc=dist.mean, scale=dist.sd)
        assert x.between(dist.min, dist.max).all()
        assert abs(x.mean() - law.mean()) < 4 * law.std() / np.sqrt(len(x))

    truncated(pop.age, p["age_y"])
    truncated(pop.weight_female, p.loc[p["sex"] == "female", "weight_kg"])
    truncated(pop.weight_male, p.loc[p["sex"] == "male", "weight_kg"])


# ------------------------------------------------------------------------- dropout
def test_dropped_patients_have_no_readouts_from_their_dropout_on_and_none_half_written(par):
    _, r = par
    ro, d = r.readouts, r.disposition
    madrs_readouts = set(ro.loc[ro["assay"] == "madrs", "readout"])
    assert len(madrs_readouts) == 3
    scale_visits = [-168.0, -24.0, 24.0, 168.0, 504.0]
    by = dict(tuple(ro.groupby(["arm", "subject"])))
    assert (~d["completed"]).sum() > 10
    for arm, s, done, last, gone in d[["arm", "subject", "completed", "last_visit_h",
                                       "dropout_h"]].itertuples(index=False):
        mine = by[(arm, s)]
        t = mine["time_h"].to_numpy()
        limit = np.inf if done else gone
        assert (t < limit).all()
        # every visit before the dropout is whole: each of its readouts is there
        for v in [v for v in scale_visits if v < limit]:
            got = set(mine.loc[(mine["time_h"] == v) & (mine["assay"] == "madrs"), "readout"])
            assert got == madrs_readouts, (arm, s, v)
        for v in [v for v in (40 / 60, 168.0) if v < limit]:
            assert ((mine["assay"] == "cadss") & np.isclose(mine["time_h"], v)).sum() == 1
        tot = mine.loc[mine["readout"] == "madrs_total", "time_h"]
        assert tot.max() == last
        if not done:
            # the dropout is at the scale visit after the last one seen
            assert gone == min(v for v in scale_visits if v > last)


def test_dropout_is_the_documented_rule_applied_to_the_complete_ratings(par, par_full):
    """With dropout, the run equals the complete run with the dropout rule applied: the
    uniform of each patient and visit from its keyed stream (``dropout@<visit>h``),
    p = 1 - (1 - rate)^(m * weeks since the previous visit), m = exp(strength * (y/y0 - 1))
    under mnar; reason 'lost to follow-up' for a response (fall >= 50%) at the missed
    visit, else 'lack of efficacy'. The counts of leavers agree with the sum of the
    probabilities within 4 SD."""
    sc, r = par
    _, full = par_full
    rate, strength = 0.15, 2.0
    visits = [24.0, 168.0, 504.0]
    steps = np.diff([-24.0, *visits]) / HOURS_PER_WEEK
    fr = full.readouts
    expected_n, var, observed = 0.0, 0.0, 0
    for arm in ("placebo", "ketamine"):
        y = fr[(fr["arm"] == arm) & (fr["readout"] == "madrs_total")].pivot(
            index="subject", columns="time_h", values="value")
        d = r.disposition[r.disposition["arm"] == arm].set_index("subject")
        assert sorted(d.index) == sorted(y.index)
        for s in y.index:
            y0 = max(y.loc[s, -24.0], 1.0)
            gone, why = np.inf, ""
            for t, w in zip(visits, steps, strict=True):
                m = np.exp(strength * (y.loc[s, t] / y0 - 1.0))
                p = 1.0 - (1.0 - rate) ** (m * w)
                expected_n += p
                var += p * (1 - p)
                u = assay_rng(sc.seed, arm, int(s), dropout_key(t)).random()
                if u < p:
                    gone = t
                    why = ("lost to follow-up" if y0 - y.loc[s, t] >= 0.5 * y0
                           else "lack of efficacy")
                    break
            observed += np.isfinite(gone)
            row = d.loc[s]
            if np.isfinite(gone):
                assert row["dropout_h"] == gone and row["dropout_reason"] == why
            else:
                assert bool(row["completed"])
    assert abs(observed - expected_n) < 4 * np.sqrt(var)
    # and dropout applied to the complete run's readouts gives the run's readouts
    # (apply_dropout lists every candidate; the runner then leaves out the screen
    # failures, who were never randomised)
    again, disp = apply_dropout(sc, fr, sc.seed)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), r.readouts)
    ok = r.patients.loc[r.patients["eligible"], ["arm", "subject"]]
    disp = disp.merge(ok, on=["arm", "subject"])
    pd.testing.assert_frame_equal(disp, r.disposition)


def _synthetic(n: int, factors=(1.0, 0.5, 1.5)) -> pd.DataFrame:
    """Ratings of n patients per arm: baseline 30, then the baseline times one of
    ``factors`` (by subject modulo 3) at every later visit."""
    subj = np.arange(n)
    rows = []
    for arm in ("placebo", "ketamine"):
        for t in (-168.0, -24.0, 24.0, 168.0, 504.0):
            f = np.where(t < 0, 1.0, np.asarray(factors)[subj % 3])
            for ro, v in (("madrs_total", 30.0 * f), ("madrs_suicide_item", 2.0 + 0 * f)):
                rows.append(pd.DataFrame({"arm": arm, "subject": subj, "assay": "madrs",
                                          "readout": ro, "time_h": t, "value": v,
                                          "unit": "points"}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("mechanism", ["mar", "mnar"])
def test_per_visit_dropout_hazards_match_the_specified_rate(mechanism):
    """3000 synthetic patients per arm: at each visit the share of the patients still in
    who leave is 1 - (1 - 0.2)^(m * weeks), m = 1 (mar) or exp(2 (y/y0 - 1)) (mnar), within
    4 binomial SE; mnar: the improved leave less often, the worsened more often."""
    n = 3000
    dropout = "{rate_per_week: 0.2, mechanism: " + mechanism + "}"
    sc = load_scenario_text(parallel(n=(n, n), ratio=None, dropout=dropout,
                                     population=None))
    _, disp = apply_dropout(sc, _synthetic(n), 5)
    visits = [24.0, 168.0, 504.0]
    steps = np.diff([-24.0, *visits]) / HOURS_PER_WEEK
    gone_share = {}
    for g, f in enumerate((1.0, 0.5, 1.5)):
        m = 1.0 if mechanism == "mar" else np.exp(2.0 * (f - 1.0))
        d = disp[disp["subject"] % 3 == g]
        at_risk = len(d)
        for t, w in zip(visits, steps, strict=True):
            p = 1.0 - 0.8 ** (m * w)
            k = int((d["dropout_h"] == t).sum())
            assert abs(k / at_risk - p) < 4 * np.sqrt(p * (1 - p) / at_risk), (g, t)
            at_risk -= k
        gone_share[f] = (~d["completed"]).mean()
        reasons = set(d.loc[~d["completed"], "dropout_reason"])
        if mechanism == "mar":
            assert reasons == {"lost to follow-up"}
        else:  # a 50% fall is a response at the missed visit
            assert reasons == ({"lost to follow-up"} if f == 0.5 else {"lack of efficacy"})
    if mechanism == "mnar":
        assert gone_share[0.5] < gone_share[1.0] < gone_share[1.5]
    else:
        assert max(gone_share.values()) - min(gone_share.values()) < 0.06


def test_simulated_mar_completion_matches_the_rate_within_binomial_error():
    sc = load_scenario_text(parallel(n=(200, 200), ratio=None, population=None,
                                     dropout="{rate_per_week: 0.1, mechanism: mar}"))
    r = simulate(sc, registry=REG)
    weeks = (504.0 + 24.0) / HOURS_PER_WEEK
    p_complete = 0.9 ** weeks
    for arm, d in r.disposition.groupby("arm"):
        assert len(d) == 200
        share = d["completed"].mean()
        assert abs(share - p_complete) < 4 * np.sqrt(p_complete * (1 - p_complete) / 200)
        assert set(d.loc[~d["completed"], "dropout_reason"]) == {"lost to follow-up"}


# --------------------------------------------------------------------- determinism
def test_same_seed_same_trial_chunk_size_irrelevant_other_seed_differs(par):
    sc, r = par
    again = simulate(sc, registry=REG, chunk_subjects=7)
    pd.testing.assert_frame_equal(again.readouts, r.readouts)
    pd.testing.assert_frame_equal(again.patients, r.patients)
    pd.testing.assert_frame_equal(again.disposition, r.disposition)
    other = simulate(sc, seed=sc.seed + 1, registry=REG)
    assert not other.patients[["sex", "age_y"]].equals(r.patients[["sex", "age_y"]])
    assert not other.disposition["completed"].equals(r.disposition["completed"]) or \
        len(other.disposition) != len(r.disposition)


def test_an_arms_patients_and_dropouts_do_not_depend_on_other_arms_or_on_n(par):
    """Keyed streams: a bigger arm keeps its first patients, and an extra arm outside
    the analysis changes nothing in the analysed arms."""
    _, r = par
    bigger = simulate(load_scenario_text(parallel(n=(62, 124), extra_arm=True)),
                      registry=REG)
    for arm, n in (("placebo", 60), ("ketamine", 120)):
        a = r.patients[r.patients["arm"] == arm].reset_index(drop=True)
        b = bigger.patients[bigger.patients["arm"] == arm].iloc[:n].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        da = r.disposition[r.disposition["arm"] == arm].reset_index(drop=True)
        db = bigger.disposition[(bigger.disposition["arm"] == arm)
                                & (bigger.disposition["subject"] < n)].reset_index(drop=True)
        pd.testing.assert_frame_equal(da, db)
    assert "open_label" not in set(bigger.disposition["arm"])
    # the CONSORT flow counts the analysed arms' candidates only
    sc_b = load_scenario_text(parallel(n=(62, 124), extra_arm=True))
    tab = analyse_trial(sc_b, bigger.readouts, bigger.disposition, bigger.patients)
    get = check_consort_adds_up(tab.consort)
    analysed = bigger.patients[bigger.patients["arm"] != "open_label"]
    assert get("screened") == len(analysed) == 186
    assert get("randomised") == int(analysed["eligible"].sum())


# ----------------------------------------------------------- stratified randomisation
STRAT_POP = ("{female: 0.6, bipolar: 0.3, failed_trials: 2.5, screening: SCR, "
             "inclusion: {madrs_min: 20, failed_trials_min: 1, diagnoses: [unipolar]}}")


def stratified(n=(20, 40), ratio="{placebo: 1, ketamine: 2}", screening="-7d",
               block=6):
    pop = STRAT_POP.replace("SCR", screening)
    return (parallel(n=n, ratio=ratio, population=pop,
                     dropout="{rate_per_week: 0.1, mechanism: mar}")
            + "  stratify: [sex, failed_trials]\n  stratum_cuts: {failed_trials: [3]}\n"
            + f"  block_size: {block}\n")


@pytest.fixture(scope="module")
def strat():
    sc = load_scenario_text(stratified())
    return sc, simulate(sc, registry=REG)


def test_stratified_allocation_is_exact_and_balanced_within_strata(strat):
    sc, r = strat
    p = r.patients
    allocated = p[p["arm"] != ""]
    assert allocated.groupby("arm").size().to_dict() == {"placebo": 20, "ketamine": 40}
    assert allocated["eligible"].all()
    # each stratum label is the patient's own covariates
    lab = ("sex=" + allocated["sex"] + "|failed_trials"
           + np.where(allocated["failed_trials"] >= 3, ">=3", "<3"))
    assert (allocated["stratum"] == lab).all()
    # every stratum holds the arms within one patient of its 1:2 share
    counts = pd.crosstab(allocated["stratum"], allocated["arm"])
    size = counts.sum(axis=1)
    assert ((counts["ketamine"] - size * 2 / 3).abs() < 1).all()
    assert ((counts["placebo"] - size / 3).abs() < 1).all()
    # permuted blocks of 6 in enrolment (pool) order: each complete block of a stratum
    # holds 2 placebo and 4 ketamine patients
    for _, g in allocated.sort_values("pool_id").groupby("stratum"):
        arms = g["arm"].to_numpy()
        for b0 in range(0, len(arms) // 6 * 6, 6):
            assert (arms[b0:b0 + 6] == "placebo").sum() == 2
    # strata.csv is that table
    tab = analyse_trial(sc, r.readouts, r.disposition, r.patients)
    st = tab.strata.set_index(["stratum", "arm"])
    for (stratum, arm), k in counts.stack().items():
        assert st.loc[(stratum, arm), "allocated"] == k
        assert st.loc[(stratum, arm), "randomised"] == k


def test_stratified_screening_and_consort_add_up(strat):
    sc, r = strat
    p = r.patients
    # candidates screened in pool order, up to the one filling the last place
    assert sorted(p["pool_id"]) == list(range(len(p)))
    last = p.loc[p["pool_id"].idxmax()]
    assert bool(last["eligible"]) and last["arm"] != ""
    out = p[p["arm"] == ""]
    assert (~out["eligible"]).all() and (out["subject"] == -1).all()
    # covariate criteria first (no screening visit simulated for them), then the MADRS
    covariate = out["exclusion"].str.startswith(("fewer", "diagnosis"))
    assert out.loc[covariate, "screening_madrs"].isna().all()
    assert (out.loc[~covariate, "screening_madrs"] < 20).all()
    tab = analyse_trial(sc, r.readouts, r.disposition, r.patients)
    get = check_consort_adds_up(tab.consort)
    assert get("screened") == len(p) and get("randomised") == 60
    assert get("excluded") == len(out)
    assert get("allocated", "placebo") == 20 and get("allocated", "ketamine") == 40
    again = simulate(sc, registry=REG, chunk_subjects=5)
    pd.testing.assert_frame_equal(again.patients, r.patients)
    pd.testing.assert_frame_equal(again.readouts, r.readouts)
    pd.testing.assert_frame_equal(again.disposition, r.disposition)


def _one_problem(text, where):
    with pytest.raises(ScenarioError, match=where) as err:
        load_scenario_text(text)
    msg = str(err.value)
    assert "\n" not in msg and "expected" in msg and "more problem" not in msg
    return msg


def test_stratified_screening_visit_must_come_before_treatment():
    """The pool is screened once, before allocation: a screening visit after the first
    dose of any arm of the design would read a treated score (README: 'the visit comes
    before any treatment'). One error naming the population's screening and the dose."""
    text = stratified(n=(20, 20), ratio="{placebo: 1, ketamine: 1}", screening="24h",
                      block=4)
    msg = _one_problem(text, r"arms\[0\]\.population\.screening")
    assert "first dose at 0h" in msg
    # placebo dosed after the visit: the ketamine arm's dose (0h) still precedes it
    late = text.replace("{at: 0h, drug: midazolam", "{at: 48h, drug: midazolam")
    msg = _one_problem(late, r"arms\[1\]\.population\.screening")
    assert "first dose at 0h" in msg
    # at the dose itself is not before it; just before it is fine
    _one_problem(stratified(screening="0h").replace("[-7d, -1d,", "[-7d, -1d, 0h,"),
                 r"arms\[0\]\.population\.screening")
    load_scenario_text(stratified(screening="-1d"))


def test_screening_after_the_first_dose_is_an_error():
    """A parallel trial: every arm's screening visit before its own first dose, else one
    error naming the arm's population.screening (a treated score would decide inclusion
    and the pass rate would differ by arm)."""
    text = parallel(population="{screening: 24h, inclusion: {madrs_min: 22}}")
    msg = _one_problem(text, r"arms\[0\]\.population\.screening")
    assert "first dose at 0h" in msg
    # the population on the ketamine arm only: that arm is named
    one = parallel(population=None).replace(
        "    n: 120\n", "    n: 120\n    population: {screening: 24h}\n", 1)
    _one_problem(one, r"arms\[1\]\.population\.screening")
    # a population without a screening visit, or one before the dose, loads
    load_scenario_text(parallel(population="{female: 0.5}"))
    load_scenario_text(parallel(population="{screening: -1d}"))


@pytest.fixture(scope="module")
def strat_no_madrs_min():
    """Stratified, with a screening visit but no MADRS criterion."""
    text = stratified(n=(10, 20)).replace("madrs_min: 20, ", "")
    sc = load_scenario_text(text)
    assert sc.arms[0].population.inclusion.madrs_min is None
    return sc, simulate(sc, registry=REG)


def test_screening_madrs_is_recorded_without_a_madrs_criterion(strat_no_madrs_min):
    """patients.csv records the MADRS at the screening visit whether or not a criterion
    reads it, stratified or not: each randomised patient's own rating there."""
    for sc, r in (strat_no_madrs_min,
                  (None, simulate(load_scenario_text(parallel(
                      n=(10, 20), population="{screening: -7d}")), registry=REG))):
        p = r.patients
        ok = p[p["arm"] != ""]
        assert len(ok) == 30 and ok["screening_madrs"].notna().all()
        at = r.readouts[(r.readouts["readout"] == "madrs_total")
                        & (r.readouts["time_h"] == -168.0)]
        both = ok.merge(at[["arm", "subject", "value"]], on=["arm", "subject"])
        assert len(both) == len(ok) and (both["value"] == both["screening_madrs"]).all()
    # covariate screen failures of the pool: no screening visit simulated for them
    p = strat_no_madrs_min[1].patients
    out = p[p["arm"] == ""]
    assert len(out) > 0 and out["screening_madrs"].isna().all()


# ----------------------------------------------------------------------- crossover
def crossover(periods=("0h", "10d", "20d"), n=(14, 18), extra=""):
    """ABB / BAA: ketamine (K) against saline (S) over three periods."""
    def dose(drug, at):
        return (f"{{at: {at}, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}}"
                if drug == "K" else f"{{at: {at}, drug: saline, route: iv}}")
    visits = sorted({float(p.rstrip("dh")) * (24 if p.endswith("d") else 1) + o
                     for p in periods for o in (-24.0, 24.0)})
    vis = ", ".join(f"{v:g}h" for v in visits)
    text = "name: cx\nspecies: human\nseed: 21\narms:\n"
    seqs = {"abb": "KSS", "baa": "SKK"}
    for (name, seq), k in zip(seqs.items(), n, strict=True):
        prot = ", ".join([DEP] + [dose(d, p) for d, p in zip(seq, periods, strict=True)])
        text += (f"  - name: {name}\n    n: {k}\n"
                 "    population: {screening: -7d, inclusion: {madrs_min: 20}}\n"
                 f"    protocol: [{prot}]\n"
                 f"    assays: [{{assay: madrs, at: [-7d, {vis}]}}]\n")
    lab = {"K": "ketamine", "S": "placebo"}
    tr = ", ".join(f"{name}: [{', '.join(lab[c] for c in seq)}]" for name, seq in seqs.items())
    return (text + "design:\n  control: placebo\n  baseline: -1d\n  primary: 24h\n"
            f"  crossover:\n    periods: [{', '.join(periods)}]\n    treatments: {{{tr}}}\n"
            + extra)


@pytest.fixture(scope="module")
def cx():
    sc = load_scenario_text(crossover())
    return sc, simulate(sc, registry=REG)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_crossover_periods_sequences_and_period_effect(cx):
    sc, r = cx
    long = crossover_long(sc, r.readouts)
    starts = [0.0, 240.0, 480.0]
    ro = r.readouts[r.readouts["readout"] == "madrs_total"]
    y = {arm: ro[ro["arm"] == arm].pivot(index="subject", columns="time_h", values="value")
         for arm in ("abb", "baa")}
    seq = {"abb": ["ketamine", "placebo", "placebo"], "baa": ["placebo", "ketamine",
                                                            "ketamine"]}
    ok = r.patients[r.patients["eligible"]]
    assert len(long) == 3 * len(ok)
    for row in long.itertuples(index=False):
        arm, s = row.patient.split("#")
        s = int(s)
        start = starts[row.period - 1]
        assert row.treatment == seq[arm][row.period - 1]
        assert row.baseline == y[arm].loc[s, start - 24.0]
        assert row.score == y[arm].loc[s, start + 24.0]
    # the contrast is from change ~ treatment + period + (1 | patient) (REML)
    tab = analyse_trial(sc, r.readouts, r.disposition, r.patients)
    con = tab.trial[tab.trial["kind"] == "contrast"].iloc[0]
    data = long.dropna(subset=["change"])
    fit = smf.mixedlm("change ~ C(treatment, Treatment(reference='placebo')) + C(period)",
                      data, groups=data["patient"]).fit(reml=True)
    name = "C(treatment, Treatment(reference='placebo'))[T.ketamine]"
    assert con["estimate"] == pytest.approx(fit.params[name], rel=1e-8)
    assert con["se"] == pytest.approx(fit.bse[name], rel=1e-8)
    # without the period term the estimate would differ (the design is unbalanced in
    # period: ketamine is in period 1 for abb and in periods 2 and 3 for baa)
    nop = smf.mixedlm("change ~ C(treatment, Treatment(reference='placebo'))", data,
                      groups=data["patient"]).fit(reml=True)
    assert abs(nop.params[name] - fit.params[name]) > 1e-6
    # observed rows: one per treatment and period, at the period's primary visit
    obs = tab.trial[tab.trial["kind"] == "observed"]
    for (t, k), g in data.groupby(["treatment", "period"]):
        o = obs[(obs["arm"] == t) & (obs["visit_h"] == starts[k - 1] + 24.0)]
        assert len(o) == 1 and o["n"].iloc[0] == len(g)
        assert o["estimate"].iloc[0] == pytest.approx(g["change"].mean())
    get = check_consort_adds_up(tab.consort)
    assert get("screened") == 32 and get("randomised") == len(ok)


def test_crossover_zero_washout_is_accepted_and_a_negative_one_named():
    load_scenario_text(crossover(periods=("0h", "2d", "4d")))  # washout exactly 0
    with pytest.raises(ScenarioError, match=r"design\.crossover\.periods\[2\]") as err:
        # period 3's baseline (3d - 1d = 2d) before period 2's primary visit (2d + 1d)
        load_scenario_text(crossover(periods=("0h", "2d", "3d")))
    assert "washout" in str(err.value) and "more problem" not in str(err.value)


@pytest.mark.parametrize("ratio,where", [
    ("{abb: 1, zz: 1}", r"design\.randomisation\.zz"),
    ("{abb: 1, baa: 3}", r"design\.randomisation\.abb"),
    ("{abb: 1}", r"design\.randomisation\b")], ids=["unknown-arm", "n-disagree", "missing"])
def test_crossover_randomisation_is_checked(ratio, where):
    _one_problem(crossover(n=(16, 16), extra=f"  randomisation: {ratio}\n"), where)
    load_scenario_text(crossover(n=(16, 16), extra="  randomisation: {abb: 1, baa: 1}\n"))


# ---------------------------------------------------------------- intercurrent events
def test_intercurrent_events_are_the_first_crossings_and_counted_in_consort():
    from pathlib import Path
    text = (Path(__file__).parents[1] / "docs" / "examples"
            / "repeated_infusions_intercurrent.yaml").read_text()
    text = text.replace("n: 60", "n: 40") + "  dropout: {rate_per_week: 0.15, mechanism: mnar}\n"
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    ro = r.readouts
    first = {}
    for e in sc.design.intercurrent:  # in the design's order: a tie goes to the first
        hit = ro[(ro["readout"] == e.readout) & (ro["time_h"] >= e.after)
                 & (ro["value"] >= e.at_or_above)]
        for (arm, s), g in hit.groupby(["arm", "subject"]):
            t = g["time_h"].min()
            if (arm, s) not in first or t < first[(arm, s)][1]:
                first[(arm, s)] = (e.name, t)
    got = {(a, s): (e, t) for a, s, e, t in r.intercurrent.itertuples(index=False)}
    assert got == first and len(got) > 0
    randomised = set(zip(r.disposition["arm"], r.disposition["subject"], strict=True))
    assert set(got) <= randomised
    d = r.disposition.set_index(["arm", "subject"])
    for key, (_, t) in got.items():  # no event at or after the patient's dropout
        assert not t >= d.loc[key, "dropout_h"]
    tab = analyse_trial(sc, r.readouts, r.disposition, r.patients, r.intercurrent)
    check_consort_adds_up(tab.consort)
    c = consort_dict(tab.consort)
    counts = r.intercurrent.groupby(["arm", "event"]).size()
    for (arm, event), k in counts.items():
        assert c[("discontinued intervention", arm, event)] == k
    again = simulate(sc, registry=REG, chunk_subjects=6)
    pd.testing.assert_frame_equal(again.intercurrent, r.intercurrent)
    pd.testing.assert_frame_equal(again.readouts, r.readouts)


# -------------------------------------------------------------------------- taper
TAPER = """\
name: taper
species: human
seed: 11
arms:
  - name: ketamine
    n: 16
    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
      - {at: 0d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min, every: 3.5d, doses: 4}
    assays:
      - {assay: madrs, at: [-1d, 13.5d, 16.5d, 23.5d, 30.5d, 37.5d, 44.5d, 51.5d, 58.5d]}
    taper:
      dose: {at: 17.5d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
      intervals: [7d, 14d, 21d]
      until: 60d
      readout: madrs_total
      well_at_or_below: -0.5
      relative_to: -1d
"""


@pytest.mark.parametrize("review", [None, 14.0])
def test_taper_schedule_follows_each_patients_ratings(review):
    """Recompute each patient's doses from their own final ratings: first dose at 17.5 d
    with the 7-d interval; at each later dose the latest rating strictly before it
    (fractional change from -1 d <= -0.5: well) moves one rung up, else one down (only
    at doses >= ``review`` after the last review); no dose after 60 d."""
    text = TAPER + (f"      review: {review:g}d\n" if review else "")
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    ro = r.readouts
    m = ro[ro["readout"] == "madrs_total"].pivot(index="subject", columns="time_h",
                                                 values="value")
    rungs, until, rev = [7.0, 14.0, 21.0], 60 * 24.0, (review or 0.0) * 24
    tap = ro[ro["assay"] == "taper"]
    for s in range(16):
        y0 = m.loc[s, -24.0]

        def well(t, s=s, y0=y0):
            before = [v for v in m.columns if v < t - 1e-9]
            return (m.loc[s, before[-1]] - y0) / y0 <= -0.5

        t = last = 17.5 * 24
        rung, want = 0, [(t, 7.0)]
        while t + rungs[rung] * 24 <= until + 1e-9:
            t += rungs[rung] * 24
            if t - last >= rev - 1e-9:
                rung = min(rung + 1, 2) if well(t) else max(rung - 1, 0)
                last = t
            want.append((t, rungs[rung]))
        mine = tap[tap["subject"] == s]
        got = list(zip(mine["time_h"], mine["value"], strict=True))
        assert np.allclose(np.array(got), np.array(want)), s
    assert set(tap["value"]) >= {7.0, 14.0}  # the ladder is climbed by some
    # the same rows whatever the chunk size (their order: see the next test)
    again = simulate(sc, registry=REG, chunk_subjects=5)
    key = ["arm", "subject", "assay", "readout", "time_h"]
    pd.testing.assert_frame_equal(again.readouts.sort_values(key).reset_index(drop=True),
                                  r.readouts.sort_values(key).reset_index(drop=True))


def test_taper_readouts_are_identical_row_for_row_whatever_the_chunk_size():
    """The taper's dose rows follow the rating assay's rows of the whole arm, subject by
    subject, however the arm is chunked (docs/design.md: 'Chunked and unchunked runs are
    identical')."""
    sc = load_scenario_text(TAPER)
    a = simulate(sc, registry=REG)
    b = simulate(sc, registry=REG, chunk_subjects=5)
    pd.testing.assert_frame_equal(a.readouts, b.readouts)
    tap = (a.readouts["assay"] == "taper").to_numpy()
    assert tap.any() and not tap[:np.argmax(tap)].any() and tap[np.argmax(tap):].all()
    assert a.readouts.loc[tap, "subject"].is_monotonic_increasing


# --------------------------------------------------------------------- bad designs
def _one_arm_population(population):
    """The parallel trial with the population on the control arm only (one problem)."""
    text = parallel(population=None)
    return text.replace("    n: 60\n", f"    n: 60\n    population: {population}\n", 1)


BAD = [
    (parallel(n=(60, 100)), r"design\.randomisation\.placebo"),
    (parallel(ratio="{placebo: 1}"), r"design\.randomisation"),
    (parallel(ratio="{placebo: 1, ketamine: 2, sham: 1}"), r"design\.randomisation\.sham"),
    (parallel(ratio="{placebo: 0, ketamine: 2}"), r"design\.randomisation\.placebo"),
    (parallel().replace("  primary: 7d\n", "  primary: 7d\n  scale: hamd_total\n"),
     r"design\.scale"),
    (parallel().replace("  primary: 7d\n", "  primary: 7d\n  scale: bprs_positive\n"),
     r"design\.scale"),
    (parallel().replace("primary: 7d", "primary: 30d"), r"design\.primary"),
    (parallel().replace("primary: 7d", "primary: 400d"), r"design\.primary"),
    (parallel().replace("baseline: -1d", "baseline: -2d"), r"design\.baseline"),
    (parallel().replace("primary: 7d", "primary: -7d"), r"design\.primary"),
    (parallel(dropout="{rate_per_week: 1.0}"), r"design\.dropout\.rate_per_week"),
    (parallel(dropout="{rate_per_week: -0.1}"), r"design\.dropout\.rate_per_week"),
    (parallel(dropout="{rate_per_week: 0.1, mechanism: mcar}"), r"design\.dropout\.mechanism"),
    (stratified().replace("stratify: [sex, failed_trials]", "stratify: [sex, race]"),
     r"design\.stratify\[1\]"),
    (stratified().replace("  stratum_cuts: {failed_trials: [3]}\n", ""),
     r"design\.stratum_cuts"),
    (stratified().replace("{failed_trials: [3]}", "{failed_trials: [3], age_y: [40]}"),
     r"design\.stratum_cuts\.age_y"),
    (stratified().replace("block_size: 6", "block_size: 4"), r"design\.block_size"),
    (stratified(n=(20, 41)), r"design\.randomisation\.placebo"),
    (_one_arm_population("{screening: -7d, inclusion: {hamd_min: 18}}"),
     r"arms\[0\]\.population\.inclusion\.hamd_min"),
    (_one_arm_population("{screening: -5d, inclusion: {madrs_min: 20}}"),
     r"arms\[0\]\.population\.screening"),
    (_one_arm_population("{inclusion: {madrs_min: 20}}"), r"arms\[0\]\.population\.screening"),
]


@pytest.mark.parametrize("text,where", BAD, ids=[
    "ratio-disagrees-with-n", "ratio-missing-an-arm", "ratio-unknown-arm", "ratio-zero",
    "unknown-scale", "scale-not-measured", "primary-not-a-visit", "primary-outside-the-run",
    "baseline-not-a-visit", "primary-before-baseline", "dropout-rate-1", "dropout-rate-neg",
    "dropout-mechanism", "unknown-stratum-factor", "numeric-factor-without-cuts",
    "cuts-of-a-factor-not-stratified", "block-not-multiple", "strata-ratio-inexact",
    "inclusion-unknown-scale", "screening-not-a-visit", "screening-missing"])
def test_bad_design_is_one_error_naming_the_field(text, where):
    with pytest.raises(ScenarioError, match=where) as err:
        load_scenario_text(text)
    msg = str(err.value)
    assert "\n" not in msg and "expected" in msg and "more problem" not in msg
