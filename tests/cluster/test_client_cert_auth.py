"""--client-cert-auth with auth enabled: a gRPC caller without a token is the user its
client certificate's common name says (etcd's AuthInfoFromTLS), a token wins over
the name, and the JSON gateway never takes a name from a certificate (etcd's does
not either). The real etcdctl and petcdctl make the calls; trustme makes the
certificates at run time."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.compat.etcdctl import ETCDCTL, PETCDCTL
from tests.cluster.members import Member, running, wait_until

TOOL_TIMEOUT_S = 30.0
DENIED = "etcdserver: permission denied"


def _issue(ca: trustme.CA, directory: Path, name: str, common_name: str | None,
           *hosts: str) -> list[str]:
    """etcdctl's --cert/--key flags for a new certificate (plus --cacert)."""
    cert = ca.issue_cert(*hosts, common_name=common_name)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return [f"--cacert={directory / 'ca.pem'}", f"--cert={cert_path}", f"--key={key_path}"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, list[str]]:
    directory = tmp_path_factory.mktemp("cn-certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    return {name: _issue(ca, directory, name, common_name, *hosts) for name, common_name, hosts in (
        ("server", "member", ("127.0.0.1",)), ("root", "root", ("root.example",)),
        ("alice", "alice", ("alice.example",)), ("ghost", "ghost", ("ghost.example",)),
        ("nameless", None, ("nameless.example",)))}


@pytest.fixture(scope="module")
def member(tmp_path_factory, certs):
    server = {flag.split("=")[0]: flag.split("=", 1)[1] for flag in certs["server"]}
    flags = ["--cert-file", server["--cert"], "--key-file", server["--key"],
             "--trusted-ca-file", server["--cacert"], "--client-cert-auth",
             "--bcrypt-cost", "4"]
    with running(tmp_path_factory.mktemp("cn"), 1, flags, scheme="https") as cluster:
        m = cluster.members[0]
        root = certs["root"]
        assert _wait_serving(m, root)
        for args in (["user", "add", "root:rootpw"], ["user", "add", "alice:alicepw"],
                     ["role", "add", "reader"], ["role", "grant-permission", "reader", "read", "k"],
                     ["user", "grant-role", "alice", "reader"], ["put", "k", "v"],
                     ["auth", "enable"]):
            done = _ctl(ETCDCTL, m, root, *args)
            assert done.returncode == 0, (args, done.stderr)
        yield m


def _ctl(tool: str, m: Member, cert: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, f"--endpoints={m.client_url}", "--dial-timeout=3s",
                           "--command-timeout=10s", *cert, *args], capture_output=True,
                          text=True, timeout=TOOL_TIMEOUT_S, env={**os.environ, "ETCDCTL_API": "3"},
                          check=False)


def _wait_serving(m: Member, cert: list[str]) -> bool:
    return wait_until(lambda: _ctl(ETCDCTL, m, cert, "endpoint", "health").returncode == 0,
                      30, interval_s=0.2)


@pytest.mark.parametrize("tool", [ETCDCTL, PETCDCTL])
def test_the_common_name_is_the_user_without_a_token(member, certs, tool):
    assert _ctl(tool, member, certs["root"], "put", "k", "by-root").stdout == "OK\n"
    assert _ctl(tool, member, certs["alice"], "get", "k", "--print-value-only").stdout == "by-root\n"
    refused = _ctl(tool, member, certs["alice"], "put", "k", "by-alice")
    assert refused.returncode != 0 and DENIED in refused.stderr
    for nobody in ("ghost", "nameless"):  # no such user; no common name at all
        refused = _ctl(tool, member, certs[nobody], "get", "k")
        assert refused.returncode != 0 and refused.stdout == "", (nobody, refused)
    assert _ctl(tool, member, certs["root"], "get", "k", "--print-value-only").stdout == "by-root\n"


def test_a_token_wins_over_the_common_name(member, certs):
    as_alice = _ctl(ETCDCTL, member, certs["root"], "--user", "alice:alicepw", "put", "k", "x")
    assert as_alice.returncode != 0 and DENIED in as_alice.stderr
    as_root = _ctl(ETCDCTL, member, certs["alice"], "--user", "root:rootpw", "put", "k", "y")
    assert as_root.stdout == "OK\n", as_root.stderr


def test_the_gateway_takes_no_user_from_a_certificate(member, certs):
    flags = [flag.replace("--cacert=", "--cacert ").replace("--cert=", "--cert ")
             .replace("--key=", "--key ") for flag in certs["root"]]
    curl = subprocess.run(["curl", "-sS", "--max-time", "5", *" ".join(flags).split(),
                           member.client_url + "/v3/kv/put", "-d",
                           json.dumps({"key": "aw==", "value": "Z3c="})],
                          capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    assert json.loads(curl.stdout)["message"] == "etcdserver: user name is empty", curl
    got = _ctl(ETCDCTL, member, certs["root"], "get", "k", "--print-value-only")
    assert got.stdout != "gw\n"
