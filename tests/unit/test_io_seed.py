"""Seed KG reader: every format, id and type resolution, item links, and bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import InputError
from kgenrich.kg.ids import mint_entity_id
from kgenrich.kg.io.seed import SeedGraph, read_seed
from kgenrich.kg.records import Decision, Ontology, SourceKind

DATA = Path(__file__).resolve().parents[1] / "data"


def keys(graph: SeedGraph) -> set[tuple[str, str, str]]:
    return {t.key for t in graph.triples}


def test_tsv_labels_ids_links_types_and_duplicates(movies: Ontology) -> None:
    g = read_seed(DATA / "seed.tsv", ontology=movies, link=DATA / "seed_link.tsv")
    assert ("item/m1", "directed_by", "person/john-lasseter") in keys(g)
    assert ("item/m2", "has_genre", "genre/action") in keys(g)  # ids kept as given
    assert ("item/m7", "starring", "person/al-pacino") in keys(g)  # "Heat" linked to m7
    # An unknown relation is a counted rejection, not a trusted fact (issue 11, item 7)...
    assert ("thing/tom-hanks", "born_in", "thing/concord") not in keys(g)
    assert [r.reason for r in g.rejected] == ["unknown relation"]
    assert "'born_in'" in g.rejected[0].detail and g.counts["rejected_lines"] == 0
    entities = {e.id: e for e in g.entities}
    assert entities["person/john-lasseter"].label == "John Lasseter"
    assert entities["person/john-lasseter"].type == "Person"
    assert entities["item/m1"].type == "Movie"
    assert dict(g.item_links) == {"m1": "item/m1", "m2": "item/m2", "m7": "item/m7"}
    assert g.counts["duplicates"] == 1 and g.counts["triples"] == 6
    assert g.counts["unknown_relation_triples"] == 1
    assert "thing/concord" not in {e.id for e in g.entities}
    # ...unless the relation map names it.
    kept = read_seed(DATA / "seed.tsv", ontology=movies, link=DATA / "seed_link.tsv",
                     relation_map={"born_in": "born_in"})
    assert ("thing/tom-hanks", "born_in", "thing/concord") in keys(kept)
    assert kept.counts["triples"] == 7 and not kept.rejected
    for t in g.triples:
        p = t.provenance
        assert (p.source, p.decision, p.accepted_by) == (SourceKind.SEED, Decision.TRUSTED, "seed")
    assert all(e.source is SourceKind.SEED for e in g.entities)


def test_ntriples_labels_languages_literals_and_link(movies: Ontology) -> None:
    g = read_seed(DATA / "seed.nt", ontology=movies, link=DATA / "seed_nt_link.tsv")
    assert keys(g) == {
        ("item/m1", "directed_by", "person/john-lasseter"),
        ("item/m1", "starring", "person/tom-hanks"),  # English label preferred
        ("item/m1", "release_year", "year/1995"),  # literal object -> range-typed entity
        ("Heat", "starring", "AlPacino"),  # no label: local names
    }
    assert g.counts["skipped"] == 3  # the rdfs:label triples


def test_turtle_item_id_rdf_type_and_skipped_terms(movies: Ontology) -> None:
    g = read_seed(DATA / "seed.ttl", ontology=movies)
    assert keys(g) == {
        ("item/m1", "directed_by", "person/john-lasseter"),
        ("item/m1", "has_genre", "genre/animation"),
    }
    assert dict(g.item_links) == {"m1": "item/m1"}
    assert g.counts["skipped"] == 8  # labels, types, comment, itemId, blank nodes


def test_recbole_with_sibling_link_and_relation_map(movies: Ontology) -> None:
    g = read_seed(
        DATA / "recbole" / "mini.kg",
        ontology=movies,
        relation_map={"film.film.directed_by": "directed_by", "film.film.genre": "has_genre",
                      # not in the ontology: kept because the map names it
                      "people.person.nationality": "people.person.nationality"},
    )
    assert ("item/1", "directed_by", "m.99") in keys(g)
    types = {e.id: e.type for e in g.entities}
    assert types == {
        "item/1": "Movie",
        "item/2": "Movie",
        "m.99": "Person",
        "m.50": "Genre",
        "m.77": "Thing",
    }
    assert g.counts["link_lines"] == 2


def test_ripplenet_with_item_index(movies: Ontology) -> None:
    # RippleNet relations are bare ints: only a relation map makes them facts.
    assert not read_seed(DATA / "ripplenet" / "kg_final.txt", ontology=movies).triples
    g = read_seed(DATA / "ripplenet" / "kg_final.txt", ontology=movies, id_prefix="bx/",
                  relation_map={r: r for r in "0123"})
    assert ("item/0399135782", "0", "bx/5") in keys(g)
    assert ("bx/5", "3", "bx/6") in keys(g)
    assert len(g.triples) == 5


def test_auxiliary_format(movies: Ontology) -> None:
    g = read_seed(DATA / "auxiliary.txt", ontology=movies)
    k = keys(g)
    assert ("item/1", "directed_by", "person/john-lasseter") in k
    assert ("item/2", "starring", "person/pierce-brosnan") in k  # "Actors" key, any case
    assert ("item/2", "has_genre", "genre/thriller") in k  # ", " separators stripped
    assert not any(t.tail == mint_entity_id("Person", "N/A") for t in g.triples)  # no entity
    assert {e.id: e.label for e in g.entities}["person/martin-campbell"] == "Martin Campbell"
    assert set(g.item_links) == {"1", "2", "3"}
    custom = read_seed(
        DATA / "auxiliary.txt",
        ontology=movies,
        auxiliary_keys={"genre": "has_genre", "director": "directed_by", "actors": "starring"},
        missing_values=(),
    )
    assert ("item/3", "directed_by", mint_entity_id("Person", "N/A")) in keys(custom)


@pytest.mark.parametrize(
    ("name", "line", "field"),
    [
        ("seed_short.tsv", 2, "tail"),
        ("aux_missing_bar.txt", 2, "id"),
        ("bad.nt", 2, "statement"),
        ("kg_final.txt", 2, "relation"),
    ],
)
def test_bad_seed_lines_name_file_line_field(
    movies: Ontology, name: str, line: int, field: str
) -> None:
    path = DATA / "malformed" / name
    with pytest.raises(InputError) as info:
        read_seed(path, ontology=movies)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), line, field)


def test_skip_mode_records_rejections(movies: Ontology) -> None:
    g = read_seed(DATA / "malformed" / "aux_missing_bar.txt", ontology=movies, on_error="skip")
    assert len(g.triples) == 1 and len(g.rejected) == 1
    assert g.rejected[0].reason == "bad id" and ":2:" in g.rejected[0].detail
    assert g.counts["rejected_lines"] == 1


def test_more_bad_inputs(movies: Ontology, tmp_path: Path) -> None:
    cases = {
        "empty.tsv": (b"a\t\tb\n", "relation"),
        "bytes.tsv": (b"a\tr\t\xff\n", "tail"),
        "unknown_key.txt": (b"id:1|writer:X\n", "writer"),
        "dupe.txt": (b"id:1|genre:A\nid:1|genre:B\n", "id"),
    }
    for name, (body, field) in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(InputError) as info:
            read_seed(path, ontology=movies)
        assert info.value.field == field, name
    link = tmp_path / "link.tsv"
    link.write_text("1\ta\n2\ta\n", encoding="utf-8")
    with pytest.raises(InputError, match="two items") as info:
        read_seed(DATA / "seed.tsv", ontology=movies, link=link)
    assert (info.value.line, info.value.field) == (2, "entity")
    bad_ttl = tmp_path / "bad.ttl"
    bad_ttl.write_text("@prefix ex: <http://ex.org/> .\n\nex:a ex:b ex:c ;\n  ex:d .\n")
    with pytest.raises(InputError, match="cannot parse turtle"):
        read_seed(bad_ttl, ontology=movies)


def test_own_turtle_export_reads_back_as_seed(movies: Ontology, tmp_path: Path) -> None:
    from kgenrich.kg.export.jsonl import read_jsonl
    from kgenrich.kg.export.rdf import write_turtle

    records = read_jsonl(DATA / "golden_records")
    out = tmp_path / "kg.ttl"
    write_turtle(
        out, entities=records.entities, triples=records.triples, base="https://example.org/kg/"
    )
    g = read_seed(out, ontology=movies)
    # only trusted and accepted triples are asserted (the review one is a statement only)
    asserted = {t.key for t in records.triples
                if t.provenance.decision in ("trusted", "accepted")}
    assert keys(g) == asserted  # statements and descriptions are not facts
    entities = {e.id: e for e in g.entities}
    assert entities["person/zoë-obrien"].label == 'Zoë "Z" O\'Brien'
    assert dict(g.item_links) == {"m1": "item/m1", "m 2": "item/m 2"}


def test_seed_relation_map_setting_keeps_a_named_unknown_relation(movies: Ontology) -> None:
    from kgenrich.flows.io import read_seed_graph
    from kgenrich.settings import load_settings

    settings = load_settings(None, flags={},
                             assignments=['seed.relation_map={"born_in": "born_in"}'])

    def read(relation_map: dict[str, str]) -> SeedGraph | None:
        return read_seed_graph(DATA / "seed.tsv", format="tsv", link=DATA / "seed_link.tsv",
                               on_error="raise", ontology=movies, relation_map=relation_map)

    kept = read(settings.seed.relation_map)
    default = read(load_settings(None, flags={}, assignments=[]).seed.relation_map)
    assert kept is not None and default is not None
    assert ("thing/tom-hanks", "born_in", "thing/concord") in keys(kept)
    assert ("thing/tom-hanks", "born_in", "thing/concord") not in keys(default)
    assert default.counts["unknown_relation_rejected"] == 1
