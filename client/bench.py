"""petcd-bench: load a petcd (or etcd) cluster and print throughput and latency.

    petcd-bench put   --endpoints URLS --conns N --total M [--key-size 8 --val-size 256]
    petcd-bench range --endpoints URLS --conns N --total M [--serializable]

Connections are spread over worker processes (so that the tool itself is not the
bottleneck) and over the endpoints round-robin; each connection sends one request at a
time. The parent draws a progress bar and prints requests/s, p50 and p99 latency.
It speaks etcd's JSON gateway, so the same command measures a real etcd.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass

import aiohttp

PROGRESS_EVERY_S = 0.2
REQUEST_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class Job:
    op: str
    endpoints: tuple[str, ...]
    conns: int  # connections in this worker
    first_conn: int  # global number of this worker's first connection
    total: int  # requests for this worker
    key_size: int
    val_size: int
    key_space: int
    serializable: bool


def _key(n: int, size: int) -> str:
    return base64.b64encode(f"{n:0{size}d}"[-size:].encode()).decode()


async def _connection(job: Job, conn: int, count: int, start_key: int,
                      session: aiohttp.ClientSession, latencies: list[float],
                      done: multiprocessing.sharedctypes.Synchronized, errors: list[str]) -> None:
    url = job.endpoints[conn % len(job.endpoints)] + (
        "/v3/kv/put" if job.op == "put" else "/v3/kv/range")
    value = base64.b64encode(b"x" * job.val_size).decode()
    for i in range(count):
        key = _key((start_key + i) % job.key_space, job.key_size)
        body = {"key": key, "value": value} if job.op == "put" else {
            "key": key, "serializable": job.serializable}
        started = time.perf_counter()
        async with session.post(url, data=json.dumps(body)) as resp:
            payload = await resp.read()
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}: {payload[:200]!r}")
                continue
        latencies.append(time.perf_counter() - started)
        with done.get_lock():
            done.value += 1


async def _work(job: Job, done, errors: list[str]) -> list[float]:
    latencies: list[float] = []
    per_conn = [job.total // job.conns + (1 if c < job.total % job.conns else 0)
                for c in range(job.conns)]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        starts = [sum(per_conn[:c]) for c in range(job.conns)]
        await asyncio.gather(*(
            _connection(job, job.first_conn + c, per_conn[c], starts[c] + job.first_conn * 7919,
                        session, latencies, done, errors)
            for c in range(job.conns) if per_conn[c]))
    return latencies


def _worker(job: Job, done, out: multiprocessing.Queue) -> None:
    errors: list[str] = []
    latencies = asyncio.run(_work(job, done, errors))
    out.put((latencies, errors[:5], len(errors)))


def _jobs(args: argparse.Namespace) -> list[Job]:
    workers = max(1, min(args.workers, args.conns))
    jobs, first = [], 0
    for w in range(workers):
        conns = args.conns // workers + (1 if w < args.conns % workers else 0)
        total = args.total * conns // args.conns
        jobs.append(Job(args.op, tuple(args.endpoints.split(",")), conns, first, total,
                        args.key_size, args.val_size, args.key_space, args.serializable))
        first += conns
    return jobs


def _progress(done: int, total: int, started: float) -> None:
    width = 40
    filled = width * done // max(1, total)
    rate = done / max(1e-9, time.perf_counter() - started)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                     f"{rate:,.0f} req/s")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    jobs = _jobs(args)
    total = sum(j.total for j in jobs)
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Value("q", 0)
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(j, done, out)) for j in jobs]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=PROGRESS_EVERY_S))
        except Exception:  # queue.Empty: draw the bar and keep waiting
            if not any(p.is_alive() for p in procs) and out.empty():
                break
        _progress(done.value, total, started)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(5)
    sys.stderr.write("\n")
    latencies = sorted(x for r in results for x in r[0])
    error_count = sum(r[2] for r in results)
    for r in results:
        for e in r[1]:
            print(f"error: {e}", file=sys.stderr)
    if not latencies:
        print("petcd-bench: no request succeeded", file=sys.stderr)
        return 1
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"{args.op}: {len(latencies)} requests, {args.conns} connections, "
          f"{len(jobs)} workers, {elapsed:.2f}s")
    print(f"  throughput {len(latencies) / elapsed:,.0f} req/s   p50 {pct(0.50):.2f} ms   "
          f"p99 {pct(0.99):.2f} ms   errors {error_count}")
    return 0 if error_count == 0 else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="petcd-bench", description=__doc__.split("\n")[0])
    parser.add_argument("op", choices=("put", "range"))
    parser.add_argument("--endpoints", default="http://127.0.0.1:2379",
                        help="comma-separated client URLs")
    parser.add_argument("--conns", type=int, default=1, help="concurrent connections")
    parser.add_argument("--total", type=int, default=10_000, help="requests in all")
    parser.add_argument("--key-size", type=int, default=8)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--key-space", type=int, default=100_000,
                        help="distinct keys (range reads keys put with the same space)")
    parser.add_argument("--serializable", action="store_true",
                        help="range: serializable (local) reads instead of linearizable")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="client processes (default: one per core)")
    args = parser.parse_args(argv)
    if args.conns < 1 or args.total < args.conns:
        parser.error("--conns must be >= 1 and --total >= --conns")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
