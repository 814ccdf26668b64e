"""What every layer shares, and nothing else: the random-stream scheme
(:mod:`~ketasim.core.streams`), the per-subject parameter table (:mod:`~ketasim.core.cohort`)
and the assay protocol with its context (:mod:`~ketasim.core.assay`).

``ketasim.core`` is the bottom layer: it imports no other ketasim package.
"""
