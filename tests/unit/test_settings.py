"""Settings are validated when they load: unknown keys, bad values, export formats, decisions
and PyKEEN model names fail with the setting named, and `section.key=value` assignments parse."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from kgenrich.flows.io import WRITERS
from kgenrich.kg.records import Decision
from kgenrich.pipeline.llm.core import BaseLLM
from kgenrich.pipeline.llm.embedded import EmbeddedServer, ServerOptions
from kgenrich.pipeline.llm.openai_backend import CircuitBreaker, OpenAICompatibleLLM
from kgenrich.settings import (
    DecisionName,
    ExportFormat,
    ExportSettings,
    LLMSettings,
    Settings,
    SettingsError,
    VerifySettings,
    load_settings,
    parse_assignment,
)


def _load(*assignments: str, config: Path | None = None) -> Settings:
    return load_settings(config, flags={}, assignments=assignments)


def _problems(*assignments: str) -> dict[str, str]:
    with pytest.raises(SettingsError) as info:
        _load(*assignments)
    return dict(info.value.problems)


# --------------------------------------------------------------------------- export


def test_export_format_literal_matches_the_writers() -> None:
    assert list(get_args(ExportFormat)) == list(WRITERS)


def test_decision_literal_matches_the_decision_enum() -> None:
    assert list(get_args(DecisionName)) == [d.value for d in Decision]


def test_misspelt_export_format_fails_at_load_naming_setting_and_choices() -> None:
    problems = _problems('export.formats=["turtle", "turtel"]')
    assert list(problems) == ["export.formats.1"]
    assert ("'turtle', 'nquads', 'graphml', 'ripplenet', 'recbole' or 'parquet'"
            in problems["export.formats.1"])
    assert "'turtel'" in problems["export.formats.1"]


def test_misspelt_decision_fails_at_load_naming_setting_and_choices() -> None:
    problems = _problems('export.include=["acepted"]')
    assert list(problems) == ["export.include.0"]
    assert "'accepted'" in problems["export.include.0"]
    assert "'unverified_new_entity'" in problems["export.include.0"]
    # the section alone validates too (write_exports' callers build it directly)
    with pytest.raises(ValidationError, match="include.1"):
        ExportSettings.model_validate({"include": ["trusted", "acepted"]})


def test_jsonl_is_not_an_optional_format() -> None:
    # triples.jsonl is always written; listing it would suggest it can be left out
    assert "export.formats.0" in _problems('export.formats=["jsonl"]')


def test_default_export_settings_are_valid() -> None:
    assert ExportSettings().formats == get_args(ExportFormat)
    assert set(ExportSettings().include) <= set(get_args(DecisionName))


# --------------------------------------------------------------------------- verify.model


def test_pykeen_model_is_resolved_at_load_and_kept_as_written() -> None:
    assert _load("verify.model=RotatE").verify.model == "RotatE"
    # PyKEEN resolves case-insensitively; the stored spelling is the user's, because the KGE
    # code looks its tested defaults up by PyKEEN's spelling
    assert _load("verify.model=rotate").verify.model == "rotate"
    assert VerifySettings(model="ComplEx").model == "ComplEx"


def test_misspelt_pykeen_model_fails_with_pykeen_suggestions() -> None:
    problems = _problems("verify.model=Complx")
    assert list(problems) == ["verify.model"]
    assert "unknown PyKEEN model 'Complx'" in problems["verify.model"]
    assert "did you mean 'ComplEx'" in problems["verify.model"]


def test_unknown_pykeen_model_without_close_match_lists_pykeen_models() -> None:
    message = _problems("verify.model=zzzzzzzz")["verify.model"]
    assert "RotatE" in message and "TransE" in message


# --------------------------------------------------------------------------- --set


@pytest.mark.parametrize(("text", "key", "value"), [
    ("complete.samples=1", "complete.samples", 1),
    ("extract.enabled=false", "extract.enabled", False),
    ("llm.max_calls=null", "llm.max_calls", None),
    ('export.formats=["turtle"]', "export.formats", ["turtle"]),
    ("llm.base_url=http://127.0.0.1:8000/v1", "llm.base_url", "http://127.0.0.1:8000/v1"),
    ("llm.model=a=b", "llm.model", "a=b"),
    ("llm.model=", "llm.model", ""),
    ("reports_dir=out/r", "reports_dir", "out/r"),
])
def test_parse_assignment_reads_json_else_string(text: str, key: str, value: object) -> None:
    assert parse_assignment(text) == (key, value)


@pytest.mark.parametrize("text", ["complete.samples", "=1", "complete..samples=1", ".x=1"])
def test_parse_assignment_rejects_malformed(text: str) -> None:
    with pytest.raises(SettingsError, match="expected section.key=value"):
        parse_assignment(text)


def test_assignments_reach_the_settings() -> None:
    s = _load("complete.samples=1", 'export.formats=["turtle"]', "verify.epochs=5",
              "llm.base_url=http://127.0.0.1:8000/v1", 'complete.relations=["directed_by"]')
    assert s.complete.samples == 1
    assert s.export.formats == ("turtle",)
    assert s.verify.epochs == 5
    assert s.llm.base_url == "http://127.0.0.1:8000/v1"
    assert s.complete.relations == ("directed_by",)


def test_unknown_key_is_an_error() -> None:
    assert _problems("complete.sampels=1") == {
        "complete.sampels": "unknown setting; did you mean complete.samples?"}
    assert _problems("nosuch.key=1") == {"nosuch": "unknown setting"}


def test_bad_value_is_an_error_naming_the_setting() -> None:
    problems = _problems("complete.samples=0", "llm.backend=nope")
    assert "greater than or equal to 1" in problems["complete.samples"]
    assert "'embedded', 'openai' or 'fake'" in problems["llm.backend"]


def test_key_below_a_value_is_an_error() -> None:
    assert "valid string" in _problems("llm.model.x=1")["llm.model"]
    with pytest.raises(SettingsError, match="llm.model: is a value, not a section"):
        _load("llm.model=m", "llm.model.x=1")


def test_later_sources_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGENRICH_COMPLETE__SAMPLES", "5")
    monkeypatch.setenv("KGENRICH_COMPLETE__TEMPERATURE", "0.1")
    monkeypatch.setenv("KGENRICH_LLM__MODEL", "from-env")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"llm": {"model": "from-file", "concurrency": 7},
                                  "complete": {"max_candidates": 9}}))
    s = load_settings(config, flags={"llm.model": "from-flag", "complete.samples": None,
                                     "llm.concurrency": 3},
                      assignments=["llm.concurrency=4"])
    assert s.complete.samples == 5  # environment; a None flag is "not given"
    assert s.complete.temperature == 0.1  # environment, merged with the file's section
    assert s.complete.max_candidates == 9  # file
    assert s.llm.model == "from-flag"  # flag over file over environment
    assert s.llm.concurrency == 4  # --set over flag


def test_unreadable_config_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[llm\n")
    with pytest.raises(SettingsError, match="unreadable config file"):
        _load(config=config)


def test_unknown_key_in_config_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[verify]\nmodle = "RotatE"\n')
    with pytest.raises(SettingsError, match="verify.modle: unknown setting"):
        _load(config=config)


# --------------------------------------------------------------------------- one default


#: Library parameters that mirror an LLMSettings field under another name.
_MIRRORS = {
    ServerOptions: {"n_ctx": "embedded_ctx", "n_threads": "embedded_threads",
                    "extra_bufts": "embedded_extra_bufts"},
    EmbeddedServer: {"port": "embedded_port"},
    CircuitBreaker: {"threshold": "breaker_threshold", "cooldown_s": "breaker_cooldown_s",
                     "window": "breaker_window", "failure_rate": "breaker_failure_rate"},
}


@pytest.mark.parametrize("cls", [BaseLLM, OpenAICompatibleLLM, ServerOptions, EmbeddedServer,
                                 CircuitBreaker])
def test_llm_library_has_no_default_of_its_own_for_a_setting(cls: type) -> None:
    mirrors = _MIRRORS.get(cls, {})
    with_default = {
        name for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
        and (name in LLMSettings.model_fields or name in mirrors)
    }
    assert with_default == set()
    # and every mirrored name still exists in the settings
    assert set(mirrors.values()) <= set(LLMSettings.model_fields)


@pytest.mark.parametrize("band", ["[0.7,0.3]", "[-0.1,0.5]", "[0.4,1.5]"])
def test_review_band_must_be_ordered_within_zero_and_one(band: str) -> None:
    problems = _problems(f"verify.review_band={band}")
    assert "expected 0 <= low <= high <= 1" in problems["verify.review_band"]


def test_rule_accept_at_below_the_review_band_is_an_error() -> None:
    problems = _problems("verify.accept_at=0.3")  # default band (0.4, 0.6)
    assert "accept_at 0.3 is below review_band's low 0.4" in problems["verify"]
    assert _load("verify.accept_at=0.5").verify.accept_at == 0.5
    assert _load("verify.accept_at=0.3", "verify.combiner=learned").verify.accept_at == 0.3
