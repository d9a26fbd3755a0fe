"""Reading a WAL back: which segments to read, and the log they add up to.

Reads only; deciding to repair a torn tail, and doing it, is the writer's business
(wal.py). Corruption raises WalCorruptError before anything is changed on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from petcd.storage.raftstate import Entry, HardState, SnapshotMeta
from petcd.storage.wal import format as fmt
from petcd.storage.wal.errors import WalCorruptError, WalError
from petcd.storage.wal.format import RecordType
from petcd.storage.wal.scan import HEADER_TYPES, SegmentScan, scan_segment, valid_record_follows
from petcd.storage.wal.segment import SegmentName

# Plain ints: compared once per record on the read path, faster than IntEnum members.
_ENTRY, _HARD_STATE = int(RecordType.ENTRY), int(RecordType.HARD_STATE)
_SNAPSHOT, _METADATA = int(RecordType.SNAPSHOT), int(RecordType.METADATA)


@dataclass(frozen=True, slots=True)
class TailRepair:
    """A torn tail found in the last segment: what a crash mid-write left behind."""

    path: Path
    offset_bytes: int  # the first byte dropped: the log ends just before it
    dropped_bytes: int  # non-zero bytes from offset_bytes on
    reason: str


@dataclass(frozen=True, slots=True)
class WalContents:
    """What a WAL holds after the snapshot it was opened at."""

    metadata: bytes
    hard_state: HardState  # the last one written
    entries: tuple[Entry, ...]  # contiguous, starting right after the snapshot index
    snapshots: tuple[SnapshotMeta, ...]  # markers read, in the order written
    repair: TailRepair | None  # set when a torn tail was found (and, by open, dropped)


@dataclass(frozen=True, slots=True)
class ReadResult:
    contents: WalContents
    tail: SegmentName  # the last segment, where appending resumes
    tail_scan: SegmentScan  # of the last segment: resume offset and crc
    last_written_index: int  # index of the last entry record (or higher marker)


def segments_to_read(wal_dir: Path, names: list[SegmentName], snap_index: int) -> list[SegmentName]:
    """The segments needed to read the log after `snap_index`.

    A segment named with first_index <= snap_index was started before entry
    snap_index + 1 was last written, and before any later segment; so reading from
    the last such segment sees every entry after the snapshot and its marker.
    """
    if not names:
        raise WalError(f"wal: no segments in {wal_dir}")
    start = None
    for position, name in enumerate(names):
        if name.first_index <= snap_index:
            start = position
    if start is None:
        if names[0].seq != 0:
            raise WalError(f"wal: {wal_dir} no longer holds the entries after index "
                           f"{snap_index}; the oldest segment is {names[0].file_name}")
        start = 0
    return names[start:]


class _LogBuilder:
    """Folds records into the log: overwrite semantics, last hard state wins."""

    def __init__(self, path: Path, snapshot: SnapshotMeta | None) -> None:
        self.path = path  # the segment being read, for error messages
        self.snap_index = snapshot.index if snapshot else 0
        self.metadata: bytes | None = None
        self.hard_state = HardState()
        self.entries: list[Entry] = []
        self.snapshots: list[SnapshotMeta] = []
        self.last_written_index = self.snap_index

    def on_record(self, record_type: int, payload: memoryview, offset: int) -> None:
        try:
            self._fold(record_type, payload, offset)
        except (ValueError, TypeError) as err:  # msgpack's errors are ValueErrors
            # The crc matched, so the writer wrote this: a bug, not a bad disk.
            raise WalCorruptError(self.path, offset, f"undecodable record ({err})") from err

    def _fold(self, record_type: int, payload: memoryview, offset: int) -> None:
        if record_type == _ENTRY:
            self._add_entry(fmt.decode_entry(payload), offset)
        elif record_type == _HARD_STATE:
            self.hard_state = fmt.decode_hard_state(payload)
        elif record_type == _SNAPSHOT:
            meta = fmt.decode_snapshot(payload)
            self.snapshots.append(meta)
            self.last_written_index = max(self.last_written_index, meta.index)
        elif record_type == _METADATA:
            self._check_metadata(fmt.decode_metadata(payload), offset)

    def _add_entry(self, entry: Entry, offset: int) -> None:
        self.last_written_index = entry.index
        if entry.index <= self.snap_index:
            return  # in the snapshot already
        position = entry.index - self.snap_index - 1
        if position > len(self.entries):
            last = self.snap_index + len(self.entries)
            raise WalError(f"wal: entry {entry.index} follows entry {last} in {self.path} "
                           f"at offset {offset}: open at a later snapshot")
        del self.entries[position:]  # a conflicting tail, overwritten by this append
        self.entries.append(entry)

    def _check_metadata(self, metadata: bytes, offset: int) -> None:
        if self.metadata is None:
            self.metadata = metadata
        elif metadata != self.metadata:
            raise WalCorruptError(self.path, offset, "metadata differs from the first segment's")


def read_wal(wal_dir: Path, names: list[SegmentName], snapshot: SnapshotMeta | None) -> ReadResult:
    """Read the log after `snapshot` from `names` (see segments_to_read)."""
    assert names, "there is always at least one segment to read"
    builder = _LogBuilder(wal_dir / names[0].file_name, snapshot)
    seed_crc: int | None = None  # the first segment read carries its own seed
    repair = None
    for position, name in enumerate(names):
        builder.path = wal_dir / name.file_name
        buf = builder.path.read_bytes()
        scan = scan_segment(buf, seed_crc, builder.on_record)
        repair = _judge_stop(builder.path, buf, scan, is_last=position == len(names) - 1)
        seed_crc = scan.crc
    _check_snapshot_found(wal_dir, builder.snapshots, snapshot)
    assert builder.metadata is not None, "every segment header holds the metadata"
    contents = WalContents(builder.metadata, builder.hard_state, tuple(builder.entries),
                           tuple(builder.snapshots), repair)
    return ReadResult(contents, names[-1], scan, builder.last_written_index)


def _judge_stop(path: Path, buf: bytes, scan: SegmentScan, is_last: bool) -> TailRepair | None:
    """None if the segment read cleanly; a TailRepair if it ends torn; else raise."""
    stop = scan.stop
    if stop is None:
        return None
    # Only the last segment can be torn: a segment is fsynced before the next one
    # is started, and its header is written atomically with it.
    if not is_last or scan.records < len(HEADER_TYPES) or valid_record_follows(buf, stop, scan.crc):
        raise WalCorruptError(path, stop.offset_bytes, stop.reason)
    return TailRepair(path, stop.offset_bytes, scan.data_end_bytes - stop.offset_bytes, stop.reason)


def _check_snapshot_found(wal_dir: Path, markers: list[SnapshotMeta],
                          snapshot: SnapshotMeta | None) -> None:
    if snapshot is None or snapshot.index == 0:
        return  # the log from its beginning: no marker needed
    for marker in markers:
        if marker.index == snapshot.index:
            if marker.term != snapshot.term:
                raise WalError(f"wal: the snapshot marker at index {snapshot.index} in "
                               f"{wal_dir} has term {marker.term}, not {snapshot.term}")
            return
    raise WalError(f"wal: no snapshot marker for index {snapshot.index} term "
                   f"{snapshot.term} in {wal_dir}")


def valid_snapshots(wal_dir: Path, names: list[SegmentName]) -> tuple[SnapshotMeta, ...]:
    """Snapshot markers in the WAL that a member can safely restart from.

    Like etcd's ValidSnapshotEntries: markers in a torn tail are not durable, and a
    marker above the last hard state's commit index was written by a Ready whose
    hard state did not make it to disk, so neither counts. Reads only.
    """
    markers: list[SnapshotMeta] = []
    hard_state = HardState()

    def on_record(record_type: int, payload: memoryview, offset: int) -> None:
        nonlocal hard_state
        if record_type == RecordType.SNAPSHOT:
            markers.append(fmt.decode_snapshot(payload))
        elif record_type == RecordType.HARD_STATE:
            hard_state = fmt.decode_hard_state(payload)

    seed_crc: int | None = None
    for position, name in enumerate(names):
        path = wal_dir / name.file_name
        buf = path.read_bytes()
        scan = scan_segment(buf, seed_crc, on_record)
        _judge_stop(path, buf, scan, is_last=position == len(names) - 1)
        seed_crc = scan.crc
    return tuple(m for m in markers if m.index <= hard_state.commit)
