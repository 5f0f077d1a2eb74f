"""Package data installed as ``kgenrich.data``: the shipped ontologies and the demo catalog."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ONTOLOGIES = ROOT / "ontology"
DEMO = ROOT / "demo"


def ontology(name: str) -> Path:
    """Path of a shipped ontology by name (``movies``, ``books``)."""
    return ONTOLOGIES / f"{name}.json"
