"""Members whose disk loses what was written but not fsynced when they die.

Every member's data dir (WAL and store) lives on a lazy filesystem (lazyfs.py): a
write reaches its backing file only when fsynced, and a "power loss" drops the rest.
Members are SIGKILLed and their disks lose their unsynced writes at once: one member,
another, the leader of the moment, then all three together. Each must start again (a
refusal fails the test showing the error lines that gave its reason) and catch up,
and no put the cluster acknowledged may be missing anywhere.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.members import Cluster, Member, b64, member_socket_dir, unb64, wait_until
from tests.faults.convergence import converged
from tests.faults import lazyfs
from tests.faults.test_crashes import Writer

READY = "ready to serve client requests"
RECOVERY_TIMEOUT_S = 30.0
# Small, so that snapshots and WAL compaction happen between the crashes.
FLAGS = ["--snapshot-count", "200", "--snapshot-catchup-entries", "50"]
PUTS_BETWEEN_CRASHES = 40


@pytest.fixture
def lazy(tmp_path: Path) -> Iterator[lazyfs.LazyFs]:
    reason = lazyfs.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with lazyfs.mounted(tmp_path) as fs:
        yield fs


# -- the lazy filesystem itself ------------------------------------------------------


def test_a_write_not_fsynced_is_lost_in_a_crash(lazy):
    path = lazy.mount / "f"
    path.write_bytes(b"never synced")
    assert path.read_bytes() == b"never synced"  # readers see it until the crash
    assert lazy.crash() == 1  # pages lost
    assert path.exists() and path.read_bytes() == b""  # the name is metadata: it stays


def test_a_fsynced_write_survives_a_crash_and_a_later_one_does_not(lazy):
    path = lazy.mount / "f"
    with open(path, "wb") as f:
        f.write(b"A" * 5000)
        f.flush()
        os.fdatasync(f.fileno())
        f.seek(4096)
        f.write(b"B" * 6000)  # over the second page and past the end, not synced
    assert os.stat(path).st_size == 10096
    assert lazy.crash() == 2
    assert path.read_bytes() == b"A" * 5000


def test_a_crash_of_one_directory_keeps_the_unsynced_writes_of_another(lazy):
    (lazy.mount / "one").mkdir()
    (lazy.mount / "two").mkdir()
    (lazy.mount / "one" / "f").write_bytes(b"lost")
    (lazy.mount / "two" / "f").write_bytes(b"still cached")
    assert lazy.crash(lazy.mount / "one") == 1
    assert (lazy.mount / "one" / "f").read_bytes() == b""
    assert (lazy.mount / "two" / "f").read_bytes() == b"still cached"


def test_a_page_cache_reads_its_writes_over_the_disk_and_flushes_them():
    cache, disk = lazyfs.PageCache(), bytearray(b"d" * 5000)

    def write_at(offset: int, data: bytes) -> None:
        disk[offset:offset + len(data)] = data

    cache.write(7, 4090, b"xyz" * 4, lambda n: bytes(disk[n * 4096:(n + 1) * 4096]))
    assert cache.read(7, 4088, 20, bytes(disk[4088:4108]), len(disk)) == \
        b"dd" + b"xyz" * 4 + b"d" * 6
    cache.write(7, 6000, b"end", lambda n: bytes(disk[n * 4096:(n + 1) * 4096]))
    assert cache.size(7, len(disk)) == 6003
    cache.truncate(7, 5500)
    cache.flush(7, len(disk), write_at)
    assert bytes(disk) == b"d" * 4090 + b"xyz" * 4 + b"d" * 898 + b"\0" * 500
    assert cache.size(7, len(disk)) == len(disk) == 5500  # nothing left unsynced


# -- members on it ---------------------------------------------------------------------


def test_members_whose_disk_drops_unsynced_writes_lose_no_acknowledged_write(tmp_path, lazy):
    cluster = Cluster(tmp_path, 3, FLAGS)
    for m in cluster.members:
        m.data_dir = lazy.mount / m.data_dir.name
    starts = {m.name: 1 for m in cluster.members}
    cluster.start()
    try:
        cluster.wait_leader(RECOVERY_TIMEOUT_S)
        writer = Writer(cluster, reads=True)
        writer.start()
        rng = random.Random(3)
        for who in ["m1", "m2", "leader", "all"]:
            assert_writes_go_on(cluster, writer)
            time.sleep(rng.uniform(0, 0.5))  # a different point of the write path each time
            victims = pick(cluster, who)
            lost_pages = power_loss(lazy, victims)
            assert lost_pages > 0  # the store's last commit, at least (MDB_NOMETASYNC)
            print(f"power loss of {[m.name for m in victims]}: {lost_pages} pages lost")
            for m in victims:
                cluster.start(m)
                starts[m.name] += 1
            for m in victims:
                assert_restarted(m, starts[m.name])
        assert_writes_go_on(cluster, writer)
        keys = writer.finish()
        revision = converged(cluster)
        for m in cluster.members:
            missing = set(keys) - set(keys_at(m, "w", revision))
            assert not missing, (m.name, sorted(missing)[:10], len(missing))
        writer.assert_linearizable()  # no read saw a lost write, or one undone
    finally:
        cluster.stop()
        for m in cluster.members:
            shutil.rmtree(member_socket_dir(m), ignore_errors=True)


def pick(cluster: Cluster, who: str) -> list[Member]:
    if who == "all":
        return cluster.members
    if who == "leader":
        return [cluster.wait_leader(RECOVERY_TIMEOUT_S)]
    return [m for m in cluster.members if m.name == who]


def power_loss(fs: lazyfs.LazyFs, victims: list[Member]) -> int:
    """SIGKILL every process of the victims, then drop their disks' unsynced writes:
    nothing they did after the kill reaches the disk, as if the power went. Returns
    how many pages were lost."""
    for m in victims:
        m.kill()
    lost_pages = 0
    for m in victims:
        assert m.proc is not None
        assert wait_until(lambda pgid=m.proc.pid: not _group_alive(pgid), 10), m.name
        lost_pages += fs.crash(m.data_dir)
    return lost_pages


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of process group `pgid` remains: one
    blocked in a filesystem call finishes it before dying."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def assert_writes_go_on(cluster: Cluster, writer: Writer) -> None:
    acked = len(writer.acked)
    assert wait_until(lambda: len(writer.acked) >= acked + PUTS_BETWEEN_CRASHES,
                      RECOVERY_TIMEOUT_S), \
        f"writes stopped: {[(m.name, m.alive, _errors(m)) for m in cluster.members]}"


def assert_restarted(m: Member, starts: int) -> None:
    """Up and serving after its `starts`-th start; if it exits, the failure shows the
    error lines it gave as its reason."""
    def ready() -> bool:
        assert m.alive, f"{m.name} refused to start: {_errors(m)}"
        return len(m.log_events(READY)) >= starts and bool(m.status())

    assert wait_until(ready, RECOVERY_TIMEOUT_S), f"{m.name} is not serving: {_errors(m)}"


def _errors(m: Member) -> list[dict]:
    return [e for e in m.log_events() if e.get("level") in ("error", "fatal", "panic")][-5:]


def keys_at(m: Member, prefix: str, revision: int) -> list[str]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    resp = m.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end), "keys_only": True,
                                   "revision": str(revision), "serializable": True})
    return [unb64(kv["key"]) for kv in resp.get("kvs", [])]
