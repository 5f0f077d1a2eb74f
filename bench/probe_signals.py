"""Which signal ranks the LLM's completions: the flow's calibration probes on MovieLens-100K,
read from the `calibration_probes.jsonl` a real `enrich` run writes (issue 10, item 6).

It runs `enrich` (the code path of `kgenrich run`, via `bench/enrichment_value.run_flow`) on
the seed-1 hidden KG of the new-item protocol with `verify.probe_items` probes and nothing else
to complete, then, per relation, counts how many of the top-n probe answers are right when they
are ranked by the flow's confidence (KGE probability x agreement), by the KGE probability alone
and by agreement alone, and where the pessimistic threshold of `verification.probe_fit` (right
/ (n + 1) >= target) would accept for each ranking. With `--probes FILE` it reads an existing
run's file instead of running the flow.

    .venv/bin/python bench/probe_signals.py --set verify.probe_items=100 \\
        --set llm.cache_dir=/tmp/llmcache --work /tmp/probe_signals
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import enrichment_value as ev
import numpy as np

import harness
from kgenrich.recsys.protocol import kg_variants, new_item_split
from kgenrich.settings import load_settings
from kgenrich.verification.probe_fit import ProbeLabel, fit_probe_calibration, pessimistic_threshold

SIGNALS = ("confidence", "kge_probability", "agreement")
TOP = (5, 10, 15, 20, 30, 40, 60, 80)


def run_probes(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    settings = load_settings(None, flags={}, assignments=[
        "discover.use_llm=false", "discover.use_spacy=false", "extract.enabled=false",
        *args.assignments])
    bench_args = ev.parse_args([])
    inputs = ev.load(bench_args)
    split = new_item_split(inputs.data.ratings, seed=args.seed)
    _, hidden = kg_variants(inputs.kg.rows, new_items=split.new_items, hide_fraction=0.5,
                            seed=args.seed)
    first = np.random.default_rng([args.seed, 0x41]).permutation(split.new_items)[:1]
    args.work.mkdir(parents=True, exist_ok=True)
    seed_file = args.work / "hidden_seed.tsv"
    ev.write_hidden_seed(seed_file, inputs, hidden.kept)
    run = ev.run_flow(bench_args, args.work, seed_file=seed_file,
                      items=[inputs.tokens[i] for i in first],
                      relations=list(inputs.kg.relations), settings=settings, name="llm")
    stage = next(s for s in run.report["stages"] if s["stage"] == "calibration probes")
    return args.work / "llm" / "calibration_probes.jsonl", stage


def analyse(rows: list[dict[str, Any]], target: float, min_probes: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rel in sorted({r["relation"] for r in rows}):
        mine = [r for r in rows if r["relation"] == rel and r["kge_probability"] is not None]
        rec: dict[str, Any] = {"scored": len(mine), "correct": sum(r["correct"] for r in mine)}
        for sig in SIGNALS:
            ranked = sorted(mine, key=lambda r: -float(r[sig] or 0.0))  # noqa: B023
            hits = np.cumsum([r["correct"] for r in ranked])
            at, prec, n, right = pessimistic_threshold(
                [(float(r[sig] or 0.0), bool(r["correct"])) for r in mine],
                target_precision=target)
            rec[sig] = {"top": {n_: int(hits[n_ - 1]) for n_ in TOP if n_ <= len(ranked)},
                        "accept_at": None if math.isinf(at) else at,
                        "accepted": n, "accepted_correct": right}
        out[rel] = rec
    # what the flow itself now chooses from these probes: signal, threshold, held-out check
    labels = [ProbeLabel(relation=r["relation"], item_id=str(r["item_id"]),
                         signals={s: math.nan if r[s] is None else float(r[s]) for s in SIGNALS},
                         correct=bool(r["correct"]))
              for r in rows if r["kge_probability"] is not None]
    for rel, cal in fit_probe_calibration(labels, target_precision=target,
                                          min_probes=min_probes).items():
        out[rel]["flow_choice"] = cal.summary()
    return out


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# Calibration probes on MovieLens-100K: which signal ranks the answers", "",
             f"`{rep['command']}`", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| relation | scored probes | right | ranked by | right in top 5/10/15/20/30/40 | "
             f"accepted at precision {rep['target']} (pessimistic) |",
             "|---|---:|---:|---|---|---|"]
    for rel, rec in rep["relations"].items():
        for sig in SIGNALS:
            s = rec[sig]
            tops = "/".join(str(s["top"].get(n, "-")) for n in (5, 10, 15, 20, 30, 40))
            acc = ("none" if s["accept_at"] is None else
                   f"{s['accepted_correct']}/{s['accepted']} at >= {s['accept_at']:.3f}")
            lines.append(f"| {rel} | {rec['scored']} | {rec['correct']} | {sig} | {tops} | "
                         f"{acc} |")
    lines += ["", "What the flow chooses from these probes (`fit_probe_calibration`: the signal "
              "accepting the most right probes, its threshold, and the held-out check that redoes "
              "the choice on each half of the probe items and applies it to the other):", "",
              "| relation | signal | accept at | probes accepted (right) | held out accepted "
              "(right) | overruled |", "|---|---|---:|---:|---:|---|"]
    for rel, rec in rep["relations"].items():
        c = rec.get("flow_choice")
        if c is None:
            continue
        at = "never" if c["accept_at"] is None else f"{c['accept_at']:.3f}"
        lines.append(f"| {rel} | {c['signal']} | {at} | {c['probes_accepted']} "
                     f"({c['probes_accepted_correct']}) | {c['held_out_accepted']} "
                     f"({c['held_out_correct']}) | {c['overruled'] or ''} |")
    lines += ["", "## Verdict", "", *rep["verdict"], "", "## Machine", "",
              f"`{json.dumps(rep['machine'])}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probes", type=Path, default=None,
                   help="an existing calibration_probes.jsonl (skip the flow)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--set", action="append", default=[], dest="assignments")
    p.add_argument("--work", type=Path, default=Path("/tmp/kgenrich-probe-signals"))
    p.add_argument("--out", type=Path,
                   default=harness.ROOT / "reports" / "probe_signals_ml100k.json")
    args = p.parse_args(argv)
    start = time.perf_counter()
    stage: dict[str, Any] | None = None
    path = args.probes
    if path is None:
        path, stage = run_probes(args)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rels = analyse(rows, args.target)
    verdict = []
    for rel, rec in rels.items():
        best = max(SIGNALS, key=lambda s: rec[s]["accepted_correct"])  # noqa: B023
        verdict.append(
            f"- {rel}: {rec['correct']} of {rec['scored']} scored probe answers right; the "
            f"flow's confidence accepts {rec['confidence']['accepted_correct']} right at the "
            f"target, the best single ranking ({best}) "
            f"{rec[best]['accepted_correct']} right of {rec[best]['accepted']}.")
    rep = {"command": " ".join([".venv/bin/python bench/probe_signals.py",
                                *(argv if argv is not None else sys.argv[1:])]),
           "target": args.target, "probe_stage": stage, "relations": rels, "verdict": verdict,
           "machine": harness.machine(wall_seconds=round(time.perf_counter() - start, 1))}
    harness.write_report(args.out, rep, markdown(rep))
    print("\n".join(verdict))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    sys.exit(main())
