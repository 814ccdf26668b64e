"""Where numba keeps ketasim's compiled kernels, and why it is keyed by the source.

numba's on-disk cache (``cache=True``) checks only the source file of the cached function
itself: a kernel that calls a jitted helper from another module (the random streams in
``ketasim.core.xoroshiro``, the generated signalling right-hand side) would keep running the
old helper after that module changed, for instance after an upgrade of ketasim. So the
cache lives in a folder named after a digest of every ketasim module that uses numba;
any change to one of them starts a fresh folder (compiled once) and older folders are
removed. ``NUMBA_CACHE_DIR``, when set, is used as the root of these folders.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

_PREFIX = "numba-"


_IMPORTS_NUMBA = re.compile(rb"^\s*(import numba|from numba[ .])", re.MULTILINE)


def source_digest(package_dir: Path) -> str:
    """Digest of the modules under ``package_dir`` that import numba (path and bytes): the
    only ones that can hold jitted code. A module that merely names numba in its text (a
    docstring) does not start a recompilation."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        data = path.read_bytes()
        if _IMPORTS_NUMBA.search(data):
            h.update(path.relative_to(package_dir).as_posix().encode())
            h.update(data)
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def configure(package_dir: Path) -> Path | None:
    """Point numba's cache at ``<root>/numba-<digest>``; returns the folder, or None if no
    writable place was found (numba then keeps its default). The root is
    ``NUMBA_CACHE_DIR`` when the user set it, else the package's ``__pycache__``, else
    ``~/.cache/ketasim``; in the last two, folders of other digests are removed."""
    digest = source_digest(package_dir)
    name = f"{_PREFIX}{digest}"
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env and Path(env).name == name:  # set by a parent process (workers, dask)
        folder = Path(env)
    else:
        own = [package_dir / "__pycache__", Path.home() / ".cache" / "ketasim"]
        folder = None
        for root in [Path(env)] if env else own:
            if _writable(root):
                folder = root / name
                if root in own:
                    for old in root.glob(f"{_PREFIX}*"):
                        if old.is_dir() and old != folder:
                            shutil.rmtree(old, ignore_errors=True)
                break
        if folder is None:
            return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba = sys.modules.get("numba")
    if numba is not None:  # numba already imported: its config was read from the env
        numba.config.CACHE_DIR = str(folder)
    return folder
