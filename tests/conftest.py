"""Suite-wide:

- A test marked `slow` (a minute of etcd's own timing verdict, a million keys) runs
  only with PETCD_SLOW=1, so that the suite fits CI's 30-minute budget; the benchmarks
  (scripts/bench-compare) measure the same things beside etcd.
- Two workers (pytest-xdist, setup.cfg's addopts; `-n 0` runs everything in one
  process) share the tests by group. The tests that time a cluster's behaviour (an
  election within its timeout, no late heartbeat, expiry rates: tests/cluster,
  tests/faults, tests/scripts) form one group and so run one at a time; every other
  file is a group of its own (its module fixtures are made once), run beside them.
  Each worker takes its ports from its own range (tests/ports.py).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

RUN_SLOW = os.environ.get("PETCD_SLOW") == "1"
ONE_AT_A_TIME = ("tests/cluster/", "tests/faults/", "tests/scripts/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set PETCD_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def group_of(nodeid: str) -> str:
    """The unit of work a worker takes whole: its file, or the one-at-a-time group."""
    path = nodeid.split("::", 1)[0]
    return "one-at-a-time" if path.startswith(ONE_AT_A_TIME) else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own --dist loadgroup needs an item's nodeid to be writable, which it is
    # no longer in pytest 9.2: the same grouping, by xdist's scope scheduler.
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)
