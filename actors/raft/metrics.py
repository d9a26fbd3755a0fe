"""What the raft actor measures for /metrics (actors/metrics.py ships them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from petcd.actors.metrics import RTT_BUCKETS_S

from .heartbeats import HeartbeatWatch
from .types import Message, MessageType

# A tick is due every heartbeat interval (100 ms by default); late by more than the
# interval means a heartbeat was late too.
TICK_LATENESS_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class RaftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader_changes = Counter(
            "etcd_server_leader_changes_seen", "The number of leader changes seen.",
            registry=registry)
        self.peer_rtt = Histogram(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers (a leader's heartbeat to its "
            "answer).", ["To"], buckets=RTT_BUCKETS_S, registry=registry)
        self.tick_lateness = Histogram(
            "petcd_raft_tick_lateness_seconds",
            "How late the raft actor's ticks came after they were due.",
            buckets=TICK_LATENESS_BUCKETS_S, registry=registry)

    def heard(self, m: Message, heartbeats: HeartbeatWatch, now_s: float) -> None:
        """A heartbeat's answer times the round trip to that member."""
        if m.type == MessageType.HEARTBEAT_RESP:
            sent_s = heartbeats.last_sent_s.get(m.src)
            if sent_s is not None:
                self.peer_rtt.labels(f"{m.src:x}").observe(now_s - sent_s)
