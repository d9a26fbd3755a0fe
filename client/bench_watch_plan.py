"""Who watches what in `petcd-bench watch`, and which watches each put should reach: pure.

Watch i sits on stream i mod S; stream s talks to watch endpoint s mod E, and the
streams are split over the worker processes in contiguous runs. Keys are those of
bench_plan (`--key-prefix` + a number of `--key-size` digits):

    distinct keys   watch i watches key i alone; put n writes key n mod K (K is
                    --key-space, the watches by default), so it reaches watch n mod K
                    if there is one: 1 event per put when K = W
    --same-prefix   every watch watches the whole --key-prefix; put n writes key
                    n mod K under it and reaches all W watches (fan-out)

With `--watches 10 --streams 4`, stream 1 carries watches 1, 5 and 9.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .bench_plan import Plan, prefix_end


@dataclass(frozen=True, slots=True)
class WatchPlan:
    puts: Plan  # the writer's keys and value; key_space = K
    watches: int  # W, 0: the writer alone
    streams: int  # S, each carrying the watches i with i mod S = its number
    same_prefix: bool = False

    def __post_init__(self) -> None:
        if self.watches < 0:
            raise ValueError("--watches must be >= 0")
        if self.watches and not 1 <= self.streams <= self.watches:
            raise ValueError("--streams must be 1..--watches")
        if self.same_prefix and not self.puts.key_prefix:
            raise ValueError("--same-prefix needs a --key-prefix to watch")
        if not self.same_prefix and self.puts.key_space < self.watches:
            raise ValueError("--key-space must be >= --watches: watch i watches key i")

    def watch_range(self, watch: int) -> tuple[bytes, bytes]:
        """(key, range_end) of watch i's create request; range_end b"": the key alone."""
        assert 0 <= watch < self.watches
        if self.same_prefix:
            return self.puts.key_prefix, prefix_end(self.puts.key_prefix)
        return self.puts.key(watch), b""

    def put_key(self, put: int) -> bytes:
        return self.puts.key(put)

    def reaches(self, put: int, watch: int) -> bool:
        """Whether put n's event belongs on watch i."""
        return self.same_prefix or put % self.puts.key_space == watch

    def matches(self, put: int) -> int:
        """How many watches put n should reach (events it owes)."""
        if self.same_prefix:
            return self.watches
        return 1 if put % self.puts.key_space < self.watches else 0

    def stream_watches(self, stream: int) -> range:
        assert 0 <= stream < self.streams
        return range(stream, self.watches, self.streams)

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

    def watches_by_endpoint(self, endpoints: tuple[str, ...]) -> Counter[str]:
        """How many watches each endpoint holds (stream s goes to endpoint s mod E)."""
        out: Counter[str] = Counter()
        for stream in range(self.streams if self.watches else 0):
            out[endpoints[stream % len(endpoints)]] += len(self.stream_watches(stream))
        return out
