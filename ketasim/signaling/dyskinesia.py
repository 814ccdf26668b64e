"""The dyskinesia drive of striatal D1 neurons and the severity it gives, shared by the
rats' AIMs (:mod:`ketasim.behavior.striatal`) and the patients' UDysRS
(:mod:`ketasim.clinical.dyskinesia`): functions of the signalling layer's outputs
``lid_priming`` and ``d1_drive``, so they sit here, below both."""

from __future__ import annotations

import numpy as np

AIMS_MAX = 4  # severity per subtype per observation (AIMs) or per item (UDysRS)


def aims_drive(priming: np.ndarray, d1: np.ndarray, threshold: float) -> np.ndarray:
    """Dyskinesia drive of the striatal D1 neurons: priming x the D1 signal above the
    threshold, in units of the threshold (0 when either is absent)."""
    return np.asarray(priming) * np.clip(np.asarray(d1) - threshold, 0.0, None) / threshold


def aims_severity(drive: np.ndarray, p: dict) -> np.ndarray:
    """Latent severity (0-4) at dyskinesia drive ``drive`` (already scaled by the
    subject's sensitivity and the subtype's or body region's weight), a Hill function
    with ``p["drive_50"]`` and ``p["hill"]``."""
    x = np.clip(np.asarray(drive, dtype=float), 0.0, None) ** p["hill"]
    return AIMS_MAX * x / (x + p["drive_50"] ** p["hill"])
