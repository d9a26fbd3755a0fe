"""A million keys: load time, open-to-first-read time, sizes before and after
compaction + defragment. Slow (about a minute): runs only with PETCD_SLOW=1;
`PETCD_SLOW=1 pytest tests/unit/test_mvcc_scale.py -s` prints the figures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import ApplyEntry, MvccStore

KEYS = 1_000_000
VALUE_BYTES = 256
BATCH_ENTRIES = 1_000  # committed Raft entries the apply actor drains per LMDB commit

pytestmark = pytest.mark.slow


def _key(i: int) -> bytes:
    return b"/registry/pods/default/pod-%07d" % i


def _load(store: MvccStore) -> float:
    value = b"v" * VALUE_BYTES
    t0 = time.perf_counter()
    for start in range(0, KEYS, BATCH_ENTRIES):
        stop = min(KEYS, start + BATCH_ENTRIES)
        store.apply_batch([ApplyEntry(i + 1, 1, pb.PutRequest(key=_key(i), value=value)) for i in range(start, stop)])
    return time.perf_counter() - t0


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def test_million_keys(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    figures: dict[str, str] = {}
    with MvccStore.open(path) as store:  # sync=True: one fdatasync per batch, as in production
        load_s = _load(store)
        figures["load 1M puts"] = f"{load_s:.1f} s ({load_s / KEYS * 1e6:.1f} us/put)"
        figures["db size after 1M puts"] = _mib(store.db_size_bytes())
        figures["in use after 1M puts"] = _mib(store.db_size_in_use_bytes())
        assert store.current_revision() == KEYS + 1

    t0 = time.perf_counter()
    with MvccStore.open(path) as store:
        resp = store.range(pb.RangeRequest(key=_key(777_777)))
        open_to_read_s = time.perf_counter() - t0
        assert resp.kvs[0].mod_revision == 777_779
        figures["open to first read"] = f"{open_to_read_s * 1e3:.1f} ms"
        t0 = time.perf_counter()
        count = store.range(pb.RangeRequest(key=b"/registry/", range_end=b"/registry0", count_only=True)).count
        figures["count all keys"] = f"{(time.perf_counter() - t0) * 1e3:.0f} ms"
        assert count == KEYS

        t0 = time.perf_counter()
        store.apply(KEYS + 1, 1, pb.CompactionRequest(revision=store.current_revision()))
        figures["compact after 1M puts (nothing to drop)"] = f"{time.perf_counter() - t0:.1f} s"
        t0 = time.perf_counter()
        store.apply(KEYS + 2, 1, pb.DeleteRangeRequest(key=_key(0), range_end=_key(KEYS // 2)))
        figures["delete 500k keys (one request)"] = f"{time.perf_counter() - t0:.1f} s"
        t0 = time.perf_counter()
        store.apply(KEYS + 3, 1, pb.CompactionRequest(revision=store.current_revision()))
        figures["compact 500k tombstones"] = f"{time.perf_counter() - t0:.1f} s"
        figures["db size after delete half + compaction"] = _mib(store.db_size_bytes())
        t0 = time.perf_counter()
        store.defragment()
        figures["defragment"] = f"{time.perf_counter() - t0:.1f} s"
        figures["db size after defragment"] = _mib(store.db_size_bytes())
        assert store.range(pb.RangeRequest(key=b"/", range_end=b"\x00", count_only=True)).count == KEYS // 2

    assert open_to_read_s < 1.0, figures
    for name, value in figures.items():
        print(f"mvcc scale: {name}: {value}")
