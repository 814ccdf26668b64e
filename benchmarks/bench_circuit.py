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
- Like for like: both sides simulate ``--check-subjects`` (64; 16 before the assemblies,
  whose gains drawn per subject spread the statistics between subjects, so 16 left a
  15% band at about 1.5 standard errors) subjects x one session of
  ``--check-minutes`` (3) at coupling 1 and drive 1 (different seeds; the random streams
  differ, ketasim's per-subject xoroshiro128+ with ziggurat normals against numpy's
  ``Generator``, so agreement is
  statistical). Per session: mean raw fluorescence; neuropil-corrected fluorescence
  (F - 0.7 F_np) turned into dF/F against each cell's 10th percentile, its mean; the
  fraction of frames with the population-mean dF/F above 0.5 and the number of upward
  crossings of 0.5 per minute (population events); the mean excitatory rate (ketasim's
  ``run_sessions_rate``, the same kernel, for this check only). Mean +- standard error
  over subjects; a warning if a mean differs by more than 15%.
- Brian2 (``brian2_circuit.py``, when ``benchmarks/.brian2-venv`` exists: ``make
  bench-brian2-venv``, Brian2 2.11.0 on Python 3.13 with numpy 2.4, see
  ``brian2-requirements.txt``; ``--no-brian2`` skips it): the same equations, step,
  settling and imaging, all ``--brian2-subjects`` (default: the workload's) subjects in
  one network, for ``--brian2-sessions`` (1) sessions of ``--brian2-minutes`` (default:
  ``--minutes``) with the workload's coupling and drive, once per code generation target
  (``--brian2-targets``: ``numpy``, the runtime mode, and ``cython``), in a subprocess.
  Timed: every session's ``run()`` calls; not timed: importing Brian2, building the
  network, code generation and (cython, cold cache) compilation. Extrapolated linearly
  to the workload; target >= 10x the numpy target. Then ``--brian2-check-subjects``
  (default: ``--check-subjects``) subjects x ``--check-minutes`` at coupling 1 and
  drive 1 against ketasim's like-for-like subjects, with two more statistics of the
  population rate (``circuit_stats``). Printed: ``speedup vs brian2: <ratio>`` (numpy
  target) and ``speedup vs brian2 cython: <ratio>``.
- Peak memory: the process's maximum resident set size (``ru_maxrss``). Target: >= 10x
  the reference. The last line is ``speedup: <ratio>`` (ketasim subject-minutes per s /
  reference subject-minutes per s).

Figures (2026-12-05, twelfth session, 2 cores, default workload, idle machine): ketasim
146.6 subject-minutes/s (13.6 s; 140.0 in a run a few minutes earlier); the numpy
reference 4.07 subject-minutes/s, **speedup 36.0** (34.4); Brian2 2.11.0 numpy target
9.53 subject-minutes/s (**15.4x**), cython 12.52 (11.7x); every like-for-like statistic
within 7% of both references.

Run: ``.venv/bin/python benchmarks/bench_circuit.py`` (about 1 min on 2 cores; about 3
min with Brian2, of which about 40 s generating and compiling its cython code).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import time
from pathlib import Path

import ketasim

# numba's cache folder: set before numba and the jitted modules are imported
ketasim.configure()

import numba
import numpy as np
from circuit_stats import FRAME_RATE_HZ, assembly_blocks, mean_se, rate_stats, session_stats

from ketasim.circuit.network import CircuitParams, run_sessions, run_sessions_rate
from ketasim.params import load_registry

N_CELLS = 60
ISSUE_SUBJECT_MINUTES = 100 * 10 * 10.0
HERE = Path(__file__).resolve().parent
BRIAN2_PYTHON = HERE / ".brian2-venv" / "bin" / "python"  # make bench-brian2-venv


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
    # the noise step that keeps noise_sd the stationary SD (as run_sessions since 2026-12-07)
    se = v["noise_sd"] * math.sqrt(ae * (2.0 - ae))
    si = v["noise_sd"] * math.sqrt(ai * (2.0 - ai))
    dec, rise = math.exp(-dt / v["tau_decay_s"]), -math.expm1(-dt / v["tau_rise_s"])
    rmax, theta, kappa = v["r_max_hz"], v["theta"], v["kappa"]
    g_adapt, w_ei, w_ie, w_ii, b_inh = (v["g_adapt"], v["w_ei"], v["w_ie"], v["w_ii"],
                                        v["bias_inh"])
    dff, npf, shot = v["dff_per_spike"], v["neuropil_factor"], v["shot_noise"]
    ksig = v["indegree_sigma"]
    # the subject: in-degree factors, tonic inputs, resting brightness of the imaged cells
    k = np.exp(ksig * rng.standard_normal(ne) - 0.5 * ksig ** 2)
    b = v["bias_mean"] + v["bias_sd"] * rng.standard_normal(ne)
    # assemblies: contiguous blocks of units, each with its own recurrent gain; the
    # imaged cells taken from the blocks in turn (as run_sessions lays them out)
    m = int(v["n_assemblies"])
    start, member, img = assembly_blocks(ne, m, n_cells)
    kg = k * np.exp(v["assembly_gain_sd"] * rng.standard_normal(m))[member]
    leak = v["assembly_leak"]
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
            ra = np.add.reduceat(r, start[:-1]) / np.diff(start)
            rec = jc * ((1.0 - leak) * ra[member] + leak * re)
            u += ae * (rec * kg - w_ei * rim + b + ext - a - u) + \
                se * rng.standard_normal(ne)
            r = rmax / (1.0 + np.exp(-(u - theta) / kappa))
            a += aa * (g_adapt * r / rmax - a)
            vi += ai * (w_ie * re - w_ii * rim + b_inh - vi) + si * rng.standard_normal(ni)
            ri = rmax / (1.0 + np.exp(-(vi - theta) / kappa))
            c = c * dec + rng.poisson(r[img] * dt)  # the indicator runs through the settle
            fl += rise * (c - fl)
            if step < n_settle:
                continue
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


def compare_table(left: list[dict], right: list[dict], right_name: str) -> list[str]:
    """Prints mean +- s.e. over subjects of each statistic, ketasim (``left``) against
    ``right``; warns about, and returns, those more than 15% apart."""
    warnings = []
    for name in left[0]:
        a, sa = mean_se([x[name] for x in left])
        b, sb = mean_se([x[name] for x in right])
        diff = (b - a) / a if a else float("nan")
        print(f"  {name:34s} ketasim {a:8.4f} +- {sa:.4f}   {right_name} {b:8.4f} +- "
              f"{sb:.4f}   ({100 * diff:+.1f}%)")
        if not abs(diff) <= 0.15:
            warnings.append(name)
    for name in warnings:
        print(f"WARNING: {name} differs by more than 15% between the two sides")
    if not warnings:
        print("  all within 15%")
    return warnings


def run_brian2(python: Path, job: dict) -> dict:
    """One job of ``brian2_circuit.py`` under Brian2's interpreter; its JSON result.
    RuntimeError (with the end of its stderr) if it fails."""
    proc = subprocess.run([str(python), str(HERE / "brian2_circuit.py"), "-"],
                          input=json.dumps(job), capture_output=True, text=True,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: " + " | ".join(err))
    return json.loads(lines[-1])


def brian2_comparison(args, v: dict, coupling, drive, seeds, ks_rate: float, mean_f,
                      ks_chk: list[dict]) -> None:
    """Times Brian2 (each ``--brian2-targets``) on a sample of the workload, scales it
    linearly to the workload like the reference, and compares the like-for-like
    statistics. Prints why if Brian2 cannot run, never raises."""
    bs = args.subjects if args.brian2_subjects is None else args.brian2_subjects
    bq = args.brian2_sessions
    bm = args.minutes if args.brian2_minutes is None else args.brian2_minutes
    params = {k: float(x) for k, x in v.items()}
    subject_minutes = args.subjects * args.sessions * args.minutes
    rates = {}
    header = False
    for target in args.brian2_targets.split(","):
        job = {"params": params, "target": target, "coupling": coupling[:bs, :bq].tolist(),
               "drive": drive[:bs, :bq].tolist(), "seeds": seeds[:bs].tolist(),
               "minutes": bm, "n_cells": N_CELLS, "frame_rate_hz": FRAME_RATE_HZ}
        try:
            out = run_brian2(args.brian2_python, job)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"Brian2 ({target}) unavailable: {e}")
            continue
        if not header:
            scaled = "" if bm == args.minutes else \
                f", scaled from {bm:g}-min to {args.minutes:g}-min sessions"
            print(f"Brian2 {out['brian2']} (numpy {out['numpy']}, its own venv): {bs} "
                  f"subjects in one network x {bq} sessions x {bm:g} min per code generation "
                  f"target, extrapolated linearly to the workload{scaled}; importing Brian2 "
                  f"({out['import_s']:.1f} s) not counted")
            header = True
        rate = out["subject_minutes_per_s"]
        rates[target] = rate
        mode = " (runtime mode)" if target == "numpy" else ""
        compiled = " and compiled (cold cache)" if target == "cython" else ""
        print(f"  {target}{mode}: {rate:.3f} subject-minutes/s; simulated in "
              f"{out['sim_s']:.1f} s (of which Brian2's preparation of each run(), "
              f"{out['run_setup_s']:.2f} s x {2 * bq}); before it, not timed: network built "
              f"in {out['build_s']:.1f} s and code generated{compiled} in "
              f"{out['codegen_s']:.1f} s; peak RSS {out['peak_rss_mb']:.0f} MB; "
              f"workload {subject_minutes / rate:.0f} s, the issue's "
              f"{ISSUE_SUBJECT_MINUTES / rate / 60:.0f} min")
        print(f"    its sessions' mean F {np.round(out['mean_f'][:2], 3).ravel().tolist()} vs "
              f"ketasim's {np.round(mean_f[:2, :bq], 3).ravel().tolist()} (same coupling and "
              "drive, different streams)")
    if not rates:
        return
    for target, rate in rates.items():
        r = ks_rate / rate
        runtime = target == "numpy"
        print(f"ketasim {ks_rate:.1f} vs Brian2 {target} {rate:.3f} subject-minutes/s"
              + (f"; target >= 10x: {'met' if r >= 10 else 'NOT met'}" if runtime else ""))
        print(f"speedup vs brian2{'' if runtime else ' ' + target}: {r:.1f}")

    n_chk = args.check_subjects if args.brian2_check_subjects is None else \
        args.brian2_check_subjects
    target = "numpy" if "numpy" in rates else next(iter(rates))
    job = {"params": params, "target": target, "coupling": [[1.0]] * n_chk,
           "drive": [[1.0]] * n_chk, "seeds": list(range(90, 90 + n_chk)),
           "minutes": args.check_minutes, "n_cells": N_CELLS,
           "frame_rate_hz": FRAME_RATE_HZ, "stats": True}
    try:
        out = run_brian2(args.brian2_python, job)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"Brian2 like-for-like check failed: {e}")
        return
    print(f"like for like with Brian2 ({target}; coupling 1, drive 1; ketasim "
          f"{len(ks_chk)}, Brian2 {n_chk} subjects x {args.check_minutes:g} min; mean +- "
          "s.e. over subjects):")
    compare_table(ks_chk, out["stats"], "Brian2   ")


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
    ap.add_argument("--check-subjects", type=int, default=64)
    ap.add_argument("--check-minutes", type=float, default=3.0)
    ap.add_argument("--brian2", action=argparse.BooleanOptionalAction, default=None,
                    help="also time Brian2 (default: if its venv exists)")
    ap.add_argument("--brian2-python", type=Path, default=BRIAN2_PYTHON,
                    help="Brian2's interpreter (default: benchmarks/.brian2-venv)")
    ap.add_argument("--brian2-targets", default="numpy,cython",
                    help="Brian2 code generation targets, comma-separated")
    ap.add_argument("--brian2-subjects", type=int, default=None,
                    help="subjects in the Brian2 sample, one network (default: all)")
    ap.add_argument("--brian2-sessions", type=int, default=1)
    ap.add_argument("--brian2-minutes", type=float, default=None,
                    help="minutes per Brian2 session (default: --minutes)")
    ap.add_argument("--brian2-check-subjects", type=int, default=None,
                    help="Brian2 subjects in the like-for-like check (default: "
                    "--check-subjects)")
    args = ap.parse_args(argv)
    ref_minutes = args.minutes if args.ref_minutes is None else args.ref_minutes
    if args.ref_subjects > args.subjects or args.ref_sessions > args.sessions:
        ap.error("the reference sample must be part of the workload")
    if (args.brian2_subjects or 0) > args.subjects or args.brian2_sessions > args.sessions:
        ap.error("the Brian2 sample must be part of the workload")

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
    compare_table(ks_stats, ref_stats, "reference")

    # ---- Brian2 (its own venv, a subprocess): the same sample-and-scale protocol
    if args.brian2 is False:
        print("Brian2: not run (--no-brian2)")
    elif not args.brian2_python.exists():
        print(f"Brian2: unavailable, not run (no interpreter at {args.brian2_python}; "
              "`make bench-brian2-venv` creates it)")
    else:
        ks_chk = [{**x, **rate_stats(kr[i, 0])} for i, x in enumerate(ks_stats)]
        brian2_comparison(args, v, coupling, drive, seeds, ks_rate, mean_f, ks_chk)

    ratio = ks_rate / ref_rate
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    print(f"ketasim {ks_rate:.1f} vs reference {ref_rate:.3f} subject-minutes/s; target "
          f">= 10x: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x)")
    print(f"speedup: {ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main()
