"""Bodies of `kgenrich recommend train|evaluate` (the Typer wiring is in `kgenrich/cli.py`): read
an export through `recsys`, train or evaluate RippleNet, print a table. Each returns the process
exit code: 0 ok, 2 bad input (the message names file, line, field)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kgenrich.errors import KgenrichError
from kgenrich.kg.ratings import DEFAULT_RATING_THRESHOLD, DEFAULT_RATINGS_SEED
from kgenrich.recsys.evaluate import graph_auc, summarize
from kgenrich.recsys.export_data import load_export
from kgenrich.recsys.params import preset as make_preset
from kgenrich.recsys.train import SELECTION, save_model, train_and_evaluate

console = Console()

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
        params = make_preset(preset, n_epoch=epochs)
        data = load_export(data_dir, interactions=interactions,
                           rating_threshold=DEFAULT_RATING_THRESHOLD, seed=DEFAULT_RATINGS_SEED)
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
        params = make_preset(preset, n_epoch=epochs)
        data = load_export(data_dir, interactions=interactions,
                           rating_threshold=DEFAULT_RATING_THRESHOLD, seed=DEFAULT_RATINGS_SEED)
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


__all__ = ["evaluate_command", "results_table", "train_command"]
