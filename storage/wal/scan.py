"""Scanning the records of one segment, and telling a torn tail from corruption.

Pure functions over the bytes of a segment file: nothing here opens or writes files.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from petcd.storage.wal.format import (
    ALIGN_BYTES,
    FRAME_HEAD,
    LENGTH_FIELD_BYTES,
    RecordType,
    decode_length_field,
    is_record_type,
)

# Every segment starts with these records, in this order (see format.py).
HEADER_TYPES: Final = (RecordType.CRC, RecordType.METADATA, RecordType.HARD_STATE)

# Called for every valid record: (type, payload, offset of its frame in the file).
# The type is a plain int equal to a RecordType member (cheaper to compare).
OnRecord = Callable[[int, memoryview, int], None]
_CRC: Final = int(RecordType.CRC)


class Frame(NamedTuple):
    """One well-formed frame. A NamedTuple: built once per record on the read path,
    where a frozen dataclass costs about three times as much."""

    record_type: int  # a RecordType value (checked)
    crc: int
    payload: memoryview
    next_offset_bytes: int  # where the next frame starts (after padding)


@dataclass(frozen=True, slots=True)
class Stop:
    """Where and why a scan stopped before the end of the written data."""

    offset_bytes: int  # the frame that failed
    reason: str


@dataclass(frozen=True, slots=True)
class SegmentScan:
    end_offset_bytes: int  # just past the last valid frame: where appending resumes
    crc: int  # the rolling crc after the last valid record
    records: int  # valid records read, header included
    data_end_bytes: int  # just past the last non-zero byte in the file
    stop: Stop | None  # None: only zeros (or the end of the file) follow the records

    def __post_init__(self) -> None:
        assert self.stop is None or self.stop.offset_bytes == self.end_offset_bytes


def parse_frame(buf: bytes, offset_bytes: int) -> Frame | str:
    """The frame at `offset_bytes`, or why there is no well-formed frame there.

    A frame missing only (some of) its zero padding at the end of the file is
    accepted: its record is complete, and the padding carries nothing.
    """
    if offset_bytes + FRAME_HEAD.size > len(buf):
        return "incomplete record"
    length_field, record_type, crc = FRAME_HEAD.unpack_from(buf, offset_bytes)
    if length_field == 0:
        return "unwritten (zero) record"
    lengths = decode_length_field(length_field)
    if lengths is None:
        return "invalid length field"
    record_bytes, pad_bytes = lengths
    end = offset_bytes + LENGTH_FIELD_BYTES + record_bytes
    if end > len(buf):
        return "incomplete record"
    if not is_record_type(record_type):
        return "unknown record type"
    payload = memoryview(buf)[offset_bytes + FRAME_HEAD.size:end]
    return Frame(record_type, crc, payload, end + pad_bytes)


def data_end(buf: bytes, chunk_bytes: int = 1 << 16) -> int:
    """Offset just past the last non-zero byte (the preallocated tail is zeros)."""
    end = len(buf)
    while end > 0:
        start = max(0, end - chunk_bytes)
        chunk = buf[start:end]
        if chunk.count(0) != len(chunk):
            return start + len(chunk.rstrip(b"\0"))
        end = start
    return 0


def scan_segment(buf: bytes, seed_crc: int | None, on_record: OnRecord) -> SegmentScan:
    """Check and report every record of a segment, up to the first bad one.

    `seed_crc` is the rolling crc at the end of the previous segment, which this
    segment's CRC record must carry; None when there is no previous segment to
    check against (the first segment read), and the chain starts from the record.
    """
    written_end = data_end(buf)
    offset, crc, records = 0, 0, 0
    while offset < written_end:
        frame = parse_frame(buf, offset)
        if isinstance(frame, str):
            return SegmentScan(offset, crc, records, written_end, Stop(offset, frame))
        problem, crc_after = _check(frame, records, crc, seed_crc)
        if problem:
            return SegmentScan(offset, crc, records, written_end, Stop(offset, problem))
        on_record(frame.record_type, frame.payload, offset)
        offset, crc, records = frame.next_offset_bytes, crc_after, records + 1
    return SegmentScan(offset, crc, records, written_end, None)


def _check(frame: Frame, records: int, crc: int, seed_crc: int | None) -> tuple[str, int]:
    """(problem or "", rolling crc after this frame) for the `records`-th frame."""
    if records < len(HEADER_TYPES) and frame.record_type != HEADER_TYPES[records]:
        return f"segment header: expected {HEADER_TYPES[records].name} record", crc
    if frame.record_type == _CRC:
        if records:
            return "CRC record inside a segment", crc
        if seed_crc is not None and frame.crc != seed_crc:
            return "crc chain broken between segments", crc
        return "", frame.crc
    crc_after = zlib.crc32(frame.payload, crc)
    if crc_after != frame.crc:
        return "crc mismatch", crc
    return "", crc_after


def valid_record_follows(buf: bytes, stop: Stop, crc_before: int) -> bool:
    """Whether a record that checks out lies after the bad frame at `stop`.

    A crash mid-write leaves garbage or zeros and nothing valid after it; a valid
    record after a bad one means bytes that were once good went bad (corruption).
    The chain is broken at the bad frame, so a later record is recognised by its
    crc matching the crc stored in (or computed over) the bad frame, or the crc of
    the record just before it. Costs one pass over the non-zero bytes after `stop`.
    """
    seeds: set[int] = set()
    bad = parse_frame(buf, stop.offset_bytes)
    if isinstance(bad, Frame):
        seeds = {bad.crc, zlib.crc32(bad.payload, crc_before)}
    written_end = data_end(buf)
    for offset in range(stop.offset_bytes + ALIGN_BYTES, written_end, ALIGN_BYTES):
        frame = parse_frame(buf, offset)
        if not isinstance(frame, Frame):
            continue
        if any(zlib.crc32(frame.payload, seed) == frame.crc for seed in seeds):
            return True
        after = parse_frame(buf, frame.next_offset_bytes)
        if isinstance(after, Frame) and zlib.crc32(after.payload, frame.crc) == after.crc:
            return True
    return False
