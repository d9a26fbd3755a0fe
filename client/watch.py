"""A watch that outlives its member: etcd's clientv3 resumption, on grpcio.

    with client.watch("k/", prefix=True) as w:
        for resp in w:        # every WatchResponse: `created` ones, progress, events
            ...
        w.get(timeout_s=1.0)  # one at a time; None if nothing came in time

Each watch has its own gRPC Watch stream, read by a worker thread into a bounded
inbox: a consumer that stops reading stops the worker, and grpc's flow control then
holds the server back. When the stream breaks (the member died, UNAVAILABLE, a reset
connection), the worker opens a new one on the next endpoint, round robin, starting at
the revision after the last one it passed on, so every event is yielded exactly once;
it raises EtcdError (through `get` and the iterator) once `timeout_s` pass without a
stream created anywhere. A `canceled` response (compacted start revision, cancel(),
an error reason) is yielded and ends the watch: there is nothing to resume.

Fragments (fragment=True): etcd splits a large response into several, all but the last
with `fragment` set. They are yielded as received, not joined (clientv3 joins them);
a resumption inside a fragmented revision drops the events of that revision that were
already yielded, so none repeats.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc
from petcd.client import requestq
from petcd.client.connection import Connection, Connections
from petcd.client.errors import DEADLINE_MESSAGE, EtcdError, from_rpc_error, is_server_error
from petcd.client.streamreader import StreamReader

INBOX_SIZE = 1024  # responses held for a slow consumer before the worker waits
OUTBOX_SIZE = 16  # requests queued for the stream (progress requests beyond are dropped)
BACKOFF_FIRST_S = 0.05  # pause after a round of endpoints that all failed, doubling...
BACKOFF_MAX_S = 1.0  # ...up to this
POLL_S = 0.1  # how long a cancel waits for room in a full outbox
KEPT_FAILURES = 8  # the failures an EtcdError names, newest last
# etcd's rpctypes.ErrNoLeader: clientv3 ends a watch on it rather than retry.
NO_LEADER_MESSAGE = "etcdserver: no leader"
_RESUMABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.CANCELLED)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a new stream starts for the caller to see each event once: every event
    below `revision` has been yielded, and the first `seen` events at `revision`."""
    revision: int  # 0: a watch from "now" whose first `created` has not come yet
    # Non-zero only inside a fragmented response: etcd never splits one revision's
    # events over whole responses, so after one the next revision is untouched.
    seen: int = 0
    skip: int = 0  # events at `revision` the current stream repeats: drop them

    def __post_init__(self) -> None:
        assert 0 <= self.skip <= self.seen, self

    def resumed(self) -> ResumePoint:
        """The point for a new stream started at `revision`."""
        return ResumePoint(self.revision, self.seen, skip=self.seen)


def advance(point: ResumePoint,
            resp: pb.WatchResponse) -> tuple[ResumePoint, pb.WatchResponse]:
    """The point after `resp`, and `resp` without the events its stream repeated."""
    if resp.created:
        fresh = point.revision == 0
        return (ResumePoint(resp.header.revision + 1) if fresh else point), resp
    if not resp.events:
        if is_progress_notify(resp) and point.seen == 0:
            return ResumePoint(max(point.revision, resp.header.revision + 1)), resp
        return point, resp
    revision, seen, skip = point.revision, point.seen, point.skip
    kept = []
    for event in resp.events:
        event_revision = event.kv.mod_revision
        if event_revision == revision and skip:
            skip -= 1
            continue
        if event_revision == revision:
            seen += 1
        else:
            revision, seen, skip = event_revision, 1, 0
        kept.append(event)
    after = ResumePoint(revision, seen, skip) if resp.fragment else ResumePoint(revision + 1)
    if len(kept) == len(resp.events):
        return after, resp
    trimmed = pb.WatchResponse()
    trimmed.CopyFrom(resp)
    del trimmed.events[:]
    trimmed.events.extend(kept)
    return after, trimmed


def is_progress_notify(resp: pb.WatchResponse) -> bool:
    """clientv3's IsProgressNotify."""
    return (not resp.events and not resp.created and not resp.canceled
            and resp.compact_revision == 0 and resp.header.revision != 0)


class Watch(StreamReader):
    """Iterate for every response; get(timeout_s) for one (None if none came in time
    or the watch is over; EtcdError if it failed: no endpoint for the timeout, or an
    error clientv3 does not retry, no leader); cancel(), close()."""

    def __init__(self, connections: Connections, endpoints: tuple[str, ...],
                 create: pb.WatchCreateRequest, *, timeout_s: float,
                 require_leader: bool = False,
                 metadata: tuple[tuple[str, str], ...] = ()) -> None:
        """`metadata`: sent with every stream (the auth token)."""
        assert endpoints, "a watch needs an endpoint"
        super().__init__(INBOX_SIZE, "petcd-watch")
        self._connections = connections
        self._rotation = _Rotation(endpoints, timeout_s)
        self._create = create
        # etcd's clientv3.WithRequireLeader: the server ends the stream without a leader.
        self._metadata = ((("hasleader", "true"),) if require_leader else ()) + metadata
        self._point = ResumePoint(create.start_revision)
        self._lock = threading.Lock()  # guards the three below and _stream.watch_id
        self._stream: _Stream | None = None
        self._cancel_requested = False
        self._progress_requested = False  # while there is no stream to send it on
        self._start()

    # The consumer's side

    @property
    def next_revision(self) -> int:
        """The revision a resumed stream would start from (0: not known yet)."""
        return self._point.revision

    def request_progress(self) -> None:
        """Ask for a progress notification: a response without events whose
        header.revision every event up to has been sent (while the watch has no
        stream, it is asked on the next one)."""
        with self._lock:
            stream = self._stream
            self._progress_requested = stream is None
        if stream is not None:
            stream.send_progress_request()

    def cancel(self) -> None:
        """Ask the server to cancel: the iterator ends after its `canceled` response
        (or at once if the stream breaks first)."""
        with self._lock:
            if self._cancel_requested:
                return
            self._cancel_requested = True
            stream = self._stream
            watch_id = None if stream is None else stream.watch_id
        if watch_id is not None:  # else the worker sends it once `created` says the id
            stream.send_cancel(watch_id)

    def _is_last(self, item: pb.WatchResponse) -> bool:
        return item.canceled

    def _stop(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.end()

    # The worker's side

    def _follow(self) -> None:
        """One stream after another until the watch is over."""
        while not self._closed.is_set():
            endpoint = self._rotation.next(self._closed)
            conn = self._connections.get(endpoint)
            if conn is None:
                self._rotation.failed(endpoint, "cannot connect")
                continue
            self._point = self._point.resumed()
            create = pb.WatchCreateRequest()
            create.CopyFrom(self._create)
            create.start_revision = self._point.revision
            stream = _Stream(conn, create, self._metadata, self._rotation.remaining_s())
            if self._serve(stream):
                return

    def _serve(self, stream: _Stream) -> bool:
        """Pass the stream's responses on; True if the watch is over, False if the
        stream broke and another should take over."""
        with self._lock:
            if self._closed.is_set():  # close() came while the stream was opening
                stream.end()
                return True
            self._stream = stream
            if self._progress_requested:
                stream.send_progress_request()
                self._progress_requested = False
        try:
            for resp in stream.responses():
                if not self._take(stream, resp):
                    return True
            self._rotation.failed(stream.endpoint, "the server ended the stream")
        except grpc.RpcError as exc:
            if self._closed.is_set():
                return True
            if not _resumable(exc):
                raise from_rpc_error(exc) from None
            if not is_server_error(exc):
                self._connections.drop(stream.endpoint)  # the next use dials afresh
            self._rotation.failed(stream.endpoint, exc.details() or exc.code().name)
        finally:
            with self._lock:
                self._stream = None
            stream.end()
        return self._cancel_requested  # cancelled, then broken: nothing to resume

    def _take(self, stream: _Stream, resp: pb.WatchResponse) -> bool:
        """Pass one response on; False once the watch is over."""
        if resp.created:
            self._rotation.succeeded()
            stream.created()
            with self._lock:
                stream.watch_id = resp.watch_id
                cancel_now = self._cancel_requested
            if cancel_now:
                stream.send_cancel(resp.watch_id)
        self._point, resp = advance(self._point, resp)
        return self._deliver(resp) and not resp.canceled


def _resumable(exc: grpc.RpcError) -> bool:
    """clientv3's rule (isHaltErr): UNAVAILABLE and INTERNAL mean the system will be
    right back, except etcd's "no leader". CANCELLED, since close() is checked first,
    is a stream that was not created in time (see _Stream) or a server going away."""
    return exc.code() in _RESUMABLE_CODES and exc.details() != NO_LEADER_MESSAGE


class _Rotation:
    """Which endpoint to try next, and when to give up: round robin from the endpoint
    after the last one used, a pause after each round that found none (doubling up
    to BACKOFF_MAX_S), EtcdError once `timeout_s` pass from losing the stream (or
    from the start) without a new one created."""

    def __init__(self, endpoints: tuple[str, ...], timeout_s: float) -> None:
        self._endpoints = endpoints
        self._timeout_s = timeout_s
        self._index = -1  # the first try is endpoints[0]: the client's current one
        self._tries = 0  # since the last success
        # When the watch lost its stream (or began without one); None while it has one.
        self._since: float | None = time.monotonic()
        self._backoff_s = BACKOFF_FIRST_S
        self._failures: list[str] = []

    def next(self, closed: threading.Event) -> str:
        if self.remaining_s() <= 0:
            raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE,
                            "watch: " + "; ".join(self._failures))
        if self._tries and self._tries % len(self._endpoints) == 0:
            closed.wait(min(self._backoff_s, self.remaining_s()))
            self._backoff_s = min(2 * self._backoff_s, BACKOFF_MAX_S)
        self._tries += 1
        self._index = (self._index + 1) % len(self._endpoints)
        return self._endpoints[self._index]

    def remaining_s(self) -> float:
        if self._since is None:
            return self._timeout_s
        return self._timeout_s - (time.monotonic() - self._since)

    def failed(self, endpoint: str, why: str) -> None:
        if self._since is None:
            self._since = time.monotonic()
        self._failures = [*self._failures[1 - KEPT_FAILURES:], f"{endpoint}: {why}"]

    def succeeded(self) -> None:
        self._tries, self._since = 0, None
        self._backoff_s, self._failures = BACKOFF_FIRST_S, []


class _Stream:
    """One Watch RPC on one endpoint, carrying this watch alone. Its `created`
    response must come within `created_within_s`, or the RPC is cancelled (a member
    that accepts the connection but never answers must not hold the watch)."""

    def __init__(self, conn: Connection, create: pb.WatchCreateRequest,
                 metadata: tuple[tuple[str, str], ...], created_within_s: float) -> None:
        self.endpoint = conn.endpoint
        self.watch_id: int | None = None  # set from `created`, under Watch._lock
        self._outbox: queue.Queue = queue.Queue(OUTBOX_SIZE + 1)  # +1: the end marker
        self._outbox.put_nowait(pb.WatchRequest(create_request=create))
        stub = rpc_pb2_grpc.WatchStub(conn.channel)
        self._call = stub.Watch(requestq.requests(self._outbox), metadata=metadata)
        self._timer = threading.Timer(max(created_within_s, 0.0), self._call.cancel)
        self._timer.daemon = True
        self._timer.start()

    def responses(self) -> Iterator[pb.WatchResponse]:
        return self._call

    def created(self) -> None:
        self._timer.cancel()

    def send_progress_request(self) -> None:
        try:
            self._outbox.put_nowait(
                pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
        except queue.Full:
            pass  # only progress requests pile up, and one answer serves them all

    def send_cancel(self, watch_id: int) -> None:
        try:
            self._outbox.put(pb.WatchRequest(
                cancel_request=pb.WatchCancelRequest(watch_id=watch_id)), timeout=POLL_S)
        except queue.Full:
            self._call.cancel()  # the server drops the watch with its stream

    def end(self) -> None:
        """Cancel the RPC and end its request iterator (grpc's sending thread waits on
        it until it ends)."""
        self._timer.cancel()
        self._call.cancel()
        requestq.close(self._outbox)
