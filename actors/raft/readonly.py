"""ReadIndex bookkeeping on the leader (Raft thesis §6.4).

A read request records the commit index when it arrived; it is answered once a
heartbeat round started after it is acknowledged by a quorum, which proves this node
was still the leader when the read arrived. Requests are answered in arrival order:
a quorum for a later request confirms every earlier one too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field

from . import quorum


@dataclass(slots=True)
class ReadRequest:
    context: bytes
    src: int  # the node that asked (the leader itself or a follower)
    index: int  # the commit index when the request arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self, capacity: int) -> None:
        assert capacity > 0
        self.capacity = capacity
        self._queue: OrderedDict[bytes, ReadRequest] = OrderedDict()
        # Requests that arrived before this leader committed an entry of its term.
        self.waiting: list[tuple[bytes, int]] = []

    def __len__(self) -> int:
        return len(self._queue) + len(self.waiting)

    def clear(self) -> None:
        self._queue.clear()
        self.waiting.clear()

    def add(self, context: bytes, src: int, index: int, leader: int, waiting: bool) -> bool:
        """Queue a request; False if the queue is full (the request is dropped)."""
        if len(self) >= self.capacity:
            return False
        if waiting:
            self.waiting.append((context, src))
        elif context not in self._queue:
            self._queue[context] = ReadRequest(context, src, index, {leader})
        return True

    def release_waiting(self) -> list[tuple[bytes, int]]:
        released, self.waiting = self.waiting, []
        return released

    def last_context(self) -> bytes:
        return next(reversed(self._queue)) if self._queue else b""

    def ack(self, node: int, context: bytes, voters: Collection[int]) -> list[ReadRequest]:
        """A heartbeat carrying `context` was acknowledged by `node`; return the
        requests this confirms (all those queued up to and including `context`)."""
        req = self._queue.get(context)
        if req is None:
            return []
        req.acks.add(node)
        if not quorum.has_quorum(voters, req.acks):
            return []
        done = []
        while self._queue:
            ctx, r = self._queue.popitem(last=False)
            done.append(r)
            if ctx == context:
                break
        return done
