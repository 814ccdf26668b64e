"""Names a scenario may use: drugs, routes, stressors, interventions, assays.

The scenario grammar (species, routes, dose kinds) is defined here. Everything else is
derived, live, from the components' own declarations, so a component is declared once:

- drugs, their routes and notes from :data:`ketasim.pk.compounds.COMPOUNDS`;
- stressors and interventions from :mod:`ketasim.signaling.protocol`;
- assays and their readouts from the catalogue :data:`ketasim.experiment.assays.ASSAYS`.

Adding a component there (or registering one at run time with
:func:`ketasim.experiment.assays.register_assay`,
:func:`ketasim.signaling.protocol.register_intervention`,
:func:`ketasim.signaling.protocol.register_stressor` or
:func:`ketasim.pk.compounds.register_compound`) extends the scenario vocabulary and the
JSON Schema (:func:`ketasim.scenario.scenario_json_schema`) with no other edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal, overload

from ketasim.experiment.assays import ASSAYS as _ASSAY_CATALOGUE
from ketasim.pk.compounds import ALL as _ALL_ROUTES
from ketasim.pk.compounds import COMPOUNDS as _COMPOUNDS
from ketasim.signaling.protocol import INTERVENTIONS as _INTERVENTIONS
from ketasim.signaling.protocol import STRESSORS as _STRESSORS

__all__ = [
    "ALL_READOUTS",
    "ASSAYS",
    "DOSE_KINDS",
    "DRUGS",
    "DRUG_NOTES",
    "INTERVENTIONS",
    "INTERVENTION_KINDS",
    "INTERVENTION_SPECIES",
    "ROUTES",
    "ROUTE_DOSE_KINDS",
    "SPECIES",
    "STRESSORS",
    "all_readouts",
    "intervention_kind",
    "readouts_of",
]


class _View(Mapping):
    """A read-only mapping computed from a component table each time it is read."""

    def __init__(self, table: Mapping, value: Callable):
        self._table = table
        self._value = value

    def __getitem__(self, key):
        return self._value(self._table[key])

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return repr(dict(self))


class _Names(Sequence[str]):
    """A read-only sequence of a component table's names."""

    def __init__(self, table: Mapping):
        self._table = table

    def __getitem__(self, index):
        return tuple(self._table)[index]

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __repr__(self) -> str:
        return repr(tuple(self._table))


#: Species a scenario may simulate.
SPECIES: tuple[str, ...] = ("mouse", "rat", "human")

#: Administration routes. ``bath`` is application to an acute slice;
#: ``intracerebral`` is a local injection or cannula infusion into tissue.
ROUTES: tuple[str, ...] = _ALL_ROUTES

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

#: Drug name -> routes by which the simulator can give it (from the compounds).
DRUGS: Mapping[str, tuple[str, ...]] = _View(_COMPOUNDS, lambda c: tuple(c.routes))

#: One-line description of each drug (used in the JSON Schema and the docs).
DRUG_NOTES: Mapping[str, str] = _View(_COMPOUNDS, lambda c: c.description)

#: Stressor names for stress events.
STRESSORS: Sequence[str] = _Names(_STRESSORS)

#: Intervention name -> whether an event must give a ``duration``:
#: ``"required"`` (it acts for a set time) or ``"forbidden"`` (it is permanent
#: from ``at``, or instantaneous).
INTERVENTIONS: Mapping[str, Literal["forbidden", "required"]] = _View(
    _INTERVENTIONS, lambda iv: "required" if iv.kind == "timed" else "forbidden")

#: Intervention name -> how it acts in time. ``"permanent"``: from ``at`` to
#: the end of the experiment (a genetic manipulation), so it can be given at
#: most once per arm; ``"instantaneous"``: a single pulse at ``at``;
#: ``"timed"``: for ``duration`` from ``at``.
INTERVENTION_KINDS: Mapping[str, Literal["permanent", "instantaneous", "timed"]] = _View(
    _INTERVENTIONS, lambda iv: iv.kind)

#: Assay name -> readouts it reports (from the assays' declarations).
ASSAYS: Mapping[str, tuple[str, ...]] = _View(_ASSAY_CATALOGUE, lambda a: a.readout_names)

#: Other names a scenario may give an assay, read as the assay's own name: ``tst`` is the
#: name ARCHITECTURE.md's scenario outline (the stable contract) uses for the tail
#: suspension test.
ASSAY_ALIASES: Mapping[str, str] = {"tst": "tail_suspension"}

#: Assay name -> whether its measurement ends the animal or its tissue (a comparison may
#: take no subject's change between two times of it).
ASSAY_TERMINAL: Mapping[str, bool] = _View(_ASSAY_CATALOGUE, lambda a: a.terminal)

#: Assay name -> the species it is done in.
ASSAY_SPECIES: Mapping[str, tuple[str, ...]] = _View(_ASSAY_CATALOGUE, lambda a: a.species)

#: Stressor name -> the species it is given to.
STRESSOR_SPECIES: Mapping[str, tuple[str, ...]] = _View(_STRESSORS, lambda s: s.species)
#: Intervention name -> the species it is done in.
INTERVENTION_SPECIES: Mapping[str, tuple[str, ...]] = _View(_INTERVENTIONS,
                                                            lambda iv: iv.species)

#: Assay name -> the brain regions it can measure (``region:`` of an assay).
ASSAY_REGIONS: Mapping[str, tuple[str, ...]] = _View(_ASSAY_CATALOGUE, lambda a: a.regions)


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
