"""The brain regions the model knows (their parameters: :mod:`ketasim.params.regions`)."""

DEFAULT_REGION = "mpfc"
#: medial prefrontal cortex (the default) and dorsal striatum (F-LID-5)
KNOWN_REGIONS = ("mpfc", "striatum")
