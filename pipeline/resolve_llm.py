"""The LLM's say on an ambiguous pair of entity resolution: do two labels of one type name the
same entity? Messages are built and answers parsed here (pure); `ask_same` makes the one call."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kgenrich.pipeline.llm.base import LLM, LLMRequest, Message

STAGE = "resolve"
PROMPT_VERSION = "resolve-same-v1"


class SameEntity(BaseModel):
    """The answer schema: whether both labels name one entity."""

    model_config = ConfigDict(extra="forbid")

    same: bool


def same_entity_messages(label: str, other: str, *, type_: str) -> tuple[Message, ...]:
    """The question for one pair."""
    return (
        {"role": "system", "content": "You decide whether two names refer to the same real "
         "entity. Answer JSON {\"same\": true} or {\"same\": false}. Say true only if you are "
         "confident: different people or works that share a name are not the same."},
        {"role": "user", "content": f"Type: {type_}\nName A: {label}\nName B: {other}\n"
         "Do A and B name the same entity?"},
    )


def ask_same(llm: LLM, label: str, other: str, *, type_: str) -> bool | None:
    """True or False as the model answers; None when it gave no valid answer."""
    answer = llm.complete(LLMRequest(messages=same_entity_messages(label, other, type_=type_),
                                     schema=SameEntity, max_tokens=16, stage=STAGE))
    return answer.value.same if answer.value is not None else None
