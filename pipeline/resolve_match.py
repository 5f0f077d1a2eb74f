"""Label matching for entity resolution: per entity type, a table of known labels that scores a
query label by exact, normalised, name-part, fuzzy (character trigrams) and embedding evidence,
and `decide`, which turns those scores into one link or none under `ResolveSettings`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kgenrich.kg.ids import normalize_label
from kgenrich.settings import ResolveSettings
from kgenrich.verification.fallback import Encoder

Reason = Literal["exact", "normalised", "name_parts", "fuzzy", "embedding", "llm"]

_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_QUOTED = re.compile(r"\"[^\"]*\"|\u201c[^\u201d]*\u201d")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# A comma before these is part of the name ("Sammy Davis, Jr."), not a "Last, First" inversion.
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "inc", "ltd", "llc", "co", "plc"})


def name_variants(label: str) -> list[str]:
    """`label` normalised (`normalize_label`) and, where they differ, without parentheses or
    quoted nicknames and with a "Last, First" inversion undone."""
    base = normalize_label(label).replace("&", " and ")
    stripped = _SPACE.sub(" ", _QUOTED.sub(" ", _PARENS.sub(" ", base))).strip(" ,")
    out = [base, stripped]
    for text in (base, stripped):
        head, sep, tail = text.partition(",")
        rest = tail.strip()
        # "Last, First [Middle]" only: a one-word surname before the comma ("Clark County,
        # Nevada" and "Durham, North Carolina" are places, not inversions)
        if sep and "," not in rest and rest and len(head.split()) == 1 \
                and len(rest.split()) <= 3 and _NON_WORD.sub("", rest) not in _SUFFIXES:
            out.append(f"{rest} {head.strip()}")
    return [v for v in dict.fromkeys(out) if v]


_SPACE = re.compile(r"\s+")


def compact_keys(label: str) -> set[str]:
    """The normalised keys of a label: each variant without spaces or punctuation."""
    return {k for v in name_variants(label) if (k := _NON_WORD.sub("", v))}


def name_tokens(label: str) -> list[tuple[str, ...]]:
    """The word tokens of each variant (punctuation dropped), for name-part matching."""
    out = []
    for v in name_variants(label):
        tokens = tuple(t for t in _NON_WORD.sub(" ", v).split() if t)
        if tokens:
            out.append(tokens)
    return list(dict.fromkeys(out))


def parts_compatible(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    """Person-name parts: both 2-4 tokens, the same last token (a word, not an initial), the
    same first token or its initial, and every other token of `short` equal to or the initial
    of a distinct middle token of `long`, in order ("S. Spielberg", "Kevin Michael Costner")."""
    if not (2 <= len(short) <= len(long) <= _MAX_NAME_TOKENS) or short == long:
        return False
    if short[-1] != long[-1] or len(short[-1]) < 2 or not _part_of(short[0], long[0]):
        return False
    j = 1
    middles = long[1:-1]
    for tok in short[1:-1]:
        while j - 1 < len(middles) and not _part_of(tok, middles[j - 1]):
            j += 1
        if j - 1 == len(middles):
            return False
        j += 1
    return True


_MAX_NAME_TOKENS = 4
#: A last token more entities of the type end with is a common word ("University", "County",
#: "music"), not a surname: name parts do not link by it.
MAX_SHARED_LAST = 8
#: A trigram in more label rows of the type than this does not propose fuzzy candidates.
MAX_POSTING = 5000


def _part_of(tok: str, full: str) -> bool:
    return tok == full or (len(tok) == 1 and full[0] == tok)


_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8",
          "ix": "9", "x": "10"}


def numbers(label: str) -> frozenset[str]:
    """The numbers a label holds (digits, or roman numerals II-X as digits): "Star Trek V" and
    "Star Trek" are two films, however alike their letters."""
    tokens = _NON_WORD.sub(" ", normalize_label(label)).split()
    return frozenset(_ROMAN.get(t, t) for t in tokens if t.isdigit() or t in _ROMAN)


def trigrams(label: str) -> frozenset[str]:
    """Character trigrams of the normalised label (roman numerals as digits), padded with one
    space on each side."""
    tokens = _NON_WORD.sub(" ", normalize_label(label)).split()
    text = f" {' '.join(_ROMAN.get(t, t) for t in tokens)} "
    return frozenset(text[i:i + 3] for i in range(len(text) - 2)) if len(text) > 2 else frozenset()


@dataclass(frozen=True)
class Scored:
    entity_id: str
    score: float


@dataclass(frozen=True)
class MatchScores:
    """What a table found for one query: entity ids per exact signal, and the best two
    distinct entities by fuzzy and by embedding score."""

    exact: tuple[str, ...] = ()
    normalised: tuple[str, ...] = ()
    name_parts: tuple[str, ...] = ()
    fuzzy: tuple[Scored, ...] = ()
    embedding: tuple[Scored, ...] = ()


@dataclass(frozen=True)
class Match:
    """One link decision: the entity, why, and the score of that evidence."""

    entity_id: str
    reason: Reason
    score: float


@dataclass(frozen=True)
class Ambiguous:
    """A pair close enough to ask the LLM about, not close enough to link unasked."""

    entity_id: str
    score: float
    signal: Literal["fuzzy", "embedding"]


def _top2(scores: dict[str, float]) -> tuple[Scored, ...]:
    best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    return tuple(Scored(e, s) for e, s in best)


@dataclass
class LabelTable:
    """The labels and aliases of one entity type, indexed for `scores`. Grows with `add`."""

    _exact: dict[str, list[str]] = field(default_factory=dict)
    _keys: dict[str, list[str]] = field(default_factory=dict)
    _by_last: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    _last_ids: dict[str, set[str]] = field(default_factory=dict)
    _grams: dict[str, list[int]] = field(default_factory=dict)
    _rows: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    _numbers: list[frozenset[str]] = field(default_factory=list)
    _texts: list[str] = field(default_factory=list)
    _vectors: np.ndarray | None = None  # rows of _texts encoded so far
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, entity_id: str, label: str) -> None:
        """Index `label` (a label or an alias) as a name of `entity_id`."""
        norm = normalize_label(label)
        if not norm or (entity_id, norm) in self._seen:
            return
        self._seen.add((entity_id, norm))
        _append(self._exact, norm, entity_id)
        for key in compact_keys(label):
            _append(self._keys, key, entity_id)
        for tokens in name_tokens(label):
            self._by_last.setdefault(tokens[-1], []).append((entity_id, tokens))
            self._last_ids.setdefault(tokens[-1], set()).add(entity_id)
        row = len(self._rows)
        grams = trigrams(label)
        self._rows.append((entity_id, grams))
        self._numbers.append(numbers(label))
        for g in grams:
            self._grams.setdefault(g, []).append(row)
        self._texts.append(label.strip())

    def scores(self, label: str, *, encoder: Encoder | None = None,
               canon: Callable[[str], str] | None = None,
               skip: Callable[[str], bool] | None = None,
               keyed_only: bool = False) -> MatchScores:
        """Every signal for `label` (`keyed_only`: exact, normalised and name parts, whose
        cost does not grow with the table), over entity ids as `canon` maps them (merged
        entities count once); entities `skip` names (rejected merges) are left out."""
        to = canon or (lambda e: e)

        def ids(found: Iterable[str]) -> list[str]:
            return [c for e in found if not (skip and skip(c := to(e)))]

        exact = ids(self._exact.get(normalize_label(label), ()))
        keyed = ids(e for k in sorted(compact_keys(label)) for e in self._keys.get(k, ()))
        parts = ids(eid for tokens in name_tokens(label)
                    if len(self._last_ids.get(tokens[-1], ())) <= MAX_SHARED_LAST
                    for eid, other in self._by_last.get(tokens[-1], ())
                    if parts_compatible(tokens, other) or parts_compatible(other, tokens))
        if keyed_only:
            return MatchScores(exact=tuple(dict.fromkeys(exact)),
                               normalised=tuple(dict.fromkeys(keyed)),
                               name_parts=tuple(dict.fromkeys(parts)))

        def ok(e: str) -> str | None:
            c = to(e)
            return None if skip and skip(c) else c

        return MatchScores(
            exact=tuple(dict.fromkeys(exact)), normalised=tuple(dict.fromkeys(keyed)),
            name_parts=tuple(dict.fromkeys(parts)), fuzzy=self._fuzzy(label, ok),
            embedding=self._embedding(label, encoder, ok) if encoder is not None else ())

    def _fuzzy(self, label: str, ok: Callable[[str], str | None]) -> tuple[Scored, ...]:
        grams = trigrams(label)
        if not grams:
            return ()
        nums = numbers(label)
        # Candidates come from the query's rarer trigrams only: a trigram most labels share
        # (" m." of a seed's opaque ids) would make every query scan the whole table. The
        # shared count itself is exact, over all trigrams.
        rows = {row for g in grams if len(posting := self._grams.get(g, ())) <= MAX_POSTING
                for row in posting}
        shared = {row: len(grams & self._rows[row][1]) for row in rows}
        best: dict[str, float] = {}
        for row, n in shared.items():
            found, other = self._rows[row]
            eid = ok(found)
            if eid is None or self._numbers[row] != nums:
                continue
            s = n / math.sqrt(len(grams) * len(other))  # cosine of binary trigram sets
            if s > best.get(eid, -1.0):
                best[eid] = s
        return _top2(best)

    def encode_pending(self, encoder: Encoder) -> None:
        """Encode the texts added since the last call (one batch)."""
        done = 0 if self._vectors is None else len(self._vectors)
        if done < len(self._texts):
            new = encoder.encode(self._texts[done:])
            self._vectors = new if self._vectors is None else np.vstack([self._vectors, new])

    def _embedding(self, label: str, encoder: Encoder,
                   ok: Callable[[str], str | None]) -> tuple[Scored, ...]:
        if not self._texts:
            return ()
        self.encode_pending(encoder)
        assert self._vectors is not None
        sims = self._vectors @ encoder.encode([label.strip()])[0]
        nums = numbers(label)
        best: dict[str, float] = {}
        # only the best few rows matter: the top two entities are among them
        top = np.argpartition(-sims, 16)[:16] if len(sims) > 16 else np.arange(len(sims))
        for row in top:
            eid = ok(self._rows[int(row)][0])
            sim = float(sims[row])
            if eid is not None and self._numbers[int(row)] == nums and sim > best.get(eid, -2.0):
                best[eid] = sim
        return _top2(best)


def _append(table: dict[str, list[str]], key: str, value: str) -> None:
    ids = table.setdefault(key, [])
    if value not in ids:
        ids.append(value)


def decide(scores: MatchScores, *, settings: ResolveSettings) -> Match | Ambiguous | None:
    """The link `scores` justify, strongest evidence first; an exact or normalised key shared
    by several entities (homonyms) links none of them by key: the fuzzy and embedding margins
    then cannot separate them either, so the pair is at most ambiguous."""
    if len(scores.exact) == 1:
        return Match(scores.exact[0], "exact", 1.0)
    if not settings.enabled:
        return None
    if len(scores.normalised) == 1 and not scores.exact:
        return Match(scores.normalised[0], "normalised", 1.0)
    if settings.name_parts and len(scores.name_parts) == 1 and not scores.exact \
            and not scores.normalised:
        return Match(scores.name_parts[0], "name_parts", _best(scores.fuzzy, scores.name_parts[0]))
    ambiguous: Ambiguous | None = None
    for signal, ranked, accept in (("fuzzy", scores.fuzzy, settings.fuzzy_accept),
                                   ("embedding", scores.embedding, settings.embed_accept)):
        if not ranked or (signal == "embedding" and not settings.embed):
            continue
        top = ranked[0]
        gap = top.score - (ranked[1].score if len(ranked) > 1 else 0.0)
        if top.score >= accept and gap >= settings.margin:
            return Match(top.entity_id, "fuzzy" if signal == "fuzzy" else "embedding", top.score)
        if top.score >= settings.ambiguous_from and (
                ambiguous is None or top.score > ambiguous.score):
            ambiguous = Ambiguous(top.entity_id, top.score,
                                  "fuzzy" if signal == "fuzzy" else "embedding")
    return ambiguous


def _best(ranked: Sequence[Scored], entity_id: str) -> float:
    return next((s.score for s in ranked if s.entity_id == entity_id), 1.0)
