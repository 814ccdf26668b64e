"""A scenario's ``design:`` block (issue 14, items 5 and 8): validation with one clear error
per problem, dropout (rate, MNAR, reproducibility), and the trial analysis ``ketasim run``
writes (trial.csv, endpoints.csv, consort.csv, disposition.csv) and reports."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from ketasim.analysis.mmrm import fit_mmrm
from ketasim.analysis.trial import BPRS, CADSS, MADRS
from ketasim.cli import app
from ketasim.experiment.runner import READOUT_COLUMNS, simulate
from ketasim.experiment.trial import analyse_trial, apply_dropout
from ketasim.params import load_registry
from ketasim.scenario import (
    TRIAL_SCALES,
    ScenarioError,
    load_scenario_text,
    scenario_hash,
    scenario_json_schema,
)

DEP = "{at: -60d, stress: major_depression, duration: 120d}"
KET = "{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"
SAL = "{at: 0h, drug: saline, route: iv}"
TRIAL = f"""
name: small_trial
species: human
seed: 11
arms:
  - name: placebo
    n: 30
    protocol: [{DEP}, {SAL}]
    assays: &a
      - {{assay: madrs, at: [-1d, 4h, 24h, 72h]}}
      - {{assay: cadss, at: [0h, 40min, 4h]}}
      - {{assay: bprs_positive, at: [0h, 40min, 4h]}}
  - name: ketamine
    n: 30
    protocol: [{DEP}, {KET}]
    assays: *a
design:
  control: placebo
  baseline: -1d
  primary: 24h
  randomisation: {{placebo: 1, ketamine: 1}}
  dropout: {{rate_per_week: 0.5, mechanism: mar}}
"""
VISITS = [4.0, 24.0, 72.0]
TRIAL_FILES = ["trial.csv", "endpoints.csv", "consort.csv", "disposition.csv"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("trial")
    (base / "trial.yaml").write_text(TRIAL)
    out = base / "out"
    res = invoke("run", base / "trial.yaml", "--out", out)
    assert res.exit_code == 0, (res.output, res.exception)
    return out


# ------------------------------------------------------------------ the run folder
def test_run_writes_the_trial_files_and_lists_them(run):
    for name in TRIAL_FILES:
        assert (run / name).is_file(), name
    man = json.loads((run / "manifest.json").read_text())
    t = man["trial"]
    assert t["files"] == TRIAL_FILES
    assert t["control"] == "placebo" and t["scale"] == "madrs_total"
    assert t["baseline_h"] == -24.0 and t["primary_h"] == 24.0
    assert t["post_baseline_visits_h"] == VISITS
    assert t["df_method"] == "kenward-roger" and t["covariance"] == "us"
    assert t["remission"] == 12.0 and t["dropout"]["mechanism"] == "mar"


def _long(readouts: pd.DataFrame) -> pd.DataFrame:
    """Change from baseline per patient and post-baseline visit, built here from the
    readouts as an analyst would (missing visits simply absent)."""
    m = readouts[readouts["readout"] == "madrs_total"].pivot_table(
        index=["arm", "subject"], columns="time_h", values="value")
    rows = []
    for (arm, subject), r in m.iterrows():
        for t in VISITS:
            if np.isfinite(r.get(t, np.nan)):
                rows.append({"subject": f"{arm}-{subject}", "arm": arm, "visit": t,
                             "baseline": r[-24.0], "change": r[t] - r[-24.0]})
    long = pd.DataFrame(rows)
    long["arm"] = pd.Categorical(long["arm"], ["placebo", "ketamine"])
    return long


def test_mmrm_contrasts_equal_fit_mmrm_on_the_readouts(run):
    trial = pd.read_csv(run / "trial.csv")
    fit = fit_mmrm(_long(pd.read_parquet(run / "readouts.parquet")), control="placebo",
                   visits=VISITS, covariance="us", df="kenward-roger")
    con = trial[trial["kind"] == "contrast"].reset_index(drop=True)
    assert list(con["visit_h"]) == VISITS and set(con["arm"]) == {"ketamine"}
    assert (con["control"] == "placebo").all() and (con["df_method"] == "kenward-roger").all()
    for col, ref in (("estimate", "estimate"), ("se", "se"), ("df", "df"), ("t", "t"),
                     ("p", "p"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
        np.testing.assert_allclose(con[col], fit.contrasts[ref], rtol=1e-9, err_msg=col)
    ls = trial[trial["kind"] == "lsmean"].reset_index(drop=True)
    np.testing.assert_allclose(ls["estimate"], fit.lsmeans["estimate"], rtol=1e-9)
    assert list(ls["arm"]) == list(fit.lsmeans["arm"])


def test_ketamine_is_better_than_placebo_at_24h(run):
    trial = pd.read_csv(run / "trial.csv")
    primary = trial[(trial["kind"] == "contrast") & trial["primary"]].iloc[0]
    assert primary["visit_h"] == 24.0
    assert primary["estimate"] < -2.0 and primary["p"] < 0.05
    assert primary["ci_low"] < primary["estimate"] < primary["ci_high"] < 0.0
    ls = trial[(trial["kind"] == "lsmean") & (trial["visit_h"] == 24.0)].set_index("arm")
    assert ls.loc["ketamine", "estimate"] < ls.loc["placebo", "estimate"] < 0.0
    obs = trial[trial["kind"] == "observed"]
    assert (obs.loc[obs["visit_h"] == -24.0, "estimate"] == 0.0).all()


def test_endpoints_per_arm_and_visit_with_wilson_intervals(run):
    ep = pd.read_csv(run / "endpoints.csv")
    assert set(ep["endpoint"]) == {"response", "remission"}
    assert sorted(set(ep["visit_h"])) == VISITS
    assert (ep["missing"] == "non-responder imputation").all()
    for _, r in ep.iterrows():
        lo, hi = proportion_confint(r["events"], r["n"], method="wilson")
        assert r["ci_lower"] == pytest.approx(lo) and r["ci_upper"] == pytest.approx(hi)
        assert r["n"] == 30 and r["n_observed"] <= 30
    at = ep[(ep["visit_h"] == 24.0) & (ep["endpoint"] == "response")].set_index("arm")
    assert at.loc["ketamine", "proportion"] > at.loc["placebo", "proportion"]
    assert at.loc["ketamine", "odds_ratio"] > 1.0 and np.isnan(at.loc["placebo", "odds_ratio"])
    # the events are those of the readouts (missing: non-responder)
    r = pd.read_parquet(run / "readouts.parquet")
    m = r[r["readout"] == "madrs_total"].pivot_table(index=["arm", "subject"],
                                                      columns="time_h", values="value")
    for arm in ("placebo", "ketamine"):
        a = m.loc[arm]
        resp = int(((a[-24.0] - a[24.0]) >= 0.5 * a[-24.0]).sum())
        remit = int((a[24.0] <= 12).sum())
        got = ep[(ep["visit_h"] == 24.0) & (ep["arm"] == arm)].set_index("endpoint")
        assert got.loc["response", "events"] == resp and got.loc["remission", "events"] == remit


def test_consort_and_disposition_agree_with_the_readouts(run):
    flow = pd.read_csv(run / "consort.csv", keep_default_na=False)
    disp = pd.read_csv(run / "disposition.csv", keep_default_na=False)
    r = pd.read_parquet(run / "readouts.parquet")
    assert flow.loc[flow["stage"] == "randomised", "n"].tolist() == [60]
    for arm in ("placebo", "ketamine"):
        f = flow[(flow["arm"] == arm) & (flow["reason"] == "")].set_index("stage")["n"]
        d = disp[disp["arm"] == arm]
        assert f["allocated"] == 30 == len(d)
        assert f["completed"] == int(d["completed"].sum())
        assert f["discontinued"] == 30 - f["completed"]
    dropped = disp[~disp["completed"]]
    assert len(dropped) > 0 and (dropped["dropout_reason"] == "lost to follow-up").all()
    for _, p in dropped.iterrows():
        mine = r[(r["arm"] == p["arm"]) & (r["subject"] == int(p["subject"]))]
        assert mine["time_h"].max() < float(p["dropout_h"])  # every assay, from then on
        assert float(p["last_visit_h"]) in set(mine.loc[mine["readout"] == "madrs_total",
                                                         "time_h"])


def test_report_has_the_trial_section_and_its_images(run):
    html = (run / "report.html").read_text()
    assert "<h2>Trial</h2>" in html and 'id="consort"' in html and 'id="trial"' in html
    for name in ("fig_trial.png", "fig_trial_endpoints.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pngs = list(run.glob("*.png"))
    assert html.count("data:image/png;base64,") == len(pngs)
    assert 'alt="trial time course"' in html and 'alt="response and remission"' in html
    trial_part = html[html.index("<h2>Trial</h2>"):html.index("<h2>Figures</h2>")]
    assert trial_part.count("data:image/png;base64,") == 2


# ------------------------------------------------------------------ dropout
def _scenario(n: int, visits: str, dropout: str, arms=("placebo", "ketamine"), seed=3):
    body = "".join(f"  - name: {a}\n    n: {n}\n    protocol: [{DEP}, {SAL}]\n"
                   f"    assays: [{{assay: madrs, at: {visits}}}]\n" for a in arms)
    return load_scenario_text(
        f"name: d\nspecies: human\nseed: {seed}\narms:\n{body}"
        f"design: {{control: {arms[0]}, baseline: 0h, primary: 1w, dropout: {dropout}}}\n")


def _readouts(scores: dict[str, np.ndarray], times: list[float]) -> pd.DataFrame:
    """Readouts of madrs_total (and one other readout) from (n, len(times)) scores."""
    frames = []
    for arm, y in scores.items():
        n = y.shape[0]
        for readout in ("madrs_total", "madrs_suicide_item"):
            frames.append(pd.DataFrame({
                "arm": arm, "subject": np.repeat(np.arange(n), len(times)), "assay": "madrs",
                "readout": readout, "time_h": np.tile(times, n),
                "value": (y if readout == "madrs_total" else y / 10).ravel(),
                "unit": "points"}))
    return pd.concat(frames, ignore_index=True)[READOUT_COLUMNS]


WEEKS = [0.0, 168.0, 336.0, 504.0, 672.0]


def test_mar_dropout_rate_per_week():
    n = 2000
    sc = _scenario(n, "[0h, 1w, 2w, 3w, 4w]", "{rate_per_week: 0.2}")
    y = np.full((n, len(WEEKS)), 30.0)
    r, disp = apply_dropout(sc, _readouts({"placebo": y, "ketamine": y}, WEEKS), sc.seed)
    for k, t in enumerate(WEEKS[1:], start=1):
        gone = (disp["dropout_h"] <= t).mean()
        assert gone == pytest.approx(1 - 0.8**k, abs=0.03), t
        seen = r[(r["readout"] == "madrs_total") & (r["time_h"] == t)]
        assert len(seen) == int((~(disp["dropout_h"] <= t)).sum())
    assert set(disp.loc[~disp["completed"], "dropout_reason"]) == {"lost to follow-up"}
    # the suicide item goes with the visit
    assert len(r[r["readout"] == "madrs_suicide_item"]) == len(r[r["readout"] == "madrs_total"])


def test_visits_closer_than_a_week_drop_at_the_weekly_rate():
    n = 2000
    days = [0.0, 24.0, 48.0, 72.0, 96.0, 120.0, 144.0, 168.0]
    sc = _scenario(n, "[0h, 1d, 2d, 3d, 4d, 5d, 6d, 1w]", "{rate_per_week: 0.3}")
    y = np.full((n, len(days)), 30.0)
    _, disp = apply_dropout(sc, _readouts({"placebo": y, "ketamine": y}, days), sc.seed)
    assert (~disp["completed"]).mean() == pytest.approx(0.3, abs=0.03)


def test_mnar_drops_worse_patients_more():
    n = 2000
    sc = _scenario(n, "[0h, 1w, 2w, 3w, 4w]", "{rate_per_week: 0.2, mechanism: mnar}")
    better = np.tile([30.0, 20.0, 15.0, 12.0, 10.0], (n, 1))   # improving
    worse = np.tile([30.0, 30.0, 32.0, 34.0, 36.0], (n, 1))    # not improving
    y = np.where((np.arange(n) % 2 == 0)[:, None], better, worse)
    _, disp = apply_dropout(sc, _readouts({"placebo": y, "ketamine": y}, WEEKS), sc.seed)
    improving = disp["subject"] % 2 == 0
    left_better = (~disp.loc[improving, "completed"]).mean()
    left_worse = (~disp.loc[~improving, "completed"]).mean()
    assert left_worse > 2 * left_better and left_worse > 1 - 0.8**4
    reasons = disp.loc[~disp["completed"] & ~improving, "dropout_reason"]
    assert (reasons == "lack of efficacy").all()
    # MAR on the same patients: no difference beyond noise
    sc = _scenario(n, "[0h, 1w, 2w, 3w, 4w]", "{rate_per_week: 0.2, mechanism: mar}")
    _, disp = apply_dropout(sc, _readouts({"placebo": y, "ketamine": y}, WEEKS), sc.seed)
    assert abs((~disp.loc[improving, "completed"]).mean()
               - (~disp.loc[~improving, "completed"]).mean()) < 0.05


def test_dropout_is_keyed_per_patient():
    """The same patients drop out whatever the other arms and the arm's size."""
    y = np.full((400, len(WEEKS)), 30.0)
    small = _scenario(200, "[0h, 1w, 2w, 3w, 4w]", "{rate_per_week: 0.3}")
    big = _scenario(400, "[0h, 1w, 2w, 3w, 4w]", "{rate_per_week: 0.3}",
                    arms=("placebo", "ketamine", "other"))
    _, a = apply_dropout(small, _readouts({"placebo": y[:200], "ketamine": y[:200]}, WEEKS),
                         3)
    _, b = apply_dropout(big, _readouts({k: y for k in ("placebo", "ketamine", "other")},
                                        WEEKS), 3)
    b = b[b["arm"].isin(["placebo", "ketamine"]) & (b["subject"] < 200)]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    _, c = apply_dropout(small, _readouts({"placebo": y[:200], "ketamine": y[:200]}, WEEKS),
                         4)
    assert not c["dropout_h"].equals(a["dropout_h"])


def test_simulated_dropout_is_reproducible_and_independent_of_chunking():
    text = TRIAL.replace("n: 30", "n: 9").replace("rate_per_week: 0.5", "rate_per_week: 0.9")
    text = text.replace("mechanism: mar", "mechanism: mnar")
    sc = load_scenario_text(text)
    reg = load_registry()
    a = simulate(sc, registry=reg)
    b = simulate(sc, registry=reg, chunk_subjects=4)
    pd.testing.assert_frame_equal(a.readouts, b.readouts)
    pd.testing.assert_frame_equal(a.disposition, b.disposition)
    assert (~a.disposition["completed"]).sum() > 0


# ------------------------------------------------------------------ analysis details
def test_one_post_baseline_visit_is_an_ancova():
    import statsmodels.formula.api as smf

    sc = load_scenario_text(TRIAL.replace("[-1d, 4h, 24h, 72h]", "[-1d, 24h]")
                            .replace("  dropout: {rate_per_week: 0.5, mechanism: mar}\n", ""))
    g = np.random.default_rng(5)
    base = g.integers(25, 40, (2, 30)).astype(float)
    post = base - g.normal([[8.0], [14.0]], 5.0, (2, 30)).round()
    scores = {a: np.column_stack([base[k], post[k]]) for k, a in enumerate(["placebo",
                                                                            "ketamine"])}
    tables = analyse_trial(sc, _readouts(scores, [-24.0, 24.0]))
    con = tables.trial[tables.trial["kind"] == "contrast"].iloc[0]
    d = pd.DataFrame({"arm": np.repeat(["placebo", "ketamine"], 30),
                      "baseline": base.ravel(), "change": (post - base).ravel()})
    fit = smf.ols("change ~ C(arm, Treatment('placebo')) + baseline", d).fit()
    term = "C(arm, Treatment('placebo'))[T.ketamine]"
    assert con["estimate"] == pytest.approx(fit.params[term])
    assert con["se"] == pytest.approx(fit.bse[term]) and con["df"] == fit.df_resid
    assert con["p"] == pytest.approx(fit.pvalues[term]) and con["df_method"] == "residual"
    assert (tables.consort.loc[tables.consort["stage"] == "completed", "n"] == 30).all()


def test_a_model_that_cannot_be_fitted_leaves_a_note():
    sc = load_scenario_text(TRIAL)
    g = np.random.default_rng(1)
    y = {a: np.column_stack([np.full(30, 30.0), g.normal(25, 4, (30, 3)).round()])
         for a in ("placebo", "ketamine")}
    r = _readouts(y, [-24.0, *VISITS])
    r = r[~((r["arm"] == "ketamine") & (r["time_h"] == 72.0))]  # nobody seen at 72 h
    tables = analyse_trial(sc, r)
    assert set(tables.trial["kind"]) == {"observed"}
    assert tables.notes and "could not be fitted" in tables.notes[0]


def test_trial_scales_match_the_scale_definitions():
    assert (TRIAL_SCALES["madrs_total"].low, TRIAL_SCALES["madrs_total"].high) == (0, 60)
    assert TRIAL_SCALES["madrs_total"].remission_max == MADRS.remission_max == 12
    assert (TRIAL_SCALES["cadss_total"].low, TRIAL_SCALES["cadss_total"].high) == (
        CADSS.total_min, CADSS.total_max)
    assert (TRIAL_SCALES["bprs_positive"].low, TRIAL_SCALES["bprs_positive"].high) == (4, 28)
    assert len(BPRS.subscale("positive")) == 4
    assert (TRIAL_SCALES["madrs_anhedonia"].high, TRIAL_SCALES["madrs_suicide_item"].high) == (
        30, 6)


# ------------------------------------------------------------------ bad designs
BAD = [
    ("control: placebo", "control: plcebo", "design.control", "the name of an arm"),
    ("baseline: -1d", "baseline: -1d\n  scale: madrs_totl", "design.scale",
     "did you mean 'madrs_total'"),
    ("baseline: -1d", "baseline: -1d\n  scale: hdrs_total", "design.scale",
     "clinical readouts"),
    ("      - {assay: madrs, at: [-1d, 4h, 24h, 72h]}\n", "", "design.scale",
     "measured in every analysed arm"),
    ("baseline: -1d", "baseline: -2d", "design.baseline", "a time at which arm 'placebo'"),
    ("primary: 24h", "primary: 48h", "design.primary", "measures madrs_total"),
    ("primary: 24h", "primary: -1d", "design.primary", "a visit after the baseline"),
    ("rate_per_week: 0.5", "rate_per_week: -0.1", "design.dropout.rate_per_week", ">= 0"),
    ("rate_per_week: 0.5", "rate_per_week: 1", "design.dropout.rate_per_week", "< 1"),
    ("rate_per_week: 0.5", "rate_per_week: 1.5", "design.dropout.rate_per_week", "< 1"),
    ("mechanism: mar", "mechanism: nmar", "design.dropout.mechanism", "'mnar'"),
    ("ketamine: 1}", "ketamin: 1}", "design.randomisation.ketamin", "an analysed arm"),
    ("{placebo: 1, ketamine: 1}", "{placebo: 1}", "design.randomisation",
     "a ratio for every analysed arm"),
    ("ketamine: 1}", "ketamine: 2}", "design.randomisation.placebo", "within rounding"),
    ("ketamine: 1}", "ketamine: -2}", "design.randomisation.ketamine", "a positive number"),
    ("ketamine: 1}", "ketamine: 0}", "design.randomisation.ketamine", "a positive number"),
    ("baseline: -1d", "baseline: -1d\n  remission: 61", "design.remission", "from 0 to 60"),
    ("baseline: -1d", "baseline: -1d\n  response_fall: 0", "design.response_fall", "> 0"),
    ("baseline: -1d", "baseline: -1d\n  covariance: toeplitz", "design.covariance", "'ar1'"),
    ("baseline: -1d", "baseline: -1d\n  df: residual", "design.df", "'satterthwaite'"),
    ("baseline: -1d", "baseline: -1d\n  washout: 1w", "design.washout",
     "one of the keys of a trial design"),
    ("baseline: -1d", "baseline: -1d\n  arms: [placebo, ketamine, healthy]", "design.arms[2]",
     "the name of an arm"),
    ("baseline: -1d", "baseline: -1d\n  arms: [ketamine, ketamine]", "design.arms[1]",
     "distinct arms"),
    ("mechanism: mar", "mechanism: mar, strength: 3", "design.dropout.strength",
     "unless the mechanism is 'mnar'"),
]


@pytest.mark.parametrize("old,new,path,fragment", BAD, ids=[b[2] + ":" + b[1][-14:]
                                                             for b in BAD])
def test_bad_design_is_one_error_naming_the_field(old, new, path, fragment):
    assert old in TRIAL
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(TRIAL.replace(old, new, 1), "bad.yaml")
    err = info.value
    assert err.path == path, str(err)
    assert fragment in err.expected, str(err)
    assert str(err).startswith(f"bad.yaml: {path}: got ") and err.more == 0


@pytest.mark.parametrize("old,new,path", [
    ("control: placebo", "control: plcebo", "design.control"),
    ("primary: 24h", "primary: 48h", "design.primary"),
    ("rate_per_week: 0.5", "rate_per_week: 1.5", "design.dropout.rate_per_week"),
    ("ketamine: 1}", "ketamine: 2}", "design.randomisation"),
])
def test_bad_design_exits_2_with_one_line(tmp_path, old, new, path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TRIAL.replace(old, new, 1))
    res = invoke("run", bad, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and path in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ schema and hash
def test_json_schema_has_the_design_block():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = scenario_json_schema()
    defs = schema["$defs"]
    assert defs["Design"]["additionalProperties"] is False
    assert defs["Dropout"]["additionalProperties"] is False
    props = defs["Design"]["properties"]
    assert set(props) >= {"control", "scale", "baseline", "primary", "remission",
                          "response_fall", "covariance", "df", "randomisation", "dropout"}
    assert set(props["scale"]["enum"]) == set(TRIAL_SCALES)
    validator = jsonschema.Draft202012Validator(schema)
    data = yaml.safe_load(TRIAL)
    assert not list(validator.iter_errors(data))
    for key, value in (("colour", "red"), ("baseline", "yesterday"), ("df", "residual")):
        bad = yaml.safe_load(TRIAL)
        bad["design"][key] = value
        assert list(validator.iter_errors(bad)), key
    bad = yaml.safe_load(TRIAL)
    bad["design"]["dropout"]["rate_per_week"] = 1
    assert list(validator.iter_errors(bad))


def test_hash_ignores_an_absent_design_and_sees_a_present_one():
    without = load_scenario_text(TRIAL.split("design:")[0])
    payload = without.model_dump(mode="json")
    del payload["design"]
    for arm in payload["arms"]:  # an absent population is left out too
        del arm["population"]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert scenario_hash(without) == hashlib.sha256(text.encode("ascii")).hexdigest()
    a = scenario_hash(load_scenario_text(TRIAL))
    assert a != scenario_hash(without)
    assert a != scenario_hash(load_scenario_text(TRIAL.replace("primary: 24h", "primary: 4h")))


SCREENED_OUT = """
name: screened_out
species: human
seed: 5
arms:
  - name: placebo
    n: 6
{pop_placebo}    protocol:
      - {{at: -60d, stress: major_depression, duration: 120d}}
      - {{at: 0h, drug: saline, route: iv, over: 40min}}
    assays: [{{assay: madrs, at: [-1d, 24h, 72h]}}]
  - name: ketamine
    n: 6
    population: {{female: 0.5, screening: -1d, inclusion: {{madrs_min: 60}}}}
    protocol:
      - {{at: -60d, stress: major_depression, duration: 120d}}
      - {{at: 0h, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}}
    assays: [{{assay: madrs, at: [-1d, 24h, 72h]}}]
design:
  control: placebo
  scale: madrs_total
  baseline: -1d
  primary: 24h
"""


@pytest.mark.parametrize("both", [True, False])
def test_an_arm_screening_lets_nobody_into_is_a_note_not_a_crash(tmp_path, both):
    """MADRS >= 60 at screening admits nobody: the run completes, the CONSORT flow counts
    the screen failures, and the analyses say why they are not estimable (a traceback
    from the response analysis before)."""
    pop = ("    population: {female: 0.5, screening: -1d, inclusion: {madrs_min: 60}}\n"
           if both else "")
    path = tmp_path / "s.yaml"
    path.write_text(SCREENED_OUT.format(pop_placebo=pop))
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, (res.output, res.exception)
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    text = json.dumps(manifest)
    who = "'placebo'" if both else "any arm but the control"
    assert f"not estimable: no patient of {who}" in text
