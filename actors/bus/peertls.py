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
- --cipher-suites and --tls-min-version/--tls-max-version apply to both sides.

Contexts are rebuilt when a certificate, key or CA file changes (tlsfiles.py).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petcd.config import Settings
from petcd.config.ciphers import openssl_cipher_list

from .addresses import peer_address
from .selfcert import self_cert
from .tlsfiles import ReloadingTls, set_versions
from .tlsrelay import ContextSource, PeerCheck, outbound_path



@dataclass(frozen=True, slots=True)
class PeerTls:
    cert_file: Path
    key_file: Path
    ca_file: Path | None
    client_cert_auth: bool
    verify_peers: bool  # False with auto TLS (self-signed certificates)
    allowed_cn: str
    allowed_hostname: str
    cipher_list: str  # OpenSSL's names; "" = OpenSSL's defaults
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
        cert, key, _ = self_cert(settings.data_dir / "fixtures" / "peer",
                                 [u.host for u in urls], settings.self_signed_cert_validity_years)
    assert cert is not None and key is not None, "config checks https peer URLs have them"
    return PeerTls(cert, key, settings.peer_trusted_ca_file, settings.peer_client_cert_auth,
                   not auto, settings.peer_cert_allowed_cn, settings.peer_cert_allowed_hostname,
                   openssl_cipher_list(settings.cipher_suites), settings.tls_min_version,
                   settings.tls_max_version)


# -- addresses: with TLS, every peer socket goes through the relay ------------------

def dealer_route(run_dir: Path, relayed: bool) -> Callable[[int, str], str]:
    """(member id, peer URL) -> the address a DEALER connects to: the URL's, or the
    relay's unix socket for that member."""
    if not relayed:
        return lambda peer_id, url: peer_address(url)
    return lambda peer_id, url: f"ipc://{outbound_path(run_dir, peer_id)}"




# -- contexts ---------------------------------------------------------------------------

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
    set_versions(ctx, tls.min_version, tls.max_version)
    if tls.cipher_list:
        ctx.set_ciphers(tls.cipher_list)


def _trust(ctx: ssl.SSLContext, tls: PeerTls) -> None:
    if tls.ca_file is not None:
        ctx.load_verify_locations(tls.ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def contexts(tls: PeerTls, log: Any) -> tuple[ContextSource, ContextSource]:
    """(server, client) context sources, reloaded when the files change."""
    files = [tls.cert_file, tls.key_file, *([tls.ca_file] if tls.ca_file else [])]
    return (ReloadingTls(lambda: server_context(tls), files, "peer TLS server", log).context,
            ReloadingTls(lambda: client_context(tls), files, "peer TLS client", log).context)


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
