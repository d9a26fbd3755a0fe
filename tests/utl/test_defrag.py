"""petcdutl defrag --data-dir: etcdutl's offline defragment of a stopped member's
store. It refuses the data dir of a running member (which holds its run dir's lock),
and on a stopped one gives a file no larger, with the same data, that the member
starts from again."""

from __future__ import annotations

from petcd.client import Client
from petcd.client.utl.defrag import store_dir
from petcd.storage.mvcc import MvccStore
from tests.cluster.members import Cluster
from tests.utl.tools import petcdutl

BIG_VALUE = "x" * 50_000
BIG_KEYS = 20  # about 1 MB written then deleted and compacted: pages to give back


def _contents(data_dir) -> tuple[int, int, int, list]:
    """What a member serves from the store: its hash covers every key revision."""
    with MvccStore.open(str(store_dir(data_dir)), readonly=True) as store:
        return (store.hash(), store.current_revision(), store.compact_revision(),
                store.leases())


def _file_bytes(data_dir) -> int:
    with MvccStore.open(str(store_dir(data_dir)), readonly=True) as store:
        return store.db_size_bytes()


def _free_pages(client: Client) -> int:
    for i in range(BIG_KEYS):
        client.put(f"big-{i}", BIG_VALUE)
    revision = client.delete("big-", range_end="big.").header.revision
    client.compact(revision)
    return client.put("kept", "yes").header.revision


def test_a_running_member_is_refused_a_stopped_one_defragmented(saved, tmp_path):
    path, _, _ = saved
    cluster = Cluster(tmp_path, 1)
    member = cluster.members[0]
    restored = petcdutl("snapshot", "restore", str(path), "--name", member.name,
                        "--data-dir", str(member.data_dir), "--initial-cluster",
                        cluster.initial_cluster, "--initial-cluster-token", cluster.token,
                        "--initial-advertise-peer-urls", member.peer_url)
    assert restored.returncode == 0, restored.stderr
    cluster.start()
    try:
        cluster.wait_leader()
        with Client([f"127.0.0.1:{member.client_port}"]) as client:
            revision = _free_pages(client)
        busy = petcdutl("defrag", "--data-dir", str(member.data_dir))
        assert busy.returncode == 1 and busy.stderr.startswith(
            f"Error: Failed to defragment etcd data[{member.data_dir}] ("), busy.stderr
        assert "in use by a running petcd member" in busy.stderr
    finally:
        cluster.stop()
    before, before_bytes = _contents(member.data_dir), _file_bytes(member.data_dir)
    done = petcdutl("defrag", "--data-dir", str(member.data_dir))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "finished defragmenting directory" in done.stderr
    assert _contents(member.data_dir) == before and before[1] == revision
    assert _file_bytes(member.data_dir) < before_bytes
    cluster.start()
    try:
        cluster.wait_leader()
        assert member.get("kept") == "yes" and member.count("key-") == 9
    finally:
        cluster.stop()


def test_etcd_s_messages_for_a_missing_flag_or_store(tmp_path):
    none = petcdutl("defrag")
    assert (none.returncode, none.stderr) == (1, 'Error: required flag(s) "data-dir" not set\n')
    missing = petcdutl("defrag", "--data-dir", str(tmp_path))
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: Failed to defragment etcd data[{tmp_path}] "
           f"(stat {tmp_path}/member/snap/db: no such file or directory)\n")
    (tmp_path / "member" / "snap" / "db").mkdir(parents=True)
    empty = petcdutl("defrag", "--data-dir", str(tmp_path))
    assert empty.returncode == 1 and "is not a petcd store (no CURRENT)" in empty.stderr
    assert list((tmp_path / "member" / "snap" / "db").iterdir()) == []  # nothing made
