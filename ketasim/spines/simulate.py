"""Run the spine engine for a cohort, driven by the signalling layer's drives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketasim.core.streams import PURPOSE_SPINES, xoroshiro_states
from ketasim.spines.engine import ORIGINS, SpineParams, burn_in_steps, run_spines

DT_H = 6.0  # engine step (h): resolves the 12-24 h formation window and daily imaging
DRIVES = ("formation_drive", "elimination_drive", "synaptic_protein")  # required; optional:
# spine_size_drive, spine_loss_d1, spine_loss_d2 (see cell_drives)
OPTIONAL_DRIVES = ("spine_size_drive", "spine_loss_d1", "spine_loss_d2")
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
    subjects: np.ndarray | None = None  # (n_sub,) global subject ids (None: 0 .. n_sub - 1)

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
        """Ground-truth tracking table (every live spine at every recording; subjects
        named by their global ids, ``subjects``)."""
        s, r, b, k = np.nonzero(self.alive)
        names = np.array(["filopodium", "thin", "stubby", "mushroom"])
        ids = (np.arange(self.alive.shape[0]) if self.subjects is None
               else np.asarray(self.subjects))
        return pd.DataFrame({
            "arm": arm, "subject": ids[s].astype(str), "branch": b.astype(str),
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


def _imaging_args(imaging, n_branches: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The imaging sessions as the kernel takes them: times, loss probabilities and imaged
    branches per session (a single branch count is every session's), sorted by time;
    each imaged-branch count capped at the branches simulated."""
    if imaging is None:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 0.0
    times, p, branches, sigma = imaging
    times = np.atleast_1d(np.asarray(times, float))
    p = np.atleast_1d(np.asarray(p, float))
    branches = np.asarray(branches)
    if branches.ndim == 0:
        branches = np.full(times.shape, int(branches), np.int64)
    if times.ndim != 1 or p.shape != times.shape or branches.shape != times.shape:
        raise ValueError(f"simulate_spines: imaging: got {times.size} session times, "
                         f"{p.size} loss probabilities and {branches.size} branch counts; "
                         "expected one of each per session (or one branch count)")
    if times.size and not (np.isfinite(times).all() and np.isfinite(p).all()):
        raise ValueError("simulate_spines: imaging: session times and loss probabilities "
                         "must be finite")
    order = np.argsort(times, kind="stable")
    branches = np.minimum(branches.astype(np.int64), n_branches)
    return (np.ascontiguousarray(times[order]), np.ascontiguousarray(p[order]),
            np.ascontiguousarray(branches[order]), float(sigma))


def _check_drives(drives: dict, n_sub: int) -> int:
    """The drives' number of steps; one clear error naming a drive that is missing or
    not an (n_sub, n_steps) array of the formation drive's steps."""
    missing = [d for d in DRIVES if d not in drives]
    if missing:
        raise ValueError(f"simulate_spines: drives: missing {missing}; required {list(DRIVES)}")
    form = np.shape(drives["formation_drive"])
    if len(form) != 2 or form[0] != n_sub or form[1] < 1:
        raise ValueError(f"simulate_spines: drives['formation_drive']: got shape {form}; "
                         f"expected (n_sub, n_steps) with n_sub = {n_sub} and n_steps >= 1")
    for name in (*DRIVES, *OPTIONAL_DRIVES):
        if name in drives and np.shape(drives[name]) != form:
            raise ValueError(f"simulate_spines: drives[{name!r}]: got shape "
                             f"{np.shape(drives[name])}; expected {form} (n_sub, n_steps), as "
                             "the formation drive")
    return form[1]


def simulate_spines(params: SpineParams, seed: int, arm: str, n_sub: int, n_branches: int,
                    drives: dict[str, np.ndarray], t_start: float, record_times,
                    photo_times: np.ndarray | None = None,
                    subjects: np.ndarray | None = None,
                    imaging: tuple[np.ndarray, np.ndarray, object, float] | None = None
                    ) -> SpineRecording:
    """Step the engine from ``t_start`` on the ``DT_H`` grid of the drive arrays
    ((n_sub, n_steps) each: the drive over each step, which the runner takes as the
    step's mean of the signalling output) and record at ``record_times``, from
    ``t_start - SpineParams.burn_in_days`` (``burn_in_d``, at least ``mem_horizon_d``) to
    the drives' end, ``t_start + n_steps DT_H``. Times before ``t_start`` fall in the
    baseline burn-in, which runs for ``burn_in_days`` before the earliest recording
    allowed (twice ``burn_in_days`` before ``t_start``, rounded up to whole steps,
    whatever the recording times, so that adding one does not move the others), so every
    recording sees the stationary state at baseline. A recording, flash or imaging
    session between two grid times sees or acts on the state at the later one, in the
    order of their own times. Each branch of each subject has its own random stream,
    keyed by the subject's global index in ``subjects`` (default ``0 .. n_sub - 1``) and
    the branch, so adding branches or subjects leaves the others' spines unchanged.
    ``photo_times``: (n_sub, n_flashes) AS-PaRAC1 flash times (h) per subject.
    ``imaging``: (session times (h), loss probability per spine at each, number of imaged
    branches (one for all sessions, or one per session: the branches with index below it
    are imaged there), log-SD of the spines' susceptibility) of in vivo imaging that
    damages what it images (see ``run_spines``). Drives, recordings, flashes or subjects
    that do not fit are one clear ``ValueError`` naming the argument."""
    n_steps = _check_drives(drives, n_sub)
    form = np.ascontiguousarray(drives["formation_drive"], dtype=float)
    elim, size = cell_drives(params, drives)
    rec = np.asarray(sorted(np.atleast_1d(np.asarray(record_times, dtype=float))), dtype=float)
    earliest = t_start - params.burn_in_days * 24.0
    if rec.size and not np.isfinite(rec).all():
        raise ValueError("simulate_spines: record_times: expected finite times")
    if rec.size and rec[0] < earliest:
        raise ValueError(f"spine recording at {rec[0]:g} h precedes the simulation's start "
                         f"({t_start:g} h) by more than the burn-in "
                         f"({params.burn_in_days:g} days)")
    end = t_start + n_steps * DT_H  # the kernel's last grid time, computed as there
    if rec.size and rec[-1] > end:
        raise ValueError(f"simulate_spines: record_times: a spine recording at {rec[-1]:g} h "
                         f"is after the drives end at {end:g} h ({n_steps} steps of "
                         f"{DT_H:g} h from {t_start:g} h)")
    subjects = np.arange(n_sub) if subjects is None else np.asarray(subjects)
    if subjects.shape != (n_sub,):
        raise ValueError(f"simulate_spines: subjects: got shape {subjects.shape}; expected "
                         f"({n_sub},), one global id per subject")
    photo = (np.zeros((n_sub, 0)) if photo_times is None
             else np.asarray(photo_times, dtype=float))
    if photo.ndim != 2 or photo.shape[0] != n_sub:
        raise ValueError(f"simulate_spines: photo_times: got shape {photo.shape}; expected "
                         f"(n_sub, n_flashes) with n_sub = {n_sub}")
    photo = np.ascontiguousarray(np.sort(photo, axis=1))
    # a full burn-in before the earliest recording allowed, burn_in_days before t_start
    window = burn_in_steps(params.burn_in_days, DT_H)
    cap = slot_capacity(params)
    shape = (n_sub, rec.size, n_branches, cap)
    out = {name: np.zeros(shape, dtype) for name, dtype in SLOT_FIELDS.items()}
    counts = np.zeros((n_sub, n_branches, 4), np.int64)
    run_spines(params.vector(), params.stationary_formation_rate(DT_H), float(t_start), DT_H,
               n_steps, form, elim,
               np.ascontiguousarray(drives["synaptic_protein"], dtype=float),
               size, n_branches, cap,
               xoroshiro_states(seed, arm, subjects, PURPOSE_SPINES, n_branches), photo, rec,
               out["alive"], out["pos"], out["logsize"], out["origin"], out["synapse"],
               out["stubby"], out["sid"], counts, *_imaging_args(imaging, n_branches),
               n_burn=2 * window)
    return SpineRecording(rec, branch_length_um=params.values["branch_length"],
                          counts=counts.sum(axis=1), subjects=subjects.copy(), **out)
