"""Choose the verifier's fit defaults on CoDEx-S validation, for accuracy per CPU-minute
(issue 12, item 3).

Each configuration (a few `VerifySettings` overrides) is fitted through the product's own
`scorers.fit_scorer` on CoDEx-S's training triples, once per seed. Selection reads only the
validation split: triple-classification accuracy of P(true) >= 0.5 on the valid positives and
hard negatives, and the fit's CPU seconds. The rule, fixed before any run: **the cheapest
configuration (mean CPU seconds) whose mean validation accuracy is within `--tolerance`
(0.005) of the best mean**. Test figures (accuracy on test positives and negatives, filtered
MRR) are printed for every configuration but never read by the rule.

    python bench/kge_defaults.py --seeds 0,1 --out reports/kge_defaults.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import fit_time
import harness
from kgenrich.settings import VerifySettings
from kgenrich.verification.scorers import fit_scorer
from kgenrich.verification.triples import LabeledTriple

#: name -> overrides of the shipped defaults ("default" is none: what `kgenrich run` uses).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "dim32": {"dim": 32},
    "dim128": {"dim": 128},
    "epochs30": {"epochs": 30},
    "epochs120": {"epochs": 120},
    "slcwa-neg32": {"training": "slcwa"},
    "slcwa-neg8": {"training": "slcwa", "negatives": 8},
}


def codex_s() -> dict[str, list[LabeledTriple]]:
    """CoDEx-S's five splits, read once for every fit."""
    root = fit_time.DATA / "codex-s"
    return {n: fit_time._read((root / f"{n}.txt").read_text(encoding="utf-8").splitlines())
            for n in ("train", "valid", "test", "valid_negatives", "test_negatives")}


def run_one(name: str, overrides: dict[str, Any], seed: int, *,
            split: dict[str, list[LabeledTriple]], lp_limit: int) -> dict[str, Any]:
    settings = VerifySettings(**{**overrides, "seed": seed})
    start, cpu = time.perf_counter(), harness.cpu_seconds()
    scorer = fit_scorer(settings.kge_scorer, split["train"], settings=settings, labels={})
    row: dict[str, Any] = {
        "config": name, "seed": seed, "overrides": overrides,
        "seconds": round(time.perf_counter() - start, 1),
        "cpu seconds": round(harness.cpu_seconds() - cpu, 1),
        "epochs run": scorer.metrics.get("epochs run"),
        "valid accuracy": round(fit_time.classification_accuracy(
            scorer, split["valid"], split["valid_negatives"]), 4),
        "test accuracy": round(fit_time.classification_accuracy(
            scorer, split["test"], split["test_negatives"]), 4),
    }
    kge = scorer.kge  # type: ignore[attr-defined]
    lp = kge.evaluate_link_prediction(split["valid"][:lp_limit], filter_triples=split["test"])
    row["valid MRR"] = round(lp.mrr, 4)
    lp = kge.evaluate_link_prediction(split["test"][:lp_limit], filter_triples=split["valid"])
    row["test MRR"] = round(lp.mrr, 4)
    harness.print_row(row)
    return row


def choose(rows: list[dict[str, Any]], tolerance: float) -> tuple[str, dict[str, dict[str, float]]]:
    """The rule of the module doc, on validation figures only."""
    means: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        means[name] = {k: float(np.mean([r[k] for r in mine]))
                       for k in ("cpu seconds", "seconds", "valid accuracy", "valid MRR",
                                 "test accuracy", "test MRR")}
    best = max(m["valid accuracy"] for m in means.values())
    eligible = [n for n, m in means.items() if m["valid accuracy"] >= best - tolerance]
    return min(eligible, key=lambda n: means[n]["cpu seconds"]), means


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# Verifier defaults chosen on CoDEx-S validation", "", f"`{report['command']}`", "",
             f"Machine: {m['cpu_model']}, {m['cpu_count']} cores. Seeds {report['seeds']}; "
             f"every fit is the product's `fit_scorer` (stacked scorer unless overridden) on "
             f"CoDEx-S train. Rule: the cheapest mean CPU time among configurations within "
             f"{report['tolerance']} of the best mean validation accuracy. Test columns are "
             "not read by the rule.", "",
             "| config | overrides | CPU s | wall s | valid acc | valid MRR | test acc | "
             "test MRR |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, mean in report["means"].items():
        mark = " **chosen**" if name == report["chosen"] else ""
        lines.append(f"| {name}{mark} | `{json.dumps(CONFIGS.get(name, {}))}` | "
                     f"{mean['cpu seconds']:.0f} | {mean['seconds']:.0f} | "
                     f"{mean['valid accuracy']:.4f} | {mean['valid MRR']:.3f} | "
                     f"{mean['test accuracy']:.4f} | {mean['test MRR']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, of {list(CONFIGS)}")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--lp-limit", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=harness.ROOT / "reports" /
                        "kge_defaults.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")
    if not (fit_time.DATA / "codex-s").is_dir():
        parser.error(f"{fit_time.DATA / 'codex-s'} not found: CoDEx-S comes from ../shared/data")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    split = codex_s()
    rows = [run_one(n, CONFIGS[n], s, split=split, lp_limit=args.lp_limit)
            for s in seeds for n in names]
    chosen, means = choose(rows, args.tolerance)
    report = {"command": shlex.join(["python", "bench/kge_defaults.py", *sys.argv[1:]]),
              "machine": harness.machine(), "seeds": seeds, "tolerance": args.tolerance,
              "rows": rows, "means": means, "chosen": chosen}
    harness.write_report(args.out, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
