"""What the WAL actor does before its loop: make sure a WAL exists, check it is ours,
open it at the newest usable snapshot, and say what it holds.

First start (no WAL in ctx.wal_dir), as etcd's wal.Create does:

    <wal_dir>.tmp/  Wal.create, metadata = msgpack [member_id, cluster_id]
                    "new" cluster: + bootstrap entries and hard state, fsynced
                    "existing" cluster: nothing more (a joining member starts empty)
    rename <wal_dir>.tmp -> <wal_dir>, fsync the parent directory

so a crash mid-bootstrap leaves only the .tmp directory, which the next start throws
away: a WAL directory is either absent or holds the whole bootstrap state. Every start
then opens the WAL the same way (snapshot order from storage/snap.py), so a new
member's STATE and a restarted member's STATE come from the same reading of the disk.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from petcd.actors.member import MemberContext
from petcd.actors.raft.bootstrap import bootstrap
from petcd.actors.raft.types import PersistedState, Snapshot
from petcd.actors.skeleton import EXIT_BAD_CONFIG, EXIT_FAILED, Stop
from petcd.config.ids import format_id
from petcd.storage.raftstate import SnapshotMeta
from petcd.storage.snap import SnapStore
from petcd.storage.wal import TailRepair, Wal, read_valid_snapshots, wal_exists
from petcd.storage.wal.segment import fsync_dir

TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class Opened:
    wal: Wal
    state: PersistedState  # what raft restores from (snapshot data is b"": only the meta)
    metadata: bytes
    created: bool  # this start created the WAL
    repair: TailRepair | None  # a torn tail dropped by this open


def encode_metadata(member_id: int, cluster_id: int) -> bytes:
    data: bytes = msgpack.packb([member_id, cluster_id])
    return data


def decode_metadata(metadata: bytes) -> tuple[int, int]:
    """(member_id, cluster_id) of WAL metadata; ValueError if it is not ours."""
    try:
        obj: Any = msgpack.unpackb(metadata)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as err:
        raise ValueError(f"WAL metadata is not msgpack: {err}") from err
    if (type(obj) is not list or len(obj) != 2
            or not all(type(value) is int for value in obj)):
        raise ValueError(f"WAL metadata is not [member_id, cluster_id]: {obj!r}")
    return obj[0], obj[1]


def bootstrap_state(ctx: MemberContext) -> PersistedState:
    """The founding log of a new cluster; each ADD_VOTER carries msgpack [name, urls]."""
    contexts = {peer.member_id: msgpack.packb([peer.name, list(peer.peer_urls)])
                for peer in ctx.initial_peers}
    return bootstrap([peer.member_id for peer in ctx.initial_peers], contexts)


def open_wal(ctx: MemberContext, segment_size_bytes: int) -> Opened:
    """Create the WAL if there is none, then open it. Raises Stop (the actor must not
    start) or storage errors (WalError, WalCorruptError, OSError) for the caller to
    report."""
    created = False
    if not wal_exists(ctx.wal_dir):
        create_wal(ctx, segment_size_bytes)
        created = True
    snapshot = SnapStore(ctx.snap_dir).load_latest(among=read_valid_snapshots(ctx.wal_dir))
    wal, contents = Wal.open(ctx.wal_dir, snapshot, segment_size_bytes=segment_size_bytes)
    try:
        check_identity(ctx, contents.metadata)
    except BaseException:
        wal.close()
        raise
    state = PersistedState(contents.hard_state, _snapshot_of(snapshot), contents.entries)
    return Opened(wal, state, contents.metadata, created, contents.repair)


def check_identity(ctx: MemberContext, metadata: bytes) -> None:
    expected = f"member {format_id(ctx.member_id)} of cluster {format_id(ctx.cluster_id)}"
    try:
        member_id, cluster_id = decode_metadata(metadata)
    except ValueError as err:
        raise _refusal(EXIT_BAD_CONFIG, f"data dir {ctx.wal_dir} does not hold a petcd WAL of "
                                        f"this member ({err}); expected {expected}") from None
    if (member_id, cluster_id) != (ctx.member_id, ctx.cluster_id):
        raise _refusal(EXIT_BAD_CONFIG,
                       f"data dir {ctx.wal_dir} belongs to member {format_id(member_id)} "
                       f"of cluster {format_id(cluster_id)}; expected {expected}")


def _refusal(status: int, error: str) -> Stop:
    return Stop("refusing to start", status, error=error)


def _snapshot_of(meta: SnapshotMeta | None) -> Snapshot | None:
    # The state machine's data is the apply actor's LMDB file; raft only needs the meta.
    return None if meta is None else Snapshot(meta, b"")


def create_wal(ctx: MemberContext, segment_size_bytes: int) -> None:
    """The WAL of a member that has none: a new cluster's founding log, or nothing for
    a member joining an existing one (also what `petcdutl snapshot restore` writes)."""
    wal_dir = Path(ctx.wal_dir)
    # An empty directory (made by the supervisor or an operator for --wal-dir) is
    # replaced by the new WAL; one with anything in it is not ours to remove.
    if wal_dir.exists() and any(wal_dir.iterdir()):
        raise _refusal(EXIT_FAILED, f"{wal_dir} holds files but no WAL segment; move them "
                                    "away or choose another --wal-dir")
    temp_dir = wal_dir.with_name(wal_dir.name + TEMP_SUFFIX)
    if temp_dir.exists():
        shutil.rmtree(temp_dir)  # a bootstrap that crashed before its rename
    temp_dir.mkdir(mode=0o700, parents=True)  # as private as the supervisor's dirs
    metadata = encode_metadata(ctx.member_id, ctx.cluster_id)
    with Wal.create(temp_dir, metadata, segment_size_bytes=segment_size_bytes) as wal:
        if ctx.settings.initial_cluster_state == "new":
            state = bootstrap_state(ctx)
            wal.append(state.hard_state, state.entries)
        wal.sync()
    try:
        if wal_dir.exists():
            wal_dir.rmdir()
        os.rename(temp_dir, wal_dir)
    except OSError as err:  # e.g. --wal-dir is a mount point: it cannot be replaced
        raise _refusal(EXIT_FAILED, f"cannot move the new WAL from {temp_dir} to {wal_dir} "
                                    f"({err}); use a --wal-dir that can be replaced, e.g. a "
                                    "subdirectory of a mount point") from err
    fsync_dir(wal_dir.parent)
