"""Leases as state machine state (storage/mvcc/leases.py, lessor.py), on real LMDB
files: grant, keys attached by puts and detached by puts and deletes, revoke,
checkpoint, reads from other processes' openers, restart and the schema-2 upgrade."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import lmdb
import pytest

from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import (ApplyEntry, Change, Lease, LeaseChange, MvccError, MvccStore,
                                errors, layout, lease_requests, quota)
from petcd.storage.mvcc.lease_requests import LeaseChangeKind

GRANTED, REVOKED, CHECKPOINTED = LeaseChangeKind

Op = pb.RequestOp
A = pb.AlarmRequest
MIN_TTL_S = 5
TIMEOUT_S = 30


class Applier:
    """Feeds requests as consecutive Raft entries of term 1, one batch each."""

    def __init__(self, store: MvccStore) -> None:
        self.store = store
        self.index = 0
        self.changes: list[Change] = []
        self.lease_changes: list[LeaseChange] = []

    def __call__(self, request):  # type: ignore[no-untyped-def]
        self.index += 1
        [result] = self.store.apply_batch([ApplyEntry(self.index, 1, request)],
                                          changes=self.changes,
                                          lease_changes=self.lease_changes)
        if isinstance(result, MvccError):
            raise result
        return result

    def error(self, request) -> errors.ErrorKind:  # type: ignore[no-untyped-def]
        with pytest.raises(MvccError) as info:
            self(request)
        return info.value.kind


def grant(lease_id: int, ttl_s: int = 60) -> pb.LeaseGrantRequest:
    return pb.LeaseGrantRequest(ID=lease_id, TTL=ttl_s)


def revoke(lease_id: int) -> pb.LeaseRevokeRequest:
    return pb.LeaseRevokeRequest(ID=lease_id)


def checkpoint(*pairs: tuple[int, int]) -> pb.LeaseCheckpointRequest:
    return pb.LeaseCheckpointRequest(
        checkpoints=[pb.LeaseCheckpoint(ID=i, remaining_TTL=r) for i, r in pairs])


def put(key: bytes, lease: int = 0, **kw) -> pb.PutRequest:  # type: ignore[no-untyped-def]
    return pb.PutRequest(key=key, value=b"v", lease=lease, **kw)


def live(store: MvccStore) -> dict[bytes, int]:
    """Every live key and the lease its KeyValue names."""
    r = pb.RangeRequest(key=b"\x00", range_end=b"\x00")
    return {kv.key: kv.lease for kv in store.range(r).kvs}


def open_store(path: Path, **kw) -> MvccStore:  # type: ignore[no-untyped-def]
    return MvccStore.open(str(path), sync=False, min_lease_ttl_s=MIN_TTL_S, **kw)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = open_store(tmp_path / "db")
    yield s
    s.close()


@pytest.fixture
def apply(store: MvccStore) -> Applier:
    return Applier(store)


# ---- etcd's errors ---------------------------------------------------------------------


def test_lease_errors_are_etcds() -> None:
    assert (errors.LEASE_EXISTS.code, errors.LEASE_EXISTS.message) == (
        "FAILED_PRECONDITION", "etcdserver: lease already exists")
    assert (errors.LEASE_TTL_TOO_LARGE.code, errors.LEASE_TTL_TOO_LARGE.message) == (
        "OUT_OF_RANGE", "etcdserver: too large lease TTL")
    assert (errors.LEASE_NOT_FOUND.code, errors.LEASE_NOT_FOUND.message) == (
        "NOT_FOUND", "etcdserver: requested lease not found")


# ---- grant -------------------------------------------------------------------------------


def test_grant_answers_the_id_and_ttl_granted_and_makes_no_revision(store: MvccStore,
                                                                    apply: Applier) -> None:
    apply(put(b"a"))
    resp = apply(grant(0x1A, 60))
    assert (resp.ID, resp.TTL, resp.header.revision) == (0x1A, 60, 2)
    assert store.current_revision() == 2 and apply.changes[-1].main == 2
    assert store.lease(0x1A) == (60, 0)
    assert apply.lease_changes == [LeaseChange(GRANTED, 0x1A, 60)]


def test_a_ttl_below_the_minimum_is_raised_to_it(store: MvccStore, apply: Applier) -> None:
    # etcd 3.4 grants TTL 0 and -5 as its minimum (2 s by default) too.
    asked = ((1, 0), (2, -5), (3, MIN_TTL_S - 1), (4, MIN_TTL_S), (5, MIN_TTL_S + 1))
    for lease_id, ttl_s in asked:
        assert apply(grant(lease_id, ttl_s)).TTL == max(ttl_s, MIN_TTL_S)
    assert [(lease.lease_id, lease.ttl_s) for lease in store.leases()] == [
        (1, MIN_TTL_S), (2, MIN_TTL_S), (3, MIN_TTL_S), (4, MIN_TTL_S), (5, MIN_TTL_S + 1)]


def test_grant_refuses_too_large_ttls_existing_ids_and_id_zero(store: MvccStore,
                                                                apply: Applier) -> None:
    assert apply(grant(7, lease_requests.MAX_LEASE_TTL_S)).TTL == 9_000_000_000
    assert apply.error(grant(8, lease_requests.MAX_LEASE_TTL_S + 1)) == errors.LEASE_TTL_TOO_LARGE
    assert apply.error(grant(7, 10)) == errors.LEASE_EXISTS
    assert store.lease(7) == (9_000_000_000, 0)  # untouched
    # Proposers choose an ID for a client's 0; an entry with 0 is refused as etcd's
    # lessor.Grant refuses NoLease.
    assert apply.error(grant(0, 10)) == errors.LEASE_NOT_FOUND
    assert [lease.lease_id for lease in store.leases()] == [7]
    assert apply.lease_changes == [LeaseChange(GRANTED, 7, 9_000_000_000)]  # refusals changed nothing


def test_negative_ids_are_leases_too_and_list_after_the_positive_ones(store: MvccStore,
                                                                     apply: Applier) -> None:
    apply(grant(-7))
    apply(grant(1 << 62))
    apply(grant(3))
    assert [lease.lease_id for lease in store.leases()] == [3, 1 << 62, -7]  # etcd's uint64 order
    apply(put(b"k", -7))
    assert store.lease_keys(-7) == [b"k"]


# ---- keys attached by puts, detached by puts and deletes ----------------------------------


def test_a_put_with_a_lease_attaches_the_key(store: MvccStore, apply: Applier) -> None:
    apply(grant(5))
    apply(put(b"b", 5))
    apply(put(b"a", 5))
    apply(put(b"c"))
    assert store.lease_keys(5) == [b"a", b"b"]  # sorted, whatever the order of the puts
    assert live(store) == {b"a": 5, b"b": 5, b"c": 0}
    apply(put(b"a", 5))  # again under the same lease: nothing moves
    assert store.lease_keys(5) == [b"a", b"b"]


def test_a_put_with_an_unknown_lease_is_refused(store: MvccStore, apply: Applier) -> None:
    assert apply.error(put(b"k", 9)) == errors.LEASE_NOT_FOUND
    txn = pb.TxnRequest(success=[Op(request_put=put(b"j")), Op(request_put=put(b"k", 9))])
    assert apply.error(txn) == errors.LEASE_NOT_FOUND
    apply(grant(9))
    apply(revoke(9))
    assert apply.error(put(b"k", 9)) == errors.LEASE_NOT_FOUND  # revoked: gone for good
    assert live(store) == {} and store.lease_keys(9) == []


def test_another_lease_or_none_moves_the_key_and_ignore_lease_keeps_it(store: MvccStore,
                                                                       apply: Applier) -> None:
    apply(grant(5))
    apply(grant(7))
    apply(put(b"k", 5))
    apply(put(b"k", 7))
    assert (store.lease_keys(5), store.lease_keys(7)) == ([], [b"k"])
    apply(put(b"k", ignore_lease=True))
    assert store.lease_keys(7) == [b"k"] and live(store) == {b"k": 7}
    apply(put(b"k"))
    assert (store.lease_keys(5), store.lease_keys(7)) == ([], [])
    assert live(store) == {b"k": 0}


def test_a_delete_detaches_the_key(store: MvccStore, apply: Applier) -> None:
    apply(grant(5))
    for key in (b"a", b"b", b"c", b"d"):
        apply(put(key, 5))
    apply(pb.DeleteRangeRequest(key=b"a"))
    assert store.lease_keys(5) == [b"b", b"c", b"d"]
    apply(pb.DeleteRangeRequest(key=b"b", range_end=b"d"))
    assert store.lease_keys(5) == [b"d"]
    apply(pb.TxnRequest(success=[Op(request_delete_range=pb.DeleteRangeRequest(key=b"d"))]))
    assert store.lease_keys(5) == []
    apply(put(b"a"))  # a key that comes back without a lease stays without
    assert store.lease_keys(5) == [] and live(store) == {b"a": 0}


def test_txn_puts_attach_and_move_keys(store: MvccStore, apply: Applier) -> None:
    apply(grant(5))
    apply(grant(7))
    apply(put(b"x", 5))
    resp = apply(pb.TxnRequest(success=[
        Op(request_put=put(b"x", 7)),
        Op(request_put=put(b"y", 5)),
        Op(request_txn=pb.TxnRequest(success=[Op(request_put=put(b"z", 5))])),
    ]))
    assert resp.succeeded
    assert (store.lease_keys(5), store.lease_keys(7)) == ([b"y", b"z"], [b"x"])
    assert live(store) == {b"x": 7, b"y": 5, b"z": 5}
    # A txn refused after a change (a put under a from-key delete, etcd's panic case)
    # leaves the lease tables as they were.
    refused = pb.TxnRequest(success=[
        Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"\x00")),
        Op(request_put=pb.PutRequest(key=b"y", ignore_value=True))])
    assert apply.error(refused) == errors.KEY_NOT_FOUND
    assert (store.lease_keys(5), store.lease_keys(7)) == ([b"y", b"z"], [b"x"])


# ---- revoke ------------------------------------------------------------------------------


def test_revoke_deletes_every_attached_key_in_one_revision(store: MvccStore,
                                                           apply: Applier) -> None:
    apply(grant(5))
    apply(grant(7))
    for key in (b"c", b"a", b"b"):
        apply(put(key, 5))
    apply(put(b"other", 7))
    apply(put(b"free"))
    rev = store.current_revision()
    apply.changes.clear()
    resp = apply(revoke(5))
    assert resp.header.revision == rev + 1 == store.current_revision()
    # Deleted in key order, as etcd sorts them, each change with the value it had.
    assert [(c.main, c.sub, c.key, c.tombstone) for c in apply.changes] == [
        (rev + 1, 0, b"a", True), (rev + 1, 1, b"b", True), (rev + 1, 2, b"c", True)]
    assert all(c.prev_kv is not None for c in apply.changes)
    assert live(store) == {b"other": 7, b"free": 0}
    assert store.lease(5) is None and store.lease_keys(5) == []
    assert [lease.lease_id for lease in store.leases()] == [7]
    assert apply.lease_changes == [LeaseChange(GRANTED, 5, 60), LeaseChange(GRANTED, 7, 60),
                                   LeaseChange(REVOKED, 5, 0)]
    assert apply.error(revoke(5)) == errors.LEASE_NOT_FOUND
    assert apply.error(revoke(0)) == errors.LEASE_NOT_FOUND


def test_revoking_a_lease_without_keys_makes_no_revision(store: MvccStore,
                                                         apply: Applier) -> None:
    apply(grant(5))
    apply(put(b"k", 5))
    apply(put(b"k"))  # moved off the lease
    rev = store.current_revision()
    assert apply(revoke(5)).header.revision == rev == store.current_revision()
    assert live(store) == {b"k": 0}


# ---- checkpoint --------------------------------------------------------------------------


def test_checkpoint_sets_the_remaining_ttl_of_the_leases_that_exist(store: MvccStore,
                                                                     apply: Applier) -> None:
    apply(grant(5, 600))
    apply(grant(7, 600))
    rev = store.current_revision()
    # petcd's checkpoints are milliseconds: 300 s, unknown 9 ignored, 42 s
    resp = apply(checkpoint((5, 300_000), (9, 100_000), (7, 42_000)))
    assert resp.header.revision == rev == store.current_revision()
    assert (store.lease(5), store.lease(7), store.lease(9)) == (
        (600, 300_000), (600, 42_000), None)
    apply(checkpoint((5, 0)))  # what etcd's Renew proposes: back to the full TTL
    assert store.lease(5) == (600, 0)
    # Every member's lessor learns of them: a new leader goes on from the last one.
    assert apply.lease_changes == [
        LeaseChange(GRANTED, 5, 600), LeaseChange(GRANTED, 7, 600),
        LeaseChange(CHECKPOINTED, 5, 300_000), LeaseChange(CHECKPOINTED, 7, 42_000),
        LeaseChange(CHECKPOINTED, 5, 0)]


# ---- alarms and quota (etcd's capped, corrupt and quota appliers) ---------------------------


def test_nospace_refuses_grants_only_and_corrupt_spares_checkpoints(store: MvccStore,
                                                                      apply: Applier) -> None:
    apply(grant(5))
    apply(put(b"k", 5))
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    assert apply.error(grant(6)) == errors.NO_SPACE
    apply(checkpoint((5, 30)))
    assert store.lease(6) is None and store.lease(5) == (60, 30)
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.CORRUPT))
    assert apply.error(grant(9)) == errors.CORRUPT
    assert apply.error(revoke(5)) == errors.CORRUPT
    apply(checkpoint((5, 20)))
    assert store.lease(5) == (60, 20) and store.lease_keys(5) == [b"k"]
    apply(A(action=A.DEACTIVATE, memberID=1, alarm=pb.CORRUPT))
    apply(revoke(5))  # a revoke frees space: allowed under NOSPACE
    assert store.lease(5) is None and live(store) == {}


def test_a_grant_over_quota_is_applied_and_answered_nospace(tmp_path: Path) -> None:
    with open_store(tmp_path / "db", quota_bytes=1024**2) as s:
        a = Applier(s)
        value = b"x" * 4000
        while s.fits_quota(quota.request_cost(grant(1))):
            try:
                a(pb.PutRequest(key=b"k%06d" % a.index, value=value))
            except MvccError as err:  # the last puts no longer fit, though a grant does
                assert err.kind == errors.NO_SPACE
        assert a.error(grant(1)) == errors.NO_SPACE
        assert s.lease(1) == (60, 0)  # applied on every member alike
        assert a.lease_changes == [LeaseChange(GRANTED, 1, 60)]


# ---- reads, restart, other processes, hashes -----------------------------------------------


def _lease_reader(path: str, requests: mp.Queue[str], answers: mp.Queue[object]) -> None:
    """Child process, as the network actor: what its read-only store says of leases."""
    with open_store(Path(path), readonly=True) as reader:
        while requests.get(timeout=TIMEOUT_S) != "stop":
            answers.put((reader.leases(), reader.lease(7), reader.lease_keys(5)))


def test_a_reader_process_sees_the_lease_tables(tmp_path: Path) -> None:
    path = tmp_path / "db"
    ctx = mp.get_context("spawn")  # no LMDB handle inherited across fork
    requests: mp.Queue[str] = ctx.Queue()
    answers: mp.Queue[object] = ctx.Queue()
    with open_store(path) as s:
        a = Applier(s)
        a(grant(5, 60))
        a(grant(7, 90))
        a(put(b"b", 5))
        a(put(b"a", 5))
        a(checkpoint((7, 45)))
        child = ctx.Process(target=_lease_reader, args=(str(path), requests, answers))
        child.start()
        try:
            requests.put("read")
            assert answers.get(timeout=TIMEOUT_S) == (
                [(5, 60, 0), (7, 90, 45)], (90, 45), [b"a", b"b"])
            a(revoke(7))
            a(pb.DeleteRangeRequest(key=b"a"))
            requests.put("read")  # each read sees the newest commit
            assert answers.get(timeout=TIMEOUT_S) == ([Lease(5, 60, 0)], None, [b"b"])
            requests.put("stop")
            child.join(TIMEOUT_S)
            assert child.exitcode == 0
        finally:
            if child.is_alive():
                child.kill()


def test_leases_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_store(path) as s:
        a = Applier(s)
        a(grant(5, 60))
        a(grant(7, 90))
        a(put(b"b", 5))
        a(put(b"a", 5))
        a(put(b"c", 7))
        a(checkpoint((7, 45)))
    with open_store(path) as s:
        assert s.leases() == [Lease(5, 60, 0), Lease(7, 90, 45)]
        assert (s.lease_keys(5), s.lease_keys(7)) == ([b"a", b"b"], [b"c"])
        s.apply(s.applied_index() + 1, 1, revoke(5))
        assert live(s) == {b"c": 7} and s.leases() == [Lease(7, 90, 45)]
    with open_store(path, readonly=True) as reader:
        assert reader.leases() == [Lease(7, 90, 45)] and reader.lease(5) is None
        assert reader.lease_keys(5) == [] and reader.lease_keys(7) == [b"c"]


def test_defragment_keeps_the_lease_tables(store: MvccStore, apply: Applier) -> None:
    apply(grant(5))
    apply(put(b"k", 5))
    store.defragment()
    assert store.leases() == [Lease(5, 60, 0)] and store.lease_keys(5) == [b"k"]


def test_hash_covers_the_lease_table_and_hash_kv_does_not(store: MvccStore,
                                                          apply: Applier) -> None:
    apply(put(b"k"))
    before, before_kv = store.hash(), store.hash_kv()
    apply(grant(5))
    after_grant = store.hash()
    apply(checkpoint((5, 30)))
    assert len({before, after_grant, store.hash()}) == 3  # etcd's Hash reads the lease bucket
    assert store.hash_kv() == before_kv


def test_lease_changes_are_collected_in_apply_order_and_not_on_replay(store: MvccStore) -> None:
    def batch(*entries: ApplyEntry) -> list[LeaseChange]:
        changes: list[LeaseChange] = []
        store.apply_batch(list(entries), lease_changes=changes)
        return changes

    def entry(index: int, **fields) -> ApplyEntry:  # type: ignore[no-untyped-def]
        return ApplyEntry(index, 1, rpb.InternalRaftRequest(**fields))

    assert batch(entry(1, lease_grant=grant(5, 10)), entry(2, lease_grant=grant(5, 10)),
                 entry(3, put=put(b"k", 5)), entry(4, lease_revoke=revoke(5)),
                 entry(5, lease_grant=grant(5, 20)),
                 entry(6, lease_checkpoint=checkpoint((5, 3_000)))) == [
        LeaseChange(GRANTED, 5, 10), LeaseChange(REVOKED, 5, 0),
        LeaseChange(GRANTED, 5, 20), LeaseChange(CHECKPOINTED, 5, 3_000)]
    assert batch(entry(4, lease_revoke=revoke(5))) == []  # already applied: a replay
    assert store.lease(5) == (20, 3_000)


# ---- schema 2 ----------------------------------------------------------------------------


def test_a_schema_2_store_gets_the_lease_tables_on_its_first_write_open(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_store(path) as s:
        a = Applier(s)
        a(put(b"a"))
        a(put(b"b"))
        b = s.backend
        with b.env.begin(write=True) as t:  # what schema 2 had: no lease tables
            t.drop(b.dbs.leases, delete=True)
            t.drop(b.dbs.lease_keys, delete=True)
            t.put(layout.META_SCHEMA, layout.SCHEMA_V2, db=b.dbs.meta)
        before = live(s)
    with pytest.raises(lmdb.NotFoundError):  # readers open what a writer opened first
        open_store(path, readonly=True)
    with open_store(path) as s:
        with s.backend.env.begin() as t:
            assert t.get(layout.META_SCHEMA, db=s.backend.dbs.meta) == layout.SCHEMA_VERSION == b"4"
        assert live(s) == before and s.leases() == [] and s.applied_index() == 2
        s.apply(3, 1, grant(5))
        s.apply(4, 1, put(b"a", 5))
    with open_store(path, readonly=True) as reader:
        assert reader.leases() == [Lease(5, 60, 0)] and reader.lease_keys(5) == [b"a"]
