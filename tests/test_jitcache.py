"""The numba cache folder follows the source of every module that uses numba; importing
ketasim has no side effects, and configure() deletes only folders ketasim created."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ketasim import _jitcache

PKG_DIR = Path(__import__("ketasim").__file__).parent


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
    assert (first / _jitcache.MARKER).is_file()  # created here, so marked as ketasim's
    (first / "k.nbi").write_text("stale")
    (pkg / "sub" / "helper.py").write_text("import numba\n\ndef f():\n    return 3\n")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    second = _jitcache.configure(pkg)
    assert second != first and not first.exists()
    assert os.environ["NUMBA_CACHE_DIR"] == str(second)
    # a child process that inherits the folder keeps it
    assert _jitcache.configure(pkg) == second


def test_configure_never_removes_an_unmarked_folder(tmp_path, monkeypatch):
    """Stale folders are removed only when they carry ketasim's marker: a numba-* folder
    someone else made (or an older ketasim without markers) stays, with its files."""
    pkg = _package(tmp_path)
    cache = pkg / "__pycache__"
    foreign = cache / "numba-0123456789abcdef"
    foreign.mkdir(parents=True)
    (foreign / "data.nbc").write_text("not ketasim's")
    marked = cache / "numba-fedcba9876543210"
    marked.mkdir()
    (marked / _jitcache.MARKER).write_text("")
    linked = cache / "numba-link"  # a marked folder reached through a link is not walked
    linked.symlink_to(marked, target_is_directory=True)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    folder = _jitcache.configure(pkg)
    assert folder.exists() and (folder / _jitcache.MARKER).is_file()
    assert (foreign / "data.nbc").read_text() == "not ketasim's"
    assert not marked.exists()
    # a current folder that exists but was not created by this call is not marked
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    (folder / _jitcache.MARKER).unlink()
    assert _jitcache.configure(pkg) == folder and not (folder / _jitcache.MARKER).exists()


def test_user_cache_dir_is_a_root_and_not_pruned(tmp_path, monkeypatch):
    pkg = _package(tmp_path)
    user = tmp_path / "mine"
    (user / "numba-other").mkdir(parents=True)
    (user / "numba-other" / _jitcache.MARKER).write_text("")  # even a marked one
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(user))
    folder = _jitcache.configure(pkg)
    assert folder.parent == user and (user / "numba-other").exists()


def _tree(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*")) if root.exists() else []


def test_importing_ketasim_has_no_side_effects(tmp_path):
    """``import ketasim`` (and reading its version) changes no environment variable,
    imports no numba, and creates or deletes nothing in the package or the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["HOME"] = str(home)
    code = textwrap.dedent("""
        import json, os, sys
        before = dict(os.environ)
        import ketasim
        ketasim.__version__
        print(json.dumps({"same_env": dict(os.environ) == before,
                          "numba": "numba" in sys.modules}))
    """)
    before = _tree(PKG_DIR), _tree(home)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=tmp_path).stdout
    assert json.loads(out) == {"same_env": True, "numba": False}
    after_pkg = [p for p in _tree(PKG_DIR) if not p.endswith(".pyc")]  # Python's own
    assert after_pkg == [p for p in before[0] if not p.endswith(".pyc")]
    assert _tree(home) == before[1] == []


def test_configure_points_numba_at_the_digest_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = ("import ketasim; ketasim.configure(threads=1); import numba; "
            "print(numba.config.CACHE_DIR, numba.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert Path(out[0]).name == f"numba-{_jitcache.source_digest(PKG_DIR)}"
    assert out[1] == "1"
    # numba imported first: configure updates its config
    code = ("import numba, ketasim; ketasim.configure(); print(numba.config.CACHE_DIR)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    assert Path(out).name == f"numba-{_jitcache.source_digest(PKG_DIR)}"


def test_cli_configures_before_its_commands(tmp_path):
    """The command line's callback calls ketasim.configure (the commands then see the
    cache folder in NUMBA_CACHE_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = textwrap.dedent("""
        import os
        from typer.testing import CliRunner
        from ketasim.cli import app
        assert "NUMBA_CACHE_DIR" not in os.environ
        res = CliRunner().invoke(app, ["params", "pk.mouse.ketamine.cl"])
        assert res.exit_code == 0, res.output
        print(os.environ["NUMBA_CACHE_DIR"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    assert Path(out).name == f"numba-{_jitcache.source_digest(PKG_DIR)}"
