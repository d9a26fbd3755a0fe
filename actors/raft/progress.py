"""What a leader knows about each follower's log, and how fast it may send to it.

A follower's progress is in one of three states (etcd raft's tracker):
- PROBE: the leader does not know where the follower's log matches; it sends one
  append at a time and waits for the answer (or a heartbeat response) before the next.
- REPLICATE: the logs match up to `match`; appends stream optimistically, at most
  `max_inflight` of them unacknowledged.
- SNAPSHOT: the follower needs entries the leader compacted away; a snapshot is on its
  way and nothing else is sent until the transport reports the outcome.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """The last index of each unacknowledged append, oldest first; bounded."""

    __slots__ = ("capacity", "_last_indexes")

    def __init__(self, capacity: int) -> None:
        assert capacity > 0
        self.capacity = capacity
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def full(self) -> bool:
        return len(self._last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        assert not self.full(), "inflight window overflow"
        assert not self._last_indexes or last_index >= self._last_indexes[-1]
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Acknowledge every append whose last entry is <= index."""
        q = self._last_indexes
        while q and q[0] <= index:
            q.popleft()

    def free_first(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()


class Progress:
    """Invariant: match < next; in SNAPSHOT state, pending_snapshot > 0."""

    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot",
                 "recent_active", "is_learner", "inflights", "commit")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False  # PROBE: an append is out, wait before sending another
        self.pending_snapshot = 0
        self.recent_active = False  # heard from since the last check-quorum round
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight)
        self.commit = 0  # the follower's commit index, as it last reported it

    def __repr__(self) -> str:
        return (f"Progress({self.state.name} match={self.match} next={self.next} "
                f"inflight={len(self.inflights)} paused={self.is_paused()})")

    def become_probe(self) -> None:
        # After a snapshot the follower has at least the snapshot's entries.
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._set(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._set(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        assert snapshot_index > 0
        self._set(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def _set(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def maybe_update(self, index: int) -> bool:
        """The follower has everything up to `index`; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        assert self.match < self.next
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append after `rejected`; False if the rejection is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1  # go back to the last known match and probe
            return True
        if self.next - 1 != rejected:
            return False  # an answer to an older probe
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, count: int, last_index: int) -> None:
        """An append carrying `count` entries up to `last_index` just left."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True
