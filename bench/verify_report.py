"""Write ``reports/verify.md`` and its two figures from the benchmarks' JSON results.

Inputs (all written by other scripts; nothing is recomputed here except plots and tables):
``reports/verify_codex_s.json`` (``bench/verify.py``), ``reports/confidence_ml100k.json``
(``bench/confidence.py``) and ``reports/unseen_entities_fb15k237.json``
(``bench/unseen_entities.py``); ``reports/verify_notes.md`` (hand-written) is appended as is.

    .venv/bin/python bench/verify_report.py
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kgenrich.verification.attributes import has_attribute_evidence  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ".venv/bin/python bench/verify_report.py"


def select_run(report: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The run with the best validation accuracy (test is not used to choose).

    Runs that record a 5-fold cross-validated validation accuracy are compared on it; in-sample
    accuracy would favour the stacked classifier, which has far more parameters than a threshold
    per relation. Only if no run has it, the in-sample accuracy decides (older reports).
    """
    runs = report["runs"]
    with_cv = [i for i, run in enumerate(runs) if _valid_cv(run) is not None]
    if with_cv:
        best = max(with_cv, key=lambda i: _valid_cv(runs[i]) or 0.0)
    else:
        best = max(
            range(len(runs)),
            key=lambda i: runs[i]["classification"]["valid_in_sample"]["accuracy"],
        )
    return best, runs[best]


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``p`` measured on ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _model_label(cfg: dict[str, Any]) -> str:
    """Seed and regularizer, where they differ from the defaults."""
    out = f", seed {cfg['seed']}" if cfg.get("seed") else ""
    kwargs = cfg.get("model_kwargs") or {}
    if kwargs.get("regularizer"):
        reg = kwargs.get("regularizer_kwargs") or {}
        out += f", reg {kwargs['regularizer']} " + " ".join(f"{k} {v}" for k, v in reg.items())
    return out


def _evidence_label(run: dict[str, Any]) -> str:
    """Runs whose stacker saw the attribute evidence of ``verification/attributes.py``."""
    names = run["classification_by_score_kind"]["stacked"]["calibrator"].get("features", [])
    return " (+ attribute evidence)" if has_attribute_evidence(names) else ""


def _valid_cv(run: dict[str, Any]) -> float | None:
    value = run["classification"].get("valid_cv_accuracy")
    return None if value is None else float(value)


def plot_reliability(report: dict[str, Any], chosen: int, path: Path) -> None:
    fig, (ax, axn) = plt.subplots(
        2, 1, figsize=(5.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for i, run in enumerate(report["runs"]):
        rel = run["classification"]["test"]["reliability"]
        pts = [
            (m, f)
            for m, f in zip(rel["mean_probability"], rel["fraction_positive"], strict=True)
            if m is not None
        ]
        test = run["classification"]["test"]
        label = (
            f"#{i + 1} {run['model']} ep {run['training']['epochs_run']} "
            f"(acc {test['accuracy']:.3f}, ECE {test['ece']:.3f})"
        )
        ax.plot(
            *zip(*pts, strict=True),
            marker="o" if i == chosen else ".",
            lw=2 if i == chosen else 0.8,
            alpha=1 if i == chosen else 0.6,
            label=label,
        )
    ax.set_ylabel("fraction of test triples that are true")
    ax.set_title("CoDEx-S test: calibrated KGE probability (10 bins)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    rel = report["runs"][chosen]["classification"]["test"]["reliability"]
    edges = rel["bin_edges"]
    axn.bar(
        [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)],
        rel["counts"],
        width=0.09,
        color="C0" if chosen == 0 else f"C{chosen % 10}",
    )
    axn.set_ylabel(f"n (run #{chosen + 1})")
    axn.set_xlabel("predicted P(true)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pr(conf: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    curve = conf["oof_curve_seed0"]
    ax.plot(
        curve["recall"],
        curve["precision"],
        lw=2,
        label=f"combined (out-of-fold, AP {conf['oof_average_precision_seed0']:.3f})",
    )
    names = {
        "kge_probability": "KGE probability alone",
        "mean_heuristic": "current mean heuristic",
        "agreement": "LLM agreement alone",
        "catalog_rule": "catalog genre rule alone",
    }
    for name, b in conf["baselines"].items():
        c = b["curve"]
        ax.plot(
            c["recall"],
            c["precision"],
            lw=1,
            ls="--",
            label=f"{names.get(name, name)} (AP {b['average_precision']:.3f})",
        )
    cv = conf["cv"]
    ax.plot(
        [cv["recall_mean"]],
        [cv["precision_mean"]],
        "k*",
        ms=10,
        label=f"accepted at CV threshold: P {cv['precision_mean']:.2f} / R {cv['recall_mean']:.2f}",
    )
    ax.axhline(conf["target_precision"], color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("recall (true candidates)")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1.0)
    ax.set_title(
        f"MovieLens-100K completion candidates (n={conf['n_rows']}, {conf['n_true']} true)",
        fontsize=9,
    )
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(x: float | None, d: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"


def codex_section(report: dict[str, Any], chosen: int, labels: dict[str, str]) -> list[str]:
    out = [
        "## 1. KGE verifier on CoDEx-S (triple classification against hard negatives)",
        "",
        "Every config tried (from `reports/verify_codex_s.json`; commands in "
        "`reports/verify_codex_s.md`). Thresholds and the probability map are fitted on valid; "
        "all numbers are on test. Train time is wall-clock on a shared 2-core machine (other "
        "benchmarks and an LLM server ran at the same time), CPU seconds are the process's.",
        "",
        "Runs marked *re-eval.* evaluate a model saved by an earlier run (`--load-model`, same "
        "weights; train time from its metadata); `stacked` is the stacked classifier "
        "(`--stack`: per-relation logistic regression over KGE scores, ranks and train-graph "
        "features, fitted on valid). `valid CV` is 5-fold cross-validated accuracy on valid, "
        "the selection criterion.",
        "",
        "| # | model | config | decision | valid CV | acc | F1 | ECE | Brier | MRR | Hits@10 "
        "| epochs (best) | train wall s | train CPU s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(report["runs"]):
        t = run["classification"]["test"]
        lp = run["link_prediction_test"]
        cfg = run["config"]
        tr = run["training"]
        label = (
            f"dim {cfg['dim']}, lr {cfg['learning_rate']:g}, drop {cfg['dropout']:g}, "
            f"ls {cfg['label_smoothing']:g}, {cfg['num_threads']} thr"
        )
        label += _model_label(cfg)
        if run.get("loaded_from"):
            label += ", *re-eval.*"
        if run.get("stacked_with") is not None:
            label += "; stack" + _evidence_label(run)
            if run["stacked_with"]:
                label += " + " + ", ".join(Path(p).name for p in run["stacked_with"])
        mark = " (selected)" if i == chosen else ""
        out.append(
            f"| {i + 1}{mark} | {run['model']} | {label} | {run['primary_score_kind']} "
            f"| {_f(_valid_cv(run))} | {t['accuracy']:.3f} | {t['f1']:.3f} "
            f"| {t['ece']:.3f} | {t['brier']:.3f} | {lp['mrr']:.3f} | {lp['hits_at_10']:.3f} "
            f"| {tr['epochs_run']} ({tr['best_epoch']}) | {run['train_wall_seconds']:.0f} "
            f"| {_f(run.get('train_cpu_seconds'), 0)} | {_f(run.get('peak_rss_mb_so_far'), 0)} |"
        )
    run = report["runs"][chosen]
    t = run["classification"]["test"]
    n_test = report["sizes"]["test"] + report["sizes"]["test_negatives"]
    low, high = wilson_interval(t["accuracy"], n_test)
    out += [
        "",
        f"Selected (best 5-fold CV accuracy on valid, test not used to choose): "
        f"run #{chosen + 1} ({run['primary_score_kind']}), "
        f"test accuracy {t['accuracy']:.3f} (95% Wilson interval over {n_test:,} test triples: "
        f"{low:.3f}-{high:.3f}), ECE {t['ece']:.3f}, Brier {t['brier']:.3f}. "
        "Targets: accuracy >= 0.85 "
        + ("**met**" if t["accuracy"] >= 0.85 else "**not met**")
        + ", ECE <= 0.05 "
        + ("**met**" if t["ece"] <= 0.05 else "**not met**")
        + ".",
        "",
        "![reliability](verify_reliability.png)",
        "",
    ]
    per = t.get("per_relation")
    if per:
        out += [
            f"### Per relation (run #{chosen + 1}, test)",
            "",
            (
                "`threshold` is on P(true) (the stacker accepts at 0.5); `own` = the relation "
                "has its own intercept and weights, otherwise the shared weights apply "
                f"(fewer than {run['classification']['calibrator']['min_per_relation']} "
                "validation examples)."
                if run["primary_score_kind"] == "stacked"
                else "`threshold` is on the raw score; relations with fewer than "
                f"{run['classification']['calibrator']['min_per_relation']} validation examples "
                "use the global threshold (`own` = no)."
            ),
            "",
            "| relation | label | n | true | threshold | own | accuracy | mean P(true) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for rel, m in sorted(per.items(), key=lambda kv: -kv[1]["n"]):
            out.append(
                f"| {rel} | {labels.get(rel, '')} | {m['n']} | {m['n_positive']} "
                f"| {m['threshold']:.3f} | {'yes' if m['own_threshold'] else 'no'} "
                f"| {m['accuracy']:.3f} | {_f(m['mean_probability'])} |"
            )
        out.append("")
    else:
        out += [
            "(The selected run predates per-relation output; re-run it with "
            "`bench/verify.py --load-model`.)",
            "",
        ]
    return out


def confidence_section(conf: dict[str, Any]) -> list[str]:
    cv = conf["cv"]
    fm = conf["final_model"]
    fc = conf["feature_counts"]
    ins = conf["final_in_sample_threshold"]
    key = conf.get("key_in_asked_groups")
    true_acc = [r["true_accepted"] for r in cv["repeats"]]
    out = [
        "## 2. One confidence per candidate (MovieLens-100K hidden facts)",
        "",
        "Data: LLM completion candidates (embedded Qwen2.5-Coder-1.5B, "
        "`bench/enrichment_value.py`, hidden-graph seed 0) for items with hidden `directed_by` / "
        "`has_genre` groups, labelled by the answer key (`imdb_auxiliary.txt`): "
        + "; ".join(
            f"`{f['path']}` (k={f['samples']}): {f['rows_used']} rows of "
            f"{f['items_used']} items used"
            for f in conf["inputs"]
        )
        + f" (an item's rows come from the first file that has it). In all {conf['n_rows']} "
        f"candidates of {conf['n_items']} items, {conf['n_true']} true. By relation: "
        + ", ".join(
            f"{r} {v['n']} ({v['true']} true, {v['kge_missing']} without KGE probability)"
            for r, v in conf["by_relation"].items()
        )
        + ".",
        "",
        f"Features present: KGE probability on {fc['kge_present']} rows; catalog genre "
        f"(`ml-100k.item` class) agrees {fc['catalog_agrees']} / disagrees "
        f"{fc['catalog_disagrees']}; new entity {fc['new_entity']}; agreement (k > 1 rows) "
        f"{fc['agreement_values_k_gt_1']}, {fc['rows_k_1']} rows with k = 1 (agreement "
        "treated as missing: `single_sample` = 1, agreement 0). No extracted triples "
        "(so no text-evidence signal) and no fallback scores in "
        "this data: those weights are 0 (constant columns are not fitted).",
        "",
        f"Protocol: {conf['folds']}-fold cross-validation grouped by item, {conf['repeats']} "
        f"repeats; in each fold the accept threshold is the lowest reaching precision "
        f"{conf['target_precision']} on the training folds; precision / recall are pooled over "
        "the held-out folds. Recall is of the true candidates (what the LLM proposed correctly)"
        + (
            f"; the asked groups hold {key} hidden triples, so recall of the answer key is about "
            f"{sum(true_acc) / len(true_acc) / key:.3f}"
            if key
            else ""
        )
        + ".",
        "",
        "| scorer | precision at CV threshold | recall | average precision |",
        "|---|---|---|---|",
        f"| combined (this model) | {cv['precision_mean']:.3f} [{cv['precision_min']:.3f}, "
        f"{cv['precision_max']:.3f}] | {cv['recall_mean']:.3f} [{cv['recall_min']:.3f}, "
        f"{cv['recall_max']:.3f}] | {conf['oof_average_precision_seed0']:.3f} |",
    ]
    for name, b in conf["baselines"].items():
        prec = _f(b["precision_mean"])
        if prec == "-":
            prec = "- (no threshold reaches the target)"
        out.append(
            f"| {name} alone | {prec} | {b['recall_mean']:.3f} | {b['average_precision']:.3f} |"
        )
    others = conf.get("cv_other_targets", {})
    out += [
        "",
        "[min, max] over repeats. Baselines use the same grouped threshold choice.",
        "",
    ]
    if others:
        out += [
            "The same protocol with other precision targets for the fold's threshold "
            "(the shipped `DEFAULT_THRESHOLD` is the one whose held-out precision is highest):",
            "",
            "| target on the fit folds | held-out precision | held-out recall |",
            "|---|---|---|",
            f"| {conf['target_precision']:g} | {cv['precision_mean']:.3f} "
            f"| {cv['recall_mean']:.3f} |",
            *(
                f"| {t} | {c['precision_mean']:.3f} [{c['precision_min']:.3f}, "
                f"{c['precision_max']:.3f}] | {c['recall_mean']:.3f} |"
                for t, c in others.items()
            ),
            "",
        ]
    audit = conf.get("key_audit")
    if audit:
        out += [
            "Why 0.9 is out of reach here, measured on the data alone (no prediction involved): "
            f"of the {audit['catalog_genres']:,} genres the catalog gives its "
            f"{audit['items']:,} movies, the answer key lists only "
            f"{audit['share_in_key']:.1%}, and for {audit['items_disjoint']} movies "
            f"({audit['share_items_disjoint']:.1%}) the two genre sets are disjoint (hand-checked "
            "examples in the notes below). The strongest signal, a genre the "
            f"catalog confirms, is right for {audit['candidates_catalog_agrees_true']} of the "
            f"{audit['candidates_catalog_agrees']} candidates that have it "
            f"({audit['candidates_catalog_agrees_true'] / audit['candidates_catalog_agrees']:.3f}"
            "), and nothing else in the data separates the rest.",
            "",
        ]
    out += [
        "![precision/recall](verify_pr_curve.png)",
        "",
        "Final model (all rows; these are `verification.confidence.DEFAULT_MODEL`):",
        "",
        "| term | weight |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" for k, v in fm["weights"].items()),
        *(f"| offset {k} | {v:.4f} |" for k, v in fm["relation_offsets"].items()),
        f"| intercept | {fm['intercept']:.4f} |",
        "",
        f"In-sample threshold for precision {conf['target_precision']}: "
        f"{_f(ins['threshold'], 4)} (precision {_f(ins['precision'])}, recall "
        f"{_f(ins['recall'])}, {ins['n_accepted']} accepted).",
        "",
    ]
    return out


def unseen_section(un: dict[str, Any]) -> list[str]:
    out = [
        "## 3. Unseen entities (text fallback, FB15k-237)",
        "",
        f"From `reports/unseen_entities_fb15k237.md`: {un['n_held_out_entities']} train "
        "entities held out, their test triples scored by the text fallback "
        f"(`verification.fallback`, {un['encoder']['name']}) against one type-consistent corrupted "
        "tail each.",
        "",
        "| negatives | scorer | n | accuracy | F1 | ECE | Brier | AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for neg, by in un["results"].items():
        for name, r in by.items():
            out.append(
                f"| {neg} | {name} | {r['n']} | {r['accuracy']:.3f} | {r['f1']:.3f} "
                f"| {r['ece']:.3f} | {r['brier']:.3f} | {r['auc']:.3f} |"
            )
    fb = un["results"]["uniform"]["fallback"]
    out += [
        "",
        f"Reading: on entities the KGE cannot score, the fallback separates true from "
        f"corrupted tails far less well than the KGE on seen ones (accuracy "
        f"{fb['accuracy']:.3f} / AUC {fb['auc']:.3f} with uniform negatives, lower with "
        "frequency-matched ones) and is over-confident (ECE "
        f"{fb['ece']:.3f}). A fallback probability should therefore never auto-accept on "
        "its own; in the combiner it is a separate feature whose weight is 0 until it is "
        "fitted on labelled unseen-entity candidates.",
        "",
    ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reports", type=Path, default=ROOT / "reports")
    ap.add_argument(
        "--codex-relations",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "codex-s" / "relations.json",
    )
    args = ap.parse_args(argv)
    r = args.reports
    codex = json.loads((r / "verify_codex_s.json").read_text(encoding="utf-8"))
    conf = json.loads((r / "confidence_ml100k.json").read_text(encoding="utf-8"))
    unseen = json.loads((r / "unseen_entities_fb15k237.json").read_text(encoding="utf-8"))
    labels: dict[str, str] = {}
    if args.codex_relations.is_file():
        labels = {
            k: v["label"]
            for k, v in json.loads(args.codex_relations.read_text(encoding="utf-8")).items()
        }
    chosen, _ = select_run(codex)
    plot_reliability(codex, chosen, r / "verify_reliability.png")
    plot_pr(conf, r / "verify_pr_curve.png")
    lines = [
        "# Verification: KGE verifier, combined confidence, unseen entities",
        "",
        "Regenerate (figures and this file) from the JSON results:",
        "",
        "```",
        COMMAND,
        "```",
        "",
        *codex_section(codex, chosen, labels),
        *confidence_section(conf),
        *unseen_section(unseen),
    ]
    notes = r / "verify_notes.md"
    if notes.is_file():
        # hand-written findings, kept apart so that regenerating never loses them
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    (r / "verify.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {r / 'verify.md'}, {r / 'verify_reliability.png'}, {r / 'verify_pr_curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
