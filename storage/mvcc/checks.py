"""Request checks that need no data: etcd's v3rpc/key.go, in its order.

etcd runs these in the gRPC server before proposing; petcd runs them there too (the
network actor imports this module) and again at apply, where they are cheap and
deterministic, so a request that reaches the log unchecked still changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import errors
from .errors import MvccError

DEFAULT_MAX_TXN_OPS = 128  # etcd's --max-txn-ops default

_SORT_ORDERS = frozenset(pb.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(pb.RangeRequest.SortTarget.values())


def check_range(r: pb.RangeRequest) -> None:
    if not r.key:
        raise MvccError(errors.EMPTY_KEY)
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise MvccError(errors.INVALID_SORT_OPTION)


def check_put(r: pb.PutRequest) -> None:
    if not r.key:
        raise MvccError(errors.EMPTY_KEY)
    if r.ignore_value and r.value:
        raise MvccError(errors.VALUE_PROVIDED)
    if r.ignore_lease and r.lease != 0:
        raise MvccError(errors.LEASE_PROVIDED)


def check_delete(r: pb.DeleteRangeRequest) -> None:
    if not r.key:
        raise MvccError(errors.EMPTY_KEY)


def check_txn(r: pb.TxnRequest, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """etcd's checkTxnRequest then checkIntervals on both branches."""
    _check_txn_shape(r, max_txn_ops)
    check_intervals(r.success)
    check_intervals(r.failure)


def _check_txn_shape(r: pb.TxnRequest, max_txn_ops: int) -> None:
    ops = max(len(r.compare), len(r.success), len(r.failure))
    if ops > max_txn_ops:
        raise MvccError(errors.TOO_MANY_OPS)
    for c in r.compare:
        if not c.key:
            raise MvccError(errors.EMPTY_KEY)
    # A nested txn gets what its parent left of the budget, as in etcd.
    for op in (*r.success, *r.failure):
        _check_op(op, max_txn_ops - ops)


def _check_op(op: pb.RequestOp, max_txn_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_shape(op.request_txn, max_txn_ops)
    else:
        raise MvccError(errors.KEY_NOT_FOUND)  # etcd's answer to an empty RequestOp


@dataclass(slots=True)
class _Deletes:
    """etcd's interval tree of deleted ranges, as a list: txns are small.

    Intervals are [start, end) with end b"" meaning unbounded (etcd's
    StringAffineComparable). A single-key delete is [k, k + b"\\0"). A delete with
    range_end b"\\0" becomes [k, b"\\0"), which contains no key: etcd's duplicate
    check does not see puts under a from-key delete, and neither does petcd's.
    """

    spans: list[tuple[bytes, bytes]] = field(default_factory=list)

    def add(self, start: bytes, end: bytes) -> None:
        self.spans.append((start, end if end else start + b"\x00"))

    def extend(self, other: "_Deletes") -> None:
        self.spans.extend(other.spans)

    def hits(self, key: bytes) -> bool:
        return any(s <= key and (e == b"" or key < e) for s, e in self.spans)


def _no_overlap(key: bytes, puts: set[bytes], dels: _Deletes) -> None:
    if key in puts or dels.hits(key):
        raise MvccError(errors.DUPLICATE_KEY)


def check_intervals(ops: "list[pb.RequestOp]") -> tuple[set[bytes], _Deletes]:
    """etcd's checkIntervals: no key both put and deleted, or put twice."""
    dels = _Deletes()
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            dels.add(d.key, d.range_end)
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = check_intervals(op.request_txn.success)
        puts_else, dels_else = check_intervals(op.request_txn.failure)
        for key in puts_then:
            _no_overlap(key, puts, dels)
            puts.add(key)
        for key in puts_else:
            # then and else are exclusive: the same key in both is fine.
            if key in puts and key not in puts_then:
                raise MvccError(errors.DUPLICATE_KEY)
            if dels.hits(key):
                raise MvccError(errors.DUPLICATE_KEY)
            puts.add(key)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if op.WhichOneof("request") == "request_put":
            key = op.request_put.key
            _no_overlap(key, puts, dels)
            puts.add(key)
    return puts, dels
