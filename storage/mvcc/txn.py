"""Txn: etcd's applierV3backend.Txn over a write view.

As in etcd v3.5, every compare of the txn and of the nested txns on the taken
branches is evaluated against the state before the txn (compareToPath), and so are
the put and range checks; then the ops of the taken branches run in order, each
seeing the changes of those before it. The whole txn is one revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue

from . import errors, ops
from .errors import MvccError
from .keyindex import KeyRange
from .ranges import range_kvs
from .view import ReadView, WriteView

_Compared = TypeVar("_Compared", int, bytes)  # a Compare's target: a value or a number

_C = pb.Compare


@dataclass(frozen=True, slots=True)
class Path:
    """The branch a txn takes, and the paths of the nested txns on it, in op order."""

    succeeded: bool
    nested: tuple["Path", ...]


def _ops(r: pb.TxnRequest, path: Path) -> "list[pb.RequestOp]":
    return list(r.success if path.succeeded else r.failure)


def _cmp(a: _Compared, b: _Compared) -> int:
    return (a > b) - (a < b)


def compare_kv(c: pb.Compare, kv: KeyValue) -> bool:
    """etcd's compareKV: a target_union of another kind compares as zero / empty."""
    which = c.WhichOneof("target_union")
    if c.target == _C.VALUE:
        result = _cmp(kv.value, c.value if which == "value" else b"")
    elif c.target == _C.CREATE:
        result = _cmp(kv.create_revision, c.create_revision if which == "create_revision" else 0)
    elif c.target == _C.MOD:
        result = _cmp(kv.mod_revision, c.mod_revision if which == "mod_revision" else 0)
    elif c.target == _C.VERSION:
        result = _cmp(kv.version, c.version if which == "version" else 0)
    elif c.target == _C.LEASE:
        result = _cmp(kv.lease, c.lease if which == "lease" else 0)
    else:
        result = 0
    if c.result == _C.EQUAL:
        return result == 0
    if c.result == _C.NOT_EQUAL:
        return result != 0
    if c.result == _C.GREATER:
        return result > 0
    if c.result == _C.LESS:
        return result < 0
    return True


def compare_holds(view: ReadView, c: pb.Compare) -> bool:
    """Over a range, a compare holds only if it holds for every key in it."""
    kvs = view.current_kvs(KeyRange.of(c.key, c.range_end))
    if not kvs:
        # A missing key has no value to compare (nil == empty in gRPC), but its
        # version and revisions are 0.
        return c.target != _C.VALUE and compare_kv(c, KeyValue())
    return all(compare_kv(c, kv) for kv in kvs)


def compare_to_path(view: ReadView, r: pb.TxnRequest) -> Path:
    succeeded = all(compare_holds(view, c) for c in r.compare)
    branch = r.success if succeeded else r.failure
    nested = tuple(
        compare_to_path(view, op.request_txn) for op in branch if op.WhichOneof("request") == "request_txn"
    )
    return Path(succeeded, nested)


def _check_put(view: ReadView, op: pb.RequestOp) -> None:
    """etcd's checkRequestPut: the previous pair ignore_* needs, then the lease."""
    if op.WhichOneof("request") != "request_put":
        return
    p = op.request_put
    if (p.ignore_value or p.ignore_lease) and view.current_kv(p.key) is None:
        raise MvccError(errors.KEY_NOT_FOUND)
    ops.check_lease(view, p)


def _check_range(view: ReadView, op: pb.RequestOp) -> None:
    if op.WhichOneof("request") != "request_range":
        return
    rev = op.request_range.revision
    # etcd's checkRequestRange: note a negative revision counts as compacted here.
    if rev == 0:
        return
    if rev > view.rev:
        raise MvccError(errors.FUTURE_REV)
    if rev < view.compact_rev:
        raise MvccError(errors.COMPACTED)


def _check_ops(view: ReadView, r: pb.TxnRequest, path: Path, check: Callable[[ReadView, pb.RequestOp], None]) -> None:
    nested = iter(path.nested)
    for op in _ops(r, path):
        if op.WhichOneof("request") == "request_txn":
            _check_ops(view, op.request_txn, next(nested), check)
        else:
            check(view, op)


def _run(view: WriteView, r: pb.TxnRequest, path: Path, resp: pb.TxnResponse) -> None:
    resp.succeeded = path.succeeded
    nested = iter(path.nested)
    for op in _ops(r, path):
        out = resp.responses.add()
        kind = op.WhichOneof("request")
        if kind == "request_range":
            out.response_range.CopyFrom(range_kvs(view, op.request_range))
        elif kind == "request_put":
            out.response_put.CopyFrom(ops.put_checked(view, op.request_put))
        elif kind == "request_delete_range":
            out.response_delete_range.CopyFrom(ops.delete_range(view, op.request_delete_range))
        else:
            assert kind == "request_txn", "empty ops are refused by checks.check_txn"
            out.response_txn.header.SetInParent()  # etcd sends nested headers empty
            _run(view, op.request_txn, next(nested), out.response_txn)


def txn(view: WriteView, r: pb.TxnRequest) -> pb.TxnResponse:
    """Apply a checked TxnRequest. Raises before any change, except KEY_NOT_FOUND
    from a put under a from-key delete of the same txn (etcd panics there), which
    the caller undoes by aborting the LMDB child transaction."""
    assert view.changes == 0, "a txn starts on a fresh write view"
    path = compare_to_path(view, r)
    _check_ops(view, r, path, _check_put)
    _check_ops(view, r, path, _check_range)
    resp = pb.TxnResponse()
    _run(view, r, path, resp)
    resp.header.revision = view.rev
    return resp
