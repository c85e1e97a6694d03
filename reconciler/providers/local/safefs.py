"""Reading and writing the local backend's state files without trusting them.

The state directory is plain files that anyone with write access to the checkout can
shape: a definition or lock replaced by a symlink to ``/dev/zero`` used to be read
until memory ran out, and a ``history.jsonl`` symlink was appended through, writing
outside the state directory. So every state file goes through here:

- reads are bounded (a limit per kind of file, below) and refuse anything but a
  regular file: the final component is opened ``O_NOFOLLOW`` (a symlink is refused,
  wherever it points) and ``O_NONBLOCK`` (a FIFO cannot hang the open), then
  ``fstat`` checks what was actually opened;
- the folder a file is in must resolve inside the state directory (a symlinked
  ``webservices/`` or ``models/<fp>/`` that leads out of it is refused);
- writes are atomic through a temp file created ``O_CREAT|O_EXCL|O_NOFOLLOW`` (never
  someone else's file or link), and history appends go through
  ``O_APPEND|O_NOFOLLOW``.

Each refusal is one ``ProviderError`` naming the path and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from reconciler import errors

# Read limits, per kind of state file. Each is far above what retrain writes, and low
# enough that a hostile or corrupted file is refused before it costs real memory.
DEFINITION_LIMIT = 16 << 20  # 16 MiB: 4x Resource Manager's 4 MiB request limit for a resource
METADATA_LIMIT = 1 << 20  # 1 MiB: metrics + lineage of one model are a few KiB
LOCK_LIMIT = 64 << 10  # 64 KiB: a lock record is ~200 bytes
HISTORY_LIMIT = 256 << 20  # 256 MiB: ~1M changes at ~250 bytes a line
CHUNK = 1 << 20  # 1 MiB: read size per system call

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
SYMLINK = "it is a symbolic link (state files are never followed through links)"
_MODE = 0o644  # state files: the owner writes, anyone may read (no secrets are kept in them)


def read_bytes(path: Path, *, root: Path, limit: int, what: str) -> bytes | None:
    """The bytes of ``path`` (at most ``limit``), or None when it does not exist."""
    inside(path, root=root, what=what)
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _refusal(e, path, what) from e
    try:
        _regular(fd, path, what, "read")
        return _read_limited(fd, path, limit, what)
    finally:
        os.close(fd)


class Folder:
    """A state folder checked and opened once, its files read relative to it
    (``openat``): 10,000 definitions cost 10,000 opens, not also 20,000 ``realpath``
    walks of the folder; a file is refused exactly as ``read_bytes`` refuses it."""

    def __init__(self, folder: Path, *, root: Path, what: str) -> None:
        self.folder, self.what = folder, what
        inside(folder / "-", root=root, what=what)
        try:
            self.fd: int | None = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = None
        except OSError as e:
            raise _refusal(e, folder, what) from e

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def regular(self, name: str) -> os.stat_result | None:
        """The ``lstat`` of ``name`` when it is a regular file (None otherwise)."""
        if self.fd is None:
            return None
        try:
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def read(self, name: str, limit: int) -> tuple[bytes | None, os.stat_result | None]:
        """The bytes of ``name`` (None when missing) and the ``fstat`` of what was read."""
        if self.fd is None:
            return None, None
        return _read_at(self.fd, self.folder / name, limit, self.what)


def _read_at(
    dir_fd: int, path: Path, limit: int, what: str
) -> tuple[bytes | None, os.stat_result | None]:
    try:
        fd = os.open(path.name, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        raise _refusal(e, path, what) from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise errors.ProviderError(
                f"cannot read {what}: {_kind(info.st_mode)}", where=str(path)
            )
        return _read_limited(fd, path, limit, what), info
    finally:
        os.close(fd)


def read_text(path: Path, *, root: Path, limit: int, what: str) -> str | None:
    """``read_bytes`` as UTF-8 text."""
    data = read_bytes(path, root=root, limit=limit, what=what)
    return None if data is None else decode(data, path, what)


def decode(data: bytes, path: Path | str, what: str) -> str:
    """A state file's bytes as UTF-8 text, or a located error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.ProviderError(
            f"cannot read {what}: not valid utf-8 (byte {e.start})", where=str(path)
        ) from e


def is_regular_file(path: Path, *, root: Path, what: str, verb: str = "read") -> bool:
    """True for a regular file, False when missing; a symlink or anything else is refused
    (``verb`` says what was about to be done with it, for the message)."""
    inside(path, root=root, what=what)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise _refusal(e, path, what, verb=verb) from e
    if stat.S_ISLNK(st.st_mode):
        raise errors.ProviderError(f"cannot {verb} {what}: {SYMLINK}", where=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise errors.ProviderError(f"cannot {verb} {what}: {_kind(st.st_mode)}", where=str(path))
    return True


def write_atomic(path: Path, data: bytes, *, root: Path, what: str) -> None:
    """Replace ``path`` with ``data`` in one rename: readers see the old or the new bytes."""
    inside(path, root=root, what=what)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        inside(path, root=root, what=what)  # again: the folder may have just been made
        fd = os.open(tmp, _CREATE, _MODE)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise errors.ProviderError(
            f"cannot write {what}: {e.strerror or type(e).__name__}", where=str(path)
        ) from e


def sweep_temporary(folder: Path) -> list[Path]:
    """Remove the temporary files ``write_atomic`` left in ``folder`` when a process died
    between writing and renaming; call it only while holding the apply lock."""
    removed = []
    for path in folder.glob(".*.tmp"):  # write_atomic's names: .NAME.HEX.tmp
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def append_line(path: Path, line: bytes, *, root: Path, what: str) -> None:
    """Append one line (and fsync). A last line torn by a crash is ended first, so it
    stays its own (bad) line instead of corrupting the new one."""
    inside(path, root=root, what=what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        inside(path, root=root, what=what)
        fd = os.open(path, _APPEND, _MODE)
    except OSError as e:
        raise _refusal(e, path, what, verb="write") from e
    try:
        _regular(fd, path, what, "write")
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        _write_all(fd, (b"\n" if torn else b"") + line)
        os.fsync(fd)
    except OSError as e:
        raise _refusal(e, path, what, verb="write") from e
    finally:
        os.close(fd)


def inside(path: Path, *, root: Path, what: str) -> None:
    """Refuse ``path`` when its folder resolves outside ``root`` (through a symlink)."""
    top = os.path.realpath(root)
    folder = os.path.realpath(path.parent)
    if folder != top and not folder.startswith(top.rstrip(os.sep) + os.sep):
        raise errors.ProviderError(
            f"refusing {what}: its folder is a symbolic link that leads out of the state "
            f"directory {root}",
            where=str(path),
        )


def _regular(fd: int, path: Path, what: str, verb: str) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise errors.ProviderError(f"cannot {verb} {what}: {_kind(mode)}", where=str(path))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if stat.S_ISFIFO(mode):
        return "it is a FIFO, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device, not a regular file"
    return "it is not a regular file"


def _read_limited(fd: int, path: Path, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = os.read(fd, min(CHUNK, limit + 1 - size))
        except OSError as e:
            raise _refusal(e, path, what) from e
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise errors.ProviderError(
        f"cannot read {what}: it is larger than its limit of {limit:,} bytes", where=str(path)
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _refusal(e: OSError, path: Path, what: str, *, verb: str = "read") -> errors.ProviderError:
    """One line for an ``OSError`` on a state file; a symlink (``ELOOP`` under
    ``O_NOFOLLOW``) is named as such."""
    if e.errno == errno.ELOOP and os.path.islink(path):
        return errors.ProviderError(f"cannot {verb} {what}: {SYMLINK}", where=str(path))
    return errors.ProviderError(
        f"cannot {verb} {what}: {e.strerror or type(e).__name__}", where=str(path)
    )
