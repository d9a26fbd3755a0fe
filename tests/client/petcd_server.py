"""petcd clusters with EtcdCluster's interface, for tests/client."""

from __future__ import annotations

import shutil
from pathlib import Path

from petcd.client import Client, EtcdError
from tests.cluster.members import Cluster, wait_until

PUBLISH_TIMEOUT_S = 30.0


class PetcdCluster:
    kind = "petcd"

    def __init__(self, base_dir: Path, members: int = 1) -> None:
        self._cluster = Cluster(base_dir, members)

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{m.client_port}" for m in self._cluster.members]

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self._cluster.members]

    def start(self) -> None:
        """Returns once there is a leader and every member has published its client
        URLs (a fresh etcd's /health answers true only then, too)."""
        self._cluster.start()
        self._cluster.wait_leader()
        with Client(self.endpoints) as client:
            published = wait_until(lambda: all(
                m.clientURLs for m in client.member_list().members), PUBLISH_TIMEOUT_S)
        assert published, f"members did not publish their client URLs in {PUBLISH_TIMEOUT_S}s"

    def stop(self) -> None:
        self._cluster.stop()

    def stop_member(self, name: str) -> None:
        self._member(name).stop()

    def start_member(self, name: str) -> None:
        """Start a stopped member again on its data; returns once it answers."""
        member = self._member(name)
        self._cluster.start(member)
        with Client([f"127.0.0.1:{member.client_port}"], dial_timeout_s=0.5) as client:
            answers = wait_until(lambda: _answers(client), PUBLISH_TIMEOUT_S)
        assert answers, f"member {name} did not answer in {PUBLISH_TIMEOUT_S}s"

    def _member(self, name: str):
        return next(m for m in self._cluster.members if m.name == name)

    def reset(self) -> None:
        self.stop()
        for member in self._cluster.members:
            shutil.rmtree(member.data_dir, ignore_errors=True)
        self.start()


def _answers(client: Client) -> bool:
    try:
        client.status()
    except EtcdError:
        return False
    return True
