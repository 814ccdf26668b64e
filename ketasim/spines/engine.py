"""The stochastic spatial spine engine: every spine of every subject, as arrays.

Layout (structure of arrays): for each subject s and branch b, ``cap`` slots hold the
spines: alive flag, position along the branch (um), log head volume (um^3), birth time
(h), origin (0 pre-existing, 1 de novo, 2 restored), synapse flag, a stubby-shape flag
and a spine id unique on the branch. Each branch remembers where and when its spines
were eliminated (a ring buffer). One numba kernel steps all subjects in parallel, each
with its own xoroshiro128+ stream, so a subject's spines do not depend on the batch.

Rules per step of ``dt`` hours (parameters in the registry, ``spine.<cell>.*``):

- elimination, hazard per day ``e0`` x size factor (small spines more) x age factor
  (young spines more) x no-synapse factor x stress factor ``1 + (E - 1) susc_b`` (the
  signalling layer's elimination drive E, concentrated on susceptible branches) x
  neighbour coupling ``1 + c_gain n_recent`` (recent eliminations within ``c_r`` um):
  stress-driven loss comes clustered and branch-specific (F-M-2);
- formation, Poisson per branch with rate ``f0 L max(0, 1 + (F - 1) plast_b)`` (F the
  formation drive; plast_b the branch's plasticity, so ketamine's new spines are
  branch-specific, F-M-5); a new spine is placed within ``restore_r`` um of a remembered
  elimination site with probability ``restore_max n/(n + restore_k)`` (n recent sites,
  F-M-6), otherwise uniformly;
- stabilisation: a new spine gains a synapse at rate ``k_syn`` x synaptic protein
  (x ``restored_boost`` for restored spines, F-M-7); log size follows an
  Ornstein-Uhlenbeck process towards the new-spine or mature mean (multiplicative,
  log-normal sizes; Loewenstein et al. 2011);
- AS-PaRAC1 photoactivation at a time removes, with probability ``parac1_p``, spines
  born within the preceding ``parac1_window`` hours (F-M-11, F-M-12).

Baseline density and turnover are stationary (burn-in from the steady state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from ketasim.spines.rng import next_double, next_normal, next_normal_fast, next_poisson

ORIGIN_PREEXISTING = 0
ORIGIN_DE_NOVO = 1
ORIGIN_RESTORED = 2
ORIGINS = ("preexisting", "de_novo", "restored")

# order of the scalar parameter vector handed to the kernel
PARAM_NAMES = (
    "density", "branch_length", "e0", "a_size", "young_gain", "young_tau_d", "nosyn_factor",
    "susc_sigma", "plast_sigma", "c_gain", "c_r", "c_tau_d", "restore_max", "restore_k",
    "restore_r", "mem_horizon_d", "k_syn", "restored_boost", "size_mu_mature", "size_mu_new",
    "size_sigma", "size_theta", "stubby_frac", "parac1_p", "parac1_window_h", "burn_in_d",
)
MEMORY = 64


@dataclass(frozen=True)
class SpineParams:
    values: dict[str, float]

    @staticmethod
    def from_registry(registry, cell: str = "mpfc_l5") -> SpineParams:
        return SpineParams({k: registry.value(f"spine.{cell}.{k}") for k in PARAM_NAMES})

    def vector(self) -> np.ndarray:
        return np.array([self.values[k] for k in PARAM_NAMES])

    def mean_lifetime_days(self, horizon_d: float = 3000.0, da: float = 0.01) -> float:
        """Expected lifetime of a new spine at baseline (days), by integrating its
        survival over age: a spine without a synapse gains one at rate k_syn; the hazard
        carries the young-spine and no-synapse factors and the size factor averaged over
        the Ornstein-Uhlenbeck log-size distribution at that age (mean field)."""
        v = self.values
        a = np.arange(0.0, horizon_d, da)
        decay = np.exp(-v["size_theta"] * a)
        young = 1.0 + v["young_gain"] * np.exp(-a / v["young_tau_d"])
        var_new = (0.3 * v["size_sigma"]) ** 2 * decay**2 + v["size_sigma"] ** 2 * (1 - decay**2)
        k = v["a_size"]
        # without a synapse: log size relaxes towards the new-spine mean
        m_u = v["size_mu_new"]
        f_u = np.exp(-k * (m_u - v["size_mu_mature"]) + 0.5 * k * k * var_new)
        h_u = v["e0"] * young * v["nosyn_factor"] * f_u
        # with a synapse: towards the mature mean (mean of a spine born at mu_new)
        m_y = v["size_mu_mature"] + (v["size_mu_new"] - v["size_mu_mature"]) * decay
        f_y = np.exp(-k * (m_y - v["size_mu_mature"]) + 0.5 * k * k * var_new)
        h_y = v["e0"] * young * f_y
        u, y, life = 1.0, 0.0, 0.0
        for i in range(a.size):  # explicit Euler on the two survival fractions
            life += (u + y) * da
            du = -(h_u[i] + v["k_syn"]) * u
            dy = v["k_syn"] * u - h_y[i] * y
            u += du * da
            y += dy * da
            if u + y < 1e-9:
                break
        return life

    def stationary_formation_rate(self, dt: float = 6.0) -> float:
        """Formation rate (per um per day) at which the engine's baseline density equals
        ``density``: Little's law, refined numerically (see ``_calibrated_f0``)."""
        return _calibrated_f0(tuple(self.vector()), self.formation_rate_per_um_day(), dt)

    def formation_rate_per_um_day(self) -> float:
        """f0 that keeps the baseline density stationary (Little's law: density =
        formation rate x mean lifetime), with the extra eliminations that neighbour
        coupling triggers treated as a branching process: each elimination raises the
        hazard of the ~2 c_r density neighbours by c_gain for c_tau, at the mean
        per-spine elimination rate f0/density, so beta = 2 c_r c_gain c_tau f0 and
        f0 T (1 - beta) = density (a quadratic in f0)."""
        v = self.values
        life = self.mean_lifetime_days()
        kappa = 2 * v["c_r"] * v["c_gain"] * v["c_tau_d"]
        d = v["density"]
        if kappa == 0.0:
            return d / life
        disc = life * life - 4 * kappa * life * d
        if disc <= 0:
            raise ValueError("spine parameters: neighbour coupling too strong for a "
                             "stationary density (branching factor >= 1/2)")
        return (life - math.sqrt(disc)) / (2 * kappa * life)


@lru_cache(maxsize=32)
def _calibrated_f0(pvec: tuple[float, ...], f0: float, dt: float) -> float:
    """Refine f0 so that the engine's own stationary density equals the target: the
    mean-field lifetime ignores the spread of sizes (Jensen's inequality) and cascades
    of coupled eliminations, which shift the steady state by several percent. Two
    fixed-point iterations on 400 branches over 150 days at baseline, with a fixed
    stream (deterministic); cached per parameter set."""
    p = np.array(pvec)
    target = p[0]
    n_br, cap = 400, int(3 * target * p[1]) + 16
    n_steps = int(150 * 24 / dt)
    rec = np.arange(30.0, 150.0 + 1e-9, 5.0) * 24.0
    ones = np.ones((1, n_steps))
    for _ in range(2):
        shape = (1, rec.size, n_br, cap)
        alive = np.zeros(shape, np.uint8)
        dummy_f = np.zeros(shape)
        dummy_i8 = np.zeros(shape, np.int8)
        dummy_u8 = np.zeros(shape, np.uint8)
        dummy_i64 = np.zeros(shape, np.int64)
        counts = np.zeros((1, 4), np.int64)
        state = np.array([[0x9E3779B97F4A7C15, 0xD1B54A32D192ED03]], dtype=np.uint64)
        run_spines(p, f0, 0.0, dt, n_steps, ones, ones, ones, n_br, cap, state,
                   np.zeros((1, 0)), rec, alive, dummy_f, dummy_f, dummy_i8, dummy_u8,
                   dummy_u8, dummy_i64, counts)
        density = alive.sum(axis=3).mean() / p[1]
        f0 *= target / density
    return f0


@numba.njit(cache=True)
def _add_memory(mem_pos, mem_t, mem_n, b, pos, t):
    k = mem_n[b] % mem_pos.shape[1]
    mem_pos[b, k] = pos
    mem_t[b, k] = t
    mem_n[b] += 1


@numba.njit(cache=True)
def _new_spine(alive, pos, logsize, birth, origin, synapse, stubby, sid, next_id, b, x, t,
               org, p, state):
    cap = alive.shape[1]
    for k in range(cap):
        if alive[b, k] == 0:
            alive[b, k] = 1
            pos[b, k] = x
            logsize[b, k] = p[19] + 0.3 * p[20] * next_normal(state)
            birth[b, k] = t
            origin[b, k] = org
            synapse[b, k] = 0
            stubby[b, k] = 1 if next_double(state) < p[22] else 0
            sid[b, k] = next_id[b]
            next_id[b] += 1
            return True
    return False


@numba.njit(cache=True)
def _step_subject(alive, pos, logsize, birth, origin, synapse, stubby, sid, next_id,
                  mem_pos, mem_t, mem_n, susc, plast, p, f0, t, dt, F, E, P, state, stats,
                  recent_pos):
    """One step of all branches of one subject. stats[0] += formations, [1] += eliminations,
    [2] += formations lost to a full branch, [3] += spines alive after the step's losses
    (spine-steps, for spine-day counts)."""
    n_br = alive.shape[0]
    cap = alive.shape[1]
    L = p[1]
    dt_d = dt / 24.0
    e0 = p[2]
    mu_m = p[18]
    mu_n = p[19]
    theta = p[21]  # size_theta
    sig = p[20]
    c_r = p[10]
    c_tau_h = p[11] * 24.0
    horizon_h = p[15] * 24.0
    a = math.exp(-theta * dt_d)  # exact OU discretisation of the log size
    size_sd = sig * math.sqrt(1.0 - a * a)
    for b in range(n_br):
        stress = 1.0 + (E - 1.0) * susc[b]
        if stress < 0.0:
            stress = 0.0
        n_mem = min(mem_n[b], mem_pos.shape[1])
        # sites eliminated within the coupling memory, gathered once per branch and step
        # (newest first through the ring buffer, stopping at the first one too old)
        n_recent = 0
        if p[9] > 0.0:
            m = (mem_n[b] - 1) % mem_pos.shape[1]
            for j in range(n_mem):
                if t - mem_t[b, m] >= c_tau_h:
                    break
                recent_pos[n_recent] = mem_pos[b, m]
                n_recent += 1
                m = m - 1 if m > 0 else mem_pos.shape[1] - 1
        # ---- elimination, synapse gain and size dynamics of existing spines
        for k in range(cap):
            if alive[b, k] == 0:
                continue
            age_d = (t - birth[b, k]) / 24.0
            h = e0 * math.exp(-p[3] * (logsize[b, k] - mu_m))
            if age_d < 30.0 * p[5]:  # beyond that the young-spine term is below 1e-13
                h *= 1.0 + p[4] * math.exp(-age_d / p[5])
            if synapse[b, k] == 0:
                h *= p[6]
            h *= stress
            if n_recent > 0:
                recent = 0
                for j in range(n_recent):
                    if abs(recent_pos[j] - pos[b, k]) < c_r:
                        recent += 1
                h *= 1.0 + p[9] * recent
            x = h * dt_d
            # 1 - exp(-x); its series to third order where x is small (error < 1e-10)
            p_elim = x * (1.0 - x * (0.5 - x / 6.0)) if x < 1e-2 else 1.0 - math.exp(-x)
            if next_double(state) < p_elim:
                alive[b, k] = 0
                _add_memory(mem_pos, mem_t, mem_n, b, pos[b, k], t)
                n_mem = min(mem_n[b], mem_pos.shape[1])
                if p[9] > 0.0 and n_recent < recent_pos.shape[0]:
                    recent_pos[n_recent] = pos[b, k]  # couples within the same step too
                    n_recent += 1
                stats[1] += 1
                continue
            if synapse[b, k] == 0:
                rate = p[16] * P * (p[17] if origin[b, k] == 2 else 1.0)
                if next_double(state) < 1.0 - math.exp(-rate * dt_d):
                    synapse[b, k] = 1
            stats[3] += 1
            target = mu_m if synapse[b, k] == 1 else mu_n
            logsize[b, k] = target + (logsize[b, k] - target) * a + size_sd * \
                next_normal_fast(state)
        # ---- formation
        drive = 1.0 + (F - 1.0) * plast[b]
        if drive < 0.0:
            drive = 0.0
        n_new = next_poisson(state, f0 * L * dt_d * drive)
        for _ in range(n_new):
            n_sites = 0
            for m in range(n_mem):
                if t - mem_t[b, m] < horizon_h:
                    n_sites += 1
            x = next_double(state) * L
            org = 1
            if n_sites > 0 and next_double(state) < p[12] * n_sites / (n_sites + p[13]):
                pick = int(next_double(state) * n_sites)
                j = 0
                for m in range(n_mem):
                    if t - mem_t[b, m] < horizon_h:
                        if j == pick:
                            x = mem_pos[b, m] + (2.0 * next_double(state) - 1.0) * p[14]
                            break
                        j += 1
                x = min(max(x, 0.0), L)
                org = 2
            if _new_spine(alive, pos, logsize, birth, origin, synapse, stubby, sid, next_id,
                          b, x, t, org, p, state):
                stats[0] += 1
            else:
                stats[2] += 1


@numba.njit(cache=True)
def _photoactivate(alive, birth, p, t, state):
    n_br = alive.shape[0]
    for b in range(n_br):
        for k in range(alive.shape[1]):
            if alive[b, k] == 1 and birth[b, k] > t - p[24] and next_double(state) < p[23]:
                alive[b, k] = 0


@numba.njit(parallel=True, cache=True)
def run_spines(p, f0, t_start, dt, n_steps, form, elim, synp, n_branches, cap, states,
               photo_times, rec_times, rec_alive, rec_pos, rec_size, rec_origin, rec_syn,
               rec_stubby, rec_sid, counts):
    """Step every subject from ``t_start`` for ``n_steps`` of ``dt`` hours.

    ``form``, ``elim``, ``synp``: (n_sub, n_steps) drives at the step starts. Recording
    arrays have shape (n_sub, n_rec, n_branches, cap). ``counts``: (n_sub, 4): formations,
    eliminations, formations lost to a full branch, spine-steps."""
    n_sub = form.shape[0]
    n_rec = rec_times.shape[0]
    L = p[1]
    for s in numba.prange(n_sub):
        state = states[s].copy()
        alive = np.zeros((n_branches, cap), dtype=np.uint8)
        pos = np.zeros((n_branches, cap))
        logsize = np.zeros((n_branches, cap))
        birth = np.zeros((n_branches, cap))
        origin = np.zeros((n_branches, cap), dtype=np.int8)
        synapse = np.zeros((n_branches, cap), dtype=np.uint8)
        stubby = np.zeros((n_branches, cap), dtype=np.uint8)
        sid = np.zeros((n_branches, cap), dtype=np.int64)
        next_id = np.zeros(n_branches, dtype=np.int64)
        mem_pos = np.zeros((n_branches, MEMORY))
        mem_t = np.full((n_branches, MEMORY), -1e300)
        mem_n = np.zeros(n_branches, dtype=np.int64)
        susc = np.empty(n_branches)
        plast = np.empty(n_branches)
        stats = np.zeros(4, dtype=np.int64)
        recent_pos = np.empty(MEMORY)  # scratch for the coupling sites of a branch-step
        for b in range(n_branches):
            # log-normal branch factors with mean 1
            susc[b] = math.exp(p[7] * next_normal(state) - 0.5 * p[7] * p[7])
            plast[b] = math.exp(p[8] * next_normal(state) - 0.5 * p[8] * p[8])
            n0 = next_poisson(state, p[0] * L)
            for _ in range(min(n0, cap)):
                k = next_id[b]
                alive[b, k] = 1
                pos[b, k] = next_double(state) * L
                logsize[b, k] = p[18] + p[20] * next_normal(state)
                birth[b, k] = t_start - 1e4
                origin[b, k] = 0
                synapse[b, k] = 1
                stubby[b, k] = 1 if next_double(state) < p[22] else 0
                sid[b, k] = k
                next_id[b] += 1
        # burn-in at baseline drives, so density, sizes and ages are stationary
        n_burn = int(p[25] * 24.0 / dt)
        for i in range(n_burn):
            tb = t_start - (n_burn - i) * dt
            _step_subject(alive, pos, logsize, birth, origin, synapse, stubby, sid, next_id,
                          mem_pos, mem_t, mem_n, susc, plast, p, f0, tb, dt, 1.0, 1.0, 1.0,
                          state, stats, recent_pos)
        for b in range(n_branches):  # spines alive at the start count as pre-existing
            for k in range(cap):
                origin[b, k] = 0
        stats[:] = 0
        i_rec = 0
        i_pa = 0
        n_pa = photo_times.shape[1]
        for i in range(n_steps + 1):
            t = t_start + i * dt
            while i_pa < n_pa and photo_times[s, i_pa] <= t:
                _photoactivate(alive, birth, p, photo_times[s, i_pa], state)
                i_pa += 1
            while i_rec < n_rec and rec_times[i_rec] <= t:
                rec_alive[s, i_rec] = alive
                rec_pos[s, i_rec] = pos
                rec_size[s, i_rec] = logsize
                rec_origin[s, i_rec] = origin
                rec_syn[s, i_rec] = synapse
                rec_stubby[s, i_rec] = stubby
                rec_sid[s, i_rec] = sid
                i_rec += 1
            if i == n_steps:
                break
            _step_subject(alive, pos, logsize, birth, origin, synapse, stubby, sid, next_id,
                          mem_pos, mem_t, mem_n, susc, plast, p, f0, t, dt, form[s, i],
                          elim[s, i], synp[s, i], state, stats, recent_pos)
        for c in range(counts.shape[1]):
            counts[s, c] = stats[c]
