"""A lazy filesystem for tests: what was written but not fsynced is lost in a crash.

Like Jepsen's lazyfs (C++, not packaged): a FUSE passthrough over a backing directory
that keeps every write in memory, per file in 4 KiB pages, and writes a file's pages
to its backing file only when that file is fsynced (fsync or fdatasync). `crash()`
drops every page not yet synced: the backing directory is then what a power loss
leaves of the disk, and the mount shows just that.

What is modelled, and what is not:
- File data: lost unless fsynced, or written through an O_SYNC/O_DSYNC descriptor.
  A file grows with its unsynced writes and shrinks back at a crash. A page is lost
  or kept whole: no torn page.
- Metadata (create, mkdir, rename, unlink, truncate, fallocate, chmod) reaches the
  backing directory at once, durable without the directory fsync a real disk wants:
  a missing directory fsync is not found here.
- Reads through a read-only shared mmap work (LMDB reads its file so); the kernel
  drops its cache of a file at each open and keeps no attributes (timeouts 0), so a
  file reopened after `crash()` reads what survived.

The filesystem runs in its own process (`mounted()` starts it): FUSE's callbacks then
never wait for the test's threads' GIL, and a test process that dies leaves a process
that unmounts as soon as its stdin closes. It reads commands on stdin, one a line,
and answers each with "ok <command> <pages>" on stdout once done:
    crash [DIR]  drop every unsynced page (only those of files under DIR, a path
                 relative to the mount: one machine's disk of several in one mount)
    sync         write every file's unsynced pages to its backing file and fsync it
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import select
import stat
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PAGE_BYTES = 4096
MOUNT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0


@dataclass
class _Dirty:
    pages: dict[int, bytearray] = field(default_factory=dict)  # page number -> content
    end: int = 0  # the file's size as its unsynced writes make it (0: none past EOF)


class PageCache:
    """The unsynced writes of every file, by backing inode. No I/O of its own: the
    backing file is read and written through the callables it is given."""

    def __init__(self) -> None:
        self._files: dict[int, _Dirty] = {}

    def write(self, ino: int, offset: int, data: bytes, read_page: Callable[[int], bytes]) -> None:
        dirty = self._files.setdefault(ino, _Dirty())
        pos = 0
        while pos < len(data):
            number, at = divmod(offset + pos, PAGE_BYTES)
            chunk = min(PAGE_BYTES - at, len(data) - pos)
            page = dirty.pages.get(number)
            if page is None:  # the rest of the page is what the disk holds
                page = dirty.pages[number] = bytearray(read_page(number).ljust(PAGE_BYTES, b"\0"))
            page[at:at + chunk] = data[pos:pos + chunk]
            pos += chunk
        dirty.end = max(dirty.end, offset + len(data))

    def size(self, ino: int, backing_size: int) -> int:
        dirty = self._files.get(ino)
        return backing_size if dirty is None else max(backing_size, dirty.end)

    def read(self, ino: int, offset: int, size: int, backing: bytes, backing_size: int) -> bytes:
        """What a reader sees: `backing` (the backing file's bytes at `offset`) under
        the unsynced pages, cut at the file's size."""
        wanted = max(0, min(size, self.size(ino, backing_size) - offset))
        out = bytearray(backing[:wanted].ljust(wanted, b"\0"))
        dirty = self._files.get(ino)
        if dirty is None or wanted == 0:
            return bytes(out)
        for number in range(offset // PAGE_BYTES, (offset + wanted - 1) // PAGE_BYTES + 1):
            page = dirty.pages.get(number)
            if page is None:
                continue
            start = max(offset, number * PAGE_BYTES)
            stop = min(offset + wanted, (number + 1) * PAGE_BYTES)
            out[start - offset:stop - offset] = page[start - number * PAGE_BYTES:
                                                     stop - number * PAGE_BYTES]
        return bytes(out)

    def truncate(self, ino: int, length: int) -> None:
        dirty = self._files.get(ino)
        if dirty is None:
            return
        for number in [n for n in dirty.pages if n * PAGE_BYTES >= length]:
            del dirty.pages[number]
        tail = dirty.pages.get(length // PAGE_BYTES)
        if tail is not None:  # what lies past the new end reads as zeros if regrown
            tail[length % PAGE_BYTES:] = bytes(PAGE_BYTES - length % PAGE_BYTES)
        dirty.end = min(dirty.end, length)

    def flush(self, ino: int, backing_size: int, write_at: Callable[[int, bytes], None]) -> int:
        """Write the file's unsynced pages through `write_at`, up to its size; how many."""
        dirty = self._files.pop(ino, None)
        if dirty is None:
            return 0
        limit = max(backing_size, dirty.end)
        for number, page in sorted(dirty.pages.items()):
            start = number * PAGE_BYTES
            if start < limit:
                write_at(start, bytes(page[:limit - start]))
        return len(dirty.pages)

    def inodes(self) -> list[int]:
        return list(self._files)

    def forget(self, ino: int) -> int:
        """Drop the file's unsynced pages; how many there were."""
        dirty = self._files.pop(ino, None)
        return 0 if dirty is None else len(dirty.pages)

    def drop_all(self) -> int:
        return sum(self.forget(ino) for ino in self.inodes())


class LazyOps:
    """The FUSE operations (mfusepy's high-level API, called with fh = a backing fd)."""

    use_ns = True  # times in integer nanoseconds

    def __init__(self, backing: str) -> None:
        self._root = os.path.realpath(backing)
        self._cache = PageCache()
        self._lock = threading.Lock()  # the cache, between FUSE and the command thread
        self._ino: dict[int, int] = {}  # fh -> backing inode
        self._open: dict[int, int] = {}  # backing inode -> open handles
        self._sync_fhs: set[int] = set()  # opened O_SYNC or O_DSYNC: writes go to disk
        self._keep: dict[int, int] = {}  # backing inode -> an fd kept to flush it

    def _path(self, path: str) -> str:
        return os.path.join(self._root, path.lstrip("/"))

    # -- commands ------------------------------------------------------------------

    def crash(self, under: str = "") -> int:
        """Drop unsynced pages (of files under `under` only, if given); how many."""
        with self._lock:
            if not under:
                return self._cache.drop_all()
            return sum(self._cache.forget(os.lstat(os.path.join(top, name)).st_ino)
                       for top, dirs, files in os.walk(self._path(under))
                       for name in dirs + files)

    def sync_all(self) -> int:
        """Write every file's unsynced pages to disk; how many."""
        with self._lock:
            pages = 0
            for ino in self._cache.inodes():
                fd = self._keep.get(ino)
                if fd is not None:
                    pages += self._flush(ino, fd)
                    os.fsync(fd)
            return pages

    # -- files ---------------------------------------------------------------------

    def _opened(self, fd: int, flags: int) -> int:
        ino = os.fstat(fd).st_ino
        self._ino[fd] = ino
        self._open[ino] = self._open.get(ino, 0) + 1
        self._keep.setdefault(ino, fd)
        if flags & (os.O_SYNC | os.O_DSYNC):
            self._sync_fhs.add(fd)
        if flags & os.O_TRUNC:
            self._cache.truncate(ino, 0)
        return fd

    def _backing_flags(self, flags: int) -> int:
        # Read-write whatever was asked (a page's rest is read before a write), and
        # no O_APPEND: the kernel gives every write its offset, and pwrite on an
        # O_APPEND fd would ignore it.
        access = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
        return (flags & ~access & ~os.O_APPEND) | os.O_RDWR | os.O_CLOEXEC

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            return self._opened(os.open(self._path(path), self._backing_flags(flags)), flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        with self._lock:
            fd = os.open(self._path(path), self._backing_flags(flags) | os.O_CREAT, mode)
            return self._opened(fd, flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            backing = os.pread(fh, size, offset)
            return self._cache.read(self._ino[fh], offset, size, backing, os.fstat(fh).st_size)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            ino = self._ino[fh]
            self._cache.write(ino, offset, data,
                              lambda n: os.pread(fh, PAGE_BYTES, n * PAGE_BYTES))
            if fh in self._sync_fhs:
                self._flush(ino, fh)
                os.fdatasync(fh)
            return len(data)

    def _flush(self, ino: int, fd: int) -> int:
        return self._cache.flush(ino, os.fstat(fd).st_size,
                                 lambda offset, data: _pwrite_all(fd, data, offset))

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._lock:
            self._flush(self._ino[fh], fh)
            (os.fdatasync if datasync else os.fsync)(fh)
            return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # close() is no sync

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            ino = self._ino.pop(fh)
            self._sync_fhs.discard(fh)
            self._open[ino] -= 1
            if self._keep.get(ino) == fh:
                del self._keep[ino]
                others = [f for f, i in self._ino.items() if i == ino]
                if others:
                    self._keep[ino] = others[0]
            if self._open[ino] == 0:
                del self._open[ino]
                if os.fstat(fh).st_nlink == 0:  # unlinked: its inode may be reused
                    self._cache.forget(ino)
            os.close(fh)
            return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._lock:
            if fh is None:
                ino = os.lstat(self._path(path)).st_ino
                os.truncate(self._path(path), length)
            else:
                ino = self._ino[fh]
                os.ftruncate(fh, length)
            self._cache.truncate(ino, length)
            return 0

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        if mode != 0:
            raise OSError(95, "only plain preallocation (mode 0) is supported")  # EOPNOTSUPP
        os.posix_fallocate(fh, offset, size)
        return 0

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        with self._lock:
            st = os.lstat(self._path(path)) if fh is None else os.fstat(fh)
            attrs = {key: getattr(st, key) for key in (
                "st_mode", "st_nlink", "st_uid", "st_gid", "st_ino", "st_blocks")}
            attrs |= {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
                      "st_ctime": st.st_ctime_ns}
            attrs["st_size"] = self._cache.size(st.st_ino, st.st_size) if stat.S_ISREG(
                st.st_mode) else st.st_size
            return attrs

    # -- names (durable at once) -----------------------------------------------------

    def _forget_if_last_link(self, backing_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(backing_path)
            if st.st_nlink <= 1 and st.st_ino not in self._open:
                self._cache.forget(st.st_ino)

    def unlink(self, path: str) -> int:
        with self._lock:
            self._forget_if_last_link(self._path(path))
            os.unlink(self._path(path))
            return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            self._forget_if_last_link(self._path(new))
            os.rename(self._path(old), self._path(new))
            return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._path(path), ns=times)
        return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        fd = os.open(self._path(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
            "f_favail", "f_flag", "f_namemax")}


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


# -- the test's side ------------------------------------------------------------------


def unavailable() -> str | None:
    """Why no lazy filesystem can be mounted here, or None if one can."""
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "FUSE is unavailable: /dev/fuse is missing or not ours"
    if _fusermount() is None:
        return "FUSE is unavailable: no fusermount3 or fusermount (Debian package fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "FUSE is unavailable: the Python package mfusepy is not installed"
    if not (ctypes.util.find_library("fuse3") or ctypes.util.find_library("fuse")):
        return "FUSE is unavailable: no libfuse (Debian package libfuse3-3)"
    return None


def _fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


class LazyFs:
    """A mounted lazy filesystem: `mount` is where to use it."""

    def __init__(self, mount: Path, backing: Path, proc: subprocess.Popen[bytes]) -> None:
        self.mount, self.backing, self._proc = mount, backing, proc

    def crash(self, under: Path | None = None) -> int:
        """Drop every write not yet fsynced, as a power loss would; only those to
        files under `under` (a directory in the mount) if given. Returns how many
        pages were lost."""
        return self._command("crash" if under is None
                             else f"crash {under.relative_to(self.mount)}")

    def sync(self) -> int:
        """Write every unsynced page to disk; returns how many."""
        return self._command("sync")

    def _command(self, word: str) -> int:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{word}\n".encode())
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], COMMAND_TIMEOUT_S)
        answer = self._proc.stdout.readline().decode() if ready else ""
        done, _, pages = answer.strip().rpartition(" ")
        assert done == f"ok {word}", f"lazyfs did not do {word!r}: {answer!r}"
        return int(pages)


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[LazyFs]:
    """A lazy filesystem at root/lazy over root/lazy-backing, unmounted at the end
    (even when the test failed); its process logs to root/lazyfs.log."""
    mount, backing = root / "lazy", root / "lazy-backing"
    mount.mkdir()
    backing.mkdir()
    with open(root / "lazyfs.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, __file__, str(backing), str(mount)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(mount):
            assert proc.poll() is None and time.monotonic() < deadline, \
                f"lazyfs did not mount: {(root / 'lazyfs.log').read_text()[-2000:]}"
            time.sleep(0.05)
        yield LazyFs(mount, backing, proc)
    finally:
        _unmount(mount)
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(MOUNT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(MOUNT_TIMEOUT_S)


def _unmount(mount: Path) -> None:
    fusermount = _fusermount()
    assert fusermount is not None
    if os.path.ismount(mount) and subprocess.run([fusermount, "-u", str(mount)],
                                                 capture_output=True).returncode != 0:
        subprocess.run([fusermount, "-u", "-z", str(mount)], capture_output=True)  # busy


# -- the filesystem's process -----------------------------------------------------------


def _serve_commands(ops: LazyOps, mount: str) -> None:
    commands: dict[str, Callable[..., int]] = {"crash": ops.crash, "sync": ops.sync_all}
    for line in sys.stdin:
        word, *args = line.split()
        pages = commands[word](*args)
        print(f"ok {line.strip()} {pages}", flush=True)
    _unmount(Path(mount))  # the test process is gone: leave no mount behind


def main(backing: str, mount: str) -> None:
    import mfusepy  # only here: the test's side must import without libfuse

    ops = LazyOps(backing)
    threading.Thread(target=_serve_commands, args=(ops, mount), daemon=True).start()
    # Timeouts 0: sizes and names are asked each time, so a crash's shrinking shows.
    mfusepy.FUSE(ops, mount, foreground=True, nothreads=True, fsname="lazyfs",
                 attr_timeout=0, entry_timeout=0, negative_timeout=0, hard_remove=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
