"""NWB (Neurodata Without Borders 2) out and in: one file per simulated subject and session.

:func:`write_nwb` writes a run as the DANDI layout expects::

    out_dir/sub-<arm>-<subject>/sub-<arm>-<subject>_ses-<session>.nwb

A *session* is one measurement time of a subject (every ``time_h`` at which the run has a
readout or kept data for it). Labels contain letters, digits and ``-`` only (DANDI/BIDS
labels): the arm's name with every other character run replaced by ``-``, the subject's
index, and the session time on the scenario's clock (:func:`session_label`: ``pre1h``,
``0h``, ``2h``, ``24h``, ``48h``, ``3d``, ``28d``, ``20min``, ``pre40min``, ``12p5s``).

What a file holds (times in seconds from the session's start, NWB's convention; the session
starts at ``TIME_ZERO`` plus the session time):

- ``Subject``: species as a Latin binomial, sex (``F``/``M`` from a virtual-patient
  population, else ``U``: the animal models have no sex), age as an ISO 8601 duration
  (humans: the patient's age, else ``species.human.age`` of the registry, plus the session
  time; rodents: ``P8W/P12W``, the adult age the registry's body weights assume), subject
  id ``<arm>-<subject>``;
- ``intervals/protocol``: the arm's protocol (stress, drug and intervention events) as
  ``TimeIntervals`` with ``kind, drug, stress, intervention, dose, dose_unit, route,
  intensity``; a bolus or an instantaneous intervention is a ``BOLUS_S`` interval (NWB
  intervals must end after they start), a permanent intervention has ``stop_time`` NaN;
  events before the session have negative times;
- ``processing/ketasim``: ``readouts`` (every readout of the subject at that time:
  ``assay, readout, unit, value``, ``region`` when the run has one, and ``run_row``, the
  row's position in the run's readouts table, so that :func:`read_nwb` restores the run's
  order) and ``session`` (one row: ``arm, subject, time_h, scenario, seed``);
- ``processing/ophys`` (where the run kept the subject's dF/F, i.e. the arm's first
  subject): ``Device``, ``OpticalChannel``, ``ImagingPlane``, an ``ImageSegmentation``
  with a ``PlaneSegmentation`` of pixel masks on a synthetic field (the model has no
  geometry: cell k is a disk of radius ``ROI_RADIUS_PX`` at the k-th node of a square grid
  with ``ROI_SPACING_PX`` spacing), and ``DfOverF`` holding the ``RoiResponseSeries``
  ``dff`` (frames x cells, float32 as kept, at the assay's frame rate);
- ``processing/behavior`` (tail suspension): a ``TimeIntervals`` ``tail_suspension`` with
  the test's interval and its readouts as columns; where the ethogram was kept, the bouts
  (``tail_suspension_bouts``, column ``state``) and the struggle onsets as an
  ``EventsTable`` ``events/struggle_onsets`` (with the preceding immobility, s; pynwb 4
  deprecates ``BehavioralEvents`` for it);
- ``processing/behavior`` (open field, where the run kept the subject's path: the arm's
  first subjects): a ``Position`` holding the ``SpatialSeries`` ``open_field_position``
  (x, y at 1 Hz from the session's start, in cm stored as meters with conversion 0.01;
  reference frame a corner of the square arena), which :func:`read_nwb_position` reads
  back;
- ``processing/spines``: ``tracking``, the subject's rows of the two-photon spine tracking
  table at that session (every column but ``arm, subject, time_h``, which the ``session``
  table gives).

:func:`read_nwb`, :func:`read_nwb_tracking` and :func:`read_nwb_dff` read these back (and
files from elsewhere laid out by the same conventions); anything else is one
:class:`NWBDataError` naming the file and what is wrong.
"""

from __future__ import annotations

import math
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from hdmf.backends.hdf5 import H5DataIO
from hdmf.common import DynamicTable, VectorData
from pynwb import NWBHDF5IO, NWBFile, ProcessingModule
from pynwb.behavior import Position, SpatialSeries
from pynwb.epoch import TimeIntervals
from pynwb.event import EventsTable
from pynwb.file import Subject
from pynwb.ophys import (
    DfOverF,
    Fluorescence,
    ImageSegmentation,
    OpticalChannel,
    PlaneSegmentation,
    RoiResponseSeries,
)

from ketasim import __version__
from ketasim.analysis.behavior import struggle_onsets
from ketasim.analysis.calcium import (
    CalciumDataError,
    DffRecording,
    read_dff,
)
from ketasim.analysis.suite2p import compute_dff
from ketasim.analysis.tracking import TrackingTableError, read_tracking_table
from ketasim.core.regions import DEFAULT_REGION
from ketasim.io.results import OPTIONAL_COLUMNS, READOUT_SCHEMA, atomic_file

__all__ = ["NWBDataError", "read_nwb", "read_nwb_dff", "read_nwb_position",
           "read_nwb_tracking", "session_label", "write_nwb"]

# Scenario time 0 as a date. A simulated session has no date, NWB needs a timezone-aware
# one: a fixed, plainly artificial Monday morning (UTC), so that a session's start time
# says its place on the scenario's clock (start = TIME_ZERO + time_h).
TIME_ZERO = datetime(2000, 1, 3, 9, 0, 0, tzinfo=UTC)
INSTITUTION = "ketasim (simulated)"
SPECIES = {"mouse": "Mus musculus", "rat": "Rattus norvegicus", "human": "Homo sapiens"}
# assumed: adult animals of 8-12 weeks (the registry's body weights are those of adult
# C57BL/6J mice and Sprague-Dawley rats; the model has no age for rodents)
RODENT_AGE = "P8W/P12W"
HUMAN_AGE_PARAMETER = "species.human.age"
DAYS_PER_YEAR = 365.25
BOLUS_S = 1.0  # the nominal interval of a bolus or an instantaneous intervention (s)
DEFAULT_ARM = "all"  # the tracking table's default arm; also for readouts without an arm
# imaging plane locations: Allen Mouse Brain CCF terms for mice (nwbinspector checks them),
# plain names otherwise
ALLEN_CCF = {"mpfc": "Prelimbic area", "striatum": "Striatum"}
REGION_NAMES = {"mpfc": "medial prefrontal cortex", "striatum": "striatum"}
INDICATOR = "GCaMP6s"  # the simulated indicator (ketasim.circuit: rise 0.12 s, decay 1.25 s)
EXCITATION_NM = 920.0  # two-photon excitation of GCaMP6s
EMISSION_NM = 510.0  # GCaMP emission peak
ROI_SPACING_PX = 10
ROI_RADIUS_PX = 3
CALCIUM_ASSAY = "calcium_imaging"
TST_ASSAY = "tail_suspension"
OPEN_FIELD_ASSAY = "open_field"
OPEN_FIELD_SERIES = "open_field_position"  # the SpatialSeries of a kept open-field track
ARENA_PARAMETER = "behavior.open_field.arena_cm"
TST_DURATION_PARAMETER = "behavior.tst.duration_s"
SPINE_ASSAY = "two_photon_spines"
SESSION_COLUMNS = ("arm", "subject", "time_h")  # what the ``session`` table gives per file

_READOUT_DESCRIPTIONS = {
    "arm": "the treatment arm",
    "subject": "the subject's index in its arm",
    "assay": "the assay that measured the readout",
    "readout": "the readout's name",
    "time_h": "session time on the scenario's clock (h)",
    "value": "the measured value (in unit)",
    "unit": "the readout's unit",
    "region": "the brain region measured",
    "cell": "the cell type measured",
    "branch": "the dendritic branch measured",
    "run_row": "the row's position in the run's readouts table (restores the run's order)",
}
_TRACKING_DESCRIPTIONS = {
    "branch": "dendritic branch id within the subject",
    "spine_id": "the same spine across sessions, within subject and branch",
    "position_um": "position along the branch from its proximal end (um)",
    "present": "the spine is scored in this session",
    "branch_length_um": "length of the imaged branch segment (um)",
    "size": "spine head volume (um^3)",
    "class": "spine class: filopodium, thin, stubby or mushroom",
    "origin": "simulated ground truth: preexisting, de_novo or restored",
}


class NWBDataError(ValueError):
    """An NWB file that cannot be read or breaks ketasim's layout (one line naming the
    file and what is wrong)."""


# ------------------------------------------------------------------------ labels


def session_label(time_h: float) -> str:
    """The session id of a session at ``time_h`` hours: whole days from 72 h on (``3d``),
    else whole hours (``24h``), whole minutes (``20min``) or seconds (``12p5s``); times
    before 0 start with ``pre`` (``pre1h``). Distinct times (to 1e-6 s) get distinct
    labels."""
    t = float(time_h)
    if not math.isfinite(t):
        raise ValueError(f"session time: expected a finite number of hours, got {time_h!r}")
    sec = round(abs(t) * 3600.0, 6)
    sign = "pre" if t < 0 and sec > 0 else ""
    if sec == 0:
        return "0h"
    for unit, size, least in (("d", 86400, 72 * 3600), ("h", 3600, 0), ("min", 60, 0)):
        n = sec / size
        if sec >= least and abs(n - round(n)) < 1e-9:
            return f"{sign}{round(n)}{unit}"
    text = f"{sec:.6f}".rstrip("0").rstrip(".")
    return f"{sign}{text.replace('.', 'p')}s"


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(name)).strip("-") or "x"


def arm_labels(arms: list[str]) -> dict[str, str]:
    """Each arm's label in NWB file names; arms whose labels coincide, even in case only
    (the same file on macOS and Windows), are one error naming both."""
    labels: dict[str, str] = {}
    for arm in arms:
        lab = _label(arm)
        other = next((a for a, b in labels.items() if b.lower() == lab.lower()), None)
        if other is not None:
            raise ValueError(f"write_nwb: arms {other!r} and {arm!r} both become the label "
                             f"{lab!r} in NWB file names (letters' case aside); rename one")
        labels[arm] = lab
    return labels


# ------------------------------------------------------------------------ writing


def write_nwb(result, out_dir: str | Path, registry, *, scenario_text: str | None = None,
              assays: Mapping | None = None) -> list[Path]:
    """Write one NWB file per simulated subject and session (layout in the module's
    docstring); returns the paths in the order written (arms in the scenario's order,
    subjects, session times).

    ``result`` is a :class:`ketasim.experiment.runner.RunResult` (read by its fields),
    ``registry`` the parameter registry of the run (a human's default age, the tail
    suspension's duration), ``scenario_text`` the scenario file's text (stored as the
    files' ``protocol``). ``assays``: the assay catalogue
    (``ketasim.experiment.assays.ASSAYS``) for option defaults the scenario leaves out
    (the calcium imaging frame rate); without it a run that kept dF/F must give
    ``frame_rate_hz`` in the scenario. Files are written one at a time, so memory does not
    grow with the run's size."""
    sc = result.scenario
    species = str(sc.species)
    if species not in SPECIES:
        raise ValueError(f"write_nwb: unknown species {species!r}; expected one of "
                         f"{sorted(SPECIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = [a.name for a in sc.arms]
    labels = arm_labels(arms)
    readouts = result.readouts
    cols = {c: readouts[c].to_numpy() for c in readouts.columns}
    groups = (readouts.groupby(["arm", "subject", "time_h"], sort=False).indices
              if len(readouts) else {})
    kept = getattr(result, "kept", {}) or {}
    tracking_tables = _tracking(kept)
    tracking = {arm: t.groupby(["subject", "time_h"], sort=False).indices
                for arm, t in tracking_tables.items()}
    ethograms = _ethograms(kept)
    tracks = _tracks(kept)
    arena_cm = (registry.value(ARENA_PARAMETER) if ARENA_PARAMETER in registry else None)
    calcium = _calcium(kept)
    patients = _patients(getattr(result, "patients", None))
    tst_duration = (registry.value(TST_DURATION_PARAMETER)
                    if TST_DURATION_PARAMETER in registry else None)
    human_age = (registry.value(HUMAN_AGE_PARAMETER)
                 if HUMAN_AGE_PARAMETER in registry else None)

    sessions: dict[str, dict[int, set[float]]] = {a: {} for a in arms}

    def add(arm, subject, t):
        if arm in sessions:
            sessions[arm].setdefault(int(subject), set()).add(float(t))

    for arm, subject, t in groups:
        add(arm, subject, t)
    for arm, idx in tracking.items():
        for subject, t in idx:
            add(arm, subject, t)
    for arm, (_, idx) in ethograms.items():
        for subject, t in idx:
            add(arm, subject, t)
    for arm, (_, idx) in tracks.items():
        for subject, t in idx:
            add(arm, subject, t)
    for (arm, _region), by_time in calcium.items():
        for t in by_time:
            add(arm, 0, t)

    written = []
    for i, arm_spec in enumerate(sc.arms):
        arm = arm_spec.name
        rates = {region: _frame_rate(arm_spec, region, assays, i)
                 for (a, region) in calcium if a == arm}
        for subject in sorted(sessions[arm]):
            times = sorted(sessions[arm][subject])
            labs = [session_label(t) for t in times]
            if len(set(labs)) != len(labs):
                raise ValueError(f"write_nwb: arm {arm!r}, subject {subject}: session times "
                                 f"{times} give repeated session labels {labs}")
            sub_id = f"{labels[arm]}-{subject}"
            folder = out / f"sub-{sub_id}"
            folder.mkdir(exist_ok=True)
            for t, lab in zip(times, labs, strict=True):
                nwb = _session_file(
                    result, arm_spec, subject, t, lab, sub_id, species,
                    idx=groups.get((arm, subject, t)), cols=cols,
                    scenario_text=scenario_text, patient=patients.get((arm, subject)),
                    human_age=human_age)
                _add_calcium(nwb, {r: c[t] for (a, r), c in calcium.items()
                                   if a == arm and subject == 0 and t in c}, rates, species)
                _add_tst(nwb, cols, groups.get((arm, subject, t)), ethograms.get(arm),
                         subject, t, tst_duration)
                if arm in tracks and (str(subject), t) in tracks[arm][1]:
                    table, idx = tracks[arm]
                    _add_position(nwb, table.iloc[idx[(str(subject), t)]], arena_cm)
                if arm in tracking and (str(subject), t) in tracking[arm]:
                    rows = tracking_tables[arm].iloc[tracking[arm][(str(subject), t)]]
                    _add_tracking(nwb, rows)
                path = folder / f"sub-{sub_id}_ses-{lab}.nwb"
                with atomic_file(path) as tmp, warnings.catch_warnings():
                    # written under a temporary name (renamed into place once complete)
                    warnings.filterwarnings("ignore", "The file path provided", UserWarning)
                    with NWBHDF5IO(str(tmp), "w") as io:
                        io.write(nwb)
                written.append(path)
    return written


def _tracking(kept: dict) -> dict[str, pd.DataFrame]:
    return {arm: k["tracking"] for arm, k in kept.get(SPINE_ASSAY, {}).items()
            if "tracking" in k and len(k["tracking"])}


def _ethograms(kept: dict) -> dict[str, tuple[pd.DataFrame, dict]]:
    out = {}
    for arm, k in kept.get(TST_ASSAY, {}).items():
        etho = k.get("tst", {}).get("ethogram")
        if etho is not None and len(etho):
            out[arm] = (etho, etho.groupby(["subject", "time_h"], sort=False).indices)
    return out


def _tracks(kept: dict) -> dict[str, tuple[pd.DataFrame, dict]]:
    out = {}
    for arm, k in kept.get(OPEN_FIELD_ASSAY, {}).items():
        table = k.get("tracks")
        if table is not None and len(table):
            out[arm] = (table, table.groupby(["subject", "time_h"], sort=False).indices)
    return out


def _behavior(nwb: NWBFile) -> ProcessingModule:
    """The file's ``behavior`` processing module (tail suspension and open field share
    it)."""
    if "behavior" not in nwb.processing:
        return nwb.create_processing_module("behavior", "behaviour tests (simulated)")
    return nwb.processing["behavior"]


def _calcium(kept: dict) -> dict[tuple[str, str], dict[float, np.ndarray]]:
    """(arm, region) -> session time -> the arm's first subject's dF/F (cells x frames)."""
    out = {}
    for name, by_arm in kept.items():
        assay, _, region = name.partition("@")
        if assay != CALCIUM_ASSAY:
            continue
        for arm, k in by_arm.items():
            if k.get("calcium"):
                out[(arm, region or DEFAULT_REGION)] = {float(t): d
                                                        for t, d in k["calcium"].items()}
    return out


def _patients(table: pd.DataFrame | None) -> dict[tuple[str, int], dict]:
    if table is None or not len(table):
        return {}
    cols = [c for c in ("sex", "age_y", "weight_kg") if c in table.columns]
    return {(str(r["arm"]), int(r["subject"])): {c: r[c] for c in cols}
            for r in table.to_dict("records")}


def _frame_rate(arm_spec, region: str, assays: Mapping | None, i: int) -> float:
    for spec in arm_spec.assays:
        if spec.assay == CALCIUM_ASSAY and (getattr(spec, "region", None) or DEFAULT_REGION
                                            ) == region:
            rate = (spec.options or {}).get("frame_rate_hz")
            if rate is None and assays is not None and CALCIUM_ASSAY in assays:
                rate = assays[CALCIUM_ASSAY].options.get("frame_rate_hz")
            if rate is None:
                raise ValueError(
                    f"write_nwb: arms[{i}] ({arm_spec.name}): the frame rate of "
                    f"{CALCIUM_ASSAY} is the assay's default; pass "
                    "assays=ketasim.experiment.assays.ASSAYS")
            return float(rate)
    raise ValueError(f"write_nwb: arms[{i}] ({arm_spec.name}) kept dF/F but has no "
                     f"{CALCIUM_ASSAY} assay in region {region!r}")


def _age(species: str, t: float, patient: dict | None, human_age: float | None) -> str:
    if species != "human":
        return RODENT_AGE
    years = patient.get("age_y") if patient else None
    if years is None or not np.isfinite(years):
        years = human_age
    if years is None:
        return "P18Y/"
    days = float(years) * DAYS_PER_YEAR + t / 24.0
    y = int(days // DAYS_PER_YEAR)
    d = round(days - y * DAYS_PER_YEAR)
    return f"P{y}Y{d}D" if d else f"P{y}Y"


def _sex(patient: dict | None) -> str:
    sex = str((patient or {}).get("sex", "")).lower()
    return {"female": "F", "f": "F", "male": "M", "m": "M"}.get(sex, "U")


def _session_file(result, arm_spec, subject: int, t: float, lab: str, sub_id: str,
                  species: str, *, idx, cols, scenario_text, patient, human_age) -> NWBFile:
    sc = result.scenario
    arm = arm_spec.name
    assays = [] if idx is None else list(dict.fromkeys(cols["assay"][idx].tolist()))
    weight = (patient or {}).get("weight_kg")
    subj = Subject(
        subject_id=sub_id, species=SPECIES[species], sex=_sex(patient),
        age=_age(species, t, patient, human_age),
        description=f"simulated subject {subject} of arm '{arm}' (ketasim scenario "
                    f"'{sc.name}'); not a real animal or person",
        weight=(f"{float(weight):.1f} kg" if weight is not None and np.isfinite(weight)
                else None))
    drugs = [ev for ev in arm_spec.protocol if getattr(ev, "drug", None)]
    pharmacology = "; ".join(
        f"{ev.drug}{'' if ev.dose is None else f' {ev.dose.value:g} {ev.dose.unit}'} "
        f"{ev.route} at {ev.at:g} h" + (f" over {ev.over:g} h" if getattr(ev, "over", None)
                                        else "")
        for ev in drugs) or None
    nwb = NWBFile(
        session_description=(
            f"Simulated session of ketasim scenario '{sc.name}': arm '{arm}', subject "
            f"{subject}, at {t:g} h on the scenario's clock (time 0 is the protocol's "
            f"reference, usually the treatment); assays: {', '.join(assays) or 'none'}."),
        identifier=str(uuid.uuid4()),
        session_start_time=TIME_ZERO + timedelta(hours=t),
        session_id=lab,
        experiment_description=(getattr(sc, "description", "") or
                                f"ketasim scenario '{sc.name}'"),
        institution=INSTITUTION, lab=INSTITUTION,
        keywords=list(dict.fromkeys(["ketasim", "simulation", species,
                                     *[str(ev.drug) for ev in drugs], *assays])),
        data_collection=(f"Simulated by ketasim {__version__} (seed {result.seed}); no "
                         "animal or person was measured."),
        pharmacology=pharmacology,
        protocol=scenario_text or None,
        subject=subj)
    _add_protocol(nwb, arm_spec, t)
    mod = nwb.create_processing_module(
        "ketasim", "ketasim's readouts of this subject at this session, in its readouts "
                   "format (ketasim.io.nwb.read_nwb reads them back)")
    mod.add(DynamicTable(name="session", description="the arm, subject and session time of "
                         "this file, and the run's scenario and seed", columns=[
                             _column("arm", "the treatment arm", [arm]),
                             _column("subject", "the subject's index in its arm",
                                     np.array([subject], np.int64)),
                             _column("time_h", "session time on the scenario's clock (h)",
                                     np.array([t], float)),
                             _column("scenario", "the scenario's name", [str(sc.name)]),
                             _column("seed", "the run's seed",
                                     np.array([int(result.seed)], np.int64))]))
    if idx is not None and len(idx):
        names = ["assay", "readout", "unit", "value",
                 *[c for c in OPTIONAL_COLUMNS if c in cols]]
        columns = [_column(c, _READOUT_DESCRIPTIONS[c], cols[c][idx]) for c in names]
        columns.append(_column("run_row", _READOUT_DESCRIPTIONS["run_row"],
                               np.asarray(idx, np.int64)))
        mod.add(DynamicTable(name="readouts", description="every readout of this subject "
                             "at this session", columns=columns))
    return nwb


def _column(name: str, description: str, values) -> VectorData:
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":  # text; a missing label is stored as ""
        data = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for v in arr.tolist()]
    elif arr.dtype.kind == "b":
        data = arr.astype(bool)
    elif arr.dtype.kind in "iu":
        data = arr.astype(np.int64)
    else:
        data = arr.astype(np.float64)
    return VectorData(name=name, description=description, data=data)


def _add_protocol(nwb: NWBFile, arm_spec, t: float) -> None:
    events = sorted(arm_spec.protocol, key=lambda ev: float(ev.at))
    if not events:
        return
    table = TimeIntervals(
        name="protocol",
        description="the arm's protocol: stress, drug and intervention events (times in s "
                    "from the session's start; a bolus or an instantaneous intervention "
                    f"lasts a nominal {BOLUS_S:g} s; stop_time NaN: permanent)")
    for name, desc in (("kind", "stress, drug or intervention"),
                       ("drug", "the drug (drug events)"),
                       ("stress", "the stressor (stress events)"),
                       ("intervention", "the intervention (intervention events)"),
                       ("dose", "the dose (in dose_unit; NaN: none given)"),
                       ("dose_unit", "unit of the dose: mg/kg, mg or uM"),
                       ("route", "route of administration (drug events)"),
                       ("intensity", "stress intensity relative to the standard protocol")):
        table.add_column(name=name, description=desc)
    for ev in events:
        at = float(ev.at)
        start = (at - t) * 3600.0
        end = float(getattr(ev, "end", at))
        if math.isinf(end):
            stop = math.nan
        elif end <= at:
            stop = start + BOLUS_S
        else:
            stop = (end - t) * 3600.0
        dose = getattr(ev, "dose", None)
        table.add_row(
            start_time=start, stop_time=stop, kind=str(getattr(ev, "kind", "")),
            drug=str(getattr(ev, "drug", None) or ""),
            stress=str(getattr(ev, "stress", None) or ""),
            intervention=str(getattr(ev, "intervention", None) or ""),
            dose=float(dose.value) if dose is not None else math.nan,
            dose_unit=str(dose.unit) if dose is not None else "",
            route=str(getattr(ev, "route", None) or ""),
            intensity=float(getattr(ev, "intensity", math.nan)))
    nwb.add_time_intervals(table)


def _roi_masks(n: int) -> tuple[list[list[tuple[int, int, float]]], int]:
    side = max(1, math.ceil(math.sqrt(n)))
    r = ROI_RADIUS_PX
    disk = [(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)
            if dx * dx + dy * dy <= r * r]
    masks = []
    for k in range(n):
        cx = (k % side) * ROI_SPACING_PX + ROI_SPACING_PX // 2
        cy = (k // side) * ROI_SPACING_PX + ROI_SPACING_PX // 2
        masks.append([(cx + dx, cy + dy, 1.0) for dx, dy in disk])
    return masks, side * ROI_SPACING_PX


def _add_calcium(nwb: NWBFile, by_region: dict[str, np.ndarray], rates: dict[str, float],
                 species: str) -> None:
    if not by_region:
        return
    ophys = nwb.create_processing_module(
        "ophys", "two-photon calcium imaging (simulated): ROIs and dF/F")
    device = nwb.create_device(name="microscope",
                               description="simulated two-photon microscope (ketasim)")
    seg = ImageSegmentation(name="ImageSegmentation")
    ophys.add(seg)
    dff_interface = DfOverF(name="DfOverF")
    ophys.add(dff_interface)
    for region in sorted(by_region, key=lambda r: (r != DEFAULT_REGION, r)):
        dff = np.asarray(by_region[region])
        suffix = "" if region == DEFAULT_REGION else f"_{region}"
        rate = rates[region]
        channel = OpticalChannel(name="green", description=f"{INDICATOR} emission",
                                 emission_lambda=EMISSION_NM)
        where = REGION_NAMES.get(region, region)
        plane = nwb.create_imaging_plane(
            name=f"imaging_plane{suffix}", optical_channel=channel,
            description=f"a simulated field of view in the {where}",
            device=device, excitation_lambda=EXCITATION_NM, imaging_rate=rate,
            indicator=INDICATOR,
            location=ALLEN_CCF.get(region, where) if species == "mouse" else where)
        masks, size = _roi_masks(dff.shape[0])
        ps = PlaneSegmentation(
            name=f"PlaneSegmentation{suffix}", imaging_plane=plane,
            description=(f"one ROI per simulated cell: pixel masks on a synthetic "
                         f"{size} x {size} px field (disks of radius {ROI_RADIUS_PX} px "
                         f"on a {ROI_SPACING_PX}-px grid; the model has no geometry)"))
        for m in masks:
            ps.add_roi(pixel_mask=m)
        seg.add_plane_segmentation(ps)
        rois = ps.create_roi_table_region(region=list(range(dff.shape[0])),
                                          description="every ROI")
        dff_interface.add_roi_response_series(RoiResponseSeries(
            name=f"dff{suffix}", rois=rois, unit="n.a.", rate=rate, starting_time=0.0,
            data=H5DataIO(np.ascontiguousarray(dff.T), compression="gzip"),
            description="dF/F per ROI (frames x ROIs): neuropil-subtracted, baseline the "
                        "8th percentile of the session"))


def _add_tst(nwb: NWBFile, cols: dict, idx, etho: tuple | None, subject: int, t: float,
             duration: float | None) -> None:
    rows = ([] if idx is None else
            [j for j in idx if cols["assay"][j] == TST_ASSAY])
    bouts = None
    if etho is not None and (str(subject), t) in etho[1]:
        bouts = etho[0].iloc[etho[1][(str(subject), t)]]
    if not rows and bouts is None:
        return
    if duration is None:
        duration = float(bouts["end_s"].max()) if bouts is not None else math.nan
    mod = _behavior(nwb)
    if rows:
        test = TimeIntervals(name="tail_suspension",
                             description="the tail suspension test and its scores")
        values = {}
        for j in rows:
            values[str(cols["readout"][j])] = (float(cols["value"][j]), str(cols["unit"][j]))
        for name, (_, unit) in values.items():
            test.add_column(name=name, description=f"{name} ({unit})")
        test.add_row(start_time=0.0, stop_time=float(duration),
                     **{k: v for k, (v, _) in values.items()})
        mod.add(test)
    if bouts is None:
        return
    table = TimeIntervals(name="tail_suspension_bouts",
                          description="the tail suspension ethogram: struggle and "
                                      "immobile bouts")
    table.add_column(name="state", description="struggle or immobile")
    for start, end, state in zip(bouts["start_s"], bouts["end_s"], bouts["state"],
                                 strict=True):
        table.add_row(start_time=float(start), stop_time=float(end), state=str(state))
    mod.add(table)
    onsets = struggle_onsets(bouts[["arm", "subject", "start_s", "end_s", "state"]],
                             duration_s=float(duration))
    if len(onsets):
        events = EventsTable(name="struggle_onsets", description=(
            "tail suspension test: struggle onsets after immobility (s from the session's "
            "start), with the preceding immobile bout's duration"),
            source_description="ketasim.analysis.behavior.struggle_onsets on the ethogram")
        events.add_column(name="preceding_immobile_s",
                          description="duration of the immobile bout before the onset (s)")
        for at, before in zip(onsets["onset_s"], onsets["preceding_immobile_s"], strict=True):
            events.add_row(timestamp=float(at), preceding_immobile_s=float(before))
        nwb.add_events_table(events)


def _add_position(nwb: NWBFile, rows: pd.DataFrame, arena_cm: float | None) -> None:
    """A kept open-field path (``t_s, x_cm, y_cm``) as a ``Position``."""
    t = rows["t_s"].to_numpy(float)
    xy = rows[["x_cm", "y_cm"]].to_numpy(float)
    arena = "" if arena_cm is None else f" of side {arena_cm:g} cm"
    timing = {"timestamps": t}
    steps = np.diff(t)
    if t.size > 1 and np.all(steps == steps[0]):  # regular: a rate (nwbinspector's advice)
        timing = {"starting_time": float(t[0]), "rate": 1.0 / float(steps[0])}
    series = SpatialSeries(
        name=OPEN_FIELD_SERIES, description="open field: the animal's path (simulated)",
        data=xy, unit="meters", conversion=0.01,
        reference_frame=(f"(0, 0) is a corner of the square arena{arena}; x and y run "
                         "along its walls"), **timing)
    _behavior(nwb).add(Position(name="open_field", spatial_series=series))


def _add_tracking(nwb: NWBFile, rows: pd.DataFrame) -> None:
    mod = nwb.create_processing_module(
        "spines", "two-photon imaging of dendritic spines (simulated)")
    columns = [_column(c, _TRACKING_DESCRIPTIONS.get(c, f"column {c} of the spine tracking "
                                                        "table"), rows[c].to_numpy())
               for c in rows.columns if c not in SESSION_COLUMNS]
    mod.add(DynamicTable(name="tracking", description=(
        "the subject's rows of the spine tracking table at this session "
        "(docs/spine_tracking_table.md; arm, subject and time_h are in "
        "processing/ketasim/session)"), columns=columns))


# ------------------------------------------------------------------------ reading


def nwb_files(paths) -> list[Path]:
    """The NWB files of ``paths`` (a file, a folder searched recursively for ``.nwb``
    files, or a list of them), in order; a missing path or a folder without any is one
    :class:`NWBDataError`."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.rglob("*.nwb"))
            if not found:
                raise NWBDataError(f"{p}: no .nwb files in this folder")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise NWBDataError(f"{p}: file not found")
    if not out:
        raise NWBDataError("no NWB files given")
    return out


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def _open(path: Path) -> Iterator[NWBFile]:
    try:
        io = NWBHDF5IO(str(path), "r")
    except Exception as err:  # noqa: BLE001 - h5py/hdmf errors vary; one clear line
        raise NWBDataError(f"{path}: not an NWB file ({_first_line(err)})") from None
    try:
        try:
            nwb = io.read()
        except Exception as err:  # noqa: BLE001 - as above
            raise NWBDataError(f"{path}: cannot read as NWB ({_first_line(err)})") from None
        yield nwb
    finally:
        io.close()


def _module(nwb: NWBFile, path: Path, name: str):
    if name not in nwb.processing:
        have = ", ".join(sorted(nwb.processing)) or "none"
        raise NWBDataError(f"{path}: no '{name}' processing module (modules: {have})")
    return nwb.processing[name]


# The tables are read with h5py, from the layout NWB gives a DynamicTable (a group with a
# ``colnames`` attribute, an ``id`` dataset and one dataset per column): a few
# milliseconds per file where pynwb's full read takes about 0.15 s.


@contextmanager
def _h5(path: Path) -> Iterator[h5py.File]:
    try:
        f = h5py.File(path, "r")
    except Exception as err:  # noqa: BLE001 - h5py's errors vary; one clear line
        raise NWBDataError(f"{path}: not an NWB file ({_first_line(err)})") from None
    try:
        if "nwb_version" not in f.attrs:
            raise NWBDataError(f"{path}: not an NWB file (an HDF5 file without NWB's "
                               "nwb_version attribute)")
        yield f
    finally:
        f.close()


def _h5_module(f: h5py.File, path: Path, name: str) -> h5py.Group:
    proc = f.get("processing")
    if not isinstance(proc, h5py.Group) or not isinstance(proc.get(name), h5py.Group):
        have = ", ".join(sorted(proc)) if isinstance(proc, h5py.Group) else ""
        raise NWBDataError(f"{path}: no '{name}' processing module (modules: "
                           f"{have or 'none'})")
    return proc[name]


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _h5_table(f: h5py.File, path: Path, module: str, name: str) -> pd.DataFrame:
    mod = _h5_module(f, path, module)
    where = f"{path}: processing/{module}/{name}"
    if name not in mod:
        have = ", ".join(sorted(mod)) or "nothing"
        raise NWBDataError(f"{path}: processing module '{module}' has no '{name}' table "
                           f"(it holds: {have})")
    g = mod[name]
    if not isinstance(g, h5py.Group) or "colnames" not in g.attrs or not isinstance(
            g.get("id"), h5py.Dataset):
        kind = _text(g.attrs.get("neurodata_type", type(g).__name__))
        raise NWBDataError(f"{where}: a {kind}, expected a DynamicTable")
    n = g["id"].shape[0] if g["id"].ndim == 1 else -1
    cols = {}
    for c in map(_text, np.atleast_1d(g.attrs["colnames"])):
        ds = g.get(c)
        if f"{c}_index" in g:
            raise NWBDataError(f"{where}, column '{c}': a ragged column (one value per row "
                               "expected)")
        if not isinstance(ds, h5py.Dataset):
            raise NWBDataError(f"{where}: column '{c}' is listed but missing")
        if ds.ndim != 1 or ds.shape[0] != n:
            raise NWBDataError(f"{where}, column '{c}': shape {ds.shape}, expected ({n},) "
                               "(one value per row)")
        if h5py.check_string_dtype(ds.dtype) is not None:
            cols[c] = np.asarray(ds.asstr()[()], dtype=object)
        elif ds.dtype.kind in "biuf":
            cols[c] = ds[()]
        else:
            raise NWBDataError(f"{where}, column '{c}': unsupported data type {ds.dtype}")
    return pd.DataFrame(cols, index=pd.RangeIndex(max(n, 0)))


def _session(f: h5py.File, path: Path) -> dict:
    """The file's arm, subject and session time: the ``session`` table of the ketasim
    module where there is one; else the subject from ``Subject.subject_id``: an integer,
    or ``<arm>-<integer>``, which also gives the arm (the lab's ids ``cageA-1`` and
    ``cageB-1`` stay two animals: arms ``cageA`` and ``cageB``, subject 1)."""
    out: dict = {}
    mod = f.get("processing/ketasim")
    if isinstance(mod, h5py.Group) and "session" in mod:
        s = _h5_table(f, path, "ketasim", "session")
        if len(s) != 1:
            raise NWBDataError(f"{path}: processing/ketasim/session: expected one row, got "
                               f"{len(s)}")
        out = {c: s[c].iloc[0] for c in SESSION_COLUMNS if c in s.columns}
    sid = f.get("general/subject/subject_id")
    if "subject" not in out and isinstance(sid, h5py.Dataset) and sid.ndim == 0:
        text = _text(sid[()]).strip()
        m = re.search(r"(?:^|-)(\d+)$", text)
        if m:
            out["subject"] = int(m.group(1))
            prefix = text[:m.start()]
            if prefix:  # <arm>-<n>: the id's arm, checked against any other (_fill)
                out[_ID_ARM] = (prefix, text)
                out.setdefault("arm", prefix)
    return out


#: the arm that ``Subject.subject_id`` names, with the id (``_session``; not a column)
_ID_ARM = "_subject_id_arm"


def _fill(df: pd.DataFrame, session: dict, path: Path, where: str,
          defaults: dict) -> pd.DataFrame:
    from_id = "subject" not in df.columns and _ID_ARM in session
    for c in SESSION_COLUMNS:
        if c in df.columns:
            continue
        if c in session:
            df[c] = session[c]
        elif c in defaults:
            df[c] = defaults[c]
        else:
            raise NWBDataError(f"{path}: {where}: no '{c}' column and no "
                               f"processing/ketasim/session table giving it")
    if from_id and len(df):
        # the subject is the id's number: only within the arm the id names is it one
        # animal (else cageA-1 and cageB-1 of one arm would be merged)
        prefix, sid = session[_ID_ARM]
        arms = pd.unique(df["arm"].astype(str))
        bad = [a for a in arms if _label(a).lower() != _label(prefix).lower()]
        if bad:
            raise NWBDataError(f"{path}: {where}: no 'subject' column, and "
                               f"Subject.subject_id {sid!r} is not '<arm>-<number>' of the "
                               f"arm {bad[0]!r}; add a 'subject' column (or a "
                               "processing/ketasim/session table) giving the subject")
    return df


def _numbers(df: pd.DataFrame, col: str, path: Path, where: str, integral: bool = False
             ) -> np.ndarray:
    s = df[col]
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        bad = s.iloc[0] if len(s) else None
        raise NWBDataError(f"{path}: {where}, column '{col}': expected numbers, got "
                           f"{bad!r}")
    arr = s.to_numpy(dtype=float)
    if integral:
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise NWBDataError(f"{path}: {where}, column '{col}': expected integers, got "
                               f"{arr[bad][0]!r}")
    return arr


def read_nwb(paths) -> pd.DataFrame:
    """The readouts of NWB files (a file, a folder searched recursively, or a list of
    them) in ketasim's readouts format (:mod:`ketasim.io.results`): ``arm, subject, assay,
    readout, time_h, value, unit`` and ``region`` (``cell``, ``branch``) where present.

    Each file needs a ``ketasim`` processing module with a ``readouts`` table (columns
    ``assay, readout, value, unit``; ``arm, subject, time_h`` per row or from the module's
    one-row ``session`` table; the subject may also come from ``Subject.subject_id``,
    ``<arm>-<number>`` giving the arm and subject, a bare number the subject; the arm
    defaults to ``all``). With a ``run_row`` column in every file (as :func:`write_nwb`
    writes) the rows come back in the run's order, else file by file."""
    frames, ordered = [], True
    for _path, out in read_nwb_by_file(paths):
        if out is None:
            continue
        if "run_row" not in out.columns:
            ordered = False
        frames.append(out)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t.to_pandas_dtype())
                             for c, t in zip(READOUT_SCHEMA.names, READOUT_SCHEMA.types,
                                             strict=True)})
    table = pd.concat(frames, ignore_index=True)
    if "region" in table.columns:  # a file without the column measured the default region
        table["region"] = table["region"].fillna(DEFAULT_REGION)
    if ordered and not table["run_row"].duplicated().any():
        table = table.sort_values("run_row", kind="stable")
    names = list(READOUT_SCHEMA.names) + [c for c in OPTIONAL_COLUMNS if c in table.columns]
    return table[names].reset_index(drop=True)


def read_nwb_by_file(paths) -> list[tuple[Path, pd.DataFrame | None]]:
    """Each NWB file of ``paths`` (:func:`nwb_files`) with its readouts as
    :func:`read_nwb` reads them (plus ``run_row`` where the file has it), or ``None`` for
    a session of :func:`write_nwb` without readouts (kept data only)."""
    return [(path, _read_readouts(path)) for path in nwb_files(paths)]


def _read_readouts(path: Path) -> pd.DataFrame | None:
    with _h5(path) as f:
        mod = _h5_module(f, path, "ketasim")
        if "readouts" not in mod and "session" in mod:
            return None  # a session of write_nwb without readouts (kept data only)
        df = _h5_table(f, path, "ketasim", "readouts")
        session = _session(f, path)
    where = "processing/ketasim/readouts"
    missing = [c for c in ("assay", "readout", "value", "unit") if c not in df.columns]
    if missing:
        raise NWBDataError(f"{path}: {where}: missing column(s) "
                           + ", ".join(f"'{c}'" for c in missing))
    df = _fill(df, session, path, where, {"arm": DEFAULT_ARM})
    out = pd.DataFrame({
        "arm": df["arm"].astype(str).to_numpy(object),
        "subject": _numbers(df, "subject", path, where, integral=True).astype(np.int64),
        "assay": df["assay"].astype(str).to_numpy(object),
        "readout": df["readout"].astype(str).to_numpy(object),
        "time_h": _numbers(df, "time_h", path, where),
        "value": _numbers(df, "value", path, where),
        "unit": df["unit"].astype(str).to_numpy(object)})
    for c in OPTIONAL_COLUMNS:
        if c in df.columns:
            out[c] = df[c].astype(str).to_numpy(object)
    if "run_row" in df.columns:
        out["run_row"] = _numbers(df, "run_row", path, where, integral=True).astype(np.int64)
    return out


def read_nwb_tracking(paths) -> pd.DataFrame:
    """The spine tracking table (``docs/spine_tracking_table.md``, as
    :func:`ketasim.analysis.tracking.read_tracking_table` returns it: checked, sorted)
    from the ``tracking`` tables of the files' ``spines`` processing modules; ``arm,
    subject, time_h`` come from each file's ``processing/ketasim/session`` table where the
    tracking table has no such column. Files without a ``spines`` module are skipped; none
    with one is an error."""
    files = nwb_files(paths)
    frames = []
    for path in files:
        with _h5(path) as f:
            if not isinstance(f.get("processing/spines"), h5py.Group):
                continue
            df = _h5_table(f, path, "spines", "tracking")
            session = _session(f, path)
        df = _fill(df, session, path, "processing/spines/tracking", {"arm": DEFAULT_ARM})
        df["subject"] = df["subject"].astype(str)
        for c in ("class", "origin"):  # labels left empty are stored as ""
            if c in df.columns:
                df[c] = df[c].where(df[c].astype(str) != "", np.nan)
        try:
            read_tracking_table(df)
        except TrackingTableError as err:
            raise NWBDataError(f"{path}: processing/spines/tracking: "
                               f"{str(err).removeprefix('<DataFrame>, ')}") from None
        frames.append(df)
    if not frames:
        where = files[0] if len(files) == 1 else f"{len(files)} files"
        raise NWBDataError(f"{where}: no 'spines' processing module with a tracking table")
    try:
        return read_tracking_table(pd.concat(frames, ignore_index=True))
    except TrackingTableError as err:
        raise NWBDataError(f"the tracking tables of {len(frames)} files together: "
                           f"{str(err).removeprefix('<DataFrame>, ')}") from None


def _series_clock(rrs, where: str) -> tuple[float, float]:
    """(frame rate in Hz, start in s) of a series: its ``rate`` and ``starting_time``, or
    from ``timestamps`` when they are evenly spaced (within the calcium reader's
    tolerance: a dropped frame is an error naming it)."""
    if rrs.rate is not None:
        return float(rrs.rate), float(rrs.starting_time or 0.0)
    if rrs.timestamps is None:
        raise NWBDataError(f"{where}: neither a rate nor timestamps")
    ts = np.asarray(rrs.timestamps[:], float)
    if ts.size < 2 or not np.all(np.isfinite(ts)):
        raise NWBDataError(f"{where}: timestamps: expected two or more finite times, got "
                           f"{ts.size}")
    step = np.diff(ts)
    median = float(np.median(step))
    # a frame's own timing may jitter (acquisition clocks stamp frames as they come); a
    # gap of 1.5 intervals or more is a missing frame, a non-increasing time an error
    bad = np.flatnonzero(~((step > 0) & (step < TIMESTAMP_GAP * median)))
    if median <= 0 or bad.size:
        i = int(bad[0]) if bad.size else 0
        raise NWBDataError(f"{where}: timestamps: frame {i + 1} comes {step[i]:.6g} s after "
                           f"frame {i}, the median interval is {median:.6g} s (a dropped "
                           "frame, or times out of order?)")
    return 1.0 / median, float(ts[0])


def _roi_series(ophys, kind) -> dict:
    return {name: rrs for iface in ophys.data_interfaces.values() if isinstance(iface, kind)
            for name, rrs in iface.roi_response_series.items()}


def _frames_by_rois(rrs, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A series' data (frames x ROIs, float64, in its unit: ``data * conversion +
    offset``) and its ROIs' ids; one ROI's data may be 1-D."""
    data = np.asarray(rrs.data[:], float)
    n_rois = len(rrs.rois.data)
    if data.ndim == 1 and n_rois == 1:
        data = data[:, None]
    data = data * float(rrs.conversion) + float(getattr(rrs, "offset", 0.0) or 0.0)
    ids = np.asarray(rrs.rois.table.id[:])[np.asarray(rrs.rois.data[:], int)]
    if data.ndim != 2:
        raise NWBDataError(f"{where}: expected 2-D data (frames x ROIs), got shape "
                           f"{data.shape}")
    if data.shape[1] != n_rois:
        raise NWBDataError(f"{where}: data has shape {data.shape}, expected (frames, "
                           f"{n_rois}) for its {n_rois} ROIs")
    return data, ids


#: timestamps further apart than this many median intervals mark a dropped frame (assumed:
#: halfway between the one interval of a frame on time and the two of a missed frame, so
#: acquisition-clock jitter of tens of % passes and a single dropped frame does not)
TIMESTAMP_GAP = 1.5
#: SpatialSeries units read as lengths: cm per unit
LENGTH_UNITS_CM = {"m": 100.0, "meter": 100.0, "meters": 100.0, "metre": 100.0,
                   "metres": 100.0, "cm": 1.0, "centimeter": 1.0, "centimeters": 1.0,
                   "centimetre": 1.0, "centimetres": 1.0, "mm": 0.1, "millimeter": 0.1,
                   "millimeters": 0.1, "millimetre": 0.1, "millimetres": 0.1}
PIXEL_UNITS = frozenset({"px", "pixel", "pixels"})


def read_nwb_position(path: str | Path, series: str | None = None,
                      px_per_cm: float | None = None) -> pd.DataFrame:
    """An open-field track (columns ``time_s, x_cm, y_cm``, one row per sample; empty where
    the position is NaN) from an NWB file's ``SpatialSeries`` (in a ``Position`` or alone,
    in the ``behavior`` processing module or in ``acquisition``): the series ``series``
    (default the only one), its first two columns as x and y. Values are ``data * conversion + offset`` in
    the series' ``unit``: a length (m, cm, mm) or pixels (then ``px_per_cm`` is needed).
    Times from ``rate`` and ``starting_time`` or from ``timestamps``."""
    path = Path(path)
    if not path.is_file():
        raise NWBDataError(f"{path}: file not found")
    with _open(path) as nwb:
        holders = [*([nwb.processing["behavior"]] if "behavior" in nwb.processing else []),
                   nwb]
        found = {}
        for h in holders:
            items = h.data_interfaces if h is not nwb else nwb.acquisition
            for iface in items.values():
                if isinstance(iface, Position):
                    found.update(iface.spatial_series)
                elif isinstance(iface, SpatialSeries):  # stored without a Position
                    found[iface.name] = iface
        if not found:
            raise NWBDataError(f"{path}: no SpatialSeries, alone or in a Position (looked "
                               "in the 'behavior' processing module and in acquisition)")
        if series is None:
            if len(found) > 1:
                raise NWBDataError(f"{path}: several SpatialSeries ({', '.join(sorted(found))}"
                                   "); name one (the design's option bodypart)")
            series = next(iter(found))
        if series not in found:
            raise NWBDataError(f"{path}: no SpatialSeries {series!r} (series: "
                               f"{', '.join(sorted(found))})")
        ss = found[series]
        where = f"{path}: SpatialSeries '{series}'"
        data = np.asarray(ss.data[:], float)
        conversion, offset = float(ss.conversion), float(getattr(ss, "offset", 0.0) or 0.0)
        unit = str(ss.unit).strip().lower()
        if ss.rate is not None:
            t = float(ss.starting_time or 0.0) + np.arange(data.shape[0]) / float(ss.rate)
        elif ss.timestamps is not None:
            t = np.asarray(ss.timestamps[:], float)
        else:
            raise NWBDataError(f"{where}: neither a rate nor timestamps")
    if data.ndim != 2 or data.shape[1] < 2:
        raise NWBDataError(f"{where}: expected data of shape (samples, 2 or 3), got "
                           f"{data.shape}")
    if t.shape[0] != data.shape[0]:
        raise NWBDataError(f"{where}: {t.shape[0]} timestamps for {data.shape[0]} samples")
    if unit in LENGTH_UNITS_CM:
        scale = LENGTH_UNITS_CM[unit]
    elif unit in PIXEL_UNITS:
        if px_per_cm is None:
            raise NWBDataError(f"{where}: positions in pixels; give px_per_cm (the design's "
                               "option) to turn them into cm")
        scale = 1.0 / float(px_per_cm)
    else:
        raise NWBDataError(f"{where}: unit {ss.unit!r} is not a length (m, cm, mm) or "
                           "pixels")
    xy = (data[:, :2] * conversion + offset) * scale
    return pd.DataFrame({"time_s": t, "x_cm": xy[:, 0], "y_cm": xy[:, 1]})


def read_nwb_dff(path: str | Path, series: str | None = None) -> DffRecording:
    """The dF/F session of one NWB file as a :class:`ketasim.analysis.calcium.DffRecording`
    (float64), from the ``ophys`` processing module:

    - a ``DfOverF`` ``RoiResponseSeries`` (``series``, default: the only one, else
      ``dff``), as ketasim writes and many pipelines store;
    - else raw ``Fluorescence`` (as suite2p's and CaImAn's NWB conversions store it): the
      series ``series`` (default: the only one not named like neuropil, else
      ``RoiResponseSeries``) turned into dF/F by
      :func:`ketasim.analysis.suite2p.compute_dff` (its defaults: neuropil coefficient 0.7,
      running 8th-percentile baseline over 60 s), with a same-shaped Fluorescence series
      whose name contains ``neuropil`` as the neuropil (none: no correction).

    Frame times come from the series' ``rate`` and ``starting_time`` or from evenly spaced
    ``timestamps``. ``cell_ids`` are the ROIs' ids; ``time_s`` counts from the series'
    start. Every ROI of the series is a cell (curate before, or pass a DfOverF of cells)."""
    path = Path(path)
    if not path.is_file():
        raise NWBDataError(f"{path}: file not found")
    with _open(path) as nwb:
        ophys = _module(nwb, path, "ophys")
        found = _roi_series(ophys, DfOverF)
        raw = not found
        if raw:
            found = _roi_series(ophys, Fluorescence)
            if not found:
                raise NWBDataError(f"{path}: processing module 'ophys' has no DfOverF or "
                                   "Fluorescence with a RoiResponseSeries")
            neuropil = [n for n in found if "neuropil" in n.lower()]
            if series is None:  # suite2p writes Fluorescence, Neuropil and Deconvolved
                signal = [n for n in found if n not in neuropil
                          and "deconv" not in n.lower() and "spik" not in n.lower()]
                series = signal[0] if len(signal) == 1 else "RoiResponseSeries"
        elif series is None:
            series = next(iter(found)) if len(found) == 1 else "dff"
        what = "Fluorescence" if raw else "DfOverF"
        if series not in found:
            raise NWBDataError(f"{path}: no {what} series {series!r} (series: "
                               f"{', '.join(sorted(found))})")
        where = f"{path}: {what} series '{series}'"
        data, ids = _frames_by_rois(found[series], where)
        rate, start = _series_clock(found[series], where)
        fneu = np.zeros_like(data)
        if raw:
            neuropil = [n for n in neuropil if n != series]
            if neuropil:
                fneu, _ = _frames_by_rois(found[neuropil[0]], f"{path}: Fluorescence "
                                          f"series '{neuropil[0]}'")
                if fneu.shape != data.shape:
                    raise NWBDataError(f"{path}: Fluorescence series '{neuropil[0]}' has "
                                       f"shape {fneu.shape}, expected {data.shape} as "
                                       f"'{series}'")
    try:
        if raw:
            rec = read_dff(compute_dff(data.T, fneu.T, rate), rate)
        else:
            rec = read_dff(data.T, rate)
    except CalciumDataError as err:
        raise NWBDataError(f"{where}: {str(err).removeprefix('<array>: ')}") from None
    return replace(rec, source=path.name, cell_ids=tuple(str(i) for i in ids.tolist()),
                   time_s=start + rec.time_s)
