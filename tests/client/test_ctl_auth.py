"""petcdctl's user, role and auth commands print what etcdctl 3.4's print, on etcd
and on petcd (the scenario runs with each tool on a fresh cluster of each kind, see
test_ctl_compat.py): every format, the argument checks, the server's refusals, and
the commands of a user once auth is enabled."""

from __future__ import annotations

from tests.client.test_ctl_compat import FORMATS, Step, _steps, assert_same_output

ROOT = ["--user", "root:rootpw"]


def test_users_and_roles_in_every_format(cluster):
    """Every command in every format; the variants of a command (another permission
    type or range form) in the simple and json formats only, where what they print
    differs: the other formats print the same response the same way."""
    steps: list[Step] = []
    for fmt in FORMATS:
        w = ["-w", fmt]
        variants = fmt in ("simple", "json")
        steps += _steps(["role", "add", f"r{fmt}", *w], ["user", "add", f"u{fmt}:pw", *w],
                        ["role", "grant-permission", f"r{fmt}", "--prefix", "readwrite", "foo", *w])
        if variants:
            steps += _steps(
                ["user", "add", "--no-password", f"n{fmt}", *w],
                ["role", "grant-permission", f"r{fmt}", "read", "a", "b", *w],
                ["role", "grant-permission", f"r{fmt}", "write", "--from-key", "z", *w],
                ["role", "grant-permission", f"r{fmt}", "READ", "single", *w])
        steps += _steps(
            ["role", "get", f"r{fmt}", *w], ["user", "grant-role", f"u{fmt}", f"r{fmt}", *w],
            ["user", "get", f"u{fmt}", *w], ["user", "get", "--detail", f"u{fmt}", *w],
            ["user", "list", *w], ["role", "list", *w],
            ["role", "revoke-permission", f"r{fmt}", "--prefix", "foo", *w])
        if variants:
            steps += _steps(["role", "revoke-permission", f"r{fmt}", "a", "b", *w],
                            ["role", "revoke-permission", f"r{fmt}", "single", *w])
        steps += _steps(["user", "revoke-role", f"u{fmt}", f"r{fmt}", *w])
        steps.append(Step(["user", "passwd", f"u{fmt}", "--interactive=false", *w],
                          stdin=b"newpw\n"))
        steps += _steps(["user", "delete", f"u{fmt}", *w], ["role", "delete", f"r{fmt}", *w])
    assert_same_output(cluster, steps)


def test_argument_checks_and_refusals(cluster):
    steps = _steps(
        ["user", "add"], ["user", "add", ":pw"], ["user", "get"], ["user", "list", "x"],
        ["user", "grant-role", "a"], ["role", "add"], ["role", "list", "x"],
        ["role", "grant-permission", "r", "read"], ["role", "grant-permission", "r", "rw", "k"],
        ["role", "grant-permission", "r", "read", "k", "--prefix", "--from-key"],
        ["role", "grant-permission", "r", "read", "a", "b", "--prefix"],
        ["role", "revoke-permission", "r"], ["auth", "enable", "x"],
        ["user", "add", "dup:pw"], ["user", "add", "dup:pw"], ["user", "get", "ghost"],
        ["user", "delete", "ghost"], ["user", "grant-role", "dup", "ghost"],
        ["user", "revoke-role", "dup", "root"], ["role", "add", "r"], ["role", "add", "r"],
        ["role", "get", "ghost"], ["role", "delete", "ghost"],
        ["role", "revoke-permission", "r", "nokey"],
        ["role", "grant-permission", "r", "read", "b", "a"],
        ["user", "passwd", "ghost", "--interactive=false"],
        ["auth", "enable"], ["auth", "disable"],
    )
    assert_same_output(cluster, steps)


def test_auth_enable_then_only_root_manages(cluster):
    steps = _steps(
        ["user", "add", "root:rootpw"], ["auth", "enable"],  # etcdctl adds the root role
        ["role", "get", "root", *ROOT], ["user", "get", "root", *ROOT],
        ["user", "add", "alice:alicepw", *ROOT], ["role", "add", "reader", *ROOT],
        ["role", "grant-permission", "reader", "read", "k", *ROOT],
        ["user", "grant-role", "alice", "reader", *ROOT],
        ["user", "list"], ["user", "list", "--user", "alice:alicepw"],
        ["user", "get", "alice", "--user", "alice:alicepw"],
        ["role", "get", "reader", "--user", "alice:alicepw"],
        ["user", "list", "--user", "alice:wrong"], ["user", "list", "--user", "ghost:pw"],
        ["user", "list", "--user", "alice", "--password", "alicepw"],
        ["put", "k", "v", *ROOT], ["get", "k", "--user", "alice:alicepw"],
        ["get", "k", "-w", "json", "--user", "alice:alicepw"],
        ["put", "k", "x", "--user", "alice:alicepw"], ["get", "j", "--user", "alice:alicepw"],
        ["get", "k", "--prefix", "--user", "alice:alicepw"], ["get", "k"],
        ["del", "k", *ROOT],
    )
    # A txn writing where alice may only read: refused whichever branch would run.
    steps.append(Step(["txn", "--user", "alice:alicepw"], stdin=b"\nput k y\n\n"))
    steps += _steps(
        ["user", "delete", "root", *ROOT], ["role", "delete", "root", *ROOT],
        ["user", "revoke-role", "root", "root", *ROOT],
        ["auth", "disable"], ["auth", "disable", "--user", "alice:alicepw"],
        ["auth", "enable", *ROOT], ["auth", "disable", *ROOT], ["user", "list"],
    )
    assert_same_output(cluster, steps)
