"""A damaged store refuses to open with StoreCorruptError naming the file and the
damage, and opening it changes no file: never a crash (SIGBUS), never a fresh empty
store in place of the data, never a generation dropped."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import MvccStore, StoreCorruptError
from petcd.storage.mvcc.env import CURRENT, data_file


def _filled(root: Path, defragment: bool = False) -> None:
    with MvccStore.open(str(root), sync=False) as store:
        for n in range(300):
            store.apply(n + 1, 1, pb.PutRequest(key=b"k%03d" % n, value=b"v" * 500))
        if defragment:
            store.defragment()  # CURRENT names generation 2 from now on


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock.mdb"}


def _truncate_to(size_bytes: int) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        os.truncate(data_file(str(root), 1), size_bytes)
    return damage


def _overwrite_meta_pages(root: Path) -> None:
    with open(data_file(str(root), 1), "r+b") as f:
        f.write(os.urandom(8192))


def _current_says(text: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / CURRENT).write_bytes(text)
    return damage


@pytest.mark.parametrize("damage, file, reason", [
    (_truncate_to(100_000), "gen-000001/data.mdb", "truncated: 100000 bytes, but its pages reach"),
    (_truncate_to(5_000), "gen-000001/data.mdb", "truncated: 5000 bytes"),
    (_overwrite_meta_pages, "gen-000001/data.mdb", "not an LMDB file"),
    (_current_says(b"garbage\n"), CURRENT, "unexpected content b'garbage\\n'"),
    (_current_says(b"gen-000002\n"), "gen-000002/data.mdb", "missing, though CURRENT names it"),
], ids=["truncated", "truncated-into-meta", "meta-overwritten", "current-garbled", "current-ahead"])
def test_damaged_store_is_refused_and_left_as_it_was(tmp_path: Path, damage, file, reason) -> None:
    root = tmp_path / "db"
    _filled(root)
    damage(root)
    before = _files(root)
    for readonly in (False, True):  # the apply actor's writer, the network actor's reader
        with pytest.raises(StoreCorruptError) as info:
            MvccStore.open(str(root), readonly=readonly, sync=False)
        assert info.value.path == str(root / file)
        assert reason in info.value.reason
    assert _files(root) == before


def test_missing_defragmented_generation_keeps_the_older_one(tmp_path: Path) -> None:
    root = tmp_path / "db"
    _filled(root, defragment=True)
    os.rename(root / "gen-000002", tmp_path / "moved-away")
    (root / "gen-000001").mkdir()  # what an older copy of the dir might still hold
    (root / "gen-000001" / "keep").write_bytes(b"x")
    with pytest.raises(StoreCorruptError, match="gen-000002/data.mdb: missing"):
        MvccStore.open(str(root), sync=False)
    assert (root / "gen-000001" / "keep").exists()  # start-up dropped nothing


def test_a_sound_store_still_opens_after_defragment_and_restart(tmp_path: Path) -> None:
    root = tmp_path / "db"
    _filled(root, defragment=True)
    with MvccStore.open(str(root), sync=False) as store:
        assert store.range(pb.RangeRequest(key=b"k", range_end=b"l", count_only=True)).count == 300
    with MvccStore.open(str(root), readonly=True, sync=False) as reader:
        assert reader.range(pb.RangeRequest(key=b"k299")).kvs[0].value == b"v" * 500
