"""Power from a lab's pilot data (``ketasim power RUN_DIR --compare I``): resampling the
pilot's subjects gives the textbook power where the pilot is large, changes from
baseline are resampled per subject, and bad requests are one error."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.power import TTestIndPower
from typer.testing import CliRunner

from ketasim.analysis.power import POWER_COLUMNS, PowerError, pilot_power, pilot_values
from ketasim.analyze.run import analyze
from ketasim.cli import app


def test_a_large_normal_pilot_gives_the_t_test_power():
    rng = np.random.default_rng(7)
    a, b = rng.normal(1.0, 1.0, 4000), rng.normal(0.0, 1.0, 4000)
    d = (a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    df = pilot_power([a, b], test="student_t", ns=[8, 17], cohorts=2000, seed=1,
                     readout="x", time_h=24.0, arms=["a", "b"])
    assert list(df.columns) == POWER_COLUMNS
    for _, r in df.iterrows():
        want = TTestIndPower().power(effect_size=d, nobs1=int(r["n"]), alpha=0.05)
        assert r["ci_low"] - 0.01 <= want <= r["ci_high"] + 0.01, (r["n"], want, r["power"])
    assert df["power"].iloc[1] == pytest.approx(0.80, abs=0.04)
    # same seed, same numbers; the test is the one asked for
    one, two = (pilot_power([a, b], test="student_t", ns=[8], cohorts=100, seed=1)
                for _ in range(2))
    pd.testing.assert_frame_equal(one, two)
    with pytest.raises(PowerError, match="test 'mixed_lm'"):
        pilot_power([a, b], test="mixed_lm", ns=[8], cohorts=10)


def test_pilot_values_are_what_the_comparison_tests():
    """Per subject, or each subject's change from baseline; nested rows and another
    region's rows are not mixed in (the values behind the pilot's own stats.csv row)."""
    rows = []
    for region, off in (("mpfc", 0.0), ("striatum", 100.0)):
        for arm, shift in (("ket", 2.0), ("sal", 0.0)):
            for s in range(4):
                sj = s + (10 if arm == "sal" else 0)
                rows += [(arm, sj, "a", "d", -24.0, off + 10.0 + s, region),
                         (arm, sj, "a", "d", 24.0, off + 10.0 + s + shift, region)]
    r = pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h",
                                    "value", "region"])
    nested = r.assign(assay="a_nested", cell="c0", value=99.0)
    r = pd.concat([r.assign(cell=pd.NA), nested], ignore_index=True)

    def c(**kw):
        return SimpleNamespace(**{"readout": "d", "at": 24.0, "arms": ["ket", "sal"],
                                  "test": "welch_t", "assay": None, "region": "mpfc",
                                  "baseline": None, **kw})

    raw = pilot_values(r, c())
    np.testing.assert_array_equal(raw[0], [12.0, 13.0, 14.0, 15.0])  # mPFC, not nested
    np.testing.assert_array_equal(pilot_values(r, c(region="striatum"))[0],
                                  [112.0, 113.0, 114.0, 115.0])
    chg = pilot_values(r, c(baseline=-24.0))
    np.testing.assert_array_equal(chg[0], [2.0] * 4)
    np.testing.assert_array_equal(chg[1], [0.0] * 4)
    with pytest.raises(PowerError, match="arm 'other': 0 pilot value"):
        pilot_values(r, c(arms=["ket", "other"]))
    with pytest.raises(PowerError, match="measured in regions"):
        pilot_values(r, c(region=None))


def test_power_on_an_analyze_folder(tmp_path):
    rng = np.random.default_rng(3)
    suc = pd.DataFrame({"subject": [f"m{i}" for i in range(12)],
                        "sucrose_g": np.r_[rng.normal(8, 1, 6), rng.normal(6, 1, 6)],
                        "water_g": 2.0})
    suc.to_csv(tmp_path / "sucrose.csv", index=False)
    design = {"name": "pilot", "groups": {"ket": [f"m{i}" for i in range(6)],
                                          "sal": [f"m{i}" for i in range(6, 12)]},
              "files": [{"path": str(tmp_path / "sucrose.csv"), "time": "1d"}],
              "compare": [{"readout": "sucrose_preference", "at": "1d",
                           "arms": ["ket", "sal"]}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    run = analyze("behavior", [tmp_path / "sucrose.csv"], tmp_path / "d.yaml",
                  tmp_path / "pilot")
    res = CliRunner().invoke(app, ["power", str(run), "--compare", "0", "--n", "3:12:3",
                                   "--cohorts", "300", "--out", str(tmp_path / "pw")])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "300 resampled" in res.stdout
    assert "resampled from the pilot's subjects (ket 6, sal 6)" in res.stderr
    df = pd.read_csv(tmp_path / "pw" / "power.csv")
    assert df["n"].tolist() == [3, 6, 9, 12] and df["power"].iloc[-1] > df["power"].iloc[0]
    man = json.loads((tmp_path / "pw" / "manifest.json").read_text())
    assert man["pilot_n"] == {"ket": 6, "sal": 6} and man["cohorts"] == 300
    assert {e["path"].rsplit("/", 1)[-1] for e in man["inputs"]} == {"readouts.parquet",
                                                                      "stats.csv"}
    for args, msg in ((["--compare", "5"], "--compare: got 5"),
                      ([], "give --compare INDEX"),
                      (["--compare", "0", "--design"], "no --design"),
                      (["--compare", "0", "--seed", "-3"], "--seed: got -3"),
                      (["--compare", "0", "--set", "sig.k_synthesis=2"], "--set: not used")):
        res = CliRunner().invoke(app, ["power", str(run), *args])
        assert res.exit_code == 2 and msg in res.stderr, res.stderr
        assert len(res.stderr.splitlines()) == 1


def test_bad_stats_tables_and_a_folder_named_as_a_built_in(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"arm": ["a"], "subject": [0], "assay": ["x"], "readout": ["r"],
                  "time_h": [1.0], "value": [1.0], "unit": ["1"]}).to_parquet(
        run / "readouts.parquet")
    for text, msg in (("x,y\n1,2\n", "missing column(s)"), ("", "cannot read it")):
        (run / "stats.csv").write_text(text)
        res = CliRunner().invoke(app, ["power", str(run), "--compare", "0"])
        assert res.exit_code == 2 and msg in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cort_ketamine").mkdir()
    res = CliRunner().invoke(app, ["power", "cort_ketamine", "--compare", "0"])
    assert res.exit_code == 2 and "both a built-in scenario and a folder" in res.stderr


def test_more_bad_run_folders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    good = pd.DataFrame({"comparison": [0], "readout": ["r"], "assay": [""],
                         "time_h": ["soon"], "test": ["welch_t"], "groups": ["a;b"]})
    good.to_csv(run / "stats.csv", index=False)
    (run / "readouts.parquet").write_bytes(b"not parquet")
    for stats, msg in ((good, "time_h and baseline_h must be numbers"),
                       (good.assign(time_h=1.0), "readouts.parquet: cannot read it")):
        stats.to_csv(run / "stats.csv", index=False)
        res = CliRunner().invoke(app, ["power", str(run), "--compare", "0"])
        assert res.exit_code == 2 and msg in res.stderr, res.stderr
    pd.DataFrame({"arm": ["a"], "x": [1]}).to_parquet(run / "readouts.parquet")
    res = CliRunner().invoke(app, ["power", str(run), "--compare", "0"])
    assert res.exit_code == 2 and "missing column(s)" in res.stderr
    rows = [(arm, s, "x", "r", 1.0, float(s), "1", reg) for reg in ("mpfc", "striatum")
            for arm in ("a", "b") for s in range(3)]
    pd.DataFrame(rows, columns=["arm", "subject", "assay", "readout", "time_h", "value",
                                "unit", "region"]).to_parquet(run / "readouts.parquet")
    res = CliRunner().invoke(app, ["power", str(run), "--compare", "0"])
    assert res.exit_code == 2 and "no region column (written by an older" in res.stderr
