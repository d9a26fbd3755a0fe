"""The write-ahead log: create, open (with torn-tail repair), append, sync, release.

Single writer: the directory is flock'ed while a Wal is open. Appends are buffered
into one pwrite per segment touched and are not durable until `sync()`, which is one
fdatasync for everything appended since the last one (group commit).
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from petcd.storage.raftstate import Entry, HardState, SnapshotMeta
from petcd.storage.wal import format as fmt
from petcd.storage.wal.errors import WalCorruptError, WalError
from petcd.storage.wal.format import RecordType
from petcd.storage.wal.reader import (
    ReadResult,
    WalContents,
    read_wal,
    segments_to_read,
    valid_snapshots,
)
from petcd.storage.wal.scan import HEADER_TYPES, parse_frame
from petcd.storage.wal.segment import (
    SegmentName,
    create_segment,
    fsync_dir,
    list_segments,
    remove_temp_files,
    write_all,
)

DEFAULT_SEGMENT_SIZE_BYTES = 64 * 1024 * 1024  # etcd's SegmentSizeBytes
MIN_SEGMENT_SIZE_BYTES = 4096
HEADER_READ_BYTES = 4096  # a segment header (crc, metadata, hard state) fits in it


def wal_exists(wal_dir: Path | str) -> bool:
    """Whether `wal_dir` holds a WAL (at least one complete segment)."""
    wal_dir = Path(wal_dir)
    return wal_dir.is_dir() and bool(list_segments(wal_dir))


def read_valid_snapshots(wal_dir: Path | str) -> tuple[SnapshotMeta, ...]:
    """The snapshot markers a member may restart from (see reader.valid_snapshots)."""
    wal_dir = Path(wal_dir)
    return valid_snapshots(wal_dir, list_segments(wal_dir))


def read_metadata(wal_dir: Path | str) -> bytes:
    """The metadata in the header of the WAL's newest segment (what the member and
    cluster are), without reading the log. WalCorruptError if the header is damaged."""
    wal_dir = Path(wal_dir)
    path = wal_dir / list_segments(wal_dir)[-1].file_name
    with open(path, "rb") as f:
        buf = f.read(HEADER_READ_BYTES)
    offset, payload = 0, memoryview(b"")
    for expected in (RecordType.CRC, RecordType.METADATA):
        frame = parse_frame(buf, offset)
        if isinstance(frame, str) or frame.record_type != expected:
            raise WalCorruptError(path, offset, f"segment header has no {expected.name} record")
        offset, payload = frame.next_offset_bytes, frame.payload
    return fmt.decode_metadata(payload)


def encode_header(crc: int, metadata: bytes, hard_state: HardState) -> tuple[bytes, int]:
    """The header records of a segment, and the rolling crc after them."""
    frames = [fmt.encode_frame(RecordType.CRC, crc, b"")]
    for record_type, payload in ((RecordType.METADATA, fmt.encode_metadata(metadata)),
                                 (RecordType.HARD_STATE, fmt.encode_hard_state(hard_state))):
        crc = zlib.crc32(payload, crc)
        frames.append(fmt.encode_frame(record_type, crc, payload))
    return b"".join(frames), crc


class Wal:
    """An open WAL, positioned after its last valid record. Use create() or open()."""

    def __init__(self, wal_dir: Path, dir_fd: int, segments: list[SegmentName], fd: int,
                 metadata: bytes, segment_size_bytes: int) -> None:
        self._dir = wal_dir
        self._dir_fd = dir_fd  # holds the writer's flock; fsynced after renames/unlinks
        self._segments = segments  # every segment file, by seq; the last is written
        self._fd = fd  # of the last segment
        self._metadata = metadata
        self._segment_size_bytes = segment_size_bytes
        self._capacity_bytes = segment_size_bytes  # of the last segment
        self._offset_bytes = 0  # where the next frame goes; invariant: 8-byte aligned
        self._crc = 0  # rolling crc after the last record written
        self._hard_state = HardState()  # the last one written: copied into new headers
        self._last_index = 0  # of the last entry record written (or a higher marker)
        self._segment_has_records = False  # beyond the header
        self._unsynced = False
        self._failed = False  # after a failed write or fsync the state on disk is unknown
        self._closed = False

    # -- create / open -----------------------------------------------------------

    @classmethod
    def create(cls, wal_dir: Path | str, metadata: bytes,
               segment_size_bytes: int = DEFAULT_SEGMENT_SIZE_BYTES) -> Wal:
        """Start a new WAL in `wal_dir` (created if missing; must hold no WAL)."""
        wal_dir = Path(wal_dir)
        _check_segment_size(segment_size_bytes)
        wal_dir.mkdir(parents=True, exist_ok=True)
        fsync_dir(wal_dir.parent)
        dir_fd = _lock_dir(wal_dir)
        try:
            if list_segments(wal_dir):
                raise WalError(f"wal: {wal_dir} already holds a WAL")
            remove_temp_files(wal_dir)
            name = SegmentName(seq=0, first_index=1)
            header, crc = encode_header(0, metadata, HardState())
            fd = create_segment(wal_dir, name, header, segment_size_bytes)
        except BaseException:
            os.close(dir_fd)
            raise
        wal = cls(wal_dir, dir_fd, [name], fd, metadata, segment_size_bytes)
        wal._offset_bytes, wal._crc = len(header), crc
        return wal

    @classmethod
    def open(cls, wal_dir: Path | str, snapshot: SnapshotMeta | None,
             segment_size_bytes: int = DEFAULT_SEGMENT_SIZE_BYTES) -> tuple[Wal, WalContents]:
        """Read the WAL after `snapshot` (None: from the start) and open it for appending.

        A torn tail in the last segment is dropped (zeroed, and reported in
        `contents.repair`); corruption raises WalCorruptError with nothing changed.
        """
        wal_dir = Path(wal_dir)
        _check_segment_size(segment_size_bytes)
        if not wal_dir.is_dir():
            raise WalError(f"wal: no WAL directory {wal_dir}")
        dir_fd = _lock_dir(wal_dir)
        try:
            all_segments = list_segments(wal_dir)
            snap_index = snapshot.index if snapshot else 0
            to_read = segments_to_read(wal_dir, all_segments, snap_index)
            result = read_wal(wal_dir, to_read, snapshot)
            remove_temp_files(wal_dir)  # only now: corruption must leave the disk as found
            fd = _open_tail(wal_dir / result.tail.file_name, result, segment_size_bytes)
        except BaseException:
            os.close(dir_fd)
            raise
        wal = cls(wal_dir, dir_fd, all_segments, fd, result.contents.metadata, segment_size_bytes)
        wal._resume(result, os.fstat(fd).st_size)
        return wal, result.contents

    def _resume(self, result: ReadResult, capacity_bytes: int) -> None:
        self._capacity_bytes = capacity_bytes
        self._offset_bytes = result.tail_scan.end_offset_bytes
        self._crc = result.tail_scan.crc
        self._hard_state = result.contents.hard_state
        self._last_index = result.last_written_index
        self._segment_has_records = result.tail_scan.records > len(HEADER_TYPES)

    # -- writing -----------------------------------------------------------------

    def append(self, hard_state: HardState | None, entries: Sequence[Entry],
               snapshot: SnapshotMeta | None = None) -> None:
        """Write a snapshot marker, entries and a hard state, in that order; no fsync.

        Entries must be contiguous and may start at or below the last index written
        (overwriting a conflicting tail). The hard state goes last so that any hard
        state that survives a crash has its entries before it. Encoded into one
        buffer and written with one pwrite, or one per segment when the batch
        fills the current segment and continues in a new one.
        """
        self._check_usable()
        records = self._records(hard_state, entries, snapshot)
        try:
            self._write(records)
        except BaseException:
            self._failed = True
            raise
        if hard_state is not None:
            self._hard_state = hard_state

    def sync(self) -> None:
        """Make everything appended so far durable: one fdatasync."""
        self._check_usable()
        if not self._unsynced:
            return
        try:
            os.fdatasync(self._fd)
        except BaseException:
            # After a failed fsync the kernel may have dropped the dirty pages: a
            # retry could "succeed" without the data (the 2018 fsyncgate lesson).
            self._failed = True
            raise
        self._unsynced = False

    def _records(self, hard_state: HardState | None, entries: Sequence[Entry],
                 snapshot: SnapshotMeta | None) -> Iterator[tuple[RecordType, bytes, int]]:
        """(type, payload, last index after it) for each record, validated up front."""
        next_index = self._last_index + 1
        if snapshot is not None:
            next_index = max(next_index, snapshot.index + 1)
        if entries:
            first = entries[0].index
            if not 1 <= first <= next_index:
                raise ValueError(f"wal: entry {first} would leave a gap after {next_index - 1}")
            if any(entry.index != first + offset for offset, entry in enumerate(entries)):
                raise ValueError("wal: entries in a batch must be contiguous")
        return self._encode(hard_state, entries, snapshot)

    def _encode(self, hard_state: HardState | None, entries: Sequence[Entry],
                snapshot: SnapshotMeta | None) -> Iterator[tuple[RecordType, bytes, int]]:
        last_index = self._last_index
        if snapshot is not None:
            last_index = max(last_index, snapshot.index)
            yield RecordType.SNAPSHOT, fmt.encode_snapshot(snapshot), last_index
        encode_entry, entry_type = fmt.encode_entry, RecordType.ENTRY
        for entry in entries:
            yield entry_type, encode_entry(entry), entry.index
        if entries:
            last_index = entries[-1].index
        if hard_state is not None:
            yield RecordType.HARD_STATE, fmt.encode_hard_state(hard_state), last_index

    def _write(self, records: Iterator[tuple[RecordType, bytes, int]]) -> None:
        buf = bytearray()
        crc, last_index = self._crc, self._last_index
        end, capacity = self._offset_bytes, self._capacity_bytes
        crc32, encode_frame, frame_bytes = zlib.crc32, fmt.encode_frame, fmt.frame_bytes
        for record_type, payload, index_after in records:
            size = frame_bytes(len(payload))
            if end + size > capacity and (buf or self._segment_has_records):
                # Full: what is buffered ends this segment; the rest goes to a new one.
                # A record bigger than a whole segment goes alone into a fresh one.
                self._flush(buf, crc, last_index)
                self._roll()
                buf, crc = bytearray(), self._crc
                end, capacity = self._offset_bytes, self._capacity_bytes
            crc = crc32(payload, crc)
            buf += encode_frame(record_type, crc, payload)
            end += size
            last_index = index_after
        self._flush(buf, crc, last_index)

    def _flush(self, buf: bytearray, crc: int, last_index: int) -> None:
        if not buf:
            return
        write_all(self._fd, buf, self._offset_bytes)
        self._offset_bytes += len(buf)
        self._crc, self._last_index = crc, last_index
        self._segment_has_records = self._unsynced = True

    def _roll(self) -> None:
        """Continue in a new segment, starting with CRC, METADATA and HARD_STATE."""
        # A segment is complete and durable before the next one exists, so that only
        # the last segment can ever have a torn tail.
        os.fdatasync(self._fd)
        name = SegmentName(self._segments[-1].seq + 1, self._last_index + 1)
        header, crc = encode_header(self._crc, self._metadata, self._hard_state)
        fd = create_segment(self._dir, name, header, self._segment_size_bytes)
        os.close(self._fd)
        self._fd = fd
        self._segments.append(name)
        self._capacity_bytes = self._segment_size_bytes
        self._offset_bytes, self._crc = len(header), crc
        self._segment_has_records = self._unsynced = False

    # -- releasing ---------------------------------------------------------------

    def release_to(self, index: int, max_wals: int | None = None) -> tuple[Path, ...]:
        """Delete segments not needed to reopen at a snapshot at `index`, oldest first.

        Needed are the last segment named with first_index <= index and all after
        it (see reader.segments_to_read); the last segment is always needed.
        `max_wals` (etcd's --max-wals): keep up to that many segment files in all,
        deleting unneeded ones only while there are more; never deletes a needed
        one, so more may remain. None deletes every unneeded segment.
        """
        self._check_usable()
        assert max_wals is None or max_wals >= 1, "max_wals counts files to keep"
        needed_from = 0
        for position, name in enumerate(self._segments):
            if name.first_index <= index:
                needed_from = position
        releasable = self._segments[:needed_from]
        if max_wals is not None:
            releasable = releasable[:max(0, len(self._segments) - max_wals)]
        paths = tuple(self._dir / name.file_name for name in releasable)
        for path in paths:  # oldest first: a crash leaves consecutive seqs
            os.unlink(path)
        if paths:
            os.fsync(self._dir_fd)
        del self._segments[:len(releasable)]
        return paths

    # -- inspection and closing ----------------------------------------------------

    @property
    def segment_paths(self) -> tuple[Path, ...]:
        return tuple(self._dir / name.file_name for name in self._segments)

    @property
    def tail_position(self) -> tuple[Path, int]:
        """(last segment, offset in bytes where the next record goes)."""
        return self._dir / self._segments[-1].file_name, self._offset_bytes

    @property
    def last_index(self) -> int:
        """Index of the last entry appended (or of a higher snapshot marker)."""
        return self._last_index

    def close(self) -> None:
        """Close without syncing: what was not synced may or may not be on disk."""
        if self._closed:
            return
        self._closed = True
        os.close(self._fd)
        os.close(self._dir_fd)  # releases the flock

    def __enter__(self) -> Wal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise WalError("wal: closed")
        if self._failed:
            raise WalError("wal: a write or fsync failed; reopen to recover")


def _check_segment_size(segment_size_bytes: int) -> None:
    if segment_size_bytes < MIN_SEGMENT_SIZE_BYTES or segment_size_bytes % fmt.ALIGN_BYTES:
        raise ValueError(f"wal: segment_size_bytes must be a multiple of {fmt.ALIGN_BYTES} "
                         f"and >= {MIN_SEGMENT_SIZE_BYTES}, not {segment_size_bytes}")


def _lock_dir(wal_dir: Path) -> int:
    """Open `wal_dir` and take the single-writer lock on it."""
    dir_fd = os.open(wal_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(dir_fd)
        raise WalError(f"wal: {wal_dir} is locked by another writer") from None
    return dir_fd


def _open_tail(path: Path, result: ReadResult, segment_size_bytes: int) -> int:
    """Open the last segment for appending, dropping a torn tail first."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        end = result.tail_scan.end_offset_bytes
        repaired = result.contents.repair is not None
        if repaired:
            os.ftruncate(fd, end)  # the torn bytes read back as zeros once re-extended
        target_bytes = max(end, segment_size_bytes)
        if repaired or os.fstat(fd).st_size < target_bytes:
            os.posix_fallocate(fd, 0, target_bytes)
            os.fsync(fd)  # the new size and the zeroed tail are durable before appending
    except BaseException:
        os.close(fd)
        raise
    return fd
