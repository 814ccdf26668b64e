"""Review of the signalling model's equations (``ketasim/signaling/spec.py``, the source of
truth that ``codegen.py`` compiles into ``_generated.py``) against

- what ``docs/design.md`` ("Signalling", "The dose axis", "Regions", "The striatal
  branch") and the comments and docstrings of ``spec.py`` and ``protocol.py`` say each
  equation does;
- the descriptions, units, ranges and sources of the parameters in
  ``ketasim/params/parameters.yaml`` that the spec's ``Param``s map to (and the compound
  files' parameters where a spec quantity is set from them);
- biological direction and the monotonicity that must hold.

Checks, on one typical subject without between-subject variability (the registry's
values; ``_course`` mirrors what the runner does per region: the same compiled protocol
with the region's registry) or at the level of the generated right-hand side:

- each spec parameter's unit is its registry entry's, and the drug-free baseline is a
  steady state with every x-baseline output at 1 anywhere in the registry's ranges;
- a larger ketamine dose never lowers any NMDA block (interneuron, pyramidal, rest,
  posteromedial), and interneurons are always blocked more than pyramidal neurons;
- each blocker lowers the nodes downstream of its target, more with a larger dose, and
  leaves every node upstream of it where it was (the cascade is feed-forward):
  rapamycin (mTORC1), ANA-12 (TrkB), NBQX (AMPA), SCH23390 (Drd1);
- a stronger stressor gives a larger stress load, a lower formation drive, BDNF, PSD95,
  GluA1 and plasticity potential and a higher elimination drive; the load recovers with
  the documented time constant (about 10 days);
- removing a drug gives back the saline trajectory (saline is an empty protocol, a
  compound that acts on nothing moves only its own PK, ANA-12 and rapamycin alone leave
  nothing behind once their windows end);
- every registry parameter the spec reads moves some output of a protocol that uses its
  path when moved within its range (5-HT2A tone at the right-hand side: no built-in
  compound blocks 5-HT2A);
- the SSRI path: one escitalopram dose does nothing within a day, daily dosing lowers a
  depressed patient's stress load week by week, adaptation two-thirds of the block after
  a week;
- the documented forms of the PKA -> ERK sensitisation, of the reward circuits' PKA, of
  the mPFC-only interventions in the striatal region, of the PKA threshold of dyskinesia
  priming, and of norketamine formation from S-ketamine.

Defects are ``xfail(strict=True, reason="BUG: ...")`` tests that assert the correct
behaviour.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ketasim.experiment.cohort import sample_cohort
from ketasim.params import load_registry
from ketasim.params.regions import region_registry
from ketasim.scenario import load_scenario_text
from ketasim.signaling import _generated as g
from ketasim.signaling import spec
from ketasim.signaling.protocol import arm_in_region, compile_arm
from ketasim.signaling.simulate import initial_state, parameter_vector, simulate_signaling
from ketasim.signaling.solver import full_parameter_vector

REG = load_registry()
_OUT = {n: i for i, n in enumerate(spec.OUTPUT_NAMES)}
_ST = {n: i for i, n in enumerate(spec.STATE_NAMES)}
_PV = {n: i for i, n in enumerate(spec.PVEC_NAMES)}
KET10 = "{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}"
# the signalling outputs that are 1 at the drug-free, unstressed baseline (x baseline)
X_BASELINE = (
    "glutamate_surge", "ampa_drive", "da_rel", "pka_rel", "peef2_rel", "bdnf_rel",
    "ptrkb_rel", "perk_rel", "pmtor_rel", "synthesis_rel", "psd95_rel", "glua1_rel",
    "formation_drive", "elimination_drive", "activity_drive", "da_terminals",
    "d1_sensitivity", "d1_drive", "spine_size_drive", "synaptic_protein", "da_intact",
)


def _course(protocol: str, times, species: str = "mouse", region: str = "mpfc",
            reg=REG, outputs=None) -> dict[str, np.ndarray]:
    """One typical subject (no variability): ``{output: values at times}``. The arm's
    protocol is compiled once and run with the region's registry, as the runner does."""
    sc = load_scenario_text(f"name: review_spec\nspecies: {species}\nseed: 1\narms:\n"
                            f"  - name: a\n    n: 1\n    protocol: [{protocol}]\n")
    r = region_registry(reg, region)
    c = sample_cohort(r, species, "a", 1, 1, variability=False)
    arm = arm_in_region(sc.arms[0], region)  # the region's interventions only
    sim = simulate_signaling(c, compile_arm(arm, species, c, r),
                             np.asarray(times, float), outputs, rtol=1e-8, atol=1e-11)
    return {o: sim.output(o)[0] for o in sim.outputs}


def _baseline_p(species: str = "mouse", row=None) -> np.ndarray:
    """The full parameter vector of a drug-free typical subject (controls 0)."""
    if row is None:
        c = sample_cohort(REG, species, "a", 1, 1, variability=False)
        row = parameter_vector(c)[0]
    return full_parameter_vector(np.asarray(row, float))


def _rhs_outputs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dy = np.zeros(spec.N_STATES)
    g.rhs(0.0, y, p, dy)
    out = np.zeros(g.N_OUTPUTS)
    g.outputs(y, p, out)
    return dy, out


# ------------------------------------------------------------------ parameters, baseline
_DIMENSIONLESS = {"1", "probability"}


def test_spec_parameter_units_are_their_registry_entries_units():
    """A parameter described in one unit and read in another is a unit mismatch (a
    per-minute rate read per hour, a time constant read as a rate): every spec
    parameter's unit is its registry entry's (the registry's 'probability' is
    dimensionless), and the registry's value lies in its range."""
    for p in spec.PARAMS:
        if not p.registry:
            continue
        for species in ("mouse", "rat", "human"):
            e = REG[p.registry.format(species=species)]
            same = e.unit == p.unit or {e.unit, p.unit} <= _DIMENSIONLESS
            assert same, f"{p.name}: spec {p.unit!r}, registry {e.name} {e.unit!r}"
            assert e.low <= e.value <= e.high, e.name


def test_baseline_is_a_steady_state_anywhere_in_the_parameter_ranges():
    """The module docstring: signalling states are 1 (stress load, potentiation and the
    other 0-1 states 0) at an unstressed, drug-free baseline, the initial state, so every
    subject starts at steady state whatever its parameters. Drawn uniformly over every
    registry range (and the striatal region's), the right-hand side is exactly 0 there,
    the x-baseline outputs are 1 and the plasticity potential is sig.pp_control."""
    rng = np.random.default_rng(20261207)
    c = sample_cohort(REG, "mouse", "a", 1, 1, variability=False)
    base = parameter_vector(c)[0]
    y = initial_state(1)[0]
    for _ in range(60):
        row = base.copy()
        for j, p in enumerate(spec.PARAMS):
            if p.registry:
                e = REG[p.registry.format(species="mouse")]
                row[j] = rng.uniform(e.low, e.high)
        dy, out = _rhs_outputs(y, _baseline_p(row=row))
        assert np.abs(dy).max() == 0.0, [spec.STATE_NAMES[i] for i in np.flatnonzero(dy)]
        for o in X_BASELINE:
            assert out[_OUT[o]] == pytest.approx(1.0, abs=1e-12), o
        pp = row[spec.PARAM_NAMES.index("pp_control")]
        assert out[_OUT["plasticity_potential"]] == pytest.approx(pp, rel=1e-12)
        for o in ("stress_load", "synaptic_potentiation", "reward_potentiation",
                  "lid_priming", "lid_resistance", "spine_loss_d1", "spine_loss_d2",
                  "occupancy_interneuron", "occupancy_pyramidal", "pyramidal_shutdown"):
            assert out[_OUT[o]] == 0.0, o


# ------------------------------------------------------------------ NMDA block and dose
_OCC = ("occupancy_interneuron", "occupancy_pyramidal", "occupancy_posteromedial",
        "rest_block_pyramidal")


@pytest.mark.parametrize("species,route,doses,times", [
    ("mouse", "route: ip", (1, 3, 10, 30, 100),
     [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 24]),
    ("human", "route: iv, over: 40min", (0.1, 0.2, 0.5, 1.0),
     [0.1, 0.33, 0.67, 1, 2, 4, 8, 24]),
])
def test_a_larger_ketamine_dose_never_lowers_nmda_block(species, route, doses, times):
    """Unbound brain concentrations block NMDA receptors at one site; the PK is linear,
    so a larger dose never lowers any block at any time. Interneuron receptors are
    blocked at lower concentration than pyramidal ones (pot_int 2.5 < pot_pyr 20, x Ki),
    so their block is always the larger."""
    runs = [_course(f"{{at: 0h, drug: ketamine, dose: {d} mg/kg, {route}}}", times,
                    species=species, outputs=_OCC) for d in doses]
    for o in _OCC:
        stack = np.array([r[o] for r in runs])
        assert (np.diff(stack, axis=0) >= -1e-12).all(), o
        assert stack[-1].max() > stack[0].max(), o
    for r in runs:
        assert (r["occupancy_interneuron"] >= r["occupancy_pyramidal"]).all()


# ------------------------------------------------------------------ blockers: down, not up
_TIMES = [0.5, 1, 2, 3, 4, 6]
_BLOCKERS = {
    # blocker: (entry with {dose}, doses, outputs lowered, outputs upstream of the target)
    "rapamycin": ("{{at: -1h, drug: rapamycin, dose: {dose} mg/kg, route: ip}}", (2, 6, 20),
                  ("pmtor_rel", "synthesis_rel"),
                  ("bdnf_rel", "ptrkb_rel", "perk_rel", "pka_rel", "da_rel",
                   "glutamate_surge", "peef2_rel")),
    "ana12": ("{{at: -30min, drug: ana12, dose: {dose} mg/kg, route: ip}}", (0.2, 0.5, 2),
              ("ptrkb_rel", "perk_rel", "pmtor_rel", "synthesis_rel"),
              ("bdnf_rel", "pka_rel", "da_rel", "glutamate_surge", "ampa_drive",
               "peef2_rel")),
    "nbqx": ("{{at: -10min, drug: nbqx, dose: {dose} mg/kg, route: ip}}", (1, 3, 10),
             ("ampa_drive", "da_rel", "pka_rel", "ptrkb_rel", "perk_rel", "pmtor_rel"),
             ("glutamate_surge", "occupancy_interneuron", "peef2_rel", "bdnf_rel")),
    "sch23390": ("{{at: -30min, drug: sch23390, dose: {dose} mg/kg, route: ip}}",
                 (0.01, 0.03, 0.1),
                 ("pka_rel", "plasticity_potential", "perk_rel"),
                 ("da_rel", "glutamate_surge", "ampa_drive", "bdnf_rel", "ptrkb_rel")),
}


@pytest.mark.parametrize("blocker", list(_BLOCKERS))
def test_a_blocker_lowers_its_downstream_path_dose_dependently_and_nothing_upstream(
        blocker):
    """Rapamycin lowers mTORC1 activity and protein synthesis, ANA-12 the BDNF -> TrkB ->
    ERK -> mTORC1 path (not BDNF protein itself: it blocks the receptor), NBQX the
    AMPA-driven dopamine, PKA and TrkB, SCH23390 the Drd1 -> PKA rise (not dopamine).
    After ketamine 10 mg/kg, each lowers its downstream nodes (never raises them), more
    with a larger dose; the nodes upstream of its target do not move (the cascade is
    feed-forward: nothing feeds back)."""
    entry, doses, down, upstream = _BLOCKERS[blocker]
    outs = tuple(dict.fromkeys(down + upstream))
    alone = _course(KET10, _TIMES, outputs=outs)
    runs = [_course(entry.format(dose=d) + ", " + KET10, _TIMES, outputs=outs)
            for d in doses]
    for o in down:
        prev = alone[o]
        for r in runs:
            assert (r[o] <= prev + 1e-9).all(), (o, r[o], prev)
            prev = r[o]
        assert (alone[o] - runs[-1][o]).max() > 0.01, o  # the largest dose acts
    for o in upstream:
        for r in runs:
            np.testing.assert_allclose(r[o], alone[o], rtol=1e-6, atol=1e-9, err_msg=o)


# ------------------------------------------------------------------ stress
def test_a_stronger_stressor_lowers_formation_and_raises_elimination():
    """The stress load (0-1) builds with stressor intensity and lowers BDNF, PSD95, GluA1,
    the plasticity potential and the formation drive and raises elimination
    (design.md, Signalling): monotone in intensity (CORT at 0.5, 1 and 2 x its
    reference intensity for 10 days)."""
    t = [-1.0, 0.0]
    outs = ("stress_load", "formation_drive", "elimination_drive", "bdnf_rel",
            "psd95_rel", "glua1_rel", "plasticity_potential")
    runs = [_course(f"{{at: -10d, stress: cort, duration: 10d, intensity: {k}}}", t,
                    outputs=outs) for k in (0.5, 1.0, 2.0)]
    up, down = ("stress_load", "elimination_drive"), outs[1:2] + outs[3:]
    for o in up:
        v = [r[o][-1] for r in runs]
        assert v[0] < v[1] < v[2], (o, v)
    for o in down:
        v = [r[o][-1] for r in runs]
        assert 1.0 > v[0] > v[1] > v[2], (o, v)
    assert 0.0 < runs[0]["stress_load"][-1] < runs[-1]["stress_load"][-1] <= 1.0


def test_the_stress_load_recovers_over_about_ten_days():
    """design.md: the stress load recovers over about 10 days (stress.k_off 0.004/h is a
    rate, 1/k = 10.4 days): e^-1 of the load at the end of 10 days of CORT is left
    10.4 days later, within 10%."""
    tau_h = 1.0 / REG.value("stress.k_off")
    assert 8 * 24 <= tau_h <= 12 * 24
    s = _course("{at: -10d, stress: cort, duration: 10d}", [0.0, tau_h],
                outputs=("stress_load",))["stress_load"]
    assert s[1] / s[0] == pytest.approx(math.exp(-1.0), rel=0.1)


# ------------------------------------------------------------------ removing a drug
def test_removing_a_drug_gives_back_the_saline_trajectory():
    """Saline is an empty protocol; a compound that acts on nothing (midazolam) moves only
    its own PK outputs; ANA-12 and rapamycin given alone leave nothing behind: a few
    days after their windows end every signalling state is back at baseline."""
    t = [-1.0, 0.25, 0.5, 1, 2, 4, 8, 24, 72]
    sal, empty = _course("{at: 0h, drug: saline, route: ip}", t), _course("", t)
    for o in sal:
        np.testing.assert_array_equal(sal[o], empty[o], err_msg=o)
    th = [-1.0, 0.5, 1, 2, 24]
    mdz = _course("{at: 0h, drug: midazolam, dose: 0.045 mg/kg, route: iv, over: 40min}",
                  th, species="human")
    hsal = _course("{at: 0h, drug: saline, route: iv}", th, species="human")
    moved = [o for o in mdz if not np.array_equal(mdz[o], hsal[o])]
    assert sorted(moved) == ["midazolam_brain", "midazolam_plasma"]
    for drug, dose, back_h in (("ana12", 0.5, 5 * 24), ("rapamycin", 6, 7 * 24)):
        r = _course(f"{{at: 0h, drug: {drug}, dose: {dose} mg/kg, route: ip}}",
                    [2.0, 6.0, back_h])
        assert r["synthesis_rel"][:2].min() < 0.95, drug  # it acted
        for o in X_BASELINE:
            assert r[o][-1] == pytest.approx(1.0, abs=0.01), (drug, o)
        assert r["synaptic_potentiation"].max() == 0.0
        assert r["structural_formation"].max() == 0.0


# ------------------------------------------------------------------ every parameter acts
_SWEEP_ARMS = (
    # (species, region, protocol, times): together they use every path of the spec
    ("mouse", "mpfc", "{at: -10d, stress: cort, duration: 10d}, " + KET10
     + ", {at: 24h, intervention: as_parac1_photoactivation}",
     [-120, -1, 0.25, 0.5, 1, 2, 3, 4, 6, 12, 24, 25, 48, 72, 168]),
    ("mouse", "mpfc", "{at: -30min, drug: ana12, dose: 0.5 mg/kg, route: ip}, " + KET10,
     [0.5, 1, 2, 3, 6, 24]),
    ("mouse", "mpfc", "{at: 0h, drug: psilocybin, dose: 1 mg/kg, route: ip}",
     [0.25, 0.5, 1, 2, 24]),
    ("mouse", "mpfc", "{at: 0h, drug: scopolamine, dose: 0.025 mg/kg, route: ip}",
     [0.25, 0.5, 1, 2, 24]),
    ("mouse", "mpfc", "{at: 0h, drug: mrk016, dose: 3 mg/kg, route: ip}",
     [0.25, 0.5, 1, 2, 24]),
    ("mouse", "mpfc", "{at: 0h, drug: ly341495, dose: 1 mg/kg, route: ip}",
     [0.25, 0.5, 1, 2, 24]),
    ("rat", "mpfc", "{at: 0h, drug: ro25_6981, dose: 10 mg/kg, route: ip}",
     [0.25, 0.5, 1, 2, 24]),
    ("mouse", "mpfc", ("{at: 0h, intervention: mpfc_drd1_neuron_stimulation, duration: 1h}, "
     "{at: 6h, intervention: mpfc_da_terminal_activation, duration: 1h}"),
     [0.5, 1, 2, 6.5, 7, 24]),
    ("rat", "striatum", ("{at: -60d, intervention: lesion_6ohda_mfb}, {at: 0h, drug: ldopa, "
     "dose: 6 mg/kg, route: sc, every: 1d, doses: 7}, "
     "{at: 2h, drug: ketamine, dose: 20 mg/kg, route: ip}"),
     [-960, -480, -1, 0.5, 1, 2, 3, 4, 8, 24, 25, 145, 200]),
    ("rat", "mpfc", ("{at: -60d, intervention: lesion_6ohda_mfb}, {at: 0h, drug: ldopa, "
     "dose: 6 mg/kg, route: sc, every: 1d, doses: 7}, "
     "{at: 2h, drug: ketamine, dose: 20 mg/kg, route: ip}"),
     [-960, -1, 1, 3, 145, 200]),
    ("human", "mpfc", ("{at: -60d, stress: major_depression, duration: 120d}, "
     "{at: 0h, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 28}, "
     "{at: 10d, drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min}"),
     [-1, 168, 241, 264, 336, 672, 960]),
)
# read only when a compound blocks 5-HT2A, which no built-in one does: checked at the
# right-hand side below; the mPFC's dyskinesia priming rate only where a lesion reaches
# the region (sig.lesion_reach, 0 in mPFC): checked by
# test_the_priming_rate_acts_where_a_lesion_reaches
_NOT_SWEPT = {"sig.ht2a_tone", "sig.k_lid_priming_on"}
_SPEC_REGISTRY = sorted({p.registry for p in spec.PARAMS if p.registry} - _NOT_SWEPT)


def _sweep(reg):
    for species, region, protocol, times in _SWEEP_ARMS:
        yield _course(protocol, times, species=species, region=region, reg=reg)


@pytest.fixture(scope="module")
def sweep_base():
    return list(_sweep(REG))


def test_the_priming_rate_acts_where_a_lesion_reaches():
    """sig.k_lid_priming_on (0 in mPFC) primes dyskinesia in a region the lesion
    reaches: with the MFB lesion reaching mPFC and the striatum's rate, daily L-DOPA
    primes it, and more at a larger rate; without the lesion's reach it primes nothing."""
    protocol = ("{at: -30d, intervention: lesion_6ohda_mfb}, {at: 0h, drug: ldopa, "
                "dose: 6 mg/kg, route: sc, every: 1d, doses: 7}")
    rate = REG.value("region.striatum.sig.k_lid_priming_on")
    prim = [_course(protocol, [24 * 7.0], species="rat", outputs=("lid_priming",),
                    reg=REG.with_values({"sig.lesion_reach": reach,
                                         "sig.k_lid_priming_on": k}))["lid_priming"][0]
            for reach, k in ((1.0, rate), (1.0, 2 * rate), (0.0, 2 * rate))]
    assert 0.05 < prim[0] < prim[1]
    assert prim[2] == 0.0


@pytest.mark.parametrize("name", _SPEC_REGISTRY)
def test_every_spec_parameter_moves_an_output_within_its_range(sweep_base, name):
    """Every registry parameter the spec reads changes some output of a protocol that
    uses its path when moved to the far end of its range (a parameter that changes
    nothing is unused or documented wrongly)."""
    e = REG[name]
    far = e.high if abs(e.high - e.value) >= abs(e.low - e.value) else e.low
    assert far != e.value
    for base, moved in zip(sweep_base, _sweep(REG.with_values({name: far})), strict=True):
        for o in base:
            if not np.allclose(base[o], moved[o], rtol=1e-5, atol=1e-8):
                return
    pytest.fail(f"{name} ({e.value} -> {far}) changes no output")


def test_a_5ht2a_antagonist_removes_the_serotonin_tones_share_of_release():
    """sig.ht2a_tone (endogenous 5-HT2A activation, fraction of full agonism) is read only
    through a 5-HT2A block: 'removing the serotonin tone takes from' release
    (spec.py). At the right-hand side, with an antagonist window of dose/ED50 = 1 and
    efficacy 1 (block 0.5), release falls by ht2a_gain x tone x 0.5 from baseline and
    grows with neither; without a block the tone does nothing."""
    y = initial_state(1)[0]
    c = sample_cohort(REG, "mouse", "a", 1, 1, variability=False)
    gain = REG.value("sig.ht2a_glutamate_gain")
    for tone in (0.0, 0.2, 0.5):
        row = parameter_vector(c)[0].copy()
        row[_PV["ht2a_tone"]] = tone
        _, out = _rhs_outputs(y, _baseline_p(row=row))
        assert out[_OUT["glutamate_surge"]] == pytest.approx(1.0, abs=1e-12)
        row[_PV["ht2a_wa"]] = 1.0
        row[_PV["ht2a_wb"]] = 1.0
        _, out = _rhs_outputs(y, _baseline_p(row=row))
        assert out[_OUT["glutamate_surge"]] == pytest.approx(1.0 - gain * tone * 0.5,
                                                             rel=1e-12)


# ------------------------------------------------------------------ SSRI adaptation
def test_escitalopram_relieves_a_depressed_patients_stress_load_over_weeks():
    """design.md (oral antidepressants): SERT inhibition is adapted to with a 7-day time
    constant (about two-thirds of the block after a week), the adaptation lowers the
    effective drive of the stressors, so the stress load falls week by week; one dose
    does nothing within a day."""
    t = [-1.0, 24, 168, 336, 672, 1344]
    mdd = "{at: -120d, stress: major_depression, duration: 200d}"
    ctrl = _course(mdd, t, species="human")
    daily = _course(mdd + ", {at: 0h, drug: escitalopram, dose: 10 mg, route: oral, "
                    "every: 1d, doses: 56}", t, species="human")
    once = _course(mdd + ", {at: 0h, drug: escitalopram, dose: 10 mg, route: oral}", t,
                   species="human")
    assert once["stress_load"][1] == pytest.approx(ctrl["stress_load"][1], rel=0.01)
    s = daily["stress_load"]
    assert (np.diff(s) < 0).all() and s[-1] < 0.9 * ctrl["stress_load"][-1]
    np.testing.assert_allclose(ctrl["stress_load"], ctrl["stress_load"][0], rtol=1e-6)
    # after a week of near-constant block, two-thirds of it adapted (1 - e^-1 over 7 d,
    # less the days the block took to rise)
    week = daily["serotonergic_adaptation"][2] / daily["occupancy_sert"][2]
    assert 0.55 <= week <= 0.7


# ------------------------------------------------------------------ defects
def _perk_target(pka: float, sensitisation: float) -> float:
    """The level p-ERK relaxes to at p-TrkB 1 and the given PKA and ERK sensitisation
    (rhs: k_erk x (target - perk), read at perk 1)."""
    p = _baseline_p("rat")
    y = initial_state(1)[0]
    y[_ST["pka"]] = pka
    y[_ST["erk_sensitization"]] = sensitisation
    dy, _ = _rhs_outputs(y, p)
    k_erk = p[_PV["k_erk"]]
    return dy[_ST["perk"]] / k_erk + y[_ST["perk"]]


# fixed (was BUG): the registry and design.md said the PKA -> ERK exponent rises by
#   sig.lid_erk_priming_gain per unit sensitisation; the model multiplies it by 1 + gain x
#   sensitisation (the form T-LID-26 was fitted with): the words now say so
def test_erk_sensitisation_raises_the_pka_erk_exponent_by_its_gain():
    """sig.lid_erk_priming_gain: the relative rise of the PKA -> ERK exponent per unit
    sensitisation (registry and design.md). At p-TrkB 1 and PKA 4, p-ERK relaxes to
    4^erk_pka_exponent without sensitisation and to 4^(erk_pka_exponent (1 + gain)) at
    full sensitisation."""
    a = REG.value("sig.erk_pka_exponent")
    gain = REG.value("sig.lid_erk_priming_gain")
    assert "1 + gain x sensitisation" in REG["sig.lid_erk_priming_gain"].description
    assert _perk_target(4.0, 0.0) == pytest.approx(4.0 ** a, rel=1e-12)
    assert _perk_target(4.0, 1.0) == pytest.approx(4.0 ** (a * (1 + gain)), rel=1e-9)


@pytest.mark.parametrize("intervention", [
    "{at: -21d, intervention: drd1_cko}",
    "{at: -30min, intervention: mpfc_da_terminal_inhibition, duration: 4h}",
])
# fixed (was BUG): pka_target_reward reads the mPFC dopamine and D1 signal, so an mPFC-only
#   Drd1 knock-out or dopamine-terminal inhibition removes the reward circuits' potentiation
#   too
def test_mpfc_only_manipulations_leave_the_reward_circuits_potentiation(intervention):
    """The reward circuits lie outside the imaged prefrontal field (design.md: they keep
    their potentiation under AS-PaRAC1 light and under the mPFC-only silencing of the
    Drd1 neurons, F-M-13). A conditional Drd1 knock-out in mPFC (the control's own
    words) or inhibition of the dopamine terminals in mPFC does not reach them either:
    their potentiation after ketamine stays that of intact mice (within 10%)."""
    t = [1.0, 3.0, 24.0]
    alone = _course(KET10, t, outputs=("reward_potentiation",))["reward_potentiation"]
    manip = _course(intervention + ", " + KET10, t,
                    outputs=("reward_potentiation",))["reward_potentiation"]
    assert alone.min() > 0.1
    np.testing.assert_allclose(manip, alone, rtol=0.1)


@pytest.mark.parametrize("intervention", [
    "{at: -21d, intervention: drd1_cko}",
    "{at: -30min, intervention: mpfc_da_terminal_inhibition, duration: 4h}",
    "{at: -30min, intervention: mpfc_drd1_neuron_silencing, duration: 4h}",
])
# fixed (was BUG): an arm's controls act in every region, so an mPFC-only intervention (Drd1
#   cKO, terminal inhibition, Drd1-neuron silencing) also silences the striatum's
#   dopamine/D1/PKA
def test_mpfc_only_interventions_do_not_act_in_the_striatum(intervention):
    """The interventions are declared for mPFC ('conditional Drd1 knock-out in mPFC',
    'inhibition of VTA dopamine terminals in mPFC', 'silencing of mPFC
    Drd1-expressing neurons'); the runner runs an arm's one compiled protocol in every
    region an assay measures (``_run_regions``). The striatum's D1 drive and PKA after
    ketamine are those of an arm without the intervention (within 5%)."""
    t = [0.5, 1.0, 3.0]
    outs = ("d1_drive", "pka_rel", "da_rel")
    alone = _course(KET10, t, region="striatum", outputs=outs)
    manip = _course(intervention + ", " + KET10, t, region="striatum", outputs=outs)
    assert alone["pka_rel"].max() > 2.0
    for o in outs:
        np.testing.assert_allclose(manip[o], alone[o], rtol=0.05, err_msg=o)


_KET5 = ", ".join(f"{{at: {2 * i}h, drug: ketamine, dose: 20 mg/kg, route: ip}}"
                  for i in range(5))


@pytest.mark.parametrize("protocol", [
    "{at: 0h, drug: ketamine, dose: 20 mg/kg, route: ip}",
    _KET5,
    "{at: -21d, intervention: lesion_6ohda_mfb}, " + _KET5,
])
# fixed (was BUG): ketamine's own striatal PKA peak (3.4x intact, 3.9x intact after 5 x 20
#   mg/kg, 3.45x lesioned) passed sig.lid_pka_threshold (3), so ketamine alone primed
#   dyskinesia; the striatal dopamine rise is now 0.7 of the mPFC's and the priming drive
#   needs D1 supersensitivity (denervation)
def test_ketamine_alone_primes_no_dyskinesia(protocol):
    """sig.lid_pka_threshold: 'only the large, pulsatile D1 -> PKA rises of L-DOPA in a
    denervated striatum prime dyskinesia ... an intact striatum given the same L-DOPA
    does not develop it, nor does ketamine's own dopamine rise in a lesioned striatum';
    design.md: ketamine is the anti-dyskinetic (resistance). Without L-DOPA, ketamine
    (20 mg/kg, and the 5 x 20 mg/kg exposure of lid_ketamine_rat) leaves the striatal
    dyskinesia priming of intact and lesioned rats at 0."""
    r = _course(protocol, [0.5, 1, 2, 4, 8, 10, 12, 24, 48], species="rat",
                region="striatum", outputs=("lid_priming", "pka_rel"))
    assert r["pka_rel"].max() > 2.0  # ketamine acted
    assert r["lid_priming"].max() < 1e-6


# fixed (was BUG): esketamine forms norketamine with pk.human.ketamine.f_nk = 0.9 (1 -
#   R-ketamine's HNK share), so 10% of S-ketamine's clearance forms nothing; the cited
#   Fanta/Otto model forms S-norketamine from all of it
def test_s_ketamine_clearance_forms_norketamine_entirely_in_humans():
    """pk.human.ketamine.f_nk's source: 'Fanta et al. 2015 via Otto et al. 2021 (all
    S-ketamine clearance forms S-norketamine), less the R-ketamine share to HNK'. The
    HNK share is R-ketamine's ((2R,6R)-HNK, arketamine's file), yet the same fraction
    is esketamine's: the norketamine formed from an esketamine slot (kf = fm x MW_nk /
    MW_k x k10) must be all of its clearance, and R-ketamine's two fractions sum to 1."""
    sc = load_scenario_text("name: fnk\nspecies: human\nseed: 1\narms:\n  - name: a\n"
                            "    n: 1\n    protocol: [{at: 0h, drug: ketamine, "
                            "dose: 0.5 mg/kg, route: iv}]\n")
    c = sample_cohort(REG, "human", "a", 1, 1, variability=False)
    ev = compile_arm(sc.arms[0], "human", c, REG)
    slot = {n: k for k, n in enumerate(ev.slots)}
    params = {spec.PVEC_NAMES[j]: float(v[0]) for j, v in ev.params}
    r_nk = params[f"fm{slot['arketamine']}_{slot['norketamine']}"]
    r_hnk = params[f"fm{slot['arketamine']}_{slot['hnk']}"]
    assert r_nk + r_hnk == pytest.approx(1.0)
    assert params[f"fm{slot['esketamine']}_{slot['norketamine']}"] == pytest.approx(1.0)


def test_the_runner_leaves_mpfc_only_interventions_out_of_the_striatum():
    """The same through ``simulate``: an arm measured in both regions, with and without
    the mPFC Drd1 knock-out; the striatum's D1 drive is the intervention-free arm's, the
    mPFC's is gone (the runner compiles each region's protocol with
    :func:`ketasim.signaling.protocol.arm_in_region`)."""
    from ketasim import simulate

    text = ("name: reach\nspecies: mouse\nseed: 2\narms:\n  - name: a\n    n: 2\n"
            "    protocol: [{iv}{{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}]\n"
            "    assays: [{{assay: signaling_state, at: [1h]}},"
            " {{assay: signaling_state, at: [1h], region: striatum}}]\n")

    def d1(iv: str):
        r = simulate(load_scenario_text(text.format(iv=iv)), registry=REG).readouts
        r = r[r["readout"] == "d1_drive"]
        return {g: v["value"].to_numpy() for g, v in r.groupby("region")}

    ket, cko = d1(""), d1("{at: -21d, intervention: drd1_cko}, ")
    np.testing.assert_array_equal(cko["striatum"], ket["striatum"])
    assert (ket["mpfc"] > 1.0).all() and (cko["mpfc"] == 0.0).all()
