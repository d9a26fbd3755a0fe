"""etcd's Auth service, the network half: passwords, tokens, and who is asking.

The state (users, roles, flag, revision, tokens) is the store's, changed only through
Raft (storage/mvcc/auth_requests.py). Here, before a request becomes a proposal:

- Passwords are hashed with bcrypt at --bcrypt-cost (UserAdd, UserChangePassword),
  as etcd's API layer does, so no plain password reaches the log; the hash travels
  base64 in `hashedPassword`. Hashing takes tens of milliseconds: it runs on a thread.
- Authenticate checks the password against the stored hash (bcrypt's own constant-time
  check) on a linearizable read, then proposes the token's 16 random letters; the
  entry's index completes it ("<letters>.<index>", etcd's simple token), so every
  member knows the token once the entry is applied. If the auth revision moved
  between the check and the apply (a password changed), it checks again, as etcd.
- A request's token (gRPC metadata `token`, or the gateway's `Authorization` header:
  `current_token`, set by rpc.py and gateway.py) names the user written in the
  proposal's header with the auth revision it was resolved at; the apply checks the
  user's rights there, on every member alike. While auth is disabled tokens are
  ignored, as etcd's AuthInfoFromCtx ignores them.
- A token lives --auth-token-ttl seconds since its last use on this member (etcd's
  simpleTokenTTLKeeper, per member too). Unlike etcd's, whose clock starts when each
  member applies the token, this member's starts at its first use here.
- Checks: Range (in the read's own store transaction), Put, DeleteRange, Txn and
  LeaseRevoke (at apply, from the proposal header) need the user's key permissions
  while auth is enabled (storage/mvcc/permissions.py).
- Maintenance and Cluster calls: etcd's AuthAdmin rules (require_admin, require_user;
  server.py says which call needs which).
- Watches: a stream's token is the one its opening carried; each watch it creates
  needs read permission on its range, or is canceled with the reason (watch_permit).
- The member's own proposals (expired leases' revokes, checkpoints) are made as root
  (server.py `_propose_as_member`), as etcd's lessor revokes WithRoot.

Not yet: --auth-token jwt (tokens are simple ones whatever the flag says: a warning
says so at start), TLS common names as users.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import bcrypt

from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import auth_requests
from petcd.storage.mvcc.auth import has_root_role
from petcd.storage.mvcc.layout import MAX_SIMPLE_TOKENS

from . import errors
from .errors import Code, EtcdError

if TYPE_CHECKING:
    from .server import Server

# The token of the request being served (None: none given); rpc.py and gateway.py set it.
current_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "petcd_auth_token", default=None)
TOKEN_METADATA_KEYS = ("token", "authorization")  # etcd's rpctypes.TokenFieldNameGRPC(2)
_LETTERS = string.ascii_lowercase + string.ascii_uppercase  # etcd's simple token letters
MAX_AUTHENTICATE_TRIES = 3  # etcd retries while the revision moves; bounded here
_BCRYPT_PREFIX = b"2a"  # what Go's golang.org/x/crypto/bcrypt writes


class TokenClock:
    """Last use of each token on this member; a token idle past the TTL is dead here.
    Bounded: past MAX_SIMPLE_TOKENS entries the least recently used one is forgotten
    (the store keeps no more tokens than that either)."""

    def __init__(self, ttl_s: float, capacity: int = MAX_SIMPLE_TOKENS) -> None:
        assert ttl_s > 0 and capacity > 0, (ttl_s, capacity)
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._last_used: OrderedDict[str, float] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()

    def use(self, token: str, now: float) -> bool:
        """True if `token` is alive at `now`; its TTL starts again."""
        if token in self._expired:
            return False
        last = self._last_used.pop(token, now)
        if now - last > self.ttl_s:
            self._remember(self._expired, token, None)
            return False
        self._remember(self._last_used, token, now)
        return True

    def _remember(self, table: OrderedDict[str, Any], token: str, value: Any) -> None:
        table[token] = value
        while len(table) > self.capacity:
            table.popitem(last=False)


class Auth:
    def __init__(self, server: Server, bcrypt_cost: int, token_ttl_s: float,
                 token_kind: str) -> None:
        self.server = server
        self.bcrypt_cost = bcrypt_cost
        self.tokens = TokenClock(token_ttl_s)
        if token_kind.split(",", 1)[0] != "simple":
            server.log.warning("only simple auth tokens are served; --auth-token ignored",
                               auth_token=token_kind.split(",", 1)[0])

    # -- who is asking -----------------------------------------------------------------

    async def identify(self) -> tuple[str, int]:
        """(user name, auth revision) of the current request's token; ("", 0) if it
        has none or auth is disabled. An unknown or expired token is refused."""
        return await self.identify_token(current_token.get())

    async def identify_token(self, token: str | None) -> tuple[str, int]:
        if not token:
            return "", 0
        # A token is answered before its batch commits: wait until the store shows it.
        await self.server._store_ready()
        enabled, user, revision = await self.server._local(
            lambda s: s.token_user(token), short=True)
        if not enabled:
            return "", 0
        if user is None or not self.tokens.use(token, time.monotonic()):
            raise errors.copy(errors.INVALID_AUTH_TOKEN)
        return user, revision

    async def require_user(self) -> None:
        """etcd's requireAuthInfo (Status, MemberList, Alarm GET): with auth enabled, a
        request needs a valid token."""
        if await self._enabled() and not (await self.identify())[0]:
            raise errors.copy(errors.USER_EMPTY)

    async def require_admin(self) -> None:
        """etcd's AuthAdmin.isPermitted (Defragment, Snapshot, Hash, HashKV,
        MoveLeader, Alarm changes, membership changes): with auth enabled, only a
        user with the root role."""
        if not await self._enabled():
            return
        name, _ = await self.identify()
        if not name:
            raise errors.copy(errors.USER_EMPTY)
        user = await self.server._local(lambda s: s.auth_user(name), short=True)
        if user is None:
            raise errors.copy(errors.USER_NOT_FOUND)
        if not has_root_role(user):
            raise errors.copy(errors.PERMISSION_DENIED)

    async def _enabled(self) -> bool:
        await self.server._store_ready()
        enabled, _ = await self.server._local(lambda s: s.auth_status(), short=True)
        return enabled

    def watch_permit(self, token: str | None) -> Callable[[pb.WatchCreateRequest],
                                                          Awaitable[str | None]]:
        """For a watch stream opened with `token`: the reason to cancel a watch its
        user may not read (etcd's isWatchPermitted), None to create it. Unlike etcd
        3.4, which checks a from-key watch as its first key alone, the whole range."""
        async def permit(r: pb.WatchCreateRequest) -> str | None:
            try:
                asker = await self.identify_token(token)
                await self.server._local(
                    lambda s: s.check_read(asker, r.key or b"\x00", r.range_end), short=True)
            except EtcdError as err:
                return err.message
            return None
        return permit

    # -- Auth service -----------------------------------------------------------------

    async def authenticate(self, r: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        await self.server.raft.read_barrier()  # etcd's linearizableReadNotify
        for _ in range(MAX_AUTHENTICATE_TRIES):
            checked_revision = await self._check_password(r.name, r.password)
            request = rpb.InternalRaftRequest(authenticate=rpb.InternalAuthenticateRequest(
                name=r.name, simple_token="".join(
                    secrets.choice(_LETTERS) for _ in range(auth_requests.SIMPLE_TOKEN_LETTERS))))
            resp = await self._propose(request, pb.AuthenticateResponse)
            await self.server._store_ready()
            _, revision = await self.server._local(lambda s: s.auth_status(), short=True)
            if revision == checked_revision:
                return resp
        raise errors.copy(errors.AUTH_OLD_REVISION)

    async def _check_password(self, name: str, password: str) -> int:
        """etcd's CheckPassword: the auth revision the password was right at."""
        (enabled, revision), user = await self.server._local(
            lambda s: (s.auth_status(), s.auth_user(name)), short=True)
        if not enabled:
            raise errors.copy(errors.AUTH_NOT_ENABLED)
        if user is None:
            raise errors.copy(errors.AUTH_FAILED)
        if user.options.no_password:
            raise errors.copy(errors.NO_PASSWORD_USER)
        if not await asyncio.to_thread(_password_matches, password, user.password):
            raise errors.copy(errors.AUTH_FAILED)
        return revision

    async def auth_enable(self, r: pb.AuthEnableRequest) -> pb.AuthEnableResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_enable=r), pb.AuthEnableResponse)

    async def auth_disable(self, r: pb.AuthDisableRequest) -> pb.AuthDisableResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_disable=r), pb.AuthDisableResponse)

    async def auth_status(self, r: pb.AuthStatusRequest) -> pb.AuthStatusResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_status=r), pb.AuthStatusResponse)

    async def user_add(self, r: pb.AuthUserAddRequest) -> pb.AuthUserAddResponse:
        request = pb.AuthUserAddRequest()
        request.CopyFrom(r)
        if not r.options.no_password:
            request.hashedPassword = await self._hash(r.password)
            request.password = ""
        return await self._propose(rpb.InternalRaftRequest(auth_user_add=request),
                                   pb.AuthUserAddResponse)

    async def user_change_password(self, r: pb.AuthUserChangePasswordRequest
                                   ) -> pb.AuthUserChangePasswordResponse:
        request = pb.AuthUserChangePasswordRequest()
        request.CopyFrom(r)
        if r.password:
            request.hashedPassword = await self._hash(r.password)
            request.password = ""
        return await self._propose(rpb.InternalRaftRequest(auth_user_change_password=request),
                                   pb.AuthUserChangePasswordResponse)

    async def user_get(self, r: pb.AuthUserGetRequest) -> pb.AuthUserGetResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_user_get=r), pb.AuthUserGetResponse)

    async def user_list(self, r: pb.AuthUserListRequest) -> pb.AuthUserListResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_user_list=r),
                                   pb.AuthUserListResponse)

    async def user_delete(self, r: pb.AuthUserDeleteRequest) -> pb.AuthUserDeleteResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_user_delete=r),
                                   pb.AuthUserDeleteResponse)

    async def user_grant_role(self, r: pb.AuthUserGrantRoleRequest
                              ) -> pb.AuthUserGrantRoleResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_user_grant_role=r),
                                   pb.AuthUserGrantRoleResponse)

    async def user_revoke_role(self, r: pb.AuthUserRevokeRoleRequest
                               ) -> pb.AuthUserRevokeRoleResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_user_revoke_role=r),
                                   pb.AuthUserRevokeRoleResponse)

    async def role_add(self, r: pb.AuthRoleAddRequest) -> pb.AuthRoleAddResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_add=r), pb.AuthRoleAddResponse)

    async def role_get(self, r: pb.AuthRoleGetRequest) -> pb.AuthRoleGetResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_get=r), pb.AuthRoleGetResponse)

    async def role_list(self, r: pb.AuthRoleListRequest) -> pb.AuthRoleListResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_list=r),
                                   pb.AuthRoleListResponse)

    async def role_delete(self, r: pb.AuthRoleDeleteRequest) -> pb.AuthRoleDeleteResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_delete=r),
                                   pb.AuthRoleDeleteResponse)

    async def role_grant_permission(self, r: pb.AuthRoleGrantPermissionRequest
                                    ) -> pb.AuthRoleGrantPermissionResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_grant_permission=r),
                                   pb.AuthRoleGrantPermissionResponse)

    async def role_revoke_permission(self, r: pb.AuthRoleRevokePermissionRequest
                                     ) -> pb.AuthRoleRevokePermissionResponse:
        return await self._propose(rpb.InternalRaftRequest(auth_role_revoke_permission=r),
                                   pb.AuthRoleRevokePermissionResponse)

    # -- helpers ------------------------------------------------------------------------

    async def _propose(self, request: rpb.InternalRaftRequest, response: type[Any]) -> Any:
        """Like every etcd auth request, through Raft (reads too: AuthStatus, UserGet...
        are etcd's raftRequest), answered with the apply's response."""
        resp = response.FromString(await self.server._propose_raw(request))
        self.server._fill(resp.header)
        return resp

    async def _hash(self, password: str) -> str:
        try:
            hashed = await asyncio.to_thread(
                bcrypt.hashpw, password.encode(),
                bcrypt.gensalt(rounds=self.bcrypt_cost, prefix=_BCRYPT_PREFIX))
        except ValueError:  # over 72 bytes: Go's bcrypt refuses them too, with this
            raise EtcdError(Code.UNKNOWN, "bcrypt: password length exceeds 72 bytes") from None
        return base64.b64encode(hashed).decode()


def _password_matches(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:  # a password over 72 bytes, or a hash bcrypt cannot read
        return False
