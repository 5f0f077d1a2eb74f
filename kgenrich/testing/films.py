"""A synthetic film catalog and a deterministic model that reads it, served over HTTP.

`catalog_rows` makes seeded films whose texts name their director and star; `FilmServer` is a
`ScriptedServer` answering every stage from the prompt alone and counting requests per
(item, stage), so a benchmark can tell which item a re-sent request was for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kgenrich.testing.completion import choice_answer, is_choice, is_per_item, missing_relations
from kgenrich.testing.scripted_server import Fault, ScriptedServer

ITEM_RE = re.compile(r"\bi(\d{4})\b")
"""An item number as every prompt names it (`Film i0042`)."""
GENRES = ["Comedy", "Drama", "Thriller", "Horror", "Romance", "Action", "Animation", "Crime"]
COUNTRIES = ["USA", "UK", "France", "Japan", "Italy", "Germany"]

FaultChooser = Callable[[dict[str, Any]], Fault | None]
"""Picks a fault for one request body, or None to answer it normally."""


def person(n: int) -> str:
    """The `n`-th synthetic person's name (deterministic, unique below 1,440)."""
    first = ["Ann", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]
    last = ["Moss", "Nash", "Orr", "Pike", "Quinn", "Roth", "Shaw", "Tate", "Vance", "Wolfe"]
    return f"{first[n % len(first)]} {last[(n // len(first)) % len(last)]}{n // 120 or ''}"


def catalog_rows(n: int, *, seed: int = 0, changed: Sequence[int] = ()) -> list[dict[str, str]]:
    """`n` films; `changed` item numbers get an extra sentence (a catalog edit)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        director, star = person(rng.randrange(400)), person(rng.randrange(400))
        genre = rng.choice(GENRES)
        text = f"A {genre.lower()} story from {rng.choice(COUNTRIES)}. Starring {star}."
        if rng.random() < 0.7:  # the rest need completion of their director
            text = f"Directed by {director}. " + text
        if i in changed:
            text += " Restored edition."
        rows.append({"id": f"i{i:04d}", "title": f"Film i{i:04d}", "description": text,
                     "genre": genre, "country": rng.choice(COUNTRIES)})
    return rows


def write_catalog(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """Write `rows` as a CSV catalog with their keys as header; returns `path`."""
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def stage_of(system: str) -> str:
    """The pipeline stage a system prompt belongs to: discover, extract or complete."""
    if "named entities" in system:
        return "discover"
    if "extract facts" in system:
        return "extract"
    return "complete"


def deterministic_reply(body: dict[str, Any]) -> str:
    """A model that reads the text: entities and facts from its sentences, a completion tail
    from a hash of the item and relation."""
    if not body.get("messages"):  # a body cut off by a SIGKILL
        return "{}"
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    stage = stage_of(system)
    directed = re.search(r"Directed by ([A-Z][\w ]+?)\.", user)
    star = re.search(r"Starring ([A-Z][\w ]+?)\.", user)
    if stage == "discover":
        ents = [{"label": m.group(1), "type": "Person"} for m in (directed, star) if m]
        return json.dumps({"entities": ents})
    if stage == "extract":
        facts = []
        if directed:
            facts.append({"relation": "directed_by", "tail": directed.group(1),
                          "evidence": directed.group(0)})
        if star:
            facts.append({"relation": "starring", "tail": star.group(1),
                          "evidence": star.group(0)})
        return json.dumps({"facts": facts})
    item = ITEM_RE.search(user)

    def tail(relation: str) -> str:
        key = f"{item.group(0) if item else ''}:{relation}"
        return person(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 400)

    if is_per_item(body):
        return json.dumps({rel: [tail(rel)] for rel in missing_relations(user)})
    if is_choice(body):  # the hashed tail if it is offered, else none of these
        rels = missing_relations(user)
        return choice_answer([tail(rels[0] if rels else "")], user,
                             many='"choices"' in system)
    rel = re.search(r"Missing relation: (\w+)", user)
    return json.dumps({"tails": [tail(rel.group(1) if rel else "")]})


class FilmServer(ScriptedServer):
    """`ScriptedServer` with `deterministic_reply`, per-(item, stage) request counts, and an
    optional per-request fault chooser (asked before the queued faults)."""

    def __init__(self, fault: FaultChooser | None = None) -> None:
        super().__init__(reply=deterministic_reply)
        self.fault = fault

    def _next_fault(self, body: dict[str, Any]) -> Fault | None:
        if self.fault is not None:
            chosen = self.fault(body)
            if chosen is not None:
                return chosen
        return super()._next_fault(body)

    def mark(self) -> int:
        """The number of requests so far: pass it to `counts` to count only later ones."""
        with self._lock:
            return len(self.requests)

    def counts(self, since: int = 0) -> Counter[tuple[str, str]]:
        """Requests per (item id, stage) from the `since`-th on; `?` for no item."""
        with self._lock:
            recorded = self.requests[since:]
        out: Counter[tuple[str, str]] = Counter()
        for r in recorded:
            msgs = r.body.get("messages")
            if not msgs:
                continue
            item = ITEM_RE.search(msgs[-1]["content"]) or ITEM_RE.search(json.dumps(msgs))
            out[(f"i{item.group(1)}" if item else "?", stage_of(msgs[0]["content"]))] += 1
        return out


@contextmanager
def film_server(fault: FaultChooser | None = None) -> Iterator[FilmServer]:
    """A running `FilmServer` that stays quiet about clients killed mid-request."""
    with FilmServer(fault) as s:
        assert s._httpd is not None
        s._httpd.handle_error = lambda *a: None  # type: ignore[method-assign]  # killed clients
        yield s
