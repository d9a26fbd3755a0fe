"""check perf: etcdctl's 60-second write check. Puts 1 KiB values under --prefix at
the load's rate from its number of concurrent clients, then deletes them and judges:
throughput above 90% of the rate, slowest request under 0.5 s, latency standard
deviation under 0.1 s (etcdctl/ctlv3/command/check.go's thresholds and lines).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc
from petcd.client.connection import CHANNEL_OPTIONS, normalize_endpoint
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import (EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT,
                                    CtlError, Flag)

DURATION_S = 60
# Test-only: a shorter run (etcdctl has no such knob; its check always takes 60 s).
DURATION_ENV = "PETCDCTL_CHECK_PERF_SECONDS"
KEY_BYTES, VALUE_BYTES = 256, 1024
MAX_CHANNELS = 32  # connections shared by the simulated clients
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Load:
    rate_per_s: int
    clients: int


LOADS = {"s": Load(150, 50), "m": Load(1000, 200), "l": Load(8000, 500),
         "xl": Load(15000, 1000)}
ALIASES = {"s": "s", "small": "s", "m": "m", "medium": "m", "l": "l", "large": "l",
           "xl": "xl", "xLarge": "xl"}


@dataclass
class Results:
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


def _random_key(prefix: bytes, rng: random.Random) -> bytes:
    """prefix + a 256-byte buffer starting with a random zigzag varint (etcdctl's)."""
    number, raw = rng.getrandbits(63) << 1, bytearray()
    while number >= 0x80:
        raw.append(number & 0x7F | 0x80)
        number >>= 7
    raw.append(number)
    return prefix + bytes(raw) + bytes(KEY_BYTES - len(raw))


async def _load(endpoints: list[str], load: Load, prefix: bytes, duration_s: float) -> Results:
    channels = [grpc.aio.insecure_channel(endpoints[i % len(endpoints)],
                                          options=CHANNEL_OPTIONS)
                for i in range(min(load.clients, MAX_CHANNELS))]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]
    queue: asyncio.Queue = asyncio.Queue(maxsize=load.clients)
    results, value = Results(), bytes(VALUE_BYTES)

    async def client(index: int) -> None:
        stub = stubs[index % len(stubs)]
        while (key := await queue.get()) is not None:
            started = time.monotonic()
            try:
                await stub.Put(pb.PutRequest(key=key, value=value), timeout=REQUEST_TIMEOUT_S)
                results.latencies_s.append(time.monotonic() - started)
            except grpc.aio.AioRpcError as exc:
                text = exc.details() or str(exc.code())
                results.errors[text] = results.errors.get(text, 0) + 1

    workers = [asyncio.create_task(client(i)) for i in range(load.clients)]
    rng, interval_s = random.Random(), 1.0 / load.rate_per_s
    started = time.monotonic()
    next_at = started
    while next_at < started + duration_s:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await queue.put(_random_key(prefix, rng))
        next_at += interval_s
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    results.elapsed_s = time.monotonic() - started
    for ch in channels:
        await ch.close()
    return results


def _verdict(ctx: Context, results: Results, load: Load) -> bool:
    ok = True
    if results.errors:
        ctx.stdout("FAIL: too many errors\n")
        for text, count in results.errors.items():
            ctx.stdout(f"FAIL: ERROR({text}) -> {count}\n")
        ok = False
    rate = len(results.latencies_s) / results.elapsed_s
    if rate / load.rate_per_s <= 0.9:
        ctx.stdout(f"FAIL: Throughput too low: {int(rate) + 1} writes/s\n")
        ok = False
    else:
        ctx.stdout(f"PASS: Throughput is {int(rate) + 1} writes/s\n")
    slowest = max(results.latencies_s, default=0.0)
    stddev = statistics.pstdev(results.latencies_s) if results.latencies_s else 0.0
    if slowest > 0.5:
        ctx.stdout(f"Slowest request took too long: {slowest:f}s\n")
        ok = False
    else:
        ctx.stdout(f"PASS: Slowest request took {slowest:f}s\n")
    if stddev > 0.1:
        ctx.stdout(f"Stddev too high: {stddev:f}s\n")
        ok = False
    else:
        ctx.stdout(f"PASS: Stddev is {stddev:f}s\n")
    ctx.stdout("PASS\n" if ok else "FAIL\n")
    return ok


def run_check_perf(ctx: Context) -> int:
    model = ALIASES.get(ctx.flag("load"))
    if model is None:
        raise CtlError(EXIT_BAD_FEATURE, f"unknown load option {ctx.flag('load')}")
    load, prefix = LOADS[model], ctx.flag("prefix")
    client = ctx.client()
    if client.get(prefix, prefix=True, limit=1).kvs:
        raise CtlError(EXIT_INVALID_INPUT, f'prefix "{prefix}" has keys. Delete with '
                                           f"etcdctl del --prefix {prefix} first")
    endpoints = [normalize_endpoint(e) for e in ctx.endpoints]
    duration_s = float(os.environ.get(DURATION_ENV, DURATION_S))
    if sys.stdout.isatty():
        ctx.stdout(f"running for {duration_s:g}s...\n")
        sys.stdout.flush()
    results = asyncio.run(_load(endpoints, load, prefix.encode(), duration_s))
    deleted = client.delete(prefix, prefix=True)
    if ctx.flag("auto-compact"):
        revision = deleted.header.revision
        ctx.stdout(f"Compacting with revision {revision}\n")
        client.compact(revision, physical=True)
        ctx.stdout(f"Compacted with revision {revision}\n")
    if ctx.flag("auto-defrag"):
        for endpoint in client.endpoints:
            ctx.stdout(f'Defragmenting "{endpoint}"\n')
            client.defragment(endpoint)
            ctx.stdout(f'Defragmented "{endpoint}"\n')
    return 0 if _verdict(ctx, results, load) else EXIT_ERROR


COMMANDS = [Command(("check", "perf"),
                    [Flag("load", "string", "s"),
                     Flag("prefix", "string", "/etcdctl-check-perf/"),
                     Flag("auto-compact", "bool", False),
                     Flag("auto-defrag", "bool", False)], run_check_perf)]
