"""The enrich flow with LLM coreference: its requests are a "coref" line of the run report, a
fact stated through a pronoun reaches the triples with evidence from the original text, and the
surname the model answered is an alias of the person, exported as skos:altLabel."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import rdflib

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.namespace import entity_iri
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.fake import minimal_instance
from kgenrich.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"
PLOT = "Christopher Nolan wrote it. He also directed it. Nolan also starred in a cameo."


def _model(messages: Sequence[Message], json_schema: dict[str, Any]) -> str:
    user = messages[-1]["content"]
    title = json_schema.get("title")
    if "Christopher Nolan wrote it" not in user:
        return json.dumps(minimal_instance(json_schema))
    if title == "EntitiesAnswer":
        return json.dumps({"entities": [{"label": "Christopher Nolan", "type": "Person"}]})
    if title == "CorefAnswer":
        return json.dumps({"clusters": [{"canonical": "Christopher Nolan", "mentions": [
            {"text": "He", "sentence": 3}, {"text": "Nolan", "sentence": 4}]}]})
    if title == "FactsAnswer":
        text = json.loads(user.split("Text:\n", 1)[1])
        facts = [{"relation": "written_by", "tail": "Christopher Nolan"},
                 {"relation": "starring", "tail": "Nolan"}]
        if m := re.search(r"He \[([^\]]+)\] also directed", text):
            facts.append({"relation": "directed_by", "tail": m.group(1)})
        return json.dumps({"facts": facts})
    return json.dumps(minimal_instance(json_schema))


def test_flow_with_llm_coreference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kgenrich.pipeline.llm import factory
    from kgenrich.pipeline.llm.fake import FakeLLM

    monkeypatch.setitem(factory.BACKENDS, "fake",
                        lambda _settings: contextlib.nullcontext(FakeLLM(_model)))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text((DATA / "catalog.csv").read_text(encoding="utf-8").rstrip("\n")
                       + f'\nm99,Inception,2010,"{PLOT}",,Sci-Fi,UK\n', encoding="utf-8")
    out = tmp_path / "out"
    inputs = EnrichInputs(
        catalog=catalog, ontology=ontology("movies"), out_dir=out, seed=DATA / "seed.tsv",
        run_name="coref",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre",
                                           "country": "country_of_origin"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        verify={"epochs": 5, "dim": 16}, reports_dir=tmp_path / "reports",
                        extract={"coref": "llm"}, discover={"use_spacy": False})
    report = enrich(inputs, settings)
    lines = {line.stage: line for line in report.stages}
    assert lines["coref"].llm_calls >= 1 and lines["extract"].llm_calls >= 1

    entities, triples = read_run(out)
    nolan = next(e for e in entities if e.label == "Christopher Nolan")
    assert "Nolan" in nolan.aliases
    directed = [t for t in triples if t.provenance.item_id == "m99"
                and (t.relation, t.tail) == ("directed_by", nolan.id)]
    assert [t.provenance.evidence for t in directed] == [
        "Christopher Nolan wrote it. He also directed it."]
    starring = [t for t in triples if t.provenance.item_id == "m99" and t.relation == "starring"]
    assert [t.tail for t in starring] == [nolan.id]
    turtle = rdflib.Graph().parse(out / "graph.ttl", format="turtle")
    alt = set(turtle.objects(entity_iri(Settings().export.base_iri, nolan.id),
                             rdflib.SKOS.altLabel))
    assert rdflib.Literal("Nolan") in alt
