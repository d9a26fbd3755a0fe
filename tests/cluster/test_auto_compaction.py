"""--auto-compaction-mode revision | periodic on a real 3-member cluster: the leader
proposes the compaction through Raft, so an old revision becomes unreadable on every
member while the current data stays. Revision mode's 5-minute check is shortened with
the test-only PETCD_COMPACTOR_INTERVAL_MS."""

from __future__ import annotations


import pytest

from .members import Cluster, HttpError, b64, running, wait_until

WAIT_S = 20.0
COMPACTED = "etcdserver: mvcc: required revision has been compacted"


def _range_at(member, revision: int) -> dict:
    return member.call("/v3/kv/range", {"key": b64("k"), "revision": revision,
                                        "serializable": True})


def _compacted_at(member, revision: int) -> bool:
    try:
        _range_at(member, revision)
    except HttpError as err:
        assert err.status == 400 and err.body["message"] == COMPACTED, err.body
        return True
    return False


def _compact_revision(member) -> int:
    return int(member.call("/v3/maintenance/hashkv", {}).get("compact_revision", "0"))


def _finished(member) -> list[int]:
    """Revisions of the auto-compactions this member's log reports done, in order."""
    return [line["revision"]
            for line in member.log_events("Finished auto-compaction at revision")]


def _puts(cluster: Cluster, count: int) -> int:
    """Puts spread over the members; the revision of the last."""
    revision = 0
    for i in range(count):
        resp = cluster.members[i % 3].put("k", f"v{i}")
        revision = int(resp["header"]["revision"])
    return revision


@pytest.fixture
def cluster(tmp_path, request):
    args, env = request.param
    with running(tmp_path, 3, args, env) as c:
        yield c


@pytest.mark.parametrize("cluster", [(
    ["--auto-compaction-mode", "revision", "--auto-compaction-retention", "5"],
    {"PETCD_COMPACTOR_INTERVAL_MS": "200"})], indirect=True)
def test_revision_mode_keeps_the_last_revisions_on_every_member(cluster):
    leader = cluster.wait_leader()
    last = _puts(cluster, 20)
    # Compacted to last - 5 (the retention): that revision still reads, the one before not.
    for m in cluster.members:
        assert wait_until(lambda m=m: _compact_revision(m) == last - 5, WAIT_S), m.name
        assert _compacted_at(m, last - 6), m.name
        assert int(_range_at(m, last - 5)["kvs"][0]["mod_revision"]) == last - 5
        assert m.get("k") == "v19"
    log = leader.log_text()
    assert "Starting auto-compaction at revision" in log and "5 revisions" in log
    assert "Finished auto-compaction at revision" in log
    if cluster.leader() is leader:  # no election since: only the leader compacted
        for m in cluster.members:
            assert m is leader or "auto-compaction" not in m.log_text(), m.name


@pytest.mark.parametrize("cluster", [(
    ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"], {})],
    indirect=True)
def test_periodic_mode_compacts_what_is_older_than_the_retention_on_every_member(cluster):
    cluster.wait_leader()
    written = _puts(cluster, 10)
    # Within about a retention (2 s) plus a sample interval (0.2 s), the revision of
    # 2 s ago is beyond `written`: every member refuses to read below it.
    for m in cluster.members:
        assert wait_until(lambda m=m: _compact_revision(m) >= written, WAIT_S), m.name
        assert _compacted_at(m, written - 1), m.name
        assert m.get("k") == "v9"
    done = _finished(cluster.wait_leader())
    assert done and done == sorted(done) and done[0] >= 1 and done[-1] >= written, done
