"""petcd-bench --user: authenticate before the workers start, once per endpoint.

etcd's own benchmark tool authenticates every client it dials; with the default
--bcrypt-cost of 10 each Authenticate costs a member tens of milliseconds of CPU
checking the password, which would then be measured with the requests. Here the
parent asks each member for a token before the clock starts, and every connection to
that member sends it. Asking each member (not one for all, though tokens are Raft
state in etcd and petcd alike) means the member has applied its token before the first
request comes: a follower that has not yet heard of the commit would refuse it.
"""

from __future__ import annotations

import asyncio

from .bench_worker import open_conn
from .tls import TlsOptions


async def _tokens(protocol: str, endpoints: tuple[str, ...], tls: TlsOptions, user: str,
                  password: str) -> tuple[str, ...]:
    tokens = []
    for endpoint in endpoints:
        conn = open_conn(protocol, endpoint, tls)
        try:
            tokens.append(await conn.authenticate(user, password))
        finally:
            await conn.close()
    return tuple(tokens)


def tokens(protocol: str, endpoints: tuple[str, ...], tls: TlsOptions, user: str,
           password: str) -> tuple[str, ...]:
    """A token from each endpoint, in order; raises BenchError if one refuses."""
    return asyncio.run(_tokens(protocol, endpoints, tls, user, password))
