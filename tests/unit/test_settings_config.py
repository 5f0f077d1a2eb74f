"""Config files and the environment: TOML, YAML and JSON files hold a run's inputs, mapping and
settings; each source beats the one before (defaults < file < environment < flags < --set);
unknown keys at any depth and unreadable files are one-line errors naming key, file or line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from kgenrich.kg.io.catalog import CatalogFormat, CatalogMapping
from kgenrich.kg.io.seed import SeedFormat
from kgenrich.settings import (
    NON_SETTING_ENV,
    CatalogFormatName,
    MappingSettings,
    RunConfig,
    SeedFormatName,
    Settings,
    SettingsError,
    load_config,
)


def _load(config: Path | None = None, *, env: dict[str, str] | None = None,
          flags: dict[str, Any] | None = None, sets: tuple[str, ...] = ()) -> RunConfig:
    return load_config(config, flags=flags or {}, assignments=sets, environ=env or {})


def _problem(**kwargs: Any) -> str:
    with pytest.raises(SettingsError) as info:
        _load(**kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def _toml(tmp_path: Path, text: str, name: str = "kgenrich.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- precedence


def test_file_beats_defaults(tmp_path: Path) -> None:
    cfg = _load(_toml(tmp_path, "[complete]\nsamples = 5\n"))
    assert cfg.settings.complete.samples == 5
    assert cfg.settings.complete.temperature == 0.7  # the rest of the section: defaults


def test_environment_beats_file(tmp_path: Path) -> None:
    # the README's order; before, the file won
    config = _toml(tmp_path, '[complete]\nsamples = 5\nmax_candidates = 9\n[llm]\nmodel = "f"\n')
    cfg = _load(config, env={"KGENRICH_COMPLETE__SAMPLES": "2", "KGENRICH_LLM__MODEL": "e"})
    assert cfg.settings.complete.samples == 2
    assert cfg.settings.llm.model == "e"
    assert cfg.settings.complete.max_candidates == 9  # merged with the file's section


def test_process_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGENRICH_COMPLETE__SAMPLES", "2")
    config = _toml(tmp_path, "[complete]\nsamples = 5\n")
    settings = load_config(config, flags={}, assignments=()).settings
    assert settings.complete.samples == 2


def test_flags_beat_environment() -> None:
    cfg = _load(env={"KGENRICH_LLM__MODEL": "e", "KGENRICH_COMPLETE__SAMPLES": "2"},
                flags={"llm.model": "flag", "complete.samples": None})
    assert cfg.settings.llm.model == "flag"
    assert cfg.settings.complete.samples == 2  # a None flag is "not given"


def test_set_beats_flags() -> None:
    cfg = _load(flags={"llm.model": "flag"}, sets=("llm.model=set",))
    assert cfg.settings.llm.model == "set"


def test_inputs_and_mapping_follow_the_same_order(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[inputs]\ncatalog = "a.csv"\nrun_name = "file"\n[mapping]\n'
                             'title = "name"\n[mapping.attributes]\ngenre = "has_genre"\n')
    cfg = _load(config, env={"KGENRICH_INPUTS__RUN_NAME": "env"},
                flags={"mapping.title": "label"},
                sets=("mapping.attributes.country=country_of_origin",))
    assert cfg.inputs.catalog == tmp_path / "a.csv"
    assert cfg.inputs.run_name == "env"
    assert cfg.mapping.title == "label"
    assert cfg.mapping.attributes == {"genre": "has_genre", "country": "country_of_origin"}
    assert cfg.mapping.catalog_mapping() == CatalogMapping(
        title="label", attributes={"genre": "has_genre", "country": "country_of_origin"})


def test_load_settings_takes_a_file_with_inputs(tmp_path: Path) -> None:
    # `kgenrich push/export --config kgenrich.toml` read the same file as `run`
    from kgenrich.settings import load_settings

    config = _toml(tmp_path, '[inputs]\ncatalog = "a.csv"\n[push]\ntimeout_s = 5\n')
    assert load_settings(config, flags={}, assignments=()).push.timeout_s == 5


# --------------------------------------------------------------------------- file formats


def test_yaml_and_json_files_hold_the_same(tmp_path: Path) -> None:
    data = {"inputs": {"catalog": "items.csv"}, "complete": {"samples": 1},
            "export": {"formats": ["turtle"]}}
    yaml_text = ("inputs:\n  catalog: items.csv\ncomplete:\n  samples: 1  # a comment\n"
                 "export:\n  formats: [turtle]\n")
    for name, text in [("c.yaml", yaml_text), ("c.yml", yaml_text), ("c.json", json.dumps(data))]:
        cfg = _load(_toml(tmp_path, text, name))
        assert cfg.inputs.catalog == tmp_path / "items.csv", name
        assert cfg.settings.complete.samples == 1
        assert cfg.settings.export.formats == ("turtle",)


def test_empty_yaml_file_is_all_defaults(tmp_path: Path) -> None:
    assert _load(_toml(tmp_path, "# nothing yet\n", "c.yaml")).settings == _load().settings
    assert _load().settings == Settings.model_validate({})  # what the flows take by default


@pytest.mark.parametrize(("name", "text", "where"), [
    ("c.json", '{"llm": {"model": "x",}}', "c.json:1: unreadable config file: Expecting"),
    ("c.yaml", "llm:\n  model: [x\n", "c.yaml:3: unreadable config file"),
    ("c.toml", "[llm\n", "c.toml: unreadable config file"),
])
def test_malformed_file_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    message = _problem(config=_toml(tmp_path, text, name))
    assert where in message
    if name == "c.toml":
        assert "line 1" in message  # tomllib says where in its message


def test_file_of_something_other_than_sections_is_an_error(tmp_path: Path) -> None:
    assert "holds one object of sections" in _problem(config=_toml(tmp_path, "- a\n", "c.yaml"))


def test_missing_or_binary_file_is_an_error(tmp_path: Path) -> None:
    assert "unreadable config file" in _problem(config=tmp_path / "none.toml")
    bad = tmp_path / "c.toml"
    bad.write_bytes(b"\xff\xfe[llm]")
    assert "c.toml: unreadable config file" in _problem(config=bad)


def test_relative_paths_in_a_file_are_read_against_its_folder(tmp_path: Path) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    config = _toml(sub, '[inputs]\ncatalog = "data/items.csv"\nseed = "/abs/seed.tsv"\n'
                        'out = "~/kg"\n[llm]\ncache_dir = "cache"\n')
    cfg = _load(config, sets=("inputs.seed_link=rel/link.tsv",))
    assert cfg.inputs.catalog == sub / "data" / "items.csv"
    assert cfg.inputs.seed == Path("/abs/seed.tsv")
    assert cfg.inputs.out == Path("~/kg").expanduser()
    assert cfg.settings.llm.cache_dir == sub / "cache"
    # a path on the command line is the shell's: relative to the working directory
    assert cfg.inputs.seed_link == Path("rel/link.tsv")


# --------------------------------------------------------------------------- unknown keys


def test_unknown_nested_key_in_file_names_key_file_and_closest(tmp_path: Path) -> None:
    config = _toml(tmp_path, "[complete]\nsampel = 5\n")
    assert _problem(config=config) == (
        f"invalid settings: complete.sampel: unknown setting; did you mean complete.samples? "
        f"(in {config})")


def test_unknown_key_in_environment_is_an_error() -> None:
    # before, pydantic-settings ignored it without a word
    assert _problem(env={"KGENRICH_COMPLETE__SAMPEL": "9"}) == (
        "invalid settings: complete.sampel: unknown setting; did you mean complete.samples? "
        "(from KGENRICH_COMPLETE__SAMPEL)")


@pytest.mark.parametrize(("assignment", "expected"), [
    ("inputs.catlog=x.csv", "inputs.catlog: unknown setting; did you mean inputs.catalog?"),
    ("mapping.list_sep=,", "mapping.list_sep: unknown setting; did you mean "
                           "mapping.list_separator?"),
    ("complet.samples=1", "complet: unknown setting; did you mean complete?"),
    ("chunksize=1", "chunksize: unknown setting; did you mean chunk_size?"),
    ("llm.model.x=1", "llm.model: Input should be a valid string"),
])
def test_unknown_key_in_set_is_an_error(assignment: str, expected: str) -> None:
    assert expected in _problem(sets=(assignment,))


def test_every_unknown_key_is_listed() -> None:
    message = _problem(env={"KGENRICH_LLM__MODLE": "m", "KGENRICH_VERIFY__EPOCS": "3"})
    assert "llm.modle: unknown setting; did you mean llm.model?" in message
    assert "verify.epocs: unknown setting; did you mean verify.epochs?" in message


def test_free_form_tables_take_any_key(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[seed.relation_map]\n"film.film.genre" = "has_genre"\n')
    cfg = _load(config)
    assert cfg.settings.seed.relation_map == {"film.film.genre": "has_genre"}


def test_non_setting_variables_are_left_alone() -> None:
    env = {name: "/srv/kgenrich" for name in NON_SETTING_ENV}
    assert _load(env={**env, "PATH": "/bin", "KGENRICH_LLM__MODEL": "m"}).settings.llm.model == "m"


# --------------------------------------------------------------------------- values


def test_environment_text_is_read_as_its_setting_takes_it() -> None:
    cfg = _load(env={"KGENRICH_LLM__MODEL": "7", "KGENRICH_LLM__MAX_CALLS": "12",
                     "KGENRICH_LLM__BASE_URL": "null", "KGENRICH_EXTRACT__ENABLED": "false",
                     "KGENRICH_EXPORT__FORMATS": '["turtle"]'})
    s = cfg.settings
    assert (s.llm.model, s.llm.max_calls, s.llm.base_url) == ("7", 12, None)
    assert s.extract.enabled is False and s.export.formats == ("turtle",)


def test_bad_environment_value_is_a_settings_error_not_a_parse_crash() -> None:
    # pydantic-settings would raise its own error parsing this as JSON; it no longer reads env
    message = _problem(env={"KGENRICH_EXPORT__FORMATS": "turtle"})
    assert "export.formats: Input should be a valid tuple" in message
    assert "(from KGENRICH_EXPORT__FORMATS)" in message


def test_misspelt_choice_in_a_file_lists_choices_and_the_closest(tmp_path: Path) -> None:
    message = _problem(config=_toml(tmp_path, '[inputs]\nseed_format = "ttl"\n'))
    assert "inputs.seed_format: Input should be 'auto', 'tsv', 'nt', 'turtle', 'recbole', " \
           "'ripplenet' or 'auxiliary' (got 'ttl'); did you mean 'turtle'?" in message


def test_mapping_is_checked_by_the_reader_at_load() -> None:
    message = _problem(sets=('mapping.separators={"genre": ";"}',))
    assert "mapping: separator given for 'genre', which is not an attribute" in message
    assert "list_separator must be non-empty" in _problem(sets=("mapping.list_separator=",))


# --------------------------------------------------------------------------- mirrors


def test_format_literals_match_the_readers() -> None:
    assert get_args(SeedFormatName) == get_args(SeedFormat)
    assert get_args(CatalogFormatName) == get_args(CatalogFormat)


def test_mapping_section_mirrors_the_catalog_mapping() -> None:
    assert set(MappingSettings.model_fields) == set(CatalogMapping.model_fields)
    assert MappingSettings().catalog_mapping() == CatalogMapping()
