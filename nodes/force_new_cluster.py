"""--force-new-cluster: a member that lost its quorum restarts as a one-member cluster,
keeping its data (etcd's recovery path for a lost quorum; etcd's
bootstrapWithWAL/forceNewCluster).

Done by the supervisor before any actor starts, on the member's own files:

    1. read the WAL (from its newest usable snapshot) and the store's applied index;
    2. keep the log up to what is known committed: the hard state's commit, or the
       store's applied index if higher (a commit index is made durable lazily, but
       only committed entries are ever applied); later entries may never have been
       committed and are dropped, as etcd discards "uncommitted WAL entries";
    3. append, at that term, one CONF_CHANGE REMOVE for every other member of the
       configuration those entries leave (and an ADD_VOTER for this member if it is
       not a voter), with a hard state committing them, fsynced.

Raft then starts with itself as the only voter and elects itself; the apply actor
applies the removals like any others (the member table drops them, the store keeps
every key). Started again with the flag, nothing is left to remove: it changes
nothing. The removed members, if they come back, learn that they were removed
(bootstrap.py) and stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from petcd.actors.apply.members import encode_context
from petcd.actors.member import MemberContext
from petcd.config import ids
from petcd.storage.mvcc import MvccStore
from petcd.storage.raftstate import ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState
from petcd.storage.snap import SnapStore
from petcd.storage.wal import Wal, read_valid_snapshots, wal_exists


@dataclass(frozen=True, slots=True)
class Forced:
    removed: tuple[int, ...]  # member ids
    discarded_entries: int  # uncommitted entries dropped
    commit: int  # the new commit index


def force_new_cluster(ctx: MemberContext, log: Any) -> Forced | None:
    """Rewrite the member's log as above; None if there is no WAL or nothing to do."""
    if not wal_exists(ctx.wal_dir):
        return None  # a first start: the flag only makes sense with data
    snapshot = SnapStore(ctx.snap_dir).load_latest(among=read_valid_snapshots(ctx.wal_dir))
    wal, contents = Wal.open(ctx.wal_dir, snapshot)
    with wal:
        base_index = snapshot.index if snapshot else 0
        keep = max(contents.hard_state.commit, _store_applied_index(ctx))
        kept = [e for e in contents.entries if e.index <= keep]
        conf = _conf_after(snapshot.conf if snapshot else ConfState(), kept)
        last = kept[-1].index if kept else base_index
        changes = _changes(ctx, conf)
        if not changes:
            return None
        term = contents.hard_state.term
        new = [Entry(term, last + n, EntryType.CONF_CHANGE, cc.encode())
               for n, cc in enumerate(changes, 1)]
        hard_state = HardState(term, contents.hard_state.vote, new[-1].index)
        wal.append(hard_state, new)  # overwrites the uncommitted tail
        wal.sync()
    forced = Forced(tuple(cc.node_id for cc in changes if cc.type == ConfChangeType.REMOVE),
                    len(contents.entries) - len(kept), hard_state.commit)
    log.warning("forcing a new one-member cluster from this member's data",
                removed_members=[ids.format_id(m) for m in forced.removed],
                discarded_uncommitted_entries=forced.discarded_entries, commit=forced.commit)
    return forced


def _store_applied_index(ctx: MemberContext) -> int:
    if not ctx.db_dir.exists():
        return 0
    store = MvccStore.open(str(ctx.db_dir), readonly=True)
    try:
        return store.applied_index()
    finally:
        store.close()


def _conf_after(conf: ConfState, entries: list[Entry]) -> ConfState:
    for e in entries:
        if e.type == EntryType.CONF_CHANGE:
            conf = conf.apply(ConfChange.decode(e.data))
    return conf


def _changes(ctx: MemberContext, conf: ConfState) -> list[ConfChange]:
    me = ctx.member_id
    changes = [ConfChange(ConfChangeType.REMOVE, m) for m in sorted(conf.members() - {me})]
    if me not in conf.voters:
        urls = [str(u) for u in ctx.settings.initial_advertise_peer_urls]
        changes.append(ConfChange(ConfChangeType.ADD_VOTER, me, encode_context(ctx.name, urls)))
    return changes

