"""Typical-patient screen of a bounded, consolidating structural gain for the human
synaptic state (research script, not part of ketasim; 2026-12-07).

The question (targets.yaml, T-CLIN-11 and T-CLIN-15 under ``tried``): which human
synaptic-state dynamics give the clinical time course and dose-response together? This
script simulates one noise-free typical patient (every between-subject CV set to 0) under
the regimens the human targets read, takes the signalling layer's drives on a 1-h grid,
and runs the clinical layer's own synaptic state on them
(:func:`ketasim.clinical.model.symptom_course`, whose docstring gives the equations: D,
the pool M of recently lost synapses, restored L and stable Q; Z = (D + L + Q)(1 + w P);
the rated load follows max(0, 1 - Z) with lag tau) with each candidate's values of the
``clinical.*`` restoration parameters. Until the pool was merged into the model
(2026-12-07) this script integrated the same equations itself, with the drug's
structural part taken as the formation drive's excess over the untreated course instead
of the signalling output ``structural_formation``; the pool figures recorded before the
merge came from that version. They agree with this one except T2: the old excess also
counted the oral antidepressant's rise of the formation drive as the drug's, so the
candidate recorded in T-CLIN-15's ``tried`` (pool share 0.15, direct share 0.1,
stabilisation 0.2, stable turnover 0.01, lag 4 h) reads T2 -0.55 here, not -0.19 (R1
1.14, R02 0.26, 4h 0.33, 72h 0.55, 14d 0.28, x6 1.35 and m180 0.27 as recorded).

``w`` is refitted in each case so that the 24-h benefit of 0.5 mg/kg stays at 0.35 of the
baseline load (the pre-pool model's). Printed per case: R1 (1.0 / 0.5 mg/kg at 24 h;
T-CLIN-11 wants <= 1.2), R02 (0.2 / 0.5; T-CLIN-10 <= 0.4), 4h, 72h and 14d (as
fractions of the 24-h benefit; T-CLIN-03, -15 >= 0.5, -05 within 0.3), x6 (24 h after
the sixth of six infusions over 12 days, / one dose; T-CLIN-16, -17 want a little more
than 1), T2 (TRANSFORM-2's esketamine-minus-placebo load at day 27 / baseline; about
-0.35 is -8 MADRS points, so the band's edge -7.3 is about -0.31) and m180 (monthly
maintenance at day 180 / baseline; T-CLIN-26's reading before the needs-based taper
of 2026-12-07 needed a clear benefit).

Run: ``.venv/bin/python docs/research/human_pool_screen.py --kp 6`` (about 20 s);
``--present`` runs the model as it was before the pool (no pool, all structural
formation direct, a 12-h symptom lag), as in T-CLIN-11's exposure screen; ``--current``
prints the metrics at the registry's own clinical values; ``--population N`` samples N
patients with the registry's between-subject variability (the same patients under each
single-dose regimen) and prints the ratios of their mean latent benefits, without the
rating layer (placebo response, mood, items and raters).

Why the population check (2026-12-07, session 37): the typical patient, the sampled
population and the rated replicas disagree on the dose ratios. At the registry's values
of that day the typical patient reads 0.2 / 0.5 mg/kg 0.27, 1.0 / 0.5 1.06 and 72 h /
24 h 0.68; 1,000 sampled patients 0.36, 1.09 and 0.69; the rated replicas with 128 x
their patients 0.43, 1.11 and 0.61 (T-CLIN-10, -11, -15). A screen on the typical
patient alone therefore overstates the margin of T-CLIN-10.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np
from scipy.optimize import brentq

from ketasim import simulate
from ketasim.clinical.assays import MADRS_ASSAY
from ketasim.clinical.model import ClinicalParams, symptom_course
from ketasim.params import load_registry
from ketasim.params.registry import Registry
from ketasim.scenario import load_scenario_text

DEP = "{at: -60d, stress: major_depression, duration: 300d}"
AD = ("{at: 0d, drug: escitalopram, dose: 10 mg, route: oral, every: 1d, doses: 7}, "
      "{at: 7d, drug: escitalopram, dose: 20 mg, route: oral, every: 1d, doses: 21}")
MAINT_DAYS = (0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56, 70, 105, 135, 165)


def _inf(day: float, dose: float = 0.5) -> str:
    return f"{{at: {day}d, drug: ketamine, dose: {dose} mg/kg, route: iv, over: 40min}}"


def _esk(day: float, mg: float) -> str:
    return f"{{at: {day}d, drug: esketamine, dose: {mg} mg, route: intranasal}}"


REGIMENS = {
    "none": "{at: 0d, drug: saline, route: iv}",
    "k02": _inf(0, 0.2), "k05": _inf(0, 0.5), "k10": _inf(0, 1.0),
    "x6": ", ".join(_inf(d) for d in (0, 2, 4, 7, 9, 11)),
    "pla": "{at: 0d, drug: saline, route: intranasal}, " + AD,
    "esk": ", ".join([_esk(0, 56)] + [_esk(d, 84) for d in (3, 7, 10, 14, 17, 21, 24)])
    + ", " + AD,
    "maint": ", ".join(_inf(d) for d in MAINT_DAYS),
}


def trajectories(kp: float) -> dict[str, dict[str, np.ndarray]]:
    """The drives the synaptic state reads, of the typical patient on a 1-h grid, per
    regimen."""
    reg = load_registry().with_values({"pk.human.ketamine.kp_brain": kp})
    reg = Registry({n: dataclasses.replace(p, bsv_cv=0.0, bsv_corr=(), bsv_logit_sd=0.0)
                    for n, p in reg.parameters.items()})
    out = {}
    for name, proto in REGIMENS.items():
        end_d = 181 if name == "maint" else 30
        times = np.arange(-21 * 24, end_d * 24 + 1, 1.0)
        at = "[" + ", ".join(f"{t:g}h" for t in times) + "]"
        text = (f"name: screen\nspecies: human\nseed: 1\narms:\n  - name: {name}\n"
                f"    n: 1\n    protocol: [{DEP}, {proto}]\n"
                f"    assays: [{{assay: signaling_state, at: {at}}}]\n")
        r = simulate(load_scenario_text(text), registry=reg).readouts
        d = {}
        for o in MADRS_ASSAY.outputs:
            x = r[r.readout == o].sort_values("time_h")
            d[o], d["t"] = x.value.to_numpy(), x.time_h.to_numpy()
        out[name] = d
    return out


def course(d, *, w, k_turnover, phi, H, kr, s, sigma, ks, tau):
    """(times, rated load) of one regimen: the clinical layer's synaptic state with these
    values of its parameters."""
    v = dict(ClinicalParams.from_registry(load_registry()).values)
    v.update({"potentiation_weight": w, "k_turnover": k_turnover,
              "restore_pool_share": phi, "restore_pool_memory_d": H, "k_restore": kr,
              "restore_direct_share": s, "k_stabilise": sigma, "k_turnover_stable": ks,
              "tau_symptom_h": tau})
    t = d["t"]
    drives = {o: d[o][None, :] for o in MADRS_ASSAY.outputs}
    _, load = symptom_course(t, drives, t, drives, ClinicalParams(v))
    return t, load[0]


def metrics(tr, **kw) -> dict[str, float]:
    c = {a: course(tr[a], **kw) for a in tr}

    def at(a, h):
        return float(np.interp(h, *c[a]))

    base = at("none", -24.0)

    def benefit(a, h):
        return at("none", h) - at(a, h)

    b24 = benefit("k05", 24.0)
    return {"B24": b24 / base, "R1": benefit("k10", 24.0) / b24,
            "R02": benefit("k02", 24.0) / b24, "4h": benefit("k05", 4.0) / b24,
            "72h": benefit("k05", 72.0) / b24, "14d": benefit("k05", 336.0) / b24,
            "x6": benefit("x6", 12 * 24.0) / b24,
            "T2": (at("esk", 27 * 24.0) - at("pla", 27 * 24.0)) / base,
            "m180": benefit("maint", 180 * 24.0) / base}


def population(n: int, reg: Registry, seed: int = 7) -> dict[str, float]:
    """Mean latent benefits over ``n`` sampled patients (the registry's variability; one
    arm name and seed, so the same patients under each regimen), as ratios; printed."""
    p = ClinicalParams.from_registry(reg)
    times = np.arange(-21 * 24, 30 * 24 + 1, 1.0)
    at = "[" + ", ".join(f"{t:g}h" for t in times) + "]"
    load = {}
    for name in ("none", "k02", "k05", "k10"):
        text = (f"name: screen\nspecies: human\nseed: {seed}\narms:\n  - name: a\n"
                f"    n: {n}\n    protocol: [{DEP}, {REGIMENS[name]}]\n"
                f"    assays: [{{assay: signaling_state, at: {at}}}]\n")
        r = simulate(load_scenario_text(text), registry=reg).readouts
        drives = {o: r[r.readout == o].sort_values(["subject", "time_h"]).value
                  .to_numpy().reshape(n, -1) for o in MADRS_ASSAY.outputs}
        load[name] = symptom_course(times, drives, times, drives, p)[1]

    def benefit(a, h):
        i = int(np.searchsorted(times, h))
        return float((load["none"][:, i] - load[a][:, i]).mean())

    b24 = benefit("k05", 24.0)
    out = {"B24": b24 / float(load["none"][:, int(np.searchsorted(times, -24.0))].mean()),
           "R1": benefit("k10", 24.0) / b24, "R02": benefit("k02", 24.0) / b24,
           "4h": benefit("k05", 4.0) / b24, "72h": benefit("k05", 72.0) / b24}
    print(f"{n} sampled patients: " + " ".join(f"{k} {x:.3f}" for k, x in out.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kp", type=float, default=None,
                    help="human brain:plasma partition (default: the registry's)")
    ap.add_argument("--present", action="store_true",
                    help="only the present model (no pool, all structural formation "
                         "direct, 12-h lag): the exposure screen of T-CLIN-11's tried")
    ap.add_argument("--current", action="store_true",
                    help="only the registry's own clinical values")
    ap.add_argument("--population", type=int, default=0, metavar="N",
                    help="N sampled patients' mean latent benefits (no grid)")
    args = ap.parse_args()
    reg = load_registry()
    if args.population:
        population(args.population, reg if args.kp is None else
                   reg.with_values({"pk.human.ketamine.kp_brain": args.kp}))
        return
    tr = trajectories(reg.value("pk.human.ketamine.kp_brain") if args.kp is None
                      else args.kp)
    if args.current:
        v = ClinicalParams.from_registry(reg).values
        m = metrics(tr, w=v["potentiation_weight"], k_turnover=v["k_turnover"],
                    phi=v["restore_pool_share"], H=v["restore_pool_memory_d"],
                    kr=v["k_restore"], s=v["restore_direct_share"], sigma=v["k_stabilise"],
                    ks=v["k_turnover_stable"], tau=v["tau_symptom_h"])
        print("registry: " + " ".join(f"{k} {x:.2f}" for k, x in m.items()))
        return
    grid = itertools.product([0.15], [7.0], [3.0], [0.1, 0.25], [0.0, 0.1, 0.2],
                             [0.01, 0.02], [4.0, 12.0])
    if args.present:
        grid = [(0.0, 7.0, 3.0, 1.0, 0.0, 0.01, 12.0)]  # the pre-pool model's 12-h lag
    for phi, H, kr, s, sigma, ks, tau in grid:
        kw = {"k_turnover": reg.value("clinical.k_turnover"), "phi": phi, "H": H,
              "kr": kr, "s": s, "sigma": sigma, "ks": ks, "tau": tau}
        try:
            w = brentq(lambda w, kw=kw: metrics(tr, w=w, **kw)["B24"] - 0.351, 0.0, 3.5,
                       xtol=2e-3)
        except ValueError:
            print(kw, "no potentiation weight gives the 24-h benefit")
            continue
        m = metrics(tr, w=w, **kw)
        print(f"phi {phi} H {H} kr {kr} s {s} sigma {sigma} ks {ks} tau {tau} w {w:.2f}: "
              + " ".join(f"{k} {v:.2f}" for k, v in m.items()), flush=True)


if __name__ == "__main__":
    main()
