"""The cluster description: one YAML file for the whole cluster, checked before any
file is written.

    token: petcd-prod-1            # --initial-cluster-token: this cluster's own
    user: petcd                    # the unit's User= (default petcd)
    data-dir: /var/lib/petcd/{name}.petcd   # default; {name} is the member's name
    wal-dir: /mnt/wal/petcd/{name} # optional: the WAL on a disk of its own
    client-port: 2379              # defaults, as etcd's
    peer-port: 2380
    settings:                      # more petcd flags, the same on every member
      snapshot-count: 10000
    members:
      - {name: infra1, host: 10.0.1.10}
      - {name: infra2, host: 10.0.1.11, wal-dir: /mnt/nvme/petcd-wal}
      - {name: infra3, host: 10.0.1.12}
    backup:                        # optional: `petcdctl snapshot save` on a timer
      dir: /var/backups/petcd
      every-hours: 6
      keep: 7

A member may override user, data-dir, wal-dir and the ports. Hosts are IP addresses
because petcd (as etcd) listens on its URLs' hosts and cannot bind a name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from petcd.config.flags import CONFIG_FILE_FLAG, FLAGS_BY_NAME

DEFAULT_USER = "petcd"
DEFAULT_DATA_DIR = "/var/lib/petcd/{name}.petcd"
DEFAULT_CLIENT_PORT = 2379
DEFAULT_PEER_PORT = 2380
MAX_RECOMMENDED_MEMBERS = 7
# Whole divisors of a day, so that the timer and the cron line fire at the same hours.
BACKUP_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)

# Flags the description itself decides for each member; `settings` may not set them.
DERIVED_FLAGS = frozenset({
    "name", "data-dir", "wal-dir", "listen-peer-urls", "listen-client-urls",
    "initial-advertise-peer-urls", "advertise-client-urls", "initial-cluster",
    "initial-cluster-token", "initial-cluster-state", CONFIG_FILE_FLAG})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # it names files and an initial-cluster entry
_USER = re.compile(r"[a-z_][a-z0-9_-]*")  # useradd's portable user names
_CLUSTER_KEYS = ("token", "user", "data-dir", "wal-dir", "client-port", "peer-port",
                 "settings", "members", "backup")
_MEMBER_KEYS = ("name", "host", "user", "data-dir", "wal-dir", "client-port", "peer-port")
_BACKUP_KEYS = ("dir", "every-hours", "keep", "user")


class DescriptionError(ValueError):
    """A description that cannot become a cluster; `str()` is one line naming where."""


@dataclass(frozen=True, slots=True)
class MemberSpec:
    name: str
    host: str         # an IP address, the member's own (never 0.0.0.0)
    client_port: int
    peer_port: int
    data_dir: str     # absolute
    wal_dir: str      # absolute, or "" for <data-dir>/member/wal
    user: str

    @property
    def client_url(self) -> str:
        return f"http://{self._netloc_host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self._netloc_host}:{self.peer_port}"

    @property
    def _netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


@dataclass(frozen=True, slots=True)
class BackupSpec:
    dir: str          # absolute
    every_hours: int  # one of BACKUP_HOURS
    keep: int         # >= 1: the newest `keep` snapshots stay
    user: str         # who runs the backup (default: the description's user)


@dataclass(frozen=True, slots=True)
class Description:
    token: str
    members: tuple[MemberSpec, ...]   # at least one; names, and ports per host, unique
    settings: tuple[tuple[str, str], ...]  # (flag, value) for every member, none derived
    backup: BackupSpec | None

    def __post_init__(self) -> None:
        assert self.members, "a description without members"
        assert len({m.name for m in self.members}) == len(self.members), "duplicate names"
        assert not DERIVED_FLAGS & {flag for flag, _ in self.settings}, "a derived flag in settings"

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def member(self, name: str) -> MemberSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise DescriptionError(f"no member named {name!r} (members: {', '.join(m.name for m in self.members)})")


def size_warning(count: int) -> str | None:
    """etcd's advice on cluster size, as a warning: neither is refused."""
    if count > MAX_RECOMMENDED_MEMBERS:
        return (f"{count} members: more than {MAX_RECOMMENDED_MEMBERS} makes every write "
                "wait for more replies without a real gain in fault tolerance")
    if count % 2 == 0:
        return (f"{count} members: an even count tolerates no more failed members than "
                "one fewer would, and each write waits for one more reply")
    return None


def parse_description(text: str, origin: str) -> Description:
    """The description in `text` (YAML); `origin` names it in errors."""
    import yaml  # only this tool needs PyYAML at import; member processes never import it

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DescriptionError(f"{origin}: invalid YAML{where}: "
                               f"{getattr(error, 'problem', None) or error}") from None
    top = _mapping(document, origin, "the description", _CLUSTER_KEYS)
    token = _text(top, "token", origin)
    if not token or any(c.isspace() or c in ",=" for c in token):
        raise DescriptionError(f"{origin}: token: give the cluster a token of its own "
                               "(--initial-cluster-token), without spaces, commas or '='")
    members = _members(top, origin)
    return Description(token, members, _settings(top.get("settings"), origin),
                       _backup(top, origin))


def _members(top: Mapping[str, object], origin: str) -> tuple[MemberSpec, ...]:
    entries = top.get("members")
    if not isinstance(entries, list) or not entries:
        raise DescriptionError(f"{origin}: members: a list of at least one member, "
                               "each with a name and a host")
    members = tuple(_member(entry, top, f"{origin}: members[{i}]") for i, entry in enumerate(entries))
    _refuse_duplicates(origin, (((m.name,), f"name {m.name!r}") for m in members))
    _refuse_duplicates(origin, (((m.host, port), f"{m.name}'s {kind} {m.host}:{port}") for m in members
                                for kind, port in (("client port", m.client_port), ("peer port", m.peer_port))))
    # Two members on one machine (a test bed) must not share a directory either.
    _refuse_duplicates(origin, (((m.host, path), f"{m.name}'s {kind} {path}") for m in members
                                for kind, path in (("data-dir", m.data_dir), ("wal-dir", m.wal_dir)) if path))
    return members


def _refuse_duplicates(origin: str, keyed: Iterable[tuple[tuple[object, ...], str]]) -> None:
    seen: dict[tuple[object, ...], str] = {}
    for key, what in keyed:
        if key in seen:
            raise DescriptionError(f"{origin}: duplicate: {seen[key]} and {what}")
        seen[key] = what


def _member(entry: object, top: Mapping[str, object], where: str) -> MemberSpec:
    fields = _mapping(entry, where, "a member", _MEMBER_KEYS)
    name = _text(fields, "name", where)
    if name is None or not _NAME.fullmatch(name):
        raise DescriptionError(f"{where}: name: letters, digits, '.', '_' and '-', "
                               f"starting with a letter or digit (got {name!r})")
    where = f"{where} ({name})"
    user = _user(fields, top, where)
    data_dir = _directory(fields, top, "data-dir", name, where, DEFAULT_DATA_DIR)
    wal_dir = _directory(fields, top, "wal-dir", name, where, "")
    if wal_dir and wal_dir == data_dir:
        raise DescriptionError(f"{where}: wal-dir: leave it out to keep the WAL in the data dir")
    return MemberSpec(name, _host(fields.get("host"), where),
                      _port(fields, top, "client-port", where, DEFAULT_CLIENT_PORT),
                      _port(fields, top, "peer-port", where, DEFAULT_PEER_PORT),
                      data_dir, wal_dir, user)


def _user(fields: Mapping[str, object], top: Mapping[str, object], where: str) -> str:
    user = _inherited(fields, top, "user", where, DEFAULT_USER)
    if not _USER.fullmatch(user):
        raise DescriptionError(f"{where}: user: {user!r} is not a user name")
    return user


def _host(value: object, where: str) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise DescriptionError(f"{where}: host: {value!r} is not an IP address "
                               "(petcd listens on its URLs' hosts, and cannot bind a name)") from None
    if address.is_unspecified:
        raise DescriptionError(f"{where}: host: {value} is not a member's address: "
                               "peers and clients are told to dial it")
    return str(address)


def _port(fields: Mapping[str, object], top: Mapping[str, object], key: str, where: str,
          default: int) -> int:
    value = fields.get(key, top.get(key, default))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise DescriptionError(f"{where}: {key}: {value!r} is not a port (1-65535)")
    return value


def _directory(fields: Mapping[str, object], top: Mapping[str, object], key: str, name: str,
               where: str, default: str) -> str:
    path = _inherited(fields, top, key, where, default).replace("{name}", name)
    return _absolute(path, f"{where}: {key}") if path else ""


def _absolute(path: str, where: str) -> str:
    # Units list paths separated by spaces (RequiresMountsFor=), and shell lines print them.
    if not PurePosixPath(path).is_absolute() or any(c.isspace() for c in path):
        raise DescriptionError(f"{where}: {path!r} is not an absolute path without spaces")
    return path


def _settings(value: object, origin: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    where = f"{origin}: settings"
    if not isinstance(value, dict):
        raise DescriptionError(f"{where}: a mapping of petcd flag names to values")
    pairs = []
    for flag, setting in value.items():
        if flag in DERIVED_FLAGS:
            raise DescriptionError(f"{where}: {flag}: set by the description itself, not in settings")
        if flag not in FLAGS_BY_NAME:
            raise DescriptionError(f"{where}: {flag!r} is not a petcd flag (see petcd --help)")
        pairs.append((str(flag), _scalar(setting, f"{where}: {flag}")))
    return tuple(pairs)


def _backup(top: Mapping[str, object], origin: str) -> BackupSpec | None:
    if top.get("backup") is None:
        return None
    where = f"{origin}: backup"
    fields = _mapping(top["backup"], where, "the backup", _BACKUP_KEYS)
    user = _user(fields, top, where)
    directory = _absolute(_text(fields, "dir", where) or "", f"{where}: dir")
    hours, keep = fields.get("every-hours", 24), fields.get("keep", 7)
    if isinstance(hours, bool) or not isinstance(hours, int) or hours not in BACKUP_HOURS:
        raise DescriptionError(f"{where}: every-hours: one of {', '.join(map(str, BACKUP_HOURS))} "
                               f"(a whole divisor of a day), not {hours!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise DescriptionError(f"{where}: keep: how many snapshots to keep, at least 1 (got {keep!r})")
    return BackupSpec(directory, hours, keep, user)


def _mapping(value: object, where: str, what: str, keys: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise DescriptionError(f"{where}: {what} must be a YAML mapping")
    unknown = [str(k) for k in value if k not in keys]
    if unknown:
        raise DescriptionError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(keys)})")
    return value


def _text(fields: Mapping[str, object], key: str, where: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise DescriptionError(f"{where}: {key}: expected text, not {value!r}")
    return value


def _inherited(fields: Mapping[str, object], top: Mapping[str, object], key: str, where: str,
               default: str) -> str:
    """The member's own value, else the description's, else the default."""
    own = _text(fields, key, where)
    if own is not None:
        return own
    shared = _text(top, key, where)
    return default if shared is None else shared


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):  # YAML's true/false: petcd's boolean flags read them
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DescriptionError(f"{where}: expected one value (lists as one comma-separated string, as etcd's)")
