"""Real etcd clusters for tests (Debian's /usr/bin/etcd), on free loopback ports.

    cluster = EtcdCluster(tmp_path, members=3)
    cluster.start()            # returns once every member answers /health
    cluster.endpoints          # ["127.0.0.1:PORT", ...] (gRPC and HTTP)
    cluster.reset()            # stop, wipe the data, start again: same ports, names
                               # and token, so the same member and cluster IDs
    cluster.stop_member("m2")  # one member down, and back (once healthy)
    cluster.start_member("m2")
    cluster.stop()

Any cluster kind that offers this interface (start, stop, reset, endpoints,
member_names, stop_member, start_member) can run the tests in tests/client;
tests/compat may reuse it too.
Every wait is bounded; a member that does not come up fails with its log's tail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_ports

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
TOKEN = "petcd-client-tests"


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    tls: ssl.SSLContext | None = None  # https client URL (its flags in extra_args)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, extra_args: list[str]) -> None:
        args = [ETCD, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-token", TOKEN,
                "--initial-cluster-state", "new", *extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1,
                                        context=self.tls) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdCluster:
    kind = "etcd"

    def __init__(self, base_dir: Path, members: int = 1,
                 extra_args: list[str] | None = None, tls: ssl.SSLContext | None = None) -> None:
        ports = free_ports(2 * members)
        self.extra_args = list(extra_args or [])
        self.members = [
            EtcdMember(f"m{i + 1}", ports[2 * i], ports[2 * i + 1],
                       base_dir / f"m{i + 1}.etcd", base_dir / f"m{i + 1}.log", tls=tls)
            for i in range(members)]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def start(self) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.start(initial, self.extra_args)
        deadline = time.monotonic() + START_TIMEOUT_S
        for member in self.members:
            while not member.healthy():
                if member.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"etcd member {member.name} did not become "
                                       f"healthy:\n{member.log_tail()}")
                time.sleep(0.05)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def stop_member(self, name: str) -> None:
        self._member(name).stop()

    def start_member(self, name: str) -> None:
        """Start a stopped member again on its data; returns once it is healthy."""
        member = self._member(name)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        member.start(initial, self.extra_args)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not member.healthy():
            if member.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd member {name} did not come back:\n"
                                   f"{member.log_tail()}")
            time.sleep(0.05)

    def _member(self, name: str) -> EtcdMember:
        return next(m for m in self.members if m.name == name)

    def reset(self) -> None:
        self.stop()
        for member in self.members:
            shutil.rmtree(member.data_dir, ignore_errors=True)
        self.start()
