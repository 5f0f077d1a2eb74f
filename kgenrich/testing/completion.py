"""Scripted completion answers for both prompt shapes: one request per (item, relation) answers
`{"tails": [...]}`; one request per item (pipeline/complete_item.py) answers one object keyed by
relation. A test writes its rule once, for one relation, and `per_relation` applies it to each
missing relation of a per-item prompt."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from kgenrich.pipeline.complete_item import KEYED_MARKER

Reply = Callable[[dict[str, Any]], str]
_MISSING = re.compile(r"^Missing relation: (\S+).*$", flags=re.M)


def is_per_item(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and KEYED_MARKER in messages[0].get("content", "")


def missing_relations(user: str) -> list[str]:
    """The relations a completion prompt asks for, in prompt order."""
    return _MISSING.findall(user)


def per_relation(reply: Reply) -> Reply:
    """`reply` (written for one-relation prompts) answering per-item prompts too: each missing
    relation gets `reply`'s tails for a copy of the body whose user message asks only for it."""

    def answer(body: dict[str, Any]) -> str:
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
