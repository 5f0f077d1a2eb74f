"""kgenrich's RDF vocabulary and IRI minting.

`KGN` holds our own terms as an rdflib `DefinedNamespace` that raises on a misspelt term.
Relations (`KGR`) and entity types (`KGT`) come from user ontologies, so they are plain
namespaces. `entity_iri` percent-encodes any entity id so the IRI always re-parses; `entity_id`
inverts it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from rdflib import Namespace, URIRef
from rdflib.namespace import DefinedNamespace

KGN_IRI = "https://kgenrich.dev/ns#"
KGR = Namespace("https://kgenrich.dev/rel/")
KGT = Namespace("https://kgenrich.dev/type/")

# Unreserved characters (RFC 3986) plus "/", which entity ids use as their type separator. Every
# other character, "%" included, is percent-encoded as UTF-8, so the IRI is plain ASCII that
# every RDF syntax accepts and `unquote` inverts exactly.
_SAFE = "/-._~"
# IRIs under a base that are not entities; entity ids must not start with these.
RESERVED_PREFIXES = ("graph/", "stmt/")
# The named graph (`<base>graph/candidates`) holding the reified statements of triples an export
# does not assert (review, unverified_new_entity, rejected, ... by default).
CANDIDATES = "candidates"


class KGN(DefinedNamespace):
    """kgenrich's own terms (https://kgenrich.dev/ns#).

    Named KGN, not KGE: in this field KGE is a knowledge-graph embedding model."""

    _NS = Namespace(KGN_IRI)
    _fail = True

    # On entities
    entityId: URIRef  # the kgenrich entity id, e.g. "person/tom-hanks"
    itemId: URIRef  # catalog item id, on item entities and on statements about an item
    source: URIRef  # "seed" | "catalog" | "extracted" | "completed"
    Thing: URIRef  # type of entities whose type no ontology relation fixes
    # On item entities: the catalog's other fields, one node (fieldName, fieldValue) each
    catalogText: URIRef  # a free-text column (Entity.text): name = column
    catalogAttribute: URIRef  # one attribute value (Entity.attributes): name = relation
    fieldName: URIRef
    fieldValue: URIRef

    # On reified statements (rdf:Statement)
    model: URIRef
    promptVersion: URIRef
    evidence: URIRef
    decision: URIRef  # "trusted" | "accepted" | "rejected" | "review" | ...
    reason: URIRef
    acceptedBy: URIRef
    confidence: URIRef  # xsd:double in [0, 1]
    kgeScore: URIRef  # raw KGE score, xsd:double
    kgeProbability: URIRef  # calibrated KGE probability, xsd:double
    agreement: URIRef  # share of LLM samples that agreed, xsd:double
    score: URIRef  # any other named score: a node with scoreName / scoreValue
    scoreName: URIRef
    scoreValue: URIRef
    graph: URIRef  # the named graph holding the asserted fact (absent when not asserted)


# Provenance.scores keys with a term of their own; others go through KGN.score.
SCORE_TERMS: dict[str, URIRef] = {
    "confidence": KGN.confidence,
    "kge": KGN.kgeScore,
    "kge_probability": KGN.kgeProbability,
    "agreement": KGN.agreement,
}

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*\Z")


def check_base(base: str) -> str:
    """Return `base` if it can prefix entity IRIs: absolute, ending in "/" or "#", no bad chars."""
    if not _ABSOLUTE.match(base) or not base.endswith(("/", "#")):
        raise ValueError(f"base IRI must be absolute and end with '/' or '#', got {base!r}")
    return base


def encode_id(entity_id: str) -> str:
    """Percent-encode an entity id for use inside an IRI (UTF-8, all but `/-._~` unreserved)."""
    return quote(entity_id, safe=_SAFE)


def entity_iri(base: str, entity_id: str) -> URIRef:
    """The IRI of an entity: `base` + percent-encoded id. Any Unicode id re-parses."""
    return URIRef(base + encode_id(entity_id))


def entity_id(base: str, iri: str) -> str | None:
    """Invert `entity_iri`: the entity id of an IRI under `base`, else None."""
    if not iri.startswith(base):
        return None
    return unquote(iri[len(base) :], errors="strict")


def relation_iri(name: str) -> URIRef:
    """The IRI of an ontology relation."""
    return KGR[quote(name, safe="")]


def type_iri(name: str) -> URIRef:
    """The IRI of an entity type; "Thing" (no type known) maps to `KGN.Thing`."""
    return KGN.Thing if name == "Thing" else KGT[quote(name, safe="")]


def graph_iri(base: str, source: str) -> URIRef:
    """The named graph that holds facts from one source (`<base>graph/seed`, ...)."""
    return URIRef(f"{base}graph/{quote(source, safe='')}")


def local_name(iri: str) -> str:
    """The percent-decoded part after the last '#' or '/', used as a relation or label."""
    cut = max(iri.rfind("#"), iri.rfind("/"))
    tail = iri[cut + 1 :] if cut >= 0 and cut + 1 < len(iri) else iri
    return unquote(tail)
