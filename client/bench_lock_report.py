"""The summary `petcd-bench lock` prints: pure, from the holds its contenders recorded.

One line per figure, in the shape of petcd-bench's other summaries, so a script can
pick them out with a regular expression.
"""

from __future__ import annotations

from .bench_lock_check import Exclusion, Hold, handoffs_s, span_s, waits_s
from .bench_watch_delivery import percentile_ms


def _quantiles(sorted_s: list[float]) -> str:
    return (f"p50 {percentile_ms(sorted_s, 0.50):.2f} ms   p99 {percentile_ms(sorted_s, 0.99):.2f}"
            f" ms   max {percentile_ms(sorted_s, 1.0):.2f} ms")


def exclusion_line(e: Exclusion) -> str:
    verdict = "kept" if e.kept else "VIOLATED"
    return (f"  mutual exclusion: {verdict} over {e.holds} holds   fencing revisions out of "
            f"order {e.fence_regressions}   overlapping holds {e.overlaps}   "
            f"keys lost {e.keys_lost}")


def summary(name: bytes, contenders: int, hold_ms: float, workers: int, holds: list[Hold],
            exclusion: Exclusion, errors: int) -> list[str]:
    took_s = span_s(holds)
    handoffs, early = handoffs_s(holds)
    rate = len(holds) / took_s if took_s > 0 else 0.0
    return [
        f"lock (grpc): {contenders} contenders on {name.decode()!r}, hold {hold_ms:g} ms, "
        f"{workers} workers, {took_s:.2f}s",
        f"  acquisitions: {len(holds)} ({rate:,.1f}/s)   errors {errors}",
        f"  hand-off (unlock acknowledged -> next holder's Lock answered): "
        f"{_quantiles(handoffs)}   {len(handoffs)} hand-offs, {early} before the ack "
        f"(counted as 0)",
        f"  acquisition wait (Lock sent -> answered): {_quantiles(waits_s(holds))}",
        exclusion_line(exclusion)]


def client_cpu_line(cpu_s: float, holds: int, workers: int) -> str:
    """The tool's own CPU: what it takes, the members on this machine lack."""
    return (f"  client CPU per acquisition: {cpu_s * 1e6 / max(1, holds):,.0f} us "
            f"(petcd-bench's {workers} workers)")
