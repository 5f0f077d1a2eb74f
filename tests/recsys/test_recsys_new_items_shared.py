"""The new-item protocol on MovieLens-100K with its named gold KG (../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.io.interactions import read_interaction_table
from kgenrich.kg.io.seed import read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.recsys.data import load_recbole
from kgenrich.recsys.kg_ids import index_triples
from kgenrich.recsys.protocol import kg_variants, new_item_split

ML = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"
ONTOLOGY = Path(__file__).resolve().parents[2] / "data" / "ontology" / "movies.json"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not ML.is_dir(), reason=f"shared data not found at {ML}"),
]


def test_ml100k_new_item_split_and_hidden_gold_kg() -> None:
    tokens = [str(t) for t in np.unique(np.array(read_interaction_table(ML / "ml-100k.inter")
                                                 .items))]
    data = load_recbole(ML / "ml-100k.inter", rating_threshold=4.0, seed=0)
    seed = read_seed(ML / "imdb_auxiliary.txt", format="auxiliary",
                     ontology=load_ontology(ONTOLOGY), on_error="skip")
    kg = index_triples([t.key for t in seed.triples],
                       item_index={item_entity_id(t): i for i, t in enumerate(tokens)})
    assert data.n_items == len(tokens) == 1682
    assert kg.rows.shape[0] == len(seed.triples) and kg.skipped == 0
    assert kg.relations == ("directed_by", "has_genre", "starring")
    assert (kg.rows[:, 0] < data.n_items).all() and (kg.rows[:, 2] >= data.n_items).all()

    split = new_item_split(data.ratings, seed=1)
    pos = np.bincount(data.ratings[data.ratings[:, 2] == 1, 1], minlength=data.n_items)
    assert split.new_items.size == round(0.2 * int((pos >= 5).sum()))
    assert not split.is_new(data.ratings[split.split.train, 1]).any()
    kgs, hidden = kg_variants(kg.rows, new_items=split.new_items, hide_fraction=0.5, seed=1)
    assert hidden.hidden_groups.shape[0] == round(0.5 * hidden.n_groups)
    assert split.is_new(hidden.hidden[:, 0]).all()
    assert kgs["c"].shape[0] == kg.rows.shape[0] - hidden.hidden.shape[0]
