"""How the prefrontal circuit's imaging statistics change with its recurrent coupling: a
diagnostic for modellers (docs/design.md, "Assemblies instead of one mean field", which
shows the switch between regimes it revealed in the one-population network).

:func:`coupling_sweep` runs the circuit of :mod:`ketasim.circuit.network` (the registry's
``circuit.*`` parameters) for ``n_circuits`` independent circuits at each coupling value
and summarises every session with the calcium-imaging pipeline of the
``calcium_imaging`` assay (neuropil subtraction, 8th-percentile F0,
:func:`ketasim.analysis.calcium.summarize_session`), so the numbers are those a replica
would read at that coupling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketasim.analysis.calcium import summarize_session
from ketasim.circuit.assay import dff_from_raw, simulate_chunks
from ketasim.circuit.network import CircuitParams
from ketasim.params.registry import Registry

SWEEP_KEYS = ("transient_rate_per_min", "sync_event_rate_per_min",
              "sync_fraction_per_event", "mean_pairwise_r", "correlated_pair_fraction")


def coupling_sweep(registry: Registry, couplings, n_circuits: int = 12,
                   minutes: float = 3.0, cells: int = 40, drive: float = 1.0,
                   frame_rate_hz: float = 30.0, shuffles: int = 50,
                   seed: int = 0) -> pd.DataFrame:
    """One row per circuit and coupling value: the coupling (x baseline functional
    synapse density), the circuit's index, its mean excitatory population rate (Hz) and
    the calcium-imaging readouts (``SWEEP_KEYS``) of a ``minutes``-long session of
    ``cells`` cells at activity drive ``drive``. Circuit ``i`` has the same units (in-
    degrees, biases) at every coupling value, so a column follows one circuit."""
    c = np.asarray(couplings, dtype=float)
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("couplings: a non-empty list of finite values >= 0 expected")
    if n_circuits < 1 or minutes <= 0 or cells < 2 or frame_rate_hz <= 0 or shuffles < 1:
        raise ValueError("n_circuits >= 1, minutes > 0, cells >= 2, frame_rate_hz > 0 "
                         "and shuffles >= 1 expected")
    cp = CircuitParams.from_registry(registry)
    cells = min(int(cells), int(cp.values["n_exc"]))
    coupling = np.repeat(c[None, :], n_circuits, axis=0)
    drives = np.full_like(coupling, float(drive))
    n_frames = round(minutes * 60.0 * frame_rate_hz)
    if n_frames < 2:
        raise ValueError(f"minutes {minutes:g} at frame_rate_hz {frame_rate_hz:g}: a session "
                         "of at least 2 frames expected")
    seeds = np.random.SeedSequence(seed).generate_state(n_circuits, np.uint64)
    seeds = (seeds >> np.uint64(2)).astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rows = []
    for s0, raw, npl, pop in simulate_chunks(cp, coupling, drives, n_frames,
                                             frame_rate_hz, cells, seeds, rate=True):
        for i in range(raw.shape[0]):
            for j, cj in enumerate(c):
                dff = dff_from_raw(raw[i, j], npl[i, j], cp.values["neuropil_factor"])
                sm = summarize_session(dff, frame_rate_hz, rng=rng,
                                       n_shuffles=shuffles).as_dict()
                rows.append({"coupling": float(cj), "circuit": s0 + i,
                             "population_rate_hz": float(pop[i, j].mean()),
                             **{k: float(sm[k]) for k in SWEEP_KEYS}})
    return pd.DataFrame(rows)
