"""Speed of the embedded LLM on this machine: prompt and generation tokens per second of the
bundled Qwen2.5-Coder-1.5B GGUF served by `llama_cpp.server`, for several thread counts and
with llama.cpp's weight-repacking buffers on or off.

Each configuration starts its own server (`pipeline.llm.embedded.EmbeddedServer`, the code path
the pipeline uses), sends one warm-up request, then `--requests` chat requests with a fixed
prompt of about 400 tokens asking for a long answer (`max_tokens`, temperature 0), and reads
llama.cpp's own token counts from each response's `usage`. Generation speed is
completion tokens / (wall - prompt time), with prompt time measured by a 1-token request.

    .venv/bin/python bench/llm_speed.py --out reports/llm_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from harness import ROOT, write_report

PROMPT = (
    "List facts about these films as JSON lines with keys title, year, director, genres: "
    + ", ".join(f"'{t}'" for t in (
        "Alien", "Heat", "Fargo", "Casablanca", "Vertigo", "Psycho", "Jaws", "Rocky",
        "Amadeus", "Gandhi", "Platoon", "Titanic", "Gladiator", "Chicago", "Crash",
        "Argo", "Birdman", "Spotlight", "Moonlight", "Parasite", "Nomadland", "Coda",
    ))
    + ". Then describe each film's plot in two sentences. " * 3
)


def _chat(base_url: str, *, max_tokens: int, nonce: int) -> tuple[float, dict[str, Any]]:
    import urllib.request

    # the nonce leads the prompt so llama.cpp's prompt cache never serves a previous request
    body = json.dumps({
        "model": "bench", "temperature": 0.0, "max_tokens": max_tokens, "seed": 0,
        "messages": [{"role": "user", "content": f"Request {nonce}. {PROMPT}"}],
    }).encode()
    req = urllib.request.Request(base_url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=900) as resp:
        data = json.loads(resp.read())
    return time.perf_counter() - t0, data["usage"]


def measure(*, threads: int, extra_bufts: bool, requests: int, max_tokens: int) -> dict[str, Any]:
    from kgenrich.pipeline.llm.embedded import EmbeddedServer, ServerOptions, ensure_model

    options = ServerOptions(n_ctx=2048, n_threads=threads,
                            extra_bufts="on" if extra_bufts else "off")
    t0 = time.perf_counter()
    with EmbeddedServer(ensure_model(), options=options, port=0, log_dir=Path("/tmp")) as base_url:
        startup = time.perf_counter() - t0
        _chat(base_url, max_tokens=8, nonce=-1)  # warm-up
        gen_rates, prompt_rates = [], []
        for i in range(requests):
            # the same prompt twice, each cold: 1 token (prompt time), then a long answer
            p_wall, p_usage = _chat(base_url, max_tokens=1, nonce=2 * i)
            wall, usage = _chat(base_url, max_tokens=max_tokens, nonce=2 * i + 1)
            prompt_rates.append(p_usage["prompt_tokens"] / p_wall)
            gen_rates.append(usage["completion_tokens"] / max(wall - p_wall, 1e-6))
        return {
            "threads": threads, "extra_bufts": extra_bufts, "startup_s": round(startup, 1),
            "prompt_tokens": p_usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "prompt_tok_per_s": round(sorted(prompt_rates)[len(prompt_rates) // 2], 1),
            "gen_tok_per_s": round(sorted(gen_rates)[len(gen_rates) // 2], 1),
            "gen_tok_per_s_all": [round(r, 1) for r in gen_rates],
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--extra-bufts", default="off,on", help="comma list of on/off")
    p.add_argument("--requests", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "llm_speed.json")
    args = p.parse_args(argv)
    import llama_cpp

    rows = []
    for eb in args.extra_bufts.split(","):
        for th in (int(x) for x in args.threads.split(",")):
            row = measure(threads=th, extra_bufts=eb == "on", requests=args.requests,
                          max_tokens=args.max_tokens)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "command": "python bench/llm_speed.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, load "
                   f"{os.getloadavg()[0]:.2f} at the end",
        "llama_cpp_python": llama_cpp.__version__,
        "build": os.environ.get("KGENRICH_LLAMA_BUILD", "see scripts/setup.sh"),
        "rows": rows,
    }
    lines = ["# Embedded LLM speed", "", f"`{result['command']}`", "",
             f"{result['machine']}; llama-cpp-python {result['llama_cpp_python']} "
             f"({result['build']}).", "",
             "| threads | repack buffers | prompt tok/s | generation tok/s | startup s |",
             "|---:|:-:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {'on' if r['extra_bufts'] else 'off'} | "
                     f"{r['prompt_tok_per_s']} | {r['gen_tok_per_s']} | {r['startup_s']} |")
    write_report(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
