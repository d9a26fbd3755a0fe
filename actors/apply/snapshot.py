"""Replacing the store's data with a received snapshot's db file, and making one.

A follower too far behind receives the leader's LMDB data file, written by the network
actor to `member/snap/<index:016x>.snap.db` (`db_file_path`). Installing it uses the
store's generation layout (storage/mvcc/layout.py, env.py):

    <db>/CURRENT          "gen-000007"   the live generation
    <db>/gen-000007/      the live LMDB environment

    1. check the file: an LMDB environment of a schema this build reads, applied
       index >= the snapshot's (`db_file_position`)
    2. hard-link it as <db>/gen-000008/data.mdb (copy if the link is refused),
       bring it to this schema (a member of an older build may have sent it: the
       readers that switch at 3 open this schema's databases, and create none),
       fsync the file and the directory
    3. publish CURRENT = gen-000008 (atomic rename, fsynced): the switch point
    4. remove gen-000007 and the .snap.db name

A crash before 3 leaves gen-000008 unpublished (the next open removes it) and the
.snap.db file in place, so the snapshot can be installed again; a crash after 3 leaves
the new data live. A crash between 3 and 4 can leave the .snap.db name as a second
link to the live data file: `remove_applied_db_files`, called at start, unlinks every
.snap.db whose index the store has already applied, so such a name never lingers.
Reader processes (the network actor) see CURRENT change and reopen, as after a
defragment.

The store has no "replace from a file" of its own; this module adds it on top of the
public parts of storage/mvcc/env.py. The store must be closed while it runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import lmdb

from petcd.actors.failpoints import crash_here
from petcd.storage.mvcc import env, layout, meta
from petcd.storage.mvcc.meta import RaftPosition
from petcd.storage.mvcc.store import MvccStore

_DB_FILE = re.compile(r"^([0-9a-f]{16})\.snap\.db$")
TEMP_SUFFIX = ".tmp"


class SnapshotInstallError(Exception):
    """A received db file that cannot stand for the snapshot it came with."""


def db_file_path(snap_dir: str | os.PathLike[str], index: int) -> Path:
    """Where the network actor puts the db file of the snapshot at `index`."""
    return Path(snap_dir) / f"{index:016x}.snap.db"


def _fsync_path(path: str | os.PathLike[str], directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_db_file(store: MvccStore, path: str | os.PathLike[str]) -> None:
    """A consistent, compacted copy of the store's data as one file, written atomically
    (temp file, fsync, rename, fsync directory): what a leader sends as a snapshot."""
    path = Path(path)
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        store.backend.env.copyfd(fd, compact=True)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)


def db_file_position(path: str | os.PathLike[str]) -> RaftPosition:
    """The applied Raft position recorded in a standalone LMDB data file.

    Raises SnapshotInstallError if the file is missing, not LMDB, or not a store of
    this schema.
    """
    if not os.path.isfile(path):
        raise SnapshotInstallError(f"snapshot db file {os.fspath(path)} is missing")
    try:
        # lock=False: nobody else has this file open; no lock file is left beside it.
        e = lmdb.open(os.fspath(path), subdir=False, readonly=True, lock=False,
                      max_dbs=layout.MAX_DBS, map_size=0)
    except lmdb.Error as err:
        raise SnapshotInstallError(f"{os.fspath(path)} is not an LMDB file: {err}") from err
    try:
        with e.begin() as t:
            meta_db = e.open_db(layout.DB_META, txn=t, create=False)
            schema = t.get(layout.META_SCHEMA, db=meta_db)
            index = t.get(layout.META_CONSISTENT_INDEX, db=meta_db)
            term = t.get(layout.META_TERM, db=meta_db)
    except lmdb.Error as err:
        raise SnapshotInstallError(f"{os.fspath(path)} holds no petcd store: {err}") from err
    finally:
        e.close()
    if not meta.readable_schema(schema):
        raise SnapshotInstallError(f"{os.fspath(path)}: mvcc schema {schema!r}, this build "
                                   f"reads {layout.SCHEMA_VERSION!r}")
    return RaftPosition(layout.U64.unpack(index)[0] if index else 0,
                        layout.U64.unpack(term)[0] if term else 0)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copyfile(source, target)


def install_db_file(root: str, live_generation: int, source: str | os.PathLike[str],
                    min_index: int) -> RaftPosition:
    """Make `source` the data of the (closed) store at `root`; return its position.

    `live_generation` is the generation the store had open. Refuses (and changes
    nothing) a file whose applied index is below `min_index`, the snapshot's index.
    """
    source = os.fspath(source)
    position = db_file_position(source)
    if position.index < min_index:
        raise SnapshotInstallError(f"{source} holds applied index {position.index}, "
                                   f"below the snapshot's {min_index}")
    crash_here("applyBeforeOpenSnapshot")
    generation = live_generation + 1
    target_dir = env.gen_dir(root, generation)
    shutil.rmtree(target_dir, ignore_errors=True)  # left by a crash before publishing
    os.makedirs(target_dir)
    target = os.path.join(target_dir, "data.mdb")
    _link_or_copy(source, target)
    meta.upgrade_generation(root, generation)  # before readers can switch to it
    _fsync_path(target)
    _fsync_path(target_dir, directory=True)
    crash_here("applyBeforePublishSnapshot")
    env.publish_generation(root, generation)
    crash_here("applyAfterOpenSnapshot")
    env.remove_generation(root, live_generation)
    os.unlink(source)
    _fsync_path(os.path.dirname(source) or ".", directory=True)
    return position


def remove_applied_db_files(snap_dir: str | os.PathLike[str], applied_index: int) -> list[Path]:
    """Unlink received db files (and their temp files) at or below `applied_index`:
    already in the store, or a name left linked to the live data by a crash."""
    removed = []
    directory = Path(snap_dir)
    if not directory.is_dir():
        return removed
    for path in sorted(directory.iterdir()):
        name = path.name.removesuffix(TEMP_SUFFIX)
        match = _DB_FILE.match(name)
        if match and int(match.group(1), 16) <= applied_index:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
