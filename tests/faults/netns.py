"""Members on a real network: each in its own Linux network namespace, links cut on a bridge.

    root namespace                          member namespaces
    bridge pn<token> 10.231.X.1/24 ─┬─ veth ─ eth0 10.231.X.11  petcd-<token>-m1
    (the test's HTTP client)        ├─ veth ─ eth0 10.231.X.12  petcd-<token>-m2
                                    └─ veth ─ eth0 10.231.X.13  petcd-<token>-m3

Each member is the real `petcd` started with `ip netns exec`, its client and peer URLs
on its namespace's own address (ports 2379 and 2380: nothing else lives there), so
peer traffic crosses veths, a bridge and each namespace's TCP/IP stack. X is random
among the 10.231.X.0/24 no interface of this machine uses, so runs do not clash.

Cuts are nftables rules in one table of the bridge family, hooked where the bridge
forwards a frame from one port to another: a cut drops IPv4 packets from one member's
address to another's, silently, as a broken network does. Neither member's stack sees
anything, and the test's own traffic (bridge to member) is never forwarded, so a
client reaches every member on either side of a split.

A one-way cut drops packets in one direction only. TCP needs both, so over TCP it is
a slow symmetric cut: with A->B cut, A's segments to B are lost, and on B's own
connection to A, B's data still reaches A, but A's acknowledgements do not get back:
B's window fills and stalls, TCP_USER_TIMEOUT closes it (3 s, actors/bus/liveness.py),
and B's reconnects fail (A's SYN-ACK is lost). What the tests assert under it is only what
Raft must hold under any loss: safety, and convergence after healing.

`tc netem` (delay, jitter, loss, duplication, reordering) needs the kernel's sch_netem;
`netem_unavailable()` says when it is missing. Loss alone needs only nftables: `lose()`
drops a random share of what members send each other (nft's numgen), on the bridge as
the cuts are.

Everything is created by `cluster_on_network()` and removed when it ends, also when
the test fails: links healed, processes stopped (a namespace lives on while a process
is in it), then the nftables table, the namespaces (each takes its veth pair with it),
the bridge; and checked to be gone.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import re
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.members import Cluster, Member, wait_until

SUBNETS = ipaddress.ip_network("10.231.0.0/16")
BRIDGE_HOST = 1  # the bridge's address in the subnet: .1
FIRST_MEMBER_HOST = 11  # members are .11, .12, ...
CLIENT_PORT, PEER_PORT = 2379, 2380  # etcd's: each member has its own address
COMMAND_TIMEOUT_S = 10.0  # one `ip`, `nft` or `tc` invocation
NFT_CHAIN = "cut"
REMOVAL_TIMEOUT_S = 5.0  # a deleted namespace's veth pair goes asynchronously


class CommandFailed(Exception):
    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        self.reason = (stderr.strip().splitlines() or ["(no output)"])[0]
        super().__init__(f"`{' '.join(args)}` failed: {self.reason}")


def run(*args: str, stdin: str | None = None) -> str:
    """One configuration command; raises with its stderr when it fails."""
    done = subprocess.run(args, input=stdin, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    if done.returncode != 0:
        raise CommandFailed(args, done.stderr)
    return done.stdout


@functools.cache
def unavailable() -> str | None:
    """Why this machine cannot run members in namespaces, in one line; None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package {package})"
    probe = f"petcd-probe-{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
    except CommandFailed as err:
        return f"cannot create a network namespace: {err}"
    try:
        run("ip", "netns", "exec", probe, "nft", "add", "table", "bridge", "probe")
    except CommandFailed as err:
        return f"cannot create an nftables bridge table: {err}"
    finally:
        run("ip", "netns", "delete", probe)
    return None


@functools.cache
def netem_unavailable() -> str | None:
    """Why `tc qdisc ... netem` does not work here, in one line; None if it does."""
    reason = unavailable()
    if reason is not None:
        return reason
    probe = f"petcd-probe-{os.getpid()}"
    run("ip", "netns", "add", probe)
    try:
        run("ip", "-n", probe, "link", "set", "lo", "up")
        run("tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
    except CommandFailed as err:
        return f"tc netem does not work here (a kernel without sch_netem?): {err.reason}"
    finally:
        run("ip", "netns", "delete", probe)
    return None


@dataclass(frozen=True, slots=True)
class Host:
    """One member's place on the network."""

    name: str  # the member's name
    netns: str
    address: str
    veth: str  # the root namespace's end, a port of the bridge; `eth0` inside


class Network:
    """A bridge and one namespace per host; cuts between hosts' addresses."""

    def __init__(self, names: list[str]) -> None:
        self.token = secrets.token_hex(3)
        self.subnet = _unused_subnet()
        self.bridge = f"pn{self.token}"  # interface names: at most 15 characters
        self.nft_table = f"petcd_{self.token}"
        addresses = list(self.subnet.hosts())
        self.bridge_address = str(addresses[BRIDGE_HOST - 1])
        self.hosts = {name: Host(name, f"petcd-{self.token}-{name}",
                                 str(addresses[FIRST_MEMBER_HOST - 1 + i]), f"pv{self.token}{i}")
                      for i, name in enumerate(names)}
        self._undo: list[Callable[[], object]] = []  # removes each thing created so far

    def create(self) -> None:
        """Builds it all, each step's undo recorded first: destroy() then removes exactly
        what exists, however far this got."""
        self._step(lambda: run("ip", "link", "delete", self.bridge),
                   "ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.bridge_address}/{self.subnet.prefixlen}", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for host in self.hosts.values():
            self._create_host(host)
        self._step(lambda: run("nft", "delete", "table", "bridge", self.nft_table),
                   "nft", "add", "table", "bridge", self.nft_table)
        run("nft", "add", "chain", "bridge", self.nft_table, NFT_CHAIN,
            "{ type filter hook forward priority 0; policy accept; }")

    def _create_host(self, host: Host) -> None:
        self._step(lambda: _remove_netns(host.netns), "ip", "netns", "add", host.netns)
        # The pair goes with the namespace (eth0 is in it): no undo of its own.
        run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
            "netns", host.netns)
        run("ip", "link", "set", host.veth, "master", self.bridge, "up")
        run("ip", "-n", host.netns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
            "dev", "eth0")
        run("ip", "-n", host.netns, "link", "set", "eth0", "up")
        run("ip", "-n", host.netns, "link", "set", "lo", "up")

    def _step(self, undo: Callable[[], object], *command: str) -> None:
        self._undo.append(undo)  # a command that failed half-way may have left something
        run(*command)

    def destroy(self) -> list[str]:
        """Removes what create() made, newest first; the errors of steps that failed.
        A namespace outlives its deletion while a process is in it: stop those first."""
        failed = []
        while self._undo:
            try:
                self._undo.pop()()
            except CommandFailed as err:
                failed.append(str(err))
        return failed

    def leftovers(self) -> list[str]:
        """Those of its interfaces and namespaces that exist."""
        links = run("ip", "-o", "link", "show")
        names = run("ip", "netns", "list").split()
        return ([self.bridge] if f" {self.bridge}:" in links else []) + [
            x for h in self.hosts.values() for x in (h.veth, h.netns)
            if f" {x}@" in links or x in names]

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name].netns]

    # -- faults -----------------------------------------------------------------------

    def cut(self, a: str, b: str, one_way: bool = False) -> None:
        """Drop packets from a to b, and from b to a unless one_way (besides earlier cuts)."""
        self._rules([(a, b)] if one_way else [(a, b), (b, a)], replace=False)

    def split(self, *groups: Iterable[str]) -> None:
        """From now on exactly these groups: every link between two groups is cut, every
        other link works (earlier cuts are replaced at once, in one nftables transaction)."""
        sets = [set(g) for g in groups]
        pairs = []
        for left, right in itertools.combinations(sets, 2):
            assert not left & right, f"{left & right} in two groups"
            pairs += [p for a, b in itertools.product(left, right) for p in ((a, b), (b, a))]
        self._rules(pairs, replace=True)

    def isolate(self, name: str) -> None:
        self.split([name], set(self.hosts) - {name})

    def heal(self) -> None:
        self._rules([], replace=True)

    def lose(self, percent: int) -> None:
        """Drop `percent` % of the packets between members, at random, each way (until
        heal(); replaces earlier cuts)."""
        assert 0 < percent < 100
        chain = f"bridge {self.nft_table} {NFT_CHAIN}"
        run("nft", "-f", "-", stdin=f"flush chain {chain}\n"
            f"add rule {chain} meta protocol ip numgen random mod 100 < {percent} counter drop\n")

    def lost_packets(self) -> int:
        """How many packets lose() has dropped so far."""
        listing = run("nft", "list", "chain", "bridge", self.nft_table, NFT_CHAIN)
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))

    def netem(self, name: str, *spec: str) -> None:
        """`tc netem` on what the member sends (its eth0), e.g. "delay", "50ms", "20ms"."""
        run("tc", "-n", self.hosts[name].netns, "qdisc", "replace", "dev", "eth0", "root",
            "netem", *spec)

    def _rules(self, drops: list[tuple[str, str]], replace: bool) -> None:
        """One nftables transaction: drop each (source, destination)'s packets."""
        chain = f"bridge {self.nft_table} {NFT_CHAIN}"
        lines = [f"flush chain {chain}"] if replace else []
        lines += [f"add rule {chain} ip saddr {self.hosts[source].address}"
                  f" ip daddr {self.hosts[destination].address} drop"
                  for source, destination in drops]
        run("nft", "-f", "-", stdin="\n".join(lines) + "\n")


def _remove_netns(netns: str) -> None:
    """Deletes the namespace now, not minutes later: a closed TCP connection whose peer
    was cut off lingers as an orphan retransmitting its FIN, and it holds its namespace
    (and so the veth pair) alive after `ip netns delete`; `ss --kill` ends them (it needs
    CONFIG_INET_DIAG_DESTROY). Its processes must be gone."""
    with contextlib.suppress(CommandFailed):  # no namespace: the delete below says so
        run("ip", "netns", "exec", netns, "ss", "--kill", "--all", "--tcp")
    run("ip", "netns", "delete", netns)


def _unused_subnet() -> ipaddress.IPv4Network:
    """A random /24 of SUBNETS that no address or route of the root namespace touches."""
    taken = [ipaddress.ip_interface(line.split()[3]).network
             for line in run("ip", "-o", "-4", "addr", "show").splitlines()]
    routes = [_destination(line) for line in run("ip", "-4", "route", "show").splitlines()]
    taken += [r for r in routes if r is not None]
    free = [n for n in SUBNETS.subnets(new_prefix=24) if not any(n.overlaps(t) for t in taken)]
    assert free, f"every /24 of {SUBNETS} is in use"
    return free[secrets.randbelow(len(free))]


def _destination(route: str) -> ipaddress.IPv4Network | None:
    """Of a line of `ip route show`: "10.1.0.0/16 dev x", "blackhole 10.2.0.0/16", "default ..."."""
    for word in route.split()[:2]:
        with contextlib.suppress(ValueError):
            return ipaddress.IPv4Network(word)
    return None


class NetnsCluster(Cluster):
    """A cluster whose members each run in their own namespace of `network`."""

    def __init__(self, root: Path, network: Network, extra_args: list[str] | None = None) -> None:
        self.network = network
        self.token = f"netns-{network.token}"
        self.members = [
            Member(name, CLIENT_PORT, PEER_PORT, root / f"{name}.petcd", root / f"{name}.log",
                   list(extra_args or []), host=host.address,
                   command_prefix=network.exec_prefix(name))
            for name, host in network.hosts.items()]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)


@contextlib.contextmanager
def cluster_on_network(root: Path, size: int, extra_args: list[str] | None = None
                       ) -> Iterator[NetnsCluster]:
    """A started cluster of `size` members on a fresh network; all of it gone at the end."""
    network = Network([f"m{i + 1}" for i in range(size)])
    cluster = None
    try:
        network.create()
        cluster = NetnsCluster(root, network, extra_args)
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            with contextlib.suppress(CommandFailed):  # stopping the members matters more
                network.heal()  # so that connections close with a FIN exchange, not lost
            _stop(cluster)
        failed = network.destroy()
        assert not failed, f"could not remove all the test network: {failed}"
        assert wait_until(lambda: not network.leftovers(), REMOVAL_TIMEOUT_S), \
            f"still there: {network.leftovers()}"


def _stop(cluster: Cluster) -> None:
    cluster.stop()
    for m in cluster.members:
        if m.alive:
            m.kill()
