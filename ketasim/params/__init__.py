"""Parameter registry (see :mod:`ketasim.params.registry`)."""

from ketasim.params.registry import (
    Parameter,
    ParamGroup,
    Registry,
    RegistryError,
    load_registry,
    parse_registry,
    parse_settings,
)

__all__ = ["ParamGroup", "Parameter", "Registry", "RegistryError", "load_registry", "parse_registry",
           "parse_settings"]
