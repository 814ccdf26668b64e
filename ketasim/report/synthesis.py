"""The synthesis figure (F-W-20; commentary 001, Figure 1): ketamine-minus-vehicle time
courses of every neural and behavioural readout available, each normalised to its
largest absolute difference, mice and humans (dashed: plasma ketamine, dissociation and
MADRS against placebo; MADRS improvement is negative), on one logarithmic time axis from
minutes to weeks. Later layers add their readouts as rows of ``SERIES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.report._mpl import literal, subplots


@dataclass(frozen=True)
class Series:
    label: str
    species: str
    replica: str
    readout: str
    drug_arm: str
    vehicle_arm: str | None  # None: the drug arm's own values (e.g. plasma levels)
    assay: str | None = None  # the assay read, where two in the replica report the readout


SERIES: tuple[Series, ...] = (
    Series("mPFC dopamine (microdialysis)", "mouse", "mpfc_dopamine_microdialysis",
           "da_pct_baseline", "ketamine", "saline"),
    Series("plasticity potential", "mouse", "plasticity_window_signaling",
           "plasticity_potential", "ketamine", "saline"),
    Series("acute activity drive", "mouse", "signaling_drives", "activity_drive",
           "ketamine", "saline"),
    Series("spine formation drive", "mouse", "signaling_drives", "formation_drive",
           "ketamine", "saline"),
    Series("synaptic protein (PSD95)", "mouse", "signaling_drives", "synaptic_protein",
           "ketamine", "saline"),
    Series("uncaging spinogenesis", "mouse", "uncaging_timecourse", "uncaging_success",
           "ketamine", "saline"),
    Series("spine formation (two-photon)", "mouse", "cort_ketamine_spine_imaging",
           "formation_pct", "control_ketamine", "control_saline"),
    Series("spine density (two-photon)", "mouse", "cort_ketamine_spine_imaging",
           "spine_density_per_10um", "control_ketamine", "control_saline",
           assay="two_photon_spines"),
    # the human lines (issue 14): plasma level, dissociation, MADRS against placebo
    Series("plasma ketamine (0.5 mg/kg over 40 min)", "human", "pk_human_infusion",
           "ketamine_plasma_ng_ml", "ketamine", None),
    Series("dissociation (CADSS)", "human", "trd_single_infusion", "cadss_total",
           "ketamine", "placebo"),
    Series("MADRS, ketamine - placebo", "human", "trd_single_infusion", "madrs_total",
           "ketamine", "placebo"),
)

_TICKS = [(1 / 6, "10 min"), (1, "1 h"), (6, "6 h"), (24, "1 d"), (72, "3 d"), (168, "1 w"),
          (336, "2 w")]


def difference_courses(readouts_by_replica: dict[str, pd.DataFrame]) -> list[tuple]:
    """(series, times_h, normalised difference) for every series whose replica ran."""
    out = []
    for s in SERIES:
        r = readouts_by_replica.get(s.replica)
        if r is None:
            continue
        r = r[r["readout"] == s.readout]
        if s.assay is not None:  # fixed tissue reports the same readout at 4 d
            r = r[r["assay"] == s.assay]
        m = r.groupby(["arm", "time_h"])["value"].mean()
        arms = set(m.index.get_level_values(0))
        if s.drug_arm not in arms or (s.vehicle_arm is not None and s.vehicle_arm not in arms):
            continue
        d = m.loc[s.drug_arm] if s.vehicle_arm is None else m.loc[s.drug_arm] - m.loc[s.vehicle_arm]
        d = d.dropna()
        d = d[d.index > 0]
        scale = np.abs(d).max()
        if len(d) < 2 or not np.isfinite(scale) or scale == 0:
            continue
        out.append((s, d.index.to_numpy(float), d.to_numpy(float) / scale))
    return out


def synthesis_figure(readouts_by_replica: dict[str, pd.DataFrame], path: Path) -> Path | None:
    courses = difference_courses(readouts_by_replica)
    if not courses:
        return None
    fig, ax = subplots(figsize=(12, 4.8))
    for s, t, d in courses:
        style = "-" if s.species != "human" else "--"
        ax.plot(t, d, style, marker="o", ms=3, label=literal(f"{s.label} ({s.species})"))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1 / 12, 24 * 21)
    ax.set_xticks([t for t, _ in _TICKS], [lab for _, lab in _TICKS])
    ax.set_xlabel("time after ketamine (log scale)")
    ax.set_ylabel("ketamine - control (vehicle or placebo; normalised)", fontsize=8)
    ax.set_title("Synthesis: time courses of ketamine's effects (F-W-20)")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
