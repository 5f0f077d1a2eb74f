"""Crash-safe resume: SIGKILL a 1,000-item enrichment at random points, re-run it to completion,
and check that the result is the graph of an uninterrupted run, with no triple lost or
duplicated and no finished item sent to the LLM again.

The LLM is a deterministic OpenAI-compatible server on 127.0.0.1 (`kgenrich.testing`'s
`FilmServer`) that answers from the prompt; every prompt names its item (`Film i0042`), so
the server counts requests per (item, stage). The response cache is off (`cache_dir: null`):
with it on, a re-sent request would be a cache hit and invisible here. Each run is the real CLI
(`kgenrich run`) in its own process group, killed with SIGKILL.

With `--task-runner dask` every run puts its chunks on a process `LocalCluster` of `--workers`
worker processes (started by the run, in its process group, so the kill takes them too),
reporting to one `prefect server start` that outlives the kills; the state store and the chunk
commits stay in the run's own process.

    .venv/bin/python bench/crash_resume.py --trials 10 --seed 7 --out reports/crash_resume.json
    .venv/bin/python bench/crash_resume.py --trials 10 --seed 7 --task-runner dask --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from harness import ROOT, Workspace, machine, make_workspace, print_row, run_cli, write_report
from kgenrich.testing import catalog_rows, film_server


def committed(state: Path) -> set[tuple[str, str]]:
    """(item, stage) pairs whose results a (possibly killed) run committed."""
    if not state.is_file():
        return set()
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return {(r[0], r[1]) for r in conn.execute("SELECT item_id, stage FROM results")}
    except sqlite3.OperationalError:  # killed before the schema was created
        return set()
    finally:
        conn.close()


def graph_signature(out: Path) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """Every triple's key, source, item and decision (sorted), and the number of duplicated
    keys in triples.jsonl."""
    rows = []
    for line in (out / "triples.jsonl").read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        p = t["provenance"]
        rows.append((t["head"], t["relation"], t["tail"], p["source"], p.get("item_id"),
                     p["decision"]))
    keys = Counter(r[:3] for r in rows)
    return sorted(rows), {"duplicated_keys": sum(1 for n in keys.values() if n > 1)}


def nquads_lines(out: Path) -> list[str]:
    """graph.nq as sorted lines: blank node labels derive from the statements, so equal runs
    write equal lines (a stricter test than isomorphism, and linear)."""
    return sorted((out / "graph.nq").read_text(encoding="utf-8").splitlines())


def isomorphic(a: Path, b: Path) -> bool:
    import rdflib
    from rdflib.compare import isomorphic as iso

    ga = rdflib.Graph().parse(a, format="turtle")
    gb = rdflib.Graph().parse(b, format="turtle")
    return iso(ga, gb)


# --------------------------------------------------------------------------- the benchmark


@contextmanager
def prefect_api(task_runner: str, home: Path) -> Iterator[str | None]:
    """A `prefect server start` for worker processes (dask), else None: each run then starts
    Prefect's temporary server in its own process group, which the kill takes with it."""
    if task_runner == "thread":
        with nullcontext(None) as none:
            yield none
        return
    from kgenrich.flows.serve import local_prefect_server

    with local_prefect_server(home) as api:
        yield api


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--chunk-size", type=int, default=50)
    ap.add_argument("--iso-max-items", type=int, default=200,
                    help="run rdflib's isomorphism check (slow on big graphs) up to this size")
    ap.add_argument("--task-runner", default="thread", choices=("thread", "dask"))
    ap.add_argument("--workers", type=int, default=2, help="dask worker processes")
    ap.add_argument("--only", type=lambda v: {int(x) for x in v.split(",")},
                    help="run only these trial numbers (comma list), with the kill points they "
                    "have in the full run: to reproduce one failure")
    ap.add_argument("--keep-logs", type=Path,
                    help="copy every run's log here (the workspace is a temporary folder)")
    ap.add_argument("--out", type=Path, help="default: reports/crash_resume.json, or "
                    "reports/crash_resume_<runner>.json for another runner")
    args = ap.parse_args(argv)
    out = args.out or ROOT / "reports" / ("crash_resume.json" if args.task_runner == "thread"
                                          else f"crash_resume_{args.task_runner}.json")
    rng = random.Random(args.seed)
    rows = catalog_rows(args.items, seed=args.seed)
    settings: dict[str, Any] = {"chunk_size": args.chunk_size}
    if args.task_runner != "thread":
        settings["task_runner"] = {"kind": args.task_runner, "workers": args.workers}
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kgenrich-crash-") as tmp, film_server() as srv, \
            prefect_api(args.task_runner, Path(tmp) / "prefect-server") as api:

        def workspace(name: str) -> Workspace:
            ws = make_workspace(Path(tmp) / name, rows, settings=settings)
            if api is not None:
                ws.env["PREFECT_API_URL"] = api
            return ws

        base_ws = workspace("baseline")
        mark = srv.mark()
        base = run_cli(base_ws, srv.base_url, "baseline")
        if base.code != 0:
            print(base.log_tail, file=sys.stderr)
            return 1
        base_counts = srv.counts(mark)
        base_sig, base_dups = graph_signature(base_ws.out)
        print(f"baseline: {base.seconds:.1f} s, {sum(base_counts.values())} LLM requests, "
              f"{len(base_sig)} triples")
        total = sum(base_counts.values())
        for n in range(args.trials):
            # Most kills land at a random point of the LLM phase (after the k-th request); one in
            # five lands after it (verification, export), a random delay after the last request.
            if rng.random() < 0.8:
                point, delay = rng.randint(1, total), 0.0
                kill_at = f"after request {point}/{total}"
            else:
                point, delay = total, rng.uniform(0.5, 12.0)
                kill_at = f"{delay:.1f} s after the last request"
            if args.only is not None and n not in args.only:
                continue  # after the draws, so every trial keeps its kill point
            ws = workspace(f"trial{n}")
            mark = srv.mark()
            reached: list[float] = []

            def kill_when(point: int = point, delay: float = delay, mark: int = mark,
                          reached: list[float] = reached) -> bool:
                if not reached and srv.mark() - mark >= point:
                    reached.append(time.monotonic())
                return bool(reached) and time.monotonic() - reached[0] >= delay

            first = run_cli(ws, srv.base_url, "killed", kill_when=kill_when)
            before = srv.counts(mark)
            done = committed(ws.out / "state.sqlite")
            mark = srv.mark()
            second = run_cli(ws, srv.base_url, "resumed")
            after = srv.counts(mark)
            sig, dups = graph_signature(ws.out) if second.code == 0 else ([], {})
            resent = sum(after[k] for k in done)
            t = {
                "trial": n, "kill_at": kill_at, "killed": first.killed,
                "committed_item_stages": len(done),
                "requests_killed_run": sum(before.values()),
                "requests_resumed_run": sum(after.values()),
                "requests_total": sum(before.values()) + sum(after.values()),
                "requests_uninterrupted": sum(base_counts.values()),
                "resent_finished_item_stages": resent,
                "resumed_exit": second.code, "resumed_seconds": round(second.seconds, 1),
                "same_triples_and_decisions": sig == base_sig,
                "triples": len(sig), "missing": len(set(base_sig) - set(sig)),
                "extra": len(set(sig) - set(base_sig)), **dups,
            }
            t["wasted_requests"] = t["requests_total"] - t["requests_uninterrupted"]
            if second.code != 0:
                # Kept so that a failed resume can be diagnosed from the report alone.
                t["resumed_log_tail"] = second.log_tail
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in ws.root.glob("*.log"):
                    shutil.copy(log, args.keep_logs / f"trial{n}-{log.name}")
            if second.code == 0:
                t["nquads_identical"] = nquads_lines(ws.out) == nquads_lines(base_ws.out)
            if n == 0 and second.code == 0 and args.items <= args.iso_max_items:
                t0 = time.perf_counter()
                t["ttl_isomorphic"] = isomorphic(base_ws.out / "graph.ttl", ws.out / "graph.ttl")
                t["isomorphic_check_s"] = round(time.perf_counter() - t0, 1)
            trials.append(t)
            print_row(t)
    totals = {
        "trials": len(trials),
        "killed_mid_run": sum(t["killed"] for t in trials),
        "identical_graphs": sum(t["same_triples_and_decisions"] for t in trials),
        "identical_nquads": sum(t.get("nquads_identical", False) for t in trials),
        "resent_finished_item_stages": sum(t["resent_finished_item_stages"] for t in trials),
        "wasted_requests": sum(t["wasted_requests"] for t in trials),
        "duplicated_keys": sum(t.get("duplicated_keys", 0) for t in trials),
        "missing_triples": sum(t["missing"] for t in trials),
        "requests_uninterrupted_run": sum(base_counts.values()),
    }
    command = (f".venv/bin/python bench/crash_resume.py --items {args.items} --trials "
               f"{args.trials} --seed {args.seed} --chunk-size {args.chunk_size}")
    if args.task_runner != "thread":
        command += f" --task-runner {args.task_runner} --workers {args.workers}"
    data = {"command": command, "items": args.items, "chunk_size": args.chunk_size,
            "task_runner": settings.get("task_runner", {"kind": "thread"}),
            "baseline": {"seconds": round(base.seconds, 1), "triples": len(base_sig),
                         "requests": sum(base_counts.values()), **base_dups},
            "totals": totals, "trials": trials, "machine": machine()}
    print_row(totals)
    write_report(out, data, render(data))
    return 0 if totals["identical_graphs"] == len(trials) and not totals[
        "resent_finished_item_stages"] else 1


def _runner(data: dict[str, Any]) -> str:
    r = data.get("task_runner", {"kind": "thread"})
    if r["kind"] == "thread":
        return "thread (Prefect's thread pool in the run's process)"
    return (f"{r['kind']}, a process LocalCluster of {r.get('workers')} workers started by "
            "each run (in its process group: the SIGKILL takes them too), reporting to one "
            "`prefect server start`; state store and chunk commits in the run's process")


def render(data: dict[str, Any]) -> str:
    t, b = data["totals"], data["baseline"]
    out = [
        "# Crash-safe resume", "",
        f"`{data['command']}`", "",
        f"Task runner: {_runner(data)}.", "",
        f"{data['items']} synthetic films, chunks of {data['chunk_size']}, a deterministic "
        "OpenAI-compatible server on 127.0.0.1, LLM response cache off. Each trial runs "
        "`kgenrich run` in a fresh folder and SIGKILLs its process group at a random point "
        "(seeded): mostly right after the server received its k-th request (k uniform over the "
        "uninterrupted run's requests), sometimes 0.5-12 s after the last request "
        "(verification and export); then it re-runs the same command to completion.", "",
        f"Uninterrupted run: {b['seconds']} s, {b['requests']} LLM requests, {b['triples']} "
        "triples.", "",
        f"**{t['identical_graphs']}/{t['trials']}** resumed graphs identical to the "
        f"uninterrupted one (triple keys, source, item, decision), "
        f"{t['identical_nquads']}/{t['trials']} with byte-identical graph.nq (sorted lines); "
        f"**{t['resent_finished_item_stages']}** requests re-sent for an (item, stage) the "
        f"killed run had committed; {t['missing_triples']} triples missing, "
        f"{t['duplicated_keys']} duplicated keys; {t['wasted_requests']} requests re-sent in "
        "total for chunks that were in flight when the process died.", "",
        "| trial | killed at | killed | committed item-stages | requests killed run | "
        "resumed run | total | wasted | re-sent finished | identical | graph.nq identical | "
        "missing | dup keys |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in data["trials"]:
        out.append(
            f"| {r['trial']} | {r['kill_at']} | {r['killed']} | {r['committed_item_stages']} "
            f"| {r['requests_killed_run']} | {r['requests_resumed_run']} | "
            f"{r['requests_total']} | {r['wasted_requests']} | "
            f"{r['resent_finished_item_stages']} | {r['same_triples_and_decisions']} | "
            f"{r.get('nquads_identical')} | "
            f"{r['missing']} | {r.get('duplicated_keys', 0)} |")
    iso = [r for r in data["trials"] if "ttl_isomorphic" in r]
    if iso:
        out += ["", f"`rdflib.compare.isomorphic` on graph.ttl (trial 0 vs uninterrupted): "
                f"{iso[0]['ttl_isomorphic']} ({iso[0]['isomorphic_check_s']} s)."]
    out += ["", "Wasted requests are the in-flight chunks' work: a chunk is committed only when "
            "its stage call returns, so a kill loses at most the chunks running at that moment "
            "(the task runner runs several at once)."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
