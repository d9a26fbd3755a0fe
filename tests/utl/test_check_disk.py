"""petcdutl check disk: the fdatasync latency and write throughput of the WAL's
directory, with a verdict against etcd's guidance (p99 fdatasync under 10 ms) and
etcdctl check perf's exit code; on this machine's disk and on a throttled one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from petcd.client.utl import main
from tests.utl.slow_disk import SlowDiskUnavailable, slow_disk
from tests.utl.tools import COMMAND_TIMEOUT_S, petcdutl

FAST = ("--count", "200", "--size-bytes", str(4 << 20))  # a second at most on a real disk
SIMPLE = re.compile(
    r"directory: (?P<dir>.+)\n"
    r"fdatasync after 2300-byte writes: (?P<count>\d+) in [\d.]+s, p50 (?P<p50>[\d.]+) ms, "
    r"p99 (?P<p99>[\d.]+) ms, max (?P<max>[\d.]+) ms\n"
    r"sequential write: (?P<bytes>\d+) bytes in 1 MiB blocks and one fsync in [\d.]+s, "
    r"(?P<mibs>[\d.]+) MiB/s\n"
    r"(?P<word>PASS|FAIL): 99th percentile fdatasync (?P=p99) ms "
    r"\(etcd's guidance: under 10 ms\)\n")


def _petcdutl_as(wrapper: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """petcdutl run through `wrapper` (a command that execs its arguments)."""
    script = "from petcd.client.utl.main import main; main()"
    return subprocess.run([*wrapper, sys.executable, "-c", script, *args],
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def _in_process(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """petcdutl's main without a new interpreter: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["petcdutl", *args])
    with pytest.raises(SystemExit) as exited:
        main.main()
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def test_this_machine_s_disk_gets_figures_and_a_verdict(tmp_path):
    done = petcdutl("check", "disk", "--data-dir", str(tmp_path), *FAST)
    found = SIMPLE.fullmatch(done.stdout)
    assert found, done.stdout + done.stderr
    assert (found["dir"], found["count"], found["bytes"]) == (str(tmp_path), "200", str(4 << 20))
    assert float(found["p50"]) <= float(found["p99"]) <= float(found["max"])
    assert float(found["mibs"]) > 0
    assert done.returncode == (0 if found["word"] == "PASS" else 1), done.stderr
    assert list(tmp_path.iterdir()) == []  # its scratch files are gone


def test_json_measures_the_wal_dir_and_leaves_its_files_alone(tmp_path):
    wal_dir = tmp_path / "m1.petcd" / "member" / "wal"
    wal_dir.mkdir(parents=True)
    segment = wal_dir / "0000000000000000-0000000000000000.wal"
    segment.write_bytes(b"a member's log")
    done = petcdutl("check", "disk", "--data-dir", str(tmp_path / "m1.petcd"), "-w", "json",
                    "--count", "50", "--size-bytes", "3000000")
    found = json.loads(done.stdout)
    assert found["directory"] == str(wal_dir)
    assert found["fdatasync"]["count"] == 50 and found["fdatasync"]["recordBytes"] == 2300
    assert found["sequentialWrite"]["sizeBytes"] == 3000000
    assert found["pass"] == (found["fdatasync"]["p99Ms"] < found["guidanceP99Ms"] == 10)
    assert done.returncode == (0 if found["pass"] else 1), done.stderr
    assert list(wal_dir.iterdir()) == [segment] and segment.read_bytes() == b"a member's log"
    elsewhere = tmp_path / "wal-disk"
    elsewhere.mkdir()
    own = petcdutl("check", "disk", "--data-dir", str(tmp_path / "m1.petcd"), "--wal-dir",
                   str(elsewhere), "-w", "json", "--count", "5", "--size-bytes", "1")
    assert json.loads(own.stdout)["directory"] == str(elsewhere)


def test_duration_bounds_the_fdatasyncs(tmp_path):
    done = petcdutl("check", "disk", "--data-dir", str(tmp_path), "-w", "json",
                    "--count", "100000000", "--duration", "300ms", "--size-bytes", "1")
    found = json.loads(done.stdout)
    assert 1 <= found["fdatasync"]["count"] < 100000000
    assert found["fdatasync"]["elapsedS"] < 2.0  # 300 ms and one last fdatasync, on a busy disk


def test_bad_input_is_one_error_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def petcdutl_check_disk(*args: str) -> tuple[int, str, str]:
        return _in_process(capsys, monkeypatch, "check", "disk", *args)

    assert petcdutl_check_disk("--data-dir", str(tmp_path / "nodir")) == (
        1, "", f"Error: stat {tmp_path / 'nodir'}: no such file or directory\n")
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert petcdutl_check_disk("--wal-dir", str(a_file)) == (
        1, "", f"Error: {a_file} is not a directory\n")
    assert petcdutl_check_disk("--data-dir", str(tmp_path), "--count", "0") == (
        128, "", "Error: --count, --size-bytes and --duration must be positive\n")
    assert petcdutl_check_disk("--data-dir", str(tmp_path), "-w", "table") == (
        4, "", "Error: unsupported output format\n")
    assert list(tmp_path.iterdir()) == [a_file]


def test_a_directory_it_may_not_write_in(tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    # Root writes anywhere; without CAP_DAC_OVERRIDE it meets the mode bits as anyone.
    wrapper = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        wrapper = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    denied = _petcdutl_as(wrapper, "check", "disk", "--data-dir", str(read_only))
    assert (denied.returncode, denied.stdout, denied.stderr) == (
        1, "", f"Error: cannot measure {read_only}: permission denied\n")
    assert list(read_only.iterdir()) == []


def test_a_throttled_disk_fails(tmp_path):
    try:
        with slow_disk(tmp_path, write_iops=25) as disk:
            done = _petcdutl_as(disk.wrap([]), "check", "disk", "--data-dir",
                                str(disk.mount_dir), "--count", "15", "--size-bytes", "1")
            left = sorted(path.name for path in disk.mount_dir.iterdir())
    except SlowDiskUnavailable as exc:
        pytest.skip(f"no throttled disk on this machine: {exc}")
    found = SIMPLE.fullmatch(done.stdout)
    assert found, done.stdout + done.stderr
    assert found["word"] == "FAIL" and float(found["p99"]) > 20, done.stdout
    assert done.returncode == 1
    assert left == ["lost+found"]
