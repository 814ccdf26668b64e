"""A prefrontal population per subject: excitatory and inhibitory rate units with
adaptation and noise, simulated for every subject at once, with GCaMP-like fluorescence.

Why rate units: the readouts the papers use (transient rates, synchronous ensemble
events, cells per event, pairwise correlations, the calcium rise before a struggle bout)
are population statistics of calcium signals that low-pass spikes over about a second;
a rate network with spike-rate adaptation produces noise-driven population events
(bursts ended by adaptation) whose frequency and size depend on the recurrent
excitation, at a cost per step linear in the number of units (the recurrent input of a
unit is its in-degree times its assembly's rate, a mean-field coupling per assembly
with heterogeneous in-degrees). Spikes are drawn from the rates (Poisson) only to drive the
calcium indicator.

Per subject, per session (a stretch of minutes at a fixed state of the slow layers):

- excitatory unit i, a member of assembly q(i): tau_e du/dt = -u + J C g_q k_i
  ((1 - lambda) R_q + lambda R_e) - w_ei R_i + b_i + g_act (A - 1) - a_i + noise, with
  R_q the assembly's mean rate, lambda ``assembly_leak`` the share of recurrent input
  from the whole population and g_q the assembly's gain (log-normal, log-SD
  ``assembly_gain_sd``, drawn per subject): an ensemble event recruits one or a few
  assemblies, not the whole population, and assemblies ignite at different C, so
  activity grades with C (docs/design.md, "Assemblies instead of one mean field");
  rate r_i = r_max / (1 + exp(-(u - theta) / kappa)); adaptation tau_a da/dt = -a +
  g_a r_i / r_max. C is the functional synapse density relative to baseline (spine
  layer: spines carrying a synapse), A the activity drive (signalling layer: GluA1 and
  the AMPA surge), k_i a log-normal in-degree factor, b_i a normal bias;
- inhibitory pool: tau_i dv/dt = -v + w_ie R_e - w_ii R_i + b_inh + noise;
- indicator: spikes ~ Poisson(r dt); calcium c decays with tau_decay and rises through a
  first-order filter with tau_rise; fluorescence F = F0 (1 + dff_per_spike f) with
  multiplicative bleaching, neuropil contamination and shot noise (Gaussian, variance
  proportional to F). The assay turns F into dF/F as a lab pipeline does.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ketasim.core.vmath import vexp
from ketasim.core.xoroshiro import next_normal_zig, next_poisson, seed_state
from ketasim.params.registry import ParamGroup

PARAM_NAMES = (
    "n_exc", "n_inh", "tau_e_s", "tau_i_s", "tau_a_s", "g_adapt", "j_ee", "w_ei", "w_ie",
    "w_ii", "bias_mean", "bias_sd", "bias_inh", "indegree_sigma", "noise_sd", "r_max_hz",
    "theta", "kappa", "g_act", "dt_s", "tau_decay_s", "tau_rise_s", "dff_per_spike",
    "neuropil_factor", "neuropil_level", "shot_noise", "bleach_tau_s", "g_potentiation",
    "settle_s", "f0_log_sd", "neuropil_noise", "neuropil_rate_gain",
    "n_assemblies", "assembly_gain_sd", "assembly_leak",
)
_I = {n: i for i, n in enumerate(PARAM_NAMES)}
(I_NE, I_NI, I_TE, I_TI, I_TA, I_GA, I_JEE, I_WEI, I_WIE, I_WII, I_BM, I_BSD, I_BI,
 I_KSIG, I_NOISE, I_RMAX, I_THETA, I_KAPPA, I_GACT, I_DT, I_TDEC, I_TRISE, I_DFF, I_NPF,
 I_NPL, I_SHOT, I_BLEACH, I_GPOT, I_SETTLE, I_F0SD, I_NPNOISE, I_NPGAIN, I_NASM, I_ASD,
 I_LEAK) = range(len(PARAM_NAMES))


class CircuitParams(ParamGroup):
    PREFIX, NAMES = "circuit", PARAM_NAMES

    def vector(self) -> np.ndarray:
        return np.array([self.values[k] for k in PARAM_NAMES])


@numba.njit(cache=True)
def assembly_layout(ne, n_asm, n_cells):
    """The assemblies and the imaged cells: assembly q is the block of units
    ``start[q] .. start[q + 1] - 1`` (contiguous, sizes differing by at most one, so
    the update loops over a block vectorise); imaged cell j is unit ``img[j]``, taken
    from the blocks in turn (the first unit of every block, then the second, ...), so a
    field of view samples every assembly evenly."""
    start = np.empty(n_asm + 1, np.int64)
    for q in range(n_asm + 1):
        start[q] = (q * ne) // n_asm
    img = np.empty(n_cells, np.int64)
    j = 0
    pos = 0
    while j < n_cells:
        for q in range(n_asm):
            if j < n_cells and start[q] + pos < start[q + 1]:
                img[j] = start[q] + pos
                j += 1
        pos += 1
    return start, img


def run_sessions(p, coupling, drive, n_frames, frame_rate_hz, n_cells, seeds, out_f, out_np):
    """Simulate every subject's sessions.

    ``coupling``, ``drive``: (n_sub, n_sess). ``seeds``: (n_sub,) int64, one stream per
    subject (its units' in-degrees and biases, then its sessions). Writes the raw
    fluorescence of the first ``n_cells`` excitatory units into ``out_f`` (n_sub, n_sess,
    n_cells, n_frames) float32 and their neuropil into ``out_np`` (same shape).

    A Python wrapper on purpose: a cached jitted caller of the cached parallel kernel
    crashes (numba 0.6x) when it was compiled against the kernel loaded from the cache."""
    rate = np.zeros((coupling.shape[0], coupling.shape[1], 0), np.float32)
    run_sessions_rate(p, coupling, drive, n_frames, frame_rate_hz, n_cells, seeds, out_f,
                      out_np, rate)


@numba.njit(parallel=True, cache=True)
def run_sessions_rate(p, coupling, drive, n_frames, frame_rate_hz, n_cells, seeds, out_f,
                      out_np, out_rate):
    """:func:`run_sessions`, also writing the excitatory population rate (Hz) at each
    frame into ``out_rate`` (n_sub, n_sess, n_frames) float32 when its last axis is not
    empty (what the behaviour models read)."""
    n_sub, n_sess = coupling.shape
    ne, ni = int(p[I_NE]), int(p[I_NI])
    n_asm = int(p[I_NASM])
    # bounds are not checked inside the kernel: refuse mismatched buffers up front
    if n_cells > ne:
        raise ValueError("run_sessions: n_cells exceeds the excitatory units (circuit.n_exc)")
    if n_asm < 1 or n_asm > ne or n_asm != p[I_NASM]:
        raise ValueError("run_sessions: circuit.n_assemblies must be a whole number "
                         "between 1 and n_exc")
    if (drive.shape[0] != n_sub or drive.shape[1] != n_sess or seeds.shape[0] != n_sub
            or out_f.shape[0] != n_sub or out_f.shape[1] != n_sess
            or out_f.shape[2] != n_cells or out_f.shape[3] != n_frames
            or out_np.shape != out_f.shape or out_rate.shape[0] != n_sub
            or out_rate.shape[1] != n_sess
            or (out_rate.shape[2] != 0 and out_rate.shape[2] != n_frames)):
        raise ValueError("run_sessions: coupling, drive, seeds and output buffers disagree "
                         "in shape (expected (n_sub, n_sess[, n_cells, n_frames]))")
    frame_dt = 1.0 / frame_rate_hz
    n_sub_steps = max(1, math.ceil(frame_dt / p[I_DT]))
    dt = frame_dt / n_sub_steps
    ae, ai, aa = dt / p[I_TE], dt / p[I_TI], dt / p[I_TA]
    # the noise step that gives the update u <- (1 - a) u + s z the stationary SD noise_sd
    # exactly (var s^2 / (a (2 - a))), whatever the step (it follows the frame rate)
    se = p[I_NOISE] * math.sqrt(ae * (2.0 - ae))
    si = p[I_NOISE] * math.sqrt(ai * (2.0 - ai))
    dec = math.exp(-dt / p[I_TDEC])
    # the rise filter's exact step for calcium held over the step (Euler's dt / tau_rise
    # made the rise about 5% faster at the default step, and depend on the frame rate)
    rise = -math.expm1(-dt / p[I_TRISE])
    rmax, theta, kappa = p[I_RMAX], p[I_THETA], p[I_KAPPA]
    # parameters as locals (the compiler cannot hoist array reads past the state writes);
    # every expression keeps its operation order, so results are bitwise unchanged
    wei, ga, wie, wii, bi = p[I_WEI], p[I_GA], p[I_WIE], p[I_WII], p[I_BI]
    leak = p[I_LEAK]
    start, img = assembly_layout(ne, n_asm, n_cells)
    dff, npgain, tdec, npl0 = p[I_DFF], p[I_NPGAIN], p[I_TDEC], p[I_NPL]
    npf, shot, npnoise, bleach_tau = p[I_NPF], p[I_SHOT], p[I_NPNOISE], p[I_BLEACH]
    n_settle = round(p[I_SETTLE] / dt)
    for s in numba.prange(n_sub):
        st = np.zeros(2, np.uint64)  # the subject's own xoroshiro128+ stream
        seed_state(seeds[s], st)
        k = np.empty(ne)
        b = np.empty(ne)
        for i in range(ne):
            k[i] = math.exp(p[I_KSIG] * next_normal_zig(st) - 0.5 * p[I_KSIG] ** 2)
            b[i] = p[I_BM] + p[I_BSD] * next_normal_zig(st)
        # each assembly's recurrent gain (log-normal, median 1): assemblies differ in how
        # easily their recurrent excitation ignites an event
        kg = np.empty(ne)  # in-degree times the assembly's gain
        for q in range(n_asm):
            g_q = math.exp(p[I_ASD] * next_normal_zig(st))
            for i in range(start[q], start[q + 1]):
                kg[i] = g_q * k[i]
        f0 = np.empty(n_cells)  # resting brightness of the imaged cells
        for i in range(n_cells):
            f0[i] = math.exp(p[I_F0SD] * next_normal_zig(st))
        u = np.zeros(ne)
        z_e = np.empty(ne)  # the step's noise draws
        z_i = np.empty(ni)
        a = np.zeros(ne)
        r = np.zeros(ne)
        v = np.zeros(ni)
        ri = np.zeros(ni)
        ra = np.zeros(n_asm)  # the assemblies' mean rates
        rec_u = np.empty(ne)  # each unit's recurrent input per unit in-degree
        c = np.zeros(n_cells)
        fl = np.zeros(n_cells)
        for q in range(n_sess):
            jc = p[I_JEE] * coupling[s, q]
            ext = p[I_GACT] * (drive[s, q] - 1.0)
            re = r.mean()
            rim = ri.mean()
            for q2 in range(n_asm):
                ra[q2] = r[start[q2]:start[q2 + 1]].mean()
            for step in range(n_settle + n_frames * n_sub_steps):
                # the step's noise first (the stream in unit order, as one loop drew it),
                # then the units' updates in loops the compiler vectorises (vexp),
                # then the population sums in unit order
                for i in range(ne):
                    z_e[i] = next_normal_zig(st)
                for j in range(ni):
                    z_i[j] = next_normal_zig(st)
                wr = wei * rim
                for q2 in range(n_asm):
                    # recurrent excitation: the unit's own assembly, and a share of the
                    # whole population
                    rec = jc * ((1.0 - leak) * ra[q2] + leak * re)
                    for i in range(start[q2], start[q2 + 1]):
                        rec_u[i] = rec
                for i in range(ne):
                    inp = rec_u[i] * kg[i] - wr + b[i] + ext - a[i]
                    uu = u[i] + (ae * (inp - u[i]) + se * z_e[i])
                    u[i] = uu
                    rr = rmax / (1.0 + vexp(-(uu - theta) / kappa))
                    r[i] = rr
                    a[i] += aa * (ga * rr / rmax - a[i])
                inp_i = wie * re - wii * rim + bi
                for j in range(ni):
                    v[j] += ai * (inp_i - v[j]) + si * z_i[j]
                    ri[j] = rmax / (1.0 + vexp(-(v[j] - theta) / kappa))
                sum_e = 0.0
                for q2 in range(n_asm):
                    sum_q = 0.0
                    for i in range(start[q2], start[q2 + 1]):
                        sum_q += r[i]
                    ra[q2] = sum_q / (start[q2 + 1] - start[q2])
                    sum_e += sum_q
                sum_i = 0.0
                for j in range(ni):
                    sum_i += ri[j]
                re_start = re  # the frame records the population rate the step started from
                re = sum_e / ne
                rim = sum_i / ni
                # the indicator runs through the settle too, so a session's first frames
                # read it at its stationary level (it was held from the session before)
                for i in range(n_cells):
                    c[i] = c[i] * dec + next_poisson(st, r[img[i]] * dt)
                    fl[i] += rise * (c[i] - fl[i])
                if step < n_settle:
                    continue
                rel = step - n_settle + 1
                if rel % n_sub_steps == 0:
                    fr = rel // n_sub_steps - 1
                    t = fr * frame_dt
                    bleach = math.exp(-t / bleach_tau)
                    if out_rate.shape[2] > 0:
                        out_rate[s, q, fr] = re_start
                    npl = npl0 * (1.0 + dff * npgain * re_start * tdec)
                    for i in range(n_cells):
                        sig = f0[i] * (1.0 + dff * fl[i]) * bleach
                        neu = npl * bleach * (1.0 + npnoise * next_normal_zig(st))
                        raw = sig + npf * neu
                        raw += shot * math.sqrt(max(raw, 1e-9)) * next_normal_zig(st)
                        out_f[s, q, i, fr] = raw
                        out_np[s, q, i, fr] = neu
