"""petcd's Python client library (petcd.client) against a 3-member petcd cluster: the
scenarios of test_ctl.py, as a program would run them, plus endpoint failover when a
member dies; and a third-party library, python-etcd3's API (PyPI's python3-etcd3),
watching."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from petcd.client import Client, EtcdError
from petcd.client.requests import compare, put_op, range_op

from tests.cluster.members import running, wait_until

MAX_REQUEST_BYTES = 256 * 1024
WATCH_PROGRAM = Path(__file__).with_name("python_etcd3_watch.py")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running(tmp_path_factory.mktemp("library"), 3,
                 ["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as c:
        c.wait_leader()
        yield c


def _succeeds(call) -> bool:
    try:
        call()
    except EtcdError:
        return False
    return True


def _endpoints(members) -> list[str]:
    return [f"127.0.0.1:{m.client_port}" for m in members]


@pytest.fixture
def client(cluster):
    with Client(_endpoints(cluster.members), command_timeout_s=20) as c:
        yield c


def test_put_get_versions_and_history(client, cluster):
    first = client.put("lib/k", "one")
    second = client.put("lib/k", "two", prev_kv=True)
    assert second.prev_kv.value == b"one"
    assert second.header.revision == first.header.revision + 1
    for m in cluster.members:  # linearizable reads on every member see the write
        with Client(_endpoints([m])) as one:
            [kv] = one.get("lib/k").kvs
            assert (kv.value, kv.version, kv.mod_revision) == (b"two", 2, second.header.revision)
    old = client.get("lib/k", revision=first.header.revision)
    assert old.kvs[0].value == b"one"


def test_prefix_limit_count_and_delete(client):
    for i in range(5):
        client.put(f"libp/{i}", str(i))
    page = client.get("libp/", prefix=True, limit=2)
    assert ([kv.key for kv in page.kvs], page.count, page.more) == ([b"libp/0", b"libp/1"], 5, True)
    assert client.get("libp/", prefix=True, count_only=True).count == 5
    gone = client.delete("libp/", prefix=True, prev_kv=True)
    assert gone.deleted == 5 and sorted(kv.value for kv in gone.prev_kvs) == [b"0", b"1", b"2", b"3", b"4"]
    assert client.get("libp/", prefix=True).count == 0


def test_txn_branches(client):
    client.put("libt/k", "1")
    ok = client.txn([compare("value", "libt/k", "=", "1")], [put_op("libt/k", "2")],
                    [range_op("libt/k")])
    assert ok.succeeded
    no = client.txn([compare("value", "libt/k", "=", "1")], [put_op("libt/k", "3")],
                    [range_op("libt/k")])
    assert not no.succeeded and no.responses[0].response_range.kvs[0].value == b"2"


def test_errors_carry_etcds_codes_and_messages(client):
    client.put("libe/k", "a")
    old = client.get("libe/k").header.revision
    now = client.put("libe/k", "b").header.revision
    client.compact(now)
    with pytest.raises(EtcdError) as err:
        client.get("libe/k", revision=old)
    assert (err.value.code, err.value.message) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    with pytest.raises(EtcdError) as err:
        client.compact(now + 1000)
    assert err.value.message == "etcdserver: mvcc: required revision is a future revision"
    with pytest.raises(EtcdError) as err:
        client.txn(success=[put_op(f"libe/{i}", "x") for i in range(129)])
    assert (err.value.code, err.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
    with pytest.raises(EtcdError) as err:
        client.put("libe/big", b"x" * (MAX_REQUEST_BYTES + 1))
    assert err.value.message == "etcdserver: request is too large"
    assert client.get("libe/big").count == 0


def test_maintenance_and_cluster_calls(client, cluster, tmp_path):
    members = client.member_list().members
    assert sorted(m.name for m in members) == ["m1", "m2", "m3"]
    statuses = [client.status(e) for e in client.endpoints]
    assert len({s.leader for s in statuses}) == 1
    revision = client.put("libm/k", "v").header.revision
    for endpoint in client.endpoints:
        assert wait_until(lambda e=endpoint: client.status(e).header.revision >= revision, 10)
    hashes = {client.hash_kv(revision, e).hash for e in client.endpoints}
    assert len(hashes) == 1
    for endpoint in client.endpoints:
        client.defragment(endpoint)
    assert client.alarm_list().alarms == [] and client.alarm_disarm().alarms == []
    path = tmp_path / "snap.db"
    size = client.snapshot(str(path))
    data = path.read_bytes()
    assert size == len(data) and hashlib.sha256(data[:-32]).digest() == data[-32:]
    leader_endpoint, status = client.leader_endpoint()
    target = next(m.ID for m in members if m.ID != status.leader)
    client.move_leader(target, leader_endpoint)
    assert wait_until(lambda: client.status(client.endpoints[0]).leader == target, 10)


def test_python_etcd3_watches_what_another_member_writes(cluster):
    """The library in a process of its own (python_etcd3_watch.py): history from a
    revision with prev_kv, a key and a prefix watched on its one stream, and a start
    revision below a compaction refused with its RevisionCompactedError."""
    watching, writing = cluster.members[0], cluster.members[1]
    proc = subprocess.run([sys.executable, str(WATCH_PROGRAM), str(watching.client_port),
                           str(writing.client_port)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    first = seen["first"]
    assert seen["history"] == [
        ["PutEvent", "py3w/a", "1", first, None], ["PutEvent", "py3w/a", "2", first + 1, "1"],
        ["DeleteEvent", "py3w/a", "", first + 2, "2"], ["PutEvent", "py3w/b", "x", first + 3, None]]
    assert seen["live"] == [["PutEvent", "py3w/live", "v", first + 4, None]] * 2
    assert seen["compacted"] == {"compacted at": first + 5, "refused with": first + 5}


def test_reads_fail_over_when_a_member_dies(client, cluster):
    client.put("libf/k", "v")
    victim = cluster.members[0]  # the first endpoint the client tries
    victim.kill()
    try:
        assert client.get("libf/k").kvs[0].value == b"v"
        assert wait_until(lambda: _succeeds(lambda: client.put("libf/k2", "w")), 20)
    finally:
        cluster.start(victim)
        assert wait_until(lambda: victim.get("libf/k2") == "w", 30)
