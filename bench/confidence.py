"""Fit and cross-validate the candidate-confidence combiner on MovieLens-100K completions.

Input: candidate rows as ``bench/enrichment_value.py`` writes them (``item``, ``relation``,
``tail``, ``tail_id``, ``agreement``, ``kge_probability``, ``confidence``, ``decision``,
``in_key``): LLM completions of hidden ``imdb_auxiliary.txt`` facts, labelled by the answer key.
Features added here: the catalog's own genres (``ml-100k.item`` ``class``) for ``has_genre`` and
whether the tail is new to the hidden graph (recomputed with the same hiding seed).

Protocol: items are split into ``--folds`` groups (every candidate of an item in one fold),
``--repeats`` times with different seeds. In each fold the model is fitted on the other folds,
the accept threshold is the lowest one reaching ``--target`` precision on those folds, and the
held-out fold is scored with it. Reported: pooled held-out precision / recall of the accepted
candidates (mean and spread over repeats), out-of-fold precision/recall curves, and the same for
baselines (KGE probability alone, the current mean heuristic). The final model is fitted on all
rows and written as JSON (``--model-out``); its coefficients are the ``DEFAULT_MODEL``.

    .venv/bin/python bench/confidence.py \\
        --candidates reports/confidence_ml100k_candidates_k3.jsonl --samples 3 \\
        --candidates reports/confidence_ml100k_candidates_k1.jsonl --samples 1 \\
        --out reports/confidence_ml100k.json --model-out reports/confidence_default_model.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shlex
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import harness
from kgenrich.kg.records import Triple  # noqa: E402
from kgenrich.verification.confidence import (  # noqa: E402
    FEATURES,
    ConfidenceFeatures,
    ConfidenceModel,
    threshold_for_precision,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-100k"


def _norm(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


def catalog_genres(path: Path) -> dict[str, set[str]]:
    """Item id -> normalized genre labels of the ML-100K catalog's ``class`` field."""
    out: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as f:
        header = [c.partition(":")[0] for c in f.readline().rstrip("\n").split("\t")]
        i_id, i_cls = header.index("item_id"), header.index("class")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) > i_cls:
                out[parts[i_id]] = {_norm(g) for g in parts[i_cls].split(" ") if g}
    return out


@functools.cache
def _answer_key(data: Path) -> tuple[Triple, ...]:
    """The named gold KG (``imdb_auxiliary.txt``), read once per process."""
    from kgenrich.kg.io.seed import read_seed
    from kgenrich.kg.ontology import load_ontology

    root = Path(__file__).resolve().parents[1]
    ontology = load_ontology(root / "data" / "ontology" / "movies.json")
    seed = read_seed(
        data / "imdb_auxiliary.txt", format="auxiliary", ontology=ontology, on_error="skip"
    )
    return tuple(seed.triples)


def key_catalog_consistency(data: Path) -> dict[str, float]:
    """How far the answer key and the catalog agree on genres, independent of any prediction.

    Over items with genres in both ``ml-100k.item`` and ``imdb_auxiliary.txt``: the share of the
    catalog's genres that the key also lists, and the share of items whose two genre sets are
    disjoint (mostly the key describing another film of the same title, or another taxonomy).
    """
    catalog = catalog_genres(data / "ml-100k.item")
    key: dict[str, set[str]] = defaultdict(set)
    for t in _answer_key(data):
        if t.relation == "has_genre":
            # ids are "item/<ML id>" and "genre/<slug>"; the slug normalizes like a label
            key[t.head.partition("/")[2]].add(_norm(t.tail.partition("/")[2]))
    items = genres = in_key = disjoint = 0
    for item, key_genres in key.items():
        own = catalog.get(item, set()) - {"unknown"}
        if not own:
            continue
        items += 1
        genres += len(own)
        in_key += len(own & key_genres)
        disjoint += not (own & key_genres)
    return {
        "items": items,
        "catalog_genres": genres,
        "catalog_genres_in_key": in_key,
        "share_in_key": in_key / genres if genres else math.nan,
        "items_disjoint": disjoint,
        "share_items_disjoint": disjoint / items if items else math.nan,
    }


def visible_entities(data: Path, *, hide_fraction: float, hide_seed: int) -> set[str]:
    """Entities of the hidden graph as ``bench/enrichment_value.py`` builds it."""
    from bench.enrichment_value import hide_groups

    visible, _ = hide_groups(list(_answer_key(data)), fraction=hide_fraction, seed=hide_seed)
    return {e for t in visible for e in (t.head, t.tail)}


def features_of(
    row: Mapping[str, Any],
    *,
    samples: int,
    genres: Mapping[str, set[str]],
    vocabulary: set[str],
    known: set[str],
) -> ConfidenceFeatures:
    """One candidate row -> the combiner's features (completions: no text evidence)."""
    p = float(row.get("kge_probability", math.nan))
    catalog: bool | None = None
    if row["relation"] == "has_genre" and str(row["item"]) in genres:
        tail = _norm(str(row["tail"]))
        if tail in genres[str(row["item"])]:
            catalog = True
        elif tail in vocabulary:
            # only a genre the catalog can express can disagree with it ("Biography" cannot)
            catalog = False
    return ConfidenceFeatures(
        relation=str(row["relation"]),
        kge_probability=p if math.isfinite(p) else None,
        agreement=float(row["agreement"]),
        samples=samples,
        catalog_agrees=catalog,
        new_entity=str(row["tail_id"]) not in known,
    )


def group_folds(groups: Sequence[str], *, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per row; all rows of a group share a fold (groups dealt round-robin)."""
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[int(j)]: k % n_folds for k, j in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def pr_curve(p: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """Precision and recall of {p >= t} for every distinct t (descending)."""
    order = np.argsort(-p, kind="stable")
    p_d, y_d = p[order], y[order].astype(bool)
    tp = np.cumsum(y_d)
    n = np.arange(1, len(p) + 1)
    cut = np.ones(len(p), dtype=bool)
    cut[:-1] = p_d[:-1] > p_d[1:]
    n_pos = max(1, int(y.sum()))
    return {
        "threshold": [float(v) for v in p_d[cut]],
        "precision": [float(v) for v in (tp / n)[cut]],
        "recall": [float(v) for v in (tp / n_pos)[cut]],
    }


def average_precision(p: np.ndarray, y: np.ndarray) -> float:
    curve = pr_curve(p, y)
    prev_r, ap = 0.0, 0.0
    for prec, rec in zip(curve["precision"], curve["recall"], strict=True):
        ap += prec * (rec - prev_r)
        prev_r = rec
    return ap


def cross_validate(
    rows: Sequence[ConfidenceFeatures],
    y: np.ndarray,
    groups: Sequence[str],
    *,
    target: float,
    n_folds: int,
    repeats: int,
    c: float,
) -> dict[str, Any]:
    """Grouped CV of fit + threshold choice; pooled held-out precision/recall per repeat."""
    per_repeat: list[dict[str, Any]] = []
    oof_first: np.ndarray | None = None
    for rep in range(repeats):
        folds = group_folds(groups, n_folds=n_folds, seed=rep)
        oof = np.full(len(rows), math.nan)
        accepted = np.zeros(len(rows), dtype=bool)
        thresholds = []
        for k in range(n_folds):
            train = np.flatnonzero(folds != k)
            test = np.flatnonzero(folds == k)
            model = ConfidenceModel.fit([rows[int(i)] for i in train], y[train], c=c)
            choice = model.threshold_for_precision(target)
            thresholds.append(choice.threshold)
            p = model.predict([rows[int(i)] for i in test])
            oof[test] = p
            accepted[test] = p >= choice.threshold
        tp = int((accepted & (y == 1)).sum())
        n_acc = int(accepted.sum())
        per_repeat.append(
            {
                "seed": rep,
                "thresholds": thresholds,
                "accepted": n_acc,
                "true_accepted": tp,
                "precision": tp / n_acc if n_acc else math.nan,
                "recall": tp / int(y.sum()),
                "average_precision_oof": average_precision(oof, y),
            }
        )
        if oof_first is None:
            oof_first = oof
    prec = np.array([r["precision"] for r in per_repeat])
    rec = np.array([r["recall"] for r in per_repeat])
    assert oof_first is not None
    return {
        "repeats": per_repeat,
        "precision_mean": float(np.nanmean(prec)),
        "precision_min": float(np.nanmin(prec)),
        "precision_max": float(np.nanmax(prec)),
        "recall_mean": float(rec.mean()),
        "recall_min": float(rec.min()),
        "recall_max": float(rec.max()),
        "oof_probability_seed0": [float(v) for v in oof_first],
    }


def baseline_at_target(
    p: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    *,
    target: float,
    n_folds: int,
    repeats: int,
) -> dict[str, Any]:
    """A fixed score (no fitting) with the same grouped threshold choice as the combiner."""
    ok = np.isfinite(p)
    q = np.where(ok, p, -1.0)  # no score: never accepted
    out = []
    for rep in range(repeats):
        folds = group_folds(groups, n_folds=n_folds, seed=rep)
        accepted = np.zeros(len(p), dtype=bool)
        for k in range(n_folds):
            tr, te = folds != k, folds == k
            choice = threshold_for_precision(q[tr], y[tr], target)
            accepted[te] = q[te] >= choice.threshold
        tp = int((accepted & (y == 1)).sum())
        out.append((tp / accepted.sum() if accepted.sum() else math.nan, tp / int(y.sum())))
    precisions = [a for a, _ in out if math.isfinite(a)]
    return {
        # NaN: no threshold reached the target on the training folds, nothing was accepted
        "precision_mean": float(np.mean(precisions)) if precisions else math.nan,
        "recall_mean": float(np.mean([b for _, b in out])),
        "average_precision": average_precision(q, y),
        "curve": pr_curve(q, y),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--candidates",
        type=Path,
        action="append",
        required=True,
        help="candidate rows (JSONL); repeat to pool runs: an item's rows come from "
        "the first file that has it",
    )
    ap.add_argument(
        "--samples",
        type=int,
        action="append",
        required=True,
        help="k used for each --candidates file, in the same order",
    )
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--hide-fraction", type=float, default=0.5)
    ap.add_argument("--hide-seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength")
    ap.add_argument(
        "--also-targets",
        default="0.8,0.85",
        help="other precision targets whose cross-validated operating points are reported",
    )
    ap.add_argument(
        "--key-in-asked-groups",
        type=int,
        help="hidden triples in the asked (item, relation) groups, for recall of "
        "the answer key (from enrichment_value.json)",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model-out", type=Path, required=True)
    args = ap.parse_args(argv)

    if len(args.candidates) != len(args.samples):
        ap.error("give one --samples per --candidates")
    raw: list[dict[str, Any]] = []
    row_samples: list[int] = []
    taken: set[str] = set()
    per_file = []
    for path, k in zip(args.candidates, args.samples, strict=True):
        rows_f = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        new = [r for r in rows_f if str(r["item"]) not in taken]
        taken |= {str(r["item"]) for r in new}
        raw += new
        row_samples += [k] * len(new)
        per_file.append(
            {
                "path": str(path),
                "samples": k,
                "rows": len(rows_f),
                "rows_used": len(new),
                "items_used": len({r["item"] for r in new}),
            }
        )
    genres = catalog_genres(args.data / "ml-100k.item")
    vocabulary = set().union(*genres.values())
    known = visible_entities(args.data, hide_fraction=args.hide_fraction, hide_seed=args.hide_seed)
    rows = [
        features_of(r, samples=k, genres=genres, vocabulary=vocabulary, known=known)
        for r, k in zip(raw, row_samples, strict=True)
    ]
    y = np.array([1 if r["in_key"] else 0 for r in raw])
    groups = [str(r["item"]) for r in raw]
    command = "python bench/confidence.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )

    cv = cross_validate(
        rows, y, groups, target=args.target, n_folds=args.folds, repeats=args.repeats, c=args.c
    )
    other_targets = [float(t) for t in args.also_targets.split(",") if t.strip()]
    cv_by_target = {
        f"{t:g}": {
            k: v
            for k, v in cross_validate(
                rows, y, groups, target=t, n_folds=args.folds, repeats=args.repeats, c=args.c
            ).items()
            if k not in ("repeats", "oof_probability_seed0")
        }
        for t in other_targets
    }
    agree = np.array([r.catalog_agrees is True for r in rows])
    audit = key_catalog_consistency(args.data) | {
        "candidates_catalog_agrees": int(agree.sum()),
        "candidates_catalog_agrees_true": int(y[agree].sum()),
    }
    kge = np.array([r.kge_probability if r.kge_probability is not None else math.nan for r in rows])
    heuristic = np.array([float(r.get("confidence", math.nan)) for r in raw])
    agreement = np.array([r.agreement for r in rows])
    # the catalog alone: agrees 1, silent 0.5, disagrees 0
    catalog_rule = np.array(
        [0.5 if r.catalog_agrees is None else float(r.catalog_agrees) for r in rows]
    )
    baselines = {
        name: baseline_at_target(
            p, y, groups, target=args.target, n_folds=args.folds, repeats=args.repeats
        )
        for name, p in (
            ("kge_probability", kge),
            ("mean_heuristic", heuristic),
            ("agreement", agreement),
            ("catalog_rule", catalog_rule),
        )
    }
    final = ConfidenceModel.fit(
        rows,
        y,
        c=args.c,
        source={
            "command": command,
            "inputs": per_file,
            "n_rows": len(rows),
            "n_true": int(y.sum()),
            "n_items": len(set(groups)),
        },
    )
    in_sample = final.threshold_for_precision(args.target)
    oof = np.array(cv["oof_probability_seed0"])
    by_relation = {}
    for rel in sorted({r.relation for r in rows}):
        m = np.array([r.relation == rel for r in rows])
        by_relation[rel] = {
            "n": int(m.sum()),
            "true": int(y[m].sum()),
            "kge_missing": int(np.isnan(kge[m]).sum()),
        }
    feature_counts = {
        "kge_present": int(np.isfinite(kge).sum()),
        "catalog_agrees": sum(r.catalog_agrees is True for r in rows),
        "catalog_disagrees": sum(r.catalog_agrees is False for r in rows),
        "new_entity": sum(r.new_entity for r in rows),
        "agreement_values_k_gt_1": {
            str(round(v, 3)): int(
                sum(1 for r in rows if r.samples > 1 and round(r.agreement, 3) == round(v, 3))
            )
            for v in sorted({round(r.agreement, 3) for r in rows if r.samples > 1})
        },
        "rows_k_1": sum(r.samples == 1 for r in rows),
    }
    report = {
        "command": command,
        "n_rows": len(rows),
        "n_true": int(y.sum()),
        "n_items": len(set(groups)),
        "inputs": per_file,
        "target_precision": args.target,
        "folds": args.folds,
        "repeats": args.repeats,
        "c": args.c,
        "by_relation": by_relation,
        "feature_counts": feature_counts,
        "features": [name for name, _ in FEATURES],
        "cv": cv,
        "cv_other_targets": cv_by_target,
        "key_audit": audit,
        "oof_curve_seed0": pr_curve(oof, y),
        "oof_average_precision_seed0": average_precision(oof, y),
        "baselines": baselines,
        "final_model": json.loads(final.to_json()) | {"fit_probabilities": None},
        "final_in_sample_threshold": vars(in_sample),
        "key_in_asked_groups": args.key_in_asked_groups,
        "labels": [int(v) for v in y],
        "relations": [r.relation for r in rows],
    }
    harness.write_report(args.out, report, indent=1)
    args.model_out.write_text(final.to_json(), encoding="utf-8")
    print(
        f"rows {len(rows)} (true {int(y.sum())}, items {len(set(groups))}); "
        f"features {feature_counts}"
    )
    print(
        f"CV at target {args.target}: precision {cv['precision_mean']:.3f} "
        f"[{cv['precision_min']:.3f}, {cv['precision_max']:.3f}], recall "
        f"{cv['recall_mean']:.3f} [{cv['recall_min']:.3f}, {cv['recall_max']:.3f}]; "
        f"OOF AP {report['oof_average_precision_seed0']:.3f}"
    )
    for t, c in cv_by_target.items():
        print(
            f"  CV at target {t}: precision {c['precision_mean']:.3f} recall {c['recall_mean']:.3f}"
        )
    print(f"key audit: {audit}")
    for name, b in baselines.items():
        print(
            f"  baseline {name}: precision {b['precision_mean']:.3f} recall "
            f"{b['recall_mean']:.3f} AP {b['average_precision']:.3f}"
        )
    print(
        f"final model: weights {dict(final.weights)}, intercept {final.intercept:.4f}, "
        f"offsets {dict(final.relation_offsets)}; "
        f"in-sample threshold {in_sample}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
