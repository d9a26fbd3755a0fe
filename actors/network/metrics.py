"""/metrics: the member's Prometheus metrics, in etcd's names, from all four actors.

The raft, WAL and apply actors export their registries once a second
(actors/metrics.py, Kind.METRICS); the network actor keeps the latest of each and adds
its own: request counts and latencies (grpc_server_*, as etcd's go-grpc-prometheus
names them), proposals, the member's Raft state, the store's size and key count,
watches and leases, and its own process_* figures. A scrape renders them all in
Prometheus' text format; it never waits on another actor, and reads the store once
(sizes, KEYS_COUNT_EVERY_S for the key count).

etcd's metrics that need no counting anywhere are read at scrape time from what the
network actor already knows (RaftStatus, Applied): has_leader, is_leader,
proposals_committed/applied (gauges of indexes, as etcd's are), pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from petcd.actors.metrics import ActorMetrics, families_from_wire, families_to_wire
from petcd.actors.raft.types import Role

from .requests import Tracker

KEYS_COUNT_EVERY_S = 30.0  # counting every key walks the index: at most this often
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# etcd's go-grpc-prometheus buckets for grpc_server_handling_seconds (prometheus' defaults).
HANDLING_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
GRPC_TYPES = {(False, False): "unary", (True, False): "client_stream",
              (False, True): "server_stream", (True, True): "bidi_stream"}


class GrpcMetrics:
    """go-grpc-prometheus' server metrics, which etcd's dashboard and alerts query."""

    def __init__(self, registry: CollectorRegistry, extensive: bool) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started", "Total number of RPCs started on "
                               "the server.", labels, registry=registry)
        self.handled = Counter("grpc_server_handled", "Total number of RPCs completed on "
                               "the server, regardless of success or failure.",
                               [*labels, "grpc_code"], registry=registry)
        # As etcd's: with --metrics extensive only.
        self.seconds = Histogram("grpc_server_handling_seconds", "Histogram of response "
                                 "latency (seconds) of gRPC that had been application-level "
                                 "handled by the server.", labels, buckets=HANDLING_BUCKETS_S,
                                 registry=registry) if extensive else None

    def method(self, full_name: str, client_streaming: bool, server_streaming: bool
               ) -> GrpcMethod:
        """The counters of one method ("etcdserverpb.KV.Put"), labelled once."""
        service, _, name = full_name.rpartition(".")
        labels = (GRPC_TYPES[client_streaming, server_streaming], service, name)
        return GrpcMethod(self.started.labels(*labels),
                          None if self.seconds is None else self.seconds.labels(*labels),
                          {code: self.handled.labels(*labels, _go_name(code))
                           for code in grpc.StatusCode})


class GrpcMethod:
    """One method's grpc_server_* series: `begin` a call, `end` it with its status."""

    def __init__(self, started: Any, seconds: Any, handled: dict[grpc.StatusCode, Any]
                 ) -> None:
        self._started, self._seconds, self._handled = started, seconds, handled

    def begin(self) -> float:
        self._started.inc()
        return time.monotonic()

    def end(self, started_at: float, code: grpc.StatusCode) -> None:
        if self._seconds is not None:
            self._seconds.observe(time.monotonic() - started_at)
        self._handled[code].inc()


def _go_name(code: grpc.StatusCode) -> str:
    """grpc-go's codes.Code.String() ("InvalidArgument"), the grpc_code label etcd's
    dashboards and alerts match."""
    if code == grpc.StatusCode.OK:
        return "OK"
    if code == grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(word.capitalize() for word in code.name.split("_"))


class MemberMetrics:
    """Everything /metrics shows; `render` makes one scrape's text."""

    def __init__(self, tracker: Tracker, member_id: int, server_version: str,
                 quota_bytes: int, extensive: bool) -> None:
        self.tracker = tracker
        self.member_id = member_id
        self.server_version = server_version
        self.quota_bytes = quota_bytes
        self.own = ActorMetrics("network")  # process_* and inbox counts, exported below
        self.registry = CollectorRegistry(auto_describe=True)
        self.grpc = GrpcMetrics(self.registry, extensive)
        self.proposals_failed = Counter("etcd_server_proposals_failed", "The total number "
                                        "of failed proposals seen.", registry=self.registry)
        self.leases_granted = Counter("etcd_debugging_lease_granted", "The total number of "
                                      "granted leases.", registry=self.registry)
        self.leases_revoked = Counter("etcd_debugging_lease_revoked", "The total number of "
                                      "revoked leases.", registry=self.registry)
        self.leases_renewed = Counter("etcd_debugging_lease_renewed", "The number of "
                                      "renewed leases seen by the leader.",
                                      registry=self.registry)
        self.exports: dict[str, list[Metric]] = {}  # actor -> its latest families
        self.store: dict[str, float] = {}  # db sizes, key count: refreshed per scrape
        self.keys_counted_at = -KEYS_COUNT_EVERY_S
        self.watch_counts: Callable[[], tuple[int, int]] = lambda: (0, 0)  # streams, watchers
        self.registry.register(_Scraped(self))

    def on_export(self, payload: Any) -> None:
        """Kind.METRICS from another actor: its latest families replace the last."""
        actor, wire = payload
        self.exports[str(actor)] = families_from_wire(wire, str(actor))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def keys_due(self) -> bool:
        return time.monotonic() - self.keys_counted_at >= KEYS_COUNT_EVERY_S

    def set_store(self, db_size: int, in_use: int, keys: int | None) -> None:
        self.store.update(db=db_size, in_use=in_use)
        if keys is not None:
            self.store["keys"] = keys
            self.keys_counted_at = time.monotonic()


class _Scraped(Collector):
    """What is read at scrape time, and the other actors' exports."""

    def __init__(self, metrics: MemberMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._state()
        yield from _merged([*[families_from_wire(families_to_wire(
            self.m.own.registry.collect()), "network")], *self.m.exports.values()])

    def _state(self) -> Iterator[Metric]:
        m, st = self.m, self.m.tracker.status
        yield _gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is "
                     "existence, 0 is not.", int(st.has_leader))
        yield _gauge("etcd_server_is_leader", "Whether or not this member is a leader. "
                     "1 if is, 0 otherwise.", int(st.role == Role.LEADER))
        yield _gauge("etcd_server_is_learner", "Whether or not this member is a learner. "
                     "1 if is, 0 otherwise.", int(m.member_id in st.learners))
        yield _gauge("etcd_server_proposals_committed_total", "The total number of "
                     "consensus proposals committed.", st.commit)
        yield _gauge("etcd_server_proposals_applied_total", "The total number of "
                     "consensus proposals applied.", m.tracker.applied.index)
        yield _gauge("etcd_server_proposals_pending", "The current number of pending "
                     "proposals to commit.", len(m.tracker.proposals))
        yield _gauge("etcd_server_quota_backend_bytes", "Current backend storage quota "
                     "size in bytes.", m.quota_bytes)
        version = GaugeMetricFamily("etcd_server_version", "Which version is running. 1 "
                                    "for 'server_version' label with current version.",
                                    labels=["server_version"])
        version.add_metric([m.server_version], 1)
        yield version
        if "db" in m.store:
            yield _gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the "
                         "underlying database physically allocated in bytes.", m.store["db"])
            yield _gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the "
                         "underlying database logically in use in bytes.", m.store["in_use"])
        if "keys" in m.store:
            yield _gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.",
                         m.store["keys"])
        streams, watchers = m.watch_counts()
        yield _gauge("etcd_debugging_mvcc_watch_stream_total", "Total number of watch "
                     "streams.", streams)
        yield _gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                     watchers)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _merged(exports: list[list[Metric]]) -> Iterator[Metric]:
    """One family per name: each actor has its own process_* samples, told apart by
    their `actor` label, and the same petcd_actor_* families."""
    by_name: dict[str, Metric] = {}
    for families in exports:
        for family in families:
            kept = by_name.get(family.name)
            if kept is None:
                by_name[family.name] = kept = Metric(family.name, family.documentation,
                                                     family.type)
            kept.samples.extend(family.samples)
    yield from by_name.values()
