"""The leases' deadlines: etcd's lessor, the half that lives in memory.

Which leases exist (and their granted TTL, and the remaining TTL last checkpointed) is
state machine state: the store applies grants, revokes and checkpoints through Raft
(storage/mvcc) and the apply actor reports each grant and revoke with APPLIED. Every
member's lessor follows that table; only the leader's is *primary*: it alone holds
deadlines, renews leases on keep-alives (no Raft entry), finds the expired ones and
the checkpoints due. Pure: the clock is injected, nothing is proposed from here
(actors/network/leasing.py does that).

    promote(extend_s)   this member became leader: every lease gets its remaining TTL
                        (the last checkpoint's, less the time since it was applied here,
                        else the full TTL), and a grace of `extend_s` (an election
                        timeout) on top, so no lease expires because of the election
    demote()            no longer leader: no deadline, nothing expires here
    renew(id)           a keep-alive: the full TTL again from now, no grace

The grace is not part of what is checkpointed (unlike etcd's Remaining): a lease
handed through many elections keeps its own deadline and gets one grace at most,
instead of one per election (etcd issue 9888).

Times are seconds on the injected monotonic clock. TTLs are whole seconds, as etcd's;
checkpoints are milliseconds (storage/mvcc/lease_requests.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NEVER = math.inf


@dataclass(slots=True)
class Lease:
    lease_id: int
    ttl_s: int  # as granted (already raised to the minimum by the store)
    remaining_ms: int  # the last checkpoint; 0: never checkpointed (the full TTL)
    checkpointed_at: float  # when that checkpoint was applied here
    expiry: float = NEVER  # its own deadline, on the clock; NEVER unless primary
    grace_s: float = 0.0  # a new leader's extension on top of `expiry`, until renewed
    checkpoint_at: float = NEVER  # when its remaining TTL is to be checkpointed next

    def __post_init__(self) -> None:
        # etcd lets a client choose any non-zero int64, negative ones included
        assert self.lease_id != 0 and self.ttl_s > 0 and self.remaining_ms >= 0, self

    @property
    def deadline(self) -> float:
        return self.expiry + self.grace_s


@dataclass(frozen=True, slots=True)
class Renewed:
    ttl_s: int
    clear_checkpoint: bool  # it had a checkpoint: it must be reset to the full TTL


class Lessor:
    def __init__(self, checkpoint_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert checkpoint_interval_s > 0
        self.checkpoint_interval_s = checkpoint_interval_s
        self.clock = clock
        self.leases: dict[int, Lease] = {}
        self.primary = False

    # -- the table, as applied ------------------------------------------------------

    def reset(self, table: Iterable[tuple[int, int, int]]) -> None:
        """The store's whole table (id, ttl s, remaining ms), read anew. A primary
        lessor keeps the deadlines it had; a lease it did not know starts now. The age
        of a checkpoint read from the store is unknown: taken as fresh."""
        old = self.leases
        self.leases = {}
        for lease_id, ttl_s, remaining_ms in table:
            known = old.get(lease_id)
            if known is not None:
                self.leases[lease_id] = known
            else:
                self.granted(lease_id, ttl_s)
                self.checkpointed(lease_id, remaining_ms)

    def granted(self, lease_id: int, ttl_s: int) -> None:
        lease = Lease(lease_id, ttl_s, 0, self.clock())
        if self.primary:
            self._start(lease, 0.0)
        self.leases[lease_id] = lease

    def revoked(self, lease_id: int) -> None:
        self.leases.pop(lease_id, None)

    def checkpointed(self, lease_id: int, remaining_ms: int) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.remaining_ms, lease.checkpointed_at = remaining_ms, self.clock()

    # -- leadership -----------------------------------------------------------------------

    def promote(self, extend_s: float) -> None:
        assert extend_s >= 0
        self.primary = True
        for lease in self.leases.values():
            self._start(lease, extend_s)

    def demote(self) -> None:
        self.primary = False
        for lease in self.leases.values():
            lease.expiry = lease.checkpoint_at = NEVER

    def _start(self, lease: Lease, grace_s: float) -> None:
        now = self.clock()
        if lease.remaining_ms:
            left_s = max(0.0, lease.remaining_ms / 1000 - (now - lease.checkpointed_at))
        else:
            left_s = float(lease.ttl_s)
        lease.expiry, lease.grace_s = now + left_s, grace_s
        # etcd's scheduleCheckpointIfNeeded: only a lease that outlives an interval
        lease.checkpoint_at = (now + self.checkpoint_interval_s
                               if left_s > self.checkpoint_interval_s else NEVER)

    # -- the primary's work -------------------------------------------------------------

    def renew(self, lease_id: int) -> Renewed | None:
        """A keep-alive; None if the lease is unknown or already expired (etcd then
        answers TTL 0 once the revoke went through)."""
        assert self.primary, "only the leader renews"
        lease = self.leases.get(lease_id)
        if lease is None or lease.deadline <= self.clock():
            return None
        clear = lease.remaining_ms > 0
        lease.remaining_ms = 0
        self._start(lease, 0.0)
        return Renewed(lease.ttl_s, clear)

    def time_left_s(self, lease_id: int) -> tuple[int, int] | None:
        """(granted TTL, seconds left, rounded up as etcd's Remaining) on the primary."""
        assert self.primary, "only the leader knows deadlines"
        lease = self.leases.get(lease_id)
        if lease is None:
            return None
        left = max(0.0, lease.deadline - self.clock())
        return lease.ttl_s, math.ceil(left)

    def expired(self, limit: int) -> list[int]:
        """Up to `limit` leases past their deadline, the most overdue first."""
        now = self.clock()
        due = sorted((lease.deadline, lease.lease_id) for lease in self.leases.values()
                     if lease.deadline <= now)
        return [lease_id for _, lease_id in due[:limit]]

    def postpone(self, lease_ids: Iterable[int], delay_s: float) -> None:
        """A revoke that did not go through: look again after `delay_s`."""
        now = self.clock()
        for lease_id in lease_ids:
            lease = self.leases.get(lease_id)
            if lease is not None:
                lease.grace_s = max(lease.grace_s, now + delay_s - lease.expiry)

    def due_checkpoints(self, limit: int) -> list[tuple[int, int]]:
        """(id, remaining ms) of up to `limit` leases whose checkpoint is due; each is
        scheduled again an interval later."""
        now = self.clock()
        out = []
        for lease in self.leases.values():
            if lease.checkpoint_at <= now and lease.expiry > now:
                out.append(self._checkpoint(lease, now))
                if len(out) == limit:
                    break
        return out

    def all_checkpoints(self) -> list[tuple[int, int]]:
        """(id, remaining ms) of every lease that has time left: what to checkpoint
        before handing leadership over."""
        now = self.clock()
        return [self._checkpoint(lease, now) for lease in self.leases.values()
                if lease.expiry > now]

    def _checkpoint(self, lease: Lease, now: float) -> tuple[int, int]:
        remaining_ms = max(1, int((lease.expiry - now) * 1000))
        lease.checkpoint_at = (now + self.checkpoint_interval_s
                               if lease.expiry - now > self.checkpoint_interval_s else NEVER)
        return lease.lease_id, remaining_ms
