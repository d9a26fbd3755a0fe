"""petcd-bench watch: many watches over a few gRPC Watch streams, one writer, and how
late, how complete and how costly the events are.

    petcd-bench watch --endpoints URLS --watches W --streams S [--same-prefix]
                      --rate R --duration-s D [--watch-endpoints URLS]
                      [--val-size N] [--key-size N] [--key-prefix P] [--key-space K]
                      [--workers N] [--server-cpu]

W watches (watch i on key i, or with --same-prefix all on --key-prefix) ride S Watch
streams, spread round robin over the watch endpoints (default: --endpoints) and over
worker processes (bench_watch_worker). Once every watch exists, one writer puts R
times a second for D seconds on the first of --endpoints (bench_watch_writer); then
the run waits for the events it is owed and checks each of them (bench_watch_delivery).
It prints the watches' creation time, the writer's rate and latency, events owed and
delivered, event latency from the put's acknowledgement, each local member's memory
before and after the watches were created and at the end (bench_memory), and the CPU
time the tool itself spent. `--watches 0` runs the writer alone, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import sys
import time

from . import bench_cpu, bench_memory
from .bench_plan import Plan
from .bench_watch_delivery import Events, deliver
from .bench_watch_plan import WatchPlan
from .bench_watch_report import MemberMemory, summary
from .bench_watch_worker import CREATED, FAILED, RECEIVED, SLOTS, WatchJob, WatchTally, worker
from .bench_watch_writer import WriterTally, write

PROGRESS_EVERY_S = 0.2
CREATE_TIMEOUT_S = 120.0  # for every watch to exist, from the workers' start
DRAIN_IDLE_S = 3.0  # after the last put, give up on owed events once none came for this long
DRAIN_TIMEOUT_S = 60.0  # and in any case after this long
COLLECT_TIMEOUT_S = 60.0  # for the workers to hand over their events once stopped


class Workers:
    """The watch worker processes and what they share with the parent."""

    def __init__(self, plan: WatchPlan, endpoints: tuple[str, ...], workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        runs = plan.worker_streams(workers) if plan.watches else []
        self.progress = ctx.Array("q", SLOTS * len(runs), lock=False)
        self.stop = ctx.Event()
        self.out: multiprocessing.Queue = ctx.Queue()
        self.procs = [ctx.Process(target=worker, daemon=True, args=(
            WatchJob(plan, endpoints, w, run), self.progress, self.stop, self.out))
            for w, run in enumerate(runs)]
        for p in self.procs:
            p.start()

    def count(self, slot: int) -> int:
        return sum(self.progress[w * SLOTS + slot] for w in range(len(self.procs)))

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    def collect(self) -> list[WatchTally]:
        """Stop the workers and take their tallies (a worker that died has none)."""
        self.stop.set()
        tallies: list[WatchTally] = []
        deadline = time.monotonic() + COLLECT_TIMEOUT_S
        while len(tallies) < len(self.procs) and time.monotonic() < deadline:
            try:
                tallies.append(self.out.get(timeout=PROGRESS_EVERY_S))
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs) and self.out.empty():
                    break
        for p in self.procs:
            p.join(5)
        return tallies


def _status(text: str) -> None:
    sys.stderr.write(f"\r{text}\033[K")
    sys.stderr.flush()


def _wait_created(workers: Workers, watches: int) -> bool:
    """Whether all the watches exist within CREATE_TIMEOUT_S, no stream failing first."""
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    while workers.count(CREATED) < watches:
        if workers.count(FAILED) or not workers.alive() or time.monotonic() > deadline:
            return False
        _status(f"creating watches: {workers.count(CREATED)}/{watches}")
        time.sleep(PROGRESS_EVERY_S)
    return True


def _drain(workers: Workers, owed: int) -> None:
    """Wait for the events owed, while they keep coming (bounded)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last, last_change = -1, time.monotonic()
    while (received := workers.count(RECEIVED)) < owed and workers.alive():
        now = time.monotonic()
        if received != last:
            last, last_change = received, now
        if now - last_change > DRAIN_IDLE_S or now > deadline:
            return
        _status(f"waiting for events: {received}/{owed}")
        time.sleep(PROGRESS_EVERY_S)


def _memory(members: list[str]) -> list[bench_memory.Memory | None]:
    return [bench_memory.member_memory(m) for m in members]


def _server_cpu(args: argparse.Namespace) -> bench_cpu.Sample:
    return bench_cpu.sample() if args.server_cpu else {}


def _urls(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


def _print_errors(tallies: list[WatchTally], writer: WriterTally | None) -> None:
    for errors in [t.errors for t in tallies] + [writer.errors if writer else []]:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    plan = watch_plan(args)
    endpoints, watch_endpoints = _urls(args.endpoints), _urls(args.watch_endpoints
                                                              or args.endpoints)
    members = list(dict.fromkeys(endpoints + watch_endpoints))
    before = _memory(members)
    workers = Workers(plan, watch_endpoints, args.workers)
    if not _wait_created(workers, plan.watches):
        made = workers.count(CREATED)
        sys.stderr.write("\n")
        _print_errors(workers.collect(), None)
        print(f"petcd-bench: {made} of {plan.watches} watches created", file=sys.stderr)
        return 1
    created, cpu_before = _memory(members), _server_cpu(args)  # watches idle: their cost
    watching_from_s = time.monotonic()
    _status(f"{plan.watches} watches; writing {args.rate:,.0f} puts/s for {args.duration_s} s")
    writer = asyncio.run(write(plan, endpoints[0], args.rate, args.duration_s))
    _drain(workers, sum(plan.matches(n) for n in writer.puts.numbers))
    end, cpu_after = _memory(members), _server_cpu(args)
    watching_s = time.monotonic() - watching_from_s
    tallies = workers.collect()
    sys.stderr.write("\n")
    _print_errors(tallies, writer)
    acked = len(writer.puts.revisions)
    if not acked:
        print("petcd-bench: no put succeeded", file=sys.stderr)
        return 1
    events = Events()
    for t in tallies:
        events.extend(t.events)
    delivery = deliver(plan, writer.puts, events)
    on_member = plan.watches_by_endpoint(watch_endpoints)
    memories = [MemberMemory(m, on_member[m], *each)
                for m, *each in zip(members, before, created, end)]
    print("\n".join(summary(plan, args.rate, tallies, writer, delivery, memories, watching_s)))
    if args.server_cpu:
        print(bench_cpu.report(bench_cpu.per_request_us(cpu_before, cpu_after, acked)))
    if len(tallies) < len(workers.procs):
        print(f"petcd-bench: {len(workers.procs) - len(tallies)} worker(s) died", file=sys.stderr)
    failed = (len(tallies) < len(workers.procs) or writer.error_count or delivery.missing
              or delivery.duplicate or any(t.error_count for t in tallies))
    return 1 if failed else 0


def watch_plan(args: argparse.Namespace) -> WatchPlan:
    key_space = args.key_space or max(1, args.watches)
    puts = Plan("put", key_size=args.key_size, key_space=key_space,
                key_prefix=args.key_prefix.encode(), val_size=args.val_size)
    return WatchPlan(puts, args.watches, args.streams, args.same_prefix)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench watch", description=__doc__.split("\n")[0])
    p.add_argument("--endpoints", default="http://127.0.0.1:2379",
                   help="comma-separated client URLs; the writer uses the first")
    p.add_argument("--watch-endpoints", default="",
                   help="client URLs the watch streams go to, round robin "
                        "(default: --endpoints)")
    p.add_argument("--watches", type=int, default=1000, help="watches in all (0: no watch)")
    p.add_argument("--streams", type=int, default=10, help="Watch streams carrying them")
    p.add_argument("--same-prefix", action="store_true",
                   help="every watch on --key-prefix (each put reaches all of them), "
                        "instead of watch i on key i")
    p.add_argument("--rate", type=float, default=100.0, help="puts per second")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds of writing")
    p.add_argument("--key-size", type=int, default=8, help="digits of the key number")
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--key-prefix", default="watch/", help="put before every key's number")
    p.add_argument("--key-space", type=int, default=0,
                   help="keys the writer cycles over (default: one per watch, at least 1)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="watch worker processes (default: one per core)")
    p.add_argument("--server-cpu", action="store_true",
                   help="also print the CPU time local petcd actors and etcd processes "
                        "spent per put, watch events included (see client/bench_cpu.py)")
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.rate <= 0 or args.duration_s <= 0:
        p.error("--rate and --duration-s must be > 0")
    if args.workers < 1 or args.key_size < 1 or args.val_size < 0 or args.key_space < 0:
        p.error("--workers and --key-size must be >= 1, --val-size and --key-space >= 0")
    for flag, urls in (("--endpoints", args.endpoints),
                       ("--watch-endpoints", args.watch_endpoints or args.endpoints)):
        if not all(urls.split(",")):
            p.error(f"{flag} must list client URLs separated by commas")
    try:
        watch_plan(args)
    except ValueError as err:
        p.error(str(err))


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    return run(args)
