"""The gRPC face of the client API: etcd v3.5's services, as etcd's v3rpc serves them.

Every method of etcdserverpb's KV, Watch, Lease, Cluster, Maintenance and Auth
services, v3lockpb.Lock and v3electionpb.Election is registered from the .proto
descriptors, so the method table cannot drift from the wire definitions:

- a method in `SERVED` is answered by the transport-free `Server` (the same code the
  JSON gateway calls), its EtcdError becoming the gRPC status etcd sends;
- Watch.Watch, bidirectional, feeds the requests to a WatchStream (watch/stream.py)
  and sends its responses, already encoded; the `hasleader` metadata of etcd's
  WithRequireLeader is honoured (a member without a leader refuses the stream with
  "etcdserver: no leader", and ends it when it loses its leader);
- Lease.LeaseKeepAlive renews the requests a stream has queued together, one
  leadership check per batch;
- petcd.internal.Leader/KeepAlives (not etcd's) takes the batches of keep-alives the
  other members forward to the leader (leader.py);
- every other method answers etcd's Unimplemented ("method Watch not implemented"),
  with the streaming shape of its definition, until a later version serves it.

The standard grpc.health.v1 service says SERVING while the member runs, as etcd's.
Message limits are etcd's: receive --max-request-bytes plus gRPC's 512 KiB overhead
(larger is ResourceExhausted before any handler runs), send unlimited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from petcd.api.etcdserverpb import rpc_pb2
from petcd.api.v3electionpb import v3election_pb2
from petcd.api.v3lockpb import v3lock_pb2

from . import auth, leader, trace
from .errors import Code, EtcdError
from .metrics import GrpcMethod
from .server import GRPC_OVERHEAD_BYTES, Server
from .watch import WatchStream

MAX_SEND_BYTES = 2**31 - 1  # etcd's math.MaxInt32
WATCH_METHOD = "etcdserverpb.Watch.Watch"
KEEP_ALIVE_METHOD = "etcdserverpb.Lease.LeaseKeepAlive"
MAX_KEEP_ALIVES_IN_FLIGHT = 1000  # per stream
REQUIRE_LEADER_KEY, HAS_LEADER = "hasleader", "true"  # etcd's rpctypes.MetadataRequireLeaderKey

SERVICES: tuple[ServiceDescriptor, ...] = (
    *(rpc_pb2.DESCRIPTOR.services_by_name[name] for name in
      ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth")),
    v3lock_pb2.DESCRIPTOR.services_by_name["Lock"],
    v3election_pb2.DESCRIPTOR.services_by_name["Election"],
)

# Auth's gRPC method -> the auth.Auth method answering it (the gateway's paths too).
AUTH_METHODS = {
    "AuthEnable": "auth_enable", "AuthDisable": "auth_disable", "AuthStatus": "auth_status",
    "Authenticate": "authenticate", "UserAdd": "user_add", "UserGet": "user_get",
    "UserList": "user_list", "UserDelete": "user_delete",
    "UserChangePassword": "user_change_password", "UserGrantRole": "user_grant_role",
    "UserRevokeRole": "user_revoke_role", "RoleAdd": "role_add", "RoleGet": "role_get",
    "RoleList": "role_list", "RoleDelete": "role_delete",
    "RoleGrantPermission": "role_grant_permission",
    "RoleRevokePermission": "role_revoke_permission",
}


def _auth(name: str) -> Callable[[Server, Any], Any]:
    """A SERVED entry for Server.auth's method `name`."""
    return lambda server, request: getattr(server.auth, name)(request)


# "Service.Method" -> the Server method answering it.
SERVED: dict[str, Callable[..., Any]] = {
    "KV.Range": Server.range, "KV.Put": Server.put, "KV.DeleteRange": Server.delete_range,
    "KV.Txn": Server.txn, "KV.Compact": Server.compact,
    "Maintenance.Alarm": Server.alarm, "Maintenance.Status": Server.status,
    "Maintenance.Defragment": Server.defragment, "Maintenance.Hash": Server.hash,
    "Maintenance.HashKV": Server.hash_kv, "Maintenance.Snapshot": Server.snapshot,
    "Maintenance.MoveLeader": Server.move_leader,
    "Cluster.MemberList": Server.member_list, "Cluster.MemberAdd": Server.member_add,
    "Cluster.MemberRemove": Server.member_remove, "Cluster.MemberUpdate": Server.member_update,
    "Cluster.MemberPromote": Server.member_promote,
    "Lease.LeaseGrant": Server.lease_grant, "Lease.LeaseRevoke": Server.lease_revoke,
    "Lease.LeaseTimeToLive": Server.lease_time_to_live,
    "Lease.LeaseLeases": Server.lease_leases,
    "Lock.Lock": lambda s, r: s.coordination.lock(r),
    "Lock.Unlock": lambda s, r: s.coordination.unlock(r),
    "Election.Campaign": lambda s, r: s.coordination.campaign(r),
    "Election.Proclaim": lambda s, r: s.coordination.proclaim(r),
    "Election.Leader": lambda s, r: s.coordination.leader(r),
    "Election.Observe": lambda s, r: s.coordination.observe(r),
    "Election.Resign": lambda s, r: s.coordination.resign(r),
    **{f"Auth.{method}": _auth(name) for method, name in AUTH_METHODS.items()},
}

_STATUS = {status.value[0]: status for status in grpc.StatusCode}


def status_code(code: Code) -> grpc.StatusCode:
    return _STATUS[int(code)]


# grpc-go's defaultServerMaxHeaderListSize: etcd reads request metadata (a token) up
# to this, where grpc-core's default (16 KiB) refuses a long token before etcd's check
# can answer "invalid auth token".
MAX_METADATA_BYTES = 16 << 20


def server_options(max_request_bytes: int) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", max_request_bytes + GRPC_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.so_reuseport", 0)]


def add_services(grpc_server: grpc.aio.Server, server: Server, log: Any) -> health.aio.HealthServicer:
    """Register every etcd service on `grpc_server`; returns the health servicer."""
    for service in SERVICES:
        handlers = {m.name: _handler(m, server, log) for m in service.methods}
        grpc_server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),))
    grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        leader.FORWARD_SERVICE, {leader.FORWARD_NAME: _forwarded_keep_alives(server)}),))
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, grpc_server)
    return checker


async def set_serving(checker: health.aio.HealthServicer, serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    await checker.set("", status)


def _handler(method: MethodDescriptor, server: Server, log: Any) -> grpc.RpcMethodHandler:
    """The method's handler, counted in grpc_server_* (actors/network/metrics.py)."""
    measured = server.metrics.grpc.method(method.full_name, method.client_streaming,
                                          method.server_streaming)
    return _measured(_unmeasured(method, server, log), measured)


def _measured(handler: grpc.RpcMethodHandler, method: GrpcMethod) -> grpc.RpcMethodHandler:
    """`handler` with each call's start, end, status and time recorded."""
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = method.begin()
            try:
                response = await inner(request, context)
            except BaseException as err:
                method.end(started, _failed_with(err, context))
                raise
            method.end(started, _code(context))
            return response
        return handler._replace(unary_unary=unary)
    field = "unary_stream" if handler.unary_stream is not None else "stream_stream"
    inner_stream = getattr(handler, field)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = method.begin()
        try:
            async for response in inner_stream(request, context):
                yield response
        except BaseException as err:
            method.end(started, _failed_with(err, context))
            raise
        method.end(started, _code(context))
    return handler._replace(**{field: stream})


def _failed_with(err: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status of a call that raised: Canceled if the client went away, else what
    abort() set (Unknown if nothing did: a bug answered as grpc-go answers one)."""
    if isinstance(err, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return _code(context, grpc.StatusCode.UNKNOWN)


def _code(context: grpc.aio.ServicerContext,
          unset: grpc.StatusCode = grpc.StatusCode.OK) -> grpc.StatusCode:
    """The status the call ends with: what abort() set, else `unset`."""
    code = context.code()
    if code is None:
        return unset
    return code if isinstance(code, grpc.StatusCode) else _STATUS.get(int(code), unset)


def _unmeasured(method: MethodDescriptor, server: Server, log: Any) -> grpc.RpcMethodHandler:
    request_class = _message_class(method.input_type.full_name)
    codec = {"request_deserializer": _deserializer(request_class),
             "response_serializer": _serialize}
    if method.full_name == WATCH_METHOD:
        return grpc.stream_stream_rpc_method_handler(
            _watch(server, log), request_deserializer=_deserializer(request_class),
            response_serializer=_already_encoded)
    if method.full_name == KEEP_ALIVE_METHOD:
        return grpc.stream_stream_rpc_method_handler(_keep_alive(server, log), **codec)
    served = SERVED.get(f"{method.containing_service.name}.{method.name}")
    streams_in, streams_out = method.client_streaming, method.server_streaming
    if served is None:
        return _unimplemented(method.name, streams_in, streams_out, codec)
    assert not streams_in, f"{method.full_name}: client streams are not served yet"
    if streams_out:
        return grpc.unary_stream_rpc_method_handler(
            _stream(server, lambda r: served(server, r), method.full_name, log), **codec)
    return grpc.unary_unary_rpc_method_handler(
        _unary(server, lambda r: served(server, r), method.full_name, log), **codec)


def _unary(server: Server, call: Callable[[Message], Awaitable[Message]], name: str, log: Any
           ) -> Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def handle(request: Message, context: grpc.aio.ServicerContext) -> Message:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INTERNAL, request.message)
        _identify(context, server)
        traced = _traced(context)
        try:
            response = await call(request)
            if traced is not None:
                traced.mark("returned")
                context.set_trailing_metadata(((trace.METADATA_KEY, traced.encode()),))
            return response
        except EtcdError as err:
            await context.abort(status_code(err.code), err.message)
        except Exception as err:  # a bug: answered as grpc-go answers a plain error
            log.exception("request failed", method=name)
            await context.abort(grpc.StatusCode.UNKNOWN, f"{type(err).__name__}: {err}")
        raise AssertionError("abort returned")
    return handle


def _identify(context: grpc.aio.ServicerContext, server: Server) -> None:
    """Who the call is from, for auth.py: its token, and its client certificate's
    common name (None unless --client-cert-auth named its connection)."""
    auth.current_token.set(_token(context))
    auth.current_common_name.set(server.auth.cert_names.of_call(context))


def _token(context: grpc.aio.ServicerContext) -> str | None:
    """The auth token clientv3 sends in the metadata (auth.py)."""
    for key, value in context.invocation_metadata() or ():
        if key in auth.TOKEN_METADATA_KEYS:
            return str(value)
    return None


def _traced(context: grpc.aio.ServicerContext) -> trace.Trace | None:
    """A Trace for this task if the client asked (trace.py)."""
    if not any(key == trace.METADATA_KEY for key, _ in context.invocation_metadata() or ()):
        return None
    traced = trace.Trace()
    trace.current.set(traced)
    return traced


def _stream(server: Server, call: Callable[[Message], AsyncIterator[Message]], name: str,
            log: Any) -> Callable[[Message, grpc.aio.ServicerContext], AsyncIterator[Message]]:
    async def handle(request: Message, context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[Message]:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INTERNAL, request.message)
        _identify(context, server)
        try:
            async for response in call(request):
                yield response
        except EtcdError as err:
            await context.abort(status_code(err.code), err.message)
        except Exception as err:
            log.exception("request failed", method=name)
            await context.abort(grpc.StatusCode.UNKNOWN, f"{type(err).__name__}: {err}")
    return handle


def _watch(server: Server, log: Any) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext],
                                                 AsyncIterator[bytes]]:
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[bytes]:
        metadata = context.invocation_metadata() or ()
        require_leader = any(k == REQUIRE_LEADER_KEY and v == HAS_LEADER for k, v in metadata)
        try:
            permit = server.auth.watch_permit(_token(context),
                                              server.auth.cert_names.of_call(context))
            stream = server.watches.open_stream(require_leader, permit)
        except EtcdError as err:
            await context.abort(status_code(err.code), err.message)
        reader = asyncio.create_task(_read_watch_requests(requests, stream, log))
        try:
            async for response in stream.responses():
                yield response
        except EtcdError as err:
            await context.abort(status_code(err.code), err.message)
        finally:
            reader.cancel()
            server.watches.close_stream(stream)
    return handle


async def _read_watch_requests(requests: AsyncIterator[Any], stream: WatchStream,
                               log: Any) -> None:
    """Until the client half-closes (the stream goes on sending, as etcd's) or sends
    garbage (the stream fails as grpc-go fails it: Internal)."""
    try:
        async for request in requests:
            if isinstance(request, Malformed):
                stream.fail(EtcdError(Code.INTERNAL, request.message))
                return
            await stream.handle(request)
    except asyncio.CancelledError:
        raise
    except grpc.RpcError:
        return  # the client went away; the sending side ends too
    except Exception as err:  # a bug: end this stream, keep the member
        log.exception("watch request failed")
        stream.fail(EtcdError(Code.UNKNOWN, f"{type(err).__name__}: {err}"))


def _keep_alive(server: Server, log: Any) -> Callable[[AsyncIterator[Any],
                                                      grpc.aio.ServicerContext],
                                                     AsyncIterator[Message]]:
    """LeaseKeepAlive: each request answered once renewed (TTL 0 for an unknown lease);
    the requests that arrive while a batch is being renewed make the next batch, up to
    MAX_KEEP_ALIVES_IN_FLIGHT of a stream at once; another error ends the stream, as
    etcd's."""
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[Message]:
        # Both bounded: a client that stops reading answers stops the renewals, then
        # the reading of its requests (grpc's flow control holds it back).
        answers: asyncio.Queue[Message | EtcdError | None] = asyncio.Queue(
            MAX_KEEP_ALIVES_IN_FLIGHT)
        queued: asyncio.Queue[int] = asyncio.Queue(MAX_KEEP_ALIVES_IN_FLIGHT)
        _identify(context, server)  # before the tasks copy the context
        tasks = [asyncio.create_task(_read_keep_alives(requests, queued, answers)),
                 asyncio.create_task(_renew_queued(server, queued, answers, log))]
        try:
            while (answer := await answers.get()) is not None:
                if isinstance(answer, EtcdError):
                    await context.abort(status_code(answer.code), answer.message)
                yield answer
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return handle


async def _read_keep_alives(requests: AsyncIterator[Any], queued: asyncio.Queue[int],
                            answers: asyncio.Queue[Message | EtcdError | None]) -> None:
    """Until the client half-closes: then, once every answer is out, None ends the
    stream (etcd's recvLoop returns at io.EOF)."""
    try:
        async for request in requests:
            if isinstance(request, Malformed):
                await answers.put(EtcdError(Code.INTERNAL, request.message))
                return
            await queued.put(request.ID)
        await queued.join()
        await answers.put(None)
    except grpc.RpcError:
        pass  # the client went away


async def _renew_queued(server: Server, queued: asyncio.Queue[int],
                        answers: asyncio.Queue[Message | EtcdError | None], log: Any) -> None:
    while True:
        lease_ids = [await queued.get()]
        while not queued.empty():
            lease_ids.append(queued.get_nowait())
        try:
            for resp in await server.lease_keep_alives(lease_ids):
                await answers.put(resp)
        except EtcdError as err:
            await answers.put(err)
        except Exception as err:  # a bug: end this stream, keep the member
            log.exception("keep-alive failed")
            await answers.put(EtcdError(Code.UNKNOWN, f"{type(err).__name__}: {err}"))
        for _ in lease_ids:
            queued.task_done()


def _forwarded_keep_alives(server: Server) -> grpc.RpcMethodHandler:
    """leader.FORWARD_METHOD: batches of keep-alives other members forward, answered in
    order by the leader alone."""
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[list[int]]:
        async for lease_ids in requests:
            if isinstance(lease_ids, Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, lease_ids.message)
            try:
                ttls = await server.leasing.keep_alives_as_leader(lease_ids)
            except EtcdError as err:
                await context.abort(status_code(err.code), err.message)
            yield ttls

    def parse(data: bytes) -> list[int] | Malformed:
        try:
            return leader.unpack_ids(data)
        except ValueError as err:
            return Malformed(f"keep-alive batch: {err}")
    return grpc.stream_stream_rpc_method_handler(
        handle, request_deserializer=parse, response_serializer=leader.pack_ids)


def _already_encoded(response: bytes) -> bytes:
    return response


def _unimplemented(name: str, streams_in: bool, streams_out: bool,
                   codec: dict[str, Any]) -> grpc.RpcMethodHandler:
    message = f"method {name} not implemented"  # etcd's Unimplemented*Server text

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    make = {(False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}[(streams_in, streams_out)]
    return make(refuse, **codec)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that is not valid protobuf, answered as grpc-go answers it (grpcio
    itself would say Unknown)."""

    message: str


def _deserializer(request_class: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def parse(data: bytes) -> Message | Malformed:
        try:
            return request_class.FromString(data)
        except DecodeError as err:
            return Malformed(f"grpc: error unmarshalling request: {err}")
    return parse


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _message_class(full_name: str) -> type[Message]:
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        descriptor = module.DESCRIPTOR.message_types_by_name.get(full_name.rsplit(".", 1)[-1])
        if descriptor is not None and descriptor.full_name == full_name:
            return getattr(module, descriptor.name)
    raise KeyError(full_name)
