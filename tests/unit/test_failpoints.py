"""Test-only failpoints: a bad value refuses to start, a set one is logged."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from petcd.actors import failpoints
from petcd.actors.skeleton import EXIT_BAD_CONFIG, Stop


def test_unset_is_zero_and_quiet(monkeypatch):
    monkeypatch.delenv(failpoints.WAL_SLEEP, raising=False)
    with capture_logs() as logs:
        assert failpoints.sleep_ms(failpoints.WAL_SLEEP, structlog.get_logger(), "here") == 0
    assert logs == []


def test_a_set_failpoint_is_logged_with_where_it_sleeps(monkeypatch):
    monkeypatch.setenv(failpoints.WAL_SLEEP, " 250 ")
    with capture_logs() as logs:
        assert failpoints.sleep_ms(failpoints.WAL_SLEEP, structlog.get_logger(),
                                   "before every fsync") == 250
    assert [(e["event"], e["sleep_ms"]) for e in logs] == [
        ("failpoint active: sleeping before every fsync", 250)]


@pytest.mark.parametrize("text", ["-1", "soon", "1.5"])
def test_a_bad_value_refuses_to_start(monkeypatch, text):
    monkeypatch.setenv(failpoints.APPLY_COMMIT_SLEEP, text)
    with pytest.raises(Stop) as stopped:
        failpoints.sleep_ms(failpoints.APPLY_COMMIT_SLEEP, structlog.get_logger(), "here")
    assert stopped.value.status == EXIT_BAD_CONFIG
    assert stopped.value.fields["error"].startswith(f"{failpoints.APPLY_COMMIT_SLEEP}={text}: ")
