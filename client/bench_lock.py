"""petcd-bench lock: contenders taking turns on one v3lock lock, how fast it passes
between them, and whether they ever held it together.

    petcd-bench lock --endpoints URLS --contenders C --name NAME [--duration-s D]
                     [--hold-ms H] [--ttl T] [--workers N] [--server-cpu]

C contenders, spread over the endpoints round robin and over worker processes
(bench_lock_worker), each with its own lease of TTL T kept alive, loop for D seconds:
Lock(NAME, lease), read the key's create revision (the fencing revision), hold H ms,
Unlock. The run prints acquisitions per second, hand-off latency (unlock acknowledged
to the next holder's Lock answered) and acquisition wait, and checks mutual exclusion
(bench_lock_check): fencing revisions strictly increasing in acquisition order, no two
holds overlapping by the client's clock. Exit 1 on a violation, a failed call or a
dead worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import bench_cpu
from .bench_lease_workers import STATUS_EVERY_S, Workers, status
from .bench_lock_check import check_exclusion
from .bench_lock_report import client_cpu_line, summary
from .bench_lock_worker import (
    ACQUIRED,
    ERRORS,
    LOCK_TIMEOUT_S,
    READY,
    SLOTS,
    LockJob,
    worker,
)

READY_TIMEOUT_S = 60.0  # for every contender to hold its lease
# The last Lock may wait for every other contender's turn; then the revokes.
COLLECT_TIMEOUT_S = LOCK_TIMEOUT_S + 30.0


def jobs(args: argparse.Namespace) -> list[LockJob]:
    """Contiguous runs of contenders, one per worker, sizes differing by one."""
    count = max(1, min(args.workers, args.contenders))
    out, first = [], 0
    for w in range(count):
        size = args.contenders // count + (1 if w < args.contenders % count else 0)
        out.append(LockJob(args.name.encode(), tuple(args.endpoints.split(",")),
                           range(first, first + size), args.ttl, args.hold_ms / 1000))
        first += size
    assert first == args.contenders
    return out


def _wait_ready(workers: Workers, contenders: int) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while workers.count(READY) < contenders:
        if workers.count(ERRORS) or not workers.alive() or time.monotonic() > deadline:
            return False
        status(f"granting leases: {workers.count(READY)}/{contenders}")
        time.sleep(STATUS_EVERY_S)
    return True


def _contend(workers: Workers, duration_s: float) -> None:
    stop_s = workers.open_window() + duration_s
    while (left_s := stop_s - time.monotonic()) > 0:
        status(f"contending: {workers.count(ACQUIRED)} acquisitions, {left_s:.0f} s left")
        time.sleep(min(STATUS_EVERY_S, left_s))


def run(args: argparse.Namespace) -> int:
    work = jobs(args)
    workers = Workers(worker, work, SLOTS)
    ready = _wait_ready(workers, args.contenders)
    cpu_before = bench_cpu.sample() if args.server_cpu else {}
    if ready:
        _contend(workers, args.duration_s)
    status("finishing the last turns and revoking the leases")
    tallies = workers.collect(COLLECT_TIMEOUT_S)
    cpu_after = bench_cpu.sample() if args.server_cpu else {}
    sys.stderr.write("\n")
    for t in tallies:
        for e in t.keepalives.errors:
            print(f"error: {e}", file=sys.stderr)
    if len(tallies) < len(work) or not ready:
        print(f"petcd-bench: {len(work) - len(tallies)} worker(s) died, "
              f"{'all' if ready else 'not all'} contenders ready", file=sys.stderr)
        return 1
    holds = [h for t in tallies for h in t.holds]
    errors = sum(t.keepalives.error_count for t in tallies)
    exclusion = check_exclusion(holds)
    print("\n".join(summary(args.name.encode(), args.contenders, args.hold_ms, len(work),
                            holds, exclusion, errors)))
    if args.server_cpu and holds:
        print(bench_cpu.report(bench_cpu.per_request_us(cpu_before, cpu_after, len(holds))))
    print(client_cpu_line(sum(t.cpu_s for t in tallies), len(holds), len(work)))
    return 1 if errors or not holds or not exclusion.kept else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench lock", description=__doc__.split("\n")[0])
    p.add_argument("--endpoints", default="http://127.0.0.1:2379",
                   help="comma-separated client URLs; contender c uses the (c mod E)-th")
    p.add_argument("--contenders", type=int, default=10, help="clients taking turns")
    p.add_argument("--name", default="bench-lock", help="the lock's name (a key prefix)")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds of contending")
    p.add_argument("--hold-ms", type=float, default=0.0, help="how long each holder holds it")
    p.add_argument("--ttl", type=int, default=10, help="seconds of each contender's lease")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core)")
    p.add_argument("--server-cpu", action="store_true",
                   help="also print the CPU time local petcd actors and etcd processes "
                        "spent per acquisition (see client/bench_cpu.py)")
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.contenders < 1 or args.workers < 1 or args.ttl < 1:
        p.error("--contenders, --workers and --ttl must be >= 1")
    if args.duration_s <= 0 or args.hold_ms < 0 or not args.name:
        p.error("--duration-s must be > 0, --hold-ms >= 0 and --name not empty")
    if not all(args.endpoints.split(",")):
        p.error("--endpoints must list client URLs separated by commas")


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    return run(args)
