"""The WAL actor in a real process, spoken to through real sockets.

The test binds fake "raft" and "supervisor" inboxes in the member's run dir and sends
SAVE / SAVE_SNAPSHOT as the raft actor would; what the actor says back, and what the
WAL library reads from its directory afterwards (even after kill -9), is checked.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import msgpack
import pytest

from petcd import config
from petcd.actors import failpoints
from petcd.actors.bus.codec import (
    hard_state_to_wire,
    persisted_state_from_wire,
    snapshot_meta_to_wire,
)
from petcd.actors.bus.sockets import Inbox, Outbox
from petcd.actors.member import MemberContext
from petcd.actors.protocol import Kind
from petcd.actors.wal import actor as wal_actor
from petcd.actors.wal.startup import encode_metadata, open_wal
from petcd.actors.wal.writer import ProtocolError, WalWriter
from petcd.storage.raftstate import (ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                                     HardState, SnapshotMeta)
from petcd.storage.snap import SnapStore
from petcd.storage.wal import Wal, wal_exists

PEERS = {"m1": "http://127.0.0.1:12380", "m2": "http://127.0.0.1:22380",
         "m3": "http://127.0.0.1:32380"}
WAIT_S = 10.0  # for any one message or exit; a healthy actor answers in milliseconds
SMALL_SEGMENT_BYTES = 64 * 1024


def make_context(data_dir: Path, run_dir: Path, *extra: str, token: str = "petcd-test"
                 ) -> MemberContext:
    cluster = ",".join(f"{name}={url}" for name, url in PEERS.items())
    settings = config.load(
        ["--name", "m1", "--data-dir", str(data_dir), "--initial-cluster", cluster,
         "--initial-advertise-peer-urls", PEERS["m1"], "--initial-cluster-token", token,
         "--log-level", "debug", *extra], {})
    return dataclasses.replace(MemberContext.from_settings(settings), run_dir=run_dir)


def _child(ctx: MemberContext, log_path: str, env: dict[str, str], segment_bytes: int) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)  # the actor logs to stderr: keep its lines for the assertions
    os.environ.update(env)
    raise SystemExit(wal_actor.run(ctx, segment_size_bytes=segment_bytes))


class Member:
    """One WAL actor process plus the fake raft and supervisor around it."""

    def __init__(self, tmp_path: Path, *extra: str, token: str = "petcd-test") -> None:
        # A short run dir of our own: pytest's tmp paths can be too long for ipc.
        self.run_dir = Path(tempfile.mkdtemp(prefix="pwal-"))
        self.ctx = make_context(tmp_path / "data", self.run_dir, *extra, token=token)
        self.log_path = tmp_path / "wal-actor.log"
        self.raft = Inbox.for_actor(self.run_dir, "raft")
        self.supervisor = Inbox.for_actor(self.run_dir, "supervisor")
        self.outbox = Outbox(self.run_dir)
        self.process: mp.process.BaseProcess | None = None

    def start(self, env: dict[str, str] | None = None,
              segment_bytes: int = SMALL_SEGMENT_BYTES) -> None:
        self.process = mp.get_context("spawn").Process(
            target=_child, args=(self.ctx, str(self.log_path), env or {}, segment_bytes),
            daemon=True)
        self.process.start()

    def expect(self, inbox: Inbox, kind: Kind, timeout_s: float = WAIT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = inbox.drain(max_items=1, timeout_ms=50)
            if got:
                assert got[0][0] == kind.value, got
                return got[0][1]
            assert self.process is None or self.process.exitcode is None, self.logs()
        raise AssertionError(f"no {kind.value} within {timeout_s} s\n{self.logs()}")

    def started(self, **start_options):
        """Start, and return (persisted state, metadata) from STATE once READY."""
        self.start(**start_options)
        state, metadata = self.expect(self.raft, Kind.STATE)
        assert self.expect(self.supervisor, Kind.READY) == "wal"
        return persisted_state_from_wire(state), metadata

    def save(self, seq, hard_state=None, entries=(), meta=None) -> None:
        payload = [seq, None if hard_state is None else hard_state_to_wire(hard_state),
                   list(entries), None if meta is None else snapshot_meta_to_wire(meta)]
        assert self.outbox.send("wal", Kind.SAVE.value, payload, timeout_ms=1000)

    def persisted(self, up_to_seq: int) -> list[int]:
        """Every PERSISTED seq received until `up_to_seq` is acknowledged."""
        seqs = [self.expect(self.raft, Kind.PERSISTED)]
        while seqs[-1] < up_to_seq:
            seqs.append(self.expect(self.raft, Kind.PERSISTED))
        return seqs

    def wait_exit(self, timeout_s: float = WAIT_S) -> int:
        assert self.process is not None
        self.process.join(timeout_s)
        assert self.process.exitcode is not None, "the actor did not exit in time"
        exitcode = self.process.exitcode
        self.process = None
        return exitcode

    def stop(self) -> int:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        return self.wait_exit()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.wait_exit() == -signal.SIGKILL

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(WAIT_S)
        for sock in (self.raft, self.supervisor, self.outbox):
            sock.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture
def member_factory(tmp_path):
    members = []

    def make(*extra: str, token: str = "petcd-test") -> Member:
        members.append(Member(tmp_path, *extra, token=token))
        return members[-1]

    yield make
    for member in members:
        member.close()


def entries(first: int, count: int, term: int = 2, size: int = 100) -> list[Entry]:
    return [Entry(term, index, EntryType.NORMAL, index.to_bytes(4, "big") * (size // 4))
            for index in range(first, first + count)]


def read_wal(wal_dir: Path, snapshot=None):
    wal, contents = Wal.open(wal_dir, snapshot, segment_size_bytes=SMALL_SEGMENT_BYTES)
    wal.close()
    return contents


def test_new_cluster_bootstraps_and_restarts_to_the_same_state(member_factory):
    member = member_factory()
    member.ctx.wal_dir.mkdir(parents=True)  # empty, as the supervisor leaves it
    state, metadata = member.started()
    ctx = member.ctx
    assert msgpack.unpackb(metadata) == [ctx.member_id, ctx.cluster_id]
    assert state.hard_state == HardState(term=1, commit=3) and state.snapshot is None
    by_id = {p.member_id: p for p in ctx.initial_peers}
    assert [e.index for e in state.entries] == [1, 2, 3]
    for entry, member_id in zip(state.entries, sorted(by_id)):
        change = ConfChange.decode(entry.data)
        assert (entry.term, entry.type) == (1, EntryType.CONF_CHANGE)
        assert (change.type, change.node_id) == (ConfChangeType.ADD_VOTER, member_id)
        name, urls = msgpack.unpackb(change.context)
        assert (name, urls) == (by_id[member_id].name, list(by_id[member_id].peer_urls))
    assert not Path(str(ctx.wal_dir) + ".tmp").exists()

    assert member.stop() == 0
    assert member.started() == (state, metadata)
    assert member.stop() == 0
    assert '"wal opened"' in member.logs() and '"created": false' in member.logs()


def test_joining_member_starts_empty(member_factory):
    member = member_factory("--initial-cluster-state", "existing")
    state, metadata = member.started()
    assert (state.hard_state, state.snapshot, state.entries) == (HardState(), None, ())
    assert msgpack.unpackb(metadata) == [member.ctx.member_id, member.ctx.cluster_id]
    assert member.stop() == 0


def test_saves_are_group_committed_acknowledged_in_order_and_durable(member_factory):
    member = member_factory()
    sleep_ms = 200
    member.started(env={failpoints.WAL_SLEEP: str(sleep_ms)})
    started = time.monotonic()
    member.save(1, HardState(2, member.ctx.member_id, 3), entries(4, 1))
    assert member.persisted(1) == [1]
    # The failpoint sleeps before the fsync: a slow disk delays the acknowledgement.
    assert time.monotonic() - started >= sleep_ms / 1000

    count = 300  # sent within one failpoint sleep: the actor must batch them
    for seq in range(2, count + 2):
        member.save(seq, HardState(2, member.ctx.member_id, seq + 3), entries(seq + 3, 1))
    member.save(count + 2)  # empty: writes nothing, still ordered after the others
    seqs = member.persisted(count + 2)
    assert seqs == sorted(set(seqs)) and seqs[-1] == count + 2
    assert len(seqs) <= 10, f"one fsync per batch, not per SAVE: {len(seqs)} acks"

    member.kill()  # no clean close: only what was fsynced before PERSISTED survives
    contents = read_wal(member.ctx.wal_dir)
    assert [e.index for e in contents.entries] == list(range(1, count + 5))
    assert contents.entries[3:] == tuple(entries(4, count + 1))
    assert contents.hard_state == HardState(2, member.ctx.member_id, count + 4)


def test_snapshot_releases_segments_purges_markers_and_restarts_from_it(member_factory):
    member = member_factory("--max-wals", "1", "--max-snapshots", "1")
    ctx = member.ctx
    member.started()
    last, per_save = 3, 50
    for seq in range(1, 9):  # 400 entries of 1 KiB: several 64 KiB segments
        batch = entries(last + 1, per_save, size=1024)
        last += per_save
        member.save(seq, HardState(2, ctx.member_id, last), batch)
    member.persisted(8)
    segments_before = sorted(p.name for p in ctx.wal_dir.glob("*.wal"))
    assert len(segments_before) >= 5

    conf = ConfState(frozenset(p.member_id for p in ctx.initial_peers))
    for index in (300, 380):
        assert member.outbox.send("wal", Kind.SAVE_SNAPSHOT.value,
                                  snapshot_meta_to_wire(SnapshotMeta(index, 2, conf)))
    member.save(9)  # SAVE_SNAPSHOT has no answer of its own: wait behind it
    member.persisted(9)

    segments_after = sorted(p.name for p in ctx.wal_dir.glob("*.wal"))
    assert len(segments_after) < len(segments_before)
    assert segments_after == segments_before[-len(segments_after):], "oldest go first"
    assert [p.name for p in ctx.snap_dir.glob("*.snap")] == [
        f"{2:016x}-{380:016x}.snap"]

    assert member.stop() == 0
    restarted, _ = member.started()
    assert restarted.snapshot is not None and restarted.snapshot.meta == SnapshotMeta(380, 2, conf)
    assert [e.index for e in restarted.entries] == list(range(381, last + 1))
    assert restarted.hard_state == HardState(2, ctx.member_id, last)
    assert member.stop() == 0


def test_data_dir_of_another_cluster_is_refused(member_factory):
    other = member_factory(token="another-cluster").ctx
    member = member_factory()
    ctx = member.ctx
    with Wal.create(ctx.wal_dir, encode_metadata(other.member_id, other.cluster_id)) as wal:
        wal.sync()
    member.start()
    assert member.wait_exit() == 2
    logs = member.logs()
    assert f"belongs to member {other.member_id:x} of cluster {other.cluster_id:x}" in logs
    assert f"expected member {ctx.member_id:x} of cluster {ctx.cluster_id:x}" in logs


def test_flipped_byte_refuses_to_start_naming_the_file(member_factory):
    member = member_factory()
    ctx = member.ctx
    marker = b"\xab" * 100
    with Wal.create(ctx.wal_dir, encode_metadata(ctx.member_id, ctx.cluster_id),
                    segment_size_bytes=SMALL_SEGMENT_BYTES) as wal:
        wal.append(HardState(1, 0, 0), [Entry(1, 1, EntryType.NORMAL, marker)]
                   + entries(2, 5, term=1))
        wal.sync()
    (segment,) = ctx.wal_dir.glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[data.index(marker) + 50] ^= 0x01  # inside an early record, valid ones after
    segment.write_bytes(bytes(data))

    member.start()
    assert member.wait_exit() == 1
    logs = member.logs()
    assert "wal corrupt, refusing to start" in logs and segment.name in logs, logs
    assert '"offset"' in logs
    assert wal_exists(ctx.wal_dir) and segment.read_bytes() == bytes(data), "left as found"


def test_torn_tail_is_repaired_and_logged(member_factory):
    member = member_factory()
    ctx = member.ctx
    with Wal.create(ctx.wal_dir, encode_metadata(ctx.member_id, ctx.cluster_id),
                    segment_size_bytes=SMALL_SEGMENT_BYTES) as wal:
        wal.append(HardState(1, 0, 4), entries(1, 4, term=1))
        wal.sync()
        segment, end = wal.tail_position
    with open(segment, "r+b") as f:  # half of a record a crash interrupted
        f.seek(end)
        f.write((200).to_bytes(8, "little") + b"\x5a" * 40)

    state, _ = member.started()
    assert state.entries == tuple(entries(1, 4, term=1))
    assert member.stop() == 0
    repaired = [line for line in member.logs().splitlines() if "torn tail repaired" in line]
    assert len(repaired) == 1 and segment.name in repaired[0]
    assert f'"offset": {end}' in repaired[0], repaired[0]


# -- the writer in this process (no sockets): cases the raft actor rarely produces ----

def open_writer(ctx: MemberContext):
    opened = open_wal(ctx, SMALL_SEGMENT_BYTES)
    writer = WalWriter(opened.wal, SnapStore(ctx.snap_dir), opened.state.hard_state,
                       max_wals=None, max_snapshots=None)
    return opened, writer


def test_snapshot_received_from_the_leader_is_restartable(tmp_path):
    ctx = make_context(tmp_path / "data", tmp_path / "run",
                       "--initial-cluster-state", "existing")
    opened, writer = open_writer(ctx)
    meta = SnapshotMeta(500, 3, ConfState(frozenset(p.member_id for p in ctx.initial_peers)))
    result = writer.handle([
        (Kind.SAVE.value, [1, hard_state_to_wire(HardState(3, 0, 500)), [],
                           snapshot_meta_to_wire(meta)]),
        (Kind.SAVE.value, [2, hard_state_to_wire(HardState(3, 0, 502)),
                           entries(501, 2, term=3), None])])
    assert (result.persisted_seq, result.saves, result.entries, result.fsyncs) == (2, 2, 2, 1)
    opened.wal.close()

    # Its marker was saved too, so a restart opens at it (the log before it is gone).
    reopened = open_wal(ctx, SMALL_SEGMENT_BYTES)
    reopened.wal.close()
    assert reopened.state.snapshot is not None and reopened.state.snapshot.meta == meta
    assert reopened.state.entries == tuple(entries(501, 2, term=3))


def test_snapshot_above_the_durable_commit_stays_usable(tmp_path):
    ctx = make_context(tmp_path / "data", tmp_path / "run")
    opened, writer = open_writer(ctx)
    writer.handle([(Kind.SAVE.value, [1, hard_state_to_wire(HardState(2, 0, 5)),
                                      entries(4, 7), None])])
    meta = SnapshotMeta(8, 2, ConfState(frozenset(p.member_id for p in ctx.initial_peers)))
    writer.handle([(Kind.SAVE_SNAPSHOT.value, snapshot_meta_to_wire(meta))])
    opened.wal.close()

    reopened = open_wal(ctx, SMALL_SEGMENT_BYTES)
    reopened.wal.close()
    assert reopened.state.snapshot is not None and reopened.state.snapshot.meta == meta
    assert reopened.state.hard_state == HardState(2, 0, 8)
    assert [e.index for e in reopened.state.entries] == [9, 10]


def test_writer_refuses_what_raft_never_sends(tmp_path):
    ctx = make_context(tmp_path / "data", tmp_path / "run")
    opened, writer = open_writer(ctx)
    with opened.wal:
        writer.handle([(Kind.SAVE.value, [5, None, [], None])])
        with pytest.raises(ProtocolError, match="does not follow 5"):
            writer.handle([(Kind.SAVE.value, [5, None, [], None])])
        with pytest.raises(ProtocolError, match="'apply'"):
            writer.handle([(Kind.APPLY.value, [])])


def test_a_commit_only_hard_state_is_written_without_its_own_fsync(tmp_path):
    ctx = make_context(tmp_path / "data", tmp_path / "run")
    opened, writer = open_writer(ctx)
    with opened.wal:
        first = writer.handle([(Kind.SAVE.value, [1, hard_state_to_wire(HardState(2, 0, 3)),
                                                  entries(4, 2), None])])
        assert first.fsyncs == 1 and first.persisted_seq == 1
        # etcd's raft.MustSync: a new commit index alone is not worth an fsync...
        commit_only = writer.handle([(Kind.SAVE.value, [2, hard_state_to_wire(
            HardState(2, 0, 5)), [], None])])
        assert commit_only.fsyncs == 0 and commit_only.persisted_seq == 2
        # ...a new term or vote is, and the fsync carries the commit written before it.
        vote = writer.handle([(Kind.SAVE.value, [3, hard_state_to_wire(
            HardState(3, 7, 5)), [], None])])
        assert vote.fsyncs == 1
    reopened = open_wal(ctx, SMALL_SEGMENT_BYTES)
    reopened.wal.close()
    assert reopened.state.hard_state == HardState(3, 7, 5)
