"""The fitted verifier, kept between runs: a run whose trusted graph and fit settings are
unchanged loads the previous fit instead of training the KGE again (a nightly re-run of an
unchanged 100-item catalog spent 68 s retraining).

The key is a digest of everything the fit reads: the set of trusted triples (the fit sorts and
de-duplicates them, so their order does not matter), the scorer name, the fit settings and the
torch/PyKEEN versions the pickle depends on. One entry is kept per folder (the latest): a KGE
for a large graph is tens of MB, and only the previous run's fit can match the next run.

Entries are pickles, written atomically. Only load a cache folder you trust, as with any pickle:
the folder is the run's own output folder, which already holds its state store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from kgenrich.settings import VerifySettings
from kgenrich.verification.scorers import Scorer
from kgenrich.verification.triples import LabeledTriple

logger = logging.getLogger(__name__)

#: Bump when a scorer class changes in a way old pickles cannot follow.
FORMAT = 1
#: The VerifySettings fields the KGE scorers' fit reads (the rest act after the fit).
FIT_FIELDS = ("kge_scorer", "model", "dim", "epochs", "seed", "holdout")
SUFFIX = ".verifier.pkl"


def fit_key(keys: Sequence[LabeledTriple], *, settings: VerifySettings) -> str:
    """The digest that names a fit: trusted triples (as a set), fit settings, library versions."""
    h = hashlib.sha256()
    head = {"format": FORMAT, "torch": version("torch"), "pykeen": version("pykeen"),
            **{f: getattr(settings, f) for f in FIT_FIELDS}}
    h.update(json.dumps(head, sort_keys=True).encode())
    for triple in sorted(set(keys)):
        h.update(b"\x00".join(part.encode() for part in triple) + b"\x01")
    return h.hexdigest()[:32]


def cached_fit(
    folder: Path, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
    fit: Callable[[], Scorer],
) -> Scorer:
    """The scorer fitted on `keys` with `settings`: loaded from `folder` when the previous fit
    there has the same key, else `fit()` stored as the folder's one entry. The loaded scorer's
    metrics say `cached 1` and count the load's seconds, not the original training's."""
    key = fit_key(keys, settings=settings)
    path = folder / f"{key}{SUFFIX}"
    start = time.perf_counter()
    loaded = _load(path)
    if loaded is not None:
        seconds = time.perf_counter() - start
        logger.info("verifier: reused the fit in %s (trusted graph and fit settings "
                    "unchanged; %.1f s)", path, seconds)
        return _with_metrics(loaded, cached=1.0, seconds=seconds)
    scorer = fit()
    _store(folder, path, scorer)
    return scorer


def _load(path: Path) -> Scorer | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            scorer = pickle.load(f)  # noqa: S301 - our own cache, in the run's folder
    except Exception as err:  # noqa: BLE001 - a bad entry is a refit, never a failed run
        logger.warning("verifier cache %s unreadable (%s); training again", path, err)
        return None
    return scorer


def _store(folder: Path, path: Path, scorer: Scorer) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(_with_metrics(scorer, cached=0.0), f,
                            protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as err:  # a cache that cannot be written costs the next run a refit
        logger.warning("verifier cache %s not written (%s)", path, err)
        return
    for old in folder.glob(f"*{SUFFIX}"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()


def _with_metrics(scorer: Scorer, **changes: float) -> Any:
    if not dataclasses.is_dataclass(scorer):
        return scorer
    return dataclasses.replace(scorer, metrics={**scorer.metrics, **changes})
