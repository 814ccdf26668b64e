"""``ketasim validate --against DIR``: which targets changed verdict or value against an
earlier validation (ketasim.analysis.diff), in comparison.csv, the report, the
manifest and the console."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.analysis.diff import (
    COMPARISON_COLUMNS,
    ComparisonError,
    check_baseline,
    compare_validations,
    comparison_counts,
    relative_change,
)
from ketasim.cli import app
from ketasim.params import load_registry

KP = "pk.mouse.ketamine.kp_brain"


def table(rows):
    return pd.DataFrame(rows, columns=["target_id", "role", "quantity", "tolerance", "status",
                                       "simulated"])


BEFORE = table([
    ("T-1", "calibration", "q1", "<= 1", "pass", 0.5),
    ("T-2", "validation", "q2", "< 0.05", "pass", 0.01),
    ("T-3", "validation", "q3", "[1, 2]", "known_gap", 3.0),
    ("T-4", "validation", "q4", ">= 0", "pass", float("nan")),
    ("T-5", "validation", "q5", ">= 0", "pass", 1.0),
    ("T-9", "validation", "q9", ">= 0", "pass", 1.0),  # not run again: left out
])
AFTER = table([
    ("T-1", "calibration", "q1", "<= 1", "fail", 1.5),
    ("T-2", "validation", "q2", "< 0.05", "pass", 0.01 * (1 + 1e-13)),  # arithmetic noise
    ("T-3", "validation", "q3", "[1, 2]", "known_gap", 2.5),
    ("T-4", "validation", "q4", ">= 0", "pass", float("nan")),
    ("T-5", "validation", "q5", ">= 0", "pass", float("nan")),
    ("T-6", "validation", "q6", ">= 0", "pass", 2.0),
])


def test_compare_classifies_every_target_of_the_new_run():
    c = compare_validations(BEFORE, AFTER)
    assert list(c.columns) == COMPARISON_COLUMNS
    assert list(c["target_id"]) == ["T-1", "T-2", "T-3", "T-4", "T-5", "T-6"]
    assert list(c["change"]) == ["status", "same", "value", "same", "value", "new"]
    assert c.loc[0, "status_before"] == "pass" and c.loc[0, "status"] == "fail"
    assert c.loc[0, "relative_change"] == pytest.approx((1.5 - 0.5) / 1.5)
    assert c.loc[2, "relative_change"] == pytest.approx(-0.5 / 3.0)
    assert math.isnan(c.loc[4, "relative_change"]) and math.isnan(c.loc[5, "simulated_before"])
    assert comparison_counts(c) == {"status": 1, "value": 2, "same": 2, "new": 1}


def test_relative_change():
    assert relative_change(2.0, 2.0) == 0.0 and relative_change(0.0, 0.0) == 0.0
    assert relative_change(1.0, -1.0) == pytest.approx(-2.0)
    assert relative_change("nan", float("nan")) == 0.0
    assert math.isnan(relative_change(1.0, "not a number"))


@pytest.mark.parametrize("df, message", [
    (pd.DataFrame({"target_id": ["T-1"], "simulated": [1.0]}), "missing columns status"),
    (table([("T-1", "", "", "", "pass", 1), ("T-1", "", "", "", "pass", 2)]), "appears twice"),
])
def test_bad_baselines(df, message):
    with pytest.raises(ComparisonError, match=message):
        check_baseline(df, "--against x")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_validate_against_an_earlier_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    res = invoke("validate", "--only", "T-PK-05", "--workers", "1", "--out", a)
    assert res.exit_code == 0, res.output
    # a brain:plasma partition at the top of its range takes the ratio out of [1, 4]
    res = invoke("validate", "--only", "T-PK-05", "--workers", "1", "--out", b,
                 "--set", f"{KP}={load_registry()[KP].high}", "--against", a)
    assert res.exit_code == 1, res.output  # the target now fails
    text = " ".join(res.output.split())
    assert "against" in text and "1 changed verdict" in text
    assert "T-PK-05: pass -> fail" in text
    c = pd.read_csv(b / "comparison.csv")
    assert list(c["target_id"]) == ["T-PK-05"] and list(c["change"]) == ["status"]
    before = pd.read_csv(a / "validation.csv")
    assert c.loc[0, "simulated_before"] == pytest.approx(before.loc[0, "simulated"])
    man = json.loads((b / "manifest.json").read_text())
    digest = hashlib.sha256((a / "validation.csv").read_bytes()).hexdigest()
    assert man["against"] == {"path": str(a / "validation.csv"), "sha256": digest}
    html = (b / "report.html").read_text()
    assert 'id="against"' in html and 'id="against-status"' in html
    # the same run against itself: nothing moved (and a file path works as well)
    res = invoke("validate", "--only", "T-PK-05", "--workers", "1", "--out", tmp_path / "c",
                 "--against", a / "validation.csv")
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(tmp_path / "c" / "comparison.csv")["change"]) == {"same"}


def test_bad_against_is_one_clear_error(tmp_path):
    res = invoke("validate", "--only", "T-PK-05", "--out", tmp_path / "o", "--against",
                 tmp_path / "nowhere")
    assert res.exit_code == 2 and "no validation.csv there" in " ".join(res.output.split())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = invoke("validate", "--only", "T-PK-05", "--out", tmp_path / "o", "--against", bad)
    assert res.exit_code == 2 and "not a validation table" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- runs

SUM_BEFORE = pd.DataFrame({
    "arm": ["a", "a", "b"], "assay": ["x", "x", "x"], "readout": ["r", "r", "r"],
    "time_h": [1.0, 2.0, 1.0], "unit": ["1"] * 3, "n": [4, 4, 4],
    "mean": [1.0, 2.0, 3.0], "sem": [0.1, 0.0, 0.2]})


def test_compare_summaries_rows_z_and_new():
    from ketasim.analysis.diff import RUN_COMPARISON_COLUMNS, compare_summaries

    after = SUM_BEFORE.copy()
    after["mean"] = [1.3, 2.0, 3.0 * (1 + 1e-12)]
    after["sem"] = [0.1, 0.0, 0.2]
    after = pd.concat([after, SUM_BEFORE.iloc[[0]].assign(arm="c")], ignore_index=True)
    c = compare_summaries(SUM_BEFORE, after)
    assert list(c.columns) == RUN_COMPARISON_COLUMNS
    assert list(c["change"]) == ["value", "same", "same", "new"]
    assert c.loc[0, "difference"] == pytest.approx(0.3)
    assert c.loc[0, "z"] == pytest.approx(0.3 / math.sqrt(0.02))
    assert c.loc[1, "z"] == 0.0  # equal means, no SEM
    assert math.isnan(c.loc[3, "mean_before"]) and math.isnan(c.loc[3, "z"])


def test_compare_summaries_with_regions():
    from ketasim.analysis.diff import compare_summaries

    before = pd.concat([SUM_BEFORE.assign(region=""), SUM_BEFORE.assign(region="striatum",
                                                                        mean=9.0)])
    after = before.assign(mean=before["mean"] + [0, 0, 0, 1, 1, 1])
    c = compare_summaries(before, after)
    assert "region" in c.columns and len(c) == 6
    assert list(c["change"]) == ["same"] * 3 + ["value"] * 3


def test_bad_summary_baseline():
    from ketasim.analysis.diff import check_summary

    with pytest.raises(ComparisonError, match="not a run summary"):
        check_summary(pd.DataFrame({"arm": ["a"]}), "--against x")


def test_relative_changes_of_arrays_match_the_scalar_rule():
    from ketasim.analysis.diff import _relative_changes

    nan = float("nan")
    before = np.array([2.0, 0.0, 1.0, nan, 1.0, -3.0])
    after = np.array([2.0, 0.0, -1.0, nan, nan, 1.5])
    got = _relative_changes(before, after)
    want = [relative_change(b, a) for b, a in zip(before, after, strict=True)]
    np.testing.assert_array_equal(got, want)
