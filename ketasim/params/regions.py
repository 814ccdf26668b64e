"""Brain regions as parameter sets over the same engines (F-LID-5).

The registry describes the medial prefrontal cortex (``mpfc``, the default region). Any
other region is the same registry with some values replaced: an entry named
``region.<region>.<parameter>`` gives that parameter's value in the region (with its own
unit, range and source, like every entry). A subject carries every region at once: the
PK and the body are the subject's own, so a region may not override a PK, route or
species parameter (the same plasma and brain concentrations drive both regions), and the
between-subject variability of a parameter is its registry entry's in every region.
"""

from __future__ import annotations

from ketasim.core.regions import DEFAULT_REGION, KNOWN_REGIONS
from ketasim.params.registry import Registry, RegistryError

__all__ = ["DEFAULT_REGION", "KNOWN_REGIONS", "check_regions", "region_overrides",
           "region_registry"]
# shared by every region of a subject: never overridden per region
_SHARED_PREFIXES = ("pk.", "route.", "species.", "chem.", "region.")


def region_overrides(registry: Registry, region: str) -> dict[str, float]:
    """``{parameter: value}`` that region ``region`` sets (empty for ``mpfc``)."""
    if region not in KNOWN_REGIONS:
        raise RegistryError(f"unknown region {region!r}; known: {', '.join(KNOWN_REGIONS)}")
    prefix = f"region.{region}."
    out = {}
    for p in registry:
        if not p.name.startswith(prefix):
            continue
        target = p.name[len(prefix):]
        if target not in registry:
            raise RegistryError(f"parameter {p.name}: region {region!r} overrides "
                                f"{target!r}, which is not a registry parameter")
        if target.startswith(_SHARED_PREFIXES):
            raise RegistryError(f"parameter {p.name}: {target!r} is shared by every region "
                                "of a subject (PK, routes, species) and cannot be "
                                "overridden per region")
        base = registry[target]
        if p.unit != base.unit:
            raise RegistryError(f"parameter {p.name}: unit {p.unit!r} differs from "
                                f"{target}'s {base.unit!r}")
        if p.bsv_cv or p.bsv_logit_sd or p.bsv_corr:
            raise RegistryError(f"parameter {p.name}: a region override carries no "
                                f"between-subject variability (it is {target}'s)")
        out[target] = p.value
    return out


def check_regions(registry: Registry) -> None:
    """Every ``region.*`` entry names a known region and a parameter it may override."""
    for p in registry:
        if p.name.startswith("region."):
            parts = p.name.split(".")
            region = parts[1] if len(parts) > 1 else ""
            # region.<region>.<name>: an entry naming no parameter overrides nothing
            if (len(parts) < 3 or region not in KNOWN_REGIONS
                    or region == DEFAULT_REGION):
                raise RegistryError(f"parameter {p.name}: expected region.<region>.<name> "
                                    f"with a region from "
                                    f"{', '.join(r for r in KNOWN_REGIONS if r != DEFAULT_REGION)}")
    for region in KNOWN_REGIONS:
        region_overrides(registry, region)


def region_registry(registry: Registry, region: str) -> Registry:
    """The registry as region ``region`` sees it (``mpfc``: the registry itself)."""
    overrides = region_overrides(registry, region)
    return registry.with_values(overrides) if overrides else registry
