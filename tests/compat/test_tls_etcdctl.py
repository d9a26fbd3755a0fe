"""The real etcdctl with --cacert/--cert/--key, and --user, against a real etcd and a
petcd configured the same way (https client URL, --client-cert-auth, a CA and
certificates trustme makes at run time): the same steps print the same, from a
put with a certificate to auth through a certificate's common name (etcd's
AuthInfoFromTLS) and the refusals without one or with one from another CA."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.cluster.members import running

from .etcdctl import COMMAND_TIMEOUT_S, ETCDCTL, Result

pytestmark = pytest.mark.skipif(not etcd_available(), reason="needs Debian's etcd and etcd-client")


def _issue(ca: trustme.CA, directory: Path, name: str, common_name: str) -> list[str]:
    cert = ca.issue_cert(f"{name}.example", "127.0.0.1", common_name=common_name)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return [f"--cert={cert_path}", f"--key={key_path}"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, list[str]]:
    directory = tmp_path_factory.mktemp("compat-certs")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cacert = [f"--cacert={directory / 'ca.pem'}"]
    return {"server": _issue(ca, directory, "server", "member"),
            "root": cacert + _issue(ca, directory, "root", "root"),
            "nobody": cacert + _issue(ca, directory, "nobody", "nobody"),
            "foreign": cacert + _issue(other, directory, "foreign", "root"),
            "none": cacert, "ca": [str(directory / "ca.pem")]}


def _server_flags(certs: dict[str, list[str]]) -> tuple[list[str], ssl.SSLContext]:
    cert, key = (flag.split("=", 1)[1] for flag in certs["server"])
    flags = ["--cert-file", cert, "--key-file", key, "--client-cert-auth",
             "--trusted-ca-file", certs["ca"][0]]
    client = ssl.create_default_context(cafile=certs["ca"][0])
    client.load_cert_chain(*(flag.split("=", 1)[1] for flag in certs["root"][1:]))
    return flags, client


def _run(url: str, flags: list[str], args: list[str]) -> Result:
    done = subprocess.run([ETCDCTL, f"--endpoints={url}", "--dial-timeout=2s",
                           "--command-timeout=3s", *flags, *args], capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S,
                          env={**os.environ, "ETCDCTL_API": "3"}, check=False)
    # The endpoint and the time a health check took are all that may differ.
    out = re.sub(r"https://127\.0\.0\.1:\d+", "URL", done.stdout)
    out = re.sub(r"took = [0-9.]+[mµu]?s", "took = T", out)
    return Result(done.returncode, out, done.stderr)


STEPS = [  # (whose certificate, etcdctl arguments)
    ("root", ["put", "k", "v"]), ("root", ["get", "k"]), ("root", ["endpoint", "health"]),
    ("none", ["get", "k"]), ("foreign", ["get", "k"]),
    ("root", ["user", "add", "root:rootpw"]), ("root", ["user", "add", "alice:alicepw"]),
    ("root", ["auth", "enable"]),
    ("root", ["put", "k", "by-root-cert"]),                   # the common name "root"
    ("nobody", ["get", "k"]),                                 # no user "nobody"
    ("nobody", ["--user", "root:rootpw", "get", "k"]),        # a token wins
    ("root", ["--user", "alice:alicepw", "put", "k", "x"]),   # alice may not write
    ("root", ["--user", "root:wrong", "get", "k"]),
    ("none", ["--user", "root:rootpw", "get", "k"]),
    ("root", ["get", "k", "--print-value-only"]),
    ("nobody", ["auth", "disable"]), ("root", ["auth", "disable"]), ("nobody", ["get", "k"]),
]


def test_etcdctl_with_certificates_and_users_prints_the_same_on_etcd_and_petcd(tmp_path, certs):
    flags, client = _server_flags(certs)
    for side in ("etcd", "petcd"):
        (tmp_path / side).mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", 1, flags, tls=client)
    etcd.start()
    try:
        expected = [_run(etcd.members[0].client_url, certs[who], args) for who, args in STEPS]
    finally:
        etcd.stop()
    with running(tmp_path / "petcd", 1, [*flags, "--bcrypt-cost", "4"], scheme="https",
                 tls=client) as petcd:
        petcd.wait_leader()
        actual = [_run(petcd.members[0].client_url, certs[who], args) for who, args in STEPS]
    for (who, args), want, got in zip(STEPS, expected, actual):
        assert (got.code, got.out, got.error_line) == (want.code, want.out, want.error_line), (
            who, args, want, got)
