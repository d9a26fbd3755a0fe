"""A read-only store in another process sees committed writes and follows defragment."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import MvccStore

TIMEOUT_S = 30
Child = Callable[[str, "mp.Queue[str]", "mp.Queue[object]"], None]


@contextmanager
def writer_and_reader(tmp_path: Path, target: Child) -> Iterator[
        tuple[MvccStore, "mp.Queue[str]", "mp.Queue[object]", mp.process.BaseProcess]]:
    """A writer store holding key "a" at revision 2, and a child process running
    `target(path, requests, answers)` on it; the child is killed if still alive."""
    path = str(tmp_path / "db")
    ctx = mp.get_context("spawn")  # no LMDB handle inherited across fork
    requests: "mp.Queue[str]" = ctx.Queue()
    answers: "mp.Queue[object]" = ctx.Queue()
    with MvccStore.open(path, sync=False) as writer:
        writer.apply(1, 1, pb.PutRequest(key=b"a", value=b"1"))
        child = ctx.Process(target=target, args=(path, requests, answers))
        child.start()
        try:
            yield writer, requests, answers, child
        finally:
            if child.is_alive():
                child.kill()


def _reader(path: str, requests: "mp.Queue[str]", answers: "mp.Queue[object]") -> None:
    """Child process: answers each request with what its read-only store sees."""
    with MvccStore.open(path, readonly=True) as store:
        while (what := requests.get(timeout=TIMEOUT_S)) != "stop":
            if what == "write":
                try:
                    store.apply(999, 1, pb.PutRequest(key=b"x", value=b"y"))
                    answers.put("wrote")
                except AssertionError:
                    answers.put("refused")
                continue
            resp = store.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"))
            answers.put((resp.header.revision, [(kv.key, kv.value) for kv in resp.kvs], store.backend.generation))


def test_reader_process_sees_commits_and_survives_defragment(tmp_path: Path) -> None:
    with writer_and_reader(tmp_path, _reader) as (writer, requests, answers, child):
        def ask(what: str = "read") -> object:
            requests.put(what)
            return answers.get(timeout=TIMEOUT_S)

        assert ask() == (2, [(b"a", b"1")], 1)
        writer.apply(2, 1, pb.PutRequest(key=b"b", value=b"2"))
        assert ask() == (3, [(b"a", b"1"), (b"b", b"2")], 1)
        for i in range(200):
            writer.apply(3 + i, 1, pb.PutRequest(key=b"c", value=b"v" * 2000))
        writer.apply(203, 1, pb.CompactionRequest(revision=writer.current_revision()))
        writer.defragment()
        writer.apply(204, 1, pb.PutRequest(key=b"d", value=b"4"))
        rev, kvs, generation = ask()  # type: ignore[misc]
        assert (rev, generation) == (writer.current_revision(), 2)
        assert [k for k, _ in kvs] == [b"a", b"b", b"c", b"d"]
        assert ask("write") == "refused"
        requests.put("stop")
        child.join(TIMEOUT_S)
        assert child.exitcode == 0


def test_reader_follows_two_defragments_that_happened_between_its_reads(tmp_path: Path) -> None:
    """The second defragment's CURRENT may get the inode the first one freed: a
    reader that compared inodes alone saw nothing change, and stat'ed a removed file."""
    with writer_and_reader(tmp_path, _reader) as (writer, requests, answers, child):
        def ask() -> object:
            requests.put("read")
            return answers.get(timeout=TIMEOUT_S)

        assert ask() == (2, [(b"a", b"1")], 1)
        for generation in (2, 3, 4, 5):
            writer.defragment()
            writer.apply(generation, 1, pb.PutRequest(key=b"a", value=b"%d" % generation))
            if generation % 2:
                assert ask() == (generation + 1, [(b"a", b"%d" % generation)], generation)
        requests.put("stop")
        child.join(TIMEOUT_S)
        assert child.exitcode == 0


def _size_reader(path: str, requests: "mp.Queue[str]", answers: "mp.Queue[object]") -> None:
    """Child process: sizes its store while a defragment replaces the file under it.
    `stale()` answers False once, as when the check ran just before the publish."""
    from petcd.storage.mvcc import env

    with MvccStore.open(path, readonly=True) as store:
        store.current_revision()  # open generation 1
        answers.put(store.backend.generation)
        requests.get(timeout=TIMEOUT_S)  # the writer has defragmented meanwhile
        real_stale = env.Backend.stale
        answered: list[bool] = []

        def stale_late(backend: env.Backend) -> bool:
            if not answered:
                answered.append(False)
                return False
            return real_stale(backend)

        env.Backend.stale = stale_late  # type: ignore[method-assign]
        try:
            answers.put((store.db_size_bytes(), store.backend.generation))
        except OSError as err:
            answers.put(repr(err))


def test_reader_sizes_the_store_while_a_defragment_replaces_it(tmp_path: Path) -> None:
    with writer_and_reader(tmp_path, _size_reader) as (writer, requests, answers, child):
        assert answers.get(timeout=TIMEOUT_S) == 1
        writer.defragment()  # generation 2 published, generation 1 removed
        requests.put("go")
        assert answers.get(timeout=TIMEOUT_S) == (writer.db_size_bytes(), 2)
        child.join(TIMEOUT_S)
