"""Opening the LMDB environment generation named by CURRENT, and swapping it.

See layout.py for the directory format. One process writes (the apply actor); any
number of processes read. Readers call `Backend.stale()` before each read
transaction and reopen when it says so: after a defragment the old generation's
files are unlinked, and a reader still mapping them would see stale data forever.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

import lmdb

from . import layout

CURRENT = "CURRENT"
_GEN_PREFIX = "gen-"
_OPEN_RETRIES = 5  # a reader can race a defragment that unlinks the gen it just read
_CURRENT_TEXT = re.compile(rb"gen-(\d{6,})\n?")


@dataclass(frozen=True, slots=True)
class Databases:
    """Handles of the named databases of one environment."""

    history: lmdb._Database
    key_revs: lmdb._Database
    meta: lmdb._Database
    alarm: lmdb._Database
    leases: lmdb._Database
    lease_keys: lmdb._Database
    auth: lmdb._Database
    auth_users: lmdb._Database
    auth_roles: lmdb._Database
    auth_tokens: lmdb._Database

    def all(self) -> tuple[tuple[bytes, lmdb._Database], ...]:
        return (
            (layout.DB_HISTORY, self.history),
            (layout.DB_KEY_REVS, self.key_revs),
            (layout.DB_META, self.meta),
            (layout.DB_ALARM, self.alarm),
            (layout.DB_LEASES, self.leases),
            (layout.DB_LEASE_KEYS, self.lease_keys),
            (layout.DB_AUTH, self.auth),
            (layout.DB_AUTH_USERS, self.auth_users),
            (layout.DB_AUTH_ROLES, self.auth_roles),
            (layout.DB_AUTH_TOKENS, self.auth_tokens),
        )


@dataclass(frozen=True, slots=True)
class Backend:
    """One open environment generation."""

    root: str
    generation: int
    env: lmdb.Environment
    dbs: Databases
    # CURRENT's (inode, ctime in ns) when this generation was opened. Not the inode
    # alone: a freed inode is soon reused, so two defragments between two reads could
    # leave CURRENT with the inode it had, naming a generation two steps on.
    current_id: tuple[int, int]
    readonly: bool

    @property
    def data_file(self) -> str:
        return data_file(self.root, self.generation)

    def stale(self) -> bool:
        """True when CURRENT names another generation than the one open."""
        try:
            return _file_id(os.stat(os.path.join(self.root, CURRENT))) != self.current_id
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self.env.close()


def gen_dir(root: str, generation: int) -> str:
    return os.path.join(root, f"{_GEN_PREFIX}{generation:06d}")


def data_file(root: str, generation: int) -> str:
    return os.path.join(gen_dir(root, generation), "data.mdb")


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_ino, st.st_ctime_ns


class StoreCorruptError(Exception):
    """A store file is not what petcd wrote: start-up refuses rather than guess."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# What LMDB says of a file that is not, or no longer, a sound LMDB file.
_CORRUPT = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.PageNotFoundError,
            lmdb.VersionMismatchError)


def _read_current(root: str) -> tuple[int, tuple[int, int]]:
    """(generation, CURRENT's file id)."""
    path = os.path.join(root, CURRENT)
    with open(path, "rb") as f:
        file_id = _file_id(os.fstat(f.fileno()))
        raw = f.read()
    match = _CURRENT_TEXT.fullmatch(raw)
    if match is None:
        raise StoreCorruptError(path, f"unexpected content {raw[:40]!r}")
    return int(match[1]), file_id


def check_size(env: lmdb.Environment, path: str) -> None:
    """Refuse a data file shorter than the pages its meta page counts: reading them
    through the map would kill the process with SIGBUS instead of an error."""
    psize = env.stat()["psize"]
    needed = (env.info()["last_pgno"] + 1) * psize
    size = os.stat(path).st_size
    if size < needed:
        raise StoreCorruptError(path, f"truncated: {size} bytes, but its pages reach {needed}")


def data_file_size_bytes(root: str) -> int:
    """Size of the live generation's data file, read without opening LMDB: cheap
    enough for another process to check the quota before every write."""
    for _ in range(_OPEN_RETRIES):
        generation, _ = _read_current(root)
        try:
            return os.stat(data_file(root, generation)).st_size
        except FileNotFoundError:
            continue  # a defragment removed the generation just read: read CURRENT again
    raise FileNotFoundError(f"{root}: no live generation after {_OPEN_RETRIES} tries")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_generation(root: str, generation: int) -> None:
    """Atomically point CURRENT at `generation` (durable once this returns)."""
    tmp = os.path.join(root, CURRENT + ".tmp")
    with open(tmp, "wb") as f:
        f.write(f"{_GEN_PREFIX}{generation:06d}\n".encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(root, CURRENT))
    _fsync_dir(root)


def _open_env(path: str, readonly: bool, map_size_bytes: int, sync: bool) -> lmdb.Environment:
    return lmdb.open(
        path,
        readonly=readonly,
        create=not readonly,
        # 0 makes a reader adopt the map size the writer recorded in the file.
        map_size=0 if readonly else map_size_bytes,
        max_dbs=layout.MAX_DBS,
        subdir=True,
        # The WAL is the durable record and apply is idempotent, so losing the last
        # transaction in an OS crash is fine; one fdatasync per commit keeps the file
        # consistent (MDB_NOMETASYNC), unlike MDB_NOSYNC which may corrupt it.
        metasync=False,
        sync=sync,
        # Random reads of a large file: the kernel's readahead only evicts useful pages.
        readahead=False,
    )


def open_dbs(env: lmdb.Environment, readonly: bool) -> Databases:
    create = not readonly
    return Databases(
        history=env.open_db(layout.DB_HISTORY, create=create),
        # Not dupfixed: LMDB 0.9.36's compacting copy (defragment) crashes on DUPFIXED
        # sub-databases, i.e. once a key has more revisions than fit a page.
        key_revs=env.open_db(layout.DB_KEY_REVS, create=create, dupsort=True),
        meta=env.open_db(layout.DB_META, create=create),
        alarm=env.open_db(layout.DB_ALARM, create=create),
        # A writer creates these in a store of schema 2 (meta.init_schema); a reader
        # only opens generations a writer has opened first (or upgraded: snapshots).
        leases=env.open_db(layout.DB_LEASES, create=create),
        lease_keys=env.open_db(layout.DB_LEASE_KEYS, create=create, dupsort=True),
        # Created by a writer in a store of schema 3 or older, as the lease ones.
        auth=env.open_db(layout.DB_AUTH, create=create),
        auth_users=env.open_db(layout.DB_AUTH_USERS, create=create),
        auth_roles=env.open_db(layout.DB_AUTH_ROLES, create=create),
        auth_tokens=env.open_db(layout.DB_AUTH_TOKENS, create=create),
    )


def open_backend(root: str, *, readonly: bool, map_size_bytes: int, sync: bool) -> Backend:
    """Open the generation CURRENT names; a writer creates the first one if needed."""
    if not readonly:
        _init_root(root)
    for attempt in range(_OPEN_RETRIES):
        generation, file_id = _read_current(root)
        try:
            env, dbs = open_generation(root, generation, readonly, map_size_bytes, sync)
        except (lmdb.Error, StoreCorruptError):
            if readonly and attempt + 1 < _OPEN_RETRIES:
                continue  # a defragment replaced CURRENT between the read and the open
            raise
        return Backend(root, generation, env, dbs, file_id, readonly)
    raise AssertionError("unreachable")


def open_generation(root: str, generation: int, readonly: bool, map_size_bytes: int,
                    sync: bool) -> tuple[lmdb.Environment, Databases]:
    """Open one generation, published or not; map_size_bytes 0 keeps the file's own."""
    path = data_file(root, generation)
    _check_generation_exists(root, generation)
    try:
        env = _open_env(gen_dir(root, generation), readonly, map_size_bytes, sync)
    except _CORRUPT as err:
        raise StoreCorruptError(path, str(err)) from err
    try:
        check_size(env, path)
        return env, open_dbs(env, readonly)
    except _CORRUPT as err:
        env.close()
        raise StoreCorruptError(path, str(err)) from err
    except BaseException:
        env.close()
        raise


def _check_generation_exists(root: str, generation: int) -> None:
    """The first generation's file is made by its first open; a later one is only
    published once written and fsynced (defragment), so its absence is damage."""
    if generation > 1 and not os.path.exists(data_file(root, generation)):
        raise StoreCorruptError(data_file(root, generation), "missing, though CURRENT names it")


def _init_root(root: str) -> None:
    """Create the first generation, and drop generations a crashed defragment left."""
    os.makedirs(root, exist_ok=True)
    if not os.path.exists(os.path.join(root, CURRENT)):
        os.makedirs(gen_dir(root, 1), exist_ok=True)
        publish_generation(root, 1)
    live, _ = _read_current(root)
    _check_generation_exists(root, live)  # before dropping what might be the only copy
    for name in os.listdir(root):
        if name.startswith(_GEN_PREFIX) and name != os.path.basename(gen_dir(root, live)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def copy_compact(backend: Backend) -> int:
    """Write a compacted copy of `backend` as the next generation; return its number.

    The copy is fsynced but not published: `publish_generation` makes it live.
    """
    assert not backend.readonly, "only the writer defragments"
    generation = backend.generation + 1
    target = gen_dir(backend.root, generation)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    backend.env.copy(target, compact=True)
    data = data_file(backend.root, generation)
    fd = os.open(data, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(target)
    return generation


def remove_generation(root: str, generation: int) -> None:
    """Unlink an old generation; processes that still map it keep their pages."""
    shutil.rmtree(gen_dir(root, generation), ignore_errors=True)
