"""Preflight (runs/preflight.py, kgenrich/cli_preflight.py): each input or setting mistake that
used to surface after training or the LLM calls is one finding naming the option or column, and
a correct run passes with its items, gaps and estimated LLM calls."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kgenrich.cli_preflight import preflight_inputs
from kgenrich.data import ontology
from kgenrich.errors import InputError
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.runs.preflight import Preflight, PreflightError
from kgenrich.settings import Settings

DATA = Path(__file__).parents[1] / "data"
ATTRS = {"director": "directed_by", "genres": "has_genre", "country": "country_of_origin",
         "year": "release_year"}


def _check(*, catalog: str = "catalog.csv", seed: str | None = "seed.tsv",
           seed_format: str = "auto", settings: Settings | None = None,
           **mapping: object) -> Preflight:
    fields: dict[str, object] = {"text": ("description",), "attributes": ATTRS, **mapping}
    return preflight_inputs(
        catalog=DATA / catalog, mapping=CatalogMapping.model_validate(fields),
        ontology=ontology("movies"), seed=DATA / seed if seed else None,
        seed_format=seed_format, seed_link=None, seed_on_error="raise",
        settings=settings or Settings())


def _error(**kw: object) -> str:
    with pytest.raises(PreflightError) as info:
        _check(**kw).raise_for_problems()  # type: ignore[arg-type]
    return str(info.value)


def test_a_correct_run_passes_with_counts() -> None:
    result = _check()
    result.raise_for_problems()
    assert (result.problems, result.warnings) == ((), ())
    assert result.items == 10 and result.trusted >= 20
    assert result.gaps["starring"] == 10 and "has_genre" not in result.gaps
    with_text = 9  # one row has no description
    complete = sum(result.gaps.values()) * Settings().complete.samples
    assert result.llm_calls == {"discover": with_text, "extract": with_text, "complete": complete}


def test_llm_call_estimate_follows_the_settings() -> None:
    s = Settings.model_validate({"discover": {"use_llm": False}, "extract": {"enabled": False},
                                 "complete": {"samples": 1, "max_items": 2}})
    result = _check(settings=s)
    assert set(result.llm_calls) == {"complete"} and result.llm_calls["complete"] <= 2 * 7


def test_attr_relation_not_in_the_ontology() -> None:
    message = _error(attributes={**ATTRS, "genres": "genre"})
    assert message == ("attr genres=genre: relation 'genre' is not in the ontology; "
                       "did you mean 'has_genre'?")


def test_completion_relation_not_in_the_ontology() -> None:
    message = _error(settings=Settings.model_validate({"complete": {"relations": ["stars"]}}))
    assert message.startswith("complete.relations: relation 'stars' is not in the ontology")


def test_unknown_seed_format() -> None:
    assert _error(seed_format="ttl") == ("seed_format: unknown seed format 'ttl'; "
                                         "did you mean 'turtle'?")


@pytest.mark.parametrize("catalog", ["catalog.csv", "catalog.jsonl"])
def test_absent_column_is_the_readers_error(catalog: str) -> None:
    with pytest.raises(InputError, match="field 'plot'"):
        _check(catalog=catalog, text=("plot",))


def test_columns_empty_in_every_row_warn(tmp_path: Path) -> None:
    with (DATA / "catalog.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with (tmp_path / "c.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "plot", "cast"])
        writer.writeheader()
        writer.writerows({**r, "plot": "", "cast": ""} for r in rows)
    result = _check(catalog=str(tmp_path / "c.csv"), text=("description", "plot"),
                    attributes={**ATTRS, "cast": "starring"})
    warned = {str(w) for w in result.warnings}
    assert {"text column 'plot': empty in every row",
            "attr column 'cast': empty in every row"} <= warned


def test_wrong_list_separator_warns() -> None:
    result = _check(list_separator=",")
    warned = {w.field: w.message for w in result.warnings}
    assert "is the list separator '|'?" in warned["attr column 'genres'"]
    assert "attr column 'year'" not in warned  # release_year is functional


def test_too_few_trusted_triples_for_the_verifier() -> None:
    message = _error(seed=None, attributes={"genres": "has_genre"}, text=())
    assert message.startswith("verify: verification needs at least 20 trusted triples, "
                              "the seed and catalog give ")


def test_findings_are_one_line() -> None:
    message = _error(seed_format="nope", attributes={"genres": "genre"})
    assert "\n" not in message and message.count(": ") >= 2
