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
from kgenrich.recsys.params import PRESETS, RippleParams, preset
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
    "RecsysError",
    "RippleData",
    "RippleParams",
    "Split",
    "TrainedModel",
    "load_model",
    "load_recbole",
    "load_ripplenet_dir",
    "make_ripple_data",
    "preset",
    "save_model",
    "split_indices",
    "train_and_evaluate",
    "with_kg",
]
