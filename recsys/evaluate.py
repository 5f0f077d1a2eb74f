"""RippleNet test AUC/ACC of one graph over several seeds, and the summary every caller reports
(`kgenrich recommend`, the `recommend` flow, scheduled enrich runs). Pure over its inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from kgenrich.recsys.data import RippleData
from kgenrich.recsys.params import RippleParams
from kgenrich.recsys.train import SELECTION, EvalResult, train_and_evaluate


def summarize(results: Sequence[EvalResult]) -> dict[str, Any]:
    """Per-seed test AUC/ACC and their mean and sample std (ddof=1; 0 for one seed)."""
    auc = np.array([r.test.auc for r in results], dtype=float)
    acc = np.array([r.test.acc for r in results], dtype=float)

    def std(a: np.ndarray) -> float:
        return float(a.std(ddof=1)) if a.size > 1 else 0.0

    return {
        "auc_mean": float(auc.mean()), "auc_std": std(auc),
        "acc_mean": float(acc.mean()), "acc_std": std(acc),
        "selection": SELECTION,
        "runs": [{"seed": r.seed, "auc": r.test.auc, "acc": r.test.acc,
                  "valid_auc": r.valid.auc, "best_epoch": r.best_epoch,
                  "n_test": r.n_test, "seconds_per_epoch": r.seconds_per_epoch}
                 for r in results],
    }


def graph_auc(data: RippleData, *, params: RippleParams, seeds: Sequence[int]) -> dict[str, Any]:
    """AUC/ACC of one graph: RippleNet per seed (6:2:2 split by that seed), summarized.

    A scheduled enrich run calls it on each new graph to track what the graph buys the
    recommender.
    """
    if not seeds:
        raise ValueError("need at least one seed")
    results = [train_and_evaluate(data, params=params, seed=s) for s in seeds]
    out = summarize(results)
    out |= {"n_users": data.n_users, "n_items": data.n_items,
            "n_ratings": int(data.ratings.shape[0]), "n_triples": int(data.kg.shape[0]),
            "params": dataclasses.asdict(params), "seeds": list(seeds)}
    return out


__all__ = ["graph_auc", "summarize"]
