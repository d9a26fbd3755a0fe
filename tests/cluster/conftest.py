"""Fixtures of the real-process cluster tests."""

from __future__ import annotations

import pytest

from .members import running


@pytest.fixture
def one(tmp_path):
    with running(tmp_path, 1) as c:
        yield c


@pytest.fixture
def three(tmp_path):
    with running(tmp_path, 3) as c:
        yield c
