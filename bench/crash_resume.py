"""Crash-safe resume: SIGKILL a 1,000-item enrichment at random points, re-run it to completion,
and check that the result is the graph of an uninterrupted run, with no triple lost or
duplicated and no finished item sent to the LLM again.

The LLM is a deterministic OpenAI-compatible server on 127.0.0.1 (the integration tests'
`ScriptedServer`) that answers from the prompt; every prompt names its item (`Film i0042`), so
the server counts requests per (item, stage). The response cache is off (`cache_dir: null`):
with it on, a re-sent request would be a cache hit and invisible here. Each run is the real CLI
(`kgenrich run`) in its own process group, killed with SIGKILL.

    .venv/bin/python bench/crash_resume.py --trials 10 --seed 7 --out reports/crash_resume.json

This module also holds the harness `bench/faults.py` and `bench/incremental.py` use.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from scripted_server import ScriptedServer  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
ITEM_RE = re.compile(r"\bi(\d{4})\b")
GENRES = ["Comedy", "Drama", "Thriller", "Horror", "Romance", "Action", "Animation", "Crime"]
COUNTRIES = ["USA", "UK", "France", "Japan", "Italy", "Germany"]


# --------------------------------------------------------------------------- catalog


def person(n: int) -> str:
    first = ["Ann", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]
    last = ["Moss", "Nash", "Orr", "Pike", "Quinn", "Roth", "Shaw", "Tate", "Vance", "Wolfe"]
    return f"{first[n % len(first)]} {last[(n // len(first)) % len(last)]}{n // 120 or ''}"


def catalog_rows(n: int, *, seed: int = 0, changed: Sequence[int] = ()) -> list[dict[str, str]]:
    """`n` films; `changed` item numbers get an extra sentence (a catalog edit)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        director, star = person(rng.randrange(400)), person(rng.randrange(400))
        genre = rng.choice(GENRES)
        text = f"A {genre.lower()} story from {rng.choice(COUNTRIES)}. Starring {star}."
        if rng.random() < 0.7:  # the rest need completion of their director
            text = f"Directed by {director}. " + text
        if i in changed:
            text += " Restored edition."
        rows.append({"id": f"i{i:04d}", "title": f"Film i{i:04d}", "description": text,
                     "genre": genre, "country": rng.choice(COUNTRIES)})
    return rows


def write_catalog(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- LLM server


def stage_of(system: str) -> str:
    if "named entities" in system:
        return "discover"
    if "extract facts" in system:
        return "extract"
    return "complete"


def deterministic_reply(body: dict[str, Any]) -> str:
    """A model that reads the text: entities and facts from its sentences, a completion tail
    from a hash of the item and relation."""
    if not body.get("messages"):  # a body cut off by the SIGKILL
        return "{}"
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    stage = stage_of(system)
    directed = re.search(r"Directed by ([A-Z][\w ]+?)\.", user)
    star = re.search(r"Starring ([A-Z][\w ]+?)\.", user)
    if stage == "discover":
        ents = [{"label": m.group(1), "type": "Person"} for m in (directed, star) if m]
        return json.dumps({"entities": ents})
    if stage == "extract":
        facts = []
        if directed:
            facts.append({"relation": "directed_by", "tail": directed.group(1),
                          "evidence": directed.group(0)})
        if star:
            facts.append({"relation": "starring", "tail": star.group(1),
                          "evidence": star.group(0)})
        return json.dumps({"facts": facts})
    rel = re.search(r"Missing relation: (\w+)", user)
    item = ITEM_RE.search(user)
    key = f"{item.group(0) if item else ''}:{rel.group(1) if rel else ''}"
    n = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return json.dumps({"tails": [person(n % 400)]})


class CountingServer(ScriptedServer):
    """`ScriptedServer` with a deterministic reply, per-(item, stage) request counts, and an
    optional per-request fault chooser."""

    def __init__(self, fault: Callable[[dict[str, Any]], Any] | None = None) -> None:
        super().__init__(reply=deterministic_reply)
        self.fault = fault

    def _next_fault(self, body: dict[str, Any]) -> Any:
        if self.fault is not None:
            chosen = self.fault(body)
            if chosen is not None:
                return chosen
        return super()._next_fault(body)

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def counts(self, since: int = 0) -> Counter[tuple[str, str]]:
        with self._lock:
            recorded = self.requests[since:]
        out: Counter[tuple[str, str]] = Counter()
        for r in recorded:
            msgs = r.body.get("messages")
            if not msgs:
                continue
            item = ITEM_RE.search(msgs[-1]["content"]) or ITEM_RE.search(json.dumps(msgs))
            out[(f"i{item.group(1)}" if item else "?", stage_of(msgs[0]["content"]))] += 1
        return out


# --------------------------------------------------------------------------- runs


@dataclass
class Workspace:
    root: Path
    catalog: Path
    out: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)


def make_workspace(root: Path, rows: Sequence[dict[str, str]], *, name: str = "run",
                   settings: dict[str, Any] | None = None) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(root / "catalog.csv", rows)
    config = root / "settings.json"
    base: dict[str, Any] = {
        "llm": {"cache_dir": None, "concurrency": 4, "backoff_s": 0.05, "timeout_s": 10},
        "discover": {"use_spacy": False},
        "complete": {"relations": ["directed_by", "written_by"], "samples": 1},
        "verify": {"epochs": 3, "dim": 16},
        "chunk_size": 50,
        "reports_dir": str(root / "reports"),
    }
    for k, v in (settings or {}).items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and k in base else v
    config.write_text(json.dumps(base, indent=2), encoding="utf-8")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_HOME": str(root.parent / "prefect-home"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "OMP_NUM_THREADS": "1"}
    return Workspace(root=root, catalog=catalog, out=root / name, config=config, env=env)


def cli_command(ws: Workspace, base_url: str, run_name: str) -> list[str]:
    return [str(ROOT / ".venv" / "bin" / "kgenrich"), "run", "--catalog", str(ws.catalog),
            "--text-col", "description", "--attr", "genre=has_genre",
            "--attr", "country=country_of_origin", "--config", str(ws.config),
            "--out", str(ws.out), "--backend", "openai", "--base-url", base_url,
            "--model", "bench-model", "--run-name", run_name]


@dataclass
class RunResult:
    code: int | None
    seconds: float
    killed: bool
    log_tail: str


def run_cli(ws: Workspace, base_url: str, run_name: str, *,
            kill_when: Callable[[], bool] | None = None, log: Path | None = None) -> RunResult:
    """Run `kgenrich run` in its own process group; once `kill_when()` is true, SIGKILL the whole
    group (the run and Prefect's temporary API server) if it is still running."""
    log = log or ws.root / f"{run_name}.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cli_command(ws, base_url, run_name), cwd=ws.root, env=ws.env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        killed = False
        try:
            while proc.poll() is None:
                if kill_when is not None and kill_when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
                    break
                time.sleep(0.01)
        finally:
            # Prefect's temporary server is a child in the same group: never leave it behind.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    tail = log.read_text(errors="replace")[-3000:]
    return RunResult(proc.returncode, time.perf_counter() - start, killed, tail)


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


@contextmanager
def server(fault: Callable[[dict[str, Any]], Any] | None = None) -> Iterator[CountingServer]:
    with CountingServer(fault) as s:
        assert s._httpd is not None
        s._httpd.handle_error = lambda *a: None  # type: ignore[method-assign]  # killed clients
        yield s


def write_reports(out: Path, data: dict[str, Any], markdown: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")


# --------------------------------------------------------------------------- the benchmark


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--chunk-size", type=int, default=50)
    ap.add_argument("--iso-max-items", type=int, default=200,
                    help="run rdflib's isomorphism check (slow on big graphs) up to this size")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "crash_resume.json")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    rows = catalog_rows(args.items, seed=args.seed)
    settings = {"chunk_size": args.chunk_size}
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kgenrich-crash-") as tmp, server() as srv:
        base_ws = make_workspace(Path(tmp) / "baseline", rows, settings=settings)
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
            ws = make_workspace(Path(tmp) / f"trial{n}", rows, settings=settings)
            mark = srv.mark()
            # Most kills land at a random point of the LLM phase (after the k-th request); one in
            # five lands after it (verification, export), a random delay after the last request.
            if rng.random() < 0.8:
                point, delay = rng.randint(1, total), 0.0
                kill_at = f"after request {point}/{total}"
            else:
                point, delay = total, rng.uniform(0.5, 12.0)
                kill_at = f"{delay:.1f} s after the last request"
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
            if second.code == 0:
                t["nquads_identical"] = nquads_lines(ws.out) == nquads_lines(base_ws.out)
            if n == 0 and second.code == 0 and args.items <= args.iso_max_items:
                t0 = time.perf_counter()
                t["ttl_isomorphic"] = isomorphic(base_ws.out / "graph.ttl", ws.out / "graph.ttl")
                t["isomorphic_check_s"] = round(time.perf_counter() - t0, 1)
            trials.append(t)
            print(json.dumps(t))
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
    data = {"command": command, "items": args.items, "chunk_size": args.chunk_size,
            "baseline": {"seconds": round(base.seconds, 1), "triples": len(base_sig),
                         "requests": sum(base_counts.values()), **base_dups},
            "totals": totals, "trials": trials}
    print(json.dumps(totals))
    write_reports(args.out, data, render(data))
    return 0 if totals["identical_graphs"] == len(trials) and not totals[
        "resent_finished_item_stages"] else 1


def render(data: dict[str, Any]) -> str:
    t, b = data["totals"], data["baseline"]
    out = [
        "# Crash-safe resume", "",
        f"`{data['command']}`", "",
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
            "(Prefect's thread pool runs several at once)."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
