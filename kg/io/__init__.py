"""Readers for user inputs: item catalogs and seed knowledge graphs."""

from __future__ import annotations

from kgenrich.kg.io.catalog import CatalogMapping, load_mapping, mapping_from_args, read_catalog
from kgenrich.kg.io.seed import SeedGraph, read_seed

__all__ = [
    "CatalogMapping",
    "SeedGraph",
    "load_mapping",
    "mapping_from_args",
    "read_catalog",
    "read_seed",
]
