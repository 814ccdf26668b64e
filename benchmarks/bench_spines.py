"""Benchmark: the spine engine against an object-per-spine Python reference.

Protocol (issue 4; written down here so the numbers can be reproduced):

- Workload: N subjects (default 1,000) x 20 branches x 30 days, 6 h steps, with the full
  rules of ``ketasim/spines/engine.py`` (size-, age-, synapse- and stress-dependent
  elimination with branch susceptibility and neighbour coupling; formation with branch
  plasticity; restoration at remembered sites of lost synapse-bearing spines, coupled
  between neighbouring sites; synapse gain; log-size Ornstein-Uhlenbeck dynamics; the
  drifting local stress field and the plasticity field) and the ``spine.mpfc_l5.*``
  registry parameters, after the
  engine's baseline burn-in (10 days, simulated by both sides and included in both
  timings; not counted as spine-days).
- Drives (n_sub, n_steps), smooth in time, the same arrays for both sides: CORT-like
  elimination drive 1.6 and formation / synaptic-protein drives 0.75 over days 0-10
  (switched off over ~half a day), then ketamine at day 11: a formation bump peaking 16 h
  after the dose (+1.5 x a per-subject amplitude, log-normal, SD 0.2) and a slower
  synaptic-protein bump (+0.8, peak at 24 h). AS-PaRAC1 photoactivation at day 12 for the
  even-numbered half of the subjects. Two recording sessions (day 0 and day 30).
- ketasim: ``run_spines`` (numba, all cores; ``NUMBA_NUM_THREADS`` to restrict), one
  call for the whole batch; a first call on 2 subjects excludes compilation (or cache
  loading) and is reported separately, as is the calibration of the baseline formation
  rate. Spine-days = live spines summed over the 30 days' steps x step length: the
  engine counts, per step, the spines alive after that step's eliminations
  (``counts[:, 3]``); the reference counts the same thing.
- Reference: what a lab script would do, written plainly but not wastefully: one
  ``Spine`` object per spine, a ``Branch`` holding a list of them and a deque of its last
  64 elimination sites (the engine's ring buffer), the same rules and parameters step for
  step, ``random.Random(subject index)`` per subject, the same burn-in. It is timed on
  ``--ref-subjects`` subjects and extrapolated linearly to N.
- Like for like: mean density at day 30 and formations / eliminations per spine-day of
  both sides are printed (reference with its standard error over subjects); a warning is
  printed if any differs by more than 10%.
- Peak memory: the process's maximum resident set size. Targets: >= 1e7 spine-days/s
  (on 2 cores) and >= 100 x the reference. The last line is ``speedup: <ratio>``.

Run: ``.venv/bin/python benchmarks/bench_spines.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import sys
import time
from collections import deque

import ketasim

# numba's cache folder: set before numba and the jitted modules are imported
ketasim.configure()

import numba
import numpy as np

from ketasim.core.streams import PURPOSE_SPINES, xoroshiro_states
from ketasim.params import load_registry
from ketasim.spines.engine import MEMORY, RECENT, SIZE_DT_H, SpineParams, run_spines
from ketasim.spines.simulate import DT_H

SQRT3 = math.sqrt(3.0)
SQRT6 = math.sqrt(6.0)
PHOTO_DAY = 12.0
AGREE_TOL = 0.10


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def drives(n: int, days: int, seed: int = 4):
    """Formation, elimination and synaptic-protein drives (n, n_steps) at the step starts:
    CORT over days 0-10, ketamine at day 11 (per-subject response amplitude)."""
    t = np.arange(int(days * 24 / DT_H)) * DT_H
    cort = 1.0 / (1.0 + np.exp((t - 240.0) / 3.0))  # 1 during CORT, off over ~12 h

    def bump(peak_h):  # gamma-like, 0 before the dose, 1 at the peak
        u = np.clip(t - 264.0, 0.0, None) / peak_h
        return u * np.exp(1.0 - u)

    amp = np.exp(0.2 * np.random.default_rng(seed).standard_normal((n, 1)) - 0.02)
    elim = np.tile(1.0 + 0.6 * cort, (n, 1))
    form = (1.0 - 0.25 * cort) + 1.5 * amp * bump(16.0)
    synp = (1.0 - 0.25 * cort) + 0.8 * amp * bump(24.0)
    return [np.ascontiguousarray(x) for x in (form, elim, synp)]


# ---------------------------------------------------------------- reference, plain Python
class Spine:
    __slots__ = ("birth", "logsize", "origin", "pos", "sid", "stubby", "synapse")

    def __init__(self, pos, logsize, birth, origin, synapse, stubby, sid):
        self.pos = pos
        self.logsize = logsize
        self.birth = birth
        self.origin = origin  # 0 pre-existing, 1 de novo, 2 restored
        self.synapse = synapse
        self.stubby = stubby
        self.sid = sid


class Branch:
    def __init__(self, susc, plast, sfield_z, sfield, pfield):
        self.susc = susc
        self.plast = plast
        self.sfield_z = sfield_z  # stress field: standard-normal OU state per segment
        self.sfield = sfield  # stress field values
        self.pfield = pfield  # plasticity field values
        self.spines: list[Spine] = []
        # [position, time, restored] of eliminations (the engine's ring buffer)
        self.memory: deque = deque(maxlen=MEMORY)
        self.restored: deque = deque(maxlen=RECENT)  # (site, time) of recent restorations
        self.next_id = 0


def poisson(rnd, lam):
    """Poisson variate by inversion (as the engine)."""
    u, k, p = rnd(), 0, math.exp(-lam)
    c = p
    while u > c and k < 1000:
        k += 1
        p *= lam / k
        c += p
    return k


class Reference:
    """The engine's rules (engine.py: ``run_spines``, ``_run_subject`` and its ``step``
    and ``photoactivate``), one Python object per spine."""

    def __init__(self, v: dict, f0: float, dt: float):
        self.v, self.f0, self.dt = v, f0, dt
        self.cap = int(3 * v["density"] * v["branch_length"]) + 16
        self.seg = v["local_seg_um"]
        self.n_seg = min(math.ceil(v["branch_length"] / self.seg), 128)

    def segment(self, x):
        return min(int(x / self.seg), self.n_seg - 1)

    def new_branch(self, rng, t_start):
        v = self.v
        gauss, rnd = rng.gauss, rng.random
        ss, ps = v["susc_sigma"], v["plast_sigma"]
        ls, lp = v["local_sigma"], v["plast_local_sigma"]
        susc = math.exp(ss * gauss(0.0, 1.0) - 0.5 * ss * ss)
        plast = math.exp(ps * gauss(0.0, 1.0) - 0.5 * ps * ps)
        z = [gauss(0.0, 1.0) for _ in range(self.n_seg)]
        br = Branch(susc, plast, z, [math.exp(ls * x - 0.5 * ls * ls) for x in z],
                    [math.exp(lp * gauss(0.0, 1.0) - 0.5 * lp * lp) for _ in z])
        L = v["branch_length"]
        for _ in range(min(poisson(rnd, v["density"] * L), self.cap)):
            br.spines.append(Spine(rnd() * L, v["size_mu_mature"] + v["size_sigma"] *
                                   gauss(0.0, 1.0), t_start - 1e4, 0, True,
                                   rnd() < v["stubby_frac"], br.next_id))
            br.next_id += 1
        return br

    def add(self, br, x, t, origin, rng):
        """A new spine (False if the branch is full); restored ones regrow at the mature
        size."""
        if len(br.spines) >= self.cap:
            return False
        v = self.v
        mu = v["size_mu_mature"] if origin == 2 else v["size_mu_new"]
        br.spines.append(Spine(x, mu + 0.3 * v["size_sigma"] * rng.gauss(0.0, 1.0), t,
                               origin, False, rng.random() < v["stubby_frac"], br.next_id))
        br.next_id += 1
        return True

    def field_position(self, br, rnd):
        L = self.v["branch_length"]
        w = [f * min(self.seg, L - j * self.seg) / self.seg for j, f in enumerate(br.pfield)]
        u, j, c = rnd() * sum(w), 0, w[0]
        while j < len(w) - 1 and c <= u:
            j += 1
            c += w[j]
        return j * self.seg + rnd() * min(self.seg, L - j * self.seg)

    def step(self, br: Branch, t, F, E, P, rng, size_dt):
        """One step of one branch; returns (formed, eliminated, lost, alive after losses).
        Sizes advance by the exact OU transition over ``size_dt`` h (0: held this step),
        as in the engine (``SIZE_DT_H``)."""
        v, dt = self.v, self.dt
        rnd = rng.random
        dt_d = dt / 24.0
        L = v["branch_length"]
        e0, a_size, mu_m, mu_n = v["e0"], v["a_size"], v["size_mu_mature"], v["size_mu_new"]
        young_gain, young_tau = v["young_gain"], v["young_tau_d"]
        nosyn, c_r = v["nosyn_factor"], v["c_r"]
        c_gain = v["c_gain"] + v["c_stress"] * max(0.0, E - 1.0)
        a = math.exp(-v["size_theta"] * size_dt / 24.0)
        size_sd = v["size_sigma"] * math.sqrt(1.0 - a * a) * SQRT6
        syn_rate = v["k_syn"] * P
        p_syn = 1.0 - math.exp(-syn_rate * dt_d)
        p_syn_restored = 1.0 - math.exp(-syn_rate * v["restored_boost"] * dt_d)
        sg = v["stress_gain"] * (E - 1.0)
        ls = v["local_sigma"]
        if sg != 0.0 and ls > 0.0:  # the stress field drifts while it matters
            fa = math.exp(-dt_d / v["local_tau_d"])
            fsd = math.sqrt(1.0 - fa * fa) * SQRT3
            for j, z in enumerate(br.sfield_z):
                z = z * fa + fsd * (rnd() + rnd() + rnd() + rnd() - 2.0)
                br.sfield_z[j] = z
                br.sfield[j] = math.exp(ls * z - 0.5 * ls * ls)
        sg_b = sg * br.susc
        # sites eliminated within the coupling memory
        c_tau_h = v["c_tau_d"] * 24.0
        recent = [x for (x, te, _) in br.memory if t - te < c_tau_h] if c_gain > 0.0 else []
        survivors = []
        eliminated = 0
        for sp in br.spines:
            h = e0 * math.exp(-a_size * (sp.logsize - mu_m))
            if not sp.synapse:
                h *= nosyn
                age_d = (t - sp.birth) / 24.0
                if age_d < 30.0 * young_tau:
                    h *= 1.0 + young_gain * math.exp(-age_d / young_tau)
            h *= max(0.0, 1.0 + sg_b * br.sfield[self.segment(sp.pos)])
            if recent:
                pos = sp.pos
                h *= 1.0 + c_gain * sum(1 for x in recent if abs(x - pos) < c_r)
            if rnd() < 1.0 - math.exp(-h * dt_d):
                # only a site that held a synapse can regrow (restored = True otherwise)
                br.memory.append([sp.pos, t, not sp.synapse])
                if c_gain > 0.0 and len(recent) < MEMORY:
                    recent.append(sp.pos)  # couples within the same step too
                eliminated += 1
                continue
            if not sp.synapse and rnd() < (p_syn_restored if sp.origin == 2 else p_syn):
                sp.synapse = True
            if size_dt > 0.0:
                target = mu_m if sp.synapse else mu_n
                # size noise as the engine draws it: the sum of two uniforms (triangular)
                sp.logsize = target + (sp.logsize - target) * a + size_sd * (
                    rnd() + rnd() - 1.0)
            survivors.append(sp)
        br.spines = survivors
        n_alive = len(survivors)
        # de novo formation: up to baseline uniform, the excess on the plasticity field
        excess = (F - 1.0) * br.plast
        drive = max(0.0, 1.0 + excess)
        n_new = poisson(rnd, self.f0 * L * dt_d * min(drive, 1.0))
        n_hot = poisson(rnd, self.f0 * L * dt_d * excess) if excess > 0.0 else 0
        formed = lost = 0
        for i in range(n_new + n_hot):
            x = rnd() * L if i < n_new else self.field_position(br, rnd)
            if self.add(br, x, t, 1, rng):
                formed += 1
            else:
                lost += 1
        # restoration at remembered sites while the drive is raised
        if excess > 0.0 and v["k_restore"] > 0.0:
            rate_dt = v["k_restore"] * excess * dt_d
            horizon_h = v["mem_horizon_d"] * 24.0
            gain = v["restore_gain"]
            for site in reversed(br.memory):  # newest first, as the engine
                if t - site[1] >= horizon_h:
                    break
                if site[2]:
                    continue
                x = rate_dt * br.pfield[self.segment(site[0])]
                if gain > 0.0:  # sites restored lately nearby
                    x *= 1.0 + gain * sum(1 for (xr, tr) in br.restored
                                          if t - tr < c_tau_h and abs(xr - site[0]) < c_r)
                if rnd() < 1.0 - math.exp(-x):
                    site[2] = True
                    br.restored.append((site[0], t))
                    x = min(max(site[0] + (2.0 * rnd() - 1.0) * v["restore_r"], 0.0), L)
                    if self.add(br, x, t, 2, rng):
                        formed += 1
                    else:
                        lost += 1
        return formed, eliminated, lost, n_alive

    def photoactivate(self, branches, t, rng):
        rnd = rng.random
        t_min, p = t - self.v["parac1_window_h"], self.v["parac1_p"]
        for br in branches:
            br.spines = [sp for sp in br.spines if not (sp.birth > t_min and rnd() < p)]

    def subject(self, s, n_br, form, elim, synp, photo_times):
        """One subject from t = 0; returns (spine-steps, formations, eliminations, lost,
        density at the end per um)."""
        rng = random.Random(s)
        dt = self.dt
        branches = [self.new_branch(rng, 0.0) for _ in range(n_br)]
        n_burn = int(self.v["burn_in_d"] * 24.0 / dt)
        every = max(1, round(SIZE_DT_H / dt))
        for i in range(n_burn):
            size_dt = every * dt if i % every == 0 else 0.0
            for br in branches:
                self.step(br, -(n_burn - i) * dt, 1.0, 1.0, 1.0, rng, size_dt)
        for br in branches:  # spines alive at the start count as pre-existing
            for sp in br.spines:
                sp.origin = 0
        totals = [0, 0, 0, 0]  # formations, eliminations, lost, spine-steps
        n_steps = form.shape[0]
        i_pa = 0
        for i in range(n_steps):
            t = i * dt
            while i_pa < len(photo_times) and photo_times[i_pa] <= t:
                self.photoactivate(branches, photo_times[i_pa], rng)
                i_pa += 1
            F, E, P = float(form[i]), float(elim[i]), float(synp[i])
            size_dt = every * dt if (n_burn + i) % every == 0 else 0.0
            for br in branches:
                for c, x in enumerate(self.step(br, t, F, E, P, rng, size_dt)):
                    totals[c] += x
        density = sum(len(br.spines) for br in branches) / (n_br * self.v["branch_length"])
        return totals[3], totals[0], totals[1], totals[2], density


# ---------------------------------------------------------------------------- benchmark
def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="subjects")
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--ref-subjects", type=int, default=10,
                    help="subjects run by the reference (extrapolated to --n)")
    args = ap.parse_args(argv)
    n, nb, days = args.n, args.branches, args.days
    n_ref = min(args.ref_subjects, n)

    sp = SpineParams.from_registry(load_registry())
    v = dict(sp.values)
    p = sp.vector()
    L = v["branch_length"]
    form, elim, synp = drives(n, days)
    n_steps = form.shape[1]
    cap = int(3 * v["density"] * L) + 16
    rec = np.array([0.0, days * 24.0])  # two imaging sessions
    photo = np.where(np.arange(n) % 2 == 0, PHOTO_DAY * 24.0, np.inf)[:, None]
    print(f"workload: {n} subjects x {nb} branches x {days} days, step {DT_H:g} h, "
          f"burn-in {v['burn_in_d']:g} days, CORT days 0-10, ketamine day 11, AS-PaRAC1 "
          f"day {PHOTO_DAY:g} for {int(np.isfinite(photo).sum())} subjects, {rec.size} "
          f"recordings; {numba.get_num_threads()} numba threads, {os.cpu_count()} cores")

    def run(m, f0):
        t = time.perf_counter()
        shape = (m, rec.size, nb, cap)
        alive = np.zeros(shape, np.uint8)
        counts = np.zeros((m, nb, 4), np.int64)
        run_spines(p, f0, 0.0, DT_H, n_steps, form[:m], elim[:m], synp[:m],
                   np.ones_like(synp[:m]), nb, cap,
                   xoroshiro_states(2026, "bench", m, PURPOSE_SPINES, nb), photo[:m], rec, alive,
                   np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int8),
                   np.zeros(shape, np.uint8), np.zeros(shape, np.uint8),
                   np.zeros(shape, np.int64), counts, np.zeros(0), np.zeros(0), 0, 0.0)
        return time.perf_counter() - t, alive, counts.sum(axis=1)

    # ---- ketasim
    t_compile, _, _ = run(2, sp.formation_rate_per_um_day())
    t = time.perf_counter()
    f0 = sp.stationary_formation_rate(DT_H)
    t_calib = time.perf_counter() - t
    ks_s, alive, counts = run(n, f0)
    ks_sd = counts[:, 3].sum() * DT_H / 24.0
    ks_rate = ks_sd / ks_s
    ks_density = alive[:, -1].sum() / (n * nb * L)
    ks_form = counts[:, 0].sum() / ks_sd
    ks_elim = counts[:, 1].sum() / ks_sd
    print(f"ketasim: {ks_s:.2f} s for {n} subjects, {ks_sd:.4g} spine-days: "
          f"{ks_rate:.3g} spine-days/s, {n / ks_s:.0f} subjects/s; first call (compile or "
          f"cache load) {t_compile:.1f} s, f0 calibration {t_calib:.1f} s (both untimed); "
          f"{counts[:, 2].sum()} formations lost to full branches")
    del alive

    # ---- reference
    ref = Reference(v, f0, DT_H)
    t = time.perf_counter()
    res = np.array([ref.subject(s, nb, form[s], elim[s], synp[s], photo[s][np.isfinite(photo[s])])
                    for s in range(n_ref)], dtype=float)
    ref_timed = time.perf_counter() - t
    ref_s = ref_timed * n / n_ref
    r_sd = res[:, 0] * DT_H / 24.0
    ref_rate = r_sd.sum() / ref_timed
    note = "" if n_ref == n else f"extrapolated from {n_ref} subjects timed ({ref_timed:.1f} s)"
    print(f"reference (one Python object per spine): {ref_s:.1f} s for {n} subjects "
          f"{note}; {ref_rate:.3g} spine-days/s, {n_ref / ref_timed:.2f} subjects/s")

    # ---- like for like: the two sides simulate the same model
    def se(x):
        return float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")

    rows = [
        (f"density at day {days} (1/um)", ks_density, res[:, 4].mean(), se(res[:, 4])),
        ("formations per spine-day", ks_form, res[:, 1].sum() / r_sd.sum(),
         se(res[:, 1] / r_sd)),
        ("eliminations per spine-day", ks_elim, res[:, 2].sum() / r_sd.sum(),
         se(res[:, 2] / r_sd)),
    ]
    bad = []
    for name, k, r, e in rows:
        diff = (r - k) / k
        print(f"  {name:28s} ketasim {k:.4f}   reference {r:.4f} +- {e:.4f} "
              f"({100 * diff:+.1f}%)")
        if abs(diff) > AGREE_TOL:
            bad.append(name)
    if bad:
        print("!" * 80)
        print(f"WARNING: ketasim and the reference differ by more than {AGREE_TOL:.0%} in "
              f"{', '.join(bad)}: the comparison is NOT like for like")
        print("!" * 80)

    rss = peak_rss_mb()
    ratio = ref_s / ks_s
    print(f"peak RSS {rss:.0f} MB")
    print(f"target: >= 1e7 spine-days/s: {'met' if ks_rate >= 1e7 else 'NOT met'} "
          f"({ks_rate:.3g})")
    print(f"target: >= 100x reference: {'met' if ratio >= 100 else 'NOT met'} ({ratio:.0f}x)")
    print(f"speedup: {ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
