"""The space quota on a real 3-member cluster with a tiny --quota-backend-bytes: the put
that does not fit fails with etcd's error and raises NOSPACE on every member; then only
reads, deletes, compaction, defragment and alarm calls work, until deletes + compaction
+ defragment + disarm make room again. Nothing acknowledged is lost."""

from __future__ import annotations

import pytest

from .members import Cluster, HttpError, b64, running, unb64, wait_until

QUOTA_BYTES = 512 * 1024
VALUE = "x" * 4000  # ~ one LMDB page a put: the quota is reached in about 120 puts
MAX_PUTS = 1000
WAIT_S = 15.0
NO_SPACE = "etcdserver: mvcc: database space exceeded"
NO_SPACE_BODY = {"error": NO_SPACE, "code": 8, "message": NO_SPACE}


@pytest.fixture
def three(tmp_path):
    with running(tmp_path, 3, ["--quota-backend-bytes", str(QUOTA_BYTES)]) as c:
        yield c


def _alarms(member) -> list[dict]:
    return member.call("/v3/maintenance/alarm", {"action": "GET"}).get("alarms", [])


def _fill(cluster: Cluster) -> tuple[dict[str, str], HttpError]:
    """Puts spread over the members until one is refused: (acknowledged, the refusal)."""
    acked: dict[str, str] = {}
    for i in range(MAX_PUTS):
        key, value = f"q/{i:05d}", f"{i}{VALUE}"
        try:
            cluster.members[i % 3].put(key, value)
        except HttpError as err:
            return acked, err
        acked[key] = value
    raise AssertionError(f"{MAX_PUTS} puts of {len(VALUE)} bytes fit a {QUOTA_BYTES}-byte quota")


def _refused(fn) -> HttpError:
    with pytest.raises(HttpError) as err:
        fn()
    return err.value


def _same_applied(cluster: Cluster) -> bool:
    return len({m.status()["raftAppliedIndex"] for m in cluster.members}) == 1


def _values(member, prefix: str) -> dict[str, str]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    resp = member.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end),
                                        "serializable": True})
    return {unb64(kv["key"]): unb64(kv["value"]) for kv in resp.get("kvs", [])}


def test_quota_raises_nospace_on_every_member_and_disarm_after_defragment_restores_puts(three):
    three.wait_leader()
    acked, refusal = _fill(three)
    assert refusal.status == 429 and refusal.body == NO_SPACE_BODY
    assert len(acked) > 50  # the quota, not LMDB's map (quota + 256 MiB), stopped puts

    # The alarm went through Raft: every member lists it, reports it, and is unhealthy.
    for m in three.members:
        assert wait_until(lambda m=m: _alarms(m), WAIT_S), m.name
    alarms = _alarms(three.members[0])
    assert {a["alarm"] for a in alarms} == {"NOSPACE"}
    member_ids = {m.status()["header"]["member_id"] for m in three.members}
    assert {a["memberID"] for a in alarms} <= member_ids
    for m in three.members:
        errors = m.status().get("errors", [])
        assert any("alarm:NOSPACE" in e for e in errors), (m.name, errors)
        assert m.get_json("/health") == (503, {"health": "false", "reason": "ALARM NOSPACE"})
        assert m.get_json("/health?exclude=NOSPACE")[0] == 200

    # Armed: writes that add data fail on every member; reads and deletes work.
    last = max(acked)
    for i, m in enumerate(three.members):
        assert _refused(lambda m=m: m.put("after/alarm", "v")).body == NO_SPACE_BODY
        txn = {"success": [{"request_put": {"key": b64("after/txn"), "value": b64("v")}}]}
        assert _refused(lambda m=m, txn=txn: m.call("/v3/kv/txn", txn)).body == NO_SPACE_BODY
        assert m.get(last) == acked[last]
        m.call("/v3/kv/deleterange", {"key": b64(f"q/{i:05d}")})
        del acked[f"q/{i:05d}"]
    assert {a["alarm"] for a in _alarms(three.members[1])} == {"NOSPACE"}
    assert wait_until(lambda: _same_applied(three), WAIT_S)
    for m in three.members:
        stored = _values(m, "q/")
        assert {k: stored.get(k) for k in acked} == acked, m.name  # nothing acknowledged lost
        assert m.get("after/alarm", serializable=True) is None

    # Make room: delete most keys, compact, defragment every member, then disarm.
    kept = {k: v for k, v in acked.items() if int(k[2:]) % 4 == 3}
    for key in acked.keys() - kept.keys():
        three.members[0].call("/v3/kv/deleterange", {"key": b64(key)})
    revision = int(three.members[1].call("/v3/kv/range", {"key": b64("q/")})["header"]["revision"])
    three.members[2].call("/v3/kv/compaction", {"revision": revision})
    assert wait_until(lambda: _same_applied(three), WAIT_S)
    for m in three.members:
        before = int(m.status()["dbSize"])
        m.call("/v3/maintenance/defragment", {}, timeout_s=60)
        assert int(m.status()["dbSize"]) < min(before, QUOTA_BYTES // 2), m.name
    assert _refused(lambda: three.members[0].put("still/armed", "v")).body == NO_SPACE_BODY
    for alarm in _alarms(three.members[0]):  # etcdctl alarm disarm
        three.members[1].call("/v3/maintenance/alarm", {"action": "DEACTIVATE", **alarm})

    for m in three.members:
        assert _alarms(m) == []
        assert m.get_json("/health") == (200, {"health": "true", "reason": ""})
        assert "errors" not in m.status()
        m.put(f"after/{m.name}", "v")
    assert wait_until(lambda: _same_applied(three), WAIT_S)
    for m in three.members:
        stored = _values(m, "q/")
        assert {k: v for k, v in stored.items() if k in acked} == kept, m.name
        assert len(_values(m, "after/")) == 3
