"""Tail suspension test: immobility and struggle bouts driven by prefrontal activity.

Rule (parameters ``behavior.tst.*``): the mouse alternates struggle and immobility. A
struggle bout lasts a gamma-distributed time (mean ``struggle_mean_s``, shape
``struggle_shape``). During immobility a struggle starts either spontaneously (rate
``spont_rate_hz``) or, with probability ``p_trigger``, ``lag_s`` after the onset of a
prefrontal ensemble event (the excitatory population rate crossing ``event_rate_hz``):
vmPFC activity initiates escape attempts, so the calcium signal rises about a second
before a struggle (F-M-10), and a circuit with fewer events gives longer immobility
(F-M-1, F-M-10). The test starts with a struggle of ``initial_struggle_s`` (mice struggle
first when suspended).
"""

from __future__ import annotations

import numpy as np

from ketasim.params.registry import ParamGroup

PARAM_NAMES = ("duration_s", "struggle_mean_s", "struggle_shape", "spont_rate_hz",
               "p_trigger", "lag_s", "event_rate_hz", "initial_struggle_s")


class TstParams(ParamGroup):
    PREFIX, NAMES = "behavior.tst", PARAM_NAMES


def event_onsets(rate_hz: np.ndarray, threshold_hz: float) -> np.ndarray:
    """Frames at which the population rate crosses ``threshold_hz`` upwards."""
    above = rate_hz >= threshold_hz
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def immobility_states(rate_hz: np.ndarray, frame_rate_hz: float, params: TstParams,
                      rng: np.random.Generator) -> np.ndarray:
    """Per-frame states of one test (True = immobile) from the population rate trace."""
    v = params.values
    n = rate_hz.size
    dt = 1.0 / frame_rate_hz
    lag = round(v["lag_s"] * frame_rate_hz)
    # struggle triggers: event onsets that pass the trigger coin, shifted by the lag
    onsets = event_onsets(rate_hz, v["event_rate_hz"])
    triggers = np.zeros(n, bool)
    kept = onsets[rng.random(onsets.size) < v["p_trigger"]] + lag
    triggers[kept[kept < n]] = True
    spont = rng.random(n) < v["spont_rate_hz"] * dt
    scale = v["struggle_mean_s"] / v["struggle_shape"]
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
