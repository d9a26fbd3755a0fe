"""etcd's JWT auth tokens on a real 3-member cluster started with --auth-token jwt,...:
m1 signs with the default 5 minutes, m2 with ttl=1s, m3 has the public key alone
(verify-only). A token any of them signs works on all three; etcd's refusals for a
verify-only member, a tampered token, an expired one and one older than an auth
change; the real etcdctl logs in with it; a bad --auth-token stops petcd at start."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.client import Client

from tests.compat.etcdctl import ETCDCTL, Ctl

from tests.cluster.members import PETCD, Cluster, Member, wait_until

CALL_TIMEOUT_S = 10.0
EXPIRY_WAIT_S = 10.0  # a ttl=1s token, on a loaded machine
INVALID_TOKEN = "etcdserver: invalid auth token"
OLD_REVISION = "etcdserver: revision of auth store is old"
VERIFY_ONLY = "auth: token signing attempted with verify-only key"


def _key_files(directory: Path) -> tuple[Path, Path]:
    """An ES256 key pair, made now (nothing secret is committed)."""
    return write_key_pair(ec.generate_private_key(ec.SECP256R1()), directory)


def write_key_pair(key, directory: Path) -> tuple[Path, Path]:
    """`key` and its public key as PEM files jwt.key and jwt.pub in `directory`."""
    private, public = directory / "jwt.key", directory / "jwt.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-jwt")
    private, public = _key_files(root)
    per_member = [f"jwt,sign-method=ES256,priv-key={private},pub-key={public}",
                  f"jwt,sign-method=ES256,priv-key={private},ttl=1s",
                  f"jwt,sign-method=ES256,pub-key={public}"]
    c = Cluster(root, 3, ["--bcrypt-cost", "4"])
    for member, option in zip(c.members, per_member, strict=True):
        member.extra_args += ["--auth-token", option]
    c.start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.stop()


def _call(member: Member, method: str, request, token: str | None = None):
    """One gRPC call with `token` as clientv3 sends it; (response, None) or (None,
    (code, message))."""
    stub = rpc.AuthStub if method == "Authenticate" else rpc.KVStub
    with grpc.insecure_channel(f"127.0.0.1:{member.client_port}") as channel:
        try:
            return getattr(stub(channel), method)(
                request, metadata=(("token", token),) if token else (),
                timeout=CALL_TIMEOUT_S), None
        except grpc.RpcError as err:
            return None, (err.code(), err.details())


def _token(member: Member, user: str, password: str) -> str:
    answer, error = _call(member, "Authenticate", pb.AuthenticateRequest(name=user, password=password))
    assert error is None, error
    return answer.token


def _claims(token: str) -> dict:
    header, payload, signature = token.split(".")
    assert signature
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _refusal(member: Member, method: str, request, token: str | None = None) -> str:
    answer, error = _call(member, method, request, token)
    assert answer is None, answer
    return error[1]


def _put(key: str, value: str) -> pb.PutRequest:
    return pb.PutRequest(key=key.encode(), value=value.encode())


def _range(key: str) -> pb.RangeRequest:
    return pb.RangeRequest(key=key.encode())


def test_jwt_tokens_across_members_and_etcds_refusals(cluster: Cluster) -> None:
    signer, short_lived, verify_only = cluster.members
    with Client([f"127.0.0.1:{signer.client_port}"], command_timeout_s=CALL_TIMEOUT_S) as c:
        c.user_add("root", "rootpw")
        c.role_add("root")
        c.user_grant_role("root", "root")
        c.role_add("reader")
        c.role_grant_permission("reader", "k", "\0", "READ")
        c.user_add("alice", "alicepw")
        c.user_grant_role("alice", "reader")
        c.auth_enable()

    token = _token(signer, "root", "rootpw")
    claims = _claims(token)
    assert set(claims) == {"exp", "revision", "username"}
    assert claims["username"] == "root" and claims["revision"] > 1
    assert 0 < claims["exp"] - time.time() <= 300
    # No state behind a token: each member verifies it with the same keys.
    for member in cluster.members:
        answer, error = _call(member, "Put", _put("k1", member.name), token)
        assert error is None, (member.name, error)
        answer, error = _call(member, "Range", _range("k1"), token)
        assert answer.kvs[0].value == member.name.encode()
    status, body = _gateway(verify_only, "/v3/kv/range", {"key": _b64("k1")}, token)
    assert (status, body["kvs"][0]["value"]) == (200, _b64("m3"))

    # A pub-key alone verifies but cannot sign (after the password check, as in etcd).
    assert _refusal(verify_only, "Authenticate", pb.AuthenticateRequest(
        name="root", password="rootpw")) == VERIFY_ONLY
    assert _refusal(verify_only, "Authenticate", pb.AuthenticateRequest(
        name="root", password="wrong")) == (
            "etcdserver: authentication failed, invalid user ID or password")

    # alice's token with her name changed to root's: the signature no longer holds.
    alice = _token(signer, "alice", "alicepw")
    header, _, signature = alice.split(".")
    forged_claims = {**_claims(alice), "username": "root"}
    forged = ".".join([header, _b64url(json.dumps(forged_claims)), signature])
    assert _refusal(short_lived, "Put", _put("k2", "v"), forged) == INVALID_TOKEN
    assert _refusal(short_lived, "Put", _put("k2", "v"), "forged.1") == INVALID_TOKEN
    assert _refusal(short_lived, "Put", _put("k2", "v"), alice) == "etcdserver: permission denied"

    # m2's tokens live 1 s: then every member refuses them.
    brief = _token(short_lived, "root", "rootpw")
    assert _claims(brief)["exp"] - time.time() <= 1
    assert wait_until(lambda: _call(signer, "Range", _range("k1"), brief)[1] is not None,
                      EXPIRY_WAIT_S)
    for member in cluster.members:
        assert _refusal(member, "Range", _range("k1"), brief) == INVALID_TOKEN

    # An auth change moves the revision: tokens signed before it are old everywhere.
    answer, error = _call(verify_only, "Range", _range("k1"), alice)
    assert error is None and answer.count == 1
    with Client([f"127.0.0.1:{signer.client_port}"], command_timeout_s=CALL_TIMEOUT_S,
                user="root", password="rootpw") as root:
        root.role_grant_permission("reader", "a", "b", "READ")
    for member in cluster.members:
        assert _refusal(member, "Range", _range("k1"), alice) == OLD_REVISION
    answer, error = _call(verify_only, "Range", _range("a"), _token(signer, "alice", "alicepw"))
    assert error is None and answer.count == 0


def test_the_real_etcdctl_logs_in_with_a_jwt(cluster: Cluster) -> None:
    signer, _, verify_only = cluster.members
    ctl = Ctl(ETCDCTL)
    assert wait_until(lambda: ctl(signer, "--user", "root:rootpw", "put", "ctl", "v").code == 0,
                      CALL_TIMEOUT_S)
    got = ctl(signer, "--user", "root:rootpw", "get", "ctl", "--print-value-only")
    assert (got.code, got.out) == (0, "v\n")
    refused = ctl(verify_only, "--user", "root:rootpw", "get", "ctl")
    assert refused.code != 0 and VERIFY_ONLY in refused.err


@pytest.mark.parametrize("option,reason", [
    ("jwt,sign-method=ES256", "auth: missing key data"),
    ("jwt,sign-method=XS256,priv-key=/nonexistent", "auth: invalid auth signature method"),
    ("jwt,sign-method=ES256,priv-key=/nonexistent/jwt.key", "No such file or directory"),
])
def test_a_bad_auth_token_option_stops_petcd_at_start(tmp_path, option, reason) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCD_")}
    result = subprocess.run([PETCD, "--data-dir", str(tmp_path / "d"), "--auth-token", option],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f'petcd: error: invalid value "{option}" for flag --auth-token: '), result.stderr
    assert reason in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _gateway(member: Member, path: str, body: dict, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{member.client_url}{path}", json.dumps(body).encode(),
                                     {"Authorization": token})
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
