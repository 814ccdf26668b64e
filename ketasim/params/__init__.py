"""Parameter registry (see :mod:`ketasim.params.registry`)."""

from ketasim.params.registry import (
    Parameter,
    Registry,
    RegistryError,
    load_registry,
    parse_registry,
)

__all__ = ["Parameter", "Registry", "RegistryError", "load_registry", "parse_registry"]
