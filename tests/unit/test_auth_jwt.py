"""etcd's JWT auth tokens (--auth-token jwt,...): the option string as etcd parses it,
keys loaded and checked before a member starts, and tokens signed and verified as
etcd's tokenJWT (server/auth/jwt.go, options.go, jwt_test.go). Keys are made here,
at run time: nothing secret is committed."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from petcd.actors.network import jwt_tokens
from petcd.config import ConfigError, load
from petcd.config.authtoken import DEFAULT_JWT_TTL_S, JwtSettings, parse_auth_token

NOW_S = 1_700_000_000.0
PRIVATE_PEM = dict(encoding=serialization.Encoding.PEM,
                   format=serialization.PrivateFormat.PKCS8,
                   encryption_algorithm=serialization.NoEncryption())
PUBLIC_PEM = dict(encoding=serialization.Encoding.PEM,
                  format=serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_pair(directory: Path, name: str, key) -> tuple[Path, Path]:
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    private.write_bytes(key.private_bytes(**PRIVATE_PEM))
    public.write_bytes(key.public_key().public_bytes(**PUBLIC_PEM))
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(priv-key, pub-key) files per key kind; "hmac" is a secret and no pub-key."""
    directory = tmp_path_factory.mktemp("jwt-keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    made = {
        "rsa": _write_pair(directory, "rsa", rsa_key),
        "p256": _write_pair(directory, "p256", ec.generate_private_key(ec.SECP256R1())),
        "p384": _write_pair(directory, "p384", ec.generate_private_key(ec.SECP384R1())),
        "p521": _write_pair(directory, "p521", ec.generate_private_key(ec.SECP521R1())),
        "ed25519": _write_pair(directory, "ed25519", ed25519.Ed25519PrivateKey.generate()),
        "rsa2": _write_pair(directory, "rsa2", rsa.generate_private_key(65537, 2048)),
    }
    # The PKCS#1 form openssl genrsa writes, and a certificate as the pub-key (etcd's
    # own tests verify with server.crt).
    pkcs1 = directory / "rsa-pkcs1.key"
    pkcs1.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.NoEncryption()))
    certificate = directory / "rsa.crt"
    certificate.write_bytes(_self_signed(rsa_key).public_bytes(serialization.Encoding.PEM))
    made["rsa-pkcs1-cert"] = (pkcs1, certificate)
    secret = directory / "secret"
    secret.write_bytes(b"a shared secret of at least 64 bytes, as HS512 wants for its SHA-512.")
    made["hmac"] = (secret, directory / "missing")
    return made


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "petcd test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


def _settings(method: str, private: Path | None = None, public: Path | None = None,
              *extra: str) -> JwtSettings:
    options = [f"sign-method={method}", *extra]
    if private:
        options.append(f"priv-key={private}")
    if public:
        options.append(f"pub-key={public}")
    settings = parse_auth_token(",".join(["jwt", *options]))
    assert settings is not None
    return settings


def _payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


METHODS = [("RS256", "rsa"), ("RS384", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"),
           ("PS384", "rsa"), ("PS512", "rsa"), ("ES256", "p256"), ("ES384", "p384"),
           ("ES512", "p521"), ("EdDSA", "ed25519"), ("HS256", "hmac"), ("HS384", "hmac"),
           ("HS512", "hmac")]


# --- Signing and verifying ---------------------------------------------------------------

@pytest.mark.parametrize("method,kind", METHODS)
def test_every_etcd_sign_method_signs_etcds_claims_and_verifies(keys, method, kind):
    settings = _settings(method, keys[kind][0])
    token = jwt_tokens.sign(settings, "alice", 7, NOW_S)
    header, payload, signature = token.split(".")
    assert signature and json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "alg": method, "typ": "JWT"}
    # Go's encoding/json writes map keys sorted; exp is whole seconds, etcd's Unix().
    assert _payload(token) == {"exp": int(NOW_S + DEFAULT_JWT_TTL_S), "revision": 7,
                               "username": "alice"}
    assert list(_payload(token)) == ["exp", "revision", "username"]
    assert jwt_tokens.verify(settings, token, NOW_S) == ("alice", 7)


@pytest.mark.parametrize("method,kind", [m for m in METHODS if m[1] != "hmac"])
def test_a_pub_key_alone_verifies_but_never_signs(keys, method, kind):
    private, public = keys[kind]
    token = jwt_tokens.sign(_settings(method, private, public), "bob", 3, NOW_S)
    verify_only = _settings(method, public=public)
    assert verify_only.sign_key is None
    assert jwt_tokens.verify(verify_only, token, NOW_S) == ("bob", 3)
    with pytest.raises(jwt_tokens.VerifyOnly):
        jwt_tokens.sign(verify_only, "bob", 3, NOW_S)


def test_pkcs1_keys_and_a_certificate_as_pub_key_are_read_as_etcd_reads_them(keys):
    private, certificate = keys["rsa-pkcs1-cert"]
    settings = _settings("RS256", private, certificate)
    token = jwt_tokens.sign(settings, "root", 2, NOW_S)
    assert jwt_tokens.verify(_settings("RS256", public=certificate), token, NOW_S) == ("root", 2)


def test_a_token_lives_ttl_seconds_from_its_signing(keys):
    settings = _settings("ES256", keys["p256"][0], None, "ttl=1m30s")
    assert settings.ttl_s == 90.0
    token = jwt_tokens.sign(settings, "alice", 1, NOW_S)
    assert jwt_tokens.verify(settings, token, NOW_S + 89) == ("alice", 1)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt_tokens.verify(settings, token, NOW_S + 90)


def test_tampered_or_foreign_tokens_are_refused(keys):
    settings = _settings("RS256", *keys["rsa"])
    header, payload, signature = jwt_tokens.sign(settings, "alice", 5, NOW_S).split(".")
    as_root = base64.urlsafe_b64encode(json.dumps(
        {"exp": int(NOW_S) + 300, "revision": 5, "username": "root"}).encode()).rstrip(b"=")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt_tokens.verify(settings, f"{header}.{as_root.decode()}.{signature}", NOW_S)
    # Another key, another method of the same key, or no signature at all.
    other = _settings("RS256", keys["rsa2"][0])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt_tokens.verify(settings, jwt_tokens.sign(other, "alice", 5, NOW_S), NOW_S)
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt_tokens.verify(settings, jwt_tokens.sign(_settings("PS256", keys["rsa"][0]),
                                                    "alice", 5, NOW_S), NOW_S)
    unsigned = jwt.encode({"revision": 5, "username": "root"}, None, algorithm="none")
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt_tokens.verify(settings, unsigned, NOW_S)
    with pytest.raises(jwt.DecodeError):
        jwt_tokens.verify(settings, "forged.1", NOW_S)


@pytest.mark.parametrize("claims", [
    {"exp": NOW_S + 60, "username": "alice"},                       # no revision
    {"exp": NOW_S + 60, "revision": 5},                             # no username
    {"exp": NOW_S + 60, "revision": "5", "username": "alice"},      # Go wants a number
    {"exp": NOW_S + 60, "revision": True, "username": "alice"},
    {"exp": NOW_S + 60, "revision": 5, "username": 7},
    {"exp": NOW_S + 60, "revision": -1, "username": "alice"},
    {"exp": "later", "revision": 5, "username": "alice"},
])
def test_a_well_signed_token_needs_etcds_claims(keys, claims):
    settings = _settings("HS256", keys["hmac"][0])
    token = jwt.encode(claims, settings.sign_key, algorithm="HS256")
    with pytest.raises(jwt.InvalidTokenError):
        jwt_tokens.verify(settings, token, NOW_S)


def test_without_exp_a_well_signed_token_is_valid_as_in_etcd(keys):
    settings = _settings("HS256", keys["hmac"][0])
    token = jwt.encode({"revision": 4.0, "username": "alice"}, settings.sign_key,
                       algorithm="HS256")
    assert jwt_tokens.verify(settings, token, NOW_S) == ("alice", 4)


# --- The option string -------------------------------------------------------------------

def test_simple_is_the_default_and_takes_etcds_options():
    assert load([], {}).auth_token is None
    assert load(["--auth-token", "simple"], {}).auth_token is None
    assert load(["--auth-token", "simple,anything=ignored"], {}).auth_token is None


def test_jwt_options_reach_the_settings_with_etcds_defaults(keys):
    settings = load(["--auth-token", f"jwt,priv-key={keys['rsa'][0]},sign-method=RS256,"
                     f"pub-key={keys['rsa'][1]},future=1"], {}).auth_token
    assert isinstance(settings, JwtSettings)
    assert (settings.sign_method, settings.ttl_s, settings.unknown_options) == (
        "RS256", DEFAULT_JWT_TTL_S, ("future",))
    assert "PRIVATE" not in repr(settings) and "sign_key" not in repr(settings)


def _refusal(value: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(["--auth-token", value], {})
    message = str(info.value)
    assert message.startswith(f'invalid value "{value}" for flag --auth-token: '), message
    return message.split("--auth-token: ", 1)[1]


def test_bad_options_are_refused_in_etcds_words(keys, tmp_path):
    rsa_key, rsa_pub = keys["rsa"]
    p256_key, p256_pub = keys["p256"]
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    refused = {
        "jwt,sign-method": "auth: invalid auth options",
        "jwt,ttl=1m,ttl=2m": "auth: invalid auth options",
        "ldap": "auth: invalid auth options",
        "": "auth: invalid auth options",
        f"jwt,priv-key={rsa_key}": "auth: invalid auth signature method",
        "jwt,sign-method=RS255": "auth: invalid auth signature method",
        "jwt,sign-method=RS256": "auth: missing key data",
        f"jwt,sign-method=HS256,pub-key={rsa_pub}": "auth: missing key data",
        f"jwt,sign-method=RS256,priv-key={rsa_key},pub-key={keys['rsa2'][1]}":
            "auth: public and private keys don't match",
        f"jwt,sign-method=RS256,priv-key={tmp_path / 'absent.key'}":
            f"priv-key {tmp_path / 'absent.key'}: No such file or directory",
        f"jwt,sign-method=ES256,priv-key={rsa_key}": f"priv-key {rsa_key} is not",
        f"jwt,sign-method=RS256,priv-key={encrypted}": f"priv-key {encrypted} is not",
        f"jwt,sign-method=ES256,pub-key={rsa_key}": f"pub-key {rsa_key} is not",
        f"jwt,sign-method=ES384,priv-key={p256_key}": "ES384 needs a secp384r1 key",
        f"jwt,sign-method=HS256,priv-key={p256_pub}": "should not be used as an HMAC secret",
        f"jwt,sign-method=RS256,priv-key={rsa_key},ttl=5": 'ttl "5": must be a duration',
        f"jwt,sign-method=RS256,priv-key={rsa_key},ttl=0s": 'ttl "0s": must be a positive',
    }
    for value, reason in refused.items():
        assert reason in _refusal(value), (value, _refusal(value))
