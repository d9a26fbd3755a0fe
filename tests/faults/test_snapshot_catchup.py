"""A member far behind catches up from a snapshot streamed by the leader, also when it
is SIGKILLed in the middle of receiving one.

The cluster compacts its Raft log every 100 entries keeping 10, so a member that misses
a few hundred writes can only catch up from a copy of the leader's store
(actors/network/snapshots.py). Every key is then checked on that member with
serializable reads, i.e. from its own store, once it has applied what the leader has.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.cluster.members import Cluster, Member, b64, free_ports, running, wait_until

pytestmark = pytest.mark.timeout(120)

SNAPSHOT_ARGS = ["--snapshot-count", "100", "--snapshot-catchup-entries", "10"]
SMALL_KEYS = 500
CATCH_UP_S = 40.0


def write_small(m: Member, n: int = SMALL_KEYS) -> None:
    def run(start: int) -> None:
        for i in range(start, n, 4):
            m.put(f"k{i:04d}", f"v{i}")
    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def write_large(m: Member, count: int, size_bytes: int) -> dict[str, str]:
    """`count` values of random bytes; returns key -> sha256 of the value."""
    digests: dict[str, str] = {}

    def run(start: int) -> None:
        for i in range(start, count, 4):
            value = os.urandom(size_bytes)
            key = f"big{i:03d}"
            m.call("/v3/kv/put", {"key": b64(key), "value": base64.b64encode(value).decode()},
                   timeout_s=30)
            digests[key] = hashlib.sha256(value).hexdigest()
    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(digests) == count
    return digests


def assert_caught_up(leader: Member, lag: Member, digests: dict[str, str] | None = None) -> None:
    target = int(leader.status()["raftIndex"])
    assert wait_until(lambda: int(lag.status()["raftAppliedIndex"]) >= target, CATCH_UP_S), \
        lag.log_text()[-3000:]
    assert lag.count("k", serializable=True) == SMALL_KEYS
    for i in range(0, SMALL_KEYS, 7):
        assert lag.get(f"k{i:04d}", serializable=True) == f"v{i}"
    for key, digest in (digests or {}).items():
        kvs = lag.call("/v3/kv/range", {"key": b64(key), "serializable": True})["kvs"]
        assert hashlib.sha256(base64.b64decode(kvs[0]["value"])).hexdigest() == digest, key


def test_a_member_that_missed_compacted_entries_catches_up_from_a_snapshot(tmp_path, transport):
    with transport.running(tmp_path, 3, SNAPSHOT_ARGS) as c:
        leader = c.wait_leader()
        lag = next(m for m in c.members if m is not leader)
        assert lag.stop() == 0
        write_small(leader)
        c.start(lag)
        assert_caught_up(leader, lag)
        assert lag.log_events("received snapshot"), lag.log_text()[-3000:]
        assert lag.log_events("snapshot applied")
        assert any(m.log_events("sent snapshot") for m in c.members if m is not lag)
        # Writes after the snapshot reach it by plain appends again.
        leader.put("after", "snapshot")
        assert wait_until(lambda: lag.get("after", serializable=True) == "snapshot", 10)


def test_a_member_killed_after_saving_a_snapshot_before_installing_it_restarts(tmp_path):
    """The WAL holds the received snapshot's marker, the store is still far behind it:
    at restart the saved db file is installed first (actors/raft/actor.py start)."""
    with running(tmp_path, 3, SNAPSHOT_ARGS) as c:
        leader = c.wait_leader()
        lag = next(m for m in c.members if m is not leader)
        assert lag.stop() == 0
        write_small(leader)
        # The leader's network actor streams snapshots: paused, it cannot send one before
        # the lagging member's apply actor is paused too.
        sender = leader.actor_pids()["network"]
        os.kill(sender, signal.SIGSTOP)
        try:
            c.start(lag)
            assert wait_until(
                lambda: lag.log_text().count('"ready to serve client requests"') == 2, 20)
            os.kill(lag.actor_pids()["apply"], signal.SIGSTOP)  # it never installs the snapshot
        finally:
            os.kill(sender, signal.SIGCONT)
        snap_dir = lag.data_dir / "member" / "snap"
        assert wait_until(lambda: _received_marker(lag, snap_dir), 20), lag.log_text()[-3000:]
        time.sleep(0.5)  # the marker is written just before its WAL record is fsynced
        lag.kill()
        assert not lag.log_events("snapshot applied")
        c.start(lag)
        assert_caught_up(leader, lag)
        assert lag.log_events("installing the saved snapshot")
        assert lag.log_events("snapshot applied")


class ThrottledProxy:
    """A TCP forwarder to a member's peer port: every member reaches it through this,
    so its inbound peer traffic (and a snapshot sent to it) can be slowed down."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.target_port = target_port
        self.rate_bytes_per_s: float | None = None  # None: as fast as it goes
        self.closed = False
        self.sock = socket.create_server(("127.0.0.1", listen_port))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.target_port), timeout=1)
            except OSError:
                conn.close()
                continue
            for src, dst, slow in ((conn, up, True), (up, conn, False)):
                threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            src.settimeout(None)
            while not self.closed:
                data = src.recv(64 * 1024)
                if not data:
                    break
                rate = self.rate_bytes_per_s
                if slow and rate:
                    time.sleep(len(data) / rate)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def test_a_member_killed_while_receiving_a_snapshot_restarts_and_catches_up(tmp_path):
    c = Cluster(tmp_path, 3, extra_args=SNAPSHOT_ARGS)
    proxies: dict[str, ThrottledProxy] = {}
    for m, real_port in zip(c.members, free_ports(3)):
        # Others reach m at its advertised peer URL (the proxy); m listens on real_port.
        m.extra_args += ["--listen-peer-urls", f"http://127.0.0.1:{real_port}"]
        proxies[m.name] = ThrottledProxy(m.peer_port, real_port)
    c.start()
    try:
        leader = c.wait_leader()
        lag = next(m for m in c.members if m is not leader)
        assert lag.stop() == 0
        write_small(leader)
        digests = write_large(leader, count=48, size_bytes=1_000_000)  # a ~50 MB store

        # At 16 MB/s the snapshot takes ~3 s to reach `lag`: kill it a quarter in.
        proxies[lag.name].rate_bytes_per_s = 16e6
        c.start(lag)
        snap_dir = lag.data_dir / "member" / "snap"
        assert wait_until(lambda: _part_bytes(snap_dir) > 12e6, 30), lag.log_text()[-3000:]
        lag.kill()
        assert _part_bytes(snap_dir) > 0, "the transfer was not cut in the middle"
        assert not lag.log_events("received snapshot")

        proxies[lag.name].rate_bytes_per_s = None
        c.start(lag)
        assert_caught_up(leader, lag, digests)
        assert lag.log_events("removed partial snapshot files")
        assert lag.log_events("received snapshot") and lag.log_events("snapshot applied")
        assert _part_bytes(snap_dir) == 0
        # The cut transfer failed and a new one was sent (by whichever member leads:
        # on a loaded test machine leadership may move meanwhile).
        assert any(m.log_events("snapshot transfer failed") for m in c.members)
        assert any(m.log_events("sent snapshot") for m in c.members if m is not lag)
    finally:
        c.stop()
        for p in proxies.values():
            p.close()


def _received_marker(m: Member, snap_dir: Path) -> bool:
    """The WAL wrote the snapshot marker (<term>-<index>.snap) of a received snapshot."""
    received = m.log_events("received snapshot")
    if not received:
        return False
    index = received[-1]["index"]
    return any(p.name.endswith(f"-{index:016x}.snap") for p in snap_dir.iterdir())


def _part_bytes(snap_dir: Path) -> int:
    if not snap_dir.is_dir():
        return 0
    total = 0
    for p in snap_dir.iterdir():
        if p.name.endswith(".part"):
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
    return total
