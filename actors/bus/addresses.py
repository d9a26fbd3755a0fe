"""Where every socket of a member lives, derived from its run directory.

Each actor of a member (and its supervisor) owns one inbox, a PULL socket bound on

    ipc://<run_dir>/<name>.sock        e.g. ipc:///var/lib/petcd/run/raft.sock

so any actor can reach any other knowing only the run directory and a name: "raft",
"wal", "apply", "network", "supervisor" (`ENDPOINTS`), or any other short lowercase
name (up to `MAX_NAME_CHARS`). The run directory is resolved (`os.path.realpath`)
first, so "./run", "/srv/m1/run" and a symlink to it all name the same sockets.

A Unix socket path is limited by `sockaddr_un.sun_path` (108 bytes on Linux, with the
trailing NUL: 107 usable; 104 on the BSDs and macOS). When `<run_dir>/<name>.sock`
could be longer than `IPC_PATH_MAX_BYTES` for a name of `MAX_NAME_CHARS`, every socket
of that member moves to

    ipc:///tmp/petcd-<uid>-<sha256(run_dir)[:16]>/<name>.sock

which is deterministic (same run dir, same user: same path), short (under 60 bytes),
and distinct per run dir. The decision depends on the run dir only, never on the name,
so a member's sockets always sit together.

Whoever binds creates the directory (mode 0700). In a world-writable parent such as
/tmp it must be a real directory owned by us (`prepare_ipc_dir`): a local user cannot
pre-create it and receive a member's traffic.

Between members: the peer transport listens with ZeroMQ TCP on the host:port of the
member's peer URL, `http://10.0.0.1:2380` -> `tcp://10.0.0.1:2380` (`peer_address`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from urllib.parse import urlsplit

ACTORS: tuple[str, ...] = ("raft", "wal", "apply", "network")
# Every process of a member with an inbox: the four actors and their supervisor.
ENDPOINTS: tuple[str, ...] = ACTORS + ("supervisor",)
# Any short name may have an inbox (tools, tests); the longest one decides whether the
# member's sockets fit in its run dir.
MAX_NAME_CHARS = 16
_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_NAME_CHARS - 1}}}")

# 108 bytes of sun_path minus the NUL terminator. Kept at Linux's value; a member on a
# BSD with a run dir between 104 and 107 bytes long would need the fallback sooner.
IPC_PATH_MAX_BYTES = 107

FALLBACK_ROOT = "/tmp"

_IPC = "ipc://"


def _resolved(run_dir: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(run_dir))


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"inbox name {name!r} is not 1 to {MAX_NAME_CHARS} lowercase "
                         f"letters, digits or _ (known: {', '.join(ENDPOINTS)})")


def fallback_dir(run_dir: str | os.PathLike[str]) -> str:
    """The short directory used instead of `run_dir` when its socket paths are too long."""
    digest = hashlib.sha256(os.fsencode(_resolved(run_dir))).hexdigest()[:16]
    return os.path.join(FALLBACK_ROOT, f"petcd-{os.getuid()}-{digest}")


def socket_dir(run_dir: str | os.PathLike[str]) -> str:
    """The directory holding the member's inbox sockets: the run dir if a socket with
    the longest allowed name fits in `IPC_PATH_MAX_BYTES`, else `fallback_dir`."""
    resolved = _resolved(run_dir)
    longest = os.path.join(resolved, "x" * MAX_NAME_CHARS + ".sock")
    return resolved if len(os.fsencode(longest)) <= IPC_PATH_MAX_BYTES else \
        fallback_dir(resolved)


def actor_address(run_dir: str | os.PathLike[str], actor: str) -> str:
    """`ipc://...` address of the inbox named `actor` of the member at `run_dir`."""
    _check_name(actor)
    path = os.path.join(socket_dir(run_dir), f"{actor}.sock")
    assert len(os.fsencode(path)) <= IPC_PATH_MAX_BYTES, path
    return _IPC + path


def actor_addresses(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    return {name: actor_address(run_dir, name) for name in ENDPOINTS}


def ipc_path(address: str) -> str | None:
    """The filesystem path of an `ipc://` address; None for other transports and for
    Linux abstract sockets (`ipc://@name`)."""
    if not address.startswith(_IPC):
        return None
    path = address[len(_IPC):]
    return None if path.startswith("@") else path


def prepare_ipc_dir(address: str) -> None:
    """Make sure the directory of an `ipc://` address exists before binding on it.

    Created mode 0700. In a world-writable parent (/tmp) the directory must be a real
    directory owned by us: one that someone else created there first is refused.
    """
    path = ipc_path(address)
    if path is not None:
        prepare_socket_dir(os.path.dirname(path))


def prepare_socket_dir(directory: str) -> None:
    """`prepare_ipc_dir` for a directory of sockets."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.stat(os.path.dirname(directory)).st_mode & stat.S_IWOTH:
        return
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{directory} is not a directory owned by uid "
                              f"{os.getuid()}; refusing to put member sockets there")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)


def peer_address(peer_url: str) -> str:
    """ZeroMQ address of a member's peer transport from its peer URL.

    `http://127.0.0.1:2380` -> `tcp://127.0.0.1:2380`; `http://[::1]:2380` ->
    `tcp://[::1]:2380`; a host name stays a host name (ZeroMQ resolves it).
    The port must be given. `https://` is refused: ZeroMQ itself does not speak TLS
    (TLS peers go through the relay, peertls.py), and silently downgrading a URL that
    asks for it would be worse.
    """
    if urlsplit(peer_url.strip()).scheme != "http":
        raise ValueError(f"peer URL {peer_url!r}: only http:// is supported by the "
                         "peer transport without TLS")
    host, port = peer_host_port(peer_url)
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def peer_host_port(peer_url: str) -> tuple[str, int]:
    """(host, port) of an http:// or https:// peer URL (an IPv6 host without brackets)."""
    parts = urlsplit(peer_url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"peer URL {peer_url!r}: the scheme must be http or https")
    try:
        port = parts.port
    except ValueError as err:  # urlsplit raises on a non-numeric or out-of-range port
        raise ValueError(f"peer URL {peer_url!r}: {err}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"peer URL {peer_url!r} needs a host and a port, "
                         "e.g. http://127.0.0.1:2380")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"peer URL {peer_url!r}: only scheme://host:port is allowed")
    return parts.hostname, port
