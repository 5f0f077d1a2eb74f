"""What does LLM enrichment buy a recommender? RippleNet on MovieLens-100K with a named item KG.

Protocol (all variants share the ratings, the splits and the seeds):

* Ratings: ``ml-100k.inter``, rating >= 4 positive, as many sampled negatives per user
  (``recsys.data.load_recbole``, sampling seed 0); per seed a 6:2:2 split
  (``recsys.data.split_indices``); RippleNet ``preset("movie")`` (``--epochs`` overrides);
  test AUC/ACC of the epoch with the best validation AUC (``recsys.train``).
* KG: ``imdb_auxiliary.txt`` (movie -> has_genre / directed_by / starring), read with
  ``kg.io.seed.read_seed(..., format="auxiliary", on_error="skip")``.
* Hiding: (item, relation) groups are shuffled with ``--hide-seed`` and taken until
  ``--hide-fraction`` of the triples are hidden; a hidden group loses all its triples, so the
  completion stage sees a gap (``pipeline.complete.missing_relations``). The hidden triples are
  the answer key.
* Completion: the real stage (``pipeline.complete.complete_tails``) with the real backend
  (``pipeline.llm.factory.make_llm``, embedded Qwen2.5-Coder-1.5B by default, responses cached
  under ``.kgenrich-cache/llm``). Only gaps that are hidden groups are asked (a gap the full
  graph has too has no answer key). To bound the cost: the first ``--max-items`` items (seeded
  order) with a hidden directed_by or has_genre group get those gaps asked; starring gaps are
  asked for the first ``--starring-items`` of them only. Prompts show the item's title and
  release year and its remaining (visible) facts; genres are restricted to the genre labels
  of the hidden graph; person names are free text.
* Verification: ``verification.scorers.fit_scorer`` on the hidden graph's triples (trusted),
  ``verify_triples`` with the default ``VerifySettings``; (d) adds the ACCEPTED triples.
* Variants: (a) no KG, (b) full KG, (c) hidden KG, (d) (c) + accepted restored triples,
  (d') (c) + all proposals, (e) (c) + as many random triples as (d) added (random item heads;
  (relation, tail) pairs drawn from (c)'s triples, i.e. its relation/tail distribution).

Writes ``reports/enrichment_value.{md,json,png}`` and
``reports/ml100k_completion_candidates.jsonl``. Run from the repository root:

    .venv/bin/python bench/enrichment_value.py --max-items 300 --starring-items 50 --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import harness
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog  # noqa: E402
from kgenrich.kg.io.seed import SeedGraph, read_seed  # noqa: E402
from kgenrich.kg.ontology import load_ontology  # noqa: E402
from kgenrich.kg.records import (  # noqa: E402
    Decision,
    Item,
    Ontology,
    Rejection,
    SourceKind,
    StageResult,
    StageStats,
    Triple,
)
from kgenrich.pipeline import assemble  # noqa: E402
from kgenrich.pipeline.candidates import Candidate, to_triples  # noqa: E402
from kgenrich.pipeline.catalog import item_entities  # noqa: E402
from kgenrich.pipeline.complete import complete_tails, missing_relations  # noqa: E402
from kgenrich.pipeline.resolve import EntityIndex  # noqa: E402
from kgenrich.settings import Settings  # noqa: E402

logger = logging.getLogger("bench.enrichment_value")

Key = tuple[str, str, str]
VARIANTS = {
    "a": "(a) no KG",
    "b": "(b) full KG",
    "c": "(c) 50% hidden",
    "d": "(d) hidden + restored (accepted)",
    "d_all": "(d') hidden + all proposals",
    "e": "(e) hidden + random (control)",
}
CHEAP_RELATIONS = ("directed_by", "has_genre")
# Relation ids are fixed across variants so that embedding tables line up.
RELATIONS = ("directed_by", "has_genre", "starring")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-100k"
    p.add_argument("--data", type=Path, default=data, help="MovieLens-100K folder")
    p.add_argument("--ontology", type=Path, default=Path("data/ontology/movies.json"))
    p.add_argument("--seeds", default="1,2,3", help="recommender seeds (split, init, sampling)")
    p.add_argument("--hide-fraction", type=float, default=0.5)
    p.add_argument("--hide-seed", type=int, default=0)
    p.add_argument("--max-items", type=int, default=300,
                   help="items whose hidden directed_by/has_genre groups the LLM completes")
    p.add_argument("--starring-items", type=int, default=50,
                   help="of those, how many (first in the seeded order) also get their hidden "
                   "starring group asked")
    p.add_argument("--samples", type=int, default=1, help="k answers per gap (1 = greedy)")
    p.add_argument("--backend", default="embedded", choices=["embedded", "openai", "fake"])
    p.add_argument("--chunk", type=int, default=20, help="items per LLM batch (progress lines)")
    p.add_argument("--epochs", type=int, help="RippleNet epochs (preset: 10)")
    p.add_argument("--preset", default="movie")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for RippleNet (1: the machine is shared)")
    p.add_argument("--variants", default="a,b,c,d,d_all,e")
    p.add_argument("--skip-recsys", action="store_true", help="stop after verification")
    p.add_argument("--llm-budget-s", type=float,
                   help="start no new LLM batch after this many seconds; the items done are "
                   "reported (re-run with --max-items set to them: answers come from the cache)")
    p.add_argument("--reuse-completion", action="store_true",
                   help="skip LLM + verification; reuse the candidates JSONL and the completion "
                   "sections of the JSON a previous run wrote to --out-dir")
    p.add_argument("--out-dir", type=Path, default=Path("reports"))
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


# ---- graphs --------------------------------------------------------------------------------


def hide_groups(
    triples: Sequence[Triple], *, fraction: float, seed: int
) -> tuple[list[Triple], list[Triple]]:
    """Split into (kept, hidden): seeded random (head, relation) groups are hidden whole until
    at least `fraction` of the triples are hidden."""
    groups: dict[tuple[str, str], list[Triple]] = defaultdict(list)
    for t in triples:
        groups[(t.head, t.relation)].append(t)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    want = fraction * len(triples)
    hidden_groups: set[tuple[str, str]] = set()
    n = 0
    for g in order:
        if n >= want:
            break
        hidden_groups.add(g)
        n += len(groups[g])
    kept = [t for t in triples if (t.head, t.relation) not in hidden_groups]
    hidden = [t for t in triples if (t.head, t.relation) in hidden_groups]
    return kept, hidden


def random_triples(
    n: int, *, items: Sequence[str], pool: Sequence[Key], existing: set[Key], seed: int
) -> list[Key]:
    """`n` new triples: uniform random item heads, (relation, tail) drawn from `pool`'s
    triples (so from its joint relation/tail distribution); no duplicates of `existing`."""
    rng = random.Random(seed)
    out: list[Key] = []
    seen = set(existing)
    while len(out) < n:
        _, r, t = pool[rng.randrange(len(pool))]
        key = (items[rng.randrange(len(items))], r, t)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


class IdSpace:
    """Item entity `item/<tok>` -> its RippleNet row index (load_recbole's sorted token
    order); every other entity of any variant -> n_items + its rank in sorted order."""

    def __init__(self, item_tokens: Sequence[str], graphs: Sequence[Sequence[Key]]) -> None:
        self.ids = {f"item/{tok}": i for i, tok in enumerate(item_tokens)}
        others = sorted({e for g in graphs for h, _, t in g for e in (h, t)} - self.ids.keys())
        base = len(self.ids)
        self.ids.update({e: base + i for i, e in enumerate(others)})
        self.rel = {r: i for i, r in enumerate(RELATIONS)}

    def array(self, keys: Sequence[Key]) -> np.ndarray:
        rows = [(self.ids[h], self.rel[r], self.ids[t]) for h, r, t in keys]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def inter_item_tokens(path: Path) -> list[str]:
    """The item tokens of a RecBole .inter file in the order `load_recbole` numbers them."""
    from kgenrich.kg.io.interactions import read_interaction_table

    return [str(x) for x in np.unique(np.array(read_interaction_table(path).items))]


# ---- completion ----------------------------------------------------------------------------


def plan_gaps(
    items: Sequence[Item], *, visible: Sequence[Triple], hidden: Sequence[Triple],
    ontology: Ontology, item_entity: Mapping[str, str], max_items: int, starring_items: int,
    seed: int,
) -> tuple[list[Item], dict[str, list[Any]], dict[str, int]]:
    """The gaps the completion stage sees, restricted to hidden groups and the LLM budget."""
    gaps = missing_relations(items, triples=visible, ontology=ontology,
                             relations=RELATIONS, item_entity=item_entity)
    hidden_groups = {(t.head, t.relation) for t in hidden}
    keyed = {
        i: [r for r in rels if (item_entity[i], r.name) in hidden_groups]
        for i, rels in gaps.items()
    }
    counts = {
        "gaps_seen": sum(len(v) for v in gaps.values()),
        "gaps_with_key": sum(len(v) for v in keyed.values()),
    }
    counts["gaps_without_key"] = counts["gaps_seen"] - counts["gaps_with_key"]
    eligible = [it for it in items if any(r.name in CHEAP_RELATIONS for r in keyed.get(it.id, ()))]
    random.Random(seed).shuffle(eligible)
    chosen = eligible[:max_items]
    plan: dict[str, list[Any]] = {}
    n_star = 0
    for it in chosen:
        rels = [r for r in keyed[it.id] if r.name in CHEAP_RELATIONS]
        star = [r for r in keyed[it.id] if r.name == "starring"]
        if star and n_star < starring_items:
            rels += star
            n_star += 1
        plan[it.id] = rels
    counts["items_eligible"] = len(eligible)
    counts["items_asked"] = len(chosen)
    counts["starring_gaps_asked"] = n_star
    return chosen, plan, counts


def run_completion(
    todo: Sequence[Item], *, plan: Mapping[str, list[Any]], visible: Sequence[Triple],
    index: EntityIndex, ontology: Ontology, item_entity: Mapping[str, str], samples: int,
    settings: Settings, chunk: int, budget_s: float | None,
) -> tuple[StageResult[Candidate], dict[str, Any], int]:
    from kgenrich.pipeline.llm.factory import make_llm

    labels = {e.id: e.label for e in index.by_id.values()}
    facts = assemble.item_facts(todo, triples=visible, labels=labels, item_entity=item_entity)
    by_type = assemble.labels_by_type(index)
    kept: list[Candidate] = []
    rejected: list[Rejection] = []
    stats = StageStats()
    start = time.perf_counter()
    n_gaps = sum(len(v) for v in plan.values())
    done = 0
    n_done = 0
    with make_llm(settings.llm) as llm:
        for s in range(0, len(todo), chunk):
            if budget_s is not None and time.perf_counter() - start > budget_s:
                print(f"  completion: LLM budget of {budget_s:.0f}s spent; stopping after "
                      f"{n_done} items", flush=True)
                break
            part = list(todo[s:s + chunk])
            n_done += len(part)
            res = complete_tails(
                part, llm=llm, ontology=ontology, gaps=plan, facts=facts,
                labels_by_type=by_type, samples=samples,
                temperature=settings.complete.temperature,
                max_candidates=settings.complete.max_candidates)
            kept += res.kept
            rejected += res.rejected
            st = res.stats
            stats = StageStats(
                llm_calls=stats.llm_calls + st.llm_calls,
                cache_hits=stats.cache_hits + st.cache_hits,
                prompt_tokens=stats.prompt_tokens + st.prompt_tokens,
                completion_tokens=stats.completion_tokens + st.completion_tokens,
                seconds=time.perf_counter() - start)
            done += sum(len(plan[it.id]) for it in part)
            print(f"  completion: {s + len(part)}/{len(todo)} items, {done}/{n_gaps} gaps, "
                  f"{stats.llm_calls} calls ({stats.cache_hits} cached), "
                  f"{len(kept)} candidates, {stats.seconds:.0f}s", flush=True)
        usage = llm.usage()
        model_id = llm.model_id
    info = {
        "model": model_id, "backend": settings.llm.backend, "calls": usage.calls,
        "cache_hits": usage.cache_hits, "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens, "failures": usage.failures,
        "wall_seconds": time.perf_counter() - start, "samples": samples,
        "seconds_per_call": (stats.seconds / usage.calls) if usage.calls else float("nan"),
    }
    return StageResult(kept=tuple(kept), rejected=tuple(rejected), stats=stats), info, n_done


# ---- scoring of the restored triples ---------------------------------------------------------


def row_key(row: Mapping[str, Any]) -> Key:
    return (f"item/{row['item']}", str(row["relation"]), str(row["tail_id"]))


def restoration_scores(
    rows: Sequence[Mapping[str, Any]], *, key: set[Key], asked_key: set[Key]
) -> dict[str, dict[str, Any]]:
    """Precision / recall per relation and overall, for all proposals and the accepted ones
    (`rows` as `candidate_rows` writes them)."""
    out: dict[str, dict[str, Any]] = {}
    for rel in (*RELATIONS, "all"):
        key_r = {k for k in key if rel in ("all", k[1])}
        asked_r = {k for k in asked_key if rel in ("all", k[1])}
        row: dict[str, Any] = {"key": len(key_r), "key_in_asked_groups": len(asked_r)}
        for name in ("all", "accepted"):
            keys = {row_key(r) for r in rows if rel in ("all", r["relation"])
                    and (name == "all" or r["decision"] == Decision.ACCEPTED.value)}
            hit = len(keys & key_r)
            row[name] = {
                "proposed": len(keys), "correct": hit,
                "precision": hit / len(keys) if keys else float("nan"),
                "recall_key": hit / len(key_r) if key_r else float("nan"),
                "recall_asked": hit / len(asked_r) if asked_r else float("nan"),
            }
        out[rel] = row
    return out


def candidate_rows(verified: Sequence[Triple], *, key: set[Key],
                   labels: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for t in verified:
        sc = t.provenance.scores
        rows.append({
            "item": t.provenance.item_id, "relation": t.relation,
            "tail": labels.get(t.tail, t.tail), "tail_id": t.tail,
            "agreement": sc.get("agreement", float("nan")),
            "kge_raw": sc.get("kge", float("nan")),
            "kge_probability": sc.get("kge_probability", float("nan")),
            "confidence": sc.get("confidence", float("nan")),
            "decision": t.provenance.decision.value, "in_key": t.key in key,
        })
    return rows


# ---- recommender ---------------------------------------------------------------------------


def kg_hash(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def run_recsys(
    data: Any, kgs: Mapping[str, np.ndarray | None], *, seeds: Sequence[int], params: Any,
    previous: Mapping[str, Any], checkpoint: Any = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Every variant x seed on identical splits. Runs already in `previous` (same KG hash,
    params and seed) are reused, so an interrupted benchmark resumes."""
    from kgenrich.recsys.data import split_indices, with_kg
    from kgenrich.recsys.train import train_and_evaluate

    p = dataclasses.asdict(params)
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for seed in seeds:
        split = split_indices(data.ratings.shape[0], seed=seed)
        for name, kg in kgs.items():
            h = "none" if kg is None else kg_hash(kg)
            old = previous.get(name, {}).get(str(seed))
            if old and old.get("kg_hash") == h and old.get("params") == p:
                out[name][seed] = old
                print(f"  {VARIANTS[name]:36s} seed {seed}: reused AUC {old['auc']:.4f}",
                      flush=True)
                continue
            t0 = time.perf_counter()
            res = train_and_evaluate(with_kg(data, kg=kg, label=name), params=params, seed=seed,
                                     split=split)
            out[name][seed] = {
                "auc": res.test.auc, "acc": res.test.acc, "valid_auc": res.valid.auc,
                "best_epoch": res.best_epoch, "kg_hash": h, "params": p,
                "valid_auc_by_epoch": [e.valid.auc for e in res.epochs],
                "train_seconds_by_epoch": [e.train_seconds for e in res.epochs],
                "n_triples": 0 if kg is None else int(kg.shape[0]),
                "seconds": time.perf_counter() - t0,
            }
            if checkpoint is not None:
                checkpoint(out)
            print(f"  {VARIANTS[name]:36s} seed {seed}: AUC {res.test.auc:.4f} "
                  f"ACC {res.test.acc:.4f} (epoch {res.best_epoch}, "
                  f"{time.perf_counter() - t0:.0f}s)", flush=True)
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


# ---- report --------------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render_markdown(rep: dict[str, Any]) -> str:
    g, c, llm = rep["graphs"], rep["completion"], rep["llm"]
    lines = [
        "# What enrichment buys RippleNet on MovieLens-100K",
        "",
        f"Command: `{rep['command']}`",
        "",
        *([f"(LLM completion and verification came from an earlier run of "
           f"`{rep['completion_command']}`; its answers are in the LLM cache, so re-running "
           "that command repeats them without LLM calls.)", ""]
          if rep.get("completion_command") else []),
        "Ratings: `ml-100k.inter`, rating >= 4 positive, as many sampled negatives per user "
        f"(`recsys.data.load_recbole`, sampling seed 0): {rep['data']['n_users']} users, "
        f"{rep['data']['n_items']} items, {rep['data']['n_rows']} rows. Per seed one 6:2:2 split "
        "(`recsys.data.split_indices`) shared by every variant; RippleNet preset "
        f"`{rep['preset']}` ({', '.join(f'{k}={v}' for k, v in rep['params'].items())}); test "
        "AUC/ACC of the epoch with the best validation AUC. Seeds: "
        f"{', '.join(map(str, rep['seeds']))}; ± is the sample std over seeds.",
        "",
        f"Item KG: `imdb_auxiliary.txt`, {g['full']} triples ({g['by_relation_full']}), "
        f"{g['seed_rejected_lines']} malformed line skipped. Hidden: "
        f"{g['hidden']} triples ({g['hidden_share']:.1%}) in {g['hidden_groups']} whole "
        f"(item, relation) groups (hide seed {rep['hide_seed']}); by relation "
        f"{g['by_relation_hidden']}.",
        "",
        "## Recommender",
        "",
        "| variant | KG triples | test AUC | test ACC | AUC per seed |",
        "|---|---|---|---|---|",
    ]
    for name, row in rep["results"].items():
        lines.append(
            f"| {VARIANTS[name]} | {row['n_triples']} | **{row['auc_mean']:.4f} ± "
            f"{row['auc_std']:.4f}** | {row['acc_mean']:.4f} ± {row['acc_std']:.4f} | "
            + ", ".join(f"{s}: {v:.4f}" for s, v in row["auc_by_seed"].items()) + " |")
    lines += ["", "![AUC per variant](enrichment_value.png)", ""]
    lines += [
        "## Completion (the LLM part)",
        "",
        f"Gaps `missing_relations` reports on the hidden graph (directed_by, has_genre, "
        f"starring): {c['counts']['gaps_seen']}; {c['counts']['gaps_with_key']} are hidden "
        f"groups (answer key), {c['counts']['gaps_without_key']} are absent from the full "
        "graph too (no key; not asked). Budget: the first "
        f"{c['counts']['items_asked']} of {c['counts']['items_eligible']} items (seeded order) "
        "with a hidden directed_by or has_genre group got those gaps asked; "
        f"{c['counts']['starring_gaps_asked']} of them also their starring gap. "
        f"Questions asked: {c['questions']} ({c['questions_by_relation']}); k={llm['samples']} "
        "sample(s) (greedy). Prompt: title, release year and the item's visible facts; genres "
        "restricted to the hidden graph's genre labels; names free text.",
        "",
        f"LLM: `{llm['model']}` ({llm['backend']}), {llm['calls']} calls + "
        f"{llm['cache_hits']} cache hits, {llm['prompt_tokens']} prompt + "
        f"{llm['completion_tokens']} completion tokens, {llm['failures']} failures, "
        f"{llm['wall_seconds']:.0f} s wall ({fmt(llm['seconds_per_call'], 2)} s per call; "
        "cached answers cost ~0 s, so a re-run reports its own, smaller, wall time). "
        f"Stage rejections: {c['rejections']}.",
        "",
        f"Verifier: {rep['verify']['summary']}. Decisions over the "
        f"{rep['verify']['candidates']} proposals: {rep['verify']['decisions']}.",
        "",
        "Precision = correct / proposed; recall (key) = correct / all hidden triples of the "
        "relation (unasked groups count as misses); recall (asked) = correct / hidden triples "
        "in the groups that were asked.",
        "",
        "| relation | key | key in asked groups | set | proposed | correct | precision | "
        "recall (key) | recall (asked) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rel, row in c["scores"].items():
        for name in ("all", "accepted"):
            s = row[name]
            lines.append(
                f"| {rel} | {row['key']} | {row['key_in_asked_groups']} | {name} | "
                f"{s['proposed']} | {s['correct']} | {fmt(s['precision'])} | "
                f"{fmt(s['recall_key'])} | {fmt(s['recall_asked'])} |")
    lines += ["", "## Reading", "", *rep["reading"], ""]
    env = rep["environment"]
    lines += [
        f"Runtime: recommender runs {rep['recsys_seconds']:.0f} s (summed over runs); LLM "
        f"{rep['llm']['wall_seconds']:.0f} s; KGE verifier fit "
        f"{rep['verify']['metrics']['seconds']:.0f} s; this invocation "
        f"{rep['total_seconds']:.0f} s. Environment: Python {env['python']}, torch "
        f"{env['torch']} with {env['threads']} thread(s), {env['cpu_count']} CPUs shared with "
        f"other jobs (1-min load {env['load_start']:.1f} at start, {env['load_end']:.1f} at end).",
        "",
        "Labelled candidates (for confidence-combiner work): "
        "`reports/ml100k_completion_candidates.jsonl`.",
        "",
    ]
    return "\n".join(lines)


def reading(rep: dict[str, Any]) -> list[str]:
    """Plain observations computed from the numbers (no hand-written verdicts)."""
    res = rep["results"]
    out: list[str] = []

    def delta(a: str, b: str) -> str:
        if a not in res or b not in res:
            return "n/a"
        diffs = [res[a]["auc_by_seed"][s] - res[b]["auc_by_seed"][s] for s in res[a]["auc_by_seed"]]
        m, sd = mean_std(diffs)
        return f"{m:+.4f} ± {sd:.4f} (paired over seeds)"

    out.append(f"- Full KG vs no KG: AUC {delta('b', 'a')}; hidden KG vs full KG: "
               f"{delta('c', 'b')}.")
    out.append(f"- Restored (accepted) vs hidden: {delta('d', 'c')}; all proposals vs hidden: "
               f"{delta('d_all', 'c')}; random control vs hidden: {delta('e', 'c')}; restored "
               f"vs random: {delta('d', 'e')}.")
    sc = rep["completion"]["scores"]["all"]
    share = rep["graphs"]["added_d"] / max(1, rep["graphs"]["hidden"])
    out.append(
        f"- Coverage: the accepted triples restore {sc['accepted']['correct']} of "
        f"{sc['key']} hidden triples (recall {fmt(sc['accepted']['recall_key'])}), at "
        f"precision {fmt(sc['accepted']['precision'])}; all proposals restore "
        f"{sc['all']['correct']} (precision {fmt(sc['all']['precision'])}). (d) adds "
        f"{rep['graphs']['added_d']} triples to (c)'s {rep['graphs']['hidden_graph']}, i.e. "
        f"{share:.1%} of the number hidden (correct or not)"
        + (", so (d) can win back at most that slice of the (b)-(c) gap." if share < 0.25
           else "."))
    runs = [r for by in rep["runs"].values() for r in by.values()]
    at_last = sum(1 for r in runs if r["best_epoch"] == r["params"]["n_epoch"])
    out.append(
        f"- Training: in {at_last} of {len(runs)} runs the best validation AUC came at the last "
        f"epoch ({rep['params']['n_epoch']}), so the models were still improving when stopped; "
        "the per-seed spread (std above) is as large as the gaps between variants, so none of "
        "these differences is resolved by this many seeds.")
    skipped = [n for n in VARIANTS if n not in res]
    if skipped:
        out.append(f"- Not run (time): {', '.join(VARIANTS[n] for n in skipped)}.")
    c = rep["completion"]["counts"]
    out.append(
        f"- LLM budget: {c['items_asked']} of {c['items_eligible']} eligible items were asked "
        f"(the run stopped at its time budget); re-running the completion command with "
        f"--max-items {c['items_asked']} replays the same answers from the cache.")
    dec = rep["verify"]["decisions"]
    n = max(1, rep["verify"]["candidates"])
    unseen = dec.get("unverified_new_entity", 0) + dec.get("review", 0)
    out.append(
        f"- Verification: {dec.get('accepted', 0)} of {rep['verify']['candidates']} proposals "
        f"accepted ({dec.get('accepted', 0) / n:.0%}); {unseen} are review or "
        "unverified_new_entity (with k=1 the agreement is always 1.0, so confidence = "
        "(1 + KGE probability) / 2 and acceptance means KGE probability >= 0.2; a tail the "
        "KGE never saw, e.g. a director who only occurs in hidden triples, is capped at 0.5 "
        "and can never be accepted).")
    return out


def plot(rep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rep["results"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("auc", "acc"), strict=True):
        means = [rep["results"][n][f"{metric}_mean"] for n in names]
        stds = [rep["results"][n][f"{metric}_std"] for n in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
        for i, n in enumerate(names):
            ys = list(rep["results"][n][f"{metric}_by_seed"].values())
            ax.scatter([i] * len(ys), ys, color="black", s=10, zorder=3)
        lo = min(min(rep["results"][n][f"{metric}_by_seed"].values()) for n in names)
        hi = max(max(rep["results"][n][f"{metric}_by_seed"].values()) for n in names)
        ax.set_ylim(lo - 0.01, hi + 0.01)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([VARIANTS[n].split(" ", 1)[0] for n in names])
        ax.set_title(f"test {metric.upper()} (mean ± std, dots = seeds)")
    fig.suptitle("RippleNet on MovieLens-100K: " + "; ".join(VARIANTS[n] for n in names),
                 fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- main ----------------------------------------------------------------------------------


def complete_and_verify(
    args: argparse.Namespace, *, items: Sequence[Item], todo: Sequence[Item],
    plan: Mapping[str, list[Any]], counts: Mapping[str, int], visible: Sequence[Triple],
    key: set[Key], index: EntityIndex, ontology: Ontology, item_entity: Mapping[str, str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The LLM completion stage, then verification; returns the candidate rows and the
    report sections about them."""
    from kgenrich.pipeline.verify import verify_triples
    from kgenrich.verification.combiner import Combiner
    from kgenrich.verification.scorers import fit_scorer

    del items
    settings = Settings()
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"backend": args.backend})})
    completed, llm_info, n_done = run_completion(
        todo, plan=plan, visible=visible, index=index, ontology=ontology,
        item_entity=item_entity, samples=args.samples, settings=settings, chunk=args.chunk,
        budget_s=args.llm_budget_s)
    done = {it.id for it in todo[:n_done]}
    plan = {i: rels for i, rels in plan.items() if i in done}
    counts = {**counts, "items_asked": n_done,
              "starring_gaps_asked": sum(1 for rels in plan.values()
                                         for r in rels if r.name == "starring")}
    questions = Counter(r.name for rels in plan.values() for r in rels)
    asked_groups = {(item_entity[i], r.name) for i, rels in plan.items() for r in rels}
    asked_key = {k for k in key if (k[0], k[1]) in asked_groups}
    proposals, _ = to_triples(completed.kept, index=index, source=SourceKind.COMPLETED)
    visible_keys = {t.key for t in visible}
    proposals = [t for t in proposals if t.key not in visible_keys]

    # KGE on the hidden graph (its triples are the trusted ones), default VerifySettings.
    v = settings.verify
    print(f"verify: fitting {v.model} (dim {v.dim}, {v.epochs} epochs) on {len(visible)} "
          "trusted triples", flush=True)
    verifier = fit_scorer(v.kge_scorer, [t.key for t in assemble.trusted(visible)],
                          settings=v, labels={})
    entity_types = {e.id: e.type for e in index.by_id.values()}
    verified = list(verify_triples(
        proposals, ontology=ontology, entity_types=entity_types, scorer=verifier,
        combiner=Combiner.rule(v.review_band)).kept)
    decisions = Counter(t.provenance.decision.value for t in verified)
    print(f"verify: {verifier.summary()}; {dict(decisions)}", flush=True)
    labels = {e.id: e.label for e in index.by_id.values()}
    rows = candidate_rows(verified, key=key, labels=labels)
    rep = {
        "completion": {
            "counts": counts, "questions": sum(questions.values()),
            "questions_by_relation": dict(questions), "candidates": len(completed.kept),
            "rejections": completed.rejection_counts(),
            "scores": restoration_scores(rows, key=key, asked_key=asked_key),
        },
        "llm": llm_info,
        "verify": {"summary": verifier.summary(), "metrics": dict(verifier.metrics),
                   "candidates": len(verified), "decisions": dict(decisions),
                   "settings": v.model_dump(mode="json")},
    }
    return rows, rep


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v for v in args.variants.split(",") if v]
    ontology = load_ontology(args.ontology)

    # 1. graphs
    seed: SeedGraph = read_seed(args.data / "imdb_auxiliary.txt", format="auxiliary",
                                ontology=ontology, on_error="skip")
    full = list(seed.triples)
    visible, hidden = hide_groups(full, fraction=args.hide_fraction, seed=args.hide_seed)
    key = {t.key for t in hidden}
    print(f"KG: {len(full)} triples; hidden {len(hidden)} ({len(hidden) / len(full):.1%}) in "
          f"{len({(t.head, t.relation) for t in hidden})} groups", flush=True)

    # 2. completion on the hidden graph (titles and years from the catalog)
    items = read_catalog(args.data / "ml-100k.item", mapping=CatalogMapping(
        id="item_id", title="movie_title", text=("release_year",), format="recbole"))
    item_entity = {it.id: f"item/{it.id}" for it in items}
    visible_entities = {e for t in visible for e in (t.head, t.tail)}
    # Only entities the hidden graph still mentions are known: a person who only occurs in
    # hidden triples must be named by the LLM, not looked up.
    index = EntityIndex.build([
        *item_entities(items, ontology=ontology),
        *(e for e in seed.entities if e.id in visible_entities and e.type != ontology.item_type),
    ])
    todo, plan, counts = plan_gaps(
        items, visible=visible, hidden=hidden, ontology=ontology, item_entity=item_entity,
        max_items=args.max_items, starring_items=args.starring_items, seed=args.hide_seed)
    questions = Counter(r.name for rels in plan.values() for r in rels)
    print(f"completion plan: {counts}; questions {dict(questions)}", flush=True)
    json_path = args.out_dir / "enrichment_value.json"
    cand_path = args.out_dir / "ml100k_completion_candidates.jsonl"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if json_path.exists():
        previous = json.loads(json_path.read_text(encoding="utf-8"))
    if args.reuse_completion:
        rows = [json.loads(line) for line in cand_path.read_text(encoding="utf-8").splitlines()]
        rep: dict[str, Any] = {k: previous[k] for k in ("completion", "llm", "verify")}
        rep["completion_command"] = previous.get("completion_command", previous["command"])
        print(f"reusing {len(rows)} candidates from {cand_path}", flush=True)
    else:
        rows, rep = complete_and_verify(
            args, items=items, todo=todo, plan=plan, counts=counts, visible=visible, key=key,
            index=index, ontology=ontology, item_entity=item_entity)
        with cand_path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"wrote {cand_path} ({len(rows)} candidates)", flush=True)
    for rel, sc in rep["completion"]["scores"].items():
        print(f"  {rel:12s} key {sc['key']:5d}  all P {fmt(sc['all']['precision'])} "
              f"R {fmt(sc['all']['recall_key'])}  accepted P "
              f"{fmt(sc['accepted']['precision'])} R {fmt(sc['accepted']['recall_key'])}",
              flush=True)

    # 4. KG variants
    visible_list = [t.key for t in visible]
    accepted = [row_key(r) for r in rows if r["decision"] == Decision.ACCEPTED.value]
    all_props = [row_key(r) for r in rows]
    item_tokens = inter_item_tokens(args.data / "ml-100k.inter")
    rand = random_triples(
        len(accepted), items=[f"item/{tok}" for tok in item_tokens], pool=visible_list,
        existing=set(visible_list), seed=args.hide_seed)
    graphs: dict[str, list[Key] | None] = {
        "a": None, "b": [t.key for t in full], "c": visible_list,
        "d": visible_list + accepted, "d_all": visible_list + all_props, "e": visible_list + rand,
    }
    ids = IdSpace(item_tokens, [g for g in graphs.values() if g])
    kgs = {n: (None if graphs[n] is None else ids.array(graphs[n])) for n in variants}  # type: ignore[arg-type]

    rep |= {
        "command": " ".join([".venv/bin/python bench/enrichment_value.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "hide_seed": args.hide_seed, "seeds": seeds, "preset": args.preset,
        "graphs": {
            "full": len(full), "hidden": len(hidden), "hidden_share": len(hidden) / len(full),
            "hidden_graph": len(visible), "added_d": len(accepted),
            "added_d_all": len(all_props), "added_e": len(rand),
            "hidden_groups": len({(t.head, t.relation) for t in hidden}),
            "by_relation_full": dict(Counter(t.relation for t in full)),
            "by_relation_hidden": dict(Counter(t.relation for t in hidden)),
            "seed_rejected_lines": len(seed.rejected),
        },
    }
    old_runs: dict[str, Any] = previous.get("runs", {})
    # Written before the recommender runs, so --reuse-completion can pick it up.
    json_path.write_text(json.dumps(rep | {"runs": old_runs}, indent=2) + "\n",
                         encoding="utf-8")
    if args.skip_recsys:
        print(f"wrote {json_path} (no recommender runs)")
        return 0

    # 5. recommender
    import torch

    from kgenrich.recsys.data import load_recbole, make_ripple_data
    from kgenrich.recsys.params import preset

    torch.set_num_threads(args.threads)
    data = load_recbole(args.data / "ml-100k.inter", rating_threshold=4.0, seed=0)
    if data.n_items != len(item_tokens):
        raise RuntimeError(f"item count mismatch: {data.n_items} vs {len(item_tokens)}")
    # One entity table size for every variant (with_kg never shrinks it), so that variants
    # differ in their KG only, not in embedding-table shapes and hence initialization.
    data = make_ripple_data(ratings=data.ratings, kg=None, source=data.source,
                            n_entities=len(ids.ids))
    params = preset(args.preset, n_epoch=args.epochs)
    t_rec = time.perf_counter()
    def checkpoint(partial: Mapping[str, Mapping[int, Any]]) -> None:
        # Every finished run is saved at once, so an interrupted benchmark resumes from here.
        done = {n: {str(s): r for s, r in by.items()} for n, by in partial.items()}
        merged = {n: {**old_runs.get(n, {}), **done.get(n, {})} for n in {*old_runs, *done}}
        json_path.write_text(json.dumps(rep | {"runs": merged}, indent=2) + "\n",
                             encoding="utf-8")

    runs = run_recsys(data, kgs, seeds=seeds, params=params, previous=old_runs,
                      checkpoint=checkpoint)
    del t_rec
    # Summed over runs, reused ones included (a resumed benchmark still reports their cost).
    rep["recsys_seconds"] = sum(r["seconds"] for by in runs.values() for r in by.values())
    rep["params"] = dataclasses.asdict(params)
    rep["data"] = {"n_users": data.n_users, "n_items": data.n_items,
                   "n_rows": int(data.ratings.shape[0])}
    rep["runs"] = {n: {str(s): r for s, r in by.items()} for n, by in runs.items()}
    results: dict[str, Any] = {}
    for name in variants:
        by = runs[name]
        auc_m, auc_s = mean_std([r["auc"] for r in by.values()])
        acc_m, acc_s = mean_std([r["acc"] for r in by.values()])
        results[name] = {
            "label": VARIANTS[name], "n_triples": next(iter(by.values()))["n_triples"],
            "auc_mean": auc_m, "auc_std": auc_s, "acc_mean": acc_m, "acc_std": acc_s,
            "auc_by_seed": {s: r["auc"] for s, r in by.items()},
            "acc_by_seed": {s: r["acc"] for s, r in by.items()},
        }
    rep["results"] = results
    rep["reading"] = reading(rep)
    rep["total_seconds"] = time.perf_counter() - t_start
    rep["environment"] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "threads": args.threads, "cpu_count": os.cpu_count(), "load_start": load_start,
        "load_end": os.getloadavg()[0],
    }
    harness.write_report(json_path, rep, default=str)
    plot(rep, args.out_dir / "enrichment_value.png")
    md_path = args.out_dir / "enrichment_value.md"
    md_path.write_text(render_markdown(rep), encoding="utf-8")
    for name, row in results.items():
        print(f"{VARIANTS[name]:36s} AUC {row['auc_mean']:.4f} ± {row['auc_std']:.4f}  "
              f"ACC {row['acc_mean']:.4f} ± {row['acc_std']:.4f}")
    print(f"wrote {json_path}, {md_path}, {args.out_dir / 'enrichment_value.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
