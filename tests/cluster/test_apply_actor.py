"""The apply actor in a real spawned process, driven through its real sockets.

The test binds the inboxes of the actors the apply actor talks to ("raft", "network",
"supervisor") with the bus helpers and plays raft: it sends APPLY / APPLY_SNAPSHOT
and reads APPLIED, VISIBLE and READY. Every wait is bounded.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from petcd.actors.apply import actor as apply_actor
from petcd.actors.apply import batch, members, snapshot
from petcd.actors.apply.members import MemberTable
from petcd.actors.bus import codec
from petcd.actors.bus.sockets import Inbox, Outbox
from petcd.actors.member import MemberContext
from petcd.actors.protocol import Kind, member_id_prefix
from petcd.actors.raft.bootstrap import bootstrap
from petcd.actors.metrics import ActorMetrics
from petcd.actors.skeleton import Runtime, StopFlag
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.membershippb import membership_pb2 as mpb
from petcd.config import load
from petcd.storage.mvcc import ApplyEntry, MvccStore, layout
from petcd.storage.raftstate import (ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                                     SnapshotMeta)

WAIT_S = 10.0
pytestmark = pytest.mark.timeout(120)
PEER_URLS = {"m1": "http://127.0.0.1:2380", "m2": "http://127.0.0.1:2381",
             "m3": "http://127.0.0.1:2382"}


def _main(ctx: MemberContext) -> None:
    """Child process body, as the supervisor runs an actor."""
    sys.exit(apply_actor.run(ctx))


def make_ctx(data_dir: Path) -> MemberContext:
    cluster = ",".join(f"{n}={u}" for n, u in PEER_URLS.items())
    settings = load(["--name", "m1", "--data-dir", str(data_dir),
                     "--initial-cluster", cluster,
                     "--initial-advertise-peer-urls", PEER_URLS["m1"],
                     "--quota-backend-bytes", str(64 * 1024 * 1024),
                     "--log-level", "warn"], {})
    return MemberContext.from_settings(settings)


@dataclass
class Harness:
    """Fake raft, network and supervisor inboxes around one apply process."""

    ctx: MemberContext
    raft: Inbox
    network: Inbox
    supervisor: Inbox
    outbox: Outbox
    proc: Any = None
    durable: Any = None  # the last APPLIED to raft
    network_applied: Any = None  # the last APPLIED to the network, whole
    def start(self) -> list[int]:
        """Spawn the actor; wait for READY and the start-up APPLIED."""
        for inbox in (self.raft, self.network, self.supervisor):
            while inbox.drain(4096, 100):  # what a killed predecessor left in flight
                pass
        self.proc = mp.get_context("spawn").Process(target=_main, args=(self.ctx,),
                                                    name="petcd-apply")
        self.proc.start()
        assert self.expect(self.supervisor, Kind.READY) == "apply"
        applied = self.expect(self.raft, Kind.APPLIED)
        # The network's APPLIED also says the store changed without a list of changes,
        # nor of leases: the network rereads both from the store.
        self.network_applied = self.expect(self.network, Kind.APPLIED)
        assert self.network_applied == [*applied, None, None, None, None, None]
        assert self.expect(self.network, Kind.VISIBLE) == applied  # committed already
        self.durable = applied
        return list(applied)

    def expect(self, inbox: Inbox, kind: Kind, timeout_s: float = WAIT_S) -> Any:
        """The payload of the next message on `inbox`, which must be of `kind`."""
        got = self.next(inbox, timeout_s)
        assert got is not None, f"no {kind.value} within {timeout_s} s"
        assert got[0] == kind, got
        return got[1]

    def next(self, inbox: Inbox, timeout_s: float = WAIT_S) -> tuple[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and not self.proc.is_alive() and \
                    not inbox.socket.poll(0):
                raise AssertionError(f"apply actor exited with {self.proc.exitcode}")
            got = inbox.drain(1, 100)
            if got and got[0][0] != Kind.METRICS:  # exported every second, in between
                return got[0]
        return None

    def apply(self, entries: list[Entry]) -> tuple[list[Any], list[int]]:
        """Send one APPLY; return (its answers, APPLIED's index and revision) as the
        network sees them."""
        assert self.outbox.send("apply", Kind.APPLY.value, codec.entries_to_wire(entries),
                                timeout_ms=1000)
        return self.answers()

    def answers(self) -> tuple[list[Any], list[int]]:
        """APPLIED with the batch's answers, then VISIBLE once the batch is
        committed: the answers do not wait for the commit."""
        kind, payload = self.next(self.network) or ("timeout", None)
        assert kind == Kind.APPLIED, kind
        self.network_applied = payload
        rows = list(payload[6] or [])
        got = self.next(self.network)
        assert got is not None and got[0] == Kind.VISIBLE, got
        assert got[1] == payload[:2], (got, payload)
        return rows, list(payload[:2])

    def durable_reaching(self, want: list[int]) -> list[int]:
        """Raft's APPLIED messages (the durable index) until one says `want`, for at
        most WAIT_S: the last one heard. They come when the actor is idle, or at most
        every TELL_RAFT_EVERY_S, not after every batch."""
        deadline = time.monotonic() + WAIT_S
        while self.durable != want and time.monotonic() < deadline:
            got = self.next(self.raft, 0.2)
            if got is not None:
                assert got[0] == Kind.APPLIED, got
                self.durable = got[1]
        return list(self.durable)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.is_alive():
            os.kill(self.proc.pid, sig)
        self.proc.join(WAIT_S)
        assert not self.proc.is_alive(), "apply actor did not stop in time"
        code: int = self.proc.exitcode
        self.proc = None
        return code


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    ctx = make_ctx(tmp_path / "m1")
    ctx.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    raft = Inbox.for_actor(ctx.run_dir, "raft")
    network = Inbox.for_actor(ctx.run_dir, "network")
    supervisor = Inbox.for_actor(ctx.run_dir, "supervisor")
    h = Harness(ctx, raft, network, supervisor, Outbox(ctx.run_dir))
    try:
        yield h
    finally:
        if h.proc is not None and h.proc.is_alive():
            h.proc.kill()
            h.proc.join(WAIT_S)
        for closable in (h.outbox, raft, network, supervisor):
            closable.close()
        shutil.rmtree(ctx.run_dir, ignore_errors=True)


# -- entries --------------------------------------------------------------------------

def own_id(ctx: MemberContext, n: int) -> int:
    return (member_id_prefix(ctx.member_id) << 48) | n


def other_id(ctx: MemberContext, n: int) -> int:
    return (((member_id_prefix(ctx.member_id) + 1) & 0xFFFF) << 48) | n


def request(request_id: int, **field: Any) -> bytes:
    r = rpb.InternalRaftRequest(header=rpb.RequestHeader(ID=request_id), **field)
    return r.SerializeToString()


def put(request_id: int, key: bytes, value: bytes) -> bytes:
    return request(request_id, put=pb.PutRequest(key=key, value=value))


def bootstrap_entries(ctx: MemberContext) -> list[Entry]:
    contexts = {p.member_id: members.encode_context(p.name, p.peer_urls)
                for p in ctx.initial_peers}
    return list(bootstrap([p.member_id for p in ctx.initial_peers], contexts).entries)


def read_store(ctx: MemberContext) -> MvccStore:
    return MvccStore.open(str(ctx.db_dir), readonly=True)


def kvs(store: MvccStore) -> dict[bytes, tuple[bytes, int]]:
    resp = store.range(pb.RangeRequest(key=b"\0", range_end=b"\0"))
    return {kv.key: (kv.value, kv.version) for kv in resp.kvs}


# -- the actor process ----------------------------------------------------------------

def test_applies_batches_answers_own_requests_and_replays_idempotently(harness: Harness) -> None:
    ctx = harness.ctx
    assert harness.start() == [0, 1]  # empty store: etcd's first revision is 1

    boot = bootstrap_entries(ctx)
    rows, applied = harness.apply(boot)
    assert (rows, applied) == ([], [3, 1])
    # Raft hears of what an OS crash cannot undo: a commit is durable once the next
    # one has synced (or the store was synced at start).
    assert harness.durable_reaching([0, 1]) == [0, 1]

    txn = pb.TxnRequest(compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE,
                                            result=pb.Compare.EQUAL, value=b"1")],
                        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"c", value=b"3"))])
    entries = [
        Entry(2, 4, EntryType.NORMAL, b""),  # the new leader's no-op
        Entry(2, 5, EntryType.NORMAL, put(own_id(ctx, 1), b"a", b"1")),
        Entry(2, 6, EntryType.NORMAL, put(other_id(ctx, 1), b"b", b"2")),
        Entry(2, 7, EntryType.NORMAL, request(own_id(ctx, 2), txn=txn)),
        Entry(2, 8, EntryType.NORMAL, request(own_id(ctx, 3), range=pb.RangeRequest(key=b"a"))),
        Entry(2, 9, EntryType.NORMAL, put(own_id(ctx, 4), b"", b"x")),  # refused: no key
        Entry(2, 10, EntryType.NORMAL, request(
            own_id(ctx, 5), delete_range=pb.DeleteRangeRequest(key=b"b"))),
        Entry(2, 11, EntryType.NORMAL, request(
            own_id(ctx, 6), downgrade_info_set=mpb.DowngradeInfoSetRequest())),
    ]
    rows, applied = harness.apply(entries)
    assert applied == [11, 5]  # a, b, txn's c, delete b: revisions 2..5
    assert harness.durable_reaching([3, 5]) == [3, 5]
    by_id = {row[0]: row for row in rows}
    assert sorted(by_id) == [own_id(ctx, n) for n in range(1, 7)]  # own requests only

    def ok(n: int, cls: type) -> Any:
        _, success, body = by_id[own_id(ctx, n)]
        assert success is True
        resp = cls.FromString(body)
        assert (resp.header.cluster_id, resp.header.member_id, resp.header.raft_term) == \
            (ctx.cluster_id, ctx.member_id, 2)
        return resp

    assert ok(1, pb.PutResponse).header.revision == 2
    txn_resp = ok(2, pb.TxnResponse)
    assert txn_resp.succeeded and txn_resp.header.revision == 4
    range_resp = ok(3, pb.RangeResponse)
    assert [(kv.key, kv.value) for kv in range_resp.kvs] == [(b"a", b"1")]
    assert range_resp.header.revision == 4
    assert by_id[own_id(ctx, 4)][1:] == [False, ["INVALID_ARGUMENT",
                                                 "etcdserver: key is not provided"]]
    deleted = ok(5, pb.DeleteRangeResponse)
    assert (deleted.deleted, deleted.header.revision) == (1, 5)
    assert by_id[own_id(ctx, 6)][1] is False
    assert by_id[own_id(ctx, 6)][2][0] == "UNIMPLEMENTED"

    # A member publishes its name and client URLs (etcd's publish).
    attrs = mpb.ClusterMemberAttrSetRequest(
        member_ID=ctx.member_id,
        member_attributes=mpb.Attributes(name="m1", client_urls=["http://127.0.0.1:2379"]))
    rows, applied = harness.apply(
        [Entry(2, 12, EntryType.NORMAL, request(own_id(ctx, 7), cluster_member_attr_set=attrs))])
    assert rows == [[own_id(ctx, 7), True, b""]] and applied == [12, 5]
    assert harness.durable_reaching([11, 5]) == [11, 5]

    with read_store(ctx) as store:
        before = (kvs(store), store.hash_kv().hash, members.read_member_table(store))
    assert before[0] == {b"a": (b"1", 1), b"c": (b"3", 1)}
    table = before[2]
    assert [(m.member_id, m.name, m.peer_urls, m.is_learner) for m in table] == sorted(
        (p.member_id, p.name, p.peer_urls, False) for p in ctx.initial_peers)
    me = table.get(ctx.member_id)
    assert me is not None and me.client_urls == ("http://127.0.0.1:2379",)

    # Replaying everything (a restart's WAL replay) changes nothing and answers nothing.
    for chunk in (boot, entries, boot + entries):
        rows, applied = harness.apply(chunk)
        assert (rows, applied) == ([], [12, 5])
    with read_store(ctx) as store:
        assert (kvs(store), store.hash_kv().hash, members.read_member_table(store)) == before

    assert harness.stop(signal.SIGTERM) == 0
    assert harness.start() == [12, 5]  # synced at start: durable is all of it


def test_leases_granted_and_revoked_reach_the_network_with_applied(harness: Harness) -> None:
    ctx = harness.ctx
    harness.start()
    boot = bootstrap_entries(ctx)
    harness.apply(boot)
    leased = pb.PutRequest(key=b"k", value=b"v", lease=0x1A)
    entries = [
        Entry(2, 4, EntryType.NORMAL, request(
            own_id(ctx, 1), lease_grant=pb.LeaseGrantRequest(ID=0x1A, TTL=1))),
        Entry(2, 5, EntryType.NORMAL, request(
            other_id(ctx, 1), lease_grant=pb.LeaseGrantRequest(ID=0x2B, TTL=60))),
        Entry(2, 6, EntryType.NORMAL, request(own_id(ctx, 2), put=leased)),
        Entry(2, 7, EntryType.NORMAL, request(
            own_id(ctx, 3), lease_grant=pb.LeaseGrantRequest(ID=0x2B, TTL=60))),  # exists
        Entry(2, 8, EntryType.NORMAL, request(
            own_id(ctx, 4), lease_revoke=pb.LeaseRevokeRequest(ID=0x1A))),
        Entry(2, 9, EntryType.NORMAL, request(
            own_id(ctx, 5), lease_checkpoint=pb.LeaseCheckpointRequest(
                checkpoints=[pb.LeaseCheckpoint(ID=0x2B, remaining_TTL=30_000)]))),
    ]
    rows, applied = harness.apply(entries)
    assert applied == [9, 3]  # the put at 2, the revoke's delete at 3
    _, _, changes, leases, received_ns, answered_ns, _ = harness.network_applied
    assert 0 < received_ns <= answered_ns  # the batch's apply times (network/trace.py)
    # In apply order, whoever proposed them: [kind, id, value], granted with the TTL
    # granted (raised to the minimum, 2 s with etcd's default timing), revoked with 0,
    # checkpointed with the remaining milliseconds; refusals not at all.
    assert leases == [[1, 0x1A, 2], [1, 0x2B, 60], [2, 0x1A, 0], [3, 0x2B, 30_000]]
    assert [(c[0], c[2], c[5]) for c in changes] == [(2, b"k", False), (3, b"k", True)]
    by_id = {row[0]: row for row in rows}
    granted = pb.LeaseGrantResponse.FromString(by_id[own_id(ctx, 1)][2])
    assert (granted.ID, granted.TTL, granted.header.revision) == (0x1A, 2, 1)
    assert by_id[own_id(ctx, 3)][1:] == [False, ["FAILED_PRECONDITION",
                                                 "etcdserver: lease already exists"]]
    assert pb.LeaseRevokeResponse.FromString(by_id[own_id(ctx, 4)][2]).header.revision == 3
    assert by_id[own_id(ctx, 5)][1] is True
    with read_store(ctx) as store:
        assert [(lease.lease_id, lease.ttl_s, lease.remaining_ms)
                for lease in store.leases()] == [(0x2B, 60, 30_000)]
        assert kvs(store) == {}

    # A replay tells the network of nothing new; a restart, to reread the store.
    rows, applied = harness.apply(boot + entries)
    assert (rows, applied) == ([], [9, 3]) and harness.network_applied[2:4] == [[], []]
    assert harness.stop(signal.SIGTERM) == 0
    assert harness.start() == [9, 3]


def test_min_lease_ttl_is_etcds() -> None:
    """ceil(((3 x election ticks) // 2) x heartbeat), in seconds (etcdserver/server.go)."""
    assert apply_actor.min_lease_ttl_s(100, 10) == 2  # etcd's defaults: 1.5 s
    assert apply_actor.min_lease_ttl_s(100, 30) == 5  # 4.5 s
    assert apply_actor.min_lease_ttl_s(100, 11) == 2  # 16 ticks: 1.6 s
    assert apply_actor.min_lease_ttl_s(50, 10) == 1  # 0.75 s


def test_member_changes_are_stored_with_the_applied_index(harness: Harness) -> None:
    ctx = harness.ctx
    harness.start()
    harness.apply(bootstrap_entries(ctx))
    m2, m3 = (p.member_id for p in ctx.initial_peers if p.name != "m1")
    learner = 0x1234
    changes = [
        ConfChange(ConfChangeType.REMOVE, m3),
        ConfChange(ConfChangeType.ADD_LEARNER, learner,
                   members.encode_context("", ["http://127.0.0.1:2390"])),
        ConfChange(ConfChangeType.ADD_VOTER, learner),  # promote
        ConfChange(ConfChangeType.ADD_LEARNER, m2),  # a voter is never demoted
    ]
    entries = [Entry(2, 4 + i, EntryType.CONF_CHANGE, cc.encode())
               for i, cc in enumerate(changes)]
    assert harness.apply(entries[:2]) == ([], [5, 1])
    with read_store(ctx) as store:
        table = members.read_member_table(store)
    assert table.get(learner).is_learner and table.is_removed(m3)  # type: ignore[union-attr]
    assert harness.apply(entries[2:]) == ([], [7, 1])
    assert harness.stop(signal.SIGINT) == 0

    assert harness.start() == [7, 1]  # the table survives a restart, with the index
    with read_store(ctx) as store:
        table = members.read_member_table(store)
    assert table.conf_state() == ConfState(frozenset({ctx.member_id, m2, learner}))
    assert table.removed == {m3}
    assert table.get(learner).peer_urls == ("http://127.0.0.1:2390",)  # type: ignore[union-attr]
    assert harness.stop() == 0


def test_kill_9_mid_stream_then_restart_applies_each_entry_once(harness: Harness) -> None:
    ctx = harness.ctx
    harness.start()
    harness.apply(bootstrap_entries(ctx))
    # Up to 300 APPLY messages of 5 puts each, paced, killed with SIGKILL once 300
    # entries are applied: entry i puts k=i, so k's version counts the puts applied.
    entries = [Entry(2, index, EntryType.NORMAL, put(own_id(ctx, index), b"k", b"%d" % index))
               for index in range(4, 4 + 1500)]
    applied_index, deadline = 0, time.monotonic() + WAIT_S
    for start in range(0, len(entries), 5):
        assert harness.outbox.send("apply", Kind.APPLY.value,
                                   codec.entries_to_wire(entries[start:start + 5]),
                                   timeout_ms=1000)
        for _, payload in harness.raft.drain(4096, 2):
            applied_index = max(applied_index, payload[0])
        if applied_index >= 300 or time.monotonic() > deadline:
            break
    assert harness.stop(signal.SIGKILL) == -signal.SIGKILL
    assert applied_index >= 300, "the actor applied too little before the kill"

    index, revision = harness.start()
    assert 300 <= index < 1503, "killed mid-stream"
    assert revision == 1 + (index - 3)  # one revision per applied put, none twice
    with read_store(ctx) as store:
        assert kvs(store) == {b"k": (b"%d" % index, index - 3)}

    # Raft hands out everything again from the start: only the rest is applied.
    harness.outbox.send("apply", Kind.APPLY.value,
                        codec.entries_to_wire(bootstrap_entries(ctx) + entries),
                        timeout_ms=1000)
    rows, applied = harness.answers()
    assert applied == [1503, 1501]
    assert sorted(row[0] for row in rows) == [own_id(ctx, i) for i in range(index + 1, 1504)]
    with read_store(ctx) as store:
        assert kvs(store) == {b"k": (b"1503", 1500)}
    assert harness.stop() == 0


def _leader_store(path: Path, ctx: MemberContext, last_index: int) -> MvccStore:
    """A store as a leader has it: bootstrap, then puts of x<i> up to `last_index`."""
    store = MvccStore.open(str(path), sync=False)
    plan = batch.plan_batch(bootstrap_entries(ctx), 0, MemberTable(), 1)
    store.apply_batch(plan.store_entries)
    store.apply_batch([
        ApplyEntry(i, 3, rpb.InternalRaftRequest(put=pb.PutRequest(key=b"x%d" % i, value=b"v")))
        for i in range(4, last_index + 1)
    ])
    return store


def test_snapshot_replaces_the_store(harness: Harness, tmp_path: Path) -> None:
    ctx = harness.ctx
    harness.start()
    harness.apply(bootstrap_entries(ctx) + [
        Entry(2, 4, EntryType.NORMAL, put(own_id(ctx, 1), b"old", b"gone"))])

    # The leader's store is at index 50 when it copies its data for a snapshot at 40.
    with _leader_store(tmp_path / "leader", ctx, 50) as leader:
        snap_file = snapshot.db_file_path(ctx.snap_dir, 40)
        snapshot.write_db_file(leader, snap_file)
        leader_kvs, leader_rev = kvs(leader), leader.current_revision()
    voters = frozenset(p.member_id for p in ctx.initial_peers)
    meta = SnapshotMeta(40, 3, ConfState(voters))

    with read_store(ctx) as reader:  # a reader process that follows, as the network does
        assert kvs(reader) == {b"old": (b"gone", 1)}
        harness.outbox.send("apply", Kind.APPLY_SNAPSHOT.value,
                            codec.snapshot_meta_to_wire(meta), timeout_ms=1000)
        assert harness.answers() == ([], [50, leader_rev])
        assert kvs(reader) == leader_kvs and b"old" not in leader_kvs
        assert members.read_member_table(reader).conf_state() == meta.conf
    assert not snap_file.exists()
    assert [p.name for p in ctx.db_dir.iterdir() if p.name.startswith("gen-")] == ["gen-000002"]

    # Raft sends the entries after the snapshot: those the db already holds are skipped.
    after = [Entry(3, i, EntryType.NORMAL, put(own_id(ctx, i), b"y%d" % i, b"w"))
             for i in range(41, 53)]
    rows, applied = harness.apply(after)
    assert [row[0] for row in rows] == [own_id(ctx, 51), own_id(ctx, 52)]
    assert applied == [52, leader_rev + 2]
    # The same snapshot again (a replay) is already applied.
    harness.outbox.send("apply", Kind.APPLY_SNAPSHOT.value,
                        codec.snapshot_meta_to_wire(meta), timeout_ms=1000)
    assert harness.answers() == ([], [52, leader_rev + 2])
    assert harness.stop() == 0
    assert harness.start() == [52, leader_rev + 2]
    assert harness.stop() == 0


def test_a_gap_in_the_log_stops_the_actor(harness: Harness) -> None:
    harness.start()
    harness.outbox.send("apply", Kind.APPLY.value,
                        codec.entries_to_wire([Entry(1, 2, EntryType.NORMAL, b"")]),
                        timeout_ms=1000)
    assert harness.proc is not None
    harness.proc.join(WAIT_S)
    assert harness.proc.exitcode == 1


# -- pure parts -----------------------------------------------------------------------

def test_snapshot_install_refuses_a_file_older_than_its_snapshot(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "m1")
    with _leader_store(tmp_path / "leader", ctx, 30) as leader:
        snapshot.write_db_file(leader, tmp_path / "old.snap.db")
    target = tmp_path / "db"
    with MvccStore.open(str(target), sync=False) as store:
        generation = store.backend.generation
    with pytest.raises(snapshot.SnapshotInstallError, match="below the snapshot's 40"):
        snapshot.install_db_file(str(target), generation, tmp_path / "old.snap.db", 40)
    with pytest.raises(snapshot.SnapshotInstallError, match="missing"):
        snapshot.install_db_file(str(target), generation, tmp_path / "none.snap.db", 1)
    (tmp_path / "junk.snap.db").write_bytes(b"not lmdb" * 1000)
    with pytest.raises(snapshot.SnapshotInstallError):
        snapshot.install_db_file(str(target), generation, tmp_path / "junk.snap.db", 1)
    with MvccStore.open(str(target), sync=False) as store:  # untouched
        assert (store.backend.generation, store.applied_index()) == (generation, 0)


def test_snapshot_install_takes_a_schema_1_file_and_the_store_upgrades_it(tmp_path: Path) -> None:
    """A member of this build catching up from a member still on schema 1."""
    ctx = make_ctx(tmp_path / "m1")
    with _leader_store(tmp_path / "leader", ctx, 30) as leader:
        with leader.backend.env.begin(write=True) as t:  # what schema 1 had beside key_revs
            t.put(b"k", layout.rev_bytes(2, 0), db=leader.backend.env.open_db(layout.DB_KEYS_V1, txn=t))
            t.put(layout.META_SCHEMA, layout.SCHEMA_V1, db=leader.backend.dbs.meta)
        expected = leader.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"))
        snapshot.write_db_file(leader, tmp_path / "v1.snap.db")
    target = tmp_path / "db"
    with MvccStore.open(str(target), sync=False) as store:
        generation = store.backend.generation
    snapshot.install_db_file(str(target), generation, tmp_path / "v1.snap.db", 30)
    with MvccStore.open(str(target), sync=False) as store:
        with store.backend.env.begin() as t:
            assert t.get(layout.META_SCHEMA, db=store.backend.dbs.meta) == layout.SCHEMA_VERSION
        got = store.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"))
        assert got.kvs == expected.kvs and got.kvs


def test_snapshot_install_upgrades_a_schema_2_file_before_readers_can_switch(
        tmp_path: Path) -> None:
    """A member of this build catching up from a member still on schema 2 (no lease
    tables): a reader (the network actor) may reopen the store as soon as the new
    generation is published, before the apply actor's writable open."""
    ctx = make_ctx(tmp_path / "m1")
    with _leader_store(tmp_path / "leader", ctx, 30) as leader:
        b = leader.backend
        with b.env.begin(write=True) as t:
            t.drop(b.dbs.leases, delete=True)
            t.drop(b.dbs.lease_keys, delete=True)
            t.put(layout.META_SCHEMA, layout.SCHEMA_V2, db=b.dbs.meta)
        expected = kvs(leader)
        snapshot.write_db_file(leader, tmp_path / "v2.snap.db")
    target = tmp_path / "db"
    with MvccStore.open(str(target), sync=False) as store:
        generation = store.backend.generation
    snapshot.install_db_file(str(target), generation, tmp_path / "v2.snap.db", 30)
    with MvccStore.open(str(target), readonly=True) as reader:
        with reader.backend.env.begin() as t:
            assert t.get(layout.META_SCHEMA, db=reader.backend.dbs.meta) == layout.SCHEMA_VERSION
        assert reader.leases() == [] and kvs(reader) == expected


def test_remove_applied_db_files_keeps_newer_ones(tmp_path: Path) -> None:
    for index in (5, 9, 12):
        snapshot.db_file_path(tmp_path, index).write_bytes(b"x")
    (tmp_path / f"{7:016x}.snap.db.tmp").write_bytes(b"x")
    (tmp_path / "0000000000000001-0000000000000005.snap").write_bytes(b"marker")
    removed = snapshot.remove_applied_db_files(tmp_path, 9)
    assert sorted(p.name for p in removed) == [
        f"{5:016x}.snap.db", f"{7:016x}.snap.db.tmp", f"{9:016x}.snap.db"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000000000000001-0000000000000005.snap", f"{12:016x}.snap.db"]


def test_member_table_encoding_round_trips_and_is_deterministic() -> None:
    table = MemberTable()
    for node, name in ((3, "c"), (1, "a"), (2, "b")):
        table = table.apply_conf_change(ConfChange(
            ConfChangeType.ADD_VOTER, node, members.encode_context(name, [f"http://h{node}:2380"])))
    table = table.apply_conf_change(ConfChange(ConfChangeType.REMOVE, 2))
    table = table.set_attributes(1, "a", ["http://h1:2379"])  # type: ignore[assignment]
    blob = members.encode(table)
    assert members.decode(blob) == table and members.decode(None) == MemberTable()
    assert [m.member_id for m in table] == [1, 3] and table.removed == {2}
    assert table.set_attributes(2, "b", []) is None  # removed members publish nothing
    assert table.get(1).to_pb().clientURLs == ["http://h1:2379"]  # type: ignore[union-attr]
    with pytest.raises(members.MemberTableError):
        members.decode(b"\x93\x02\x90\x90")  # a format this build does not read
    with pytest.raises(members.MemberTableError):
        members.decode_context(b"\xc1")


def test_plan_batch_refuses_a_gap_and_skips_applied_entries() -> None:
    entries = [Entry(1, i, EntryType.NORMAL, b"") for i in range(1, 6)]
    plan = batch.plan_batch(entries, 3, MemberTable(), 1)
    assert [e.index for e in plan.store_entries] == [4, 5]
    with pytest.raises(batch.LogGapError):
        batch.plan_batch(entries[4:], 3, MemberTable(), 1)
    # Undecodable entry data advances the index on every member alike.
    plan = batch.plan_batch([Entry(1, 1, EntryType.NORMAL, b"\xff\xff")], 0, MemberTable(), 1)
    assert plan.store_entries == [ApplyEntry(1, 1, None)] and plan.notes


class _Log:
    """The actor's logger, keeping its warnings."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: None


@pytest.mark.parametrize("apply_s", [0.0, 0.25])
def test_a_write_whose_apply_was_slow_is_logged_as_etcd_logs_it(harness: Harness,
                                                                 apply_s: float) -> None:
    """In the actor's own process, with a clock that moves `apply_s` per reading: a
    request is timed over its apply alone, on any member (etcd's applierV3backend)."""
    ctx = harness.ctx
    now = [0.0]

    def clock() -> float:
        now[0] += apply_s
        return now[0]

    log = _Log()
    with Inbox.for_actor(ctx.run_dir, "apply") as inbox:
        runtime = Runtime(ctx, "apply", log, StopFlag(), inbox, harness.outbox,
                          ActorMetrics("apply"))
        actor = apply_actor.ApplyActor(runtime, apply_actor.open_store(ctx), clock=clock)
        try:
            entries = bootstrap_entries(ctx)
            n = len(entries)
            entries += [Entry(1, n + 1, EntryType.NORMAL, put(own_id(ctx, 1), b"k", b"v")),
                        Entry(1, n + 2, EntryType.NORMAL, put(other_id(ctx, 1), b"k", b"w")),
                        Entry(1, n + 3, EntryType.NORMAL, request(
                            own_id(ctx, 2), delete_range=pb.DeleteRangeRequest(key=b"k")))]
            actor.handle([(Kind.APPLY.value, codec.entries_to_wire(entries))])
        finally:
            actor.close()
    rows, applied = harness.answers()
    assert len(rows) == 2 and applied[0] == n + 3  # applied and answered as usual
    if apply_s == 0.0:
        assert log.warnings == []
        return
    # Member changes are no requests; both puts (the other member's too) and the delete are.
    assert [e for e, _ in log.warnings] == ["apply request took too long"] * 3
    first = log.warnings[0][1]
    assert first["took_ms"] == 250.0 and first["expected_duration_ms"] == 100
    assert first["prefix"] == ""
    assert first["request"] == f'header:<ID:{own_id(ctx, 1)}> put:<key: "k" value_size: 1>'
    assert first["response"].startswith("size:")
    assert log.warnings[2][1]["request"].endswith('delete_range:<key: "k">')
