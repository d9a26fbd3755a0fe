"""How a test cluster's members are reached: plain HTTP, or TLS on every URL (client
and peer, client certificates required on both), certificates made by trustme at run
time. Fault tests run under both (tests/faults/conftest.py `transport`): TLS must
change nothing a fault test sees."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from .members import Cluster, running


@dataclass(frozen=True)
class Transport:
    name: str
    flags: list[str] = field(default_factory=list)
    client: ssl.SSLContext | None = None  # what the test helpers connect with

    @contextlib.contextmanager
    def running(self, root: Path, size: int, extra_args: list[str] | None = None
                ) -> Iterator[Cluster]:
        scheme = "https" if self.client is not None else "http"
        with running(root, size, [*self.flags, *(extra_args or [])], scheme=scheme,
                     tls=self.client, peer_scheme=scheme) as cluster:
            yield cluster


PLAIN = Transport("plain")


def _write(ca: trustme.CA, directory: Path, name: str, *hosts: str) -> tuple[Path, Path]:
    cert = ca.issue_cert(*hosts)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def tls_everywhere(directory: Path) -> Transport:
    """Every member's TLS flags, and the test client's context."""
    ca = trustme.CA()
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_cert, server_key = _write(ca, directory, "member", "127.0.0.1", "localhost")
    client_cert, client_key = _write(ca, directory, "client", "client.example")
    flags = ["--cert-file", str(server_cert), "--key-file", str(server_key),
             "--client-cert-auth", "--trusted-ca-file", str(ca_path),
             "--peer-cert-file", str(server_cert), "--peer-key-file", str(server_key),
             "--peer-client-cert-auth", "--peer-trusted-ca-file", str(ca_path)]
    client = ssl.create_default_context(cafile=str(ca_path))
    client.load_cert_chain(client_cert, client_key)
    return Transport("tls", flags, client)
