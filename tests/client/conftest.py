"""Fixtures: clusters of each server kind the client is tested against.

Only real etcd exists as a gRPC server for now; a petcd kind (same interface as
EtcdCluster: start, stop, reset, endpoints, member_names) joins SERVER_KINDS once
petcd serves etcd's gRPC API, and every test here then runs against it too.
"""

from __future__ import annotations

import pytest

from tests.client.etcd_server import EtcdCluster, etcd_available

SERVER_KINDS = {"etcd": EtcdCluster}


def _cluster(kind: str, tmp_path_factory, members: int):
    if kind == "etcd" and not etcd_available():
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
