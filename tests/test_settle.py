"""``validate --settle``: the replicas whose expectations are not settled (within t
standard errors of a bound, ``near_bound_multiple``) are run again at larger group-size
factors (ketasim.validation.run: validate, check_settle, factor_limit; the CLI, the CSV
and the report)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.validation import run
from ketasim.validation.run import (
    SETTLE_STEP,
    ValidationSetupError,
    check_settle,
    expectation,
    factor_limit,
    scaled_scenario,
    validate,
)
from ketasim.validation.statistic import evaluate

RATIO = ("mean('high', 'occupancy_interneuron', '1h') "
         "/ mean('low', 'occupancy_interneuron', '1h')")

REPLICA = """
name: {name}
species: mouse
seed: {seed}
arms:
  - {{name: low, n: {n}, protocol: [{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}],
     assays: [{{assay: signaling_state, at: [1h]}}]}}
  - {{name: high, n: {n}, protocol: [{{at: 0h, drug: ketamine, dose: 30 mg/kg, route: ip}}],
     assays: [{{assay: signaling_state, at: [1h]}}]}}
targets: [{target}]
"""

TARGET = """
- target_id: {target}
  facts: [F-W-8]
  role: validation
  source: Our lab 2026 (unpublished)
  quantity: interneuron NMDA receptor block at 1 h, high / low dose
  published: higher with dose
  statistic: {statistic}
  tolerance: "{tolerance}"
"""


def _write(tmp_path, name, seed, target, n=6):
    reps = tmp_path / "reps"
    reps.mkdir(exist_ok=True)
    path = reps / f"{name}.yaml"
    path.write_text(REPLICA.format(name=name, seed=seed, n=n, target=target))
    return path


def _value(path, factor) -> float:
    sc = scaled_scenario(path, factor)
    return evaluate(RATIO, simulate(sc, registry=load_registry()).readouts)


def test_check_settle_needs_expect_and_a_larger_factor():
    check_settle(0, 0)
    check_settle(0, 8)
    check_settle(64, 8)
    check_settle(1000, 2)
    with pytest.raises(ValidationSetupError, match="--settle: needs --expect"):
        check_settle(64, 0)
    for settle, expect in ((8, 8), (4, 8), (1001, 8), (-1, 8), (True, 8), (2.5, 2)):
        with pytest.raises(ValidationSetupError, match="--settle"):
            check_settle(settle, expect)


def test_factor_limit_keeps_every_arm_within_the_scenario_limit(tmp_path):
    assert factor_limit(_write(tmp_path, "small", 1, "T-X", n=6)) == 100_000 // 6
    assert factor_limit(_write(tmp_path, "big", 1, "T-X", n=40_000)) == 2
    assert factor_limit(_write(tmp_path, "full", 1, "T-X", n=100_000)) == 1


def test_settle_reruns_only_the_replicas_whose_expectations_are_not_settled(tmp_path):
    """Two replicas of the same ratio: one target's bound is its own expectation at x 2
    (distance 0: not settled), the other's is far away. With --expect 2 --settle 8 only
    the first replica runs again, at x 8, and its target reports that run's value."""
    near = _write(tmp_path, "near_rep", 5, "T-SET-1")
    far = _write(tmp_path, "far_rep", 6, "T-SET-2")
    stats = {"T-SET-1": RATIO}
    at2 = expectation(str(near), 2, stats, {}, load_registry(), stats)
    cut = at2.values["T-SET-1"]
    assert math.isfinite(cut) and at2.se["T-SET-1"] > 0.0
    (tmp_path / "targets.yaml").write_text(
        TARGET.format(target="T-SET-1", statistic=RATIO, tolerance=f"> {cut!r}")
        + TARGET.format(target="T-SET-2", statistic=RATIO, tolerance="> 0.01"))
    added = []
    res = validate(only=["near_rep", "far_rep"], workers=1, registry=load_registry(),
                   extra_replicas=tmp_path / "reps", extra_targets=tmp_path / "targets.yaml",
                   expect=2, settle=8, more_runs=added.append)
    by_id = {r.target.target_id: r for r in res.results}
    assert added == [1]  # one round, one replica
    assert by_id["T-SET-1"].expected_factor == 2 * SETTLE_STEP == 8
    assert by_id["T-SET-1"].expected == pytest.approx(_value(near, 8), rel=1e-12)
    assert by_id["T-SET-1"].expected != cut
    assert by_id["T-SET-2"].expected_factor == 2
    assert by_id["T-SET-2"].expected == pytest.approx(_value(far, 2), rel=1e-12)
    assert res.settled() == {"near_rep": 8} and res.settle == 8
    table = res.table().set_index("target_id")
    assert list(table["expected_factor"]) == [8, 2]
    # without --settle the same run keeps the factor of --expect everywhere
    plain = validate(only=["near_rep"], workers=1, registry=load_registry(),
                     extra_replicas=tmp_path / "reps",
                     extra_targets=tmp_path / "targets.yaml", expect=2)
    assert [r.expected_factor for r in plain.results] == [2]
    assert plain.results[0].expected_near_bound and plain.settled() == {}


def test_settle_stops_at_the_replicas_own_limit(tmp_path, monkeypatch):
    """A replica whose arms allow no larger factor is not run again, however near its
    expectation lies to a bound (the limit is patched to 2: a replica of 50,000 mice an
    arm, too large to simulate in a test)."""
    path = _write(tmp_path, "capped", 5, "T-SET-3")
    stats = {"T-SET-3": RATIO}
    at = expectation(str(path), 2, stats, {}, load_registry(), stats)
    (tmp_path / "targets.yaml").write_text(TARGET.format(
        target="T-SET-3", statistic=RATIO, tolerance=f"> {at.values['T-SET-3']!r}"))
    seen = []
    monkeypatch.setattr(run, "factor_limit", lambda p: seen.append(p) or 2)
    added = []
    res = validate(only=["capped"], workers=1, registry=load_registry(),
                   extra_replicas=tmp_path / "reps", extra_targets=tmp_path / "targets.yaml",
                   expect=2, settle=8, more_runs=added.append)
    r = res.results[0]
    assert seen and added == []
    assert r.expected_near_bound and r.expected_factor == 2
    assert r.expected == pytest.approx(at.values["T-SET-3"], rel=1e-12)
    assert res.settled() == {}


def test_cli_settle_writes_the_factor_and_refuses_bad_settings(tmp_path):
    from typer.testing import CliRunner

    from ketasim.cli import app

    near = _write(tmp_path, "near_rep", 5, "T-SET-1")
    stats = {"T-SET-1": RATIO}
    at2 = expectation(str(near), 2, stats, {}, load_registry(), stats)
    cut = at2.values["T-SET-1"]
    (tmp_path / "targets.yaml").write_text(
        TARGET.format(target="T-SET-1", statistic=RATIO, tolerance=f"> {cut!r}"))
    seed_value = _value(near, 1)
    out = tmp_path / "v"
    res = CliRunner().invoke(app, [
        "validate", "--only", "near_rep", "--replicas", str(tmp_path / "reps"),
        "--targets", str(tmp_path / "targets.yaml"), "--out", str(out), "--workers", "1",
        "--expect", "2", "--settle", "8"])
    assert res.exit_code == (0 if seed_value > cut else 1), res.output
    text = " ".join(res.output.split())
    assert "up to x 8 where not settled" in text
    assert "run again with larger group sizes (--settle 8): near_rep x 8" in text
    table = pd.read_csv(out / "validation.csv")
    cols = list(table.columns)
    assert cols.index("expected_factor") == cols.index("expected_se") + 1
    assert table.loc[0, "expected_factor"] == 8
    page = (out / "report.html").read_text()
    assert "<th>expected_se</th><th>expected_factor</th>" in page
    line = page[page.index('<p id="expectation">'):]
    line = line[:line.index("</p>")]
    assert "up to x 8" in line and "near_rep x 8" in line
    assert json.loads((out / "manifest.json").read_text())["settle"] == 8
    # --settle needs --expect, and a factor above it: one clear error, nothing written
    for extra in (["--settle", "8"], ["--expect", "8", "--settle", "8"],
                  ["--expect", "2", "--settle", "2000"]):
        bad = tmp_path / "w"
        res = CliRunner().invoke(app, ["validate", "--only", "T-PK-06", "--out", str(bad),
                                       *extra])
        assert res.exit_code == 2 and "--settle" in res.output, res.output
        assert not bad.exists()
