"""The enrich flow under Prefect's test harness (a real ephemeral API on SQLite)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import rdflib

from kgenrich.data import DEMO, ontology
from kgenrich.errors import InputError
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.records import Decision, SourceKind
from kgenrich.pipeline.llm.base import Message
from kgenrich.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


def _inputs(tmp_path: Path, catalog: Path = DATA / "catalog.csv") -> EnrichInputs:
    return EnrichInputs(
        catalog=catalog,
        ontology=ontology("movies"),
        out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv",
        run_name="test",
        mapping=CatalogMapping(text=("description",),
                            attributes={"director": "directed_by", "genres": "has_genre",
                                        "country": "country_of_origin"}),
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        llm={"backend": "fake", "cache_dir": None},
        verify={"epochs": 5, "dim": 16},
        reports_dir=tmp_path / "reports",
    )


def test_flow_writes_every_export_and_report(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    report = enrich(_inputs(tmp_path), _settings(tmp_path))
    out = tmp_path / "out"
    for name in ("graph.ttl", "graph.nq", "graph.graphml", "triples.jsonl", "entities.jsonl",
                 "ripplenet/kg_final.txt", "ripplenet/item_index2entity_id.txt",
                 "recbole/kgenrich/kgenrich.kg", "recbole/kgenrich/kgenrich.link", "report.md"):
        assert (out / name).is_file(), name
    assert (tmp_path / "reports" / "test" / "report.md").is_file()
    # the HTML page beside it, with the fitted verifier's holdout in its reliability diagram
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (tmp_path / "reports" / "test" / "report.html").read_text(encoding="utf-8") == html
    reliability = html.split('<section id="reliability">')[1].split("</section>")[0]
    assert "ECE" in reliability and "<svg" in reliability
    # what the recommender writers dropped for their consumers reaches the report
    assert {"ripplenet", "recbole"} <= set(report.exports)
    assert "dropped_items" in report.exports["ripplenet"]
    assert "## Exports" in (out / "report.md").read_text(encoding="utf-8")
    g = rdflib.Graph().parse(out / "graph.ttl", format="turtle")
    assert len(g) > 0
    ds = rdflib.Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    entities, triples = read_run(out)
    assert {t.provenance.source for t in triples} >= {SourceKind.SEED, SourceKind.CATALOG}
    assert all(t.provenance.decision is Decision.TRUSTED for t in triples
               if t.provenance.source in (SourceKind.SEED, SourceKind.CATALOG))
    stages = {s.stage for s in report.stages}
    assert {"catalog", "discover", "extract", "complete", "fit verifier", "verify"} <= stages
    # the KGE fit is timed where it happens, not hidden in a 0 s row
    seconds = {s.stage: s.seconds for s in report.stages}
    assert seconds["fit verifier"] > 0
    assert sum(seconds.values()) <= report.totals["wall_seconds"]
    assert report.totals["llm_calls"] > 0
    assert "calibration probes" in stages  # the labelled probe answers, one JSON row each
    rows = [json.loads(line) for line in
            (out / "calibration_probes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all({"relation", "tail", "masked", "correct", "confidence"} <= set(r) for r in rows)

    async def artifacts() -> list[str]:
        async with get_client() as client:
            found = await client.read_artifacts()
            return [a.key or "" for a in found]

    import asyncio

    assert "enrich-report" in asyncio.run(artifacts())


def test_flow_bad_catalog_fails_with_location_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        enrich(_inputs(tmp_path, DATA / "malformed" / "dup_id.csv"), _settings(tmp_path))
    assert "dup_id.csv" in str(err.value)
    assert err.value.line is not None
    assert not (tmp_path / "out").exists()


def _demo_model(messages: Sequence[Message], json_schema: dict[str, Any]) -> str:
    """A model giving schema-valid answers on the demo: the people its texts name, and for
    completion the first offered choice, "Christopher Nolan" as director, else a new name."""
    user = messages[-1]["content"]
    names = [n.strip() for m in re.findall(r"starring ([^.]+)\.", user) for n in m.split(",")]
    title = json_schema.get("title")
    if title == "EntitiesAnswer":
        return json.dumps({"entities": [{"label": n, "type": "Person"} for n in names]})
    if title == "FactsAnswer":
        return json.dumps({"facts": [{"relation": "starring", "tail": n, "evidence": n}
                                     for n in names]})
    if title == "TailsAnswer":
        choices = re.search(r"^Choose from: (.*)\.$", user, flags=re.M)
        if choices:
            return json.dumps({"tails": [choices.group(1).split(", ")[0]]})
        if "Missing relation: directed_by" in user:
            return json.dumps({"tails": ["Christopher Nolan"]})
        return json.dumps({"tails": ["Ann Moss"]})
    if title == "ItemTailsAnswer":  # one request per item: one key per missing relation
        return json.dumps({
            rel: [prop["items"]["enum"][0]] if "enum" in prop["items"]
            else ["Christopher Nolan"] if rel == "directed_by" else ["Ann Moss"]
            for rel, prop in json_schema["properties"].items()})
    raise AssertionError(f"unexpected schema {title}")


def test_demo_run_asserts_no_candidate_and_labels_items_with_titles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Done-when of issue 11 on data/demo (catalog, seed and a small interactions file) with a
    schema-valid scripted model."""
    from kgenrich.flows.demo import demo_inputs
    from kgenrich.kg.export.rdf import candidates_graph
    from kgenrich.kg.namespace import KGN, entity_iri, relation_iri
    from kgenrich.pipeline.llm import factory
    from kgenrich.pipeline.llm.fake import FakeLLM

    monkeypatch.setitem(factory.BACKENDS, "fake",
                        lambda _settings: contextlib.nullcontext(FakeLLM(_demo_model)))
    out = tmp_path / "out"
    # a small interactions file: three users rating the first ten films
    films = [it.id for it in read_catalog(DEMO / "catalog.csv", mapping=CatalogMapping())][:10]
    inter = tmp_path / "ratings.csv"
    inter.write_text("user_id,item_id,rating\n" + "".join(
        f"u{u},{f},{1 + (u + i) % 5}\n" for u in range(3) for i, f in enumerate(films)))
    inputs = demo_inputs(DEMO, out).model_copy(update={"interactions": inter})
    enrich(inputs, _settings(tmp_path))
    for name in ("kgenrich.inter", "kgenrich.kg", "kgenrich.link"):
        assert (out / "recbole" / "kgenrich" / name).is_file(), name
    for name in ("triples.parquet", "entities.parquet"):
        assert (out / name).is_file(), name
    base = Settings().export.base_iri
    entities, triples = read_run(out)
    asserted = {Decision.TRUSTED, Decision.ACCEPTED}
    facts = {t.key for t in triples if t.provenance.decision in asserted}
    candidates = {t.key for t in triples if t.provenance.decision not in asserted} - facts
    decisions = {t.provenance.decision for t in triples}
    assert candidates and decisions & {Decision.REVIEW, Decision.UNVERIFIED_NEW_ENTITY}

    def quad(key: tuple[str, str, str]) -> tuple[rdflib.URIRef, ...]:
        h, r, t = key
        return entity_iri(base, h), relation_iri(r), entity_iri(base, t)

    turtle = rdflib.Graph().parse(out / "graph.ttl", format="turtle")
    assert not [k for k in candidates if quad(k) in turtle]
    assert all(quad(k) in turtle for k in facts)
    ds = rdflib.Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    cand = candidates_graph(base)
    wrong = [
        (s, p, o, g) for s, p, o, g in ds.quads((None, None, None, None))
        if (g is None or rdflib.URIRef(str(g)) != cand)
        and ((s, p, o) in {quad(k) for k in candidates}
             or (p == KGN.decision and str(o) not in {"trusted", "accepted"}))
    ]
    assert wrong == []
    graphml = nx.read_graphml(out / "graph.graphml", force_multigraph=True)
    assert {d["decision"] for _, _, d in graphml.edges(data=True)} <= {"trusted", "accepted"}

    # every catalog title is the item's rdfs:label, its id an alternative label
    items = read_catalog(DEMO / "catalog.csv", mapping=CatalogMapping())
    labels = {e.id: e for e in entities}
    for it in items:
        iri = entity_iri(base, f"item/{it.id}")
        assert (iri, rdflib.RDFS.label, rdflib.Literal(it.title)) in turtle, it.id
        assert (iri, rdflib.SKOS.altLabel, rdflib.Literal(it.id)) in turtle, it.id
        assert labels[f"item/{it.id}"].label == it.title
        assert graphml.nodes[f"item/{it.id}"]["label"] == it.title
    # the HTML report names the candidates by their labels: titles, not item ids
    html = (out / "report.html").read_text(encoding="utf-8")
    sample = html.split('<section id="samples">')[1].split("</section>")[0]
    assert "review (" in sample and any(it.title in sample for it in items)
