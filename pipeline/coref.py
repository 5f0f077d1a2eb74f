"""Coreference within one text, by rules: which surnames, role nouns ("the director") and
third-person pronouns refer to one of the people the text names. Pure; English only.

Input is the text and the entity mentions known in it (discovery's mentions, catalog values).
Output is one `Cluster` per person the text refers to by another wording, with every span.
The rules prefer leaving a mention unresolved to guessing: a short name that fits two full
names, or a pronoun or role noun with two people before it, stays out of every cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from kgenrich.kg.ids import normalize_label
from kgenrich.kg.records import Mention, Ontology
from kgenrich.pipeline.text import sentence_spans

MentionKind = Literal["name", "alias", "role", "pronoun", "description"]

#: Ontology types whose members are people, the only ones pronouns and role nouns refer to.
PERSON_TYPE_NAMES = frozenset({"person", "people", "human", "author", "artist", "actor",
                               "director", "writer", "musician", "creator", "character"})
#: Role noun -> word stems that cue the relation it implies ("the director" -> "direct...").
#: A role maps to the item-type relation with a person range whose name or cues hold one of
#: its stems, when exactly one does (`role_relations`).
ROLE_NOUNS: Mapping[str, tuple[str, ...]] = {
    "director": ("direct",), "filmmaker": ("direct",),
    "writer": ("writ", "wrot", "screenpla", "script"),
    "screenwriter": ("writ", "wrot", "screenpla", "script"),
    "author": ("writ", "wrot", "author"), "novelist": ("writ", "wrot", "author"),
    "actor": ("star", "act", "cast"), "actress": ("star", "act", "cast"),
    "star": ("star", "act", "cast"),
    "composer": ("compos", "music", "score"), "producer": ("produc",),
    "narrator": ("narrat",), "illustrator": ("illustrat",), "translator": ("translat",),
    "editor": ("edit",), "creator": ("creat",), "singer": ("sing", "sung", "perform"),
}
#: He/she pronoun -> its gender; "they" is left out on purpose: in catalog text it refers to a
#: group ("the Coen brothers ... they") far more often than to one person.
PRONOUNS: Mapping[str, str] = {
    "he": "m", "him": "m", "his": "m", "himself": "m",
    "she": "f", "her": "f", "hers": "f", "herself": "f",
}
#: Sentences before a pronoun's or role noun's own that are searched for its antecedent.
LOOKBACK_SENTENCES = 2
#: Name parts that are no name on their own: particles, suffixes, and words a first name
#: collides with at the start of a sentence ("Will", "May").
NOT_A_NAME = frozenset({
    "de", "del", "della", "der", "di", "da", "du", "van", "von", "le", "la", "jr", "jr.",
    "sr", "sr.", "ii", "iii", "iv", "mr", "mr.", "mrs", "mrs.", "ms", "ms.", "dr", "dr.",
    "sir", "the", "will", "may", "mark", "bill", "grace", "hope", "joy", "faith", "rose",
    "summer", "april", "june", "august", "art", "pat", "sue", "don", "ray", "guy",
})
_ROLE = re.compile(
    r"\b(?:the|its|this|that)\s+(?:(?:film|movie|book|novel|series|show|album)['\u2019]s\s+)?"
    rf"({'|'.join(sorted(ROLE_NOUNS, key=len, reverse=True))})\b(?!\s+of\b)", re.IGNORECASE)
_PRONOUN = re.compile(rf"\b({'|'.join(PRONOUNS)})\b", re.IGNORECASE)
_APPOSITIVE = re.compile(r"\s*,?\s*")


@dataclass(frozen=True)
class CorefMention:
    """`text[start:end]` refers to its cluster's person. `relation`: the ontology relation a
    role noun implies; `antecedent`: the span of the mention a pronoun or role noun refers
    back to (the evidence of a fact stated through it reaches back to there)."""

    start: int
    end: int
    text: str
    kind: MentionKind
    relation: str | None = None
    antecedent: tuple[int, int] | None = None


@dataclass(frozen=True)
class Cluster:
    """One person of the text: its canonical name (one of the text's mentions) and every span
    that refers to it, in text order."""

    canonical: str
    type: str
    mentions: tuple[CorefMention, ...]
    found_by: str  # "rules" | "llm:<model>"

    def aliases(self) -> tuple[str, ...]:
        """Other names of the person in the text ("Nolan"): the spans that may become aliases
        of its entity. Pronouns, role nouns and descriptions never do."""
        canon = normalize_label(self.canonical)
        return tuple(dict.fromkeys(m.text for m in self.mentions
                                   if m.kind == "alias" and normalize_label(m.text) != canon))

    def names(self) -> frozenset[str]:
        """Normalised canonical name and aliases: the tails that name this person."""
        return frozenset({normalize_label(self.canonical),
                          *(normalize_label(a) for a in self.aliases())})


def person_types(ontology: Ontology) -> frozenset[str]:
    """The ontology's types whose members are people (see PERSON_TYPE_NAMES)."""
    return frozenset(t for t in ontology.types if t.casefold() in PERSON_TYPE_NAMES)


def role_relations(ontology: Ontology) -> dict[str, str]:
    """Role noun -> the one relation of the item type, to a person, that it implies: the
    relation whose name holds one of the role's stems ("director" -> "directed_by"). A role
    that fits no relation or two is left out (it still resolves, with no relation)."""
    people = person_types(ontology)
    rels = [r for r in ontology.relations
            if r.domain == ontology.item_type and r.range in people]
    out: dict[str, str] = {}
    for noun, stems in ROLE_NOUNS.items():
        fits = [r.name for r in rels if any(s in r.name.casefold() for s in stems)]
        if len(fits) == 1:
            out[noun] = fits[0]
    return out


def relation_cues(relation: str, roles: Mapping[str, str]) -> tuple[str, ...]:
    """Word stems that say a sentence states `relation`: the stems of the roles that imply it
    and the first five letters of each longer word of its name ("directed_by" -> "direc")."""
    stems = {s for noun, rel in roles.items() if rel == relation for s in ROLE_NOUNS[noun]}
    stems |= {w[:5] for w in re.split(r"[^a-z]+", relation.casefold()) if len(w) >= 5}
    return tuple(sorted(stems))


def sentence_has_cue(sentence: str, cues: Iterable[str]) -> bool:
    words = re.findall(r"[a-z]+", sentence.casefold())
    return any(w.startswith(c) for w in words for c in cues)


def find_all(name: str, text: str) -> list[tuple[int, int]]:
    """Every occurrence of `name` in `text` at word edges, ignoring case and whitespace runs."""
    parts = [re.escape(p) for p in name.split()]
    if not parts:
        return []
    pattern = re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def short_forms(name: str) -> set[str]:
    """The partial names a full name goes by: its first word and each run of its last words
    ("Guillermo del Toro" -> "Guillermo", "del Toro", "Toro"); none for a one-word name."""
    words = name.split()
    if len(words) < 2:
        return set()
    forms = {words[0], *(" ".join(words[i:]) for i in range(1, len(words)))}
    return {f for f in forms if _is_name(f)}


def _is_name(form: str) -> bool:
    words = form.split()
    last = words[-1]
    # an initial ("J.", "A.J.") or a particle is no name; the last word must be capitalized
    return (last.casefold() not in NOT_A_NAME and len(last.rstrip(".")) >= 2
            and "." not in last and last[0].isupper())


@dataclass
class _Person:
    label: str
    type: str
    mentions: list[CorefMention]


def resolve_rules(
    text: str, *, mentions: Sequence[Mention], people: frozenset[str],
    roles: Mapping[str, str],
) -> tuple[Cluster, ...]:
    """Clusters of `text` by rules, over the person mentions among `mentions` (types in
    `people`); `roles` is `role_relations(...)`. Only clusters with at least one mention that
    is not the full name are returned."""
    persons = _persons(text, mentions, people=people)
    if not persons:
        return ()
    taken: list[tuple[int, int]] = [(m.start, m.end) for p in persons for m in p.mentions]
    _add_short_forms(text, persons, taken)
    _add_anaphora(text, persons, taken, roles=roles)
    out = []
    for p in persons:
        spans = sorted(p.mentions, key=lambda m: m.start)
        if any(m.kind != "name" for m in spans):
            out.append(Cluster(canonical=p.label, type=p.type, mentions=tuple(spans),
                               found_by="rules"))
    return tuple(out)


def _persons(text: str, mentions: Sequence[Mention], *, people: frozenset[str]) -> list[_Person]:
    """One person per distinct full name that occurs in `text`; a mention that is a short form
    of exactly one other mention's name ("Nolan" beside "Christopher Nolan") is no person of
    its own (`_add_short_forms` makes it an alias)."""
    labels: dict[str, Mention] = {}
    for m in mentions:
        if m.type in people and m.label.strip():
            labels.setdefault(normalize_label(m.label), m)
    forms: dict[str, set[str]] = {}
    for key, m in labels.items():
        for f in short_forms(m.label):
            forms.setdefault(normalize_label(f), set()).add(key)
    out = []
    for key, m in labels.items():
        if len(forms.get(key, set()) - {key}) >= 1:
            continue  # a partial name of another mention, or of two (then left unresolved)
        spans = find_all(m.label.strip(), text)
        if spans:
            out.append(_Person(m.label.strip(), m.type, [
                CorefMention(s, e, text[s:e], "name") for s, e in spans]))
    return out


def _overlaps(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def _add_short_forms(text: str, persons: list[_Person], taken: list[tuple[int, int]]) -> None:
    owners: dict[str, set[int]] = {}
    for i, p in enumerate(persons):
        for f in short_forms(p.label):
            owners.setdefault(f, set()).add(i)
    full = {normalize_label(p.label) for p in persons}
    for form, who in sorted(owners.items(), key=lambda kv: -len(kv[0])):
        if len(who) != 1 or normalize_label(form) in full:
            continue  # fits two people ("Nolan": Christopher and Jonathan), or is a name itself
        person = persons[next(iter(who))]
        for s, e in find_all(form, text):
            # a name is capitalized: "will" and "rose" in running text are no mention
            if text[s].isupper() and not _overlaps((s, e), taken):
                person.mentions.append(CorefMention(s, e, text[s:e], "alias"))
                taken.append((s, e))


def _add_anaphora(text: str, persons: list[_Person], taken: list[tuple[int, int]], *,
                  roles: Mapping[str, str]) -> None:
    """Pronouns and role nouns, left to right, each to the one person mentioned before it in
    its own sentence, else in the nearest of the LOOKBACK_SENTENCES before that has one."""
    sentences = sentence_spans(text)
    events: list[tuple[int, int, MentionKind, str]] = []
    for m in _ROLE.finditer(text):
        events.append((m.start(), m.end(), "role", m.group(1).casefold()))
    for m in _PRONOUN.finditer(text):
        events.append((m.start(), m.end(), "pronoun", m.group(1).casefold()))
    genders: dict[int, set[str]] = {}
    for start, end, kind, word in sorted(events):
        if _overlaps((start, end), taken):
            continue
        who, ante = _antecedent(text, persons, sentences, start, end, appositive=kind == "role")
        if who is None or ante is None:
            continue
        if kind == "pronoun":
            gender = PRONOUNS[word]
            if genders.get(who, {gender}) != {gender}:
                continue  # "he" and "she" for one person: one of them is someone else
            genders.setdefault(who, set()).add(gender)
        elif not _role_fits(text, sentences, ante, word, roles):
            continue
        persons[who].mentions.append(CorefMention(
            start, end, text[start:end], kind,
            relation=roles.get(word) if kind == "role" else None, antecedent=ante))
        taken.append((start, end))


def _antecedent(
    text: str, persons: list[_Person], sentences: list[tuple[int, int]], start: int, end: int,
    *, appositive: bool,
) -> tuple[int | None, tuple[int, int] | None]:
    """(person index, span) the mention at `start` refers to, or (None, None)."""
    if appositive:  # "The director, Christopher Nolan, ..." names the person right after
        gap = _APPOSITIVE.match(text, end)
        after = gap.end() if gap else end
        for i, p in enumerate(persons):
            for m in p.mentions:
                if m.start == after and m.kind in ("name", "alias"):
                    return i, (m.start, m.end)
    here = next((k for k, (s, e) in enumerate(sentences) if s <= start < e), None)
    if here is None:
        return None, None
    for back in range(LOOKBACK_SENTENCES + 1):
        k = here - back
        if k < 0:
            break
        lo, hi = sentences[k][0], start if back == 0 else sentences[k][1]
        found = [(i, m) for i, p in enumerate(persons) for m in p.mentions
                 if lo <= m.start and m.end <= hi]
        if not found:
            continue
        if len({i for i, _ in found}) != 1:
            return None, None  # two people before it: precision over recall
        i, m = max(found, key=lambda im: im[1].start)
        # a pronoun's antecedent is the name it stands for (the span evidence reaches back to)
        return i, m.antecedent if m.antecedent is not None else (m.start, m.end)
    return None, None


def _role_fits(text: str, sentences: list[tuple[int, int]], ante: tuple[int, int], noun: str,
               roles: Mapping[str, str]) -> bool:
    """False when the antecedent's sentence states another role of the ontology and not this
    one ("... starring Tom Hardy. The director ..."): the director is someone else."""
    sent = next((text[s:e] for s, e in sentences if s <= ante[0] < e), "")
    own = ROLE_NOUNS[noun]
    others = {s for n, rel in roles.items() if rel != roles.get(noun) for s in ROLE_NOUNS[n]}
    return sentence_has_cue(sent, own) or not sentence_has_cue(sent, others - set(own))


def within(clusters: Sequence[Cluster], start: int, end: int) -> tuple[Cluster, ...]:
    """`clusters` seen from `text[start:end]` (one chunk): the mentions inside it, with spans
    relative to `start`; an antecedent outside the chunk is dropped. Clusters keep their names
    even with no mention in the chunk, so a tail naming the person still maps to it."""
    out = []
    for c in clusters:
        inside = []
        for m in c.mentions:
            if start <= m.start and m.end <= end:
                ante = m.antecedent
                shifted = (ante[0] - start, ante[1] - start) if ante and start <= ante[0] \
                    and ante[1] <= end else None
                inside.append(replace(m, start=m.start - start, end=m.end - start,
                                      antecedent=shifted))
        out.append(replace(c, mentions=tuple(inside)))
    return tuple(out)


def role_noun(words: str) -> str | None:
    """The role noun of a phrase such as "the director" or "the film's director", or None."""
    m = _ROLE.fullmatch(words.strip())
    return m.group(1).casefold() if m else None


def with_antecedents(mentions: Sequence[CorefMention]) -> tuple[CorefMention, ...]:
    """`mentions` (one cluster's, in text order) with each pronoun, role noun or description
    that has none pointing back at the nearest name or alias before it."""
    out: list[CorefMention] = []
    last: tuple[int, int] | None = None
    for m in mentions:
        if m.kind in ("name", "alias"):
            last = (m.start, m.end)
        elif m.antecedent is None and last is not None:
            m = replace(m, antecedent=last)
        out.append(m)
    return tuple(out)


def shifted(cluster: Cluster, offset: int) -> Cluster:
    """`cluster` with every span moved by `offset` (a chunk's clusters in its text's terms)."""
    def move(span: tuple[int, int] | None) -> tuple[int, int] | None:
        return (span[0] + offset, span[1] + offset) if span else None
    return replace(cluster, mentions=tuple(
        replace(m, start=m.start + offset, end=m.end + offset, antecedent=move(m.antecedent))
        for m in cluster.mentions))


def merged(clusters: Iterable[Cluster]) -> tuple[Cluster, ...]:
    """Clusters of one text's chunks, one per canonical name, each span once (chunks overlap);
    a span two people claim is dropped from both."""
    by_name: dict[str, list[Cluster]] = {}
    for c in clusters:
        by_name.setdefault(normalize_label(c.canonical), []).append(c)
    owner: dict[tuple[int, int], set[str]] = {}
    for key, cs in by_name.items():
        for c in cs:
            for m in c.mentions:
                owner.setdefault((m.start, m.end), set()).add(key)
    out = []
    for key, cs in by_name.items():
        spans: dict[tuple[int, int], CorefMention] = {}
        for c in cs:
            for m in c.mentions:
                if owner[(m.start, m.end)] == {key}:
                    spans.setdefault((m.start, m.end), m)
        first = cs[0]
        out.append(replace(first, mentions=tuple(sorted(spans.values(), key=lambda m: m.start))))
    return tuple(c for c in out if any(m.kind != "name" for m in c.mentions))


#: Marks a resolved pronoun or role noun in the extraction model's copy of the text.
ANNOTATION = " [{name}]"


def annotate(text: str, clusters: Sequence[Cluster]) -> str:
    """`text` with the canonical name after each resolved pronoun and role noun ("He [Christopher
    Nolan] also directed it"); names and aliases are left as written. Spans are `text`'s."""
    marks = sorted(((m.end, c.canonical) for c in clusters for m in c.mentions
                    if m.kind in ("pronoun", "role", "description")), reverse=True)
    for pos, name in marks:
        text = text[:pos] + ANNOTATION.format(name=name) + text[pos:]
    return text


def annotation_chars(clusters: Sequence[Cluster]) -> str:
    """Every annotation `annotate` would add to the whole text, joined: what a chunk's token
    budget must leave room for."""
    return "".join(ANNOTATION.format(name=c.canonical) for c in clusters for m in c.mentions
                   if m.kind in ("pronoun", "role", "description"))


def text_mentions(item_id: str, *, mentions: Iterable[Mention],
                  attributes: Mapping[str, tuple[str, ...]], ontology: Ontology) -> list[Mention]:
    """The person mentions coreference starts from for one item: `mentions` (discovery's) and
    the item's catalog values of relations to people ("directed_by": "Christopher Nolan")."""
    people = person_types(ontology)
    out = [m for m in mentions if m.type in people]
    for rel_name, values in attributes.items():
        rel = ontology.relation(rel_name)
        if rel is not None and rel.range in people:
            out += [Mention(item_id=item_id, label=v, type=rel.range, found_by="catalog",
                            evidence=v) for v in values if v.strip()]
    return out
