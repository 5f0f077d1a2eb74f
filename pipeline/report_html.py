"""The run report as one self-contained HTML page: tables and hand-written inline SVG charts,
with no script and no external file or URL; every text from the run is HTML-escaped."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from html import escape

from kgenrich.kg.records import Decision, Triple
from kgenrich.pipeline.report import RunReport
from kgenrich.verification.metrics import expected_calibration_error, reliability_diagram
from kgenrich.verification.scorers import Holdout

#: triples shown per decision in the sample section (the highest confidence first)
SAMPLE_PER_DECISION = 12
#: decisions whose triples the sample shows
SAMPLED = (Decision.ACCEPTED, Decision.REVIEW)
#: equal-width confidence bins of the histogram, and of the reliability diagram
CONFIDENCE_BINS = 20
RELIABILITY_BINS = 10

COLORS: dict[str, str] = {
    Decision.TRUSTED: "#9e9e9e", Decision.ACCEPTED: "#2e7d32", Decision.REVIEW: "#ef8f00",
    Decision.UNVERIFIED_NEW_ENTITY: "#7b1fa2", Decision.REJECTED: "#c62828",
    Decision.PENDING: "#cfd8dc",
}
_ORDER = [d.value for d in Decision]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;padding:0 24px;max-width:1100px;
color:#212121}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f3f5f7;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:14px}.sw{width:11px;height:11px;display:inline-block;
margin-right:4px;vertical-align:middle}.ev{color:#555;font-size:12px;max-width:420px}
svg text{font:11px system-ui,sans-serif;fill:#333}.muted{color:#777}
"""


def render_html(
    report: RunReport, *, triples: Sequence[Triple], labels: Mapping[str, str],
    holdout: Holdout | None,
) -> str:
    """The whole page for ``report``: ``triples`` are the run's final triples (for the charts
    and the sample), ``labels`` entity id -> label, ``holdout`` the verifier's holdout."""
    t = report.totals
    body = [
        f"<h1>kgenrich run <code>{_e(report.run)}</code></h1>",
        f"<p>Wall time {_e(t.get('wall_seconds', 0))} s; {int(t.get('triples', 0))} triples; "
        f"{int(t.get('llm_calls', 0))} LLM calls (+{int(t.get('cache_hits', 0))} from cache); "
        f"{int(t.get('prompt_tokens', 0))} prompt / {int(t.get('completion_tokens', 0))} "
        "completion tokens.</p>",
        _legend(),
        _stages(report), _rejections(report), _relations(triples), _confidence(triples),
        _reliability(holdout), _llm(report), _sample(triples, labels), _details(report),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>kgenrich run {_e(report.run)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]],
           numeric: Sequence[bool] | None = None) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    num = list(numeric) if numeric is not None else [False] * len(header)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if n else f"<td>{_e(c)}</td>"
                         for c, n in zip(row, num, strict=True)) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _legend() -> str:
    return '<p class="legend">' + "".join(
        f'<span><i class="sw" style="background:{COLORS[d]}"></i>{_e(d)}</span>'
        for d in _ORDER) + "</p>"


def _stages(report: RunReport) -> str:
    rows = [(s.stage, s.kept, s.rejected) for s in report.stages]
    decisions = [(d, report.decisions[d]) for d in _ORDER if d in report.decisions]
    sources = sorted(report.sources.items())
    return _section(
        "stages", "Counts per stage",
        '<div style="display:flex;gap:32px;align-items:flex-start">',
        _table(("stage", "kept", "rejected"), rows, (False, True, True)),
        _table(("decision", "triples"), decisions, (False, True)),
        _table(("source", "triples"), sources, (False, True)), "</div>")


def _rejections(report: RunReport) -> str:
    rows = [(s.stage, reason, n) for s in report.stages for reason, n in s.reasons.items()]
    bars = _hbars([(f"{stage}: {reason}", {"rejected": n}) for stage, reason, n in rows],
                  colors={"rejected": COLORS[Decision.REJECTED]})
    return _section("rejections", "Rejections by reason",
                    _table(("stage", "reason", "count"), rows, (False, False, True)), bars)


def _relations(triples: Sequence[Triple]) -> str:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for tr in triples:
        per[tr.relation][tr.provenance.decision.value] += 1
    rows = [(rel, dict(per[rel])) for rel in sorted(per)]
    return _section("relations", "Decisions per relation", _hbars(rows, colors=COLORS))


def _confidence(triples: Sequence[Triple]) -> str:
    bins: dict[str, list[int]] = {}
    for tr in triples:
        c = tr.provenance.scores.get("confidence")
        if c is None or not math.isfinite(c):
            continue
        b = min(max(int(c * CONFIDENCE_BINS), 0), CONFIDENCE_BINS - 1)
        bins.setdefault(tr.provenance.decision.value, [0] * CONFIDENCE_BINS)[b] += 1
    if not bins:
        return _section("confidence", "Confidence by decision",
                        '<p class="muted">no triple has a confidence</p>')
    order = [d for d in _ORDER if d in bins]
    return _section(
        "confidence", "Confidence by decision",
        "<p>Candidates per confidence bin (width "
        f"{1 / CONFIDENCE_BINS:.2f}), stacked by decision.</p>",
        _stacked_histogram([bins[d] for d in order], [COLORS[d] for d in order]))


def _reliability(holdout: Holdout | None) -> str:
    title = "Verifier reliability on its holdout"
    pairs = [] if holdout is None else [
        (p, y) for p, y in zip(holdout.probability, holdout.labels, strict=True)
        if math.isfinite(p) and 0.0 <= p <= 1.0]
    if holdout is None or not pairs:
        return _section("reliability", title,
                        '<p class="muted">the verifier kept no holdout probabilities</p>')
    p = [a for a, _ in pairs]
    y = [b for _, b in pairs]
    diagram = reliability_diagram(p, y, n_bins=RELIABILITY_BINS)
    ece = expected_calibration_error(p, y, n_bins=RELIABILITY_BINS)
    rows = [(f"{lo:.1f}-{hi:.1f}", n, "" if m is None else f"{m:.3f}",
             "" if f is None else f"{f:.3f}")
            for lo, hi, n, m, f in zip(diagram.bin_edges[:-1], diagram.bin_edges[1:],
                                       diagram.counts, diagram.mean_probability,
                                       diagram.fraction_positive, strict=True)]
    return _section(
        "reliability", title,
        f"<p>{_e(holdout.source)}: {len(p)} triples ({sum(y)} true), ECE {ece:.3f}. "
        "A calibrated verifier's points lie on the diagonal; dot area is the bin's size.</p>",
        '<div style="display:flex;gap:32px;align-items:flex-start">',
        _reliability_svg(diagram.mean_probability, diagram.fraction_positive, diagram.counts),
        _table(("P(true) bin", "triples", "mean P", "share true"), rows,
               (False, True, True, True)), "</div>")


def _llm(report: RunReport) -> str:
    lines = [s for s in report.stages if s.llm_calls or s.cache_hits or s.seconds]
    rows = [(s.stage, s.llm_calls, s.cache_hits, s.prompt_tokens, s.completion_tokens,
             f"{s.seconds:.2f}") for s in lines]
    bars = _hbars([(s.stage, {"seconds": round(s.seconds, 2)}) for s in lines],
                  colors={"seconds": "#1565c0"})
    return _section(
        "llm", "LLM calls, tokens and seconds per stage",
        _table(("stage", "calls", "cached", "prompt tokens", "completion tokens", "seconds"),
               rows, (False, True, True, True, True, True)), "<p>Seconds per stage:</p>", bars)


def _sample(triples: Sequence[Triple], labels: Mapping[str, str]) -> str:
    parts: list[str] = []
    for decision in SAMPLED:
        chosen = sorted((tr for tr in triples if tr.provenance.decision == decision),
                        key=lambda tr: (-tr.provenance.scores.get("confidence", 0.0), tr.key))
        rows = [(labels.get(tr.head, tr.head), tr.relation, labels.get(tr.tail, tr.tail),
                 _confidence_text(tr), tr.provenance.source.value, tr.provenance.item_id or "",
                 tr.provenance.evidence or "")
                for tr in chosen[:SAMPLE_PER_DECISION]]
        parts.append(f"<h3>{_e(decision.value)} ({len(chosen)}; "
                     f"{min(len(chosen), SAMPLE_PER_DECISION)} shown)</h3>")
        parts.append(_table(("head", "relation", "tail", "confidence", "source", "item",
                             "evidence"), rows,
                            (False, False, False, True, False, False, False)))
    return _section("samples", "Sample of accepted and review triples", *parts)


def _confidence_text(tr: Triple) -> str:
    c = tr.provenance.scores.get("confidence")
    return "" if c is None else f"{c:.3f}"


def _details(report: RunReport) -> str:
    rows = [(k, v) for k, v in report.extra.items()]
    rows += [(f"export {name}", ", ".join(f"{k} {v}" for k, v in counts.items()))
             for name, counts in report.exports.items()]
    rows += [(f"output {k}", v) for k, v in report.outputs.items()]
    return _section("details", "Details", _table(("what", "value"), rows))


# --- SVG: plain shapes in a viewBox, sized by the page; no script, no external reference ---

def _svg(width: int, height: int, inner: Sequence[str]) -> str:
    return (f'<svg role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">' + "".join(inner) + "</svg>")


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}"><title>{_e(tip)}</title></rect>')


def _text(x: float, y: float, text: object, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_e(text)}</text>'


def _hbars(rows: Sequence[tuple[str, Mapping[str, float]]], *,
           colors: Mapping[str, str]) -> str:
    """One horizontal bar per row, stacked by key in ``colors`` order, scaled to the largest."""
    if not rows:
        return ""
    label_w, bar_w, row_h = 260, 620, 20
    top = max(sum(v.values()) for _, v in rows) or 1
    inner: list[str] = []
    for i, (label, parts) in enumerate(rows):
        y = i * row_h
        inner.append(_text(label_w - 6, y + 14, label[:45], "end"))
        x = float(label_w)
        for key, fill in colors.items():
            n = parts.get(key, 0)
            w = bar_w * n / top
            if n:
                inner.append(_rect(x, y + 3, w, row_h - 6, fill, f"{label}: {key} {n}"))
            x += w
        inner.append(_text(x + 4, y + 14, f"{sum(parts.values()):g}"))
    return _svg(label_w + bar_w + 60, row_h * len(rows) + 4, inner)


def _stacked_histogram(series: Sequence[Sequence[int]], fills: Sequence[str]) -> str:
    width, height, left, bottom = 820, 240, 40, 24
    n_bins = len(series[0])
    top = max(sum(s[b] for s in series) for b in range(n_bins)) or 1
    plot_h = height - bottom - 10
    bw = (width - left - 10) / n_bins
    inner = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#999"/>',
             _text(left - 4, 14, top, "end"), _text(left - 4, height - bottom, 0, "end")]
    for b in range(n_bins):
        y = float(height - bottom)
        for s, fill in zip(series, fills, strict=True):
            h = plot_h * s[b] / top
            if s[b]:
                inner.append(_rect(left + b * bw + 1, y - h, bw - 2, h, fill,
                                   f"{b / n_bins:.2f}-{(b + 1) / n_bins:.2f}: {s[b]}"))
            y -= h
    for tick in range(0, 11, 2):
        inner.append(_text(left + tick / 10 * (width - left - 10), height - 8,
                           f"{tick / 10:.1f}", "middle"))
    return _svg(width, height, inner)


def _reliability_svg(means: Sequence[float | None], fractions: Sequence[float | None],
                     counts: Sequence[int]) -> str:
    size, pad = 320, 36
    span = size - 2 * pad

    def at(p: float, q: float) -> tuple[float, float]:
        return pad + p * span, size - pad - q * span

    inner = [f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="#fafafa" '
             'stroke="#bbb"/>']
    x0, y0 = at(0, 0)
    x1, y1 = at(1, 1)
    inner.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#999" '
                 'stroke-dasharray="4 3"/>')
    most = max(counts) or 1
    points = [(m, f, n) for m, f, n in zip(means, fractions, counts, strict=True)
              if m is not None and f is not None]
    path = " ".join(f"{at(m, f)[0]:.1f},{at(m, f)[1]:.1f}" for m, f, _ in points)
    inner.append(f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for m, f, n in points:
        cx, cy = at(m, f)
        r = 3 + 7 * math.sqrt(n / most)
        inner.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="#1565c0" '
                     f'fill-opacity="0.55"><title>{_e(f"mean P {m:.2f}, true {f:.2f}, n {n}")}'
                     "</title></circle>")
    for tick in (0.0, 0.5, 1.0):
        x, _ = at(tick, 0)
        _, y = at(0, tick)
        inner += [_text(x, size - pad + 14, f"{tick:.1f}", "middle"),
                  _text(pad - 4, y + 4, f"{tick:.1f}", "end")]
    inner += [_text(size / 2, size - 4, "predicted P(true)", "middle"),
              _text(4, pad - 10, "share true")]
    return _svg(size, size, inner)
