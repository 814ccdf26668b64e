"""Review: regimens that follow each patient's own ratings, checked against answers
computed independently of the package's own bookkeeping.

* the needs-based taper (``taper:``): each patient's doses recomputed by hand from their
  MADRS readouts (a rating exactly at the threshold, the top rung, visits sparser than
  the doses, a visit at a dose time, doses after the last visit, screen failures), and
  the ratings of a taper arm against the same doses written as a fixed protocol;
* intercurrent events: the first qualifying visit recomputed from a run without the
  events, every row up to the event unchanged, and the rows after it equal to those of
  a run whose protocol simply lacks the withheld doses and gives the rescue;
* dropout: the documented per-visit hazard on a large synthetic trial, rows removed from
  the dropout visit on only;
* relapse: durations and censoring recomputed from the readouts, Kaplan-Meier by hand;
* bad input: one error naming the field, nothing written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim import simulate
from ketasim.cli import app
from ketasim.core.streams import assay_rng
from ketasim.experiment.trial import analyse_trial, apply_dropout, dropout_key
from ketasim.params import load_registry
from ketasim.scenario import ScenarioError, load_scenario_text
from ketasim.signaling.protocol import ProtocolError

REG = load_registry()
KEY = ["arm", "subject", "assay", "readout", "time_h"]


def _series(readouts: pd.DataFrame) -> pd.Series:
    return readouts.set_index(KEY)["value"].sort_index()


def _serial(fn, args_list, done=None):
    """A distributed run's spans, computed here one after the other."""
    out = []
    for k, args in enumerate(args_list):
        out.append(fn(*args))
        if done is not None:
            done(k)
    return out


# =========================================================================== taper
# induction twice weekly, then a taper from 10.5 d on a 7-d grid up to 60 d (last grid
# time 59.5 d, after the last visit at 44.5 d). The visits are sparser than the doses
# (nothing between 24.5 d and 37.5 d), and the visit at 24.5 d falls on a grid time
# (10.5 + 14 d): a dose there must not read it
TAPER = """\
name: rtaper
species: human
seed: 21
arms:
  - name: ketamine
    n: 12
POPULATION    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
      - {at: 0d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min, every: 3.5d, doses: 3}
    assays:
      - {assay: madrs, at: [-7d, -1d, 6.5d, 13.5d, 16.5d, 24.5d, 37.5d, 44.5d]}
    taper:
      dose: {at: 10.5d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
      intervals: [7d, 14d, 21d]
      until: 60d
      readout: madrs_total
      well_at_or_below: 17
"""
FIRST_H, RUNGS_D, UNTIL_H, THRESHOLD = 10.5 * 24, (7.0, 14.0, 21.0), 60 * 24.0, 17.0


def _taper_text(population: str = "", review: str = "") -> str:
    text = TAPER.replace("POPULATION", f"    population: {population}\n" if population else "")
    return text + (f"      review: {review}\n" if review else "")


def _hand_schedule(ratings: pd.Series, review_h: float = 0.0):
    """One patient's taper doses from their ratings (time_h -> MADRS total), by the
    documented rule: the first dose on the first rung; at each later dose the latest
    rating strictly before it, <= the threshold: one rung up, else one down (only at doses
    ``review_h`` or more after the last review); no dose after ``until``. Returns the
    (time_h, interval_d) pairs and how many decisions read a rating exactly at the
    threshold, moved to the top rung, moved down."""
    visits = sorted(ratings.index)
    t = last = FIRST_H
    k = 0
    out = [(t, RUNGS_D[0])]
    at_threshold = top = down = 0
    while t + RUNGS_D[k] * 24 <= UNTIL_H + 1e-9:
        t += RUNGS_D[k] * 24
        if t - last >= review_h - 1e-9:
            y = ratings[[v for v in visits if v < t][-1]]
            at_threshold += int(y == THRESHOLD)
            if y <= THRESHOLD:
                k = min(k + 1, len(RUNGS_D) - 1)
                top += int(k == len(RUNGS_D) - 1)
            else:
                down += int(k > 0)
                k = max(k - 1, 0)
            last = t
        out.append((t, RUNGS_D[k]))
    return out, at_threshold, top, down


def _check_taper_by_hand(readouts: pd.DataFrame, subjects, review_h: float = 0.0):
    m = readouts[readouts["readout"] == "madrs_total"].pivot(
        index="subject", columns="time_h", values="value")
    tap = readouts[readouts["assay"] == "taper"]
    assert set(tap["readout"]) == {"dose_interval"} and set(tap["unit"]) == {"d"}
    counts = np.zeros(3, int)
    for s in subjects:
        want, *c = _hand_schedule(m.loc[s], review_h)
        counts += c
        mine = tap[tap["subject"] == s]
        got = list(zip(mine["time_h"].to_numpy(), mine["value"].to_numpy(), strict=True))
        assert len(got) == len(want), s
        assert np.allclose(np.array(got, float), np.array(want, float), rtol=0, atol=1e-9), s
    return counts


@pytest.fixture(scope="module")
def taper_run():
    sc = load_scenario_text(_taper_text())
    return sc, simulate(sc, registry=REG)


def test_each_patients_taper_is_the_documented_rule_on_their_own_ratings(taper_run):
    _, r = taper_run
    at_threshold, top, down = _check_taper_by_hand(r.readouts, range(12))
    # the boundaries were exercised: ratings exactly at the threshold (well), patients
    # reaching the top rung, and moves down the ladder
    assert at_threshold >= 2 and top >= 2 and down >= 2
    tap = r.readouts[r.readouts["assay"] == "taper"]
    assert tap["time_h"].max() == pytest.approx(59.5 * 24)  # the grid's last, <= until
    assert (tap.groupby("subject")["time_h"].min() == FIRST_H).all()
    assert len({tuple(g) for _, g in tap.groupby("subject")["time_h"]}) >= 3


def test_a_reviewed_taper_is_the_documented_rule_on_the_patients_ratings():
    r = simulate(load_scenario_text(_taper_text(review="14d")), registry=REG)
    _, top, down = _check_taper_by_hand(r.readouts, range(12), review_h=14 * 24.0)
    assert top + down >= 2  # decisions were taken


def test_the_taper_does_not_depend_on_chunks_or_where_spans_run(taper_run):
    sc, r = taper_run
    whole = _series(r.readouts)
    for kw in ({"chunk_subjects": 1}, {"chunk_subjects": 5, "map_tasks": _serial}):
        other = simulate(sc, registry=REG, **kw)
        pd.testing.assert_frame_equal(other.readouts, r.readouts)
        assert np.array_equal(_series(other.readouts).to_numpy(), whole.to_numpy())


def test_screen_failures_have_no_taper_and_the_others_keep_their_own_schedule():
    pop = "{screening: -7d, inclusion: {madrs_min: 30}}"
    r = simulate(load_scenario_text(_taper_text(pop)), registry=REG)
    everyone = simulate(load_scenario_text(_taper_text("{screening: -7d}")), registry=REG)
    p = r.patients.set_index("subject")
    out = p.index[~p["eligible"]].to_numpy()
    kept = p.index[p["eligible"]].to_numpy()
    assert 0 < len(out) < 12
    # the screen failures were rated below 30 at screening, the others not
    m = everyone.readouts[everyone.readouts["readout"] == "madrs_total"]
    screening = m[m["time_h"] == -7 * 24.0].set_index("subject")["value"]
    assert (screening[out] < 30).all() and (screening[kept] >= 30).all()
    assert not r.readouts["subject"].isin(out).any()  # no rating, no dose
    _check_taper_by_hand(r.readouts, kept)
    # screening changes nobody's numbers: the patients let in are rated and dosed as in
    # the run that lets everyone in
    mine = everyone.readouts[everyone.readouts["subject"].isin(kept)]
    pd.testing.assert_series_equal(_series(r.readouts), _series(mine))


def test_a_rating_assay_split_over_two_entries_gives_the_same_taper(taper_run):
    """The MADRS visits written as two assay entries are the same ratings; the taper reads
    both (contrast with the intercurrent events' trigger assay below)."""
    _, r = taper_run
    text = _taper_text().replace(
        "      - {assay: madrs, at: [-7d, -1d, 6.5d, 13.5d, 16.5d, 24.5d, 37.5d, 44.5d]}\n",
        "      - {assay: madrs, at: [-7d, -1d, 6.5d, 13.5d]}\n"
        "      - {assay: madrs, at: [16.5d, 24.5d, 37.5d, 44.5d]}\n")
    two = simulate(load_scenario_text(text), registry=REG)
    pd.testing.assert_series_equal(_series(two.readouts), _series(r.readouts))


def _fixed_protocol_arm(text: str, doses: str) -> str:
    """The taper arm with its taper replaced by the given protocol doses."""
    return text.split("    taper:")[0].replace("    assays:", doses + "    assays:")


TAPER_ONLY = """\
name: rtaper_only
species: human
seed: 5
arms:
  - name: ketamine
    n: 8
    protocol:
      - {at: -60d, stress: major_depression, duration: 150d}
    assays:
      - {assay: madrs, at: [-1d, 6.5d, 13.5d, 20.5d, 27.5d]}
    taper:
      dose: {at: 0d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}
      intervals: [7d, 14d]
      until: 28d
      readout: madrs_total
      well_at_or_below: 0
"""


def test_a_taper_after_induction_rates_patients_as_its_doses_written_out():
    """Nobody is ever well (MADRS <= 0): every grid dose is given, so the taper arm is the
    fixed protocol with a dose every 7 days, and every rating must be the same."""
    text = TAPER_ONLY.replace(
        "      - {at: -60d, stress: major_depression, duration: 150d}\n",
        "      - {at: -60d, stress: major_depression, duration: 150d}\n"
        "      - {at: -3d, drug: saline, route: iv}\n")
    r = simulate(load_scenario_text(text), registry=REG)
    tap = r.readouts[r.readouts["assay"] == "taper"]
    assert len(tap) == 8 * 5 and set(tap["value"]) == {7.0}
    fixed = _fixed_protocol_arm(text, "      - {at: 0d, drug: ketamine, dose: 0.5 mg/kg, "
                                "route: iv, over: 40min, every: 7d, doses: 5}\n")
    f = simulate(load_scenario_text(fixed), registry=REG)
    pd.testing.assert_series_equal(_series(r.readouts[r.readouts["assay"] != "taper"]),
                                   _series(f.readouts))


@pytest.mark.parametrize("until, last_d, n", [("60d", 59.5, 8), ("59.5d", 59.5, 8),
                                                ("59.4d", 52.5, 7), ("10.5d", 10.5, 1)])
def test_the_taper_grid_ends_at_the_last_step_at_or_before_until(until, last_d, n):
    from ketasim.experiment.taper import TaperPlan

    sc = load_scenario_text(_taper_text().replace("until: 60d", f"until: {until}"))
    plan = TaperPlan.of(sc.arms[0])
    assert plan.n == n and plan.times[-1] == pytest.approx(last_d * 24)
    assert np.allclose(np.diff(plan.times), 7 * 24.0) and plan.rungs == (1, 2, 3)
    # a patient well at every decision climbs to the top and stays there
    given, interval = plan.schedule(np.ones((1, n), dtype=bool))
    assert given[0, 0] and interval[0, 0] == 1
    steps = np.flatnonzero(given[0])
    assert steps.tolist() == [k for k in (0, 1, 3, 6) if k < n]
    assert interval[0, steps].tolist() == [1, 2, 3, 3][:steps.size]


# fixed (was BUG): an arm whose first treatment is its taper gets no placebo response
#   (the runner took the start of treatment from the protocol only, not the taper)
def test_a_taper_only_arm_rates_patients_as_its_doses_written_out():
    """An arm treated by its taper alone: Arm.first_dose_h says the taper's first dose is
    the start of treatment, where the placebo response begins (clinical.model.
    placebo_fraction). Every grid dose is given (nobody is ever well), so the ratings must
    equal those of the same doses written into the protocol."""
    r = simulate(load_scenario_text(TAPER_ONLY), registry=REG)
    sc = r.scenario
    assert sc.arms[0].first_dose_h == 0.0
    tap = r.readouts[r.readouts["assay"] == "taper"]
    assert len(tap) == 8 * 5 and set(tap["value"]) == {7.0}
    fixed = _fixed_protocol_arm(TAPER_ONLY, "      - {at: 0d, drug: ketamine, dose: 0.5 "
                                "mg/kg, route: iv, over: 40min, every: 7d, doses: 5}\n")
    f = simulate(load_scenario_text(fixed), registry=REG)
    pd.testing.assert_series_equal(_series(r.readouts[r.readouts["assay"] != "taper"]),
                                   _series(f.readouts))


# fixed (was BUG): a taper arm that also measures another region (signaling_state in
#   striatum) crashes in runner._tapered with pandas' 'No objects to concatenate'
def test_a_taper_arm_measuring_another_region_runs_or_is_one_clear_error():
    """The striatum's pass has no rating assay to solve the taper from: either it follows
    the schedule the MADRS calls for (the same doses as without the striatum assay) or
    the scenario is refused with one error naming the arm, never a pandas error."""
    text = TAPER_ONLY.replace("well_at_or_below: 0", "well_at_or_below: 30").replace(
        "      - {assay: madrs, at: [-1d, 6.5d, 13.5d, 20.5d, 27.5d]}\n",
        "      - {assay: madrs, at: [-1d, 6.5d, 13.5d, 20.5d, 27.5d]}\n"
        "      - {assay: signaling_state, at: [6.5d, 13.5d], region: striatum}\n")
    try:
        r = simulate(load_scenario_text(text), registry=REG)
    except (ScenarioError, ProtocolError) as e:
        assert "arms[0]" in str(e)
        return
    plain = simulate(load_scenario_text(TAPER_ONLY.replace("well_at_or_below: 0",
                                                           "well_at_or_below: 30")),
                     registry=REG)
    mine = r.readouts[r.readouts["assay"].isin(["taper", "madrs"])]
    pd.testing.assert_series_equal(_series(mine), _series(plain.readouts))


# ============================================================== intercurrent events
ICE_HEAD = "name: rice\nspecies: human\nseed: 1\narms:\n"
KET = "{at: Dd, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: Dd, drug: saline, route: iv}"
CADSS = "      - {assay: cadss, at: [40min, 4360min, 10120min]}\n"


def _arm(name, drug, doses=(0, 3, 7), extra="", cadss=CADSS):
    prot = "".join(f"      - {drug.replace('D', str(d), 1)}\n" for d in doses)
    return (f"  - name: {name}\n    n: 10\n    protocol:\n"
            "      - {at: -60d, stress: major_depression, duration: 150d}\n" + prot + extra
            + "    assays:\n      - {assay: madrs, at: [-1d, 40min, 24h, 4d, 8d, 10d]}\n"
            + cadss)


def _ice_text(rules: str = "", cadss: str = CADSS) -> str:
    return (ICE_HEAD + _arm("placebo", SAL, cadss=cadss)
            + _arm("ketamine", KET, cadss=cadss)
            + "design:\n  control: placebo\n  baseline: -1d\n  primary: 10d\n" + rules)


RULES = (
    "  intercurrent:\n"
    "    - {name: dissociation, readout: cadss_total, at_or_above: 20,\n"
    "       withhold: [ketamine, saline],\n"
    "       rescue: [{at: 0h, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, "
    "doses: 12}]}\n"
    "    - {name: no_response, readout: madrs_total, at_or_above: -0.2, relative_to: -1d,\n"
    "       after: 24h, withhold: [ketamine, saline]}\n")
ESC = "      - {at: AT, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 12}\n"


@pytest.fixture(scope="module")
def ice_runs():
    plain = simulate(load_scenario_text(_ice_text()), registry=REG)
    sc = load_scenario_text(_ice_text(RULES))
    return sc, simulate(sc, registry=REG), plain


def _first_events(plain: pd.DataFrame) -> dict:
    """Each patient's first event recomputed from the ratings of a run without events:
    CADSS >= 20 at a visit from 0 h, or MADRS no more than 20% below its -1 d rating at a
    visit from 24 h; the earliest visit counts, the rule listed first on a tie."""
    first = {}
    for (arm, s), me in plain.groupby(["arm", "subject"]):
        cand = []
        c = me[me["readout"] == "cadss_total"].sort_values("time_h")
        hit = c[(c["time_h"] >= 0) & (c["value"] >= 20)]
        if len(hit):
            cand.append((float(hit["time_h"].iloc[0]), 0, "dissociation"))
        m = me[me["readout"] == "madrs_total"].set_index("time_h")["value"].sort_index()
        # (y - y0) / y0 >= -0.2 in whole numbers: 5 (y - y0) >= -y0 (y0 > 0)
        fail = m[(m.index >= 24.0) & (5 * (m - m[-24.0]) >= -m[-24.0])]
        if m[-24.0] > 0 and len(fail):
            cand.append((float(fail.index[0]), 1, "no_response"))
        if cand:
            t, _, name = min(cand)
            first[(arm, int(s))] = (name, t)
    return first


def test_events_are_the_first_qualifying_visit_of_the_ratings_without_events(ice_runs):
    _, r, plain = ice_runs
    want = _first_events(plain.readouts)
    got = {(a, int(s)): (e, float(t)) for a, s, e, t in r.intercurrent.itertuples(index=False)}
    assert got == want
    assert {e for e, _ in got.values()} == {"dissociation", "no_response"}
    # the boundaries are met at this seed: an event on a CADSS of exactly 20, and one on
    # a MADRS exactly 20% under its baseline (at_or_above counts them)
    ro = plain.readouts.set_index(["arm", "subject", "readout", "time_h"])["value"]
    on_edge = set()
    for (arm, s), (name, t) in got.items():
        if name == "dissociation":
            edge = ro[(arm, s, "cadss_total", t)] == 20
        else:
            y0 = ro[(arm, s, "madrs_total", -24.0)]
            edge = 5 * (ro[(arm, s, "madrs_total", t)] - y0) == -y0
        if edge:
            on_edge.add(name)
    assert on_edge == {"dissociation", "no_response"}
    assert set(r.readouts["assay"]) == {"madrs", "cadss"}


def test_nothing_up_to_the_event_changes_and_other_patients_are_untouched(ice_runs):
    _, r, plain = ice_runs
    a, b = _series(r.readouts), _series(plain.readouts)
    assert a.index.equals(b.index)
    at = {(x, s): t for x, s, _, t in r.intercurrent.itertuples(index=False)}
    arm = a.index.get_level_values("arm")
    sub = a.index.get_level_values("subject")
    time = a.index.get_level_values("time_h").to_numpy()
    limit = np.array([at.get((x, s), np.inf) for x, s in zip(arm, sub, strict=True)])
    upto = time <= limit  # the event's own visit included: the rating that triggered it
    assert np.array_equal(a.to_numpy()[upto], b.to_numpy()[upto])
    assert not np.array_equal(a.to_numpy()[~upto], b.to_numpy()[~upto])


@pytest.mark.parametrize("arm", ["ketamine", "placebo"])
def test_after_the_event_the_patient_is_the_protocol_without_withheld_doses(ice_runs, arm):
    """Every event patient's rows equal those of an arm whose protocol gives only the
    doses up to the event's visit (the one at the visit included) and, for the rule with
    rescue, the rescue from the visit on: one such run per event time and rule."""
    _, r, _ = ice_runs
    ev = r.intercurrent[r.intercurrent["arm"] == arm]
    assert len(ev)
    drug = KET if arm == "ketamine" else SAL
    checked = 0
    for (name, t), g in ev.groupby(["event", "time_h"]):
        kept = tuple(d for d in (0, 3, 7) if d * 24.0 <= t)
        extra = ESC.replace("AT", f"{t * 60:.12g}min") if name == "dissociation" else ""
        text = ICE_HEAD + _arm(arm, drug, kept, extra)
        own = simulate(load_scenario_text(text), registry=REG).readouts
        for s in g["subject"]:
            want = _series(own[own["subject"] == s])
            got = _series(r.readouts[(r.readouts["arm"] == arm)
                                     & (r.readouts["subject"] == s)])
            pd.testing.assert_series_equal(got, want)
            checked += 1
    assert checked == len(ev)


def test_a_dose_at_the_events_own_visit_is_given_and_the_later_ones_not():
    """An event at a visit that falls on a dose time (MADRS at 3 d, the second infusion's
    start; every patient qualifies there): the dose at the visit is given with it, the
    one at 7 d is not; the rows equal those of the protocol stopped after 3 d."""
    rules = ("  intercurrent:\n    - {name: stop, readout: madrs_total, at_or_above: 0, "
             "after: 3d, withhold: [ketamine, saline]}\n")
    text = _ice_text(rules).replace("at: [-1d, 40min, 24h, 4d, 8d, 10d]",
                                    "at: [-1d, 40min, 24h, 3d, 8d, 10d]")
    r = simulate(load_scenario_text(text), registry=REG)
    assert len(r.intercurrent) == 20 and set(r.intercurrent["time_h"]) == {72.0}
    for arm, drug in (("ketamine", KET), ("placebo", SAL)):
        own = (ICE_HEAD
               + _arm(arm, drug, (0, 3)).replace("at: [-1d, 40min, 24h, 4d, 8d, 10d]",
                                                 "at: [-1d, 40min, 24h, 3d, 8d, 10d]"))
        want = simulate(load_scenario_text(own), registry=REG).readouts
        pd.testing.assert_series_equal(_series(r.readouts[r.readouts["arm"] == arm]),
                                       _series(want))


def test_events_do_not_depend_on_chunks_or_workers(ice_runs):
    sc, r, _ = ice_runs
    for kw in ({"chunk_subjects": 3}, {"chunk_subjects": 4, "map_tasks": _serial}):
        other = simulate(sc, registry=REG, **kw)
        pd.testing.assert_frame_equal(other.readouts, r.readouts)
        pd.testing.assert_frame_equal(other.intercurrent, r.intercurrent)


def test_on_a_tie_the_rule_listed_first_counts():
    rules = ("  intercurrent:\n"
             "    - {name: first, readout: cadss_total, at_or_above: 20, withhold: [ketamine]}\n"
             "    - {name: second, readout: cadss_total, at_or_above: 20, withhold: [ketamine]}\n")
    r = simulate(load_scenario_text(_ice_text(rules)), registry=REG)
    assert len(r.intercurrent) >= 2 and set(r.intercurrent["event"]) == {"first"}


# fixed (was BUG): with the trigger assay listed in two entries (runner._intercurrent builds
#   {assay name: frame}), only the last entry's visits can trigger an event
def test_a_trigger_assay_split_over_two_entries_gives_the_same_events(ice_runs):
    """The same CADSS visits written as two assay entries (allowed: different times) are
    the same ratings, so the same first visits must trigger the events."""
    _, r, _ = ice_runs
    split = ("      - {assay: cadss, at: [40min, 4360min]}\n"
             "      - {assay: cadss, at: [10120min]}\n")
    two = simulate(load_scenario_text(_ice_text(RULES, cadss=split)), registry=REG)
    pd.testing.assert_frame_equal(two.intercurrent, r.intercurrent)
    pd.testing.assert_series_equal(_series(two.readouts), _series(r.readouts))


# ===================================================================== bad input
@pytest.mark.parametrize("edit, where", [
    (("intervals: [7d, 14d, 21d]", "intervals: [14d, 7d, 21d]"),
     r"arms\[0\]\.taper\.intervals\[1\].*increasing"),
    (("intervals: [7d, 14d, 21d]", "intervals: [7d, 14d, 14d]"),
     r"arms\[0\]\.taper\.intervals\[2\]"),
    (("well_at_or_below: 17", "well_at_or_below: 61"),
     r"arms\[0\]\.taper\.well_at_or_below.*from 0 to 60"),
    (("well_at_or_below: 17", "well_at_or_below: -1"),
     r"arms\[0\]\.taper\.well_at_or_below"),
    (("well_at_or_below: 17", "well_at_or_below: -1.5\n      relative_to: -1d"),
     r"arms\[0\]\.taper\.well_at_or_below.*fractional"),
    (("until: 60d", "until: 9d"), r"arms\[0\]\.taper\.until"),
    (("readout: madrs_total", "readout: cadss_total"), r"arms\[0\]\.taper\.readout"),
], ids=["rungs-out-of-order", "rungs-repeated", "above-scale", "below-scale",
        "relative-below-minus-one", "until-before-dose", "readout-not-rated"])
def test_bad_tapers_are_one_error_naming_the_field(edit, where):
    text = _taper_text().replace(*edit)
    assert text != _taper_text()
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


@pytest.mark.parametrize("edit, where", [
    (("at_or_above: 20,", "at_or_above: 93,"),
     r"design\.intercurrent\[0\]\.at_or_above.*from 0 to 92"),
    (("readout: cadss_total", "readout: cadss"), r"design\.intercurrent\[0\]\.readout"),
    (("relative_to: -1d", "relative_to: 2d"), r"design\.intercurrent\[1\]\.relative_to"),
    (("relative_to: -1d", "relative_to: -2d"), r"design\.intercurrent\[1\]\.relative_to"),
    (("primary: 10d\n", "primary: 10d\n  arms: [placebo, ketamine, sham]\n"),
     r"design\.arms"),
], ids=["threshold-above-scale", "not-a-readout", "baseline-after-after",
        "baseline-not-a-visit", "unknown-arm"])
def test_bad_intercurrent_rules_are_one_error_naming_the_field(edit, where):
    text = _ice_text(RULES).replace(*edit)
    assert text != _ice_text(RULES)
    with pytest.raises(ScenarioError, match=where):
        load_scenario_text(text)


def test_intercurrent_rules_look_at_the_analysed_arms_only():
    """A third arm left out of the analysis: a drug only it gives cannot be withheld, and a
    readout only it rates cannot trigger an event."""
    third = _arm("open", "{at: Dd, drug: esketamine, dose: 56 mg, route: intranasal}", (0,),
                 cadss="      - {assay: bprs_positive, at: [40min, 24h]}\n")
    base = (ICE_HEAD + _arm("placebo", SAL)
            + _arm("ketamine", KET) + third
            + "design:\n  control: placebo\n  arms: [placebo, ketamine]\n  baseline: -1d\n"
              "  primary: 10d\n  intercurrent:\n")
    load_scenario_text(base + "    - {name: x, readout: cadss_total, at_or_above: 20, "
                       "withhold: [ketamine]}\n")  # the valid one
    with pytest.raises(ScenarioError,
                       match=r"design\.intercurrent\[0\]\.withhold\[0\].*analysed arm"):
        load_scenario_text(base + "    - {name: x, readout: cadss_total, at_or_above: 20, "
                           "withhold: [esketamine]}\n")
    with pytest.raises(ScenarioError, match=r"design\.intercurrent\[0\]\.readout"):
        load_scenario_text(base + "    - {name: x, readout: bprs_positive, at_or_above: 10, "
                           "withhold: [ketamine]}\n")


def _cli_run(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    return res, out


def test_a_taper_analysed_with_intercurrent_events_is_refused_before_writing(tmp_path):
    placebo = ("  - name: placebo\n    n: 4\n    protocol:\n      - {at: -60d, stress: "
               "major_depression, duration: 150d}\n      - {at: 0d, drug: saline, route: "
               "iv}\n    assays:\n      - {assay: madrs, at: [-7d, -1d, 6.5d, 13.5d, 16.5d, "
               "24.5d, 37.5d, 44.5d]}\n")
    design = ("design:\n  control: placebo\n  baseline: -1d\n  primary: 13.5d\n"
              "  intercurrent:\n    - {name: stop, readout: madrs_total, at_or_above: 50,"
              " withhold: [ketamine]}\n")
    text = _taper_text().replace("n: 12", "n: 4") + placebo + design
    res, out = _cli_run(tmp_path, text)
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert "arms[0].taper" in said and "intercurrent" in said
    assert not out.exists()


def test_a_taper_on_a_mouse_arm_is_refused_before_writing(tmp_path):
    text = ("name: m\nspecies: mouse\nseed: 1\narms:\n  - name: k\n    n: 3\n    protocol:\n"
            "      - {at: -14d, stress: restraint, duration: 14d}\n    assays:\n"
            "      - {assay: open_field, at: [1d, 8d]}\n    taper:\n"
            "      dose: {at: 0d, drug: ketamine, dose: 10 mg/kg, route: ip}\n"
            "      intervals: [7d]\n      until: 14d\n      readout: madrs_total\n"
            "      well_at_or_below: 12\n")
    res, out = _cli_run(tmp_path, text)
    assert res.exit_code == 2, res.output
    assert "arms[0].taper" in " ".join(res.output.split())
    assert not out.exists()
    # and a loaded scenario turned into rats is refused by the runner, naming the taper
    sc = load_scenario_text(_taper_text()).model_copy(update={"species": "rat"})
    with pytest.raises(ProtocolError, match=r"arms\[0\]\.taper.*'human'"):
        simulate(sc, registry=REG)


# ========================================================================== dropout
def _dropout_scenario(n: int, mechanism: str, rate: float) -> str:
    arms = ""
    for name, k in (("placebo", n), ("ketamine", n), ("extra", 5)):
        arms += (f"  - name: {name}\n    n: {k}\n    protocol:\n      - {{at: -60d, stress: "
                 "major_depression, duration: 150d}\n      - {at: 0h, drug: saline, route: "
                 "iv}\n    assays:\n      - {assay: madrs, at: [-1d, 12h, 3d, 17d, 18d]}\n")
    return ("name: drop\nspecies: human\nseed: 2\narms:\n" + arms
            + "design:\n  control: placebo\n  arms: [placebo, ketamine]\n  baseline: -1d\n"
              f"  primary: 3d\n  dropout: {{rate_per_week: {rate}, mechanism: {mechanism}}}\n")


def _synthetic(n: int, factor) -> pd.DataFrame:
    """MADRS 30 at baseline, 30 * factor(subject) at every later visit, and a CADSS row
    between visits (at 2 d) that belongs to no visit."""
    rows = []
    s = np.arange(n)
    for arm in ("placebo", "ketamine", "extra"):
        k = n if arm != "extra" else 5
        for t in (-24.0, 12.0, 72.0, 408.0, 432.0):
            v = np.full(k, 30.0) if t < 0 else 30.0 * factor(s[:k])
            rows.append(pd.DataFrame({"arm": arm, "subject": s[:k], "assay": "madrs",
                                      "readout": "madrs_total", "time_h": t, "value": v,
                                      "unit": "points"}))
        rows.append(pd.DataFrame({"arm": arm, "subject": s[:k], "assay": "cadss",
                                  "readout": "cadss_total", "time_h": 48.0, "value": 1.0,
                                  "unit": "points"}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("mechanism", ["mar", "mnar"])
def test_dropout_per_visit_hazard_on_irregular_visits(mechanism):
    """4000 patients per arm, visits 12 h, 3 d, 17 d and 18 d after a -1 d baseline: the
    share of those still in who leave at each visit is 1 - (1 - 0.3)^(m * days / 7), m = 1
    (mar) or exp(2 (y / y0 - 1)) (mnar; a third of the patients at y = 0.5 y0, a third at
    y0, a third at 1.5 y0), within 4.5 binomial SE; the arm outside the analysis keeps
    every row."""
    n = 4000
    sc = load_scenario_text(_dropout_scenario(n, mechanism, 0.3))
    factors = np.array([0.5, 1.0, 1.5])
    ro = _synthetic(n, lambda s: factors[s % 3])
    out, disp = apply_dropout(sc, ro, 9)
    visits = [12.0, 72.0, 408.0, 432.0]
    days = np.diff([-24.0, *visits]) / 24.0
    assert set(disp["arm"]) == {"placebo", "ketamine"}
    for arm in ("placebo", "ketamine"):
        d = disp[disp["arm"] == arm]
        for g, f in enumerate(factors):
            m = 1.0 if mechanism == "mar" else np.exp(2.0 * (f - 1.0))
            mine = d[d["subject"] % 3 == g]
            at_risk = len(mine)
            for t, w in zip(visits, days, strict=True):
                p = 1.0 - 0.7 ** (m * w / 7.0)
                k = int((mine["dropout_h"] == t).sum())
                assert abs(k / at_risk - p) < 4.5 * np.sqrt(p * (1 - p) / at_risk), (arm, f, t)
                at_risk -= k
    # the arm outside the analysis: untouched
    pd.testing.assert_frame_equal(out[out["arm"] == "extra"].reset_index(drop=True),
                                  ro[ro["arm"] == "extra"].reset_index(drop=True))
    # each patient's rows: all before the dropout visit, none from it on (the CADSS row
    # at 2 d stays for a patient who leaves at 3 d)
    gone = disp.set_index(["arm", "subject"])["dropout_h"]
    keys = pd.MultiIndex.from_arrays([ro["arm"], ro["subject"]])
    limit = gone.reindex(keys).to_numpy(float)
    want = ro[~(ro["time_h"].to_numpy() >= limit)].reset_index(drop=True)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), want)
    left_at_3d = disp[disp["dropout_h"] == 72.0]
    assert len(left_at_3d) > 50
    cad = out[out["readout"] == "cadss_total"].set_index(["arm", "subject"])
    assert all(k in cad.index for k in zip(left_at_3d["arm"], left_at_3d["subject"], strict=True))


def test_dropout_draws_are_the_documented_keyed_uniforms():
    """The first visit at which a patient's own uniform (stream ``dropout@<visit>h``) falls
    below the visit's probability is the dropout visit (mar)."""
    sc = load_scenario_text(_dropout_scenario(300, "mar", 0.3))
    ro = _synthetic(300, lambda s: np.ones(s.size))
    _, disp = apply_dropout(sc, ro, 9)
    visits = [12.0, 72.0, 408.0, 432.0]
    days = np.diff([-24.0, *visits]) / 24.0
    for row in disp.itertuples(index=False):
        want = np.nan
        for t, w in zip(visits, days, strict=True):
            u = assay_rng(9, row.arm, int(row.subject), dropout_key(t)).random()
            if u < 1.0 - 0.7 ** (w / 7.0):
                want = t
                break
        assert (np.isnan(want) and row.completed) or row.dropout_h == want


def test_a_taper_patient_who_leaves_keeps_every_row_before_leaving_only(taper_run):
    """Dropout on a taper arm: the run with dropout is the run without it, cut at each
    patient's dropout visit (ratings and taper doses alike)."""
    _, r = taper_run
    placebo = ("  - name: placebo\n    n: 12\n    protocol:\n      - {at: -60d, stress: "
               "major_depression, duration: 150d}\n      - {at: 0d, drug: saline, route: "
               "iv}\n    assays:\n      - {assay: madrs, at: [-7d, -1d, 6.5d, 13.5d, 16.5d, "
               "24.5d, 37.5d, 44.5d]}\n")
    design = ("design:\n  control: placebo\n  baseline: -1d\n  primary: 13.5d\n"
              "  dropout: {rate_per_week: 0.1, mechanism: mnar}\n")
    d = simulate(load_scenario_text(_taper_text() + placebo + design), registry=REG)
    disp = d.disposition[d.disposition["arm"] == "ketamine"].set_index("subject")
    assert (~disp["completed"]).sum() >= 2
    full = r.readouts
    limit = disp["dropout_h"].reindex(full["subject"]).to_numpy(float)
    want = full[~(full["time_h"].to_numpy() >= limit)]
    got = d.readouts[d.readouts["arm"] == "ketamine"]
    pd.testing.assert_series_equal(_series(got), _series(want))


# ========================================================================== relapse
RELAPSE = """\
name: maint
species: human
seed: 8
arms:
ARMS
design:
  control: placebo
  baseline: -1d
  primary: 6d
  dropout: {rate_per_week: 0.12, mechanism: mar}
  relapse: {threshold: 22, consecutive: 2, start: 6d}
"""


def _relapse_arm(name, ket):
    doses = "".join(f"      - {{at: {d}d, drug: ketamine, dose: 0.5 mg/kg, route: iv, "
                    "over: 40min}\n" for d in (0, 3, 7, 14)) if ket else \
        "      - {at: 0d, drug: saline, route: iv}\n"
    return (f"  - name: {name}\n    n: 16\n    protocol:\n      - {{at: -60d, stress: "
            "major_depression, duration: 150d}\n" + doses
            + "    assays: [{assay: madrs, at: [-1d, 6d, 9d, 13d, 16d, 20d, 23d]}]\n")


@pytest.fixture(scope="module")
def relapse_run():
    text = RELAPSE.replace("ARMS\n", _relapse_arm("placebo", False) + _relapse_arm("ketamine",
                                                                                  True))
    sc = load_scenario_text(text)
    r = simulate(sc, registry=REG)
    return sc, r, analyse_trial(sc, r.readouts, r.disposition)


def test_relapse_times_and_censoring_recomputed_from_the_readouts(relapse_run):
    _, r, t = relapse_run
    m = r.readouts[r.readouts["readout"] == "madrs_total"]
    start = 6 * 24.0
    want = {}
    for (arm, s), g in m.groupby(["arm", "subject"]):
        g = g[g["time_h"] >= start].sort_values("time_h")
        times, ys = g["time_h"].to_numpy(), g["value"].to_numpy()
        if not len(times):  # left before the start: not followed (as relapse_rows'
            continue        # callers do: "rated from the start on")
        event = next((times[j] for j in range(len(ys) - 1)
                      if ys[j] >= 22 and ys[j + 1] >= 22), None)
        want[(arm, int(s))] = ((event if event is not None else times[-1]) - start,
                               int(event is not None))
    rel = t.relapse
    got = {(a, int(s)): (float(d), int(e))
           for a, s, d, e in rel[["arm", "subject", "duration_h", "relapsed"]].itertuples(
               index=False)}
    assert got == want
    # both outcomes occur, and some patients are censored early by their dropout
    assert 0 < rel["relapsed"].sum() < len(rel)
    early = rel[(rel["relapsed"] == 0) & (rel["duration_h"] < (23 - 6) * 24.0)]
    assert len(early) >= 1


def test_relapse_kaplan_meier_by_hand(relapse_run):
    _, _, t = relapse_run
    km = t.relapse_km
    rel = t.relapse
    checked = 0
    for arm, g in rel.groupby("arm"):
        d, e = g["duration_h"].to_numpy(), g["relapsed"].to_numpy()
        s = 1.0
        mine = km[km["arm"] == arm]
        for u in np.unique(d[e == 1]):
            events, at_risk = ((d == u) & (e == 1)).sum(), (d >= u).sum()
            s *= 1.0 - events / at_risk
            row = mine[np.isclose(mine["time"].to_numpy(float), u)]
            assert len(row) == 1, (arm, u)
            assert row["survival"].iloc[0] == pytest.approx(s), (arm, u)
            assert (row["at_risk"].iloc[0], row["events"].iloc[0]) == (at_risk, events)
            checked += 1
    assert checked >= 2
