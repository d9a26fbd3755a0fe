"""Run on their own, with no virtual environment active, scripts/dev-cluster and
scripts/launch use the petcd that scripts/run installed in the checkout's .venv, or
say in one line how to install it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cluster.members import wait_until
from tests.scripts.launch_tools import checkout_with_venv, run_script

SYSTEM_PYTHON = Path("/usr/bin/python3")  # what `#!/usr/bin/env python3` finds on a plain PATH
STUB_TIMEOUT_S = 10

needs_a_plain_python = pytest.mark.skipif(
    not SYSTEM_PYTHON.exists() or (SYSTEM_PYTHON.parent / "petcd").exists(),
    reason="needs /usr/bin/python3 without a petcd beside it")


@needs_a_plain_python
def test_dev_cluster_starts_the_petcd_in_the_checkouts_venv(tmp_path):
    checkout = checkout_with_venv(tmp_path / "checkout", python=None)
    stub = checkout / ".venv" / "bin" / "petcd"
    stub.parent.mkdir(parents=True)
    stub.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/petcd-args\n')
    stub.chmod(0o755)
    data = tmp_path / "dev"
    data.mkdir()
    (data / "cluster.json").write_text(json.dumps({"members": 1}))
    done = run_script(checkout / "scripts" / "dev-cluster", "restart", "1", "--dir", str(data))
    assert done.returncode == 0, done.stderr
    args = tmp_path / "petcd-args"  # wait_until retries while the file is missing
    assert wait_until(lambda: "--name infra1 " in args.read_text(), STUB_TIMEOUT_S)


@needs_a_plain_python
def test_dev_cluster_without_petcd_says_how_to_install_it_and_writes_nothing(tmp_path):
    checkout = checkout_with_venv(tmp_path / "checkout", python=None)
    done = run_script(checkout / "scripts" / "dev-cluster", "start", "--dir", str(tmp_path / "dev"))
    assert done.returncode == 1
    assert done.stderr == (f"dev-cluster: petcd is not installed: run scripts/run once (it installs "
                           f"petcd into {checkout / '.venv'}), or pip install -e {checkout}\n")
    assert not (tmp_path / "dev").exists()


def test_launch_without_petcd_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # run_script passes os.environ on
    assert "PYTHONPATH" not in os.environ
    checkout = checkout_with_venv(tmp_path / "checkout", python=None)
    done = run_script(checkout / "scripts" / "launch", "cluster.yml", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr == (f"scripts/launch: petcd is not installed: run scripts/run once (it installs "
                           f"petcd into {checkout}/.venv), or pip install {checkout}\n")
