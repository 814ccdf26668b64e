"""Sucrose preference through a path that does not run through the new prefrontal spines
(F-M-1, F-M-4, F-M-13).

Rule (parameters ``behavior.sucrose.*``): anhedonia A = stress load x (1 - relief P) with
P the signalling layer's ``reward_potentiation`` (the same PKA-gated induction as the
prefrontal potentiation, in reward circuits, where it lasts longer) and relief at most 1;
the animal's sucrose preference over the test is ``pref_max - pref_drop A`` plus a
per-animal deviation (SD ``pref_sd``, drawn once and kept over all its tests: a trait),
and its total intake in each test is gamma distributed (mean ``intake_ml``, CV
``intake_cv``). The two bottles are weighed as in the lab and scored by
:func:`ketasim.analysis.behavior.sucrose_preference`.
"""

from __future__ import annotations

import numpy as np

from ketasim.params.registry import ParamGroup

PARAM_NAMES = ("pref_max", "pref_drop", "relief", "pref_sd", "intake_ml", "intake_cv")


class SucroseParams(ParamGroup):
    PREFIX, NAMES = "behavior.sucrose", PARAM_NAMES

    def preference(self, stress_load: np.ndarray, potentiation: np.ndarray) -> np.ndarray:
        v = self.values
        anhedonia = stress_load * np.clip(1.0 - v["relief"] * potentiation, 0.0, 1.0)
        return v["pref_max"] - v["pref_drop"] * anhedonia
