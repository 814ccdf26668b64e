"""Where numba keeps ketasim's compiled kernels, and why it is keyed by the source.

numba's on-disk cache (``cache=True``) checks only the source file of the cached function
itself: a kernel that calls a jitted helper from another module (the random streams in
``ketasim.core.xoroshiro``, the generated signalling right-hand side) would keep running the
old helper after that module changed, for instance after an upgrade of ketasim. So the
cache lives in a folder named after a digest of every ketasim module that uses numba;
any change to one of them starts a fresh folder (compiled once). ``NUMBA_CACHE_DIR``,
when set, is used as the root of these folders.

Nothing happens at import: :func:`ketasim.configure` (called by the command line, the
workers of ``validate``, the benchmarks and the tests) calls :func:`configure` here.
Every folder this module creates holds a marker file (:data:`MARKER`); older folders
are removed only when they carry that marker, so a folder ketasim did not create is
never deleted.
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
MARKER = ".ketasim-numba-cache"
_MARKER_TEXT = ("Created by ketasim (ketasim/_jitcache.py) for numba's compiled kernels; "
                "ketasim removes this folder once its sources change.\n")


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


def _create(folder: Path) -> None:
    """Make ``folder`` and, if this call created it, mark it as ketasim's."""
    try:
        folder.mkdir()
    except FileExistsError:
        return  # not ours to mark (an earlier ketasim, numba, or another process)
    (folder / MARKER).write_text(_MARKER_TEXT)


def _prune(root: Path, keep: Path) -> None:
    """Remove the folders of other digests under ``root`` that ketasim created."""
    for old in root.glob(f"{_PREFIX}*"):
        if old != keep and old.is_dir() and not old.is_symlink() and (old / MARKER).is_file():
            shutil.rmtree(old, ignore_errors=True)


def configure(package_dir: Path, root: Path | None = None) -> Path | None:
    """Point numba's cache at ``<root>/numba-<digest>``; returns the folder, or None if no
    writable place was found (numba then keeps its default).

    The root is ``root`` when given, else ``NUMBA_CACHE_DIR`` when the user set it, else
    the package's ``__pycache__``, else ``~/.cache/ketasim``. In the last two (ketasim's
    own places), folders of other digests that carry ketasim's marker are removed. The
    folder is exported as ``NUMBA_CACHE_DIR`` so that child processes use it too."""
    digest = source_digest(package_dir)
    name = f"{_PREFIX}{digest}"
    env = os.environ.get("NUMBA_CACHE_DIR")
    if root is None and env and Path(env).name == name:  # set by a parent process
        folder = Path(env).resolve()
    else:
        own = [package_dir / "__pycache__", Path.home() / ".cache" / "ketasim"]
        # absolute, so that child processes started elsewhere find the same folder
        roots = ([Path(root).resolve()] if root is not None
                 else [Path(env).resolve()] if env else own)
        folder = None
        for candidate in roots:
            if _writable(candidate):
                folder = candidate / name
                try:
                    _create(folder)
                except OSError:
                    folder = None
                    continue
                if candidate in own:
                    _prune(candidate, folder)
                break
        if folder is None:
            return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba = sys.modules.get("numba")
    if numba is not None:  # numba already imported: its config was read from the env
        numba.config.CACHE_DIR = str(folder)
    return folder
