"""Which leases ride which keep-alive stream in `petcd-bench lease-*`, and when each is
renewed: pure.

Lease i (numbered by the tool, 0..N-1; the member picks its ID) rides stream i mod S;
stream s talks to endpoint s mod E, and the streams are split over the worker
processes in contiguous runs, as the watch streams are (bench_watch_plan). A lease is
renewed TTL/3 after its grant was answered, then TTL/3 after each keep-alive answer,
where TTL is the one the answer carries: clientv3's schedule (lease.go, sendKeepAlive
and recvKeepAlive). With --rate-max each stream instead keeps MAX_INFLIGHT_PER_STREAM
keep-alives in flight over its leases in turn, once every lease exists.

With `--leases 10 --streams 4`, stream 1 carries leases 1, 5 and 9.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_INFLIGHT_PER_STREAM = 16  # --rate-max: enough to keep a member busy, bounded


@dataclass(frozen=True, slots=True)
class LeasePlan:
    leases: int  # N
    streams: int  # S
    ttl_s: int  # granted TTL, whole seconds as etcd's API takes it
    rate_max: bool = False  # keep-alives as fast as the streams allow
    key_prefix: bytes = b""  # lease-expiry: lease i holds key prefix + i (8 digits)

    def __post_init__(self) -> None:
        if self.leases < 1:
            raise ValueError("--leases must be >= 1")
        if not 1 <= self.streams <= self.leases:
            raise ValueError("--streams must be 1..--leases")
        if self.ttl_s < 1:
            raise ValueError("--ttl must be >= 1 (seconds)")

    def stream_leases(self, stream: int) -> range:
        assert 0 <= stream < self.streams
        return range(stream, self.leases, self.streams)

    def stream_of(self, lease: int) -> int:
        assert 0 <= lease < self.leases
        return lease % self.streams

    def worker_streams(self, workers: int) -> list[range]:
        """The streams of each worker process: contiguous runs, sizes differing by one."""
        count = max(1, min(workers, self.streams))
        out, first = [], 0
        for w in range(count):
            size = self.streams // count + (1 if w < self.streams % count else 0)
            out.append(range(first, first + size))
            first += size
        assert first == self.streams
        return out

    def worker_leases(self, streams: range) -> list[int]:
        """A worker's leases in the order it grants them: lease number, so that its
        streams fill up side by side."""
        return [lease for lease in range(self.leases) if self.stream_of(lease) in streams]

    def key(self, lease: int) -> bytes:
        assert self.key_prefix, "only lease-expiry attaches keys"
        return self.key_prefix + b"%08d" % lease


def next_keepalive_s(answered_s: float, ttl_s: int) -> float:
    """When clientv3 renews a lease again: a third of the TTL it was answered with."""
    assert ttl_s > 0, "a lease answered with TTL <= 0 is gone: never renewed"
    return answered_s + ttl_s / 3

