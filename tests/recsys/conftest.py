"""Shared setup for the recommender tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny models: extra intra-op threads only add synchronization, and on a busy machine
    # (CI runners, shared dev boxes) oversubscription made these tests 15x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
