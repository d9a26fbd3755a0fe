"""A snapshot that petcdctl snapshot save took from a real petcd member, shared by
the petcdutl tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from petcd.client import Client
from tests.client.petcd_server import PetcdCluster
from tests.utl.tools import run_script


@pytest.fixture(scope="package")
def saved(tmp_path_factory) -> tuple[Path, int, int]:
    """(snapshot file, revision, live keys) of a member after a few writes."""
    base = tmp_path_factory.mktemp("utl")
    cluster = PetcdCluster(base, 1)
    cluster.start()
    try:
        with Client(cluster.endpoints) as client:
            for i in range(10):
                client.put(f"key-{i}", f"value-{i}")
            client.put("key-3", "again")
            revision = client.delete("key-5").header.revision
        path = base / "snap.db"
        done = run_script("petcd.client.ctl.main", "--endpoints", cluster.endpoints[0],
                          "snapshot", "save", str(path))
        assert done.returncode == 0, done.stderr
    finally:
        cluster.stop()
    return path, revision, 9
