"""Did the leader's heartbeats leave on time? etcd's timeoutDetector.

A leader sends each follower a heartbeat every heartbeat interval. When two heartbeats
to the same follower leave more than twice that apart, the raft loop was held up, and
the follower came that much closer to an election: etcd logs "leader failed to send
out heartbeat on time". In etcd the usual cause is a slow disk; here the raft actor
never touches the disk, so the cause is a starved CPU (or a stopped process).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .types import Message, MessageType

# etcd's message, kept word for word: operators grep their logs for it.
LATE_HEARTBEAT = ("leader failed to send out heartbeat on time; took too long, "
                  "leader is overloaded likely from slow disk")


@dataclass(frozen=True, slots=True)
class LateHeartbeat:
    to: int  # member id of the follower
    exceeded_s: float  # how much later than max_gap_s it left; > 0


@dataclass(slots=True)
class HeartbeatWatch:
    max_gap_s: float  # etcd: twice the heartbeat interval
    last_sent_s: dict[int, float] = field(default_factory=dict)  # by follower id

    def __post_init__(self) -> None:
        assert self.max_gap_s > 0

    def observe(self, messages: Iterable[Message], now_s: float) -> list[LateHeartbeat]:
        """Record the heartbeats among `messages`, sent at `now_s`; the late ones."""
        late: list[LateHeartbeat] = []
        for m in messages:
            if m.type != MessageType.HEARTBEAT:
                continue
            last = self.last_sent_s.get(m.dst)
            self.last_sent_s[m.dst] = now_s
            if last is not None and now_s - last > self.max_gap_s:
                late.append(LateHeartbeat(m.dst, now_s - last - self.max_gap_s))
        return late

    def reset(self) -> None:
        """Forget every follower: a new term or role starts the count again (etcd
        resets when the leadership changes)."""
        self.last_sent_s.clear()
