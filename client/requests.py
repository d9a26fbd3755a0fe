"""Build etcd's request messages from keyword arguments (pure: no I/O).

Used by `Client` for single calls and by callers composing a transaction:

    client.txn(compare=[compare("mod", "k", ">", 0)],
               success=[put_op("k", "v")], failure=[range_op("k")])

Keys and values are `str` (encoded as UTF-8) or `bytes`. A key range is given as an
explicit `range_end`, or `prefix=True` (every key starting with `key`), or
`from_key=True` (every key >= `key`), as in etcd's clientv3.
"""

from __future__ import annotations

from petcd.api.etcdserverpb import rpc_pb2 as pb

Bytes = str | bytes

SORT_TARGETS = {"key": pb.RangeRequest.KEY, "version": pb.RangeRequest.VERSION,
                "create": pb.RangeRequest.CREATE, "mod": pb.RangeRequest.MOD,
                "value": pb.RangeRequest.VALUE}
SORT_ORDERS = {"none": pb.RangeRequest.NONE, "ascend": pb.RangeRequest.ASCEND,
               "descend": pb.RangeRequest.DESCEND}
COMPARE_TARGETS = {"version": pb.Compare.VERSION, "create": pb.Compare.CREATE,
                   "mod": pb.Compare.MOD, "value": pb.Compare.VALUE,
                   "lease": pb.Compare.LEASE}
COMPARE_OPS = {"=": pb.Compare.EQUAL, "==": pb.Compare.EQUAL, ">": pb.Compare.GREATER,
               "<": pb.Compare.LESS, "!=": pb.Compare.NOT_EQUAL}
# etcd's "no key" marker: a range from "\0" with range_end "\0" covers every key.
ALL_KEYS = b"\x00"


def to_bytes(data: Bytes) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def prefix_range_end(key: bytes) -> bytes:
    """The smallest key greater than every key starting with `key` (etcd's
    GetPrefixRangeEnd); b"\\0" (to the end of the keyspace) if `key` is all 0xff."""
    stripped = key.rstrip(b"\xff")
    if not stripped:
        return ALL_KEYS
    return stripped[:-1] + bytes([stripped[-1] + 1])


def key_range(key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
              from_key: bool = False) -> tuple[bytes, bytes]:
    if sum((range_end is not None, prefix, from_key)) > 1:
        raise ValueError("give at most one of range_end, prefix, from_key")
    raw = to_bytes(key)
    if prefix:
        # An empty prefix means every key (etcdctl's `get "" --prefix`).
        return (raw, prefix_range_end(raw)) if raw else (ALL_KEYS, ALL_KEYS)
    if from_key:
        return raw or ALL_KEYS, ALL_KEYS
    return raw, to_bytes(range_end) if range_end is not None else b""


def range_request(key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
                  from_key: bool = False, limit: int = 0, revision: int = 0,
                  sort_target: str = "key", sort_order: str = "none",
                  keys_only: bool = False, count_only: bool = False,
                  serializable: bool = False) -> pb.RangeRequest:
    start, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    return pb.RangeRequest(
        key=start, range_end=end, limit=limit, revision=revision,
        sort_target=SORT_TARGETS[sort_target], sort_order=SORT_ORDERS[sort_order],
        keys_only=keys_only, count_only=count_only, serializable=serializable)


def put_request(key: Bytes, value: Bytes = b"", *, lease: int = 0, prev_kv: bool = False,
                ignore_value: bool = False, ignore_lease: bool = False) -> pb.PutRequest:
    return pb.PutRequest(key=to_bytes(key), value=to_bytes(value), lease=lease,
                         prev_kv=prev_kv, ignore_value=ignore_value,
                         ignore_lease=ignore_lease)


def delete_request(key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
                   from_key: bool = False, prev_kv: bool = False) -> pb.DeleteRangeRequest:
    start, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    return pb.DeleteRangeRequest(key=start, range_end=end, prev_kv=prev_kv)


def range_op(key: Bytes, range_end: Bytes | None = None, **options) -> pb.RequestOp:
    return pb.RequestOp(request_range=range_request(key, range_end, **options))


def put_op(key: Bytes, value: Bytes = b"", **options) -> pb.RequestOp:
    return pb.RequestOp(request_put=put_request(key, value, **options))


def delete_op(key: Bytes, range_end: Bytes | None = None, **options) -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=delete_request(key, range_end, **options))


def compare(target: str, key: Bytes, op: str, operand: int | Bytes,
            range_end: Bytes | None = None) -> pb.Compare:
    """compare("value", "k", "=", "v"), compare("mod", "k", ">", 0), ...: `target` is
    version, create, mod, value or lease; `op` is =, !=, > or <."""
    if target not in COMPARE_TARGETS:
        raise ValueError(f"unknown compare target {target!r}")
    if op not in COMPARE_OPS:
        raise ValueError(f"unknown compare operator {op!r}")
    cmp = pb.Compare(key=to_bytes(key), target=COMPARE_TARGETS[target],
                     result=COMPARE_OPS[op])
    if range_end is not None:
        cmp.range_end = to_bytes(range_end)
    if target == "value":
        cmp.value = to_bytes(operand)
    elif not isinstance(operand, int):
        raise ValueError(f"{target} compares with an integer, got {operand!r}")
    elif target == "lease":
        cmp.lease = operand
    else:
        setattr(cmp, {"version": "version", "create": "create_revision",
                      "mod": "mod_revision"}[target], operand)
    return cmp


def watch_create_request(key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
                         from_key: bool = False, start_revision: int = 0,
                         prev_kv: bool = False, no_put: bool = False,
                         no_delete: bool = False, progress_notify: bool = False,
                         fragment: bool = False) -> pb.WatchCreateRequest:
    """start_revision 0 watches from the next revision on; no_put / no_delete drop
    those events on the server (etcd's filters)."""
    start, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    filters = [kind for kind, wanted in ((pb.WatchCreateRequest.NOPUT, no_put),
                                         (pb.WatchCreateRequest.NODELETE, no_delete))
               if wanted]
    return pb.WatchCreateRequest(key=start, range_end=end, start_revision=start_revision,
                                 progress_notify=progress_notify, filters=filters,
                                 prev_kv=prev_kv, fragment=fragment)
