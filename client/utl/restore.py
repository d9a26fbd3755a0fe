"""`petcdutl snapshot restore FILE`: the data dir of a member of a new cluster whose
store is the snapshot's (etcdutl/snapshot/v3_snapshot.go Restore).

    <data-dir>/member/snap/db   the snapshot's store, old cluster's Raft position,
                                member table and alarms removed (storage/mvcc/snaprestore)
    <data-dir>/member/wal       (or --wal-dir) the WAL a new member of the
                                --initial-cluster would create on its first start:
                                its founding ADD_VOTER entries (actors/wal/startup)

Started with the same --name, --initial-cluster and --initial-cluster-token (the
WAL names the member and cluster IDs they make), the member applies those entries to
the restored store (applied index 0), which builds the new member table, and serves
the snapshot's keys at the snapshot's revision. Restoring one file for each member of
--initial-cluster gives a working cluster with the original data, as with etcd.

The flags are the member's own (config/load, with --initial-cluster-state new), so
the same checks refuse a name missing from --initial-cluster or advertised URLs that
do not match it, with petcd's messages.

Unlike etcdutl, which writes into the data dir itself, the data dir is built beside
it as `.<name>.restoring-XXXXXXXX` and renamed into place last: a restore killed
midway leaves that hidden directory (safe to delete), never a half-made data dir
that a member would start from. A --wal-dir outside the data dir is made first (its
own `.tmp` and rename, actors/wal/startup); killed between the two renames, a WAL
dir is left and a second restore refuses it ("wal-dir ... exists"), as etcd would.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from petcd.actors.member import MemberContext
from petcd.actors.wal.startup import create_wal
from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.config import ConfigError
from petcd.config.load import load
from petcd.storage.mvcc import snapfile, snaprestore
from petcd.storage.wal import DEFAULT_SEGMENT_SIZE_BYTES
from petcd.storage.wal.segment import fsync_dir

FLAGS = [
    Flag("data-dir", "string", ""),
    Flag("wal-dir", "string", ""),
    Flag("name", "string", "default"),
    Flag("initial-cluster", "string", "default=http://localhost:2380"),
    Flag("initial-cluster-token", "string", "etcd-cluster"),
    Flag("initial-advertise-peer-urls", "string", "http://localhost:2380"),
    Flag("skip-hash-check", "bool", False),
    Flag("initial-memory-map-size", "uint", 0),
    Flag("bump-revision", "uint", 0),
    Flag("mark-compacted", "bool", False),
]

HELP = """Restores an etcd member snapshot to an etcd directory

Usage:
  petcdutl snapshot restore <filename> --data-dir {output dir} [options]

Flags:
  --bump-revision uint
      How much to increase the latest revision after restore
  --data-dir string
      Path to the output data directory
  -h, --help
      help for restore
  --initial-advertise-peer-urls string
      List of this member's peer URLs to advertise to the rest of the cluster
      (default "http://localhost:2380")
  --initial-cluster string
      Initial cluster configuration for restore bootstrap
      (default "default=http://localhost:2380")
  --initial-cluster-token string
      Initial cluster token for the etcd cluster during restore bootstrap
      (default "etcd-cluster")
  --initial-memory-map-size uint
      LMDB map size in bytes for the restore's own writes; 0 (the default) keeps
      the one the snapshot file records. As etcd's bbolt mmap size, it does not
      carry over: a member sets its map from --quota-backend-bytes at each start.
  --mark-compacted
      Mark the latest revision after restore as the point of scheduled compaction
      (required if --bump-revision > 0, disallowed otherwise)
  --name string
      Human-readable name for this member (default "default")
  --skip-hash-check
      Ignore snapshot integrity hash value (required if copied from data directory)
  --wal-dir string
      Path to the WAL directory (use --data-dir if none given)
"""


def _revision_bump(values: dict[str, object]) -> int:
    """etcd's check, and its message, which names the flag --revision-bump."""
    bump = _uint(values, "bump-revision")
    if bool(bump) != values["mark-compacted"]:
        raise CtlError(EXIT_BAD_ARGS, "--mark-compacted required if --revision-bump > 0")
    return bump


def _uint(values: dict[str, object], name: str) -> int:
    value = values[name]
    assert isinstance(value, int) and value >= 0, (name, value)  # flags.py's uint kind
    return value


def _member_argv(values: dict[str, object]) -> list[str]:
    argv = ["--initial-cluster-state", "new"]
    for name in ("data-dir", "wal-dir", "name", "initial-cluster", "initial-cluster-token",
                 "initial-advertise-peer-urls"):
        if values[name]:
            argv += [f"--{name}", str(values[name])]
    return argv


def _context(values: dict[str, object]) -> MemberContext:
    try:
        return MemberContext.from_settings(load(_member_argv(values), {}))
    except ConfigError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None


def _refuse_existing(ctx: MemberContext, wal_dir_given: bool) -> None:
    data_dir = ctx.settings.data_dir
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise CtlError(EXIT_ERROR, f'data-dir "{data_dir}" not empty or could not be read')
    if wal_dir_given and ctx.wal_dir.exists():
        raise CtlError(EXIT_ERROR, f'wal-dir "{ctx.wal_dir}" exists')


def snapshot_restore(parsed: flags.Parsed) -> int:
    if len(parsed.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    _revision_bump(parsed.values)  # before any other check, as etcdutl
    path = parsed.args[0]
    target = _context(parsed.values)
    _refuse_existing(target, bool(parsed.values["wal-dir"]))
    if not os.path.exists(path):
        raise CtlError(EXIT_ERROR, f"open {path}: no such file or directory")
    try:
        if not parsed.values["skip-hash-check"]:
            snapfile.verify_trailer(path)
        snapfile.status(path)  # a store this build reads, not truncated
    except snapfile.SnapshotFileError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    staging = staging_dir(target.settings.data_dir)
    staged = _context(_staged_values(parsed.values, target, staging))
    try:
        _build(path, staged, parsed.values)
        publish(staging, target.settings.data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not staged.wal_dir.is_relative_to(staging):  # refused above if it existed
            shutil.rmtree(staged.wal_dir, ignore_errors=True)
        raise
    return 0


def _staged_values(values: dict[str, object], target: MemberContext,
                   staging: Path) -> dict[str, object]:
    """The flags with the data dir at `staging`; a --wal-dir inside the data dir
    moves with it (made at its real place, it would make the data dir non-empty
    before the rename), one elsewhere stays where it is."""
    staged = {**values, "data-dir": str(staging)}
    data_dir, wal_dir = target.settings.data_dir.absolute(), target.wal_dir.absolute()
    if values["wal-dir"] and wal_dir.is_relative_to(data_dir):
        staged["wal-dir"] = str(staging / wal_dir.relative_to(data_dir))
    return staged


def staging_dir(data_dir: Path, doing: str = "restoring") -> Path:
    """A new hidden directory beside `data_dir`, named after it and what builds it."""
    parent = data_dir.absolute().parent
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.{doing}-", dir=parent))


def _build(path: str, staged: MemberContext, values: dict[str, object]) -> None:
    """The store and the WAL at `staged`'s paths."""
    Path(staged.snap_dir).mkdir(mode=0o700, parents=True)
    try:
        snaprestore.install(path, str(staged.db_dir), revision_bump=_revision_bump(values),
                            map_size_bytes=_uint(values, "initial-memory-map-size"))
    except snaprestore.RevisionBumpError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    create_wal(staged, DEFAULT_SEGMENT_SIZE_BYTES)


def publish(staging: Path, data_dir: Path) -> None:
    """Make the staged tree durable, then rename it over the (absent or empty) data
    dir: the one step that makes the restore visible."""
    for directory, _, _ in os.walk(staging, topdown=False):
        fsync_dir(Path(directory))
    os.rename(staging, data_dir)
    fsync_dir(data_dir.absolute().parent)
