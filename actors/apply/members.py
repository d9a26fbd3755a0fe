"""The member table: who is in the cluster, as every member's state machine sees it.

etcd keeps a `membership.RaftCluster`: for each member its ID, name, peer URLs,
client URLs and learner flag, plus the IDs of removed members (which may never come
back). petcd derives the same table from committed Raft entries, in log order, so it
is identical on every member:

    CONF_CHANGE ADD_VOTER     new id: add a voter (name, peer URLs from the context)
                              a learner: promote it        a voter: no change
    CONF_CHANGE ADD_LEARNER   new id: add a learner        existing id: no change
                              (no demotion, as in ConfState.apply and etcd)
    CONF_CHANGE REMOVE        drop the member, remember its id as removed
    CONF_CHANGE UPDATE        a member's new peer URLs (MemberUpdate); unknown id: no change
    InternalRaftRequest.cluster_member_attr_set
                              a started member publishes its name and client URLs

A conf change's context is msgpack `[name, [peer_url, ...]]` (actors/raft/bootstrap),
or `[name, [peer_url, ...], request_id]` when a client asked for the change (the
network actor's MemberAdd/Remove/Update/Promote): the member that proposed it answers
the client once it is applied. An empty context adds a member with no name and no
URLs, as a member added before it has published anything.

The apply actor stores the encoded table in the store's `conf_state` blob in the same
LMDB transaction as the entry that changed it, so it survives restarts and travels
inside snapshots. Other processes read it with `read_member_table(store)` (the network
actor answers MemberList from it).

Encoding (msgpack, deterministic: members sorted by id, removed ids sorted):

    [1, [[id, name, [peer_url...], [client_url...], is_learner], ...], [removed_id...]]

Example: one voter 0x8e9e05c52164694d named "default" with peer URL
http://localhost:2380 and no client URLs, nothing removed:

    [1, [[10276657743932975437, "default", ["http://localhost:2380"], [], false]], []]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import msgpack

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.raftstate import ConfChange, ConfChangeType, ConfState

FORMAT_VERSION = 1


class MemberTableError(ValueError):
    """Bytes that do not hold an encoded member table."""


@dataclass(frozen=True, slots=True)
class Member:
    member_id: int  # > 0
    name: str  # "" until the member publishes it (or from the conf change context)
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]  # () until the member publishes them
    is_learner: bool = False

    def __post_init__(self) -> None:
        assert self.member_id > 0, self

    def to_pb(self) -> pb.Member:
        """etcd's etcdserverpb.Member, as MemberList answers it."""
        return pb.Member(ID=self.member_id, name=self.name, peerURLs=list(self.peer_urls),
                         clientURLs=list(self.client_urls), isLearner=self.is_learner)


@dataclass(frozen=True, slots=True)
class MemberTable:
    """Immutable: every change returns a new table."""

    members: tuple[Member, ...] = ()  # sorted by member_id, ids unique
    removed: frozenset[int] = frozenset()  # invariant: disjoint from the members' ids

    def __post_init__(self) -> None:
        ids = [m.member_id for m in self.members]
        assert ids == sorted(set(ids)), "members sorted by id, each once"
        assert not self.removed.intersection(ids), "a member is present or removed"

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def get(self, member_id: int) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    def is_removed(self, member_id: int) -> bool:
        return member_id in self.removed

    def conf_state(self) -> ConfState:
        """The Raft configuration this table describes."""
        return ConfState(frozenset(m.member_id for m in self.members if not m.is_learner),
                         frozenset(m.member_id for m in self.members if m.is_learner))

    # -- changes ---------------------------------------------------------------------

    def _with(self, members: Iterable[Member], removed: frozenset[int]) -> MemberTable:
        return MemberTable(tuple(sorted(members, key=lambda m: m.member_id)), removed)

    def _others(self, member_id: int) -> list[Member]:
        return [m for m in self.members if m.member_id != member_id]

    def apply_conf_change(self, cc: ConfChange) -> MemberTable:
        """The table after a committed conf change (mirrors ConfState.apply)."""
        current = self.get(cc.node_id)
        if cc.type == ConfChangeType.REMOVE:
            if current is None:
                return self
            return self._with(self._others(cc.node_id), self.removed | {cc.node_id})
        if cc.type == ConfChangeType.UPDATE:
            if current is None:
                return self
            moved = replace(current, peer_urls=decode_context(cc.context).peer_urls)
            return self._with([*self._others(cc.node_id), moved], self.removed)
        if current is not None:
            if cc.type == ConfChangeType.ADD_VOTER and current.is_learner:
                promoted = replace(current, is_learner=False)
                return self._with([*self._others(cc.node_id), promoted], self.removed)
            return self  # re-adding a member, or demoting a voter: no change
        context = decode_context(cc.context)
        added = Member(cc.node_id, context.name, context.peer_urls, (),
                       is_learner=cc.type == ConfChangeType.ADD_LEARNER)
        # Raft applied the change whatever the table said, so the table follows it even
        # for an id once removed (the network actor refuses such a MemberAdd upfront).
        return self._with([*self.members, added], self.removed - {cc.node_id})

    def set_attributes(self, member_id: int, name: str, client_urls: Sequence[str]
                       ) -> MemberTable | None:
        """etcd's UpdateAttributes: None if the member is not in the table."""
        current = self.get(member_id)
        if current is None:
            return None
        updated = replace(current, name=name, client_urls=tuple(client_urls))
        return self._with([*self._others(member_id), updated], self.removed)


# -- conf change context --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChangeContext:
    name: str = ""
    peer_urls: tuple[str, ...] = ()
    request_id: int = 0  # the client request to answer once applied; 0: none


def encode_context(name: str, peer_urls: Sequence[str], request_id: int = 0) -> bytes:
    """What a conf change carries: msgpack [name, [peer_url...]] (+ request_id)."""
    fields: list[Any] = [name, list(peer_urls)]
    if request_id:
        fields.append(request_id)
    data: bytes = msgpack.packb(fields, use_bin_type=True)
    return data


def decode_context(context: bytes) -> ChangeContext:
    """The context of a conf change; the empty one for empty bytes."""
    if not context:
        return ChangeContext()
    try:
        name, peer_urls, *rest = msgpack.unpackb(context, raw=False)
        request_id = rest[0] if rest else 0
        if (not isinstance(name, str) or not all(isinstance(u, str) for u in peer_urls)
                or type(request_id) is not int or len(rest) > 1):
            raise TypeError("name and peer URLs must be strings, the request id an int")
        return ChangeContext(name, tuple(peer_urls), request_id)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as err:
        raise MemberTableError(f"malformed conf change context: {err!r}") from err


# -- the stored blob ----------------------------------------------------------------

def encode(table: MemberTable) -> bytes:
    data: bytes = msgpack.packb(
        [FORMAT_VERSION,
         [[m.member_id, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner]
          for m in table.members],
         sorted(table.removed)],
        use_bin_type=True)
    return data


def _member_from(obj: Any) -> Member:
    member_id, name, peer_urls, client_urls, is_learner = obj
    if not isinstance(name, str) or not isinstance(is_learner, bool):
        raise TypeError(f"bad member fields {obj!r}")
    return Member(int(member_id), name, tuple(peer_urls), tuple(client_urls), is_learner)


def decode(data: bytes | None) -> MemberTable:
    """The table in a conf_state blob; the empty table for None (nothing applied yet)."""
    if data is None:
        return MemberTable()
    try:
        version, members, removed = msgpack.unpackb(data, raw=False)
        if version != FORMAT_VERSION:
            raise ValueError(f"member table format {version!r}, this build reads "
                             f"{FORMAT_VERSION}")
        return MemberTable(tuple(_member_from(m) for m in members),
                           frozenset(int(i) for i in removed))
    except (ValueError, TypeError, AssertionError,
            msgpack.exceptions.UnpackException) as err:
        raise MemberTableError(f"malformed member table: {err!r}") from err


class _ConfStateReader(Protocol):
    def conf_state(self) -> bytes | None: ...


def read_member_table(store: _ConfStateReader) -> MemberTable:
    """The table as last applied, from an MvccStore (read-only or not)."""
    return decode(store.conf_state())
