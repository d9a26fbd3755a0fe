"""Which events `petcd-bench watch` was owed and which arrived, and how late: pure.

The writer records each acknowledged put's number, revision and acknowledgement time;
the watchers record each event's watch, revision and arrival time (time.monotonic,
one clock for every process on a Linux machine). An event is owed for every
acknowledged put on every watch the put reaches (bench_watch_plan). Each owed event is
delivered, or missing; an event seen twice on one watch is a duplicate; an event with
no acknowledged put behind it on that watch (a put that timed out, another client's
write, a wrong watch) is unexpected. Latency runs from the put's acknowledgement to the
event's arrival: an event may beat the acknowledgement to the client (the member sends
both at once), and then its latency is 0, not negative.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .bench_watch_plan import WatchPlan


@dataclass(slots=True)
class Puts:
    """The writer's acknowledged puts, in the order their acknowledgements arrived."""
    numbers: array = field(default_factory=lambda: array("q"))
    revisions: array = field(default_factory=lambda: array("q"))
    acked_s: array = field(default_factory=lambda: array("d"))  # time.monotonic()

    def add(self, number: int, revision: int, acked_s: float) -> None:
        self.numbers.append(number)
        self.revisions.append(revision)
        self.acked_s.append(acked_s)


@dataclass(slots=True)
class Events:
    """Events as they arrived at one worker (or several, joined)."""
    watches: array = field(default_factory=lambda: array("q"))
    revisions: array = field(default_factory=lambda: array("q"))
    received_s: array = field(default_factory=lambda: array("d"))  # time.monotonic()

    def add(self, watch: int, revision: int, received_s: float) -> None:
        self.watches.append(watch)
        self.revisions.append(revision)
        self.received_s.append(received_s)

    def extend(self, other: Events) -> None:
        self.watches.extend(other.watches)
        self.revisions.extend(other.revisions)
        self.received_s.extend(other.received_s)

    def __len__(self) -> int:
        return len(self.revisions)


@dataclass(frozen=True, slots=True)
class Delivery:
    expected: int
    delivered: int  # distinct owed events that arrived
    duplicate: int
    unexpected: int
    latencies_s: tuple[float, ...]  # one per delivered event, sorted, never negative
    early: int  # delivered events that arrived before their put's acknowledgement
    last_received_s: float  # time.monotonic() of the last event, 0.0 if none

    @property
    def missing(self) -> int:
        return self.expected - self.delivered


def deliver(plan: WatchPlan, puts: Puts, events: Events) -> Delivery:
    put_at = {rev: (n, acked) for n, rev, acked in zip(puts.numbers, puts.revisions,
                                                       puts.acked_s)}
    assert len(put_at) == len(puts.revisions), "two acknowledged puts share a revision"
    seen: set[tuple[int, int]] = set()
    latencies: list[float] = []
    duplicate = unexpected = early = 0
    for watch, rev, received in zip(events.watches, events.revisions, events.received_s):
        put = put_at.get(rev)
        if put is None or not plan.reaches(put[0], watch):
            unexpected += 1
        elif (watch, rev) in seen:
            duplicate += 1
        else:
            seen.add((watch, rev))
            early += received < put[1]
            latencies.append(max(0.0, received - put[1]))
    expected = sum(plan.matches(n) for n in puts.numbers)
    assert len(seen) <= expected, "a delivered event that was not owed"
    return Delivery(expected, len(seen), duplicate, unexpected, tuple(sorted(latencies)),
                    early, max(events.received_s, default=0.0))


def percentile_ms(sorted_s: tuple[float, ...] | list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted seconds, in ms, as petcd-bench's summaries take it."""
    if not sorted_s:
        return 0.0
    return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000
