"""RecBole itself, as the consumer of the export: KGCN and RippleNet train for one epoch on a
small export's `recbole/<dataset>/<dataset>.{inter,kg,link}`, with no file renamed or added.
Runs in the venv of scripts/recbole_venv.sh (bench/recbole_train.py); skipped without it."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from kgenrich.flows.io import write_exports
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.settings import ExportSettings

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("RECBOLE_VENV",
                           Path.home() / ".cache" / "kgenrich" / "recbole-venv"))
PYTHON = VENV / "bin" / "python"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PYTHON.is_file(),
                       reason=f"no RecBole venv at {VENV} (bash scripts/recbole_venv.sh)"),
]


def _export(out: Path) -> Path:
    """Two clusters of 20 items (own genre, own directors), users who like one cluster; two
    items without a triple, whose interactions RecBole drops."""
    prov = Provenance(source=SourceKind.SEED, decision=Decision.TRUSTED)
    items = [f"i{n}" for n in range(42)]
    entities = [Entity(id=f"item/{i}", label=i, type="Movie") for i in items]
    triples = []
    for n in range(40):
        c = n // 20
        triples.append(Triple(head=f"item/i{n}", relation="has_genre", tail=f"genre/g{c}",
                              provenance=prov))
        triples.append(Triple(head=f"item/i{n}", relation="directed_by",
                              tail=f"person/d{c}{n % 3}", provenance=prov))
    rng = random.Random(0)
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(60):
        own = range(0, 20) if u % 2 == 0 else range(20, 40)
        for k, n in enumerate([*rng.sample(list(own), 12), 40 + u % 2]):
            rows.append(f"u{u},i{n},{rng.choice((4, 5))},{1000 * u + k}")
    inter = out.parent / "ratings.csv"
    inter.write_text("\n".join(rows) + "\n", encoding="utf-8")
    written = write_exports(out, entities=entities, triples=triples, items=items,
                            interactions=inter,
                            settings=ExportSettings(formats=("recbole",), recbole_dataset="tiny"))
    assert written.counts["recbole"]["dropped_interactions"] == 60
    return out / "recbole"


@pytest.mark.parametrize("model", ["KGCN", "RippleNet"])
def test_recbole_trains_on_the_export(tmp_path: Path, model: str) -> None:
    data_path = _export(tmp_path / "out")
    assert sorted(p.name for p in (data_path / "tiny").iterdir()) == [
        "tiny.inter", "tiny.kg", "tiny.link"]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(PYTHON), str(ROOT / "bench" / "recbole_train.py"), "--data-path", str(data_path),
         "--dataset", "tiny", "--model", model, "--epochs", "1",
         "--checkpoint-dir", str(tmp_path / "ckpt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RECBOLE_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    assert result["model"] == model
    assert result["test"] and all(0.0 <= v <= 1.0 for v in result["test"].values())
