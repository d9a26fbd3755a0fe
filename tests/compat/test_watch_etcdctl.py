"""The real `etcdctl watch` against petcd prints what it prints against a real etcd:
the same writes on a fresh 3-member cluster of each (so the same revisions), then the
same watches (a key from a past revision, a prefix with --prev-kv, live events, -w
json, a compacted revision), byte for byte, exit codes included. JSON headers differ
only in cluster and member ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .etcdctl import ETCDCTL, on_both_servers

RUN_S = 2.0  # a watch prints its history at once; it never ends by itself
ENV = {**os.environ, "ETCDCTL_API": "3"}


def _ctl(endpoints: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ETCDCTL, "--endpoints", ",".join(endpoints), *args], env=ENV,
                          capture_output=True, text=True, timeout=30, check=True)


def _watch(endpoints: list[str], *args: str, during=None) -> tuple[int | None, str, str]:  # type: ignore[no-untyped-def]
    """Run `etcdctl watch ARGS` for RUN_S (calling `during()` halfway), then stop it."""
    proc = subprocess.Popen([ETCDCTL, "--endpoints", endpoints[0], "watch", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(RUN_S / 2)
    if during is not None:
        during()
    try:
        out, err = proc.communicate(timeout=RUN_S / 2)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        code = None  # still watching: stopped by us
    return code, out, err


def _json_lines(text: str) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for line in text.splitlines():
        value = json.loads(line)
        for header in [value.get("Header", {})]:
            header.pop("cluster_id", None)
            header.pop("member_id", None)
        out.append(value)
    return out


def _scenario(endpoints: list[str]) -> dict[str, object]:
    writes = [("put", "foo", "1"), ("put", "foo", "2"), ("put", "fob", "x"), ("del", "foo"),
              ("put", "foo", "3"), ("put", "fo", "0")]
    for write in writes:
        _ctl(endpoints, *write)

    def live() -> None:
        _ctl(endpoints, "put", "live/a", "1")
        _ctl(endpoints, "put", "live/b", "2")
        _ctl(endpoints, "del", "live/", "--prefix")

    seen: dict[str, object] = {
        "key from rev 2": _watch(endpoints, "foo", "--rev", "2"),
        "prefix with prev kv": _watch(endpoints, "fo", "--prefix", "--rev", "1", "--prev-kv"),
        "range": _watch(endpoints, "fo", "foz", "--rev", "3"),
        "live prefix": _watch(endpoints, "--prefix", "live/", during=live),
    }
    code, out, err = _watch(endpoints, "foo", "--rev", "2", "-w", "json")
    seen["json"] = (code, _json_lines(out), err)
    _ctl(endpoints, "compact", "5")
    seen["compacted rev"] = _watch(endpoints, "foo", "--rev", "3")
    return seen


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, object]]:
    return on_both_servers(tmp_path_factory, _scenario)


@pytest.mark.parametrize("case", ["key from rev 2", "prefix with prev kv", "range",
                                  "live prefix", "json", "compacted rev"])
def test_etcdctl_watch_prints_the_same_against_petcd_and_etcd(outputs, case):
    assert outputs["petcd"][case] == outputs["etcd"][case]


def test_the_scenario_saw_what_etcd_defines(outputs):
    """The comparison is worth something: each watch printed events or an error."""
    for case, (_, out, err) in outputs["etcd"].items():
        assert out or err, case
    code, out, _ = outputs["etcd"]["key from rev 2"]
    assert code is None and out == "PUT\nfoo\n1\nPUT\nfoo\n2\nDELETE\nfoo\n\nPUT\nfoo\n3\n"
    code, out, err = outputs["etcd"]["compacted rev"]
    assert "required revision has been compacted" in out + err
