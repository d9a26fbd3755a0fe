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
"""

from __future__ import annotations

import os
from pathlib import Path

from petcd.actors.member import MemberContext
from petcd.actors.wal.startup import create_wal
from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.config import ConfigError
from petcd.config.load import load
from petcd.storage.mvcc import snapfile, snaprestore
from petcd.storage.wal import DEFAULT_SEGMENT_SIZE_BYTES

FLAGS = [
    Flag("data-dir", "string", ""),
    Flag("wal-dir", "string", ""),
    Flag("name", "string", "default"),
    Flag("initial-cluster", "string", "default=http://localhost:2380"),
    Flag("initial-cluster-token", "string", "etcd-cluster"),
    Flag("initial-advertise-peer-urls", "string", "http://localhost:2380"),
    Flag("skip-hash-check", "bool", False),
]


def _member_argv(values: dict) -> list[str]:
    argv = ["--initial-cluster-state", "new"]
    for name in ("data-dir", "wal-dir", "name", "initial-cluster", "initial-cluster-token",
                 "initial-advertise-peer-urls"):
        if values[name]:
            argv += [f"--{name}", values[name]]
    return argv


def _context(values: dict) -> MemberContext:
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
    path = parsed.args[0]
    ctx = _context(parsed.values)
    _refuse_existing(ctx, bool(parsed.values["wal-dir"]))
    if not os.path.exists(path):
        raise CtlError(EXIT_ERROR, f"open {path}: no such file or directory")
    try:
        if not parsed.values["skip-hash-check"]:
            snapfile.verify_trailer(path)
        snapfile.status(path)  # a store this build reads, not truncated
    except snapfile.SnapshotFileError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    Path(ctx.snap_dir).mkdir(mode=0o700, parents=True)
    snaprestore.install(path, str(ctx.db_dir))
    create_wal(ctx, DEFAULT_SEGMENT_SIZE_BYTES)
    return 0
