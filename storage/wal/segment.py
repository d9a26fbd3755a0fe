"""Segment files: names, listing, and atomic creation of a preallocated segment."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from petcd.storage.wal.errors import WalError

_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class SegmentName:
    seq: int  # >= 0; the segments of a WAL have consecutive seqs
    first_index: int  # >= 1; last entry index written before this segment, plus one

    def __post_init__(self) -> None:
        assert self.seq >= 0 and self.first_index >= 1, self

    @property
    def file_name(self) -> str:
        return f"{self.seq:016x}-{self.first_index:016x}.wal"

    @classmethod
    def parse(cls, file_name: str) -> SegmentName | None:
        match = _NAME.match(file_name)
        if match is None:
            return None
        return cls(int(match[1], 16), int(match[2], 16))


def list_segments(wal_dir: Path) -> list[SegmentName]:
    """The segments in `wal_dir` by seq; raises if their seqs are not consecutive."""
    names = sorted(
        (name for f in os.listdir(wal_dir) if (name := SegmentName.parse(f)) is not None),
        key=lambda name: name.seq,
    )
    for before, after in itertools.pairwise(names):
        if after.seq != before.seq + 1:
            raise WalError(f"wal: segments missing in {wal_dir}: {before.file_name} "
                           f"is followed by {after.file_name}")
    return names


def remove_temp_files(wal_dir: Path) -> None:
    """Drop segments whose creation was interrupted: they were never renamed in."""
    for file_name in os.listdir(wal_dir):
        if file_name.endswith(".wal" + TEMP_SUFFIX):
            os.unlink(wal_dir / file_name)


def fsync_dir(directory: Path) -> None:
    """Make renames, creations and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_segment(wal_dir: Path, name: SegmentName, header: bytes, size_bytes: int) -> int:
    """Create `name` preallocated to `size_bytes` and starting with `header`.

    Atomic: the segment appears under its name complete and durable, or not at all.
    Returns a write fd positioned nowhere in particular (callers use os.pwrite).
    """
    assert len(header) <= size_bytes, "the segment header must fit in a segment"
    final_path = wal_dir / name.file_name
    temp_path = final_path.with_name(name.file_name + TEMP_SUFFIX)
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        # Preallocate so that appends do not change the file size: fdatasync then
        # only flushes data, and the disk space is reserved up front.
        os.posix_fallocate(fd, 0, size_bytes)
        write_all(fd, header, 0)
        os.fsync(fd)
        os.rename(temp_path, final_path)
        fsync_dir(wal_dir)
    except BaseException:
        os.close(fd)
        temp_path.unlink(missing_ok=True)
        raise
    return fd


def write_all(fd: int, data: bytes | bytearray | memoryview, offset_bytes: int) -> None:
    """pwrite all of `data` at `offset_bytes` (a regular file may take it in parts)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset_bytes)
        view = view[written:]
        offset_bytes += written
