"""Bootstrap by v3 discovery with real processes: petcd members given only
--discovery-endpoints and --discovery-token find each other through a discovery
service that is a real etcd, or a petcd, and form one cluster; a member after the
cluster is full is refused as etcd refuses it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from petcd.client import Client
from petcd.config import ids
from petcd.nodes.discovery import size_key
from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.client.petcd_server import PetcdCluster
from tests.cluster.members import ELECTION_MS, HEARTBEAT_MS, PETCD, Cluster, Member, wait_until

SIZE = 3
TOKEN = "discovery-test-token"
FULL_EXIT_TIMEOUT_S = 20.0
ANSWER_TIMEOUT_S = 30.0


def start_discovering(member: Member, endpoints: list[str], token: str = TOKEN) -> None:
    """`petcd` with its own name and URLs and the discovery flags, no --initial-cluster."""
    args = [PETCD, "--name", member.name, "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
            "--discovery-endpoints", ",".join(endpoints), "--discovery-token", token,
            "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS)]
    with open(member.log_path, "ab") as log:
        member.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)


@contextlib.contextmanager
def discovery_service(kind: str, root: Path) -> Iterator[list[str]]:
    """A one-member discovery service of `kind`, holding the size for TOKEN."""
    root.mkdir()
    service = EtcdCluster(root, members=1) if kind == "etcd" else PetcdCluster(root, members=1)
    service.start()
    try:
        with Client(service.endpoints) as client:
            client.put(size_key(TOKEN), str(SIZE))  # what the operator does first
        yield service.endpoints
    finally:
        service.stop()


@pytest.mark.parametrize("kind", ["etcd", "petcd"])
def test_members_found_by_discovery_form_one_cluster_and_a_late_one_is_refused(tmp_path, kind):
    if kind == "etcd" and not etcd_available():
        pytest.skip("etcd is not installed")
    cluster = Cluster(tmp_path / "members", SIZE + 1)
    (tmp_path / "members").mkdir()
    *founders, late = cluster.members
    with discovery_service(kind, tmp_path / "service") as endpoints:
        try:
            for member in founders:
                start_discovering(member, endpoints)
            cluster.wait_leader(ANSWER_TIMEOUT_S)
            check_one_cluster(founders)

            assert_refused(late, endpoints, TOKEN, "discovery: cluster is full")
            if kind == "etcd":  # a restart skips discovery: its IDs are its WAL's
                shutil.rmtree(late.data_dir, ignore_errors=True)
                assert_refused(late, endpoints, "no-size-put", "discovery: size key not found")
                check_restart(cluster, founders[1], endpoints)
        finally:
            cluster.stop()


def assert_refused(member: Member, endpoints: list[str], token: str, error: str) -> None:
    start_discovering(member, endpoints, token)
    assert member.proc is not None
    status = member.proc.wait(FULL_EXIT_TIMEOUT_S)
    assert status == 1, member.log_text()[-2000:]  # etcd exits 1 on a DiscoveryError
    assert f"failed to join discovery cluster ({error})" in member.log_text()
    assert not member.data_dir.joinpath("member", "wal").exists()  # nothing bootstrapped


def check_one_cluster(founders: list[Member]) -> None:
    statuses = [m.status()["header"] for m in founders]
    assert len({s["cluster_id"] for s in statuses}) == 1
    # Member IDs hash the discovery token (etcd's PeerURLsMapAndToken).
    assert [int(s["member_id"]) for s in statuses] == [
        ids.member_id([m.peer_url], TOKEN) for m in founders]
    listed = founders[2].call("/v3/cluster/member/list", {})["members"]
    assert sorted(m["name"] for m in listed) == sorted(m.name for m in founders)
    founders[0].put("found", "by discovery")
    assert founders[2].get("found") == "by discovery"


def check_restart(cluster: Cluster, member: Member, endpoints: list[str]) -> None:
    assert member.stop() == 0
    start_discovering(member, endpoints)
    assert wait_until(lambda: member.get("found") == "by discovery", ANSWER_TIMEOUT_S), \
        member.log_text()[-3000:]
    assert cluster.wait_leader(ANSWER_TIMEOUT_S) is not None
