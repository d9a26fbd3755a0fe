"""petcd-bench floors: what each part of a write costs alone on this machine.

    petcd-bench floors [--data-dir D] [--count N] [--val-size B]

A put's time is spent in a few kinds of step; each is measured here by itself, one at
a time (no concurrency), N times, as p50 / p99:

    fdatasync       a 4 KiB append to a file in D, then os.fdatasync (what the WAL
                    pays per batch, on D's disk; the store's commit pays another)
    ZeroMQ hop      one envelope through the member's bus (actors/bus: an Outbox PUSH
                    to an Inbox PULL over ipc, msgpack), between two processes: half
                    a round trip
    gRPC call       an empty Put against a grpc.aio server that stores nothing (the
                    library the network actor serves gRPC with, on uvloop), over one
                    connection with petcd-bench's own client
    HTTP request    the same against an empty aiohttp app (the JSON gateway's library)

The empty servers are the floor under any Python server of etcd's API: a put through
petcd costs at least a call, two hops in (network -> raft -> wal), the WAL's fsync,
the followers' round trip, hops out to apply and back, and the store's commit.
scripts/bench-compare prints the same empty servers' throughput beside petcd's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from petcd.actors.bus.sockets import Inbox, Outbox, process_context, term_process_context

from .bench_worker import Tally

SYNC_BYTES = 4096
START_TIMEOUT_S = 60.0
HOP_WAIT_MS = 5000  # a hop that takes longer than this is a broken machine, not a floor


@dataclass(frozen=True, slots=True)
class Floor:
    name: str
    p50_ms: float
    p99_ms: float
    count: int

    def line(self) -> str:
        return f"  {self.name:<54} p50 {self.p50_ms:8.3f} ms   p99 {self.p99_ms:8.3f} ms"


def floor_of(name: str, latencies_s: list[float]) -> Floor:
    ordered = sorted(latencies_s)
    pct = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return Floor(name, pct(0.50), pct(0.99), len(ordered))


# -- fdatasync ---------------------------------------------------------------------

def fdatasync_floor(data_dir: str, count: int) -> Floor:
    block = os.urandom(SYNC_BYTES)
    fd, path = tempfile.mkstemp(prefix="petcd-floor-", dir=data_dir)
    try:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)
    return floor_of(f"fdatasync of a 4 KiB append ({data_dir})", latencies)


# -- a ZeroMQ hop ------------------------------------------------------------------

def _echo(run_dir: str, count: int) -> None:
    """The other process: every envelope that reaches inbox "echo" goes back to "bench"."""
    with Inbox.for_actor(run_dir, "echo") as inbox, Outbox(run_dir) as outbox:
        outbox.send("bench", "up", None, timeout_ms=HOP_WAIT_MS)
        for _ in range(count):
            [(kind, payload)] = inbox.drain(1, HOP_WAIT_MS)
            outbox.send("bench", kind, payload, timeout_ms=HOP_WAIT_MS)
    term_process_context()


def zeromq_hop_floor(count: int, payload_bytes: int) -> Floor:
    payload = [1, os.urandom(payload_bytes)]  # a request id and its data, as PROPOSE
    with tempfile.TemporaryDirectory() as run_dir:
        process_context()
        with Inbox.for_actor(run_dir, "bench") as inbox, Outbox(run_dir) as outbox:
            echo = multiprocessing.get_context("fork").Process(
                target=_echo, args=(run_dir, count), daemon=True)
            echo.start()
            try:
                if not inbox.drain(1, int(START_TIMEOUT_S * 1000)):
                    raise SystemExit("petcd-bench floors: the echo process did not start")
                latencies = []
                for _ in range(count):
                    started = time.perf_counter()
                    outbox.send("echo", "propose", payload, timeout_ms=HOP_WAIT_MS)
                    if not inbox.drain(1, HOP_WAIT_MS):
                        raise SystemExit("petcd-bench floors: the echo process stopped")
                    latencies.append((time.perf_counter() - started) / 2)
            finally:
                echo.join(START_TIMEOUT_S)
                echo.kill()
        term_process_context()
    return floor_of("ZeroMQ hop (bus over ipc, msgpack; half a round trip)", latencies)


# -- empty servers -----------------------------------------------------------------

def empty_kv_server(protocol: str, port: int) -> None:
    """The floor under any Python server of etcd's API: the library petcd's network
    actor serves `protocol` with (grpcio's grpc.aio, or aiohttp for the JSON gateway),
    on uvloop as there, answering every Put at once and storing nothing."""
    import uvloop

    uvloop.run(_serve_grpc(port) if protocol == "grpc" else _serve_http(port))


async def _serve_grpc(port: int) -> None:
    import grpc

    from petcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    class EmptyKV(rpc_pb2_grpc.KVServicer):
        async def Put(self, request, context):  # noqa: N802 (gRPC's method name)
            return rpc_pb2.PutResponse()

    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(EmptyKV(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _serve_http(port: int) -> None:
    import asyncio

    from aiohttp import web

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v3/kv/put", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_empty_server(protocol: str) -> tuple[multiprocessing.Process, int]:
    """An empty server in a child process, once it accepts connections."""
    port = free_port()
    server = multiprocessing.get_context("fork").Process(
        target=empty_kv_server, args=(protocol, port), daemon=True)
    server.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not listening(port):
        if time.monotonic() > deadline or not server.is_alive():
            server.kill()
            raise SystemExit(f"petcd-bench floors: the empty {protocol} server did not start")
        time.sleep(0.05)
    return server, port


def empty_call_floor(protocol: str, count: int, val_size: int) -> Floor:
    from . import bench  # which imports this module for its `floors` command

    server, port = start_empty_server(protocol)
    try:
        args = bench.parser().parse_args([
            "put", "--endpoints", f"127.0.0.1:{port}", "--protocol", protocol,
            "--conns", "1", "--total", str(count), "--workers", "1",
            "--val-size", str(val_size)])
        tallies, _ = bench.collect(bench.jobs(args), progress=False)
    finally:
        server.kill()
        server.join(START_TIMEOUT_S)
    latencies = _successes(tallies, f"the empty {protocol} server")
    name = ("gRPC call (empty grpc.aio Put, 1 connection)" if protocol == "grpc"
            else "HTTP request (empty aiohttp put, 1 connection)")
    return floor_of(name, latencies)


def _successes(tallies: list[Tally], what: str) -> list[float]:
    latencies = [x for t in tallies for x in t.latencies_s]
    if not latencies or any(t.error_count for t in tallies):
        errors = [e for t in tallies for e in t.errors]
        raise SystemExit(f"petcd-bench floors: requests to {what} failed: {errors[:3]}")
    return latencies


# -- the command ------------------------------------------------------------------

def measure(args: argparse.Namespace) -> list[Floor]:
    steps: list[Callable[[], Floor]] = [
        lambda: fdatasync_floor(args.data_dir, args.count),
        lambda: zeromq_hop_floor(args.count, args.val_size),
        lambda: empty_call_floor("grpc", args.count, args.val_size),
        lambda: empty_call_floor("http", args.count, args.val_size)]
    return [step() for step in steps]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcd-bench floors", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=".",
                   help="where the fdatasync file goes: a member's data dir's disk")
    p.add_argument("--count", type=int, default=2000, help="measurements of each floor")
    p.add_argument("--val-size", type=int, default=256,
                   help="value bytes of each empty put and each hop's payload")
    return p


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.count < 1 or args.val_size < 0:
        p.error("--count must be >= 1 and --val-size >= 0")
    if not os.path.isdir(args.data_dir):
        p.error(f"--data-dir {args.data_dir}: not a directory")
    print(f"floors: each measured alone, one at a time, {args.count} times")
    for floor in measure(args):
        print(floor.line(), flush=True)
    return 0
