"""user, role and auth commands, with etcdctl 3.4's argument checks and messages
(etcdctl/ctlv3/command/user_command.go, role_command.go, auth_command.go).

Passwords: `user add name:password`, or --new-user-password, or asked for. etcdctl
asks twice on the terminal with --interactive (the default) and reads one word from
stdin with --interactive=false; petcdctl does the same (getpass for the terminal).
"""

from __future__ import annotations

import getpass
import sys

from petcd.client import requests
from petcd.client.ctl import auth_output
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import EXIT_BAD_ARGS, CtlError, Flag
from petcd.client.errors import EtcdError

ROOT_ROLE_NOT_EXIST = "etcdserver: root user does not have root role"
INTERACTIVE = Flag("interactive", "bool", True)
PREFIX, FROM_KEY = Flag("prefix", "bool", False), Flag("from-key", "bool", False)
PERMISSION_TYPES = ("READ", "WRITE", "READWRITE")


def _args(ctx: Context, count: int, message: str) -> tuple[str, ...]:
    if len(ctx.args) != count:
        raise CtlError(EXIT_BAD_ARGS, message)
    return ctx.args


def _ask_password(ctx: Context, name: str) -> str:
    if not ctx.flag("interactive"):
        words = sys.stdin.readline().split()  # Go's fmt.Scanf("%s")
        return words[0] if words else ""
    first = getpass.getpass(f"Password of {name}: ")
    if not first:
        raise CtlError(EXIT_BAD_ARGS, "empty password")
    if getpass.getpass(f"Type password of {name} again for confirmation: ") != first:
        raise CtlError(EXIT_BAD_ARGS, "given passwords are different")
    return first


# -- user -------------------------------------------------------------------------------


def run_user_add(ctx: Context) -> None:
    [arg] = _args(ctx, 1, "user add command requires user name as its argument")
    if ctx.flag("no-password"):
        name, password = arg, ""
    elif ctx.flag("new-user-password"):
        name, password = arg, ctx.flag("new-user-password")
    elif ":" in arg:
        name, password = arg.split(":", 1)
        if not name:
            raise CtlError(EXIT_BAD_ARGS, "empty user name is not allowed")
    else:
        name, password = arg, _ask_password(ctx, arg)
    resp = ctx.client().user_add(name, password, no_password=ctx.flag("no-password"))
    auth_output.changed(ctx.printer, f"User {name} created", resp)


def run_user_delete(ctx: Context) -> None:
    [name] = _args(ctx, 1, "user delete command requires user name as its argument")
    auth_output.changed(ctx.printer, f"User {name} deleted", ctx.client().user_delete(name))


def run_user_get(ctx: Context) -> None:
    [name] = _args(ctx, 1, "user get command requires user name as its argument")
    client = ctx.client()
    resp = client.user_get(name)
    if not ctx.flag("detail"):
        auth_output.user_get(ctx.printer, name, resp)
        return
    ctx.stdout(f"User: {name}\n")
    for role in resp.roles:
        ctx.stdout("\n")
        auth_output.role_get(ctx.printer, role, client.role_get(role))


def run_user_list(ctx: Context) -> None:
    _args(ctx, 0, "user list command requires no arguments")
    auth_output.user_list(ctx.printer, ctx.client().user_list())


def run_user_passwd(ctx: Context) -> None:
    [name] = _args(ctx, 1, "user passwd command requires user name as its argument")
    password = _ask_password(ctx, name)
    resp = ctx.client().user_change_password(name, password)
    auth_output.changed(ctx.printer, "Password updated", resp)


def run_user_grant_role(ctx: Context) -> None:
    user, role = _args(ctx, 2, "user grant command requires user name and role name as "
                               "its argument")
    resp = ctx.client().user_grant_role(user, role)
    auth_output.changed(ctx.printer, f"Role {role} is granted to user {user}", resp)


def run_user_revoke_role(ctx: Context) -> None:
    user, role = _args(ctx, 2, "user revoke-role requires user name and role name as its "
                               "argument")
    resp = ctx.client().user_revoke_role(user, role)
    auth_output.changed(ctx.printer, f"Role {role} is revoked from user {user}", resp)


# -- role -------------------------------------------------------------------------------


def run_role_add(ctx: Context) -> None:
    [name] = _args(ctx, 1, "role add command requires role name as its argument")
    auth_output.changed(ctx.printer, f"Role {name} created", ctx.client().role_add(name))


def run_role_delete(ctx: Context) -> None:
    [name] = _args(ctx, 1, "role delete command requires role name as its argument")
    auth_output.changed(ctx.printer, f"Role {name} deleted", ctx.client().role_delete(name))


def run_role_get(ctx: Context) -> None:
    [name] = _args(ctx, 1, "role get command requires role name as its argument")
    auth_output.role_get(ctx.printer, name, ctx.client().role_get(name))


def run_role_list(ctx: Context) -> None:
    _args(ctx, 0, "role list command requires no arguments")
    auth_output.role_list(ctx.printer, ctx.client().role_list())


def run_role_grant_permission(ctx: Context) -> None:
    if len(ctx.args) < 3:
        raise CtlError(EXIT_BAD_ARGS, "role grant command requires role name, permission "
                                      "type, and key [endkey] as its argument")
    name, kind = ctx.args[0], ctx.args[1]
    if kind.upper() not in PERMISSION_TYPES:  # clientv3.StrToPermissionType
        raise CtlError(EXIT_BAD_ARGS, f"invalid permission type: {kind}")
    key, range_end = _perm_range(ctx, ctx.args[2:])
    resp = ctx.client().role_grant_permission(name, key, range_end, kind)
    auth_output.changed(ctx.printer, f"Role {name} updated", resp)


def run_role_revoke_permission(ctx: Context) -> None:
    if len(ctx.args) < 2:
        raise CtlError(EXIT_BAD_ARGS, "role revoke-permission command requires role name and "
                                      "key [endkey] as its argument")
    name = ctx.args[0]
    key, range_end = _perm_range(ctx, ctx.args[1:])
    resp = ctx.client().role_revoke_permission(name, key, range_end)
    auth_output.changed(ctx.printer, auth_output.revoked_permission(name, ctx.args[1], range_end),
                        resp)


def _perm_range(ctx: Context, args: tuple[str, ...]) -> tuple[bytes, bytes]:
    """etcdctl's permRange: an empty key means every key (with --prefix or --from-key)."""
    prefix, from_key = ctx.flag("prefix"), ctx.flag("from-key")
    if prefix and from_key:
        raise CtlError(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
    key = args[0].encode()
    if not key:
        return b"\x00", b"\x00" if prefix or from_key else b""
    if len(args) == 1:
        if prefix:
            return key, requests.prefix_range_end(key)
        return key, b"\x00" if from_key else b""
    if prefix or from_key:
        flag = "--prefix" if prefix else "--from-key"
        raise CtlError(EXIT_BAD_ARGS, f"unexpected endkey argument with {flag} flag")
    return key, args[1].encode()


# -- auth -------------------------------------------------------------------------------


def run_auth_enable(ctx: Context) -> None:
    _args(ctx, 0, "auth enable command does not accept any arguments")
    client = ctx.client()
    try:
        client.auth_enable()
    except EtcdError as err:
        if err.message != ROOT_ROLE_NOT_EXIST:
            raise
        # etcdctl's own repair: make the root role and give it to root, then again.
        client.role_add("root")
        client.user_grant_role("root", "root")
        client.auth_enable()
    ctx.stdout("Authentication Enabled\n")


def run_auth_disable(ctx: Context) -> None:
    _args(ctx, 0, "auth disable command does not accept any arguments")
    ctx.client().auth_disable()
    ctx.stdout("Authentication Disabled\n")


def run_auth_status(ctx: Context) -> None:
    """etcdctl 3.5's (3.4 has none): enabled and the auth revision."""
    _args(ctx, 0, "auth status command does not accept any arguments")
    auth_output.auth_status(ctx.printer, ctx.client().auth_status())


COMMANDS = [
    Command(("user", "add"), [INTERACTIVE, Flag("new-user-password", "string", ""),
                              Flag("no-password", "bool", False)], run_user_add),
    Command(("user", "delete"), [], run_user_delete),
    Command(("user", "get"), [Flag("detail", "bool", False)], run_user_get),
    Command(("user", "list"), [], run_user_list),
    Command(("user", "passwd"), [INTERACTIVE], run_user_passwd),
    Command(("user", "grant-role"), [], run_user_grant_role),
    Command(("user", "revoke-role"), [], run_user_revoke_role),
    Command(("role", "add"), [], run_role_add),
    Command(("role", "delete"), [], run_role_delete),
    Command(("role", "get"), [], run_role_get),
    Command(("role", "list"), [], run_role_list),
    Command(("role", "grant-permission"), [PREFIX, FROM_KEY], run_role_grant_permission),
    Command(("role", "revoke-permission"), [PREFIX, FROM_KEY], run_role_revoke_permission),
    Command(("auth", "enable"), [], run_auth_enable),
    Command(("auth", "disable"), [], run_auth_disable),
    Command(("auth", "status"), [], run_auth_status),
]
