"""A deliberately slow disk, for `petcdutl check disk` to fail on: an ext4 file system
on a loop device, and a block-I/O cgroup that throttles writes to that device to a few
per second. A process moved into the cgroup waits in the kernel's throttle for every
write it submits, fdatasync's included; nothing in petcd is faked. Needs root, loop
devices, and the blkio (cgroup v1) or io (cgroup v2) controller; where one is missing
the fixture says which, and the test skips."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IMAGE_BYTES = 64 << 20
SETUP_TIMEOUT_S = 30
CGROUP_ROOT = Path("/sys/fs/cgroup")


class SlowDiskUnavailable(Exception):
    """Why this machine cannot make the slow disk."""


@dataclass(frozen=True, slots=True)
class SlowDisk:
    mount_dir: Path
    cgroup_procs: Path  # a process that writes its pid here is throttled

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, run from inside the throttled cgroup."""
        return ["sh", "-c", f'echo $$ > {self.cgroup_procs} && exec "$@"', "sh", *argv]


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlowDiskUnavailable(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise SlowDiskUnavailable(f"{' '.join(argv)}: {done.stderr.strip()}")


@contextmanager
def _loop_mount(base: Path) -> Iterator[Path]:
    """A fresh ext4 on a loop device (mount -o loop: detached again by umount)."""
    if os.geteuid() != 0:
        raise SlowDiskUnavailable("mounting a loop device needs root")
    image, mount_dir = base / "slow.img", base / "slow"
    mount_dir.mkdir()
    with open(image, "wb") as made:
        made.truncate(IMAGE_BYTES)
    _run("mkfs.ext4", "-q", "-F", str(image))
    _run("mount", "-o", "loop", str(image), str(mount_dir))
    try:
        yield mount_dir
    finally:
        _run("umount", str(mount_dir))


def _mounted_device(mount_dir: Path) -> str:
    """major:minor of the block device under `mount_dir`, as cgroup files name it."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mount_dir):
            return fields[2]
    raise SlowDiskUnavailable(f"{mount_dir} is not in /proc/self/mountinfo")


def _throttle_file(cgroup: Path) -> tuple[Path, str]:
    """The file that limits write IOPS in `cgroup`, and its line format."""
    if (CGROUP_ROOT / "blkio").is_dir():
        return cgroup / "blkio.throttle.write_iops_device", "{device} {iops}"
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and "io" in controllers.read_text().split():
        (CGROUP_ROOT / "cgroup.subtree_control").write_text("+io")
        return cgroup / "io.max", "{device} wiops={iops}"
    raise SlowDiskUnavailable(f"no blkio or io cgroup controller under {CGROUP_ROOT}")


@contextmanager
def _throttled_cgroup(device: str, write_iops: int, name: str) -> Iterator[Path]:
    parent = CGROUP_ROOT / "blkio" if (CGROUP_ROOT / "blkio").is_dir() else CGROUP_ROOT
    cgroup = parent / name
    try:
        cgroup.mkdir()
        throttle, line = _throttle_file(cgroup)
        throttle.write_text(line.format(device=device, iops=write_iops))
    except OSError as exc:
        _remove(cgroup)
        raise SlowDiskUnavailable(f"cgroup throttle in {parent}: {exc}") from None
    try:
        yield cgroup / "cgroup.procs"
    finally:
        _remove(cgroup)


def _remove(cgroup: Path) -> None:
    """A cgroup goes with rmdir once its processes are gone (its files cannot be
    unlinked)."""
    if cgroup.exists():
        cgroup.rmdir()


@contextmanager
def slow_disk(base: Path, write_iops: int) -> Iterator[SlowDisk]:
    """A file system under `base` whose writes, from a wrapped process, are held to
    `write_iops` a second."""
    with _loop_mount(base) as mount_dir:
        device = _mounted_device(mount_dir)
        with _throttled_cgroup(device, write_iops, f"petcd-slow-disk-{os.getpid()}") as procs:
            yield SlowDisk(mount_dir, procs)
