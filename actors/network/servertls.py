"""TLS on the client URLs: the SSLContext each new connection's handshake uses.

etcd reads the certificate and key files at every handshake (transport.TLSInfo's
GetCertificate), so a certificate renewed on disk is served without a restart. Here
the files' (mtime, size) are looked at no more than once a second and the context is
rebuilt only when they changed: reading and parsing PEM files per connection would be
per-request work on the busiest process. A rebuild that fails (a half-written file, a
key that does not match) keeps the last good context and says so in the log.

Which clients must show a certificate is etcd's rule (TLSInfo.ServerConfig): with
--client-cert-auth or a --trusted-ca-file, one signed by that CA (or by the system's
CAs when no file is given); the handshake fails otherwise.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petcd.config import Settings
from petcd.config.ciphers import openssl_cipher_list

from .selfcert import self_cert

RELOAD_CHECK_INTERVAL_S = 1.0
VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}
# The server's preference, which OpenSSL follows: a client that can speak HTTP/1.1
# (curl, browsers) gets it and reaches the JSON gateway; gRPC clients offer only h2.
# The front door then routes on the first bytes either way (frontdoor.py).
ALPN_PROTOCOLS = ["http/1.1", "h2"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    trusted_ca_file: Path | None
    verify_clients: bool   # a client certificate is required and checked
    cipher_list: str       # OpenSSL's names; "" = OpenSSL's defaults
    min_version: str       # "TLS1.2" | "TLS1.3"
    max_version: str       # "" = the highest OpenSSL has

    def files(self) -> tuple[Path, ...]:
        ca = (self.trusted_ca_file,) if self.trusted_ca_file else ()
        return (self.cert_file, self.key_file, *ca)


def client_tls_config(settings: Settings, log: Any) -> TlsConfig | None:
    """The TLS of the https client URLs (None without any), making --auto-tls's
    certificate if needed. Flag combinations were checked in config/settings.py."""
    urls = (*settings.listen_client_urls, *settings.listen_client_http_urls)
    if not any(url.scheme == "https" for url in urls):
        return None
    common = dict(cipher_list=openssl_cipher_list(settings.cipher_suites),
                  min_version=settings.tls_min_version, max_version=settings.tls_max_version)
    if settings.cert_file is not None and settings.key_file is not None:
        if settings.auto_tls:
            log.warning("ignoring client auto TLS since certs given")
        return TlsConfig(settings.cert_file, settings.key_file, settings.trusted_ca_file,
                         settings.client_cert_auth or settings.trusted_ca_file is not None, **common)
    assert settings.auto_tls, "settings let https through without certificate or --auto-tls"
    cert, key, made = self_cert(settings.data_dir / "fixtures" / "client",
                                [url.host for url in urls], settings.self_signed_cert_validity_years)
    log.warning("automatically generated client certificate" if made else "using auto TLS certificate",
                cert_file=str(cert))
    if settings.client_cert_auth or settings.trusted_ca_file is not None:
        # etcd replaces the whole TLS configuration with the self-signed one.
        log.warning("--client-cert-auth and --trusted-ca-file are ignored with auto TLS")
    return TlsConfig(cert, key, None, False, **common)


def build_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context; raises OSError or ssl.SSLError for unusable files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[config.min_version]
    if config.max_version:
        context.maximum_version = VERSIONS[config.max_version]
    if config.cipher_list:
        context.set_ciphers(config.cipher_list)
    context.load_cert_chain(config.cert_file, config.key_file)
    if config.verify_clients:
        context.verify_mode = ssl.CERT_REQUIRED
        if config.trusted_ca_file is not None:
            context.load_verify_locations(config.trusted_ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


class ServerTls:
    """The current context of one TLS configuration, rebuilt when its files change."""

    def __init__(self, config: TlsConfig, log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.log = log
        self.clock = clock
        self._stamp = _stamp(config.files())
        self._context = build_context(config)  # unusable at start: the member stops
        self._checked_at = clock()

    def context(self) -> ssl.SSLContext:
        now = self.clock()
        if now - self._checked_at < RELOAD_CHECK_INTERVAL_S:
            return self._context
        self._checked_at = now
        stamp = _stamp(self.config.files())
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()
        return self._context

    def _reload(self) -> None:
        try:
            self._context = build_context(self.config)
        except (OSError, ssl.SSLError) as err:
            self.log.warning("client TLS files changed but cannot be used; serving the previous ones",
                             files=[str(f) for f in self.config.files()], error=str(err))
            return
        self.log.info("client TLS files reloaded", cert_file=str(self.config.cert_file))


def _stamp(files: tuple[Path, ...]) -> tuple[tuple[int, int] | None, ...]:
    """What tells a changed file: (mtime in ns, size), or None for a missing one."""
    stamps: list[tuple[int, int] | None] = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)
