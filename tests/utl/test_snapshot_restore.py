"""petcdutl snapshot restore: one snapshot restored for each member of a new
three-member cluster gives a working cluster with the snapshot's data, its revision
and the new membership (new member and cluster IDs); a damaged file or a used data dir
is refused as etcd does."""

from __future__ import annotations

from petcd.client import Client
from tests.cluster.members import Cluster
from tests.utl.tools import petcdutl


def _restore(cluster: Cluster, member, path, *extra: str):
    return petcdutl("snapshot", "restore", str(path), "--name", member.name,
                    "--data-dir", str(member.data_dir), "--initial-cluster",
                    cluster.initial_cluster, "--initial-cluster-token", cluster.token,
                    "--initial-advertise-peer-urls", member.peer_url, *extra)


def test_three_members_restored_from_one_snapshot_serve_its_data(saved, origin, tmp_path):
    path, revision, keys = saved
    cluster = Cluster(tmp_path, 3)
    for member in cluster.members:
        done = _restore(cluster, member, path)
        assert done.returncode == 0, done.stderr
    cluster.start()
    try:
        cluster.wait_leader()
        with Client([f"127.0.0.1:{m.client_port}" for m in cluster.members]) as client:
            found = client.get("key-", range_end="key.")
            assert found.header.revision == revision and found.count == keys
            assert {kv.key: kv.value for kv in found.kvs}[b"key-3"] == b"again"
            members = client.member_list()
            assert sorted(m.name for m in members.members) == ["m1", "m2", "m3"]
            assert members.header.cluster_id != origin.cluster_id
            assert not origin.member_ids & {m.ID for m in members.members}
            assert client.put("after", "restore").header.revision == revision + 1
    finally:
        cluster.stop()


def test_a_flipped_byte_or_a_used_data_dir_is_refused(saved, tmp_path):
    path, _, _ = saved
    cluster = Cluster(tmp_path, 1)
    member = cluster.members[0]
    data = bytearray(path.read_bytes())
    data[data.index(b"value-7") + 6] ^= 0x01
    flipped = tmp_path / "flipped.db"
    flipped.write_bytes(bytes(data))
    refused = _restore(cluster, member, flipped)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: expected sha256 [")
    assert not member.data_dir.exists()
    assert _restore(cluster, member, flipped, "--skip-hash-check").returncode == 0
    again = _restore(cluster, member, path)
    assert (again.returncode, again.stderr) == (
        1, f'Error: data-dir "{member.data_dir}" not empty or could not be read\n')
