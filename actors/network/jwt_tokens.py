"""etcd's JWT auth tokens (--auth-token jwt,...; server/auth/jwt.go): sign and verify.

A token is a JWT signed with the member's key (config/authtoken.py loads it) whose
claims are etcd's:

    {"exp": <signing time + ttl, Unix seconds>, "revision": <auth revision>, "username": "..."}

(in the order Go's encoding/json writes a map: sorted keys). Verifying is etcd's
tokenJWT.info: the header's alg is the configured method, the signature holds under
the public key (or the HS secret), an `exp` present has not passed (etcd's parser
checks it when present and so does this), and `username` is a string and `revision`
a number. The token says nothing else: the user's rights are looked up in the store at
the claimed revision, and a token signed before an auth change fails there with "revision
of auth store is old" (storage/mvcc/permissions.py). Nothing is stored per token, so
every member configured with the same keys accepts every other's tokens, and
--auth-token-ttl (simple tokens' idle TTL) does not apply.

The clock is the caller's (`now_s`, Unix seconds), so that expiry is testable without
waiting; PyJWT's own exp check, which reads the system clock, is off.
"""

from __future__ import annotations

import jwt

from petcd.config.authtoken import JwtSettings

CLAIMS = ("username", "revision")  # etcd's; exp is checked below when present


class VerifyOnly(Exception):
    """A member given only a pub-key cannot sign (etcd's ErrVerifyOnly)."""


def sign(settings: JwtSettings, username: str, revision: int, now_s: float) -> str:
    if settings.sign_key is None:
        raise VerifyOnly
    assert revision > 0, "a token is signed only while auth is enabled (revision >= 1)"
    claims = {"exp": int(now_s + settings.ttl_s), "revision": revision, "username": username}
    return jwt.encode(claims, settings.sign_key, algorithm=settings.sign_method)


def verify(settings: JwtSettings, token: str, now_s: float) -> tuple[str, int]:
    """(username, revision) the token was signed for; jwt.InvalidTokenError saying why
    if it is not one of this member's keys' live tokens."""
    claims = jwt.decode(token, settings.verify_key, algorithms=[settings.sign_method],
                        options={"verify_exp": False, "require": list(CLAIMS)})
    username, revision, exp = claims["username"], claims["revision"], claims.get("exp")
    if not isinstance(username, str):
        raise jwt.InvalidTokenError("the username claim is not a string")
    if not _is_number(revision) or revision < 0:
        raise jwt.InvalidTokenError("the revision claim is not a revision")
    if exp is not None and not _is_number(exp):
        raise jwt.InvalidTokenError("the exp claim is not a number")
    if exp is not None and now_s >= exp:
        raise jwt.ExpiredSignatureError("token has expired")
    return username, int(revision)


def _is_number(value: object) -> bool:
    """A JSON number, as Go's float64 claims are (JSON true is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
