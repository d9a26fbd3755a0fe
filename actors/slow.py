"""etcd's warning for a request that took too long (warnOfExpensiveRequest).

A request that took more than 100 ms is logged as etcd logs it: "apply request took
too long", with how long it took, the request (values shown by size only, as etcd's
request stringers do) and the response's size or the error. What is timed is what etcd
times:

- a range, from the moment the network actor takes it up until it answers (ReadIndex
  wait included), with the prefix "read-only range " (warnOfExpensiveReadOnlyRangeRequest);
- a write (put, delete, txn, compaction), its apply to the store alone, on every member
  that applies it (the apply actor; etcd's applierV3backend.Apply). Time spent queued
  for Raft is not an expensive request: a loaded cluster does not log every write.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb

WARN_APPLY_DURATION_S = 0.1  # etcd's warnApplyDuration
SLOW_REQUEST = "apply request took too long"  # etcd's message, word for word
READ_ONLY_RANGE = "read-only range "
MAX_TEXT_CHARS = 1000  # a request of large keys stays one readable log line


def warn_if_slow(log: Any, took_s: float, prefix: str, request: Message,
                 response: Message | None, error: Exception | None) -> bool:
    """Log the warning if `took_s` is above etcd's threshold; whether it was."""
    if took_s <= WARN_APPLY_DURATION_S:
        return False
    fields: dict[str, Any] = {
        "took_ms": round(took_s * 1000, 1),
        "expected_duration_ms": round(WARN_APPLY_DURATION_S * 1000),
        "prefix": prefix,
        "request": _clip(request_text(request)),
        "response": "" if response is None else response_text(response),
    }
    if error is not None:
        fields["error"] = str(error)
    log.warning(SLOW_REQUEST, **fields)
    return True


def request_text(r: Message) -> str:
    """The request in protobuf text form, each put's value replaced by its size."""
    if isinstance(r, rpb.InternalRaftRequest):
        return internal_request_text(r)
    if isinstance(r, pb.PutRequest):
        return _put_text(r)
    if isinstance(r, pb.TxnRequest):
        return " ".join([*(f"compare:<{_text(c)}>" for c in r.compare),
                         *(f"success:<{_op_text(op)}>" for op in r.success),
                         *(f"failure:<{_op_text(op)}>" for op in r.failure)])
    return _text(r)


def internal_request_text(r: rpb.InternalRaftRequest) -> str:
    """An entry's request as etcd's InternalRaftStringer shows it: the header, then
    the request (`put:<key:... value_size:N>`)."""
    which = next((f.name for f, _ in r.ListFields() if f.name not in ("header", "ID")), "")
    header = f"header:<ID:{r.header.ID}>"
    if not which:
        return header
    return f"{header} {which}:<{request_text(getattr(r, which))}>"


def response_text(resp: Message) -> str:
    if isinstance(resp, pb.RangeResponse):
        return f"range_response_count:{len(resp.kvs)} size:{resp.ByteSize()}"
    return f"size:{resp.ByteSize()}"


def _op_text(op: pb.RequestOp) -> str:
    which = op.WhichOneof("request")
    if which is None:
        return ""
    inner = getattr(op, which)
    return f"{which}:<{request_text(inner)}>"


def _put_text(r: pb.PutRequest) -> str:
    rest = pb.PutRequest()
    rest.CopyFrom(r)
    rest.ClearField("key")
    rest.ClearField("value")
    parts = (_text(pb.PutRequest(key=r.key)), f"value_size: {len(r.value)}", _text(rest))
    return " ".join(part for part in parts if part)


def _text(m: Message) -> str:
    return text_format.MessageToString(m, as_one_line=True)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "..."
