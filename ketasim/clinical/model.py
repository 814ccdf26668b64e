"""The human side of the cascade: a latent prefrontal synaptic state per patient, the
symptoms it carries, and the acute psychotomimetic effects (SEED-FACTS section F).

One mechanism, read at a slower scale than the mouse's spines and circuit (parameters
``clinical.*``; the signalling layer's outputs are the same as for mice):

- **Synaptic state.** The mean-field density of functional prefrontal synapses, D
  (1 = healthy), turns over at ``k_turnover`` per day towards the balance of the
  signalling layer's formation and elimination drives: ``dD/dt = k (F(t) - E(t) D)``.
  Chronic stress (the ``major_depression`` stressor: a stress load held for months)
  lowers F and raises E, so a depressed patient sits at ``D = F / E < 1``; ketamine's
  formation drive moves D up for days and it relaxes back over about ``1 / (k E)``.
  The potentiation of existing synapses P (PKA-gated, protein-synthesis dependent, the
  signalling layer's ``synaptic_potentiation``) strengthens what is there:
  ``Z = D (1 + potentiation_weight P)``. The deficit is ``max(0, 1 - Z)``.
- **Restoration of lost synapses.** The drug-made (structural) part X of the formation
  drive, the signalling layer's ``structural_formation``, acts on D only with a share
  ``restore_direct_share`` (0 in the registry); it regrows synapses lost lately, as the
  mouse spine engine restores spines near lost ones (F-M-6), at a rate that reads the
  whole of X whatever that share. A share ``restore_pool_share`` of D's
  losses (k E D) enters a pool M of restorable sites, forgotten over
  ``restore_pool_memory_d`` days: ``dM/dt = phi (losses) - M / H - k_r X M``. What
  regrows, k_r X M, is restored synapses L, which turn over as D does and become stable
  (Q) at ``k_stabilise`` per day (F-M-7: restored spines last longer, and new spines
  that last days carry synapses); stable ones turn over at ``k_turnover_stable`` per
  day and their losses too return to the pool: ``dL/dt = k_r X M - k E L - sigma L``,
  ``dQ/dt = sigma L - k_s E Q``. The state read is ``Z = (D + L + Q) (1 + w P)``. So
  one dose restores what the depression took lately and no more (the pool empties), and
  repeated doses consolidate what they restore into synapses that outlast the dose
  interval (F-K-9, maintenance).
- **Symptoms.** Rated mood follows the deficit with a lag of hours
  (``dS/dt = (deficit - S) / tau_symptom``; MADRS items ask about the past days), so the
  improvement starts within hours of the potentiation and peaks later (F-K-3). A patient
  expresses the deficit with their own gain (MADRS points per unit deficit, log-normal
  between patients), times a slow mood fluctuation (log-normal, an Ornstein-Uhlenbeck
  path over days: the week-to-week variation of untreated patients), and a placebo
  response that grows after the first treatment visit
  (time 0) towards a patient-specific fraction (normal between patients, clipped to
  [0, 0.9]).
- **Psychotomimetic effects.** Dissociation (CADSS) and positive symptoms (BPRS
  positive subscale) follow NMDA receptor block in posteromedial cortex, whose layer-5
  rhythm carries dissociation (Vesuna et al. 2020 Nature), at the effect site (the
  brain compartment, which lags plasma by minutes) through Hill functions, in healthy
  subjects as in patients, and are not an input to the synaptic state (F-K-2, F-K-8).
- **Sedation.** The MOAA/S (5 alert ... 0 no response) follows the midazolam
  effect-site concentration (the active placebo of infusion trials) through a sigmoid
  Emax, 1 - C^n / (C^n + EC50^n), and ketamine's loss of pyramidal recurrent activity
  (the signalling layer's ``pyramidal_shutdown``, which makes the model's rodents
  immobile at anaesthetic doses) through another, the two acting independently:
  5 (1 - midazolam effect) (1 - ketamine effect). The patient's sensitivity (log-normal)
  and a per-visit log-normal fluctuation scale both inputs; the rating is rounded to the
  scale. At the antidepressant dose the shutdown is nil and patients rate 5.

Ratings are item by item (:mod:`ketasim.clinical.assays`). The clinician-rated scales
(MADRS, HDRS-17, CADSS, BPRS) have raters as people: each arm has a pool of raters, each
patient keeps one rater for the whole study, and a rater shifts the total by a
persistent severity bias plus a linear drift over the study plus a shift per visit
(:class:`Rater`). MADRS and HDRS-17 are read from the same symptom load, each with its
own points per unit deficit and floor; the self-rated QIDS-SR16 too, with no rater but a
persistent self-report bias of the patient.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numba
import numpy as np
from scipy.signal import lfilter

from ketasim.core.pcg64 import set_generator_state, standard_gamma, standard_normal
from ketasim.params.registry import ParamGroup

PARAM_NAMES = (
    "k_turnover", "potentiation_weight", "tau_symptom_h", "madrs_per_deficit",
    "madrs_gain_cv", "madrs_floor", "placebo_mean", "placebo_sd", "placebo_tau_d",
    "item_profile_conc", "item_noise_sd", "rater_sd",
    "hdrs17_per_deficit", "hdrs17_floor", "qids_per_deficit", "qids_floor",
    "self_report_bias_sd", "rater_bias_sd", "rater_drift_sd",
    "cadss_max", "cadss_o50", "cadss_hill", "bprs_pos_max", "bprs_o50", "bprs_hill",
    "psychotomimetic_cv", "fluctuation_sd", "fluctuation_tau_d",
    "gbc_per_state", "gbc_subject_sd", "gbc_scan_sd", "mrs_cv",
    "sedation_ec50", "sedation_hill", "sedation_cv", "sedation_visit_sd",
    "sedation_shutdown50", "sedation_shutdown_hill",
    "restore_direct_share", "restore_pool_share", "restore_pool_memory_d", "k_restore",
    "k_stabilise", "k_turnover_stable",
)


class ClinicalParams(ParamGroup):
    PREFIX, NAMES = "clinical", PARAM_NAMES


#: the option key under which the runner gives a history assay its arm's first dose (h):
#: set by the runner, not by a scenario
HISTORY_ANCHOR = "_first_dose_h"


def history_grid(at: np.ndarray, lookback_d: float, step_h: float,
                 first_dose_h: float | None = None) -> np.ndarray:
    """The regular grid (multiples of ``step_h`` hours) on which the synaptic state is
    integrated for visits ``at``: from ``lookback_d`` days before the first visit, or
    before the arm's first dose ``first_dose_h`` where that comes earlier, to the last
    visit. Anchored at multiples of the step, so adding a later visit does not move the
    grid; starting before the first dose, every scale of a patient reads the whole
    treatment (a scale first rated after weeks of dosing once started from the steady
    state, forgetting the doses before its window)."""
    at = np.asarray(at, dtype=float)
    first = float(at.min()) if first_dose_h is None else min(float(at.min()),
                                                              float(first_dose_h))
    k0 = np.floor((first - 24.0 * lookback_d) / step_h)
    k1 = np.ceil(float(at.max()) / step_h)
    return np.arange(k0, k1 + 1) * step_h


def sample_times(at: np.ndarray, lookback_d: float, step_h: float,
                 first_dose_h: float | None = None) -> np.ndarray:
    """The model times a clinical assay reads: its grid and its visits."""
    return np.unique(np.concatenate([history_grid(at, lookback_d, step_h, first_dose_h),
                                     np.asarray(at, dtype=float)]))


def _advance_density(d, f, e, k_h, h):
    target = f / e
    return target + (d - target) * np.exp(-k_h * e * h)


def _advance_load(s, x0, x1, tau, h):
    """Exact low-pass (time constant ``tau``) of a deficit linear from x0 to x1 over h."""
    a = np.exp(-h / tau)
    slope = (x1 - x0) / h
    return x1 - slope * tau + (s - x0 + slope * tau) * a


@numba.njit(cache=True, parallel=True)
def _clip_below(x, lo):
    """``np.clip(x, lo, None)`` of a 2-D array (NaN stays NaN), rows in parallel."""
    n, m = x.shape
    out = np.empty((n, m))
    for i in numba.prange(n):
        for j in range(m):
            v = x[i, j]
            out[i, j] = lo if v < lo else v  # noqa: FURB136 (NaN stays NaN, as np.clip)
    return out


@numba.njit(cache=True, parallel=True)
def _grid_chains(f, e, pot, w, decay, steps, load_decay, tau, xs, pool):
    """D, the deficit and S on the grid, patient by patient (in parallel): D from its
    steady state F / E by ``_advance_density`` (with its exponentials ``decay``), the
    deficit ``max(0, 1 - (D + L + Q) (1 + w P))``, S by ``_advance_load`` (``load_decay`` =
    exp(-h / tau)). ``f`` and ``pot`` are the raw drives, clipped at 0 here (as
    ``np.clip`` does); ``e`` is clipped already (``decay`` was computed from it).

    ``xs`` is the formation drive's structural part (clipped at 0 here) and ``pool``
    the restoration parameters (direct share, k per h, pool share, pool memory h,
    regrowth per h, stabilisation per h, stable turnover per h): D's formation is the
    drive less the structural part plus its direct share; recently lost synapses (pool
    M) regrow into restored synapses L at regrowth x structural part x M, which become
    stable (Q) and then turn over slowly; the state read is D + L + Q. M, L and Q take
    four substeps per grid step while the structural part is above 0 (one otherwise),
    with D held at the step's start: M and L each by the exact update of their own
    linear equation with the others held over the substep (stable however fast the
    regrowth), Q by a backward-Euler step fed by L's mean. Returns D, L + Q, S and the
    deficit on the grid."""
    n, m = f.shape
    d = np.empty((n, m))
    g = np.empty((n, m))
    s = np.empty((n, m))
    deficit = np.empty((n, m))
    share, k_h, phi, mem_h, k_r, sig_h, ks_h = (pool[0], pool[1], pool[2], pool[3],
                                               pool[4], pool[5], pool[6])
    for i in numba.prange(n):
        xi = xs[i, 0] if not xs[i, 0] < 0.0 else 0.0
        fi = f[i, 0] if not f[i, 0] < 0.0 else 0.0
        fi = max(0.0, fi - xi) + share * xi
        pi = pot[i, 0] if not pot[i, 0] < 0.0 else 0.0
        di = fi / e[i, 0]
        mi = phi * k_h * e[i, 0] * di * mem_h
        li = 0.0
        qi = 0.0
        x = 1.0 - di * (1.0 + w * pi)
        x = max(0.0, x)
        si = x
        d[i, 0], g[i, 0], deficit[i, 0], s[i, 0] = di, 0.0, x, si
        for j in range(1, m):
            xi = xs[i, j - 1] if not xs[i, j - 1] < 0.0 else 0.0
            fi = f[i, j - 1] if not f[i, j - 1] < 0.0 else 0.0
            fi = max(0.0, fi - xi) + share * xi
            pi = pot[i, j] if not pot[i, j] < 0.0 else 0.0
            ej = e[i, j - 1]
            # four substeps while the drug regrows sites (x > 0), else one: then M and L
            # only decay towards their sources and Q changes over weeks
            sub = 4 if xi > 0.0 else 1
            dt = steps[j - 1] / sub
            for _ in range(sub):  # the pool and the restored synapses, with D at its start
                # each linear in itself with the others held over the substep: exact
                # exponential updates, stable however fast the regrowth
                src = phi * (k_h * ej * (di + li) + ks_h * ej * qi)
                b = k_r * xi + 1.0 / mem_h
                m_eq = src / b
                eb = np.exp(-b * dt)
                m_mean = m_eq + (mi - m_eq) * (1.0 - eb) / (b * dt)
                mi = m_eq + (mi - m_eq) * eb
                grow = k_r * xi * m_mean
                c = k_h * ej + sig_h
                l_eq = grow / c
                ec = np.exp(-c * dt)
                l_mean = l_eq + (li - l_eq) * (1.0 - ec) / (c * dt)
                li = l_eq + (li - l_eq) * ec
                qi = (qi + dt * sig_h * l_mean) / (1.0 + dt * ks_h * ej)
            target = fi / ej
            di = target + (di - target) * decay[i, j - 1]
            x0 = x
            x = 1.0 - (di + li + qi) * (1.0 + w * pi)
            x = max(0.0, x)
            slope = (x - x0) / steps[j - 1]
            si = x - slope * tau + (si - x0 + slope * tau) * load_decay[j - 1]
            d[i, j], g[i, j], deficit[i, j], s[i, j] = di, li + qi, x, si
    return d, g, s, deficit


def symptom_course(grid: np.ndarray, drives: dict[str, np.ndarray], at: np.ndarray,
                   at_drives: dict[str, np.ndarray], p: ClinicalParams
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Synaptic state Z and rated symptom load S at the visits ``at``: (n, len(at)) each.

    ``drives`` hold the signalling outputs ``formation_drive``, ``elimination_drive``,
    ``synaptic_potentiation`` and ``structural_formation`` on the grid (n, len(grid)),
    ``at_drives`` the same at the visits. D starts at its steady state at the first grid
    point (the pool M at its own, with nothing restored) and follows
    ``dD/dt = k (F' - E D)``, F' the formation drive less the share of its structural
    part that restores (module docstring), with the drives held over each step (exact
    update); the deficit ``max(0, 1 - (D + L + Q) (1 + w P))`` is low-passed with
    ``tau_symptom_h``, linear within a step. A visit between grid points is reached
    from the point before it, so visits never enter the grid's own chain."""
    v = p.values
    k_h, w, tau = v["k_turnover"] / 24.0, v["potentiation_weight"], v["tau_symptom_h"]
    f_raw = np.asarray(drives["formation_drive"], dtype=float)
    e = _clip_below(np.asarray(drives["elimination_drive"], dtype=float), 1e-9)
    m = f_raw.shape[1]
    steps = np.diff(np.asarray(grid, dtype=float))
    # the exponentials as arrays (numpy's), the recurrences compiled (_grid_chains, which
    # clips F and P at 0 as it reads them): the same operations in the same order as
    # _advance_density and _advance_load
    decay = np.exp(-k_h * e[:, :-1] * steps[None, :])
    xs = np.asarray(drives["structural_formation"], dtype=float)
    pool = np.array([v["restore_direct_share"], k_h, v["restore_pool_share"],
                     24.0 * v["restore_pool_memory_d"], v["k_restore"],
                     v["k_stabilise"] / 24.0, v["k_turnover_stable"] / 24.0])
    d, g, s, deficit = _grid_chains(f_raw, e, np.asarray(drives["synaptic_potentiation"],
                                                         dtype=float),
                                    w, decay, steps, np.exp(-steps / tau), tau, xs, pool)
    at, grid = np.asarray(at, dtype=float), np.asarray(grid, dtype=float)
    if at.size and (float(at.min()) < grid[0] or float(at.max()) > grid[-1] + 1e-9):
        # a visit off the grid would read the state at its end, silently
        raise ValueError(f"visits from {at.min():g} to {at.max():g} h lie outside the "
                         f"history grid ({grid[0]:g} to {grid[-1]:g} h)")
    i = np.clip(np.searchsorted(grid, at, side="right") - 1, 0, m - 1)
    h = np.clip(at - grid[i], 0.0, None)[None, :]
    x_i = np.clip(xs[:, i], 0.0, None)
    f_i = np.clip(f_raw[:, i] - x_i, 0.0, None) + v["restore_direct_share"] * x_i
    d_at = _advance_density(d[:, i], f_i, e[:, i], k_h, h)
    # the restored synapses at a visit between grid points: their value at the point
    # before it (they change over days)
    z_at = (d_at + g[:, i]) * (1.0 + w * np.clip(at_drives["synaptic_potentiation"], 0.0,
                                                 None))
    x_at = np.clip(1.0 - z_at, 0.0, None)
    on_grid = h <= 0
    s_at = np.where(on_grid, s[:, i],
                    _advance_load(s[:, i], deficit[:, i], x_at, tau, np.where(on_grid, 1.0, h)))
    return z_at, s_at


def placebo_fraction(times: np.ndarray, share: np.ndarray, p: ClinicalParams,
                     start_h: float | None = 0.0) -> np.ndarray:
    """(n, len(times)) fraction of the symptom load lifted by the placebo response: zero
    before ``start_h`` (the first treatment visit: the arm's first drug event, saline
    or an active placebo included), then ``share (1 - exp(-(t - start_h) / tau))``; zero
    throughout for an arm with no treatment (``start_h`` None)."""
    times = np.asarray(times, dtype=float)
    if start_h is None:
        return np.zeros((share.size, times.size))
    tau_h = 24.0 * p.values["placebo_tau_d"]
    t = np.clip(times - float(start_h), 0.0, None)
    return share[:, None] * (1.0 - np.exp(-t / tau_h))[None, :]


FLUCTUATION_ORIGIN_D = -365.0  # days: where every patient's mood path starts


def mood_days(at: np.ndarray) -> np.ndarray:
    """The days (from ``FLUCTUATION_ORIGIN_D``) on which mood paths are drawn for visits
    ``at`` (h): one standard normal of the patient's stream per day."""
    at = np.asarray(at, dtype=float) / 24.0
    if at.size and float(at.min()) < FLUCTUATION_ORIGIN_D:
        # an earlier start would shift every day's draw, so every other visit's mood
        raise ValueError(f"a visit at {at.min():g} d precedes the mood paths' origin "
                         f"({FLUCTUATION_ORIGIN_D:g} d)")
    start = FLUCTUATION_ORIGIN_D
    return np.arange(start, float(np.ceil(at.max())) + 1.0)


def mood_paths(z: np.ndarray, at: np.ndarray, p: ClinicalParams) -> np.ndarray:
    """(n, len(at)) log-scale mood fluctuations at times ``at`` (h) from each patient's
    standard normals ``z`` (n, len(mood_days(at))): see :func:`mood_fluctuation`."""
    v = p.values
    days = mood_days(at)
    a = np.exp(-1.0 / v["fluctuation_tau_d"])
    # x_k = a x_(k-1) + step_sd z_k from the stationary x_0 = sd z_0, as one linear
    # recursive filter (no Python loop over the ~400 days of every patient)
    drive = v["fluctuation_sd"] * np.sqrt(1.0 - a * a) * z
    drive[:, 0] = v["fluctuation_sd"] * z[:, 0]
    path = lfilter([1.0], [1.0, -a], drive, axis=1)
    return interp_rows(np.asarray(at, dtype=float) / 24.0, days, path)


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """(rows, len(x)): ``np.interp(x, xp, row)`` for every row of ``fp`` at once, with
    np.interp's arithmetic (slope x (x - xp[j]) + fp[j]; fp[j] where x is a knot; the
    end values outside), so the same numbers; ``xp`` increasing, at least 2 knots."""
    x = np.asarray(x, dtype=float)
    j = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, xp.size - 2)
    slope = (fp[:, j + 1] - fp[:, j]) / (xp[j + 1] - xp[j])
    out = slope * (x - xp[j]) + fp[:, j]
    out = np.where(x == xp[j], fp[:, j], out)
    out = np.where(x >= xp[-1], fp[:, -1:], out)
    return np.where(x < xp[0], fp[:, :1], out)


def mood_fluctuation(rng: np.random.Generator, at: np.ndarray, p: ClinicalParams
                     ) -> np.ndarray:
    """A patient's log-scale mood fluctuation at times ``at`` (h): a stationary
    Ornstein-Uhlenbeck path (SD ``fluctuation_sd``, correlation time
    ``fluctuation_tau_d``) drawn day by day from a fixed origin a year before time 0 and
    interpolated linearly, so a visit's value does not depend on the other visits."""
    z = rng.standard_normal(mood_days(at).size)
    return mood_paths(z[None, :], at, p)[0]


def hill(x: np.ndarray, o50: float, n: float) -> np.ndarray:
    y = np.power(np.clip(x, 0.0, None) / o50, n)
    return y / (1.0 + y)


def _mean_one_lognormal(cv: float) -> tuple[float, float]:
    """(loc, sigma) of the normal whose exp is log-normal with mean 1 and CV ``cv``."""
    sig = np.sqrt(np.log1p(cv**2))
    return -0.5 * sig**2, sig


def _placebo_share(x: float) -> float:
    """A patient's placebo share from its normal draw: clipped to [0, 0.9] (np.clip's
    value, without its cost on a scalar)."""
    return min(max(float(x), 0.0), 0.9)


@functools.lru_cache(maxsize=64)
def _trait_steps(n_items: tuple, later_items: tuple, domain_sizes: tuple
                 ) -> tuple[tuple[tuple, ...], tuple[str, ...]]:
    """PatientTraits' draws in their order, and the scales with profiles (built once per
    set of scales, not per patient)."""
    steps = [("gain",), ("placebo",)]
    steps += [("profile", name, k) for name, k in n_items]
    steps += [("psychotomimetic",)]
    steps += [("profile", name, k) for name, k in later_items]
    steps += [("domain_patterns", domain_sizes), ("self_report_bias",)]
    return tuple(steps), tuple(s[1] for s in steps if s[0] == "profile")


class PatientTraits:
    """A patient's clinical traits, drawn from the patient's own stream (the same for
    every scale and visit): symptom gain, placebo share, item profile of each scale
    (``n_items``), sensitivity to the psychotomimetic effects, then the profiles of the
    scales in ``later_items`` (HDRS-17, the QIDS-SR16 domains), the patient's pattern
    within each QIDS-SR16 domain (``domain_sizes``: the domain's items' weights, the
    highest 1) and self-report bias (QIDS points, normal, SD ``self_report_bias_sd``).

    The draws are in that fixed order and the later ones come after the earlier ones, so
    traits added later leave the earlier traits of every patient as they were. They are
    made on first use, each with the draws before it: a scale that reads only the early
    traits (MADRS: gain, placebo share, its profile) does not pay for the later ones,
    and every trait has the same value whichever is read first."""

    def __init__(self, rng, p: ClinicalParams, n_items: dict[str, int],
                 later_items: dict[str, int] | None = None,
                 domain_sizes: tuple[int, ...] = (), drawn: dict | None = None):
        """``rng``: the patient's stream (a Generator), or a function returning it, called
        only when a trait beyond ``drawn`` is read; ``drawn``: the first traits in their
        order ("gain", "placebo", ("profile", scale), ...), already drawn from that
        stream, which the function then returns placed after them
        (:func:`early_traits`)."""
        self._rng, self._v = rng, p.values
        self._steps, names = _trait_steps(tuple(n_items.items()),
                                          tuple((later_items or {}).items()),
                                          tuple(domain_sizes))
        self._done = 0
        self._drawn: dict = {}
        for key, value in (drawn or {}).items():
            step = self._steps[self._done]
            if key != (("profile", step[1]) if step[0] == "profile" else step[0]):
                raise ValueError(f"drawn traits out of order: {key!r} where {step!r} comes")
            self._drawn[key] = value
            self._done += 1
        self.profiles = _Profiles(self, names)

    def _draw(self, key):
        """The trait ``key`` ("gain", ..., or ("profile", scale)), drawing the traits
        before it first if they are not drawn yet."""
        v = self._v
        while key not in self._drawn:
            if not isinstance(self._rng, np.random.Generator):
                self._rng = self._rng()  # the stream, placed after the drawn traits
            rng = self._rng
            step = self._steps[self._done]
            self._done += 1
            if step[0] in ("gain", "psychotomimetic"):
                loc, sig = _mean_one_lognormal(
                    v["madrs_gain_cv" if step[0] == "gain" else "psychotomimetic_cv"])
                self._drawn[step[0]] = float(np.exp(rng.normal(loc, sig)))
            elif step[0] == "placebo":
                self._drawn["placebo"] = _placebo_share(
                    rng.normal(v["placebo_mean"], v["placebo_sd"]))
            elif step[0] == "profile":
                k = step[2]
                self._drawn[("profile", step[1])] = rng.dirichlet(
                    np.full(k, v["item_profile_conc"])) * k
            elif step[0] == "domain_patterns":
                patterns = []
                for k in step[1]:
                    w = rng.dirichlet(np.ones(k))
                    patterns.append(w / w.max())
                self._drawn["domain_patterns"] = patterns
            else:
                self._drawn["self_report_bias"] = float(
                    v["self_report_bias_sd"] * rng.standard_normal())
        return self._drawn[key]

    @property
    def gain(self) -> float:
        return self._draw("gain")

    @property
    def placebo(self) -> float:
        return self._draw("placebo")

    @property
    def psychotomimetic(self) -> float:
        return self._draw("psychotomimetic")

    @property
    def domain_patterns(self) -> list[np.ndarray]:
        return self._draw("domain_patterns")

    @property
    def self_report_bias(self) -> float:
        return self._draw("self_report_bias")


@numba.njit(cache=True)
def _early_draws(states, gain_loc, gain_sig, placebo_mean, placebo_sd, conc, k):
    """PatientTraits' first three draws for every patient's stream ``states`` (advanced
    in place): rng.normal(gain_loc, gain_sig), rng.normal(placebo_mean, placebo_sd) and
    rng.dirichlet(k x [conc]) (conc > 1: gammas normalised by their sum), as numpy
    makes them."""
    n = states.shape[0]
    gain_x = np.empty(n)
    placebo_x = np.empty(n)
    profile = np.empty((n, k))
    for i in range(n):
        st = states[i]
        gain_x[i] = gain_loc + gain_sig * standard_normal(st)
        placebo_x[i] = placebo_mean + placebo_sd * standard_normal(st)
        acc = 0.0
        for j in range(k):
            profile[i, j] = standard_gamma(st, conc)
            acc = acc + profile[i, j]
        inv = 1.0 / acc
        for j in range(k):
            profile[i, j] = profile[i, j] * inv
    return gain_x, placebo_x, profile


def early_traits(states: np.ndarray, streams, p: ClinicalParams, n_items: dict[str, int],
                 later_items: dict[str, int] | None = None,
                 domain_sizes: tuple[int, ...] = ()) -> list[PatientTraits]:
    """The traits of a chunk's patients, the first three (gain, placebo share, the first
    scale's item profile) drawn for the whole chunk in compiled code from the patients'
    streams' PCG64 ``states`` ((n, 4), :func:`ketasim.core.pcg64.seeded_states`); the
    same numbers as drawing them one patient at a time (PatientTraits). ``streams(i)``
    returns patient i's Generator; it is called only if a later trait is read, and then
    placed where the compiled draws left off."""
    v = p.values
    first, k = next(iter(n_items.items()))
    if v["item_profile_conc"] <= 1.0:  # numpy draws gamma(<= 1) another way
        return [PatientTraits(streams(i), p, n_items, later_items, domain_sizes)
                for i in range(states.shape[0])]
    loc, sig = _mean_one_lognormal(v["madrs_gain_cv"])  # as PatientTraits draws them
    st = np.ascontiguousarray(states, dtype=np.uint64).copy()
    gain_x, placebo_x, profile = _early_draws(
        st, float(loc), float(sig), float(v["placebo_mean"]), float(v["placebo_sd"]),
        float(v["item_profile_conc"]), int(k))
    gain = np.exp(gain_x).tolist()
    profile = profile * k

    def later(i):
        return lambda: set_generator_state(streams(i), st[i])

    return [PatientTraits(later(i), p, n_items, later_items, domain_sizes,
                          drawn={"gain": gain[i],
                                 "placebo": _placebo_share(placebo_x[i]),
                                 ("profile", first): profile[i]})
            for i in range(st.shape[0])]


class _Profiles(Mapping):
    """A patient's item profiles by scale, each drawn on first use (PatientTraits)."""

    def __init__(self, traits: PatientTraits, names: list[str]):
        self._traits, self._names = traits, names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._traits._draw(("profile", name))

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


RATER_DRIFT_PERIOD_H = 28 * 24.0  # rater_drift_sd is in points per 4 weeks


class Rater:
    """A clinician rater of an arm's pool, the same person for all of a patient's
    visits: a persistent severity bias (normal, SD ``rater_bias_sd``) and a linear drift
    over the study from time 0 (slope normal, SD ``rater_drift_sd`` per 4 weeks), both
    in MADRS points. The two are drawn from the rater's own stream, as standard normals
    times the SDs."""

    def __init__(self, rng: np.random.Generator, p: ClinicalParams):
        z = rng.standard_normal(2)
        self.bias = float(p.values["rater_bias_sd"] * z[0])
        self.drift = float(p.values["rater_drift_sd"] * z[1])

    def shift(self, t_h: float, visit_z: float, p: ClinicalParams) -> float:
        """The rater's shift of a MADRS total at time ``t_h`` (h): bias, drift to that
        time, and the visit's own shift (``visit_z`` standard normal times ``rater_sd``)."""
        return rater_shift(self.bias, self.drift, float(t_h), float(visit_z), p)


def rater_shift(bias, drift, t_h, visit_z, p: ClinicalParams):
    """:meth:`Rater.shift` for arrays of raters (``bias``, ``drift``), times and visit
    draws (broadcast), with the same arithmetic."""
    return bias + drift * t_h / RATER_DRIFT_PERIOD_H + p.values["rater_sd"] * visit_z


def item_scores(latent_total, profile: np.ndarray, item_max: np.ndarray,
                item_min: np.ndarray, noise: np.ndarray, rater_effect) -> np.ndarray:
    """Integer item scores from the latent total shared over the items by the patient's
    profile (scaled to each item's range), plus the rater's shift and the item noise
    ``noise``, rounded and clipped to each item's range. Broadcasts: the items are the
    last axis (``latent_total`` and ``rater_effect`` carry a trailing axis of 1 for
    batches of ratings), with the same arithmetic, in the same order, as one rating."""
    span = item_max - item_min
    share = profile * span / span.sum()
    if np.ptp(span) > 0:
        # items of unequal ranges (HDRS-17: nine 0-4, eight 0-2): the profile-weighted
        # shares sum to sum(p s) / sum(s), not 1, so renormalise them, or the unrounded
        # total would be the latent total times a patient-specific factor (SD about
        # 0.03; fixed 2026-12-07). Equal ranges (MADRS, CADSS, BPRS) sum to 1 already
        # and keep their arithmetic.
        share = share / share.sum(axis=-1, keepdims=True)
    latent = item_min + latent_total * share + rater_effect * span / span.sum()
    return np.clip(np.rint(latent + noise), item_min, item_max)


def rate_items(latent_total: float, profile: np.ndarray, item_max: np.ndarray,
               item_min: np.ndarray, rng: np.random.Generator, p: ClinicalParams,
               rater_effect: float) -> np.ndarray:
    """Integer item scores of one rating: the latent total shared over the items by the
    patient's profile (scaled to each item's range), plus the rater's shift for this
    visit and independent item noise (drawn from ``rng``), rounded and clipped to each
    item's range (:func:`item_scores`)."""
    noise = rng.normal(0.0, p.values["item_noise_sd"], item_max.size)
    return item_scores(latent_total, profile, item_max, item_min, noise, rater_effect)


def rate_domains(latent_total: float, profile: np.ndarray, patterns: list[np.ndarray],
                 domain_max: float, rng: np.random.Generator, p: ClinicalParams
                 ) -> list[np.ndarray]:
    """Integer item scores (0..``domain_max``) of a scale scored by domains (the total
    is the sum of each domain's highest item): the latent total shared over the domains
    by the patient's ``profile``, each domain's level carried in full by its leading
    item and in part by the others (``patterns``, the highest weight 1), plus
    independent item noise, rounded and clipped. One array per domain."""
    share = profile / profile.size
    out = []
    for level, w in zip(latent_total * share, patterns):
        noisy = level * w + rng.normal(0.0, p.values["item_noise_sd"], w.size)
        out.append(np.clip(np.rint(noisy), 0.0, domain_max))
    return out
