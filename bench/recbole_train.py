"""Train one RecBole model on a RecBole dataset folder and print its metrics as one JSON line.

Runs in the RecBole venv (scripts/recbole_venv.sh), not kgenrich's: it imports only RecBole, so
what it reads is exactly the files kgenrich exported. bench/recbole_check.py drives it.
usage: python bench/recbole_train.py --data-path OUT/recbole --dataset kgenrich --model KGCN
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def train(*, data_path: str, dataset: str, model: str, epochs: int, seed: int,
          checkpoint_dir: str) -> dict[str, Any]:
    """RecBole's own quick start on `<data_path>/<dataset>/<dataset>.{inter,kg,link}`."""
    from recbole.quick_start import run_recbole

    config = {
        "data_path": data_path,
        "epochs": epochs,
        "seed": seed,
        "reproducibility": True,
        "checkpoint_dir": checkpoint_dir,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "worker": 0,
        "use_gpu": False,
    }
    start = time.perf_counter()
    result = run_recbole(model=model, dataset=dataset, config_dict=config, saved=True)
    return {
        "model": model,
        "dataset": dataset,
        "epochs": epochs,
        "seconds": round(time.perf_counter() - start, 1),
        "best_valid_score": float(result["best_valid_score"]),
        "valid": {k: float(v) for k, v in result["best_valid_result"].items()},
        "test": {k: float(v) for k, v in result["test_result"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2020)  # RecBole's default seed
    parser.add_argument("--checkpoint-dir", required=True)
    args = parser.parse_args()
    row = train(data_path=args.data_path, dataset=args.dataset, model=args.model,
                epochs=args.epochs, seed=args.seed, checkpoint_dir=args.checkpoint_dir)
    print("RECBOLE_RESULT " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
