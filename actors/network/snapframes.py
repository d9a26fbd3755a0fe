"""Snapshot streams between members: the frames and the pure logic of both ends.

A follower behind the leader's compacted log gets the leader's whole LMDB store. The
sending network actor streams a consistent copy of it over the peer transport in
bounded chunks; the receiving one writes them to a temp file and, once complete and
verified, hands the Raft SNAP message to its raft actor (snapshots.py does the I/O).

Frames (peer envelopes beside "raft"; every value msgpack, sender -> receiver unless
marked):

    snap_chunk  [transfer_id, seq, data: bytes, message: message_wire | nil,
                 end: [size_bytes, sha256: bytes] | nil]
    snap_ack    [transfer_id, seq, error: str | nil]      receiver -> sender
    snap_abort  [transfer_id, reason: str]

- seq counts from 0 without gaps; chunk 0, and only it, carries the SNAP message
  (bus/codec message array); the last chunk, and only it, carries `end`: the size and
  SHA-256 of all the data before it (the copy is streamed as it is made, so its size
  is known only at the end). `data` holds at most `MAX_CHUNK_BYTES`.
- An ack is cumulative: every chunk up to `seq` is written. The ack of the `end`
  chunk means the file is complete, verified, durable under its final name and the
  SNAP message handed to raft. An ack with an error means the receiver dropped the
  transfer; the sender gives up on it (and Raft retries with a new one).
- Flow control: at most `WINDOW_CHUNKS` chunks unacknowledged, so neither end holds
  more than a few chunks in memory whatever the size of the store.

Example: a 2.5 MiB store at index 0x4d2 is 4 frames:
    [id, 0, <1 MiB>, SNAP, nil]  [id, 1, <1 MiB>, nil, nil]  [id, 2, <0.5 MiB>, nil, nil]
    [id, 3, b"", nil, [2621440, sha256(all)]]
and the receiver renames member/snap/00000000000004d2.snap.db.<id>.part to
member/snap/00000000000004d2.snap.db before handing SNAP to raft.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from petcd.actors.bus.codec import CodecError, message_from_wire
from petcd.actors.raft.types import Message, MessageType

CHUNK = "snap_chunk"
ACK = "snap_ack"
ABORT = "snap_abort"
KINDS = frozenset({CHUNK, ACK, ABORT})

MAX_CHUNK_BYTES = 1024 * 1024
WINDOW_CHUNKS = 4  # unacknowledged chunks in flight per transfer
DIGEST_BYTES = 32  # SHA-256
MAX_ERROR_CHARS = 200

_PART = re.compile(r"^[0-9a-f]{16}\.snap\.db\.[0-9a-f]{16}\.part$")


class StreamError(ValueError):
    """A frame or a sequence of frames that breaks the stream protocol."""


@dataclass(frozen=True, slots=True)
class End:
    size_bytes: int
    digest: bytes  # SHA-256 of the data of every chunk

    def __post_init__(self) -> None:
        assert self.size_bytes >= 0 and len(self.digest) == DIGEST_BYTES, self


@dataclass(frozen=True, slots=True)
class Chunk:
    transfer_id: int
    seq: int
    data: bytes
    message: list[Any] | None = None  # the SNAP message's wire array, on chunk 0 only
    end: End | None = None  # on the last chunk only

    def __post_init__(self) -> None:
        assert self.seq >= 0 and len(self.data) <= MAX_CHUNK_BYTES, (self.seq, len(self.data))
        assert (self.seq == 0) == (self.message is not None), "SNAP rides on chunk 0 only"

    def to_wire(self) -> list[Any]:
        end = [self.end.size_bytes, self.end.digest] if self.end else None
        return [self.transfer_id, self.seq, self.data, self.message, end]


@dataclass(frozen=True, slots=True)
class Ack:
    transfer_id: int
    seq: int  # every chunk up to here is written
    error: str | None = None

    def to_wire(self) -> list[Any]:
        return [self.transfer_id, self.seq, self.error]


def chunk_from_wire(obj: Any) -> Chunk:
    try:
        transfer_id, seq, data, message, end = obj
        if not (_is_u64(transfer_id) and _is_u64(seq) and type(data) is bytes):
            raise StreamError("malformed chunk header")
        if len(data) > MAX_CHUNK_BYTES:
            raise StreamError(f"chunk of {len(data)} bytes, more than {MAX_CHUNK_BYTES}")
        if (seq == 0) != (message is not None):
            raise StreamError("the SNAP message rides on chunk 0, and only on it")
        return Chunk(transfer_id, seq, data, message, _end_from(end))
    except (TypeError, ValueError) as err:
        if isinstance(err, StreamError):
            raise
        raise StreamError(f"malformed chunk: {err}") from None


def _end_from(obj: Any) -> End | None:
    if obj is None:
        return None
    size, digest = obj
    if not (_is_u64(size) and type(digest) is bytes and len(digest) == DIGEST_BYTES):
        raise StreamError("malformed chunk end")
    return End(size, digest)


def ack_from_wire(obj: Any) -> Ack:
    try:
        transfer_id, seq, error = obj
    except (TypeError, ValueError):
        raise StreamError("malformed ack") from None
    if not (_is_u64(transfer_id) and _is_u64(seq) and (error is None or type(error) is str)):
        raise StreamError("malformed ack")
    return Ack(transfer_id, seq, error[:MAX_ERROR_CHARS] if error else None)


def abort_from_wire(obj: Any) -> tuple[int, str]:
    try:
        transfer_id, reason = obj
    except (TypeError, ValueError):
        raise StreamError("malformed abort") from None
    if not (_is_u64(transfer_id) and type(reason) is str):
        raise StreamError("malformed abort")
    return transfer_id, reason[:MAX_ERROR_CHARS]


def _is_u64(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**64


def snap_message(wire: Any, src: int, dst: int) -> Message:
    """The SNAP message of chunk 0, checked: from the member the frame came from, to
    us, with a snapshot index that names the file."""
    try:
        m = message_from_wire(wire)
    except CodecError as err:
        raise StreamError(f"chunk 0 holds no Raft message: {err}") from None
    if m.type != MessageType.SNAP or m.snapshot is None:
        raise StreamError(f"chunk 0 holds a {m.type.name} message, not SNAP")
    if m.src != src or m.dst != dst:
        raise StreamError(f"SNAP from {m.src:x} to {m.dst:x} arrived from {src:x}")
    if m.snapshot.meta.index <= 0:
        raise StreamError("SNAP at index 0")
    return m


def part_name(index: int, transfer_id: int) -> str:
    """The temp file of a transfer in member/snap/, beside its final name; one per
    transfer, so a transfer replacing another never shares its file."""
    return f"{index:016x}.snap.db.{transfer_id:016x}.part"


def is_part_name(name: str) -> bool:
    return _PART.match(name) is not None


# -- sender --------------------------------------------------------------------------

class Chunker:
    """Turns the bytes of one copy, read in order, into the chunks of one transfer."""

    def __init__(self, transfer_id: int, message: list[Any]) -> None:
        self.transfer_id = transfer_id
        self._message: list[Any] | None = message
        self._seq = 0
        self._size_bytes = 0
        self._hash = hashlib.sha256()
        self.ended = False

    def chunk(self, data: bytes) -> Chunk:
        assert not self.ended, "no chunk after the end"
        assert 0 < len(data) <= MAX_CHUNK_BYTES, len(data)
        return self._next(data, None)

    def end(self) -> Chunk:
        """The last chunk: the size and digest of everything chunked so far."""
        assert not self.ended, "one end per transfer"
        self.ended = True
        return self._next(b"", End(self._size_bytes, self._hash.digest()))

    def _next(self, data: bytes, end: End | None) -> Chunk:
        self._hash.update(data)
        self._size_bytes += len(data)
        chunk = Chunk(self.transfer_id, self._seq, data, self._message, end)
        self._message = None
        self._seq += 1
        return chunk


class SendWindow:
    """Chunks sent and acknowledged; room for the next one while fewer than
    `limit` are unacknowledged."""

    def __init__(self, limit: int = WINDOW_CHUNKS) -> None:
        assert limit > 0, "every queue is bounded"
        self.limit = limit
        self.sent = 0  # chunks handed to the transport
        self.acked = 0  # chunks the receiver has written (acked seq + 1)

    def has_room(self) -> bool:
        return self.sent - self.acked < self.limit

    def on_sent(self) -> None:
        assert self.has_room(), "sent past the window"
        self.sent += 1

    def on_ack(self, seq: int) -> bool:
        """True if the ack moved the window; an ack for a chunk never sent is an error."""
        if seq >= self.sent:
            raise StreamError(f"ack for chunk {seq}, only {self.sent} sent")
        if seq + 1 <= self.acked:
            return False  # repeated or reordered: cumulative acks make it harmless
        self.acked = seq + 1
        return True


# -- receiver ------------------------------------------------------------------------

class Reassembly:
    """The receiving end of one transfer: chunks must come in order, within size
    bounds, and end with the size and digest of what came."""

    def __init__(self, first: Chunk, max_size_bytes: int) -> None:
        assert first.seq == 0, "a transfer starts at chunk 0"
        self.transfer_id = first.transfer_id
        self.max_size_bytes = max_size_bytes
        self.next_seq = 0
        self.size_bytes = 0
        self._hash = hashlib.sha256()
        self.done = False

    def accept(self, chunk: Chunk) -> bytes:
        """The data to append to the file; raises StreamError (the transfer is lost)
        on a chunk out of order, too much data, or an end that does not match."""
        if self.done:
            raise StreamError(f"chunk {chunk.seq} after the end")
        if chunk.transfer_id != self.transfer_id:
            raise StreamError(f"chunk of transfer {chunk.transfer_id:x}, "
                              f"not {self.transfer_id:x}")
        if chunk.seq != self.next_seq:
            raise StreamError(f"chunk {chunk.seq} where {self.next_seq} was due")
        if self.size_bytes + len(chunk.data) > self.max_size_bytes:
            raise StreamError(f"more than {self.max_size_bytes} bytes: larger than this "
                              f"member's store may grow")
        self.next_seq += 1
        self.size_bytes += len(chunk.data)
        self._hash.update(chunk.data)
        if chunk.end is not None:
            self._check_end(chunk.end)
        return chunk.data

    def _check_end(self, end: End) -> None:
        if end.size_bytes != self.size_bytes:
            raise StreamError(f"got {self.size_bytes} bytes, the sender sent "
                              f"{end.size_bytes}")
        if end.digest != self._hash.digest():
            raise StreamError("SHA-256 of the data differs from the sender's")
        self.done = True
