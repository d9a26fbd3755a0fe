"""The record format is what storage/wal/format.py documents, byte for byte."""

import re
import zlib

import pytest

from petcd.storage.raftstate import Entry
from petcd.storage.wal import format as fmt


def _doc_hex(label: str) -> bytes:
    """The first block of hex rows after `label` in the worked example of format.py."""
    doc = fmt.__doc__
    for block in doc[doc.index(label):].split("\n\n")[1:]:
        rows = [re.match(r"\s+((?:[0-9a-f]{2} )+)", line + " ") for line in block.splitlines()]
        if all(rows):
            return bytes.fromhex("".join(row[1] for row in rows))
    raise AssertionError(f"no hex rows after {label!r}")


def test_worked_example_in_the_format_doc_matches_the_encoder():
    prev_crc = 0x3F1B8E2A
    for data, label in ((b"hi", 'data=b"hi")'), (b"hey", 'data=b"hey"')):
        payload = fmt.encode_entry(Entry(term=1, index=1, data=data))
        frame = fmt.encode_frame(fmt.RecordType.ENTRY, zlib.crc32(payload, prev_crc), payload)
        assert frame == _doc_hex(label)


@pytest.mark.parametrize("payload_bytes", range(17))
def test_frames_are_8_byte_aligned_with_padding_in_the_length_field(payload_bytes):
    frame = fmt.encode_frame(fmt.RecordType.ENTRY, 0, b"\x01" * payload_bytes)
    assert len(frame) % 8 == 0 and len(frame) == fmt.frame_bytes(payload_bytes)
    length_field = int.from_bytes(frame[:8], "little")
    record_bytes, pad_bytes = fmt.decode_length_field(length_field)
    assert record_bytes == 8 + payload_bytes
    assert pad_bytes == len(frame) - 8 - record_bytes
    assert bool(length_field >> 63) == bool(pad_bytes)
    assert frame[8 + record_bytes:] == b"\0" * pad_bytes


@pytest.mark.parametrize("length_field", [
    0,  # unwritten
    4,  # shorter than type + crc
    9,  # not aligned, and no padding declared
    9 | (0x80 | 6) << 56,  # padding that does not reach alignment
    16 | 0x08 << 56,  # reserved bits set
    16 | 0x07 << 56,  # padding size without the padding flag
])
def test_impossible_length_fields_are_rejected(length_field):
    assert fmt.decode_length_field(length_field) is None
