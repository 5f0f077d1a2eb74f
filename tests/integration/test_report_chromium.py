"""The HTML run report as headless Chromium (Debian's `chromium`) draws it: not a blank page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kgenrich.pipeline.report_html import render_html
from kgenrich.testing.chromium import chromium_binary, pixel_stats, screenshot


def test_chromium_draws_the_report_with_its_charts(report_page: Any, tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no `chromium` on PATH (apt-get install chromium; .ci/run installs it)")
    page = tmp_path / "report.html"
    page.write_text(render_html(report_page.report, triples=report_page.triples,
                                labels=report_page.labels, holdout=report_page.holdout),
                    encoding="utf-8")
    stats = pixel_stats(screenshot(binary, page, tmp_path / "report.png",
                                   width=1200, height=2000))
    # a blank or error page is one or two colours; text, tables and the coloured bars of the
    # five decisions give hundreds (antialiasing) and cover well over a few per cent
    assert stats.colours > 100, stats
    assert 0.03 < stats.non_white < 0.9, stats
