"""Running a command as Go's os/exec does, and the error text Go gives when it fails
(etcdctl's `watch -- command` and `lock name command` print it)."""

from __future__ import annotations

import signal
import subprocess

from petcd.client.ctl import gofmt


def run(args: tuple[str, ...], env: dict[str, str] | None = None) -> str:
    """Run `args` to its end (stdin, stdout and stderr inherited); "" if it
    succeeded, else Go's error text ("exit status 3", "signal: killed", ...)."""
    try:
        return _exit_problem(subprocess.run(list(args), env=env).returncode)
    except OSError as exc:
        return _start_problem(args[0], exc)


def _exit_problem(code: int) -> str:
    """Go's exec.ExitError text for a return code ("" for success)."""
    if code > 0:
        return f"exit status {code}"
    if code < 0:
        return "signal: " + _go_text(signal.strsignal(-code) or f"signal {-code}")
    return ""


def _start_problem(program: str, exc: OSError) -> str:
    """Go's text for a command that could not start."""
    if "/" not in program and isinstance(exc, FileNotFoundError):
        return f"exec: {gofmt.quote(program.encode())}: executable file not found in $PATH"
    return f"fork/exec {program}: {_go_text(exc.strerror or str(exc))}"


def _go_text(text: str) -> str:
    """Go's syscall messages are C's, starting lower case."""
    return text[:1].lower() + text[1:]
