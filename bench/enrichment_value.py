"""What enrichment buys new items: the real `enrich` flow fills the gaps of new items, and a
KG-aware recommender is trained on each KG variant (issue 10).

Protocol, per seed (`kgenrich.recsys.protocol`): ratings >= `--rating-threshold` are positives
with as many sampled negatives per user; a seeded 20% of the items with >= 5 positives become
new items (all their rows in validation/test); for new items a seeded `--hide-fraction` of
their (item, relation) groups is removed from the seed KG; the removed triples are the answer
key. The hidden seed KG is written as TSV and the catalog, mapping, ontology and settings go to
`kgenrich.flows.enrich.enrich`, the code path of `kgenrich run` (its completion, KGE verifier,
combiner and export), with completion restricted to the new items (`complete.items`; the first
`--max-new-items` of them in seeded order when capped) and to the relations the seed KG has.
Variants, on identical splits, of `recsys.kgitem_model.KGItemNet` (an item is its own embedding
plus the mean of its KG neighbours', so a new item is scored from its neighbours):

  (a) no KG; (b) full KG; (c) hidden KG; (d) (c) + the accepted LLM triples;
  (d_unverified) (c) + every LLM proposal; (e) (c) + type-matched random triples, as many per
  relation as (d) adds, on the same items; (f) (c) + as many true hidden triples as (d) has
  correct ones (an oracle at equal count); (g) (c) + what a knowledge-free answerer, the most
  frequent tail per relation served by a loopback OpenAI-compatible server, gets accepted
  through the same flow.

Recommender hyperparameters are chosen on the validation rows of `--tune-seed` (not evaluated):
per variant for (a), (b), (c); the others use (c)'s. Thresholds of the verifier are the flow's
own (settings), never tuned on the answer key. Paired per-seed differences get t-intervals.

    .venv/bin/python bench/enrichment_value.py \\
        --catalog ../shared/data/movielens-100k/ml-100k.item --id-col item_id \\
        --title-col movie_title --text-col release_year \\
        --seed ../shared/data/movielens-100k/imdb_auxiliary.txt --seed-format auxiliary \\
        --interactions ../shared/data/movielens-100k/ml-100k.inter --seeds 1,2,3,4,5
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.ids import item_entity_id, normalize_label
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.interactions import read_interaction_table
from kgenrich.kg.io.seed import SeedFormat, read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Decision, Entity, SourceKind
from kgenrich.pipeline.catalog import catalog_triples
from kgenrich.pipeline.resolve import EntityIndex
from kgenrich.recsys.data import RippleData, load_recbole, make_ripple_data, with_kg
from kgenrich.recsys.kg_ids import IndexedKG, index_triples
from kgenrich.recsys.kgitem_train import KGItemResult, train_kgitem
from kgenrich.recsys.params import KGItemParams
from kgenrich.recsys.protocol import NewItemSplit, kg_variants, new_item_split
from kgenrich.settings import Settings, load_settings
from kgenrich.testing import ScriptedServer, per_relation

DATA = harness.ROOT.parent / "shared" / "data" / "movielens-100k"
NAMES = {"a": "(a) no KG", "b": "(b) full KG", "c": "(c) hidden KG",
         "d": "(d) hidden + accepted LLM triples",
         "d_unverified": "(d') hidden + every LLM proposal",
         "e": "(e) hidden + type-matched random triples",
         "f": "(f) hidden + oracle triples, as many as (d) has correct",
         "g": "(g) hidden + accepted triples of a knowledge-free answerer"}
PAIRS = ("b-a", "b-c", "c-a", "d-c", "d-e", "d-d_unverified", "d-g", "f-c", "d-f",
         "d_unverified-c")
GRID = {"weight_decay": (1e-5, 1e-4, 1e-3), "id_dropout": (0.0, 0.25, 0.5)}
Key = tuple[str, str, str]  # (catalog item id, relation, normalized tail label)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Without --catalog: MovieLens-100K with imdb_auxiliary.txt. With it, the seed KG and the
    # interactions are the user's: --interactions is required, --seed optional (--attr columns
    # alone can be the KG).
    p.add_argument("--catalog", type=Path, default=None)
    p.add_argument("--id-col", default="item_id")
    p.add_argument("--title-col", default="movie_title")
    p.add_argument("--text-col", action="append", default=None)
    p.add_argument("--attr", action="append", default=[], metavar="COLUMN=RELATION",
                   help="catalog column whose values are facts of RELATION: part of the KG "
                   "that is hidden and restored, like the seed's triples")
    p.add_argument("--list-sep", default="|")
    p.add_argument("--catalog-format", default="auto")
    p.add_argument("--seed", type=Path, default=None, dest="seed_kg")
    p.add_argument("--seed-format", default="auto")
    p.add_argument("--seed-link", type=Path, default=None)
    p.add_argument("--ontology", type=Path, default=harness.ROOT / "data" / "ontology" /
                   "movies.json")
    p.add_argument("--interactions", type=Path, default=None)
    p.add_argument("--rating-threshold", type=float, default=4.0)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--tune-seed", type=int, default=0)
    p.add_argument("--hide-fraction", type=float, default=0.5)
    p.add_argument("--max-new-items", type=int, default=None,
                   help="ask only the first N new items per seed (a cap for a quick run)")
    p.add_argument("--samples", type=int, default=None, help="complete.samples")
    p.add_argument("--epochs", type=int, default=None, help="recommender epochs")
    p.add_argument("--backend", default=None)
    p.add_argument("--base-url", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--set", action="append", default=[], dest="assignments",
                   metavar="KEY=VALUE", help="any kgenrich setting, as `kgenrich run --set`")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    p.add_argument("--out", type=Path, default=harness.ROOT / "reports" /
                   "enrichment_value.json")
    args = p.parse_args(argv)
    if args.catalog is None:
        args.catalog = DATA / "ml-100k.item"
        args.seed_kg = args.seed_kg or DATA / "imdb_auxiliary.txt"
        args.interactions = args.interactions or DATA / "ml-100k.inter"
        if args.seed_format == "auto":
            args.seed_format = "auxiliary"
    elif args.interactions is None:
        p.error("--interactions is required with --catalog")
    if args.seed_kg is None and not args.attr:
        p.error("no KG: give --seed or at least one --attr COLUMN=RELATION")
    for a in args.attr:
        if "=" not in a:
            p.error(f"--attr {a!r}: expected COLUMN=RELATION")
    return args


# --------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class Inputs:
    data: RippleData
    kg: IndexedKG
    tokens: list[str]  # item int -> interaction item token (= catalog id)
    labels: dict[str, str]  # entity id -> label


def mapping(args: argparse.Namespace, *, attributes: bool) -> CatalogMapping:
    return CatalogMapping(id=args.id_col, title=args.title_col, text=tuple(args.text_col or ()),
                          attributes=dict(a.split("=", 1) for a in args.attr) if attributes
                          else {}, list_separator=args.list_sep, format=args.catalog_format)


def load(args: argparse.Namespace) -> Inputs:
    """The gold KG: the seed's triples plus the facts of the --attr columns, read and minted
    by the product's own readers and catalog stage."""
    tokens = [str(t) for t in np.unique(np.array(read_interaction_table(args.interactions).items))]
    data = load_recbole(args.interactions, rating_threshold=args.rating_threshold, seed=0)
    ontology = load_ontology(args.ontology)
    entities: list[Entity] = []
    keys: list[tuple[str, str, str]] = []
    if args.seed_kg is not None:
        fmt: SeedFormat = args.seed_format
        seed = read_seed(args.seed_kg, format=fmt, ontology=ontology, link=args.seed_link,
                         on_error="skip")
        entities += seed.entities
        keys += [t.key for t in seed.triples]
    if args.attr:
        index = EntityIndex.build(entities)
        stage = catalog_triples(read_catalog(args.catalog, mapping=mapping(args, attributes=True)),
                                ontology=ontology, index=index)
        if stage.rejected:
            raise SystemExit(f"{args.catalog}: {stage.rejected[0].reason} "
                             f"({stage.rejected[0].detail})")
        keys += [t.key for t in stage.kept]
        entities = list(index.by_id.values())
    kg = index_triples(list(dict.fromkeys(keys)),
                       item_index={item_entity_id(t): i for i, t in enumerate(tokens)})
    return Inputs(data=data, kg=kg, tokens=tokens, labels={e.id: e.label for e in entities})


def entity_name(kg: IndexedKG, inputs: Inputs, j: int) -> str:
    return item_entity_id(inputs.tokens[j]) if j < kg.n_items else kg.entities[j - kg.n_items]


def write_hidden_seed(path: Path, inputs: Inputs, kept: np.ndarray) -> None:
    """The hidden KG as kgenrich TSV: item heads by id (`item/<id>`), tails by label, so the
    reader mints the same ids the seed reader did and the LLM sees names, not ids."""
    kg = inputs.kg
    with path.open("w", encoding="utf-8") as f:
        f.write("head\trelation\ttail\n")
        for h, r, t in kept:
            tail = entity_name(kg, inputs, int(t))
            f.write(f"{entity_name(kg, inputs, int(h))}\t{kg.relations[int(r)]}\t"
                    f"{inputs.labels.get(tail, tail)}\n")


def answer_key(inputs: Inputs, rows: np.ndarray) -> set[Key]:
    kg = inputs.kg
    out: set[Key] = set()
    for h, r, t in rows:
        tail = entity_name(kg, inputs, int(t))
        out.add((inputs.tokens[int(h)], kg.relations[int(r)],
                 normalize_label(inputs.labels.get(tail, tail))))
    return out


# --------------------------------------------------------------------------- the flow


@dataclasses.dataclass
class FlowRun:
    accepted: set[Key]
    proposed: set[Key]
    report: dict[str, Any]


def run_flow(args: argparse.Namespace, work: Path, *, seed_file: Path, items: Sequence[str],
             relations: Sequence[str], settings: Settings, name: str) -> FlowRun:
    """One `enrich` run on the hidden seed; the completed triples it proposed and accepted."""
    from kgenrich.flows.enrich import EnrichInputs, enrich

    # the --attr facts are in the hidden seed already (hidden ones removed): read titles only
    catalog_mapping = mapping(args, attributes=False)
    run_settings = settings.model_copy(update={
        "complete": settings.complete.model_copy(update={"items": tuple(items),
                                                         "relations": tuple(relations)}),
        "reports_dir": work / "reports"})
    out = work / name
    report = enrich(EnrichInputs(catalog=args.catalog, mapping=catalog_mapping,
                                 ontology=args.ontology, out_dir=out, seed=seed_file,
                                 seed_format="tsv", run_name=name),
                    run_settings)
    dump = read_jsonl(out)
    labels = {e.id: e.label for e in dump.entities}
    accepted: set[Key] = set()
    proposed: set[Key] = set()
    for t in dump.triples:
        p = t.provenance
        if p.source is not SourceKind.COMPLETED or p.item_id is None:
            continue
        key = (p.item_id, t.relation, normalize_label(labels.get(t.tail, t.tail)))
        proposed.add(key)
        if p.decision is Decision.ACCEPTED:
            accepted.add(key)
    return FlowRun(accepted=accepted, proposed=proposed, report=report.model_dump(mode="json"))


def frequent_tail_reply(hidden_rows: np.ndarray, inputs: Inputs) -> Any:
    """A knowledge-free answerer: for each missing relation, the most frequent tail label of
    that relation in the hidden KG, whatever the item."""
    kg = inputs.kg
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for _, r, t in hidden_rows:
        tail = entity_name(kg, inputs, int(t))
        counts[kg.relations[int(r)]][inputs.labels.get(tail, tail)] += 1
    top = {rel: c.most_common(1)[0][0] for rel, c in counts.items()}

    def reply(body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "named entities" in system:
            return '{"entities": []}'
        if "extract facts" in system:
            return '{"facts": []}'
        rel = next((r for r in top if f"Missing relation: {r}" in user), None)
        return json.dumps({"tails": [top[rel]] if rel else []})

    return per_relation(reply)


# --------------------------------------------------------------------------- KG variants


def key_rows(keys: set[Key], inputs: Inputs, extra: dict[str, int]) -> np.ndarray:
    """Completed keys as int rows; a tail label the KG does not know becomes a new entity."""
    kg = inputs.kg
    item_of = {tok: i for i, tok in enumerate(inputs.tokens)}
    rel_of = {r: j for j, r in enumerate(kg.relations)}
    by_label = {normalize_label(inputs.labels.get(e, e)): kg.n_items + j
                for j, e in enumerate(kg.entities)}
    rows = []
    for item, rel, label in sorted(keys):
        if item not in item_of or rel not in rel_of:
            continue
        tail = by_label.get(label)
        if tail is None:
            tail = extra.setdefault(label, kg.n_entities + len(extra))
        rows.append((item_of[item], rel_of[rel], tail))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def random_like(added: np.ndarray, hidden: np.ndarray, kept: np.ndarray, *, heads: np.ndarray,
                seed: int) -> np.ndarray:
    """(e): per relation, as many random triples as `added` has, heads among the asked items,
    tails uniform over the entities that relation points to in the hidden KG."""
    rng = np.random.default_rng([seed, 0x45])
    rows = []
    for rel, n in Counter(int(r) for r in added[:, 1]).items():
        tails = np.unique(kept[kept[:, 1] == rel][:, 2])
        if tails.size == 0 or heads.size == 0:
            continue
        rows += [(int(rng.choice(heads)), rel, int(rng.choice(tails))) for _ in range(n)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def oracle(hidden: np.ndarray, *, heads: np.ndarray, per_relation: Mapping[int, int],
           seed: int) -> np.ndarray:
    """(f): per relation, as many true hidden triples of the asked items as (d) got right."""
    rng = np.random.default_rng([seed, 0x46])
    pool = hidden[np.isin(hidden[:, 0], heads)]
    rows = []
    for rel, n in per_relation.items():
        mine = pool[pool[:, 1] == rel]
        take = rng.choice(mine.shape[0], size=min(n, mine.shape[0]), replace=False)
        rows.append(mine[np.sort(take)])
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def pr(predicted: set[Key], key: set[Key]) -> dict[str, Any]:
    right = len(predicted & key)
    return {"precision": right / len(predicted) if predicted else 0.0,
            "recall": right / len(key) if key else 0.0, "n": len(predicted), "correct": right,
            "key": len(key)}


# --------------------------------------------------------------------------- recommender


def tune(data: RippleData, kgs: Mapping[str, np.ndarray], split: NewItemSplit,
         base: KGItemParams, seed: int) -> dict[str, KGItemParams]:
    chosen: dict[str, KGItemParams] = {}
    for v, kg in kgs.items():
        best: tuple[float, KGItemParams] | None = None
        for point in itertools.product(*GRID.values()):
            params = dataclasses.replace(base, **dict(zip(GRID, point, strict=True)))
            r = train_kgitem(with_kg(data, kg=kg), split=split.split,
                             new_items=split.new_items, params=params, seed=seed)
            if best is None or r.valid_all.auc > best[0]:
                best = (r.valid_all.auc, params)
        assert best is not None
        chosen[v] = best[1]
        print(f"tune {v}: {dict(zip(GRID, (getattr(best[1], k) for k in GRID), strict=True))}"
              f" valid AUC {best[0]:.4f}", flush=True)
    return chosen


def metrics(r: KGItemResult, n: int) -> dict[str, Any]:
    # the asked items' rows: with --max-new-items only they can differ between (c) and (d)-(g),
    # and over all new items' rows their change is diluted by the items nobody asked about
    asked = r.test_focus if r.test_focus is not None else r.test_new
    return {"auc_new": r.test_new.auc, "acc_new": r.test_new.acc, "auc_all": r.test_all.auc,
            "acc_all": r.test_all.acc, "auc_asked": asked.auc, "acc_asked": asked.acc,
            "triples": n}


# --------------------------------------------------------------------------- report


def markdown(rep: dict[str, Any]) -> str:
    v, p = rep["variants"], rep["paired"]
    out = ["# Enrichment value on new items", "", f"`{rep['command']}`", "",
           rep["protocol_text"], "",
           "| variant | AUC new items | ACC new items | AUC asked items | AUC all rows | "
           "ACC all rows | triples |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, name in NAMES.items():
        if key in v:
            r = v[key]
            out.append(f"| {name} | {r['auc_new']:.4f} ± {r['auc_new_std']:.4f} | "
                       f"{r['acc_new']:.4f} | {r['auc_asked']:.4f} | {r['auc_all']:.4f} | "
                       f"{r['acc_all']:.4f} | "
                       f"{r['triples']:.0f} |")
    out += ["", f"![AUC on new items per variant, mean and 95% interval over seeds]"
            f"({rep.get('chart', 'enrichment_value.svg')})"]
    out += ["", "Paired differences over seeds, 95% t-intervals. *Asked items*: the new items "
            "the enrichment run was asked to fill (all of them without --max-new-items), the "
            "only items whose KG neighbours differ between (c) and (d)-(g).", "",
            "| pair | AUC new items | AUC asked items | AUC all rows |", "|---|---|---|---|"]

    def cell(x: dict[str, Any]) -> str:
        return f"{x['mean']:+.4f} [{x['ci95'][0]:+.4f}, {x['ci95'][1]:+.4f}]"

    for pair, d in p.items():
        out.append(f"| {pair} | {cell(d['auc_new'])} | {cell(d['auc_asked'])} | "
                   f"{cell(d['auc_all'])} |")
    c = rep["completion"]
    out += ["", "## Completion against the answer key (hidden groups of the asked items)", "",
            "| set | precision | recall | proposed | correct | key |",
            "|---|---:|---:|---:|---:|---:|"]
    for name in ("accepted", "all", "g_accepted"):
        r = c[name]
        out.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['n']} | "
                   f"{r['correct']} | {r['key']} |")
    out += ["", "By relation (accepted / all proposals):", "",
            "| relation | accepted P | accepted R | all P | all R | key |",
            "|---|---:|---:|---:|---:|---:|"]
    for rel, r in c["by_relation"].items():
        out.append(f"| {rel} | {r['accepted']['precision']:.3f} | {r['accepted']['recall']:.3f}"
                   f" | {r['all']['precision']:.3f} | {r['all']['recall']:.3f} | "
                   f"{r['all']['key']} |")
    out += ["", "## Calibration probes (warm items, never the evaluated new items)", "",
            "Per seed and relation: probe proposals right / scored, the signal and accept "
            "threshold the flow chose (none: never auto-accepted), the held-out check (right / "
            "accepted of one half's probes by the choice fitted on the other half) and whether "
            "the relation was asked.",
            "", "| answerer | seed | relation | probes right | signal | accept at | held out | "
            "not asked |", "|---|---:|---|---:|---|---:|---:|---|"]
    for who, per_seed in rep.get("calibration", {}).items():
        for seed, rec in per_seed.items():
            for rel, cal in rec["calibration"].items():
                at = cal["accept_at"]
                held = f"{cal.get('held_out_correct', 0)}/{cal.get('held_out_accepted', 0)}"
                out.append(f"| {'LLM' if who == 'llm' else 'most frequent tail'} | {seed} | "
                           f"{rel} | {cal['correct']}/{cal['probes']} | "
                           f"{cal.get('signal', 'confidence')} | "
                           f"{'none' if at is None else f'{at:.3f}'} | {held} | "
                           f"{'yes' if rel in rec['relations not asked'] else ''} |")
    llm = rep["llm"]
    out += ["", f"LLM: {llm['calls']} calls, {llm['prompt_tokens']} prompt and "
            f"{llm['completion_tokens']} completion tokens, {llm['seconds']:.0f} s of "
            f"completion over {len(rep['seeds'])} seeds "
            f"({llm['seconds_per_correct_accepted']:.1f} s and "
            f"{llm['tokens_per_correct_accepted']:.0f} tokens per correct accepted fact)"
            + (f"; calibration probes: {llm['probes']['calls']} calls, "
               f"{llm['probes']['prompt_tokens'] + llm['probes']['completion_tokens']} tokens, "
               f"{llm['probes']['seconds']:.0f} s (answers cached across seeds)."
               if "probes" in llm else "."), "",
            "## Verdict", "", *rep["verdict"], "", "## Machine", "",
            f"`{json.dumps(rep['machine'])}`", ""]
    return "\n".join(out)


def verdict(rep: dict[str, Any]) -> list[str]:
    p, c = rep["paired"], rep["completion"]

    def says(pair: str, rows: str = "new") -> str:
        a = p[pair][f"auc_{rows}"]
        lo, hi = a["ci95"]
        sign = "above zero" if lo > 0 else "below zero" if hi < 0 else "not distinguishable " \
               "from zero"
        return f"{pair} on {rows} items {a['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}], {sign}"

    lines = [f"- The gold KG helps new items: {says('b-a')}.",
             f"- What was hidden is worth {says('b-c')}.",
             f"- The accepted LLM triples: {says('d-c')}; against random triples of the same "
             f"types {says('d-e')}; against every unverified proposal {says('d-d_unverified')}; "
             f"against a knowledge-free answerer through the same verification {says('d-g')}.",
             f"- On the asked items' rows alone: {says('d-c', 'asked')}; "
             f"{says('d-e', 'asked')}; {says('d-g', 'asked')}; the equal-count oracle "
             f"{says('f-c', 'asked')}.",
             f"- An oracle with as many true triples as (d) has correct: {says('f-c')}; "
             f"(d) against it {says('d-f')}"
             + (" (the accepted right tails tell the recommender less than random true ones)"
                if p["d-f"]["auc_new"]["ci95"][1] < 0 else "") + ".",
             f"- Every proposal, unverified: {says('d_unverified-c')}; on the asked items "
             f"{says('d_unverified-c', 'asked')} (what the precision target trades away).",
             f"- Accepted precision {c['accepted']['precision']:.3f} at recall "
             f"{c['accepted']['recall']:.3f} ({c['accepted']['correct']} of "
             f"{c['accepted']['n']} accepted are right; the answer key has "
             f"{c['accepted']['key']} facts); every proposal: precision "
             f"{c['all']['precision']:.3f}, recall {c['all']['recall']:.3f}."]
    gap = p["b-c"]["auc_new"]["mean"]
    if gap > 0:
        lines.append(f"- (d) − (c) recovers {p['d-c']['auc_new']['mean'] / gap:.0%} of what "
                     "hiding cost (the goal is at least half).")
    return lines


def chart(rep: dict[str, Any], path: Path) -> None:
    """A bar per variant: mean AUC on new items over seeds with a 95% t-interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in NAMES if k in rep["variants"]]
    means, errs = [], []
    for k in names:
        vals = rep["variants"][k]["auc_new_per_seed"]
        ci = harness.t_interval(vals)
        means.append(ci["mean"])
        half = ci["mean"] - ci["ci95"][0]
        errs.append(0.0 if half != half else half)  # one seed: no interval
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(range(len(names)), means, yerr=errs, capsize=4,
           color=["#999" if k in ("a", "b", "c") else "#4878a8" for k in names])
    ax.set_xticks(range(len(names)), [k.replace("d_unverified", "d'") for k in names])
    lo = min(m - e for m, e in zip(means, errs, strict=True))
    ax.set_ylim(max(0.0, lo - 0.02), max(m + e for m, e in zip(means, errs, strict=True)) + 0.01)
    ax.set_ylabel("test AUC, new items")
    ax.set_title(f"KGItemNet on new items, {len(rep['seeds'])} seeds (95% t-intervals)")
    fig.tight_layout()
    tmp = path.with_suffix(".svg.tmp")
    fig.savefig(tmp, format="svg")
    plt.close(fig)
    tmp.replace(path)
    rep["chart"] = path.name


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    settings = load_settings(None, flags={"llm.backend": args.backend,
                                          "llm.base_url": args.base_url,
                                          "llm.model": args.model,
                                          "complete.samples": args.samples}, assignments=[
        # no item text on MovieLens: discovery and extraction would ask about titles only
        *([] if args.text_col else ["discover.use_llm=false", "discover.use_spacy=false",
                                    "extract.enabled=false"]),
        *args.assignments])
    inputs = load(args)
    kg, data = inputs.kg, inputs.data
    relations = list(kg.relations)
    print(f"{data.n_users} users, {data.n_items} items, {data.ratings.shape[0]} rows; KG "
          f"{kg.rows.shape[0]} triples ({dict(Counter(relations[r] for r in kg.rows[:, 1]))})",
          flush=True)
    base = KGItemParams()
    if args.epochs:
        base = dataclasses.replace(base, n_epoch=args.epochs)
    tune_split = new_item_split(data.ratings, seed=args.tune_seed)
    tune_kgs, _ = kg_variants(kg.rows, new_items=tune_split.new_items,
                              hide_fraction=args.hide_fraction, seed=args.tune_seed)
    chosen = tune(make_ripple_data(ratings=data.ratings, kg=None, source=data.source,
                                   n_entities=kg.n_entities + 10_000),
                  {v: tune_kgs[v] for v in ("a", "b", "c")}, tune_split, base, args.tune_seed)
    for v in NAMES:
        chosen.setdefault(v, chosen["c"])

    runs: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in NAMES}
    calibration: dict[str, dict[int, dict[str, Any]]] = {"llm": {}, "g": {}}
    totals: dict[str, float] = defaultdict(float)
    keys_all: dict[str, set[Key]] = {"accepted": set(), "all": set(), "key": set(),
                                     "g_accepted": set()}
    work_root = Path(args.work or tempfile.mkdtemp(prefix="kgenrich-value-"))
    for seed in seeds:
        split = new_item_split(data.ratings, seed=seed)
        kgs, hidden = kg_variants(kg.rows, new_items=split.new_items,
                                  hide_fraction=args.hide_fraction, seed=seed)
        order = np.random.default_rng([seed, 0x41]).permutation(split.new_items)
        asked = np.sort(order[:args.max_new_items] if args.max_new_items else order)
        work = work_root / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        seed_file = work / "hidden_seed.tsv"
        write_hidden_seed(seed_file, inputs, hidden.kept)
        items = [inputs.tokens[i] for i in asked]
        key = answer_key(inputs, hidden.hidden[np.isin(hidden.hidden[:, 0], asked)])
        t0 = time.perf_counter()
        llm_run = run_flow(args, work, seed_file=seed_file, items=items, relations=relations,
                           settings=settings, name="llm")
        flow_s = time.perf_counter() - t0
        complete = next(s for s in llm_run.report["stages"] if s["stage"] == "complete")
        for name in ("llm_calls", "prompt_tokens", "completion_tokens"):
            totals[name] += complete[name]
        totals["seconds"] += complete["seconds"]
        # the calibration probes are LLM work the run pays for too (cached across seeds)
        for st in llm_run.report["stages"]:
            if st["stage"] == "calibration probes":
                for name in ("llm_calls", "prompt_tokens", "completion_tokens", "seconds"):
                    totals["probe_" + name] += st[name]
        totals["flow_seconds"] += flow_s
        # same hidden seed, same trusted graph: the prior's run loads the fitted verifier
        # (the flow's own cache, keyed by that graph and the fit settings) instead of training
        if (work / "llm" / "verifier").is_dir():
            shutil.copytree(work / "llm" / "verifier", work / "prior" / "verifier",
                            dirs_exist_ok=True)
        with ScriptedServer(reply=frequent_tail_reply(hidden.kept, inputs)) as server:
            prior = settings.model_copy(update={"llm": settings.llm.model_copy(update={
                "backend": "openai", "base_url": server.base_url, "cache_dir": None,
                "model": "most-frequent-tail"})})
            g_run = run_flow(args, work, seed_file=seed_file, items=items, relations=relations,
                             settings=prior, name="prior")
        extra: dict[str, int] = {}
        d_rows = key_rows(llm_run.accepted, inputs, extra)
        kgs["d"] = np.concatenate([hidden.kept, d_rows])
        kgs["d_unverified"] = np.concatenate([hidden.kept,
                                              key_rows(llm_run.proposed, inputs, extra)])
        kgs["e"] = np.concatenate([hidden.kept, random_like(
            d_rows, hidden.hidden, hidden.kept, heads=asked, seed=seed)])
        right = Counter(relations.index(r) for _, r, _ in llm_run.accepted & key)
        kgs["f"] = np.concatenate([hidden.kept, oracle(hidden.hidden, heads=asked,
                                                       per_relation=right, seed=seed)])
        kgs["g"] = np.concatenate([hidden.kept, key_rows(g_run.accepted, inputs, extra)])
        for name, r in (("llm", llm_run), ("g", g_run)):
            calibration[name][seed] = {
                "calibration": r.report["extra"].get("calibration", {}),
                "relations not asked": r.report["extra"].get("relations not asked", []),
                "combiner": r.report["extra"].get("confidence combiner")}
        keys_all["accepted"] |= {(f"{seed}:{k[0]}", *k[1:]) for k in llm_run.accepted}
        keys_all["all"] |= {(f"{seed}:{k[0]}", *k[1:]) for k in llm_run.proposed}
        keys_all["g_accepted"] |= {(f"{seed}:{k[0]}", *k[1:]) for k in g_run.accepted}
        keys_all["key"] |= {(f"{seed}:{k[0]}", *k[1:]) for k in key}
        sized = make_ripple_data(ratings=data.ratings, kg=None, source=data.source,
                                 n_entities=kg.n_entities + 10_000)
        if len(extra) >= 10_000:
            raise SystemExit("more new tail entities than the reserved entity rows")
        for v in NAMES:
            r = train_kgitem(with_kg(sized, kg=kgs[v]), split=split.split,
                             new_items=split.new_items, params=chosen[v], seed=seed,
                             focus_items=asked)
            runs[v][seed] = metrics(r, int(kgs[v].shape[0]))
            print(f"seed {seed} {v:13s} AUC new {r.test_new.auc:.4f} asked "
                  f"{runs[v][seed]['auc_asked']:.4f} all {r.test_all.auc:.4f}"
                  f" ({kgs[v].shape[0]} triples)", flush=True)
        print(f"seed {seed}: asked {len(items)} new items, key {len(key)}, proposed "
              f"{len(llm_run.proposed)}, accepted {len(llm_run.accepted)} "
              f"({len(llm_run.accepted & key)} right); prior accepted {len(g_run.accepted)} "
              f"({len(g_run.accepted & key)} right); flow {flow_s:.0f} s", flush=True)

    def summary(v: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in ("auc_new", "acc_new", "auc_all", "acc_all", "auc_asked", "acc_asked",
                  "triples"):
            vals = np.array([runs[v][s][m] for s in seeds], dtype=float)
            out[m] = float(vals.mean())
            out[m + "_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out["auc_new_per_seed"] = [runs[v][s]["auc_new"] for s in seeds]
        return out

    paired = {pair: {m: harness.t_interval([runs[pair.split("-")[0]][s][m]
                                            - runs[pair.split("-")[1]][s][m] for s in seeds])
                     for m in ("auc_new", "auc_all", "acc_new", "auc_asked")}
              for pair in PAIRS}
    key_set = keys_all["key"]
    by_relation = {rel: {"accepted": pr({k for k in keys_all["accepted"] if k[1] == rel},
                                        {k for k in key_set if k[1] == rel}),
                         "all": pr({k for k in keys_all["all"] if k[1] == rel},
                                   {k for k in key_set if k[1] == rel})}
                   for rel in relations}
    correct = len(keys_all["accepted"] & key_set)
    tokens = totals["prompt_tokens"] + totals["completion_tokens"]
    rep: dict[str, Any] = {
        "protocol": "new-items", "seeds": seeds,
        "command": " ".join([".venv/bin/python bench/enrichment_value.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "protocol_text": __doc__.split("\n\n")[1].replace("\n", " "),
        "hide_fraction": args.hide_fraction, "max_new_items": args.max_new_items,
        "settings": {"complete": settings.complete.model_dump(mode="json"),
                     "verify": settings.verify.model_dump(mode="json"),
                     "llm": {"backend": settings.llm.backend, "model": settings.llm.model}},
        "recommender_params": {v: dataclasses.asdict(p) for v, p in chosen.items()},
        "variants": {v if v != "d_unverified" else "d_unverified": summary(v) for v in NAMES},
        "paired": paired,
        "completion": {"accepted": pr(keys_all["accepted"], key_set),
                       "all": pr(keys_all["all"], key_set),
                       "g_accepted": pr(keys_all["g_accepted"], key_set),
                       "by_relation": by_relation},
        "llm": {"calls": int(totals["llm_calls"]), "prompt_tokens": int(totals["prompt_tokens"]),
                "completion_tokens": int(totals["completion_tokens"]),
                "seconds": round(totals["seconds"], 1),
                "probes": {"calls": int(totals["probe_llm_calls"]),
                           "prompt_tokens": int(totals["probe_prompt_tokens"]),
                           "completion_tokens": int(totals["probe_completion_tokens"]),
                           "seconds": round(totals["probe_seconds"], 1)},
                "flow_seconds": round(totals["flow_seconds"], 1),
                "seconds_per_correct_accepted": totals["seconds"] / correct if correct
                else float("inf"),
                "tokens_per_correct_accepted": tokens / correct if correct else float("inf")},
        "calibration": calibration,
        "machine": harness.machine(wall_seconds=round(time.perf_counter() - start, 1)),
    }
    rep["verdict"] = verdict(rep)
    chart(rep, args.out.with_suffix(".svg"))
    harness.write_report(args.out, rep, markdown(rep))
    print("\n".join(rep["verdict"]), flush=True)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    sys.exit(main())
