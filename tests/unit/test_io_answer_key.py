"""The answer-key reader: the demo's hidden facts, and errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import InputError
from kgenrich.kg.io.answer_key import HiddenFact, read_answer_key

DEMO_KEY = Path(__file__).resolve().parents[2] / "data" / "demo" / "answer_key.tsv"


def test_demo_answer_key_reads_as_hidden_facts() -> None:
    key = read_answer_key(DEMO_KEY)
    assert key[0] == HiddenFact("wd622769", "directed_by", "Zack Snyder")
    assert key[0] == ("wd622769", "directed_by", "Zack Snyder")  # still a plain triple
    assert {f.relation for f in key} <= {"directed_by", "has_genre"}
    body = [ln for ln in DEMO_KEY.read_text(encoding="utf-8").splitlines()[1:] if ln.strip()]
    assert len(key) == len(body)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("", 1, "header", "empty file"),
        ("item\tvalue\n", 1, "header", "bad answer key header"),
        ("head\trelation\ttail\nm1\tdirected_by\n", 2, "row", "wrong number of columns"),
        ("head\trelation\ttail\nm1\tdirected_by\tA\n\nm2\t\tB\n", 4, "relation", "empty value"),
    ],
)
def test_errors_name_file_line_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / "key.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_answer_key(path)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), line, field)
