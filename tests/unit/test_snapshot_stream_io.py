"""Snapshot streams (actors/network/snapshots.py) between two members' network ends in
one process: real peer transports on loopback, a real store copied by the real child
process, the raft actors played by lists. Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from petcd.actors.apply import snapshot as snapshot_files
from petcd.actors.bus.codec import message_from_wire, message_to_wire
from petcd.actors.bus.peer import Channel, PeerTransport
from petcd.actors.network import snapframes as sf
from petcd.actors.network import snapshots
from petcd.actors.network.peers import PeerLink
from petcd.actors.network.snapshots import SnapshotStreams, remove_parts
from petcd.actors.protocol import Kind
from petcd.actors.raft.types import Message, MessageType, Snapshot
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import ApplyEntry, MvccStore
from petcd.storage.raftstate import ConfState, SnapshotMeta

pytestmark = pytest.mark.timeout(60)

LEADER, FOLLOWER = 0x1111, 0x2222
KEYS = 2000
WAIT_S = 20.0


class Log:
    """A structlog stand-in that keeps (level, event, fields)."""

    def __init__(self, lines: list[tuple[str, str, dict[str, Any]]] | None = None,
                 **fields: Any) -> None:
        self.lines = [] if lines is None else lines
        self.fields = fields

    def bind(self, **fields: Any) -> Log:
        return Log(self.lines, **{**self.fields, **fields})

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append(
            (level, event, {**self.fields, **fields}))

    def events(self, level: str | None = None) -> list[str]:
        return [e for lvl, e, _ in self.lines if level in (None, lvl)]


class End:
    """One member's side: transport, PeerLink with its SnapshotStreams, raft inbox."""

    def __init__(self, member_id: int, root: Path, **options: Any) -> None:
        self.member_id = member_id
        self.snap_dir = root / "snap"
        self.snap_dir.mkdir(parents=True)
        self.db_dir = self.snap_dir / "db"
        # One ROUTER and the network actor's DEALERs: in a member the ROUTER is the
        # raft actor's, which hands snap_* frames on (PEER_FRAMES); here `pump` does.
        self.transport = PeerTransport(member_id, "tcp://127.0.0.1:*", reconnect_ivl_ms=20,
                                       channel=Channel.SNAPSHOT)
        self.raft: list[tuple[str, Any]] = []
        self.log = Log()
        self.link = PeerLink(member_id, self.transport, self._to_raft, self.log)
        self.streams = self.link.snapshots = SnapshotStreams(
            member_id, self.snap_dir, self.db_dir, self.transport, self._to_raft, self.log,
            max_size_bytes=1 << 30, **options)
        self.pump: asyncio.Task[None] | None = None

    def _to_raft(self, kind: str, payload: Any) -> bool:
        self.raft.append((kind, payload))
        return True

    def start(self) -> None:
        async def pump() -> None:  # what the raft actor does: PEER_FRAMES to the link
            while True:
                frames = self.transport.take(256)
                if frames:
                    self.link.receive([[src, kind, payload] for src, kind, payload in frames])
                else:
                    await asyncio.sleep(0.005)
        self.pump = asyncio.get_running_loop().create_task(pump())

    async def stop(self) -> None:
        await self.streams.close()
        if self.pump is not None:
            self.pump.cancel()
        self.transport.close()

    def of_kind(self, kind: Kind) -> list[Any]:
        return [p for k, p in self.raft if k == kind.value]


def fill_store(path: Path, keys: int, value_bytes: int = 1000) -> int:
    with MvccStore.open(str(path), sync=False) as store:
        value = os.urandom(value_bytes)
        store.apply_batch([
            ApplyEntry(i + 1, 2, rpb.InternalRaftRequest(put=pb.PutRequest(
                key=b"key%06d" % i, value=value))) for i in range(keys)])
        return store.applied_index()


def snap(index: int) -> list[Any]:
    meta = SnapshotMeta(index, 2, ConfState(frozenset({LEADER, FOLLOWER})))
    return message_to_wire(Message(MessageType.SNAP, LEADER, FOLLOWER, 2,
                                   snapshot=Snapshot(meta)))


async def until(predicate: Any, timeout_s: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def run(test: Any, tmp_path: Path, leader_options: dict[str, Any] | None = None,
        follower_options: dict[str, Any] | None = None) -> None:
    async def main() -> None:
        leader = End(LEADER, tmp_path / "leader", **(leader_options or {}))
        follower = End(FOLLOWER, tmp_path / "follower", **(follower_options or {}))
        leader.transport.add_peer(FOLLOWER, follower.transport.listen_address)
        follower.transport.add_peer(LEADER, leader.transport.listen_address)
        leader.start()
        follower.start()
        try:
            await test(leader, follower)
        finally:
            await leader.stop()
            await follower.stop()
    asyncio.run(main())


def files(end: End) -> list[str]:
    return sorted(p.name for p in end.snap_dir.iterdir() if p.is_file())


def test_a_store_arrives_whole_and_only_then_does_raft_get_the_snap(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, KEYS)
        leader.link.send_snapshots([snap(applied - 10)])  # the store is ahead of the snapshot: fine
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS))
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, True]]
        [peer] = follower.of_kind(Kind.PEER)
        [m] = [message_from_wire(w) for w in peer]
        assert m.type == MessageType.SNAP and m.snapshot.meta.index == applied - 10
        final = snapshot_files.db_file_path(follower.snap_dir, applied - 10)
        assert files(follower) == [final.name]  # no part file left
        assert snapshot_files.db_file_position(final).index == applied
        assert "received snapshot" in follower.log.events("info")
        assert "sent snapshot" in leader.log.events("info")
        [(_, _, sent)] = [x for x in leader.log.lines if x[1] == "sent snapshot"]
        assert sent["size_bytes"] == final.stat().st_size > 64 * 1024 * 4
        assert not leader.streams.outgoing and not follower.streams.incoming

    # Small chunks and a window of 2: many round trips of flow control.
    run(test, tmp_path, {"chunk_bytes": 64 * 1024, "window_chunks": 2})


def test_a_store_behind_the_snapshot_is_not_sent(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, 10)
        leader.link.send_snapshots([snap(applied + 1)])
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS))
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, False]]
        [(_, _, fields)] = [x for x in leader.log.lines if x[1] == "snapshot transfer failed"]
        assert "below the snapshot's" in fields["error"]
        await asyncio.sleep(0.2)
        assert not follower.of_kind(Kind.PEER) and files(follower) == []
        # Raft asks again at once: the next attempt waits out the backoff first.
        started = time.monotonic()
        leader.link.send_snapshots([snap(applied + 1)])
        await until(lambda: len(leader.of_kind(Kind.SNAPSHOT_STATUS)) == 2)
        assert time.monotonic() - started >= snapshots.FAILURE_BACKOFF_S - 0.2 - 0.05

    run(test, tmp_path)


def test_one_transfer_per_peer_at_a_time(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, KEYS)
        leader.link.send_snapshots([snap(applied)])
        leader.link.send_snapshots([snap(applied)])  # while the first runs: answered by its report
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS))
        await asyncio.sleep(0.2)
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, True]]
        assert len(follower.of_kind(Kind.PEER)) == 1

    run(test, tmp_path)


def test_a_damaged_stream_is_refused_and_the_sender_told(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        chunker = sf.Chunker(77, snap(5))
        first, second = chunker.chunk(b"a" * 100), chunker.chunk(b"b" * 100)
        end = chunker.end()
        assert end.end is not None
        bad_end = sf.Chunk(77, end.seq, b"", end=sf.End(200, bytes(32)))
        acks: list[Any] = []
        leader.streams.on_frame = lambda src, kind, payload: acks.append(  # type: ignore[method-assign]
            (kind, payload))
        for chunk in (first, second, bad_end):
            await _resend(leader, chunk)
        await until(lambda: any(p[2] for _, p in acks))
        assert [p for _, p in acks][-1][2] == "SHA-256 of the data differs from the sender's"
        await until(lambda: not follower.streams.incoming)
        await asyncio.sleep(0.1)
        assert files(follower) == [] and not follower.of_kind(Kind.PEER)

    run(test, tmp_path)


async def _resend(end: End, chunk: sf.Chunk) -> bool:
    """The DEALER connects in the background: retry until it takes the frame."""
    async with asyncio.timeout(WAIT_S):
        while not end.transport.send(FOLLOWER, sf.CHUNK, chunk.to_wire()):
            await asyncio.sleep(0.01)
    return True


def test_a_stalled_transfer_is_dropped_with_its_part_file(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        chunker = sf.Chunker(78, snap(5))
        await _resend(leader, chunker.chunk(b"x" * 1000))
        await until(lambda: any(sf.is_part_name(n) for n in files(follower)))
        await until(lambda: not follower.streams.incoming, timeout_s=5)
        assert files(follower) == []
        assert "snapshot transfer stalled; partial file removed" in follower.log.events()

    run(test, tmp_path, follower_options={"stall_s": 0.5})


def test_chunks_of_a_transfer_the_receiver_does_not_know_are_answered_with_an_error(
        tmp_path: Path) -> None:
    """What a follower restarted in the middle of a transfer answers: the sender stops
    at once and reports failure, and Raft starts a new transfer."""
    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, KEYS)
        # The follower forgets every transfer once begun: as after a restart.
        follower.streams.incoming = _Forgetful()  # type: ignore[assignment]
        leader.link.send_snapshots([snap(applied)])
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS), timeout_s=10)
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, False]]
        [(_, _, fields)] = [x for x in leader.log.lines if x[1] == "snapshot transfer failed"]
        assert "unknown transfer" in fields["error"]

    run(test, tmp_path, {"chunk_bytes": 64 * 1024})


class _Forgetful(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def test_a_peer_that_never_answers_fails_the_transfer_in_bounded_time(tmp_path: Path) -> None:
    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, KEYS)
        follower.link.snapshots = None  # frames arrive and are dropped
        leader.link.send_snapshots([snap(applied)])
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS), timeout_s=10)
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, False]]
        assert "snapshot transfer failed" in leader.log.events("warning")

    run(test, tmp_path, {"progress_timeout_s": 0.5})


def test_part_files_left_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    snap_dir = tmp_path / "snap"
    snap_dir.mkdir()
    part = snap_dir / sf.part_name(9, 1)
    part.write_bytes(b"partial")
    kept = [snapshot_files.db_file_path(snap_dir, 9), snap_dir / "0000000000000002-0000000000000009.snap"]
    for path in kept:
        path.write_bytes(b"x")
    assert remove_parts(snap_dir) == [part.name]
    assert sorted(p.name for p in snap_dir.iterdir()) == sorted(p.name for p in kept)
    assert remove_parts(tmp_path / "missing") == []


def test_a_chunk_sent_again_is_acknowledged_again_not_written_twice(tmp_path: Path,
                                                                   monkeypatch) -> None:
    async def test(leader: End, follower: End) -> None:
        chunker = sf.Chunker(79, snap(5))
        first, second = chunker.chunk(b"a" * 100), chunker.chunk(b"b" * 100)
        end = chunker.end()
        acks: list[Any] = []
        leader.streams.on_frame = lambda src, kind, payload: acks.append(  # type: ignore[method-assign]
            payload)
        for chunk in (first, second, second, first):
            await _resend(leader, chunk)
        await until(lambda: acks.count([79, 1, None]) >= 2)
        await _resend(leader, end)
        await until(lambda: [79, 2, None] in acks)
        await _resend(leader, end)  # after the end: the last ack once more
        await until(lambda: acks.count([79, 2, None]) == 2)
        assert not [a for a in acks if a[2] is not None]
        [name] = files(follower)
        assert (follower.snap_dir / name).read_bytes() == b"a" * 100 + b"b" * 100

    # The bytes are not an LMDB store: let the check of the finished file pass.
    monkeypatch.setattr(snapshot_files, "db_file_position", lambda path: _Position())
    run(test, tmp_path)


class _Position:
    index = 5


def test_chunks_lost_on_the_way_are_sent_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(snapshots, "RESEND_S", 0.2)

    async def test(leader: End, follower: End) -> None:
        applied = fill_store(leader.db_dir, KEYS)
        receive = follower.link.receive
        lost: list[int] = []

        def lossy(frames: Any) -> None:
            kept = []
            for frame in frames:
                if frame[1] == sf.CHUNK and frame[2][1] in (2, 3) and frame[2][1] not in lost:
                    lost.append(frame[2][1])  # the first copy of chunks 2 and 3
                else:
                    kept.append(frame)
            receive(kept)
        follower.link.receive = lossy  # type: ignore[method-assign]
        leader.link.send_snapshots([snap(applied)])
        await until(lambda: leader.of_kind(Kind.SNAPSHOT_STATUS))
        assert leader.of_kind(Kind.SNAPSHOT_STATUS) == [[FOLLOWER, True]]
        assert lost == [2, 3] and len(follower.of_kind(Kind.PEER)) == 1
        final = snapshot_files.db_file_path(follower.snap_dir, applied)
        assert snapshot_files.db_file_position(final).index == applied

    run(test, tmp_path, {"chunk_bytes": 64 * 1024, "window_chunks": 2})
