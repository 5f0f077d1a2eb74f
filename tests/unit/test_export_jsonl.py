"""JSONL dump: lossless round trip and validated reading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kgenrich.errors import InputError
from kgenrich.kg.export.jsonl import read_jsonl, write_jsonl
from kgenrich.kg.records import Provenance, SourceKind, Triple

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDS = read_jsonl(DATA / "golden_records")


def test_round_trip_equals_records(tmp_path: Path) -> None:
    odd = Triple(
        head="a",
        relation="r",
        tail="b",
        provenance=Provenance(
            source=SourceKind.COMPLETED, scores={"kge": float("nan"), "x": float("-inf")}
        ),
    )
    triples = (*RECORDS.triples, odd)
    counts = write_jsonl(tmp_path, entities=RECORDS.entities, triples=triples)
    assert counts == {"entities": 6, "triples": 6}
    back = read_jsonl(tmp_path)
    assert back.entities == RECORDS.entities
    assert back.triples[:-1] == RECORDS.triples
    scores = back.triples[-1].provenance.scores
    assert math.isnan(scores["kge"]) and scores["x"] == float("-inf")


def test_bad_line_names_file_line_field(tmp_path: Path) -> None:
    write_jsonl(tmp_path, entities=RECORDS.entities, triples=RECORDS.triples)
    path = tmp_path / "triples.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"source":"extracted"', '"source":"guessed"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_jsonl(tmp_path)
    assert (info.value.file, info.value.line, info.value.field) == (
        str(path),
        3,
        "provenance.source",
    )
