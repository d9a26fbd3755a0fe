"""A backup taken with the real `etcdctl snapshot save` while clients write, restored
with petcdutl into a new three-member cluster on other ports: the new cluster holds
exactly the keys, values and revisions the old one had at the snapshot's revision."""

from __future__ import annotations

import json
import subprocess
import threading

from petcd.client import Client
from tests.cluster.members import Cluster, running
from tests.compat.etcdctl import ETCDCTL, require
from tests.utl.tools import petcdutl

WRITERS = 2


def _write_until(endpoints: list[str], prefix: str, done: threading.Event) -> None:
    with Client(endpoints) as client:
        n = 0
        while not done.is_set():
            client.put(f"{prefix}{n % 50}", f"value-{n}")  # overwrites: history too
            n += 1


def _state_at(client: Client, revision: int) -> dict[bytes, tuple[bytes, int, int, int]]:
    """Every key at `revision`: value, create/mod revision, version."""
    kvs = client.get("\0", from_key=True, revision=revision).kvs
    return {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in kvs}


def test_a_snapshot_saved_under_writes_restores_into_a_new_cluster(tmp_path):
    require()
    path = tmp_path / "backup.db"
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with running(tmp_path / "old", 3) as old:
        old.wait_leader()
        endpoints = [f"127.0.0.1:{m.client_port}" for m in old.members]
        done = threading.Event()
        writers = [threading.Thread(target=_write_until, args=(endpoints, f"w{i}-", done))
                   for i in range(WRITERS)]
        for w in writers:
            w.start()
        try:
            saved = subprocess.run([ETCDCTL, "--endpoints", endpoints[0], "snapshot", "save",
                                    str(path)], capture_output=True, text=True, timeout=60,
                                   env={"ETCDCTL_API": "3"})
        finally:
            done.set()
            for w in writers:
                w.join(30)
        assert saved.returncode == 0, saved.stderr
        status = petcdutl("snapshot", "status", str(path), "-w", "json")
        revision = int(json.loads(status.stdout)["revision"])
        with Client(endpoints) as client:
            assert client.get("w0-0").header.revision > revision, "writes went on after it"
            expected = _state_at(client, revision)
    assert expected
    new = Cluster(tmp_path / "new", 3)
    for m in new.members:
        done_restore = petcdutl("snapshot", "restore", str(path), "--name", m.name,
                                "--data-dir", str(m.data_dir),
                                "--initial-cluster", new.initial_cluster,
                                "--initial-cluster-token", new.token,
                                "--initial-advertise-peer-urls", m.peer_url)
        assert done_restore.returncode == 0, done_restore.stderr
    new.start()
    try:
        new.wait_leader()
        with Client([f"127.0.0.1:{m.client_port}" for m in new.members]) as client:
            assert client.get("w0-0").header.revision == revision
            assert _state_at(client, revision) == expected
    finally:
        new.stop()
