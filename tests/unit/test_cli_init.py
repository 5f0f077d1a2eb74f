"""`kgenrich init`: the generated kgenrich.toml lists every input, mapping key and setting with
its description, loads back to the defaults, never overwrites without --force, and with --demo
is a run that needs no other flag."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.cli_init import CONFIG_NAME, DEMO_VALUES, config_toml
from kgenrich.settings import RUN_SECTIONS, Settings, load_config


def _init(tmp_path: Path, *args: str) -> Path:
    result = CliRunner().invoke(cli.app, ["init", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    return tmp_path / CONFIG_NAME


def _every_field() -> list[tuple[str, str, str | None]]:
    """(section, field, description) of every setting; section "" is the top table."""
    sections: dict[str, type[BaseModel]] = dict(RUN_SECTIONS)
    out: list[tuple[str, str, str | None]] = []
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            sections[name] = model
        else:
            out.append(("", name, field.description))
    for section, model in sections.items():
        out += [(section, n, f.description) for n, f in model.model_fields.items()]
    return out


def test_generated_file_loads_back_to_the_defaults(tmp_path: Path) -> None:
    loaded = load_config(_init(tmp_path), flags={}, assignments=(), environ={})
    defaults = load_config(None, flags={}, assignments=(), environ={})
    # relative paths in a file are read against its folder, as documented
    relative = {"out", "reports_dir", "cache_dir"}
    for got, want in [(loaded.inputs, defaults.inputs), (loaded.mapping, defaults.mapping),
                      *[(getattr(loaded.settings, n), getattr(defaults.settings, n))
                        for n in Settings.model_fields]]:
        if isinstance(want, BaseModel):
            for name in type(want).model_fields:
                g, w = getattr(got, name), getattr(want, name)
                assert g == (tmp_path / w if name in relative else w), name
    assert loaded.settings.reports_dir == tmp_path / defaults.settings.reports_dir
    assert loaded.settings.chunk_size == defaults.settings.chunk_size


def test_every_setting_is_listed_with_its_description(tmp_path: Path) -> None:
    text = _init(tmp_path).read_text(encoding="utf-8")
    lines = text.splitlines()
    section = ""
    seen: set[tuple[str, str]] = set()
    for line in lines:
        if line.startswith("["):
            section = line.strip("[]").split(".")[0]
            if "." in line:  # a table-valued field: [mapping.attributes]
                seen.add((section, line.strip("[]").split(".")[1]))
            continue
        key = line.removeprefix("# ").split(" = ")[0].split(" =")[0]
        if " =" in line:
            seen.add((section, key))
    flat = " ".join(line.removeprefix("# ") for line in lines if line.startswith("#"))
    for section, name, description in _every_field():
        assert (section, name) in seen, f"{section}.{name} missing"
        assert " ".join((description or "").split()) in flat, f"{section}.{name} description"


def test_the_api_key_is_never_written(tmp_path: Path) -> None:
    text = _init(tmp_path).read_text(encoding="utf-8")
    assert "not-needed" not in text
    assert '# api_key = "..."  (a secret: set KGENRICH_LLM__API_KEY' in text
    assert tomllib.loads(text)["llm"].get("api_key") is None


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = _init(tmp_path)
    path.write_text("# mine\n", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: {path} exists; pass --force to overwrite it")
    assert path.read_text(encoding="utf-8") == "# mine\n"
    _init(tmp_path, "--force")
    assert "[complete]" in path.read_text(encoding="utf-8")


def test_init_creates_the_folder(tmp_path: Path) -> None:
    assert _init(tmp_path / "new" / "project").is_file()


def test_demo_file_is_the_demo_flow_s_inputs(tmp_path: Path) -> None:
    from kgenrich import data as packaged_data
    from kgenrich.flows.demo import DEMO_RELATIONS, demo_inputs

    run_config = load_config(_init(tmp_path, "--demo"), flags={}, assignments=(), environ={})
    ours = cli._inputs(run_config)
    theirs = demo_inputs(packaged_data.DEMO, tmp_path / "out")
    assert ours.model_dump() == theirs.model_dump()
    assert run_config.settings.complete.relations == DEMO_RELATIONS
    assert run_config.settings.discover.use_llm is False  # as `kgenrich demo` defaults


def test_run_with_the_demo_file_needs_no_other_flag(tmp_path: Path) -> None:
    config = _init(tmp_path, "--demo")
    # the environment, not a flag: keeps preflight's LLM check off the embedded model
    result = CliRunner().invoke(cli.app, ["run", "--config", str(config), "--dry-run"],
                                env={"KGENRICH_LLM__BACKEND": "fake"})
    assert result.exit_code == 0, result.output
    assert "items: 60" in result.output
    assert "estimated LLM calls" in result.output


def test_a_run_with_the_demo_file_passes_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --dry-run: past preflight to where Prefect would load, with nothing but
    --config."""

    def stop(*_: object) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_setup_logging", stop)
    result = CliRunner().invoke(cli.app, ["run", "--config", str(_init(tmp_path, "--demo"))],
                                env={"KGENRICH_LLM__BACKEND": "fake"})
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_config_toml_takes_values_over_defaults() -> None:
    data = tomllib.loads(config_toml(DEMO_VALUES))
    assert data["inputs"]["seed_format"] == "tsv"
    assert data["mapping"]["attributes"] == {"genre": "has_genre", "country": "country_of_origin",
                                             "language": "original_language"}
    assert data["complete"]["relations"] == ["directed_by", "has_genre"]
    assert "catalog" not in tomllib.loads(config_toml({}))["inputs"]  # unset: commented out
