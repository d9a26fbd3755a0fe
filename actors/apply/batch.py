"""From committed Raft entries to one store batch, and from its results to responses.

Pure: no sockets, no files. The actor calls `plan_batch` with the entries of one
drained inbox batch, hands `plan.store_entries` to `MvccStore.apply_batch` (one LMDB
transaction), then `responses(plan, results, ...)` for what goes back to the network
actor. Kept apart from the actor so the mapping is testable without processes.

What each committed entry becomes (entries at or below the store's applied index are
dropped here: replay after a crash applies nothing twice):

    NORMAL, empty data             ApplyEntry(request=None): a Raft no-op, index only
    NORMAL, InternalRaftRequest    put, range, delete_range, txn, compaction, alarm,
                                   lease_grant, lease_revoke, lease_checkpoint:
                                   the store applies it
                                   auth_* and authenticate: the store applies
                                   them too (storage/mvcc/auth_requests.py)
                                   cluster_member_attr_set: the member table changes,
                                   stored with the entry (ApplyEntry.conf_state)
                                   anything else (downgrade, ...): not implemented
                                   yet; index only, the proposer gets UNIMPLEMENTED
    NORMAL, undecodable data       index only, logged (every member skips it alike)
    CONF_CHANGE                    the member table changes, stored with the entry;
                                   a client's change (request id in the context) is
                                   answered with the table after it (members.encode)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from petcd.actors.protocol import member_id_prefix, request_id_owner
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.storage.mvcc import ApplyEntry, MvccError, auth_requests
from petcd.storage.raftstate import ConfChange, Entry, EntryType

from . import members
from .members import MemberTable, MemberTableError

# InternalRaftRequest fields MvccStore.apply_batch applies (its _HANDLED_FIELDS).
STORE_FIELDS = frozenset({"range", "put", "delete_range", "txn", "compaction", "alarm",
                          "lease_grant", "lease_revoke", "lease_checkpoint",
                          *auth_requests.FIELDS})
MEMBER_ATTR_FIELD = "cluster_member_attr_set"
_NOT_REQUESTS = frozenset({"header", "ID"})
UNIMPLEMENTED = "UNIMPLEMENTED"  # grpc.StatusCode name


class LogGapError(Exception):
    """Committed entries that do not follow the applied index: a bug upstream."""


class Handling(enum.Enum):
    STORE = "store"  # the response is the store's result
    MEMBER_ATTR = "member_attr"  # an empty success once applied
    CONF_CHANGE = "conf_change"  # the member table after the change (members.encode)
    UNSUPPORTED = "unsupported"  # refused with UNIMPLEMENTED


@dataclass(frozen=True, slots=True)
class Pending:
    """A request of this member's, waiting for its result at `position`."""

    position: int  # in Plan.store_entries
    request_id: int
    term: int
    handling: Handling
    what: str  # the request field, for messages


@dataclass(slots=True)
class Plan:
    store_entries: list[ApplyEntry] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    table: MemberTable = field(default_factory=MemberTable)  # after the batch
    # (log level, event, fields) to log once the batch is applied
    notes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def last_index(self) -> int | None:
        return self.store_entries[-1].index if self.store_entries else None


def _request_id(request: rpb.InternalRaftRequest) -> int:
    return request.header.ID or request.ID


def _request_field(request: rpb.InternalRaftRequest) -> str | None:
    names = [f.name for f, _ in request.ListFields() if f.name not in _NOT_REQUESTS]
    return names[0] if names else None


def plan_batch(entries: Sequence[Entry], applied_index: int, table: MemberTable,
               member_id: int) -> Plan:
    """What to apply for `entries` (log order) on a store applied up to `applied_index`."""
    plan = Plan(table=table)
    prefix = member_id_prefix(member_id)
    expected = applied_index + 1
    for entry in entries:
        if entry.index < expected:
            continue  # already applied (replay), or repeated within the batch
        if entry.index != expected:
            raise LogGapError(f"entry {entry.index} committed after {expected - 1}: "
                              "entries in between are missing")
        expected += 1
        if entry.type == EntryType.CONF_CHANGE:
            _plan_conf_change(plan, entry, prefix)
        elif not entry.data:
            plan.store_entries.append(ApplyEntry(entry.index, entry.term, None))
        else:
            _plan_request(plan, entry, prefix)
    return plan


def _plan_conf_change(plan: Plan, entry: Entry, prefix: int) -> None:
    cc = ConfChange.decode(entry.data)
    try:
        table = plan.table.apply_conf_change(cc)
        request_id = members.decode_context(cc.context).request_id
        if request_id and request_id_owner(request_id) == prefix:
            plan.pending.append(Pending(len(plan.store_entries), request_id, entry.term,
                                        Handling.CONF_CHANGE, cc.type.name))
    except MemberTableError as err:
        # Raft applied the change regardless; keep the member, without name or URLs.
        plan.notes.append(("warning", "conf change context unreadable",
                           {"index": entry.index, "error": str(err)}))
        table = plan.table.apply_conf_change(ConfChange(cc.type, cc.node_id))
    plan.notes.append(("info", "conf change applied",
                       {"index": entry.index, "change": cc.type.name,
                        "target_member": f"{cc.node_id:x}"}))
    plan.table = table
    plan.store_entries.append(
        ApplyEntry(entry.index, entry.term, None, conf_state=members.encode(table)))


def _plan_request(plan: Plan, entry: Entry, prefix: int) -> None:
    request = rpb.InternalRaftRequest()
    try:
        request.ParseFromString(entry.data)
    except DecodeError as err:
        plan.notes.append(("error", "entry is not an InternalRaftRequest; skipped",
                           {"index": entry.index, "error": str(err)}))
        plan.store_entries.append(ApplyEntry(entry.index, entry.term, None))
        return
    what = _request_field(request) or "empty"
    conf_state = None
    if what in STORE_FIELDS:
        handling = Handling.STORE
    elif what == MEMBER_ATTR_FIELD:
        handling = Handling.MEMBER_ATTR
        conf_state = _plan_member_attr(plan, entry, request.cluster_member_attr_set)
    else:
        handling = Handling.UNSUPPORTED
    position = len(plan.store_entries)
    plan.store_entries.append(ApplyEntry(
        entry.index, entry.term, request if handling is Handling.STORE else None, conf_state))
    request_id = _request_id(request)
    if request_id and request_id_owner(request_id) == prefix:
        plan.pending.append(Pending(position, request_id, entry.term, handling, what))


def _plan_member_attr(plan: Plan, entry: Entry, r: Any) -> bytes | None:
    attrs = r.member_attributes
    table = plan.table.set_attributes(r.member_ID, attrs.name, list(attrs.client_urls))
    if table is None:
        plan.notes.append(("warning", "attributes of an unknown member ignored",
                           {"index": entry.index, "target_member": f"{r.member_ID:x}"}))
        return None
    plan.notes.append(("info", "member attributes published",
                       {"index": entry.index, "target_member": f"{r.member_ID:x}",
                        "name": attrs.name, "client_urls": list(attrs.client_urls)}))
    plan.table = table
    return members.encode(table)


def responses(plan: Plan, results: Sequence[Any], cluster_id: int,
              member_id: int) -> list[list[Any]]:
    """RESPONSES payload for this member's requests: [[id, ok, body], ...]."""
    assert len(results) == len(plan.store_entries), "one result per store entry"
    out: list[list[Any]] = []
    for p in plan.pending:
        result = results[p.position]
        if isinstance(result, MvccError):
            out.append([p.request_id, False, [result.code, result.message]])
        elif p.handling is Handling.UNSUPPORTED:
            out.append([p.request_id, False,
                        [UNIMPLEMENTED, f"petcd: {p.what} is not supported yet"]])
        elif p.handling is Handling.CONF_CHANGE:
            out.append([p.request_id, True, plan.store_entries[p.position].conf_state])
        elif p.handling is Handling.MEMBER_ATTR or result is None:
            out.append([p.request_id, True, b""])
        else:
            header = result.header
            header.cluster_id = cluster_id
            header.member_id = member_id
            header.raft_term = p.term
            out.append([p.request_id, True, result.SerializeToString()])
    return out
