"""Maintenance on a real 3-member cluster: Hash/HashKV per member, Alarm through Raft,
Defragment of one member under a concurrent write load."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.request

import pytest

from .members import Cluster, HttpError, b64, wait_until

WAIT_S = 15.0


def _applied_equal(cluster: Cluster) -> bool:
    applied = {int(m.status().get("raftAppliedIndex", "0")) for m in cluster.members}
    return len(applied) == 1


def _txn_puts(member, keys: list[str], value: str) -> dict:
    return member.call("/v3/kv/txn", {"success": [
        {"request_put": {"key": b64(k), "value": b64(value)}} for k in keys]})


def test_same_writes_give_the_same_hashkv_on_every_member(three):
    leader = three.wait_leader()
    for i in range(30):
        leader.put(f"h/{i}", f"v{i}")
    leader.call("/v3/kv/deleterange", {"key": b64("h/1")})
    revision = int(leader.put("h/last", "x")["header"]["revision"])
    leader.call("/v3/kv/compaction", {"revision": revision - 5})
    assert wait_until(lambda: _applied_equal(three), WAIT_S)
    answers = [m.call("/v3/maintenance/hashkv", {"revision": revision})
               for m in three.members]
    assert len({a["hash"] for a in answers}) == 1, answers
    assert all(int(a["compact_revision"]) == revision - 5 for a in answers), answers
    assert all(int(a["header"]["revision"]) >= revision for a in answers)
    assert len({a["header"]["member_id"] for a in answers}) == 3  # answered locally
    current = [m.call("/v3/maintenance/hashkv", {}) for m in three.members]
    assert len({a["hash"] for a in current}) == 1, current
    # A compacted or future revision is refused as etcd refuses it.
    with pytest.raises(HttpError) as err:
        leader.call("/v3/maintenance/hashkv", {"revision": revision - 10})
    assert err.value.body["message"] == "etcdserver: mvcc: required revision has been compacted"
    with pytest.raises(HttpError) as err:
        leader.call("/v3/maintenance/hashkv", {"revision": revision + 1000})
    assert err.value.body["message"] == "etcdserver: mvcc: required revision is a future revision"
    h = leader.call("/v3/maintenance/hash", {})
    assert int(h["hash"]) > 0 and int(h["header"]["revision"]) >= revision


def test_alarm_through_one_member_is_seen_and_cleared_on_every_member(three):
    leader = three.wait_leader()
    leader.put("a", "1")
    first, second = three.members[0], three.members[1]
    member_id = first.status()["header"]["member_id"]
    alarm = {"memberID": member_id, "alarm": "NOSPACE"}
    activated = first.call("/v3/maintenance/alarm", {"action": "ACTIVATE", **alarm})
    assert activated["alarms"] == [alarm]
    for m in three.members:
        assert m.call("/v3/maintenance/alarm", {"action": "GET"})["alarms"] == [alarm]
        assert wait_until(lambda m=m: "memberID:" in " ".join(m.status().get("errors", [])),
                          WAIT_S)
    with pytest.raises(HttpError) as err:
        second.put("b", "2")
    assert err.value.body["message"] == "etcdserver: mvcc: database space exceeded"
    cleared = second.call("/v3/maintenance/alarm", {"action": "DEACTIVATE", **alarm})
    assert cleared["alarms"] == [alarm]
    for m in three.members:
        assert "alarms" not in m.call("/v3/maintenance/alarm", {"action": "GET"})
    assert second.put("b", "2")["header"]["revision"]


def test_defragment_under_writes_loses_nothing_and_shrinks(three):
    leader = three.wait_leader()
    target = next(m for m in three.members if m is not leader)
    big = "x" * 4096
    for batch in range(20):
        _txn_puts(leader, [f"big/{batch}/{i}" for i in range(100)], big)
    leader.call("/v3/kv/deleterange", {"key": b64("big/"), "range_end": b64("big0")})
    revision = int(leader.put("marker", "m")["header"]["revision"])
    leader.call("/v3/kv/compaction", {"revision": revision, "physical": True})
    assert wait_until(lambda: _applied_equal(three), WAIT_S)
    before = int(target.status()["dbSize"])

    acked: list[str] = []
    stop = threading.Event()

    def write_load() -> None:
        i = 0
        while not stop.is_set() and i < 5000:
            key = f"load/{i:05d}"
            try:
                target.put(key, "v")
                acked.append(key)
            except (OSError, HttpError):
                pass
            i += 1

    writer = threading.Thread(target=write_load, daemon=True)
    writer.start()
    try:
        time.sleep(0.3)
        assert target.call("/v3/maintenance/defragment", {}, timeout_s=60) == {}
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(timeout=WAIT_S)
    assert not writer.is_alive()
    assert len(acked) > 10
    after = int(target.status()["dbSize"])
    assert after <= before, (before, after)
    assert after < 4 * 1024 * 1024, after  # the deleted 8 MB are gone from the file
    for m in three.members:
        resp = m.call("/v3/kv/range", {"key": b64("load/"), "range_end": b64("load0"),
                                       "keys_only": True})
        present = {kv["key"] for kv in resp.get("kvs", [])}
        assert {b64(k) for k in acked} <= present, m.name
    # The defragmented member keeps serving and applying.
    target.put("after", "defrag")
    assert target.get("after") == "defrag"
    assert target.get("after", serializable=True) == "defrag"


def test_snapshot_on_the_json_gateway_streams_the_store_with_its_sha256(three, tmp_path):
    """grpc-gateway's stream: one {"result": SnapshotResponse} line per message; the
    blobs make the file etcdctl would save, its last 32 bytes the SHA-256 of the rest."""
    leader = three.wait_leader()
    leader.put("snapshot/k", "v")
    member = three.members[1]
    req = urllib.request.Request(member.client_url + "/v3/maintenance/snapshot", data=b"{}")
    with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
        lines = resp.read().splitlines()
    results = [json.loads(line)["result"] for line in lines]
    data = b"".join(base64.b64decode(r.get("blob", "")) for r in results)
    remaining = [int(r.get("remaining_bytes", "0")) for r in results]  # 0 is left out
    sizes = [len(base64.b64decode(r["blob"])) for r in results]
    assert remaining[0] == len(data) - 32 - sizes[0] and remaining[-2:] == [0, 0]
    assert sizes[-1] == 32 and results[0]["header"]["member_id"]
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert b"snapshot/k" in data
