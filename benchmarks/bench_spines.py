"""Benchmark: the spine engine against an object-per-spine reference.

Protocol (issue 4):

- Workload: N subjects (default 1,000) x 20 branches x 30 days with the full rules
  (size-, age-, synapse- and stress-dependent elimination with branch susceptibility and
  neighbour coupling, formation with branch plasticity and restoration at remembered
  sites, synapse gain, log-size dynamics, one AS-PaRAC1 flash at day 12), after the
  engine's baseline burn-in. Drives: CORT-like raised elimination and lowered formation
  for days 0-10, then a ketamine-like formation bump peaking 16 h after day 11.
- ketasim: ``run_spines`` (numba, all cores) after a warm-up call, two recorded sessions;
  spine-days = live spines summed over all steps x step length (the engine counts them).
- Reference: plain Python, one ``Spine`` object per spine and a list per branch, the same
  rules, parameters and step (6 h), ``random.Random`` per subject; timed on
  ``--ref-subjects`` subjects and extrapolated linearly. Both sides' turnover is printed
  to show they simulate the same thing.
- Peak memory: maximum resident set size. The last line is ``speedup: <ratio>``.

Run: ``.venv/bin/python benchmarks/bench_spines.py``.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sys
import time

import numpy as np

from ketasim.params import load_registry
from ketasim.spines.engine import PARAM_NAMES, SpineParams, run_spines
from ketasim.spines.rng import subject_states
from ketasim.spines.simulate import DT_H


def drives(n: int, days: int):
    t = np.arange(int(days * 24 / DT_H)) * DT_H
    elim = np.where(t < 240, 1.6, 1.0)
    form = np.where(t < 240, 0.75, 1.0) + 1.5 * np.exp(-0.5 * ((t - 280.0) / 8.0) ** 2)
    synp = np.where(t < 240, 0.75, 1.0)
    return [np.tile(x, (n, 1)) for x in (form, elim, synp)]


class Spine:
    __slots__ = ("pos", "logsize", "birth", "origin", "synapse")

    def __init__(self, pos, logsize, birth, origin, synapse):
        self.pos, self.logsize, self.birth = pos, logsize, birth
        self.origin, self.synapse = origin, synapse


class Branch:
    def __init__(self, rng: random.Random, v: dict, t0: float):
        self.susc = math.exp(v["susc_sigma"] * rng.gauss(0, 1) - 0.5 * v["susc_sigma"] ** 2)
        self.plast = math.exp(v["plast_sigma"] * rng.gauss(0, 1) - 0.5 * v["plast_sigma"] ** 2)
        n0 = _poisson(rng, v["density"] * v["branch_length"])
        self.spines = [Spine(rng.random() * v["branch_length"],
                             v["size_mu_mature"] + v["size_sigma"] * rng.gauss(0, 1),
                             t0 - 1e4, 0, True) for _ in range(n0)]
        self.memory: list[tuple[float, float]] = []  # (position, time)


def _poisson(rng, lam):
    u, k, p = rng.random(), 0, math.exp(-lam)
    c = p
    while u > c and k < 1000:
        k += 1
        p *= lam / k
        c += p
    return k


def ref_step(br: Branch, v: dict, f0: float, t: float, dt: float, F, E, P, rng) -> None:
    """The engine's rules (ketasim/spines/engine.py: _step_subject), one object per spine."""
    dt_d = dt / 24.0
    L = v["branch_length"]
    stress = max(0.0, 1.0 + (E - 1.0) * br.susc)
    a = math.exp(-v["size_theta"] * dt_d)
    size_sd = v["size_sigma"] * math.sqrt(1 - a * a)
    survivors = []
    for sp in br.spines:
        age_d = (t - sp.birth) / 24.0
        h = v["e0"] * math.exp(-v["a_size"] * (sp.logsize - v["size_mu_mature"]))
        h *= 1.0 + v["young_gain"] * math.exp(-age_d / v["young_tau_d"])
        if not sp.synapse:
            h *= v["nosyn_factor"]
        h *= stress
        recent = sum(1 for (x, te) in br.memory[-64:]
                     if t - te < v["c_tau_d"] * 24 and abs(x - sp.pos) < v["c_r"])
        h *= 1.0 + v["c_gain"] * recent
        if rng.random() < 1.0 - math.exp(-h * dt_d):
            br.memory.append((sp.pos, t))
            continue
        if not sp.synapse:
            rate = v["k_syn"] * P * (v["restored_boost"] if sp.origin == 2 else 1.0)
            if rng.random() < 1.0 - math.exp(-rate * dt_d):
                sp.synapse = True
        target = v["size_mu_mature"] if sp.synapse else v["size_mu_new"]
        sp.logsize = target + (sp.logsize - target) * a + size_sd * rng.gauss(0, 1)
        survivors.append(sp)
    br.spines = survivors
    drive = max(0.0, 1.0 + (F - 1.0) * br.plast)
    for _ in range(_poisson(rng, f0 * L * dt_d * drive)):
        sites = [x for (x, te) in br.memory[-64:] if t - te < v["mem_horizon_d"] * 24]
        x, org = rng.random() * L, 1
        n = len(sites)
        if n and rng.random() < v["restore_max"] * n / (n + v["restore_k"]):
            x = min(max(rng.choice(sites) + (2 * rng.random() - 1) * v["restore_r"], 0.0), L)
            org = 2
        br.spines.append(Spine(x, v["size_mu_new"] + 0.3 * v["size_sigma"] * rng.gauss(0, 1),
                               t, org, False))


def reference(n_sub, n_br, days, v, f0, form, elim, synp, photo_t):
    live_sum, formed, lost = 0.0, 0, 0
    n_steps = form.shape[1]
    for s in range(n_sub):
        rng = random.Random(s)
        branches = [Branch(rng, v, 0.0) for _ in range(n_br)]
        for i in range(int(v["burn_in_d"] * 24 / DT_H)):
            for br in branches:
                ref_step(br, v, f0, -1e3 + i * DT_H, DT_H, 1.0, 1.0, 1.0, rng)
        for i in range(n_steps):
            t = i * DT_H
            if abs(t - photo_t) < 1e-9:
                for br in branches:
                    br.spines = [sp for sp in br.spines if not (
                        sp.birth > t - v["parac1_window_h"] and rng.random() < v["parac1_p"])]
            for br in branches:
                before = len(br.spines)
                m_before = len(br.memory)
                ref_step(br, v, f0, t, DT_H, form[s, i], elim[s, i], synp[s, i], rng)
                lost += len(br.memory) - m_before
                formed += len(br.spines) - before + (len(br.memory) - m_before)
                live_sum += len(br.spines)
    spine_days = live_sum * DT_H / 24.0
    return spine_days, formed, lost


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--ref-subjects", type=int, default=4)
    args = ap.parse_args(argv)
    n, nb, days = args.n, args.branches, args.days
    sp = SpineParams.from_registry(load_registry())
    p = sp.vector()
    f0 = sp.stationary_formation_rate(DT_H)
    form, elim, synp = drives(n, days)
    n_steps = form.shape[1]
    cap = int(3 * sp.values["density"] * sp.values["branch_length"]) + 16
    rec = np.array([0.0, days * 24.0 - DT_H])  # two imaging sessions, as a lab records
    photo = np.full((n, 1), 12 * 24.0)

    def run(m):
        shape = (m, rec.size, nb, cap)
        alive = np.zeros(shape, np.uint8)
        f = np.zeros(shape)
        counts = np.zeros((m, 4), np.int64)
        t = time.perf_counter()
        run_spines(p, f0, 0.0, DT_H, n_steps, form[:m], elim[:m], synp[:m], nb, cap,
                   subject_states(1, "bench", m), photo[:m], rec, alive, f, f,
                   np.zeros(shape, np.int8), np.zeros(shape, np.uint8),
                   np.zeros(shape, np.uint8), np.zeros(shape, np.int64), counts)
        return time.perf_counter() - t, alive, counts

    t_compile, _, _ = run(2)
    ks_s, alive, counts = run(n)
    spine_days = counts[:, 3].sum() * DT_H / 24.0  # live spines summed over steps
    rate = spine_days / ks_s
    per_sd = counts[:, :3].sum(axis=0) / spine_days
    print(f"workload: {n} subjects x {nb} branches x {days} days ({spine_days:.3g} spine-days), "
          f"step {DT_H:g} h, burn-in {sp.values['burn_in_d']:g} days")
    print(f"ketasim: {ks_s:.2f} s, {rate:.3g} spine-days/s (first call {t_compile:.1f} s); "
          f"formations {per_sd[0]:.4f} and eliminations {per_sd[1]:.4f} per spine-day")

    v = dict(zip(PARAM_NAMES, p))
    t = time.perf_counter()
    r_sd, r_formed, r_lost = reference(args.ref_subjects, nb, days, v, f0, form, elim, synp,
                                       12 * 24.0)
    ref_s = (time.perf_counter() - t) * n / args.ref_subjects
    print(f"reference (one Python object per spine): {ref_s:.1f} s for {n} subjects "
          f"(timed {args.ref_subjects}, extrapolated), {r_sd / (ref_s * args.ref_subjects / n):.3g}"
          f" spine-days/s; formations {r_formed / r_sd:.4f} and eliminations "
          f"{r_lost / r_sd:.4f} per spine-day")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS {rss:.0f} MB")
    ratio = ref_s / ks_s
    print(f"target >= 1e7 spine-days/s: {'met' if rate >= 1e7 else 'NOT met'}; "
          f"target >= 100x reference: {'met' if ratio >= 100 else 'NOT met'}")
    print(f"speedup: {ratio:.0f}")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
