"""Names a scenario may use: drugs, routes, stressors, interventions, assays.

Everything here is plain data. The scenario models look names up in these
tables at validation time (not at import time), so a later layer extends the
vocabulary by adding entries, for example::

    from ketasim.scenario import vocabulary
    vocabulary.ASSAYS["tail_suspension"] = ("tst_immobility_s",)

or with the small ``register_*`` helpers below, which also check the entry.
The JSON Schema (:func:`ketasim.scenario.scenario_json_schema`) is generated
from the current tables too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, overload

__all__ = [
    "ALL_READOUTS",
    "ASSAYS",
    "DOSE_KINDS",
    "DRUGS",
    "DRUG_NOTES",
    "INTERVENTIONS",
    "INTERVENTION_KINDS",
    "ROUTES",
    "ROUTE_DOSE_KINDS",
    "SPECIES",
    "STRESSORS",
    "all_readouts",
    "intervention_kind",
    "readouts_of",
    "register_assay",
    "register_drug",
    "register_intervention",
]

#: Species a scenario may simulate.
SPECIES: tuple[str, ...] = ("mouse", "rat", "human")

#: Administration routes. ``bath`` is application to an acute slice;
#: ``intracerebral`` is a local injection or cannula infusion into tissue.
ROUTES: tuple[str, ...] = ("iv", "ip", "sc", "im", "intranasal", "oral", "bath", "intracerebral")

#: The three kinds of dose a :class:`~ketasim.scenario.Dose` can be.
DOSE_KINDS: tuple[str, ...] = ("per_kg", "absolute", "concentration")

#: Dose kinds each route accepts. A slice bath is dosed by concentration, a
#: local brain injection by mass; systemic routes by mg/kg or by total mass.
ROUTE_DOSE_KINDS: dict[str, tuple[str, ...]] = {
    "iv": ("per_kg", "absolute"),
    "ip": ("per_kg", "absolute"),
    "sc": ("per_kg", "absolute"),
    "im": ("per_kg", "absolute"),
    "intranasal": ("per_kg", "absolute"),
    "oral": ("per_kg", "absolute"),
    "bath": ("concentration",),
    "intracerebral": ("absolute",),
}

_KETAMINES = ("iv", "ip", "sc", "im", "intranasal", "oral")
_METABOLITES = ("iv", "ip", "sc", "oral")

#: Drug name -> routes by which the simulator can give it.
DRUGS: dict[str, tuple[str, ...]] = {
    "saline": ROUTES,
    "ketamine": _KETAMINES,
    "esketamine": _KETAMINES,
    "arketamine": _KETAMINES,
    "norketamine": _METABOLITES,
    "hnk": _METABOLITES,
    "midazolam": ("iv", "im", "oral"),
    "rapamycin": ("ip", "oral"),
    "nbqx": ("ip", "sc", "intracerebral"),
    "ana12": ("ip",),
    "sch23390": ("ip", "sc", "intracerebral"),
    "skf81297": ("ip", "bath"),
    "h89": ("bath", "intracerebral"),
    "ldopa": ("ip", "sc", "oral"),
}

#: One-line description of each drug (used in the JSON Schema and the docs).
DRUG_NOTES: dict[str, str] = {
    "saline": "vehicle; the dose may be left out",
    "ketamine": "racemic ketamine",
    "esketamine": "S-ketamine",
    "arketamine": "R-ketamine",
    "norketamine": "norketamine, the first N-demethylated metabolite",
    "hnk": "(2R,6R)-hydroxynorketamine",
    "midazolam": "benzodiazepine used as an active placebo in trials",
    "rapamycin": "mTORC1 inhibitor",
    "nbqx": "AMPA receptor antagonist",
    "ana12": "TrkB antagonist",
    "sch23390": "D1-like receptor antagonist",
    "skf81297": "D1-like receptor agonist",
    "h89": "PKA inhibitor",
    "ldopa": "dopamine precursor",
}

#: Stressor names for stress events.
STRESSORS: tuple[str, ...] = ("cort", "restraint", "inescapable_shock")

#: Intervention name -> whether an event must give a ``duration``:
#: ``"required"`` (it acts for a set time) or ``"forbidden"`` (it is permanent
#: from ``at``, or instantaneous).
INTERVENTIONS: dict[str, Literal["forbidden", "required"]] = {
    "drd1_cko": "forbidden",
    "pki_alpha": "forbidden",
    "vta_da_chemogenetic_inhibition": "required",
    "mpfc_da_terminal_activation": "required",
    "mpfc_da_terminal_inhibition": "required",
    "as_parac1_photoactivation": "forbidden",
}

#: Intervention name -> how it acts in time. ``"permanent"``: from ``at`` to
#: the end of the experiment (a genetic manipulation), so it can be given at
#: most once per arm; ``"instantaneous"``: a single pulse at ``at``;
#: ``"timed"``: for ``duration`` from ``at``. Names missing here fall back to
#: ``"timed"`` when a duration is required and ``"permanent"`` otherwise.
INTERVENTION_KINDS: dict[str, Literal["permanent", "instantaneous", "timed"]] = {
    "drd1_cko": "permanent",  # conditional Drd1 knock-out in mPFC
    "pki_alpha": "permanent",  # viral PKI-alpha expression (PKA block)
    "vta_da_chemogenetic_inhibition": "timed",
    "mpfc_da_terminal_activation": "timed",
    "mpfc_da_terminal_inhibition": "timed",
    "as_parac1_photoactivation": "instantaneous",  # light pulse shrinking tagged spines
}

#: Assay name -> readouts it reports.
ASSAYS: dict[str, tuple[str, ...]] = {
    "plasma_pk": (
        "ketamine_plasma_ng_ml",
        "esketamine_plasma_ng_ml",
        "arketamine_plasma_ng_ml",
        "norketamine_plasma_ng_ml",
        "hnk_plasma_ng_ml",
    ),
    "brain_pk": ("ketamine_brain_ng_g", "norketamine_brain_ng_g", "hnk_brain_ng_g"),
    "microdialysis_da": ("da_pct_baseline",),
    "western_blot": (
        "bdnf_rel",
        "perk_rel",
        "pmtor_rel",
        "peef2_rel",
        "psd95_rel",
        "glua1_rel",
    ),
    # Latent model variables, for inspecting the model rather than replicating a lab.
    "signaling_state": (
        "plasticity_potential",
        "formation_drive",
        "elimination_drive",
        "activity_drive",
        "synaptic_protein",
        "glutamate_surge",
        "da_rel",
        "pka_rel",
        "stress_load",
        "occupancy_interneuron",
        "occupancy_pyramidal",
        "synaptic_potentiation",
        "reward_potentiation",
    ),
    # Dendritic spines (ketasim.spines): repeated in vivo two-photon imaging of a few
    # branches per animal, glutamate-uncaging spinogenesis in acute slices, and fixed
    # tissue (Golgi or dye fill) at one time.
    "two_photon_spines": ("spine_density_per_10um", "formation_pct", "elimination_pct"),
    "uncaging_spinogenesis": ("uncaging_success",),
    "fixed_tissue_spines": (
        "spine_density_per_10um",
        "mushroom_fraction",
        "thin_fraction",
        "stubby_fraction",
        "filopodium_fraction",
        "synaptic_spine_density_per_10um",
    ),
    "calcium_imaging": (
        "calcium_transient_rate_per_min",
        "sync_event_rate_per_min",
        "sync_fraction_per_event",
        "mean_pairwise_r",
    ),
    "tail_suspension": (
        "tst_immobility_s",
        "tst_immobile_bout_s",
        "tst_struggle_bouts",
        "tst_calcium_rise_s",
    ),
    "open_field": ("distance_cm",),
    "sucrose_preference": ("sucrose_preference",),
    "escape_test": ("escape_failure_fraction",),
    "fear_extinction": ("extinction_freezing_fraction",),
}


def readouts_of(assay: str) -> tuple[str, ...]:
    """Return the readouts an assay reports.

    Parameters
    ----------
    assay : str
        An assay name from :data:`ASSAYS`.

    Returns
    -------
    tuple of str
        The readout names, in the assay's own order.

    Raises
    ------
    KeyError
        If the assay is unknown.
    """
    try:
        return tuple(ASSAYS[assay])
    except KeyError:
        raise KeyError(f"unknown assay {assay!r}; known: {', '.join(sorted(ASSAYS))}") from None


def all_readouts() -> tuple[str, ...]:
    """Return every readout of every assay, without repeats, in table order.

    Returns
    -------
    tuple of str
        Readout names.
    """
    seen: dict[str, None] = {}
    for readouts in ASSAYS.values():
        for readout in readouts:
            seen.setdefault(readout, None)
    return tuple(seen)


class _LiveReadouts(Sequence[str]):
    """Read-only sequence of all readouts that follows later edits of :data:`ASSAYS`."""

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return all_readouts()[index]

    def __len__(self) -> int:
        return len(all_readouts())

    def __iter__(self) -> Iterator[str]:
        return iter(all_readouts())

    def __contains__(self, name: object) -> bool:
        return any(name in readouts for readouts in ASSAYS.values())

    def __repr__(self) -> str:
        return f"ALL_READOUTS{all_readouts()!r}"


#: Every readout of every assay (a live view of :data:`ASSAYS`).
ALL_READOUTS: Sequence[str] = _LiveReadouts()


def intervention_kind(name: str) -> Literal["permanent", "instantaneous", "timed"]:
    """Return how an intervention acts in time.

    Parameters
    ----------
    name : str
        An intervention name from :data:`INTERVENTIONS`.

    Returns
    -------
    {"permanent", "instantaneous", "timed"}
        See :data:`INTERVENTION_KINDS`.
    """
    kind = INTERVENTION_KINDS.get(name)
    if kind is not None:
        return kind
    return "timed" if INTERVENTIONS.get(name) == "required" else "permanent"


def _check_name(name: str) -> None:
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"vocabulary names are lower-case identifiers, got {name!r}")


def register_drug(name: str, routes: Iterable[str], note: str = "") -> None:
    """Add (or replace) a drug.

    Parameters
    ----------
    name : str
        Lower-case identifier.
    routes : iterable of str
        Routes from :data:`ROUTES`.
    note : str, optional
        One-line description.
    """
    _check_name(name)
    routes = tuple(routes)
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise ValueError(f"routes must be a non-empty subset of {ROUTES}, got {routes!r}")
    DRUGS[name] = routes
    DRUG_NOTES[name] = note


def register_assay(name: str, readouts: Iterable[str]) -> None:
    """Add (or replace) an assay and its readouts.

    Parameters
    ----------
    name : str
        Lower-case identifier.
    readouts : iterable of str
        Lower-case identifiers, at least one.
    """
    _check_name(name)
    readouts = tuple(readouts)
    if not readouts:
        raise ValueError(f"assay {name!r} needs at least one readout")
    for readout in readouts:
        _check_name(readout)
    ASSAYS[name] = readouts


def register_intervention(name: str, kind: Literal["permanent", "instantaneous", "timed"]) -> None:
    """Add (or replace) an intervention.

    Parameters
    ----------
    name : str
        Lower-case identifier.
    kind : {"permanent", "instantaneous", "timed"}
        How it acts in time; ``"timed"`` interventions require a duration,
        the others forbid one.
    """
    _check_name(name)
    if kind not in ("permanent", "instantaneous", "timed"):
        raise ValueError(f"kind must be permanent, instantaneous or timed, got {kind!r}")
    INTERVENTIONS[name] = "required" if kind == "timed" else "forbidden"
    INTERVENTION_KINDS[name] = kind
