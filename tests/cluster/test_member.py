"""Real petcd members on loopback: what a user checks with curl after starting them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from .members import (PETCD, HttpError, Member, b64, free_ports, member_socket_dir,
                      running, wait_until)


def test_single_member_put_get_delete_and_restart(one):
    m = one.wait_leader()
    put = m.put("foo", "bar")
    assert int(put["header"]["revision"]) >= 2
    assert m.get("foo") == "bar"
    assert m.get("foo", serializable=True) == "bar"
    deleted = m.call("/v3/kv/deleterange", {"key": b64("foo"), "prev_kv": True})
    assert deleted["deleted"] == "1" and deleted["prev_kvs"][0]["value"] == b64("bar")
    assert m.get("foo") is None
    m.put("foo", "again")
    revision = int(m.status()["header"]["revision"])
    assert m.stop() == 0  # SIGTERM: clean shutdown
    assert '"member stopped"' in m.log_text()
    one.start(m)
    one.wait_leader()
    assert m.get("foo") == "again"
    assert int(m.status()["header"]["revision"]) == revision  # same data, same history


def test_three_members_write_to_any_read_from_any(three):
    three.wait_leader()
    for n, m in enumerate(three.members):
        m.put(f"key{n}", f"from {m.name}")
    for m in three.members:  # linearizable reads see every acknowledged write, everywhere
        assert [m.get(f"key{n}") for n in range(3)] == [f"from {x.name}" for x in three.members]
    statuses = [m.status() for m in three.members]
    assert len({s["leader"] for s in statuses}) == 1
    assert len({s["header"]["cluster_id"] for s in statuses}) == 1
    assert len({s["header"]["member_id"] for s in statuses}) == 3


def test_member_list_and_health(three):
    leader = three.wait_leader()
    listed = leader.call("/v3/cluster/member/list", {})["members"]
    assert sorted(m["name"] for m in listed) == ["m1", "m2", "m3"]
    assert sorted(u for m in listed for u in m["peerURLs"]) == sorted(
        m.peer_url for m in three.members)
    assert wait_until(lambda: all(m.get_json("/health") == (200, {"health": "true", "reason": ""})
                                  for m in three.members), 10)
    status, version = leader.get_json("/version")
    assert status == 200 and version["etcdserver"].startswith("3.5")


def test_logs_are_json_lines_naming_member_and_actor(one):
    m = one.wait_leader()
    lines = m.log_events()
    actors = {x["actor"] for x in lines}
    assert {"supervisor", "raft", "wal", "apply", "network"} <= actors
    assert {x["member"] for x in lines} == {"m1"}
    assert all(len(x["member_id"]) <= 16 for x in lines)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _actors(m: Member) -> dict[str, int]:
    assert wait_until(lambda: len(m.actor_pids()) == 4, 10), m.log_text()
    return m.actor_pids()


def test_actors_are_forked_children_named_after_their_actor(one):
    m = one.wait_leader()
    assert m.proc is not None
    for name, pid in _actors(m).items():
        assert psutil.Process(pid).ppid() == m.proc.pid
        assert Path(f"/proc/{pid}/comm").read_text() == f"petcd-{name}\n"
    assert m.stop() == 0
    assert all(_gone(pid) for pid in m.actor_pids().values())


def test_ctrl_c_stops_every_process_of_the_member_cleanly(one):
    m = one.wait_leader()
    assert m.proc is not None
    pids = _actors(m)
    os.killpg(m.proc.pid, signal.SIGINT)  # what a terminal sends the foreground group
    assert m.proc.wait(15) == 0, m.log_text()
    assert '"member stopped"' in m.log_text()
    assert '"actor exited; stopping the member"' not in m.log_text()
    assert all(_gone(pid) for pid in pids.values())


def test_no_actor_outlives_a_sigkilled_supervisor(one):
    m = one.wait_leader()
    assert m.proc is not None
    pids = _actors(m)
    os.kill(m.proc.pid, signal.SIGKILL)  # the supervisor only
    m.proc.wait(10)
    assert wait_until(lambda: all(_gone(pid) for pid in pids.values()), 15), pids


def test_a_second_petcd_on_the_same_data_dir_is_refused_and_the_first_keeps_serving(one):
    m = one.wait_leader()
    m.put("k", "v")
    sockets = member_socket_dir(m)
    assert (sockets / "raft.sock").exists()
    twin = Member("m1", *free_ports(2), m.data_dir, m.log_path.with_name("twin.log"))
    twin.start(f"m1={twin.peer_url}", one.token)
    assert twin.proc is not None and twin.proc.wait(30) == 1
    refused = twin.log_events("data dir is in use by another petcd member")
    assert len(refused) == 1 and refused[0]["data_dir"] == str(m.data_dir.resolve())
    assert "Traceback" not in twin.log_text()
    assert m.get("k") == "v" and m.put("k", "w")  # its sockets were left alone
    assert m.stop() == 0
    assert not sockets.exists()  # a stopped member leaves nothing in /tmp


def test_bad_configuration_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([PETCD, "--listen-client-urls", "foo", "--data-dir",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "--listen-client-urls" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing was created


def test_a_data_dir_that_cannot_be_made_is_one_error_line_and_exit_1(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    proc = subprocess.run([PETCD, "--data-dir", str(tmp_path / "a-file" / "m.petcd")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and '"cannot access data directory"' in lines[0], proc.stderr
    assert "Not a directory" in lines[0]


def test_a_restart_keeps_the_data_dirs_identity_whatever_the_flags_say(tmp_path):
    # etcd: after the first start, --initial-cluster* flags are ignored; the member and
    # cluster IDs are the WAL's (a member added at runtime or moved to a new peer URL
    # hashes to another ID than its flags would give).
    with running(tmp_path, 1) as c:
        m = c.wait_leader()
        m.put("k", "v")
        before = m.call("/v3/cluster/member/list", {})
        assert m.stop() == 0
        c.token = "another-cluster"
        c.start(m)
        c.wait_leader()
        assert m.get("k") == "v"
        after = m.call("/v3/cluster/member/list", {})
        assert after["header"]["cluster_id"] == before["header"]["cluster_id"]
        assert after["members"][0]["ID"] == before["members"][0]["ID"]
        assert "--initial-cluster flags ignored" in m.log_text()


def test_version_flag():
    out = subprocess.run([PETCD, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("petcd Version: ")


def test_http_errors_have_etcds_shape(one):
    m = one.wait_leader()
    with pytest.raises(HttpError) as err:
        m.call("/v3/kv/put", b"{not json")
    assert err.value.status == 400
    assert set(err.value.body) >= {"error", "message", "code"} and err.value.body["code"] == 3
    with pytest.raises(HttpError) as err:
        m.call("/v3/kv/put", {"key": "!!!not base64", "value": b64("v")})
    assert err.value.status == 400
    with pytest.raises(HttpError) as err:
        m.call("/v3/kv/put", {"key": b64("k"), "value": b64("v"), "lease": "not a number"})
    assert err.value.status == 400
    with pytest.raises(HttpError) as err:
        m.call("/v3/kv/put", {"key": b64("k"), "value": b64("x" * 2_000_000)})
    assert "request is too large" in err.value.body["message"]
    with pytest.raises(HttpError) as err:  # no lease can be granted yet
        m.call("/v3/kv/put", {"key": b64("k"), "value": b64("v"), "lease": "305441741"})
    message = "etcdserver: requested lease not found"
    assert (err.value.status, err.value.body) == (
        404, {"error": message, "message": message, "code": 5})
    assert m.get("k") is None  # nothing was written by any of them
    resp = m.call("/v3/kv/put", {"key": b64("k"), "value": b64("v"), "no_such_field": 1})
    assert "header" in resp and m.get("k") == "v"  # unknown fields are ignored


def _port_free(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_no_flags_serves_one_member_on_localhost_2379_with_data_in_default_petcd(tmp_path):
    if not (_port_free(2379) and _port_free(2380)):
        pytest.skip("ports 2379/2380 are in use on this machine")
    from .members import Member
    m = Member("default", 2379, 2380, tmp_path / "unused", tmp_path / "default.log")
    log = open(m.log_path, "ab")
    m.proc = subprocess.Popen([PETCD], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        assert wait_until(lambda: m.put("hello", "world") is not None, 30), m.log_text()
        assert m.get("hello") == "world"
        assert m.status()["header"]["member_id"] == str(0x8E9E05C52164694D)  # etcd's default
        assert (tmp_path / "default.petcd" / "member" / "wal").is_dir()
        assert (tmp_path / "default.petcd" / "member" / "snap" / "db").exists()
    finally:
        assert m.stop() == 0
