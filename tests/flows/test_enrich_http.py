"""The enrich flow against a real HTTP OpenAI-compatible server on 127.0.0.1 that answers like a
model that knows a few facts, with injected faults. Checks provenance, fault tolerance, the
response cache (a re-run makes zero calls) and that the API key never reaches any output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.records import Decision, SourceKind
from kgenrich.settings import Settings
from kgenrich.testing import TEST_KEY, ScriptedServer, http_error, per_relation, rate_limited

DATA = Path(__file__).resolve().parents[1] / "data"


@per_relation
def knowledgeable(body: dict[str, Any]) -> str:
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "named entities" in system:
        if "Directed by John Lasseter" in user:
            return json.dumps({"entities": [{"label": "John Lasseter", "type": "Person"}]})
        return '{"entities": []}'
    if "extract facts" in system:
        if "Title: Toy Story" in user:
            return json.dumps({"facts": [
                {"relation": "directed_by", "tail": "John Lasseter",
                 "evidence": "Directed by John Lasseter."},
                # not in the text: must be rejected, not kept
                {"relation": "starring", "tail": "Tom Hanks", "evidence": "starring Tom Hanks"},
            ]})
        return '{"facts": []}'
    if re.search(r"Movie: Four Rooms\n", user) and "Missing relation: directed_by" in user:
        return '{"tails": ["Quentin Tarantino"]}'
    if "Missing relation: starring" in user and "Movie: Heat" not in user:
        return '{"tails": ["Al Pacino"]}'  # a known Person: KGE can score it
    return '{"tails": []}'


def _run(tmp_path: Path, server: ScriptedServer, name: str, review: Path | None = None) -> Any:
    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"),
        out_dir=tmp_path / name, seed=DATA / "seed.tsv", run_name=name, review=review,
        mapping=CatalogMapping(text=("description",),
                            attributes={"director": "directed_by", "genres": "has_genre",
                                        "country": "country_of_origin"}),
    )
    settings = Settings(
        llm={"backend": "openai", "base_url": server.base_url, "api_key": TEST_KEY,
             "model": "scripted-model", "cache_dir": str(tmp_path / "cache"), "backoff_s": 0.01,
             "concurrency": 2},
        complete={"relations": ("directed_by", "starring"), "samples": 2},
        verify={"epochs": 5, "dim": 16},
        reports_dir=tmp_path / "reports",
    )
    return enrich(inputs, settings)


def test_flow_over_http_with_faults_cache_and_no_key_leak(tmp_path: Path) -> None:
    with ScriptedServer(reply=knowledgeable) as server:
        server.queue(http_error(500), rate_limited("0"), http_error(503))
        report = _run(tmp_path, server, "first")
        calls_first = server.chat_count
        # A person accepts the first triple in the review queue; the next run applies it.
        queue = (tmp_path / "first" / "review.jsonl").read_text().splitlines()
        assert queue, "uncertain completions reach the review queue"
        row = json.loads(queue[0]) | {"verdict": "accept", "reviewer": "ann"}
        (tmp_path / "verdicts.jsonl").write_text(json.dumps(row) + "\n")
        report2 = _run(tmp_path, server, "second", review=tmp_path / "verdicts.jsonl")
        assert server.chat_count == calls_first  # unchanged input: zero LLM calls
    assert report.totals["llm_calls"] > 0
    assert report2.totals["llm_calls"] == 0 and report2.totals["cache_hits"] > 0

    _, triples = read_run(tmp_path / "first")
    by_key = {t.key: t for t in triples}
    done = by_key[("item/m3", "directed_by", "person/quentin-tarantino")]
    assert done.provenance.source is SourceKind.COMPLETED
    assert done.provenance.model == "scripted-model"
    # one request per item is the default (complete.per_item): its prompt version is recorded
    assert done.provenance.prompt_version == "complete-item-v1"
    assert done.provenance.scores["agreement"] == 1.0
    # Tarantino is new to the graph: never auto-accepted without a KGE score.
    assert done.provenance.decision in {Decision.REVIEW, Decision.UNVERIFIED_NEW_ENTITY}
    scored = [t for t in triples if t.provenance.source is SourceKind.COMPLETED
              and "kge_probability" in t.provenance.scores]
    assert scored, "completions between known entities get a KGE probability"
    assert all(t.provenance.decision in {Decision.ACCEPTED, Decision.REJECTED, Decision.REVIEW}
               for t in scored)
    extract = next(s for s in report.stages if s.stage == "extract")
    assert extract.reasons.get("tail not in text") == 1

    _, triples2 = read_run(tmp_path / "second")
    reviewed = next(t for t in triples2 if t.key == (row["head"], row["relation"], row["tail"]))
    assert reviewed.provenance.decision is Decision.ACCEPTED
    assert reviewed.provenance.accepted_by == "review:ann"
    assert report2.extra["accepted by review"] == 1

    for path in [*(tmp_path / "first").rglob("*"), *(tmp_path / "reports").rglob("*"),
                 *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert TEST_KEY not in path.read_text(encoding="utf-8", errors="replace"), path
