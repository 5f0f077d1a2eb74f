"""Prefect wiring for the `recommend` flow: RippleNet AUC/ACC of a finished kgenrich export.

Reads `<run_dir>/ripplenet/` (kg_final.txt + item_index2entity_id.txt, and ratings_final.txt
when the run was given interactions; otherwise `interactions` supplies them), trains and
evaluates one RippleNet per seed, writes `<run_dir>/recommender.json` and publishes a markdown
artifact. Thin tasks around `recsys` (`recsys.export_data.load_export`, `recsys.train`,
`recsys.evaluate.summarize`).
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import json  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402

from kgenrich.kg.atomic import atomic_write  # noqa: E402
from kgenrich.kg.ratings import DEFAULT_RATING_THRESHOLD, DEFAULT_RATINGS_SEED  # noqa: E402
from kgenrich.recsys.data import RippleData  # noqa: E402
from kgenrich.recsys.evaluate import summarize  # noqa: E402
from kgenrich.recsys.export_data import load_export  # noqa: E402
from kgenrich.recsys.params import RippleParams  # noqa: E402
from kgenrich.recsys.params import preset as make_preset  # noqa: E402
from kgenrich.recsys.train import SELECTION, EvalResult, train_and_evaluate  # noqa: E402

RESULT_FILE = "recommender.json"


@task(name="load-ripplenet", cache_policy=NONE)
def load_task(run_dir: Path, *, interactions: Path | None, rating_threshold: float) -> RippleData:
    return load_export(run_dir, interactions=interactions, rating_threshold=rating_threshold,
                       seed=DEFAULT_RATINGS_SEED)


@task(name="train-evaluate", cache_policy=NONE)
def train_task(data: RippleData, *, params: RippleParams, seed: int) -> EvalResult:
    return train_and_evaluate(data, params=params, seed=seed)


@flow(name="recommend-evaluate", log_prints=False)
def evaluate_graph(
    run_dir: Path,
    interactions: Path | None = None,
    *,
    seeds: Sequence[int] = (1, 2, 3),
    preset: str = "movie",
    epochs: int | None = None,
    rating_threshold: float = DEFAULT_RATING_THRESHOLD,
) -> dict[str, Any]:
    """RippleNet test AUC/ACC (mean ± std over `seeds`) of the graph a kgenrich run exported;
    also written to `<run_dir>/recommender.json` and published as a markdown artifact."""
    run_dir = Path(run_dir)
    params = make_preset(preset, n_epoch=epochs)
    data = load_task(run_dir, interactions=interactions, rating_threshold=rating_threshold)
    results = [train_task(data, params=params, seed=s) for s in seeds]
    summary = summarize(results) | {
        "run_dir": str(run_dir), "preset": preset, "seeds": list(seeds),
        "n_users": data.n_users, "n_items": data.n_items,
        "n_ratings": int(data.ratings.shape[0]), "n_triples": int(data.kg.shape[0]),
    }
    with atomic_write(run_dir / RESULT_FILE) as f:
        f.write(json.dumps(summary, indent=2) + "\n")
    create_markdown_artifact(markdown=render_markdown(summary), key="recommender-auc",
                             description=f"RippleNet on {run_dir}")
    return summary


def render_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# RippleNet on `{summary['run_dir']}`",
        "",
        f"{summary['n_users']} users, {summary['n_items']} items, {summary['n_ratings']} rating "
        f"rows, {summary['n_triples']} KG triples; preset `{summary['preset']}`; {SELECTION}.",
        "",
        "| seed | best epoch | valid AUC | test AUC | test ACC |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['seed']} | {r['best_epoch']} | {r['valid_auc']:.4f} | {r['auc']:.4f} | "
              f"{r['acc']:.4f} |" for r in summary["runs"]]
    lines += [f"| **mean ± std** | | | **{summary['auc_mean']:.4f} ± {summary['auc_std']:.4f}** "
              f"| {summary['acc_mean']:.4f} ± {summary['acc_std']:.4f} |", ""]
    return "\n".join(lines)
