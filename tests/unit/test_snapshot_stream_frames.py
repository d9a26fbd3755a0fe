"""Snapshot stream frames (actors/network/snapframes.py): chunking, the send window,
reassembly and the checks that make a damaged or reordered stream fail, never land."""

from __future__ import annotations

import hashlib
import random

import msgpack
import pytest
from petcd.actors.bus.codec import message_to_wire
from petcd.actors.network import snapframes as sf
from petcd.actors.raft.types import Message, MessageType, Snapshot
from petcd.storage.raftstate import ConfState, SnapshotMeta

LEADER, FOLLOWER = 0xA1, 0xB2
MAX = 10 * sf.MAX_CHUNK_BYTES


def snap_wire(index: int = 1234, src: int = LEADER, dst: int = FOLLOWER) -> list:
    meta = SnapshotMeta(index, 3, ConfState(frozenset({LEADER, FOLLOWER})))
    return message_to_wire(Message(MessageType.SNAP, src, dst, 3, snapshot=Snapshot(meta)))


def over_the_wire(chunk: sf.Chunk) -> sf.Chunk:
    """What the receiver decodes: msgpack out and back, as the peer transport does."""
    raw = msgpack.unpackb(msgpack.packb(chunk.to_wire(), use_bin_type=True), raw=False)
    return sf.chunk_from_wire(raw)


def chunk_all(data: bytes, size: int, transfer_id: int = 7) -> list[sf.Chunk]:
    chunker = sf.Chunker(transfer_id, snap_wire())
    chunks = [chunker.chunk(data[i:i + size]) for i in range(0, len(data), size)]
    return chunks + [chunker.end()]


def reassemble(chunks: list[sf.Chunk], max_size: int = MAX) -> bytes:
    r = sf.Reassembly(chunks[0], max_size)
    out = b"".join(r.accept(over_the_wire(c)) for c in chunks)
    assert r.done
    return out


def test_the_docstring_example_is_four_frames_with_the_message_first_and_the_end_last():
    data = random.Random(1).randbytes(5 * sf.MAX_CHUNK_BYTES // 2)
    chunks = chunk_all(data, sf.MAX_CHUNK_BYTES)
    assert [c.seq for c in chunks] == [0, 1, 2, 3]
    assert [len(c.data) for c in chunks] == [2**20, 2**20, 2**19, 0]
    assert [c.message is not None for c in chunks] == [True, False, False, False]
    assert [c.end is not None for c in chunks] == [False, False, False, True]
    assert chunks[-1].end == sf.End(len(data), hashlib.sha256(data).digest())
    assert reassemble(chunks) == data
    assert sf.part_name(0x4D2, 0xFF) == "00000000000004d2.snap.db.00000000000000ff.part"
    assert sf.is_part_name(sf.part_name(0x4D2, 2**64 - 1))
    assert not sf.is_part_name("00000000000004d2.snap.db")


@pytest.mark.parametrize("size", [1, 3, 4096, 65536])
def test_any_chunk_size_reassembles_to_the_same_bytes(size):
    data = random.Random(size).randbytes(100_000)
    assert reassemble(chunk_all(data, size)) == data


def test_an_empty_copy_is_one_chunk_with_the_message_and_the_end():
    [only] = chunk_all(b"", 10)
    assert only.seq == 0 and only.message is not None and only.end == sf.End(
        0, hashlib.sha256(b"").digest())
    assert reassemble([only]) == b""


def test_a_missing_or_repeated_chunk_fails_the_transfer():
    chunks = chunk_all(bytes(5000), 1000)
    r = sf.Reassembly(chunks[0], MAX)
    r.accept(chunks[0])
    with pytest.raises(sf.StreamError, match="chunk 2 where 1 was due"):
        r.accept(chunks[2])
    r = sf.Reassembly(chunks[0], MAX)
    r.accept(chunks[0])
    with pytest.raises(sf.StreamError, match="chunk 0 where 1 was due"):
        r.accept(chunks[0])


def test_a_flipped_byte_or_a_lost_tail_fails_the_checksum_or_the_size():
    data = bytes(range(256)) * 20
    chunks = chunk_all(data, 1000)
    bad = sf.Chunk(chunks[2].transfer_id, 2, b"\xff" + chunks[2].data[1:])
    r = sf.Reassembly(chunks[0], MAX)
    with pytest.raises(sf.StreamError, match="SHA-256"):
        for c in chunks[:2] + [bad] + chunks[3:]:
            r.accept(c)
    assert not r.done
    short = chunks[:-2] + [sf.Chunk(chunks[-1].transfer_id, len(chunks) - 2, b"",
                                    end=chunks[-1].end)]
    r = sf.Reassembly(chunks[0], MAX)
    with pytest.raises(sf.StreamError, match=f"got 5000 bytes, the sender sent {len(data)}"):
        for c in short:
            r.accept(c)


def test_more_than_the_store_may_hold_is_refused_before_it_is_written():
    chunks = chunk_all(bytes(3000), 1000)
    r = sf.Reassembly(chunks[0], 2500)
    r.accept(chunks[0])
    r.accept(chunks[1])
    with pytest.raises(sf.StreamError, match="more than 2500 bytes"):
        r.accept(chunks[2])


def test_chunks_of_another_transfer_or_after_the_end_are_refused():
    chunks = chunk_all(bytes(10), 10, transfer_id=1)
    other = chunk_all(bytes(10), 10, transfer_id=2)
    r = sf.Reassembly(chunks[0], MAX)
    r.accept(chunks[0])
    with pytest.raises(sf.StreamError, match="transfer 2, not 1"):
        r.accept(other[1])
    r.accept(chunks[1])
    with pytest.raises(sf.StreamError, match="after the end"):
        r.accept(chunks[1])


@pytest.mark.parametrize("wire, error", [
    ("not a list", "malformed chunk"),
    ([1, 0, b"x", None, None], "rides on chunk 0"),
    ([1, 1, b"x", [1], None], "rides on chunk 0"),
    ([-1, 0, b"x", [1], None], "malformed chunk header"),
    ([1, 1, "text", None, None], "malformed chunk header"),
    ([1, 1, b"x" * (sf.MAX_CHUNK_BYTES + 1), None, None], "more than"),
    ([1, 1, b"", None, [1, b"short"]], "malformed chunk end"),
    ([1, 1, b"", None, [1, b"0" * 32, 3]], "malformed chunk"),
])
def test_malformed_chunk_frames_are_stream_errors(wire, error):
    with pytest.raises(sf.StreamError, match=error):
        sf.chunk_from_wire(wire)


def test_acks_and_aborts_round_trip_and_malformed_ones_are_refused():
    assert sf.ack_from_wire(sf.Ack(5, 3).to_wire()) == sf.Ack(5, 3)
    assert sf.ack_from_wire([5, 3, "x" * 1000]).error == "x" * sf.MAX_ERROR_CHARS
    assert sf.abort_from_wire([5, "stop"]) == (5, "stop")
    for bad in (None, [1, 2], [1, -2, None], [1, 2, 3]):
        with pytest.raises(sf.StreamError):
            sf.ack_from_wire(bad)
    with pytest.raises(sf.StreamError):
        sf.abort_from_wire([1, 2])


def test_the_snap_message_must_come_from_the_sending_member_to_us():
    m = sf.snap_message(snap_wire(), LEADER, FOLLOWER)
    assert m.snapshot is not None and m.snapshot.meta.index == 1234
    with pytest.raises(sf.StreamError, match="arrived from"):
        sf.snap_message(snap_wire(), 0xC3, FOLLOWER)  # spoofed source
    with pytest.raises(sf.StreamError, match="arrived from"):
        sf.snap_message(snap_wire(dst=0xC3), LEADER, FOLLOWER)
    with pytest.raises(sf.StreamError, match="index 0"):
        sf.snap_message(snap_wire(index=0), LEADER, FOLLOWER)
    heartbeat = message_to_wire(Message(MessageType.HEARTBEAT, LEADER, FOLLOWER, 3))
    with pytest.raises(sf.StreamError, match="HEARTBEAT message, not SNAP"):
        sf.snap_message(heartbeat, LEADER, FOLLOWER)
    with pytest.raises(sf.StreamError, match="no Raft message"):
        sf.snap_message([1, 2], LEADER, FOLLOWER)


def test_the_window_holds_at_most_its_limit_unacknowledged():
    w = sf.SendWindow(limit=2)
    w.on_sent()
    w.on_sent()
    assert not w.has_room()
    assert w.on_ack(0) and w.has_room()
    assert not w.on_ack(0)  # repeated: harmless
    w.on_sent()
    assert w.on_ack(2) and w.acked == 3  # cumulative
    assert not w.on_ack(1)  # reordered, older: harmless
    with pytest.raises(sf.StreamError, match="only 3 sent"):
        w.on_ack(3)
