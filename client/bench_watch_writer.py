"""The writer of `petcd-bench watch`: puts at a fixed rate over one gRPC connection.

Put n is due at start + n / rate and is sent then (open loop: a slow answer does not
delay the next put), with at most MAX_INFLIGHT_PUTS unanswered; when the member falls
behind the schedule, the writer sends as fast as answers free places, so a rate above
what the member sustains measures its throughput (the puts not sent by then are
dropped: the run lasts D seconds, plus the last answers). Each acknowledged put's number,
revision and arrival time go to the delivery check (bench_watch_delivery).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_grpc import target
from .bench_watch_delivery import Puts
from .bench_watch_plan import WatchPlan
from .bench_worker import ERRORS_KEPT, REQUEST_TIMEOUT_S

# As many as petcd-bench put's usual 64 connections keep in flight.
MAX_INFLIGHT_PUTS = 64


@dataclass(slots=True)
class WriterTally:
    asked: int  # puts due over the run: rate x duration
    duration_s: float  # the schedule's length
    puts: Puts = field(default_factory=Puts)
    latencies_s: list[float] = field(default_factory=list)  # sent -> acknowledged
    errors: list[str] = field(default_factory=list)  # the first ERRORS_KEPT
    error_count: int = 0
    started_s: float = 0.0  # time.monotonic() when put 0 was due
    finished_s: float = 0.0  # when the last answer arrived
    cpu_s: float = 0.0  # the writer's process, while it wrote

    @property
    def elapsed_s(self) -> float:
        """The schedule's length, or longer if the answers came later (the last put is
        due 1/rate before the schedule ends: an on-time writer achieves the rate)."""
        return max(self.duration_s, self.finished_s - self.started_s)


async def _put(kv: pb_grpc.KVStub, plan: WatchPlan, number: int, value: bytes,
               tally: WriterTally, slots: asyncio.Semaphore) -> None:
    sent = time.monotonic()
    try:
        resp = await kv.Put(pb.PutRequest(key=plan.put_key(number), value=value),
                            timeout=REQUEST_TIMEOUT_S)
        acked = time.monotonic()
    except grpc.aio.AioRpcError as err:
        tally.error_count += 1
        if len(tally.errors) < ERRORS_KEPT:
            tally.errors.append(f"put: {err.code().name}: {err.details()}")
        return
    finally:
        slots.release()
    tally.puts.add(number, resp.header.revision, acked)
    tally.latencies_s.append(acked - sent)


async def write(plan: WatchPlan, endpoint: str, rate: float, duration_s: float) -> WriterTally:
    assert rate > 0 and duration_s > 0
    tally = WriterTally(asked=int(rate * duration_s), duration_s=duration_s)
    value, slots = plan.puts.value(), asyncio.Semaphore(MAX_INFLIGHT_PUTS)
    started_cpu_s = time.process_time()
    async with grpc.aio.insecure_channel(target(endpoint)) as channel:
        kv = pb_grpc.KVStub(channel)
        tally.started_s = time.monotonic()
        deadline_s = tally.started_s + duration_s
        async with asyncio.TaskGroup() as group:
            for number in range(tally.asked):
                if time.monotonic() >= deadline_s:  # behind the schedule: D bounds the run
                    break
                due_in_s = tally.started_s + number / rate - time.monotonic()
                if due_in_s > 0:
                    await asyncio.sleep(due_in_s)
                await slots.acquire()
                group.create_task(_put(kv, plan, number, value, tally, slots))
        tally.finished_s = time.monotonic()
    tally.cpu_s = time.process_time() - started_cpu_s
    tally.latencies_s.sort()
    return tally
