"""WatchResponse bytes, built from pieces encoded once.

A put watched by a hundred watchers is one event sent a hundred times: encoding it once
(`Event`) and framing it into each watcher's response by concatenation costs a bytes
join per response instead of a protobuf message per event per watcher. The layout is
etcd's rpc.proto (field numbers below); tests/unit/test_watch_wire.py checks every
shape against the protobuf library's own encoding and parsing.

    WatchResponse  header=1 (ResponseHeader)  watch_id=2  created=3  canceled=4
                   compact_revision=5  cancel_reason=6  fragment=7  events=11 (Event)
    Event          type=1 (PUT=0, DELETE=1)  kv=2 (KeyValue)  prev_kv=3 (KeyValue)

Example: a PUT of KeyValue bytes K (n bytes) is the event `12 <n> K`; framed into a
response it is `5a <len> 12 <n> K`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.storage.mvcc import Change

_U64 = (1 << 64) - 1
_FRAGMENT_FIELD = b"\x38\x01"


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint; negative int64 values as their two's complement."""
    value &= _U64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + varint(len(payload)) + payload


@dataclass(slots=True)
class Event:
    """One change as an encoded mvccpb.Event, with and without its prev_kv."""

    main: int  # the change's revision
    key: bytes
    tombstone: bool
    plain: bytes  # the Event without prev_kv
    prev_field: bytes  # the encoded prev_kv field, b"" if the key had no value before
    _framed: list[bytes | None] = field(default_factory=lambda: [None, None])

    @classmethod
    def of(cls, change: Change) -> Event:
        if change.tombstone:
            # A tombstone is stored as KeyValue{key}; etcd's event carries the deletion's
            # revision as mod_revision (mvcc kvsToEvents).
            kv = KeyValue(key=change.key, mod_revision=change.main).SerializeToString()
            plain = b"\x08\x01" + _bytes_field(0x12, kv)
        else:
            plain = _bytes_field(0x12, change.kv)
        prev = _bytes_field(0x1A, change.prev_kv) if change.prev_kv is not None else b""
        return cls(change.main, change.key, change.tombstone, plain, prev)

    def framed(self, prev_kv: bool) -> bytes:
        """The event as a WatchResponse `events` field, with prev_kv if asked and known."""
        slot = 1 if prev_kv and self.prev_field else 0
        cached = self._framed[slot]
        if cached is None:
            cached = _bytes_field(0x5A, self.plain + self.prev_field if slot else self.plain)
            self._framed[slot] = cached
        return cached


def response(header: bytes, watch_id: int, *, created: bool = False, canceled: bool = False,
             compact_revision: int = 0, cancel_reason: str = "", fragment: bool = False,
             events: Sequence[bytes] = ()) -> bytes:
    """A WatchResponse; `header` is an encoded ResponseHeader, `events` framed events."""
    parts = [_bytes_field(0x0A, header)] if header else []
    if watch_id:
        parts.append(b"\x10" + varint(watch_id))
    if created:
        parts.append(b"\x18\x01")
    if canceled:
        parts.append(b"\x20\x01")
    if compact_revision:
        parts.append(b"\x28" + varint(compact_revision))
    if cancel_reason:
        parts.append(_bytes_field(0x32, cancel_reason.encode()))
    if fragment:
        parts.append(_FRAGMENT_FIELD)
    parts.extend(events)
    return b"".join(parts)


def fragments(header: bytes, watch_id: int, events: Sequence[bytes],
              max_bytes: int) -> list[bytes]:
    """etcd's sendFragments: one response if it is under `max_bytes` or holds a single
    event; else consecutive pieces, each as many events as stay under `max_bytes` (at
    least one), every piece but the last marked `fragment`."""
    whole = response(header, watch_id, events=events)
    if len(whole) < max_bytes or len(events) < 2:
        return [whole]
    base = len(response(header, watch_id, fragment=True))
    pieces: list[bytes] = []
    start = 0
    while start < len(events):
        size, end = base, start
        while end < len(events) and (end == start or size + len(events[end]) < max_bytes):
            size += len(events[end])
            end += 1
        last = end == len(events)
        pieces.append(response(header, watch_id, fragment=not last, events=events[start:end]))
        start = end
    return pieces
