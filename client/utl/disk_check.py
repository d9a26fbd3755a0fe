"""`petcdutl check disk [--data-dir D | --wal-dir W]`: is the disk under the WAL fast
enough for a member? etcd's deployment guides answer with fio:

    fio --rw=write --ioengine=sync --fdatasync=1 --bs=2300 --size=22m --directory=D

(2300 bytes is a typical WAL write) and ask for a 99th percentile fdatasync under
10 ms: every write a member acknowledges waits for one, and a leader that waits longer
than its heartbeat interval starts losing its followers. This does what that fio job
does, in the directory the WAL will use: write 2300-byte records one after another
into a new file, os.fdatasync after each, and time each fdatasync. The file is
preallocated first, as fio does by default and as the WAL does its segments
(storage/wal/segment.py): without it every fdatasync would also commit the file's new
size, a cost neither pays. Then it writes --size-bytes in 1 MiB
blocks with one fsync at the end, for the sequential throughput a snapshot or a
catching-up member needs. It prints the figures and a verdict as `etcdctl check perf`
does (PASS/FAIL line; exit 1 on FAIL).

The files it writes are its own (created with O_EXCL under a `.petcdutl-check-disk-`
prefix, which the WAL's segment listing ignores) and removed before it returns, also
on an error or Ctrl-C; existing files are never opened. A SIGKILL leaves the file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.client.utl import status_output
from petcd.storage.wal import DEFAULT_SEGMENT_SIZE_BYTES

RECORD_BYTES = 2300  # fio --bs=2300 in etcd's guidance: a typical WAL write
GUIDANCE_P99_MS = 10.0  # etcd's hardware guide: 99th percentile fdatasync under 10 ms
BLOCK_BYTES = 1 << 20
DEFAULT_COUNT = (22 << 20) // RECORD_BYTES  # fio --size=22m: 10029 writes
DEFAULT_DURATION_S = 60.0  # as long as `etcdctl check perf` runs, at most
DEFAULT_SIZE_BYTES = 64 << 20
SCRATCH_PREFIX = ".petcdutl-check-disk-"

FLAGS = [Flag("data-dir", "string", "default.petcd"), Flag("wal-dir", "string", ""),
         Flag("count", "int", DEFAULT_COUNT),
         Flag("duration", "duration", DEFAULT_DURATION_S),
         Flag("size-bytes", "int", DEFAULT_SIZE_BYTES)]

HELP = f"""Measures fdatasync latency and sequential write throughput of the WAL's disk

Usage:
  petcdutl check disk [flags]

Flags:
      --count int          fdatasyncs to time, each after a {RECORD_BYTES}-byte write \
(default {DEFAULT_COUNT})
      --data-dir string    measures <data-dir>/member/wal if it exists, else the data \
dir (default "default.petcd")
      --duration duration  stops the fdatasyncs earlier once this long (default 1m0s)
  -h, --help               help for disk
      --size-bytes int     bytes written in 1 MiB blocks for the throughput \
(default {DEFAULT_SIZE_BYTES})
      --wal-dir string     measures this directory instead (the WAL's own disk)
"""


@dataclass(frozen=True, slots=True)
class SyncLatencies:
    """fdatasync times of `count` writes of RECORD_BYTES each; p50 <= p99 <= max."""

    count: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    def __post_init__(self) -> None:
        assert self.count >= 1, self
        assert 0 <= self.p50_ms <= self.p99_ms <= self.max_ms, self


@dataclass(frozen=True, slots=True)
class Throughput:
    size_bytes: int
    elapsed_s: float  # from the first write to the end of the fsync

    @property
    def mib_per_s(self) -> float:
        return self.size_bytes / (1 << 20) / max(self.elapsed_s, 1e-9)


@dataclass(frozen=True, slots=True)
class DiskCheck:
    directory: Path
    syncs: SyncLatencies
    throughput: Throughput

    @property
    def passed(self) -> bool:
        return self.syncs.p99_ms < GUIDANCE_P99_MS


def percentile_ms(sorted_s: list[float], fraction: float) -> float:
    """Nearest rank, as fio reports them: the smallest time at or above `fraction`
    of the samples."""
    assert sorted_s and 0 < fraction <= 1, (len(sorted_s), fraction)
    return sorted_s[math.ceil(fraction * len(sorted_s)) - 1] * 1000


def latencies(times_s: list[float], elapsed_s: float) -> SyncLatencies:
    ordered = sorted(times_s)
    return SyncLatencies(len(ordered), elapsed_s, percentile_ms(ordered, 0.5),
                         percentile_ms(ordered, 0.99), ordered[-1] * 1000)


def verdict(check: DiskCheck) -> str:
    word = "PASS" if check.passed else "FAIL"
    return (f"{word}: 99th percentile fdatasync {check.syncs.p99_ms:.2f} ms "
            f"(etcd's guidance: under {GUIDANCE_P99_MS:g} ms)\n")


def _simple(check: DiskCheck) -> str:
    syncs, written = check.syncs, check.throughput
    return (f"directory: {check.directory}\n"
            f"fdatasync after {RECORD_BYTES}-byte writes: {syncs.count} in "
            f"{syncs.elapsed_s:.1f}s, p50 {syncs.p50_ms:.2f} ms, p99 {syncs.p99_ms:.2f} ms, "
            f"max {syncs.max_ms:.2f} ms\n"
            f"sequential write: {written.size_bytes} bytes in 1 MiB blocks and one fsync "
            f"in {written.elapsed_s:.2f}s, {written.mib_per_s:.1f} MiB/s\n"
            + verdict(check))


def _json(check: DiskCheck) -> str:
    syncs, written = check.syncs, check.throughput
    return json.dumps({
        "directory": str(check.directory),
        "fdatasync": {"count": syncs.count, "recordBytes": RECORD_BYTES,
                      "elapsedS": syncs.elapsed_s, "p50Ms": syncs.p50_ms,
                      "p99Ms": syncs.p99_ms, "maxMs": syncs.max_ms},
        "sequentialWrite": {"sizeBytes": written.size_bytes, "blockBytes": BLOCK_BYTES,
                            "elapsedS": written.elapsed_s, "mibPerS": written.mib_per_s},
        "guidanceP99Ms": GUIDANCE_P99_MS, "pass": check.passed}) + "\n"


_FORMATS: dict[str, Callable[[DiskCheck], str]] = {"simple": _simple, "json": _json}


def check_disk(parsed: flags.Parsed) -> int:
    if parsed.args:
        raise CtlError(EXIT_BAD_ARGS, "check disk takes no arguments")
    render = status_output.choose(str(parsed.values["write-out"]), _FORMATS)
    count, size_bytes = parsed.values["count"], parsed.values["size-bytes"]
    duration_s = parsed.values["duration"]
    assert isinstance(count, int) and isinstance(size_bytes, int), parsed.values
    assert isinstance(duration_s, float), duration_s
    if count < 1 or size_bytes < 1 or duration_s <= 0:
        raise CtlError(EXIT_BAD_ARGS, "--count, --size-bytes and --duration must be positive")
    directory = measured_dir(Path(str(parsed.values["data-dir"])),
                             str(parsed.values["wal-dir"]))
    try:
        check = DiskCheck(directory, time_fdatasyncs(directory, count, duration_s),
                          time_sequential_write(directory, size_bytes))
    except OSError as exc:
        raise CtlError(EXIT_ERROR, f"cannot measure {directory}: {_reason(exc)}") from None
    sys.stdout.write(render(check))
    return 0 if check.passed else EXIT_ERROR  # etcdctl check perf's exit on FAIL


def measured_dir(data_dir: Path, wal_dir: str) -> Path:
    """The directory a member with these flags writes its WAL in, where it exists:
    --wal-dir, else <data-dir>/member/wal, else (a member not started yet) the data
    dir, which is on the same disk."""
    chosen = Path(wal_dir) if wal_dir else data_dir
    if not wal_dir and (data_dir / "member" / "wal").is_dir():
        chosen = data_dir / "member" / "wal"
    if not chosen.exists():
        raise CtlError(EXIT_ERROR, f"stat {chosen}: no such file or directory")
    if not chosen.is_dir():
        raise CtlError(EXIT_ERROR, f"{chosen} is not a directory")
    return chosen


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


@contextmanager
def _scratch_file(directory: Path) -> Iterator[int]:
    """A new file of ours in `directory`, open for writing; gone afterwards."""
    fd, path = tempfile.mkstemp(prefix=SCRATCH_PREFIX, suffix=".tmp", dir=directory)
    try:
        yield fd
    finally:
        os.close(fd)
        os.unlink(path)


def time_fdatasyncs(directory: Path, count: int, duration_s: float) -> SyncLatencies:
    """fio --rw=write --ioengine=sync --fdatasync=1 --bs=2300: `count` writes, each
    followed by a timed fdatasync, stopping early once `duration_s` has passed. The
    file is preallocated as a WAL segment is, up to a segment's size."""
    record = os.urandom(RECORD_BYTES)
    times_s: list[float] = []
    with _scratch_file(directory) as fd:
        os.posix_fallocate(fd, 0, min(count * RECORD_BYTES, DEFAULT_SEGMENT_SIZE_BYTES))
        started_s = time.perf_counter()
        while len(times_s) < count and time.perf_counter() - started_s < duration_s:
            written = os.write(fd, record)
            assert written == RECORD_BYTES, written  # regular files take whole writes
            before_s = time.perf_counter()
            os.fdatasync(fd)
            times_s.append(time.perf_counter() - before_s)
        return latencies(times_s, time.perf_counter() - started_s)


def time_sequential_write(directory: Path, size_bytes: int) -> Throughput:
    """`size_bytes` in 1 MiB blocks (random, so that no compressing file system
    flatters the figure) and one fsync, timed together."""
    block = os.urandom(BLOCK_BYTES)
    with _scratch_file(directory) as fd:
        started_s = time.perf_counter()
        for offset in range(0, size_bytes, BLOCK_BYTES):
            part = block[:min(BLOCK_BYTES, size_bytes - offset)]
            written = os.write(fd, part)
            assert written == len(part), (written, len(part))
        os.fsync(fd)
        return Throughput(size_bytes, time.perf_counter() - started_s)
