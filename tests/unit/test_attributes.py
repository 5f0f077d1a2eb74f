"""Attribute evidence (verification/attributes.py): constant rules, log-odds, leave-one-out."""

from __future__ import annotations

import numpy as np
import pytest

from kgenrich.verification.attributes import ATTRIBUTE_FEATURE_NAMES, AttributeStats

COL = {name: i for i, name in enumerate(ATTRIBUTE_FEATURE_NAMES)}


def _people() -> list[tuple[str, str, str]]:
    # five singer-songwriters, one singer only, three politicians
    train = []
    for i in range(5):
        train += [(f"p{i}", "occupation", "singer"), (f"p{i}", "occupation", "songwriter")]
    train.append(("p5", "occupation", "singer"))
    for i in range(6, 9):
        train.append((f"p{i}", "occupation", "politician"))
    return train


def test_constant_rule_confidence_is_support_over_body_count() -> None:
    stats = AttributeStats.fit(_people(), min_support=2)
    x = stats.features([("p5", "occupation", "songwriter")])
    # songwriter <- singer: 5 of the 6 singers are songwriters
    assert x[0, COL["head_const_rule_max"]] == pytest.approx(5 / 6)
    assert x[0, COL["head_log_const_rules"]] == pytest.approx(np.log(2))
    assert x[0, COL["head_attr_log_odds_sum"]] > 0


def test_log_odds_carry_negative_evidence() -> None:
    stats = AttributeStats.fit(_people(), min_support=2)
    x = stats.features([("p5", "occupation", "songwriter"), ("p6", "occupation", "songwriter")])
    # no rule fires for a politician, and being one makes "songwriter" rarer than its base rate
    assert x[1, COL["head_const_rule_max"]] == 0.0
    assert x[1, COL["head_attr_log_odds_min"]] < 0
    assert x[1, COL["head_attr_log_odds_sum"]] < x[0, COL["head_attr_log_odds_sum"]]


def test_a_training_fact_is_scored_leave_one_out() -> None:
    train = _people()
    fact = ("p0", "occupation", "songwriter")
    with_fact = AttributeStats.fit(train).features([fact])
    without = AttributeStats.fit([t for t in train if t != fact]).features([fact])
    np.testing.assert_allclose(with_fact, without)


def test_unseen_labels_give_zeros_and_bad_settings_fail() -> None:
    stats = AttributeStats.fit(_people())
    x = stats.features([("ghost", "occupation", "singer"), ("p0", "haunts", "p1")])
    assert (x == 0).all()
    with pytest.raises(ValueError):
        AttributeStats.fit(_people(), alpha=0)
