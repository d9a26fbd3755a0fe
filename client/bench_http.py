"""One petcd-bench connection over etcd's JSON gateway (POST /v3/kv/*, base64 bytes).

Each connection is its own aiohttp session limited to one TCP connection, so
--conns N means N real connections to the members.
"""

from __future__ import annotations

import base64
import ssl

import aiohttp
import orjson

from .bench_conn import BenchError
from .tls import PLAIN, TlsOptions

TRACE_HEADER = "Petcd-Trace"  # petcd's stage times of a write (actors/network/trace.py)
TOKEN_HEADER = "Authorization"  # the gateway's place for an Authenticate token


def base_url(endpoint: str, scheme: str = "http") -> str:
    """scheme://host:port for an endpoint given as a URL or as host:port."""
    return endpoint if "://" in endpoint else f"{scheme}://{endpoint}"


def _ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file or None)
    return context


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _put_op(key: bytes, value: str) -> dict:
    return {"request_put": {"key": _b64(key), "value": value}}


class HttpConn:
    def __init__(self, endpoint: str, timeout_s: float, tls: TlsOptions = PLAIN,
                 token: str = "") -> None:
        """`token`, from Authenticate, goes with every request (--user)."""
        secure = tls.secure(endpoint)
        url = base_url(endpoint.split("://", 1)[-1], "https") if secure else base_url(endpoint)
        self._url = url.rstrip("/") + "/v3/"
        self._session = aiohttp.ClientSession(
            headers={TOKEN_HEADER: token} if token else None,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=1, ssl=_ssl_context(tls) if secure else False))

    async def close(self) -> None:
        await self._session.close()

    async def _post(self, path: str, body: dict,
                    trace: bool = False) -> tuple[dict, str | None]:
        headers = {TRACE_HEADER: "1"} if trace else None
        try:
            async with self._session.post(self._url + path, data=orjson.dumps(body),
                                          headers=headers) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise BenchError(f"HTTP {resp.status}: {payload[:200]!r}")
                traced = resp.headers.get(TRACE_HEADER)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise BenchError(f"{type(err).__name__}: {err}") from None
        return orjson.loads(payload), traced

    async def authenticate(self, user: str, password: str) -> str:
        resp, _ = await self._post("auth/authenticate", {"name": user, "password": password})
        return resp["token"]

    async def put(self, keys: list[bytes], value: bytes, trace: bool = False) -> str | None:
        encoded = _b64(value)
        if len(keys) == 1:
            _, traced = await self._post("kv/put", {"key": _b64(keys[0]), "value": encoded},
                                         trace)
        else:
            _, traced = await self._post(
                "kv/txn", {"success": [_put_op(k, encoded) for k in keys]}, trace)
        return traced

    async def range(self, key: bytes, range_end: bytes, limit: int, serializable: bool) -> int:
        body: dict = {"key": _b64(key), "serializable": serializable, "limit": limit}
        if range_end:
            body["range_end"] = _b64(range_end)
        resp, _ = await self._post("kv/range", body)
        return len(resp.get("kvs", ()))

    async def cas(self, key: bytes, mod_revision: int, value: bytes) -> tuple[bool, int]:
        k = _b64(key)
        resp, _ = await self._post("kv/txn", {
            "compare": [{"key": k, "target": "MOD", "result": "EQUAL",
                         "mod_revision": str(mod_revision)}],
            "success": [_put_op(key, _b64(value))],
            "failure": [{"request_range": {"key": k}}]})
        if resp.get("succeeded"):
            return True, int(resp["header"]["revision"])
        kvs = resp["responses"][0]["response_range"].get("kvs", ())
        return False, int(kvs[0]["mod_revision"]) if kvs else 0
