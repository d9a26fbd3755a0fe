"""After faults: every member has applied the leader's log and holds the same store."""

from __future__ import annotations

from tests.cluster.members import Cluster, wait_until

CONVERGE_TIMEOUT_S = 30.0


def converged(cluster: Cluster, story: str = "", timeout_s: float = CONVERGE_TIMEOUT_S) -> int:
    """Waits until every member has applied the leader's log; asserts that they hold the
    same store (revision and HashKV there); returns that revision. `story` says, in a
    failure, what happened before."""
    leader = cluster.wait_leader(timeout_s)
    target = int(leader.status()["raftIndex"])
    for m in cluster.members:
        assert wait_until(lambda m=m: int(m.status()["raftAppliedIndex"]) >= target,
                          timeout_s), f"{m.name} did not catch up to index {target}; {story}"
    revisions = {m.name: int(m.status()["header"]["revision"]) for m in cluster.members}
    assert len(set(revisions.values())) == 1, (revisions, story)
    revision = revisions[leader.name]
    hashes = {m.name: m.call("/v3/maintenance/hashkv", {"revision": str(revision)})["hash"]
              for m in cluster.members}
    assert len(set(hashes.values())) == 1, (hashes, story)
    return revision
