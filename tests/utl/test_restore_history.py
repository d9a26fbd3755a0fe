"""petcdutl snapshot restore keeps what the snapshot's store held beyond its keys:
leases and the keys attached to them, the compaction point, and - with etcdutl's
--bump-revision N --mark-compacted - moves the revision on by N and compacts there,
so clients never see a revision go back. Each restored member is the real `petcd`
console script, checked with petcdctl and the client."""

from __future__ import annotations

import json
import os

import pytest

from petcd.client import Client, EtcdError
from tests.cluster.members import Cluster
from tests.utl.tools import petcdutl, run_script

BUMP = 1000
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
WATCH_WAIT_S = 5.0


def _restore(cluster: Cluster, path, *extra: str):
    member = cluster.members[0]
    return petcdutl("snapshot", "restore", str(path), "--name", member.name,
                    "--data-dir", str(member.data_dir), "--initial-cluster",
                    cluster.initial_cluster, "--initial-cluster-token", cluster.token,
                    "--initial-advertise-peer-urls", member.peer_url, *extra)


def _petcdctl(cluster: Cluster, *args: str):
    return run_script("petcd.client.ctl.main", "--endpoints",
                      f"127.0.0.1:{cluster.members[0].client_port}", *args)


def test_leases_and_compaction_survive_a_restore_with_the_wal_elsewhere(histories, tmp_path):
    wal_dir = tmp_path / "wal-disk" / "m1"
    cluster = Cluster(tmp_path, 1, extra_args=["--wal-dir", str(wal_dir)])
    done = _restore(cluster, histories.path, "--wal-dir", str(wal_dir))
    assert done.returncode == 0, done.stderr
    data_dir = cluster.members[0].data_dir
    assert not (data_dir / "member" / "wal").exists() and any(wal_dir.iterdir())
    assert [n for n in os.listdir(tmp_path) if ".restoring-" in n] == []  # renamed into place
    cluster.start()
    try:
        cluster.wait_leader()
        with Client([f"127.0.0.1:{cluster.members[0].client_port}"]) as client:
            offline = json.loads(petcdutl("hashkv", str(histories.path), "-w", "json").stdout)
            assert client.hash_kv().hash == offline["hash"]  # the same history, served
            _check_history(client, histories)
            _check_leases(client, histories)
    finally:
        cluster.stop()


def _check_history(client: Client, histories) -> None:
    with pytest.raises(EtcdError, match=COMPACTED):
        client.get("hist", revision=histories.compact_revision - 1)
    at_compaction = client.get("hist", revision=histories.compact_revision)
    assert [kv.value for kv in at_compaction.kvs] == [b"v1"]
    now = client.get("hist")
    assert now.header.revision == histories.revision and now.kvs[0].value == b"v3"


def _check_leases(client: Client, histories) -> None:
    leased = client.get("leased-", range_end="leased.")
    assert {kv.key: kv.lease for kv in leased.kvs} == {
        b"leased-a": histories.lease_id, b"leased-b": histories.lease_id}
    ttl = client.lease_time_to_live(histories.lease_id, keys=True)
    assert ttl.grantedTTL > 0 and sorted(ttl.keys) == [b"leased-a", b"leased-b"]
    client.lease_revoke(histories.lease_id)  # its keys go with it: they are attached
    assert client.get("leased-", range_end="leased.").count == 0


def test_bump_revision_moves_the_revision_on_and_compacts_the_old_ones(histories, tmp_path):
    cluster = Cluster(tmp_path, 1)
    done = _restore(cluster, histories.path, "--bump-revision", str(BUMP), "--mark-compacted")
    assert done.returncode == 0, done.stderr
    cluster.start()
    try:
        cluster.wait_leader()
        got = _petcdctl(cluster, "get", "hist", "-w", "json")
        assert got.returncode == 0, got.stderr
        found = json.loads(got.stdout)
        assert found["header"]["revision"] == histories.revision + BUMP
        assert found["kvs"][0]["mod_revision"] == histories.revision  # keys keep theirs
        old = _petcdctl(cluster, "get", "hist", "--rev", str(histories.revision))
        assert (old.returncode, old.stderr) == (1, f"Error: {COMPACTED}\n")
        put = json.loads(_petcdctl(cluster, "put", "after", "bump", "-w", "json").stdout)
        assert put["header"]["revision"] == histories.revision + BUMP + 1
        with Client([f"127.0.0.1:{cluster.members[0].client_port}"]) as client:
            _check_old_watch_is_compacted(client, histories.revision)
    finally:
        cluster.stop()


def _check_old_watch_is_compacted(client: Client, old_revision: int) -> None:
    """A watcher resuming from the old cluster's revision is told to start over."""
    with client.watch("hist", start_revision=old_revision) as watch:
        responses = [watch.get(WATCH_WAIT_S) for _ in range(2)]
        last = [r for r in responses if r is not None][-1]
        assert (last.canceled, last.compact_revision) == (True, old_revision + BUMP)


def test_etcd_s_errors_for_the_bump_flags_and_no_half_made_data_dir_left(histories, tmp_path):
    cluster = Cluster(tmp_path, 1)
    message = "Error: --mark-compacted required if --revision-bump > 0\n"
    for extra in (["--mark-compacted"], ["--bump-revision", "5"]):
        refused = _restore(cluster, histories.path, *extra)
        assert (refused.returncode, refused.stderr) == (128, message)
    # Fails after the store is copied: the staged dir goes, no data dir appears.
    too_far = _restore(cluster, histories.path, "--bump-revision", str((1 << 63) - 1),
                       "--mark-compacted")
    assert too_far.returncode == 1 and "exceeds the largest revision" in too_far.stderr
    assert os.listdir(tmp_path) == []
    # An empty data dir is taken, as etcd takes it: the staged one replaces it.
    data_dir = cluster.members[0].data_dir
    data_dir.mkdir()
    assert _restore(cluster, histories.path).returncode == 0
    assert sorted(os.listdir(data_dir / "member")) == ["snap", "wal"]
    assert os.listdir(tmp_path) == [data_dir.name]


def test_a_wal_dir_inside_the_data_dir_is_staged_with_it(histories, tmp_path):
    data_dir = tmp_path / "m1.petcd"
    done = petcdutl("snapshot", "restore", str(histories.path), "--data-dir", str(data_dir),
                    "--wal-dir", str(data_dir / "wal-inside"))
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(data_dir)) == ["member", "wal-inside"]
    assert os.listdir(tmp_path) == [data_dir.name]
