"""Parquet export: pandas reads `entities.parquet` and `triples.parquet` back with one row per
record of the JSONL dump and every provenance field as a column."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from kgenrich.flows.io import write_exports
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.settings import ExportSettings

ENTITIES = [
    Entity(id="item/m1", label="Toy Story", type="Movie", aliases=("m1",),
           text={"description": "Toys come to life."}, attributes={"has_genre": ("Animation",)}),
    Entity(id="person/john-lasseter", label="John Lasseter", type="Person",
           source=SourceKind.SEED),
    Entity(id="person/tom-hanks", label="Tom Hanks", type="Person", source=SourceKind.COMPLETED),
]
TRIPLES = [
    Triple(head="item/m1", relation="directed_by", tail="person/john-lasseter",
           provenance=Provenance(source=SourceKind.SEED, item_id="m1",
                                 decision=Decision.TRUSTED, accepted_by="seed")),
    Triple(head="item/m1", relation="starring", tail="person/tom-hanks",
           provenance=Provenance(source=SourceKind.EXTRACTED, item_id="m1", model="qwen",
                                 prompt_version="extract-v3", evidence="voiced by Tom Hanks",
                                 scores={"kge": -1.5, "kge_probability": 0.8, "confidence": 0.9,
                                         "agreement": math.nan},
                                 decision=Decision.REVIEW, reason="uncertain band")),
]


def _value(cell: object) -> object:
    """A cell as the record holds it: pandas may show a null string as None or NaN."""
    return None if not isinstance(cell, list | str) and pd.isna(cell) else cell


def test_parquet_reads_back_with_pandas_matching_triples_jsonl(tmp_path: Path) -> None:
    written = write_exports(tmp_path, entities=ENTITIES, triples=TRIPLES, items=None,
                            interactions=None, settings=ExportSettings(formats=("parquet",)))
    assert written.paths["parquet"] == tmp_path / "triples.parquet"
    dump = read_jsonl(tmp_path)
    triples = pd.read_parquet(tmp_path / "triples.parquet")
    entities = pd.read_parquet(tmp_path / "entities.parquet")
    assert len(triples) == len(dump.triples) == 2
    assert len(entities) == len(dump.entities) == 3
    assert list(triples.columns) == [
        "head", "relation", "tail", "source", "decision", "confidence", "kge_probability",
        "model", "prompt_version", "evidence", "item_id", "reason", "accepted_by", "scores"]
    assert list(entities.columns) == ["id", "label", "type", "aliases", "source", "text",
                                      "attributes"]
    rows = [{k: _value(v) for k, v in row.items()} for row in triples.to_dict("records")]
    for row, triple in zip(rows, dump.triples, strict=True):
        p = triple.provenance
        assert (row["head"], row["relation"], row["tail"]) == triple.key
        assert (row["source"], row["decision"]) == (p.source.value, p.decision.value)
        assert (row["model"], row["prompt_version"], row["evidence"], row["item_id"]) == (
            p.model, p.prompt_version, p.evidence, p.item_id)
        assert (row["reason"], row["accepted_by"]) == (p.reason, p.accepted_by)
        scores = json.loads(row["scores"])
        assert set(scores) == set(p.scores)
    seed_row, llm_row = rows
    assert seed_row["confidence"] is None and seed_row["kge_probability"] is None
    assert (llm_row["confidence"], llm_row["kge_probability"]) == (0.9, 0.8)
    assert llm_row["evidence"] == "voiced by Tom Hanks" and llm_row["model"] == "qwen"
    assert seed_row["model"] is None
    assert math.isnan(json.loads(llm_row["scores"])["agreement"])  # NaN survives
    item = entities.set_index("id").loc["item/m1"]
    assert item["label"] == "Toy Story" and list(item["aliases"]) == ["m1"]
    assert json.loads(item["text"]) == {"description": "Toys come to life."}
    assert json.loads(item["attributes"]) == {"has_genre": ["Animation"]}
    assert entities.set_index("id").loc["person/tom-hanks", "source"] == "completed"


def test_parquet_is_on_by_default() -> None:
    assert "parquet" in ExportSettings().formats
