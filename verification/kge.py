"""KGE verifier: train a PyKEEN model on trusted labeled triples and score candidate triples.

Contract: labels in, raw model scores out (higher = more plausible). A triple whose head, relation
or tail was not seen in training is never scored: ``score`` returns NaN for it and ``knows`` says
False, so the caller routes such candidates elsewhere instead of trusting a meaningless number.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pickle
import random
import tempfile
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pykeen.evaluation import RankBasedEvaluator
from pykeen.models import ERModel, Model, model_resolver
from pykeen.stoppers import EarlyStopper
from pykeen.training import LCWATrainingLoop, SLCWATrainingLoop, TrainingLoop
from pykeen.training.callbacks import TrainingCallback
from pykeen.triples import LCWAInstances, TriplesFactory
from pykeen.utils import set_random_seed

from kgenrich import progress
from kgenrich.verification.triples import LabeledTriple

__all__ = ["KGEModel", "LabeledTriple", "UnknownLabelError", "train_verifier"]

logger = logging.getLogger(__name__)
#: "lcwa": 1-N scoring against all tails (PyKEEN's LCWA, LibKGE's KvsAll); "slcwa": sampled
#: negatives. LCWA is the default because it is what the strong CoDEx baselines use.
TrainingMode = Literal["lcwa", "slcwa"]

_FORMAT_VERSION = 1
#: Constructor arguments used when the caller passes none. Measured on CoDEx-S: PyKEEN's ComplEx
#: default (standard-normal init plus an L2 regularizer) does not learn at all under 1-N training
#: (validation MRR stays at chance after 10 epochs); Xavier init without the regularizer, as in
#: the CoDEx/LibKGE configs, learns at once.
_DEFAULT_MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "ComplEx": {
        "entity_initializer": "xavier_normal",
        "relation_initializer": "xavier_normal",
        "regularizer": None,
    },
}
_MODEL_FILE = "model.pt"
_TRIPLES_DIR = "triples"
_META_FILE = "meta.json"


class UnknownLabelError(KeyError):
    """Raised when a triple that must be mapped contains a label unseen in training."""


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting that produced a verifier; saved next to the weights for provenance."""

    model: str
    dim: int
    epochs: int
    batch_size: int
    learning_rate: float
    training: TrainingMode
    loss: str | None
    model_kwargs: Mapping[str, Any]
    dropout: float
    label_smoothing: float
    inverse_triples: bool
    negatives_per_positive: int
    eval_every: int
    patience: int
    seed: int
    num_threads: int


@dataclass(frozen=True)
class TrainingReport:
    """What happened during training (early-stopping history is validation MRR)."""

    n_train: int
    n_valid_used: int
    n_valid_skipped_unknown: int
    epochs_run: int
    best_epoch: int | None
    stopped_early: bool
    valid_mrr_history: tuple[float, ...]
    final_loss: float | None
    seconds: float
    #: Rows copied from the model a warm start began with (0: trained from scratch).
    warm_entities: int = 0
    warm_relations: int = 0


@dataclass(frozen=True)
class LinkPredictionResult:
    """Filtered rank-based link prediction (both head and tail side, realistic ranks)."""

    mrr: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float
    n_evaluated: int
    n_skipped_unknown: int


@dataclass(frozen=True)
class KGEModel:
    """A trained PyKEEN model together with the label -> id maps of its training factory.

    Only this wrapper may turn labels into ids: a fresh ``TriplesFactory`` would number entities
    differently, and PyKEEN silently drops (with a log warning) triples it cannot map.
    """

    model: Model
    factory: TriplesFactory
    config: TrainingConfig
    report: TrainingReport

    def knows(self, head: str, relation: str, tail: str) -> bool:
        """Whether all three labels were seen in training (only then is a score meaningful)."""
        entities = self.factory.entity_to_id
        return head in entities and tail in entities and relation in self.factory.relation_to_id

    def known_mask(self, triples: Sequence[LabeledTriple]) -> np.ndarray:
        """Boolean mask: ``knows`` for each triple."""
        return np.fromiter(
            (self.knows(h, r, t) for h, r, t in triples), dtype=bool, count=len(triples)
        )

    def training_triples(self) -> frozenset[LabeledTriple]:
        """The labeled triples the model was trained on (forward direction only)."""
        return frozenset((str(h), str(r), str(t)) for h, r, t in self.factory.triples)

    def map_triples(self, triples: Sequence[LabeledTriple]) -> torch.Tensor:
        """Map labeled triples to training ids; ``UnknownLabelError`` on any unseen label."""
        entities = self.factory.entity_to_id
        relations = self.factory.relation_to_id
        ids = np.empty((len(triples), 3), dtype=np.int64)
        for row, (head, relation, tail) in enumerate(triples):
            try:
                ids[row] = (entities[head], relations[relation], entities[tail])
            except KeyError as err:
                raise UnknownLabelError(
                    f"triple {row} {(head, relation, tail)!r} has a label unseen in training"
                ) from err
        return torch.from_numpy(ids)

    def score(self, triples: Sequence[LabeledTriple], *, batch_size: int = 4096) -> np.ndarray:
        """Raw model scores (float64, higher = more plausible), NaN where ``knows`` is False.

        With inverse triples the model has two views of each fact, f(h, r, t) and f(t, r^-1, h),
        both trained; the score is their mean.
        """
        return self._per_triple(triples, self._raw_scores, batch_size=batch_size)

    def log_likelihood(
        self, triples: Sequence[LabeledTriple], *, batch_size: int = 512
    ) -> np.ndarray:
        """Mean of log p(tail | head, relation) and log p(head | relation, tail), NaN if unknown.

        The probabilities are the model's softmax over all entities, i.e. what 1-N cross-entropy
        training optimizes. Unlike the raw score this is relative to the competing candidates:
        a plausible tail scores low when the model prefers another tail for the same head.
        """
        return self._per_triple(triples, self._log_likelihoods, batch_size=batch_size)

    def ranks(
        self,
        triples: Sequence[LabeledTriple],
        *,
        side: Literal["tail", "head"] = "tail",
        batch_size: int = 512,
    ) -> np.ndarray:
        """Raw (unfiltered) rank of the true tail (or head) among all entities, NaN if unknown.

        1 means the model prefers this entity over every other one; ties count in its favour.
        """
        return self._per_triple(
            triples,
            self._tail_ranks if side == "tail" else self._head_ranks,
            batch_size=batch_size,
        )

    def _tail_ranks(self, batch: torch.Tensor) -> torch.Tensor:
        scores = self.model.predict_t(batch[:, :2])
        own = scores[torch.arange(len(batch)), batch[:, 2]].unsqueeze(1)
        return (scores > own).sum(dim=1) + 1

    def _head_ranks(self, batch: torch.Tensor) -> torch.Tensor:
        scores = self.model.predict_h(batch[:, 1:])
        own = scores[torch.arange(len(batch)), batch[:, 0]].unsqueeze(1)
        return (scores > own).sum(dim=1) + 1

    def _per_triple(
        self,
        triples: Sequence[LabeledTriple],
        scorer: Callable[[torch.Tensor], torch.Tensor],
        *,
        batch_size: int,
    ) -> np.ndarray:
        mask = self.known_mask(triples)
        out = np.full(len(triples), math.nan, dtype=np.float64)
        if not mask.any():
            return out
        known = [triple for triple, ok in zip(triples, mask, strict=True) if ok]
        mapped = self.map_triples(known)
        self.model.eval()
        parts: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(mapped), batch_size):
                parts.append(scorer(mapped[start : start + batch_size]).double().numpy())
        out[mask] = np.concatenate(parts)
        return out

    def _raw_scores(self, batch: torch.Tensor) -> torch.Tensor:
        # predict_hrt (not score_hrt) translates factory relation ids to the model's internal
        # ids, which differ when inverse triples are used (forward r is stored as 2r)
        forward = self.model.predict_hrt(batch).view(-1)
        if not self.model.use_inverse_triples:
            return forward
        internal = self.model.relation_inverter.map(batch=batch, index=1, invert=False)
        backward = self.model.score_hrt_inverse(internal).view(-1)
        return (forward + backward) / 2.0

    def _log_likelihoods(self, batch: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(batch))
        tails = torch.log_softmax(self.model.predict_t(batch[:, :2]), dim=-1)[rows, batch[:, 2]]
        heads = torch.log_softmax(self.model.predict_h(batch[:, 1:]), dim=-1)[rows, batch[:, 0]]
        return (tails + heads) / 2.0

    def evaluate_link_prediction(
        self,
        triples: Sequence[LabeledTriple],
        *,
        filter_triples: Sequence[LabeledTriple] = (),
        batch_size: int = 256,
    ) -> LinkPredictionResult:
        """Filtered MRR / Hits@k with PyKEEN's ``RankBasedEvaluator``.

        The training triples are always used as filter; pass validation (and any other known true)
        triples in ``filter_triples``. Triples with unseen labels are skipped and counted.
        """
        mask = self.known_mask(triples)
        known = [triple for triple, ok in zip(triples, mask, strict=True) if ok]
        n_skipped = int((~mask).sum())
        if n_skipped:
            logger.warning("link prediction: skipped %d triples with unseen labels", n_skipped)
        if not known:
            return LinkPredictionResult(math.nan, math.nan, math.nan, math.nan, 0, n_skipped)
        filters = [self.factory.mapped_triples]
        extra = [triple for triple in filter_triples if self.knows(*triple)]
        if extra:
            filters.append(self.map_triples(extra))
        result = RankBasedEvaluator(filtered=True).evaluate(
            model=self.model,
            mapped_triples=self.map_triples(known),
            additional_filter_triples=filters,
            batch_size=batch_size,
            use_tqdm=False,
        )
        return LinkPredictionResult(
            mrr=float(result.get_metric("both.realistic.inverse_harmonic_mean_rank")),
            hits_at_1=float(result.get_metric("both.realistic.hits_at_1")),
            hits_at_3=float(result.get_metric("both.realistic.hits_at_3")),
            hits_at_10=float(result.get_metric("both.realistic.hits_at_10")),
            n_evaluated=len(known),
            n_skipped_unknown=n_skipped,
        )

    def save(self, directory: str | Path) -> Path:
        """Write weights, id maps and the training record to ``directory`` (created if needed)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # PyKEEN documents whole-module pickling as its persistence format; rebuilding from a
        # state_dict would need every constructor argument of every model class.
        torch.save(self.model, path / _MODEL_FILE)
        self.factory.to_path_binary(path / _TRIPLES_DIR)
        meta = {
            "format_version": _FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "report": dataclasses.asdict(self.report),
        }
        (path / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> KGEModel:
        """Load a verifier written by ``save``. Unpickles code: only load directories you trust."""
        path = Path(directory)
        meta = json.loads((path / _META_FILE).read_text(encoding="utf-8"))
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported verifier format {meta.get('format_version')!r}")
        # weights_only=False: a PyKEEN model is a pickled nn.Module, not a bare tensor dict.
        model = torch.load(path / _MODEL_FILE, weights_only=False, map_location="cpu",
                           pickle_module=_PICKLE)
        factory = TriplesFactory.from_path_binary(path / _TRIPLES_DIR)
        report = dict(meta["report"])
        report["valid_mrr_history"] = tuple(report["valid_mrr_history"])
        return cls(
            model=model,
            factory=factory,
            config=TrainingConfig(**meta["config"]),
            report=TrainingReport(**report),
        )


class _EpochProgress(TrainingCallback):
    """Epoch/total and loss as `kgenrich.progress` events, and a log line every 10 s: KGE
    training otherwise says nothing for minutes."""

    def __init__(self, epochs: int, *, model: str) -> None:
        super().__init__()
        self.epochs, self.model_name = epochs, model
        self.log_due = progress.Throttle(10.0)
        self.log_due()  # the first line after 10 s, not at epoch 1
        progress.report("KGE training", done=0, total=epochs, unit="epochs")

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        progress.report("KGE training", done=epoch, total=self.epochs, unit="epochs",
                        note=f"loss {epoch_loss:.4g}")
        if self.log_due():
            logger.info("%s training: epoch %d/%d, loss %.4g", self.model_name, epoch, self.epochs,
                        epoch_loss)

    def post_train(self, losses: list[float], **kwargs: Any) -> None:
        # early stopping ends before `epochs`: the bar still has to close
        progress.report("KGE training", done=len(losses), total=len(losses), unit="epochs",
                        note=f"loss {losses[-1]:.4g}" if losses else "", finished=True)


def train_verifier(
    train: Sequence[LabeledTriple],
    *,
    valid: Sequence[LabeledTriple] | None = None,
    model: str,
    dim: int,
    epochs: int,
    seed: int,
    batch_size: int | None = None,
    learning_rate: float = 3e-3,
    training: TrainingMode = "lcwa",
    loss: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dropout: float = 0.1,
    label_smoothing: float = 0.0,
    inverse_triples: bool = True,
    negatives_per_positive: int = 32,
    eval_every: int = 5,
    patience: int = 2,
    num_threads: int = 2,
    init: KGEModel | None = None,
    batched_loader: bool = True,
    valid_max: int | None = None,
) -> KGEModel:
    """Train a PyKEEN model (chosen by PyKEEN's name, e.g. "ComplEx", "RotatE") on CPU.

    ``model``, ``dim``, ``epochs`` and ``seed`` have no defaults here: they are ``VerifySettings``
    fields, and a second default would drift from the settings'.

    With ``valid`` the run stops early once validation MRR has not improved for ``patience``
    checks (one every ``eval_every`` epochs) and the best weights are restored; without it, all
    ``epochs`` run. Validation triples with labels unseen in ``train`` are skipped and counted.
    ``dropout`` applies to entity embeddings. ``loss`` is a PyKEEN loss name; None means
    "crossentropy" for LCWA (the models' own defaults are pairwise losses, which LCWA expands to
    every positive/negative pair and which are far too slow on CPU) and the model's default for
    sLCWA. ``model_kwargs`` go to the PyKEEN model constructor (None: a tested default for the
    model, if any). ``negatives_per_positive`` only matters for ``training="slcwa"``.

    ``init`` warm-starts: every entity and relation ``init`` knows begins with its row of
    ``init``'s weights (and the interaction's own parameters are copied when their shapes
    match), new ones with fresh initial rows; ``epochs`` then counts the continued training.
    ``init`` must have the same model class, dimension and inverse-triples choice.
    ``batched_loader=False`` uses PyKEEN's own LCWA data loader (same batches, slower; kept
    for ``bench/kge_epoch.py``'s comparison). ``valid_max`` caps the validation triples early
    stopping ranks (a sample seeded by ``seed``; None: all).
    """
    if not train:
        raise ValueError("train_verifier needs at least one training triple")
    config = TrainingConfig(
        model=model,
        dim=dim,
        epochs=epochs,
        batch_size=batch_size or _default_batch_size(training, len(train)),
        learning_rate=learning_rate,
        training=training,
        loss="crossentropy" if loss is None and training == "lcwa" else loss,
        model_kwargs=dict(
            _DEFAULT_MODEL_KWARGS.get(model, {}) if model_kwargs is None else model_kwargs
        ),
        dropout=dropout,
        label_smoothing=label_smoothing,
        inverse_triples=inverse_triples,
        negatives_per_positive=negatives_per_positive,
        eval_every=eval_every,
        patience=patience,
        seed=seed,
        num_threads=num_threads,
    )
    torch.set_num_threads(num_threads)
    set_random_seed(seed)
    factory = TriplesFactory.from_labeled_triples(
        np.asarray(train, dtype=str), create_inverse_triples=inverse_triples
    )
    kge = _build_model(config, factory)
    warm = (0, 0) if init is None else warm_rows(kge, factory, init)
    if init is not None:
        # PyKEEN re-initializes every weight when training starts (continue_training=False;
        # True needs an optimizer that has stepped), so the copy is redone after that reset
        _reapply_after_reset(kge, lambda: warm_rows(kge, factory, init))
    loop = _build_loop(config, kge, factory, batched=batched_loader)

    valid_known: list[LabeledTriple] = []
    n_valid_skipped = 0
    if valid:
        valid_known = [
            (h, r, t)
            for h, r, t in valid
            if h in factory.entity_to_id
            and t in factory.entity_to_id
            and r in factory.relation_to_id
        ]
        n_valid_skipped = len(valid) - len(valid_known)
        if n_valid_skipped:
            logger.warning(
                "early stopping: skipped %d valid triples with unseen labels", n_valid_skipped
            )
        if valid_max is not None and len(valid_known) > valid_max:
            logger.info("early stopping ranks a seeded sample of %d of %d valid triples",
                        valid_max, len(valid_known))
            valid_known = random.Random(seed).sample(valid_known, valid_max)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kgenrich-kge-") as tmp:
        stopper = None
        if valid_known:
            valid_factory = TriplesFactory.from_labeled_triples(
                np.asarray(valid_known, dtype=str),
                entity_to_id=factory.entity_to_id,
                relation_to_id=factory.relation_to_id,
            )
            stopper = EarlyStopper(
                model=kge,
                evaluator=RankBasedEvaluator(filtered=True),
                training_triples_factory=factory,
                evaluation_triples_factory=valid_factory,
                evaluation_batch_size=256,
                frequency=eval_every,
                patience=patience,
                metric="inverse_harmonic_mean_rank",
                # PyKEEN's default; smaller deltas kept sparse graphs training for +0.002 MRR
                relative_delta=0.01,
                # a private path, so parallel runs never share PyKEEN's default checkpoint dir
                best_model_path=Path(tmp) / "best.pt",
            )
        train_kwargs: dict[str, Any] = {}
        if training == "lcwa":
            train_kwargs["label_smoothing"] = label_smoothing
        try:
            losses = loop.train(
                triples_factory=factory,
                num_epochs=epochs,
                batch_size=config.batch_size,
                stopper=stopper,
                use_tqdm=False,
                use_tqdm_batch=False,
                callbacks=[_EpochProgress(epochs, model=config.model)],
                **train_kwargs,
            )
        finally:
            kge.__dict__.pop("reset_parameters_", None)  # the instance override must not pickle
        best_path = Path(tmp) / "best.pt"
        if stopper is not None and not stopper.stopped and best_path.is_file():
            # PyKEEN restores the best weights only when it stops early; do it for a full run too.
            kge.load_state_dict(torch.load(best_path, weights_only=True))
    seconds = time.perf_counter() - start

    history = tuple(float(x) for x in stopper.results) if stopper is not None else ()
    report = TrainingReport(
        n_train=factory.num_triples,
        n_valid_used=len(valid_known),
        n_valid_skipped_unknown=n_valid_skipped,
        epochs_run=len(losses or []),
        best_epoch=stopper.best_epoch if stopper is not None else None,
        stopped_early=bool(stopper is not None and stopper.stopped),
        valid_mrr_history=history,
        final_loss=float(losses[-1]) if losses else None,
        seconds=seconds,
        warm_entities=warm[0],
        warm_relations=warm[1],
    )
    # A summary, not the report's repr: its MRR history alone fills a terminal line.
    logger.info("trained %s%s in %.1f s: %d triples, %d epochs%s, final loss %s, "
                "best valid MRR %s", model,
                f" (warm start: {warm[0]} entities, {warm[1]} relations kept)" if init else "",
                seconds, report.n_train, report.epochs_run,
                " (stopped early)" if report.stopped_early else "",
                "-" if report.final_loss is None else f"{report.final_loss:.4f}",
                f"{max(history):.3f}" if history else "-")
    return KGEModel(model=kge, factory=factory, config=config, report=report)


def _default_batch_size(training: TrainingMode, n_train: int) -> int:
    if training == "lcwa":
        # ~32 updates per epoch on small graphs: with a fixed 1024, a 5k-triple catalog sees
        # five updates per epoch and needs ~80 epochs to converge
        return max(128, min(1024, n_train // 32))
    # Each sLCWA step ends in an Adam update of every embedding row (dense gradients): 0.13 s
    # for 100k entities on 2 cores, so 1024-triple batches of a 1M-triple graph spent half the
    # epoch there. About 128 steps per epoch, as large as 8192.
    return max(256, min(8192, n_train // 128))


def warm_rows(kge: Model, factory: TriplesFactory, init: KGEModel) -> tuple[int, int]:
    """Copy ``init``'s rows into the fresh ``kge`` (built on ``factory``) for every entity and
    relation label both know; returns (entities, relations) copied. Rows are matched by label,
    never by id: the new factory numbers its labels afresh."""
    old = init.model
    if not (isinstance(kge, ERModel) and isinstance(old, ERModel)):
        raise ValueError(f"warm start needs ERModels, not {type(old).__name__}")
    if type(kge) is not type(old) or _row_shape(kge) != _row_shape(old) or \
            bool(kge.use_inverse_triples) != bool(old.use_inverse_triples):
        raise ValueError(f"warm start from {type(old).__name__} rows {_row_shape(old)} into "
                         f"{type(kge).__name__} rows {_row_shape(kge)}: model, dim and inverse "
                         "triples must match")
    ents = _shared_ids(factory.entity_to_id, init.factory.entity_to_id)
    rels = _shared_ids(factory.relation_to_id, init.factory.relation_to_id)
    with torch.no_grad():
        for new_rep, old_rep in zip(kge.entity_representations, old.entity_representations,
                                    strict=True):
            _copy_rows(new_rep, old_rep, *ents)
        if kge.use_inverse_triples:
            # both directions of a relation have their own row (forward and inverse)
            new_ids = torch.cat([_internal(kge, rels[0], invert=False),
                                 _internal(kge, rels[0], invert=True)])
            old_ids = torch.cat([_internal(old, rels[1], invert=False),
                                 _internal(old, rels[1], invert=True)])
        else:
            new_ids, old_ids = rels
        for new_rep, old_rep in zip(kge.relation_representations,
                                    old.relation_representations, strict=True):
            _copy_rows(new_rep, old_rep, new_ids, old_ids)
        new_state, old_state = kge.interaction.state_dict(), old.interaction.state_dict()
        same = {k: v for k, v in old_state.items()
                if k in new_state and new_state[k].shape == v.shape}
        kge.interaction.load_state_dict({**new_state, **same})
    return len(ents[0]), len(rels[0])


def _reapply_after_reset(kge: Model, copy: Callable[[], object]) -> None:
    reset = type(kge).reset_parameters_

    def reset_then_copy() -> Model:
        reset(kge)
        copy()
        return kge

    kge.reset_parameters_ = reset_then_copy  # type: ignore[method-assign]


def _row_shape(kge: ERModel) -> tuple[int, ...]:
    return tuple(_table(kge.entity_representations[0]).shape[1:])


def _shared_ids(new: Mapping[str, int], old: Mapping[str, int],
                ) -> tuple[torch.Tensor, torch.Tensor]:
    both = [label for label in new if label in old]
    return (torch.tensor([new[label] for label in both], dtype=torch.long),
            torch.tensor([old[label] for label in both], dtype=torch.long))


def _internal(kge: Model, ids: torch.Tensor, *, invert: bool) -> torch.Tensor:
    batch = torch.zeros((len(ids), 3), dtype=torch.long)
    batch[:, 1] = ids
    return kge.relation_inverter.map(batch=batch, index=1, invert=invert)[:, 1]


def _copy_rows(new_rep: torch.nn.Module, old_rep: torch.nn.Module, new_ids: torch.Tensor,
               old_ids: torch.Tensor) -> None:
    new_table, old_table = _table(new_rep), _table(old_rep)
    if new_table.shape[1:] != old_table.shape[1:]:
        raise ValueError(f"warm start: row shapes differ ({tuple(old_table.shape[1:])} -> "
                         f"{tuple(new_table.shape[1:])})")
    if len(new_ids):
        new_table[new_ids] = old_table[old_ids]


def _table(rep: torch.nn.Module) -> torch.Tensor:
    # PyKEEN's Embedding keeps its rows in an nn.Embedding (complex ones as real pairs)
    table = getattr(rep, "_embeddings", None)
    if not isinstance(table, torch.nn.Embedding):
        raise ValueError(f"warm start supports embedding tables, not {type(rep).__name__}")
    return table.weight.data


def _build_model(config: TrainingConfig, factory: TriplesFactory) -> Model:
    kwargs: dict[str, Any] = {
        "embedding_dim": config.dim,
        "random_seed": config.seed,
        **config.model_kwargs,
    }
    if config.loss is not None:
        kwargs["loss"] = config.loss
    kge = model_resolver.make(config.model, triples_factory=factory, **kwargs)
    if config.dropout > 0:
        if not isinstance(kge, ERModel):
            raise ValueError(f"dropout needs an ERModel; {config.model} is {type(kge).__name__}")
        # PyKEEN model classes do not expose representation dropout as a constructor argument,
        # but every Representation applies ``self.dropout`` in forward when it is set.
        for representation in kge.entity_representations:
            representation.dropout = _Dropout(config.dropout)
    return kge


class _Dropout(torch.nn.Dropout):
    """Dropout that also works on complex embeddings (ComplEx, RotatE store ``torch.cfloat``)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.is_complex():
            # torch has no complex bernoulli; drop real and imaginary parts independently
            return torch.view_as_complex(super().forward(torch.view_as_real(input)))
        return super().forward(input)


def _build_loop(config: TrainingConfig, kge: Model, factory: TriplesFactory, *,
                batched: bool = True) -> TrainingLoop:
    common: dict[str, Any] = {
        "model": kge,
        "triples_factory": factory,
        "optimizer": "Adam",
        "optimizer_kwargs": {"lr": config.learning_rate},
        # the memory search probes batch sizes for GPUs; on CPU it only costs time
        "automatic_memory_optimization": False,
    }
    if config.training == "lcwa":
        return (_BatchedLCWATrainingLoop if batched else LCWATrainingLoop)(**common)
    return SLCWATrainingLoop(
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": config.negatives_per_positive},
        **common,
    )


class _BatchedLCWATrainingLoop(LCWATrainingLoop):
    """PyKEEN's LCWA loop with its data loader replaced by one that builds a whole batch with one
    sparse-matrix slice. PyKEEN's loader calls ``LCWAInstances.__getitem__`` once per (head,
    relation) pair (a CSR row slice and a dense row of every entity each) and then stacks the
    rows in Python; the batches are the same, in the same shuffled order."""

    # PyKEEN annotates `sampler` as a Literal and the factory as its core class; this override
    # accepts what the loop passes
    def _create_training_data_loader(  # type: ignore[override]
        self, triples_factory: TriplesFactory, *, sampler: str | None, batch_size: int,
        drop_last: bool, **kwargs: Any,
    ) -> torch.utils.data.DataLoader[Any]:
        instances = LCWAInstances.from_triples_factory(
            triples_factory, target=self.target, loss_weighter=self.loss_weighter,
            loss_weighter_kwargs=self.loss_weighter_kwargs)
        if sampler or instances.loss_weighter is not None:
            return super()._create_training_data_loader(
                triples_factory, sampler=sampler, batch_size=batch_size, drop_last=drop_last,
                **kwargs)
        order = (torch.utils.data.RandomSampler(instances) if kwargs.get("shuffle", True)
                 else torch.utils.data.SequentialSampler(instances))
        batches = torch.utils.data.BatchSampler(order, batch_size=batch_size,
                                                drop_last=drop_last)
        return torch.utils.data.DataLoader(_WholeBatches(instances), sampler=batches,
                                           batch_size=None)


class _WholeBatches(torch.utils.data.Dataset[Any]):
    """Indexed by a list of pair indices, not one: ``LCWAInstances``' fields for all at once."""

    def __init__(self, instances: LCWAInstances) -> None:
        self.pairs = torch.as_tensor(instances.pairs)
        self.compressed = instances.compressed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return {"pairs": self.pairs[indices],
                "target": torch.from_numpy(self.compressed[indices].toarray())}


# Verifiers saved before kgenrich installed under one name pickled this module as `kg.kge`.
_RENAMED_MODULES = {"kg.kge": __name__}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_RENAMED_MODULES.get(module, module), name)


_PICKLE = types.ModuleType("kgenrich_verifier_pickle")
_PICKLE.__dict__.update({**pickle.__dict__, "Unpickler": _Unpickler})
