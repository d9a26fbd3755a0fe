"""The check etcd's Go client makes of a member's peer URLs before asking the server
(clientv3's MemberAdd and MemberUpdate call pkg/types.NewURLs "to fail fast before a
panic in rafthttp"), with its error texts:

    http://10.0.0.4:2380     accepted
    10.0.0.4:2380            URL scheme must be http, https, unix, or unixs: 10.0.0.4:2380
    http://10.0.0.4          URL address does not have the form "host:port": http://10.0.0.4
    http://10.0.0.4:2380/x   URL must not contain a path: http://10.0.0.4:2380/x
    http://10.0.0.4:23x0     parse "http://10.0.0.4:23x0": invalid port ":23x0" after host

Only the parts of Go's url.Parse that these URLs meet are reproduced: the scheme, the
authority after "//", the port's digits and the path; a URL that Go would refuse for a
rarer reason (a bad %-escape, a control character) goes to the server as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMES = ("http", "https", "unix", "unixs")
# Go's getScheme: a letter, then letters, digits, "+", "-" or "." up to the first ":".
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class _Parsed:
    scheme: str  # lower-cased, as Go's url.Parse does
    host: str  # the authority without user info; "" without "//"
    path: str


def check_peer_urls(urls: list[str]) -> None:
    """ValueError with Go's message for the first URL etcd's client would refuse."""
    if not urls:
        raise ValueError("no valid URLs given")
    for url in urls:
        url = url.strip()
        parsed = _parse(url)
        if parsed.scheme not in SCHEMES:
            raise ValueError(f"URL scheme must be http, https, unix, or unixs: {url}")
        if not _has_port(parsed.host):
            raise ValueError(f'URL address does not have the form "host:port": {url}')
        if parsed.path:
            raise ValueError(f"URL must not contain a path: {url}")


def _parse(url: str) -> _Parsed:
    rest = url.partition("#")[0]
    if rest.startswith(":"):
        raise ValueError(f'parse "{url}": missing protocol scheme')
    scheme = ""
    matched = _SCHEME.match(rest)
    if matched:
        scheme, rest = matched.group(1).lower(), rest[matched.end():]
    rest = rest.partition("?")[0]
    if not rest.startswith("//"):
        return _Parsed(scheme, "", rest)
    authority, slash, path = rest[2:].partition("/")
    host = authority.rpartition("@")[2]
    port = host[host.rfind(":"):] if ":" in host and not host.endswith("]") else ""
    if port and not host.startswith("[") and not re.fullmatch(r"[0-9]*", port[1:]):
        raise ValueError(f'parse "{url}": invalid port "{port}" after host')
    return _Parsed(scheme, host, slash + path)


def _has_port(host: str) -> bool:
    """Go's net.SplitHostPort succeeds: exactly one ":" outside of [brackets]."""
    if host.startswith("["):
        return bool(re.fullmatch(r"\[[^\[\]]*\]:[^:]*", host))
    return host.count(":") == 1
