"""Review of a run's outputs and the tools that read them back: the run folder
(``ketasim.report.run_folder``, ``ketasim.io.results``), the ``summary.csv`` statistics
(``ketasim.analysis.stats.summarize``), ``ketasim query`` (``ketasim.io.query``), the
comparison of two runs (``ketasim.analysis.diff``, ``ketasim run --against``) and the
manifest's provenance (``ketasim.provenance``), against computations made here:

- the files and columns ARCHITECTURE.md names, with their dtypes and the assay
  catalogue's units; summary.csv recomputed from readouts.parquet by hand (n counts
  non-missing values, SD with ddof 1, SEM = SD / sqrt(n), NaN for n = 1 and n = 0, one
  row per arm, assay, region, readout and time); values below a plasma LLOQ reported as
  missing, never as 0; stats.csv against scipy's Welch test on the readouts;
- ``ketasim query``: a summary recomputed in SQL equals summary.csv; non-ASCII text
  round-trips through CSV and JSON output; the sandbox (no file outside the run folder
  readable, not even one of a sibling folder sharing its name's prefix);
- ``compare_summaries`` / ``run --against``: one changed value gives exactly one
  ``value`` row, identical runs none, both directions antisymmetric, the documented
  tolerance (``VALUE_RTOL``), rows new in one run or missing from it; a real run
  changed by ``--set`` moves only the arms that read the parameter;
- provenance: the scenario text (non-ASCII), its hash, the input file's SHA-256, the
  registry digest (reproducible, and changed by any single parameter), versions and
  times; a run interrupted by SIGTERM's ``SystemExit`` leaves nothing behind.

Defects found (once ``xfail(strict=True, reason="BUG: ...")``) are fixed; their reasons stay
as ``# fixed (was BUG)`` comments above the tests that guard the fixes.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

import ketasim
from ketasim import provenance
from ketasim.analysis.diff import RUN_COMPARISON_COLUMNS, VALUE_RTOL, compare_summaries
from ketasim.analysis.stats import SUMMARY_COLUMNS, summarize
from ketasim.cli import app
from ketasim.experiment.assays import ASSAYS
from ketasim.io.query import QueryError, query
from ketasim.io.results import write_readouts
from ketasim.params import load_registry
from ketasim.scenario import load_scenario, scenario_hash

DESCRIPTION = "Kétamine à 10 mg/kg — revue des sorties ✓ <b>&amp;</b> µ"
TINY = f"""
name: tiny-outputs
description: "{DESCRIPTION}"
species: mouse
seed: 11
arms:
  - name: saline
    n: 3
    protocol: [{{at: 0h, drug: saline, route: ip}}]
    assays:
      - {{assay: western_blot, at: [1h]}}
      - {{assay: plasma_pk, at: [10min, 24h]}}
      - {{assay: sucrose_preference, at: [1d]}}
  - name: ketamine
    n: 4
    protocol: [{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}]
    assays:
      - {{assay: western_blot, at: [1h]}}
      - {{assay: plasma_pk, at: [10min, 24h]}}
      - {{assay: sucrose_preference, at: [1d]}}
  - name: solo
    n: 1
    protocol: [{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}]
    assays:
      - {{assay: western_blot, at: [1h]}}
  - name: ketamine_lloq
    n: 5
    protocol: [{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}]
    assays:
      - {{assay: plasma_pk, at: [10min, 30min, 1h, 3h], options: {{lloq: 300}}}}
compare:
  - {{readout: pmtor_rel, assay: western_blot, at: 1h, arms: [ketamine, saline]}}
"""
REGIONS = """
name: tiny-regions
species: mouse
seed: 5
arms:
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: western_blot, at: [1h]}
      - {assay: western_blot, at: [1h], region: striatum}
"""
# the same scenario without the striatal assay: its mPFC numbers are the same
# (README: adding an assay leaves the other numbers unchanged)
DEFAULT_REGION_ONLY = """
name: tiny-regions
species: mouse
seed: 5
arms:
  - name: ketamine
    n: 3
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays:
      - {assay: western_blot, at: [1h]}
"""
# arm names the scenario schema accepts, and that pandas reads as missing by default
NA_NAMES = """
name: tiny-na
species: mouse
seed: 5
arms:
  - name: None
    n: 2
    protocol: [{at: 0h, drug: saline, route: ip}]
    assays: [{assay: western_blot, at: [1h]}]
  - name: NA
    n: 2
    protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}]
    assays: [{assay: western_blot, at: [1h]}]
"""
CL = "pk.mouse.ketamine.cl"
KEYS = ["arm", "assay", "readout", "time_h"]


def invoke(*args):
    """``ketasim ARGS`` in this process (``exit_code``, ``stdout``, ``stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


def ok(res):
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return res


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_csv(path: Path) -> pd.DataFrame:
    """A run's CSV as written (no text read as missing, floats to the last bit)."""
    return pd.read_csv(path, float_precision="round_trip", keep_default_na=False, na_values=[""])


def mean_sd(values) -> tuple[int, float, float]:
    """n of the non-missing values, their mean and SD (ddof 1), by hand: NaN mean for
    n = 0 and NaN SD for n < 2."""
    x = [float(v) for v in values if not math.isnan(float(v))]
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan
    m = math.fsum(x) / n
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in x) / (n - 1)) if n > 1 else math.nan
    return n, m, sd


def expected_summary(r: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in r.groupby(keys, sort=True, dropna=False):
        n, m, sd = mean_sd(g["value"])
        rows.append((*key, n, m, sd / math.sqrt(n) if n else math.nan))
    return pd.DataFrame(rows, columns=[*keys, "n", "mean", "sem"])


def write_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny run (twice, the second against the first), with --set, and the region
    runs, all through the command line."""
    root = tmp_path_factory.mktemp("outputs")
    tiny = write_file(root, "tiny.yaml", TINY)
    regions = write_file(root, "regions.yaml", REGIONS)
    mpfc = write_file(root, "mpfc.yaml", DEFAULT_REGION_ONLY)
    out = {"root": root, "tiny.yaml": tiny}
    ok(invoke("run", tiny, "--out", root / "a"))
    ok(invoke("run", tiny, "--out", root / "a2", "--against", root / "a"))
    faster = min(load_registry()[CL].high, 2 * load_registry()[CL].value)
    ok(
        invoke(
            "run", tiny, "--out", root / "set", "--set", f"{CL}={faster}", "--against", root / "a"
        )
    )
    ok(invoke("run", mpfc, "--out", root / "mpfc"))
    ok(invoke("run", regions, "--out", root / "regions"))
    for name in ("a", "a2", "set", "mpfc", "regions"):
        out[name] = root / name
    out["faster"] = faster
    return out


# ------------------------------------------------------------------ the run folder
def test_files_columns_dtypes_and_units_of_the_contract(runs):
    a = runs["a"]
    names = {p.name for p in a.iterdir()}
    assert {"readouts.parquet", "summary.csv", "stats.csv", "manifest.json", "report.html"} <= names
    assert any(n.startswith("fig_") and n.endswith(".png") for n in names)
    assert not [p for p in runs["root"].iterdir() if p.name.startswith(".")]  # no temp
    schema = pq.read_schema(a / "readouts.parquet")
    assert schema.names == ["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
    assert [schema.field(c).type for c in schema.names] == [
        pa.string(),
        pa.int64(),
        pa.string(),
        pa.string(),
        pa.float64(),
        pa.float64(),
        pa.string(),
    ]
    r = pd.read_parquet(a / "readouts.parquet")
    # every readout carries the unit its assay declares; times are hours from dose 0
    declared = {(name, ro.name): ro.unit for name, spec in ASSAYS.items() for ro in spec.readouts}
    for (assay, readout), unit in r.groupby(["assay", "readout"])["unit"].unique().items():
        assert list(unit) == [declared[(assay, readout)]], (assay, readout)
    assert set(r["time_h"].round(9)) == {round(10 / 60, 9), 0.5, 1.0, 3.0, 24.0}
    subjects = r.groupby("arm")["subject"].unique().map(sorted).to_dict()
    assert subjects == {
        "saline": [0, 1, 2],
        "ketamine": [0, 1, 2, 3],
        "solo": [0],
        "ketamine_lloq": [0, 1, 2, 3, 4],
    }
    s = read_csv(a / "summary.csv")
    assert list(s.columns) == SUMMARY_COLUMNS  # no region column: the default one only
    assert s["n"].dtype == np.int64
    stats = read_csv(a / "stats.csv")
    assert {"test", "groups", "statistic", "p"} <= set(stats.columns)


def test_summary_equals_a_recomputation_from_the_readouts(runs):
    r = pd.read_parquet(runs["a"] / "readouts.parquet")
    s = read_csv(runs["a"] / "summary.csv")
    want = expected_summary(r, [*KEYS, "unit"])
    got = s.sort_values(KEYS, ignore_index=True)[[*KEYS, "unit", "n", "mean", "sem"]]
    assert len(got) == len(want)  # one row per arm, assay, readout and time; none extra
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    # the arms in the scenario's order, as the report shows them
    assert list(dict.fromkeys(s["arm"])) == ["saline", "ketamine", "solo", "ketamine_lloq"]


def test_one_subject_gives_a_missing_sem_and_no_values_a_missing_mean(runs):
    s = read_csv(runs["a"] / "summary.csv")
    solo = s[s["arm"] == "solo"]
    assert len(solo) == len(ASSAYS["western_blot"].readouts)
    assert (solo["n"] == 1).all() and solo["mean"].notna().all()
    assert solo["sem"].isna().all()  # SD of one value is undefined, not 0
    # saline has no ketamine in plasma: every sample below the LLOQ, n = 0
    blq = s[(s["arm"] == "saline") & (s["readout"] == "ketamine_plasma_ng_ml")]
    assert len(blq) == 2 and (blq["n"] == 0).all()
    assert blq["mean"].isna().all() and blq["sem"].isna().all()


def test_values_below_the_lloq_are_missing_and_not_counted(runs):
    r = pd.read_parquet(runs["a"] / "readouts.parquet")
    pk = r[(r["arm"] == "ketamine_lloq") & (r["readout"] == "ketamine_plasma_ng_ml")]
    assert len(pk) == 5 * 4
    finite = pk["value"].dropna()
    assert len(finite) and pk["value"].isna().any()  # both sides of the limit occur
    assert (finite >= 300).all()  # never a value below the LLOQ, never 0 for one
    # the default LLOQ (1 ng/mL) of the other arms
    other = r[(r["assay"] == "plasma_pk") & (r["arm"] != "ketamine_lloq")]["value"].dropna()
    assert (other >= 1.0).all()
    s = read_csv(runs["a"] / "summary.csv")
    got = s[(s["arm"] == "ketamine_lloq") & (s["readout"] == "ketamine_plasma_ng_ml")]
    want = pk.groupby("time_h")["value"].count()
    assert list(got["n"]) == list(want) and got["n"].sum() == len(finite)


def test_summary_per_region_equals_a_recomputation(runs):
    r = pd.read_parquet(runs["regions"] / "readouts.parquet")
    assert set(r["region"]) == {"mpfc", "striatum"}
    s = read_csv(runs["regions"] / "summary.csv")
    assert list(s.columns) == [*SUMMARY_COLUMNS[:2], "region", *SUMMARY_COLUMNS[2:]]
    keys = ["arm", "assay", "region", "readout", "time_h", "unit"]
    want = expected_summary(r, keys)
    got = s.sort_values(keys, ignore_index=True)[[*keys, "n", "mean", "sem"]]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


def test_stats_csv_equals_scipys_welch_test_on_the_readouts(runs):
    r = pd.read_parquet(runs["a"] / "readouts.parquet")
    st = read_csv(runs["a"] / "stats.csv")
    assert len(st) == 1
    row = st.iloc[0]
    assert (row["test"], row["groups"]) == ("welch_t", "ketamine;saline")
    sel = r[(r["readout"] == "pmtor_rel") & (r["time_h"] == 1.0)]
    k = sel.loc[sel["arm"] == "ketamine", "value"].to_numpy()
    c = sel.loc[sel["arm"] == "saline", "value"].to_numpy()
    ref = sps.ttest_ind(k, c, equal_var=False)
    assert row["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert row["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert row["n"] == f"{len(k)};{len(c)}"


def test_summarize_keeps_rows_of_every_group_and_counts_only_values():
    r = pd.DataFrame(
        {
            "arm": ["b", "b", "b", "a", "a", "a", "a"],
            "subject": [0, 1, 2, 0, 1, 2, 3],
            "assay": ["x"] * 7,
            "readout": ["r"] * 7,
            "time_h": [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0],
            "value": [1.0, 2.0, np.nan, 5.0, np.nan, np.nan, np.nan],
            "unit": ["u"] * 7,
        }
    )
    s = summarize(r)
    assert list(s.columns) == SUMMARY_COLUMNS
    assert list(s["arm"]) == ["b", "a", "a"]  # order of first appearance
    assert list(s["n"]) == [2, 1, 0]
    assert s.loc[0, "mean"] == 1.5
    assert s.loc[0, "sem"] == pytest.approx(math.sqrt(0.5) / math.sqrt(2), rel=1e-15)
    assert s.loc[1, "mean"] == 5.0 and math.isnan(s.loc[1, "sem"])
    assert math.isnan(s.loc[2, "mean"]) and math.isnan(s.loc[2, "sem"])


# fixed (was BUG): summarize groups with pandas' default dropna, so readouts whose region is
#   missing vanish from the summary
def test_summarize_counts_readouts_without_a_region():
    # a lab's table (README: the same summaries for a lab's measurements) where only some
    # rows name a region; the runner and the NWB reader read a missing one as the default
    r = pd.DataFrame(
        {
            "arm": ["a"] * 4,
            "subject": [0, 1, 2, 3],
            "assay": ["western_blot"] * 4,
            "readout": ["psd95_rel"] * 4,
            "time_h": [24.0] * 4,
            "value": [1.0, 2.0, 3.0, 4.0],
            "unit": ["x baseline"] * 4,
            "region": ["striatum", "striatum", None, None],
        }
    )
    s = summarize(r)
    assert s["n"].sum() == 4  # every measurement counted in some row


# ------------------------------------------------------------------ ketasim query
def test_query_recomputes_the_summary_in_sql(runs):
    sql = (
        "SELECT arm, assay, region, readout, time_h, count(value) AS n, "
        "avg(value) AS mean, stddev_samp(value) / sqrt(count(value)) AS sem "
        "FROM readouts GROUP BY ALL ORDER BY arm, assay, region, readout, time_h"
    )
    got = query(runs["regions"], sql)
    want = read_csv(runs["regions"] / "summary.csv").sort_values(
        ["arm", "assay", "region", "readout", "time_h"], ignore_index=True
    )[["arm", "assay", "region", "readout", "time_h", "n", "mean", "sem"]]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    res = ok(invoke("query", runs["a"], "--tables", "--format", "json"))
    assert {t["table"] for t in json.loads(res.stdout)} == {"readouts", "summary", "stats"}


def _folder(path: Path, arm: str = "ketamine", unit: str = "x baseline") -> Path:
    path.mkdir(parents=True)
    r = pd.DataFrame(
        {
            "arm": [arm, arm, "saline"],
            "subject": [0, 1, 0],
            "assay": ["western_blot"] * 3,
            "readout": ["psd95_rel"] * 3,
            "time_h": [24.0] * 3,
            "value": [1.25, 1.5, 1.0],
            "unit": [unit] * 3,
        }
    )
    write_readouts(r, path / "readouts.parquet")
    summarize(r).to_csv(path / "summary.csv", index=False)
    return path


def test_non_ascii_names_and_units_round_trip_through_query(tmp_path):
    run = _folder(tmp_path / "run", arm="kétamine_β", unit="µm⁻¹")
    sql = "SELECT arm, unit, n, mean FROM summary ORDER BY arm"
    want = [
        {"arm": "kétamine_β", "unit": "µm⁻¹", "n": 2, "mean": 1.375},
        {"arm": "saline", "unit": "µm⁻¹", "n": 1, "mean": 1.0},
    ]
    res = ok(invoke("query", run, sql, "--format", "json"))
    assert json.loads(res.stdout) == want
    res = ok(invoke("query", run, sql, "--format", "csv"))
    assert res.stdout.splitlines()[1] == "kétamine_β,µm⁻¹,2,1.375"
    assert query(run, "SELECT DISTINCT arm FROM readouts ORDER BY arm")["arm"].tolist() == [
        "kétamine_β",
        "saline",
    ]


def test_query_sandbox_refuses_siblings_and_listing_other_folders(tmp_path):
    run = _folder(tmp_path / "run")
    sibling = tmp_path / "run_secret"  # shares the run folder's name as a prefix
    sibling.mkdir()
    (sibling / "s.csv").write_text("password\nhunter2\n")
    for sql in (
        f"SELECT * FROM read_csv('{sibling}/s.csv')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        f"SELECT * FROM read_blob('{sibling}/s.csv')",
    ):
        with pytest.raises(QueryError, match="Permission"):
            query(run, sql)


# fixed (was BUG): DuckDB's temp directory (<cwd>/.tmp/) stays in allowed_directories, so a
#   query reads files outside the run folder
def test_query_cannot_read_the_working_folders_tmp(tmp_path, monkeypatch):
    run = _folder(tmp_path / "run")
    work = tmp_path / "work"
    (work / ".tmp").mkdir(parents=True)
    (work / ".tmp" / "secret.csv").write_text("password\nhunter2\n")
    monkeypatch.chdir(work)
    for sql in (
        "SELECT * FROM read_csv('.tmp/secret.csv')",
        f"SELECT * FROM read_csv('{work}/.tmp/secret.csv')",
    ):
        with pytest.raises(QueryError, match="Permission"):
            query(run, sql)


# fixed (was BUG): a subfolder table's glob is built from the run folder's path unescaped,
#   so a folder named with [..] loses its chunked tables
def test_chunked_tables_of_a_folder_whose_name_has_brackets(tmp_path):
    for name in ("plain", "sweep[2]"):
        run = _folder(tmp_path / name)
        (run / "chunks").mkdir()
        for k in range(2):
            r = pd.read_parquet(run / "readouts.parquet").assign(
                subject=lambda d, k=k: d.subject + 10 * k
            )
            write_readouts(r, run / "chunks" / f"part-{k}.parquet")
        got = query(run, "SELECT count(*) AS n, count(DISTINCT subject) AS s FROM chunks")
        assert got.to_dict("records") == [{"n": 6, "s": 4}], name


# ------------------------------------------------------------------ diff (run --against)
def _summary(means, sems=None, arms=("a", "b"), readouts=("r1", "r2")) -> pd.DataFrame:
    rows = []
    k = 0
    for arm in arms:
        for ro in readouts:
            for t in (1.0, 24.0):
                rows.append((arm, "x", ro, t, "u", 4, means[k], (sems or [0.1] * 99)[k]))
                k += 1
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


BASE = [1.0, 2.0, 3.0, 4.0, -5.0, 6.0, 0.0, 8.0]


def test_one_changed_value_is_the_one_difference_both_ways():
    before = _summary(BASE)
    after_means = list(BASE)
    after_means[5] = 6.5
    after = _summary(after_means)
    c = compare_summaries(before, after)
    assert list(c.columns) == RUN_COMPARISON_COLUMNS
    assert list(c.index[c["change"] == "value"]) == [5]
    assert (c.drop(index=5)["change"] == "same").all()
    assert (c.drop(index=5)["difference"] == 0).all()
    assert c.loc[5, "difference"] == 0.5
    assert c.loc[5, "relative_change"] == pytest.approx(0.5 / 6.5, rel=1e-15)
    assert c.loc[5, "z"] == pytest.approx(0.5 / math.sqrt(0.02), rel=1e-12)
    back = compare_summaries(after, before)
    assert list(back["change"]) == list(c["change"])
    np.testing.assert_array_equal(back["difference"], -c["difference"])
    np.testing.assert_array_equal(back["relative_change"], -c["relative_change"])
    np.testing.assert_array_equal(back["z"], -c["z"])
    # identical summaries: nothing moved, every z 0
    same = compare_summaries(before, before.copy())
    assert set(same["change"]) == {"same"} and (same["z"] == 0).all()


def test_the_documented_tolerance_and_missing_means():
    before = _summary(BASE)
    small = [b * (1 + VALUE_RTOL / 10) for b in BASE]
    assert set(compare_summaries(before, _summary(small))["change"]) == {"same"}
    big = list(BASE)
    big[0] = BASE[0] * (1 + 10 * VALUE_RTOL)
    c = compare_summaries(before, _summary(big))
    assert list(c["change"]) == ["value"] + ["same"] * 7
    # from 0 to any value is a change; missing in both is no change, in one it is
    moved = list(BASE)
    moved[6] = 1e-12
    assert compare_summaries(before, _summary(moved))["change"][6] == "value"
    nan_both = [math.nan] + BASE[1:]
    assert compare_summaries(_summary(nan_both), _summary(nan_both))["change"][0] == "same"
    assert compare_summaries(before, _summary(nan_both))["change"][0] == "value"
    assert compare_summaries(_summary(nan_both), before)["change"][0] == "value"


def test_rows_new_in_a_run_or_missing_from_it():
    before = _summary(BASE)
    after = _summary(BASE + [9.0, 9.0, 9.0, 9.0], arms=("a", "b", "c"), readouts=("r1", "r2"))
    c = compare_summaries(before, after)
    assert len(c) == len(after)  # one row per row of the later run
    assert list(c["change"]) == ["same"] * 8 + ["new"] * 4
    assert c.loc[8:, "mean_before"].isna().all() and c.loc[8:, "n_before"].isna().all()
    back = compare_summaries(after, before)
    assert len(back) == len(before) and set(back["change"]) == {"same"}
    fewer = _summary([1.0, 2.0, 9.0, 9.0, -5.0, 6.0, 9.0, 9.0], readouts=("r1", "r3"))
    c = compare_summaries(before, fewer)
    assert list(c["change"]) == ["same"] * 2 + ["new"] * 2 + ["same"] * 2 + ["new"] * 2


def test_a_run_against_itself_and_against_a_changed_parameter(runs):
    a, a2, changed = runs["a"], runs["a2"], runs["set"]
    # same scenario and seed: byte-identical readouts and summary, nothing moved
    assert sha256(a / "readouts.parquet") == sha256(a2 / "readouts.parquet")
    assert sha256(a / "summary.csv") == sha256(a2 / "summary.csv")
    c = read_csv(a2 / "comparison.csv")
    assert len(c) == len(read_csv(a / "summary.csv")) and set(c["change"]) == {"same"}
    # the ketamine clearance moves the ketamine arms only: saline is the same measurement
    c = read_csv(changed / "comparison.csv")
    assert set(c.loc[c["arm"] == "saline", "change"]) == {"same"}
    moved = c[c["change"] == "value"]
    assert set(moved["arm"]) == {"ketamine", "solo", "ketamine_lloq"}
    s_before = read_csv(a / "summary.csv").set_index(KEYS)
    s_after = read_csv(changed / "summary.csv").set_index(KEYS)
    for row in moved.itertuples(index=False):
        key = (row.arm, row.assay, row.readout, row.time_h)
        after, before = s_after.loc[key, "mean"], s_before.loc[key, "mean"]
        assert row.mean == after or math.isnan(row.mean) and math.isnan(after)
        if math.isnan(after) or math.isnan(before):  # a mean lost or gained below the LLOQ
            assert math.isnan(row.difference) and math.isnan(row.relative_change)
        else:
            assert row.difference == pytest.approx(after - before, rel=1e-12, abs=1e-15)
    man = json.loads((changed / "manifest.json").read_text())
    assert man["against"] == {"path": str(a / "summary.csv"), "sha256": sha256(a / "summary.csv")}


# fixed (was BUG): compare_summaries fills a missing region column with '' but runs write
#   the default region as 'mpfc', so the same mPFC rows are reported as new
def test_a_run_measuring_a_second_region_against_one_measuring_the_default(runs, tmp_path):
    mpfc, regions = runs["mpfc"], runs["regions"]
    ok(invoke("run", runs["root"] / "regions.yaml", "--out", tmp_path / "r", "--against", mpfc))
    c = read_csv(tmp_path / "r" / "comparison.csv")
    assert set(c.loc[c["region"] == "mpfc", "change"]) == {"same"}
    assert set(c.loc[c["region"] == "striatum", "change"]) == {"new"}
    back = compare_summaries(read_csv(regions / "summary.csv"), read_csv(mpfc / "summary.csv"))
    assert set(back["change"]) == {"same"}


# fixed (was BUG): --against reads summary.csv with pandas' default NA strings, so arms
#   named None/NA become NaN (a traceback, or rows 'new')
def test_against_keeps_arm_names_that_look_missing(tmp_path):
    scenario = write_file(tmp_path, "na.yaml", NA_NAMES)
    ok(invoke("run", scenario, "--out", tmp_path / "a"))
    assert set(read_csv(tmp_path / "a" / "summary.csv")["arm"]) == {"None", "NA"}
    res = invoke("run", scenario, "--out", tmp_path / "b", "--against", tmp_path / "a")
    ok(res)
    c = read_csv(tmp_path / "b" / "comparison.csv")
    assert set(c["change"]) == {"same"}


# ------------------------------------------------------------------ provenance
def test_manifest_records_the_scenario_registry_versions_and_times(runs):
    man = json.loads((runs["a"] / "manifest.json").read_text(encoding="utf-8"))
    tiny = runs["tiny.yaml"]
    assert man["scenario_text"] == TINY  # non-ASCII description included, verbatim
    assert man["inputs"] == [{"path": str(tiny), "sha256": sha256(tiny)}]
    assert man["scenario_hash"] == scenario_hash(load_scenario(tiny))
    assert man["scenario"] == "tiny-outputs" and man["seed"] == 11
    digest = provenance.registry_digest(load_registry())
    assert man["registry"] == {"sha256": digest, "changed": []}
    assert man["parameter_set"]["registry_sha256"] == digest
    assert man["parameter_set"]["values"] == {p.name: p.value for p in load_registry()}
    assert man["ketasim_version"] == ketasim.__version__
    assert man["libraries"] == provenance.libraries()
    assert man["libraries"]["pandas"] == pd.__version__
    started = datetime.fromisoformat(man["started_utc"])
    finished = datetime.fromisoformat(man["finished_utc"])
    assert started.utcoffset().total_seconds() == 0 and started <= finished
    assert man["timings_s"]["total"] >= 0 and set(man["timings_s"]["arms"]) == {
        "saline",
        "ketamine",
        "solo",
        "ketamine_lloq",
    }
    html = (runs["a"] / "report.html").read_text(encoding="utf-8")
    assert "Kétamine à 10 mg/kg — revue des sorties ✓ &lt;b&gt;&amp;amp;&lt;/b&gt; µ" in html


def test_hashes_are_reproducible_and_sensitive(runs):
    m1 = json.loads((runs["a"] / "manifest.json").read_text())
    m2 = json.loads((runs["a2"] / "manifest.json").read_text())
    ms = json.loads((runs["set"] / "manifest.json").read_text())
    for key in ("scenario_hash", "scenario_text", "inputs", "registry", "parameter_set"):
        assert m1[key] == m2[key], key
    # one changed parameter: a new registry digest in both places, the same scenario hash
    assert ms["scenario_hash"] == m1["scenario_hash"]
    assert ms["registry"]["sha256"] != m1["registry"]["sha256"]
    assert ms["parameter_set"]["registry_sha256"] == ms["registry"]["sha256"]
    reg = load_registry()
    assert ms["registry"]["changed"] == [
        {"name": CL, "default": reg[CL].value, "value": runs["faster"]}
    ]
    assert ms["parameter_set"]["values"][CL] == runs["faster"]


def test_registry_digest_changes_with_every_single_parameter():
    reg = load_registry()
    base = provenance.registry_digest(reg)
    assert provenance.registry_digest(load_registry()) == base
    # a value set to its default (as an int where it is whole) changes nothing
    whole = next(p for p in reg if float(p.value).is_integer() and p.value != 0)
    same = reg.with_values({whole.name: int(whole.value)})
    assert provenance.registry_digest(same) == base and provenance.changed_values(same) == []
    digests = set()
    for p in reg:
        other = p.high if p.high != p.value else p.low
        if other == p.value:
            continue
        changed = reg.with_values({p.name: other})
        d = provenance.registry_digest(changed)
        assert d != base, p.name
        digests.add(d)
        assert [c["name"] for c in provenance.changed_values(changed, reg)] == [p.name]
    assert len(digests) > 0.9 * len(list(reg))  # each change its own digest


# ------------------------------------------------------------------ robustness
def test_a_terminated_run_leaves_no_folder_and_no_parents(runs, tmp_path, monkeypatch):
    from ketasim.report import run_folder

    def terminated(*args, **kwargs):
        (args[0] / "report.html").write_text("<html>half", encoding="utf-8")
        raise SystemExit(128 + 15)  # what ketasim's SIGTERM handler raises

    monkeypatch.setattr(run_folder, "write_report", terminated)
    res = invoke("run", runs["tiny.yaml"], "--out", tmp_path / "new" / "deep" / "out")
    assert res.exit_code == 143
    assert list(tmp_path.iterdir()) == []  # no folder, no temp, no parent made for it


def test_the_comparisons_default_region_is_the_models():
    """analysis.diff keeps its own copy of the default region (analysis imports no other
    layer): it must be the model's."""
    from ketasim.analysis.diff import DEFAULT_REGION as in_diff
    from ketasim.core.regions import DEFAULT_REGION

    assert in_diff == DEFAULT_REGION


def test_query_output_may_not_add_a_file_to_the_run_folder(tmp_path):
    """``--output RUN/new.csv`` added a table to the folder the query read (the README:
    the folder is never changed); an existing file there was already refused."""
    from ketasim.io.query import QueryError, check_output

    run = tmp_path / "run"
    run.mkdir()
    (run / "readouts.csv").write_text("a\n1\n")
    for target in (run / "new.csv", run / "readouts.csv", run / "sub" / "x.parquet"):
        with pytest.raises(QueryError, match="run folder"):
            check_output(target, run)
    check_output(tmp_path / "elsewhere.csv", run)  # outside: fine
