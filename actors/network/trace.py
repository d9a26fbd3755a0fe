"""Where a write's time goes: the stage times of the writes a client asks to trace.

A client asks by sending the gRPC metadata key `petcd-trace` (or the HTTP header
`Petcd-Trace`) with a write (Put, DeleteRange, Txn, a lease grant or revoke...); the
answer carries the trailing metadata (or response header) `petcd-trace`:
"stage=us,stage=us,..." with each stage's time in microseconds after `arrived`. Every
time is this machine's CLOCK_MONOTONIC (time.monotonic_ns), which all of a member's
processes share, so stages measured in different actors subtract.

    arrived          the network actor has the request (parsed, checked)
    proposed         its PROPOSE left for the raft actor
    raft_received    the raft actor took the PROPOSE from its inbox
    appended         the entry was in a Ready: its SAVE left for the WAL actor (on the
                     leader, with the appends to the followers)
    persisted        the WAL actor said that SAVE is durable (PERSISTED); missing when
                     the entry was committed first (a quorum of the others' copies
                     commits it: this member's own fsync was not on the answer's path)
    committed        the entry was committed: its APPLY left for the apply actor
    apply_received   the apply actor took the batch holding it from its inbox
    applied          the batch was applied and answered (before its store commit)
    responded        the network actor has the answer (APPLIED)
    returned         the handler returns the response to grpc.aio or aiohttp (the rest of
                     the client's round trip is theirs, the front door's and the client's)

A member that forwards the write to the leader (a follower) stamps what it sees
itself: its raft actor's `appended` is when the leader's append reached it.
Untraced writes cost nothing: the flag rides with the proposal (PROPOSE's third
element), the raft actor reports only traced writes (TRACE), and the apply actor's
two times per batch ride on APPLIED.
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from typing import Any

METADATA_KEY = "petcd-trace"  # gRPC metadata (lower case), and the HTTP header's name
HTTP_HEADER = "Petcd-Trace"
STAGES = ("arrived", "proposed", "raft_received", "appended", "persisted", "committed",
          "apply_received", "applied", "responded", "returned")
MAX_TRACES = 10_000  # traced writes in flight at once; the oldest are dropped beyond

# The trace of the request the current task serves (set by rpc.py and gateway.py).
current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("petcd_trace",
                                                                      default=None)


class Trace:
    """One traced write's stage times (ns)."""

    __slots__ = ("stamps",)

    def __init__(self) -> None:
        self.stamps: dict[str, int] = {"arrived": time.monotonic_ns()}

    def mark(self, stage: str, at_ns: int | None = None) -> None:
        assert stage in STAGES, stage
        self.stamps.setdefault(stage, time.monotonic_ns() if at_ns is None else at_ns)

    def encode(self) -> str:
        start = self.stamps["arrived"]
        return ",".join(f"{stage}={(self.stamps[stage] - start) // 1000}"
                        for stage in STAGES if stage in self.stamps)


def decode(text: str) -> dict[str, int]:
    """A `petcd-trace` value: stage -> microseconds after `arrived`."""
    out: dict[str, int] = {}
    for part in text.split(","):
        stage, _, micros = part.partition("=")
        if stage in STAGES and micros.lstrip("-").isdigit():
            out[stage] = int(micros)
    return out


class Traces:
    """The traced writes in flight, by request id (the network actor's)."""

    def __init__(self, max_traces: int = MAX_TRACES) -> None:
        assert max_traces > 0, "every table is bounded"
        self.max_traces = max_traces
        self._by_id: OrderedDict[int, Trace] = OrderedDict()
        self._batch_ns: tuple[int, int] | None = None  # the last APPLIED's apply times

    def proposed(self, request_id: int, trace: Trace) -> None:
        self._by_id[request_id] = trace
        if len(self._by_id) > self.max_traces:
            self._by_id.popitem(last=False)

    def sent(self, request_ids: list[int]) -> None:
        """Their PROPOSE is being handed to the raft actor's socket."""
        now = time.monotonic_ns()
        for request_id in request_ids:
            trace = self._by_id.get(request_id)
            if trace is not None:
                trace.mark("proposed", now)

    def on_raft(self, payload: Any) -> None:
        """TRACE from the raft actor: [[request_id, [[stage, ns], ...]], ...]."""
        for request_id, stamps in payload:
            trace = self._by_id.get(request_id)
            if trace is not None:
                for stage, at_ns in stamps:
                    if stage in STAGES:
                        trace.mark(stage, int(at_ns))

    def on_applied(self, payload: Any) -> None:
        """APPLIED's apply times of its batch (elements 4 and 5, nil at start)."""
        if payload[4] is not None:
            self._batch_ns = (int(payload[4]), int(payload[5]))

    def responded(self, request_id: int) -> None:
        """Its answer came, in the last APPLIED."""
        trace = self._by_id.pop(request_id, None)
        if trace is None:
            return
        if self._batch_ns is not None:
            trace.mark("apply_received", self._batch_ns[0])
            trace.mark("applied", self._batch_ns[1])
        trace.mark("responded")

    def forget(self, request_id: int) -> None:
        self._by_id.pop(request_id, None)
