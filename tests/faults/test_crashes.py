"""Crashes of real members and actors: no acknowledged write is ever lost.

A writer thread puts sequential keys through random live members and records which
puts were acknowledged; after the faults, every acknowledged key must be readable on
every member (linearizable reads, then serializable ones on each member once it has
caught up). Meanwhile a reader makes linearizable reads of the keys being written
through random live members, and every put and read, with its answer or its lack of
one, must fit one order in real time (tests/lincheck).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from petcd.storage.wal.format import FRAME_HEAD
from petcd.storage.wal.scan import scan_segment

from tests.cluster.members import ELECTION_MS, Cluster, HttpError, Member, wait_until
from tests import lincheck
from tests.faults import recorded
from tests.faults.recorded import Reader
from tests.lincheck import History

RECENT_KEYS = 20  # the reader reads the key being written or one of those just before


class Writer(threading.Thread):
    """`fresh_keys`: a put that failed is not tried again with the same key, so every
    key is put at most once (its version must be 1 on every member). `timeout_s`: of
    each put; a put to a member that lost its leader waits until then.

    Every put is recorded in `history`; with `reads`, so are the linearizable reads of a
    Reader (recorded.py) of the keys being written, which goes on after finish(), through
    a member's restart, until assert_linearizable()."""

    def __init__(self, cluster: Cluster, prefix: str = "w", fresh_keys: bool = False,
                 timeout_s: float = 5.0, reads: bool = False) -> None:
        super().__init__(daemon=True)
        self.cluster, self.prefix, self.fresh_keys = cluster, prefix, fresh_keys
        self.timeout_s = timeout_s
        self.acked: list[str] = []
        self.number = 0  # of the key being put, or the next one
        self.history = History()
        self.reader = Reader(cluster, self.history, self._recent_key, timeout_s) if reads else None
        self.stop_flag = threading.Event()
        self.rng = random.Random(1)

    def start(self) -> None:
        super().start()
        if self.reader is not None:
            self.reader.start()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            live = [m for m in self.cluster.members if m.alive]
            if not live:
                time.sleep(0.05)
                continue
            key = self._key(self.number)
            try:
                recorded.put(self.history, "writer", self.rng.choice(live), key, key, self.timeout_s)
            except (OSError, HttpError) as err:
                if recorded.refused(err):
                    time.sleep(0.05)  # not listening yet: let it start rather than spin
                self.number += self.fresh_keys
                continue  # not acknowledged: unless refused, it may yet be applied
            self.acked.append(key)
            self.number += 1

    def finish(self) -> list[str]:
        """Stops the writes (the reads go on); the keys acknowledged."""
        self.stop_flag.set()
        self.join(15)
        return self.acked

    def assert_linearizable(self) -> None:
        """Stops the reads, then checks every put and read (tests/lincheck): a read of
        an acknowledged key that finds it absent, or of an unanswered put's key that
        finds it and later not, fails it."""
        assert not self.is_alive(), "finish() the writes first"
        if self.reader is not None:
            assert self.reader.finish() > 0, "no read was answered"
        lincheck.assert_linearizable(self.history)

    def _key(self, number: int) -> str:
        return f"{self.prefix}{number:06d}"

    def _recent_key(self, rng: random.Random) -> str:
        newest = self.number
        return self._key(rng.randint(max(0, newest - RECENT_KEYS), newest))


def assert_all_present(cluster: Cluster, keys: list[str], prefix: str = "w") -> None:
    assert keys, "the writer acknowledged nothing"
    leader = cluster.wait_leader()
    assert leader.count(prefix) >= len(keys)
    target = int(leader.status()["raftIndex"])
    for m in cluster.members:
        assert wait_until(lambda m=m: int(m.status()["raftAppliedIndex"]) >= target, 30), m.name
        assert m.count(prefix, serializable=True) >= len(keys), m.name
        for key in random.Random(2).sample(keys, min(50, len(keys))):
            assert m.get(key, serializable=True) == key, (m.name, key)


def test_sigkill_of_the_leader_under_load_loses_no_acknowledged_write(tmp_path, transport):
    with transport.running(tmp_path, 3) as three:
        _leader_killed_under_load(three)


def _leader_killed_under_load(three: Cluster) -> None:
    old = three.wait_leader()
    writer = Writer(three, reads=True)
    writer.start()
    assert wait_until(lambda: len(writer.acked) >= 50, 20)
    old.kill()
    killed_at = time.monotonic()
    new = three.wait_leader(timeout_s=10)
    elected_s = time.monotonic() - killed_at
    assert new is not old
    assert elected_s < 3 * ELECTION_MS / 1000 + 1.0, elected_s  # status polling adds a little
    acked_before = len(writer.acked)
    assert wait_until(lambda: len(writer.acked) >= acked_before + 50, 20)  # writes go on
    three.start(old)  # the killed member restarts and catches up
    keys = writer.finish()
    assert_all_present(three, keys)
    writer.assert_linearizable()


@pytest.mark.parametrize("actor", ["raft", "wal", "apply", "network"])
def test_sigkill_of_one_actor_stops_the_member_and_restart_recovers(three, actor):
    three.wait_leader()
    writer = Writer(three, reads=True)
    writer.start()
    assert wait_until(lambda: len(writer.acked) >= 30, 20)
    victim = three.members[0]
    pid = victim.actor_pids()[actor]
    os.kill(pid, signal.SIGKILL)
    assert victim.proc is not None
    assert victim.proc.wait(15) != 0  # crash-only: the whole member exits
    exits = victim.log_events("actor exited; stopping the member")
    assert exits and exits[-1]["failed_actor"] == actor
    assert exits[-1]["exit_status"] == -signal.SIGKILL  # the signal, as the supervisor saw it
    three.start(victim)
    acked_before = len(writer.acked)
    assert wait_until(lambda: len(writer.acked) >= acked_before + 30, 20)
    keys = writer.finish()
    assert_all_present(three, keys)
    writer.assert_linearizable()


def _last_segment(member: Member) -> Path:
    wal_dir = member.data_dir / "member" / "wal"
    return sorted(wal_dir.glob("*.wal"))[-1]


def _end_of_records(segment: Path) -> int:
    """Offset just past the last non-zero byte: the end of what was written."""
    data = segment.read_bytes()
    return len(data.rstrip(b"\0"))


def _middle_of_a_record(segment: Path) -> int:
    """An offset inside the payload of the record halfway through the segment: a byte
    the CRC covers (a flip in a frame's zero padding changes no data, as in etcd)."""
    payloads: list[tuple[int, int]] = []  # (payload offset, payload bytes)
    scan_segment(segment.read_bytes(), None,
                 lambda _type, payload, offset: payloads.append(
                     (offset + FRAME_HEAD.size, len(payload))))
    start, size = payloads[len(payloads) // 2]
    assert size > 0
    return start + size // 2


def test_torn_last_wal_record_is_truncated_and_the_member_works(tmp_path):
    c = Cluster(tmp_path, 1)
    c.start()
    m = c.wait_leader()
    for n in range(20):
        m.put(f"k{n}", "v")
    assert m.stop() == 0
    segment = _last_segment(m)
    end = _end_of_records(segment)
    with open(segment, "r+b") as f:  # a crash in the middle of the last write
        f.seek(end - 5)
        f.write(b"\0" * 5)
    c.start(m)
    try:
        c.wait_leader()
        assert m.get("k18") == "v"  # everything before the torn record is there
        m.put("after", "repair")
        assert m.get("after") == "repair"
        assert "torn" in m.log_text() or "truncat" in m.log_text()
    finally:
        c.stop()


def _stopped_member_with_data(tmp_path: Path) -> tuple[Cluster, Member]:
    """A one-member cluster that wrote 200 keys and stopped cleanly."""
    c = Cluster(tmp_path, 1)
    c.start()
    m = c.wait_leader()
    for n in range(200):
        m.put(f"k{n}", "value-%d" % n)
    assert m.stop() == 0
    return c, m


def test_flipped_byte_in_the_wal_refuses_to_start_naming_file_and_offset(tmp_path):
    c, m = _stopped_member_with_data(tmp_path)
    segment = _last_segment(m)
    middle = _middle_of_a_record(segment)
    with open(segment, "r+b") as f:
        f.seek(middle)
        byte = f.read(1)
        f.seek(middle)
        f.write(bytes([byte[0] ^ 0xFF]))
    c.start(m)
    assert m.proc is not None and m.proc.wait(30) != 0
    assert str(segment.name) in m.log_text() and "offset" in m.log_text()


def test_truncated_store_refuses_to_start_naming_the_file(tmp_path):
    c, m = _stopped_member_with_data(tmp_path)
    db = m.data_dir / "member" / "snap" / "db" / "gen-000001" / "data.mdb"
    size = db.stat().st_size
    os.truncate(db, size // 2)  # a copy cut short, say
    c.start(m)
    assert m.proc is not None and m.proc.wait(30) == 1  # an error, not SIGBUS
    refused = m.log_events("store corrupt, refusing to start")
    assert refused and refused[-1]["file"].endswith("gen-000001/data.mdb")
    assert refused[-1]["reason"].startswith(f"truncated: {size // 2} bytes")
    assert db.stat().st_size == size // 2  # left as it was, for the operator to look at


COMMIT_SLEEP_MS = 1500


def test_a_member_killed_between_answering_and_its_store_commit_loses_nothing(tmp_path):
    """A batch is answered before the store commits it (only the WAL's fsync is on the
    way to an answer). With the apply actor held between the two by a failpoint, a
    serializable read on the same member still sees the answered write (it waits for
    the commit), and a SIGKILL of the whole member while it is held loses nothing."""
    cluster = Cluster(tmp_path, 1)
    [member] = cluster.members
    member.env["PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS"] = str(COMMIT_SLEEP_MS)
    cluster.start()
    try:
        cluster.wait_leader()
        assert "failpoint active" in member.log_text()
        member.put("warm-up", "v")  # the start's own entries (publish) are held too:
        time.sleep(COMMIT_SLEEP_MS / 1000 + 0.5)  # let them all commit first
        started = time.monotonic()
        member.put("answered", "before-commit")
        answered_s = time.monotonic() - started
        assert member.get("answered", serializable=True) == "before-commit"
        read_s = time.monotonic() - started
        # answered at once, read only once the commit came (the put is the only write)
        assert answered_s < COMMIT_SLEEP_MS / 1000 <= read_s + 0.1, (answered_s, read_s)
        member.put("killed", "while-held")
        member.kill()  # SIGKILL of every process, the apply actor inside the failpoint
        member.env.pop("PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS")
        cluster.start(member)
        cluster.wait_leader()
        assert member.get("killed") == "while-held"
        assert member.get("answered") == "before-commit"
    finally:
        cluster.stop()
