"""Log lines are short summaries, never the repr of a report object."""

from __future__ import annotations

import logging

import pytest

from kgenrich.verification.kge import LabeledTriple, train_verifier


def _graph() -> list[LabeledTriple]:
    return [(f"movie{i}", rel, f"{rel}{i % 4}") for i in range(16) for rel in ("genre", "director")]


def test_training_logs_a_summary_not_the_report(caplog: pytest.LogCaptureFixture) -> None:
    graph = _graph()
    with caplog.at_level(logging.INFO, logger="kgenrich.verification.kge"):
        train_verifier(graph[4:], valid=graph[:4], model="TransE", training="slcwa", dim=4,
                       epochs=2, eval_every=1, seed=0)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trained")]
    assert "Report(" not in line and "history" not in line
    assert "best valid MRR" in line and len(line) < 160
