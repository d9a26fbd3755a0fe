"""Real petcd members for tests: processes on loopback ports, talked to over HTTP.

Each member is the real `petcd` console script in its own process group, with its own
data dir under the test's tmp dir and free ports. The helpers speak etcd's JSON
gateway (base64 keys and values) the way a user's curl would. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petcd.actors.bus.addresses import socket_dir
from petcd.actors.member import default_run_dir

from tests.ports import free_ports

PETCD = str(Path(sys.executable).parent / "petcd")
HEARTBEAT_MS = 50
ELECTION_MS = 500


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    initial_cluster: str = ""  # how a member added at runtime was told to start
    scheme: str = "http"  # of the client URL; "https" needs TLS flags in extra_args
    tls: ssl.SSLContext | None = None  # what the helpers below connect with over https
    peer_scheme: str = "http"  # https: peer TLS (its flags in extra_args)
    host: str = "127.0.0.1"  # of both URLs
    command_prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec <ns>`

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.peer_scheme}://{self.host}:{self.peer_port}"

    def start(self, initial_cluster: str, token: str, state: str = "new") -> None:
        args = [*self.command_prefix, PETCD, "--name", self.name, "--data-dir", str(self.data_dir),
                "--initial-cluster-state", state,
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-token", token,
                "--heartbeat-interval", str(HEARTBEAT_MS),
                "--election-timeout", str(ELECTION_MS), *self.extra_args]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env={**os.environ, **self.env})

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole member (supervisor and every actor) at once."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def actor_pids(self) -> dict[str, int]:
        """The pids of the actor processes, from the supervisor's last "ready" line."""
        pids: dict[str, int] = {}
        for line in self.log_text().splitlines():
            if '"ready to serve client requests"' in line:
                pids = json.loads(line)["pids"]
        return pids

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The member's JSON log lines, parsed; only those of `event` if given."""
        lines = [json.loads(x) for x in self.log_text().splitlines() if x.startswith("{")]
        return [x for x in lines if event is None or x.get("event") == event]

    # -- etcd's JSON gateway -------------------------------------------------------

    def call(self, path: str, body: dict[str, Any] | bytes, timeout_s: float = 10.0) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.client_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s, context=self.tls) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            raise HttpError(err.code, json.loads(err.read() or b"{}")) from None

    def get_json(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.client_url + path, timeout=5, context=self.tls) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def put(self, key: str, value: str) -> dict:
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def get(self, key: str, serializable: bool = False) -> str | None:
        resp = self.call("/v3/kv/range", {"key": b64(key), "serializable": serializable})
        kvs = resp.get("kvs", [])
        return unb64(kvs[0].get("value", "")) if kvs else None

    def count(self, prefix: str, serializable: bool = False) -> int:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        resp = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end),
                                          "count_only": True, "serializable": serializable})
        return int(resp.get("count", "0"))

    def status(self) -> dict:
        return self.call("/v3/maintenance/status", {}, timeout_s=2)


class Cluster:
    def __init__(self, root: Path, size: int, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, scheme: str = "http",
                 tls: ssl.SSLContext | None = None, peer_scheme: str = "http") -> None:
        ports = free_ports(2 * size)
        self.token = f"test-{os.getpid()}-{root.name}"
        self.members = [
            Member(f"m{i + 1}", ports[2 * i], ports[2 * i + 1], root / f"m{i + 1}.petcd",
                   root / f"m{i + 1}.log", list(extra_args or []), dict(env or {}),
                   scheme=scheme, tls=tls, peer_scheme=peer_scheme)
            for i in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, member: Member | None = None) -> None:
        for m in [member] if member else self.members:
            m.start(self.initial_cluster, self.token)

    def add_member(self, via: Member, learner: bool = False, start: bool = True) -> Member:
        """MemberAdd through `via` (a new name and ports), then start the new member
        as the runbook says: --initial-cluster-state existing, and the
        --initial-cluster the response lists."""
        client_port, peer_port = free_ports(2)
        root = self.members[0].data_dir.parent
        name = f"m{len(self.members) + 1}"
        first = self.members[0]
        new = Member(name, client_port, peer_port, root / f"{name}.petcd", root / f"{name}.log",
                     list(first.extra_args), dict(first.env), scheme=first.scheme,
                     tls=first.tls, peer_scheme=first.peer_scheme)
        resp = via.call("/v3/cluster/member/add", {"peerURLs": [new.peer_url],
                                                    "isLearner": learner})
        self.members.append(new)
        names = {m.peer_url: m.name for m in self.members}
        new.initial_cluster = ",".join(
            f"{names[u]}={u}" for m in resp["members"] for u in m["peerURLs"])
        if start:
            new.start(new.initial_cluster, self.token, state="existing")
        return new

    def stop(self) -> None:
        for m in self.members:
            if m.alive:
                try:
                    m.stop()
                except subprocess.TimeoutExpired:
                    pass

    def leader(self) -> Member | None:
        """The member every live member agrees leads, if any."""
        ids = set()
        by_id = {}
        for m in self.members:
            if not m.alive:
                continue
            try:
                s = m.status()
            except (OSError, HttpError):
                return None
            ids.add(s.get("leader"))
            by_id[s["header"]["member_id"]] = m
        if len(ids) != 1:
            return None
        return by_id.get(ids.pop())

    def wait_leader(self, timeout_s: float = 30.0) -> Member:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        logs = "\n".join(f"--- {m.name}\n{m.log_text()[-3000:]}" for m in self.members)
        raise AssertionError(f"no leader within {timeout_s}s\n{logs}")


@contextlib.contextmanager
def running(root: Path, size: int, extra_args: list[str] | None = None,
            env: dict[str, str] | None = None, scheme: str = "http",
            tls: ssl.SSLContext | None = None, peer_scheme: str = "http") -> Iterator[Cluster]:
    """A started cluster (the one way tests start one), stopped at the end."""
    c = Cluster(root, size, extra_args, env, scheme, tls, peer_scheme)
    c.start()
    try:
        yield c
    finally:
        c.stop()
        for m in c.members:  # what a SIGKILLed member left; a stopped one removes it
            shutil.rmtree(member_socket_dir(m), ignore_errors=True)


def member_socket_dir(m: Member) -> Path:
    """Where the member's actors' ipc sockets (and its supervisor's lock) are."""
    return Path(socket_dir(default_run_dir(m.data_dir)))


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (OSError, HttpError):
            pass
        time.sleep(interval_s)
    return False
