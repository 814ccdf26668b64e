"""Run the spine engine for a cohort, driven by the signalling layer's drives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketasim.core.streams import PURPOSE_SPINES, xoroshiro_states
from ketasim.spines.engine import ORIGINS, SpineParams, run_spines

DT_H = 6.0  # engine step (h): resolves the 12-24 h formation window and daily imaging
DRIVES = ("formation_drive", "elimination_drive", "synaptic_protein")  # required; optional:
# spine_size_drive, spine_loss_d1, spine_loss_d2 (see cell_drives)
CLASS_THRESHOLDS_UM3 = (0.02, 0.12)  # filopodium/thin, thin/mushroom head volume


# what the recording keeps per spine slot (recording, branch): flags, position (um), log
# head volume, origin, synapse, stubby, identity
SLOT_FIELDS = {"alive": np.uint8, "pos": np.float64, "logsize": np.float64,
               "origin": np.int8, "synapse": np.uint8, "stubby": np.uint8, "sid": np.int64}
SLOT_BYTES = sum(np.dtype(t).itemsize for t in SLOT_FIELDS.values())


def slot_capacity(params: SpineParams) -> int:
    """Spine slots per branch: three times the mean count, plus a margin."""
    return int(3 * params.values["density"] * params.values["branch_length"]) + 16


def recording_bytes(params: SpineParams, n_record: int, n_branches: int) -> int:
    """Bytes of one subject's recording (what a chunk of subjects holds)."""
    return n_record * n_branches * slot_capacity(params) * SLOT_BYTES


@dataclass
class SpineRecording:
    """Snapshots of every spine of every subject at the recording times."""

    times_h: np.ndarray
    alive: np.ndarray  # (n_sub, n_rec, n_branch, cap) uint8
    pos: np.ndarray
    logsize: np.ndarray
    origin: np.ndarray
    synapse: np.ndarray
    stubby: np.ndarray
    sid: np.ndarray
    branch_length_um: float
    counts: np.ndarray  # (n_sub, 4): formations, eliminations, lost (branch full), spine-steps

    def classes(self) -> np.ndarray:
        """Morphology class per slot: 0 filopodium, 1 thin, 2 stubby, 3 mushroom."""
        size = np.exp(self.logsize)
        lo, hi = CLASS_THRESHOLDS_UM3
        cls = np.where(size < lo, np.where(self.synapse == 1, 1, 0),
                       np.where(size < hi, 1, 3))
        return np.where((self.stubby == 1) & (size >= lo), 2, cls).astype(np.int8)

    def density_per_10um(self) -> np.ndarray:
        """(n_sub, n_rec, n_branch) true density per 10 um."""
        return self.alive.sum(axis=3) / self.branch_length_um * 10.0

    def table(self, arm: str = "all") -> pd.DataFrame:
        """Ground-truth tracking table (every live spine at every recording)."""
        s, r, b, k = np.nonzero(self.alive)
        names = np.array(["filopodium", "thin", "stubby", "mushroom"])
        return pd.DataFrame({
            "arm": arm, "subject": s.astype(str), "branch": b.astype(str),
            "spine_id": self.sid[s, r, b, k].astype(str), "time_h": self.times_h[r],
            "position_um": self.pos[s, r, b, k], "present": True,
            "branch_length_um": self.branch_length_um,
            "size": np.exp(self.logsize[s, r, b, k]),
            "class": names[self.classes()[s, r, b, k]],
            "origin": np.array(ORIGINS)[self.origin[s, r, b, k]],
        })


def cell_drives(params: SpineParams, drives: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """The elimination and mature-size drives as cell type ``params`` reads them: the
    elimination drive plus its gains on the D1 and D2 projection neurons' denervation
    spine-loss drives (``spine_loss_d1``, ``spine_loss_d2``; absent drives count as 0),
    and the size drive raised to the cell's exponent (absent: 1)."""
    v = params.values
    elim = np.asarray(drives["elimination_drive"], dtype=float)
    for name, gain in (("spine_loss_d1", v.get("d1_loss_gain", 0.0)),
                       ("spine_loss_d2", v.get("d2_loss_gain", 0.0))):
        if gain and name in drives:
            elim = elim + gain * np.asarray(drives[name], dtype=float)
    size = np.asarray(drives.get("spine_size_drive", np.ones_like(elim)), dtype=float)
    size = size ** v.get("size_drive_exp", 1.0)
    return np.ascontiguousarray(elim), np.ascontiguousarray(size)


def _imaging_args(imaging) -> tuple[np.ndarray, np.ndarray, int, float]:
    if imaging is None:
        return np.zeros(0), np.zeros(0), 0, 0.0
    times, p, n_branches, sigma = imaging
    order = np.argsort(np.asarray(times, float), kind="stable")
    return (np.ascontiguousarray(np.asarray(times, float)[order]),
            np.ascontiguousarray(np.asarray(p, float)[order]), int(n_branches), float(sigma))


def simulate_spines(params: SpineParams, seed: int, arm: str, n_sub: int, n_branches: int,
                    drives: dict[str, np.ndarray], t_start: float, record_times,
                    photo_times: np.ndarray | None = None,
                    subjects: np.ndarray | None = None,
                    imaging: tuple[np.ndarray, np.ndarray, int, float] | None = None
                    ) -> SpineRecording:
    """Step the engine from ``t_start`` on the ``DT_H`` grid of the drive arrays
    ((n_sub, n_steps) each: the drive over each step, which the runner takes as the
    step's mean of the signalling output) and record at ``record_times``
    (times before ``t_start`` fall in the baseline burn-in, which lasts
    ``SpineParams.burn_in_days``: ``burn_in_d``, at least ``mem_horizon_d``). Each branch of each subject has its own random stream, keyed by
    the subject's global index in ``subjects`` (default ``0 .. n_sub - 1``) and the
    branch, so adding branches or subjects leaves the others' spines unchanged.
    ``imaging``: (session times (h), loss probability per spine at each, number of imaged
    branches, log-SD of the spines' susceptibility) of in vivo imaging that damages what
    it images (see ``run_spines``)."""
    form = np.ascontiguousarray(drives["formation_drive"], dtype=float)
    elim, size = cell_drives(params, drives)
    n_steps = form.shape[1]
    rec = np.asarray(sorted(record_times), dtype=float)
    earliest = t_start - params.burn_in_days * 24.0
    if rec.size and rec[0] < earliest:
        raise ValueError(f"spine recording at {rec[0]:g} h precedes the simulation's start "
                         f"({t_start:g} h) by more than the burn-in "
                         f"({params.burn_in_days:g} days)")
    subjects = np.arange(n_sub) if subjects is None else np.asarray(subjects)
    cap = slot_capacity(params)
    shape = (n_sub, rec.size, n_branches, cap)
    out = {name: np.zeros(shape, dtype) for name, dtype in SLOT_FIELDS.items()}
    counts = np.zeros((n_sub, n_branches, 4), np.int64)
    photo = np.zeros((n_sub, 0)) if photo_times is None else np.ascontiguousarray(photo_times)
    run_spines(params.vector(), params.stationary_formation_rate(DT_H), float(t_start), DT_H,
               n_steps, form, elim,
               np.ascontiguousarray(drives["synaptic_protein"], dtype=float),
               size, n_branches, cap,
               xoroshiro_states(seed, arm, subjects, PURPOSE_SPINES, n_branches), photo, rec,
               out["alive"], out["pos"], out["logsize"], out["origin"], out["synapse"],
               out["stubby"], out["sid"], counts, *_imaging_args(imaging))
    return SpineRecording(rec, branch_length_um=params.values["branch_length"],
                          counts=counts.sum(axis=1), **out)
