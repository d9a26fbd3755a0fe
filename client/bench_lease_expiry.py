"""petcd-bench lease-expiry: many leases, one key each, let go at once; how long the
member takes to expire them all.

    petcd-bench lease-expiry --endpoints URLS --leases N --ttl T [--streams M]
                             [--key-prefix P] [--workers N]

N leases of TTL T seconds are granted, each with one key (P + its number, 8 digits),
and kept alive (every T/3, over M streams, as lease-keepalive does) until all exist:
the first must not expire while the last are granted. Then every lease is renewed once
more, all at once, and never again; the run prints the `released:` line (flushed: a
script can start another load when it appears), then counts the keys under P on the
first endpoint every POLL_S until none is left, and prints when the first and the last
went, and how long after the first TTL ran out the last key went. Use a prefix that
holds no other key. Exit 1 if a call failed or a key outlived EXPIRY_TIMEOUT_S past
its TTL.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_grpc import target
from .bench_lease import (
    COLLECT_TIMEOUT_S,
    add_common,
    print_errors,
    start,
    wait_granted,
)
from .bench_lease_plan import LeasePlan
from .bench_lease_report import Expiry, expiry_head, expiry_line, release_line
from .bench_lease_worker import GRANTED
from .bench_lease_workers import status
from .bench_plan import prefix_end
from .bench_worker import REQUEST_TIMEOUT_S

POLL_S = 0.1  # resolution of the times the keys went
# etcd revokes at most 1,000 expired leases a second (lessor.go, leaseRevokeRate):
# 10,000 take 10 s there; past this a key that is still there is a failure.
EXPIRY_TIMEOUT_S = 120.0


def poll_expiry(endpoint: str, prefix: bytes, keys: int, released_s: float,
                ttl_s: int) -> Expiry:
    """Count the keys under prefix until none is left, bounded."""
    deadline_s = released_s + ttl_s + EXPIRY_TIMEOUT_S
    first_gone_s, left = None, keys
    request = pb.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
    with grpc.insecure_channel(target(endpoint)) as channel:
        kv = pb_grpc.KVStub(channel)
        while time.monotonic() < deadline_s:
            left = kv.Range(request, timeout=REQUEST_TIMEOUT_S).count
            now = time.monotonic()
            if left < keys and first_gone_s is None:
                first_gone_s = now
            if left == 0:
                return Expiry(released_s, first_gone_s, now, 0)
            status(f"keys left: {left}/{keys}, {now - released_s:.1f} s after the release")
            time.sleep(POLL_S)
    return Expiry(released_s, first_gone_s, None, left)


def run(args: argparse.Namespace) -> int:
    plan = expiry_plan(args)
    workers = start(plan, args, expire=True)
    if not wait_granted(workers, plan):
        granted = workers.count(GRANTED)
        sys.stderr.write("\n")
        print_errors(workers.collect(COLLECT_TIMEOUT_S))
        print(f"petcd-bench: {granted} of {plan.leases} leases granted", file=sys.stderr)
        return 1
    tallies = workers.collect(COLLECT_TIMEOUT_S)  # told to stop: renew once more, let go
    print_errors(tallies)
    if len(tallies) < len(workers.procs):
        print(f"petcd-bench: {len(workers.procs) - len(tallies)} worker(s) died", file=sys.stderr)
        return 1
    print("\n".join([*expiry_head(plan, tallies), release_line(tallies, plan.ttl_s)]),
          flush=True)
    keys = sum(t.keys_attached for t in tallies)
    try:
        expiry = poll_expiry(args.endpoints.split(",")[0], plan.key_prefix, keys,
                             min(t.released_s for t in tallies), plan.ttl_s)
    except grpc.RpcError as err:
        print(f"\npetcd-bench: counting the keys: {err.code().name}: {err.details()}",
              file=sys.stderr)
        return 1
    sys.stderr.write("\n")
    print(expiry_line(expiry, keys, plan.ttl_s))
    errors = sum(t.keepalives.error_count for t in tallies)
    return 1 if errors or expiry.all_gone_s is None else 0


def expiry_plan(args: argparse.Namespace) -> LeasePlan:
    return LeasePlan(args.leases, args.streams, args.ttl, key_prefix=args.key_prefix.encode())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench lease-expiry",
                                description=__doc__.split("\n")[0])
    add_common(p)
    p.add_argument("--ttl", type=int, default=5, help="seconds each lease is granted for")
    p.add_argument("--key-prefix", default="expiry/",
                   help="lease i holds key prefix + i; no other key may be under it")
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.workers < 1 or not args.key_prefix:
        p.error("--workers must be >= 1 and --key-prefix not empty")
    if not all(args.endpoints.split(",")):
        p.error("--endpoints must list client URLs separated by commas")
    try:
        expiry_plan(args)
    except ValueError as err:
        p.error(str(err))


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    return run(args)
