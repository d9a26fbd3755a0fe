"""--auth-token: etcd's token kinds, parsed and their keys loaded before a member starts.

The value is etcd's "type,key=value,...": `simple` (tokens of random letters kept in
the store), or `jwt` with `sign-method`, `priv-key`, `pub-key` and `ttl` (etcd's
server/auth/store.go decomposeOpts, options.go, jwt.go). As in etcd:

- an option that is not key=value, an option given twice, or a type other than
  simple and jwt is "auth: invalid auth options"; an unknown jwt option is only
  warned about (kept in `unknown_options` for the network actor to say so);
- sign-method is one of SIGN_METHODS ("auth: invalid auth signature method");
- ttl is a Go duration, 5m when not given;
- HS* sign with the bytes of priv-key as the shared secret; the others need a PEM
  priv-key (PKCS#1, SEC 1 or PKCS#8) or pub-key (PKIX, PKCS#1, or a certificate), of
  the method's kind. With both they must match ("auth: public and private keys don't
  match"); with a pub-key alone the member only verifies ("auth: missing key data"
  when neither is given).

Unlike etcd, which starts and then fails at the first sign, a key of the wrong kind
or curve (an RSA key for ES256, a P-384 key for ES256) or a ttl of 0 stops the start,
and so does an empty type (etcd's "nop" provider, with which no one can authenticate).
PyJWT refuses an HS secret that looks like a key (PEM, SSH, DER), so petcd does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

from .errors import BadValue, quote
from .values import parse_duration_seconds

SIMPLE, JWT = "simple", "jwt"
DEFAULT_JWT_TTL_S = 300.0  # etcd's auth.DefaultTTL
KNOWN_OPTIONS = ("sign-method", "pub-key", "priv-key", "ttl")
_RSA, _EC, _ED25519, _HMAC = "RSA", "EC", "Ed25519", "HMAC"
# etcd's methods (golang-jwt's names, which are PyJWT's too), with the key kind each
# needs and, for ECDSA, the curve golang-jwt insists on when it signs.
SIGN_METHODS: dict[str, tuple[str, type[ec.EllipticCurve] | None]] = {
    **{name: (_RSA, None) for name in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": (_EC, ec.SECP256R1), "ES384": (_EC, ec.SECP384R1), "ES512": (_EC, ec.SECP521R1),
    **{name: (_HMAC, None) for name in ("HS256", "HS384", "HS512")},
    "EdDSA": (_ED25519, None),
}
_PRIVATE_TYPES = {_RSA: rsa.RSAPrivateKey, _EC: ec.EllipticCurvePrivateKey,
                  _ED25519: ed25519.Ed25519PrivateKey}
_PUBLIC_TYPES = {_RSA: rsa.RSAPublicKey, _EC: ec.EllipticCurvePublicKey,
                 _ED25519: ed25519.Ed25519PublicKey}
INVALID_OPTIONS = "auth: invalid auth options"          # etcd's ErrInvalidAuthOpts
INVALID_METHOD = "auth: invalid auth signature method"  # ErrInvalidAuthMethod
MISSING_KEY = "auth: missing key data"                  # ErrMissingKey
KEY_MISMATCH = "auth: public and private keys don't match"  # ErrKeyMismatch


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """What a member signs and verifies JWTs with. The keys stay out of repr (logs)."""

    sign_method: str                             # a key of SIGN_METHODS
    verify_key: Any = field(repr=False)          # a public key object, or the HS secret
    sign_key: Any | None = field(repr=False)     # None: verify-only (a pub-key alone)
    ttl_s: float                                 # > 0: a token's exp is its signing + ttl
    unknown_options: tuple[str, ...] = ()        # etcd warns about them and goes on

    def __post_init__(self) -> None:
        assert self.sign_method in SIGN_METHODS, self.sign_method
        assert self.ttl_s > 0, self.ttl_s
        assert self.verify_key is not None, "a jwt member always verifies"


def parse_auth_token(text: str) -> JwtSettings | None:
    """None for simple tokens, else the jwt settings; BadValue says what is wrong."""
    kind, options = _decompose(text)
    if kind == SIMPLE:
        return None
    if kind != JWT:
        raise BadValue(f"{INVALID_OPTIONS} (the token type must be {SIMPLE} or {JWT})")
    method = options.get("sign-method", "")
    if method not in SIGN_METHODS:
        raise BadValue(f"{INVALID_METHOD} (sign-method {quote(method)} is not one of "
                       f"{', '.join(SIGN_METHODS)})")
    ttl_s = _ttl_s(options.get("ttl", ""))
    private = _read(options, "priv-key")
    public = _read(options, "pub-key")
    verify_key: Any
    sign_key: Any
    if SIGN_METHODS[method][0] == _HMAC:
        verify_key = sign_key = _hmac_secret(private)
    else:
        verify_key, sign_key = _key_pair(method, private, public)
    unknown = tuple(sorted(set(options) - set(KNOWN_OPTIONS)))
    return JwtSettings(method, verify_key, sign_key, ttl_s, unknown)


def _decompose(text: str) -> tuple[str, dict[str, str]]:
    """etcd's decomposeOpts: the type, then key=value options, each key once."""
    kind, *pairs = text.split(",")
    options: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2:
            raise BadValue(f"{INVALID_OPTIONS} ({quote(pair)} is not key=value)")
        if parts[0] in options:
            raise BadValue(f"{INVALID_OPTIONS} ({quote(parts[0])} is given twice)")
        options[parts[0]] = parts[1]
    return kind, options


def _ttl_s(text: str) -> float:
    if not text:
        return DEFAULT_JWT_TTL_S
    try:
        seconds = parse_duration_seconds(text)
    except BadValue as error:
        raise BadValue(f"ttl {quote(text)}: {error}") from None
    if seconds <= 0:
        raise BadValue(f"ttl {quote(text)}: must be a positive duration")
    return seconds


def _read(options: dict[str, str], option: str) -> tuple[str, bytes] | None:
    """(path, content) of a key file option; None when not given."""
    path = options.get(option, "")
    if not path:
        return None
    try:
        return path, Path(path).read_bytes()
    except OSError as error:
        raise BadValue(f"{option} {path}: {error.strerror or error}") from None


def _hmac_secret(private: tuple[str, bytes] | None) -> bytes:
    if private is None or not private[1]:
        raise BadValue(f"{MISSING_KEY} (HS* methods sign with the content of priv-key)")
    try:
        return HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(private[1])
    except InvalidKeyError as error:
        raise BadValue(f"priv-key {private[0]}: {error}") from None


def _key_pair(method: str, private: tuple[str, bytes] | None,
              public: tuple[str, bytes] | None) -> tuple[Any, Any | None]:
    """(verify key, sign key or None) of an asymmetric method, checked as etcd does."""
    if private is None and public is None:
        raise BadValue(f"{MISSING_KEY} ({method} needs priv-key, pub-key or both)")
    sign_key = _private_key(method, *private) if private else None
    if public is None:
        assert sign_key is not None, "one of the two keys was given"
        return sign_key.public_key(), sign_key
    verify_key = _public_key(method, *public)
    if sign_key is not None and not _same_public(sign_key.public_key(), verify_key):
        assert private is not None
        raise BadValue(f"{KEY_MISMATCH} (priv-key {private[0]}, pub-key {public[0]})")
    return verify_key, sign_key


def _private_key(method: str, path: str, pem: bytes) -> Any:
    kind, curve = SIGN_METHODS[method]
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):  # not PEM, encrypted, or not a key cryptography knows
        key = None
    if not isinstance(key, _PRIVATE_TYPES[kind]):
        raise BadValue(f"priv-key {path} is not an unencrypted PEM {kind} private key "
                       f"(as {method} needs)")
    _check_curve(method, path, key, curve)
    return key


def _public_key(method: str, path: str, pem: bytes) -> Any:
    kind, curve = SIGN_METHODS[method]
    try:
        key = (x509.load_pem_x509_certificate(pem).public_key() if b"CERTIFICATE-----" in pem
               else serialization.load_pem_public_key(pem))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, _PUBLIC_TYPES[kind]):
        raise BadValue(f"pub-key {path} is not a PEM {kind} public key or certificate "
                       f"(as {method} needs)")
    _check_curve(method, path, key, curve)
    return key


def _check_curve(method: str, path: str, key: Any,
                 curve: type[ec.EllipticCurve] | None) -> None:
    if curve is not None and not isinstance(key.curve, curve):
        raise BadValue(f"{path}: {method} needs a {curve.name} key, not {key.curve.name}")


def _same_public(one: Any, other: Any) -> bool:
    encoding, fmt = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(one.public_bytes(encoding, fmt) == other.public_bytes(encoding, fmt))
