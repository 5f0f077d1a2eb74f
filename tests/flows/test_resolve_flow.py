"""Entity resolution in the enrich flow: a run writes its merge log and review rows for its
merges; a merge rejected in the review file is split by the next run."""

from __future__ import annotations

import json
from pathlib import Path

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.pipeline.merge_log import SAME_AS
from kgenrich.settings import Settings

ROWS = [
    ("m1", "Jaws", "Steven Spielberg"),
    ("m2", "E.T.", "Spielberg, Steven"),
    ("m3", "Duel", "S. Spielberg"),
    ("m4", "Alien", "Ridley Scott"),
]
# more catalog facts, so the verifier has the trusted triples it needs
FILLER = ["Agnes Varda", "Akira Kurosawa", "Bong Joon-ho", "Chantal Akerman", "Fritz Lang",
          "Ingmar Bergman", "Jane Campion", "Wong Kar-wai", "Yasujiro Ozu", "Satyajit Ray"]
GENRES = ["Drama", "Comedy", "Horror", "Western"]


def _catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.csv"
    rows = [*ROWS, *((f"f{n}", f"Film {n}", d) for n, d in enumerate(FILLER))]
    path.write_text("id,title,director,genres\n" + "".join(
        f'{i},{t},"{d}",{GENRES[n % 4]}|{GENRES[(n + 1) % 4]}\n'
        for n, (i, t, d) in enumerate(rows)), encoding="utf-8")
    return path


def _run(tmp_path: Path, name: str) -> None:
    inputs = EnrichInputs(catalog=_catalog(tmp_path), ontology=ontology("movies"),
                          out_dir=tmp_path / "out", run_name=name,
                          mapping=CatalogMapping(attributes={"director": "directed_by",
                                                             "genres": "has_genre"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        discover={"use_spacy": False, "use_llm": False},
                        extract={"enabled": False}, complete={"enabled": False},
                        verify={"epochs": 2, "dim": 8}, reports_dir=tmp_path / "reports")
    enrich(inputs, settings)


def _directors(out: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    entities, _ = read_run(out)
    return {e.id: (e.label, e.aliases) for e in entities
            if e.type == "Person" and e.label not in FILLER}


def test_merges_are_logged_reviewable_and_a_rejected_one_splits_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(tmp_path, "first")
    assert _directors(out) == {
        "person/steven-spielberg": ("Steven Spielberg", ("Spielberg, Steven", "S. Spielberg")),
        "person/ridley-scott": ("Ridley Scott", ())}
    log = [json.loads(line) for line in (out / "merges.jsonl").read_text().splitlines()]
    assert [(m["label"], m["into"], m["reason"]) for m in log] == [
        ("Spielberg, Steven", "person/steven-spielberg", "normalised"),
        ("S. Spielberg", "person/steven-spielberg", "name_parts")]
    rows = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    merge_rows = [r for r in rows if r["relation"] == SAME_AS]
    assert [(r["head_label"], r["tail"]) for r in merge_rows] == [
        ("Spielberg, Steven", "person/steven-spielberg"),
        ("S. Spielberg", "person/steven-spielberg")]
    # a person rejects the initials merge
    edited = [{**r, "verdict": "reject"} if r.get("head_label") == "S. Spielberg" else r
              for r in rows]
    (out / "review.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
    _run(tmp_path, "second")
    directors = _directors(out)
    assert directors["person/steven-spielberg"] == ("Steven Spielberg", ("Spielberg, Steven",))
    assert directors["person/s.-spielberg"] == ("S. Spielberg", ())
    _, triples = read_run(out)
    assert ("item/m3", "directed_by", "person/s.-spielberg") in {t.key for t in triples}
    # the verdict stays in the review file for the runs after
    kept = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in kept if r.get("head_label") == "S. Spielberg"] == ["reject"]
