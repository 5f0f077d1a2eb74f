"""Benchmark the Oxigraph graph store (kg/store.py) on a synthetic catalog-shaped graph.

Generates records (items, persons, genres; seed/catalog/extracted/completed triples with scores
and decisions) sized so the store holds about N RDF triples (``--triples``; facts, entity
descriptions and reified statements all count, about 12 per Triple record), then times: loading
into an on-disk store, Turtle export of all graphs and of the trusted ones only (no LLM graphs),
N-Quads export, a 3-pattern SPARQL join and a confidence filter; and, for comparison, the same
Turtle write and join with rdflib's in-memory store on at most ``--rdflib-max`` triples (rdflib
needs about a minute and several GB per million). Prints a summary and writes JSON to ``--out``
and Markdown next to it (same name, ``.md``).

    .venv/bin/python bench/store.py --triples 1000000 --out reports/store_bench.json
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import rdflib

from harness import machine, peak_rss_mb, write_report
from kgenrich.kg.export.rdf import write_nquads
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.kg.store import PREFIXES, ExportFormat, GraphStore

logger = logging.getLogger("bench.store")

BASE = "https://kgenrich.dev/id/"
QUADS_PER_RECORD = 12.0  # measured on this generator (100k records -> 1.2M quads)
JOIN = """SELECT DISTINCT ?item ?label WHERE {
  ?item kgr:has_genre <https://kgenrich.dev/id/genre/g-3> .
  ?item kgr:directed_by ?person .
  ?person rdfs:label ?label .
}"""
JOIN_ALL = """SELECT (COUNT(*) AS ?n) WHERE { SELECT DISTINCT * WHERE {
  ?item kgr:has_genre ?genre .
  ?item kgr:directed_by ?person .
  ?person rdfs:label ?label .
} }"""
CONFIDENT = """SELECT (COUNT(?s) AS ?n) WHERE {
  ?s kge:source "completed" ; kge:confidence ?c ; kge:graph ?g . FILTER(?c > 0.8)
}"""


def synthetic(n_records: int, *, seed: int) -> tuple[list[Entity], list[Triple]]:
    """A catalog-shaped graph: per item a director, cast and genres from mixed sources."""
    rng = random.Random(seed)
    n_items = max(1, -(-n_records // 5))
    n_people = max(1, n_items // 2)
    n_genres = 40
    entities = [Entity(id=f"item/{i}", label=f"Movie {i}", type="Movie") for i in range(n_items)]
    entities += [
        Entity(id=f"person/p-{i}", label=f"Person {i}", type="Person",
               aliases=(f"P. {i}",) if i % 7 == 0 else (),
               source=SourceKind.EXTRACTED if i % 10 == 0 else SourceKind.CATALOG)
        for i in range(n_people)
    ]
    entities += [Entity(id=f"genre/g-{i}", label=f"Genre {i}", type="Genre")
                 for i in range(n_genres)]
    triples: list[Triple] = []
    for k in range(n_records):
        item = k // 5  # five triples per item: a director, two cast members, two genres
        relation = ("directed_by", "starring", "starring", "has_genre", "has_genre")[k % 5]
        tail = (f"genre/g-{rng.randrange(n_genres)}" if relation == "has_genre"
                else f"person/p-{rng.randrange(n_people)}")
        r = rng.random()
        if r < 0.6:
            source = SourceKind.SEED if r < 0.2 else SourceKind.CATALOG
            prov = Provenance(source=source, item_id=str(item), decision=Decision.TRUSTED,
                              accepted_by="seed" if source is SourceKind.SEED else None)
        else:
            source = SourceKind.EXTRACTED if r < 0.8 else SourceKind.COMPLETED
            conf = rng.random()
            scores = {"confidence": conf, "kge": conf * 4 - 2, "kge_probability": conf,
                      "agreement": rng.choice((0.4, 0.6, 0.8, 1.0))}
            if k % 10 == 0:
                scores["nli"] = rng.random()  # a score without a term: a blank node
            decision = (Decision.ACCEPTED if conf >= 0.5
                        else Decision.REVIEW if conf >= 0.3 else Decision.REJECTED)
            prov = Provenance(
                source=source, item_id=str(item), model="qwen2.5-1.5b", prompt_version="v3",
                evidence=f"... {relation} {tail} ..." if source is SourceKind.EXTRACTED else None,
                scores=scores, decision=decision,
                accepted_by="verifier" if decision is Decision.ACCEPTED else None,
            )
        triples.append(Triple(head=f"item/{item}", relation=relation, tail=tail, provenance=prov))
    return entities, triples


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def best_of(fn: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t, out = timed(fn)
        times.append(t)
    return statistics.median(times), out


def rdflib_part(store: GraphStore, *, cap: int, tmp: Path) -> dict[str, Any]:
    """Copy up to `cap` triples of the Turtle union into rdflib's memory store; time its I/O."""
    db = store._db  # the bench reads the Oxigraph store directly to build rdflib's copy
    graph = rdflib.Graph()
    for prefix, iri in PREFIXES.items():
        graph.bind(prefix, iri)

    def term(t: Any) -> Any:
        if isinstance(t, ox.NamedNode):
            return rdflib.URIRef(t.value)
        if isinstance(t, ox.BlankNode):
            return rdflib.BNode(t.value)
        if t.language:
            return rdflib.Literal(t.value, lang=t.language)
        return rdflib.Literal(t.value, datatype=rdflib.URIRef(t.datatype.value))

    union = db.query(
        "CONSTRUCT { ?s ?p ?o } WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } "
        "FILTER(STRSTARTS(STR(?g), \"" + BASE + "graph/\")) } }"
    )
    build_start = time.perf_counter()
    n = 0
    for t in union:  # type: ignore[union-attr]
        if n >= cap:
            break
        graph.add((term(t.subject), term(t.predicate), term(t.object)))
        n += 1
    build = time.perf_counter() - build_start
    out = tmp / "rdflib.ttl"
    turtle, _ = timed(lambda: graph.serialize(destination=out, format="turtle"))
    join_q = "\n".join(f"PREFIX {p}: <{i}>" for p, i in PREFIXES.items()) + "\n" + JOIN
    join, rows = best_of(lambda: len(list(graph.query(join_q))), runs=3)
    all_q = join_q.replace(JOIN, JOIN_ALL)
    def count_all() -> int:
        row: Any = next(iter(graph.query(all_q)))
        return int(row[0])

    join_all, count = best_of(count_all, runs=3)
    return {"triples": n, "build_s": round(build, 2), "turtle_s": round(turtle, 2),
            "turtle_mb": round(out.stat().st_size / 1e6, 1), "join_s": round(join, 4),
            "join_rows": rows, "join_all_s": round(join_all, 4), "join_all_count": count,
            "peak_rss_mb": round(peak_rss_mb())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    n_records = max(10, round(args.triples / QUADS_PER_RECORD))
    gen_s, (entities, triples) = timed(lambda: synthetic(n_records, seed=args.seed))
    logger.info("generated %d entities, %d triples in %.1fs", len(entities), len(triples), gen_s)
    tmp = Path(tempfile.mkdtemp(prefix="kgenrich-bench-", dir=args.workdir))
    try:
        start = time.perf_counter()
        write_nquads(tmp / "render.nq", entities=entities, triples=triples, base=BASE)
        render_s = time.perf_counter() - start
        (tmp / "render.nq").unlink()
        path = None if args.in_memory else tmp / "store"
        store = GraphStore.open(path, base=BASE)
        start = time.perf_counter()
        report = store.load(entities, triples)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        store.load(entities, triples)
        reload_s = time.perf_counter() - start
        entities, triples = [], []  # free the records before the export steps
        graphs = store.count(by="graph")
        quads = sum(graphs.values())
        peak_after_load = peak_rss_mb()
        results: dict[str, Any] = {"load_s": round(load_s, 2),
                                   "of_which_render_nquads_s": round(render_s, 2),
                                   "reload_same_records_s": round(reload_s, 2)}
        steps: list[tuple[str, ExportFormat, set[SourceKind] | None]] = [
            ("turtle_all", "turtle", None),
            ("turtle_without_llm", "turtle", {SourceKind.SEED, SourceKind.CATALOG}),
            ("nquads_all", "nquads", None),
            ("nquads_without_llm", "nquads", {SourceKind.SEED, SourceKind.CATALOG}),
        ]
        for name, fmt, sources in steps:
            out = tmp / f"{name}.{fmt}"
            start = time.perf_counter()
            store.export(out, format=fmt, sources=sources)
            secs = time.perf_counter() - start
            results[f"{name}_s"] = round(secs, 2)
            results[f"{name}_mb"] = round(out.stat().st_size / 1e6, 1)
            out.unlink()
        join_s, rows = best_of(lambda: store.query(JOIN, sources=set(SourceKind)))
        join_all_s, join_all = best_of(lambda: store.query(JOIN_ALL, sources=set(SourceKind)))
        conf_s, conf = best_of(lambda: store.query(CONFIDENT))
        results |= {"join_s": round(join_s, 4), "join_rows": len(rows),
                    "join_all_s": round(join_all_s, 4), "join_all_count": int(join_all[0]["n"]),
                    "confidence_filter_s": round(conf_s, 4),
                    "confidence_filter_count": int(conf[0]["n"])}
        peak_oxigraph = peak_rss_mb()
        rdflib_results = (rdflib_part(store, cap=args.rdflib_max, tmp=tmp)
                          if args.rdflib_max > 0 else None)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "command": " ".join([".venv/bin/python", "bench/store.py", *sys.argv[1:]]),
        "machine": machine(cpus=os.cpu_count(),
                           pyoxigraph=ox.__version__ if hasattr(ox, "__version__") else "?",
                           rdflib=rdflib.__version__),
        "store": "in-memory" if args.in_memory else "on disk (RocksDB)",
        "records": {"triples": report.statements, "facts": report.facts,
                    "entities": report.entities, "generate_s": round(gen_s, 2)},
        "rdf_triples": quads,
        "graphs": graphs,
        "oxigraph": results,
        "rdflib": rdflib_results,
        "peak_rss_mb": {"after_load": round(peak_after_load),
                        "after_oxigraph_part": round(peak_oxigraph),
                        "after_rdflib_part": round(peak_rss_mb())},
    }


def markdown(r: dict[str, Any]) -> str:
    o, rl = r["oxigraph"], r["rdflib"]
    lines = [
        "# Graph store benchmark (Oxigraph via pyoxigraph)", "",
        f"Command: `{r['command']}`", "",
        f"Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, "
        f"pyoxigraph {r['machine']['pyoxigraph']}, rdflib {r['machine']['rdflib']}. "
        f"Store: {r['store']}.", "",
        f"Data: {r['records']['triples']:,} Triple records ({r['records']['facts']:,} asserted "
        f"facts, {r['records']['entities']:,} entities) = **{r['rdf_triples']:,} RDF triples** "
        "in the store (facts in per-source graphs; entities and reified statements with "
        "provenance in the default graph).", "",
        "| step | seconds | output |", "| --- | ---: | --- |",
        f"| load (records -> N-Quads -> bulk_extend) | {o['load_s']} | "
        f"rendering N-Quads alone: {o['of_which_render_nquads_s']} s |",
        f"| reload the same records (idempotent) | {o['reload_same_records_s']} | |",
        f"| Turtle export, all graphs | {o['turtle_all_s']} | {o['turtle_all_mb']} MB |",
        f"| Turtle export, seed + catalog only | {o['turtle_without_llm_s']} | "
        f"{o['turtle_without_llm_mb']} MB |",
        f"| N-Quads export, all graphs | {o['nquads_all_s']} | {o['nquads_all_mb']} MB |",
        f"| N-Quads export, seed + catalog only | {o['nquads_without_llm_s']} | "
        f"{o['nquads_without_llm_mb']} MB |",
        f"| 3-pattern SPARQL join (median of 5) | {o['join_s']} | {o['join_rows']} rows |",
        f"| 3-pattern join over all items, COUNT (median of 5) | {o['join_all_s']} | "
        f"{o['join_all_count']} |",
        f"| confidence filter on statements (median of 5) | {o['confidence_filter_s']} | "
        f"{o['confidence_filter_count']} |",
    ]
    if rl is not None:
        lines += [
            "", f"rdflib memory store, {rl['triples']:,} triples "
            f"(cap `--rdflib-max`; the Oxigraph Turtle union has "
            f"{r['rdf_triples']:,} quads before dedup):", "",
            "| step | seconds |", "| --- | ---: |",
            f"| build the graph (not part of the comparison) | {rl['build_s']} |",
            f"| Turtle write | {rl['turtle_s']} ({rl['turtle_mb']} MB) |",
            f"| same 3-pattern join (median of 3) | {rl['join_s']} ({rl['join_rows']} rows) |",
            f"| same join over all items, COUNT (median of 3) | {rl['join_all_s']} "
            f"({rl['join_all_count']}) |",
        ]
    p = r["peak_rss_mb"]
    lines += ["", f"Peak RSS: {p['after_load']} MB after load (records in memory), "
              f"{p['after_oxigraph_part']} MB after the Oxigraph steps, "
              f"{p['after_rdflib_part']} MB after the rdflib steps.", "",
              "The join: " + " ".join(JOIN.split()), "",
              "The join over all items: " + " ".join(JOIN_ALL.split()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--triples", type=int, default=1_000_000,
                   help="about how many RDF triples the store should hold (default 1M)")
    p.add_argument("--out", type=Path, default=Path("reports/store_bench.json"),
                   help="JSON output; the .md summary goes next to it")
    p.add_argument("--rdflib-max", type=int, default=1_500_000,
                   help="at most this many triples go to rdflib (default 1.5M, so --triples 1M "
                   "compares the whole graph; 0: skip rdflib)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-memory", action="store_true", help="in-memory store instead of disk")
    p.add_argument("--workdir", type=Path, default=None, help="temp dir parent (default: system)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kgenrich.kg").setLevel(logging.WARNING)
    result = run(args)
    text = markdown(result)
    print(text)
    write_report(args.out, result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
