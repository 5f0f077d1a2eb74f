"""`kgenrich init`: write a commented `kgenrich.toml` that holds everything a run needs.

The file is generated from the settings models (every field with its default and description),
so it cannot drift from them; loading it back gives the defaults (`load_config`).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from kgenrich import data as packaged_data
from kgenrich.errors import ConfigError
from kgenrich.settings import RUN_SECTIONS, Settings

CONFIG_NAME = "kgenrich.toml"

#: The demo as `kgenrich.flows.demo.demo_inputs` and `run_demo` run it (a test keeps them equal;
#: importing the flow here would load Prefect for `kgenrich init`).
DEMO_VALUES: Mapping[str, Mapping[str, Any]] = {
    "inputs": {
        "catalog": packaged_data.DEMO / "catalog.csv",
        "ontology": packaged_data.ontology("movies"),
        "seed": packaged_data.DEMO / "seed.tsv",
        "seed_format": "tsv",
        "run_name": "demo",
    },
    "mapping": {
        "id": "id", "title": "title", "text": ("description",),
        "attributes": {"genre": "has_genre", "country": "country_of_origin",
                       "language": "original_language"},
    },
    # as `kgenrich demo`: spaCy finds the entities, the LLM's time goes to the other stages
    "discover": {"use_llm": False},
    # the demo's answer key hides directors and genres: other gaps could not be judged
    "complete": {"relations": ("directed_by", "has_genre")},
}

_HEADER = """\
# kgenrich configuration: everything one run needs. Run it with
#   kgenrich run --config {name}
# Every setting is listed with its default and description (generated from kgenrich/settings.py
# by `kgenrich init`); a commented-out key is unset. Relative paths are read against the folder
# of this file. Later sources win: defaults < this file < KGENRICH_* environment variables
# (KGENRICH_COMPLETE__SAMPLES=1) < command-line flags < --set section.key=VALUE.
# Never write the API key here: set KGENRICH_LLM__API_KEY in the environment.
"""
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def init_command(directory: Path, *, demo: bool, force: bool) -> Path:
    """Write `directory/kgenrich.toml` (the folder is created); with `demo` its inputs and
    mapping are the packaged demo's.

    Raises:
        ConfigError: the file exists and `force` is not set, or it cannot be written.
    """
    path = directory / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    text = config_toml(DEMO_VALUES if demo else {})
    tmp = path.with_name(f".{CONFIG_NAME}.{os.getpid()}.tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a half-written file never replaces a good one
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {err.strerror or err}") from err
    return path


def config_toml(values: Mapping[str, Mapping[str, Any]]) -> str:
    """The commented TOML of every setting: `values` (section -> field -> value) where given,
    else the defaults."""
    blocks = [_HEADER.format(name=CONFIG_NAME)]
    top = values.get("", {})
    # TOML: keys of the top table come before any [section]
    for name, field in Settings.model_fields.items():
        if _section(field) is None:
            blocks.append(_entry(name, field, top.get(name, _default(field)), "KGENRICH_"))
    sections: dict[str, type[BaseModel]] = dict(RUN_SECTIONS)
    for name, field in Settings.model_fields.items():
        model = _section(field)
        if model is not None:
            sections[name] = model
    for name, model in sections.items():
        blocks.append(_table(name, model, values.get(name, {})))
    return "\n".join(blocks) + "\n"


def _section(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _table(section: str, model: type[BaseModel], values: Mapping[str, Any]) -> str:
    doc = (model.__doc__ or "").split("\n\n")[0]
    lines = [f"[{section}]"]
    if section in RUN_SECTIONS and doc:
        lines = [*_comment(" ".join(doc.split())), *lines]
    tables: list[str] = []
    env = f"KGENRICH_{section.upper()}__"
    for name, field in model.model_fields.items():
        value = values.get(name, _default(field))
        if isinstance(value, dict):
            # a table: after the section's plain keys, which TOML ends at the next [header]
            tables.append("\n".join([*_comment(field.description),
                                     f"[{section}.{name}]",
                                     *(f"{_key(k)} = {_value(v)}" for k, v in value.items())]))
        else:
            lines.append(_entry(name, field, value, env))
    return "\n".join(["", *lines, *(f"\n{t}" for t in tables)])


def _entry(name: str, field: FieldInfo, value: Any, env: str) -> str:
    comment = _comment(field.description)
    if isinstance(value, SecretStr) or _is_secret(field):
        return "\n".join([*comment, f"# {name} = \"...\"  (a secret: set {env}{name.upper()} "
                                    "in the environment instead)"])
    if value is None:
        return "\n".join([*comment, f"# {name} =  (unset)"])
    return "\n".join([*comment, f"{name} = {_value(value)}"])


def _is_secret(field: FieldInfo) -> bool:
    # SecretStr or SecretStr | None
    return field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)


def _comment(text: str | None) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(" ".join((text or "").split()), 96)]


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    """One TOML value (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))
