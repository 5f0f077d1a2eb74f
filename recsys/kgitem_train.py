"""Train :class:`~recsys.kgitem_model.KGItemNet` on a (new-item) split and evaluate it on all
rows, on the new items' rows and, when given, on the rows of a chosen subset of items (the
``focus_items``: for example the new items an enrichment run was asked to fill, whose rows are
the only ones it can change).

Contract: deterministic for ``(data, split, params, seed)`` on a fixed thread count.  Only
validation chooses: the epoch (best validation AUC over all rows) and the ACC thresholds (per
row set, the score threshold with the best validation accuracy); test rows are scored once, with
the selected epoch's weights.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from kgenrich.recsys.data import RippleData, Split
from kgenrich.recsys.kgitem_model import KGItemNet, item_neighbours
from kgenrich.recsys.params import KGItemParams

logger = logging.getLogger(__name__)

KGITEM_SELECTION = ("epoch with the best validation AUC over all rows; ACC thresholds: best "
                    "validation accuracy per row set")


@dataclass(frozen=True)
class RowMetrics:
    """AUC and ACC of one row set; ``threshold`` (on the sigmoid score) was chosen on the
    validation rows of the same set.  ``n`` rows; nan when the set is empty or one-class."""

    auc: float
    acc: float
    threshold: float
    n: int


@dataclass(frozen=True)
class KGItemResult:
    """One training run: validation/test metrics on all rows, on the new items' rows and
    (test only) on the other items' rows."""

    seed: int
    params: KGItemParams
    best_epoch: int
    valid_all: RowMetrics
    valid_new: RowMetrics
    test_all: RowMetrics
    test_new: RowMetrics
    test_warm: RowMetrics
    valid_auc_by_epoch: tuple[float, ...]
    valid_new_auc_by_epoch: tuple[float, ...]
    n_train: int
    n_warm_items: int
    seconds: float
    selection: str = KGITEM_SELECTION
    #: test metrics on the rows of ``focus_items`` (None when none were given)
    test_focus: RowMetrics | None = None
    model: KGItemNet | None = field(default=None, repr=False, compare=False)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict 1 when ``score >= t``) with the highest accuracy on these
    rows; 0.5 for no rows.  Ties go to the threshold nearest 0.5."""
    if labels.size == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Predicting the top j rows positive: correct = positives among them + negatives after.
    tp = np.concatenate([[0], np.cumsum(y)])
    neg_after = (y.size - y.sum()) - np.concatenate([[0], np.cumsum(1 - y)])
    correct = tp + neg_after
    # Only cut between distinct scores (j = 0 or a j where s[j-1] > s[j], or j = n).
    j = np.arange(y.size + 1)
    valid = (j == 0) | (j == y.size) | np.concatenate([[True], s[:-1] > s[1:], [True]])
    cuts = np.where(j == 0, np.inf, np.concatenate([[np.inf], s]))
    cand = np.flatnonzero(valid & (correct == correct[valid].max()))
    thresholds = np.where(np.isinf(cuts[cand]), 1.0 + 1e-9, cuts[cand])
    return float(thresholds[np.argmin(np.abs(thresholds - 0.5))])


def _scores(net: KGItemNet, users: torch.Tensor, items: torch.Tensor, batch: int) -> np.ndarray:
    out: list[torch.Tensor] = []
    was = net.training
    net.eval()
    with torch.no_grad():
        for s in range(0, users.shape[0], batch):
            out.append(torch.sigmoid(net(users[s:s + batch], items[s:s + batch])))
    net.train(was)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def train_kgitem(
    data: RippleData,
    *,
    split: Split,
    new_items: np.ndarray,
    params: KGItemParams,
    seed: int,
    keep_model: bool = False,
    focus_items: np.ndarray | None = None,
) -> KGItemResult:
    """Train on ``split.train`` with ``data.kg`` as the item neighbours; evaluate as the module
    docstring says.  Items without a training row are scored from their neighbours only.
    ``focus_items`` only adds ``test_focus``: training and the epoch choice ignore it."""
    if split.train.size == 0:
        raise ValueError("the training split is empty")
    start = time.perf_counter()
    ratings = data.ratings
    users_t = torch.from_numpy(np.ascontiguousarray(ratings[:, 0]))
    items_t = torch.from_numpy(np.ascontiguousarray(ratings[:, 1]))
    labels = ratings[:, 2].astype(np.float64)
    labels_t = torch.from_numpy(labels.astype(np.float32))
    warm = np.zeros(data.n_items, dtype=bool)
    warm[ratings[split.train, 1]] = True
    is_new = np.isin(ratings[:, 1], np.asarray(new_items, dtype=np.int64))
    valid_new = split.valid[is_new[split.valid]]
    test_new = split.test[is_new[split.test]]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4B47]))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = KGItemNet(
            n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities,
            neighbours=item_neighbours(
                data.kg, n_items=data.n_items,
                per_relation=params.aggregation == "relation_mean"),
            warm=warm,
            params=params, seed=seed,
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=params.lr,
                                      weight_decay=params.weight_decay)
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        by_epoch: list[float] = []
        by_epoch_new: list[float] = []
        valid_idx = torch.from_numpy(split.valid)
        for epoch in range(1, params.n_epoch + 1):
            order = torch.from_numpy(rng.permutation(split.train))
            keep = torch.from_numpy(
                (rng.random(order.shape[0]) >= params.id_dropout).astype(np.float32))
            for s in range(0, order.shape[0], params.batch_size):
                rows = order[s:s + params.batch_size]
                logits = net(users_t[rows], items_t[rows], keep[s:s + params.batch_size])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, labels_t[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            scores = _scores(net, users_t[valid_idx], items_t[valid_idx],
                             params.eval_batch_size)
            auc = _auc(labels[split.valid], scores)
            new_mask = is_new[split.valid]
            by_epoch.append(auc)
            by_epoch_new.append(_auc(labels[split.valid][new_mask], scores[new_mask]))
            logger.debug("seed %d epoch %d: valid AUC %.4f, new items %.4f", seed, epoch, auc,
                         by_epoch_new[-1])
            # nan never wins; ties keep the earlier epoch.
            if best is None or np.nan_to_num(auc, nan=-1.0) > best[0]:
                best = (float(np.nan_to_num(auc, nan=-1.0)), epoch,
                        copy.deepcopy(net.state_dict()))
    assert best is not None
    net.load_state_dict(best[2])

    def metrics(valid_rows: np.ndarray, test_rows: np.ndarray) -> tuple[RowMetrics, RowMetrics]:
        sv, st = (
            _scores(net, users_t[torch.from_numpy(r)], items_t[torch.from_numpy(r)],
                    params.eval_batch_size)
            for r in (valid_rows, test_rows)
        )
        yv, yt = labels[valid_rows], labels[test_rows]
        t = best_threshold(yv, sv)
        nan = float("nan")
        return (
            RowMetrics(auc=_auc(yv, sv), acc=float(np.mean((sv >= t) == yv)) if yv.size else nan,
                       threshold=t, n=int(yv.size)),
            RowMetrics(auc=_auc(yt, st), acc=float(np.mean((st >= t) == yt)) if yt.size else nan,
                       threshold=t, n=int(yt.size)),
        )

    v_all, t_all = metrics(split.valid, split.test)
    v_new, t_new = metrics(valid_new, test_new)
    _, t_warm = metrics(split.valid[~is_new[split.valid]], split.test[~is_new[split.test]])
    t_focus = None
    if focus_items is not None:
        is_focus = np.isin(ratings[:, 1], np.asarray(focus_items, dtype=np.int64))
        _, t_focus = metrics(split.valid[is_focus[split.valid]], split.test[is_focus[split.test]])
    return KGItemResult(
        seed=seed, params=params, best_epoch=best[1], valid_all=v_all, valid_new=v_new,
        test_all=t_all, test_new=t_new, test_warm=t_warm, valid_auc_by_epoch=tuple(by_epoch),
        valid_new_auc_by_epoch=tuple(by_epoch_new), n_train=int(split.train.size),
        n_warm_items=int(warm.sum()), seconds=time.perf_counter() - start,
        test_focus=t_focus, model=net if keep_model else None,
    )


__all__ = ["KGITEM_SELECTION", "KGItemResult", "RowMetrics", "best_threshold", "train_kgitem"]
