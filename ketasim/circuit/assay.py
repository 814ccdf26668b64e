"""``calcium_imaging``: two-photon GCaMP imaging of a prefrontal field of view.

At each session time the slow layers set the circuit's state: the recurrent coupling
follows the subject's density of spines carrying a synapse relative to its own baseline
(the spine layer, ground truth over ``branches`` simulated branches; the sustained path)
scaled up by the potentiation of existing synapses (the signalling layer; the acute
path), and excitability follows the signalling layer's activity drive. The circuit runs ``minutes`` of activity
at ``frame_rate_hz``; the raw fluorescence of ``cells`` cells goes through a lab pipeline
(neuropil subtraction with factor 0.7, baseline F0 as the 8th percentile of the session,
dF/F = (F - F0) / F0), and the readouts are computed by :mod:`ketasim.analysis.calcium`,
the same functions a lab runs on its own dF/F matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ketasim.analysis.calcium import summarize_session
from ketasim.circuit.network import CircuitParams, run_sessions_rate
from ketasim.core.assay import (
    RODENTS,
    Assay,
    AssayContext,
    AssayRows,
    Readout,
    session_key,
)

BASELINE_PERCENTILE = 8.0  # F0 of a session (a common pipeline choice, e.g. suite2p-style)
READOUTS = ("calcium_transient_rate_per_min", "sync_event_rate_per_min",
            "sync_fraction_per_event", "mean_pairwise_r", "correlated_pair_fraction")
UNITS = ("per min", "per min", "fraction", "1", "fraction")
_SUMMARY_KEYS = ("transient_rate_per_min", "sync_event_rate_per_min",
                 "sync_fraction_per_event", "mean_pairwise_r", "correlated_pair_fraction")


def dff_from_raw(raw: np.ndarray, neuropil: np.ndarray, factor: float) -> np.ndarray:
    """dF/F per cell (rows) of one session: neuropil-subtracted, baseline the
    ``BASELINE_PERCENTILE``th percentile over the session."""
    f = raw.astype(float) - factor * neuropil.astype(float)
    f0 = np.percentile(f, BASELINE_PERCENTILE, axis=1, keepdims=True)
    f0 = np.where(np.abs(f0) < 1e-6, 1e-6, f0)
    return (f - f0) / f0


@dataclass(frozen=True)
class CircuitStage:
    """The prefrontal circuit's state for a chunk of an arm's subjects, computed once and
    read by every assay that runs the circuit (calcium imaging, the behaviour tests): the
    circuit parameters and, per subject and spine recording, the number of spines
    carrying a synapse on each simulated branch (the sustained path), with the
    signalling trajectories (the acute path)."""

    params: CircuitParams
    rec_times: np.ndarray
    syn: np.ndarray  # (n, n_rec, n_branch) synapse-bearing spines per branch
    trajectory: Callable[[str, np.ndarray], np.ndarray]
    # the pre-protocol baseline (h): the spine engine's start, one of ``rec_times``
    # (not the first of them: an imaging session in the burn-in may come earlier)
    baseline_h: float

    @staticmethod
    def build(recording, trajectory, registry, baseline_h: float) -> CircuitStage:
        times = np.asarray(recording.times_h)
        if not np.any(np.isclose(times, baseline_h)):
            raise ValueError(f"circuit baseline {baseline_h:g} h is not a spine recording "
                             f"time ({times.tolist()})")
        syn = ((recording.alive == 1) & (recording.synapse == 1)).sum(axis=3)
        return CircuitStage(CircuitParams.from_registry(registry), times, syn, trajectory,
                            float(baseline_h))

    def index(self, t: float) -> int:
        """The spine recording at time ``t`` (h)."""
        return int(np.flatnonzero(np.isclose(self.rec_times, t))[0])

    def inputs(self, at: np.ndarray, branches: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, len(at)) coupling and activity drive at the session times. The coupling is
        the density of spines carrying a synapse on the first ``branches`` branches
        relative to the subject's own baseline (the sustained path: new spines), times
        ``1 + g_potentiation P`` with P the signalling layer's potentiation of existing
        synapses (the acute path)."""
        syn = self.syn[:, :, :int(branches)].sum(axis=2)
        base = syn[:, self.index(self.baseline_h)].astype(float)  # pre-protocol baseline
        idx = [self.index(t) for t in at]
        coupling = syn[:, idx] / np.maximum(base, 1.0)[:, None]
        potentiation = self.trajectory("synaptic_potentiation", at)
        g = self.params.values["g_potentiation"]
        return coupling * (1.0 + g * potentiation), self.trajectory("activity_drive", at)


CHUNK_BYTES = 256 * 2**20  # output buffers of one circuit call (all subjects in parallel)


def simulate_chunks(cp, coupling: np.ndarray, drive: np.ndarray, n_frames: int, fr: float,
                    n_cells: int, seeds: np.ndarray, rate: bool = False):
    """Run the circuit for all subjects, as many per (parallel) call as fit in
    ``CHUNK_BYTES``; yields ``(first subject, fluorescence, neuropil, population rate)``
    with arrays (k, n_sess, ...) of the chunk's k subjects."""
    n_sub, n_sess = coupling.shape
    # fluorescence and neuropil, and the population rate where asked (float32 each)
    per_subject = (2 * n_cells + (1 if rate else 0)) * n_sess * n_frames * 4
    k = max(1, min(n_sub, CHUNK_BYTES // max(per_subject, 1)))
    for s0 in range(0, n_sub, k):
        m = min(k, n_sub - s0)
        raw = np.zeros((m, n_sess, n_cells, n_frames), np.float32)
        npl = np.zeros_like(raw)
        pop = np.zeros((m, n_sess, n_frames if rate else 0), np.float32)
        run_sessions_rate(cp.vector(), np.ascontiguousarray(coupling[s0:s0 + m]),
                          np.ascontiguousarray(drive[s0:s0 + m]), n_frames, fr, n_cells,
                          np.ascontiguousarray(seeds[s0:s0 + m]), raw, npl, pop)
        yield s0, raw, npl, pop


def frames_check(o: dict) -> tuple[str, str] | None:
    """A session must hold frames: ``minutes`` x 60 x ``frame_rate_hz`` at least 2 (an
    Assay.check: the option at fault and what is expected, or None)."""
    if round(float(o["minutes"]) * 60.0 * float(o["frame_rate_hz"])) < 2:
        expected = (f"a session of at least 2 frames at {o['frame_rate_hz']:g} Hz "
                    "(minutes x 60 x frame_rate_hz)")
        return ("minutes", expected)
    return None


def _calcium(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    o = ctx.options
    cp = ctx.circuit.params
    coupling, drive = ctx.circuit.inputs(at, o["branches"])
    fr = float(o["frame_rate_hz"])
    n_frames = round(float(o["minutes"]) * 60.0 * fr)
    n_cells = min(int(o["cells"]), int(cp.values["n_exc"]))
    seeds = np.array([ctx.rng(s).integers(2**62) for s in range(ctx.n)], dtype=np.int64)
    out = np.full((ctx.n, len(at), len(READOUTS)), np.nan)
    kept = {}
    for s0, raw, npl, _ in simulate_chunks(cp, coupling, drive, n_frames, fr, n_cells, seeds):
        for i in range(raw.shape[0]):
            s = s0 + i
            for j in range(len(at)):
                g = ctx.rng(s, session_key("calcium_imaging_analysis", at[j]))
                dff = dff_from_raw(raw[i, j], npl[i, j], cp.values["neuropil_factor"])
                sm = summarize_session(dff, fr, rng=g,
                                       n_shuffles=int(o["shuffles"])).as_dict()
                out[s, j] = [sm[k] for k in _SUMMARY_KEYS]
                if ctx.subjects[s] == 0:
                    kept[float(at[j])] = dff.astype(np.float32)
    if kept:
        ctx.keep("calcium", kept)  # the arm's first subject's dF/F per session (report)
    return ctx.rows(out, at, READOUTS, UNITS)


def _first_calcium(kept: list[dict]) -> dict:
    return next(({"calcium": k["calcium"]} for k in kept if "calcium" in k), {})


CALCIUM = Assay(
    "calcium_imaging", "two-photon calcium imaging of a prefrontal field of view",
    tuple(Readout(r, u) for r, u in zip(READOUTS, UNITS, strict=True)), _calcium,
    outputs=("activity_drive", "synaptic_potentiation"),
    options={"cells": 60, "minutes": 5.0, "frame_rate_hz": 30.0, "branches": 10,
             "shuffles": 200, "cell": "mpfc_l5"},
    positive=("cells", "minutes", "frame_rate_hz", "branches", "shuffles"),
    check=frames_check,
    reads=("circuit",), figures=("ketasim.report.spine_maps:calcium_figures",),
    merge_kept=_first_calcium,
    species=RODENTS)
