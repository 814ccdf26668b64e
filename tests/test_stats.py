"""``ketasim.analysis.stats`` on hand-made readouts tables with known answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ketasim.analysis.stats import STATS_COLUMNS, SUMMARY_COLUMNS, compare, summarize
from ketasim.scenario import Comparison

READOUT = "psd95_rel"
ASSAY = "western_blot"


def readouts(groups: dict[str, list[float]], readout: str = READOUT, assay: str = ASSAY,
             time_h: float = 24.0, unit: str = "1") -> pd.DataFrame:
    """A long readouts table: one row per value, subjects numbered within each arm.

    Parameters
    ----------
    groups : dict of str to list of float
        Arm -> values (NaN allowed).
    readout, assay, unit : str
        Same for every row.
    time_h : float
        Same for every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, subject, assay, readout, time_h, value, unit``.
    """
    rows = [{"arm": arm, "subject": i, "assay": assay, "readout": readout, "time_h": time_h,
             "value": float(v), "unit": unit}
            for arm, values in groups.items() for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                       "value", "unit"])


def comparison(arms: list[str], test: str = "welch_t", at: str = "24h",
               assay: str | None = ASSAY) -> Comparison:
    """A validated scenario comparison of :data:`READOUT`.

    Parameters
    ----------
    arms : list of str
        Compared arms.
    test : str
        Statistical test name.
    at : str
        Time with units.
    assay : str or None
        Restrict to this assay.

    Returns
    -------
    ketasim.scenario.Comparison
    """
    return Comparison(readout=READOUT, at=at, arms=arms, test=test, assay=assay)


def row(summary: pd.DataFrame, arm: str, time_h: float = 24.0) -> pd.Series:
    """The one summary row of ``arm`` at ``time_h``.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`summarize`.
    arm : str
        Arm name.
    time_h : float
        Time.

    Returns
    -------
    pandas.Series
    """
    sel = summary[(summary["arm"] == arm) & (summary["time_h"] == time_h)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


# ------------------------------------------------------------------ summarize
def test_summarize_known_values():
    s = summarize(readouts({"a": [1, 2, 3, 6], "b": [10, 10, 13]}))
    assert list(s.columns) == SUMMARY_COLUMNS
    assert list(s["arm"]) == ["a", "b"]
    a = row(s, "a")
    # mean 3; squared deviations 4+1+0+9 = 14; sd = sqrt(14/3); sem = sd/2
    assert a["n"] == 4 and a["mean"] == pytest.approx(3.0)
    assert a["sem"] == pytest.approx(math.sqrt(14 / 3) / 2, rel=1e-12)
    b = row(s, "b")
    # mean 11; deviations 1+1+4 = 6; sd = sqrt(3); sem = sqrt(3)/sqrt(3) = 1
    assert b["n"] == 3 and b["mean"] == pytest.approx(11.0)
    assert b["sem"] == pytest.approx(1.0, rel=1e-12)
    assert (a["unit"], a["assay"], a["readout"]) == ("1", ASSAY, READOUT)


def test_summarize_ignores_nan():
    s = summarize(readouts({"a": [2, np.nan, 4], "b": [np.nan, np.nan], "c": [5, np.nan]}))
    a = row(s, "a")
    assert a["n"] == 2 and a["mean"] == pytest.approx(3.0)
    assert a["sem"] == pytest.approx(1.0, rel=1e-12)  # sd sqrt(2) / sqrt(2)
    b = row(s, "b")
    assert b["n"] == 0 and np.isnan(b["mean"]) and np.isnan(b["sem"])
    c = row(s, "c")
    assert c["n"] == 1 and c["mean"] == 5.0 and np.isnan(c["sem"])


def test_summarize_keeps_times_readouts_and_arm_order_apart():
    df = pd.concat([
        readouts({"z_first": [1, 3], "a_second": [10, 30]}, time_h=2.0),
        readouts({"z_first": [5, 7], "a_second": [50, 70]}, time_h=-1.0),
        readouts({"z_first": [100, 300]}, readout="pmtor_rel", time_h=2.0),
    ], ignore_index=True)
    s = summarize(df)
    assert len(s) == 5
    assert list(dict.fromkeys(s["arm"])) == ["z_first", "a_second"], "arms in first-seen order"
    z = s[(s["arm"] == "z_first") & (s["readout"] == READOUT)]
    assert list(z["time_h"]) == [-1.0, 2.0], "times sorted within an arm"
    assert list(z["mean"]) == [6.0, 2.0]
    other = s[s["readout"] == "pmtor_rel"]
    assert list(other["mean"]) == [200.0] and list(other["n"]) == [2]


def test_summarize_matches_pandas_on_random_data(rng):
    values = {f"arm{k}": list(rng.normal(k, 1.0 + k, size=5 + k)) for k in range(4)}
    values["arm2"][1] = np.nan
    s = summarize(readouts(values))
    for arm, v in values.items():
        v = np.asarray(v)
        v = v[np.isfinite(v)]
        r = row(s, arm)
        assert r["n"] == len(v)
        assert r["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert r["sem"] == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), rel=1e-12)


def test_summarize_empty_table():
    s = summarize(readouts({}))
    assert s.empty and list(s.columns) == SUMMARY_COLUMNS


# ------------------------------------------------------------------ compare
@pytest.fixture
def two_groups(rng) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of unequal size and spread (so Welch and Student differ)."""
    return rng.normal(1.0, 0.2, size=7), rng.normal(1.3, 0.6, size=11)


def _table_with_noise(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """The groups at 24 h, plus NaNs and rows the comparison must not pick up.

    Parameters
    ----------
    groups : dict of str to numpy.ndarray
        Arm -> values to compare.

    Returns
    -------
    pandas.DataFrame
        A readouts table.
    """
    padded = {arm: [*v, np.nan] for arm, v in groups.items()}
    distract = {arm: [1e3, -1e3, 5e2] for arm in groups}
    return pd.concat([
        readouts(padded),
        readouts(distract, time_h=2.0),                    # other time
        readouts(distract, assay="immunofluorescence"),    # other assay, same readout
        readouts(distract, readout="pmtor_rel"),           # other readout
        readouts({"elsewhere": [7.0, 8.0, 9.0]}),           # arm not compared
    ], ignore_index=True)


@pytest.mark.parametrize("test,direct", [
    ("welch_t", lambda a, b: sps.ttest_ind(a, b, equal_var=False)),
    ("student_t", lambda a, b: sps.ttest_ind(a, b, equal_var=True)),
    ("mann_whitney", lambda a, b: sps.mannwhitneyu(a, b, alternative="two-sided")),
])
def test_compare_two_groups_matches_scipy(two_groups, test, direct):
    a, b = two_groups
    out = compare(_table_with_noise({"saline": a, "ketamine": b}),
                  [comparison(["saline", "ketamine"], test)])
    assert list(out.columns) == STATS_COLUMNS and len(out) == 1
    r = out.iloc[0]
    ref = direct(a, b)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert (r["test"], r["groups"], r["n"]) == (test, "saline;ketamine", "7;11")
    assert r["time_h"] == 24.0 and r["readout"] == READOUT and r["assay"] == ASSAY
    assert [float(m) for m in r["means"].split(";")] == pytest.approx([a.mean(), b.mean()],
                                                                      rel=1e-5)


def test_welch_and_student_are_told_apart(two_groups):
    a, b = two_groups
    assert sps.ttest_ind(a, b, equal_var=False).pvalue != pytest.approx(
        sps.ttest_ind(a, b, equal_var=True).pvalue, rel=1e-3), "data must tell the tests apart"
    table = _table_with_noise({"saline": a, "ketamine": b})
    welch = compare(table, [comparison(["saline", "ketamine"])]).iloc[0]
    assert welch["test"] == "welch_t", "Welch t is the default"
    assert welch["p"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)


@pytest.mark.parametrize("test,direct", [("anova", sps.f_oneway), ("kruskal", sps.kruskal)])
def test_compare_several_groups_matches_scipy(rng, test, direct):
    groups = {"vehicle": rng.normal(1.0, 0.3, 6), "ketamine": rng.normal(1.4, 0.3, 8),
              "rapamycin_ketamine": rng.normal(1.1, 0.5, 5)}
    out = compare(_table_with_noise(groups), [comparison(list(groups), test)])
    r = out.iloc[0]
    ref = direct(*groups.values())
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert r["n"] == "6;8;5" and r["groups"] == "vehicle;ketamine;rapamycin_ketamine"


def test_compare_without_assay_pools_every_assay_of_the_readout():
    table = pd.concat([readouts({"a": [1, 2], "b": [3, 4]}),
                       readouts({"a": [5], "b": [6]}, assay="immunofluorescence")],
                      ignore_index=True)
    r = compare(table, [comparison(["a", "b"], assay=None)]).iloc[0]
    # the row names every assay it pooled (it was left empty)
    assert r["n"] == "3;3" and r["assay"] == "immunofluorescence;western_blot"
    ref = sps.ttest_ind([1, 2, 5], [3, 4, 6], equal_var=False)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    # the row read back (as pilot power reads stats.csv) selects the same rows
    again = compare(table, [comparison(["a", "b"], assay=None).model_copy(
        update={"assay": r["assay"]})]).iloc[0]
    assert again["p"] == r["p"] and again["assay"] == r["assay"]


@pytest.mark.parametrize("values", [
    {"a": [1.0], "b": [2.0, 3.0, 4.0]},
    {"a": [1.0, np.nan, np.nan], "b": [2.0, 3.0]},
    {"a": [], "b": [2.0, 3.0]},
], ids=["one-value", "nan-leaves-one", "absent-arm"])
@pytest.mark.parametrize("test", ["welch_t", "mann_whitney"])
def test_compare_small_groups_give_nan(values, test):
    r = compare(readouts(values), [comparison(["a", "b"], test)]).iloc[0]
    assert np.isnan(r["p"]) and np.isnan(r["statistic"])
    a = [v for v in values["a"] if np.isfinite(v)]
    assert r["n"] == f"{len(a)};{len(values['b'])}"


def test_compare_small_group_among_three_gives_nan(rng):
    table = readouts({"a": list(rng.normal(size=5)), "b": [1.0], "c": list(rng.normal(size=5))})
    r = compare(table, [comparison(["a", "b", "c"], "anova")]).iloc[0]
    assert np.isnan(r["p"]) and np.isnan(r["statistic"])


def test_compare_keeps_comparison_order_and_numbers_them(two_groups):
    a, b = two_groups
    table = _table_with_noise({"saline": a, "ketamine": b})
    out = compare(table, [comparison(["ketamine", "saline"], "mann_whitney"),
                          comparison(["saline", "ketamine"], "welch_t")])
    assert list(out["comparison"]) == [0, 1]
    assert list(out["groups"]) == ["ketamine;saline", "saline;ketamine"]
    assert out.iloc[0]["p"] == pytest.approx(
        sps.mannwhitneyu(b, a, alternative="two-sided").pvalue, rel=1e-12)


def test_compare_nothing_requested():
    out = compare(readouts({"a": [1, 2]}), [])
    assert out.empty and list(out.columns) == STATS_COLUMNS


# ---------------------------------------------------------------- change from baseline


def _baselined(arms, test="welch_t", baseline="-1d", assay=ASSAY):
    return Comparison(readout=READOUT, at="24h", baseline=baseline, arms=arms, test=test,
                      assay=assay)


def test_compare_baseline_tests_each_subjects_change():
    pre = readouts({"a": [10, 20, 30, 40], "b": [1, 2, 3, 4]}, time_h=-24.0)
    post = readouts({"a": [12, 23, 31, 45], "b": [1, 1, 5, 2]})
    r = compare(pd.concat([pre, post], ignore_index=True), [_baselined(["a", "b"])]).iloc[0]
    ref = sps.ttest_ind([2, 3, 1, 5], [0, -1, 2, -2], equal_var=False)
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert r["n"] == "4;4" and r["baseline_h"] == -24.0 and r["time_h"] == 24.0
    # without the baseline the values at 24 h are tested instead
    plain = compare(pd.concat([pre, post], ignore_index=True), [comparison(["a", "b"])])
    ref = sps.ttest_ind([12, 23, 31, 45], [1, 1, 5, 2], equal_var=False)
    assert plain.iloc[0]["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert np.isnan(plain.iloc[0]["baseline_h"])


def test_compare_baseline_leaves_out_subjects_missing_a_time():
    pre = readouts({"a": [10, 20, 30], "b": [1, 2, 3]}, time_h=-24.0)
    pre = pre[~((pre.arm == "a") & (pre.subject == 2))]
    post = readouts({"a": [12, 23, 31], "b": [1, 1, 5]})
    r = compare(pd.concat([pre, post], ignore_index=True), [_baselined(["a", "b"])]).iloc[0]
    assert r["n"] == "2;3"
    assert r["means"] == "2.5;0.333333"


def test_compare_baseline_pairs_branches_for_a_mixed_model():
    rng = np.random.default_rng(5)
    rows = []
    for arm, shift in (("a", 1.0), ("b", 0.0)):
        for subject in range(5):
            offset = rng.normal(0, 3)
            for branch in range(4):
                base = 10 + offset + rng.normal(0, 2)
                for t, v in ((-24.0, base), (24.0, base + shift + rng.normal(0, 0.3))):
                    rows.append({"arm": arm, "subject": subject, "branch": str(branch),
                                 "assay": "two_photon_spines_nested", "readout": READOUT,
                                 "time_h": t, "value": v, "unit": "1"})
    table = pd.DataFrame(rows)
    # mixed_lm is a test of ketasim analyze's design comparisons (resolved to hours)
    mixed = SimpleNamespace(readout=READOUT, at=24.0, baseline=-24.0, arms=["a", "b"],
                            test="mixed_lm", assay=None, region=None)
    r = compare(table, [mixed]).iloc[0]
    assert r["n"] == "5;5"  # animals (20 branches each arm)
    assert r["statistic"] > 5 and r["p"] < 1e-4  # the branch offsets cancel (t on 8 df)
    no_base = SimpleNamespace(**{**vars(mixed), "baseline": None})
    assert compare(table, [no_base]).iloc[0]["p"] > 0.01  # buried in the offsets


def test_compare_baseline_refuses_unmatched_cells_and_ambiguous_rows():
    pre = readouts({"a": [1, 2], "b": [3, 4]}, time_h=-24.0).assign(cell="0")
    post = readouts({"a": [1, 2], "b": [3, 4]}).assign(cell="0")
    with pytest.raises(ValueError, match="cells are not matched across sessions"):
        compare(pd.concat([pre, post], ignore_index=True), [_baselined(["a", "b"])])
    two = pd.concat([readouts({"a": [1, 2], "b": [3, 4]}, time_h=t, assay=a)
                     for t in (-24.0, 24.0) for a in (ASSAY, "immunofluorescence")],
                    ignore_index=True)
    with pytest.raises(ValueError, match="compare\\[0\\]: baseline: .* name its assay"):
        compare(two, [_baselined(["a", "b"], assay=None)])


def test_scenario_baseline_must_be_a_measured_time_other_than_at():
    from ketasim.scenario import ScenarioError, load_scenario_text

    text = """
name: base
species: mouse
seed: 1
arms:
  - {name: a, n: 3, protocol: [{at: 0h, drug: saline, route: ip}],
     assays: [{assay: tail_suspension, at: [1h, 24h]}, {assay: western_blot, at: [1h, 24h]}]}
  - {name: b, n: 3, protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: tail_suspension, at: [1h, 24h]}, {assay: western_blot, at: [1h, 24h]}]}
compare:
  - {readout: READOUT, at: 24h, baseline: BASE, arms: [b, a]}
"""
    tst = text.replace("READOUT", "tst_immobility_s")
    ok = load_scenario_text(tst.replace("BASE", "1h"))
    assert ok.compare[0].baseline == 1.0
    for base, fragment in (("2h", "compare[0].baseline"), ("24h", "a time other than at")):
        with pytest.raises(ScenarioError) as e:
            load_scenario_text(tst.replace("BASE", base))
        assert fragment in str(e.value)
    # a blot ends the animal: no subject's change between two of its times
    with pytest.raises(ScenarioError) as e:
        load_scenario_text(text.replace("READOUT", "psd95_rel").replace("BASE", "1h"))
    assert "compare[0].baseline" in str(e.value) and "western_blot ends the animal" in str(e.value)


def test_a_mixed_model_without_assay_names_the_nested_assay_it_read():
    per_subject = readouts({"a": [1.0, 2.0, 1.5], "b": [3.0, 4.0, 3.5]})
    nested = readouts({"a": [1, 2, 1, 2, 1, 2], "b": [3, 4, 3, 4, 3, 4]},
                      assay=ASSAY + "_nested")
    nested["subject"] = nested["subject"] // 2  # two branches per subject
    from types import SimpleNamespace

    # (as an analyze design writes it: scenarios have no mixed_lm)
    mixed = SimpleNamespace(readout=READOUT, assay=None, test="mixed_lm", at=24.0,
                            arms=["a", "b"], baseline=None, region=None)
    out = compare(pd.concat([per_subject, nested], ignore_index=True),
                  [comparison(["a", "b"], assay=None), mixed])
    assert list(out["assay"]) == [ASSAY, ASSAY + "_nested"]
    assert list(out["n"]) == ["3;3", "3;3"]  # the mixed model's: subjects, not branches


def test_mann_whitney_with_ties_in_small_groups_is_exact():
    """3 vs 3 with every value tied within its group: the smallest attainable p is 2/20;
    the normal approximation gave 0.047. Without ties scipy's exact test is kept; with
    ties in large groups, the normal approximation."""
    from scipy import stats as sps

    from ketasim.analysis.stats import run_test

    assert run_test("mann_whitney", [np.array([1.0, 1, 1]), np.array([2.0, 2, 2])]).p == \
        pytest.approx(0.1)
    a, b = np.array([1.0, 2, 3, 4]), np.array([5.0, 6, 7, 8.5])
    assert run_test("mann_whitney", [a, b]).p == pytest.approx(
        sps.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue)
    big_a, big_b = np.arange(40.0) // 2, np.arange(40.0) // 2 + 3
    assert run_test("mann_whitney", [big_a, big_b]).p == pytest.approx(
        sps.mannwhitneyu(big_a, big_b, alternative="two-sided",
                         method="asymptotic").pvalue)


def test_holm_adjustment_known_answer():
    """Holm by hand: sorted 0.001, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1 -> 0.005,
    0.04, 0.09, 0.08 (raised to the running maximum 0.09), 0.2; NaN outside the family."""
    from ketasim.analysis.stats import holm

    got = holm(np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.001]))
    np.testing.assert_allclose(got, [0.04, 0.09, np.nan, 0.09, 0.2, 0.005], rtol=1e-12)
    assert np.isnan(holm(np.array([np.nan]))).all()


def test_report_names_comparisons_without_a_test():
    """A comparison with an arm of one value has no p: the report says which and why
    (the cells were blank without a word)."""
    from ketasim.report.html import _stats_html

    stats = compare(readouts({"a": [1.0], "b": [2.0, 3.0, 2.5]}),
                    [comparison(["a", "b"])])
    text = " ".join(_stats_html(stats))
    assert "No test (an arm with fewer than 2 values" in text and "n 1;3" in text
