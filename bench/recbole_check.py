"""Do the recommender exports load in their consumers? RecBole trains KGCN and RippleNet on a
kgenrich export, and the RippleNet files pass the original RippleNet loader's sizing rule.

The export is a seed-only `kgenrich run` of MovieLens-100K (catalog, IMDb auxiliary seed,
interactions; no LLM stage), unless `--export` names a finished run folder. RecBole reads
`<export>/recbole/<dataset>/<dataset>.{inter,kg,link}` as written: no file is renamed or added.
Training runs in RecBole's own venv (`bash scripts/recbole_venv.sh`), one process per model,
through bench/recbole_train.py; its metrics (RecBole's defaults: Recall, MRR, NDCG, Hit and
Precision @10, full ranking) go to `--out` (JSON) and a Markdown summary beside it.

    .venv/bin/python bench/recbole_check.py --out reports/recbole_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import harness

DEFAULT_VENV = Path.home() / ".cache" / "kgenrich" / "recbole-venv"
DEFAULT_DATA = harness.ROOT.parent / "shared" / "data" / "movielens-100k"
MODELS = ("KGCN", "RippleNet")
TRAINER = Path(__file__).resolve().parent / "recbole_train.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--export", type=Path, help="a finished run folder (default: make one)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MovieLens-100K folder")
    p.add_argument("--work", type=Path, default=Path("out/recbole_check"),
                   help="scratch folder for the run and RecBole's checkpoints")
    p.add_argument("--dataset", default="kgenrich", help="export.recbole_dataset of the run")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="RecBole's venv")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated RecBole models")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/torch threads for RecBole (default 1: the machine is shared)")
    p.add_argument("--out", type=Path, default=harness.ROOT / "reports" / "recbole_check.json")
    return p.parse_args(argv)


def run_command(data: Path, out: Path, *, dataset: str, work: Path) -> list[str]:
    """The seed-only ML-100K `kgenrich run` (README's command, every LLM stage off)."""
    settings = ["complete.enabled=false", "extract.enabled=false", "discover.use_llm=false",
                "discover.use_spacy=false", "llm.backend=fake", "llm.cache_dir=null",
                # verification has no candidate to score here: keep its KGE fit small
                "verify.epochs=1", "verify.dim=16", f"export.recbole_dataset={dataset}",
                'export.formats=["ripplenet","recbole"]', f"reports_dir={work / 'reports'}"]
    cmd = [str(Path(sys.executable).parent / "kgenrich"), "run",
           "--catalog", str(data / "ml-100k.item"), "--id-col", "item_id",
           "--title-col", "movie_title", "--catalog-format", "recbole",
           "--seed", str(data / "imdb_auxiliary.txt"), "--seed-format", "auxiliary",
           "--seed-skip-bad", "--interactions", str(data / "ml-100k.inter"),
           "--out", str(out), "--run-name", "recbole-check"]
    for s in settings:
        cmd += ["--set", s]
    return cmd


def make_export(data: Path, work: Path, *, dataset: str) -> Path:
    out = work / "run"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "HF_HUB_OFFLINE": "1", "PREFECT_HOME": str(work / "prefect-home"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "OMP_NUM_THREADS": "1"}
    log = work / "run.log"
    with log.open("w") as fh:
        code = subprocess.call(run_command(data, out, dataset=dataset, work=work), env=env,
                               stdout=fh, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"kgenrich run failed ({code}); see {log}:\n"
                         + log.read_text(errors="replace")[-3000:])
    return out


def recbole_files(export: Path, dataset: str) -> dict[str, int]:
    """Data lines of each RecBole file (the header excluded); exits if one is missing."""
    folder = export / "recbole" / dataset
    lines: dict[str, int] = {}
    for ext in ("inter", "kg", "link"):
        file = folder / f"{dataset}.{ext}"
        if not file.is_file():
            raise SystemExit(f"{file}: missing; RecBole opens <data_path>/<dataset>/"
                             f"<dataset>.{ext}")
        with file.open(encoding="utf-8") as f:
            lines[ext] = sum(1 for _ in f) - 1
    return lines


def ripplenet_sizing(folder: Path) -> dict[str, Any]:
    """hwwang55/RippleNet data_loader.py's sizes of the export, and whether every id fits."""
    kg = np.loadtxt(folder / "kg_final.txt", dtype=np.int32).reshape(-1, 3)
    ratings = np.loadtxt(folder / "ratings_final.txt", dtype=np.int32).reshape(-1, 3)
    with (folder / "item_index2entity_id.txt").open(encoding="utf-8") as f:
        n_item = sum(1 for line in f if line.strip())
    n_entity = len(set(kg[:, 0]) | set(kg[:, 2]))
    max_entity = int(kg[:, [0, 2]].max())
    max_item = int(ratings[:, 1].max())
    return {"n_entity": n_entity, "max_entity_id": max_entity, "n_item": n_item,
            "max_rated_item": max_item, "n_relation": len(set(kg[:, 1])),
            "ratings": int(ratings.shape[0]),
            "fits": max_entity < n_entity and max_item < n_item <= n_entity}


def train(args: argparse.Namespace, export: Path, model: str) -> dict[str, Any]:
    python = args.venv / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"{python}: no RecBole venv; build it with bash scripts/recbole_venv.sh")
    threads = str(args.threads)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads}
    log = args.work / f"recbole-{model}.log"
    cmd = [str(python), str(TRAINER), "--data-path", str(export / "recbole"),
           "--dataset", args.dataset, "--model", model, "--epochs", str(args.epochs),
           "--checkpoint-dir", str(args.work / "checkpoints")]
    # RecBole writes its log relative to the working directory: keep it in the scratch folder.
    with log.open("w") as fh:
        code = subprocess.call(cmd, env=env, cwd=args.work, stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    rows = [line.split(" ", 1)[1] for line in text.splitlines()
            if line.startswith("RECBOLE_RESULT ")]
    if code != 0 or not rows:
        raise SystemExit(f"RecBole {model} failed ({code}); see {log}:\n{text[-3000:]}")
    row: dict[str, Any] = json.loads(rows[-1])
    row["log"] = str(log)
    return row


def render_markdown(rep: dict[str, Any]) -> str:
    out = ["# RecBole and RippleNet load the kgenrich export", "",
           f"Export: `{rep['export']}` (dataset `{rep['dataset']}`); RecBole files, data lines: "
           + ", ".join(f"`.{k}` {v}" for k, v in rep["recbole_files"].items()) + ".", ""]
    s = rep["ripplenet_sizing"]
    out += [f"Original RippleNet loader: n_entity = {s['n_entity']} (largest id "
            f"{s['max_entity_id']}), {s['n_item']} items (largest rated {s['max_rated_item']}): "
            f"{'fits' if s['fits'] else 'DOES NOT FIT'}.", ""]
    if rep.get("exports"):
        out += ["Dropped by the exporters for their consumers: "
                + "; ".join(f"{name}: {c.get('dropped_items', 0)} items, "
                            f"{c.get('dropped_interactions', 0)} interactions"
                            for name, c in rep["exports"].items()) + ".", ""]
    epochs = sorted({r["epochs"] for r in rep["runs"]})
    out += [f"Epochs: {', '.join(map(str, epochs))}, with RecBole's default hyperparameters, "
            "split and full-ranking evaluation: a check that RecBole loads and trains on the "
            "files, not a tuned result.", ""]
    metrics = sorted({k for r in rep["runs"] for k in r["test"]})
    out += ["| model | epochs | s | " + " | ".join(f"test {m}" for m in metrics) + " |",
            "|---|---:|---:|" + "---:|" * len(metrics)]
    for r in rep["runs"]:
        out.append(f"| {r['model']} | {r['epochs']} | {r['seconds']} | "
                   + " | ".join(f"{r['test'].get(m, float('nan')):.4f}" for m in metrics) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    export = (args.export or make_export(args.data.resolve(), args.work,
                                         dataset=args.dataset)).resolve()
    files = recbole_files(export, args.dataset)
    sizing = ripplenet_sizing(export / "ripplenet")
    harness.print_row({"export": str(export), "recbole_files": files, **sizing})
    report_file = export / "report.json"
    exports = (json.loads(report_file.read_text(encoding="utf-8")).get("exports", {})
               if report_file.is_file() else {})
    runs = []
    for model in [m for m in args.models.split(",") if m]:
        row = train(args, export, model)
        harness.print_row({k: row[k] for k in ("model", "seconds", "test")})
        runs.append(row)
    rep = {"machine": harness.machine(recbole_venv=str(args.venv)), "export": str(export),
           "dataset": args.dataset, "recbole_files": files, "ripplenet_sizing": sizing,
           "exports": exports, "runs": runs,
           "wall_seconds": round(time.perf_counter() - start, 1)}
    harness.write_report(args.out, rep, render_markdown(rep))
    print(render_markdown(rep))
    return 0 if sizing["fits"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
