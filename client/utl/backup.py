"""`petcdutl backup`: etcdutl 3.5's offline backup of a stopped member's data dir
(etcdutl/etcdutl/backup_command.go; etcd 3.6 dropped it for `snapshot save`), made
for petcd's layout:

    <backup-dir>/member/snap/db       the store (LMDB's compacting copy, in one read
                                      transaction), its member table replaced
    <backup-dir>/member/snap/*.snap   the newest snapshot marker, its conf state
                                      replaced (none if the member had none)
    <backup-dir>/member/wal           (or --backup-wal-dir) one WAL segment: that
                                      snapshot's record, every entry after it and the
                                      hard state, under the new member and cluster IDs

The backup is a cluster of its own, as etcd makes it (newDesiredCluster): a new
member ID and cluster ID from etcd's ID generator (now in milliseconds, shifted by 8
bits, + 1 and + 2), and a member table of that one member, named
"etcdctl-v2-backup" with etcd's peer URL http://use-flag--force-new-cluster:2080.
Entries that change the membership (conf changes, a member publishing its name and
client URLs) become empty entries of the same index and term (etcd's
raftEntryToNoOp), so indexes, terms and the store's applied index stay valid. Keys,
history, leases, users and alarms are kept.

Start it as etcd's guide says, with --force-new-cluster:

    petcd --data-dir <backup-dir> --force-new-cluster --name m1 \\
        --initial-advertise-peer-urls http://10.0.0.1:2380 --listen-peer-urls ... \\
        --listen-client-urls ... --advertise-client-urls ...

It is then the one member of a new cluster with the member's data (the data dir's
identity wins over --initial-cluster, as on any restart); its peer URL is the
placeholder until `member update` sets it, as with etcd; then it grows by `member add`.

Where petcdutl differs from etcdutl 3.5:
- etcd 3.5 puts the new IDs in the member table but writes the source WAL's metadata
  back unchanged (etcdctl 3.4 wrote new ones), so an etcd 3.5 backup started with
  --force-new-cluster comes up with the old member and cluster IDs again. petcdutl
  writes the new IDs into the WAL too, as etcd's documentation of the command says
  (a backup must not be able to join the cluster it came from).
- etcd gives up after waiting a second for bbolt's lock of a running member; petcdutl
  refuses at once the data dir of a running member (its supervisor's lock, which it
  holds meanwhile, as `defrag`).
- The backup is built beside --backup-dir (`.<name>.backing-up-*`) and renamed into
  place last (as `snapshot restore`; a --backup-wal-dir elsewhere is made first, by a
  rename of its own), and a --backup-dir that is not empty or an existing --backup-wal-dir is
  refused; etcd writes into them.
- It prints one log line when done (with the new IDs) on stderr; etcd logs each
  entry it empties.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from petcd.actors.apply.members import Member, MemberTable, encode
from petcd.actors.bus.rundir import RunDir, RunDirBusy
from petcd.actors.member import default_run_dir
from petcd.actors.network.requests import RequestIds
from petcd.actors.wal.startup import encode_metadata
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_ERROR, CtlError, Flag
from petcd.client.utl import logline, restore
from petcd.config import ids
from petcd.storage.mvcc import env, meta
from petcd.storage.raftstate import ConfState, Entry, EntryType, HardState, SnapshotMeta
from petcd.storage.snap import SnapStore
from petcd.storage.wal import Wal, WalError, read_valid_snapshots, wal_exists
from petcd.storage.wal.reader import WalContents, read_wal, segments_to_read
from petcd.storage.wal.segment import fsync_dir, list_segments

FLAGS = [
    Flag("data-dir", "string", ""),
    Flag("wal-dir", "string", ""),
    Flag("backup-dir", "string", ""),
    Flag("backup-wal-dir", "string", ""),
    Flag("with-v3", "bool", True),
]

HELP = """Prefer: `petcdctl snapshot save` instead.

Usage:
  petcdutl backup [flags]

Flags:
      --backup-dir string       Path to the backup dir
      --backup-wal-dir string   Path to the backup wal dir
      --data-dir string         Path to the etcd data dir
  -h, --help                    help for backup
      --wal-dir string          Path to the etcd wal dir
      --with-v3                 Backup v3 backend data (default true)
"""

BACKUP_NAME = "etcdctl-v2-backup"  # etcd's, for the one member of the backup
BACKUP_PEER_URL = "http://use-flag--force-new-cluster:2080"
NO_V2 = ("-with-v3=false is not supported since etcd v3.6. Please use v3.5.x client as "
         "the last supporting this deprecated functionality.")


def backup(parsed: flags.Parsed) -> int:
    missing = [f'"{name}"' for name in ("backup-dir", "data-dir") if name not in parsed.given]
    if missing:  # cobra's MarkFlagRequired
        raise CtlError(EXIT_ERROR, f"required flag(s) {', '.join(missing)} not set")
    if not parsed.values["with-v3"]:
        logline.log(NO_V2, level="warn")  # petcd has no v2 store to back up alone
        return 0
    source = Path(str(parsed.values["data-dir"]))
    target = Path(str(parsed.values["backup-dir"]))
    source_wal = Path(str(parsed.values["wal-dir"] or source / "member" / "wal"))
    target_wal = Path(str(parsed.values["backup-wal-dir"] or target / "member" / "wal"))
    _refuse_targets(target, target_wal, bool(parsed.values["backup-wal-dir"]))
    _check_source(source, source_wal)
    try:
        held = RunDir.claim(default_run_dir(source))
    except RunDirBusy:
        raise CtlError(EXIT_ERROR, f"{source} is in use by a running petcd member; stop it "
                                   "first, or use `petcdctl snapshot save`") from None
    with held:
        _backup(source, source_wal, target, target_wal)
    return 0


def _refuse_targets(target: Path, target_wal: Path, wal_given: bool) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CtlError(EXIT_ERROR, f'backup-dir "{target}" not empty or could not be read')
    if wal_given and target_wal.exists():
        raise CtlError(EXIT_ERROR, f'backup-wal-dir "{target_wal}" exists')


def _check_source(source: Path, source_wal: Path) -> None:
    store = source / "member" / "snap" / "db"
    if not store.exists():
        raise CtlError(EXIT_ERROR, f"stat {store}: no such file or directory")
    if not (store / env.CURRENT).exists():
        raise CtlError(EXIT_ERROR, f"{store} is not a petcd store (no {env.CURRENT})")
    if not wal_exists(source_wal):
        raise CtlError(EXIT_ERROR, f"{source_wal} holds no WAL")


@dataclass(frozen=True, slots=True)
class Plan:
    """What the backup's Raft state is, worked out from the source's (pure)."""

    member_id: int
    cluster_id: int
    marker: SnapshotMeta | None  # the newest snapshot, of a conf state of the one member
    hard_state: HardState  # as it was
    entries: tuple[Entry, ...]  # those after the snapshot, membership changes emptied
    emptied: int  # how many were

    @property
    def table(self) -> MemberTable:
        return MemberTable((Member(self.member_id, BACKUP_NAME, (BACKUP_PEER_URL,), ()),))


def plan(member_id: int, cluster_id: int, marker: SnapshotMeta | None,
         contents: WalContents) -> Plan:
    conf = ConfState(voters=frozenset({member_id}))
    entries = tuple(_membership_emptied(e) for e in contents.entries)
    first = marker.index + 1 if marker else 1
    assert all(e.index == first + n for n, e in enumerate(entries)), "the log follows the snapshot"
    emptied = sum(a != b for a, b in zip(entries, contents.entries, strict=True))
    return Plan(member_id, cluster_id,
                None if marker is None else SnapshotMeta(marker.index, marker.term, conf),
                contents.hard_state, entries, emptied)


def new_ids(now_ms: int) -> tuple[int, int]:
    """(member ID, cluster ID): etcd's idutil.NewGenerator(0, now), Next() twice."""
    generator = RequestIds(0, now_ms)
    return generator.next(), generator.next()


def _backup(source: Path, source_wal: Path, target: Path, target_wal: Path) -> None:
    marker = SnapStore(source / "member" / "snap").load_latest(
        among=read_valid_snapshots(source_wal))
    try:
        contents = _read_wal(source_wal, marker)
    except WalError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    made = plan(*new_ids(time.time_ns() // 1_000_000), marker, contents)
    _write(made, source / "member" / "snap" / "db", target, target_wal)
    logline.log("backup written", **{
        "backup-dir": str(target), "member-id": ids.format_id(made.member_id),
        "cluster-id": ids.format_id(made.cluster_id),
        "snapshot-index": marker.index if marker else 0, "entries": len(made.entries),
        "emptied-entries": made.emptied})


def _read_wal(wal_dir: Path, marker: SnapshotMeta | None) -> WalContents:
    """The log after `marker`, read without the writer's lock or repairing anything
    (a torn tail is left out, as a member's open would drop it)."""
    names = segments_to_read(wal_dir, list_segments(wal_dir), marker.index if marker else 0)
    return read_wal(wal_dir, names, marker).contents


def _write(made: Plan, source_store: Path, target: Path, target_wal: Path) -> None:
    """The backup, built in a staging dir renamed to `target` last."""
    staging = restore.staging_dir(target, "backing-up")
    staged_wal = _staged(target_wal, target, staging)
    try:
        _copy_store(source_store, staging / "member" / "snap" / "db", made.table)
        if made.marker is not None:
            SnapStore(staging / "member" / "snap").save(made.marker)
        _write_wal(staged_wal, made)
        restore.publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not staged_wal.is_relative_to(staging):  # refused above if it existed
            shutil.rmtree(staged_wal, ignore_errors=True)
        raise


def _membership_emptied(entry: Entry) -> Entry:
    """A conf change, or a member publishing its attributes, as an empty entry."""
    if entry.type == EntryType.CONF_CHANGE or _publishes(entry):
        return Entry(entry.term, entry.index)
    return entry


def _publishes(entry: Entry) -> bool:
    if not entry.data:
        return False
    request = rpb.InternalRaftRequest()
    try:
        request.ParseFromString(entry.data)
    except DecodeError:
        return False  # a member skips it too (actors/apply/batch.py)
    return request.HasField("cluster_member_attr_set")


def _copy_store(source: Path, target: Path, table: MemberTable) -> None:
    """The source's live generation as the target's first, with `table` as its
    member table."""
    backend = env.open_backend(str(source), readonly=True, map_size_bytes=0, sync=False)
    gen_dir = env.gen_dir(str(target), 1)
    try:
        os.makedirs(gen_dir, mode=0o700)
        backend.env.copy(gen_dir, compact=True)
    finally:
        backend.env.close()
    lmdb_env, dbs = env.open_generation(str(target), 1, readonly=False, map_size_bytes=0,
                                        sync=True)
    try:
        with lmdb_env.begin(write=True) as txn:  # fsyncs the whole file on commit
            meta.set_conf_state(txn, dbs, encode(table))
    finally:
        lmdb_env.close()
    env.publish_generation(str(target), 1)


def _write_wal(wal_dir: Path, made: Plan) -> None:
    """The WAL made in `wal_dir`.tmp and renamed: it exists whole or not at all."""
    temp = wal_dir.with_name(wal_dir.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(mode=0o700, parents=True)
    with Wal.create(temp, encode_metadata(made.member_id, made.cluster_id)) as wal:
        wal.append(made.hard_state, made.entries, made.marker)
        wal.sync()
    os.rename(temp, wal_dir)
    fsync_dir(wal_dir.parent)


def _staged(wal_dir: Path, target: Path, staging: Path) -> Path:
    """Where the WAL is written: moved with the backup dir if inside it."""
    wal_dir, target = wal_dir.absolute(), target.absolute()
    return staging / wal_dir.relative_to(target) if wal_dir.is_relative_to(target) else wal_dir
