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
  ignored, as etcd's AuthInfoFromCtx ignores them. A gRPC request without a token,
  with --client-cert-auth, is made as its client certificate's common name
  (certnames.py), at the current auth revision, as etcd's AuthInfoFromTLS.
- A token lives --auth-token-ttl seconds since its last use on this member (etcd's
  simpleTokenTTLKeeper, per member too). Unlike etcd's, whose clock starts when each
  member applies the token, this member's starts at its first use here.
- Checks: Range (in the read's own store transaction), Put, DeleteRange, Txn and
  LeaseRevoke (at apply, from the proposal header) need the user's key permissions
  while auth is enabled (storage/mvcc/permissions.py); so do keep-alives (write)
  and LeaseTimeToLive with keys, LeaseLeases (read) of the keys attached to the
  leases, checked here before they are served. Lock and Election act as their caller: their reads
  and writes are checked like the caller's own.
- Maintenance and Cluster calls, and Compact: etcd's AuthAdmin rules (require_admin,
  require_user; server.py says which call needs which).
- Watches: a stream's token is the one its opening carried; each watch it creates
  needs read permission on its range, or is canceled with the reason (watch_permit).
- The member's own proposals (expired leases' revokes, checkpoints) are made as root
  (server.py `_propose_as_member`), as etcd's lessor revokes WithRoot.
- --auth-token jwt,...: Authenticate checks the password the same way, then signs a
  JWT here instead of proposing a simple token (_authenticate_jwt says why; a member
  with a pub-key alone refuses, as etcd); a request's JWT is verified here, on any
  member with the same keys, and names its user at the revision it was signed at
  (jwt_tokens.py). No TokenClock: a JWT's exp is its lifetime.
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
from jwt import InvalidTokenError

from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.config.authtoken import JwtSettings
from petcd.storage.mvcc import auth_requests
from petcd.storage.mvcc.auth import has_root_role
from petcd.storage.mvcc.layout import MAX_SIMPLE_TOKENS

from . import errors, jwt_tokens
from .certnames import CertNames
from .errors import Code, EtcdError

if TYPE_CHECKING:
    from .server import Server

# The token of the request being served (None: none given); rpc.py and gateway.py set it.
current_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "petcd_auth_token", default=None)
# The common name of its verified client certificate, with --client-cert-auth (gRPC
# only: certnames.py); rpc.py sets it.
current_common_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "petcd_auth_common_name", default=None)
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
                 jwt: JwtSettings | None) -> None:
        self.server = server
        self.bcrypt_cost = bcrypt_cost
        self.tokens = TokenClock(token_ttl_s)
        self.cert_names = CertNames()  # the front door's, with --client-cert-auth
        self.jwt = jwt  # None: simple tokens
        if jwt is not None and jwt.unknown_options:
            server.log.warning("unknown JWT options", keys=list(jwt.unknown_options))

    # -- who is asking -----------------------------------------------------------------

    async def identify(self) -> tuple[str, int]:
        """(user name, auth revision) of the current request's token, or else of its
        client certificate's common name; ("", 0) if it has neither or auth is
        disabled. An unknown or expired token is refused."""
        return await self.identify_caller(current_token.get(), current_common_name.get())

    async def identify_caller(self, token: str | None, common_name: str | None
                              ) -> tuple[str, int]:
        """etcd's AuthInfoFromCtx, then AuthInfoFromTLS: a token wins over a name."""
        if token or not common_name:
            return await self.identify_token(token)
        await self.server._store_ready()
        enabled, revision = await self.server._local(lambda s: s.auth_status(), short=True)
        return (common_name, revision) if enabled else ("", 0)

    async def identify_token(self, token: str | None) -> tuple[str, int]:
        if not token:
            return "", 0
        if self.jwt is not None:
            return await self._identify_jwt(token)
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

    async def check_lease_keys(self, lease_ids: list[int], write: bool) -> None:
        """etcd's checkLeaseRenew (write) and checkLeaseTimeToLive, checkLeaseLeases
        (read): with auth enabled, a user who may write or read every key attached to
        the leases (root: any)."""
        asker = await self.identify()
        await self.server._store_ready()
        await self.server._local(lambda s: s.check_lease_keys(asker, lease_ids, write),
                                 short=True)

    async def _enabled(self) -> bool:
        await self.server._store_ready()
        enabled, _ = await self.server._local(lambda s: s.auth_status(), short=True)
        return enabled

    def watch_permit(self, token: str | None, common_name: str | None = None
                     ) -> Callable[[pb.WatchCreateRequest], Awaitable[str | None]]:
        """For a watch stream opened by this caller: the reason to cancel a watch its
        user may not read (etcd's isWatchPermitted), None to create it. Unlike etcd
        3.4, which checks a from-key watch as its first key alone, the whole range."""
        async def permit(r: pb.WatchCreateRequest) -> str | None:
            try:
                asker = await self.identify_caller(token, common_name)
                await self.server._local(
                    lambda s: s.check_read(asker, r.key or b"\x00", r.range_end), short=True)
            except EtcdError as err:
                return err.message
            return None
        return permit

    # -- Auth service -----------------------------------------------------------------

    async def authenticate(self, r: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        await self.server.raft.read_barrier()  # etcd's linearizableReadNotify
        if self.jwt is not None:
            return await self._authenticate_jwt(r)
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

    async def _authenticate_jwt(self, r: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        """Signed here, with the revision the password was right at, with no proposal:
        etcd signs when it applies its Authenticate entry, but a JWT needs no state on
        any member, and a token of a revision that later moves is refused at use."""
        assert self.jwt is not None
        revision = await self._check_password(r.name, r.password)
        try:
            token = jwt_tokens.sign(self.jwt, r.name, revision, time.time())
        except jwt_tokens.VerifyOnly:
            raise errors.copy(errors.VERIFY_ONLY) from None
        resp = pb.AuthenticateResponse(token=token)
        self.server._fill(resp.header)
        return resp

    async def _identify_jwt(self, token: str) -> tuple[str, int]:
        """etcd's tokenJWT.info; like simple tokens, ignored while auth is disabled."""
        assert self.jwt is not None
        if not await self._enabled():
            return "", 0
        try:
            return jwt_tokens.verify(self.jwt, token, time.time())
        except InvalidTokenError as err:
            self.server.log.warning("failed to parse a JWT token", error=str(err))
            raise errors.copy(errors.INVALID_AUTH_TOKEN) from None

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
