"""Open-field locomotion with ketamine's acute hyperlocomotion (F-W-7).

Rule (parameters ``behavior.open_field.*``): the mean running speed is the baseline
``speed_cm_s`` times ``1 + hyper_gain h(o)``, with o the NMDA receptor occupancy on
cortical interneurons (the signalling layer) and h a Hill function (half-effect
``occ50``, steepness ``hill``): the drive of the acute hyperlocomotion falls with brain
ketamine and is over by about 2 h at 10 mg/kg. At anaesthetic doses ketamine causes
ataxia and immobility instead: the speed is multiplied by ``1 - s``, with s the
signalling layer's ``pyramidal_shutdown`` (a steep Hill function of the NMDA receptor
block on pyramidal neurons, which needs about eight times the concentration that blocks
interneurons; ``rec.pyramidal_shutdown_*``), so locomotion over doses is an inverted U
(F-W-18). The animal's path is a correlated random
walk sampled once a second (gamma-distributed step speed, heading diffusion, reflection
at the arena walls), seen by a tracking camera with position jitter, and scored by
:func:`ketasim.analysis.behavior.binned_distance`. Mice differ in how much they move:
each has an activity level (log-normal, mean 1, CV ``activity_trait_cv``) kept over all
its sessions, which scales its mean speed (the assay draws it).
"""

from __future__ import annotations

import numpy as np

from ketasim.params.registry import ParamGroup

PARAM_NAMES = ("speed_cm_s", "hyper_gain", "occ50", "hill", "arena_cm", "speed_cv",
               "heading_sd_rad", "jitter_cm", "activity_trait_cv")


class OpenFieldParams(ParamGroup):
    PREFIX, NAMES = "behavior.open_field", PARAM_NAMES

    def speed(self, occupancy: np.ndarray, shutdown: np.ndarray | None = None
              ) -> np.ndarray:
        """Mean speed (cm/s) at an NMDA occupancy on interneurons and (ataxia) a
        pyramidal shutdown (0-1; none when ``shutdown`` is None)."""
        v = self.values
        x = np.power(np.clip(occupancy, 0.0, None) / v["occ50"], v["hill"])
        speed = v["speed_cm_s"] * (1.0 + v["hyper_gain"] * x / (1.0 + x))
        if shutdown is None:
            return speed
        return speed * (1.0 - np.clip(shutdown, 0.0, 1.0))


def track(mean_speed: np.ndarray, params: OpenFieldParams, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y (cm) and time (s) of a path sampled at 1 Hz, with ``mean_speed`` (cm/s) per
    second: ``n + 1`` positions for ``n = mean_speed.size`` steps, the first the start
    point (uniform in the arena)."""
    v = params.values
    n = mean_speed.size
    shape = 1.0 / v["speed_cv"] ** 2
    step = rng.gamma(shape, mean_speed / shape)
    heading = np.cumsum(rng.normal(0.0, v["heading_sd_rad"], n)) + rng.uniform(0, 2 * np.pi)
    a = v["arena_cm"]
    # unfold the walk from its start point, then fold it into the arena (reflection at
    # the walls); the first recorded position is the start point itself
    start = rng.uniform(0, a, (2, 1))
    raw = start + np.cumsum(np.stack([step * np.cos(heading), step * np.sin(heading)]),
                            axis=1)
    folded = np.abs(((raw + a) % (2 * a)) - a)
    xy = np.concatenate([start, folded], axis=1)
    xy += rng.normal(0.0, v["jitter_cm"], xy.shape)
    return xy[0], xy[1], np.arange(n + 1, dtype=float)
