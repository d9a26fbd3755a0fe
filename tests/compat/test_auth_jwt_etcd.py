"""JWT auth tokens against the real etcd: an etcd and a petcd given the same
--auth-token jwt keys, set up alike by etcdctl, sign the same header and claims,
and each accepts the other's tokens (nothing but the keys is behind a JWT)."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc

from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.cluster.members import running
from tests.cluster.test_auth_jwt import write_key_pair

from .etcdctl import COMMAND_TIMEOUT_S, ETCDCTL

CALL_TIMEOUT_S = 10.0


def _jwt_option(directory) -> str:
    private, public = write_key_pair(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), directory)
    return f"jwt,pub-key={public},priv-key={private},sign-method=RS256"


def _enable_root(endpoint: str) -> None:
    for command in (["user", "add", "root:rootpw"], ["role", "add", "root"],
                    ["user", "grant-role", "root", "root"], ["auth", "enable"]):
        done = subprocess.run([ETCDCTL, f"--endpoints={endpoint}", *command],
                              capture_output=True, timeout=COMMAND_TIMEOUT_S,
                              env={**os.environ, "ETCDCTL_API": "3"}, check=False)
        assert done.returncode == 0, done.stderr


def _token(endpoint: str) -> str:
    with grpc.insecure_channel(endpoint) as channel:
        return rpc.AuthStub(channel).Authenticate(
            pb.AuthenticateRequest(name="root", password="rootpw"), timeout=CALL_TIMEOUT_S).token


def _put(endpoint: str, token: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        rpc.KVStub(channel).Put(pb.PutRequest(key=b"k", value=b"v"),
                                metadata=(("token", token),), timeout=CALL_TIMEOUT_S)


def _decoded(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.mark.skipif(not etcd_available(), reason="needs Debian's etcd and etcd-client")
def test_etcd_and_petcd_accept_each_others_jwts(tmp_path) -> None:
    option = _jwt_option(tmp_path)
    for side in ("etcd", "petcd"):
        (tmp_path / side).mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", members=1, extra_args=["--auth-token", option])
    etcd.start()
    try:
        with running(tmp_path / "petcd", 1, ["--auth-token", option]) as petcd:
            petcd.wait_leader()
            endpoints = (etcd.endpoints[0], f"127.0.0.1:{petcd.members[0].client_port}")
            for endpoint in endpoints:
                _enable_root(endpoint)
            tokens = [_token(endpoint) for endpoint in endpoints]
            etcd_parts, petcd_parts = (token.split(".") for token in tokens)
            assert _decoded(etcd_parts[0]) == _decoded(petcd_parts[0]) == {
                "alg": "RS256", "typ": "JWT"}
            etcd_claims, petcd_claims = _decoded(etcd_parts[1]), _decoded(petcd_parts[1])
            assert list(etcd_claims) == list(petcd_claims) == ["exp", "revision", "username"]
            assert etcd_claims["revision"] == petcd_claims["revision"]  # set up alike
            for endpoint in endpoints:
                for token in tokens:
                    _put(endpoint, token)
    finally:
        etcd.stop()
