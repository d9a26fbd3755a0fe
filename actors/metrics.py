"""Each actor's Prometheus metrics, and how they reach the network actor's /metrics.

Every actor process keeps its own prometheus_client registry: what it alone can
measure (the WAL actor its fdatasyncs, the apply actor its store commits, the raft
actor leader changes and tick lateness) plus its process_* figures and what the
skeleton counts for every actor (messages handled, batch sizes). Once a second
(EXPORT_EVERY_S) the skeleton sends the registry's current samples to the network
actor (Kind.METRICS), without waiting: a lost export is replaced by the next one, and
nothing on the write path waits for it. The network actor keeps the latest export of
each actor and serves them with its own (actors/network/metrics.py).

Names and labels are etcd's where etcd has the metric, so that etcd's Grafana
dashboard and alerts work unchanged; petcd's own figures are prefixed petcd_.
Families of petcd's own and process_* ones get an `actor` label: one series per
process of the member. etcd's come from one actor each and keep etcd's labels.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Histogram, ProcessCollector,
                               disable_created_metrics)
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

# Go's client (etcd's) writes no <name>_created samples; neither do we.
disable_created_metrics()  # type: ignore[no-untyped-call]

EXPORT_EVERY_S = 1.0
# etcd's buckets for disk latencies (wal fsync, backend commit): 1 ms to 8 s, doubling.
DISK_BUCKETS_S = tuple(0.001 * 2**i for i in range(14))
# etcd's etcd_network_peer_round_trip_time_seconds buckets: 0.1 ms to 0.8 s.
RTT_BUCKETS_S = tuple(0.0001 * 2**i for i in range(14))
ACTOR_LABEL = "actor"
LABELLED_PREFIXES = ("process_", "petcd_")  # one series per actor


class ActorMetrics:
    """One actor's registry, with what the skeleton measures of every actor."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.messages = Counter(
            "petcd_actor_messages", "Messages an actor took from its inbox.",
            registry=self.registry)
        self.batches = Histogram(
            "petcd_actor_batch_messages", "Messages an actor took from its inbox at once "
            "(how far behind it was).", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry)
        self.exported_at = 0.0

    def counted(self, batch_size: int) -> None:
        if batch_size:
            self.messages.inc(batch_size)
            self.batches.observe(batch_size)

    def due(self, now: float) -> bool:
        return now - self.exported_at >= EXPORT_EVERY_S

    def export(self, now: float) -> list[Any]:
        """The registry's samples now, for Kind.METRICS (families_to_wire)."""
        self.exported_at = now
        return [self.actor, families_to_wire(self.registry.collect())]


def families_to_wire(families: Any) -> list[Any]:
    """[[name, type, documentation, [[sample name, labels, value], ...]], ...]"""
    return [[f.name, f.type, f.documentation,
             [[s.name, s.labels, s.value] for s in f.samples]] for f in families]


def families_from_wire(wire: Any, actor: str) -> list[Metric]:
    """An actor's export as prometheus_client families; all but etcd's labelled with
    the actor they describe."""
    families = []
    for name, kind, documentation, samples in wire:
        family = Metric(str(name), str(documentation), str(kind))
        labelled = str(name).startswith(LABELLED_PREFIXES)
        for sample_name, labels, value in samples:
            labels = {str(k): str(v) for k, v in labels.items()}
            if labelled:
                labels[ACTOR_LABEL] = actor
            family.samples.append(Sample(str(sample_name), labels, float(value)))
        families.append(family)
    return families
