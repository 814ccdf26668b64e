"""In vivo imaging acts on what it images (issue 16, item 3): each two-photon session
removes spines on the imaged branches (imaging.two_photon.loss_per_min x its minutes,
small spines more), the sites do not regrow as restored spines, and nothing changes
without imaging time."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ketasim.experiment.runner import simulate
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text

REG = load_registry()


def _run(session_min: float, drug: str = "saline", registry=REG, n: int = 6):
    dose = "dose: 10 mg/kg, " if drug == "ketamine" else ""
    sc = load_scenario_text(
        f"name: t\nspecies: mouse\nseed: 5\narms:\n  - name: a\n    n: {n}\n"
        f"    protocol: [{{at: 0h, drug: {drug}, {dose}route: ip}}]\n"
        "    assays:\n"
        f"      - {{assay: two_photon_spines, at: [-3d, -1d, 1d, 3d], options: {{branches: 4, "
        f"session_min: {session_min}}}}}\n"
        "      - {assay: fixed_tissue_spines, at: [3d], options: {branches: 10}}\n")
    return simulate(sc, registry=registry)


def _density(res, assay="two_photon_spines"):
    r = res.readouts
    return r[(r.assay == assay) & (r.readout == "spine_density_per_10um")].groupby(
        "time_h")["value"].mean()


def test_sessions_remove_imaged_spines_only():
    none, imaged = _run(0.0), _run(90.0)
    d0, d1 = _density(none), _density(imaged)
    assert d0.iloc[0] == d1.iloc[0]  # the first session is seen before its own damage
    assert d1.iloc[-1] < 0.9 * d0.iloc[-1]  # three 90-min sessions later
    # the fixed-tissue count covers 10 branches, of which the first 4 were imaged
    f0, f1 = _density(none, "fixed_tissue_spines"), _density(imaged, "fixed_tissue_spines")
    assert 0.85 * f0.iloc[0] < f1.iloc[0] < f0.iloc[0]
    rec_none = none.kept["two_photon_spines"]["a"]["tracking"]
    rec_img = imaged.kept["two_photon_spines"]["a"]["tracking"]
    assert len(rec_img) < len(rec_none)


def test_without_imaging_time_or_loss_nothing_changes():
    a = _run(0.0).readouts
    b = _run(90.0, registry=REG.with_values({"imaging.two_photon.loss_per_min": 0.0})).readouts
    pd.testing.assert_frame_equal(a, b)


def test_light_lost_sites_do_not_regrow_as_restored_spines():
    """Ketamine regrows spines at sites lost to stress, not at sites lost to the light:
    its formation between the sessions before and after the dose is no larger when
    the earlier sessions removed spines (were those sites remembered, restoration would
    raise it by half or more)."""
    def formation_after(session_min):
        r = _run(session_min, "ketamine").readouts
        return r[(r.readout == "formation_pct") & (r.time_h == 24.0)]["value"].mean()

    assert formation_after(90.0) < 1.15 * formation_after(0.0)


def _lost_per_interval(res) -> list[float]:
    """Per interval between sessions: the share of the spines seen at its start that are
    gone at its end (biological elimination plus the session's damage)."""
    t = res.kept["two_photon_spines"]["a"]["tracking"]
    times = sorted(t["time_h"].unique())
    seen = [set(zip(*(t[t["time_h"] == x][c] for c in ("subject", "branch", "spine_id")),
                    strict=True)) for x in times]
    return [1.0 - len(a & b) / len(a) for a, b in itertools.pairwise(seen)]


def test_susceptible_spines_go_first_so_later_sessions_lose_fewer():
    """With a spread of susceptibility the most susceptible spines are lost in the first
    sessions: the loss the light adds (over the same mice without imaging time) in the
    last interval falls well below the first's, while with one susceptibility for every
    spine it stays about the same."""
    base = np.array(_lost_per_interval(_run(0.0, n=20)))

    def added(sd):
        lost = _lost_per_interval(_run(90.0, n=20, registry=REG.with_values(
            {"imaging.two_photon.susceptibility_sd": sd})))
        return np.array(lost) - base

    flat, spread = added(0.0), added(1.5)
    assert flat[0] > 0.05 and spread[0] > 0.03  # the light removes spines in both
    assert flat[-1] / flat[0] > 0.85
    assert spread[-1] / spread[0] < flat[-1] / flat[0] - 0.25


def test_susceptibility_is_not_drawn_from_the_stream():
    """A spine's susceptibility is hashed from its id, not drawn: without imaging time a
    spread changes nothing."""
    a = _run(0.0).readouts
    b = _run(0.0, registry=REG.with_values(
        {"imaging.two_photon.susceptibility_sd": 2.0})).readouts
    pd.testing.assert_frame_equal(a, b)


def test_hashed_normal_is_standard_normal_and_fixed():
    import numba
    from scipy import stats

    from ketasim.core.xoroshiro import hashed_normal

    @numba.njit
    def draws(key, n):
        out = np.empty(n)
        for i in range(n):
            out[i] = hashed_normal(np.uint64(key), i)
        return out

    z = draws(2026, 50_000)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert stats.kstest(z, "norm").pvalue > 0.01
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.02
    np.testing.assert_array_equal(z[:100], draws(2026, 100))
    assert not np.array_equal(z[:100], draws(2027, 100))
