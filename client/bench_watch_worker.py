"""A `petcd-bench watch` worker process: a share of the Watch streams on one event loop.

Each stream is one bidirectional etcdserverpb.Watch/Watch call carrying many watches,
as etcd's own `benchmark watch` and clientv3 multiplex them; a worker opens one
channel (one TCP connection) per member it talks to and runs all its streams over it.
A stream's reader runs from the start, beside the create requests, because the member
answers each create and stops reading requests once its answers fill the connection's
window. The member numbers a stream's watches in the order it creates them (etcd does,
from 0), so the n-th `created` answer is the n-th watch asked for.

The worker publishes how many of its watches exist, how many events arrived and how
many streams failed to its slots of a shared array (the parent waits on those), and
sends its events and CPU time to the parent once told to stop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_grpc import target
from .bench_watch_delivery import Events
from .bench_watch_plan import WatchPlan
from .bench_worker import ERRORS_KEPT

POLL_S = 0.05  # how often a worker publishes its counts and looks for the stop signal
# Slots of each worker in the shared progress array.
CREATED, RECEIVED, FAILED = range(3)
SLOTS = 3


class StreamFailed(Exception):
    """The member ended or broke a stream, or canceled one of its watches."""


@dataclass(frozen=True, slots=True)
class WatchJob:
    plan: WatchPlan
    endpoints: tuple[str, ...]  # the watch endpoints, all of them: stream s uses s mod E
    worker: int  # its number: which slots of the progress array are its own
    streams: range


@dataclass(slots=True)
class WatchTally:
    events: Events = field(default_factory=Events)
    errors: list[str] = field(default_factory=list)  # the first ERRORS_KEPT
    error_count: int = 0
    created: int = 0
    create_started_s: float = 0.0  # time.monotonic() when the first create was sent
    create_finished_s: float = 0.0  # when the last `created` answer arrived
    create_cpu_s: float = 0.0  # CPU time spent creating the watches
    cpu_s: float = 0.0  # CPU time from the last creation until told to stop

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(message)


def create_request(plan: WatchPlan, watch: int) -> pb.WatchRequest:
    key, range_end = plan.watch_range(watch)
    return pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, range_end=range_end))


async def _read(call: grpc.aio.StreamStreamCall, watches: range, tally: WatchTally) -> None:
    """Answers of one stream until it ends: creations, then events, recorded as they come."""
    pending, watch_of = iter(watches), {}  # the member's watch_id -> our watch number
    add = tally.events.add
    while True:
        resp = await call.read()
        if resp is grpc.aio.EOF:
            raise StreamFailed("the member ended the stream")
        received_s = time.monotonic()
        if resp.created:
            watch_of[resp.watch_id] = next(pending, None)
            if watch_of[resp.watch_id] is None:
                raise StreamFailed(f"watch id {resp.watch_id} created, never asked for")
            tally.created += 1
            tally.create_finished_s = received_s
        elif resp.canceled:
            raise StreamFailed(f"watch canceled: {resp.cancel_reason or 'no reason given'}")
        if resp.events and watch_of.get(resp.watch_id) is None:
            raise StreamFailed(f"events for watch id {resp.watch_id}, never created")
        for event in resp.events:
            add(watch_of[resp.watch_id], event.kv.mod_revision, received_s)


async def _stream(channel: grpc.aio.Channel, plan: WatchPlan, stream: int,
                  tally: WatchTally) -> None:
    call = pb_grpc.WatchStub(channel).Watch()
    watches = plan.stream_watches(stream)
    reader = asyncio.ensure_future(_read(call, watches, tally))
    try:
        for watch in watches:
            await call.write(create_request(plan, watch))
        await reader
    except grpc.aio.AioRpcError as err:
        tally.error(f"watch stream {stream}: {err.code().name}: {err.details()}")
    except (StreamFailed, asyncio.InvalidStateError) as err:  # the latter: write after the end
        tally.error(f"watch stream {stream}: {str(err) or type(err).__name__}")
    finally:
        reader.cancel()
        call.cancel()


def _publish(tally: WatchTally, progress, worker: int) -> None:
    base = worker * SLOTS
    progress[base + CREATED] = tally.created
    progress[base + RECEIVED] = len(tally.events)
    progress[base + FAILED] = tally.error_count


async def _work(job: WatchJob, progress, stop) -> WatchTally:
    tally = WatchTally()
    expected = sum(len(job.plan.stream_watches(s)) for s in job.streams)
    channels = {e: grpc.aio.insecure_channel(target(job.endpoints[e]))
                for e in {s % len(job.endpoints) for s in job.streams}}
    # Start-up (interpreter, imports) is left out: it is not a cost of the watches.
    cpu_s, tally.create_started_s = time.process_time(), time.monotonic()
    streams = [asyncio.ensure_future(_stream(channels[s % len(job.endpoints)], job.plan,
                                             s, tally)) for s in job.streams]
    creating = True
    while not stop.is_set():
        if creating and tally.created == expected:
            creating, tally.create_cpu_s = False, time.process_time() - cpu_s
            cpu_s = time.process_time()
        _publish(tally, progress, job.worker)
        await asyncio.sleep(POLL_S)
    tally.cpu_s = time.process_time() - cpu_s
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    for channel in channels.values():
        await channel.close()
    return tally


def worker(job: WatchJob, progress, stop, out: multiprocessing.Queue) -> None:
    out.put(asyncio.run(_work(job, progress, stop)))
