"""petcd-bench sweep: how --snapshot-count changes a cluster, one fresh cluster per value.

    petcd-bench sweep --snapshot-count 1000,10000,100000 [--members 3] [--duration S]
                      [--conns N] [--val-size B] [--plot PATH] [--compare-etcd]

For each value a new local cluster (bench_cluster: free loopback ports, a directory of
its own) takes the same put load for --duration seconds (bench_sweep_load; over gRPC,
to every member but the follower below). Meanwhile each member's RSS and PSS are
sampled every MEMORY_EVERY_S (bench_memory), and one follower is stopped (SIGTERM) at
a third of the load and restarted at two thirds: the time from its restart until its
applied index reaches the leader's is its catch-up, by snapshot if its log says it
received one, else by log. After the load: the WAL and snapshot directories' size
(the largest member's), then one member is restarted and timed until it answers a
linearizable range. The members' logs say when each snapshot was made, for the
latency spike around snapshots (bench_sweep_report). With --compare-etcd each value
also runs against a real etcd with the same flags. Prints a table, writes a PNG of
latency and memory over time, and draws a progress bar (tqdm, on stderr) meanwhile.
Every cluster is stopped when its run ends, however it ends (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from tqdm import tqdm

from . import bench_sweep_report as report
from .bench_cluster import ETCD, PETCD, START_TIMEOUT_S, LocalCluster, System
from .bench_memory import tree_memory
from .bench_plan import Plan
from .bench_sweep_load import Load, jobs

MEMORY_EVERY_S = 0.5
TICK_S = 0.1  # how often the run checks its schedule and polls the follower's progress
POLL_TIMEOUT_S = 0.3
CATCH_UP_TIMEOUT_S = 120.0  # after the load: how long a follower may still take


class Watch:
    """The schedule of one run while its load goes on: memory samples, the follower's
    stop and restart, and its catch-up."""

    def __init__(self, cluster: LocalCluster, follower: int | None, started_at_s: float,
                 duration_s: float) -> None:
        self.cluster, self.follower = cluster, follower
        self.started_at_s, self.duration_s = started_at_s, duration_s
        self.memory: list[report.MemorySample] = []
        self.next_memory_s = started_at_s
        self.stopped_at_s: float | None = None
        self.restarted_at_s: float | None = None
        self.caught_up_at_s: float | None = None
        self.leader_applied: int | None = None  # at the previous tick

    def tick(self) -> None:
        now = time.time()
        if now >= self.next_memory_s:
            self.next_memory_s += MEMORY_EVERY_S
            self._sample_memory(now)
        if self.follower is None:
            return
        if self.stopped_at_s is None and now >= self.started_at_s + self.duration_s / 3:
            self.cluster.signal_stop(self.follower)
            self.stopped_at_s = now
        elif (self.restarted_at_s is None and self.stopped_at_s is not None
              and now >= self.started_at_s + 2 * self.duration_s / 3):
            self.cluster.stop_member(self.follower)  # bounded: it had a third to go
            self.cluster.start_member(self.follower)
            self.restarted_at_s = time.time()
        elif self.restarted_at_s is not None and self.caught_up_at_s is None:
            self._poll_catch_up()

    def _sample_memory(self, now: float) -> None:
        for member in range(self.cluster.size):
            if self._down(member) or (pid := self.cluster.pid(member)) is None:
                continue
            try:
                memory = tree_memory(psutil.Process(pid))
            except psutil.Error:  # it exited since pid() looked
                memory = None
            if memory is not None:
                self.memory.append(report.MemorySample(
                    now - self.started_at_s, member, memory.rss_bytes, memory.pss_bytes))

    def _down(self, member: int) -> bool:
        """Stopped and not yet restarted (while it shuts down its memory is no member's)."""
        return (member == self.follower and self.stopped_at_s is not None
                and self.restarted_at_s is None)

    def _poll_catch_up(self) -> None:
        """Caught up once the follower has applied what the leader had applied one tick
        before: under load the leader is always a little ahead, so "equal" might only
        come once the load stops. The error is at most TICK_S."""
        assert self.follower is not None
        # A member still starting may accept and not answer: wait on it briefly, so
        # that the memory samples go on meanwhile.
        others = [self.cluster.applied_index(i, POLL_TIMEOUT_S)
                  for i in range(self.cluster.size) if i != self.follower]
        mine = self.cluster.applied_index(self.follower, POLL_TIMEOUT_S)
        if mine is not None and self.leader_applied is not None and mine >= self.leader_applied:
            self.caught_up_at_s = time.time()
        self.leader_applied = max((x for x in others if x is not None), default=None)

    def wait_caught_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (self.restarted_at_s is not None and self.caught_up_at_s is None
               and time.monotonic() < deadline):
            self._poll_catch_up()
            time.sleep(TICK_S)

    def follower_down_s(self) -> tuple[float, float] | None:
        if self.stopped_at_s is None or self.restarted_at_s is None:
            return None
        return (self.stopped_at_s - self.started_at_s, self.restarted_at_s - self.started_at_s)

    def catch_up(self, system: System) -> tuple[float | None, str]:
        """Seconds from the follower's restart to caught up, and how it caught up."""
        if self.restarted_at_s is None or self.caught_up_at_s is None:
            return None, "-"
        received = [e for e in self.cluster.log_events(self.follower, (system.snapshot_received,))
                    if e.at_s >= self.restarted_at_s]
        return self.caught_up_at_s - self.restarted_at_s, "snapshot" if received else "log"


def pick_follower(cluster: LocalCluster) -> int | None:
    """The last member that does not lead; None for a cluster of one."""
    if cluster.size == 1:
        return None
    deadline = time.monotonic() + START_TIMEOUT_S
    while (leader := cluster.leader()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{cluster.system.name}: no agreed leader after "
                               f"{START_TIMEOUT_S:.0f} s; see the logs in {cluster.root}")
        time.sleep(TICK_S)
    return max(i for i in range(cluster.size) if i != leader)


def restart_s(cluster: LocalCluster, member: int) -> float | None:
    cluster.stop_member(member)
    began = time.monotonic()
    cluster.start_member(member)
    return time.monotonic() - began if cluster.wait_serving(member, START_TIMEOUT_S) else None


def snapshots_at_s(cluster: LocalCluster, started_at_s: float, duration_s: float) -> list[float]:
    """Every member's snapshots during the load, in seconds since it started."""
    made = [e.at_s - started_at_s for i in range(cluster.size)
            for e in cluster.log_events(i, (cluster.system.snapshot_saved,))]
    return sorted(t for t in made if 0 <= t <= duration_s)


def follow(watch: Watch, bar: tqdm) -> None:
    """Keep to the watch's schedule until the load's time is up, moving the bar along."""
    done_s = 0.0
    while (now := time.time()) < watch.started_at_s + watch.duration_s:
        watch.tick()
        bar.update(min(now - watch.started_at_s, watch.duration_s) - done_s)
        done_s = min(now - watch.started_at_s, watch.duration_s)
        time.sleep(TICK_S)
    bar.update(watch.duration_s - done_s)


def measure(cluster: LocalCluster, snapshot_count: int, args: argparse.Namespace,
            bar: tqdm) -> report.Run:
    cluster.start()
    follower = pick_follower(cluster)
    endpoints = tuple(u for i, u in enumerate(cluster.client_urls) if i != follower)
    plan = Plan(op="put", key_size=8, key_space=args.key_space, val_size=args.val_size)
    load = Load(jobs(plan, endpoints, args.conns, args.workers, args.duration))
    try:
        started_at_s = load.start()
        watch = Watch(cluster, follower, started_at_s, args.duration)
        follow(watch, bar)
        samples, died = load.finish()
    finally:
        load.stop()
    if died:
        print(f"petcd-bench sweep: {died} load worker(s) died", file=sys.stderr)
    watch.wait_caught_up(CATCH_UP_TIMEOUT_S)
    catch_up_s, catch_up_by = watch.catch_up(cluster.system)
    sizes = [(cluster.wal_bytes(i), cluster.snap_bytes(i)) for i in range(cluster.size)]
    return report.Run(
        system=cluster.system.name, snapshot_count=snapshot_count,
        duration_s=args.duration,
        sent_at_s=tuple(t - started_at_s for t in samples.sent_at_s),
        latencies_s=tuple(samples.latencies_s), errors=samples.error_count + died,
        snapshots_at_s=tuple(snapshots_at_s(cluster, started_at_s, args.duration)),
        memory=tuple(watch.memory), follower_down_s=watch.follower_down_s(),
        catch_up_s=catch_up_s, catch_up_by=catch_up_by,
        wal_bytes=max(w for w, _ in sizes), snap_bytes=max(s for _, s in sizes),
        restart_s=restart_s(cluster, 0 if follower is None else follower))


def run_one(system: System, snapshot_count: int, args: argparse.Namespace, root: Path,
            bar: tqdm) -> report.Run:
    cluster = LocalCluster(system, root / f"{system.name}-{snapshot_count}", args.members,
                           ("--snapshot-count", str(snapshot_count)))
    bar.set_description(f"{system.name} --snapshot-count {snapshot_count:,}")
    try:
        return measure(cluster, snapshot_count, args, bar)
    finally:
        cluster.stop()


def sweep(args: argparse.Namespace, root: Path) -> list[report.Run]:
    systems = (PETCD, ETCD) if args.compare_etcd else (PETCD,)
    runs = [(system, count) for count in args.snapshot_count for system in systems]
    with tqdm(total=len(runs) * args.duration, file=sys.stderr, unit="s",
              bar_format="{desc}{bar} {n:.0f}/{total:.0f} s of load [{elapsed}]") as bar:
        return [run_one(system, count, args, root, bar) for system, count in runs]


def counts(text: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers separated by commas") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("every --snapshot-count must be >= 1")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench sweep", description=__doc__.split("\n")[0])
    p.add_argument("--snapshot-count", type=counts, required=True,
                   help="values to try, separated by commas: 1000,10000,100000")
    p.add_argument("--members", type=int, choices=(1, 3, 5), default=3)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per value")
    p.add_argument("--conns", type=int, default=16, help="concurrent connections")
    p.add_argument("--val-size", type=int, default=256, help="bytes of each value")
    p.add_argument("--key-space", type=int, default=100_000, help="distinct keys")
    # The members share the machine's cores with the load: one worker process is what
    # a 2-core machine can spare; raise it where the tool is the bottleneck.
    p.add_argument("--workers", type=int, default=1, help="load processes (default 1)")
    p.add_argument("--plot", default="sweep-snapshot-count.png", help="the PNG to write")
    p.add_argument("--dir", type=Path, default=None,
                   help="where the clusters keep data and logs (default: a temporary "
                        "directory, removed afterwards)")
    p.add_argument("--compare-etcd", action="store_true",
                   help=f"also run each value against etcd ({ETCD.binary})")
    return p


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.duration < 1 or args.conns < 1 or args.workers < 1 or args.val_size < 0:
        p.error("--duration, --conns and --workers must be >= 1, --val-size >= 0")
    if not 1 <= args.key_space <= 10 ** 8:
        p.error("--key-space must be 1..100,000,000")
    if args.compare_etcd and not os.access(ETCD.binary, os.X_OK):
        p.error(f"--compare-etcd: no etcd binary at {ETCD.binary}")
    root = args.dir or Path(tempfile.mkdtemp(prefix="petcd-sweep-"))
    try:
        runs = sweep(args, root)
    except RuntimeError as err:
        print(f"petcd-bench sweep: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("petcd-bench sweep: interrupted; every cluster stopped", file=sys.stderr)
        return 130
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(report.table(runs))
    report.plot(runs, args.plot)
    print(f"plot: {args.plot}")
    return 1 if any(r.errors or r.restart_s is None for r in runs) else 0
