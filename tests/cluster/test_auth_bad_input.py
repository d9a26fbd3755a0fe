"""Bad input to auth: garbage and stale tokens, oversized passwords, empty names and
malformed JSON through the gateway. Each is refused with etcd's answer, grants no
access, and the member serves the next good request. (TLS bad input: test_client_tls.py.)"""

from __future__ import annotations

import http.client
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb

from .auth_calls import (AUTH_FAILED, INVALID_TOKEN, ROOT_PASSWORD, USER_EMPTY, Api, add_role,
                         add_user, authenticate, channel_to, enable_auth, refusal)
from .members import HttpError, Member, b64, running

MIB = 1 << 20
BCRYPT_TOO_LONG = "bcrypt: password length exceeds 72 bytes"  # Go's ErrPasswordTooLong
HTTP_TIMEOUT_S = 10.0
KEY = b"a/key"
SEED = random.Random(20240601)  # the garbage is the same on every run


@dataclass
class Setup:
    member: Member
    channel: grpc.Channel

    def api(self, token: str | None) -> Api:
        return Api(self.channel, token)

    @property
    def root(self) -> Api:
        return self.api(authenticate(self.channel, "root", ROOT_PASSWORD))

    def log_in(self, name: str, password: str) -> Api:
        return self.api(authenticate(self.channel, name, password))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    with running(tmp_path_factory.mktemp("authbad"), 1, ["--bcrypt-cost", "4"]) as cluster:
        cluster.wait_leader()
        with channel_to(cluster.members[0]) as channel:
            anyone = Api(channel, None)
            anyone.kv.Put(pb.PutRequest(key=KEY, value=b"original"), **anyone.opts)
            add_role(anyone, "a-owner", b"a/", auth_pb2.Permission.READWRITE)
            add_user(anyone, "alice", "alicepw", "a-owner")
            enable_auth(anyone)
            yield Setup(cluster.members[0], channel)


def assert_serves(setup: Setup) -> None:
    """The member is up and a good request works; KEY is as it was."""
    assert setup.member.alive
    alice = setup.log_in("alice", "alicepw")
    assert alice.get(KEY) == b"original"
    assert alice.kv.Put(pb.PutRequest(key=b"a/other", value=b"v"), **alice.opts).header.revision


def assert_no_access(setup: Setup, token: str) -> None:
    """A bad token reads nothing and writes nothing."""
    bad = setup.api(token)
    assert refusal(lambda: bad.get(KEY)) == INVALID_TOKEN
    assert refusal(lambda: bad.kv.Put(pb.PutRequest(key=KEY, value=b"bad"), **bad.opts)) == \
        INVALID_TOKEN
    assert_serves(setup)


def random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(SEED.choice(alphabet) for _ in range(length))


GRPC_TOKENS = {
    "simple-token-shaped": random_text(16) + ".12345",
    "random-hex": bytes(SEED.randrange(256) for _ in range(64)).hex(),
    "printable-ascii": random_text(200, string.ascii_letters + string.punctuation + " "),
    "huge-index": random_text(16) + "." + "9" * 40,
    "empty-letters": ".1",
    "one-mib": "t" * MIB,
}


@pytest.mark.parametrize("token", GRPC_TOKENS.values(), ids=GRPC_TOKENS.keys())
def test_garbage_token_over_grpc(setup: Setup, token: str) -> None:
    assert_no_access(setup, token)


def _header_bytes(alphabet: list[int], length: int) -> bytes:
    return bytes(SEED.choice(alphabet) for _ in range(length)).strip()


# Bytes an HTTP header value may hold (visible ASCII, space, tab, obs-text 0x80-0xff),
# so the gateway reads the token and refuses it as etcd's does.
HEADER_SAFE = [b for b in range(256) if b == 9 or 32 <= b < 127 or b >= 128]
GATEWAY_TOKENS = {
    "random-header-bytes": _header_bytes(HEADER_SAFE, 256),
    "non-ascii-utf8": "tökén-ünïcödé.42".encode(),
}
# Headers an HTTP server refuses before any handler (Go's net/http as aiohttp: control
# characters; a header past the server's limit, Go's 1 MiB and aiohttp's 8 KiB).
CONTROL = [b for b in range(1, 32) if b not in (9, 10, 13)] + [127]
UNREADABLE_TOKENS = {
    "control-bytes": _header_bytes(CONTROL + HEADER_SAFE[:8], 64),
    "one-mib": b"t" * MIB,
}


def gateway_range(member: Member, token: bytes) -> tuple[int, bytes]:
    """A gateway Range with `token` as the raw Authorization header; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", member.client_port,
                                            timeout=HTTP_TIMEOUT_S)
    try:
        connection.putrequest("POST", "/v3/kv/range")
        connection.putheader("Authorization", token)
        body = json.dumps({"key": b64(KEY)}).encode()
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("token", GATEWAY_TOKENS.values(), ids=GATEWAY_TOKENS.keys())
def test_garbage_token_through_the_gateway(setup: Setup, token: bytes) -> None:
    status, body = gateway_range(setup.member, token)
    answer = json.loads(body)
    assert (status, answer.get("message")) == (401, INVALID_TOKEN), answer
    assert "kvs" not in answer
    assert_serves(setup)


@pytest.mark.parametrize("token", UNREADABLE_TOKENS.values(), ids=UNREADABLE_TOKENS.keys())
def test_unreadable_authorization_header(setup: Setup, token: bytes) -> None:
    """Refused by the HTTP server itself (400 for aiohttp; Go says 400 or 431)."""
    status, body = gateway_range(setup.member, token)
    assert status in (400, 431) and b"original" not in body and b64(b"original").encode() \
        not in body, (status, body[:200])
    assert_serves(setup)


def test_token_of_a_deleted_user(setup: Setup) -> None:
    root = setup.root
    add_user(root, "doomed", "doomedpw", "a-owner")
    doomed = setup.log_in("doomed", "doomedpw")
    assert doomed.get(KEY) == b"original"
    root.auth.UserDelete(pb.AuthUserDeleteRequest(name="doomed"), **root.opts)
    assert_no_access(setup, str(doomed.token))


def test_token_from_before_an_auth_disable_and_enable(setup: Setup) -> None:
    alice = setup.log_in("alice", "alicepw")
    root = setup.root
    root.auth.AuthDisable(pb.AuthDisableRequest(), **root.opts)
    anyone = setup.api(None)
    anyone.auth.AuthEnable(pb.AuthEnableRequest(), **anyone.opts)
    assert_no_access(setup, str(alice.token))


@pytest.mark.parametrize("length", [73, MIB], ids=["73-bytes", "one-mib"])
def test_user_add_with_an_oversized_password(setup: Setup, length: int) -> None:
    root = setup.root
    request = pb.AuthUserAddRequest(name=f"long{length}", password="p" * length)
    assert refusal(lambda: root.auth.UserAdd(request, **root.opts)) == BCRYPT_TOO_LONG
    users = root.auth.UserList(pb.AuthUserListRequest(), **root.opts).users
    assert request.name not in users
    assert_serves(setup)


def test_a_72_byte_password_is_the_longest_accepted(setup: Setup) -> None:
    root = setup.root
    add_user(root, "long72", "p" * 72, "a-owner")
    assert setup.log_in("long72", "p" * 72).get(KEY) == b"original"
    root.auth.UserDelete(pb.AuthUserDeleteRequest(name="long72"), **root.opts)


def test_change_to_an_oversized_password_keeps_the_old_one(setup: Setup) -> None:
    root = setup.root
    change = pb.AuthUserChangePasswordRequest(name="alice", password="p" * MIB)
    assert refusal(lambda: root.auth.UserChangePassword(change, **root.opts)) == BCRYPT_TOO_LONG
    assert_serves(setup)  # alice logs in with her old password


@pytest.mark.parametrize(("name", "password"), [
    ("alice", "p" * MIB), ("", "alicepw"), ("", ""), ("a" * MIB, "pw"),
], ids=["one-mib-password", "empty-name", "empty-name-and-password", "one-mib-name"])
def test_authenticate_with_bad_credentials(setup: Setup, name: str, password: str) -> None:
    request = pb.AuthenticateRequest(name=name, password=password)
    anyone = setup.api(None)
    assert refusal(lambda: anyone.auth.Authenticate(request, **anyone.opts)) == AUTH_FAILED
    assert_serves(setup)


def test_user_add_with_an_empty_name(setup: Setup) -> None:
    root = setup.root
    request = pb.AuthUserAddRequest(name="", password="pw")
    assert refusal(lambda: root.auth.UserAdd(request, **root.opts)) == USER_EMPTY
    assert_serves(setup)


MALFORMED = {
    "not-json": b"name=root&password=rootpw",
    "truncated": b'{"name": "root", "password": ',
    "array": b'["root", "rootpw"]',
    "name-a-number": b'{"name": 5, "password": "rootpw"}',
    "password-a-list": b'{"name": "root", "password": ["rootpw"]}',
    "name-an-object": b'{"name": {"first": "root"}, "password": "rootpw"}',
    "invalid-utf8": b'{"name": "\xff\xfe", "password": "rootpw"}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_authenticate_through_the_gateway(setup: Setup, body: bytes) -> None:
    """grpc-gateway's answer to a body it cannot decode: 400 and an InvalidArgument
    error in JSON, and no token."""
    with pytest.raises(HttpError) as err:
        setup.member.call("/v3/auth/authenticate", body)
    assert err.value.status == 400
    assert err.value.body.get("code") == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.value.body.get("message") and "token" not in err.value.body
    assert_serves(setup)
