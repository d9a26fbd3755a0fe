"""The summaries `petcd-bench lease-keepalive` and `lease-expiry` print: pure, from
what the workers recorded.

One line per figure, in the shape of petcd-bench's other summaries (counts bare, rates
with thousands separators, latencies in ms), so a script can pick them out with a
regular expression. Keep-alive figures count only the measured window: from the moment
every lease existed, for --duration-s seconds (the grants before it are their own line).
A lease is lost if an answer said TTL <= 0, or if its time-to-live read at the end was
-1; one lease lost both ways counts once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bench_lease_plan import LeasePlan
from .bench_lease_worker import LeaseTally
from .bench_watch_delivery import percentile_ms


@dataclass(frozen=True, slots=True)
class Window:
    start_s: float  # time.monotonic(): every lease existed
    end_s: float  # the workers were told to stop

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


def window_latencies_s(tallies: list[LeaseTally], window: Window) -> list[float]:
    """Latencies of the keep-alives answered in the window, sorted."""
    return sorted(lat for t in tallies
                  for answered, lat in zip(t.keepalives.answered_s, t.keepalives.latencies_s)
                  if window.holds(answered))


def lost_leases(tallies: list[LeaseTally]) -> tuple[int, int, int]:
    """(lost in all, answered with TTL <= 0, time-to-live -1 at the end)."""
    answered = set().union(*(t.keepalives.lost for t in tallies))
    at_end = set().union(*(t.expired_at_end for t in tallies))
    return len(answered | at_end), len(answered), len(at_end)


def grant_line(plan: LeasePlan, tallies: list[LeaseTally]) -> str:
    granted = sum(len(t.granted) for t in tallies)
    took_s = (max(t.grant_finished_s for t in tallies) -
              min(t.grant_started_s for t in tallies)) if granted else 0.0
    rate = granted / took_s if took_s > 0 else 0.0
    return f"  leases granted: {granted} of {plan.leases} in {took_s:.2f} s ({rate:,.0f} grants/s)"


def keepalive_lines(plan: LeasePlan, tallies: list[LeaseTally], window: Window) -> list[str]:
    sent = sum(1 for t in tallies for s in t.keepalives.sent_s if window.holds(s))
    latencies = window_latencies_s(tallies, window)
    errors = sum(t.keepalives.error_count for t in tallies)
    per_s = 1 / window.length_s if window.length_s > 0 else 0.0
    lost, answered, at_end = lost_leases(tallies)
    granted = sum(len(t.granted) for t in tallies)
    return [
        f"  keep-alives: {sent} sent ({sent * per_s:,.0f}/s), {len(latencies)} answered "
        f"({len(latencies) * per_s:,.0f}/s)   errors {errors}",
        f"  keep-alive latency: p50 {percentile_ms(latencies, 0.50):.2f} ms   "
        f"p99 {percentile_ms(latencies, 0.99):.2f} ms   max {percentile_ms(latencies, 1.0):.2f} ms",
        f"  leases lost: {lost} ({answered} answered with TTL <= 0, {at_end} with "
        f"time-to-live -1 at the end, of {sum(t.checked for t in tallies)} checked)",
        f"  leases revoked: {sum(t.revoked for t in tallies)} of {granted}"]


def keepalive_summary(plan: LeasePlan, tallies: list[LeaseTally], window: Window) -> list[str]:
    how = ("flat out (--rate-max)" if plan.rate_max else
           f"each renewed every TTL/3 ({plan.ttl_s / 3:.2f} s)")
    head = (f"lease-keepalive (grpc): {plan.leases} leases of TTL {plan.ttl_s} s, "
            f"{plan.streams} streams, {len(tallies)} workers, {window.length_s:.2f}s, {how}")
    return [head, grant_line(plan, tallies), *keepalive_lines(plan, tallies, window)]


def client_cpu_line(tallies: list[LeaseTally], window: Window) -> str:
    """The tool's own CPU in the window: what it takes, the members on this machine lack."""
    answered = len(window_latencies_s(tallies, window))
    cpu_s = sum(t.cpu_s for t in tallies)
    return (f"  client CPU per keep-alive: {cpu_s * 1e6 / max(1, answered):,.0f} us "
            f"({len(tallies)} workers: {cpu_s / max(1e-9, window.length_s):.2f} cores)")


@dataclass(frozen=True, slots=True)
class Expiry:
    """When the keys of lease-expiry went, in time.monotonic() seconds (None: never)."""
    released_s: float  # the first worker stopped renewing
    first_gone_s: float | None  # the first poll that found fewer keys than attached
    all_gone_s: float | None  # the first poll that found none
    left: int  # keys left at the last poll


def release_line(tallies: list[LeaseTally], ttl_s: int) -> str:
    released = min(t.released_s for t in tallies)
    burst_s = max(t.release_answered_s for t in tallies) - released
    return (f"  released: every lease renewed once more in {burst_s:.2f} s, then none; "
            f"their TTLs run out {ttl_s} s later")


def expiry_line(expiry: Expiry, keys: int, ttl_s: int) -> str:
    def after(t_s: float | None) -> str:
        return "never" if t_s is None else f"+{t_s - expiry.released_s:.2f} s"
    if expiry.all_gone_s is None:
        return (f"  expiry: {expiry.left} of {keys} keys left, first gone "
                f"{after(expiry.first_gone_s)} after the release")
    took_s = expiry.all_gone_s - (expiry.released_s + ttl_s)
    return (f"  expiry: keys gone from {after(expiry.first_gone_s)} to "
            f"{after(expiry.all_gone_s)} after the release; all {keys} gone "
            f"{took_s:.2f} s after the first TTL ran out")


def expiry_head(plan: LeasePlan, tallies: list[LeaseTally]) -> list[str]:
    errors = sum(t.keepalives.error_count for t in tallies)
    keys = sum(t.keys_attached for t in tallies)
    return [f"lease-expiry (grpc): {plan.leases} leases of TTL {plan.ttl_s} s, one key each "
            f"under {plan.key_prefix.decode()!r}, {plan.streams} streams, {len(tallies)} workers",
            f"{grant_line(plan, tallies)}, keys attached: {keys}   errors {errors}"]
