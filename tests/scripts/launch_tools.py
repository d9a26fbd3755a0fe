"""scripts/launch for tests: a description written to a file, the tool run on it."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from petcd.client.launch.main import main

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SCRIPT_TIMEOUT_S = 30
# Where the venv's console scripts are: a petcd that systemd-analyze finds executable.
PETCD = str(Path(sys.executable).parent / "petcd")

THREE_MEMBERS = """\
token: petcd-test
members:
  - {name: infra1, host: 10.0.1.10}
  - {name: infra2, host: 10.0.1.11, wal-dir: /mnt/nvme/petcd-wal}
  - {name: infra3, host: 10.0.1.12}
backup: {dir: /var/backups/petcd, every-hours: 6, keep: 7}
"""


@dataclass(frozen=True)
class Launched:
    code: int
    stdout: str
    stderr: str


def describe(description: str, out: Path) -> Path:
    path = out.parent / f"{out.name}.yml"
    path.write_text(description)
    return path


def launch(description: str, out: Path, *options: str) -> Launched:
    """The tool's main, in this process (a process each costs a second under load)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [str(describe(description, out)), "--out", str(out), "--petcd", PETCD, *options]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return Launched(code, stdout.getvalue(), stderr.getvalue())


def checkout_with_venv(root: Path, python: str | None) -> Path:
    """A checkout's scripts/ beside a .venv whose python is `python` (None: no .venv),
    as scripts/run leaves one: the scripts find petcd from their own location."""
    (root / "scripts").mkdir(parents=True)
    for name in ("launch", "dev-cluster"):
        shutil.copy2(SCRIPTS / name, root / "scripts" / name)
    if python is not None:
        bin_dir = root / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").write_text(f'#!/bin/sh\nexec {python} "$@"\n')
        (bin_dir / "python").chmod(0o755)
    return root


def run_script(script: Path, *args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    """A script as an operator runs it: no virtual environment active, a plain PATH."""
    env = {**os.environ, "PATH": path}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env,
                          timeout=SCRIPT_TIMEOUT_S)


def env_of(path: Path) -> dict[str, str]:
    """An environment file as systemd's EnvironmentFile= (and `set -a; .`) reads it."""
    lines = (x for x in path.read_text().splitlines() if x and not x.startswith("#"))
    return dict(shlex.split(x)[0].split("=", 1) for x in lines)


def exec_start(unit: Path) -> str:
    [line] = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")
