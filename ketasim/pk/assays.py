"""Pharmacokinetic assays: plasma and brain drug levels by LC-MS/MS.

Noise model: log-normal proportional error (``cv``) plus additive error (``sd_add``);
values below the lower limit of quantification (``lloq``) are reported as missing
(NaN), as bioanalytical labs report BLQ samples. Brain levels assume 1 g tissue = 1 mL.

Plasma ``sampling``: ``arterial`` (the default) reads the central compartment;
``venous`` reads a peripheral vein, which lags arterial blood after a bolus or during a
fast infusion: ``dC_v/dt = k_av (C_a - C_v)`` with ``k_av`` the registry's
``pk.arteriovenous_k`` (the venous value is the arterial course filtered by an
exponential kernel, evaluated at 1-min midpoints over the preceding hour, which covers
six time constants for any ``k_av`` in the registry's range, 6-60 per hour).

Plasma ``residual``: ``model`` (the default) gives an analyte the proportional residual
error of its species' population PK model where the registry has one
(``pk.<species>.<analyte>.residual_cv``: in humans ketamine and its enantiomers 23.6%,
norketamine 14.3%, Fanta et al. 2015 via Otto et al. 2021), which holds the assay's own
error and what the model leaves unexplained from sample to sample, and ``cv`` elsewhere;
``assay`` gives every analyte ``cv``.
"""

from __future__ import annotations

import numpy as np

from ketasim.core.assay import RODENTS, Assay, AssayContext, AssayRows, Readout
from ketasim.pk.compounds import ANALYTES

# plasma readouts: one per analyte the compound files may count toward (``drug``: every
# dosed compound whose file reports as 'drug', summed: memantine, MK-801, psilocin, a
# user's compound)
_PLASMA = {f"{a}_plasma_ng_ml": f"{a}_plasma" for a in ANALYTES}
# the readouts of the first release share one noise stream; analytes added later draw
# theirs from a stream of their own (keyed by the readout), so the noise of the readouts
# before them stays as it was
_JOINT_STREAM = frozenset(f"{a}_plasma_ng_ml" for a in
                          ("ketamine", "esketamine", "arketamine", "norketamine", "hnk"))
_BRAIN = {
    "ketamine_brain_ng_g": "ketamine_brain",
    "norketamine_brain_ng_g": "norketamine_brain",
    "hnk_brain_ng_g": "hnk_brain",
    "drug_brain_ng_g": "drug_brain",
}
_OWN_STREAM = (frozenset(_PLASMA) - _JOINT_STREAM) | {"drug_brain_ng_g"}


_VENOUS_POINTS = 60
_VENOUS_SPAN_H = 1.0  # the arterial course read before each venous sample


def _venous_grid(t: float) -> np.ndarray:
    """Times (h) before a sample at ``t`` where the arterial course is read: 1-min
    midpoints over the preceding hour."""
    return t - _VENOUS_SPAN_H + (np.arange(_VENOUS_POINTS) + 0.5) * (
        _VENOUS_SPAN_H / _VENOUS_POINTS)


def venous(arterial: np.ndarray, grid: np.ndarray, t: float, k: float) -> np.ndarray:
    """Venous level at ``t`` from the arterial levels on :func:`_venous_grid` (last
    axis): the exponential kernel ``k exp(-k (t - s))``, normalised over the span."""
    w = np.exp(-k * (t - grid))
    return (arterial * w).sum(axis=-1) / w.sum()


def _true_levels(ctx: AssayContext, mapping: dict[str, str], at: np.ndarray) -> np.ndarray:
    readouts = list(mapping)
    if ctx.options.get("sampling", "arterial") == "arterial":
        return np.stack([ctx.trajectory(mapping[r], at) for r in readouts], axis=2)
    k = float(ctx.registry.value("pk.arteriovenous_k"))
    if k * _VENOUS_SPAN_H < 6.0:
        raise ValueError(f"pk.arteriovenous_k: got {k!r} per hour; venous sampling needs "
                         f">= {6.0 / _VENOUS_SPAN_H:g} (the kernel must fit in the hour "
                         "read before each sample)")
    out = np.empty((ctx.n, len(at), len(readouts)))
    for j, t in enumerate(at):
        grid = _venous_grid(float(t))
        for m, r in enumerate(readouts):
            out[:, j, m] = venous(ctx.trajectory(mapping[r], grid), grid, float(t), k)
    return out


def _plasma_times(at: np.ndarray, options: dict) -> np.ndarray:
    """The arterial course at the sample times, and for venous sampling over the hour
    before each."""
    at = np.asarray(at, dtype=float)
    if options.get("sampling", "arterial") == "arterial":
        return at
    return np.unique(np.concatenate([at, *(_venous_grid(float(t)) for t in at)]))


# the population PK model whose residual error a plasma readout takes (option
# ``residual: model``): the enantiomers are fitted as S-ketamine is
_RESIDUAL_OF = {"ketamine_plasma_ng_ml": "ketamine", "esketamine_plasma_ng_ml": "ketamine",
                "arketamine_plasma_ng_ml": "ketamine",
                "norketamine_plasma_ng_ml": "norketamine"}


def _residual_cv(ctx: AssayContext, readout: str) -> float:
    """The proportional CV of ``readout``: its species' population-model residual error
    where the registry gives one and the option ``residual`` is ``model``, else ``cv``."""
    # brain_pk shares this measurement and has no ``residual`` option: its homogenate
    # assay error is ``cv``
    if ctx.options.get("residual", "assay") == "model" and readout in _RESIDUAL_OF:
        name = f"pk.{ctx.species}.{_RESIDUAL_OF[readout]}.residual_cv"
        if name in ctx.registry:
            return float(ctx.registry.value(name))
    return float(ctx.options["cv"])


def _lcms(name: str, mapping: dict[str, str], unit: str):
    def measure(ctx: AssayContext, at: np.ndarray) -> AssayRows:
        readouts = list(mapping)
        true = _true_levels(ctx, mapping, at)
        joint = [m for m, r in enumerate(readouts) if r not in _OWN_STREAM]
        # per sample time its own stream (adding a sample leaves the others alone):
        # (subjects, times, 2, readouts) -> (subjects, 2, times, readouts)
        z = np.empty((ctx.n, 2, *true.shape[1:]))
        z[:, :, :, joint] = ctx.noise_at(name, at, (2, len(joint))).transpose(0, 2, 1, 3)
        for m, r in enumerate(readouts):
            if r in _OWN_STREAM:
                z[:, :, :, m] = ctx.noise_at(f"{name}.{r}", at, (2,)).transpose(0, 2, 1)
        cv = np.array([_residual_cv(ctx, r) for r in readouts])
        sigma = np.sqrt(np.log1p(cv**2))
        measured = np.clip(true, 0.0, None) * np.exp(sigma * z[:, 0] - sigma**2 / 2) \
            + float(ctx.options["sd_add"]) * z[:, 1]
        measured = np.where(measured < float(ctx.options["lloq"]), np.nan, measured)
        return ctx.rows(measured, at, readouts, [unit] * len(readouts))
    return measure


PLASMA_PK = Assay(
    "plasma_pk", "plasma ketamine, enantiomers, metabolites, midazolam and other dosed "
    "compounds (drug) by LC-MS/MS",
    tuple(Readout(r, "ng/mL") for r in _PLASMA), _lcms("plasma_pk", _PLASMA, "ng/mL"),
    outputs=tuple(_PLASMA.values()), sample_times=_plasma_times,
    options={"cv": 0.1, "sd_add": 0.2, "lloq": 1.0, "sampling": "arterial",
             "residual": "model"},
    choices={"sampling": ("arterial", "venous"), "residual": ("model", "assay")})
BRAIN_PK = Assay(
    "brain_pk", "brain ketamine, metabolites and other dosed compounds (drug) by LC-MS/MS "
    "of homogenate",
    tuple(Readout(r, "ng/g") for r in _BRAIN), _lcms("brain_pk", _BRAIN, "ng/g"),
    outputs=tuple(_BRAIN.values()), options={"cv": 0.15, "sd_add": 1.0, "lloq": 5.0},
    terminal=True,
    species=RODENTS)
