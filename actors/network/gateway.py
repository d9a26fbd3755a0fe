"""The HTTP face of the client API: etcd v3.5's JSON gateway, /health, /version,
/metrics (metrics.py) and etcd 3.6's /livez and /readyz (probes.py).

    POST /v3/kv/range | put | deleterange | txn | compaction
    POST /v3/maintenance/status        POST /v3/cluster/member/list|add|remove|update|promote
    POST /v3/maintenance/transfer-leadership
    POST /v3/maintenance/hash | hashkv | alarm | defragment | snapshot (a stream)
    POST /v3/watch, /v3/lease/keepalive (both ways a stream)
    POST /v3/lease/grant | revoke | timetolive | leases (also under /v3/kv/lease/)
    POST /v3/lock/lock | unlock     POST /v3/election/campaign | proclaim | leader |
         resign | observe (a stream)
    GET  /health[?exclude=NOSPACE][&serializable=true]     GET /version
    GET  /metrics     GET /livez[/<check>], /readyz[/<check>] [?verbose][&exclude=<check>]

What etcd's HTTP mux and grpc-gateway v1 answer, byte for byte where it matters:
- a request body decodes as jsonpb.parse says; the response is jsonpb.render of the
  etcd response, `Content-Type: application/json`;
- errors are errors.EtcdError bodies with grpc-gateway's HTTP status;
- another etcd v3 path petcd does not serve yet answers gRPC's Unimplemented
  ("method LeaseGrant not implemented", 501), as a server without that service would;
- an unknown path under /v3/ is `404 Not Found` (text, grpc-gateway's fallback), a
  known one with another method than POST `405 Method Not Allowed`; other unknown
  paths get Go's `404 page not found`;
- /v3/watch, as grpc-gateway v1 serves a bidirectional stream: the body is a sequence
  of JSON WatchRequests (whitespace between them), each handed to the watch stream as
  it arrives; a first one that does not decode fails the call (Unknown, HTTP 500, as
  etcd 3.4's gateway answers; text that is not yet a whole JSON value is judged when
  the body ends, where Go's decoder refuses bad syntax at once), a later one ends the
  requests, not the stream (the gateway closes its send side); responses are lines
  {"result": <WatchResponse>}, each in its own HTTP chunk (clients such as etcd3gw
  parse one chunk as one line), until the client goes away, an error line
  {"error": ...} if the stream fails;
- a body larger than the gateway reads (twice --max-request-bytes plus gRPC's 512 KiB
  overhead: room for base64) is "etcdserver: request is too large" without reading
  on; the exact limit, --max-request-bytes on the proposed entry, is the server's.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf.message import Message
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.api.v3lockpb import v3lock_pb2 as lpb

from . import auth, errors, jsonpb, metrics, probes, trace
from .errors import Code, EtcdError
from .rpc import SERVED
from .server import CLUSTER_VERSION, GRPC_OVERHEAD_BYTES, SERVER_VERSION, Server
from .watch import WatchStream

HTTP_STATUS_TEXT = {s.value: s.phrase for s in HTTPStatus}
WATCH_PATH = "/v3/watch"
KEEP_ALIVE_PATH = "/v3/lease/keepalive"
DISCONNECT_POLL_S = 1.0
_JSON = json.JSONDecoder()
RENDER_INLINE_MAX_BYTES = 256 * 1024  # larger responses render off the event loop
MAX_INFLIGHT_REQUESTS = 10_000  # more at once: "etcdserver: too many requests"

Handler = Callable[[Server, Any], Awaitable[Message]]
M = TypeVar("M", bound=Message)

ROUTES: dict[str, tuple[type[Message], Handler]] = {
    "/v3/kv/range": (pb.RangeRequest, Server.range),
    "/v3/kv/put": (pb.PutRequest, Server.put),
    "/v3/kv/deleterange": (pb.DeleteRangeRequest, Server.delete_range),
    "/v3/kv/txn": (pb.TxnRequest, Server.txn),
    "/v3/kv/compaction": (pb.CompactionRequest, Server.compact),
    "/v3/maintenance/status": (pb.StatusRequest, Server.status),
    "/v3/maintenance/transfer-leadership": (pb.MoveLeaderRequest, Server.move_leader),
    "/v3/maintenance/hash": (pb.HashRequest, Server.hash),
    "/v3/maintenance/hashkv": (pb.HashKVRequest, Server.hash_kv),
    "/v3/maintenance/alarm": (pb.AlarmRequest, Server.alarm),
    "/v3/maintenance/defragment": (pb.DefragmentRequest, Server.defragment),
    "/v3/cluster/member/list": (pb.MemberListRequest, Server.member_list),
    "/v3/cluster/member/add": (pb.MemberAddRequest, Server.member_add),
    "/v3/cluster/member/remove": (pb.MemberRemoveRequest, Server.member_remove),
    "/v3/cluster/member/update": (pb.MemberUpdateRequest, Server.member_update),
    "/v3/cluster/member/promote": (pb.MemberPromoteRequest, Server.member_promote),
    "/v3/lease/grant": (pb.LeaseGrantRequest, Server.lease_grant),
    "/v3/lease/revoke": (pb.LeaseRevokeRequest, Server.lease_revoke),
    "/v3/kv/lease/revoke": (pb.LeaseRevokeRequest, Server.lease_revoke),
    "/v3/lease/timetolive": (pb.LeaseTimeToLiveRequest, Server.lease_time_to_live),
    "/v3/kv/lease/timetolive": (pb.LeaseTimeToLiveRequest, Server.lease_time_to_live),
    "/v3/lease/leases": (pb.LeaseLeasesRequest, Server.lease_leases),
    "/v3/kv/lease/leases": (pb.LeaseLeasesRequest, Server.lease_leases),
    "/v3/lock/lock": (lpb.LockRequest, lambda s, r: s.coordination.lock(r)),
    "/v3/lock/unlock": (lpb.UnlockRequest, lambda s, r: s.coordination.unlock(r)),
    "/v3/election/campaign": (epb.CampaignRequest, lambda s, r: s.coordination.campaign(r)),
    "/v3/election/proclaim": (epb.ProclaimRequest, lambda s, r: s.coordination.proclaim(r)),
    "/v3/election/leader": (epb.LeaderRequest, lambda s, r: s.coordination.leader(r)),
    "/v3/election/resign": (epb.ResignRequest, lambda s, r: s.coordination.resign(r)),
}

# Server-streaming methods: grpc-gateway writes each response as one line,
# {"result": <response>}, and an error after the first line as {"error": {...}}.
STREAMS: dict[str, tuple[type[Message], Callable[[Server, Any], AsyncIterator[Message]]]] = {
    "/v3/maintenance/snapshot": (pb.SnapshotRequest, Server.snapshot),
    "/v3/election/observe": (epb.LeaderRequest, lambda s, r: s.coordination.observe(r)),
}

# etcd v3.5's other gateway paths, by the gRPC method behind each.
NOT_YET: dict[str, str] = {
    "/v3/maintenance/downgrade": "Downgrade",
}

# etcd's /v3/auth/* paths, by the gRPC method behind each (rpc.AUTH_METHODS).
AUTH_PATHS: dict[str, tuple[type[Message], str]] = {
    "/v3/auth/enable": (pb.AuthEnableRequest, "AuthEnable"),
    "/v3/auth/disable": (pb.AuthDisableRequest, "AuthDisable"),
    "/v3/auth/status": (pb.AuthStatusRequest, "AuthStatus"),
    "/v3/auth/authenticate": (pb.AuthenticateRequest, "Authenticate"),
    "/v3/auth/user/add": (pb.AuthUserAddRequest, "UserAdd"),
    "/v3/auth/user/get": (pb.AuthUserGetRequest, "UserGet"),
    "/v3/auth/user/list": (pb.AuthUserListRequest, "UserList"),
    "/v3/auth/user/delete": (pb.AuthUserDeleteRequest, "UserDelete"),
    "/v3/auth/user/changepw": (pb.AuthUserChangePasswordRequest, "UserChangePassword"),
    "/v3/auth/user/grant": (pb.AuthUserGrantRoleRequest, "UserGrantRole"),
    "/v3/auth/user/revoke": (pb.AuthUserRevokeRoleRequest, "UserRevokeRole"),
    "/v3/auth/role/add": (pb.AuthRoleAddRequest, "RoleAdd"),
    "/v3/auth/role/get": (pb.AuthRoleGetRequest, "RoleGet"),
    "/v3/auth/role/list": (pb.AuthRoleListRequest, "RoleList"),
    "/v3/auth/role/delete": (pb.AuthRoleDeleteRequest, "RoleDelete"),
    "/v3/auth/role/grant": (pb.AuthRoleGrantPermissionRequest, "RoleGrantPermission"),
    "/v3/auth/role/revoke": (pb.AuthRoleRevokePermissionRequest, "RoleRevokePermission"),
}
ROUTES.update({path: (request_class, SERVED[f"Auth.{method}"])
               for path, (request_class, method) in AUTH_PATHS.items()})


def body_limit_bytes(max_request_bytes: int) -> int:
    return 2 * max_request_bytes + GRPC_OVERHEAD_BYTES


class Gateway:
    def __init__(self, server: Server, log: Any) -> None:
        self.server = server
        self.log = log
        self.body_limit_bytes = body_limit_bytes(server.max_request_bytes)
        self.inflight = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.body_limit_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def metrics_app(self) -> web.Application:
        """What --listen-metrics-urls serve: /metrics and the health probes alone."""
        app = web.Application(client_max_size=self.body_limit_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle_metrics_url)
        return app

    async def handle_metrics_url(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v3/") or request.path == "/version":
            return go_http_error(404, "404 page not found")
        return await self.handle(request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/health":
            return await self._get_only(request, self.health)
        if path == "/version":
            return await self._get_only(request, self.version)
        if path == "/metrics":
            return await self._get_only(request, self.metrics)
        probe, _, check = path.strip("/").partition("/")
        if probe in probes.CHECKS and (not check or check in probes.CHECKS[probe]):
            return await self._get_only(request, lambda r: self.probe(r, probe, check or None))
        if not path.startswith("/v3/"):
            return go_http_error(404, "404 page not found")
        if path not in ROUTES and path not in NOT_YET and path not in STREAMS \
                and path not in (WATCH_PATH, KEEP_ALIVE_PATH):
            return go_http_error(404, "Not Found")
        if request.method != "POST":
            return go_http_error(405, "Method Not Allowed")
        if self.inflight >= MAX_INFLIGHT_REQUESTS:
            return error_response(errors.copy(errors.TOO_MANY_REQUESTS))
        self.inflight += 1
        try:
            if path == WATCH_PATH:
                return await self._watch(request)
            if path == KEEP_ALIVE_PATH:
                return await self._keep_alive(request)
            if path in STREAMS:
                return await self._stream(request, path)
            return await self._call(request, path)
        except EtcdError as err:
            return error_response(err)
        except Exception as err:  # a bug: answer as gRPC does for an unknown error
            self.log.exception("request failed", path=path)
            return error_response(EtcdError(Code.UNKNOWN, f"{type(err).__name__}: {err}"))
        finally:
            self.inflight -= 1

    async def _body(self, request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.copy(errors.REQUEST_TOO_LARGE) from None

    async def _call(self, request: web.Request, path: str) -> web.Response:
        body = await self._body(request)
        if path in NOT_YET:
            raise EtcdError(Code.UNIMPLEMENTED, f"method {NOT_YET[path]} not implemented")
        request_class, handler = ROUTES[path]
        # grpc-gateway passes the Authorization header on as gRPC metadata (auth.py).
        auth.current_token.set(request.headers.get("Authorization") or None)
        traced = None
        if trace.HTTP_HEADER in request.headers:
            traced = trace.Trace()
            trace.current.set(traced)
        response = await handler(self.server, jsonpb.parse(body, request_class))
        if response.ByteSize() > RENDER_INLINE_MAX_BYTES:
            data = await asyncio.get_running_loop().run_in_executor(
                None, jsonpb.render, response)
        else:
            data = jsonpb.render(response)
        headers = None
        if traced is not None:
            traced.mark("returned")
            headers = {trace.HTTP_HEADER: traced.encode()}
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def _stream(self, request: web.Request, path: str) -> web.StreamResponse:
        request_class, handler = STREAMS[path]
        auth.current_token.set(request.headers.get("Authorization") or None)
        responses = handler(self.server, jsonpb.parse(await self._body(request), request_class))
        try:
            # An error before the first response is answered as a plain error.
            response = await anext(responses, None)
            stream = web.StreamResponse(headers={"Content-Type": "application/json"})
            await stream.prepare(request)
            try:
                while response is not None:
                    line = jsonpb.dumps({"result": jsonpb.to_dict(response)})
                    await stream.write(line + b"\n")
                    response = await anext(responses, None)
            except EtcdError as err:
                await stream.write(stream_error(err) + b"\n")
            await stream.write_eof()
            return stream
        finally:
            await responses.aclose()  # a client gone mid-stream: clean up now

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        requests = await self._stream_requests(request, pb.WatchRequest)
        if isinstance(requests, web.Response):
            return requests
        stream = self.server.watches.open_stream(
            False, self.server.auth.watch_permit(request.headers.get("Authorization") or None))
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        tasks = [asyncio.create_task(_handle_all(requests, stream)),
                 asyncio.create_task(_until_disconnected(request, stream))]
        try:
            await out.prepare(request)
            try:
                async for raw in stream.responses():
                    result = jsonpb.to_dict(pb.WatchResponse.FromString(raw))
                    await out.write(jsonpb.dumps({"result": result}) + b"\n")
            except EtcdError as err:
                if request.transport is not None:
                    await out.write(stream_error(err) + b"\n")
        except ConnectionError:
            pass  # the client went away
        finally:
            for task in tasks:
                task.cancel()
            self.server.watches.close_stream(stream)
        return out

    async def _keep_alive(self, request: web.Request) -> web.StreamResponse:
        """/v3/lease/keepalive: each LeaseKeepAliveRequest of the body answered in turn;
        the stream ends with the body, or at the first error (an error line). A first
        request that does not decode is a plain error (`_stream_requests`)."""
        requests = await self._stream_requests(request, pb.LeaseKeepAliveRequest)
        if isinstance(requests, web.Response):
            return requests
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        await out.prepare(request)
        try:
            async for keep_alive in requests:
                result = jsonpb.to_dict(await self.server.lease_keep_alive(keep_alive))
                await out.write(jsonpb.dumps({"result": result}) + b"\n")
        except EtcdError as err:
            await out.write(stream_error(err) + b"\n")
        except ConnectionError:
            return out  # the client went away
        await out.write_eof()
        return out

    async def _stream_requests(self, request: web.Request, message_class: type[M]
                               ) -> AsyncIterator[M] | web.Response:
        """A stream's requests, as grpc-gateway reads them: the first decoded before
        anything is answered, so one that does not decode is the call's plain error
        (the response returned); then each later one as it arrives, until the body ends
        or one does not decode (logged; the stream goes on without more requests)."""
        requests = self._decoded(request, message_class)
        try:
            first = await anext(requests, None)
        except EtcdError as err:
            return error_response(err)
        except ConnectionError:
            return web.Response()  # the client went away before its first request: unsent
        return self._first_then(first, requests, request.path)

    async def _first_then(self, first: M | None, rest: AsyncIterator[M], path: str
                          ) -> AsyncIterator[M]:
        if first is None:
            return
        yield first
        try:
            async for message in rest:
                yield message
        except EtcdError as err:
            self.log.info("failed to decode streamed request", path=path, error=err.message)

    async def _decoded(self, request: web.Request, message_class: type[M]
                       ) -> AsyncIterator[M]:
        """grpc-gateway's request stream: JSON values one after another in the body,
        each decoded as it completes. One that does not decode raises EtcdError(Unknown),
        as grpc-gateway's failed decode does: when it is complete, or when the body ends
        (JSON cut short there is Go's "unexpected EOF")."""
        pending = ""
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks split characters
        async for chunk in request.content.iter_any():
            pending += text.decode(chunk)
            if len(pending) > self.body_limit_bytes:
                self.log.info("streamed request too large; no more requests read",
                              path=request.path)
                return
            while True:
                pending = pending.lstrip(" \t\r\n")
                try:
                    _, end = _JSON.raw_decode(pending)
                except json.JSONDecodeError:
                    break  # incomplete so far, or garbage: more data or the end says
                try:
                    message = jsonpb.parse(pending[:end].encode(), message_class)
                except EtcdError as err:
                    raise EtcdError(Code.UNKNOWN, err.message) from None
                pending = pending[end:]
                yield message
        if pending:
            raise _undecodable_tail(pending)

    async def _get_only(self, request: web.Request,
                        serve: Callable[[web.Request], Awaitable[web.Response]]
                        ) -> web.Response:
        if request.method != "GET":
            response = go_http_error(405, "Method Not Allowed")
            response.headers["Allow"] = "GET"
            return response
        return await serve(request)

    async def health(self, request: web.Request) -> web.Response:
        """etcd's /health: 200 {"health":"true","reason":""}, else 503 with a reason."""
        excluded = set(request.query.getall("exclude", []))
        serializable = request.query.get("serializable") == "true"
        reason = await self.server.health(excluded, serializable)
        data = jsonpb.dumps({"health": "false" if reason else "true", "reason": reason})
        if reason:
            self.log.warning("serving /health false", reason=reason)
            return go_http_error(503, data.decode())
        # Go sniffs the type of a body written without one: JSON text is text/plain.
        return web.Response(body=data, headers={"Content-Type": "text/plain; charset=utf-8"})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus' text format: every actor's metrics (actors/network/metrics.py)."""
        await self.server.refresh_metrics()
        return web.Response(body=self.server.metrics.render(),
                            headers={"Content-Type": metrics.CONTENT_TYPE})

    async def probe(self, request: web.Request, probe: str, check: str | None
                    ) -> web.Response:
        """etcd 3.6's /livez and /readyz (probes.py)."""
        names, unknown = probes.selected(probe, check, request.query.getall("exclude", []))
        if unknown:
            self.log.warning("some health checks cannot be excluded",
                             missing_health_checks=unknown)
        outcome = await probes.run(self.server, probe, names)
        headers = {"Content-Type": "text/plain; charset=utf-8",
                   "X-Content-Type-Options": "nosniff"}
        if not outcome.ok:
            self.log.error("Health check error", path=request.path, reason=outcome.lines)
            return web.Response(status=503, text=outcome.lines + "\n", headers=headers)
        verbose = outcome.lines if "verbose" in request.query else ""
        return web.Response(text=verbose + "ok\n", headers=headers)

    async def version(self, request: web.Request) -> web.Response:
        data = jsonpb.dumps({"etcdserver": SERVER_VERSION, "etcdcluster": CLUSTER_VERSION})
        return web.Response(body=data, content_type="application/json")


async def _until_disconnected(request: web.Request, stream: WatchStream) -> None:
    """End a watch stream once its client has gone: a stream that gets no event would
    otherwise wait for one forever (aiohttp does not cancel a handler whose client left)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(DISCONNECT_POLL_S)
    stream.fail(errors.copy(errors.STOPPED))


def _undecodable_tail(text: str) -> EtcdError:
    """What is left of a streamed body that ended inside, or instead of, a JSON value."""
    try:
        _JSON.raw_decode(text)
    except json.JSONDecodeError as err:
        if err.pos == len(text) or err.msg.startswith("Unterminated string"):
            return EtcdError(Code.UNKNOWN, "unexpected EOF")  # Go's encoding/json
        return EtcdError(Code.UNKNOWN, f"invalid JSON: {err.msg} at offset {err.pos}")
    raise AssertionError(f"a complete JSON value was left undecoded: {text[:80]!r}")


def error_response(err: EtcdError) -> web.Response:
    return web.Response(status=err.http_status, body=err.body(),
                        content_type="application/json")


def stream_error(err: EtcdError) -> bytes:
    """grpc-gateway v1's error line in a stream (runtime.errorChunk)."""
    return jsonpb.dumps({"error": {"grpc_code": int(err.code), "http_code": err.http_status,
                                   "message": err.message,
                                   "http_status": HTTP_STATUS_TEXT.get(err.http_status, "")}})


def go_http_error(status: int, text: str) -> web.Response:
    """Go's http.Error: the text and a newline, as plain text, not to be sniffed."""
    return web.Response(status=status, body=(text + "\n").encode(), headers={
        "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})


async def _handle_all(requests: AsyncIterator[pb.WatchRequest], stream: WatchStream) -> None:
    """Each WatchRequest of the body, handed to the stream as it arrives."""
    try:
        async for watch_request in requests:
            await stream.handle(watch_request)
    except ConnectionError:
        pass  # the client went away mid-body: _until_disconnected ends the stream
