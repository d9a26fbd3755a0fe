"""Snapshots that petcdctl snapshot save took from a real petcd member, shared by
the petcdutl tests: one member makes both (a member start is the costly part)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from petcd.client import Client
from tests.client.petcd_server import PetcdCluster
from tests.utl.tools import run_script

LEASE_TTL_S = 3600  # outlives the test: a restored lease must not expire under it


@dataclass(frozen=True, slots=True)
class Histories:
    """A snapshot with leased keys and a compacted history of `hist`:
    hist=v1 at compact_revision (the compaction), v2 at compact_revision + 1, v3 at
    revision; leased-a and leased-b under lease_id, put before the compaction."""

    path: Path
    revision: int
    compact_revision: int
    lease_id: int


@dataclass(frozen=True, slots=True)
class Origin:
    """The IDs of the cluster the snapshots were taken from."""

    cluster_id: int
    member_ids: frozenset[int]


@pytest.fixture(scope="package")
def _snapshots(tmp_path_factory) -> tuple[tuple[Path, int, int], Histories, Origin]:
    base = tmp_path_factory.mktemp("utl")
    cluster = PetcdCluster(base, 1)
    cluster.start()
    try:
        with Client(cluster.endpoints) as client:
            plain = _plain(client, cluster.endpoints[0], base / "snap.db")
            histories = _histories(client, cluster.endpoints[0], base / "histories.db")
            members = client.member_list()
            origin = Origin(members.header.cluster_id, frozenset(m.ID for m in members.members))
    finally:
        cluster.stop()
    return plain, histories, origin


def _save(endpoint: str, path: Path) -> None:
    done = run_script("petcd.client.ctl.main", "--endpoints", endpoint, "snapshot", "save",
                      str(path))
    assert done.returncode == 0, done.stderr


def _plain(client: Client, endpoint: str, path: Path) -> tuple[Path, int, int]:
    for i in range(10):
        client.put(f"key-{i}", f"value-{i}")
    client.put("key-3", "again")
    revision = client.delete("key-5").header.revision
    _save(endpoint, path)
    return path, revision, 9


def _histories(client: Client, endpoint: str, path: Path) -> Histories:
    lease_id = client.lease_grant(LEASE_TTL_S).ID
    client.put("leased-a", "a", lease=lease_id)
    client.put("leased-b", "b", lease=lease_id)
    compact_revision = client.put("hist", "v1").header.revision
    client.compact(compact_revision)
    client.put("hist", "v2")
    revision = client.put("hist", "v3").header.revision
    _save(endpoint, path)
    return Histories(path, revision, compact_revision, lease_id)


@pytest.fixture(scope="package")
def saved(_snapshots) -> tuple[Path, int, int]:
    """(snapshot file, revision, live keys) of a member after a few writes."""
    return _snapshots[0]


@pytest.fixture(scope="package")
def histories(_snapshots) -> Histories:
    return _snapshots[1]


@pytest.fixture(scope="package")
def origin(_snapshots) -> Origin:
    return _snapshots[2]
