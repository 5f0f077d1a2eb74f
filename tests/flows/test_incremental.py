"""Incremental and resumable runs of the enrich flow against the scripted HTTP server: only new
or changed items reach the LLM, removed items' triples are retracted and recorded, and items the
endpoint failed for are listed and asked again (and only they) on the next run."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.records import SourceKind
from kgenrich.pipeline.report import RunReport
from kgenrich.runs.state import FAILED, StateStore
from kgenrich.settings import Settings
from kgenrich.testing import TEST_KEY, Fault, ScriptedServer, http_error, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"
TITLES = {"m1": "Toy Story", "m2": "GoldenEye", "m3": "Four Rooms", "m4": "Get Shorty",
          "m5": "Amélie", "m6": "千と千尋の神隠し", "m7": "Heat", "m8": "Fargo", "m9": "Babe",
          "m10": "Se7en"}


@per_relation
def reply(body: dict[str, Any]) -> str:
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if "named entities" in system:
        return '{"entities": []}'
    if "extract facts" in system:
        if "Title: GoldenEye" in user and "Pierce Brosnan" in user:
            return json.dumps({"facts": [{"relation": "starring", "tail": "Pierce Brosnan",
                                          "evidence": "Pierce Brosnan"}]})
        return '{"facts": []}'
    if "Movie: Babe\n" in user and "Missing relation: starring" in user:
        return '{"tails": ["James Cromwell"]}'
    return '{"tails": []}'


def items_in(server: ScriptedServer) -> set[str]:
    """Which catalog items the server was asked about (titles appear in every prompt)."""
    found = set()
    for r in server.requests:
        text = "\n".join(m["content"] for m in r.body.get("messages", [])[1:])
        found |= {i for i, t in TITLES.items()
                  if f"Title: {t}\n" in text or f"Movie: {t}\n" in text
                  or text.startswith(f"Text:\n{json.dumps(t)[:-1]}")}
    return found


class FailFor(ScriptedServer):
    """Answers HTTP 500 to every request about the given titles while `down` holds them."""

    def __init__(self, titles: set[str]) -> None:
        super().__init__(reply=reply)
        self.down = titles

    def _next_fault(self, body: dict[str, Any]) -> Fault | None:
        text = json.dumps(body.get("messages", []), ensure_ascii=False)
        if any(t in text for t in self.down):
            return http_error(500, "scripted outage")
        return super()._next_fault(body)


def _catalog(path: Path, *, drop: str | None = None, edit: dict[str, str] | None = None) -> Path:
    with (DATA / "catalog.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [r for r in rows if r["id"] != drop]
    for r in rows:
        if edit and r["id"] in edit:
            r["description"] = edit[r["id"]]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _run(tmp_path: Path, server: ScriptedServer, catalog: Path, name: str) -> RunReport:
    inputs = EnrichInputs(
        catalog=catalog, ontology=ontology("movies"),
        out_dir=tmp_path / "out", seed=DATA / "seed.tsv", run_name=name,
        mapping=CatalogMapping(text=("description",),
                            attributes={"director": "directed_by", "genres": "has_genre",
                                        "country": "country_of_origin"}),
    )
    settings = Settings(
        llm={"backend": "openai", "base_url": server.base_url, "api_key": TEST_KEY,
             "model": "scripted-model", "cache_dir": None, "backoff_s": 0.01, "max_retries": 0,
             "concurrency": 1},
        discover={"use_spacy": False},
        complete={"relations": ("directed_by", "starring"), "samples": 1},
        # no calibration probes: they are requests about unchanged items (no cache here), and
        # these tests count which items each run asked and which requests the outage hit
        verify={"epochs": 3, "dim": 8, "calibration": "off"}, chunk_size=3,
        reports_dir=tmp_path / "reports",
    )
    return enrich(inputs, settings)


def test_rerun_asks_only_changed_items_and_records_retractions(tmp_path: Path) -> None:
    with ScriptedServer(reply=reply) as server:
        first = _run(tmp_path, server, _catalog(tmp_path / "a.csv"), "one")
        assert items_in(server) == set(TITLES)  # every item asked once
        _, before = read_run(tmp_path / "out")
        babe = [t for t in before if t.provenance.item_id == "m9"
                and t.provenance.source is SourceKind.COMPLETED]
        assert babe, "Babe gets a completed triple in the first run"

        server.requests.clear()
        catalog = _catalog(tmp_path / "b.csv", drop="m9",
                           edit={"m2": "James Bond fights a rogue agent. Pierce Brosnan"})
        second = _run(tmp_path, server, catalog, "two")
        assert items_in(server) == {"m2"}  # only the changed item, and no cache to hide it
        assert second.extra["incremental"]["catalog"] == {
            "new": 0, "changed": 1, "unchanged": 8, "removed": 1}

    assert first.totals["llm_calls"] > second.totals["llm_calls"] > 0
    # the trusted graph changed (m9's catalog triples left): the verifier is trained again
    assert "cached" not in second.extra["verifier"]
    _, after = read_run(tmp_path / "out")
    keys = {t.key for t in after}
    assert not any(t.provenance.item_id == "m9" or t.head == "item/m9" for t in after)
    assert ("item/m2", "starring", "person/pierce-brosnan") in keys
    # unchanged items keep their LLM triples (re-used, not re-asked)
    llm_before = {t.key for t in before if t.provenance.source in
                  (SourceKind.EXTRACTED, SourceKind.COMPLETED) and t.provenance.item_id != "m9"}
    assert llm_before <= keys
    [ret] = [json.loads(line) for line in
             (tmp_path / "out" / "retractions.jsonl").read_text().splitlines()]
    assert ret["item_id"] == "m9" and ret["run"] == "two"
    assert {tuple(t[k] for k in ("head", "relation", "tail")) for t in ret["triples"]} >= {
        t.key for t in babe}
    assert second.extra["retracted items"] == ["m9"]
    assert "| m9 |" in (tmp_path / "out" / "report.md").read_text()


def test_failed_items_are_listed_and_only_they_are_retried(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "a.csv")
    with FailFor({"Heat", "Fargo"}) as server:
        first = _run(tmp_path, server, catalog, "one")
        failures = [json.loads(line) for line in
                    (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
        assert {f["item_id"] for f in failures} == {"m7", "m8"}
        assert all("500" in f["error"] or "upstream" in f["error"] for f in failures)
        assert first.extra["failed items"] == 2
        with StateStore.open(tmp_path / "out" / "state.sqlite") as st:
            assert {i for i, s in st.items().items() if s.status == FAILED} == {"m7", "m8"}

        server.down = set()
        server.requests.clear()
        second = _run(tmp_path, server, catalog, "two")
        assert items_in(server) == {"m7", "m8"}
    assert second.extra["failed items"] == 0
    # same catalog and seed, so the same trusted graph: the first run's fit is reused
    assert "cached 1.000" in second.extra["verifier"]
    assert "cached" not in first.extra["verifier"]
    assert len(list((tmp_path / "out" / "verifier").glob("*.verifier.pkl"))) == 1
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""
    assert "## Failed items" in (tmp_path / "out" / "report.md").read_text()
