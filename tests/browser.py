"""Render an HTML report in a real headless Chromium and check that it displays.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``), driven through the
Python ``playwright`` package. ``playwright install`` is never needed or used: the browser
Playwright downloads is replaced by the system one via ``executable_path``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
"""The system Chromium (Debian package ``chromium``)."""

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium switches for a quiet, offline, root-safe headless run."""

TIMEOUT_MS = 60_000
"""Limit for launching the browser, loading the page and waiting for its images."""

_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

_INSPECT_JS = """
async (tableIds) => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener('load', done, {once: true});
    img.addEventListener('error', done, {once: true});
  })));
  return {
    images: imgs.map((img) => ({
      alt: img.getAttribute('alt') || '',
      src: (img.getAttribute('src') || '').slice(0, 60),
      complete: img.complete,
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
    })),
    tables: tableIds.map((id) => {
      const el = document.getElementById(id);
      return {id: id, tag: el ? el.tagName : null, rows: el && el.rows ? el.rows.length : 0};
    }),
  };
}
"""


def chromium_available() -> str | None:
    """Say why the browser check cannot run here, if it cannot.

    Returns
    -------
    str or None
        ``None`` when both the ``playwright`` Python package and the system Chromium at
        :data:`CHROMIUM` are present; otherwise a one-line reason naming what to install.
    """
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing.append(f"Python package 'playwright' ({exc}; install: pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (install: apt-get install -y chromium)")
    if not missing:
        return None
    return "browser test needs " + " and ".join(missing)


def require_chromium() -> None:
    """Skip the calling test when no browser is available, or fail it when ``CI`` is set.

    CI installs Chromium and Playwright, so there a missing browser is a real failure;
    elsewhere it only means the developer has not installed them.
    """
    import pytest

    reason = chromium_available()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _private_home(folder: Path) -> Iterator[None]:
    """Point HOME, TMPDIR and the XDG folders at ``folder`` for the block, then restore."""
    names = ("HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        path = folder / name.lower()
        path.mkdir(exist_ok=True)
        os.environ[name] = str(path)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def assert_report_renders(html_path: str | os.PathLike, table_ids: list[str],
                          min_figures: int = 1,
                          screenshot: str | os.PathLike | None = None) -> dict:
    """Open an HTML report in headless Chromium and assert that it rendered completely.

    The page is opened from a ``file://`` URL. It passes when every ``<img>`` finished
    loading with a non-zero natural size, there are at least ``min_figures`` of them, each
    id in ``table_ids`` is a ``<table>`` with a header and at least one data row, and the
    page logged no console error, raised no uncaught exception, had no failed request (or
    HTTP status >= 400) and requested nothing from the network.

    Parameters
    ----------
    html_path : str or os.PathLike
        The report file, e.g. ``runs/default/report.html``.
    table_ids : list of str
        Ids of the tables that must be present, e.g. ``["stats", "summary"]``.
    min_figures : int, optional
        The least number of ``<img>`` elements the page must have (default 1).
    screenshot : str or os.PathLike, optional
        When given, a full-page PNG screenshot is saved there (before any assertion).

    Returns
    -------
    dict
        ``{"figures": n, "tables": ids}``: the number of images (all loaded) and the
        table ids found, in the order asked for.

    Raises
    ------
    AssertionError
        With one line per problem found, when the page did not render as required.
    RuntimeError
        When Playwright or Chromium is missing (see :func:`chromium_available`).
    """
    path = Path(html_path).resolve()
    if not path.is_file():
        raise AssertionError(f"report {path} does not exist")
    reason = chromium_available()
    if reason is not None:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ketasim-chromium-",
                                     ignore_cleanup_errors=True) as tmp:
        home = Path(tmp)
        with _private_home(home), sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(home / "user-data"), executable_path=CHROMIUM, headless=True,
                args=LAUNCH_ARGS, timeout=TIMEOUT_MS, env=dict(os.environ),
                viewport={"width": 1280, "height": 900})
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                _watch(page, problems)
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_load_state("networkidle")
                found = page.evaluate(_INSPECT_JS, list(table_ids))
                if screenshot is not None:
                    page.screenshot(path=str(screenshot), full_page=True)
            finally:
                context.close()

    images = found["images"]
    for i, img in enumerate(images, 1):
        if not (img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0):
            problems.append(
                f"image {i}/{len(images)} (alt={img['alt']!r}, src={img['src']!r}...) did "
                f"not load: complete={img['complete']}, "
                f"natural size {img['naturalWidth']}x{img['naturalHeight']}")
    if len(images) < min_figures:
        problems.append(f"expected at least {min_figures} figure(s) (<img>), found "
                        f"{len(images)}")
    tables = []
    for table in found["tables"]:
        if table["tag"] is None:
            problems.append(f"no element with id {table['id']!r}")
        elif table["tag"] != "TABLE":
            problems.append(f"id {table['id']!r} is a <{table['tag'].lower()}>, not a <table>")
        elif table["rows"] < 2:
            problems.append(f"table {table['id']!r} has {table['rows']} row(s); expected a "
                            "header and at least one data row")
        else:
            tables.append(table["id"])
    if problems:
        raise AssertionError(f"report {path} did not render cleanly:\n  - "
                             + "\n  - ".join(problems))
    return {"figures": len(images), "tables": tables}


def _watch(page, problems: list[str]) -> None:
    """Append console errors, page errors, failed requests and network access to ``problems``.

    Requests for anything but ``file:``, ``data:``, ``blob:`` and ``about:`` URLs are
    aborted (the report must be self-contained) and recorded.
    """
    def external(route) -> None:
        problems.append(f"request to the network (report is not self-contained): "
                        f"{route.request.url}")
        route.abort()

    page.route(lambda url: not url.startswith(_LOCAL_SCHEMES), external)
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"uncaught page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(
        f"request failed: {req.url[:120]} ({req.failure})"))
    page.on("response", lambda resp: problems.append(
        f"HTTP {resp.status} for {resp.url[:120]}") if resp.status >= 400 else None)
