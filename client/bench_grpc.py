"""One petcd-bench connection over etcd's gRPC API (etcdserverpb.KV, grpc.aio).

Each connection is its own channel with a local subchannel pool: without that option
grpcio shares one TCP connection among channels to the same target, and --conns N
would measure one connection.
"""

from __future__ import annotations

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_conn import BenchError
from .tls import PLAIN, TlsOptions, credentials

CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)
TRACE_KEY = "petcd-trace"  # petcd's stage times of a write (actors/network/trace.py)
TOKEN_KEY = "token"  # etcd's rpctypes.TokenFieldNameGRPC


def target(endpoint: str) -> str:
    """host:port for an endpoint given as http://host:port or as host:port."""
    return endpoint.split("://", 1)[-1].rstrip("/")


class GrpcConn:
    def __init__(self, endpoint: str, timeout_s: float, tls: TlsOptions = PLAIN,
                 token: str = "") -> None:
        """`token`, from Authenticate, goes with every request (--user)."""
        if tls.secure(endpoint):
            creds, options = credentials(tls, target(endpoint))
            self._channel = grpc.aio.secure_channel(target(endpoint), creds,
                                                    options=CHANNEL_OPTIONS + options)
        else:
            self._channel = grpc.aio.insecure_channel(target(endpoint), options=CHANNEL_OPTIONS)
        self._kv = pb_grpc.KVStub(self._channel)
        self._timeout_s = timeout_s
        self._metadata: tuple[tuple[str, str], ...] = ((TOKEN_KEY, token),) if token else ()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method, request):
        try:
            return await method(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise BenchError(f"{err.code().name}: {err.details()}") from None

    async def authenticate(self, user: str, password: str) -> str:
        resp = await self._call(pb_grpc.AuthStub(self._channel).Authenticate,
                                pb.AuthenticateRequest(name=user, password=password))
        return resp.token

    async def put(self, keys: list[bytes], value: bytes, trace: bool = False) -> str | None:
        if len(keys) == 1:
            method, request = self._kv.Put, pb.PutRequest(key=keys[0], value=value)
        else:
            method, request = self._kv.Txn, pb.TxnRequest(success=[
                pb.RequestOp(request_put=pb.PutRequest(key=k, value=value)) for k in keys])
        if not trace:
            await self._call(method, request)
            return None
        call = method(request, timeout=self._timeout_s, metadata=((TRACE_KEY, "1"), *self._metadata))
        try:
            await call
            trailing = await call.trailing_metadata()
        except grpc.aio.AioRpcError as err:
            raise BenchError(f"{err.code().name}: {err.details()}") from None
        return next((v for k, v in trailing or () if k == TRACE_KEY), None)

    async def range(self, key: bytes, range_end: bytes, limit: int, serializable: bool) -> int:
        resp = await self._call(self._kv.Range, pb.RangeRequest(
            key=key, range_end=range_end, limit=limit, serializable=serializable))
        return len(resp.kvs)

    async def cas(self, key: bytes, mod_revision: int, value: bytes) -> tuple[bool, int]:
        resp = await self._call(self._kv.Txn, pb.TxnRequest(
            compare=[pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL,
                                mod_revision=mod_revision)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))]))
        if resp.succeeded:
            return True, resp.header.revision
        kvs = resp.responses[0].response_range.kvs
        return False, kvs[0].mod_revision if kvs else 0
