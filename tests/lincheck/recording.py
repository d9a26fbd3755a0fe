"""petcd's Python client, recording every call into a History.

    recorder = RecordingClient(Client(endpoints), history, "writer-1")
    recorder.put("k", "v1")      # returns the response, or raises what the client raised

Which errors mean "not applied" and which "who knows": etcd refuses some requests
before they are proposed, or fails them in apply without touching the store (a bad
request, no permission, no space, a missing lease). Everything else (a deadline, a
lost connection, "leader changed", "no leader", "request timed out") may have been
applied, then or later. Unknown is the safe side: it never makes a good history look
bad, it only lets more histories pass, so every code not listed is unknown.
"""

from __future__ import annotations

import grpc

from petcd.client import Client
from petcd.client import requests as rq
from petcd.client.errors import EtcdError

from .history import Call, History, Kind

DEFINITE_FAILURES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT,  # too large, too many ops, empty key, duplicate key
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # NOSPACE: only reads and deletes go through
    grpc.StatusCode.NOT_FOUND,  # lease not found
    grpc.StatusCode.OUT_OF_RANGE,  # compacted revision (reads)
})


class RecordingClient:
    """Single-key calls on behalf of one client of the history (one thread)."""

    def __init__(self, client: Client, history: History, name: str) -> None:
        self.client, self.history, self.name = client, history, name

    def put(self, key: str, value: str):
        call = self.history.invoke(self.name, Kind.PUT, key, value)
        resp = _recorded(call, lambda: self.client.put(key, value))
        call.ok(revision=resp.header.revision)
        return resp

    def get(self, key: str):
        """A linearizable read; records the value as text, None if absent."""
        call = self.history.invoke(self.name, Kind.GET, key)
        resp = _recorded(call, lambda: self.client.get(key))
        call.ok(resp.kvs[0].value.decode() if resp.kvs else None, revision=resp.header.revision)
        return resp

    def delete(self, key: str):
        call = self.history.invoke(self.name, Kind.DELETE, key)
        resp = _recorded(call, lambda: self.client.delete(key))
        call.ok(resp.deleted > 0, revision=resp.header.revision)
        return resp

    def cas(self, key: str, expected: str | None, new: str):
        """Put `new` if the key holds `expected` (None: if it is absent), in one txn."""
        call = self.history.invoke(self.name, Kind.CAS, key, (expected, new))
        held = rq.compare("create", key, "=", 0) if expected is None else rq.compare("value", key, "=", expected)
        resp = _recorded(call, lambda: self.client.txn([held], [rq.put_op(key, new)]))
        call.ok(resp.succeeded, revision=resp.header.revision)
        return resp


def _recorded(call: Call, send):
    """send(), finishing `call` as failed or unknown if it raises."""
    try:
        return send()
    except EtcdError as err:
        if err.code in DEFINITE_FAILURES:
            call.failed()
        else:
            call.unknown()
        raise
    except (ValueError, TypeError):  # refused by the client before anything was sent
        call.failed()
        raise
    except BaseException:
        call.unknown()
        raise
