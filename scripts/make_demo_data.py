"""Write the demo catalog, seed KG and answer key in data/demo/ from bokeh-sampledata's movies.db.

movies.db holds 17,472 Wikidata films (CC0). We take the most-reviewed films, keep part of their
facts as catalog columns and a seed KG, and hide the rest as the demo's answer key: the pipeline
must complete the hidden facts, and the demo scores its answers against the key.
The description column is written here from Wikidata facts (the source has no plot text), so
relation extraction has real spans to ground its evidence in.

Run: .venv/bin/pip install --no-deps bokeh-sampledata==2026.1
     .venv/bin/python scripts/make_demo_data.py
"""

from __future__ import annotations

import csv
import random
import sqlite3
from pathlib import Path

from bokeh_sampledata.movies_data import movie_path  # type: ignore[import-not-found]

OUT = Path(__file__).resolve().parent.parent / "data" / "demo"
N_FILMS = 60
SEED = 7


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def main() -> None:
    con = sqlite3.connect(movie_path)
    rows = con.execute(
        "select o.ID, o.Title, o.Year, o.Genre, o.Director, o.Writer, o.Cast, o.Language,"
        " o.Country, t.Reviews from omdb o join tomatoes t on o.ID = t.ID"
        " where o.Director != '' and o.Genre != '' and o.Cast != '' and o.Year >= 1970"
        " and t.Reviews is not null order by t.Reviews desc, o.ID limit ?",
        (N_FILMS,),
    ).fetchall()
    rng = random.Random(SEED)
    rng.shuffle(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    catalog, seed, key = [], [], []
    for i, (wid, title, year, genre, director, writer, cast, lang, country, _) in enumerate(rows):
        item_id = f"wd{wid}"
        genres, directors, writers = split(genre), split(director), split(writer)
        actors, langs, countries = split(cast), split(lang), split(country)
        hide_director = i % 2 == 0  # half the films lose their director: the completion task
        hide_genre = i % 3 == 0  # a third lose their genres
        lead = ", ".join(actors[:2])
        text = f"A {year} film starring {lead}."
        if writers and i % 4 != 1:
            text += f" Written by {writers[0]}."
        catalog.append(
            {
                "id": item_id,
                "title": title,
                "year": year,
                "description": text,
                "genre": "" if hide_genre else "|".join(genres),
                "country": "|".join(countries),
                "language": "|".join(langs),
            }
        )
        for d in directors:
            (key if hide_director else seed).append((item_id, "directed_by", d))
        if hide_genre:
            key.extend((item_id, "has_genre", g) for g in genres)
        # Cast beyond the leads stays in the seed KG so Person entities exist to choose from.
        seed.extend((item_id, "starring", a) for a in actors[2:6])
    with (OUT / "catalog.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(catalog[0]))
        w.writeheader()
        w.writerows(catalog)
    # Seed heads are entity ids (`item/<id>`) so they meet the catalog's item nodes; the key
    # keeps plain catalog ids.
    with (OUT / "seed.tsv").open("w", encoding="utf-8") as f:
        f.write("head\trelation\ttail\n")
        f.writelines(f"item/{h}\t{r}\t{t}\n" for h, r, t in seed)
    with (OUT / "answer_key.tsv").open("w", encoding="utf-8") as f:
        f.write("head\trelation\ttail\n")
        f.writelines(f"{h}\t{r}\t{t}\n" for h, r, t in key)
    print(f"{len(catalog)} films, {len(seed)} seed triples, {len(key)} hidden facts -> {OUT}")


if __name__ == "__main__":
    main()
