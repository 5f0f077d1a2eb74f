"""Verifier fit time against graph size: cold, cached and warm-started, with the accuracy each
reaches (issue 12, item 3).

For each graph G (training triples of a real data set, or a synthetic one): G0 is G minus a
seeded `--change / 2` share of it, and G1 is G0 with another `--change / 2` of its triples
removed and the first share added back, so G1 differs from G0 by `--change` of its triples, as a
nightly catalog update would. Then, through the product's own `verification.cache.cached_fit`
and `scorers.fit_scorer` (the code path of `kgenrich run`):

1. **cold**: fit on G0 in an empty cache folder;
2. **cached**: fit on G0 again (the cache's exact hit);
3. **warm**: fit on G1 (the cache's warm start from step 1);
4. **cold G1**: fit on G1 from scratch, the reference the warm fit must match.

Accuracy, for the fits on G1 and G0: filtered link prediction (MRR, Hits@10) on the data set's
test triples, and, where the data set has hard negatives (CoDEx), triple-classification
accuracy of P(true) >= 0.5 on test positives and negatives. The holdout accuracy each fit
reports is kept too.

    python bench/fit_time.py --graphs codex-s --out reports/fit_time.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shlex
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import harness
from kgenrich.settings import VerifySettings
from kgenrich.verification.cache import cached_fit
from kgenrich.verification.scorers import Scorer, fit_scorer
from kgenrich.verification.triples import LabeledTriple

DATA = harness.ROOT.parent / "shared" / "data"
Graph = tuple[list[LabeledTriple], list[LabeledTriple], list[LabeledTriple],
              list[LabeledTriple]]  # train, valid, test, test negatives


def _read(lines: Sequence[str]) -> list[LabeledTriple]:
    out: list[LabeledTriple] = []
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
    return out


def codex_s() -> Graph:
    root = DATA / "codex-s"
    read = lambda name: _read((root / name).read_text(encoding="utf-8").splitlines())  # noqa: E731
    return read("train.txt"), read("valid.txt"), read("test.txt"), read("test_negatives.txt")


def fb15k237(size: int) -> Callable[[], Graph]:
    """FB15k-237's training triples, a seeded sample of `size` of them (CoDEx-M has 185,584)."""
    def load() -> Graph:
        with tarfile.open(DATA / "fb15k-237" / "FB15k-237.tar.gz") as tar:
            files = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

            def read(name: str) -> list[LabeledTriple]:
                handle = tar.extractfile(files[name])
                assert handle is not None
                return _read(handle.read().decode("utf-8").splitlines())

            train, valid, test = read("train.txt"), read("valid.txt"), read("test.txt")
        train = random.Random(0).sample(train, min(size, len(train)))
        return train, valid, test[:5000], []
    return load


def synthetic(size: int) -> Callable[[], Graph]:
    """`size` triples over size/10 entities in 50 clusters and 20 relations: relation r maps
    an entity of cluster c to one of cluster (c * 7 + r) % 50, so there is structure to learn."""
    def load() -> Graph:
        rng = np.random.default_rng(0)
        n_ent, n_cl, n_rel = max(100, size // 10), 50, 20
        cluster = rng.integers(0, n_cl, n_ent)
        members = [np.flatnonzero(cluster == c) for c in range(n_cl)]
        heads = rng.integers(0, n_ent, int(size * 1.15))
        rels = rng.integers(0, n_rel, len(heads))
        triples = set()
        for h, r in zip(heads.tolist(), rels.tolist(), strict=True):
            pool = members[(cluster[h] * 7 + r) % n_cl]
            t = int(pool[rng.integers(0, len(pool))])
            triples.add((f"e{h}", f"r{r}", f"e{t}"))
        ordered = sorted(triples)
        random.Random(0).shuffle(ordered)
        train, test = ordered[:size], ordered[size:size + 5000]
        return train, [], test, []
    return load


GRAPHS: dict[str, Callable[[], Graph]] = {
    "codex-s": codex_s,
    "fb15k237-185k": fb15k237(185_584),
    "synthetic-1m": synthetic(1_000_000),
}


def versions(train: list[LabeledTriple], change: float, seed: int,
             ) -> tuple[list[LabeledTriple], list[LabeledTriple]]:
    """G0 and G1 as the module doc says: G1 differs from G0 by `change` of its triples."""
    rng = random.Random(seed)
    order = list(dict.fromkeys(train))
    rng.shuffle(order)
    k = max(1, int(len(order) * change / 2))
    added, removed = order[:k], order[k:2 * k]
    g0 = order[k:]
    drop = set(removed)
    g1 = [t for t in g0 if t not in drop] + added
    return g0, g1


def accuracy_of(scorer: Scorer, graph: Graph, *, lp_limit: int) -> dict[str, float]:
    _, valid, test, negatives = graph
    out: dict[str, float] = {"holdout accuracy": float(scorer.metrics["holdout accuracy"])}
    kge = getattr(scorer, "kge", None)
    if kge is not None and test:
        lp = kge.evaluate_link_prediction(test[:lp_limit], filter_triples=valid)
        out.update({"test MRR": lp.mrr, "test Hits@10": lp.hits_at_10,
                    "test evaluated": float(lp.n_evaluated)})
    if negatives:
        out["test accuracy (P >= 0.5)"] = classification_accuracy(scorer, test, negatives)
    return out


def classification_accuracy(scorer: Scorer, positives: Sequence[LabeledTriple],
                            negatives: Sequence[LabeledTriple]) -> float:
    """Accuracy of P(true) >= 0.5 on positives and negatives the scorer can score."""
    keys = [*positives, *negatives]
    labels = np.array([1] * len(positives) + [0] * len(negatives))
    p = scorer.probability(keys)
    known = ~np.isnan(p)
    return float(np.mean((p[known] >= 0.5) == labels[known]))


def measure(name: str, *, settings: VerifySettings, change: float, seed: int,
            lp_limit: int, cold_g1: bool) -> dict[str, Any]:
    graph = GRAPHS[name]()
    g0, g1 = versions(graph[0], change, seed)
    steps: dict[str, Any] = {}

    def fit_on(keys: list[LabeledTriple]) -> Callable[[Scorer | None], Scorer]:
        return lambda previous: fit_scorer(settings.kge_scorer, keys, settings=settings,
                                           labels={}, previous=previous)

    with tempfile.TemporaryDirectory(prefix="kgenrich-fit-time-") as folder:
        for step, keys, use_cache in (("cold", g0, True), ("cached", g0, True),
                                      ("warm", g1, True), ("cold G1", g1, False)):
            if step == "cold G1" and not cold_g1:
                continue
            start, cpu = time.perf_counter(), harness.cpu_seconds()
            scorer = (cached_fit(Path(folder), keys, settings=settings, fit=fit_on(keys))
                      if use_cache else fit_on(keys)(None))
            row = {"graph": name, "step": step, "triples": len(keys),
                   "seconds": round(time.perf_counter() - start, 2),
                   "cpu seconds": round(harness.cpu_seconds() - cpu, 1),
                   "epochs run": scorer.metrics.get("epochs run"),
                   "warm start": scorer.metrics.get("warm start"),
                   "cached": scorer.metrics.get("cached"),
                   "changed share": scorer.metrics.get("changed share")}
            if step != "cached":
                row.update({k: round(v, 4) for k, v in
                            accuracy_of(scorer, graph, lp_limit=lp_limit).items()})
            harness.print_row(row)
            steps[step] = row
    entities = {e for h, _, t in graph[0] for e in (h, t)}
    return {"graph": name, "train triples": len(graph[0]), "entities": len(entities),
            "relations": len({r for _, r, _ in graph[0]}), "steps": steps}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Verifier fit time: cold, cached, warm", "", f"`{report['command']}`", "",
             f"Machine: {report['machine']['cpu_model']}, {report['machine']['cpu_count']} "
             f"cores, flags {' '.join(report['machine']['cpu_flags'])}; "
             f"settings {json.dumps(report['settings'])}.", "",
             "| graph | triples | entities | step | seconds | epochs | test MRR | test Hits@10 "
             "| test acc | holdout acc |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for g in report["graphs"]:
        for step, row in g["steps"].items():
            cells = [g["graph"], str(row["triples"]), str(g["entities"]), step,
                     f"{row['seconds']:.1f}", _fmt(row.get("epochs run"), 0),
                     _fmt(row.get("test MRR"), 3), _fmt(row.get("test Hits@10"), 3),
                     _fmt(row.get("test accuracy (P >= 0.5)"), 3),
                     _fmt(row.get("holdout accuracy"), 3)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", default="codex-s",
                        help=f"comma-separated, of {sorted(GRAPHS)}")
    parser.add_argument("--change", type=float, default=0.01,
                        help="share of triples G1 differs from G0 by (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lp-limit", type=int, default=2000,
                        help="test triples ranked for link prediction (default 2000)")
    parser.add_argument("--no-cold-g1", action="store_true",
                        help="skip the cold reference fit on G1 (the slowest step)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a VerifySettings field, e.g. epochs=20 (JSON value)")
    parser.add_argument("--out", type=Path, default=harness.ROOT / "reports" / "fit_time.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    settings = VerifySettings(**overrides)
    names = [n for n in args.graphs.split(",") if n]
    unknown = [n for n in names if n not in GRAPHS]
    if unknown:
        parser.error(f"--graphs: unknown {unknown}; choose from {sorted(GRAPHS)}")
    if not DATA.is_dir():
        parser.error(f"{DATA} not found: the real graphs come from ../shared/data")
    graphs = [measure(n, settings=settings, change=args.change, seed=args.seed,
                      lp_limit=args.lp_limit, cold_g1=not args.no_cold_g1) for n in names]
    report = {"command": shlex.join(["python", "bench/fit_time.py", *sys.argv[1:]]),
              "machine": harness.machine(), "change": args.change,
              "settings": settings.model_dump(mode="json", include={
                  "model", "dim", "epochs", "warm_epochs", "kge_scorer", "holdout", "seed",
                  "training", "negatives", "early_stop_sample"}),
              "graphs": graphs, "peak_rss_mb": round(harness.peak_rss_mb())}
    harness.write_report(args.out, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
