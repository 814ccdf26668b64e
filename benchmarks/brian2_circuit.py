"""ketasim's prefrontal rate network with calcium imaging (``ketasim/circuit/network.py``)
written in Brian2, for ``bench_circuit.py --brian2``.

A standalone script for Brian2's own virtual environment (``make bench-brian2-venv``):
Brian2 2.11.0, the newest release, requires Python >= 3.13 (2.10 >= 3.12) while the
project runs on 3.11, and 2.9.0, the newest for 3.11, fails to import with the project's
numpy 2.4 (``brian2-requirements.txt``), so it cannot share the project's venv. It reads one JSON job (a file named on argv, or stdin
when the argument is ``-`` or missing) and writes one JSON object to stdout::

    benchmarks/.brian2-venv/bin/python benchmarks/brian2_circuit.py job.json

The job: ``params`` (the registry's ``circuit.*`` values without the prefix, as
``CircuitParams.values``), ``coupling`` and ``drive`` (n_sub x n_sess lists), ``seeds``
(n_sub: each subject's in-degrees, biases and resting brightness, drawn with
``numpy.random.default_rng(seed)`` as the numpy reference does), ``minutes`` (imaged
minutes per session), optional ``target`` (Brian2 code generation target: ``numpy``,
the default and the issue's "runtime mode", or ``cython``), ``n_cells`` (60),
``frame_rate_hz`` (30), ``brian2_seed`` (Brian2's noise and Poisson streams, 1),
``stats`` (also return each subject-session's statistics, ``circuit_stats``).

The model, as ketasim's kernel, for all subjects in one network:

- ``exc``: n_sub x n_exc rate units, ``tau_e du/dt = -u + J C k_i R_e - w_ei R_i + b_i +
  g_act (A - 1) - a_i + noise``, ``r = r_max / (1 + exp(-(u - theta) / kappa))``,
  ``tau_a da/dt = -a + g_a r / r_max``; ``inh``: n_sub x n_inh units, ``tau_i dv/dt = -v +
  w_ie R_e - w_ii R_i + b_inh + noise``. ``u`` and ``v`` are integrated by Brian2's
  ``euler`` state updater (Euler-Maruyama for the additive noise ``xi``) at ketasim's
  step, the frame interval divided by ceil(frame interval / ``dt_s``); the adaptation,
  as in ketasim's kernel, by an Euler step driven by the rate just updated (a
  ``run_regularly`` after the state updater: ``a += dt / tau_a (g_a r / r_max - a)``).
- The mean-field coupling: ``pool`` holds one R_e and R_i per subject, summed variables
  of two ``Synapses`` (every unit onto its subject's pool neuron, ``r_pre / n``); the
  units read them back as linked variables. Brian2 updates summed variables just before
  their target group, so each step starts from the population rates of the step before,
  as in ketasim.
- ``cells``: the first ``n_cells`` excitatory units of each subject, their rate read
  through a linked ``u``; a ``run_regularly`` after the state updaters draws their spikes
  (``c = c * exp(-dt / tau_decay) + poisson(r dt)``) and filters them (``fl += (1 -
  exp(-dt / tau_rise)) (c - fl)``); a second one, once per frame at the end of its last step,
  computes neuropil (rate-dependent level, bleaching, multiplicative noise) and
  fluorescence (``F0 (1 + dff f) bleach + 0.7 neuropil`` plus shot noise), recorded by
  ``StateMonitor`` with the subject's population rate at the start of that step.
- Sessions in order with the state carried over; before each, ``settle_s`` of activity
  with the indicator running but not recorded, then the imaged minutes.

Differences from ketasim's kernel, none of them in the statistics: before the first
step the rates are those of u = v = 0 (ketasim: zero), 5 s of settling earlier; settling
is rounded up to keep the frame clock on the last step of each frame (the first session
settles one step longer); the subject's units are drawn as the numpy reference draws
them (all in-degrees, then all biases); the random streams differ (Brian2's numpy or
Cython generators).

Reported (seconds, from ``time.perf_counter``): ``import_s`` (importing Brian2),
``build_s`` (creating groups, synapses and monitors), ``codegen_s`` (the first
zero-length run: code generation, and for ``cython`` compilation into a fresh cache
folder, so cold), ``sim_s`` (every session's runs: the simulation and Brian2's
per-run preparation, ``run_setup_s`` each), and per subject-session the mean
fluorescence, neuropil and excitatory rate (``mean_f``, ``mean_np``, ``mean_rate``).
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import tempfile
import time


def peak_rss_mb() -> float:
    """This process's peak resident set size. VmHWM where there is /proc: ``ru_maxrss``
    of a child started by fork and exec may carry its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str]) -> dict:
    path = argv[1] if len(argv) > 1 else "-"
    if path == "-":
        job = json.load(sys.stdin)
    else:
        with open(path) as f:
            job = json.load(f)
    t = time.perf_counter()
    import brian2 as b2
    import numpy as np
    import_s = time.perf_counter() - t

    from circuit_stats import assembly_blocks, rate_stats, session_stats

    v = job["params"]
    coupling = np.asarray(job["coupling"], float)
    drive = np.asarray(job["drive"], float)
    seeds = [int(s) for s in job["seeds"]]
    n_sub, n_sess = coupling.shape
    target = job.get("target", "numpy")
    nc = int(job.get("n_cells", 60))
    frame_rate = float(job.get("frame_rate_hz", 30.0))
    ne, ni = int(v["n_exc"]), int(v["n_inh"])
    frame_dt = 1.0 / frame_rate
    n_sub_steps = max(1, math.ceil(frame_dt / v["dt_s"]))
    dt = frame_dt / n_sub_steps
    n_frames = round(job["minutes"] * 60 * frame_rate)
    n_settle = round(v["settle_s"] / dt)

    b2.prefs.codegen.target = target
    b2.prefs.logging.file_log = False
    cache = None
    if target == "cython":  # a fresh cache: codegen_s includes the compilation
        cache = tempfile.TemporaryDirectory(prefix="brian2-cython-")
        b2.prefs.codegen.runtime.cython.cache_dir = cache.name
    b2.seed(int(job.get("brian2_seed", 1)))
    b2.defaultclock.dt = dt * b2.second
    s = b2.second
    ns = {
        "tau_e": v["tau_e_s"] * s, "tau_i": v["tau_i_s"] * s,
        # Euler-Maruyama's step gives the OU the SD noise_sd / sqrt(1 - dt / 2 tau); these
        # make it noise_sd, as ketasim's step does (since 2026-12-07)
        "noise_e": v["noise_sd"] * math.sqrt(1.0 - dt / (2.0 * v["tau_e_s"])),
        "noise_i": v["noise_sd"] * math.sqrt(1.0 - dt / (2.0 * v["tau_i_s"])),
        "r_max": v["r_max_hz"], "theta": v["theta"],
        "kappa": v["kappa"], "g_adapt": v["g_adapt"], "w_ei": v["w_ei"], "w_ie": v["w_ie"],
        "w_ii": v["w_ii"], "b_inh": v["bias_inh"], "n_exc": ne, "n_inh": ni,
        "dt_step": dt, "aa": dt / v["tau_a_s"], "dec": math.exp(-dt / v["tau_decay_s"]),
        "rise": -math.expm1(-dt / v["tau_rise_s"]), "tau_bleach": v["bleach_tau_s"] * s,
        "dff": v["dff_per_spike"], "npf": v["neuropil_factor"],
        "npl0": v["neuropil_level"], "np_gain": v["neuropil_rate_gain"],
        "tau_dec": v["tau_decay_s"], "np_noise": v["neuropil_noise"],
        "shot": v["shot_noise"], "leak": v["assembly_leak"],
    }
    # assemblies: contiguous blocks of each subject's units (as run_sessions lays them
    # out), the imaged cells taken from the blocks in turn
    n_asm = int(v["n_assemblies"])
    start, member, img = assembly_blocks(ne, n_asm, nc)

    t = time.perf_counter()
    exc = b2.NeuronGroup(n_sub * ne, """
        du/dt = (jc*kg*((1 - leak)*Ra + leak*Re) - w_ei*Ri + b + ext - a - u)/tau_e + noise_e*sqrt(2/tau_e)*xi_e : 1
        a : 1
        r = r_max/(1 + exp(-(u - theta)/kappa)) : 1
        kg : 1 (constant)
        b : 1 (constant)
        jc : 1
        ext : 1
        Ra : 1 (linked)
        Re : 1 (linked)
        Ri : 1 (linked)
        """, method="euler", namespace=ns, name="exc")
    # ketasim's adaptation step: after the state updater, from the rate it just updated
    exc.run_regularly("a += aa*(g_adapt*r/r_max - a)", when="groups", order=1,
                      name="adapt")
    inh = b2.NeuronGroup(n_sub * ni, """
        dv/dt = (w_ie*Re - w_ii*Ri + b_inh - v)/tau_i + noise_i*sqrt(2/tau_i)*xi_i : 1
        ri = r_max/(1 + exp(-(v - theta)/kappa)) : 1
        Re : 1 (linked)
        Ri : 1 (linked)
        """, method="euler", namespace=ns, name="inh")
    pool = b2.NeuronGroup(n_sub, "Re : 1\nRi : 1", namespace=ns, name="pool")
    syn_e = b2.Synapses(exc, pool, "Re_post = r_pre/n_exc : 1 (summed)", namespace=ns,
                        name="syn_e")
    syn_e.connect(i=np.arange(n_sub * ne), j=np.arange(n_sub * ne) // ne)
    syn_i = b2.Synapses(inh, pool, "Ri_post = ri_pre/n_inh : 1 (summed)", namespace=ns,
                        name="syn_i")
    syn_i.connect(i=np.arange(n_sub * ni), j=np.arange(n_sub * ni) // ni)
    asm = b2.NeuronGroup(n_sub * n_asm, "Ra : 1", namespace=ns, name="asm")
    syn_a = b2.Synapses(exc, asm, "w : 1 (constant)\nRa_post = w*r_pre : 1 (summed)",
                        namespace=ns, name="syn_a")
    unit_asm = (np.arange(n_sub)[:, None] * n_asm + member[None, :]).ravel()
    syn_a.connect(i=np.arange(n_sub * ne), j=unit_asm)
    syn_a.w = 1.0 / np.diff(start)[np.tile(member, n_sub)]
    subj_e = np.repeat(np.arange(n_sub), ne)
    subj_i = np.repeat(np.arange(n_sub), ni)
    exc.Ra = b2.linked_var(asm, "Ra", index=unit_asm)
    exc.Re = b2.linked_var(pool, "Re", index=subj_e)
    exc.Ri = b2.linked_var(pool, "Ri", index=subj_e)
    inh.Re = b2.linked_var(pool, "Re", index=subj_i)
    inh.Ri = b2.linked_var(pool, "Ri", index=subj_i)

    cells = b2.NeuronGroup(n_sub * nc, """
        u : 1 (linked)
        r = r_max/(1 + exp(-(u - theta)/kappa)) : 1
        Re : 1 (linked)
        c : 1
        fl : 1
        f0 : 1 (constant)
        F : 1
        neu : 1
        t_frame0 : second (shared)
        """, namespace=ns, name="cells")
    imaged = (np.arange(n_sub)[:, None] * ne + img[None, :]).ravel()
    cells.u = b2.linked_var(exc, "u", index=imaged)
    cells.Re = b2.linked_var(pool, "Re", index=np.repeat(np.arange(n_sub), nc))
    # the indicator, always on (through the settle too)
    cells.run_regularly("""
        c = c*dec + poisson(r*dt_step)
        fl += rise*(c - fl)
        """, when="groups", order=1, name="calcium")
    frame = cells.run_regularly("""
        bleach = exp(-(t - t_frame0)/tau_bleach)
        neu = npl0*(1 + dff*np_gain*Re*tau_dec)*bleach*(1 + np_noise*randn())
        F = f0*(1 + dff*fl)*bleach + npf*neu
        F += shot*sqrt(clip(F, 1e-9, inf))*randn()
        """, dt=frame_dt * s, when="end", order=0, name="frame")
    mon_f = b2.StateMonitor(cells, ["F", "neu"], record=True, dt=frame_dt * s, when="end",
                            order=1, name="mon_f")
    mon_r = b2.StateMonitor(pool, "Re", record=True, dt=frame_dt * s, when="end", order=1,
                            name="mon_r")

    # each subject's units, drawn as the numpy reference draws them
    k, b, f0 = np.empty((n_sub, ne)), np.empty((n_sub, ne)), np.empty((n_sub, nc))
    ksig = v["indegree_sigma"]
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        k[i] = np.exp(ksig * rng.standard_normal(ne) - 0.5 * ksig ** 2)
        b[i] = v["bias_mean"] + v["bias_sd"] * rng.standard_normal(ne)
        k[i] *= np.exp(v["assembly_gain_sd"] * rng.standard_normal(n_asm))[member]
        f0[i] = np.exp(v["f0_log_sd"] * rng.standard_normal(nc))
    exc.kg = k.ravel()
    exc.b = b.ravel()
    cells.f0 = f0.ravel()
    net = b2.Network(exc, inh, pool, asm, syn_e, syn_i, syn_a, cells, mon_f, mon_r)
    build_s = time.perf_counter() - t

    # the indicator runs through the settle too (as ketasim's kernel since 2026-12-07);
    # the frames and monitors only while imaging
    imaging = (frame, mon_f, mon_r)
    # steps of settling: the frame clock ticks every n_sub_steps steps from t = 0 and
    # must tick on the last step of each frame, so the first imaged step must be 1 modulo
    # n_sub_steps; settling is rounded up to that (by one step with the registry's values)
    m = n_sub_steps
    settle = (n_settle + (1 - n_settle) % m, n_settle + (-n_settle) % m)
    t = time.perf_counter()
    net.run(0 * s, namespace={})  # every object active: code generation (+ compilation)
    codegen_s = time.perf_counter() - t
    t = time.perf_counter()
    net.run(0 * s, namespace={})
    run_setup_s = time.perf_counter() - t

    t = time.perf_counter()
    for q in range(n_sess):
        exc.jc = np.repeat(v["j_ee"] * coupling[:, q], ne)
        exc.ext = np.repeat(v["g_act"] * (drive[:, q] - 1.0), ne)
        for obj in imaging:
            obj.active = False
        net.run(settle[q > 0] * dt * s, namespace={})
        for obj in imaging:
            obj.active = True
        cells.t_frame0 = net.t + (n_sub_steps - 1) * dt * s
        net.run(n_frames * n_sub_steps * dt * s, namespace={})
    sim_s = time.perf_counter() - t

    fl_all = np.asarray(mon_f.F, np.float32).reshape(n_sub, nc, -1)
    np_all = np.asarray(mon_f.neu, np.float32).reshape(n_sub, nc, -1)
    rate_all = np.asarray(mon_r.Re)
    if fl_all.shape[2] != n_sess * n_frames:
        raise RuntimeError(f"recorded {fl_all.shape[2]} frames, expected "
                           f"{n_sess * n_frames}")
    out = {
        "brian2": b2.__version__, "numpy": np.__version__, "target": target,
        "subjects": n_sub, "sessions": n_sess, "minutes": job["minutes"],
        "steps_per_session": n_settle + n_frames * n_sub_steps, "dt_s": dt,
        "import_s": import_s, "build_s": build_s, "codegen_s": codegen_s,
        "run_setup_s": run_setup_s, "sim_s": sim_s,
        "subject_minutes_per_s": n_sub * n_sess * job["minutes"] / sim_s,
        "peak_rss_mb": peak_rss_mb(),
        "mean_f": [], "mean_np": [], "mean_rate": [],
    }
    if job.get("stats"):
        out["stats"] = []
    for i in range(n_sub):
        row_f, row_np, row_r = [], [], []
        for q in range(n_sess):
            sl = slice(q * n_frames, (q + 1) * n_frames)
            raw, neu, rate = fl_all[i, :, sl], np_all[i, :, sl], rate_all[i, sl]
            row_f.append(float(raw.mean()))
            row_np.append(float(neu.mean()))
            row_r.append(float(rate.mean()))
            if job.get("stats"):
                out["stats"].append({**session_stats(raw, neu, rate, v["neuropil_factor"]),
                                     **rate_stats(rate)})
        out["mean_f"].append(row_f)
        out["mean_np"].append(row_np)
        out["mean_rate"].append(row_r)
    if cache is not None:
        cache.cleanup()
    return out


if __name__ == "__main__":
    # Brian2 and the compiler may print: keep stdout for the one JSON line
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    json_out.write(json.dumps(main(sys.argv)) + "\n")
    json_out.flush()
