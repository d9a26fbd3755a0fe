"""Suite-wide: a test marked `slow` (a minute of etcd's own timing verdict, a million
keys) runs only with PETCD_SLOW=1, so that the suite fits CI's 30-minute budget; the
benchmarks (scripts/bench-compare) measure the same things beside etcd."""

from __future__ import annotations

import os

import pytest

RUN_SLOW = os.environ.get("PETCD_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set PETCD_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
