"""LLM fault tolerance, end to end: `kgenrich run` against a loopback OpenAI-compatible server
that injects, per request and seeded, 20% HTTP 500, 10% HTTP 429 with Retry-After, 10% malformed
JSON bodies and 5% timeouts. Every run must finish; every item must be either processed or listed
with its error in `failures.jsonl` (and the report); the next run must ask only for the items not
done. Then a phase with the endpoint down (every request 503): the circuit breaker must stop
hammering it and say so, and the run after it comes back must pick the failed items up.

    .venv/bin/python bench/faults.py --items 300 --seed 11 --out reports/faults.json
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from harness import ROOT, machine, make_workspace, print_row, run_cli, write_report
from kgenrich.testing import (
    Fault,
    catalog_rows,
    film_server,
    http_error,
    malformed_json,
    rate_limited,
    write_catalog,
)

TIMEOUT_S = 1.5


class FaultMix:
    """Seeded per-request faults; `down` makes every request a 503."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.down = False
        self.healthy = False
        self.injected: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> Fault | None:
        with self.lock:
            if self.down:
                self.injected["503 (down)"] += 1
                return http_error(503, "endpoint down")
            if self.healthy:
                self.injected["ok"] += 1
                return None
            x = self.rng.random()
            kind = ("500" if x < 0.20 else "429" if x < 0.30 else "malformed" if x < 0.40
                    else "timeout" if x < 0.45 else "ok")
            self.injected[kind] += 1
        if kind == "500":
            return http_error(500, "injected")
        if kind == "429":
            return rate_limited("0.2")
        if kind == "malformed":
            return malformed_json()
        if kind == "timeout":
            return Fault(delay_s=TIMEOUT_S + 1.0)
        return None


def item_status(state: Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return Counter(r[0] for r in conn.execute("SELECT status FROM items"))
    finally:
        conn.close()


def done_items(state: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT item_id FROM items WHERE status='done'")}
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--max-runs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "faults.json")
    args = ap.parse_args(argv)
    rows = catalog_rows(args.items, seed=args.seed)
    mix = FaultMix(args.seed)
    runs: list[dict[str, Any]] = []
    settings = {"llm": {"timeout_s": TIMEOUT_S, "max_retries": 4, "backoff_s": 0.05}}
    with tempfile.TemporaryDirectory(prefix="kgenrich-faults-") as tmp, film_server(mix) as srv:
        ws = make_workspace(Path(tmp) / "ws", rows, settings=settings)
        state = ws.out / "state.sqlite"

        edited: set[str] = set()

        def one(phase: str, n: int) -> dict[str, Any]:
            before_done = (done_items(state) if state.is_file() else set()) - edited
            mix.injected.clear()
            mark = srv.mark()
            res = run_cli(ws, srv.base_url, f"{phase}-{n}")
            counts = srv.counts(mark)
            asked = {i for i, _ in counts}
            failures = [json.loads(line) for line in
                        (ws.out / "failures.jsonl").read_text().splitlines()] \
                if (ws.out / "failures.jsonl").is_file() else []
            report = json.loads((ws.out / "report.json").read_text()) if res.code == 0 else {}
            status = item_status(state)
            log = res.log_tail if res.code else ""
            full_log = (ws.root / f"{phase}-{n}.log").read_text(errors="replace")
            r = {
                "phase": phase, "run": n, "exit": res.code, "seconds": round(res.seconds, 1),
                "requests_at_server": sum(counts.values()),
                "items_asked": len(asked),
                "done_items_asked_again": len(asked & before_done),
                "faults_injected": dict(mix.injected),
                "items_done": status.get("done", 0), "items_failed": status.get("failed", 0),
                "items_pending": status.get("pending", 0),
                "failure_rows": len(failures),
                "failed_items_listed": len({f["item_id"] for f in failures}),
                "failure_examples": sorted({f["error"][:120] for f in failures})[:4],
                "llm_calls_reported": report.get("totals", {}).get("llm_calls"),
                "llm_failures_reported": report.get("extra", {}).get("llm failures"),
                "circuit_open_lines": full_log.count("circuit open"),
                "report_has_failure_section": "## Failed items" in (
                    (ws.out / "report.md").read_text() if (ws.out / "report.md").is_file()
                    else ""),
                "log_tail": log[-800:],
            }
            # every item processed or listed, none silently dropped
            r["unaccounted_items"] = args.items - r["items_done"] - r["failed_items_listed"] \
                - r["items_pending"]
            print_row({k: v for k, v in r.items() if k != "log_tail"})
            return r

        for n in range(1, args.max_runs + 1):
            runs.append(one("flaky", n))
            if runs[-1]["items_failed"] == 0 and runs[-1]["exit"] == 0:
                break
        # the catalog changes (50 items edited) while the endpoint is down
        changed = list(range(0, args.items, max(1, args.items // 50)))[:50]
        write_catalog(ws.catalog, catalog_rows(args.items, seed=args.seed, changed=changed))
        edited.update(f"i{i:04d}" for i in changed)  # changed items are rightly asked again
        mix.down = True
        runs.append(one("down", 1))
        mix.down, mix.healthy = False, True
        runs.append(one("recovered", 1))
    command = f".venv/bin/python bench/faults.py --items {args.items} --seed {args.seed}"
    data = {"command": command, "items": args.items, "timeout_s": TIMEOUT_S,
            "fault_mix": {"500": 0.20, "429 Retry-After 0.2s": 0.10, "malformed body": 0.10,
                          "timeout": 0.05},
            "runs": runs, "machine": machine()}
    write_report(args.out, data, render(data))
    ok = all(r["exit"] == 0 and r["unaccounted_items"] == 0 and r["done_items_asked_again"] == 0
             for r in runs)
    return 0 if ok else 1


def render(data: dict[str, Any]) -> str:
    out = [
        "# LLM fault tolerance", "", f"`{data['command']}`", "",
        f"{data['items']} synthetic films through `kgenrich run` (LLM cache off, client timeout "
        f"{data['timeout_s']} s, 4 retries with backoff, circuit breaker opening for 30 s "
        "when 5 attempts in a row and 90% of the last 20 failed). The loopback server injects "
        "per request: 20% HTTP 500, "
        "10% HTTP 429 with `Retry-After: 0.2`, 10% malformed JSON bodies, 5% answers slower "
        "than the timeout. Flaky runs repeat (at most 4) until no item is left failed; then 50 "
        "items are edited while the endpoint is down (every request HTTP 503); then it comes "
        "back healthy (no injected faults).", "",
        "| phase | run | exit | s | requests at server | items asked | done items asked "
        "again | done | failed (listed) | pending | unaccounted | circuit-open log lines |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["runs"]:
        out.append(
            f"| {r['phase']} | {r['run']} | {r['exit']} | {r['seconds']} | "
            f"{r['requests_at_server']} | {r['items_asked']} | {r['done_items_asked_again']} | "
            f"{r['items_done']} | {r['items_failed']} ({r['failed_items_listed']}) | "
            f"{r['items_pending']} | {r['unaccounted_items']} | {r['circuit_open_lines']} |")
    out += ["", "Injected faults per run and example errors:", ""]
    for r in data["runs"]:
        out.append(f"- {r['phase']} {r['run']}: {r['faults_injected']}; "
                   f"{r['failure_examples'][:2]}")
    down = [r for r in data["runs"] if r["phase"] == "down"]
    if down:
        d = down[0]
        out += ["", f"Endpoint down: {d['requests_at_server']} requests reached the server, "
                f"then the breaker opened and the other {d['llm_failures_reported']} LLM calls "
                f"failed fast (`circuit open` logged {d['circuit_open_lines']} times); the run "
                f"finished in {d['seconds']} s with {d['items_failed']} items listed as failed."]
    out += ["", "Every run exits 0; every item is done, listed in `failures.jsonl` with its "
            "error (and in the report's *Failed items* section), or pending; the next run asks "
            "only for the items that are not done (the *done items asked again* column counts "
            "re-asked items that were done and unchanged; edited items are rightly re-asked).",
            "", "The breaker is for dead endpoints: under the flaky mix (35% of attempts "
            "failing, streaks of five and more common) it should stay closed and let retries "
            "do their job; with the endpoint down it should open within a few attempts. The "
            "*circuit-open log lines* column shows which happened."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
