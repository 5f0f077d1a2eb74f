"""What every benchmark shares: the machine it ran on, peak memory and CPU time, writing the
report's `.json` and `.md` atomically, and printing one result row per line.

Scripts run as `python bench/<name>.py`, so Python finds this module beside them:
`import harness`.
The loopback-run helpers at the end drive the real `kgenrich run` CLI in a scratch folder.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgenrich.kg.atomic import atomic_write
from kgenrich.testing import write_catalog

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: default report paths are `ROOT / "reports" / ...`."""

# The flags that decide which kernels llama.cpp, torch and numpy run (scripts/setup.sh's list).
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f",
                "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:  # not Linux: platform's answer is all there is
        pass
    return ""


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or platform.processor() elsewhere."""
    return _cpuinfo_field("model name") or platform.processor()


def cpu_flags() -> list[str]:
    """Which of `VECTOR_FLAGS` this CPU has, in that order."""
    have = set(_cpuinfo_field("flags").split())
    return [f for f in VECTOR_FLAGS if f in have]


def machine(**extra: Any) -> dict[str, Any]:
    """The machine and software a figure was measured on; `extra` adds script-specific keys.

    Torch's version is included only if the script imported torch (importing it here would
    cost seconds and memory the figures should not include)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
    return {**info, **extra}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_report(
    path: Path,
    data: Mapping[str, Any],
    markdown: str | None = None,
    *,
    md_path: Path | None = None,
    indent: int = 2,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Write `data` as JSON to `path` and `markdown` to `md_path` (default: `path` with `.md`),
    each atomically, creating the folder. `default` is json.dumps's hook for other types."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(data, indent=indent, default=default) + "\n")
    if markdown is not None:
        md = md_path or path.with_suffix(".md")
        md.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(md) as f:
            f.write(markdown)


def print_row(row: Mapping[str, Any]) -> None:
    """Print one result row as a JSON line, flushed so a watcher sees it at once."""
    print(json.dumps(row), flush=True)


# --------------------------------------------------------------------------- loopback CLI runs


@dataclass
class Workspace:
    """A scratch folder for `kgenrich run`: catalog, settings file, output and environment."""

    root: Path
    catalog: Path
    out: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)


def make_workspace(root: Path, rows: Sequence[dict[str, str]], *, name: str = "run",
                   settings: dict[str, Any] | None = None) -> Workspace:
    """Write `rows` and a small-model settings file (cache off) under `root`; `settings`
    updates its sections."""
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
    """`kgenrich run` on the workspace's catalog against the OpenAI-compatible `base_url`."""
    # The console script beside this interpreter: the venv the benchmark runs in.
    return [str(Path(sys.executable).parent / "kgenrich"), "run", "--catalog", str(ws.catalog),
            "--text-col", "description", "--attr", "genre=has_genre",
            "--attr", "country=country_of_origin", "--config", str(ws.config),
            "--out", str(ws.out), "--backend", "openai", "--base-url", base_url,
            "--model", "bench-model", "--run-name", run_name]


@dataclass
class RunResult:
    """How one CLI run ended: exit code (None if never reaped), wall time, and its log's end."""

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


def t_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds (paired differences); nan bounds for one seed."""
    import math

    from scipy import stats

    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"mean": mean, "ci95": [math.nan, math.nan], "per_seed": list(values)}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": list(values)}
