"""Socket addresses derived from the run dir: every actor computes the same ones, and
they always fit in a Unix socket path."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest
import zmq

from petcd.actors.bus import addresses
from petcd.actors.bus.addresses import (ACTORS, ENDPOINTS, IPC_PATH_MAX_BYTES,
                                        MAX_NAME_CHARS, actor_address, actor_addresses,
                                        fallback_dir, ipc_path, peer_address,
                                        prepare_ipc_dir, socket_dir)
from petcd.actors.bus.sockets import Inbox, Outbox

LONGEST = "x" * MAX_NAME_CHARS


def sock_path_bytes(run_dir: str | Path, name: str) -> int:
    return len(os.fsencode(ipc_path(actor_address(run_dir, name)) or ""))


@pytest.fixture
def short_dir():
    # pytest's tmp_path can itself be too long for the cases that need a short one.
    path = tempfile.mkdtemp(prefix="pb-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cleanup_fallbacks():
    made: list[str] = []
    yield made.append
    for run_dir in made:
        shutil.rmtree(fallback_dir(run_dir), ignore_errors=True)


def test_one_inbox_per_actor_in_the_run_dir(short_dir):
    for actor in ACTORS:
        assert actor_address(short_dir, actor) == f"ipc://{short_dir}/{actor}.sock"
    assert set(actor_addresses(short_dir)) == set(ENDPOINTS)
    assert len(set(actor_addresses(short_dir).values())) == len(ENDPOINTS)


@pytest.mark.parametrize("name", ["", "Raft", "raft/../wal", "a b", LONGEST + "y", "1wal"])
def test_names_are_short_and_plain(short_dir, name):
    with pytest.raises(ValueError):
        actor_address(short_dir, name)


def test_relative_absolute_and_symlinked_run_dirs_agree(short_dir, monkeypatch):
    real = short_dir / "run"
    real.mkdir()
    link = short_dir / "link"
    link.symlink_to(real)
    monkeypatch.chdir(short_dir)
    expected = actor_address(real, "raft")
    assert actor_address("run", "raft") == expected
    assert actor_address(str(link), "raft") == expected
    assert actor_address(f"{real}/./", "raft") == expected


def test_a_long_run_dir_falls_back_to_a_short_deterministic_path():
    long_dir = "/srv/" + "very-long-directory-name/" * 8 + "member"
    addrs = actor_addresses(long_dir)
    assert socket_dir(long_dir) == fallback_dir(long_dir)
    assert fallback_dir(long_dir).startswith(f"/tmp/petcd-{os.getuid()}-")
    assert addrs == actor_addresses(long_dir)  # the same in every process
    assert len({os.path.dirname(a) for a in addrs.values()}) == 1  # sockets together
    assert sock_path_bytes(long_dir, LONGEST) <= IPC_PATH_MAX_BYTES
    assert fallback_dir(long_dir + "2") != fallback_dir(long_dir)


def test_the_limit_is_checked_in_bytes_at_the_exact_boundary(short_dir):
    def run_dir_with_longest_path(n_bytes: int) -> str:
        budget = n_bytes - len(os.fsencode(f"{short_dir}/")) - len(f"/{LONGEST}.sock")
        return f"{short_dir}/{'d' * budget}"

    fits = run_dir_with_longest_path(IPC_PATH_MAX_BYTES)
    assert socket_dir(fits) == fits
    assert sock_path_bytes(fits, LONGEST) == IPC_PATH_MAX_BYTES
    too_long = run_dir_with_longest_path(IPC_PATH_MAX_BYTES + 1)
    assert socket_dir(too_long) == fallback_dir(too_long)
    # Multi-byte names count in bytes, not characters.
    accented = f"{short_dir}/{'é' * 40}"
    assert len(accented) < IPC_PATH_MAX_BYTES - 30 < len(os.fsencode(accented))
    assert socket_dir(accented) == fallback_dir(accented)


def test_inboxes_under_a_long_run_dir_really_bind_and_talk(tmp_path, cleanup_fallbacks):
    long_dir = tmp_path / ("n" * 120)
    cleanup_fallbacks(long_dir)
    with Inbox.for_actor(long_dir, "raft") as inbox, Outbox(long_dir) as outbox:
        assert outbox.send("raft", "hello", [1, b"2"])
        assert inbox.drain(10, 2000) == [("hello", [1, b"2"])]
        info = os.stat(fallback_dir(long_dir))
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()


def test_a_socket_dir_in_tmp_that_is_not_ours_is_refused(short_dir, monkeypatch):
    os.chmod(short_dir, 0o1777)  # a /tmp of our own
    monkeypatch.setattr(addresses, "FALLBACK_ROOT", str(short_dir))
    long_dir = "/srv/" + "x" * 120
    target = fallback_dir(long_dir)
    elsewhere = short_dir / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, target)  # someone pointed our socket dir at theirs
    with pytest.raises(PermissionError):
        prepare_ipc_dir(actor_address(long_dir, "raft"))
    os.unlink(target)
    if os.getuid() == 0:  # only root can make a directory owned by someone else
        os.mkdir(target)
        os.chown(target, 12345, 12345)
        with pytest.raises(PermissionError):
            prepare_ipc_dir(actor_address(long_dir, "raft"))
        os.rmdir(target)
    os.mkdir(target, 0o755)  # ours but too open: tightened
    prepare_ipc_dir(actor_address(long_dir, "raft"))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700


def test_binding_over_a_live_inbox_is_refused_but_a_stale_file_is_reused(short_dir):
    with Inbox.for_actor(short_dir, "wal"):
        with pytest.raises(zmq.ZMQError) as err:
            Inbox.for_actor(short_dir, "wal")
        assert err.value.errno == zmq.EADDRINUSE
    path = ipc_path(actor_address(short_dir, "wal"))
    assert path is not None
    if os.path.exists(path):
        os.unlink(path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a socket file left by a crash: nobody accepts on it
    stale.close()
    assert os.path.exists(path)
    with Inbox.for_actor(short_dir, "wal"):
        pass


@pytest.mark.parametrize("url,expected", [
    ("http://127.0.0.1:2380", "tcp://127.0.0.1:2380"),
    ("http://10.0.0.7:12380/", "tcp://10.0.0.7:12380"),
    (" http://localhost:2380 ", "tcp://localhost:2380"),
    ("http://[::1]:2380", "tcp://[::1]:2380"),
    ("http://0.0.0.0:2380", "tcp://0.0.0.0:2380"),
])
def test_peer_urls_map_to_zeromq_tcp(url, expected):
    assert peer_address(url) == expected


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:2380", "unix://x:1", "127.0.0.1:2380", "http://127.0.0.1",
    "http://:2380", "http://127.0.0.1:notaport", "http://127.0.0.1:99999",
    "http://127.0.0.1:2380/path", "http://u:p@127.0.0.1:2380",
])
def test_bad_peer_urls_are_refused(url):
    with pytest.raises(ValueError):
        peer_address(url)
