"""Seconds per KGE training epoch with PyKEEN's LCWA data loader and with kgenrich's batched one
(`verification/kge.py` `_BatchedLCWATrainingLoop`: the same batches, one sparse slice per
batch instead of one per (head, relation) pair), and a cProfile of one epoch of each.

The graphs are `bench/fit_time.py`'s. Settings are the verifier's defaults (`VerifySettings`)
unless `--set` changes them; no early stopping, so every epoch is a training epoch.

    python bench/kge_epoch.py --graphs codex-s --epochs 3 --out reports/kge_epoch.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fit_time
import harness
from kgenrich.settings import VerifySettings
from kgenrich.verification.kge import train_verifier


def epoch_seconds(name: str, *, settings: VerifySettings, epochs: int, batched: bool,
                  profile: bool) -> dict[str, Any]:
    train = fit_time.GRAPHS[name]()[0]
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    kge = train_verifier(train, model=settings.model, dim=settings.dim, epochs=epochs,
                         seed=settings.seed, batched_loader=batched)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {"graph": name, "loader": "batched" if batched else "pykeen",
                           "triples": len(train), "epochs": epochs,
                           "batch size": kge.config.batch_size,
                           "seconds": round(seconds, 2),
                           "seconds per epoch": round(seconds / epochs, 2),
                           "final loss": kge.report.final_loss}
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(18)
        row["profile"] = out.getvalue()
    harness.print_row({k: v for k, v in row.items() if k != "profile"})
    return row


def markdown(report: dict[str, Any]) -> str:
    lines = ["# KGE training: seconds per epoch by data loader", "", f"`{report['command']}`",
             "", f"Machine: {report['machine']['cpu_model']}, {report['machine']['cpu_count']} "
             f"cores; settings {json.dumps(report['settings'])}.", "",
             "| graph | triples | loader | batch size | epochs | s/epoch | final loss |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['graph']} | {r['triples']} | {r['loader']} | {r['batch size']} | "
                     f"{r['epochs']} | {r['seconds per epoch']:.2f} | {r['final loss']:.5f} |")
    for r in report["rows"]:
        if "profile" in r:
            lines += ["", f"## cProfile, {r['graph']}, {r['loader']} loader", "", "```",
                      r["profile"].strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", default="codex-s")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile each run (slower)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--out", type=Path, default=harness.ROOT / "reports" / "kge_epoch.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = VerifySettings(**{k: json.loads(v) for k, _, v in
                                 (s.partition("=") for s in args.set)})
    # imports and first-use costs (torch.optim, PyKEEN's resolvers) outside the timed runs
    train_verifier([(f"m{i}", "r", f"g{i % 3}") for i in range(30)], model=settings.model,
                   dim=settings.dim, epochs=1, seed=0)
    rows = [epoch_seconds(name, settings=settings, epochs=args.epochs, batched=batched,
                          profile=args.profile)
            for name in args.graphs.split(",") for batched in (False, True)]
    report = {"command": shlex.join(["python", "bench/kge_epoch.py", *sys.argv[1:]]),
              "machine": harness.machine(),
              "settings": settings.model_dump(mode="json", include={"model", "dim", "seed"}),
              "rows": rows}
    harness.write_report(args.out, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
