"""What every petcdctl command gets: its parsed flags, a client, a printer."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from petcd.client.client import Client
from petcd.client.ctl import printers
from petcd.client.ctl.flags import EXIT_BAD_CONNECTION, CtlError, Flag, Parsed
from petcd.client.errors import EtcdError
from petcd.client.tls import TlsOptions

GLOBAL_FLAGS = [
    Flag("endpoints", "strings", ["127.0.0.1:2379"]),
    Flag("dial-timeout", "duration", 2.0),
    Flag("command-timeout", "duration", 5.0),
    Flag("write-out", "string", "simple", short="w"),
    Flag("hex", "bool", False),
    # etcdctl's transport security flags (client/tls.py says when they turn TLS on)
    Flag("cacert", "string", ""),
    Flag("cert", "string", ""),
    Flag("key", "string", ""),
    Flag("insecure-transport", "bool", True),
    Flag("insecure-skip-tls-verify", "bool", False),
    Flag("user", "string", ""),
    Flag("password", "string", ""),
]


@dataclass
class Context:
    parsed: Parsed  # global and command flags together
    printer: printers.Printer
    _clients: list[Client] = field(default_factory=list)
    _credentials_asked: str = ""  # asked once, for every client of the command

    def flag(self, name: str):
        return self.parsed.values[name]

    @property
    def args(self) -> tuple[str, ...]:
        return self.parsed.args

    @property
    def endpoints(self) -> list[str]:
        return list(self.flag("endpoints"))

    def client(self, endpoints: list[str] | None = None) -> Client:
        """A client on `endpoints` (default: --endpoints), closed when the command ends."""
        user, password = self.credentials()
        made = Client(endpoints or self.endpoints, dial_timeout_s=self.flag("dial-timeout"),
                      command_timeout_s=self.flag("command-timeout"), tls=self.tls(),
                      user=user, password=password)
        self._clients.append(made)
        if user is not None:
            # etcdctl authenticates while it dials: a refusal is a failed connection.
            try:
                made.authenticate(user, password or "")
            except EtcdError as err:
                raise CtlError(EXIT_BAD_CONNECTION, err.message) from None
        return made

    def tls(self) -> TlsOptions:
        return TlsOptions(ca_file=self.flag("cacert"), cert_file=self.flag("cert"),
                          key_file=self.flag("key"),
                          insecure_transport=self.flag("insecure-transport"),
                          insecure_skip_verify=self.flag("insecure-skip-tls-verify"))

    def credentials(self) -> tuple[str | None, str | None]:
        """--user name[:password] and --password, as etcdctl 3.4 reads them: with
        --password, --user is the name whole; no password at all is asked for."""
        given = self.flag("user")
        if not given:
            return None, None
        if self.flag("password"):
            return given, self.flag("password")
        if ":" in given:
            name, password = given.split(":", 1)
            return name, password
        self._credentials_asked = self._credentials_asked or getpass.getpass("Password: ")
        return given, self._credentials_asked

    def close(self) -> None:
        for made in self._clients:
            made.close()

    def stdout(self, text: str) -> None:
        sys.stdout.buffer.write(text.encode())

    def stderr(self, text: str) -> None:
        sys.stdout.buffer.flush()
        sys.stderr.write(text)
        sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]  # e.g. ("endpoint", "status")
    flags: list[Flag]
    run: Callable[[Context], int | None]  # returns the exit code (None: 0)
