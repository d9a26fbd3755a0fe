"""The Python client against a real server: what a user of the library checks."""

from __future__ import annotations

import hashlib
import time

import grpc
import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import Client, EtcdError
from petcd.client.requests import compare, delete_op, put_op, range_op
from tests.client.tools import run
from tests.cluster.members import wait_until

DEAD_ENDPOINT = "127.0.0.1:1"


@pytest.fixture
def client(cluster):
    with Client(cluster.endpoints) as made:
        made.delete("", from_key=True)
        yield made


def _keys(resp) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def test_put_then_get_returns_the_value_and_prev_kv(client):
    first = client.put("k", "v1")
    second = client.put(b"k", b"v2", prev_kv=True)
    got = client.get("k")
    assert second.prev_kv.value == b"v1"
    assert second.header.revision == first.header.revision + 1
    assert [(kv.key, kv.value, kv.version) for kv in got.kvs] == [(b"k", b"v2", 2)]
    assert client.get("missing").kvs == []


def test_put_ignore_value_keeps_the_value(client):
    client.put("k", "kept")
    client.put("k", "", ignore_value=True)
    assert client.get("k").kvs[0].value == b"kept"
    with pytest.raises(EtcdError) as err:
        client.put("absent", "", ignore_value=True)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message == "etcdserver: key not found"


def test_ranges_prefix_from_key_limit_sort_and_counts(client):
    for key, value in (("a/1", "z"), ("a/2", "y"), ("a/3", "x"), ("b", "w")):
        client.put(key, value)
    assert _keys(client.get("a/", prefix=True)) == [b"a/1", b"a/2", b"a/3"]
    assert _keys(client.get("a/2", from_key=True)) == [b"a/2", b"a/3", b"b"]
    assert _keys(client.get("a/1", "a/3")) == [b"a/1", b"a/2"]
    limited = client.get("a/", prefix=True, limit=2)
    assert (_keys(limited), limited.more, limited.count) == ([b"a/1", b"a/2"], True, 3)
    by_value = client.get("a/", prefix=True, sort_target="value", sort_order="ascend")
    assert _keys(by_value) == [b"a/3", b"a/2", b"a/1"]
    keys_only = client.get("", prefix=True, keys_only=True)
    assert [kv.value for kv in keys_only.kvs] == [b""] * 4
    counted = client.get("a/", prefix=True, count_only=True)
    assert (counted.count, counted.kvs) == (3, [])
    assert _keys(client.get("a/", prefix=True, serializable=True)) == [b"a/1", b"a/2", b"a/3"]


def test_get_at_an_older_revision(client):
    old = client.put("r", "old").header.revision
    client.put("r", "new")
    assert client.get("r", revision=old).kvs[0].value == b"old"


def test_delete_prefix_returns_prev_kvs(client):
    client.put("d/1", "1")
    client.put("d/2", "2")
    client.put("e", "3")
    resp = client.delete("d/", prefix=True, prev_kv=True)
    assert resp.deleted == 2
    assert [(kv.key, kv.value) for kv in resp.prev_kvs] == [(b"d/1", b"1"), (b"d/2", b"2")]
    assert _keys(client.get("", from_key=True)) == [b"e"]


def test_txn_takes_the_branch_its_compares_choose(client):
    client.put("t", "1")
    won = client.txn([compare("value", "t", "=", "1"), compare("version", "t", ">", 0)],
                     [put_op("t", "2"), range_op("t")], [delete_op("t")])
    assert won.succeeded
    assert won.responses[1].response_range.kvs[0].value == b"2"
    lost = client.txn([compare("mod", "t", "<", 1)], [put_op("t", "3")],
                      [range_op("t", keys_only=True), delete_op("t", prev_kv=True)])
    assert not lost.succeeded
    assert lost.responses[1].response_delete_range.prev_kvs[0].value == b"2"
    assert client.get("t").kvs == []


def test_compacted_and_future_revisions_raise_etcds_errors(client):
    revision = client.put("c", "1").header.revision
    client.put("c", "2")
    client.compact(revision + 1, physical=True)
    with pytest.raises(EtcdError) as compacted:
        client.get("c", revision=revision)
    assert compacted.value.code == grpc.StatusCode.OUT_OF_RANGE
    assert str(compacted.value) == "etcdserver: mvcc: required revision has been compacted"
    with pytest.raises(EtcdError) as again:
        client.compact(revision)
    assert again.value.message == "etcdserver: mvcc: required revision has been compacted"
    with pytest.raises(EtcdError) as future:
        client.get("c", revision=revision + 1000)
    assert future.value.message == "etcdserver: mvcc: required revision is a future revision"


def test_snapshot_is_the_database_followed_by_its_sha256(client, tmp_path):
    client.put("s", "v")
    path = tmp_path / "snap.db"
    size = client.snapshot(str(path))
    data = path.read_bytes()
    assert size == len(data) > 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert not (tmp_path / "snap.db.part").exists()


def test_snapshot_into_a_missing_directory_raises_oserror(client, tmp_path):
    with pytest.raises(FileNotFoundError):
        client.snapshot(str(tmp_path / "no-such-dir" / "snap.db"))


def test_status_hash_member_list_and_defragment(client, cluster):
    status = client.status()
    members = client.member_list().members
    assert [m.ID for m in members] == [status.header.member_id]
    assert [m.name for m in members] == cluster.member_names
    assert status.leader == status.header.member_id
    assert status.version.startswith("3.")
    client.put("h", "1")
    first = client.hash_kv()
    assert client.hash_kv().hash == first.hash
    client.put("h", "2")
    assert client.hash_kv().hash != first.hash
    for i in range(200):
        client.put(f"bulk/{i}", "x" * 1024)
    client.delete("bulk/", prefix=True)
    client.compact(client.get("h").header.revision, physical=True)
    before = client.status().dbSize
    client.defragment(cluster.endpoints[0])
    assert client.status().dbSize < before


def test_alarms_activate_list_and_disarm(client):
    member_id = client.status().header.member_id
    client.alarm("activate", member_id, "NOSPACE")
    try:
        listed = client.alarm_list().alarms
        assert [(a.memberID, a.alarm) for a in listed] == [(member_id, pb.NOSPACE)]
        with pytest.raises(EtcdError) as err:
            client.put("blocked", "x")
        assert err.value.message == "etcdserver: mvcc: database space exceeded"
    finally:
        disarmed = client.alarm_disarm().alarms
    assert [(a.memberID, a.alarm) for a in disarmed] == [(member_id, pb.NOSPACE)]
    assert client.alarm_list().alarms == []
    client.put("allowed", "again")


def test_a_dead_first_endpoint_fails_over(cluster):
    endpoints = ",".join([DEAD_ENDPOINT, *(f"http://{e}" for e in cluster.endpoints)])
    with Client(endpoints, dial_timeout_s=1) as client:
        client.put("f", "1")
        assert client.get("f").kvs[0].value == b"1"


def test_no_reachable_endpoint_raises_within_the_dial_timeout():
    started = time.monotonic()
    with Client([DEAD_ENDPOINT], dial_timeout_s=0.5, command_timeout_s=0.5) as client:
        with pytest.raises(EtcdError) as err:
            client.get("x")
    assert time.monotonic() - started < 5
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.value.message == "context deadline exceeded"
    assert DEAD_ENDPOINT in err.value.detail


def test_move_leader_hands_leadership_to_the_target(cluster3):
    with Client(cluster3.endpoints) as client:
        leader_endpoint, status = client.leader_endpoint()
        others = [m.ID for m in client.member_list().members if m.ID != status.leader]
        client.move_leader(others[0], leader_endpoint)
        assert client.status(leader_endpoint).leader == others[0]
        with pytest.raises(EtcdError) as err:
            client.move_leader(others[1], leader_endpoint)  # no longer the leader
        assert err.value.message == "etcdserver: not leader"
        client.move_leader(others[1])  # finds the new leader itself
        assert client.leader_endpoint()[1].leader == others[1]


def test_sync_endpoints_learns_every_member_from_one(cluster3):
    """clientv3's Sync: the client URLs of the started voters replace the endpoints."""
    first = cluster3.endpoints[0]
    with Client([first]) as client:
        assert sorted(client.sync_endpoints()) == sorted(cluster3.endpoints)
        assert sorted(client.endpoints) == sorted(cluster3.endpoints)
        assert client.put("synced", "1").header.revision  # calls go on


def test_auto_sync_learns_them_in_the_background(cluster3):
    with Client([cluster3.endpoints[0]], auto_sync_interval_s=0.1) as client:
        assert wait_until(lambda: sorted(client.endpoints) == sorted(cluster3.endpoints), 10)
    with Client([cluster3.endpoints[0]]) as client:  # off by default, as in clientv3
        time.sleep(0.3)
        assert client.endpoints == (cluster3.endpoints[0],)


def test_count_only_prints_with_fields_only(cluster):
    """--count-only (etcdctl 3.5; 3.4 has no such flag) needs -w fields."""
    with Client(cluster.endpoints) as client:
        client.delete("", from_key=True)
        for key in ("n/1", "n/2", "n/3"):
            client.put(key, "v")
    counted = run("petcdctl", cluster.endpoints, ["get", "n/", "--prefix", "--count-only",
                                                  "-w", "fields"])
    assert counted.code == 0
    assert b'"Count" : 3\n' in counted.out and b'"Key"' not in counted.out
    refused = run("petcdctl", cluster.endpoints, ["get", "n/", "--prefix", "--count-only"])
    assert (refused.code, refused.out, refused.err) == (
        128, b"", b"Error: --count-only is only for `--write-out=fields`\n")


def test_environment_gives_global_flags(cluster):
    """As in etcdctl, ETCDCTL_<FLAG> sets a global flag the command line does not."""
    env = {"ETCDCTL_WRITE_OUT": "json"}
    outcome = run("petcdctl", cluster.endpoints, ["get", "missing"], env=env)
    assert outcome.code == 0 and outcome.out.startswith(b'{"header":')
