"""The HTML report renders in a real browser: figures load, tables are there, no errors.

Needs Debian's ``chromium`` and the ``playwright`` Python package (see ``tests/browser.py``).
Without them these tests are skipped, unless ``CI`` is set, where they fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import assert_report_renders, require_chromium
from typer.testing import CliRunner

from ketasim.cli import app

# A valid 1x1 PNG, so that the negative cases below fail for one reason only.
_PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAAS"
          "UVORK5CYII=")
_GOOD_IMG = f'<img alt="pixel" src="data:image/png;base64,{_PIXEL}">'
_TABLE = '<table id="stats"><tr><th>a</th></tr><tr><td>1</td></tr></table>'


def _page(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>t</title>"
                    f"</head><body>{body}</body></html>")
    return path


def test_run_report_renders_in_browser(tmp_path: Path) -> None:
    require_chromium()  # before the simulation, so a skip costs nothing
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "default", "--out", str(out)])
    assert result.exit_code == 0, result.output
    found = assert_report_renders(out / "report.html", ["stats", "summary"], min_figures=4)
    assert found["tables"] == ["stats", "summary"]
    assert found["figures"] >= 4
    assert found["figures"] == len(list(out.glob("fig_*.png")))


def test_minimal_page_passes(tmp_path: Path) -> None:
    """The control for the cases below: a valid image and table pass."""
    require_chromium()
    found = assert_report_renders(_page(tmp_path, _GOOD_IMG + _TABLE), ["stats"])
    assert found == {"figures": 1, "tables": ["stats"]}


@pytest.mark.parametrize("body, table_ids, min_figures, message", [
    pytest.param(_TABLE + '<img alt="broken" src="data:image/png;base64,AAAA">', ["stats"], 1,
                 r"image 1/1 \(alt='broken'.*did not load: complete=True, natural size 0x0",
                 id="broken-image"),
    pytest.param(_GOOD_IMG + _TABLE + '<img alt="gone" src="no_such_figure.png">', ["stats"], 1,
                 r"(?s)request failed: file://\S*/no_such_figure\.png \(net::ERR_FILE_NOT_FOUND\)"
                 r".*image 2/2 \(alt='gone'",
                 id="missing-image-file"),
    pytest.param(_GOOD_IMG + _TABLE, ["stats", "validation"], 1,
                 r"no element with id 'validation'", id="missing-table"),
    pytest.param(_GOOD_IMG + '<table id="stats"><tr><th>a</th></tr></table>', ["stats"], 1,
                 r"table 'stats' has 1 row\(s\)", id="empty-table"),
    pytest.param(_GOOD_IMG + _TABLE, ["stats"], 4,
                 r"expected at least 4 figure\(s\) \(<img>\), found 1", id="too-few-figures"),
    pytest.param(_GOOD_IMG + _TABLE + "<script>console.error('boom')</script>", ["stats"], 1,
                 r"console error: boom", id="console-error"),
    pytest.param(_GOOD_IMG + _TABLE + "<script>undefinedFunction()</script>", ["stats"], 1,
                 r"uncaught page error: .*undefinedFunction", id="page-error"),
    pytest.param(_GOOD_IMG + _TABLE + '<img src="http://example.invalid/x.png">', ["stats"], 1,
                 r"request to the network \(report is not self-contained\): "
                 r"http://example\.invalid/x\.png", id="network-request"),
])
def test_checker_fails_on_broken_page(tmp_path: Path, body: str, table_ids: list[str],
                                      min_figures: int, message: str) -> None:
    require_chromium()
    with pytest.raises(AssertionError, match=message):
        assert_report_renders(_page(tmp_path, body), table_ids, min_figures=min_figures)


def test_missing_report_file_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"does not exist"):
        assert_report_renders(tmp_path / "report.html", ["stats"])


def test_validation_report_renders_in_browser(tmp_path: Path) -> None:
    """The main job's report: the targets table with pass/fail colours, the synthesis
    figure and each replica's figures load."""
    require_chromium()
    out = tmp_path / "val"
    result = CliRunner().invoke(app, ["validate", "--only", "mpfc_dopamine_microdialysis",
                                      "--only", "plasticity_window_signaling",
                                      "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    found = assert_report_renders(out / "report.html", ["calibration", "validation"],
                                  min_figures=3)
    assert found["figures"] == len(list((out / "figures").glob("*.png")))
    assert (out / "figures" / "synthesis.png").exists()


def test_screen_report_renders_in_browser(tmp_path: Path) -> None:
    """The screen's report: the ranked table, the metric dictionary, and its figures
    (ranked bars, metrics heat map, plasticity window, dose-response) load and draw."""
    require_chromium()
    out = tmp_path / "screen"
    result = CliRunner().invoke(app, ["screen", "--only", "hnk", "--doses", "3,10 mg/kg",
                                      "--n", "2", "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    found = assert_report_renders(out / "report.html", ["screen", "metrics"], min_figures=4,
                                  screenshot=tmp_path / "screen.png")
    assert found["figures"] == len(list(out.glob("fig_*.png"))) == 4
    html = (out / "report.html").read_text()
    for alt in ("ranking", "metrics", "plasticity window", "dose-response"):
        assert f'alt="{alt}"' in html
