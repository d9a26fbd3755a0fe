"""Peer TLS on real members: a 3-member cluster whose peer URLs are https, with
certificates from a CA made for the test (trustme) and --peer-client-cert-auth.
Raft traffic, snapshot streams and a joining member's query all go through TLS; a
fake member speaking the peer protocol without a certificate gets nothing in, and
each of its attempts is logged."""

from __future__ import annotations

import zmq

import trustme
from petcd.actors.bus.envelope import pack_envelope
from petcd.actors.bus.peer import Channel, identity

from .members import running, wait_until

WAIT_S = 30.0


def tls_args(ca: trustme.CA, tmp_path) -> list[str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = (tmp_path / n for n in ("peer.pem", "peer-key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return ["--peer-cert-file", str(cert_path), "--peer-key-file", str(key_path),
            "--peer-trusted-ca-file", str(ca_path), "--peer-client-cert-auth",
            "--snapshot-count", "20", "--snapshot-catchup-entries", "5"]


def test_a_cluster_over_peer_tls_replicates_and_lets_no_stranger_in(tmp_path):
    ca = trustme.CA()
    with running(tmp_path, 3, tls_args(ca, tmp_path), peer_scheme="https") as c:
        leader = c.wait_leader(WAIT_S)
        assert all(m.log_events("listening for peers")[-1]["tls"] for m in c.members)
        for i in range(40):  # past --snapshot-count: the joiner gets a snapshot
            leader.put(f"k{i}", str(i))
        other = next(m for m in c.members if m is not leader)
        assert wait_until(lambda: other.get("k39", serializable=True) == "39", WAIT_S)

        # A member that joins asks who it is, and catches up, over TLS.
        fourth = c.add_member(leader)
        assert wait_until(lambda: fourth.get("k39", serializable=True) == "39", WAIT_S)

        # A stranger without a certificate, speaking ZeroMQ to a peer port.
        context = zmq.Context()
        try:
            fake = context.socket(zmq.DEALER)
            fake.setsockopt(zmq.IDENTITY, identity(12345, Channel.RAFT))
            fake.setsockopt(zmq.LINGER, 0)
            fake.connect(f"tcp://127.0.0.1:{other.peer_port}")
            fake.send(pack_envelope("raft", []))
            assert wait_until(lambda: other.log_events("rejected peer connection"), WAIT_S)
        finally:
            context.destroy(linger=0)
        leader.put("after", "stranger")
        assert wait_until(lambda: other.get("after", serializable=True) == "stranger", WAIT_S)


def test_peer_auto_tls_makes_each_member_its_own_certificate(tmp_path):
    with running(tmp_path, 3, ["--peer-auto-tls"], peer_scheme="https") as c:
        leader = c.wait_leader(WAIT_S)
        leader.put("k", "v")
        assert all(wait_until(lambda m=m: m.get("k", serializable=True) == "v", WAIT_S)
                   for m in c.members)
        for m in c.members:
            assert (m.data_dir / "fixtures" / "peer" / "cert.pem").exists()
