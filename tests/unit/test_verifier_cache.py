"""The verifier cache (verification/cache.py): an unchanged trusted graph with unchanged fit
settings loads the previous fit, scoring exactly as the fresh one did; any change refits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from kgenrich.settings import VerifySettings
from kgenrich.verification import cache
from kgenrich.verification.scorers import Scorer, fit_scorer
from kgenrich.verification.triples import LabeledTriple

SETTINGS = VerifySettings(model="TransE", dim=8, epochs=3, kge_scorer="calibrated")


def _graph(n: int = 60) -> list[LabeledTriple]:
    return [(f"m{i}", "has_genre", f"g{i % 4}") for i in range(n)] + [
        (f"m{i}", "directed_by", f"p{i % 7}") for i in range(n)]


class _Fits:
    """Counts real fits and records what each warm-started from."""

    def __init__(self, keys: list[LabeledTriple], settings: VerifySettings) -> None:
        self.keys, self.settings, self.count = keys, settings, 0
        self.previous: list[Scorer | None] = []

    def __call__(self, previous: Scorer | None = None) -> Scorer:
        self.count += 1
        self.previous.append(previous)
        return fit_scorer(self.settings.kge_scorer, self.keys, settings=self.settings, labels={},
                          previous=previous)


def _fit(folder: Path, keys: list[LabeledTriple], settings: VerifySettings = SETTINGS,
         ) -> tuple[Scorer, int]:
    scorer, fits = _fits(folder, keys, settings)
    return scorer, fits.count


def _fits(folder: Path, keys: list[LabeledTriple], settings: VerifySettings = SETTINGS,
          ) -> tuple[Scorer, _Fits]:
    fits = _Fits(keys, settings)
    return cache.cached_fit(folder, keys, settings=settings, fit=fits), fits


def test_an_unchanged_graph_loads_the_previous_fit_and_scores_identically(
    tmp_path: Path,
) -> None:
    keys = _graph()
    fresh, n1 = _fit(tmp_path, keys)
    again, n2 = _fit(tmp_path, list(reversed(keys)))  # order does not matter to the fit
    assert (n1, n2) == (1, 0)
    probe = keys[:10] + [("m1", "has_genre", "g3")]
    np.testing.assert_array_equal(again.probability(probe), fresh.probability(probe))
    assert again.metrics["cached"] == 1.0 and fresh.metrics.get("cached", 0.0) == 0.0
    assert again.metrics["seconds"] < fresh.metrics["seconds"]  # the load, not the training


@pytest.mark.parametrize("change", ["triple", "dim", "seed", "scorer", "training"])
def test_any_input_of_the_fit_changes_the_key(tmp_path: Path, change: str) -> None:
    keys = _graph()
    _fit(tmp_path, keys)
    settings = SETTINGS
    if change == "triple":
        keys = [*keys, ("m0", "directed_by", "p3")]
    elif change == "dim":
        settings = SETTINGS.model_copy(update={"dim": 16})
    elif change == "seed":
        settings = SETTINGS.model_copy(update={"seed": 1})
    elif change == "training":
        settings = SETTINGS.model_copy(update={"training": "slcwa"})
    else:
        settings = SETTINGS.model_copy(update={"kge_scorer": "stacked"})
    _, fits = _fits(tmp_path, keys, settings)
    assert fits.count == 1
    # a changed setting is a cold fit; one more triple of 121 is a warm start
    assert (fits.previous[0] is not None) == (change == "triple")
    assert len(list(tmp_path.glob(f"*{cache.SUFFIX}"))) == 1  # only the latest is kept


def test_settings_that_act_after_the_fit_keep_the_key() -> None:
    keys = _graph()
    after = SETTINGS.model_copy(update={"review_band": (0.3, 0.7), "combiner": "learned",
                                        "text_fallback": False})
    assert cache.fit_key(keys, settings=after) == cache.fit_key(keys, settings=SETTINGS)


def test_a_corrupt_entry_is_a_warning_and_a_refit(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    keys = _graph()
    _fit(tmp_path, keys)
    (entry,) = tmp_path.glob(f"*{cache.SUFFIX}")
    entry.write_bytes(entry.read_bytes()[:100])  # a half-written file
    with caplog.at_level(logging.WARNING):
        scorer, fits = _fit(tmp_path, keys)
    assert fits == 1 and "unreadable" in caplog.text
    assert np.isfinite(scorer.probability(keys[:3])).all()


def test_a_small_change_warm_starts_from_the_cached_fit(tmp_path: Path) -> None:
    keys = _graph()
    first, _ = _fit(tmp_path, keys)
    more = [*keys, ("m100", "has_genre", "g1"), ("m100", "directed_by", "p2")]
    warm, fits = _fits(tmp_path, more)
    (previous,) = fits.previous
    assert previous is not None
    assert previous.probability(keys[:5]).tolist() == first.probability(keys[:5]).tolist()
    assert warm.metrics["warm start"] == 1.0
    assert warm.metrics["changed share"] == pytest.approx(2 / len(more))
    assert warm.knows("m100", "has_genre", "g1")  # the new item got its rows
    again, n = _fit(tmp_path, more)  # and the warm fit is the cached one now
    assert n == 0 and again.metrics["warm start"] == 1.0


@pytest.mark.parametrize("why", ["too much changed", "warm start off"])
def test_a_large_change_or_warm_start_off_trains_from_scratch(tmp_path: Path, why: str) -> None:
    keys = _graph()
    _fit(tmp_path, keys)
    settings = SETTINGS
    if why == "too much changed":
        keys = keys[:100]  # 20 of 120 removed: 20% > warm_max_change 10%
    else:
        keys = keys[:-1]
        settings = SETTINGS.model_copy(update={"warm_start": False})
    scorer, fits = _fits(tmp_path, keys, settings)
    assert fits.previous == [None] and scorer.metrics["warm start"] == 0.0


def test_change_share_counts_added_and_removed() -> None:
    old = frozenset(_graph(10))
    new = frozenset([*_graph(9), ("x", "has_genre", "g0")])
    assert cache.change_share(old, new) == pytest.approx(3 / 19)
    assert cache.change_share(old, frozenset()) == 1.0
