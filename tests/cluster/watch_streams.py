"""A raw etcd Watch stream for tests: WatchRequests in, WatchResponses out, every wait
bounded, reading pausable (a client that stops reading)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb

WAIT_S = 10.0
_END = object()


class RawWatch:
    def __init__(self, port: int, metadata: tuple[tuple[str, str], ...] = (),
                 serialize: Callable[[Any], bytes] = pb.WatchRequest.SerializeToString) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                             options=[("grpc.max_send_message_length", -1),
                                                      ("grpc.max_receive_message_length", -1)])
        method = self.channel.stream_stream("/etcdserverpb.Watch/Watch",
                                            request_serializer=serialize,
                                            response_deserializer=pb.WatchResponse.FromString)
        self._requests: queue.Queue[Any] = queue.Queue()
        self._responses: queue.Queue[Any] = queue.Queue()
        self.reading = threading.Event()
        self.reading.set()
        self.call = method(self._request_iter(), metadata=metadata or None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iter(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is _END:
                return
            yield request

    def _read(self) -> None:
        try:
            while True:
                self.reading.wait()
                self._responses.put(next(self.call))
        except StopIteration:
            self._responses.put(_END)
        except grpc.RpcError as err:
            self._responses.put(err)

    def send(self, request: Any) -> None:
        self._requests.put(request)

    def create(self, key: bytes, range_end: bytes = b"", **options: Any) -> None:
        self.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=key, range_end=range_end, **options)))

    def cancel(self, watch_id: int) -> None:
        self.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=watch_id)))

    def progress(self) -> None:
        self.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def next(self, timeout_s: float = WAIT_S) -> pb.WatchResponse:
        """The next response; raises the stream's RpcError, or AssertionError on timeout."""
        try:
            got = self._responses.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no watch response within {timeout_s} s") from None
        if isinstance(got, grpc.RpcError):
            raise got
        assert got is not _END, "the stream ended"
        return got

    def quiet(self, timeout_s: float = 0.5) -> bool:
        """True if no response comes within timeout_s."""
        try:
            got = self._responses.get(timeout=timeout_s)
        except queue.Empty:
            return True
        self._responses.queue.appendleft(got)
        return False

    def created(self, key: bytes, range_end: bytes = b"", **options: Any) -> pb.WatchResponse:
        self.create(key, range_end, **options)
        resp = self.next()
        assert resp.created, resp
        return resp

    def events(self, count: int, timeout_s: float = WAIT_S) -> list[Any]:
        """The next `count` events, across responses (which must carry nothing else)."""
        got: list[Any] = []
        while len(got) < count:
            resp = self.next(timeout_s)
            assert resp.events and not (resp.created or resp.canceled), resp
            got.extend(resp.events)
        assert len(got) == count, got
        return got

    def close(self) -> None:
        self._requests.put(_END)
        self.call.cancel()
        self.channel.close()

    def __enter__(self) -> RawWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
