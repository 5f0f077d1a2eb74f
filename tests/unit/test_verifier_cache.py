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
    """Counts real fits."""

    def __init__(self, keys: list[LabeledTriple], settings: VerifySettings) -> None:
        self.keys, self.settings, self.count = keys, settings, 0

    def __call__(self) -> Scorer:
        self.count += 1
        return fit_scorer(self.settings.kge_scorer, self.keys, settings=self.settings, labels={})


def _fit(folder: Path, keys: list[LabeledTriple], settings: VerifySettings = SETTINGS,
         ) -> tuple[Scorer, int]:
    fits = _Fits(keys, settings)
    return cache.cached_fit(folder, keys, settings=settings, fit=fits), fits.count


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


@pytest.mark.parametrize("change", ["triple", "dim", "seed", "scorer"])
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
    else:
        settings = SETTINGS.model_copy(update={"kge_scorer": "stacked"})
    _, fits = _fit(tmp_path, keys, settings)
    assert fits == 1
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
