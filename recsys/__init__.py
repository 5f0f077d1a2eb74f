"""RippleNet recommender (Wang et al., CIKM 2018) used to measure what KG enrichment buys.

Public API (everything else is internal):

* :func:`recsys.data.load_ripplenet_dir`, :func:`recsys.data.load_recbole`,
  :func:`recsys.data.make_ripple_data`, :func:`recsys.data.with_kg` -> :class:`RippleData`
* :func:`recsys.data.split_indices` -> :class:`Split` (fix one split, vary the KG)
* :class:`recsys.params.RippleParams`, :func:`recsys.params.preset` (``"book"``, ``"movie"``)
* :func:`recsys.train.train_and_evaluate` -> :class:`EvalResult`;
  :func:`recsys.train.save_model` / :func:`recsys.train.load_model`
* :func:`recsys.export_data.load_export` (a kgenrich run's RippleNet export) and
  :func:`recsys.evaluate.graph_auc` / :func:`recsys.evaluate.summarize` (AUC/ACC over seeds)
* the new-item protocol: :func:`recsys.protocol.new_item_split` -> :class:`NewItemSplit`,
  :func:`recsys.protocol.kg_variants` / :func:`~recsys.protocol.hide_groups` ->
  :class:`HiddenKG` (the answer key), :func:`~recsys.protocol.shuffle_tails` (the control);
  :func:`recsys.kg_ids.index_triples` (string triples -> int KG rows)
* the new-item recommender: :class:`recsys.kgitem_model.KGItemNet`,
  :class:`recsys.params.KGItemParams`, :func:`recsys.kgitem_train.train_kgitem` ->
  :class:`KGItemResult`

Input files are read through ``kgenrich.kg.io``; ratings are labelled by
``kgenrich.kg.ratings.label_ratings``.  Nothing here imports flows, pipeline or the CLI.
"""

from __future__ import annotations

from kgenrich.recsys.data import (
    RippleData,
    Split,
    load_recbole,
    load_ripplenet_dir,
    make_ripple_data,
    split_indices,
    with_kg,
)
from kgenrich.recsys.errors import DataFormatError, RecsysError
from kgenrich.recsys.kg_ids import IndexedKG, index_triples
from kgenrich.recsys.kgitem_model import KGItemNet
from kgenrich.recsys.kgitem_train import KGItemResult, train_kgitem
from kgenrich.recsys.params import PRESETS, KGItemParams, RippleParams, preset
from kgenrich.recsys.protocol import (
    HiddenKG,
    NewItemSplit,
    hide_groups,
    kg_variants,
    new_item_split,
    shuffle_tails,
)
from kgenrich.recsys.train import (
    EvalResult,
    TrainedModel,
    load_model,
    save_model,
    train_and_evaluate,
)

__all__ = [
    "PRESETS",
    "DataFormatError",
    "EvalResult",
    "HiddenKG",
    "IndexedKG",
    "KGItemNet",
    "KGItemParams",
    "KGItemResult",
    "NewItemSplit",
    "RecsysError",
    "RippleData",
    "RippleParams",
    "Split",
    "TrainedModel",
    "hide_groups",
    "index_triples",
    "kg_variants",
    "load_model",
    "load_recbole",
    "load_ripplenet_dir",
    "make_ripple_data",
    "new_item_split",
    "preset",
    "save_model",
    "shuffle_tails",
    "split_indices",
    "train_and_evaluate",
    "train_kgitem",
    "with_kg",
]
