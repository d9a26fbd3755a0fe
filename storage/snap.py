"""Snapshot markers in member/snap/: the (index, term, conf state) of each snapshot.

One file per snapshot, named f"{term:016x}-{index:016x}.snap" (as etcd names its
snapshot files), holding:

    offset  size  field
    0       4     crc32 of the body, little-endian u32
    4       n     body: msgpack [index, term, [voter ids...], [learner ids...]]
                  (the WAL's SNAPSHOT record payload, see storage/wal/format.py)

The state machine itself lives in the LMDB file beside it; a marker says which
applied index that data stands for. Files are written atomically (temp file, fsync,
rename, fsync directory). A marker that does not read back is renamed to
"<name>.broken" so that it is skipped from then on but kept for inspection, as etcd
does.

Start-up order, because a marker is saved here before it is appended to the WAL (a
crash in between leaves a marker the WAL does not know):

    meta = SnapStore(snap_dir).load_latest(among=read_valid_snapshots(wal_dir))
    wal, contents = Wal.open(wal_dir, meta)
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Final

from petcd.storage.raftstate import SnapshotMeta
from petcd.storage.wal.format import decode_snapshot, encode_snapshot
from petcd.storage.wal.segment import fsync_dir, write_all

_NAME: Final = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
_CRC: Final = struct.Struct("<I")
BROKEN_SUFFIX: Final = ".broken"
TEMP_SUFFIX: Final = ".tmp"


class SnapError(Exception):
    """A marker file that does not read back (crc mismatch, truncated, misnamed)."""


def snap_file_name(meta: SnapshotMeta) -> str:
    return f"{meta.term:016x}-{meta.index:016x}.snap"


def encode_marker(meta: SnapshotMeta) -> bytes:
    body: bytes = encode_snapshot(meta)
    return _CRC.pack(zlib.crc32(body)) + body


def decode_marker(data: bytes, file_name: str) -> SnapshotMeta:
    if len(data) <= _CRC.size:
        raise SnapError(f"snap: {file_name} is empty or truncated")
    (crc,) = _CRC.unpack_from(data)
    body = data[_CRC.size:]
    if zlib.crc32(body) != crc:
        raise SnapError(f"snap: crc mismatch in {file_name}")
    try:
        meta = decode_snapshot(body)
    except (ValueError, TypeError) as err:  # msgpack's errors derive from ValueError
        raise SnapError(f"snap: cannot decode {file_name}: {err}") from err
    if snap_file_name(meta) != file_name:
        raise SnapError(f"snap: {file_name} holds the marker of index {meta.index} "
                        f"term {meta.term}")
    return meta


class SnapStore:
    """The snapshot markers of one member, in `snap_dir` (created on first save)."""

    __slots__ = ("_dir",)

    def __init__(self, snap_dir: Path | str) -> None:
        self._dir = Path(snap_dir)

    def save(self, meta: SnapshotMeta) -> Path:
        """Write the marker durably and atomically; returns its path."""
        assert meta.index >= 1, "a snapshot covers at least one entry"
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / snap_file_name(meta)
        temp_path = path.with_name(path.name + TEMP_SUFFIX)
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, encode_marker(meta), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp_path, path)
        fsync_dir(self._dir)
        return path

    def load_latest(self, among: Collection[SnapshotMeta] | None = None) -> SnapshotMeta | None:
        """The newest marker that reads back, or None.

        `among`: only consider markers with the same index and term as one of these
        (the WAL's valid snapshot markers). A marker that does not read back is
        renamed to .broken and the next older one is tried.
        """
        wanted = None if among is None else {(m.index, m.term) for m in among}
        for index, term, file_name in self._markers_newest_first():
            if wanted is not None and (index, term) not in wanted:
                continue
            path = self._dir / file_name
            try:
                return decode_marker(path.read_bytes(), file_name)
            except SnapError:
                os.rename(path, path.with_name(file_name + BROKEN_SUFFIX))
                fsync_dir(self._dir)
        return None

    def purge(self, max_snapshots: int) -> tuple[Path, ...]:
        """Delete all but the newest `max_snapshots` markers; returns the deleted."""
        assert max_snapshots >= 1, "keep at least the newest snapshot"
        doomed = tuple(self._dir / file_name
                       for _, _, file_name in self._markers_newest_first()[max_snapshots:])
        for path in doomed:
            path.unlink()
        if doomed:
            fsync_dir(self._dir)
        return doomed

    def paths(self) -> tuple[Path, ...]:
        """Marker files, newest first."""
        return tuple(self._dir / file_name for _, _, file_name in self._markers_newest_first())

    def _markers_newest_first(self) -> list[tuple[int, int, str]]:
        if not self._dir.is_dir():
            return []
        markers = []
        for file_name in os.listdir(self._dir):
            match = _NAME.match(file_name)
            if match:
                markers.append((int(match[2], 16), int(match[1], 16), file_name))
        return sorted(markers, reverse=True)
