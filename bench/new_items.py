"""Does the gold KG help a recommender on *new* items (no training interaction)?

Protocol (issue 10, items 2-3; `kgenrich.recsys.protocol`): ratings >= 4 are positives with as
many sampled negatives per user (`recsys.data.load_recbole`, RippleNet's movie labelling, sampling
seed 0); per seed, 20% of the items with >= 5 positives become new items, all their rows go to
validation/test (half each), the other rows are split 6:2:2.  KG variants on identical splits:
(a) no KG, (b) full KG, (c) hidden KG (for new items a seeded `--hide-fraction` of their
(item, relation) groups removed), (r) knowledge-free control: the full KG with every tail
swapped with a random tail of the same relation (each item keeps its degree per relation, each
tail its degree), (r_new) the same swap among the new items' triples only.
Model: `recsys.kgitem_model.KGItemNet` (an item = its own id embedding plus
the per-relation mean of its KG neighbours' embeddings; a new item has only the latter).

Hyperparameters are chosen per variant on the validation rows of `--tune-seed` (not one of the
evaluated seeds); each run's epoch by its own validation AUC (all rows); ACC thresholds on
validation rows.  Test rows are scored once.  Paired differences over seeds get a t-interval.

    nice -n 10 .venv/bin/python bench/new_items.py --seeds 1,2,3,4,5 \
        --variants a,b,c,r,r_new,b_mean,c_mean,b_nodrop --relation-value --ripplenet-seeds 1,2,3
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

import harness
from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.io.interactions import read_interaction_table
from kgenrich.kg.io.seed import SeedFormat, read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.recsys.data import RippleData, load_recbole, make_ripple_data, with_kg
from kgenrich.recsys.kg_ids import IndexedKG, index_triples
from kgenrich.recsys.kgitem_train import KGITEM_SELECTION, KGItemResult, train_kgitem
from kgenrich.recsys.params import KGItemParams, preset
from kgenrich.recsys.protocol import NewItemSplit, kg_variants, new_item_split
from kgenrich.recsys.train import train_and_evaluate

logger = logging.getLogger("bench.new_items")

DATA = harness.ROOT.parent / "shared" / "data" / "movielens-100k"
NAMES = {"a": "(a) no KG", "b": "(b) full KG", "c": "(c) hidden KG",
         "r": "(r) random KG, same degrees",
         "r_new": "(r_new) random tails at new items only",
         "b_mean": "(b) ablation: one mean over all neighbours",
         "c_mean": "(c) ablation: one mean over all neighbours",
         "b_nodrop": "(b) ablation: no id dropout"}
# Ablations: the KG of a base variant, its tuned hyperparameters, one field changed.
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "b_mean": ("b", {"aggregation": "mean"}),
    "c_mean": ("c", {"aggregation": "mean"}),
    "b_nodrop": ("b", {"id_dropout": 0.0}),
}
PAIRS = ("b-a", "b-c", "c-a", "b-r", "r-a", "b-r_new", "r_new-a", "b-b_mean", "c-c_mean",
         "b-b_nodrop")
# The validation grid each variant picks from (tune seed only).
GRID: dict[str, tuple[float, ...]] = {"weight_decay": (1e-5, 3e-5, 1e-4),
                                      "id_dropout": (0.0, 0.25, 0.5)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--interactions", type=Path, default=DATA / "ml-100k.inter",
                   help="RecBole .inter (user_id, item_id, rating)")
    p.add_argument("--seed-kg", type=Path, default=DATA / "imdb_auxiliary.txt",
                   help="the gold item KG, any format kg.io.seed reads")
    p.add_argument("--seed-format", default="auxiliary")
    p.add_argument("--ontology", type=Path, default=harness.ROOT / "data/ontology/movies.json")
    p.add_argument("--rating-threshold", type=float, default=4.0)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--tune-seed", type=int, default=0,
                   help="split seed whose validation rows choose each variant's hyperparameters")
    p.add_argument("--no-tune", action="store_true", help="use KGItemParams' defaults")
    p.add_argument("--variants", default="a,b,c,r,r_new",
                   help="of a,b,c,r,r_new and the ablations b_mean,c_mean,b_nodrop")
    p.add_argument("--relation-value", action="store_true",
                   help="add, per relation, (b) with that relation removed for new items")
    p.add_argument("--hide-fraction", type=float, default=0.5)
    p.add_argument("--new-fraction", type=float, default=0.2)
    p.add_argument("--min-positives", type=int, default=5)
    p.add_argument("--epochs", type=int, help="KGItemNet epochs (default: KGItemParams)")
    p.add_argument("--dim", type=int)
    p.add_argument("--ripplenet-seeds", default="",
                   help="also train RippleNet (a) and (b) on these seeds' splits (slow)")
    p.add_argument("--ripplenet-epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=harness.ROOT / "reports" / "new_items.json")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> tuple[RippleData, IndexedKG, dict[str, int]]:
    """Labelled ratings (items numbered as load_recbole numbers them) and the indexed gold KG."""
    tokens = [str(t) for t in np.unique(np.array(read_interaction_table(args.interactions).items))]
    data = load_recbole(args.interactions, rating_threshold=args.rating_threshold, seed=0)
    fmt: SeedFormat = args.seed_format
    seed = read_seed(args.seed_kg, format=fmt, ontology=load_ontology(args.ontology),
                     on_error="skip")
    kg = index_triples([t.key for t in seed.triples],
                       item_index={item_entity_id(t): i for i, t in enumerate(tokens)})
    # One entity-table size for every variant, so variants differ in their KG only.
    data = make_ripple_data(ratings=data.ratings, kg=None, source=data.source,
                            n_entities=kg.n_entities)
    counts = {"seed_triples": len(seed.triples), "seed_rejected": len(seed.rejected),
              "triples_about_unrated_items": kg.skipped}
    return data, kg, counts


def t_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds (nan bounds for one seed)."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if a.size < 2:
        return {"mean": mean, "ci95": [math.nan, math.nan], "per_seed": a.tolist()}
    half = float(stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": a.tolist()}


def run_row(r: KGItemResult, n_triples: int) -> dict[str, Any]:
    return {"auc_new": r.test_new.auc, "acc_new": r.test_new.acc, "auc_all": r.test_all.auc,
            "acc_all": r.test_all.acc, "auc_warm": r.test_warm.auc,
            "valid_auc_all": r.valid_all.auc, "valid_auc_new": r.valid_new.auc,
            "best_epoch": r.best_epoch, "threshold_new": r.test_new.threshold,
            "threshold_all": r.test_all.threshold, "n_test_new": r.test_new.n,
            "n_test_all": r.test_all.n, "triples": n_triples, "seconds": r.seconds}


def tune(data: RippleData, kg: np.ndarray, args: argparse.Namespace, base: KGItemParams,
         variants: Sequence[str]) -> tuple[dict[str, KGItemParams], list[dict[str, Any]]]:
    """Per variant, the grid point with the best validation AUC (all rows) on the tune seed."""
    split = new_item_split(data.ratings, seed=args.tune_seed, new_fraction=args.new_fraction,
                           min_positives=args.min_positives)
    kgs, _ = kg_variants(kg, new_items=split.new_items, hide_fraction=args.hide_fraction,
                         seed=args.tune_seed)
    chosen: dict[str, KGItemParams] = {}
    rows: list[dict[str, Any]] = []
    keys = list(GRID)
    for v in variants:
        best: tuple[float, KGItemParams] | None = None
        for point in itertools.product(*(GRID[k] for k in keys)):
            params = dataclasses.replace(base, **dict(zip(keys, point, strict=True)))
            r = train_kgitem(with_kg(data, kg=kgs[v]), split=split.split,
                             new_items=split.new_items, params=params, seed=args.tune_seed)
            rows.append({"variant": v, **dict(zip(keys, point, strict=True)),
                         "valid_auc_all": r.valid_all.auc, "valid_auc_new": r.valid_new.auc,
                         "best_epoch": r.best_epoch})
            if best is None or r.valid_all.auc > best[0]:
                best = (r.valid_all.auc, params)
        assert best is not None
        chosen[v] = best[1]
        print(f"tune {v}: " + ", ".join(f"{k}={getattr(best[1], k)}" for k in keys)
              + f" (valid AUC {best[0]:.4f})", flush=True)
    return chosen, rows


def ripplenet_runs(data: RippleData, kg: np.ndarray, args: argparse.Namespace,
                   seeds: Sequence[int]) -> dict[str, Any]:
    """RippleNet (preset movie) on the same splits, variants (a) and (b), new-item test AUC."""
    params = preset("movie", n_epoch=args.ripplenet_epochs)
    out: dict[str, Any] = {"params": dataclasses.asdict(params), "runs": {}}
    for seed in seeds:
        split = new_item_split(data.ratings, seed=seed, new_fraction=args.new_fraction,
                               min_positives=args.min_positives)
        kgs, _ = kg_variants(kg, new_items=split.new_items, hide_fraction=args.hide_fraction,
                             seed=seed)
        for v in ("a", "b"):
            res = train_and_evaluate(with_kg(data, kg=kgs[v]), params=params, seed=seed,
                                     split=split.split, keep_model=True)
            assert res.model is not None
            rows = split.split.test
            rows = rows[res.model.ripple.has_history[data.ratings[rows, 0]]]
            new = rows[split.is_new(data.ratings[rows, 1])]
            scores = res.model.predict(data.ratings[new, 0], data.ratings[new, 1])
            auc_new = float(roc_auc_score(data.ratings[new, 2], scores))
            out["runs"].setdefault(v, {})[str(seed)] = {
                "auc_all": res.test.auc, "auc_new": auc_new, "best_epoch": res.best_epoch}
            print(f"ripplenet seed {seed} {NAMES[v]}: test AUC all {res.test.auc:.4f}, "
                  f"new items {auc_new:.4f}", flush=True)
    return out


def fmt_ci(p: Mapping[str, Any]) -> str:
    lo, hi = p["ci95"]
    return f"{p['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def markdown(rep: dict[str, Any]) -> str:
    s = rep["split"]
    lines = [
        "# New items: what the gold KG buys a recommender for items without interactions",
        "",
        f"Command: `{rep['command']}`",
        "",
        f"Data: `{rep['data']['interactions']}` (rating >= {rep['data']['rating_threshold']} "
        f"positive, as many sampled negatives per user): {rep['data']['n_users']} users, "
        f"{rep['data']['n_items']} items, {rep['data']['n_rows']} rows. Gold KG "
        f"`{rep['data']['seed_kg']}`: {rep['data']['kg_triples']} triples "
        f"{rep['data']['kg_by_relation']}.",
        "",
        f"Split per seed (`recsys.protocol.new_item_split`): {s['new_items']:g} new items "
        f"({rep['new_fraction']:.0%} of the {s['eligible_items']:g} with >= "
        f"{rep['min_positives']} positives), whose {s['new_rows']:g} rows go half to "
        "validation, half to test; the other rows 6:2:2. Means over seeds: "
        f"{s['test_new_rows']:g} of {s['test_rows']:g} test rows are new items' rows. Hidden "
        f"KG: {rep['hide_fraction']:.0%} of the new items' (item, relation) groups "
        f"({s['hidden_groups']:g} of {s['new_item_groups']:g} groups, {s['hidden_triples']:g} "
        f"triples: the answer key; by relation {s['hidden_by_relation']}).",
        "",
        "ACC is accuracy at a threshold chosen on validation rows of the same set; "
        f"{s['test_new_positive_share']:.1%} of the new items' test rows are positives, so "
        "always predicting 'likes' scores that much ACC there.",
        "",
        "Model: `recsys.kgitem_model.KGItemNet`, matrix factorisation whose item vector is "
        "its own id embedding plus, per relation, the mean embedding of its KG neighbours "
        "(summed over relations), and whose item bias likewise adds the neighbours' mean "
        "biases; a new item has no trained id embedding, so it is scored from its neighbours, "
        "which warm items trained. A random `id_dropout` share of training rows is scored "
        "from the neighbours alone. "
        f"Selection: {KGITEM_SELECTION}; "
        f"hyperparameters per variant from the validation grid {GRID} on split seed "
        f"{rep['tune_seed']} (not evaluated). Seeds {rep['seeds']}.",
        "",
        "## Test AUC / ACC (mean ± sample std over seeds)",
        "",
        "| variant | triples | AUC new items | ACC new items | AUC all rows | ACC all rows "
        "| AUC warm rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for v, row in rep["variants"].items():
        def ms(key: str, row: Mapping[str, Any] = row) -> str:
            return f"{row[key]:.4f} ± {row[key + '_std']:.4f}"
        label = rep["names"].get(v, v)
        lines.append(f"| {label} | {row['triples']:.0f} | **{ms('auc_new')}** | "
                     f"{ms('acc_new')} | {ms('auc_all')} | {ms('acc_all')} | {ms('auc_warm')} |")
    lines += ["", "Hyperparameters chosen on validation: " + "; ".join(
        f"{v}: weight_decay={row['params']['weight_decay']:g}, "
        f"id_dropout={row['params']['id_dropout']:g}, aggregation={row['params']['aggregation']}"
        for v, row in rep["variants"].items()) + "."]
    lines += ["", "## Paired differences over seeds (mean [95% t-interval])", "",
              "| pair | AUC new items | ACC new items | AUC all rows | ACC all rows |",
              "|---|---|---|---|---|"]
    for pair in rep["paired"]:
        lines.append(f"| {pair} | **{fmt_ci(rep['paired'][pair])}** | "
                     f"{fmt_ci(rep['paired_acc_new'][pair])} | "
                     f"{fmt_ci(rep['paired_all'][pair])} | {fmt_ci(rep['paired_acc_all'][pair])} |")
    lines += [""]
    for pair, p in rep["paired"].items():
        lo, hi = p["ci95"]
        verdict = ("above zero" if lo > 0 else "below zero" if hi < 0
                   else "not distinguishable from zero")
        lines.append(f"- {pair} on new items' AUC: {p['mean']:+.4f}, 95% CI [{lo:+.4f}, "
                     f"{hi:+.4f}]: {verdict}.")
    lines += ["", "Per seed, AUC on new items:", "",
              "| variant | " + " | ".join(str(s) for s in rep["seeds"]) + " |",
              "|---|" + "---|" * len(rep["seeds"])]
    for v, row in rep["variants"].items():
        per_seed = " | ".join(f"{x:.4f}" for x in row["auc_new_per_seed"])
        lines.append(f"| {rep['names'].get(v, v)} | {per_seed} |")
    if rep.get("ripplenet"):
        rn = rep["ripplenet"]
        lines += ["", f"## RippleNet on the same splits (preset movie, "
                  f"{rn['params']['n_epoch']} epochs)", "",
                  "| variant | seed | AUC all rows | AUC new items |", "|---|---|---|---|"]
        for v, by in rn["runs"].items():
            for seed, r in by.items():
                lines.append(f"| {rep['names'].get(v, v)} | {seed} | {r['auc_all']:.4f} | "
                             f"{r['auc_new']:.4f} |")
        if {"a", "b"} <= rn["runs"].keys():
            common = sorted(rn["runs"]["a"].keys() & rn["runs"]["b"].keys())
            for key, label in (("auc_new", "new items"), ("auc_all", "all rows")):
                d = t_interval([rn["runs"]["b"][x][key] - rn["runs"]["a"][x][key]
                                for x in common])
                lines.append(f"\nRippleNet b-a, AUC {label}: {fmt_ci(d)} over seeds "
                             f"{', '.join(common)}.")
    lines += ["", "## Validation grid (tune seed)", "",
              "| variant | weight_decay | id_dropout | valid AUC all | valid AUC new | epoch |",
              "|---|---|---|---|---|---|"]
    for g in rep["tuning"]:
        lines.append(f"| {g['variant']} | {g['weight_decay']:g} | {g['id_dropout']:g} | "
                     f"{g['valid_auc_all']:.4f} | {g['valid_auc_new']:.4f} | {g['best_epoch']} |")
    m = rep["machine"]
    lines += ["", f"Runtime: {rep['total_seconds']:.0f} s in total ({rep['train_seconds']:.0f} s "
              f"training KGItemNet, {rep['n_runs']} runs); peak RSS {rep['peak_rss_mb']:.0f} MB; "
              f"{m['cpu_model']}, {m['cpu_count']} CPUs shared, torch {m.get('torch')} with "
              f"{rep['threads']} thread(s), 1-min load {m['load_average_1min']:.1f} at start.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    machine = harness.machine()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - NAMES.keys():
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {sorted(NAMES)}")
    data, kg, counts = load(args)
    names = dict(NAMES)
    pairs = list(PAIRS)
    # What each relation is worth to new items: (b) minus that relation at new items only.
    drops = {f"b_no_{rel}": j for j, rel in enumerate(kg.relations)} if args.relation_value \
        else {}
    for v, j in drops.items():
        names[v] = f"(b) without new items' {kg.relations[j]}"
        pairs.append(f"b-{v}")
        variants.append(v)
    print(f"{data.n_users} users, {data.n_items} items, {data.ratings.shape[0]} rows; "
          f"KG {kg.rows.shape[0]} triples, {kg.n_entities} entities", flush=True)
    base = KGItemParams()
    changes = {k: v for k, v in {"n_epoch": args.epochs, "dim": args.dim}.items() if v}
    base = dataclasses.replace(base, **changes)
    t_train = time.perf_counter()
    bases = [v for v in variants if v not in ABLATIONS and v not in drops]
    needed = {ABLATIONS[v][0] for v in variants if v in ABLATIONS} | ({"b"} if drops else set())
    if missing := needed - set(bases):
        raise SystemExit(f"ablations need their base variants too: {sorted(missing)}")
    if args.no_tune:
        chosen, tuning = {v: base for v in bases}, []
    else:
        chosen, tuning = tune(data, kg.rows, args, base, bases)
    for v in variants:
        if v in ABLATIONS:
            of, change = ABLATIONS[v]
            chosen[v] = dataclasses.replace(chosen[of], **change)
        elif v in drops:
            chosen[v] = chosen["b"]

    runs: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in variants}
    split_stats: list[dict[str, Any]] = []
    for seed in seeds:
        split: NewItemSplit = new_item_split(
            data.ratings, seed=seed, new_fraction=args.new_fraction,
            min_positives=args.min_positives)
        kgs, hidden = kg_variants(kg.rows, new_items=split.new_items,
                                  hide_fraction=args.hide_fraction, seed=seed)
        is_new = split.is_new(data.ratings[:, 1])
        at_new = split.is_new(kg.rows[:, 0])
        for v, j in drops.items():
            kgs[v] = kg.rows[~(at_new & (kg.rows[:, 1] == j))]
        split_stats.append({
            "new_items": int(split.new_items.size),
            "eligible_items": int(split.eligible_items.size),
            "new_rows": int(is_new.sum()), "test_rows": int(split.split.test.size),
            "test_new_rows": int(is_new[split.split.test].sum()),
            "test_new_positive_share": float(
                data.ratings[split.split.test[is_new[split.split.test]], 2].mean()),
            "hidden_groups": int(hidden.hidden_groups.shape[0]),
            "new_item_groups": hidden.n_groups, "hidden_triples": int(hidden.hidden.shape[0]),
            "hidden_by_relation": dict(Counter(kg.relations[r] for r in hidden.hidden[:, 1])),
        })
        for v in variants:
            r = train_kgitem(with_kg(data, kg=kgs[ABLATIONS.get(v, (v, {}))[0]]),
                             split=split.split,
                             new_items=split.new_items, params=chosen[v], seed=seed)
            runs[v][seed] = run_row(r, int(kgs[ABLATIONS.get(v, (v, {}))[0]].shape[0]))
            print(f"seed {seed} {v:10s} AUC new {r.test_new.auc:.4f} ACC new "
                  f"{r.test_new.acc:.4f} | AUC all {r.test_all.auc:.4f} ACC all "
                  f"{r.test_all.acc:.4f} | warm {r.test_warm.auc:.4f} (epoch {r.best_epoch}, "
                  f"{r.seconds:.1f}s)", flush=True)
    train_seconds = time.perf_counter() - t_train

    def summary(v: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("auc_new", "acc_new", "auc_all", "acc_all", "auc_warm", "triples"):
            vals = np.array([runs[v][s][key] for s in seeds], dtype=float)
            out[key] = float(vals.mean())
            out[key + "_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out["auc_new_per_seed"] = [runs[v][s]["auc_new"] for s in seeds]
        out["params"] = dataclasses.asdict(chosen[v])
        return out

    def paired(key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pair in pairs:
            x, y = pair.split("-")
            if x in runs and y in runs:
                out[pair] = t_interval([runs[x][s][key] - runs[y][s][key] for s in seeds])
        return out

    ripplenet = None
    if args.ripplenet_seeds:
        ripplenet = ripplenet_runs(data, kg.rows, args,
                                   [int(s) for s in args.ripplenet_seeds.split(",")])
    split_mean = {k: float(np.mean([s[k] for s in split_stats]))
                  for k in split_stats[0] if k != "hidden_by_relation"}
    split_mean["hidden_by_relation"] = {
        rel: float(np.mean([s["hidden_by_relation"].get(rel, 0) for s in split_stats]))
        for rel in kg.relations}
    rep: dict[str, Any] = {
        "protocol": "new-items",
        "command": " ".join(["nice -n 10 .venv/bin/python bench/new_items.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "names": {v: names[v] for v in variants},
        "seeds": seeds, "tune_seed": args.tune_seed, "hide_fraction": args.hide_fraction,
        "new_fraction": args.new_fraction, "min_positives": args.min_positives,
        "data": {"interactions": os.path.relpath(args.interactions, harness.ROOT),
                 "seed_kg": os.path.relpath(args.seed_kg, harness.ROOT),
                 "rating_threshold": args.rating_threshold, "n_users": data.n_users,
                 "n_items": data.n_items, "n_rows": int(data.ratings.shape[0]),
                 "kg_triples": int(kg.rows.shape[0]), "n_entities": kg.n_entities,
                 "kg_by_relation": dict(Counter(kg.relations[r] for r in kg.rows[:, 1])),
                 **counts},
        "split": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in split_mean.items()},
        "split_per_seed": split_stats,
        "variants": {v: summary(v) for v in variants},
        "paired": paired("auc_new"), "paired_acc_new": paired("acc_new"),
        "paired_all": paired("auc_all"), "paired_acc_all": paired("acc_all"),
        "runs": {v: {str(s): r for s, r in by.items()} for v, by in runs.items()},
        "tuning": tuning, "grid": GRID, "selection": KGITEM_SELECTION,
        "ripplenet": ripplenet,
        "threads": args.threads, "machine": machine, "n_runs": len(tuning) + len(seeds) * len(
            variants),
        "train_seconds": train_seconds, "total_seconds": time.perf_counter() - start,
        "peak_rss_mb": harness.peak_rss_mb(),
    }
    for pair, p in rep["paired"].items():
        print(f"{pair}: AUC new items {fmt_ci(p)}; all rows {fmt_ci(rep['paired_all'][pair])}")
    harness.write_report(args.out, rep, markdown(rep))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
