"""Command-line clients against petcd: the real etcdctl (Debian's etcd-client,
installed by .ci/run) and petcdctl, run the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.client.petcd_server import PetcdCluster
from tests.cluster.members import Cluster, Member

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
PETCDCTL = str(Path(sys.executable).with_name("petcdctl"))  # installed with petcd
COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """etcdctl's `Error: ...` line (its retry warnings are JSON log lines)."""
        lines = [ln for ln in self.err.splitlines() if ln.startswith("Error: ")]
        return lines[-1] if lines else ""


def require() -> None:
    if not os.access(ETCDCTL, os.X_OK):
        raise RuntimeError(f"{ETCDCTL} not found: install Debian's etcd-client (.ci/run does)")


def endpoints(members: list[Member]) -> str:
    return ",".join(f"127.0.0.1:{m.client_port}" for m in members)


@dataclass(frozen=True)
class Ctl:
    """One tool: `ctl(target, *args)` runs it against a cluster, a member or members."""

    binary: str

    @property
    def name(self) -> str:
        return Path(self.binary).name

    def __call__(self, target: Cluster | Member | list[Member], *args: str,
                 stdin: str | bytes = b"", timeout_s: float = COMMAND_TIMEOUT_S) -> Result:
        if isinstance(target, Cluster):
            members = target.members
        elif isinstance(target, Member):
            members = [target]
        else:
            members = target
        data = stdin.encode() if isinstance(stdin, str) else stdin
        proc = subprocess.run(
            [self.binary, f"--endpoints={endpoints(members)}", "--dial-timeout=5s",
             "--command-timeout=20s", *args],
            check=False, input=data, capture_output=True, timeout=timeout_s,
            env={**os.environ, "ETCDCTL_API": "3"})
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))


def on_both_servers(tmp_path_factory: Any, scenario: Callable[[list[str]], dict[str, object]]
                    ) -> dict[str, dict[str, object]]:
    """`scenario(endpoints)` run on a fresh 3-member etcd, then on a fresh 3-member
    petcd: what each saw, by server kind, to compare the real etcdctl's output."""
    if not etcd_available():
        raise RuntimeError("/usr/bin/etcd and /usr/bin/etcdctl are needed (.ci/run installs "
                           "Debian's etcd-server and etcd-client)")
    results = {}
    for kind in (EtcdCluster, PetcdCluster):
        cluster = kind(tmp_path_factory.mktemp(kind.kind), 3)
        cluster.start()
        try:
            results[kind.kind] = scenario(cluster.endpoints)
        finally:
            cluster.stop()
    return results
