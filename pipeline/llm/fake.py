"""`FakeLLM`: scripted answers through the real parse/repair/cache/accounting path, for tests.

Also `minimal_instance`, the smallest JSON value a JSON schema accepts, used by the `fake`
backend so a flow can run end to end offline with no script.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kgenrich.errors import LLMError
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.core import BaseLLM, RawReply

Responder = Callable[[Sequence[Message], dict[str, Any]], "str | RawReply"]
"""(messages, JSON schema) -> the model's text (or a whole reply, e.g. with log-probabilities)."""

Script = Responder | Sequence[str | RawReply | LLMError]


def _count_tokens(text: str) -> int:
    # a stand-in for a tokenizer: deterministic and roughly proportional to length
    return len(text.split())


class FakeLLM(BaseLLM):
    """A backend whose raw call returns scripted text.

    `script` is either a callable `(messages, json_schema) -> str` or a list of replies used in
    order (an `LLMError` in the list is raised instead, to simulate an endpoint failure).
    `raw_calls` records every raw call's messages, in call order.
    """

    def __init__(
        self,
        script: Script,
        *,
        # A test double's own defaults (sequential, no cache, no budget), not the configured
        # system's: `make_llm` passes the settings' concurrency and budgets.
        model: str = "fake",
        cache_dir: Path | None = None,
        concurrency: int = 1,
        max_calls: int | None = None,
        max_tokens_total: int | None = None,
    ) -> None:
        super().__init__(
            model=model,
            cache_dir=cache_dir,
            concurrency=concurrency,
            max_calls=max_calls,
            max_tokens_total=max_tokens_total,
        )
        self._responder: Responder | None = script if callable(script) else None
        self._replies: list[str | RawReply | LLMError] = [] if callable(script) else list(script)
        self._script_lock = threading.Lock()
        self.raw_calls: list[tuple[Message, ...]] = []

    def __repr__(self) -> str:
        return f"FakeLLM(model={self.model_id!r})"

    def _raw_call(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any],
        temperature: float,
        seed: int | None,
        max_tokens: int,
        top_logprobs: int,
    ) -> RawReply:
        with self._script_lock:
            self.raw_calls.append(tuple(messages))
            if self._responder is None:
                if not self._replies:
                    raise LLMError("FakeLLM ran out of scripted replies")
                scripted = self._replies.pop(0)
        if self._responder is not None:
            scripted = self._responder(messages, json_schema)
        if isinstance(scripted, LLMError):
            raise scripted
        if isinstance(scripted, RawReply):
            return scripted
        prompt = sum(_count_tokens(m["content"]) for m in messages)
        return RawReply(scripted, prompt_tokens=prompt, completion_tokens=_count_tokens(scripted))


def minimal_instance(json_schema: dict[str, Any]) -> Any:
    """The smallest value a (pydantic-generated) JSON schema accepts: defaults, first enum
    member, empty strings and lists, zero, required properties only."""
    defs: dict[str, Any] = json_schema.get("$defs", {})

    def build(node: dict[str, Any], depth: int) -> Any:
        if depth > 20:
            raise ValueError("schema nests too deeply for a minimal instance")
        if "$ref" in node:
            return build(defs[node["$ref"].rsplit("/", 1)[-1]], depth + 1)
        if "default" in node:
            return node["default"]
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return node["enum"][0]
        for combinator in ("anyOf", "oneOf", "allOf"):
            if combinator in node:
                options = node[combinator]
                if any(o.get("type") == "null" for o in options):
                    return None
                return build(options[0], depth + 1)
        kind = node.get("type", "object")
        if isinstance(kind, list):
            kind = "null" if "null" in kind else kind[0]
        if kind == "object":
            props: dict[str, Any] = node.get("properties", {})
            return {name: build(props[name], depth + 1) for name in node.get("required", [])}
        if kind == "array":
            items = node.get("items", {})
            return [build(items, depth + 1) for _ in range(node.get("minItems", 0))]
        if kind == "string":
            return "x" * node.get("minLength", 0)
        if kind in ("integer", "number"):
            return node.get("minimum", node.get("exclusiveMinimum", -1) + 1)
        if kind == "boolean":
            return False
        return None

    return build(json_schema, 0)


def schema_default_responder(messages: Sequence[Message], json_schema: dict[str, Any]) -> str:
    """A `Responder` that answers every request with `minimal_instance` of its schema."""
    return json.dumps(minimal_instance(json_schema))
