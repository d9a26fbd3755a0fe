"""The changes a watcher is sent, on real LMDB files: as the apply batch records them
(with the value each replaced) and as they are read back from history, compaction
included (storage/mvcc/history.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.storage.mvcc import ApplyEntry, Change, MvccStore
from petcd.storage.mvcc.history import read_changes, value_before


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = MvccStore.open(str(tmp_path / "db"), sync=False)
    yield s
    s.close()


def _apply(store: MvccStore, *requests) -> list[Change]:  # type: ignore[no-untyped-def]
    first = store.applied_index() + 1
    changes: list[Change] = []
    store.apply_batch([ApplyEntry(first + i, 1, r) for i, r in enumerate(requests)],
                      changes=changes)
    return changes


def _shown(changes: list[Change]) -> list[tuple]:  # type: ignore[type-arg]
    out = []
    for c in changes:
        kv = KeyValue.FromString(c.kv)
        prev = KeyValue.FromString(c.prev_kv).value if c.prev_kv is not None else None
        out.append((c.main, c.sub, c.key, "DELETE" if c.tombstone else kv.value, prev))
    return out


def _put(key: bytes, value: bytes) -> pb.PutRequest:
    return pb.PutRequest(key=key, value=value)


def test_a_batch_records_every_change_with_the_value_it_replaced(store):
    txn = pb.TxnRequest(success=[pb.RequestOp(request_put=_put(b"b", b"2")),
                                 pb.RequestOp(request_put=_put(b"c", b"1"))])
    changes = _apply(store, _put(b"a", b"1"), _put(b"b", b"1"), _put(b"a", b"2"), txn,
                     pb.DeleteRangeRequest(key=b"a", range_end=b"c"),
                     pb.DeleteRangeRequest(key=b"zzz"))  # deletes nothing: no revision
    assert _shown(changes) == [
        (2, 0, b"a", b"1", None), (3, 0, b"b", b"1", None), (4, 0, b"a", b"2", b"1"),
        (5, 0, b"b", b"2", b"1"), (5, 1, b"c", b"1", None),
        (6, 0, b"a", "DELETE", b"2"), (6, 1, b"b", "DELETE", b"2")]


def test_a_refused_request_records_nothing(store):
    changes = _apply(store, _put(b"a", b"1"), pb.PutRequest(key=b"a", lease=99),
                     pb.TxnRequest(success=[pb.RequestOp(request_put=_put(b"x", b"1")),
                                            pb.RequestOp(request_put=pb.PutRequest(
                                                key=b"y", ignore_value=True))]))
    assert _shown(changes) == [(2, 0, b"a", b"1", None)]


def test_changes_read_back_from_history_are_the_recorded_ones(store):
    recorded = _apply(store, _put(b"a", b"1"), _put(b"b", b"1"), _put(b"a", b"2"),
                      pb.DeleteRangeRequest(key=b"a"))
    with store.read_txn() as view:
        read, through = read_changes(view, 2, view.rev, max_changes=100, max_bytes=1 << 20, with_prev_kv=True)
    assert through == 5 and read == recorded
    with store.read_txn() as view:
        without_prev, _ = read_changes(view, 3, 4, max_changes=100, max_bytes=1 << 20, with_prev_kv=False)
    assert [(c.main, c.prev_kv) for c in without_prev] == [(3, None), (4, None)]


def test_a_read_stops_at_a_whole_revision(store):
    txn = pb.TxnRequest(success=[pb.RequestOp(request_put=_put(b"k%d" % i, b"v"))
                                 for i in range(5)])
    _apply(store, _put(b"a", b"1"), txn, _put(b"b", b"1"))  # revisions 2, 3 (5 changes), 4
    with store.read_txn() as view:
        changes, through = read_changes(view, 2, 4, max_changes=2, max_bytes=1 << 20, with_prev_kv=False)
    assert through == 3, "the revision in hand is finished, the next is left"
    assert [c.main for c in changes] == [2, 3, 3, 3, 3, 3]
    with store.read_txn() as view:
        rest, through = read_changes(view, 4, 4, max_changes=2, max_bytes=1 << 20, with_prev_kv=False)
    assert through == 4 and [c.key for c in rest] == [b"b"]
    with store.read_txn() as view:
        by_size, through = read_changes(view, 2, 4, max_changes=100, max_bytes=1,
                                        with_prev_kv=False)
    assert through == 2 and [c.main for c in by_size] == [2]


def test_compaction_leaves_prev_kv_unknown_and_keeps_later_revisions(store):
    _apply(store, _put(b"a", b"1"), _put(b"a", b"2"), _put(b"b", b"1"), _put(b"a", b"3"))
    _apply(store, pb.CompactionRequest(revision=4))
    with store.read_txn() as view:
        assert view.compact_rev == 4
        assert value_before(view, b"a", 3) is None, "revision 2 was compacted away"
        assert KeyValue.FromString(value_before(view, b"a", 5)).value == b"2"
        changes, through = read_changes(view, 4, view.rev, max_changes=100, max_bytes=1 << 20, with_prev_kv=True)
    assert through == 5
    assert [(c.main, c.key) for c in changes] == [(4, b"b"), (5, b"a")]
    assert KeyValue.FromString(changes[1].prev_kv).value == b"2"
