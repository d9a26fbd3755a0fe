"""The JSON gateway's POST /v3/watch answers as etcd 3.4's does: the same writes and
the same watch requests on a fresh 1-member etcd and a fresh 1-member petcd (so the
same revisions) give the same status, Content-Type and lines, each line in its own HTTP
chunk; lines are compared byte for byte but for the cluster and member ids, error
bodies parsed (petcd's have etcd 3.5's field order).

The cases: requests sent one at a time on one connection (create from history with
prev_kv, an event, a progress request, a cancel and nothing after it); a body of
creates (a client's watch id with NOPUT, an empty range, a duplicate id, a server-chosen
id) and their events; a compacted start revision; a first request cut short or not
JSON (the call fails; Go's words for bad JSON are not Python's, so that message is
only checked to be there); and progress notifications every second, skipped for a
watch that was sent an event in the interval.

Where petcd follows newer etcd on purpose, no case asks: a negative start revision
(etcd 3.4 creates the watch and cancels it as compacted; petcd refuses it as etcd
main does), notifications to a watch that starts in the future (3.4 sends them) and a
progress request while a watch is still catching up (3.4 answers at once).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.cluster.gateway_watch import GatewayWatch
from tests.cluster.members import b64, running

PROGRESS_FLAGS = ["--experimental-watch-progress-notify-interval", "1s"]
DECLARED_BODY_BYTES = 1024 * 1024  # see GatewayWatch: etcd 3.4 answers as it goes
HISTORY_SYNC_S = 0.5  # etcd syncs a watch from history every 100 ms
QUIET_S = 0.3
NUDGES = 10
PROGRESS_RUN_S = 2.6  # two or more ticks of 1-1.1 s
BUSY_PUT_EVERY_S = 0.2
IDS = re.compile(rb'"cluster_id":"[0-9]+","member_id":"[0-9]+",')
REVISION = re.compile(rb'"revision":"[0-9]+",')


def _post(port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _put(port: int, key: str, value: str) -> None:
    _post(port, "/v3/kv/put", {"key": b64(key), "value": b64(value)})


def _line(w: GatewayWatch) -> bytes:
    """The next line as it came, but for the cluster's and the member's ids."""
    return IDS.sub(b"", w.next_line())


def _nudged_line(w: GatewayWatch) -> bytes:
    """The next line, sending newlines (whitespace between requests) until it comes:
    etcd 3.4 writes its first line only once its request reader lets go of the body
    between two reads (Go's HTTP/1 server), which may take one read more."""
    for _ in range(NUDGES):
        if not w.quiet(QUIET_S):
            break
        w.write(b"\n")
    return _line(w)


def _until_quiet(w: GatewayWatch) -> list[bytes]:
    """Lines that still come (none, if the server is done)."""
    lines = []
    while not w.quiet(QUIET_S):
        lines.append(_line(w))
    return lines


def _whole_body(port: int, requests: list[dict[str, Any]]) -> GatewayWatch:
    """A connection whose body, all requests at once, is sent (as `curl -d` does)."""
    body = b"\n".join(json.dumps(r).encode() for r in requests)
    w = GatewayWatch(port, content_length_bytes=len(body))
    w.write(body)
    return w


def _create(key: str, **options: Any) -> dict[str, Any]:
    return {"create_request": {"key": b64(key), **options}}


def _one_at_a_time(port: int) -> tuple[object, ...]:
    with GatewayWatch(port, content_length_bytes=DECLARED_BODY_BYTES) as w:
        w.send(_create("w/", range_end=b64("w0"), start_revision="2", prev_kv=True))
        time.sleep(HISTORY_SYNC_S)  # etcd 3.4 answers progress before history it has yet to send
        w.send({"progress_request": {}})
        lines = [_nudged_line(w)] + [_line(w) for _ in range(2)]  # created, history, progress
        _put(port, "w/c", "1")
        lines.append(_line(w))
        w.send({"cancel_request": {"watch_id": "0"}})
        lines.append(_line(w))
        _put(port, "w/c", "2")
        lines += _until_quiet(w)
        return w.status, w.headers.get("content-type"), w.line_per_chunk, lines


def _refusals_and_ids(port: int) -> tuple[object, ...]:
    with _whole_body(port, [_create("w/a", watch_id="7", filters=["NOPUT"]),
                            _create("z", range_end=b64("a")),
                            _create("w/a", watch_id="7"),
                            _create("w/b")]) as w:
        lines = [_line(w) for _ in range(4)]
        _post(port, "/v3/kv/deleterange", {"key": b64("w/a")})
        lines.append(_line(w))
        _put(port, "w/b", "2")
        lines.append(_line(w))
        _put(port, "w/a", "4")  # NOPUT: nothing
        lines += _until_quiet(w)
        return w.status, w.headers.get("content-type"), w.line_per_chunk, lines


def _compacted(port: int) -> tuple[object, ...]:
    with _whole_body(port, [_create("w/a", start_revision="3")]) as w:
        lines = [_line(w) for _ in range(2)] + _until_quiet(w)
        return w.status, w.headers.get("content-type"), w.line_per_chunk, lines


def _refused_call(port: int, body: bytes) -> tuple[int, str, dict[str, Any]]:
    with GatewayWatch(port, content_length_bytes=len(body)) as w:
        w.write(body)
        status, content_type, data = w.response()
        return status, content_type, json.loads(data)


def _progress(port: int) -> dict[str, object]:
    """An idle watch and a busy one, both asking for progress notifications: what
    each got while a put to the busy one's key came every BUSY_PUT_EVERY_S. Only the
    busy watch's notifications after its first event count: a tick between its
    creation and that event ends an interval without one (petcd's ticks are the
    member's, etcd's the stream's, so either may have such a tick)."""
    got: dict[str, list[bytes]] = {"idle": [], "busy": []}
    stop = threading.Event()

    def busy_writer() -> None:
        while not stop.wait(BUSY_PUT_EVERY_S):
            _put(port, "busy", "x")

    with _whole_body(port, [_create("idle", progress_notify=True),
                            _create("busy", progress_notify=True)]) as w:
        writer = threading.Thread(target=busy_writer)
        writer.start()
        try:
            busy_since_event = False
            for line in _lines_for(w, PROGRESS_RUN_S):
                result = json.loads(line)["result"]
                busy = result.get("watch_id") == "1"
                busy_since_event = busy_since_event or (busy and "events" in result)
                notification = not (result.get("created") or result.get("events"))
                if notification and (busy_since_event or not busy):
                    got["busy" if busy else "idle"].append(line)
        finally:
            stop.set()
            writer.join()
    # its revision is how far the busy writer had got
    first = REVISION.sub(b"", got["idle"][0]) if got["idle"] else b""
    return {"idle notified": len(got["idle"]), "busy notified": len(got["busy"]),
            "a notification": first}


def _lines_for(w: GatewayWatch, seconds: float) -> Iterator[bytes]:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if not w.quiet(left):
            yield _line(w)


def _scenario(port: int) -> dict[str, object]:
    for key, value in [("w/a", "1"), ("w/b", "1"), ("w/a", "2")]:  # revisions 2, 3, 4
        _put(port, key, value)
    _post(port, "/v3/kv/deleterange", {"key": b64("w/a")})  # 5
    _put(port, "w/a", "3")  # 6
    seen: dict[str, object] = {"one request at a time": _one_at_a_time(port),
                               "refusals and ids": _refusals_and_ids(port)}
    _post(port, "/v3/kv/compaction", {"revision": "5"})
    seen["compacted start revision"] = _compacted(port)
    seen["first request cut short"] = _refused_call(port, b'{"create_request": {"key": "dw=="}')
    status, content_type, error = _refused_call(port, b"nope")
    seen["first request not json"] = (status, content_type, error["code"],
                                      error["error"] == error["message"] != "")
    seen["progress"] = _progress(port)
    return seen


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, object]]:
    if not etcd_available():
        raise RuntimeError("/usr/bin/etcd is needed (.ci/run installs Debian's etcd-server)")
    etcd = EtcdCluster(tmp_path_factory.mktemp("etcd"), 1, PROGRESS_FLAGS)
    etcd.start()
    try:
        seen = {"etcd": _scenario(etcd.members[0].client_port)}
    finally:
        etcd.stop()
    with running(tmp_path_factory.mktemp("petcd"), 1, PROGRESS_FLAGS) as petcd:
        petcd.wait_leader()
        seen["petcd"] = _scenario(petcd.members[0].client_port)
    return seen


@pytest.mark.parametrize("case", ["one request at a time", "refusals and ids",
                                  "compacted start revision", "first request cut short",
                                  "first request not json"])
def test_gateway_watch_answers_as_etcd_does(outputs, case):
    assert outputs["petcd"][case] == outputs["etcd"][case]


@pytest.mark.parametrize("server", ["etcd", "petcd"])
def test_progress_notifications_skip_a_watch_that_was_sent_an_event(outputs, server):
    progress = outputs[server]["progress"]
    assert progress["busy notified"] == 0, progress
    assert progress["idle notified"] >= 2, progress
    assert progress["a notification"] == outputs["etcd"]["progress"]["a notification"]


def test_the_scenario_saw_what_etcd_defines(outputs):
    """The comparison is worth something: etcd's own answers are the expected ones."""
    status, content_type, line_per_chunk, lines = outputs["etcd"]["one request at a time"]
    assert (status, content_type, line_per_chunk) == (200, "application/json", True)
    results = [json.loads(line)["result"] for line in lines]
    assert [sorted(result) for result in results] == [
        ["created", "header"], ["events", "header"], ["header", "watch_id"],
        ["events", "header"], ["canceled", "header"]]
    assert [e["kv"]["mod_revision"] for e in results[1]["events"]] == ["2", "3", "4", "5", "6"]
    _, _, _, compacted = outputs["etcd"]["compacted start revision"]
    assert json.loads(compacted[1])["result"]["compact_revision"] == "5"
    assert outputs["etcd"]["progress"]["a notification"] == (
        b'{"result":{"header":{"raft_term":"2"}}}')
    assert outputs["etcd"]["first request cut short"] == (500, "application/json", {
        "error": "unexpected EOF", "message": "unexpected EOF", "code": 2})
