"""Readers for user inputs, one per format: item catalogs, seed knowledge graphs, RecBole atomic
files, interactions and answer keys."""

from __future__ import annotations

from kgenrich.kg.io.answer_key import HiddenFact, read_answer_key
from kgenrich.kg.io.catalog import CatalogMapping, load_mapping, mapping_from_args, read_catalog
from kgenrich.kg.io.interactions import InteractionTable, read_interaction_table, read_interactions
from kgenrich.kg.io.recbole import AtomicFile, read_atomic
from kgenrich.kg.io.seed import SeedGraph, read_seed

__all__ = [
    "AtomicFile",
    "CatalogMapping",
    "HiddenFact",
    "InteractionTable",
    "SeedGraph",
    "load_mapping",
    "mapping_from_args",
    "read_answer_key",
    "read_atomic",
    "read_catalog",
    "read_interaction_table",
    "read_interactions",
    "read_seed",
]
