"""Statistics of one imaged session of the prefrontal circuit, shared by
``bench_circuit.py`` (ketasim and the numpy reference, project venv) and
``brian2_circuit.py`` (Brian2, its own venv): numpy only, so both interpreters import it
and every side is summarised by the same code."""

from __future__ import annotations

import math

import numpy as np

FRAME_RATE_HZ = 30.0
EVENT_DFF = 0.5  # population-mean dF/F counted as an ensemble event (like-for-like check)
# population rate counted as an event: a quarter of circuit.r_max_hz (20 Hz). The rate is
# bimodal (median 0.35 Hz; events saturate near r_max), so the threshold is not critical
RATE_EVENT_HZ = 5.0


def assembly_blocks(ne: int, n_asm: int, n_cells: int):
    """The references' assembly layout, as ``ketasim.circuit.network.assembly_layout``
    lays it out (tests/test_circuit.py checks they agree): block starts (n_asm + 1,),
    each unit's assembly (ne,) and the imaged units (n_cells,), taken from the blocks in
    turn."""
    start = (np.arange(n_asm + 1) * ne) // n_asm
    member = np.repeat(np.arange(n_asm), np.diff(start))
    img = np.array(sorted(range(ne), key=lambda i: (i - start[member[i]], member[i])))
    return start, member, img[:n_cells]


def session_stats(raw: np.ndarray, neuropil: np.ndarray, rate: np.ndarray,
                  neuropil_factor: float) -> dict[str, float]:
    """Summary statistics of one session (cells, frames), as an analysis script would."""
    fc = raw.astype(np.float64) - neuropil_factor * neuropil
    f0 = np.percentile(fc, 10, axis=1, keepdims=True)
    dff = (fc - f0) / f0
    pop = dff.mean(axis=0)
    above = pop > EVENT_DFF
    minutes = raw.shape[1] / FRAME_RATE_HZ / 60.0
    return {
        "mean fluorescence F": float(raw.mean()),
        "mean dF/F (neuropil-corrected)": float(dff.mean()),
        f"frames with pop. dF/F > {EVENT_DFF:g}": float(above.mean()),
        "pop. events per min": float(np.count_nonzero(above[1:] & ~above[:-1]) / minutes),
        "mean excitatory rate (Hz)": float(rate.mean()),
    }


def rate_stats(rate: np.ndarray) -> dict[str, float]:
    """Statistics of the excitatory population rate of one session (frames,), in Hz:
    the fraction of frames above ``RATE_EVENT_HZ`` and its upward crossings per minute."""
    rate = np.asarray(rate, np.float64)
    above = rate > RATE_EVENT_HZ
    minutes = rate.shape[0] / FRAME_RATE_HZ / 60.0
    return {
        f"frames with pop. rate > {RATE_EVENT_HZ:g} Hz": float(above.mean()),
        f"pop. rate events (> {RATE_EVENT_HZ:g} Hz) per min":
            float(np.count_nonzero(above[1:] & ~above[:-1]) / minutes),
    }


def mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
