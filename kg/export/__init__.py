"""Exporters: RDF (Turtle, N-Quads), GraphML, RippleNet, RecBole, Parquet and the canonical JSONL
dump."""

from __future__ import annotations

from kgenrich.kg.export.graph import to_networkx, write_graphml
from kgenrich.kg.export.jsonl import GraphDump, read_jsonl, write_jsonl
from kgenrich.kg.export.parquet import write_parquet
from kgenrich.kg.export.rdf import write_nquads, write_turtle
from kgenrich.kg.export.recbole import write_recbole
from kgenrich.kg.export.ripplenet import Interaction, write_ripplenet
from kgenrich.kg.export.select import select

__all__ = [
    "GraphDump",
    "Interaction",
    "read_jsonl",
    "select",
    "to_networkx",
    "write_graphml",
    "write_jsonl",
    "write_nquads",
    "write_parquet",
    "write_recbole",
    "write_ripplenet",
    "write_turtle",
]
