"""A `petcd-bench lock` worker process: a share of the contenders, each a coroutine.

Contender c talks to endpoint c mod E over the worker's channel to it. It is granted
its own lease, kept alive on the worker's LeaseKeepAlive stream to that member
(bench_lease_stream, every TTL/3), and once the parent opens the window it loops until
told to stop: v3lock Lock(name, its lease), a Range of the key Lock returned (its
create revision is the fencing revision), hold, Unlock; each hold as it saw it goes to
the exclusion check (bench_lock_check). A contender waiting when told to stop still
takes its turn and releases it. At the end each revokes its lease.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from ..api.v3lockpb import v3lock_pb2 as lock_pb
from ..api.v3lockpb import v3lock_pb2_grpc as lock_grpc
from .bench_grpc import CHANNEL_OPTIONS, target
from .bench_lease_stream import KeepAliveStream, KeepAliveTally
from .bench_lease_workers import POLL_S, Control
from .bench_lock_check import Hold
from .bench_worker import REQUEST_TIMEOUT_S

# A Lock waits for every contender ahead of it: C holds of H ms plus their round trips.
LOCK_TIMEOUT_S = 60.0
# Slots of each worker in the shared progress array.
READY, ACQUIRED, ERRORS = range(3)
SLOTS = 3


@dataclass(frozen=True, slots=True)
class LockJob:
    name: bytes
    endpoints: tuple[str, ...]
    contenders: range  # this worker's
    ttl_s: int
    hold_s: float


@dataclass(slots=True)
class LockTally:
    holds: list[Hold] = field(default_factory=list)
    keepalives: KeepAliveTally = field(default_factory=KeepAliveTally)  # and every error
    ready: int = 0  # contenders holding a lease
    cpu_s: float = 0.0  # from the window's opening until every contender finished


class Contender:
    def __init__(self, number: int, job: LockJob, channel: grpc.aio.Channel,
                 stream: KeepAliveStream, tally: LockTally) -> None:
        self.number, self.job, self.stream, self.tally = number, job, stream, tally
        self.lease_stub, self.kv = pb_grpc.LeaseStub(channel), pb_grpc.KVStub(channel)
        self.lock = lock_grpc.LockStub(channel)
        self.lease_id = 0

    async def start(self) -> bool:
        resp = await self.lease_stub.LeaseGrant(pb.LeaseGrantRequest(TTL=self.job.ttl_s),
                                                timeout=REQUEST_TIMEOUT_S)
        if resp.error or resp.TTL <= 0:
            self.tally.keepalives.error(f"contender {self.number}: grant: "
                                        f"{resp.error or 'TTL <= 0'}")
            return False
        self.lease_id = resp.ID
        self.stream.add(resp.ID, time.monotonic(), resp.TTL)
        self.tally.ready += 1
        return True

    async def hold_once(self) -> Hold:
        sent_s = time.monotonic()
        resp = await self.lock.Lock(lock_pb.LockRequest(name=self.job.name, lease=self.lease_id),
                                    timeout=LOCK_TIMEOUT_S)
        acquired_s = time.monotonic()
        found = await self.kv.Range(pb.RangeRequest(key=resp.key), timeout=REQUEST_TIMEOUT_S)
        ours = [kv for kv in found.kvs if kv.lease == self.lease_id]
        fence = ours[0].create_revision if ours else 0
        await asyncio.sleep(self.job.hold_s)
        released_s = time.monotonic()
        await self.lock.Unlock(lock_pb.UnlockRequest(key=resp.key), timeout=REQUEST_TIMEOUT_S)
        return Hold(self.number, sent_s, acquired_s, fence, released_s, time.monotonic())

    async def contend(self, control: Control) -> None:
        while not control.window_opened_s() and not control.stopping():
            await asyncio.sleep(POLL_S)
        while not control.stopping():
            self.tally.holds.append(await self.hold_once())

    async def stop(self) -> None:
        """Revoke the lease, also after a failure: a key it still holds goes with it."""
        if not self.lease_id:
            return
        try:
            await self.lease_stub.LeaseRevoke(pb.LeaseRevokeRequest(ID=self.lease_id),
                                              timeout=REQUEST_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.failed("revoke", err)

    def failed(self, what: str, err: grpc.aio.AioRpcError) -> None:
        self.tally.keepalives.error(f"contender {self.number}: {what}: "
                                    f"{err.code().name}: {err.details()}")


async def _run(contender: Contender, control: Control) -> None:
    """One contender from its grant to its revoke; a failed call ends it."""
    try:
        if await contender.start():
            await contender.contend(control)
    except grpc.aio.AioRpcError as err:
        contender.failed("lock cycle", err)
    await contender.stop()


def _publish(tally: LockTally, control: Control) -> None:
    control.publish(READY, tally.ready)
    control.publish(ACQUIRED, len(tally.holds))
    control.publish(ERRORS, tally.keepalives.error_count)


async def _work(job: LockJob, control: Control) -> LockTally:
    tally = LockTally()
    members = {c % len(job.endpoints) for c in job.contenders}
    channels = {e: grpc.aio.insecure_channel(target(job.endpoints[e]), options=CHANNEL_OPTIONS)
                for e in members}
    streams = {e: KeepAliveStream(channels[e], e, tally.keepalives) for e in members}
    runs = asyncio.ensure_future(asyncio.gather(*(
        _run(Contender(c, job, channels[c % len(job.endpoints)],
                       streams[c % len(job.endpoints)], tally), control)
        for c in job.contenders)))
    cpu_from_s = None
    while not runs.done():  # ends once told to stop, or when every contender failed
        if cpu_from_s is None and control.window_opened_s():
            cpu_from_s = time.process_time()
        _publish(tally, control)
        await asyncio.wait([runs], timeout=POLL_S)
    tally.cpu_s = time.process_time() - cpu_from_s if cpu_from_s is not None else 0.0
    await asyncio.gather(*(s.finish(refresh_all=False) for s in streams.values()))
    _publish(tally, control)
    for channel in channels.values():
        await channel.close()
    return tally


def worker(job: LockJob, control: Control, out: multiprocessing.Queue) -> None:
    out.put(asyncio.run(_work(job, control)))
