"""The numba cache folder follows the source of every module that uses numba."""

import os
import subprocess
import sys
from pathlib import Path

from ketasim import _jitcache


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "kernel.py").write_text("import numba\nfrom pkg.sub.helper import f\n")
    (pkg / "sub" / "helper.py").write_text("import numba\n\ndef f():\n    return 1\n")
    (pkg / "plain.py").write_text("x = 1\n")
    (pkg / "notes.py").write_text('"""Runs in workers with one numba thread each."""\n')
    return pkg


def test_digest_follows_helper_modules_not_plain_ones(tmp_path):
    pkg = _package(tmp_path)
    d0 = _jitcache.source_digest(pkg)
    (pkg / "plain.py").write_text("x = 2\n")  # no numba: kernels unaffected
    assert _jitcache.source_digest(pkg) == d0
    # naming numba in a docstring is not using it
    (pkg / "notes.py").write_text('"""Runs in workers with two numba threads each."""\n')
    assert _jitcache.source_digest(pkg) == d0
    (pkg / "sub" / "helper.py").write_text("import numba\n\ndef f():\n    return 2\n")
    assert _jitcache.source_digest(pkg) != d0


def test_configure_uses_fresh_folder_and_removes_stale_ones(tmp_path, monkeypatch):
    pkg = _package(tmp_path)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    first = _jitcache.configure(pkg)
    assert first.parent == pkg / "__pycache__" and first.name.startswith("numba-")
    first.mkdir()
    (first / "k.nbi").write_text("stale")
    (pkg / "sub" / "helper.py").write_text("import numba\n\ndef f():\n    return 3\n")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    second = _jitcache.configure(pkg)
    assert second != first and not first.exists()
    assert os.environ["NUMBA_CACHE_DIR"] == str(second)
    # a child process that inherits the folder keeps it
    assert _jitcache.configure(pkg) == second


def test_user_cache_dir_is_a_root_and_not_pruned(tmp_path, monkeypatch):
    pkg = _package(tmp_path)
    user = tmp_path / "mine"
    (user / "numba-other").mkdir(parents=True)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(user))
    folder = _jitcache.configure(pkg)
    assert folder.parent == user and (user / "numba-other").exists()


def test_ketasim_import_points_numba_at_the_digest_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", "import ketasim, numba; print(numba.config.CACHE_DIR)"],
        capture_output=True, text=True, env=env, check=True).stdout.strip()
    pkg = Path(__import__("ketasim").__file__).parent
    assert Path(out).name == f"numba-{_jitcache.source_digest(pkg)}"
