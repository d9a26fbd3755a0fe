"""https client URLs (etcd's transport security for clients), with real clients.

One member serves https with --client-cert-auth; the real etcdctl, petcdctl and curl
reach it with a certificate from its CA, and are refused without one, with one from
another CA, or in plain HTTP, while the member keeps serving. An --auto-tls member
serves its self-signed certificate to clients that skip verification, and picks up a
certificate replaced on disk without a restart. Certificates are made by trustme.
"""

from __future__ import annotations

import datetime
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.compat.etcdctl import ETCDCTL, PETCDCTL
from tests.cluster.members import Cluster, Member, free_ports, running, wait_until

TOOL_TIMEOUT_S = 30.0
CURL_REFUSED = (35, 52, 56)  # TLS handshake failed, empty reply, connection reset


@dataclass(frozen=True)
class Files:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    foreign_cert: Path  # a client certificate from another CA
    foreign_key: Path
    expired_cert: Path  # from the right CA, but past its not-after date
    expired_key: Path


def _issue(ca: trustme.CA, directory: Path, name: str, *hosts: str,
           not_after: datetime.datetime | None = None) -> tuple[Path, Path]:
    cert = ca.issue_cert(*hosts, not_after=not_after)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    directory = tmp_path_factory.mktemp("certs")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = _issue(ca, directory, "server", "127.0.0.1", "localhost")
    client = _issue(ca, directory, "client", "client.example")
    foreign = _issue(other, directory, "foreign", "client.example")
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    expired = _issue(ca, directory, "expired", "client.example", not_after=yesterday)
    return Files(directory / "ca.pem", *server, *client, *foreign, *expired)


def _client_context(files: Files) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.client_cert, files.client_key)
    return context


@pytest.fixture(scope="module")
def secured(tmp_path_factory, files: Files):
    flags = ["--cert-file", str(files.server_cert), "--key-file", str(files.server_key),
             "--client-cert-auth", "--trusted-ca-file", str(files.ca)]
    with running(tmp_path_factory.mktemp("secured"), 1, flags, scheme="https",
                 tls=_client_context(files)) as cluster:
        cluster.wait_leader()
        yield cluster.members[0]


def _run(tool: str, member: Member, *args: str, command_timeout_s: int = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, f"--endpoints={member.client_url}", "--dial-timeout=3s",
                           f"--command-timeout={command_timeout_s}s", *args],
                          capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                          env={**os.environ, "ETCDCTL_API": "3"}, check=False)


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          text=True, timeout=TOOL_TIMEOUT_S, check=False)


def _certificate_flags(files: Files) -> list[str]:
    return [f"--cacert={files.ca}", f"--cert={files.client_cert}", f"--key={files.client_key}"]


def test_etcdctl_and_petcdctl_put_and_get_with_a_client_certificate(secured: Member, files: Files):
    flags = _certificate_flags(files)
    assert _run(ETCDCTL, secured, *flags, "put", "from-etcdctl", "1").stdout == "OK\n"
    assert _run(PETCDCTL, secured, *flags, "put", "from-petcdctl", "2").stdout == "OK\n"
    for tool in (ETCDCTL, PETCDCTL):
        got = _run(tool, secured, *flags, "get", "from-", "--prefix")
        assert got.stdout == "from-etcdctl\n1\nfrom-petcdctl\n2\n", (tool, got.stderr)


def test_curl_reaches_the_gateway_and_health_over_https(secured: Member, files: Files):
    flags = ["--cacert", str(files.ca), "--cert", str(files.client_cert), "--key", str(files.client_key)]
    put = _curl(*flags, secured.client_url + "/v3/kv/put", "-d", '{"key":"Y3VybA==","value":"eA=="}')
    assert '"revision"' in put.stdout, put.stderr
    health = _curl(*flags, secured.client_url + "/health")
    assert health.stdout == '{"health":"true","reason":""}', health.stderr
    assert secured.get("curl") == "x"


def test_no_client_certificate_or_one_from_another_ca_is_refused(secured: Member, files: Files):
    # With TLS 1.3 the client's side of the handshake is over before the server checks
    # its certificate: curl sees the refusal as an alert, a reset or an empty reply.
    foreign = ["--cacert", str(files.ca), "--cert", str(files.foreign_cert), "--key", str(files.foreign_key)]
    for flags in (["--cacert", str(files.ca)], foreign):
        refused_curl = _curl(*flags, secured.client_url + "/health")
        assert refused_curl.returncode in CURL_REFUSED and refused_curl.stdout == "", refused_curl
    for tool in (ETCDCTL, PETCDCTL):
        refused = _run(tool, secured, f"--cacert={files.ca}", f"--cert={files.foreign_cert}",
                       f"--key={files.foreign_key}", "get", "from-etcdctl",
                       command_timeout_s=2)  # etcdctl retries a refused handshake until then
        assert refused.returncode != 0 and refused.stdout == "", (tool, refused.stdout)
    events = [e["error"] for e in secured.log_events("client TLS handshake failed; connection refused")]
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in e for e in events), events
    assert any("CERTIFICATE_VERIFY_FAILED" in e for e in events), events


def test_an_expired_client_certificate_is_refused_with_a_clear_log_line(secured: Member,
                                                                       files: Files):
    expired = ["--cacert", str(files.ca), "--cert", str(files.expired_cert),
               "--key", str(files.expired_key)]
    refused = _curl(*expired, secured.client_url + "/health")
    assert refused.returncode in CURL_REFUSED and refused.stdout == "", refused
    assert wait_until(lambda: any("certificate has expired" in e["error"] for e in secured.log_events(
        "client TLS handshake failed; connection refused")), 5)
    secured.put("after-expired", "z")  # and the member serves on
    assert secured.get("after-expired") == "z"


def test_plain_http_to_the_tls_port_is_refused_and_the_member_keeps_serving(secured: Member):
    plain = f"http://127.0.0.1:{secured.client_port}/health"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain, timeout=5)
    assert wait_until(lambda: secured.log_events("plain HTTP on a TLS client URL; connection refused"), 5)
    secured.put("after-plain", "y")
    assert secured.get("after-plain") == "y"


def test_auto_tls_serves_its_own_certificate_and_reloads_a_replaced_one(tmp_path, files: Files):
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    with running(tmp_path, 1, ["--auto-tls"], scheme="https", tls=unverified) as cluster:
        cluster.wait_leader()
        member = cluster.members[0]
        skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"]
        assert _run(ETCDCTL, member, *skip, "put", "auto", "1").stdout == "OK\n"
        assert _run(PETCDCTL, member, *skip, "get", "auto", "--print-value-only").stdout == "1\n"
        fixtures = member.data_dir / "fixtures" / "client"
        trusted_by_our_ca = ["--cacert", str(files.ca), member.client_url + "/health"]
        assert _curl(*trusted_by_our_ca).returncode != 0
        _replace_with_garbage_then_ours(fixtures, files, member)
        assert wait_until(lambda: _curl(*trusted_by_our_ca).returncode == 0, 10), \
            member.log_text()[-2000:]


def _replace_with_garbage_then_ours(fixtures: Path, files: Files, member: Member) -> None:
    """A bad file first: the member logs it and keeps its certificate; then a good one."""
    (fixtures / "cert.pem").write_text("not a certificate\n")
    # Files are looked at when a connection comes (each `get` is a new one), and
    # then once a second at most.
    assert wait_until(lambda: member.get("auto") == "1" and member.log_events(
        "client TLS files changed but cannot be used; using the previous ones"), 10)
    time.sleep(0.01)  # a later mtime than the garbage's, even on coarse clocks
    (fixtures / "key.pem").write_bytes(files.server_key.read_bytes())
    (fixtures / "cert.pem").write_bytes(files.server_cert.read_bytes())


def test_cluster_helpers_still_default_to_http(tmp_path):
    assert Cluster(tmp_path, 1).members[0].client_url.startswith("http://")


def test_https_with_separate_http_urls_serves_grpc_and_http_apart(tmp_path, files: Files):
    """--listen-client-http-urls over https too: gRPC alone on the client URL (etcdctl
    works there, curl does not), the gateway alone on the HTTP URL."""
    [http_port] = free_ports(1)
    http_url = f"https://127.0.0.1:{http_port}"
    flags = ["--cert-file", str(files.server_cert), "--key-file", str(files.server_key),
             "--client-cert-auth", "--trusted-ca-file", str(files.ca),
             "--listen-client-http-urls", http_url]
    curl_flags = ["--cacert", str(files.ca), "--cert", str(files.client_cert),
                  "--key", str(files.client_key)]
    with running(tmp_path, 1, flags, scheme="https", tls=_client_context(files)) as cluster:
        member = cluster.members[0]
        assert wait_until(lambda: _run(ETCDCTL, member, *_certificate_flags(files), "put", "split",
                                       "1").stdout == "OK\n", 20, interval_s=0.2)
        got = _curl(*curl_flags, http_url + "/v3/kv/range", "-d", '{"key":"c3BsaXQ="}')
        assert '"value":"MQ=="' in got.stdout, got
        assert _curl(*curl_flags, member.client_url + "/health").stdout == ""  # gRPC only
        assert _curl(*curl_flags, http_url + "/health").stdout == '{"health":"true","reason":""}'
