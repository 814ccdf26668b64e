"""Typical-patient screen of a bounded, consolidating structural gain for the human
synaptic state (research script, not part of ketasim; 2026-12-07).

The question (targets.yaml, T-CLIN-11 and T-CLIN-15 under ``tried``): which human
synaptic-state dynamics give the clinical time course and dose-response together? This
script simulates one noise-free typical patient (every between-subject CV set to 0) under
the regimens the human targets read, takes the signalling layer's formation and
elimination drives and potentiation on a 1-h grid, and integrates a candidate synaptic
state offline:

- D, ordinary synapses: dD/dt = k (F0 + s X - E D), with F0 the untreated formation drive
  and X = max(0, F - F0) the drug's structural excess (s: its direct share);
- M, a pool of recently lost synapses: dM/dt = phi (losses) - M / H - g, with
  g = k_r X M their regrowth (restoration near lost sites, F-M-6);
- L, restored synapses, labile: dL/dt = g - k E L - sigma L;
- Q, restored synapses made stable (F-M-7: restored spines last longer; new spines that
  last 4 days carry synapses), turning over slowly: dQ/dt = sigma L - k_s E Q;
- Z = (D + L + Q)(1 + w P); the rated load follows max(0, 1 - Z) with lag tau.

``w`` is refitted in each case so that the 24-h benefit of 0.5 mg/kg stays at 0.35 of the
baseline load (the present model's). Printed per case: R1 (1.0 / 0.5 mg/kg at 24 h;
T-CLIN-11 wants <= 1.2), R02 (0.2 / 0.5; T-CLIN-10 <= 0.4), 4h, 72h and 14d (as
fractions of the 24-h benefit; T-CLIN-03, -15 >= 0.5, -05 within 0.3), x6 (24 h after
the sixth of six infusions over 12 days, / one dose; T-CLIN-16, -17 want a little more
than 1), T2 (TRANSFORM-2's esketamine-minus-placebo load at day 27 / baseline; about
-0.35 is -8 MADRS points, so the band's edge -7.3 is about -0.31) and m180 (monthly
maintenance at day 180 / baseline; T-CLIN-26 needs a clear benefit).

Run: ``.venv/bin/python docs/research/human_pool_screen.py --kp 6`` (about 20 s);
``--present`` runs the present model only (no pool), as in T-CLIN-11's exposure screen.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np
from scipy.optimize import brentq

from ketasim import simulate
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
    """F, E and P of the typical patient on a 1-h grid, per regimen."""
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
        for o in ("formation_drive", "elimination_drive", "synaptic_potentiation"):
            x = r[r.readout == o].sort_values("time_h")
            d[o], d["t"] = x.value.to_numpy(), x.time_h.to_numpy()
        out[name] = d
    return out


def course(d, untreated, *, w, k_turnover, phi, H, kr, s, sigma, ks, tau):
    """(times, rated load) of one regimen (substeps of 15 min)."""
    k, Hh, ksh, sg = k_turnover / 24.0, H * 24.0, ks / 24.0, sigma / 24.0
    t = d["t"]
    F = np.clip(d["formation_drive"], 0, None)
    E = np.clip(d["elimination_drive"], 1e-9, None)
    P = np.clip(d["synaptic_potentiation"], 0, None)
    F0 = np.interp(t, untreated["t"], np.clip(untreated["formation_drive"], 0, None))
    X = np.clip(F - F0, 0, None)
    D, L, Q = F0[0] / E[0], 0.0, 0.0
    M = phi * k * E[0] * D * Hh
    x = max(0.0, 1 - D * (1 + w * P[0]))
    S = np.empty_like(t)
    S[0] = x
    for j in range(1, len(t)):
        h = t[j] - t[j - 1]
        n = round(h / 0.25)
        dt, e = h / n, E[j - 1]
        for _ in range(n):
            # each state linear in itself with the others held over the substep: exact
            # exponential updates, stable however fast the regrowth (explicit Euler
            # steps oscillate once k_r X dt passes 1)
            src = phi * (k * e * (D + L) + ksh * e * Q)
            b = kr * X[j - 1] + 1.0 / Hh
            m_eq, eb = src / b, np.exp(-b * dt)
            m_mean = m_eq + (M - m_eq) * (1.0 - eb) / (b * dt)
            M = m_eq + (M - m_eq) * eb
            g = kr * X[j - 1] * m_mean
            c = k * e + sg
            l_eq, ec = g / c, np.exp(-c * dt)
            l_mean = l_eq + (L - l_eq) * (1.0 - ec) / (c * dt)
            L = l_eq + (L - l_eq) * ec
            Q = (Q + dt * sg * l_mean) / (1.0 + dt * ksh * e)
            target = F0[j - 1] + s * X[j - 1]
            D = target / e + (D - target / e) * np.exp(-k * e * dt)
        x0, x = x, max(0.0, 1 - (D + L + Q) * (1 + w * P[j]))
        slope = (x - x0) / h
        S[j] = x - slope * tau + (S[j - 1] - x0 + slope * tau) * np.exp(-h / tau)
    return t, S


def metrics(tr, **kw) -> dict[str, float]:
    c = {a: course(tr[a], tr["none"], **kw) for a in tr}

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kp", type=float, default=6.0, help="human brain:plasma partition")
    ap.add_argument("--present", action="store_true",
                    help="only the present model (no pool, all structural formation "
                         "direct, 12-h lag): the exposure screen of T-CLIN-11's tried")
    args = ap.parse_args()
    reg = load_registry()
    tr = trajectories(args.kp)
    grid = itertools.product([0.15], [7.0], [3.0], [0.1, 0.25], [0.0, 0.1, 0.2],
                             [0.01, 0.02], [4.0, 12.0])
    if args.present:
        grid = [(0.0, 7.0, 3.0, 1.0, 0.0, 0.01, reg.value("clinical.tau_symptom_h"))]
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
