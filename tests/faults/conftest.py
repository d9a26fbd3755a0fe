"""Fixtures of the fault tests."""

from __future__ import annotations

import pytest

from tests.cluster.members import running


@pytest.fixture
def three(tmp_path):
    with running(tmp_path, 3) as c:
        yield c
