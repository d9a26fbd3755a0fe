"""A `petcd-bench lease-*` worker process: a share of the leases and their keep-alive
streams on one event loop.

The worker opens one channel (one TCP connection) per member it talks to, grants its
leases with at most MAX_INFLIGHT_CALLS unary calls in flight (each lease on the member
of its stream; lease-expiry also puts the lease's key), and hands each lease to its
stream as soon as its grant is answered: a lease granted early must not expire while
the last ones are granted. Once the parent opens the measured window it notes its CPU
time (and with --rate-max lets its streams go flat out); once told to stop it stops
renewing and, for lease-keepalive, reads the time-to-live of every lease it granted and
revokes them all, so that runs do not pile up; for lease-expiry it renews every lease
once more, all at once, and lets them expire.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_grpc import CHANNEL_OPTIONS, target
from .bench_lease_plan import LeasePlan
from .bench_lease_stream import KeepAliveStream, KeepAliveTally
from .bench_lease_workers import POLL_S, Control
from .bench_worker import REQUEST_TIMEOUT_S

MAX_INFLIGHT_CALLS = 32  # grants, puts, time-to-live reads and revokes, per worker
# Slots of each worker in the shared progress array.
GRANTED, ATTACHED, ANSWERED, ERRORS, LOST = range(5)
SLOTS = 5


@dataclass(frozen=True, slots=True)
class LeaseJob:
    plan: LeasePlan
    endpoints: tuple[str, ...]  # all of them: stream s uses s mod E
    streams: range
    expire: bool  # lease-expiry: renew all once more at the end and let them go


@dataclass(slots=True)
class LeaseTally:
    keepalives: KeepAliveTally = field(default_factory=KeepAliveTally)  # and every error
    granted: array = field(default_factory=lambda: array("q"))  # lease IDs
    grant_started_s: float = 0.0  # time.monotonic() when the first grant was sent
    grant_finished_s: float = 0.0  # when the last grant was answered
    keys_attached: int = 0
    checked: int = 0  # leases whose time-to-live was read at the end
    expired_at_end: set[int] = field(default_factory=set)  # IDs with time-to-live -1
    revoked: int = 0
    released_s: float = 0.0  # when it stopped renewing (lease-expiry: the last renewal began)
    release_answered_s: float = 0.0  # lease-expiry: when the last renewal was answered
    cpu_s: float = 0.0  # from the window's opening until told to stop


async def _each(items: Iterable[int], call: Callable[[int], Awaitable[None]]) -> None:
    """call(item) for every item, at most MAX_INFLIGHT_CALLS at a time."""
    pending = iter(items)

    async def runner() -> None:
        for item in pending:
            await call(item)
    await asyncio.gather(*(runner() for _ in range(MAX_INFLIGHT_CALLS)))


class Leases:
    """The worker's leases: granting, checking and revoking them."""

    def __init__(self, job: LeaseJob, tally: LeaseTally) -> None:
        self.job, self.tally = job, tally
        self.channels = {e: grpc.aio.insecure_channel(target(job.endpoints[e]),
                                                      options=CHANNEL_OPTIONS)
                         for e in {s % len(job.endpoints) for s in job.streams}}
        self.streams = {s: KeepAliveStream(self._channel(s), s, tally.keepalives)
                        for s in job.streams}
        self.member_of: dict[int, int] = {}  # lease ID -> stream, for the calls at the end

    def _channel(self, stream: int) -> grpc.aio.Channel:
        return self.channels[stream % len(self.job.endpoints)]

    def _failed(self, what: str, err: grpc.aio.AioRpcError) -> None:
        self.tally.keepalives.error(f"{what}: {err.code().name}: {err.details()}")

    async def grant(self, lease: int) -> None:
        plan, stream = self.job.plan, self.job.plan.stream_of(lease)
        channel = self._channel(stream)
        try:
            resp = await pb_grpc.LeaseStub(channel).LeaseGrant(
                pb.LeaseGrantRequest(TTL=plan.ttl_s), timeout=REQUEST_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            return self._failed(f"grant of lease {lease}", err)
        granted_s = time.monotonic()
        if resp.error or resp.TTL <= 0:
            self.tally.keepalives.error(f"grant of lease {lease}: {resp.error or 'TTL <= 0'}")
            return
        self.tally.granted.append(resp.ID)
        self.tally.grant_finished_s = granted_s
        self.member_of[resp.ID] = stream
        self.streams[stream].add(resp.ID, granted_s, resp.TTL)
        if plan.key_prefix:
            await self._attach(channel, plan.key(lease), resp.ID)

    async def _attach(self, channel: grpc.aio.Channel, key: bytes, lease_id: int) -> None:
        try:
            await pb_grpc.KVStub(channel).Put(pb.PutRequest(key=key, value=b"x", lease=lease_id),
                                              timeout=REQUEST_TIMEOUT_S)
            self.tally.keys_attached += 1
        except grpc.aio.AioRpcError as err:
            self._failed(f"put of {key!r} with lease {lease_id:x}", err)

    async def check(self, lease_id: int) -> None:
        """Whether the lease outlived the run: time-to-live -1 means it expired."""
        stub = pb_grpc.LeaseStub(self._channel(self.member_of[lease_id]))
        try:
            resp = await stub.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease_id),
                                              timeout=REQUEST_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            return self._failed(f"time-to-live of lease {lease_id:x}", err)
        self.tally.checked += 1
        if resp.TTL == -1:
            self.tally.expired_at_end.add(lease_id)

    async def revoke(self, lease_id: int) -> None:
        stub = pb_grpc.LeaseStub(self._channel(self.member_of[lease_id]))
        try:
            await stub.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease_id), timeout=REQUEST_TIMEOUT_S)
            self.tally.revoked += 1
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:  # a lost lease: nothing to revoke
                self._failed(f"revoke of lease {lease_id:x}", err)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


def _publish(tally: LeaseTally, control: Control) -> None:
    control.publish(GRANTED, len(tally.granted))
    control.publish(ATTACHED, tally.keys_attached)
    control.publish(ANSWERED, len(tally.keepalives.answered_s))
    control.publish(ERRORS, tally.keepalives.error_count)
    control.publish(LOST, len(tally.keepalives.lost))


async def _keep_alive_until_stopped(job: LeaseJob, leases: Leases, control: Control) -> None:
    tally, cpu_from_s = leases.tally, None
    while not control.stopping():
        if cpu_from_s is None and control.window_opened_s():
            cpu_from_s = time.process_time()
            for stream in leases.streams.values() if job.plan.rate_max else ():
                stream.go_flat_out()
        _publish(tally, control)
        await asyncio.sleep(POLL_S)
    tally.cpu_s = time.process_time() - cpu_from_s if cpu_from_s is not None else 0.0


async def _work(job: LeaseJob, control: Control) -> LeaseTally:
    tally = LeaseTally()
    leases = Leases(job, tally)
    tally.grant_started_s = time.monotonic()
    granting = asyncio.ensure_future(_each(job.plan.worker_leases(job.streams), leases.grant))
    await _keep_alive_until_stopped(job, leases, control)
    granting.cancel()  # done already, unless the run is given up
    await asyncio.gather(granting, return_exceptions=True)
    if not job.expire:
        # Checked while the streams still renew them: reading 10,000 time-to-lives can
        # take longer than what is left of a lease's TTL after its last renewal.
        await _each(tally.granted, leases.check)
    tally.released_s = time.monotonic()
    await asyncio.gather(*(s.finish(refresh_all=job.expire) for s in leases.streams.values()))
    tally.release_answered_s = max(tally.keepalives.answered_s[-1:], default=0.0)
    if not job.expire:
        await _each(tally.granted, leases.revoke)
    _publish(tally, control)
    await leases.close()
    return tally


def worker(job: LeaseJob, control: Control, out: multiprocessing.Queue) -> None:
    out.put(asyncio.run(_work(job, control)))
