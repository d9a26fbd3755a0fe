"""What a restarted member reads back from its WAL, across segments and reopenings."""

import os

import pytest

from petcd.storage.raftstate import ConfState, Entry, EntryType, HardState, SnapshotMeta
from petcd.storage.wal import Wal, WalCorruptError, WalError, read_valid_snapshots, wal_exists

SEGMENT_BYTES = 64 * 1024
META = b"member=1,cluster=7"


def entries(first, last, term=1, size=100):
    return [Entry(term, i, EntryType.NORMAL, i.to_bytes(4, "big") * (size // 4))
            for i in range(first, last + 1)]


def reopen(wal_dir, snapshot=None):
    wal, contents = Wal.open(wal_dir, snapshot, segment_size_bytes=SEGMENT_BYTES)
    wal.close()
    return contents


@pytest.fixture
def wal_dir(tmp_path):
    return tmp_path / "member" / "wal"


@pytest.fixture
def wal(wal_dir):
    with Wal.create(wal_dir, META, segment_size_bytes=SEGMENT_BYTES) as wal:
        yield wal


def test_round_trip(wal, wal_dir):
    conf_change = Entry(1, 3, EntryType.CONF_CHANGE, b"\x00" * 9)
    written = [*entries(1, 2), conf_change, Entry(1, 4, EntryType.NORMAL, b"")]
    wal.append(HardState(term=1, vote=2, commit=3), written)
    wal.sync()
    wal.close()
    contents = reopen(wal_dir)
    assert contents.metadata == META
    assert contents.entries == tuple(written)
    assert contents.entries[2].type == EntryType.CONF_CHANGE
    assert contents.hard_state == HardState(term=1, vote=2, commit=3)
    assert contents.snapshots == () and contents.repair is None


def test_a_new_wal_reads_back_empty(wal, wal_dir):
    wal.close()
    contents = reopen(wal_dir)
    assert (contents.metadata, contents.hard_state, contents.entries) == (META, HardState(), ())
    assert wal_exists(wal_dir)


def test_reopen_and_continue_appending(wal, wal_dir):
    wal.append(HardState(1, 1, 5), entries(1, 5))
    wal.sync()
    wal.close()
    for first in (6, 11):
        wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
        assert contents.entries == tuple(entries(1, first - 1))
        wal.append(HardState(1, 1, first + 4), entries(first, first + 4))
        wal.sync()
        wal.close()
    contents = reopen(wal_dir)
    assert contents.entries == tuple(entries(1, 15))
    assert contents.hard_state.commit == 15


def test_hard_state_last_wins(wal, wal_dir):
    wal.append(HardState(1, 1, 0), entries(1, 3))
    wal.append(HardState(2, 0, 2), [])
    wal.append(HardState(3, 3, 3), [])
    wal.append(None, entries(4, 4))  # no hard state in this batch: the last one stands
    wal.sync()
    wal.close()
    assert reopen(wal_dir).hard_state == HardState(3, 3, 3)


def test_a_conflicting_tail_is_overwritten_by_appending(wal, wal_dir):
    wal.append(None, entries(1, 10, term=1))
    wal.append(None, entries(6, 8, term=2))
    wal.sync()
    wal.close()
    assert reopen(wal_dir).entries == tuple(entries(1, 5, term=1) + entries(6, 8, term=2))


def test_batches_roll_into_new_segments_and_a_batch_may_span_them(wal, wal_dir):
    # 1,000 entries of ~1 KiB do not fit in one 64 KiB segment: one append spans many.
    wal.append(HardState(4, 1, 1000), entries(1, 1000, term=4, size=1000))
    wal.sync()
    paths = wal.segment_paths
    assert len(paths) >= 15
    assert all(os.path.getsize(p) == SEGMENT_BYTES for p in paths)  # preallocated
    # Each segment is named after the first index it may hold: the next index when cut.
    first_indexes = [int(p.name[17:33], 16) for p in paths]
    assert [int(p.name[:16], 16) for p in paths] == list(range(len(paths)))
    assert first_indexes[0] == 1 and first_indexes == sorted(first_indexes)
    wal.close()
    contents = reopen(wal_dir)
    assert contents.entries == tuple(entries(1, 1000, term=4, size=1000))
    assert contents.hard_state == HardState(4, 1, 1000)


def test_overwrite_reaching_back_into_an_earlier_segment(wal, wal_dir):
    wal.append(None, entries(1, 200, term=1, size=1000))
    wal.append(HardState(2, 2, 0), entries(30, 40, term=2, size=1000))
    wal.sync()
    assert len(wal.segment_paths) > 2
    wal.close()
    wal, contents = Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)
    expected = entries(1, 29, term=1, size=1000) + entries(30, 40, term=2, size=1000)
    assert contents.entries == tuple(expected)
    wal.append(None, entries(41, 41, term=2))  # appending continues after the new tail
    wal.sync()
    wal.close()
    expected = entries(1, 29, term=1, size=1000) + entries(30, 40, term=2, size=1000)
    assert reopen(wal_dir).entries == tuple(expected + entries(41, 41, term=2))


def test_a_segment_header_repeats_the_current_hard_state(wal, wal_dir):
    wal.append(HardState(7, 3, 5), entries(1, 5))
    wal.append(None, entries(6, 300, term=7, size=1000))  # rolls, with no hard state
    wal.sync()
    newest = wal.segment_paths[-1]
    wal.close()
    # Even when only the newest segment is read, the hard state is there.
    marker = SnapshotMeta(index=299, term=7)
    with Wal.open(wal_dir, None, segment_size_bytes=SEGMENT_BYTES)[0] as wal:
        wal.append(None, [], marker)
        wal.sync()
        wal.release_to(299)
        assert wal.segment_paths == (newest,)
    assert reopen(wal_dir, marker).hard_state == HardState(7, 3, 5)


def test_the_rolling_crc_continues_across_segments(tmp_path):
    # Two WALs that differ in one entry of their first segment: the crc chain carried
    # into the second segment differs, so a second segment cannot be spliced across.
    dirs = [tmp_path / "a", tmp_path / "b"]
    for wal_dir, first_data in zip(dirs, (b"a", b"b"), strict=True):
        with Wal.create(wal_dir, META, segment_size_bytes=SEGMENT_BYTES) as wal:
            first = Entry(1, 1, EntryType.NORMAL, first_data)
            wal.append(None, [first, *entries(2, 200, size=1000)])
            wal.sync()
            paths = wal.segment_paths
    assert [p.name for p in paths] == sorted(os.listdir(dirs[0]))  # same names in both
    assert [len(reopen(d).entries) for d in dirs] == [200, 200]  # both read fine alone
    spliced = dirs[0] / paths[1].name
    spliced.write_bytes((dirs[1] / paths[1].name).read_bytes())
    with pytest.raises(WalCorruptError, match=f"crc chain broken between segments in {spliced} "
                                              "at offset 0"):
        reopen(dirs[0])


def test_open_at_a_snapshot_returns_only_the_entries_after_it(wal, wal_dir):
    conf = ConfState(voters=frozenset({1, 2, 3}), learners=frozenset({4}))
    wal.append(HardState(1, 1, 20), entries(1, 20))
    wal.append(None, [], SnapshotMeta(index=15, term=1, conf=conf))
    wal.append(HardState(1, 1, 25), entries(21, 25))
    wal.sync()
    wal.close()
    contents = reopen(wal_dir, SnapshotMeta(index=15, term=1, conf=conf))
    assert contents.entries == tuple(entries(16, 25))
    assert contents.snapshots == (SnapshotMeta(index=15, term=1, conf=conf),)
    assert read_valid_snapshots(wal_dir) == (SnapshotMeta(index=15, term=1, conf=conf),)


def test_a_follower_installing_a_snapshot_continues_after_it(wal, wal_dir):
    wal.append(HardState(1, 1, 5), entries(1, 8))
    leader_snapshot = SnapshotMeta(index=100, term=3)
    wal.append(HardState(3, 0, 100), entries(101, 102, term=3), leader_snapshot)
    wal.sync()
    wal.close()
    assert reopen(wal_dir, leader_snapshot).entries == tuple(entries(101, 102, term=3))
    with pytest.raises(WalError, match="entry 101 follows entry 8"):
        reopen(wal_dir)  # the log before the snapshot does not join up with it


def test_opening_at_a_snapshot_the_wal_does_not_hold_is_an_error(wal, wal_dir):
    wal.append(HardState(2, 1, 10), entries(1, 10, term=2))
    wal.append(None, [], SnapshotMeta(index=5, term=2))
    wal.sync()
    wal.close()
    with pytest.raises(WalError, match="no snapshot marker for index 6 term 2"):
        reopen(wal_dir, SnapshotMeta(index=6, term=2))
    with pytest.raises(WalError, match="has term 2, not 1"):
        reopen(wal_dir, SnapshotMeta(index=5, term=1))


def test_only_committed_snapshot_markers_are_valid_to_restart_from(wal, wal_dir):
    wal.append(HardState(1, 1, 10), entries(1, 10))
    wal.append(None, [], SnapshotMeta(index=5, term=1))
    wal.append(None, [], SnapshotMeta(index=12, term=1))  # its hard state never written
    wal.sync()
    wal.close()
    assert read_valid_snapshots(wal_dir) == (SnapshotMeta(index=5, term=1),)


def test_appending_a_gap_or_a_non_contiguous_batch_is_refused(wal, wal_dir):
    wal.append(None, entries(1, 3))
    with pytest.raises(ValueError, match="gap"):
        wal.append(None, entries(5, 6))
    with pytest.raises(ValueError, match="contiguous"):
        wal.append(None, entries(4, 4) + entries(6, 6))
    wal.append(None, entries(4, 4))  # a refused batch writes nothing: the log goes on
    wal.sync()
    wal.close()
    assert reopen(wal_dir).entries == tuple(entries(1, 4))


def test_one_writer_at_a_time(wal, wal_dir):
    with pytest.raises(WalError, match="locked"):
        Wal.open(wal_dir, None)
    wal.close()
    reopen(wal_dir)  # the lock goes with the writer


def test_create_refuses_a_directory_that_holds_a_wal(wal, wal_dir):
    wal.close()
    with pytest.raises(WalError, match="already holds a WAL"):
        Wal.create(wal_dir, META)
    assert reopen(wal_dir).metadata == META


def test_a_closed_wal_refuses_appends(wal):
    wal.close()
    with pytest.raises(WalError, match="closed"):
        wal.append(None, entries(1, 1))
