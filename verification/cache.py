"""The fitted verifier, kept between runs: a run whose trusted graph and fit settings are
unchanged loads the previous fit instead of training the KGE again (a nightly re-run of an
unchanged 100-item catalog spent 68 s retraining).

The key is a digest of everything the fit reads: the set of trusted triples (the fit sorts and
de-duplicates them, so their order does not matter), the scorer name, the fit settings and the
torch/PyKEEN versions the pickle depends on. One entry is kept per folder (the latest): a KGE
for a large graph is tens of MB, and only the previous run's fit can match the next run.

When the key misses but the folder's entry was fitted with the same settings on a trusted graph
that changed by at most `verify.warm_max_change`, the new fit warm-starts from it
(`scorers.fit_scorer(previous=...)`): a nightly run whose catalog gained a few items trains
`warm_epochs` from the previous embeddings instead of `epochs` from random ones. That is why an
entry keeps its trusted triples next to the scorer.

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

#: Bump when a scorer class or the entry changes in a way old pickles cannot follow.
FORMAT = 2
#: The VerifySettings fields the KGE scorers' fit reads (the rest act after the fit).
FIT_FIELDS = ("kge_scorer", "model", "dim", "epochs", "seed", "holdout", "training", "negatives",
              "early_stop_sample")
SUFFIX = ".verifier.pkl"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cached fit: the scorer, the settings digest it was fitted with, its trusted keys."""

    scorer: Scorer
    settings_key: str
    keys: frozenset[LabeledTriple]


def settings_key(settings: VerifySettings) -> str:
    """The digest of what a fit reads besides the triples: fit settings, library versions."""
    head = {"format": FORMAT, "torch": version("torch"), "pykeen": version("pykeen"),
            **{f: getattr(settings, f) for f in FIT_FIELDS}}
    return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:32]


def fit_key(keys: Sequence[LabeledTriple], *, settings: VerifySettings) -> str:
    """The digest that names a fit: trusted triples (as a set), fit settings, library versions."""
    h = hashlib.sha256(settings_key(settings).encode())
    for triple in sorted(set(keys)):
        h.update(b"\x00".join(part.encode() for part in triple) + b"\x01")
    return h.hexdigest()[:32]


def change_share(old: frozenset[LabeledTriple], new: frozenset[LabeledTriple]) -> float:
    """Added plus removed triples over the new graph's count (1.0 for an empty new graph)."""
    return len(old ^ new) / len(new) if new else 1.0


def cached_fit(
    folder: Path, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
    fit: Callable[[Scorer | None], Scorer],
) -> Scorer:
    """The scorer fitted on `keys` with `settings`: loaded from `folder` when the previous fit
    there has the same key, else `fit(previous)` stored as the folder's one entry, where
    `previous` is the folder's entry when a warm start applies (see the module doc) and None
    otherwise. The loaded scorer's metrics say `cached 1` and count the load's seconds, not the
    original training's; a warm-started one says `warm start 1` and the `changed share`."""
    key = fit_key(keys, settings=settings)
    path = folder / f"{key}{SUFFIX}"
    start = time.perf_counter()
    loaded = _load(path)
    if loaded is not None:
        seconds = time.perf_counter() - start
        logger.info("verifier: reused the fit in %s (trusted graph and fit settings "
                    "unchanged; %.1f s)", path, seconds)
        return _with_metrics(loaded.scorer, cached=1.0, seconds=seconds)
    new_keys = frozenset(keys)
    previous, share = _warm_candidate(folder, path, new_keys, settings=settings)
    scorer = fit(previous)
    if previous is not None:
        scorer = _with_metrics(scorer, **{"changed share": share})
    _store(folder, path, Entry(scorer=scorer, settings_key=settings_key(settings),
                               keys=new_keys))
    return scorer


def _warm_candidate(folder: Path, path: Path, keys: frozenset[LabeledTriple], *,
                    settings: VerifySettings) -> tuple[Scorer | None, float]:
    if not settings.warm_start:
        return None, 1.0
    for other in sorted(folder.glob(f"*{SUFFIX}")):
        if other == path:
            continue
        entry = _load(other)
        if entry is None or entry.settings_key != settings_key(settings):
            continue
        share = change_share(entry.keys, keys)
        if share > settings.warm_max_change:
            logger.info("verifier: %.1f%% of the trusted triples changed (more than "
                        "warm_max_change %.1f%%); training from scratch", 100 * share,
                        100 * settings.warm_max_change)
            return None, share
        logger.info("verifier: %.2f%% of the trusted triples changed; warm-starting from %s",
                    100 * share, other)
        return entry.scorer, share
    return None, 1.0


def _load(path: Path) -> Entry | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            entry = pickle.load(f)  # noqa: S301 - our own cache, in the run's folder
    except Exception as err:  # noqa: BLE001 - a bad entry is a refit, never a failed run
        logger.warning("verifier cache %s unreadable (%s); training again", path, err)
        return None
    if not isinstance(entry, Entry):
        logger.warning("verifier cache %s is of an older format; training again", path)
        return None
    return entry


def _store(folder: Path, path: Path, entry: Entry) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                stored = dataclasses.replace(entry, scorer=_with_metrics(entry.scorer, cached=0.0))
                pickle.dump(stored, f, protocol=pickle.HIGHEST_PROTOCOL)
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
