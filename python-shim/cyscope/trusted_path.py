"""Reaching a file only through folders no other user can change (shared objects are code).

A path is *trusted* when the file and every folder on the way from ``/`` belong to the
kernel's user or to root and no other user can write to them. A folder that is
writable by others is still accepted above a private area when it has the sticky bit
(``/tmp``): there only an entry's owner can rename or delete it. Below ``private_from``
(the top of cyscope's own cache) nothing may be writable by others at all.

The walk opens each name relative to the folder opened before it, with ``O_NOFOLLOW``,
and checks the open descriptor with ``fstat``: what is checked is what was opened, and
no symlink is followed (a symlink fails the walk). Once a path is trusted only its
owner or root can rename, replace or rewrite anything on it, so loading it by that path
afterwards loads the file that was checked. (Loading through ``/proc/self/fd/N`` would
prove the same thing again, but the loaded module would then be named
``/proc/self/fd/N`` for ``dladdr``, gdb and the memory tracker's symbols.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class UntrustedPath(OSError):
    """The path cannot be trusted; ``reason`` says which part and why."""

    def __init__(self, path: str, reason: str):
        super().__init__(errno.EPERM, reason, path)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def problem(st: os.stat_result, path: str, private: bool) -> str | None:
    """Why the object ``st`` (at ``path``) is not trusted, or None."""
    if st.st_uid not in (os.getuid(), 0):
        return f"{path} is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if private or not sticky_dir:
            return f"{path} is writable by other users"
    return None


def _open(name: str, flags: int, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UntrustedPath(shown, f"{shown} is a symlink or not a folder") from None
        raise UntrustedPath(shown, f"cannot open {shown}: {exc.strerror}") from None


def open_dir(path: str, private_from: str | None = None) -> int:
    """An ``O_PATH`` descriptor of the folder ``path`` (absolute, no symlinks), every folder from ``/`` trusted.

    Raises :class:`UntrustedPath`, or ``FileNotFoundError`` when a folder is missing.
    The caller closes the descriptor.
    """
    if not os.path.isabs(path):
        raise ValueError(f"not an absolute path: {path}")
    private_from = os.path.normpath(private_from) if private_from else None
    fd = os.open("/", _DIR_FLAGS)
    current = "/"
    try:
        _check(fd, current, private=False, want_dir=True)
        for part in [p for p in os.path.normpath(path).split("/") if p]:
            current = os.path.join(current, part)
            nxt = _open(part, _DIR_FLAGS, fd, current)
            os.close(fd)
            fd = nxt
            private = private_from is not None and (current + "/").startswith(private_from + "/")
            _check(fd, current, private=private, want_dir=True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check(fd: int, path: str, private: bool, want_dir: bool) -> os.stat_result:
    st = os.fstat(fd)
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise UntrustedPath(path, f"{path} is a symlink or not a folder")
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise UntrustedPath(path, f"{path} is not a regular file")
    reason = problem(st, path, private)
    if reason:
        raise UntrustedPath(path, reason)
    return st


def check_dir_at(dir_fd: int, name: str, shown: str, private: bool = True) -> int:
    """Open and check the folder ``name`` in ``dir_fd``; returns its ``O_PATH`` descriptor."""
    fd = _open(name, _DIR_FLAGS, dir_fd, shown)
    try:
        _check(fd, shown, private=private, want_dir=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file_at(dir_fd: int, name: str, shown: str, private: bool = True) -> os.stat_result:
    """Check the regular file ``name`` in ``dir_fd`` (not a symlink, trusted owner and mode)."""
    fd = _open(name, _FILE_FLAGS, dir_fd, shown)
    try:
        return _check(fd, shown, private=private, want_dir=False)
    finally:
        os.close(fd)


def untrusted_reason(path: str, private_from: str | None = None) -> str | None:
    """Why the file at ``path`` (absolute, symlinks already resolved) is not trusted, or None."""
    try:
        fd = open_dir(os.path.dirname(path), private_from)
    except UntrustedPath as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot open {exc.filename or path}: {exc.strerror}"
    try:
        check_file_at(fd, os.path.basename(path), path, private=private_from is not None)
    except UntrustedPath as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot open {path}: {exc.strerror}"
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def opened_dir(path: str, private_from: str | None = None):
    fd = open_dir(path, private_from)
    try:
        yield fd
    finally:
        os.close(fd)
