"""A leader whose fsync stalls for 3 s must not lose its leadership.

The raft actor never touches the disk: a slow WAL delays the leader's own
acknowledgements, never its heartbeats. So with the failpoint
PETCD_FAILPOINT_WAL_SLEEP_MS=3000 on the leader (its WAL actor sleeps 3 s before every
fsync) there is no election and no leader change, and writes keep completing: the
followers' fsyncs form the quorum that commits them, and committed entries are applied
without waiting for the leader's own copy (as etcd does). Writes go on at full speed
once leadership moves to a member with a healthy disk. The stalled member logs etcd's
"slow fdatasync" warning.
"""

from __future__ import annotations

import time

from tests.cluster.members import Cluster, HttpError

STALL_MS = 3000


def move_leader(cluster: Cluster, to_name: str, timeout_s: float = 60.0) -> None:
    """MoveLeader until `to_name` leads. A transfer is abandoned after an election
    timeout if the target has not caught up, and a member whose fsync stalls acknowledges
    seconds late: retry (bounded) until it has caught up."""
    target = next(m for m in cluster.members if m.name == to_name)
    target_id = target.status()["header"]["member_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leader = cluster.wait_leader()
        if leader is target:
            return
        try:
            leader.call("/v3/maintenance/transfer-leadership", {"targetID": target_id},
                        timeout_s=15)
        except HttpError:
            time.sleep(1)
    raise AssertionError(f"{to_name} did not become leader within {timeout_s}s")


def test_a_stalled_leader_fsync_causes_no_election(tmp_path):
    cluster = Cluster(tmp_path, 3)
    slow = cluster.members[0]
    slow.env["PETCD_FAILPOINT_WAL_SLEEP_MS"] = str(STALL_MS)
    cluster.start()
    try:
        cluster.wait_leader()
        move_leader(cluster, slow.name)
        assert "failpoint active" in slow.log_text()
        term = slow.status()["header"]["raft_term"]
        window_end = time.monotonic() + 2 * STALL_MS / 1000 + 1  # two stalled fsyncs at least
        written = 0
        while time.monotonic() < window_end:
            slow.put(f"stalled{written}", "v")
            written += 1
        assert written >= 10  # writes kept completing while the leader's disk stalled
        assert '"slow fdatasync"' in slow.log_text()  # etcd's warning, above 1 s
        for m in cluster.members:  # ... and nobody started an election
            status = m.status()
            assert status["header"]["raft_term"] == term, m.name
            assert status["leader"] == slow.status()["header"]["member_id"], m.name
        # Writes resume at full speed once a member with a healthy disk leads.
        move_leader(cluster, cluster.members[1].name)
        t0 = time.monotonic()
        for n in range(20):
            cluster.members[1].put(f"fast{n}", "v")
        assert time.monotonic() - t0 < STALL_MS / 1000
        assert all(cluster.members[1].get(f"stalled{n}") == "v" for n in range(written))
    finally:
        cluster.stop()
