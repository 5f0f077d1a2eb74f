"""Every flow test runs under Prefect's test harness (`prefect_harness` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _flows_under_prefect_harness(prefect_harness: None) -> None:
    pass
