"""The brain regions the model knows (their parameters: :mod:`ketasim.params.regions`)."""

DEFAULT_REGION = "mpfc"
#: medial prefrontal cortex (the default) and dorsal striatum (F-LID-5)
KNOWN_REGIONS = ("mpfc", "striatum")
#: the spine parameter sets (``spine.<cell>.*``) each region's spine assays image, the
#: region's default first (``ca1``: hippocampal CA1 pyramidal cells, a second cortical-type
#: set read with the mPFC's signalling)
REGION_CELLS = {"mpfc": ("mpfc_l5", "ca1"), "striatum": ("msn_d1", "msn_d2")}
