"""The enrich flow with `complete.modes` set to multiple choice: the run engine ranks candidates
from the trusted graph, the chunk asks them as a numbered question, and the completed triple
records its choice; gaps without candidates are still asked free-form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.records import SourceKind
from kgenrich.pipeline.complete_choice import CHOICE_MARKER
from kgenrich.settings import Settings
from kgenrich.testing import TEST_KEY, ScriptedServer, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"


@per_relation
def answers(body: dict[str, Any]) -> str:
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if "named entities" in system:
        return '{"entities": []}'
    if "extract facts" in system:
        return '{"facts": []}'
    if re.search(r"Movie: Four Rooms\n", user) and "Missing relation: directed_by" in user:
        return '{"tails": ["John Lasseter"]}'  # offered: he directs a film of the same genre
    return '{"tails": []}'


def test_choice_mode_asks_graph_candidates_and_records_the_pick(tmp_path: Path) -> None:
    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"), out_dir=tmp_path / "run",
        seed=DATA / "seed.tsv", run_name="run",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre",
                                           "country": "country_of_origin"}))
    settings = Settings(
        llm={"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": TEST_KEY,
             "model": "scripted-model", "cache_dir": None, "backoff_s": 0.01},
        complete={"relations": ("directed_by",), "samples": 1,
                  "modes": {"directed_by": "choice"}},
        verify={"epochs": 5, "dim": 16}, reports_dir=tmp_path / "reports")
    with ScriptedServer(reply=answers) as server:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(
            update={"base_url": server.base_url})})
        enrich(inputs, settings)
        prompts = [r.body["messages"] for r in server.requests if "messages" in r.body]
    choice = [m for m in prompts if CHOICE_MARKER in m[0]["content"]]
    assert choice and all("0. none of these" in m[-1]["content"] for m in choice)
    assert any("Movie: Four Rooms\n" in m[-1]["content"] and "John Lasseter" in m[-1]["content"]
               for m in choice)
    _, triples = read_run(tmp_path / "run")
    done = next(t for t in triples if t.key == ("item/m3", "directed_by", "person/john-lasseter"))
    assert done.provenance.source is SourceKind.COMPLETED
    assert done.provenance.prompt_version == "complete-choice-v1"
    assert done.provenance.scores["choice_rank"] >= 1
    assert "choice_probability" not in done.provenance.scores  # this server sends no logprobs
