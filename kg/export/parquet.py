"""Write `entities.parquet` and `triples.parquet`: one row per record, provenance as columns.

Every `Provenance` field is a column; `confidence` and `kge_probability` are lifted out of the
scores as float columns (null when absent), and `scores` keeps every score as a JSON object
string (non-finite values as `NaN` / `Infinity`, as the JSONL dump writes them). Entity `text`
and `attributes` are JSON object strings too. Both files are complete before either is replaced.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.records import Entity, Triple

ENTITIES_FILE = "entities.parquet"
TRIPLES_FILE = "triples.parquet"

ENTITY_SCHEMA = pa.schema([
    ("id", pa.string()), ("label", pa.string()), ("type", pa.string()),
    ("aliases", pa.list_(pa.string())), ("source", pa.string()),
    ("text", pa.string()), ("attributes", pa.string()),
])
TRIPLE_SCHEMA = pa.schema([
    ("head", pa.string()), ("relation", pa.string()), ("tail", pa.string()),
    ("source", pa.string()), ("decision", pa.string()), ("confidence", pa.float64()),
    ("kge_probability", pa.float64()), ("model", pa.string()), ("prompt_version", pa.string()),
    ("evidence", pa.string()), ("item_id", pa.string()), ("reason", pa.string()),
    ("accepted_by", pa.string()), ("scores", pa.string()),
])


def _json(value: Mapping[str, object]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_parquet(
    path: str | Path, *, entities: Iterable[Entity], triples: Iterable[Triple]
) -> dict[str, int]:
    """Write `<path>/entities.parquet` and `<path>/triples.parquet`; returns the row counts."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    ents = list(entities)
    tris = list(triples)
    entity_table = pa.table({
        "id": [e.id for e in ents], "label": [e.label for e in ents],
        "type": [e.type for e in ents], "aliases": [list(e.aliases) for e in ents],
        "source": [e.source.value for e in ents], "text": [_json(e.text) for e in ents],
        "attributes": [_json({k: list(v) for k, v in e.attributes.items()}) for e in ents],
    }, schema=ENTITY_SCHEMA)
    provs = [t.provenance for t in tris]
    triple_table = pa.table({
        "head": [t.head for t in tris], "relation": [t.relation for t in tris],
        "tail": [t.tail for t in tris], "source": [p.source.value for p in provs],
        "decision": [p.decision.value for p in provs],
        "confidence": [p.scores.get("confidence") for p in provs],
        "kge_probability": [p.scores.get("kge_probability") for p in provs],
        "model": [p.model for p in provs], "prompt_version": [p.prompt_version for p in provs],
        "evidence": [p.evidence for p in provs], "item_id": [p.item_id for p in provs],
        "reason": [p.reason for p in provs], "accepted_by": [p.accepted_by for p in provs],
        "scores": [_json(dict(p.scores)) for p in provs],
    }, schema=TRIPLE_SCHEMA)
    with contextlib.ExitStack() as stack:
        ent = stack.enter_context(atomic_write(folder / ENTITIES_FILE, mode="wb"))
        tri = stack.enter_context(atomic_write(folder / TRIPLES_FILE, mode="wb"))
        pq.write_table(entity_table, ent)
        pq.write_table(triple_table, tri)
    return {"entities": len(ents), "triples": len(tris)}
