"""petcd-bench: load a petcd (or etcd) cluster and print throughput and latency.

    petcd-bench put   [--txn-ops N]                    Put, or a Txn of N puts
    petcd-bench range [--serializable] [--prefix] [--limit N]
    petcd-bench txn                                    compare-and-put (Txn on mod_revision)
    petcd-bench watch --watches W --streams S ...       watch events: see bench_watch
    petcd-bench lease-keepalive --leases N --streams M --ttl T ...   see bench_lease
    petcd-bench lease-expiry --leases N --ttl T ...     see bench_lease_expiry
    petcd-bench lock --contenders C --name NAME ...     see bench_lock
    petcd-bench floors [--data-dir D]                   what each part of a write costs
                                                       alone: see bench_floors
    petcd-bench sweep --snapshot-count 1000,10000 ...   a fresh cluster per value under
                                                       the same load: see bench_sweep
      common: --endpoints URLS --protocol grpc|http --conns N --total M
              --key-size 8 --val-size 256 --key-space K --key-prefix P [--server-cpu]
              --cacert/--cert/--key (https members), --user name[:password] [--password]
              put --trace: where each write's time went inside petcd, stage by stage

Connections are spread over worker processes (so that the tool itself is not the
bottleneck) and over the endpoints round-robin; each connection sends one request at a
time. The parent draws a progress bar and prints requests/s, p50 and p99 latency, and
the CPU time its workers spent per request. It speaks etcd's gRPC API (default) or its
JSON gateway, so the same command measures a real etcd. Which keys each request
touches: see bench_plan.
"""

from __future__ import annotations

import argparse
import getpass
import multiprocessing
import os
import queue
import sys
import time

from . import (bench_auth, bench_cpu, bench_floors, bench_lease, bench_lease_expiry, bench_lock,
               bench_sweep, bench_trace, bench_watch)
from .bench_plan import OPS, Plan
from .bench_conn import BenchError
from .bench_worker import Job, Tally, worker
from .tls import TlsOptions

PROGRESS_EVERY_S = 0.2
# Scenarios with flags of their own: the first argument picks one.
SCENARIOS = {"watch": bench_watch.main, "lease-keepalive": bench_lease.main,
             "lease-expiry": bench_lease_expiry.main, "lock": bench_lock.main,
             "floors": bench_floors.main, "sweep": bench_sweep.main}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def jobs(args: argparse.Namespace, tokens: tuple[str, ...] = ()) -> list[Job]:
    """The work of each worker process: contiguous runs of connections and requests;
    `tokens`, one per endpoint, with --user."""
    per_conn = _split(args.total, args.conns)
    endpoints = tuple(args.endpoints.split(","))
    out, conn, request = [], 0, 0
    for conns in _split(args.conns, max(1, min(args.workers, args.conns))):
        requests = tuple(per_conn[conn:conn + conns])
        out.append(Job(plan(args), args.protocol, endpoints, conn, request, requests,
                       tls(args), tokens))
        conn, request = conn + conns, request + sum(requests)
    return out


def tls(args: argparse.Namespace) -> TlsOptions:
    return TlsOptions(ca_file=args.cacert, cert_file=args.cert, key_file=args.key)


def credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """--user name[:password] and --password, as etcdctl reads them: with --password,
    --user is the name whole; with neither password, it is asked for."""
    if not args.user:
        return None
    if args.password:
        return args.user, args.password
    if ":" in args.user:
        name, password = args.user.split(":", 1)
        return name, password
    return args.user, getpass.getpass("Password: ")


def plan(args: argparse.Namespace) -> Plan:
    return Plan(op=args.op, key_size=args.key_size, key_space=args.key_space,
                key_prefix=args.key_prefix.encode(), val_size=args.val_size,
                txn_ops=args.txn_ops, limit=args.limit, prefix=args.prefix,
                serializable=args.serializable, trace=args.trace)


def _progress(done: int, total: int, started: float) -> None:
    width = 40
    filled = width * done // max(1, total)
    rate = done / max(1e-9, time.perf_counter() - started)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                     f"{rate:,.0f} req/s")
    sys.stderr.flush()


def collect(work: list[Job], progress: bool = True) -> tuple[list[Tally], float]:
    """Run the jobs in worker processes; their tallies and the time it took."""
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Value("q", 0)
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(j, done, out)) for j in work]
    total = sum(sum(j.requests) for j in work)
    started = time.perf_counter()
    for p in procs:
        p.start()
    tallies: list[Tally] = []
    while len(tallies) < len(procs):
        try:
            tallies.append(out.get(timeout=PROGRESS_EVERY_S))
        except queue.Empty:  # draw the bar and keep waiting, unless a worker died
            if not any(p.is_alive() for p in procs) and out.empty():
                break
        if progress:
            _progress(done.value, total, started)
    elapsed_s = time.perf_counter() - started
    for p in procs:
        p.join(5)
    if progress:
        sys.stderr.write("\n")
    return tallies, elapsed_s


def _details(p: Plan, tallies: list[Tally], succeeded: int) -> str:
    if p.op == "put" and p.txn_ops > 1:
        return f", {p.txn_ops} keys per request"
    if p.op == "range":
        return f", {sum(t.keys_returned for t in tallies) / succeeded:.1f} keys per response"
    if p.op == "txn":
        return f", {sum(t.compare_failures for t in tallies)} compare failures"
    return ""


def summary(args: argparse.Namespace, workers: int, tallies: list[Tally],
            elapsed_s: float) -> list[str]:
    latencies = sorted(x for t in tallies for x in t.latencies_s)
    errors = sum(t.error_count for t in tallies)
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return [f"{args.op} ({args.protocol}): {len(latencies)} requests, {args.conns} connections, "
            f"{workers} workers, {elapsed_s:.2f}s{_details(plan(args), tallies, len(latencies))}",
            f"  throughput {len(latencies) / elapsed_s:,.0f} req/s   p50 {pct(0.50):.2f} ms   "
            f"p99 {pct(0.99):.2f} ms   errors {errors}"]


def run(args: argparse.Namespace) -> int:
    user = credentials(args)
    try:
        tokens = bench_auth.tokens(args.protocol, tuple(args.endpoints.split(",")), tls(args),
                                   *user) if user else ()
    except BenchError as err:
        print(f"petcd-bench: authentication failed: {err}", file=sys.stderr)
        return 1
    work = jobs(args, tokens)
    cpu_before = bench_cpu.sample() if args.server_cpu else {}
    tallies, elapsed_s = collect(work)
    cpu_after = bench_cpu.sample() if args.server_cpu else {}
    for t in tallies:
        for e in t.errors:
            print(f"error: {e}", file=sys.stderr)
    if len(tallies) < len(work):
        print(f"petcd-bench: {len(work) - len(tallies)} worker(s) died", file=sys.stderr)
    if not any(t.latencies_s for t in tallies):
        print("petcd-bench: no request succeeded", file=sys.stderr)
        return 1
    print("\n".join(summary(args, len(work), tallies, elapsed_s)))
    if args.trace:
        print("\n".join(bench_trace.report([x for t in tallies for x in t.traces],
                                           [x for t in tallies for x in t.latencies_s])))
    requests = sum(len(t.latencies_s) + t.error_count for t in tallies)
    if args.server_cpu:
        print(bench_cpu.report(bench_cpu.per_request_us(cpu_before, cpu_after, requests)))
    # On one machine the tool and the servers share the cores: what it takes, they lack.
    print(f"  client CPU per request: {sum(t.cpu_s for t in tallies) * 1e6 / requests:,.0f} us "
          f"(petcd-bench's {len(tallies)} workers)")
    failed = len(tallies) < len(work) or any(t.error_count for t in tallies)
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench", description=__doc__.split("\n")[0])
    p.add_argument("op", choices=OPS, help=f"or one of {', '.join(SCENARIOS)}, with "
                   "flags of their own: petcd-bench watch --help")
    p.add_argument("--endpoints", default="http://127.0.0.1:2379",
                   help="comma-separated client URLs (or host:port)")
    p.add_argument("--cacert", default="", help="CA of an https member (as etcdctl's)")
    p.add_argument("--cert", default="", help="client certificate, for --client-cert-auth")
    p.add_argument("--key", default="", help="its key")
    p.add_argument("--user", default="",
                   help="name[:password]: authenticate (once per member, before the run)")
    p.add_argument("--password", default="",
                   help="with --user, which is then the name whole (as etcdctl's)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc",
                   help="etcd's gRPC API, or its JSON gateway (default grpc)")
    p.add_argument("--conns", type=int, default=1, help="concurrent connections")
    p.add_argument("--total", type=int, default=10_000, help="requests in all")
    p.add_argument("--key-size", type=int, default=8, help="digits of the key number")
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--key-space", type=int, default=100_000,
                   help="distinct keys (range reads keys put with the same space)")
    p.add_argument("--key-prefix", default="", help="put before every key's number")
    p.add_argument("--txn-ops", type=int, default=1,
                   help="put: keys per request; above 1 each request is a Txn of puts")
    p.add_argument("--serializable", action="store_true",
                   help="range: serializable (local) reads instead of linearizable")
    p.add_argument("--prefix", action="store_true",
                   help="range: over the 10**d keys sharing the key's prefix, where d "
                        "digits are dropped so that it holds at least --limit keys")
    p.add_argument("--limit", type=int, default=0,
                   help="range: most keys per response (0: no limit)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="client processes (default: one per core)")
    p.add_argument("--server-cpu", action="store_true",
                   help="also print the CPU time local petcd actors and etcd processes "
                        "spent per request, by process name (see client/bench_cpu.py)")
    p.add_argument("--trace", action="store_true",
                   help="put: ask petcd for each write's stage times and print where the "
                        "time went, stage by stage (see client/bench_trace.py)")
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.conns < 1 or args.total < args.conns:
        p.error("--conns must be >= 1 and --total >= --conns")
    if args.workers < 1 or args.key_size < 1 or args.val_size < 0 or args.limit < 0:
        p.error("--workers and --key-size must be >= 1, --val-size and --limit >= 0")
    if args.txn_ops < 1 or (args.txn_ops > 1 and args.op != "put"):
        p.error("--txn-ops must be >= 1, and is for put only")
    if args.op != "range" and (args.prefix or args.limit or args.serializable):
        p.error("--prefix, --limit and --serializable are for range only")
    if args.trace and args.op != "put":
        p.error("--trace is for put only")
    if args.password and not args.user:
        p.error("--password is for --user")
    if not all(args.endpoints.split(",")):
        p.error("--endpoints must list client URLs separated by commas")
    try:
        plan(args)
    except ValueError as err:
        p.error(str(err))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SCENARIOS:
        sys.exit(SCENARIOS[argv[0]](argv[1:]))
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
