"""The stochastic spatial spine engine: every spine of every subject, as arrays.

Layout (structure of arrays): for each subject s and branch b, the first ``n_b`` of
``cap`` slots hold the live spines, packed (an eliminated spine's slot takes the branch's
last spine): position along the branch (um), log head volume (um^3), birth time (h),
origin (0 pre-existing, 1 de novo, 2 restored), synapse flag, a stubby-shape flag, the
spine's local stress susceptibility and a spine id unique on the branch. Each branch
remembers where and when its spines were eliminated (a ring buffer), and whether a site
can still regrow (not yet restored, and its spine carried a synapse); a second ring buffer
holds the sites restored lately, the sources of the restoration coupling. One numba kernel steps all subjects in parallel, each with its own
xoroshiro128+ stream, so a subject's spines do not depend on the batch.

Rules per step of ``dt`` hours (parameters in the registry, ``spine.<cell>.*``):

- elimination, hazard per day ``e0`` x size factor (small spines more) x, for a spine
  without a synapse, the no-synapse factor and an age factor (young spines more; a
  synapse stabilises a new spine, Knott et al. 2006 Nat Neurosci) x stress factor ``1 + stress_gain (E - 1)
  susc_b loc(x)`` (the signalling layer's elimination drive E, concentrated on
  susceptible branches, ``susc_b``, and on susceptible stretches of a branch, ``loc(x)``:
  a log-normal field, piecewise constant over ``local_seg_um``) x neighbour coupling
  ``1 + c_gain n_recent`` (eliminations within ``c_r`` um in the last ``c_tau_d``; the
  count is kept per spine, updated as sites are lost and expire): stress-driven loss
  comes clustered and branch-specific (F-M-2);
- de novo formation, Poisson per branch with rate ``f0 L max(0, 1 + (F - 1) plast_b)``
  (F the formation drive; plast_b the branch's plasticity): up to the baseline rate
  placed uniformly, the excess with density proportional to ``loc(x)`` (clustered
  plasticity on the same hot stretches);
- restoration: while the drive is raised (F > 1), each remembered elimination site of
  the last ``mem_horizon_d`` days that has not been restored regrows a spine within
  ``restore_r`` um at hazard ``k_restore (F - 1) plast_b loc(x) (1 + restore_gain n)``,
  with ``n`` the sites restored within ``c_r`` um in the last ``c_tau_d`` (neighbouring
  lost sites regrow together), so ketamine's new spines come near lost ones (F-M-6),
  clustered on the hot stretches where the losses were and on the branches that lost
  them (F-M-5). Only the sites of spines that carried a synapse are remembered for
  regrowth (a restored spine regrows against the bouton its predecessor contacted; a
  transient spine that never gained a synapse leaves none);
- stabilisation: a new spine gains a synapse at rate ``k_syn`` x synaptic protein
  (x ``restored_boost`` for restored spines, F-M-7); log size follows an
  Ornstein-Uhlenbeck process towards the new-spine or mature mean (multiplicative,
  log-normal sizes; Loewenstein et al. 2011);
- AS-PaRAC1 photoactivation at a time removes, with probability ``parac1_p``, spines
  formed within the preceding ``parac1_window_h`` hours (F-M-11, F-M-12; a spine counts
  as formed at the middle of its step).

At baseline (all drives 1) the stress, field and restoration terms vanish, and density
and turnover are stationary: a burn-in at baseline drives brings the all-mature initial
state there before the earliest recording. Flashes, recordings and imaging sessions that
fall within a step act on the state at its end, in the order of their own times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from ketasim.core.streams import PURPOSE_SPINES, xoroshiro_states
from ketasim.core.vmath import vexp
from ketasim.core.xoroshiro import (
    hashed_normal,
    next_double,
    next_normal,
    next_normal_fast,
    next_poisson,
    next_u64,
    splitmix64,
    triangular_normal,
)

ORIGIN_PREEXISTING = 0
ORIGIN_DE_NOVO = 1
ORIGIN_RESTORED = 2
ORIGINS = ("preexisting", "de_novo", "restored")

# order of the scalar parameter vector handed to the kernel
PARAM_NAMES = (
    "density", "branch_length", "e0", "a_size", "young_gain", "young_tau_d", "nosyn_factor",
    "susc_sigma", "plast_sigma", "c_gain", "c_r", "c_tau_d", "c_stress", "stress_gain", "local_sigma",
    "local_tau_d", "plast_local_sigma", "local_seg_um", "k_restore", "restore_r", "restore_gain", "mem_horizon_d", "k_syn", "restored_boost",
    "size_mu_mature", "size_mu_new", "size_sigma", "size_theta", "stubby_frac", "parac1_p",
    "parac1_window_h", "burn_in_d",
)
_I = {name: i for i, name in enumerate(PARAM_NAMES)}
# indices into the parameter vector (module constants, so numba folds them)
I_DENSITY, I_LENGTH, I_E0, I_A_SIZE = _I["density"], _I["branch_length"], _I["e0"], _I["a_size"]
I_YOUNG_GAIN, I_YOUNG_TAU, I_NOSYN = _I["young_gain"], _I["young_tau_d"], _I["nosyn_factor"]
I_SUSC_SIGMA, I_PLAST_SIGMA = _I["susc_sigma"], _I["plast_sigma"]
I_C_GAIN, I_C_R, I_C_TAU, I_C_STRESS = (_I["c_gain"], _I["c_r"], _I["c_tau_d"],
                                        _I["c_stress"])
I_STRESS_GAIN, I_LOCAL_SIGMA, I_LOCAL_TAU, I_PLAST_LOCAL, I_LOCAL_SEG = (
    _I["stress_gain"], _I["local_sigma"], _I["local_tau_d"], _I["plast_local_sigma"],
    _I["local_seg_um"])
I_K_RESTORE, I_RESTORE_R, I_HORIZON = _I["k_restore"], _I["restore_r"], _I["mem_horizon_d"]
I_RESTORE_GAIN = _I["restore_gain"]
I_K_SYN, I_BOOST = _I["k_syn"], _I["restored_boost"]
I_MU_M, I_MU_N, I_SIZE_SIGMA, I_SIZE_THETA = (_I["size_mu_mature"], _I["size_mu_new"],
                                              _I["size_sigma"], _I["size_theta"])
I_STUBBY, I_PARAC1_P, I_PARAC1_WIN, I_BURN = (_I["stubby_frac"], _I["parac1_p"],
                                              _I["parac1_window_h"], _I["burn_in_d"])
MEMORY = 64  # remembered elimination sites per branch (ring buffer)
# restored sites kept per branch for the restoration coupling: as many as can be
# remembered, so no site restored within c_tau_d is dropped before it expires
RECENT = MEMORY
# spine sizes (and the hazard's size factor) advance every SIZE_DT_H hours by the exact
# Ornstein-Uhlenbeck transition and are held in between: log sizes relax over days
# (size_theta 0.3/day), so a half-day hold changes nothing measurable and halves the cost
SIZE_DT_H = 12.0
LOCAL_MAX = 128  # most segments of the local fields per branch


#: how a cell type reads the signalling layer's drives (outside the kernel: they shape
#: the drive arrays it is given): the rise of the elimination drive per unit of the D1
#: and D2 projection neurons' denervation spine-loss drives, and the exponent on the
#: mature-size drive (0 for a cell type that does not carry it)
DRIVE_GAINS = ("d1_loss_gain", "d2_loss_gain", "size_drive_exp")


def spine_cells(registry) -> list[str]:
    """Cell types with a complete spine parameter set (``spine.<cell>.*``)."""
    cells = sorted({p.name.split(".")[1] for p in registry if p.name.startswith("spine.")})
    return [c for c in cells if all(f"spine.{c}.{k}" in registry.parameters
                                    for k in PARAM_NAMES + DRIVE_GAINS)]


@dataclass(frozen=True)
class SpineParams:
    values: dict[str, float]

    @staticmethod
    def from_registry(registry, cell: str = "mpfc_l5") -> SpineParams:
        return SpineParams({k: registry.value(f"spine.{cell}.{k}")
                            for k in PARAM_NAMES + DRIVE_GAINS})

    def vector(self) -> np.ndarray:
        return np.array([self.values[k] for k in PARAM_NAMES])

    @property
    def burn_in_days(self) -> float:
        """Length of the baseline burn-in (days): ``burn_in_d``, but at least
        ``mem_horizon_d``, so that the remembered elimination sites (empty at the
        all-mature start) reach their steady state. It is also how far before the run's
        start a recording may be: ``simulate_spines`` runs the baseline for twice this
        long before the start, so that even the earliest recording follows a full
        burn-in (see ``run_spines``)."""
        return max(self.values["burn_in_d"], self.values["mem_horizon_d"])

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
        h_y = v["e0"] * f_y  # a synapse ends the young-spine term
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
    fixed-point iterations on 400 branches over 150 days at baseline, with fixed
    streams (deterministic); cached per parameter set."""
    p = np.array(pvec)
    target = p[I_DENSITY]
    n_br, cap = 400, int(3 * target * p[I_LENGTH]) + 16
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
        counts = np.zeros((1, n_br, 4), np.int64)
        state = xoroshiro_states(0, "f0-calibration", 1, PURPOSE_SPINES, n_br)
        run_spines(p, f0, 0.0, dt, n_steps, ones, ones, ones, ones, n_br, cap, state,
                   np.zeros((1, 0)), rec, alive, dummy_f, dummy_f, dummy_i8, dummy_u8,
                   dummy_u8, dummy_i64, counts, np.zeros(0), np.zeros(0), 0, 0.0)
        density = alive.sum(axis=3).mean() / p[I_LENGTH]
        f0 *= target / density
    return f0


@numba.njit(inline="always")
def _one_minus_exp(x):
    """1 - exp(-x); its series to third order where x is small (error < 1e-10)."""
    return x * (1.0 - x * (0.5 - x / 6.0)) if x < 1e-2 else 1.0 - math.exp(-x)


@numba.njit(cache=True, error_model="numpy")
def _run_subject(s, bo, p, f0, t_start, dt, n_steps, n_burn, form, elim, synp, sized,
                 n_branches, cap, state, photo_times, rec_times, rec_alive, rec_pos, rec_size,
                 rec_origin, rec_syn, rec_stubby, rec_sid, counts, img_times, img_p,
                 img_branches, img_sigma):
    """Burn in (``n_burn`` steps) and step ``n_branches`` branches of subject ``s``,
    recorded as branches ``bo, bo + 1, ...`` (arguments as ``run_spines``; ``state``: their
    own stream, advanced in place; ``run_spines`` runs one branch per call, each with its
    own stream).

    The rules are closures over the subject's arrays, which numba inlines where they are
    called: a helper taking the arrays as arguments would pay an atomic reference-count
    increment and decrement per array and call (a quarter of the run time when the
    elimination and formation helpers were separate functions)."""
    n_rec = rec_times.shape[0]
    # the branch's key for per-spine properties drawn by hashing (not from the stream):
    # a fixed function of the stream's seed, taken before any draw
    spine_key = splitmix64(state[0] ^ splitmix64(state[1]))
    L = p[I_LENGTH]
    n_seg = min(math.ceil(L / p[I_LOCAL_SEG]), LOCAL_MAX)
    size_every = max(1, round(SIZE_DT_H / dt))
    n_alive = np.zeros(n_branches, dtype=np.int64)
    pos = np.zeros((n_branches, cap))
    logsize = np.zeros((n_branches, cap))
    sizef = np.zeros((n_branches, cap))  # size factor of the hazard, exp(-a (ls - mu))
    birth = np.zeros((n_branches, cap))
    origin = np.zeros((n_branches, cap), dtype=np.int8)
    synapse = np.zeros((n_branches, cap), dtype=np.uint8)
    stubby = np.zeros((n_branches, cap), dtype=np.uint8)
    sid = np.zeros((n_branches, cap), dtype=np.int64)
    next_id = np.zeros(n_branches, dtype=np.int64)
    ncpl = np.zeros((n_branches, cap), dtype=np.int32)  # recent eliminations nearby
    cumh = np.zeros((n_branches, cap))  # hazard integrated since birth
    thr = np.zeros((n_branches, cap))  # the Exp(1) level at which the spine is lost
    mem_pos = np.zeros((n_branches, MEMORY))
    mem_t = np.full((n_branches, MEMORY), -1e300)
    mem_used = np.zeros((n_branches, MEMORY), dtype=np.uint8)  # 1: cannot regrow
    mem_n = np.zeros(n_branches, dtype=np.int64)
    cpl_tail = np.zeros(n_branches, dtype=np.int64)  # oldest site still coupling
    rst_pos = np.zeros((n_branches, RECENT))  # sites restored lately (coupling sources)
    rst_t = np.full((n_branches, RECENT), -1e300)
    rst_n = np.zeros(n_branches, dtype=np.int64)
    susc = np.empty(n_branches)
    plast = np.empty(n_branches)
    sfield_z = np.empty((n_branches, n_seg))  # stress field, standard-normal OU state
    sfield = np.empty((n_branches, n_seg))
    pfield = np.empty((n_branches, n_seg))
    pfield_cum = np.empty((n_branches, n_seg))
    stats = np.zeros(4, dtype=np.int64)
    n_mem_cap = MEMORY
    dt_d = dt / 24.0
    half_dt = 0.5 * dt
    e0 = p[I_E0]
    a_size = p[I_A_SIZE]
    young_gain = p[I_YOUNG_GAIN]
    young_tau = p[I_YOUNG_TAU]
    young_max_h = 30.0 * young_tau * 24.0  # beyond that the young term is below 1e-13
    nosyn = p[I_NOSYN]
    mu_m = p[I_MU_M]
    mu_n = p[I_MU_N]
    c_r = p[I_C_R]
    c_tau_h = p[I_C_TAU] * 24.0
    horizon_h = p[I_HORIZON] * 24.0
    r_gain = p[I_RESTORE_GAIN]
    inv_seg = 1.0 / p[I_LOCAL_SEG]
    seg = p[I_LOCAL_SEG]
    ls = p[I_LOCAL_SIGMA]
    # the stress field drifts (Ornstein-Uhlenbeck in log, correlation time local_tau_d)
    f_a = math.exp(-dt_d / p[I_LOCAL_TAU])
    f_sd = math.sqrt(1.0 - f_a * f_a)

    def remove(b, k):
        """Remove spine ``k`` of branch ``b``: the branch's last spine takes its slot."""
        last = n_alive[b] - 1
        if k != last:
            pos[b, k] = pos[b, last]
            logsize[b, k] = logsize[b, last]
            sizef[b, k] = sizef[b, last]
            ncpl[b, k] = ncpl[b, last]
            cumh[b, k] = cumh[b, last]
            thr[b, k] = thr[b, last]
            birth[b, k] = birth[b, last]
            origin[b, k] = origin[b, last]
            synapse[b, k] = synapse[b, last]
            stubby[b, k] = stubby[b, last]
            sid[b, k] = sid[b, last]
        n_alive[b] = last

    def couple(b, x, step):
        """Add ``step`` (+1 or -1) to the coupling count of the spines of branch ``b``
        within ``c_r`` um of a site at ``x``."""
        for k in range(n_alive[b]):
            if abs(pos[b, k] - x) < c_r:
                ncpl[b, k] += step

    def count_active(b, x):
        """Active coupling sites (those not yet expired) of branch ``b`` within c_r of x."""
        n = 0
        for i in range(cpl_tail[b], mem_n[b]):
            if abs(mem_pos[b, i % n_mem_cap] - x) < c_r:
                n += 1
        return n

    def eliminate(b, k, t):
        """Remove spine ``k``, remember its site and make the site a coupling source for
        the branch's spines within ``c_r`` until it expires (the oldest active site
        expires early if the memory is full)."""
        x = pos[b, k]
        had_synapse = synapse[b, k] == 1
        remove(b, k)
        if mem_n[b] - cpl_tail[b] >= n_mem_cap:
            couple(b, mem_pos[b, cpl_tail[b] % n_mem_cap], -1)
            cpl_tail[b] += 1
        m = mem_n[b] % n_mem_cap
        mem_pos[b, m] = x
        mem_t[b, m] = t
        mem_used[b, m] = 0 if had_synapse else 1
        mem_n[b] += 1
        couple(b, x, 1)

    def new_spine(b, x, t, org):
        """Append a spine to branch ``b`` (counting the active coupling sites near it);
        False if the branch is full."""
        k = n_alive[b]
        if k >= cap:
            return False
        pos[b, k] = x
        # a restored spine regrows against a surviving bouton: a synapse-sized head
        mu = mu_m if org == 2 else mu_n
        logsize[b, k] = mu + 0.3 * p[I_SIZE_SIGMA] * next_normal(state)
        sizef[b, k] = math.exp(-a_size * (logsize[b, k] - mu_m))
        cumh[b, k] = 0.0
        thr[b, k] = -math.log(1.0 - next_double(state))  # eliminated when cumh reaches it
        birth[b, k] = t
        origin[b, k] = org
        synapse[b, k] = 0
        stubby[b, k] = 1 if next_double(state) < p[I_STUBBY] else 0
        sid[b, k] = next_id[b]
        next_id[b] += 1
        n_alive[b] = k + 1
        ncpl[b, k] = count_active(b, x)
        return True

    def segment(x):
        """Index of the local-field segment holding position ``x`` (um)."""
        j = int(x * inv_seg)
        return j if j < n_seg else n_seg - 1

    def field_position(b):
        """A position on branch ``b`` drawn with density proportional to the plasticity
        field."""
        u = next_double(state) * pfield_cum[b, n_seg - 1]
        j = 0
        while j < n_seg - 1 and pfield_cum[b, j] <= u:
            j += 1
        x0 = j * seg
        return x0 + next_double(state) * min(seg, L - x0)

    def step(t, size_dt, F, E, P, shift):
        """One step of all branches (drives F, E, P over the step; ``shift``: the
        log shift of the mature size mean, the log of the size drive). stats[0] +=
        formations, [1] += eliminations, [2] += formations lost to a full branch, [3] +=
        spines alive after the step's losses (spine-steps, for spine-day counts)."""
        # neighbour coupling, stronger while the elimination drive is raised
        c_gain = p[I_C_GAIN] + p[I_C_STRESS] * (E - 1.0 if E > 1.0 else 0.0)
        # exact OU transition of the log size over size_dt hours (0: sizes held)
        a = math.exp(-p[I_SIZE_THETA] * size_dt / 24.0)
        size_sd = p[I_SIZE_SIGMA] * math.sqrt(1.0 - a * a)
        sg = p[I_STRESS_GAIN] * (E - 1.0)
        syn_rate = p[I_K_SYN] * P
        p_syn = 1.0 - math.exp(-syn_rate * dt_d)
        p_syn_restored = 1.0 - math.exp(-syn_rate * p[I_BOOST] * dt_d)
        n_steps_alive = 0
        for b in range(n_branches):
            sg_b = sg * susc[b]
            # the stress field only matters while the elimination drive is raised, so it
            # is only stepped then (a frozen stationary OU field is still stationary)
            if sg != 0.0 and ls > 0.0:
                for j in range(n_seg):
                    sfield_z[b, j] = sfield_z[b, j] * f_a + f_sd * next_normal_fast(state)
                for j in range(n_seg):  # no draws: a loop the compiler vectorises
                    sfield[b, j] = vexp(ls * sfield_z[b, j] - 0.5 * ls * ls)
            # coupling sites older than c_tau stop coupling (their neighbours' counts drop)
            while cpl_tail[b] < mem_n[b] and t - mem_t[b, cpl_tail[b] % n_mem_cap] >= c_tau_h:
                couple(b, mem_pos[b, cpl_tail[b] % n_mem_cap], -1)
                cpl_tail[b] += 1
            # ---- elimination, synapse gain and size dynamics of the live spines
            k = 0
            while k < n_alive[b]:
                h = e0 * sizef[b, k]
                if synapse[b, k] == 0:  # an immature spine: no synapse yet, higher when young
                    h *= nosyn
                    age_h = t - birth[b, k]
                    if age_h < young_max_h:
                        h *= 1.0 + young_gain * math.exp(-age_h / (24.0 * young_tau))
                if sg_b != 0.0:
                    j = int(pos[b, k] * inv_seg)
                    h *= max(0.0, 1.0 + sg_b * sfield[b, j if j < n_seg else n_seg - 1])
                if ncpl[b, k] > 0:  # recent eliminations within c_r um
                    h *= 1.0 + c_gain * ncpl[b, k]
                # elimination when the integrated hazard reaches the spine's Exp(1)
                # threshold (exact for a hazard held over each step; one random number
                # per spine life)
                cumh[b, k] += h * dt_d
                if cumh[b, k] >= thr[b, k]:
                    # couples at once: spines later in this step's loop see it too
                    eliminate(b, k, t)
                    stats[1] += 1
                    continue  # slot k now holds the branch's last spine, not yet stepped
                if synapse[b, k] == 0 and next_double(state) < (
                        p_syn_restored if origin[b, k] == 2 else p_syn):
                    synapse[b, k] = 1
                n_steps_alive += 1
                if size_dt > 0.0:
                    target = mu_m + shift if synapse[b, k] == 1 else mu_n
                    logsize[b, k] = target + (logsize[b, k] - target) * a + size_sd * \
                        triangular_normal(next_u64(state))
                k += 1
            if size_dt > 0.0:  # the new sizes' hazard factors (vectorised; see vexp)
                for k in range(n_alive[b]):
                    sizef[b, k] = vexp(-a_size * (logsize[b, k] - mu_m))
            # ---- de novo formation: up to the baseline rate placed uniformly, the excess
            # by the branch's plasticity field (hot stretches), so raised formation clusters
            excess = (F - 1.0) * plast[b]
            drive = max(1.0 + excess, 0.0)
            n_new = next_poisson(state, f0 * L * dt_d * min(drive, 1.0))
            n_hot = next_poisson(state, f0 * L * dt_d * excess) if excess > 0.0 else 0
            for i in range(n_new + n_hot):
                if i < n_new:
                    x = next_double(state) * L
                else:
                    x = field_position(b)
                if new_spine(b, x, t, 1):
                    stats[0] += 1
                else:
                    stats[2] += 1
            # ---- restoration at remembered elimination sites while the drive is raised
            # (faster on the branch's plastic stretches)
            if excess > 0.0 and p[I_K_RESTORE] > 0.0:
                rate_dt = p[I_K_RESTORE] * excess * dt_d
                m = (mem_n[b] - 1) % n_mem_cap  # newest first, up to the memory horizon
                for _ in range(min(mem_n[b], n_mem_cap)):
                    mm = m
                    m = m - 1 if m > 0 else n_mem_cap - 1
                    if t - mem_t[b, mm] >= horizon_h:
                        break
                    if mem_used[b, mm] == 1:
                        continue
                    site = mem_pos[b, mm]
                    x = rate_dt * pfield[b, segment(site)]
                    if r_gain > 0.0:  # sites restored lately within c_r um
                        n_near = 0  # newest first, until they are older than c_tau
                        for i in range(rst_n[b] - 1, max(0, rst_n[b] - RECENT) - 1, -1):
                            q = i % RECENT
                            if t - rst_t[b, q] >= c_tau_h:
                                break
                            if abs(rst_pos[b, q] - site) < c_r:
                                n_near += 1
                        x *= 1.0 + r_gain * n_near
                    if next_double(state) < _one_minus_exp(x):
                        mem_used[b, mm] = 1
                        q = rst_n[b] % RECENT
                        rst_pos[b, q] = site
                        rst_t[b, q] = t
                        rst_n[b] += 1
                        x = mem_pos[b, mm] + (2.0 * next_double(state) - 1.0) * p[I_RESTORE_R]
                        x = min(max(x, 0.0), L)
                        if new_spine(b, x, t, 2):
                            stats[0] += 1
                        else:
                            stats[2] += 1
        stats[3] += n_steps_alive

    def image(q, n_imaged):
        """An in vivo imaging session on its imaged branches (global index below
        ``n_imaged``, the session's own branch count): each spine is lost to the light
        with probability ``q`` x its size factor (small spines more) x its own
        susceptibility (log-normal, mean 1, log-SD ``img_sigma``, a fixed property of the
        spine hashed from its id, so the most susceptible spines go first and later
        sessions lose fewer), capped at 1.
        Light damages the synapse with the spine, so the site is not remembered for
        regrowth (unlike an elimination)."""
        for b in range(n_branches):
            if bo + b >= n_imaged:
                continue
            k = 0
            while k < n_alive[b]:
                frail = 1.0
                if img_sigma > 0.0:
                    frail = math.exp(img_sigma * hashed_normal(spine_key, sid[b, k])
                                     - 0.5 * img_sigma * img_sigma)
                if next_double(state) < min(1.0, q * sizef[b, k] * frail):
                    remove(b, k)
                    stats[1] += 1
                else:
                    k += 1

    def photoactivate(t):
        """AS-PaRAC1 at ``t``: each spine formed in the preceding window (after ``t`` -
        ``parac1_window_h``) is removed with probability parac1_p. A spine formed in a
        step is stamped with the step's start (``birth``) but formed somewhere within it:
        it counts as formed at the step's middle, its expected formation time. Where the
        window opens at a grid time (a 24-h window for a flash 24 h after a dose at 0 h)
        the step that starts there is in the window and the step that ends there is
        not."""
        t_min = t - p[I_PARAC1_WIN] - half_dt
        for b in range(n_branches):
            k = 0
            while k < n_alive[b]:
                if birth[b, k] > t_min and next_double(state) < p[I_PARAC1_P]:
                    remove(b, k)
                else:
                    k += 1

    ss, ps = p[I_SUSC_SIGMA], p[I_PLAST_SIGMA]
    lp = p[I_PLAST_LOCAL]
    for b in range(n_branches):
        # log-normal branch and segment factors with mean 1
        susc[b] = math.exp(ss * next_normal(state) - 0.5 * ss * ss)
        plast[b] = math.exp(ps * next_normal(state) - 0.5 * ps * ps)
        # the last segment may be shorter than local_seg_um: weigh it by its length
        for j in range(n_seg):
            sfield_z[b, j] = next_normal(state)
            sfield[b, j] = math.exp(ls * sfield_z[b, j] - 0.5 * ls * ls)
            pfield[b, j] = math.exp(lp * next_normal(state) - 0.5 * lp * lp)
            w = min(seg, L - j * seg) / seg
            prev = pfield_cum[b, j - 1] if j > 0 else 0.0
            pfield_cum[b, j] = prev + pfield[b, j] * w
        n0 = min(next_poisson(state, p[I_DENSITY] * L), cap)
        for k in range(n0):
            x = next_double(state) * L
            pos[b, k] = x
            logsize[b, k] = mu_m + p[I_SIZE_SIGMA] * next_normal(state)
            sizef[b, k] = math.exp(-a_size * (logsize[b, k] - mu_m))
            thr[b, k] = -math.log(1.0 - next_double(state))
            birth[b, k] = t_start - 1e4
            origin[b, k] = 0
            synapse[b, k] = 1
            stubby[b, k] = 1 if next_double(state) < p[I_STUBBY] else 0
            sid[b, k] = k
        next_id[b] = n0
        n_alive[b] = n0
    # burn-in (steps -n_burn..-1) at baseline drives from the all-mature start above, so
    # density, sizes, synapses, ages and the remembered elimination sites (none at the
    # start) are stationary by the time a recording is allowed (``simulate_spines`` makes
    # it a full burn-in longer than the earliest recording it accepts); then the steps
    # with the subject's drives
    i_rec = 0
    i_pa = 0
    n_pa = photo_times.shape[1]
    i_img = 0
    n_img = img_times.shape[0]
    inf = math.inf
    for i in range(-n_burn, n_steps + 1):
        t = t_start + i * dt
        if i == 0:
            origin[:] = 0  # spines alive at the start count as pre-existing
            stats[:] = 0
        # the flashes, recordings and imaging sessions up to ``t`` (those after the
        # previous grid time act on the state the last step left), in the order of their
        # own times; at one time a flash comes before a recording and a session's
        # recording before its light. Recordings before ``t_start`` fall in the burn-in,
        # at baseline drives: a pre-protocol imaging session sees the stationary state.
        while True:
            tf = photo_times[s, i_pa] if i_pa < n_pa else inf
            tr = rec_times[i_rec] if i_rec < n_rec else inf
            ti = img_times[i_img] if i_img < n_img else inf
            if tf <= t and tf <= tr and tf <= ti:
                photoactivate(tf)
                i_pa += 1
            elif tr <= t and tr <= ti:
                for b in range(n_branches):
                    for k in range(cap):
                        rec_alive[s, i_rec, bo + b, k] = 1 if k < n_alive[b] else 0
                    rec_pos[s, i_rec, bo + b] = pos[b]
                    rec_size[s, i_rec, bo + b] = logsize[b]
                    rec_origin[s, i_rec, bo + b] = origin[b]
                    rec_syn[s, i_rec, bo + b] = synapse[b]
                    rec_stubby[s, i_rec, bo + b] = stubby[b]
                    rec_sid[s, i_rec, bo + b] = sid[b]
                i_rec += 1
            elif ti <= t:
                if img_p[i_img] > 0.0:
                    image(img_p[i_img], img_branches[i_img])
                i_img += 1
            else:
                break
        if i == n_steps:
            break
        F = E = P = 1.0
        if i >= 0:
            F, E, P = form[s, i], elim[s, i], synp[s, i]
        size_dt = 0.0
        shift = 0.0
        if (n_burn + i) % size_every == 0:
            # sizes advance over the next size_every steps at once, towards the mature
            # mean shifted by the log of the size drive's mean over those steps (1 in the
            # burn-in; the last update of the run covers the steps that remain)
            size_dt = size_every * dt
            acc = 0.0
            n_acc = 0
            for j in range(i, min(i + size_every, n_steps)):
                acc += sized[s, j] if j >= 0 else 1.0
                n_acc += 1
            if n_acc > 0 and acc != n_acc:
                shift = math.log(acc / n_acc)
        step(t, size_dt, F, E, P, shift)
    for c in range(counts.shape[2]):
        counts[s, bo, c] = stats[c]


@numba.njit(parallel=True, cache=True)
def _run_all(p, f0, t_start, dt, n_steps, n_burn, form, elim, synp, sized, n_branches, cap,
             states, photo_times, rec_times, rec_alive, rec_pos, rec_size, rec_origin, rec_syn,
             rec_stubby, rec_sid, counts, img_times, img_p, img_branches, img_sigma):
    """``run_spines``'s kernel: every (subject, branch) pair in parallel."""
    n_sub = form.shape[0]
    for q in numba.prange(n_sub * n_branches):
        s = q // n_branches
        b = q % n_branches
        _run_subject(s, b, p, f0, t_start, dt, n_steps, n_burn, form, elim, synp, sized, 1,
                     cap, states[s, b].copy(), photo_times, rec_times, rec_alive, rec_pos,
                     rec_size, rec_origin, rec_syn, rec_stubby, rec_sid, counts, img_times,
                     img_p, img_branches, img_sigma)


def burn_in_steps(burn_in_days: float, dt: float) -> int:
    """Steps of ``dt`` hours that cover ``burn_in_days`` (rounded up, so a burn-in that
    is not a whole number of steps is not cut short)."""
    return math.ceil(burn_in_days * 24.0 / dt - 1e-9)


def run_spines(p, f0, t_start, dt, n_steps, form, elim, synp, sized, n_branches, cap, states,
               photo_times, rec_times, rec_alive, rec_pos, rec_size, rec_origin, rec_syn,
               rec_stubby, rec_sid, counts, img_times, img_p, img_branches, img_sigma,
               n_burn=None):
    """Step every branch of every subject from ``t_start`` for ``n_steps`` of ``dt`` hours,
    after ``n_burn`` steps of burn-in at baseline drives (default: the burn-in,
    ``SpineParams.burn_in_days``, in steps), each branch on its own stream
    ``states[s, b]`` ((n_sub, n_branches, 2) uint64), so a branch's spines do not depend on
    how many branches are simulated.

    ``form``, ``elim``, ``synp``, ``sized``: (n_sub, n_steps) drives over each step (their
    means) (``sized``: the size drive, x baseline, scaling the mature spines' size mean;
    sizes advance every ``SIZE_DT_H`` hours towards the mean shifted by the drive's mean
    over those hours). Recording arrays have shape (n_sub, n_rec, n_branches, cap) (live
    spines in the first slots of each branch, flagged in ``rec_alive``); a recording, a
    flash (``photo_times``, (n_sub, n_flashes), sorted per subject) and an imaging session
    between two grid times act on the state at the later one, in the order of their own
    times (at one time: flash, recording, the session's light); recordings before
    ``t_start`` see the baseline burn-in. ``counts``: (n_sub, n_branches, 4): formations,
    eliminations, formations lost to a full branch, spine-steps. ``img_times``, ``img_p``
    ((n_img,), sorted): in vivo imaging sessions and each one's loss probability per spine
    (before the size factor), on the branches with global index below the session's
    ``img_branches`` (one count for every session, or one per session; empty arrays: no
    imaging damage), each spine's loss probability scaled by its own log-normal
    susceptibility of log-SD ``img_sigma``. The arrays are not checked here
    (``simulate_spines`` checks them)."""
    if n_burn is None:
        n_burn = burn_in_steps(max(p[I_BURN], p[I_HORIZON]), dt)
    img_times = np.ascontiguousarray(img_times, dtype=np.float64)
    img_branches = np.ascontiguousarray(
        np.broadcast_to(np.asarray(img_branches, dtype=np.int64), img_times.shape))
    _run_all(p, f0, t_start, dt, int(n_steps), int(n_burn), form, elim, synp, sized,
             n_branches, cap, states, photo_times, rec_times, rec_alive, rec_pos, rec_size,
             rec_origin, rec_syn, rec_stubby, rec_sid, counts, img_times,
             np.ascontiguousarray(img_p, dtype=np.float64), img_branches, float(img_sigma))
