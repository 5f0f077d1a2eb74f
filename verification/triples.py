"""The label triple every verifier reads: (head, relation, tail) as in the trusted graph."""

from __future__ import annotations

#: (head, relation, tail) labels, exactly as they appear in the trusted graph.
LabeledTriple = tuple[str, str, str]
