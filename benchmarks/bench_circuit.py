"""Benchmark: the batched prefrontal circuit with calcium against a per-subject numpy
implementation of the same network.

Protocol (issue 5; written down so the numbers can be reproduced):

- Workload: ``--subjects`` (default 100) x ``--sessions`` (10) x ``--minutes`` (10) of
  circuit activity imaged at 30 Hz, 60 cells, with the registry's ``circuit.*``
  parameters; coupling and activity drive vary across subjects and sessions (coupling
  0.6-1.1, drive 0.65-1.2, fixed seed), the same values for both sides.
- ketasim: ``run_sessions`` (numba, all cores) on chunks of subjects with reused output
  buffers; each chunk is reduced to its mean fluorescence (so nothing is optimised away).
  A first call on one short session excludes compilation and is reported separately.
- Reference: what a lab script would do: one subject-session at a time, a Python loop over
  integration steps with numpy vector operations over the units, the same equations,
  step, Poisson spikes, indicator kinetics, bleaching, neuropil and shot noise, a numpy
  Generator per subject. Timed on ``--ref-sessions`` subject-sessions of ``--ref-minutes``
  and extrapolated linearly to the workload.
- Like for like: for coupling 1 and drive 1, the fraction of frames with the population
  fluorescence above its median + 3 MADs (ensemble events) and the mean fluorescence of
  both sides are printed, with a warning beyond 15% (the random streams differ).
- Peak memory: the process's maximum resident set size. Target: >= 10x. The last line is
  ``speedup: <ratio>``.

Run: ``.venv/bin/python benchmarks/bench_circuit.py`` (``--subjects 20`` for a quick run).
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import numba
import numpy as np

from ketasim.circuit.network import CircuitParams, run_sessions
from ketasim.params import load_registry

FR = 30.0
CELLS = 60


def reference_session(v: dict, coupling: float, drive: float, n_frames: int,
                      rng: np.random.Generator) -> np.ndarray:
    """One subject-session as a plain numpy loop: raw fluorescence (cells, frames)."""
    ne, ni = int(v["n_exc"]), int(v["n_inh"])
    frame_dt = 1.0 / FR
    sub = max(1, math.ceil(frame_dt / v["dt_s"]))
    dt = frame_dt / sub
    ae, ai, aa = dt / v["tau_e_s"], dt / v["tau_i_s"], dt / v["tau_a_s"]
    se, si = v["noise_sd"] * math.sqrt(2 * ae), v["noise_sd"] * math.sqrt(2 * ai)
    k = np.exp(v["indegree_sigma"] * rng.standard_normal(ne) - 0.5 * v["indegree_sigma"] ** 2)
    b = v["bias_mean"] + v["bias_sd"] * rng.standard_normal(ne)
    f0 = np.exp(0.3 * rng.standard_normal(CELLS))
    u, a, r = np.zeros(ne), np.zeros(ne), np.zeros(ne)
    vv, ri = np.zeros(ni), np.zeros(ni)
    c, fl = np.zeros(CELLS), np.zeros(CELLS)
    dec, rise = math.exp(-dt / v["tau_decay_s"]), dt / v["tau_rise_s"]
    jc, ext = v["j_ee"] * coupling, v["g_act"] * (drive - 1.0)
    rmax, theta, kappa = v["r_max_hz"], v["theta"], v["kappa"]
    out = np.empty((CELLS, n_frames), np.float32)
    n_settle = int(5.0 / dt)
    for step in range(n_settle + n_frames * sub):
        re, rim = r.mean(), ri.mean()
        u += ae * (jc * k * re - v["w_ei"] * rim + b + ext - a - u) + se * \
            rng.standard_normal(ne)
        r = rmax / (1.0 + np.exp(-(u - theta) / kappa))
        a += aa * (v["g_adapt"] * r / rmax - a)
        vv += ai * (v["w_ie"] * re - v["w_ii"] * rim + v["bias_inh"] - vv) + si * \
            rng.standard_normal(ni)
        ri = rmax / (1.0 + np.exp(-(vv - theta) / kappa))
        if step < n_settle:
            continue
        c = c * dec + rng.poisson(r[:CELLS] * dt)
        fl += rise * (c - fl)
        rel = step - n_settle + 1
        if rel % sub == 0:
            fr = rel // sub - 1
            bleach = math.exp(-fr * frame_dt / v["bleach_tau_s"])
            npl = v["neuropil_level"] * (1.0 + v["dff_per_spike"] * 0.1 * re * v["tau_decay_s"])
            neu = npl * bleach * (1.0 + 0.05 * rng.standard_normal(CELLS))
            raw = f0 * (1.0 + v["dff_per_spike"] * fl) * bleach + v["neuropil_factor"] * neu
            out[:, fr] = raw + v["shot_noise"] * np.sqrt(np.maximum(raw, 1e-9)) * \
                rng.standard_normal(CELLS)
    return out


def event_fraction(raw: np.ndarray) -> float:
    pop = raw.mean(axis=0)
    med = np.median(pop)
    mad = np.median(np.abs(pop - med)) * 1.4826
    return float(np.mean(pop > med + 3 * mad))


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=2, help="subjects per ketasim call")
    ap.add_argument("--ref-sessions", type=int, default=2)
    ap.add_argument("--ref-minutes", type=float, default=2.0)
    args = ap.parse_args(argv)
    cp = CircuitParams.from_registry(load_registry())
    p, v = cp.vector(), cp.values
    n_sub, n_sess = args.subjects, args.sessions
    n_frames = round(args.minutes * 60 * FR)
    g = np.random.default_rng(5)
    coupling = g.uniform(0.6, 1.1, (n_sub, n_sess))
    drive = g.uniform(0.65, 1.2, (n_sub, n_sess))
    seeds = np.arange(n_sub, dtype=np.int64) + 1000
    subject_minutes = n_sub * n_sess * args.minutes
    print(f"workload: {n_sub} subjects x {n_sess} sessions x {args.minutes:g} min at "
          f"{FR:g} Hz, {CELLS} cells, {int(v['n_exc'])}+{int(v['n_inh'])} units; "
          f"{numba.get_num_threads()} numba threads")

    # ---- ketasim
    t = time.perf_counter()
    tiny = np.zeros((1, 1, CELLS, 30), np.float32)
    run_sessions(p, coupling[:1, :1], drive[:1, :1], 30, FR, CELLS, seeds[:1], tiny,
                 tiny.copy())
    t_compile = time.perf_counter() - t
    m = args.chunk
    raw = np.zeros((m, n_sess, CELLS, n_frames), np.float32)
    npl = np.zeros_like(raw)
    checksum = 0.0
    t = time.perf_counter()
    for s0 in range(0, n_sub, m):
        k = min(m, n_sub - s0)
        run_sessions(p, np.ascontiguousarray(coupling[s0:s0 + k]),
                     np.ascontiguousarray(drive[s0:s0 + k]), n_frames, FR, CELLS,
                     seeds[s0:s0 + k], raw[:k], npl[:k])
        checksum += float(raw[:k].mean())
    ks_s = time.perf_counter() - t
    print(f"ketasim: {ks_s:.1f} s, {subject_minutes / ks_s:.1f} subject-minutes/s; first "
          f"call (compile or cache load) {t_compile:.1f} s untimed; checksum {checksum:.4f}")

    # ---- reference, timed on a sample and extrapolated
    rf = round(args.ref_minutes * 60 * FR)
    t = time.perf_counter()
    for i in range(args.ref_sessions):
        reference_session(v, coupling[0, i % n_sess], drive[0, i % n_sess], rf,
                          np.random.default_rng(i))
    ref_timed = time.perf_counter() - t
    ref_rate = args.ref_sessions * args.ref_minutes / ref_timed
    ref_s = subject_minutes / ref_rate
    print(f"reference (per-subject numpy loop): {ref_rate:.2f} subject-minutes/s, "
          f"{ref_s:.0f} s for the workload, extrapolated from {args.ref_sessions} x "
          f"{args.ref_minutes:g} min timed ({ref_timed:.1f} s)")

    # ---- like for like at coupling 1, drive 1
    n_cmp, cmp_frames = 4, round(2 * 60 * FR)
    ks = np.zeros((n_cmp, 1, CELLS, cmp_frames), np.float32)
    run_sessions(p, np.ones((n_cmp, 1)), np.ones((n_cmp, 1)), cmp_frames, FR, CELLS,
                 np.arange(n_cmp, dtype=np.int64) + 7, ks, np.zeros_like(ks))
    ref = [reference_session(v, 1.0, 1.0, cmp_frames, np.random.default_rng(50 + i))
           for i in range(n_cmp)]
    rows = [("ensemble-event frame fraction", np.mean([event_fraction(x[0]) for x in ks]),
             np.mean([event_fraction(x) for x in ref])),
            ("mean fluorescence", float(ks.mean()), float(np.mean(ref)))]
    for name, a, b in rows:
        diff = (b - a) / a if a else float("nan")
        print(f"  {name:32s} ketasim {a:.4f}   reference {b:.4f} ({100 * diff:+.1f}%)")
        if not abs(diff) <= 0.15:
            print(f"WARNING: {name} differs by more than 15%: not like for like")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    ratio = ref_s / ks_s
    print(f"peak RSS {rss:.0f} MB")
    print(f"target: >= 10x reference: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x)")
    print(f"speedup: {ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main()
