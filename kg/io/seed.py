"""Read a seed knowledge graph into `Entity` and `Triple` records (source SEED, decision TRUSTED).

Formats: TSV triples, N-Triples, Turtle, RecBole `.kg` + `.link`, RippleNet `kg_final.txt` +
`item_index2entity_id[_rehashed].txt` and the RKGE auxiliary format
(`id:1|genre:A,B|director:X|actors:Y,Z`). A bad line raises `InputError` naming file, line and
field, or, with `on_error="skip"`, becomes a `Rejection` in the result; whole-file problems
(unreadable, unparseable RDF) always raise. A triple whose relation the ontology does not know is
a `Rejection` ("unknown relation", counted), unless `relation_map` names its relation.

Entity ids: a seed entity linked to a catalog item (by the link file, the auxiliary format's id
or a `kge:itemId` in RDF) gets the item's id `item/<id>`, so seed and catalog facts meet on one
node. Otherwise:
- opaque ids (RecBole/RippleNet tokens, RDF IRIs without a label) stay as given, after
  `id_prefix` (RDF: the IRI's local name); their label is the token;
- labels (TSV tokens that are not ids, auxiliary values, RDF nodes with an rdfs:label, literal
  objects) get `mint_entity_id(type, label)`, the same id the rest of the pipeline mints;
- TSV tokens that already look like ids (`item/<x>` or `<known type>/<slug>`) are kept;
- IRIs a kgenrich export wrote carry `kge:entityId`, which is used as is.
The type of an entity is its relation's domain or range when the ontology knows the relation
(relation names pass through `relation_map` first), its `rdf:type` in RDF, else "Thing"; the
first non-Thing type wins and later disagreements are counted as `type_conflicts`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import rdflib
from pydantic import BaseModel, ConfigDict, Field
from rdflib import RDF, RDFS, BNode
from rdflib import Literal as RdfLiteral
from rdflib.namespace import OWL, SKOS, XSD

from kgenrich import progress
from kgenrich.errors import InputError
from kgenrich.kg.ids import item_entity_id, mint_entity_id, slug
from kgenrich.kg.io._text import check_field, read_text, split_lines
from kgenrich.kg.io.recbole import read_atomic
from kgenrich.kg.namespace import KGN, KGN_IRI, local_name
from kgenrich.kg.records import (
    Decision,
    Entity,
    Ontology,
    Provenance,
    Rejection,
    SourceKind,
    Triple,
)

logger = logging.getLogger(__name__)

SeedFormat = Literal["auto", "tsv", "nt", "turtle", "recbole", "ripplenet", "auxiliary"]
OnError = Literal["raise", "skip"]

THING = "Thing"
DEFAULT_AUXILIARY_KEYS: Mapping[str, str] = {
    "genre": "has_genre",
    "director": "directed_by",
    "actors": "starring",
}
# The RKGE crawl writes "N/A" where IMDb had no value; it is not an entity.
DEFAULT_MISSING_VALUES: tuple[str, ...] = ("N/A",)
_TSV_HEADERS = {("head", "relation", "tail"), ("subject", "predicate", "object"), ("h", "r", "t")}
# RDF predicates that describe nodes or statements rather than relate entities.
_META_NAMESPACES = (str(RDF), str(RDFS), str(OWL), str(SKOS), KGN_IRI)


class SeedGraph(BaseModel):
    """A seed KG as records, with the item links and the reader's accounting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entities: tuple[Entity, ...]
    triples: tuple[Triple, ...]
    # catalog item id -> entity id, for items that occur in a kept triple (link-file rows whose
    # entity never occurs are counted in counts["link_lines"] only).
    item_links: Mapping[str, str] = Field(default_factory=dict)
    rejected: tuple[Rejection, ...] = ()
    counts: Mapping[str, int] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Node:
    """One end of a raw triple before ids are resolved."""

    kind: Literal["raw", "label", "entity"]
    value: str  # raw token / label / entity id
    label: str | None = None
    type: str | None = None
    link_key: str | None = None  # the token a link file refers to this node by


def read_seed(
    path: str | Path,
    *,
    ontology: Ontology,
    format: SeedFormat = "auto",
    link: str | Path | None = None,
    relation_map: Mapping[str, str] | None = None,
    id_prefix: str = "",
    auxiliary_keys: Mapping[str, str] = DEFAULT_AUXILIARY_KEYS,
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES,
    on_error: OnError = "raise",
) -> SeedGraph:
    """Read a seed KG file; see the module docstring for formats, ids and types.

    `link` is a two-column file `item_id<TAB>entity` (RecBole `.link`, RippleNet
    `item_index2entity_id.txt`, or any TSV for TSV/RDF seeds, where `entity` is the token or IRI
    as it appears in the seed file). For RecBole and RippleNet it is found next to the KG file
    when not given; a RippleNet directory a kgenrich export wrote also has `entity_index.tsv` and
    `relation_index.tsv`, which restore the original ids and relation names.
    """
    file = Path(path)
    fmt = format if format != "auto" else _detect(file)
    if link is None:
        link = _sibling_link(file, fmt=fmt)
    builder = _Builder(
        file=str(file),
        ontology=ontology,
        relation_map=relation_map or {},
        id_prefix=id_prefix,
        on_error=on_error,
    )
    if link is not None:
        builder.links = _read_link(Path(link))
        builder.counts["link_lines"] = len(builder.links)
    rows: Iterator[tuple[int, _Node, str, _Node]]
    if fmt == "tsv":
        rows = _tsv_rows(file, builder=builder)
    elif fmt in ("nt", "turtle"):
        rows = _rdf_rows(file, fmt=fmt, builder=builder)
    elif fmt == "recbole":
        rows = _recbole_rows(file, builder=builder)
    elif fmt == "ripplenet":
        rows = _ripplenet_rows(file, builder=builder)
    else:
        rows = _auxiliary_rows(
            file, builder=builder, keys=auxiliary_keys, missing_values=missing_values
        )
    for line, head, relation, tail in progress.counted(rows, f"reading {file.name}", unit="lines"):
        builder.add(line, head, relation, tail)
    graph = builder.result()
    logger.info("seed %s (%s): %s", file, fmt, dict(graph.counts))
    return graph


def _detect(file: Path) -> SeedFormat:
    name, suffix = file.name.lower(), file.suffix.lower()
    if suffix == ".nt":
        return "nt"
    if suffix in (".ttl", ".turtle"):
        return "turtle"
    if suffix == ".kg":
        return "recbole"
    if name.startswith("kg_final"):
        return "ripplenet"
    if suffix == ".tsv":
        return "tsv"
    if suffix == ".txt":
        first = next((ln for ln in split_lines(read_text(file)) if ln.strip()), "")
        if first.startswith("id:"):
            return "auxiliary"
        if re.fullmatch(r"\s*\d+\s+\d+\s+\d+\s*", first):
            return "ripplenet"
        return "tsv"
    raise InputError(
        "cannot tell the seed format from the file name",
        file=str(file),
        expected=".tsv, .nt, .ttl, .kg, kg_final.txt, an auxiliary .txt or an explicit format",
        got=suffix or "(no suffix)",
    )


def _sibling_link(file: Path, *, fmt: SeedFormat) -> Path | None:
    if fmt == "recbole":
        candidates = [file.with_suffix(".link")]
    elif fmt == "ripplenet":
        candidates = [
            file.parent / "item_index2entity_id.txt",
            file.parent / "item_index2entity_id_rehashed.txt",
        ]
    else:
        return None
    for candidate in candidates:
        if candidate.exists():
            logger.info("seed %s: using link file %s", file, candidate)
            return candidate
    logger.warning("seed %s: no link file found; no seed entity is tied to a catalog item", file)
    return None


def _read_link(file: Path) -> dict[str, str]:
    """Map entity token -> catalog item id from `item_id<TAB>entity` lines (header optional)."""
    name = str(file)
    by_entity: dict[str, str] = {}
    items: dict[str, int] = {}
    entity_line: dict[str, int] = {}
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if line_no == 1 and _is_header(parts):
            continue
        if len(parts) != 2:
            raise InputError(
                "wrong number of columns",
                file=name,
                line=line_no,
                field="row",
                expected="item_id<TAB>entity",
                got=line,
            )
        item, entity = parts[0].strip(), parts[1].strip()
        for field, value in (("item_id", item), ("entity", entity)):
            check_field(value, file=name, line=line_no, field=field)
            if not value:
                raise InputError("empty value", file=name, line=line_no, field=field)
        if item in items:
            raise InputError(
                f"item linked twice (first on line {items[item]})",
                file=name,
                line=line_no,
                field="item_id",
                got=item,
            )
        if entity in by_entity:
            raise InputError(
                f"entity linked to two items (first on line {entity_line[entity]})",
                file=name,
                line=line_no,
                field="entity",
                got=entity,
            )
        items[item] = line_no
        by_entity[entity] = item
        entity_line[entity] = line_no
    return by_entity


def _is_header(parts: list[str]) -> bool:
    lowered = tuple(p.strip().lower() for p in parts)
    return (
        all(re.fullmatch(r"\w+:\w+", p) for p in lowered)
        or lowered in _TSV_HEADERS
        or lowered[:1] == ("item_id",)
    )


class _Builder:
    """Resolves raw triples to records; keeps first occurrences, counts everything."""

    def __init__(
        self,
        *,
        file: str,
        ontology: Ontology,
        relation_map: Mapping[str, str],
        id_prefix: str,
        on_error: OnError,
    ) -> None:
        self.file = file
        self.ontology = ontology
        self.relation_map = relation_map
        self.id_prefix = id_prefix
        self.on_error = on_error
        self.links: dict[str, str] = {}
        self.item_links: dict[str, str] = {}
        self.entities: dict[str, Entity] = {}
        self.triples: list[Triple] = []
        self.keys: set[tuple[str, str, str]] = set()
        self.rejected: list[Rejection] = []
        self.provenance: dict[str | None, Provenance] = {}
        self.unknown_relations: set[str] = set()
        self.counts: dict[str, int] = {
            "rows": 0,
            "duplicates": 0,
            "unknown_relation_triples": 0,
            "unknown_relation_rejected": 0,
            "type_conflicts": 0,
            "skipped": 0,
        }
        self.relations = {r.name: r for r in ontology.relations}
        self.type_prefixes = {t.lower() for t in ontology.types} | {THING.lower()}

    def error(self, err: InputError) -> None:
        """Raise, or record the bad line and go on, as `on_error` says."""
        if self.on_error == "raise":
            raise err
        self.rejected.append(
            Rejection(stage="seed", reason=f"bad {err.field or 'line'}", detail=str(err))
        )

    def add(self, line: int, head: _Node, relation: str, tail: _Node) -> None:
        self.counts["rows"] += 1
        name = self.relation_map.get(relation, relation)
        rel = self.relations.get(name)
        if rel is None:
            self.counts["unknown_relation_triples"] += 1
            self.unknown_relations.add(name)
            # A fact the ontology cannot type is not trusted, unless the user's relation map
            # names its relation (mapping it to itself keeps it as given).
            if relation not in self.relation_map:
                self.counts["unknown_relation_rejected"] += 1
                self.rejected.append(Rejection(
                    stage="seed", reason="unknown relation",
                    detail=f"{self.file}{f':{line}' if line else ''}: {name!r} is not a "
                    "relation of the ontology"))
                return
        head_id = self._resolve(head, role_type=rel.domain if rel else THING)
        tail_id = self._resolve(tail, role_type=rel.range if rel else THING)
        key = (head_id, name, tail_id)
        if key in self.keys:
            self.counts["duplicates"] += 1
            return
        self.keys.add(key)
        # The item a fact is about: its head if that is an item, else its tail.
        about = head_id if head_id.startswith("item/") else tail_id
        item_id = about[len("item/") :] if about.startswith("item/") else None
        prov = self.provenance.get(item_id)
        if prov is None:
            prov = Provenance(
                source=SourceKind.SEED,
                item_id=item_id,
                decision=Decision.TRUSTED,
                accepted_by="seed",
            )
            self.provenance[item_id] = prov
        # model_construct: every field is a str or a validated Provenance already, and full
        # validation doubled the time to read a 150k-line KG.
        self.triples.append(
            Triple.model_construct(head=head_id, relation=name, tail=tail_id, provenance=prov)
        )

    def _resolve(self, node: _Node, *, role_type: str) -> str:
        item = self.links.get(node.link_key if node.link_key is not None else node.value)
        if item is not None:
            entity_id = item_entity_id(item)
            self.item_links[item] = entity_id
            self._register(entity_id, label=node.label or item, type_=self.ontology.item_type)
            return entity_id
        type_ = node.type or role_type
        if node.kind == "label":
            entity_id = mint_entity_id(type_, node.value)
            label = node.label or node.value
        elif node.kind == "raw":
            entity_id = self.id_prefix + node.value
            label = node.label or node.value
        else:
            entity_id = node.value
            label = node.label or entity_id.split("/", 1)[-1]
        if entity_id.startswith("item/"):
            type_ = self.ontology.item_type
            self.item_links.setdefault(entity_id[len("item/") :], entity_id)
        self._register(entity_id, label=label, type_=type_)
        return entity_id

    def _register(self, entity_id: str, *, label: str, type_: str) -> None:
        old = self.entities.get(entity_id)
        if old is None:
            self.entities[entity_id] = Entity(
                id=entity_id, label=label, type=type_, source=SourceKind.SEED
            )
        elif old.type == THING and type_ != THING:
            self.entities[entity_id] = old.model_copy(update={"type": type_})
        elif type_ not in (THING, old.type):
            self.counts["type_conflicts"] += 1

    def result(self) -> SeedGraph:
        if self.unknown_relations:
            logger.warning(
                "seed %s: %d triples use relations the ontology does not know (rejected unless "
                "the relation map names them): %s",
                self.file,
                self.counts["unknown_relation_triples"],
                ", ".join(sorted(self.unknown_relations)[:10]),
            )
        counts = dict(self.counts)
        counts.update(
            triples=len(self.triples),
            entities=len(self.entities),
            item_links=len(self.item_links),
            rejected_lines=len(self.rejected) - self.counts["unknown_relation_rejected"],
        )
        return SeedGraph(
            entities=tuple(self.entities.values()),
            triples=tuple(self.triples),
            item_links=dict(self.item_links),
            rejected=tuple(self.rejected),
            counts=counts,
        )

    def tsv_node(self, token: str) -> _Node:
        """A TSV token: an id if it looks like one (`item/x`, `<type>/<slug>`), else a label."""
        prefix, sep, rest = token.partition("/")
        if (
            sep
            and rest
            and (prefix == "item" or (prefix in self.type_prefixes and rest == slug(rest)))
        ):
            return _Node("entity", token, link_key=token)
        return _Node("label", token, label=token, link_key=token)


def _fields(
    line: str, *, file: str, line_no: int, names: tuple[str, ...], sep: str | None = "\t"
) -> list[str]:
    parts = line.split(sep)
    if len(parts) != len(names):
        field = names[len(parts)] if len(parts) < len(names) else "(extra column)"
        raise InputError(
            "wrong number of columns",
            file=file,
            line=line_no,
            field=field,
            expected=f"{len(names)} columns ({', '.join(names)})",
            got=str(len(parts)),
        )
    values = [p.strip() for p in parts]
    for name, value in zip(names, values, strict=True):
        check_field(value, file=file, line=line_no, field=name)
        if not value:
            raise InputError("empty value", file=file, line=line_no, field=name)
    return values


_HRT = ("head", "relation", "tail")
_RECBOLE_KG_HEADER = ("head_id:token", "relation_id:token", "tail_id:token")
_RECBOLE_KG_NAMES = ("head_id", "relation_id", "tail_id")


def _tsv_rows(file: Path, *, builder: _Builder) -> Iterator[tuple[int, _Node, str, _Node]]:
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if line_no == 1 and tuple(p.strip().lower() for p in line.split("\t")) in _TSV_HEADERS:
            continue
        try:
            head, relation, tail = _fields(line, file=builder.file, line_no=line_no, names=_HRT)
        except InputError as err:
            builder.error(err)
            continue
        yield line_no, builder.tsv_node(head), relation, builder.tsv_node(tail)


def _recbole_rows(file: Path, *, builder: _Builder) -> Iterator[tuple[int, _Node, str, _Node]]:
    atomic = read_atomic(file, header=_RECBOLE_KG_HEADER)
    for line_no, text in atomic.lines:
        try:
            head, relation, tail = atomic.row(line_no, text, required=_RECBOLE_KG_NAMES).cells
        except InputError as err:
            builder.error(err)
            continue
        yield line_no, _Node("raw", head), relation, _Node("raw", tail)


def _read_index(file: Path, *, names: tuple[str, str]) -> dict[str, str]:
    """An `int<TAB>name` file written by the RippleNet exporter (header line required)."""
    out: dict[str, str] = {}
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if line_no == 1 or not line.strip():
            continue
        index, value = _fields(line, file=str(file), line_no=line_no, names=names)
        out[index] = value
    return out


def _ripplenet_rows(file: Path, *, builder: _Builder) -> Iterator[tuple[int, _Node, str, _Node]]:
    entity_index_file = file.parent / "entity_index.tsv"
    relation_index_file = file.parent / "relation_index.tsv"
    entity_names: dict[str, str] = {}
    relation_names: dict[str, str] = {}
    if entity_index_file.exists() and relation_index_file.exists():
        entity_names = _read_index(entity_index_file, names=("index", "entity_id"))
        relation_names = _read_index(relation_index_file, names=("index", "relation"))
        logger.info("seed %s: restoring ids from %s", file, entity_index_file.name)
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip():
            continue
        try:
            head, relation, tail = _ripple_values(line, file=builder.file, line_no=line_no)
            if entity_names and (head not in entity_names or tail not in entity_names):
                missing = "head" if head not in entity_names else "tail"
                raise InputError(
                    "index not in entity_index.tsv", file=builder.file, line=line_no, field=missing
                )
            if relation_names and relation not in relation_names:
                raise InputError(
                    "index not in relation_index.tsv",
                    file=builder.file,
                    line=line_no,
                    field="relation",
                )
        except InputError as err:
            builder.error(err)
            continue
        yield (
            line_no,
            _ripple_node(head, entity_names),
            relation_names.get(relation, relation),
            _ripple_node(tail, entity_names),
        )


def _ripple_values(line: str, *, file: str, line_no: int) -> list[str]:
    values = line.split()
    if len(values) == 3 and all(v.isascii() and v.isdigit() for v in values):
        return values  # the common case: ASCII digits need no further checks
    values = _fields(line, file=file, line_no=line_no, names=_HRT, sep=None)
    for name, value in zip(_HRT, values, strict=True):
        if not (value.isascii() and value.isdigit()):
            raise InputError(
                "not a non-negative integer", file=file, line=line_no, field=name, got=value
            )
    return values


def _ripple_node(index: str, names: Mapping[str, str]) -> _Node:
    name = names.get(index)
    if name is None:
        return _Node("raw", index)
    return _Node("entity", name, link_key=index)


def _auxiliary_rows(
    file: Path,
    *,
    builder: _Builder,
    keys: Mapping[str, str],
    missing_values: tuple[str, ...],
) -> Iterator[tuple[int, _Node, str, _Node]]:
    name = builder.file
    seen_ids: dict[str, int] = {}
    folded = {k.casefold(): v for k, v in keys.items()}
    missing = {m.casefold() for m in missing_values}
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip():
            continue
        try:
            item_id, facts = _auxiliary_line(
                line, file=name, line_no=line_no, keys=folded, missing=missing
            )
            if item_id in seen_ids:
                raise InputError(
                    f"duplicate id (first on line {seen_ids[item_id]})",
                    file=name,
                    line=line_no,
                    field="id",
                    got=item_id,
                )
        except InputError as err:
            builder.error(err)
            continue
        seen_ids[item_id] = line_no
        head = _Node("entity", item_entity_id(item_id), label=item_id, link_key=item_id)
        builder.item_links[item_id] = item_entity_id(item_id)
        for relation, value in facts:
            yield line_no, head, relation, _Node("label", value, label=value)


def _auxiliary_line(
    line: str,
    *,
    file: str,
    line_no: int,
    keys: Mapping[str, str],
    missing: set[str],
) -> tuple[str, list[tuple[str, str]]]:
    """Parse `id:1|genre:A,B|director:X`; keys are matched case-insensitively."""
    item_id: str | None = None
    facts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for position, part in enumerate(line.split("|"), start=1):
        key, sep, value = part.partition(":")
        key = key.strip().casefold()
        field = key or f"part {position}"
        check_field(value, file=file, line=line_no, field=field)
        if not sep or not key:
            raise InputError("expected key:value", file=file, line=line_no, field=field, got=part)
        if key in seen:
            raise InputError("key given twice", file=file, line=line_no, field=key)
        seen.add(key)
        if position == 1:
            if key != "id":
                raise InputError("line must start with id:", file=file, line=line_no, field=key)
            item_id = value.strip()
            # ":" is the format's key separator; an id holding one means a "|" went missing.
            if not item_id or ":" in item_id or re.search(r"[\x00-\x1f\x7f]", item_id):
                raise InputError(
                    "bad id (a missing '|'?)", file=file, line=line_no, field="id", got=value
                )
            continue
        relation = keys.get(key)
        if relation is None:
            raise InputError(
                "unknown key",
                file=file,
                line=line_no,
                field=key,
                expected=", ".join(sorted(keys)),
            )
        for raw in value.split(","):
            label = raw.strip()
            if label and label.casefold() not in missing:
                facts.append((relation, label))
    if item_id is None:
        raise InputError("empty line", file=file, line=line_no, field="id")
    return item_id, facts


def _rdf_rows(
    file: Path, *, fmt: Literal["nt", "turtle"], builder: _Builder
) -> Iterator[tuple[int, _Node, str, _Node]]:
    graph = _parse_rdf(file, fmt=fmt)
    ontology = builder.ontology
    known_types = set(ontology.types)
    nodes: dict[rdflib.term.Node, _Node] = {}
    statements = set(graph.subjects(RDF.type, RDF.Statement))

    def rdf_type(subject: rdflib.term.Node) -> str | None:
        for obj in sorted(graph.objects(subject, RDF.type), key=str):
            name = local_name(str(obj))
            if name in known_types:
                return name
        return None

    def first_literal(subject: rdflib.term.Node, predicate: rdflib.URIRef) -> str | None:
        values = [o for o in graph.objects(subject, predicate) if isinstance(o, RdfLiteral)]
        # Prefer English or untagged labels, then the lexically first, for a stable choice.
        values.sort(key=lambda o: (o.language not in (None, "en"), str(o)))
        return str(values[0]) if values else None

    def node_for(term: rdflib.term.Node, *, role_type: str) -> _Node:
        cached = nodes.get(term)
        if cached is not None:
            return cached
        iri = str(term)
        typed = rdf_type(term)
        entity_id = first_literal(term, KGN.entityId)
        item_id = first_literal(term, KGN.itemId)
        label = first_literal(term, RDFS.label)
        if item_id is not None:
            builder.links.setdefault(iri, item_id)
        if entity_id is not None:
            node = _Node("entity", entity_id, label=label, type=typed, link_key=iri)
        elif label is not None:
            # Typed once per IRI (rdf:type, else the first relation it is seen in), so one IRI
            # never splits into several minted ids.
            node = _Node("entity", mint_entity_id(typed or role_type, label), label, typed, iri)
        else:
            node = _Node("raw", local_name(iri), label=local_name(iri), type=typed, link_key=iri)
        nodes[term] = node
        return node

    skipped = 0
    triples = sorted(graph, key=lambda t: (str(t[0]), str(t[1]), str(t[2])))
    for subject, predicate, obj in triples:
        p = str(predicate)
        if (
            p.startswith(_META_NAMESPACES)
            or subject in statements
            or isinstance(subject, BNode)
            or isinstance(obj, BNode)
        ):
            skipped += 1
            continue
        relation = builder.relation_map.get(local_name(p), local_name(p))
        rel = ontology.relation(relation)
        head = node_for(subject, role_type=rel.domain if rel else THING)
        if isinstance(obj, RdfLiteral):
            value = str(obj).strip()
            if not value:
                skipped += 1
                continue
            tail = _Node("label", value, label=value)
        else:
            tail = node_for(obj, role_type=rel.range if rel else THING)
        yield 0, head, local_name(p), tail
    builder.counts["skipped"] += skipped
    builder.counts["rdf_triples"] = len(graph)


def _parse_rdf(file: Path, *, fmt: Literal["nt", "turtle"]) -> rdflib.Graph:
    name = str(file)
    text = read_text(file)
    graph = rdflib.Graph()
    try:
        graph.parse(data=text, format=fmt)
    except Exception as err:  # rdflib raises many unrelated types for syntax errors
        line = _bad_rdf_line(text, fmt=fmt, err=err)
        raise InputError(
            f"cannot parse {fmt}: {str(err).strip().splitlines()[0][:200]}",
            file=name,
            line=line,
            field="statement",
        ) from err
    for s, p, o in graph:
        for term, field in ((s, "subject"), (p, "predicate"), (o, "object")):
            if isinstance(term, RdfLiteral) and term.datatype not in (None, XSD.string):
                continue
            check_field(str(term), file=name, line=None, field=field)
    return graph


def _bad_rdf_line(text: str, *, fmt: str, err: Exception) -> int | None:
    lines = getattr(err, "lines", None)
    if isinstance(lines, int):  # notation3's BadSyntax counts lines from 0
        return lines + 1
    if fmt != "nt":
        return None
    # N-Triples is line-based: find the first line that does not parse on its own. Only runs on
    # the error path, so its cost does not matter.
    for line_no, line in enumerate(split_lines(text), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rdflib.Graph().parse(data=line, format="nt")
        except Exception:  # noqa: BLE001 - any failure marks the bad line
            return line_no
    return None


__all__ = [
    "DEFAULT_AUXILIARY_KEYS",
    "DEFAULT_MISSING_VALUES",
    "SeedFormat",
    "SeedGraph",
    "read_seed",
]
