"""Benchmark: the batched prefrontal circuit with calcium imaging against a plain
per-subject numpy implementation of the same rate network.

Protocol (issue 5; written down here so the numbers can be reproduced):

- Measure: subject-minutes of circuit plus calcium simulated per second. The issue's
  workload is 100 subjects x 10 sessions x 10 min imaged at 30 Hz; 60 imaged cells per
  subject, the registry's ``circuit.*`` parameters (160 + 40 rate units, 3 integration
  steps per frame, 5 s of settling before each session). The default run times
  ``--subjects 20`` x ``--sessions 10`` x ``--minutes 10`` (the full 100 subjects take
  about 2 min on 2 cores for ketasim alone); both sides' rates are also projected
  linearly to the full workload and printed. ``--subjects 100`` runs it in full.
- Coupling and activity drive vary across subjects and sessions, uniform in 0.6-1.1 and
  0.65-1.2 (``numpy.random.default_rng(5)``); one seed per subject (1000 + index). Both
  sides use the same values for the same subject-sessions.
- ketasim: ``run_sessions`` (numba, ``prange`` over subjects, all cores;
  ``NUMBA_NUM_THREADS`` to restrict) on chunks of ``--chunk`` subjects (default 4; the
  full output, float32 fluorescence plus neuropil for 100 x 10 x 60 x 18,000, would be
  8.6 GB) written into one reused pair of buffers; each chunk is reduced, inside the
  timed loop, to the mean fluorescence and neuropil of every session, so the work cannot
  be skipped. A first call on one 1-s session (compilation, or loading the on-disk cache)
  is made before and reported separately.
- Reference: what a lab script would do, written plainly but not wastefully: one subject
  at a time with its own ``numpy.random.default_rng(seed)``, its sessions in order with
  the state carried over, a Python loop over integration steps with numpy vector
  operations over the 160 + 40 units: the same equations, step, settling, Poisson spikes,
  indicator rise and decay, bleaching, neuropil and shot noise as ``run_sessions``. It is
  timed on ``--ref-subjects`` (2) x ``--ref-sessions`` (1) subject-sessions of
  ``--ref-minutes`` (default: ``--minutes``, so no length scaling) with the workload's
  coupling and drive, and extrapolated linearly to the workload. If ``--ref-minutes`` is
  shorter, its rate is scaled by imaged minutes; the 5 s of settling then weighs more and
  the reference looks slightly slower than it is.
- Like for like: both sides simulate ``--check-subjects`` (16) subjects x one session of
  ``--check-minutes`` (3) at coupling 1 and drive 1 (different seeds; the random streams
  differ, ketasim's per-subject xoroshiro128+ with ziggurat normals against numpy's
  ``Generator``, so agreement is
  statistical). Per session: mean raw fluorescence; neuropil-corrected fluorescence
  (F - 0.7 F_np) turned into dF/F against each cell's 10th percentile, its mean; the
  fraction of frames with the population-mean dF/F above 0.5 and the number of upward
  crossings of 0.5 per minute (population events); the mean excitatory rate (ketasim's
  ``run_sessions_rate``, the same kernel, for this check only). Mean +- standard error
  over subjects; a warning if a mean differs by more than 15%.
- Peak memory: the process's maximum resident set size (``ru_maxrss``). Target: >= 10x
  the reference. The last line is ``speedup: <ratio>`` (ketasim subject-minutes per s /
  reference subject-minutes per s).

Run: ``.venv/bin/python benchmarks/bench_circuit.py`` (about 1 min on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import ketasim

# numba's cache folder: set before numba and the jitted modules are imported
ketasim.configure()

import numba
import numpy as np

from ketasim.circuit.network import CircuitParams, run_sessions, run_sessions_rate
from ketasim.params import load_registry

FRAME_RATE_HZ = 30.0
N_CELLS = 60
EVENT_DFF = 0.5  # population-mean dF/F counted as an ensemble event (like-for-like check)
ISSUE_SUBJECT_MINUTES = 100 * 10 * 10.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reference_subject(v: dict, coupling, drive, n_frames: int, seed: int,
                      n_cells: int = N_CELLS):
    """One subject's sessions as a plain numpy loop (the lab script). Yields, per session,
    raw fluorescence and neuropil (cells, frames) float32 and the excitatory population
    rate at each frame (frames,), as ``run_sessions_rate`` writes them."""
    rng = np.random.default_rng(seed)
    ne, ni = int(v["n_exc"]), int(v["n_inh"])
    frame_dt = 1.0 / FRAME_RATE_HZ
    n_sub_steps = max(1, math.ceil(frame_dt / v["dt_s"]))
    dt = frame_dt / n_sub_steps
    ae, ai, aa = dt / v["tau_e_s"], dt / v["tau_i_s"], dt / v["tau_a_s"]
    se, si = v["noise_sd"] * math.sqrt(2.0 * ae), v["noise_sd"] * math.sqrt(2.0 * ai)
    dec, rise = math.exp(-dt / v["tau_decay_s"]), dt / v["tau_rise_s"]
    rmax, theta, kappa = v["r_max_hz"], v["theta"], v["kappa"]
    g_adapt, w_ei, w_ie, w_ii, b_inh = (v["g_adapt"], v["w_ei"], v["w_ie"], v["w_ii"],
                                        v["bias_inh"])
    dff, npf, shot = v["dff_per_spike"], v["neuropil_factor"], v["shot_noise"]
    ksig = v["indegree_sigma"]
    # the subject: in-degree factors, tonic inputs, resting brightness of the imaged cells
    k = np.exp(ksig * rng.standard_normal(ne) - 0.5 * ksig ** 2)
    b = v["bias_mean"] + v["bias_sd"] * rng.standard_normal(ne)
    f0 = np.exp(v["f0_log_sd"] * rng.standard_normal(n_cells))
    u, a, r = np.zeros(ne), np.zeros(ne), np.zeros(ne)
    vi, ri = np.zeros(ni), np.zeros(ni)
    c, fl = np.zeros(n_cells), np.zeros(n_cells)
    n_settle = round(v["settle_s"] / dt)
    for coupling_q, drive_q in zip(coupling, drive):
        jc = v["j_ee"] * coupling_q
        ext = v["g_act"] * (drive_q - 1.0)
        raw = np.empty((n_cells, n_frames), np.float32)
        neuropil = np.empty((n_cells, n_frames), np.float32)
        rate = np.empty(n_frames, np.float32)
        for step in range(n_settle + n_frames * n_sub_steps):
            re, rim = r.mean(), ri.mean()
            u += ae * (jc * k * re - w_ei * rim + b + ext - a - u) + \
                se * rng.standard_normal(ne)
            r = rmax / (1.0 + np.exp(-(u - theta) / kappa))
            a += aa * (g_adapt * r / rmax - a)
            vi += ai * (w_ie * re - w_ii * rim + b_inh - vi) + si * rng.standard_normal(ni)
            ri = rmax / (1.0 + np.exp(-(vi - theta) / kappa))
            if step < n_settle:
                continue
            c = c * dec + rng.poisson(r[:n_cells] * dt)
            fl += rise * (c - fl)
            rel = step - n_settle + 1
            if rel % n_sub_steps == 0:
                fr = rel // n_sub_steps - 1
                bleach = math.exp(-fr * frame_dt / v["bleach_tau_s"])
                npl = v["neuropil_level"] * (1.0 + dff * v["neuropil_rate_gain"] * re * v["tau_decay_s"])
                neu = npl * bleach * (1.0 + v["neuropil_noise"]
                                   * rng.standard_normal(n_cells))
                f = f0 * (1.0 + dff * fl) * bleach + npf * neu
                raw[:, fr] = f + shot * np.sqrt(np.maximum(f, 1e-9)) * \
                    rng.standard_normal(n_cells)
                neuropil[:, fr] = neu
                rate[fr] = re
        yield raw, neuropil, rate


def session_stats(raw: np.ndarray, neuropil: np.ndarray, rate: np.ndarray,
                  neuropil_factor: float) -> dict[str, float]:
    """Summary statistics of one session (cells, frames), as an analysis script would."""
    fc = raw.astype(np.float64) - neuropil_factor * neuropil
    f0 = np.percentile(fc, 10, axis=1, keepdims=True)
    dff = (fc - f0) / f0
    pop = dff.mean(axis=0)
    above = pop > EVENT_DFF
    minutes = raw.shape[1] / FRAME_RATE_HZ / 60.0
    return {
        "mean fluorescence F": float(raw.mean()),
        "mean dF/F (neuropil-corrected)": float(dff.mean()),
        f"frames with pop. dF/F > {EVENT_DFF:g}": float(above.mean()),
        "pop. events per min": float(np.count_nonzero(above[1:] & ~above[:-1]) / minutes),
        "mean excitatory rate (Hz)": float(rate.mean()),
    }


def mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=10.0, help="imaged minutes per session")
    ap.add_argument("--chunk", type=int, default=4, help="subjects per ketasim call")
    ap.add_argument("--ref-subjects", type=int, default=2)
    ap.add_argument("--ref-sessions", type=int, default=1, help="sessions per ref. subject")
    ap.add_argument("--ref-minutes", type=float, default=None,
                    help="minutes per reference session (default: --minutes)")
    ap.add_argument("--check-subjects", type=int, default=16)
    ap.add_argument("--check-minutes", type=float, default=3.0)
    args = ap.parse_args(argv)
    ref_minutes = args.minutes if args.ref_minutes is None else args.ref_minutes
    if args.ref_subjects > args.subjects or args.ref_sessions > args.sessions:
        ap.error("the reference sample must be part of the workload")

    cp = CircuitParams.from_registry(load_registry())
    p, v = cp.vector(), cp.values
    n_sub, n_sess = args.subjects, args.sessions
    n_frames = round(args.minutes * 60 * FRAME_RATE_HZ)
    g = np.random.default_rng(5)
    coupling = g.uniform(0.6, 1.1, (n_sub, n_sess))
    drive = g.uniform(0.65, 1.2, (n_sub, n_sess))
    seeds = np.arange(n_sub, dtype=np.int64) + 1000
    subject_minutes = n_sub * n_sess * args.minutes
    print(f"workload: {n_sub} subjects x {n_sess} sessions x {args.minutes:g} min at "
          f"{FRAME_RATE_HZ:g} Hz = {subject_minutes:g} subject-minutes; {N_CELLS} imaged "
          f"cells, {int(v['n_exc'])}+{int(v['n_inh'])} units, dt "
          f"{1 / FRAME_RATE_HZ / math.ceil(1 / FRAME_RATE_HZ / v['dt_s']) * 1e3:.2f} ms; "
          f"{numba.get_num_threads()} numba threads")

    # ---- ketasim: first call (compilation or cache load) untimed, then the workload
    t = time.perf_counter()
    tiny = np.zeros((1, 1, N_CELLS, 30), np.float32)
    run_sessions(p, coupling[:1, :1].copy(), drive[:1, :1].copy(), 30, FRAME_RATE_HZ,
                 N_CELLS, seeds[:1], tiny, tiny.copy())
    t_first = time.perf_counter() - t
    m = min(args.chunk, n_sub)
    raw = np.zeros((m, n_sess, N_CELLS, n_frames), np.float32)
    neuropil = np.zeros_like(raw)
    mean_f = np.zeros((n_sub, n_sess))
    mean_np = np.zeros((n_sub, n_sess))
    t = time.perf_counter()
    for s0 in range(0, n_sub, m):
        k = min(m, n_sub - s0)
        run_sessions(p, np.ascontiguousarray(coupling[s0:s0 + k]),
                     np.ascontiguousarray(drive[s0:s0 + k]), n_frames, FRAME_RATE_HZ,
                     N_CELLS, seeds[s0:s0 + k], raw[:k], neuropil[:k])
        mean_f[s0:s0 + k] = raw[:k].mean(axis=(2, 3))
        mean_np[s0:s0 + k] = neuropil[:k].mean(axis=(2, 3))
    ks_s = time.perf_counter() - t
    ks_rate = subject_minutes / ks_s
    del raw, neuropil
    print(f"ketasim: {ks_s:.1f} s, {ks_rate:.1f} subject-minutes/s (chunks of {m} "
          f"subjects, buffers {2 * m * n_sess * N_CELLS * n_frames * 4 / 1e6:.0f} MB); "
          f"first call (compile or cache load) {t_first:.2f} s, not timed")
    print(f"  per-session mean F {mean_f.mean():.4f} (range {mean_f.min():.3f}-"
          f"{mean_f.max():.3f}); correlation with coupling "
          f"{np.corrcoef(mean_f.ravel(), coupling.ravel())[0, 1]:+.2f}, with drive "
          f"{np.corrcoef(mean_f.ravel(), drive.ravel())[0, 1]:+.2f}; mean neuropil "
          f"{mean_np.mean():.4f}")

    # ---- reference: a sample of the workload's subject-sessions, extrapolated
    rf = round(ref_minutes * 60 * FRAME_RATE_HZ)
    ref_mean_f = []
    t = time.perf_counter()
    for s in range(args.ref_subjects):
        for raw_q, _, _ in reference_subject(v, coupling[s, :args.ref_sessions],
                                             drive[s, :args.ref_sessions], rf,
                                             int(seeds[s])):
            ref_mean_f.append(float(raw_q.mean()))
    ref_timed = time.perf_counter() - t
    ref_sample = args.ref_subjects * args.ref_sessions * ref_minutes
    ref_rate = ref_sample / ref_timed
    ref_s = subject_minutes / ref_rate
    scaled = "" if ref_minutes == args.minutes else \
        f", scaled from {ref_minutes:g}-min to {args.minutes:g}-min sessions"
    print(f"reference (per-subject numpy loop): {ref_rate:.3f} subject-minutes/s; timed "
          f"{args.ref_subjects} subjects x {args.ref_sessions} sessions x {ref_minutes:g} "
          f"min ({ref_timed:.1f} s), extrapolated linearly to the workload: {ref_s:.0f} s"
          f"{scaled}")
    print(f"  its sessions' mean F {np.round(ref_mean_f, 3).tolist()} vs ketasim's "
          f"{np.round(mean_f[:args.ref_subjects, :args.ref_sessions].ravel(), 3).tolist()}"
          " (same coupling and drive, different streams)")
    print(f"projected to the issue's 100 x 10 x 10 min ({ISSUE_SUBJECT_MINUTES:g} "
          f"subject-minutes): ketasim {ISSUE_SUBJECT_MINUTES / ks_rate:.0f} s, reference "
          f"{ISSUE_SUBJECT_MINUTES / ref_rate / 3600:.1f} h")

    # ---- like for like: coupling 1, drive 1
    n_chk = args.check_subjects
    cf = round(args.check_minutes * 60 * FRAME_RATE_HZ)
    kf = np.zeros((n_chk, 1, N_CELLS, cf), np.float32)
    kn = np.zeros_like(kf)
    kr = np.zeros((n_chk, 1, cf), np.float32)
    run_sessions_rate(p, np.ones((n_chk, 1)), np.ones((n_chk, 1)), cf, FRAME_RATE_HZ,
                      N_CELLS, np.arange(n_chk, dtype=np.int64) + 7, kf, kn, kr)
    npf = v["neuropil_factor"]
    ks_stats = [session_stats(kf[i, 0], kn[i, 0], kr[i, 0], npf) for i in range(n_chk)]
    del kf, kn
    ref_stats = [session_stats(*next(reference_subject(v, [1.0], [1.0], cf, 50 + i)), npf)
                 for i in range(n_chk)]
    print(f"like for like (coupling 1, drive 1; {n_chk} subjects x {args.check_minutes:g} "
          "min per side; mean +- s.e. over subjects):")
    warnings = []
    for name in ks_stats[0]:
        a, sa = mean_se([x[name] for x in ks_stats])
        b, sb = mean_se([x[name] for x in ref_stats])
        diff = (b - a) / a if a else float("nan")
        print(f"  {name:34s} ketasim {a:8.4f} +- {sa:.4f}   reference {b:8.4f} +- "
              f"{sb:.4f}   ({100 * diff:+.1f}%)")
        if not abs(diff) <= 0.15:
            warnings.append(name)
    for name in warnings:
        print(f"WARNING: {name} differs by more than 15% between the two sides")
    if not warnings:
        print("  all within 15%")

    ratio = ks_rate / ref_rate
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    print(f"ketasim {ks_rate:.1f} vs reference {ref_rate:.3f} subject-minutes/s; target "
          f">= 10x: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x)")
    print(f"speedup: {ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main()
