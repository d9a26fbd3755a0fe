"""Peer TLS: from etcd's --peer-* flags to what the relay (tlsrelay.py) needs, and how
member-to-member sockets are addressed when it is on.

Peer TLS is on when the member's peer URLs are https:// (etcd's rule). Then:

- server side (the relay accepting on --listen-peer-urls): --peer-cert-file and
  --peer-key-file; with --peer-client-cert-auth a client certificate from
  --peer-trusted-ca-file is required, and --peer-cert-allowed-cn / -hostname narrow
  which ones (the certificate's common name / a DNS or IP subject alternative name);
- client side (the relay dialling other members): the same certificate as client
  certificate; the server's checked against --peer-trusted-ca-file (the system's CAs
  when none is given) and against the peer URL's host;
- --peer-auto-tls without certificate files: a self-signed certificate made once in
  <data-dir>/fixtures/peer (etcd's place), and, as etcd, no verification of others'
  (every member's certificate is its own);
- --tls-min-version/--tls-max-version apply to both sides.

Contexts are rebuilt when a certificate, key or CA file changes (looked at once a
second at most); a file that cannot be loaded then keeps the last good context and
is logged.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petcd.config import Settings

from .addresses import peer_address
from .tlsrelay import PeerCheck, outbound_path

RELOAD_CHECK_S = 1.0
_VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True, slots=True)
class PeerTls:
    cert_file: Path
    key_file: Path
    ca_file: Path | None
    client_cert_auth: bool
    verify_peers: bool  # False with auto TLS (self-signed certificates)
    allowed_cn: str
    allowed_hostname: str
    min_version: str
    max_version: str


def enabled(settings: Settings) -> bool:
    """Peer TLS is on: the peer URLs are https:// (etcd's rule)."""
    urls = (*settings.listen_peer_urls, *settings.initial_advertise_peer_urls)
    return any(u.scheme == "https" for u in urls)


def peer_tls(settings: Settings) -> PeerTls | None:
    """The member's peer TLS, or None for plain ZeroMQ TCP (http:// peer URLs)."""
    if not enabled(settings):
        return None
    urls = (*settings.listen_peer_urls, *settings.initial_advertise_peer_urls)
    cert, key = settings.peer_cert_file, settings.peer_key_file
    auto = cert is None and key is None and settings.peer_auto_tls
    if auto:
        cert, key = self_signed(settings.data_dir / "fixtures" / "peer",
                                [u.host for u in urls], settings.self_signed_cert_validity_years)
    assert cert is not None and key is not None, "config checks https peer URLs have them"
    return PeerTls(cert, key, settings.peer_trusted_ca_file, settings.peer_client_cert_auth,
                   not auto, settings.peer_cert_allowed_cn, settings.peer_cert_allowed_hostname,
                   settings.tls_min_version, settings.tls_max_version)


# -- addresses: with TLS, every peer socket goes through the relay ------------------

def dealer_route(run_dir: Path, relayed: bool) -> Callable[[int, str], str]:
    """(member id, peer URL) -> the address a DEALER connects to: the URL's, or the
    relay's unix socket for that member."""
    if not relayed:
        return lambda peer_id, url: peer_address(url)
    return lambda peer_id, url: f"ipc://{outbound_path(run_dir, peer_id)}"




# -- contexts ---------------------------------------------------------------------------

class Reloading:
    """A context source that rebuilds its context when its files change."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: list[Path], log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.build, self.files, self.log, self.clock = build, files, log, clock
        self._stamp = self._stamps()
        self._context = build()  # a bad file at start is the caller's error to report
        self._checked_at = clock()

    def __call__(self) -> ssl.SSLContext:
        now = self.clock()
        if now - self._checked_at >= RELOAD_CHECK_S:
            self._checked_at = now
            stamp = self._stamps()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._context = self.build()
                    self.log.info("peer TLS certificates reloaded")
                except (OSError, ssl.SSLError, ValueError) as err:
                    self.log.error("cannot reload peer TLS certificates; keeping the last ones",
                                   error=str(err))
        return self._context

    def _stamps(self) -> list[tuple[int, int]]:
        stamps = []
        for path in self.files:
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append((0, 0))
        return stamps


def server_context(tls: PeerTls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, tls)
    if tls.client_cert_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _trust(ctx, tls)
    return ctx


def client_context(tls: PeerTls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(ctx, tls)
    if tls.verify_peers:
        _trust(ctx, tls)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _common(ctx: ssl.SSLContext, tls: PeerTls) -> None:
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = _VERSIONS[tls.max_version]


def _trust(ctx: ssl.SSLContext, tls: PeerTls) -> None:
    if tls.ca_file is not None:
        ctx.load_verify_locations(tls.ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def contexts(tls: PeerTls, log: Any) -> tuple[Reloading, Reloading]:
    """(server, client) context sources."""
    files = [tls.cert_file, tls.key_file, *([tls.ca_file] if tls.ca_file else [])]
    return (Reloading(lambda: server_context(tls), files, log),
            Reloading(lambda: client_context(tls), files, log))


def check_peer(tls: PeerTls) -> PeerCheck:
    """etcd's --peer-cert-allowed-cn and --peer-cert-allowed-hostname."""
    def check(cert: Any) -> str | None:
        if not (tls.allowed_cn or tls.allowed_hostname):
            return None
        if not cert:
            return "no client certificate"
        if tls.allowed_cn and tls.allowed_cn not in _common_names(cert):
            return f"common name not {tls.allowed_cn!r}"
        if tls.allowed_hostname and not _has_hostname(cert, tls.allowed_hostname):
            return f"certificate not valid for {tls.allowed_hostname!r}"
        return None
    return check


def _common_names(cert: dict[str, Any]) -> list[str]:
    return [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]


def _has_hostname(cert: dict[str, Any], hostname: str) -> bool:
    names = [v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
    try:
        wanted = str(ipaddress.ip_address(hostname))
    except ValueError:
        wanted = hostname.lower()
    return any(n.lower() == wanted for n in names)


# -- auto TLS ------------------------------------------------------------------------------

def self_signed(directory: Path, hosts: list[str], validity_years: int) -> tuple[Path, Path]:
    """etcd's SelfCert: cert.pem and key.pem in `directory`, made once, valid for
    `hosts` (names and addresses)."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365 * validity_years))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
