"""scripts/launch for real: systemd's own checker loads its units, the files it writes
start a three-member cluster on loopback, and its backup command, run twice with
keep: 1, leaves one snapshot that petcdutl reads and restores."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.members import Member, member_socket_dir, wait_until
from tests.ports import free_ports
from tests.scripts.launch_tools import (PETCD, THREE_MEMBERS, checkout_with_venv, describe, env_of,
                                        exec_start, launch, run_script)
from tests.utl.tools import petcdutl

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
COMMAND_TIMEOUT_S = 60
LEADER_TIMEOUT_S = 30
NAMES = ("infra1", "infra2", "infra3")


@pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(), reason="systemd-analyze missing (CI installs systemd)")
def test_systemd_analyze_verify_accepts_every_unit_written(tmp_path):
    out = tmp_path / "out"
    assert launch(THREE_MEMBERS, out).code == 0
    units = [out / name / "petcd.service" for name in NAMES]
    units += [out / "backup" / "petcd-backup.service", out / "backup" / "petcd-backup.timer"]
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", *map(str, units)], capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S)
    assert (done.returncode, done.stderr) == (0, "")


def loopback_description(tmp_path: Path, ports: list[int]) -> str:
    members = "".join(f"  - {{name: {name}, host: 127.0.0.1, client-port: {ports[2 * i]}, "
                      f"peer-port: {ports[2 * i + 1]}}}\n" for i, name in enumerate(NAMES))
    return (f"token: launch-{tmp_path.name}\n"
            f"data-dir: {tmp_path}/{{name}}.petcd\n"
            "members:\n" + members.replace("infra2,", f"infra2, wal-dir: {tmp_path}/wal/infra2,") +
            "settings: {heartbeat-interval: 50, election-timeout: 500}\n"
            f"backup: {{dir: {tmp_path}/backups, every-hours: 1, keep: 1}}\n")


def start_member(out: Path, name: str, ports: tuple[int, int], tmp_path: Path, from_env: bool) -> Member:
    """As petcd.service runs it (its ExecStart, on the member's own copy of the config),
    or with no flags and the PETCD_* file, as another supervisor would."""
    member = Member(name, *ports, tmp_path / f"{name}.petcd", tmp_path / f"{name}.log")
    program, flag, _ = shlex.split(exec_start(out / name / "petcd.service"))
    argv, env = ([program], env_of(out / name / "petcd.env")) if from_env else \
        ([program, flag, str(out / name / "petcd.conf.yml")], {})
    with open(member.log_path, "ab") as log:
        member.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env={**os.environ, **env})
    return member


def one_leader(members: list[Member]) -> bool:
    leaders = {m.status().get("leader") for m in members}
    return len(leaders) == 1 and leaders != {None}


def run_backup(out: Path) -> list[Path]:
    command = shlex.split(exec_start(out / "backup" / "petcd-backup.service"))
    done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return sorted((out.parent / "backups").glob("petcd-snapshot-*.db"))


def test_the_written_files_start_a_cluster_and_the_backup_keeps_the_newest_snapshot(tmp_path):
    out, etc = tmp_path / "out", tmp_path / "etc"
    ports = free_ports(2 * len(NAMES))
    description = loopback_description(tmp_path, ports)
    checkout = checkout_with_venv(tmp_path / "checkout", sys.executable)
    done = run_script(checkout / "scripts" / "launch", str(describe(description, out)), "--out", str(out),
                      "--petcd", PETCD, "--config-dir", str(etc))
    assert done.returncode == 0, done.stderr
    for directory in (*(tmp_path / f"{n}.petcd" for n in NAMES), tmp_path / "wal" / "infra2"):
        directory.mkdir(mode=0o700, parents=True)  # `install -d -m 700`, as the printed steps do
    etc.mkdir()
    shutil.copy2(out / "backup" / "petcd-backup.sh", etc / "petcd-backup.sh")
    members = [start_member(out, name, (ports[2 * i], ports[2 * i + 1]), tmp_path, from_env=name == "infra3")
               for i, name in enumerate(NAMES)]
    try:
        assert wait_until(lambda: one_leader(members), LEADER_TIMEOUT_S), members[0].log_text()[-2000:]
        revision = int(members[0].put("deployed", "yes")["header"]["revision"])
        assert members[2].get("deployed") == "yes"
        assert any((tmp_path / "wal" / "infra2").iterdir())  # infra2's WAL on its own dir
        [first] = run_backup(out)
        time.sleep(1.1)  # snapshots are named to the second
        [second] = run_backup(out)
    finally:
        for member in members:
            if member.alive:
                member.stop()
            shutil.rmtree(member_socket_dir(member), ignore_errors=True)
    assert second != first
    status = petcdutl("snapshot", "status", str(second), "-w", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["revision"] == revision
    restored = petcdutl("snapshot", "restore", str(second), "--data-dir", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "restored" / "member").is_dir()
