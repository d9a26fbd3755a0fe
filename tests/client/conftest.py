"""Fixtures: clusters of each server kind the client is tested against.

Every test taking `cluster` or `cluster3` runs against a real etcd and against petcd
(same interface: start, stop, reset, endpoints, member_names): petcdctl must print
what etcdctl prints on either server.
"""

from __future__ import annotations

import pytest

from petcd.client import Client
from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.client.petcd_server import PetcdCluster

SERVER_KINDS = {"etcd": EtcdCluster, "petcd": PetcdCluster}


def _cluster(kind: str, tmp_path_factory, members: int):
    if not etcd_available():  # etcdctl is the reference on both kinds
        pytest.skip("/usr/bin/etcd and /usr/bin/etcdctl are needed (Debian etcd-server, "
                    "etcd-client)")
    cluster = SERVER_KINDS[kind](tmp_path_factory.mktemp(f"{kind}{members}"), members)
    cluster.start()
    return cluster


@pytest.fixture(scope="module", params=sorted(SERVER_KINDS))
def cluster(request, tmp_path_factory):
    """A one-member cluster, shared by a module's tests."""
    made = _cluster(request.param, tmp_path_factory, 1)
    yield made
    made.stop()


@pytest.fixture(scope="module", params=sorted(SERVER_KINDS))
def cluster3(request, tmp_path_factory):
    """A three-member cluster, shared by a module's tests."""
    made = _cluster(request.param, tmp_path_factory, 3)
    yield made
    made.stop()


@pytest.fixture
def client(cluster):
    """A client of `cluster`'s members, closed after the test."""
    with Client(cluster.endpoints) as made:
        yield made
