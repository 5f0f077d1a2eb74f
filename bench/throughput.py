"""LLM throughput of the `enrich` flow against a loopback OpenAI-compatible server with a fixed
latency, at several LLM concurrency levels; and the LLM budget stopping a run cleanly.

Setup: a 10,000-item synthetic movie catalog (title, genres; no director), a server process on
127.0.0.1 that answers every chat request after exactly `--latency` seconds with a deterministic
JSON answer, and a throwaway `prefect server start` (so flow and task runs are recorded over
HTTP as in production). Discovery and extraction are off; completion asks one question per item
(`directed_by`, one sample), so answers/s = items/s. For each concurrency level the number of
items asked (`complete.max_items`; the flow still reads, verifies and exports all 10,000) is
scaled to about `--seconds` of ideal LLM time: N = seconds * concurrency / latency.

Each level runs in its own process (for its own peak memory) and does two things:
1. the completion stage called directly (`complete_tails` + the real `OpenAICompatibleLLM`, no
   Prefect): pure LLM-layer throughput and client CPU per answer;
2. the real `enrich` flow with the same settings: the completion task's items/s, and the
   flow's fixed costs (read, catalog, KGE fit, verify, export, Prefect bookkeeping).

Target: items/s >= 0.8 * concurrency / latency. Then the budget demo: `kgenrich run` (the CLI,
a subprocess) with `llm.max_calls` below the number of questions; it must exit 0, say the
budget ran out, and count every question not asked as a rejection.

With `--task-runner dask` the flow's chunks run on a process `LocalCluster` with each of
`--workers` worker processes; every worker has its own client, so a level keeps up to
concurrency x workers requests in flight, and N and the target scale with both. The direct
stage and the budget demo (thread-runner measurements) are skipped then.

    .venv/bin/python bench/throughput.py                      # ~10 min; reports/throughput.*
    .venv/bin/python bench/throughput.py --seconds 3 --levels 1,8 --out /tmp/tp.json   # smoke
    .venv/bin/python bench/throughput.py --task-runner dask --workers 1,2 --levels 4,16 \
        --seconds 15                                          # reports/throughput_dask.*
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness import ROOT, cpu_seconds, peak_rss_mb, write_report
from kgenrich.data import ontology
from kgenrich.testing.completion import is_per_item, missing_relations

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ONTOLOGY = ontology("movies")
GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Thriller", "Animation",
          "Documentary", "Western", "Musical", "Crime", "Fantasy")
RELATION = "directed_by"


# --------------------------------------------------------------------------- data + server


def write_catalog(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "title", "genres"])
        for i in range(n):
            w.writerow([f"m{i}", f"Synthetic Film {i:05d}",
                        f"{GENRES[i % len(GENRES)]}|{GENRES[(i * 7 + 3) % len(GENRES)]}"])


_TITLE = re.compile(r"Movie: Synthetic Film (\d+)")


def answer_for(body: dict[str, Any]) -> str:
    """Deterministic: the director of film i is 'Director <i mod 997>'."""
    user = body["messages"][-1]["content"]
    m = _TITLE.search(user)
    n = int(m.group(1)) % 997 if m else 0
    if is_per_item(body):
        return json.dumps({rel: [f"Director {n}"] for rel in missing_relations(user)})
    return json.dumps({"tails": [f"Director {n}"]})


def serve_fixed_latency(port: int, latency: float) -> None:
    """Blocking: an OpenAI-compatible chat endpoint answering after exactly `latency` s.

    `GET /stats` returns (and resets) what it saw since the last reset: answers, peak requests
    in flight, and the wall window from the first request's arrival to the last answer."""
    lock = threading.Lock()
    stats: dict[str, Any] = {}

    def reset() -> dict[str, Any]:
        old = dict(stats)
        stats.update(count=0, in_flight=0, peak=0, first=None, last=None)
        return old

    reset()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms per request), which is the server's cost, not ours.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with lock:
                old = reset()
            old["window_s"] = (old["last"] - old["first"]) if old["first"] else 0.0
            self._send(json.dumps(old).encode())

        def do_POST(self) -> None:
            start = time.monotonic()
            with lock:
                stats["in_flight"] += 1
                stats["peak"] = max(stats["peak"], stats["in_flight"])
                if stats["first"] is None:
                    stats["first"] = start
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            content = answer_for(body)
            data = json.dumps({
                "id": "bench", "object": "chat.completion", "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58},
            }).encode()
            time.sleep(max(0.0, latency - (time.monotonic() - start)))
            self._send(data)
            with lock:
                stats["in_flight"] -= 1
                stats["count"] += 1
                stats["last"] = time.monotonic()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the default 5 drops SYNs when 32 clients connect at once

    Server(("127.0.0.1", port), Handler).serve_forever(poll_interval=0.05)


def server_stats(base_url: str) -> dict[str, Any]:
    """What the latency server saw since the last call (and reset it)."""
    import urllib.request

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


# --------------------------------------------------------------------------- one level


def bench_settings(*, base_url: str, concurrency: int, n: int, work: Path,
                   max_calls: int | None = None, task_runner: str = "thread",
                   workers: int = 1) -> dict[str, Any]:
    return {
        "task_runner": {"kind": task_runner, "workers": workers},
        "llm": {"backend": "openai", "base_url": base_url, "api_key": "bench-not-secret",
                "model": "bench-fixed-latency", "cache_dir": None, "concurrency": concurrency,
                "timeout_s": 30, "max_retries": 2, "max_calls": max_calls},
        "discover": {"use_spacy": False, "use_llm": False},
        "extract": {"enabled": False},
        "complete": {"relations": [RELATION], "samples": 1, "max_items": n},
        "verify": {"epochs": 1, "dim": 8},
        "export": {"formats": ["ripplenet"]},
        "reports_dir": str(work / "reports"),
    }


def _direct_stage(items: list[Any], *, n: int, concurrency: int, latency: float, base_url: str,
                  settings: Any, ontology: Any) -> dict[str, Any]:
    """`complete_tails` + the real client, no Prefect: the LLM layer's own throughput."""
    from kgenrich.pipeline.complete import complete_tails
    from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM

    todo = items[:n]
    rel = next(r for r in ontology.relations if r.name == RELATION)
    s = settings.llm
    llm = OpenAICompatibleLLM(base_url=base_url, api_key=s.api_key, model=s.model,
                              timeout_s=s.timeout_s, max_retries=s.max_retries,
                              backoff_s=s.backoff_s, concurrency=concurrency, cache_dir=None,
                              max_calls=None, max_tokens_total=None,
                              breaker_threshold=s.breaker_threshold,
                              breaker_cooldown_s=s.breaker_cooldown_s,
                              breaker_window=s.breaker_window,
                              breaker_failure_rate=s.breaker_failure_rate)
    with llm:
        # warm up: client, connection pool, imports (not timed)
        complete_tails(items[-concurrency:], llm=llm, ontology=ontology,
                       gaps={it.id: [rel] for it in items[-concurrency:]}, facts={},
                       labels_by_type={}, samples=1, temperature=0.0, max_candidates=40)
        server_stats(base_url)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        direct = complete_tails(
            todo, llm=llm, ontology=ontology, gaps={it.id: [rel] for it in todo},
            facts={it.id: [("has_genre", g) for g in it.attributes.get("has_genre", ())]
                   for it in todo},
            labels_by_type={}, samples=1, temperature=0.0, max_candidates=40)
        direct_s, direct_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        seen_direct = server_stats(base_url)
    rss_stage = peak_rss_mb()
    answered = len(direct.kept)
    ideal = -(-n // concurrency) * latency
    return {
        "direct_items_per_s": round(answered / direct_s, 1), "direct_s": round(direct_s, 2),
        "direct_answered": answered, "direct_peak_in_flight": seen_direct["peak"],
        "client_cpu_ms_per_item": round(1000 * direct_cpu / n, 2),
        "direct_overhead_ms_per_item": round(1000 * (direct_s - ideal) / n, 3),
        "peak_rss_mb_stage": round(rss_stage, 1),
        "meets_target_direct": answered / direct_s >= 0.8 * concurrency / latency,
    }


def run_level(*, catalog: Path, base_url: str, concurrency: int, n: int, latency: float,
              work: Path, task_runner: str = "thread", workers: int = 1) -> dict[str, Any]:
    """Direct stage (thread runner only), then the flow; in this (fresh) process."""
    from kgenrich.flows import io as fio
    from kgenrich.flows.enrich import EnrichInputs, enrich
    from kgenrich.kg.io.catalog import CatalogMapping
    from kgenrich.settings import Settings

    mapping = CatalogMapping(attributes={"genres": "has_genre"})
    settings = Settings(**bench_settings(base_url=base_url, concurrency=concurrency, n=n,
                                         work=work, task_runner=task_runner, workers=workers))
    tag = f"c{concurrency}" if task_runner == "thread" else f"c{concurrency}-{task_runner}{workers}"
    ontology = fio.read_ontology(ONTOLOGY)
    items = fio.read_items(catalog, mapping, ontology=ontology)
    direct: dict[str, Any] = {}
    if task_runner == "thread":
        direct = _direct_stage(items, n=n, concurrency=concurrency, latency=latency,
                               base_url=base_url, settings=settings, ontology=ontology)

    inputs = EnrichInputs(catalog=catalog, ontology=ONTOLOGY, mapping=mapping,
                          out_dir=work / f"out-{tag}", run_name=tag)
    t0 = time.perf_counter()
    report = enrich(inputs, settings)
    flow_s = time.perf_counter() - t0
    seen_flow = server_stats(base_url)
    stage = next(x for x in report.stages if x.stage == "complete")
    # The server's window (first request in .. last answer out) is the LLM phase of the flow,
    # independent of how the report adds up per-chunk seconds.
    llm_s = seen_flow["window_s"]
    # every worker process keeps `concurrency` requests in flight with its own client
    slots = concurrency * workers
    ideal = -(-n // slots) * latency
    target = 0.8 * slots / latency
    flow_rate = seen_flow["count"] / llm_s if llm_s else 0.0
    return {
        "task_runner": task_runner, "workers": workers,
        "concurrency": concurrency, "items": n, "ideal_s": round(ideal, 2),
        "target_items_per_s": round(target, 1), **direct,
        "runner_in_report": report.extra.get("task runner"),
        "flow_llm_items_per_s": round(flow_rate, 1), "flow_llm_s": round(llm_s, 2),
        "flow_requests": seen_flow["count"], "flow_peak_in_flight": seen_flow["peak"],
        "flow_complete_kept": stage.kept, "flow_complete_rejected": stage.rejected,
        "flow_s": round(flow_s, 2), "flow_fixed_s": round(flow_s - llm_s, 2),
        "peak_rss_mb_flow": round(peak_rss_mb(), 1),
        "meets_target_flow": flow_rate >= target,
    }


# --------------------------------------------------------------------------- budget demo


def budget_demo(*, catalog: Path, base_url: str, api: str, work: Path, asked: int,
                max_calls: int) -> dict[str, Any]:
    """`kgenrich run` with llm.max_calls < questions: exit code, report lines, counts."""
    config = work / "budget.json"
    cfg = bench_settings(base_url=base_url, concurrency=8, n=asked, work=work,
                         max_calls=max_calls)
    config.write_text(json.dumps(cfg))
    out = work / "out-budget"
    cmd = [str(Path(sys.executable).parent / "kgenrich"), "run", "--catalog", str(catalog),
           "--attr", "genres=has_genre", "--config", str(config), "--out", str(out),
           "--run-name", "budget"]
    env = {**os.environ, "PREFECT_API_URL": api}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    report = json.loads((out / "report.json").read_text()) if proc.returncode == 0 else {}
    stage: dict[str, Any] = next(
        (s for s in report.get("stages", []) if s["stage"] == "complete"), {})
    log = proc.stdout + proc.stderr
    failures_file = out / "failures.jsonl"
    failures = [json.loads(ln) for ln in failures_file.read_text().splitlines() if ln.strip()] \
        if failures_file.is_file() else []
    errors: dict[str, int] = {}
    for f in failures:
        errors[f"{f.get('stage')}: {f.get('error')}"] = errors.get(
            f"{f.get('stage')}: {f.get('error')}", 0) + 1
    return {
        "command": " ".join(["kgenrich", *cmd[1:]]), "exit_code": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1), "questions": asked,
        "max_calls": max_calls, "kept": stage.get("kept"), "rejected": stage.get("rejected"),
        "reasons": stage.get("reasons"), "llm_calls_in_report": stage.get("llm_calls"),
        "llm_failures": report.get("extra", {}).get("llm failures"),
        "budget_warning_logged": "budget exhausted" in log.lower(),
        "failed_items_in_report": report.get("extra", {}).get("failed items"),
        "failures_jsonl": errors,
        "log_tail": log.strip().splitlines()[-12:],
    }


# --------------------------------------------------------------------------- driver


def render(result: dict[str, Any]) -> str:
    lat = result["latency_s"]
    lines = [
        "# LLM throughput of the enrich flow", "",
        f"Loopback server with a fixed {lat * 1000:.0f} ms latency, {result['catalog_items']:,}"
        "-item synthetic catalog, one completion question per item (discovery and extraction "
        "off), so items/s = answers/s. Items asked per level: about "
        f"{result['seconds_per_level']:.0f} s of ideal LLM time (N = s x concurrency x workers "
        "/ latency). Target: 0.8 x concurrency x workers / latency. Task runner: "
        f"{result.get('task_runner', 'thread')}.", "",
        f"Machine: {result['machine']}. Command: `{result['command']}`", "",
        "| runner | workers | concurrency | items | target items/s "
        "| direct items/s (peak in flight) | flow items/s (peak in flight) "
        "| meets target (direct / flow) | client CPU ms/item | direct overhead ms/item "
        "| flow wall s | flow fixed s | peak RSS MB (stage / flow) |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|",
    ]
    yes = {True: "yes", False: "NO", None: "-"}
    for r in result["levels"]:
        d = {k: r.get(k, "-") for k in ("direct_items_per_s", "direct_peak_in_flight",
                                         "client_cpu_ms_per_item", "direct_overhead_ms_per_item",
                                         "peak_rss_mb_stage")}
        lines.append(
            f"| {r.get('task_runner', 'thread')} | {r.get('workers', 1)} | "
            f"{r['concurrency']} | {r['items']} | {r['target_items_per_s']} | "
            f"{d['direct_items_per_s']} ({d['direct_peak_in_flight']}) | "
            f"{r['flow_llm_items_per_s']} ({r['flow_peak_in_flight']}) | "
            f"{yes[r.get('meets_target_direct')]} / {yes[r['meets_target_flow']]} | "
            f"{d['client_cpu_ms_per_item']} | {d['direct_overhead_ms_per_item']} | "
            f"{r['flow_s']} | {r['flow_fixed_s']} | "
            f"{d['peak_rss_mb_stage']} / {r['peak_rss_mb_flow']} |")
    lines += [
        "", "- *direct*: `complete_tails` + the real `OpenAICompatibleLLM`, no Prefect; items/s "
        "= answers / wall time of the call.",
        "- *flow*: the real `enrich` flow; items/s = answers / the server's window from the "
        "flow's first request to its last answer (the report sums per-chunk seconds, which "
        "overlap when chunks run in parallel). *Peak in flight* is what the server saw.",
        "- *direct overhead*: (direct wall - ideal) / items, ideal = ceil(items / concurrency) "
        "x latency: what the LLM layer (prompt build, HTTP client, parse, validate) adds.",
        "- *flow fixed*: flow wall - its LLM window: reading and checking the 10,000-item "
        "catalog, catalog triples, state store, KGE fit (1 epoch), verify, RippleNet + JSONL "
        "export, Prefect bookkeeping against a local server. It does not grow with items asked.",
        "- *peak RSS*: the level's own process (ru_maxrss) after the direct stage, and after "
        "the flow (PyKEEN/torch imported for the verifier).",
        "- *dask* rows: the flow's chunks run on a process `LocalCluster` of *workers* worker "
        "processes (two threads each), each with its own LLM client and `concurrency` cap, "
        "so up to concurrency x workers requests are in flight; the flow process keeps the state "
        "store and commits each chunk. Their *flow fixed* time includes starting the cluster "
        "and each worker importing the pipeline (Prefect included) before the first chunk. "
        "The direct stage is the thread runner's measurement and is not repeated (-).", "",
    ]
    b = result.get("budget")
    if b:
        lines += [
            "## Budget stop", "",
            f"`{b['command']}` with `llm.max_calls = {b['max_calls']}` and {b['questions']} "
            f"questions: exit code {b['exit_code']}, {b['seconds']} s; completion kept "
            f"{b['kept']}, rejected {b['rejected']} ({b['reasons']}); report `llm failures` = "
            f"{b['llm_failures']}, `failed items` = {b['failed_items_in_report']}, "
            f"`llm_calls` = {b['llm_calls_in_report']}; budget warning logged: "
            f"{b['budget_warning_logged']}; `failures.jsonl` (asked again next run): "
            f"{b['failures_jsonl']}.", "",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="1,2,4,8,16,32")
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--seconds", type=float, default=30.0, help="ideal LLM seconds per level")
    p.add_argument("--catalog-items", type=int, default=10_000)
    p.add_argument("--budget-questions", type=int, default=400)
    p.add_argument("--budget-calls", type=int, default=100)
    p.add_argument("--no-budget", action="store_true")
    p.add_argument("--task-runner", default="thread", choices=("thread", "dask"),
                   help="where the flow's chunks run (dask: a process LocalCluster)")
    p.add_argument("--workers", default="1",
                   help="comma-separated worker processes per level (with --task-runner dask)")
    p.add_argument("--out", type=Path, help="default: reports/throughput.json, or "
                   "reports/throughput_<runner>.json for another runner")
    p.add_argument("--_server", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_level", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._server:
        serve_fixed_latency(args._server, args.latency)
        return 0
    if args._level:
        spec = json.loads(args._level)
        spec["catalog"], spec["work"] = Path(spec["catalog"]), Path(spec["work"])
        print("RESULT " + json.dumps(run_level(**spec)), flush=True)
        return 0

    from kgenrich.flows.serve import free_port, local_prefect_server, stop_process_group

    levels = [int(x) for x in args.levels.split(",")]
    workers = [int(x) for x in args.workers.split(",")] if args.task_runner != "thread" else [1]
    if args.task_runner != "thread":
        args.no_budget = True  # the budget demo is the thread runner's (budgets are per worker)
    out = args.out or ROOT / "reports" / (
        "throughput.json" if args.task_runner == "thread" else
        f"throughput_{args.task_runner}.json")
    with tempfile.TemporaryDirectory(prefix="kgenrich-tp-") as tmp:
        work = Path(tmp)
        catalog = work / "catalog.csv"
        write_catalog(catalog, args.catalog_items)
        port = free_port()
        llm_server = subprocess.Popen(
            [sys.executable, __file__, "--_server", str(port), "--latency", str(args.latency)],
            start_new_session=True)
        base_url = f"http://127.0.0.1:{port}/v1"
        result: dict[str, Any] = {
            "latency_s": args.latency, "catalog_items": args.catalog_items,
            "seconds_per_level": args.seconds, "task_runner": args.task_runner,
            "machine": f"{platform.platform()}, {os.cpu_count()} cores (shared)",
            "command": "python bench/throughput.py " + " ".join(argv or sys.argv[1:]),
            "levels": [],
        }
        try:
            with local_prefect_server(work / "prefect") as api:
                env = {**os.environ, "PREFECT_API_URL": api}
                for c, w in ((c, w) for c in levels for w in workers):
                    n = max(c * w, round(args.seconds * c * w / args.latency))
                    spec = {"catalog": str(catalog), "base_url": base_url, "concurrency": c,
                            "n": n, "latency": args.latency, "work": str(work),
                            "task_runner": args.task_runner, "workers": w}
                    proc = subprocess.run(
                        [sys.executable, __file__, "--_level", json.dumps(spec)], env=env,
                        capture_output=True, text=True, timeout=1800)
                    line = next((ln for ln in proc.stdout.splitlines()
                                 if ln.startswith("RESULT ")), None)
                    if line is None:
                        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                        raise SystemExit(f"level {c} x {w} failed ({proc.returncode})")
                    row = json.loads(line[len("RESULT "):])
                    result["levels"].append(row)
                    print(json.dumps(row), flush=True)
                if not args.no_budget:
                    result["budget"] = budget_demo(
                        catalog=catalog, base_url=base_url, api=api, work=work,
                        asked=args.budget_questions, max_calls=args.budget_calls)
                    print(json.dumps(result["budget"]), flush=True)
        finally:
            stop_process_group(llm_server)
    write_report(out, result, render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
