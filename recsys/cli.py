"""Bodies of `kgenrich recommend train|evaluate`, as plain functions (the Typer wiring lives in
`kgenrich/cli.py`), plus the helpers the `recommend` flow shares with them.

`data_dir` is a RippleNet folder (`ratings_final.(txt|npy)` + `kg_final.txt`) or a kgenrich
export folder holding one under `ripplenet/`. An export written without interactions has no
`ratings_final.txt`; then `interactions` (a RecBole `.inter` or CSV/TSV) supplies them, turned
into RippleNet rows by the exporter's own rule (`kg.export.ripplenet.write_ripplenet`).
Commands return the process exit code: 0 ok, 2 bad input (the message names file, line, field).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from kgenrich.errors import KgenrichError
from kgenrich.recsys.data import RippleData, load_kg, load_ratings, load_ripplenet_dir, make_ripple_data
from kgenrich.recsys.errors import DataFormatError
from kgenrich.recsys.params import RippleParams, preset
from kgenrich.recsys.train import SELECTION, EvalResult, save_model, train_and_evaluate

logger = logging.getLogger(__name__)

console = Console()


def ripplenet_dir(data_dir: str | Path) -> Path:
    """The RippleNet folder inside a kgenrich export (`<run>/ripplenet/`), or `data_dir`."""
    folder = Path(data_dir)
    sub = folder / "ripplenet"
    return sub if (sub / "kg_final.txt").exists() else folder


def load_export(
    data_dir: str | Path, *, interactions: str | Path | None = None,
    rating_threshold: float = 4.0, seed: int = 0,
) -> RippleData:
    """Ratings and KG of a RippleNet folder or kgenrich export (see the module docstring)."""
    folder = ripplenet_dir(data_dir)
    has_ratings = any((folder / f"ratings_final.{ext}").exists() for ext in ("txt", "npy"))
    if has_ratings or interactions is None:
        return load_ripplenet_dir(folder)
    index = folder / "item_index2entity_id.txt"
    if not index.exists():
        raise DataFormatError(file=str(folder), line=None, field="item_index2entity_id",
                              expected="item_index2entity_id.txt next to kg_final.txt",
                              got="no such file")
    from kgenrich.flows.io import read_interactions
    from kgenrich.kg.export.ripplenet import write_ripplenet

    items = _item_order(index)
    with tempfile.TemporaryDirectory(prefix="kgenrich-ratings-") as tmp:
        # The exporter's own RippleNet preprocessing, with the run's item order: item ints
        # then match kg_final.txt.
        write_ripplenet(Path(tmp) / "r", entities=[], triples=[], items=items,
                        interactions=read_interactions(Path(interactions)),
                        rating_threshold=rating_threshold, seed=seed)
        ratings = load_ratings(Path(tmp) / "r" / "ratings_final.txt")
    kg = load_kg(folder / "kg_final.txt")
    return make_ripple_data(ratings=ratings, kg=kg, source=str(folder))


def _item_order(path: Path) -> list[str]:
    """Item ids of `item_index2entity_id.txt` by their entity int (0..n-1)."""
    pairs: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            pairs.append((int(parts[1]), parts[0]))
        except (IndexError, ValueError) as err:
            raise DataFormatError(file=str(path), line=number, field="entity_id",
                                  expected="item<TAB>int", got=repr(line)) from err
    pairs.sort()
    if [n for n, _ in pairs] != list(range(len(pairs))):
        raise DataFormatError(file=str(path), line=None, field="entity_id",
                              expected="items numbered 0..n-1", got="gaps or duplicates")
    return [item for _, item in pairs]


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

    Pure over its inputs (no files): a scheduled enrich run calls it on each new graph to
    track what the graph buys the recommender.
    """
    if not seeds:
        raise ValueError("need at least one seed")
    results = [train_and_evaluate(data, params=params, seed=s) for s in seeds]
    out = summarize(results)
    out |= {"n_users": data.n_users, "n_items": data.n_items,
            "n_ratings": int(data.ratings.shape[0]), "n_triples": int(data.kg.shape[0]),
            "params": _params_dict(params), "seeds": list(seeds)}
    return out


def _params_dict(params: RippleParams) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(params)


def results_table(summary: dict[str, Any], *, title: str) -> Table:
    table = Table(title=title)
    for col in ("seed", "best epoch", "valid AUC", "test AUC", "test ACC"):
        table.add_column(col, justify="right")
    for r in summary["runs"]:
        table.add_row(str(r["seed"]), str(r["best_epoch"]), f"{r['valid_auc']:.4f}",
                      f"{r['auc']:.4f}", f"{r['acc']:.4f}")
    table.add_row("mean ± std", "", "",
                  f"{summary['auc_mean']:.4f} ± {summary['auc_std']:.4f}",
                  f"{summary['acc_mean']:.4f} ± {summary['acc_std']:.4f}", style="bold")
    return table


def train_command(
    data_dir: Path, *, preset: str = "movie", seed: int = 0, epochs: int | None = None,
    out_model: Path, interactions: Path | None = None,
) -> int:
    """Train RippleNet on `data_dir` (6:2:2 split by `seed`), keep the epoch-best metrics,
    save the model to `out_model` and print a table. Returns the exit code."""
    try:
        params = _preset(preset, epochs)
        data = load_export(data_dir, interactions=interactions)
        result = train_and_evaluate(data, params=params, seed=seed, keep_model=True)
    except (KgenrichError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        return 2
    assert result.model is not None
    out_model.parent.mkdir(parents=True, exist_ok=True)
    save_model(result.model, out_model)
    console.print(results_table(summarize([result]), title=f"RippleNet on {data_dir}"))
    console.print(f"model written to {out_model} ({SELECTION})")
    return 0


def evaluate_command(
    data_dir: Path, *, preset: str = "movie", seeds: Sequence[int] = (1, 2, 3),
    out_json: Path | None = None, epochs: int | None = None, interactions: Path | None = None,
) -> int:
    """Train and evaluate RippleNet once per seed on `data_dir`; print a table and write the
    summary to `out_json` (when given). Returns the exit code."""
    try:
        params = _preset(preset, epochs)
        data = load_export(data_dir, interactions=interactions)
        summary = graph_auc(data, params=params, seeds=seeds)
    except (KgenrichError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        return 2
    console.print(results_table(summary, title=f"RippleNet on {data_dir}"))
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(summary | {"data": str(data_dir)}, indent=2) + "\n",
                            encoding="utf-8")
        console.print(f"wrote {out_json}")
    return 0


def _preset(name: str, epochs: int | None) -> RippleParams:
    return preset(name, n_epoch=epochs)
