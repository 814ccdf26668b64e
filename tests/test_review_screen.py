"""Review of compounds and ``ketasim screen`` against independent answers.

- every metric of the screen table recomputed here from the screen's own readouts (with
  code written from the documented definitions, not the package's helpers), and one arm's
  readouts reproduced by a scenario written here by hand;
- the ranking follows the documented key, direction and ties;
- 1 vs 2 workers, the order of the candidates, the other arms in the screen and the
  folder a compound file comes from change nothing;
- a compound with no target gives no effect; vehicle rows are zero; a dose of 0 is
  refused;
- a metabolite chain (a prodrug -> b -> a blocker) acts through its last member, in
  moles (the molecular weights);
- malformed compound files are one error naming the file and the field, and a screen
  with one bad file writes nothing (and leaves an earlier screen as it was).

The defects found (once ``xfail(strict=True)`` tests asserting the correct behaviour)
are fixed; their tests now hold.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import assert_one_error_line
from typer.testing import CliRunner

from ketasim.cli import app
from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.pk.compounds import COMPOUNDS, CompoundError, add_compounds, reset_compounds
from ketasim.scenario import load_scenario_text
from ketasim.screen import (
    TABLE_COLUMNS,
    ScreenError,
    default_candidates,
    plan_screen,
    rank,
    run_screen,
)

MEMANTINE = (Path(__file__).resolve().parents[1] / "ketasim" / "compounds"
             / "memantine.yaml").read_text()


def _pk(cl: float, v1: float, kp: float) -> str:
    return textwrap.dedent(f"""\
        pk:
          mouse: &pk
            model: compartmental
            cl: {{value: {cl}, unit: L/h/kg, source: test}}
            v1: {{value: {v1}, unit: L/kg, source: test}}
            kp_brain: {{value: {kp}, unit: "1", source: test}}
            ke0: {{value: 2.0, unit: 1/h, source: test}}
            fu_brain: {{value: 0.1, unit: "1", source: test}}
          rat: *pk
        """)


def _compound(name: str, mw: float, pk: str, tail: str = "") -> str:
    return (f"name: {name}\ndescription: review test compound\nroutes: [iv, ip, sc]\n"
            f"analytes: [drug]\nmw: {{value: {mw}, unit: g/mol, source: test}}\n"
            + pk + tail)


BLOCK = textwrap.dedent("""\
    targets:
      nmda:
        action: channel_blocker
        potency: {value: 1.0, unit: uM, source: test}
        trapping: {value: 0.70, unit: "1", source: test}
        mg_rest: {value: 10.0, unit: "1", source: test}
    """)


def _met(m: str, frac: float = 1.0) -> str:
    return (f"metabolites:\n  - {{compound: {m}, fraction: {{value: {frac}, unit: \"1\", "
            "source: test}}\n")


# a prodrug (twice chc's molecular weight, no target) -> chb (no target) -> chc, a
# memantine-like blocker; both links fast (k10 = 40/h) and complete (fraction 1)
FILES = {
    "memx": MEMANTINE.replace("name: memantine", "name: memx"),
    "memy": MEMANTINE.replace("name: memantine", "name: memy"),  # the same molecule
    "cha": _compound("cha", 358.6, _pk(40.0, 1.0, 0.05), _met("chb")),
    "chb": _compound("chb", 179.3, _pk(40.0, 1.0, 0.05), _met("chc")),
    "chc": _compound("chc", 179.3, _pk(5.0, 10.0, 10.0), BLOCK),
    "nulldrug": _compound("nulldrug", 179.3, _pk(5.0, 10.0, 10.0)),  # PK, no target
}
# the screen's signalling grid, written out from the module docstring's description
GRID = ("0h, 10min, 20min, 30min, 45min, 1h, 90min, 2h, 150min, 3h, 4h, 5h, 6h, 8h, 10h, "
        "12h, 16h, 24h, 36h, 48h, 72h, 7d")
METRICS = ["window_peak", "window_peak_time_h", "window_duration_h", "formation_drive_peak",
           "spine_gain_24h_pct", "spine_gain_7d_pct", "tst_rescue_3h_s", "tst_rescue_48h_s",
           "nmda_occupancy_pyramidal_peak", "hyperlocomotion_pct", "efficacy_vs_reference",
           "dissociation_vs_reference"]
EFFICACY = ["window_peak", "window_duration_h", "formation_drive_peak", "spine_gain_24h_pct",
            "spine_gain_7d_pct", "tst_rescue_3h_s", "tst_rescue_48h_s"]
LATENT = ["window_peak", "window_duration_h", "formation_drive_peak",
          "nmda_occupancy_pyramidal_peak"]


def _write(folder: Path, names, files=FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / f"{n}.yaml").write_text(files[n])
    return folder


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _builtin_compounds():
    reset_compounds()
    yield
    reset_compounds()


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    """S1: ``ketasim screen FOLDER`` (6 candidates, 10 mg/kg, 2 workers). S2: the API,
    1 worker, two of them in the other order, from a copy of their files in another
    folder, at 5 and 10 mg/kg. ``own``: one arm simulated from a scenario written here."""
    reset_compounds()
    base = tmp_path_factory.mktemp("screens")
    folder = _write(base / "F", FILES)
    out = base / "s1"
    res = invoke("screen", folder, "--doses", "10 mg/kg", "--n", 2, "--workers", 2,
                 "--stress", "none", "--out", out)
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    text = ("name: mine\nspecies: mouse\nseed: 7\narms:\n  - name: memx_10mg_kg\n    n: 2\n"
            "    protocol:\n      - {at: 0h, drug: memx, dose: 10 mg/kg, route: ip}\n"
            "    assays:\n      - {assay: tail_suspension, at: [3h, 48h]}\n"
            "      - {assay: open_field, at: [15min, 30min]}\n"
            "      - {assay: two_photon_spines, at: [0h, 24h, 7d]}\n"
            f"      - {{assay: signaling_state, at: [{GRID}]}}\n")
    own = simulate(load_scenario_text(text), registry=load_registry()).readouts
    reset_compounds()
    add_compounds(_write(base / "copy", ["memy", "chc"]))
    plan = plan_screen(doses="5,10 mg/kg", candidates=["memy", "chc"], n=2, stress="none")
    s2 = run_screen(plan, registry=load_registry(), workers=1)
    reset_compounds()
    return {"out": out, "folder": folder, "stdout": res.stdout, "own": own, "s2": s2,
            "table": pd.read_csv(out / "screen.csv", float_precision="round_trip"),
            "readouts": pd.read_parquet(out / "readouts.parquet")}


# ------------------------------------------------------------------ recomputed metrics
def _recompute(readouts: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """The metrics from the documented definitions (design.md, screen.py docstring)."""
    def arm_rows(assay, readout, arm):
        r = readouts
        return r[(r.assay == assay) & (r.readout == readout) & (r.arm == arm)]

    def course(readout, arm):  # arm mean over subjects, per time, from its own 0 h value
        d = arm_rows("signaling_state", readout, arm)
        t = np.sort(d.time_h.unique())
        y = np.array([d[d.time_h == x].value.mean() for x in t])
        return t, y

    out = {}
    tv, ppv = course("plasticity_potential", "vehicle")
    threshold = 0.10 * ppv[0]
    _, fdv = course("formation_drive", "vehicle")
    fine = np.linspace(0.0, 72.0, 720_001)
    veh_of = arm_rows("open_field", "distance_cm", "vehicle").value.mean()

    def tst(arm, h):
        d = arm_rows("tail_suspension", "tst_immobility_s", arm)
        return d[d.time_h == h].value.mean()

    def spine_gain(arm, h):
        d = arm_rows("two_photon_spines", "spine_density_per_10um", arm)
        g = []
        for _, s in d.groupby("subject"):
            v = s.set_index("time_h").value
            g.append((v[h] / v[0.0] - 1.0) * 100.0)
        return float(np.mean(g))

    for arm in arms:
        t, pp = course("plasticity_potential", arm)
        assert np.array_equal(t, tv)
        delta = (pp - pp[0]) - (ppv - ppv[0])
        keep = t <= 72.0
        k = int(np.argmax(delta[keep]))
        peak = delta[keep][k]
        above = np.interp(fine, t[keep], delta[keep]) > threshold
        _, fd = course("formation_drive", arm)
        fdd = (fd - fd[0]) - (fdv - fdv[0])
        to, occ = course("occupancy_pyramidal", arm)
        out[arm] = {
            "window_peak": peak,
            "window_peak_time_h": t[keep][k] if peak > threshold else np.nan,
            "window_duration_h": above.mean() * 72.0,
            "formation_drive_peak": fdd[keep].max(),
            "spine_gain_24h_pct": spine_gain(arm, 24.0) - spine_gain("vehicle", 24.0),
            "spine_gain_7d_pct": spine_gain(arm, 168.0) - spine_gain("vehicle", 168.0),
            "tst_rescue_3h_s": tst("vehicle", 3.0) - tst(arm, 3.0),
            "tst_rescue_48h_s": tst("vehicle", 48.0) - tst(arm, 48.0),
            "nmda_occupancy_pyramidal_peak": occ[to <= 2.0].max(),
            "hyperlocomotion_pct": (arm_rows("open_field", "distance_cm", arm).value.mean()
                                    / veh_of - 1.0) * 100.0,
        }
    df = pd.DataFrame(out).T
    ref = df.loc["ketamine_10mg_kg"]
    for score, names in (("efficacy_vs_reference", EFFICACY),
                         ("dissociation_vs_reference", ["nmda_occupancy_pyramidal_peak",
                                                        "hyperlocomotion_pct"])):
        used = [m for m in names if ref[m] > 0]
        df[score] = (df[used] / ref[used]).clip(-1.0, 2.0).mean(axis=1)
    return df


def test_every_metric_matches_a_recomputation_from_the_readouts(screens):
    table = screens["table"].set_index("arm")
    mine = _recompute(screens["readouts"], list(table.index))
    for m in METRICS:
        tol = 2e-4 if m == "window_duration_h" else 1e-9  # fine-grid integration
        np.testing.assert_allclose(table[m].to_numpy(float),
                                   mine.loc[table.index, m].to_numpy(float),
                                   rtol=1e-9, atol=tol, err_msg=m)
    # the reference really has a window (so the duration check is not vacuous)
    assert table.loc["ketamine_10mg_kg", "window_duration_h"] > 2.0


def test_the_ranking_follows_the_documented_key_and_ties(screens):
    t = screens["table"]
    assert list(t.columns) == TABLE_COLUMNS
    e = t["efficacy_vs_reference"].to_numpy(float)
    # rank 1 = best; ties share the better rank: 1 + the number of arms strictly better
    assert t["rank"].tolist() == [1 + int((e > x).sum()) for x in e]
    assert list(e) == sorted(e, reverse=True)
    by = t.set_index("arm")
    assert by.loc["ketamine_10mg_kg", "rank"] < by.loc["vehicle", "rank"]


def test_rank_directions_ties_and_missing_values():
    t = pd.DataFrame({
        "compound": ["b", "a", "saline", "ketamine", "c"],
        "dose_mg_per_kg": [3.0, 3.0, 0.0, 10.0, 1.0],
        "route": "ip", "role": ["candidate", "candidate", "vehicle", "reference",
                                "candidate"],
        "arm": ["b_3mg_kg", "a_3mg_kg", "vehicle", "ketamine_10mg_kg", "c_1mg_kg"], "n": 2,
        **{m: 0.0 for m in METRICS}})
    t["efficacy_vs_reference"] = [0.5, 0.5, 0.0, 1.0, np.nan]
    t["nmda_occupancy_pyramidal_peak"] = [0.2, 0.1, 0.0, 0.4, 0.1]
    r = rank(t, "efficacy_vs_reference")
    assert r["arm"].tolist() == ["ketamine_10mg_kg", "a_3mg_kg", "b_3mg_kg", "vehicle",
                                 "c_1mg_kg"]  # a tie sorted by compound; NaN last
    assert r["rank"].tolist()[:4] == [1, 2, 2, 4] and pd.isna(r["rank"].iloc[4])
    r = rank(t, "nmda_occupancy_pyramidal_peak")  # higher is worse: lowest first
    assert r["arm"].tolist() == ["vehicle", "a_3mg_kg", "c_1mg_kg", "b_3mg_kg",
                                 "ketamine_10mg_kg"]
    assert r["rank"].tolist() == [1, 2, 2, 4, 5]


def test_csv_and_parquet_hold_the_same_table(screens):
    out = screens["out"]
    pq = pd.read_parquet(out / "screen.parquet")
    csv = screens["table"]
    assert list(pq.columns) == TABLE_COLUMNS
    for c in TABLE_COLUMNS:
        if c in METRICS or c == "dose_mg_per_kg":
            np.testing.assert_array_equal(pq[c].to_numpy(float), csv[c].to_numpy(float))
        else:
            assert pq[c].astype(str).tolist() == csv[c].astype(str).tolist(), c
    man = json.loads((out / "manifest.json").read_text())
    assert man["candidates"] == sorted(FILES)
    assert man["doses_mg_per_kg"] == [10.0]


def test_one_arm_is_reproduced_by_a_scenario_written_independently(screens):
    """The memx arm, written here from the documented protocol (assays in another order),
    gives the screen's readouts exactly."""
    cols = ["arm", "subject", "assay", "readout", "time_h"]
    r = screens["readouts"]
    mine = r[r.arm == "memx_10mg_kg"].sort_values(cols).reset_index(drop=True)
    own = screens["own"].sort_values(cols).reset_index(drop=True)
    assert len(mine) > 0
    pd.testing.assert_frame_equal(mine[cols + ["value", "unit"]],
                                  own[cols + ["value", "unit"]])


# ------------------------------------------------------------------ invariance
def test_workers_order_other_arms_and_file_location_change_nothing(screens):
    """S1 (2 workers, folder order, 8 arms) and S2 (1 worker, the other order, other
    doses beside, the files copied to another folder): the shared arms' rows and
    readouts are identical."""
    s1 = screens["table"].set_index("arm")
    s2 = screens["s2"].table.set_index("arm")
    shared = ["vehicle", "ketamine_10mg_kg", "memy_10mg_kg", "chc_10mg_kg"]
    assert set(shared) <= set(s2.index)
    pd.testing.assert_frame_equal(s1.loc[shared, METRICS], s2.loc[shared, METRICS],
                                  check_exact=False, rtol=1e-12, atol=1e-12)
    cols = ["arm", "subject", "assay", "readout", "time_h"]
    r1 = screens["readouts"]
    r2 = screens["s2"].readouts
    a = r1[r1.arm.isin(shared)].sort_values(cols).reset_index(drop=True)
    b = r2[r2.arm.isin(shared)].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # the ranking among the shared arms is the same
    assert [x for x in screens["table"]["arm"] if x in shared] == [
        x for x in screens["s2"].table["arm"] if x in shared]


# Not a defect (decided in review): an identical compound file under another name is
#   another arm, and arms are independent cohorts (streams keyed by the arm name, as
#   docs/design.md says), so their metrics differ by the cohorts' sampling (memantine
#   copies at n 8: window peak 0.0012 and 0.0036); the screen's docstring says so.


# ------------------------------------------------------------------ no effect
def test_vehicle_row_is_zero_and_a_compound_without_targets_has_no_latent_effect(screens):
    by = screens["table"].set_index("arm")
    veh = by.loc["vehicle"]
    assert (veh[[m for m in METRICS if m != "window_peak_time_h"]] == 0).all()
    assert np.isnan(veh["window_peak_time_h"])
    null = by.loc["nulldrug_10mg_kg"]
    assert null[["window_peak", "window_duration_h", "formation_drive_peak",
                 "nmda_occupancy_pyramidal_peak"]].abs().max() < 1e-9
    assert np.isnan(null["window_peak_time_h"])
    # while the blocker with the same PK does occupy NMDA receptors
    assert by.loc["chc_10mg_kg", "nmda_occupancy_pyramidal_peak"] > 0.05


@pytest.mark.parametrize("doses", ["0 mg/kg", [0.0], [0.0, 10.0], "-1 mg/kg"])
def test_a_zero_or_negative_dose_is_refused(doses):
    with pytest.raises(ScreenError, match="--doses"):
        plan_screen(candidates=["memantine"], doses=doses, n=2)


# ------------------------------------------------------------------ metabolite chain
def test_a_metabolite_chain_acts_through_its_last_member_in_moles(screens):
    """cha (MW 358.6, no target) -> chb (MW 179.3, no target) -> chc (MW 179.3, blocker),
    each link complete and fast: 10 mg/kg of cha forms as many moles of chc as 5 mg/kg of
    chc itself, 10 mg/kg of chb as 10 mg/kg of chc."""
    s1 = screens["table"].set_index("arm")["nmda_occupancy_pyramidal_peak"]
    s2 = screens["s2"].table.set_index("arm")["nmda_occupancy_pyramidal_peak"]
    c5, c10 = s2["chc_5mg_kg"], s2["chc_10mg_kg"]
    assert 0 < c5 < 0.75 * c10  # the dose-response itself
    assert s2["memy_5mg_kg"] < s2["memy_10mg_kg"]
    assert s1["cha_10mg_kg"] == pytest.approx(c5, rel=0.05)
    assert s1["chb_10mg_kg"] == pytest.approx(c10, rel=0.05)
    assert s1["cha_10mg_kg"] < s1["chb_10mg_kg"]


def test_metabolite_chain_is_listed(tmp_path):
    folder = _write(tmp_path / "c", ["cha", "chb", "chc"])
    res = CliRunner().invoke(app, ["compounds", "--compounds", str(folder)],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "│ cha " in line)
    # the file's path may be cut to the console's width (a long temporary folder)
    assert "-> chb" in row and "built-in" not in row


# ------------------------------------------------------------------ malformed files
BASE = FILES["chc"]
MALFORMED = [
    ("unknown_target", BASE.replace("nmda:", "nmdx:"), ["targets.nmdx", "unknown target"]),
    ("negative_potency", BASE.replace("potency: {value: 1.0", "potency: {value: -1.0"),
     ["targets.nmda.potency.value", "positive"]),
    ("unit_mismatch", BASE.replace("unit: uM", "unit: mg/kg"),
     ["targets.nmda.potency.unit", "mg/kg"]),
    ("missing_field", BASE.replace("    cl: {value: 5.0, unit: L/h/kg, source: test}\n", ""),
     ["pk.mouse", "missing 'cl'"]),
    ("missing_mw", BASE.replace("mw: {value: 179.3, unit: g/mol, source: test}\n", ""),
     ["missing 'mw'"]),
    ("routes_not_a_list", BASE.replace("routes: [iv, ip, sc]", "routes: ip"), [".routes"]),
    ("value_is_a_string", BASE.replace("cl: {value: 5.0", "cl: {value: '5.0'"),
     ["pk.mouse.cl.value", "number"]),
    ("bare_number", BASE.replace("cl: {value: 5.0, unit: L/h/kg, source: test}", "cl: 5.0"),
     ["pk.mouse.cl", "bare number"]),
    ("targets_a_list", BASE.split("targets:")[0] + "targets: [nmda]\n",
     [".targets", "mapping"]),
    ("duplicate_key", BASE.replace("    v1:", "    cl: {value: 6, unit: L/h/kg, source: t}"
                                   "\n    v1:"), ["the key 'cl' is given twice", "line 10"]),
    ("duplicate_key_flow", BASE.replace("potency: {value: 1.0,", "potency: {value: 1.0, "
                                        "value: 2.0,"), ["the key 'value' is given twice"]),
    ("unknown_metabolite", BASE + _met("nothere", 0.5),
     ["metabolites[0].compound", "nothere"]),
    ("self_metabolite", BASE + _met("chc", 0.5), ["metabolite cycle", "chc -> chc"]),
    ("unknown_species", BASE.replace("  rat: *pk", "  dog: *pk"), [".pk", "dog"]),
    ("fraction_above_one", BASE.replace("fu_brain: {value: 0.1", "fu_brain: {value: 1.5"),
     ["pk.mouse.fu_brain", "at most 1"]),
    ("empty_file", "", ["expected a mapping"]),
]


@pytest.mark.parametrize("case, text, fragments", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_file_is_one_error_naming_file_and_field(tmp_path, case, text,
                                                             fragments):
    folder = tmp_path / case
    folder.mkdir()
    (folder / "chc.yaml").write_text(text)
    with pytest.raises(CompoundError) as e:
        add_compounds(folder)
    msg = str(e.value)
    assert str(folder / "chc.yaml") in msg and "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)
    assert "chc" not in COMPOUNDS


# fixed (was BUG): a unit given as a list or mapping raises TypeError (unhashable)
#   instead of CompoundError naming the field
@pytest.mark.parametrize("unit", ["[uM]", "{u: uM}"])
def test_a_unit_of_the_wrong_type_is_a_compound_error(tmp_path, unit):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "chc.yaml").write_text(BASE.replace("unit: uM", f"unit: {unit}"))
    with pytest.raises(CompoundError, match=r"targets\.nmda\.potency\.unit"):
        add_compounds(folder)


def test_a_metabolite_cycle_across_files_is_one_error(tmp_path):
    files = {"cyca": _compound("cyca", 179.3, _pk(5.0, 10.0, 10.0), _met("cycb", 0.5)),
             "cycb": _compound("cycb", 179.3, _pk(5.0, 10.0, 10.0), _met("cyca", 0.5))}
    folder = _write(tmp_path / "c", files, files)
    with pytest.raises(CompoundError, match="metabolite cycle: cyc. -> cyc. -> cyc.") as e:
        add_compounds(folder)
    assert ".yaml" in str(e.value)
    assert "cyca" not in COMPOUNDS and "cycb" not in COMPOUNDS


def test_a_user_compound_cannot_shadow_a_builtin_in_a_screen(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "memantine.yaml").write_text(MEMANTINE)
    out = tmp_path / "s"
    res = invoke("screen", folder, "--n", 2, "--out", out)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "memantine.yaml", "shadows a built-in")
    assert not out.exists()
    assert COMPOUNDS["memantine"].source_file != str(folder / "memantine.yaml")


# ------------------------------------------------------------------ a bad file in a screen
def test_a_screen_with_one_bad_file_writes_nothing(tmp_path):
    folder = _write(tmp_path / "c", ["memx"])
    (folder / "chc.yaml").write_text(BASE.replace("nmda:", "nmdx:"))
    out = tmp_path / "out" / "s"
    res = invoke("screen", folder, "--n", 2, "--doses", "10 mg/kg", "--workers", 1,
                 "--out", out)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "chc.yaml", "nmdx")
    assert not (tmp_path / "out").exists()
    assert "memx" not in COMPOUNDS  # the good file was not registered on its own


def test_a_registry_unit_mismatch_stops_the_screen_before_anything_is_written(
        tmp_path, screens):
    """Caught when the arms are checked: one line naming the file and the field; an
    earlier screen in --out is left exactly as it was."""
    bad = BASE.replace("cl: {value: 5.0, unit: L/h/kg, source: test}",
                       "cl: {param: rec.fu_brain}")
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "chc.yaml").write_text(bad)
    out = tmp_path / "s"
    shutil.copytree(screens["out"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = invoke("screen", folder, "--n", 2, "--doses", "10 mg/kg", "--workers", 1,
                 "--stress", "none", "--out", out)
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, "chc.yaml", "pk.mouse.cl", "rec.fu_brain")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "s"]


def test_missing_pk_for_species_or_route_names_the_compound(tmp_path):
    mouse_only = FILES["chc"].replace("  rat: *pk\n", "")
    files = {"chc": mouse_only}
    folder = _write(tmp_path / "c", files, files)
    add_compounds(folder)
    with pytest.raises(ScreenError, match="'chc' has no PK for species 'rat'"):
        plan_screen(species="rat", candidates=["chc"], n=2)
    with pytest.raises(ScreenError, match="'chc' cannot be given by route 'im'"):
        plan_screen(route="im", candidates=["chc"], n=2)


# ------------------------------------------------------------------ defects
# fixed (was BUG): the default candidates for --route oral include ldopa, which gives no
#   oral absorption in rodents, so the default oral screen fails instead of skipping it with
#   a note
def test_default_oral_screen_skips_compounds_without_oral_absorption():
    names, notes = default_candidates("mouse", "oral")
    assert "ldopa" not in names
    assert any("ldopa" in n for n in notes)
    # named explicitly, the screen's own error (ScreenError) names it, as documented
    with pytest.raises(ScreenError, match="ldopa"):
        plan_screen(route="oral", candidates=["ldopa"], n=2)


# fixed (was BUG): screen.exact writes doses under 1e-4 mg/kg (e.g. 0.05 ug/kg) in
#   scientific notation, which the scenario loader refuses, so an accepted --doses value
#   fails
def test_a_small_accepted_dose_is_written_so_the_scenario_loads():
    plan = plan_screen(doses="0.05 ug/kg", candidates=["memantine"], n=2)
    assert plan.doses == (5e-05,)
    sc = load_scenario_text(plan.scenario_text)
    dose = next(ev.dose for ev in sc.arms[-1].protocol if getattr(ev, "dose", None))
    assert dose.value == pytest.approx(5e-05) and dose.unit == "mg/kg"


# fixed (was BUG): `ketasim compounds` lists a mixture's species as the union of its
#   components' PK species; it can only be given to those all components have (the screen's
#   species_with_pk)
def test_listing_gives_a_mixtures_species_that_it_can_be_given_to(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "mixmp.yaml").write_text("name: mixmp\ndescription: test mixture\n"
                                       "routes: [ip]\ncomponents: {memantine: 0.5, "
                                       "psilocin: 0.5}\n")
    res = CliRunner().invoke(app, ["compounds", "--compounds", str(folder)],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    row = [c.strip() for c in next(line for line in res.output.splitlines()
                                   if "│ mixmp " in line).split("│")]
    assert row[3] == "mouse", row  # psilocin has mouse PK only
