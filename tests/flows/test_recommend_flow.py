"""The recommend flow under Prefect's test harness, on a tiny RippleNet export with a planted
signal: two clusters of items (each its own genre and directors), users who like one cluster."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from kgenrich.cli_recommend import evaluate_command
from kgenrich.flows.recommend import RESULT_FILE, evaluate_graph
from kgenrich.kg.export.ripplenet import Interaction, write_ripplenet
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.recsys.export_data import load_export

N_ITEMS = 40  # items i0..i19 form cluster 0, i20..i39 cluster 1
N_USERS = 60


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _graph() -> tuple[list[str], list[Entity], list[Triple]]:
    items = [f"i{n}" for n in range(N_ITEMS)]
    prov = Provenance(source=SourceKind.SEED, decision=Decision.TRUSTED)
    entities = [Entity(id=f"item/{i}", label=i, type="Movie") for i in items]
    entities += [Entity(id=f"genre/g{c}", label=f"G{c}", type="Genre") for c in (0, 1)]
    entities += [Entity(id=f"person/d{c}{k}", label=f"D{c}{k}", type="Person")
                 for c in (0, 1) for k in range(3)]
    triples = []
    for n, i in enumerate(items):
        c = n // 20
        triples.append(Triple(head=f"item/{i}", relation="has_genre", tail=f"genre/g{c}",
                              provenance=prov))
        triples.append(Triple(head=f"item/{i}", relation="directed_by",
                              tail=f"person/d{c}{n % 3}", provenance=prov))
    return items, entities, triples


def _interactions() -> list[Interaction]:
    rng = random.Random(0)
    out = []
    for u in range(N_USERS):
        own = range(0, 20) if u % 2 == 0 else range(20, 40)
        for n in rng.sample(list(own), 14):
            out.append(Interaction(user=f"u{u}", item=f"i{n}", rating=5.0))
    return out


def _export(run_dir: Path, *, with_ratings: bool) -> None:
    items, entities, triples = _graph()
    write_ripplenet(run_dir / "ripplenet", entities=entities, triples=triples, items=items,
                    interactions=_interactions() if with_ratings else None)


def test_flow_scores_above_chance_and_writes_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _export(run_dir, with_ratings=True)
    summary = evaluate_graph(run_dir, seeds=(1, 2), preset="movie", epochs=8)
    assert summary["n_triples"] == 2 * N_ITEMS
    assert len(summary["runs"]) == 2
    assert summary["auc_mean"] > 0.6, summary
    written = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    assert written["auc_mean"] == pytest.approx(summary["auc_mean"])
    assert [r["seed"] for r in written["runs"]] == [1, 2]


def test_ratings_come_from_interactions_when_the_export_has_none(tmp_path: Path) -> None:
    with_r, without_r = tmp_path / "a", tmp_path / "b"
    _export(with_r, with_ratings=True)
    _export(without_r, with_ratings=False)
    inter = tmp_path / "ratings.csv"
    inter.write_text("user_id,item_id,rating\n" + "".join(
        f"{x.user},{x.item},{x.rating}\n" for x in _interactions()), encoding="utf-8")
    assert not (without_r / "ripplenet" / "ratings_final.txt").exists()
    a = load_export(with_r)
    b = load_export(without_r, interactions=inter)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(a.kg, b.kg)


def test_evaluate_command_writes_json_and_reports_bad_input(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _export(run_dir, with_ratings=True)
    out = tmp_path / "auc.json"
    assert evaluate_command(run_dir, preset="movie", seeds=(1,), out_json=out, epochs=2) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["runs"][0]["seed"] == 1
    (run_dir / "ripplenet" / "kg_final.txt").write_text("0\t0\n", encoding="utf-8")
    assert evaluate_command(run_dir, preset="movie", seeds=(1,), out_json=None) == 2
