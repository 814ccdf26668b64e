"""Parameter sweeps: a scenario run per sample, in chunks on Dask (:mod:`ketasim.sweep.core`)."""
