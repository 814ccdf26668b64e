"""Tail suspension test: immobility and struggle bouts driven by prefrontal activity.

Rule (parameters ``behavior.tst.*``): the mouse alternates struggle and immobility. A
struggle bout lasts a gamma-distributed time (mean ``struggle_mean_s``, shape
``struggle_shape``). During immobility a struggle starts either spontaneously (rate
``spont_rate_hz``) or, with probability ``p_trigger``, ``lag_s`` after the onset of a
prefrontal ensemble event (the excitatory population rate crossing ``event_rate_hz``):
vmPFC activity initiates escape attempts, so the calcium signal rises about a second
before a struggle (F-M-10), and a circuit with fewer events gives longer immobility
(F-M-1, F-M-10). An ensemble activation that lasts counts again every
``event_refire_s`` while the rate stays above the threshold, and a rate already above it
when the test starts is an event at its start: a tonically active circuit (unstressed
mice 3 h after ketamine sit at a population rate near 4 Hz, above the 3-Hz threshold)
keeps starting struggles instead of never crossing the threshold, which made such mice
the most immobile of all (300 s against 206 s on saline; now 200 s). The test starts
with a struggle of ``initial_struggle_s`` (mice struggle first when suspended). Mice
differ in how hard they struggle: each has a vigour (log-normal, mean 1, CV
``struggle_trait_cv``) kept over all its tests, which scales its struggle bouts.
"""

from __future__ import annotations

import numpy as np

from ketasim.params.registry import ParamGroup

PARAM_NAMES = ("duration_s", "struggle_mean_s", "struggle_shape", "spont_rate_hz",
               "p_trigger", "lag_s", "event_rate_hz", "event_refire_s", "initial_struggle_s",
               "struggle_trait_cv")


class TstParams(ParamGroup):
    PREFIX, NAMES = "behavior.tst", PARAM_NAMES


def event_onsets(rate_hz: np.ndarray, threshold_hz: float, refire_frames: int = 0
                 ) -> np.ndarray:
    """Frames of ensemble events: where the population rate crosses ``threshold_hz``
    upwards (and frame 0 if it is above it there), and, with ``refire_frames`` > 0, every
    ``refire_frames`` frames after such an onset while the rate stays above it."""
    above = rate_hz >= threshold_hz
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    if above.size and above[0]:
        starts = np.r_[0, starts]
    if refire_frames <= 0 or starts.size == 0:
        return starts
    ends = np.flatnonzero(above[:-1] & ~above[1:]) + 1  # first frame below after a run
    ends = np.r_[ends, above.size] if above[-1] else ends
    runs = [np.arange(a, b, refire_frames) for a, b in zip(starts, ends, strict=True)]
    return np.concatenate(runs)


def immobility_states(rate_hz: np.ndarray, frame_rate_hz: float, params: TstParams,
                      rng: np.random.Generator, vigour: float = 1.0) -> np.ndarray:
    """Per-frame states of one test (True = immobile) from the population rate trace;
    ``vigour`` scales the mouse's struggle bout durations (its trait: ``struggle_trait_cv``,
    :func:`ketasim.behavior.traits.lognormal_traits`)."""
    v = params.values
    n = rate_hz.size
    dt = 1.0 / frame_rate_hz
    lag = round(v["lag_s"] * frame_rate_hz)
    # struggle triggers: event onsets that pass the trigger coin, shifted by the lag
    onsets = event_onsets(rate_hz, v["event_rate_hz"],
                          max(1, round(v["event_refire_s"] * frame_rate_hz)))
    triggers = np.zeros(n, bool)
    kept = onsets[rng.random(onsets.size) < v["p_trigger"]] + lag
    triggers[kept[kept < n]] = True
    spont = rng.random(n) < v["spont_rate_hz"] * dt
    scale = vigour * v["struggle_mean_s"] / v["struggle_shape"]
    immobile = np.zeros(n, bool)
    k = round(v["initial_struggle_s"] * frame_rate_hz)
    while k < n:  # one iteration per bout, never per frame
        start = k
        rest = np.flatnonzero(triggers[start:] | spont[start:])
        end = n if rest.size == 0 else start + int(rest[0])
        immobile[start:end] = True
        if end >= n:
            break
        k = end + max(1, round(rng.gamma(v["struggle_shape"], scale) * frame_rate_hz))
    return immobile
