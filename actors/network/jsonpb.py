"""Protobuf <-> JSON as etcd's gateway does it (grpc-gateway v1, runtime.JSONPb
with OrigName: true, over golang/protobuf's jsonpb).

Requests (`parse`):
- an empty (or all-blank) body is the empty request: the gateway ignores io.EOF, so
  `POST /v3/kv/range` with no body reaches the server and fails there with
  "etcdserver: key is not provided";
- JSON `null` is the empty request too (jsonpb leaves the target untouched);
- only the first JSON value is read (Go's json.Decoder), trailing bytes are ignored;
- unknown fields are ignored (the gateway's decoder allows them);
- field names may be the proto name (`range_end`) or the JSON name (`rangeEnd`);
  bytes are standard base64, 64-bit integers a number or a decimal string;
- anything else (not JSON, not an object, bad base64, a string for a bool ...) is
  InvalidArgument, before anything is proposed.

Responses (`render`): proto field names, fields with default values omitted, bytes as
base64, 64-bit integers as strings, enums by name, compact. Strings are escaped as Go's
encoding/json does (non-ASCII as UTF-8, `<`, `>`, `&`, U+2028 and U+2029 as \\u escapes),
so output bytes match etcd's for the same response.

Example: PutResponse with header {cluster_id: 1, member_id: 2, revision: 5, raft_term: 3}
renders as
    {"header":{"cluster_id":"1","member_id":"2","revision":"5","raft_term":"3"}}
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from .errors import EtcdError, invalid_argument

M = TypeVar("M", bound=Message)

_decoder = json.JSONDecoder()
_MAX_DEPTH = 64  # requests nest only through Txn (each level a RequestOp and a TxnRequest)
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def parse(body: bytes, message_class: type[M]) -> M:
    """The request in `body`; EtcdError(InvalidArgument) if it does not decode."""
    message = message_class()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid_argument(f"invalid UTF-8 in request body at byte {err.start}") from None
    text = text.lstrip(" \t\r\n")
    if not text:
        return message
    try:
        value, _ = _decoder.raw_decode(text)
    except json.JSONDecodeError as err:
        raise invalid_argument(f"invalid JSON: {err.msg} at offset {err.pos}") from None
    if value is None:
        return message
    if not isinstance(value, dict):
        raise invalid_argument(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type "
            f"map[string]json.RawMessage")
    _check_strictly(value, message.DESCRIPTOR)
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as err:
        raise invalid_argument(str(err) or type(err).__name__) from None
    return message


def _check_strictly(value: dict[str, Any], descriptor: Descriptor, depth: int = 0) -> None:
    """What jsonpb refuses and json_format lets through: base64 that is not strictly
    standard or URL-safe padded base64 (json_format drops stray characters), and enum
    names the enum does not have (json_format skips them with unknown fields on)."""
    if depth > _MAX_DEPTH:
        raise invalid_argument("request nested too deeply")
    for key, item in value.items():
        fd = descriptor.fields_by_name.get(key) or _by_json_name(descriptor).get(key)
        if fd is None or item is None:
            continue
        items = item if fd.is_repeated and isinstance(item, list) else [item]
        for one in items:
            _check_field(fd, one, depth)


def _check_field(fd: FieldDescriptor, item: Any, depth: int) -> None:
    if fd.type == FieldDescriptor.TYPE_BYTES and isinstance(item, str):
        _strict_base64(item)
    elif fd.type == FieldDescriptor.TYPE_ENUM and isinstance(item, str):
        if fd.enum_type.values_by_name.get(item) is None:
            raise invalid_argument(f'unknown value "{item}" for enum {fd.enum_type.full_name}')
    elif fd.type == FieldDescriptor.TYPE_MESSAGE and isinstance(item, dict):
        _check_strictly(item, fd.message_type, depth + 1)


def _by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {fd.json_name: fd for fd in descriptor.fields}


def _strict_base64(text: str) -> None:
    """Go's base64.StdEncoding, then URLEncoding, as jsonpb tries them (both padded;
    both skip CR and LF)."""
    data = text.replace("\r", "").replace("\n", "")
    for alphabet, others in ((None, "-_"), (b"-_", "+/")):
        if any(c in data for c in others):
            continue
        try:
            base64.b64decode(data, altchars=alphabet, validate=True)
            return
        except (binascii.Error, ValueError):
            continue
    raise invalid_argument(f"illegal base64 data at input byte {_bad_base64_at(data)}")


def _bad_base64_at(data: str) -> int:
    body = data.rstrip("=")
    for i, c in enumerate(body):
        if not (c.isascii() and (c.isalnum() or c in "+/-_")):
            return i
    return len(body) if len(data) % 4 == 0 else len(data) - len(data) % 4


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def to_dict(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True)
    return result


def dumps(value: Any) -> bytes:
    """Compact JSON escaped as Go's encoding/json escapes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPE_TABLE).encode("utf-8")


def render(message: Message) -> bytes:
    return dumps(to_dict(message))


__all__ = ["EtcdError", "dumps", "parse", "render", "to_dict"]
