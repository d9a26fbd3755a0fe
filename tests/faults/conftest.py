"""Fixtures of the fault tests."""

from __future__ import annotations

import pytest

from tests.cluster.members import running
from tests.cluster.transports import PLAIN, Transport, tls_everywhere


@pytest.fixture
def three(tmp_path):
    with running(tmp_path, 3) as c:
        yield c


@pytest.fixture(params=["plain", "tls"])
def transport(request, tmp_path) -> Transport:
    """A test taking this runs twice: members reached in plain HTTP, and with TLS on
    every client and peer URL (tests/cluster/transports.py)."""
    if request.param == "plain":
        return PLAIN
    certs = tmp_path / "certs"
    certs.mkdir()
    return tls_everywhere(certs)
