"""A member crashed at each persistence point under write load loses nothing.

Each case arms one crash failpoint (PETCD_FAILPOINT_CRASH, actors/failpoints.py) on one
member of three, writes through every live member, makes the member reach the point
(plain load; a compaction; a defragment; or, for the snapshot receive and install
points, a lag that only a snapshot can close), and waits for it to die there. Restarted
without the failpoint, it must rejoin and then hold every acknowledged key, each with
version 1 (every key is put at most once, so a put applied twice would show), the same
keys and revisions as its peers, and the same HashKV at a common revision. And the
writer's puts with a reader's linearizable reads of the keys being written, made from
before the crash until the victim has caught up, must be linearizable (tests/lincheck).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

import pytest
from petcd.actors import failpoints

from tests.cluster.members import Cluster, HttpError, Member, b64, unb64, wait_until
from tests.faults.test_crashes import Writer, assert_all_present

pytestmark = pytest.mark.timeout(60)

SNAPSHOT_ARGS = ["--snapshot-count", "20", "--snapshot-catchup-entries", "5"]
LAG_KEYS = 60  # missed while down: more than the leader keeps after a snapshot
CRASH_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Case:
    point: str
    nth: int = 1  # the how-manieth time the point is reached: past the start-up's writes
    trigger: str = "load"  # load | compact | defrag | snapshot (the victim must catch up)
    leads: bool = False  # the victim leads: its crash stops the writes until an election


CASES = [
    # On a write's way to its answer: the leader's crash is the harder case.
    Case("raftBeforeSave", 30, leads=True), Case("walBeforeSync", 30, leads=True),
    Case("walAfterSync", 30, leads=True), Case("raftAfterSave", 30, leads=True),
    Case("raftBeforeSaveSnap"), Case("raftBeforeWALSaveSnaphot"), Case("raftAfterSaveSnap"),
    Case("raftAfterWALRelease"),
    Case("beforeCommit", 20, leads=True), Case("afterCommit", 20, leads=True),
    Case("compactBeforeCommitScheduledCompact", trigger="compact"),
    Case("compactAfterCommitScheduledCompact", trigger="compact"),
    Case("defragBeforeCopy", trigger="defrag"), Case("defragBeforeRename", trigger="defrag"),
    Case("snapReceiveAfterWrite", trigger="snapshot"),
    Case("snapReceiveBeforeRaft", trigger="snapshot"),
    Case("applyBeforeOpenSnapshot", trigger="snapshot"),
    Case("applyBeforePublishSnapshot", trigger="snapshot"),
    Case("applyAfterOpenSnapshot", trigger="snapshot"),
]


def test_the_cases_cover_every_crash_point():
    assert {case.point for case in CASES} == failpoints.CRASH_POINTS


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.point)
def test_a_member_crashed_at_a_persistence_point_restarts_and_loses_nothing(tmp_path, case):
    cluster = Cluster(tmp_path, 3, SNAPSHOT_ARGS)
    victim = cluster.members[0]
    if case.trigger != "snapshot":
        _arm(victim, case)
    cluster.start()
    try:
        _crash_and_restart(cluster, victim, case)
    finally:
        cluster.stop()


def _crash_and_restart(cluster: Cluster, victim: Member, case: Case) -> None:
    writer = Writer(cluster, fresh_keys=True, timeout_s=2, reads=True)
    if case.trigger == "snapshot":
        _lag_behind_a_snapshot(cluster, victim, case)
    else:
        _lead(cluster, victim if case.leads else cluster.members[1])
        assert victim.log_events("failpoint active: crashing")
    writer.start()
    _await_crash(victim, case, _trigger(case, victim, writer))
    acked = len(writer.acked)
    assert wait_until(lambda: len(writer.acked) >= acked + 5, 20)  # the others go on
    keys = writer.finish()
    del victim.env[failpoints.CRASH]
    cluster.start(victim)
    assert_all_present(cluster, keys)  # once the victim is back and has caught up
    writer.assert_linearizable()  # the reads went on through the victim's restart
    _assert_applied_once_and_alike(cluster, victim)


def _lag_behind_a_snapshot(cluster: Cluster, victim: Member, case: Case) -> None:
    """The victim, a follower, misses LAG_KEYS writes while stopped and restarts armed:
    it can only catch up from a snapshot, whose receive or install crashes it. (Paused
    instead, it would catch up from appends its leader had sent before.)"""
    leader = cluster.members[1]
    _lead(cluster, leader)
    assert victim.stop() == 0
    _write_in_parallel(leader, "lag", LAG_KEYS)
    _arm(victim, case)
    cluster.start(victim)


def _arm(victim: Member, case: Case) -> None:
    victim.env[failpoints.CRASH] = f"{case.point}:{case.nth}"


def _write_in_parallel(m: Member, prefix: str, count: int) -> None:
    def run(start: int) -> None:
        for i in range(start, count, 4):
            m.put(f"{prefix}{i:04d}", "v")
    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def _lead(cluster: Cluster, member: Member) -> None:
    """Move leadership to `member` (MoveLeader through the current leader)."""
    leader = cluster.wait_leader()
    if leader is not member:
        target = member.status()["header"]["member_id"]
        leader.call("/v3/maintenance/transfer-leadership", {"targetID": target}, timeout_s=10)
        assert wait_until(lambda: cluster.leader() is member, 10)


def _trigger(case: Case, victim: Member, writer: Writer):
    """What makes the victim reach the point, called until it dies."""
    def compact() -> None:
        revision = int(victim.status()["header"]["revision"])
        if len(writer.acked) >= 20:
            victim.call("/v3/kv/compaction", {"revision": str(revision - 5)}, timeout_s=5)

    def defrag() -> None:
        victim.call("/v3/maintenance/defragment", {}, timeout_s=5)

    return {"compact": compact, "defrag": defrag}.get(case.trigger, lambda: None)


def _await_crash(victim: Member, case: Case, trigger) -> None:
    """The victim's member exits because the armed actor killed itself at the point."""
    assert victim.proc is not None
    deadline = time.monotonic() + CRASH_TIMEOUT_S
    while victim.proc.poll() is None:
        assert time.monotonic() < deadline, f"{case.point} not reached\n{victim.log_text()[-3000:]}"
        try:
            trigger()
        except (OSError, HttpError):
            pass  # the member died under it, or a compaction raced another
        time.sleep(0.2)
    assert victim.proc.returncode == 1
    [reached] = victim.log_events("failpoint reached: crashing")
    assert (reached["point"], reached["nth"]) == (case.point, case.nth)
    [exited] = victim.log_events("actor exited; stopping the member")
    assert exited["exit_status"] == -signal.SIGKILL


def _assert_applied_once_and_alike(cluster: Cluster, victim: Member) -> None:
    """Every key was put at most once, so each has version 1 everywhere; the members
    hold the same keys at the same revisions, and the same HashKV at one revision."""
    leader = cluster.wait_leader()
    revision = int(leader.status()["header"]["revision"])
    for m in cluster.members:
        assert wait_until(lambda m=m: int(m.status()["header"]["revision"]) >= revision, 20)
    listings = {m.name: _listing(m) for m in cluster.members}
    twice = [row for row in listings[victim.name] if row[3] != "1"]
    assert not twice, twice[:5]
    for name, listing in listings.items():
        assert listing == listings[victim.name], name
    hashes = {m.name: _hash_kv(m, revision) for m in cluster.members}
    assert len(set(hashes.values())) == 1, hashes


def _listing(m: Member) -> list[tuple[str, str, str, str]]:
    """(key, create_revision, mod_revision, version) of every written key, read from
    the member's own store."""
    resp = m.call("/v3/kv/range", {"key": b64("\0"), "range_end": b64("\0"),
                                   "serializable": True}, timeout_s=10)
    return [(unb64(kv["key"]), kv["create_revision"], kv["mod_revision"], kv.get("version", "0"))
            for kv in resp.get("kvs", [])]


def _hash_kv(m: Member, revision: int) -> tuple[str, str]:
    resp = m.call("/v3/maintenance/hashkv", {"revision": str(revision)}, timeout_s=10)
    return resp["hash"], resp.get("compact_revision", "0")


def test_an_unknown_crash_point_refuses_to_start_the_member(tmp_path):
    cluster = Cluster(tmp_path, 1)
    [member] = cluster.members
    member.env[failpoints.CRASH] = "beforeComit"
    cluster.start()
    assert member.proc is not None
    try:
        assert member.proc.wait(30) == 2  # EXIT_BAD_CONFIG, before any actor starts
    finally:
        cluster.stop()
    [refused] = member.log_events("bad failpoint")
    assert refused["error"].startswith(f"{failpoints.CRASH}=beforeComit: unknown point")
    assert not member.log_events("ready to serve client requests")
