"""petcd-bench lease-keepalive: many leases kept alive over a few LeaseKeepAlive streams,
and how fast, how late and how completely the member renews them.

    petcd-bench lease-keepalive --endpoints URLS --leases N --streams M --ttl T
                                [--duration-s D] [--rate-max] [--workers N] [--server-cpu]

N leases of TTL T seconds ride M keep-alive streams, spread round robin over the
endpoints and over worker processes (bench_lease_worker). Each lease is kept alive from
the moment its grant is answered, renewed every T/3 as clientv3 does; once all exist
the measured window opens for D seconds (with --rate-max the streams then renew their
leases as fast as they go, for keep-alive throughput). Then the run reads every lease's
time-to-live, in parallel, and revokes them all. It prints the grants and the time
they took, keep-alives sent and answered per second, keep-alive latency, leases lost
(an answer with TTL <= 0, or time-to-live -1 at the end), the CPU time the members on
this machine spent per keep-alive answered (--server-cpu) and the tool's own. Exit 1 if
a lease was lost, a call failed or a worker died.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import bench_cpu
from .bench_lease_plan import LeasePlan
from .bench_lease_report import (
    Window,
    client_cpu_line,
    keepalive_summary,
    lost_leases,
    window_latencies_s,
)
from .bench_lease_worker import (
    ANSWERED,
    ATTACHED,
    ERRORS,
    GRANTED,
    SLOTS,
    LeaseJob,
    LeaseTally,
    worker,
)
from .bench_lease_workers import STATUS_EVERY_S, Workers, status

GRANT_TIMEOUT_S = 300.0  # for every lease to exist (and hold its key), from the start
# Workers read the time-to-live of and revoke their leases, 32 calls in flight each,
# after DRAIN_TIMEOUT_S at most for the streams: 10,000 leases take seconds.
COLLECT_TIMEOUT_S = 300.0


def start(plan: LeasePlan, args: argparse.Namespace, expire: bool) -> Workers:
    endpoints = tuple(args.endpoints.split(","))
    jobs = [LeaseJob(plan, endpoints, streams, expire)
            for streams in plan.worker_streams(args.workers)]
    return Workers(worker, jobs, SLOTS)


def wait_granted(workers: Workers, plan: LeasePlan) -> bool:
    """Whether every lease exists (with its key, if it has one) within GRANT_TIMEOUT_S,
    no call failing first."""
    slot = ATTACHED if plan.key_prefix else GRANTED
    deadline = time.monotonic() + GRANT_TIMEOUT_S
    while workers.count(slot) < plan.leases:
        if workers.count(ERRORS) or not workers.alive() or time.monotonic() > deadline:
            return False
        status(f"granting leases: {workers.count(GRANTED)}/{plan.leases}")
        time.sleep(STATUS_EVERY_S)
    return True


def print_errors(tallies: list[LeaseTally]) -> None:
    for t in tallies:
        for e in t.keepalives.errors:
            print(f"error: {e}", file=sys.stderr)


def _keep_alive(workers: Workers, duration_s: float) -> Window:
    window = Window(workers.open_window(), 0.0)
    while (left_s := window.start_s + duration_s - time.monotonic()) > 0:
        status(f"keeping leases alive: {workers.count(ANSWERED)} keep-alives answered, "
               f"{left_s:.0f} s left")
        time.sleep(min(STATUS_EVERY_S, left_s))
    return Window(window.start_s, time.monotonic())


def run(args: argparse.Namespace) -> int:
    plan = lease_plan(args)
    workers = start(plan, args, expire=False)
    if not wait_granted(workers, plan):
        granted = workers.count(GRANTED)
        sys.stderr.write("\n")
        print_errors(workers.collect(COLLECT_TIMEOUT_S))
        print(f"petcd-bench: {granted} of {plan.leases} leases granted", file=sys.stderr)
        return 1
    cpu_before = bench_cpu.sample() if args.server_cpu else {}
    window = _keep_alive(workers, args.duration_s)
    cpu_after = bench_cpu.sample() if args.server_cpu else {}
    status("checking and revoking the leases")
    tallies = workers.collect(COLLECT_TIMEOUT_S)
    sys.stderr.write("\n")
    print_errors(tallies)
    if len(tallies) < len(workers.procs):
        print(f"petcd-bench: {len(workers.procs) - len(tallies)} worker(s) died", file=sys.stderr)
        return 1
    print("\n".join(keepalive_summary(plan, tallies, window)))
    answered = len(window_latencies_s(tallies, window))
    if args.server_cpu and answered:
        print(bench_cpu.report(bench_cpu.per_request_us(cpu_before, cpu_after, answered)))
    print(client_cpu_line(tallies, window))
    failed = lost_leases(tallies)[0] or any(t.keepalives.error_count for t in tallies)
    return 1 if failed or not answered else 0


def lease_plan(args: argparse.Namespace) -> LeasePlan:
    return LeasePlan(args.leases, args.streams, args.ttl, args.rate_max)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoints", default="http://127.0.0.1:2379",
                   help="comma-separated client URLs; stream s goes to the (s mod E)-th")
    p.add_argument("--leases", type=int, default=1000, help="leases in all")
    p.add_argument("--streams", type=int, default=10, help="LeaseKeepAlive streams")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench lease-keepalive",
                                description=__doc__.split("\n")[0])
    add_common(p)
    p.add_argument("--ttl", type=int, default=10, help="seconds each lease is granted for")
    p.add_argument("--duration-s", type=float, default=10.0,
                   help="seconds measured, once every lease exists")
    p.add_argument("--rate-max", action="store_true",
                   help="renew as fast as the streams go (throughput), not every TTL/3")
    p.add_argument("--server-cpu", action="store_true",
                   help="also print the CPU time local petcd actors and etcd processes "
                        "spent per keep-alive answered (see client/bench_cpu.py)")
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.duration_s <= 0 or args.workers < 1:
        p.error("--duration-s must be > 0 and --workers >= 1")
    if not all(args.endpoints.split(",")):
        p.error("--endpoints must list client URLs separated by commas")
    try:
        lease_plan(args)
    except ValueError as err:
        p.error(str(err))


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    return run(args)
