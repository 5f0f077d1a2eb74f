"""Benchmark the KGE verifier: triple classification against hard negatives + link prediction.

Contract: DIR holds tab-separated ``train/valid/test.txt`` and ``valid/test_negatives.txt``
(head, relation, tail), as in CoDEx. Train on ``train`` (early stopping on ``valid``), fit the
calibrator on valid positives/negatives only, report every metric on test (overall and per
relation). Writes JSON to ``--out`` and a markdown summary next to it (``--md``); with
``--merge`` the runs are appended to the runs already in ``--out`` (one report across configs).
``--load-model DIR`` evaluates a verifier saved by ``--save-model`` instead of training one.
``--stack`` adds the stacked classifier (``verification/stack.py``: KGE scores of this model and
of any ``--stack-model DIR`` plus train-graph features, fitted on valid); the primary score kind
of a run is the one with the best 5-fold cross-validated accuracy on valid.

    python bench/verify.py --data ../shared/data/codex-s --out reports/verify_codex_s.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from kgenrich.verification.attributes import has_attribute_evidence
from kgenrich.verification.calibrate import Calibrator
from kgenrich.verification.features import FEATURE_NAMES, GraphFeatures
from kgenrich.verification.kge import KGEModel, LabeledTriple, train_verifier
from kgenrich.verification.metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    f1,
    reliability_diagram,
)
from kgenrich.verification.stack import (
    KGE_FEATURE_NAMES,
    StackedClassifier,
    kge_features,
    stratified_folds,
)

logger = logging.getLogger("bench.verify")

SPLITS = ("train", "valid", "test", "valid_negatives", "test_negatives")
# Published CoDEx-S numbers (Safavi & Koutra, EMNLP 2020), for the summary only.
PAPER_CODEX_S: dict[str, Any] = {
    "triple_classification_accuracy": {"RESCAL": 0.843, "TransE": 0.829, "ComplEx": 0.836},
    "link_prediction_best": {"model": "ComplEx", "mrr": 0.465, "hits_at_10": 0.646},
}
# train_verifier has no defaults for these (they are VerifySettings fields); every figure in
# reports/verify.md was measured with these, its former defaults
TRAIN_DEFAULTS: dict[str, Any] = {"model": "ComplEx", "dim": 128, "epochs": 100, "seed": 0}
# flags forwarded to train_verifier when given; absent flags keep TRAIN_DEFAULTS or its defaults
TRAIN_FLAGS = {
    "dim": int,
    "epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "training": str,
    "loss": str,
    "dropout": float,
    "label_smoothing": float,
    "negatives_per_positive": int,
    "eval_every": int,
    "patience": int,
    "seed": int,
    "num_threads": int,
}


def _json_object(text: str) -> dict[str, Any]:
    """``--model-kwargs`` value: a JSON object (e.g. '{"regularizer": "lp"}')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def read_triples(path: Path) -> list[LabeledTriple]:
    """Read a tab-separated head/relation/tail file; blank lines are skipped."""
    triples: list[LabeledTriple] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError(
                    f"{path}:{number}: expected 3 tab-separated fields, got {len(parts)}"
                )
            triples.append((parts[0], parts[1], parts[2]))
    return triples


def classification_metrics(
    calibrator: Calibrator, scores: np.ndarray, labels: np.ndarray, relations: np.ndarray
) -> dict[str, Any]:
    """Metrics of a score + calibrator pair (thresholds are on the raw score)."""
    decisions = calibrator.decide(scores, relations)
    probs = calibrator.probability(scores, relations)
    thresholds = {
        str(rel): (
            float(calibrator.thresholds.get(rel, calibrator.global_threshold)),
            rel in calibrator.thresholds,
        )
        for rel in set(relations.tolist())
    }
    return decision_metrics(decisions, probs, labels, relations, thresholds)


def decision_metrics(
    decisions: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray,
    relations: np.ndarray,
    thresholds: dict[str, tuple[float, bool]],
) -> dict[str, Any]:
    """Accuracy/F1 over all triples (unknown ones, NaN probability, count as rejected);
    calibration on known ones. ``thresholds``: relation -> (threshold, whether it is its own)."""
    known = np.isfinite(probs)
    diagram = reliability_diagram(probs[known], labels[known])
    return {
        "n": int(len(probs)),
        "n_unknown_rejected": int((~known).sum()),
        "accuracy": accuracy(labels, decisions),
        "f1": f1(labels, decisions),
        "ece": expected_calibration_error(probs[known], labels[known]),
        "brier": brier_score(probs[known], labels[known]),
        "reliability": dataclasses.asdict(diagram),
        "per_relation": per_relation_metrics(probs, labels, relations, decisions, thresholds),
    }


def per_relation_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    relations: np.ndarray,
    decisions: np.ndarray,
    thresholds: dict[str, tuple[float, bool]],
) -> dict[str, dict[str, Any]]:
    """Relation -> n, positives, the threshold used (own or global), accuracy, mean probability."""
    out: dict[str, dict[str, Any]] = {}
    for rel in sorted(set(relations.tolist())):
        mask = relations == rel
        known = probs[mask & np.isfinite(probs)]
        threshold, own = thresholds[str(rel)]
        out[str(rel)] = {
            "n": int(mask.sum()),
            "n_positive": int(labels[mask].sum()),
            "threshold": threshold,
            "own_threshold": own,
            "accuracy": accuracy(labels[mask], decisions[mask]),
            "mean_probability": float(known.mean()) if len(known) else None,
        }
    return out


def calibrator_cv_accuracy(
    scores: np.ndarray, labels: np.ndarray, relations: np.ndarray, *, n_folds: int = 5
) -> float:
    """Out-of-fold accuracy of ``Calibrator.fit`` on validation (comparable to the stacker's)."""
    folds = stratified_folds(labels, n_folds=n_folds, seed=0)
    decisions = np.zeros(len(labels), dtype=bool)
    for k in range(n_folds):
        fit_part, held_out = folds != k, folds == k
        calibrator = Calibrator.fit(scores[fit_part], labels[fit_part], relations[fit_part])
        decisions[held_out] = calibrator.decide(scores[held_out], relations[held_out])
    return accuracy(labels, decisions)


def stacked_classification(
    model: KGEModel,
    data: dict[str, list[LabeledTriple]],
    graph: GraphFeatures,
    extra_models: Sequence[KGEModel] = (),
) -> dict[str, Any]:
    """Fit the stacked classifier on valid (C by CV on valid), report it on test.

    Features: the KGE features of ``model`` and of each of ``extra_models`` (other saved
    verifiers, trained on the same train split), then the graph features.
    """
    models = [model, *extra_models]
    names = (
        *(
            f"{name}_{number + 1}" if number else name
            for number in range(len(models))
            for name in KGE_FEATURE_NAMES
        ),
        *FEATURE_NAMES,
    )
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for split in ("valid", "test"):
        triples = data[split] + data[f"{split}_negatives"]
        labels = np.array([1] * len(data[split]) + [0] * len(data[f"{split}_negatives"]))
        relations = np.array([r for _, r, _ in triples], dtype=object)
        features = np.hstack([*(kge_features(m, triples) for m in models), graph.features(triples)])
        sets[split] = (features, labels, relations)
    # fitted on valid only; test is touched for metrics
    stacker = StackedClassifier.fit(*sets["valid"], feature_names=names)
    shared_only = StackedClassifier.fit(
        *sets["valid"], feature_names=names, min_per_relation=sys.maxsize
    )

    def metrics(split: str) -> dict[str, Any]:
        x, labels, relations = sets[split]
        own = set(stacker.relations)
        thresholds = {str(r): (0.5, r in own) for r in set(relations.tolist())}
        return decision_metrics(
            stacker.decide(x, relations),
            stacker.probability(x, relations),
            labels,
            relations,
            thresholds,
        )

    x_test, y_test, rel_test = sets["test"]
    return {
        "test": metrics("test"),
        "valid_in_sample": metrics("valid"),
        "valid_cv_accuracy": stacker.cv_accuracy,
        "valid_cv_ece": stacker.cv_ece,
        "test_accuracy_global_threshold_only": accuracy(
            y_test, shared_only.decide(x_test, rel_test)
        ),
        "calibrator": {
            "method": f"stacked LR (C={stacker.c:g})",
            "cv_brier": {},
            "cv_accuracy_by_c": {f"{c:g}": a for c, a in stacker.selection.items()},
            "shared_only_valid_cv_accuracy": shared_only.cv_accuracy,
            "n_relation_thresholds": len(stacker.relations),
            "n_relations_in_valid": len(set(sets["valid"][2].tolist())),
            "min_per_relation": stacker.min_per_relation,
            "features": list(names),
            "shared_weights": stacker.weights(),
            "n_graph_rules": sum(len(rules) for rules in graph.rules.values()),
        },
    }


def run_one(
    model_name: str | None,
    data: dict[str, list[LabeledTriple]],
    train_kwargs: dict[str, Any],
    *,
    load_from: Path | None = None,
    graph: GraphFeatures | None = None,
    stack_with: Sequence[Path] = (),
) -> tuple[KGEModel, dict[str, Any]]:
    """Train one model (None: the one in train_kwargs) and evaluate it, JSON-ready.

    With ``load_from`` the saved verifier is evaluated instead; its training record (and the
    train time it recorded) come from its metadata, CPU time and peak memory are not known.
    With ``graph`` the stacked classifier (KGE scores + graph features) is a third score kind;
    the saved verifiers in ``stack_with`` add their KGE features to it.
    """
    kwargs = dict(train_kwargs) if model_name is None else {**train_kwargs, "model": model_name}
    cpu_before = harness.cpu_seconds()
    wall_before = time.perf_counter()
    if load_from is not None:
        model = KGEModel.load(load_from)
        torch.set_num_threads(int(train_kwargs.get("num_threads", model.config.num_threads)))
        train_wall, train_cpu = model.report.seconds, float("nan")
    else:
        model = train_verifier(data["train"], valid=data["valid"], **kwargs)
        train_wall = time.perf_counter() - wall_before
        train_cpu = harness.cpu_seconds() - cpu_before

    # two ways to read the model: its raw score, and its softmax log-likelihood over all
    # entities; which one the run reports as primary is decided on validation accuracy only
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in ("score", "log_likelihood"):
        scorer = model.score if kind == "score" else model.log_likelihood
        sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for split in ("valid", "test"):
            triples = data[split] + data[f"{split}_negatives"]
            labels = np.array([1] * len(data[split]) + [0] * len(data[f"{split}_negatives"]))
            relations = np.array([r for _, r, _ in triples], dtype=object)
            sets[split] = (scorer(triples), labels, relations)
        # thresholds and probabilities come from validation only; test is touched for metrics
        calibrator = Calibrator.fit(*sets["valid"])
        global_only = Calibrator.fit(*sets["valid"], min_per_relation=sys.maxsize, method="platt")
        test_scores, test_labels, test_relations = sets["test"]
        by_kind[kind] = {
            "test": classification_metrics(calibrator, *sets["test"]),
            "valid_in_sample": classification_metrics(calibrator, *sets["valid"]),
            "valid_cv_accuracy": calibrator_cv_accuracy(*sets["valid"]),
            "test_accuracy_global_threshold_only": accuracy(
                test_labels, global_only.decide(test_scores, test_relations)
            ),
            "calibrator": {
                "method": calibrator.method,
                "cv_brier": dict(calibrator.selection),
                "n_relation_thresholds": len(calibrator.thresholds),
                "n_relations_in_valid": len(set(sets["valid"][2].tolist())),
                "min_per_relation": calibrator.min_per_relation,
            },
        }
    if graph is not None:
        extra = [KGEModel.load(path) for path in stack_with]
        by_kind["stacked"] = stacked_classification(model, data, graph, extra)
    # chosen on validation only, out of fold: in-sample accuracy would favour the stacker,
    # which has far more parameters than a threshold per relation
    primary = max(by_kind, key=lambda k: by_kind[k]["valid_cv_accuracy"])
    lp_wall = time.perf_counter()
    link_prediction = model.evaluate_link_prediction(data["test"], filter_triples=data["valid"])
    lp_seconds = time.perf_counter() - lp_wall

    result = {
        "model": model.config.model,
        "config": dataclasses.asdict(model.config),
        "training": dataclasses.asdict(model.report),
        "train_wall_seconds": train_wall,
        "train_cpu_seconds": train_cpu,
        "primary_score_kind": primary,
        "classification": by_kind[primary],
        "classification_by_score_kind": by_kind,
        "link_prediction_test": dataclasses.asdict(link_prediction),
        "link_prediction_seconds": lp_seconds,
        "peak_rss_mb_so_far": harness.peak_rss_mb(),
        "loaded_from": None if load_from is None else str(load_from),
        "stacked_with": [str(path) for path in stack_with] if graph is not None else None,
    }
    return model, result


def markdown_summary(report: dict[str, Any]) -> str:
    """Human-readable summary of a benchmark report."""
    lines = [
        f"# KGE verifier benchmark: `{report['data']}`",
        "",
        "Command:",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Machine: {report['machine']['platform']}, torch {report['machine']['torch']} "
        "(torch threads per run: `num_threads` in its config). Peak RSS: largest over the "
        f"processes that produced these runs, {report['peak_rss_mb']:.0f} MB; per run in the "
        "table (the process's peak when that run ended, so it includes earlier runs of the same "
        "process).",
        "Calibration (per-relation thresholds + probability map) is fitted on valid "
        "positives/negatives only; all classification numbers below are on test.",
        "",
        "| # | model | config | score kind | acc | acc (global thr.) | F1 | ECE | Brier "
        "| calib. | MRR | Hits@10 | epochs (best) | train wall s | train CPU s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, run in enumerate(report["runs"], start=1):
        test = run["classification"]["test"]
        lp = run["link_prediction_test"]
        tr = run["training"]
        rss = run.get("peak_rss_mb_so_far")
        lines.append(
            f"| {number} | {run['model']} | {run_label(run)} | {run['primary_score_kind']} "
            f"| {test['accuracy']:.3f} "
            f"| {run['classification']['test_accuracy_global_threshold_only']:.3f} "
            f"| {test['f1']:.3f} | {test['ece']:.3f} | {test['brier']:.3f} "
            f"| {run['classification']['calibrator']['method']} "
            f"| {lp['mrr']:.3f} | {lp['hits_at_10']:.3f} "
            f"| {tr['epochs_run']} ({tr['best_epoch']}) | {run['train_wall_seconds']:.0f} "
            f"| {_fmt(run['train_cpu_seconds'], 0)} | {_fmt(rss, 0)} |"
        )
    paper = PAPER_CODEX_S
    lines += [
        "",
        "CoDEx paper (CoDEx-S) for reference: triple-classification accuracy "
        + ", ".join(f"{m} {a}" for m, a in paper["triple_classification_accuracy"].items())
        + f"; best link prediction {paper['link_prediction_best']['model']} MRR "
        f"{paper['link_prediction_best']['mrr']} / Hits@10 "
        f"{paper['link_prediction_best']['hits_at_10']}.",
        "",
    ]
    for number, run in enumerate(report["runs"], start=1):
        cfg = run["config"]
        cal = run["classification"]["calibrator"]
        rel = run["classification"]["test"]["reliability"]
        lines += [
            f"## {number}. {run['model']} ({run_label(run)})",
            "",
            "Config: " + ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("model",)),
            "",
            calibrator_line(cal),
            "",
            "Validation MRR during training (every eval_every epochs): "
            + ", ".join(f"{x:.3f}" for x in run["training"]["valid_mrr_history"]),
            "",
            "All score kinds (fitted on valid, measured on test; primary = higher 5-fold "
            "cross-validated accuracy on valid, or in-sample for runs recorded without it):",
            "",
            "| score kind | valid acc (5-fold CV) | valid acc (in-sample) | test acc | test F1 "
            "| test ECE | test Brier |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {kind} | {_fmt(c.get('valid_cv_accuracy'), 3)} "
                f"| {c['valid_in_sample']['accuracy']:.3f} | {c['test']['accuracy']:.3f} "
                f"| {c['test']['f1']:.3f} | {c['test']['ece']:.3f} | {c['test']['brier']:.3f} |"
                for kind, c in run["classification_by_score_kind"].items()
            ),
            "",
            f"Test reliability diagram of the primary score kind ({run['primary_score_kind']}, "
            "10 equal-width bins):",
            "",
            "| bin | n | mean p | fraction true |",
            "|---|---|---|---|",
        ]
        edges = rel["bin_edges"]
        for i, n in enumerate(rel["counts"]):
            mean_p, frac = rel["mean_probability"][i], rel["fraction_positive"][i]
            lines.append(
                f"| {edges[i]:.1f}-{edges[i + 1]:.1f} | {n} "
                f"| {'-' if mean_p is None else f'{mean_p:.3f}'} "
                f"| {'-' if frac is None else f'{frac:.3f}'} |"
            )
        lines.append("")
    if report.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines)


def calibrator_line(cal: dict[str, Any]) -> str:
    """One sentence on how the primary score kind was turned into decisions and probabilities."""
    if "cv_accuracy_by_c" in cal:
        weights = ", ".join(f"{k} {v:+.2f}" for k, v in cal["shared_weights"].items())
        return (
            f"Classifier: {cal['method']}, C chosen by 5-fold CV accuracy on valid ("
            + ", ".join(f"C={c}: {a:.4f}" for c, a in cal["cv_accuracy_by_c"].items())
            + f"; shared weights only: {cal['shared_only_valid_cv_accuracy']:.4f}); "
            f"{cal['n_relation_thresholds']} of {cal['n_relations_in_valid']} relations have "
            f"their own intercept and weights (min {cal['min_per_relation']} valid examples), "
            f"the rest use the shared weights; {cal['n_graph_rules']} path rules mined from "
            f"train. Shared weights (standardized features): {weights}."
        )
    return (
        f"Calibrator: {cal['method']} (cross-validated Brier on valid: "
        + ", ".join(f"{k} {v:.4f}" for k, v in cal["cv_brier"].items())
        + f"); {cal['n_relation_thresholds']} of {cal['n_relations_in_valid']} relations "
        f"have their own threshold (min {cal['min_per_relation']} valid examples), "
        "the rest use the global one."
    )


def run_label(run: dict[str, Any]) -> str:
    """The settings that tell runs of one model apart, in one short string."""
    cfg = run["config"]
    return (
        f"dim {cfg['dim']}, lr {cfg['learning_rate']:g}, drop {cfg['dropout']:g}, "
        f"ls {cfg['label_smoothing']:g}, max {cfg['epochs']} ep, patience {cfg['patience']}"
        + _stack_label(run)
    )


def _stack_label(run: dict[str, Any]) -> str:
    extra = run.get("stacked_with")
    if extra is None:
        return ""
    names = ", ".join(Path(path).name for path in extra)
    features = run["classification_by_score_kind"]["stacked"]["calibrator"].get("features", [])
    kind = (
        "graph features + attribute evidence"
        if has_attribute_evidence(features)
        else "graph features"
    )
    return f"; stacked with {kind}{' + ' + names if names else ''}"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder in the CoDEx layout")
    parser.add_argument(
        "--model",
        action="append",
        help="PyKEEN model name; repeat to compare several (default: TRAIN_DEFAULTS)",
    )
    parser.add_argument("--out", type=Path, help="JSON report path")
    parser.add_argument("--md", type=Path, help="markdown summary (default: --out with .md)")
    parser.add_argument("--save-model", type=Path, help="save the last trained verifier here")
    parser.add_argument(
        "--load-model", type=Path, help="evaluate this saved verifier instead of training"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="append the runs to those already in --out (commands are concatenated)",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="also fit the stacked classifier (KGE scores + train-graph features) on valid",
    )
    parser.add_argument(
        "--stack-model",
        type=Path,
        action="append",
        default=[],
        help="saved verifier whose KGE scores are added to the stacker's features (repeatable)",
    )
    for flag, kind in TRAIN_FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag)
    parser.add_argument(
        "--model-kwargs",
        type=_json_object,
        dest="model_kwargs",
        help="JSON object passed to the PyKEEN model constructor (replaces kgenrich's default "
        'kwargs for that model), e.g. \'{"regularizer": "lp", "regularizer_kwargs": {"p": 3}}\'',
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("pykeen", "torch_max_mem"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # the early stopper's one line per validation check is the only progress a long run shows
    logging.getLogger("pykeen.stoppers").setLevel(logging.INFO)

    data = {split: read_triples(args.data / f"{split}.txt") for split in SPLITS}
    print({split: len(triples) for split, triples in data.items()})
    train_kwargs = TRAIN_DEFAULTS | {
        k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None
    }
    if args.model_kwargs is not None:
        train_kwargs["model_kwargs"] = args.model_kwargs
    models: list[str | None] = list(args.model) if args.model else [None]

    graph = GraphFeatures.fit(data["train"]) if args.stack else None
    runs = []
    model = None
    for name in models:
        model, result = run_one(
            name,
            data,
            train_kwargs,
            load_from=args.load_model,
            graph=graph,
            stack_with=args.stack_model,
        )
        name = result["model"]
        runs.append(result)
        test = result["classification"]["test"]
        lp = result["link_prediction_test"]
        print(
            f"{name}: test acc {test['accuracy']:.4f} F1 {test['f1']:.4f} ECE {test['ece']:.4f} "
            f"Brier {test['brier']:.4f} | MRR {lp['mrr']:.4f} Hits@10 {lp['hits_at_10']:.4f} | "
            f"train {result['train_wall_seconds']:.0f}s wall, {result['train_cpu_seconds']:.0f}s "
            f"CPU, {result['training']['epochs_run']} epochs | "
            f"peak RSS {harness.peak_rss_mb():.0f} MB"
        )
    if args.save_model is not None and model is not None:
        model.save(args.save_model)

    report = {
        "data": str(args.data),
        "command": "python " + " ".join(shlex.quote(a) for a in ["bench/verify.py", *sys.argv[1:]])
        if argv is None
        else "python bench/verify.py " + " ".join(shlex.quote(a) for a in argv),
        "machine": harness.machine(cpu_threads=torch.get_num_threads()),
        "sizes": {split: len(triples) for split, triples in data.items()},
        "runs": runs,
        "peak_rss_mb": harness.peak_rss_mb(),
        "reference_codex_s_paper": PAPER_CODEX_S,
    }
    if args.merge and args.out is not None and args.out.is_file():
        report = merge_reports(json.loads(args.out.read_text(encoding="utf-8")), report)
    if args.out is not None:
        md_path = args.md or args.out.with_suffix(".md")
        harness.write_report(args.out, report, markdown_summary(report), md_path=md_path)
        print(f"wrote {args.out} and {md_path}")
    return 0


def merge_reports(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with ``new``'s runs appended and its command added; peak RSS is the larger."""
    if old.get("data") != new["data"] and Path(old.get("data", "")).name != Path(new["data"]).name:
        raise ValueError(f"cannot merge reports on {old.get('data')!r} and {new['data']!r}")
    merged = dict(old)
    merged["command"] = old["command"] + "\n" + new["command"]
    merged["runs"] = [*old["runs"], *new["runs"]]
    merged["peak_rss_mb"] = max(float(old.get("peak_rss_mb", 0.0)), new["peak_rss_mb"])
    return merged


if __name__ == "__main__":
    raise SystemExit(main())
