"""Whether `petcd-bench lock`'s holders excluded each other, and how fast the lock
passed between them: pure, from each hold as its contender recorded it.

Times are time.monotonic(), one clock for every process on a Linux machine. A hold
runs from the Lock answer's arrival (acquired) to the Unlock being sent (released);
its fencing revision is the create revision of the holder's key, read with a Range
right after Lock. With exclusion kept, ordered by acquisition:

    fencing revisions strictly increase   (each holder's key is created after the last
                                           holder's was deleted)
    each hold begins after every earlier one was released   (by the client's clock:
                                           the member answers the next Lock only after
                                           it deleted the key the Unlock named)

A hand-off is a hold taken by a contender that was already waiting (its Lock sent
before the previous holder released): from the previous holder's Unlock acknowledged
to its own Lock answered. Both answers may leave the member together and the Lock's
arrive first: such a hand-off counts as 0, not negative.

Example, hold 0 ms: A holds [1.000, 1.002] fence 7, Unlock acked 1.004; B, waiting
since 0.990, acquires at 1.005 fence 9: one hand-off of 1 ms, exclusion kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class Hold:
    contender: int
    lock_sent_s: float
    acquired_s: float  # the Lock answer arrived
    fence_revision: int  # the create revision of the holder's key; 0 if it was not there
    released_s: float  # the Unlock was sent
    unlock_acked_s: float


@dataclass(frozen=True, slots=True)
class Exclusion:
    holds: int
    fence_regressions: int  # holds whose fencing revision was not above the last one's
    overlaps: int  # holds acquired before an earlier one was released
    keys_lost: int  # holds whose key was gone, or another lease's, right after Lock

    @property
    def kept(self) -> bool:
        return not (self.fence_regressions or self.overlaps or self.keys_lost)


def by_acquisition(holds: list[Hold]) -> list[Hold]:
    return sorted(holds, key=lambda h: h.acquired_s)


def check_exclusion(holds: list[Hold]) -> Exclusion:
    regressions = overlaps = lost = 0
    last_fence, released_s = 0, float("-inf")  # of the holds so far: highest, latest
    for hold in by_acquisition(holds):
        if hold.acquired_s < released_s:
            overlaps += 1
        released_s = max(released_s, hold.released_s)
        if not hold.fence_revision:
            lost += 1
            continue
        if hold.fence_revision <= last_fence:
            regressions += 1
        last_fence = max(last_fence, hold.fence_revision)
    return Exclusion(len(holds), regressions, overlaps, lost)


def handoffs_s(holds: list[Hold]) -> tuple[list[float], int]:
    """Sorted hand-off latencies, and how many arrived before the Unlock's answer."""
    ordered = by_acquisition(holds)
    latencies, early = [], 0
    for before, after in pairwise(ordered):
        if after.lock_sent_s > before.released_s:  # not waiting: nothing was handed off
            continue
        gap_s = after.acquired_s - before.unlock_acked_s
        early += gap_s < 0
        latencies.append(max(0.0, gap_s))
    return sorted(latencies), early


def waits_s(holds: list[Hold]) -> list[float]:
    """Sorted times from Lock sent to Lock answered."""
    return sorted(h.acquired_s - h.lock_sent_s for h in holds)


def span_s(holds: list[Hold]) -> float:
    """From the first Lock sent to the last Unlock answered."""
    if not holds:
        return 0.0
    return max(h.unlock_acked_s for h in holds) - min(h.lock_sent_s for h in holds)
