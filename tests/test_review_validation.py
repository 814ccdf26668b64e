"""Review of the validation machinery (``ketasim validate``): tolerance parsing and
evaluation at and beyond the bounds (NaN never passes), the pass / fail / known-gap /
error bookkeeping (exit status, counts in the console, validation.csv, manifest.json and
report.html agree; every target once; role and fitted carried), the integrity checks
of targets files and replicas (unknown or duplicate targets, orphans, shadowing,
malformed fields), ``--only``, ``--expect``, ``--seeds``, ``--set`` and ``--workers``
against hand-built tiny replicas and targets with known answers, atomic output and the
manifest's provenance, and the generated tables (``fitted_table.py``, ``domain.py``)
with their stale-file checks. The statistic expressions themselves are reviewed in
``tests/test_review_statistic.py``.

The defects found (once ``xfail(strict=True)``) are fixed; their reasons stay as
``# fixed (was BUG)`` comments above the tests that now guard the fixes."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from ketasim.analysis.tolerance import Tolerance
from ketasim.cli import app
from ketasim.params import load_registry
from ketasim.provenance import sha256_file
from ketasim.validation.run import (
    GAP_INSIDE,
    ReplicaRun,
    ValidationResult,
    ValidationSetupError,
    judge,
    plan,
    scaled_scenario,
    sources,
    validate,
)
from ketasim.validation.targets import TargetError, parse_targets

# ------------------------------------------------------------------ hand-built inputs
OCC = "mean('ket', 'occupancy_interneuron', '1h')"
GAP = "a deliberate gap of this review, reason stated once"

ALPHA = """
name: rv_alpha
species: mouse
seed: 3
arms:
  - {name: sal, n: 3, protocol: [{at: 0h, drug: saline, route: ip}],
     assays: [{assay: signaling_state, at: [1h, 2h]}]}
  - {name: ket, n: 3, protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h, 2h]}]}
targets: [T-RV-PASS, T-RV-FAIL, T-RV-GAPOUT, T-RV-GAPIN, T-RV-ERR, T-RV-CAL, T-RV-N]
"""
BETA = """
name: rv_beta
species: rat
seed: 11
arms:
  - {name: ket, n: 4, protocol: [{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}],
     assays: [{assay: signaling_state, at: [1h]}]}
targets: [T-RV-B]
"""


def target(tid, statistic=OCC, tolerance="[0, 1]", extra="", role="validation"):
    """One targets-file entry (YAML text)."""
    return (
        f"- target_id: {tid}\n  facts: [F-W-5]\n  role: {role}\n"
        f"  source: Review et al. 2026 (hand-built)\n  quantity: q of {tid}\n"
        f'  published: p of {tid}\n  statistic: "{statistic}"\n'
        f'  tolerance: "{tolerance}"\n{extra}'
    )


TARGETS = "".join(
    [
        target(
            "T-RV-PASS",
            extra='  published_effect: 0.5\n  effect: "'
            + OCC
            + " - mean('sal', 'occupancy_interneuron', '1h')\"\n",
        ),
        target("T-RV-FAIL", tolerance="> 2"),
        target("T-RV-GAPOUT", tolerance="> 2", extra=f"  known_gap: {GAP}\n"),
        target("T-RV-GAPIN", tolerance="[0, 1]", extra=f"  known_gap: {GAP}\n"),
        target("T-RV-ERR", statistic="mean('nope', 'occupancy_interneuron', '1h')"),
        target(
            "T-RV-CAL",
            tolerance="<= 1",
            role="calibration",
            extra="  fitted: [pk.mouse.ketamine.kp_brain, sig.pka_gain]\n"
            "  tried: [a fix tried before the one that closed its gap]\n",
        ),
        target("T-RV-N", statistic="n('ket', 'occupancy_interneuron', '1h')", tolerance="[3, 3]"),
        target("T-RV-B"),
    ]
)
STATUS = {
    "T-RV-PASS": "pass",
    "T-RV-FAIL": "fail",
    "T-RV-GAPOUT": "known_gap",
    "T-RV-GAPIN": "known_gap",
    "T-RV-ERR": "error",
    "T-RV-CAL": "pass",
    "T-RV-N": "pass",
}
SET = "pk.rat.ketamine.kp_brain=3"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab's own replicas (``reps/``) and targets file, as ``--replicas`` and
    ``--targets`` take them."""
    root = tmp_path_factory.mktemp("lab")
    (root / "reps").mkdir()
    (root / "reps" / "rv_alpha.yaml").write_text(ALPHA)
    (root / "reps" / "rv_beta.yaml").write_text(BETA)
    (root / "targets.yaml").write_text(TARGETS)
    return root


def cli(lab, *args, targets=None):
    """``ketasim validate`` on the lab's replicas and targets (or another targets file)."""
    return CliRunner().invoke(
        app,
        [
            "validate",
            "--replicas",
            str(lab / "reps"),
            "--targets",
            str(targets or lab / "targets.yaml"),
            *map(str, args),
        ],
        env={"COLUMNS": "400"},
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def run_of(readouts: pd.DataFrame) -> ReplicaRun:
    """A replica run with hand-built readouts (no simulation)."""
    return ReplicaRun("stub", None, readouts, pd.DataFrame(), 0.0)


def readouts(values_a=(0.25, 0.75), values_b=(2.0,)):
    rows = [("a", i, "x", "r", 1.0, v, "u") for i, v in enumerate(values_a)]
    rows += [("b", i, "x", "r", 1.0, v, "u") for i, v in enumerate(values_b)]
    return pd.DataFrame(
        rows, columns=["arm", "subject", "assay", "readout", "time_h", "value", "unit"]
    )


def one(statistic="mean('a', 'r', '1h')", tolerance="[0, 1]", extra="", **kw):
    return parse_targets(target("T-X-1", statistic, tolerance, extra, **kw))["T-X-1"]


def judged(t, r=None):
    with warnings.catch_warnings():  # a t-test on one animal per arm: NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        return judge(t, run_of(readouts() if r is None else r))


# ------------------------------------------------------------------ tolerances
@pytest.mark.parametrize(
    "text, inside, outside",
    [
        ("[0.5, 1]", [0.5, 1.0, 0.75], [math.nextafter(0.5, 0), math.nextafter(1.0, 2), -math.inf]),
        ("[-1, -1]", [-1.0], [math.nextafter(-1.0, 0), math.nextafter(-1.0, -2)]),
        ("< 0.05", [math.nextafter(0.05, 0), -1e300, -math.inf], [0.05, 0.06, math.inf]),
        ("<= 0.05", [0.05, -math.inf], [math.nextafter(0.05, 1), math.inf]),
        ("> 1.3", [math.nextafter(1.3, 2), math.inf], [1.3, -math.inf]),
        (">= 1.3", [1.3, 1e300], [math.nextafter(1.3, 0)]),
        (">=-2e-3", [-0.002], [-0.0021]),  # no space, exponent, sign
    ],
)
def test_tolerances_hold_their_bounds_as_written(text, inside, outside):
    tol = Tolerance.parse(text)
    assert tol.text == text
    assert all(tol.contains(v) for v in inside), [v for v in inside if not tol.contains(v)]
    assert not any(tol.contains(v) for v in outside), [v for v in outside if tol.contains(v)]
    assert not tol.contains(math.nan)


@pytest.mark.parametrize(
    "text",
    [
        "(0, 1)",
        "[0, 1)",
        "]0, 1[",
        "0.5",
        "about 1",
        "[2, 1]",
        "[1, 2",
        "== 1",
        "> 1 2",
        "[0, 1.2.3]",
        "> inf",
        "< nan",
        "[0; 1]",
        "",
    ],
)
def test_a_malformed_tolerance_is_one_line_naming_the_target_and_field(text):
    """Only closed bands and the four one-sided forms exist; an open interval is an
    error, not read as a closed one."""
    with pytest.raises(TargetError) as e:
        parse_targets(target("T-X-9", tolerance=text), "lab.yaml")
    msg = str(e.value)
    assert msg.startswith("lab.yaml: target T-X-9: ") and "tolerance" in msg
    assert "\n" not in msg
    if text:
        assert repr(text) in msg


# fixed (was BUG): a tolerance bound that overflows a float ('1e999') silently becomes
#   infinite, so the band '[0, 1e999]' holds +inf, which no band may (Tolerance.contains)
def test_a_bound_that_overflows_is_refused_or_kept_finite():
    for text in ("[0, 1e999]", "[-1e999, 1e999]"):
        try:
            t = one(tolerance=text)
        except TargetError:
            continue
        assert not t.tolerance.contains(math.inf), text


def test_nan_never_passes_and_is_counted_as_a_failure():
    """A statistic with no value on the data (a t-test on one animal per arm) is NaN: a
    failure of a non-gap target under every form of tolerance, never inside in the
    replication count or the expectation."""
    p = "p('a', 'b', 'r', '1h')"
    for tol in ("[0, 1]", "< 0.05", "<= 1", "> 0", ">= 0"):
        r = judged(one(p, tol))
        assert math.isnan(r.simulated) and r.status == "fail" and not r.passed, tol
        r.expected = math.nan
        assert r.expected_status == ""
    gap = judged(one(p, extra=f"  known_gap: {GAP}\n"))
    assert gap.status == "known_gap" and gap.message == GAP
    res = ValidationResult([judged(one(p)), gap])
    assert res.counts() == {"pass": 0, "fail": 1, "known_gap": 1, "error": 0}
    assert not res.ok
    assert res.table()["pass"].tolist() == [False, False]


def test_judge_on_hand_built_readouts_exactly_on_the_bounds():
    """mean([0.25, 0.75]) is exactly 0.5: closed bounds hold it, open ones do not."""
    want = {
        "[0.5, 0.6]": "pass",
        "[0.4, 0.5]": "pass",
        "<= 0.5": "pass",
        ">= 0.5": "pass",
        "< 0.5": "fail",
        "> 0.5": "fail",
        "[0.51, 1]": "fail",
    }
    for tol, status in want.items():
        r = judged(one(tolerance=tol))
        assert r.simulated == 0.5 and r.status == status, tol
        assert r.passed == (status == "pass")


@pytest.mark.parametrize(
    "statistic, named",
    [
        ("mean('nope', 'r', '1h')", "'nope'"),  # an arm the replica lacks
        ("mean('a', 'tst_immobility_s', '1h')", "'tst_immobility_s'"),  # a readout
        ("mean('a', 'r', '3h')", "'3h'"),  # a time it does not measure
        ("mean('a', 'r', '1h', assay='y')", "'y'"),  # an assay
    ],
)
def test_a_statistic_the_replica_cannot_answer_is_an_error_of_that_target(statistic, named):
    r = judged(one(statistic))
    assert r.status == "error" and math.isnan(r.simulated) and named in r.message
    res = ValidationResult([r, judged(one())])
    assert not res.ok and res.counts()["error"] == 1
    row = res.table().iloc[0]
    assert row["message"] == r.message and not row["pass"]
    # an error beats a known gap: the gap's reason would hide a broken statistic
    assert judged(one(statistic, extra=f"  known_gap: {GAP}\n")).status == "error"


# fixed (was BUG): an effect expression that cannot be computed makes the whole target an
#   error with simulated NaN (the statistic's own value is dropped) and a message that does
#   not say it came from the effect (the report prints it beside the statistic); the
#   expectation run keeps the statistic and NaNs only the effect
def test_a_failing_effect_expression_keeps_the_statistic_or_says_so():
    r = judged(one(extra="  effect: \"mean('nope', 'r', '1h')\"\n"))
    assert not math.isnan(r.simulated) or "effect" in r.message


# ------------------------------------------------------------------ targets file integrity
def test_target_ids_and_fields_are_checked_with_the_file_and_target_named():
    base = target("T-X-1")
    cases = [
        (base + base, "lab.yaml: target T-X-1 defined twice"),
        (base.replace("F-W-5", "F-W-5a"), "T-X-1: facts ['F-W-5a'] are not SEED-FACTS"),
        (base.replace("F-W-5", "f-w-5"), "are not SEED-FACTS"),
        (
            base.replace("role: validation", "role: calibration"),
            "T-X-1: a calibration target needs fitted",
        ),
        (
            target("T-X-1", role="calibration", extra="  fitted: [sig.pka_gain, sig.nope]\n"),
            "T-X-1: fitted parameter 'sig.nope' is not in parameters.yaml",
        ),
        (base + "  fitted: [sig.pka_gain]\n", "T-X-1: a validation target has no fitted"),
        (base.replace("  quantity: q of T-X-1\n", ""), "T-X-1: missing quantity"),
        (base + "  colour: red\n", "T-X-1: unknown fields"),
        (base.replace('statistic: "', "statistic: \"open('x') + "), "T-X-1: "),
        # time strings are parsed when the targets load, the effect's too
        (
            target("T-X-1", statistic="mean('ket', 'occupancy_interneuron', 'soon')"),
            "lab.yaml: target T-X-1: ",
        ),
        (
            base + "  effect: \"mean('ket', 'occupancy_interneuron', 'soon')\"\n",
            "lab.yaml: target T-X-1: effect: ",
        ),
        ("- 3\n", "lab.yaml[0]: expected a mapping"),
        ("target_id: T-X-1\n", "lab.yaml: expected a list of targets"),
    ]
    for text, message in cases:
        with pytest.raises(TargetError, match=re.escape(message)):
            parse_targets(text, "lab.yaml")


# fixed (was BUG): a key given twice in one target (e.g. two tolerance lines) is silently
#   resolved to the last one (yaml.safe_load in parse_targets); scenario files refuse
#   duplicate keys
def test_a_key_given_twice_in_one_target_is_refused():
    with pytest.raises(TargetError, match="tolerance"):
        parse_targets(target("T-X-1", tolerance="< 0.05") + '  tolerance: "[0, 1]"\n', "lab.yaml")


# fixed (was BUG): a --targets file that is not valid YAML raises yaml.ParserError out of
#   validate (a traceback, exit 1 as if a target failed) instead of one clear error with
#   exit status 2
def test_a_targets_file_with_a_yaml_syntax_error_is_one_clear_error(lab, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(target("T-RV-B") + "  note: [unclosed\n")
    res = cli(lab, "--only", "rv_beta", "--out", tmp_path / "v", targets=bad)
    assert res.exit_code == 2 and str(bad) in flat(res.output)
    assert not (tmp_path / "v").exists()


def test_targets_and_replicas_that_do_not_match_are_refused(lab, tmp_path):
    targets = parse_targets(TARGETS)
    reps = {"rv_alpha": lab / "reps" / "rv_alpha.yaml", "rv_beta": lab / "reps" / "rv_beta.yaml"}
    assert plan(None, reps, targets) == {"rv_alpha": list(STATUS), "rv_beta": ["T-RV-B"]}
    # a replica declaring a target no file defines
    (tmp_path / "rv_gamma.yaml").write_text(BETA.replace("T-RV-B", "T-RV-ZZ"))
    with pytest.raises(
        ValidationSetupError, match="replica rv_gamma: target T-RV-ZZ is not in targets.yaml"
    ):
        plan(None, {**reps, "rv_gamma": tmp_path / "rv_gamma.yaml"}, targets)
    # two replicas declaring one target
    (tmp_path / "rv_copy.yaml").write_text(BETA)
    with pytest.raises(
        ValidationSetupError, match="target T-RV-B is declared by replicas rv_beta and rv_copy"
    ):
        plan(None, {**reps, "rv_copy": tmp_path / "rv_copy.yaml"}, targets)
    # one replica declaring a target twice: refused, not judged twice
    (tmp_path / "rv_twice.yaml").write_text(BETA.replace("[T-RV-B]", "[T-RV-B, T-RV-B]"))
    with pytest.raises(ValidationSetupError, match="T-RV-B"):
        plan(None, {"rv_alpha": reps["rv_alpha"], "rv_twice": tmp_path / "rv_twice.yaml"}, targets)
    # a target no replica checks
    orphan = parse_targets(TARGETS + target("T-RV-ORPHAN"))
    with pytest.raises(ValidationSetupError, match="targets with no replica: T-RV-ORPHAN"):
        plan(["rv_beta"], reps, orphan)  # even when --only leaves it out
    # a lab's replica or target must not replace a built-in one
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "pk_rat_hnk.yaml").write_text(BETA)
    with pytest.raises(ValidationSetupError, match="replica pk_rat_hnk .* shadows a built-in"):
        sources(tmp_path / "shadow")
    (tmp_path / "dup.yaml").write_text(target("T-PK-06"))
    with pytest.raises(ValidationSetupError, match="target T-PK-06 in .* is already defined"):
        sources(None, tmp_path / "dup.yaml")
    with pytest.raises(ValidationSetupError, match="--replicas .*: not a folder"):
        sources(tmp_path / "dup.yaml")


def test_a_bad_lab_targets_file_stops_validate_before_anything_is_written(lab, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(TARGETS.replace("sig.pka_gain", "sig.pka_gainn"))
    res = cli(lab, "--out", tmp_path / "v", targets=bad)
    assert res.exit_code == 2
    assert "target T-RV-CAL: fitted parameter 'sig.pka_gainn' is not in parameters.yaml" in flat(
        res.output
    )
    assert not (tmp_path / "v").exists()


# ------------------------------------------------------------------ --only
def test_only_selects_exactly_the_named_targets_and_replicas(lab):
    targets = parse_targets(TARGETS)
    reps = {"rv_alpha": lab / "reps" / "rv_alpha.yaml", "rv_beta": lab / "reps" / "rv_beta.yaml"}
    assert plan(["T-RV-N"], reps, targets) == {"rv_alpha": ["T-RV-N"]}
    assert plan(["T-RV-N", "T-RV-PASS", "T-RV-N"], reps, targets) == {
        "rv_alpha": ["T-RV-N", "T-RV-PASS"]
    }
    # a replica and one of its own targets: each target once
    for only in (["rv_alpha", "T-RV-N"], ["T-RV-N", "rv_alpha"]):
        chosen = plan(only, reps, targets)
        assert list(chosen) == ["rv_alpha"] and sorted(chosen["rv_alpha"]) == sorted(STATUS)
    assert plan(["rv_beta"], reps, targets) == {"rv_beta": ["T-RV-B"]}
    with pytest.raises(ValidationSetupError, match="--only T-RV-NOPE: not a target ID"):
        plan(["T-RV-NOPE"], reps, targets)


# ------------------------------------------------------------------ one full run
@pytest.fixture(scope="module")
def full(lab):
    """``validate --only rv_alpha``: one target of each status."""
    out = lab / "full"
    res = cli(lab, "--only", "rv_alpha", "--out", out, "--workers", "1")
    table = pd.read_csv(out / "validation.csv", keep_default_na=False)
    return res, out, table


def test_each_status_is_judged_and_a_failure_or_error_fails_the_run(full):
    res, _, table = full
    assert res.exit_code == 1, res.output  # T-RV-FAIL and T-RV-ERR
    assert table["target_id"].tolist() == list(STATUS)  # each once, in file order
    assert dict(zip(table["target_id"], table["status"], strict=True)) == STATUS
    assert table["pass"].tolist() == [s == "pass" for s in STATUS.values()]
    t = table.set_index("target_id")
    assert float(t.loc["T-RV-N", "simulated"]) == 3.0  # n of the ket arm
    # a gap inside its band says so before its reason (run.GAP_INSIDE); one outside does not
    assert t.loc["T-RV-GAPIN", "message"] == GAP_INSIDE + GAP
    assert t.loc["T-RV-GAPOUT", "message"] == GAP
    assert (
        "known gaps inside their tolerance in this run (has a gap closed? check and close "
        "it): T-RV-GAPIN" in flat(res.output)
    )
    assert "'nope'" in t.loc["T-RV-ERR", "message"] and t.loc["T-RV-ERR", "simulated"] == ""
    assert t.loc["T-RV-PASS", "message"] == ""
    # role, fitted and effect sizes carried into the table
    assert t.loc["T-RV-CAL", "role"] == "calibration"
    assert t.loc["T-RV-CAL", "fitted"] == "pk.mouse.ketamine.kp_brain;sig.pka_gain"
    assert (t["role"] == "validation").sum() == 6 and t.loc["T-RV-PASS", "fitted"] == ""
    assert float(t.loc["T-RV-PASS", "published_effect"]) == 0.5
    assert float(t.loc["T-RV-PASS", "simulated_effect"]) > 0  # ketamine minus saline
    assert t.loc["T-RV-FAIL", "simulated"] == t.loc["T-RV-PASS", "simulated"]
    assert t.loc["T-RV-PASS", "tolerance"] == "[0, 1]" and t.loc["T-RV-FAIL", "tolerance"] == "> 2"
    assert t.loc["T-RV-PASS", "facts"] == "F-W-5" and t.loc["T-RV-PASS", "replica"] == "rv_alpha"


def test_counts_agree_in_console_csv_manifest_and_report(full):
    res, out, table = full
    csv = table["status"].value_counts().to_dict()
    want = {s: csv.get(s, 0) for s in ("pass", "fail", "known_gap", "error")}
    assert want == {"pass": 3, "fail": 1, "known_gap": 2, "error": 1}
    text = flat(res.output)
    m = re.search(r"(\d+) pass, (\d+) fail, (\d+) known gaps, (\d+) errors in", text)
    assert m and tuple(map(int, m.groups())) == tuple(want.values())
    assert "calibration: 1 targets, 1 pass, 0 fail, 0 known gaps, 0 errors" in text
    assert "validation: 6 targets, 2 pass, 1 fail, 2 known gaps, 1 errors" in text
    assert "T-RV-ERR: error: no 'occupancy_interneuron' for arm 'nope'" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == want
    html = (out / "report.html").read_text()
    assert (
        f"<b>{want['pass']} pass</b>, <b>{want['fail']} fail</b>, "
        f"{want['known_gap']} known gaps, {want['error']} errors"
    ) in html
    assert html.count("<li><b>T-RV-GAP") == 2  # both gaps listed with their reason
    # a gap inside its band is named at the top; a closed gap keeps its history of tries
    assert re.search(r'id="gaps-inside"[^<]*T-RV-GAPIN\.', html)
    history = html[html.index('id="tried-history"') :]
    assert "<li><b>T-RV-CAL</b>" in history and "a fix tried before the one" in history


# fixed (was BUG): a known-gap target whose simulated value now lies inside its tolerance
#   gets the same validation.csv row as one that still misses (status known_gap, pass False,
#   the same message; run.py judge): a closed gap stays hidden
def test_a_known_gap_that_now_passes_is_reported_as_such(full):
    _, _, table = full
    t = table.set_index("target_id")
    inside, outside = t.loc["T-RV-GAPIN"], t.loc["T-RV-GAPOUT"]
    assert Tolerance.parse(inside["tolerance"]).contains(float(inside["simulated"]))
    assert not Tolerance.parse(outside["tolerance"]).contains(float(outside["simulated"]))
    seen = ["pass", "status", "message"]
    assert inside[seen].tolist() != outside[seen].tolist()


def test_only_known_gaps_and_passes_exit_0(lab, tmp_path):
    res = cli(lab, "--only", "T-RV-GAPOUT,T-RV-PASS", "--out", tmp_path / "v", "--workers", "1")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert table["target_id"].tolist() == ["T-RV-PASS", "T-RV-GAPOUT"]
    assert table["status"].tolist() == ["pass", "known_gap"]


# ------------------------------------------------------------------ --expect, --seeds
def test_expect_multiplies_every_group_size_at_the_replicas_own_seed(lab):
    rep = lab / "reps" / "rv_alpha.yaml"
    big = scaled_scenario(rep, 3)
    assert [a.n for a in big.arms] == [9, 9] and big.seed == 3
    assert big.targets == list(STATUS) and [len(a.protocol) for a in big.arms] == [1, 1]
    calls = []
    res = validate(
        only=["T-RV-N"],
        workers=1,
        extra_replicas=lab / "reps",
        extra_targets=lab / "targets.yaml",
        registry=load_registry(),
        expect=3,
        seeds=1,
        progress=calls.append,
    )
    assert calls == ["rv_alpha"] * 3  # the replica, one further seed, the expectation
    (r,) = res.results
    assert (r.target.target_id, r.simulated, r.expected) == ("T-RV-N", 3.0, 9.0)
    assert r.status == "pass" and r.expected_status == "outside" and r.replication == (1, 1)
    assert res.by_expectation() == {"by_chance": ["T-RV-N"], "sampling_miss": [],
                                    "near_bound": []}
    assert res.expect == 3


# ------------------------------------------------------------------ --set, --workers, manifest
@pytest.fixture(scope="module")
def with_set(lab):
    """``validate --only 'T-RV-PASS, rv_beta' --set ... --seeds 1 --expect 2``, serially."""
    out = lab / "with_set"
    res = cli(
        lab,
        "--only",
        "T-RV-PASS, rv_beta",
        "--set",
        SET,
        "--seeds",
        "1",
        "--expect",
        "2",
        "--out",
        out,
        "--workers",
        "1",
    )
    assert res.exit_code == 0, res.output
    return out, pd.read_csv(out / "validation.csv", float_precision="round_trip")


def test_set_changes_the_registry_of_the_run_and_the_manifest_records_it(lab, with_set):
    out, table = with_set
    assert table["target_id"].tolist() == ["T-RV-PASS", "T-RV-B"]
    base = validate(
        only=["rv_beta"],
        workers=1,
        extra_replicas=lab / "reps",
        extra_targets=lab / "targets.yaml",
        registry=load_registry(),
    )
    # the rat's brain:plasma partition 2 -> 3 raises the brain's occupancy at 1 h
    assert table["simulated"].iloc[1] > base.results[0].simulated
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"] == "validate" and m["only"] == ["T-RV-PASS", "rv_beta"]
    assert (m["seeds"], m["expect"]) == (1, 2)
    assert m["registry"]["changed"] == [
        {"name": "pk.rat.ketamine.kp_brain", "default": 2.0, "value": 3.0}
    ]
    assert m["counts"] == {"pass": 2, "fail": 0, "known_gap": 0, "error": 0}
    reps = {r["name"]: r for r in m["replicas"]}
    assert set(reps) == {"rv_alpha", "rv_beta"}
    assert reps["rv_beta"]["sha256"] == sha256_file(lab / "reps" / "rv_beta.yaml")
    assert reps["rv_beta"]["text"] == BETA
    inputs = {i["path"]: i["sha256"] for i in m["inputs"]}
    assert inputs[str(lab / "reps" / "rv_beta.yaml")] == sha256_file(lab / "reps" / "rv_beta.yaml")
    assert inputs[str(lab / "targets.yaml")] == sha256_file(lab / "targets.yaml")
    assert m["started_utc"] <= m["finished_utc"]
    assert 'id="changed-note"' in (out / "report.html").read_text()


def test_workers_give_the_serial_numbers_with_the_set_registry(lab, with_set):
    """Two spawned workers, the --set registry passed to them: every number the same
    as the serial run's (replica, further seed and expectation alike)."""
    _, serial = with_set
    res = validate(
        only=["T-RV-PASS", "rv_beta"],
        workers=2,
        extra_replicas=lab / "reps",
        extra_targets=lab / "targets.yaml",
        registry=load_registry().with_settings([SET]),
        seeds=1,
        expect=2,
    )
    par = res.table()
    cols = [
        "target_id",
        "simulated",
        "simulated_effect",
        "expected",
        "expected_effect",
        "status",
        "replication",
    ]
    pd.testing.assert_frame_equal(
        par[cols].reset_index(drop=True),
        serial[cols].reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )


# ------------------------------------------------------------------ atomic output
class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), _Boom("boom")])
def test_a_failure_while_writing_leaves_no_folder_and_keeps_an_earlier_one(
    lab, with_set, tmp_path, monkeypatch, error
):
    import ketasim.report.validation_report as vr

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(vr, "write_validation_report", fail)
    res = cli(lab, "--only", "rv_beta", "--out", tmp_path / "new", "--workers", "1")
    assert res.exit_code != 0
    if isinstance(error, OSError):
        assert res.exit_code == 2 and "nothing was written" in flat(res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no temporary one
    earlier = tmp_path / "earlier"
    shutil.copytree(with_set[0], earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()}
    res = cli(lab, "--only", "rv_beta", "--out", earlier, "--workers", "1")
    assert res.exit_code != 0
    assert {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]


# fixed (was BUG): validate --out naming an existing file raises NotADirectoryError (cli.py:
#   out_dir.iterdir() before atomic_dir's check), a traceback with exit 1 as if a target
#   failed; run says 'exists and is not a folder' with exit 2
def test_out_naming_a_file_is_one_clear_error(lab, tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    res = cli(lab, "--only", "rv_beta", "--out", f, "--workers", "1")
    assert f.read_text() == "mine"
    assert res.exit_code == 2 and "not a folder" in flat(res.output)


# ------------------------------------------------------------------ generated tables
FITTED = "".join(
    [
        target("T-A", role="calibration", extra="  fitted: [x.p, x.q]\n").replace(
            "[F-W-5]", "[F-W-1, F-W-2]"
        ),
        target("T-C"),
        target("T-B", role="calibration", extra="  fitted: [x.q]\n").replace(
            "[F-W-5]", "[F-W-2, F-W-3]"
        ),
    ]
)


def test_fitted_table_known_answer_and_stale_detection(tmp_path):
    from ketasim.validation import fitted_table as ft

    targets = parse_targets(FITTED, parameters=frozenset({"x.p", "x.q"}))
    lines = [
        "| parameter | fitted to targets | facts of those targets |",
        "| --- | --- | --- |",
        "| `x.p` | T-A | F-W-1, F-W-2 |",
        "| `x.q` | T-A, T-B | F-W-1, F-W-2, F-W-3 |",
        "",
        "2 calibration targets, 1 validation targets (no parameter fitted): T-C.",
    ]
    assert ft.fitted_table(targets).split("\n") == lines
    doc = f"# Design\n\nbefore\n\n{ft.block(targets)}\n\nafter\n"
    assert ft.current(doc) == ft.block(targets)
    grown = parse_targets(FITTED + target("T-D"), parameters=frozenset({"x.p", "x.q"}))
    assert ft.current(doc) != ft.block(grown)  # the check sees a stale table
    assert ft.current("no markers here") is None
    assert ft.current(f"{ft.END}\n{ft.START}\n") is None  # markers out of order
    # --write replaces the block with the packaged targets' table, and nothing else
    path = tmp_path / "design.md"
    path.write_text(doc)
    ft.write(path)
    text = path.read_text()
    assert ft.current(text) == ft.block()
    assert text.startswith("# Design\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    path.write_text("no markers")
    with pytest.raises(SystemExit, match="no fitted-table markers"):
        ft.write(path)


DOMAIN_MOUSE = """
name: d1
species: mouse
seed: 1
arms:
  - name: long
    n: 2
    protocol:
      - {at: 0h, stress: cort, duration: 5d}
      - {at: 7d, stress: cort, duration: 3d}
      - {at: 12d, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1d, doses: 3}
      - {at: 20d, drug: saline, route: ip, every: 1d, doses: 5}
    assays: [{assay: signaling_state, at: [1h]}]
  - name: short
    n: 2
    protocol:
      - {at: 0h, stress: cort, duration: 2d}
      - {at: 3d, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: [{assay: signaling_state, at: [1h]}]
targets: []
"""
DOMAIN_RAT = """
name: d2
species: rat
seed: 1
arms:
  - name: r
    n: 2
    protocol:
      - {at: 0h, stress: restraint, duration: 14d}
      - {at: 15d, drug: ketamine, dose: 10 mg/kg, route: ip}
    assays: [{assay: signaling_state, at: [1h]}]
targets: []
"""


def test_extent_of_hand_built_replicas_and_stale_file_detection(tmp_path, monkeypatch):
    from ketasim.scenario import load_scenario_text
    from ketasim.validation import domain

    (tmp_path / "d1.yaml").write_text(DOMAIN_MOUSE)
    (tmp_path / "d2.yaml").write_text(DOMAIN_RAT)
    monkeypatch.setattr(
        domain, "replica_paths", lambda: {"d1": tmp_path / "d1.yaml", "d2": tmp_path / "d2.yaml"}
    )
    ext = domain.replica_extent()
    # stress summed over an arm's courses, the most of any arm; saline not a dose
    assert ext == domain.Extent(
        {("mouse", "cort"): 192.0, ("rat", "restraint"): 336.0},
        {("mouse", "ketamine"): 3, ("rat", "ketamine"): 1},
    )
    stored = tmp_path / "extent.json"
    stored.write_text(ext.to_json())
    assert domain.Extent.from_json(stored.read_text()) == ext
    assert domain.Extent.from_json(domain.Extent().to_json()) == domain.Extent()
    # a replica that grows makes the stored file stale, which the comparison sees
    (tmp_path / "d2.yaml").write_text(DOMAIN_RAT.replace("duration: 14d", "duration: 20d"))
    assert domain.replica_extent() != domain.Extent.from_json(stored.read_text())
    # warnings past 1.5 x the extent, not at it
    arm = (
        "name: s\nspecies: mouse\nseed: 1\narms:\n  - name: a\n    n: 2\n    protocol:\n"
        "      - {{at: 0h, stress: cort, duration: {d}}}\n"
        "      - {{at: 20d, drug: ketamine, dose: 10 mg/kg, route: ip, every: 1d, "
        "doses: {k}}}\n    assays: [{{assay: signaling_state, at: [1h]}}]\n"
    )
    assert domain.domain_warnings(load_scenario_text(arm.format(d="288h", k=4)), ext) == []
    lines = domain.domain_warnings(load_scenario_text(arm.format(d="289h", k=5)), ext)
    assert len(lines) == 2 and "at most 8 days in the mouse" in lines[0]
    assert "5 doses of ketamine" in lines[1] and "at most 3 in the mouse" in lines[1]
    # a species no replica covers is not judged
    rat = load_scenario_text(arm.format(d="289h", k=5).replace("mouse", "rat"))
    assert [ln for ln in domain.domain_warnings(rat, ext) if "cort" in ln] == []


def test_target_id_known_gap_and_tried_have_their_types():
    """A numeric id keyed the target by an int while its id read "12"; ``known_gap: yes``
    became the reason "True"."""
    cases = [
        (target("T-X-1").replace("target_id: T-X-1", "target_id: 12"), "target 12: target_id"),
        (target("T-X-1") + "  known_gap: yes\n", "known_gap must be text"),
    ]
    for text, message in cases:
        with pytest.raises(TargetError, match=re.escape(message)):
            parse_targets(text, "lab.yaml")
