"""petcd's write-ahead log: raft hard state, entries and snapshot markers, made
durable before they are acknowledged.

The on-disk format (records, segments, rolling crc, torn tail vs corruption) is
documented with a worked hex example in `format.py`. Typical use by the WAL actor:

    wal = Wal.create(wal_dir, metadata)                     # first start
    wal, contents = Wal.open(wal_dir, snapshot)             # restart
    wal.append(hard_state, entries, snapshot_marker)        # many batches...
    wal.sync()                                              # ...one fdatasync
    wal.release_to(snapshot_index, max_wals=5)              # after a snapshot
"""

from petcd.storage.wal.errors import WalCorruptError, WalError
from petcd.storage.wal.reader import TailRepair, WalContents
from petcd.storage.wal.wal import (
    DEFAULT_SEGMENT_SIZE_BYTES,
    Wal,
    read_metadata,
    read_valid_snapshots,
    wal_exists,
)

__all__ = [
    "DEFAULT_SEGMENT_SIZE_BYTES",
    "TailRepair",
    "Wal",
    "WalContents",
    "WalCorruptError",
    "WalError",
    "read_metadata",
    "read_valid_snapshots",
    "wal_exists",
]
