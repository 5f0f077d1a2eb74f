"""Train RippleNet on a split of a :class:`~recsys.data.RippleData` and evaluate it.

Contract: ``train_and_evaluate`` is deterministic for a ``(data, params, seed, split)`` on a
fixed thread count; it reports, per epoch, the training loss and validation/test AUC and ACC,
and selects the epoch with the best *validation* AUC for the headline test numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from kgenrich.recsys.data import RippleData, Split, split_indices
from kgenrich.recsys.model import RippleNet
from kgenrich.recsys.params import RippleParams
from kgenrich.recsys.sampling import RippleSets, build_ripple_sets

logger = logging.getLogger(__name__)

SELECTION = "test metrics of the epoch with the best validation AUC"
_MODEL_FORMAT = "recsys.ripplenet/1"


@dataclass(frozen=True)
class Metrics:
    """AUC and ACC (threshold 0.5 on sigmoid scores) over all rows, plus the original code's
    variant: the mean of per-batch AUC/ACC over consecutive ``metric_batch_size`` rows (batches
    holding a single class are skipped, where the original would fail)."""

    auc: float
    acc: float
    auc_batch_mean: float
    acc_batch_mean: float


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss terms, metrics, and wall seconds for training/evaluation."""

    epoch: int
    train_loss: float
    train_base_loss: float
    valid: Metrics
    test: Metrics
    train_seconds: float
    eval_seconds: float


@dataclass(eq=False)
class TrainedModel:
    """A trained network together with the ripple sets it scores users with."""

    net: RippleNet
    ripple: RippleSets
    n_entities: int
    n_relations: int

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Probability that each ``users[i]`` likes ``items[i]``.

        Raises ``ValueError`` for users without a ripple set (no training positive).
        """
        u = np.array(users, dtype=np.int64)  # copies: inputs may be read-only views
        i = np.array(items, dtype=np.int64)
        if u.shape != i.shape:
            raise ValueError(f"users and items differ in shape: {u.shape} vs {i.shape}")
        if u.size and not self.ripple.has_history[u].all():
            raise ValueError("some users have no training positive, hence no ripple set")
        return _scores(
            self.net, _ripple_tensors(self.ripple), torch.from_numpy(u), torch.from_numpy(i),
            batch_size=self.net.params.eval_batch_size,
        )


@dataclass(frozen=True)
class EvalResult:
    """Outcome of one training run; ``to_dict`` gives the JSON-ready part."""

    seed: int
    params: RippleParams
    best_epoch: int
    valid: Metrics
    test: Metrics
    epochs: tuple[EpochStats, ...]
    n_train: int
    n_valid: int
    n_test: int
    n_dropped_rows: int
    self_loop_users: int
    ripple_seconds: float
    selection: str = SELECTION
    model: TrainedModel | None = field(default=None, repr=False, compare=False)

    @property
    def test_auc(self) -> float:
        return self.test.auc

    @property
    def test_acc(self) -> float:
        return self.test.acc

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training seconds per epoch (evaluation excluded)."""
        return float(np.mean([e.train_seconds for e in self.epochs]))

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(dataclasses.replace(self, model=None))
        out.pop("model")
        out["seconds_per_epoch"] = self.seconds_per_epoch
        return out


@contextmanager
def _deterministic() -> Iterator[None]:
    """Turn on torch's deterministic algorithms for the run, restoring the caller's setting."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _ripple_tensors(ripple: RippleSets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(ripple.heads),
        torch.from_numpy(ripple.relations),
        torch.from_numpy(ripple.tails),
    )


def _scores(
    net: RippleNet,
    ripple: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    users: torch.Tensor,
    items: torch.Tensor,
    *,
    batch_size: int,
) -> np.ndarray:
    heads, rels, tails = ripple
    out: list[torch.Tensor] = []
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for s in range(0, users.shape[0], batch_size):
            u, i = users[s:s + batch_size], items[s:s + batch_size]
            out.append(torch.sigmoid(net(i, heads[u], rels[u], tails[u])))
    net.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def _metrics(labels: np.ndarray, scores: np.ndarray, *, batch_size: int) -> Metrics:
    if labels.size == 0:
        nan = float("nan")
        return Metrics(auc=nan, acc=nan, auc_batch_mean=nan, acc_batch_mean=nan)
    predictions = scores >= 0.5
    aucs: list[float] = []
    accs: list[float] = []
    for s in range(0, labels.size, batch_size):
        lb, sc = labels[s:s + batch_size], scores[s:s + batch_size]
        accs.append(float(np.mean(predictions[s:s + batch_size] == lb)))
        if 0 < lb.sum() < lb.size:
            aucs.append(float(roc_auc_score(lb, sc)))
    one_class = labels.min() == labels.max()
    return Metrics(
        auc=float("nan") if one_class else float(roc_auc_score(labels, scores)),
        acc=float(np.mean(predictions == labels)),
        auc_batch_mean=float(np.mean(aucs)) if aucs else float("nan"),
        acc_batch_mean=float(np.mean(accs)),
    )


def train_and_evaluate(
    data: RippleData,
    *,
    params: RippleParams,
    seed: int,
    split: Split | tuple[float, float, float] = (0.6, 0.2, 0.2),
    keep_model: bool = False,
) -> EvalResult:
    """Train RippleNet on ``split.train`` and evaluate on ``split.valid`` / ``split.test``.

    ``split`` is either explicit row indices (to compare KG variants on identical rows) or the
    ratios for :func:`recsys.data.split_indices` with ``seed``.  As the original, ripple sets
    are built from the training positives only and rows of users without a training positive
    are dropped from all three parts (counted in ``n_dropped_rows``).  ``seed`` drives the
    ripple-set sampling, the initialization and the shuffling.  Torch's deterministic
    algorithms are on during the call; the thread count is the caller's (results are
    reproducible for a fixed one).
    """
    if not isinstance(split, Split):
        split = split_indices(data.ratings.shape[0], seed=seed, ratios=split)
    if split.train.size == 0:
        raise ValueError("the training split is empty")
    n_rows = data.ratings.shape[0]
    for part in (split.train, split.valid, split.test):
        if part.size and (part.min() < 0 or part.max() >= n_rows):
            raise ValueError(f"split indices must lie in [0, {n_rows}), the ratings' rows")
    ratings = data.ratings
    train_rows = ratings[split.train]
    positive = train_rows[:, 2] == 1
    rng_ripple, rng_shuffle = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )

    start = time.perf_counter()
    self_relation = data.n_relations
    ripple = build_ripple_sets(
        users=train_rows[positive, 0],
        items=train_rows[positive, 1],
        kg=data.kg,
        n_users=data.n_users,
        n_entities=data.n_entities,
        self_relation=self_relation,
        n_hop=params.n_hop,
        n_memory=params.n_memory,
        rng=rng_ripple,
    )
    ripple_seconds = time.perf_counter() - start

    def kept(rows: np.ndarray) -> np.ndarray:
        return rows[ripple.has_history[ratings[rows, 0]]]

    train_idx, valid_idx, test_idx = kept(split.train), kept(split.valid), kept(split.test)
    n_dropped = (split.train.size + split.valid.size + split.test.size
                 - train_idx.size - valid_idx.size - test_idx.size)
    logger.info(
        "seed %d: %d/%d/%d train/valid/test rows (%d dropped), ripple sets in %.2fs "
        "(%d hop-0 self-loop users)",
        seed, train_idx.size, valid_idx.size, test_idx.size, n_dropped, ripple_seconds,
        ripple.self_loop_users,
    )

    users_t = torch.from_numpy(np.ascontiguousarray(ratings[:, 0]))
    items_t = torch.from_numpy(np.ascontiguousarray(ratings[:, 1]))
    labels_t = torch.from_numpy(ratings[:, 2].astype(np.float32))
    tensors = _ripple_tensors(ripple)
    heads, rels, tails = tensors

    epochs: list[EpochStats] = []
    # fork_rng: seed torch's global generator for anything that draws from it without
    # leaving the caller's generator state changed.
    with _deterministic(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RippleNet(
            n_entities=data.n_entities, n_relations=data.n_relations + 1, params=params,
            seed=seed,
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=params.lr)
        for epoch in range(1, params.n_epoch + 1):
            t0 = time.perf_counter()
            order = torch.from_numpy(rng_shuffle.permutation(train_idx))
            total = base = 0.0
            for s in range(0, order.shape[0], params.batch_size):
                rows = order[s:s + params.batch_size]
                u = users_t[rows]
                losses = net.losses(items_t[rows], heads[u], rels[u], tails[u], labels_t[rows])
                optimizer.zero_grad(set_to_none=True)
                losses.total.backward()
                optimizer.step()
                total += float(losses.total.detach()) * rows.shape[0]
                base += float(losses.base.detach()) * rows.shape[0]
            t1 = time.perf_counter()
            valid, test = (
                _metrics(
                    ratings[idx, 2],
                    _scores(net, tensors, users_t[torch.from_numpy(idx)],
                            items_t[torch.from_numpy(idx)], batch_size=params.eval_batch_size),
                    batch_size=params.metric_batch_size,
                )
                for idx in (valid_idx, test_idx)
            )
            stats = EpochStats(
                epoch=epoch,
                train_loss=total / train_idx.size,
                train_base_loss=base / train_idx.size,
                valid=valid,
                test=test,
                train_seconds=t1 - t0,
                eval_seconds=time.perf_counter() - t1,
            )
            epochs.append(stats)
            logger.info(
                "seed %d epoch %d: loss %.4f  valid auc %.4f acc %.4f  test auc %.4f acc %.4f"
                "  (%.1fs)",
                seed, epoch, stats.train_loss, valid.auc, valid.acc, test.auc, test.acc,
                stats.train_seconds,
            )

    # nan (one-class validation set) never wins; ties go to the earliest epoch.
    best = max(epochs, key=lambda e: (np.nan_to_num(e.valid.auc, nan=-1.0), -e.epoch))
    return EvalResult(
        seed=seed,
        params=params,
        best_epoch=best.epoch,
        valid=best.valid,
        test=best.test,
        epochs=tuple(epochs),
        n_train=int(train_idx.size),
        n_valid=int(valid_idx.size),
        n_test=int(test_idx.size),
        n_dropped_rows=int(n_dropped),
        self_loop_users=ripple.self_loop_users,
        ripple_seconds=ripple_seconds,
        model=TrainedModel(
            net=net, ripple=ripple, n_entities=data.n_entities,
            n_relations=data.n_relations + 1,
        ) if keep_model else None,
    )


def save_model(model: TrainedModel, path: str | Path) -> None:
    """Write the network weights, hyperparameters and ripple sets to ``path`` (torch format,
    tensors and plain values only, so ``load_model`` can use ``weights_only=True``)."""
    torch.save(
        {
            "format": _MODEL_FORMAT,
            "params": dataclasses.asdict(model.net.params),
            "n_entities": model.n_entities,
            "n_relations": model.n_relations,
            "state_dict": model.net.state_dict(),
            "heads": torch.from_numpy(model.ripple.heads),
            "relations": torch.from_numpy(model.ripple.relations),
            "tails": torch.from_numpy(model.ripple.tails),
            "has_history": torch.from_numpy(model.ripple.has_history),
            "self_loop_users": model.ripple.self_loop_users,
            "copied_hops": model.ripple.copied_hops,
        },
        Path(path),
    )


def load_model(path: str | Path) -> TrainedModel:
    """Read a model written by :func:`save_model`."""
    blob = torch.load(Path(path), weights_only=True)
    if blob.get("format") != _MODEL_FORMAT:
        raise ValueError(f"{path}: not a {_MODEL_FORMAT} file (format {blob.get('format')!r})")
    params = RippleParams(**blob["params"])
    net = RippleNet(
        n_entities=blob["n_entities"], n_relations=blob["n_relations"], params=params, seed=0
    )
    net.load_state_dict(blob["state_dict"])
    ripple = RippleSets(
        heads=blob["heads"].numpy(),
        relations=blob["relations"].numpy(),
        tails=blob["tails"].numpy(),
        has_history=blob["has_history"].numpy(),
        self_loop_users=int(blob["self_loop_users"]),
        copied_hops=int(blob["copied_hops"]),
    )
    return TrainedModel(
        net=net, ripple=ripple, n_entities=blob["n_entities"], n_relations=blob["n_relations"]
    )
