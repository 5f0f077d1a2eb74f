"""Read an answer key: hidden facts `item<TAB>relation<TAB>tail label` under a header line (the
demo's `answer_key.tsv`), used to score what a run proposes. Errors name file, line and field.

Answer keys that are whole knowledge graphs (the RKGE `imdb_auxiliary.txt` the benchmarks hide
facts from) are seed graphs: read them with `kg.io.seed.read_seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from kgenrich.errors import InputError
from kgenrich.kg.io._text import check_field, read_text, split_lines

_HEADERS = {(head, "relation", "tail") for head in ("head", "item", "item_id")}


class HiddenFact(NamedTuple):
    """One fact of an answer key: catalog item id, relation name, tail label."""

    item: str
    relation: str
    tail: str


def read_answer_key(path: str | Path) -> list[HiddenFact]:
    """The facts of an answer-key TSV, in file order (blank lines skipped)."""
    file = Path(path)
    name = str(file)
    lines = split_lines(read_text(file))
    if not lines:
        raise InputError("empty file: no header line", file=name, line=1, field="header")
    header = tuple(c.strip().lower() for c in lines[0].split("\t"))
    if header not in _HEADERS:
        raise InputError(
            "bad answer key header",
            file=name,
            line=1,
            field="header",
            expected="head<TAB>relation<TAB>tail",
            got=lines[0],
        )
    facts: list[HiddenFact] = []
    for line, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        parts = text.split("\t")
        if len(parts) != 3:
            raise InputError(
                "wrong number of columns",
                file=name,
                line=line,
                field="row",
                expected="3 tab-separated columns (head, relation, tail)",
                got=f"{len(parts)} columns",
            )
        for field, value in zip(("head", "relation", "tail"), parts, strict=True):
            check_field(value, file=name, line=line, field=field)
            if not value.strip():
                raise InputError("empty value", file=name, line=line, field=field)
        # Cells are kept as written: the demo key's labels are compared after normalisation.
        facts.append(HiddenFact(parts[0], parts[1], parts[2]))
    return facts


__all__ = ["HiddenFact", "read_answer_key"]
