"""MvccStore: etcd's errors, apply bookkeeping, restart, compaction, alarms, quota,
hashes and defragment, on real LMDB files."""

from __future__ import annotations

import time
from pathlib import Path

import lmdb
import pytest

from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.storage.mvcc import ApplyEntry, MvccError, MvccStore, errors, keyindex, layout, quota
from petcd.storage.mvcc.meta import RaftPosition

Op = pb.RequestOp


class Applier:
    """Feeds requests as consecutive Raft entries of term 1."""

    def __init__(self, store: MvccStore) -> None:
        self.store = store
        self.index = 0

    def __call__(self, request):  # type: ignore[no-untyped-def]
        self.index += 1
        return self.store.apply(self.index, 1, request)

    def error(self, request) -> errors.ErrorKind:  # type: ignore[no-untyped-def]
        with pytest.raises(MvccError) as info:
            self(request)
        return info.value.kind


def put(key: bytes, value: bytes = b"v", **kw) -> pb.PutRequest:  # type: ignore[no-untyped-def]
    return pb.PutRequest(key=key, value=value, **kw)


def get(store: MvccStore, key: bytes, end: bytes = b"", **kw) -> list[tuple[bytes, bytes]]:  # type: ignore[no-untyped-def]
    return [(kv.key, kv.value) for kv in store.range(pb.RangeRequest(key=key, range_end=end, **kw)).kvs]


def everything(store: MvccStore, revision: int = 0) -> list[KeyValue]:
    return list(store.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=revision)).kvs)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = MvccStore.open(str(tmp_path / "db"), sync=False)
    yield s
    s.close()


@pytest.fixture
def apply(store: MvccStore) -> Applier:
    return Applier(store)


# ---- etcd's error messages and codes ----------------------------------------------------


def test_error_codes_and_messages_are_etcds() -> None:
    assert (errors.COMPACTED.code, errors.COMPACTED.message) == (
        "OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")
    assert (errors.FUTURE_REV.code, errors.FUTURE_REV.message) == (
        "OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision")
    assert errors.NO_SPACE == errors.ErrorKind("RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded")
    invalid = [errors.EMPTY_KEY, errors.KEY_NOT_FOUND, errors.VALUE_PROVIDED, errors.LEASE_PROVIDED,
               errors.TOO_MANY_OPS, errors.DUPLICATE_KEY, errors.INVALID_SORT_OPTION]
    assert all(k.code == "INVALID_ARGUMENT" for k in invalid)
    assert str(MvccError(errors.EMPTY_KEY)) == "etcdserver: key is not provided"


def test_empty_key_is_refused_everywhere(store: MvccStore, apply: Applier) -> None:
    assert apply.error(put(b"")) == errors.EMPTY_KEY
    assert apply.error(pb.DeleteRangeRequest(key=b"")) == errors.EMPTY_KEY
    with pytest.raises(MvccError, match="key is not provided"):
        store.range(pb.RangeRequest(key=b""))
    assert apply.error(pb.TxnRequest(compare=[pb.Compare(key=b"")])) == errors.EMPTY_KEY
    assert apply.error(pb.TxnRequest(failure=[Op(request_put=put(b""))])) == errors.EMPTY_KEY


def test_a_put_with_a_lease_nobody_granted_is_lease_not_found(store: MvccStore,
                                                                 apply: Applier) -> None:
    assert apply.error(put(b"k", b"v", lease=5)) == errors.LEASE_NOT_FOUND
    in_txn = pb.TxnRequest(success=[Op(request_put=put(b"k", b"v")),
                                    Op(request_put=put(b"j", b"v", lease=5))])
    assert apply.error(in_txn) == errors.LEASE_NOT_FOUND
    assert everything(store) == [] and store.current_revision() == 1  # nothing written
    # etcd's order: alone, a put's lease is looked up before its previous pair ...
    assert apply.error(put(b"k", b"", lease=5, ignore_value=True)) == errors.LEASE_NOT_FOUND
    # ... in a txn (checkRequestPut), after it.
    in_txn = pb.TxnRequest(success=[Op(request_put=put(b"k", b"", lease=5, ignore_value=True))])
    assert apply.error(in_txn) == errors.KEY_NOT_FOUND
    apply(pb.LeaseGrantRequest(ID=5, TTL=60))
    apply(put(b"k", b"v", lease=5))
    assert everything(store)[0].lease == 5


def test_ignore_value_and_ignore_lease(store: MvccStore, apply: Applier) -> None:
    apply(pb.LeaseGrantRequest(ID=3, TTL=60))
    apply(pb.LeaseGrantRequest(ID=7, TTL=60))
    assert apply.error(put(b"k", b"", ignore_value=True)) == errors.KEY_NOT_FOUND
    assert apply.error(put(b"k", b"x", ignore_lease=True)) == errors.KEY_NOT_FOUND
    assert apply.error(put(b"k", b"x", ignore_value=True)) == errors.VALUE_PROVIDED
    assert apply.error(put(b"k", b"", lease=7, ignore_lease=True)) == errors.LEASE_PROVIDED
    apply(put(b"k", b"old", lease=3))
    apply(put(b"k", b"", lease=7, ignore_value=True))  # keeps the value, not the lease
    apply(put(b"k", b"new", ignore_lease=True))
    kv = everything(store)[0]
    assert (kv.value, kv.lease, kv.version) == (b"new", 7, 3)
    txn = pb.TxnRequest(success=[Op(request_put=put(b"missing", b"", ignore_value=True))])
    assert apply.error(txn) == errors.KEY_NOT_FOUND


def test_empty_request_op_is_key_not_found(apply: Applier) -> None:
    assert apply.error(pb.TxnRequest(success=[Op()])) == errors.KEY_NOT_FOUND


def test_invalid_sort_option(store: MvccStore) -> None:
    with pytest.raises(MvccError) as info:
        store.range(pb.RangeRequest(key=b"a", sort_order=9))
    assert info.value.kind == errors.INVALID_SORT_OPTION
    with pytest.raises(MvccError, match="invalid sort option"):
        store.range(pb.RangeRequest(key=b"a", sort_target=9))


def test_too_many_ops_default_and_configured(tmp_path: Path, apply: Applier) -> None:
    ops = [Op(request_put=put(b"k%d" % i)) for i in range(129)]
    assert apply.error(pb.TxnRequest(success=ops)) == errors.TOO_MANY_OPS
    apply(pb.TxnRequest(success=ops[:128]))
    with MvccStore.open(str(tmp_path / "small"), sync=False, max_txn_ops=2) as small:
        a = Applier(small)
        assert a.error(pb.TxnRequest(compare=[pb.Compare(key=b"k")] * 3)) == errors.TOO_MANY_OPS
        # A nested txn gets the budget its parent leaves: 2 - 1 = 1 op.
        nested = pb.TxnRequest(success=[Op(request_put=put(b"a")), Op(request_put=put(b"b"))])
        assert a.error(pb.TxnRequest(success=[Op(request_txn=nested)])) == errors.TOO_MANY_OPS


@pytest.mark.parametrize(
    "ops",
    [
        [Op(request_put=put(b"a")), Op(request_put=put(b"a"))],
        [Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"c")), Op(request_put=put(b"b"))],
        [Op(request_put=put(b"a")), Op(request_delete_range=pb.DeleteRangeRequest(key=b"a"))],
        [Op(request_put=put(b"a")), Op(request_txn=pb.TxnRequest(failure=[Op(request_put=put(b"a"))]))],
        [Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"z")),
         Op(request_txn=pb.TxnRequest(success=[Op(request_put=put(b"m"))]))],
        [Op(request_txn=pb.TxnRequest(success=[Op(request_put=put(b"x"))])),
         Op(request_txn=pb.TxnRequest(failure=[Op(request_put=put(b"x"))]))],
    ],
    ids=["put-put", "delete-range-put", "put-delete", "put-nested", "delete-nested-put", "nested-nested"],
)
def test_duplicate_key(apply: Applier, ops: list) -> None:  # type: ignore[type-arg]
    assert apply.error(pb.TxnRequest(success=ops)) == errors.DUPLICATE_KEY
    assert apply.error(pb.TxnRequest(failure=ops)) == errors.DUPLICATE_KEY


def test_not_duplicates_in_etcd(store: MvccStore, apply: Applier) -> None:
    # then/else of one nested txn are exclusive; two deletes may overlap; etcd's
    # interval check sees nothing under a from-key ("\0") delete.
    both = pb.TxnRequest(success=[Op(request_put=put(b"k", b"then"))], failure=[Op(request_put=put(b"k", b"else"))])
    apply(pb.TxnRequest(success=[Op(request_txn=both)]))
    assert get(store, b"k") == [(b"k", b"then")]
    deletes = [Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"m"))] * 2
    apply(pb.TxnRequest(success=deletes))
    assert get(store, b"k") == []
    apply(put(b"z"))
    from_key = [Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"\x00")),
                Op(request_put=put(b"k", b"after"))]
    resp = apply(pb.TxnRequest(success=from_key))
    assert get(store, b"k") == [(b"k", b"after")]
    assert resp.responses[0].response_delete_range.deleted == 1


def test_put_checks_come_before_range_checks_in_a_txn(apply: Applier) -> None:
    ops = [Op(request_range=pb.RangeRequest(key=b"a", revision=99)),
           Op(request_put=put(b"missing", b"", ignore_value=True))]
    assert apply.error(pb.TxnRequest(success=ops)) == errors.KEY_NOT_FOUND


def test_future_and_compacted_revisions(store: MvccStore, apply: Applier) -> None:
    for i in range(5):
        apply(put(b"k", b"%d" % i))  # revisions 2..6
    with pytest.raises(MvccError) as info:
        store.range(pb.RangeRequest(key=b"k", revision=7))
    assert info.value.kind == errors.FUTURE_REV and info.value.code == "OUT_OF_RANGE"
    assert apply.error(pb.CompactionRequest(revision=7)) == errors.FUTURE_REV
    apply(pb.CompactionRequest(revision=4))
    assert apply.error(pb.CompactionRequest(revision=4)) == errors.COMPACTED
    assert apply.error(pb.CompactionRequest(revision=3)) == errors.COMPACTED
    with pytest.raises(MvccError, match="required revision has been compacted"):
        store.range(pb.RangeRequest(key=b"k", revision=3))
    assert get(store, b"k", revision=4) == [(b"k", b"2")]  # the compact revision stays readable
    txn_range = pb.TxnRequest(success=[Op(request_range=pb.RangeRequest(key=b"k", revision=2))])
    assert apply.error(txn_range) == errors.COMPACTED
    txn_future = pb.TxnRequest(success=[Op(request_range=pb.RangeRequest(key=b"k", revision=7))])
    assert apply.error(txn_future) == errors.FUTURE_REV
    with pytest.raises(MvccError, match="compacted"):
        store.hash_kv(3)
    with pytest.raises(MvccError, match="future"):
        store.hash_kv(7)


def test_failed_request_changes_nothing_but_the_applied_index(store: MvccStore, apply: Applier) -> None:
    apply(put(b"a", b"1"))
    before = (store.current_revision(), store.hash(), store.hash_kv())
    # The duplicate check passes (from-key delete), the delete runs, then the put
    # finds its key gone: the whole txn must vanish.
    ops = [Op(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"\x00")),
           Op(request_put=put(b"a", b"", ignore_value=True))]
    assert apply.error(pb.TxnRequest(success=ops)) == errors.KEY_NOT_FOUND
    assert (store.current_revision(), store.hash(), store.hash_kv()) == before
    assert store.applied_index() == apply.index == 2


# ---- revisions, txn, range -------------------------------------------------------------


def test_revisions_versions_and_tombstones(store: MvccStore, apply: Applier) -> None:
    assert store.current_revision() == 1  # etcd's initial revision
    assert apply(put(b"foo", b"a")).header.revision == 2
    assert apply(put(b"foo", b"b")).header.revision == 3
    deleted = apply(pb.DeleteRangeRequest(key=b"foo", prev_kv=True))
    assert (deleted.deleted, deleted.header.revision, deleted.prev_kvs[0].value) == (1, 4, b"b")
    assert apply(pb.DeleteRangeRequest(key=b"foo")).header.revision == 4  # nothing deleted: no revision
    apply(put(b"foo", b"c"))
    kv = everything(store)[0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (5, 5, 1)
    old = everything(store, revision=3)[0]
    assert (old.create_revision, old.mod_revision, old.version, old.value) == (2, 3, 2, b"b")
    assert everything(store, revision=4) == []


def test_txn_is_one_revision_and_sees_its_own_writes(store: MvccStore, apply: Applier) -> None:
    apply(put(b"a", b"1"))
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=b"1")],
        success=[
            Op(request_range=pb.RangeRequest(key=b"a", range_end=b"\x00")),
            Op(request_put=put(b"b", b"2")),
            Op(request_range=pb.RangeRequest(key=b"a", range_end=b"\x00")),
            Op(request_range=pb.RangeRequest(key=b"a", range_end=b"\x00", revision=2)),
            Op(request_delete_range=pb.DeleteRangeRequest(key=b"a")),
            Op(request_txn=pb.TxnRequest(success=[Op(request_put=put(b"c", b"3"))])),
        ],
    )
    resp = apply(txn)
    assert resp.succeeded and resp.header.revision == 3
    r = resp.responses
    assert [kv.key for kv in r[0].response_range.kvs] == [b"a"] and r[0].response_range.header.revision == 2
    assert [kv.key for kv in r[2].response_range.kvs] == [b"a", b"b"] and r[2].response_range.header.revision == 3
    assert [kv.key for kv in r[3].response_range.kvs] == [b"a"]  # revision 2: before the txn
    assert r[1].response_put.header.revision == 3 and r[4].response_delete_range.deleted == 1
    assert r[5].response_txn.succeeded and r[5].response_txn.HasField("header")
    assert [(kv.key, kv.mod_revision) for kv in everything(store)] == [(b"b", 3), (b"c", 3)]


def test_compare_semantics(store: MvccStore, apply: Applier) -> None:
    C = pb.Compare
    apply(put(b"a1", b"x"))
    apply(put(b"a2", b"y"))

    def holds(c: pb.Compare) -> bool:
        return apply(pb.TxnRequest(compare=[c])).succeeded

    assert holds(C(key=b"a", range_end=b"b", target=C.VERSION, result=C.EQUAL, version=1))
    assert not holds(C(key=b"a", range_end=b"b", target=C.VALUE, result=C.EQUAL, value=b"x"))  # a2 is y
    assert holds(C(key=b"a", range_end=b"b", target=C.MOD, result=C.LESS, mod_revision=4))
    assert holds(C(key=b"zz", target=C.CREATE, result=C.EQUAL, create_revision=0))  # missing key: 0
    assert not holds(C(key=b"zz", target=C.VALUE, result=C.EQUAL, value=b""))  # never matches a value
    assert not holds(C(key=b"zz", target=C.VALUE, result=C.NOT_EQUAL, value=b"q"))
    assert holds(C(key=b"a1", target=C.LEASE, result=C.EQUAL, lease=0))
    assert holds(C(key=b"a1", target=C.VERSION, result=C.GREATER))  # unset union compares as 0


def test_range_forms_limit_sort_and_filters(store: MvccStore, apply: Applier) -> None:
    for key in [b"a", b"ab", b"abc", b"b", b"c"]:
        apply(put(key, key.upper()))
    apply(put(b"a", b"A2"))  # a: create 2, mod 7, version 2
    assert [k for k, _ in get(store, b"a", b"b")] == [b"a", b"ab", b"abc"]  # prefix a
    assert [k for k, _ in get(store, b"ab", b"\x00")] == [b"ab", b"abc", b"b", b"c"]  # from key
    assert get(store, b"b", b"a") == []  # end before start
    resp = store.range(pb.RangeRequest(key=b"a", range_end=b"\x00", limit=2))
    assert (len(resp.kvs), resp.count, resp.more) == (2, 5, True)
    resp = store.range(pb.RangeRequest(key=b"a", range_end=b"\x00", count_only=True))
    assert (len(resp.kvs), resp.count) == (0, 5)
    resp = store.range(pb.RangeRequest(key=b"a", range_end=b"\x00", keys_only=True, limit=1))
    assert resp.kvs[0].value == b"" and resp.kvs[0].key == b"a"
    resp = store.range(pb.RangeRequest(key=b"a", range_end=b"\x00", sort_order=pb.RangeRequest.DESCEND,
                                       sort_target=pb.RangeRequest.MOD, limit=2))
    assert [kv.key for kv in resp.kvs] == [b"a", b"c"] and resp.more
    resp = store.range(pb.RangeRequest(key=b"a", range_end=b"\x00", min_mod_revision=4, max_create_revision=5))
    assert [kv.key for kv in resp.kvs] == [b"a", b"abc", b"b"] and resp.count == 5  # count ignores filters


# ---- apply bookkeeping -------------------------------------------------------------------


def test_replayed_entries_are_no_ops(store: MvccStore, apply: Applier) -> None:
    apply(put(b"k", b"1"))
    apply(put(b"k", b"2"))
    before = (store.current_revision(), store.hash())
    assert store.apply(1, 1, put(b"k", b"replayed")) is None
    assert store.apply(2, 1, put(b"k", b"replayed")) is None
    assert (store.current_revision(), store.hash()) == before
    results = store.apply_batch([ApplyEntry(2, 1, put(b"k", b"old")), ApplyEntry(3, 2, put(b"k", b"3"))])
    assert results[0] is None and results[1].header.revision == 4
    assert store.raft_position() == RaftPosition(3, 2)


def test_batch_returns_errors_in_place(store: MvccStore) -> None:
    results = store.apply_batch([
        ApplyEntry(1, 1, put(b"a")),
        ApplyEntry(2, 1, put(b"")),
        ApplyEntry(3, 1, None),
        ApplyEntry(4, 1, rpb.InternalRaftRequest(put=put(b"b"))),
        ApplyEntry(5, 1, rpb.InternalRaftRequest(auth_enable=pb.AuthEnableRequest())),
    ])
    assert results[1] == MvccError(errors.EMPTY_KEY) and results[2] is None
    assert results[4] == MvccError(errors.ROOT_USER_NOT_EXIST)
    assert results[3].header.revision == 3
    assert store.applied_index() == 5


def test_term_and_conf_state_are_stored(store: MvccStore) -> None:
    assert store.conf_state() is None
    store.apply(10, 3, None, conf_state=b"\x08\x01")
    assert store.raft_position() == RaftPosition(10, 3) and store.conf_state() == b"\x08\x01"


def test_restart_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    with MvccStore.open(path, sync=False) as s:
        a = Applier(s)
        for i in range(50):
            a(put(b"k%02d" % i, b"v%d" % i))
        a(pb.DeleteRangeRequest(key=b"k1", range_end=b"k2"))
        a(pb.CompactionRequest(revision=20))
        a(pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=5, alarm=pb.NOSPACE))
        before = (s.current_revision(), s.compact_revision(), s.raft_position(), s.hash(), everything(s))
    with MvccStore.open(path, sync=False) as s:
        after = (s.current_revision(), s.compact_revision(), s.raft_position(), s.hash(), everything(s))
        assert after == before
        assert [(m.memberID, m.alarm) for m in s.alarms()] == [(5, pb.NOSPACE)]
        assert len(everything(s, revision=20)) == 19


def test_open_does_not_scan_keys(tmp_path: Path) -> None:
    """Opening costs what opening LMDB costs: far less than one walk over the keys.

    Each side is the fastest of several tries, so that a busy machine stalling
    one try cannot decide the comparison.
    """
    path = str(tmp_path / "db")
    with MvccStore.open(path, sync=False) as s:
        entries = [ApplyEntry(i + 1, 1, put(b"key-%06d" % i, b"x" * 100)) for i in range(100_000)]
        for start in range(0, len(entries), 10_000):
            s.apply_batch(entries[start:start + 10_000])
        scan_s = min(_timed(lambda: _count_all(s)) for _ in range(3))
    open_s = min(_timed(lambda: _open_and_get(path)) for _ in range(5))
    assert open_s < scan_s / 3, (open_s, scan_s)


def _timed(action) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def _count_all(s: MvccStore) -> None:
    assert s.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True)).count == 100_000


def _open_and_get(path: str) -> None:
    with MvccStore.open(path, sync=False) as s:
        assert get(s, b"key-012345") == [(b"key-012345", b"x" * 100)]


# ---- compaction ----------------------------------------------------------------------------


def _history_keys(store: MvccStore) -> list[tuple[int, int, bool]]:
    b = store.backend
    with b.env.begin() as t:
        return [layout.parse_history_key(k) for k, _ in t.cursor(db=b.dbs.history)]


def test_layout_worked_example(store: MvccStore, apply: Applier) -> None:
    """The example at the top of layout.py, byte for byte."""
    apply(put(b"foo", b"a"))
    apply(put(b"foo", b"b"))
    apply(pb.DeleteRangeRequest(key=b"foo"))
    apply(pb.TxnRequest(success=[Op(request_put=put(b"foo", b"c")), Op(request_put=put(b"zoo", b"z"))]))
    b = store.backend
    with b.env.begin() as t:
        assert [k.hex() for k, _ in t.cursor(db=b.dbs.history)] == [
            "0000000000000002" "0000000000000000", "0000000000000003" "0000000000000000",
            "0000000000000004" "0000000000000000" "74", "0000000000000005" "0000000000000000",
            "0000000000000005" "0000000000000001"]
        history_key = b"\x00" * 7 + b"\x04" + b"\x00" * 8 + b"t"
        assert t.get(history_key, db=b.dbs.history) == KeyValue(key=b"foo").SerializeToString()
        foo = [v for k, v in t.cursor(db=b.dbs.key_revs) if k == b"foo"]
        assert foo == [layout.key_rev_entry(5, 0, False), layout.key_rev_entry(4, 0, True),
                       layout.key_rev_entry(3, 0, False), layout.key_rev_entry(2, 0, False)]
        assert foo[1].hex() == "fffffffffffffffb" "ffffffffffffffff" "74"
        assert [k for k, _ in keyindex.current_entries(t, b.dbs, keyindex.KeyRange(b"foo", None))] == [b"foo"]
        assert list(keyindex.current_entries(t, b.dbs, keyindex.KeyRange(b"a", b"\xff"))) == [
            (b"foo", layout.rev_bytes(5, 0)), (b"zoo", layout.rev_bytes(5, 1))]
    apply(pb.CompactionRequest(revision=4))
    assert _history_keys(store) == [(5, 0, False), (5, 1, False)]


def test_compaction_keeps_the_newest_revision_at_or_below(store: MvccStore, apply: Applier) -> None:
    apply(put(b"a", b"1"))  # 2
    apply(put(b"a", b"2"))  # 3
    apply(put(b"b", b"1"))  # 4
    apply(pb.DeleteRangeRequest(key=b"b"))  # 5
    apply(put(b"c", b"1"))  # 6
    apply(pb.CompactionRequest(revision=5, physical=True))
    assert _history_keys(store) == [(3, 0, False), (6, 0, False)]  # b's tombstone went too
    assert [(kv.key, kv.value) for kv in everything(store, revision=5)] == [(b"a", b"2")]
    apply(put(b"a", b"3"))  # 7: supersedes the kept revision 3
    apply(pb.CompactionRequest(revision=7))
    assert _history_keys(store) == [(6, 0, False), (7, 0, False)]
    assert store.compact_revision() == 7


# ---- alarms, quota ----------------------------------------------------------------------------

A = pb.AlarmRequest


def test_alarms(store: MvccStore, apply: Applier) -> None:
    resp = apply(A(action=A.ACTIVATE, memberID=2, alarm=pb.NOSPACE))
    assert [(m.memberID, m.alarm) for m in resp.alarms] == [(2, pb.NOSPACE)]
    assert apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.NONE)).alarms == []
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.CORRUPT))
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    assert [(m.memberID, m.alarm) for m in apply(A(action=A.GET)).alarms] == [
        (1, pb.NOSPACE), (2, pb.NOSPACE), (1, pb.CORRUPT)]
    assert [m.memberID for m in apply(A(action=A.GET, alarm=pb.NOSPACE)).alarms] == [1, 2]
    assert len(apply(A(action=A.DEACTIVATE, memberID=1, alarm=pb.CORRUPT)).alarms) == 1
    assert apply(A(action=A.DEACTIVATE, memberID=9, alarm=pb.CORRUPT)).alarms == []
    assert [(m.memberID, m.alarm) for m in store.alarms()] == [(1, pb.NOSPACE), (2, pb.NOSPACE)]


def test_nospace_alarm_refuses_writes_that_add_data(store: MvccStore, apply: Applier) -> None:
    apply(put(b"a"))
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    assert apply.error(put(b"b")) == errors.NO_SPACE
    assert apply.error(pb.TxnRequest(failure=[Op(request_put=put(b"b"))])) == errors.NO_SPACE
    apply(pb.TxnRequest(success=[Op(request_delete_range=pb.DeleteRangeRequest(key=b"a"))]))
    apply(pb.CompactionRequest(revision=3))
    apply(A(action=A.DEACTIVATE, memberID=1, alarm=pb.NOSPACE))
    apply(put(b"b"))


def test_corrupt_alarm_refuses_kv_requests(store: MvccStore, apply: Applier) -> None:
    apply(A(action=A.ACTIVATE, memberID=1, alarm=pb.CORRUPT))
    assert apply.error(pb.DeleteRangeRequest(key=b"a")) == errors.CORRUPT
    assert apply.error(rpb.InternalRaftRequest(range=pb.RangeRequest(key=b"a"))) == errors.CORRUPT


def test_quota(tmp_path: Path) -> None:
    assert quota.map_size_bytes(quota.DEFAULT_QUOTA_BYTES) == 2560 * 1024**2
    assert quota.map_size_bytes(1024**2) == 257 * 1024**2
    assert quota.request_cost(put(b"k", b"vv")) == 256 + 3
    txn = pb.TxnRequest(success=[Op(request_put=put(b"k", b"v"))],
                        failure=[Op(request_put=put(b"k", b"v" * 10)),
                                 Op(request_delete_range=pb.DeleteRangeRequest(key=b"x"))])
    assert quota.request_cost(txn) == 256 + 11
    assert quota.request_cost(pb.DeleteRangeRequest(key=b"x")) == 0
    with MvccStore.open(str(tmp_path / "db"), sync=False, quota_bytes=1024**2) as s:
        a = Applier(s)
        assert not s.over_quota() and s.fits_quota(1000)
        assert not s.fits_quota(1024**2)
        assert s.fits_quota(0)
        value = b"x" * 4000
        while s.fits_quota(quota.request_cost(put(b"k000000", value))):
            a(put(b"k%06d" % a.index, value))
        # etcd's quotaApplierV3: a put that no longer fits is applied all the same (every
        # member keeps the same data), and answered "database space exceeded".
        while not s.over_quota():  # LMDB has headroom past the quota
            key = b"k%06d" % a.index
            assert a.error(put(key, value)) == errors.NO_SPACE
            assert get(s, key) == [(key, value)]
        assert not s.fits_quota(1)
        assert a(pb.TxnRequest(success=[Op(request_range=pb.RangeRequest(key=b"k"))]))  # costs nothing
        a(pb.DeleteRangeRequest(key=b"k", range_end=b"l"))  # deletes and compaction still fit
        a(pb.CompactionRequest(revision=s.current_revision()))
        a(A(action=A.ACTIVATE, memberID=1, alarm=pb.NOSPACE))


def test_long_keys(store: MvccStore, apply: Applier) -> None:
    long_key = b"k" * (layout.MAX_KEY_BYTES + 1)
    assert apply.error(put(long_key)) == errors.KEY_TOO_LONG
    apply(put(b"k" * layout.MAX_KEY_BYTES))
    assert get(store, long_key) == []
    assert len(get(store, long_key[:-2], b"\x00")) == 1
    assert apply(pb.DeleteRangeRequest(key=long_key)).deleted == 0


# ---- hashes, sizes, defragment ------------------------------------------------------------------


def _feed(store: MvccStore, requests: list) -> None:  # type: ignore[type-arg]
    a = Applier(store)
    for r in requests:
        try:
            a(r)
        except MvccError:
            pass


def test_hash_equal_for_same_entries_and_different_otherwise(tmp_path: Path) -> None:
    requests = [put(b"k%d" % (i % 7), b"v%d" % i) for i in range(40)]
    requests += [pb.DeleteRangeRequest(key=b"k3"), pb.CompactionRequest(revision=20), put(b"x", b"y")]
    stores = [MvccStore.open(str(tmp_path / name), sync=False) for name in ("a", "b", "c")]
    try:
        _feed(stores[0], requests)
        _feed(stores[1], requests)
        _feed(stores[2], requests[:-1] + [put(b"x", b"z")])
        a, b, c = stores
        assert a.hash() == b.hash() != c.hash()
        assert a.hash_kv() == b.hash_kv() != c.hash_kv()
        assert a.hash_kv(30) == c.hash_kv(30)  # same history up to 30
        assert a.hash_kv(30).compact_revision == 20 and a.hash_kv(30).hash_revision == 30
        assert a.hash_kv().hash_revision == a.current_revision()
        b.apply(1000, 2, None)  # the applied index is member-local: not hashed
        assert a.hash() == b.hash()
        resp = a.hash_kv(0).to_response(a.current_revision())
        assert resp.hash == a.hash_kv().hash and resp.compact_revision == 20
    finally:
        for s in stores:
            s.close()


def test_defragment_shrinks_and_keeps_everything(tmp_path: Path) -> None:
    with MvccStore.open(str(tmp_path / "db"), sync=False) as s:
        entries = [ApplyEntry(i + 1, 1, put(b"k%05d" % i, b"x" * 1000)) for i in range(3000)]
        s.apply_batch(entries)
        a = Applier(s)
        a.index = 3000
        a(pb.DeleteRangeRequest(key=b"k00100", range_end=b"l"))
        a(pb.CompactionRequest(revision=s.current_revision()))
        before = (everything(s), s.hash(), s.hash_kv(), s.raft_position(), s.compact_revision())
        size, in_use = s.db_size_bytes(), s.db_size_in_use_bytes()
        assert in_use < size / 5
        s.defragment()
        assert (everything(s), s.hash(), s.hash_kv(), s.raft_position(), s.compact_revision()) == before
        assert s.db_size_bytes() < size / 5
        assert s.db_size_in_use_bytes() <= s.db_size_bytes()
        a(put(b"after", b"defrag"))  # still writable
        assert get(s, b"after") == [(b"after", b"defrag")]
    with MvccStore.open(str(tmp_path / "db"), sync=False) as s:
        assert len(everything(s)) == 101
        assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["CURRENT", "gen-000002"]


def test_map_full_is_no_space_and_changes_nothing(tmp_path: Path) -> None:
    """LMDB's hard ceiling: an entry that does not fit is refused, the index moves on."""
    with MvccStore.open(str(tmp_path / "db"), sync=False, quota_bytes=1024**2) as s:
        a = Applier(s)
        a(put(b"small", b"x"))
        before = (s.current_revision(), s.hash())
        huge = put(b"huge", b"x" * (300 * 1024**2))  # beyond the 257 MiB map
        assert a.error(huge) == errors.NO_SPACE
        assert (s.current_revision(), s.hash()) == before and s.applied_index() == 2
        a(put(b"small", b"y"))
        assert get(s, b"small") == [(b"small", b"y")]


def test_defragment_a_key_with_many_revisions(store: MvccStore, apply: Applier) -> None:
    """Regression: LMDB's compacting copy crashed on a DUPFIXED key_revs sub-database."""
    for i in range(1000):
        apply(put(b"hot", b"%d" % i))
    store.defragment()
    assert everything(store, revision=500)[0].value == b"498"
    assert get(store, b"hot") == [(b"hot", b"999")]


def test_a_schema_1_store_is_upgraded_on_open_and_keeps_its_data(tmp_path: Path) -> None:
    """Schema 1 also kept `keys` (live key -> revision): opening drops it, nothing else."""
    root = str(tmp_path / "db")
    with MvccStore.open(root, sync=False) as s:
        a = Applier(s)
        a(put(b"foo", b"a"))
        a(put(b"foo", b"b"))
        a(put(b"zoo", b"z"))
        a(pb.DeleteRangeRequest(key=b"zoo"))
        b = s.backend
        with b.env.begin(write=True) as t:  # what schema 1 had written
            keys = b.env.open_db(layout.DB_KEYS_V1, txn=t)
            t.put(b"foo", layout.rev_bytes(3, 0), db=keys)
            t.put(layout.META_SCHEMA, layout.SCHEMA_V1, db=b.dbs.meta)
        before = everything(s)
    with MvccStore.open(root, readonly=True, sync=False) as reader:
        assert everything(reader) == before  # a reader needs no upgrade
    with MvccStore.open(root, sync=False) as s:
        b = s.backend
        with b.env.begin() as t:
            assert t.get(layout.META_SCHEMA, db=b.dbs.meta) == layout.SCHEMA_VERSION
            with pytest.raises(lmdb.NotFoundError):
                b.env.open_db(layout.DB_KEYS_V1, txn=t, create=False)
        assert everything(s) == before and [kv.key for kv in before] == [b"foo"]
        assert get(s, b"foo") == [(b"foo", b"b")] and get(s, b"zoo") == []
        assert get(s, b"zoo", revision=4) == [(b"zoo", b"z")]  # history too
        assert s.current_revision() == 5


def test_a_store_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    with MvccStore.open(root, sync=False) as s:
        with s.backend.env.begin(write=True) as t:
            t.put(layout.META_SCHEMA, b"9", db=s.backend.dbs.meta)
    with pytest.raises(RuntimeError, match="mvcc schema b'9', this build reads b'4'"):
        MvccStore.open(root, sync=False)
