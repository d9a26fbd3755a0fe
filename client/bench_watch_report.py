"""The summary `petcd-bench watch` prints: pure, from what the run recorded.

One line per figure, each a label and `name value` pairs in the shape of petcd-bench's
other summaries (counts bare, rates with thousands separators, latencies in ms), so a
script can pick them out with a regular expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bench_memory import Memory
from .bench_watch_delivery import Delivery, percentile_ms
from .bench_watch_plan import WatchPlan
from .bench_watch_worker import WatchTally
from .bench_watch_writer import WriterTally

MIB = 2 ** 20


@dataclass(frozen=True, slots=True)
class MemberMemory:
    """One member's memory at the three moments of a run; None where not measurable."""
    endpoint: str
    watches: int  # watches on this member
    before: Memory | None  # before any watch was created
    created: Memory | None  # once every watch was created
    end: Memory | None  # after the last event, watches still open


def _mib(memories: list[Memory], attr: str) -> str:
    return " / ".join(f"{getattr(m, attr) / MIB:,.1f}" for m in memories) + " MiB"


def memory_line(m: MemberMemory) -> str:
    if m.before is None or m.created is None or m.end is None:
        return f"  memory of {m.endpoint}: not measured (no process on this machine serves it)"
    each = [m.before, m.created, m.end]
    count = f"{m.end.processes} process{'es' if m.end.processes > 1 else ''}"
    line = (f"  memory of {m.endpoint} ({m.end.name}, {count}): RSS {_mib(each, 'rss_bytes')}"
            f"   PSS {_mib(each, 'pss_bytes')} (before / watches created / end)")
    if not m.watches:
        return line
    rss = (m.created.rss_bytes - m.before.rss_bytes) / m.watches
    pss = (m.created.pss_bytes - m.before.pss_bytes) / m.watches
    return line + f"   per watch: RSS {rss:,.0f} B   PSS {pss:,.0f} B ({m.watches} watches)"


def creation_line(watches: list[WatchTally]) -> str:
    created = sum(t.created for t in watches)
    took_s = (max(t.create_finished_s for t in watches) -
              min(t.create_started_s for t in watches)) if created else 0.0
    return f"  watches created: {created} in {took_s:.2f} s"


def writer_line(writer: WriterTally, rate: float) -> str:
    acked = len(writer.puts.revisions)
    achieved = acked / writer.elapsed_s if writer.elapsed_s > 0 else 0.0
    return (f"  puts: {acked} of {writer.asked} asked at {rate:,.0f} writes/s   achieved "
            f"{achieved:,.0f} writes/s   p50 {percentile_ms(writer.latencies_s, 0.50):.2f} ms"
            f"   p99 {percentile_ms(writer.latencies_s, 0.99):.2f} ms   "
            f"errors {writer.error_count}")


def event_lines(d: Delivery, writer: WriterTally) -> list[str]:
    span_s = d.last_received_s - writer.started_s
    per_s = d.delivered / span_s if d.delivered and span_s > 0 else 0.0
    lat = d.latencies_s
    return [f"  events: {d.expected} expected, {d.delivered} delivered ({per_s:,.0f} events/s)"
            f"   missing {d.missing}   duplicate {d.duplicate}   unexpected {d.unexpected}",
            f"  event latency (put acknowledged -> event received): "
            f"p50 {percentile_ms(lat, 0.50):.2f} ms   p99 {percentile_ms(lat, 0.99):.2f} ms   "
            f"max {percentile_ms(lat, 1.0):.2f} ms   {d.early} before the ack (counted as 0)"]


def cpu_lines(watches: list[WatchTally], writer: WriterTally, watching_s: float) -> list[str]:
    """The tool's own CPU: what it takes, the members on this machine lack."""
    acked = len(writer.puts.revisions)
    lines = [f"  client CPU per put: {writer.cpu_s * 1e6 / max(1, acked):,.0f} us "
             f"(the writer: {writer.cpu_s / max(1e-9, writer.elapsed_s):.2f} cores)"]
    if watches:
        events = sum(len(t.events) for t in watches)
        cpu_s = sum(t.cpu_s for t in watches)
        created = sum(t.created for t in watches)
        lines.append(f"  client CPU per event: {cpu_s * 1e6 / max(1, events):,.0f} us "
                     f"({len(watches)} watch workers: {cpu_s / max(1e-9, watching_s):.2f} "
                     f"cores while writing)")
        lines.append(f"  client CPU per watch created: "
                     f"{sum(t.create_cpu_s for t in watches) * 1e6 / max(1, created):,.0f} us")
    return lines


def summary(plan: WatchPlan, rate: float, watches: list[WatchTally], writer: WriterTally,
            delivery: Delivery, members: list[MemberMemory], watching_s: float) -> list[str]:
    on = "one prefix" if plan.same_prefix else "distinct keys"
    head = (f"watch (grpc): {plan.watches} watches on {on}, "
            f"{plan.streams if plan.watches else 0} streams, "
            f"{len(watches)} workers, {writer.elapsed_s:.2f}s")
    lines = [head]
    if watches:
        lines.append(creation_line(watches))
    lines.append(writer_line(writer, rate))
    lines += event_lines(delivery, writer)
    lines += [memory_line(m) for m in members]
    return lines + cpu_lines(watches, writer, watching_s)
