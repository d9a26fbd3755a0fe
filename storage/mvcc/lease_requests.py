"""etcd's lessor, the half that is state: LeaseGrant, LeaseRevoke, LeaseCheckpoint.

These come through Raft and are applied on every member alike (etcd's
applierV3backend.Lease*, server/etcdserver/apply/backend.go, over lessor.Grant,
Revoke and Checkpoint, server/lease/lessor.go). Deadlines, keep-alives and expiry
are the other half: in memory on the leader (the network actor), never here; an
expired lease comes back as a LeaseRevoke proposal.

What etcd does, and so does this module:

- Grant: ID 0 is "lease not found" (proposers choose an ID before Raft when the
  client gives 0, so only a bad entry has it; every member refuses it alike); a TTL
  above MAX_LEASE_TTL_S is "too large lease TTL"; an ID that exists is "lease
  already exists"; a TTL below the minimum - zero and negative ones too (etcd
  3.4 grants TTL 0 and -5 as 2 s) - is raised to it. etcd's minimum is
  ceil(1.5 x election timeout) in seconds, a member setting (StoreOptions). The
  answer carries the ID and the TTL granted, and the revision (unchanged). A client
  may choose a negative ID (etcd 3.4 grants ID -7); IDs servers choose are positive.
- Revoke: the attached keys are deleted in key order (etcd sorts them "so deletes
  are in same order among all members, otherwise the backend hashes will be
  different"), in one write transaction, hence one revision - none if the lease has
  no keys - and the lease is removed in the same transaction. An unknown ID is
  "requested lease not found".
- Checkpoint: sets the remaining TTL of each listed lease that exists, ignoring
  unknown ones. Unlike etcd's, petcd's checkpoints count milliseconds in
  remaining_TTL (a Raft entry between petcd members, never a client's): a leader
  checkpoints at every leadership transfer, and whole seconds would round every
  lease's life up or down by up to a second each time. etcd persists it only from cluster version 3.6 or with
  --experimental-enable-lease-checkpoint-persist (3.5); petcd always does (3.6's
  behaviour), so a leader elected after a restart starts the lease where it was.
  A renewal clears it: etcd's Renew proposes a checkpoint of remaining TTL 0 (not the
  full TTL) when the lease has a non-zero one (lessor.go Renew, 3.5.0 to 3.6),
  so at most two checkpoint entries per lease per checkpoint interval. 0 means
  "never checkpointed": the full TTL. Keep-alives themselves never reach the store.
- Alarms: a grant is refused under NOSPACE (etcd's applierV3Capped) and applied
  over quota with a NOSPACE answer (quotaApplierV3, cost 64 bytes); a revoke is
  always allowed under NOSPACE (it frees space); under CORRUPT grant and revoke are
  refused, a checkpoint is not (applierV3Corrupt overrides only the first two).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import errors, leases
from .errors import MvccError
from .keyindex import KeyRange
from .view import ReadView, WriteView

MAX_LEASE_TTL_S = 9_000_000_000  # etcd's lease.MaxLeaseTTL
DEFAULT_MIN_LEASE_TTL_S = 2  # etcd's with its default timing: ceil(1.5 x 1 s)


class LeaseChangeKind(enum.IntEnum):
    GRANTED = 1  # value: the TTL granted, seconds
    REVOKED = 2  # value: 0
    CHECKPOINTED = 3  # value: the remaining TTL checkpointed, milliseconds


@dataclass(frozen=True, slots=True)
class LeaseChange:
    """A lease granted, revoked or checkpointed, as the network actor's lessor learns
    of it (APPLIED, actors/protocol.py)."""

    kind: LeaseChangeKind
    lease_id: int
    value: int

    def __post_init__(self) -> None:
        assert self.lease_id != leases.NO_LEASE and self.value >= 0, self
        assert self.kind != LeaseChangeKind.GRANTED or self.value > 0, self


def lease_changes_to_wire(changes: Iterable[LeaseChange]) -> list[list[int]]:
    """[[kind, lease_id, value], ...] for the APPLIED message."""
    return [[int(c.kind), c.lease_id, c.value] for c in changes]


def lease_changes_from_wire(obj: Iterable[Any]) -> list[LeaseChange]:
    return [LeaseChange(LeaseChangeKind(kind), int(lease_id), int(value))
            for kind, lease_id, value in obj]


def grant(view: ReadView, r: pb.LeaseGrantRequest, min_ttl_s: int,
          changed: list[LeaseChange]) -> pb.LeaseGrantResponse:
    assert min_ttl_s > 0, min_ttl_s
    if r.ID == leases.NO_LEASE:
        raise MvccError(errors.LEASE_NOT_FOUND)
    if r.TTL > MAX_LEASE_TTL_S:
        raise MvccError(errors.LEASE_TTL_TOO_LARGE)
    if leases.exists(view.txn, view.dbs, r.ID):
        raise MvccError(errors.LEASE_EXISTS)
    granted = leases.Lease(r.ID, max(r.TTL, min_ttl_s), 0)
    leases.put(view.txn, view.dbs, granted)
    changed.append(LeaseChange(LeaseChangeKind.GRANTED, granted.lease_id, granted.ttl_s))
    resp = pb.LeaseGrantResponse(ID=granted.lease_id, TTL=granted.ttl_s)
    resp.header.revision = view.rev
    return resp


def revoke(view: WriteView, r: pb.LeaseRevokeRequest,
           changed: list[LeaseChange]) -> pb.LeaseRevokeResponse:
    """Delete the lease's keys (one revision, recorded in view.written) and the lease;
    the caller finishes the view."""
    if not leases.exists(view.txn, view.dbs, r.ID):
        raise MvccError(errors.LEASE_NOT_FOUND)
    for key in leases.keys(view.txn, view.dbs, r.ID):  # sorted: same sub revisions everywhere
        deleted, _ = view.delete_range(KeyRange(key, None))
        assert deleted == 1, f"lease {r.ID} held {key!r}, which is not live"
    leases.delete(view.txn, view.dbs, r.ID)
    changed.append(LeaseChange(LeaseChangeKind.REVOKED, r.ID, 0))
    resp = pb.LeaseRevokeResponse()
    resp.header.revision = view.rev
    return resp


def checkpoint(view: ReadView, r: pb.LeaseCheckpointRequest,
               changed: list[LeaseChange]) -> pb.LeaseCheckpointResponse:
    """remaining_TTL is in milliseconds in petcd's checkpoints (see the docstring)."""
    for c in r.checkpoints:
        lease = leases.get(view.txn, view.dbs, c.ID) if c.ID != leases.NO_LEASE else None
        if lease is not None and c.remaining_TTL >= 0:  # not revoked since it was sent
            leases.put(view.txn, view.dbs, lease._replace(remaining_ms=c.remaining_TTL))
            changed.append(LeaseChange(LeaseChangeKind.CHECKPOINTED, c.ID, c.remaining_TTL))
    resp = pb.LeaseCheckpointResponse()
    resp.header.revision = view.rev
    return resp
