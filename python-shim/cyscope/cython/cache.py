"""Where compiled cells live, and loading nothing from there that another user could have touched.

Layout: ``<root>/<python tag>/<key>/NAME<EXT>`` (and the build's other files beside it).
The rules, checked on every run (see :mod:`cyscope.trusted_path` for how):

- every folder above ``<root>`` belongs to the kernel's user or root, and is not
  writable by others unless it has the sticky bit (as for the native library);
- ``<root>`` and ``<python tag>`` are real folders (not symlinks) of the kernel's user.
  Permissions for others are removed (``0700``); never added for the owner, so a
  read-only cache stays one. If others could *write* to one of them, what it holds may
  have been swapped meanwhile: every entry in it is set aside;
- an entry ``<key>`` is used only if it, and its module file, belong to the user (or
  root), are not writable by others, and are a real folder and a regular file. Anything
  else there (another user's folder, a symlink, a folder without a module) is set aside
  (renamed to ``.refused-*``, then deleted as far as possible) and the cell is built
  again; it is never repaired in place.

A key folder is only ever created by renaming a finished build folder onto it
(:func:`publish`), so a module is never seen half-written.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import sysconfig
import time

from ..trusted_path import UntrustedPath, check_dir_at, check_file_at, open_dir, opened_dir

ENV_CACHE_DIR = "CYSCOPE_CACHE_DIR"
STALE_BUILD_SECONDS = 24 * 3600
_ASIDE_PREFIXES = (".build-", ".refused-")


class CacheDirError(OSError):
    """The cache folder cannot be used (not the user's, a symlink, or below a folder others can change)."""

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def python_tag() -> str:
    soabi = sysconfig.get_config_var("SOABI") or ""
    return soabi or f"{sys.implementation.cache_tag}-{sys.platform}"


def cache_root() -> str:
    """The cache's root folder: symlinks above it resolved; the root itself must not be one."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        root = os.path.abspath(os.path.expanduser(override))
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(os.path.abspath(base), "cyscope")
    return os.path.join(os.path.realpath(os.path.dirname(root)), os.path.basename(root))


def cache_dir() -> str:
    """The per-interpreter cache folder, created private (parents as needed) and checked on each call."""
    root = cache_root()
    parent = os.path.dirname(root)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        parent_fd = open_dir(parent)
    except (UntrustedPath, FileNotFoundError) as exc:
        raise CacheDirError(f"cannot use the cyscope cache in {root}: {exc}; set {ENV_CACHE_DIR} elsewhere") from None
    try:
        root_fd = _private_folder(parent_fd, root, is_root=True)
    finally:
        os.close(parent_fd)
    try:
        tagged = os.path.join(root, python_tag())
        os.close(_private_folder(root_fd, tagged, is_root=False))
    finally:
        os.close(root_fd)
    return tagged


def _private_folder(parent_fd: int, path: str, is_root: bool) -> int:
    """Create or check the folder ``path`` in ``parent_fd``; returns an ``O_PATH`` descriptor of it."""
    name = os.path.basename(path)
    for _attempt in range(3):
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise CacheDirError(f"cannot create the cyscope cache folder {path}: {exc.strerror}") from None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except FileNotFoundError:
            continue  # removed meanwhile (by another of the user's kernels): again
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                reason = f"cyscope cache folder {path} is not a plain directory"
            else:
                reason = f"cannot open the cyscope cache folder {path}: {exc.strerror}"
            if is_root:
                raise CacheDirError(reason + "; refusing to use it") from None
            _set_aside(parent_fd, name, path, reason)
            continue
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            os.close(fd)
            reason = f"cyscope cache folder {path} belongs to uid {st.st_uid}, not to you"
            if is_root:
                raise CacheDirError(reason + "; refusing to load code from it") from None
            _set_aside(parent_fd, name, path, reason)
            continue
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)  # close it to others; never open it wider for the owner
            if mode & 0o022:
                _set_aside_everything(fd, path)
        return fd
    raise CacheDirError(f"cyscope cache folder {path} keeps changing; refusing to use it")


def _set_aside_everything(dir_fd: int, path: str) -> None:
    """Others could write to ``path`` until now: whatever it holds may have been swapped."""
    for name in os.listdir(dir_fd):
        if not name.startswith(_ASIDE_PREFIXES):
            _set_aside(dir_fd, name, os.path.join(path, name), None)


def _set_aside(dir_fd: int, name: str, shown: str, reason: str | None) -> None:
    """Rename an untrusted entry out of the way, then delete what can be deleted of it."""
    aside = f".refused-{name[:64]}-{os.getpid()}-{time.time_ns()}"
    try:
        os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        return  # already gone (another of the user's kernels set it aside)
    except OSError as exc:
        raise CacheDirError(f"cannot set aside the untrusted cache entry {shown}: {exc.strerror}") from None
    if reason:
        print(f"cyscope: refused the cached build {shown} ({reason}); building it again", file=sys.stderr)
    shutil.rmtree(aside, dir_fd=dir_fd, ignore_errors=True)


def trusted_module(tag_dir: str, key: str, filename: str) -> str | None:
    """Path of the module ``filename`` of the entry ``key`` if it is there and trusted, else None.

    An entry that is there but cannot be used is set aside, so the caller can build and
    publish the cell again: with a message when it is untrusted (another user's, writable
    by others, a symlink), silently when it is one of the user's without a module (a
    failed build kept for its messages, or a corrupt entry).
    """
    root = os.path.dirname(tag_dir)
    shown = os.path.join(tag_dir, key)
    try:
        with opened_dir(tag_dir, private_from=root) as tag_fd:
            try:
                key_fd = check_dir_at(tag_fd, key, shown)
            except FileNotFoundError:
                return None
            except UntrustedPath as exc:
                _set_aside(tag_fd, key, shown, exc.reason)
                return None
            try:
                check_file_at(key_fd, filename, os.path.join(shown, filename))
            except FileNotFoundError:
                _set_aside(tag_fd, key, shown, None)
                return None
            except UntrustedPath as exc:
                _set_aside(tag_fd, key, shown, exc.reason)
                return None
            finally:
                os.close(key_fd)
    except (UntrustedPath, FileNotFoundError) as exc:
        raise CacheDirError(f"cannot use the cyscope cache folder {tag_dir}: {exc}") from None
    return os.path.join(shown, filename)


def set_aside(tag_dir: str, key: str, reason: str | None) -> None:
    """Set the entry ``key`` aside (e.g. a module that no longer loads)."""
    with opened_dir(tag_dir, private_from=os.path.dirname(tag_dir)) as tag_fd:
        _set_aside(tag_fd, key, os.path.join(tag_dir, key), reason)


def publish(build_dir: str, tag_dir: str, key: str, filename: str | None) -> None:
    """Rename the finished ``build_dir`` to the entry ``key``.

    ``filename`` is the module the entry must hold (None for a failed build kept for its
    messages). Another of the user's kernels may have published the same key first: its
    module is the same cell built the same way, so ours is dropped, unless that entry is
    not usable (then it is set aside and ours takes its place).
    """
    final = os.path.join(tag_dir, key)
    for _attempt in range(3):
        try:
            os.rename(build_dir, final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if filename is None:
            return  # a failed build does not replace anything
        if trusted_module(tag_dir, key, filename) is not None:
            return  # lost the race to an equal, usable build
    raise CacheDirError(f"cannot publish the build of {final}: the entry keeps coming back")


def remove_stale_builds(root: str) -> None:
    """Drop build folders left by kernels killed mid-build, and leftovers of refused entries,
    once a day old (no live build is that slow)."""
    limit = time.time() - STALE_BUILD_SECONDS
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(_ASIDE_PREFIXES):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass
