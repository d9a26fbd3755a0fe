"""petcdutl backup (etcdutl 3.5's): a stopped member's data dir copied as a cluster of
its own, which --force-new-cluster starts as etcd documents: one member, new member
and cluster IDs, every key, and etcd's placeholder peer URL until `member update`."""

from __future__ import annotations

from tests.cluster.members import Cluster, running, wait_until
from tests.utl.tools import petcdutl

WAIT_S = 30.0
PLACEHOLDER_PEER_URL = "http://use-flag--force-new-cluster:2080"  # etcd's


def test_a_backup_starts_as_a_new_one_member_cluster_with_the_data(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "backup").mkdir()
    backup = Cluster(tmp_path / "backup", 1)
    restored = backup.members[0]  # its data dir is the backup dir
    restored.extra_args.append("--force-new-cluster")
    with running(tmp_path / "source", 3) as source:
        leader = source.wait_leader()
        for i in range(20):
            leader.put(f"k{i}", str(i))
        copied = next(m for m in source.members if m is not leader)
        assert wait_until(lambda: copied.get("k19", serializable=True) == "19", WAIT_S)
        args = ("backup", "--data-dir", str(copied.data_dir),
                "--backup-dir", str(restored.data_dir))
        refused = petcdutl(*args)
        assert refused.returncode == 1 and "in use by a running petcd member" in refused.stderr
        original = leader.call("/v3/cluster/member/list", {})
        revision = copied.status()["header"]["revision"]
        assert copied.stop() == 0
        done = petcdutl(*args)
        assert done.returncode == 0, done.stderr
    backup.start()
    try:
        assert backup.wait_leader() is restored
        assert restored.count("k") == 20 and restored.get("k7") == "7"
        assert restored.status()["header"]["revision"] == revision
        listed = restored.call("/v3/cluster/member/list", {})
        [member] = listed["members"]
        assert member["ID"] not in {m["ID"] for m in original["members"]}
        assert listed["header"]["cluster_id"] != original["header"]["cluster_id"]
        assert member["peerURLs"] == [PLACEHOLDER_PEER_URL]
        restored.call("/v3/cluster/member/update",
                      {"ID": member["ID"], "peerURLs": [restored.peer_url]})
        assert restored.call("/v3/cluster/member/list", {})["members"][0]["peerURLs"] == \
            [restored.peer_url]
        restored.put("after", "backup")
        again = petcdutl(*args)  # into the backup dir, now in use
        assert again.returncode == 1 and "not empty" in again.stderr
    finally:
        backup.stop()
