"""Snapshot markers in member/snap/: save, load the newest good one, purge."""

import os

import pytest

from petcd.storage.raftstate import ConfState, SnapshotMeta
from petcd.storage.snap import SnapStore


def meta(index, term=1):
    conf = ConfState(voters=frozenset({1, 2, 3}), learners=frozenset({9}))
    return SnapshotMeta(index, term, conf)


@pytest.fixture
def snap_dir(tmp_path):
    return tmp_path / "member" / "snap"


def test_save_then_load_the_newest(snap_dir):
    store = SnapStore(snap_dir)
    assert store.load_latest() is None  # nothing saved yet, directory missing
    for index, term in ((100, 1), (300, 2), (200, 2)):
        path = store.save(meta(index, term))
        assert path.name == f"{term:016x}-{index:016x}.snap"
    assert SnapStore(snap_dir).load_latest() == meta(300, 2)
    assert sorted(os.listdir(snap_dir)) == sorted(p.name for p in store.paths())  # no temp files


def test_a_corrupt_marker_is_set_aside_and_the_previous_one_used(snap_dir):
    store = SnapStore(snap_dir)
    store.save(meta(100))
    newest = store.save(meta(200))
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0x01
    newest.write_bytes(bytes(data))
    assert store.load_latest() == meta(100)
    assert not newest.exists()
    assert newest.with_name(newest.name + ".broken").read_bytes() == bytes(data)
    assert store.load_latest() == meta(100)  # and from then on


def test_a_truncated_or_misnamed_marker_is_not_loaded(snap_dir):
    store = SnapStore(snap_dir)
    store.save(meta(100))
    store.save(meta(300)).write_bytes(b"")  # crash artefact: an empty file
    misnamed = snap_dir / f"{1:016x}-{400:016x}.snap"
    misnamed.write_bytes(store.save(meta(50)).read_bytes())  # a copy under the wrong name
    assert store.load_latest() == meta(100)
    assert sorted(p.name for p in snap_dir.glob("*.broken")) == [
        f"{1:016x}-{300:016x}.snap.broken", f"{1:016x}-{400:016x}.snap.broken"]


def test_load_latest_among_the_markers_the_wal_holds(snap_dir):
    # A marker is saved here before it is appended to the WAL: after a crash in
    # between, the newest file is one the WAL cannot be opened at.
    store = SnapStore(snap_dir)
    store.save(meta(100))
    store.save(meta(200))
    assert store.load_latest(among=[meta(100)]) == meta(100)
    assert store.load_latest(among=[]) is None
    assert (snap_dir / f"{1:016x}-{200:016x}.snap").exists()  # skipped, not broken


def test_purge_keeps_the_newest(snap_dir):
    store = SnapStore(snap_dir)
    for index in (10, 20, 30, 40, 50):
        store.save(meta(index))
    deleted = store.purge(max_snapshots=2)
    assert [p.name for p in deleted] == [f"{1:016x}-{i:016x}.snap" for i in (30, 20, 10)]
    assert [p.name for p in store.paths()] == [f"{1:016x}-{i:016x}.snap" for i in (50, 40)]
    assert store.purge(max_snapshots=2) == ()
    assert store.load_latest() == meta(50)
