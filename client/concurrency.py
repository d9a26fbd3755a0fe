"""Sessions, locks and elections: etcd's clientv3/concurrency, on the server's v3lock
and v3election services.

A Session is a lease granted with a TTL and kept alive (petcd.client.lease); what a
session owns (a lock's key, a candidate's key) goes with its lease when the process
dies, at the latest one TTL later.

    with client.lock("jobs", ttl=10) as held:      # waits for the lock
        client.txn(compare=[compare("create", held.key, "=", held.revision)],
                   success=[put_op("jobs/state", "done")])

Fencing: `held.revision` is the create revision of the lock's key. Waiters are
served in the order their keys were created, so each holder's revision is higher
than every earlier holder's. A holder whose session was lost (a long pause, a
partition) may not know it yet: guarding each write with a compare of the key's
create revision (above) makes such a write fail instead of overwriting the work of
the next holder, and a resource outside etcd can take `revision` as a fencing token
and refuse any request carrying a lower one.

    election = client.election("leader", ttl=10)
    election.campaign("me")                        # waits until elected
    election.proclaim("me, still")
    election.leader().kv.value                     # any client may ask
    with election.observe() as observation:         # the leader, then each change
        observation.get(timeout_s=1.0)
    election.resign(); election.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import grpc

from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.api.v3lockpb import v3lock_pb2 as lpb
from petcd.client.connection import Connections
from petcd.client.errors import DEADLINE_MESSAGE, EtcdError, from_rpc_error, is_server_error
from petcd.client.requests import Bytes, to_bytes
from petcd.client.streamreader import StreamReader

if TYPE_CHECKING:
    from petcd.client.client import Client

DEFAULT_TTL_S = 60  # clientv3/concurrency's session TTL
# etcd's texts (clientv3/concurrency, v3election) for the same failures.
LOCK_LOST = "lock lost on init"
NOT_LEADER = "election: not leader"
SESSION_EXPIRED = "session expired"
INBOX_SIZE = 64  # leader changes held for a slow observer
POLL_S = 0.1
BACKOFF_S = 0.1
_RESUMABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.CANCELLED)


class Session:
    """A lease of `ttl` seconds, kept alive until close() (which revokes it)."""

    def __init__(self, client: Client, ttl: int = DEFAULT_TTL_S) -> None:
        grant = client.lease_grant(ttl)
        self.lease_id = grant.ID
        self._client = client
        self._keep_alive = client.keep_alive(grant.ID, ttl=grant.TTL)

    @property
    def lost(self) -> bool:
        """True once the lease is gone: whatever the session owned is gone with it."""
        return self._keep_alive.lost

    def close(self) -> None:
        self._keep_alive.close()
        try:
            self._client.lease_revoke(self.lease_id)
        except EtcdError:
            pass  # expired already, or unreachable: then it expires within its TTL

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _session_lost(session: Session) -> str:
    return SESSION_EXPIRED if session.lost else ""


@dataclass(frozen=True, slots=True)
class Held:
    """A lock while it is held."""
    key: bytes  # name/<lease id in hex>: the session's key, deleted on unlock
    revision: int  # the key's create revision: the fencing token (see above)
    acquired_revision: int  # the store's revision when it was granted (ETCD_LOCK_REV)
    session: Session

    @property
    def lost(self) -> bool:
        """True once the session's lease is gone, and with it the lock."""
        return self.session.lost


@contextmanager
def lock(client: Client, name: Bytes, ttl: int = DEFAULT_TTL_S,
         timeout_s: float | None = None) -> Iterator[Held]:
    """Hold lock `name` for the body; wait for it up to `timeout_s` (None: as long as
    the session lives). Unlocked and the session's lease revoked on the way out."""
    with Session(client, ttl) as session:
        request = lpb.LockRequest(name=to_bytes(name), lease=session.lease_id)
        granted = client.call_until(lambda c: c.lock.Lock, request,
                                    stop=lambda: _session_lost(session), timeout_s=timeout_s)
        try:
            kvs = client.get(granted.key).kvs
            if not kvs:
                raise EtcdError(grpc.StatusCode.NOT_FOUND, LOCK_LOST)
            assert kvs[0].lease == session.lease_id, (kvs[0], session.lease_id)
            yield Held(granted.key, kvs[0].create_revision, granted.header.revision, session)
        finally:
            _unlock(client, granted.key)


def _unlock(client: Client, key: bytes) -> None:
    try:
        client.unary(lambda c: c.lock.Unlock, lpb.UnlockRequest(key=key), repeatable=True)
    except EtcdError:
        pass  # revoking the session's lease (next) deletes the key too


class SessionOwner:
    """What holds a session of `ttl` seconds, granted when first needed (again if the
    last one was lost) and revoked by close(): an election's candidate, a read-write
    lock's holder, a double barrier's entrant. Subclasses forget what they held in
    `_forget`."""

    def __init__(self, client: Client, ttl: int) -> None:
        self._client = client
        self._ttl = ttl
        self._session: Session | None = None

    @property
    def lost(self) -> bool:
        """True once the session's lease is gone, and with it all it owned."""
        return self._session is not None and self._session.lost

    def close(self) -> None:
        """Revoke the session: that deletes every key it owned."""
        self._forget()
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _live_session(self) -> Session:
        if self._session is None or self._session.lost:
            if self._session is not None:
                self._session.close()
            self._session = Session(self._client, self._ttl)
        return self._session

    def _forget(self) -> None:
        pass


class Election(SessionOwner):
    """One client's part in election `name`: campaign, proclaim, resign with a session
    of `ttl` seconds (granted at the first campaign); leader() and observe() need none.
    close() leaves the election: revoking the session's lease deletes its key."""

    def __init__(self, client: Client, name: Bytes, ttl: int = DEFAULT_TTL_S) -> None:
        super().__init__(client, ttl)
        self.name = to_bytes(name)
        self.leader_key: epb.LeaderKey | None = None  # set while this client leads

    def campaign(self, value: Bytes, timeout_s: float | None = None) -> epb.LeaderKey:
        """Wait until elected (up to `timeout_s`; None: as long as the session lives),
        then lead with `value`. The key's `rev` guards writes as a lock's revision does."""
        session = self._live_session()
        request = epb.CampaignRequest(name=self.name, lease=session.lease_id,
                                      value=to_bytes(value))
        resp = self._client.call_until(lambda c: c.election.Campaign, request,
                                       stop=lambda: _session_lost(session),
                                       timeout_s=timeout_s)
        self.leader_key = resp.leader
        return resp.leader

    def proclaim(self, value: Bytes) -> epb.ProclaimResponse:
        """Change the leader's value without an election (only while leading)."""
        request = epb.ProclaimRequest(leader=self._leading(), value=to_bytes(value))
        return self._client.unary(lambda c: c.election.Proclaim, request, repeatable=True)

    def leader(self) -> epb.LeaderResponse:
        """The current leader's key and value; EtcdError "election: no leader"."""
        return self._client.unary(lambda c: c.election.Leader,
                                  epb.LeaderRequest(name=self.name), repeatable=True)

    def observe(self) -> Observation:
        """The leader (once there is one), then every change of leader or value."""
        return self._client.observe_election(self.name)

    def resign(self) -> epb.ResignResponse:
        """Give up leadership (the next candidate is elected); the session stays."""
        request = epb.ResignRequest(leader=self._leading())
        resp = self._client.unary(lambda c: c.election.Resign, request, repeatable=True)
        self.leader_key = None
        return resp

    def _forget(self) -> None:
        self.leader_key = None

    def _leading(self) -> epb.LeaderKey:
        if self.leader_key is None:
            raise EtcdError(grpc.StatusCode.FAILED_PRECONDITION, NOT_LEADER)
        return self.leader_key


class Observation(StreamReader):
    """An Observe stream read by a worker thread: get(timeout_s) for the next
    LeaderResponse, or iterate; close() ends it. When the stream breaks, the worker
    opens one on the next endpoint; the leader it repeats first is dropped if already
    passed on. EtcdError (through get) once no stream could be had for `timeout_s`."""

    def __init__(self, connections: Connections, endpoints: tuple[str, ...], name: bytes,
                 *, timeout_s: float) -> None:
        assert endpoints, "an observation needs an endpoint"
        super().__init__(INBOX_SIZE, "petcd-observe")
        self._connections = connections
        self._endpoints = endpoints
        self._request = epb.LeaderRequest(name=name)
        self._timeout_s = timeout_s
        self._last: tuple[bytes, int] | None = None  # (key, mod_revision) passed on
        self._call = None
        self._lock = threading.Lock()  # guards _call against close()
        self._start()

    def _stop(self) -> None:
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def _follow(self) -> None:
        failing_since: float | None = None  # since when no stream has worked
        tries = 0
        while not self._closed.is_set():
            if failing_since is not None and time.monotonic() - failing_since > self._timeout_s:
                raise EtcdError(grpc.StatusCode.UNAVAILABLE, "observe: no endpoint answers")
            if tries and tries % len(self._endpoints) == 0:
                self._closed.wait(BACKOFF_S)
            endpoint = self._endpoints[tries % len(self._endpoints)]
            tries += 1
            conn = self._connections.get(endpoint)
            started = time.monotonic()
            if conn is not None and self._serve(conn):
                return
            if failing_since is None or time.monotonic() - started > self._timeout_s:
                failing_since = time.monotonic()  # a stream that worked a while resets it

    def _serve(self, conn) -> bool:
        """Pass one stream's responses on; True once the observation is over."""
        with self._lock:
            if self._closed.is_set():
                return True
            self._call = conn.election.Observe(self._request)
        try:
            for resp in self._call:
                seen = (resp.kv.key, resp.kv.mod_revision)
                if seen != self._last and not self._deliver(resp):
                    return True
                self._last = seen
            return self._closed.is_set()
        except grpc.RpcError as exc:
            if self._closed.is_set():
                return True
            if exc.code() not in _RESUMABLE_CODES:
                raise from_rpc_error(exc) from None
            if not is_server_error(exc):
                self._connections.drop(conn.endpoint)
            return False


def waiting_call(connections: Connections, endpoints: tuple[str, ...], method, request, *,
                 stop, timeout_s: float | None):
    """A call that waits on others (Lock, Campaign), so it has no deadline of its own:
    it is polled, and cancelled (the server then withdraws the request) once `stop()`
    names a reason, `timeout_s` pass, or the caller is interrupted (a signal's
    exception in the main thread). An endpoint that fails without the server's word
    passes the call to the next: the request is the same lease's, so repeating it
    cannot take a second key."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failures: list[str] = []
    for endpoint in endpoints:
        conn = connections.get(endpoint)
        if conn is None:
            failures.append(f"{endpoint}: cannot connect")
            continue
        future = method(conn).future(request)
        try:
            return _poll(future, stop, deadline)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or is_server_error(exc):
                raise from_rpc_error(exc) from None
            connections.drop(endpoint)
            failures.append(f"{endpoint}: {exc.details()}")
        finally:
            future.cancel()  # a no-op once it has completed
    raise EtcdError(grpc.StatusCode.UNAVAILABLE, "no endpoint answers", "; ".join(failures))


def _poll(future, stop, deadline: float | None):
    while True:
        try:
            return future.result(timeout=POLL_S)
        except grpc.FutureTimeoutError:
            reason = stop()
            if reason:
                raise EtcdError(grpc.StatusCode.CANCELLED, reason) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE) from None
