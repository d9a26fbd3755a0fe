"""The real `etcdctl lease`, `lock` and `elect` against petcd behave as against a real
etcd: the same commands on a fresh 3-member cluster of each print the same bytes and
exit with the same codes, once lease IDs (chosen by each server) and the seconds a
lease has left are masked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from .etcdctl import ETCDCTL, on_both_servers

ENV = {**os.environ, "ETCDCTL_API": "3"}
LEASE_ID = re.compile(r"\b[0-9a-f]{10,16}\b")  # hex, without leading zeros
REMAINING = re.compile(r"remaining\(\d+s\)")


def _masked(text: str) -> str:
    return REMAINING.sub("remaining(Ns)", LEASE_ID.sub("<ID>", text))


def _errors(stderr: str) -> str:
    """etcdctl's own lines; its client's retry warnings (JSON, timestamped) differ."""
    return "".join(line + "\n" for line in stderr.splitlines() if not line.startswith("{"))


def _ctl(endpoints: list[str], *args: str) -> tuple[int, str, str]:
    done = subprocess.run([ETCDCTL, "--endpoints", ",".join(endpoints), *args], env=ENV,
                          capture_output=True, text=True, timeout=30)
    return done.returncode, _masked(done.stdout), _masked(_errors(done.stderr))


def _until_killed(endpoints: list[str], *args: str, run_s: float = 2.0) -> tuple[str, str]:
    proc = subprocess.Popen([ETCDCTL, "--endpoints", ",".join(endpoints), *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(run_s)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return _masked(out), _masked(_errors(err))


def _scenario(endpoints: list[str]) -> dict[str, object]:
    seen: dict[str, object] = {}
    seen["grant"] = _ctl(endpoints, "lease", "grant", "100")
    lease_id = subprocess.run([ETCDCTL, "--endpoints", endpoints[0], "lease", "list"], env=ENV,
                              capture_output=True, text=True, timeout=30).stdout.split()[-1]
    seen["put"] = _ctl(endpoints, "put", "--lease=" + lease_id, "leased", "v")
    seen["timetolive"] = _ctl(endpoints, "lease", "timetolive", lease_id, "--keys")
    seen["list"] = _ctl(endpoints, "lease", "list")
    seen["keep-alive once"] = _ctl(endpoints, "lease", "keep-alive", "--once", lease_id)
    seen["revoke"] = _ctl(endpoints, "lease", "revoke", lease_id)
    seen["gone"] = _ctl(endpoints, "get", "leased")
    seen["expired"] = _ctl(endpoints, "lease", "timetolive", lease_id)
    seen["revoke unknown"] = _ctl(endpoints, "lease", "revoke", "1234")
    seen["too large"] = _ctl(endpoints, "lease", "grant", "9000000001")
    seen["lock exec"] = _ctl(endpoints, "lock", "mutex", "--", "sh", "-c",
                             "echo held $ETCD_LOCK_KEY")
    seen["elect"] = _until_killed(endpoints, "elect", "vote", "me")
    return seen


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, object]]:
    return on_both_servers(tmp_path_factory, _scenario)


CASES = ["grant", "put", "timetolive", "list", "keep-alive once", "revoke", "gone", "expired",
         "revoke unknown", "too large", "lock exec", "elect"]


@pytest.mark.parametrize("case", CASES)
def test_etcdctl_prints_the_same_against_petcd_and_etcd(outputs, case):
    assert outputs["petcd"][case] == outputs["etcd"][case]


def test_the_scenario_saw_what_etcd_defines(outputs):
    etcd = outputs["etcd"]
    assert etcd["grant"] == (0, "lease <ID> granted with TTL(100s)\n", "")
    assert etcd["revoke unknown"] == (
        1, "", "Error: failed to revoke lease (etcdserver: requested lease not found)\n")
    assert etcd["lock exec"] == (0, "held mutex/<ID>\n", "")
    assert etcd["elect"][0] == "vote/<ID>\nme\n"
    assert etcd["timetolive"][1].startswith("lease <ID> granted with TTL(100s), remaining(Ns), "
                                            "attached keys([leased])")
