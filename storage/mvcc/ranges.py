"""Range: etcd's applierV3backend.Range over a view.

Semantics kept from etcd v3.5: `count` is the number of keys in the range at the
revision before limit and before the min/max revision filters; with a sort order
or a filter everything is fetched, filtered, sorted, then cut to `limit`; `more`
says the cut dropped something.
"""

from __future__ import annotations

from collections.abc import Callable

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue

from .keyindex import KeyRange
from .view import ReadView

_R = pb.RangeRequest

_SORT_KEYS: dict[int, Callable[[KeyValue], int | bytes]] = {
    _R.KEY: lambda kv: kv.key,
    _R.VERSION: lambda kv: kv.version,
    _R.CREATE: lambda kv: kv.create_revision,
    _R.MOD: lambda kv: kv.mod_revision,
    _R.VALUE: lambda kv: kv.value,
}


def _needs_everything(r: pb.RangeRequest) -> bool:
    return bool(
        r.sort_order != _R.NONE
        or r.min_mod_revision
        or r.max_mod_revision
        or r.min_create_revision
        or r.max_create_revision
    )


def _keep(r: pb.RangeRequest, kv: KeyValue) -> bool:
    if r.max_mod_revision and kv.mod_revision > r.max_mod_revision:
        return False
    if r.min_mod_revision and kv.mod_revision < r.min_mod_revision:
        return False
    if r.max_create_revision and kv.create_revision > r.max_create_revision:
        return False
    if r.min_create_revision and kv.create_revision < r.min_create_revision:
        return False
    return True


def _effective_order(r: pb.RangeRequest) -> int:
    # Results come in ascending key order already: etcd sorts ascending by default
    # only for other targets, and skips a key-ascending sort.
    if r.sort_target != _R.KEY and r.sort_order == _R.NONE:
        return _R.ASCEND
    if r.sort_target == _R.KEY and r.sort_order == _R.ASCEND:
        return _R.NONE
    return r.sort_order


def _sorted(r: pb.RangeRequest, kvs: list[KeyValue]) -> list[KeyValue]:
    order = _effective_order(r)
    if order == _R.NONE:
        return kvs
    # Stable: ties keep key order, in both directions (etcd leaves ties unspecified).
    return sorted(kvs, key=_SORT_KEYS[r.sort_target], reverse=order == _R.DESCEND)


def range_kvs(view: ReadView, r: pb.RangeRequest) -> pb.RangeResponse:
    """Answer a checked RangeRequest from `view` (raises COMPACTED / FUTURE_REV)."""
    rev = view.resolve_rev(r.revision)
    kr = KeyRange.of(r.key, r.range_end)
    resp = pb.RangeResponse()
    resp.header.revision = view.rev
    if r.count_only:
        resp.count = view.count(kr, rev)
        return resp
    # Without an explicit order or a filter, etcd reads only limit + 1 keys (the
    # extra one tells `more`) and sorts those: a sort target without a sort order
    # orders the first keys of the range, not the whole range.
    fetch = 0 if _needs_everything(r) or r.limit <= 0 else r.limit + 1
    raws, total = view.collect(kr, rev, fetch)
    resp.count = total
    if _needs_everything(r) or _effective_order(r) != _R.NONE:
        kvs = _sorted(r, [kv for kv in map(KeyValue.FromString, raws) if _keep(r, kv)])
        if r.limit > 0 and len(kvs) > r.limit:
            kvs, resp.more = kvs[: r.limit], True
        resp.kvs.extend(kvs)
    else:
        if r.limit > 0 and len(raws) > r.limit:
            raws, resp.more = raws[: r.limit], True
        for raw in raws:
            resp.kvs.add().MergeFromString(raw)
    if r.keys_only:
        for kv in resp.kvs:
            kv.ClearField("value")
    return resp
