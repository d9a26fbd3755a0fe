"""Peer and client URLs, and the --initial-cluster map, parsed as etcd parses them.

etcd (client/pkg/types.NewURLs) accepts `scheme://host:port` with no path; its error
messages end with the offending URL, and petcd keeps that wording. petcd speaks only
http and https for now (etcd also has unix and unixs sockets).

A URL's string form matters beyond display: member IDs hash it (config/ids.py), so
`str(Url)` must be what etcd's url.String() gives for the same input. The scheme is
lower-cased (as Go does) and the host keeps the case it was written in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import BadValue, quote

SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class Url:
    scheme: str  # "http" or "https"
    host: str    # name or IP literal as written, IPv6 without brackets
    port: int

    def __post_init__(self) -> None:
        assert self.scheme in SCHEMES, self.scheme
        assert self.host, "a URL needs a host"
        assert 0 <= self.port <= 65535, self.port

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def is_bind_address(self) -> bool:
        """etcd binds only to IP literals or `localhost` (embed.checkBindURLs):
        resolving a name at bind time would pick one address silently."""
        if self.host == "localhost":
            return True
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


class InitialMember(NamedTuple):
    """One member of --initial-cluster: a name and its peer URLs."""

    name: str
    peer_urls: tuple[Url, ...]


def parse_url(text: str) -> Url:
    text = text.strip()  # as etcd does, so "a, b" lists work
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise BadValue(f'URL address does not have the form "host:port": {text}') from None
    if parts.scheme not in SCHEMES:
        raise BadValue(f"URL scheme must be http or https: {text}")
    if parts.path:
        raise BadValue(f"URL must not contain a path: {text}")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise BadValue(f"URL must not contain a query or fragment: {text}")
    if "@" in parts.netloc:
        raise BadValue(f"URL must not contain user info: {text}")
    host = _host_as_written(parts.netloc)
    if not host or port is None:
        raise BadValue(f'URL address does not have the form "host:port": {text}')
    return Url(parts.scheme, host, port)


def _host_as_written(netloc: str) -> str:
    # urlsplit().hostname lower-cases the host; etcd keeps it, and IDs hash it.
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")]
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


def parse_url_list(text: str) -> tuple[Url, ...]:
    """A comma-separated list; repeats are dropped, first-seen order kept (etcd's
    UniqueURLs flag also drops repeats)."""
    items = text.split(",")
    if not text.strip():
        raise BadValue("no valid URLs given")
    if any(not item.strip() for item in items):
        raise BadValue("empty URL in comma-separated list")
    return tuple(dict.fromkeys(parse_url(item) for item in items))


def parse_initial_cluster(text: str) -> tuple[InitialMember, ...]:
    """`name=url,name=url,...` as etcd's types.NewURLsMap reads it: a name given twice
    means a member with several peer URLs (etcd derives exactly that form from
    several --initial-advertise-peer-urls); empty entries are skipped."""
    urls_by_name: dict[str, list[Url]] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, url_text = entry.partition("=")
        if not sep:
            raise BadValue(f"entry {quote(entry)} must have the form name=peer-url")
        if not name.strip():
            raise BadValue(f"entry {quote(entry)} has an empty member name")
        urls_by_name.setdefault(name.strip(), []).append(parse_url(url_text))
    if not urls_by_name:
        raise BadValue("initial cluster unset and no discovery URL found")
    _reject_duplicate_urls(urls_by_name)
    return tuple(InitialMember(n, tuple(us)) for n, us in urls_by_name.items())


def _reject_duplicate_urls(urls_by_name: dict[str, list[Url]]) -> None:
    # Two members (or one member twice) on one peer URL cannot both be reached.
    seen: set[Url] = set()
    for urls in urls_by_name.values():
        for url in urls:
            if url in seen:
                raise BadValue(f"initial cluster has duplicate url {url}")
            seen.add(url)
