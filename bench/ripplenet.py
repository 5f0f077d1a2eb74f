"""Benchmark RippleNet on a RippleNet-format folder (ratings_final.(txt|npy) + kg_final.txt).

Protocol (Wang et al., CIKM 2018, and the authors' code): per seed, a 6:2:2 random split of the
rating rows; ripple sets from the training positives only; the paper's hyperparameters
(``--preset book|movie``, each overridable); test AUC/ACC (ACC: sigmoid score >= 0.5) of the
epoch with the best validation AUC.  Prints a summary and writes JSON to ``--out`` and a
Markdown summary next to it (same name, ``.md``).

    .venv/bin/python bench/ripplenet.py --data ../shared/data/book-crossing --seeds 1,2,3 \
        --out reports/ripplenet_book.json
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import harness
from kgenrich.recsys.data import RippleData, load_ripplenet_dir  # noqa: E402
from kgenrich.recsys.params import PRESETS, RippleParams, preset  # noqa: E402
from kgenrich.recsys.train import SELECTION, EvalResult, train_and_evaluate  # noqa: E402

logger = logging.getLogger("bench.ripplenet")

# Table 3 of the paper, for the report only.
PAPER = {"book": {"auc": 0.729, "acc": 0.662}, "movie": {"auc": 0.921, "acc": 0.844}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with ratings_final + kg_final")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    p.add_argument("--out", type=Path, help="JSON output; the .md summary goes next to it")
    p.add_argument("--preset", choices=sorted(PRESETS), default="book")
    p.add_argument("--epochs", type=int, help="number of epochs (preset: 10)")
    p.add_argument("--dim", type=int)
    p.add_argument("--n-hop", type=int)
    p.add_argument("--n-memory", type=int)
    p.add_argument("--kge-weight", type=float)
    p.add_argument("--l2-weight", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--item-update-mode",
                   choices=["replace", "plus", "replace_transform", "plus_transform"])
    p.add_argument("--last-hop-only", action="store_true",
                   help="predict from the last hop's output only (using_all_hops=False)")
    p.add_argument(
        "--threads", type=int, default=2,
        help="torch intra-op threads (default 2); 1 and 2 gave identical results here, and on\n"
        "a machine busy with other jobs 1 thread was several times faster (oversubscription)",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def build_params(args: argparse.Namespace) -> RippleParams:
    return preset(
        args.preset,
        n_epoch=args.epochs,
        dim=args.dim,
        n_hop=args.n_hop,
        n_memory=args.n_memory,
        kge_weight=args.kge_weight,
        l2_weight=args.l2_weight,
        lr=args.lr,
        batch_size=args.batch_size,
        item_update_mode=args.item_update_mode,
        using_all_hops=False if args.last_hop_only else None,
    )


def summarize(results: list[EvalResult]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) over seeds."""

    def stats(name: str, values: list[float]) -> dict[str, float]:
        arr = np.asarray(values, dtype=np.float64)
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        return {f"{name}_mean": float(arr.mean()), f"{name}_std": std}

    out: dict[str, float] = {}
    out |= stats("test_auc", [r.test.auc for r in results])
    out |= stats("test_acc", [r.test.acc for r in results])
    out |= stats("test_auc_batch_mean", [r.test.auc_batch_mean for r in results])
    out |= stats("test_acc_batch_mean", [r.test.acc_batch_mean for r in results])
    out |= stats("valid_auc", [r.valid.auc for r in results])
    out |= stats("seconds_per_epoch", [r.seconds_per_epoch for r in results])
    return out


def markdown(report: dict[str, object], data: RippleData, results: list[EvalResult]) -> str:
    s = report["summary"]
    assert isinstance(s, dict)
    params = report["params"]
    assert isinstance(params, dict)
    paper = PAPER.get(str(report["preset"]))
    lines = [
        f"# RippleNet on `{report['dataset']}`",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Data: {data.n_users} users, {data.n_items} items, {data.ratings.shape[0]} rating rows, "
        f"{data.kg.shape[0]} KG triples, {data.n_entities} entities, {data.n_relations} "
        "relations.",
        "",
        "Protocol: 6:2:2 random split of the rating rows per seed; ripple sets from training "
        "positives only; rows of users without a training positive dropped (as the original); "
        f"{SELECTION}; ACC = share of rows where (sigmoid score >= 0.5) equals the label.",
        "",
        "Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in params.items()),
        "",
        "| seed | best epoch (by valid AUC) | valid AUC | test AUC | test ACC | "
        "test AUC (batch mean) | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.seed} | {r.best_epoch} | {r.valid.auc:.4f} | {r.test.auc:.4f} | "
            f"{r.test.acc:.4f} | {r.test.auc_batch_mean:.4f} | {r.seconds_per_epoch:.2f} |"
        )
    lines += [
        f"| **mean ± std** | | {s['valid_auc_mean']:.4f} | "
        f"**{s['test_auc_mean']:.4f} ± {s['test_auc_std']:.4f}** | "
        f"**{s['test_acc_mean']:.4f} ± {s['test_acc_std']:.4f}** | "
        f"{s['test_auc_batch_mean_mean']:.4f} | {s['seconds_per_epoch_mean']:.2f} |",
        "",
        "std is the sample standard deviation over seeds (ddof=1). \"Batch mean\" is the "
        "original code's metric: the mean of per-batch AUCs over consecutive 1024-row batches.",
        "",
    ]
    if paper:
        lines.append(
            f"Paper (Table 3, {report['preset']}): AUC {paper['auc']}, ACC {paper['acc']}. "
            f"Measured here: AUC {s['test_auc_mean']:.4f}, ACC {s['test_acc_mean']:.4f}."
        )
        lines.append("")
    env = report["environment"]
    assert isinstance(env, dict)
    lines += [
        f"Runtime: {s['seconds_per_epoch_mean']:.2f} s per training epoch (evaluation "
        f"excluded), {report['total_seconds']:.0f} s in total; peak resident memory "
        f"{report['peak_rss_mb']:.0f} MB (getrusage ru_maxrss, whole process).",
        f"Environment: torch {env['torch']}, {env['threads']} threads, Python {env['python']}, "
        f"{env['cpu_count']} CPUs; 1-minute load average {env['load_average_1min_start']:.1f} at "
        f"start, {env['load_average_1min_end']:.1f} at end (the machine was shared).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    params = build_params(args)
    start = time.perf_counter()
    load_before = os.getloadavg()
    data = load_ripplenet_dir(args.data)
    logger.info(
        "%s: %d users, %d items, %d rows, %d triples", args.data, data.n_users, data.n_items,
        data.ratings.shape[0], data.kg.shape[0],
    )
    results = []
    for seed in seeds:
        result = train_and_evaluate(data, params=params, seed=seed)
        results.append(result)
        print(
            f"seed {seed}: best valid AUC at epoch {result.best_epoch}: "
            f"test AUC {result.test.auc:.4f}  ACC {result.test.acc:.4f}  "
            f"({result.seconds_per_epoch:.2f} s/epoch)",
            flush=True,
        )
    summary = summarize(results)
    report: dict[str, object] = {
        "dataset": str(args.data),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
        "preset": args.preset,
        "params": dataclasses.asdict(params),
        "protocol": {
            "split": "6:2:2 random split of rating rows, one per seed",
            "ripple_sets": "from training positives only",
            "selection": SELECTION,
            "acc": "threshold 0.5 on sigmoid scores",
            "auc": "roc_auc_score over all test rows; *_batch_mean: the original code's mean of "
            "per-batch AUCs (1024-row batches)",
            "std": "sample standard deviation over seeds (ddof=1)",
        },
        "data": {
            "n_users": data.n_users, "n_items": data.n_items, "n_entities": data.n_entities,
            "n_relations": data.n_relations, "n_ratings": int(data.ratings.shape[0]),
            "n_triples": int(data.kg.shape[0]),
        },
        "seeds": seeds,
        "summary": summary,
        "paper": PAPER.get(args.preset),
        "runs": [r.to_dict() for r in results],
        "total_seconds": time.perf_counter() - start,
        "peak_rss_mb": harness.peak_rss_mb(),
        "environment": {
            "torch": torch.__version__, "numpy": np.__version__, "threads": args.threads,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            # Other jobs share the machine; the 1-minute load average puts s/epoch in context.
            "load_average_1min_start": load_before[0],
            "load_average_1min_end": os.getloadavg()[0],
        },
    }
    print(
        f"test AUC {summary['test_auc_mean']:.4f} ± {summary['test_auc_std']:.4f}  "
        f"ACC {summary['test_acc_mean']:.4f} ± {summary['test_acc_std']:.4f}  over seeds "
        f"{seeds} ({SELECTION}); {summary['seconds_per_epoch_mean']:.2f} s/epoch; "
        f"peak RSS {report['peak_rss_mb']:.0f} MB"
    )
    if args.out:
        harness.write_report(args.out, report, markdown(report, data, results))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
