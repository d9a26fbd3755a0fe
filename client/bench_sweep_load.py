"""The sweep's put load: connections that put for a fixed time, each request stamped.

Unlike petcd-bench put (a number of requests), the sweep runs for --duration seconds
and needs to know *when* each request was sent, to put its latency beside the
snapshots the members logged. Send times are wall-clock (time.time(), the scale of the
members' log timestamps); latencies are measured with perf_counter.

The worker processes (spawned, as petcd-bench's) first import and say they are ready;
the parent then sets the common start time and lets them go, so every connection starts
together and the load's start is known to the parent exactly.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import signal
import time
from dataclasses import dataclass, field

from .bench_conn import BenchError
from .bench_plan import Plan
from .bench_worker import ERRORS_KEPT, open_conn

READY_TIMEOUT_S = 60.0
# A request outstanding at the end is waited for at most this long (bench_worker's
# REQUEST_TIMEOUT_S is the gRPC deadline of each request).
DRAIN_TIMEOUT_S = 35.0
JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class LoadJob:
    plan: Plan
    endpoints: tuple[str, ...]
    first_conn: int  # global number of this worker's first connection
    conns: int  # connections of this worker
    all_conns: int  # connections over every worker: request n of connection c is key
                    # number c + n * all_conns, so connections never share a key number
    duration_s: float


@dataclass(slots=True)
class Samples:
    sent_at_s: list[float] = field(default_factory=list)  # wall clock
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first ERRORS_KEPT
    error_count: int = 0

    def merge(self, other: Samples) -> None:
        self.sent_at_s += other.sent_at_s
        self.latencies_s += other.latencies_s
        self.errors += other.errors[:ERRORS_KEPT - len(self.errors)]
        self.error_count += other.error_count


async def _connection(job: LoadJob, conn_no: int, started_at_s: float,
                      samples: Samples) -> None:
    conn = open_conn("grpc", job.endpoints[conn_no % len(job.endpoints)])
    value, end_s, n = job.plan.value(), started_at_s + job.duration_s, 0
    try:
        while (sent_at_s := time.time()) < end_s:
            began = time.perf_counter()
            try:
                await conn.put(job.plan.put_keys(conn_no + n * job.all_conns), value)
            except BenchError as err:
                samples.error_count += 1
                if len(samples.errors) < ERRORS_KEPT:
                    samples.errors.append(str(err))
            else:
                samples.latencies_s.append(time.perf_counter() - began)
                samples.sent_at_s.append(sent_at_s)
            n += 1
    finally:
        await conn.close()


async def _run(job: LoadJob, started_at_s: float) -> Samples:
    samples = Samples()
    await asyncio.gather(*(_connection(job, job.first_conn + c, started_at_s, samples)
                           for c in range(job.conns)))
    return samples


def worker(job: LoadJob, ready, go, started_at, out: multiprocessing.Queue) -> None:
    # A Ctrl-C in the terminal reaches the whole process group: the parent ends the
    # workers itself, after a traceback of its own at most.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with ready.get_lock():
        ready.value += 1
    if go.wait(READY_TIMEOUT_S):
        out.put(asyncio.run(_run(job, started_at.value)))


def jobs(plan: Plan, endpoints: tuple[str, ...], conns: int, workers: int,
         duration_s: float) -> list[LoadJob]:
    shares = [conns // workers + (1 if w < conns % workers else 0) for w in range(workers)]
    firsts = [sum(shares[:w]) for w in range(workers)]
    return [LoadJob(plan, endpoints, first, share, conns, duration_s)
            for first, share in zip(firsts, shares) if share]


class Load:
    """The worker processes of one run: start() them, then finish() or stop()."""

    def __init__(self, work: list[LoadJob]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.go = ctx.Value("i", 0), ctx.Event()
        self.started_at = ctx.Value("d", 0.0)
        self.out: multiprocessing.Queue = ctx.Queue()
        self.procs = [ctx.Process(target=worker, daemon=True,
                                  args=(j, self.ready, self.go, self.started_at, self.out))
                      for j in work]
        self.duration_s = work[0].duration_s

    def start(self) -> float:
        """Start the workers, let them go together; the load's start (wall clock)."""
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.ready.value < len(self.procs):
            if time.monotonic() > deadline or not all(p.is_alive() for p in self.procs):
                raise RuntimeError("petcd-bench sweep: load workers did not start")
            time.sleep(0.02)
        self.started_at.value = time.time()
        self.go.set()
        return self.started_at.value

    def finish(self) -> tuple[Samples, int]:
        """Every worker's samples merged, and how many workers died without any."""
        merged, got = Samples(), 0
        deadline = self.started_at.value + self.duration_s + DRAIN_TIMEOUT_S
        while got < len(self.procs) and time.time() < deadline:
            try:
                merged.merge(self.out.get(timeout=0.2))
                got += 1
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs) and self.out.empty():
                    break
        self.stop()
        return merged, len(self.procs) - got

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            if p.pid is not None:
                p.join(JOIN_TIMEOUT_S)
