"""Crashes tear the tail of the last segment: that is repaired. Anything else is
corruption: refused, with the file and offset named, and nothing touched on disk."""

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from petcd.storage.raftstate import Entry, HardState
from petcd.storage.wal import Wal, WalCorruptError, WalError

SEGMENT_BYTES = 64 * 1024
META = b"member=1,cluster=7"


def entry(index, size=100, term=1):
    return Entry(term, index, 0, bytes([index % 251 + 1]) * size)


def write_one_by_one(wal_dir, count, size=100, synced=None):
    """Append entries 1..count, one append each with its hard state; sync the first
    `synced` (all by default). Returns the end offset of each append in its segment."""
    synced = count if synced is None else synced
    ends = []
    with Wal.create(wal_dir, META, segment_size_bytes=SEGMENT_BYTES) as wal:
        for index in range(1, count + 1):
            wal.append(HardState(1, 1, index), [entry(index, size)])
            if index == synced:
                wal.sync()
            ends.append(wal.tail_position)
    return ends


def reopen(wal_dir):
    wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
    wal.close()
    return contents


def snapshot_files(wal_dir):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in wal_dir.iterdir()}


def damage(path, offset, new_bytes):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(new_bytes)


def frame_offsets(path):
    """Start offsets of the frames in a segment, walking the documented length fields."""
    data, offsets, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        length_field = int.from_bytes(data[offset:offset + 8], "little")
        if length_field == 0:
            break
        offsets.append(offset)
        offset += 8 + (length_field & (1 << 56) - 1) + (length_field >> 56 & 7)
    return offsets


def flip(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        old = f.read(1)[0]
    damage(path, offset, bytes([old ^ 0x20]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 600), min_size=1, max_size=12),
    cut_fraction=st.floats(0, 1),
    zero_instead_of_truncate=st.booleans(),
)
def test_a_tail_torn_anywhere_after_the_last_sync_is_dropped(sizes, cut_fraction,
                                                             zero_instead_of_truncate):
    with tempfile.TemporaryDirectory() as tmp:
        wal_dir = Path(tmp) / "wal"
        with Wal.create(wal_dir, META, segment_size_bytes=SEGMENT_BYTES) as wal:
            wal.append(HardState(1, 1, 3), [entry(i) for i in (1, 2, 3)])
            wal.sync()
            path, synced_end = wal.tail_position
            ends = []  # end offset of each unsynced append (entry + hard state)
            for index, size in enumerate(sizes, start=4):
                wal.append(HardState(1, 1, index), [entry(index, size)])
                ends.append(wal.tail_position[1])
            assert wal.tail_position[0] == path  # all within the last segment
        # The crash: everything after the cut is lost (file cut short, or zeros).
        cut = synced_end + round(cut_fraction * (ends[-1] + 64 - synced_end))
        if zero_instead_of_truncate:
            damage(path, cut, b"\0" * (SEGMENT_BYTES - cut))
        else:
            os.truncate(path, cut)

        wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
        with wal:
            survivors = len(contents.entries)
            fully_written = 3 + sum(1 for end in ends if end <= cut)
            appended = [entry(i, size) for i, size in enumerate([100, 100, 100, *sizes], 1)]
            assert contents.entries == tuple(appended[:survivors])
            assert fully_written <= survivors <= 3 + len(sizes)
            # A hard state survives with its entry, or the one before it.
            assert max(fully_written, survivors - 1) <= contents.hard_state.commit <= survivors
            event(f"torn tail dropped: {contents.repair is not None}")
            event(f"unsynced appends lost: {survivors < 3 + len(sizes)}")
            if contents.repair is not None:
                assert contents.repair.path == path
                assert synced_end <= contents.repair.offset_bytes <= cut
            wal.append(None, [entry(survivors + 1, 7)])
            wal.sync()
        assert reopen(wal_dir).entries[-1] == entry(survivors + 1, 7)


def test_a_clean_preallocated_tail_is_no_repair(tmp_path):
    wal_dir = tmp_path / "wal"
    write_one_by_one(wal_dir, 10)
    before = snapshot_files(wal_dir)
    contents = reopen(wal_dir)
    assert contents.repair is None and len(contents.entries) == 10
    assert snapshot_files(wal_dir) == before


def test_a_last_record_whose_body_never_reached_the_disk_is_dropped(tmp_path):
    # The length field was written but the rest of the record is still the
    # preallocated zeros: a crash mid-write.
    wal_dir = tmp_path / "wal"
    ends = write_one_by_one(wal_dir, 10, synced=9)
    path, last_end = ends[-1]
    start_of_append = ends[-2][1]
    damage(path, start_of_append + 8, b"\0" * (last_end - start_of_append - 8))
    wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
    with wal:
        assert [e.index for e in contents.entries] == list(range(1, 10))
        assert contents.hard_state.commit == 9
        assert (contents.repair.path, contents.repair.offset_bytes) == (path, start_of_append)
        assert contents.repair.dropped_bytes == 8  # only the length field was non-zero
        wal.append(None, [entry(10)])
        wal.sync()
    assert reopen(wal_dir).entries[-1] == entry(10)
    assert reopen(wal_dir).repair is None  # repaired once, clean since


def test_a_crc_mismatch_on_the_very_last_record_counts_as_torn(tmp_path):
    wal_dir = tmp_path / "wal"
    ends = write_one_by_one(wal_dir, 10)
    path = ends[-1][0]
    last_record = frame_offsets(path)[-1]  # the hard state of append 10
    flip(path, last_record + 16)  # its first payload byte
    contents = reopen(wal_dir)
    assert len(contents.entries) == 10 and contents.hard_state.commit == 9
    assert (contents.repair.offset_bytes, contents.repair.reason) == (last_record, "crc mismatch")


def test_a_flipped_byte_mid_segment_is_corruption_naming_file_and_offset(tmp_path):
    wal_dir = tmp_path / "wal"
    ends = write_one_by_one(wal_dir, 50)
    path, record_start = ends[24]  # entry 26's record starts where append 25 ended
    flip(path, record_start + 16 + 40)  # in its payload
    before = snapshot_files(wal_dir)
    with pytest.raises(WalCorruptError) as caught:
        reopen(wal_dir)
    assert str(caught.value) == f"wal: crc mismatch in {path} at offset {record_start}"
    assert (caught.value.path, caught.value.offset_bytes) == (path, record_start)
    assert snapshot_files(wal_dir) == before


def test_a_damaged_length_field_mid_segment_is_corruption(tmp_path):
    wal_dir = tmp_path / "wal"
    ends = write_one_by_one(wal_dir, 50)
    path, record_start = ends[24]
    flip(path, record_start + 1)  # the record length, off by 8192 bytes
    before = snapshot_files(wal_dir)
    with pytest.raises(WalCorruptError, match=f"in {path} at offset {record_start}"):
        reopen(wal_dir)
    assert snapshot_files(wal_dir) == before


def test_any_damage_in_a_segment_before_the_last_is_corruption(tmp_path):
    wal_dir = tmp_path / "wal"
    write_one_by_one(wal_dir, 150, size=1000)
    paths = sorted(wal_dir.iterdir())
    assert len(paths) >= 3
    # The very last record of a closed segment: it was fsynced before the next began.
    flip(paths[0], frame_offsets(paths[0])[-1] + 16)
    before = snapshot_files(wal_dir)
    with pytest.raises(WalCorruptError, match=f"crc mismatch in {paths[0]} at offset"):
        reopen(wal_dir)
    assert snapshot_files(wal_dir) == before


def test_a_crash_while_creating_a_segment_leaves_no_trace(tmp_path):
    wal_dir = tmp_path / "wal"
    write_one_by_one(wal_dir, 5)
    # A segment is written under a temporary name and renamed only when complete.
    (wal_dir / "0000000000000001-0000000000000006.wal.tmp").write_bytes(b"\x01" * 100)
    wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
    with wal:
        assert len(contents.entries) == 5 and contents.repair is None
        assert sorted(os.listdir(wal_dir)) == ["0000000000000000-0000000000000001.wal"]


def test_a_torn_tail_in_a_segment_a_batch_rolled_into(tmp_path):
    wal_dir = tmp_path / "wal"
    with Wal.create(wal_dir, META, segment_size_bytes=SEGMENT_BYTES) as wal:
        wal.append(HardState(1, 1, 0), [entry(i, 1000) for i in range(1, 101)])  # no sync
        paths = wal.segment_paths
    assert len(paths) >= 2
    # The crash loses everything of the newest segment after its header: the segments
    # before it were made durable when the batch rolled over them.
    last = paths[-1]
    header_end = frame_offsets(last)[3]
    damage(last, header_end, b"\0" * (SEGMENT_BYTES - header_end))
    in_earlier_segments = int(last.name[17:33], 16) - 1
    wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
    with wal:
        assert contents.entries == tuple(entry(i, 1000) for i in range(1, in_earlier_segments + 1))
        assert contents.repair is None  # only zeros after the header: nothing to drop
        wal.append(None, [entry(in_earlier_segments + 1, 5)])
        wal.sync()
    assert reopen(wal_dir).entries[-1] == entry(in_earlier_segments + 1, 5)


def test_a_missing_segment_in_the_middle_is_refused(tmp_path):
    wal_dir = tmp_path / "wal"
    write_one_by_one(wal_dir, 150, size=1000)
    paths = sorted(wal_dir.iterdir())
    paths[1].unlink()
    with pytest.raises(WalError, match="segments missing"):
        reopen(wal_dir)
