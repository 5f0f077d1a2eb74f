"""Load an `Ontology` from a JSON or TOML file, validated: every relation's domain and range is a
declared type, names are unique identifiers; any problem is an `InputError` naming file and field.

File shape: `{"item_type": "Movie", "types": ["Movie", "Person"], "relations": [{"name":
"directed_by", "domain": "Movie", "range": "Person", "description": "...", "functional": false}]}`.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kgenrich.errors import InputError
from kgenrich.kg.records import Ontology, Relation

logger = logging.getLogger(__name__)

# Names become IRI local names, RecBole tokens and slugs in entity ids (`person/...`), so they are
# kept to plain identifiers; a type cannot start with "_" or a digit.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TOP_KEYS = frozenset({"closed_types", "item_type", "types", "relations"})
_RELATION_KEYS = frozenset({"name", "domain", "range", "description", "functional"})


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology file (`.json` or `.toml`)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read ontology: {err.strerror}", file=str(file)) from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError("not UTF-8", file=str(file), line=line) from err
    suffix = file.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"invalid JSON: {err.msg}", file=str(file), line=err.lineno) from err
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"invalid TOML: {err}", file=str(file)) from err
    else:
        raise InputError(
            "unknown ontology format", file=str(file), expected=".json or .toml", got=suffix
        )
    return ontology_from_dict(data, file=str(file))


def ontology_from_dict(data: object, *, file: str = "<ontology>") -> Ontology:
    """Validate an already-parsed ontology document; `file` only names the source in errors."""
    if not isinstance(data, Mapping):
        raise InputError("ontology must be an object", file=file, got=type(data).__name__)
    _no_unknown_keys(data, allowed=_TOP_KEYS, file=file, where="")
    types = _types(data.get("types"), file=file)
    item_type = data.get("item_type", "Item")
    if not isinstance(item_type, str) or item_type not in types:
        raise InputError(
            "item_type must be one of the declared types",
            file=file,
            field="item_type",
            expected=", ".join(types),
            got=repr(item_type),
        )
    relations = data.get("relations")
    if not isinstance(relations, list):
        raise InputError("must be a list", file=file, field="relations", got=repr(relations))
    seen: set[str] = set()
    parsed: list[Relation] = []
    for i, rel in enumerate(relations):
        where = f"relations[{i}]"
        parsed.append(_relation(rel, types=types, file=file, where=where))
        if parsed[-1].name in seen:
            raise InputError(
                "duplicate relation name", file=file, field=f"{where}.name", got=parsed[-1].name
            )
        seen.add(parsed[-1].name)
    closed = data.get("closed_types", [])
    if not isinstance(closed, list) or any(c not in types for c in closed):
        raise InputError("closed_types must list declared types", file=file,
                         field="closed_types", expected=", ".join(types), got=repr(closed))
    return Ontology(item_type=item_type, types=types, relations=tuple(parsed),
                    closed_types=tuple(closed))


def _types(value: object, *, file: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InputError("must be a non-empty list", file=file, field="types", got=repr(value))
    seen: list[str] = []
    for i, name in enumerate(value):
        field = f"types[{i}]"
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(
                "bad type name", file=file, field=field, expected="an identifier", got=repr(name)
            )
        # Entity ids use the lowercased type (`person/...`), so case-only variants would collide.
        if name.lower() in {s.lower() for s in seen}:
            raise InputError("duplicate type (case-insensitive)", file=file, field=field, got=name)
        seen.append(name)
    return tuple(seen)


def _relation(rel: object, *, types: tuple[str, ...], file: str, where: str) -> Relation:
    if not isinstance(rel, Mapping):
        raise InputError("must be an object", file=file, field=where, got=repr(rel))
    _no_unknown_keys(rel, allowed=_RELATION_KEYS, file=file, where=f"{where}.")
    name = rel.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            "bad relation name",
            file=file,
            field=f"{where}.name",
            expected="an identifier such as directed_by",
            got=repr(name),
        )
    ends: dict[str, str] = {}
    for key in ("domain", "range"):
        value = rel.get(key)
        if not isinstance(value, str) or value not in types:
            raise InputError(
                "not a declared type",
                file=file,
                field=f"{where}.{key}",
                expected=", ".join(types),
                got=repr(value),
            )
        ends[key] = value
    description = rel.get("description", "")
    if not isinstance(description, str):
        raise InputError("must be a string", file=file, field=f"{where}.description")
    functional = rel.get("functional", False)
    if not isinstance(functional, bool):
        raise InputError(
            "must be true or false", file=file, field=f"{where}.functional", got=repr(functional)
        )
    return Relation(
        name=name,
        domain=ends["domain"],
        range=ends["range"],
        description=description,
        functional=functional,
    )


def _no_unknown_keys(
    data: Mapping[Any, Any], *, allowed: frozenset[str], file: str, where: str
) -> None:
    for key in data:
        if key not in allowed:
            raise InputError(
                "unknown key",
                file=file,
                field=f"{where}{key}",
                expected=", ".join(sorted(allowed)),
            )
