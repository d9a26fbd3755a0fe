"""The byte layout of WAL records and segments.

Segments
--------
A WAL directory holds segment files named ``f"{seq:016x}-{first_index:016x}.wal"``:
``seq`` counts segments from 0 without gaps; ``first_index`` is one more than the
index of the last entry written before the segment was started (1 for the first
segment), so every entry written into the segment has an index >= first_index unless
a conflicting tail is being overwritten. Each segment is preallocated to a fixed size
(zero-filled) and created atomically (temp file, fsync, rename, fsync directory).

Every segment begins with three header records, so that a segment can be read without
the ones before it (after those were released):

    CRC         crc field = rolling crc at the end of the previous segment (0 for the
                first); empty payload. It carries the crc chain across files.
    METADATA    the opaque bytes given at create (member and cluster ids).
    HARD_STATE  the hard state current when the segment was started.

followed by ENTRY, HARD_STATE and SNAPSHOT records in the order they were appended,
then zeros up to the preallocated size.

Records
-------
Every record is a frame aligned to 8 bytes:

    offset  size  field
    0       8     length field, little-endian u64:
                    bits 0-55   record length in bytes (type + crc + payload,
                                without padding)
                    bits 56-58  number of padding bytes (0-7)
                    bit  63     set when there is padding
                    bits 59-62  zero
    8       4     record type, little-endian u32 (METADATA=1, ENTRY=2, HARD_STATE=3,
                  CRC=4, SNAPSHOT=5, as in etcd)
    12      4     crc, little-endian u32
    16      n     payload (msgpack)
    16+n    p     zero padding so that the next frame starts 8-byte aligned

Because frames are 8-byte aligned and the length field is the first 8 bytes, the
length field never straddles a sector boundary: it is written whole or not at all.
A zero length field means "nothing written here": the preallocated tail.

The crc is rolling: ``crc = zlib.crc32(payload, crc_of_previous_record)``, chained
through every record of every segment, so a record read in isolation cannot pass as
valid somewhere else. The CRC record is the exception: its crc field *is* the chain
value it carries, and the chain continues from it.

Payloads (msgpack arrays unless said otherwise):

    METADATA    bin: the metadata bytes
    ENTRY       [term, index, type, data(bin)]
    HARD_STATE  [term, vote, commit]
    SNAPSHOT    [index, term, [voter ids...], [learner ids...]]   (a marker only)
    CRC         empty

Worked example: the record for ``Entry(term=1, index=1, data=b"hi")`` written right
after a record whose crc was 0x3f1b8e2a:

    payload = msgpack [1, 1, 0, b"hi"]     = 94 01 01 00 c4 02 68 69        (8 bytes)
    crc     = zlib.crc32(payload, 0x3f1b8e2a) = 0x3add1a21
    record length = 4 (type) + 4 (crc) + 8 (payload) = 16, already aligned: no padding

    10 00 00 00 00 00 00 00   length field: 16, no padding
    02 00 00 00               type ENTRY
    21 1a dd 3a               crc 0x3add1a21
    94 01 01 00 c4 02 68 69   payload

and with ``data=b"hey"`` the payload is 9 bytes, the record 17, so 7 padding bytes:

    11 00 00 00 00 00 00 87   length field: 17 | (0x80 | 7) << 56
    02 00 00 00 38 c3 81 a3   type ENTRY, crc 0xa381c338
    94 01 01 00 c4 03 68 65 79 00 00 00 00 00 00 00   payload, 7 zero bytes

Reading
-------
Records are read in order; an ENTRY whose index is <= the last entry read replaces
that entry and drops everything after it (a follower's conflicting tail is
overwritten by appending). The last HARD_STATE wins.

A torn tail - an incomplete record, a zero-filled gap, or a crc mismatch, with no
valid record anywhere after it - in the last segment is what a crash mid-write leaves:
it is truncated on open. The same in a non-last segment, or a bad record followed by
a valid one, is corruption: the WAL refuses to open.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

import msgpack

from petcd.storage.raftstate import ConfState, Entry, HardState, SnapshotMeta


class RecordType(enum.IntEnum):
    METADATA = 1
    ENTRY = 2
    HARD_STATE = 3
    CRC = 4
    SNAPSHOT = 5


FRAME_HEAD = struct.Struct("<QII")  # length field, type, crc
LENGTH_FIELD_BYTES: Final = 8
RECORD_HEAD_BYTES: Final = 8  # type + crc: counted in the record length
ALIGN_BYTES: Final = 8
_LENGTH_MASK: Final = (1 << 56) - 1
_PAD_FLAG: Final = 1 << 63
_RESERVED_MASK: Final = 0x78 << 56  # bits 59-62 must be zero
_ZERO_PADS: Final = tuple(b"\0" * n for n in range(ALIGN_BYTES))
_RECORD_TYPES: Final = frozenset(int(t) for t in RecordType)


def frame_bytes(payload_bytes: int) -> int:
    """Size on disk of a frame carrying `payload_bytes`, padding included."""
    return (LENGTH_FIELD_BYTES + RECORD_HEAD_BYTES + payload_bytes + 7) & ~7


def encode_frame(record_type: int, crc: int, payload: bytes) -> bytes:
    record_bytes = RECORD_HEAD_BYTES + len(payload)
    pad_bytes = -record_bytes & 7
    length_field = record_bytes | (_PAD_FLAG | pad_bytes << 56 if pad_bytes else 0)
    return FRAME_HEAD.pack(length_field, record_type, crc) + payload + _ZERO_PADS[pad_bytes]


def decode_length_field(length_field: int) -> tuple[int, int] | None:
    """(record bytes, padding bytes), or None if the field cannot be a valid one."""
    record_bytes = length_field & _LENGTH_MASK
    pad_bytes = (length_field >> 56) & 7
    if length_field & _RESERVED_MASK or (pad_bytes and not length_field & _PAD_FLAG):
        return None
    if record_bytes < RECORD_HEAD_BYTES or (record_bytes + pad_bytes) % ALIGN_BYTES:
        return None
    return record_bytes, pad_bytes


def is_record_type(value: int) -> bool:
    return value in _RECORD_TYPES


# Payload codecs. The packer is reused: building one per record costs more than
# packing a 100-byte entry.
_packer = msgpack.Packer(use_bin_type=True)


def encode_entry(entry: Entry) -> bytes:
    payload: bytes = _packer.pack((entry.term, entry.index, int(entry.type), entry.data))
    return payload


def decode_entry(payload: bytes | memoryview) -> Entry:
    term, index, entry_type, data = msgpack.unpackb(payload)
    return Entry(term, index, entry_type, data)


def encode_hard_state(hard_state: HardState) -> bytes:
    payload: bytes = _packer.pack((hard_state.term, hard_state.vote, hard_state.commit))
    return payload


def decode_hard_state(payload: bytes | memoryview) -> HardState:
    term, vote, commit = msgpack.unpackb(payload)
    return HardState(term, vote, commit)


def encode_snapshot(meta: SnapshotMeta) -> bytes:
    conf = meta.conf
    payload: bytes = _packer.pack((meta.index, meta.term, sorted(conf.voters),
                                   sorted(conf.learners)))
    return payload


def decode_snapshot(payload: bytes | memoryview) -> SnapshotMeta:
    index, term, voters, learners = msgpack.unpackb(payload)
    return SnapshotMeta(index, term, ConfState(frozenset(voters), frozenset(learners)))


def encode_metadata(metadata: bytes) -> bytes:
    payload: bytes = _packer.pack(metadata)
    return payload


def decode_metadata(payload: bytes | memoryview) -> bytes:
    metadata = msgpack.unpackb(payload)
    if not isinstance(metadata, bytes):
        raise ValueError("metadata payload is not bin")
    return metadata
