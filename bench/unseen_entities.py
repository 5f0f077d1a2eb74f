"""Benchmark the text fallback verifier (verification/fallback.py) on entities the model never saw.

Protocol, on FB15k-237 with entity names and descriptions (entity2wikidata.json):
  1. Hold out a seeded random fraction of the train entities that have a text; drop every train
     triple touching one. Fit the fallback on the rest (train split only).
  2. Evaluation positives: test triples touching a held-out entity. Negatives, 1:1: the tail
     replaced by a tail (with a text) the relation has in the full train split (type-consistent),
     redrawn while the result is a known true triple (train, valid or test). Two negative sets:
     "uniform" over the relation's distinct tails (primary) and "frequency"-weighted (harder for
     a popularity prior).
  3. Pairs (a positive with its negative) are split seeded: ``--valid-frac`` of them pick the
     decision threshold per relation (global one where a relation has < ``--min-rel-valid``
     validation rows); the rest report accuracy / F1 / ECE (10 equal-width bins) / Brier / AUC.
  4. Baselines, scored the same way: ``tail_prior`` (share of the relation's fitted triples with
     that tail; 0 for an unseen tail) and ``text_cosine`` (encoder cosine of head and tail,
     mapped to [0, 1]).

Prints a summary, writes JSON to ``--out`` and a Markdown summary next to it (same name, .md).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/unseen_entities.py \
        --data ../shared/data/fb15k-237 --out reports/unseen_entities_fb15k237.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import harness
from kgenrich.verification.fallback import (  # noqa: E402
    FallbackConfig,
    FallbackScorer,
    LabeledTriple,
    TextEncoder,
    entity_text,
)
from kgenrich.verification.negatives import tail_corruptions  # noqa: E402

logger = logging.getLogger("bench.unseen_entities")

ECE_BINS = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True,
                   help="folder with FB15k-237.tar.gz (or train/valid/test.txt) and "
                        "entity2wikidata.json")
    p.add_argument("--holdout-frac", type=float, default=0.1,
                   help="fraction of train entities (with a text) held out (default 0.1)")
    p.add_argument("--out", type=Path, help="JSON output; the .md summary goes next to it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-frac", type=float, default=0.5,
                   help="share of evaluation pairs used to pick thresholds (default 0.5)")
    p.add_argument("--min-rel-valid", type=int, default=10,
                   help="validation rows a relation needs for its own threshold (default 10)")
    p.add_argument("--max-positives-per-relation", type=int, default=2000,
                   help="seeded subsample of fitting positives per relation (default 2000; "
                        "0 = all)")
    p.add_argument("--negatives-per-positive", type=int, default=2)
    p.add_argument("--c", type=float, default=FallbackConfig.c,
                   help="inverse L2 strength of the logistic regressions")
    p.add_argument("--max-seq-length", type=int, default=64,
                   help="encoder truncation in tokens (label + description fit in 64)")
    p.add_argument("--batch-size", type=int, default=128, help="encoder batch size")
    p.add_argument("--embedding-cache", type=Path,
                   help="npz of text embeddings: read if present, else written (keep it out "
                        "of the repo); the report then says the encoding was cached")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data


def read_split(path: Path) -> list[LabeledTriple]:
    rows: list[LabeledTriple] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                rows.append((parts[0], parts[1], parts[2]))
    return rows


def load_splits(data: Path) -> dict[str, list[LabeledTriple]]:
    """train/valid/test from the folder, or from its tarball extracted to a temp dir."""
    if (data / "train.txt").exists():
        return {s: read_split(data / f"{s}.txt") for s in ("train", "valid", "test")}
    with tempfile.TemporaryDirectory(prefix="fb15k237-") as tmp:
        with tarfile.open(data / "FB15k-237.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
        found = {p.name: p for p in Path(tmp).rglob("*.txt")}
        return {s: read_split(found[f"{s}.txt"]) for s in ("train", "valid", "test")}


def load_texts(path: Path) -> dict[str, str]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    texts: dict[str, str] = {}
    for entity, rec in raw.items():
        label = (rec.get("label") or "").strip()
        if label:
            texts[entity] = entity_text(label=label, description=rec.get("description") or "")
    return texts


class CachedEncoder:
    """A ``TextEncoder`` primed from an npz of (texts, vectors) written by an earlier run."""

    def __init__(self, inner: TextEncoder, path: Path) -> None:
        self.inner = inner
        self.path = path
        self.loaded = path.exists()
        self._cache: dict[str, np.ndarray] = {}
        if self.loaded:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["name"]) == inner.name and npz["vectors"].shape[1] == inner.dim:
                    self._cache = dict(zip(npz["texts"].tolist(), npz["vectors"], strict=True))

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.encode(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def write(self) -> None:
        keys = sorted(self._cache)
        np.savez(self.path, name=np.str_(self.name), texts=np.asarray(keys, dtype=np.str_),
                 vectors=np.stack([self._cache[k] for k in keys]))


# ---------------------------------------------------------------- metrics


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold t maximising accuracy of ``score >= t`` (ties: the one nearest 0.5)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Predict positive for the first k rows, k = 0..n; only cuts between distinct scores count.
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(1 - y)])
    correct = tp + (len(y) - y.sum() - fp)
    cut_ok = np.concatenate([[True], s[:-1] != s[1:], [True]])
    thresholds = np.concatenate([[np.inf], s])  # k rows positive <=> score >= s[k-1]
    candidates = np.flatnonzero(cut_ok)
    best = candidates[correct[candidates] == correct[candidates].max()]
    finite = np.where(np.isinf(thresholds[best]), 1.0 + 1e-9, thresholds[best])
    return float(finite[np.argmin(np.abs(finite - 0.5))])


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1], right=False), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(probs[mask].mean() - labels[mask].mean())
    return float(total)


def classification(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(pred & (labels == 1)))
    fp = float(np.sum(pred & (labels == 0)))
    fn = float(np.sum(~pred & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(pred == (labels == 1))), "precision": precision,
            "recall": recall, "f1": f1}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def evaluate(
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    relations: Sequence[str],
    is_valid: np.ndarray,
    min_rel_valid: int,
    groups: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """Per-relation thresholds on the validation rows; metrics on the others."""
    rel = np.asarray(relations)
    global_thr = best_threshold(scores[is_valid], labels[is_valid])
    thresholds: dict[str, float] = {}
    for r in np.unique(rel[is_valid]):
        mask = is_valid & (rel == r)
        if mask.sum() >= min_rel_valid and len(np.unique(labels[mask])) == 2:
            thresholds[str(r)] = best_threshold(scores[mask], labels[mask])
    thr = np.array([thresholds.get(str(r), global_thr) for r in rel])
    pred = scores >= thr
    test = ~is_valid
    out: dict[str, Any] = {
        "n": int(test.sum()),
        **classification(pred[test], labels[test]),
        "accuracy_global_threshold": float(np.mean((scores[test] >= global_thr)
                                                   == (labels[test] == 1))),
        "ece": ece(scores[test], labels[test]),
        "brier": float(np.mean((scores[test] - labels[test]) ** 2)),
        "auc": auc(scores[test], labels[test]),
        "global_threshold": global_thr,
        "n_relation_thresholds": len(thresholds),
        "by_unseen_side": {},
    }
    for name, mask in groups.items():
        m = test & mask
        if m.any():
            out["by_unseen_side"][name] = {
                "n": int(m.sum()),
                **classification(pred[m], labels[m]),
                "auc": auc(scores[m], labels[m]),
            }
    return out


# ---------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    splits = load_splits(args.data)
    texts = load_texts(args.data / "entity2wikidata.json")
    train = splits["train"]
    known = set(train) | set(splits["valid"]) | set(splits["test"])

    rng = np.random.default_rng(args.seed)
    train_entities = sorted({e for h, _, t in train for e in (h, t)})
    candidates = [e for e in train_entities if e in texts]
    n_hold = round(args.holdout_frac * len(candidates))
    held = set(rng.choice(np.asarray(candidates), size=n_hold, replace=False).tolist())
    fit_triples = [t for t in train if t[0] not in held and t[2] not in held]
    logger.info("held out %d of %d train entities; fitting on %d of %d train triples",
                n_hold, len(train_entities), len(fit_triples), len(train))

    cfg = FallbackConfig(
        negatives_per_positive=args.negatives_per_positive,
        max_positives_per_relation=args.max_positives_per_relation or None,
        c=args.c,
    )
    t0 = time.perf_counter()
    base = TextEncoder(batch_size=args.batch_size, max_seq_length=args.max_seq_length)
    encoder: TextEncoder | CachedEncoder = (
        CachedEncoder(base, args.embedding_cache) if args.embedding_cache else base)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Encode every text once up front (the encoder caches it) so fit and score timings are
    # the models', and so the encoding time is reported on its own.
    encoder.encode(sorted(set(texts.values())))
    encode_s = time.perf_counter() - t0
    if isinstance(encoder, CachedEncoder) and not encoder.loaded:
        encoder.write()
    logger.info("encoded %d texts in %.1f s", encoder.cache_size, encode_s)

    t0 = time.perf_counter()
    scorer = FallbackScorer.fit(fit_triples, texts=texts, seed=args.seed, encoder=encoder,
                                config=cfg, known=known)
    fit_s = time.perf_counter() - t0
    logger.info("fit in %.1f s: %s", fit_s, scorer.report)

    positives_all = [t for t in splits["test"] if t[0] in held or t[2] in held]
    positives = [t for t in positives_all
                 if scorer.knows_relation(t[1]) and t[0] in texts and t[2] in texts]
    tails_distinct = {}
    tails_weighted: dict[str, list[str]] = {}
    for _, r, t in train:
        if t in texts:  # a corruption must be scorable too
            tails_weighted.setdefault(r, []).append(t)
    for r, ts in tails_weighted.items():
        tails_distinct[r] = sorted(set(ts))
        ts.sort()

    prior_counts = Counter((r, t) for _, r, t in fit_triples)
    relation_counts = Counter(r for _, r, _ in fit_triples)

    def tail_prior(triples: Sequence[LabeledTriple]) -> np.ndarray:
        return np.array([prior_counts[(r, t)] / relation_counts[r] if relation_counts[r] else 0.0
                         for _, r, t in triples])

    def text_cosine(triples: Sequence[LabeledTriple]) -> np.ndarray:
        h = encoder.encode([texts[x] for x, _, _ in triples])
        t = encoder.encode([texts[x] for _, _, x in triples])
        return np.clip((np.einsum("ij,ij->i", h, t) + 1.0) / 2.0, 0.0, 1.0)

    def fallback(triples: Sequence[LabeledTriple]) -> np.ndarray:
        return scorer.score(triples, texts=texts)

    methods: dict[str, Callable[[Sequence[LabeledTriple]], np.ndarray]] = {
        "fallback": fallback, "tail_prior": tail_prior, "text_cosine": text_cosine,
    }
    results: dict[str, Any] = {}
    eval_sizes: dict[str, Any] = {}
    for variant, pool in (("uniform", tails_distinct), ("frequency", tails_weighted)):
        pairs = tail_corruptions(positives, tail_pool=pool, known=known, per_triple=1,
                                 seed=args.seed + 1000, independent_tries=50).pairs()
        pos_idx = np.array([i for i, _ in pairs], dtype=np.int64)
        triples = [positives[i] for i in pos_idx] + [c for _, c in pairs]
        labels = np.concatenate([np.ones(len(pairs)), np.zeros(len(pairs))])
        pair_valid = np.random.default_rng(args.seed + 2000).random(len(pairs)) < args.valid_frac
        is_valid = np.concatenate([pair_valid, pair_valid])
        # A negative keeps its positive's unseen side label: it answers the same question.
        src = np.concatenate([pos_idx, pos_idx])
        pos_h = np.array([positives[i][0] in held for i in src])
        pos_t = np.array([positives[i][2] in held for i in src])
        groups = {"head_only": pos_h & ~pos_t, "tail_only": ~pos_h & pos_t,
                  "both": pos_h & pos_t}
        eval_sizes[variant] = {
            "n_pairs": len(pairs), "n_rows": len(triples),
            "n_valid_rows": int(is_valid.sum()), "n_test_rows": int((~is_valid).sum()),
            "n_positives_without_negative": len(positives) - len(pairs),
            "test_rows_by_unseen_side": {k: int((v & ~is_valid).sum())
                                         for k, v in groups.items()},
        }
        results[variant] = {}
        for name, method in methods.items():
            scores = method(triples)
            if np.isnan(scores).any():
                raise RuntimeError(f"{name} gave NaN on filtered evaluation triples")
            results[variant][name] = evaluate(
                scores=scores, labels=labels, relations=[r for _, r, _ in triples],
                is_valid=is_valid, min_rel_valid=args.min_rel_valid, groups=groups)
        logger.info("%s negatives: %s", variant,
                    {k: round(v["accuracy"], 4) for k, v in results[variant].items()})

    return {
        "benchmark": "unseen_entities",
        "data": str(args.data),
        "argv": sys.argv[1:],
        "seed": args.seed,
        "holdout_frac": args.holdout_frac,
        "n_train_entities": len(train_entities),
        "n_train_entities_with_text": len(candidates),
        "n_held_out_entities": n_hold,
        "n_train_triples": len(train),
        "n_fit_triples": len(fit_triples),
        "n_eval_positives_touching_held_out": len(positives_all),
        "n_eval_positives_scorable": len(positives),
        "eval_sizes": eval_sizes,
        "fallback_config": dataclasses.asdict(cfg),
        "fit_report": dataclasses.asdict(scorer.report),
        "encoder": {"name": encoder.name, "dim": encoder.dim,
                    "max_seq_length": args.max_seq_length, "n_texts": encoder.cache_size,
                    "embeddings_from_cache": isinstance(encoder, CachedEncoder)
                    and encoder.loaded},
        "results": results,
        "timing_s": {"encoder_load": round(load_s, 1), "encode_all_texts": round(encode_s, 1),
                     "fit": round(fit_s, 1), "total": round(time.perf_counter() - started, 1)},
        "peak_rss_mb": round(harness.peak_rss_mb(), 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "threads": args.threads},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Text fallback on unseen entities: FB15k-237",
        "",
        "```",
        "HF_HUB_OFFLINE=1 .venv/bin/python bench/unseen_entities.py " + " ".join(report["argv"]),
        "```",
        "",
        f"Held out {report['n_held_out_entities']} of {report['n_train_entities_with_text']} "
        f"train entities with a text (seed {report['seed']}); fitted on "
        f"{report['n_fit_triples']} of {report['n_train_triples']} train triples "
        f"(subsampled: {report['fit_report']['n_positives_used']} positives used after a seeded "
        f"per-relation cap of {report['fallback_config']['max_positives_per_relation']}, "
        f"{report['fit_report']['n_positives_subsampled_away']} left out, "
        f"{report['fit_report']['n_skipped_no_text']} skipped for an entity without text; "
        f"{report['fit_report']['n_negatives_used']} corruptions). "
        f"Evaluation: {report['n_eval_positives_scorable']} test triples touching a held-out "
        "entity, each with one type-consistent corrupted tail; thresholds per relation on half "
        "of the pairs, metrics on the other half.",
        "",
    ]
    for variant, res in report["results"].items():
        size = report["eval_sizes"][variant]
        lines += [
            f"## Negatives drawn {variant} over the relation's train tails "
            f"({size['n_test_rows']} test rows)",
            "",
            "Test rows by unseen side: " + ", ".join(
                f"{k} {v}" for k, v in size["test_rows_by_unseen_side"].items()) + ".",
            "",
            "| scorer | accuracy | F1 | ECE (10 bins) | Brier | AUC | acc. tail unseen "
            "| acc. head unseen |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, m in res.items():
            side = m["by_unseen_side"]
            lines.append(
                f"| {name} | {m['accuracy']:.3f} | {m['f1']:.3f} | {m['ece']:.3f} | "
                f"{m['brier']:.3f} | {m['auc']:.3f} | "
                f"{side.get('tail_only', {}).get('accuracy', float('nan')):.3f} | "
                f"{side.get('head_only', {}).get('accuracy', float('nan')):.3f} |")
        lines.append("")
    t = report["timing_s"]
    lines += [
        "ECE and Brier of the baselines are of their raw scores (not calibrated probabilities); "
        "a constant 0.5 has Brier 0.25.",
        "",
        f"Runtime {t['total']} s (encoder load {t['encoder_load']} s, encoding "
        f"{report['encoder']['n_texts']} texts {t['encode_all_texts']} s, fit {t['fit']} s); "
        f"peak RSS {report['peak_rss_mb']} MB; {report['machine']['cpus']} CPUs.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    report = run(args)
    text = markdown(report)
    print(text)
    if args.out:
        harness.write_report(args.out, report, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
