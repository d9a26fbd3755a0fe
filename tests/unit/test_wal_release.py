"""Releasing segments after a snapshot, and etcd's --max-wals retention."""

import pytest

from petcd.storage.raftstate import Entry, HardState, SnapshotMeta
from petcd.storage.wal import Wal, WalError

SEGMENT_BYTES = 64 * 1024


def entries(first, last):
    return [Entry(1, i, 0, b"%08d" % i * 125) for i in range(first, last + 1)]  # 1 KB each


def first_index(path):
    return int(path.name[17:33], 16)


@pytest.fixture
def wal_dir(tmp_path):
    return tmp_path / "wal"


@pytest.fixture
def wal(wal_dir):
    """A WAL holding entries 1..400 over about seven 64 KiB segments."""
    with Wal.create(wal_dir, b"m", segment_size_bytes=SEGMENT_BYTES) as wal:
        wal.append(HardState(1, 1, 400), entries(1, 400))
        wal.sync()
        assert len(wal.segment_paths) >= 6
        yield wal


def take_snapshot(wal, index):
    wal.append(None, [], SnapshotMeta(index=index, term=1))
    wal.sync()
    return SnapshotMeta(index=index, term=1)


def test_release_deletes_exactly_the_segments_a_restart_no_longer_needs(wal, wal_dir):
    before = wal.segment_paths
    snapshot = take_snapshot(wal, 250)
    deleted = wal.release_to(250)
    # Kept: the last segment named with first_index <= 250 (it may hold entry 251 and
    # the marker), and all after it.
    keep_from = max(i for i, p in enumerate(before) if first_index(p) <= 250)
    assert deleted == before[:keep_from] and keep_from >= 2
    assert wal.segment_paths == before[keep_from:]
    assert sorted(wal_dir.iterdir()) == list(before[keep_from:])
    wal.close()
    wal, contents = Wal.open(wal_dir, snapshot, segment_size_bytes=SEGMENT_BYTES)
    with wal:
        assert contents.entries == tuple(entries(251, 400))
    with pytest.raises(WalError, match="no longer holds the entries after index 0"):
        Wal.open(wal_dir, None)


def test_release_never_deletes_the_last_segment(wal, wal_dir):
    take_snapshot(wal, 400)
    wal.release_to(10_000)
    assert len(wal.segment_paths) == 1
    wal.append(HardState(1, 1, 401), entries(401, 401))
    wal.sync()
    wal.close()
    wal, contents = Wal.open(wal_dir, SnapshotMeta(index=400, term=1))
    with wal:
        assert contents.entries == tuple(entries(401, 401))


def test_release_below_the_second_segment_deletes_nothing(wal):
    before = wal.segment_paths
    assert wal.release_to(first_index(before[1]) - 1) == ()
    assert wal.segment_paths == before


def test_max_wals_keeps_up_to_that_many_files_deleting_only_unneeded_ones(wal, wal_dir):
    before = wal.segment_paths
    keep_from = max(i for i, p in enumerate(before) if first_index(p) <= 300)
    # Room for all: nothing goes although some segments are no longer needed.
    assert wal.release_to(300, max_wals=len(before)) == ()
    # One over the limit: the oldest goes.
    assert wal.release_to(300, max_wals=len(before) - 1) == before[:1]
    # A limit below what is needed: only unneeded segments go, the needed remain.
    assert wal.release_to(300, max_wals=1) == before[1:keep_from]
    assert sorted(wal_dir.iterdir()) == list(before[keep_from:])
    assert len(before[keep_from:]) > 1
