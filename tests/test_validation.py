"""The validation machinery: targets file, statistic language, replicas, validate."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketasim.params import load_registry
from ketasim.scenario import load_scenario
from ketasim.validation.run import ValidationSetupError, plan, validate
from ketasim.validation.statistic import StatisticError, check_expression, evaluate
from ketasim.validation.targets import (
    TargetError,
    Tolerance,
    load_targets,
    parse_targets,
    replica_paths,
)

SEED_FACTS = Path(__file__).resolve().parents[2] / "shared" / "design" / "SEED-FACTS.md"

GOOD = """
- target_id: T-X-1
  facts: [F-W-5]
  role: validation
  source: Someone et al. 2020 Journal
  quantity: q
  published: p
  statistic: mean('a', 'r', '1h')
  tolerance: "[0, 1]"
"""


# ------------------------------------------------------------------ targets file
def test_every_target_has_source_tolerance_and_replica():
    targets = load_targets()
    assert len(targets) >= 30
    for t in targets.values():
        assert t.source.strip() and re.search(r"(19|20)\d\d|CALIBRATION|commentary|label",
                                              t.source), t.target_id
        assert isinstance(t.tolerance, Tolerance)
        assert t.facts
    owners = plan()
    assert sorted(tid for ids in owners.values() for tid in ids) == sorted(targets)


def test_target_facts_exist_in_seed_facts():
    if not SEED_FACTS.exists():
        pytest.skip("shared/design/SEED-FACTS.md not beside the checkout")
    text = SEED_FACTS.read_text()
    for t in load_targets().values():
        for f in t.facts:
            assert re.search(rf"\b{re.escape(f)}\b", text), (t.target_id, f)


@pytest.mark.parametrize("mutation,message", [
    (lambda s: s.replace("  source: Someone et al. 2020 Journal\n", ""), "missing source"),
    (lambda s: s.replace('  tolerance: "[0, 1]"\n', ""), "missing tolerance"),
    (lambda s: s.replace("[0, 1]", "about right"), "target T-X-1: tolerance 'about right'"),
    (lambda s: s.replace("[0, 1]", "[2, 1]"), "lower bound above"),
    (lambda s: s.replace("[0, 1]", "[0, 1.2.3]"), "T-X-1: .*a bound is not a number"),
    (lambda s: s.replace("F-W-5", "W5"), "SEED-FACTS"),
    (lambda s: s.replace("mean('a'", "__import__('os'"), "unknown function"),
    (lambda s: s + s, "defined twice"),
    (lambda s: s + "  colour: red\n", "unknown fields"),
])
def test_bad_targets_rejected(mutation, message):
    with pytest.raises(TargetError, match=message):
        parse_targets(mutation(GOOD))


# ------------------------------------------------------------------ roles and effect sizes
CALIBRATION = GOOD.replace("  role: validation\n",
                           "  role: calibration\n  fitted: [sig.pka_gain, sig.k_priming]\n")


def test_role_and_fitted_are_parsed():
    t = parse_targets(GOOD)["T-X-1"]
    assert (t.role, t.fitted, t.published_effect, t.effect) == ("validation", (), None, "")
    c = parse_targets(CALIBRATION)["T-X-1"]
    assert c.role == "calibration" and c.fitted == ("sig.pka_gain", "sig.k_priming")
    e = parse_targets(GOOD + "  published_effect: 0.275\n"
                      "  effect: mean('a', 'r', '2h') - mean('b', 'r', '2h')\n")["T-X-1"]
    assert e.published_effect == 0.275 and e.effect.startswith("mean(")
    targets = load_targets()
    assert {t.role for t in targets.values()} == {"calibration", "validation"}
    assert all(t.fitted for t in targets.values() if t.role == "calibration")


def test_a_fitted_name_not_in_the_registry_is_one_clear_error():
    bad = CALIBRATION.replace("sig.k_priming", "sig.k_primming")
    with pytest.raises(TargetError) as e:
        parse_targets(bad, "lab.yaml")
    msg = str(e.value)
    assert "T-X-1" in msg and "'sig.k_primming'" in msg and "parameters.yaml" in msg
    assert "sig.pka_gain" not in msg  # only the bad name


@pytest.mark.parametrize("mutation,message", [
    (lambda s: s.replace("  role: validation\n", ""), "missing role"),
    (lambda s: s.replace("role: validation", "role: fitted"), "expected calibration or validation"),
    (lambda s: s.replace("role: validation", "role: calibration"), "needs fitted"),
    (lambda s: s + "  fitted: [sig.pka_gain]\n", "validation target has no fitted"),
    (lambda s: s + "  published_effect: 0.3\n", "needs an effect"),
    (lambda s: s + "  published_effect: large\n  effect: mean('a', 'r', '1h')\n",
     "must be a number"),
    (lambda s: s + "  effect: open('x')\n", "effect"),
])
def test_bad_roles_and_effects_rejected(mutation, message):
    with pytest.raises(TargetError, match=message):
        parse_targets(mutation(GOOD))


def test_counts_are_kept_per_role():
    from ketasim.validation.run import TargetResult, ValidationResult

    cal = parse_targets(CALIBRATION)["T-X-1"]
    val = parse_targets(GOOD)["T-X-1"]
    res = ValidationResult([TargetResult(cal, "r", 1.0, "pass"),
                            TargetResult(cal, "r", 9.0, "known_gap", "x"),
                            TargetResult(val, "r", 0.5, "pass"),
                            TargetResult(val, "r", 2.0, "fail")])
    assert res.counts("calibration") == {"pass": 1, "fail": 0, "known_gap": 1, "error": 0}
    assert res.counts("validation") == {"pass": 1, "fail": 1, "known_gap": 0, "error": 0}
    assert res.counts()["pass"] == 2
    assert res.role_counts()["calibration"]["total"] == 2
    table = res.table()
    assert list(table["role"]) == ["calibration"] * 2 + ["validation"] * 2
    assert table["fitted"].iloc[0] == "sig.pka_gain;sig.k_priming"


def test_report_lists_each_known_gap_with_its_reason(tmp_path):
    from ketasim.report.validation_report import write_validation_report
    from ketasim.validation.run import TargetResult, ValidationResult

    cal = parse_targets(CALIBRATION)["T-X-1"]
    res = ValidationResult([TargetResult(cal, "r", 1.0, "pass"),
                            TargetResult(cal, "r", 9.0, "known_gap",
                                         "the model's effect is half the published one")])
    html = write_validation_report(tmp_path, res, res.table()).read_text()
    assert 'id="known-gaps"' in html
    assert "<b>T-X-1</b>" in html and "half the published one" in html


def test_report_tables_escape_whole_entities_and_drop_empty_effect_columns(tmp_path):
    """A tolerance '>= 1.15' and a quantity with an apostrophe read as written (spaces
    after list semicolons were once added inside '&gt;' and '&#x27;'); effect columns no
    row fills are left out of the table (they stay in validation.csv)."""
    from ketasim.report.validation_report import write_validation_report
    from ketasim.validation.run import TargetResult, ValidationResult

    t = parse_targets(GOOD.replace("quantity: q", "quantity: the arm's ratio").replace(
        '"[0, 1]"', '">= 1.15"'))["T-X-1"]
    res = ValidationResult([TargetResult(t, "r", 1.0, "pass")])
    html = write_validation_report(tmp_path, res, res.table()).read_text()
    table = html[html.index("<table"):html.index("</table>")]
    assert "&#x27; s" not in table and "arm&#x27;s ratio" in table
    assert "&gt; =" not in html and "&lt; =" not in html
    assert "<th>published_effect</th>" not in table


def test_the_targets_figure_draws_one_sided_and_p_value_targets(tmp_path):
    """Every target with a finite value is drawn (it once drew band tolerances only, 8
    of a clinical replica's 14 targets)."""
    from ketasim.report.validation_report import targets_figure

    sub = pd.DataFrame({
        "target_id": ["T-A", "T-B", "T-C"], "published": ["gone", "raised", "12.6 +- 0.8 %"],
        "quantity": ["a ratio", "x vs y (one-sided Welch t, p)", "a rate"],
        "simulated": [0.1, 0.003, float("nan")], "tolerance": ["<= 0.3", "< 0.05",
                                                               "[11, 14]"],
        "status": ["pass", "pass", "error"]})
    png = targets_figure(sub, tmp_path / "t.png")
    assert png is not None and png.stat().st_size > 5000
    import warnings

    with warnings.catch_warnings():  # a p that underflowed to 0: drawn at the floor
        warnings.simplefilter("error")
        assert targets_figure(sub.assign(simulated=[0.1, 0.0, float("nan")]),
                              tmp_path / "p0.png") is not None
    assert targets_figure(sub.iloc[2:], tmp_path / "none.png") is None  # no finite value


@pytest.mark.parametrize("published, band, point", [
    ("12.65 +- 0.80 %", (11.0, 14.3), (12.65, 0.80)),
    ("-4.0 points (95% CI -7.31 to -0.64)", (-7.31, -0.64), (-4.0, None)),
    ("0.77 (SE about 0.05)", (0.67, 0.88), (0.77, None)),
    ("50-75% respond after one dose", (0.5, 0.75), None),  # a range
    ("0.74 - 0.02 = 0.72", (0.56, 0.88), None),  # arithmetic
    ("28% responded to the active placebo", (0.12, 0.45), None),  # % beside fractions
    ("7.95 points lower with ketamine", (-12.71, -3.20), None),  # size, not sign
    ("0.2 mg/kg is subtherapeutic", (-0.4, 0.4), None),  # a dose, not the ratio
])
def test_the_targets_figure_marks_a_published_value_only_on_the_bands_scale(
        published, band, point):
    import math

    from ketasim.report.validation_report import _published_point

    got = _published_point(published, *band)
    if point is None:
        assert got is None
    else:
        assert got[0] == point[0]
        assert (math.isnan(got[1]) if point[1] is None else got[1] == point[1])


def test_tried_fixes_are_parsed_and_folded_under_the_gap_in_the_report(tmp_path):
    from ketasim.report.validation_report import write_validation_report
    from ketasim.validation.run import TargetResult, ValidationResult

    gap = parse_targets(GOOD + "  known_gap: the effect is too small\n"
                        "  tried:\n    - 'a faster rate <doubled>: still too small'\n"
                        "    - 'a second path: other targets fail'\n")["T-X-1"]
    assert gap.tried == ("a faster rate <doubled>: still too small",
                         "a second path: other targets fail")
    assert parse_targets(GOOD)["T-X-1"].tried == ()
    res = ValidationResult([TargetResult(gap, "r", 9.0, "known_gap", gap.known_gap)])
    html = write_validation_report(tmp_path, res, res.table()).read_text()
    block = html[html.index('id="known-gaps"'):]
    assert "<summary>Tried and not adopted (2)</summary>" in block
    assert "<li>a faster rate &lt;doubled&gt;: still too small</li>" in block  # escaped
    assert block.index("the effect is too small") < block.index("Tried and not adopted")


@pytest.mark.parametrize("value, what", [("[]", "non-empty list"),
                                         ("a single string", "non-empty list"),
                                         ("[a fix, 3]", "tried[1]"),
                                         ("[a fix, '  ']", "tried[1]"),
                                         ("[a fix: unquoted]", "tried[0]")])
def test_a_malformed_tried_list_is_one_clear_error(value, what):
    with pytest.raises(TargetError) as e:
        parse_targets(GOOD + f"  tried: {value}\n", "lab.yaml")
    assert "lab.yaml" in str(e.value) and "T-X-1" in str(e.value) and what in str(e.value)


#: The longest known-gap reason allowed (characters): past it, the fixes tried belong in
#: ``tried``, where the report folds them away.
MAX_GAP_REASON = 2000


def test_known_gap_reasons_stay_short_and_the_tries_go_in_tried():
    long = {tid: len(t.known_gap) for tid, t in load_targets().items()
            if len(t.known_gap) > MAX_GAP_REASON}
    assert not long, f"known_gap reasons over {MAX_GAP_REASON} characters: {long}"


def test_design_doc_fitted_table_matches_targets_yaml():
    from ketasim.validation import fitted_table

    text = fitted_table.DESIGN.read_text()
    assert fitted_table.current(text) == fitted_table.block(), (
        "docs/design.md is out of date: run python -m ketasim.validation.fitted_table --write")
    for t in load_targets().values():  # every calibration target shows up in the table
        if t.role == "calibration":
            assert t.target_id in fitted_table.fitted_table()


def test_tolerance_grammar():
    assert Tolerance.parse("[0.2, 0.25]").contains(0.25)
    assert not Tolerance.parse("[0.2, 0.25]").contains(0.2501)
    assert Tolerance.parse("< 0.05").contains(0.049)
    assert not Tolerance.parse("< 0.05").contains(0.05)
    assert Tolerance.parse("<= 0.05").contains(0.05)
    assert Tolerance.parse(">= 1.3").contains(1.3)
    assert not Tolerance.parse("> 1.3").contains(1.3)
    assert not Tolerance.parse("[0, 1]").contains(math.nan)
    # infinities beyond an open end pass on either side alike, never inside a band
    assert Tolerance.parse("> 0.8").contains(math.inf)
    assert Tolerance.parse("< -0.8").contains(-math.inf)
    assert not Tolerance.parse("> 0.8").contains(-math.inf)
    assert not Tolerance.parse("[-1, 1]").contains(math.inf)
    assert not Tolerance.parse("< 0.05").contains(math.nan)


# ------------------------------------------------------------------ statistic language
def _table():
    rows = []
    for arm, base in (("a", 1.0), ("b", 2.0)):
        for subj in range(4):
            for t in (0.0, 1.0, 2.0):
                rows.append((arm, subj, "x", "r", t, base * (1 + t) + subj, "u"))
    return pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                       "value", "unit"])


def test_statistic_known_answers():
    r = _table()
    assert evaluate("mean('a', 'r', '1h')", r) == pytest.approx(2.0 + 1.5)
    assert evaluate("mean('b', 'r', 1.0) / mean('a', 'r', '60min')", r) == pytest.approx(5.5 / 3.5)
    assert evaluate("peak('a', 'r')", r) == pytest.approx(3.0 + 1.5)
    assert evaluate("time_of_peak('a', 'r')", r) == 2.0
    assert evaluate("sem('a', 'r', '0h')", r) == pytest.approx(np.std([0, 1, 2, 3], ddof=1) / 2)
    from scipy import stats

    p = stats.ttest_ind([4, 5, 6, 7], [2, 3, 4, 5], equal_var=False).pvalue
    assert evaluate("p('b', 'a', 'r', '1h')", r) == pytest.approx(p)
    # one-sided: b is higher than a
    one = stats.ttest_ind([4, 5, 6, 7], [2, 3, 4, 5], equal_var=False,
                          alternative="greater").pvalue
    assert evaluate("p_higher('b', 'a', 'r', '1h')", r) == pytest.approx(one)
    assert evaluate("p_lower('a', 'b', 'r', '1h')", r) == pytest.approx(one)
    assert evaluate("p_lower('b', 'a', 'r', '1h')", r) == pytest.approx(1 - one)
    assert evaluate("-mean('a', 'r', '0h') + 2 * 3", r) == pytest.approx(-2.5 + 6)
    assert evaluate("sd('a', 'r', '0h')", r) == pytest.approx(np.std([0, 1, 2, 3], ddof=1))
    # equal SDs: Cohen's d = difference / that SD
    assert evaluate("cohen_d('b', 'a', 'r', '1h')", r) == pytest.approx(
        2.0 / np.std([0, 1, 2, 3], ddof=1))


def _changes_table(a_pre, a_post, b_pre, b_post):
    rows = [(arm, i, "x", "s", t, v, "u")
            for arm, pre, post in (("a", a_pre, a_post), ("b", b_pre, b_post))
            for i, (v0, v1) in enumerate(zip(pre, post)) for t, v in ((-24.0, v0), (24.0, v1))]
    return pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                       "value", "unit"])


def test_d_change_follows_cohen_d_at_the_edges():
    """d_change is Cohen's d of the changes: infinite, not 0, when both arms change by
    different constants, and undefined (NaN) with one subject per arm."""
    r = _changes_table([30, 31, 32], [10, 11, 12], [30, 31, 32], [25, 26, 27])
    assert evaluate("d_change('a', 'b', 's', '-1d', '24h')", r) == -np.inf
    r = _changes_table([30, 31], [10, 14], [30, 31], [25, 25])
    pooled = np.sqrt((np.var([-20, -17], ddof=1) + np.var([-5, -6], ddof=1)) / 2)
    assert evaluate("d_change('a', 'b', 's', '-1d', '24h')", r) == pytest.approx(
        (-18.5 + 5.5) / pooled, rel=1e-12)
    r = _changes_table([30], [10], [30], [25])
    assert np.isnan(evaluate("d_change('a', 'b', 's', '-1d', '24h')", r))
    r = _changes_table([30, 31, 33], [30, 31, 33], [3, 4], [3, 4])
    assert evaluate("d_change('a', 'b', 's', '-1d', '24h')", r) == 0.0


def test_half_life_known_answer():
    t = np.linspace(0, 10, 11)
    rows = [("a", s, "x", "c", ti, 100 * np.exp(-np.log(2) / (2.0 + s) * ti), "u")
            for s in range(3) for ti in t]
    r = pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h", "value",
                                    "unit"])
    assert evaluate("half_life('a', 'c', '1h', '10h')", r) == pytest.approx(3.0)


def test_tmax_is_the_median_of_the_subjects_own_peaks():
    """tmax: each subject's time of its highest value in the window, the median over
    subjects, from the window's start; a peak outside the window does not count, and a
    later mean-curve peak (two subjects peaking late and high) does not move it."""
    peaks = {0: 0.5, 1: 0.5, 2: 2.0, 3: 1.0, 4: 2.0}
    heights = {0: 1.0, 1: 1.0, 2: 10.0, 3: 1.0, 4: 10.0}
    t = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    rows = [("a", s, "x", "c", 10 + ti, heights[s] * np.exp(-(ti - peaks[s]) ** 2), "u")
            for s in peaks for ti in t]
    rows += [("a", s, "x", "c", 5.0, 100.0, "u") for s in peaks]  # before the window
    r = pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h", "value",
                                    "unit"])
    assert evaluate("tmax('a', 'c', '10h', '14h')", r) == pytest.approx(1.0)
    assert evaluate("time_of_peak('a', 'c', after='10h')", r) == pytest.approx(12.0)
    with pytest.raises(StatisticError, match="no subject"):
        evaluate("tmax('a', 'c', '20h', '24h')", r)


@pytest.mark.parametrize("expr", ["open('x')", "mean.__class__", "[1, 2]", "1 ** 2",
                                  "lambda: 1", "x", "mean('a') if 1 else 2"])
def test_statistic_rejects_unsafe(expr):
    with pytest.raises(StatisticError):
        check_expression(expr)


def test_statistic_missing_data_is_an_error():
    with pytest.raises(StatisticError, match="no 'r' for arm 'zz'"):
        evaluate("mean('zz', 'r', '1h')", _table())


def test_statistic_division_by_zero_is_an_error_not_infinity():
    # an infinite ratio would pass ">= 1.3"; the error names the denominator
    flat = pd.DataFrame([("a", s, "x", "r", 1.0, 1.0, "u") for s in range(3)],
                        columns=["arm", "subject", "assay", "readout", "time_h", "value",
                                 "unit"])
    with pytest.raises(StatisticError, match=r"division by zero: mean\('a', 'r', '1h'\) - 1"):
        evaluate("mean('a', 'r', '1h') / (mean('a', 'r', '1h') - 1)", flat)
    with pytest.raises(StatisticError, match="division by zero: 0"):
        evaluate("mean('a', 'r', '1h') / 0", flat)
    assert evaluate("(mean('a', 'r', '1h') - 1) / 2", flat) == 0.0


# ------------------------------------------------------------------ validate
# Targets shown as known gaps today (see their known_gap text). T-LH-06 and T-PA-03 left
# the list with the circuit's assemblies (2026-12-05): both pass at their replicas' seeds.
# T-CMP-09 left it when the interneurons' GluN2B share was fitted to it (2026-12-05), and
# T-CLIN-02, whose expectation now lies inside its band (0.426 with 300 x the patients),
# and T-CLIN-20 when the psychotomimetic sensitivity's CV was fitted to it. T-CMP-23 left
# it when HNK's AMPA potency was fitted to it, T-CMP-18 and T-CMP-26 when the M1 share
# was (with sig.k_synthesis fitted to T-CMP-17; both 2026-12-05). T-D1-04 left it when
# the Drd1 receptor's PKA rise came to need the neurons' own activity (2026-12-05).
# T-SEQ-03 left it when the spine engine came to read each step's mean drive (session
# 17), which redrew every spine number: T-SP-03, T-SP-09, T-CA-02 and T-PH-06 joined it
# as sampling misses at the replicas' seeds (inside in expectation; 5-6 of 6 further
# seeds pass). T-SP-09 and T-PH-06 left it when the spine burn-in came to cover the
# memory of elimination sites, set to 10 days (2026-12-06). T-OF-02 left it when the
# open field's occupancy for half the hyperlocomotion was refitted (2026-12-07).
ALLOWED_GAPS = {# the spine engine's and the circuit's review fixes redrew every spine and
                # circuit number (2026-12-07): sampling misses at the replicas' seeds, inside
                # in expectation (T-SP-03, T-SP-13, T-CA-02, T-PA-01 and T-PH-08 then left)
                "T-SEQ-03", "T-PH-04",
                # western blots redrawn when measurement streams were keyed by session
                # time (2026-12-06): a sampling miss, inside in expectation (T-CMP-09
                # left when the interneurons' GluN2B share was refitted, 2026-12-07)
                "T-CMP-26",
                # compounds by their targets (issue 13): a model gap of the Drd1-neuron
                # replica, with its reason in targets.yaml
                "T-D1-02",
                # patients (issue 14); T-CLIN-09 a sampling miss since the restoration
                # pool (2026-12-07), when T-CLIN-10 and T-CLIN-18 left the list;
                # T-CLIN-15 a sampling miss since the pool's refit (session 37), T-CLIN-11
                # one since its expectation was measured with 128 x the patients, which
                # found T-CLIN-10 passing by chance (a model gap until the human partition's
                # refit in session 38; a sampling miss since)
                "T-CLIN-05", "T-CLIN-09", "T-CLIN-10", "T-CLIN-11", "T-CLIN-15", "T-CLIN-26",
                "T-CLIN-30",
                # the deposited Phoumthipphavong 2016 data (issue 16): the lab's scoring,
                # ketamine's new spines' persistence
                "T-PH-09", "T-PH-11",
                # review values against the human population PK models (2026-12-06):
                # oral Tmax and norketamine's half-life, source conflicts
                "T-PK-11", "T-PK-13"}


def _sessions(arm) -> set[float]:
    """Times (h) of an arm's clinic sessions: its doses by any route but the mouth."""
    return {round(e.at, 6) for e in arm.protocol
            if getattr(e, "drug", None) is not None and e.route != "oral"}


def test_placebo_arms_of_human_replicas_match_the_drug_arms_sessions():
    """A blinded trial gives its placebo arm a session (a saline infusion or spray, or the
    active placebo) whenever the drug arm has one; a placebo arm with fewer sessions is a
    design the trial did not run (TRANSFORM-2's and the maintenance replica's placebo
    arms once had a single session at day 0)."""
    checked = 0
    for name, path in sorted(replica_paths().items()):
        scenario = load_scenario(path)
        if scenario.species != "human":
            continue
        placebo = [a for a in scenario.arms if "placebo" in a.name]
        drug = [a for a in scenario.arms if "placebo" not in a.name
                and not a.name.startswith("healthy") and _sessions(a)]
        for p in placebo:
            for d in drug:
                missing = _sessions(d) - _sessions(p)
                assert not missing, (name, p.name, d.name, sorted(missing))
                checked += 1
    assert checked >= 10  # the trial replicas with placebo arms


def test_readme_names_every_gap_that_is_not_a_sampling_miss():
    """The README's "What the model does not reproduce yet" names exactly the known gaps
    whose reason is not a sampling miss (model, measurement and source gaps), so a user
    reads the current ones: closing or opening such a gap fails here until it is said."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## What the model does not reproduce yet", 1)[1].split("\n## ", 1)[0]
    named = set()
    for m in re.finditer(r"T-([A-Z0-9]+)-(\d+)((?:,\s+-\d+)*)", section):
        named.add(f"T-{m.group(1)}-{m.group(2)}")
        named |= {f"T-{m.group(1)}{n}" for n in re.findall(r"-\d+", m.group(3))}
    expected = {tid for tid, t in load_targets().items()
                if t.known_gap and not t.known_gap.startswith("a sampling miss")}
    assert named == expected


def test_allowed_gaps_are_marked_in_the_targets_file():
    marked = {tid for tid, t in load_targets().items() if t.known_gap}
    assert marked == ALLOWED_GAPS


@pytest.fixture(scope="module")
def full_validation():
    return validate(workers=2, registry=load_registry())


@pytest.mark.slow  # every replica: about 3 min on 2 cores (make run checks the same)
def test_every_current_target_passes(full_validation):
    table = full_validation.table()
    failing = table[~table["status"].isin(["pass", "known_gap"])]
    assert failing.empty, failing[["target_id", "simulated", "tolerance", "status"]]
    gaps = [r for r in full_validation.results if r.status == "known_gap"]
    assert all(len(r.message) > 40 for r in gaps)  # every gap says why
    # the allowed gaps, listed: adding one (or closing one) is a conscious change
    assert sorted(r.target.target_id for r in gaps) == sorted(ALLOWED_GAPS)
    assert set(table["target_id"]) == set(load_targets())


@pytest.mark.slow  # needs the full validation
def test_validate_is_independent_of_workers(full_validation):
    one = validate(only=["plasticity_window_signaling", "T-DA-02"], workers=1,
                   registry=load_registry()).table()
    both = full_validation.table().set_index("target_id").loc[one["target_id"]]
    assert np.array_equal(one["simulated"].to_numpy(), both["simulated"].to_numpy())


def test_only_selects_targets_and_rejects_unknown():
    chosen = plan(["T-PP-02", "pk_rat_hnk"])
    assert chosen == {"plasticity_window_signaling": ["T-PP-02"], "pk_rat_hnk": ["T-PK-06"]}
    with pytest.raises(ValidationSetupError, match="--only nope"):
        plan(["nope"])


def test_every_replica_is_a_valid_scenario():
    for name, path in replica_paths().items():
        sc = load_scenario(path)
        assert sc.name == name and sc.targets


NEW_REPLICA = """
# A lab's own replica: ketamine 30 mg/kg ip blocks more interneuron NMDA receptors at 1 h
# than 10 mg/kg.
name: my_dose_response
species: mouse
seed: 5
arms:
  - {name: low, n: 6, protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h, 2h]}]}
  - {name: high, n: 6, protocol: [{at: 0h, drug: ketamine, dose: 30 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h, 2h]}]}
targets: [T-LAB-1, T-LAB-2]
"""
NEW_TARGETS = """
- target_id: T-LAB-1
  facts: [F-W-8]
  role: validation
  source: Our lab 2026 (unpublished)
  quantity: interneuron NMDA receptor block at 1 h, high / low dose
  published: higher with dose
  statistic: mean('high', 'occupancy_interneuron', '1h') / mean('low', 'occupancy_interneuron', '1h')
  published_effect: 1.234567
  effect: mean('high', 'occupancy_interneuron', '1h') / mean('low', 'occupancy_interneuron', '1h')
  tolerance: "> 1"
- target_id: T-LAB-2
  facts: [F-W-6]
  role: calibration
  fitted: [sig.pka_gain]
  source: Our lab 2026 (unpublished)
  quantity: plasticity potential at 2 h, high dose
  published: impossible on purpose
  statistic: mean('high', 'plasticity_potential', '2h')
  tolerance: "> 0.99"
  known_gap: deliberately unreachable, to check that gaps are counted but do not fail
"""


#: The statistic of T-LAB-1 (NEW_TARGETS)
LAB_RATIO = ("mean('high', 'occupancy_interneuron', '1h') "
             "/ mean('low', 'occupancy_interneuron', '1h')")


def _lab_replica(tmp_path) -> Path:
    """NEW_REPLICA written to ``tmp_path/reps`` (as a lab adds its own)."""
    (tmp_path / "reps").mkdir()
    rep = tmp_path / "reps" / "my_dose_response.yaml"
    rep.write_text(NEW_REPLICA)
    return rep


def test_a_replica_added_as_yaml_shows_up_without_code_change(tmp_path):
    """A new replica = one YAML file + its target rows; validate and its report pick it
    up (through the CLI, as a lab would add its own)."""
    from typer.testing import CliRunner

    from ketasim.cli import app

    (tmp_path / "reps").mkdir()
    (tmp_path / "reps" / "my_dose_response.yaml").write_text(NEW_REPLICA)
    (tmp_path / "targets.yaml").write_text(NEW_TARGETS)
    out = tmp_path / "val"
    res = CliRunner().invoke(app, [
        "validate", "--only", "my_dose_response", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "validation.csv")
    assert list(table["target_id"]) == ["T-LAB-1", "T-LAB-2"]
    assert list(table["status"]) == ["pass", "known_gap"]
    html = (out / "report.html").read_text()
    assert "my_dose_response" in html and "T-LAB-2" in html
    assert 'class="known_gap"' in html
    # calibration and validation targets in separate tables, each with its count
    assert '<table id="calibration">' in html and '<table id="validation">' in html
    assert "Calibration targets" in html and "Validation targets" in html
    assert "1 calibration targets" in html and "1 validation targets" in html
    val_table = html.split('<table id="validation">')[1].split("</table>")[0]
    cal_table = html.split('<table id="calibration">')[1].split("</table>")[0]
    assert "T-LAB-1" in val_table and "T-LAB-2" not in val_table
    assert "T-LAB-2" in cal_table and "sig.pka_gain" in cal_table
    # published and simulated effect sizes side by side
    assert "published_effect</th><th>simulated_effect" in val_table
    assert "1.235" in val_table and f"{table['simulated_effect'].iloc[0]:.4g}" in val_table
    assert res.output.count("calibration: 1 targets") == 1
    assert "validation: 1 targets, 1 pass" in res.output


def test_failing_target_exits_1(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    (tmp_path / "reps").mkdir()
    (tmp_path / "reps" / "my_dose_response.yaml").write_text(NEW_REPLICA)
    (tmp_path / "targets.yaml").write_text(NEW_TARGETS.replace(
        "  known_gap: deliberately unreachable, to check that gaps are counted but do not "
        "fail\n", ""))
    res = CliRunner().invoke(app, [
        "validate", "--only", "T-LAB-2", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(tmp_path / "v"),
        "--workers", "1"])
    assert res.exit_code == 1
    assert pd.read_csv(tmp_path / "v" / "validation.csv")["status"].tolist() == ["fail"]


def test_validate_refuses_to_replace_a_foreign_folder(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    (tmp_path / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_validation_csv_columns_follow_the_contract(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--out",
                                   str(tmp_path / "v"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "v" / "validation.csv", keep_default_na=False)
    cols = list(table.columns)
    # the existing columns keep their order; role, fitted, the effect sizes, the
    # expectation (validate --expect) and the message (an error's reason) follow
    assert cols == ["target_id", "facts", "source", "quantity", "published", "simulated",
                    "tolerance", "pass", "status", "replica", "replication",
                    "role", "fitted", "published_effect", "simulated_effect", "expected",
                    "expected_se", "expected_factor", "expected_status",
                    "expected_effect", "message"]
    row = table.iloc[0]
    assert row["role"] == "calibration" and row["fitted"] == "pk.rat.hnk.cl;pk.rat.hnk.v"
    assert (tmp_path / "v" / "figures" / "pk_rat_hnk_plasma_pk.png").exists()


def test_synthesis_figure_uses_differences():
    from ketasim.report.synthesis import difference_courses

    r = _table()
    r["readout"] = "da_pct_baseline"
    r["arm"] = r["arm"].map({"a": "saline", "b": "ketamine"})
    courses = difference_courses({"mpfc_dopamine_microdialysis": r})
    assert len(courses) == 1
    _, t, d = courses[0]
    assert list(t) == [1.0, 2.0] and d.max() == pytest.approx(1.0)


def test_spine_functions_need_a_tracking_table_and_use_it():
    with pytest.raises(StatisticError, match="no spine tracking table"):
        evaluate("clustering_p('a', '0h', '1d')", _table())
    rows = []
    for sid, (x, t_last) in enumerate([(10.0, 0.0), (10.5, 0.0), (30.0, 24.0)]):
        for t in (0.0, 24.0):
            if t <= t_last:
                rows.append(("a", "0", "0", str(sid), t, x, True, 60.0))
    rows.append(("a", "0", "0", "new", 24.0, 10.2, True, 60.0))
    tr = pd.DataFrame(rows, columns=["arm", "subject", "branch", "spine_id", "time_h",
                                     "position_um", "present", "branch_length_um"])
    from ketasim.analysis.tracking import read_tracking_table

    tr = read_tracking_table(tr)
    v = evaluate("restored_fraction('a', '0h', '1d', '0h', '1d')", _table(), {"a": tr})
    assert v == 1.0  # the one new spine sits 0.2 um from a lost site
    chance = evaluate("restored_chance('a', '0h', '1d', '0h', '1d')", _table(), {"a": tr})
    assert chance == pytest.approx((10.5 + 2 - (10.0 - 2)) / 60.0)


def test_seeds_count_passes_over_further_seeds(tmp_path):
    """validate --seeds K: each target's passes at seeds seed+1..seed+K, judged against
    the tolerance even for known gaps; the verdict stays the replica's own seed."""
    from typer.testing import CliRunner

    from ketasim.cli import app
    from ketasim.experiment.runner import simulate

    rep = _lab_replica(tmp_path)
    # a threshold inside the seed-to-seed spread of the statistic: some seeds pass
    expr = LAB_RATIO
    sc = load_scenario(rep)
    vals = [evaluate(expr, simulate(sc, seed=sc.seed + k, registry=load_registry()).readouts) for k in range(4)]
    cut = float(np.median(vals[1:]))
    (tmp_path / "targets.yaml").write_text(NEW_TARGETS.replace('tolerance: "> 1"',
                                                               f'tolerance: "> {cut!r}"'))
    expected = sum(v > cut for v in vals[1:])
    assert 0 < expected < 3
    res = CliRunner().invoke(app, [
        "validate", "--only", "my_dose_response", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(tmp_path / "v"),
        "--workers", "1", "--seeds", "3"])
    assert res.exit_code == (0 if vals[0] > cut else 1), res.output
    table = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert table["simulated"].iloc[0] == pytest.approx(vals[0], rel=1e-12)
    assert list(table["replication"]) == [f"{expected}/3", "0/3"]
    assert "<th>replication</th>" in (tmp_path / "v" / "report.html").read_text()
    res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--seeds", "-1",
                                   "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "--seeds" in res.output
    assert not (tmp_path / "w").exists()
    with pytest.raises(ValidationSetupError, match="--seeds"):
        validate(only=["T-PK-06"], seeds=1.5, registry=load_registry())


def test_expect_reports_each_target_at_scaled_group_sizes(tmp_path):
    """validate --expect F: every replica once more at its own seed with each arm's group
    size x F; each target's value there (expected), inside or outside its tolerance, and
    a pass whose expectation lies outside is listed as one by chance; the verdict stays
    the replica's own."""
    from typer.testing import CliRunner

    from ketasim.cli import app
    from ketasim.experiment.runner import simulate
    from ketasim.validation.run import scaled_scenario

    rep = _lab_replica(tmp_path)
    expr = LAB_RATIO
    sc = load_scenario(rep)
    big = scaled_scenario(rep, 20)
    assert [a.n for a in big.arms] == [120, 120] and big.seed == sc.seed
    v0 = evaluate(expr, simulate(sc, registry=load_registry()).readouts)
    v20 = evaluate(expr, simulate(big, registry=load_registry()).readouts)
    assert v0 != v20
    # a threshold between the two: the replica passes, its expectation does not
    cut = (v0 + v20) / 2.0
    tol = f"> {cut!r}" if v0 > v20 else f"< {cut!r}"
    (tmp_path / "targets.yaml").write_text(NEW_TARGETS.replace('tolerance: "> 1"',
                                                               f'tolerance: "{tol}"'))
    res = CliRunner().invoke(app, [
        "validate", "--only", "my_dose_response", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(tmp_path / "v"),
        "--workers", "1", "--expect", "20"])
    assert res.exit_code == 0, res.output
    assert re.search(r"passing by chance.*T-LAB-1", " ".join(res.output.split()))
    table = pd.read_csv(tmp_path / "v" / "validation.csv").set_index("target_id")
    assert table.loc["T-LAB-1", "status"] == "pass"
    assert table.loc["T-LAB-1", "expected"] == pytest.approx(v20, rel=1e-12)
    assert table.loc["T-LAB-1", "expected_status"] == "outside"
    # its effect expression is the same ratio; T-LAB-2 has none
    assert table.loc["T-LAB-1", "expected_effect"] == pytest.approx(v20, rel=1e-12)
    assert math.isnan(table.loc["T-LAB-2", "expected_effect"])
    assert table.loc["T-LAB-2", "expected_status"] in ("inside", "outside")
    # the expectation's standard error, from the run split into 8 parts of 15 an arm
    se = table.loc["T-LAB-1", "expected_se"]
    assert 0.0 < se < 0.1 * abs(v20) and not math.isnan(table.loc["T-LAB-2", "expected_se"])
    page = (tmp_path / "v" / "report.html").read_text()
    assert "<th>expected</th>" in page and "<th>expected_effect</th>" in page
    assert "<th>expected_se</th>" in page and "within t standard errors" in page
    line = page[page.index('<p id="expectation">'):]
    line = line[:line.index("</p>")]
    assert "x 20" in line and re.search(r"passing by chance[^;]*T-LAB-1", line)
    assert '"expect": 20' in (tmp_path / "v" / "manifest.json").read_text()
    # without --expect the columns are there and empty
    res = CliRunner().invoke(app, [
        "validate", "--only", "my_dose_response", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(tmp_path / "u"),
        "--workers", "1"])
    table = pd.read_csv(tmp_path / "u" / "validation.csv")
    assert table["expected"].isna().all() and table["expected_status"].isna().all()
    assert table["expected_se"].isna().all()
    assert 'id="expectation"' not in (tmp_path / "u" / "report.html").read_text()
    # bad factors: one clear error, nothing written
    res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--expect", "1",
                                   "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "--expect" in res.output
    assert not (tmp_path / "w").exists()
    with pytest.raises(ValidationSetupError, match=r"--expect 20000: replica my_dose_response"):
        scaled_scenario(rep, 20000)  # 120,000 mice an arm: past the scenario limit
    for bad in (1, -2, 1001, 2.5, True):
        with pytest.raises(ValidationSetupError, match="--expect"):
            validate(only=["T-PK-06"], expect=bad, registry=load_registry())


def test_synthesis_figure_has_the_human_lines():
    """F-W-20 (issue 14): plasma ketamine (the drug arm's own values), dissociation and
    MADRS against placebo join the mouse lines when their replicas ran."""
    from ketasim.report.synthesis import difference_courses

    pk = pd.DataFrame({"arm": "ketamine", "subject": 0, "assay": "plasma_pk",
                       "readout": "ketamine_plasma_ng_ml", "time_h": [0.5, 1.0, 4.0],
                       "value": [150.0, 100.0, 20.0], "unit": "ng/mL"})
    trial = pd.DataFrame({
        "arm": ["ketamine"] * 3 + ["placebo"] * 3, "subject": 0, "assay": "madrs",
        "readout": "madrs_total", "time_h": [-24.0, 24.0, 168.0] * 2,
        "value": [33.0, 17.0, 27.0, 33.0, 28.0, 28.0], "unit": "points"})
    courses = {s.label: (t, d) for s, t, d in difference_courses(
        {"pk_human_infusion": pk, "trd_single_infusion": trial})}
    t, d = courses["plasma ketamine (0.5 mg/kg over 40 min)"]
    assert list(t) == [0.5, 1.0, 4.0] and d[0] == pytest.approx(1.0)
    t, d = courses["MADRS, ketamine - placebo"]
    assert list(t) == [24.0, 168.0] and d == pytest.approx([-1.0, -1 / 11])


# ------------------------------------------------------------------ the validated domain
def test_the_extent_file_matches_the_replicas():
    # regenerate with: python -m ketasim.validation.domain --write
    from ketasim.validation.domain import replica_extent, validated_extent

    assert validated_extent() == replica_extent()
    ext = validated_extent()
    assert ext.stress_h[("mouse", "cort")] == 240.0  # 10 days of CORT (Moda-Sava design)
    assert ext.doses[("mouse", "ketamine")] == 1
    assert not any(k == "midazolam" for _, k in ext.doses)  # inert: not counted


DOMAIN = """
name: d
species: mouse
seed: 1
arms:
  - name: long_cort
    n: 2
    protocol:
      - {at: 0h, stress: cort, duration: 10d}
      - {at: 12d, stress: cort, duration: 10d}
    assays: [{assay: signaling_state, at: [1h]}]
  - name: replica_sized
    n: 2
    protocol:
      - {at: 0h, stress: restraint, duration: 14d}
      - {at: 15d, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: [{assay: signaling_state, at: [1h]}]
  - name: daily_ketamine
    n: 2
    protocol:
      - {at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1d, doses: 2}
    assays: [{assay: signaling_state, at: [1h]}]
"""


def test_runs_beyond_the_replicas_are_warned_of():
    from ketasim.scenario import load_scenario_text
    from ketasim.validation.domain import domain_warnings

    lines = domain_warnings(load_scenario_text(DOMAIN))
    # 20 days of CORT in two courses (> 1.5 x the replicas' 10); 14 days of restraint
    # and a single dose are within; two doses are beyond the mouse replicas' one
    assert len(lines) == 2, lines
    assert lines[0].startswith("arms[0] ('long_cort'): 20 days of cort, beyond the "
                               "validation replicas (at most 10 days in the mouse)")
    assert "no floor" in lines[0]
    assert lines[1].startswith("arms[2].protocol[ketamine at 0 h]: 2 doses of ketamine "
                               "(arm 'daily_ketamine'), beyond the validation replicas "
                               "(at most 1 in the mouse)")
    # the same arms in the rat, which no CORT replica covers: not judged
    rat = load_scenario_text(DOMAIN.replace("species: mouse", "species: rat"))
    assert [ln for ln in domain_warnings(rat) if "cort" in ln] == []


def test_a_run_beyond_the_replicas_says_so_and_keeps_it(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    (tmp_path / "s.yaml").write_text(DOMAIN)
    r = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out",
                                 str(tmp_path / "o")], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert r.output.count("warning: arms[0] ('long_cort'): 20 days of cort") == 1
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert sum("beyond the validation replicas" in w for w in manifest["warnings"]) == 2
