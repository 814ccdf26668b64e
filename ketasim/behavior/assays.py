"""Behaviour assays (simulated as a lab runs and scores them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.analysis.behavior import (
    binned_distance,
    freezing_per_trial,
    learned_helplessness,
    score_tst,
    struggle_onsets,
    sucrose_preference,
    tst_bouts_from_states,
)
from ketasim.analysis.calcium import peri_event_average
from ketasim.behavior.open_field import OpenFieldParams, track
from ketasim.behavior.sucrose import SucroseParams
from ketasim.behavior.traits import lognormal_traits
from ketasim.behavior.tst import TstParams, immobility_states
from ketasim.circuit.assay import dff_from_raw, simulate_chunks
from ketasim.core.assay import (
    RODENTS,
    Assay,
    AssayContext,
    AssayRows,
    Readout,
    session_key,
)

TST_READOUTS = ("tst_immobility_s", "tst_immobile_bout_s", "tst_struggle_bouts",
                "tst_calcium_rise_s")
TST_UNITS = ("s", "s", "count", "s")
PERI_WINDOW_S = (-3.0, 2.0)  # around struggle onsets (s)
ACTIVITY_FRAME_HZ = 10.0  # frames at which the population rate is read (no imaging)
# the report draws a few ethograms and averages peri-struggle dF/F over mice: a large arm
# keeps these for its first subjects only, so memory does not grow with n
KEEP_ETHOGRAM_SUBJECTS = 50
KEEP_PERI_SUBJECTS = 1000


def _tst(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Tail suspension with vmPFC calcium imaging: the circuit runs for the test at the
    slow layers' state, the struggle process reads its population rate, the ethogram is
    scored by :func:`ketasim.analysis.behavior.score_tst`, and the population dF/F is
    averaged around struggle onsets (:func:`ketasim.analysis.calcium.peri_event_average`;
    the rise time is negative when the calcium rise precedes the struggle)."""
    cp = ctx.circuit.params
    tp = TstParams.from_registry(ctx.registry)
    fr = float(ctx.options["frame_rate_hz"])
    # whole frames within the test (rounding up would put the last frame past its end)
    n_frames = int(np.floor(tp.values["duration_s"] * fr + 1e-9))
    n_cells = min(int(ctx.options["cells"]), int(cp.values["n_exc"]))
    coupling, drive = ctx.circuit.inputs(at, ctx.options["branches"])
    out = np.full((ctx.n, len(at), len(TST_READOUTS)), np.nan)
    seeds = np.array([ctx.rng(s).integers(2**62) for s in range(ctx.n)], np.int64)
    # each mouse's struggle vigour, kept over its tests
    vigour = lognormal_traits(ctx, tp.values["struggle_trait_cv"], "struggle_vigour")
    ethograms = []
    lags = np.arange(round(PERI_WINDOW_S[0] * fr), round(PERI_WINDOW_S[1] * fr) + 1) / fr
    n_peri = int(np.sum(ctx.subjects < KEEP_PERI_SUBJECTS))
    peri = np.full((n_peri, len(at), len(lags)), np.nan)
    for s0, raw, npl, rate in simulate_chunks(cp, coupling, drive, n_frames, fr, n_cells,
                                               seeds, rate=True):
        for i in range(raw.shape[0]):
            s = s0 + i
            subject = int(ctx.subjects[s])
            for j in range(len(at)):
                g = ctx.rng(s, session_key("tail_suspension", at[j]))  # the struggles'
                states = immobility_states(rate[i, j].astype(float), fr, tp, g, vigour[s])
                etho = tst_bouts_from_states(states, fr, subject=str(subject), arm=ctx.arm)
                score = score_tst(etho, window_s=(0.0, tp.values["duration_s"]),
                                  duration_s=tp.values["duration_s"]).iloc[0]
                onsets = struggle_onsets(etho, duration_s=tp.values["duration_s"])["onset_s"]
                rise = np.nan
                if len(onsets) >= 2:
                    dff = dff_from_raw(raw[i, j], npl[i, j], cp.values["neuropil_factor"])
                    pe = peri_event_average(dff, fr, event_times_s=onsets.to_numpy(),
                                            window_s=PERI_WINDOW_S)
                    rise = pe.rise_s
                    if len(pe.lags_s) == len(lags) and s < n_peri:
                        peri[s, j] = pe.mean
                out[s, j] = [score["immobility_s"], score["mean_immobile_bout_s"],
                             score["n_struggle_bouts"], rise]
                if subject < KEEP_ETHOGRAM_SUBJECTS:
                    ethograms.append(etho.assign(time_h=float(at[j])))
    # for the report: the first subjects' ethograms and peri-struggle population dF/F
    ctx.keep("tst", {"ethogram": (pd.concat(ethograms, ignore_index=True) if ethograms
                                  else pd.DataFrame()),
                     "lags_s": lags, "peri_dff": {float(t): peri[:, j]
                                                  for j, t in enumerate(at)}})
    return ctx.rows(out, at, TST_READOUTS, TST_UNITS)


def _merge_tst(kept: list[dict]) -> dict:
    parts = [k["tst"] for k in kept if "tst" in k]
    if not parts:
        return {}
    etho = [p["ethogram"] for p in parts if len(p["ethogram"])]
    return {"tst": {"ethogram": pd.concat(etho, ignore_index=True) if etho else pd.DataFrame(),
                    "lags_s": parts[0]["lags_s"],
                    "peri_dff": {t: np.concatenate([p["peri_dff"][t] for p in parts])
                                 for t in parts[0]["peri_dff"]}}}


TAIL_SUSPENSION = Assay(
    "tail_suspension", "tail suspension test (6 min) with vmPFC calcium",
    tuple(Readout(r, u) for r, u in zip(TST_READOUTS, TST_UNITS, strict=True)), _tst,
    outputs=("activity_drive", "synaptic_potentiation"),
    options={"cells": 60, "frame_rate_hz": 30.0, "branches": 10, "cell": "mpfc_l5"},
    positive=("cells", "frame_rate_hz", "branches"), reads=("circuit",),
    # the peri-struggle average's 1-s baseline needs frames in it
    minimum={"frame_rate_hz": 2.0},
    figures=("ketasim.report.behavior_figures:tst_figures",), merge_kept=_merge_tst,
    species=RODENTS)


#: subjects per arm whose open-field paths the report draws, and sessions per arm it draws
#: (a lab's tracks read by ``ketasim analyze`` are kept to the same bounds)
KEEP_TRACK_SUBJECTS = 6
KEEP_TRACK_SESSIONS = 4


def _open_field(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Distance travelled in a bin of ``bin_min`` minutes starting at each time, from a
    simulated track scored by :func:`ketasim.analysis.behavior.binned_distance`."""
    op = OpenFieldParams.from_registry(ctx.registry)
    n_s = round(float(ctx.options["bin_min"]) * 60.0)
    out = np.full((ctx.n, len(at), 1), np.nan)
    kept = []
    # each mouse's own activity level, kept over its sessions
    activity = lognormal_traits(ctx, op.values["activity_trait_cv"], "locomotor_activity")
    for j, t0 in enumerate(at):
        # the drive at each second of the bin (the runner samples the declared times)
        occ = ctx.trajectory("occupancy_interneuron", _seconds(t0, n_s))
        shut = ctx.trajectory("pyramidal_shutdown", _seconds(t0, n_s))
        for s in range(ctx.n):
            g = ctx.rng(s, session_key("open_field", t0))
            x, y, t = track(activity[s] * op.speed(occ[s], shut[s]), op, g)
            out[s, j, 0] = binned_distance(x, y, t, bin_s=float(n_s))[1].sum()
            if int(ctx.subjects[s]) < KEEP_TRACK_SUBJECTS:  # for the report's path plots
                kept.append(pd.DataFrame({"subject": str(int(ctx.subjects[s])),
                                          "time_h": float(t0), "t_s": t, "x_cm": x,
                                          "y_cm": y}))
    ctx.keep("tracks", pd.concat(kept, ignore_index=True) if kept else pd.DataFrame())
    return ctx.rows(out, at, ["distance_cm"], ["cm"])


def merge_tracks(kept: list[dict]) -> dict:
    """The kept open-field tracks of an arm's chunks, as one table."""
    parts = [k["tracks"] for k in kept if "tracks" in k and len(k["tracks"])]
    return {"tracks": pd.concat(parts, ignore_index=True)} if parts else {}


def _seconds(t0_h: float, n_s: int) -> np.ndarray:
    return t0_h + (np.arange(n_s) + 0.5) / 3600.0


def _open_field_times(at: np.ndarray, options: dict) -> np.ndarray:
    n_s = round(float(options["bin_min"]) * 60.0)
    return np.unique(np.concatenate([_seconds(float(t), n_s) for t in at]))


OPEN_FIELD = Assay(
    "open_field", "open-field locomotion, video tracking", (Readout("distance_cm", "cm"),),
    _open_field, outputs=("occupancy_interneuron", "pyramidal_shutdown"), sample_times=_open_field_times,
    options={"bin_min": 5.0}, positive=("bin_min",),
    minimum={"bin_min": 1.0 / 60.0},  # the track has one position a second
    figures=("ketasim.report.behavior_figures:track_figures",), merge_kept=merge_tracks,
    species=RODENTS)


def _sucrose_times(at: np.ndarray, options: dict) -> np.ndarray:
    h = float(options["hours"])
    return np.unique(np.concatenate([float(t) + np.linspace(0.0, h, 13) for t in at]))


def _row_mean(x: np.ndarray) -> np.ndarray:
    """Mean of each row, its columns added left to right: the same numbers whatever the
    number of rows (chunk sizes give identical results)."""
    acc = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        acc += x[:, k]
    return acc / x.shape[1]


def _by_subject(scored: pd.DataFrame, column: str, rows: list[dict]) -> np.ndarray:
    """``scored[column]`` in the chunk's subject order (the order of first appearance in
    ``rows``), matched on the subject id: the scoring functions return their subjects
    sorted as text ("10" before "2"), so their rows are not in the chunk's order."""
    ids = list(dict.fromkeys(r["subject"] for r in rows))
    values = scored.set_index(scored["subject"].astype(str))[column]
    if values.index.has_duplicates or set(values.index) != set(ids):
        raise RuntimeError(f"scored subjects {sorted(values.index)} are not the chunk's "
                           f"{ids}")
    return values.reindex(ids).to_numpy(dtype=float)


def _sucrose(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Two-bottle test of ``hours`` from each time: intakes drawn from the model, scored
    as bottle weights by :func:`ketasim.analysis.behavior.sucrose_preference`."""
    sp = SucroseParams.from_registry(ctx.registry)
    v = sp.values
    h = float(ctx.options["hours"])
    out = np.full((ctx.n, len(at), 1), np.nan)
    cv = v["intake_cv"]
    shape = 1.0 / cv**2 if cv > 0 else np.inf  # cv 0: every animal drinks the mean
    # the animal's own deviation of preference: drawn once from a stream of its own and
    # kept over all its tests (a trait, as the TST's vigour and the open field's activity)
    dev = v["pref_sd"] * ctx.normals(["sucrose_preference_trait"], 1)[:, 0, 0]
    for j, t0 in enumerate(at):
        times = float(t0) + np.linspace(0.0, h, 13)
        # the mean over the test's times summed in time order for every subject alike
        # (numpy's mean of a one-row chunk sums pairwise and could differ by an ulp)
        pref = _row_mean(sp.preference(ctx.trajectory("stress_load", times),
                                       ctx.trajectory("reward_potentiation", times)))
        rows = []
        for s in range(ctx.n):
            g = ctx.rng(s, session_key("sucrose", t0))
            p = float(np.clip(pref[s] + dev[s], 0.01, 0.99))
            mean_ml = v["intake_ml"] * h / 24.0
            total = g.gamma(shape, mean_ml / shape) if cv > 0 else mean_ml
            rows.append({"subject": str(int(ctx.subjects[s])), "sucrose_ml": total * p,
                         "water_ml": total * (1.0 - p)})
        scored = sucrose_preference(pd.DataFrame(rows))
        out[:, j, 0] = _by_subject(scored, "preference", rows)
    return ctx.rows(out, at, ["sucrose_preference"], ["fraction"])


SUCROSE = Assay(
    "sucrose_preference", "two-bottle sucrose preference test",
    (Readout("sucrose_preference", "fraction"),), _sucrose,
    outputs=("stress_load", "reward_potentiation"), sample_times=_sucrose_times,
    options={"hours": 12.0}, positive=("hours",),
    species=RODENTS)


def prefrontal_activity(ctx: AssayContext, at: np.ndarray, purpose: str) -> np.ndarray:
    """(n, len(at)) mean excitatory population rate of each subject's prefrontal circuit
    over ``minutes`` of activity at each time (the slow layers' state then), relative to
    the same circuit's rate at the pre-protocol baseline (the circuit stage's first
    recording; the same network, the session run first on the subject's stream): what
    the behaviour models below read from the mPFC.

    Relative to the subject's own baseline because the targets of the prefrontal output
    are tuned to each animal's usual level (homeostatic set point; Turrigiano 2008 Cell):
    a mouse whose circuit happens to run slowly at baseline is not helpless for that. The
    circuits' intrinsic spread (about 10% in baseline rate between subjects, from their
    in-degrees and biases) would otherwise make some unstressed mice fail most escape
    trials, against 2% (SD 4) in Wu et al. 2021 (F-W-15)."""
    cp = ctx.circuit.params
    t0 = ctx.circuit.baseline_h  # the pre-protocol baseline (the spine engine's start)
    coupling, drive = ctx.circuit.inputs(np.r_[t0, at], ctx.options["branches"])
    fr = ACTIVITY_FRAME_HZ
    n_frames = round(float(ctx.options["minutes"]) * 60.0 * fr)
    seeds = np.array([ctx.rng(s, purpose).integers(2**62) for s in range(ctx.n)], np.int64)
    out = np.empty(coupling.shape)
    for s0, _, _, rate in simulate_chunks(cp, coupling, drive, n_frames, fr, 1, seeds,
                                          rate=True):
        out[s0:s0 + rate.shape[0]] = rate.mean(axis=2)
    return out[:, 1:] / np.maximum(out[:, :1], 1e-9)


def _helplessness(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Active-avoidance (shuttle box) escape test of ``trials`` trials at each time: each
    trial fails with a probability falling, as a logistic, with the prefrontal activity
    (:func:`prefrontal_activity`: the circuit's population rate, set by functional
    synapses, their potentiation and the activity drive; F-W-15); latencies of failed
    trials at ``cutoff_s``; scored by :func:`ketasim.analysis.behavior.learned_helplessness`.
    Dopamine acts through the potentiation, which needs dopamine-driven PKA (F-W-16,
    F-W-17)."""
    v = ctx.registry.group("behavior.helplessness", ("p_fail_min", "p_fail_max", "c50", "width"))
    activity = prefrontal_activity(ctx, at, "helplessness_circuit")
    p_fail = v["p_fail_min"] + (v["p_fail_max"] - v["p_fail_min"]) / (
        1.0 + np.exp((activity - v["c50"]) / v["width"]))
    n_tr = int(ctx.options["trials"])
    cutoff = float(ctx.options["cutoff_s"])
    out = np.full((ctx.n, len(at), 1), np.nan)
    for j in range(len(at)):
        rows = []
        for s in range(ctx.n):
            g = ctx.rng(s, session_key("helplessness", at[j]))
            fail = g.random(n_tr) < p_fail[s, j]
            lat = np.where(fail, cutoff, g.uniform(1.0, 0.5 * cutoff, n_tr))
            rows += [{"subject": str(int(ctx.subjects[s])), "trial": k + 1, "latency_s": float(lat[k]),
                      "escaped": not bool(fail[k])} for k in range(n_tr)]
        scored = learned_helplessness(pd.DataFrame(rows), cutoff_s=cutoff)
        out[:, j, 0] = _by_subject(scored, "failure_pct", rows) / 100.0
    return ctx.rows(out, at, ["escape_failure_fraction"], ["fraction"])


HELPLESSNESS = Assay(
    "escape_test", "shuttle-box escape test (learned helplessness)",
    (Readout("escape_failure_fraction", "fraction"),), _helplessness,
    outputs=("synaptic_potentiation", "activity_drive"),
    options={"trials": 30, "cutoff_s": 20.0, "minutes": 2.0, "branches": 10,
             "cell": "mpfc_l5"},
    positive=("trials", "cutoff_s", "minutes", "branches"), reads=("circuit",),
    # escapes take 1 s to half the cutoff; the circuit's activity is read at 10 frames/s
    minimum={"cutoff_s": 2.0, "minutes": 1.0 / 60.0},
    species=RODENTS)


def _extinction(ctx: AssayContext, at: np.ndarray) -> AssayRows:
    """Fear extinction session at each time (a conditioned mouse; ``trials`` tone
    presentations of ``tone_s`` every ``iti_s``): the freezing probability in trial k is
    ``f0 exp(-k rate)`` with the extinction rate ``k_ext`` times the prefrontal activity
    (:func:`prefrontal_activity`) to the power ``gamma`` (extinction learning needs mPFC
    activity and plasticity; F-K-15). Freezing is drawn per 1-s bin as alternating bouts,
    scored by :func:`ketasim.analysis.behavior.freezing_per_trial`; the readout is the mean
    freezing over the last ``last`` trials (extinction recall within the session)."""
    v = ctx.registry.group("behavior.extinction", ("f0", "k_ext", "gamma"))
    o = ctx.options
    n_tr, tone, iti, last = int(o["trials"]), float(o["tone_s"]), float(o["iti_s"]), int(
        o["last"])
    activity = prefrontal_activity(ctx, at, "extinction_circuit")
    starts = np.arange(n_tr) * (tone + iti) + iti
    trials = np.stack([starts, starts + tone], axis=1)
    n_bins = int(starts[-1] + tone + 1)
    out = np.full((ctx.n, len(at), 1), np.nan)
    for j in range(len(at)):
        for s in range(ctx.n):
            g = ctx.rng(s, session_key("extinction", at[j]))
            rate = v["k_ext"] * max(activity[s, j], 0.0) ** v["gamma"]
            freeze = np.zeros(n_bins, bool)
            for k, (a, b) in enumerate(trials.astype(int)):
                freeze[a:b] = g.random(b - a) < v["f0"] * np.exp(-k * rate)
            res = freezing_per_trial(freeze, 1.0, trials)
            out[s, j, 0] = res.per_trial["freezing_pct"].to_numpy(float)[-last:].mean() / 100
    return ctx.rows(out, at, ["extinction_freezing_fraction"], ["fraction"])


EXTINCTION = Assay(
    "fear_extinction", "cued fear extinction session (freezing)",
    (Readout("extinction_freezing_fraction", "fraction"),), _extinction,
    outputs=("synaptic_potentiation", "activity_drive"),
    options={"trials": 20, "tone_s": 30.0, "iti_s": 30.0, "last": 5, "minutes": 2.0,
             "branches": 10, "cell": "mpfc_l5"},
    positive=("trials", "tone_s", "last", "minutes", "branches"), reads=("circuit",),
    minimum={"minutes": 1.0 / 60.0, "tone_s": 1.0},  # 10 frames/s of activity; 1-s bins
    check=lambda o: (("last", f"at most the {o['trials']} trials") if o["last"] > o["trials"]
                     else None),
    species=RODENTS)
