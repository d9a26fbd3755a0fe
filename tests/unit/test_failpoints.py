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


@pytest.fixture
def disarmed():
    yield
    failpoints._armed = None  # this process is the test runner: leave nothing armed


@pytest.mark.parametrize(("text", "armed"), [
    ("", None), ("  ", None), ("beforeCommit", ("beforeCommit", 1)),
    (" walBeforeSync:3 ", ("walBeforeSync", 3))])
def test_a_crash_point_and_its_count_are_parsed(text, armed):
    assert failpoints.parse_crash(text) == armed


@pytest.mark.parametrize(("text", "error"), [
    ("beforecommit", "unknown point 'beforecommit'; the points: afterCommit, "),
    ("walBeforeSync:", "the count after ':' must be an integer, not ''"),
    ("walBeforeSync:0", "the count after ':' must be >= 1, not 0"),
    ("walBeforeSync:x", "the count after ':' must be an integer, not 'x'"),
    ("walBeforeSync:1:2", "the count after ':' must be an integer, not '1:2'")])
def test_a_bad_crash_point_refuses_to_start_naming_the_problem(monkeypatch, disarmed, text,
                                                               error):
    monkeypatch.setenv(failpoints.CRASH, text)
    with pytest.raises(Stop) as stopped:
        failpoints.arm_crash(structlog.get_logger())
    assert stopped.value.status == EXIT_BAD_CONFIG
    assert stopped.value.fields["error"].startswith(f"{failpoints.CRASH}={text}: {error}")


def test_an_armed_crash_point_is_logged_and_other_points_pass(monkeypatch, disarmed):
    monkeypatch.setenv(failpoints.CRASH, "raftAfterSaveSnap:2")
    with capture_logs() as logs:
        failpoints.arm_crash(structlog.get_logger())
    assert [(e["event"], e["point"], e["nth"]) for e in logs] == [
        ("failpoint active: crashing", "raftAfterSaveSnap", 2)]
    failpoints.crash_here("walBeforeSync")  # another point: nothing happens
    failpoints.crash_here("raftAfterSaveSnap", when=lambda: False)  # not counted
    failpoints.crash_here("raftAfterSaveSnap")  # the first time of two: goes on
    assert failpoints._reached == 1
