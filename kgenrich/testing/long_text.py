"""A long film description with three facts, at its start, middle and end, between sentences
of plot that name nobody: for tests of reading texts longer than a model's context."""

from __future__ import annotations

import random

#: where -> (sentence, relation, tail, tail type)
FACTS: dict[str, tuple[str, str, str, str]] = {
    "start": ("It was directed by Ridley Scott.", "directed_by", "Ridley Scott", "Person"),
    "middle": ("The cast is led by Sigourney Weaver.", "starring", "Sigourney Weaver",
               "Person"),
    "end": ("It was produced in the United Kingdom.", "country_of_origin", "United Kingdom",
            "Country"),
}
_SUBJECTS = ("The crew", "The captain", "The engineer", "The navigator", "The ship's computer",
             "A stowaway", "The science officer", "The whole team", "Nobody on board")
_VERBS = ("hears", "follows", "ignores", "repairs", "searches", "seals", "fears", "studies",
          "reports", "loses")
_OBJECTS = ("a faint signal from the moon", "the cargo hold", "the cooling vents",
            "a cracked window in the hull", "the emergency lights", "the long corridor",
            "the silent engine room", "a message from the company", "the frozen sleep pods",
            "the storm outside")
_TAILS = ("before the night shift ends.", "while the alarm keeps ringing.",
          "and says nothing about it.", "for the third time that week.",
          "without asking anyone.", "as the orbit slowly decays.")


def long_description(chars: int = 30_000, *, seed: int = 7) -> str:
    """About `chars` characters of plot, with FACTS' sentences first, in the middle and last."""
    rng = random.Random(seed)
    filler: list[str] = []
    size = sum(len(f[0]) + 1 for f in FACTS.values())
    while size < chars:
        sentence = " ".join((rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS),
                             rng.choice(_TAILS)))
        filler.append(sentence)
        size += len(sentence) + 1
    half = len(filler) // 2
    return " ".join([FACTS["start"][0], *filler[:half], FACTS["middle"][0], *filler[half:],
                     FACTS["end"][0]])
