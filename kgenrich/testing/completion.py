"""Scripted completion answers for every prompt shape: one request per (item, relation) answers
`{"tails": [...]}`; one request per item (pipeline/complete_item.py) answers one object keyed by
relation; a multiple-choice prompt (pipeline/complete_choice.py) answers `{"choice": k}`. A test
writes its rule once, for one relation, and `per_relation` applies it to each missing relation of
a per-item prompt, and picks the option its first tail names (0, none of these, otherwise)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from kgenrich.kg.ids import normalize_label
from kgenrich.pipeline.complete_choice import CHOICE_MARKER
from kgenrich.pipeline.complete_item import KEYED_MARKER

Reply = Callable[[dict[str, Any]], str]
_MISSING = re.compile(r"^Missing relation: (\S+).*$", flags=re.M)
_OPTION = re.compile(r"^(\d+)\. (.*)$", flags=re.M)


def is_per_item(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and KEYED_MARKER in messages[0].get("content", "")


def is_choice(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and CHOICE_MARKER in messages[0].get("content", "")


def options(user: str) -> dict[str, int]:
    """A multiple-choice prompt's offered labels (normalized) -> their numbers (0 excluded)."""
    return {normalize_label(label): int(n) for n, label in _OPTION.findall(user) if n != "0"}


def choice_answer(tails: list[str], user: str, *, many: bool) -> str:
    """The answer naming the options among `tails` (in their order), or 0 for none of them."""
    offered = options(user)
    picks = [offered[k] for k in (normalize_label(t) for t in tails) if k in offered]
    if many:
        return json.dumps({"choices": picks or [0]})
    return json.dumps({"choice": picks[0] if picks else 0})


def missing_relations(user: str) -> list[str]:
    """The relations a completion prompt asks for, in prompt order."""
    return _MISSING.findall(user)


def per_relation(reply: Reply) -> Reply:
    """`reply` (written for one-relation prompts) answering per-item prompts too: each missing
    relation gets `reply`'s tails for a copy of the body whose user message asks only for it."""

    def answer(body: dict[str, Any]) -> str:
        if is_choice(body):
            user = body["messages"][-1]["content"]
            tails = json.loads(reply(body)).get("tails", [])
            many = '"choices"' in body["messages"][0]["content"]
            return choice_answer(tails, user, many=many)
        if not is_per_item(body):
            return reply(body)
        user = body["messages"][-1]["content"]
        out: dict[str, list[str]] = {}
        for relation in missing_relations(user):
            one = copy.deepcopy(body)
            one["messages"][-1]["content"] = "\n".join(
                line for line in user.split("\n")
                if not line.startswith("Missing relation: ")
                or line == f"Missing relation: {relation}")
            out[relation] = json.loads(reply(one)).get("tails", [])
        return json.dumps(out)

    return answer
