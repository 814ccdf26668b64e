"""One process pool for the commands that run arms or replicas in parallel (validate,
screen): spawned workers (numba and forked threads do not mix), each with the parent's
kernel cache, one numba thread, and the user's compound files registered again, since a
spawned worker starts from the built-in compounds only."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

import ketasim
from ketasim.pk.compounds import add_compounds


def _worker_init(compounds: tuple[str, ...] = ()) -> None:
    ketasim.configure(threads=1)  # the cache folder of the parent, one numba thread
    for folder in compounds:  # the user's compound files (--compounds), as in the parent
        add_compounds(folder)


def worker_pool(workers: int, compounds: Iterable[str | os.PathLike] = ()
                ) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that know the ``compounds`` folders
    (already registered in this process). Call :func:`ketasim._ensure_configured` in the
    parent first so that the workers inherit the kernel cache folder."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init,
                               initargs=(tuple(map(str, compounds)),))
