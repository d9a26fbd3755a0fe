"""Put and DeleteRange: etcd's applierV3backend.Put / DeleteRange over a write view."""

from __future__ import annotations

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import errors, leases
from .errors import MvccError
from .keyindex import KeyRange
from .view import ReadView, WriteView


def check_lease(view: ReadView, r: pb.PutRequest) -> None:
    """etcd's lessor.Lookup before a put: its lease must be granted and not revoked."""
    if r.lease != leases.NO_LEASE and not leases.exists(view.txn, view.dbs, r.lease):
        raise MvccError(errors.LEASE_NOT_FOUND)


def put(view: WriteView, r: pb.PutRequest) -> pb.PutResponse:
    """Apply a checked PutRequest alone (etcd's applierV3backend.Put outside a txn:
    the lease is looked up first)."""
    check_lease(view, r)
    return put_checked(view, r)


def put_checked(view: WriteView, r: pb.PutRequest) -> pb.PutResponse:
    """Apply a PutRequest whose lease was looked up."""
    resp = pb.PutResponse()
    prev = None
    if r.ignore_value or r.ignore_lease or r.prev_kv:
        prev = view.current_kv(r.key)
    if (r.ignore_value or r.ignore_lease) and prev is None:
        raise MvccError(errors.KEY_NOT_FOUND)  # ignore_* keeps a previous pair's field
    value = prev.value if r.ignore_value and prev is not None else r.value
    lease = prev.lease if r.ignore_lease and prev is not None else r.lease
    if r.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(prev)
    resp.header.revision = view.put(r.key, value, lease)
    return resp


def delete_range(view: WriteView, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
    """Apply a checked DeleteRangeRequest."""
    resp = pb.DeleteRangeResponse()
    kr = KeyRange.of(r.key, r.range_end)
    if r.prev_kv:
        resp.prev_kvs.extend(view.current_kvs(kr))
    resp.deleted, resp.header.revision = view.delete_range(kr)
    return resp
