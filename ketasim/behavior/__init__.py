"""Mouse behaviour driven by the circuit and signalling layers, scored as labs score it
(:mod:`ketasim.analysis.behavior`)."""
