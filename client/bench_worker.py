"""A petcd-bench worker process: a share of the connections, each on its own coroutine.

Each connection sends one request at a time and times it; the worker reports the
latencies, the errors, what the answers held (keys per range response, compare
failures of txn) and the CPU time it spent on them to the parent when all its
connections are done.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field

from .bench_conn import BenchError, Conn
from .bench_plan import Plan
from .tls import PLAIN, TlsOptions

REQUEST_TIMEOUT_S = 30.0
ERRORS_KEPT = 5


@dataclass(frozen=True, slots=True)
class Job:
    plan: Plan
    protocol: str  # "grpc" or "http"
    endpoints: tuple[str, ...]
    first_conn: int  # global number of this worker's first connection
    first_request: int  # global number of its first request
    requests: tuple[int, ...]  # requests of each of its connections
    tls: TlsOptions = PLAIN  # --cacert/--cert/--key: client/tls.py's rules
    tokens: tuple[str, ...] = ()  # --user: one per endpoint, from that member (bench_auth)


@dataclass(slots=True)
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first ERRORS_KEPT
    error_count: int = 0
    keys_returned: int = 0  # range: key-values in all responses
    compare_failures: int = 0  # txn: requests whose compare did not hold
    traces: list[str] = field(default_factory=list)  # put --trace: petcd-trace answers
    cpu_s: float = 0.0  # this worker's CPU time (all threads) from its first connection on

    def error(self, err: BenchError) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(str(err))


def open_conn(protocol: str, endpoint: str, tls: TlsOptions = PLAIN, token: str = "") -> Conn:
    if protocol == "grpc":
        from .bench_grpc import GrpcConn
        return GrpcConn(endpoint, REQUEST_TIMEOUT_S, tls, token)
    from .bench_http import HttpConn
    return HttpConn(endpoint, REQUEST_TIMEOUT_S, tls, token)


async def _timed(tally: Tally, done, call) -> object | None:
    started = time.perf_counter()
    try:
        answer = await call
    except BenchError as err:
        tally.error(err)
        return None
    tally.latencies_s.append(time.perf_counter() - started)
    with done.get_lock():
        done.value += 1
    return answer


async def _put(plan: Plan, conn: Conn, first: int, count: int, tally: Tally, done) -> None:
    value = plan.value()
    for request in range(first, first + count):
        traced = await _timed(tally, done, conn.put(plan.put_keys(request), value, plan.trace))
        if isinstance(traced, str):
            tally.traces.append(traced)


async def _range(plan: Plan, conn: Conn, first: int, count: int, tally: Tally, done) -> None:
    for request in range(first, first + count):
        key, end = plan.range_bounds(request)
        returned = await _timed(tally, done, conn.range(key, end, plan.limit, plan.serializable))
        tally.keys_returned += returned or 0


async def _txn(plan: Plan, conn: Conn, first: int, count: int, tally: Tally, done) -> None:
    """Compare-and-put: a failed compare teaches the key's mod_revision, and the next
    request retries the same key with it (as a client's CAS loop does)."""
    value, known, n = plan.value(), {}, first
    for _ in range(count):
        key = plan.key(n)
        answer = await _timed(tally, done, conn.cas(key, known.get(key, 0), value))
        if answer is None:
            n += 1
            continue
        succeeded, known[key] = answer
        if succeeded:
            n += 1
        else:
            tally.compare_failures += 1


OPS = {"put": _put, "range": _range, "txn": _txn}


async def _connection(job: Job, conn_no: int, first: int, count: int, tally: Tally,
                      done) -> None:
    at = conn_no % len(job.endpoints)
    conn = open_conn(job.protocol, job.endpoints[at], job.tls,
                     job.tokens[at] if job.tokens else "")
    try:
        await OPS[job.plan.op](job.plan, conn, first, count, tally, done)
    finally:
        await conn.close()


async def _work(job: Job, done) -> Tally:
    tally = Tally()
    firsts = [job.first_request + sum(job.requests[:c]) for c in range(len(job.requests))]
    # Start-up (interpreter, imports) is left out: it is not a cost of the requests.
    started_cpu_s = time.process_time()
    await asyncio.gather(*(
        _connection(job, job.first_conn + c, firsts[c], count, tally, done)
        for c, count in enumerate(job.requests) if count))
    tally.cpu_s = time.process_time() - started_cpu_s
    return tally


def worker(job: Job, done, out: multiprocessing.Queue) -> None:
    out.put(asyncio.run(_work(job, done)))
