"""TLS contexts built from certificate files, rebuilt when the files change: what the
client URLs (actors/network/servertls.py) and the peer relay (peertls.py) share.

etcd reads the certificate and key files at every handshake (transport.TLSInfo's
GetCertificate), so a certificate renewed on disk is served without a restart. Here
the files' (mtime, size) are looked at no more than once a second and the context is
rebuilt only when they changed: reading and parsing PEM files per connection would be
per-connection work on busy processes. A rebuild that fails (a half-written file, a
key that does not match) keeps the last good context and says so in the log.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RELOAD_CHECK_INTERVAL_S = 1.0
VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


class ReloadingTls:
    """The current context built from `files` by `build`, rebuilt when they change.
    `what` names it in log lines ("client TLS", "peer TLS")."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: Sequence[Path], what: str,
                 log: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.build, self.files, self.what = build, tuple(files), what
        self.log, self.clock = log, clock
        self._stamp = _stamp(self.files)
        self._context = build()  # unusable at start: the caller stops the member
        self._checked_at = clock()

    def context(self) -> ssl.SSLContext:
        now = self.clock()
        if now - self._checked_at < RELOAD_CHECK_INTERVAL_S:
            return self._context
        self._checked_at = now
        stamp = _stamp(self.files)
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()
        return self._context

    def _reload(self) -> None:
        try:
            self._context = self.build()
        except (OSError, ssl.SSLError) as err:
            self.log.warning(f"{self.what} files changed but cannot be used; using the previous ones",
                             files=[str(f) for f in self.files], error=str(err))
            return
        self.log.info(f"{self.what} files reloaded", cert_file=str(self.files[0]))


def set_versions(context: ssl.SSLContext, min_version: str, max_version: str) -> None:
    """--tls-min-version / --tls-max-version ("" max: the highest OpenSSL has)."""
    context.minimum_version = VERSIONS[min_version]
    if max_version:
        context.maximum_version = VERSIONS[max_version]


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
