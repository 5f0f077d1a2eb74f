"""The HTML run report: every section present, the run's text escaped, nothing external."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from kgenrich.pipeline.report_html import SAMPLE_PER_DECISION, render_html

SECTIONS = ("stages", "rejections", "relations", "confidence", "reliability", "llm", "samples",
            "details")


def _page(page: Any, **changes: Any) -> str:
    kwargs = {"triples": page.triples, "labels": page.labels, "holdout": page.holdout} | changes
    return render_html(page.report, **kwargs)


class _Tags(HTMLParser):
    """Every tag's name and attributes, and every script/style-free text run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_every_section_is_present_with_its_chart(report_page: Any) -> None:
    html = _page(report_page)
    for key in SECTIONS:
        assert f'<section id="{key}">' in html, key
    sections = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', html, flags=re.S))
    # bars per relation, the confidence histogram and the reliability diagram are SVG charts
    for key in ("relations", "confidence", "reliability", "llm", "rejections"):
        assert "<svg" in sections[key], key
    assert "directed_by" in sections["relations"] and "starring" in sections["relations"]
    assert "schema violation" in sections["rejections"]
    assert "ECE" in sections["reliability"] and "400 triples" in sections["reliability"]
    assert "4000" in sections["llm"]  # prompt tokens of the extract stage
    # the sample: accepted and review triples by label, with their evidence, capped per decision
    samples = sections["samples"]
    assert "<h3>accepted (15; 12 shown)</h3>" in samples
    assert "<h3>review (15; 12 shown)</h3>" in samples
    assert "Ridley Scott" in samples and "Man of Steel" in samples and "directed by" in samples
    assert "person/scott" not in samples  # labels, not ids
    assert samples.count("<tr>") == 2 * (SAMPLE_PER_DECISION + 1)


def test_the_runs_text_is_escaped(report_page: Any) -> None:
    html = _page(report_page)
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in html
    assert "evidence not in text &lt;b&gt;" in html
    assert "&lt;i&gt;not markup&lt;/i&gt;" in html
    parser = _Tags()
    parser.feed(html)
    assert {tag for tag, _ in parser.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "span",
        "i", "section", "div", "table", "tr", "th", "td", "svg", "rect", "line", "polyline",
        "circle", "text"}


def test_the_page_references_nothing_external(report_page: Any) -> None:
    html = _page(report_page)
    assert "http" not in html.lower()
    assert "url(" not in html.lower() and "@import" not in html
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
        assert tag not in {"script", "link", "img", "iframe", "object", "embed"}


def test_a_run_without_confidences_or_holdout_still_renders_every_section(
    report_page: Any,
) -> None:
    trusted = [t for t in report_page.triples if t.provenance.decision == "trusted"]
    html = _page(report_page, triples=trusted, holdout=None)
    for key in SECTIONS:
        assert f'<section id="{key}">' in html, key
    assert "no triple has a confidence" in html
    assert "the verifier kept no holdout probabilities" in html
