"""A small etcd v3 client on grpcio: KV, compaction, watch, maintenance, membership.

    from petcd.client import Client
    with Client(["127.0.0.1:2379", "127.0.0.1:22379"]) as c:
        c.put("k", "v")
        c.get("k", prefix=True).kvs

Calls return etcd's protobuf responses (petcd.api.etcdserverpb.rpc_pb2) and raise
`EtcdError` (gRPC code + etcd's message). Endpoint failover: an endpoint that cannot
be dialled within `dial_timeout_s` is skipped for the next one; a read that fails with
UNAVAILABLE is retried on the next endpoint. A write is retried elsewhere only if it
never reached a server, so it is never applied twice (etcd's clientv3 rule).
Each call gets `command_timeout_s` in total (dialling excluded, as in etcdctl).
`sync_endpoints()` replaces the endpoints with the client URLs of the cluster's
started voters (clientv3's Sync); with `auto_sync_interval_s` a background thread does
it every so often (clientv3's AutoSyncInterval), so a client started with one member's
endpoint follows the cluster as members are added and removed.
A watch (petcd.client.watch) resumes on the next endpoint when its stream breaks;
so does a lease's keep-alive (petcd.client.lease). Locks and elections
(petcd.client.concurrency) hold a session: a lease kept alive while they last.
Queues, barriers and read-write locks are in petcd.client.recipes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import grpc

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import concurrency, recipes, requests
from petcd.client.connection import Connection, Connections, normalize_endpoint
from petcd.client.tls import PLAIN, TlsOptions
from petcd.client.errors import DEADLINE_MESSAGE, EtcdError, from_rpc_error, is_server_error
from petcd.client.lease import KeepAlive, keep_alive_once
from petcd.client.peer_urls import check_peer_urls
from petcd.client.watch import Watch

Bytes = requests.Bytes
KVRequest = pb.RangeRequest | pb.PutRequest | pb.DeleteRangeRequest | pb.TxnRequest
# Request type -> (KV method, safe to resend to another endpoint after UNAVAILABLE).
_KV_METHODS = {pb.RangeRequest: ("Range", True), pb.PutRequest: ("Put", False),
               pb.DeleteRangeRequest: ("DeleteRange", False), pb.TxnRequest: ("Txn", False)}
SNAPSHOT_TIMEOUT_S = 600.0
REDIAL_S = 0.1  # between rounds of dialling endpoints none of which connected
SHA256_BYTES = 32
LEASE_NOT_FOUND = "etcdserver: requested lease not found"  # etcd's rpctypes text
TOKEN_METADATA_KEY = "token"  # etcd's rpctypes.TokenFieldNameGRPC
NO_CONNECTION_DETAILS = "failed to connect to all addresses"  # gRPC core: nothing sent
log = logging.getLogger(__name__)


class Client:
    def __init__(self, endpoints: Iterable[str] | str = ("127.0.0.1:2379",), *,
                 dial_timeout_s: float = 2.0, command_timeout_s: float = 5.0,
                 tls: TlsOptions | None = None,
                 user: str | None = None, password: str | None = None,
                 auto_sync_interval_s: float = 0.0) -> None:
        """With `user` and `password`, every unary call carries the token Authenticate
        gives them (gRPC metadata `token`, as clientv3 sends it), fetched at the first
        call and again once when the server says it is no longer valid. Watches carry
        the token they started with; keep-alives and observations carry none (etcd
        checks no permission for them). `auto_sync_interval_s` > 0: sync the
        endpoints that often (0, the default, never: clientv3's and etcdctl's)."""
        self.command_timeout_s = command_timeout_s
        self._dial_timeout_s = dial_timeout_s
        self._tls = tls or PLAIN
        self._endpoints_lock = threading.Lock()  # endpoints, _current, _connections
        self.endpoints, self._secure = _parse_endpoints(endpoints, self._tls)
        self._current = 0  # index of the endpoint that answered last
        self._connections = Connections(dial_timeout_s, self._tls, self._secure)
        self._retired: list[Connections] = []  # replaced by set_endpoints; streams may use them
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._keep_alives: weakref.WeakSet[KeepAlive] = weakref.WeakSet()
        self._observations: weakref.WeakSet[concurrency.Observation] = weakref.WeakSet()
        self._credentials = (user, password or "") if user else None
        self._token: str | None = None
        self._closing = threading.Event()
        self._auto_sync: threading.Thread | None = None
        if auto_sync_interval_s > 0:
            self._auto_sync = threading.Thread(target=self._sync_every,
                                               args=(auto_sync_interval_s,),
                                               name="petcd-client-auto-sync", daemon=True)
            self._auto_sync.start()

    def close(self) -> None:
        self._closing.set()
        if self._auto_sync is not None:
            # A sync under way ends within its command timeout (dialling included).
            self._auto_sync.join(self.command_timeout_s + self._dial_timeout_s)
        for stream in [*self._watches, *self._keep_alives, *self._observations]:
            stream.close()  # before their channels: else they redial
        for connections in [*self._retired, self._connections]:
            connections.close()

    # Endpoints

    def set_endpoints(self, endpoints: Iterable[str] | str) -> None:
        """Send calls from now on to these endpoints (clientv3's SetEndpoints): "host:port"
        or URLs, a URL's scheme saying whether to use TLS. The endpoint that answered
        last stays first if it is among them. Streams already open (watches,
        keep-alives, observations) keep the endpoints they started with."""
        normalized, secure = _parse_endpoints(endpoints, self._tls)
        with self._endpoints_lock:
            if not secure <= self._secure:
                # Connections knows its TLS endpoints from the start; the old one's
                # channels stay open for the streams that hold it.
                self._retired.append(self._connections)
                self._secure |= secure
                self._connections = Connections(self._dial_timeout_s, self._tls, self._secure)
            last = self.endpoints[self._current]
            self.endpoints = normalized
            self._current = normalized.index(last) if last in normalized else 0

    def sync_endpoints(self) -> tuple[str, ...]:
        """Replace the endpoints with the client URLs of the started (named) voting
        members in a linearizable MemberList (clientv3's Sync); returns them."""
        members = self._call(lambda c: c.cluster.MemberList,
                             pb.MemberListRequest(linearizable=True), repeatable=True).members
        urls = [url for m in members if m.name and not m.isLearner for url in m.clientURLs]
        # A member answered the linearizable list, so some started voter is listed;
        # should none have client URLs, the endpoints we have are still better than none.
        if urls:
            self.set_endpoints(urls)
        return self.endpoints

    def _sync_every(self, interval_s: float) -> None:
        while not self._closing.wait(interval_s):
            try:
                self.sync_endpoints()
            except EtcdError as err:  # clientv3 logs it and tries again next time
                log.info("auto sync endpoints failed: %s", err)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # KV

    def call(self, request: KVRequest):
        """Send a prebuilt KV request (see petcd.client.requests): RangeRequest,
        PutRequest, DeleteRangeRequest or TxnRequest; returns its response."""
        method, repeatable = _KV_METHODS[type(request)]
        return self._call(lambda c: getattr(c.kv, method), request, repeatable=repeatable)

    def get(self, key: Bytes, range_end: Bytes | None = None, **options) -> pb.RangeResponse:
        """Options: prefix, from_key, limit, revision, sort_target (key, version,
        create, mod, value), sort_order (none, ascend, descend), keys_only,
        count_only, serializable."""
        return self.call(requests.range_request(key, range_end, **options))

    def put(self, key: Bytes, value: Bytes, **options) -> pb.PutResponse:
        """Options: lease, prev_kv, ignore_value, ignore_lease."""
        return self.call(requests.put_request(key, value, **options))

    def delete(self, key: Bytes, range_end: Bytes | None = None,
               **options) -> pb.DeleteRangeResponse:
        """Options: prefix, from_key, prev_kv."""
        return self.call(requests.delete_request(key, range_end, **options))

    def txn(self, compare: Iterable[pb.Compare] = (), success: Iterable[pb.RequestOp] = (),
            failure: Iterable[pb.RequestOp] = ()) -> pb.TxnResponse:
        """Build the parts with petcd.client.requests (compare, put_op, range_op, ...)."""
        return self.call(pb.TxnRequest(compare=list(compare), success=list(success),
                                       failure=list(failure)))

    def compact(self, revision: int, *, physical: bool = False) -> pb.CompactionResponse:
        request = pb.CompactionRequest(revision=revision, physical=physical)
        return self._call(lambda c: c.kv.Compact, request)

    # Watch

    def watch(self, key: Bytes, range_end: Bytes | None = None, *,
              require_leader: bool = False, **options) -> Watch:
        """Watch a key or range, from `start_revision` (default 0: from now on).
        Options: prefix, from_key, start_revision, prev_kv, no_put, no_delete,
        progress_notify, fragment. `require_leader`: the server ends the watch when
        its member has no leader (etcd's clientv3.WithRequireLeader). The watch
        starts at once; close it (or the client) when done."""
        made = Watch(self._connections, tuple(self._rotation()),
                     requests.watch_create_request(key, range_end, **options),
                     timeout_s=self.command_timeout_s, require_leader=require_leader,
                     metadata=self._metadata() or ())
        self._watches.add(made)
        return made

    def request_progress(self) -> None:
        """Ask every open watch of this client for a progress notification (as
        clientv3's RequestProgress does for the watches on its stream)."""
        for watch in list(self._watches):
            watch.request_progress()

    # Leases

    def lease_grant(self, ttl: int, lease_id: int = 0) -> pb.LeaseGrantResponse:
        """A lease of `ttl` seconds (etcd raises a shorter one to its minimum); ID 0
        lets the server choose it."""
        return self._call(lambda c: c.lease.LeaseGrant,
                          pb.LeaseGrantRequest(TTL=ttl, ID=lease_id))

    def lease_revoke(self, lease_id: int) -> pb.LeaseRevokeResponse:
        """End the lease now, deleting its keys."""
        return self._call(lambda c: c.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=lease_id))

    def lease_time_to_live(self, lease_id: int,
                           keys: bool = False) -> pb.LeaseTimeToLiveResponse:
        """TTL is -1 for a lease that does not exist (expired or never granted)."""
        return self._call(lambda c: c.lease.LeaseTimeToLive,
                          pb.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), repeatable=True)

    def lease_leases(self) -> pb.LeaseLeasesResponse:
        return self._call(lambda c: c.lease.LeaseLeases, pb.LeaseLeasesRequest(),
                          repeatable=True)

    def lease_keep_alive_once(self, lease_id: int) -> pb.LeaseKeepAliveResponse:
        """Renew the lease once; EtcdError "etcdserver: requested lease not found" if
        it is gone (clientv3's KeepAliveOnce)."""
        resp = self._call(keep_alive_once, pb.LeaseKeepAliveRequest(ID=lease_id),
                          repeatable=True)
        if resp is None or resp.TTL <= 0:
            raise EtcdError(grpc.StatusCode.NOT_FOUND, LEASE_NOT_FOUND)
        return resp

    def keep_alive(self, lease_id: int, *, ttl: int = 0,
                   on_renewed: Callable[[pb.LeaseKeepAliveResponse], None] | None = None,
                   on_lost: Callable[[str], None] | None = None) -> KeepAlive:
        """Keep the lease alive from a background thread until closed (see
        petcd.client.lease); `on_lost` is told if it expires or is revoked anyway."""
        connections, endpoints = self.streams()
        made = KeepAlive(connections, endpoints, lease_id, timeout_s=self.command_timeout_s,
                         ttl=ttl, on_renewed=on_renewed, on_lost=on_lost)
        self._keep_alives.add(made)
        return made

    # Locks and elections

    def lock(self, name: requests.Bytes, ttl: int = concurrency.DEFAULT_TTL_S,
             timeout_s: float | None = None) -> AbstractContextManager[concurrency.Held]:
        """`with client.lock(name) as held:` holds lock `name` (held.key, held.revision:
        the fencing token) with a session of `ttl` seconds; see petcd.client.concurrency."""
        return concurrency.lock(self, name, ttl, timeout_s)

    def election(self, name: requests.Bytes,
                 ttl: int = concurrency.DEFAULT_TTL_S) -> concurrency.Election:
        return concurrency.Election(self, name, ttl)

    def observe_election(self, name: requests.Bytes) -> concurrency.Observation:
        """The leader of election `name`, then each change (until closed)."""
        connections, endpoints = self.streams()
        made = concurrency.Observation(connections, endpoints, requests.to_bytes(name),
                                       timeout_s=self.command_timeout_s)
        self._observations.add(made)
        return made

    # Recipes: queues, barriers, read-write locks (petcd.client.recipes)

    def queue(self, prefix: requests.Bytes) -> recipes.Queue:
        return recipes.Queue(self, prefix)

    def barrier(self, key: requests.Bytes) -> recipes.Barrier:
        return recipes.Barrier(self, key)

    def double_barrier(self, key: requests.Bytes, count: int,
                       ttl: int = concurrency.DEFAULT_TTL_S) -> recipes.DoubleBarrier:
        return recipes.DoubleBarrier(self, key, count, ttl)

    def rwlock(self, name: requests.Bytes,
               ttl: int = concurrency.DEFAULT_TTL_S) -> recipes.RWLock:
        """`with client.rwlock(name) as rw:` then `with rw.read():` or `rw.write()`."""
        return recipes.RWLock(self, name, ttl)

    # Cluster and maintenance

    def member_list(self) -> pb.MemberListResponse:
        return self._call(lambda c: c.cluster.MemberList, pb.MemberListRequest(),
                          repeatable=True)

    def member_add(self, peer_urls: list[str], is_learner: bool = False) -> pb.MemberAddResponse:
        """Add a member (a non-voting learner if `is_learner`) that will listen on
        `peer_urls`; the answer holds its new ID and every member."""
        check_peer_urls(peer_urls)
        request = pb.MemberAddRequest(peerURLs=peer_urls, isLearner=is_learner)
        return self._call(lambda c: c.cluster.MemberAdd, request)

    def member_remove(self, member_id: int) -> pb.MemberRemoveResponse:
        return self._call(lambda c: c.cluster.MemberRemove,
                          pb.MemberRemoveRequest(ID=member_id))

    def member_update(self, member_id: int, peer_urls: list[str]) -> pb.MemberUpdateResponse:
        check_peer_urls(peer_urls)
        # Setting the same URLs twice leaves the same state (clientv3 retries it too).
        return self._call(lambda c: c.cluster.MemberUpdate,
                          pb.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls),
                          repeatable=True)

    def member_promote(self, member_id: int) -> pb.MemberPromoteResponse:
        """Make learner `member_id` a voter; etcd refuses until it has caught up."""
        return self._call(lambda c: c.cluster.MemberPromote,
                          pb.MemberPromoteRequest(ID=member_id))

    def status(self, endpoint: str | None = None) -> pb.StatusResponse:
        return self._call(lambda c: c.maintenance.Status, pb.StatusRequest(),
                          repeatable=True, endpoint=endpoint)

    def hash_kv(self, revision: int = 0, endpoint: str | None = None) -> pb.HashKVResponse:
        return self._call(lambda c: c.maintenance.HashKV,
                          pb.HashKVRequest(revision=revision), repeatable=True,
                          endpoint=endpoint)

    def defragment(self, endpoint: str | None = None) -> pb.DefragmentResponse:
        return self._call(lambda c: c.maintenance.Defragment, pb.DefragmentRequest(),
                          endpoint=endpoint)

    def alarm(self, action: str, member_id: int = 0, alarm: str = "NONE") -> pb.AlarmResponse:
        """action: get, activate or deactivate; alarm: NONE, NOSPACE or CORRUPT."""
        request = pb.AlarmRequest(action=pb.AlarmRequest.AlarmAction.Value(action.upper()),
                                  memberID=member_id, alarm=pb.AlarmType.Value(alarm))
        return self._call(lambda c: c.maintenance.Alarm, request,
                          repeatable=action == "get")

    def alarm_list(self) -> pb.AlarmResponse:
        return self.alarm("get")

    def alarm_disarm(self) -> pb.AlarmResponse:
        """Deactivate every active alarm; the answer lists those disarmed (as
        clientv3's AlarmDisarm with no member: one request per alarm, no header)."""
        disarmed = pb.AlarmResponse()
        for active in self.alarm_list().alarms:
            answer = self.alarm("deactivate", active.memberID,
                                pb.AlarmType.Name(active.alarm))
            disarmed.alarms.extend(answer.alarms)
        return disarmed

    def move_leader(self, target_id: int, endpoint: str | None = None) -> pb.MoveLeaderResponse:
        """Ask the leader (at `endpoint`, else the first of ours that leads) to hand
        leadership to member `target_id`; etcd answers only on the leader."""
        if endpoint is None:
            found = self.leader_endpoint()
            if found is None:
                raise EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader",
                                "no leader among " + ", ".join(self.endpoints))
            endpoint = found[0]
        return self._call(lambda c: c.maintenance.MoveLeader,
                          pb.MoveLeaderRequest(targetID=target_id), endpoint=endpoint)

    def leader_endpoint(self) -> tuple[str, pb.StatusResponse] | None:
        """The first of this client's endpoints whose member is the leader."""
        for endpoint in self.endpoints:
            try:
                status = self.status(endpoint)
            except EtcdError:
                continue
            if status.leader == status.header.member_id:
                return endpoint, status
        return None

    def snapshot(self, path: str, *, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> int:
        """Stream the backend database of one member to `path` (written to
        `path`.part, checked, fsynced, renamed) and return its size in bytes. etcd
        ends the stream with the SHA-256 of the rest; a mismatch raises EtcdError."""
        conn, endpoint = self._first_reachable()
        part = path + ".part"
        try:
            with open(part, "wb") as out:
                _stream_snapshot(conn, out, timeout_s)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
        except grpc.RpcError as exc:
            _remove_quietly(part)
            raise from_rpc_error(exc) from None
        except BaseException:  # a bad stream, a full disk, an interrupt: no .part left
            _remove_quietly(part)
            raise
        os.replace(part, path)
        self._answered(endpoint)
        return size

    # Auth

    def authenticate(self, user: str, password: str) -> pb.AuthenticateResponse:
        """Get a token for `user`; later calls of this client carry it."""
        self._credentials = (user, password)
        self._token = None
        resp = self._call(lambda c: c.auth.Authenticate,
                          pb.AuthenticateRequest(name=user, password=password), repeatable=True)
        self._token = resp.token
        return resp

    def auth_enable(self) -> pb.AuthEnableResponse:
        return self._call(lambda c: c.auth.AuthEnable, pb.AuthEnableRequest())

    def auth_disable(self) -> pb.AuthDisableResponse:
        return self._call(lambda c: c.auth.AuthDisable, pb.AuthDisableRequest())

    def auth_status(self) -> pb.AuthStatusResponse:
        return self._call(lambda c: c.auth.AuthStatus, pb.AuthStatusRequest(), repeatable=True)

    def user_add(self, name: str, password: str = "", *,
                 no_password: bool = False) -> pb.AuthUserAddResponse:
        request = pb.AuthUserAddRequest(name=name, password=password)
        request.options.no_password = no_password
        return self._call(lambda c: c.auth.UserAdd, request)

    def user_delete(self, name: str) -> pb.AuthUserDeleteResponse:
        return self._call(lambda c: c.auth.UserDelete, pb.AuthUserDeleteRequest(name=name))

    def user_get(self, name: str) -> pb.AuthUserGetResponse:
        return self._call(lambda c: c.auth.UserGet, pb.AuthUserGetRequest(name=name),
                          repeatable=True)

    def user_list(self) -> pb.AuthUserListResponse:
        return self._call(lambda c: c.auth.UserList, pb.AuthUserListRequest(), repeatable=True)

    def user_change_password(self, name: str, password: str) -> pb.AuthUserChangePasswordResponse:
        return self._call(lambda c: c.auth.UserChangePassword,
                          pb.AuthUserChangePasswordRequest(name=name, password=password))

    def user_grant_role(self, user: str, role: str) -> pb.AuthUserGrantRoleResponse:
        return self._call(lambda c: c.auth.UserGrantRole,
                          pb.AuthUserGrantRoleRequest(user=user, role=role))

    def user_revoke_role(self, name: str, role: str) -> pb.AuthUserRevokeRoleResponse:
        return self._call(lambda c: c.auth.UserRevokeRole,
                          pb.AuthUserRevokeRoleRequest(name=name, role=role))

    def role_add(self, name: str) -> pb.AuthRoleAddResponse:
        return self._call(lambda c: c.auth.RoleAdd, pb.AuthRoleAddRequest(name=name))

    def role_delete(self, name: str) -> pb.AuthRoleDeleteResponse:
        return self._call(lambda c: c.auth.RoleDelete, pb.AuthRoleDeleteRequest(role=name))

    def role_get(self, name: str) -> pb.AuthRoleGetResponse:
        return self._call(lambda c: c.auth.RoleGet, pb.AuthRoleGetRequest(role=name),
                          repeatable=True)

    def role_list(self) -> pb.AuthRoleListResponse:
        return self._call(lambda c: c.auth.RoleList, pb.AuthRoleListRequest(), repeatable=True)

    def role_grant_permission(self, name: str, key: Bytes, range_end: Bytes,
                              perm_type: str) -> pb.AuthRoleGrantPermissionResponse:
        """perm_type: READ, WRITE or READWRITE; range_end b"" is the key alone,
        b"\\0" every key from it on."""
        perm = auth_pb2.Permission(permType=auth_pb2.Permission.Type.Value(perm_type.upper()),
                                   key=requests.to_bytes(key),
                                   range_end=requests.to_bytes(range_end))
        return self._call(lambda c: c.auth.RoleGrantPermission,
                          pb.AuthRoleGrantPermissionRequest(name=name, perm=perm))

    def role_revoke_permission(self, name: str, key: Bytes, range_end: Bytes = b""
                               ) -> pb.AuthRoleRevokePermissionResponse:
        return self._call(lambda c: c.auth.RoleRevokePermission,
                          pb.AuthRoleRevokePermissionRequest(
                              role=name, key=requests.to_bytes(key),
                              range_end=requests.to_bytes(range_end)))

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        if self._credentials is not None and self._token is None:
            self.authenticate(*self._credentials)
        return None if self._token is None else ((TOKEN_METADATA_KEY, self._token),)

    # Plumbing

    def unary(self, method: Callable[[Connection], Callable], request, *,
              repeatable: bool = False):
        """One call of any service (e.g. `lambda c: c.election.Leader`), with the
        client's failover and command timeout."""
        return self._call(method, request, repeatable=repeatable)

    def call_until(self, method: Callable[[Connection], Callable], request, *,
                   stop: Callable[[], str], timeout_s: float | None):
        """A call that waits on other clients (Lock, Campaign): no command timeout,
        but ended once `stop()` names a reason or `timeout_s` pass."""
        connections, endpoints = self.streams()
        return concurrency.waiting_call(connections, endpoints, method, request,
                                        stop=stop, timeout_s=timeout_s)

    def streams(self) -> tuple[Connections, tuple[str, ...]]:
        """What a helper holding a stream of its own needs: the connections, and the
        endpoints in the order to try them (the one that answered last first)."""
        return self._connections, tuple(self._rotation())

    def _first_reachable(self) -> tuple[Connection, str]:
        for endpoint in self._rotation():
            conn = self._connections.get(endpoint)
            if conn is not None:
                return conn, endpoint
        raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE,
                        "could not connect to " + ", ".join(self.endpoints))

    def _rotation(self) -> list[str]:
        with self._endpoints_lock:
            endpoints, current = self.endpoints, self._current
        return list(endpoints[current:] + endpoints[:current])

    def _answered(self, endpoint: str) -> None:
        """`endpoint` goes first next time, if a sync has not dropped it meanwhile."""
        with self._endpoints_lock:
            if endpoint in self.endpoints:
                self._current = self.endpoints.index(endpoint)

    def _call(self, method: Callable[[Connection], Callable], request, *,
              repeatable: bool = False, endpoint: str | None = None):
        """The first endpoint that connects answers. While none connects, they are
        dialled again until the command timeout, then "context deadline exceeded":
        clientv3 waits for a connection the same way (an etcd restarting is reached)."""
        candidates = [normalize_endpoint(endpoint)] if endpoint else self._rotation()
        deadline = time.monotonic() + self.command_timeout_s
        failures: list[str] = []
        while True:
            conn, candidate = self._first_connected(candidates, failures)
            if conn is None:
                if time.monotonic() + REDIAL_S >= deadline:
                    raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE,
                                    "; ".join(failures[-len(candidates):]))
                time.sleep(REDIAL_S)
                continue
            try:
                response = self._send(method(conn), request, deadline - time.monotonic())
            except grpc.RpcError as exc:
                if not self._worth_another_endpoint(exc, repeatable, candidate):
                    raise from_rpc_error(exc) from None
                failures.append(f"{candidate}: {exc.details()}")
                candidates = candidates[candidates.index(candidate) + 1:]
                if not candidates:
                    raise from_rpc_error(exc) from None
                continue
            if endpoint is None:
                self._answered(candidate)
            return response

    def _first_connected(self, candidates: list[str], failures: list[str]
                         ) -> tuple[Connection | None, str]:
        for candidate in candidates:
            conn = self._connections.get(candidate)
            if conn is not None:
                return conn, candidate
            failures.append(f"{candidate}: cannot connect")
        return None, ""

    def _send(self, call: Callable, request, remaining_s: float):
        """One call with the token; an expired token is renewed once (clientv3's)."""
        metadata = None if isinstance(request, pb.AuthenticateRequest) else self._metadata()
        try:
            return call(request, timeout=max(remaining_s, 0.001), metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED or metadata is None:
                raise
            self._token = None
            return call(request, timeout=max(remaining_s, 0.001), metadata=self._metadata())

    def _worth_another_endpoint(self, exc: grpc.RpcError, repeatable: bool,
                                endpoint: str) -> bool:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            return False
        if not is_server_error(exc):
            self._connections.drop(endpoint)  # the next use dials again
        return repeatable or _never_sent(exc)


def _never_sent(exc: grpc.RpcError) -> bool:
    """gRPC found no connection to send the call on (the member went away after it
    was dialled): safe to send a write elsewhere, as clientv3's isSafeRetryMutableRPC
    judges grpc-go's "there is no address available"."""
    return (exc.code() == grpc.StatusCode.UNAVAILABLE
            and (exc.details() or "").startswith(NO_CONNECTION_DETAILS))


def _parse_endpoints(endpoints: Iterable[str] | str, tls: TlsOptions
                     ) -> tuple[tuple[str, ...], frozenset[str]]:
    """(endpoints as host:port, each once; those of them dialled with TLS)."""
    if isinstance(endpoints, str):  # "host:port" or etcdctl's "a:1,b:2"
        endpoints = endpoints.split(",")
    given = tuple(endpoints)
    normalized = tuple(dict.fromkeys(normalize_endpoint(e) for e in given))
    if not normalized:
        raise ValueError("at least one endpoint is needed")
    return normalized, frozenset(normalize_endpoint(e) for e in given if tls.secure(e))


def _stream_snapshot(conn: Connection, out, timeout_s: float) -> None:
    """Write the stream to `out`, checking its trailing SHA-256 before writing it."""
    hasher = hashlib.sha256()
    tail = b""  # the last SHA256_BYTES bytes seen: the checksum, once the stream ends
    for chunk in conn.maintenance.Snapshot(pb.SnapshotRequest(), timeout=timeout_s):
        data = tail + chunk.blob
        body, tail = data[:-SHA256_BYTES], data[-SHA256_BYTES:]
        hasher.update(body)
        out.write(body)
    if len(tail) != SHA256_BYTES or hasher.digest() != tail:
        raise EtcdError(grpc.StatusCode.DATA_LOSS,
                        "snapshot: sha256 mismatch (corrupt or truncated stream)")
    out.write(tail)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
